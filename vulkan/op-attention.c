/*
 * vulkan/op-attention: store the batch's K/V rows into the F16 cache
 * (kv-store.comp), then attend (attention.comp, one workgroup per head and
 * token, online softmax over chunks of positions). The barrier vk__dispatch
 * records between the two makes the new rows visible to the attention pass,
 * so a batch attends to its own earlier tokens exactly as decode would.
 */
#include "vk-internal.h"
#include "../shaders/params/attn.h"
#include "../shaders/params/kv.h"

hearth_status vk_attention(struct vk_ctx *ctx, const struct vk_attn_args *a)
{
    hearth_status st;
    uint32_t kv_dim = a->n_head_kv * a->head_dim;
    if (a->n_tok == 0 || a->n_head == 0 || a->n_head_kv == 0 || a->n_head % a->n_head_kv != 0 ||
        a->head_dim == 0 || a->head_dim % 2 != 0 || a->head_dim > VK_ATTN_MAX_HD ||
        (uint64_t)a->pos0 + a->n_tok > a->n_ctx || a->q_stride < a->n_head * a->head_dim ||
        a->o_stride < a->n_head * a->head_dim || a->kv_stride < kv_dim ||
        a->n_head > ctx->caps.max_wg_count[0] || a->n_tok > ctx->caps.max_wg_count[1])
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan attention: %u tokens at %u (n_ctx %u), "
                       "heads %u/%u of %u dims (even, <= %d), strides q %u kv %u o %u",
                       a->n_tok, a->pos0, a->n_ctx, a->n_head, a->n_head_kv, a->head_dim,
                       VK_ATTN_MAX_HD, a->q_stride, a->kv_stride, a->o_stride);
    uint32_t qo, ko, vo, kco, vco, oo;
    uint64_t cache_bytes = (uint64_t)a->n_ctx * kv_dim * 2;
    uint64_t kv_bytes = ((uint64_t)(a->n_tok - 1) * a->kv_stride + kv_dim) * 4;
    uint64_t q_bytes = ((uint64_t)(a->n_tok - 1) * a->q_stride + a->n_head * a->head_dim) * 4;
    uint64_t o_bytes = ((uint64_t)(a->n_tok - 1) * a->o_stride + a->n_head * a->head_dim) * 4;
    if ((st = vk__view_words(a->q, q_bytes, "attention", "q", &qo)) ||
        (st = vk__view_words(a->k_new, kv_bytes, "attention", "k_new", &ko)) ||
        (st = vk__view_words(a->v_new, kv_bytes, "attention", "v_new", &vo)) ||
        (st = vk__view_words(a->k_cache, cache_bytes, "attention", "k_cache", &kco)) ||
        (st = vk__view_words(a->v_cache, cache_bytes, "attention", "v_cache", &vco)) ||
        (st = vk__view_words(a->out, o_bytes, "attention", "out", &oo)))
        return st;

    struct vk_kv_store_params kp = {
        .n_tok = a->n_tok, .kv_dim = kv_dim, .pos0 = a->pos0, .k_src_off = ko, .v_src_off = vo,
        .src_stride = a->kv_stride, .k_cache_off = kco, .v_cache_off = vco,
    };
    const struct vk_buffer *kb[4] = {a->k_new.buf, a->v_new.buf, a->k_cache.buf, a->v_cache.buf};
    uint32_t gx, gy;
    vk__grid((uint32_t)(((uint64_t)a->n_tok * (kv_dim / 2) + VK_KV_WG - 1) / VK_KV_WG), &gx, &gy);
    if ((st = vk__dispatch(ctx, VK_SH_KV_STORE, kb, &kp, sizeof kp, gx, gy, 1)) != HEARTH_OK)
        return st;

    struct vk_attn_params ap = {
        .n_tok = a->n_tok, .n_head = a->n_head, .n_head_kv = a->n_head_kv,
        .head_dim = a->head_dim, .pos0 = a->pos0, .window = a->window, .scale = a->scale,
        .kv_dim = kv_dim, .q_off = qo, .q_stride = a->q_stride, .o_off = oo,
        .o_stride = a->o_stride, .k_cache_off = kco, .v_cache_off = vco,
    };
    const struct vk_buffer *ab[4] = {a->q.buf, a->k_cache.buf, a->v_cache.buf, a->out.buf};
    return vk__dispatch(ctx, VK_SH_ATTENTION, ab, &ap, sizeof ap, a->n_head, a->n_tok, 1);
}
