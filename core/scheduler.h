/*
 * scheduler (sched_ prefix): runs one model whose blocks sit on different devices.
 *
 * sched_create takes a model, a list of opened devices and a placement
 * (core/placement.h: per block, an index into that list) and builds, per
 * device, what its blocks need: the weights (uploaded from the file mapping
 * through pinned staging, or read in place from the mapping on devices whose
 * memory is host RAM), the K/V caches of its attention blocks, and the
 * activation buffers of one batch. sched_eval then runs a token batch through
 * the blocks in order, each block as a short op list on its device's stream
 * (backend.h); when consecutive blocks sit on different devices the residual
 * stream x ([n_tok][n_embd] F32, a few KB per token) moves between them
 * through a host-visible staging buffer. A layer's FFN may be split (its
 * gate/up block on one device, its down block on another): that boundary
 * also moves the GLU output ([n_tok][n_ff] F32), through a staging buffer
 * sized for both on the receiving device (plan_glu_stage_bytes). Nothing
 * else crosses devices.
 *
 * With every block on the CPU backend the results are bit-identical to
 * cpu/forward.c (same kernels, same order, same batch split; tested in
 * tests/test-sched.c), so forward.c can later become a thin wrapper over this.
 *
 * Out of device memory while loading is a status, not an abort: everything
 * taken so far is freed and the message names the tensor that did not fit,
 * its size, the device and its free memory.
 *
 * The file is scheduler.h, not sched.h: core/ is on the include path and a
 * core/sched.h would shadow the system <sched.h> that <pthread.h> includes.
 */
#ifndef HEARTH_SCHEDULER_H
#define HEARTH_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "hearth.h"
#include "model.h"
#include "placement.h"
#include "seq-batch.h"

#define SCHED_MAX_DEVICES 16

/* What the device that ran out of memory while loading had given (sched_params.oom). */
struct sched_oom {
    int dev;             /* device index whose allocation failed; -1: none did */
    uint64_t allocated;  /* bytes this sched had allocated there when it failed */
    uint64_t free_bytes; /* the driver's free figure at that moment */
    uint64_t request;    /* the size that failed */
};

struct sched_params {
    uint32_t n_ctx; /* positions of the KV cache; 0: the model's training context */
    int n_batch;    /* tokens per batch; <= 0: 64 (forward.c's default, same split) */
    /*
     * Rows of the logits buffer (plan_opts.n_logits): a batch wanting more
     * logits rows computes and copies them out in rounds of this many.
     * <= 0 or above n_batch: n_batch.
     */
    int n_logits;
    int n_devices;  /* 1..SCHED_MAX_DEVICES */
    struct hearth_device *const *devices; /* [n_devices], borrowed: outlive the sched */
    const struct placement *placement;    /* copied; NULL: everything on device 0 */
    /*
     * true: devices whose memory is host RAM read weights in place from the
     * file mapping (no copy). false: every weight is allocated and uploaded
     * like on a GPU (tests exercise the upload path and OOM this way).
     */
    bool map_host_weights;
    size_t staging_bytes; /* size of each of the two upload staging halves; 0:
                             PLAN_UPLOAD_HALF (what the plan counts) */
    int kv_type_k, kv_type_v; /* enum kvq_type of the KV cache (0: f16) */
    int n_seq; /* sequences, each its own K/V of n_ctx positions (plan n_parallel); <= 0: 1 */
    /*
     * Exact recent window W (backend.h ATTENTION step 5, forward_params.kv_window):
     * per attention layer and sequence an f16 ring of min(W, n_ctx) K and V rows
     * and their tags, plan_kv_window_bytes each; 0, or an f16/f16 cache: none.
     * Every attention device must support it (backend_device_supports_kv_window).
     */
    uint32_t kv_window;
    /*
     * Sliding-window layers keep K/V rows for every position as global
     * layers do (plan_opts.swa_full): no ring-only layers, so
     * sched_seq_can_resume never refuses a rewind.
     */
    bool swa_full;
    struct sched_oom *oom; /* NULL, or filled by sched_create (dev -1 unless it ran out) */
};

struct sched;

/* n_ctx 0, n_batch 64, no devices, no placement, map_host_weights true, staging 0. */
struct sched_params sched_params_default(void);

/*
 * Builds the per-device weights, caches and activations. Errors:
 * INVALID_ARG (device count, placement indices out of range or n_layer
 * mismatch, n_ctx/n_batch out of range), UNSUPPORTED (a device lacks an op
 * or weight type it was given: names both; an attention device lacks the KV
 * types or, with kv_window, the exact window: names the device), DEVICE_OOM / NO_MEMORY (names
 * the tensor, its size, the device and its free bytes). On error nothing is
 * left allocated and *out is NULL.
 */
hearth_status sched_create(const struct model *m, const struct sched_params *p,
                           struct sched **out);
void sched_destroy(struct sched *s); /* NULL: nothing */

/*
 * Same contract as forward_eval (cpu/forward.h): tokens[0..n_tokens) at
 * positions pos0.., pos0 <= positions cached (smaller rewinds), logits_out
 * [n_tokens][n_vocab] when all_logits else [n_vocab] of the last token, NULL
 * for none. Errors: INVALID_ARG (nothing changed), or a device's status.
 */
hearth_status sched_eval(struct sched *s, const int32_t *tokens, int n_tokens, int pos0,
                         float *logits_out, bool all_logits);

/*
 * Several sequences (continuous batching), forward_eval_multi's contract
 * (cpu/forward.h): token t belongs to sequence seq[t] at position pos[t];
 * the first token of a sequence in the call may be at most its past length
 * (smaller rewinds it), its later tokens follow at consecutive positions.
 * logits_out (may be NULL) gets one [n_vocab] row per token with
 * want_logits[t] (NULL: none), in token order. Matmuls run once over each
 * batch of up to n_batch tokens; attention runs once per contiguous run of
 * rows of one sequence, over that sequence's cache. Errors (INVALID_ARG,
 * nothing changed; the message names the token index): a sequence, token id
 * or position out of range, non-consecutive positions.
 */
hearth_status sched_eval_multi(struct sched *s, const int32_t *tokens, const int32_t *seq,
                               const int32_t *pos, int n_tokens, float *logits_out,
                               const bool *want_logits);
/* The same with hidden rows too (seq-batch.h seq_batch_out); out not NULL. */
hearth_status sched_eval_multi_out(struct sched *s, const int32_t *tokens, const int32_t *seq,
                                   const int32_t *pos, int n_tokens,
                                   const struct seq_batch_out *out);
int sched_n_seq(const struct sched *s);
/* Positions held by sequence seq (0 for a seq out of range). */
/*
 * Whether sequence seq can go on from position pos (<= its positions): false
 * when pos > 0 and its sliding-window layers keep only a ring (ATTENTION step
 * 6) that a rewind to pos has outrun; evaluate again from 0 then.
 */
bool sched_seq_can_resume(const struct sched *s, int seq, uint32_t pos);
uint32_t sched_seq_n_past(const struct sched *s, int seq);
/* Empties sequence seq's cache and its exact-window tags (no-op out of range). */
void sched_seq_clear(struct sched *s, int seq);
/* Bytes of every K/V cache (key-mean aux, exact-window rings) of every sequence, all devices. */
uint64_t sched_kv_bytes(const struct sched *s);

uint32_t sched_n_ctx(const struct sched *s);
uint32_t sched_n_past(const struct sched *s); /* of sequence 0 */
/*
 * Bytes the sched allocated for device index d, through its device and host
 * buffer types: weights, caches, activations, boundary staging and the two
 * upload halves (freed once loaded, counted all the same). Every size is the
 * plan's formula (plan.h), so this equals plan_device_alloc_bytes for the
 * plan the placement came from (tests/test-plan-alloc.c).
 */
uint64_t sched_device_bytes(const struct sched *s, int d);
/*
 * Buffers holding the LM head's matrix on its device: 1, or the parts of a
 * head split by rows to fit the device's largest buffer (plan_head_split_rows).
 */
int sched_output_parts(const struct sched *s);
/*
 * Where the time went, since creation or sched_time_reset: the wall time of
 * device d's stretches of consecutive blocks, each from its first op being
 * issued to its completion (seen at the boundary synchronization that ends
 * the stretch, or the final one), and of the boundary moves between devices
 * (the host's part of a move: the copy out of the device left is in its
 * stretch, the upload to the next one in that one's, since neither is waited
 * for separately). A host clock, so a GPU's stretch includes issuing its
 * ops; the embedding device's stretch starts with the token upload. No
 * synchronization is added to measure it. Partial offload reports this as
 * its CPU/GPU split.
 */
double sched_device_seconds(const struct sched *s, int d);
double sched_transfer_seconds(const struct sched *s);
void sched_time_reset(struct sched *s);
/* Block-boundary activation moves done so far (each moves x: n_tok * n_embd floats). */
uint64_t sched_n_moves(const struct sched *s);
/*
 * Of those, the moves into a down projection whose gate/up ran on another
 * device, which carry the GLU output too (n_tok * n_ff floats more).
 */
uint64_t sched_n_glu_moves(const struct sched *s);
/*
 * Host weight bytes copied to the stream device so far (placement.block_stream):
 * per batch of at least stream_min_batch tokens, every streamed block's
 * matrices and norm gains once; decode-sized batches copy nothing.
 */
uint64_t sched_n_streamed_bytes(const struct sched *s);

/*
 * Bytes the scheduler allocates on a device regardless of how many layers it
 * holds (activations of one batch with the token ids, boundary staging;
 * logits when it runs the output head): the fixed_bytes of placement_auto_ngl.
 */
uint64_t sched_device_fixed_bytes(const struct model *m, int n_batch, bool with_output);

/*
 * -ngl for tools: fills p (n_layer entries) with layers [0, N) on device
 * index gpu_idx and the rest on cpu_idx (placement_from_ngl). ngl ==
 * PLACEMENT_NGL_AUTO picks N with placement_auto_ngl from gpu's free memory
 * now minus margin_bytes (0: 512 MiB) and this sched's fixed per-device
 * bytes for n_batch. *ngl_used (may be NULL) receives N.
 */
hearth_status sched_placement_ngl(const struct model *m, uint32_t n_ctx, int n_batch, int ngl,
                                  struct hearth_device *gpu, uint64_t margin_bytes, int gpu_idx,
                                  int cpu_idx, struct placement *p, int *ngl_used);

#endif
