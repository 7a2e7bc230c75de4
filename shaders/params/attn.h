/*
 * params/attn: the attention kernel over an F16 cache of
 * [n_ctx][kv_dim] halves (two per uint32 word, kv_dim even), position p at
 * row p. Token t of the batch sits at position pos0 + t.
 */
#ifndef HEARTH_VK_PARAMS_ATTN_H
#define HEARTH_VK_PARAMS_ATTN_H
#include "common.h"

#define VK_ATTN_WG 64
#define VK_ATTN_CHUNK 128   /* positions scored per pass (online softmax across passes) */
#define VK_ATTN_MAX_HD 256  /* head_dim <= VK_ATTN_WG * 4 */

#if !defined(VULKAN) || !defined(VK_SHADER_ATTN_KVQ) /* one pc block per shader */
/* out[t][h*hd..] = softmax_j(scale q.K_j) V_j over j in [lo(p), p], p = pos0 + t */
VK_PARAMS_BEGIN(vk_attn_params)
    uint32_t n_tok;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;
    uint32_t pos0;
    uint32_t window;      /* 0: causal only; else lo = max(0, p - window + 1) */
    float scale;
    uint32_t kv_dim;
    uint32_t q_off;       /* floats: q [n_tok][q_stride] */
    uint32_t q_stride;
    uint32_t o_off;       /* floats: out [n_tok][o_stride] */
    uint32_t o_stride;
    uint32_t k_cache_off; /* uint32 words */
    uint32_t v_cache_off;
    uint32_t pos_slot;    /* 0: pos0; k > 0: step[k - 1] (binding 4, params/common.h) */
VK_PARAMS_END(vk_attn_params)
#endif

/*
 * attention_kvq: the same attention over K and V caches of any kvq types
 * (params/kv.h VK_KVQ_*), byte rows k_row_bytes / v_row_bytes apart, KV head
 * h at h * head_bytes(type) in its row. sign: the rotation's diagonal as in
 * vk_kvq_store_params (used when k_type or v_type is rotated).
 * has_sink: 1 when K is not f16: position 0's key is the exact centred sink
 * (binding 4, floats at sink_off, KV head h at h * head_dim, unrotated; for
 * a rotated K it is rotated like the query) instead of the decoded row 0.
 * kv_window W > 0 (core/backend.h ATTENTION step 5): for j > p - W the key
 * and value are exact f16 rows in the attention's domain instead of the
 * decoded ones: j >= pos0 from kv_exact's scratch (binding 6: K rows
 * [n_tok][kv_dim] halves at word 0, V rows after them), j < pos0 from ring
 * slot j % W when ring_pos[j % W] == j (else the decoded row); the sink
 * still wins for K_0. Rings: F16 [W][kv_dim], rows r_stride words apart.
 */
#if !defined(VULKAN) || defined(VK_SHADER_ATTN_KVQ)
VK_PARAMS_BEGIN(vk_attn_kvq_params)
    uint32_t n_tok;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;
    uint32_t pos0;
    uint32_t window;
    float scale;
    uint32_t types;       /* k_type | v_type << 8 | has_sink << 16 (128 bytes of push constants) */
    uint32_t q_off;       /* floats */
    uint32_t q_stride;
    uint32_t o_off;       /* floats */
    uint32_t o_stride;
    uint32_t k_off;       /* bytes: position 0 of the K cache */
    uint32_t v_off;
    uint32_t k_row_bytes;
    uint32_t v_row_bytes;
    uint32_t sink_off;    /* floats: the k_aux row 1 */
    uint32_t sign[8];     /* VK_KVQ_SIGN_WORDS */
    uint32_t pos_slot;    /* 0: pos0; k > 0: step[k - 1] (binding 5, params/common.h) */
    uint32_t kv_window;   /* W of the exact window (0: none; bindings 6-9 then unused) */
    uint32_t kr_off;      /* uint32 words: slot 0 of k_ring (binding 7) */
    uint32_t vr_off;      /* uint32 words: slot 0 of v_ring (binding 8) */
    uint32_t rp_off;      /* int32 words: ring_pos[0] (binding 9) */
    uint32_t r_stride;    /* uint32 words between ring slots (K and V alike) */
VK_PARAMS_END(vk_attn_kvq_params)
#endif
#endif
