/*
 * cpu/attn-tile-avx2: the register tiles of the grouped attention kernels,
 * over f16 cache rows (attn-f16-avx2.c) and over the compressed cache's
 * decoded f32 rows (attn-kvq-group-avx2.c): the dots of several query heads
 * with each K row, and several heads' weighted V sums over a column block.
 * Every float operation is that of the per-head AVX2 kernels (a dot's two
 * accumulators and hsum_ps, one fused multiply-add per row and output
 * element), in their order, so both callers keep their per-head bits; the
 * files' headers say why in full. Include only from *-avx2.c files.
 *
 * A row holds halves (f16) or floats; row j is rows[j] when rows is set (an
 * exact window's rows sit elsewhere than the tile's), else base + j·stride
 * elements. Callers pass f16, nq, nc and a NULL rows as constants: inlining
 * then unrolls the tiles and drops the branches.
 */
#ifndef HEARTH_CPU_ATTN_TILE_AVX2_H
#define HEARTH_CPU_ATTN_TILE_AVX2_H

#include <immintrin.h>
#include <math.h>
#include <stdbool.h>

#include "cpu/dot-avx2.h"

#define TILE_INLINE static inline __attribute__((always_inline))

enum { TILE_QB = 4 }; /* query heads in one register tile */

TILE_INLINE const void *tile_row(const void *const *rows, const void *base, size_t stride, bool f16,
                                 int64_t j)
{
    if (rows)
        return rows[j];
    return f16 ? (const void *)((const uint16_t *)base + (size_t)j * stride)
               : (const void *)((const float *)base + (size_t)j * stride);
}

TILE_INLINE __m256 tile_load8(const void *row, int i, bool f16)
{
    if (f16)
        return _mm256_cvtph_ps(
            _mm_loadu_si128((const __m128i *)(const void *)((const uint16_t *)row + i)));
    return _mm256_loadu_ps((const float *)row + i);
}

/* hsum_ps of v[0..7] at once, lane r = hsum_ps(v[r]): the same additions, transposed. */
TILE_INLINE __m256 tile_hsum8(const __m256 *v)
{
    __m256 w[4];
    for (int r = 0; r < 4; r++) /* [v_r lo + v_r hi | v_r+4 lo + v_r+4 hi] */
        w[r] = _mm256_add_ps(_mm256_permute2f128_ps(v[r], v[r + 4], 0x20),
                             _mm256_permute2f128_ps(v[r], v[r + 4], 0x31));
    /* per 128-bit lane: [A0+A2, A1+A3, B0+B2, B1+B3] */
    __m256 x0 = _mm256_add_ps(_mm256_shuffle_ps(w[0], w[1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm256_shuffle_ps(w[0], w[1], _MM_SHUFFLE(3, 2, 3, 2)));
    __m256 x1 = _mm256_add_ps(_mm256_shuffle_ps(w[2], w[3], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm256_shuffle_ps(w[2], w[3], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm256_add_ps(_mm256_shuffle_ps(x0, x1, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm256_shuffle_ps(x0, x1, _MM_SHUFFLE(3, 1, 3, 1)));
}

/*
 * acc0 + acc1 of the AVX2 dot of row k against the nq (<= TILE_QB) queries
 * q + r·hd (hd % 8 == 0); sums[r] receives query r's vector.
 */
TILE_INLINE void tile_qk_row(const float *q, int nq, int hd, const void *k, bool f16, __m256 *sums)
{
    __m256 a0[TILE_QB], a1[TILE_QB];
    for (int r = 0; r < TILE_QB; r++)
        a0[r] = a1[r] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= hd; i += 16) {
        __m256 k0 = tile_load8(k, i, f16), k1 = tile_load8(k, i + 8, f16);
        for (int r = 0; r < nq; r++) {
            a0[r] = _mm256_fmadd_ps(_mm256_loadu_ps(q + r * hd + i), k0, a0[r]);
            a1[r] = _mm256_fmadd_ps(_mm256_loadu_ps(q + r * hd + i + 8), k1, a1[r]);
        }
    }
    if (i < hd) { /* hd % 16 == 8 */
        __m256 k0 = tile_load8(k, i, f16);
        for (int r = 0; r < nq; r++)
            a0[r] = _mm256_fmadd_ps(_mm256_loadu_ps(q + r * hd + i), k0, a0[r]);
    }
    for (int r = 0; r < nq; r++)
        sums[r] = _mm256_add_ps(a0[r], a1[r]);
}

/*
 * sc[r·ld + j] = scale · q_r·K_j for r < nq, j < n; with mx set, each
 * query's max in mx[r] (the scalar loop's: max_ps keeps its second operand
 * on NaN, so a NaN score is skipped).
 */
TILE_INLINE void tile_qk_scores(const float *q, int nq, int hd, bool f16, const void *const *rows,
                                const void *k0, size_t stride, int64_t n, float scale, float *sc,
                                size_t ld, float *mx)
{
    const __m256 vs = _mm256_set1_ps(scale);
    __m256 vmx[TILE_QB], part[TILE_QB][8];
    for (int r = 0; r < TILE_QB; r++)
        vmx[r] = _mm256_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        for (int jj = 0; jj < 8; jj++) {
            __m256 s[TILE_QB];
            tile_qk_row(q, nq, hd, tile_row(rows, k0, stride, f16, j + jj), f16, s);
            for (int r = 0; r < nq; r++)
                part[r][jj] = s[r];
        }
        for (int r = 0; r < nq; r++) {
            __m256 v = _mm256_mul_ps(tile_hsum8(part[r]), vs);
            _mm256_storeu_ps(sc + (size_t)r * ld + j, v);
            if (mx)
                vmx[r] = _mm256_max_ps(v, vmx[r]);
        }
    }
    for (int r = 0; mx && r < nq; r++) {
        float m[8];
        _mm256_storeu_ps(m, vmx[r]);
        mx[r] = -INFINITY;
        for (int l = 0; l < 8; l++)
            mx[r] = m[l] > mx[r] ? m[l] : mx[r];
    }
    for (; j < n; j++) {
        __m256 s[TILE_QB];
        tile_qk_row(q, nq, hd, tile_row(rows, k0, stride, f16, j), f16, s);
        for (int r = 0; r < nq; r++) {
            float v = hsum_ps(s[r]) * scale;
            sc[(size_t)r * ld + j] = v;
            if (mx)
                mx[r] = v > mx[r] ? v : mx[r];
        }
    }
}

/*
 * out[r·ld + c0 .. + 8·nc) += Σ_j w[r·wld + j] · V_j[c0 ..] for rows j in
 * [j0, j1), ascending, one fmadd per row; the first block (j0 == 0) starts
 * from +0 instead of out. A float's store and reload are exact, so the sum
 * is the same whatever the blocking.
 */
TILE_INLINE void tile_pv(float *out, size_t ld, int nq, int c0, int nc, bool f16,
                         const void *const *rows, const void *v0, size_t stride, int64_t j0,
                         int64_t j1, const float *w, size_t wld)
{
    __m256 acc[TILE_QB][8];
    for (int r = 0; r < nq; r++)
        for (int c = 0; c < nc; c++)
            acc[r][c] = j0 ? _mm256_loadu_ps(out + r * ld + c0 + 8 * c) : _mm256_setzero_ps();
    for (int64_t j = j0; j < j1; j++) {
        const void *v = tile_row(rows, v0, stride, f16, j);
        __m256 a[TILE_QB];
        for (int r = 0; r < nq; r++)
            a[r] = _mm256_broadcast_ss(w + (size_t)r * wld + j);
        for (int c = 0; c < nc; c++) {
            __m256 x = tile_load8(v, c0 + 8 * c, f16);
            for (int r = 0; r < nq; r++)
                acc[r][c] = _mm256_fmadd_ps(a[r], x, acc[r][c]);
        }
    }
    for (int r = 0; r < nq; r++)
        for (int c = 0; c < nc; c++)
            _mm256_storeu_ps(out + r * ld + c0 + 8 * c, acc[r][c]);
}

/*
 * The weighted V sums of all hd columns over rows [0, n), nc8 8-wide columns
 * per tile, rows in blocks of rb so that the column tiles after the first
 * read the block from L1 rather than the whole range from memory again.
 */
TILE_INLINE void tile_pv_all(float *out, size_t ld, int nq, int hd, int nc8, bool f16,
                             const void *const *rows, const void *v0, size_t stride, int64_t n,
                             int64_t rb, const float *w, size_t wld)
{
    for (int64_t j0 = 0; j0 < n; j0 += rb) {
        int64_t j1 = n - j0 < rb ? n : j0 + rb;
        int c0 = 0;
        for (; c0 + 8 * nc8 <= hd; c0 += 8 * nc8)
            tile_pv(out, ld, nq, c0, nc8, f16, rows, v0, stride, j0, j1, w, wld);
        for (; c0 < hd; c0 += 8)
            tile_pv(out, ld, nq, c0, 1, f16, rows, v0, stride, j0, j1, w, wld);
    }
}

#endif
