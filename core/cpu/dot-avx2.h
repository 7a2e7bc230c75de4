/*
 * dot-avx2.h: the AVX2 helpers that the AVX2 kernel files (dot-avx2.c,
 * dot-ktile-avx2.c, dot-ltile-avx2.c) share. Include it only from files built
 * with -mavx2 -mfma -mf16c (the *-avx2.c files): every function is a static
 * inline of AVX2 instructions. The tile kernels promise outputs bit-identical
 * to dot-avx2.c's dot, so they must use the same hsum_ps and unpacking, which
 * is why these live in one place rather than in a copy per file.
 */
#ifndef HEARTH_CPU_DOT_AVX2_H
#define HEARTH_CPU_DOT_AVX2_H

#include <immintrin.h>

#include "cpu/dot-internal.h"

/* Every load is unaligned: rows inside a mapped GGUF file are only byte-aligned. */
static inline __m256i load32(const uint8_t *p)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

static inline __m128i load16(const uint8_t *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

static inline float f16_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* The float sum of v's 8 lanes, in the one order every AVX2 kernel uses. */
static inline float hsum_ps(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/*
 * 16 bytes of nibbles -> 32 bytes: low nibbles are bytes 0..15, high nibbles
 * 16..31. A broadcast load and a per-lane shift (3 instructions, not 4 with
 * an insert).
 */
static inline __m256i nibbles32(const uint8_t *p)
{
    __m256i v = _mm256_broadcastsi128_si256(load16(p));
    v = _mm256_srlv_epi64(v, _mm256_set_epi64x(4, 4, 0, 0));
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* 0xFF in byte e where bit e of the little-endian u32 h is set. */
static inline __m256i bits32(uint32_t h)
{
    __m256i v = _mm256_set1_epi32((int)h);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
    const __m256i sel = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    v = _mm256_and_si256(_mm256_shuffle_epi8(v, shuf), sel);
    return _mm256_cmpeq_epi8(v, sel);
}

/*
 * The unsigned 5-bit codes (0..31) of a Q5_0/Q5_1 block: low nibbles from qs
 * (16 bytes), fifth bits from the u32 at qh.
 */
static inline __m256i q5_codes(const uint8_t *qh, const uint8_t *qs)
{
    __m256i hb = bits32(dot__u32(qh));
    return _mm256_or_si256(nibbles32(qs), _mm256_and_si256(hb, _mm256_set1_epi8(0x10)));
}

/* Σ u·s over groups of 4 bytes -> 8 int32 (u unsigned ≤ 128, s signed, |s| ≤ 127). */
static inline __m256i dot_us(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* The IQ4_NL code book in both 128-bit lanes, for vpshufb. */
static inline __m256i iq4_table(void)
{
    return _mm256_broadcastsi128_si256(load16((const uint8_t *)quant__iq4nl_values));
}

#endif
