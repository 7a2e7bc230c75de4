/*
 * cuda/layout.h: how a weight matrix is laid out in device memory, and the
 * host-side packing into that layout. Header-only plain C (static inline), so
 * the host-only test (tests/test-cuda-layout.c) runs it on machines with no
 * CUDA at all.
 *
 * Choice: blocks stay byte-for-byte as in GGUF; only rows are padded so that
 * each row starts on a 16-byte boundary (row_stride = round_up(row_bytes, 16),
 * pad bytes zero). A kernel then streams a row with aligned 16-byte loads
 * (uint4) into shared memory, coalesced across the warp, reading every weight
 * byte once, and unpacks blocks from there. Blocks are only 2-byte aligned
 * inside a row (Q4_0 is 18 bytes); the unpackers read u8/u16 from shared.
 * Real models' rows are almost always 16-byte multiples already (K = 4096,
 * Q4_0: 128 * 18 = 2304 bytes), so the upload is then a straight copy.
 *
 * Rejected for now: a struct-of-arrays repack (scales apart from quants) makes
 * the quants 16-byte aligned for direct register unpacking, but needs a
 * second layout per type in every kernel (matvec, MMA tiles, embed); worth
 * trying in bench/ if the matvec stays below ~80 % of copy bandwidth.
 *
 * Decode granularity: a "unit" is 32 consecutive elements of a row (a Q4_0
 * block, an eighth of a K-quant super-block, 32 halves of F16). Every kernel
 * unpacks whole units, so K must be a multiple of 32 (and of the block size).
 */
#ifndef HEARTH_CUDA_LAYOUT_H
#define HEARTH_CUDA_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hearth.h"

struct cuda_wlayout {
    hearth_dtype type;
    int64_t n_rows;     /* N */
    int64_t k;          /* K: elements per row */
    int64_t blk_elems;  /* elements per block (32 for F32/F16/BF16: a unit) */
    int64_t blk_bytes;  /* bytes per block */
    int64_t n_blocks;   /* blocks per row: k / blk_elems */
    size_t row_bytes;   /* GGUF bytes of one row */
    size_t row_stride;  /* device bytes between rows: round_up(row_bytes, 16) */
    size_t bytes;       /* n_rows * row_stride */
};

/*
 * Block geometry of the types the CUDA kernels decode; false for any other.
 * Float types are treated as 32-element "blocks" so the kernels see one
 * uniform unit of 32 elements.
 */
static inline bool cuda_type_geom(hearth_dtype t, int64_t *blk_elems, int64_t *blk_bytes)
{
    int64_t e = 0, b = 0;
    switch (t) {
    case HEARTH_DTYPE_F32: e = 32; b = 128; break;
    case HEARTH_DTYPE_F16: e = 32; b = 64; break;
    case HEARTH_DTYPE_BF16: e = 32; b = 64; break;
    case HEARTH_DTYPE_Q4_0: e = 32; b = 18; break;
    case HEARTH_DTYPE_Q4_1: e = 32; b = 20; break;
    case HEARTH_DTYPE_Q5_0: e = 32; b = 22; break;
    case HEARTH_DTYPE_Q5_1: e = 32; b = 24; break;
    case HEARTH_DTYPE_Q8_0: e = 32; b = 34; break;
    case HEARTH_DTYPE_Q2_K: e = 256; b = 84; break;
    case HEARTH_DTYPE_Q3_K: e = 256; b = 110; break;
    case HEARTH_DTYPE_Q4_K: e = 256; b = 144; break;
    case HEARTH_DTYPE_Q5_K: e = 256; b = 176; break;
    case HEARTH_DTYPE_Q6_K: e = 256; b = 210; break;
    case HEARTH_DTYPE_IQ4_NL: e = 32; b = 18; break;
    case HEARTH_DTYPE_IQ4_XS: e = 256; b = 136; break;
    case HEARTH_DTYPE_IQ2_XXS: e = 256; b = 66; break;
    case HEARTH_DTYPE_IQ2_XS: e = 256; b = 74; break;
    case HEARTH_DTYPE_IQ2_S: e = 256; b = 82; break;
    case HEARTH_DTYPE_IQ3_XXS: e = 256; b = 98; break;
    case HEARTH_DTYPE_IQ3_S: e = 256; b = 110; break;
    case HEARTH_DTYPE_IQ1_S: e = 256; b = 50; break;
    case HEARTH_DTYPE_IQ1_M: e = 256; b = 56; break;
    default: return false;
    }
    if (blk_elems)
        *blk_elems = e;
    if (blk_bytes)
        *blk_bytes = b;
    return true;
}

/*
 * Fills *l for an N x K weight of type t. false (l untouched) for a type
 * without kernels, K not a positive multiple of the block size, N < 1, or a
 * size that overflows.
 */
static inline bool cuda_wlayout_init(struct cuda_wlayout *l, hearth_dtype t, int64_t n_rows,
                                     int64_t k)
{
    int64_t be, bb;
    if (!cuda_type_geom(t, &be, &bb) || n_rows < 1 || k < 1 || k % be != 0)
        return false;
    if (k > ((int64_t)1 << 40) || n_rows > ((int64_t)1 << 40))
        return false;
    size_t row_bytes = (size_t)(k / be) * (size_t)bb;
    size_t stride = (row_bytes + 15u) & ~(size_t)15u;
    if ((size_t)n_rows > SIZE_MAX / stride)
        return false;
    l->type = t;
    l->n_rows = n_rows;
    l->k = k;
    l->blk_elems = be;
    l->blk_bytes = bb;
    l->n_blocks = k / be;
    l->row_bytes = row_bytes;
    l->row_stride = stride;
    l->bytes = (size_t)n_rows * stride;
    return true;
}

/*
 * Packs rows [r0, r0 + n) of GGUF data src (row r at src + r * row_bytes) into
 * dst, which receives those n rows in the layout (dst row 0 = row r0).
 */
static inline void cuda_wlayout_pack(const struct cuda_wlayout *l, const void *src, int64_t r0,
                                     int64_t n, void *dst)
{
    const uint8_t *s = (const uint8_t *)src + (size_t)r0 * l->row_bytes;
    uint8_t *d = (uint8_t *)dst;
    for (int64_t r = 0; r < n; r++) {
        memcpy(d + (size_t)r * l->row_stride, s + (size_t)r * l->row_bytes, l->row_bytes);
        memset(d + (size_t)r * l->row_stride + l->row_bytes, 0, l->row_stride - l->row_bytes);
    }
}

/* The inverse: n_rows layout rows of src back to GGUF rows in dst. */
static inline void cuda_wlayout_unpack(const struct cuda_wlayout *l, const void *src, void *dst)
{
    for (int64_t r = 0; r < l->n_rows; r++)
        memcpy((uint8_t *)dst + (size_t)r * l->row_bytes,
               (const uint8_t *)src + (size_t)r * l->row_stride, l->row_bytes);
}

/*
 * Matvec tile geometry (matvec.cu): a warp streams its rows in tiles of
 * tile_elems elements, the smallest multiple of 1024 (one unit per lane)
 * that spans whole blocks on a 16-byte boundary, so the tile's loads are
 * aligned uint4s and its units split evenly over 32 lanes.
 */
static inline int64_t cuda_matvec_tile_elems(int64_t blk_elems, int64_t blk_bytes)
{
    int64_t g = blk_bytes, b = 16; /* gcd(blk_bytes, 16) */
    while (b) {
        int64_t t = g % b;
        g = b;
        b = t;
    }
    int64_t span = (16 / g) * blk_elems; /* elements of the shortest 16-byte-aligned run */
    return span <= 1024 ? 1024 : (span + 1023) / 1024 * 1024;
}

#endif
