/*
 * cuda/graph-cache: the key and table of cuda/graph-cache.h. The table is a
 * flat array searched by hash: a model has two lists per layer and device
 * (attention, FFN) plus embedding and logits, so a few hundred entries at
 * most, and a linear scan of their hashes costs far less than the launches
 * a hit saves.
 */
#include "graph-cache.h"

#include <stdlib.h>
#include <string.h>

static void put(struct cuda_graph_cache *c, const void *p, size_t n)
{
    if (c->oom)
        return;
    if (c->len + n > c->buf_cap) {
        size_t cap = c->buf_cap ? c->buf_cap : 1024;
        while (cap < c->len + n)
            cap *= 2;
        uint8_t *nb = realloc(c->buf, cap);
        if (!nb) {
            c->oom = true;
            return;
        }
        c->buf = nb;
        c->buf_cap = cap;
    }
    memcpy(c->buf + c->len, p, n);
    c->len += n;
}

static void put_u64(struct cuda_graph_cache *c, uint64_t v)
{
    put(c, &v, sizeof v);
}

static void put_i32(struct cuda_graph_cache *c, int32_t v)
{
    put(c, &v, sizeof v);
}

static void put_f32(struct cuda_graph_cache *c, float v)
{
    put(c, &v, sizeof v);
}

static void put_tensor(struct cuda_graph_cache *c, const struct hearth_tensor *t)
{
    put_u64(c, (uint64_t)(uintptr_t)t->buf);
    put_u64(c, (uint64_t)t->offset);
    put_i32(c, (int32_t)t->type);
    put_u64(c, (uint64_t)t->ne0);
    put_u64(c, (uint64_t)t->n_rows);
    put_u64(c, (uint64_t)t->row_stride);
}

static void put_attention(struct cuda_graph_cache *c, const struct hearth_op_attention *a)
{
    const struct hearth_tensor *t[] = {&a->q, &a->k, &a->v, &a->q_norm, &a->k_norm,
                                       &a->rope_divs, &a->k_cache, &a->v_cache, &a->out,
                                       &a->k_aux, &a->k_ring, &a->v_ring, &a->ring_pos};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        put_tensor(c, t[i]);
    const int32_t iv[] = {a->n_head, a->n_head_kv, a->head_dim, a->n_rot, (int32_t)a->rope_mode,
                          a->k_type, a->v_type};
    const float fv[] = {a->rope_base, a->rope_freq_scale, a->norm_eps, a->scale};
    const uint32_t uv[] = {a->window, a->layer, a->kv_window};
    put(c, iv, sizeof iv);
    put(c, fv, sizeof fv);
    put(c, uv, sizeof uv);
    put_u64(c, a->kv_seed);
}

static void put_op(struct cuda_graph_cache *c, const struct hearth_op *op)
{
    put_i32(c, (int32_t)op->kind);
    put_i32(c, (int32_t)op->n_tok);
    switch (op->kind) {
    case HEARTH_OP_EMBED:
        put_tensor(c, &op->u.embed.table);
        put_tensor(c, &op->u.embed.ids);
        put_tensor(c, &op->u.embed.out);
        put_f32(c, op->u.embed.scale);
        break;
    case HEARTH_OP_RMSNORM:
        put_tensor(c, &op->u.rmsnorm.x);
        put_tensor(c, &op->u.rmsnorm.w);
        put_tensor(c, &op->u.rmsnorm.y);
        put_f32(c, op->u.rmsnorm.eps);
        break;
    case HEARTH_OP_MATMUL: {
        const struct hearth_op_matmul *m = &op->u.matmul;
        put_i32(c, (int32_t)m->n_w);
        put_tensor(c, &m->x);
        for (int i = 0; i < m->n_w && i < 3; i++) {
            put_tensor(c, &m->w[i]);
            put_tensor(c, &m->b[i]);
            put_tensor(c, &m->y[i]);
        }
        break;
    }
    case HEARTH_OP_ATTENTION:
        put_attention(c, &op->u.attn);
        break;
    case HEARTH_OP_GLU:
        put_tensor(c, &op->u.glu.g);
        put_tensor(c, &op->u.glu.u);
        put_i32(c, (int32_t)op->u.glu.act);
        break;
    case HEARTH_OP_ADD:
        put_tensor(c, &op->u.add.x);
        put_tensor(c, &op->u.add.y);
        put_tensor(c, &op->u.add.w);
        put_f32(c, op->u.add.eps);
        break;
    case HEARTH_OP_LOGITS:
        put_tensor(c, &op->u.logits.x);
        put_tensor(c, &op->u.logits.norm_w);
        put_tensor(c, &op->u.logits.out_w);
        put_tensor(c, &op->u.logits.y);
        put_f32(c, op->u.logits.eps);
        break;
    case HEARTH_OP_COUNT:
        break;
    }
}

bool cuda_graph_key(struct cuda_graph_cache *c, const struct hearth_op *ops, int n_ops)
{
    c->len = 0;
    c->n_pos = 0;
    c->oom = false;
    if (n_ops < 1)
        return false;
    for (int i = 0; i < n_ops; i++) {
        const struct hearth_op *op = &ops[i];
        if (op->n_tok < 1 || op->n_tok > CUDA_MATVEC_MAX_TOK)
            return false;
        if (op->kind == HEARTH_OP_ATTENTION) {
            if (c->n_pos == CUDA_GRAPH_MAX_POS || op->u.attn.pos0 < 0 ||
                op->u.attn.pos0 > INT32_MAX - CUDA_MATVEC_MAX_TOK)
                return false;
            c->pos[c->n_pos++] = (int32_t)op->u.attn.pos0;
        }
        put_op(c, op);
    }
    if (c->oom)
        return false;
    /*
     * FNV-1a's step on 8-byte words, not bytes: a decode key is ~1.6 KB per
     * 5-op list, and the byte loop's chain of ~1.5k multiplies made key and
     * lookup take ~3 us of host time per list instead of ~1 (bench/RESULTS.md,
     * 2026-11-23), about a graph launch's cost. The hash only rejects; find()
     * compares the bytes.
     */
    uint64_t h = 1469598103934665603ull;
    size_t i = 0;
    for (; i + 8 <= c->len; i += 8) {
        uint64_t w;
        memcpy(&w, c->buf + i, 8);
        h = (h ^ w) * 1099511628211ull;
        h ^= h >> 29;
    }
    for (; i < c->len; i++)
        h = (h ^ c->buf[i]) * 1099511628211ull;
    c->hash = h;
    return true;
}

struct cuda_graph_entry *cuda_graph_find(struct cuda_graph_cache *c)
{
    for (int i = 0; i < c->n; i++) {
        struct cuda_graph_entry *e = &c->e[i];
        if (e->hash == c->hash && e->len == c->len && memcmp(e->key, c->buf, c->len) == 0)
            return e;
    }
    return NULL;
}

struct cuda_graph_entry *cuda_graph_add(struct cuda_graph_cache *c)
{
    if (c->n == CUDA_GRAPH_MAX_ENTRIES) {
        /* keep the key being built: clearing frees only the entries */
        for (int i = 0; i < c->n; i++) {
            cuda_graph_destroy(c->e[i].exec);
            free(c->e[i].key);
        }
        c->n = 0;
    }
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        struct cuda_graph_entry *ne = realloc(c->e, (size_t)cap * sizeof *ne);
        if (!ne)
            return NULL;
        c->e = ne;
        c->cap = cap;
    }
    uint8_t *key = malloc(c->len);
    if (!key)
        return NULL;
    memcpy(key, c->buf, c->len);
    struct cuda_graph_entry *e = &c->e[c->n++];
    *e = (struct cuda_graph_entry){.hash = c->hash, .key = key, .len = c->len};
    return e;
}

void cuda_graph_cache_clear(struct cuda_graph_cache *c)
{
    for (int i = 0; i < c->n; i++) {
        cuda_graph_destroy(c->e[i].exec);
        free(c->e[i].key);
    }
    free(c->e);
    free(c->buf);
    memset(c, 0, sizeof *c);
}
