/*
 * vulkan/op-eltwise: the element-wise ops (swiglu / geglu in glu.comp, add,
 * scale) share one push-constant struct and one launcher; each is a thin
 * entry point, so they live together rather than in four 20-line files.
 */
#include "vk-internal.h"
#include "../shaders/params/eltwise.h"

static hearth_status eltwise(struct vk_ctx *ctx, enum vk_shader sh, const char *name,
                             struct vk_view a, struct vk_view b, uint32_t n, float s)
{
    hearth_status st;
    uint32_t ao, bo = 0;
    if (n == 0)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan %s: n = 0", name);
    if ((st = vk__view_words(a, (uint64_t)n * 4, name, "a", &ao)))
        return st;
    if (b.buf && (st = vk__view_words(b, (uint64_t)n * 4, name, "b", &bo)))
        return st;
    struct vk_eltwise_params p = {.n = n, .a_off = ao, .b_off = bo, .s = s};
    const struct vk_buffer *binds[2] = {a.buf, b.buf ? b.buf : a.buf};
    uint32_t gx, gy;
    vk__grid((n + VK_ELT_WG - 1) / VK_ELT_WG, &gx, &gy);
    return vk__dispatch(ctx, sh, binds, &p, sizeof p, gx, gy, 1);
}

hearth_status vk_swiglu(struct vk_ctx *ctx, struct vk_view g, struct vk_view u, uint32_t n)
{
    if (!u.buf)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan swiglu: no up input");
    return eltwise(ctx, VK_SH_SWIGLU, "swiglu", g, u, n, 0.0f);
}

hearth_status vk_geglu(struct vk_ctx *ctx, struct vk_view g, struct vk_view u, uint32_t n)
{
    if (!u.buf)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan geglu: no up input");
    return eltwise(ctx, VK_SH_GEGLU, "geglu", g, u, n, 0.0f);
}

hearth_status vk_add(struct vk_ctx *ctx, struct vk_view x, struct vk_view y, uint32_t n)
{
    if (!y.buf)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan add: no second input");
    return eltwise(ctx, VK_SH_ADD, "add", x, y, n, 0.0f);
}

hearth_status vk_scale(struct vk_ctx *ctx, struct vk_view x, uint32_t n, float s)
{
    struct vk_view none = {0};
    return eltwise(ctx, VK_SH_SCALE, "scale", x, none, n, s);
}
