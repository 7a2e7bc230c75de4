/*
 * golden.h: golden-file checks of a model's logits against the independent
 * numpy reference (tests/ref/ref_forward.py -> tests/data/fwd-*.txt), shared
 * by test-forward (cpu/forward.c) and test-sched (the scheduler with blocks on
 * GPU devices).
 *
 * A golden file holds the prompt ids, the top-5 logits and max|logit| at a few
 * prompt positions, and the greedy continuation. The checker does not know
 * which engine it checks: the caller passes an evaluation function with
 * forward_eval's contract, so every engine is held to the same yardstick and
 * the same tolerances. Tolerances are fractions of the row's max|logit|; the
 * reasoning behind each lives in tests/test-forward.c's header comment.
 */
#ifndef HEARTH_TEST_GOLDEN_H
#define HEARTH_TEST_GOLDEN_H

#include <stdbool.h>
#include <stdint.h>

#include "hearth.h"

/* Logit tolerances, as a fraction of the row's max |logit| (see test-forward.c). */
#define FWD_TOL_SMOLLM2 0.02
#define FWD_TOL_GEMMA3 0.06
#define FWD_TOL_GEMMA3_SWA4 0.12
#define FWD_TOL_Q8 0.04
#define FWD_TOL_QWEN3 0.03
#define FWD_TOL_QWEN3_Q8 0.02

enum { GOLDEN_MAX_PROMPT = 256, GOLDEN_MAX_POS = 8, GOLDEN_MAX_TOP = 8, GOLDEN_MAX_GREEDY = 64 };

struct golden {
    int n_prompt;
    int32_t prompt[GOLDEN_MAX_PROMPT];
    int n_pos;
    int pos[GOLDEN_MAX_POS];          /* prompt positions with reference logits */
    float max_abs[GOLDEN_MAX_POS];    /* max |logit| of the reference row at pos[i] */
    int n_top[GOLDEN_MAX_POS];
    int32_t top_id[GOLDEN_MAX_POS][GOLDEN_MAX_TOP];  /* reference top ids, best first */
    float top_val[GOLDEN_MAX_POS][GOLDEN_MAX_TOP];   /* their reference logits */
    int n_greedy;
    int32_t greedy[GOLDEN_MAX_GREEDY]; /* greedy continuation of the prompt */
};

/*
 * Reads tests/data/<name> into *g. On failure (missing file, no prompt or
 * positions) fails the current test case and returns false.
 */
bool golden_load(const char *name, struct golden *g);

/* Index of the largest of x[0..n) (the first one on ties). */
int golden_argmax(const float *x, int n);

/*
 * An engine under test, with forward_eval's contract: tokens[0..n_tokens) at
 * positions pos0.. on top of the cache; logits receives [n_tokens][n_vocab]
 * row-major f32 when all_logits, else the last token's [n_vocab].
 */
typedef hearth_status (*golden_eval_fn)(void *user, const int32_t *tokens, int n_tokens, int pos0,
                                        float *logits, bool all_logits);

/*
 * Runs the golden prompt from position 0 through eval (one call, all logits),
 * then checks, failing the current case on a miss:
 *  - every reference top-k logit at every golden position within
 *    tol x that row's max|logit|;
 *  - the argmax equals the reference's where its top two are further apart
 *    than twice that tolerance;
 *  - the greedy continuation (one eval call per token, from position
 *    n_prompt) equals the reference's ids.
 * Prints the deviation per position, prefixed with label. *worst_rel (may be
 * NULL) receives the largest deviation as a fraction of the row's max|logit|,
 * or a negative value if the prompt could not be evaluated.
 */
void golden_check(const struct golden *g, int n_vocab, double tol, golden_eval_fn eval,
                  void *user, const char *label, double *worst_rel);

#endif
