/*
 * quant: the block formats of every supported element type.
 *
 * A type is described by one quant_traits record: how many elements a block
 * holds, how many bytes it takes, the reference dequantizer (to_float), the
 * quantizer (from_float: for K-quants a real search over scales and mins, not
 * one max-abs scale), and the activation format its CPU dot product expects
 * (vec_dot_type). The reference routines here are plain C and are the ground
 * truth every SIMD, CUDA and Vulkan kernel is tested against; speed lives in
 * core/cpu/.
 *
 * All byte layouts follow ggml's, bit for bit (../shared/docs facts sheet, §3),
 * so files written by llama.cpp's quantizer read here unchanged and the other
 * way round.
 */
#ifndef HEARTH_QUANT_H
#define HEARTH_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

/* n is a multiple of the block size; src holds n/blck blocks. */
typedef void (*quant_to_float_fn)(const void *src, float *dst, int64_t n);
/* n is a multiple of the block size; dst receives n/blck blocks. */
typedef void (*quant_from_float_fn)(const float *src, void *dst, int64_t n);

struct quant_traits {
    hearth_dtype type;
    const char *name;              /* "Q4_K" */
    int64_t blck;                  /* elements per block (1 for F32/F16/BF16) */
    size_t block_bytes;            /* bytes per block */
    bool is_quantized;
    quant_to_float_fn to_float;    /* NULL: hearth cannot compute with this type */
    quant_from_float_fn from_float;/* NULL: hearth cannot write this type */
    hearth_dtype vec_dot_type;     /* activation format of the CPU dot product */
};

/*
 * Traits of a type id; NULL for an id that is no type (retired or out of range).
 * A known type hearth cannot compute with (IQ2_XXS, say) has to_float == NULL, so
 * the reader can still size its tensors and `inspect` can list them.
 */
const struct quant_traits *quant_get(hearth_dtype t);
/* Bytes of a row of n elements. false if the id is unknown or n is not a multiple of blck. */
bool quant_row_bytes(hearth_dtype t, uint64_t n, uint64_t *bytes);
/* Looks a type up by name, case-insensitive ("q4_k", "Q4_K", "bf16"); false if none. */
bool quant_from_name(const char *name, hearth_dtype *out);

#endif
