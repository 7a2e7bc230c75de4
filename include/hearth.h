/*
 * hearth.h: the one public header of hearth, a GPU inference engine for
 * open-weight language models in GGUF files.
 *
 * Conventions (see docs/design.md):
 *  - Every function that can fail returns a hearth_status: 0 is OK, errors are
 *    negative. The human-readable detail (file, byte offset or field, and what
 *    was expected) is kept in a thread-local buffer read by hearth_last_error().
 *  - Opaque handles come in _create/_destroy or _open/_close pairs; the caller
 *    owns what a _create returns and nothing else.
 *  - Nothing in the library calls exit() or abort() on bad input.
 */
#ifndef HEARTH_H
#define HEARTH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HEARTH_VERSION_MAJOR 0
#define HEARTH_VERSION_MINOR 1
#define HEARTH_VERSION_PATCH 0

/* The status list, written once. X(NAME, value, "message"). */
#define HEARTH_STATUS_LIST(X)                                                    \
    X(OK, 0, "ok")                                                               \
    X(ERR_INVALID_ARG, -1, "invalid argument")                                   \
    X(ERR_NO_MEMORY, -2, "out of host memory")                                   \
    X(ERR_DEVICE_OOM, -3, "out of device memory")                                \
    X(ERR_IO, -4, "input/output error")                                          \
    X(ERR_BAD_FILE, -5, "malformed model file")                                  \
    X(ERR_UNSUPPORTED, -6, "unsupported type, architecture or operation")        \
    X(ERR_DEVICE_LOST, -7, "device lost")                                        \
    X(ERR_NOT_FOUND, -8, "not found")                                            \
    X(ERR_BACKEND, -9, "backend error")                                          \
    X(ERR_CANCELLED, -10, "cancelled")                                           \
    X(ERR_INTERNAL, -11, "internal error")

typedef enum hearth_status {
#define HEARTH_X_ENUM(name, value, msg) HEARTH_##name = value,
    HEARTH_STATUS_LIST(HEARTH_X_ENUM)
#undef HEARTH_X_ENUM
} hearth_status;

/* "HEARTH_ERR_BAD_FILE" for HEARTH_ERR_BAD_FILE; "HEARTH_UNKNOWN" otherwise. */
const char *hearth_status_name(hearth_status st);
/* A short generic description of a status ("malformed model file"). */
const char *hearth_status_str(hearth_status st);
/*
 * The detailed message of the most recent failure on this thread, for example
 * "model.gguf: offset 1234: tensor 'blk.0.attn_q.weight': type id 77 is not a
 * known ggml type". Never NULL; "" when nothing failed yet.
 */
const char *hearth_last_error(void);

/*
 * Element types, numbered as ggml numbers them so that a GGUF tensor's type id
 * is a hearth_dtype. Gaps are ids that ggml retired.
 */
typedef enum hearth_dtype {
    HEARTH_DTYPE_F32 = 0,
    HEARTH_DTYPE_F16 = 1,
    HEARTH_DTYPE_Q4_0 = 2,
    HEARTH_DTYPE_Q4_1 = 3,
    HEARTH_DTYPE_Q5_0 = 6,
    HEARTH_DTYPE_Q5_1 = 7,
    HEARTH_DTYPE_Q8_0 = 8,
    HEARTH_DTYPE_Q8_1 = 9,
    HEARTH_DTYPE_Q2_K = 10,
    HEARTH_DTYPE_Q3_K = 11,
    HEARTH_DTYPE_Q4_K = 12,
    HEARTH_DTYPE_Q5_K = 13,
    HEARTH_DTYPE_Q6_K = 14,
    HEARTH_DTYPE_Q8_K = 15,
    HEARTH_DTYPE_IQ2_XXS = 16,
    HEARTH_DTYPE_IQ2_XS = 17,
    HEARTH_DTYPE_IQ3_XXS = 18,
    HEARTH_DTYPE_IQ1_S = 19,
    HEARTH_DTYPE_IQ4_NL = 20,
    HEARTH_DTYPE_IQ3_S = 21,
    HEARTH_DTYPE_IQ2_S = 22,
    HEARTH_DTYPE_IQ4_XS = 23,
    HEARTH_DTYPE_I8 = 24,
    HEARTH_DTYPE_I16 = 25,
    HEARTH_DTYPE_I32 = 26,
    HEARTH_DTYPE_I64 = 27,
    HEARTH_DTYPE_F64 = 28,
    HEARTH_DTYPE_IQ1_M = 29,
    HEARTH_DTYPE_BF16 = 30,
    HEARTH_DTYPE_TQ1_0 = 34,
    HEARTH_DTYPE_TQ2_0 = 35,
    HEARTH_DTYPE_MXFP4 = 39,
    HEARTH_DTYPE_NVFP4 = 40,
    HEARTH_DTYPE_Q1_0 = 41,
    HEARTH_DTYPE_Q2_0 = 42,
    HEARTH_DTYPE_COUNT = 43 /* one past the last id ggml knows */
} hearth_dtype;

/* "Q4_K" for HEARTH_DTYPE_Q4_K; NULL for an id that is no type. */
const char *hearth_dtype_name(hearth_dtype t);

#ifdef __cplusplus
}
#endif
#endif /* HEARTH_H */
