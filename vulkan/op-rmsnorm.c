/*
 * vulkan/op-rmsnorm: RMSNorm of n_rows rows (rmsnorm.comp), one workgroup per
 * row; the subgroup variant is used where the device has subgroup arithmetic.
 */
#include "vk-internal.h"
#include "../shaders/params/norm.h"

hearth_status vk_rmsnorm(struct vk_ctx *ctx, struct vk_view x, uint32_t x_stride, struct vk_view w,
                         struct vk_view y, uint32_t y_stride, uint32_t n, uint32_t n_rows,
                         float eps)
{
    hearth_status st;
    if (n == 0 || n_rows == 0 || x_stride < n || y_stride < n || n_rows > ctx->caps.max_wg_count[0])
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan rmsnorm: %u rows of %u, strides %u/%u",
                       n_rows, n, x_stride, y_stride);
    uint32_t xo, yo, wo = 0;
    if ((st = vk__view_words(x, ((uint64_t)(n_rows - 1) * x_stride + n) * 4, "rmsnorm", "x", &xo)) ||
        (st = vk__view_words(y, ((uint64_t)(n_rows - 1) * y_stride + n) * 4, "rmsnorm", "y", &yo)))
        return st;
    bool has_w = w.buf != NULL;
    if (has_w && (st = vk__view_words(w, (uint64_t)n * 4, "rmsnorm", "w", &wo)))
        return st;
    struct vk_rmsnorm_params p = {
        .n = n, .n_rows = n_rows, .x_off = xo, .x_stride = x_stride, .y_off = yo,
        .y_stride = y_stride, .w_off = wo, .has_w = has_w ? 1u : 0u, .eps = eps,
    };
    /* without a gain, bind x again in w's place (never read) */
    const struct vk_buffer *binds[3] = {x.buf, has_w ? w.buf : x.buf, y.buf};
    return vk__dispatch(ctx, ctx->use_subgroup ? VK_SH_RMSNORM_SG : VK_SH_RMSNORM, binds, &p,
                        sizeof p, n_rows, 1, 1);
}
