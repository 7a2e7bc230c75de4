/*
 * kv-cache: allocation of the per-layer F16 K/V matrices (layout in kv-cache.h).
 */
#include "kv-cache.h"

#include <stdlib.h>

#include "err.h"

hearth_status kv_cache_create(uint32_t n_layer, uint32_t n_ctx, uint32_t kv_dim,
                              struct kv_cache **out)
{
    *out = NULL;
    if (n_layer == 0 || n_ctx == 0 || kv_dim == 0)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "kv_cache: n_layer %u, n_ctx %u and kv_dim %u must all be > 0", n_layer,
                       n_ctx, kv_dim);
    size_t row = (size_t)kv_dim;
    if ((size_t)n_ctx > SIZE_MAX / sizeof(uint16_t) / row)
        return err_set(HEARTH_ERR_NO_MEMORY, "kv_cache: %u x %u entries overflow", n_ctx, kv_dim);
    struct kv_cache *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(HEARTH_ERR_NO_MEMORY, "kv_cache: out of memory");
    c->n_layer = n_layer;
    c->n_ctx = n_ctx;
    c->kv_dim = kv_dim;
    c->k = calloc(n_layer, sizeof *c->k);
    c->v = calloc(n_layer, sizeof *c->v);
    if (!c->k || !c->v)
        goto fail;
    for (uint32_t il = 0; il < n_layer; il++) {
        c->k[il] = calloc((size_t)n_ctx * row, sizeof(uint16_t));
        c->v[il] = calloc((size_t)n_ctx * row, sizeof(uint16_t));
        if (!c->k[il] || !c->v[il])
            goto fail;
    }
    *out = c;
    return HEARTH_OK;
fail:
    kv_cache_destroy(c);
    return err_set(HEARTH_ERR_NO_MEMORY,
                   "kv_cache: out of memory for %u layers x %u positions x %u F16 values",
                   n_layer, n_ctx, kv_dim);
}

void kv_cache_destroy(struct kv_cache *c)
{
    if (!c)
        return;
    for (uint32_t il = 0; c->k && il < c->n_layer; il++)
        free(c->k[il]);
    for (uint32_t il = 0; c->v && il < c->n_layer; il++)
        free(c->v[il]);
    free(c->k);
    free(c->v);
    free(c);
}

size_t kv_cache_bytes(const struct kv_cache *c)
{
    return 2u * (size_t)c->n_layer * c->n_ctx * c->kv_dim * sizeof(uint16_t);
}
