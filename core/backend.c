/*
 * backend: the core wrappers around the backend vtables (see backend.h).
 *
 * Every call from the scheduler, the loader or a tool goes through here, for
 * three reasons: (1) optional members get their documented default when the
 * pointer is NULL or the table's abi_version predates the member, so a backend
 * written against an older ABI keeps working; (2) arguments are validated
 * once (offsets inside the buffer, ops' tensors on the right device), so
 * backends may trust them; (3) the allocation hook for fault injection sits
 * in one place, in front of every backend's allocator.
 *
 * Member availability: every member defined today is ABI version 1. A member
 * appended in version N is read through HAS(table, N, member), which checks
 * the table's abi_version before touching the pointer.
 */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "quant.h"

#define HAS(tab, ver, member) ((tab)->abi_version >= (ver) && (tab)->member != NULL)

static backend_alloc_hook_fn g_alloc_hook;
static void *g_alloc_hook_user;

const char *backend_op_name(enum hearth_op_kind op)
{
    static const char *const names[HEARTH_OP_COUNT] = {"embed", "rmsnorm", "matmul", "attention",
                                                       "glu",   "add",     "logits"};
    return (unsigned)op < HEARTH_OP_COUNT ? names[op] : "?";
}

/* ---- device ------------------------------------------------------------- */

void backend_device_destroy(struct hearth_device *dev)
{
    if (dev)
        dev->ops->destroy(dev);
}

void backend_device_props(struct hearth_device *dev, struct hearth_device_props *out)
{
    memset(out, 0, sizeof *out);
    dev->ops->get_props(dev, out);
}

void backend_device_memory(struct hearth_device *dev, uint64_t *free_bytes, uint64_t *total_bytes)
{
    if (HAS(dev->ops, 1, get_memory)) {
        dev->ops->get_memory(dev, free_bytes, total_bytes);
        return;
    }
    struct hearth_device_props p;
    backend_device_props(dev, &p);
    *free_bytes = p.free_bytes;
    *total_bytes = p.total_bytes;
}

bool backend_device_supports_op(struct hearth_device *dev, enum hearth_op_kind op, hearth_dtype t)
{
    if ((unsigned)op >= HEARTH_OP_COUNT)
        return false;
    if (HAS(dev->ops, 1, supports_op))
        return dev->ops->supports_op(dev, op, t);
    return t == HEARTH_DTYPE_F32;
}

bool backend_device_supports_kv(struct hearth_device *dev, int k_type, int v_type)
{
    if (!dev)
        return false;
    if (HAS(dev->ops, 2, supports_kv))
        return dev->ops->supports_kv(dev, k_type, v_type);
    return k_type == 0 && v_type == 0;
}

hearth_status backend_check_kv_ring(const struct hearth_op_attention *a, const char *who)
{
    const int64_t W = a->kv_window, KV = (int64_t)a->n_head_kv * a->head_dim;
    const struct hearth_tensor *rs[2] = {&a->k_ring, &a->v_ring};
    for (int i = 0; i < 2; i++) {
        const struct hearth_tensor *t = rs[i];
        if (!t->buf || t->type != HEARTH_DTYPE_F16 || t->ne0 < KV || t->n_rows < W ||
            t->row_stride < (size_t)KV * 2 || t->row_stride % 2)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "%s: attention: kv_window %lld needs %s_ring, F16 [%lld][%lld] with "
                           "an even row stride (got %s [%lld][%lld], stride %zu)",
                           who, (long long)W, i ? "v" : "k", (long long)W, (long long)KV,
                           t->buf ? hearth_dtype_name(t->type) : "absent", (long long)t->n_rows,
                           (long long)t->ne0, t->row_stride);
    }
    const struct hearth_tensor *tp = &a->ring_pos;
    const bool one_row = tp->ne0 >= W && tp->n_rows >= 1;
    const bool column = tp->ne0 == 1 && tp->n_rows >= W && tp->row_stride == sizeof(int32_t);
    if (!tp->buf || tp->type != HEARTH_DTYPE_I32 || !(one_row || column))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "%s: attention: kv_window %lld needs ring_pos, I32 [%lld] (got %s "
                       "[%lld][%lld])",
                       who, (long long)W, (long long)W,
                       tp->buf ? hearth_dtype_name(tp->type) : "absent", (long long)tp->n_rows,
                       (long long)tp->ne0);
    return HEARTH_OK;
}

bool backend_device_supports_kv_window(struct hearth_device *dev, int k_type, int v_type)
{
    if (!dev || !backend_device_supports_kv(dev, k_type, v_type))
        return false;
    if (HAS(dev->ops, 3, supports_kv_window))
        return dev->ops->supports_kv_window(dev, k_type, v_type);
    return false;
}

bool backend_device_supports_kv_ring_only(struct hearth_device *dev, int k_type, int v_type)
{
    if (!dev || dev->ops->abi_version < 4)
        return false;
    /* an f16/f16 cache has no step 5 of its own: its ring-only layers are all it needs */
    if (k_type == 0 && v_type == 0)
        return backend_device_supports_kv(dev, k_type, v_type);
    return backend_device_supports_kv_window(dev, k_type, v_type);
}

struct hearth_buffer_type *backend_device_buffer_type(struct hearth_device *dev)
{
    return dev->ops->buffer_type(dev);
}

/* The process-wide plain host type of the default host_buffer_type, lazily made. */
static struct hearth_device *g_default_host_dev;

struct hearth_buffer_type *backend_device_host_buffer_type(struct hearth_device *dev)
{
    if (HAS(dev->ops, 1, host_buffer_type))
        return dev->ops->host_buffer_type(dev);
    if (!g_default_host_dev) {
        struct cpu_backend_params p = {.n_threads = 1, .isa = 0, .name = "host"};
        if (cpu_backend_device_create(&p, &g_default_host_dev) != HEARTH_OK)
            return NULL; /* the caller reports NULL as NO_MEMORY */
    }
    return backend_device_buffer_type(g_default_host_dev);
}

hearth_status backend_device_measure_bandwidth(struct hearth_device *dev, double *gbps)
{
    *gbps = 0.0;
    if (HAS(dev->ops, 1, measure_bandwidth))
        return dev->ops->measure_bandwidth(dev, gbps);
    return err_set(HEARTH_ERR_UNSUPPORTED, "backend %s: no bandwidth measurement",
                   dev->ops->backend);
}

/* ---- buffer type ---------------------------------------------------------- */

size_t backend_buft_alignment(struct hearth_buffer_type *bt)
{
    return HAS(bt->ops, 1, alignment) ? bt->ops->alignment(bt) : 64;
}

size_t backend_buft_max_size(struct hearth_buffer_type *bt)
{
    return HAS(bt->ops, 1, max_size) ? bt->ops->max_size(bt) : SIZE_MAX;
}

uint64_t backend_device_max_buffer(struct hearth_device *dev)
{
    struct hearth_buffer_type *bt = backend_device_buffer_type(dev);
    size_t mx = bt ? backend_buft_max_size(bt) : SIZE_MAX;
    return mx >= SIZE_MAX / 2 ? 0 : (uint64_t)mx;
}

uint32_t backend_buft_flags(struct hearth_buffer_type *bt)
{
    return HAS(bt->ops, 1, flags) ? bt->ops->flags(bt) : 0;
}

void backend_set_alloc_hook(backend_alloc_hook_fn hook, void *user)
{
    g_alloc_hook = hook;
    g_alloc_hook_user = user;
}

hearth_status backend_buffer_alloc(struct hearth_buffer_type *bt, size_t size,
                                   struct hearth_buffer **out)
{
    *out = NULL;
    if (!bt)
        return err_set(HEARTH_ERR_NO_MEMORY, "backend: no buffer type (host type creation failed)");
    if (size == 0)
        size = 1;
    size_t mx = backend_buft_max_size(bt);
    if (size > mx)
        return err_set(HEARTH_ERR_DEVICE_OOM,
                       "backend: buffer type %s: %zu bytes exceed its largest buffer of %zu",
                       bt->ops->name, size, mx);
    if (g_alloc_hook) {
        hearth_status st = g_alloc_hook(g_alloc_hook_user, bt, size);
        if (st != HEARTH_OK)
            return err_set(st, "backend: buffer type %s: allocation of %zu bytes refused "
                               "(injected failure)", bt->ops->name, size);
    }
    hearth_status st = bt->ops->alloc(bt, size, out);
    if (st != HEARTH_OK) {
        *out = NULL;
        return st;
    }
    return HEARTH_OK;
}

/* ---- buffer ------------------------------------------------------------- */

static hearth_status check_range(const struct hearth_buffer *buf, size_t offset, size_t n,
                                 const char *what)
{
    if (!buf)
        return err_set(HEARTH_ERR_INVALID_ARG, "backend: %s: NULL buffer", what);
    if (offset > buf->size || n > buf->size - offset)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "backend: %s: bytes [%zu, %zu + %zu) outside a buffer of %zu bytes", what,
                       offset, offset, n, buf->size);
    return HEARTH_OK;
}

void backend_buffer_free(struct hearth_buffer *buf)
{
    if (buf)
        buf->ops->free(buf);
}

void *backend_buffer_base(struct hearth_buffer *buf)
{
    return buf->ops->base(buf);
}

hearth_status backend_buffer_set(struct hearth_buffer *buf, size_t offset, const void *src,
                                 size_t n)
{
    hearth_status st = check_range(buf, offset, n, "set");
    if (st != HEARTH_OK || n == 0)
        return st;
    return buf->ops->set(buf, offset, src, n);
}

hearth_status backend_buffer_get(struct hearth_buffer *buf, size_t offset, void *dst, size_t n)
{
    hearth_status st = check_range(buf, offset, n, "get");
    if (st != HEARTH_OK || n == 0)
        return st;
    return buf->ops->get(buf, offset, dst, n);
}

hearth_status backend_buffer_clear(struct hearth_buffer *buf, uint8_t value)
{
    if (!buf)
        return err_set(HEARTH_ERR_INVALID_ARG, "backend: clear: NULL buffer");
    if (HAS(buf->ops, 1, clear))
        return buf->ops->clear(buf, value);
    enum { CHUNK = 64 * 1024 };
    uint8_t *tmp = malloc(CHUNK);
    if (!tmp)
        return err_set(HEARTH_ERR_NO_MEMORY, "backend: clear: out of memory for staging");
    memset(tmp, value, CHUNK);
    hearth_status st = HEARTH_OK;
    for (size_t off = 0; off < buf->size && st == HEARTH_OK; off += CHUNK) {
        size_t n = buf->size - off < CHUNK ? buf->size - off : CHUNK;
        st = buf->ops->set(buf, off, tmp, n);
    }
    free(tmp);
    return st;
}

hearth_status backend_buffer_copy(struct hearth_buffer *dst, size_t doff, struct hearth_buffer *src,
                                  size_t soff, size_t n)
{
    hearth_status st;
    if ((st = check_range(dst, doff, n, "copy dst")) != HEARTH_OK ||
        (st = check_range(src, soff, n, "copy src")) != HEARTH_OK)
        return st;
    if (HAS(dst->ops, 1, copy_from))
        return dst->ops->copy_from(dst, doff, src, soff, n);
    return err_set(HEARTH_ERR_UNSUPPORTED, "backend: %s buffers offer no device-side copy",
                   dst->buft->ops->name);
}

/* ---- host-pointer buffers ----------------------------------------------- */

static void hp_free(struct hearth_buffer *b)
{
    free(b);
}

static void *hp_base(struct hearth_buffer *b)
{
    return b->ctx;
}

static hearth_status hp_set(struct hearth_buffer *b, size_t off, const void *src, size_t n)
{
    memcpy((uint8_t *)b->ctx + off, src, n);
    return HEARTH_OK;
}

static hearth_status hp_get(struct hearth_buffer *b, size_t off, void *dst, size_t n)
{
    memcpy(dst, (const uint8_t *)b->ctx + off, n);
    return HEARTH_OK;
}

static const struct hearth_buffer_ops hp_buf_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .free = hp_free,
    .base = hp_base,
    .set = hp_set,
    .get = hp_get,
};

static uint32_t hp_flags(struct hearth_buffer_type *bt)
{
    (void)bt;
    return HEARTH_BUFT_HOST;
}

static hearth_status hp_alloc(struct hearth_buffer_type *bt, size_t size,
                              struct hearth_buffer **out)
{
    (void)bt;
    (void)out;
    return err_set(HEARTH_ERR_UNSUPPORTED, "backend: the host-pointer type wraps memory and "
                                           "cannot allocate %zu bytes", size);
}

static const struct hearth_buffer_type_ops hp_buft_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .name = "host_ptr",
    .alloc = hp_alloc,
    .flags = hp_flags,
};

static struct hearth_buffer_type hp_buft = {.ops = &hp_buft_ops, .ctx = NULL, .dev = NULL};

hearth_status backend_buffer_from_host_ptr(void *ptr, size_t n, struct hearth_buffer **out)
{
    *out = NULL;
    if (!ptr)
        return err_set(HEARTH_ERR_INVALID_ARG, "backend: host-pointer buffer of NULL");
    struct hearth_buffer *b = calloc(1, sizeof *b);
    if (!b)
        return err_set(HEARTH_ERR_NO_MEMORY, "backend: out of memory for a buffer wrapper");
    b->ops = &hp_buf_ops;
    b->ctx = ptr;
    b->buft = &hp_buft;
    b->size = n;
    *out = b;
    return HEARTH_OK;
}

/* ---- stream ------------------------------------------------------------- */

hearth_status backend_stream_create(struct hearth_device *dev, struct hearth_stream **out)
{
    *out = NULL;
    return dev->ops->stream_create(dev, out);
}

void backend_stream_destroy(struct hearth_stream *s)
{
    if (s)
        s->ops->destroy(s);
}

hearth_status backend_stream_set_async(struct hearth_stream *s, struct hearth_buffer *buf,
                                       size_t offset, const void *src, size_t n)
{
    hearth_status st = check_range(buf, offset, n, "set_async");
    if (st != HEARTH_OK || n == 0)
        return st;
    if (HAS(s->ops, 1, set_async))
        return s->ops->set_async(s, buf, offset, src, n);
    return buf->ops->set(buf, offset, src, n);
}

hearth_status backend_stream_get_async(struct hearth_stream *s, struct hearth_buffer *buf,
                                       size_t offset, void *dst, size_t n)
{
    hearth_status st = check_range(buf, offset, n, "get_async");
    if (st != HEARTH_OK || n == 0)
        return st;
    if (HAS(s->ops, 1, get_async))
        return s->ops->get_async(s, buf, offset, dst, n);
    return buf->ops->get(buf, offset, dst, n);
}

/* A present tensor must lie inside its buffer, on memory the stream's device can use. */
/*
 * Whether the stream's device computes on host memory, asked at most once per
 * run and only when a tensor lives in a foreign host buffer (mapped weights):
 * get_props may cost a syscall, and a decode step runs hundreds of ops.
 */
struct run_check {
    struct hearth_stream *s;
    int host_memory; /* -1 not asked yet */
};

static hearth_status check_tensor(struct run_check *rc, const struct hearth_op *op,
                                  const struct hearth_tensor *t, const char *name, bool required)
{
    const char *on = backend_op_name(op->kind);
    if (!t->buf) {
        if (required)
            return err_set(HEARTH_ERR_INVALID_ARG, "backend: op %s: tensor %s missing", on, name);
        return HEARTH_OK;
    }
    if (t->n_rows < 1 || t->ne0 < 1)
        return err_set(HEARTH_ERR_INVALID_ARG, "backend: op %s: tensor %s has shape [%lld][%lld]",
                       on, name, (long long)t->n_rows, (long long)t->ne0);
    uint64_t rb = 0;
    if (!quant_row_bytes(t->type, (uint64_t)t->ne0, &rb) || t->row_stride < rb)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "backend: op %s: tensor %s: row of %lld %s elements does not fit a "
                       "stride of %zu bytes", on, name, (long long)t->ne0,
                       hearth_dtype_name(t->type) ? hearth_dtype_name(t->type) : "?",
                       t->row_stride);
    size_t last = (size_t)(t->n_rows - 1) * t->row_stride + (size_t)rb;
    if (t->offset > t->buf->size || last > t->buf->size - t->offset)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "backend: op %s: tensor %s: bytes [%zu, +%zu) outside its buffer of %zu",
                       on, name, t->offset, last, t->buf->size);
    struct hearth_buffer_type *bt = t->buf->buft;
    bool ok = bt->dev == rc->s->dev;
    if (!ok && (backend_buft_flags(bt) & HEARTH_BUFT_HOST)) {
        if (rc->host_memory < 0) {
            struct hearth_device_props p;
            backend_device_props(rc->s->dev, &p);
            rc->host_memory = p.host_memory;
        }
        ok = rc->host_memory;
    }
    if (!ok)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "backend: op %s: tensor %s lives in a %s buffer, not on this stream's "
                       "device", on, name, bt->ops->name);
    return HEARTH_OK;
}

static hearth_status check_op(struct run_check *rc, const struct hearth_op *op)
{
    hearth_status st = HEARTH_OK;
    if ((unsigned)op->kind >= HEARTH_OP_COUNT)
        return err_set(HEARTH_ERR_INVALID_ARG, "backend: op kind %d unknown", (int)op->kind);
    if (op->n_tok < 1 || op->n_tok > 4096)
        return err_set(HEARTH_ERR_INVALID_ARG, "backend: op %s: n_tok %d outside [1, 4096]",
                       backend_op_name(op->kind), op->n_tok);
#define T(t, req)                                                            \
    do {                                                                     \
        if ((st = check_tensor(rc, op, &(t), #t, req)) != HEARTH_OK)         \
            return st;                                                       \
    } while (0)
    switch (op->kind) {
    case HEARTH_OP_EMBED:
        T(op->u.embed.table, true);
        T(op->u.embed.ids, true);
        T(op->u.embed.out, true);
        break;
    case HEARTH_OP_RMSNORM:
        T(op->u.rmsnorm.x, true);
        T(op->u.rmsnorm.w, false);
        T(op->u.rmsnorm.y, true);
        break;
    case HEARTH_OP_MATMUL: {
        const struct hearth_op_matmul *m = &op->u.matmul;
        if (m->n_w < 1 || m->n_w > 3)
            return err_set(HEARTH_ERR_INVALID_ARG, "backend: op matmul: n_w %d outside [1, 3]",
                           m->n_w);
        T(m->x, true);
        for (int i = 0; i < m->n_w; i++) {
            T(m->w[i], true);
            T(m->b[i], false);
            T(m->y[i], true);
            if (m->w[i].ne0 != m->x.ne0)
                return err_set(HEARTH_ERR_INVALID_ARG,
                               "backend: op matmul: weight %d has rows of %lld, x of %lld", i,
                               (long long)m->w[i].ne0, (long long)m->x.ne0);
        }
        break;
    }
    case HEARTH_OP_ATTENTION: {
        const struct hearth_op_attention *a = &op->u.attn;
        T(a->q, true);
        T(a->k, true);
        T(a->v, true);
        T(a->q_norm, false);
        T(a->k_norm, false);
        T(a->rope_divs, false);
        /* both absent: a ring-only layer (step 6), which the backend checks further */
        const bool ring_only = !a->k_cache.buf && !a->v_cache.buf;
        T(a->k_cache, !ring_only);
        T(a->v_cache, !ring_only);
        T(a->out, true);
        if (a->n_head < 1 || a->n_head_kv < 1 || a->n_head % a->n_head_kv != 0 ||
            a->head_dim < 1 || a->n_rot < 0 || a->n_rot > a->head_dim || a->n_rot % 2)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "backend: op attention: heads %d/%d, head_dim %d, n_rot %d invalid",
                           a->n_head, a->n_head_kv, a->head_dim, a->n_rot);
        if (a->pos0 < 0 || (!ring_only && (a->pos0 + op->n_tok > a->k_cache.n_rows ||
                                           a->pos0 + op->n_tok > a->v_cache.n_rows)))
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "backend: op attention: positions %lld..%lld beyond a cache of %lld",
                           (long long)a->pos0, (long long)(a->pos0 + op->n_tok - 1),
                           (long long)a->k_cache.n_rows);
        break;
    }
    case HEARTH_OP_GLU:
        T(op->u.glu.g, true);
        T(op->u.glu.u, true);
        break;
    case HEARTH_OP_ADD:
        T(op->u.add.x, true);
        T(op->u.add.y, true);
        T(op->u.add.w, false);
        break;
    case HEARTH_OP_LOGITS:
        T(op->u.logits.x, true);
        T(op->u.logits.norm_w, true);
        T(op->u.logits.out_w, true);
        T(op->u.logits.y, true);
        break;
    case HEARTH_OP_COUNT:
        break;
    }
#undef T
    return HEARTH_OK;
}

hearth_status backend_stream_run(struct hearth_stream *s, const struct hearth_op *ops, int n_ops)
{
    if (n_ops < 0 || (n_ops > 0 && !ops))
        return err_set(HEARTH_ERR_INVALID_ARG, "backend: run: %d ops", n_ops);
    struct run_check rc = {s, -1};
    for (int i = 0; i < n_ops; i++) {
        hearth_status st = check_op(&rc, &ops[i]);
        if (st != HEARTH_OK)
            return err_prefix(st, "op %d of %d", i, n_ops);
    }
    return n_ops ? s->ops->graph_run(s, ops, n_ops) : HEARTH_OK;
}

hearth_status backend_stream_synchronize(struct hearth_stream *s)
{
    return s->ops->synchronize(s);
}

/* ---- events ------------------------------------------------------------- */

static bool has_events(const struct hearth_stream *s)
{
    return HAS(s->ops, 1, event_create) && HAS(s->ops, 1, event_destroy) &&
           HAS(s->ops, 1, event_record) && HAS(s->ops, 1, event_synchronize);
}

hearth_status backend_event_create(struct hearth_stream *s, struct hearth_event **out)
{
    *out = NULL;
    struct hearth_event *ev = calloc(1, sizeof *ev);
    if (!ev)
        return err_set(HEARTH_ERR_NO_MEMORY, "backend: out of memory for an event");
    ev->stream = s;
    if (has_events(s)) {
        hearth_status st = s->ops->event_create(s, &ev->ctx);
        if (st != HEARTH_OK) {
            free(ev);
            return st;
        }
    }
    *out = ev;
    return HEARTH_OK;
}

void backend_event_destroy(struct hearth_event *ev)
{
    if (!ev)
        return;
    if (has_events(ev->stream))
        ev->stream->ops->event_destroy(ev->stream, ev->ctx);
    free(ev);
}

hearth_status backend_event_record(struct hearth_event *ev)
{
    ev->recorded = true;
    if (has_events(ev->stream))
        return ev->stream->ops->event_record(ev->stream, ev->ctx);
    return HEARTH_OK;
}

hearth_status backend_event_synchronize(struct hearth_event *ev)
{
    if (!ev->recorded)
        return HEARTH_OK;
    if (has_events(ev->stream))
        return ev->stream->ops->event_synchronize(ev->stream, ev->ctx);
    return backend_stream_synchronize(ev->stream);
}

/* ---- tensors ------------------------------------------------------------ */

bool backend_tensor_2d(struct hearth_tensor *out, struct hearth_buffer *buf, size_t offset,
                       hearth_dtype type, int64_t ne0, int64_t n_rows)
{
    uint64_t rb = 0;
    if (ne0 < 1 || !quant_row_bytes(type, (uint64_t)ne0, &rb))
        return false;
    out->buf = buf;
    out->offset = offset;
    out->type = type;
    out->ne0 = ne0;
    out->n_rows = n_rows;
    out->row_stride = (size_t)rb;
    return true;
}
