/*
 * cuda/dequant-int.cuh: the integer form of a 32-element unit, for the
 * matvec that multiplies by 8-bit activations with dp4a (cuda/matvec-q8.cu).
 *
 * dqi<T>::unit(b, u, q, d, m) gives unit u of the block at b as
 *   weight i = d[i / 16] * q_i + m[i / 16],   i = 0..31,
 * with q_i a signed byte, four per word in element order (q[j] holds
 * elements 4j..4j+3, element 4j in the low byte). The float types and the
 * lattice types have no such form and stay on cuda/matvec.cu's F32 path.
 * Offsets and bit positions are dequant.cuh's, element for element; the
 * difference is that a whole word of four codes is masked and shifted at
 * once, and the constant part of each code (Q4_0's -8, Q6_K's -32, a K-quant's
 * min) moves into m, to be multiplied by the activation block's code sum.
 */
#ifndef HEARTH_CUDA_DEQUANT_INT_CUH
#define HEARTH_CUDA_DEQUANT_INT_CUH

#include "dequant.cuh"

/* X(dtype) for every type dqi<T> decodes (cuda_matvec_q8_supported). */
#define CUDA_FOR_INT_TYPES(X)                                                                \
    X(HEARTH_DTYPE_Q4_0) X(HEARTH_DTYPE_Q4_1) X(HEARTH_DTYPE_Q5_0) X(HEARTH_DTYPE_Q5_1)      \
    X(HEARTH_DTYPE_Q8_0) X(HEARTH_DTYPE_Q2_K) X(HEARTH_DTYPE_Q3_K) X(HEARTH_DTYPE_Q4_K)      \
    X(HEARTH_DTYPE_Q5_K) X(HEARTH_DTYPE_Q6_K)

/* The little-endian word at 2-byte-aligned p (blocks are only 2-aligned). */
__device__ __forceinline__ uint32_t ld_u32_a2(const uint8_t *p)
{
    return (uint32_t)ld_u16(p) | ((uint32_t)ld_u16(p + 2) << 16);
}

/* Bits 0..3 of v to bit 4 of bytes 0..3 (a Q5 high bit per element). */
__device__ __forceinline__ uint32_t spread4_bit4(uint32_t v)
{
    return ((v & 1u) << 4) | ((v & 2u) << 11) | ((v & 4u) << 18) | ((v & 8u) << 25);
}

/* 16 nibble bytes at p: q[0..3] the low nibbles (elements 0..15), q[4..7] the high. */
__device__ __forceinline__ void nibble_words(const uint8_t *p, int *q)
{
#pragma unroll
    for (int j = 0; j < 4; j++) {
        uint32_t w = ld_u32_a2(p + 4 * j);
        q[j] = (int)(w & 0x0f0f0f0fu);
        q[4 + j] = (int)((w >> 4) & 0x0f0f0f0fu);
    }
}

/* Q5_0/Q5_1: the 32 high bits h (bit e: element e) into bit 4 of each code. */
__device__ __forceinline__ void q5_high_bits(uint32_t h, int *q)
{
#pragma unroll
    for (int j = 0; j < 4; j++) {
        q[j] |= (int)spread4_bit4(h >> (4 * j));
        q[4 + j] |= (int)spread4_bit4(h >> (16 + 4 * j));
    }
}

template <int T> struct dqi;

template <> struct dqi<HEARTH_DTYPE_Q4_0> {
    static __device__ __forceinline__ void unit(const uint8_t *b, int, int *q, float *d, float *m)
    {
        float s = h2f(ld_u16(b));
        nibble_words(b + 2, q);
        d[0] = d[1] = s;
        m[0] = m[1] = -8.0f * s;
    }
};

template <> struct dqi<HEARTH_DTYPE_Q4_1> {
    static __device__ __forceinline__ void unit(const uint8_t *b, int, int *q, float *d, float *m)
    {
        d[0] = d[1] = h2f(ld_u16(b));
        m[0] = m[1] = h2f(ld_u16(b + 2));
        nibble_words(b + 4, q);
    }
};

template <> struct dqi<HEARTH_DTYPE_Q5_0> {
    static __device__ __forceinline__ void unit(const uint8_t *b, int, int *q, float *d, float *m)
    {
        float s = h2f(ld_u16(b));
        uint32_t h = ld_u32_a2(b + 2);
        nibble_words(b + 6, q);
        q5_high_bits(h, q);
        d[0] = d[1] = s;
        m[0] = m[1] = -16.0f * s;
    }
};

template <> struct dqi<HEARTH_DTYPE_Q5_1> {
    static __device__ __forceinline__ void unit(const uint8_t *b, int, int *q, float *d, float *m)
    {
        d[0] = d[1] = h2f(ld_u16(b));
        m[0] = m[1] = h2f(ld_u16(b + 2));
        uint32_t h = ld_u32_a2(b + 4);
        nibble_words(b + 8, q);
        q5_high_bits(h, q);
    }
};

template <> struct dqi<HEARTH_DTYPE_Q8_0> {
    static __device__ __forceinline__ void unit(const uint8_t *b, int, int *q, float *d, float *m)
    {
        d[0] = d[1] = h2f(ld_u16(b));
        m[0] = m[1] = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; j++)
            q[j] = (int)ld_u32_a2(b + 2 + 4 * j);
    }
};

template <> struct dqi<HEARTH_DTYPE_Q2_K> {
    static __device__ __forceinline__ void unit(const uint8_t *b, int u, int *q, float *d, float *m)
    {
        float s = h2f(ld_u16(b + 80)), smin = h2f(ld_u16(b + 82));
        int sc0 = b[2 * u], sc1 = b[2 * u + 1], sh = 2 * (u % 4);
        const uint8_t *p = b + 16 + 32 * (u / 4);
#pragma unroll
        for (int j = 0; j < 8; j++)
            q[j] = (int)((ld_u32_a2(p + 4 * j) >> sh) & 0x03030303u);
        d[0] = s * (float)(sc0 & 15), d[1] = s * (float)(sc1 & 15);
        m[0] = -smin * (float)(sc0 >> 4), m[1] = -smin * (float)(sc1 >> 4);
    }
};

template <> struct dqi<HEARTH_DTYPE_Q3_K> {
    static __device__ __forceinline__ void unit(const uint8_t *b, int u, int *q, float *d, float *m)
    {
        float s = h2f(ld_u16(b + 108));
        int sh = 2 * (u % 4);
        const uint8_t *p = b + 32 + 32 * (u / 4);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            uint32_t lo = (ld_u32_a2(p + 4 * j) >> sh) & 0x03030303u;
            uint32_t hi = ((ld_u32_a2(b + 4 * j) >> u) & 0x01010101u) << 2;
            q[j] = (int)(lo | hi); /* 0..7: the code plus 4 */
        }
        d[0] = s * (float)q3k_scale(b + 96, 2 * u);
        d[1] = s * (float)q3k_scale(b + 96, 2 * u + 1);
        m[0] = -4.0f * d[0], m[1] = -4.0f * d[1];
    }
};

template <> struct dqi<HEARTH_DTYPE_Q4_K> {
    static __device__ __forceinline__ void unit(const uint8_t *b, int u, int *q, float *d, float *m)
    {
        float s = h2f(ld_u16(b)), smin = h2f(ld_u16(b + 2));
        int sc, mn, sh = 4 * (u % 2);
        scale_min_k4(u, b + 4, &sc, &mn);
        const uint8_t *p = b + 16 + 32 * (u / 2);
#pragma unroll
        for (int j = 0; j < 8; j++)
            q[j] = (int)((ld_u32_a2(p + 4 * j) >> sh) & 0x0f0f0f0fu);
        d[0] = d[1] = s * (float)sc;
        m[0] = m[1] = -smin * (float)mn;
    }
};

template <> struct dqi<HEARTH_DTYPE_Q5_K> {
    static __device__ __forceinline__ void unit(const uint8_t *b, int u, int *q, float *d, float *m)
    {
        float s = h2f(ld_u16(b)), smin = h2f(ld_u16(b + 2));
        int sc, mn, sh = 4 * (u % 2);
        scale_min_k4(u, b + 4, &sc, &mn);
        const uint8_t *p = b + 48 + 32 * (u / 2);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            uint32_t lo = (ld_u32_a2(p + 4 * j) >> sh) & 0x0f0f0f0fu;
            uint32_t hi = ((ld_u32_a2(b + 16 + 4 * j) >> u) & 0x01010101u) << 4;
            q[j] = (int)(lo | hi);
        }
        d[0] = d[1] = s * (float)sc;
        m[0] = m[1] = -smin * (float)mn;
    }
};

template <> struct dqi<HEARTH_DTYPE_Q6_K> {
    static __device__ __forceinline__ void unit(const uint8_t *b, int u, int *q, float *d, float *m)
    {
        float s = h2f(ld_u16(b + 208));
        int hh = u / 4, k = u % 4, shl = k < 2 ? 0 : 4, shh = 2 * k;
        const uint8_t *pl = b + 64 * hh + 32 * (k % 2), *ph = b + 128 + 32 * hh;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            uint32_t lo = (ld_u32_a2(pl + 4 * j) >> shl) & 0x0f0f0f0fu;
            uint32_t hi = ((ld_u32_a2(ph + 4 * j) >> shh) & 0x03030303u) << 4;
            q[j] = (int)(lo | hi); /* 0..63: the code plus 32 */
        }
        d[0] = s * (float)(int8_t)b[192 + 2 * u];
        d[1] = s * (float)(int8_t)b[193 + 2 * u];
        m[0] = -32.0f * d[0], m[1] = -32.0f * d[1];
    }
};

#endif
