/*
 * vulkan/vk-attn-split: flash-decoding for the attention kernels
 * (attn-split.c). A decode step attends with n_head * n_tok workgroups (9 for
 * SmolLM2), far fewer than a big GPU's compute units; splitting each
 * (head, token)'s positions into n_split pieces, attended by their own
 * workgroups, and merging the per-piece softmax partials (attention_combine)
 * fills the device. op-attention.c calls these around its attention
 * dispatch for the f16 and kvq caches alike.
 */
#ifndef HEARTH_VK_ATTN_SPLIT_H
#define HEARTH_VK_ATTN_SPLIT_H

#include "vk-internal.h"

/*
 * The n_split a's attention runs with (1: the single pass). span: the most
 * positions one token attends (the cache, or the sliding window if
 * smaller). 1 when a->split_scratch is NULL; a->n_split > 0 forces that
 * count (capped); else vk_attn_pick_split. Never above the device's
 * maxComputeWorkGroupCount[2].
 */
uint32_t vk__attn_n_split(const struct vk_ctx *ctx, const struct vk_attn_args *a, uint32_t span);
/*
 * Makes *a->split_scratch hold n_split partials of every (token, head):
 * n_tok * n_head * n_split * (head_dim + 2) floats. Growing submits the
 * recorded work first (it may read the old buffer) and destroys it, which
 * moves ctx->buf_epoch (replay.c drops its recordings).
 */
hearth_status vk__attn_split_scratch(struct vk_ctx *ctx, const struct vk_attn_args *a,
                                     uint32_t n_split);
/*
 * Records attention_combine: merges the partials into a->out (its view at
 * float o_off). sign: the rotation's diagonal (VK_KVQ_SIGN_WORDS words) to
 * undo on a rotated V, NULL for none.
 */
hearth_status vk__attn_combine(struct vk_ctx *ctx, const struct vk_attn_args *a, uint32_t n_split,
                               uint32_t o_off, const uint32_t *sign);

#endif
