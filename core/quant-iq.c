/*
 * quant-iq: IQ4_NL (32-element blocks, one f16 scale) and IQ4_XS (256-element
 * super-blocks, 6-bit sub-block scales), both over the fixed nonuniform
 * 16-entry codebook of §3.14.
 *
 * Quantizers search the scales against the codebook with the engine in
 * quant-k-search.c: IQ4_NL fits one f16 scale per 32-block directly; IQ4_XS
 * fits one per 32-element sub-block and encodes them as signed 6-bit
 * multiples of the super-block d, as the K-quants do. The codebook is
 * asymmetric (-127..113), so both signs of each scale are tried.
 */
#include <string.h>

#include "f16.h"
#include "quant-internal.h"

const int8_t quant__iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                        1,    13,   25,  38,  53,  69,  89,  113};

void quant__iq4_nl_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK4_NL; i++) {
        struct block_iq4_nl b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d);
        for (int e = 0; e < 16; e++) {
            dst[i * 32 + e] = d * (float)quant__iq4nl_values[b.qs[e] & 15];
            dst[i * 32 + e + 16] = d * (float)quant__iq4nl_values[b.qs[e] >> 4];
        }
    }
}

void quant__iq4_xs_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        struct block_iq4_xs b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d);
        for (int ib = 0; ib < 8; ib++) {
            int ls = ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 15) |
                     (((b.scales_h >> (2 * ib)) & 3) << 4);
            float dl = d * (float)(ls - 32);
            for (int j = 0; j < 32; j++) {
                uint8_t byte = b.qs[16 * ib + (j % 16)];
                int nb = j < 16 ? (byte & 15) : (byte >> 4);
                dst[i * QK_K + 32 * ib + j] = dl * (float)quant__iq4nl_values[nb];
            }
        }
    }
}

static const struct quant_kq_spec spec_iq4_nl = {QK4_NL, QK4_NL, 16, 0, quant__iq4nl_values,
                                                 false, 0, 0, 0};
static const struct quant_kq_spec spec_iq4_xs = {QK_K, 32, 16, 0, quant__iq4nl_values,
                                                 false, -32, 31, 0};

void quant__iq4_nl_from_float(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / QK4_NL; i++) {
        struct quant_kq_result r;
        struct block_iq4_nl b;
        quant__kq_search(src + i * QK4_NL, &spec_iq4_nl, &r);
        b.d = r.d16;
        for (int e = 0; e < 16; e++)
            b.qs[e] = (uint8_t)(r.q[e] | (r.q[e + 16] << 4));
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}

void quant__iq4_xs_from_float(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        struct quant_kq_result r;
        struct block_iq4_xs b;
        quant__kq_search(src + i * QK_K, &spec_iq4_xs, &r);
        memset(&b, 0, sizeof b);
        b.d = r.d16;
        uint32_t sh = 0;
        for (int ib = 0; ib < 8; ib++) {
            int ls = r.sc[ib] + 32; /* 0..63 */
            b.scales_l[ib / 2] |= (uint8_t)((ls & 15) << (4 * (ib % 2)));
            sh |= (uint32_t)(ls >> 4) << (2 * ib);
            for (int j = 0; j < 16; j++)
                b.qs[16 * ib + j] =
                    (uint8_t)(r.q[32 * ib + j] | (r.q[32 * ib + j + 16] << 4));
        }
        b.scales_h = (uint16_t)sh;
        memcpy(p + i * (int64_t)sizeof b, &b, sizeof b);
    }
}
