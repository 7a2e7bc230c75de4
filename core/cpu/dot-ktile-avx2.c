/*
 * dot-ktile-avx2: the AVX2 dot_tile of the K-quants (Q2_K, Q3_K, Q4_K, Q5_K,
 * Q6_K) against Q8_K activations, i.e. the prefill matmul of K-quant models.
 *
 * Each weight super-block is decoded once per tile call into a struct kdec:
 * 8 chunks of 32 unsigned codes (element order, so chunk c pairs with Q8_K
 * bytes 32c..32c+31), each chunk's int16 scale vector (one scale per 16
 * elements, as vpmaddwd wants it), the int16 multipliers of Q8_K's 16 bsums
 * (the mins, or the scales for the −32/−4 offsets of Q6_K/Q3_K) and the two
 * f16 factors as floats. A chunk of KT_TB decoded super-blocks of two rows is
 * then dotted with the tile's tokens four at a time (2 rows x 4 tokens of
 * int32 accumulators in registers, each activation load shared by both rows),
 * so the per-token work is only vpmaddubsw/vpmaddwd/vpaddd and the block's
 * float update. Stack use: 2 x KT_TB decoded blocks (19 KB) and the float
 * accumulators of 2 rows x KT_TT tokens (8 KB). bench-dot --tile: ~1.4x the
 * DEF_TILE kernels this replaces (Q4_K 4096x4096: 73-78 -> 101-111 GFLOP/s).
 *
 * Exactness contract: dot (dot-avx2.c, blk_q45_k/blk_q6_k/...) converts an
 * 8-lane int32 vector per super-block, lane L holding Σ_c scale·Σ q·a over
 * elements 4L..4L+3 of each chunk, and does per-lane fma/fnmadd into one of two
 * float accumulators by block parity, then hsum(acc0 + acc1) + 0. This file
 * forms the same int32 lanes (same pairing of bytes in vpmaddubsw, same
 * vpmaddwd with the same scale layout: integers, so order is free), the same
 * scalar products d_a·d_w, and the same per-lane float operations in the same
 * order, so every output equals dot bit for bit. Rejected: one float per
 * super-block as in dot-iq-avx2.c (needs dot itself to change its summation,
 * which changes every K-quant model's decode bits); keeping DEF_TILE's four
 * inlined block functions (re-unpacking per four tokens and spilling: 1.2x).
 */
#include "cpu/dot-avx2.h"

/* Super-blocks per decoded chunk (even: parity of i0 + j is parity of j); tokens per pass. */
enum { KT_TB = 16, KT_TT = 64 };

/* Which K-quant a kernel instantiation decodes. */
enum kt_type { KT_Q2, KT_Q3, KT_Q4, KT_Q5, KT_Q6 };

struct kdec {
    __m256i q[8];  /* chunk c: unsigned codes (0..63) of elements 32c..32c+31 */
    __m256i sc[8]; /* chunk c: int16 scale of its elements 0..15 in lanes 0..7, 16..31 in 8..15 */
    __m256i msc;   /* int16 multiplier of bsum g (elements 16g..16g+15), g = 0..15 */
    __m256 d, dm;  /* d_w and (Q2_K, Q4_K, Q5_K) the min factor, from f16, in all lanes */
};

/* int16 lo in lanes 0..7, hi in lanes 8..15. */
static inline __m256i scale_pair(int lo, int hi)
{
    return _mm256_set_m128i(_mm_set1_epi16((short)hi), _mm_set1_epi16((short)lo));
}

/* Bit b of every byte of v, moved to bit `to` (other bits zero). */
static inline __m256i bit_of(__m256i v, int b, int to)
{
    __m256i one = _mm256_and_si256(_mm256_srli_epi16(v, b), _mm256_set1_epi8(1));
    return _mm256_slli_epi16(one, to);
}

/* Q4_K (144 bytes) or Q5_K (176): d, dmin, 12 scale bytes, [qh 32], qs 128 (§3.10, §3.11). */
static inline void dec_q45(const uint8_t *w, int five, struct kdec *o)
{
    uint8_t sc[8], mn[8];
    dot__k4_scales(w + 4, sc, mn);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const uint8_t *qs = w + (five ? 48 : 16);
    __m256i hb = five ? load32(w + 16) : _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
        __m256i v = load32(qs + 32 * k);
        __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        if (five) {
            lo = _mm256_or_si256(lo, bit_of(hb, 2 * k, 4));
            hi = _mm256_or_si256(hi, bit_of(hb, 2 * k + 1, 4));
        }
        o->q[2 * k] = lo;
        o->q[2 * k + 1] = hi;
        o->sc[2 * k] = _mm256_set1_epi16(sc[2 * k]);
        o->sc[2 * k + 1] = _mm256_set1_epi16(sc[2 * k + 1]);
    }
    /* each min once per 16-element bsum */
    __m128i m8 = _mm_loadl_epi64((const __m128i *)(const void *)mn);
    o->msc = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
    o->d = _mm256_set1_ps(f16_at(w));
    o->dm = _mm256_set1_ps(f16_at(w + 2));
}

/* Q6_K (210 bytes): ql 128, qh 64, int8 scales 16, d (§3.12); codes u = q + 32. */
static inline void dec_q6(const uint8_t *w, struct kdec *o)
{
    const int8_t *sc = (const int8_t *)(w + 192);
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    for (int h = 0; h < 2; h++) {
        __m256i ql0 = load32(w + 64 * h), ql1 = load32(w + 64 * h + 32);
        __m256i qh = load32(w + 128 + 32 * h);
        __m256i *q = o->q + 4 * h;
        q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                               _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
        q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                               _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                               _mm256_and_si256(qh, m30));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                               _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
    }
    for (int c = 0; c < 8; c++)
        o->sc[c] = scale_pair(sc[2 * c], sc[2 * c + 1]);
    o->msc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)sc));
    o->d = _mm256_set1_ps(f16_at(w + 208));
    o->dm = _mm256_setzero_ps();
}

/* Q3_K (110 bytes): hmask 32, qs 64, 12 scale bytes, d (§3.9); codes u = q + 4. */
static inline void dec_q3(const uint8_t *w, struct kdec *o)
{
    int8_t sc[16];
    dot__q3_k_scales(w + 96, sc);
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i hm = load32(w);
    for (int h = 0; h < 2; h++) {
        __m256i v = load32(w + 32 + 32 * h);
        for (int k = 0; k < 4; k++) {
            int c = 4 * h + k;
            o->q[c] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 2 * k), m3),
                                      bit_of(hm, c, 2));
        }
    }
    for (int c = 0; c < 8; c++)
        o->sc[c] = scale_pair(sc[2 * c], sc[2 * c + 1]);
    o->msc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)sc));
    o->d = _mm256_set1_ps(f16_at(w + 108));
    o->dm = _mm256_setzero_ps();
}

/* Q2_K (84 bytes): 16 bytes scale | min << 4, qs 64, d, dmin (§3.8). */
static inline void dec_q2(const uint8_t *w, struct kdec *o)
{
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; h++) {
        __m256i v = load32(w + 16 + 32 * h);
        for (int k = 0; k < 4; k++)
            o->q[4 * h + k] = _mm256_and_si256(_mm256_srli_epi16(v, 2 * k), m3);
    }
    for (int c = 0; c < 8; c++)
        o->sc[c] = scale_pair(w[2 * c] & 15, w[2 * c + 1] & 15);
    __m128i s = _mm_loadu_si128((const __m128i *)(const void *)w);
    o->msc = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), _mm_set1_epi8(0x0F)));
    o->d = _mm256_set1_ps(f16_at(w + 80));
    o->dm = _mm256_set1_ps(f16_at(w + 82));
}

static inline __attribute__((always_inline)) void kt_decode(const enum kt_type type,
                                                            const uint8_t *w, struct kdec *o)
{
    switch (type) {
    case KT_Q2: dec_q2(w, o); break;
    case KT_Q3: dec_q3(w, o); break;
    case KT_Q4: dec_q45(w, 0, o); break;
    case KT_Q5: dec_q45(w, 1, o); break;
    case KT_Q6: dec_q6(w, o); break;
    }
}

/*
 * One super-block of nr rows (decoded in d0, d1) against nt tokens (Q8_K
 * blocks at ab[t]), into acc[r][t][par]. off: 0 where bsums times mins are
 * subtracted in float (Q2/4/5_K, as their dot), else the shift of the integer
 * offset correction (5 for Q6_K's −32, 2 for Q3_K's −4).
 */
static inline __attribute__((always_inline)) void kt_block(const int nr, const int nt,
                                                           const int off,
                                                           const struct kdec *d0,
                                                           const struct kdec *d1,
                                                           const uint8_t *const ab[4],
                                                           __m256 *const acc[2][4])
{
    const struct kdec *dr[2] = {d0, d1};
    __m256i is[2][4];
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < nt; t++)
            is[r][t] = _mm256_setzero_si256();
    for (int c = 0; c < 8; c++) {
        for (int t = 0; t < nt; t++) {
            __m256i av = load32(ab[t] + DOT_Q8_K_QS + 32 * c);
            for (int r = 0; r < nr; r++) {
                __m256i p = _mm256_maddubs_epi16(dr[r]->q[c], av);
                is[r][t] = _mm256_add_epi32(is[r][t], _mm256_madd_epi16(p, dr[r]->sc[c]));
            }
        }
        /*
         * Keeps the sums in registers chunk by chunk: without it GCC hoists all
         * 64 products of a block ahead of the adds and spills them (1.4x slower).
         */
        for (int r = 0; r < nr; r++)
            for (int t = 0; t < nt; t++)
                __asm__("" : "+x"(is[r][t]));
    }
    for (int t = 0; t < nt; t++) {
        __m256i bs = load32(ab[t] + DOT_Q8_K_BSUMS);
        /* dot's scalar d_a·d_w, done in all lanes at once (the same rounding) */
        __m256 da = _mm256_set1_ps(dot__f32(ab[t]));
        for (int r = 0; r < nr; r++) {
            __m256i ms = _mm256_madd_epi16(bs, dr[r]->msc);
            __m256 c = *acc[r][t];
            if (off) {
                __m256i v = _mm256_sub_epi32(is[r][t], _mm256_slli_epi32(ms, off));
                c = _mm256_fmadd_ps(_mm256_mul_ps(da, dr[r]->d), _mm256_cvtepi32_ps(v), c);
            } else {
                c = _mm256_fmadd_ps(_mm256_mul_ps(da, dr[r]->d), _mm256_cvtepi32_ps(is[r][t]), c);
                c = _mm256_fnmadd_ps(_mm256_mul_ps(da, dr[r]->dm), _mm256_cvtepi32_ps(ms), c);
            }
            *acc[r][t] = c;
        }
    }
}

/*
 * The decoded super-blocks i0 .. i0 + nbc − 1 of nr rows (dec[r][j]) against
 * tn tokens (Q8_K rows ast bytes apart from at), four tokens at a time, the
 * last tn % 4 one by one.
 */
static inline __attribute__((always_inline)) void
kt_chunk(const int nr, const int off, struct kdec dec[2][KT_TB], int64_t i0, int nbc, int tn,
         const uint8_t *at, size_t ast, __m256 acc[2][KT_TT][2])
{
    int t = 0;
    for (; t + 4 <= tn; t += 4) {
        for (int j = 0; j < nbc; j++) {
            size_t ao = (size_t)(i0 + j) * DOT_Q8_K_BYTES;
            int par = j & 1;
            const uint8_t *a0 = at + (size_t)t * ast + ao;
            const uint8_t *const ab[4] = {a0, a0 + ast, a0 + 2 * ast, a0 + 3 * ast};
            __m256 *const ac[2][4] = {
                {&acc[0][t][par], &acc[0][t + 1][par], &acc[0][t + 2][par], &acc[0][t + 3][par]},
                {&acc[1][t][par], &acc[1][t + 1][par], &acc[1][t + 2][par], &acc[1][t + 3][par]},
            };
            kt_block(nr, 4, off, &dec[0][j], &dec[1][j], ab, ac);
        }
    }
    for (; t < tn; t++) {
        for (int j = 0; j < nbc; j++) {
            size_t ao = (size_t)(i0 + j) * DOT_Q8_K_BYTES;
            int par = j & 1;
            const uint8_t *const ab[4] = {at + (size_t)t * ast + ao, NULL, NULL, NULL};
            __m256 *const ac[2][4] = {{&acc[0][t][par], NULL, NULL, NULL},
                                      {&acc[1][t][par], NULL, NULL, NULL}};
            kt_block(nr, 1, off, &dec[0][j], &dec[1][j], ab, ac);
        }
    }
}

/*
 * dot_tile (dot.h) of one K-quant: rows in pairs (an odd last row alone),
 * tokens in passes of KT_TT, super-blocks decoded KT_TB at a time per row.
 * acc[r][t][p]: row r's token t float accumulator of the blocks of parity p.
 */
static inline __attribute__((always_inline)) void
kt_tile(const enum kt_type type, const int wb, int64_t n, int nrows, int ntok, float *s,
        size_t ss, const void *w, size_t wst, const void *a, size_t ast)
{
    const int off = type == KT_Q6 ? 5 : type == KT_Q3 ? 2 : 0;
    struct kdec dec[2][KT_TB];
    __m256 acc[2][KT_TT][2];
    int64_t nb = n / QK_K;
    for (int t0 = 0; t0 < ntok; t0 += KT_TT) {
        int tn = ntok - t0 < KT_TT ? ntok - t0 : KT_TT;
        const uint8_t *at = (const uint8_t *)a + (size_t)t0 * ast;
        for (int r = 0; r < nrows; r += 2) {
            int nr = nrows - r >= 2 ? 2 : 1;
            const uint8_t *w0 = (const uint8_t *)w + (size_t)r * wst;
            for (int k = 0; k < nr; k++)
                for (int t = 0; t < tn; t++)
                    acc[k][t][0] = acc[k][t][1] = _mm256_setzero_ps();
            for (int64_t i0 = 0; i0 < nb; i0 += KT_TB) {
                int nbc = nb - i0 < KT_TB ? (int)(nb - i0) : KT_TB;
                for (int k = 0; k < nr; k++)
                    for (int j = 0; j < nbc; j++)
                        kt_decode(type, w0 + (size_t)k * wst + (size_t)(i0 + j) * (size_t)wb,
                                  &dec[k][j]);
                if (nr == 2)
                    kt_chunk(2, off, dec, i0, nbc, tn, at, ast, acc);
                else
                    kt_chunk(1, off, dec, i0, nbc, tn, at, ast, acc);
            }
            for (int k = 0; k < nr; k++)
                for (int t = 0; t < tn; t++)
                    s[(size_t)(t0 + t) * ss + (size_t)(r + k)] =
                        hsum_ps(_mm256_add_ps(acc[k][t][0], acc[k][t][1])) + 0.0f;
        }
    }
}

#define DEF_KTILE(name, TYPE, WB)                                                              \
    static void tile_##name(int64_t n, int nrows, int ntok, float *s, size_t ss,               \
                            const void *w, size_t wst, const void *a, size_t ast)              \
    {                                                                                          \
        kt_tile(TYPE, WB, n, nrows, ntok, s, ss, w, wst, a, ast);                              \
    }

DEF_KTILE(q2_k, KT_Q2, DOT_Q2_K_BYTES)
DEF_KTILE(q3_k, KT_Q3, DOT_Q3_K_BYTES)
DEF_KTILE(q4_k, KT_Q4, DOT_Q4_K_BYTES)
DEF_KTILE(q5_k, KT_Q5, DOT_Q5_K_BYTES)
DEF_KTILE(q6_k, KT_Q6, DOT_Q6_K_BYTES)

cpu_dot_tile_fn cpu__ktile_avx2(hearth_dtype wtype)
{
    switch (wtype) {
    case HEARTH_DTYPE_Q2_K: return tile_q2_k;
    case HEARTH_DTYPE_Q3_K: return tile_q3_k;
    case HEARTH_DTYPE_Q4_K: return tile_q4_k;
    case HEARTH_DTYPE_Q5_K: return tile_q5_k;
    case HEARTH_DTYPE_Q6_K: return tile_q6_k;
    default: return NULL;
    }
}
