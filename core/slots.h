/*
 * slots: the engine side of the HTTP server, continuous batching over a
 * multi-sequence forward pass.
 *
 * n_slots sequences share one model (one engine of n_seq = n_slots, one KV
 * cache per slot). The engine (engine.h) is the CPU forward pass
 * (forward_create_multi) when no GPU takes part, else the scheduler with the
 * planner's placement, every slot's KV cache counted in the plan
 * (n_parallel = n_slots) and held on the device of its layer's attention.
 * One engine thread owns the forward pass and runs a step
 * loop: admit queued requests into free slots, then build ONE batch holding
 * the next token of every decoding slot plus a bounded chunk of prompt tokens
 * of the slots still in prefill, evaluate it with engine_eval_multi (each
 * weight read once per step, whatever the number of sequences), and sample
 * per slot. New requests join between steps; a finished slot is free for the
 * next step. Greedy replies are identical alone and batched, because the
 * forward pass gives each row the same bits whatever else is in the batch.
 *
 * Prefix reuse: each slot mirrors the token ids its cache holds. A request is
 * placed in the free slot sharing the longest prefix with its prompt and only
 * the rest is evaluated (at least one token, to have logits).
 *
 * Requests are made on the caller's thread (slots_req_create: validation,
 * sampler, decoder and stop matcher are built there, so errors reach the
 * caller synchronously), queued with a bound (slots_submit: a full queue is
 * refused, not blocked), and read back by waiting for text
 * (slots_req_take). A request is reference counted between the caller and
 * the engine; slots_req_release by the caller cancels a generation still
 * running (a client that went away) and the engine frees the slot at its next
 * step.
 *
 * Alternatives rejected: one forward context per slot (weights read once per
 * sequence per step: decode is bandwidth-bound, so S slots would cost S
 * times); running generation on the HTTP threads (they would contend for one
 * thread pool and one model with no batching at all).
 */
#ifndef HEARTH_SLOTS_H
#define HEARTH_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "embed.h"
#include "generate.h"
#include "json-schema.h"
#include "hearth.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

struct slots_params {
    int n_slots;       /* parallel sequences, >= 1 */
    int max_queue;     /* waiting requests beyond the busy slots; more are refused */
    uint32_t n_ctx;    /* positions per slot */
    int n_threads;     /* CPU threads (<= 0: physical cores) */
    int prefill_chunk; /* prompt tokens per step over all slots (<= 0: 64) */
    int n_batch;       /* the engine's batch, which sizes its scratch (engine_params;
                          <= 0: its default) */
    int kv_type_k;     /* enum kvq_type (kv-quant.h) of every slot's cached keys; 0: f16 */
    int kv_type_v;     /* ... and values */
    /*
     * Devices, as engine_params: n_devices names (borrowed; "cpu", "vulkan0"),
     * ngl (>= 0, ENGINE_NGL_AUTO, ENGINE_NGL_UNSET), vram_budget (0: none).
     * A zeroed struct (no names, ngl 0) is the CPU forward pass.
     */
    const char *const *devices;
    int n_devices;
    int ngl;
    uint64_t vram_budget;
    int kv_window;  /* exact f16 window of a compressed cache (engine_params) */
    bool swa_full;  /* sliding-window layers keep every row: prefix reuse after any rewind */
    bool no_stream; /* never stream host weights to a GPU for prefill */
};

#define SLOTS_MAX_DEVICES 8

/* What one device holds for the slots (from the real allocation). */
struct slots_mem {
    char device[32]; /* "cpu", "vulkan0" */
    uint64_t bytes;  /* allocated there (weights read from the mapping not counted) */
    uint64_t kv;     /* of which the slots' KV caches */
};

struct slots;
struct slots_req;

/* What a request asks for; everything is copied by slots_req_create. */
struct slots_req_params {
    const int32_t *prompt; /* [n_prompt] token ids */
    size_t n_prompt;
    struct sampler_params sp;
    int32_t n_predict;       /* >= 1 */
    const char *const *stop; /* [n_stop] user stop strings */
    size_t n_stop;
    bool chat; /* also stop at the chat family's end-of-turn */
    const int32_t *bias_ids; /* [n_bias] logit_bias (sampler_set_bias); may be NULL */
    const float *bias;
    size_t n_bias;
    bool logprobs;    /* record each generated token's log-probability (slots_req_take) */
    int top_logprobs; /* with logprobs: also the most likely tokens, 0..SLOTS_MAX_TOP */
    /*
     * The prompt is part of the answer: n_predict may be 0 (the request ends
     * after the prompt), and with logprobs every prompt token's is recorded
     * too, given the tokens before it (slots_req_prompt_logprobs); such a
     * prompt is then evaluated whole (no prefix reuse).
     */
    bool echo;
    /*
     * Not EMBD_POOL_NONE: an embedding request (embed.h). The prompt is evaluated
     * whole (no prefix reuse) and nothing is generated (n_predict 0, no
     * logprobs): the final norm's output rows (the LM head's input) are
     * pooled into one n_embd vector (slots_req_embedding).
     */
    enum embd_pool pool;
    /*
     * The reply must be one JSON object (response_format json_object): a
     * sampled token that would break it is replaced by the most likely one
     * (after the sampling chain) that keeps it valid, and once the object
     * closes only the end of generation may come (core/json-guard.h).
     */
    bool json_object;
    /*
     * Not NULL: the reply must be one JSON value valid against this compiled
     * schema (response_format json_schema; copied), the same way.
     */
    const struct js_schema *schema;
};

/*
 * One generated token's log-probability, from the model's logits before any
 * sampling step (no bias, penalty or temperature): ln softmax(logits)[id].
 * offset: where the token's text starts in the generated text (bytes); a
 * token whose bytes complete a character begun by an earlier one starts
 * where that character does. top: the top_logprobs most likely ids, most
 * likely first (ties: the lower id first). A prompt's first token has no
 * logprob (NAN) and no top.
 */
#define SLOTS_MAX_TOP 20
struct slots_logprob {
    int32_t id;
    float logprob;
    size_t offset;
    int n_top;
    int32_t top_id[SLOTS_MAX_TOP];
    float top_logprob[SLOTS_MAX_TOP];
};

enum slots_admit { SLOTS_QUEUED, SLOTS_FULL, SLOTS_CLOSED };

/* A request's state as seen by its reader. */
struct slots_result {
    bool done;
    enum gen_stop stop;   /* when done */
    hearth_status status; /* HEARTH_OK, or why the engine failed it */
    size_t n_prompt;      /* prompt tokens */
    size_t n_prompt_eval; /* of those evaluated (the rest came from the slot's cache) */
    size_t n_gen;         /* generated tokens */
    int slot;             /* the slot serving it, -1 while queued */
};

struct slots_stats {
    int n_slots, n_active, n_queued, max_queue;
    int prefill_chunk, n_batch; /* as used (slots_params' after defaults, engine_n_batch) */
    uint64_t n_requests;  /* admitted into the queue */
    uint64_t n_rejected;  /* refused: queue full or closed */
    uint64_t n_cancelled; /* ended by slots_req_release before the end */
    uint64_t n_completed;
    uint64_t n_prompt_tokens; /* evaluated prompt tokens */
    uint64_t n_reused_tokens; /* prompt tokens served from a slot's cache */
    uint64_t n_gen_tokens;    /* generated tokens */
    uint64_t n_embeddings;    /* embedding requests completed */
    uint64_t n_steps;         /* batched forward passes */
    double busy_s;            /* seconds spent in steps */
    double gen_tps;           /* generated tokens / s over the last ~10 s of steps */
    size_t kv_bytes;          /* KV caches at full context, all slots */
    int kv_type_k, kv_type_v; /* enum kvq_type of the caches */
    size_t weight_bytes;      /* mapped model file */
    int n_mem;                /* devices in mem */
    struct slots_mem mem[SLOTS_MAX_DEVICES];
};

/*
 * Creates the slots and starts the engine thread. m, t and chat are borrowed.
 * INVALID_ARG for a KV type outside enum kvq_type; the forward context's
 * errors (UNSUPPORTED for a type the head size cannot use, NO_MEMORY).
 */
hearth_status slots_create(const struct model *m, const struct tokenizer *t,
                           const struct gen_chat *chat, const struct slots_params *p,
                           struct slots **out);
/* Stops the engine (cancelling what still runs) and frees everything. */
void slots_destroy(struct slots *s);
uint32_t slots_n_ctx(const struct slots *s);
/* The engine's placement line (engine_describe), valid until slots_destroy. */
const char *slots_describe(const struct slots *s);

/*
 * Builds a request: validates the sampling fields (sampler_params_validate),
 * the prompt (non-empty, ids in range, shorter than the slot context) and
 * n_predict (1..n_ctx; 0 with echo), and sets up sampler, decoder and stop
 * matcher.
 * HEARTH_ERR_INVALID_ARG with a message naming the field, HEARTH_ERR_NO_MEMORY.
 */
hearth_status slots_req_create(struct slots *s, const struct slots_req_params *p,
                               struct slots_req **out);
/*
 * Queues r (the engine takes its own reference). SLOTS_FULL when max_queue
 * requests are already waiting, SLOTS_CLOSED after slots_close: r is then
 * not queued and stays the caller's to release.
 */
enum slots_admit slots_submit(struct slots *s, struct slots_req *r);
/*
 * Waits up to timeout_ms for text not yet taken or the end. Returns the new
 * text (malloc'd, NUL-terminated, whole UTF-8 characters; NULL when there is
 * none or on out-of-memory) with *len, and fills *res.
 *
 * lp (may be NULL): for a request made with logprobs, the records of the
 * tokens whose text begins in the text handed out so far, not yet taken
 * (malloc'd into *lp, count *n_lp; at the end, every remaining record). A
 * token cut off by a stop string (its text starts at or after the cut) has
 * no record; the end-of-generation token has none either.
 */
char *slots_req_take(struct slots_req *r, int timeout_ms, size_t *len, struct slots_result *res,
                     struct slots_logprob **lp, size_t *n_lp);
/*
 * For a request made with echo: waits up to timeout_ms for the prompt to be
 * evaluated, then returns true once with a record for each prompt token
 * (malloc'd into *lp, n_prompt of them; offsets 0). False while waiting, when
 * already taken or out of memory, or when the request ended first (*res says
 * why: cancelled or failed).
 */
bool slots_req_prompt_logprobs(struct slots_req *r, int timeout_ms, struct slots_logprob **lp,
                               size_t *n_lp, struct slots_result *res);
/*
 * For an embedding request that ended without error: copies its pooled
 * vector (slots_n_embd floats, not normalized) to out and returns true.
 * False while it runs, or when it was cancelled or failed.
 */
bool slots_req_embedding(struct slots_req *r, float *out);
int slots_n_embd(const struct slots *s);
int32_t slots_n_vocab(const struct slots *s); /* token ids a prompt may hold: [0, n_vocab) */
/* The caller is done with r: a generation still running is cancelled. */
void slots_req_release(struct slots_req *r);

/* Refuses new requests from now on. */
void slots_close(struct slots *s);
/*
 * Waits up to timeout_ms for the queue and the slots to empty; then cancels
 * whatever still runs. Returns true if everything finished on its own.
 */
bool slots_drain(struct slots *s, int timeout_ms);
void slots_get_stats(struct slots *s, struct slots_stats *out);

#endif
