/*
 * cuda/eltwise: the element-wise ops: GLU (SwiGLU / GeGLU) and scale. One
 * thread per element; these are bandwidth-bound and tiny next to the matmuls
 * around them (fusing GLU into the down projection's activation load is the
 * obvious later step).
 */
#include "common.cuh"

static __global__ void glu_kernel(float *g, const float *u, int64_t n, int act)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    float x = g[i], a;
    if (act == 0) {
        a = x / (1.0f + expf(-x));
    } else {
        const float c = 0.7978845608028654f; /* sqrt(2/pi) */
        a = 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
    }
    g[i] = a * u[i];
}

static __global__ void scale_kernel(float *x, float s, int64_t n)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        x[i] *= s;
}

extern "C" hearth_status cuda_glu(float *d_g, const float *d_u, int64_t n, int act, void *stream)
{
    if (act != 0 && act != 1)
        return err_set(HEARTH_ERR_INVALID_ARG, "cuda_glu: activation %d (0 silu, 1 gelu)", act);
    if (n <= 0)
        return HEARTH_OK;
    glu_kernel<<<cuda__blocks(n, 256), 256, 0, CUDA_STREAM(stream)>>>(d_g, d_u, n, act);
    CUDA_RETURN_LAUNCH();
}

extern "C" hearth_status cuda_scale(float *d_x, float s, int64_t n, void *stream)
{
    if (n <= 0)
        return HEARTH_OK;
    scale_kernel<<<cuda__blocks(n, 256), 256, 0, CUDA_STREAM(stream)>>>(d_x, s, n);
    CUDA_RETURN_LAUNCH();
}
