/* params/norm: y[r][:] = x[r][:] / sqrt(mean(x[r]^2) + eps) * w[:] for n_rows rows. */
#ifndef HEARTH_VK_PARAMS_NORM_H
#define HEARTH_VK_PARAMS_NORM_H
#include "common.h"

#define VK_NORM_WG 128

VK_PARAMS_BEGIN(vk_rmsnorm_params)
    uint32_t n;        /* elements per row */
    uint32_t n_rows;
    uint32_t x_off;    /* x: rows x_stride floats apart */
    uint32_t x_stride;
    uint32_t y_off;    /* y: rows y_stride floats apart; may alias x */
    uint32_t y_stride;
    uint32_t w_off;    /* w: [n] floats */
    uint32_t has_w;    /* 0: no gain */
    float eps;
VK_PARAMS_END(vk_rmsnorm_params)
#endif
