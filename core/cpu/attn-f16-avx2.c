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
 *    reduced together by a transpose (hsum8) that pairs the very same lanes;
 *  - max is cpu_attn_head's loop unchanged, and e^x and the double sum are
 *    the AVX2 ak's exp_sum (cpu_exp_sum_avx2), as cpu_attn_head calls it;
 *  - output element i is fmadd(a_j, v_ji, acc_i) from 0 for j ascending, with
 *    a_j = e_j · inv, exactly the sequence of axpy calls.
 * A head_dim that is not a multiple of 8 (the scalar tails of ops-avx2.c)
 * takes the per-head path instead.
 */
#include <immintrin.h>
#include <math.h>

#include "cpu/ops.h"

/* the tiles below take nq as a compile-time constant: inlining is what unrolls them */
#define INLINE static inline __attribute__((always_inline))

enum {
    QB = CPU_ATTN_TILE_HEADS, /* queries in one register tile (their group shares a pass) */
};

INLINE __m256 load_h8(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
}

/* cpu_dot_f16_avx2's final reduction of one accumulator vector. */
INLINE float hsum1(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* hsum1 of v[0..7] at once, lane r = hsum1(v[r]): the same additions, transposed. */
INLINE __m256 hsum8(const __m256 *v)
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
 * acc0 + acc1 of cpu_dot_f16_avx2 for key row k against the nq (<= QB) query
 * rows q + r·hd; sums[r] receives query r's vector.
 */
INLINE void qk_key(const float *q, int nq, int hd, const uint16_t *k, __m256 *sums)
{
    __m256 a0[QB], a1[QB];
    for (int r = 0; r < QB; r++)
        a0[r] = a1[r] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= hd; i += 16) {
        __m256 k0 = load_h8(k + i), k1 = load_h8(k + i + 8);
        for (int r = 0; r < nq; r++) {
            a0[r] = _mm256_fmadd_ps(_mm256_loadu_ps(q + r * hd + i), k0, a0[r]);
            a1[r] = _mm256_fmadd_ps(_mm256_loadu_ps(q + r * hd + i + 8), k1, a1[r]);
        }
    }
    if (i < hd) { /* hd % 16 == 8 */
        __m256 k0 = load_h8(k + i);
        for (int r = 0; r < nq; r++)
            a0[r] = _mm256_fmadd_ps(_mm256_loadu_ps(q + r * hd + i), k0, a0[r]);
    }
    for (int r = 0; r < nq; r++)
        sums[r] = _mm256_add_ps(a0[r], a1[r]);
}

/* scores[r·n + j] = scale · q_r·K_j for r < nq, j < n; returns each query's max in mx[r]. */
INLINE void qk_scores(const float *q, int nq, int hd, const uint16_t *k0, size_t kv_stride,
                      int64_t n, float scale, float *scores, float *mx)
{
    const __m256 vs = _mm256_set1_ps(scale);
    __m256 vmx[QB], part[QB][8];
    for (int r = 0; r < QB; r++)
        vmx[r] = _mm256_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        for (int jj = 0; jj < 8; jj++) {
            __m256 s[QB];
            qk_key(q, nq, hd, k0 + (size_t)(j + jj) * kv_stride, s);
            for (int r = 0; r < nq; r++)
                part[r][jj] = s[r];
        }
        for (int r = 0; r < nq; r++) {
            __m256 sc = _mm256_mul_ps(hsum8(part[r]), vs);
            _mm256_storeu_ps(scores + (size_t)r * (size_t)n + j, sc);
            /* max_ps keeps its second operand on NaN: a NaN score is skipped, as in ops.c */
            vmx[r] = _mm256_max_ps(sc, vmx[r]);
        }
    }
    for (int r = 0; r < nq; r++) {
        float m[8];
        _mm256_storeu_ps(m, vmx[r]);
        mx[r] = -INFINITY;
        for (int l = 0; l < 8; l++)
            mx[r] = m[l] > mx[r] ? m[l] : mx[r];
    }
    for (; j < n; j++) {
        __m256 s[QB];
        qk_key(q, nq, hd, k0 + (size_t)j * kv_stride, s);
        for (int r = 0; r < nq; r++) {
            float sc = hsum1(s[r]) * scale;
            scores[(size_t)r * (size_t)n + j] = sc;
            mx[r] = sc > mx[r] ? sc : mx[r];
        }
    }
}

/*
 * Output columns per PV tile for nq queries: about 8 accumulators, and fewer
 * broadcasts of the weights per multiply-add as nq shrinks.
 */
#define PV_COLS(nq) ((nq) == 1 ? 8 : (nq) == 2 ? 4 : 2)

/*
 * out[r][c0 .. c0 + 8·nc) += Σ_j w[r·n + j] · V_j[c0 ..] for keys j in [j0, j1),
 * ascending, one fmadd per key; the first block (j0 == 0) starts from zero
 * instead of out. A float's store and reload are exact, so the sum is the
 * same whatever the blocking.
 */
INLINE void pv_tile(float *out, int nq, int hd, int c0, int nc, const uint16_t *v0,
                    size_t kv_stride, int64_t n, int64_t j0, int64_t j1, const float *w)
{
    __m256 acc[QB][8];
    for (int r = 0; r < nq; r++)
        for (int c = 0; c < nc; c++)
            acc[r][c] = j0 ? _mm256_loadu_ps(out + r * hd + c0 + 8 * c) : _mm256_setzero_ps();
    for (int64_t j = j0; j < j1; j++) {
        const uint16_t *v = v0 + (size_t)j * kv_stride + c0;
        __m256 a[QB];
        for (int r = 0; r < nq; r++)
            a[r] = _mm256_broadcast_ss(w + (size_t)r * (size_t)n + j);
        for (int c = 0; c < nc; c++) {
            __m256 x = load_h8(v + 8 * c);
            for (int r = 0; r < nq; r++)
                acc[r][c] = _mm256_fmadd_ps(a[r], x, acc[r][c]);
        }
    }
    for (int r = 0; r < nq; r++)
        for (int c = 0; c < nc; c++)
            _mm256_storeu_ps(out + r * hd + c0 + 8 * c, acc[r][c]);
}

/* One group of nq <= QB heads; nq is a constant where this is inlined. */
INLINE void attn_group(float *out, const float *q, int nq, const uint16_t *k0, const uint16_t *v0,
                       size_t kv_stride, int64_t n, int hd, float scale, float *scores)
{
    float mx[QB];
    qk_scores(q, nq, hd, k0, kv_stride, n, scale, scores, mx);
    for (int r = 0; r < nq; r++) { /* cpu_attn_head's softmax with the AVX2 ak's exp_sum */
        float *s = scores + (size_t)r * (size_t)n;
        double sum = cpu_exp_sum_avx2(s, n, mx[r]);
        float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < n; j++)
            s[j] *= inv;
    }
    /*
     * Keys in blocks of ~16 KiB of V, so that the column tiles after the first
     * read the block from L1 rather than the whole range from memory again.
     */
    const int64_t kb = hd <= 128 ? 8192 / hd : 32;
    for (int64_t j0 = 0; j0 < n; j0 += kb) {
        int64_t j1 = n - j0 < kb ? n : j0 + kb;
        int c0 = 0;
        for (; c0 + 8 * PV_COLS(nq) <= hd; c0 += 8 * PV_COLS(nq))
            pv_tile(out, nq, hd, c0, PV_COLS(nq), v0, kv_stride, n, j0, j1, scores);
        for (; c0 < hd; c0 += 8)
            pv_tile(out, nq, hd, c0, 1, v0, kv_stride, n, j0, j1, scores);
    }
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
