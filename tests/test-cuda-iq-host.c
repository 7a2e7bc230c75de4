/*
 * test-cuda-iq-host: the CUDA decoders of the lattice quant types (IQ2_XXS,
 * IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M) run on the host and checked
 * bit for bit against the CPU's reference to_float.
 *
 * cuda/dequant-iq.cuh is plain C that nvcc also compiles as the device code
 * of dq<T>::unit (cuda/dequant.cuh), so this runs the very text the kernels
 * run, on any machine, with or without CUDA. Only the two leaf loads differ
 * on the device (f16 cvt and a 16-bit load, both exact; see the header).
 *
 * Inputs: random block bytes with the f16 scale drawn from zero, -0, the
 * smallest subnormal, and random finite values of both signs (every other
 * bit pattern is legal in these formats), plus blocks from synth_fill (what
 * test-cuda-ops uploads to the GPU). Every unit of every block is compared as
 * float bits, so a -0 / +0 mix-up fails too. Values are exact products (no
 * rounding anywhere), so the comparison is bit-exact by construction, not by
 * luck of the operation order.
 */
#include <stdio.h>
#include <string.h>

#include "../cuda/dequant-iq.cuh"
#include "../cuda/layout.h"
#include "quant.h"
#include "rng.h"
#include "synth.h"
#include "test.h"

#define N_RANDOM 512 /* random blocks per type */
#define N_SYNTH 256  /* synth_fill blocks per type */

static const hearth_dtype iq_types[] = {
    HEARTH_DTYPE_IQ2_XXS, HEARTH_DTYPE_IQ2_XS, HEARTH_DTYPE_IQ2_S, HEARTH_DTYPE_IQ3_XXS,
    HEARTH_DTYPE_IQ3_S,   HEARTH_DTYPE_IQ1_S,  HEARTH_DTYPE_IQ1_M};
#define N_IQ ((int)(sizeof iq_types / sizeof iq_types[0]))

/* The 32 floats of unit u of the block at b, by the CUDA decoder for t. */
static bool cuda_unit(hearth_dtype t, const uint8_t *b, int u, float *y)
{
    switch (t) {
    case HEARTH_DTYPE_IQ2_XXS: cuda_iq_unit_iq2xxs(b, u, cuda_iq_grid_iq2xxs, y); return true;
    case HEARTH_DTYPE_IQ2_XS: cuda_iq_unit_iq2xs(b, u, cuda_iq_grid_iq2xs, y); return true;
    case HEARTH_DTYPE_IQ2_S: cuda_iq_unit_iq2s(b, u, cuda_iq_grid_iq2s, y); return true;
    case HEARTH_DTYPE_IQ3_XXS: cuda_iq_unit_iq3xxs(b, u, cuda_iq_grid_iq3xxs, y); return true;
    case HEARTH_DTYPE_IQ3_S: cuda_iq_unit_iq3s(b, u, cuda_iq_grid_iq3s, y); return true;
    case HEARTH_DTYPE_IQ1_S: cuda_iq_unit_iq1s(b, u, cuda_iq_grid_iq1s, y); return true;
    case HEARTH_DTYPE_IQ1_M: cuda_iq_unit_iq1m(b, u, cuda_iq_grid_iq1s, y); return true;
    default: return false;
    }
}

/*
 * Writes the f16 super-scale h into block b: at byte 0 for every type but
 * IQ1_M, whose scale nibbles are the top nibbles of its four u16 scale words.
 */
static void set_scale(hearth_dtype t, uint8_t *b, uint16_t h)
{
    if (t != HEARTH_DTYPE_IQ1_M) {
        b[0] = (uint8_t)(h & 0xffu);
        b[1] = (uint8_t)(h >> 8);
        return;
    }
    for (int k = 0; k < 4; k++) {
        uint8_t *hi = b + 48 + 2 * k + 1;
        *hi = (uint8_t)((*hi & 0x0fu) | (((h >> (4 * k)) & 15u) << 4));
    }
}

/* A scale that keeps every value finite: special values 1 time in 8 each. */
static uint16_t pick_scale(void)
{
    uint64_t r = test_rng_u64();
    switch (r & 7u) {
    case 0: return 0x0000;          /* zero */
    case 1: return 0x8000;          /* -0 */
    case 2: return 0x0001;          /* smallest subnormal */
    default: break;
    }
    uint16_t h = (uint16_t)(r >> 16);
    if (((h >> 10) & 31u) == 31u)   /* inf / nan exponent: drop a bit of it */
        h = (uint16_t)(h & ~0x4000u);
    return h;
}

/*
 * Decodes n blocks of type t with the CPU to_float and the CUDA units and
 * compares bits; counts negative and nonzero values into *neg, *nz so the
 * caller can see the inputs exercised signs. Returns mismatching elements.
 */
static int compare_blocks(hearth_dtype t, const uint8_t *blocks, int n, const char *what,
                          int *neg, int *nz)
{
    const struct quant_traits *q = quant_get(t);
    float ref[256], y[256];
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const uint8_t *b = blocks + (size_t)i * q->block_bytes;
        q->to_float(b, ref, 256);
        for (int u = 0; u < 8; u++)
            cuda_unit(t, b, u, y + 32 * u);
        for (int e = 0; e < 256; e++) {
            uint32_t a, c;
            memcpy(&a, &ref[e], 4);
            memcpy(&c, &y[e], 4);
            *neg += y[e] < 0.0f;
            *nz += y[e] != 0.0f;
            if (a != c && bad++ < 3)
                TEST_FAIL_AT("%s %s block %d elem %d (unit %d): cpu %.9g (0x%08x) cuda %.9g "
                             "(0x%08x)", hearth_dtype_name(t), what, i, e, e / 32,
                             (double)ref[e], a, (double)y[e], c);
        }
    }
    return bad;
}

/*
 * cuda_small_i2f (the decoders' int-to-float without a conversion instruction)
 * equals the conversion bit for bit over its whole range, |q| < 2^22; the
 * device form is the same integer add and float subtraction.
 */
TEST(small_i2f_is_exact)
{
    long bad = 0;
    for (int q = -(1 << 22) + 1; q < (1 << 22); q++) {
        float a = cuda_small_i2f(q), b = (float)q;
        if (memcmp(&a, &b, sizeof a) != 0 && bad++ < 3)
            TEST_FAIL_AT("cuda_small_i2f(%d) = %a, (float) gives %a", q, (double)a, (double)b);
    }
    CHECK_MSG(bad == 0, "%ld of 2^23 values differ", bad);
}

TEST(geometry_matches_cpu_traits)
{
    for (int i = 0; i < N_IQ; i++) {
        const struct quant_traits *q = quant_get(iq_types[i]);
        REQUIRE(q != NULL);
        int64_t be = 0, bb = 0;
        CHECK_MSG(cuda_type_geom(iq_types[i], &be, &bb), "%s", hearth_dtype_name(iq_types[i]));
        CHECK_INT_EQ(be, q->blck);
        CHECK_INT_EQ(bb, q->block_bytes);
        CHECK_INT_EQ(be, 256);
        CHECK_INT_EQ(bb % 2, 0); /* dq<T> reads u16 fields: blocks must stay 2-byte aligned */
    }
}

TEST(units_match_cpu_on_random_blocks)
{
    test_rng_seed(0x1c0da1ull);
    for (int i = 0; i < N_IQ; i++) {
        hearth_dtype t = iq_types[i];
        const struct quant_traits *q = quant_get(t);
        REQUIRE(q != NULL);
        if (!q->to_float) {
            TEST_FAIL_AT("%s: the CPU has no to_float to compare with (core/quant-iq2.c)",
                         hearth_dtype_name(t));
            continue;
        }
        static uint8_t blocks[N_RANDOM * 110];
        REQUIRE(q->block_bytes <= 110);
        for (int n = 0; n < N_RANDOM; n++) {
            uint8_t *b = blocks + (size_t)n * q->block_bytes;
            for (size_t k = 0; k < q->block_bytes; k++)
                b[k] = (uint8_t)(test_rng_u64() >> 56);
            set_scale(t, b, pick_scale());
        }
        int neg = 0, nz = 0;
        int bad = compare_blocks(t, blocks, N_RANDOM, "random", &neg, &nz);
        CHECK_MSG(bad == 0, "%s: %d of %d elements differ", hearth_dtype_name(t), bad,
                  N_RANDOM * 256);
        /* the inputs exercise both signs and nonzero scales (not a vacuous pass) */
        CHECK_MSG(neg > N_RANDOM * 256 / 8 && nz > N_RANDOM * 256 / 2, "%s: %d negative, %d "
                  "nonzero", hearth_dtype_name(t), neg, nz);
    }
}

TEST(units_match_cpu_on_synth_blocks)
{
    for (int i = 0; i < N_IQ; i++) {
        hearth_dtype t = iq_types[i];
        const struct quant_traits *q = quant_get(t);
        REQUIRE(q != NULL);
        static uint8_t blocks[N_SYNTH * 110];
        struct rng r;
        rng_seed(&r, 77u + (uint64_t)i);
        hearth_status st = synth_fill(t, N_SYNTH, 0.02f, &r, blocks);
        if (st != HEARTH_OK || !q->to_float) {
            TEST_FAIL_AT("%s: synth_fill -> %s (%s); to_float %s", hearth_dtype_name(t),
                         hearth_status_name(st), hearth_last_error(),
                         q->to_float ? "present" : "missing");
            continue;
        }
        int neg = 0, nz = 0;
        int bad = compare_blocks(t, blocks, N_SYNTH, "synth", &neg, &nz);
        CHECK_MSG(bad == 0, "%s: %d of %d elements differ", hearth_dtype_name(t), bad,
                  N_SYNTH * 256);
        CHECK_MSG(neg > 0 && nz > N_SYNTH * 256 / 2, "%s: %d negative, %d nonzero",
                  hearth_dtype_name(t), neg, nz);
    }
}

TEST_MAIN(TEST_CASE(small_i2f_is_exact), TEST_CASE(geometry_matches_cpu_traits), TEST_CASE(units_match_cpu_on_random_blocks),
          TEST_CASE(units_match_cpu_on_synth_blocks))
