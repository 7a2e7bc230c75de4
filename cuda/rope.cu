/*
 * cuda/rope: rotary position embedding in place, token t at position
 * *d_pos + t (device-side so a decode step is graph-capturable, ops.h).
 *
 * The angle is computed exactly as cpu_rope_table does, in double
 * (base^(-2k/n_rot) * freq_scale / divs[k] * pos), then rounded to float for
 * cos/sin, so GPU and CPU rotate by the same float constants up to libm's
 * last-bit differences. Double math costs little on Hopper (and is a few
 * operations per pair here); a consumer GPU would want a float table per
 * position instead. One block per token, a thread per (head, pair).
 */
#include "common.cuh"

static __global__ void rope_kernel(float *x, int64_t xs, int n_heads, int hd, int n_rot,
                                   const int32_t *pos, float base, float fscale,
                                   const float *divs, int neox)
{
    const int half = n_rot / 2;
    const int64_t p = (int64_t)*pos + blockIdx.x;
    float *row = x + (int64_t)blockIdx.x * xs;
    for (int e = threadIdx.x; e < n_heads * half; e += blockDim.x) {
        int h = e / half, k = e % half;
        double inv = pow((double)base, -2.0 * k / (double)n_rot) * (double)fscale;
        if (divs)
            inv /= (double)divs[k];
        double th = (double)p * inv;
        float c = (float)cos(th), s = (float)sin(th);
        float *v = row + (int64_t)h * hd;
        int i = neox ? k : 2 * k, j = neox ? k + half : 2 * k + 1;
        float a = v[i], b = v[j];
        v[i] = a * c - b * s;
        v[j] = a * s + b * c;
    }
}

extern "C" hearth_status cuda_rope(float *d_x, int64_t x_stride, int n_tok, int n_heads,
                                   int head_dim, int n_rot, const int32_t *d_pos, float base,
                                   float freq_scale, const float *d_divs, int mode, void *stream)
{
    if (n_tok <= 0)
        return HEARTH_OK;
    if (n_rot < 2 || n_rot > head_dim || (n_rot & 1) || (mode != 0 && mode != 2))
        return err_set(HEARTH_ERR_INVALID_ARG, "cuda_rope: n_rot %d of head_dim %d, mode %d",
                       n_rot, head_dim, mode);
    rope_kernel<<<(unsigned)n_tok, 128, 0, CUDA_STREAM(stream)>>>(
        d_x, x_stride, n_heads, head_dim, n_rot, d_pos, base, freq_scale, d_divs, mode == 2);
    CUDA_RETURN_LAUNCH();
}
