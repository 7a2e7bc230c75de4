/* seq-batch: see seq-batch.h. */
#include "seq-batch.h"

#include "err.h"

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
