/*
 * cuda/dequant.cuh: the per-type unpackers every weight-reading kernel shares
 * (matvec, MMA tiles, dequant-to-F16, embedding rows).
 *
 * dq<T>::unit(b, u, y) writes the 32 floats of unit u (elements 32u..32u+31)
 * of the block at b, in registers: y must be a compile-time-indexed array in
 * an unrolled caller. b is the block's first byte in shared or global memory;
 * blocks are at least 2-byte aligned (every block size is even and rows are
 * 16-byte aligned, cuda/layout.h), and the float blocks (F32/F16/BF16, 32
 * elements per "block") are 16-byte aligned, so those read uint4s. Formulas
 * follow the facts sheet §3 element by element, as the CPU reference does
 * (core/quant-k.c, quant-legacy.c, quant-iq.c). The lattice types (IQ1_*,
 * IQ2_*, IQ3_*) decode in cuda/dequant-iq.cuh, plain C shared with a host test.
 *
 * Instantiation is deliberate: a kernel template takes the type as a
 * parameter and each launcher's switch names the 22 types once (CUDA_FOR_TYPES),
 * so a .cu file compiles 22 kernels, not a cross product.
 */
#ifndef HEARTH_CUDA_DEQUANT_CUH
#define HEARTH_CUDA_DEQUANT_CUH

#include "common.cuh"
#include "dequant-iq.cuh"

/* X(dtype) for every type the CUDA kernels decode; matches cuda_type_geom. */
#define CUDA_FOR_TYPES(X)                                                                    \
    X(HEARTH_DTYPE_F32) X(HEARTH_DTYPE_F16) X(HEARTH_DTYPE_BF16) X(HEARTH_DTYPE_Q4_0)        \
    X(HEARTH_DTYPE_Q4_1) X(HEARTH_DTYPE_Q5_0) X(HEARTH_DTYPE_Q5_1) X(HEARTH_DTYPE_Q8_0)      \
    X(HEARTH_DTYPE_Q2_K) X(HEARTH_DTYPE_Q3_K) X(HEARTH_DTYPE_Q4_K) X(HEARTH_DTYPE_Q5_K)      \
    X(HEARTH_DTYPE_Q6_K) X(HEARTH_DTYPE_IQ4_NL) X(HEARTH_DTYPE_IQ4_XS)                      \
    X(HEARTH_DTYPE_IQ2_XXS) X(HEARTH_DTYPE_IQ2_XS) X(HEARTH_DTYPE_IQ2_S)                    \
    X(HEARTH_DTYPE_IQ3_XXS) X(HEARTH_DTYPE_IQ3_S) X(HEARTH_DTYPE_IQ1_S) X(HEARTH_DTYPE_IQ1_M)

/* IQ4_NL codebook (§3.14) packed 4 per word: K[n] = byte n % 4 of word n / 4. */
__device__ __forceinline__ float iq4_value(int n)
{
    const uint32_t w0 = 0xbfad9881u, w1 = 0xf6eaddcfu; /* -127 -104 -83 -65 | -49 -35 -22 -10 */
    const uint32_t w2 = 0x26190d01u, w3 = 0x71594535u; /* 1 13 25 38 | 53 69 89 113 */
    uint32_t b = n < 8 ? __byte_perm(w0, w1, (unsigned)n) : __byte_perm(w2, w3, (unsigned)(n - 8));
    return cuda_small_i2f((int8_t)(b & 0xffu));
}

template <int T> struct dq;

template <> struct dq<HEARTH_DTYPE_F32> {
    static constexpr int EB = 32, UB = 128;
    static __device__ __forceinline__ void unit(const uint8_t *b, int, float *y)
    {
        const float4 *p = (const float4 *)b;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            float4 v = p[i];
            y[4 * i] = v.x, y[4 * i + 1] = v.y, y[4 * i + 2] = v.z, y[4 * i + 3] = v.w;
        }
    }
};

template <> struct dq<HEARTH_DTYPE_F16> {
    static constexpr int EB = 32, UB = 64;
    static __device__ __forceinline__ void unit(const uint8_t *b, int, float *y)
    {
        const uint4 *p = (const uint4 *)b;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint4 v = p[i];
            uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                y[8 * i + 2 * j] = h2f((uint16_t)(w[j] & 0xffffu));
                y[8 * i + 2 * j + 1] = h2f((uint16_t)(w[j] >> 16));
            }
        }
    }
};

template <> struct dq<HEARTH_DTYPE_BF16> {
    static constexpr int EB = 32, UB = 64;
    static __device__ __forceinline__ void unit(const uint8_t *b, int, float *y)
    {
        const uint4 *p = (const uint4 *)b;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint4 v = p[i];
            uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                y[8 * i + 2 * j] = __uint_as_float(w[j] << 16);
                y[8 * i + 2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
            }
        }
    }
};

/* 16 packed nibble bytes at 2-byte-aligned q -> lo[16], hi[16] */
__device__ __forceinline__ void nibbles16(const uint8_t *q, int *lo, int *hi)
{
#pragma unroll
    for (int i = 0; i < 8; i++) {
        uint32_t v = ld_u16(q + 2 * i);
        lo[2 * i] = (int)(v & 15u), hi[2 * i] = (int)((v >> 4) & 15u);
        lo[2 * i + 1] = (int)((v >> 8) & 15u), hi[2 * i + 1] = (int)((v >> 12) & 15u);
    }
}

template <> struct dq<HEARTH_DTYPE_Q4_0> {
    static constexpr int EB = 32, UB = 18;
    static __device__ __forceinline__ void unit(const uint8_t *b, int, float *y)
    {
        float d = h2f(ld_u16(b));
        int lo[16], hi[16];
        nibbles16(b + 2, lo, hi);
#pragma unroll
        for (int i = 0; i < 16; i++)
            y[i] = d * cuda_small_i2f(lo[i] - 8), y[i + 16] = d * cuda_small_i2f(hi[i] - 8);
    }
};

template <> struct dq<HEARTH_DTYPE_IQ4_NL> {
    static constexpr int EB = 32, UB = 18;
    static __device__ __forceinline__ void unit(const uint8_t *b, int, float *y)
    {
        float d = h2f(ld_u16(b));
        int lo[16], hi[16];
        nibbles16(b + 2, lo, hi);
#pragma unroll
        for (int i = 0; i < 16; i++)
            y[i] = d * iq4_value(lo[i]), y[i + 16] = d * iq4_value(hi[i]);
    }
};

template <> struct dq<HEARTH_DTYPE_Q4_1> {
    static constexpr int EB = 32, UB = 20;
    static __device__ __forceinline__ void unit(const uint8_t *b, int, float *y)
    {
        float d = h2f(ld_u16(b)), m = h2f(ld_u16(b + 2));
        int lo[16], hi[16];
        nibbles16(b + 4, lo, hi);
#pragma unroll
        for (int i = 0; i < 16; i++)
            y[i] = d * cuda_small_i2f(lo[i]) + m, y[i + 16] = d * cuda_small_i2f(hi[i]) + m;
    }
};

/* Q5: qh is a LE u32 at a 2-byte-aligned address; bit e is element e's 5th bit. */
template <> struct dq<HEARTH_DTYPE_Q5_0> {
    static constexpr int EB = 32, UB = 22;
    static __device__ __forceinline__ void unit(const uint8_t *b, int, float *y)
    {
        float d = h2f(ld_u16(b));
        uint32_t h = (uint32_t)ld_u16(b + 2) | ((uint32_t)ld_u16(b + 4) << 16);
        int lo[16], hi[16];
        nibbles16(b + 6, lo, hi);
#pragma unroll
        for (int i = 0; i < 16; i++) {
            y[i] = d * cuda_small_i2f(lo[i] + (int)((h >> i) & 1u) * 16 - 16);
            y[i + 16] = d * cuda_small_i2f(hi[i] + (int)((h >> (i + 16)) & 1u) * 16 - 16);
        }
    }
};

template <> struct dq<HEARTH_DTYPE_Q5_1> {
    static constexpr int EB = 32, UB = 24;
    static __device__ __forceinline__ void unit(const uint8_t *b, int, float *y)
    {
        float d = h2f(ld_u16(b)), m = h2f(ld_u16(b + 2));
        uint32_t h = (uint32_t)ld_u16(b + 4) | ((uint32_t)ld_u16(b + 6) << 16);
        int lo[16], hi[16];
        nibbles16(b + 8, lo, hi);
#pragma unroll
        for (int i = 0; i < 16; i++) {
            y[i] = d * cuda_small_i2f(lo[i] + (int)((h >> i) & 1u) * 16) + m;
            y[i + 16] = d * cuda_small_i2f(hi[i] + (int)((h >> (i + 16)) & 1u) * 16) + m;
        }
    }
};

template <> struct dq<HEARTH_DTYPE_Q8_0> {
    static constexpr int EB = 32, UB = 34;
    static __device__ __forceinline__ void unit(const uint8_t *b, int, float *y)
    {
        float d = h2f(ld_u16(b));
#pragma unroll
        for (int i = 0; i < 16; i++) {
            uint32_t v = ld_u16(b + 2 + 2 * i);
            y[2 * i] = d * cuda_small_i2f((int8_t)(v & 0xffu));
            y[2 * i + 1] = d * cuda_small_i2f((int8_t)(v >> 8));
        }
    }
};

/* The 32 bytes at 2-byte-aligned p, as 32 ints. */
__device__ __forceinline__ void bytes32(const uint8_t *p, int *v)
{
#pragma unroll
    for (int i = 0; i < 16; i++) {
        uint32_t w = ld_u16(p + 2 * i);
        v[2 * i] = (int)(w & 0xffu), v[2 * i + 1] = (int)(w >> 8);
    }
}

template <> struct dq<HEARTH_DTYPE_Q2_K> {
    static constexpr int EB = 256, UB = 84;
    static __device__ __forceinline__ void unit(const uint8_t *b, int u, float *y)
    {
        float d = h2f(ld_u16(b + 80)), dmin = h2f(ld_u16(b + 82));
        int sc0 = b[2 * u], sc1 = b[2 * u + 1], q[32];
        bytes32(b + 16 + 32 * (u / 4), q);
        int sh = 2 * (u % 4);
        float a0 = d * (float)(sc0 & 15), m0 = dmin * (float)(sc0 >> 4);
        float a1 = d * (float)(sc1 & 15), m1 = dmin * (float)(sc1 >> 4);
#pragma unroll
        for (int i = 0; i < 32; i++) {
            float v = cuda_small_i2f((q[i] >> sh) & 3);
            y[i] = i < 16 ? a0 * v - m0 : a1 * v - m1;
        }
    }
};

__device__ __forceinline__ int q3k_scale(const uint8_t *s, int j)
{
    int low4 = j < 8 ? (s[j] & 15) : (s[j - 8] >> 4);
    int high2 = (s[8 + (j % 4)] >> (2 * (j / 4))) & 3;
    return (low4 | (high2 << 4)) - 32;
}

template <> struct dq<HEARTH_DTYPE_Q3_K> {
    static constexpr int EB = 256, UB = 110;
    static __device__ __forceinline__ void unit(const uint8_t *b, int u, float *y)
    {
        float d = h2f(ld_u16(b + 108));
        float a0 = d * (float)q3k_scale(b + 96, 2 * u);
        float a1 = d * (float)q3k_scale(b + 96, 2 * u + 1);
        int hm[32], q[32];
        bytes32(b, hm);
        bytes32(b + 32 + 32 * (u / 4), q);
        int sh = 2 * (u % 4);
#pragma unroll
        for (int i = 0; i < 32; i++) {
            int v = ((q[i] >> sh) & 3) + 4 * ((hm[i] >> u) & 1) - 4;
            y[i] = (i < 16 ? a0 : a1) * cuda_small_i2f(v);
        }
    }
};

/* Q4_K/Q5_K 6-bit scale and min of sub-block j (§3.10). */
__device__ __forceinline__ void scale_min_k4(int j, const uint8_t *s, int *sc, int *mn)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

template <> struct dq<HEARTH_DTYPE_Q4_K> {
    static constexpr int EB = 256, UB = 144;
    static __device__ __forceinline__ void unit(const uint8_t *b, int u, float *y)
    {
        float d = h2f(ld_u16(b)), dmin = h2f(ld_u16(b + 2));
        int sc, mn, q[32];
        scale_min_k4(u, b + 4, &sc, &mn);
        bytes32(b + 16 + 32 * (u / 2), q);
        float a = d * (float)sc, m = dmin * (float)mn;
        int sh = 4 * (u % 2);
#pragma unroll
        for (int i = 0; i < 32; i++)
            y[i] = a * cuda_small_i2f((q[i] >> sh) & 15) - m;
    }
};

template <> struct dq<HEARTH_DTYPE_Q5_K> {
    static constexpr int EB = 256, UB = 176;
    static __device__ __forceinline__ void unit(const uint8_t *b, int u, float *y)
    {
        float d = h2f(ld_u16(b)), dmin = h2f(ld_u16(b + 2));
        int sc, mn, q[32], h[32];
        scale_min_k4(u, b + 4, &sc, &mn);
        bytes32(b + 16, h);
        bytes32(b + 48 + 32 * (u / 2), q);
        float a = d * (float)sc, m = dmin * (float)mn;
        int sh = 4 * (u % 2);
#pragma unroll
        for (int i = 0; i < 32; i++)
            y[i] = a * cuda_small_i2f(((q[i] >> sh) & 15) + 16 * ((h[i] >> u) & 1)) - m;
    }
};

template <> struct dq<HEARTH_DTYPE_Q6_K> {
    static constexpr int EB = 256, UB = 210;
    static __device__ __forceinline__ void unit(const uint8_t *b, int u, float *y)
    {
        float d = h2f(ld_u16(b + 208));
        int hh = u / 4, k = u % 4;
        float a0 = d * (float)(int8_t)b[192 + 2 * u], a1 = d * (float)(int8_t)b[193 + 2 * u];
        int ql[32], qh[32];
        bytes32(b + 64 * hh + 32 * (k % 2), ql);
        bytes32(b + 128 + 32 * hh, qh);
        int shl = k < 2 ? 0 : 4, shh = 2 * k;
#pragma unroll
        for (int i = 0; i < 32; i++) {
            int v = (((ql[i] >> shl) & 15) | (((qh[i] >> shh) & 3) << 4)) - 32;
            y[i] = (i < 16 ? a0 : a1) * cuda_small_i2f(v);
        }
    }
};

template <> struct dq<HEARTH_DTYPE_IQ4_XS> {
    static constexpr int EB = 256, UB = 136;
    static __device__ __forceinline__ void unit(const uint8_t *b, int u, float *y)
    {
        float d = h2f(ld_u16(b));
        uint32_t sh = ld_u16(b + 2);
        int ls = ((b[4 + u / 2] >> (4 * (u % 2))) & 15) | (int)(((sh >> (2 * u)) & 3u) << 4);
        float dl = d * (float)(ls - 32);
        int lo[16], hi[16];
        nibbles16(b + 8 + 16 * u, lo, hi);
#pragma unroll
        for (int i = 0; i < 16; i++)
            y[i] = dl * iq4_value(lo[i]), y[i + 16] = dl * iq4_value(hi[i]);
    }
};

/* The lattice types: thin wrappers over cuda/dequant-iq.cuh with the device tables. */
#define DQ_IQ(T, BYTES, FN, GRID)                                                            \
    template <> struct dq<T> {                                                              \
        static constexpr int EB = 256, UB = BYTES;                                          \
        static __device__ __forceinline__ void unit(const uint8_t *b, int u, float *y)      \
        {                                                                                   \
            FN(b, u, GRID, y);                                                              \
        }                                                                                   \
    };
DQ_IQ(HEARTH_DTYPE_IQ2_XXS, 66, cuda_iq_unit_iq2xxs, cuda_iq_grid_iq2xxs)
DQ_IQ(HEARTH_DTYPE_IQ2_XS, 74, cuda_iq_unit_iq2xs, cuda_iq_grid_iq2xs)
DQ_IQ(HEARTH_DTYPE_IQ2_S, 82, cuda_iq_unit_iq2s, cuda_iq_grid_iq2s)
DQ_IQ(HEARTH_DTYPE_IQ3_XXS, 98, cuda_iq_unit_iq3xxs, cuda_iq_grid_iq3xxs)
DQ_IQ(HEARTH_DTYPE_IQ3_S, 110, cuda_iq_unit_iq3s, cuda_iq_grid_iq3s)
DQ_IQ(HEARTH_DTYPE_IQ1_S, 50, cuda_iq_unit_iq1s, cuda_iq_grid_iq1s)
DQ_IQ(HEARTH_DTYPE_IQ1_M, 56, cuda_iq_unit_iq1m, cuda_iq_grid_iq1s)
#undef DQ_IQ

/*
 * Unit g (0 .. K/32) of a row starting at row (layout of cuda/layout.h):
 * the block is g / (EB/32), the unit within it g % (EB/32).
 */
template <int T>
__device__ __forceinline__ void dq_row_unit(const uint8_t *row, int64_t g, float *y)
{
    constexpr int UPB = dq<T>::EB / 32;
    dq<T>::unit(row + (g / UPB) * dq<T>::UB, (int)(g % UPB), y);
}

#endif
