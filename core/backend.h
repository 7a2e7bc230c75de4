/*
 * backend: the interface every compute backend (cpu, cuda, vulkan) implements,
 * and the core wrappers the scheduler and tools call.
 *
 * A backend is four vtables, each an ops table plus an opaque ctx:
 *   device       what a device *is*: props, free/total memory, supports_op,
 *                its buffer types, streams, a bandwidth measurement;
 *   buffer type  how it *allocates*: alignment, max size, flags (host-visible,
 *                pinned, device-local);
 *   buffer       what a *buffer* does: base address, set/get/clear, an
 *                optional device-side copy that may decline;
 *   stream       how it *runs*: async set/get, graph_run (a list of ops),
 *                synchronize, events.
 * Splitting them lets the planner reason about placement ("which buffer type
 * holds this tensor, which device supports this op") without knowing the
 * backend, and lets one model put its layers on several devices.
 *
 * ABI rule (SQLite's iVersion): every ops table starts with abi_version;
 * members are only ever appended. A member added in ABI version N is read only
 * when the table's abi_version >= N. Optional members say
 * "optional: default ..."; the wrappers in backend.c supply that default when
 * the pointer is NULL (or the table is too old to have it). Callers never call
 * through an ops table directly: they use backend_*() below, which validate
 * arguments and apply defaults.
 *
 * Ops (section "ops" below) are coarse enough to fuse (rmsnorm+quantize;
 * q/k/v or gate/up matmuls sharing one input in one launch; attention that
 * normalizes, rotates, writes K/V and attends in one op) and are handed to a
 * stream as a list (graph_run), so a backend may also fuse across
 * consecutive ops or capture the list as a CUDA graph. The CPU backend
 * (cpu/backend-cpu.c) is the reference implementation of every contract.
 *
 * Alternatives rejected: one flat table (ggml's early ggml_backend_i) mixes
 * allocation with execution, so a planner cannot ask "where can this live"
 * without a stream; per-op function pointers in the device table would freeze
 * the op set into the ABI, whereas an op enum plus a tagged struct only grows.
 */
#ifndef HEARTH_BACKEND_H
#define HEARTH_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Version of every ops table defined here; bump when appending members.
 * 2: hearth_device_ops.supports_kv (compressed KV cache types).
 * 3: hearth_device_ops.supports_kv_window (ATTENTION step 5).
 * 4: ATTENTION ring-only layers (k_cache/v_cache absent; step 6), no new member.
 */
#define HEARTH_BACKEND_ABI_VERSION 4

struct hearth_device;
struct hearth_buffer_type;
struct hearth_buffer;
struct hearth_stream;
struct hearth_event;
struct hearth_op;

/* ==== device ============================================================== */

struct hearth_device_props {
    char name[32];        /* "cpu", "cuda0", "vulkan1": unique among open devices */
    char desc[256];       /* what the driver calls it ("NVIDIA H100 80GB HBM3 (sm_90)") */
    uint64_t total_bytes; /* memory of the device (host RAM for cpu) */
    uint64_t free_bytes;  /* free now, as the driver reports it */
    double bw_gbps;       /* measured copy bandwidth of device memory, 1e9 B/s; 0: not measured */
    bool host_memory;     /* its device-local buffers are host RAM (cpu; integrated GPUs) */
    /*
     * Host RAM the backend itself may allocate for its transfers, beyond the
     * buffers callers allocate through its buffer types: the worst case
     * (Vulkan: VK_FRAMES frames of staging, each grown on demand up to
     * min(max_chunk, 64 MiB)); 0 for none (cpu, cuda). The planner charges
     * it to the host's RAM for every GPU it uses. Appended last; a backend
     * that predates it leaves it 0 (backend_device_props zeroes the struct).
     */
    uint64_t host_staging_bytes;
    /*
     * The largest single buffer the device buffer type allocates (its
     * max_size), where that is below what the device's memory would allow:
     * Vulkan's caps.max_chunk (maxStorageBufferRange,
     * maxMemoryAllocationSize, 4 GiB); 0 for no such limit (cpu, cuda). The
     * planner keeps any tensor, KV buffer or logits buffer larger than this
     * off the device. Appended last like host_staging_bytes.
     */
    uint64_t max_buffer_bytes;
};

enum hearth_op_kind {
    HEARTH_OP_EMBED = 0, /* token ids -> embedding rows */
    HEARTH_OP_RMSNORM,   /* row-wise RMSNorm with gain */
    HEARTH_OP_MATMUL,    /* 1..3 quantized weights times one shared activation batch */
    HEARTH_OP_ATTENTION, /* qk-norm, RoPE, K/V append, attention over the cache */
    HEARTH_OP_GLU,       /* g = act(g) * u */
    HEARTH_OP_ADD,       /* residual add, optionally of a normed branch */
    HEARTH_OP_LOGITS,    /* final norm + output projection of selected rows */
    HEARTH_OP_COUNT
};

/* "matmul" for HEARTH_OP_MATMUL; "?" otherwise. */
const char *backend_op_name(enum hearth_op_kind op);

struct hearth_device_ops {
    uint32_t abi_version; /* HEARTH_BACKEND_ABI_VERSION the table was written for */
    const char *backend;  /* "cpu", "cuda", "vulkan" */
    /* Releases the device; every buffer and stream of it is destroyed first. */
    void (*destroy)(struct hearth_device *dev);
    /* Fills everything but free_bytes/bw_gbps when the backend cannot tell. */
    void (*get_props)(struct hearth_device *dev, struct hearth_device_props *out);
    /* Free and total bytes now. optional: default: get_props' values */
    void (*get_memory)(struct hearth_device *dev, uint64_t *free_bytes, uint64_t *total_bytes);
    /*
     * Whether graph_run accepts op with this type: the weight/table type for
     * MATMUL, EMBED and LOGITS, F32 for the others (whose tensors are F32,
     * F16 for the KV cache). optional: default: every op, F32 only.
     */
    bool (*supports_op)(struct hearth_device *dev, enum hearth_op_kind op, hearth_dtype type);
    /* Device-local memory: weights, KV cache, activations. Owned by the device. */
    struct hearth_buffer_type *(*buffer_type)(struct hearth_device *dev);
    /*
     * Host memory the device copies from fastest (pinned/page-locked): the
     * staging of uploads and of activations at block boundaries. Owned by the
     * device. optional: default: the CPU backend's plain host type.
     */
    struct hearth_buffer_type *(*host_buffer_type)(struct hearth_device *dev);
    hearth_status (*stream_create)(struct hearth_device *dev, struct hearth_stream **out);
    /*
     * Measures device-memory copy bandwidth (takes up to a second), stores it
     * in the props' bw_gbps and *gbps. optional: default: HEARTH_ERR_UNSUPPORTED
     */
    hearth_status (*measure_bandwidth)(struct hearth_device *dev, double *gbps);
    /*
     * ABI 2. Whether ATTENTION accepts a KV cache whose K is stored as
     * k_type and V as v_type (enum kvq_type values, core/kv-quant.h).
     * optional: default: only KVQ_F16 for both.
     */
    bool (*supports_kv)(struct hearth_device *dev, int k_type, int v_type);
    /*
     * ABI 3. Whether ATTENTION implements the exact window (step 5) for this
     * K/V type pair. optional: default: no.
     */
    bool (*supports_kv_window)(struct hearth_device *dev, int k_type, int v_type);
};

struct hearth_device {
    const struct hearth_device_ops *ops;
    void *ctx;
};

/* ==== buffer type ========================================================= */

enum {
    HEARTH_BUFT_HOST = 1u << 0,         /* base() is a CPU pointer the host may read/write */
    HEARTH_BUFT_PINNED = 1u << 1,       /* page-locked: async copies from it overlap compute */
    HEARTH_BUFT_DEVICE_LOCAL = 1u << 2, /* ops of the owning device may use it */
};

struct hearth_buffer_type_ops {
    uint32_t abi_version;
    const char *name; /* "cpu", "cuda0", "cuda_host" */
    /*
     * Allocates size bytes (size >= 1). Contents are zero only where the type
     * says so; call backend_buffer_clear otherwise. Out of memory: DEVICE_OOM
     * for device memory, NO_MEMORY for host memory, with the message naming
     * the size.
     */
    hearth_status (*alloc)(struct hearth_buffer_type *bt, size_t size, struct hearth_buffer **out);
    size_t (*alignment)(struct hearth_buffer_type *bt); /* optional: default 64 */
    size_t (*max_size)(struct hearth_buffer_type *bt);  /* optional: default SIZE_MAX */
    uint32_t (*flags)(struct hearth_buffer_type *bt);   /* HEARTH_BUFT_*; optional: default 0 */
};

struct hearth_buffer_type {
    const struct hearth_buffer_type_ops *ops;
    void *ctx;
    struct hearth_device *dev; /* the device it belongs to */
};

/* ==== buffer ============================================================== */

struct hearth_buffer_ops {
    uint32_t abi_version;
    void (*free)(struct hearth_buffer *buf);
    /*
     * Base address in the owning device's address space (a device pointer for
     * cuda, a CPU pointer for host types; vulkan may return NULL and address
     * buffers by handle + offset). Tensors are (buffer, offset) pairs, so no
     * caller does arithmetic on a non-host base.
     */
    void *(*base)(struct hearth_buffer *buf);
    /* Synchronous host -> buffer copy of n bytes at offset. */
    hearth_status (*set)(struct hearth_buffer *buf, size_t offset, const void *src, size_t n);
    /* Synchronous buffer -> host copy. */
    hearth_status (*get)(struct hearth_buffer *buf, size_t offset, void *dst, size_t n);
    /* Every byte = value. optional: default: set() from a host chunk of value bytes */
    hearth_status (*clear)(struct hearth_buffer *buf, uint8_t value);
    /*
     * dst[doff..doff+n) = src[soff..soff+n) without host staging (same device,
     * peer access). May decline with HEARTH_ERR_UNSUPPORTED; the caller then
     * stages through the host. optional: default: declines
     */
    hearth_status (*copy_from)(struct hearth_buffer *dst, size_t doff, struct hearth_buffer *src,
                               size_t soff, size_t n);
};

struct hearth_buffer {
    const struct hearth_buffer_ops *ops;
    void *ctx;
    struct hearth_buffer_type *buft;
    size_t size;
};

/* ==== tensors and ops ===================================================== */

/*
 * A 2-D view: n_rows rows of ne0 elements of `type`, row r starting at byte
 * offset + r * row_stride of buf. For block types (Q4_K...) a row is ne0/blck
 * blocks. buf == NULL marks an absent optional input.
 */
struct hearth_tensor {
    struct hearth_buffer *buf;
    size_t offset;
    hearth_dtype type;
    int64_t ne0;
    int64_t n_rows;
    size_t row_stride;
};

enum hearth_rope_mode {
    HEARTH_ROPE_NORMAL = 0, /* pairs (2k, 2k+1) (llama; = MODEL_ROPE_NORMAL) */
    HEARTH_ROPE_NEOX = 2    /* pairs (k, k + n_rot/2) (qwen2, gemma3; = MODEL_ROPE_NEOX) */
};

enum hearth_glu_act {
    HEARTH_GLU_SILU = 0,      /* g = silu(g) * u (SwiGLU) */
    HEARTH_GLU_GELU_TANH = 1  /* g = gelu_tanh(g) * u (GeGLU) */
};

/*
 * ---- op contracts ----
 * All tensors of one op live in buffers of the executing device (or in a
 * HOST type buffer when the device has host_memory). "F32 [a][b]" means a rows
 * of b floats, row_stride >= b*4 (MATMUL's y rows may be strided). n_tok
 * (1..4096) is the number of token rows of the op. Precision: the CPU backend
 * is the reference; GPU backends match it within the per-op tolerance stated
 * in tests/test-backend.c (they may keep activations in F16/BF16 internally).
 *
 * EMBED: out[t][0..E) = dequant(table row ids[t]) * scale, t < n_tok.
 *   table: [n_vocab][E] any type with a dequantizer; ids: I32 [n_tok] (one
 *   row of n_tok, or n_tok rows of 1); out: F32 [n_tok][E]. ids are
 *   validated by the caller (0 <= id < n_vocab).
 *
 * RMSNORM: y[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w, t < n_tok.
 *   x, y: F32 [n_tok][n]; w: F32 [n] or absent (no gain). y may alias x.
 *   The mean is accumulated in double on the CPU.
 *
 * MATMUL: for i < n_w (1..3): y[i][t][r] = w[i] row r . x[t] (+ b[i][r]).
 *   x: F32 [n_tok][K]; w[i]: [N_i][K] in any supported type (every w[i] the
 *   same K); b[i]: F32 [N_i] (one row) or absent; y[i]: F32 [n_tok][N_i]
 *   with any row_stride. The CPU rounds x to the weight's activation format
 *   (Q8_0/Q8_1/Q8_K per quant_traits.vec_dot_type) before the dot products;
 *   a GPU may use F16 or 8-bit activations. n_w > 1 exists so one launch
 *   (and one activation quantization) serves q/k/v or gate/up.
 *
 * ATTENTION, for tokens t < n_tok at positions p = pos0 + t, H = n_head,
 * Hk = n_head_kv, D = head_dim, G = H / Hk:
 *   1. if q_norm present: every head of q[t] = rmsnorm(head) * q_norm (eps);
 *      same for k with k_norm;
 *   2. RoPE on the first n_rot dims of every head of q[t] and k[t]:
 *      theta_k = p * rope_freq_scale * rope_base^(-2k/n_rot) / divs[k]
 *      (divs absent: 1), pairs per rope_mode; angles computed in double;
 *   3. k_cache[p] = enc_k(k[t]), v_cache[p] = enc_v(v[t]): each of the Hk
 *      head vectors of the row encoded with kvq_encode(k_type / v_type)
 *      (core/kv-quant.h; f16 is plain IEEE halves), the rotated types with
 *      the rotation kvq_rot_init(D, kv_seed, layer). For k_type != f16 the
 *      keys are centred first (docs/kv-cache.md: softmax ignores the
 *      constant q.mu, and the centred keys quantize with half the error):
 *      when pos0 == 0, mu = mean of k[t] over t in [1, min(n_tok, 64))
 *      (after norm and RoPE; summed in double in t order, then rounded to
 *      float; zero when n_tok == 1) goes to k_aux row 0; then every k[t] -=
 *      mu (float) with mu = k_aux row 0; when pos0 == 0, k_aux row 1 =
 *      the centred k[0] (the attention-sink key, kept exact);
 *   4. out[t][h] = sum_j softmax_j(scale * q[t][h] . K_j) V_j over cached
 *      positions j in [lo, p] of KV head h / G, lo = 0, or
 *      max(0, p - window + 1) when window > 0 (the window latest, itself
 *      included); K_j, V_j read back from the cache as kvq_decode gives
 *      them (so a token sees the same rounded keys in a batch or alone),
 *      except K_0 = k_aux row 1 when k_type != f16, and except step 5;
 *   5. exact window (kv_window W > 0; the caller passes 0 for an f16/f16
 *      cache except on a ring-only layer, step 6): for j > p - W, K_j and V_j are exact rows instead of
 *      kvq_decode's: for j in [pos0, p] the batch's own rows, for j < pos0
 *      ring slot j % W when ring_pos[j % W] == j (else the decoded row, as
 *      after a rewind); "exact" means in the attention's domain (K: the
 *      centred key when k_type != f16, per KV head multiplied by the
 *      rotation R when k_type is rotated; V: R v when v_type is rotated,
 *      v otherwise) and rounded to f16, except that K_0 stays k_aux row 1
 *      (f32) when k_type != f16. Afterwards, for every position p of the
 *      batch in order, k_ring/v_ring slot p % W = that f16 row and
 *      ring_pos[p % W] = p (so the ring ends holding the batch's last
 *      min(W, n_tok) rows and older slots untouched). This is what
 *      cpu/forward.c computes (docs/kv-cache.md, "The exact recent
 *      window"), so a batch and token-by-token decode give the same bits;
 *   6. ring-only layer (ABI 4; backend_device_supports_kv_ring_only):
 *      k_cache and v_cache absent (buf NULL) with window > 0 and kv_window
 *      >= window, any type pair (f16/f16 too: then the ring is the whole
 *      cache, with no k_aux): the layer keeps no encoded rows. Step 3 stores nothing
 *      (k_aux as before), steps 4-5 read every K_j, V_j from the exact
 *      rows (every j attended to is > p - window >= p - W), and the caller
 *      guarantees ring_pos[j % W] == j for every j in [max(0, pos0 -
 *      window + 1), pos0), so no decoded row is ever needed. The ring is
 *      written as in step 5. Used for sliding-window layers
 *      (plan_kv_layer_codes); everything else is as with a cache.
 *   q: F32 [n_tok][H*D] and k: F32 [n_tok][Hk*D] are overwritten (normed,
 *   rotated); v: F32 [n_tok][Hk*D]; q_norm, k_norm: F32 [D] or absent;
 *   rope_divs: F32 [n_rot/2] or absent; k_cache, v_cache: this layer's,
 *   [n_ctx] rows, positions [0, pos0) already valid; for KVQ_F16 an F16
 *   tensor of ne0 >= Hk*D, for the other types an I8 tensor whose row holds
 *   the Hk encoded head vectors back to back (ne0 >= Hk * kvq_head_bytes);
 *   out: F32 [n_tok][H*D]; k_aux: F32 [2][Hk*D] of this layer's cache,
 *   required when k_type != f16 (absent otherwise), zero before the first
 *   batch. Requires pos0 + n_tok <= k_cache.n_rows. k_ring, v_ring: F16
 *   [W][Hk*D] and ring_pos: I32 [W] of this layer's cache when kv_window >
 *   0 (ring_pos all -1 before the first batch), absent otherwise.
 *   k_type = v_type = 0 (KVQ_F16) is the zero-initialized default.
 *
 * GLU: g[t][i] = act(g[t][i]) * u[t][i]; g, u: F32 [n_tok][F].
 *
 * ADD: x[t] += (w present ? rmsnorm(y[t]) * w : y[t]); x, y: F32 [n_tok][E],
 *   w: F32 [E] or absent; when w is present y is overwritten with the normed
 *   row (the gemma3 post-norms fuse here).
 *
 * LOGITS: y[t] = out_w . (rmsnorm(x[t]) * norm_w), t < n_tok. x: F32
 *   [n_tok][E] (a view selecting the rows wanted, e.g. only the last token),
 *   norm_w: F32 [E]; out_w: [V][E] any supported type; y: F32 [n_tok][V].
 *   x is left unchanged. Same arithmetic as RMSNORM into scratch then MATMUL.
 */
struct hearth_op_embed {
    struct hearth_tensor table, ids, out;
    float scale;
};

struct hearth_op_rmsnorm {
    struct hearth_tensor x, w, y;
    float eps;
};

struct hearth_op_matmul {
    int n_w;
    struct hearth_tensor x;
    struct hearth_tensor w[3], b[3], y[3];
};

struct hearth_op_attention {
    struct hearth_tensor q, k, v, q_norm, k_norm, rope_divs, k_cache, v_cache, out;
    struct hearth_tensor k_aux; /* F32 [2][Hk*D]: key mean, sink key (k_type != f16) */
    int n_head, n_head_kv, head_dim, n_rot;
    enum hearth_rope_mode rope_mode;
    float rope_base, rope_freq_scale;
    float norm_eps; /* of q_norm / k_norm */
    float scale;    /* multiplies q . k */
    int64_t pos0;
    uint32_t window; /* 0: full causal attention */
    int k_type, v_type; /* enum kvq_type of the cache (0: f16); see supports_kv */
    uint32_t layer;     /* layer index: selects the rotation of rot4/rot3 */
    uint64_t kv_seed;   /* model seed of the rotation (kvq_model_seed) */
    /* ABI 3: the exact recent window (step 5); kv_window 0: none, rings absent */
    uint32_t kv_window;
    struct hearth_tensor k_ring, v_ring; /* F16 [kv_window][Hk*D] */
    struct hearth_tensor ring_pos;       /* I32 [kv_window]: position held, -1 none */
};

struct hearth_op_glu {
    struct hearth_tensor g, u;
    enum hearth_glu_act act;
};

struct hearth_op_add {
    struct hearth_tensor x, y, w;
    float eps;
};

struct hearth_op_logits {
    struct hearth_tensor x, norm_w, out_w, y;
    float eps;
};

struct hearth_op {
    enum hearth_op_kind kind;
    int n_tok;
    union {
        struct hearth_op_embed embed;
        struct hearth_op_rmsnorm rmsnorm;
        struct hearth_op_matmul matmul;
        struct hearth_op_attention attn;
        struct hearth_op_glu glu;
        struct hearth_op_add add;
        struct hearth_op_logits logits;
    } u;
};

/* ==== stream ============================================================== */

struct hearth_stream_ops {
    uint32_t abi_version;
    void (*destroy)(struct hearth_stream *s);
    /*
     * Enqueues host -> buffer; src must stay valid and unchanged until the
     * stream (or an event recorded after it) completes. From a PINNED buffer's
     * memory the copy overlaps host work. optional: default: buffer set (sync)
     */
    hearth_status (*set_async)(struct hearth_stream *s, struct hearth_buffer *buf, size_t offset,
                               const void *src, size_t n);
    /* Enqueues buffer -> host; dst is valid after synchronize. optional: default: get (sync) */
    hearth_status (*get_async)(struct hearth_stream *s, struct hearth_buffer *buf, size_t offset,
                               void *dst, size_t n);
    /*
     * Enqueues ops[0..n_ops) in order. A backend may fuse neighbours as long
     * as every tensor an op writes ends up as its contract says. Returns
     * UNSUPPORTED (naming op and type) for an op supports_op denies, and may
     * return NO_MEMORY/DEVICE_OOM for scratch it grows on first use.
     */
    hearth_status (*graph_run)(struct hearth_stream *s, const struct hearth_op *ops, int n_ops);
    /* Waits for everything enqueued; reports errors of asynchronous work. */
    hearth_status (*synchronize)(struct hearth_stream *s);
    /*
     * Events: a point in a stream the host can wait for. All four optional:
     * default: record does nothing and synchronize waits for the whole stream.
     */
    hearth_status (*event_create)(struct hearth_stream *s, void **ev_ctx);
    void (*event_destroy)(struct hearth_stream *s, void *ev_ctx);
    hearth_status (*event_record)(struct hearth_stream *s, void *ev_ctx);
    hearth_status (*event_synchronize)(struct hearth_stream *s, void *ev_ctx);
};

struct hearth_stream {
    const struct hearth_stream_ops *ops;
    void *ctx;
    struct hearth_device *dev;
};

/* ==== backend registration ================================================ */

/*
 * What a backend hands the registry (core/backend-registry.c): one table per
 * backend kind. Device i is named backend name + i ("cuda0") except for the
 * single "cpu".
 */
struct hearth_backend_ops {
    uint32_t abi_version;
    const char *name; /* "cpu", "cuda", "vulkan" */
    /* Devices present (0 without driver or device: not an error). Cheap; may be cached. */
    int (*device_count)(void);
    /*
     * Describes device i without opening it (for `hearth devices`); bw_gbps
     * stays 0 unless known without measuring.
     */
    hearth_status (*device_describe)(int index, struct hearth_device_props *out);
    /* Opens device i: the context, its buffer types and whatever streams need. */
    hearth_status (*device_open)(int index, struct hearth_device **out);
};

/* ==== core wrappers (backend.c) ============================================ */

/* Device */
void backend_device_destroy(struct hearth_device *dev); /* NULL: nothing */
void backend_device_props(struct hearth_device *dev, struct hearth_device_props *out);
void backend_device_memory(struct hearth_device *dev, uint64_t *free_bytes, uint64_t *total_bytes);
bool backend_device_supports_op(struct hearth_device *dev, enum hearth_op_kind op, hearth_dtype t);
/* ATTENTION over a cache of these kvq types (default: f16 only). */
bool backend_device_supports_kv(struct hearth_device *dev, int k_type, int v_type);
/* ATTENTION's exact window (step 5) for these kvq types (default: no). */
bool backend_device_supports_kv_window(struct hearth_device *dev, int k_type, int v_type);
/* supports_kv_window and an ABI >= 4 table: ATTENTION step 6 (ring-only layers). */
bool backend_device_supports_kv_ring_only(struct hearth_device *dev, int k_type, int v_type);
/*
 * The ring tensors of ATTENTION step 5 against the contract (kv_window > 0):
 * k_ring, v_ring F16 [>= W][>= Hk*D] with even row strides, ring_pos I32 as
 * one row of >= W or W contiguous rows of one. INVALID_ARG names who ("cpu"),
 * the tensor and what it got. Backends add their own layout limits after it.
 */
hearth_status backend_check_kv_ring(const struct hearth_op_attention *a, const char *who);
struct hearth_buffer_type *backend_device_buffer_type(struct hearth_device *dev);
struct hearth_buffer_type *backend_device_host_buffer_type(struct hearth_device *dev);
hearth_status backend_device_measure_bandwidth(struct hearth_device *dev, double *gbps);

/* Buffer type */
size_t backend_buft_alignment(struct hearth_buffer_type *bt);
size_t backend_buft_max_size(struct hearth_buffer_type *bt);
/*
 * The largest buffer an opened device's buffer type allocates, the limit
 * backend_buffer_alloc enforces; 0 when it has none worth planning around
 * (max_size of SIZE_MAX / 2 or more: the CPU, CUDA). What the planner takes
 * as plan_device.max_buffer_bytes; hearth_device_props.max_buffer_bytes says
 * the same of a device not opened.
 */
uint64_t backend_device_max_buffer(struct hearth_device *dev);
uint32_t backend_buft_flags(struct hearth_buffer_type *bt);
/*
 * Allocates size bytes (0 is rounded up to 1). Checks max_size, consults the
 * allocation hook, then the backend. *out is NULL on failure.
 */
hearth_status backend_buffer_alloc(struct hearth_buffer_type *bt, size_t size,
                                   struct hearth_buffer **out);

/*
 * Fault injection (tests, style point 13): called before every
 * backend_buffer_alloc; a status other than HEARTH_OK fails that allocation
 * with it (and a message saying it was injected). NULL removes the hook.
 * Process-wide, not thread-safe: set it only while no other thread allocates.
 */
typedef hearth_status (*backend_alloc_hook_fn)(void *user, struct hearth_buffer_type *bt,
                                               size_t size);
void backend_set_alloc_hook(backend_alloc_hook_fn hook, void *user);

/* Buffer; offsets and sizes are checked against buf->size (INVALID_ARG). */
void backend_buffer_free(struct hearth_buffer *buf); /* NULL: nothing */
void *backend_buffer_base(struct hearth_buffer *buf);
hearth_status backend_buffer_set(struct hearth_buffer *buf, size_t offset, const void *src,
                                 size_t n);
hearth_status backend_buffer_get(struct hearth_buffer *buf, size_t offset, void *dst, size_t n);
hearth_status backend_buffer_clear(struct hearth_buffer *buf, uint8_t value);
/* Device-side copy; UNSUPPORTED when the backend declines (then stage through host). */
hearth_status backend_buffer_copy(struct hearth_buffer *dst, size_t doff, struct hearth_buffer *src,
                                  size_t soff, size_t n);

/*
 * Wraps n bytes of host memory the caller keeps alive (the model's file
 * mapping) as a buffer without copying: HOST flag, usable by any device whose
 * props say host_memory. Its buft belongs to no device (dev NULL). The memory
 * may be read-only (a PROT_READ mapping): never pass it as an op's output.
 * Freeing it frees only the wrapper.
 */
hearth_status backend_buffer_from_host_ptr(void *ptr, size_t n, struct hearth_buffer **out);

/* Stream */
hearth_status backend_stream_create(struct hearth_device *dev, struct hearth_stream **out);
void backend_stream_destroy(struct hearth_stream *s); /* NULL: nothing */
hearth_status backend_stream_set_async(struct hearth_stream *s, struct hearth_buffer *buf,
                                       size_t offset, const void *src, size_t n);
hearth_status backend_stream_get_async(struct hearth_stream *s, struct hearth_buffer *buf,
                                       size_t offset, void *dst, size_t n);
/* Checks every op's kind, n_tok and that its tensors' buffers belong to s's device. */
hearth_status backend_stream_run(struct hearth_stream *s, const struct hearth_op *ops, int n_ops);
hearth_status backend_stream_synchronize(struct hearth_stream *s);

/* Events (wrapper-owned handle; backend state in ctx) */
struct hearth_event {
    struct hearth_stream *stream;
    void *ctx;
    bool recorded;
};
hearth_status backend_event_create(struct hearth_stream *s, struct hearth_event **out);
void backend_event_destroy(struct hearth_event *ev); /* NULL: nothing */
hearth_status backend_event_record(struct hearth_event *ev);
/* Waits until the work enqueued before the last record finished (not recorded: returns). */
hearth_status backend_event_synchronize(struct hearth_event *ev);

/*
 * A tensor view of a whole buffer region: n_rows rows of ne0 elements of
 * type, packed (row_stride = the row's bytes). Returns false (and leaves *out
 * unset) if ne0 does not fit the type's block size.
 */
bool backend_tensor_2d(struct hearth_tensor *out, struct hearth_buffer *buf, size_t offset,
                       hearth_dtype type, int64_t ne0, int64_t n_rows);

/* ==== the CPU backend (cpu/backend-cpu.c) ================================= */

struct cpu_backend_params {
    int n_threads;    /* <= 0: physical cores */
    int isa;          /* an enum cpu_isa, or -1: cpu_isa_best() */
    const char *name; /* NULL: "cpu"; tests open two CPU devices "cpu-a", "cpu-b" */
};

/* Opens a CPU device with its own thread pool. */
hearth_status cpu_backend_device_create(const struct cpu_backend_params *p,
                                        struct hearth_device **out);
/* The registry's table for the CPU ("cpu", one device, default params). */
const struct hearth_backend_ops *cpu_backend_ops(void);

#ifdef __cplusplus
}
#endif
#endif
