/*
 * vulkan/replay: records a decode step's op list once and replays it.
 *
 * graph.c walks a single-token op list with the context capturing
 * (ctx->cap): vk__dispatch appends each dispatch (pipeline, buffers, push
 * constants, grid) to a list instead of recording it, and the ops that take
 * a position (rope, kv_store, attention) put a step-buffer slot in their
 * push constants instead of the position. The captured bytes are therefore
 * the same for every token of a given op list; they are the key. A key seen
 * before executes its recorded secondary command buffer in the context's
 * primary (vkCmdExecuteCommands), after a vkCmdUpdateBuffer of the positions
 * into the step buffer; a new key is recorded once (vk__record_secondary).
 * The walk itself stays: it is plain C (argument checks, push structs), and
 * comparing what it would record is what makes a replay exactly the same
 * work as a fresh recording, so results are bit-identical by construction.
 * Invariants: a recording may bind only live buffers (ctx->buf_epoch moves
 * whenever a device buffer dies, and then every recording is dropped); a
 * secondary is executed at most once per primary (no SIMULTANEOUS_USE: a
 * second use in the same primary submits the first); recordings are freed
 * only when no primary that executes them is pending or open (vk_submit
 * first), and a secondary is executed again only once every primary that
 * executed it has completed (vk__wait_serial: frames are submitted without
 * waiting, command.c). Rejected: patching push constants in place (a command buffer
 * cannot be edited), one primary per op list submitted on its own (a fence
 * wait per block, and uploads would need their own ordering), a key hashed
 * from the hearth_op structs (their padding and unused union members are not
 * defined, and a field the walk ignores would split keys for nothing).
 */
#include <stdlib.h>
#include <string.h>

#include "vk-graph.h"

enum { REPLAY_MAX = 1024 }; /* recordings per stream: 2 per layer + embed + logits */

struct vk_rec {
    uint64_t hash;
    int n;                   /* dispatches */
    struct vk_cap_disp *d;   /* [n]: the key */
    uint32_t n_vals;         /* step slots it reads */
    VkCommandBuffer cmd;     /* secondary */
    VkDescriptorPool pool;   /* its sets */
    uint64_t last_submit;    /* ctx->n_submits when last executed; UINT64_MAX: never */
};

struct vk_replay {
    struct vk_ctx *ctx;
    struct vk_buffer step;   /* [VK_STEP_SLOTS] uint32 positions */
    struct vk_capture cap;
    struct vk_rec *recs;     /* [n_recs] */
    int n_recs;
    uint64_t epoch;          /* ctx->buf_epoch the recordings were made under */
    uint32_t step_vals[VK_STEP_SLOTS]; /* what the open primary last wrote into step */
    uint32_t step_n;
    uint64_t step_submit;    /* ctx->n_submits of that write; UINT64_MAX: none */
    struct vk_replay_stats stats;
};

hearth_status vk_replay_create(struct vk_ctx *ctx, struct vk_replay **out)
{
    *out = NULL;
    struct vk_replay *r = calloc(1, sizeof *r);
    struct vk_rec *recs = calloc(REPLAY_MAX, sizeof *recs);
    if (!r || !recs) {
        free(r);
        free(recs);
        return err_set(HEARTH_ERR_NO_MEMORY, "vulkan: replay state");
    }
    r->ctx = ctx;
    r->recs = recs;
    hearth_status st = vk_buffer_create(ctx, VK_STEP_SLOTS * 4, VK_BUF_DEVICE, &r->step);
    if (st != HEARTH_OK) {
        free(recs);
        free(r);
        return err_prefix(st, "vulkan: replay step buffer");
    }
    r->epoch = ctx->buf_epoch;
    r->step_submit = UINT64_MAX;
    r->cap.step = &r->step;
    *out = r;
    return HEARTH_OK;
}

/* Frees every recording; the caller has made sure none is pending or open. */
static void drop_all(struct vk_replay *r)
{
    for (int i = 0; i < r->n_recs; i++) {
        vk__secondary_free(r->ctx, r->recs[i].cmd, r->recs[i].pool);
        free(r->recs[i].d);
    }
    r->n_recs = 0;
}

void vk_replay_destroy(struct vk_replay *r)
{
    if (!r)
        return;
    vk_submit(r->ctx);
    drop_all(r);
    vk_buffer_destroy(r->ctx, &r->step);
    free(r->cap.d);
    free(r->recs);
    free(r);
}

void vk_replay_begin(struct vk_replay *r)
{
    struct vk_capture *c = &r->cap;
    c->n = 0;
    c->n_vals = 0;
    c->overflow = false;
    c->err = HEARTH_OK;
    r->ctx->cap = c;
}

static uint64_t fnv1a(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Executes rec in the primary, with the step buffer holding vals[0..n_vals). */
static hearth_status execute(struct vk_replay *r, struct vk_rec *rec, const uint32_t *vals,
                             uint32_t n_vals)
{
    struct vk_ctx *ctx = r->ctx;
    hearth_status st;
    /*
     * A primary that executes rec is open or pending (no SIMULTANEOUS_USE):
     * submit it if open and wait for it. One walk per token between reads of
     * the logits means it has normally completed already.
     */
    if (rec->last_submit != UINT64_MAX && rec->last_submit >= ctx->n_done &&
        (st = vk__wait_serial(ctx, rec->last_submit)) != HEARTH_OK)
        return st;
    if ((st = vk__begin(ctx)) != HEARTH_OK)
        return st;
    bool same = r->step_submit == ctx->n_submits && r->step_n >= n_vals &&
                memcmp(r->step_vals, vals, n_vals * sizeof *vals) == 0;
    if (n_vals > 0 && !same) {
        /*
         * Earlier dispatches that read step end with vk__dispatch's barrier
         * (compute -> transfer), so overwriting it here is ordered after them.
         */
        vkCmdUpdateBuffer(ctx->cmd, r->step.buf, 0, n_vals * 4, vals);
        VkMemoryBarrier mb = {
            .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
            .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
            .dstAccessMask = VK_ACCESS_SHADER_READ_BIT,
        };
        vkCmdPipelineBarrier(ctx->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
        memcpy(r->step_vals, vals, n_vals * sizeof *vals);
        r->step_n = n_vals;
        r->step_submit = ctx->n_submits;
    }
    vkCmdExecuteCommands(ctx->cmd, 1, &rec->cmd);
    rec->last_submit = ctx->n_submits;
    return HEARTH_OK;
}

/* A new recording of the capture; NULL with *st set on failure. */
static struct vk_rec *record(struct vk_replay *r, uint64_t hash, hearth_status *st)
{
    struct vk_ctx *ctx = r->ctx;
    const struct vk_capture *c = &r->cap;
    if (r->n_recs == REPLAY_MAX) {
        /* a walk that never repeats (or a huge model): start over rather than grow */
        if ((*st = vk_submit(ctx)) != HEARTH_OK)
            return NULL;
        drop_all(r);
    }
    struct vk_rec *rec = &r->recs[r->n_recs];
    memset(rec, 0, sizeof *rec);
    rec->d = malloc((size_t)(c->n > 0 ? c->n : 1) * sizeof *rec->d);
    if (!rec->d) {
        *st = err_set(HEARTH_ERR_NO_MEMORY, "vulkan: replay key of %d dispatches", c->n);
        return NULL;
    }
    memcpy(rec->d, c->d, (size_t)c->n * sizeof *rec->d);
    if ((*st = vk__record_secondary(ctx, c->d, c->n, &rec->cmd, &rec->pool)) != HEARTH_OK) {
        free(rec->d);
        rec->d = NULL;
        return NULL;
    }
    rec->hash = hash;
    rec->n = c->n;
    rec->n_vals = c->n_vals;
    rec->last_submit = UINT64_MAX;
    r->n_recs++;
    r->stats.records++;
    return rec;
}

hearth_status vk_replay_end(struct vk_replay *r, hearth_status walk_st)
{
    struct vk_ctx *ctx = r->ctx;
    struct vk_capture *c = &r->cap;
    ctx->cap = NULL;
    if (walk_st != HEARTH_OK)
        return walk_st;
    if (c->err != HEARTH_OK)
        return c->err;
    hearth_status st;
    if (r->epoch != ctx->buf_epoch) {
        /* a device buffer died (before or during the walk): recordings may bind it */
        if ((st = vk_submit(ctx)) != HEARTH_OK)
            return st;
        drop_all(r);
        r->epoch = ctx->buf_epoch;
    }
    if (c->overflow) {
        /* positions took push constants where slots ran out: record once, keep nothing */
        r->stats.walks++;
        if (c->n_vals > 0 && (st = vk__begin(ctx)) != HEARTH_OK)
            return st;
        if (c->n_vals > 0) {
            vkCmdUpdateBuffer(ctx->cmd, r->step.buf, 0, c->n_vals * 4, c->vals);
            VkMemoryBarrier mb = {
                .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                .dstAccessMask = VK_ACCESS_SHADER_READ_BIT,
            };
            vkCmdPipelineBarrier(ctx->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                                 VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, NULL, 0,
                                 NULL);
            r->step_submit = UINT64_MAX;
        }
        return vk__dispatch_captured(ctx, c->d, c->n);
    }
    uint64_t hash = fnv1a(c->d, (size_t)c->n * sizeof *c->d);
    for (int i = 0; i < r->n_recs; i++) {
        struct vk_rec *rec = &r->recs[i];
        if (rec->hash == hash && rec->n == c->n && rec->n_vals == c->n_vals &&
            memcmp(rec->d, c->d, (size_t)c->n * sizeof *c->d) == 0) {
            r->stats.replays++;
            return execute(r, rec, c->vals, c->n_vals);
        }
    }
    struct vk_rec *rec = record(r, hash, &st);
    if (!rec)
        return st;
    return execute(r, rec, c->vals, c->n_vals);
}

void vk_replay_count_walk(struct vk_replay *r)
{
    r->stats.walks++;
}

void vk_replay_get_stats(const struct vk_replay *r, struct vk_replay_stats *out)
{
    *out = r->stats;
    out->cached = r->n_recs;
}
