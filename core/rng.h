/*
 * rng: a small seeded pseudo-random generator for sampling (xoshiro256**).
 *
 * Bit-exact on every platform: only 64-bit integer arithmetic, no libc rand(),
 * no floating point in the state update. The 256-bit state is filled from the
 * 64-bit seed with splitmix64, the seeding its authors recommend, so that
 * nearby seeds (1, 2, 3) still give unrelated streams and no seed can produce
 * the all-zero state. Alternatives rejected: PCG32 (32-bit output needs two
 * draws for a 53-bit double), the C library's rand() (differs between libcs).
 */
#ifndef HEARTH_RNG_H
#define HEARTH_RNG_H

#include <stdint.h>

struct rng {
    uint64_t s[4]; /* never all zero */
};

/* Seeds the state from a 64-bit value; every seed (including 0) is valid. */
void rng_seed(struct rng *r, uint64_t seed);
/* The next 64 random bits. */
uint64_t rng_u64(struct rng *r);
/* Uniform double in [0, 1) with 53 random bits (never 1.0). */
double rng_uniform(struct rng *r);

#endif
