/*
 * attn-kvq: scalar CPU attention over compressed KV head vectors (attn-kvq.h).
 *
 * One dot kernel and one axpy kernel per type, picked once per call through a
 * small table so the position loop carries no type switch. The rotated
 * kernels read codes straight from the packed bytes (two 4-bit codes per
 * byte, eight 3-bit codes per 3 bytes) and look levels up in the 8- or
 * 16-entry codebook, which stays in L1; the per-piece f16 scale multiplies
 * the piece's partial sum once. Softmax is the max-subtracted two-pass one
 * of cpu_attn_head (ops.c) with the sum in double, so this kernel with f16 K
 * and V matches it to rounding.
 *
 * Speed: written for clarity and as the reference of SIMD/GPU versions; the
 * codes-to-levels lookups vectorize with a permute (vpermps) of the codebook
 * held in registers, which is the AVX2 follow-up.
 */
#include <math.h>
#include <string.h>

#include "attn-kvq.h"
#include "err.h"
#include "f16.h"

typedef float (*row_dot_fn)(const struct kvq_rot *rot, const float *q, const uint8_t *row, int hd);
typedef void (*row_axpy_fn)(const struct kvq_rot *rot, float *y, float a, const uint8_t *row,
                            int hd);

static float f16_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return f16_to_f32(h);
}

/* ---- f16 ---------------------------------------------------------------------- */

static float dot_f16(const struct kvq_rot *rot, const float *q, const uint8_t *row, int hd)
{
    (void)rot;
    float s = 0.0f;
    for (int i = 0; i < hd; i++)
        s += q[i] * f16_at(row + 2 * i);
    return s;
}

static void axpy_f16(const struct kvq_rot *rot, float *y, float a, const uint8_t *row, int hd)
{
    (void)rot;
    for (int i = 0; i < hd; i++)
        y[i] += a * f16_at(row + 2 * i);
}

/* ---- q8_0: [d f16][32 x i8] per 32 values ---------------------------------------- */

static float dot_q8_0(const struct kvq_rot *rot, const float *q, const uint8_t *row, int hd)
{
    (void)rot;
    float s = 0.0f;
    for (int b = 0; b < hd / 32; b++, row += 34, q += 32) {
        float part = 0.0f;
        for (int e = 0; e < 32; e++)
            part += q[e] * (float)(int8_t)row[2 + e];
        s += f16_at(row) * part;
    }
    return s;
}

static void axpy_q8_0(const struct kvq_rot *rot, float *y, float a, const uint8_t *row, int hd)
{
    (void)rot;
    for (int b = 0; b < hd / 32; b++, row += 34, y += 32) {
        float ad = a * f16_at(row);
        for (int e = 0; e < 32; e++)
            y[e] += ad * (float)(int8_t)row[2 + e];
    }
}

/* ---- q4_0: [d f16][16 bytes]; low nibbles elements 0..15, high 16..31 -------------- */

static float dot_q4_0(const struct kvq_rot *rot, const float *q, const uint8_t *row, int hd)
{
    (void)rot;
    float s = 0.0f;
    for (int b = 0; b < hd / 32; b++, row += 18, q += 32) {
        float part = 0.0f;
        for (int e = 0; e < 16; e++) {
            uint8_t v = row[2 + e];
            part += q[e] * (float)((int)(v & 0x0fu) - 8) + q[e + 16] * (float)((int)(v >> 4) - 8);
        }
        s += f16_at(row) * part;
    }
    return s;
}

static void axpy_q4_0(const struct kvq_rot *rot, float *y, float a, const uint8_t *row, int hd)
{
    (void)rot;
    for (int b = 0; b < hd / 32; b++, row += 18, y += 32) {
        float ad = a * f16_at(row);
        for (int e = 0; e < 16; e++) {
            uint8_t v = row[2 + e];
            y[e] += ad * (float)((int)(v & 0x0fu) - 8);
            y[e + 16] += ad * (float)((int)(v >> 4) - 8);
        }
    }
}

/* ---- rot4 / rot3: [n_piece f16 scales][packed codes] (kv-quant.h) --------------- */

/* Σ q[i] level[code i] over coordinates [off, off + len) of a 4-bit row's codes. */
static float sum4(const float *lv, const float *q, const uint8_t *codes, int off, int len)
{
    float s = 0.0f;
    for (int i = off; i < off + len; i += 2) {
        uint8_t c = codes[i / 2];
        s += q[i] * lv[c & 0x0fu] + q[i + 1] * lv[c >> 4];
    }
    return s;
}

static float sum3(const float *lv, const float *q, const uint8_t *codes, int off, int len)
{
    float s = 0.0f;
    for (int g = off / 8; g < (off + len) / 8; g++) {
        const uint8_t *p = codes + 3 * g;
        uint32_t w = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
        const float *qg = q + 8 * g;
        for (int k = 0; k < 8; k++)
            s += qg[k] * lv[(w >> (3 * k)) & 7u];
    }
    return s;
}

static float dot_rot4(const struct kvq_rot *rot, const float *q, const uint8_t *row, int hd)
{
    const float *lv = kvq_codebook_get(4)->level;
    const uint8_t *codes = row + 2 * rot->n_piece;
    (void)hd;
    float s = 0.0f;
    for (int p = 0; p < rot->n_piece; p++)
        s += f16_at(row + 2 * p) * sum4(lv, q, codes, rot->piece_off[p], rot->piece_len[p]);
    return s;
}

static float dot_rot3(const struct kvq_rot *rot, const float *q, const uint8_t *row, int hd)
{
    const float *lv = kvq_codebook_get(3)->level;
    const uint8_t *codes = row + 2 * rot->n_piece;
    (void)hd;
    float s = 0.0f;
    for (int p = 0; p < rot->n_piece; p++)
        s += f16_at(row + 2 * p) * sum3(lv, q, codes, rot->piece_off[p], rot->piece_len[p]);
    return s;
}

static void axpy_rot4(const struct kvq_rot *rot, float *y, float a, const uint8_t *row, int hd)
{
    const float *lv = kvq_codebook_get(4)->level;
    const uint8_t *codes = row + 2 * rot->n_piece;
    (void)hd;
    for (int p = 0; p < rot->n_piece; p++) {
        float as = a * f16_at(row + 2 * p);
        for (int i = rot->piece_off[p]; i < rot->piece_off[p] + rot->piece_len[p]; i += 2) {
            uint8_t c = codes[i / 2];
            y[i] += as * lv[c & 0x0fu];
            y[i + 1] += as * lv[c >> 4];
        }
    }
}

static void axpy_rot3(const struct kvq_rot *rot, float *y, float a, const uint8_t *row, int hd)
{
    const float *lv = kvq_codebook_get(3)->level;
    const uint8_t *codes = row + 2 * rot->n_piece;
    (void)hd;
    for (int p = 0; p < rot->n_piece; p++) {
        float as = a * f16_at(row + 2 * p);
        int off = rot->piece_off[p], len = rot->piece_len[p];
        for (int g = off / 8; g < (off + len) / 8; g++) {
            const uint8_t *b = codes + 3 * g;
            uint32_t w = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16;
            float *yg = y + 8 * g;
            for (int k = 0; k < 8; k++)
                yg[k] += as * lv[(w >> (3 * k)) & 7u];
        }
    }
}

static const row_dot_fn dots[KVQ_TYPE_COUNT] = {dot_f16, dot_q8_0, dot_q4_0, dot_rot4, dot_rot3};
static const row_axpy_fn axpys[KVQ_TYPE_COUNT] = {axpy_f16, axpy_q8_0, axpy_q4_0, axpy_rot4,
                                                  axpy_rot3};

size_t cpu_attn_kvq_scratch_floats(int64_t n, int hd)
{
    return (size_t)n + 2u * (size_t)hd;
}

void cpu_attn_kvq_head(enum kvq_type kt, enum kvq_type vt, const struct kvq_rot *rot, float *out,
                       const float *q, const uint8_t *k0, size_t k_stride, const uint8_t *v0,
                       size_t v_stride, int64_t n, int hd, float scale, float *scratch)
{
    HEARTH_ASSERT((unsigned)kt < KVQ_TYPE_COUNT && (unsigned)vt < KVQ_TYPE_COUNT && n >= 1);
    HEARTH_ASSERT(!(kvq_is_rotated(kt) || kvq_is_rotated(vt)) || (rot && rot->d == hd));
    float *scores = scratch;  /* [n] */
    float *qr = scratch + n;  /* [hd] the query in K's domain */
    float *acc = qr + hd;     /* [hd] the output in V's domain */
    if (kvq_is_rotated(kt))
        kvq_rot_forward(rot, q, qr);
    else
        memcpy(qr, q, (size_t)hd * sizeof *qr);

    row_dot_fn dot = dots[kt];
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
        float s = dot(rot, qr, k0 + (size_t)j * k_stride, hd) * scale;
        scores[j] = s;
        mx = s > mx ? s : mx;
    }
    double sum = 0.0;
    for (int64_t j = 0; j < n; j++) {
        float e = expf(scores[j] - mx);
        scores[j] = e;
        sum += (double)e;
    }
    float inv = (float)(1.0 / sum);

    row_axpy_fn axpy = axpys[vt];
    for (int i = 0; i < hd; i++)
        acc[i] = 0.0f;
    for (int64_t j = 0; j < n; j++)
        axpy(rot, acc, scores[j] * inv, v0 + (size_t)j * v_stride, hd);
    if (kvq_is_rotated(vt))
        kvq_rot_inverse(rot, acc, out);
    else
        memcpy(out, acc, (size_t)hd * sizeof *out);
}
