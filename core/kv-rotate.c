/*
 * kv-rotate: the randomized Hadamard transform R x = H D x / sqrt(L) of the
 * rotated KV types (declared in kv-quant.h).
 *
 * D flips the sign of each coordinate at random, H (Sylvester order, entries
 * ±1) then mixes every coordinate into every other: after R, a vector's energy
 * is spread evenly over all coordinates whatever channels it was concentrated
 * in, and each coordinate is a random-signed sum that is close to Gaussian.
 * H D / sqrt(L) is orthogonal, and H is symmetric with H H = L I, so
 * R^T = D H / sqrt(L): the inverse is the same butterfly followed by D.
 *
 * Seeding: one D per (model, layer): xoshiro256** seeded with
 * splitmix64(model_seed ^ splitmix64(layer + 1)) gives one bit per coordinate.
 * A fixed seed makes caches reproducible across runs; per-layer D keeps one
 * unlucky sign pattern from aligning with the same outlier channels in every
 * layer. K and V of a layer share R (nothing gains from two).
 *
 * Non-power-of-two head_dim (e.g. 96, 80 after rounding to 32): R is block
 * diagonal over the power-of-two pieces of head_dim (largest first), and the
 * codec keeps one scale per piece since pieces may carry unequal energy.
 * Alternatives rejected: a dense random orthogonal matrix (O(d^2) per vector
 * and d^2 floats per layer) and zero-padding to the next power of two (costs
 * stored bits for the padding coordinates).
 */
#include <math.h>
#include <string.h>

#include "err.h"
#include "kv-quant.h"
#include "rng.h"

uint64_t kvq_model_seed(const void *bytes, size_t n)
{
    const unsigned char *p = bytes;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

hearth_status kvq_rot_init(struct kvq_rot *r, int head_dim, uint64_t model_seed, uint32_t layer)
{
    hearth_status st = kvq_check(KVQ_ROT4, head_dim);
    if (st != HEARTH_OK)
        return st;
    memset(r, 0, sizeof *r);
    r->d = head_dim;
    int off = 0;
    for (int len = KVQ_MAX_HEAD_DIM; len >= 32; len >>= 1) {
        if (head_dim - off >= len) {
            HEARTH_ASSERT(r->n_piece < KVQ_MAX_PIECES);
            r->piece_off[r->n_piece] = off;
            r->piece_len[r->n_piece] = len;
            r->n_piece++;
            off += len;
        }
    }
    HEARTH_ASSERT(off == head_dim);
    struct rng g;
    rng_seed(&g, splitmix64(model_seed ^ splitmix64((uint64_t)layer + 1u)));
    for (int i = 0; i < head_dim; i += 64) {
        uint64_t bits = rng_u64(&g);
        for (int j = 0; j < 64 && i + j < head_dim; j++)
            r->sign[i + j] = ((bits >> j) & 1u) ? -1.0f : 1.0f;
    }
    return HEARTH_OK;
}

void kvq_fwht(float *x, int n)
{
    for (int h = 1; h < n; h <<= 1) {
        for (int i = 0; i < n; i += h << 1) {
            for (int j = i; j < i + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
        }
    }
}

void kvq_rot_forward(const struct kvq_rot *r, const float *x, float *y)
{
    for (int i = 0; i < r->d; i++)
        y[i] = x[i] * r->sign[i];
    for (int p = 0; p < r->n_piece; p++) {
        float *yp = y + r->piece_off[p];
        int len = r->piece_len[p];
        kvq_fwht(yp, len);
        float norm = 1.0f / sqrtf((float)len);
        for (int i = 0; i < len; i++)
            yp[i] *= norm;
    }
}

void kvq_rot_inverse(const struct kvq_rot *r, const float *y, float *x)
{
    if (x != y)
        memcpy(x, y, (size_t)r->d * sizeof *x);
    for (int p = 0; p < r->n_piece; p++) {
        float *xp = x + r->piece_off[p];
        int len = r->piece_len[p];
        kvq_fwht(xp, len);
        float norm = 1.0f / sqrtf((float)len);
        for (int i = 0; i < len; i++)
            xp[i] *= norm;
    }
    for (int i = 0; i < r->d; i++)
        x[i] *= r->sign[i];
}
