/*
 * dot-iq-avx2: AVX2 dot products of IQ1/IQ2/IQ3 weight rows with Q8_K
 * activations (formats: core/quant-iq2.c; integer form: dot-iq-scalar.c).
 *
 * Per 32-element sub-block a type's sub_* function yields three vectors: the
 * unsigned magnitudes (grid rows fetched as 64-/32-bit words), a sign vector
 * (byte 0xFF where the weight is negative, 0x01 elsewhere, for vpsignb) and
 * the int16 scale 2s + 1 (per 16 elements where the type has two). Sign
 * vectors of the parity-coded types come from a compile-time table of 8-byte
 * masks indexed by a group's 7 stored bits (no popcount or bit expansion);
 * the 32 explicit sign bits of IQ2_S/IQ3_S are expanded with one vpshufb
 * (measured faster there than four table lookups).
 * IQ1 weights are the odd integers 8g +- 1 (|w| <= 9), magnitude |w| and
 * sign w.
 *
 * Exactness contract (what makes dot, dot_rows and dot_tile equal bit for
 * bit): every kernel forms the exact int32 sum T = sum(w * a * scale) of a
 * super-block (any order: integers), then does, in float, acc_p =
 * fma((d_a * d_w) * c, (float)T, acc_p) with p the parity of the super-block
 * index, and returns acc_0 + acc_1. dot gets T with the sign trick
 * (magnitudes times sign-adjusted activations, vpmaddubsw then vpmaddwd);
 * dot_tile unpacks a chunk of super-blocks of one row once into biased
 * bytes w + 64 (0..126, unsigned for vpmaddubsw: pairs stay below 2 * 126 *
 * 127 < 2^15) and scale vectors, dots them with eight tokens at a time, and
 * removes the bias with one vpmaddwd of Q8_K's 16 bsums by 64 * scale. Eight
 * tokens' sums are reduced together (vphaddd) and their floats done as one
 * vector, lane t being exactly the scalar operations of dot.
 * Grid rows are scalar loads into vectors, except IQ3_S, whose 9-bit indices
 * are assembled in SIMD (byte | shifted qh bit) and fetched with vpgatherdd
 * (~15% faster there on Zen 3; the same gather for IQ3_XXS's plain byte
 * indices was ~25% slower than eight scalar loads, bench-dot --tile's dot
 * loop column). Rejected: per-lane float conversion as before (ties the bits
 * to the lane layout, so the tile could not use another summation scheme).
 */
#include <immintrin.h>

#include "cpu/dot-internal.h"
#include "iq-grids.h"

/* ---- sign tables ---------------------------------------------------------------- */

/* Byte j of SMASK(b): 0xFF if bit j of b is set (negative), 0x01 otherwise. */
#define SB_(b, j) ((((b) >> (j)) & 1) ? 0xFFull << (8 * (j)) : 0x01ull << (8 * (j)))
#define SMASK(b)                                                                               \
    (SB_(b, 0) | SB_(b, 1) | SB_(b, 2) | SB_(b, 3) | SB_(b, 4) | SB_(b, 5) | SB_(b, 6) |     \
     SB_(b, 7))
/* The 8-bit mask of 7 stored sign bits: the eighth makes the parity even. */
#define PAR7_(s) ((((s) >> 0) ^ ((s) >> 1) ^ ((s) >> 2) ^ ((s) >> 3) ^ ((s) >> 4) ^ ((s) >> 5) ^ \
                   ((s) >> 6)) & 1)
#define KMASK(s) SMASK((s) | (PAR7_(s) << 7))
#define R4_(M, b) M(b), M((b) + 1), M((b) + 2), M((b) + 3)
#define R16_(M, b) R4_(M, b), R4_(M, (b) + 4), R4_(M, (b) + 8), R4_(M, (b) + 12)
#define R64_(M, b) R16_(M, b), R16_(M, (b) + 16), R16_(M, (b) + 32), R16_(M, (b) + 48)

static const uint64_t ksigns8[128] = {R64_(KMASK, 0), R64_(KMASK, 64)};

/* ---- helpers -------------------------------------------------------------------- */

enum { BIAS = 64 }; /* added to signed weights in the tile buffer; every |w| <= 62 */

static inline __m256i load32(const uint8_t *p)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

static inline __m256i grid4(uint64_t e0, uint64_t e1, uint64_t e2, uint64_t e3)
{
    return _mm256_set_epi64x((long long)e3, (long long)e2, (long long)e1, (long long)e0);
}

static inline __m256i scale2(int lo, int hi)
{
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)lo)),
                                   _mm_set1_epi16((short)hi), 1);
}

static inline uint32_t u16_at(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}

static inline int hsum_epi32(__m256i v)
{
    __m128i x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0x4E));
    x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0xB1));
    return _mm_cvtsi128_si32(x);
}

/* Lane t = sum of the lanes of v[t] (integer, exact). */
static inline __m256i hsum8_epi32(const __m256i v[8])
{
    __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                            _mm256_permute2x128_si256(a, b, 0x31));
}

/* vpsignb signs of 32 weights from 32 explicit sign bits: 0xFF where bit k of m is set, else 1. */
static inline __m256i signs32(uint32_t m)
{
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                          2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bits = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)m), shuf), bits);
    return _mm256_or_si256(_mm256_cmpeq_epi8(v, bits), _mm256_set1_epi8(1));
}

/* ---- per-type sub-block unpacking ----------------------------------------------- */
/* Each returns the magnitudes of sub-block ib and sets *sg (vpsignb signs), *sc (int16). */

static inline __m256i sub_iq2_xxs(const uint8_t *w, int ib, __m256i *sg, __m256i *sc)
{
    const uint64_t *gr = quant__iq2xxs_grid;
    const uint8_t *ix = w + 2 + 8 * ib;
    uint32_t aux = dot__u32(ix + 4);
    *sg = grid4(ksigns8[aux & 127], ksigns8[(aux >> 7) & 127], ksigns8[(aux >> 14) & 127],
                ksigns8[(aux >> 21) & 127]);
    *sc = _mm256_set1_epi16((short)(2 * (aux >> 28) + 1));
    return grid4(gr[ix[0]], gr[ix[1]], gr[ix[2]], gr[ix[3]]);
}

static inline __m256i sub_iq2_xs(const uint8_t *w, int ib, __m256i *sg, __m256i *sc)
{
    const uint64_t *gr = quant__iq2xs_grid;
    uint64_t qq;
    memcpy(&qq, w + 2 + 8 * ib, 8);
    uint32_t q0 = (uint32_t)qq & 0xFFFF, q1 = (uint32_t)(qq >> 16) & 0xFFFF;
    uint32_t q2 = (uint32_t)(qq >> 32) & 0xFFFF, q3 = (uint32_t)(qq >> 48);
    *sg = grid4(ksigns8[q0 >> 9], ksigns8[q1 >> 9], ksigns8[q2 >> 9], ksigns8[q3 >> 9]);
    int s = w[66 + ib];
    *sc = scale2(2 * (s & 15) + 1, 2 * (s >> 4) + 1);
    return grid4(gr[q0 & 511], gr[q1 & 511], gr[q2 & 511], gr[q3 & 511]);
}

static inline __m256i sub_iq2_s(const uint8_t *w, int ib, __m256i *sg, __m256i *sc)
{
    const uint64_t *gr = quant__iq2s_grid;
    const uint8_t *ix = w + 2 + 4 * ib, *sb = w + 34 + 4 * ib;
    uint32_t h = w[66 + ib];
    *sg = signs32(dot__u32(sb));
    int s = w[74 + ib];
    *sc = scale2(2 * (s & 15) + 1, 2 * (s >> 4) + 1);
    return grid4(gr[ix[0] | ((h & 3) << 8)], gr[ix[1] | ((h & 12) << 6)],
                 gr[ix[2] | ((h & 48) << 4)], gr[ix[3] | ((h & 192) << 2)]);
}

static inline __m256i sub_iq3_xxs(const uint8_t *w, int ib, __m256i *sg, __m256i *sc)
{
    const uint32_t *gr = quant__iq3xxs_grid;
    const uint8_t *ix = w + 2 + 8 * ib;
    uint32_t aux = dot__u32(w + 66 + 4 * ib);
    *sg = grid4(ksigns8[aux & 127], ksigns8[(aux >> 7) & 127], ksigns8[(aux >> 14) & 127],
                ksigns8[(aux >> 21) & 127]);
    *sc = _mm256_set1_epi16((short)(2 * (aux >> 28) + 1));
    return _mm256_setr_epi32((int)gr[ix[0]], (int)gr[ix[1]], (int)gr[ix[2]], (int)gr[ix[3]],
                             (int)gr[ix[4]], (int)gr[ix[5]], (int)gr[ix[6]], (int)gr[ix[7]]);
}

static inline __m256i sub_iq3_s(const uint8_t *w, int ib, __m256i *sg, __m256i *sc)
{
    const uint32_t *gr = quant__iq3s_grid;
    const uint8_t *ix = w + 2 + 8 * ib, *sb = w + 74 + 4 * ib;
    uint32_t h = w[66 + ib];
    *sg = signs32(dot__u32(sb));
    *sc = _mm256_set1_epi16((short)(2 * ((w[106 + ib / 2] >> (4 * (ib & 1))) & 15) + 1));
    __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)ix));
    __m256i hb =
        _mm256_sllv_epi32(_mm256_set1_epi32((int)h), _mm256_setr_epi32(8, 7, 6, 5, 4, 3, 2, 1));
    idx = _mm256_or_si256(idx, _mm256_and_si256(hb, _mm256_set1_epi32(256)));
    return _mm256_i32gather_epi32((const int *)(const void *)gr, idx, 4);
}

/* 8 g + delta bytewise, g the -1/0/+1 grid bytes (no lane crosses: byte adds). */
static inline __m256i iq1_weights(__m256i g, __m256i delta)
{
    __m256i g2 = _mm256_add_epi8(g, g);
    __m256i g4 = _mm256_add_epi8(g2, g2);
    return _mm256_add_epi8(_mm256_add_epi8(g4, g4), delta);
}

static inline __m256i sub_iq1_s(const uint8_t *w, int ib, __m256i *sg, __m256i *sc)
{
    const uint64_t *gr = quant__iq1s_grid;
    const uint8_t *ix = w + 2 + 4 * ib;
    uint32_t qh = u16_at(w + 34 + 2 * ib);
    __m256i g = grid4(gr[ix[0] | ((qh << 8) & 0x700)], gr[ix[1] | ((qh << 5) & 0x700)],
                      gr[ix[2] | ((qh << 2) & 0x700)], gr[ix[3] | ((qh >> 1) & 0x700)]);
    __m256i wv = iq1_weights(g, _mm256_set1_epi8(qh & 0x8000 ? -1 : 1));
    *sg = wv;
    *sc = _mm256_set1_epi16((short)(2 * ((qh >> 12) & 7) + 1));
    return _mm256_abs_epi8(wv);
}

static inline __m256i sub_iq1_m(const uint8_t *w, int ib, __m256i *sg, __m256i *sc)
{
    const uint64_t *gr = quant__iq1s_grid;
    const uint64_t plus = 0x0101010101010101ull, minus = ~0ull;
    const uint8_t *ix = w + 4 * ib;
    uint32_t h = u16_at(w + 32 + 2 * ib); /* 4 nibbles: groups 4ib..4ib+3 */
    __m256i g = grid4(gr[ix[0] | ((h << 8) & 0x700)], gr[ix[1] | ((h << 4) & 0x700)],
                      gr[ix[2] | (h & 0x700)], gr[ix[3] | ((h >> 4) & 0x700)]);
    __m256i delta = grid4(h & 0x8 ? minus : plus, h & 0x80 ? minus : plus,
                          h & 0x800 ? minus : plus, h & 0x8000 ? minus : plus);
    __m256i wv = iq1_weights(g, delta);
    uint32_t word = u16_at(w + 48 + 2 * (ib / 2));
    int s0 = (int)((word >> (6 * (ib & 1))) & 7), s1 = (int)((word >> (6 * (ib & 1) + 3)) & 7);
    *sg = wv;
    *sc = scale2(2 * s0 + 1, 2 * s1 + 1);
    return _mm256_abs_epi8(wv);
}

/* d_w of a super-block (before the type's constant c); F16C, exact like f16_to_f32. */
static inline float f16c(uint16_t h)
{
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

static inline float dw_f16(const uint8_t *w)
{
    return f16c((uint16_t)u16_at(w));
}

static inline float dw_iq1_m(const uint8_t *w)
{
    return f16c(quant__iq1_m_d16(w + 48));
}

/* ---- kernels -------------------------------------------------------------------- */

/* The exact int32 sum of one super-block with one activation block (sign trick). */
#define DEF_ISUM(name)                                                                         \
    static inline int isum_##name(const uint8_t *w, const uint8_t *a)                          \
    {                                                                                          \
        __m256i s0 = _mm256_setzero_si256(), s1 = s0;                                         \
        for (int ib = 0; ib < 8; ib += 2) {                                                    \
            __m256i g0, c0, g1, c1;                                                            \
            __m256i m0 = sub_##name(w, ib, &g0, &c0);                                          \
            __m256i m1 = sub_##name(w, ib + 1, &g1, &c1);                                      \
            __m256i q0 = _mm256_sign_epi8(load32(a + DOT_Q8_K_QS + 32 * ib), g0);              \
            __m256i q1 = _mm256_sign_epi8(load32(a + DOT_Q8_K_QS + 32 * ib + 32), g1);         \
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_maddubs_epi16(m0, q0), c0));    \
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_maddubs_epi16(m1, q1), c1));    \
        }                                                                                      \
        return hsum_epi32(_mm256_add_epi32(s0, s1));                                           \
    }

/*
 * The tile's unpacked chunk of one row: TB super-blocks of biased weights
 * w + BIAS (u8, element order), scale vectors, BIAS * scale per 16 elements
 * (for the bsums correction) and d_w.
 */
enum { TB = 16, TT = 64 };
struct tile_buf {
    __m256i wu[TB][8];
    __m256i sc[TB][8];
    __m256i corr[TB];
    float dw[TB];
};

#define DEF_KERNELS(name, WB, DW, C)                                                           \
    DEF_ISUM(name)                                                                             \
    static void dot_##name(int64_t n, float *s, const void *w, const void *a)                  \
    {                                                                                          \
        const uint8_t *wp = w, *ap = a;                                                        \
        int64_t nb = n / QK_K;                                                                 \
        __m128 acc0 = _mm_setzero_ps(), acc1 = acc0;                                           \
        for (int64_t i = 0; i < nb; i += 2) {                                                  \
            const uint8_t *wb = wp + i * (WB), *ab = ap + i * DOT_Q8_K_BYTES;                  \
            float sc = dot__f32(ab) * DW(wb) * (C);                                            \
            __m128 t = _mm_cvtepi32_ps(_mm_cvtsi32_si128(isum_##name(wb, ab)));                \
            acc0 = _mm_fmadd_ss(_mm_set_ss(sc), t, acc0);                                      \
            if (i + 1 < nb) {                                                                  \
                wb += (WB);                                                                    \
                ab += DOT_Q8_K_BYTES;                                                          \
                sc = dot__f32(ab) * DW(wb) * (C);                                              \
                t = _mm_cvtepi32_ps(_mm_cvtsi32_si128(isum_##name(wb, ab)));                   \
                acc1 = _mm_fmadd_ss(_mm_set_ss(sc), t, acc1);                                  \
            }                                                                                  \
        }                                                                                      \
        *s = _mm_cvtss_f32(_mm_add_ss(acc0, acc1));                                            \
    }                                                                                          \
    static void rows_##name(int64_t n, int nrows, float *s, const void *w, size_t wst,         \
                            const void *a)                                                     \
    {                                                                                          \
        for (int r = 0; r < nrows; r++)                                                        \
            dot_##name(n, s + r, (const uint8_t *)w + (size_t)r * wst, a);                     \
    }                                                                                          \
    static void unpack_##name(const uint8_t *wr, int64_t i0, int nbc, struct tile_buf *tb)     \
    {                                                                                          \
        const __m256i bias = _mm256_set1_epi8(BIAS);                                           \
        for (int j = 0; j < nbc; j++) {                                                        \
            const uint8_t *wb = wr + (i0 + j) * (WB);                                          \
            int16_t corr[16];                                                                  \
            for (int ib = 0; ib < 8; ib++) {                                                   \
                __m256i g, c;                                                                  \
                __m256i m = sub_##name(wb, ib, &g, &c);                                        \
                tb->wu[j][ib] = _mm256_add_epi8(_mm256_sign_epi8(m, g), bias);                 \
                tb->sc[j][ib] = c;                                                             \
                corr[2 * ib] = (int16_t)(BIAS * _mm256_extract_epi16(c, 0));                   \
                corr[2 * ib + 1] = (int16_t)(BIAS * _mm256_extract_epi16(c, 8));               \
            }                                                                                  \
            tb->corr[j] = _mm256_loadu_si256((const __m256i *)(const void *)corr);             \
            tb->dw[j] = DW(wb);                                                                \
        }                                                                                      \
    }                                                                                          \
    static void tile_##name(int64_t n, int nrows, int ntok, float *s, size_t ss,               \
                            const void *w, size_t wst, const void *a, size_t ast)              \
    {                                                                                          \
        struct tile_buf tb;                                                                    \
        int64_t nb = n / QK_K;                                                                 \
        for (int t0 = 0; t0 < ntok; t0 += TT) {                                                \
            int tn = ntok - t0 < TT ? ntok - t0 : TT;                                          \
            const uint8_t *at0 = (const uint8_t *)a + (size_t)t0 * ast;                        \
            for (int r = 0; r < nrows; r++) {                                                  \
                const uint8_t *wr = (const uint8_t *)w + (size_t)r * wst;                      \
                __m256 acc[2][TT / 8];                                                         \
                for (int g = 0; g < TT / 8; g++)                                               \
                    acc[0][g] = acc[1][g] = _mm256_setzero_ps();                               \
                for (int64_t i0 = 0; i0 < nb; i0 += TB) {                                      \
                    int nbc = nb - i0 < TB ? (int)(nb - i0) : TB;                              \
                    unpack_##name(wr, i0, nbc, &tb);                                           \
                    tile_chunk(&tb, i0, nbc, tn, at0, ast, (C), acc);                          \
                }                                                                              \
                tile_store(acc, tn, s + (size_t)t0 * ss + r, ss);                              \
            }                                                                                  \
        }                                                                                      \
    }

/*
 * Dots an unpacked chunk (super-blocks i0 .. i0 + nbc - 1, i0 even) with tn
 * tokens (activation rows ast bytes apart from at0), eight at a time, into
 * acc[parity][token / 8]. A short last group repeats its last token in the
 * spare lanes, which tile_store never reads.
 */
static void tile_chunk(const struct tile_buf *tb, int64_t i0, int nbc, int tn,
                       const uint8_t *at0, size_t ast, float c, __m256 acc[2][TT / 8])
{
    const __m256 cv = _mm256_set1_ps(c);
    for (int g = 0; g < tn; g += 8) {
        const uint8_t *ap[8];
        for (int k = 0; k < 8; k++)
            ap[k] = at0 + (size_t)(g + k < tn ? g + k : tn - 1) * ast;
        __m256 acc0 = acc[0][g / 8], acc1 = acc[1][g / 8];
        for (int j = 0; j < nbc; j++) {
            size_t ao = (size_t)(i0 + j) * DOT_Q8_K_BYTES;
            __m256i is[8];
            for (int k = 0; k < 8; k++)
                is[k] = _mm256_setzero_si256();
            for (int ib = 0; ib < 8; ib++) {
                __m256i wv = tb->wu[j][ib], sv = tb->sc[j][ib];
                size_t qo = ao + DOT_Q8_K_QS + 32 * (size_t)ib;
                for (int k = 0; k < 8; k++)
                    is[k] = _mm256_add_epi32(
                        is[k], _mm256_madd_epi16(_mm256_maddubs_epi16(wv, load32(ap[k] + qo)), sv));
            }
            __m256i cr = tb->corr[j];
            for (int k = 0; k < 8; k++)
                is[k] = _mm256_sub_epi32(
                    is[k], _mm256_madd_epi16(load32(ap[k] + ao + DOT_Q8_K_BSUMS), cr));
            __m256 tf = _mm256_cvtepi32_ps(hsum8_epi32(is));
            __m256 da = _mm256_setr_ps(dot__f32(ap[0] + ao), dot__f32(ap[1] + ao),
                                       dot__f32(ap[2] + ao), dot__f32(ap[3] + ao),
                                       dot__f32(ap[4] + ao), dot__f32(ap[5] + ao),
                                       dot__f32(ap[6] + ao), dot__f32(ap[7] + ao));
            __m256 sc = _mm256_mul_ps(_mm256_mul_ps(da, _mm256_set1_ps(tb->dw[j])), cv);
            if ((j & 1) == 0)
                acc0 = _mm256_fmadd_ps(sc, tf, acc0);
            else
                acc1 = _mm256_fmadd_ps(sc, tf, acc1);
        }
        acc[0][g / 8] = acc0;
        acc[1][g / 8] = acc1;
    }
}

/* s[t * ss] = acc_0 + acc_1 of token t < tn (dot's final add). */
static void tile_store(__m256 acc[2][TT / 8], int tn, float *s, size_t ss)
{
    for (int g = 0; g < tn; g += 8) {
        float out[8];
        _mm256_storeu_ps(out, _mm256_add_ps(acc[0][g / 8], acc[1][g / 8]));
        for (int k = 0; k < 8 && g + k < tn; k++)
            s[(size_t)(g + k) * ss] = out[k];
    }
}

DEF_KERNELS(iq2_xxs, DOT_IQ2_XXS_BYTES, dw_f16, 0.125f)
DEF_KERNELS(iq2_xs, DOT_IQ2_XS_BYTES, dw_f16, 0.125f)
DEF_KERNELS(iq2_s, DOT_IQ2_S_BYTES, dw_f16, 0.125f)
DEF_KERNELS(iq3_xxs, DOT_IQ3_XXS_BYTES, dw_f16, 0.25f)
DEF_KERNELS(iq3_s, DOT_IQ3_S_BYTES, dw_f16, 1.0f)
DEF_KERNELS(iq1_s, DOT_IQ1_S_BYTES, dw_f16, 0.125f)
DEF_KERNELS(iq1_m, DOT_IQ1_M_BYTES, dw_iq1_m, 0.125f)

bool cpu__kernels_iq_avx2(hearth_dtype wtype, struct cpu__kernel_set *out)
{
    CPU_IQ_KERNEL_SWITCH(wtype, out, cpu__quantize_q8_k_avx2);
}
