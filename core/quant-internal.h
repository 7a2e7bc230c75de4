/*
 * quant-internal: the packed block layouts of every block format hearth
 * computes with, and the per-type reference routines that core/quant.c puts in
 * its traits table. Shared by the quant-*.c files and the CPU dot products.
 *
 * Every struct mirrors the byte layout of the facts sheet (§3) exactly; the
 * static asserts pin their sizes so a padding surprise cannot slip in. f16
 * fields are uint16_t bit patterns (decode with f16_to_f32). Blocks inside a
 * GGUF mapping are only byte-aligned in general, so code that reads a block
 * straight from a file must memcpy it (or read bytes), never cast the pointer;
 * the structs are for buffers hearth allocates and for offsetof/sizeof.
 */
#ifndef HEARTH_QUANT_INTERNAL_H
#define HEARTH_QUANT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define QK4_NL 32
#define K_SCALE_SIZE 12

/* Q4_0: y[e] = d*(lo(qs[e])-8), y[e+16] = d*(hi(qs[e])-8), e = 0..15. */
struct block_q4_0 {
    uint16_t d;
    uint8_t qs[QK4_0 / 2];
};
/* Q4_1: y = d*n + m, nibble order as Q4_0. */
struct block_q4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qs[QK4_1 / 2];
};
/* Q5_0: 5th bit of element e is bit e of qh read as a LE u32; q = n - 16. */
struct block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
};
/* Q5_1: as Q5_0 but unsigned q (0..31) plus min m. */
struct block_q5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
};
struct block_q8_0 {
    uint16_t d;
    int8_t qs[QK8_0];
};
/* Q8_1: s = d * sum(qs), for the min term of Q4_1/Q5_1 dot products. */
struct block_q8_1 {
    uint16_t d;
    uint16_t s;
    int8_t qs[QK8_1];
};
/* Q2_K: scales[g] low nibble = scale, high nibble = min of 16-element group g. */
struct block_q2_k {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    uint16_t d;
    uint16_t dmin;
};
/* Q3_K: sixteen 6-bit signed (offset 32) scales packed into 12 bytes. */
struct block_q3_k {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
};
/* Q4_K: eight 6-bit scales and mins packed into 12 bytes ("k4" packing). */
struct block_q4_k {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
};
struct block_q5_k {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
struct block_q6_k {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
};
/* Q8_K: f32 scale (may be negative); bsums[g] = sum of qs[16g..16g+15]. */
struct block_q8_k {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};
struct block_iq4_nl {
    uint16_t d;
    uint8_t qs[QK4_NL / 2];
};
/* IQ4_XS: eight 6-bit scales (offset 32): low 4 bits in scales_l, top 2 in scales_h. */
struct block_iq4_xs {
    uint16_t d;
    uint16_t scales_h;
    uint8_t scales_l[QK_K / 64];
    uint8_t qs[QK_K / 2];
};

/*
 * The lattice quants (IQ1/IQ2/IQ3, core/quant-iq2.c; grids in core/iq-grids.h).
 * Sub-block scales s are 4-bit (IQ1: 3-bit) and give the factor 2s + 1.
 * IQ2_XXS: per 32 elements two u32: 4 grid bytes, then 4 x 7 sign bits + s << 28.
 */
struct block_iq2_xxs {
    uint16_t d;
    uint16_t qs[QK_K / 8];
};
/* IQ2_XS: qs = 9-bit grid index | 7 sign bits << 9; one 4-bit scale per 16 elements. */
struct block_iq2_xs {
    uint16_t d;
    uint16_t qs[QK_K / 8];
    uint8_t scales[QK_K / 32];
};
/* IQ2_S: grid index = qs[g] | 2 bits of qh << 8; qs[32..63] are the sign bytes. */
struct block_iq2_s {
    uint16_t d;
    uint8_t qs[QK_K / 4];
    uint8_t qh[QK_K / 32];
    uint8_t scales[QK_K / 32];
};
/* IQ3_XXS: 64 grid bytes (4-element entries), then per 32 elements a u32 as IQ2_XXS's. */
struct block_iq3_xxs {
    uint16_t d;
    uint8_t qs[3 * QK_K / 8];
};
/* IQ3_S: 9-bit grid indexes (qh bit 8), explicit sign bits, one scale per 32 elements. */
struct block_iq3_s {
    uint16_t d;
    uint8_t qs[QK_K / 4];
    uint8_t qh[QK_K / 32];
    uint8_t signs[QK_K / 8];
    uint8_t scales[QK_K / 64];
};
/* IQ1_S: per 32 elements a u16 qh: 4 x 3 index bits, 3-bit scale << 12, delta sign << 15. */
struct block_iq1_s {
    uint16_t d;
    uint8_t qs[QK_K / 8];
    uint16_t qh[QK_K / 32];
};
/* IQ1_M: no d field; the f16 super-scale is the top nibbles of the 4 u16 scale words. */
struct block_iq1_m {
    uint8_t qs[QK_K / 8];
    uint8_t qh[QK_K / 16];
    uint8_t scales[QK_K / 32];
};

_Static_assert(sizeof(struct block_q4_0) == 18, "block_q4_0 size");
_Static_assert(sizeof(struct block_q4_1) == 20, "block_q4_1 size");
_Static_assert(sizeof(struct block_q5_0) == 22, "block_q5_0 size");
_Static_assert(sizeof(struct block_q5_1) == 24, "block_q5_1 size");
_Static_assert(sizeof(struct block_q8_0) == 34, "block_q8_0 size");
_Static_assert(sizeof(struct block_q8_1) == 36, "block_q8_1 size");
_Static_assert(sizeof(struct block_q2_k) == 84, "block_q2_k size");
_Static_assert(sizeof(struct block_q3_k) == 110, "block_q3_k size");
_Static_assert(sizeof(struct block_q4_k) == 144, "block_q4_k size");
_Static_assert(sizeof(struct block_q5_k) == 176, "block_q5_k size");
_Static_assert(sizeof(struct block_q6_k) == 210, "block_q6_k size");
_Static_assert(sizeof(struct block_q8_k) == 292, "block_q8_k size");
_Static_assert(sizeof(struct block_iq4_nl) == 18, "block_iq4_nl size");
_Static_assert(sizeof(struct block_iq4_xs) == 136, "block_iq4_xs size");
_Static_assert(sizeof(struct block_iq2_xxs) == 66, "block_iq2_xxs size");
_Static_assert(sizeof(struct block_iq2_xs) == 74, "block_iq2_xs size");
_Static_assert(sizeof(struct block_iq2_s) == 82, "block_iq2_s size");
_Static_assert(sizeof(struct block_iq3_xxs) == 98, "block_iq3_xxs size");
_Static_assert(sizeof(struct block_iq3_s) == 110, "block_iq3_s size");
_Static_assert(sizeof(struct block_iq1_s) == 50, "block_iq1_s size");
_Static_assert(sizeof(struct block_iq1_m) == 56, "block_iq1_m size");

/*
 * IQ1_M's f16 super-scale: nibble k of it is the top nibble of the u16 scale
 * word k (little-endian, at byte 2k of `scales`, the 8 bytes at block offset 48).
 */
static inline uint16_t quant__iq1_m_d16(const uint8_t scales[8])
{
    return (uint16_t)((scales[1] >> 4) | (scales[3] & 0xF0) | ((scales[5] >> 4) << 8) |
                      ((scales[7] & 0xF0) << 8));
}

static inline void quant__iq1_m_set_d16(uint8_t scales[8], uint16_t d16)
{
    scales[1] = (uint8_t)((scales[1] & 0x0F) | ((d16 & 0x000F) << 4));
    scales[3] = (uint8_t)((scales[3] & 0x0F) | (d16 & 0x00F0));
    scales[5] = (uint8_t)((scales[5] & 0x0F) | ((d16 & 0x0F00) >> 4));
    scales[7] = (uint8_t)((scales[7] & 0x0F) | ((d16 & 0xF000) >> 8));
}


/* The IQ4_NL / IQ4_XS codebook (§3.14), ascending. */
extern const int8_t quant__iq4nl_values[16];

/*
 * Unpacks scale and min of sub-block j (0..7) from the 12-byte Q4_K/Q5_K
 * scales field (§3.10).
 */
static inline void quant__scale_min_k4(int j, const uint8_t *s, uint8_t *sc, uint8_t *mn)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 15) | ((s[j - 4] >> 6) << 4));
        *mn = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/*
 * The scale search shared by the K-quant and IQ4 quantizers (quant-k-search.c).
 *
 * A block of n elements (256, or 32 for IQ4_NL) is cut into sub-blocks of sub
 * elements; element e is reconstructed as
 *     y[e] = d * sc[j] * level(q[e]) - dmin * mn[j]          (j = e / sub)
 * where level(i) = book[i] if book is set, else i + qoff, for code indices
 * q in 0..nlev-1. sc[j] is an integer in smin..smax and mn[j] one in 0..mmax
 * (has_min only). With smax == 0 there are no sub-block scales: one sub-block,
 * sc[0] = 1 and d is the block's scale (IQ4_NL). d and dmin come back already
 * rounded to f16-representable values; d16/dmin16 are their bit patterns.
 */
struct quant_kq_spec {
    int n, sub;
    int nlev, qoff;
    const int8_t *book;
    bool has_min;
    int smin, smax;
    int mmax;
};

struct quant_kq_result {
    float d, dmin;
    uint16_t d16, dmin16;
    int sc[QK_K / 16];
    int mn[QK_K / 16];
    uint8_t q[QK_K];
};

/* Searches scales, mins and codes for x[0..spec->n) (see quant-k-search.c). */
void quant__kq_search(const float *x, const struct quant_kq_spec *spec,
                      struct quant_kq_result *r);

/*
 * Reference routines. src/dst hold n/blck whole blocks; n is a multiple of the
 * block size. The to_float routines accept byte-aligned src.
 */
void quant__f32_to_float(const void *src, float *dst, int64_t n);
void quant__f32_from_float(const float *src, void *dst, int64_t n);
void quant__f16_to_float(const void *src, float *dst, int64_t n);
void quant__f16_from_float(const float *src, void *dst, int64_t n);
void quant__bf16_to_float(const void *src, float *dst, int64_t n);
void quant__bf16_from_float(const float *src, void *dst, int64_t n);

void quant__q4_0_to_float(const void *src, float *dst, int64_t n);
void quant__q4_0_from_float(const float *src, void *dst, int64_t n);
void quant__q4_1_to_float(const void *src, float *dst, int64_t n);
void quant__q4_1_from_float(const float *src, void *dst, int64_t n);
void quant__q5_0_to_float(const void *src, float *dst, int64_t n);
void quant__q5_0_from_float(const float *src, void *dst, int64_t n);
void quant__q5_1_to_float(const void *src, float *dst, int64_t n);
void quant__q5_1_from_float(const float *src, void *dst, int64_t n);
void quant__q8_0_to_float(const void *src, float *dst, int64_t n);
void quant__q8_0_from_float(const float *src, void *dst, int64_t n);
void quant__q8_1_to_float(const void *src, float *dst, int64_t n);
void quant__q8_1_from_float(const float *src, void *dst, int64_t n);

void quant__q2_k_to_float(const void *src, float *dst, int64_t n);
void quant__q2_k_from_float(const float *src, void *dst, int64_t n);
void quant__q3_k_to_float(const void *src, float *dst, int64_t n);
void quant__q3_k_from_float(const float *src, void *dst, int64_t n);
void quant__q4_k_to_float(const void *src, float *dst, int64_t n);
void quant__q4_k_from_float(const float *src, void *dst, int64_t n);
void quant__q5_k_to_float(const void *src, float *dst, int64_t n);
void quant__q5_k_from_float(const float *src, void *dst, int64_t n);
void quant__q6_k_to_float(const void *src, float *dst, int64_t n);
void quant__q6_k_from_float(const float *src, void *dst, int64_t n);
void quant__q8_k_to_float(const void *src, float *dst, int64_t n);
void quant__q8_k_from_float(const float *src, void *dst, int64_t n);

void quant__iq4_nl_to_float(const void *src, float *dst, int64_t n);
void quant__iq4_nl_from_float(const float *src, void *dst, int64_t n);
void quant__iq4_xs_to_float(const void *src, float *dst, int64_t n);
void quant__iq4_xs_from_float(const float *src, void *dst, int64_t n);

/* The lattice quants: dequantization only (hearth does not quantize to them). */
void quant__iq2_xxs_to_float(const void *src, float *dst, int64_t n);
void quant__iq2_xs_to_float(const void *src, float *dst, int64_t n);
void quant__iq2_s_to_float(const void *src, float *dst, int64_t n);
void quant__iq3_xxs_to_float(const void *src, float *dst, int64_t n);
void quant__iq3_s_to_float(const void *src, float *dst, int64_t n);
void quant__iq1_s_to_float(const void *src, float *dst, int64_t n);
void quant__iq1_m_to_float(const void *src, float *dst, int64_t n);

#endif
