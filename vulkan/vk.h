/*
 * vulkan/vk: the Vulkan layer's internal API (vk_ prefix), shared by the
 * host files of vulkan/ and by tests/test-vulkan.c.
 *
 * One struct vk_ctx owns an instance, one device with one compute queue, the
 * pipelines (created lazily) and a ring of submission frames (command buffer,
 * fence, descriptor pool, staging). Ops RECORD into the open frame (op-*.c:
 * push constants + dispatch + a barrier); vk_submit() submits what was
 * recorded and waits for every submission. Uploads and downloads are copies
 * through the frame's staging recorded among the ops, so program order is
 * execution order; only downloads wait.
 *
 * Tensors are addressed by struct vk_view: a buffer and a byte offset. Weights
 * live in a vk_weights set: tensors packed in order into chunks of at most
 * caps.max_chunk bytes (min of maxMemoryAllocationSize, maxStorageBufferRange
 * and a test override), split only at tensor boundaries, so each matmul binds
 * the one chunk holding its tensor.
 *
 * Files: device.c (instance, device, caps), buffer.c (memory, staging,
 * weight chunks), pipeline.c (shader table, lazy pipelines, cache), command.c
 * (recording, submit, timestamps), op-*.c (one per op).
 */
#ifndef HEARTH_VK_H
#define HEARTH_VK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

#include "hearth.h"
#include "model.h"

/* ---- device (device.c) ---------------------------------------------------- */

/* What the selected device can do, recorded once at creation. */
struct vk_caps {
    char name[256];
    uint32_t api_version;
    uint32_t vendor_id, device_id;
    VkPhysicalDeviceType type;
    uint32_t subgroup_size;        /* 0 if unknown */
    bool subgroup_arith;           /* subgroupAdd etc. in compute shaders */
    bool storage_16bit;            /* storageBuffer16BitAccess supported */
    bool float16;                  /* shaderFloat16 supported (recorded; no shader uses it) */
    bool storage_16bit_on;         /* enabled at device creation (16-bit F16-weight kernels) */
    bool validation;               /* VK_LAYER_KHRONOS_validation is active on this context */
    bool validation_missing;       /* asked for by HEARTH_VULKAN_VALIDATE=1, layer not installed */
    bool int8_dot;                 /* VK_KHR_shader_integer_dot_product */
    bool coopmat;                  /* VK_KHR_cooperative_matrix present */
    bool memory_budget;            /* VK_EXT_memory_budget enabled */
    bool timestamps;               /* compute queue has timestamp bits */
    float timestamp_period_ns;
    uint64_t max_alloc;            /* maxMemoryAllocationSize */
    uint64_t max_storage_range;    /* maxStorageBufferRange */
    uint64_t max_chunk;            /* largest single buffer hearth makes (see buffer.c) */
    uint32_t max_wg_count[3];
    uint64_t device_local_bytes;   /* sum of device-local heaps */
    uint64_t device_local_free;    /* budget - usage when memory_budget, else the total */
};

struct vk_ctx_opts {
    int device_index;         /* -1: by name, or the best device (discrete > integrated > cpu) */
    const char *device_name;  /* substring of the device name; NULL: any */
    /* enable VK_LAYER_KHRONOS_validation; HEARTH_ERR_UNSUPPORTED if it is not installed.
     * HEARTH_VULKAN_VALIDATE=1 also enables it, but runs without (caps.validation_missing)
     * where the layer is absent. */
    bool validate;
    uint64_t max_chunk_override; /* 0: none; else caps the chunk size (tests force splitting) */
    /* true: do not enable storageBuffer16BitAccess; the F16 weights take the 32-bit word
     * path (also HEARTH_VULKAN_NO_16BIT=1). Tests use it to cover devices without it. */
    bool no_16bit;
};

struct vk_ctx;

/* Creates instance + device + queue + pools. HEARTH_ERR_NOT_FOUND: no (matching) device. */
hearth_status vk_ctx_create(const struct vk_ctx_opts *opts, struct vk_ctx **out);
void vk_ctx_destroy(struct vk_ctx *ctx);
const struct vk_caps *vk_ctx_caps(const struct vk_ctx *ctx);
/*
 * Validation messages of severity warning or error seen so far (0 without
 * validation); *first_message (may be NULL) gets the first one seen ("" if none).
 * Every such message also fails the next vk_submit (HEARTH_ERR_BACKEND, the
 * message in hearth_last_error), so any caller, the CLI included, stops on it.
 */
int vk_ctx_validation_errors(const struct vk_ctx *ctx, const char **first_message);
/*
 * Creates one VkInstance that lives until exit (idempotent), so the loader
 * never unloads the driver. For tests under LeakSanitizer: a driver unloaded
 * before the leak report leaves its process-lifetime allocations in
 * "<unknown module>", which no suppression can name.
 */
void vk_keep_driver_loaded(void);
struct hearth_device;
struct hearth_stream;
/* vk_ctx_validation_errors of a device opened through the backend table (backend.c). */
int vk_backend_validation_errors(struct hearth_device *dev, const char **last_message);

/*
 * Command-buffer replay of single-token op lists (vulkan/replay.c,
 * docs/vulkan.md); HEARTH_VULKAN_REPLAY=0 at stream creation turns it off.
 */
struct vk_replay_stats {
    uint64_t records; /* op lists recorded into a kept command buffer */
    uint64_t replays; /* graph_run calls served by a kept recording */
    uint64_t walks;   /* graph_run calls recorded afresh (n_tok > 1, replay off, ...) */
    int cached;       /* recordings held now */
};
/* A Vulkan stream's counters; all zero for another backend's stream. */
void vk_backend_replay_stats(struct hearth_stream *s, struct vk_replay_stats *out);
/* Forces the no-subgroup shader variants even where the device has them (tests). */
void vk_ctx_set_use_subgroup(struct vk_ctx *ctx, bool on);
/*
 * Whether HEARTH_VULKAN_VALIDATE=1 is set and whether VK_LAYER_KHRONOS_validation
 * is installed (tests print a note, or fail under CI=true, when asked for but absent).
 */
bool vk_validation_requested(void);
bool vk_validation_available(void);
/* Picks the 16-bit-load F16 kernels (on: only where caps.storage_16bit_on) or the word path. */
void vk_ctx_set_use_16bit(struct vk_ctx *ctx, bool on);

/* ---- buffers (buffer.c) --------------------------------------------------- */

enum vk_buffer_kind {
    VK_BUF_DEVICE = 0, /* device-local storage (falls back to any memory, e.g. lavapipe) */
    VK_BUF_STAGING = 1 /* host-visible, coherent, mapped; transfer source and destination */
};

struct vk_buffer {
    VkBuffer buf;
    VkDeviceMemory mem;
    uint64_t size;    /* bytes usable by ops (the allocation has 16 bytes of slack) */
    enum vk_buffer_kind kind;
    void *mapped;     /* staging only */
};

/* A tensor: bytes from offset in buf. */
struct vk_view {
    const struct vk_buffer *buf;
    uint64_t offset;
};

hearth_status vk_buffer_create(struct vk_ctx *ctx, uint64_t size, enum vk_buffer_kind kind,
                               struct vk_buffer *out);
void vk_buffer_destroy(struct vk_ctx *ctx, struct vk_buffer *b);
/*
 * Copies n bytes host -> device at offset: src is copied into the open
 * frame's staging now (reusable on return) and the device copy is recorded
 * in program order with the ops; it runs at the next submission.
 */
hearth_status vk_buffer_upload(struct vk_ctx *ctx, const struct vk_buffer *b, uint64_t offset,
                               const void *src, uint64_t n);
/* Copies n bytes device -> host (records the copy, submits, waits for it and what precedes it). */
hearth_status vk_buffer_download(struct vk_ctx *ctx, const struct vk_buffer *b, uint64_t offset,
                                 void *dst, uint64_t n);
/*
 * Records the device -> staging copy of n bytes; dst is written when the
 * recording holding it is waited for (vk_submit, or vk__wait_serial of its
 * serial), so it must stay valid until then.
 */
hearth_status vk_buffer_download_async(struct vk_ctx *ctx, const struct vk_buffer *b,
                                       uint64_t offset, void *dst, uint64_t n);
/* Records a fill of n bytes (multiple of 4) with a 32-bit pattern. */
hearth_status vk_buffer_fill(struct vk_ctx *ctx, const struct vk_buffer *b, uint64_t offset,
                             uint64_t n, uint32_t value);

/* Records a device copy of n bytes (ranges inside both buffers, not overlapping). */
hearth_status vk_buffer_copy(struct vk_ctx *ctx, const struct vk_buffer *dst, uint64_t doff,
                             const struct vk_buffer *src, uint64_t soff, uint64_t n);
/*
 * Device-memory copy bandwidth in 1e9 bytes/s, counting bytes read and
 * written (as the CUDA backend and `hearth devices` do): the best of 5 timed
 * copies between two buffers of up to 256 MiB (timestamp queries, or the
 * host clock around submit-and-wait where the queue has none).
 */
hearth_status vk_measure_copy_bandwidth(struct vk_ctx *ctx, double *gbps);

/* Weight set: n tensors of bytes[i], packed into chunks split at tensor boundaries. */
struct vk_weights {
    int n_tensors;
    int n_chunks;
    struct vk_buffer *chunks;  /* [n_chunks] */
    int *chunk_of;             /* [n_tensors] */
    uint64_t *offset_of;       /* [n_tensors]: byte offset inside its chunk (256-aligned) */
};

/*
 * Plans and allocates the chunks and uploads data[i] (bytes[i] bytes each).
 * A tensor larger than caps.max_chunk is HEARTH_ERR_UNSUPPORTED (it would need
 * a row split). Device OOM is HEARTH_ERR_DEVICE_OOM.
 */
hearth_status vk_weights_create(struct vk_ctx *ctx, int n, const void *const *data,
                                const uint64_t *bytes, struct vk_weights **out);
void vk_weights_destroy(struct vk_ctx *ctx, struct vk_weights *w);
struct vk_view vk_weights_view(const struct vk_weights *w, int i);

/* ---- command recording (command.c) ---------------------------------------- */

/* Ends and submits what is recorded, then waits for every submission (and its readbacks). */
hearth_status vk_submit(struct vk_ctx *ctx);
/* Counters of the submission ring (command.c), for tests and the submit/wait budget. */
struct vk_submit_stats {
    uint64_t submits; /* vkQueueSubmit calls */
    uint64_t waits;   /* fence waits (one per submission retired) */
    uint64_t done;    /* submissions known complete */
    uint64_t dispatches; /* vk__dispatch calls (captured for replay or recorded) */
    uint64_t staging_bytes; /* host staging the frames hold now (<= vk_host_staging_bytes) */
};
void vk_ctx_submit_stats(const struct vk_ctx *ctx, struct vk_submit_stats *out);
/* vk_ctx_submit_stats of a device opened through the backend table (backend.c). */
void vk_backend_submit_stats(struct hearth_device *dev, struct vk_submit_stats *out);
/*
 * The most host staging the frames can grow to on a device whose
 * caps.max_chunk is max_chunk: VK_FRAMES x the per-frame cap (min(max_chunk,
 * 64 MiB), rounded down to 16 bytes). The backend reports it as
 * hearth_device_props.host_staging_bytes, which the planner charges to the
 * host (docs/planner.md).
 */
uint64_t vk_host_staging_bytes(uint64_t max_chunk);
/* Timestamps: write query slot i (< 64) into the current recording; read after vk_submit. */
hearth_status vk_timestamp(struct vk_ctx *ctx, uint32_t slot);
/* Nanoseconds between two written slots (HEARTH_ERR_UNSUPPORTED without timestamps). */
hearth_status vk_timestamp_elapsed_ns(struct vk_ctx *ctx, uint32_t a, uint32_t b, double *ns);

/* ---- ops (op-*.c): each records one or two dispatches --------------------- */
/*
 * Conventions: float tensors are f32, row-major, offsets and strides in
 * floats unless named _bytes; every view's offset is 4-byte aligned. Errors:
 * HEARTH_ERR_INVALID_ARG (shape/alignment), HEARTH_ERR_UNSUPPORTED (type).
 */

/* Weight types the kernels decode (all types hearth computes with on the CPU). */
bool vk_matmul_supports(hearth_dtype t);

/*
 * y[t][r] = Σ_k W[r][k] x[t][k] for t < n_tok, r < n_out.
 * w: n_out rows of row_bytes bytes in type's block format from w.offset;
 * x: [n_tok][x_stride] f32 (n_in used; x_stride and x offset multiples of 4 floats);
 * y: [n_tok][y_stride] f32 (+ bias[r] when given). n_in a multiple of 4 and of the block size.
 * n_tok <= VK_MATVEC_TOKS uses the decode matvec, larger batches the tiled kernel.
 */
struct vk_matmul_args {
    hearth_dtype type;
    struct vk_view w;
    uint64_t row_bytes;
    uint32_t n_in, n_out, n_tok;
    struct vk_view x;
    uint32_t x_stride;
    struct vk_view y;
    uint32_t y_stride;
    struct vk_view bias;  /* [n_out] f32, added to every row of y; buf NULL: none */
    int force_kernel; /* 0: choose; 1: matvec; 2: tiled (tests) */
};
hearth_status vk_matmul(struct vk_ctx *ctx, const struct vk_matmul_args *a);
/*
 * n (1..3) matmuls: those that share the kernel (type, K, n_tok <= 4), x, and
 * the W, y and bias buffers go in one matvec dispatch, each other one in its
 * own. Results are the same bits either way.
 */
hearth_status vk_matmul_group(struct vk_ctx *ctx, const struct vk_matmul_args *a, int n);

/* y[r][:] = rmsnorm(x[r][:]) ⊙ w, n_rows rows of n; w.buf NULL: no gain. y may alias x. */
hearth_status vk_rmsnorm(struct vk_ctx *ctx, struct vk_view x, uint32_t x_stride, struct vk_view w,
                         struct vk_view y, uint32_t y_stride, uint32_t n, uint32_t n_rows,
                         float eps);

/*
 * inv_freq[k] = base^(−2k/n_rot) · freq_scale / divs[k] (divs NULL: 1), k < n_rot/2,
 * in double then rounded: the table vk_rope reads. out: [n_rot/2] floats.
 */
void vk_rope_inv_freq(float *out, int n_rot, float base, float freq_scale, const float *divs);
/*
 * Rotates in place the first n_rot dims of n_heads heads (head_dim apart) of
 * n_tok token rows (x_stride apart) at positions pos0 + t; mode as cpu_rope.
 * inv_freq: [n_rot/2] floats from vk_rope_inv_freq.
 */
hearth_status vk_rope(struct vk_ctx *ctx, struct vk_view x, uint32_t x_stride, uint32_t n_tok,
                      uint32_t n_heads, uint32_t head_dim, uint32_t n_rot, uint32_t pos0,
                      enum model_rope_mode mode, struct vk_view inv_freq);

/*
 * Attention of n_tok new tokens at positions pos0.. over one layer's F16 cache.
 * k_cache, v_cache: [n_ctx][kv_dim] halves (kv_dim = n_head_kv · head_dim,
 * head h at columns h·head_dim), views 4-byte aligned. First writes k_new and
 * v_new ([n_tok][kv_stride] f32) as rows pos0..pos0+n_tok−1, then
 *   out[t][h·hd + d] = Σ_{j=lo}^{p} softmax_j(scale · q_h·K_j) V_j[d]
 * with p = pos0 + t, lo = window ? max(0, p − window + 1) : 0, KV head
 * h / (n_head / n_head_kv). q: [n_tok][q_stride], out: [n_tok][o_stride].
 * head_dim even and <= 256; pos0 + n_tok <= n_ctx.
 * Flash-decoding (attn-split.c): split_scratch, a buffer the caller owns
 * (zero-initialised, destroyed with vk_buffer_destroy once the recorded work
 * ran), lets a decode-sized batch split each (head, token)'s positions over
 * several workgroups, the buffer grown on demand to hold their partials;
 * NULL: always the single pass. n_split: 0 for vk_attn_pick_split's count,
 * else that count (1: the single pass; at most 64). The split changes the
 * summation order only: results agree with the single pass to rounding.
 */
struct vk_attn_args {
    struct vk_view q, k_new, v_new, k_cache, v_cache, out;
    uint32_t q_stride, kv_stride, o_stride;
    uint32_t n_tok, n_head, n_head_kv, head_dim, n_ctx, pos0, window;
    float scale;
    struct vk_buffer *split_scratch;
    uint32_t n_split;
};
hearth_status vk_attention(struct vk_ctx *ctx, const struct vk_attn_args *a);
/*
 * The splits per (head, token) for n_tok tokens of n_head heads that attend
 * at most span positions (n_ctx, or a smaller sliding window): 1 for
 * prefill-sized batches, else enough for ~512 workgroups, at most span / 128
 * and 64 (the rule is documented in attn-split.c). A function of the shape
 * and the cache size only, so a replayed decode step keeps one recording.
 */
uint32_t vk_attn_pick_split(uint32_t n_tok, uint32_t n_head, uint32_t span);

/* g[i] = silu(g[i]) · u[i] (swiglu) or gelu_tanh(g[i]) · u[i] (geglu), i < n. */
hearth_status vk_swiglu(struct vk_ctx *ctx, struct vk_view g, struct vk_view u, uint32_t n);
hearth_status vk_geglu(struct vk_ctx *ctx, struct vk_view g, struct vk_view u, uint32_t n);
/* x[i] += y[i] */
hearth_status vk_add(struct vk_ctx *ctx, struct vk_view x, struct vk_view y, uint32_t n);
/* x[i] *= s */
hearth_status vk_scale(struct vk_ctx *ctx, struct vk_view x, uint32_t n, float s);

/*
 * y[i][:] = scale · dequant(W row ids[i]) for i < n_ids. W: n_rows rows of
 * row_bytes bytes of type; ids: n_ids uint32 (each < n_rows); y: [n_ids][y_stride].
 */
struct vk_embed_args {
    hearth_dtype type;
    struct vk_view w;
    uint64_t row_bytes;
    uint32_t n_in, n_rows;
    struct vk_view ids;
    uint32_t n_ids;
    struct vk_view y;
    uint32_t y_stride;
    float scale;
};
hearth_status vk_embed(struct vk_ctx *ctx, const struct vk_embed_args *a);

#endif
