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
    void *host;                      /* staging for the weight's blocks */
    size_t w_bytes;                  /* a Q4_K FLOPS_N_OUT_MAX x FLOPS_N_IN_MAX */
    hearth_dtype type;               /* what w holds */
    struct rng r;
};

static void bench_free(struct flops_bench *b)
{
    backend_stream_destroy(b->s);
    backend_buffer_free(b->y);
    backend_buffer_free(b->x);
    backend_buffer_free(b->w);
    free(b->host);
    memset(b, 0, sizeof *b);
}

hearth_status flops__time_ops(struct hearth_stream *s, const struct hearth_op *op, int n_iter,
                              double *seconds)
{
    double t0 = bw_now();
    hearth_status st = HEARTH_OK;
    for (int i = 0; i < n_iter && st == HEARTH_OK; i++)
        st = backend_stream_run(s, op, 1);
    if (st == HEARTH_OK)
        st = backend_stream_synchronize(s);
    *seconds = bw_now() - t0;
    return st;
}

int64_t flops__rows_fitting(size_t bytes, hearth_dtype t, int64_t n_in, int64_t max_rows,
                            int64_t multiple)
{
    uint64_t row = 0;
    if (!quant_row_bytes(t, n_in, &row) || row == 0)
        return 0;
    int64_t n = (int64_t)(bytes / row);
    n = n < max_rows ? n : max_rows;
    return n / multiple * multiple;
}

static int64_t rows_fitting(const struct flops_bench *b, hearth_dtype t)
{
    return flops__rows_fitting(b->w_bytes, t, FLOPS_N_IN_MAX, FLOPS_N_OUT_MAX, FLOPS_N_OUT_MIN);
}

/* Random blocks of type t into w, as many rows as fit. */
static hearth_status bench_fill(struct flops_bench *b, hearth_dtype t)
{
    uint64_t row = 0;
    quant_row_bytes(t, FLOPS_N_IN_MAX, &row);
    size_t bytes = (size_t)rows_fitting(b, t) * row;
    hearth_status st = synth_fill(t, bytes / quant_get(t)->block_bytes, 0.02f, &b->r, b->host);
    if (st == HEARTH_OK)
        st = backend_buffer_set(b->w, 0, b->host, bytes);
    if (st == HEARTH_OK)
        b->type = t;
    return st;
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
    b->w_bytes = w_bytes;
    if (!(b->host = malloc(w_bytes > x_bytes ? w_bytes : x_bytes)))
        return err_set(HEARTH_ERR_NO_MEMORY, "flops: out of memory for %zu bytes", w_bytes);
    rng_seed(&b->r, 0x464c4f50u);
    float *x = b->host;
    for (size_t i = 0; i < x_bytes / sizeof(float); i++)
        x[i] = (float)(2.0 * rng_uniform(&b->r) - 1.0);
    if ((st = backend_buffer_set(b->x, 0, b->host, x_bytes)) != HEARTH_OK)
        return st;
    return bench_fill(b, HEARTH_DTYPE_Q4_K);
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
    backend_tensor_2d(&m->w[0], b->w, 0, b->type, n_in, n_out);
    backend_tensor_2d(&m->y[0], b->y, 0, HEARTH_DTYPE_F32, n_out, FLOPS_N_TOK);
    return flops__time_ops(b->s, &op, n_iter, seconds);
}

/*
 * A growth step's run. A shape's first run can carry one-time costs (cuBLAS
 * loads a kernel per new shape; CUDA loads modules lazily). On an H100 the
 * measure reported Q4_K at 1.6 TFLOP/s and the other types at 13-18, against
 * 230-320 in bench-cuda: most likely growth stopped on such a run at a tiny
 * shape (bench/RESULTS.md, 2026-11-23). So a run long enough to stop the
 * growth is repeated, and the faster of the two decides.
 */
static hearth_status bench_run_settled(const struct flops_bench *b, int64_t n_out, int64_t n_in,
                                       int n_iter, double *seconds)
{
    hearth_status st = bench_run(b, n_out, n_in, n_iter, seconds);
    double again;
    if (st == HEARTH_OK && *seconds >= FLOPS_MIN_RUN_S &&
        (st = bench_run(b, n_out, n_in, n_iter, &again)) == HEARTH_OK && again < *seconds)
        *seconds = again;
    return st;
}

/* Grows the shape until a run takes FLOPS_MIN_RUN_S, then times the median run. */
static hearth_status bench_measure(const struct flops_bench *b, struct flops_result *out)
{
    int64_t n_out = FLOPS_N_OUT_MIN, n_in = FLOPS_N_IN_MIN;
    int n_iter = 1;
    double t, times[FLOPS_MAX_REPS];
    hearth_status st = bench_run(b, n_out, n_in, 1, &t); /* warm-up */
    /* the full row width unless a run is slow already; then rows until a run takes long enough */
    while (st == HEARTH_OK && (st = bench_run_settled(b, n_out, n_in, n_iter, &t)) == HEARTH_OK &&
           t < FLOPS_DEC_SLOW_S) {
        if (n_in < FLOPS_N_IN_MAX)
            n_in *= 2;
        else if (t >= FLOPS_MIN_RUN_S)
            break;
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
    out->gflops_type[HEARTH_DTYPE_Q4_K] = out->gflops;
    return HEARTH_OK;
}

/*
 * Every other listed type the device multiplies, at Q4_K's final shape (its
 * rows capped at what fits the buffer), n_iter ops a run: a warm-up (a
 * type's first use may build a pipeline), then the median of 3.
 */
static hearth_status measure_types(struct flops_bench *b, struct hearth_device *dev,
                                   struct flops_result *out)
{
    for (int i = 1; i < FLOPS_DEC_N_TYPES; i++) {
        hearth_dtype t = flops_dec_types[i];
        int64_t n_out = rows_fitting(b, t);
        n_out = n_out < out->n_out ? n_out : out->n_out;
        if (n_out == 0 || !backend_device_supports_op(dev, HEARTH_OP_MATMUL, t))
            continue;
        double times[3], t0;
        hearth_status st = bench_fill(b, t);
        if (st == HEARTH_OK)
            st = bench_run(b, n_out, FLOPS_N_IN_MAX, 1, &t0);
        for (int r = 0; r < 3 && st == HEARTH_OK; r++)
            st = bench_run(b, n_out, FLOPS_N_IN_MAX, out->n_iter, &times[r]);
        if (st != HEARTH_OK)
            return err_prefix(st, "%s", hearth_dtype_name(t));
        double flop = 2.0 * (double)n_out * FLOPS_N_IN_MAX * FLOPS_N_TOK * out->n_iter;
        double sec = bw_median(times, 3);
        out->gflops_type[t] = flop / (sec > 1e-9 ? sec : 1e-9) * 1e-9;
    }
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
    /* a device that did not reach the full row width in time is timed on Q4_K alone */
    if (st == HEARTH_OK && out->n_in == FLOPS_N_IN_MAX)
        st = measure_types(&b, dev, out);
    bench_free(&b);
    if (st != HEARTH_OK)
        return err_prefix(st, "flops: measuring %s", props.name);
    return HEARTH_OK;
}
