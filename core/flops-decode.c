/*
 * flops-decode: a device's matvec rate and op latency, decode's figures (see
 * flops.h for the method). Weights are uploaded as they are first timed, so a
 * slow device whose growth stops at one small weight never holds the rest.
 * Every weight holds the same random blocks of the type timed (what `hearth
 * synth` writes): the bytes read are what is timed, not their values. Every
 * type's weight fits the buffer of a Q4_K one, its row count scaled down by
 * its row size, so one set of buffers serves all.
 */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bandwidth.h"
#include "err.h"
#include "flops.h"
#include "quant.h"
#include "rng.h"
#include "synth.h"

#define DEC_REPS 5

const hearth_dtype flops_dec_types[FLOPS_DEC_N_TYPES] = {
    HEARTH_DTYPE_Q4_K, HEARTH_DTYPE_Q6_K, HEARTH_DTYPE_Q5_K, HEARTH_DTYPE_Q3_K,
    HEARTH_DTYPE_Q2_K, HEARTH_DTYPE_Q4_0, HEARTH_DTYPE_Q4_1, HEARTH_DTYPE_Q5_0,
    HEARTH_DTYPE_Q5_1, HEARTH_DTYPE_Q8_0, HEARTH_DTYPE_IQ4_XS,
};

struct dec_bench {
    struct hearth_device *dev;
    struct hearth_stream *s;
    struct hearth_buffer *w[FLOPS_DEC_N_W], *x, *y;
    int n_w;           /* weights allocated and uploaded */
    int n_w_max;       /* FLOPS_DEC_N_W until an allocation fails */
    void *host;        /* one weight's blocks, uploaded into each */
    size_t w_bytes;    /* one buffer: a Q4_K FLOPS_DEC_N_OUT x FLOPS_DEC_N_IN */
    hearth_dtype type; /* what the buffers hold now */
    int n_filled;      /* buffers [0, n_filled) hold blocks of type */
    struct rng r;
};

static void bench_free(struct dec_bench *b)
{
    backend_stream_destroy(b->s);
    for (int i = 0; i < b->n_w; i++)
        backend_buffer_free(b->w[i]);
    backend_buffer_free(b->y);
    backend_buffer_free(b->x);
    free(b->host);
    memset(b, 0, sizeof *b);
}

static hearth_status bench_init(struct hearth_device *dev, struct dec_bench *b)
{
    memset(b, 0, sizeof *b);
    b->dev = dev;
    b->n_w_max = FLOPS_DEC_N_W;
    uint64_t row = 0;
    if (!quant_row_bytes(HEARTH_DTYPE_Q4_K, FLOPS_DEC_N_IN, &row))
        return err_set(HEARTH_ERR_INVALID_ARG, "flops: %d is not a Q4_K row", FLOPS_DEC_N_IN);
    b->w_bytes = (size_t)row * FLOPS_DEC_N_OUT;
    struct hearth_buffer_type *bt = backend_device_buffer_type(dev);
    const size_t x_bytes = FLOPS_DEC_N_IN * sizeof(float);
    hearth_status st;
    if ((st = backend_buffer_alloc(bt, x_bytes, &b->x)) != HEARTH_OK ||
        (st = backend_buffer_alloc(bt, FLOPS_DEC_N_OUT * sizeof(float), &b->y)) != HEARTH_OK ||
        (st = backend_stream_create(dev, &b->s)) != HEARTH_OK)
        return st;
    if (!(b->host = malloc(b->w_bytes)))
        return err_set(HEARTH_ERR_NO_MEMORY, "flops: out of memory for %zu bytes", b->w_bytes);
    rng_seed(&b->r, 0x4d564543u);
    float x[FLOPS_DEC_N_IN];
    for (int i = 0; i < FLOPS_DEC_N_IN; i++)
        x[i] = (float)(2.0 * rng_uniform(&b->r) - 1.0);
    return backend_buffer_set(b->x, 0, x, sizeof x);
}

static int64_t rows_fitting(const struct dec_bench *b, hearth_dtype t)
{
    return flops__rows_fitting(b->w_bytes, t, FLOPS_DEC_N_IN, FLOPS_DEC_N_OUT,
                               FLOPS_DEC_N_OUT_MIN);
}

/* Host blocks of type t for one buffer's rows; the buffers are refilled as they are used. */
static hearth_status fill_type(struct dec_bench *b, hearth_dtype t)
{
    uint64_t row = 0;
    quant_row_bytes(t, FLOPS_DEC_N_IN, &row);
    const uint64_t n_blocks = (uint64_t)rows_fitting(b, t) * row / quant_get(t)->block_bytes;
    hearth_status st = synth_fill(t, n_blocks, 0.02f, &b->r, b->host);
    if (st == HEARTH_OK) {
        b->type = t;
        b->n_filled = 0;
    }
    return st;
}

/*
 * Makes n weights resident. Out of device memory past the first caps the
 * count at what fits (the figure then comes from fewer weights); any other
 * failure is an error.
 */
static hearth_status ensure_weights(struct dec_bench *b, int n)
{
    struct hearth_buffer_type *bt = backend_device_buffer_type(b->dev);
    while (b->n_w < n && b->n_w < b->n_w_max) {
        struct hearth_buffer *w = NULL;
        hearth_status st = backend_buffer_alloc(bt, b->w_bytes, &w);
        if ((st == HEARTH_ERR_DEVICE_OOM || st == HEARTH_ERR_NO_MEMORY) && b->n_w > 0) {
            err_clear();
            b->n_w_max = b->n_w;
            break;
        }
        if (st != HEARTH_OK)
            return st;
        b->w[b->n_w++] = w;
    }
    for (; b->n_filled < n && b->n_filled < b->n_w; b->n_filled++) {
        hearth_status st = backend_buffer_set(b->w[b->n_filled], 0, b->host, b->w_bytes);
        if (st != HEARTH_OK)
            return st;
    }
    return HEARTH_OK;
}

/* A one-token MATMUL of weight w (n_out rows of n_in) into y. */
static struct hearth_op matvec_op(const struct dec_bench *b, int w, int64_t n_out, int64_t n_in)
{
    struct hearth_op op = {.kind = HEARTH_OP_MATMUL, .n_tok = 1, .u.matmul.n_w = 1};
    struct hearth_op_matmul *m = &op.u.matmul;
    backend_tensor_2d(&m->x, b->x, 0, HEARTH_DTYPE_F32, n_in, 1);
    backend_tensor_2d(&m->y[0], b->y, 0, HEARTH_DTYPE_F32, n_out, 1);
    backend_tensor_2d(&m->w[0], b->w[w], 0, b->type, n_in, n_out);
    return op;
}

/* n_iter passes of one-token MATMULs over weights [0, n_w) of n_out rows, then a synchronize. */
static hearth_status run_matvec(const struct dec_bench *b, int64_t n_out, int64_t n_in, int n_w,
                                int n_iter, double *seconds)
{
    double t0 = bw_now();
    hearth_status st = HEARTH_OK;
    for (int it = 0; it < n_iter && st == HEARTH_OK; it++)
        for (int i = 0; i < n_w && st == HEARTH_OK; i++) {
            struct hearth_op op = matvec_op(b, i, n_out, n_in);
            st = backend_stream_run(b->s, &op, 1);
        }
    if (st == HEARTH_OK)
        st = backend_stream_synchronize(b->s);
    *seconds = bw_now() - t0;
    return st;
}

/* The median of reps runs at one shape, as weight bytes per second. */
static hearth_status time_runs(const struct dec_bench *b, int64_t n_out, int n_w, int n_iter,
                               int reps, double *seconds, double *gbps)
{
    double times[DEC_REPS];
    hearth_status st = HEARTH_OK;
    for (int r = 0; r < reps && st == HEARTH_OK; r++)
        st = run_matvec(b, n_out, FLOPS_DEC_N_IN, n_w, n_iter, &times[r]);
    if (st != HEARTH_OK)
        return st;
    uint64_t row = 0;
    quant_row_bytes(b->type, FLOPS_DEC_N_IN, &row);
    *seconds = bw_median(times, reps);
    *gbps = (double)row * (double)n_out * n_w * n_iter / (*seconds > 1e-9 ? *seconds : 1e-9) *
            1e-9;
    return HEARTH_OK;
}

/* Q4_K, growing the shape (flops.h); true in *slow when growth stopped on time alone. */
static hearth_status measure_q4_k(struct dec_bench *b, struct flops_decode_result *out,
                                  bool *slow)
{
    int64_t n_out = FLOPS_DEC_N_OUT_MIN;
    int n_w = 1, n_iter = 1;
    double t;
    hearth_status st = fill_type(b, HEARTH_DTYPE_Q4_K);
    if (st == HEARTH_OK && (st = ensure_weights(b, 1)) == HEARTH_OK)
        st = run_matvec(b, n_out, FLOPS_DEC_N_IN, 1, 1, &t); /* warm-up */
    while (st == HEARTH_OK &&
           (st = run_matvec(b, n_out, FLOPS_DEC_N_IN, n_w, n_iter, &t)) == HEARTH_OK &&
           t < FLOPS_DEC_SLOW_S) {
        if (n_out < FLOPS_DEC_N_OUT) {
            n_out = n_out * 2 < FLOPS_DEC_N_OUT ? n_out * 2 : FLOPS_DEC_N_OUT;
        } else if (n_w < b->n_w_max) {
            if ((st = ensure_weights(b, n_w * 2)) == HEARTH_OK)
                n_w = b->n_w;
        } else if (t < FLOPS_MIN_RUN_S && n_iter < FLOPS_DEC_MAX_ITER) {
            n_iter *= 2;
        } else {
            break;
        }
    }
    if (st != HEARTH_OK)
        return st;
    *slow = n_out < FLOPS_DEC_N_OUT; /* stopped on time before the full shape */
    out->reps = t > 0.1 ? 3 : DEC_REPS;
    st = time_runs(b, n_out, n_w, n_iter, out->reps, &out->seconds,
                   &out->gbps[HEARTH_DTYPE_Q4_K]);
    uint64_t row = 0;
    quant_row_bytes(HEARTH_DTYPE_Q4_K, FLOPS_DEC_N_IN, &row);
    out->n_out = n_out;
    out->n_w = n_w;
    out->n_iter = n_iter;
    out->bytes = (double)row * (double)n_out * n_w * n_iter;
    return st;
}

/*
 * Every other listed type the device multiplies, at Q4_K's final shape
 * (full-size weights by then: the loop only adds weights at full size).
 */
static hearth_status measure_types(struct dec_bench *b, struct flops_decode_result *out)
{
    for (int i = 1; i < FLOPS_DEC_N_TYPES; i++) {
        hearth_dtype t = flops_dec_types[i];
        int64_t n_out = rows_fitting(b, t);
        if (n_out == 0 || !backend_device_supports_op(b->dev, HEARTH_OP_MATMUL, t))
            continue;
        hearth_status st = fill_type(b, t);
        if (st == HEARTH_OK)
            st = ensure_weights(b, out->n_w);
        double t0;
        if (st == HEARTH_OK) /* warm-up: the type's first use may build a pipeline */
            st = run_matvec(b, n_out, FLOPS_DEC_N_IN, 1, 1, &t0);
        double secs;
        if (st == HEARTH_OK)
            st = time_runs(b, n_out, out->n_w, out->n_iter, out->reps, &secs, &out->gbps[t]);
        if (st != HEARTH_OK)
            return err_prefix(st, "%s", hearth_dtype_name(t));
    }
    return HEARTH_OK;
}

/*
 * n_ops one-token MATMULs of the smallest shape, FLOPS_DEC_LAT_LIST to a list
 * as a decode block's ops are: a backend that replays a repeated list (CUDA
 * graphs, Vulkan command buffers) is timed replaying, as decode runs it.
 */
static hearth_status run_latency(const struct dec_bench *b, int n_ops, double *seconds)
{
    struct hearth_op ops[FLOPS_DEC_LAT_LIST];
    for (int i = 0; i < FLOPS_DEC_LAT_LIST; i++)
        ops[i] = matvec_op(b, 0, FLOPS_DEC_N_OUT_MIN, FLOPS_N_IN_MIN);
    double t0 = bw_now();
    hearth_status st = HEARTH_OK;
    for (int i = 0; i < n_ops / FLOPS_DEC_LAT_LIST && st == HEARTH_OK; i++)
        st = backend_stream_run(b->s, ops, FLOPS_DEC_LAT_LIST);
    if (st == HEARTH_OK)
        st = backend_stream_synchronize(b->s);
    *seconds = bw_now() - t0;
    return st;
}

static hearth_status measure_latency(struct dec_bench *b, struct flops_decode_result *out)
{
    hearth_status st = fill_type(b, HEARTH_DTYPE_Q4_K);
    if (st == HEARTH_OK)
        st = ensure_weights(b, 1);
    int n_ops = 16;
    double t = 0, times[DEC_REPS];
    if (st == HEARTH_OK)
        st = run_latency(b, n_ops, &t);
    while (st == HEARTH_OK && t < FLOPS_MIN_RUN_S && n_ops < FLOPS_DEC_MAX_OPS) {
        n_ops *= 2;
        st = run_latency(b, n_ops, &t);
    }
    for (int r = 0; r < DEC_REPS && st == HEARTH_OK; r++)
        st = run_latency(b, n_ops, &times[r]);
    if (st != HEARTH_OK)
        return st;
    out->n_ops = n_ops;
    out->op_s = bw_median(times, DEC_REPS) / n_ops;
    return HEARTH_OK;
}

hearth_status flops_measure_decode(struct hearth_device *dev, struct flops_decode_result *out)
{
    memset(out, 0, sizeof *out);
    struct hearth_device_props props;
    hearth_status st = flops__timeable(dev, &props);
    if (st != HEARTH_OK)
        return st;
    struct dec_bench b;
    st = bench_init(dev, &b);
    bool slow = false;
    if (st == HEARTH_OK)
        st = measure_q4_k(&b, out, &slow);
    if (st == HEARTH_OK && !slow)
        st = measure_types(&b, out);
    if (st == HEARTH_OK)
        st = measure_latency(&b, out);
    bench_free(&b);
    if (st != HEARTH_OK)
        return err_prefix(st, "flops: measuring decode on %s", props.name);
    return HEARTH_OK;
}
