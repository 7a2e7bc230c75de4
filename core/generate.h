/*
 * generate: the generation loop shared by `hearth run`, `hearth chat`, the
 * public API and the HTTP server.
 *
 * A gen_session ties a loaded model, its tokenizer and one engine (engine.h: one
 * sequence, one KV cache) to a sampler and remembers which tokens the cache
 * holds. gen_run evaluates a prompt and then samples token by token:
 *
 *   prompt ids --(common prefix with the cache is kept)--> prefill the suffix in
 *   chunks --> loop { sample; EOG? stop; stream text; stop string? stop;
 *                     callback cancels? stop; n_predict / context full? stop;
 *                     evaluate the token }
 *
 * KV reuse: the session mirrors the cache contents as token ids. A new prompt
 * that starts with tokens already in the cache (the previous chat turns) only
 * evaluates the rest; engine_eval's pos0 rewinds past any divergent tail. At
 * least one prompt token is always evaluated so that there are logits to
 * sample from. Because the CPU forward pass gives the same bits whatever the
 * batch split, a reused prefix changes nothing in the output (tested).
 *
 * Text: tokens are decoded by a streaming decoder (never half a UTF-8
 * character) and passed through a stop-string matcher (core/chat.h) that holds
 * back any tail that could still grow into a stop string; when one completes,
 * the text before it is emitted and the stop string is not. End-of-generation
 * tokens (tok_is_eog, plus any extra ids the caller names, e.g. a chat
 * family's end-of-turn) stop without being emitted or evaluated.
 *
 * Alternatives rejected: letting the callback see raw pieces and do stop
 * strings itself (every front end would re-implement the hold-back); evaluating
 * the final sampled token before returning (costs a forward pass that the next
 * turn's prefix reuse would do anyway, and is wasted when nothing follows).
 */
#ifndef HEARTH_GENERATE_H
#define HEARTH_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat.h"
#include "engine.h"
#include "hearth.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

/* Prompt tokens handed to one engine_eval call; the abort hook runs between chunks. */
#define GEN_PREFILL_CHUNK 256

/*
 * Called once per generated token (EOG tokens excluded) with the text that
 * became safe to show (len may be 0: held back as a possible stop-string
 * start or an incomplete character; text is not NUL-terminated and is valid
 * only during the call), and once more at the end with token -1 for any text
 * released by the final flush (only when len > 0). Return false to stop at
 * once: nothing more is evaluated, emitted or called.
 */
typedef bool (*gen_token_fn)(void *user, const char *text, size_t len, int32_t token);
/* Polled between prefill chunks and before each decode step; true aborts. */
typedef bool (*gen_abort_fn)(void *user);

enum gen_stop {
    GEN_STOP_NONE = 0,  /* not run yet */
    GEN_STOP_EOG,       /* an end-of-generation token was sampled */
    GEN_STOP_STRING,    /* a stop string completed */
    GEN_STOP_LIMIT,     /* n_predict tokens generated */
    GEN_STOP_CTX_FULL,  /* the cache is full */
    GEN_STOP_CANCELLED  /* the token callback returned false or the abort hook fired */
};

/*
 * A model's chat family and how its turns end: the end-of-turn markers that
 * are single tokens become stop ids (they are control tokens, which the
 * decoder does not render as text), the others stay text stop strings.
 */
#define GEN_CHAT_MAX_STOPS 8
struct gen_chat {
    enum chat_format fmt;
    enum chat_source source;
    int32_t stop_ids[GEN_CHAT_MAX_STOPS];
    size_t n_stop_ids;
    const char *stop_strs[GEN_CHAT_MAX_STOPS]; /* static strings from chat_stop_strings */
    size_t n_stop_strs;
};

struct gen_params {
    int32_t n_predict;        /* tokens to generate at most; -1: until EOG / context full */
    const char *const *stop;  /* [n_stop] user stop strings (empty ones ignored) */
    size_t n_stop;
    const int32_t *stop_ids;  /* [n_stop_ids] extra end tokens besides tok_is_eog */
    size_t n_stop_ids;
    const struct gen_chat *chat; /* may be NULL: its end-of-turn ids and strings also stop */
    gen_token_fn on_token;    /* may be NULL */
    gen_abort_fn should_abort;/* may be NULL */
    void *user;               /* passed to both callbacks */
};

struct gen_stats {
    size_t n_prompt;       /* prompt tokens */
    size_t n_prompt_eval;  /* of those, evaluated now (the rest came from the cache) */
    double prompt_ms;      /* prefill wall time */
    size_t n_gen;          /* tokens generated (streamed), EOG not counted */
    double gen_ms;         /* wall time from the end of prefill to the stop */
    enum gen_stop stop;
};

struct gen_session;

/* Fills p: n_predict 128, no stop strings, no callbacks. */
void gen_params_default(struct gen_params *p);

/*
 * A session over m, t and fc (all borrowed: they must outlive the session, and
 * the engine fc must not be used by anyone else meanwhile). sp is validated and copied.
 * Errors: HEARTH_ERR_INVALID_ARG (bad sampler params, tokenizer and model
 * vocabularies that disagree), HEARTH_ERR_NO_MEMORY. *out is NULL on failure.
 */
hearth_status gen_session_create(const struct model *m, const struct tokenizer *t,
                                 struct engine *fc, const struct sampler_params *sp,
                                 struct gen_session **out);
void gen_session_free(struct gen_session *s);
/*
 * Sets the sampler's logit bias (sampler_set_bias: ids[i] += bias[i], -100
 * or less bans), kept across gen_session_set_sampler; n 0 clears it. Errors
 * as sampler_set_bias.
 */
hearth_status gen_session_set_bias(struct gen_session *s, const int32_t *ids, const float *bias,
                                   int n);
/* Replaces the sampler (a new random stream, the same logit bias); the cached tokens are kept. */
hearth_status gen_session_set_sampler(struct gen_session *s, const struct sampler_params *sp);
/* Forgets the cached tokens: the next run evaluates its whole prompt. */
void gen_session_reset(struct gen_session *s);

/*
 * Evaluates prompt[0..n_prompt) (reusing the cached common prefix) and
 * generates per p (NULL: defaults). stats may be NULL. A cancelled run is not
 * an error (stats->stop says so). Errors: HEARTH_ERR_INVALID_ARG (empty
 * prompt, a prompt that does not fit the context, an id out of range),
 * HEARTH_ERR_NO_MEMORY, and what engine_eval or the sampler report. After an
 * error the cache mirror is cleared, so the next run starts from scratch.
 */
hearth_status gen_run(struct gen_session *s, const int32_t *prompt, size_t n_prompt,
                      const struct gen_params *p, struct gen_stats *stats);
/*
 * Tokenizes text[0..len) (BOS/EOS per the tokenizer's add_bos/add_eos; control
 * tokens written in the text are parsed when parse_special) and runs gen_run.
 */
hearth_status gen_run_text(struct gen_session *s, const char *text, size_t len,
                           bool parse_special, const struct gen_params *p,
                           struct gen_stats *stats);

/*
 * Detects m's chat family from tokenizer.chat_template / general.architecture
 * (fmt_override >= 0 forces a family) and resolves its stops against t.
 */
void gen_chat_init(const struct model *m, const struct tokenizer *t, int fmt_override,
                   struct gen_chat *out);
/*
 * Renders msgs[0..n) in c's format (with the assistant-turn opening when
 * add_generation_prompt) and tokenizes the text with BOS per the tokenizer and
 * control tokens parsed. *ids is malloc'd, the caller's to free.
 */
hearth_status gen_chat_tokenize(const struct gen_chat *c, const struct tokenizer *t,
                                const struct chat_msg *msgs, size_t n,
                                bool add_generation_prompt, int32_t **ids, size_t *n_ids);
/* Tokenizes a raw prompt: BOS per the tokenizer, never EOS. *ids is malloc'd. */
hearth_status gen_tokenize_prompt(const struct tokenizer *t, const char *text, size_t len,
                                  bool parse_special, int32_t **ids, size_t *n_ids);

/* Tokens whose K/V the cache holds (the reusable prefix for the next run). */
size_t gen_session_n_cached(const struct gen_session *s);
const int32_t *gen_session_cached(const struct gen_session *s);
/* Every token ever passed to engine_eval by this session (for reuse tests). */
uint64_t gen_session_n_evaluated(const struct gen_session *s);
uint32_t gen_session_n_ctx(const struct gen_session *s);
/* The sampler's seed (the clock-derived one when none was set). */
uint64_t gen_session_seed(const struct gen_session *s);
const struct tokenizer *gen_session_tokenizer(const struct gen_session *s);

/* Milliseconds on a monotonic clock (shared with the front ends' timing). */
double gen_now_ms(void);

#endif
