/*
 * vulkan/buffer: device memory, the staging path, and weight chunks.
 *
 * vk__memory_type is the one place a memory type is chosen. Device buffers
 * want DEVICE_LOCAL and avoid HOST_VISIBLE (so a discrete GPU's small
 * BAR window is not used up by weights) but accept anything (lavapipe's only
 * memory is host memory). Staging wants HOST_VISIBLE | HOST_COHERENT.
 *
 * Every allocation gets 16 bytes of slack past its usable size: dequant.glsl
 * assembles an unaligned 32-bit read from two words, and the second word of a
 * read at the very end of the last row must still be inside the buffer.
 *
 * Weight chunks: tensors are packed in order, each at a 256-byte aligned
 * offset, and a new chunk starts whenever the next tensor would not fit in
 * caps.max_chunk (maxMemoryAllocationSize, maxStorageBufferRange, 4 GiB and
 * any test override, whichever is least). So a 70B model loads on a driver
 * capping allocations at 2 GiB as ~20 chunks, and a matmul binds the one
 * chunk holding its tensor. Splitting a single tensor across chunks is
 * rejected here; the scheduler, which allocates one buffer per weight
 * through the buffer type, splits the one matrix that passes real caps (the
 * LM head, by rows: plan_head_split_rows) and keeps any other oversized
 * unit off the device.
 */
#include <stdlib.h>
#include <string.h>

#include "vk-internal.h"

enum { VK_SLACK = 16, VK_ALIGN = 256 };

int vk__memory_type(const struct vk_ctx *ctx, uint32_t type_bits, VkMemoryPropertyFlags want,
                    VkMemoryPropertyFlags avoid)
{
    const VkPhysicalDeviceMemoryProperties *mp = &ctx->mem_props;
    int fallback = -1;
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++) {
        if (!(type_bits & (1u << i)))
            continue;
        VkMemoryPropertyFlags f = mp->memoryTypes[i].propertyFlags;
        if ((f & want) != want)
            continue;
        if (!(f & avoid))
            return (int)i;
        if (fallback < 0)
            fallback = (int)i;
    }
    return fallback;
}

bool vk__word_offset(struct vk_view v, uint32_t *out)
{
    if (v.offset % 4 != 0 || v.offset / 4 > 0xffffffffull)
        return false;
    *out = (uint32_t)(v.offset / 4);
    return true;
}

hearth_status vk__view_words(struct vk_view v, uint64_t bytes, const char *op, const char *what,
                             uint32_t *words)
{
    if (!v.buf || !v.buf->buf)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan %s: %s has no buffer", op, what);
    if (v.offset > v.buf->size || bytes > v.buf->size - v.offset)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan %s: %s needs %llu bytes at offset %llu of "
                       "a %llu-byte buffer", op, what, (unsigned long long)bytes,
                       (unsigned long long)v.offset, (unsigned long long)v.buf->size);
    if (!vk__word_offset(v, words))
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan %s: %s offset %llu is not 4-byte aligned",
                       op, what, (unsigned long long)v.offset);
    return HEARTH_OK;
}

hearth_status vk_buffer_create(struct vk_ctx *ctx, uint64_t size, enum vk_buffer_kind kind,
                               struct vk_buffer *out)
{
    hearth_status st = HEARTH_OK;
    memset(out, 0, sizeof *out);
    out->kind = kind; /* a failed staging buffer is not mistaken for a device one when freed */
    if (size == 0 || size + VK_SLACK > ctx->caps.max_chunk + VK_ALIGN)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan: buffer of %llu bytes (limit %llu)",
                       (unsigned long long)size, (unsigned long long)ctx->caps.max_chunk);
    VkBufferCreateInfo bci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size + VK_SLACK,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                 VK_BUFFER_USAGE_TRANSFER_DST_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VK_TRY(vkCreateBuffer(ctx->dev, &bci, NULL, &out->buf), fail);
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(ctx->dev, out->buf, &req);
    int mt = kind == VK_BUF_STAGING
                 ? vk__memory_type(ctx, req.memoryTypeBits,
                                   VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                       VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, 0)
                 : vk__memory_type(ctx, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                   VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT);
    if (mt < 0 && kind == VK_BUF_DEVICE)
        mt = vk__memory_type(ctx, req.memoryTypeBits, 0, 0);
    if (mt < 0) {
        st = err_set(HEARTH_ERR_UNSUPPORTED, "vulkan: no memory type for a %s buffer",
                     kind == VK_BUF_STAGING ? "staging" : "device");
        goto fail;
    }
    VkMemoryAllocateInfo mai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .allocationSize = req.size,
        .memoryTypeIndex = (uint32_t)mt,
    };
    VK_TRY(vkAllocateMemory(ctx->dev, &mai, NULL, &out->mem), fail);
    VK_TRY(vkBindBufferMemory(ctx->dev, out->buf, out->mem, 0), fail);
    if (kind == VK_BUF_STAGING)
        VK_TRY(vkMapMemory(ctx->dev, out->mem, 0, VK_WHOLE_SIZE, 0, &out->mapped), fail);
    out->size = size;
    out->kind = kind;
    return HEARTH_OK;
fail:
    vk_buffer_destroy(ctx, out);
    return st;
}

void vk_buffer_destroy(struct vk_ctx *ctx, struct vk_buffer *b)
{
    if (b->buf && b->kind == VK_BUF_DEVICE) {
        ctx->buf_epoch++; /* replay.c drops recordings that might bind it */
        if (ctx->recording || ctx->n_done < ctx->n_submits) {
            /* work in flight may use it: finish it (a validation message stays for the caller) */
            int reported = ctx->val_reported;
            (void)vk_submit(ctx);
            ctx->val_reported = reported;
        }
    }
    if (b->buf)
        vkDestroyBuffer(ctx->dev, b->buf, NULL);
    if (b->mem)
        vkFreeMemory(ctx->dev, b->mem, NULL); /* unmaps implicitly */
    memset(b, 0, sizeof *b);
}

/*
 * After a copy: its transfer writes visible to later dispatches, copies and
 * (for readbacks) the host. Reads by earlier dispatches are ordered before
 * the copy by vk__dispatch's barrier (compute -> transfer).
 */
static void copy_barrier(VkCommandBuffer cmd)
{
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                         VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT |
                         VK_ACCESS_HOST_READ_BIT,
    };
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT |
                             VK_PIPELINE_STAGE_HOST_BIT,
                         0, 1, &mb, 0, NULL, 0, NULL);
}

static hearth_status check_range(const struct vk_buffer *b, uint64_t offset, uint64_t n, bool up)
{
    if (offset > b->size || n > b->size - offset)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan: %s of %llu bytes at %llu past a "
                       "%llu-byte buffer", up ? "upload" : "download", (unsigned long long)n,
                       (unsigned long long)offset, (unsigned long long)b->size);
    return HEARTH_OK;
}

hearth_status vk_buffer_upload(struct vk_ctx *ctx, const struct vk_buffer *b, uint64_t offset,
                               const void *src, uint64_t n)
{
    hearth_status st = check_range(b, offset, n, true);
    const uint64_t piece = vk__staging_max(ctx);
    for (uint64_t done = 0; st == HEARTH_OK && done < n; done += piece) {
        uint64_t len = n - done < piece ? n - done : piece, soff = 0;
        const struct vk_buffer *sb = NULL;
        void *host = NULL;
        if ((st = vk__staging_alloc(ctx, len, &sb, &soff, &host)) != HEARTH_OK)
            break;
        memcpy(host, (const uint8_t *)src + done, len);
        VkBufferCopy reg = {.srcOffset = soff, .dstOffset = offset + done, .size = len};
        vkCmdCopyBuffer(ctx->cmd, sb->buf, b->buf, 1, &reg);
        copy_barrier(ctx->cmd);
    }
    return st;
}

hearth_status vk_buffer_download_async(struct vk_ctx *ctx, const struct vk_buffer *b,
                                       uint64_t offset, void *dst, uint64_t n)
{
    hearth_status st = check_range(b, offset, n, false);
    const uint64_t piece = vk__staging_max(ctx);
    for (uint64_t done = 0; st == HEARTH_OK && done < n; done += piece) {
        uint64_t len = n - done < piece ? n - done : piece, soff = 0;
        const struct vk_buffer *sb = NULL;
        void *host = NULL;
        if ((st = vk__staging_alloc(ctx, len, &sb, &soff, &host)) != HEARTH_OK)
            break;
        VkBufferCopy reg = {.srcOffset = offset + done, .dstOffset = soff, .size = len};
        vkCmdCopyBuffer(ctx->cmd, b->buf, sb->buf, 1, &reg);
        copy_barrier(ctx->cmd);
        st = vk__readback_add(ctx, (uint8_t *)dst + done, soff, len);
    }
    return st;
}

hearth_status vk_buffer_download(struct vk_ctx *ctx, const struct vk_buffer *b, uint64_t offset,
                                 void *dst, uint64_t n)
{
    hearth_status st = vk_buffer_download_async(ctx, b, offset, dst, n);
    if (st != HEARTH_OK || n == 0)
        return st;
    /* the recording holding the last piece; earlier pieces are in earlier serials */
    return vk__wait_serial(ctx, ctx->n_submits);
}

hearth_status vk_buffer_fill(struct vk_ctx *ctx, const struct vk_buffer *b, uint64_t offset,
                             uint64_t n, uint32_t value)
{
    if (n % 4 != 0 || offset % 4 != 0 || offset > b->size || n > b->size - offset)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan: fill of %llu bytes at %llu",
                       (unsigned long long)n, (unsigned long long)offset);
    hearth_status st = vk__begin(ctx);
    if (st != HEARTH_OK)
        return st;
    vkCmdFillBuffer(ctx->cmd, b->buf, offset, n, value);
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                         VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
    };
    vkCmdPipelineBarrier(ctx->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0,
                         1, &mb, 0, NULL, 0, NULL);
    return HEARTH_OK;
}

hearth_status vk_buffer_copy(struct vk_ctx *ctx, const struct vk_buffer *dst, uint64_t doff,
                             const struct vk_buffer *src, uint64_t soff, uint64_t n)
{
    if (doff > dst->size || n > dst->size - doff || soff > src->size || n > src->size - soff ||
        (dst == src && doff < soff + n && soff < doff + n))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "vulkan: copy of %llu bytes from %llu (of %llu) to %llu (of %llu): out of "
                       "range or overlapping",
                       (unsigned long long)n, (unsigned long long)soff,
                       (unsigned long long)src->size, (unsigned long long)doff,
                       (unsigned long long)dst->size);
    hearth_status st = vk__begin(ctx);
    if (st != HEARTH_OK || n == 0)
        return st;
    VkBufferCopy reg = {.srcOffset = soff, .dstOffset = doff, .size = n};
    vkCmdCopyBuffer(ctx->cmd, src->buf, dst->buf, 1, &reg);
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                         VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
    };
    vkCmdPipelineBarrier(ctx->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0,
                         1, &mb, 0, NULL, 0, NULL);
    return HEARTH_OK;
}

hearth_status vk_weights_create(struct vk_ctx *ctx, int n, const void *const *data,
                                const uint64_t *bytes, struct vk_weights **out)
{
    hearth_status st = HEARTH_OK;
    *out = NULL;
    struct vk_weights *w = calloc(1, sizeof *w);
    if (!w)
        return err_set(HEARTH_ERR_NO_MEMORY, "vulkan: weight set");
    w->n_tensors = n;
    w->chunk_of = calloc((size_t)(n > 0 ? n : 1), sizeof *w->chunk_of);
    w->offset_of = calloc((size_t)(n > 0 ? n : 1), sizeof *w->offset_of);
    uint64_t *chunk_bytes = calloc((size_t)(n > 0 ? n : 1), sizeof *chunk_bytes);
    if (!w->chunk_of || !w->offset_of || !chunk_bytes) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "vulkan: weight set tables (%d tensors)", n);
        goto fail;
    }
    /* plan: first fit in order, a new chunk when the next tensor does not fit */
    const uint64_t cap = ctx->caps.max_chunk;
    int nc = 0;
    uint64_t used = 0;
    for (int i = 0; i < n; i++) {
        if (bytes[i] == 0 || bytes[i] > cap) {
            st = err_set(HEARTH_ERR_UNSUPPORTED, "vulkan: weight tensor %d has %llu bytes; one "
                         "buffer holds at most %llu (maxMemoryAllocationSize / "
                         "maxStorageBufferRange)", i, (unsigned long long)bytes[i],
                         (unsigned long long)cap);
            goto fail;
        }
        uint64_t at = (used + VK_ALIGN - 1) / VK_ALIGN * VK_ALIGN;
        if (nc == 0 || at + bytes[i] > cap) {
            nc++;
            at = 0;
        }
        w->chunk_of[i] = nc - 1;
        w->offset_of[i] = at;
        used = at + bytes[i];
        chunk_bytes[nc - 1] = used;
    }
    w->chunks = calloc((size_t)(nc > 0 ? nc : 1), sizeof *w->chunks);
    if (!w->chunks) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "vulkan: %d chunks", nc);
        goto fail;
    }
    for (int c = 0; c < nc; c++) {
        if ((st = vk_buffer_create(ctx, chunk_bytes[c], VK_BUF_DEVICE, &w->chunks[c])) != HEARTH_OK)
            goto fail;
        w->n_chunks = c + 1;
    }
    for (int i = 0; i < n; i++)
        if ((st = vk_buffer_upload(ctx, &w->chunks[w->chunk_of[i]], w->offset_of[i], data[i],
                                   bytes[i])) != HEARTH_OK)
            goto fail;
    free(chunk_bytes);
    *out = w;
    return HEARTH_OK;
fail:
    free(chunk_bytes);
    vk_weights_destroy(ctx, w);
    return st;
}

void vk_weights_destroy(struct vk_ctx *ctx, struct vk_weights *w)
{
    if (!w)
        return;
    for (int c = 0; c < w->n_chunks; c++)
        vk_buffer_destroy(ctx, &w->chunks[c]);
    free(w->chunks);
    free(w->chunk_of);
    free(w->offset_of);
    free(w);
}

struct vk_view vk_weights_view(const struct vk_weights *w, int i)
{
    struct vk_view v = {&w->chunks[w->chunk_of[i]], w->offset_of[i]};
    return v;
}
