/*
 * kv-quant: the compressed formats of one KV-cache head vector.
 *
 * A KV cache row (one position, one layer) holds n_head_kv head vectors of
 * head_dim values each; every format here encodes one head vector into
 * kvq_head_bytes(type, head_dim) bytes and back, so a row is n_head_kv such
 * pieces side by side and K and V may use different types.
 *
 *   f16   head_dim IEEE halves.
 *   q8_0  ggml Q8_0 blocks (32 values, one f16 scale), byte-identical to quant.h's.
 *   q4_0  ggml Q4_0 blocks (32 values, one f16 scale), byte-identical to quant.h's.
 *   rot4  x -> R x (R: randomized Hadamard, kv-rotate.c), then per power-of-two
 *   rot3  piece of R x one f16 scale and each coordinate's index into the
 *         16- or 8-level Lloyd-Max codebook of N(0,1) (kv-codebook.c), bit-packed.
 *
 * Why rotate: real keys carry a few channels tens of times larger than the
 * rest; a block format spends its scale on them and flushes the neighbours to
 * zero, while R spreads every channel over all coordinates, which then look
 * Gaussian with one common variance, the case Lloyd-Max codebooks are optimal
 * for. Scores need no inverse rotation (q.k = (Rq).(Rk), R orthogonal); values
 * are accumulated in the rotated domain and rotated back once per output.
 *
 * Supported head_dim: f16 any width up to KVQ_MAX_HEAD_DIM; the others
 * multiples of 32 up to KVQ_MAX_HEAD_DIM (the block formats need
 * 32 | head_dim; the rotated ones split a
 * non-power-of-two head_dim into power-of-two pieces, each of at least 32).
 */
#ifndef HEARTH_KV_QUANT_H
#define HEARTH_KV_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

enum kvq_type {
    KVQ_F16 = 0,
    KVQ_Q8_0,
    KVQ_Q4_0,
    KVQ_ROT4,
    KVQ_ROT3,
    KVQ_TYPE_COUNT
};

#define KVQ_MAX_HEAD_DIM 512
/* head_dim / 32 <= 16 has at most 4 set bits, so at most 4 power-of-two pieces */
#define KVQ_MAX_PIECES 5

/* ---- types (kv-quant.c) ------------------------------------------------------ */

/* Lower-case name ("f16", "q8_0", "q4_0", "rot4", "rot3"); "?" for an unknown value. */
const char *kvq_type_name(enum kvq_type t);
/*
 * Parses a --kv-type value, case-insensitive. HEARTH_ERR_INVALID_ARG with a
 * message listing the valid names if it is none of them.
 */
hearth_status kvq_type_from_name(const char *name, enum kvq_type *out);
/*
 * "rot4" when K and V share a type, else "K q8_0, V rot4" (for summaries);
 * ids out of range print as "?".
 */
void kvq_pair_name(int k_type, int v_type, char *buf, size_t size);
/* HEARTH_ERR_UNSUPPORTED (with a message) unless t is a type and head_dim a supported size. */
hearth_status kvq_check(enum kvq_type t, int head_dim);
/* Bytes of one encoded head vector; 0 if kvq_check fails. */
size_t kvq_head_bytes(enum kvq_type t, int head_dim);
/* Stored bits per value including scales: 8 * kvq_head_bytes / head_dim. */
double kvq_bits_per_value(enum kvq_type t, int head_dim);
/* true for the types that need a struct kvq_rot (rot4, rot3). */
bool kvq_is_rotated(enum kvq_type t);
/* Codebook bits of a rotated type (4 or 3); 0 for the others. */
int kvq_rot_bits(enum kvq_type t);

/* ---- rotation (kv-rotate.c) -------------------------------------------------- */

/*
 * R = blockdiag(H_L1, H_L2, ...) D / per-piece sqrt(L): D a random ±1 diagonal
 * of head_dim entries, H_L the L x L Sylvester-Hadamard matrix, head_dim split
 * into its binary digits times 32 (largest first: 96 = 64 + 32). For the
 * power-of-two head dims of every supported model this is one piece.
 */
struct kvq_rot {
    int d;                          /* head_dim */
    int n_piece;
    int piece_off[KVQ_MAX_PIECES];  /* first coordinate of each piece */
    int piece_len[KVQ_MAX_PIECES];  /* power of two >= 32 */
    float sign[KVQ_MAX_HEAD_DIM];   /* [d] the diagonal of D, each ±1 */
};

/*
 * 64-bit FNV-1a of n bytes: a model seed from something that identifies the
 * model (its name, or the bytes of a tensor), so that a cache written for one
 * model is never decoded with another's rotation by accident of equal seeds.
 */
uint64_t kvq_model_seed(const void *bytes, size_t n);
/*
 * Fills r for head_dim and layer: the signs are the bits of xoshiro256**
 * (rng.h) seeded with splitmix64(model_seed ^ splitmix64(layer + 1)), so each
 * layer of each model has its own D and the same inputs always give the same R.
 * HEARTH_ERR_UNSUPPORTED if head_dim is not a supported size.
 */
hearth_status kvq_rot_init(struct kvq_rot *r, int head_dim, uint64_t model_seed,
                           uint32_t layer);
/* y[d] = R x[d]; y may equal x. O(d log d). */
void kvq_rot_forward(const struct kvq_rot *r, const float *x, float *y);
/* x[d] = R^T y[d]; x may equal y. */
void kvq_rot_inverse(const struct kvq_rot *r, const float *y, float *x);
/* In-place unnormalized Walsh-Hadamard transform of x[n], n a power of two. */
void kvq_fwht(float *x, int n);

/* ---- balance (kv-balance.c) ------------------------------------------------- */

/*
 * QK-norm weights for a layer whose K cache is rotated codes: qn_out = qn / s,
 * kn_out = kn * s with s_c = ((qn_c^2 + qn_p^2) / (kn_c^2 + kn_p^2))^(1/4) over
 * each RoPE pair (c, p) (neox: halves of n_rot; else adjacent; channels past
 * n_rot alone), scaled to a geometric mean of 1 and clamped to [1/8, 8]. Every
 * exact score q.k is unchanged; the codes' error lands where the queries look
 * least (kv-balance.c says why this s is the best one).
 */
void kvq_qk_balance(const float *qn, const float *kn, int d, int n_rot, bool neox,
                    float *qn_out, float *kn_out);
/* The channel RoPE pairs with channel c (neox: halves of n_rot; else adjacent), or c past n_rot. */
int kvq_rope_pair(int c, int n_rot, bool neox);

/* ---- codebooks (kv-codebook.c) ----------------------------------------------- */

/* A scalar quantizer for N(0,1): n sorted levels and the n-1 midpoints between them. */
struct kvq_codebook {
    int bits;
    int n;               /* 1 << bits */
    const float *level;  /* [n] ascending, symmetric about 0 */
    const float *thresh; /* [n - 1] thresh[i] = (level[i] + level[i+1]) / 2 */
    double mse;          /* E[(x - Q(x))^2] for x ~ N(0,1) */
};

/* The stored Lloyd-Max codebook of 3 or 4 bits; NULL for other bits. */
const struct kvq_codebook *kvq_codebook_get(int bits);
/*
 * Index of the level nearest to x (ties to the lower level): a binary search
 * over the sorted thresholds, the count of thresholds below x built from its
 * high bit down. Inline because the encoder calls it ~11 times per coordinate
 * (kv-quant.c best_scale).
 */
static inline int kvq_codebook_index(const struct kvq_codebook *cb, float x)
{
    int idx = 0;
    for (int step = cb->n >> 1; step > 0; step >>= 1)
        idx += x > cb->thresh[idx + step - 1] ? step : 0;
    return idx;
}
/*
 * Runs the Lloyd algorithm on the exact N(0,1) density for n levels (2..64)
 * from uniformly spaced levels until no level moves more than 1e-13 (or
 * max_iter rounds), writes the ascending levels to level[n] and returns the
 * resulting MSE (negative if n is out of range). Centroids and the MSE use
 * closed forms in the normal pdf and erf, so no sampling noise enters.
 */
double kvq_lloyd_max_gauss(int n, int max_iter, double *level);

/* ---- encode / decode (kv-quant.c) -------------------------------------------- */

/*
 * x[head_dim] -> dst (kvq_head_bytes(t, head_dim) bytes). rot: the layer's
 * rotation for rotated types (rot->d == head_dim), ignored (may be NULL) for
 * the others. The caller has checked kvq_check(t, head_dim).
 *
 * Rotated layout: n_piece f16 scales, then the codes of all d coordinates of
 * R x in order; 4 bits: two per byte, even coordinate in the low nibble;
 * 3 bits: each 8 coordinates as one 24-bit little-endian word, coordinate i
 * of the 8 at bits 3i..3i+2. Coordinate value = scale[piece] * level[code].
 */
void kvq_encode(enum kvq_type t, const struct kvq_rot *rot, int head_dim, const float *x,
                void *dst);
/* src -> y[head_dim] in the original (unrotated) domain. */
void kvq_decode(enum kvq_type t, const struct kvq_rot *rot, int head_dim, const void *src,
                float *y);
/*
 * Rotated types only: src -> y[head_dim] = R x̂, the rotated-domain values
 * (what the attention kernels consume without the inverse transform).
 */
void kvq_decode_rotated(enum kvq_type t, const struct kvq_rot *rot, const void *src, float *y);

#endif
