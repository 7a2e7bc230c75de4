/*
 * vulkan/graph: runs core/backend.h op lists on the vk_* ops, one switch
 * case per op kind, each a few dispatches recorded in order:
 *   EMBED      vk_embed
 *   RMSNORM    vk_rmsnorm
 *   MATMUL     vk_matmul_group: 1-3 weights, one dispatch where they share a
 *              kernel and buffers (bias fused into the matmul shader)
 *   ATTENTION  [vk_rmsnorm q, k per head] -> vk_rope q, k -> vk_attention
 *              (K/V append + attention)
 *   GLU        vk_swiglu / vk_geglu
 *   ADD        [vk_rmsnorm y in place] -> vk_add
 *   LOGITS     vk_rmsnorm into stream scratch -> vk_matmul
 * Strided rows that are not packed fall back to one dispatch per row.
 * RoPE frequencies: the contract gives rope_divs as a device tensor and
 * asks for angles "computed in double"; the table base^(-2k/n_rot) * scale /
 * divs[k] is made on the host in double once per (divs tensor, base, scale,
 * n_rot) and kept in a few slots (gemma3 alternates two bases), so only the
 * product pos * inv_freq is f32 on the device (docs/vulkan.md).
 * ATTENTION over a compressed cache (k_type or v_type not f16) runs the
 * same norms and RoPE, then op-attention.c's vk_attention_kvq, in the same
 * walk, so it is captured and replayed like the f16 path (its kv_center, kv_store_q and
 * attention_kvq read the position from the step buffer too).
 * Single-token lists are walked while the context captures, and replay.c
 * executes a kept recording of the same dispatches (see there).
 */
#include <stdlib.h>
#include <string.h>

#include "vk-graph.h"
#include "vk-kvq.h"

enum { FREQ_SLOTS = 4, FREQ_MAX = 256 }; /* n_rot <= 512 */

struct freq_key {
    bool used;
    const struct hearth_buffer *divs; /* NULL: no divisors */
    size_t divs_off;
    float base, scale;
    int n_rot;
};

struct vk_graph {
    struct vk_ctx *ctx;
    struct vk_buffer scratch; /* LOGITS: normed rows [n_tok][E] */
    struct vk_buffer freq;    /* [FREQ_SLOTS][FREQ_MAX] floats */
    struct freq_key keys[FREQ_SLOTS];
    int next;
    struct vk_replay *rp; /* NULL: replay off (HEARTH_VULKAN_REPLAY=0) */
    struct vk_kvq *kq;    /* compressed-KV attention state, made on first such op */
    struct vk_buffer split; /* ATTENTION: flash-decoding partials, every layer (attn-split.c) */
    uint32_t n_split;       /* vk_attn_args.n_split: 0 the rule, 1 off (HEARTH_VULKAN_ATTN_SPLIT) */
};

hearth_status vk_graph_create(struct vk_ctx *ctx, struct vk_graph **out)
{
    *out = NULL;
    struct vk_graph *g = calloc(1, sizeof *g);
    if (!g)
        return err_set(HEARTH_ERR_NO_MEMORY, "vulkan: stream state");
    g->ctx = ctx;
    hearth_status st = vk_buffer_create(ctx, FREQ_SLOTS * FREQ_MAX * 4, VK_BUF_DEVICE, &g->freq);
    if (st != HEARTH_OK) {
        free(g);
        return st;
    }
    /* HEARTH_VULKAN_ATTN_SPLIT=N forces N splits (0 or 1: the single pass), for A/B runs */
    const char *sp = getenv("HEARTH_VULKAN_ATTN_SPLIT");
    if (sp && *sp) {
        unsigned long n = strtoul(sp, NULL, 10);
        g->n_split = n < 1 ? 1 : n > 64 ? 64 : (uint32_t)n;
    }
    const char *env = getenv("HEARTH_VULKAN_REPLAY");
    if (!(env && strcmp(env, "0") == 0) && (st = vk_replay_create(ctx, &g->rp)) != HEARTH_OK) {
        vk_buffer_destroy(ctx, &g->freq);
        free(g);
        return st;
    }
    *out = g;
    return HEARTH_OK;
}

void vk_graph_destroy(struct vk_graph *g)
{
    if (!g)
        return;
    vk_submit(g->ctx);
    vk_replay_destroy(g->rp);
    vk_kvq_destroy(g->kq);
    vk_buffer_destroy(g->ctx, &g->split);
    vk_buffer_destroy(g->ctx, &g->scratch);
    vk_buffer_destroy(g->ctx, &g->freq);
    free(g);
}

static hearth_status tview(const struct hearth_tensor *t, const char *op, const char *what,
                           struct vk_view *v)
{
    struct vk_buffer *b = vk__hearth_buffer(t->buf);
    if (!b)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan %s: %s is not in a Vulkan buffer", op, what);
    v->buf = b;
    v->offset = t->offset;
    return HEARTH_OK;
}

static hearth_status fstride(const struct hearth_tensor *t, const char *op, const char *what,
                             uint32_t *out)
{
    if (t->row_stride % 4 != 0 || t->row_stride / 4 > 0xffffffffu)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan %s: %s row stride %zu is not whole floats",
                       op, what, t->row_stride);
    *out = (uint32_t)(t->row_stride / 4);
    return HEARTH_OK;
}

static struct vk_view row_of(struct vk_view v, const struct hearth_tensor *t, int r)
{
    v.offset += (uint64_t)r * t->row_stride;
    return v;
}

static hearth_status run_embed(struct vk_graph *g, const struct hearth_op *op)
{
    const struct hearth_op_embed *e = &op->u.embed;
    struct vk_embed_args a = {0};
    hearth_status st;
    uint32_t ys = 0;
    if ((st = tview(&e->table, "embed", "table", &a.w)) || (st = tview(&e->ids, "embed", "ids", &a.ids)) ||
        (st = tview(&e->out, "embed", "out", &a.y)) || (st = fstride(&e->out, "embed", "out", &ys)))
        return st;
    bool packed_ids = e->ids.n_rows == 1 || e->ids.row_stride == 4;
    if (!packed_ids || e->ids.type != HEARTH_DTYPE_I32)
        return err_set(HEARTH_ERR_UNSUPPORTED, "vulkan embed: ids must be packed I32");
    a.type = e->table.type;
    a.row_bytes = e->table.row_stride;
    a.n_in = (uint32_t)e->table.ne0;
    a.n_rows = (uint32_t)e->table.n_rows;
    a.n_ids = (uint32_t)op->n_tok;
    a.y_stride = ys;
    a.scale = e->scale;
    return vk_embed(g->ctx, &a);
}

static hearth_status run_rmsnorm(struct vk_graph *g, const struct hearth_op *op)
{
    const struct hearth_op_rmsnorm *r = &op->u.rmsnorm;
    struct vk_view x = {0}, y = {0}, w = {0};
    uint32_t xs = 0, ys = 0;
    hearth_status st;
    if ((st = tview(&r->x, "rmsnorm", "x", &x)) || (st = tview(&r->y, "rmsnorm", "y", &y)) ||
        (st = fstride(&r->x, "rmsnorm", "x", &xs)) || (st = fstride(&r->y, "rmsnorm", "y", &ys)))
        return st;
    if (r->w.buf && (st = tview(&r->w, "rmsnorm", "w", &w)))
        return st;
    return vk_rmsnorm(g->ctx, x, xs, w, y, ys, (uint32_t)r->x.ne0, (uint32_t)op->n_tok, r->eps);
}

static hearth_status run_matmul(struct vk_graph *g, const struct hearth_op *op)
{
    const struct hearth_op_matmul *m = &op->u.matmul;
    hearth_status st;
    struct vk_matmul_args a[3] = {{0}};
    uint32_t xs = 0;
    if (m->n_w < 1 || m->n_w > 3)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan: matmul of %d weights (1..3)", m->n_w);
    if ((st = tview(&m->x, "matmul", "x", &a[0].x)) || (st = fstride(&m->x, "matmul", "x", &xs)))
        return st;
    for (int i = 0; i < m->n_w; i++) {
        uint32_t ys = 0;
        a[i].x = a[0].x;
        if ((st = tview(&m->w[i], "matmul", "w", &a[i].w)) ||
            (st = tview(&m->y[i], "matmul", "y", &a[i].y)) ||
            (st = fstride(&m->y[i], "matmul", "y", &ys)))
            return st;
        if (m->b[i].buf && (st = tview(&m->b[i], "matmul", "b", &a[i].bias)))
            return st;
        a[i].type = m->w[i].type;
        a[i].row_bytes = m->w[i].row_stride;
        a[i].n_in = (uint32_t)m->w[i].ne0;
        a[i].n_out = (uint32_t)m->w[i].n_rows;
        a[i].n_tok = (uint32_t)op->n_tok;
        a[i].x_stride = xs;
        a[i].y_stride = ys;
    }
    /* q/k/v or gate/up in one dispatch where they share a kernel and buffers (op-matmul.c) */
    return vk_matmul_group(g->ctx, a, m->n_w);
}

/* Slot of the inverse-frequency table for this layer kind, made on first use. */
static hearth_status freq_table(struct vk_graph *g, const struct hearth_op_attention *at,
                                struct vk_view *out)
{
    int half = at->n_rot / 2;
    if (half < 1 || half > FREQ_MAX)
        return err_set(HEARTH_ERR_UNSUPPORTED, "vulkan attention: n_rot %d (max %d)", at->n_rot,
                       2 * FREQ_MAX);
    for (int i = 0; i < FREQ_SLOTS; i++) {
        const struct freq_key *k = &g->keys[i];
        if (k->used && k->divs == at->rope_divs.buf && k->divs_off == at->rope_divs.offset &&
            k->base == at->rope_base && k->scale == at->rope_freq_scale && k->n_rot == at->n_rot) {
            *out = (struct vk_view){&g->freq, (uint64_t)i * FREQ_MAX * 4};
            return HEARTH_OK;
        }
    }
    float divs[FREQ_MAX], inv[FREQ_MAX];
    hearth_status st;
    if (at->rope_divs.buf) {
        struct vk_view dv = {0};
        if ((st = tview(&at->rope_divs, "attention", "rope_divs", &dv)) ||
            (st = vk_buffer_download(g->ctx, dv.buf, dv.offset, divs, (uint64_t)half * 4)))
            return st;
    }
    vk_rope_inv_freq(inv, at->n_rot, at->rope_base, at->rope_freq_scale,
                     at->rope_divs.buf ? divs : NULL);
    int slot = g->next;
    g->next = (g->next + 1) % FREQ_SLOTS;
    if ((st = vk_buffer_upload(g->ctx, &g->freq, (uint64_t)slot * FREQ_MAX * 4, inv,
                               (uint64_t)half * 4)))
        return st;
    g->keys[slot] = (struct freq_key){true, at->rope_divs.buf, at->rope_divs.offset, at->rope_base,
                                      at->rope_freq_scale, at->n_rot};
    *out = (struct vk_view){&g->freq, (uint64_t)slot * FREQ_MAX * 4};
    return HEARTH_OK;
}

/* Per-head RMSNorm of n_tok rows of n_heads heads (in place). */
static hearth_status head_norm(struct vk_graph *g, const struct hearth_tensor *x, struct vk_view xv,
                               uint32_t xs, const struct hearth_tensor *w, int n_heads, int hd,
                               int n_tok, float eps)
{
    struct vk_view wv = {0};
    hearth_status st = tview(w, "attention", "qk norm", &wv);
    if (st != HEARTH_OK)
        return st;
    if (xs == (uint32_t)(n_heads * hd))
        return vk_rmsnorm(g->ctx, xv, (uint32_t)hd, wv, xv, (uint32_t)hd, (uint32_t)hd,
                          (uint32_t)(n_tok * n_heads), eps);
    for (int t = 0; t < n_tok && st == HEARTH_OK; t++)
        st = vk_rmsnorm(g->ctx, row_of(xv, x, t), (uint32_t)hd, wv, row_of(xv, x, t), (uint32_t)hd,
                        (uint32_t)hd, (uint32_t)n_heads, eps);
    return st;
}

static hearth_status run_attention(struct vk_graph *g, const struct hearth_op *op)
{
    const struct hearth_op_attention *at = &op->u.attn;
    struct vk_attn_args a = {0};
    hearth_status st;
    if ((st = tview(&at->q, "attention", "q", &a.q)) || (st = tview(&at->k, "attention", "k", &a.k_new)) ||
        (st = tview(&at->v, "attention", "v", &a.v_new)) ||
        /* a ring-only layer (backend.h step 6) has no caches: op-attention.c checks it */
        (at->k_cache.buf && (st = tview(&at->k_cache, "attention", "k_cache", &a.k_cache))) ||
        (at->v_cache.buf && (st = tview(&at->v_cache, "attention", "v_cache", &a.v_cache))) ||
        (st = tview(&at->out, "attention", "out", &a.out)) ||
        (st = fstride(&at->q, "attention", "q", &a.q_stride)) ||
        (st = fstride(&at->k, "attention", "k", &a.kv_stride)) ||
        (st = fstride(&at->out, "attention", "out", &a.o_stride)))
        return st;
    uint32_t vs = 0;
    if ((st = fstride(&at->v, "attention", "v", &vs)))
        return st;
    /*
     * a compressed cache, or a ring-only layer of any pair (vk_kvq_takes):
     * op-attention.c checks it; norms and RoPE below are shared
     */
    const bool kvq = vk_kvq_takes(at);
    struct vk_kvq_args ka = {0};
    int kvd = at->n_head_kv * at->head_dim;
    if (kvq && (st = vk_kvq_args_from_op(at, &ka)))
        return st;
    if (vs != a.kv_stride || at->pos0 < 0 || at->pos0 > 0x7fffffff ||
        (!kvq && (at->k_cache.row_stride != (size_t)kvd * 2 ||
                  at->v_cache.row_stride != (size_t)kvd * 2)))
        return err_set(HEARTH_ERR_UNSUPPORTED, "vulkan attention: k and v need one row stride and "
                       "f16 caches packed rows of %d halves (pos0 %lld)", kvd, (long long)at->pos0);
    if (at->q_norm.buf &&
        (st = head_norm(g, &at->q, a.q, a.q_stride, &at->q_norm, at->n_head, at->head_dim, op->n_tok,
                        at->norm_eps)))
        return st;
    if (at->k_norm.buf &&
        (st = head_norm(g, &at->k, a.k_new, a.kv_stride, &at->k_norm, at->n_head_kv, at->head_dim,
                        op->n_tok, at->norm_eps)))
        return st;
    struct vk_view fv = {0};
    if ((st = freq_table(g, at, &fv)))
        return st;
    enum model_rope_mode mode = at->rope_mode == HEARTH_ROPE_NEOX ? MODEL_ROPE_NEOX : MODEL_ROPE_NORMAL;
    if ((st = vk_rope(g->ctx, a.q, a.q_stride, (uint32_t)op->n_tok, (uint32_t)at->n_head,
                      (uint32_t)at->head_dim, (uint32_t)at->n_rot, (uint32_t)at->pos0, mode, fv)) ||
        (st = vk_rope(g->ctx, a.k_new, a.kv_stride, (uint32_t)op->n_tok, (uint32_t)at->n_head_kv,
                      (uint32_t)at->head_dim, (uint32_t)at->n_rot, (uint32_t)at->pos0, mode, fv)))
        return st;
    a.n_tok = (uint32_t)op->n_tok;
    a.n_head = (uint32_t)at->n_head;
    a.n_head_kv = (uint32_t)at->n_head_kv;
    a.head_dim = (uint32_t)at->head_dim;
    a.n_ctx = (uint32_t)at->k_cache.n_rows;
    a.pos0 = (uint32_t)at->pos0;
    a.window = at->window;
    a.scale = at->scale;
    a.split_scratch = &g->split;
    a.n_split = g->n_split;
    if (!kvq)
        return vk_attention(g->ctx, &a);
    if (!g->kq && (st = vk_kvq_create(g->ctx, &g->kq)))
        return st;
    ka.a = a;
    return vk_attention_kvq(g->kq, &ka);
}

static hearth_status run_glu(struct vk_graph *g, const struct hearth_op *op)
{
    const struct hearth_op_glu *gl = &op->u.glu;
    struct vk_view gv = {0}, uv = {0};
    hearth_status st;
    if ((st = tview(&gl->g, "glu", "g", &gv)) || (st = tview(&gl->u, "glu", "u", &uv)))
        return st;
    uint32_t f = (uint32_t)gl->g.ne0;
    hearth_status (*fn)(struct vk_ctx *, struct vk_view, struct vk_view, uint32_t) =
        gl->act == HEARTH_GLU_GELU_TANH ? vk_geglu : vk_swiglu;
    if (gl->g.row_stride == (size_t)f * 4 && gl->u.row_stride == (size_t)f * 4)
        return fn(g->ctx, gv, uv, f * (uint32_t)op->n_tok);
    for (int t = 0; t < op->n_tok && st == HEARTH_OK; t++)
        st = fn(g->ctx, row_of(gv, &gl->g, t), row_of(uv, &gl->u, t), f);
    return st;
}

static hearth_status run_add(struct vk_graph *g, const struct hearth_op *op)
{
    const struct hearth_op_add *ad = &op->u.add;
    struct vk_view xv = {0}, yv = {0};
    uint32_t xs = 0, ys = 0;
    hearth_status st;
    if ((st = tview(&ad->x, "add", "x", &xv)) || (st = tview(&ad->y, "add", "y", &yv)) ||
        (st = fstride(&ad->x, "add", "x", &xs)) || (st = fstride(&ad->y, "add", "y", &ys)))
        return st;
    uint32_t e = (uint32_t)ad->x.ne0;
    if (ad->w.buf) {
        struct vk_view wv = {0};
        if ((st = tview(&ad->w, "add", "w", &wv)) ||
            (st = vk_rmsnorm(g->ctx, yv, ys, wv, yv, ys, e, (uint32_t)op->n_tok, ad->eps)))
            return st;
    }
    if (xs == e && ys == e)
        return vk_add(g->ctx, xv, yv, e * (uint32_t)op->n_tok);
    for (int t = 0; t < op->n_tok && st == HEARTH_OK; t++)
        st = vk_add(g->ctx, row_of(xv, &ad->x, t), row_of(yv, &ad->y, t), e);
    return st;
}

static hearth_status run_logits(struct vk_graph *g, const struct hearth_op *op)
{
    const struct hearth_op_logits *l = &op->u.logits;
    struct vk_view xv = {0}, nw = {0};
    uint32_t xs = 0, ys = 0;
    hearth_status st;
    struct vk_matmul_args a = {0};
    if ((st = tview(&l->x, "logits", "x", &xv)) || (st = tview(&l->norm_w, "logits", "norm_w", &nw)) ||
        (st = tview(&l->out_w, "logits", "out_w", &a.w)) || (st = tview(&l->y, "logits", "y", &a.y)) ||
        (st = fstride(&l->x, "logits", "x", &xs)) || (st = fstride(&l->y, "logits", "y", &ys)))
        return st;
    uint32_t e = (uint32_t)l->x.ne0;
    uint64_t need = (uint64_t)op->n_tok * e * 4;
    if (g->scratch.size < need) {
        if ((st = vk_submit(g->ctx)))   /* recorded work may still read the old scratch */
            return st;
        vk_buffer_destroy(g->ctx, &g->scratch);
        if ((st = vk_buffer_create(g->ctx, need, VK_BUF_DEVICE, &g->scratch)))
            return err_prefix(st, "vulkan logits: scratch");
    }
    struct vk_view sv = {&g->scratch, 0};
    if ((st = vk_rmsnorm(g->ctx, xv, xs, nw, sv, e, e, (uint32_t)op->n_tok, l->eps)))
        return st;
    a.type = l->out_w.type;
    a.row_bytes = l->out_w.row_stride;
    a.n_in = e;
    a.n_out = (uint32_t)l->out_w.n_rows;
    a.n_tok = (uint32_t)op->n_tok;
    a.x = sv;
    a.x_stride = e;
    a.y_stride = ys;
    return vk_matmul(g->ctx, &a);
}

static hearth_status walk(struct vk_graph *g, const struct hearth_op *ops, int n_ops)
{
    for (int i = 0; i < n_ops; i++) {
        const struct hearth_op *op = &ops[i];
        hearth_status st;
        switch (op->kind) {
        case HEARTH_OP_EMBED: st = run_embed(g, op); break;
        case HEARTH_OP_RMSNORM: st = run_rmsnorm(g, op); break;
        case HEARTH_OP_MATMUL: st = run_matmul(g, op); break;
        case HEARTH_OP_ATTENTION:
            st = run_attention(g, op);
            break;
        case HEARTH_OP_GLU: st = run_glu(g, op); break;
        case HEARTH_OP_ADD: st = run_add(g, op); break;
        case HEARTH_OP_LOGITS: st = run_logits(g, op); break;
        default:
            st = err_set(HEARTH_ERR_UNSUPPORTED, "vulkan: op kind %d", (int)op->kind);
            break;
        }
        if (st != HEARTH_OK)
            return err_prefix(st, "op %d (kind %d)", i, (int)op->kind);
    }
    return HEARTH_OK;
}

/* Decode-shaped lists only: prefill batches differ in n_tok from call to call anyway. */
static bool single_token(const struct hearth_op *ops, int n_ops)
{
    for (int i = 0; i < n_ops; i++)
        if (ops[i].n_tok != 1)
            return false;
    return n_ops > 0;
}

hearth_status vk_graph_run(struct vk_graph *g, const struct hearth_op *ops, int n_ops)
{
    if (!g->rp || !single_token(ops, n_ops)) {
        if (g->rp)
            vk_replay_count_walk(g->rp);
        return walk(g, ops, n_ops);
    }
    vk_replay_begin(g->rp);
    return vk_replay_end(g->rp, walk(g, ops, n_ops));
}

void vk_graph_replay_stats(const struct vk_graph *g, struct vk_replay_stats *out)
{
    memset(out, 0, sizeof *out);
    if (g->rp)
        vk_replay_get_stats(g->rp, out);
}
