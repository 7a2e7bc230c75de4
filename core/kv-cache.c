/*
 * kv-cache: allocation of the per-layer K/V matrices and rotations (layout in
 * kv-cache.h).
 */
#include "kv-cache.h"

#include <stdlib.h>

#include "err.h"

hearth_status kv_cache_create(const struct kv_cache_params *p, struct kv_cache **out)
{
    *out = NULL;
    if (p->n_layer == 0 || p->n_ctx == 0 || p->n_head_kv == 0 || p->head_dim == 0)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "kv_cache: n_layer %u, n_ctx %u, n_head_kv %u and head_dim %u must all "
                       "be > 0",
                       p->n_layer, p->n_ctx, p->n_head_kv, p->head_dim);
    hearth_status st;
    if ((st = kvq_check(p->k_type, (int)p->head_dim)) != HEARTH_OK)
        return err_prefix(st, "kv_cache: K");
    if ((st = kvq_check(p->v_type, (int)p->head_dim)) != HEARTH_OK)
        return err_prefix(st, "kv_cache: V");
    size_t k_row = (size_t)p->n_head_kv * kvq_head_bytes(p->k_type, (int)p->head_dim);
    size_t v_row = (size_t)p->n_head_kv * kvq_head_bytes(p->v_type, (int)p->head_dim);
    size_t big = k_row > v_row ? k_row : v_row;
    if ((size_t)p->n_ctx > SIZE_MAX / 2 / big)
        return err_set(HEARTH_ERR_NO_MEMORY, "kv_cache: %u rows of %zu bytes overflow", p->n_ctx,
                       big);
    struct kv_cache *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(HEARTH_ERR_NO_MEMORY, "kv_cache: out of memory");
    c->n_layer = p->n_layer;
    c->n_ctx = p->n_ctx;
    c->n_head_kv = p->n_head_kv;
    c->head_dim = p->head_dim;
    c->kv_dim = p->n_head_kv * p->head_dim;
    c->k_type = p->k_type;
    c->v_type = p->v_type;
    c->k_row = k_row;
    c->v_row = v_row;
    c->k = calloc(p->n_layer, sizeof *c->k);
    c->v = calloc(p->n_layer, sizeof *c->v);
    if (!c->k || !c->v)
        goto fail;
    for (uint32_t il = 0; il < p->n_layer; il++) {
        if (p->layer_codes && !p->layer_codes[il]) {
            /* the ring must hold the layer's window, or every position there is */
            const uint32_t need = p->ring_swa < p->n_ctx ? p->ring_swa : p->n_ctx;
            if (!p->layer_window || p->exact_window == 0 || p->ring_swa == 0 ||
                p->layer_window[il] < need) {
                kv_cache_destroy(c);
                return err_set(HEARTH_ERR_INVALID_ARG,
                               "kv_cache: layer %u without codes needs a ring of at least its "
                               "window (%u)", il, p->ring_swa);
            }
            continue;
        }
        c->k[il] = calloc(p->n_ctx, k_row);
        c->v[il] = calloc(p->n_ctx, v_row);
        if (!c->k[il] || !c->v[il])
            goto fail;
    }
    if (p->k_type != KVQ_F16) {
        c->k_aux = calloc((size_t)p->n_layer * 2 * c->kv_dim, sizeof *c->k_aux);
        if (!c->k_aux)
            goto fail;
    }
    if (p->exact_window > 0) {
        c->xw_layer = calloc(p->n_layer, sizeof *c->xw_layer);
        c->x_slot0 = calloc(p->n_layer, sizeof *c->x_slot0);
        if (!c->xw_layer || !c->x_slot0)
            goto fail;
        size_t slots = 0;
        for (uint32_t il = 0; il < p->n_layer; il++) {
            uint32_t w = p->layer_window ? p->layer_window[il] : p->exact_window;
            w = w < p->n_ctx ? w : p->n_ctx;
            c->xw_layer[il] = w;
            c->x_slot0[il] = slots;
            slots += w;
            c->xw = w > c->xw ? w : c->xw;
        }
        slots = slots ? slots : 1;
        c->xk = calloc(slots * c->kv_dim, sizeof *c->xk);
        c->xv = calloc(slots * c->kv_dim, sizeof *c->xv);
        c->xpos = malloc(slots * sizeof *c->xpos);
        if (!c->xk || !c->xv || !c->xpos)
            goto fail;
        for (size_t i = 0; i < slots; i++)
            c->xpos[i] = -1;
    }
    if (kvq_is_rotated(p->k_type) || kvq_is_rotated(p->v_type)) {
        c->rot = calloc(p->n_layer, sizeof *c->rot);
        if (!c->rot)
            goto fail;
        for (uint32_t il = 0; il < p->n_layer; il++) {
            /* cannot fail: kvq_check accepted head_dim for a rotated type above */
            if ((st = kvq_rot_init(&c->rot[il], (int)p->head_dim, p->seed, il)) != HEARTH_OK) {
                kv_cache_destroy(c);
                return err_prefix(st, "kv_cache: layer %u", il);
            }
        }
    }
    *out = c;
    return HEARTH_OK;
fail:
    kv_cache_destroy(c);
    return err_set(HEARTH_ERR_NO_MEMORY,
                   "kv_cache: out of memory for %u layers x %u positions of K %s (%zu bytes) "
                   "and V %s (%zu bytes)",
                   p->n_layer, p->n_ctx, kvq_type_name(p->k_type), k_row,
                   kvq_type_name(p->v_type), v_row);
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
    free(c->rot);
    free(c->k_aux);
    free(c->xk);
    free(c->xv);
    free(c->xpos);
    free(c->xw_layer);
    free(c->x_slot0);
    free(c);
}

size_t kv_cache_bytes(const struct kv_cache *c)
{
    size_t slots = 0, rows = 0;
    for (uint32_t il = 0; il < c->n_layer; il++) {
        slots += c->xw_layer ? c->xw_layer[il] : 0;
        rows += c->k[il] ? c->n_ctx : 0;
    }
    return rows * (c->k_row + c->v_row) + slots * 2 * c->kv_dim * sizeof(uint16_t);
}
