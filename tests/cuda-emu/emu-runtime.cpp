/*
 * tests/cuda-emu/emu-runtime.cpp: the CUDA runtime API for the emulator, in
 * place of libcudart: one H100-like device, memory in host RAM, streams and
 * events that are complete as soon as a call returns, and stream capture
 * into graphs that replay the captured operations.
 *
 * What is kept faithful because hearth's code depends on it:
 * - error values and the thread-local last error (cudaGetLastError clears it);
 * - copies are checked against the live device allocations: a device-side
 *   range that does not lie inside one allocation is cudaErrorInvalidValue
 *   (with a cuda-emu: line on stderr saying which copy);
 * - fresh device memory is filled with 0xff bytes (NaN as float), so a read
 *   of memory nobody wrote shows in results rather than reading zeros;
 * - capture (cudaStreamCaptureModeThreadLocal or Global) records launches,
 *   async copies and memsets; a synchronous or allocating call from the
 *   capturing thread fails with cudaErrorStreamCaptureUnsupported and
 *   invalidates the capture, so cudaStreamEndCapture then fails with
 *   cudaErrorStreamCaptureInvalidated, as the runtime documents;
 * - cudaGraphLaunch replays the recorded nodes with their frozen arguments.
 */
#include "emu-internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

#include <map>

static thread_local cudaError_t last_error = cudaSuccess;

cudaError_t emu_error(cudaError_t e, const char *fmt, ...)
{
    if (getenv("CUDA_EMU_QUIET") == NULL) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "cuda-emu: %s: ", cudaGetErrorName(e));
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
    last_error = e;
    return e;
}

extern "C" cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

extern "C" cudaError_t cudaPeekAtLastError(void)
{
    return last_error;
}

extern "C" const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
#define N(x)                                                                                    \
    case x:                                                                                     \
        return #x;
        N(cudaSuccess) N(cudaErrorInvalidValue) N(cudaErrorMemoryAllocation)
        N(cudaErrorInvalidConfiguration) N(cudaErrorInvalidDevice) N(cudaErrorNoDevice)
        N(cudaErrorInvalidResourceHandle) N(cudaErrorInvalidDeviceFunction)
        N(cudaErrorStreamCaptureUnsupported) N(cudaErrorStreamCaptureInvalidated)
        N(cudaErrorStreamCaptureImplicit) N(cudaErrorStreamCaptureWrongThread)
        N(cudaErrorStreamCaptureUnmatched) N(cudaErrorIllegalState) N(cudaErrorNotReady)
#undef N
    default:
        return "cudaErrorUnknown";
    }
}

extern "C" const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        return "invalid argument";
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument";
    case cudaErrorInvalidDevice:
        return "invalid device ordinal";
    case cudaErrorNoDevice:
        return "no CUDA-capable device is detected";
    case cudaErrorInvalidResourceHandle:
        return "invalid resource handle";
    case cudaErrorStreamCaptureUnsupported:
        return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
        return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
        return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorStreamCaptureWrongThread:
        return "attempt to terminate a thread-local capture sequence from another thread";
    default:
        return "unknown error";
    }
}

/* ---- device -------------------------------------------------------------------------- */
static const size_t total_mem = (size_t)80 << 30;

/* CUDA_EMU_MEM_LIMIT=BYTES: a smaller device, to reach the OOM and partial-offload paths */
static size_t mem_cap(void)
{
    const char *lim = getenv("CUDA_EMU_MEM_LIMIT");
    return lim ? (size_t)strtoull(lim, NULL, 10) : total_mem;
}

extern "C" cudaError_t cudaGetDeviceCount(int *count)
{
    if (getenv("CUDA_EMU_NO_DEVICE")) {
        *count = 0;
        return emu_error(cudaErrorNoDevice, "CUDA_EMU_NO_DEVICE is set");
    }
    *count = 1;
    return cudaSuccess;
}

extern "C" cudaError_t cudaSetDevice(int device)
{
    if (device != 0)
        return emu_error(cudaErrorInvalidDevice, "cudaSetDevice(%d): one device", device);
    return cudaSuccess;
}

extern "C" cudaError_t cudaGetDevice(int *device)
{
    *device = 0;
    return cudaSuccess;
}

extern "C" cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int device)
{
    if (device != 0)
        return emu_error(cudaErrorInvalidDevice, "cudaGetDeviceProperties(%d)", device);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "NVIDIA H100 (cuda-emu)");
    p->totalGlobalMem = mem_cap();
    p->sharedMemPerBlock = 48 << 10;
    p->sharedMemPerBlockOptin = 232448;
    p->sharedMemPerMultiprocessor = 233472;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 0x7fffffff;
    p->maxGridSize[1] = p->maxGridSize[2] = 65535;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 132;
    p->l2CacheSize = 50 << 20;
    p->maxThreadsPerMultiProcessor = 2048;
    p->memoryBusWidth = 5120;
    p->unifiedAddressing = 1;
    return cudaSuccess;
}

/* ---- memory -------------------------------------------------------------------------- */
static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static std::map<uintptr_t, size_t> dev_allocs; /* base -> size */
static size_t dev_used;

bool emu_is_device_range(const void *p, size_t n)
{
    uintptr_t a = (uintptr_t)p;
    pthread_mutex_lock(&mem_lock);
    auto it = dev_allocs.upper_bound(a);
    bool ok = it != dev_allocs.begin() && (--it, a - it->first <= it->second &&
                                                     n <= it->second - (a - it->first));
    pthread_mutex_unlock(&mem_lock);
    return ok;
}

bool emu_is_device_ptr(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    pthread_mutex_lock(&mem_lock);
    auto it = dev_allocs.upper_bound(a);
    bool ok = it != dev_allocs.begin() && (--it, a - it->first < it->second);
    pthread_mutex_unlock(&mem_lock);
    return ok;
}

void emu_check_ptr_arg(const char *kernel, int index, const void *p)
{
    if (p && !emu_is_device_ptr(p)) {
        fprintf(stderr, "cuda-emu: launch of %s: argument %d is %p, not device memory (a GPU "
                        "would fault)\n", kernel, index, p);
        abort();
    }
}

extern "C" cudaError_t cudaMalloc(void **p, size_t n)
{
    *p = NULL;
    cudaError_t e = emu_unsafe_call("cudaMalloc");
    if (e != cudaSuccess)
        return e;
    if (n == 0)
        return cudaSuccess;
    size_t cap = mem_cap();
    pthread_mutex_lock(&mem_lock);
    bool fits = n <= cap && dev_used <= cap - n;
    pthread_mutex_unlock(&mem_lock);
    void *m = NULL;
    if (!fits || posix_memalign(&m, 256, n) != 0)
        return emu_error(cudaErrorMemoryAllocation, "cudaMalloc(%zu)", n);
    if (n <= ((size_t)1 << 30))
        memset(m, 0xff, n);
    pthread_mutex_lock(&mem_lock);
    dev_allocs[(uintptr_t)m] = n;
    dev_used += n;
    pthread_mutex_unlock(&mem_lock);
    *p = m;
    return cudaSuccess;
}

extern "C" cudaError_t cudaFree(void *p)
{
    cudaError_t e = emu_unsafe_call("cudaFree");
    if (e != cudaSuccess)
        return e;
    if (!p)
        return cudaSuccess;
    pthread_mutex_lock(&mem_lock);
    auto it = dev_allocs.find((uintptr_t)p);
    bool ok = it != dev_allocs.end();
    if (ok) {
        dev_used -= it->second;
        dev_allocs.erase(it);
    }
    pthread_mutex_unlock(&mem_lock);
    if (!ok)
        return emu_error(cudaErrorInvalidValue, "cudaFree(%p): not a device allocation", p);
    free(p);
    return cudaSuccess;
}

extern "C" cudaError_t cudaMallocHost(void **p, size_t n)
{
    cudaError_t e = emu_unsafe_call("cudaMallocHost");
    if (e != cudaSuccess)
        return e;
    *p = malloc(n ? n : 1);
    return *p ? cudaSuccess : emu_error(cudaErrorMemoryAllocation, "cudaMallocHost(%zu)", n);
}

extern "C" cudaError_t cudaFreeHost(void *p)
{
    cudaError_t e = emu_unsafe_call("cudaFreeHost");
    if (e != cudaSuccess)
        return e;
    free(p);
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b)
{
    size_t cap = mem_cap();
    pthread_mutex_lock(&mem_lock);
    *free_b = dev_used < cap ? cap - dev_used : 0;
    pthread_mutex_unlock(&mem_lock);
    *total_b = cap;
    return cudaSuccess;
}

/* Checks each side of a copy against the allocations its kind says it is in. */
static cudaError_t check_copy(const char *what, void *dst, const void *src, size_t n,
                              cudaMemcpyKind kind)
{
    bool d_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool s_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind == cudaMemcpyDefault) {
        d_dev = emu_is_device_ptr(dst);
        s_dev = emu_is_device_ptr(src);
    } else if (kind == cudaMemcpyHostToHost) {
        d_dev = s_dev = false;
    } else if (!d_dev && !s_dev) {
        return emu_error(cudaErrorInvalidMemcpyDirection, "%s: kind %d", what, (int)kind);
    }
    if (n == 0)
        return cudaSuccess;
    if (d_dev ? !emu_is_device_range(dst, n) : emu_is_device_ptr(dst))
        return emu_error(cudaErrorInvalidValue, "%s: destination %p + %zu bytes is %s", what,
                         dst, n, d_dev ? "not inside one device allocation" : "device memory");
    if (s_dev ? !emu_is_device_range(src, n) : emu_is_device_ptr(src))
        return emu_error(cudaErrorInvalidValue, "%s: source %p + %zu bytes is %s", what, src,
                         n, s_dev ? "not inside one device allocation" : "device memory");
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind)
{
    cudaError_t e = emu_unsafe_call("cudaMemcpy");
    if (e == cudaSuccess)
        e = check_copy("cudaMemcpy", dst, src, n, kind);
    if (e != cudaSuccess)
        return e;
    memmove(dst, src, n);
    return cudaSuccess;
}

/* Runs a copy (src) or memset (value) now, or appends it to the capture `s` is in. */
static cudaError_t stream_op(cudaStream_t s, bool copy, void *dst, const void *src, size_t n,
                             int value)
{
    emu_node nd;
    nd.kind = copy ? emu_node::MEMCPY : emu_node::MEMSET;
    nd.name = copy ? "cudaMemcpyAsync" : "cudaMemsetAsync";
    nd.dst = dst;
    nd.src = src;
    nd.n = n;
    nd.value = value;
    CUstream_st *cap = NULL;
    cudaError_t e = emu_capture_target(s, &cap);
    if (e != cudaSuccess)
        return e;
    if (cap)
        cap->nodes.push_back(std::move(nd));
    else
        emu_run_node(nd);
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n,
                                       enum cudaMemcpyKind kind, cudaStream_t s)
{
    cudaError_t e = check_copy("cudaMemcpyAsync", dst, src, n, kind);
    return e != cudaSuccess ? e : stream_op(s, true, dst, src, n, 0);
}

extern "C" cudaError_t cudaMemset(void *p, int value, size_t n)
{
    cudaError_t e = emu_unsafe_call("cudaMemset");
    if (e != cudaSuccess)
        return e;
    if (n && !emu_is_device_range(p, n))
        return emu_error(cudaErrorInvalidValue, "cudaMemset: %p + %zu bytes is not inside one "
                         "device allocation", p, n);
    memset(p, value, n);
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemsetAsync(void *p, int value, size_t n, cudaStream_t s)
{
    if (n && !emu_is_device_range(p, n))
        return emu_error(cudaErrorInvalidValue, "cudaMemsetAsync: %p + %zu bytes is not inside "
                         "one device allocation", p, n);
    return stream_op(s, false, p, NULL, n, value);
}

/* ---- streams and capture ------------------------------------------------------------- */
static pthread_mutex_t stream_lock = PTHREAD_MUTEX_INITIALIZER;
static std::vector<CUstream_st *> streams;

static bool capturing_here(const CUstream_st *s)
{
    return s->capturing && pthread_equal(s->capture_thread, pthread_self());
}

cudaError_t emu_capture_target(cudaStream_t s, CUstream_st **target)
{
    *target = NULL;
    pthread_mutex_lock(&stream_lock);
    cudaError_t e = cudaSuccess;
    if (s == NULL || s == cudaStreamLegacy) {
        for (CUstream_st *c : streams)
            if (capturing_here(c) && !(c->flags & cudaStreamNonBlocking)) {
                c->invalidated = true;
                e = cudaErrorStreamCaptureImplicit;
            }
    } else if (s != cudaStreamPerThread) {
        bool known = false;
        for (CUstream_st *c : streams)
            known = known || c == s;
        if (!known)
            e = cudaErrorInvalidResourceHandle;
        else if (s->capturing)
            *target = s->invalidated ? NULL : s;
        if (known && s->capturing && s->invalidated)
            e = cudaErrorStreamCaptureInvalidated;
    }
    pthread_mutex_unlock(&stream_lock);
    if (e != cudaSuccess)
        return emu_error(e, "operation on stream %p", (void *)s);
    return cudaSuccess;
}

cudaError_t emu_unsafe_call(const char *what)
{
    bool bad = false;
    pthread_mutex_lock(&stream_lock);
    for (CUstream_st *c : streams)
        if (capturing_here(c)) {
            c->invalidated = true;
            bad = true;
        }
    pthread_mutex_unlock(&stream_lock);
    if (bad)
        return emu_error(cudaErrorStreamCaptureUnsupported,
                         "%s while this thread captures a stream", what);
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamCreateWithFlags(cudaStream_t *ps, unsigned flags)
{
    CUstream_st *s = new CUstream_st();
    s->flags = flags;
    pthread_mutex_lock(&stream_lock);
    streams.push_back(s);
    pthread_mutex_unlock(&stream_lock);
    *ps = s;
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamCreate(cudaStream_t *ps)
{
    return cudaStreamCreateWithFlags(ps, cudaStreamDefault);
}

extern "C" cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    pthread_mutex_lock(&stream_lock);
    bool found = false;
    for (size_t i = 0; i < streams.size(); i++)
        if (streams[i] == s) {
            streams.erase(streams.begin() + (long)i);
            found = true;
            break;
        }
    pthread_mutex_unlock(&stream_lock);
    if (!found)
        return emu_error(cudaErrorInvalidResourceHandle, "cudaStreamDestroy(%p)", (void *)s);
    delete s;
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    CUstream_st *cap = NULL;
    cudaError_t e = emu_capture_target(s, &cap);
    if (e != cudaSuccess)
        return e;
    if (s && s != cudaStreamLegacy && s != cudaStreamPerThread && s->capturing) {
        pthread_mutex_lock(&stream_lock);
        s->invalidated = true;
        pthread_mutex_unlock(&stream_lock);
        return emu_error(cudaErrorStreamCaptureUnsupported,
                         "cudaStreamSynchronize on a capturing stream");
    }
    return cudaSuccess;
}

extern "C" cudaError_t cudaDeviceSynchronize(void)
{
    return emu_unsafe_call("cudaDeviceSynchronize");
}

extern "C" cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode mode)
{
    (void)mode; /* Global and ThreadLocal differ only for other threads' calls */
    if (s == NULL || s == cudaStreamLegacy)
        return emu_error(cudaErrorStreamCaptureUnsupported,
                         "cudaStreamBeginCapture on the legacy stream");
    pthread_mutex_lock(&stream_lock);
    cudaError_t e = cudaSuccess;
    if (s->capturing)
        e = cudaErrorIllegalState;
    else {
        s->capturing = true;
        s->invalidated = false;
        s->capture_thread = pthread_self();
        s->nodes.clear();
    }
    pthread_mutex_unlock(&stream_lock);
    return e == cudaSuccess ? e : emu_error(e, "cudaStreamBeginCapture: already capturing");
}

extern "C" cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g)
{
    *g = NULL;
    if (s == NULL || s == cudaStreamLegacy || !s->capturing)
        return emu_error(cudaErrorIllegalState, "cudaStreamEndCapture: stream is not capturing");
    if (!capturing_here(s))
        return emu_error(cudaErrorStreamCaptureWrongThread, "cudaStreamEndCapture");
    /* CUDA_EMU_FAIL_CAPTURES=N: the first N captures end invalidated (the caller's fallback) */
    static int to_fail = -1;
    pthread_mutex_lock(&stream_lock);
    if (to_fail < 0)
        to_fail = getenv("CUDA_EMU_FAIL_CAPTURES") ? atoi(getenv("CUDA_EMU_FAIL_CAPTURES")) : 0;
    if (to_fail > 0) {
        to_fail--;
        s->invalidated = true;
    }
    s->capturing = false;
    bool bad = s->invalidated;
    std::vector<emu_node> nodes = std::move(s->nodes);
    s->nodes.clear();
    pthread_mutex_unlock(&stream_lock);
    if (bad)
        return emu_error(cudaErrorStreamCaptureInvalidated, "cudaStreamEndCapture");
    CUgraph_st *gr = new CUgraph_st();
    gr->nodes = std::move(nodes);
    *g = gr;
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamIsCapturing(cudaStream_t s, enum cudaStreamCaptureStatus *st)
{
    *st = cudaStreamCaptureStatusNone;
    if (s && s != cudaStreamLegacy && s != cudaStreamPerThread && s->capturing)
        *st = s->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

/* ---- graphs -------------------------------------------------------------------------- */
extern "C" cudaError_t cudaGraphInstantiate(cudaGraphExec_t *ge, cudaGraph_t g,
                                            unsigned long long flags)
{
    (void)flags;
    *ge = NULL;
    if (!g)
        return emu_error(cudaErrorInvalidValue, "cudaGraphInstantiate: NULL graph");
    CUgraphExec_st *x = new CUgraphExec_st();
    x->nodes = g->nodes; /* an executable graph is a snapshot: later graph edits do not reach it */
    *ge = x;
    return cudaSuccess;
}

extern "C" cudaError_t cudaGraphDestroy(cudaGraph_t g)
{
    delete g;
    return cudaSuccess;
}

extern "C" cudaError_t cudaGraphExecDestroy(cudaGraphExec_t ge)
{
    delete ge;
    return cudaSuccess;
}

void emu_run_node(const emu_node &nd)
{
    switch (nd.kind) {
    case emu_node::KERNEL:
        emu_run_grid(nd.name.c_str(), nd.grid, nd.block, nd.shm, nd.body);
        break;
    case emu_node::MEMCPY:
        memmove(nd.dst, nd.src, nd.n);
        break;
    case emu_node::MEMSET:
        memset(nd.dst, nd.value, nd.n);
        break;
    }
}

extern "C" cudaError_t cudaGraphLaunch(cudaGraphExec_t ge, cudaStream_t s)
{
    if (!ge)
        return emu_error(cudaErrorInvalidValue, "cudaGraphLaunch: NULL graph");
    CUstream_st *cap = NULL;
    cudaError_t e = emu_capture_target(s, &cap);
    if (e != cudaSuccess)
        return e;
    if (cap) {
        cap->nodes.insert(cap->nodes.end(), ge->nodes.begin(), ge->nodes.end());
        return cudaSuccess;
    }
    for (const emu_node &nd : ge->nodes)
        emu_run_node(nd);
    return cudaSuccess;
}

/* ---- events: every recorded event is complete; timing is host wall time ------------- */
static double now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec * 1e3 + (double)tv.tv_usec * 1e-3;
}

extern "C" cudaError_t cudaEventCreate(cudaEvent_t *ev)
{
    *ev = new CUevent_st();
    return cudaSuccess;
}

extern "C" cudaError_t cudaEventCreateWithFlags(cudaEvent_t *ev, unsigned flags)
{
    (void)flags;
    return cudaEventCreate(ev);
}

extern "C" cudaError_t cudaEventDestroy(cudaEvent_t ev)
{
    delete ev;
    return cudaSuccess;
}

extern "C" cudaError_t cudaEventRecord(cudaEvent_t ev, cudaStream_t s)
{
    CUstream_st *cap = NULL;
    cudaError_t e = emu_capture_target(s, &cap);
    if (e != cudaSuccess)
        return e;
    if (!cap) {
        ev->t_ms = now_ms();
        ev->recorded = true;
    }
    return cudaSuccess;
}

extern "C" cudaError_t cudaEventSynchronize(cudaEvent_t ev)
{
    (void)ev;
    return cudaSuccess;
}

extern "C" cudaError_t cudaEventQuery(cudaEvent_t ev)
{
    (void)ev;
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t ev, unsigned flags)
{
    (void)ev, (void)flags;
    CUstream_st *cap = NULL;
    return emu_capture_target(s, &cap);
}

extern "C" cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    if (!a->recorded || !b->recorded)
        return emu_error(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: unrecorded event");
    *ms = (float)(b->t_ms - a->t_ms);
    return cudaSuccess;
}
