/*
 * flops: a device's FLOP rate on a Q4_K MATMUL (see flops.h for the method).
 * The weight is synth_fill's random Q4_K blocks (what `hearth synth` writes)
 * and the activations uniform in [-1, 1): the values do not change the work,
 * but NaNs or denormals could on some devices.
 */
#include "flops.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bandwidth.h"
#include "err.h"
#include "quant.h"
#include "rng.h"
#include "synth.h"

#define FLOPS_MAX_REPS 5

struct flops_bench {
    struct hearth_stream *s;
    struct hearth_buffer *w, *x, *y; /* room for the largest shape */
};

static void bench_free(struct flops_bench *b)
{
    backend_stream_destroy(b->s);
    backend_buffer_free(b->y);
    backend_buffer_free(b->x);
    backend_buffer_free(b->w);
    memset(b, 0, sizeof *b);
}

/* Allocates the buffers at the largest shape on dev and uploads random contents. */
static hearth_status bench_init(struct hearth_device *dev, struct flops_bench *b)
{
    memset(b, 0, sizeof *b);
    uint64_t w_row = 0;
    if (!quant_row_bytes(HEARTH_DTYPE_Q4_K, FLOPS_N_IN_MAX, &w_row))
        return err_set(HEARTH_ERR_INVALID_ARG, "flops: %d is not a Q4_K row", FLOPS_N_IN_MAX);
    size_t w_bytes = (size_t)w_row * FLOPS_N_OUT_MAX;
    size_t x_bytes = (size_t)FLOPS_N_TOK * FLOPS_N_IN_MAX * sizeof(float);
    size_t y_bytes = (size_t)FLOPS_N_TOK * FLOPS_N_OUT_MAX * sizeof(float);
    struct hearth_buffer_type *bt = backend_device_buffer_type(dev);
    hearth_status st;
    if ((st = backend_buffer_alloc(bt, w_bytes, &b->w)) != HEARTH_OK ||
        (st = backend_buffer_alloc(bt, x_bytes, &b->x)) != HEARTH_OK ||
        (st = backend_buffer_alloc(bt, y_bytes, &b->y)) != HEARTH_OK ||
        (st = backend_stream_create(dev, &b->s)) != HEARTH_OK)
        return st;
    void *host = malloc(w_bytes > x_bytes ? w_bytes : x_bytes);
    if (!host)
        return err_set(HEARTH_ERR_NO_MEMORY, "flops: out of memory for %zu bytes", w_bytes);
    struct rng r;
    rng_seed(&r, 0x464c4f50u);
    const uint64_t n_blocks =
        (uint64_t)FLOPS_N_OUT_MAX * FLOPS_N_IN_MAX / (uint64_t)quant_get(HEARTH_DTYPE_Q4_K)->blck;
    if ((st = synth_fill(HEARTH_DTYPE_Q4_K, n_blocks, 0.02f, &r, host)) == HEARTH_OK &&
        (st = backend_buffer_set(b->w, 0, host, w_bytes)) == HEARTH_OK) {
        float *x = host;
        for (size_t i = 0; i < x_bytes / sizeof(float); i++)
            x[i] = (float)(2.0 * rng_uniform(&r) - 1.0);
        st = backend_buffer_set(b->x, 0, host, x_bytes);
    }
    free(host);
    return st;
}

/*
 * One run: n_iter MATMULs of an [n_out][n_in] weight, then a synchronize.
 * Smaller shapes view the buffers' starts with their own packed strides.
 */
static hearth_status bench_run(const struct flops_bench *b, int64_t n_out, int64_t n_in,
                               int n_iter, double *seconds)
{
    struct hearth_op op = {.kind = HEARTH_OP_MATMUL, .n_tok = FLOPS_N_TOK, .u.matmul.n_w = 1};
    struct hearth_op_matmul *m = &op.u.matmul;
    backend_tensor_2d(&m->x, b->x, 0, HEARTH_DTYPE_F32, n_in, FLOPS_N_TOK);
    backend_tensor_2d(&m->w[0], b->w, 0, HEARTH_DTYPE_Q4_K, n_in, n_out);
    backend_tensor_2d(&m->y[0], b->y, 0, HEARTH_DTYPE_F32, n_out, FLOPS_N_TOK);
    double t0 = bw_now();
    hearth_status st = HEARTH_OK;
    for (int i = 0; i < n_iter && st == HEARTH_OK; i++)
        st = backend_stream_run(b->s, &op, 1);
    if (st == HEARTH_OK)
        st = backend_stream_synchronize(b->s);
    *seconds = bw_now() - t0;
    return st;
}

/* Grows the shape until a run takes FLOPS_MIN_RUN_S, then times the median run. */
static hearth_status bench_measure(const struct flops_bench *b, struct flops_result *out)
{
    int64_t n_out = FLOPS_N_OUT_MIN, n_in = FLOPS_N_IN_MIN;
    int n_iter = 1;
    double t, times[FLOPS_MAX_REPS];
    hearth_status st = bench_run(b, n_out, n_in, 1, &t); /* warm-up */
    while (st == HEARTH_OK && (st = bench_run(b, n_out, n_in, n_iter, &t)) == HEARTH_OK &&
           t < FLOPS_MIN_RUN_S) {
        if (n_in < FLOPS_N_IN_MAX)
            n_in *= 2;
        else if (n_out < FLOPS_N_OUT_MAX)
            n_out *= 2;
        else if (n_iter < FLOPS_MAX_ITER)
            n_iter *= 2;
        else
            break;
    }
    int reps = t > 0.1 ? 3 : FLOPS_MAX_REPS;
    for (int r = 0; r < reps && st == HEARTH_OK; r++)
        st = bench_run(b, n_out, n_in, n_iter, &times[r]);
    if (st != HEARTH_OK)
        return st;
    out->n_out = n_out;
    out->n_in = n_in;
    out->n_tok = FLOPS_N_TOK;
    out->n_iter = n_iter;
    out->flop = 2.0 * (double)n_out * (double)n_in * FLOPS_N_TOK * n_iter;
    out->seconds = bw_median(times, reps);
    out->reps = reps;
    out->gflops = out->flop / (out->seconds > 1e-9 ? out->seconds : 1e-9) * 1e-9;
    return HEARTH_OK;
}

hearth_status flops__timeable(struct hearth_device *dev, struct hearth_device_props *props)
{
    backend_device_props(dev, props);
    if (!backend_device_supports_op(dev, HEARTH_OP_MATMUL, HEARTH_DTYPE_Q4_K))
        return err_set(HEARTH_ERR_UNSUPPORTED, "flops: %s has no Q4_K matmul to time",
                       props->name);
    return HEARTH_OK;
}

hearth_status flops_measure_device(struct hearth_device *dev, struct flops_result *out)
{
    memset(out, 0, sizeof *out);
    struct hearth_device_props props;
    hearth_status st0 = flops__timeable(dev, &props);
    if (st0 != HEARTH_OK)
        return st0;
    struct flops_bench b;
    hearth_status st = bench_init(dev, &b);
    if (st == HEARTH_OK)
        st = bench_measure(&b, out);
    bench_free(&b);
    if (st != HEARTH_OK)
        return err_prefix(st, "flops: measuring %s", props.name);
    return HEARTH_OK;
}
