/* params/kv: the KV-store kernel (layout as params/attn.h: [n_ctx][kv_dim] halves, packed in uint32 words). */
#ifndef HEARTH_VK_PARAMS_KV_H
#define HEARTH_VK_PARAMS_KV_H
#include "common.h"

#define VK_KV_WG 64

/*
 * A shader declares one push-constant block (named pc): the kvq shaders define
 * VK_SHADER_KVQ_STORE or VK_SHADER_ATTN_KVQ (attention-combine.comp, which wants the
 * VK_KVQ_* values only, VK_SHADER_ATTN_COMBINE) to pick theirs; C sees every struct.
 */
#if !defined(VULKAN) || \
    !(defined(VK_SHADER_KVQ_STORE) || defined(VK_SHADER_ATTN_KVQ) ||      \
      defined(VK_SHADER_KV_CENTER) || defined(VK_SHADER_KV_EXACT) || defined(VK_SHADER_KV_RING) || \
      defined(VK_SHADER_ATTN_COMBINE))
/* cache[pos0 + t][:] = f16(src[t][:]) for K and V at once */
VK_PARAMS_BEGIN(vk_kv_store_params)
    uint32_t n_tok;
    uint32_t kv_dim;
    uint32_t pos0;
    uint32_t k_src_off;   /* floats; rows src_stride apart */
    uint32_t v_src_off;
    uint32_t src_stride;
    uint32_t k_cache_off; /* in uint32 words (position 0 of the layer's K) */
    uint32_t v_cache_off;
    uint32_t pos_slot;    /* 0: pos0; k > 0: step[k - 1] (binding 4, params/common.h) */
VK_PARAMS_END(vk_kv_store_params)
#endif

/*
 * kv_store_q: encodes the batch's new K (or V) head vectors into a cache of
 * any kvq type (core/kv-quant.h layouts, byte rows: row_bytes apart, head h
 * of a row at h * head_bytes). One workgroup per (KV head, token). Types are
 * the enum kvq_type values, VK_KVQ_* below. sign: bit i set when coordinate
 * i of the layer's randomized Hadamard diagonal is -1 (rotated types; head_dim
 * <= VK_KVQ_MAX_HD, so 8 words hold every bit).
 */
#define VK_KVQ_F16 0
#define VK_KVQ_Q8_0 1
#define VK_KVQ_Q4_0 2
#define VK_KVQ_ROT4 3
#define VK_KVQ_ROT3 4
#define VK_KVQ_WG 64
#define VK_KVQ_MAX_HD 256
#define VK_KVQ_SIGN_WORDS 8

#if !defined(VULKAN) || defined(VK_SHADER_KVQ_STORE)
VK_PARAMS_BEGIN(vk_kvq_store_params)
    uint32_t n_tok;
    uint32_t n_head_kv;
    uint32_t head_dim;
    uint32_t type;
    uint32_t pos0;
    uint32_t src_off;     /* floats: src [n_tok][src_stride], head h at h * head_dim */
    uint32_t src_stride;
    uint32_t cache_off;   /* bytes: position 0 of the layer's cache */
    uint32_t row_bytes;   /* bytes between positions */
    uint32_t sign[8];     /* VK_KVQ_SIGN_WORDS */
    uint32_t pos_slot;    /* 0: pos0; k > 0: step[k - 1] (binding 2, params/common.h) */
VK_PARAMS_END(vk_kvq_store_params)
#endif

/*
 * kv_center: the key-centring step of a compressed K cache (core/backend.h
 * ATTENTION step 3). One invocation per coordinate d of kv_dim. When first
 * (the batch writes position 0): aux row 0 [d] = mean of k[t][d] over t in
 * [mean_lo, mean_hi) (0 when empty), aux row 1 [d] = k[0][d] - mu; always
 * k[t][d] -= aux row 0 [d] in place for t < n_tok.
 */
#if !defined(VULKAN) || defined(VK_SHADER_KV_CENTER)
VK_PARAMS_BEGIN(vk_kv_center_params)
    uint32_t n_tok;
    uint32_t kv_dim;
    uint32_t k_off;       /* floats: k [n_tok][k_stride], the op's k (normed, RoPE'd) */
    uint32_t k_stride;
    uint32_t aux_off;     /* floats: k_aux row 0 (mu); row 1 (sink) aux_stride further */
    uint32_t aux_stride;
    uint32_t first;       /* 1: pos0 == 0, compute mu and the sink; 0: read mu */
    uint32_t mean_lo;     /* token range of the mean: [mean_lo, mean_hi) */
    uint32_t mean_hi;
    uint32_t pos_slot;    /* 0: first as given; k > 0: first = step[k - 1] == 0 (binding 2) */
VK_PARAMS_END(vk_kv_center_params)
#endif

/*
 * kv_exact (ATTENTION step 5, the exact window): the batch's K (or V) rows in
 * the attention's domain, rounded to f16: dst row t, head h = f16(R x) for a
 * rotated type, f16(x) otherwise, x = src[t][h * head_dim ..] (for K the
 * centred key kv_center left in place). One workgroup per (KV head, token).
 * dst: [n_tok][n_head_kv * head_dim] halves packed two per uint32 word
 * (head_dim even), at word dst_off. sign: as vk_kvq_store_params.
 */
#if !defined(VULKAN) || defined(VK_SHADER_KV_EXACT)
VK_PARAMS_BEGIN(vk_kv_exact_params)
    uint32_t n_tok;
    uint32_t n_head_kv;
    uint32_t head_dim;
    uint32_t type;
    uint32_t src_off;     /* floats: src [n_tok][src_stride] */
    uint32_t src_stride;
    uint32_t dst_off;     /* uint32 words */
    uint32_t sign[8];     /* VK_KVQ_SIGN_WORDS */
VK_PARAMS_END(vk_kv_exact_params)
#endif

/*
 * kv_ring: after the attention pass, the batch's exact rows (kv_exact's
 * scratch: K rows [n_tok][kv_dim] halves at word 0, V rows right after) enter
 * the layer's ring: for the last min(kv_window, n_tok) tokens t, slot
 * (pos0 + t) % kv_window of k_ring / v_ring (F16 [kv_window][kv_dim], rows
 * r_stride words apart) = row t and ring_pos[slot] = pos0 + t. Those slots are distinct, so
 * invocations never race. One invocation per (word of a row, token).
 */
#if !defined(VULKAN) || defined(VK_SHADER_KV_RING)
VK_PARAMS_BEGIN(vk_kv_ring_params)
    uint32_t n_tok;
    uint32_t kv_dim;
    uint32_t pos0;
    uint32_t kv_window;
    uint32_t kr_off;      /* uint32 words: slot 0 of k_ring */
    uint32_t vr_off;      /* uint32 words: slot 0 of v_ring */
    uint32_t rp_off;      /* int32 words: ring_pos[0] */
    uint32_t pos_slot;    /* 0: pos0; k > 0: step[k - 1] (binding 4, params/common.h) */
    uint32_t r_stride;    /* uint32 words between ring slots */
VK_PARAMS_END(vk_kv_ring_params)
#endif

#endif
