/*
 * sampler: turns the logits of the last position into the next token id.
 *
 * The chain, always in this order:
 *   0. logit bias  the caller's per-token additions (sampler_set_bias; OpenAI's
 *                  logit_bias), a ban at SAMPLER_BIAS_BAN or below;
 *   1. penalties   repetition (llama.cpp), then presence and frequency (OpenAI),
 *                  over the last repeat_last_n accepted tokens;
 *   2. temp == 0   greedy: argmax, ties to the lowest id; steps 3-7 are skipped;
 *   3. top-k       keep the k highest logits (0 = off);
 *   4. top-p       keep the smallest highest-probability prefix whose mass >= top_p;
 *   5. min-p       keep tokens with p >= min_p * p_max;
 *   6. temperature divide the surviving logits by temp;
 *   7. draw        one token from the softmax of the survivors.
 * This is llama.cpp's default order. Temperature comes last so that which tokens
 * may be drawn is decided on the model's own (temperature 1) distribution and
 * temperature only reshapes the odds among them: a high temperature cannot bring
 * back the long tail that top-p / min-p cut (the reason min-p exists). Penalties
 * come first because they change which tokens are good candidates at all.
 * top-p and min-p probabilities are those of the candidates left by the steps
 * before (top-p renormalises over the top-k survivors; min-p is a ratio to the
 * best logit, so normalisation does not matter).
 *
 * Cost: O(n_vocab) per token plus O(k log k) for the kept candidates. top-k uses
 * selection (a one-pass heap for small k, quickselect otherwise), never a full
 * sort; top-p without top-k drops tokens that provably cannot be in the nucleus,
 * then sorts only a growing head until it holds top_p of the mass; min-p alone
 * is a filter. Measured at n_vocab 262144 (one core, this repo's dev machine):
 * default chain 0.14 ms/token, greedy 0.17 ms, top-p 0.95 alone on a flat
 * synthetic distribution ~17 ms (N(0, 3^2) logits: a nucleus of ~22k tokens).
 * No allocation after sampler_create (but sampler_set_bias's copy). Ties are
 * broken by id everywhere (a total order), so results do not depend on the
 * selection path.
 * Determinism: the PRNG (core/rng.c) is bit-exact everywhere and the sampler
 * is single-threaded, so the same seed, logits and history give the same token
 * on any thread count; across platforms only libm's exp() could differ in the
 * last ulp. Non-finite logits: NaN is treated as -inf (never drawn), +inf as
 * FLT_MAX; if no finite logit is left the call fails.
 */
#ifndef HEARTH_SAMPLER_H
#define HEARTH_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "hearth.h"

/* Largest accepted repeat_last_n (the window is one int32 per entry). */
#define SAMPLER_MAX_LAST_N (1 << 20)

struct sampler_params {
    float temp;              /* >= 0; 0 = greedy. default 0.8 */
    int32_t top_k;           /* >= 0; 0 = off. default 40 */
    float top_p;             /* (0, 1]; 1 = off. default 0.95 */
    float min_p;             /* [0, 1]; 0 = off. default 0.05 */
    float repeat_penalty;    /* > 0; 1 = off. default 1.0 */
    int32_t repeat_last_n;   /* [0, SAMPLER_MAX_LAST_N]; window of all penalties; 0 = off.
                                default 64. (llama.cpp's -1 "whole context" is for the
                                caller to translate into the context size.) */
    float presence_penalty;  /* finite; 0 = off. default 0 */
    float frequency_penalty; /* finite; 0 = off. default 0 */
    uint64_t seed;           /* used when seed_set */
    bool seed_set;           /* false: a seed is taken from the clock (see sampler_seed) */
};

struct sampler;

/* Fills p with the defaults listed above. */
void sampler_params_default(struct sampler_params *p);
/* Checks every field; HEARTH_ERR_INVALID_ARG naming the field and its range if not. */
hearth_status sampler_params_validate(const struct sampler_params *p);
/*
 * A sampler for a vocabulary of n_vocab (>= 1) logits. Preallocates every working
 * buffer (about 20 bytes per vocabulary entry). Errors: HEARTH_ERR_INVALID_ARG for
 * bad params or n_vocab, HEARTH_ERR_NO_MEMORY. *out is NULL on failure.
 */
hearth_status sampler_create(const struct sampler_params *p, int32_t n_vocab,
                             struct sampler **out);
void sampler_free(struct sampler *s);
/*
 * Appends a token (prompt or generated) to the penalty history; only the last
 * repeat_last_n are kept. HEARTH_ERR_INVALID_ARG if token is outside [0, n_vocab)
 * (the history is then unchanged).
 */
hearth_status sampler_accept(struct sampler *s, int32_t token);
/* Clears the history and restarts the random stream from the same seed. */
void sampler_reset(struct sampler *s);
/*
 * Runs the chain on logits[n_vocab] (not modified) and writes the chosen id.
 * Does not accept the token: call sampler_accept with it. Fails with
 * HEARTH_ERR_INVALID_ARG if no logit is finite (NaN, -inf everywhere).
 */
hearth_status sampler_sample(struct sampler *s, const float *logits, int32_t *token);
/*
 * Applies step 1 of the chain in place to logits[n_vocab], with the current
 * history: for each distinct token t in the window, occurring c times,
 *   l = l > 0 ? l / repeat_penalty : l * repeat_penalty;
 *   l -= c * frequency_penalty + (c > 0 ? presence_penalty : 0).
 * Exposed for tests and for callers that want the adjusted logits.
 */
void sampler_apply_penalties(struct sampler *s, float *logits);
/*
 * OpenAI's logit_bias, step 0 of the chain: logits[ids[i]] += bias[i] for
 * each i < n (a repeated id adds up), where a bias of SAMPLER_BIAS_BAN or less
 * bans the token instead (-inf: never drawn, greedy included; OpenAI's -100
 * "should result in a ban"). n 0 clears it. Copies the arrays (the one
 * allocation after sampler_create); persists across sampler_reset.
 * INVALID_ARG naming "logit_bias" for an id outside [0, n_vocab) or a bias
 * that is not finite (then nothing changes); NO_MEMORY.
 */
#define SAMPLER_BIAS_BAN (-100.0f)
hearth_status sampler_set_bias(struct sampler *s, const int32_t *ids, const float *bias, int n);
/* dst gets src's logit bias (same vocabulary size, else INVALID_ARG); NO_MEMORY. */
hearth_status sampler_copy_bias(struct sampler *dst, const struct sampler *src);
/* The seed in use (the clock-derived one when none was set), for printing. */
uint64_t sampler_seed(const struct sampler *s);
int32_t sampler_n_vocab(const struct sampler *s);

#endif
