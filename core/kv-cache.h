/*
 * kv-cache: the keys and values of past positions, F16, one K and one V
 * matrix per layer.
 *
 * Layout: k[layer] and v[layer] are [n_ctx][kv_dim] row-major uint16_t (IEEE
 * half), kv_dim = n_head_kv * head_dim; row p holds position p, heads
 * concatenated (head h at columns [h*head_dim, (h+1)*head_dim)). F16 halves
 * the memory of F32 and costs ~1e-3 relative per element, below what the
 * 8-bit activation quantization of the matmuls already costs. Sliding-window
 * layers keep full rows too (a ring of n_swa rows would save memory on
 * gemma3's local layers; not done yet). Memory comes from calloc, so a large
 * n_ctx only costs the pages actually written.
 */
#ifndef HEARTH_KV_CACHE_H
#define HEARTH_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

struct kv_cache {
    uint32_t n_layer;
    uint32_t n_ctx;  /* positions */
    uint32_t kv_dim; /* n_head_kv * head_dim */
    uint16_t **k;    /* [n_layer] -> [n_ctx][kv_dim] */
    uint16_t **v;    /* [n_layer] -> [n_ctx][kv_dim] */
    uint32_t n_used; /* positions 0..n_used-1 hold valid entries */
};

hearth_status kv_cache_create(uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim,
                              struct kv_cache **out);
void kv_cache_destroy(struct kv_cache *c);
/* Bytes held by K and V together (what a full context costs). */
size_t kv_cache_bytes(const struct kv_cache *c);

/* Row of position pos in layer il (no bounds checks: callers check pos < n_ctx). */
static inline uint16_t *kv_cache_k(const struct kv_cache *c, uint32_t il, uint32_t pos)
{
    return c->k[il] + (size_t)pos * c->kv_dim;
}
static inline uint16_t *kv_cache_v(const struct kv_cache *c, uint32_t il, uint32_t pos)
{
    return c->v[il] + (size_t)pos * c->kv_dim;
}

#endif
