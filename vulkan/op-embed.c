/*
 * vulkan/op-embed: dequantized rows of an embedding matrix (embed.comp), with
 * gemma's embedding scale folded in so no separate pass is needed.
 */
#include "vk-internal.h"
#include "quant.h"
#include "../shaders/params/embed.h"

hearth_status vk_embed(struct vk_ctx *ctx, const struct vk_embed_args *a)
{
    hearth_status st;
    int ti = vk__wtype_index(a->type);
    if (ti < 0)
        return err_set(HEARTH_ERR_UNSUPPORTED, "vulkan embed: no kernel for weight type %s",
                       hearth_dtype_name(a->type) ? hearth_dtype_name(a->type) : "?");
    uint64_t rb = 0;
    if (a->n_in == 0 || a->n_in % 4 != 0 || a->n_ids == 0 || a->y_stride < a->n_in ||
        !quant_row_bytes(a->type, a->n_in, &rb) || rb != a->row_bytes)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan embed: %s rows of %u, row_bytes %llu, "
                       "%u ids, y_stride %u", hearth_dtype_name(a->type), a->n_in,
                       (unsigned long long)a->row_bytes, a->n_ids, a->y_stride);
    uint32_t wofs, iofs, yofs;
    if (a->w.offset + rb * a->n_rows > 0xffffffffull)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan embed: matrix ends past 4 GiB");
    if ((st = vk__view_words(a->w, rb * a->n_rows, "embed", "W", &wofs)) != HEARTH_OK ||
        (st = vk__view_words(a->ids, (uint64_t)a->n_ids * 4, "embed", "ids", &iofs)) != HEARTH_OK ||
        (st = vk__view_words(a->y, ((uint64_t)(a->n_ids - 1) * a->y_stride + a->n_in) * 4, "embed",
                             "y", &yofs)) != HEARTH_OK)
        return st;
    if (a->n_ids > ctx->caps.max_wg_count[0])
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan embed: %u ids in one call (max %u)",
                       a->n_ids, ctx->caps.max_wg_count[0]);
    struct vk_embed_params p = {
        .w_off = (uint32_t)a->w.offset,
        .row_bytes = (uint32_t)rb,
        .n_in = a->n_in,
        .n_rows = a->n_rows,
        .n_ids = a->n_ids,
        .ids_off = iofs,
        .y_off = yofs,
        .y_stride = a->y_stride,
        .scale = a->scale,
    };
    const struct vk_buffer *binds[4] = {a->w.buf, a->ids.buf, a->y.buf, NULL}; /* 3: IQ grids */
    if ((st = vk__iq_grid_bind(ctx, a->type, a->w.buf, &binds[3])) != HEARTH_OK)
        return st;
    enum vk_shader sh = vk__use_f16_h(ctx, a->type, a->w.offset) ? VK_SH_EMBED_F16_H
                                                                  : (enum vk_shader)(VK_SH_EMBED + ti);
    return vk__dispatch(ctx, sh, binds, &p, sizeof p, a->n_ids, 1, 1);
}
