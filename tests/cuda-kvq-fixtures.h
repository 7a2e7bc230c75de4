/*
 * cuda-kvq-fixtures.h: what the CUDA compressed-KV attention tests
 * (test-cuda-kvq.c: the store kernel and the plain op; test-cuda-kvq-window.c:
 * the exact window and ring-only layers) share, so both hold the GPU to the
 * same CPU reference device and bounds. It provides:
 *   - NEED_DEVICE(): skips the case without a CUDA device, else selects
 *     device 0 (test-cuda-ops.c takes it from here too);
 *   - KV_H query heads over KV_HK KV heads, the GQA shape of the op cases;
 *   - cukvq_open_devices / cukvq_close_devices: cuda0 and a one-thread CPU
 *     backend device ("cpu-ref") to compare with;
 *   - cukvq_tol: the per-type bound on |out_gpu - out_cpu| / max|V|.
 * Failures are checks of the calling case. Built only with the CUDA backend
 * (HEARTH_WITH_CUDA).
 */
#ifndef HEARTH_TEST_CUDA_KVQ_FIXTURES_H
#define HEARTH_TEST_CUDA_KVQ_FIXTURES_H

#include <stdbool.h>

#include "../cuda/ops.h"
#include "backend.h"
#include "kv-quant.h"
#include "test.h"

#define NEED_DEVICE()                                         \
    do {                                                      \
        if (cuda_device_count() < 1)                          \
            TEST_SKIP("no CUDA device");                      \
        CHECK_OK(cuda_set_device(0));                         \
    } while (0)

#define KV_H 4
#define KV_HK 2

/*
 * Opens the CPU reference device into *cpu and cuda0 into *gpu; false (after
 * a failed check, both NULL) if either fails.
 */
bool cukvq_open_devices(struct hearth_device **cpu, struct hearth_device **gpu);
/* Destroys gpu and *cpu, and sets *cpu to NULL. */
void cukvq_close_devices(struct hearth_device **cpu, struct hearth_device *gpu);
/* Per-type bound on |out_gpu - out_cpu| / max|V|; a pair takes its coarser type's. */
double cukvq_tol(enum kvq_type t);

#endif
