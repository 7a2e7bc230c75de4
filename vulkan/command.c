/*
 * vulkan/command: recording and submission.
 *
 * The context has one command buffer, one fence and one descriptor pool.
 * Dispatches are recorded back to back, each followed by a global memory
 * barrier (compute+transfer writes -> compute+transfer reads/writes): ops of a
 * forward pass nearly always consume the previous op's output, and on every
 * driver hearth targets a global barrier costs no more than precise buffer
 * barriers. vk_submit ends the buffer, submits, waits on the fence and
 * resets the pool, so descriptor sets never outlive one submission. A full
 * descriptor pool flushes (submit + wait) and carries on recording.
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
    VkCommandBufferAllocateInfo cai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = ctx->cpool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 1,
    };
    VK_TRY(vkAllocateCommandBuffers(ctx->dev, &cai, &ctx->cmd), fail);
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VK_TRY(vkCreateFence(ctx->dev, &fci, NULL, &ctx->fence), fail);
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
    VK_TRY(vkCreateDescriptorPool(ctx->dev, &dpi, NULL, &ctx->dpool), fail);
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
    if (ctx->qpool)
        vkDestroyQueryPool(ctx->dev, ctx->qpool, NULL);
    if (ctx->dpool)
        vkDestroyDescriptorPool(ctx->dev, ctx->dpool, NULL);
    if (ctx->fence)
        vkDestroyFence(ctx->dev, ctx->fence, NULL);
    if (ctx->cpool)
        vkDestroyCommandPool(ctx->dev, ctx->cpool, NULL); /* frees ctx->cmd */
    ctx->qpool = VK_NULL_HANDLE;
    ctx->dpool = VK_NULL_HANDLE;
    ctx->fence = VK_NULL_HANDLE;
    ctx->cpool = VK_NULL_HANDLE;
}

hearth_status vk__begin(struct vk_ctx *ctx)
{
    hearth_status st = HEARTH_OK;
    if (ctx->recording)
        return HEARTH_OK;
    VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    VK_TRY(vkBeginCommandBuffer(ctx->cmd, &bi), fail);
    ctx->recording = true;
    return HEARTH_OK;
fail:
    return st;
}

hearth_status vk_submit(struct vk_ctx *ctx)
{
    hearth_status st = HEARTH_OK;
    if (!ctx->recording)
        return HEARTH_OK;
    ctx->recording = false;
    VK_TRY(vkEndCommandBuffer(ctx->cmd), fail);
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .commandBufferCount = 1,
        .pCommandBuffers = &ctx->cmd,
    };
    VK_TRY(vkQueueSubmit(ctx->queue, 1, &si, ctx->fence), fail);
    ctx->n_submits++; /* secondaries executed in it may now be executed in the next one */
    VK_TRY(vkWaitForFences(ctx->dev, 1, &ctx->fence, VK_TRUE, UINT64_MAX), fail);
    VK_TRY(vkResetFences(ctx->dev, 1, &ctx->fence), fail);
    VK_TRY(vkResetCommandBuffer(ctx->cmd, 0), fail);
    VK_TRY(vkResetDescriptorPool(ctx->dev, ctx->dpool, 0), fail);
    ctx->dsets_used = 0;
    return vk__validation_check(ctx);
fail:
    return st;
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
    if (ctx->dsets_used >= VK_DESC_SETS && (st = vk_submit(ctx)) != HEARTH_OK)
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
    ctx->dsets_used++;
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
    /* no ONE_TIME_SUBMIT (it is executed again), no SIMULTANEOUS_USE (replay.c flushes first) */
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
