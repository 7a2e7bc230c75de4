/*
 * dot-iq-avx2: AVX2 dot products of IQ1/IQ2/IQ3 weight rows with Q8_K
 * activations (formats: core/quant-iq2.c; integer form: dot-iq-scalar.c).
 *
 * Per 32-element sub-block: the four 8-element (or eight 4-element) grid
 * entries are loaded as 64-/32-bit words straight into one vector of
 * unsigned magnitudes; the sub-block's 32 sign bits are expanded to a byte
 * mask and applied to the activations (xor then subtract: negates exactly,
 * Q8_K codes never hold -128); vpmaddubsw multiplies magnitudes by signed
 * activations into int16 pairs (at most 2 * 62 * 127, no saturation) and
 * vpmaddwd with the sub-block scale 2s + 1 (per 16 elements where the type
 * has two scales per sub-block) sums into int32. IQ1 weights are the odd
 * integers 8g +- 1 (|w| <= 9), built from the -1/0/+1 grid bytes with three
 * byte adds and the delta, and multiplied with the sign trick (|w| times
 * sign(w) * a). Each super-block ends with one int->float conversion and an
 * FMA by d_w * d_a * c (c as in the scalar file), so the result equals the
 * scalar kernel up to float summation order.
 *
 * Alternatives rejected: vpgatherqq for the grid rows (slower than four
 * scalar loads on the cores we measured, bench/bench-dot.c) and a shuffle-
 * based ksigns expansion (the 128-byte table lookup is cheaper per group).
 * dot_rows and dot_tile are loops over dot (DOT_ROWS_LOOP/DOT_TILE_LOOP).
 */
#include <immintrin.h>

#include "cpu/dot-internal.h"
#include "iq-grids.h"

static inline __m256i load32(const uint8_t *p)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

static inline float hsum_ps(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* 0xFF in byte k where bit k of m is set, 0 elsewhere. */
static inline __m256i sign_mask32(uint32_t m)
{
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                          2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bits = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)m), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bits), bits);
}

/* q negated where mask is 0xFF. */
static inline __m256i apply_sign(__m256i q, __m256i mask)
{
    return _mm256_sub_epi8(_mm256_xor_si256(q, mask), mask);
}

/* Four 8-byte grid entries as one vector, e0 in the lowest bytes. */
static inline __m256i grid4(uint64_t e0, uint64_t e1, uint64_t e2, uint64_t e3)
{
    return _mm256_set_epi64x((long long)e3, (long long)e2, (long long)e1, (long long)e0);
}

/* int16 scale vector: lo for elements 0..15 of a sub-block, hi for 16..31. */
static inline __m256i scale2(int lo, int hi)
{
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)lo)),
                                   _mm_set1_epi16((short)hi), 1);
}

/* int32 lanes of sum(mag * q) weighted by the int16 scales sc (pairs of elements). */
static inline __m256i mag_dot(__m256i mag, __m256i q, __m256i sc)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(mag, q), sc);
}

/* As mag_dot for signed weights w (the sign trick). */
static inline __m256i signed_dot(__m256i w, __m256i q, __m256i sc)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(q, w)), sc);
}

static inline __m256 finish(__m256i isum, float scale, __m256 acc)
{
    return _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(isum), acc);
}

static inline uint32_t ksigns4(uint32_t aux)
{
    return quant__iq_ksign(aux, 0) | (quant__iq_ksign(aux, 7) << 8) |
           (quant__iq_ksign(aux, 14) << 16) | (quant__iq_ksign(aux, 21) << 24);
}

static inline uint32_t u16_at(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

static inline __m256 blk_iq2_xxs(const uint8_t *w, const uint8_t *a, __m256 acc)
{
    const uint64_t *gr = quant__iq2xxs_grid;
    __m256i isum = _mm256_setzero_si256();
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *ix = w + 2 + 8 * ib;
        uint32_t aux = dot__u32(ix + 4);
        __m256i mag = grid4(gr[ix[0]], gr[ix[1]], gr[ix[2]], gr[ix[3]]);
        __m256i q = apply_sign(load32(a + DOT_Q8_K_QS + 32 * ib), sign_mask32(ksigns4(aux)));
        isum = _mm256_add_epi32(isum,
                                mag_dot(mag, q, _mm256_set1_epi16((short)(2 * (aux >> 28) + 1))));
    }
    return finish(isum, dot__f32(a) * dot__f16(w) * 0.125f, acc);
}

static inline __m256 blk_iq2_xs(const uint8_t *w, const uint8_t *a, __m256 acc)
{
    const uint64_t *gr = quant__iq2xs_grid;
    __m256i isum = _mm256_setzero_si256();
    for (int ib = 0; ib < 8; ib++) {
        uint32_t q0 = u16_at(w + 2 + 8 * ib), q1 = u16_at(w + 4 + 8 * ib);
        uint32_t q2 = u16_at(w + 6 + 8 * ib), q3 = u16_at(w + 8 + 8 * ib);
        __m256i mag = grid4(gr[q0 & 511], gr[q1 & 511], gr[q2 & 511], gr[q3 & 511]);
        uint32_t m = quant__iq_ksign(q0, 9) | (quant__iq_ksign(q1, 9) << 8) |
                     (quant__iq_ksign(q2, 9) << 16) | (quant__iq_ksign(q3, 9) << 24);
        __m256i q = apply_sign(load32(a + DOT_Q8_K_QS + 32 * ib), sign_mask32(m));
        int sc = w[66 + ib];
        isum =
            _mm256_add_epi32(isum, mag_dot(mag, q, scale2(2 * (sc & 15) + 1, 2 * (sc >> 4) + 1)));
    }
    return finish(isum, dot__f32(a) * dot__f16(w) * 0.125f, acc);
}

static inline __m256 blk_iq2_s(const uint8_t *w, const uint8_t *a, __m256 acc)
{
    const uint64_t *gr = quant__iq2s_grid;
    const uint8_t *qs = w + 2, *sg = w + 34, *qh = w + 66;
    __m256i isum = _mm256_setzero_si256();
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *ix = qs + 4 * ib;
        uint32_t h = qh[ib];
        __m256i mag = grid4(gr[ix[0] | ((h & 3) << 8)], gr[ix[1] | ((h & 12) << 6)],
                            gr[ix[2] | ((h & 48) << 4)], gr[ix[3] | ((h & 192) << 2)]);
        __m256i q =
            apply_sign(load32(a + DOT_Q8_K_QS + 32 * ib), sign_mask32(dot__u32(sg + 4 * ib)));
        int sc = w[74 + ib];
        isum =
            _mm256_add_epi32(isum, mag_dot(mag, q, scale2(2 * (sc & 15) + 1, 2 * (sc >> 4) + 1)));
    }
    return finish(isum, dot__f32(a) * dot__f16(w) * 0.125f, acc);
}

static inline __m256 blk_iq3_xxs(const uint8_t *w, const uint8_t *a, __m256 acc)
{
    const uint32_t *gr = quant__iq3xxs_grid;
    __m256i isum = _mm256_setzero_si256();
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *ix = w + 2 + 8 * ib;
        uint32_t aux = dot__u32(w + 66 + 4 * ib);
        __m256i mag =
            _mm256_setr_epi32((int)gr[ix[0]], (int)gr[ix[1]], (int)gr[ix[2]], (int)gr[ix[3]],
                              (int)gr[ix[4]], (int)gr[ix[5]], (int)gr[ix[6]], (int)gr[ix[7]]);
        __m256i q = apply_sign(load32(a + DOT_Q8_K_QS + 32 * ib), sign_mask32(ksigns4(aux)));
        isum = _mm256_add_epi32(isum,
                                mag_dot(mag, q, _mm256_set1_epi16((short)(2 * (aux >> 28) + 1))));
    }
    return finish(isum, dot__f32(a) * dot__f16(w) * 0.25f, acc);
}

static inline __m256 blk_iq3_s(const uint8_t *w, const uint8_t *a, __m256 acc)
{
    const uint32_t *gr = quant__iq3s_grid;
    const uint8_t *qs = w + 2, *qh = w + 66, *sg = w + 74;
    __m256i isum = _mm256_setzero_si256();
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *ix = qs + 8 * ib;
        uint32_t h = qh[ib];
        __m256i mag =
            _mm256_setr_epi32((int)gr[ix[0] | ((h << 8) & 256)], (int)gr[ix[1] | ((h << 7) & 256)],
                              (int)gr[ix[2] | ((h << 6) & 256)], (int)gr[ix[3] | ((h << 5) & 256)],
                              (int)gr[ix[4] | ((h << 4) & 256)], (int)gr[ix[5] | ((h << 3) & 256)],
                              (int)gr[ix[6] | ((h << 2) & 256)], (int)gr[ix[7] | ((h << 1) & 256)]);
        __m256i q =
            apply_sign(load32(a + DOT_Q8_K_QS + 32 * ib), sign_mask32(dot__u32(sg + 4 * ib)));
        int sc = (w[106 + ib / 2] >> (4 * (ib & 1))) & 15;
        isum = _mm256_add_epi32(isum, mag_dot(mag, q, _mm256_set1_epi16((short)(2 * sc + 1))));
    }
    return finish(isum, dot__f32(a) * dot__f16(w), acc);
}

/* 8 g + delta bytewise, g the -1/0/+1 grid bytes (no lane crosses: byte adds). */
static inline __m256i iq1_weights(__m256i g, __m256i delta)
{
    __m256i g2 = _mm256_add_epi8(g, g);
    __m256i g4 = _mm256_add_epi8(g2, g2);
    return _mm256_add_epi8(_mm256_add_epi8(g4, g4), delta);
}

static inline __m256 blk_iq1_s(const uint8_t *w, const uint8_t *a, __m256 acc)
{
    const uint64_t *gr = quant__iq1s_grid;
    __m256i isum = _mm256_setzero_si256();
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *ix = w + 2 + 4 * ib;
        uint32_t qh = u16_at(w + 34 + 2 * ib);
        __m256i g = grid4(gr[ix[0] | ((qh << 8) & 0x700)], gr[ix[1] | ((qh << 5) & 0x700)],
                          gr[ix[2] | ((qh << 2) & 0x700)], gr[ix[3] | ((qh >> 1) & 0x700)]);
        __m256i wv = iq1_weights(g, _mm256_set1_epi8(qh & 0x8000 ? -1 : 1));
        __m256i sc = _mm256_set1_epi16((short)(2 * ((qh >> 12) & 7) + 1));
        isum = _mm256_add_epi32(isum, signed_dot(wv, load32(a + DOT_Q8_K_QS + 32 * ib), sc));
    }
    return finish(isum, dot__f32(a) * dot__f16(w) * 0.125f, acc);
}

static inline __m256 blk_iq1_m(const uint8_t *w, const uint8_t *a, __m256 acc)
{
    const uint64_t *gr = quant__iq1s_grid;
    const uint8_t *sc = w + 48;
    const uint64_t plus = 0x0101010101010101ull, minus = ~0ull;
    __m256i isum = _mm256_setzero_si256();
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *ix = w + 4 * ib;
        uint32_t h = u16_at(w + 32 + 2 * ib); /* 4 nibbles: groups 4ib..4ib+3 */
        __m256i g = grid4(gr[ix[0] | ((h << 8) & 0x700)], gr[ix[1] | ((h << 4) & 0x700)],
                          gr[ix[2] | (h & 0x700)], gr[ix[3] | ((h >> 4) & 0x700)]);
        __m256i delta = grid4(h & 0x8 ? minus : plus, h & 0x80 ? minus : plus,
                              h & 0x800 ? minus : plus, h & 0x8000 ? minus : plus);
        uint32_t word = u16_at(sc + 2 * (ib / 2));
        int s0 = (int)((word >> (6 * (ib & 1))) & 7), s1 = (int)((word >> (6 * (ib & 1) + 3)) & 7);
        isum = _mm256_add_epi32(isum,
                                signed_dot(iq1_weights(g, delta), load32(a + DOT_Q8_K_QS + 32 * ib),
                                           scale2(2 * s0 + 1, 2 * s1 + 1)));
    }
    return finish(isum, dot__f32(a) * f16_to_f32(quant__iq1_m_d16(sc)) * 0.125f, acc);
}

/* dot: two accumulators over alternating super-blocks. */
#define DEF_DOT(name, WB)                                                                          \
    static void dot_##name(int64_t n, float *s, const void *w, const void *a)                      \
    {                                                                                              \
        const uint8_t *wp = w, *ap = a;                                                            \
        int64_t nb = n / QK_K, i = 0;                                                              \
        __m256 c0 = _mm256_setzero_ps(), c1 = c0;                                                  \
        for (; i + 1 < nb; i += 2) {                                                               \
            c0 = blk_##name(wp + i * (WB), ap + i * DOT_Q8_K_BYTES, c0);                           \
            c1 = blk_##name(wp + (i + 1) * (WB), ap + (i + 1) * DOT_Q8_K_BYTES, c1);               \
        }                                                                                          \
        if (i < nb)                                                                                \
            c0 = blk_##name(wp + i * (WB), ap + i * DOT_Q8_K_BYTES, c0);                           \
        *s = hsum_ps(_mm256_add_ps(c0, c1));                                                       \
    }                                                                                              \
    DOT_ROWS_LOOP(rows_##name, dot_##name)                                                         \
    DOT_TILE_LOOP(tile_##name, dot_##name)

DEF_DOT(iq2_xxs, DOT_IQ2_XXS_BYTES)
DEF_DOT(iq2_xs, DOT_IQ2_XS_BYTES)
DEF_DOT(iq2_s, DOT_IQ2_S_BYTES)
DEF_DOT(iq3_xxs, DOT_IQ3_XXS_BYTES)
DEF_DOT(iq3_s, DOT_IQ3_S_BYTES)
DEF_DOT(iq1_s, DOT_IQ1_S_BYTES)
DEF_DOT(iq1_m, DOT_IQ1_M_BYTES)

bool cpu__kernels_iq_avx2(hearth_dtype wtype, struct cpu__kernel_set *out)
{
    cpu_quantize_fn q8k = cpu__quantize_q8_k_avx2;
#define KSET(name)                                                                                 \
    (struct cpu__kernel_set)                                                                       \
    {                                                                                              \
        q8k, dot_##name, rows_##name, tile_##name                                                  \
    }
    switch (wtype) {
    case HEARTH_DTYPE_IQ2_XXS:
        *out = KSET(iq2_xxs);
        return true;
    case HEARTH_DTYPE_IQ2_XS:
        *out = KSET(iq2_xs);
        return true;
    case HEARTH_DTYPE_IQ2_S:
        *out = KSET(iq2_s);
        return true;
    case HEARTH_DTYPE_IQ3_XXS:
        *out = KSET(iq3_xxs);
        return true;
    case HEARTH_DTYPE_IQ3_S:
        *out = KSET(iq3_s);
        return true;
    case HEARTH_DTYPE_IQ1_S:
        *out = KSET(iq1_s);
        return true;
    case HEARTH_DTYPE_IQ1_M:
        *out = KSET(iq1_m);
        return true;
    default:
        return false;
    }
#undef KSET
}
