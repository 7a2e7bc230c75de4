/*
 * vulkan/backend: the Vulkan backend behind core/backend.h's four tables
 * (device, buffer type, buffer, stream) and its registry entry
 * (vk_backend_ops, reached through device.c).
 *
 * A device owns one struct vk_ctx (one compute queue). Buffers are
 * struct vk_buffer in device-local memory; base() is NULL, tensors are
 * (buffer, offset). The buffer type's max_size is caps.max_chunk, so the
 * scheduler's one-buffer-per-weight never asks for a binding past
 * maxStorageBufferRange or an allocation past maxMemoryAllocationSize (an
 * LM head larger than that comes in row parts, each a buffer of its own).
 * Every stream of a device records into the context's open frame (command.c's
 * ring), in call order, on one queue: set_async / buffer set (src copied to
 * staging at enqueue), get_async (dst written when its submission is waited
 * for) and graph_run interleave in program order without a submit each.
 * synchronize submits and waits for everything; an event is the serial of
 * the submission its record ends, and event_synchronize waits only up to it.
 * The op switch is graph.c.
 * host_memory is false even on lavapipe: ops bind VkBuffers, so a
 * host-pointer buffer (backend_buffer_from_host_ptr) cannot be an operand.
 * host_staging_bytes is what command.c's frames may grow their staging to
 * (vk_host_staging_bytes: 4 x 64 MiB where max_chunk allows), host RAM no
 * buffer type hands out, which the planner charges to the host.
 * ATTENTION over a compressed KV cache (k_type/v_type other than f16/f16,
 * supports_kv) is graph.c's run_attention with op-attention.c's kvq kernels,
 * in the same walk as every other op (so decode replay covers it), with the
 * exact window (step 5, supports_kv_window) for every pair but f16/f16.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "vk-graph.h"
#include "vk-kvq.h"

static const struct hearth_device_ops vkb_device_ops;
static const struct hearth_buffer_type_ops vkb_buft_ops;
static const struct hearth_buffer_ops vkb_buffer_ops;
static const struct hearth_stream_ops vkb_stream_ops;

struct vkb_device {
    struct hearth_device dev;
    struct hearth_buffer_type buft;
    struct vk_ctx *ctx;
    int index;
    double bw_gbps; /* measured copy bandwidth (measure_bandwidth); 0: not yet */
};

static struct vkb_device *dev_of(struct hearth_device *d)
{
    return d->ctx;
}

/* ---- buffer --------------------------------------------------------------- */

struct vkb_buffer {
    struct hearth_buffer hb;
    struct vk_buffer b;
    struct vk_ctx *ctx;
};

static void vkb_buffer_free(struct hearth_buffer *buf)
{
    struct vkb_buffer *b = buf->ctx;
    vk_submit(b->ctx); /* nothing recorded may still use it */
    vk_buffer_destroy(b->ctx, &b->b);
    free(b);
}

static void *vkb_buffer_base(struct hearth_buffer *buf)
{
    (void)buf;
    return NULL;
}

static hearth_status vkb_buffer_set(struct hearth_buffer *buf, size_t offset, const void *src,
                                    size_t n)
{
    struct vkb_buffer *b = buf->ctx;
    return n ? vk_buffer_upload(b->ctx, &b->b, offset, src, n) : HEARTH_OK;
}

static hearth_status vkb_buffer_get(struct hearth_buffer *buf, size_t offset, void *dst, size_t n)
{
    struct vkb_buffer *b = buf->ctx;
    return n ? vk_buffer_download(b->ctx, &b->b, offset, dst, n) : HEARTH_OK;
}

static hearth_status vkb_buffer_clear(struct hearth_buffer *buf, uint8_t value)
{
    struct vkb_buffer *b = buf->ctx;
    uint32_t v = value * 0x01010101u;
    /* the vk_buffer was sized to a multiple of 4 */
    return vk_buffer_fill(b->ctx, &b->b, 0, b->b.size, v);
}

/* Device-side copy between two buffers of one context; synchronous, like set and get. */
static hearth_status vkb_buffer_copy_from(struct hearth_buffer *dst, size_t doff,
                                          struct hearth_buffer *src, size_t soff, size_t n)
{
    struct vkb_buffer *d = dst->ctx, *sb = src->ctx;
    if (src->ops != dst->ops || sb->ctx != d->ctx)
        return err_set(HEARTH_ERR_UNSUPPORTED, "vulkan: copy from a buffer of another device");
    hearth_status st = vk_buffer_copy(d->ctx, &d->b, doff, &sb->b, soff, n);
    return st != HEARTH_OK ? st : vk_submit(d->ctx);
}

static const struct hearth_buffer_ops vkb_buffer_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .free = vkb_buffer_free,
    .base = vkb_buffer_base,
    .set = vkb_buffer_set,
    .get = vkb_buffer_get,
    .clear = vkb_buffer_clear,
    .copy_from = vkb_buffer_copy_from,
};

struct vk_buffer *vk__hearth_buffer(struct hearth_buffer *buf)
{
    if (!buf || buf->ops != &vkb_buffer_ops)
        return NULL;
    return &((struct vkb_buffer *)buf->ctx)->b;
}

/* ---- buffer type ---------------------------------------------------------- */

static hearth_status vkb_buft_alloc(struct hearth_buffer_type *bt, size_t size,
                                    struct hearth_buffer **out)
{
    struct vkb_device *d = bt->ctx;
    *out = NULL;
    struct vkb_buffer *b = calloc(1, sizeof *b);
    if (!b)
        return err_set(HEARTH_ERR_NO_MEMORY, "vulkan: buffer record");
    hearth_status st = vk_buffer_create(d->ctx, (size + 3) / 4 * 4, VK_BUF_DEVICE, &b->b);
    if (st != HEARTH_OK) {
        free(b);
        return err_prefix(st, "vulkan%d: buffer of %zu bytes", d->index, size);
    }
    b->ctx = d->ctx;
    b->hb.ops = &vkb_buffer_ops;
    b->hb.ctx = b;
    b->hb.buft = bt;
    b->hb.size = size;
    *out = &b->hb;
    return HEARTH_OK;
}

static size_t vkb_buft_alignment(struct hearth_buffer_type *bt)
{
    (void)bt;
    return 256;
}

static size_t vkb_buft_max_size(struct hearth_buffer_type *bt)
{
    struct vkb_device *d = bt->ctx;
    return (size_t)vk_ctx_caps(d->ctx)->max_chunk;
}

static uint32_t vkb_buft_flags(struct hearth_buffer_type *bt)
{
    (void)bt;
    return HEARTH_BUFT_DEVICE_LOCAL;
}

static const struct hearth_buffer_type_ops vkb_buft_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .name = "vulkan",
    .alloc = vkb_buft_alloc,
    .alignment = vkb_buft_alignment,
    .max_size = vkb_buft_max_size,
    .flags = vkb_buft_flags,
};

/* ---- stream --------------------------------------------------------------- */

/* A stream: graph.c's state (which holds the kvq attention state too). */
struct vkb_stream {
    struct vk_ctx *ctx;
    struct vk_graph *g;
};

static void vkb_stream_destroy(struct hearth_stream *s)
{
    struct vkb_stream *vs = s->ctx;
    vk_graph_destroy(vs->g);
    free(vs);
    free(s);
}

static hearth_status vkb_stream_run(struct hearth_stream *s, const struct hearth_op *ops, int n_ops)
{
    struct vkb_stream *vs = s->ctx;
    return vk_graph_run(vs->g, ops, n_ops);
}

void vk_backend_replay_stats(struct hearth_stream *s, struct vk_replay_stats *out)
{
    memset(out, 0, sizeof *out);
    if (s && s->ops == &vkb_stream_ops)
        vk_graph_replay_stats(((struct vkb_stream *)s->ctx)->g, out);
}

static hearth_status vkb_stream_sync(struct hearth_stream *s)
{
    struct vkb_device *d = dev_of(s->dev);
    return vk_submit(d->ctx);
}

/* src is copied into staging now: it may change as soon as this returns. */
static hearth_status vkb_stream_set_async(struct hearth_stream *s, struct hearth_buffer *buf,
                                          size_t offset, const void *src, size_t n)
{
    struct vkb_stream *vs = s->ctx;
    struct vk_buffer *b = vk__hearth_buffer(buf);
    if (!b)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan set_async: not a Vulkan buffer");
    return n ? vk_buffer_upload(vs->ctx, b, offset, src, n) : HEARTH_OK;
}

/* dst is written when the submission holding the copy is waited for (synchronize, events). */
static hearth_status vkb_stream_get_async(struct hearth_stream *s, struct hearth_buffer *buf,
                                          size_t offset, void *dst, size_t n)
{
    struct vkb_stream *vs = s->ctx;
    struct vk_buffer *b = vk__hearth_buffer(buf);
    if (!b)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan get_async: not a Vulkan buffer");
    return n ? vk_buffer_download_async(vs->ctx, b, offset, dst, n) : HEARTH_OK;
}

/*
 * An event is the serial of the submission that ends at its record (every
 * stream of the device shares the one queue, so that submission and all
 * before it are the work enqueued before the record).
 */
struct vkb_event {
    uint64_t serial;
    bool set; /* recorded after at least one submission */
};

static hearth_status vkb_event_create(struct hearth_stream *s, void **ev_ctx)
{
    (void)s;
    *ev_ctx = calloc(1, sizeof(struct vkb_event));
    return *ev_ctx ? HEARTH_OK : err_set(HEARTH_ERR_NO_MEMORY, "vulkan: event");
}

/* Nothing waits on an event but the host, so an unsynchronized one is simply forgotten. */
static void vkb_event_destroy(struct hearth_stream *s, void *ev_ctx)
{
    (void)s;
    free(ev_ctx);
}

/* Submits the open recording (the GPU starts on it now) and remembers its serial. */
static hearth_status vkb_event_record(struct hearth_stream *s, void *ev_ctx)
{
    struct vkb_stream *vs = s->ctx;
    struct vkb_event *ev = ev_ctx;
    hearth_status st = vk__flush(vs->ctx);
    if (st != HEARTH_OK)
        return st;
    ev->set = vs->ctx->n_submits > 0;
    ev->serial = ev->set ? vs->ctx->n_submits - 1 : 0;
    return HEARTH_OK;
}

/* Waits for the event's submission and those before it, not for later ones. */
static hearth_status vkb_event_sync(struct hearth_stream *s, void *ev_ctx)
{
    struct vkb_stream *vs = s->ctx;
    struct vkb_event *ev = ev_ctx;
    return ev->set ? vk__wait_serial(vs->ctx, ev->serial) : HEARTH_OK;
}

static const struct hearth_stream_ops vkb_stream_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .destroy = vkb_stream_destroy,
    .set_async = vkb_stream_set_async,
    .get_async = vkb_stream_get_async,
    .graph_run = vkb_stream_run,
    .synchronize = vkb_stream_sync,
    .event_create = vkb_event_create,
    .event_destroy = vkb_event_destroy,
    .event_record = vkb_event_record,
    .event_synchronize = vkb_event_sync,
};

/* ---- device --------------------------------------------------------------- */

static void fill_props(struct vk_ctx *ctx, int index, struct hearth_device_props *out)
{
    const struct vk_caps *c = vk_ctx_caps(ctx);
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "vulkan%d", index);
    snprintf(out->desc, sizeof out->desc, "%s (Vulkan %u.%u)", c->name,
             VK_API_VERSION_MAJOR(c->api_version), VK_API_VERSION_MINOR(c->api_version));
    out->total_bytes = c->device_local_bytes;
    out->free_bytes = c->device_local_free;
    out->host_memory = false;
    out->host_staging_bytes = vk_host_staging_bytes(c->max_chunk);
    out->max_buffer_bytes = c->max_chunk;
}

static void vkb_destroy(struct hearth_device *dev)
{
    struct vkb_device *d = dev_of(dev);
    vk_ctx_destroy(d->ctx);
    free(d);
}

static void vkb_get_props(struct hearth_device *dev, struct hearth_device_props *out)
{
    struct vkb_device *d = dev_of(dev);
    fill_props(d->ctx, d->index, out);
    out->bw_gbps = d->bw_gbps;
}

static hearth_status vkb_measure_bandwidth(struct hearth_device *dev, double *gbps)
{
    struct vkb_device *d = dev_of(dev);
    hearth_status st = vk_measure_copy_bandwidth(d->ctx, gbps);
    if (st == HEARTH_OK)
        d->bw_gbps = *gbps;
    return st;
}

static bool vkb_supports_op(struct hearth_device *dev, enum hearth_op_kind op, hearth_dtype t)
{
    (void)dev;
    if (op == HEARTH_OP_MATMUL || op == HEARTH_OP_EMBED || op == HEARTH_OP_LOGITS)
        return vk_matmul_supports(t);
    return t == HEARTH_DTYPE_F32 && op < HEARTH_OP_COUNT;
}

/* ATTENTION over a compressed cache: every pair of kvq types (op-attention.c). */
static bool vkb_supports_kv(struct hearth_device *dev, int k_type, int v_type)
{
    (void)dev;
    return vk_kvq_supports(k_type, v_type);
}

/* ATTENTION's exact window (step 5): every compressed pair (op-attention.c). */
static bool vkb_supports_kv_window(struct hearth_device *dev, int k_type, int v_type)
{
    (void)dev;
    return vk_kvq_supports_window(k_type, v_type);
}

static struct hearth_buffer_type *vkb_buffer_type(struct hearth_device *dev)
{
    return &dev_of(dev)->buft;
}

static hearth_status vkb_stream_create(struct hearth_device *dev, struct hearth_stream **out)
{
    struct vkb_device *d = dev_of(dev);
    *out = NULL;
    struct hearth_stream *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(HEARTH_ERR_NO_MEMORY, "vulkan: stream");
    struct vkb_stream *vs = calloc(1, sizeof *vs);
    if (!vs) {
        free(s);
        return err_set(HEARTH_ERR_NO_MEMORY, "vulkan: stream state");
    }
    hearth_status st = vk_graph_create(d->ctx, &vs->g);
    if (st != HEARTH_OK) {
        free(vs);
        free(s);
        return st;
    }
    vs->ctx = d->ctx;
    s->ops = &vkb_stream_ops;
    s->ctx = vs;
    s->dev = dev;
    *out = s;
    return HEARTH_OK;
}

static const struct hearth_device_ops vkb_device_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .backend = "vulkan",
    .destroy = vkb_destroy,
    .get_props = vkb_get_props,
    .supports_op = vkb_supports_op,
    .buffer_type = vkb_buffer_type,
    .stream_create = vkb_stream_create,
    .supports_kv = vkb_supports_kv,
    .supports_kv_window = vkb_supports_kv_window,
    .measure_bandwidth = vkb_measure_bandwidth,
};

int vk_backend_validation_errors(struct hearth_device *dev, const char **last_message)
{
    return vk_ctx_validation_errors(dev_of(dev)->ctx, last_message);
}

void vk_backend_submit_stats(struct hearth_device *dev, struct vk_submit_stats *out)
{
    memset(out, 0, sizeof *out);
    if (dev && dev->ops == &vkb_device_ops)
        vk_ctx_submit_stats(dev_of(dev)->ctx, out);
}

/* ---- registration --------------------------------------------------------- */

static int vkb_device_count(void)
{
    struct reg_device_info info[16];
    return vk_probe_devices(info, 16);
}

static hearth_status vkb_device_describe(int index, struct hearth_device_props *out)
{
    struct reg_device_info info[16];
    int n = vk_probe_devices(info, 16);
    if (index < 0 || index >= n || index >= 16)
        return err_set(HEARTH_ERR_NOT_FOUND, "vulkan: no device %d (%d present)", index, n);
    memset(out, 0, sizeof *out);
    memcpy(out->name, info[index].name, sizeof out->name);
    memcpy(out->desc, info[index].desc, sizeof out->desc);
    out->total_bytes = info[index].total_bytes;
    out->free_bytes = info[index].free_bytes;
    out->host_staging_bytes = info[index].host_staging_bytes;
    out->max_buffer_bytes = info[index].max_buffer_bytes;
    return HEARTH_OK;
}

static hearth_status vkb_device_open(int index, struct hearth_device **out)
{
    *out = NULL;
    struct vkb_device *d = calloc(1, sizeof *d);
    if (!d)
        return err_set(HEARTH_ERR_NO_MEMORY, "vulkan: device record");
    struct vk_ctx_opts o = {.device_index = index};
    hearth_status st = vk_ctx_create(&o, &d->ctx);
    if (st != HEARTH_OK) {
        free(d);
        return err_prefix(st, "vulkan%d", index);
    }
    d->index = index;
    d->dev.ops = &vkb_device_ops;
    d->dev.ctx = d;
    d->buft.ops = &vkb_buft_ops;
    d->buft.ctx = d;
    d->buft.dev = &d->dev;
    *out = &d->dev;
    return HEARTH_OK;
}

static const struct hearth_backend_ops vkb_backend_ops = {
    .abi_version = HEARTH_BACKEND_ABI_VERSION,
    .name = "vulkan",
    .device_count = vkb_device_count,
    .device_describe = vkb_device_describe,
    .device_open = vkb_device_open,
};

const struct hearth_backend_ops *vk__backend_table(void)
{
    return &vkb_backend_ops;
}
