/* seq-batch: see seq-batch.h. */
#include "seq-batch.h"

#include "err.h"
#include "kv-cache.h"

hearth_status seq_batch_check(const struct seq_batch_limits *lim, const int32_t *tokens,
                              const int32_t *seq, const int32_t *pos, int n, uint32_t *next,
                              int32_t *last)
{
    const char *who = lim->who;
    for (int q = 0; q < lim->n_seq; q++)
        last[q] = -1;
    for (int t = 0; t < n; t++) {
        if (seq[t] < 0 || seq[t] >= lim->n_seq)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "%s: token %d names sequence %d, expected [0, %d)", who, t, seq[t],
                           lim->n_seq);
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= lim->n_vocab)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "%s: token %d (at index %d) out of range [0, %u)", who, tokens[t], t,
                           lim->n_vocab);
        const int q = seq[t];
        if (last[q] >= 0) {
            if (pos[t] != pos[last[q]] + 1)
                return err_set(HEARTH_ERR_INVALID_ARG,
                               "%s: token %d of sequence %d is at position %d, expected %d (a "
                               "sequence's tokens in a batch are consecutive)",
                               who, t, q, pos[t], pos[last[q]] + 1);
        } else if (pos[t] < 0 || (uint32_t)pos[t] > next[q]) {
            /* next[q] still holds what the sequence held: this is its first token here */
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "%s: token %d of sequence %d at position %d, but the sequence holds "
                           "positions [0, %u), so it must be in [0, %u]",
                           who, t, q, pos[t], next[q], next[q]);
        }
        if ((uint32_t)pos[t] >= lim->n_ctx)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "%s: token %d at position %d exceeds the context of %u positions", who,
                           t, pos[t], lim->n_ctx);
        last[q] = t;
        next[q] = (uint32_t)pos[t] + 1;
    }
    return HEARTH_OK;
}

/* Index of sequence q's first token in the batch, or n. */
static int first_of(const int32_t *seq, int n, int q)
{
    int i = 0;
    while (i < n && seq[i] != q)
        i++;
    return i;
}

hearth_status seq_batch_ring_lost(const char *who, int q, const struct kv_ring_track *r,
                                  uint32_t pos0)
{
    return err_set(HEARTH_ERR_INVALID_ARG,
                   "%s: sequence %d at position %u needs positions from %u on in the "
                   "sliding-window layers' rings, which hold only %u on (a rewind of more than "
                   "their %u spare positions); evaluate again from position 0",
                   who, q, pos0, pos0 + 1 - r->swa, r->lo, r->slots - r->swa);
}

hearth_status seq_batch_ring_check(const char *who, const struct kv_ring_track *rings, int n_seq,
                                   const int32_t *seq, const int32_t *pos, int n)
{
    for (int q = 0; q < n_seq; q++) {
        int i = first_of(seq, n, q);
        if (i < n && !kv_ring_can_eval(&rings[q], (uint32_t)pos[i]))
            return seq_batch_ring_lost(who, q, &rings[q], (uint32_t)pos[i]);
    }
    return HEARTH_OK;
}

void seq_batch_ring_advance(struct kv_ring_track *rings, int n_seq, const int32_t *seq,
                            const int32_t *pos, int n, const uint32_t *next)
{
    for (int q = 0; q < n_seq; q++) {
        int i = first_of(seq, n, q);
        if (i < n) /* its rows ran from pos[i] to next[q] - 1 */
            kv_ring_advance(&rings[q], (uint32_t)pos[i], next[q] - (uint32_t)pos[i]);
    }
}
