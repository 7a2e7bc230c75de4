/*
 * dot-ltile-avx2: the AVX2 dot_tile of the legacy 32-element types (Q4_0,
 * Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL) against Q8_0 / Q8_1S activations, i.e. the
 * prefill matmul of those models.
 *
 * Each weight block is decoded once per tile call (per pass of LT_TT tokens)
 * into a struct ldec: its 32 int8 codes and its scale factors. A chunk of
 * LT_TB decoded blocks of a group of 8 rows is then dotted with every token
 * of the tile, one float accumulator per row in registers. Per (token, block)
 * the activation load and its scale conversion serve the 8 rows, and the
 * scalar product that dot forms per block from one weight and one activation
 * scalar (d_w·d_a; Q4_1/Q5_1: m_w/8·Σq) is done for the 8 rows by one vmulps
 * into a small table, read back by broadcast loads. What is left per (row,
 * token, block) is the integer dot (vpsignb for the signed types, vpmaddubsw,
 * vpmaddwd), its conversion and dot's fma(s): on this Zen 3 the multiply
 * pipes, not the loads, bound it. bench-dot --tile: 1.3-1.6x the DEF_TILE
 * kernels this replaces (bench/RESULTS.md).
 *
 * Exactness contract: dot (dot-avx2.c) adds each block into one of two float
 * accumulators by block parity, then hsum(acc0 + acc1) + 0. The order that
 * matters is only each accumulator's own sequence of blocks, so this file runs
 * the even blocks of a chunk and then the odd ones, each pass with its own 8
 * accumulators (both parities at once would need all 16 ymm registers).
 * Per block it forms the same int32 lanes (integers: the sign trick here, the
 * unsigned codes minus an offset in Q4_0/Q5_0's dot give the same sums), the
 * same IEEE products of the same scalars (a lane of a vmulps rounds as vmulss
 * does) and the same fma sequence, so every output equals dot bit for bit.
 * Rejected: DEF_TILE's one row x four tokens from the weight rows (re-unpacks
 * every block per four tokens and keeps 8 accumulators for only 4 outputs);
 * 2 rows x 4 tokens or 4 x 2 with the scale product per (row, token) in a
 * vmulps of broadcasts (1.1-1.2x DEF_TILE, against 1.3-1.6x here).
 */
#include "cpu/dot-avx2.h"

/*
 * Rows of one register group (8 float accumulators, one per row); blocks per
 * decoded chunk (even: parity of i0 + j is parity of j).
 */
enum { LT_R = 8, LT_TB = 16 };

/* Which type a kernel instantiation decodes. */
enum lt_type { LT_Q4_0, LT_Q4_1, LT_Q5_0, LT_Q5_1, LT_Q8_0, LT_IQ4_NL };

/* Q4_1/Q5_1: unsigned codes and a min; the others: signed codes (the sign trick). */
static inline int lt_has_min(const enum lt_type type)
{
    return type == LT_Q4_1 || type == LT_Q5_1;
}

/* LT_TB decoded blocks of LT_R rows. */
struct ldec {
    __m256i u[LT_TB][LT_R]; /* |x| of the signed codes x, or the unsigned codes (has_min) */
    __m256i x[LT_TB][LT_R]; /* the signed codes x (signed types only) */
    __m256 d[LT_TB][LT_R];  /* d_w in all lanes (has_min only) */
    /* block j, row r: d_w (signed types) or m_w/8 (has_min, as dot's q_1_accum) */
    float f[LT_TB][LT_R];
};

/* Block w of the given type into block j, row r of o (formats: facts sheet §3). */
static inline __attribute__((always_inline)) void lt_decode(const enum lt_type type,
                                                            const uint8_t *w, struct ldec *o,
                                                            int j, int r)
{
    __m256i x;
    switch (type) {
    case LT_Q4_1:
    case LT_Q5_1:
        o->u[j][r] = type == LT_Q4_1 ? nibbles32(w + 4) : q5_codes(w + 4, w + 8);
        o->d[j][r] = _mm256_set1_ps(f16_at(w));
        o->f[j][r] = f16_at(w + 2) * 0.125f;
        return;
    case LT_Q4_0: x = _mm256_sub_epi8(nibbles32(w + 2), _mm256_set1_epi8(8)); break;
    case LT_Q5_0: x = _mm256_sub_epi8(q5_codes(w + 2, w + 6), _mm256_set1_epi8(16)); break;
    case LT_Q8_0: x = load32(w + 2); break;
    case LT_IQ4_NL: x = _mm256_shuffle_epi8(iq4_table(), nibbles32(w + 2)); break;
    }
    o->x[j][r] = x;
    o->u[j][r] = _mm256_sign_epi8(x, x); /* −128 (Q8_0) gives 0x80, i.e. 128 unsigned */
    o->f[j][r] = f16_at(w);
}

/* d_a of the activation block a (Q8_0 or Q8_1S) in all lanes. */
static inline __m256 lt_da(const uint8_t *a)
{
    uint16_t dh;
    memcpy(&dh, a, 2);
    return _mm256_cvtph_ps(_mm_set1_epi16((short)dh));
}

/*
 * The decoded blocks 0 .. nbc − 1 of nr rows against one token's activation
 * blocks from a (ab_bytes apart), added into acc[r][parity] as dot adds them.
 * First the per-(row, block) float factor that dot forms from one weight and
 * one activation scalar (d_w·d_a, or m_w/8·Σq for has_min) for all 8 rows in
 * one vmulps into sc, then per block and row the integer dot, its conversion
 * and dot's fma(s), the factor coming back by a broadcast load.
 */
static inline __attribute__((always_inline)) void
lt_token(const enum lt_type type, const int ab_bytes, const int nr, const struct ldec *dec,
         int nbc, const uint8_t *a, __m256 acc[LT_R][2])
{
    const int qo = lt_has_min(type) ? 4 : 2; /* byte offset of the activation codes */
    _Alignas(32) float sc[LT_TB][LT_R];
    for (int j = 0; j < nbc; j++) {
        const uint8_t *aj = a + (size_t)j * (size_t)ab_bytes;
        /* Σq is the high half of the little-endian u32 at the block (Q8_1S) */
        __m256i sq = _mm256_srai_epi32(_mm256_set1_epi32((int)dot__u32(aj)), 16);
        __m256 v = lt_has_min(type) ? _mm256_cvtepi32_ps(sq) : lt_da(aj);
        _mm256_store_ps(sc[j], _mm256_mul_ps(_mm256_loadu_ps(dec->f[j]), v));
    }
    for (int par = 0; par < 2; par++) {
        __m256 c[LT_R];
        for (int r = 0; r < nr; r++)
            c[r] = acc[r][par];
        for (int j = par; j < nbc; j += 2) {
            const uint8_t *aj = a + (size_t)j * (size_t)ab_bytes;
            __m256i y = load32(aj + qo);
            if (lt_has_min(type)) {
                __m256 da = lt_da(aj);
                for (int r = 0; r < nr; r++) {
                    __m256 p = _mm256_cvtepi32_ps(dot_us(dec->u[j][r], y));
                    __m256 inner = _mm256_fmadd_ps(dec->d[j][r], p, _mm256_broadcast_ss(&sc[j][r]));
                    c[r] = _mm256_fmadd_ps(inner, da, c[r]);
                }
            } else {
                for (int r = 0; r < nr; r++) {
                    __m256i sy = _mm256_sign_epi8(y, dec->x[j][r]);
                    __m256 p = _mm256_cvtepi32_ps(dot_us(dec->u[j][r], sy));
                    c[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(&sc[j][r]), p, c[r]);
                }
            }
        }
        for (int r = 0; r < nr; r++)
            acc[r][par] = c[r];
    }
}

/*
 * dot_tile (dot.h) of one legacy type: rows in groups of LT_R (the last group
 * smaller), blocks decoded LT_TB at a time per group, then every token against
 * the chunk. acc[t][r][p]: token t's row r float accumulator of the blocks of
 * parity p; tokens in passes of LT_TT to bound it. Stack: acc 32 KB, one
 * decoded chunk 12.5 KB.
 */
enum { LT_TT = 64 };

static inline __attribute__((always_inline)) void
lt_group(const enum lt_type type, const int wb, const int ab_bytes, const int nr, int64_t nb,
         int tn, float *s, size_t ss, const uint8_t *w0, size_t wst, const uint8_t *at,
         size_t ast, struct ldec *dec, __m256 acc[LT_TT][LT_R][2])
{
    for (int t = 0; t < tn; t++)
        for (int r = 0; r < nr; r++)
            acc[t][r][0] = acc[t][r][1] = _mm256_setzero_ps();
    for (int64_t i0 = 0; i0 < nb; i0 += LT_TB) {
        int nbc = nb - i0 < LT_TB ? (int)(nb - i0) : LT_TB;
        for (int j = 0; j < nbc; j++)
            for (int r = 0; r < nr; r++)
                lt_decode(type, w0 + (size_t)r * wst + (size_t)(i0 + j) * (size_t)wb, dec, j, r);
        for (int t = 0; t < tn; t++)
            lt_token(type, ab_bytes, nr, dec, nbc,
                     at + (size_t)t * ast + (size_t)i0 * (size_t)ab_bytes, acc[t]);
    }
    for (int t = 0; t < tn; t++)
        for (int r = 0; r < nr; r++)
            s[(size_t)t * ss + (size_t)r] =
                hsum_ps(_mm256_add_ps(acc[t][r][0], acc[t][r][1])) + 0.0f;
}

static inline __attribute__((always_inline)) void
lt_tile(const enum lt_type type, const int wb, const int ab_bytes, int64_t n, int nrows, int ntok,
        float *s, size_t ss, const void *w, size_t wst, const void *a, size_t ast)
{
    struct ldec dec;
    __m256 acc[LT_TT][LT_R][2];
    /* a short last group's vmulps reads rows past nr (their lanes of sc are never used) */
    memset(dec.f, 0, sizeof dec.f);
    int64_t nb = n / 32;
    for (int t0 = 0; t0 < ntok; t0 += LT_TT) {
        int tn = ntok - t0 < LT_TT ? ntok - t0 : LT_TT;
        const uint8_t *at = (const uint8_t *)a + (size_t)t0 * ast;
        float *st = s + (size_t)t0 * ss;
        for (int r = 0; r < nrows; r += LT_R) {
            const uint8_t *w0 = (const uint8_t *)w + (size_t)r * wst;
#define LT_ROWS(k)                                                                             \
    case k:                                                                                    \
        lt_group(type, wb, ab_bytes, k, nb, tn, st + r, ss, w0, wst, at, ast, &dec, acc);      \
        break;
            switch (nrows - r < LT_R ? nrows - r : LT_R) {
                LT_ROWS(1) LT_ROWS(2) LT_ROWS(3) LT_ROWS(4) LT_ROWS(5) LT_ROWS(6) LT_ROWS(7)
                LT_ROWS(8)
            default: break;
            }
#undef LT_ROWS
        }
    }
}

#define DEF_LTILE(name, TYPE, WB, AB)                                                          \
    static void tile_##name(int64_t n, int nrows, int ntok, float *s, size_t ss,               \
                            const void *w, size_t wst, const void *a, size_t ast)              \
    {                                                                                          \
        lt_tile(TYPE, WB, AB, n, nrows, ntok, s, ss, w, wst, a, ast);                          \
    }

DEF_LTILE(q4_0, LT_Q4_0, DOT_Q4_0_BYTES, DOT_Q8_0_BYTES)
DEF_LTILE(q4_1, LT_Q4_1, DOT_Q4_1_BYTES, DOT_Q8_1_BYTES)
DEF_LTILE(q5_0, LT_Q5_0, DOT_Q5_0_BYTES, DOT_Q8_0_BYTES)
DEF_LTILE(q5_1, LT_Q5_1, DOT_Q5_1_BYTES, DOT_Q8_1_BYTES)
DEF_LTILE(q8_0, LT_Q8_0, DOT_Q8_0_BYTES, DOT_Q8_0_BYTES)
DEF_LTILE(iq4_nl, LT_IQ4_NL, DOT_IQ4_NL_BYTES, DOT_Q8_0_BYTES)

cpu_dot_tile_fn cpu__ltile_avx2(hearth_dtype wtype)
{
    switch (wtype) {
    case HEARTH_DTYPE_Q4_0: return tile_q4_0;
    case HEARTH_DTYPE_Q4_1: return tile_q4_1;
    case HEARTH_DTYPE_Q5_0: return tile_q5_0;
    case HEARTH_DTYPE_Q5_1: return tile_q5_1;
    case HEARTH_DTYPE_Q8_0: return tile_q8_0;
    case HEARTH_DTYPE_IQ4_NL: return tile_iq4_nl;
    default: return NULL;
    }
}
