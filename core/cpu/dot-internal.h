/*
 * dot-internal: what the per-ISA kernel files (dot-scalar.c, dot-avx2.c,
 * dot-avx512.c) share with the dispatcher (dot.c).
 *
 * Each ISA file exports one lookup function that fills a kernel set for a
 * weight type or says it has none; dot.c walks the ISAs downward from the one
 * asked for, so a type without (say) an AVX-512 kernel silently gets the AVX2
 * one. The lookups only hand out pointers: calling them never executes an
 * instruction of that ISA, so dot.c may call all of them on any CPU.
 *
 * Blocks are addressed by byte offset (the constants below, checked against
 * core/quant-internal.h's structs) and f16 fields are read with memcpy, because
 * rows inside a mapped GGUF file are only byte-aligned. The scalar kernels are
 * exported so that SIMD files can finish odd tails with them.
 */
#ifndef HEARTH_CPU_DOT_INTERNAL_H
#define HEARTH_CPU_DOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cpu/dot.h"
#include "f16.h"
#include "quant-internal.h"

/* Block byte sizes and field offsets (facts sheet §3). */
enum {
    DOT_Q4_0_BYTES = 18, DOT_Q4_1_BYTES = 20, DOT_Q5_0_BYTES = 22, DOT_Q5_1_BYTES = 24,
    DOT_Q8_0_BYTES = 34, DOT_Q8_1_BYTES = 36, DOT_IQ4_NL_BYTES = 18,
    DOT_Q2_K_BYTES = 84, DOT_Q3_K_BYTES = 110, DOT_Q4_K_BYTES = 144, DOT_Q5_K_BYTES = 176,
    DOT_Q6_K_BYTES = 210, DOT_Q8_K_BYTES = 292, DOT_IQ4_XS_BYTES = 136,
    /* Q8_K: d f32 @0, qs[256] @4, bsums i16[16] @260 */
    DOT_Q8_K_QS = 4, DOT_Q8_K_BSUMS = 260,
};

_Static_assert(sizeof(struct block_q8_k) == DOT_Q8_K_BYTES, "Q8_K size");
_Static_assert(offsetof(struct block_q8_k, bsums) == DOT_Q8_K_BSUMS, "Q8_K bsums offset");
_Static_assert(offsetof(struct block_q6_k, d) == 208, "Q6_K d offset");
_Static_assert(offsetof(struct block_q5_k, qs) == 48, "Q5_K qs offset");
_Static_assert(offsetof(struct block_iq4_xs, qs) == 8, "IQ4_XS qs offset");

static inline float dot__f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return f16_to_f32(h);
}

static inline float dot__f32(const uint8_t *p)
{
    float f;
    memcpy(&f, p, 4);
    return f;
}

static inline uint32_t dot__u32(const uint8_t *p)
{
    uint32_t u;
    memcpy(&u, p, 4);
    return u;
}

static inline int16_t dot__i16(const uint8_t *p)
{
    int16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* The 16 signed 6-bit Q3_K scales (−32..31) of the 12-byte field s (§3.9). */
static inline void dot__q3_k_scales(const uint8_t *s, int8_t out[16])
{
    for (int j = 0; j < 16; j++) {
        int low4 = j < 8 ? (s[j] & 0x0F) : (s[j - 8] >> 4);
        int high2 = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
        out[j] = (int8_t)((low4 | (high2 << 4)) - 32);
    }
}

/* The 8 IQ4_XS sub-block scales ls − 32 (−32..31) of one block (§3.15). */
static inline void dot__iq4_xs_scales(const uint8_t *blk, int8_t out[8])
{
    uint16_t sh;
    memcpy(&sh, blk + 2, 2);
    for (int ib = 0; ib < 8; ib++) {
        int ls = ((blk[4 + ib / 2] >> (4 * (ib & 1))) & 15) | (((sh >> (2 * ib)) & 3) << 4);
        out[ib] = (int8_t)(ls - 32);
    }
}

/* Q4_K/Q5_K scales and mins of all 8 sub-blocks (§3.10). */
static inline void dot__k4_scales(const uint8_t *s, uint8_t sc[8], uint8_t mn[8])
{
    for (int j = 0; j < 8; j++)
        quant__scale_min_k4(j, s, &sc[j], &mn[j]);
}

/* What one ISA offers for one weight type. */
struct cpu__kernel_set {
    cpu_quantize_fn quantize; /* NULL: use the next lower ISA's (or none for float types) */
    cpu_dot_fn dot;
    cpu_dot_rows_fn dot_rows; /* NULL: a loop over dot */
    cpu_dot_tile_fn dot_tile; /* must be set wherever dot is (pairs with this dot) */
};

/* Each returns false if that ISA has no kernel for wtype. Pure lookups, run on any CPU. */
bool cpu__kernels_scalar(hearth_dtype wtype, struct cpu__kernel_set *out);
bool cpu__kernels_avx2(hearth_dtype wtype, struct cpu__kernel_set *out);
bool cpu__kernels_avx512(hearth_dtype wtype, bool vnni, struct cpu__kernel_set *out);
/*
 * The IQ1/IQ2/IQ3 lattice types (dot-iq-scalar.c, dot-iq-avx2.c), to which the
 * two lookups above hand those types on; same contract.
 */
bool cpu__kernels_iq_scalar(hearth_dtype wtype, struct cpu__kernel_set *out);
bool cpu__kernels_iq_avx2(hearth_dtype wtype, struct cpu__kernel_set *out);
/*
 * The decode-once AVX2 dot_tile of Q2_K..Q6_K (dot-ktile-avx2.c), bit-exact with
 * dot-avx2.c's dot of that type; NULL for other types. A pure lookup.
 */
cpu_dot_tile_fn cpu__ktile_avx2(hearth_dtype wtype);
/*
 * The decode-once AVX2 dot_tile of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and IQ4_NL
 * (dot-ltile-avx2.c), bit-exact with dot-avx2.c's dot of that type; NULL for
 * other types. A pure lookup.
 */
cpu_dot_tile_fn cpu__ltile_avx2(hearth_dtype wtype);
/*
 * The body of cpu__kernels_iq_<isa>: routes the seven lattice types to the
 * file's static dot_<t>, rows_<t>, tile_<t> with activation quantizer Q8K.
 */
#define CPU_IQ_KSET_CASE(T, t, OUT, Q8K)                                                          \
    case HEARTH_DTYPE_##T:                                                                         \
        *(OUT) = (struct cpu__kernel_set){Q8K, dot_##t, rows_##t, tile_##t};                       \
        return true;
#define CPU_IQ_KERNEL_SWITCH(WTYPE, OUT, Q8K)                                                      \
    do {                                                                                           \
        switch (WTYPE) {                                                                           \
            CPU_IQ_KSET_CASE(IQ2_XXS, iq2_xxs, OUT, Q8K)                                           \
            CPU_IQ_KSET_CASE(IQ2_XS, iq2_xs, OUT, Q8K)                                             \
            CPU_IQ_KSET_CASE(IQ2_S, iq2_s, OUT, Q8K)                                               \
            CPU_IQ_KSET_CASE(IQ3_XXS, iq3_xxs, OUT, Q8K)                                           \
            CPU_IQ_KSET_CASE(IQ3_S, iq3_s, OUT, Q8K)                                               \
            CPU_IQ_KSET_CASE(IQ1_S, iq1_s, OUT, Q8K)                                               \
            CPU_IQ_KSET_CASE(IQ1_M, iq1_m, OUT, Q8K)                                               \
        default:                                                                                   \
            return false;                                                                          \
        }                                                                                          \
    } while (0)
enum {
    DOT_IQ2_XXS_BYTES = 66, DOT_IQ2_XS_BYTES = 74, DOT_IQ2_S_BYTES = 82,
    DOT_IQ3_XXS_BYTES = 98, DOT_IQ3_S_BYTES = 110, DOT_IQ1_S_BYTES = 50, DOT_IQ1_M_BYTES = 56,
};

/*
 * Scalar activation quantizers (bit-exact with the reference from_float; the
 * q8_1s one with the exact int16 code sum in s instead, see dot.h's Q8_1S).
 */
void cpu__quantize_q8_0_scalar(const float *x, void *y, int64_t n);
void cpu__quantize_q8_1s_scalar(const float *x, void *y, int64_t n);
void cpu__quantize_q8_k_scalar(const float *x, void *y, int64_t n);
/* AVX2 activation quantizers (only where AVX2 is supported), bit-exact with the scalar ones. */
void cpu__quantize_q8_0_avx2(const float *x, void *y, int64_t n);
void cpu__quantize_q8_1s_avx2(const float *x, void *y, int64_t n);
void cpu__quantize_q8_k_avx2(const float *x, void *y, int64_t n);

/* Q8_1S: byte offset of the int16 code sum Σqs that replaces Q8_1's f16 s. */
enum { DOT_Q8_1S_SUM = 2 };

/* Defines a static dot_rows `name` for a kernel that has no multi-row version. */
#define DOT_ROWS_LOOP(name, dot)                                                       \
    static void name(int64_t n, int nrows, float *s, const void *w, size_t w_stride,   \
                     const void *a)                                                    \
    {                                                                                  \
        for (int r = 0; r < nrows; r++)                                                \
            dot(n, s + r, (const uint8_t *)w + (size_t)r * w_stride, a);               \
    }

/* Defines a static dot_tile `name` as a loop over dot (the reference semantics). */
#define DOT_TILE_LOOP(name, dot)                                                       \
    static void name(int64_t n, int nrows, int ntok, float *s, size_t s_stride,        \
                     const void *w, size_t w_stride, const void *a, size_t a_stride)   \
    {                                                                                  \
        for (int t = 0; t < ntok; t++)                                                 \
            for (int r = 0; r < nrows; r++)                                            \
                dot(n, s + (size_t)t * s_stride + r,                                   \
                    (const uint8_t *)w + (size_t)r * w_stride,                         \
                    (const uint8_t *)a + (size_t)t * a_stride);                        \
    }

#endif
