/*
 * flops-attn: the FLOP rate a device's ATTENTION op reaches over an f16 cache
 * (flops.h has the method). The cache rows before pos0 are zeros and the new
 * rows random: the values change no work. q and k are rotated in place by
 * every run, which keeps their norms.
 */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bandwidth.h"
#include "err.h"
#include "flops.h"
#include "rng.h"

#define ATT_Q (FLOPS_ATT_HEADS * FLOPS_ATT_HEAD_DIM)
#define ATT_KV (FLOPS_ATT_HEADS_KV * FLOPS_ATT_HEAD_DIM)
#define ATT_REPS 5

struct att_bench {
    struct hearth_stream *s;
    /* q, k, v, out: FLOPS_ATT_TOK_MAX rows; caches: 2 * FLOPS_ATT_TOK_MAX rows */
    struct hearth_buffer *q, *k, *v, *out, *kc, *vc;
};

static void bench_free(struct att_bench *b)
{
    backend_stream_destroy(b->s);
    struct hearth_buffer *all[] = {b->q, b->k, b->v, b->out, b->kc, b->vc};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        backend_buffer_free(all[i]);
    memset(b, 0, sizeof *b);
}

/* Uniform [-1, 1) floats into n floats of buf. */
static hearth_status fill_random(struct hearth_buffer *buf, size_t n, struct rng *r)
{
    float *h = malloc(n * sizeof *h);
    if (!h)
        return err_set(HEARTH_ERR_NO_MEMORY, "flops: out of memory for %zu floats", n);
    for (size_t i = 0; i < n; i++)
        h[i] = (float)(2.0 * rng_uniform(r) - 1.0);
    hearth_status st = backend_buffer_set(buf, 0, h, n * sizeof *h);
    free(h);
    return st;
}

static hearth_status bench_init(struct hearth_device *dev, struct att_bench *b)
{
    memset(b, 0, sizeof *b);
    struct hearth_buffer_type *bt = backend_device_buffer_type(dev);
    const size_t t = FLOPS_ATT_TOK_MAX, f = sizeof(float);
    const size_t cache = 2 * t * ATT_KV * sizeof(uint16_t);
    hearth_status st;
    if ((st = backend_buffer_alloc(bt, t * ATT_Q * f, &b->q)) != HEARTH_OK ||
        (st = backend_buffer_alloc(bt, t * ATT_KV * f, &b->k)) != HEARTH_OK ||
        (st = backend_buffer_alloc(bt, t * ATT_KV * f, &b->v)) != HEARTH_OK ||
        (st = backend_buffer_alloc(bt, t * ATT_Q * f, &b->out)) != HEARTH_OK ||
        (st = backend_buffer_alloc(bt, cache, &b->kc)) != HEARTH_OK ||
        (st = backend_buffer_alloc(bt, cache, &b->vc)) != HEARTH_OK ||
        (st = backend_stream_create(dev, &b->s)) != HEARTH_OK ||
        (st = backend_buffer_clear(b->kc, 0)) != HEARTH_OK ||
        (st = backend_buffer_clear(b->vc, 0)) != HEARTH_OK)
        return st;
    struct rng r;
    rng_seed(&r, 0x4154544eu);
    if ((st = fill_random(b->q, t * ATT_Q, &r)) != HEARTH_OK ||
        (st = fill_random(b->k, t * ATT_KV, &r)) != HEARTH_OK)
        return st;
    return fill_random(b->v, t * ATT_KV, &r);
}

/* One run: n_iter ATTENTION ops of n_tok queries at position n_tok, then a synchronize. */
static hearth_status bench_run(const struct att_bench *b, int n_tok, int n_iter, double *seconds)
{
    struct hearth_op op;
    memset(&op, 0, sizeof op);
    op.kind = HEARTH_OP_ATTENTION;
    op.n_tok = n_tok;
    struct hearth_op_attention *a = &op.u.attn;
    const int64_t ctx = 2 * FLOPS_ATT_TOK_MAX;
    backend_tensor_2d(&a->q, b->q, 0, HEARTH_DTYPE_F32, ATT_Q, n_tok);
    backend_tensor_2d(&a->k, b->k, 0, HEARTH_DTYPE_F32, ATT_KV, n_tok);
    backend_tensor_2d(&a->v, b->v, 0, HEARTH_DTYPE_F32, ATT_KV, n_tok);
    backend_tensor_2d(&a->out, b->out, 0, HEARTH_DTYPE_F32, ATT_Q, n_tok);
    backend_tensor_2d(&a->k_cache, b->kc, 0, HEARTH_DTYPE_F16, ATT_KV, ctx);
    backend_tensor_2d(&a->v_cache, b->vc, 0, HEARTH_DTYPE_F16, ATT_KV, ctx);
    a->n_head = FLOPS_ATT_HEADS;
    a->n_head_kv = FLOPS_ATT_HEADS_KV;
    a->head_dim = FLOPS_ATT_HEAD_DIM;
    a->n_rot = FLOPS_ATT_HEAD_DIM;
    a->rope_mode = HEARTH_ROPE_NEOX;
    a->rope_base = 500000.0f;
    a->rope_freq_scale = 1.0f;
    a->norm_eps = 1e-5f;
    a->scale = 0.08838835f; /* 1 / sqrt(128) */
    a->pos0 = n_tok;
    return flops__time_ops(b->s, &op, n_iter, seconds);
}

double flops_attention_flop(int64_t n_tok, int64_t pos0)
{
    /* query t attends to pos0 + t + 1 keys: a q.k and a p.v of head_dim each */
    double keys = (double)n_tok * (double)pos0 + (double)n_tok * (double)(n_tok + 1) / 2.0;
    return 4.0 * FLOPS_ATT_HEADS * FLOPS_ATT_HEAD_DIM * keys;
}

static hearth_status bench_measure(const struct att_bench *b, struct flops_attn_result *out)
{
    int n_tok = FLOPS_ATT_TOK_MIN, n_iter = 1;
    double t, times[ATT_REPS];
    hearth_status st = bench_run(b, n_tok, 1, &t); /* warm-up */
    /* a run that would stop the growth is run again and the faster decides: a new
       shape's first run may load a kernel (flops.c, bench_run_settled) */
    double again;
    while (st == HEARTH_OK && (st = bench_run(b, n_tok, n_iter, &t)) == HEARTH_OK &&
           (t < FLOPS_MIN_RUN_S || ((st = bench_run(b, n_tok, n_iter, &again)) == HEARTH_OK &&
                                    (t = again < t ? again : t) < FLOPS_MIN_RUN_S))) {
        if (n_tok < FLOPS_ATT_TOK_MAX)
            n_tok *= 2;
        else if (n_iter < FLOPS_MAX_ITER)
            n_iter *= 2;
        else
            break;
    }
    int reps = t > 0.1 ? 3 : ATT_REPS;
    for (int r = 0; r < reps && st == HEARTH_OK; r++)
        st = bench_run(b, n_tok, n_iter, &times[r]);
    if (st != HEARTH_OK)
        return st;
    out->n_tok = n_tok;
    out->n_iter = n_iter;
    out->flop = flops_attention_flop(n_tok, n_tok) * n_iter;
    out->seconds = bw_median(times, reps);
    out->reps = reps;
    out->gflops = out->flop / (out->seconds > 1e-9 ? out->seconds : 1e-9) * 1e-9;
    return HEARTH_OK;
}

hearth_status flops_measure_attention(struct hearth_device *dev, struct flops_attn_result *out)
{
    memset(out, 0, sizeof *out);
    struct hearth_device_props props;
    backend_device_props(dev, &props);
    if (!backend_device_supports_op(dev, HEARTH_OP_ATTENTION, HEARTH_DTYPE_F32))
        return err_set(HEARTH_ERR_UNSUPPORTED, "flops: %s has no attention to time", props.name);
    struct att_bench b;
    hearth_status st = bench_init(dev, &b);
    if (st == HEARTH_OK)
        st = bench_measure(&b, out);
    bench_free(&b);
    if (st != HEARTH_OK)
        return err_prefix(st, "flops: measuring attention on %s", props.name);
    return HEARTH_OK;
}
