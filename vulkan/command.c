/*
 * vulkan/command: recording and submission.
 *
 * A ring of VK_FRAMES frames (vk-internal.h), each a primary command buffer,
 * fence, descriptor pool and staging area. Recording serial s goes into
 * frame s % VK_FRAMES; vk__flush ends and submits it without waiting;
 * before a frame is begun again its previous serial is waited for. Fences
 * of one queue signal in submission order, so "serials < n_done are done"
 * is exact, and vk__wait_serial(s) retires frames in order up to s (fence
 * wait, then the frame's readbacks: staging -> host memcpys queued by
 * get_async). Waits happen only where a caller needs data or a resource:
 * vk_submit (all), events, downloads, frame or replay-secondary reuse.
 * Rejected: one command buffer submitted and waited per flush (the old
 * design: every upload stalled the host on the GPU); a timeline semaphore
 * (the ring needs per-frame fences anyway to recycle pools and staging).
 * Dispatches are recorded back to back, each followed by a global memory
 * barrier (compute+transfer writes -> compute+transfer reads/writes): ops of a
 * forward pass nearly always consume the previous op's output, and on every
 * driver hearth targets a global barrier costs no more than precise buffer
 * barriers. A barrier's scope spans earlier submissions on the queue, so the
 * order holds across frames. A full descriptor pool flushes (no wait) and
 * carries on recording in the next frame.
 * Under validation, a submission after which the layer has reported new
 * warnings or errors fails (HEARTH_ERR_BACKEND with the first message), so
 * every caller, not only the tests that read the count, stops on one.
 * Replay (replay.c): while ctx->cap is set, vk__dispatch captures each
 * dispatch (pipeline, buffers, push constants, grid) instead of recording
 * it; a capture is then recorded once into a secondary command buffer with
 * its own descriptor pool (vk__record_secondary) and executed in the primary
 * on every later walk that captures the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "vk-internal.h"

hearth_status vk__command_init(struct vk_ctx *ctx)
{
    hearth_status st = HEARTH_OK;
    VkCommandPoolCreateInfo cpi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = ctx->qfam,
    };
    VK_TRY(vkCreateCommandPool(ctx->dev, &cpi, NULL, &ctx->cpool), fail);
    VkDescriptorPoolSize ps = {
        .type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
        .descriptorCount = VK_DESC_SETS * VK_MAX_BIND,
    };
    VkDescriptorPoolCreateInfo dpi = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
        .maxSets = VK_DESC_SETS,
        .poolSizeCount = 1,
        .pPoolSizes = &ps,
    };
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    for (int i = 0; i < VK_FRAMES; i++) {
        struct vk_frame *f = &ctx->frames[i];
        VkCommandBufferAllocateInfo cai = {
            .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
            .commandPool = ctx->cpool,
            .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
            .commandBufferCount = 1,
        };
        VK_TRY(vkAllocateCommandBuffers(ctx->dev, &cai, &f->cmd), fail);
        VK_TRY(vkCreateFence(ctx->dev, &fci, NULL, &f->fence), fail);
        VK_TRY(vkCreateDescriptorPool(ctx->dev, &dpi, NULL, &f->dpool), fail);
    }
    ctx->cmd = ctx->frames[0].cmd;
    ctx->dpool = ctx->frames[0].dpool;
    if (ctx->caps.timestamps) {
        VkQueryPoolCreateInfo qpi = {
            .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
            .queryType = VK_QUERY_TYPE_TIMESTAMP,
            .queryCount = VK_TS_SLOTS,
        };
        VK_TRY(vkCreateQueryPool(ctx->dev, &qpi, NULL, &ctx->qpool), fail);
    }
    return HEARTH_OK;
fail:
    return st; /* vk_ctx_destroy -> vk__command_destroy frees what was made */
}

void vk__command_destroy(struct vk_ctx *ctx)
{
    /* the caller (vk_ctx_destroy) has waited for the device to go idle */
    if (ctx->qpool)
        vkDestroyQueryPool(ctx->dev, ctx->qpool, NULL);
    for (int i = 0; i < VK_FRAMES; i++) {
        struct vk_frame *f = &ctx->frames[i];
        if (f->dpool)
            vkDestroyDescriptorPool(ctx->dev, f->dpool, NULL);
        if (f->fence)
            vkDestroyFence(ctx->dev, f->fence, NULL);
        vk_buffer_destroy(ctx, &f->staging);
        free(f->rb);
        memset(f, 0, sizeof *f);
    }
    if (ctx->fence)
        vkDestroyFence(ctx->dev, ctx->fence, NULL);
    if (ctx->cpool)
        vkDestroyCommandPool(ctx->dev, ctx->cpool, NULL); /* frees every command buffer */
    ctx->qpool = VK_NULL_HANDLE;
    ctx->dpool = VK_NULL_HANDLE;
    ctx->fence = VK_NULL_HANDLE;
    ctx->cpool = VK_NULL_HANDLE;
    ctx->cmd = VK_NULL_HANDLE;
}

/* Waits for the oldest pending submission, runs its readbacks and frees its frame for reuse. */
static hearth_status retire_one(struct vk_ctx *ctx)
{
    hearth_status st = HEARTH_OK;
    struct vk_frame *f = &ctx->frames[ctx->n_done % VK_FRAMES];
    VK_TRY(vkWaitForFences(ctx->dev, 1, &f->fence, VK_TRUE, UINT64_MAX), fail);
    ctx->n_waits++;
    VK_TRY(vkResetFences(ctx->dev, 1, &f->fence), fail);
    f->pending = false;
    ctx->n_done++;
    for (int i = 0; i < f->n_rb; i++)
        memcpy(f->rb[i].dst, (const uint8_t *)f->staging.mapped + f->rb[i].off, f->rb[i].n);
    f->n_rb = 0;
    return HEARTH_OK;
fail:
    return st;
}

hearth_status vk__wait_serial(struct vk_ctx *ctx, uint64_t s)
{
    hearth_status st = HEARTH_OK;
    if (ctx->recording && s >= ctx->n_submits && (st = vk__flush(ctx)) != HEARTH_OK)
        return st;
    while (ctx->n_done <= s && ctx->n_done < ctx->n_submits)
        if ((st = retire_one(ctx)) != HEARTH_OK)
            return st;
    return vk__validation_check(ctx);
}

hearth_status vk__begin(struct vk_ctx *ctx)
{
    hearth_status st = HEARTH_OK;
    if (ctx->recording)
        return HEARTH_OK;
    /* the frame's previous recording (serial n_submits - VK_FRAMES) must be done */
    if (ctx->n_submits >= VK_FRAMES &&
        (st = vk__wait_serial(ctx, ctx->n_submits - VK_FRAMES)) != HEARTH_OK)
        return st;
    struct vk_frame *f = &ctx->frames[ctx->n_submits % VK_FRAMES];
    VK_TRY(vkResetCommandBuffer(f->cmd, 0), fail);
    if (f->dsets_used > 0)
        VK_TRY(vkResetDescriptorPool(ctx->dev, f->dpool, 0), fail);
    f->dsets_used = 0;
    f->staging_used = 0;
    VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    VK_TRY(vkBeginCommandBuffer(f->cmd, &bi), fail);
    ctx->cmd = f->cmd;
    ctx->dpool = f->dpool;
    ctx->recording = true;
    return HEARTH_OK;
fail:
    return st;
}

hearth_status vk__flush(struct vk_ctx *ctx)
{
    hearth_status st = HEARTH_OK;
    if (!ctx->recording)
        return HEARTH_OK;
    struct vk_frame *f = &ctx->frames[ctx->n_submits % VK_FRAMES];
    ctx->recording = false;
    VK_TRY(vkEndCommandBuffer(f->cmd), fail);
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .commandBufferCount = 1,
        .pCommandBuffers = &f->cmd,
    };
    VK_TRY(vkQueueSubmit(ctx->queue, 1, &si, f->fence), fail);
    f->pending = true;
    ctx->n_submits++; /* secondaries executed in it may be executed again once it completes */
    return vk__validation_check(ctx);
fail:
    /* nothing of this recording runs: its readbacks are dropped, the frame is reusable */
    f->n_rb = 0;
    (void)vkResetCommandBuffer(f->cmd, 0);
    return st;
}

hearth_status vk_submit(struct vk_ctx *ctx)
{
    hearth_status st = vk__flush(ctx);
    if (st != HEARTH_OK)
        return st;
    return ctx->n_submits > 0 ? vk__wait_serial(ctx, ctx->n_submits - 1)
                              : vk__validation_check(ctx);
}

void vk_ctx_submit_stats(const struct vk_ctx *ctx, struct vk_submit_stats *out)
{
    out->submits = ctx->n_submits;
    out->waits = ctx->n_waits;
    out->done = ctx->n_done;
    out->dispatches = ctx->n_dispatches;
    out->staging_bytes = 0;
    for (int i = 0; i < VK_FRAMES; i++)
        out->staging_bytes += ctx->frames[i].staging.size;
}

/*
 * A frame's staging cap. A multiple of 16, so a piece of at most this many
 * bytes, rounded up to 16 in vk__staging_alloc, still fits: no frame ever
 * grows past it, and VK_FRAMES of it is the exact worst case the planner
 * counts.
 */
static uint64_t staging_cap(uint64_t max_chunk)
{
    uint64_t m = max_chunk < (64ull << 20) ? max_chunk : (64ull << 20);
    return m >= 16 ? m / 16 * 16 : m;
}

uint64_t vk__staging_max(const struct vk_ctx *ctx)
{
    return staging_cap(ctx->caps.max_chunk);
}

uint64_t vk_host_staging_bytes(uint64_t max_chunk)
{
    return VK_FRAMES * staging_cap(max_chunk);
}

hearth_status vk__staging_alloc(struct vk_ctx *ctx, uint64_t n, const struct vk_buffer **buf,
                                uint64_t *off, void **host)
{
    hearth_status st = HEARTH_OK;
    const uint64_t len = (n + 15) / 16 * 16;
    if (n == 0 || n > vk__staging_max(ctx))
        return err_set(HEARTH_ERR_INTERNAL, "vulkan: staging piece of %llu bytes (1..%llu)",
                       (unsigned long long)n, (unsigned long long)vk__staging_max(ctx));
    for (;;) {
        if ((st = vk__begin(ctx)) != HEARTH_OK)
            return st;
        struct vk_frame *f = &ctx->frames[ctx->n_submits % VK_FRAMES];
        if (f->staging.buf && f->staging.size - f->staging_used >= len) {
            *buf = &f->staging;
            *off = f->staging_used;
            *host = (uint8_t *)f->staging.mapped + f->staging_used;
            f->staging_used += len;
            return HEARTH_OK;
        }
        if (f->staging_used > 0) {
            /* this recording already copies through it: submit and go on in the next frame */
            if ((st = vk__flush(ctx)) != HEARTH_OK)
                return st;
            continue;
        }
        /* unused by the open recording and idle (vk__begin retired it): grow */
        uint64_t want = f->staging.size * 2;
        if (want < (1ull << 20))
            want = 1ull << 20;
        if (want < len)
            want = len;
        if (want > vk__staging_max(ctx))
            want = vk__staging_max(ctx) > len ? vk__staging_max(ctx) : len;
        vk_buffer_destroy(ctx, &f->staging);
        if ((st = vk_buffer_create(ctx, want, VK_BUF_STAGING, &f->staging)) != HEARTH_OK)
            return err_prefix(st, "vulkan: staging of %llu bytes", (unsigned long long)want);
    }
}

hearth_status vk__readback_add(struct vk_ctx *ctx, void *dst, uint64_t off, uint64_t n)
{
    struct vk_frame *f = &ctx->frames[ctx->n_submits % VK_FRAMES];
    if (f->n_rb == f->cap_rb) {
        int cap = f->cap_rb ? 2 * f->cap_rb : 16;
        struct vk_readback *rb = realloc(f->rb, (size_t)cap * sizeof *rb);
        if (!rb)
            return err_set(HEARTH_ERR_NO_MEMORY, "vulkan: %d pending readbacks", cap);
        f->rb = rb;
        f->cap_rb = cap;
    }
    f->rb[f->n_rb++] = (struct vk_readback){dst, off, n};
    return HEARTH_OK;
}

hearth_status vk__validation_check(struct vk_ctx *ctx)
{
    if (ctx->val_errors == ctx->val_reported)
        return HEARTH_OK;
    int n = ctx->val_errors - ctx->val_reported;
    const char *m = ctx->val_reported == 0 ? ctx->val_first : ctx->val_last;
    ctx->val_reported = ctx->val_errors;
    return err_set(HEARTH_ERR_BACKEND, "vulkan: %d validation message%s (%d in all); %s: %s",
                   n, n == 1 ? "" : "s", ctx->val_errors, m == ctx->val_first ? "first" : "last", m);
}

void vk__grid(uint32_t n, uint32_t *x, uint32_t *ext)
{
    uint32_t gx = n < 65535u ? n : 65535u;
    if (gx == 0)
        gx = 1;
    *x = gx;
    *ext = (n + gx - 1) / gx;
    if (*ext == 0)
        *ext = 1;
}

/* Writes binds into set, then binds, pushes, dispatches and adds the global barrier to cmd. */
static void record_one(struct vk_ctx *ctx, VkCommandBuffer cmd, const struct vk_pipeline *p,
                       VkDescriptorSet set, const VkBuffer *bufs, const void *push,
                       uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz)
{
    VkDescriptorBufferInfo bi[VK_MAX_BIND];
    VkWriteDescriptorSet wr[VK_MAX_BIND];
    for (uint32_t i = 0; i < p->n_bind; i++) {
        bi[i] = (VkDescriptorBufferInfo){.buffer = bufs[i], .offset = 0, .range = VK_WHOLE_SIZE};
        wr[i] = (VkWriteDescriptorSet){
            .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
            .dstSet = set,
            .dstBinding = i,
            .descriptorCount = 1,
            .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .pBufferInfo = &bi[i],
        };
    }
    vkUpdateDescriptorSets(ctx->dev, p->n_bind, wr, 0, NULL);
    vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipe);
    vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0, NULL);
    vkCmdPushConstants(cmd, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size, push);
    vkCmdDispatch(cmd, gx, gy, gz);
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                         VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
    };
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1,
                         &mb, 0, NULL, 0, NULL);
}

/* One dispatch into the context's primary command buffer (set from the per-submit pool). */
static hearth_status primary_dispatch(struct vk_ctx *ctx, struct vk_pipeline *p,
                                      const VkBuffer *bufs, const void *push, uint32_t push_size,
                                      uint32_t gx, uint32_t gy, uint32_t gz)
{
    hearth_status st = HEARTH_OK;
    if (ctx->recording && ctx->frames[ctx->n_submits % VK_FRAMES].dsets_used >= VK_DESC_SETS &&
        (st = vk__flush(ctx)) != HEARTH_OK)
        return st;
    if ((st = vk__begin(ctx)) != HEARTH_OK)
        return st;
    VkDescriptorSet set;
    VkDescriptorSetAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
        .descriptorPool = ctx->dpool,
        .descriptorSetCount = 1,
        .pSetLayouts = &p->dsl,
    };
    VK_TRY(vkAllocateDescriptorSets(ctx->dev, &ai, &set), fail);
    ctx->frames[ctx->n_submits % VK_FRAMES].dsets_used++;
    record_one(ctx, ctx->cmd, p, set, bufs, push, push_size, gx, gy, gz);
    return HEARTH_OK;
fail:
    return st;
}

static hearth_status capture_one(struct vk_capture *c, enum vk_shader id, uint32_t n_bind,
                                 const VkBuffer *bufs, const void *push, uint32_t push_size,
                                 uint32_t gx, uint32_t gy, uint32_t gz)
{
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 32;
        struct vk_cap_disp *d = realloc(c->d, (size_t)cap * sizeof *d);
        if (!d) {
            c->err = err_set(HEARTH_ERR_NO_MEMORY, "vulkan: capture of %d dispatches", cap);
            return c->err;
        }
        c->d = d;
        c->cap = cap;
    }
    struct vk_cap_disp *e = &c->d[c->n++];
    memset(e, 0, sizeof *e);
    e->id = (uint32_t)id;
    e->push_size = push_size;
    e->gx = gx, e->gy = gy, e->gz = gz;
    e->n_bind = n_bind;
    memcpy(e->bufs, bufs, n_bind * sizeof *bufs);
    memcpy(e->push, push, push_size);
    return HEARTH_OK;
}

hearth_status vk__dispatch(struct vk_ctx *ctx, enum vk_shader id, const struct vk_buffer *const *binds,
                           const void *push, uint32_t push_size, uint32_t gx, uint32_t gy,
                           uint32_t gz)
{
    hearth_status st = HEARTH_OK;
    struct vk_pipeline *p;
    if ((st = vk__pipeline_get(ctx, id, &p)) != HEARTH_OK)
        return st;
    if (push_size != p->push_size || push_size > sizeof(((struct vk_cap_disp *)0)->push))
        return err_set(HEARTH_ERR_INTERNAL, "vulkan: shader %d takes %u bytes of push "
                       "constants, given %u", (int)id, p->push_size, push_size);
    VkBuffer bufs[VK_MAX_BIND];
    for (uint32_t i = 0; i < p->n_bind; i++)
        bufs[i] = binds[i]->buf;
    ctx->n_dispatches++;
    if (ctx->cap)
        return capture_one(ctx->cap, id, p->n_bind, bufs, push, push_size, gx, gy, gz);
    return primary_dispatch(ctx, p, bufs, push, push_size, gx, gy, gz);
}

uint32_t vk__pos_slot(struct vk_ctx *ctx, uint32_t pos)
{
    struct vk_capture *c = ctx->cap;
    if (!c)
        return 0;
    for (uint32_t i = 0; i < c->n_vals; i++)
        if (c->vals[i] == pos)
            return i + 1;
    if (c->n_vals == VK_STEP_SLOTS) {
        c->overflow = true;
        return 0;
    }
    c->vals[c->n_vals++] = pos;
    return c->n_vals;
}

const struct vk_buffer *vk__step_bind(struct vk_ctx *ctx, uint32_t slot,
                                      const struct vk_buffer *placeholder)
{
    return slot && ctx->cap ? ctx->cap->step : placeholder;
}

hearth_status vk__dispatch_captured(struct vk_ctx *ctx, const struct vk_cap_disp *d, int n)
{
    hearth_status st = HEARTH_OK;
    for (int i = 0; i < n && st == HEARTH_OK; i++) {
        struct vk_pipeline *p;
        if ((st = vk__pipeline_get(ctx, (enum vk_shader)d[i].id, &p)) == HEARTH_OK)
            st = primary_dispatch(ctx, p, d[i].bufs, d[i].push, d[i].push_size, d[i].gx, d[i].gy,
                                  d[i].gz);
    }
    return st;
}

void vk__secondary_free(struct vk_ctx *ctx, VkCommandBuffer cmd, VkDescriptorPool pool)
{
    if (cmd)
        vkFreeCommandBuffers(ctx->dev, ctx->cpool, 1, &cmd);
    if (pool)
        vkDestroyDescriptorPool(ctx->dev, pool, NULL);
}

hearth_status vk__record_secondary(struct vk_ctx *ctx, const struct vk_cap_disp *d, int n,
                                   VkCommandBuffer *cmd, VkDescriptorPool *pool)
{
    hearth_status st = HEARTH_OK;
    *cmd = VK_NULL_HANDLE;
    *pool = VK_NULL_HANDLE;
    uint32_t n_desc = 0;
    for (int i = 0; i < n; i++)
        n_desc += d[i].n_bind;
    VkDescriptorPoolSize ps = {
        .type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
        .descriptorCount = n_desc ? n_desc : 1,
    };
    VkDescriptorPoolCreateInfo dpi = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
        .maxSets = n > 0 ? (uint32_t)n : 1,
        .poolSizeCount = 1,
        .pPoolSizes = &ps,
    };
    VK_TRY(vkCreateDescriptorPool(ctx->dev, &dpi, NULL, pool), fail);
    VkCommandBufferAllocateInfo cai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = ctx->cpool,
        .level = VK_COMMAND_BUFFER_LEVEL_SECONDARY,
        .commandBufferCount = 1,
    };
    VK_TRY(vkAllocateCommandBuffers(ctx->dev, &cai, cmd), fail);
    /* no ONE_TIME_SUBMIT (it is executed again), no SIMULTANEOUS_USE (replay.c waits first) */
    VkCommandBufferInheritanceInfo inh = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_INHERITANCE_INFO,
    };
    VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .pInheritanceInfo = &inh,
    };
    VK_TRY(vkBeginCommandBuffer(*cmd, &bi), fail);
    for (int i = 0; i < n; i++) {
        struct vk_pipeline *p;
        if ((st = vk__pipeline_get(ctx, (enum vk_shader)d[i].id, &p)) != HEARTH_OK)
            goto fail;
        VkDescriptorSet set;
        VkDescriptorSetAllocateInfo ai = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
            .descriptorPool = *pool,
            .descriptorSetCount = 1,
            .pSetLayouts = &p->dsl,
        };
        VK_TRY(vkAllocateDescriptorSets(ctx->dev, &ai, &set), fail);
        record_one(ctx, *cmd, p, set, d[i].bufs, d[i].push, d[i].push_size, d[i].gx, d[i].gy,
                   d[i].gz);
    }
    VK_TRY(vkEndCommandBuffer(*cmd), fail);
    return HEARTH_OK;
fail:
    vk__secondary_free(ctx, *cmd, *pool);
    *cmd = VK_NULL_HANDLE;
    *pool = VK_NULL_HANDLE;
    return st;
}

hearth_status vk_timestamp(struct vk_ctx *ctx, uint32_t slot)
{
    if (!ctx->qpool)
        return err_set(HEARTH_ERR_UNSUPPORTED, "vulkan: %s has no compute timestamps", ctx->caps.name);
    if (slot >= VK_TS_SLOTS)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan: timestamp slot %u >= %d", slot, VK_TS_SLOTS);
    hearth_status st = vk__begin(ctx);
    if (st != HEARTH_OK)
        return st;
    vkCmdResetQueryPool(ctx->cmd, ctx->qpool, slot, 1);
    vkCmdWriteTimestamp(ctx->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, ctx->qpool, slot);
    ctx->ts_written |= 1ull << slot;
    return HEARTH_OK;
}

hearth_status vk_timestamp_elapsed_ns(struct vk_ctx *ctx, uint32_t a, uint32_t b, double *ns)
{
    hearth_status st = HEARTH_OK;
    if (!ctx->qpool)
        return err_set(HEARTH_ERR_UNSUPPORTED, "vulkan: %s has no compute timestamps", ctx->caps.name);
    if (a >= VK_TS_SLOTS || b >= VK_TS_SLOTS || !(ctx->ts_written >> a & 1) ||
        !(ctx->ts_written >> b & 1))
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan: timestamp slots %u, %u not written", a, b);
    uint64_t t[2];
    VK_TRY(vkGetQueryPoolResults(ctx->dev, ctx->qpool, a, 1, sizeof t[0], &t[0], sizeof t[0],
                                 VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT), fail);
    VK_TRY(vkGetQueryPoolResults(ctx->dev, ctx->qpool, b, 1, sizeof t[1], &t[1], sizeof t[1],
                                 VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT), fail);
    *ns = ((double)t[1] - (double)t[0]) * (double)ctx->caps.timestamp_period_ns;
    return HEARTH_OK;
fail:
    return st;
}
