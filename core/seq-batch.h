/*
 * seq-batch (seq_ prefix): the validation of a batch of tokens from several
 * sequences, shared by forward_eval_multi (cpu/forward.c) and
 * sched_eval_multi (sched-exec.c), whose contract is the same: token t
 * belongs to sequence seq[t] at position pos[t]; a sequence's first token in
 * the batch is at most the positions it holds (smaller rewinds it), its
 * later ones follow at consecutive positions, all below n_ctx. One function,
 * so the two paths cannot drift apart in what they accept or in how they say
 * what is wrong.
 */
#ifndef HEARTH_SEQ_BATCH_H
#define HEARTH_SEQ_BATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "hearth.h"

/*
 * What a multi-sequence evaluation hands back, each in token order: one
 * [n_vocab] logits row per token t with want_logits[t], and one [n_embd]
 * hidden row per token with want_hidden[t]. A hidden row is the final norm's
 * output, rmsnorm(x) * output_norm: the LM head's input, from which
 * embeddings are pooled. A NULL buffer or mask asks for none of that kind.
 */
struct seq_batch_out {
    float *logits;
    const bool *want_logits;
    float *hidden;
    const bool *want_hidden;
};

struct seq_batch_limits {
    const char *who; /* the caller's name for messages ("sched_eval_multi") */
    int n_seq;
    uint32_t n_vocab, n_ctx;
};

/*
 * Checks tokens/seq/pos[0..n). next: [n_seq], in: the positions each
 * sequence holds; out: where each ends after the batch. last: [n_seq]
 * scratch (index of the sequence's latest token). INVALID_ARG names the
 * token index and what was expected; next is then partly updated (callers
 * commit it only on success).
 */
hearth_status seq_batch_check(const struct seq_batch_limits *lim, const int32_t *tokens,
                              const int32_t *seq, const int32_t *pos, int n, uint32_t *next,
                              int32_t *last);

struct kv_ring_track;
/*
 * The sliding-window rings' rule (kv-cache.h kv_ring_track) for a batch that
 * passed seq_batch_check: INVALID_ARG when a sequence's first position in it
 * needs rows its ring-only layers no longer hold (the message says to start
 * again from position 0). rings: [n_seq], one per sequence.
 */
hearth_status seq_batch_ring_check(const char *who, const struct kv_ring_track *rings, int n_seq,
                                   const int32_t *seq, const int32_t *pos, int n);
/* After the batch ran: each sequence's ring advanced over its rows [first, next[q]). */
void seq_batch_ring_advance(struct kv_ring_track *rings, int n_seq, const int32_t *seq,
                            const int32_t *pos, int n, const uint32_t *next);
/* The error of seq_batch_ring_check for sequence q at pos0 (forward_eval / sched_eval too). */
hearth_status seq_batch_ring_lost(const char *who, int q, const struct kv_ring_track *r,
                                  uint32_t pos0);

#endif
