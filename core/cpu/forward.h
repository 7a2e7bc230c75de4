/*
 * cpu/forward: the reference CPU forward pass (llama, qwen2, qwen3, gemma3).
 *
 * A forward_ctx belongs to one model and one sequence: it owns the KV cache
 * (f16, or the compressed type of kv-quant.h that kv_type_k / kv_type_v
 * name, attention then running on cpu/attn-kvq.h's batched kernel), the thread pool and every scratch buffer, all allocated at creation
 * (nothing is allocated per token). forward_eval runs tokens at consecutive
 * positions, appending their K/V to the cache; prompts are processed in
 * batches of up to n_batch tokens, so each weight tile is read from memory
 * once per batch rather than once per token. Results are independent of the
 * batch split and the thread count (see cpu/ops.h).
 */
#ifndef HEARTH_CPU_FORWARD_H
#define HEARTH_CPU_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu/dot.h"
#include "hearth.h"
#include "model.h"
#include "seq-batch.h"

struct kv_cache;

struct forward_params {
    uint32_t n_ctx;   /* positions the cache holds; 0: the model's training context */
    int n_threads;    /* <= 0: physical cores */
    int n_batch;      /* tokens per prefill batch; <= 0: 64 */
    int isa;          /* an enum cpu_isa, or -1: cpu_isa_best() */
    int kv_type_k;    /* enum kvq_type of the cached keys (kv-quant.h); 0: f16 */
    int kv_type_v;    /* ... of the cached values */
    /*
     * Exact window W of a compressed cache (kv-cache.h): a query at position
     * t reads positions j > t - W from f16 copies (a ring of W rows per
     * layer) instead of the codes. 0: none. Ignored for an f16/f16 cache.
     */
    int kv_window;
    /*
     * Sliding-window layers keep a row for every position (plan_opts.swa_full,
     * plan_kv_layer_codes): no ring-only layers, so a rewind of any length
     * is served (forward_seq_can_resume is then true for any pos <= n_past).
     */
    bool swa_full;
};

struct forward_ctx;

/* Defaults: n_ctx 0 (training context), n_threads 0, n_batch 64, isa -1. */
struct forward_params forward_params_default(void);

/*
 * Creates a context for m (borrowed: it must outlive the context). Errors:
 * HEARTH_ERR_UNSUPPORTED when a weight type has no CPU kernel (names the
 * tensor type) or a KV type cannot hold the model's head_dim,
 * HEARTH_ERR_INVALID_ARG for a KV type id out of range, HEARTH_ERR_NO_MEMORY
 * for the cache or scratch.
 */
hearth_status forward_create(const struct model *m, const struct forward_params *p,
                             struct forward_ctx **out);
void forward_destroy(struct forward_ctx *c);

/*
 * Runs tokens[0..n_tokens) at positions pos0.. and appends their K/V. pos0
 * may be at most the number of positions already in the cache (a smaller
 * pos0 rewinds: later entries are discarded). logits_out receives n_vocab
 * floats per token when all_logits ([n_tokens][n_vocab]), else those of the
 * last token only ([n_vocab]); NULL computes no logits. Errors
 * (HEARTH_ERR_INVALID_ARG, nothing changed): n_tokens < 1, pos0 out of range,
 * pos0 + n_tokens > n_ctx, a token id outside [0, n_vocab).
 */
hearth_status forward_eval(struct forward_ctx *c, const int32_t *tokens, int n_tokens, int pos0,
                           float *logits_out, bool all_logits);

/* ---- several sequences (continuous batching) ----------------------------
 * A multi-sequence context holds n_seq independent KV caches of n_ctx
 * positions each, sharing the weights, the thread pool and the scratch. One
 * forward_eval_multi call runs tokens of any sequences together: every matmul
 * reads each weight once for the whole batch, attention of each token runs
 * over its own sequence's cache. A token's logits are bit-identical whichever
 * other tokens share the batch. The single-sequence API above works on
 * sequence 0. */

/* At most this many sequences per context. */
#define FORWARD_MAX_SEQ 256

/* As forward_create with n_seq caches (1: the same as forward_create). */
hearth_status forward_create_multi(const struct model *m, const struct forward_params *p,
                                   int n_seq, struct forward_ctx **out);
/*
 * Runs tokens[0..n_tokens): token t belongs to sequence seq[t] at position
 * pos[t] and appends its K/V there. The first token of a sequence in the call
 * may be at most that sequence's past length (smaller rewinds it); its later
 * tokens in the call must follow at consecutive positions. logits_out (may be
 * NULL) receives one [n_vocab] row per token with want_logits[t] (want_logits
 * NULL: none), in token order. Errors (HEARTH_ERR_INVALID_ARG, nothing
 * changed): n_tokens < 1, a sequence, token id or position out of range.
 */
hearth_status forward_eval_multi(struct forward_ctx *c, const int32_t *tokens, const int32_t *seq,
                                 const int32_t *pos, int n_tokens, float *logits_out,
                                 const bool *want_logits);
/* The same with hidden rows too (seq-batch.h seq_batch_out); out not NULL. */
hearth_status forward_eval_multi_out(struct forward_ctx *c, const int32_t *tokens,
                                     const int32_t *seq, const int32_t *pos, int n_tokens,
                                     const struct seq_batch_out *out);
int forward_n_seq(const struct forward_ctx *c);
/* Positions held by sequence seq (0 for a seq out of range). */
uint32_t forward_seq_n_past(const struct forward_ctx *c, int seq);
/* Empties sequence seq's cache (no-op out of range). */
void forward_seq_clear(struct forward_ctx *c, int seq);
/*
 * Whether sequence seq can go on from position pos (pos <= its positions):
 * false when pos > 0 and its sliding-window layers keep only a ring
 * (kv-cache.h kv_ring_track) that a rewind to pos has outrun; the caller then
 * evaluates again from 0.
 */
bool forward_seq_can_resume(const struct forward_ctx *c, int seq, uint32_t pos);
/* Bytes of all the KV caches at full context (n_seq x per-sequence). */
size_t forward_kv_bytes(const struct forward_ctx *c);
/* Sequence seq's cache (NULL out of range); tests inspect and perturb its rows. */
struct kv_cache *forward_kv_cache(struct forward_ctx *c, int seq);

uint32_t forward_n_ctx(const struct forward_ctx *c);
/* Positions currently in the cache. */
uint32_t forward_n_past(const struct forward_ctx *c);
int forward_n_threads(const struct forward_ctx *c);

#endif
