/*
 * vulkan/op-rope: rotary position embedding in place (rope.comp). The
 * frequencies are a small table made once per layer kind on the host in
 * double (vk_rope_inv_freq), so llama3's per-dim divisors and any frequency
 * scale cost the shader nothing; only theta = pos * inv_freq is f32.
 */
#include <math.h>

#include "vk-internal.h"
#include "../shaders/params/rope.h"

void vk_rope_inv_freq(float *out, int n_rot, float base, float freq_scale, const float *divs)
{
    for (int k = 0; k < n_rot / 2; k++) {
        double inv = pow((double)base, -2.0 * k / (double)n_rot) * (double)freq_scale;
        if (divs)
            inv /= (double)divs[k];
        out[k] = (float)inv;
    }
}

hearth_status vk_rope(struct vk_ctx *ctx, struct vk_view x, uint32_t x_stride, uint32_t n_tok,
                      uint32_t n_heads, uint32_t head_dim, uint32_t n_rot, uint32_t pos0,
                      enum model_rope_mode mode, struct vk_view inv_freq)
{
    hearth_status st;
    if (n_tok == 0 || n_heads == 0 || n_rot == 0 || n_rot % 2 != 0 || n_rot > head_dim ||
        x_stride < n_heads * head_dim)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan rope: %u tokens x %u heads x %u dims, "
                       "n_rot %u, stride %u", n_tok, n_heads, head_dim, n_rot, x_stride);
    uint32_t xo, fo;
    if ((st = vk__view_words(x, ((uint64_t)(n_tok - 1) * x_stride + (uint64_t)n_heads * head_dim) * 4,
                             "rope", "x", &xo)) ||
        (st = vk__view_words(inv_freq, (uint64_t)(n_rot / 2) * 4, "rope", "inv_freq", &fo)))
        return st;
    uint32_t slot = vk__pos_slot(ctx, pos0); /* > 0 while replay.c captures */
    struct vk_rope_params p = {
        .n_tok = n_tok, .n_heads = n_heads, .head_dim = head_dim, .n_rot = n_rot,
        .pos0 = slot ? 0 : pos0, .pos_slot = slot,
        .neox = mode == MODEL_ROPE_NEOX ? 1u : 0u, .x_off = xo, .x_stride = x_stride, .f_off = fo,
    };
    uint64_t n = (uint64_t)n_tok * n_heads * (n_rot / 2);
    uint32_t gx, gy;
    vk__grid((uint32_t)((n + VK_ROPE_WG - 1) / VK_ROPE_WG), &gx, &gy);
    const struct vk_buffer *binds[3] = {x.buf, inv_freq.buf, vk__step_bind(ctx, slot, x.buf)};
    return vk__dispatch(ctx, VK_SH_ROPE, binds, &p, sizeof p, gx, gy, 1);
}
