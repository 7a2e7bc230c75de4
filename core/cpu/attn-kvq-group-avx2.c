/*
 * attn-kvq-group-avx2: the scores and weighted V sums of the query heads that
 * share one KV head (a group of G), over f32 tile rows of the batched kvq
 * attention (attn-kvq.h), with AVX2/FMA, with the same bits as one
 * cpu_kvq__dot_avx2 per (head, row) and one cpu_kvq__axpy_avx2 per (head, row).
 *
 * Why it is faster: per head the per-row kernels load the K row for every
 * dot, reduce each dot horizontally on its own, and the axpy loads and stores
 * the whole accumulator row for every position. Here a K row is loaded once
 * for up to four heads, eight rows' sums are reduced together by a
 * transpose, and the output is a register tile (four heads x PV_COLS 8-wide
 * columns) that runs over the positions before it is stored. The tiles are
 * cpu/attn-tile-avx2.h's, shared with the f16 cache's attn-f16-avx2.c.
 *
 * Why it is bit-identical (only the order of the float operations matters):
 *  - a score is cpu_kvq__dot_avx2's: two accumulators over 16-dim steps with
 *    fmadd(q, k, acc) (an 8-dim tail into the first), their sum, then the
 *    lane folding of hsum_ps (tile_hsum8 does the same additions for
 *    eight rows), then one multiply by the scale;
 *  - output element i is fmadd(w_j, v_ji, acc_i) from +0 for rows j
 *    ascending, exactly the sequence of axpy calls; a float's store and
 *    reload between position blocks are exact.
 * Rows come as pointers, one per position: an exact-window row and a tile row
 * differ only in where they are read. Callers keep hd % 8 == 0 (the per-row
 * kernels' scalar tails are not restated here).
 */
#include "attn-kvq.h"
#include "cpu/attn-tile-avx2.h"

/*
 * Output columns per tile for nq heads: up to 12 accumulators (the weights'
 * broadcasts and one V load keep the rest of the 16 registers).
 */
#define PV_COLS(nq) ((nq) == 1 ? 8 : (nq) <= 3 ? 4 : 2)

TILE_INLINE void group_dots(const float *q, int nq, int hd, const float *const *rows, int n,
                            float scale, float *sc, int ld)
{
    tile_qk_scores(q, nq, hd, false, (const void *const *)rows, NULL, 0, n, scale, sc, (size_t)ld,
                   NULL);
}

TILE_INLINE void group_axpys(float *acc, size_t ld, int nq, int hd, const float *const *rows, int n,
                             const float *w, int wld)
{
    /* rows in blocks of ~16 KiB */
    const int64_t rb = hd <= 256 ? 4096 / hd : 16;
    tile_pv_all(acc, ld, nq, hd, PV_COLS(nq), false, (const void *const *)rows, NULL, 0, n, rb, w,
                (size_t)wld);
}

void cpu_kvq__group_dots_avx2(const float *q, int nq, int hd, const float *const *rows, int n,
                              float scale, float *sc, int ld)
{
    for (int h = 0; h < nq; h += TILE_QB) {
        const float *qh = q + (size_t)h * (size_t)hd;
        float *sh = sc + (size_t)h * (size_t)ld;
        /* constant nq per call so the tiles' loops unroll and stay in registers */
        switch (nq - h < TILE_QB ? nq - h : TILE_QB) {
        case 1:
            group_dots(qh, 1, hd, rows, n, scale, sh, ld);
            break;
        case 2:
            group_dots(qh, 2, hd, rows, n, scale, sh, ld);
            break;
        case 3:
            group_dots(qh, 3, hd, rows, n, scale, sh, ld);
            break;
        default:
            group_dots(qh, 4, hd, rows, n, scale, sh, ld);
            break;
        }
    }
}

void cpu_kvq__group_axpys_avx2(float *acc, size_t ld, int nq, int hd, const float *const *rows,
                               int n, const float *w, int wld)
{
    for (int h = 0; h < nq; h += TILE_QB) {
        float *ah = acc + (size_t)h * ld;
        const float *wh = w + (size_t)h * (size_t)wld;
        switch (nq - h < TILE_QB ? nq - h : TILE_QB) {
        case 1:
            group_axpys(ah, ld, 1, hd, rows, n, wh, wld);
            break;
        case 2:
            group_axpys(ah, ld, 2, hd, rows, n, wh, wld);
            break;
        case 3:
            group_axpys(ah, ld, 3, hd, rows, n, wh, wld);
            break;
        default:
            group_axpys(ah, ld, 4, hd, rows, n, wh, wld);
            break;
        }
    }
}
