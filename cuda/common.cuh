/*
 * cuda/common.cuh: what every cuda/<op>.cu shares: the CUDA_TRY check macro,
 * launch-status helpers, warp reductions and f16/bf16 conversions.
 *
 * Errors are values (style points 6, 7): CUDA_TRY(call, label) records the
 * failing expression, the runtime's error name and file:line with err_set()
 * and jumps to label; cudaErrorMemoryAllocation becomes HEARTH_ERR_DEVICE_OOM
 * (the planner acts on it), every other error HEARTH_ERR_BACKEND. The
 * enclosing function must have a `hearth_status st` variable. After each
 * launch, CUDA_CHECK_LAUNCH(label) runs cudaGetLastError through the same
 * path, so a bad launch configuration is reported at its launcher, not at the
 * next synchronize.
 *
 * Only .cu files include this (C++ stays inside cuda/); the C API they
 * implement is cuda/ops.h.
 */
#ifndef HEARTH_CUDA_COMMON_CUH
#define HEARTH_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "err.h"
#include "hearth.h"
}

#include "ops.h"

/* Maps a runtime error to a status and records the detail; returns the status. */
static inline hearth_status cuda__fail(cudaError_t e, const char *expr, const char *file,
                                       int line)
{
    hearth_status st = e == cudaErrorMemoryAllocation ? HEARTH_ERR_DEVICE_OOM
                                                      : HEARTH_ERR_BACKEND;
    cudaGetLastError(); /* clear non-sticky errors so the next call starts clean */
    return err_set(st, "%s:%d: %s failed: %s (%s)", file, line, expr, cudaGetErrorName(e),
                   cudaGetErrorString(e));
}

#define CUDA_TRY(call, label)                                                \
    do {                                                                     \
        cudaError_t cuda__e = (call);                                        \
        if (cuda__e != cudaSuccess) {                                        \
            st = cuda__fail(cuda__e, #call, __FILE__, __LINE__);             \
            goto label;                                                      \
        }                                                                    \
    } while (0)

/* For launchers with nothing to clean up: returns the status directly. */
#define CUDA_RETURN_LAUNCH()                                                 \
    do {                                                                     \
        cudaError_t cuda__e = cudaGetLastError();                            \
        if (cuda__e != cudaSuccess)                                          \
            return cuda__fail(cuda__e, "kernel launch", __FILE__, __LINE__); \
        return HEARTH_OK;                                                    \
    } while (0)

#define CUDA_STREAM(s) ((cudaStream_t)(s))

static inline unsigned cuda__blocks(int64_t n, int per)
{
    return (unsigned)((n + per - 1) / per);
}

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over a block of blockDim.x (a multiple of 32, <= 1024) threads; every thread gets it. */
__device__ __forceinline__ float block_sum(float v, float *red /* [32] shared */)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* red may still be read by a previous call */
    if (lane == 0)
        red[w] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.0f;
    return warp_sum(v);
}

__device__ __forceinline__ float h2f(uint16_t h)
{
    return __half2float(__ushort_as_half(h));
}

__device__ __forceinline__ float bf2f(uint16_t h)
{
    return __uint_as_float((uint32_t)h << 16);
}

/* Little-endian u16 from a 2-byte-aligned pointer (all f16 fields of every block are). */
__device__ __forceinline__ uint16_t ld_u16(const uint8_t *p)
{
    return *(const uint16_t *)p;
}

#endif
