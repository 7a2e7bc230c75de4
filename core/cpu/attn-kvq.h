/*
 * attn-kvq: CPU attention of one query head over a KV range stored in the
 * compressed head-vector formats of kv-quant.h (K and V types independent).
 *
 * Scores are computed on the encoded keys directly: for a rotated K the query
 * is rotated once (q.k = (Rq).(Rk)) and each key costs one codebook lookup and
 * one multiply-add per coordinate; for q8_0/q4_0 the block scale multiplies a
 * per-block integer-weighted sum. Values are dequantized inside the
 * accumulation loop; for a rotated V the weighted sum stays in the rotated
 * domain and is rotated back once at the end (R^T is linear), so the inverse
 * transform costs O(d log d) per output instead of per position.
 */
#ifndef HEARTH_ATTN_KVQ_H
#define HEARTH_ATTN_KVQ_H

#include <stddef.h>
#include <stdint.h>

#include "kv-quant.h"

/* Floats of scratch cpu_attn_kvq_head needs for n positions of head_dim hd: n + 2 hd. */
size_t cpu_attn_kvq_scratch_floats(int64_t n, int hd);

/*
 * out[hd] = Σ_j softmax_j(scale · q·K_j) V_j over j < n.
 * q: [hd] floats (unrotated). k0, v0: the encoded head vector of the first
 * position (the head's byte offset within the row already applied); position
 * j's is k_stride / v_stride bytes further per step (a cache row holds
 * n_head_kv vectors, so stride = n_head_kv · kvq_head_bytes). rot: the layer's
 * rotation when kt or vt is rotated (rot->d == hd), else may be NULL.
 * scratch: cpu_attn_kvq_scratch_floats(n, hd) floats. n >= 1; the caller has
 * checked kvq_check for both types (no status: this is the decode hot loop).
 */
void cpu_attn_kvq_head(enum kvq_type kt, enum kvq_type vt, const struct kvq_rot *rot, float *out,
                       const float *q, const uint8_t *k0, size_t k_stride, const uint8_t *v0,
                       size_t v_stride, int64_t n, int hd, float scale, float *scratch);

#endif
