/*
 * params/eltwise: the element-wise ops over n floats:
 *   glu:   a[i] = act(a[i]) * b[i]   (swiglu: silu; geglu: gelu_tanh)
 *   add:   a[i] += b[i]
 *   scale: a[i] *= s
 */
#ifndef HEARTH_VK_PARAMS_ELTWISE_H
#define HEARTH_VK_PARAMS_ELTWISE_H
#include "common.h"

#define VK_ELT_WG 256

VK_PARAMS_BEGIN(vk_eltwise_params)
    uint32_t n;
    uint32_t a_off;  /* floats, binding 0 (read and written) */
    uint32_t b_off;  /* floats, binding 1 */
    float s;
VK_PARAMS_END(vk_eltwise_params)
#endif
