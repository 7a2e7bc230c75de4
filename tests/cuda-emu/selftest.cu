/*
 * tests/cuda-emu/selftest.cu: checks the emulator itself, so that a pass of
 * the CUDA tests under it means something. Built by build.sh through the same
 * rewrite as cuda/ (it is CUDA source: nvcc would compile it too) and run
 * first by run.sh. Each case states what a GPU does and checks that the
 * emulator does the same; the cases that must abort (a barrier not every
 * thread reaches) run in a child process.
 */
#include <cuda_runtime.h>
#include <mma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

#define EXPECT(cond, ...)                                                                  \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "selftest: %s:%d: %s failed: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fprintf(stderr, "\n");                                                         \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

/* ---- warp and block collectives ------------------------------------------------------ */
static __global__ void reduce_kernel(const float *x, float *out)
{
    __shared__ float part[8];
    float v = x[blockIdx.x * blockDim.x + threadIdx.x];
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0)
        part[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0.0f;
        for (unsigned w = 0; w < blockDim.x / 32; w++)
            s += part[w];
        out[blockIdx.x] = s;
    }
}

static void test_reduce(void)
{
    const int blocks = 3, threads = 256, n = blocks * threads;
    float h[blocks * threads], *dx, *dy, y[blocks];
    for (int i = 0; i < n; i++)
        h[i] = (float)(i % 7) - 2.0f;
    cudaMalloc((void **)&dx, sizeof h);
    cudaMalloc((void **)&dy, sizeof y);
    cudaMemcpy(dx, h, sizeof h, cudaMemcpyHostToDevice);
    reduce_kernel<<<blocks, threads>>>(dx, dy);
    EXPECT(cudaGetLastError() == cudaSuccess, "launch");
    cudaMemcpy(y, dy, sizeof y, cudaMemcpyDeviceToHost);
    for (int b = 0; b < blocks; b++) {
        float want = 0.0f;
        for (int i = 0; i < threads; i++)
            want += h[b * threads + i];
        EXPECT(y[b] == want, "block %d: sum %g, expected %g", b, (double)y[b], (double)want);
    }
    cudaFree(dx);
    cudaFree(dy);
}

/* Shared memory a block did not write reads as NaN, never as the last block's data. */
static __global__ void stale_shared_kernel(float *out)
{
    __shared__ float s[32];
    if (blockIdx.x == 0)
        s[threadIdx.x] = 1.0f;
    __syncthreads();
    out[blockIdx.x * 32 + threadIdx.x] = s[threadIdx.x];
}

static void test_stale_shared(void)
{
    float *d, h[64];
    cudaMalloc((void **)&d, sizeof h);
    stale_shared_kernel<<<2, 32>>>(d);
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    EXPECT(h[0] == 1.0f && h[31] == 1.0f, "block 0 reads its own writes");
    EXPECT(h[32] != h[32] && h[63] != h[63], "block 1 read %g, expected NaN", (double)h[32]);
    cudaFree(d);
}

static __global__ void early_return_kernel(float *out)
{
    if (threadIdx.x == 3)
        return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}

static __global__ void half_warp_shuffle_kernel(float *out)
{
    float v = (float)threadIdx.x;
    if (threadIdx.x < 16)
        v = __shfl_xor_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

/* Runs fn in a child; passes when the child aborts with `expect` on stderr. */
static void expect_abort(const char *what, void (*fn)(float *), const char *expect)
{
    int fds[2];
    if (pipe(fds) != 0)
        return;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        float *d;
        cudaMalloc((void **)&d, 256 * sizeof(float));
        fn(d);
        _exit(0);
    }
    close(fds[1]);
    char buf[4096];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(buf, expect),
           "%s: the child should abort with \"%s\"; it said: %s", what, expect, buf);
}

static void run_early_return(float *d)
{
    early_return_kernel<<<1, 64>>>(d);
}

static void run_half_warp_shuffle(float *d)
{
    half_warp_shuffle_kernel<<<1, 32>>>(d);
}

/* ---- graphs: arguments frozen at capture, device memory read at replay ---------------- */
static __global__ void store_kernel(int *dst, const int *slot, int by_value)
{
    dst[0] = by_value;
    dst[1] = *slot;
}

static void test_graph(void)
{
    int *d, *slot, h[2];
    cudaStream_t s;
    cudaGraph_t g = NULL;
    cudaGraphExec_t ge = NULL;
    cudaMalloc((void **)&d, 2 * sizeof(int));
    cudaMalloc((void **)&slot, sizeof(int));
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    int v = 5;
    cudaMemcpy(slot, &v, sizeof v, cudaMemcpyHostToDevice);
    EXPECT(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "begin");
    store_kernel<<<1, 1, 0, s>>>(d, slot, v);
    EXPECT(cudaStreamEndCapture(s, &g) == cudaSuccess && g, "end");
    EXPECT(cudaGraphInstantiate(&ge, g, 0) == cudaSuccess, "instantiate");
    for (v = 6; v < 9; v++) {
        cudaMemcpy(slot, &v, sizeof v, cudaMemcpyHostToDevice);
        cudaGraphLaunch(ge, s);
        cudaStreamSynchronize(s);
        cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
        EXPECT(h[0] == 5 && h[1] == v, "replay: by value %d (frozen 5), slot %d (%d)", h[0],
               h[1], v);
    }
    /* a call capture forbids, from the capturing thread: the capture is invalidated */
    void *p = NULL;
    cudaGraph_t g2 = NULL;
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    EXPECT(cudaMalloc(&p, 16) == cudaErrorStreamCaptureUnsupported, "cudaMalloc in capture");
    EXPECT(cudaStreamEndCapture(s, &g2) == cudaErrorStreamCaptureInvalidated && !g2,
           "end of an invalidated capture");
    cudaGetLastError();
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
    cudaStreamDestroy(s);
    cudaFree(d);
    cudaFree(slot);
}

/* ---- runtime errors ------------------------------------------------------------------ */
static __global__ void nop_kernel(void) {}

static void test_errors(void)
{
    char *d, h[64];
    cudaMalloc((void **)&d, 32);
    EXPECT(cudaMemcpy(d, h, 64, cudaMemcpyHostToDevice) == cudaErrorInvalidValue,
           "a copy past the allocation's end");
    EXPECT(cudaGetLastError() == cudaErrorInvalidValue && cudaGetLastError() == cudaSuccess,
           "the last error is reported once");
    nop_kernel<<<1, 1025>>>();
    EXPECT(cudaGetLastError() == cudaErrorInvalidConfiguration, "1025 threads per block");
    nop_kernel<<<dim3(1, 65536), 1>>>();
    EXPECT(cudaGetLastError() == cudaErrorInvalidConfiguration, "grid y of 65536");
    cudaFree(d);
}

/* ---- wmma: a 16x16x16 product against the plain loop -------------------------------- */
static __global__ void wmma_kernel(const __half *a, const __half *b, float *c)
{
    using namespace nvcuda;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 1.0f);
    wmma::load_matrix_sync(fa, a, 16);
    wmma::load_matrix_sync(fb, b, 16);
    wmma::mma_sync(acc, fa, fb, acc);
    wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
}

static void test_wmma(void)
{
    __half ha[256], hb[256];
    float c[256];
    for (int i = 0; i < 256; i++) {
        ha[i] = __float2half((float)(i % 5) - 2.0f);
        hb[i] = __float2half((float)(i % 3) * 0.5f);
    }
    __half *da, *db;
    float *dc;
    cudaMalloc((void **)&da, sizeof ha);
    cudaMalloc((void **)&db, sizeof hb);
    cudaMalloc((void **)&dc, sizeof c);
    cudaMemcpy(da, ha, sizeof ha, cudaMemcpyHostToDevice);
    cudaMemcpy(db, hb, sizeof hb, cudaMemcpyHostToDevice);
    wmma_kernel<<<1, 32>>>(da, db, dc);
    cudaMemcpy(c, dc, sizeof c, cudaMemcpyDeviceToHost);
    int bad = 0;
    for (int r = 0; r < 16; r++)
        for (int j = 0; j < 16; j++) {
            float s = 1.0f; /* A row-major [r][k], B col-major: element (k, j) at b[j*16 + k] */
            for (int k = 0; k < 16; k++)
                s += __half2float(ha[r * 16 + k]) * __half2float(hb[j * 16 + k]);
            bad += c[r * 16 + j] != s;
        }
    EXPECT(bad == 0, "%d of 256 wmma outputs differ from the plain product", bad);
    cudaFree(da);
    cudaFree(db);
    cudaFree(dc);
}

int main(void)
{
    setenv("CUDA_EMU_QUIET", "1", 1); /* the errors provoked here are expected */
    test_reduce();
    test_stale_shared();
    test_graph();
    test_errors();
    test_wmma();
    expect_abort("early return before __syncthreads", run_early_return, "DEADLOCK");
    expect_abort("shuffle by half a warp", run_half_warp_shuffle, "DEADLOCK");
    printf("cuda-emu selftest: %s (%d failed checks)\n", failures ? "FAIL" : "ok", failures);
    return failures ? 1 : 0;
}
