/*
 * quant-legacy: the 32-element formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.
 *
 * Dequantizers copy each block into a local struct with memcpy (file blocks
 * are only byte-aligned) and follow §3.1-3.6 of the facts sheet.
 *
 * Quantizers use the standard one-pass scale rules, not a search: these
 * formats are also the activation formats of the dot products, where speed
 * and a rule the SIMD paths can reproduce matter more than the last bit of
 * accuracy. Symmetric types take the element of largest magnitude *with its
 * sign* and map it to the most negative code (-8 for Q4_0, -16 for Q5_0), which
 * uses the one extra negative level; Q8_0/Q8_1 map max|x| to 127. Min types
 * map [min, max] onto [0, 2^b - 1]. Codes are rounded to nearest (half away
 * from zero) and clamped. A zero block gives d = 0 and all-zero codes: the
 * inverse scale is taken as 0 then, never 1/0.
 */
#include <math.h>
#include <string.h>

#include "f16.h"
#include "quant-internal.h"

/* Nearest integer, half away from zero, for |x| well inside int range (callers clamp). */
static inline int q_round(float x)
{
    return (int)(x >= 0.0f ? x + 0.5f : x - 0.5f);
}

static inline int q_clamp(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* Element of largest magnitude, keeping its sign (first on ties). */
static float signed_absmax(const float *x, int n)
{
    float amax = 0.0f, m = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            m = x[i];
        }
    }
    return m;
}

static void min_max(const float *x, int n, float *mn, float *mx)
{
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    *mn = lo;
    *mx = hi;
}

/* Packs 32 4-bit codes in Q4_0 order: element e low nibble, e+16 high nibble of qs[e]. */
static void pack_nibbles(const uint8_t *q, uint8_t *qs)
{
    for (int e = 0; e < 16; e++)
        qs[e] = (uint8_t)((q[e] & 15) | ((q[e + 16] & 15) << 4));
}

/* The 5th bits of 32 codes as the LE u32 qh field. */
static void pack_high_bits(const uint8_t *q, uint8_t *qh)
{
    uint32_t h = 0;
    for (int e = 0; e < 32; e++)
        h |= (uint32_t)((q[e] >> 4) & 1) << e;
    for (int k = 0; k < 4; k++)
        qh[k] = (uint8_t)(h >> (8 * k));
}

static inline int nibble(const uint8_t *qs, int e)
{
    return e < 16 ? (qs[e] & 15) : (qs[e - 16] >> 4);
}

static inline uint32_t read_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

void quant__q4_0_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        struct block_q4_0 b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d);
        for (int e = 0; e < 32; e++)
            dst[i * 32 + e] = d * (float)(nibble(b.qs, e) - 8);
    }
}

void quant__q4_0_from_float(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float *x = src + i * 32;
        float d = signed_absmax(x, 32) / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[32];
        for (int e = 0; e < 32; e++)
            q[e] = (uint8_t)q_clamp(q_round(fminf(fmaxf(x[e] * id, -8.0f), 7.0f)) + 8, 0, 15);
        struct block_q4_0 b;
        b.d = f32_to_f16(d);
        pack_nibbles(q, b.qs);
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}

void quant__q4_1_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        struct block_q4_1 b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
        for (int e = 0; e < 32; e++)
            dst[i * 32 + e] = d * (float)nibble(b.qs, e) + m;
    }
}

void quant__q4_1_from_float(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        const float *x = src + i * 32;
        float mn, mx;
        min_max(x, 32, &mn, &mx);
        float d = (mx - mn) / 15.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[32];
        for (int e = 0; e < 32; e++)
            q[e] = (uint8_t)q_round(fminf(fmaxf((x[e] - mn) * id, 0.0f), 15.0f));
        struct block_q4_1 b;
        b.d = f32_to_f16(d);
        b.m = f32_to_f16(mn);
        pack_nibbles(q, b.qs);
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}

void quant__q5_0_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        struct block_q5_0 b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d);
        uint32_t h = read_u32le(b.qh);
        for (int e = 0; e < 32; e++) {
            int q = nibble(b.qs, e) + 16 * (int)((h >> e) & 1) - 16;
            dst[i * 32 + e] = d * (float)q;
        }
    }
}

void quant__q5_0_from_float(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        const float *x = src + i * 32;
        float d = signed_absmax(x, 32) / -16.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[32];
        for (int e = 0; e < 32; e++)
            q[e] = (uint8_t)q_clamp(q_round(fminf(fmaxf(x[e] * id, -16.0f), 15.0f)) + 16, 0,
                                    31);
        struct block_q5_0 b;
        b.d = f32_to_f16(d);
        pack_high_bits(q, b.qh);
        pack_nibbles(q, b.qs);
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}

void quant__q5_1_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        struct block_q5_1 b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
        uint32_t h = read_u32le(b.qh);
        for (int e = 0; e < 32; e++) {
            int q = nibble(b.qs, e) + 16 * (int)((h >> e) & 1);
            dst[i * 32 + e] = d * (float)q + m;
        }
    }
}

void quant__q5_1_from_float(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        const float *x = src + i * 32;
        float mn, mx;
        min_max(x, 32, &mn, &mx);
        float d = (mx - mn) / 31.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[32];
        for (int e = 0; e < 32; e++)
            q[e] = (uint8_t)q_round(fminf(fmaxf((x[e] - mn) * id, 0.0f), 31.0f));
        struct block_q5_1 b;
        b.d = f32_to_f16(d);
        b.m = f32_to_f16(mn);
        pack_high_bits(q, b.qh);
        pack_nibbles(q, b.qs);
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}

void quant__q8_0_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        struct block_q8_0 b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d);
        for (int e = 0; e < 32; e++)
            dst[i * 32 + e] = d * (float)b.qs[e];
    }
}

/* Codes of one 32-element block at scale amax/127; returns that float scale. */
static float q8_codes(const float *x, int8_t *qs)
{
    float amax = 0.0f;
    for (int e = 0; e < 32; e++)
        amax = fmaxf(amax, fabsf(x[e]));
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int e = 0; e < 32; e++)
        qs[e] = (int8_t)q_round(fminf(fmaxf(x[e] * id, -127.0f), 127.0f));
    return d;
}

void quant__q8_0_from_float(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        struct block_q8_0 b;
        b.d = f32_to_f16(q8_codes(src + i * 32, b.qs));
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}

void quant__q8_1_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        struct block_q8_1 b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d);
        for (int e = 0; e < 32; e++)
            dst[i * 32 + e] = d * (float)b.qs[e];
    }
}

void quant__q8_1_from_float(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        struct block_q8_1 b;
        float d = q8_codes(src + i * 32, b.qs);
        int sum = 0;
        for (int e = 0; e < 32; e++)
            sum += b.qs[e];
        b.d = f32_to_f16(d);
        b.s = f32_to_f16(d * (float)sum);
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}
