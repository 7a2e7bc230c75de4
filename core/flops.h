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
 * overhead, not counted). Q4_K first because it is the most common
 * quantization of model files (Q4_K_M is mostly Q4_K); other types' rates
 * are timed after it when the device reached the full row width (n_in
 * FLOPS_N_IN_MAX): every type of flops_dec_types (below) at Q4_K's final
 * shape (rows capped at what fits Q4_K's buffer), median of 3 runs. n_tok is the planner's default prefill
 * micro-batch (512).
 *
 * Adaptive, so a software device (lavapipe: ~0.2 GFLOP/s on 2 cores) finishes
 * in about a second and a GPU is not timed on launch latency: a warm-up op
 * first (a Vulkan device builds its pipelines there) at the smallest shape,
 * 64 x 256 (17 MFLOP); then n_in doubles up to 4096 unless a run takes
 * FLOPS_DEC_SLOW_S (the full row width is what the other types are timed
 * at), then n_out up to 4096 until one run takes >= FLOPS_MIN_RUN_S; past
 * that cap (a 4096 x 4096 layer, 17 GFLOP) a run enqueues the op n_iter
 * times (doubling up to FLOPS_MAX_ITER) before one synchronize. The run that reached the target
 * warmed that shape; the figure is the median of 5 more runs (3 when one
 * takes over 0.1 s). Alternatives rejected: a fixed 4096 x 4096 shape costs
 * lavapipe over a minute per run; a peak-FLOPs microkernel says nothing about
 * what a quantized matmul reaches (the CPU's is bound by unpacking, not FMAs).
 *
 * Only the backend interface is used: this file knows no backend.
 */
#ifndef HEARTH_FLOPS_H
#define HEARTH_FLOPS_H

#include <stddef.h>
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
    double gflops;              /* 1e9 FLOP/s of Q4_K's median run */
    double gflops_type[HEARTH_DTYPE_COUNT]; /* per type (Q4_K's = gflops); 0: not timed */
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

/*
 * Decode's figures (flops-decode.c), which the prefill rate above does not
 * give: decode multiplies every weight by one token, so its matmul is bound by
 * reading and unpacking weights, and a step is hundreds of small ops.
 *
 * Matvec rate, per weight type: bytes per second of weight a one-token
 * MATMUL consumes, over up to FLOPS_DEC_N_W weights of ~33 MB (a Q4_K
 * FLOPS_DEC_N_OUT x FLOPS_DEC_N_IN, an FFN matrix of an 8B model; ~264 MB in
 * all, so a CPU's caches do not hold them) run in turn, as decode runs a
 * model's layers. A device that unpacks slower than its memory streams (a CPU
 * with few cores, a software Vulkan device) reaches well under its copy
 * bandwidth, and how far under depends on the type; a GPU comes close to it.
 * Q4_K first and adaptive, like the prefill rate: n_out doubles from
 * FLOPS_DEC_N_OUT_MIN, then the weight count, then passes over them (to
 * FLOPS_DEC_MAX_ITER) until one run takes FLOPS_MIN_RUN_S; growth stops once
 * a run takes FLOPS_DEC_SLOW_S. Then each other type of flops_dec_types at
 * that shape's bytes (rows scaled to the type's row size), unless Q4_K's
 * growth stopped before its full row count: a device that slow is timed on
 * Q4_K alone. Median of
 * 5 runs (3 when one takes over 0.1 s). When the device cannot hold all the
 * weights, fewer are timed (down to one). The rows are FLOPS_DEC_N_IN wide:
 * a model's much shorter rows (SmolLM2's 576) run slower per byte on a CPU,
 * which this does not see.
 *
 * Op latency: seconds per op of a one-token Q4_K MATMUL too small to cost
 * anything but its dispatch (FLOPS_DEC_N_OUT_MIN x FLOPS_N_IN_MIN): a CPU's
 * thread fork/join, a GPU's kernel launch. Ops are enqueued in lists of
 * FLOPS_DEC_LAT_LIST, the length of a decode block's list (4-8 ops), so a
 * backend that replays repeated lists (CUDA graphs, Vulkan's recorded
 * command buffers) is timed as decode runs it, in runs of 16 ops doubling to
 * FLOPS_DEC_MAX_OPS before one synchronize until a run takes
 * FLOPS_MIN_RUN_S; median of 5. (Before 2026-11-23 each op was its own list;
 * a cached figure from then overstates a graph-replaying GPU's latency.)
 */
#define FLOPS_DEC_N_OUT 14336
#define FLOPS_DEC_N_OUT_MIN 64
#define FLOPS_DEC_N_IN 4096
#define FLOPS_DEC_N_W 8
#define FLOPS_DEC_MAX_ITER 64
#define FLOPS_DEC_MAX_OPS 8192
#define FLOPS_DEC_LAT_LIST 8
#define FLOPS_DEC_SLOW_S 0.25
#define FLOPS_DEC_N_TYPES 11

/* The types timed, Q4_K first; the others in the order they are timed. */
extern const hearth_dtype flops_dec_types[FLOPS_DEC_N_TYPES];

struct flops_decode_result {
    double gbps[HEARTH_DTYPE_COUNT]; /* 1e9 weight bytes/s of the median run; 0: not timed
                                        (not in the list, unsupported, or the device slow) */
    int64_t n_out;     /* Q4_K's shape (n_in: FLOPS_DEC_N_IN) */
    int n_w;           /* weights per pass */
    int n_iter;        /* passes per run */
    double bytes;      /* Q4_K weight bytes of one run */
    double seconds;    /* Q4_K's median run */
    int reps;
    double op_s;       /* seconds per op, the median latency run */
    int n_ops;         /* ops in a latency run */
};

/*
 * Measures both figures on an open device (about 0.5-4 s). Errors as
 * flops_measure_device (UNSUPPORTED without a Q4_K MATMUL).
 */
hearth_status flops_measure_decode(struct hearth_device *dev, struct flops_decode_result *out);

/*
 * Attention's rate (flops-attn.c): prefill attends each of P tokens to up to
 * P keys, FLOPs a matmul's rate overstates on a device whose attention
 * kernel runs slower (a CPU's: ~5x). Method: the ATTENTION op over an f16
 * cache with a Llama-3-8B head layout (32 query heads over 8 KV heads, head
 * dim 128, RoPE on), n_tok queries at position n_tok (so the last attends to
 * 2 * n_tok keys), counted as flops_attention_flop(n_tok, n_tok): 4 * heads
 * * head_dim per (query, key) pair (q.k and p.v). n_tok doubles from
 * FLOPS_ATT_TOK_MIN to FLOPS_ATT_TOK_MAX, then ops per run to
 * FLOPS_MAX_ITER, until a run takes FLOPS_MIN_RUN_S; median of 5 (3 over
 * 0.1 s). Other head layouts run at other rates, which this does not see.
 */
#define FLOPS_ATT_HEADS 32
#define FLOPS_ATT_HEADS_KV 8
#define FLOPS_ATT_HEAD_DIM 128
#define FLOPS_ATT_TOK_MIN 16
#define FLOPS_ATT_TOK_MAX 512

struct flops_attn_result {
    double gflops;  /* 1e9 FLOP/s of the median run */
    int n_tok;      /* queries per op (at position n_tok) */
    int n_iter;     /* ops per run */
    double flop;    /* FLOPs of one run */
    double seconds; /* the median run */
    int reps;
};

/* FLOPs of one ATTENTION op of n_tok queries from position pos0, in the layout above. */
double flops_attention_flop(int64_t n_tok, int64_t pos0);
/* Measures it (about 0.1-1 s); UNSUPPORTED without an ATTENTION op. */
hearth_status flops_measure_attention(struct hearth_device *dev, struct flops_attn_result *out);

/*
 * Internal (flops.c): rows of type t, n_in wide, that fit bytes, at most
 * max_rows, rounded down to a multiple (0: none, or t has no such rows).
 */
int64_t flops__rows_fitting(size_t bytes, hearth_dtype t, int64_t n_in, int64_t max_rows,
                            int64_t multiple);
/* Internal (flops.c): wall seconds of n_iter runs of op on s and one synchronize. */
struct hearth_stream;
struct hearth_op;
hearth_status flops__time_ops(struct hearth_stream *s, const struct hearth_op *op, int n_iter,
                              double *seconds);
/* Internal (flops.c): dev's props into *props; UNSUPPORTED when it has no Q4_K MATMUL. */
struct hearth_device_props;
hearth_status flops__timeable(struct hearth_device *dev, struct hearth_device_props *props);

#endif
