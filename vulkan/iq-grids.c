/*
 * vulkan/iq-grids: the lattice grids of the IQ1/IQ2/IQ3 weight types in one
 * read-only storage buffer per context, bound by every weight kernel
 * (matvec, matmul, embed) at the binding after its own buffers.
 *
 * Layout: shaders/params/iq-grids.h (the six tables of core/iq-grids.h as
 * 32-bit words at fixed offsets, 64-bit entries low word first; 33 KiB).
 * Uploaded lazily, on the first dispatch of an IQ type, and freed with the
 * context (vk__pipelines_destroy, after the device is idle): a context that
 * never sees an IQ weight, which is nearly every model, never allocates or
 * copies it, and the upload is recorded in program order with the ops
 * (vk_buffer_upload), so the dispatch that needed it already sees it. Kernels
 * of the other types declare no grid binding in GLSL, but their pipeline
 * layouts have the slot (one table for every variant), so the host binds
 * some live buffer there: the weight buffer itself, which costs nothing.
 * Rejected: the grids as GLSL constant arrays (shaders/common/dequant.glsl
 * says why); uploading at context creation (a device allocation and a
 * staging copy on every start-up for a table few models use).
 */
#include <stdlib.h>

#include "iq-grids.h"
#include "vk-internal.h"
#include "../shaders/params/iq-grids.h"

_Static_assert(VK_IQ_N_IQ2XXS == sizeof quant__iq2xxs_grid / sizeof quant__iq2xxs_grid[0] &&
                   VK_IQ_N_IQ2XS == sizeof quant__iq2xs_grid / sizeof quant__iq2xs_grid[0] &&
                   VK_IQ_N_IQ2S == sizeof quant__iq2s_grid / sizeof quant__iq2s_grid[0] &&
                   VK_IQ_N_IQ3XXS == sizeof quant__iq3xxs_grid / sizeof quant__iq3xxs_grid[0] &&
                   VK_IQ_N_IQ3S == sizeof quant__iq3s_grid / sizeof quant__iq3s_grid[0] &&
                   VK_IQ_N_IQ1S == sizeof quant__iq1s_grid / sizeof quant__iq1s_grid[0],
               "params/iq-grids.h table sizes match core/iq-grids.h");

static bool iq_lattice_type(hearth_dtype t)
{
    switch (t) {
    case HEARTH_DTYPE_IQ2_XXS:
    case HEARTH_DTYPE_IQ2_XS:
    case HEARTH_DTYPE_IQ2_S:
    case HEARTH_DTYPE_IQ3_XXS:
    case HEARTH_DTYPE_IQ3_S:
    case HEARTH_DTYPE_IQ1_S:
    case HEARTH_DTYPE_IQ1_M:
        return true;
    default:
        return false;
    }
}

/* n 64-bit entries as 2n words from w: low word (elements 0..3) first */
static void put64(uint32_t *w, const uint64_t *g, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        w[2 * i] = (uint32_t)g[i];
        w[2 * i + 1] = (uint32_t)(g[i] >> 32);
    }
}

static void put32(uint32_t *w, const uint32_t *g, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        w[i] = g[i];
}

/* the whole buffer, [VK_IQ_GRID_WORDS] words */
static void grid_words(uint32_t *w)
{
    put64(w + IQ_OFF_IQ2XXS, quant__iq2xxs_grid, VK_IQ_N_IQ2XXS);
    put64(w + IQ_OFF_IQ2XS, quant__iq2xs_grid, VK_IQ_N_IQ2XS);
    put64(w + IQ_OFF_IQ2S, quant__iq2s_grid, VK_IQ_N_IQ2S);
    put32(w + IQ_OFF_IQ3XXS, quant__iq3xxs_grid, VK_IQ_N_IQ3XXS);
    put32(w + IQ_OFF_IQ3S, quant__iq3s_grid, VK_IQ_N_IQ3S);
    put64(w + IQ_OFF_IQ1S, quant__iq1s_grid, VK_IQ_N_IQ1S);
}

hearth_status vk__iq_grid_bind(struct vk_ctx *ctx, hearth_dtype t, const struct vk_buffer *other,
                               const struct vk_buffer **out)
{
    *out = other;
    if (!iq_lattice_type(t))
        return HEARTH_OK;
    if (!ctx->iq_grids.buf) {
        uint32_t *w = malloc((size_t)VK_IQ_GRID_WORDS * sizeof *w);
        if (!w)
            return err_set(HEARTH_ERR_NO_MEMORY, "vulkan: IQ grid table (%u words)",
                           (unsigned)VK_IQ_GRID_WORDS);
        grid_words(w);
        hearth_status st = vk_buffer_create(ctx, VK_IQ_GRID_WORDS * 4u, VK_BUF_DEVICE,
                                            &ctx->iq_grids);
        if (st == HEARTH_OK &&
            (st = vk_buffer_upload(ctx, &ctx->iq_grids, 0, w, VK_IQ_GRID_WORDS * 4u)) != HEARTH_OK)
            vk_buffer_destroy(ctx, &ctx->iq_grids);
        free(w);
        if (st != HEARTH_OK)
            return err_prefix(st, "vulkan: IQ grid buffer");
    }
    *out = &ctx->iq_grids;
    return HEARTH_OK;
}

void vk__iq_grids_destroy(struct vk_ctx *ctx)
{
    /*
     * Not vk_buffer_destroy: at context teardown the command ring is already
     * gone and the device idle, so there is no recording to finish and no
     * replay to invalidate.
     */
    if (ctx->iq_grids.buf)
        vkDestroyBuffer(ctx->dev, ctx->iq_grids.buf, NULL);
    if (ctx->iq_grids.mem)
        vkFreeMemory(ctx->dev, ctx->iq_grids.mem, NULL);
    ctx->iq_grids = (struct vk_buffer){0};
}
