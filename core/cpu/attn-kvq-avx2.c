/*
 * attn-kvq-avx2: decoding of encoded KV rows into f32 tiles, and the f32 dot
 * and axpy of the batched attention (attn-kvq.h), with AVX2/FMA/F16C.
 *
 * Decoding is bit-identical to kv-quant.c's scalar decoders: every value is
 * one float product scale · q (q the integer or codebook level), which the
 * vector multiply rounds the same way. Codebook lookups keep the levels in
 * registers: 8 levels (3 bits) are one vpermps; 16 levels (4 bits) are two
 * vpermps (low and high half) blended on bit 3 of the code. Codes are
 * unpacked by broadcasting the packed word and shifting each lane by its
 * own amount (vpsrlvd). The exact window's f16 ring rows become floats
 * with vcvtph2ps, exact like f16_to_f32 (every half is a float; the ring's
 * NaNs are quiet, f32_to_f16 makes them so), so kv-window.c may pick either.
 * Only called after attn-kvq.c's selection (or kv-window.c's cpu_isa_best)
 * saw AVX2, FMA and F16C. All loads are unaligned-safe and never read past
 * a row.
 */
#include <immintrin.h>
#include <string.h>

#include "attn-kvq.h"
#include "f16.h"

static float f16_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return f16_to_f32(h);
}

static void dec_f16(int hd, const uint8_t *src, float *y)
{
    int i = 0;
    for (; i + 8 <= hd; i += 8)
        _mm256_storeu_ps(
            y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(src + 2 * i))));
    for (; i < hd; i++)
        y[i] = f16_at(src + 2 * i);
}

static void dec_q8_0(int hd, const uint8_t *src, float *y)
{
    for (int b = 0; b < hd / 32; b++, src += 34, y += 32) {
        __m256 d = _mm256_set1_ps(f16_at(src));
        for (int k = 0; k < 4; k++) {
            __m128i q = _mm_loadl_epi64((const __m128i *)(const void *)(src + 2 + 8 * k));
            __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
            _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(d, f));
        }
    }
}

static void dec_q4_0(int hd, const uint8_t *src, float *y)
{
    const __m128i m4 = _mm_set1_epi8(0x0f), k8 = _mm_set1_epi8(8);
    for (int b = 0; b < hd / 32; b++, src += 18, y += 32) {
        __m256 d = _mm256_set1_ps(f16_at(src));
        __m128i raw = _mm_loadu_si128((const __m128i *)(const void *)(src + 2));
        __m128i lo = _mm_sub_epi8(_mm_and_si128(raw, m4), k8);
        __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), k8);
        __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int k = 0; k < 4; k++) {
            __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[k]));
            _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(d, f));
        }
    }
}

static void dec_rot4(const struct kvq_rot *rot, const uint8_t *src, float *y)
{
    const float *lv = kvq_codebook_get(4)->level;
    const __m256 l0 = _mm256_loadu_ps(lv), l1 = _mm256_loadu_ps(lv + 8);
    const __m256i sh = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    const __m256i m = _mm256_set1_epi32(15);
    const uint8_t *codes = src + 2 * rot->n_piece;
    for (int p = 0; p < rot->n_piece; p++) {
        __m256 s = _mm256_set1_ps(f16_at(src + 2 * p));
        for (int i = rot->piece_off[p]; i < rot->piece_off[p] + rot->piece_len[p]; i += 8) {
            uint32_t w;
            memcpy(&w, codes + i / 2, 4);
            __m256i idx = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)w), sh), m);
            __m256 a = _mm256_permutevar8x32_ps(l0, idx), b = _mm256_permutevar8x32_ps(l1, idx);
            __m256 v = _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
            _mm256_storeu_ps(y + i, _mm256_mul_ps(s, v));
        }
    }
}

static void dec_rot3(const struct kvq_rot *rot, const uint8_t *src, float *y)
{
    const __m256 l0 = _mm256_loadu_ps(kvq_codebook_get(3)->level);
    const __m256i sh = _mm256_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21);
    const __m256i m = _mm256_set1_epi32(7);
    const uint8_t *codes = src + 2 * rot->n_piece;
    for (int p = 0; p < rot->n_piece; p++) {
        __m256 s = _mm256_set1_ps(f16_at(src + 2 * p));
        for (int i = rot->piece_off[p]; i < rot->piece_off[p] + rot->piece_len[p]; i += 8) {
            const uint8_t *c = codes + 3 * (i / 8);
            uint32_t w = (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16;
            __m256i idx = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)w), sh), m);
            _mm256_storeu_ps(y + i, _mm256_mul_ps(s, _mm256_permutevar8x32_ps(l0, idx)));
        }
    }
}

void cpu_kvq__decode_rows_avx2(enum kvq_type t, const struct kvq_rot *rot, int hd,
                               const uint8_t *src, size_t stride, int n, float *dst)
{
    for (int r = 0; r < n; r++, src += stride, dst += hd) {
        switch (t) {
        case KVQ_F16:
            dec_f16(hd, src, dst);
            break;
        case KVQ_Q8_0:
            dec_q8_0(hd, src, dst);
            break;
        case KVQ_Q4_0:
            dec_q4_0(hd, src, dst);
            break;
        case KVQ_ROT4:
            dec_rot4(rot, src, dst);
            break;
        case KVQ_ROT3:
            dec_rot3(rot, src, dst);
            break;
        case KVQ_TYPE_COUNT:
            break;
        }
    }
}

void cpu_kvq__f16_to_f32_avx2(const uint16_t *src, size_t n, float *dst)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 8));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(a));
        _mm256_storeu_ps(dst + i + 8, _mm256_cvtph_ps(b));
    }
    for (; i + 8 <= n; i += 8) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(a));
    }
    for (; i < n; i++)
        dst[i] = f16_to_f32(src[i]);
}

float cpu_kvq__dot_avx2(const float *a, const float *b, int n)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc0 = _mm256_add_ps(acc0, acc1);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    float r = _mm_cvtss_f32(s);
    for (; i < n; i++)
        r += a[i] * b[i];
    return r;
}

void cpu_kvq__axpy_avx2(float *y, float s, const float *x, int n)
{
    __m256 vs = _mm256_set1_ps(s);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(vs, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += s * x[i];
}
