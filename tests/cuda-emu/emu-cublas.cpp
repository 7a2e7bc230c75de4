/*
 * tests/cuda-emu/emu-cublas.cpp: the cuBLAS that cuda/gemm.cu dlopens.
 *
 * build.sh compiles the cuda/ sources with -Ddlopen=emu_dlopen (and dlsym, dlclose),
 * so gemm.cu's dlopen("libcublas.so.13") lands here and gets the five entry
 * points below. cublasGemmEx is a naive implementation of its documented
 * semantics for the one combination gemm.cu uses (F16 A and B, F32 C,
 * CUBLAS_COMPUTE_32F, host alpha/beta), column-major with the op()
 * transposes, and runs as a launch on the handle's stream, so it is captured
 * into a graph like any kernel. CUDA_EMU_NO_CUBLAS=1 makes the dlopen fail,
 * which exercises the WMMA fallback instead.
 */
#include "emu-internal.h"

#include <cublas_v2.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

struct cublasContext {
    cudaStream_t stream;
};

static cublasStatus_t emu_create(cublasHandle_t *h)
{
    *h = new cublasContext();
    (*h)->stream = NULL;
    return CUBLAS_STATUS_SUCCESS;
}

static cublasStatus_t emu_destroy(cublasHandle_t h)
{
    if (!h)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

static cublasStatus_t emu_set_stream(cublasHandle_t h, cudaStream_t s)
{
    if (!h)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}

static const char *emu_status_name(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS:
        return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
        return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE:
        return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED:
        return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_EXECUTION_FAILED:
        return "CUBLAS_STATUS_EXECUTION_FAILED";
    default:
        return "CUBLAS_STATUS_UNKNOWN";
    }
}

/* A device operand of `cols` columns of `rows` used elements, leading dimension ld. */
static bool operand_ok(const void *p, int rows, int cols, int ld, size_t esize)
{
    if (rows == 0 || cols == 0)
        return true;
    size_t n = ((size_t)(cols - 1) * (size_t)ld + (size_t)rows) * esize;
    return emu_is_device_range(p, n);
}

static cublasStatus_t emu_gemm_ex(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                  int m, int n, int k, const void *alpha, const void *A,
                                  cudaDataType at, int lda, const void *B, cudaDataType bt,
                                  int ldb, const void *beta, void *C, cudaDataType ct, int ldc,
                                  cublasComputeType_t comp, cublasGemmAlgo_t algo)
{
    (void)algo;
    if (!h)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T) ||
        m < 0 || n < 0 || k < 0 || lda < (ta == CUBLAS_OP_N ? (m > 1 ? m : 1) : (k > 1 ? k : 1)) ||
        ldb < (tb == CUBLAS_OP_N ? (k > 1 ? k : 1) : (n > 1 ? n : 1)) || ldc < (m > 1 ? m : 1)) {
        fprintf(stderr, "cuda-emu: cublasGemmEx: invalid value (m %d n %d k %d lda %d ldb %d "
                        "ldc %d)\n", m, n, k, lda, ldb, ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (at != CUDA_R_16F || bt != CUDA_R_16F || ct != CUDA_R_32F || comp != CUBLAS_COMPUTE_32F) {
        fprintf(stderr, "cuda-emu: cublasGemmEx: only F16 x F16 -> F32 (compute 32F) is "
                        "emulated\n");
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    /* stored shapes: A is (ta == N ? m x k : k x m), B is (tb == N ? k x n : n x k) */
    bool ok = operand_ok(A, ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda, 2) &&
              operand_ok(B, tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb, 2) &&
              operand_ok(C, m, n, ldc, 4);
    if (!ok) {
        fprintf(stderr, "cuda-emu: cublasGemmEx: an operand reaches outside its device "
                        "allocation (m %d n %d k %d lda %d ldb %d ldc %d): a GPU would fault\n",
                m, n, k, lda, ldb, ldc);
        abort();
    }
    const float al = *(const float *)alpha, be = *(const float *)beta;
    const __half *a = (const __half *)A, *b = (const __half *)B;
    float *c = (float *)C;
    auto body = [=]() {
        if (threadIdx.x != 0)
            return;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float s = 0.0f;
                for (int p = 0; p < k; p++) {
                    float x = __half2float(ta == CUBLAS_OP_N ? a[i + (size_t)p * lda]
                                                             : a[p + (size_t)i * lda]);
                    float y = __half2float(tb == CUBLAS_OP_N ? b[p + (size_t)j * ldb]
                                                             : b[j + (size_t)p * ldb]);
                    s += x * y;
                }
                float *cij = c + i + (size_t)j * ldc;
                /* beta == 0: C is not read, so NaN there does not propagate */
                *cij = be == 0.0f ? al * s : al * s + be * *cij;
            }
    };
    emu_launch_body("cublasGemmEx", (const void *)emu_gemm_ex, dim3(1), dim3(1), 0, h->stream,
                    body);
    return cudaPeekAtLastError() == cudaSuccess ? CUBLAS_STATUS_SUCCESS
                                                : CUBLAS_STATUS_EXECUTION_FAILED;
}

static int fake_lib;

extern "C" void *emu_dlopen(const char *name, int mode)
{
    if (name && strncmp(name, "libcublas.so", 12) == 0)
        return getenv("CUDA_EMU_NO_CUBLAS") ? NULL : &fake_lib;
    return dlopen(name, mode);
}

extern "C" void *emu_dlsym(void *lib, const char *sym)
{
    if (lib != &fake_lib)
        return dlsym(lib, sym);
    if (strcmp(sym, "cublasCreate_v2") == 0)
        return (void *)emu_create;
    if (strcmp(sym, "cublasDestroy_v2") == 0)
        return (void *)emu_destroy;
    if (strcmp(sym, "cublasSetStream_v2") == 0)
        return (void *)emu_set_stream;
    if (strcmp(sym, "cublasGemmEx") == 0)
        return (void *)emu_gemm_ex;
    if (strcmp(sym, "cublasGetStatusName") == 0)
        return (void *)emu_status_name;
    return NULL;
}

extern "C" int emu_dlclose(void *lib)
{
    return lib == &fake_lib ? 0 : dlclose(lib);
}
