/*
 * tests/cuda-emu/emu-internal.h: what the emulator's own files share (not
 * seen by the cuda/ sources): streams and capture, device-allocation lookup, the
 * grid runner, and the error path every emulated runtime call takes.
 */
#ifndef HEARTH_CUDA_EMU_INTERNAL_H
#define HEARTH_CUDA_EMU_INTERNAL_H

#include "emu.h"

#include <pthread.h>

#include <functional>
#include <string>
#include <vector>

/* One recorded stream operation: a captured launch, copy or memset. */
struct emu_node {
    enum { KERNEL, MEMCPY, MEMSET } kind;
    std::string name;
    dim3 grid, block;
    size_t shm;
    std::function<void()> body; /* holds the launch's frozen argument values */
    void *dst;
    const void *src;
    size_t n;
    int value;
};

struct CUstream_st {
    unsigned flags;
    bool capturing, invalidated;
    pthread_t capture_thread;
    std::vector<emu_node> nodes;
};
struct CUgraph_st {
    std::vector<emu_node> nodes;
};
struct CUgraphExec_st {
    std::vector<emu_node> nodes;
};
struct CUevent_st {
    double t_ms;
    bool recorded;
};

/* Records e as this thread's last error (what cudaGetLastError returns) and returns it. */
cudaError_t emu_error(cudaError_t e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The stream an operation on `s` really targets: NULL (run now) or a stream
 * capturing in this thread (record). Applies the capture rules: an op on the
 * legacy stream while a blocking stream of this thread captures is illegal
 * and invalidates that capture. Returns cudaSuccess or the error to report.
 */
cudaError_t emu_capture_target(cudaStream_t s, CUstream_st **target);
/* A call that is illegal while this thread captures (synchronous copy, malloc,
 * device synchronize): invalidates every capture of this thread, returns the error. */
cudaError_t emu_unsafe_call(const char *what);

/* Whether [p, p+n) lies inside one live device allocation. */
bool emu_is_device_range(const void *p, size_t n);
bool emu_is_device_ptr(const void *p);

/* Runs every block of a grid now, on this thread (emu-fiber.cpp). */
void emu_run_grid(const char *name, dim3 grid, dim3 block, size_t shm,
                  const std::function<void()> &body);

/* Runs one recorded operation now (a graph launch replays its list in order). */
void emu_run_node(const emu_node &nd);

#endif
