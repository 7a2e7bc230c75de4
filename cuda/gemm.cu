/*
 * cuda/gemm: the cuBLAS prefill path and the matmul dispatcher.
 *
 * cuBLAS path: x is rounded to F16 once ([n_tok][K] at the front of the
 * scratch), then the weight is dequantized to F16 a slab of rows at a time
 * into the rest of the scratch and multiplied with cublasGemmEx (F16 inputs,
 * F32 compute and output). In cuBLAS's column-major terms, y^T (N x n_tok,
 * ld y_stride) = W_slab (stored as K x rows, transposed) * x^T (K x n_tok).
 * Slabs keep the scratch bounded (a 128256 x 4096 output projection would
 * need 1 GB as F16); the slab is as tall as the scratch allows.
 *
 * Dispatch (cuda_matmul): n_tok <= CUDA_MATVEC_MAX_TOK -> fused matvec (one
 * launch for all weights); n_tok >= CUDA_MATMUL_BLAS_MIN_TOK with a handle
 * and enough scratch -> cuBLAS; otherwise the WMMA kernel (mmq.cu). The
 * crossover is a guess to be replaced by bench/bench-cuda.c's numbers.
 */
#include <cublas_v2.h>
#include <dlfcn.h>

#include "common.cuh" /* not dequant.cuh: no decoding here (cuda_dequant_f16 does it) */

/*
 * cuBLAS is loaded with dlopen on first use rather than linked: libcublasLt's
 * static initializers touch ~160 MB of pages at program start, which every
 * `hearth` process would pay on machines with no GPU at all (and which broke
 * the CLI's peak-RSS bound). Only the five entry points below are used.
 */
static struct {
    int tried;
    void *lib;
    decltype(&cublasCreate_v2) create;
    decltype(&cublasDestroy_v2) destroy;
    decltype(&cublasSetStream_v2) set_stream;
    cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                              const void *, const void *, cudaDataType, int, const void *,
                              cudaDataType, int, const void *, void *, cudaDataType, int,
                              cublasComputeType_t, cublasGemmAlgo_t);
    decltype(&cublasGetStatusName) status_name;
} blas_lib;

static hearth_status blas_load(void)
{
    if (blas_lib.lib)
        return HEARTH_OK;
    if (!blas_lib.tried) {
        blas_lib.tried = 1;
        static const char *const names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
        for (size_t i = 0; i < sizeof names / sizeof names[0] && !blas_lib.lib; i++)
            blas_lib.lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (blas_lib.lib) {
            blas_lib.create = (decltype(blas_lib.create))dlsym(blas_lib.lib, "cublasCreate_v2");
            blas_lib.destroy = (decltype(blas_lib.destroy))dlsym(blas_lib.lib, "cublasDestroy_v2");
            blas_lib.set_stream =
                (decltype(blas_lib.set_stream))dlsym(blas_lib.lib, "cublasSetStream_v2");
            blas_lib.gemm_ex = (decltype(blas_lib.gemm_ex))dlsym(blas_lib.lib, "cublasGemmEx");
            blas_lib.status_name =
                (decltype(blas_lib.status_name))dlsym(blas_lib.lib, "cublasGetStatusName");
            if (!blas_lib.create || !blas_lib.destroy || !blas_lib.set_stream ||
                !blas_lib.gemm_ex || !blas_lib.status_name) {
                dlclose(blas_lib.lib);
                blas_lib.lib = NULL;
            }
        }
    }
    if (!blas_lib.lib)
        return err_set(HEARTH_ERR_UNSUPPORTED,
                       "cuBLAS (libcublas.so.13) could not be loaded; the tensor-core kernel "
                       "serves prefill instead");
    return HEARTH_OK;
}

static hearth_status blas_fail(cublasStatus_t e, const char *expr, int line)
{
    hearth_status st = e == CUBLAS_STATUS_ALLOC_FAILED ? HEARTH_ERR_DEVICE_OOM
                                                       : HEARTH_ERR_BACKEND;
    return err_set(st, "%s:%d: %s failed: %s", __FILE__, line, expr, blas_lib.status_name(e));
}

#define BLAS_TRY(call)                                                        \
    do {                                                                      \
        cublasStatus_t blas__e = (call);                                      \
        if (blas__e != CUBLAS_STATUS_SUCCESS)                                 \
            return blas_fail(blas__e, #call, __LINE__);                       \
    } while (0)

extern "C" hearth_status cuda_blas_create(void **blas)
{
    cublasHandle_t h = NULL;
    *blas = NULL;
    hearth_status st = blas_load();
    if (st != HEARTH_OK)
        return st;
    BLAS_TRY(blas_lib.create(&h));
    *blas = (void *)h;
    return HEARTH_OK;
}

extern "C" void cuda_blas_destroy(void *blas)
{
    if (blas && blas_lib.lib)
        blas_lib.destroy((cublasHandle_t)blas);
}

static size_t align256(size_t n)
{
    return (n + 255u) & ~(size_t)255u;
}

extern "C" size_t cuda_matmul_blas_ws_min(int64_t K, int n_tok)
{
    /* x in F16 plus one slab of 64 weight rows */
    return align256((size_t)n_tok * (size_t)K * 2u) + (size_t)64 * (size_t)K * 2u;
}

static __global__ void x_to_f16_kernel(const float *x, int64_t x_stride, int64_t k, int n_tok,
                                       __half *out)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)n_tok * k)
        return;
    int64_t t = i / k, c = i % k;
    out[i] = __float2half_rn(x[t * x_stride + c]);
}

static __global__ void add_bias_kernel(float *y, int64_t y_stride, const float *b, int64_t n,
                                       int n_tok)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)n_tok * n)
        return;
    y[(i / n) * y_stride + i % n] += b[i % n];
}

extern "C" hearth_status cuda_matmul_blas(void *blas, const struct cuda_mm_out *w,
                                          const float *d_x, int64_t x_stride, int n_tok,
                                          void *d_ws, size_t ws_bytes, void *stream)
{
    const struct cuda_wlayout *l = w->l;
    const int64_t K = l->k;
    if (!blas || n_tok < 1 || ws_bytes < cuda_matmul_blas_ws_min(K, n_tok))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "cuda_matmul_blas: handle %p, n_tok %d, scratch %zu bytes (need %zu)",
                       blas, n_tok, ws_bytes, cuda_matmul_blas_ws_min(K, n_tok));
    if (K > 0x7fffffff || l->n_rows > 0x7fffffff || w->y_stride > 0x7fffffff)
        return err_set(HEARTH_ERR_INVALID_ARG, "cuda_matmul_blas: dimensions beyond int");
    cudaStream_t s = CUDA_STREAM(stream);
    cublasHandle_t h = (cublasHandle_t)blas;
    __half *x16 = (__half *)d_ws;
    size_t x_bytes = align256((size_t)n_tok * (size_t)K * 2u);
    __half *w16 = (__half *)((uint8_t *)d_ws + x_bytes);
    int64_t slab = (int64_t)((ws_bytes - x_bytes) / ((size_t)K * 2u));
    if (slab > l->n_rows)
        slab = l->n_rows;

    x_to_f16_kernel<<<cuda__blocks((int64_t)n_tok * K, 256), 256, 0, s>>>(d_x, x_stride, K,
                                                                          n_tok, x16);
    cudaError_t ce = cudaGetLastError();
    if (ce != cudaSuccess)
        return cuda__fail(ce, "x_to_f16_kernel", __FILE__, __LINE__);
    BLAS_TRY(blas_lib.set_stream(h, s));
    const float alpha = 1.0f, beta = 0.0f;
    for (int64_t r0 = 0; r0 < l->n_rows; r0 += slab) {
        int64_t n = l->n_rows - r0 < slab ? l->n_rows - r0 : slab;
        hearth_status st = cuda_dequant_f16(l, w->d_w, r0, n, (uint16_t *)w16, stream);
        if (st != HEARTH_OK)
            return st;
        BLAS_TRY(blas_lib.gemm_ex(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, n_tok, (int)K, &alpha, w16,
                              CUDA_R_16F, (int)K, x16, CUDA_R_16F, (int)K, &beta, w->d_y + r0,
                              CUDA_R_32F, (int)w->y_stride, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
    }
    if (w->d_b) {
        add_bias_kernel<<<cuda__blocks((int64_t)n_tok * l->n_rows, 256), 256, 0, s>>>(
            w->d_y, w->y_stride, w->d_b, l->n_rows, n_tok);
        CUDA_RETURN_LAUNCH();
    }
    return HEARTH_OK;
}

extern "C" hearth_status cuda_matmul(void *blas, int n_w, const struct cuda_mm_out *w,
                                     const float *d_x, int64_t x_stride, int n_tok, void *d_ws,
                                     size_t ws_bytes, void *stream)
{
    if (n_w < 1 || n_w > 3)
        return err_set(HEARTH_ERR_INVALID_ARG, "cuda_matmul: n_w %d (1..3)", n_w);
    bool aligned = ((uintptr_t)d_x & 15u) == 0 && x_stride % 4 == 0;
    for (int i = 0; i < n_w; i++)
        aligned = aligned && (w[i].l->row_stride & 15u) == 0 && ((uintptr_t)w[i].d_w & 15u) == 0;
    /* unaligned rows (GGUF rows uploaded as they are): the MMA kernel reads any 2-byte rows */
    if (n_tok <= CUDA_MATVEC_MAX_TOK && aligned) {
        /*
         * One launch per (type, K): each weight not yet taken leads one with the
         * later weights that match it, so Q4_K_M's Q4_K q and k share a launch
         * beside a Q6_K v rather than all three going alone.
         */
        bool taken[3] = {false, false, false};
        for (int i = 0; i < n_w; i++) {
            if (taken[i])
                continue;
            struct cuda_mm_out g[3];
            int n = 0;
            g[n++] = w[i];
            for (int j = i + 1; j < n_w; j++)
                if (!taken[j] && w[j].l->type == w[i].l->type && w[j].l->k == w[i].l->k) {
                    taken[j] = true;
                    g[n++] = w[j];
                }
            hearth_status st = cuda_matvec(n, g, d_x, x_stride, n_tok, stream);
            if (st != HEARTH_OK)
                return st;
        }
        return HEARTH_OK;
    }
    for (int i = 0; i < n_w; i++) {
        hearth_status st;
        if (blas && n_tok >= CUDA_MATMUL_BLAS_MIN_TOK &&
            ws_bytes >= cuda_matmul_blas_ws_min(w[i].l->k, n_tok))
            st = cuda_matmul_blas(blas, &w[i], d_x, x_stride, n_tok, d_ws, ws_bytes, stream);
        else
            st = cuda_matmul_mma(&w[i], d_x, x_stride, n_tok, stream);
        if (st != HEARTH_OK)
            return st;
    }
    return HEARTH_OK;
}
