/*
 * cuda/dequant: whole-row dequantization (to F16 for the cuBLAS path, to F32
 * for tests) and embedding rows (get_rows with dequant and scale).
 *
 * One thread per 32-element unit: dq<T>::unit in registers, then stores of
 * 32 halves (4 uint4) or 32 floats. Rows are read from the padded layout of
 * cuda/layout.h. These are bandwidth-trivial next to the GEMM they feed.
 */
#include "dequant.cuh"

template <int T, typename O>
static __global__ void dequant_kernel(const uint8_t *w, int64_t row_stride, int64_t units_per_row,
                                      int64_t r0, int64_t n_units, O *dst, const int32_t *ids,
                                      float scale)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_units)
        return;
    int64_t r = i / units_per_row, g = i % units_per_row;
    int64_t src_row = ids ? (int64_t)ids[r] : r0 + r;
    float y[32];
    dq_row_unit<T>(w + src_row * row_stride, g, y);
    O *o = dst + i * 32;
    if constexpr (sizeof(O) == 2) {
        uint32_t h[16];
#pragma unroll
        for (int j = 0; j < 16; j++) {
            __half2 v = __floats2half2_rn(y[2 * j] * scale, y[2 * j + 1] * scale);
            h[j] = *(uint32_t *)&v;
        }
        uint4 *o4 = (uint4 *)o;
#pragma unroll
        for (int j = 0; j < 4; j++)
            o4[j] = make_uint4(h[4 * j], h[4 * j + 1], h[4 * j + 2], h[4 * j + 3]);
    } else {
        float4 *o4 = (float4 *)o;
#pragma unroll
        for (int j = 0; j < 8; j++)
            o4[j] = make_float4(y[4 * j] * scale, y[4 * j + 1] * scale, y[4 * j + 2] * scale,
                                y[4 * j + 3] * scale);
    }
}

template <typename O>
static hearth_status dequant_launch(const struct cuda_wlayout *l, const void *d_w, int64_t r0,
                                    int64_t n, O *d_dst, const int32_t *ids, float scale,
                                    void *stream)
{
    if (n <= 0)
        return HEARTH_OK;
    if (!ids && (r0 < 0 || r0 + n > l->n_rows))
        return err_set(HEARTH_ERR_INVALID_ARG, "cuda dequant: rows [%lld, %lld) of %lld",
                       (long long)r0, (long long)(r0 + n), (long long)l->n_rows);
    int64_t upr = l->k / 32, units = n * upr;
    unsigned grid = cuda__blocks(units, 128);
    cudaStream_t s = CUDA_STREAM(stream);
    const uint8_t *w = (const uint8_t *)d_w;
    int64_t rs = (int64_t)l->row_stride;
    switch (l->type) {
#define DQ_CASE(T)                                                                    \
    case T:                                                                           \
        dequant_kernel<T, O><<<grid, 128, 0, s>>>(w, rs, upr, r0, units, d_dst, ids,  \
                                                   scale);                            \
        break;
        CUDA_FOR_TYPES(DQ_CASE)
#undef DQ_CASE
    default:
        return err_set(HEARTH_ERR_UNSUPPORTED, "cuda dequant: no kernel for type %s",
                       hearth_dtype_name(l->type));
    }
    CUDA_RETURN_LAUNCH();
}

extern "C" hearth_status cuda_dequant_f16(const struct cuda_wlayout *l, const void *d_w,
                                          int64_t r0, int64_t n, uint16_t *d_dst, void *stream)
{
    return dequant_launch<__half>(l, d_w, r0, n, (__half *)d_dst, NULL, 1.0f, stream);
}

extern "C" hearth_status cuda_dequant_f32(const struct cuda_wlayout *l, const void *d_w,
                                          int64_t r0, int64_t n, float *d_dst, void *stream)
{
    return dequant_launch<float>(l, d_w, r0, n, d_dst, NULL, 1.0f, stream);
}

extern "C" hearth_status cuda_embed(const struct cuda_wlayout *l, const void *d_table,
                                    const int32_t *d_ids, int n_tok, float scale, float *d_out,
                                    void *stream)
{
    return dequant_launch<float>(l, d_table, 0, n_tok, d_out, d_ids, scale, stream);
}
