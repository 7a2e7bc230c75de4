/*
 * quant-iq2: dequantization of the lattice quant types IQ2_XXS, IQ2_XS, IQ2_S,
 * IQ3_XXS, IQ3_S, IQ1_S and IQ1_M (256-element super-blocks).
 *
 * Each group of 8 (IQ3: 4) elements is one entry of a fixed grid
 * (core/iq-grids.h) selected by an index stored in the block; IQ2/IQ3 entries
 * are magnitudes with the signs stored beside them, IQ1 entries are -1/0/+1
 * shifted by a per-group delta of +-1/8. A sub-block scale s (4 or 3 bits)
 * gives the factor 2s + 1, times the f16 d and a type constant:
 *     IQ2_*: d (0.5 + s) / 4    IQ3_XXS: d (0.5 + s) / 2    IQ3_S, IQ1_*: d (2s + 1)
 * The float operations here are the ones of the gguf package's reference
 * reader, in its order (scale first, then scale * grid value, then the sign),
 * so the results equal it bit for bit (tests/test-quant-iq2.c checks that
 * against vectors the package wrote). The CPU dot kernels use the equivalent
 * exact integer form instead (core/cpu/dot-iq-*.c).
 *
 * There is no from_float: hearth reads these types but does not produce them
 * (synth makes random blocks). Blocks are read with memcpy into the packed
 * structs of quant-internal.h (file rows are only byte-aligned); multi-byte
 * fields are little-endian, as the host.
 */
#include <string.h>

#include "f16.h"
#include "iq-grids.h"
#include "quant-internal.h"

/* Element j (0..7) of an 8-byte grid entry as an unsigned magnitude. */
static inline float grid_u8(uint64_t entry, int j)
{
    return (float)(uint8_t)(entry >> (8 * j));
}

/* Writes the 8 values scale * grid[j], negated where bit j of signs is set. */
static inline void put8(float *y, float scale, uint64_t entry, uint32_t signs)
{
    for (int j = 0; j < 8; j++) {
        float v = scale * grid_u8(entry, j);
        y[j] = (signs >> j) & 1 ? -v : v;
    }
}

/* As put8 for two 4-element entries lo (elements 0..3) and hi (4..7). */
static inline void put4x2(float *y, float scale, uint32_t lo, uint32_t hi, uint32_t signs)
{
    put8(y, scale, (uint64_t)lo | ((uint64_t)hi << 32), signs);
}

/* IQ1: the 8 values dl * (grid[j] + delta), grid entries int8 -1/0/+1. */
static inline void put8_iq1(float *y, float dl, uint64_t entry, float delta)
{
    for (int j = 0; j < 8; j++)
        y[j] = dl * ((float)(int8_t)(uint8_t)(entry >> (8 * j)) + delta);
}

static inline uint32_t le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

void quant__iq2_xxs_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        struct block_iq2_xxs b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        const uint8_t *qs = (const uint8_t *)b.qs;
        float d = f16_to_f32(b.d);
        for (int ib = 0; ib < 8; ib++) {
            uint32_t idx = le32(qs + 8 * ib), aux = le32(qs + 8 * ib + 4);
            float db = d * (0.5f + (float)(aux >> 28)) * 0.25f;
            for (int l = 0; l < 4; l++)
                put8(dst + 32 * ib + 8 * l, db, quant__iq2xxs_grid[(idx >> (8 * l)) & 255],
                     quant__iq_ksign(aux, 7 * l));
        }
    }
}

void quant__iq2_xs_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        struct block_iq2_xs b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d);
        for (int g = 0; g < 32; g++) {
            int s = (b.scales[g / 4] >> (4 * ((g / 2) & 1))) & 15;
            float db = d * (0.5f + (float)s) * 0.25f;
            put8(dst + 8 * g, db, quant__iq2xs_grid[b.qs[g] & 511], quant__iq_ksign(b.qs[g], 9));
        }
    }
}

void quant__iq2_s_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        struct block_iq2_s b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d);
        for (int g = 0; g < 32; g++) {
            int s = (b.scales[g / 4] >> (4 * ((g / 2) & 1))) & 15;
            float db = d * (0.5f + (float)s) * 0.25f;
            int idx = b.qs[g] | (((b.qh[g / 4] >> (2 * (g % 4))) & 3) << 8);
            put8(dst + 8 * g, db, quant__iq2s_grid[idx], b.qs[32 + g]);
        }
    }
}

void quant__iq3_xxs_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        struct block_iq3_xxs b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d);
        for (int ib = 0; ib < 8; ib++) {
            uint32_t aux = le32(b.qs + 64 + 4 * ib);
            float db = d * (0.5f + (float)(aux >> 28)) * 0.5f;
            for (int l = 0; l < 4; l++) {
                const uint8_t *q = b.qs + 8 * ib + 2 * l;
                put4x2(dst + 32 * ib + 8 * l, db, quant__iq3xxs_grid[q[0]],
                       quant__iq3xxs_grid[q[1]], quant__iq_ksign(aux, 7 * l));
            }
        }
    }
}

void quant__iq3_s_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        struct block_iq3_s b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d);
        for (int g = 0; g < 32; g++) {
            int s = (b.scales[g / 8] >> (4 * ((g / 4) & 1))) & 15;
            float db = d * (float)(1 + 2 * s);
            int k0 = 2 * g, k1 = 2 * g + 1;
            int i0 = b.qs[k0] | (((b.qh[k0 / 8] >> (k0 % 8)) & 1) << 8);
            int i1 = b.qs[k1] | (((b.qh[k1 / 8] >> (k1 % 8)) & 1) << 8);
            put4x2(dst + 8 * g, db, quant__iq3s_grid[i0], quant__iq3s_grid[i1], b.signs[g]);
        }
    }
}

void quant__iq1_s_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        struct block_iq1_s b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(b.d);
        for (int ib = 0; ib < 8; ib++) {
            unsigned qh = b.qh[ib];
            float dl = d * (float)(2 * ((qh >> 12) & 7) + 1);
            float delta = qh & 0x8000 ? -0.125f : 0.125f;
            for (int l = 0; l < 4; l++) {
                unsigned idx = b.qs[4 * ib + l] | (((qh >> (3 * l)) & 7) << 8);
                put8_iq1(dst + 32 * ib + 8 * l, dl, quant__iq1s_grid[idx], delta);
            }
        }
    }
}

void quant__iq1_m_to_float(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        struct block_iq1_m b;
        memcpy(&b, p + i * (int64_t)sizeof b, sizeof b);
        float d = f16_to_f32(quant__iq1_m_d16(b.scales));
        for (int g = 0; g < 32; g++) {
            /* scale m = g / 2: 3 bits at 3 (m % 4) of the u16 word m / 4 */
            int m = g / 2;
            unsigned word = b.scales[2 * (m / 4)] | ((unsigned)b.scales[2 * (m / 4) + 1] << 8);
            float dl = d * (float)(2 * ((word >> (3 * (m % 4))) & 7) + 1);
            unsigned nib = (b.qh[g / 2] >> (4 * (g % 2))) & 15;
            float delta = nib & 8 ? -0.125f : 0.125f;
            unsigned idx = b.qs[g] | ((nib & 7) << 8);
            put8_iq1(dst + 8 * g, dl, quant__iq1s_grid[idx], delta);
        }
    }
}
