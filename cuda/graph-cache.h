/*
 * cuda/graph-cache: which op lists of a CUDA stream are replayed as CUDA
 * graphs, keyed by everything that shapes their launches.
 *
 * A decode step runs the same few op lists (one per block) token after
 * token; only the attention positions and device-side data change. The key
 * is the list written out field by field (kinds, token counts, every
 * tensor's buffer, offset, type and shape, every scalar) minus the
 * positions, which the backend writes to device memory before each launch
 * (cuda_i32_set_n). Field by field, not the structs' bytes, because their
 * padding is not guaranteed to be zero. A list is graphable when every op
 * has 1..CUDA_MATVEC_MAX_TOK tokens (the fused matvec: no cuBLAS, no
 * per-call allocation) and it holds at most CUDA_GRAPH_MAX_POS attention ops.
 */
#ifndef HEARTH_CUDA_GRAPH_CACHE_H
#define HEARTH_CUDA_GRAPH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "ops.h"

struct cuda_graph_entry {
    uint64_t hash;
    uint8_t *key;
    size_t len;
    void *exec;     /* instantiated graph; NULL: seen once and run eagerly, or capture failed */
    /* the stream scratch the graph's launches point into: another address means recapture */
    const void *ws, *rows;
    int fails;      /* failed captures: after CUDA_GRAPH_MAX_FAILS the list stays eager */
};

#define CUDA_GRAPH_MAX_FAILS 2
#define CUDA_GRAPH_MAX_ENTRIES 1024 /* then the cache starts over */

struct cuda_graph_cache {
    struct cuda_graph_entry *e;
    int n, cap;
    uint8_t *buf; /* the key being built */
    size_t len, buf_cap;
    bool oom; /* building the key ran out of host memory */
    uint64_t hash;
    int32_t pos[CUDA_GRAPH_MAX_POS]; /* the built list's attention positions, in op order */
    int n_pos;
    struct cuda_graph_stats stats;
};

/*
 * Builds the key of ops[0..n_ops) into c (with its positions). false: the
 * list is not graphable, or the key could not be allocated (run it eagerly).
 */
bool cuda_graph_key(struct cuda_graph_cache *c, const struct hearth_op *ops, int n_ops);
/* The entry of the key last built, or NULL. */
struct cuda_graph_entry *cuda_graph_find(struct cuda_graph_cache *c);
/* Adds the key last built (exec NULL); NULL when out of host memory. */
struct cuda_graph_entry *cuda_graph_add(struct cuda_graph_cache *c);
/* Destroys every graph and frees the cache's memory; c may be reused (empty) after. */
void cuda_graph_cache_clear(struct cuda_graph_cache *c);

#endif
