/*
 * scheduler: placement -> per-device buffers -> block-by-block execution (see
 * scheduler.h for the contract). This file builds and frees (sched_create,
 * the loader, caches, rings, activations) and answers the accessors;
 * sched-exec.c runs batches, sched-stream.c streams host weights for
 * prefill; sched-internal.h holds the state the three share.
 *
 * Per device that hosts any block (struct sdev) there is one stream and one
 * activation buffer holding, packed, x, xn, q, k, v, att, tmp, gate, up (each
 * [n_batch][width] F32), the token ids (I32 [n_batch], embedding device) and
 * the logits ([n_logits][n_vocab] F32, output device; more wanted rows are
 * computed and copied out in rounds, sched-exec.c). Weights get one buffer
 * each, so an allocation failure names exactly one tensor and the device's
 * allocator sees ordinary sizes. The K/V cache of layer il is two buffers
 * F16 [n_ctx][n_kv*hd] on the device of its attention block.
 *
 * Uploads go through two pinned halves of the destination device's host
 * buffer type: while the device copies from one half, the host fills the
 * other from the mapping (which is where page faults of a cold file are
 * paid), and an event per half says when it may be refilled. Each device
 * gets its halves once and keeps them until the load ends.
 *
 * Every size allocated here comes from plan.h's functions (weights rounded by
 * plan_align_up, plan_kv_buffer_bytes, plan_act_bytes, plan_stage_bytes,
 * PLAN_UPLOAD_HALF), so a plan's plan_device_alloc_bytes is exactly what this
 * file allocates for the placement derived from it.
 *
 * A layer is up to three blocks: attention, FFN (norm, gate/up, GLU) and
 * FFN_DOWN (down, residual add). When FFN and FFN_DOWN share a device the five
 * FFN ops run as one list; when they do not, the boundary moves x and the GLU
 * output (the gate rows, [n_tok][n_ff]) together through the receiving
 * device's staging, which is sized for both there (plan_glu_stage_bytes).
 *
 * The order of ops per block mirrors cpu/forward.c's layer_forward exactly;
 * that, and the CPU backend calling the same kernels, is what makes the
 * all-CPU result bit-identical. Alternatives rejected: one big buffer per
 * device carved by offsets (fewer allocations, but an OOM could not name the
 * tensor, and the planner's future "stream this tensor" needs per-tensor
 * buffers anyway); moving xn instead of x at boundaries (x is the only value
 * live across a block edge, so it is the minimum).
 */
#include "scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kv-cache.h"
#include "kv-quant.h"
#include "plan.h"
#include "sched-internal.h"

struct sched_params sched_params_default(void)
{
    struct sched_params p = {.n_ctx = 0, .n_batch = 64, .n_devices = 0, .devices = NULL,
                             .placement = NULL, .map_host_weights = true, .staging_bytes = 0,
                             .n_seq = 1};
    return p;
}

const char *sched__dev_name(const struct sched *s, int d, char buf[32])
{
    struct hearth_device_props p;
    backend_device_props(s->dev[d].dev, &p);
    memcpy(buf, p.name, 32);
    buf[31] = '\0';
    return buf;
}

static hearth_status track(struct sched *s, struct hearth_buffer *b)
{
    if (s->n_bufs == s->cap_bufs) {
        int cap = s->cap_bufs ? 2 * s->cap_bufs : 64;
        struct hearth_buffer **nb = realloc(s->bufs, (size_t)cap * sizeof *nb);
        if (!nb) {
            backend_buffer_free(b);
            return err_set(HEARTH_ERR_NO_MEMORY, "sched: out of memory for buffer bookkeeping");
        }
        s->bufs = nb;
        s->cap_bufs = cap;
    }
    s->bufs[s->n_bufs++] = b;
    return HEARTH_OK;
}

/*
 * Allocates on device d; on failure the message names what and the device's
 * free memory, and the OOM report (if asked for) says what the device gave.
 */
hearth_status sched__alloc_on(struct sched *s, int d, struct hearth_buffer_type *bt, size_t size,
                              const char *what, struct hearth_buffer **out)
{
    hearth_status st = backend_buffer_alloc(bt, size, out);
    if (st == HEARTH_OK) {
        s->dev[d].bytes += size;
        return HEARTH_OK;
    }
    uint64_t fr = 0, tot = 0;
    char nb[32];
    backend_device_memory(s->dev[d].dev, &fr, &tot);
    if (s->oom && s->oom->dev < 0) {
        s->oom->dev = d;
        s->oom->allocated = s->dev[d].bytes;
        s->oom->free_bytes = fr;
        s->oom->request = size;
    }
    return err_prefix(st, "sched: %s (%zu bytes) does not fit on %s (%s, %llu of %llu bytes free)",
                      what, size, sched__dev_name(s, d, nb), bt ? bt->ops->name : "?",
                      (unsigned long long)fr, (unsigned long long)tot);
}

static void loader_release(struct loader *L)
{
    for (int d = 0; d < SCHED_MAX_DEVICES; d++)
        for (int i = 0; i < 2; i++) {
            if (L->ev[d][i])
                backend_event_synchronize(L->ev[d][i]);
            backend_event_destroy(L->ev[d][i]);
            backend_buffer_free(L->half[d][i]);
            L->ev[d][i] = NULL;
            L->half[d][i] = NULL;
        }
}

/* Gives device d its two staging halves on its first upload. */
static hearth_status loader_switch(struct loader *L, int d)
{
    if (L->half[d][0])
        return HEARTH_OK;
    struct sdev *sd = &L->s->dev[d];
    struct hearth_buffer_type *ht = backend_device_host_buffer_type(sd->dev);
    hearth_status st;
    for (int i = 0; i < 2; i++) {
        if ((st = sched__alloc_on(L->s, d, ht, L->s->staging_bytes, "upload staging",
                                  &L->half[d][i])) != HEARTH_OK ||
            (st = backend_event_create(sd->stream, &L->ev[d][i])) != HEARTH_OK)
            return st;
        if (!(backend_buft_flags(L->half[d][i]->buft) & HEARTH_BUFT_HOST))
            return err_set(HEARTH_ERR_BACKEND,
                           "sched: host buffer type %s of %s is not host-visible",
                           ht->ops->name, sd->dev->ops->backend);
    }
    return HEARTH_OK;
}

/* Uploads n bytes from host memory src into buf, double-buffered through the staging. */
static hearth_status upload(struct loader *L, int d, struct hearth_buffer *buf, const void *src,
                            size_t n)
{
    hearth_status st = loader_switch(L, d);
    if (st != HEARTH_OK)
        return st;
    struct hearth_stream *stream = L->s->dev[d].stream;
    const size_t chunk = L->s->staging_bytes;
    for (size_t off = 0; off < n; off += chunk) {
        size_t len = n - off < chunk ? n - off : chunk;
        unsigned h = L->next[d]++ & 1u;
        if ((st = backend_event_synchronize(L->ev[d][h])) != HEARTH_OK)
            return st;
        memcpy(backend_buffer_base(L->half[d][h]), (const uint8_t *)src + off, len);
        if ((st = backend_stream_set_async(stream, buf, off, backend_buffer_base(L->half[d][h]),
                                           len)) != HEARTH_OK ||
            (st = backend_event_record(L->ev[d][h])) != HEARTH_OK)
            return st;
    }
    return HEARTH_OK;
}

/*
 * Places rows [row0, row0 + n_rows) of weight w (absent: out->buf = NULL) on
 * device d as tensor `name`: wrapped in place when d computes on host memory
 * and mapping is allowed, else allocated and uploaded.
 */
static hearth_status load_rows(struct loader *L, int d, const struct model_weight *w,
                               const char *name, enum hearth_op_kind op, int64_t row0,
                               int64_t n_rows, struct hearth_tensor *out)
{
    struct sched *s = L->s;
    memset(out, 0, sizeof *out);
    if (!w->data)
        return HEARTH_OK;
    struct sdev *sd = &s->dev[d];
    if (!backend_device_supports_op(sd->dev, op, w->type)) {
        char nb[32];
        return err_set(HEARTH_ERR_UNSUPPORTED, "sched: %s: device %s has no %s for type %s",
                       name, sched__dev_name(s, d, nb), backend_op_name(op),
                       hearth_dtype_name(w->type) ? hearth_dtype_name(w->type) : "?");
    }
    const uint8_t *data = (const uint8_t *)w->data + w->row_bytes * (size_t)row0;
    size_t size = w->row_bytes * (size_t)n_rows;
    struct hearth_device_props props;
    backend_device_props(sd->dev, &props);
    struct hearth_buffer *b = NULL;
    hearth_status st;
    if (s->map_host && props.host_memory) {
        if ((st = backend_buffer_from_host_ptr((void *)(uintptr_t)data, size, &b)) !=
            HEARTH_OK)
            return st;
    } else {
        char what[96];
        snprintf(what, sizeof what, "tensor '%s'", name);
        /* rounded as the plan rounds every tensor (plan_align_up) */
        if ((st = sched__alloc_on(s, d, backend_device_buffer_type(sd->dev),
                                  (size_t)plan_align_up(size), what, &b)) != HEARTH_OK)
            return st;
        if ((st = upload(L, d, b, data, size)) != HEARTH_OK) {
            backend_buffer_free(b);
            return err_prefix(st, "sched: uploading '%s'", name);
        }
    }
    if ((st = track(s, b)) != HEARTH_OK)
        return st;
    out->buf = b;
    out->offset = 0;
    out->type = w->type;
    out->ne0 = w->n_in;
    out->n_rows = n_rows;
    out->row_stride = w->row_bytes;
    return HEARTH_OK;
}

static hearth_status load_weight(struct loader *L, int d, const struct model_weight *w,
                                 const char *name, enum hearth_op_kind op,
                                 struct hearth_tensor *out)
{
    return load_rows(L, d, w, name, op, 0, w->n_out, out);
}

/*
 * The LM head's matrix on device d, in as many row ranges as its largest
 * buffer needs (plan_head_split_rows, the split the plan counted): one
 * LOGITS op per range then writes adjacent columns of the logits.
 */
static hearth_status load_head(struct loader *L, int d, const struct model_weight *w,
                               const char *name)
{
    struct sched *s = L->s;
    struct hearth_device_props props;
    backend_device_props(s->dev[d].dev, &props);
    const bool maps = s->map_host && props.host_memory;
    const uint64_t rows = maps ? (uint64_t)w->n_out
                               : plan_head_split_rows(w->row_bytes, (uint64_t)w->n_out,
                                                      backend_device_max_buffer(s->dev[d].dev));
    if (rows == 0) {
        char nb[32];
        return err_set(HEARTH_ERR_UNSUPPORTED, "sched: %s: rows of %zu bytes cannot be split "
                       "to fit the largest buffer of %s (%llu bytes)", name, w->row_bytes,
                       sched__dev_name(s, d, nb),
                       (unsigned long long)backend_device_max_buffer(s->dev[d].dev));
    }
    const int n = (int)(((uint64_t)w->n_out + rows - 1) / rows);
    s->output = calloc((size_t)n, sizeof *s->output);
    if (!s->output)
        return err_set(HEARTH_ERR_NO_MEMORY, "sched: %d parts of %s", n, name);
    s->n_output = n;
    for (int k = 0; k < n; k++) {
        const int64_t r0 = (int64_t)rows * k;
        const int64_t nr = w->n_out - r0 < (int64_t)rows ? w->n_out - r0 : (int64_t)rows;
        char part[128];
        if (n > 1)
            snprintf(part, sizeof part, "%s rows %lld-%lld", name, (long long)r0,
                     (long long)(r0 + nr - 1));
        else
            snprintf(part, sizeof part, "%s", name);
        hearth_status st = load_rows(L, d, w, part, HEARTH_OP_LOGITS, r0, nr, &s->output[k]);
        if (st != HEARTH_OK)
            return st;
    }
    return HEARTH_OK;
}

static const struct {
    const char *name;
    size_t off; /* of the model_weight in model_layer, and of the tensor in slayer */
    size_t toff;
    enum hearth_op_kind op;
    enum placement_block blk;
} k_layer_tensors[] = {
#define LT(gguf, mw, sl, op, blk) \
    {gguf, offsetof(struct model_layer, mw), offsetof(struct slayer, sl), op, blk}
    LT("attn_norm", attn_norm, attn_norm, HEARTH_OP_RMSNORM, PLACEMENT_ATTN),
    LT("attn_q", wq, wq, HEARTH_OP_MATMUL, PLACEMENT_ATTN),
    LT("attn_k", wk, wk, HEARTH_OP_MATMUL, PLACEMENT_ATTN),
    LT("attn_v", wv, wv, HEARTH_OP_MATMUL, PLACEMENT_ATTN),
    LT("attn_output", wo, wo, HEARTH_OP_MATMUL, PLACEMENT_ATTN),
    LT("attn_q.bias", bq, bq, HEARTH_OP_ADD, PLACEMENT_ATTN),
    LT("attn_k.bias", bk, bk, HEARTH_OP_ADD, PLACEMENT_ATTN),
    LT("attn_v.bias", bv, bv, HEARTH_OP_ADD, PLACEMENT_ATTN),
    LT("attn_output.bias", bo, bo, HEARTH_OP_ADD, PLACEMENT_ATTN),
    LT("attn_q_norm", q_norm, q_norm, HEARTH_OP_ATTENTION, PLACEMENT_ATTN),
    LT("attn_k_norm", k_norm, k_norm, HEARTH_OP_ATTENTION, PLACEMENT_ATTN),
    LT("post_attention_norm", post_attn_norm, post_attn_norm, HEARTH_OP_ADD, PLACEMENT_ATTN),
    LT("ffn_norm", ffn_norm, ffn_norm, HEARTH_OP_RMSNORM, PLACEMENT_FFN),
    LT("ffn_gate", ffn_gate, gate, HEARTH_OP_MATMUL, PLACEMENT_FFN),
    LT("ffn_up", ffn_up, up, HEARTH_OP_MATMUL, PLACEMENT_FFN),
    LT("ffn_down", ffn_down, down, HEARTH_OP_MATMUL, PLACEMENT_FFN_DOWN),
    LT("post_ffw_norm", post_ffn_norm, post_ffn_norm, HEARTH_OP_ADD, PLACEMENT_FFN_DOWN),
#undef LT
};

uint64_t sched_device_fixed_bytes(const struct model *m, int n_batch, bool with_output)
{
    const struct model_hparams *hp = &m->hp;
    const uint64_t B = n_batch > 0 ? (uint64_t)n_batch : 64;
    return plan_act_bytes(B, hp->n_embd, (uint64_t)hp->n_head * hp->head_dim,
                          (uint64_t)hp->n_head_kv * hp->head_dim, hp->n_ff, hp->n_vocab, true,
                          with_output ? B : 0) +
           plan_stage_bytes(B, hp->n_embd);
}

/* The packed activation buffer of device d and the views into it (plan_act_bytes' layout). */
static hearth_status make_activations(struct sched *s, int d, bool embd, bool out)
{
    const struct model_hparams *hp = &s->m->hp;
    struct sdev *sd = &s->dev[d];
    const int64_t B = s->n_batch, E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim,
                  KV = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    const int64_t width[ACT_N] = {E, E, Q, KV, KV, Q, E, F, F};
    size_t off[ACT_N + 3], total = 0;
    for (int i = 0; i < ACT_N; i++) {
        off[i] = total;
        total += (size_t)(B * width[i]) * sizeof(float);
    }
    off[ACT_N] = total; /* ids */
    total += embd ? (size_t)B * sizeof(int32_t) : 0;
    total = (size_t)plan_align_up(total);
    off[ACT_N + 1] = total; /* logits */
    total = (size_t)plan_act_bytes((uint64_t)B, (uint64_t)E, (uint64_t)Q, (uint64_t)KV,
                                   (uint64_t)F, hp->n_vocab, embd, out ? (uint64_t)s->n_logits : 0);
    hearth_status st = sched__alloc_on(s, d, backend_device_buffer_type(sd->dev), total,
                                       "activations", &sd->act);
    if (st != HEARTH_OK)
        return st;
    for (int i = 0; i < ACT_N; i++)
        backend_tensor_2d(&sd->a[i], sd->act, off[i], HEARTH_DTYPE_F32, width[i], B);
    if (embd)
        backend_tensor_2d(&sd->ids, sd->act, off[ACT_N], HEARTH_DTYPE_I32, B, 1);
    if (out)
        backend_tensor_2d(&sd->logits, sd->act, off[ACT_N + 1], HEARTH_DTYPE_F32, hp->n_vocab,
                          s->n_logits);
    /* the staging of boundary moves: host-visible, one batch of x (and of the GLU output) */
    struct hearth_buffer_type *ht = backend_device_host_buffer_type(sd->dev);
    uint64_t stage = sd->glu_in ? plan_glu_stage_bytes((uint64_t)B, (uint64_t)E, (uint64_t)F)
                                : plan_stage_bytes((uint64_t)B, (uint64_t)E);
    st = sched__alloc_on(s, d, ht, (size_t)stage, "boundary staging", &sd->stage);
    if (st != HEARTH_OK)
        return st;
    if (!(backend_buft_flags(sd->stage->buft) & HEARTH_BUFT_HOST))
        return err_set(HEARTH_ERR_BACKEND, "sched: host buffer type %s is not host-visible",
                       ht->ops->name);
    return HEARTH_OK;
}

static hearth_status check_params(const struct model *m, const struct sched_params *p,
                                  const struct placement *pl)
{
    if (p->n_devices < 1 || p->n_devices > SCHED_MAX_DEVICES || !p->devices)
        return err_set(HEARTH_ERR_INVALID_ARG, "sched: %d devices, expected 1..%d",
                       p->n_devices, SCHED_MAX_DEVICES);
    for (int i = 0; i < p->n_devices; i++)
        if (!p->devices[i])
            return err_set(HEARTH_ERR_INVALID_ARG, "sched: device %d is NULL", i);
    if (pl->n_layer != m->hp.n_layer)
        return err_set(HEARTH_ERR_INVALID_ARG, "sched: placement of %u layers for a model of %u",
                       pl->n_layer, m->hp.n_layer);
    int bad = -1;
    if (pl->embd_dev < 0 || pl->embd_dev >= p->n_devices)
        bad = pl->embd_dev;
    if (pl->out_dev < 0 || pl->out_dev >= p->n_devices)
        bad = pl->out_dev;
    for (size_t i = 0; i < PLACEMENT_N_BLOCKS * (size_t)pl->n_layer; i++)
        if (pl->block_dev[i] < 0 || pl->block_dev[i] >= p->n_devices)
            bad = pl->block_dev[i];
    if (bad != -1)
        return err_set(HEARTH_ERR_INVALID_ARG, "sched: placement names device %d of %d", bad,
                       p->n_devices);
    return HEARTH_OK;
}

/* The planner's options that decide the exact window, for this sched. */
static struct plan_opts window_opts(const struct sched *s)
{
    struct plan_opts o;
    memset(&o, 0, sizeof o);
    o.n_ctx = s->n_ctx;
    o.kv_type_k = s->kv_type_k;
    o.kv_type_v = s->kv_type_v;
    o.kv_window = s->kv_window;
    o.swa_full = s->swa_full;
    return o;
}

/* The sliding window of layer il (0: a global layer), as plan_kv_layer_window takes it. */
static uint32_t layer_swa(const struct sched *s, uint32_t il)
{
    return s->m->layers[il].is_swa ? s->m->hp.sliding_window : 0;
}

/*
 * The rings of layer il on device d (kv_window > 0): one buffer of n_seq
 * blocks, each the K ring, the V ring and the tags back to back, every byte
 * 0xff so that every tag is -1 (the rings' NaN halves are never read: no
 * tag matches).
 */
static hearth_status alloc_ring(struct sched *s, int d, uint32_t il)
{
    const struct model_hparams *hp = &s->m->hp;
    struct slayer *sl = &s->layers[il];
    const struct plan_opts o = window_opts(s);
    sl->kv_window = plan_kv_layer_window(&o, layer_swa(s, il));
    if (sl->kv_window == 0)
        return HEARTH_OK;
    const int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim, W = sl->kv_window;
    const size_t per = (size_t)plan_kv_window_bytes(&o, layer_swa(s, il), hp->n_head_kv,
                                                    hp->head_dim, hp->head_dim),
                 half = (size_t)W * (size_t)kv_dim * 2;
    struct hearth_buffer *rb = NULL;
    char name[64];
    snprintf(name, sizeof name, "exact KV window of layer %u", il);
    hearth_status st;
    if ((st = sched__alloc_on(s, d, backend_device_buffer_type(s->dev[d].dev),
                              per * (size_t)s->n_seq, name, &rb)) != HEARTH_OK ||
        (st = track(s, rb)) != HEARTH_OK || (st = backend_buffer_clear(rb, 0xff)) != HEARTH_OK)
        return st;
    backend_tensor_2d(&sl->k_ring, rb, 0, HEARTH_DTYPE_F16, kv_dim, W);
    backend_tensor_2d(&sl->v_ring, rb, half, HEARTH_DTYPE_F16, kv_dim, W);
    backend_tensor_2d(&sl->ring_pos, rb, 2 * half, HEARTH_DTYPE_I32, W, 1);
    sl->ring_seq_stride = per;
    s->kv_bytes += per * (size_t)s->n_seq;
    return HEARTH_OK;
}

static hearth_status load_all(struct sched *s, struct loader *L)
{
    const struct model *m = s->m;
    const struct model_hparams *hp = &m->hp;
    const struct placement *pl = s->pl;
    hearth_status st;
    /* activations and streams first: they are needed whatever the weights are */
    s->dev[pl->embd_dev].used = s->dev[pl->out_dev].used = true;
    for (size_t i = 0; i < PLACEMENT_N_BLOCKS * (size_t)pl->n_layer; i++)
        s->dev[pl->block_dev[i]].used = true;
    for (uint32_t il = 0; il < pl->n_layer; il++) {
        int dd = placement_get(pl, il, PLACEMENT_FFN_DOWN);
        if (placement_get(pl, il, PLACEMENT_FFN) != dd)
            s->dev[dd].glu_in = true;
    }
    if ((st = sched__stream_mark(s)) != HEARTH_OK)
        return st;
    for (int d = 0; d < s->n_dev; d++) {
        if (!s->dev[d].used)
            continue;
        if ((st = backend_stream_create(s->dev[d].dev, &s->dev[d].stream)) != HEARTH_OK ||
            (st = make_activations(s, d, d == pl->embd_dev, d == pl->out_dev)) != HEARTH_OK)
            return st;
    }
    if ((st = load_weight(L, pl->embd_dev, &m->tok_embd, "token_embd.weight", HEARTH_OP_EMBED,
                          &s->tok_embd)) != HEARTH_OK)
        return st;
    char name[96];
    const int kt = s->kv_type_k, vt = s->kv_type_v;
    const uint64_t k_row = plan_kv_row_bytes(kt, hp->n_head_kv, hp->head_dim);
    const uint64_t v_row = plan_kv_row_bytes(vt, hp->n_head_kv, hp->head_dim);
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const struct model_layer *ly = &m->layers[il];
        struct slayer *sl = &s->layers[il];
        const struct plan_opts wo = window_opts(s);
        const struct model_weight *qn, *kn;
        model_qk_norms(m, il,
                       kvq_is_rotated((enum kvq_type)kt) &&
                           plan_kv_layer_codes(&wo, layer_swa(s, il)),
                       &qn, &kn);
        for (size_t i = 0; i < sizeof k_layer_tensors / sizeof k_layer_tensors[0]; i++) {
            const size_t off = k_layer_tensors[i].off;
            const struct model_weight *w =
                off == offsetof(struct model_layer, q_norm)   ? qn
                : off == offsetof(struct model_layer, k_norm) ? kn
                : (const struct model_weight *)(const void *)((const char *)ly + off);
            struct hearth_tensor *t =
                (struct hearth_tensor *)(void *)((char *)sl + k_layer_tensors[i].toff);
            snprintf(name, sizeof name, "blk.%u.%s%s", il, k_layer_tensors[i].name,
                     strstr(k_layer_tensors[i].name, ".bias") ? "" : ".weight");
            int d = placement_get(pl, il, k_layer_tensors[i].blk);
            if ((st = load_weight(L, d, w, name, k_layer_tensors[i].op, t)) != HEARTH_OK)
                return st;
        }
        int d = placement_get(pl, il, PLACEMENT_ATTN);
        struct hearth_buffer_type *bt = backend_device_buffer_type(s->dev[d].dev);
        if (!backend_device_supports_kv(s->dev[d].dev, kt, vt)) {
            struct hearth_device_props pr;
            backend_device_props(s->dev[d].dev, &pr);
            return err_set(HEARTH_ERR_UNSUPPORTED,
                           "sched: %s has no attention over a K %s / V %s cache (layer %u)",
                           pr.name, kvq_type_name(kt), kvq_type_name(vt), il);
        }
        if (plan_kv_layer_window(&wo, layer_swa(s, il)) > 0 &&
            plan_kv_layer_codes(&wo, layer_swa(s, il)) &&
            !backend_device_supports_kv_window(s->dev[d].dev, kt, vt)) {
            struct hearth_device_props pr;
            backend_device_props(s->dev[d].dev, &pr);
            return err_set(HEARTH_ERR_UNSUPPORTED,
                           "sched: %s does not implement the exact KV window (ATTENTION step 5) "
                           "over a K %s / V %s cache (layer %u, kv_window %u)",
                           pr.name, kvq_type_name(kt), kvq_type_name(vt), il,
                           plan_kv_layer_window(&wo, layer_swa(s, il)));
        }
        struct hearth_buffer *kb = NULL, *vb = NULL;
        /*
         * One K and one V buffer of n_seq * n_ctx rows (sequence q at rows
         * [q n_ctx, (q+1) n_ctx)) and n_seq aux blocks in one buffer: the
         * plan's plan_kv_layer_bytes for n_parallel = n_seq, byte for byte.
         * A ring-only layer has neither buffer: its ring is all it reads.
         */
        sl->ring_only = !plan_kv_layer_codes(&wo, layer_swa(s, il));
        if (sl->ring_only && !backend_device_supports_kv_ring_only(s->dev[d].dev, kt, vt)) {
            struct hearth_device_props pr;
            backend_device_props(s->dev[d].dev, &pr);
            return err_set(HEARTH_ERR_UNSUPPORTED,
                           "sched: %s cannot run layer %u from its ring alone (ATTENTION step "
                           "6, backend ABI 4, K %s / V %s): a sliding-window layer keeps only "
                           "its window there",
                           pr.name, il, kvq_type_name(kt), kvq_type_name(vt));
        }
        if (sl->ring_only) {
            if ((st = alloc_ring(s, d, il)) != HEARTH_OK)
                return st;
            for (int q = 0; q < s->n_seq; q++)
                s->seq_ring[q] = (struct kv_ring_track){.swa = hp->sliding_window,
                                                        .slots = sl->kv_window};
        }
        const uint64_t ctx_rows = sl->ring_only ? 0 : (uint64_t)s->n_ctx * (uint64_t)s->n_seq;
        const size_t kbytes = (size_t)plan_kv_buffer_bytes(k_row, ctx_rows);
        const size_t vbytes = (size_t)plan_kv_buffer_bytes(v_row, ctx_rows);
        snprintf(name, sizeof name, "KV cache K (%s) of layer %u", kvq_type_name(kt), il);
        if (!sl->ring_only &&
            ((st = sched__alloc_on(s, d, bt, kbytes, name, &kb)) != HEARTH_OK ||
             (st = track(s, kb)) != HEARTH_OK))
            return st;
        snprintf(name, sizeof name, "KV cache V (%s) of layer %u", kvq_type_name(vt), il);
        if (!sl->ring_only &&
            ((st = sched__alloc_on(s, d, bt, vbytes, name, &vb)) != HEARTH_OK ||
             (st = track(s, vb)) != HEARTH_OK))
            return st;
        if (!sl->ring_only && (st = alloc_ring(s, d, il)) != HEARTH_OK)
            return st;
        sl->k_seq_stride = sl->ring_only ? 0 : (size_t)k_row * s->n_ctx;
        sl->v_seq_stride = sl->ring_only ? 0 : (size_t)v_row * s->n_ctx;
        s->kv_bytes += kbytes + vbytes;
        if (kt != KVQ_F16) {
            struct hearth_buffer *ab = NULL;
            const int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
            const size_t aux = (size_t)plan_kv_aux_bytes(kt, hp->n_head_kv, hp->head_dim);
            snprintf(name, sizeof name, "key mean and sink of layer %u", il);
            if ((st = sched__alloc_on(s, d, bt, aux * (size_t)s->n_seq, name, &ab)) != HEARTH_OK ||
                (st = track(s, ab)) != HEARTH_OK || (st = backend_buffer_clear(ab, 0)) != HEARTH_OK)
                return st;
            backend_tensor_2d(&sl->k_aux, ab, 0, HEARTH_DTYPE_F32, kv_dim, 2);
            sl->aux_seq_stride = aux;
            s->kv_bytes += aux * (size_t)s->n_seq;
        }
        /* f16 rows are halves; the compressed types' rows are bytes (backend.h ATTENTION) */
        if (sl->ring_only)
            continue; /* k_cache and v_cache stay absent */
        if (kt == KVQ_F16)
            backend_tensor_2d(&sl->k_cache, kb, 0, HEARTH_DTYPE_F16,
                              (int64_t)hp->n_head_kv * hp->head_dim, s->n_ctx);
        else
            backend_tensor_2d(&sl->k_cache, kb, 0, HEARTH_DTYPE_I8, (int64_t)k_row, s->n_ctx);
        if (vt == KVQ_F16)
            backend_tensor_2d(&sl->v_cache, vb, 0, HEARTH_DTYPE_F16,
                              (int64_t)hp->n_head_kv * hp->head_dim, s->n_ctx);
        else
            backend_tensor_2d(&sl->v_cache, vb, 0, HEARTH_DTYPE_I8, (int64_t)v_row, s->n_ctx);
    }
    /* RoPE divisors on every device with an attention block */
    if (m->rope_freqs.data) {
        for (int d = 0; d < s->n_dev; d++) {
            bool has_attn = false;
            for (uint32_t il = 0; il < hp->n_layer; il++)
                has_attn |= placement_get(pl, il, PLACEMENT_ATTN) == d;
            if (has_attn && (st = load_weight(L, d, &m->rope_freqs, "rope_freqs.weight",
                                              HEARTH_OP_ATTENTION, &s->dev[d].rope_divs)) !=
                                HEARTH_OK)
                return st;
        }
    }
    if ((st = load_weight(L, pl->out_dev, &m->output_norm, "output_norm.weight",
                          HEARTH_OP_RMSNORM, &s->output_norm)) != HEARTH_OK)
        return st;
    const bool tied = m->output.data == m->tok_embd.data;
    if (tied && pl->out_dev == pl->embd_dev && s->tok_embd.buf &&
        backend_device_supports_op(s->dev[pl->out_dev].dev, HEARTH_OP_LOGITS, m->output.type)) {
        /* one copy serves both (the plan counts one) */
        if (!(s->output = malloc(sizeof *s->output)))
            return err_set(HEARTH_ERR_NO_MEMORY, "sched: output head");
        s->output[0] = s->tok_embd;
        s->n_output = 1;
    } else if ((st = load_head(L, pl->out_dev, &m->output,
                               tied ? "token_embd.weight (as output)" : "output.weight")) !=
               HEARTH_OK) {
        return st;
    }
    for (int d = 0; d < s->n_dev; d++)
        if (s->dev[d].used && (st = backend_stream_synchronize(s->dev[d].stream)) != HEARTH_OK)
            return st;
    return sched__stream_setup(s, L);
}

hearth_status sched_create(const struct model *m, const struct sched_params *params,
                           struct sched **out)
{
    *out = NULL;
    struct sched_params p = params ? *params : sched_params_default();
    const struct model_hparams *hp = &m->hp;
    if (p.n_batch <= 0)
        p.n_batch = 64;
    if (p.n_batch > 4096)
        return err_set(HEARTH_ERR_INVALID_ARG, "sched: n_batch %d, at most 4096", p.n_batch);
    uint32_t n_ctx = p.n_ctx ? p.n_ctx : hp->n_ctx_train;
    if (n_ctx == 0 || n_ctx > (1u << 24))
        return err_set(HEARTH_ERR_INVALID_ARG, "sched: n_ctx %u out of range [1, 2^24]", n_ctx);
    if (p.n_seq <= 0)
        p.n_seq = 1;
    if (p.n_seq > 4096 || (uint64_t)p.n_seq * n_ctx > (1ull << 26))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "sched: n_seq %d x n_ctx %u, expected n_seq <= 4096 and at most 2^26 "
                       "positions in all",
                       p.n_seq, n_ctx);
    hearth_status st;
    if ((st = kvq_check((enum kvq_type)p.kv_type_k, (int)hp->head_dim)) != HEARTH_OK ||
        (st = kvq_check((enum kvq_type)p.kv_type_v, (int)hp->head_dim)) != HEARTH_OK)
        return st;
    struct placement *own = NULL;
    if (p.placement)
        st = placement_clone(p.placement, &own);
    else
        st = placement_create(hp->n_layer, 0, &own);
    if (st != HEARTH_OK)
        return st;
    if ((st = check_params(m, &p, own)) != HEARTH_OK) {
        placement_free(own);
        return st;
    }
    struct sched *s = calloc(1, sizeof *s);
    if (!s) {
        placement_free(own);
        return err_set(HEARTH_ERR_NO_MEMORY, "sched: out of memory");
    }
    s->m = m;
    s->pl = own;
    s->n_dev = p.n_devices;
    s->n_ctx = n_ctx;
    s->n_batch = p.n_batch;
    s->n_logits = p.n_logits > 0 && p.n_logits < p.n_batch ? p.n_logits : p.n_batch;
    s->map_host = p.map_host_weights;
    s->staging_bytes = p.staging_bytes ? p.staging_bytes : (size_t)PLAN_UPLOAD_HALF;
    s->kv_type_k = p.kv_type_k;
    s->kv_type_v = p.kv_type_v;
    s->kv_seed = model_kv_seed(m);
    /* forward.c's rule: at most n_ctx, none for an f16/f16 cache (exact everywhere) */
    if (p.kv_type_k != KVQ_F16 || p.kv_type_v != KVQ_F16)
        s->kv_window = p.kv_window < n_ctx ? p.kv_window : n_ctx;
    s->swa_full = p.swa_full;
    s->oom = p.oom;
    if (s->oom)
        *s->oom = (struct sched_oom){.dev = -1};
    for (int d = 0; d < s->n_dev; d++)
        s->dev[d].dev = p.devices[d];
    struct loader L = {.s = s};
    s->n_seq = p.n_seq;
    s->layers = calloc(hp->n_layer, sizeof *s->layers);
    s->seq_used = calloc((size_t)s->n_seq, sizeof *s->seq_used);
    s->seq_ring = calloc((size_t)s->n_seq, sizeof *s->seq_ring);
    s->seq_next = calloc((size_t)s->n_seq, sizeof *s->seq_next);
    s->seq_last = calloc((size_t)s->n_seq, sizeof *s->seq_last);
    s->runs = calloc((size_t)s->n_batch, sizeof *s->runs);
    s->want = calloc((size_t)s->n_batch, sizeof *s->want);
    s->ops = calloc((size_t)s->n_batch + 4, sizeof *s->ops);
    s->tok_host = calloc((size_t)s->n_batch, sizeof *s->tok_host);
    /* the widest ring: a sliding-window layer's may exceed kv_window */
    uint32_t w_max = 1;
    const struct plan_opts wo = window_opts(s);
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        uint32_t w = plan_kv_layer_window(&wo, layer_swa(s, il));
        w_max = w > w_max ? w : w_max;
    }
    s->ring_reset = malloc(w_max * sizeof *s->ring_reset);
    for (uint32_t i = 0; s->ring_reset && i < w_max; i++)
        s->ring_reset[i] = -1;
    if (!s->layers || !s->seq_used || !s->seq_ring || !s->seq_next || !s->seq_last || !s->runs || !s->want ||
        !s->ops || !s->ring_reset || !s->tok_host)
        st = err_set(HEARTH_ERR_NO_MEMORY, "sched: out of memory for %u layers, %d sequences",
                     hp->n_layer, s->n_seq);
    else
        st = load_all(s, &L);
    loader_release(&L);
    if (st != HEARTH_OK) {
        sched_destroy(s);
        return st;
    }
    *out = s;
    return HEARTH_OK;
}

void sched_destroy(struct sched *s)
{
    if (!s)
        return;
    for (int d = 0; d < s->n_dev; d++)
        if (s->dev[d].stream)
            backend_stream_synchronize(s->dev[d].stream);
    sched__stream_release(s);
    for (int i = 0; i < s->n_bufs; i++)
        backend_buffer_free(s->bufs[i]);
    for (int d = 0; d < s->n_dev; d++) {
        backend_buffer_free(s->dev[d].act);
        backend_buffer_free(s->dev[d].stage);
        backend_stream_destroy(s->dev[d].stream);
    }
    free(s->bufs);
    free(s->output);
    free(s->layers);
    free(s->seq_used);
    free(s->seq_ring);
    free(s->seq_next);
    free(s->seq_last);
    free(s->runs);
    free(s->want);
    free(s->tok_host);
    free(s->ops);
    free(s->ring_reset);
    placement_free(s->pl);
    free(s);
}

hearth_status sched_placement_ngl(const struct model *m, uint32_t n_ctx, int n_batch, int ngl,
                                  struct hearth_device *gpu, uint64_t margin_bytes, int gpu_idx,
                                  int cpu_idx, struct placement *p, int *ngl_used)
{
    if (p->n_layer != m->hp.n_layer)
        return err_set(HEARTH_ERR_INVALID_ARG, "sched: placement of %u layers for a model of %u",
                       p->n_layer, m->hp.n_layer);
    if (ngl == PLACEMENT_NGL_AUTO) {
        uint64_t fr = 0, tot = 0;
        backend_device_memory(gpu, &fr, &tot);
        uint64_t margin = margin_bytes ? margin_bytes : 512ull << 20;
        uint32_t ctx = n_ctx ? n_ctx : m->hp.n_ctx_train;
        /* the output head brings the logits buffer: offload it only if that fits too */
        int with_head = placement_auto_ngl(m, ctx, fr, margin,
                                           sched_device_fixed_bytes(m, n_batch, true));
        if (with_head > (int)m->hp.n_layer) {
            ngl = with_head;
        } else {
            ngl = placement_auto_ngl(m, ctx, fr, margin,
                                     sched_device_fixed_bytes(m, n_batch, false));
            if (ngl > (int)m->hp.n_layer)
                ngl = (int)m->hp.n_layer;
        }
    }
    hearth_status st = placement_from_ngl(p, ngl, gpu_idx, cpu_idx);
    if (st == HEARTH_OK && ngl_used)
        *ngl_used = ngl;
    return st;
}

uint32_t sched_n_ctx(const struct sched *s)
{
    return s->n_ctx;
}

uint32_t sched_n_past(const struct sched *s)
{
    return s->seq_used[0];
}

int sched_n_seq(const struct sched *s)
{
    return s->n_seq;
}

bool sched_seq_can_resume(const struct sched *s, int seq, uint32_t pos)
{
    return seq >= 0 && seq < s->n_seq && pos <= s->seq_used[seq] &&
           kv_ring_can_eval(&s->seq_ring[seq], pos);
}

uint32_t sched_seq_n_past(const struct sched *s, int seq)
{
    return seq >= 0 && seq < s->n_seq ? s->seq_used[seq] : 0;
}

void sched_seq_clear(struct sched *s, int seq)
{
    if (seq < 0 || seq >= s->n_seq)
        return;
    s->seq_used[seq] = 0;
    s->seq_ring[seq].lo = 0;
    /*
     * Empty the sequence's ring tags too. Not needed for the bits (a cleared
     * sequence writes every position before it reads it, and each write
     * retags its slot) but a reused slot then starts as a fresh one would.
     * A failure leaves tags that still only match positions they hold, so
     * it is ignored (this function has no status).
     */
    for (uint32_t il = 0; il < s->m->hp.n_layer; il++) {
        const struct slayer *sl = &s->layers[il];
        if (sl->kv_window == 0)
            continue;
        int d = placement_get(s->pl, il, PLACEMENT_ATTN);
        if (s->dev[d].stream)
            (void)backend_stream_synchronize(s->dev[d].stream);
        (void)backend_buffer_set(sl->ring_pos.buf,
                                 sl->ring_pos.offset + (size_t)seq * sl->ring_seq_stride,
                                 s->ring_reset, (size_t)sl->kv_window * sizeof *s->ring_reset);
    }
}

uint64_t sched_kv_bytes(const struct sched *s)
{
    return s->kv_bytes;
}

uint64_t sched_device_bytes(const struct sched *s, int d)
{
    return d >= 0 && d < s->n_dev ? s->dev[d].bytes : 0;
}

int sched_output_parts(const struct sched *s)
{
    return s->n_output;
}

double sched_device_seconds(const struct sched *s, int d)
{
    return d >= 0 && d < s->n_dev ? s->dev[d].busy_s : 0.0;
}

double sched_transfer_seconds(const struct sched *s)
{
    return s->xfer_s;
}

void sched_time_reset(struct sched *s)
{
    for (int d = 0; d < s->n_dev; d++)
        s->dev[d].busy_s = 0.0;
    s->xfer_s = 0.0;
}

uint64_t sched_n_moves(const struct sched *s)
{
    return s->n_moves;
}

uint64_t sched_n_glu_moves(const struct sched *s)
{
    return s->n_glu_moves;
}
