/*
 * cuda/dequant-iq.cuh: the per-unit decoders of the lattice ("grid") quant
 * types IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S and IQ1_M, written once
 * for both the CUDA kernels (through dq<T> in cuda/dequant.cuh) and host C.
 *
 * Why host C too: these kernels were written on a machine without a GPU. The
 * header is plain C11 that nvcc also compiles as CUDA C++ (__host__ __device__
 * under __CUDACC__, static inline otherwise), so tests/test-cuda-iq-host.c runs
 * exactly the text the GPU runs on random blocks and compares it bit for bit
 * with the CPU's to_float. Only two leaf helpers differ by side: the f16 load
 * (hardware cvt on the device, core/f16.h on the host; both exact) and the u16
 * load (one 16-bit load on the device, blocks are 2-byte aligned; bytes on the
 * host, so no unaligned cast under UBSan).
 *
 * cuda_iq_unit_<type>(b, u, grid, y) writes y[0..31] = elements 32u..32u+31 of
 * the 256-element super-block at b (u = 0..7). grid is the type's table from
 * core/iq-grids.inc (uint64 entries of 8 int8 elements, uint32 entries of 4),
 * passed in so the functions are pure; every value is an exact float product
 * (an f16 scale times a small odd/integer multiplier times a grid byte fits in
 * 24 bits), so the result is independent of operation order and FMA
 * contraction, which is what makes a bit-exact CPU comparison possible.
 *
 * Where the tables live on the GPU: `__device__ const` global arrays, read
 * through L1. In every kernel that uses dq<T> the 32 lanes of a warp decode 32
 * different units, so one table read instruction carries up to 32 different
 * indexes; __constant__ memory serves one address per pass and would serialize
 * that up to 32-fold, while L1 serves it in one wavefront per distinct
 * 128-byte line (the tables are 1-16 KiB and stay L1-resident). A copy into
 * shared memory per block (bank conflicts only) is the alternative if
 * bench-cuda shows these types short of bandwidth; rejected for now because
 * dq<T>::unit has no shared-memory argument and every kernel would need one.
 */
#ifndef HEARTH_CUDA_DEQUANT_IQ_CUH
#define HEARTH_CUDA_DEQUANT_IQ_CUH

#include <stdint.h>

#include "../core/f16.h" /* the host side's f16 load, also in the host pass of nvcc */
#include "../core/iq-grids.inc"

#ifdef __CUDACC__
#define CUDA_IQ_FN static __host__ __device__ __forceinline__
#define CUDA_IQ_TABLE static __device__ const
#define CUDA_IQ_UNROLL _Pragma("unroll")
#else
#define CUDA_IQ_FN static inline
#define CUDA_IQ_TABLE static const
#define CUDA_IQ_UNROLL
#endif

/* Grid tables: device memory in a .cu file, host memory in a C file. */
CUDA_IQ_TABLE uint64_t cuda_iq_grid_iq2xxs[IQ_GRID_IQ2XXS_N] = IQ_GRID_IQ2XXS_INIT;
CUDA_IQ_TABLE uint64_t cuda_iq_grid_iq2xs[IQ_GRID_IQ2XS_N] = IQ_GRID_IQ2XS_INIT;
CUDA_IQ_TABLE uint64_t cuda_iq_grid_iq2s[IQ_GRID_IQ2S_N] = IQ_GRID_IQ2S_INIT;
CUDA_IQ_TABLE uint32_t cuda_iq_grid_iq3xxs[IQ_GRID_IQ3XXS_N] = IQ_GRID_IQ3XXS_INIT;
CUDA_IQ_TABLE uint32_t cuda_iq_grid_iq3s[IQ_GRID_IQ3S_N] = IQ_GRID_IQ3S_INIT;
CUDA_IQ_TABLE uint64_t cuda_iq_grid_iq1s[IQ_GRID_IQ1S_N] = IQ_GRID_IQ1S_INIT;

/* Little-endian u16 at a 2-byte-aligned p. */
CUDA_IQ_FN uint32_t cuda_iq_u16(const uint8_t *p)
{
#ifdef __CUDA_ARCH__
    return *(const uint16_t *)p;
#else
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
#endif
}

CUDA_IQ_FN uint32_t cuda_iq_u32(const uint8_t *p)
{
    return cuda_iq_u16(p) | (cuda_iq_u16(p + 2) << 16);
}

CUDA_IQ_FN float cuda_iq_f16(uint32_t h)
{
#ifdef __CUDA_ARCH__
    return __half2float(__ushort_as_half((unsigned short)h));
#else
    return f16_to_f32((uint16_t)h);
#endif
}

/*
 * float(q), exact for |q| < 2^22. The decoders convert once per weight, and an
 * I2F conversion issues at a fraction of the FP32 rate: on an H100 the
 * quantized matvecs ran at ~1.5e12 weights/s whatever the bits per weight
 * (bench/RESULTS.md, 2026-11-23), bound by instructions. So q goes into the
 * mantissa of 1.5 * 2^23 (an integer add) and 1.5 * 2^23 comes off (an FADD):
 * both steps exact, the same float as the conversion.
 */
CUDA_IQ_FN float cuda_small_i2f(int q)
{
#ifdef __CUDA_ARCH__
    return __int_as_float(0x4B400000 + q) - 12582912.0f;
#else
    union {
        int32_t i;
        float f;
    } u = {0x4B400000 + q};
    return u.f - 12582912.0f;
#endif
}

/* v with its sign flipped when neg is 1 (neg is 0 or 1); exact, like -v. */
CUDA_IQ_FN float cuda_iq_neg_if(float v, uint32_t neg)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float(__float_as_uint(v) ^ (neg << 31));
#else
    return neg ? -v : v;
#endif
}

/*
 * The 8 sign bits of a 7-bit sign index (IQ2_XXS, IQ2_XS, IQ3_XXS): bits 0-6
 * as given, bit 7 set when bits 0-6 have odd parity (the format stores only
 * sign patterns with an even number of minus signs).
 */
CUDA_IQ_FN uint32_t cuda_iq_signs7(uint32_t i)
{
    uint32_t p = i ^ (i >> 4);
    p ^= p >> 2;
    p ^= p >> 1;
    return i | ((p & 1u) << 7);
}

/* Element e (0..7) of an 8-byte grid entry, as a float (int8 for IQ1, 8..43 for IQ2). */
CUDA_IQ_FN float cuda_iq_g8(uint64_t g, int e)
{
    return cuda_small_i2f((int8_t)(uint8_t)((g >> (8 * e)) & 0xffu));
}

/* Eight elements dl * grid[e], sign bit e of s flipping element e. */
CUDA_IQ_FN void cuda_iq_put8(float dl, uint64_t g, uint32_t s, float *y)
{
    CUDA_IQ_UNROLL
    for (int e = 0; e < 8; e++)
        y[e] = cuda_iq_neg_if(dl * cuda_iq_g8(g, e), (s >> e) & 1u);
}

/* Same for two 4-element entries (IQ3), g0 giving elements 0-3. */
CUDA_IQ_FN void cuda_iq_put4x2(float dl, uint32_t g0, uint32_t g1, uint32_t s, float *y)
{
    CUDA_IQ_UNROLL
    for (int e = 0; e < 4; e++) {
        y[e] = cuda_iq_neg_if(dl * cuda_small_i2f((int)((g0 >> (8 * e)) & 0xffu)), (s >> e) & 1u);
        y[e + 4] = cuda_iq_neg_if(dl * cuda_small_i2f((int)((g1 >> (8 * e)) & 0xffu)),
                                  (s >> (e + 4)) & 1u);
    }
}

/*
 * IQ2_XXS, 66 bytes: d f16 @0, then per unit u an 8-byte record @2+8u: bytes
 * 0-3 are grid indexes of four 8-element groups, the LE u32 at bytes 4-7 holds
 * four 7-bit sign indexes (bits 7j..7j+6) and the unit's 4-bit scale s (bits
 * 28-31); scale = d * (0.5 + s) / 4.
 */
CUDA_IQ_FN void cuda_iq_unit_iq2xxs(const uint8_t *b, int u, const uint64_t *grid, float *y)
{
    const uint8_t *q = b + 2 + 8 * u;
    uint32_t aux = cuda_iq_u32(q + 4);
    float dl = cuda_iq_f16(cuda_iq_u16(b)) * (0.5f + (float)(aux >> 28)) * 0.25f;
    CUDA_IQ_UNROLL
    for (int j = 0; j < 4; j++)
        cuda_iq_put8(dl, grid[q[j]], cuda_iq_signs7((aux >> (7 * j)) & 127u), y + 8 * j);
}

/*
 * IQ2_XS, 74 bytes: d @0, u16 qs[32] @2 (group g: grid index bits 0-8, sign
 * index bits 9-15), scales[8] @66 (unit u: low nibble for its first 16
 * elements, high nibble for the last 16); scale = d * (0.5 + s) / 4.
 */
CUDA_IQ_FN void cuda_iq_unit_iq2xs(const uint8_t *b, int u, const uint64_t *grid, float *y)
{
    float d = cuda_iq_f16(cuda_iq_u16(b));
    uint32_t sc = b[66 + u];
    float dl[2] = {d * (0.5f + (float)(sc & 15u)) * 0.25f, d * (0.5f + (float)(sc >> 4)) * 0.25f};
    CUDA_IQ_UNROLL
    for (int j = 0; j < 4; j++) {
        uint32_t q = cuda_iq_u16(b + 2 + 8 * u + 2 * j);
        cuda_iq_put8(dl[j / 2], grid[q & 511u], cuda_iq_signs7(q >> 9), y + 8 * j);
    }
}

/*
 * IQ2_S, 82 bytes: d @0, qs[32] @2 (low 8 bits of group g's grid index),
 * signs[32] @34 (8 sign bits of group g), qh[8] @66 (index bits 8-9 of group
 * 4u+j at bits 2j..2j+1 of qh[u]), scales[8] @74 (as IQ2_XS).
 */
CUDA_IQ_FN void cuda_iq_unit_iq2s(const uint8_t *b, int u, const uint64_t *grid, float *y)
{
    float d = cuda_iq_f16(cuda_iq_u16(b));
    uint32_t sc = b[74 + u], qh = b[66 + u];
    float dl[2] = {d * (0.5f + (float)(sc & 15u)) * 0.25f, d * (0.5f + (float)(sc >> 4)) * 0.25f};
    CUDA_IQ_UNROLL
    for (int j = 0; j < 4; j++) {
        uint32_t idx = b[2 + 4 * u + j] | (((qh >> (2 * j)) & 3u) << 8);
        cuda_iq_put8(dl[j / 2], grid[idx], b[34 + 4 * u + j], y + 8 * j);
    }
}

/*
 * IQ3_XXS, 98 bytes: d @0, qs[64] @2 (4-element grid indexes; unit u uses
 * qs[8u..8u+7], two per 8-element group), then per unit a LE u32 @66+4u with
 * four 7-bit sign indexes and the scale s in bits 28-31; scale = d*(0.5+s)/2.
 */
CUDA_IQ_FN void cuda_iq_unit_iq3xxs(const uint8_t *b, int u, const uint32_t *grid, float *y)
{
    const uint8_t *q = b + 2 + 8 * u;
    uint32_t aux = cuda_iq_u32(b + 66 + 4 * u);
    float dl = cuda_iq_f16(cuda_iq_u16(b)) * (0.5f + (float)(aux >> 28)) * 0.5f;
    CUDA_IQ_UNROLL
    for (int j = 0; j < 4; j++)
        cuda_iq_put4x2(dl, grid[q[2 * j]], grid[q[2 * j + 1]],
                       cuda_iq_signs7((aux >> (7 * j)) & 127u), y + 8 * j);
}

/*
 * IQ3_S, 110 bytes: d @0, qs[64] @2 (low 8 bits of 4-element grid indexes),
 * qh[8] @66 (bit i of qh[u] is bit 8 of index 8u+i), signs[32] @74 (8 sign
 * bits per 8-element group), scales[4] @106 (unit u: nibble u%2 of byte
 * u/2); scale = d * (1 + 2s).
 */
CUDA_IQ_FN void cuda_iq_unit_iq3s(const uint8_t *b, int u, const uint32_t *grid, float *y)
{
    const uint8_t *q = b + 2 + 8 * u;
    uint32_t qh = b[66 + u];
    uint32_t s = (b[106 + u / 2] >> (4 * (u % 2))) & 15u;
    float dl = cuda_iq_f16(cuda_iq_u16(b)) * (float)(1u + 2u * s);
    CUDA_IQ_UNROLL
    for (int j = 0; j < 4; j++) {
        uint32_t i0 = q[2 * j] | (((qh >> (2 * j)) & 1u) << 8);
        uint32_t i1 = q[2 * j + 1] | (((qh >> (2 * j + 1)) & 1u) << 8);
        cuda_iq_put4x2(dl, grid[i0], grid[i1], b[74 + 4 * u + j], y + 8 * j);
    }
}

/* Eight elements dl * (grid[e] + delta) of an IQ1 group (grid in -1, 0, 1). */
CUDA_IQ_FN void cuda_iq_put1(float dl, uint64_t g, float delta, float *y)
{
    CUDA_IQ_UNROLL
    for (int e = 0; e < 8; e++)
        y[e] = dl * (cuda_iq_g8(g, e) + delta);
}

/*
 * IQ1_S, 50 bytes: d @0, qs[32] @2 (low 8 bits of group g's 11-bit grid
 * index), u16 qh[8] @34: for unit u, bits 3j..3j+2 are index bits 8-10 of
 * group 4u+j, bits 12-14 the scale s, bit 15 the sign of delta (+-1/8);
 * y = d * (2s + 1) * (grid + delta).
 */
CUDA_IQ_FN void cuda_iq_unit_iq1s(const uint8_t *b, int u, const uint64_t *grid, float *y)
{
    uint32_t h = cuda_iq_u16(b + 34 + 2 * u);
    float dl = cuda_iq_f16(cuda_iq_u16(b)) * (float)(2u * ((h >> 12) & 7u) + 1u);
    float delta = (h & 0x8000u) ? -0.125f : 0.125f;
    CUDA_IQ_UNROLL
    for (int j = 0; j < 4; j++)
        cuda_iq_put1(dl, grid[b[2 + 4 * u + j] | (((h >> (3 * j)) & 7u) << 8)], delta, y + 8 * j);
}

/*
 * IQ1_M, 56 bytes: qs[32] @0 (low index bits), qh[16] @32 (nibble g%2 of
 * qh[g/2] for group g: bits 0-2 index bits 8-10, bit 3 the sign of delta),
 * u16 sc[4] @48: bits 12-15 of sc[0..3] are the f16 super-scale's nibbles
 * 0..3, and 3-bit scales at bits 3m of sc[k] give half h of unit u with
 * k = u/2, m = 2(u%2)+h; y = d * (2s + 1) * (grid + delta), with the IQ1_S grid.
 */
CUDA_IQ_FN void cuda_iq_unit_iq1m(const uint8_t *b, int u, const uint64_t *grid, float *y)
{
    /* no sc[4] array: u is a runtime value in the kernels and sc[u / 2] would go to the stack */
    uint32_t dbits = (cuda_iq_u16(b + 48) >> 12) | ((cuda_iq_u16(b + 50) >> 8) & 0xf0u) |
                     ((cuda_iq_u16(b + 52) >> 4) & 0xf00u) | (cuda_iq_u16(b + 54) & 0xf000u);
    float d = cuda_iq_f16(dbits);
    uint32_t s = cuda_iq_u16(b + 48 + 2 * (u / 2)) >> (6 * (u % 2));
    float dl[2] = {d * (float)(2u * (s & 7u) + 1u), d * (float)(2u * ((s >> 3) & 7u) + 1u)};
    CUDA_IQ_UNROLL
    for (int j = 0; j < 4; j++) {
        uint32_t nib = (uint32_t)(b[32 + 2 * u + j / 2] >> (4 * (j % 2))) & 15u;
        uint32_t idx = b[4 * u + j] | ((nib & 7u) << 8);
        cuda_iq_put1(dl[j / 2], grid[idx], (nib & 8u) ? -0.125f : 0.125f, y + 8 * j);
    }
}

#endif
