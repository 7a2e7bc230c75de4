/*
 * plan: decides where every tensor of a model lives and runs, how much memory
 * each device needs, and how fast the result will be (`hearth plan`, and the
 * loader's allocation plan).
 *
 * Inputs are descriptions, never live objects: the model's tensor list and
 * architecture (from a GGUF header; weights are not read), device descriptions
 * (memory budget, bandwidths, FLOP rate: detected or described on the command
 * line to plan for another machine) and options (context, parallel sequences,
 * KV type). The output, struct plan, is plain data: for each tensor where its
 * bytes live and where it is computed, its byte offset in that device's weight
 * buffer; per device the weights, KV, scratch, stream and reserve bytes (and
 * on the host the GPU backends' own host staging); per layer where attention
 * and FFN run; predicted prefill and decode tokens/s; and the reason for every
 * decision in words. The loader allocates exactly what the plan says
 * (plan_device_alloc_bytes is the one formula), so the estimate and the
 * allocation cannot drift apart.
 *
 * Placement (plan.c has the details): per tensor, greedy by bytes read per
 * token per byte of VRAM. LM head, then each layer's attention with its KV
 * cache (an atomic unit: attention must run where its KV lives), then FFN
 * tensors layer by layer, then MoE expert stacks, then token_embd; first fit,
 * fastest GPU first, ties by tensor index. Host-resident weights are computed
 * by the CPU during decode and streamed over PCIe to a GPU for batched prefill
 * when the cost model says that is faster (plan-cost.c).
 */
#ifndef HEARTH_PLAN_H
#define HEARTH_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch-info.h"
#include "gguf.h"
#include "hearth.h"
#include "quant-mix.h"

#define PLAN_MAX_DEVICES 8
#define PLAN_MAX_LIMITS 8 /* plan.limits kept for the reasons */
#define PLAN_HOST 0     /* devices.dev[0] is always the host (CPU + RAM) */
#define PLAN_ALIGN 256u /* every allocation on every device is rounded up to this */

/* ---- devices ------------------------------------------------------------ */

enum plan_dev_kind { PLAN_DEV_CPU, PLAN_DEV_CUDA, PLAN_DEV_VULKAN };

struct plan_device {
    char name[32]; /* "cpu", "cuda0", "vulkan1" */
    enum plan_dev_kind kind;
    uint64_t budget_bytes; /* memory the plan may use there (host: RAM) */
    double mem_bw;         /* bytes/s the device reads its own memory at */
    double flops;          /* FLOP/s sustained by matmuls on quantized weights (Q4_K if measured) */
    double h2d_bw;         /* host-to-device copy bytes/s (PCIe); on the host: the
                              --pcie figure for GPUs added later, 0 if none */
    /*
     * Decode's figures (flops.h), measured only (the cache); 0 when not:
     * mv_bw, per weight type, bytes/s of weight a one-token matmul consumes
     * (a type not measured is costed per weight at Q4_K's rate; Q4_K not
     * measured: decode is costed at mem_bw alone), and op_s, seconds each op
     * costs beyond its work (unknown: PLAN_DEFAULT_*_OP_S).
     */
    double mv_bw[HEARTH_DTYPE_COUNT];
    double op_s;
    /*
     * Prefill's FLOP/s per weight type, measured only (0: not; a type
     * without one runs at flops).
     */
    double mm_flops[HEARTH_DTYPE_COUNT];
    double attn_flops; /* ATTENTION op FLOP/s, measured only (0: costed at flops) */
    bool budget_assumed, mem_bw_assumed, flops_assumed, h2d_bw_assumed;
    bool mem_bw_measured, h2d_bw_measured, flops_measured; /* from a measurement (the cache) */
    /*
     * The loader reads weights resident here in place from the file mapping
     * (host RAM devices): they count toward its memory but are not allocated,
     * and no upload staging is needed.
     */
    bool maps_weights;
    /* A software rasterizer computing on the host's cores (reg_is_software_device). */
    bool software;
    /*
     * Host RAM the device's backend may allocate for its own transfers, worst
     * case (hearth_device_props.host_staging_bytes; a described Vulkan GPU:
     * PLAN_DEFAULT_VULKAN_HOST_STAGING). Charged to the host when the device
     * is used. 0 for the host, CUDA and none.
     */
    uint64_t host_staging_bytes;
    /*
     * The largest single buffer the device allocates
     * (hearth_device_props.max_buffer_bytes; a described Vulkan GPU:
     * PLAN_DEFAULT_VULKAN_MAX_BUFFER); 0: no limit below its budget. A unit
     * bringing a larger buffer (a tensor, a layer's K or V cache, the LM
     * head's logits) is not placed there.
     */
    uint64_t max_buffer_bytes;
};

struct plan_devices {
    int n; /* >= 1; dev[PLAN_HOST] is the host */
    struct plan_device dev[PLAN_MAX_DEVICES];
    char cache_note[192]; /* why the bandwidth cache was ignored; "" if it was not */
};

/* Defaults used when a figure is not measured or given (all documented estimates). */
#define PLAN_DEFAULT_HOST_BW 50e9
#define PLAN_DEFAULT_HOST_FLOPS 2e12
#define PLAN_DEFAULT_HOST_BYTES (16ull << 30)
#define PLAN_DEFAULT_CUDA_BW 900e9
#define PLAN_DEFAULT_CUDA_FLOPS 100e12
#define PLAN_DEFAULT_VULKAN_BW 250e9
#define PLAN_DEFAULT_VULKAN_FLOPS 20e12
#define PLAN_DEFAULT_PCIE_BW 16e9
/* Q4_K's bytes per weight (144 per 256): the unit of a measured matvec rate */
#define PLAN_Q4_K_BYTES_PER_WEIGHT (144.0 / 256.0)
/*
 * Seconds an op costs beyond its work where not measured: a CPU's thread
 * fork/join (1-1.5 us measured on a 2-core VM; more cores wait longer), a
 * CUDA kernel launch (a few us), a Vulkan dispatch with its barrier.
 */
#define PLAN_DEFAULT_CPU_OP_S 2e-6
#define PLAN_DEFAULT_CUDA_OP_S 5e-6
#define PLAN_DEFAULT_VULKAN_OP_S 10e-6
/*
 * Not an estimate: what the Vulkan backend reports for a device whose largest
 * allocation is at least 64 MiB (every GPU): 4 submission frames of staging,
 * each grown on demand up to 64 MiB (vulkan/command.c). A described Vulkan
 * device counts it, so a plan for another machine matches one made there.
 */
#define PLAN_DEFAULT_VULKAN_HOST_STAGING (4ull * (64ull << 20))
/*
 * The Vulkan backend's own cap on one buffer (vulkan/device.c chunk_cap:
 * 32-bit offsets, less its slack), what a driver allowing 4 GiB storage
 * ranges gets; a described Vulkan device assumes it.
 */
#define PLAN_DEFAULT_VULKAN_MAX_BUFFER (0xffffff00ull - 256)

/* Just the host, every figure assumed (PLAN_DEFAULT_HOST_*). */
void plan_devices_init(struct plan_devices *d);
/*
 * Appends a GPU described as "KIND:MEM:BW[:FLOPS]", e.g. "cuda:24GiB:1008GB/s" or
 * "vulkan:8GiB:256GB/s:20TFLOPS". KIND is cuda or vulkan; names are numbered per
 * kind (cuda0, cuda1, ...). INVALID_ARG naming the field on a bad string.
 */
hearth_status plan_devices_add(struct plan_devices *d, const char *spec);
/* Describes the host: "MEM:BW[:FLOPS]", e.g. "64GiB:70GB/s". */
hearth_status plan_devices_set_host(struct plan_devices *d, const char *spec);
/* PCIe host-to-device bandwidth of every GPU: "25GB/s". */
hearth_status plan_devices_set_pcie(struct plan_devices *d, const char *spec);
/*
 * Adds the devices the backend registry reports (budget = free memory; the
 * host's budget = its RAM); bandwidths and FLOP rates come from the cache
 * (plan_devices_apply_cache) where measured, else are assumed defaults.
 */
hearth_status plan_devices_detect(struct plan_devices *d);
/*
 * Takes device i's memory and host-to-device bandwidths and its FLOP rate
 * from the bandwidth cache (bandwidth.h; keyed by its name and driver
 * description desc) where they are measured (non-zero) and marks them so:
 * *_measured true, *_assumed false. False when the cache has no entry; a bad
 * or unreadable cache file is ignored with a note in d->cache_note.
 */
bool plan_devices_apply_cache(struct plan_devices *d, int i, const char *desc);
/* Seconds an op costs device dv beyond its work: its measured op_s, else its kind's default. */
double plan_op_seconds(const struct plan_device *dv);
/* Caps every GPU's budget at bytes (--vram-budget). */
void plan_devices_cap(struct plan_devices *d, uint64_t bytes);
/* Parsers shared with the CLI. Each names `field` in its error message. */
hearth_status plan_parse_bytes(const char *field, const char *s, uint64_t *out);
hearth_status plan_parse_rate(const char *field, const char *s, double *bytes_per_s);

/* ---- model description ---------------------------------------------------- */

enum plan_role {
    PLAN_ROLE_EMBD,        /* token_embd (untied): one row read per token */
    PLAN_ROLE_OUTPUT,      /* LM head (output, or token_embd when tied) */
    PLAN_ROLE_OUTPUT_NORM, /* output_norm */
    PLAN_ROLE_ATTN,        /* blk.N.attn_*: runs where layer N's KV lives */
    PLAN_ROLE_FFN_NORM,    /* blk.N.ffn_norm, post_ffw_norm, ffn_gate_inp (router) */
    PLAN_ROLE_FFN,         /* blk.N.ffn_gate/up/down (dense or shared expert) */
    PLAN_ROLE_EXPERT,      /* blk.N.ffn_*_exps: decode reads n_expert_used/n_expert */
    PLAN_ROLE_OTHER,       /* rope_freqs and anything unrecognized: tiny, with the output */
};

struct plan_model_tensor {
    char name[64];
    hearth_dtype type;
    uint32_t n_dims;
    uint64_t ne[4]; /* ggml order; unused dims 1 */
    uint64_t nbytes;
    int32_t layer; /* block number, -1 outside blocks */
    enum plan_role role;
};

struct plan_model {
    struct arch_info arch;
    char name[64]; /* general.name, else the file's base name */
    size_t n_tensors;
    struct plan_model_tensor *tensors; /* file order */
};

/* Reads names, types, shapes and sizes from a GGUF header (no tensor data). */
hearth_status plan_model_from_gguf(const struct gguf_file *f, struct plan_model *out);
/*
 * The same model with every tensor typed as llama-quantize would type it for
 * `mix` (core/quant-mix.h), from the shapes alone. UNSUPPORTED (message names
 * the tensor) when the mix has no type for a shape.
 */
hearth_status plan_model_retype(const struct plan_model *src, const struct quant_mix *mix,
                                bool imatrix, struct plan_model *out);
void plan_model_free(struct plan_model *m);
uint64_t plan_model_bytes(const struct plan_model *m);
uint64_t plan_model_params(const struct plan_model *m);

/* ---- options -------------------------------------------------------------- */

struct plan_opts {
    uint32_t n_ctx;       /* context per sequence; 0: min(training context, 4096) */
    uint32_t n_parallel;  /* sequences, each with its own n_ctx of KV; 0: 1 */
    uint32_t n_batch;     /* prefill micro-batch (tokens per graph); 0: 512 */
    int kv_type_k;        /* enum kvq_type (core/kv-quant.h) of the cached keys; 0: f16 */
    int kv_type_v;        /* and of the values */
    int32_t n_gpu_layers; /* -1: automatic; >= 0: llama.cpp's -ngl (first N layers on the GPU) */
    uint32_t n_prompt;    /* prompt for the prefill prediction, and the decode depth; 0: 512 */
    /*
     * Rows of the logits buffer on the device computing the LM head: the
     * logits one head op returns at once (a batch wanting more gets them in
     * rounds of this many). 0: n_parallel (one row per sequence, what
     * generation and serving want per step); at most n_batch. perplexity
     * asks for its PPL_LOGIT_BATCH.
     */
    uint32_t n_logits;
    bool no_stream;       /* never stream host weights to a GPU for prefill */
    uint32_t kv_window;   /* exact f16 ring of a compressed cache per layer and sequence; 0: none */
    /*
     * Sliding-window layers keep a row for every position, as global layers
     * do (llama.cpp's --swa-full), so that a rewind of any length can be
     * served: plan_kv_layer_window / plan_kv_layer_codes below.
     */
    bool swa_full;
    /*
     * Place as the scheduler (core/scheduler.h) executes: each layer's FFN as
     * two units, ffn_norm + ffn_gate + ffn_up (and router/experts) and
     * ffn_down + post_ffw_norm (its FFN and FFN_DOWN blocks), token_embd and
     * unrecognized tensors on the host. A GPU that gets a layer's down unit
     * without its gate/up unit also gets the wider boundary staging the GLU
     * output crosses through (plan_glu_stage_bytes). The loader sets it;
     * `hearth plan` plans per tensor.
     */
    bool sched_layout;
    /*
     * Place on every GPU, even one measured slower than the host (see
     * plan.skipped_gpu): the user named the devices to run on.
     */
    bool every_gpu;
};

void plan_opts_default(struct plan_opts *o);

/* ---- the plan ------------------------------------------------------------- */

enum plan_kind {
    PLAN_KIND_DEVICE, /* resident on a GPU, computed there */
    PLAN_KIND_HOST,   /* resident in host RAM, computed by the CPU */
    PLAN_KIND_STREAM, /* resident in host RAM; CPU in decode, copied to a GPU for prefill */
};

struct plan_tensor {
    int resident;         /* device index holding the bytes (PLAN_HOST = host RAM) */
    int compute;          /* device index computing it during decode */
    int prefill;          /* device index computing it during batched prefill */
    enum plan_kind kind;
    uint64_t offset;      /* byte offset in the resident device's weight buffer (PLAN_ALIGN) */
    uint64_t alloc_bytes; /* nbytes rounded up to PLAN_ALIGN */
    uint64_t unit_bytes;  /* bytes of its placement unit (attention: weights + KV of the layer) */
    uint64_t unit_largest; /* the unit's largest single buffer (vs max_buffer_bytes) */
};

struct plan_layer {
    int attn_dev;         /* device computing attention and holding the layer's KV */
    int ffn_dev;          /* device computing all FFN matrices; -1 when split across devices */
    int ffn_up_dev;       /* device computing ffn_gate + ffn_up (the scheduler's FFN block;
                             per-tensor plans: the one computing most of those bytes) */
    int ffn_down_dev;     /* device computing ffn_down (the FFN_DOWN block), same rule */
    uint64_t kv_bytes;    /* K + V of this layer, all sequences (allocation size) */
    uint64_t attn_bytes;  /* attention weights */
    uint64_t ffn_bytes;   /* FFN weights (norms and experts included) */
    uint64_t ffn_gpu_bytes; /* of which resident on a GPU */
};

struct plan_usage {
    uint64_t weights; /* bytes of resident tensors (alloc_bytes summed), copies included */
    uint64_t copies;  /* of which copies of tensors resident elsewhere: rope_freqs on
                         every attention device, a tied token_embd on the host */
    uint64_t kv;      /* bytes of KV cache */
    uint64_t scratch; /* compute-graph buffers */
    uint64_t stream;  /* double buffer for weights streamed from the host (GPU only) */
    uint64_t staging; /* host-visible staging through the device's host buffer type:
                         boundary moves, and 2 upload halves while loading weights */
    uint64_t reserve; /* driver context, backend working memory (attention score
                         tiles) and fragmentation margin (GPU only): never allocated */
    uint64_t host_staging; /* host only: the host_staging_bytes of every used GPU, host RAM
                              their backends allocate on demand up to that worst case;
                              counted in total, not allocated by the loader */
    uint64_t total;   /* sum of the above; 0 when the device is unused */
    uint64_t budget;
    uint64_t room;    /* budget left for one more tensor: budget - total, or the
                         budget less its fixed costs when unused */
    uint64_t read_per_token; /* weight + KV bytes read there per decode step */
    double decode_s;  /* its share of one decode step: the largest of the three
                         work terms below, plus decode_ops_s */
    double decode_mem_s;  /* read_per_token at its memory bandwidth */
    double decode_mv_s;   /* its matmul weights at its measured matvec rates + KV at
                             memory bandwidth; 0 when not measured */
    double decode_comp_s; /* FLOPs at its FLOP rate */
    double decode_ops;    /* ops dispatched per step */
    double decode_ops_s;  /* decode_ops at its op latency */
    double prefill_s; /* its share of the whole prompt's prefill */
};

struct plan {
    struct plan_devices devs;
    struct plan_opts opts; /* defaults resolved */
    size_t n_tensors;
    struct plan_tensor *tensors; /* parallel to the model's tensors */
    uint32_t n_layer;
    struct plan_layer *layers;
    struct plan_usage use[PLAN_MAX_DEVICES];
    double decode_tps;          /* tokens/s per sequence, at depth n_prompt */
    double decode_tps_total;    /* all n_parallel sequences together */
    double prefill_tps;         /* prompt of n_prompt tokens */
    double host_ceiling_tps;    /* host bandwidth / host bytes per token (inf if none) */
    uint64_t host_read_per_token;
    bool streaming;         /* some host tensors are streamed for prefill */
    /*
     * GPUs the automatic placement left unused: software rasterizers
     * (plan_device.software), and GPUs whose measured one-token matmul rate
     * (mv_bw, Q4_K) is below the host's, where decode would be slower than
     * on the CPU.
     */
    bool skipped_gpu[PLAN_MAX_DEVICES];
    /*
     * Units kept off a GPU that had room for them, and GPUs left unused,
     * because a buffer exceeds the GPU's max_buffer_bytes: the first
     * PLAN_MAX_LIMITS of them (n_limits counts all).
     */
    struct plan_buffer_limit {
        int dev;         /* the GPU */
        bool scratch;    /* its scratch: the GPU is left unused */
        char what[96];   /* "output.weight", "the KV cache of layer 3" */
        uint64_t bytes;  /* the buffer that does not fit */
    } limits[PLAN_MAX_LIMITS];
    int n_limits;
    bool host_overcommitted; /* host needs exceed its RAM: pages would come from disk */
    size_t n_reasons;
    char **reasons;
};

/*
 * Plans model m on devices d with options o (NULL: defaults). The result does
 * not depend on anything else: the same inputs give the same plan, byte for
 * byte. Errors: INVALID_ARG for bad options, DEVICE_OOM when a manual
 * n_gpu_layers does not fit (message names the device and both sizes),
 * NO_MEMORY.
 */
hearth_status plan_make(const struct plan_model *m, const struct plan_devices *d,
                        const struct plan_opts *o, struct plan *out);
void plan_free(struct plan *p);

/*
 * What the loader allocates on device i: weights (unless the device maps
 * them) + KV + scratch + staging + stream buffers; the reserve stays free,
 * and the host's host_staging is the backends' to allocate.
 */
uint64_t plan_device_alloc_bytes(const struct plan *p, int i);
/*
 * Buffers the loader allocates for tensor i: 1, except for an LM head on a
 * GPU whose largest buffer it exceeds, split by plan_head_split_rows.
 */
uint32_t plan_tensor_buffers(const struct plan_model *m, const struct plan *p, size_t i);

static inline uint64_t plan_align_up(uint64_t x)
{
    return (x + PLAN_ALIGN - 1) / PLAN_ALIGN * PLAN_ALIGN;
}

/*
 * The allocation sizes shared by the planner and the scheduler (plan-kv.c);
 * the scheduler allocates exactly these, so the plan is the allocation.
 */
#define PLAN_UPLOAD_HALF ((uint64_t)4 << 20) /* one of the two upload staging halves */
/* Bytes of one cached position: n_head_kv vectors of head_dim in kvq type `type`. */
uint64_t plan_kv_row_bytes(int type, uint32_t n_head_kv, uint32_t head_dim);
/* One K or V cache buffer: rows positions of row bytes, rounded to PLAN_ALIGN. */
uint64_t plan_kv_buffer_bytes(uint64_t row, uint64_t rows);
/*
 * The largest single buffer of layer il's KV cache (K, V, the aux blocks or
 * the exact window's rings of all sequences; plan_kv_layer_bytes is their
 * sum): what must fit a device's max_buffer_bytes.
 */
uint64_t plan_kv_layer_largest(const struct arch_info *a, const struct plan_opts *o, uint32_t il);
/*
 * The k_aux buffer of one layer and sequence (backend.h ATTENTION: key mean
 * and sink key, F32 [2][n_head_kv * head_dim]) for a compressed K; 0 for f16.
 */
uint64_t plan_kv_aux_bytes(int k_type, uint32_t n_head_kv, uint32_t head_dim);
/*
 * Positions a sliding-window layer's ring keeps beyond its window, so that a
 * rewind of up to this many positions (chat re-tokenizing the end of a
 * reply, a stop string) finds every row it needs; a longer rewind restarts
 * the sequence from 0 (kv_ring_can_eval, core/kv-cache.h).
 */
#define PLAN_SWA_SLACK 64u
/*
 * The exact window W_l of one layer (positions kept as f16 rows beside the
 * codes, or instead of them; core/kv-cache.h), the rule every path uses:
 *  - a global layer (swa 0): min(kv_window, n_ctx), 0 without a window
 *    (kv_window 0) or for an f16/f16 cache, where it is unused;
 *  - a sliding-window layer (swa > 0, the positions it attends to) of a
 *    compressed cache with a window: min(swa + PLAN_SWA_SLACK, n_ctx)
 *    whatever kv_window is, so every row it reads is exact (gemma3's local
 *    layers carried most of a compressed cache's error with a 128-row
 *    window, docs/kv-cache.md); without a window 0 (codes only);
 *  - a sliding-window layer of an f16/f16 cache: swa + PLAN_SWA_SLACK when
 *    that is below n_ctx, else 0 (full rows, nothing to save): the ring is
 *    its whole cache, as llama.cpp's sliding-window cache.
 * A ring costs 16 · (swa + slack) / n_ctx bits per value, 0.28 at 32k for
 * swa = 512.
 * With o->swa_full a sliding-window layer keeps its rows (codes) as a global
 * layer does: f16/f16 gets 0 (full rows, no ring); a compressed cache with a
 * window keeps the same min(swa + PLAN_SWA_SLACK, n_ctx) ring beside its
 * codes, so every row within its window still reads exact and a rewind past
 * the slack reads the older rows from the codes instead of being refused.
 */
uint32_t plan_kv_layer_window(const struct plan_opts *o, uint32_t swa);
/*
 * Whether the layer keeps encoded (or f16) rows: false for a ring-only
 * layer, a sliding-window layer with a ring (backend.h ATTENTION step 6),
 * which holds every row it can read; true for every layer under swa_full.
 */
bool plan_kv_layer_codes(const struct plan_opts *o, uint32_t swa);
/*
 * The exact window's buffer of one layer and sequence: f16 K and V rows of
 * W_l = plan_kv_layer_window(o, swa) positions and an int32 tag per slot,
 * rounded to PLAN_ALIGN; 0 when W_l is 0.
 */
uint64_t plan_kv_window_bytes(const struct plan_opts *o, uint32_t swa, uint32_t n_head_kv,
                              uint32_t head_dim_k, uint32_t head_dim_v);
/*
 * The packed activation buffer of one device: F32 [n_batch] rows of x, xn, q,
 * k, v, att, tmp, gate, up (widths n_embd, n_embd, q_dim, kv_dim, kv_dim,
 * q_dim, n_embd, n_ff, n_ff), then the I32 token ids when it runs the
 * embedding (the whole rounded to PLAN_ALIGN), then F32 [n_logits][n_vocab]
 * logits when it runs the LM head (n_logits 0 elsewhere); the total rounded
 * to PLAN_ALIGN.
 */
uint64_t plan_act_bytes(uint64_t n_batch, uint64_t n_embd, uint64_t q_dim, uint64_t kv_dim,
                        uint64_t n_ff, uint64_t n_vocab, bool embd, uint64_t n_logits);
/* The boundary staging of one device: F32 [n_batch][n_embd], rounded to PLAN_ALIGN. */
uint64_t plan_stage_bytes(uint64_t n_batch, uint64_t n_embd);
/*
 * The boundary staging of a device that runs the down projection of a layer
 * whose gate/up ran on another device: x and the GLU output move together,
 * F32 [n_batch][n_embd] then F32 [n_batch][n_ff], rounded to PLAN_ALIGN. It
 * replaces plan_stage_bytes there (one buffer serves both kinds of move).
 */
uint64_t plan_glu_stage_bytes(uint64_t n_batch, uint64_t n_embd, uint64_t n_ff);
/*
 * One half of the stream double buffer (plan_usage.stream is two of them, on
 * the first GPU) for a largest streamed tensor of `largest` bytes:
 * plan_align_up(largest). The scheduler copies one streamed matrix per half,
 * so a half holds any of them; placement.stream_half_bytes carries the
 * plan's figure to it (which may be larger: the planner sizes it over every
 * host tensor it could stream).
 */
uint64_t plan_stream_half_bytes(uint64_t largest);
/*
 * Rows per buffer of the LM head's matrix (n_rows rows of row_bytes) on a
 * device whose largest buffer is cap bytes (0: no limit): n_rows when the
 * whole matrix fits one buffer (plan_align_up of its bytes <= cap); else
 * the most rows within cap that are a multiple of PLAN_ALIGN / gcd(row_bytes,
 * PLAN_ALIGN), so every part but the last is a whole number of PLAN_ALIGN
 * units and the parts, each rounded up, sum to the matrix's own
 * plan_align_up: the plan's bytes hold however a device splits it. 0 when
 * not even that many rows fit. Only the head splits: it is the one matrix
 * of a model sized by the vocabulary, the first to pass a driver's limit
 * (Gemma 3 270M's 170 MiB against lavapipe's 128 MiB); the scheduler runs
 * one LOGITS op per part into adjacent columns of the logits.
 */
uint64_t plan_head_split_rows(uint64_t row_bytes, uint64_t n_rows, uint64_t cap);
/*
 * KV bytes of layer il for n_ctx * n_parallel positions, K and V of their
 * kvq types, with its key aux and exact-window buffers (the options must
 * have passed plan_make's checks).
 */
uint64_t plan_kv_layer_bytes(const struct arch_info *a, const struct plan_opts *o, uint32_t il);
/* "Q4_K_M 70B on cuda0 (24.0 GiB): 53% of weights on GPU, 3.4 tok/s decode" style one-liner. */
void plan_summary_line(const struct plan_model *m, const struct plan *p, char *buf, size_t size);

/*
 * Internal (plan-kv.c): scratch of one device (embd: it runs the embedding
 * lookup; with_logits: it computes the LM head, o->n_logits rows of logits),
 * plan_act_bytes of the model.
 */
uint64_t plan__scratch_bytes(const struct arch_info *a, const struct plan_opts *o, bool embd,
                             bool with_logits);
/* Internal (plan-kv.c): the GPU reserve (with the attention score tiles); 0 for the host. */
uint64_t plan__reserve_bytes(const struct arch_info *a, const struct plan_opts *o,
                             const struct plan_device *dev);
/*
 * Internal (plan-kv.c): the budget B of device dev such that B less its
 * reserve is `usable` bytes (what a replan after an allocation failure uses).
 */
uint64_t plan__budget_for_usable(const struct arch_info *a, const struct plan_opts *o,
                                 const struct plan_device *dev, uint64_t usable);
/*
 * Internal (plan.c): whether tensor t belongs to the down part of its layer's
 * FFN (ffn_down, post_ffw_norm: the scheduler's FFN_DOWN block) rather than
 * the gate/up part (ffn_norm, router, ffn_gate, ffn_up, experts).
 */
bool plan__ffn_down_part(const struct plan_model_tensor *t);
/*
 * Internal (plan.c): whether tensor i, resident on the host in plan p, can be
 * streamed to GPU gpu for prefill: an FFN or expert matrix (or, without
 * sched_layout, the LM head) whose bytes fit one of gpu's buffers.
 */
bool plan__streamable(const struct plan_model *m, const struct plan *p, size_t i, int gpu);
/*
 * Internal (plan-kv.c): plan_head_split_rows for model tensor t (the head's
 * [n_embd][n_vocab] matrix, row bytes nbytes / ne[1]) under cap; 0 when not
 * even one group of rows fits. *group_bytes, if given: the bytes of the
 * smallest part it can be split into (what a cap must hold).
 */
uint64_t plan__head_rows(const struct plan_model_tensor *t, uint64_t cap, uint64_t *group_bytes);
/* Internal: the cost model (plan-cost.c), called by plan_make. */
void plan__decide_stream(const struct plan_model *m, struct plan *p);
/* Fills every device's read_per_token / decode_s / prefill_s and the predictions. */
void plan__predict(const struct plan_model *m, struct plan *p);
/* Internal: prefill seconds of tensor i on the CPU and streamed to GPU gpu. */
void plan__prefill_cost(const struct plan_model *m, const struct plan_devices *d,
                        const struct plan_opts *o, size_t i, int gpu, double *cpu_s,
                        double *stream_s);
/* Internal (plan-cost.c): writes the reasons of a placed, predicted plan. */
hearth_status plan__explain(const struct plan_model *m, struct plan *p);
/* Internal (plan.c): reasons, appended printf-style; NO_MEMORY on failure. */
hearth_status plan__reason(struct plan *p, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
