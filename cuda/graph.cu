/*
 * cuda/graph: the CUDA-graph calls behind cuda/graph-cache.c's decode-step
 * capture (stream capture, instantiate, launch), and the kernel that writes a
 * list's attention positions before a launch.
 *
 * Capture is thread-local: another thread's unrelated CUDA calls (a second
 * stream loading weights, say) must not invalidate this capture, and this
 * thread's own illegal calls (a scratch grow's device-wide synchronize) do
 * invalidate it, which cuda_graph_end reports so the caller runs eagerly.
 */
#include <string.h>

#include "common.cuh"

extern "C" hearth_status cuda_graph_begin(void *stream)
{
    hearth_status st = HEARTH_OK;
    CUDA_TRY(cudaStreamBeginCapture(CUDA_STREAM(stream), cudaStreamCaptureModeThreadLocal), fail);
fail:
    return st;
}

extern "C" hearth_status cuda_graph_end(void *stream, void **exec)
{
    hearth_status st = HEARTH_OK;
    cudaGraph_t g = NULL;
    cudaGraphExec_t ge = NULL;
    *exec = NULL;
    /* always ends the capture, so a failed one leaves the stream usable */
    CUDA_TRY(cudaStreamEndCapture(CUDA_STREAM(stream), &g), fail);
    CUDA_TRY(cudaGraphInstantiate(&ge, g, 0), fail);
    *exec = (void *)ge;
fail:
    if (g)
        cudaGraphDestroy(g);
    return st;
}

extern "C" hearth_status cuda_graph_launch(void *exec, void *stream)
{
    hearth_status st = HEARTH_OK;
    CUDA_TRY(cudaGraphLaunch((cudaGraphExec_t)exec, CUDA_STREAM(stream)), fail);
fail:
    return st;
}

extern "C" void cuda_graph_destroy(void *exec)
{
    if (exec)
        cudaGraphExecDestroy((cudaGraphExec_t)exec);
}

struct pos_vals {
    int32_t v[CUDA_GRAPH_MAX_POS];
};

/* The values travel as a kernel argument, copied at launch: no host buffer to keep alive. */
static __global__ void pos_set_kernel(int32_t *d, pos_vals p, int n)
{
    if ((int)threadIdx.x < n)
        d[threadIdx.x] = p.v[threadIdx.x];
}

extern "C" hearth_status cuda_i32_set_n(int32_t *d_v, const int32_t *values, int n, void *stream)
{
    if (n < 1 || n > CUDA_GRAPH_MAX_POS)
        return err_set(HEARTH_ERR_INVALID_ARG, "cuda: %d positions (1..%d)", n,
                       CUDA_GRAPH_MAX_POS);
    pos_vals p;
    memset(&p, 0, sizeof p);
    memcpy(p.v, values, (size_t)n * sizeof(int32_t));
    pos_set_kernel<<<1, 32, 0, CUDA_STREAM(stream)>>>(d_v, p, n);
    CUDA_RETURN_LAUNCH();
}
