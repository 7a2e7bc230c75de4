/*
 * vulkan/op-matmul: y = W x for every weight type (shaders matvec.comp and
 * matmul.comp, one variant per type).
 *
 * Up to VK_MATVEC_TOKS tokens (decode, speculative verify) use the matvec:
 * reading the weights once per call is what matters there. Larger batches use
 * the tiled kernel, which reuses each dequantized weight tile for 32 tokens
 * (64 rows x 32 tokens per workgroup, 4 x 4 outputs per invocation).
 * A single token takes the matvec1_* variants (MV_TOKS=1): the 4-token kernel
 * would multiply three clamped copies of it as well.
 * vk_matmul_group puts up to three matvecs that share x, type and buffers
 * (q/k/v, gate/up) in one dispatch (shaders/matvec.comp pick_weight): k and v
 * alone are a few hundred workgroups, too few to fill a large GPU, and each
 * dispatch ends in a barrier (command.c). A weight that does not join (Q4_K_M's
 * Q6_K attn_v beside Q4_K q and k, or a prefill batch) gets a dispatch of its own.
 * Activations stay f32 (no q8 quantization as on the CPU): the kernels are
 * bound by weight bandwidth, and f32 keeps the result within float rounding
 * of the exact product, which the test checks. F16 weights take the 16-bit
 * storage variants where the device has it (one f16vec4 load per group of 4
 * instead of assembling words); arithmetic stays f32 even where shaderFloat16
 * exists, since f16 products and sums would break that bound (an f16 sum of
 * 576 terms alone is off by ~576 * 2^-11 relative).
 */
#include "vk-internal.h"
#include "quant.h"
#include "../shaders/params/matmul.h"

bool vk_matmul_supports(hearth_dtype t)
{
    return vk__wtype_index(t) >= 0;
}

/* Checks a and fills p (n_w = 1) and binds; *ti: the type's variant index. */
static hearth_status matmul_prepare(struct vk_ctx *ctx, const struct vk_matmul_args *a,
                                    struct vk_matmul_params *p, const struct vk_buffer *binds[5],
                                    int *ti)
{
    hearth_status st;
    *ti = vk__wtype_index(a->type);
    if (*ti < 0)
        return err_set(HEARTH_ERR_UNSUPPORTED, "vulkan matmul: no kernel for weight type %s",
                       hearth_dtype_name(a->type) ? hearth_dtype_name(a->type) : "?");
    uint64_t rb = 0;
    if (a->n_in == 0 || a->n_out == 0 || a->n_tok == 0 || a->n_in % 4 != 0 ||
        !quant_row_bytes(a->type, a->n_in, &rb) || rb != a->row_bytes)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan matmul: %s %u x %u, %u tokens, row_bytes "
                       "%llu (expected %llu; n_in a multiple of 4 and of the block)",
                       hearth_dtype_name(a->type), a->n_out, a->n_in, a->n_tok,
                       (unsigned long long)a->row_bytes, (unsigned long long)rb);
    if (a->x_stride < a->n_in || a->y_stride < a->n_out || a->x_stride % 4 != 0)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan matmul: strides x %u (>= %u, multiple of "
                       "4), y %u (>= %u)", a->x_stride, a->n_in, a->y_stride, a->n_out);
    uint32_t wofs, xofs, yofs;
    uint64_t wbytes = rb * a->n_out;
    if (a->w.offset + wbytes > 0xffffffffull)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan matmul: weight ends past 4 GiB of its "
                       "buffer (offset %llu)", (unsigned long long)a->w.offset);
    if ((st = vk__view_words(a->w, wbytes, "matmul", "W", &wofs)) != HEARTH_OK ||
        (st = vk__view_words(a->x, ((uint64_t)(a->n_tok - 1) * a->x_stride + a->n_in) * 4,
                             "matmul", "x", &xofs)) != HEARTH_OK ||
        (st = vk__view_words(a->y, ((uint64_t)(a->n_tok - 1) * a->y_stride + a->n_out) * 4,
                             "matmul", "y", &yofs)) != HEARTH_OK)
        return st;
    uint32_t bofs = 0;
    if (a->bias.buf &&
        (st = vk__view_words(a->bias, (uint64_t)a->n_out * 4, "matmul", "bias", &bofs)) != HEARTH_OK)
        return st;
    if (xofs % 4 != 0)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan matmul: x offset must be 16-byte aligned");
    *p = (struct vk_matmul_params){
        .w_off = (uint32_t)a->w.offset,
        .row_bytes = (uint32_t)rb,
        .n_in = a->n_in,
        .n_out = a->n_out,
        .n_tok = a->n_tok,
        .x_off = xofs,
        .x_stride = a->x_stride,
        .y_off = yofs,
        .y_stride = a->y_stride,
        .has_b = a->bias.buf ? 1u : 0u,
        .b_off = bofs,
        .n_w = 1,
    };
    /* without a bias, y is bound in its place (never read); binding 4: the IQ grids */
    binds[0] = a->w.buf;
    binds[1] = a->x.buf;
    binds[2] = a->y.buf;
    binds[3] = a->bias.buf ? a->bias.buf : a->y.buf;
    return vk__iq_grid_bind(ctx, a->type, a->w.buf, &binds[4]);
}

static bool use_matvec(const struct vk_matmul_args *a)
{
    return a->force_kernel == 1 || (a->force_kernel == 0 && a->n_tok <= VK_MATVEC_TOKS);
}

/*
 * Whether b can share a's matvec dispatch: the same kernel (type, K, 16-bit
 * path), the same x, and its weight, output and bias in the buffers a binds.
 */
static bool joins(const struct vk_ctx *ctx, const struct vk_matmul_args *a,
                  const struct vk_matmul_args *b)
{
    return use_matvec(a) && use_matvec(b) && b->type == a->type && b->n_in == a->n_in &&
           b->row_bytes == a->row_bytes && b->n_tok == a->n_tok && b->w.buf == a->w.buf &&
           b->x.buf == a->x.buf && b->x.offset == a->x.offset && b->x_stride == a->x_stride &&
           b->y.buf == a->y.buf && (b->bias.buf != NULL) == (a->bias.buf != NULL) &&
           (!a->bias.buf || b->bias.buf == a->bias.buf) &&
           vk__use_f16_h(ctx, b->type, b->w.offset) == vk__use_f16_h(ctx, a->type, a->w.offset);
}

/* One dispatch of p (n_w weights, total_rows rows in all) with a[0]'s kernel. */
static hearth_status dispatch(struct vk_ctx *ctx, const struct vk_matmul_args *a, int ti,
                              const struct vk_matmul_params *p, const struct vk_buffer *const *binds,
                              uint32_t row_groups)
{
    bool h = vk__use_f16_h(ctx, a->type, a->w.offset);
    uint32_t gx, gz;
    if (use_matvec(a)) {
        vk__grid(row_groups, &gx, &gz);
        /* one token: the MV_TOKS=1 variants (no clamped copies of the token to multiply) */
        const bool one = a->n_tok == 1;
        const bool sg = ctx->use_subgroup;
        enum vk_shader sh;
        if (h)
            sh = one ? (sg ? VK_SH_MATVEC1_F16_H_SG : VK_SH_MATVEC1_F16_H)
                     : (sg ? VK_SH_MATVEC_F16_H_SG : VK_SH_MATVEC_F16_H);
        else
            sh = (enum vk_shader)((one ? (sg ? VK_SH_MATVEC1_SG : VK_SH_MATVEC1)
                                       : (sg ? VK_SH_MATVEC_SG : VK_SH_MATVEC)) + ti);
        const uint32_t toks = one ? 1u : VK_MATVEC_TOKS;
        return vk__dispatch(ctx, sh, binds, p, sizeof *p, gx, (a->n_tok + toks - 1) / toks, gz);
    }
    vk__grid((a->n_out + VK_MM_ROWS - 1) / VK_MM_ROWS, &gx, &gz);
    return vk__dispatch(ctx, h ? VK_SH_MATMUL_F16_H : (enum vk_shader)(VK_SH_MATMUL + ti), binds, p,
                        sizeof *p, gx, (a->n_tok + VK_MM_TOKS - 1) / VK_MM_TOKS, gz);
}

static uint32_t row_groups(uint32_t n_out)
{
    return (n_out + VK_MATVEC_ROWS - 1) / VK_MATVEC_ROWS;
}

hearth_status vk_matmul(struct vk_ctx *ctx, const struct vk_matmul_args *a)
{
    return vk_matmul_group(ctx, a, 1);
}

hearth_status vk_matmul_group(struct vk_ctx *ctx, const struct vk_matmul_args *a, int n)
{
    hearth_status st;
    if (n < 1 || n > VK_MATVEC_MAX_W)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan matmul: %d weights (1..%d)", n,
                       VK_MATVEC_MAX_W);
    struct vk_matmul_params p[VK_MATVEC_MAX_W];
    const struct vk_buffer *binds[VK_MATVEC_MAX_W][5];
    int ti[VK_MATVEC_MAX_W];
    for (int i = 0; i < n; i++)
        if ((st = matmul_prepare(ctx, &a[i], &p[i], binds[i], &ti[i])) != HEARTH_OK)
            return st;
    /* each weight not yet taken leads a dispatch with the later ones that join it */
    bool taken[VK_MATVEC_MAX_W] = {false};
    for (int i = 0; i < n; i++) {
        if (taken[i])
            continue;
        struct vk_matmul_params q = p[i];
        uint32_t groups = row_groups(p[i].n_out);
        for (int j = i + 1; j < n; j++) {
            if (taken[j] || !joins(ctx, &a[i], &a[j]))
                continue;
            taken[j] = true;
            const struct vk_matmul_params *o = &p[j];
            if (q.n_w == 1) {
                q.w1_off = o->w_off, q.n1_out = o->n_out, q.y1_off = o->y_off;
                q.y1_stride = o->y_stride, q.b1_off = o->b_off;
            } else {
                q.w2_off = o->w_off, q.n2_out = o->n_out, q.y2_off = o->y_off;
                q.y2_stride = o->y_stride, q.b2_off = o->b_off;
            }
            q.n_w++;
            groups += row_groups(o->n_out);
        }
        if ((st = dispatch(ctx, &a[i], ti[i], &q, binds[i], groups)) != HEARTH_OK)
            return st;
    }
    return HEARTH_OK;
}
