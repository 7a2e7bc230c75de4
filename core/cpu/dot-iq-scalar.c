/*
 * dot-iq-scalar: reference dot products of one IQ1/IQ2/IQ3 weight row
 * (core/quant-iq2.c has the formats) with Q8_K activations.
 *
 * Every weight is an integer times a per-block float: the IQ2/IQ3 grid
 * magnitudes with their signs, times 2s + 1 per sub-block; IQ1's grid value
 * plus delta +-1/8 is (8g +- 1) / 8. So each super-block's dot is one exact
 * int32 sum (bounded by 8 sub-blocks * 31 * 32 * 62 * 127 < 2^31) times
 * d_w * d_a * c with c = 1/8 (IQ2, IQ1), 1/4 (IQ3_XXS) or 1 (IQ3_S); the
 * only rounding is the per-block float product and the running sum, which
 * the AVX2 kernels (dot-iq-avx2.c) reproduce up to summation order.
 * Rejected: converting weights to float per element (the to_float path),
 * which rounds every product and is several times slower.
 *
 * Q8_K blocks: d f32 at 0, qs int8[256] at 4 (bsums are not needed: IQ1's
 * delta is folded into the integer weight, per group of 8).
 */
#include "cpu/dot-internal.h"
#include "iq-grids.h"

/* sum_j sign_j * mag_j * q8[j] over 8 elements: mags in bytes of e, sign bit j of signs. */
static inline int32_t dot8_signed(uint64_t e, uint32_t signs, const int8_t *q8)
{
    int32_t s = 0;
    for (int j = 0; j < 8; j++) {
        int32_t v = (int32_t)(uint8_t)(e >> (8 * j)) * q8[j];
        s += (signs >> j) & 1 ? -v : v;
    }
    return s;
}

/* sum_j (8 g_j + delta) * q8[j]: g int8 -1/0/+1 in the bytes of e, delta +-1. */
static inline int32_t dot8_iq1(uint64_t e, int delta, const int8_t *q8)
{
    int32_t s = 0;
    for (int j = 0; j < 8; j++)
        s += (8 * (int32_t)(int8_t)(uint8_t)(e >> (8 * j)) + delta) * q8[j];
    return s;
}

static inline uint64_t join4(uint32_t lo, uint32_t hi)
{
    return (uint64_t)lo | ((uint64_t)hi << 32);
}

static inline const int8_t *q8_of(const uint8_t *ab)
{
    return (const int8_t *)(ab + DOT_Q8_K_QS);
}

static void dot_iq2_xxs(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += DOT_IQ2_XXS_BYTES, ab += DOT_Q8_K_BYTES) {
        const int8_t *q8 = q8_of(ab);
        int32_t isum = 0;
        for (int ib = 0; ib < 8; ib++) {
            uint32_t idx = dot__u32(wb + 2 + 8 * ib), aux = dot__u32(wb + 6 + 8 * ib);
            int32_t bs = 0;
            for (int l = 0; l < 4; l++)
                bs += dot8_signed(quant__iq2xxs_grid[(idx >> (8 * l)) & 255],
                                  quant__iq_ksign(aux, 7 * l), q8 + 32 * ib + 8 * l);
            isum += (int32_t)(2 * (aux >> 28) + 1) * bs;
        }
        sum += dot__f32(ab) * dot__f16(wb) * 0.125f * (float)isum;
    }
    *s = sum;
}

static void dot_iq2_xs(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += DOT_IQ2_XS_BYTES, ab += DOT_Q8_K_BYTES) {
        const int8_t *q8 = q8_of(ab);
        int32_t isum = 0;
        for (int h = 0; h < 16; h++) {
            int32_t bs = 0;
            for (int l = 0; l < 2; l++) {
                uint32_t qv = (uint32_t)dot__i16(wb + 2 + 2 * (2 * h + l)) & 0xFFFF;
                bs += dot8_signed(quant__iq2xs_grid[qv & 511], quant__iq_ksign(qv, 9),
                                  q8 + 16 * h + 8 * l);
            }
            int sc = (wb[66 + h / 2] >> (4 * (h & 1))) & 15;
            isum += (2 * sc + 1) * bs;
        }
        sum += dot__f32(ab) * dot__f16(wb) * 0.125f * (float)isum;
    }
    *s = sum;
}

static void dot_iq2_s(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += DOT_IQ2_S_BYTES, ab += DOT_Q8_K_BYTES) {
        const int8_t *q8 = q8_of(ab);
        const uint8_t *qs = wb + 2, *sg = wb + 34, *qh = wb + 66;
        int32_t isum = 0;
        for (int h = 0; h < 16; h++) {
            int32_t bs = 0;
            for (int l = 0; l < 2; l++) {
                int g = 2 * h + l;
                int idx = qs[g] | (((qh[g / 4] >> (2 * (g % 4))) & 3) << 8);
                bs += dot8_signed(quant__iq2s_grid[idx], sg[g], q8 + 8 * g);
            }
            int sc = (wb[74 + h / 2] >> (4 * (h & 1))) & 15;
            isum += (2 * sc + 1) * bs;
        }
        sum += dot__f32(ab) * dot__f16(wb) * 0.125f * (float)isum;
    }
    *s = sum;
}

static void dot_iq3_xxs(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += DOT_IQ3_XXS_BYTES, ab += DOT_Q8_K_BYTES) {
        const int8_t *q8 = q8_of(ab);
        const uint8_t *qs = wb + 2;
        int32_t isum = 0;
        for (int ib = 0; ib < 8; ib++) {
            uint32_t aux = dot__u32(wb + 66 + 4 * ib);
            int32_t bs = 0;
            for (int l = 0; l < 4; l++) {
                const uint8_t *q = qs + 8 * ib + 2 * l;
                bs += dot8_signed(join4(quant__iq3xxs_grid[q[0]], quant__iq3xxs_grid[q[1]]),
                                  quant__iq_ksign(aux, 7 * l), q8 + 32 * ib + 8 * l);
            }
            isum += (int32_t)(2 * (aux >> 28) + 1) * bs;
        }
        sum += dot__f32(ab) * dot__f16(wb) * 0.25f * (float)isum;
    }
    *s = sum;
}

static void dot_iq3_s(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += DOT_IQ3_S_BYTES, ab += DOT_Q8_K_BYTES) {
        const int8_t *q8 = q8_of(ab);
        const uint8_t *qs = wb + 2, *qh = wb + 66, *sg = wb + 74;
        int32_t isum = 0;
        for (int ib = 0; ib < 8; ib++) {
            int32_t bs = 0;
            for (int l = 0; l < 4; l++) {
                int g = 4 * ib + l, k0 = 2 * g, k1 = 2 * g + 1;
                int i0 = qs[k0] | (((qh[ib] >> (k0 % 8)) & 1) << 8);
                int i1 = qs[k1] | (((qh[ib] >> (k1 % 8)) & 1) << 8);
                bs += dot8_signed(join4(quant__iq3s_grid[i0], quant__iq3s_grid[i1]), sg[g],
                                  q8 + 8 * g);
            }
            int sc = (wb[106 + ib / 2] >> (4 * (ib & 1))) & 15;
            isum += (2 * sc + 1) * bs;
        }
        sum += dot__f32(ab) * dot__f16(wb) * (float)isum;
    }
    *s = sum;
}

static void dot_iq1_s(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += DOT_IQ1_S_BYTES, ab += DOT_Q8_K_BYTES) {
        const int8_t *q8 = q8_of(ab);
        int32_t isum = 0;
        for (int ib = 0; ib < 8; ib++) {
            uint32_t qh = (uint32_t)dot__i16(wb + 34 + 2 * ib) & 0xFFFF;
            int delta = qh & 0x8000 ? -1 : 1;
            int32_t bs = 0;
            for (int l = 0; l < 4; l++) {
                uint32_t idx = wb[2 + 4 * ib + l] | (((qh >> (3 * l)) & 7) << 8);
                bs += dot8_iq1(quant__iq1s_grid[idx], delta, q8 + 32 * ib + 8 * l);
            }
            isum += (int32_t)(2 * ((qh >> 12) & 7) + 1) * bs;
        }
        sum += dot__f32(ab) * dot__f16(wb) * 0.125f * (float)isum;
    }
    *s = sum;
}

static void dot_iq1_m(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += DOT_IQ1_M_BYTES, ab += DOT_Q8_K_BYTES) {
        const int8_t *q8 = q8_of(ab);
        const uint8_t *sc = wb + 48;
        int32_t isum = 0;
        for (int m = 0; m < 16; m++) {
            uint32_t word = sc[2 * (m / 4)] | ((uint32_t)sc[2 * (m / 4) + 1] << 8);
            int32_t bs = 0;
            for (int l = 0; l < 2; l++) {
                int g = 2 * m + l;
                uint32_t nib = (wb[32 + g / 2] >> (4 * (g % 2))) & 15;
                uint32_t idx = wb[g] | ((nib & 7) << 8);
                bs += dot8_iq1(quant__iq1s_grid[idx], nib & 8 ? -1 : 1, q8 + 8 * g);
            }
            isum += (int32_t)(2 * ((word >> (3 * (m % 4))) & 7) + 1) * bs;
        }
        sum += dot__f32(ab) * f16_to_f32(quant__iq1_m_d16(sc)) * 0.125f * (float)isum;
    }
    *s = sum;
}

DOT_ROWS_LOOP(rows_iq2_xxs, dot_iq2_xxs)
DOT_ROWS_LOOP(rows_iq2_xs, dot_iq2_xs)
DOT_ROWS_LOOP(rows_iq2_s, dot_iq2_s)
DOT_ROWS_LOOP(rows_iq3_xxs, dot_iq3_xxs)
DOT_ROWS_LOOP(rows_iq3_s, dot_iq3_s)
DOT_ROWS_LOOP(rows_iq1_s, dot_iq1_s)
DOT_ROWS_LOOP(rows_iq1_m, dot_iq1_m)
DOT_TILE_LOOP(tile_iq2_xxs, dot_iq2_xxs)
DOT_TILE_LOOP(tile_iq2_xs, dot_iq2_xs)
DOT_TILE_LOOP(tile_iq2_s, dot_iq2_s)
DOT_TILE_LOOP(tile_iq3_xxs, dot_iq3_xxs)
DOT_TILE_LOOP(tile_iq3_s, dot_iq3_s)
DOT_TILE_LOOP(tile_iq1_s, dot_iq1_s)
DOT_TILE_LOOP(tile_iq1_m, dot_iq1_m)

bool cpu__kernels_iq_scalar(hearth_dtype wtype, struct cpu__kernel_set *out)
{
    CPU_IQ_KERNEL_SWITCH(wtype, out, cpu__quantize_q8_k_scalar);
}
