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

/*
 * Flash-decoding (vulkan/attn-split.c): with n_split > 1 workgroup (h, t, s)
 * of attention / attention_kvq attends over piece s of [lo, p] (pieces of
 * ceil(len / n_split) positions; trailing ones may be empty) and writes the
 * unnormalised partial (m, l, acc[head_dim]) at float
 * VK_ATTN_PART(t, h, s) * (head_dim + 2) of the out binding (the scratch, at
 * o_off = 0) instead of the output; attention_combine merges the partials.
 * For attention_kvq a rotated V's acc stays in the rotated domain.
 */
#define VK_ATTN_MAX_SPLIT 64
#define VK_ATTN_PART(t, h, s, n_head, n_split) (((t) * (n_head) + (h)) * (n_split) + (s))

#if !defined(VULKAN) || (!defined(VK_SHADER_ATTN_KVQ) && !defined(VK_SHADER_ATTN_COMBINE))
/* one pc block per shader */
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
    uint32_t n_split;     /* 1: out is the output; > 1: the partials (VK_ATTN_PART) */
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
    uint32_t types;       /* k_type | v_type << 8 | has_sink << 16 | n_split << 24 (n_split as
                             vk_attn_params'; packed, since 124 of 128 bytes are taken) */
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

/*
 * attention_combine: one workgroup per (head h, token t) merges the n_split
 * partials of binding 0 (VK_ATTN_PART layout, from float 0) into
 * out[o_off + t * o_stride + h * head_dim ..] (binding 1):
 * M = max m_s, L = sum l_s e^(m_s - M), out = sum acc_s e^(m_s - M) / L,
 * then R^T of the rotation (sign as vk_attn_kvq_params) when v_rot != 0.
 */
#if !defined(VULKAN) || defined(VK_SHADER_ATTN_COMBINE)
VK_PARAMS_BEGIN(vk_attn_combine_params)
    uint32_t n_head;
    uint32_t head_dim;
    uint32_t n_split;
    uint32_t o_off;       /* floats */
    uint32_t o_stride;
    uint32_t v_rot;       /* 1: V is a rotated type (kvq_rotate inverse after the merge) */
    uint32_t sign[8];     /* VK_KVQ_SIGN_WORDS */
VK_PARAMS_END(vk_attn_combine_params)
#endif
#endif
