/*
 * cpu/backend-rows: the CPU backend's tensor addressing and its per-token ops
 * (EMBED, RMSNORM, GLU, ADD), each token's row one item of cpu_rows_for.
 * Kept apart from backend-cpu.c, which holds the device, buffers, streams,
 * matmuls and attention.
 */
#ifndef HEARTH_CPU_BACKEND_ROWS_H
#define HEARTH_CPU_BACKEND_ROWS_H

#include "backend.h"
#include "cpu/ops.h"
#include "model.h"

struct threadpool;

/* Host address of element row r of a tensor (the CPU device reads host memory). */
static inline uint8_t *cpu_trow(const struct hearth_tensor *t, int64_t r)
{
    return (uint8_t *)backend_buffer_base(t->buf) + t->offset + (size_t)r * t->row_stride;
}

static inline float *cpu_frow(const struct hearth_tensor *t, int64_t r)
{
    return (float *)(void *)cpu_trow(t, r);
}

/* A weight tensor as the matmul kernels see it. */
static inline struct model_weight cpu_as_weight(const struct hearth_tensor *t)
{
    struct model_weight w = {.data = t->buf ? cpu_trow(t, 0) : NULL,
                             .type = t->type,
                             .n_in = t->ne0,
                             .n_out = t->n_rows,
                             .row_bytes = t->row_stride};
    return w;
}

/* EMBED; INVALID_ARG naming the token when an id is outside the table, UNSUPPORTED types. */
hearth_status cpu_op_embed(struct threadpool *tp, const struct hearth_op_embed *e, int n);
void cpu_op_rmsnorm(struct threadpool *tp, const struct hearth_op_rmsnorm *r, int n);
/* GLU through k, the device ISA's kernels */
void cpu_op_glu(struct threadpool *tp, const struct cpu_glu_kernels *k,
                const struct hearth_op_glu *g, int n);
void cpu_op_add(struct threadpool *tp, const struct hearth_op_add *a, int n);

#endif
