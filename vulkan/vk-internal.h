/*
 * vulkan/vk-internal: the context struct and the helpers the host files of
 * vulkan/ share (vk__ names). Not for use outside vulkan/ (tests use vk.h).
 */
#ifndef HEARTH_VK_INTERNAL_H
#define HEARTH_VK_INTERNAL_H

#include "err.h"
#include "vk.h"
#include "../shaders/params/common.h"

/* Shader variants. Per-weight-type kernels are BASE + vk__wtype_index(type). */
enum { VK_N_WTYPES = 22 };
enum vk_shader {
    VK_SH_MATVEC = 0,
    VK_SH_MATVEC_SG = VK_SH_MATVEC + VK_N_WTYPES,
    VK_SH_MATMUL = VK_SH_MATVEC_SG + VK_N_WTYPES,
    VK_SH_EMBED = VK_SH_MATMUL + VK_N_WTYPES,
    /* the one-token matvec (shaders/matvec.comp MV_TOKS=1, op-matmul.c) */
    VK_SH_MATVEC1 = VK_SH_EMBED + VK_N_WTYPES,
    VK_SH_MATVEC1_SG = VK_SH_MATVEC1 + VK_N_WTYPES,
    VK_SH_RMSNORM = VK_SH_MATVEC1_SG + VK_N_WTYPES,
    VK_SH_RMSNORM_SG,
    VK_SH_ROPE,
    VK_SH_KV_STORE,
    VK_SH_ATTENTION,
    VK_SH_SWIGLU,
    VK_SH_GEGLU,
    VK_SH_ADD,
    VK_SH_SCALE,
    /* F16 weights through 16-bit storage (caps.storage_16bit_on; see op-matmul.c) */
    VK_SH_MATVEC_F16_H,
    VK_SH_MATVEC_F16_H_SG,
    VK_SH_MATMUL_F16_H,
    VK_SH_EMBED_F16_H,
    VK_SH_MATVEC1_F16_H,
    VK_SH_MATVEC1_F16_H_SG,
    /* compressed-KV attention (op-attention.c, vk-kvq.h) */
    VK_SH_KV_STORE_Q,
    VK_SH_ATTENTION_KVQ,
    VK_SH_KV_CENTER,
    /* the exact KV window (ATTENTION step 5, op-attention.c) */
    VK_SH_KV_EXACT,
    VK_SH_KV_RING,
    /* flash-decoding's merge (attn-split.c) */
    VK_SH_ATTENTION_COMBINE,
    VK_SH_COUNT
};

/* A compute pipeline: n_bind storage buffers at bindings 0.., push_size bytes of constants. */
struct vk_pipeline {
    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkPipeline pipe;
    uint32_t n_bind;
    uint32_t push_size;
};

/*
 * 10 bindings: kv_store and attention take the step buffer after their four
 * tensors, attention_kvq after its five (q, K, V, out, sink), then the exact
 * window's scratch, two rings and their tags.
 */
enum { VK_MAX_BIND = 10, VK_DESC_SETS = 512, VK_TS_SLOTS = 64 };

/*
 * One dispatch as vk__dispatch would record it, captured instead (replay.c):
 * pipeline, bound buffers, push constants, grid. Zero-filled before it is
 * written, so two captures of the same work compare equal with memcmp.
 */
struct vk_cap_disp {
    uint32_t id, push_size, gx, gy, gz, n_bind;
    VkBuffer bufs[VK_MAX_BIND];
    uint32_t push[32];
};

/*
 * A capture in progress (ctx->cap non-NULL): vk__dispatch appends to d[],
 * and ops that take a position ask vk__pos_slot for a step-buffer slot
 * (vals[slot - 1] = the position this walk uses) and bind step.
 */
struct vk_capture {
    const struct vk_buffer *step; /* [VK_STEP_SLOTS] uint32 */
    uint32_t vals[VK_STEP_SLOTS];
    uint32_t n_vals;
    bool overflow;                /* more distinct positions than slots: not replayable */
    hearth_status err;            /* an append failed (no memory) */
    struct vk_cap_disp *d;        /* [n], capacity cap */
    int n, cap;
};

/*
 * Submission frames (command.c): recording serial s (the value of
 * ctx->n_submits while it is open) uses frames[s % VK_FRAMES]; before the
 * frame is reused, serial s - VK_FRAMES is waited for (retired). Each frame
 * owns its primary command buffer, fence, descriptor pool and staging area
 * (host-visible, bump-allocated from 0 for each recording), and the
 * readbacks (staging -> host memcpys) to run when its fence is waited.
 */
enum { VK_FRAMES = 4 };

struct vk_readback {
    void *dst;       /* host destination, valid until the frame retires */
    uint64_t off, n; /* bytes [off, off + n) of the frame's staging */
};

struct vk_frame {
    VkCommandBuffer cmd;
    VkFence fence;
    VkDescriptorPool dpool;
    uint32_t dsets_used;
    struct vk_buffer staging; /* size 0 until first use; grown only while idle and unused */
    uint64_t staging_used;    /* bytes handed out in the open recording */
    struct vk_readback *rb;   /* [n_rb], capacity cap_rb */
    int n_rb, cap_rb;
    bool pending;             /* submitted, fence not yet waited */
};

struct vk_ctx {
    VkInstance inst;
    VkDebugUtilsMessengerEXT messenger;
    PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger;
    VkPhysicalDevice phys;
    VkDevice dev;
    VkQueue queue;
    uint32_t qfam;
    struct vk_caps caps;
    bool use_subgroup;
    VkPhysicalDeviceMemoryProperties mem_props;

    VkPipelineCache pcache;
    struct vk_pipeline pipes[VK_SH_COUNT];

    VkDescriptorPool dpool;
    uint32_t dsets_used;
    VkCommandPool cpool;
    VkCommandBuffer cmd;
    VkFence fence;
    bool recording;
    VkQueryPool qpool; /* VK_NULL_HANDLE without timestamps */
    uint64_t ts_written; /* bitmask of timestamp slots written */

    struct vk_buffer staging; /* grown on demand; size 0 until first use */

    int val_errors;
    char val_last[512];

    /* appended (vkinfra) */
    int val_reported;      /* val_errors already turned into a vk_submit failure */
    char val_first[512];   /* the first message: usually the cause, later ones follow from it */
    bool use_16bit;        /* F16 weights through the 16-bit-storage kernels */
    struct vk_buffer iq_grids; /* (iqvk2) IQ lattice grids, iq-grids.c; size 0 until first use */

    /* appended (vkreplay) */
    struct vk_capture *cap; /* non-NULL: vk__dispatch captures instead of recording */
    uint64_t n_submits;     /* vk_submit calls that submitted: names the open recording */
    uint64_t buf_epoch;     /* bumped when a device buffer dies: recordings may bind it */

    /* appended (vkasync): cmd, dpool above alias the open frame's; fence is unused */
    struct vk_frame frames[VK_FRAMES];
    uint64_t n_done;        /* serials < n_done are complete (their fences were waited) */
    uint64_t n_waits;       /* fence waits (vk_submit_stats) */
    uint64_t n_dispatches;  /* vk__dispatch calls (vk_submit_stats) */
};

/* Maps a VkResult to a status and sets the message "file:line: expr: VK_ERROR_...". */
hearth_status vk__fail(VkResult r, const char *expr, const char *file, int line);

/* On failure: st = status, message set, goto label. Needs `hearth_status st` in scope. */
#define VK_TRY(call, label)                                              \
    do {                                                                 \
        VkResult vk_try_r_ = (call);                                     \
        if (vk_try_r_ != VK_SUCCESS) {                                   \
            st = vk__fail(vk_try_r_, #call, __FILE__, __LINE__);         \
            goto label;                                                  \
        }                                                                \
    } while (0)

/* 0..VK_N_WTYPES-1 in shaders/CMakeLists.txt order, or -1 for a type without kernels. */
int vk__wtype_index(hearth_dtype t);
/*
 * Whether a weight of type t at byte offset w_off (in its binding) takes the
 * 16-bit-storage kernels: F16, the context's use_16bit, and w_off % 8 == 0
 * (the kernels read groups of 4 halves as one f16vec4).
 */
bool vk__use_f16_h(const struct vk_ctx *ctx, hearth_dtype t, uint64_t w_off);

/* pipeline.c */
hearth_status vk__pipeline_get(struct vk_ctx *ctx, enum vk_shader id, struct vk_pipeline **out);
void vk__pipelines_destroy(struct vk_ctx *ctx);

/* iq-grids.c */
/*
 * The buffer a weight kernel of type t binds after its own buffers: the IQ
 * grid buffer (created and uploaded on first use) for an IQ1/IQ2/IQ3 lattice
 * type, else `other` (any live buffer: those kernels never read the slot).
 */
hearth_status vk__iq_grid_bind(struct vk_ctx *ctx, hearth_dtype t, const struct vk_buffer *other,
                               const struct vk_buffer **out);
void vk__iq_grids_destroy(struct vk_ctx *ctx); /* at context teardown, device idle */

/* command.c */
hearth_status vk__begin(struct vk_ctx *ctx); /* starts recording if not already */
/* Ends and submits the open recording (if any) without waiting. */
hearth_status vk__flush(struct vk_ctx *ctx);
/*
 * Waits until recording serial s is complete (submitting it first if it is
 * the open one; a serial never used: returns at once), retiring frames in
 * order: their readbacks are copied to the host.
 */
hearth_status vk__wait_serial(struct vk_ctx *ctx, uint64_t s);
/*
 * n bytes (<= vk__staging_max) of the open recording's frame staging
 * (starting the recording; flushing to the next frame when this one's is
 * full): *buf and *off name them, *host maps them.
 */
hearth_status vk__staging_alloc(struct vk_ctx *ctx, uint64_t n, const struct vk_buffer **buf,
                                uint64_t *off, void **host);
uint64_t vk__staging_max(const struct vk_ctx *ctx);
/* Queues dst <- staging[off, off+n) of the open recording, run when it retires. */
hearth_status vk__readback_add(struct vk_ctx *ctx, void *dst, uint64_t off, uint64_t n);
/*
 * Records one dispatch of shader id with binds[i] bound (whole buffer) at
 * binding i, push constants, groups (gx, gy, gz), then a barrier making its
 * writes visible to later dispatches and transfers.
 */
hearth_status vk__dispatch(struct vk_ctx *ctx, enum vk_shader id, const struct vk_buffer *const *binds,
                           const void *push, uint32_t push_size, uint32_t gx, uint32_t gy,
                           uint32_t gz);
/* Splits n workgroups into (x <= 65535, ext) with x * ext >= n. */
void vk__grid(uint32_t n, uint32_t *x, uint32_t *ext);
/*
 * While capturing: the 1-based step-buffer slot that holds position pos
 * (the push constant pos_slot), allocating one; 0 (use the push constant
 * pos0) when not capturing or out of slots (the capture is then marked
 * overflow and is not kept).
 */
uint32_t vk__pos_slot(struct vk_ctx *ctx, uint32_t pos);
/* The buffer to bind as the step buffer: the capture's for slot > 0, else placeholder. */
const struct vk_buffer *vk__step_bind(struct vk_ctx *ctx, uint32_t slot,
                                      const struct vk_buffer *placeholder);
/* Records captured dispatches d[0..n) into the open (primary) command buffer. */
hearth_status vk__dispatch_captured(struct vk_ctx *ctx, const struct vk_cap_disp *d, int n);
/*
 * Records d[0..n) into a new secondary command buffer (*cmd) whose
 * descriptor sets come from a new pool (*pool) of exactly their size; both
 * live until vk__secondary_free, so the buffer can be executed again.
 */
hearth_status vk__record_secondary(struct vk_ctx *ctx, const struct vk_cap_disp *d, int n,
                                   VkCommandBuffer *cmd, VkDescriptorPool *pool);
void vk__secondary_free(struct vk_ctx *ctx, VkCommandBuffer cmd, VkDescriptorPool pool);
void vk__command_destroy(struct vk_ctx *ctx);
/* HEARTH_ERR_BACKEND naming the first message if validation reported any since the last call. */
hearth_status vk__validation_check(struct vk_ctx *ctx);
hearth_status vk__command_init(struct vk_ctx *ctx);

/* buffer.c */
/* Memory type for the required property flags among type_bits; -1 if none. */
int vk__memory_type(const struct vk_ctx *ctx, uint32_t type_bits, VkMemoryPropertyFlags want,
                    VkMemoryPropertyFlags avoid);
/* Byte offset -> element offset for 4-byte elements; false if misaligned or too large. */
bool vk__word_offset(struct vk_view v, uint32_t *out);
/*
 * Checks a view for an op: buffer set, offset 4-byte aligned, bytes bytes in
 * range; stores the offset in 4-byte words. HEARTH_ERR_INVALID_ARG naming
 * op and what otherwise.
 */
hearth_status vk__view_words(struct vk_view v, uint64_t bytes, const char *op, const char *what,
                             uint32_t *words);

#endif
