/*
 * kvq-ref.h: the backend contract's compressed-KV attention with the exact
 * recent window (core/backend.h ATTENTION step 5) evaluated in double on the
 * host, for the GPU backends' tests (test-vk-kvq.c, test-cuda-kvq.c) to
 * compare their kernels with. One copy, so both backends are held to the same
 * reading of the contract.
 *
 * Sources of position j for the query at position p (batch at pos0, n rows):
 * the sink (position 0, when given) for K; else, when j > p - W, the batch's
 * own f16 row (j >= pos0) or the ring slot j % W whose tag is j; else the
 * cache row decoded from its bytes. Scores and the V sum are taken in each
 * type's attention domain (R x per KV head for a rotated type), and a rotated
 * V's sum is turned back with R^T at the end.
 */
#ifndef HEARTH_TEST_KVQ_REF_H
#define HEARTH_TEST_KVQ_REF_H

#include <stddef.h>
#include <stdint.h>

#include "kv-quant.h"

struct kvq_ref_window {
    enum kvq_type kt, vt;
    const struct kvq_rot *rot; /* the layer's rotation (kvq_rot_init) */
    int hd, n_head, n_head_kv, w;
    const uint16_t *xk, *xv;    /* [n][n_head_kv * hd] f16: the batch's exact rows */
    const uint16_t *ring_k;     /* [w] rows of ring_stride halves: the ring before the batch */
    const uint16_t *ring_v;
    size_t ring_stride;         /* halves between ring rows (>= n_head_kv * hd) */
    const int32_t *ring_pos;    /* [w] tags: the position a slot holds (-1: none) */
    const uint8_t *kc, *vc;     /* caches read back: [ctx][n_head_kv * head bytes] */
    const float *sink;          /* [n_head_kv * hd] k_aux row 1, or NULL */
};

/*
 * out[t][h][i] for the n queries q ([n][n_head][hd], normed and RoPE'd) at
 * positions pos0..pos0+n-1; false when out of memory (the case fails).
 */
bool kvq_ref_window_attention(const struct kvq_ref_window *r, int n, int pos0, const float *q,
                              double *out);

/* x (n_head_kv head vectors of hd) in type t's attention domain, as floats into y. */
void kvq_ref_domain(enum kvq_type t, const struct kvq_rot *rot, const float *x, int n_head_kv,
                    int hd, float *y);

#endif
