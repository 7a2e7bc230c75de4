/*
 * params/rope: rotates, in place, the first n_rot dims of n_heads heads of
 * head_dim floats for n_tok tokens at positions pos0 + t. inv_freq[k] (k <
 * n_rot/2, computed on the host in double: base^(-2k/n_rot) * freq_scale /
 * divs[k]) gives theta_k = pos * inv_freq[k].
 * pos_slot: see params/common.h VK_STEP_SLOTS (command-buffer replay).
 */
#ifndef HEARTH_VK_PARAMS_ROPE_H
#define HEARTH_VK_PARAMS_ROPE_H
#include "common.h"

#define VK_ROPE_WG 64

VK_PARAMS_BEGIN(vk_rope_params)
    uint32_t n_tok;
    uint32_t n_heads;
    uint32_t head_dim;
    uint32_t n_rot;
    uint32_t pos0;
    uint32_t neox;     /* 0: pairs (2k, 2k+1); 1: pairs (k, k + n_rot/2) */
    uint32_t x_off;    /* x: token rows x_stride floats apart */
    uint32_t x_stride;
    uint32_t f_off;    /* inv_freq: [n_rot/2] floats */
    uint32_t pos_slot; /* 0: positions from pos0; k > 0: from step[k - 1] (binding 2) */
VK_PARAMS_END(vk_rope_params)
#endif
