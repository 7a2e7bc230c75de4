/*
 * kv-quant: type table, name parsing and the encoders/decoders of one KV head
 * vector (formats and layouts in kv-quant.h).
 *
 * The block types reuse quant.h's reference Q8_0/Q4_0 quantizers, so a q8_0
 * KV row is byte-for-byte what the weight path would write. The rotated
 * encoder picks each piece's scale to minimise the squared error of that
 * piece: nearest codes for a few trial scales around the RMS of the rotated
 * coordinates (the codebook is for unit variance), each followed by the
 * least-squares scale for its codes (s = Σ y c / Σ c²), keeping the best
 * (best_scale). A vector's own empirical distribution never matches the
 * codebook's exactly, and fitting it is worth 10-24% MSE at 4 bits and 4-12%
 * at 3 bits over the plain RMS scale (most for d = 64). Alternatives
 * rejected: the norm as scale (unbiased length but larger error), an f32
 * scale (16 more bits for nothing at f16's 2^-11).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "f16.h"
#include "kv-quant.h"
#include "quant.h"

static const char *const type_names[KVQ_TYPE_COUNT] = {"f16", "q8_0", "q4_0", "rot4", "rot3"};

const char *kvq_type_name(enum kvq_type t)
{
    return (unsigned)t < KVQ_TYPE_COUNT ? type_names[t] : "?";
}

hearth_status kvq_type_from_name(const char *name, enum kvq_type *out)
{
    for (int t = 0; t < KVQ_TYPE_COUNT; t++) {
        if (name && strcasecmp(name, type_names[t]) == 0) {
            *out = (enum kvq_type)t;
            return HEARTH_OK;
        }
    }
    return err_set(HEARTH_ERR_INVALID_ARG,
                   "kv type \"%s\": expected one of f16, q8_0, q4_0, rot4, rot3",
                   name ? name : "(null)");
}

bool kvq_is_rotated(enum kvq_type t)
{
    return t == KVQ_ROT4 || t == KVQ_ROT3;
}

int kvq_rot_bits(enum kvq_type t)
{
    return t == KVQ_ROT4 ? 4 : t == KVQ_ROT3 ? 3 : 0;
}

/* f16 stores any head width; the block and rotated types need 32 | head_dim. */
static bool head_dim_ok(enum kvq_type t, int head_dim)
{
    if (t == KVQ_F16)
        return head_dim >= 1 && head_dim <= KVQ_MAX_HEAD_DIM;
    return head_dim >= 32 && head_dim <= KVQ_MAX_HEAD_DIM && head_dim % 32 == 0;
}

void kvq_pair_name(int k_type, int v_type, char *buf, size_t size)
{
    if (k_type == v_type)
        snprintf(buf, size, "%s", kvq_type_name((enum kvq_type)k_type));
    else
        snprintf(buf, size, "K %s, V %s", kvq_type_name((enum kvq_type)k_type),
                 kvq_type_name((enum kvq_type)v_type));
}

hearth_status kvq_check(enum kvq_type t, int head_dim)
{
    if ((unsigned)t >= KVQ_TYPE_COUNT)
        return err_set(HEARTH_ERR_UNSUPPORTED, "kv type id %d: no such type", (int)t);
    if (!head_dim_ok(t, head_dim))
        return err_set(HEARTH_ERR_UNSUPPORTED,
                       "kv type %s: head_dim %d, expected a multiple of 32 in 32..%d",
                       type_names[t], head_dim, KVQ_MAX_HEAD_DIM);
    return HEARTH_OK;
}

/* Power-of-two pieces of head_dim (binary digits of head_dim / 32); see struct kvq_rot. */
static int n_pieces(int head_dim)
{
    return __builtin_popcount((unsigned)head_dim / 32u);
}

size_t kvq_head_bytes(enum kvq_type t, int head_dim)
{
    if ((unsigned)t >= KVQ_TYPE_COUNT || !head_dim_ok(t, head_dim))
        return 0; /* a size query leaves the error message alone */
    size_t d = (size_t)head_dim;
    switch (t) {
    case KVQ_F16:
        return 2 * d;
    case KVQ_Q8_0:
        return d / 32 * 34;
    case KVQ_Q4_0:
        return d / 32 * 18;
    case KVQ_ROT4:
    case KVQ_ROT3:
        return 2 * (size_t)n_pieces(head_dim) + d * (size_t)kvq_rot_bits(t) / 8;
    case KVQ_TYPE_COUNT:
        break;
    }
    return 0;
}

double kvq_bits_per_value(enum kvq_type t, int head_dim)
{
    size_t b = kvq_head_bytes(t, head_dim);
    return b ? 8.0 * (double)b / head_dim : 0.0;
}

/* ---- rotated types ------------------------------------------------------------ */

static void put_code(uint8_t *codes, int bits, int i, int c)
{
    if (bits == 4) {
        uint8_t *p = codes + i / 2;
        *p = (uint8_t)((i & 1) ? (*p & 0x0fu) | (c << 4) : (*p & 0xf0u) | c);
    } else {
        /* coordinate i lives at bit 3*(i%8) of the 24-bit word of group i/8 */
        int bit = (i / 8) * 24 + (i % 8) * 3;
        for (int k = 0; k < 3; k++) {
            int b = bit + k;
            uint8_t m = (uint8_t)(1u << (b % 8));
            codes[b / 8] = (uint8_t)(((c >> k) & 1) ? codes[b / 8] | m : codes[b / 8] & ~m);
        }
    }
}

/* Unpacks all d codes into idx[d]. */
static void get_codes(const uint8_t *codes, int bits, int d, uint8_t *idx)
{
    if (bits == 4) {
        for (int i = 0; i < d; i += 2) {
            idx[i] = codes[i / 2] & 0x0fu;
            idx[i + 1] = codes[i / 2] >> 4;
        }
        return;
    }
    for (int g = 0; g < d / 8; g++) {
        const uint8_t *p = codes + 3 * g;
        uint32_t w = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
        for (int k = 0; k < 8; k++)
            idx[8 * g + k] = (uint8_t)((w >> (3 * k)) & 7u);
    }
}

/*
 * Quantizes yp[len] with scale s into idx[len] and returns the least-squares
 * scale for those codes; *err = the squared error with that scale,
 * Σy² - (Σyc)²/Σc² (ss = Σy²).
 */
static double fit_pass(const struct kvq_codebook *cb, const float *yp, int len, double ss,
                       double s, uint8_t *idx, double *err)
{
    float inv = (float)(1.0 / s);
    const float *t = cb->thresh, *lv = cb->level;
    float yc = 0.0f, cc = 0.0f; /* len <= 512 terms: float sums lose < 1e-4 relative */
    /* kvq_codebook_index unrolled per width: this loop is the encoder's whole cost */
    if (cb->n == 16) {
        for (int i = 0; i < len; i++) {
            float x = yp[i] * inv;
            int c = x > t[7] ? 8 : 0;
            c += x > t[c + 3] ? 4 : 0;
            c += x > t[c + 1] ? 2 : 0;
            c += x > t[c] ? 1 : 0;
            idx[i] = (uint8_t)c;
            yc += yp[i] * lv[c];
            cc += lv[c] * lv[c];
        }
    } else {
        for (int i = 0; i < len; i++) {
            float x = yp[i] * inv;
            int c = x > t[3] ? 4 : 0;
            c += x > t[c + 1] ? 2 : 0;
            c += x > t[c] ? 1 : 0;
            idx[i] = (uint8_t)c;
            yc += yp[i] * lv[c];
            cc += lv[c] * lv[c];
        }
    }
    *err = ss - (double)yc * (double)yc / (double)cc; /* cc > 0: no level is 0 */
    return (double)yc / (double)cc;
}

/*
 * The scale of one piece: 8 trial scales across [0.8, 1.22] x RMS, then two
 * rounds of refit-and-requantize from the best. The squared error as a
 * function of the scale is piecewise smooth with many local minima (every
 * code flip is a kink); the grid finds a better basin than refitting from the
 * RMS alone: 7-15% lower MSE at 4 bits, 2-6% at 3 bits (docs/kv-cache.md).
 */
static double best_scale(const struct kvq_codebook *cb, const float *yp, int len, uint8_t *idx)
{
    double ss = 0.0;
    for (int i = 0; i < len; i++)
        ss += (double)yp[i] * (double)yp[i];
    if (!(ss > 0.0))
        return 0.0;
    double rms = sqrt(ss / len), best = INFINITY, best_in = rms, cur = rms, err;
    for (int g = 0; g < 8; g++) {
        double s_in = rms * (0.8 + 0.06 * g);
        double fit = fit_pass(cb, yp, len, ss, s_in, idx, &err);
        if (err < best) {
            best = err;
            best_in = s_in;
            cur = fit;
        }
    }
    for (int round = 0; round < 2; round++) {
        double fit = fit_pass(cb, yp, len, ss, cur, idx, &err);
        if (err < best) {
            best = err;
            best_in = cur;
        }
        cur = fit;
    }
    return fit_pass(cb, yp, len, ss, best_in, idx, &err);
}

static void encode_rot(const struct kvq_codebook *cb, const struct kvq_rot *rot, const float *x,
                       uint8_t *dst)
{
    float y[KVQ_MAX_HEAD_DIM];
    uint8_t idx[KVQ_MAX_HEAD_DIM];
    kvq_rot_forward(rot, x, y);
    uint8_t *codes = dst + 2 * rot->n_piece;
    memset(codes, 0, (size_t)rot->d * (size_t)cb->bits / 8);
    for (int p = 0; p < rot->n_piece; p++) {
        int off = rot->piece_off[p], len = rot->piece_len[p];
        double s = best_scale(cb, y + off, len, idx + off);
        if (!(s > 0.0)) { /* zero vector: any code decodes to 0 with scale 0 */
            s = 0.0;
            for (int i = 0; i < len; i++)
                idx[off + i] = 0;
        }
        s = fmin(s, 65504.0); /* largest f16 */
        uint16_t h = f32_to_f16((float)s);
        memcpy(dst + 2 * p, &h, 2);
        for (int i = 0; i < len; i++)
            put_code(codes, cb->bits, off + i, idx[off + i]);
    }
}

void kvq_decode_rotated(enum kvq_type t, const struct kvq_rot *rot, const void *src, float *y)
{
    const struct kvq_codebook *cb = kvq_codebook_get(kvq_rot_bits(t));
    const uint8_t *s = src;
    uint8_t idx[KVQ_MAX_HEAD_DIM];
    get_codes(s + 2 * rot->n_piece, cb->bits, rot->d, idx);
    for (int p = 0; p < rot->n_piece; p++) {
        uint16_t h;
        memcpy(&h, s + 2 * p, 2);
        float scale = f16_to_f32(h);
        for (int i = rot->piece_off[p]; i < rot->piece_off[p] + rot->piece_len[p]; i++)
            y[i] = scale * cb->level[idx[i]];
    }
}

/* ---- all types ---------------------------------------------------------------- */

void kvq_encode(enum kvq_type t, const struct kvq_rot *rot, int head_dim, const float *x,
                void *dst)
{
    uint8_t *out = dst;
    switch (t) {
    case KVQ_F16:
        for (int i = 0; i < head_dim; i++) {
            uint16_t h = f32_to_f16(x[i]);
            memcpy(out + 2 * i, &h, 2);
        }
        break;
    case KVQ_Q8_0:
        quant_get(HEARTH_DTYPE_Q8_0)->from_float(x, dst, head_dim);
        break;
    case KVQ_Q4_0:
        quant_get(HEARTH_DTYPE_Q4_0)->from_float(x, dst, head_dim);
        break;
    case KVQ_ROT4:
    case KVQ_ROT3:
        HEARTH_ASSERT(rot && rot->d == head_dim);
        encode_rot(kvq_codebook_get(kvq_rot_bits(t)), rot, x, out);
        break;
    case KVQ_TYPE_COUNT:
        HEARTH_ASSERT(0);
        break;
    }
}

void kvq_decode(enum kvq_type t, const struct kvq_rot *rot, int head_dim, const void *src,
                float *y)
{
    const uint8_t *in = src;
    switch (t) {
    case KVQ_F16:
        for (int i = 0; i < head_dim; i++) {
            uint16_t h;
            memcpy(&h, in + 2 * i, 2);
            y[i] = f16_to_f32(h);
        }
        break;
    case KVQ_Q8_0:
        quant_get(HEARTH_DTYPE_Q8_0)->to_float(src, y, head_dim);
        break;
    case KVQ_Q4_0:
        quant_get(HEARTH_DTYPE_Q4_0)->to_float(src, y, head_dim);
        break;
    case KVQ_ROT4:
    case KVQ_ROT3:
        HEARTH_ASSERT(rot && rot->d == head_dim);
        kvq_decode_rotated(t, rot, src, y);
        kvq_rot_inverse(rot, y, y);
        break;
    case KVQ_TYPE_COUNT:
        HEARTH_ASSERT(0);
        break;
    }
}
