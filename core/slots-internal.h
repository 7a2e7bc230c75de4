/*
 * slots-internal: the state slots.c (the engine thread, the slots' lifetime)
 * and slots-req.c (making, queueing and reading requests) share. The locking
 * rules are slots.c's opening comment.
 */
#ifndef HEARTH_SLOTS_INTERNAL_H
#define HEARTH_SLOTS_INTERNAL_H

#include <pthread.h>

#include "chat.h"
#include "engine.h"
#include "json-guard.h"
#include "slots.h"

struct slots_req {
    /* set at creation, then owned by the engine */
    int32_t *prompt;
    size_t n_prompt;
    int32_t n_predict;
    struct sampler *smp;
    struct tok_decoder *dec;
    struct chat_stop_matcher sm;
    struct slots *owner;
    bool logprobs;
    bool echo; /* echo with logprobs: the prompt's tokens are scored (plp) */
    int n_top;
    size_t dec_bytes;          /* decoder output so far: the next token's text offset */
    struct slots_logprob *plp; /* [n_prompt] with echo: written before plp_ready */
    enum embd_pool pool;
    double *emb; /* [n_embd] with pool: the sum of the pooled rows, then the result */
    bool json;   /* json_object or a schema: jg holds the reply so far */
    struct js_schema schema; /* the request's copy (jg points to it); zeroed: none */
    struct jg_state jg;
    /* guarded by owner->mu */
    pthread_cond_t cv;
    char *text;             /* generated text, whole characters */
    size_t len, cap, taken; /* taken: bytes handed to the reader */
    struct slots_logprob *lp; /* [n_lp] records of generated tokens (logprobs) */
    size_t n_lp, cap_lp, lp_taken;
    bool plp_ready, plp_taken;
    int refs;
    bool cancelled;
    struct slots_result res;
};

struct slot {
    struct slots_req *req; /* NULL: free */
    int32_t *cache;        /* [n_ctx] ids in the cache, position order */
    size_t n_cache;
    size_t n_fed;       /* prompt tokens evaluated (or reused) so far */
    int32_t next;       /* sampled token to evaluate next step (decoding) */
    uint64_t last_used; /* admission counter: ties go to the least recently used slot */
    bool decoding;
};

struct slots {
    const struct model *m;
    const struct tokenizer *tok;
    const struct gen_chat *chat;
    struct engine *eng;
    struct slots_params p;
    int32_t n_vocab;
    struct slot *slot; /* [n_slots] */
    char *piece;       /* decoder output buffer */
    size_t piece_cap;
    /* step batch: [n_slots + prefill_chunk] */
    int32_t *b_tok, *b_seq, *b_pos;
    bool *b_want;
    int *b_owner;       /* slot of each logits row */
    bool *b_hid;        /* hidden row wanted (embedding requests) */
    int *b_hid_owner;   /* slot of each hidden row */
    float *hidden;      /* [n_slots + prefill_chunk][n_embd] */
    float *masked;      /* [n_vocab] a logits row with the tokens JSON refuses at -inf */
    int32_t *json_ids;  /* [n_vocab] the tokens JSON allows next (jg_candidates) */
    struct jg_index jgx; /* the vocabulary by first byte, for JSON sweeps */
    int32_t *b_idx;     /* prompt position of each row scored for echo; -1: a row to sample */
    float *logits;      /* [logits_rows][n_vocab] */
    size_t logits_rows; /* n_slots, grown to the step's capacity by an echo request */

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* signalled on submit, cancel and stop */
    pthread_cond_t idle_cv;   /* signalled when a request ends */
    struct slots_req **queue; /* ring of max_queue */
    int q_head, q_len;
    int n_active;
    uint64_t n_admitted;
    bool closed, stopping;
    struct slots_stats st;
    double tps_t0;   /* start of the current tokens/s window */
    uint64_t tps_n0; /* n_gen_tokens at tps_t0 */
    double tps_prev;
};

/* Drops a reference (with s->mu held); the last frees the request. */
void slots__req_unref(struct slots_req *r);
/* *ts = now + ms on CLOCK_REALTIME (pthread_cond_timedwait's clock). */
struct timespec;
void slots__deadline_after(struct timespec *ts, int ms);

#endif
