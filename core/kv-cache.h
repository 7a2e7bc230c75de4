/*
 * kv-cache: the keys and values of past positions of one sequence, one K and
 * one V matrix per layer, each in one of the head-vector formats of
 * kv-quant.h (K and V types independent).
 *
 * Layout: k[layer] is [n_ctx][k_row] bytes, k_row = n_head_kv ·
 * kvq_head_bytes(k_type, head_dim): row p holds position p, its n_head_kv
 * encoded head vectors back to back (head h at byte h · kvq_head_bytes);
 * v[layer] likewise with v_type. For f16 a row is exactly the kv_dim IEEE
 * halves of before (head h at halves [h·head_dim, (h+1)·head_dim)), so the
 * f16 cache keeps its bytes, its layout and the forward pass's f16 kernels.
 * The rotated types (rot4, rot3) need the layer's rotation, which is kept
 * here (rot[layer], from kvq_rot_init(head_dim, seed, layer)) so that the
 * writer and every reader of a cache use the same one. A sliding-window layer
 * may keep no rows at all, only its ring (layer_codes below; plan.h
 * plan_kv_layer_codes, false for none under swa_full). Memory comes from
 * calloc, so a large n_ctx only costs the pages actually written.
 *
 * Exact window (kv_cache_params.exact_window W > 0, compressed types only):
 * besides the encoded rows, each layer il keeps f16 copies of the last W_il
 * positions' K and V in a ring (slot p % W_il, xpos tags which position a
 * slot holds; W_il is W, or the layer's own from layer_window: the planner's
 * plan_kv_layer_window gives a sliding-window layer its whole window), stored in the attention's domain (per KV head R·x for a rotated
 * type, the centred key k - mu for K). Attention of a query at position t
 * reads positions j > t - W from these copies instead of the codes (KIVI's
 * residual window: local attention carries much of the weight). A rewind
 * can leave a slot holding a later position; attention then falls back to
 * the encoded row for it (xpos tells), so results stay deterministic.
 */
#ifndef HEARTH_KV_CACHE_H
#define HEARTH_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "hearth.h"
#include "kv-quant.h"

struct kv_cache_params {
    uint32_t n_layer;
    uint32_t n_ctx;     /* positions */
    uint32_t n_head_kv;
    uint32_t head_dim;
    enum kvq_type k_type, v_type;
    uint64_t seed;      /* model seed of the rotation (model_kv_seed); unused unless rotated */
    uint32_t exact_window; /* W: f16 copies of the last W positions (0: none) */
    /* NULL: every layer keeps min(W, n_ctx); else [n_layer] each layer's own (<= n_ctx) */
    const uint32_t *layer_window;
    /*
     * NULL: every layer keeps encoded rows; else [n_layer], false for a
     * ring-only layer (plan_kv_layer_codes: k[il] = v[il] = NULL, its ring
     * is all it reads; the caller keeps to kv_ring_track's rule); ring_swa
     * is then those layers' attention window, checked against their rings
     */
    const bool *layer_codes;
    uint32_t ring_swa;
};

/*
 * What a sequence's ring-only layers still hold: every position of [lo,
 * n_used) is in their rings of `slots` slots (slots 0: there are none and
 * every evaluation may go on). A batch at pos0 > 0 attends back to pos0 -
 * swa + 1, so it may run only when that is >= lo; writing [pos0, pos0 + n)
 * leaves [max(lo, pos0 + n - slots), pos0 + n) (a batch from 0 starts over).
 * A rewind further back than the slack (slots - swa) therefore has to start
 * from position 0 again, as llama.cpp's sliding-window cache does.
 */
struct kv_ring_track {
    uint32_t swa, slots, lo;
};

static inline bool kv_ring_can_eval(const struct kv_ring_track *t, uint32_t pos0)
{
    if (t->slots == 0 || pos0 == 0)
        return true;
    return (pos0 + 1 > t->swa ? pos0 + 1 - t->swa : 0) >= t->lo;
}

static inline void kv_ring_advance(struct kv_ring_track *t, uint32_t pos0, uint32_t n)
{
    if (t->slots == 0)
        return;
    if (pos0 == 0)
        t->lo = 0;
    const uint32_t end = pos0 + n;
    if (end > t->slots && end - t->slots > t->lo)
        t->lo = end - t->slots;
}

struct kv_cache {
    uint32_t n_layer;
    uint32_t n_ctx;     /* positions */
    uint32_t n_head_kv;
    uint32_t head_dim;
    uint32_t kv_dim;    /* n_head_kv * head_dim */
    enum kvq_type k_type, v_type;
    size_t k_row;       /* bytes of one K row: n_head_kv * kvq_head_bytes(k_type, head_dim) */
    size_t v_row;       /* bytes of one V row */
    uint8_t **k;        /* [n_layer] -> [n_ctx][k_row] bytes; NULL for a ring-only layer */
    uint8_t **v;        /* [n_layer] -> [n_ctx][v_row] bytes; NULL for a ring-only layer */
    struct kvq_rot *rot; /* [n_layer] when k_type or v_type is rotated, else NULL */
    /*
     * [n_layer][2][kv_dim] floats when k_type is not f16, else NULL; KV head
     * h at h·head_dim of each row. Row 0, the key mean mu: subtracted from
     * every key before it is encoded (row p of K holds enc(k_p - mu)); the
     * softmax over positions cancels the constant q·mu, so attention is
     * unchanged in exact arithmetic while the codes cover a smaller norm.
     * Row 1, the sink: the exact k_0 - mu, which attention uses for
     * position 0 instead of decoding it (the attention-sink token draws much
     * of every query's weight, so its key error costs most). Both written by
     * the batch that writes position 0 (cpu_kvq_key_center, attn-kvq.h),
     * zero until then.
     */
    float *k_aux;
    uint32_t n_used;    /* positions 0..n_used-1 hold valid entries */
    /*
     * The exact window (see the top): xw = the widest layer's W_il (0: none,
     * the rest NULL); xw_layer[il] = W_il (0: that layer has none) and
     * x_slot0[il] its first slot; xk, xv: per layer W_il slots of [kv_dim]
     * halves, back to back, slot x_slot0[il] + p % W_il holding position p
     * in the attention's domain (KV head h at h·head_dim); xpos: the
     * position each slot holds, -1 when empty.
     */
    uint32_t xw;
    uint32_t *xw_layer;
    size_t *x_slot0;
    uint16_t *xk, *xv;
    int32_t *xpos;
};

/*
 * Errors: HEARTH_ERR_INVALID_ARG for a zero size, HEARTH_ERR_UNSUPPORTED (from
 * kvq_check: names the type and head_dim) for a type the head_dim cannot use,
 * HEARTH_ERR_NO_MEMORY.
 */
hearth_status kv_cache_create(const struct kv_cache_params *p, struct kv_cache **out);
void kv_cache_destroy(struct kv_cache *c);
/*
 * Bytes held by K and V together at full context: n_ctx · (k_row + v_row)
 * per layer with codes, plus the exact window's Σ W_il · 2 · kv_dim halves.
 */
size_t kv_cache_bytes(const struct kv_cache *c);

/* Row of position pos in layer il (no bounds checks: callers check pos < n_ctx). */
static inline uint8_t *kv_cache_k(const struct kv_cache *c, uint32_t il, uint32_t pos)
{
    return c->k[il] + (size_t)pos * c->k_row;
}
static inline uint8_t *kv_cache_v(const struct kv_cache *c, uint32_t il, uint32_t pos)
{
    return c->v[il] + (size_t)pos * c->v_row;
}
/* The same rows as halves, for an f16 K / V (rows are 2-byte aligned: calloc, even k_row). */
static inline uint16_t *kv_cache_k16(const struct kv_cache *c, uint32_t il, uint32_t pos)
{
    return (uint16_t *)(void *)kv_cache_k(c, il, pos);
}
static inline uint16_t *kv_cache_v16(const struct kv_cache *c, uint32_t il, uint32_t pos)
{
    return (uint16_t *)(void *)kv_cache_v(c, il, pos);
}
/* The key mean of layer il ([kv_dim] floats, k_aux row 0), or NULL for an f16 K. */
static inline float *kv_cache_k_mean(const struct kv_cache *c, uint32_t il)
{
    return c->k_aux ? c->k_aux + (size_t)il * 2 * c->kv_dim : NULL;
}
/* The exact centred key of position 0 of layer il ([kv_dim], k_aux row 1), or NULL. */
static inline float *kv_cache_k_sink(const struct kv_cache *c, uint32_t il)
{
    return c->k_aux ? c->k_aux + ((size_t)il * 2 + 1) * c->kv_dim : NULL;
}
/*
 * Exact-window slot of position pos in layer il (xw_layer[il] > 0): K and V
 * rows ([kv_dim] halves) and tag.
 */
static inline uint16_t *kv_cache_xk(const struct kv_cache *c, uint32_t il, uint32_t pos)
{
    return c->xk + (c->x_slot0[il] + pos % c->xw_layer[il]) * c->kv_dim;
}
static inline uint16_t *kv_cache_xv(const struct kv_cache *c, uint32_t il, uint32_t pos)
{
    return c->xv + (c->x_slot0[il] + pos % c->xw_layer[il]) * c->kv_dim;
}
static inline int32_t *kv_cache_xpos(const struct kv_cache *c, uint32_t il, uint32_t pos)
{
    return c->xpos + c->x_slot0[il] + pos % c->xw_layer[il];
}
/* The rotation of layer il, or NULL when neither type is rotated. */
static inline const struct kvq_rot *kv_cache_rot(const struct kv_cache *c, uint32_t il)
{
    return c->rot ? &c->rot[il] : NULL;
}

#endif
