/*
 * cpu/rows: a batch's per-token element-wise work (norms, RoPE, the GLU,
 * residual adds, cache stores) spread over the thread pool.
 *
 * Why: these ops were a serial tail between the threaded matmuls. On the
 * 2-core VM they took ~20% of Gemma 3 270M's one-thread prefill (the GELU alone
 * ~16%), so a second core could not get past ~1.7x; on a 16-core host the
 * same tail would cap prefill at ~4x of one core (Amdahl: 1 / (0.2 + 0.8 / 16)).
 * Tokens are independent in all of them, so the split is by token and the
 * results are the same bits whatever the thread count.
 *
 * A batch below CPU_ROWS_MIN_ELEMS elements in all (a decode step's few rows)
 * runs on the caller without waking the pool.
 */
#ifndef HEARTH_CPU_ROWS_H
#define HEARTH_CPU_ROWS_H

#include <stdint.h>

struct threadpool;

#define CPU_ROWS_MIN_ELEMS 8192

/* The work of token t of the batch. */
typedef void (*cpu_row_fn)(void *arg, int t);

/*
 * fn(arg, t) for every t in [0, n), chunks of at least CPU_ROWS_MIN_ELEMS
 * elements (row_elems per token) handed to the pool's threads.
 */
void cpu_rows_for(struct threadpool *tp, int n, int64_t row_elems, cpu_row_fn fn, void *arg);

#endif
