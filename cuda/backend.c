/*
 * cuda/backend: the CUDA device behind the backend interface (core/backend.h):
 * device, buffer types (device memory and pinned host), buffers, streams and
 * events, and graph_run switching on the op kind with one function per case,
 * each calling launchers of cuda/ops.h. Plain C11: the CUDA runtime is only
 * reached through ops.h, so no CUDA header appears here.
 *
 * Weights arrive through buffer_set as raw GGUF rows, so their rows are
 * 16-byte aligned only when the row's byte count is (most real shapes: K =
 * 4096 in Q4_0 is 2304 bytes). cuda_matmul sends aligned weights to the fused
 * matvec and the rest to the MMA kernel, which reads any even stride; a
 * backend hook that repacks at upload (cuda_weight_upload) would remove that
 * fallback and needs an interface member (see the report in
 * bench/README-gpu.md).
 *
 * A stream owns scratch (matmul's F16 slabs, attention partials, logits'
 * normed rows, the device-side position) that grows on first use and is then
 * reused; ops assume packed F32 rows (row_stride = ne0 * 4) except where
 * backend.h allows strides and the kernels take them (RMSNORM, MATMUL x/y).
 * Decode lists run as CUDA graphs (graph-cache.h has the key): a list of 1-4
 * token ops seen before is captured once and then launched as one graph, so
 * a decode step costs a launch per block instead of one per kernel. The
 * kernels read positions from device memory (cs->pos, a slot per attention
 * op of the list), which graph_try writes before each launch; the split
 * count of attention comes from the cache size, not the position, so a
 * captured grid stays right as the sequence grows. A graph also points into
 * the stream scratch: when ws or rows moves, the graph is captured again.
 * HEARTH_CUDA_GRAPH=0 at stream creation runs every list op by op.
 *
 * Compressed KV caches (k_type/v_type other than f16, core/kv-quant.h) go to
 * cuda/attention-kvq.cu. The rotated types need the layer's ±1 signs on the
 * device; the device context keeps them uploaded, keyed by (seed, layer,
 * head_dim), so each layer's are computed (kvq_rot_init) and copied once,
 * under a mutex because streams of one device may run on several threads.
 * A ring-only layer (ATTENTION step 6: both caches absent) is checked in
 * attn_kvq and passed on with NULL cache pointers, which attention-kvq.cu
 * takes as "store nothing, stage nothing". It goes there whatever its types:
 * an f16/f16 one too, since attention.cu's kernels store into and read the
 * caches; both types f16 means no centring, no rotation, and ring rows that
 * are k and v rounded to f16.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "err.h"
#include "kv-quant.h"
#include "graph-cache.h"
#include "ops.h"

/* One layer's rotation signs on the device (F32 [d], each ±1). */
struct cu_rot {
    uint64_t seed;
    uint32_t layer;
    int d;
    float *d_sign;
};

struct cu_dev {
    struct hearth_device dev;
    struct hearth_buffer_type buft;      /* device memory: DEVICE_LOCAL */
    struct hearth_buffer_type host_buft; /* pinned host: HOST | PINNED */
    int index, n_sm;
    char name[32];
    double bw_gbps;
    pthread_mutex_t rot_lock;            /* guards rots / n_rot / rot_cap */
    struct cu_rot *rots;                 /* [n_rot] uploaded rotations */
    int n_rot, rot_cap;
};

struct cu_buf {
    struct hearth_buffer b;
    void *ptr;
    bool host;
};

struct cu_stream {
    struct hearth_stream s;
    struct cu_dev *d;
    void *stream, *blas;
    void *ws;          /* matmul / attention scratch, ws_cap bytes */
    size_t ws_cap;
    float *rows;       /* logits' normed rows */
    size_t rows_cap;
    int32_t *pos;      /* device ints [CUDA_GRAPH_MAX_POS]: each attention op's first position */
    int32_t *cur_pos;  /* the slot of the attention op being run */
    struct cuda_graph_cache *gc; /* decode lists as CUDA graphs; NULL: HEARTH_CUDA_GRAPH=0 */
    bool capturing;    /* run_list is being recorded: positions come from cuda_i32_set_n */
};

/* ---- buffers ------------------------------------------------------------ */

static void cbuf_free(struct hearth_buffer *b)
{
    struct cu_buf *cb = b->ctx;
    if (cb->host)
        cuda_host_free(cb->ptr);
    else
        cuda_free(cb->ptr);
    free(cb);
}

static void *cbuf_base(struct hearth_buffer *b)
{
    return ((struct cu_buf *)b->ctx)->ptr;
}

static hearth_status cbuf_set(struct hearth_buffer *b, size_t off, const void *src, size_t n)
{
    struct cu_buf *cb = b->ctx;
    if (cb->host) {
        memcpy((uint8_t *)cb->ptr + off, src, n);
        return HEARTH_OK;
    }
    return cuda_upload((uint8_t *)cb->ptr + off, src, n);
}

static hearth_status cbuf_get(struct hearth_buffer *b, size_t off, void *dst, size_t n)
{
    struct cu_buf *cb = b->ctx;
    if (cb->host) {
        memcpy(dst, (uint8_t *)cb->ptr + off, n);
        return HEARTH_OK;
    }
    return cuda_download(dst, (uint8_t *)cb->ptr + off, n);
}

static hearth_status cbuf_clear(struct hearth_buffer *b, uint8_t value)
{
    struct cu_buf *cb = b->ctx;
    if (cb->host) {
        memset(cb->ptr, value, b->size);
        return HEARTH_OK;
    }
    return cuda_memset(cb->ptr, value, b->size);
}

static const struct hearth_buffer_ops cbuf_ops;

static hearth_status cbuf_copy_from(struct hearth_buffer *dst, size_t doff,
                                    struct hearth_buffer *src, size_t soff, size_t n)
{
    /* same backend only (one device per process today; peer copies later) */
    if (src->ops != &cbuf_ops || src->buft->dev != dst->buft->dev)
        return HEARTH_ERR_UNSUPPORTED;
    struct cu_buf *s = src->ctx, *d = dst->ctx;
    if (s->host || d->host)
        return HEARTH_ERR_UNSUPPORTED;
    hearth_status st = cuda_copy((uint8_t *)d->ptr + doff, (uint8_t *)s->ptr + soff, n, NULL);
    return st == HEARTH_OK ? cuda_synchronize() : st;
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
    struct cu_dev *d = bt->dev->ctx;
    bool host = bt == &d->host_buft;
    struct cu_buf *cb = calloc(1, sizeof *cb);
    hearth_status st;
    *out = NULL;
    if (!cb)
        return err_set(HEARTH_ERR_NO_MEMORY, "cuda: buffer record");
    if ((st = cuda_set_device(d->index)) != HEARTH_OK)
        goto fail;
    st = host ? cuda_host_alloc(&cb->ptr, size) : cuda_alloc(&cb->ptr, size);
    if (st != HEARTH_OK)
        goto fail;
    cb->host = host;
    cb->b = (struct hearth_buffer){&cbuf_ops, cb, bt, size};
    *out = &cb->b;
    return HEARTH_OK;
fail:
    free(cb);
    return err_prefix(st, "%s: %zu bytes", d->name, size);
}

static size_t cbuft_alignment(struct hearth_buffer_type *bt)
{
    (void)bt;
    return 256;
}

static uint32_t cbuft_flags(struct hearth_buffer_type *bt)
{
    struct cu_dev *d = bt->dev->ctx;
    return bt == &d->host_buft ? (HEARTH_BUFT_HOST | HEARTH_BUFT_PINNED)
                               : HEARTH_BUFT_DEVICE_LOCAL;
}

static const struct hearth_buffer_type_ops cbuft_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .name = "cuda",
    .alloc = cbuft_alloc,
    .alignment = cbuft_alignment,
    .flags = cbuft_flags,
};

static const struct hearth_buffer_type_ops cbuft_host_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .name = "cuda_host",
    .alloc = cbuft_alloc,
    .alignment = cbuft_alignment,
    .flags = cbuft_flags,
};

/* ---- ops ---------------------------------------------------------------- */

static void *tptr(const struct hearth_tensor *t)
{
    return t->buf ? (uint8_t *)((struct cu_buf *)t->buf->ctx)->ptr + t->offset : NULL;
}

static bool packed_f32(const struct hearth_tensor *t)
{
    return t->row_stride == (size_t)t->ne0 * 4u || t->n_rows <= 1;
}

/* Grows the stream's device scratch *p to at least need bytes. */
static hearth_status grow(void **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return HEARTH_OK;
    hearth_status st = cuda_synchronize(); /* the old scratch may still be in use */
    if (st != HEARTH_OK)
        return st;
    cuda_free(*p);
    *p = NULL;
    *cap = 0;
    if ((st = cuda_alloc(p, need)) != HEARTH_OK)
        return err_prefix(st, "cuda: stream scratch");
    *cap = need;
    return HEARTH_OK;
}

static hearth_status weight_layout(const struct hearth_tensor *t, struct cuda_wlayout *l)
{
    if (!cuda_wlayout_init(l, t->type, t->n_rows, t->ne0) || t->row_stride < l->row_bytes)
        return err_set(HEARTH_ERR_UNSUPPORTED, "cuda: weight of %s [%lld][%lld] (stride %zu)",
                       hearth_dtype_name(t->type), (long long)t->n_rows, (long long)t->ne0,
                       t->row_stride);
    l->row_stride = t->row_stride; /* the tensor's own rows, as uploaded */
    l->bytes = (size_t)t->n_rows * t->row_stride;
    return HEARTH_OK;
}

static hearth_status op_matmul(struct cu_stream *cs, const struct hearth_op_matmul *m, int n)
{
    struct cuda_wlayout l[3];
    struct cuda_mm_out o[3];
    hearth_status st;
    for (int i = 0; i < m->n_w; i++) {
        if ((st = weight_layout(&m->w[i], &l[i])) != HEARTH_OK)
            return st;
        o[i] = (struct cuda_mm_out){&l[i], tptr(&m->w[i]), tptr(&m->b[i]), tptr(&m->y[i]),
                                    (int64_t)(m->y[i].row_stride / 4)};
    }
    if (n >= CUDA_MATMUL_BLAS_MIN_TOK) {
        size_t need = cuda_matmul_blas_ws_min(m->x.ne0, n) + ((size_t)32 << 20);
        if ((st = grow(&cs->ws, &cs->ws_cap, need)) != HEARTH_OK)
            return st;
    }
    return cuda_matmul(cs->blas, m->n_w, o, tptr(&m->x), (int64_t)(m->x.row_stride / 4), n,
                       cs->ws, cs->ws_cap, cs->stream);
}

/* ATTENTION steps 1-2: position, q/k norms and RoPE in place (backend.h's contract). */
static hearth_status attn_prepare(struct cu_stream *cs, const struct hearth_op_attention *a,
                                  int n)
{
    const int H = a->n_head, Hk = a->n_head_kv, D = a->head_dim;
    float *q = tptr(&a->q), *k = tptr(&a->k);
    void *s = cs->stream;
    hearth_status st;
    /* under capture the slot is written before each launch instead (graph_try) */
    if (!cs->capturing && (st = cuda_i32_set(cs->cur_pos, (int32_t)a->pos0, s)) != HEARTH_OK)
        return st;
    if (a->q_norm.buf &&
        (st = cuda_rmsnorm(q, D, q, D, tptr(&a->q_norm), (int64_t)n * H, D, a->norm_eps, s)))
        return st;
    if (a->k_norm.buf &&
        (st = cuda_rmsnorm(k, D, k, D, tptr(&a->k_norm), (int64_t)n * Hk, D, a->norm_eps, s)))
        return st;
    if (a->n_rot > 0) {
        const float *divs = tptr(&a->rope_divs);
        if ((st = cuda_rope(q, (int64_t)H * D, n, H, D, a->n_rot, cs->cur_pos, a->rope_base,
                            a->rope_freq_scale, divs, (int)a->rope_mode, s)) != HEARTH_OK ||
            (st = cuda_rope(k, (int64_t)Hk * D, n, Hk, D, a->n_rot, cs->cur_pos, a->rope_base,
                            a->rope_freq_scale, divs, (int)a->rope_mode, s)) != HEARTH_OK)
            return st;
    }
    return HEARTH_OK;
}

/*
 * The device copy of layer's rotation signs for head_dim d and seed: found in
 * the device's table, or computed with kvq_rot_init and uploaded once.
 */
static hearth_status rot_signs(struct cu_dev *d, uint64_t seed, uint32_t layer, int hd,
                               const float **out)
{
    hearth_status st = HEARTH_OK;
    pthread_mutex_lock(&d->rot_lock);
    for (int i = 0; i < d->n_rot; i++) {
        if (d->rots[i].seed == seed && d->rots[i].layer == layer && d->rots[i].d == hd) {
            *out = d->rots[i].d_sign;
            goto done;
        }
    }
    struct kvq_rot r;
    if ((st = kvq_rot_init(&r, hd, seed, layer)) != HEARTH_OK)
        goto done;
    if (d->n_rot == d->rot_cap) {
        int cap = d->rot_cap ? 2 * d->rot_cap : 64;
        struct cu_rot *nr = realloc(d->rots, (size_t)cap * sizeof *nr);
        if (!nr) {
            st = err_set(HEARTH_ERR_NO_MEMORY, "cuda: rotation table of %d entries", cap);
            goto done;
        }
        d->rots = nr;
        d->rot_cap = cap;
    }
    float *p = NULL;
    if ((st = cuda_alloc((void **)&p, (size_t)hd * sizeof(float))) != HEARTH_OK)
        goto done;
    if ((st = cuda_upload(p, r.sign, (size_t)hd * sizeof(float))) != HEARTH_OK) {
        cuda_free(p);
        goto done;
    }
    d->rots[d->n_rot++] = (struct cu_rot){seed, layer, hd, p};
    *out = p;
done:
    pthread_mutex_unlock(&d->rot_lock);
    return st;
}

/*
 * The exact window of ATTENTION step 5 (kv_window > 0): F16 rings of >= Hk*D
 * halves a slot (one even stride for K and V) and I32 tags (one row of >= W or
 * W rows of one); attn_kvq places the batch's exact rows (d_xs) in the scratch.
 */
static hearth_status kvq_window_args(const struct hearth_op_attention *a,
                                     struct cuda_kvq_args *ka)
{
    const struct hearth_tensor *kr = &a->k_ring, *vr = &a->v_ring, *tp = &a->ring_pos;
    hearth_status st = backend_check_kv_ring(a, "cuda");
    if (st != HEARTH_OK)
        return st;
    /* the kernels address both rings with one stride, in whole halves and int32 tags */
    if (kr->offset % 2 || vr->offset % 2 || vr->row_stride != kr->row_stride || tp->offset % 4)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "cuda: attention: kv_window %u: the K and V rings need even offsets and "
                       "one row stride (got %zu and %zu), ring_pos a 4-byte offset",
                       a->kv_window, kr->row_stride, vr->row_stride);
    ka->kv_window = a->kv_window;
    ka->d_k_ring = (uint16_t *)tptr(kr);
    ka->d_v_ring = (uint16_t *)tptr(vr);
    ka->ring_stride = (int64_t)(kr->row_stride / 2);
    ka->d_ring_pos = (int32_t *)tptr(tp);
    return HEARTH_OK;
}

/* A compressed cache: F16 tensors for an f16 side, I8 byte rows for the others. */
static hearth_status attn_kvq(struct cu_stream *cs, const struct hearth_op_attention *a, int n)
{
    const int Hk = a->n_head_kv, D = a->head_dim;
    const int kt = a->k_type, vt = a->v_type;
    hearth_status st;
    if (!cuda_kvq_supported(kt, vt, D))
        return err_set(HEARTH_ERR_UNSUPPORTED,
                       "cuda: attention over a K %s / V %s cache with head_dim %d (expected "
                       "kv types 0..%d, head_dim a multiple of 32 up to 256)",
                       kvq_type_name((enum kvq_type)kt), kvq_type_name((enum kvq_type)vt), D,
                       KVQ_TYPE_COUNT - 1);
    /* step 6 (ring-only layer): no caches, only where the exact window covers the sliding one */
    const bool ring_only = !a->k_cache.buf;
    if (ring_only && (a->v_cache.buf || a->window == 0 || a->kv_window < a->window))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "cuda: attention: k_cache absent (ring-only layer, backend.h step 6) "
                       "needs v_cache absent too (%s), window > 0 and kv_window >= window (got "
                       "window %u, kv_window %u)", a->v_cache.buf ? "present" : "absent",
                       a->window, a->kv_window);
    const struct hearth_tensor *c[2] = {&a->k_cache, &a->v_cache};
    const int ty[2] = {kt, vt};
    for (int i = 0; i < 2 && !ring_only; i++) {
        size_t need = (size_t)Hk * kvq_head_bytes((enum kvq_type)ty[i], D);
        hearth_dtype want = ty[i] == KVQ_F16 ? HEARTH_DTYPE_F16 : HEARTH_DTYPE_I8;
        size_t have = c[i]->type == HEARTH_DTYPE_F16 ? (size_t)c[i]->ne0 * 2u : (size_t)c[i]->ne0;
        if (c[i]->type != want || have < need || c[i]->row_stride < need ||
            c[i]->row_stride % 2 || c[i]->offset % 2)
            return err_set(HEARTH_ERR_UNSUPPORTED,
                           "cuda: %s cache of %s: expected a %s tensor with rows of >= %zu "
                           "bytes at an even offset and stride, got %s ne0 %lld stride %zu "
                           "offset %zu", i ? "v" : "k", kvq_type_name((enum kvq_type)ty[i]),
                           hearth_dtype_name(want), need, hearth_dtype_name(c[i]->type),
                           (long long)c[i]->ne0, c[i]->row_stride, c[i]->offset);
    }
    const float *sign = NULL;
    if ((kvq_is_rotated((enum kvq_type)kt) || kvq_is_rotated((enum kvq_type)vt)) &&
        (st = rot_signs(cs->d, a->kv_seed, a->layer, D, &sign)) != HEARTH_OK)
        return st;
    float *aux = NULL;
    int64_t aux_stride = 0;
    if (kt != KVQ_F16) {
        const struct hearth_tensor *x = &a->k_aux;
        if (!x->buf || x->type != HEARTH_DTYPE_F32 || x->ne0 < (int64_t)Hk * D || x->n_rows < 2 ||
            x->row_stride % 4 || x->offset % 4)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "cuda: attention: a %s K cache needs k_aux, F32 [2][%d] with whole "
                           "float stride and offset (backend.h)", kvq_type_name((enum kvq_type)kt),
                           Hk * D);
        aux = tptr(x);
        aux_stride = (int64_t)(x->row_stride / 4);
    }
    if ((st = attn_prepare(cs, a, n)) != HEARTH_OK)
        return st;
    struct cuda_kvq_args ka = {
        .d_q = tptr(&a->q), .d_k = tptr(&a->k), .d_v = tptr(&a->v),
        .d_k_cache = tptr(&a->k_cache), .d_v_cache = tptr(&a->v_cache),
        .k_row_stride = a->k_cache.row_stride, .v_row_stride = a->v_cache.row_stride,
        .d_out = tptr(&a->out), .d_pos = cs->cur_pos, .d_sign = sign, .k_type = kt, .v_type = vt,
        .n_tok = n, .n_head = a->n_head, .n_head_kv = Hk, .head_dim = D, .scale = a->scale,
        .window = a->window, .d_k_aux = aux, .aux_stride = aux_stride};
    if (a->kv_window > 0 && (st = kvq_window_args(a, &ka)) != HEARTH_OK)
        return st;
    /*
     * Splits from the rows a query can reach (cache rows, at most the window),
     * not the position, so the decode grid stays fixed; one scratch holds the
     * exact rows and then the partials (growing twice would free the first).
     */
    int64_t reach = ring_only ? (int64_t)a->window : a->k_cache.n_rows;
    if (a->window > 0 && (int64_t)a->window < reach)
        reach = (int64_t)a->window;
    ka.n_split = cuda_attn_pick_split(n, a->n_head, reach, cs->d->n_sm);
    const size_t xs_bytes = cuda_kvq_window_bytes(&ka); /* a multiple of 128 bytes */
    if ((st = grow(&cs->ws, &cs->ws_cap, xs_bytes + cuda_kvq_part_bytes(&ka))) != HEARTH_OK)
        return st;
    ka.d_xs = a->kv_window > 0 ? cs->ws : NULL;
    ka.d_part = ka.n_split > 1 ? (float *)((char *)cs->ws + xs_bytes) : NULL;
    if ((st = cuda_kvq_store(&ka, cs->stream)) != HEARTH_OK)
        return st;
    return cuda_kvq_attention(&ka, cs->stream);
}

static hearth_status op_attention(struct cu_stream *cs, const struct hearth_op_attention *a,
                                  int n)
{
    const int H = a->n_head, Hk = a->n_head_kv, D = a->head_dim;
    hearth_status st;
    if (!packed_f32(&a->q) || !packed_f32(&a->k) || !packed_f32(&a->v) || !packed_f32(&a->out))
        return err_set(HEARTH_ERR_UNSUPPORTED, "cuda: attention needs packed q/k/v/out rows");
    /* a ring-only layer (step 6, no k_cache) of any pair, f16/f16 included, is attn_kvq's */
    if (a->k_type != KVQ_F16 || a->v_type != KVQ_F16 || !a->k_cache.buf)
        return attn_kvq(cs, a, n);
    if (!a->v_cache.buf)
        return err_set(HEARTH_ERR_INVALID_ARG, "cuda: attention: k_cache present but v_cache "
                       "absent (a ring-only layer, backend.h step 6, has neither)");
    if (a->k_cache.row_stride != a->v_cache.row_stride || a->k_cache.row_stride % 2)
        return err_set(HEARTH_ERR_UNSUPPORTED, "cuda: attention needs equal K/V cache strides");
    if ((st = attn_prepare(cs, a, n)) != HEARTH_OK)
        return st;
    void *s = cs->stream;
    struct cuda_attn_args aa = {
        .d_q = tptr(&a->q), .d_k = tptr(&a->k), .d_v = tptr(&a->v),
        .d_k_cache = tptr(&a->k_cache), .d_v_cache = tptr(&a->v_cache), .d_out = tptr(&a->out),
        .d_pos = cs->cur_pos, .n_tok = n, .n_head = H, .n_head_kv = Hk, .head_dim = D,
        .n_ctx = a->k_cache.n_rows, .kv_stride = (int64_t)(a->k_cache.row_stride / 2),
        .scale = a->scale, .window = a->window};
    /* from the cache size, not the position: a captured decode step keeps its grid */
    aa.n_split = cuda_attn_pick_split(n, H, a->k_cache.n_rows, cs->d->n_sm);
    if ((st = cuda_kv_store(&aa, s)) != HEARTH_OK ||
        (st = grow(&cs->ws, &cs->ws_cap, cuda_attn_ws_bytes(&aa))) != HEARTH_OK)
        return st;
    return cuda_attention(&aa, cs->ws, s);
}

static hearth_status op_logits(struct cu_stream *cs, const struct hearth_op_logits *lg, int n)
{
    const int64_t E = lg->x.ne0;
    hearth_status st;
    if ((st = grow((void **)&cs->rows, &cs->rows_cap, (size_t)n * (size_t)E * 4u)) != HEARTH_OK ||
        (st = cuda_rmsnorm(cs->rows, E, tptr(&lg->x), (int64_t)(lg->x.row_stride / 4),
                           tptr(&lg->norm_w), n, E, lg->eps, cs->stream)) != HEARTH_OK)
        return st;
    /* x: the normed rows, packed, in stream scratch */
    struct cuda_wlayout l;
    if ((st = weight_layout(&lg->out_w, &l)) != HEARTH_OK)
        return st;
    struct cuda_mm_out o = {&l, tptr(&lg->out_w), NULL, tptr(&lg->y),
                            (int64_t)(lg->y.row_stride / 4)};
    if (n >= CUDA_MATMUL_BLAS_MIN_TOK &&
        (st = grow(&cs->ws, &cs->ws_cap, cuda_matmul_blas_ws_min(E, n) + ((size_t)32 << 20))))
        return st;
    return cuda_matmul(cs->blas, 1, &o, cs->rows, E, n, cs->ws, cs->ws_cap, cs->stream);
}

static hearth_status run_one(struct cu_stream *cs, const struct hearth_op *op)
{
    const int n = op->n_tok;
    void *s = cs->stream;
    switch (op->kind) {
    case HEARTH_OP_EMBED: {
        const struct hearth_op_embed *e = &op->u.embed;
        struct cuda_wlayout l;
        hearth_status st = weight_layout(&e->table, &l);
        if (st != HEARTH_OK)
            return st;
        /* ids: one row of n, or n rows of one that must then be back to back */
        if (e->ids.type != HEARTH_DTYPE_I32 || !packed_f32(&e->out) ||
            (e->ids.n_rows > 1 && e->ids.row_stride != 4))
            return err_set(HEARTH_ERR_UNSUPPORTED, "cuda: embed: packed I32 ids, packed out");
        return cuda_embed(&l, tptr(&e->table), tptr(&e->ids), n, e->scale, tptr(&e->out), s);
    }
    case HEARTH_OP_RMSNORM: {
        const struct hearth_op_rmsnorm *r = &op->u.rmsnorm;
        return cuda_rmsnorm(tptr(&r->y), (int64_t)(r->y.row_stride / 4), tptr(&r->x),
                            (int64_t)(r->x.row_stride / 4), tptr(&r->w), n, r->x.ne0, r->eps, s);
    }
    case HEARTH_OP_MATMUL:
        return op_matmul(cs, &op->u.matmul, n);
    case HEARTH_OP_ATTENTION:
        return op_attention(cs, &op->u.attn, n);
    case HEARTH_OP_GLU: {
        const struct hearth_op_glu *g = &op->u.glu;
        if (!packed_f32(&g->g) || !packed_f32(&g->u))
            return err_set(HEARTH_ERR_UNSUPPORTED, "cuda: glu needs packed rows");
        return cuda_glu(tptr(&g->g), tptr(&g->u), (int64_t)n * g->g.ne0,
                        g->act == HEARTH_GLU_GELU_TANH ? 1 : 0, s);
    }
    case HEARTH_OP_ADD: {
        const struct hearth_op_add *a = &op->u.add;
        if (!packed_f32(&a->x) || !packed_f32(&a->y))
            return err_set(HEARTH_ERR_UNSUPPORTED, "cuda: add needs packed rows");
        return cuda_add(tptr(&a->x), tptr(&a->y), tptr(&a->w), n, a->x.ne0, a->eps, s);
    }
    case HEARTH_OP_LOGITS:
        return op_logits(cs, &op->u.logits, n);
    case HEARTH_OP_COUNT:
        break;
    }
    return err_set(HEARTH_ERR_UNSUPPORTED, "cuda: op kind %d", (int)op->kind);
}

/* ---- stream ------------------------------------------------------------- */

static void cstream_destroy(struct hearth_stream *s)
{
    struct cu_stream *cs = s->ctx;
    cuda_stream_synchronize(cs->stream);
    cuda_free(cs->ws);
    cuda_free(cs->rows);
    cuda_free(cs->pos);
    if (cs->gc) {
        cuda_graph_cache_clear(cs->gc);
        free(cs->gc);
    }
    cuda_blas_destroy(cs->blas);
    cuda_stream_destroy(cs->stream);
    free(cs);
}

/* The ops in order; each attention op takes the next position slot. */
static hearth_status run_list(struct cu_stream *cs, const struct hearth_op *ops, int n_ops)
{
    hearth_status st = HEARTH_OK;
    int slot = 0;
    for (int i = 0; i < n_ops && st == HEARTH_OK; i++) {
        if (ops[i].kind == HEARTH_OP_ATTENTION)
            cs->cur_pos = cs->pos + slot++ % CUDA_GRAPH_MAX_POS;
        if ((st = run_one(cs, &ops[i])) != HEARTH_OK)
            st = err_prefix(st, "cuda: op %d (%s)", i, backend_op_name(ops[i].kind));
    }
    return st;
}

/*
 * Records the list as a graph into e. A failure (a call that capture does not
 * allow, such as a scratch grow's device-wide synchronize) leaves e->exec NULL
 * and is counted; nothing of the list has run then, so the caller runs it.
 */
static void graph_capture(struct cu_stream *cs, const struct hearth_op *ops, int n_ops,
                          struct cuda_graph_entry *e)
{
    void *exec = NULL;
    if (cuda_graph_begin(cs->stream) == HEARTH_OK) {
        cs->capturing = true;
        hearth_status rs = run_list(cs, ops, n_ops);
        cs->capturing = false;
        if (cuda_graph_end(cs->stream, &exec) != HEARTH_OK || rs != HEARTH_OK) {
            cuda_graph_destroy(exec);
            exec = NULL;
        }
    }
    if (!exec) {
        e->fails++;
        cs->gc->stats.failures++;
        return;
    }
    e->exec = exec;
    e->ws = cs->ws;
    e->rows = cs->rows;
    cs->gc->stats.captures++;
}

/*
 * A graphable list (its key just built into cs->gc): the first sighting runs
 * op by op, which also grows every scratch the list needs; the second is
 * captured; later ones write the positions and launch the graph. *done
 * false: the caller runs the list op by op.
 */
static hearth_status graph_try(struct cu_stream *cs, const struct hearth_op *ops, int n_ops,
                               bool *done)
{
    struct cuda_graph_cache *gc = cs->gc;
    struct cuda_graph_entry *e = cuda_graph_find(gc);
    *done = false;
    if (!e) {
        cuda_graph_add(gc); /* out of host memory: the list just stays eager */
        gc->stats.eager++;
        return HEARTH_OK;
    }
    if (e->exec && (e->ws != cs->ws || e->rows != cs->rows)) { /* scratch moved */
        cuda_graph_destroy(e->exec);
        e->exec = NULL;
    }
    if (!e->exec && e->fails < CUDA_GRAPH_MAX_FAILS)
        graph_capture(cs, ops, n_ops, e);
    if (!e->exec) {
        gc->stats.eager++;
        return HEARTH_OK;
    }
    hearth_status st;
    if (gc->n_pos > 0 &&
        (st = cuda_i32_set_n(cs->pos, gc->pos, gc->n_pos, cs->stream)) != HEARTH_OK)
        return st;
    if ((st = cuda_graph_launch(e->exec, cs->stream)) != HEARTH_OK)
        return st;
    gc->stats.launches++;
    *done = true;
    return HEARTH_OK;
}

static hearth_status cstream_run(struct hearth_stream *s, const struct hearth_op *ops, int n_ops)
{
    struct cu_stream *cs = s->ctx;
    hearth_status st = cuda_set_device(cs->d->index);
    if (st != HEARTH_OK)
        return st;
    if (cs->gc && cuda_graph_key(cs->gc, ops, n_ops)) {
        bool done = false;
        if ((st = graph_try(cs, ops, n_ops, &done)) != HEARTH_OK || done)
            return st;
    }
    return run_list(cs, ops, n_ops);
}

void cuda_backend_graph_stats(const struct hearth_stream *s, struct cuda_graph_stats *out)
{
    const struct cu_stream *cs = s->ctx;
    memset(out, 0, sizeof *out);
    if (cs->gc)
        *out = cs->gc->stats;
}

static hearth_status cstream_set_async(struct hearth_stream *s, struct hearth_buffer *buf,
                                       size_t off, const void *src, size_t n)
{
    struct cu_stream *cs = s->ctx;
    struct cu_buf *cb = buf->ctx;
    if (cb->host) {
        memcpy((uint8_t *)cb->ptr + off, src, n);
        return HEARTH_OK;
    }
    return cuda_upload_async((uint8_t *)cb->ptr + off, src, n, cs->stream);
}

static hearth_status cstream_get_async(struct hearth_stream *s, struct hearth_buffer *buf,
                                       size_t off, void *dst, size_t n)
{
    struct cu_stream *cs = s->ctx;
    struct cu_buf *cb = buf->ctx;
    if (cb->host) {
        memcpy(dst, (uint8_t *)cb->ptr + off, n);
        return HEARTH_OK;
    }
    return cuda_download_async(dst, (uint8_t *)cb->ptr + off, n, cs->stream);
}

static hearth_status cstream_sync(struct hearth_stream *s)
{
    return cuda_stream_synchronize(((struct cu_stream *)s->ctx)->stream);
}

static hearth_status cev_create(struct hearth_stream *s, void **ev)
{
    (void)s;
    return cuda_event_create(ev);
}

static void cev_destroy(struct hearth_stream *s, void *ev)
{
    (void)s;
    cuda_event_destroy(ev);
}

static hearth_status cev_record(struct hearth_stream *s, void *ev)
{
    return cuda_event_record(ev, ((struct cu_stream *)s->ctx)->stream);
}

static hearth_status cev_sync(struct hearth_stream *s, void *ev)
{
    (void)s;
    return cuda_event_synchronize(ev);
}

static const struct hearth_stream_ops cstream_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .destroy = cstream_destroy,
    .set_async = cstream_set_async,
    .get_async = cstream_get_async,
    .graph_run = cstream_run,
    .synchronize = cstream_sync,
    .event_create = cev_create,
    .event_destroy = cev_destroy,
    .event_record = cev_record,
    .event_synchronize = cev_sync,
};

static hearth_status cdev_stream_create(struct hearth_device *dev, struct hearth_stream **out)
{
    struct cu_dev *d = dev->ctx;
    struct cu_stream *cs = calloc(1, sizeof *cs);
    hearth_status st;
    *out = NULL;
    if (!cs)
        return err_set(HEARTH_ERR_NO_MEMORY, "cuda: stream record");
    cs->d = d;
    if ((st = cuda_set_device(d->index)) != HEARTH_OK ||
        (st = cuda_stream_create(&cs->stream)) != HEARTH_OK)
        goto fail_rec;
    /* cuBLAS is optional: without it (not installed, or failing) the dispatcher
     * sends prefill to the tensor-core kernel instead, so a NULL handle is fine. */
    if (cuda_blas_create(&cs->blas) != HEARTH_OK)
        cs->blas = NULL;
    if ((st = cuda_alloc((void **)&cs->pos, CUDA_GRAPH_MAX_POS * sizeof(int32_t))) != HEARTH_OK)
        goto fail_blas;
    cs->cur_pos = cs->pos;
    /* without the cache record (out of host memory) lists simply run op by op */
    const char *g = getenv("HEARTH_CUDA_GRAPH");
    if (!(g && strcmp(g, "0") == 0))
        cs->gc = calloc(1, sizeof *cs->gc);
    cs->s = (struct hearth_stream){&cstream_ops, cs, dev};
    *out = &cs->s;
    return HEARTH_OK;
fail_blas:
    cuda_blas_destroy(cs->blas);
    cuda_stream_destroy(cs->stream);
fail_rec:
    free(cs);
    return st;
}

/* ---- device ------------------------------------------------------------- */

static hearth_status describe(int index, struct hearth_device_props *out)
{
    hearth_status st;
    size_t free_b = 0, total_b = 0;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "cuda%d", index);
    if ((st = cuda_set_device(index)) != HEARTH_OK ||
        (st = cuda_device_info(NULL, NULL, out->desc, sizeof out->desc)) != HEARTH_OK ||
        (st = cuda_mem_info(&free_b, &total_b)) != HEARTH_OK)
        return st;
    out->free_bytes = free_b;
    out->total_bytes = total_b;
    return HEARTH_OK;
}

static void cdev_destroy(struct hearth_device *dev)
{
    struct cu_dev *d = dev->ctx;
    for (int i = 0; i < d->n_rot; i++)
        cuda_free(d->rots[i].d_sign);
    free(d->rots);
    pthread_mutex_destroy(&d->rot_lock);
    free(d);
}

static void cdev_props(struct hearth_device *dev, struct hearth_device_props *out)
{
    struct cu_dev *d = dev->ctx;
    if (describe(d->index, out) != HEARTH_OK)
        snprintf(out->name, sizeof out->name, "%s", d->name);
    out->bw_gbps = d->bw_gbps;
}

static bool cdev_supports_op(struct hearth_device *dev, enum hearth_op_kind op, hearth_dtype t)
{
    (void)dev;
    if (op == HEARTH_OP_MATMUL || op == HEARTH_OP_EMBED || op == HEARTH_OP_LOGITS)
        return cuda_type_geom(t, NULL, NULL);
    return t == HEARTH_DTYPE_F32;
}

/* The exact window (step 5): every compressed pair (attention-kvq.cu). */
static bool cdev_supports_kv_window(struct hearth_device *dev, int k_type, int v_type)
{
    (void)dev;
    return cuda_kvq_supported(k_type, v_type, 128) && (k_type != KVQ_F16 || v_type != KVQ_F16);
}

/* Every pair of kvq types (attention-kvq.cu); head_dim is checked per op. */
static bool cdev_supports_kv(struct hearth_device *dev, int k_type, int v_type)
{
    (void)dev;
    return cuda_kvq_supported(k_type, v_type, 128);
}

static struct hearth_buffer_type *cdev_buft(struct hearth_device *dev)
{
    return &((struct cu_dev *)dev->ctx)->buft;
}

static struct hearth_buffer_type *cdev_host_buft(struct hearth_device *dev)
{
    return &((struct cu_dev *)dev->ctx)->host_buft;
}

/* D2D copy of 256 MiB, bytes read + written, best of 5. */
static hearth_status cdev_bandwidth(struct hearth_device *dev, double *gbps)
{
    struct cu_dev *d = dev->ctx;
    const size_t n = (size_t)256 << 20;
    void *a = NULL, *b = NULL, *e0 = NULL, *e1 = NULL;
    float best = 0.0f;
    hearth_status st;
    if ((st = cuda_set_device(d->index)) != HEARTH_OK || (st = cuda_alloc(&a, n)) != HEARTH_OK ||
        (st = cuda_alloc(&b, n)) != HEARTH_OK || (st = cuda_event_create(&e0)) != HEARTH_OK ||
        (st = cuda_event_create(&e1)) != HEARTH_OK || (st = cuda_memset(a, 1, n)) != HEARTH_OK)
        goto done;
    for (int r = 0; r < 6; r++) {
        float ms = 0.0f;
        if ((st = cuda_event_record(e0, NULL)) != HEARTH_OK ||
            (st = cuda_copy(b, a, n, NULL)) != HEARTH_OK ||
            (st = cuda_event_record(e1, NULL)) != HEARTH_OK ||
            (st = cuda_event_elapsed_ms(e0, e1, &ms)) != HEARTH_OK)
            goto done;
        if (r > 0 && (best == 0.0f || ms < best))
            best = ms;
    }
    d->bw_gbps = best > 0.0f ? 2.0 * (double)n / ((double)best * 1e-3) / 1e9 : 0.0;
    *gbps = d->bw_gbps;
done:
    cuda_event_destroy(e0);
    cuda_event_destroy(e1);
    cuda_free(a);
    cuda_free(b);
    return st;
}

static const struct hearth_device_ops cdev_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .backend = "cuda",
    .destroy = cdev_destroy,
    .get_props = cdev_props,
    .supports_op = cdev_supports_op,
    .buffer_type = cdev_buft,
    .host_buffer_type = cdev_host_buft,
    .stream_create = cdev_stream_create,
    .measure_bandwidth = cdev_bandwidth,
    .supports_kv = cdev_supports_kv,
    .supports_kv_window = cdev_supports_kv_window,
};

static hearth_status creg_open(int index, struct hearth_device **out)
{
    struct cu_dev *d;
    hearth_status st;
    *out = NULL;
    if (index < 0 || index >= cuda_device_count())
        return err_set(HEARTH_ERR_NOT_FOUND, "cuda: no device %d", index);
    if (!(d = calloc(1, sizeof *d)))
        return err_set(HEARTH_ERR_NO_MEMORY, "cuda: device record");
    if ((st = cuda_set_device(index)) != HEARTH_OK ||
        (st = cuda_device_info(&d->n_sm, NULL, NULL, 0)) != HEARTH_OK) {
        free(d);
        return st;
    }
    if (pthread_mutex_init(&d->rot_lock, NULL) != 0) {
        free(d);
        return err_set(HEARTH_ERR_NO_MEMORY, "cuda%d: rotation table lock", index);
    }
    d->index = index;
    snprintf(d->name, sizeof d->name, "cuda%d", index);
    d->dev = (struct hearth_device){&cdev_ops, d};
    d->buft = (struct hearth_buffer_type){&cbuft_ops, NULL, &d->dev};
    d->host_buft = (struct hearth_buffer_type){&cbuft_host_ops, NULL, &d->dev};
    *out = &d->dev;
    return HEARTH_OK;
}

static const struct hearth_backend_ops creg_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .name = "cuda",
    .device_count = cuda_device_count,
    .device_describe = describe,
    .device_open = creg_open,
};

/* The registry's table (core/backend-registry.c). */
const struct hearth_backend_ops *cuda_backend_ops(void)
{
    return &creg_ops;
}
