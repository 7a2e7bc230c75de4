/*
 * tok-heap: the priority queue of merge candidates both tokenizers use.
 *
 * BPE merges the adjacent pair of lowest rank, SentencePiece the pair of
 * highest score; both break ties by the leftmost position. So one min-heap
 * keyed (key, left) serves both: BPE pushes its rank, SPM the negated score.
 * A double key holds either exactly (ranks < 2^31, scores are floats).
 * Entries are never updated in place; the callers detect stale ones on pop
 * (the symbols they name changed since the push), which keeps push/pop
 * O(log n) without an index from symbols into the heap.
 */
#include "tokenizer.h"

#include <stdlib.h>

#include "err.h"

static bool cand_less(const struct tok__cand *a, const struct tok__cand *b)
{
    return a->key != b->key ? a->key < b->key : a->left < b->left;
}

hearth_status tok__heap_push(struct tok__heap *h, const struct tok__cand *e)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct tok__cand *a = realloc(h->a, cap * sizeof *a);
        if (!a)
            return err_set(HEARTH_ERR_NO_MEMORY, "tokenizer: merge queue of %zu entries", cap);
        h->a = a;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!cand_less(e, &h->a[up]))
            break;
        h->a[i] = h->a[up];
        i = up;
    }
    h->a[i] = *e;
    return HEARTH_OK;
}

struct tok__cand tok__heap_pop(struct tok__heap *h)
{
    struct tok__cand top = h->a[0], last = h->a[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct tok__cand *best = &last;
        if (l < n && cand_less(&h->a[l], best)) {
            m = l;
            best = &h->a[l];
        }
        if (r < n && cand_less(&h->a[r], best))
            m = r;
        if (m == i)
            break;
        h->a[i] = h->a[m];
        i = m;
    }
    if (n > 0)
        h->a[i] = last;
    return top;
}

void tok__heap_free(struct tok__heap *h)
{
    free(h->a);
    h->a = NULL;
    h->n = h->cap = 0;
}
