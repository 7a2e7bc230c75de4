/*
 * cuda/mmq: prefill matmul on tensor cores, y[t][r] = W row r . x[t] (+ b[r]),
 * for any number of tokens, any weight type.
 *
 * A block (4 warps) computes a 64-token x 64-row tile of y. Per 32-wide step
 * of K, half the threads unpack one 32-element unit of a weight row each
 * (dq<T>::unit, straight from global memory) into F16 in shared memory, the
 * other half round 32 activations of a token to F16; then each warp runs a
 * 2x2 grid of WMMA m16n16k16 products (F16 in, F32 accumulate) over its 32x32
 * quarter. The grid's x dimension walks token tiles, so blocks that share a
 * weight stripe run back to back and the stripe is re-read from L2, not DRAM.
 *
 * Which path takes which shape (cuda_matmul in gemm.cu): n_tok <= 4 goes to
 * the matvec, n_tok >= CUDA_MATMUL_BLAS_MIN_TOK to cuBLAS when scratch is
 * given, this kernel otherwise. These are first guesses: bench/bench-cuda.c
 * measures both prefill paths on the GPU and the thresholds must follow it.
 * Rejected for a first version: int8 mma (m16n8k32) with q8_1 activations
 * (faster on Hopper, but its rounding differs from the F16 path the tests
 * bound) and wgmma/TMA pipelines (sm_90a only; CI builds plain sm_90).
 */
#include <mma.h>

#include "dequant.cuh"

#define MM_BM 64 /* tokens per tile */
#define MM_BN 64 /* weight rows per tile */
#define MM_BK 32
#define MM_LDS 40 /* halves per shared row: 32 + 8 padding against bank conflicts */
#define MM_LDC 68

template <int T>
static __global__ void __launch_bounds__(128)
    mmq_kernel(const uint8_t *w, int64_t row_stride, int64_t n_rows, int64_t k, const float *b,
               const float *x, int64_t x_stride, int n_tok, float *y, int64_t y_stride)
{
    using namespace nvcuda;
    __shared__ __align__(32) __half As[MM_BM * MM_LDS];
    __shared__ __align__(32) __half Bs[MM_BN * MM_LDS];
    __shared__ __align__(32) float Cs[MM_BM * MM_LDC];

    const int tid = threadIdx.x, warp = tid >> 5;
    const int64_t m0 = (int64_t)blockIdx.x * MM_BM, n0 = (int64_t)blockIdx.y * MM_BN;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++)
            wmma::fill_fragment(acc[i][j], 0.0f);

    for (int64_t k0 = 0; k0 < k; k0 += MM_BK) {
        float v[32];
        __half *dst;
        if (tid < 64) {
            int64_t n = n0 + tid;
            dst = Bs + tid * MM_LDS;
            if (n < n_rows)
                dq_row_unit<T>(w + n * row_stride, k0 / 32, v);
            else
#pragma unroll
                for (int i = 0; i < 32; i++)
                    v[i] = 0.0f;
        } else {
            int64_t m = m0 + (tid - 64);
            dst = As + (tid - 64) * MM_LDS;
            if (m < n_tok) {
                const float4 *x4 = (const float4 *)(x + m * x_stride + k0);
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    float4 q = __ldg(x4 + i);
                    v[4 * i] = q.x, v[4 * i + 1] = q.y, v[4 * i + 2] = q.z, v[4 * i + 3] = q.w;
                }
            } else {
#pragma unroll
                for (int i = 0; i < 32; i++)
                    v[i] = 0.0f;
            }
        }
#pragma unroll
        for (int i = 0; i < 16; i++)
            ((__half2 *)dst)[i] = __floats2half2_rn(v[2 * i], v[2 * i + 1]);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < MM_BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb[2];
#pragma unroll
            for (int i = 0; i < 2; i++)
                wmma::load_matrix_sync(fa[i], As + (wm + 16 * i) * MM_LDS + kk, MM_LDS);
#pragma unroll
            for (int j = 0; j < 2; j++)
                wmma::load_matrix_sync(fb[j], Bs + (wn + 16 * j) * MM_LDS + kk, MM_LDS);
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 2; j++)
                    wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(Cs + (wm + 16 * i) * MM_LDC + wn + 16 * j, acc[i][j], MM_LDC,
                                    wmma::mem_row_major);
    __syncthreads();
    for (int e = tid; e < MM_BM * MM_BN; e += 128) {
        int mi = e / MM_BN, ni = e % MM_BN;
        int64_t m = m0 + mi, n = n0 + ni;
        if (m < n_tok && n < n_rows)
            y[m * y_stride + n] = Cs[mi * MM_LDC + ni] + (b ? b[n] : 0.0f);
    }
}

extern "C" hearth_status cuda_matmul_mma(const struct cuda_mm_out *w, const float *d_x,
                                         int64_t x_stride, int n_tok, void *stream)
{
    const struct cuda_wlayout *l = w->l;
    if (n_tok < 1 || (x_stride % 4) != 0 || ((uintptr_t)d_x & 15u) != 0)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "cuda_matmul_mma: n_tok %d, x_stride %lld (x 16-byte aligned, stride "
                       "%% 4 == 0)", n_tok, (long long)x_stride);
    int64_t gy = (l->n_rows + MM_BN - 1) / MM_BN;
    if (gy > 65535)
        return err_set(HEARTH_ERR_INVALID_ARG, "cuda_matmul_mma: %lld rows (max %d)",
                       (long long)l->n_rows, 65535 * MM_BN);
    dim3 grid(cuda__blocks(n_tok, MM_BM), (unsigned)gy);
    cudaStream_t s = CUDA_STREAM(stream);
    const uint8_t *wp = (const uint8_t *)w->d_w;
    int64_t rs = (int64_t)l->row_stride;
    switch (l->type) {
#define MM_CASE(T)                                                                        \
    case T:                                                                               \
        mmq_kernel<T><<<grid, 128, 0, s>>>(wp, rs, l->n_rows, l->k, w->d_b, d_x, x_stride,  \
                                           n_tok, w->d_y, w->y_stride);                   \
        break;
        CUDA_FOR_TYPES(MM_CASE)
#undef MM_CASE
    default:
        return err_set(HEARTH_ERR_UNSUPPORTED, "cuda_matmul_mma: no kernel for type %s",
                       hearth_dtype_name(l->type));
    }
    CUDA_RETURN_LAUNCH();
}
