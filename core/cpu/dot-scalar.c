/*
 * dot-scalar: the portable dot products and activation quantizers.
 *
 * Every kernel forms the integer dot product of one block exactly as the
 * format intends (facts sheet §3.16): quants times activation quants summed in
 * int32, then the block's scales applied once in float. Min terms of Q4_1/Q5_1
 * use the exact integer sum of the activation codes times Q8_1's d, NOT the
 * reference Q8_1's s field: s is d·Σq rounded to f16, and on the massive
 * activations of real models (|x| ~ 3000 in SmolLM2's FFN) its rounding error
 * times the weight min exceeded the whole 8-bit quantization error of the
 * product (see test-dot's q8_1_outliers). The quantizer stores that exact Σq as
 * an int16 in the s slot (Q8_1S, dot.h), once per activation block, so the
 * kernels read it instead of summing the codes again for every weight row.
 * Those of Q2_K/Q4_K/Q5_K use Q8_K's bsums, and the −32 / −4 offsets of
 * Q6_K/Q3_K are kept inside the integer quant, so the result
 * differs from "dequantize then dot" only by float rounding. These kernels are
 * the reference the SIMD files are tested against, so they favour the plain
 * index formulas of the facts sheet over speed.
 *
 * Blocks are read byte by byte (rows in mapped files are byte-aligned). The
 * activation quantizers reproduce the reference quantizers of core/quant*.c
 * bit for bit: Q8_0/Q8_1 clamp x/d to ±127 and round as trunc(v ± 0.5) (not
 * roundf: the two differ for v = 0.49999997, where v + 0.5 rounds up to 1),
 * Q8_K rounds half to even (rintf) with the signed-max scale.
 */
#include <math.h>

#include "cpu/dot-internal.h"

/* ---- activation quantizers ---------------------------------------------- */

/* The reference's code of one scaled value: clamp to ±127, then trunc(v ± 0.5). */
static inline int8_t q8_code(float v)
{
    v = fminf(fmaxf(v, -127.0f), 127.0f);
    return (int8_t)(v >= 0.0f ? v + 0.5f : v - 0.5f);
}

void cpu__quantize_q8_0_scalar(const float *x, void *y, int64_t n)
{
    uint8_t *out = y;
    for (int64_t i = 0; i < n / 32; i++, x += 32, out += DOT_Q8_0_BYTES) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = f32_to_f16(d);
        memcpy(out, &dh, 2);
        for (int j = 0; j < 32; j++)
            out[2 + j] = (uint8_t)q8_code(x[j] * id);
    }
}

void cpu__quantize_q8_1s_scalar(const float *x, void *y, int64_t n)
{
    uint8_t *out = y;
    for (int64_t i = 0; i < n / 32; i++, x += 32, out += DOT_Q8_1_BYTES) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            int8_t q = q8_code(x[j] * id);
            out[4 + j] = (uint8_t)q;
            sum += q;
        }
        uint16_t dh = f32_to_f16(d);
        int16_t sum16 = (int16_t)sum; /* |sum| <= 32·127 */
        memcpy(out, &dh, 2);
        memcpy(out + DOT_Q8_1S_SUM, &sum16, 2);
    }
}

void cpu__quantize_q8_k_scalar(const float *x, void *y, int64_t n)
{
    uint8_t *out = y;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K, out += DOT_Q8_K_BYTES) {
        float amax = 0.0f, xmax = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                xmax = x[j];
            }
        }
        memset(out, 0, DOT_Q8_K_BYTES);
        if (amax == 0.0f)
            continue;
        float iscale = -127.0f / xmax;
        int8_t *qs = (int8_t *)(out + DOT_Q8_K_QS);
        for (int j = 0; j < QK_K; j++) {
            int v = (int)rintf(iscale * x[j]);
            qs[j] = (int8_t)(v > 127 ? 127 : (v < -128 ? -128 : v));
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int16_t sum = 0;
            for (int j = 0; j < 16; j++)
                sum = (int16_t)(sum + qs[16 * g + j]);
            memcpy(out + DOT_Q8_K_BSUMS + 2 * g, &sum, 2);
        }
        float d = 1.0f / iscale;
        memcpy(out, &d, 4);
    }
}

/* ---- float weights -------------------------------------------------------- */

static void dot_f32(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *x = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += dot__f32(wb + 4 * i) * dot__f32(x + 4 * i);
    *s = sum;
}

static void dot_f16(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *x = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += dot__f16(wb + 2 * i) * dot__f32(x + 4 * i);
    *s = sum;
}

static void dot_bf16(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *x = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, wb + 2 * i, 2);
        sum += bf16_to_f32(h) * dot__f32(x + 4 * i);
    }
    *s = sum;
}

/* ---- 32-element blocks ------------------------------------------------------ */

static void dot_q4_0(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, wb += DOT_Q4_0_BYTES, ab += DOT_Q8_0_BYTES) {
        const uint8_t *qs = wb + 2;
        const int8_t *q8 = (const int8_t *)(ab + 2);
        int32_t isum = 0;
        for (int e = 0; e < 16; e++)
            isum += ((qs[e] & 0x0F) - 8) * q8[e] + ((qs[e] >> 4) - 8) * q8[e + 16];
        sum += dot__f16(wb) * dot__f16(ab) * (float)isum;
    }
    *s = sum;
}

static void dot_q4_1(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, wb += DOT_Q4_1_BYTES, ab += DOT_Q8_1_BYTES) {
        const uint8_t *qs = wb + 4;
        const int8_t *q8 = (const int8_t *)(ab + 4);
        int32_t isum = 0, qsum = dot__i16(ab + DOT_Q8_1S_SUM); /* Σq8, exact (Q8_1S) */
        for (int e = 0; e < 16; e++) {
            isum += (qs[e] & 0x0F) * q8[e] + (qs[e] >> 4) * q8[e + 16];
        }
        float da = dot__f16(ab);
        sum += dot__f16(wb) * da * (float)isum + dot__f16(wb + 2) * da * (float)qsum;
    }
    *s = sum;
}

static void dot_q5_0(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, wb += DOT_Q5_0_BYTES, ab += DOT_Q8_0_BYTES) {
        uint32_t h = dot__u32(wb + 2);
        const uint8_t *qs = wb + 6;
        const int8_t *q8 = (const int8_t *)(ab + 2);
        int32_t isum = 0;
        for (int e = 0; e < 16; e++) {
            int lo = (qs[e] & 0x0F) | (int)(((h >> e) & 1u) << 4);
            int hi = (qs[e] >> 4) | (int)(((h >> (e + 16)) & 1u) << 4);
            isum += (lo - 16) * q8[e] + (hi - 16) * q8[e + 16];
        }
        sum += dot__f16(wb) * dot__f16(ab) * (float)isum;
    }
    *s = sum;
}

static void dot_q5_1(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, wb += DOT_Q5_1_BYTES, ab += DOT_Q8_1_BYTES) {
        uint32_t h = dot__u32(wb + 4);
        const uint8_t *qs = wb + 8;
        const int8_t *q8 = (const int8_t *)(ab + 4);
        int32_t isum = 0, qsum = dot__i16(ab + DOT_Q8_1S_SUM); /* Σq8, exact (Q8_1S) */
        for (int e = 0; e < 16; e++) {
            int lo = (qs[e] & 0x0F) | (int)(((h >> e) & 1u) << 4);
            int hi = (qs[e] >> 4) | (int)(((h >> (e + 16)) & 1u) << 4);
            isum += lo * q8[e] + hi * q8[e + 16];
        }
        float da = dot__f16(ab);
        sum += dot__f16(wb) * da * (float)isum + dot__f16(wb + 2) * da * (float)qsum;
    }
    *s = sum;
}

static void dot_q8_0(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, wb += DOT_Q8_0_BYTES, ab += DOT_Q8_0_BYTES) {
        const int8_t *qw = (const int8_t *)(wb + 2), *q8 = (const int8_t *)(ab + 2);
        int32_t isum = 0;
        for (int e = 0; e < 32; e++)
            isum += qw[e] * q8[e];
        sum += dot__f16(wb) * dot__f16(ab) * (float)isum;
    }
    *s = sum;
}

static void dot_iq4_nl(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    const int8_t *k = quant__iq4nl_values;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / 32; i++, wb += DOT_IQ4_NL_BYTES, ab += DOT_Q8_0_BYTES) {
        const uint8_t *qs = wb + 2;
        const int8_t *q8 = (const int8_t *)(ab + 2);
        int32_t isum = 0;
        for (int e = 0; e < 16; e++)
            isum += k[qs[e] & 0x0F] * q8[e] + k[qs[e] >> 4] * q8[e + 16];
        sum += dot__f16(wb) * dot__f16(ab) * (float)isum;
    }
    *s = sum;
}

/* ---- 256-element super-blocks ------------------------------------------------ */

static void dot_q2_k(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += DOT_Q2_K_BYTES, ab += DOT_Q8_K_BYTES) {
        const uint8_t *sc = wb, *qs = wb + 16;
        const int8_t *q8 = (const int8_t *)(ab + DOT_Q8_K_QS);
        int32_t isum = 0, msum = 0;
        for (int g = 0; g < 16; g++)
            msum += (sc[g] >> 4) * dot__i16(ab + DOT_Q8_K_BSUMS + 2 * g);
        for (int g = 0; g < 16; g++) {
            int32_t gsum = 0;
            for (int e = 16 * g; e < 16 * g + 16; e++) {
                int q = (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
                gsum += q * q8[e];
            }
            isum += (sc[g] & 0x0F) * gsum;
        }
        float da = dot__f32(ab);
        sum += da * dot__f16(wb + 80) * (float)isum - da * dot__f16(wb + 82) * (float)msum;
    }
    *s = sum;
}

static void dot_q3_k(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += DOT_Q3_K_BYTES, ab += DOT_Q8_K_BYTES) {
        const uint8_t *hm = wb, *qs = wb + 32;
        const int8_t *q8 = (const int8_t *)(ab + DOT_Q8_K_QS);
        int8_t sc[16];
        dot__q3_k_scales(wb + 96, sc);
        int32_t isum = 0;
        for (int g = 0; g < 16; g++) {
            int32_t gsum = 0;
            for (int e = 16 * g; e < 16 * g + 16; e++) {
                int low2 = (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
                int hbit = (hm[e % 32] >> (e / 32)) & 1;
                gsum += (low2 + 4 * hbit - 4) * q8[e];
            }
            isum += sc[g] * gsum;
        }
        sum += dot__f32(ab) * dot__f16(wb + 108) * (float)isum;
    }
    *s = sum;
}

static void dot_q4_k(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += DOT_Q4_K_BYTES, ab += DOT_Q8_K_BYTES) {
        const uint8_t *qs = wb + 16;
        const int8_t *q8 = (const int8_t *)(ab + DOT_Q8_K_QS);
        uint8_t sc[8], mn[8];
        dot__k4_scales(wb + 4, sc, mn);
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < 8; j++) {
            msum += mn[j] * (dot__i16(ab + DOT_Q8_K_BSUMS + 4 * j) +
                             dot__i16(ab + DOT_Q8_K_BSUMS + 4 * j + 2));
            const uint8_t *q = qs + 32 * (j / 2);
            int shift = 4 * (j & 1);
            int32_t jsum = 0;
            for (int l = 0; l < 32; l++)
                jsum += ((q[l] >> shift) & 0x0F) * q8[32 * j + l];
            isum += sc[j] * jsum;
        }
        float da = dot__f32(ab);
        sum += da * dot__f16(wb) * (float)isum - da * dot__f16(wb + 2) * (float)msum;
    }
    *s = sum;
}

static void dot_q5_k(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += DOT_Q5_K_BYTES, ab += DOT_Q8_K_BYTES) {
        const uint8_t *qh = wb + 16, *qs = wb + 48;
        const int8_t *q8 = (const int8_t *)(ab + DOT_Q8_K_QS);
        uint8_t sc[8], mn[8];
        dot__k4_scales(wb + 4, sc, mn);
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < 8; j++) {
            msum += mn[j] * (dot__i16(ab + DOT_Q8_K_BSUMS + 4 * j) +
                             dot__i16(ab + DOT_Q8_K_BSUMS + 4 * j + 2));
            const uint8_t *q = qs + 32 * (j / 2);
            int shift = 4 * (j & 1);
            int32_t jsum = 0;
            for (int l = 0; l < 32; l++) {
                int v = ((q[l] >> shift) & 0x0F) | (((qh[l] >> j) & 1) << 4);
                jsum += v * q8[32 * j + l];
            }
            isum += sc[j] * jsum;
        }
        float da = dot__f32(ab);
        sum += da * dot__f16(wb) * (float)isum - da * dot__f16(wb + 2) * (float)msum;
    }
    *s = sum;
}

static void dot_q6_k(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += DOT_Q6_K_BYTES, ab += DOT_Q8_K_BYTES) {
        const uint8_t *ql = wb, *qh = wb + 128;
        const int8_t *sc = (const int8_t *)(wb + 192);
        const int8_t *q8 = (const int8_t *)(ab + DOT_Q8_K_QS);
        int32_t isum = 0;
        for (int g = 0; g < 16; g++) {
            int32_t gsum = 0;
            for (int e = 16 * g; e < 16 * g + 16; e++) {
                int h = e / 128, k = (e % 128) / 32, l = e % 32;
                uint8_t lb = ql[64 * h + 32 * (k % 2) + l];
                int low4 = k < 2 ? (lb & 0x0F) : (lb >> 4);
                int high2 = (qh[32 * h + l] >> (2 * k)) & 3;
                gsum += ((low4 | (high2 << 4)) - 32) * q8[e];
            }
            isum += sc[g] * gsum;
        }
        sum += dot__f32(ab) * dot__f16(wb + 208) * (float)isum;
    }
    *s = sum;
}

static void dot_iq4_xs(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *wb = w, *ab = a;
    const int8_t *k = quant__iq4nl_values;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++, wb += DOT_IQ4_XS_BYTES, ab += DOT_Q8_K_BYTES) {
        const uint8_t *qs = wb + 8;
        const int8_t *q8 = (const int8_t *)(ab + DOT_Q8_K_QS);
        int8_t ls[8];
        dot__iq4_xs_scales(wb, ls);
        int32_t isum = 0;
        for (int ib = 0; ib < 8; ib++) {
            int32_t bsum = 0;
            for (int e = 0; e < 16; e++)
                bsum += k[qs[16 * ib + e] & 0x0F] * q8[32 * ib + e] +
                        k[qs[16 * ib + e] >> 4] * q8[32 * ib + e + 16];
            isum += ls[ib] * bsum;
        }
        sum += dot__f32(ab) * dot__f16(wb) * (float)isum;
    }
    *s = sum;
}

DOT_ROWS_LOOP(rows_f32, dot_f32)
DOT_ROWS_LOOP(rows_f16, dot_f16)
DOT_ROWS_LOOP(rows_bf16, dot_bf16)
DOT_ROWS_LOOP(rows_q4_0, dot_q4_0)
DOT_ROWS_LOOP(rows_q4_1, dot_q4_1)
DOT_ROWS_LOOP(rows_q5_0, dot_q5_0)
DOT_ROWS_LOOP(rows_q5_1, dot_q5_1)
DOT_ROWS_LOOP(rows_q8_0, dot_q8_0)
DOT_ROWS_LOOP(rows_iq4_nl, dot_iq4_nl)
DOT_ROWS_LOOP(rows_q2_k, dot_q2_k)
DOT_ROWS_LOOP(rows_q3_k, dot_q3_k)
DOT_ROWS_LOOP(rows_q4_k, dot_q4_k)
DOT_ROWS_LOOP(rows_q5_k, dot_q5_k)
DOT_ROWS_LOOP(rows_q6_k, dot_q6_k)
DOT_ROWS_LOOP(rows_iq4_xs, dot_iq4_xs)
DOT_TILE_LOOP(tile_f32, dot_f32)
DOT_TILE_LOOP(tile_f16, dot_f16)
DOT_TILE_LOOP(tile_bf16, dot_bf16)
DOT_TILE_LOOP(tile_q4_0, dot_q4_0)
DOT_TILE_LOOP(tile_q4_1, dot_q4_1)
DOT_TILE_LOOP(tile_q5_0, dot_q5_0)
DOT_TILE_LOOP(tile_q5_1, dot_q5_1)
DOT_TILE_LOOP(tile_q8_0, dot_q8_0)
DOT_TILE_LOOP(tile_iq4_nl, dot_iq4_nl)
DOT_TILE_LOOP(tile_q2_k, dot_q2_k)
DOT_TILE_LOOP(tile_q3_k, dot_q3_k)
DOT_TILE_LOOP(tile_q4_k, dot_q4_k)
DOT_TILE_LOOP(tile_q5_k, dot_q5_k)
DOT_TILE_LOOP(tile_q6_k, dot_q6_k)
DOT_TILE_LOOP(tile_iq4_xs, dot_iq4_xs)

bool cpu__kernels_scalar(hearth_dtype wtype, struct cpu__kernel_set *out)
{
    cpu_quantize_fn q80 = cpu__quantize_q8_0_scalar, q81 = cpu__quantize_q8_1s_scalar;
    cpu_quantize_fn q8k = cpu__quantize_q8_k_scalar;
    struct cpu__kernel_set k;
#define KSET(q, name) (struct cpu__kernel_set){q, dot_##name, rows_##name, tile_##name}
    switch (wtype) {
    case HEARTH_DTYPE_F32: k = KSET(NULL, f32); break;
    case HEARTH_DTYPE_F16: k = KSET(NULL, f16); break;
    case HEARTH_DTYPE_BF16: k = KSET(NULL, bf16); break;
    case HEARTH_DTYPE_Q4_0: k = KSET(q80, q4_0); break;
    case HEARTH_DTYPE_Q4_1: k = KSET(q81, q4_1); break;
    case HEARTH_DTYPE_Q5_0: k = KSET(q80, q5_0); break;
    case HEARTH_DTYPE_Q5_1: k = KSET(q81, q5_1); break;
    case HEARTH_DTYPE_Q8_0: k = KSET(q80, q8_0); break;
    case HEARTH_DTYPE_IQ4_NL: k = KSET(q80, iq4_nl); break;
    case HEARTH_DTYPE_Q2_K: k = KSET(q8k, q2_k); break;
    case HEARTH_DTYPE_Q3_K: k = KSET(q8k, q3_k); break;
    case HEARTH_DTYPE_Q4_K: k = KSET(q8k, q4_k); break;
    case HEARTH_DTYPE_Q5_K: k = KSET(q8k, q5_k); break;
    case HEARTH_DTYPE_Q6_K: k = KSET(q8k, q6_k); break;
    case HEARTH_DTYPE_IQ4_XS: k = KSET(q8k, iq4_xs); break;
    case HEARTH_DTYPE_IQ2_XXS:
    case HEARTH_DTYPE_IQ2_XS:
    case HEARTH_DTYPE_IQ2_S:
    case HEARTH_DTYPE_IQ3_XXS:
    case HEARTH_DTYPE_IQ3_S:
    case HEARTH_DTYPE_IQ1_S:
    case HEARTH_DTYPE_IQ1_M: return cpu__kernels_iq_scalar(wtype, out);
    default: return false;
    }
#undef KSET
    *out = k;
    return true;
}
