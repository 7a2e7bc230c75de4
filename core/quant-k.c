/*
 * quant-k: reference dequantizers of the K-quants (Q2_K..Q6_K) and the Q8_K
 * activation format, Q8_K's quantizer, and the K-quant quantizers' packing
 * half: the search for scales, mins and codes lives in quant-k-search.c and
 * returns plain integers, which the from_float routines here pack into the
 * exact bit layouts (each packer is the inverse of the decoder above it).
 *
 * Each routine decodes element e of a 256-element super-block with the index
 * formulas of the facts sheet §3.7-3.13 directly, one element at a time,
 * rather than with the nested loops the packed layout suggests: slower, but
 * each line can be checked against the sheet, which is what a reference is
 * for. Blocks are memcpy'd into local structs (file data is byte-aligned).
 */
#include <math.h>
#include <string.h>

#include "f16.h"
#include "quant-internal.h"

/* 2-bit field of element e in a 64-byte qs (§3.7). */
static inline int field2(const uint8_t *qs, int e)
{
    return (qs[32 * (e / 128) + (e % 32)] >> (2 * ((e % 128) / 32))) & 3;
}

/* 4-bit field of element e in a 128-byte qs (§3.7). */
static inline int field4(const uint8_t *qs, int e)
{
    uint8_t b = qs[32 * (e / 64) + (e % 32)];
    return (e % 64) < 32 ? (b & 15) : (b >> 4);
}

void quant__q2_k_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        struct block_q2_k b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
        for (int e = 0; e < QK_K; e++) {
            uint8_t sc = b.scales[e / 16];
            dst[i * QK_K + e] =
                d * (float)(sc & 15) * (float)field2(b.qs, e) - dmin * (float)(sc >> 4);
        }
    }
}

/* Signed 6-bit scale j (0..15) of a Q3_K block (§3.9). */
static inline int q3k_scale(const uint8_t *s, int j)
{
    int low4 = j < 8 ? (s[j] & 15) : (s[j - 8] >> 4);
    int high2 = (s[8 + (j % 4)] >> (2 * (j / 4))) & 3;
    return (low4 | (high2 << 4)) - 32;
}

void quant__q3_k_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        struct block_q3_k b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d);
        for (int e = 0; e < QK_K; e++) {
            int hbit = (b.hmask[e % 32] >> (e / 32)) & 1;
            int q = field2(b.qs, e) + 4 * hbit - 4;
            dst[i * QK_K + e] = d * (float)q3k_scale(b.scales, e / 16) * (float)q;
        }
    }
}

void quant__q4_k_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        struct block_q4_k b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, mn;
            quant__scale_min_k4(j, b.scales, &sc, &mn);
            float ds = d * (float)sc, dm = dmin * (float)mn;
            for (int e = 32 * j; e < 32 * j + 32; e++)
                dst[i * QK_K + e] = ds * (float)field4(b.qs, e) - dm;
        }
    }
}

void quant__q5_k_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        struct block_q5_k b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, mn;
            quant__scale_min_k4(j, b.scales, &sc, &mn);
            float ds = d * (float)sc, dm = dmin * (float)mn;
            for (int e = 32 * j; e < 32 * j + 32; e++) {
                int q = field4(b.qs, e) + 16 * ((b.qh[e % 32] >> j) & 1);
                dst[i * QK_K + e] = ds * (float)q - dm;
            }
        }
    }
}

void quant__q6_k_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        struct block_q6_k b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d);
        for (int e = 0; e < QK_K; e++) {
            int h = e / 128, r = e % 128, k = r / 32, l = r % 32;
            uint8_t lb = b.ql[64 * h + 32 * (k % 2) + l];
            int low4 = k < 2 ? (lb & 15) : (lb >> 4);
            int high2 = (b.qh[32 * h + l] >> (2 * k)) & 3;
            int q = (low4 | (high2 << 4)) - 32;
            dst[i * QK_K + e] = d * (float)b.scales[e / 16] * (float)q;
        }
    }
}

void quant__q8_k_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        struct block_q8_k b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        for (int e = 0; e < QK_K; e++)
            dst[i * QK_K + e] = b.d * (float)b.qs[e];
    }
}

/*
 * Q8_K (§3.16): the element of largest magnitude keeps its sign and maps to
 * -127 (so d may be negative), codes round half to even and are capped at 127
 * (the opposite extreme can reach +128 otherwise). bsums let K-quant dot
 * products apply the mins without touching the codes.
 */
void quant__q8_k_from_float(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        struct block_q8_k b;
        memset(&b, 0, sizeof b);
        float amax = 0.0f, xmax = 0.0f;
        for (int e = 0; e < QK_K; e++) {
            if (fabsf(x[e]) > amax) {
                amax = fabsf(x[e]);
                xmax = x[e];
            }
        }
        if (amax != 0.0f) {
            float iscale = -127.0f / xmax;
            for (int e = 0; e < QK_K; e++) {
                float v = nearbyintf(iscale * x[e]);
                b.qs[e] = (int8_t)(v > 127.0f ? 127 : (v < -128.0f ? -128 : (int)v));
            }
            for (int g = 0; g < QK_K / 16; g++) {
                int s = 0;
                for (int e = 0; e < 16; e++)
                    s += b.qs[16 * g + e];
                b.bsums[g] = (int16_t)s;
            }
            b.d = 1.0f / iscale;
        }
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}

/* ---- quantizers: quant__kq_search picks scales and codes, these pack them ---- */

static const struct quant_kq_spec spec_q2_k = {QK_K, 16, 4, 0, NULL, true, 0, 15, 15};
static const struct quant_kq_spec spec_q3_k = {QK_K, 16, 8, -4, NULL, false, -32, 31, 0};
static const struct quant_kq_spec spec_q4_k = {QK_K, 32, 16, 0, NULL, true, 0, 63, 63};
static const struct quant_kq_spec spec_q5_k = {QK_K, 32, 32, 0, NULL, true, 0, 63, 63};
static const struct quant_kq_spec spec_q6_k = {QK_K, 16, 64, -32, NULL, false, -128, 127, 0};

/* Stores 2-bit code v of element e into a zeroed 64-byte qs (§3.7). */
static inline void put2(uint8_t *qs, int e, int v)
{
    qs[32 * (e / 128) + (e % 32)] |= (uint8_t)((v & 3) << (2 * ((e % 128) / 32)));
}

/* Stores 4-bit code v of element e into a zeroed 128-byte qs (§3.7). */
static inline void put4(uint8_t *qs, int e, int v)
{
    qs[32 * (e / 64) + (e % 32)] |= (uint8_t)((v & 15) << ((e % 64) < 32 ? 0 : 4));
}

/* Inverse of quant__scale_min_k4: eight 6-bit scales and mins into 12 bytes. */
static void pack_scale_min_k4(const int *sc, const int *mn, uint8_t *s)
{
    for (int k = 0; k < 4; k++) {
        s[k] = (uint8_t)((sc[k] & 63) | ((sc[k + 4] >> 4) << 6));
        s[k + 4] = (uint8_t)((mn[k] & 63) | ((mn[k + 4] >> 4) << 6));
        s[k + 8] = (uint8_t)((sc[k + 4] & 15) | ((mn[k + 4] & 15) << 4));
    }
}

void quant__q2_k_from_float(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        struct quant_kq_result r;
        struct block_q2_k b;
        quant__kq_search(src + i * QK_K, &spec_q2_k, &r);
        memset(&b, 0, sizeof b);
        for (int g = 0; g < 16; g++)
            b.scales[g] = (uint8_t)(r.sc[g] | (r.mn[g] << 4));
        for (int e = 0; e < QK_K; e++)
            put2(b.qs, e, r.q[e]);
        b.d = r.d16;
        b.dmin = r.dmin16;
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}

void quant__q3_k_from_float(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        struct quant_kq_result r;
        struct block_q3_k b;
        quant__kq_search(src + i * QK_K, &spec_q3_k, &r);
        memset(&b, 0, sizeof b);
        for (int j = 0; j < 16; j++) {
            int u = r.sc[j] + 32; /* 0..63 */
            b.scales[j % 8] |= (uint8_t)((u & 15) << (j < 8 ? 0 : 4));
            b.scales[8 + (j % 4)] |= (uint8_t)((u >> 4) << (2 * (j / 4)));
        }
        for (int e = 0; e < QK_K; e++) {
            int code = r.q[e]; /* q + 4: 0..7; the high bit is set for q >= 0 */
            put2(b.qs, e, code & 3);
            b.hmask[e % 32] |= (uint8_t)((code >> 2) << (e / 32));
        }
        b.d = r.d16;
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}

void quant__q4_k_from_float(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        struct quant_kq_result r;
        struct block_q4_k b;
        quant__kq_search(src + i * QK_K, &spec_q4_k, &r);
        memset(&b, 0, sizeof b);
        pack_scale_min_k4(r.sc, r.mn, b.scales);
        for (int e = 0; e < QK_K; e++)
            put4(b.qs, e, r.q[e]);
        b.d = r.d16;
        b.dmin = r.dmin16;
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}

void quant__q5_k_from_float(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        struct quant_kq_result r;
        struct block_q5_k b;
        quant__kq_search(src + i * QK_K, &spec_q5_k, &r);
        memset(&b, 0, sizeof b);
        pack_scale_min_k4(r.sc, r.mn, b.scales);
        for (int e = 0; e < QK_K; e++) {
            put4(b.qs, e, r.q[e] & 15);
            b.qh[e % 32] |= (uint8_t)((r.q[e] >> 4) << (e / 32));
        }
        b.d = r.d16;
        b.dmin = r.dmin16;
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}

void quant__q6_k_from_float(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        struct quant_kq_result r;
        struct block_q6_k b;
        quant__kq_search(src + i * QK_K, &spec_q6_k, &r);
        memset(&b, 0, sizeof b);
        for (int j = 0; j < 16; j++)
            b.scales[j] = (int8_t)r.sc[j];
        for (int e = 0; e < QK_K; e++) {
            int h = e / 128, rr = e % 128, k = rr / 32, l = rr % 32;
            int u = r.q[e]; /* q + 32: 0..63 */
            b.ql[64 * h + 32 * (k % 2) + l] |= (uint8_t)((u & 15) << (k < 2 ? 0 : 4));
            b.qh[32 * h + l] |= (uint8_t)((u >> 4) << (2 * k));
        }
        b.d = r.d16;
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}
