/*
 * engine: one sequence's forward pass on whatever devices the user chose.
 *
 * The tools (run, chat, bench, perplexity), the generation loop, perplexity
 * and the public API evaluate tokens through an engine instead of calling the
 * CPU forward pass (cpu/forward.h) or the scheduler (scheduler.h) directly.
 * engine_create decides which of the two runs the model:
 *
 *   - the CPU forward pass when no GPU takes part: no --device other than cpu,
 *     -ngl 0, or no device flags at all and no hardware GPU found. This is the
 *     path every tool took before devices existed, bit for bit.
 *   - the scheduler otherwise, with device index 0 always a CPU device (the
 *     token embedding, and every layer not offloaded) followed by the GPUs in
 *     the order named. The placement always comes from the planner (plan.h)
 *     run against the opened devices' free memory and measured bandwidths
 *     (bandwidth.h's cache): automatic for -ngl auto / no -ngl, manual for
 *     -ngl N (the first N layers on the fastest GPU). The scheduler then
 *     allocates exactly plan_device_alloc_bytes per device; when a device
 *     gives less than it reported, the engine replans with what it had.
 *
 * Software Vulkan implementations (lavapipe/llvmpipe, SwiftShader) are not
 * picked up implicitly: CI installs lavapipe, and silently moving every CPU
 * test onto an emulated GPU would be slower and no longer the CPU reference.
 * Naming them with --device (or giving -ngl) uses them like any GPU.
 *
 * engine_eval has forward_eval's contract (positions, rewinds, logits
 * layout), so callers switch with a rename. engine_describe gives the one line
 * the tools print at load ("plan: layers 0-29 attention+ffn on vulkan0,
 * output on vulkan0; 98 MB on vulkan0, 12 MB host").
 */
#ifndef HEARTH_ENGINE_H
#define HEARTH_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"
#include "model.h"
#include "placement.h"
#include "plan.h"
#include "scheduler.h"

#define ENGINE_NGL_AUTO (-1)  /* -ngl auto: the planner decides (== PLACEMENT_NGL_AUTO) */
#define ENGINE_NGL_UNSET (-2) /* no -ngl given: the planner when a GPU takes part */
#define ENGINE_MAX_DEVICES 8  /* the CPU device plus up to 7 GPUs */
/*
 * Default prefill batch: 64 on the CPU alone (its matmul tiles gain nothing
 * from more); 512 when a GPU takes part, the size at which CUDA's matmul goes to
 * cuBLAS (CUDA_MATMUL_BLAS_MIN_TOK) and a streamed weight's PCIe copy is shared
 * by the most tokens. On an H100 (bench/RESULTS.md, 2026-11-23) 64-token
 * batches held an 8B's pp512 to ~1200 tok/s on the WMMA kernel at 30-60 TFLOP/s,
 * while cuBLAS ran the same matmuls at 230-320 TFLOP/s.
 */
#define ENGINE_CPU_BATCH 64
#define ENGINE_GPU_BATCH 512

struct engine_params {
    uint32_t n_ctx; /* positions of the KV cache; 0: the model's training context */
    int n_threads;  /* CPU threads; <= 0: physical cores */
    int n_batch;    /* tokens per prefill batch; <= 0: ENGINE_CPU_BATCH or ENGINE_GPU_BATCH */
    int n_devices;  /* entries of devices; 0: none named (implicit choice, see above) */
    const char *const *devices; /* [n_devices] registry names: "cpu", "vulkan0", "cuda1" */
    int ngl;        /* >= 0: layers to offload (n_layer + 1: the output head too);
                       ENGINE_NGL_AUTO or ENGINE_NGL_UNSET */
    int kv_type_k;  /* enum kvq_type of the cached keys (core/kv-quant.h); 0: f16 */
    int kv_type_v;  /* ... of the cached values */
    int kv_window;  /* exact f16 window of a compressed cache (backend.h ATTENTION step 5) */
    bool swa_full;  /* sliding-window layers keep every position's row (--swa-full, plan.h) */
    uint64_t vram_budget; /* > 0: no GPU's plan budget exceeds it (--vram-budget); 0: free memory */
    int n_seq;      /* sequences, each its own KV cache of n_ctx (the plan's n_parallel); <= 1: one */
    bool no_stream; /* never stream host weights to a GPU for prefill (--no-stream) */
    /*
     * Logits rows one LM head op returns on a device (plan_opts.n_logits);
     * <= 0: one per sequence. More wanted rows still come, in rounds.
     */
    int n_logits;
};

struct engine;

/* n_ctx 0, n_threads 0, n_batch 0 (the default above), no devices, ngl ENGINE_NGL_UNSET. */
struct engine_params engine_params_default(void);

/*
 * Opens the devices and builds the forward pass for m (borrowed: it must
 * outlive the engine). Errors: NOT_FOUND for an unknown device name (the
 * message lists the devices this build and machine offer), INVALID_ARG (too
 * many or repeated devices, ngl < -2), UNSUPPORTED (a device lacks a weight
 * type), DEVICE_OOM (a manual -ngl the planner cannot fit: the device and
 * sizes; or the scheduler's message, the tensor, its size, the device and its
 * free bytes, after 8 replans), NO_MEMORY. *out is NULL on error and nothing
 * is left open.
 */
hearth_status engine_create(const struct model *m, const struct engine_params *p,
                            struct engine **out);
void engine_destroy(struct engine *e); /* NULL: nothing */

/*
 * forward_eval's contract: tokens[0..n_tokens) at positions pos0.. (pos0 at
 * most engine_n_past; smaller rewinds), logits_out [n_tokens][n_vocab] when
 * all_logits else [n_vocab] of the last token, NULL for none. Errors:
 * INVALID_ARG (nothing changed), or the device's status.
 */
hearth_status engine_eval(struct engine *e, const int32_t *tokens, int n_tokens, int pos0,
                          float *logits_out, bool all_logits);

/*
 * Several sequences (engine_params.n_seq): forward_eval_multi's contract
 * (cpu/forward.h) on the CPU path, sched_eval_multi's on the device path.
 */
hearth_status engine_eval_multi(struct engine *e, const int32_t *tokens, const int32_t *seq,
                                const int32_t *pos, int n_tokens, float *logits_out,
                                const bool *want_logits);
/* The same with hidden rows too (seq-batch.h seq_batch_out, embeddings); out not NULL. */
hearth_status engine_eval_multi_out(struct engine *e, const int32_t *tokens, const int32_t *seq,
                                    const int32_t *pos, int n_tokens,
                                    const struct seq_batch_out *out);
uint32_t engine_seq_n_past(const struct engine *e, int seq); /* 0 for seq out of range */
void engine_seq_clear(struct engine *e, int seq);            /* no-op out of range */
/*
 * Whether sequence seq can go on from position pos after a rewind (pos <= its
 * positions): false when its sliding-window layers keep only a ring that the
 * rewind has outrun (docs/kv-cache.md); the caller then starts over from 0.
 * Never false for pos <= its positions under engine_params.swa_full.
 */
bool engine_seq_can_resume(const struct engine *e, int seq, uint32_t pos);
/*
 * What the engine allocated on its device d in [0, engine_n_devices): *name
 * ("cpu", "vulkan0"; valid until engine_destroy), *bytes (the scheduler's
 * allocation there, weights mapped from the file not counted; on the CPU path
 * device 0 holds the KV caches only) and *kv_bytes (its KV caches). False
 * for d out of range.
 */
int engine_n_devices(const struct engine *e);
bool engine_device_memory(const struct engine *e, int d, const char **name, uint64_t *bytes,
                          uint64_t *kv_bytes);

/*
 * Wall time on engine device d in [0, engine_n_devices) and in the moves
 * between devices since the last engine_time_reset (sched_device_seconds);
 * false on the CPU path (one device, nothing to split) or d out of range.
 */
bool engine_device_seconds(const struct engine *e, int d, double *seconds);
/*
 * The decode roofline of the allocated plan: one token's reads on every
 * device (weights and KV) at that device's copy bandwidth, summed
 * (plan_usage.decode_mem_s): *tps = 1 / that time. *assumed: how many of those
 * devices' bandwidths are defaults, not measured (`hearth devices
 * --measure`). False on the CPU path (the caller's own copy bandwidth is
 * the roofline there).
 */
bool engine_roofline(const struct engine *e, double *tps, int *assumed);
double engine_transfer_seconds(const struct engine *e);
void engine_time_reset(struct engine *e);

uint32_t engine_n_ctx(const struct engine *e);
uint32_t engine_n_embd(const struct engine *e); /* floats per hidden row */
/* Positions currently in the cache. */
uint32_t engine_n_past(const struct engine *e);
/* Threads of the CPU part. */
int engine_n_threads(const struct engine *e);
/* Tokens per prefill batch the engine runs (its n_batch, or the default it chose). */
int engine_n_batch(const struct engine *e);
/* True when the scheduler runs the model (some block on a GPU or named device). */
bool engine_uses_devices(const struct engine *e);
/* Layers whose attention or FFN runs on a GPU (0 on the CPU path). */
int engine_n_gpu_layers(const struct engine *e);
/*
 * The placement in one line, no newline, valid until engine_destroy:
 * "plan: layers 0-29 attention+ffn on vulkan0, output on vulkan0; 98 MiB on
 * vulkan0, 12 MiB host (planner)": the bytes are what was allocated (= the
 * plan's), and how it was chosen (-ngl, planner, "replanned: ..." after an
 * allocation failure).
 */
const char *engine_describe(const struct engine *e);

/*
 * Internal, exposed for tests (engine.c): plans model m on opened devices
 * (devices[0] the host CPU; plan device i describes devices[i]), derives the
 * block placement and builds the scheduler. When a device runs out of memory
 * while loading, replans with its budget set to what it really had (its free
 * memory then plus what it had allocated; only what it had allocated when
 * that sum exceeds the plan's figure, as the driver's free figure was then
 * wrong) and retries, up to 8 times; `how` says so ("replanned: vulkan0 had
 * 812 MiB, not 1024 MiB"). cpu_ok: when the plan puts nothing on a GPU,
 * return HEARTH_OK with *sched NULL instead of building. On success *plan
 * (caller frees) is the plan the scheduler was built from, *pl its placement.
 */
struct engine_load {
    const struct model *m;
    int n_dev;
    struct hearth_device *const *devices; /* [n_dev], borrowed */
    struct plan_devices devs;             /* [n_dev] descriptions */
    struct plan_opts opts;                /* n_ctx, n_batch, kv types, n_gpu_layers */
    bool map_host_weights;                /* sched_params.map_host_weights */
    bool cpu_ok;
};
hearth_status engine__load_planned(const struct engine_load *in, struct sched **sched,
                                   struct placement **pl, struct plan *plan, char *how,
                                   size_t how_size);

#endif
