/*
 * cuda/norm: RMSNorm rows (also the per-head q/k norm: rows = tokens x heads)
 * and the residual add, optionally of a normed branch (backend.h's ADD).
 *
 * One block per row; each thread keeps its strided elements' sum of squares,
 * a block reduction gives the mean. The CPU sums in double; here partial sums
 * are F32 over at most n/256 terms each before the tree reduction, which the
 * test's 1e-5 relative tolerance covers for rows up to 16k.
 */
#include "common.cuh"

#define NORM_THREADS 256

static __device__ float row_inv_rms(const float *x, int64_t n, float eps, float *red)
{
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        s = fmaf(x[i], x[i], s);
    s = block_sum(s, red);
    return rsqrtf(s / (float)n + eps);
}

static __global__ void rmsnorm_kernel(float *y, int64_t ys, const float *x, int64_t xs,
                                      const float *w, int64_t n, float eps)
{
    __shared__ float red[32];
    const float *xr = x + (int64_t)blockIdx.x * xs;
    float *yr = y + (int64_t)blockIdx.x * ys;
    float r = row_inv_rms(xr, n, eps, red);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        yr[i] = xr[i] * r * (w ? w[i] : 1.0f);
}

static __global__ void add_kernel(float *x, float *y, const float *w, int64_t n, float eps)
{
    __shared__ float red[32];
    float *xr = x + (int64_t)blockIdx.x * n, *yr = y + (int64_t)blockIdx.x * n;
    if (!w) {
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
            xr[i] += yr[i];
        return;
    }
    float r = row_inv_rms(yr, n, eps, red);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        float v = yr[i] * r * w[i];
        yr[i] = v;
        xr[i] += v;
    }
}

extern "C" hearth_status cuda_rmsnorm(float *d_y, int64_t y_stride, const float *d_x,
                                      int64_t x_stride, const float *d_w, int64_t n_rows,
                                      int64_t n, float eps, void *stream)
{
    if (n_rows <= 0)
        return HEARTH_OK;
    if (n_rows > 0x7fffffff || n < 1)
        return err_set(HEARTH_ERR_INVALID_ARG, "cuda_rmsnorm: %lld rows of %lld",
                       (long long)n_rows, (long long)n);
    rmsnorm_kernel<<<(unsigned)n_rows, NORM_THREADS, 0, CUDA_STREAM(stream)>>>(
        d_y, y_stride, d_x, x_stride, d_w, n, eps);
    CUDA_RETURN_LAUNCH();
}

extern "C" hearth_status cuda_add(float *d_x, float *d_y, const float *d_w, int64_t n_rows,
                                  int64_t n, float eps, void *stream)
{
    if (n_rows <= 0)
        return HEARTH_OK;
    if (n_rows > 0x7fffffff || n < 1)
        return err_set(HEARTH_ERR_INVALID_ARG, "cuda_add: %lld rows of %lld",
                       (long long)n_rows, (long long)n);
    add_kernel<<<(unsigned)n_rows, NORM_THREADS, 0, CUDA_STREAM(stream)>>>(d_x, d_y, d_w, n, eps);
    CUDA_RETURN_LAUNCH();
}
