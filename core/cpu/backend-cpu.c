/*
 * cpu/backend-cpu: the CPU behind the backend interface (backend.h), and the
 * reference implementation of every op contract there.
 *
 * Each op calls the existing kernels of cpu/ops.h and cpu/matmul.c in exactly
 * the order cpu/forward.c does (same quantization of activations, same
 * fused q/k/v and gate/up products, same per-row RMSNorm and RoPE, same F16
 * write-then-read-back of K/V), so a model run op by op through this backend
 * gives the bits forward.c gives. That is what tests/test-sched.c asserts and
 * what lets forward.c move onto the scheduler later without a numeric change.
 * Compressed KV caches (ATTENTION k_type / v_type not both f16: I8 rows of
 * encoded head vectors) go through the same cpu/attn-kvq.h encoder and
 * batched kernel as forward.c, with the rotation rebuilt per op from
 * (head_dim, kv_seed, layer) (a few hundred ns), so tests/test-kv-cache.c
 * finds the same bits on both paths. The key mean and sink key come in
 * ATTENTION's k_aux; the exact window (step 5) in its k_ring / v_ring /
 * ring_pos, staged by cpu_kvq_exact_stage (cpu/kv-window.c), the function
 * forward.c calls, so the scheduler on this backend gives forward.c's bits
 * with a window too (tests/test-kv-window.c). An f16/f16 ring-only layer
 * (step 6) runs cpu/attn-ring.h's staging and grouped f16 kernel instead,
 * again forward.c's functions.
 *
 * Memory: buffers are calloc'd (zeroed, and a large KV cache only costs the
 * pages written); "device-local" and "pinned host" are both host RAM here,
 * two types only so that the flags a GPU backend reports can be exercised.
 * A stream owns scratch (quantized activations, attention scores, packed
 * rows) that grows on first use to the largest op seen and is then reused,
 * so steady-state decode allocates nothing. Streams run synchronously on the
 * calling thread plus the device's thread pool; one pool runs one job at a
 * time, so one device's streams must not be used from two threads at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "bandwidth.h"
#include "cpu/attn-kvq.h"
#include "cpu/attn-ring.h"
#include "cpu/backend-rows.h"
#include "cpu/ops.h"
#include "cpu/rows.h"
#include "err.h"
#include "f16.h"
#include "quant.h"
#include "threadpool.h"

struct cpu_dev {
    struct hearth_device dev;
    struct hearth_buffer_type buft;      /* device-local: HOST | DEVICE_LOCAL */
    struct hearth_buffer_type host_buft; /* staging: HOST | PINNED */
    struct threadpool *tp;
    enum cpu_isa isa;
    struct cpu_attn_kernels ak;
    struct cpu_glu_kernels glu;
    struct cpu_matmul_kernels kern[HEARTH_DTYPE_COUNT]; /* valid where kern_state == 1 */
    signed char kern_state[HEARTH_DTYPE_COUNT];         /* 0 unknown, 1 ok, -1 no kernel */
    char name[32];
    double bw_gbps;
};

struct cpu_buf {
    struct hearth_buffer b;
    uint8_t *data; /* [size] bytes, zeroed at allocation */
};

struct cpu_stream {
    struct hearth_stream s;
    struct cpu_dev *d;
    void *act;       /* quantized activations, act_cap bytes */
    size_t act_cap;
    float *scores;   /* [n_threads][scores_per] attention scratch */
    size_t scores_cap;
    float *rows;     /* packed F32 rows (strided x, logits' normed rows) */
    size_t rows_cap;
    float *rope;     /* [n_rot] cos/sin of one position */
    size_t rope_cap;
    /* compressed KV caches (attn-kvq.h, the kernels forward.c uses), made on first use */
    struct cpu_kvq_attn *kva;
    uint8_t **kdst;  /* [2 n] cache rows of the new K (first n) and V (last n) */
    size_t kdst_cap;
    int32_t *ipos;   /* [2 n] positions of the batch rows, then the rows 0..n-1 */
    size_t ipos_cap;
    /*
     * exact window: [2][cpu_kvq_exact_rows(W, n)][Hk·D] staged K, V rows,
     * floats (attn_kvq) or halves (an f16 ring-only layer, attn_ring)
     */
    float *xst;
    size_t xst_cap;
};

/* ---- buffers ------------------------------------------------------------ */

static void cbuf_free(struct hearth_buffer *b)
{
    struct cpu_buf *cb = b->ctx;
    free(cb->data);
    free(cb);
}

static void *cbuf_base(struct hearth_buffer *b)
{
    return ((struct cpu_buf *)b->ctx)->data;
}

static hearth_status cbuf_set(struct hearth_buffer *b, size_t off, const void *src, size_t n)
{
    memcpy(((struct cpu_buf *)b->ctx)->data + off, src, n);
    return HEARTH_OK;
}

static hearth_status cbuf_get(struct hearth_buffer *b, size_t off, void *dst, size_t n)
{
    memcpy(dst, ((struct cpu_buf *)b->ctx)->data + off, n);
    return HEARTH_OK;
}

static hearth_status cbuf_clear(struct hearth_buffer *b, uint8_t value)
{
    memset(((struct cpu_buf *)b->ctx)->data, value, b->size);
    return HEARTH_OK;
}

/* Any two host buffers copy directly; a non-host source declines (the caller stages). */
static hearth_status cbuf_copy_from(struct hearth_buffer *dst, size_t doff,
                                    struct hearth_buffer *src, size_t soff, size_t n)
{
    if (!(backend_buft_flags(src->buft) & HEARTH_BUFT_HOST))
        return err_set(HEARTH_ERR_UNSUPPORTED, "cpu: cannot read a %s buffer directly",
                       src->buft->ops->name);
    memcpy(((struct cpu_buf *)dst->ctx)->data + doff,
           (const uint8_t *)backend_buffer_base(src) + soff, n);
    return HEARTH_OK;
}

static const struct hearth_buffer_ops cbuf_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .free = cbuf_free,
    .base = cbuf_base,
    .set = cbuf_set,
    .get = cbuf_get,
    .clear = cbuf_clear,
    .copy_from = cbuf_copy_from,
};

static hearth_status cbuft_alloc(struct hearth_buffer_type *bt, size_t size,
                                 struct hearth_buffer **out)
{
    struct cpu_buf *cb = calloc(1, sizeof *cb);
    uint8_t *data = calloc(size, 1);
    if (!cb || !data) {
        free(cb);
        free(data);
        return err_set(HEARTH_ERR_NO_MEMORY, "cpu: out of host memory for a buffer of %zu bytes",
                       size);
    }
    cb->data = data;
    cb->b.ops = &cbuf_ops;
    cb->b.ctx = cb;
    cb->b.buft = bt;
    cb->b.size = size;
    *out = &cb->b;
    return HEARTH_OK;
}

static size_t cbuft_alignment(struct hearth_buffer_type *bt)
{
    (void)bt;
    return 16; /* calloc's guarantee; every CPU kernel accepts any alignment of block data */
}

static size_t cbuft_max_size(struct hearth_buffer_type *bt)
{
    (void)bt;
    return SIZE_MAX / 2;
}

static uint32_t cbuft_flags_dev(struct hearth_buffer_type *bt)
{
    (void)bt;
    return HEARTH_BUFT_HOST | HEARTH_BUFT_DEVICE_LOCAL;
}

static uint32_t cbuft_flags_host(struct hearth_buffer_type *bt)
{
    (void)bt;
    return HEARTH_BUFT_HOST | HEARTH_BUFT_PINNED;
}

static const struct hearth_buffer_type_ops cbuft_dev_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .name = "cpu",
    .alloc = cbuft_alloc,
    .alignment = cbuft_alignment,
    .max_size = cbuft_max_size,
    .flags = cbuft_flags_dev,
};

static const struct hearth_buffer_type_ops cbuft_host_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .name = "cpu_host",
    .alloc = cbuft_alloc,
    .alignment = cbuft_alignment,
    .max_size = cbuft_max_size,
    .flags = cbuft_flags_host,
};

/* ---- ops ---------------------------------------------------------------- */

static hearth_status grow(void **p, size_t *cap, size_t need, const char *what)
{
    if (need <= *cap)
        return HEARTH_OK;
    void *q = realloc(*p, need);
    if (!q)
        return err_set(HEARTH_ERR_NO_MEMORY, "cpu: out of memory for %zu bytes of %s scratch",
                       need, what);
    *p = q;
    *cap = need;
    return HEARTH_OK;
}

static hearth_status kernels(struct cpu_dev *d, hearth_dtype t, const struct cpu_matmul_kernels **k)
{
    if ((unsigned)t >= HEARTH_DTYPE_COUNT)
        return err_set(HEARTH_ERR_UNSUPPORTED, "cpu: type id %d unknown", (int)t);
    if (d->kern_state[t] == 0) {
        hearth_status st = cpu_matmul_kernels_get(t, d->isa, &d->kern[t]);
        d->kern_state[t] = st == HEARTH_OK ? 1 : -1;
        if (st != HEARTH_OK)
            return st;
    }
    if (d->kern_state[t] < 0)
        return err_set(HEARTH_ERR_UNSUPPORTED, "cpu: no matmul kernel for %s",
                       hearth_dtype_name(t) ? hearth_dtype_name(t) : "?");
    *k = &d->kern[t];
    return HEARTH_OK;
}

static bool same_act(const struct cpu_matmul_kernels *a, const struct cpu_matmul_kernels *b)
{
    return a->act_type == b->act_type && a->quantize == b->quantize;
}

/* Rows of x as one contiguous [n][K] block: x itself when packed, else a copy in scratch. */
static hearth_status packed_rows(struct cpu_stream *cs, const struct hearth_tensor *x, int n,
                                 const float **out)
{
    size_t rb = (size_t)x->ne0 * sizeof(float);
    if (x->row_stride == rb) {
        *out = cpu_frow(x, 0);
        return HEARTH_OK;
    }
    hearth_status st = grow((void **)&cs->rows, &cs->rows_cap, rb * (size_t)n, "row");
    if (st != HEARTH_OK)
        return st;
    for (int t = 0; t < n; t++)
        memcpy(cs->rows + (size_t)t * (size_t)x->ne0, cpu_frow(x, t), rb);
    *out = cs->rows;
    return HEARTH_OK;
}

static hearth_status f32_stride(const struct hearth_tensor *t, int64_t *out)
{
    if (t->row_stride % sizeof(float))
        return err_set(HEARTH_ERR_INVALID_ARG, "cpu: F32 row stride %zu is no multiple of 4",
                       t->row_stride);
    *out = (int64_t)(t->row_stride / sizeof(float));
    return HEARTH_OK;
}

static hearth_status op_matmul(struct cpu_stream *cs, const struct hearth_op_matmul *m, int n)
{
    struct cpu_dev *d = cs->d;
    const struct cpu_matmul_kernels *ks[3];
    struct model_weight ws[3];
    const struct model_weight *wp[3];
    float *ys[3];
    int64_t ss[3];
    hearth_status st;
    bool shared = true;
    size_t act_need = 0;
    for (int i = 0; i < m->n_w; i++) {
        if ((st = kernels(d, m->w[i].type, &ks[i])) != HEARTH_OK ||
            (st = f32_stride(&m->y[i], &ss[i])) != HEARTH_OK)
            return st;
        ws[i] = cpu_as_weight(&m->w[i]);
        wp[i] = &ws[i];
        ys[i] = cpu_frow(&m->y[i], 0);
        size_t rb = cpu_act_row_bytes(ks[i], m->x.ne0);
        if (rb == 0)
            return err_set(HEARTH_ERR_UNSUPPORTED,
                           "cpu: matmul: rows of %lld do not fit the activation format of %s",
                           (long long)m->x.ne0, hearth_dtype_name(m->w[i].type));
        act_need = rb * (size_t)n > act_need ? rb * (size_t)n : act_need;
        if (i > 0 && !same_act(ks[0], ks[i]))
            shared = false;
    }
    const float *x;
    if ((st = grow(&cs->act, &cs->act_cap, act_need, "activation")) != HEARTH_OK ||
        (st = packed_rows(cs, &m->x, n, &x)) != HEARTH_OK)
        return st;
    if (m->n_w > 1 && shared) {
        cpu_act_quantize(d->tp, ks[0], x, m->x.ne0, n, cs->act);
        cpu_matmul_act_multi(d->tp, m->n_w, ks, wp, cs->act, n, ys, ss);
    } else {
        for (int i = 0; i < m->n_w; i++)
            cpu_matmul(d->tp, ks[i], wp[i], x, n, ys[i], ss[i], cs->act);
    }
    for (int i = 0; i < m->n_w; i++) {
        if (!m->b[i].buf)
            continue;
        const float *b = cpu_frow(&m->b[i], 0);
        for (int t = 0; t < n; t++)
            cpu_add(ys[i] + t * ss[i], b, m->w[i].n_rows);
    }
    return HEARTH_OK;
}

struct attn_job {
    struct cpu_stream *cs;
    const struct hearth_op_attention *a;
    int64_t q_stride, o_stride; /* floats */
    size_t kv_stride;           /* halves */
    size_t scores_per;          /* floats per thread */
    struct cpu_attn_split split;
};

static void attn_items(void *arg, int64_t b, int64_t e, int tid)
{
    const struct attn_job *j = arg;
    const struct hearth_op_attention *a = j->a;
    const int hd = a->head_dim;
    float *scores = j->cs->scores + (size_t)tid * j->scores_per;
    const float *q0 = cpu_frow(&a->q, 0);
    float *o0 = cpu_frow(&a->out, 0);
    const uint16_t *k0 = (const uint16_t *)(const void *)cpu_trow(&a->k_cache, 0);
    const uint16_t *v0 = (const uint16_t *)(const void *)cpu_trow(&a->v_cache, 0);
    for (int64_t it = b; it < e; it++) {
        int t, h;
        cpu_attn_split_item(&j->split, it, &t, &h);
        int64_t p = a->pos0 + t, lo = 0;
        if (a->window > 0 && p - (int64_t)a->window + 1 > 0)
            lo = p - (int64_t)a->window + 1;
        size_t col = (size_t)(h / j->split.n_gqa) * (size_t)hd;
        cpu_attn_heads(&j->cs->d->ak, o0 + t * j->o_stride + (int64_t)h * hd,
                       q0 + t * j->q_stride + (int64_t)h * hd, j->split.qb,
                       k0 + (size_t)lo * j->kv_stride + col, v0 + (size_t)lo * j->kv_stride + col,
                       j->kv_stride, p - lo + 1, hd, a->scale, scores);
    }
}

/* The compressed-cache contract of backend.h (ATTENTION): types, tensor types and sizes. */
static hearth_status check_kvq_caches(const struct hearth_op_attention *a, int n)
{
    const int kt[2] = {a->k_type, a->v_type};
    const struct hearth_tensor *ct[2] = {&a->k_cache, &a->v_cache};
    if (!a->k_cache.buf || !a->v_cache.buf) {
        /* step 6: a ring-only layer keeps no codes; its ring must cover its window */
        if (a->k_cache.buf || a->v_cache.buf || a->window == 0 || a->kv_window < a->window)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "cpu: attention: a layer without K/V cache rows needs both absent, "
                           "a sliding window and kv_window >= it (got K %s, V %s, window %u, "
                           "kv_window %u)",
                           a->k_cache.buf ? "present" : "absent",
                           a->v_cache.buf ? "present" : "absent", a->window, a->kv_window);
        for (int i = 0; i < 2; i++)
            if ((unsigned)kt[i] >= KVQ_TYPE_COUNT)
                return err_set(HEARTH_ERR_UNSUPPORTED, "cpu: attention: cache type %d unknown",
                               kt[i]);
        return HEARTH_OK;
    }
    for (int i = 0; i < 2; i++) {
        const char *what = i ? "V" : "K";
        if ((unsigned)kt[i] >= KVQ_TYPE_COUNT)
            return err_set(HEARTH_ERR_UNSUPPORTED, "cpu: attention: %s cache type %d unknown",
                           what, kt[i]);
        hearth_status st = kvq_check((enum kvq_type)kt[i], a->head_dim);
        if (st != HEARTH_OK)
            return err_prefix(st, "cpu: attention: %s cache", what);
        size_t hb = kvq_head_bytes((enum kvq_type)kt[i], a->head_dim);
        hearth_dtype want = kt[i] == KVQ_F16 ? HEARTH_DTYPE_F16 : HEARTH_DTYPE_I8;
        int64_t need = kt[i] == KVQ_F16 ? (int64_t)a->n_head_kv * a->head_dim
                                        : (int64_t)((size_t)a->n_head_kv * hb);
        if (ct[i]->type != want || ct[i]->ne0 < need ||
            ct[i]->row_stride < (size_t)a->n_head_kv * hb)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "cpu: attention: a %s %s cache must be a %s tensor of rows >= %lld "
                           "(got %s, %lld, stride %zu)",
                           what, kvq_type_name((enum kvq_type)kt[i]), hearth_dtype_name(want),
                           (long long)need, hearth_dtype_name(ct[i]->type),
                           (long long)ct[i]->ne0, ct[i]->row_stride);
        if (a->pos0 < 0 || a->pos0 + n > ct[i]->n_rows)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "cpu: attention: positions %lld..%lld exceed the %s cache's %lld rows",
                           (long long)a->pos0, (long long)a->pos0 + n - 1, what,
                           (long long)ct[i]->n_rows);
    }
    return HEARTH_OK;
}

/*
 * The ring tensors of step 5 (backend.h ATTENTION): F16 [W][>= Hk·D] K and V
 * rows (even strides) and I32 [W] tags, one row of W or W packed rows of 1.
 */
static hearth_status window_ring(const struct hearth_op_attention *a, struct cpu_kvq_ring *r)
{
    hearth_status st = backend_check_kv_ring(a, "cpu");
    if (st != HEARTH_OK)
        return st;
    const struct hearth_tensor *kr = &a->k_ring, *vr = &a->v_ring, *tp = &a->ring_pos;
    *r = (struct cpu_kvq_ring){.k = (uint16_t *)(void *)cpu_trow(kr, 0),
                               .v = (uint16_t *)(void *)cpu_trow(vr, 0),
                               .k_stride = kr->row_stride / 2, .v_stride = vr->row_stride / 2,
                               .pos = (int32_t *)(void *)cpu_trow(tp, 0), .w = a->kv_window,
                               .span = a->window};
    return HEARTH_OK;
}

/*
 * Steps 3-4 of ATTENTION over compressed caches: encode the n new rows (q, k,
 * v already normed and rotated; destination rows in cs->kdst), then the
 * batched kernel of attn-kvq.h, the one forward.c runs.
 */
static hearth_status attn_kvq(struct cpu_stream *cs, const struct hearth_op_attention *a, int n)
{
    struct cpu_dev *d = cs->d;
    const enum kvq_type kt = (enum kvq_type)a->k_type, vt = (enum kvq_type)a->v_type;
    struct kvq_rot rot;
    hearth_status st;
    int64_t qs = 0, ks = 0, vs = 0, os = 0;
    if ((st = f32_stride(&a->q, &qs)) != HEARTH_OK || (st = f32_stride(&a->k, &ks)) != HEARTH_OK ||
        (st = f32_stride(&a->v, &vs)) != HEARTH_OK || (st = f32_stride(&a->out, &os)) != HEARTH_OK)
        return st;
    if (ks != vs)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "cpu: attention: k and v row strides differ (%lld, %lld floats)",
                       (long long)ks, (long long)vs);
    const bool rotated = kvq_is_rotated(kt) || kvq_is_rotated(vt);
    if (rotated && (st = kvq_rot_init(&rot, a->head_dim, a->kv_seed, a->layer)) != HEARTH_OK)
        return st;
    if (!cs->kva &&
        (st = cpu_kvq_attn_create(d->isa, threadpool_n_threads(d->tp), &cs->kva)) != HEARTH_OK)
        return st;
    if ((st = cpu_kvq_attn_reserve(cs->kva, n, a->n_head, a->head_dim)) != HEARTH_OK)
        return st;
    const struct kvq_rot *r = rotated ? &rot : NULL;
    struct cpu_kvq_ring ring = {0};
    const size_t xrows = cpu_kvq_exact_rows(a->kv_window, n);
    const size_t xfl = xrows * (size_t)a->n_head_kv * (size_t)a->head_dim;
    if (a->kv_window > 0 &&
        ((st = window_ring(a, &ring)) != HEARTH_OK ||
         (st = grow((void **)&cs->xst, &cs->xst_cap, 2 * xfl * sizeof *cs->xst,
                    "exact window")) != HEARTH_OK))
        return st;
    for (int t = 0; t < n; t++) {
        cs->ipos[t] = (int32_t)(a->pos0 + t);
        cs->ipos[n + t] = t;
    }
    const float *sink = NULL;
    if (kt != KVQ_F16) {
        /* forward.c's key mean step (the same function): a K cache's rows hold enc(k - mu) */
        const int KV = a->n_head_kv * a->head_dim;
        const struct hearth_tensor *x = &a->k_aux;
        if (!x->buf || x->type != HEARTH_DTYPE_F32 || x->ne0 < KV || x->n_rows < 2)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "cpu: attention: a %s K cache needs k_aux, F32 [2][%d] (backend.h)",
                           kvq_type_name(kt), KV);
        float *mu = cpu_frow(x, 0), *sk = cpu_frow(x, 1);
        cpu_kvq_key_center(cpu_frow(&a->k, 0), ks, cs->ipos + n, n, a->pos0 == 0, KV, mu, sk);
        sink = sk;
    }
    const bool codes = a->k_cache.buf != NULL; /* false: a ring-only layer (step 6) */
    if (codes)
        cpu_kvq_encode_rows(d->tp, kt, vt, r, n, a->n_head_kv, a->head_dim, cpu_frow(&a->k, 0),
                            cpu_frow(&a->v, 0), ks, cs->kdst, cs->kdst + n);
    struct cpu_kvq_seq seq = {.k = codes ? cpu_trow(&a->k_cache, 0) : NULL,
                              .v = codes ? cpu_trow(&a->v_cache, 0) : NULL,
                              .tok = cs->ipos + n, .n = n, .k_sink = sink};
    struct cpu_kvq_exact ex = {0};
    if (a->kv_window > 0)
        cpu_kvq_exact_stage(kt, vt, r, a->n_head_kv, a->head_dim, a->k_cache.row_stride,
                            a->v_cache.row_stride, &seq, a->pos0, cpu_frow(&a->k, 0),
                            cpu_frow(&a->v, 0), ks, &ring, cs->xst, cs->xst + xfl, &ex);
    struct cpu_kvq_layer L = {
        .kt = kt, .vt = vt, .rot = r, .n_head = a->n_head, .n_head_kv = a->n_head_kv,
        .hd = a->head_dim, .k_row = a->k_cache.row_stride, .v_row = a->v_cache.row_stride,
        .scale = a->scale, .window = a->window, .exact_window = a->kv_window, .exact = &ex,
        .pos = cs->ipos, .q = cpu_frow(&a->q, 0), .q_stride = qs, .out = cpu_frow(&a->out, 0),
        .out_stride = os, .seq = &seq, .n_seq = 1};
    cpu_kvq_attn_run(cs->kva, d->tp, &L);
    return HEARTH_OK;
}

/*
 * Step 6 over an f16/f16 cache: a ring-only layer's window staged as halves
 * and the grouped f16 kernel over it (attn-ring.h), the functions forward.c
 * runs. q, k, v already normed and rotated; j: the strides and scratch of
 * op_attention.
 */
static hearth_status attn_ring(struct cpu_stream *cs, const struct hearth_op_attention *a, int n,
                               const struct attn_job *j, int64_t kv_stride)
{
    struct cpu_kvq_ring ring;
    const size_t KV = (size_t)a->n_head_kv * (size_t)a->head_dim;
    const size_t xh = cpu_kvq_exact_rows(a->kv_window, n) * KV;
    hearth_status st;
    if ((st = window_ring(a, &ring)) != HEARTH_OK ||
        (st = grow((void **)&cs->xst, &cs->xst_cap, 2 * xh * sizeof(uint16_t),
                   "exact window")) != HEARTH_OK)
        return st;
    for (int t = 0; t < n; t++) {
        cs->ipos[t] = (int32_t)(a->pos0 + t);
        cs->ipos[n + t] = t;
    }
    uint16_t *xk = (uint16_t *)(void *)cs->xst;
    struct cpu_ring_rows rows;
    cpu_ring_stage_f16(&ring, (int)KV, a->pos0, n, cs->ipos + n, cpu_frow(&a->k, 0),
                       cpu_frow(&a->v, 0), kv_stride, xk, xk + xh, &rows);
    const struct cpu_ring_attn ra = {
        .ak = &cs->d->ak, .rows = &rows, .grp = NULL, .pos = cs->ipos, .q = cpu_frow(&a->q, 0),
        .q_stride = j->q_stride, .out = cpu_frow(&a->out, 0), .out_stride = j->o_stride,
        .n_head = a->n_head, .n_head_kv = a->n_head_kv, .hd = a->head_dim, .window = a->window,
        .scale = a->scale, .scores = cs->scores, .scores_per = j->scores_per};
    cpu_ring_attn_run(cs->d->tp, &ra, n);
    return HEARTH_OK;
}

/* ATTENTION's per-token work before attending: QK norms, RoPE, the cache store. */
struct prep_job {
    struct cpu_stream *cs;
    const struct hearth_op_attention *a;
    const float *qn, *kn, *divs; /* NULL: absent */
    int n;
    bool kvq;
};

static void row_prep(void *arg, int t)
{
    const struct prep_job *j = arg;
    const struct hearth_op_attention *a = j->a;
    struct cpu_stream *cs = j->cs;
    const int64_t hd = a->head_dim, KV = (int64_t)a->n_head_kv * hd;
    float *qt = cpu_frow(&a->q, t), *kt = cpu_frow(&a->k, t);
    const float *vt = cpu_frow(&a->v, t);
    float *rope = cs->rope + (size_t)t * (size_t)(a->n_rot > 0 ? a->n_rot : 1);
    if (j->qn)
        for (int h = 0; h < a->n_head; h++)
            cpu_rmsnorm(qt + h * hd, qt + h * hd, j->qn, hd, a->norm_eps);
    if (j->kn)
        for (int h = 0; h < a->n_head_kv; h++)
            cpu_rmsnorm(kt + h * hd, kt + h * hd, j->kn, hd, a->norm_eps);
    cpu_rope_table(rope, a->n_rot, a->pos0 + t, a->rope_base, a->rope_freq_scale, j->divs);
    cpu_rope(qt, a->n_head, (int)hd, a->n_rot, rope, (enum model_rope_mode)a->rope_mode);
    cpu_rope(kt, a->n_head_kv, (int)hd, a->n_rot, rope, (enum model_rope_mode)a->rope_mode);
    if (j->kvq) {
        if (a->k_cache.buf) {
            cs->kdst[t] = cpu_trow(&a->k_cache, a->pos0 + t);
            cs->kdst[j->n + t] = cpu_trow(&a->v_cache, a->pos0 + t);
        }
        return;
    }
    uint16_t *kc = (uint16_t *)(void *)cpu_trow(&a->k_cache, a->pos0 + t);
    uint16_t *vc = (uint16_t *)(void *)cpu_trow(&a->v_cache, a->pos0 + t);
    for (int64_t i = 0; i < KV; i++) {
        kc[i] = f32_to_f16(kt[i]);
        vc[i] = f32_to_f16(vt[i]);
    }
}

static hearth_status op_attention(struct cpu_stream *cs, const struct hearth_op_attention *a,
                                  int n)
{
    struct cpu_dev *d = cs->d;
    const int64_t hd = a->head_dim;
    const int64_t KV = (int64_t)a->n_head_kv * hd;
    const int nth = threadpool_n_threads(d->tp);
    hearth_status st;
    /* a ring-only layer (step 6) is checked as a compressed cache; f16/f16 runs attn_ring */
    const bool kvq = a->k_type != KVQ_F16 || a->v_type != KVQ_F16 || !a->k_cache.buf;
    const bool ring = !a->k_cache.buf && a->k_type == KVQ_F16 && a->v_type == KVQ_F16;
    /* the longest span a token reads: a ring-only layer's window, else the cache */
    const size_t n_ctx = ring ? (size_t)a->window : (size_t)a->k_cache.n_rows;
    if (kvq) {
        if ((st = check_kvq_caches(a, n)) != HEARTH_OK)
            return st;
    } else if (a->k_cache.type != HEARTH_DTYPE_F16 || a->v_cache.type != HEARTH_DTYPE_F16 ||
               a->k_cache.row_stride != a->v_cache.row_stride || a->k_cache.row_stride % 2 ||
               a->k_cache.ne0 < KV) {
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "cpu: attention: K/V caches must be F16 rows of >= %lld with equal strides",
                       (long long)KV);
    }
    if (kvq && ((st = grow((void **)&cs->kdst, &cs->kdst_cap, 2 * (size_t)n * sizeof *cs->kdst,
                           "KV row")) != HEARTH_OK ||
                (st = grow((void **)&cs->ipos, &cs->ipos_cap, 2 * (size_t)n * sizeof *cs->ipos,
                           "position")) != HEARTH_OK))
        return st;
    struct attn_job j = {.cs = cs, .a = a, .kv_stride = a->k_cache.row_stride / 2,
                         .scores_per = cpu_attn_scratch(a->n_head / a->n_head_kv, (int64_t)n_ctx)};
    int64_t k_stride = 0, v_stride = 0;
    if ((st = f32_stride(&a->q, &j.q_stride)) != HEARTH_OK ||
        (st = f32_stride(&a->k, &k_stride)) != HEARTH_OK ||
        (st = f32_stride(&a->v, &v_stride)) != HEARTH_OK ||
        (st = f32_stride(&a->out, &j.o_stride)) != HEARTH_OK ||
        (st = grow((void **)&cs->scores, &cs->scores_cap,
                   (size_t)nth * j.scores_per * sizeof(float), "attention")) != HEARTH_OK ||
        (st = grow((void **)&cs->rope, &cs->rope_cap,
                   (size_t)n * (size_t)(a->n_rot > 0 ? a->n_rot : 1) * sizeof(float),
                   "rope")) != HEARTH_OK)
        return st;
    struct prep_job pj = {.cs = cs, .a = a, .n = n, .kvq = kvq,
                          .qn = a->q_norm.buf ? cpu_frow(&a->q_norm, 0) : NULL,
                          .kn = a->k_norm.buf ? cpu_frow(&a->k_norm, 0) : NULL,
                          .divs = a->rope_divs.buf ? cpu_frow(&a->rope_divs, 0) : NULL};
    cpu_rows_for(d->tp, n, (int64_t)a->n_head * hd + 2 * KV, row_prep, &pj);
    if (ring && k_stride != v_stride)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "cpu: attention: k and v row strides differ (%lld, %lld floats)",
                       (long long)k_stride, (long long)v_stride);
    if (ring)
        return attn_ring(cs, a, n, &j, k_stride);
    if (kvq)
        return attn_kvq(cs, a, n);
    /*
     * An item is a group of heads of one token sharing a KV head (cpu_attn_split);
     * short contexts stay on the caller (as forward.c).
     */
    cpu_attn_split_init(&j.split, n, a->n_head, a->n_head_kv, nth);
    int64_t n_items = (int64_t)n * j.split.per_tok;
    int64_t work = n_items * j.split.qb * (a->pos0 + n) * hd;
    threadpool_for(d->tp, n_items, work < 65536 ? n_items : 1, attn_items, &j);
    return HEARTH_OK;
}

static hearth_status op_logits(struct cpu_stream *cs, const struct hearth_op_logits *l, int n)
{
    const struct cpu_matmul_kernels *k;
    const int64_t E = l->x.ne0;
    int64_t ys = 0;
    hearth_status st;
    if ((st = kernels(cs->d, l->out_w.type, &k)) != HEARTH_OK ||
        (st = f32_stride(&l->y, &ys)) != HEARTH_OK)
        return st;
    size_t rb = cpu_act_row_bytes(k, E);
    if (rb == 0)
        return err_set(HEARTH_ERR_UNSUPPORTED, "cpu: logits: rows of %lld do not fit %s",
                       (long long)E, hearth_dtype_name(l->out_w.type));
    if ((st = grow(&cs->act, &cs->act_cap, rb * (size_t)n, "activation")) != HEARTH_OK ||
        (st = grow((void **)&cs->rows, &cs->rows_cap, (size_t)n * (size_t)E * sizeof(float),
                   "row")) != HEARTH_OK)
        return st;
    const float *w = cpu_frow(&l->norm_w, 0);
    for (int t = 0; t < n; t++)
        cpu_rmsnorm(cs->rows + t * E, cpu_frow(&l->x, t), w, E, l->eps);
    struct model_weight ow = cpu_as_weight(&l->out_w);
    cpu_matmul(cs->d->tp, k, &ow, cs->rows, n, cpu_frow(&l->y, 0), ys, cs->act);
    return HEARTH_OK;
}

static hearth_status run_one(struct cpu_stream *cs, const struct hearth_op *op)
{
    const int n = op->n_tok;
    switch (op->kind) {
    case HEARTH_OP_EMBED:
        return cpu_op_embed(cs->d->tp, &op->u.embed, n);
    case HEARTH_OP_RMSNORM:
        cpu_op_rmsnorm(cs->d->tp, &op->u.rmsnorm, n);
        return HEARTH_OK;
    case HEARTH_OP_MATMUL:
        return op_matmul(cs, &op->u.matmul, n);
    case HEARTH_OP_ATTENTION:
        return op_attention(cs, &op->u.attn, n);
    case HEARTH_OP_GLU:
        cpu_op_glu(cs->d->tp, &cs->d->glu, &op->u.glu, n);
        return HEARTH_OK;
    case HEARTH_OP_ADD:
        cpu_op_add(cs->d->tp, &op->u.add, n);
        return HEARTH_OK;
    case HEARTH_OP_LOGITS:
        return op_logits(cs, &op->u.logits, n);
    case HEARTH_OP_COUNT:
        break;
    }
    return err_set(HEARTH_ERR_UNSUPPORTED, "cpu: op kind %d", (int)op->kind);
}

/* ---- stream ------------------------------------------------------------- */

static void cstream_destroy(struct hearth_stream *s)
{
    struct cpu_stream *cs = s->ctx;
    free(cs->act);
    free(cs->scores);
    free(cs->rows);
    free(cs->rope);
    free(cs->kdst);
    free(cs->ipos);
    free(cs->xst);
    cpu_kvq_attn_destroy(cs->kva);
    free(cs);
}

static hearth_status cstream_run(struct hearth_stream *s, const struct hearth_op *ops, int n_ops)
{
    struct cpu_stream *cs = s->ctx;
    for (int i = 0; i < n_ops; i++) {
        hearth_status st = run_one(cs, &ops[i]);
        if (st != HEARTH_OK)
            return err_prefix(st, "cpu: op %d (%s)", i, backend_op_name(ops[i].kind));
    }
    return HEARTH_OK;
}

static hearth_status cstream_sync(struct hearth_stream *s)
{
    (void)s;
    return HEARTH_OK;
}

static const struct hearth_stream_ops cstream_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .destroy = cstream_destroy,
    .graph_run = cstream_run,
    .synchronize = cstream_sync,
    /* set_async/get_async and events: the synchronous defaults are exact here */
};

static hearth_status cdev_stream_create(struct hearth_device *dev, struct hearth_stream **out)
{
    struct cpu_stream *cs = calloc(1, sizeof *cs);
    if (!cs)
        return err_set(HEARTH_ERR_NO_MEMORY, "cpu: out of memory for a stream");
    cs->d = dev->ctx;
    cs->s.ops = &cstream_ops;
    cs->s.ctx = cs;
    cs->s.dev = dev;
    *out = &cs->s;
    return HEARTH_OK;
}

/* ---- device ------------------------------------------------------------- */

static void host_memory(uint64_t *free_b, uint64_t *total_b)
{
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);
    *total_b = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    *free_b = avail > 0 && page > 0 ? (uint64_t)avail * (uint64_t)page : 0;
}

static void cdev_destroy(struct hearth_device *dev)
{
    struct cpu_dev *d = dev->ctx;
    threadpool_destroy(d->tp);
    free(d);
}

static void cdev_props(struct hearth_device *dev, struct hearth_device_props *out)
{
    struct cpu_dev *d = dev->ctx;
    snprintf(out->name, sizeof out->name, "%s", d->name);
    snprintf(out->desc, sizeof out->desc, "host CPU, %ld logical cores, %s kernels, %d threads",
             sysconf(_SC_NPROCESSORS_ONLN), cpu_isa_name(d->isa), threadpool_n_threads(d->tp));
    host_memory(&out->free_bytes, &out->total_bytes);
    out->bw_gbps = d->bw_gbps;
    out->host_memory = true;
}

static void cdev_memory(struct hearth_device *dev, uint64_t *free_b, uint64_t *total_b)
{
    (void)dev;
    host_memory(free_b, total_b);
}

static bool cdev_supports_op(struct hearth_device *dev, enum hearth_op_kind op, hearth_dtype t)
{
    struct cpu_dev *d = dev->ctx;
    const struct cpu_matmul_kernels *k;
    switch (op) {
    case HEARTH_OP_MATMUL:
    case HEARTH_OP_LOGITS:
        return kernels(d, t, &k) == HEARTH_OK;
    case HEARTH_OP_EMBED: {
        const struct quant_traits *qt = quant_get(t);
        return qt && qt->to_float;
    }
    default:
        return t == HEARTH_DTYPE_F32;
    }
}

/* Every type of kv-quant.h, for K and V independently (attn-kvq.h). */
static bool cdev_supports_kv(struct hearth_device *dev, int k_type, int v_type)
{
    (void)dev;
    return (unsigned)k_type < KVQ_TYPE_COUNT && (unsigned)v_type < KVQ_TYPE_COUNT;
}

/* Step 5 runs in attn_kvq for every pair attn_kvq takes (f16/f16 needs no window). */
static bool cdev_supports_kv_window(struct hearth_device *dev, int k_type, int v_type)
{
    return cdev_supports_kv(dev, k_type, v_type);
}

static struct hearth_buffer_type *cdev_buft(struct hearth_device *dev)
{
    return &((struct cpu_dev *)dev->ctx)->buft;
}

static struct hearth_buffer_type *cdev_host_buft(struct hearth_device *dev)
{
    return &((struct cpu_dev *)dev->ctx)->host_buft;
}

static hearth_status cdev_bandwidth(struct hearth_device *dev, double *gbps)
{
    struct cpu_dev *d = dev->ctx;
    struct bw_result r;
    hearth_status st = bw_measure_copy(d->tp, (size_t)64 << 20, 5, &r);
    if (st != HEARTH_OK)
        return st;
    d->bw_gbps = r.gbps_median;
    *gbps = r.gbps_median;
    return HEARTH_OK;
}

static const struct hearth_device_ops cdev_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .backend = "cpu",
    .destroy = cdev_destroy,
    .get_props = cdev_props,
    .get_memory = cdev_memory,
    .supports_op = cdev_supports_op,
    .buffer_type = cdev_buft,
    .host_buffer_type = cdev_host_buft,
    .stream_create = cdev_stream_create,
    .measure_bandwidth = cdev_bandwidth,
    .supports_kv = cdev_supports_kv,
    .supports_kv_window = cdev_supports_kv_window,
};

hearth_status cpu_backend_device_create(const struct cpu_backend_params *p,
                                        struct hearth_device **out)
{
    *out = NULL;
    struct cpu_backend_params def = {.n_threads = 0, .isa = -1, .name = NULL};
    if (!p)
        p = &def;
    if (p->isa >= CPU_ISA_COUNT)
        return err_set(HEARTH_ERR_INVALID_ARG, "cpu: isa %d is no cpu_isa", p->isa);
    struct cpu_dev *d = calloc(1, sizeof *d);
    if (!d)
        return err_set(HEARTH_ERR_NO_MEMORY, "cpu: out of memory for a device");
    hearth_status st = threadpool_create(p->n_threads, &d->tp);
    if (st != HEARTH_OK) {
        free(d);
        return st;
    }
    d->isa = p->isa < 0 ? cpu_isa_best() : (enum cpu_isa)p->isa;
    cpu_attn_kernels_get(d->isa, &d->ak);
    cpu_glu_kernels_get(d->isa, &d->glu);
    snprintf(d->name, sizeof d->name, "%s", p->name ? p->name : "cpu");
    d->dev.ops = &cdev_ops;
    d->dev.ctx = d;
    d->buft.ops = &cbuft_dev_ops;
    d->buft.ctx = d;
    d->buft.dev = &d->dev;
    d->host_buft.ops = &cbuft_host_ops;
    d->host_buft.ctx = d;
    d->host_buft.dev = &d->dev;
    *out = &d->dev;
    return HEARTH_OK;
}

/* ---- registration ------------------------------------------------------- */

static int creg_count(void)
{
    return 1;
}

static hearth_status creg_describe(int index, struct hearth_device_props *out)
{
    if (index != 0)
        return err_set(HEARTH_ERR_NOT_FOUND, "cpu: no device %d", index);
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "cpu");
    snprintf(out->desc, sizeof out->desc, "host CPU, %ld logical cores",
             sysconf(_SC_NPROCESSORS_ONLN));
    host_memory(&out->free_bytes, &out->total_bytes);
    out->host_memory = true;
    return HEARTH_OK;
}

static hearth_status creg_open(int index, struct hearth_device **out)
{
    *out = NULL;
    if (index != 0)
        return err_set(HEARTH_ERR_NOT_FOUND, "cpu: no device %d", index);
    return cpu_backend_device_create(NULL, out);
}

const struct hearth_backend_ops *cpu_backend_ops(void)
{
    static const struct hearth_backend_ops ops = {
        .abi_version = HEARTH_BACKEND_ABI_VERSION,
        .name = "cpu",
        .device_count = creg_count,
        .device_describe = creg_describe,
        .device_open = creg_open,
    };
    return &ops;
}
