/*
 * vulkan/attn-split: flash-decoding's host side (vk-attn-split.h): how many
 * splits, the per-stream scratch the partials go to, and the merge dispatch.
 *
 * The count depends on the batch shape and the cache size, never on the
 * position: replay.c keys a decode step by its push constants and grids, so
 * a count that grew with the position would record every step anew. The
 * piece each workgroup takes is computed in the shader from the position
 * (ceil(len / n_split)), so early in a long cache most pieces are empty and
 * cost one partial write each. Splitting prefill batches was rejected: they
 * already fill the device, and the merge would only add a pass; they keep the
 * single pass bit for bit (n_split 1 writes the output directly).
 * The partials live in a caller-owned buffer (graph.c keeps one per stream,
 * for every layer: layers run in order, each merge reads its partials before
 * the next layer's attention writes them, vk__dispatch's barriers order it).
 */
#include <string.h>

#include "vk-attn-split.h"
#include "../shaders/params/attn.h"
#include "../shaders/params/kv.h"

_Static_assert(VK_ATTN_MAX_SPLIT < 256, "n_split travels in the top byte of attention_kvq's types");

/*
 * The rule: enough workgroups for a big GPU (VK_ATTN_SPLIT_WGS in all, 4 per
 * compute unit of a 128-unit device), but at least one chunk (VK_ATTN_CHUNK
 * positions) per split when the span is full, and at most
 * VK_ATTN_MAX_SPLIT; batches of more than VK_ATTN_SPLIT_MAX_TOK tokens
 * (prefill) or already VK_ATTN_SPLIT_WGS workgroups wide take one pass.
 * SmolLM2 (9 heads) at n_ctx 8192 decodes with 57 splits; an 8B (32 heads)
 * with 16.
 */
enum { VK_ATTN_SPLIT_WGS = 512, VK_ATTN_SPLIT_MAX_TOK = 16 };

uint32_t vk_attn_pick_split(uint32_t n_tok, uint32_t n_head, uint32_t span)
{
    if (n_tok == 0 || n_head == 0 || n_tok > VK_ATTN_SPLIT_MAX_TOK)
        return 1;
    uint64_t base = (uint64_t)n_tok * n_head;
    uint64_t want = (VK_ATTN_SPLIT_WGS + base - 1) / base;
    uint64_t cap = span / VK_ATTN_CHUNK;
    if (want > cap)
        want = cap;
    if (want > VK_ATTN_MAX_SPLIT)
        want = VK_ATTN_MAX_SPLIT;
    return want < 1 ? 1 : (uint32_t)want;
}

uint32_t vk__attn_n_split(const struct vk_ctx *ctx, const struct vk_attn_args *a, uint32_t span)
{
    if (!a->split_scratch)
        return 1;
    uint32_t n = a->n_split ? a->n_split : vk_attn_pick_split(a->n_tok, a->n_head, span);
    if (n > VK_ATTN_MAX_SPLIT)
        n = VK_ATTN_MAX_SPLIT;
    if (n > ctx->caps.max_wg_count[2])
        n = ctx->caps.max_wg_count[2];
    return n < 1 ? 1 : n;
}

hearth_status vk__attn_split_scratch(struct vk_ctx *ctx, const struct vk_attn_args *a,
                                     uint32_t n_split)
{
    hearth_status st;
    struct vk_buffer *b = a->split_scratch;
    uint64_t need = (uint64_t)a->n_tok * a->n_head * n_split * (a->head_dim + 2) * 4;
    if (b->buf && b->size >= need)
        return HEARTH_OK;
    if (need / 4 > 0xffffffffull)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan attention: %llu bytes of split partials "
                       "(%u tokens, %u heads, %u splits) exceed 32-bit float indexing",
                       (unsigned long long)need, a->n_tok, a->n_head, n_split);
    if ((st = vk_submit(ctx)))
        return st;
    vk_buffer_destroy(ctx, b);
    if ((st = vk_buffer_create(ctx, need, VK_BUF_DEVICE, b)))
        return err_prefix(st, "vulkan attention: split partials of %llu bytes",
                          (unsigned long long)need);
    return HEARTH_OK;
}

hearth_status vk__attn_combine(struct vk_ctx *ctx, const struct vk_attn_args *a, uint32_t n_split,
                               uint32_t o_off, const uint32_t *sign)
{
    struct vk_attn_combine_params cp = {
        .n_head = a->n_head, .head_dim = a->head_dim, .n_split = n_split, .o_off = o_off,
        .o_stride = a->o_stride, .v_rot = sign != NULL,
    };
    if (sign)
        memcpy(cp.sign, sign, sizeof cp.sign);
    const struct vk_buffer *b[2] = {a->split_scratch, a->out.buf};
    return vk__dispatch(ctx, VK_SH_ATTENTION_COMBINE, b, &cp, sizeof cp, a->n_head, a->n_tok, 1);
}
