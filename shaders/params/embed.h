/* params/embed: y[i][:] = dequantized row ids[i] of W (W: rows of row_bytes bytes). */
#ifndef HEARTH_VK_PARAMS_EMBED_H
#define HEARTH_VK_PARAMS_EMBED_H
#include "common.h"

#define VK_EMBED_WG 64

VK_PARAMS_BEGIN(vk_embed_params)
    uint32_t w_off;     /* bytes */
    uint32_t row_bytes;
    uint32_t n_in;      /* elements per row */
    uint32_t n_rows;    /* rows of W: ids >= n_rows give zero rows */
    uint32_t n_ids;
    uint32_t ids_off;   /* uint32 ids from ids_off */
    uint32_t y_off;     /* y: [n_ids][y_stride] floats */
    uint32_t y_stride;
    float scale;        /* multiplies every element (gemma: sqrt(n_embd)) */
VK_PARAMS_END(vk_embed_params)
#endif
