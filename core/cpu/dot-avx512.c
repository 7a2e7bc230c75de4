/*
 * dot-avx512: 512-bit dot products for the most used weight types (Q4_0,
 * Q8_0, Q4_K, Q5_K, Q6_K); every other type, the activation quantizers and
 * dot_rows' multi-row scheduling fall back to AVX2 through the dispatcher.
 *
 * One zmm holds 64 quants: two 32-blocks, or two K-quant sub-blocks whose
 * Q8_K activations are contiguous. The integer core is dp_us: Σ of 4
 * unsigned·signed byte products into each int32 lane, one vpdpbusd where the
 * CPU has AVX512-VNNI, else vpmaddubsw + vpmaddwd (which never saturates here:
 * |u| ≤ 128, |s| ≤ 127). Both give the same lane layout (lane i = bytes
 * 4i..4i+3), so scales are applied per lane with vpmulld after the sum.
 * Signed weights use |w| and the activation negated where w < 0 (a mask
 * subtract: AVX-512 has no vpsignb). Kept deliberately close to dot-avx2.c and
 * simple, because the development machine could not run it; test-dot checks
 * it against scalar and float64 wherever the CPU has AVX-512. dot_tile is a
 * plain loop over dot here, so it pairs bit for bit with this file's dot
 * (AVX2's tile kernels would not).
 */
#include <immintrin.h>

#include "cpu/dot-internal.h"

#define INLINE static inline __attribute__((always_inline))

INLINE __m512i load64(const uint8_t *p)
{
    return _mm512_loadu_si512((const void *)p);
}

INLINE __m256i load32(const uint8_t *p)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

INLINE __m128i load16(const uint8_t *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

INLINE float f16_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

INLINE float hsum256(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

INLINE __m512i join(__m256i lo, __m256i hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* Σ u·s per group of 4 bytes -> 16 int32 lanes. */
INLINE __m512i dp_us(__m512i u, __m512i s, const int vnni)
{
    if (vnni)
        return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s);
    return _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1));
}

/* Both signed: |x| times y negated where x < 0. */
INLINE __m512i dp_ss(__m512i x, __m512i y, const int vnni)
{
    __mmask64 neg = _mm512_movepi8_mask(x);
    __m512i ys = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
    return dp_us(_mm512_abs_epi8(x), ys, vnni);
}

/* 256-bit single-block helpers for the odd last block (AVX2 instructions). */
INLINE __m256i dot256_ss(__m256i x, __m256i y)
{
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

INLINE __m256i nibbles32(const uint8_t *p)
{
    __m128i q = load16(p);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* [d0 in lanes 0..7, d1 in lanes 8..15] */
INLINE __m512 two_scales(float d0, float d1)
{
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(d0)), _mm256_set1_ps(d1), 1);
}

/* ---- Q4_0 and Q8_0: two blocks per zmm ---------------------------------------- */

INLINE void q4_0_impl(int64_t n, float *s, const void *w, const void *a, const int vnni)
{
    const uint8_t *wp = w, *ap = a;
    int64_t nb = n / 32, i = 0;
    __m512 acc = _mm512_setzero_ps();
    const __m256i eight = _mm256_set1_epi8(8);
    for (; i + 1 < nb; i += 2) {
        const uint8_t *w0 = wp + i * DOT_Q4_0_BYTES, *w1 = w0 + DOT_Q4_0_BYTES;
        const uint8_t *a0 = ap + i * DOT_Q8_0_BYTES, *a1 = a0 + DOT_Q8_0_BYTES;
        __m512i x = join(_mm256_sub_epi8(nibbles32(w0 + 2), eight),
                         _mm256_sub_epi8(nibbles32(w1 + 2), eight));
        __m512i y = join(load32(a0 + 2), load32(a1 + 2));
        __m512 p = _mm512_cvtepi32_ps(dp_ss(x, y, vnni));
        acc = _mm512_fmadd_ps(two_scales(f16_at(w0) * f16_at(a0), f16_at(w1) * f16_at(a1)), p,
                              acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    if (i < nb) {
        const uint8_t *w0 = wp + i * DOT_Q4_0_BYTES, *a0 = ap + i * DOT_Q8_0_BYTES;
        __m256i x = _mm256_sub_epi8(nibbles32(w0 + 2), eight);
        __m256 p = _mm256_cvtepi32_ps(dot256_ss(x, load32(a0 + 2)));
        sum += hsum256(_mm256_mul_ps(_mm256_set1_ps(f16_at(w0) * f16_at(a0)), p));
    }
    *s = sum;
}

INLINE void q8_0_impl(int64_t n, float *s, const void *w, const void *a, const int vnni)
{
    const uint8_t *wp = w, *ap = a;
    int64_t nb = n / 32, i = 0;
    __m512 acc = _mm512_setzero_ps();
    for (; i + 1 < nb; i += 2) {
        const uint8_t *w0 = wp + i * DOT_Q8_0_BYTES, *w1 = w0 + DOT_Q8_0_BYTES;
        const uint8_t *a0 = ap + i * DOT_Q8_0_BYTES, *a1 = a0 + DOT_Q8_0_BYTES;
        __m512i x = join(load32(w0 + 2), load32(w1 + 2));
        __m512i y = join(load32(a0 + 2), load32(a1 + 2));
        __m512 p = _mm512_cvtepi32_ps(dp_ss(x, y, vnni));
        acc = _mm512_fmadd_ps(two_scales(f16_at(w0) * f16_at(a0), f16_at(w1) * f16_at(a1)), p,
                              acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    if (i < nb) {
        const uint8_t *w0 = wp + i * DOT_Q8_0_BYTES, *a0 = ap + i * DOT_Q8_0_BYTES;
        __m256 p = _mm256_cvtepi32_ps(dot256_ss(load32(w0 + 2), load32(a0 + 2)));
        sum += hsum256(_mm256_mul_ps(_mm256_set1_ps(f16_at(w0) * f16_at(a0)), p));
    }
    *s = sum;
}

/* ---- K-quants: one super-block per iteration ----------------------------------- */

/* Q4_K/Q5_K scales (bytes 0..7) and mins (bytes 8..15), as in dot-avx2.c. */
INLINE __m128i k4_scales_mins(const uint8_t *s)
{
    uint32_t a = dot__u32(s), b = dot__u32(s + 4), c = dot__u32(s + 8);
    uint32_t sc_lo = a & 0x3f3f3f3fu, mn_lo = b & 0x3f3f3f3fu;
    uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
    uint32_t mn_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u);
    return _mm_set_epi32((int)mn_hi, (int)mn_lo, (int)sc_hi, (int)sc_lo);
}

INLINE void q45_k_impl(int64_t n, float *s, const void *w, const void *a, const int vnni,
                       const int five)
{
    const uint8_t *wp = w, *ap = a;
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *wb = wp + i * (five ? DOT_Q5_K_BYTES : DOT_Q4_K_BYTES);
        const uint8_t *ab = ap + i * DOT_Q8_K_BYTES;
        float da = dot__f32(ab);
        __m128i sm = k4_scales_mins(wb + 4);
        __m128i mins = _mm_srli_si128(sm, 8);
        __m256i msum = _mm256_madd_epi16(load32(ab + DOT_Q8_K_BSUMS),
                                         _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins, mins)));
        /* scales as int32: lanes 0..7 of sc32 hold scale 0..7 */
        __m512i sc32 = _mm512_castsi256_si512(_mm256_cvtepu8_epi32(sm));
        const uint8_t *qs = wb + (five ? 48 : 16);
        __m256i hb = five ? load32(wb + 16) : _mm256_setzero_si256();
        __m512i isum = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
            __m256i q = load32(qs + 32 * k);
            __m256i lo = _mm256_and_si256(q, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            if (five) {
                __m256i b0 = _mm256_set1_epi8((char)(1 << (2 * k)));
                __m256i b1 = _mm256_set1_epi8((char)(1 << (2 * k + 1)));
                __m256i h0 = _mm256_cmpeq_epi8(_mm256_and_si256(hb, b0), b0);
                __m256i h1 = _mm256_cmpeq_epi8(_mm256_and_si256(hb, b1), b1);
                lo = _mm256_or_si256(lo, _mm256_and_si256(h0, _mm256_set1_epi8(0x10)));
                hi = _mm256_or_si256(hi, _mm256_and_si256(h1, _mm256_set1_epi8(0x10)));
            }
            /* sub-blocks 2k and 2k+1 are 64 contiguous activation bytes */
            __m512i p = dp_us(join(lo, hi), load64(ab + DOT_Q8_K_QS + 64 * k), vnni);
            __m512i idx = _mm512_set_epi32(2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1,
                                           2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k,
                                           2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k);
            __m512i scv = _mm512_permutexvar_epi32(idx, sc32);
            isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(p, scv));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(da * f16_at(wb)), _mm512_cvtepi32_ps(isum), acc);
        accm = _mm256_fmadd_ps(_mm256_set1_ps(da * f16_at(wb + 2)), _mm256_cvtepi32_ps(msum), accm);
    }
    *s = _mm512_reduce_add_ps(acc) - hsum256(accm);
}

INLINE void q6_k_impl(int64_t n, float *s, const void *w, const void *a, const int vnni)
{
    const uint8_t *wp = w, *ap = a;
    __m512 acc = _mm512_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *wb = wp + i * DOT_Q6_K_BYTES, *ab = ap + i * DOT_Q8_K_BYTES;
        __m128i sc = load16(wb + 192);
        /* q = u − 32: Σ s·q = Σ s·Σ u·a − 32 Σ s·bsum */
        __m256i msum = _mm256_madd_epi16(load32(ab + DOT_Q8_K_BSUMS), _mm256_cvtepi8_epi16(sc));
        __m512i sc32 = _mm512_cvtepi8_epi32(sc); /* lane g = scale of group g */
        __m512i isum = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            __m256i ql0 = load32(wb + 64 * h), ql1 = load32(wb + 64 * h + 32);
            __m256i qh = load32(wb + 128 + 32 * h);
            __m256i u0 = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                                         _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
            __m256i u1 = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                         _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
            __m256i u2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                         _mm256_and_si256(qh, m30));
            __m256i u3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                         _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
            const uint8_t *y = ab + DOT_Q8_K_QS + 128 * h;
            __m512i p01 = dp_us(join(u0, u1), load64(y), vnni);
            __m512i p23 = dp_us(join(u2, u3), load64(y + 64), vnni);
            /* lane j of p01 covers elements 4j..4j+3: group 8h + j/4 */
            int g = 8 * h;
            __m512i i01 = _mm512_set_epi32(g + 3, g + 3, g + 3, g + 3, g + 2, g + 2, g + 2, g + 2,
                                           g + 1, g + 1, g + 1, g + 1, g, g, g, g);
            __m512i i23 = _mm512_add_epi32(i01, _mm512_set1_epi32(4));
            __m512i s01 = _mm512_permutexvar_epi32(i01, sc32);
            __m512i s23 = _mm512_permutexvar_epi32(i23, sc32);
            isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(p01, s01));
            isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(p23, s23));
        }
        /* fold −32·msum (8 lanes) into the low half of isum */
        __m512i m = _mm512_castsi256_si512(_mm256_slli_epi32(msum, 5));
        isum = _mm512_mask_sub_epi32(isum, 0x00FF, isum, m);
        float d = dot__f32(ab) * f16_at(wb + 208);
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(isum), acc);
    }
    *s = _mm512_reduce_add_ps(acc);
}

/* ---- the two flavours ------------------------------------------------------------ */

#define FLAVOURS(name, CALL)                                                                \
    static void dot_##name##_vnni(int64_t n, float *s, const void *w, const void *a)        \
    {                                                                                       \
        CALL(1);                                                                            \
    }                                                                                       \
    static void dot_##name##_bw(int64_t n, float *s, const void *w, const void *a)          \
    {                                                                                       \
        CALL(0);                                                                            \
    }                                                                                       \
    DOT_ROWS_LOOP(rows_##name##_vnni, dot_##name##_vnni)                                    \
    DOT_ROWS_LOOP(rows_##name##_bw, dot_##name##_bw)                                      \
    DOT_TILE_LOOP(tile_##name##_vnni, dot_##name##_vnni)                                    \
    DOT_TILE_LOOP(tile_##name##_bw, dot_##name##_bw)

#define CALL_Q4_0(v) q4_0_impl(n, s, w, a, v)
#define CALL_Q8_0(v) q8_0_impl(n, s, w, a, v)
#define CALL_Q4_K(v) q45_k_impl(n, s, w, a, v, 0)
#define CALL_Q5_K(v) q45_k_impl(n, s, w, a, v, 1)
#define CALL_Q6_K(v) q6_k_impl(n, s, w, a, v)

FLAVOURS(q4_0, CALL_Q4_0)
FLAVOURS(q8_0, CALL_Q8_0)
FLAVOURS(q4_k, CALL_Q4_K)
FLAVOURS(q5_k, CALL_Q5_K)
FLAVOURS(q6_k, CALL_Q6_K)

bool cpu__kernels_avx512(hearth_dtype wtype, bool vnni, struct cpu__kernel_set *out)
{
    struct cpu__kernel_set k = {NULL, NULL, NULL, NULL};
#define PICK(name) \
    k.dot = vnni ? dot_##name##_vnni : dot_##name##_bw; \
    k.dot_rows = vnni ? rows_##name##_vnni : rows_##name##_bw; \
    k.dot_tile = vnni ? tile_##name##_vnni : tile_##name##_bw
    switch (wtype) {
    case HEARTH_DTYPE_Q4_0: PICK(q4_0); break;
    case HEARTH_DTYPE_Q8_0: PICK(q8_0); break;
    case HEARTH_DTYPE_Q4_K: PICK(q4_k); break;
    case HEARTH_DTYPE_Q5_K: PICK(q5_k); break;
    case HEARTH_DTYPE_Q6_K: PICK(q6_k); break;
    default: return false;
    }
#undef PICK
    *out = k; /* quantize NULL: the dispatcher takes the AVX2 activation quantizers */
    return true;
}
