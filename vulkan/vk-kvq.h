/*
 * vulkan/vk-kvq: the ATTENTION op over compressed KV caches (core/kv-quant.h
 * types: f16, q8_0, q4_0, rot4, rot3, K and V independent) on Vulkan.
 * Implemented in op-attention.c, called by graph.c's walk for every
 * ATTENTION op vk_kvq_takes accepts: (k_type, v_type) not (f16, f16), or a
 * ring-only layer of any pair (f16/f16 included: the plain kernels need the
 * caches); an f16/f16 op with caches keeps graph.c's vk_attention path.
 *
 * A struct vk_kvq is per-stream state (graph.c's, made on first use): the
 * exact window's scratch buffer (grown on demand); the kernels are
 * pipeline.c's. Tensors and layouts as the
 * core/backend.h ATTENTION contract: the caches are byte rows (row_stride
 * apart) holding n_head_kv encoded head vectors back to back.
 */
#ifndef HEARTH_VK_KVQ_H
#define HEARTH_VK_KVQ_H

#include <stdbool.h>

#include "backend.h"
#include "kv-quant.h"
#include "vk-internal.h"

struct vk_kvq;

/* Per-stream state on ctx (the context the kvq dispatches record on). HEARTH_ERR_NO_MEMORY. */
hearth_status vk_kvq_create(struct vk_ctx *ctx, struct vk_kvq **out);
/* Frees the state and its scratch buffer (recorded work must have run). NULL: nothing. */
void vk_kvq_destroy(struct vk_kvq *kq);
/* Whether the kvq kernels take this (k_type, v_type) pair (every pair of valid types). */
bool vk_kvq_supports(int k_type, int v_type);
/* Whether they take the exact window (step 5) for it: every pair but f16/f16. */
bool vk_kvq_supports_window(int k_type, int v_type);
/*
 * Whether an ATTENTION op goes to this path (vk_kvq_args_from_op, then
 * vk_attention_kvq) rather than vk_attention: a compressed pair, or a
 * ring-only layer (k_cache absent, backend.h step 6) of any pair, f16/f16
 * included, since the plain kernels store into and read the caches.
 */
bool vk_kvq_takes(const struct hearth_op_attention *at);

/*
 * The low-level op, on tensors already normed and RoPE'd: encodes k_new and
 * v_new ([n_tok][kv_stride] f32) into rows pos0.. of the caches, then
 * attends (vk.h vk_attention's formula). a->k_cache / v_cache: byte views,
 * any alignment; k_row_bytes / v_row_bytes: bytes between positions
 * (>= n_head_kv * kvq_head_bytes). kv_seed, layer: the rotation of the
 * rotated types, kvq_rot_init(head_dim, kv_seed, layer) (unused by the
 * others). head_dim <= 256; a multiple of 32 for the non-f16 types, even for
 * f16. k_aux (k_type != f16 only; unused for f16): F32 [2][n_head_kv *
 * head_dim] rows aux_stride floats apart, row 0 the key mean, row 1 the
 * centred sink key (core/backend.h ATTENTION step 3): when pos0 == 0 both are
 * written from this batch, else row 0 is read; k_new is centred in place
 * before it is encoded, and position 0 attends with row 1.
 * kv_window W > 0 (core/backend.h ATTENTION step 5; k_type or v_type not
 * f16, or a ring-only layer): k_ring, v_ring: F16 [W][n_head_kv * head_dim] rows ring_stride
 * words apart (one stride for both), ring_pos: I32 [W]; read for positions
 * before pos0, then written with the batch's last min(W, n_tok) rows after
 * the attention pass.
 * Ring-only layer (core/backend.h ATTENTION step 6): a->k_cache.buf and
 * a->v_cache.buf both NULL, a->window > 0, kv_window >= a->window (else
 * INVALID_ARG), any type pair: nothing is encoded, no cache is read, and
 * a->n_ctx, k_row_bytes and v_row_bytes are ignored; the caller keeps
 * ring_pos[j % W] == j for every j in [max(0, pos0 - window + 1), pos0).
 * For f16/f16 the ring rows are plain k and v rounded to f16 (no centring,
 * no k_aux, no rotation), so the ring is that layer's whole cache.
 */
struct vk_kvq_args {
    struct vk_attn_args a;
    enum kvq_type k_type, v_type;
    uint32_t k_row_bytes, v_row_bytes;
    uint64_t kv_seed;
    uint32_t layer;
    struct vk_view k_aux;
    uint32_t aux_stride;
    uint32_t kv_window;
    struct vk_view k_ring, v_ring, ring_pos;
    uint32_t ring_stride;
};
hearth_status vk_attention_kvq(struct vk_kvq *kq, const struct vk_kvq_args *a);

/*
 * The kvq half of an ATTENTION op (core/backend.h): checks the types,
 * head_dim, cache tensors (or, both absent, step 6's preconditions),
 * k_aux and the exact window's rings, and fills
 * every field of ka but ka->a,
 * which graph.c's run_attention fills (with the q/k norms and RoPE it runs
 * for every cache type) before calling vk_attention_kvq. UNSUPPORTED for a
 * type or head_dim the kernels lack, INVALID_ARG for malformed tensors.
 */
hearth_status vk_kvq_args_from_op(const struct hearth_op_attention *at, struct vk_kvq_args *ka);

#endif
