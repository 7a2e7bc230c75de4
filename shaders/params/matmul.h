/*
 * params/matmul: y[t][r] = W row r . x row t, shared by matvec.comp (decode:
 * VK_MATVEC_ROWS rows x VK_MATVEC_TOKS tokens per workgroup, reduction over
 * the row) and matmul.comp (prefill: a VK_MM_ROWS x VK_MM_TOKS output tile per
 * workgroup, dequantized weight tiles in shared memory).
 * Offsets: w_off in bytes into the weight binding (a chunk, see buffer.c),
 * x_off / y_off / b_off and strides in floats.
 */
#ifndef HEARTH_VK_PARAMS_MATMUL_H
#define HEARTH_VK_PARAMS_MATMUL_H
#include "common.h"

#define VK_MATVEC_WG 64
#define VK_MATVEC_ROWS 2
#define VK_MATVEC_TOKS 4
#define VK_MATVEC_MAX_W 3
#define VK_MM_ROWS 64 /* matmul.comp: weight rows per workgroup */
#define VK_MM_TOKS 32 /* matmul.comp: tokens per workgroup */
#define VK_MM_BK 16   /* matmul.comp: K elements per shared-memory step */

VK_PARAMS_BEGIN(vk_matmul_params)
    uint32_t w_off;     /* byte offset of row 0 in the weight binding */
    uint32_t row_bytes; /* bytes per weight row */
    uint32_t n_in;      /* K: elements per row (multiple of 4 and of the block) */
    uint32_t n_out;     /* rows of W */
    uint32_t n_tok;     /* activation rows */
    uint32_t x_off;     /* x: [n_tok][x_stride] floats from x_off */
    uint32_t x_stride;
    uint32_t y_off;     /* y: [n_tok][y_stride] floats from y_off */
    uint32_t y_stride;
    uint32_t has_b;     /* 1: y += bias[r] */
    uint32_t b_off;     /* bias: [n_out] floats from b_off (binding 3) */
    /*
     * matvec only: n_w (1..VK_MATVEC_MAX_W) weights of one type and K in one
     * dispatch (q/k/v, gate/up), sharing the W, y and bias bindings. Weight i
     * takes the row groups after weight i - 1's; its w_off, n_out, y_off,
     * y_stride and b_off are these fields for i = 1, 2. matmul.comp ignores them.
     */
    uint32_t n_w;
    uint32_t w1_off, n1_out, y1_off, y1_stride, b1_off;
    uint32_t w2_off, n2_out, y2_off, y2_stride, b2_off;
VK_PARAMS_END(vk_matmul_params)

#ifndef VULKAN
_Static_assert(offsetof(struct vk_matmul_params, y_stride) == 32, "matmul params layout");
#endif
#endif
