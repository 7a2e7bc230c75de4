/*
 * cpu/attn-f16-avx2: attention of the query heads that share one F16 KV head
 * (GQA), AVX2+F16C+FMA, with the same bits as one cpu_attn_head call per head
 * with the AVX2 dot/axpy (ops-avx2.c).
 *
 * Why it is faster: cpu_attn_head converts each K and V row from f16 once per
 * query head, and its axpy loads and stores the whole output row for every
 * key. Here a K row is converted once and dotted with every query of the
 * group, and the output is a register tile (QB queries x PV_COLS 8-wide
 * columns) that runs over all keys before it is stored; each V chunk is
 * converted once per tile for all its queries.
 *
 * Why it is bit-identical (f16->f32 conversion is exact, so only the order of
 * the float operations matters, and it is kept):
 *  - a score is cpu_dot_f16_avx2's: two accumulators over 16-dim steps with
 *    fmadd(q, k, acc) (an 8-dim tail goes into the first), their sum, then
 *    lanes i+4 onto i, (0+2) and (1+3), and their sum. Eight keys' sums are
 *    reduced together by a transpose (tile_hsum8) that pairs the very same lanes;
 *  - max is cpu_attn_head's loop unchanged, and e^x and the double sum are
 *    the AVX2 ak's exp_sum (cpu_exp_sum_avx2), as cpu_attn_head calls it;
 *  - output element i is fmadd(a_j, v_ji, acc_i) from 0 for j ascending, with
 *    a_j = e_j · inv, exactly the sequence of axpy calls.
 * A head_dim that is not a multiple of 8 (the scalar tails of ops-avx2.c)
 * takes the per-head path instead.
 */
#include "cpu/attn-tile-avx2.h"
#include "cpu/ops.h"

/* heads per register tile: what cpu_attn_scratch sizes the scores for (ops.h) */
_Static_assert((int)CPU_ATTN_TILE_HEADS == (int)TILE_QB, "the f16 tiles are attn-tile-avx2.h's");
#define QB TILE_QB

/*
 * Output columns per PV tile for nq queries: about 8 accumulators, and fewer
 * broadcasts of the weights per multiply-add as nq shrinks.
 */
#define PV_COLS(nq) ((nq) == 1 ? 8 : (nq) == 2 ? 4 : 2)

/* One group of nq <= QB heads; nq is a constant where this is inlined. */
TILE_INLINE void attn_group(float *out, const float *q, int nq, const uint16_t *k0,
                            const uint16_t *v0, size_t kv_stride, int64_t n, int hd, float scale,
                            float *scores)
{
    float mx[QB];
    tile_qk_scores(q, nq, hd, true, NULL, k0, kv_stride, n, scale, scores, (size_t)n, mx);
    for (int r = 0; r < nq; r++) { /* cpu_attn_head's softmax with the AVX2 ak's exp_sum */
        float *s = scores + (size_t)r * (size_t)n;
        double sum = cpu_exp_sum_avx2(s, n, mx[r]);
        float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < n; j++)
            s[j] *= inv;
    }
    /* blocks of ~16 KiB of V */
    const int64_t kb = hd <= 128 ? 8192 / hd : 32;
    tile_pv_all(out, (size_t)hd, nq, hd, PV_COLS(nq), true, NULL, v0, kv_stride, n, kb, scores,
                (size_t)n);
}

void cpu_attn_heads_avx2(const struct cpu_attn_kernels *ak, float *out, const float *q, int n_q,
                         const uint16_t *k0, const uint16_t *v0, size_t kv_stride, int64_t n,
                         int hd, float scale, float *scores)
{
    if (hd % 8 != 0) {
        cpu_attn_heads_ref(ak, out, q, n_q, k0, v0, kv_stride, n, hd, scale, scores);
        return;
    }
    for (int h = 0; h < n_q; h += QB) {
        int nq = n_q - h < QB ? n_q - h : QB;
        float *o = out + (size_t)h * (size_t)hd;
        const float *qh = q + (size_t)h * (size_t)hd;
        /* constant nq per call so the tiles' loops unroll and stay in registers */
        switch (nq) {
        case 1:
            attn_group(o, qh, 1, k0, v0, kv_stride, n, hd, scale, scores);
            break;
        case 2:
            attn_group(o, qh, 2, k0, v0, kv_stride, n, hd, scale, scores);
            break;
        case 3:
            attn_group(o, qh, 3, k0, v0, kv_stride, n, hd, scale, scores);
            break;
        default:
            attn_group(o, qh, 4, k0, v0, kv_stride, n, hd, scale, scores);
            break;
        }
    }
}
