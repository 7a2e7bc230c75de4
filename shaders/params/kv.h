/* params/kv: the KV-store kernel (layout as params/attn.h: [n_ctx][kv_dim] halves, packed in uint32 words). */
#ifndef HEARTH_VK_PARAMS_KV_H
#define HEARTH_VK_PARAMS_KV_H
#include "common.h"

#define VK_KV_WG 64

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
VK_PARAMS_END(vk_kv_store_params)

#endif
