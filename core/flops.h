/*
 * flops: measures the FLOP rate a device sustains on prefill's work, the
 * figure the planner divides a prompt's FLOPs by (plan-cost.c) where prefill
 * is compute-bound rather than bandwidth-bound.
 *
 * Method: the MATMUL op (backend.h), the op that carries nearly all of a
 * prefill's FLOPs, of a random Q4_K weight [n_out][n_in] times F32
 * activations [FLOPS_N_TOK][n_in], on buffers of the device's own
 * buffer type and run through its own stream. One op counts 2 * n_out *
 * n_in * n_tok FLOPs (a multiply and an add per weight per token; the
 * activations' quantization and the dequantization are the device's
 * overhead, not counted). Q4_K because it is the most common quantization
 * of model files (Q4_K_M is mostly Q4_K); other types run at other rates,
 * which the planner does not model. n_tok is the planner's default prefill
 * micro-batch (512).
 *
 * Adaptive, so a software device (lavapipe: ~0.2 GFLOP/s on 2 cores) finishes
 * in about a second and a GPU is not timed on launch latency: a warm-up op
 * first (a Vulkan device builds its pipelines there) at the smallest shape,
 * 64 x 256 (17 MFLOP); then n_in doubles up to 4096, then n_out up to 4096,
 * until one run takes >= FLOPS_MIN_RUN_S; past that cap (a 4096 x 4096 layer,
 * 17 GFLOP) a run enqueues the op n_iter times (doubling up to
 * FLOPS_MAX_ITER) before one synchronize. The run that reached the target
 * warmed that shape; the figure is the median of 5 more runs (3 when one
 * takes over 0.1 s). Alternatives rejected: a fixed 4096 x 4096 shape costs
 * lavapipe over a minute per run; a peak-FLOPs microkernel says nothing about
 * what a quantized matmul reaches (the CPU's is bound by unpacking, not FMAs).
 *
 * Only the backend interface is used: this file knows no backend.
 */
#ifndef HEARTH_FLOPS_H
#define HEARTH_FLOPS_H

#include <stdint.h>

#include "hearth.h"

#define FLOPS_N_TOK 512
#define FLOPS_N_IN_MIN 256 /* one Q4_K block */
#define FLOPS_N_IN_MAX 4096
#define FLOPS_N_OUT_MIN 64
#define FLOPS_N_OUT_MAX 4096
#define FLOPS_MAX_ITER 64
#define FLOPS_MIN_RUN_S 0.02

struct hearth_device;

struct flops_result {
    double gflops;              /* 1e9 FLOP/s of the median run */
    int64_t n_out, n_in, n_tok; /* the shape timed */
    int n_iter;                 /* ops per run */
    double flop;                /* FLOPs of one run: 2 * n_out * n_in * n_tok * n_iter */
    double seconds;             /* the median run */
    int reps;                   /* runs the median is taken over */
};

/*
 * Measures an open device as described above (about 0.2-2 s). Errors:
 * UNSUPPORTED when the device has no Q4_K MATMUL (the rate stays assumed),
 * DEVICE_OOM / NO_MEMORY for the ~26 MiB of buffers, and whatever the
 * device's stream reports, prefixed with the device's name.
 */
hearth_status flops_measure_device(struct hearth_device *dev, struct flops_result *out);

#endif
