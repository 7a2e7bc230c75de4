/*
 * embed (embd_ prefix): turning the rows of a text's final hidden state (the
 * final norm's output, the LM head's input: seq-batch.h seq_batch_out) into
 * one embedding vector. Shared by the server's slots, which see a prompt's
 * rows a chunk at a time, and hearth_embed, which sees them at once; one
 * accumulation order (a double sum in row order) makes both give the same
 * bits for the same rows.
 */
#ifndef HEARTH_EMBED_H
#define HEARTH_EMBED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

/*
 * How rows are pooled: their mean, the last row (the only one that has seen
 * the whole text in a causal model: what last-token embedding models such
 * as Qwen3-Embedding are trained for), or the first (a BERT-style CLS token).
 */
enum embd_pool { EMBD_POOL_NONE, EMBD_POOL_MEAN, EMBD_POOL_LAST, EMBD_POOL_FIRST };

/* A GGUF {arch}.pooling_type (1 mean, 2 cls, 3 last); mean for 0 (none) and anything else. */
enum embd_pool embd_pool_of_gguf(uint32_t pooling_type);
/* "mean", "last" or "cls" (the CLI's --pooling); EMBD_POOL_NONE for any other name. */
enum embd_pool embd_pool_from_name(const char *name);
/* The name embd_pool_from_name reads ("mean" for NONE). */
const char *embd_pool_name(enum embd_pool pool);
/* Whether row at (of a text whose last row is last) takes part in pool. */
bool embd_pool_takes(enum embd_pool pool, size_t at, bool last);
/* acc[0..n) += row[0..n), in double. */
void embd_pool_add(double *acc, const float *row, size_t n);
/*
 * The pooled vector from acc (the sum of the rows embd_pool_takes chose of a
 * text of n_rows rows): the mean divides by n_rows, the others are their one
 * row. In place, in double.
 */
void embd_pool_finish(enum embd_pool pool, double *acc, size_t n, size_t n_rows);
/* v[0..n) scaled to unit L2 length (in double); a zero vector stays zero. */
void embd_normalize(float *v, size_t n);

struct engine;
/*
 * The pooled hidden state of ids[0..n) (not normalized; n_embd floats into
 * out): evaluated from position 0 on sequence 0 of e, whose cache it
 * overwrites, in batches of engine_n_batch tokens. INVALID_ARG (n 0, n at
 * least the context, pool NONE: nothing changed), NO_MEMORY, or the
 * engine's status.
 */
hearth_status embd_text(struct engine *e, const int32_t *ids, size_t n, enum embd_pool pool,
                        float *out);

#endif
