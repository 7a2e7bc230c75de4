/*
 * perplexity: scoring a text with a model, and comparing two runs' token
 * distributions (the computation behind `hearth perplexity`).
 *
 * Method (as llama.cpp's perplexity tool, so figures are comparable): the text
 * is tokenized once; tokens [i*c, (i+1)*c) form chunk i (a partial last chunk
 * is dropped); when the model adds BOS, the first token of every chunk is
 * replaced by BOS. Each chunk is evaluated from an empty cache (pos0 = 0) and
 * only the logits at positions first = c/2 .. c-2 are scored, each predicting
 * the next token, so every scored token has at least c/2 tokens of context:
 * c - 1 - c/2 scored tokens per chunk. NLL is -log_softmax(logits)[target],
 * computed with max subtraction and accumulated in double; perplexity is
 * exp(mean NLL) and its standard error ppl * sqrt(var(NLL) / n) (the delta
 * method on the mean).
 *
 * Only the scored half needs logits, so the first half is evaluated without
 * any and the rest in sub-batches of at most PPL_LOGIT_BATCH rows: Gemma 3's
 * 262144-entry vocabulary would otherwise need 512 MiB of logits per chunk.
 *
 * The "logits file" (--save-logits / --kl-divergence) keeps, per scored token,
 * the top PPL_TOPK log-probabilities of the full distribution (ids and f32
 * values, descending) plus the target's log-probability; full f16 rows would
 * be 96 KiB (SmolLM2) to 512 KiB (Gemma) per token. KL(base || run) is then
 * computed over those PPL_TOPK ids plus one "rest" bin holding the remaining
 * mass of each distribution: merging bins can only lower a KL divergence, so
 * the figure is a (tight, for peaked LM distributions) lower bound of the
 * exact value, and exactly 0 when the runs agree bit for bit. Layout in
 * perplexity.c; the header carries vocab size, c and every evaluated token id
 * so that runs of different texts, settings or tokenizers are refused.
 *
 * The in-process comparison (ppl_evaluate_pair, `--kl-divergence` without a
 * file) instead runs a reference engine (f16 KV cache) beside the engine under
 * test and compares whole rows: KL(ref || test) over the full vocabulary,
 * exact up to double rounding. The two engines take turns per sub-batch of
 * PPL_LOGIT_BATCH rows, each on its own cache, so at most one sub-batch of
 * logits per engine is held (not a chunk's: 1023 Gemma rows would be 1 GiB).
 * Rejected: writing the reference to a logits file first (top-k only, a lower
 * bound) or holding a whole chunk of rows per engine (memory).
 */
#ifndef HEARTH_PERPLEXITY_H
#define HEARTH_PERPLEXITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "hearth.h"
#include "tokenizer.h"

#define PPL_TOPK 32          /* log-probs kept per token in a logits file */
#define PPL_LOGIT_BATCH 64   /* rows of logits computed per engine_eval call */

/* Running sums over scored tokens. */
struct ppl_acc {
    int64_t n;       /* tokens scored */
    double nll_sum;  /* sum of -log p(target) */
    double nll2_sum; /* sum of its squares */
};

/* exp(mean NLL); 0 when nothing was scored. */
double ppl_acc_ppl(const struct ppl_acc *a);
/* Standard error of ppl_acc_ppl: ppl * sqrt(var(NLL) / n) (0 when n < 2). */
double ppl_acc_err(const struct ppl_acc *a);

/*
 * The token sequence perplexity evaluates: text tokenized without specials,
 * BOS prepended when the model adds one, cut to whole chunks of n_ctx tokens
 * (at most max_chunks of them; <= 0: all), BOS written at each chunk start
 * when the model adds BOS. *tokens is malloc'd ([*n_chunks * n_ctx] ids).
 * Errors: INVALID_ARG for n_ctx < 4 or a text shorter than one chunk (the
 * message says how many tokens it has).
 */
hearth_status ppl_tokens(const struct tokenizer *t, const char *text, size_t len, int n_ctx,
                         int max_chunks, int32_t **tokens, int *n_chunks);

/* Scored tokens per chunk of n_ctx: n_ctx - 1 - n_ctx / 2. */
int ppl_scored_per_chunk(int n_ctx);

/*
 * Called for every scored token, in order: index counts scored tokens from 0,
 * logits is the model's row [n_vocab] at the predicting position, lse its
 * log-sum-exp (so log p(i) = logits[i] - lse), target the true next token.
 * A non-OK return stops the evaluation with that status.
 */
typedef hearth_status (*ppl_token_fn)(void *ud, int64_t index, const float *logits,
                                      uint32_t n_vocab, double lse, int32_t target);
/* Called after each chunk (chunk counts from 0) with the sums so far. */
typedef void (*ppl_chunk_fn)(void *ud, int chunk, const struct ppl_acc *so_far);

/*
 * Evaluates n_chunks chunks of n_ctx tokens each (tokens from ppl_tokens) on
 * fc, whose context must hold n_ctx positions; the callbacks may be NULL.
 * *acc is reset first. Errors: those of engine_eval, NO_MEMORY, or a
 * callback's status.
 */
hearth_status ppl_evaluate(struct engine *fc, uint32_t n_vocab, const int32_t *tokens,
                           int n_chunks, int n_ctx, ppl_token_fn on_token, ppl_chunk_fn on_chunk,
                           void *ud, struct ppl_acc *acc);

/* log(sum(exp(x[i]))) over x[0..n), with the max subtracted first; in double. */
double ppl_log_sum_exp(const float *x, uint32_t n);

/* ---- logits files ---------------------------------------------------------- */

struct ppl_logfile;

/*
 * Creates path and writes the header: n_vocab, n_ctx, the n_tokens evaluated
 * ids and the number of scored tokens that ppl_logfile_write will add.
 */
hearth_status ppl_logfile_create(const char *path, uint32_t n_vocab, uint32_t n_ctx,
                                 const int32_t *tokens, uint64_t n_tokens, uint64_t n_scored,
                                 struct ppl_logfile **out);
/* Appends one scored token's record (top PPL_TOPK of logits, and the target's log-prob). */
hearth_status ppl_logfile_write(struct ppl_logfile *f, const float *logits, uint32_t n_vocab,
                                double lse, int32_t target);
/* Flushes and closes a file made by create (reporting a failed write), or closes a reader. */
hearth_status ppl_logfile_close(struct ppl_logfile *f);

/*
 * Opens a file made by another run and checks it against this run: same
 * n_vocab, n_ctx, token count and ids, and n_scored. Errors: IO, BAD_FILE (not
 * a logits file, truncated), INVALID_ARG for a mismatch, naming the field and
 * both values (e.g. "made with -c 256, this run uses -c 128").
 */
hearth_status ppl_logfile_open(const char *path, uint32_t n_vocab, uint32_t n_ctx,
                               const int32_t *tokens, uint64_t n_tokens, uint64_t n_scored,
                               struct ppl_logfile **out);

/* One token's comparison of the stored (base) distribution with this run's. */
struct ppl_kld_token {
    double kld;        /* KL(base || this run) over the top-k ids plus the rest bin, nats */
    bool top1_agree;   /* the argmaxes are the same token */
    double base_nll;   /* -log p_base(target) */
};

/* Reads the next record and compares it with this run's logits row. */
hearth_status ppl_logfile_compare(struct ppl_logfile *f, const float *logits, uint32_t n_vocab,
                                  double lse, int32_t target, struct ppl_kld_token *out);

struct ppl_kld_summary {
    int64_t n;
    double mean, mean_err; /* mean KLD and its standard error */
    double p99, max;       /* 99th percentile (nearest rank) and maximum */
    double top1;           /* fraction of tokens whose argmaxes agree */
    int64_t n_agree;       /* their count */
};

/* Summarizes per-token KLDs kld[0..n) (reordered: sorted in place) and agreements. */
void ppl_kld_summarize(double *kld, int64_t n, int64_t n_agree, struct ppl_kld_summary *out);

/* ---- in-process comparison with a reference engine ----------------------- */

/* One position's comparison of two full logit rows. */
struct ppl_row_cmp {
    double kld;      /* KL(ref || test) over all n_vocab ids, nats, >= 0 */
    bool top1_agree; /* same argmax (ties: the lowest id) */
};

/*
 * Compares the reference row ref[n_vocab] (log-sum-exp ref_lse) with the test
 * row test[n_vocab] (test_lse): KL(p || q) = sum_i p_i (log p_i - log q_i)
 * with log p_i = ref[i] - ref_lse, log q_i = test[i] - test_lse, in double.
 * Identical rows give exactly 0. A rounding-negative sum is clamped to 0.
 */
void ppl_compare_rows(const float *ref, double ref_lse, const float *test, double test_lse,
                      uint32_t n_vocab, struct ppl_row_cmp *out);

struct ppl_pair_result {
    struct ppl_acc test, ref;   /* NLL sums of the engine under test and of the reference */
    struct ppl_kld_summary kld; /* per-token KL(ref || test) and top-1 agreement */
};

/*
 * ppl_evaluate on two engines over the same tokens: test (the settings being
 * measured) and ref (the reference, normally an f16 KV cache), both with
 * contexts of at least n_ctx. Each scored row of test is compared with ref's
 * by ppl_compare_rows; on_chunk (may be NULL) gets test's sums after each
 * chunk. Errors: those of engine_eval, INVALID_ARG (as ppl_evaluate),
 * NO_MEMORY.
 */
hearth_status ppl_evaluate_pair(struct engine *test, struct engine *ref, uint32_t n_vocab,
                                const int32_t *tokens, int n_chunks, int n_ctx,
                                ppl_chunk_fn on_chunk, void *ud, struct ppl_pair_result *out);

#endif
