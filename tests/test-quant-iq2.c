/*
 * test-quant-iq2: the lattice quant types IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS,
 * IQ3_S, IQ1_S and IQ1_M on the CPU.
 *
 * - grids: FNV-1a 64 of each grid table's bytes in entry order equals the
 *   value core/iq-grids.inc's comment gives (the gguf package's tables), and
 *   the ksigns table is the 7 stored bits plus even parity.
 * - to_float: equals, bit for bit, the floats the gguf package (the format's
 *   reference reader) dequantized tests/data/iq-vectors.bin's blocks to
 *   (scripts/gen-iq-vectors.py; layout below). Bit-exact is possible because
 *   quant-iq2.c does the reader's float32 operations in its order.
 * - dot: scalar and AVX2 kernels against the float64 dot of to_float(row)
 *   and the dequantized Q8_K activations, rows of 1, 2 and 7 super-blocks
 *   of random bytes with sane f16 scales, at odd byte offsets. Bound: the
 *   kernels form an exact integer sum per super-block and round only
 *   d_w * d_a * c, (float)isum, the product and a running sum of <= 7 terms;
 *   to_float rounds each weight 2-3 times. Each is a few float epsilons
 *   relative to sum|w a|, so 32 FLT_EPSILON * sum|w a| has a wide margin
 *   yet is ~100x below the smallest per-element term a wrong sign or index
 *   would add (a single term averages sum|w a| / 1792 at 7 super-blocks).
 *   dot_rows and dot_tile must equal dot exactly.
 * - tile_rows_shapes: dot_tile with 1, 2, 7 and 64 tokens (AVX2 works in
 *   groups of 8 and chunks of 16 super-blocks: rows of 3 and 17 super-blocks
 *   cross both edges), odd output and byte strides, and dot_rows with 1..5
 *   rows, equal dot bit for bit (every kernel forms the same exact integer sum
 *   per super-block and does the same float operations on it, see
 *   dot-iq-avx2.c), and write no output slot outside their shape.
 * - kernels_get: every ISA hands out a complete kernel set with Q8_K
 *   activations, natively AVX2 where the CPU has it.
 *
 * iq-vectors.bin: "IQV1", u32 ntypes, then per type u32 type id, u32
 * nblocks, u32 block_bytes, the blocks, nblocks * 256 f32 (all little-endian).
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/dot-internal.h"
#include "f16.h"
#include "iq-grids.h"
#include "quant.h"
#include "test.h"

static const hearth_dtype iq_types[] = {
    HEARTH_DTYPE_IQ2_XXS, HEARTH_DTYPE_IQ2_XS, HEARTH_DTYPE_IQ2_S, HEARTH_DTYPE_IQ3_XXS,
    HEARTH_DTYPE_IQ3_S,   HEARTH_DTYPE_IQ1_S,  HEARTH_DTYPE_IQ1_M,
};
#define N_IQ ((int)(sizeof iq_types / sizeof iq_types[0]))

static uint64_t fnv1a64(const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

TEST(grids_checksums)
{
    /* byte order in memory is entry order on a little-endian host (element e in byte e) */
    CHECK(fnv1a64(quant__iq2xxs_grid, sizeof quant__iq2xxs_grid) == 0xbb4ee025b5ac6e8eull);
    CHECK(fnv1a64(quant__iq2xs_grid, sizeof quant__iq2xs_grid) == 0xc9b1ee61e79909bdull);
    CHECK(fnv1a64(quant__iq2s_grid, sizeof quant__iq2s_grid) == 0x123edd38a3b62b90ull);
    CHECK(fnv1a64(quant__iq3xxs_grid, sizeof quant__iq3xxs_grid) == 0xdfa5dc83d6a155d5ull);
    CHECK(fnv1a64(quant__iq3s_grid, sizeof quant__iq3s_grid) == 0xfa37020c25b44829ull);
    CHECK(fnv1a64(quant__iq1s_grid, sizeof quant__iq1s_grid) == 0x6703ed863501ae2eull);
    for (unsigned s = 0; s < 128; s++) {
        unsigned v = quant__iq_ksigns[s];
        CHECK_INT_EQ(v & 127, s);
        CHECK_MSG(__builtin_popcount(v) % 2 == 0, "ksigns[%u] = 0x%02x has odd parity", s, v);
    }
    CHECK_INT_EQ(quant__iq_ksigns[1], 0x81);
    CHECK_INT_EQ(quant__iq_ksigns[3], 0x03);
}

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

TEST(to_float_matches_gguf_py)
{
    const char *path = test_data_path("iq-vectors.bin");
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    static uint8_t buf[1 << 17];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    REQUIRE(len > 8 && len < sizeof buf && memcmp(buf, "IQV1", 4) == 0);
    uint32_t ntypes = rd32(buf + 4);
    CHECK_INT_EQ(ntypes, N_IQ);
    size_t off = 8;
    int seen = 0;
    for (uint32_t t = 0; t < ntypes; t++) {
        REQUIRE(off + 12 <= len);
        uint32_t id = rd32(buf + off), nb = rd32(buf + off + 4), bb = rd32(buf + off + 8);
        off += 12;
        const struct quant_traits *q = quant_get((hearth_dtype)id);
        REQUIRE(q && q->to_float && q->blck == 256 && q->block_bytes == bb);
        REQUIRE(nb > 0 && nb < 64 && off + (size_t)nb * (bb + 1024) <= len);
        for (int i = 0; i < N_IQ; i++)
            seen |= (iq_types[i] == (hearth_dtype)id) << i;
        int64_t n = (int64_t)nb * 256;
        float *out = malloc((size_t)n * sizeof *out);
        uint8_t *odd = malloc((size_t)nb * bb + 1);
        REQUIRE(out && odd);
        memcpy(odd + 1, buf + off, (size_t)nb * bb); /* byte-aligned source, as in a file */
        q->to_float(odd + 1, out, n);
        const uint8_t *ref = buf + off + (size_t)nb * bb;
        int bad = 0;
        for (int64_t e = 0; e < n; e++) {
            float r;
            memcpy(&r, ref + 4 * e, 4);
            if (memcmp(&r, &out[e], 4) != 0 && bad++ < 4)
                CHECK_MSG(0, "%s element %lld: %.9g, gguf-py %.9g", q->name, (long long)e,
                          (double)out[e], (double)r);
        }
        CHECK_MSG(bad == 0, "%s: %d of %lld values differ", q->name, bad, (long long)n);
        off += (size_t)nb * (bb + 1024);
        free(out);
        free(odd);
    }
    CHECK_INT_EQ(off, len);
    CHECK_INT_EQ(seen, (1 << N_IQ) - 1);
}

/* Random blocks with an f16 super-scale in [0.001, 0.1] (IQ1_M's spread over its scale words). */
static void random_row(hearth_dtype t, uint8_t *w, int nsb)
{
    const struct quant_traits *q = quant_get(t);
    for (size_t i = 0; i < (size_t)nsb * q->block_bytes; i++)
        w[i] = (uint8_t)(test_rng_u64() >> 56);
    for (int b = 0; b < nsb; b++) {
        uint8_t *blk = w + (size_t)b * q->block_bytes;
        uint16_t d16 = f32_to_f16((float)(0.001 + 0.099 * test_rng_uniform()));
        if (t == HEARTH_DTYPE_IQ1_M)
            quant__iq1_m_set_d16(blk + 48, d16);
        else
            memcpy(blk, &d16, 2);
    }
}

enum { ROWS = 3, TOKS = 5 };

/* Checks one ISA's kernels for type t on ROWS random rows of nsb super-blocks. */
static void check_dot(hearth_dtype t, enum cpu_isa isa, int nsb)
{
    const struct quant_traits *q = quant_get(t);
    struct cpu_matmul_kernels k;
    CHECK_OK(cpu_matmul_kernels_get(t, isa, &k));
    REQUIRE(k.dot && k.quantize && k.act_type == HEARTH_DTYPE_Q8_K);
    int64_t n = (int64_t)nsb * QK_K;
    size_t rb = (size_t)nsb * q->block_bytes, stride = rb + 3, ab = (size_t)nsb * 292;
    uint8_t *wbuf = malloc(1 + stride * ROWS), *abuf = malloc(1 + ab * TOKS);
    float *x = malloc((size_t)n * sizeof *x), *wf = malloc((size_t)n * sizeof *wf);
    float *af = malloc((size_t)n * TOKS * sizeof *af);
    REQUIRE(wbuf && abuf && x && wf && af);
    uint8_t *w = wbuf + 1, *a = abuf + 1; /* odd offsets and stride, as in a mapped file */
    for (int r = 0; r < ROWS; r++)
        random_row(t, w + (size_t)r * stride, nsb);
    for (int tk = 0; tk < TOKS; tk++) {
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)test_rng_gauss();
        k.quantize(x, a + (size_t)tk * ab, n);
        quant_get(HEARTH_DTYPE_Q8_K)->to_float(a + (size_t)tk * ab, af + (size_t)tk * n, n);
    }
    float s[ROWS], tile[TOKS * ROWS];
    k.dot_rows(n, ROWS, s, w, stride, a);
    k.dot_tile(n, ROWS, TOKS, tile, ROWS, w, stride, a, ab);
    for (int r = 0; r < ROWS; r++) {
        q->to_float(w + (size_t)r * stride, wf, n);
        for (int tk = 0; tk < TOKS; tk++) {
            double ref = 0.0, mag = 0.0;
            for (int64_t i = 0; i < n; i++) {
                double p = (double)wf[i] * (double)af[(size_t)tk * n + i];
                ref += p;
                mag += fabs(p);
            }
            double bound = 32.0 * (double)FLT_EPSILON * mag;
            float v = NAN;
            k.dot(n, &v, w + (size_t)r * stride, a + (size_t)tk * ab);
            CHECK_MSG(fabs((double)v - ref) <= bound,
                      "%s %s %d sb row %d tok %d: %.9g vs ref %.9g (bound %.3g)",
                      cpu_isa_name(k.isa), q->name, nsb, r, tk, (double)v, ref, bound);
            CHECK_MSG(memcmp(&v, &tile[tk * ROWS + r], 4) == 0, "%s %s: dot_tile differs",
                      cpu_isa_name(k.isa), q->name);
            if (tk == 0)
                CHECK_MSG(memcmp(&v, &s[r], 4) == 0, "%s %s: dot_rows differs", cpu_isa_name(k.isa),
                          q->name);
        }
    }
    free(wbuf);
    free(abuf);
    free(x);
    free(wf);
    free(af);
}

static void check_isa(enum cpu_isa isa)
{
    static const int sbs[] = {1, 2, 7};
    for (int ti = 0; ti < N_IQ; ti++)
        for (int si = 0; si < 3; si++)
            for (int rep = 0; rep < 2; rep++)
                check_dot(iq_types[ti], isa, sbs[si]);
}

TEST(dot_scalar)
{
    test_rng_seed(0x10c0ffee);
    check_isa(CPU_ISA_SCALAR);
}

TEST(dot_avx2)
{
    if (!cpu_isa_supported(CPU_ISA_AVX2))
        TEST_SKIP("no AVX2 on this CPU");
    test_rng_seed(0x10c0ffee);
    check_isa(CPU_ISA_AVX2);
}

/* The same rows and activations through both ISAs: equal up to summation order. */
TEST(dot_avx2_vs_scalar)
{
    if (!cpu_isa_supported(CPU_ISA_AVX2))
        TEST_SKIP("no AVX2 on this CPU");
    test_rng_seed(0xa5a5);
    for (int ti = 0; ti < N_IQ; ti++) {
        hearth_dtype t = iq_types[ti];
        const struct quant_traits *q = quant_get(t);
        struct cpu_matmul_kernels ks, kv;
        CHECK_OK(cpu_matmul_kernels_get(t, CPU_ISA_SCALAR, &ks));
        CHECK_OK(cpu_matmul_kernels_get(t, CPU_ISA_AVX2, &kv));
        enum { NSB = 16 };
        int64_t n = NSB * QK_K;
        uint8_t *w = malloc((size_t)NSB * q->block_bytes), *a = malloc((size_t)NSB * 292);
        float *x = malloc((size_t)n * sizeof *x), *wf = malloc((size_t)n * sizeof *wf);
        float *af = malloc((size_t)n * sizeof *af);
        REQUIRE(w && a && x && wf && af);
        for (int rep = 0; rep < 4; rep++) {
            random_row(t, w, NSB);
            for (int64_t i = 0; i < n; i++)
                x[i] = (float)test_rng_gauss();
            ks.quantize(x, a, n);
            q->to_float(w, wf, n);
            quant_get(HEARTH_DTYPE_Q8_K)->to_float(a, af, n);
            double mag = 0.0;
            for (int64_t i = 0; i < n; i++)
                mag += fabs((double)wf[i] * (double)af[i]);
            float vs = NAN, vv = NAN;
            ks.dot(n, &vs, w, a);
            kv.dot(n, &vv, w, a);
            CHECK_MSG(fabs((double)vs - (double)vv) <= 8.0 * (double)FLT_EPSILON * mag,
                      "%s: scalar %.9g vs avx2 %.9g", q->name, (double)vs, (double)vv);
        }
        free(w);
        free(a);
        free(x);
        free(wf);
        free(af);
    }
}

/* dot_tile/dot_rows of one ISA for type t against its dot, on rows of nsb super-blocks. */
static void check_shapes(hearth_dtype t, enum cpu_isa isa, int nsb)
{
    enum { MAXR = 5, MAXT = 64 };
    const struct quant_traits *q = quant_get(t);
    struct cpu_matmul_kernels k;
    CHECK_OK(cpu_matmul_kernels_get(t, isa, &k));
    int64_t n = (int64_t)nsb * QK_K;
    size_t wst = (size_t)nsb * q->block_bytes + 5, ast = (size_t)nsb * 292 + 3;
    uint8_t *wbuf = malloc(1 + wst * MAXR), *abuf = malloc(1 + ast * MAXT);
    float *x = malloc((size_t)n * sizeof *x), *ref = malloc(sizeof(float) * MAXR * MAXT);
    size_t ss = MAXR + 2; /* output stride wider than the rows: gaps must stay untouched */
    float *out = malloc(sizeof(float) * ss * MAXT);
    REQUIRE(wbuf && abuf && x && ref && out);
    uint8_t *w = wbuf + 1, *a = abuf + 1;
    for (int r = 0; r < MAXR; r++)
        random_row(t, w + (size_t)r * wst, nsb);
    for (int tk = 0; tk < MAXT; tk++) {
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)test_rng_gauss();
        k.quantize(x, a + (size_t)tk * ast, n);
    }
    for (int tk = 0; tk < MAXT; tk++)
        for (int r = 0; r < MAXR; r++)
            k.dot(n, &ref[tk * MAXR + r], w + (size_t)r * wst, a + (size_t)tk * ast);
    static const int ntoks[] = {1, 2, 7, 64};
    for (int ti = 0; ti < 4; ti++) {
        int nt = ntoks[ti], nr = 1 + ti; /* 1..4 rows with the token counts, 5 below */
        for (size_t i = 0; i < ss * MAXT; i++)
            out[i] = -12345.0f;
        k.dot_tile(n, nr, nt, out, ss, w, wst, a, ast);
        int bad = 0, stray = 0;
        for (int tk = 0; tk < MAXT; tk++)
            for (int r = 0; r < (int)ss; r++) {
                float v = out[(size_t)tk * ss + r];
                if (tk < nt && r < nr)
                    bad += memcmp(&v, &ref[tk * MAXR + r], 4) != 0;
                else
                    stray += v != -12345.0f;
            }
        CHECK_MSG(bad == 0 && stray == 0, "%s %s %d sb: dot_tile %d rows x %d tok: %d differ, "
                  "%d stray writes", cpu_isa_name(k.isa), q->name, nsb, nr, nt, bad, stray);
    }
    k.dot_tile(n, MAXR, 3, out, ss, w, wst, a + ast, ast); /* tokens 1..3, all rows */
    for (int tk = 0; tk < 3; tk++)
        for (int r = 0; r < MAXR; r++)
            CHECK_MSG(memcmp(&out[(size_t)tk * ss + r], &ref[(tk + 1) * MAXR + r], 4) == 0,
                      "%s %s: dot_tile 5 rows row %d tok %d", cpu_isa_name(k.isa), q->name, r,
                      tk + 1);
    for (int nr = 1; nr <= MAXR; nr++) {
        float s[MAXR + 1];
        s[nr] = -12345.0f;
        k.dot_rows(n, nr, s, w, wst, a + 2 * ast);
        for (int r = 0; r < nr; r++)
            CHECK_MSG(memcmp(&s[r], &ref[2 * MAXR + r], 4) == 0, "%s %s: dot_rows %d rows row %d",
                      cpu_isa_name(k.isa), q->name, nr, r);
        CHECK(s[nr] == -12345.0f);
    }
    free(wbuf);
    free(abuf);
    free(x);
    free(ref);
    free(out);
}

TEST(tile_rows_shapes)
{
    test_rng_seed(0x7113);
    for (int isa = 0; isa <= CPU_ISA_AVX2; isa++) {
        if (!cpu_isa_supported((enum cpu_isa)isa))
            continue;
        for (int ti = 0; ti < N_IQ; ti++) {
            check_shapes(iq_types[ti], (enum cpu_isa)isa, 3);
            check_shapes(iq_types[ti], (enum cpu_isa)isa, 17);
        }
    }
}

TEST(kernels_get)
{
    for (int ti = 0; ti < N_IQ; ti++) {
        for (int isa = 0; isa < CPU_ISA_COUNT; isa++) {
            struct cpu_matmul_kernels k;
            CHECK_OK(cpu_matmul_kernels_get(iq_types[ti], (enum cpu_isa)isa, &k));
            CHECK(k.dot && k.dot_rows && k.dot_tile && k.quantize);
            CHECK_INT_EQ(k.act_type, HEARTH_DTYPE_Q8_K);
            CHECK_INT_EQ(k.wtype, iq_types[ti]);
            bool avx2 = cpu_isa_supported(CPU_ISA_AVX2) && isa >= CPU_ISA_AVX2;
            CHECK_INT_EQ(k.isa, avx2 ? CPU_ISA_AVX2 : CPU_ISA_SCALAR);
        }
        CHECK(quant_get(iq_types[ti])->from_float == NULL);
    }
}

TEST_MAIN(TEST_CASE(grids_checksums), TEST_CASE(to_float_matches_gguf_py), TEST_CASE(dot_scalar),
          TEST_CASE(dot_avx2), TEST_CASE(dot_avx2_vs_scalar), TEST_CASE(tile_rows_shapes),
          TEST_CASE(kernels_get))
