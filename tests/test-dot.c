/*
 * test-dot: the CPU dot products and activation quantizers against float64.
 *
 * For every weight type and every ISA this CPU runs: random rows are
 * quantized with the reference from_float, a random activation with the
 * kernel set's own quantizer, and each kernel's result is compared with the
 * dequantize-then-dot in double (reference to_float of both sides). The bound
 * is float accumulation error, (blocks + 16) · FLT_EPSILON · Σ|w·a| with a
 * factor 8 for cancellation between the scale and min terms (Q4_1/Q5_1 min
 * terms use the exact Σq that the CPU's Q8_1S activations carry in place of
 * Q8_1's f16-rounded s field, so no allowance for s; the reference Q8_1
 * to_float ignores s, so it dequantizes Q8_1S too). Scalar and SIMD must
 * agree to the same bound, and dot_rows must equal dot bit for bit (multi-row
 * kernels keep the single-row accumulation order), as must dot_tile on every
 * (row, token) of tiles of 1..17 rows and 1..67 tokens. Rows start at odd byte
 * offsets with odd strides, as inside a mapped GGUF file.
 */
#include <float.h>

#include "cpu/dot-internal.h"
#include "quant.h"
#include "test.h"

static const hearth_dtype all_types[] = {
    HEARTH_DTYPE_F32,  HEARTH_DTYPE_F16,  HEARTH_DTYPE_BF16, HEARTH_DTYPE_Q4_0,
    HEARTH_DTYPE_Q4_1, HEARTH_DTYPE_Q5_0, HEARTH_DTYPE_Q5_1, HEARTH_DTYPE_Q8_0,
    HEARTH_DTYPE_IQ4_NL, HEARTH_DTYPE_Q2_K, HEARTH_DTYPE_Q3_K, HEARTH_DTYPE_Q4_K,
    HEARTH_DTYPE_Q5_K, HEARTH_DTYPE_Q6_K, HEARTH_DTYPE_IQ4_XS,
};
#define N_TYPES ((int)(sizeof all_types / sizeof all_types[0]))

/* rows per weight matrix: two 8-row groups of the legacy tiles and one more */
enum { MAX_ROWS = 17 };

static void fill_gauss(float *x, int64_t n, double scale)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(scale * test_rng_gauss());
}

/* The three row lengths tested for a block size: one block, three, and ~4096. */
static void sizes_for(int64_t blck, int64_t out[3])
{
    if (blck == 1) {
        out[0] = 7;
        out[1] = 96;
        out[2] = 4096 + 35;
    } else {
        out[0] = blck;
        out[1] = 3 * blck;
        out[2] = blck == 32 ? 4096 + 32 : 4096 + 256;
    }
}

struct dot_case {
    double ref, bound;
};

/* Reference dot and error bound of row w (n elements of wt) with the activation a. */
static struct dot_case reference(hearth_dtype wt, hearth_dtype at, const uint8_t *w,
                                 const uint8_t *a, const float *x, int64_t n, float *wf,
                                 float *af)
{
    const struct quant_traits *tw = quant_get(wt);
    tw->to_float(w, wf, n);
    if (at == HEARTH_DTYPE_F32)
        memcpy(af, x, (size_t)n * sizeof(float));
    else
        quant_get(at)->to_float(a, af, n);
    double ref = 0.0, abs_sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        ref += (double)wf[i] * (double)af[i];
        abs_sum += fabs((double)wf[i] * (double)af[i]);
    }
    double terms = (double)(n / tw->blck) + 16.0;
    struct dot_case c = {ref, 8.0 * terms * (double)FLT_EPSILON * abs_sum};
    return c;
}

/*
 * The reference Q8_1 row at p (n elements) -> Q8_1S in place: the int16 sum
 * of each block's codes in the s slot (dot.h), everything else unchanged.
 */
static void q8_1_to_q8_1s(uint8_t *p, int64_t n)
{
    for (int64_t b = 0; b < n / 32; b++, p += DOT_Q8_1_BYTES) {
        int sum = 0;
        for (int e = 0; e < 32; e++)
            sum += (int8_t)p[4 + e];
        int16_t sum16 = (int16_t)sum;
        memcpy(p + DOT_Q8_1S_SUM, &sum16, 2);
    }
}

/* Byte offsets of the f16 scale fields of a block, -1 terminated. */
static const int *scale_fields(hearth_dtype t)
{
    static const int d0[] = {0, -1}, d0m2[] = {0, 2, -1}, q2k[] = {80, 82, -1},
                     q3k[] = {108, -1}, q6k[] = {208, -1};
    switch (t) {
    case HEARTH_DTYPE_Q4_1:
    case HEARTH_DTYPE_Q5_1:
    case HEARTH_DTYPE_Q4_K:
    case HEARTH_DTYPE_Q5_K: return d0m2;
    case HEARTH_DTYPE_Q2_K: return q2k;
    case HEARTH_DTYPE_Q3_K: return q3k;
    case HEARTH_DTYPE_Q6_K: return q6k;
    default: return d0;
    }
}

/*
 * One weight row. Float types and even rows: reference from_float of random
 * floats (if the type has one). Odd rows of block types: random block bytes
 * with sane f16 scales, which reach every quant pattern (Q8_0's −128, all
 * scale bits) that a quantizer might never emit.
 */
static void make_row(hearth_dtype t, uint8_t *dst, int64_t n, int r, float *tmp)
{
    const struct quant_traits *tr = quant_get(t);
    fill_gauss(tmp, n, 0.02 * (r + 1));
    if (tr->blck == 1 || (r % 2 == 0 && tr->from_float)) {
        tr->from_float(tmp, dst, n);
        return;
    }
    size_t bytes = (size_t)(n / tr->blck) * tr->block_bytes;
    for (size_t i = 0; i < bytes; i++)
        dst[i] = (uint8_t)test_rng_u64();
    for (int64_t b = 0; b < n / tr->blck; b++) {
        for (const int *f = scale_fields(t); *f >= 0; f++) {
            uint16_t h = f32_to_f16((float)(0.01 * (test_rng_uniform() - 0.3)));
            memcpy(dst + (size_t)b * tr->block_bytes + *f, &h, 2);
        }
    }
}

/*
 * Token counts of the tile checks: 67 crosses a 64-token pass of the tiles,
 * 64 is matmul.c's full token tile, 9..1 leave every tail after groups of
 * two, four or eight tokens (and have no full group).
 */
static const int tile_toks[] = {67, 64, 9, 8, 7, 6, 5, 4, 3, 2, 1};
enum { TILE_TOK = 67 };
/*
 * Row counts of the tile checks: 16 is matmul.c's row tile, 17 and 9 leave one
 * row after the legacy tiles' 8-row groups, 7..1 have no full group (odd ones
 * also leave a row out of the K-quant tiles' pairs).
 */
static const int tile_rows[] = {17, 16, 9, 8, 7, 6, 5, 4, 3, 2, 1};

/*
 * dot_tile of each count of tile_rows rows at w0 against each count of tile_toks of different
 * activation rows (odd a_stride, odd start, odd s_stride) must equal dot on
 * every (row, token) bit for bit, and write nothing outside its outputs.
 * x: scratch of n floats.
 */
static void check_tile(const struct cpu_matmul_kernels *k, int64_t n, const uint8_t *w0,
                       size_t w_stride, size_t act_bytes, float *x)
{
    size_t a_stride = act_bytes + 5, s_stride = MAX_ROWS + 2;
    uint8_t *abuf = malloc(1 + a_stride * TILE_TOK);
    float *s = malloc(s_stride * TILE_TOK * sizeof(float));
    float *want = malloc(MAX_ROWS * TILE_TOK * sizeof(float));
    REQUIRE(abuf && s && want);
    uint8_t *a = abuf + 1;
    for (int t = 0; t < TILE_TOK; t++) {
        fill_gauss(x, n, 0.5 + 0.25 * t);
        if (k->quantize)
            k->quantize(x, a + (size_t)t * a_stride, n);
        else
            memcpy(a + (size_t)t * a_stride, x, (size_t)n * sizeof(float));
    }
    for (int t = 0; t < TILE_TOK; t++)
        for (int r = 0; r < MAX_ROWS; r++)
            k->dot(n, &want[t * MAX_ROWS + r], w0 + (size_t)r * w_stride,
                   a + (size_t)t * a_stride);
    int bad = 0;
    for (size_t ri = 0; ri < sizeof tile_rows / sizeof tile_rows[0]; ri++) {
        int nr = tile_rows[ri];
        for (size_t ti = 0; ti < sizeof tile_toks / sizeof tile_toks[0]; ti++) {
            int nt = tile_toks[ti];
            for (size_t i = 0; i < s_stride * TILE_TOK; i++)
                s[i] = -12345.0f;
            k->dot_tile(n, nr, nt, s, s_stride, w0, w_stride, a, a_stride);
            for (int t = 0; t < TILE_TOK && bad < 4; t++) {
                for (int r = 0; r < (int)s_stride && bad < 4; r++) {
                    float got = s[(size_t)t * s_stride + r];
                    float exp = t < nt && r < nr ? want[t * MAX_ROWS + r] : -12345.0f;
                    bad += got != exp;
                    CHECK_MSG(got == exp,
                              "%s %s n=%lld dot_tile(%d rows, %d tokens) row %d tok %d: "
                              "%.9g != %.9g (%s)",
                              cpu_isa_name(k->isa), quant_get(k->wtype)->name, (long long)n, nr,
                              nt, r, t, (double)got, (double)exp,
                              t < nt && r < nr ? "dot" : "untouched");
                }
            }
        }
    }
    free(abuf);
    free(s);
    free(want);
}

/*
 * Checks every kernel of one ISA on every type and size; for SIMD ISAs also
 * agreement with the scalar kernel. *native counts the types that ran at
 * exactly this ISA (others fell back).
 */
static void check_isa(enum cpu_isa isa, int *native)
{
    *native = 0;
    for (int ti = 0; ti < N_TYPES; ti++) {
        hearth_dtype wt = all_types[ti];
        const struct quant_traits *tw = quant_get(wt);
        REQUIRE(tw && tw->to_float);
        struct cpu_matmul_kernels k, ks;
        CHECK_OK(cpu_matmul_kernels_get(wt, isa, &k));
        CHECK_OK(cpu_matmul_kernels_get(wt, CPU_ISA_SCALAR, &ks));
        CHECK(k.isa <= isa && cpu_isa_supported(k.isa));
        CHECK(k.dot && k.dot_rows);
        CHECK_INT_EQ(ks.isa, CPU_ISA_SCALAR);
        *native += k.isa == isa;
        hearth_dtype at = k.act_type;
        CHECK_INT_EQ(at, (tw->vec_dot_type == HEARTH_DTYPE_F16 ||
                          tw->vec_dot_type == HEARTH_DTYPE_BF16)
                             ? HEARTH_DTYPE_F32
                             : tw->vec_dot_type);
        int64_t sizes[3];
        sizes_for(tw->blck, sizes);
        for (int si = 0; si < 3; si++) {
            int64_t n = sizes[si];
            uint64_t rb64 = 0, ab64 = n * 4;
            REQUIRE(quant_row_bytes(wt, (uint64_t)n, &rb64));
            if (at != HEARTH_DTYPE_F32)
                REQUIRE(quant_row_bytes(at, (uint64_t)n, &ab64));
            size_t rb = (size_t)rb64, stride = rb + 3; /* odd stride, odd start */
            uint8_t *wbuf = malloc(1 + stride * MAX_ROWS);
            uint8_t *abuf = malloc((size_t)ab64 + 1);
            float *x = malloc((size_t)n * sizeof(float));
            float *rowf = malloc((size_t)n * sizeof(float));
            float *wf = malloc((size_t)n * sizeof(float));
            float *af = malloc((size_t)n * sizeof(float));
            REQUIRE(wbuf && abuf && x && rowf && wf && af);
            uint8_t *w0 = wbuf + 1, *a = abuf + 1;
            for (int r = 0; r < MAX_ROWS; r++)
                make_row(wt, w0 + (size_t)r * stride, n, r, rowf);
            fill_gauss(x, n, 1.0);
            if (at == HEARTH_DTYPE_F32) {
                memcpy(a, x, (size_t)n * sizeof(float));
            } else {
                k.quantize(x, a, n);
                /* the kernel set's quantizer must match the reference exactly */
                uint8_t *aref = malloc((size_t)ab64);
                REQUIRE(aref);
                quant_get(at)->from_float(x, aref, n);
                if (at == HEARTH_DTYPE_Q8_1)
                    q8_1_to_q8_1s(aref, n);
                CHECK_MSG(memcmp(aref, a, (size_t)ab64) == 0, "%s: %s quantizer of %s differs",
                          cpu_isa_name(k.isa), tw->name, quant_get(at)->name);
                free(aref);
            }
            float sr[MAX_ROWS], sd[MAX_ROWS];
            for (int r = 0; r < MAX_ROWS; r++) {
                const uint8_t *w = w0 + (size_t)r * stride;
                struct dot_case c = reference(wt, at, w, a, x, n, wf, af);
                float s = NAN, s_scalar = NAN;
                k.dot(n, &s, w, a);
                ks.dot(n, &s_scalar, w, a);
                sd[r] = s;
                CHECK_MSG(fabs((double)s - c.ref) <= c.bound,
                          "%s %s n=%lld row %d: %.9g vs ref %.9g (bound %.3g)",
                          cpu_isa_name(k.isa), tw->name, (long long)n, r, (double)s, c.ref,
                          c.bound);
                CHECK_MSG(fabs((double)s - (double)s_scalar) <= 2.0 * c.bound,
                          "%s %s n=%lld row %d: %.9g vs scalar %.9g", cpu_isa_name(k.isa),
                          tw->name, (long long)n, r, (double)s, (double)s_scalar);
            }
            static const int row_counts[] = {1, 3, 5, 4, 17};
            for (int rc = 0; rc < 5; rc++) {
                int nr = row_counts[rc];
                for (int r = 0; r < MAX_ROWS; r++)
                    sr[r] = -12345.0f;
                k.dot_rows(n, nr, sr, w0, stride, a);
                for (int r = 0; r < MAX_ROWS; r++) {
                    if (r < nr)
                        CHECK_MSG(sr[r] == sd[r], "%s %s n=%lld dot_rows(%d) row %d: %.9g != %.9g",
                                  cpu_isa_name(k.isa), tw->name, (long long)n, nr, r,
                                  (double)sr[r], (double)sd[r]);
                    else
                        CHECK_MSG(sr[r] == -12345.0f, "dot_rows(%d) wrote s[%d]", nr, r);
                }
            }
            check_tile(&k, n, w0, stride, (size_t)ab64, x);
            free(wbuf);
            free(abuf);
            free(x);
            free(rowf);
            free(wf);
            free(af);
        }
    }
}

TEST(dot_scalar)
{
    int native = 0;
    test_rng_seed(1);
    check_isa(CPU_ISA_SCALAR, &native);
    CHECK_INT_EQ(native, N_TYPES);
}

TEST(dot_avx2)
{
    if (!cpu_isa_supported(CPU_ISA_AVX2))
        TEST_SKIP("this CPU (or OS) has no AVX2/FMA/F16C");
    int native = 0;
    test_rng_seed(2);
    check_isa(CPU_ISA_AVX2, &native);
    CHECK_INT_EQ(native, N_TYPES);
}

TEST(dot_avx512)
{
    if (!cpu_isa_supported(CPU_ISA_AVX512))
        TEST_SKIP("this CPU (or OS) has no AVX-512 F/BW/VL/DQ; the AVX-512 kernels run only "
                  "where it does");
    int native = 0;
    test_rng_seed(3);
    check_isa(CPU_ISA_AVX512, &native);
    printf("  %d of %d types have AVX-512 kernels (vnni: %d)\n", native, N_TYPES,
           (int)cpu_caps_get()->avx512vnni);
}

/*
 * Regression: SmolLM2's FFN feeds ffn_down activations with one value ~3000
 * among values ~1. Q4_1/Q5_1 kernels used to add the min term as m·s with
 * Q8_1's s = f16(d·Σq): its rounding (an ulp of 2 at 3000) times the min gave
 * errors of several units on outputs of size ~1, more than the whole 8-bit
 * quantization error, and AVX2 summed the min terms of all blocks in one lane,
 * apart from the scale terms they cancel, so scalar and AVX2 differed by 1e-4
 * relative to ~1000x larger partial sums. Now every ISA must stay within float
 * rounding of the dequantized product, relative to Σ|w·a|, and agree.
 */
TEST(q8_1_outliers)
{
    static const hearth_dtype types[] = {HEARTH_DTYPE_Q4_1, HEARTH_DTYPE_Q5_1};
    enum { N = 1536, ROWS = 8 };
    test_rng_seed(5);
    float *x = malloc(N * sizeof(float)), *wf = malloc(N * sizeof(float));
    float *af = malloc(N * sizeof(float)), *tmp = malloc(N * sizeof(float));
    uint8_t *w = malloc((size_t)ROWS * 24 * (N / 32)), *a = malloc(36 * (N / 32));
    REQUIRE(x && wf && af && tmp && w && a);
    fill_gauss(x, N, 1.0);
    x[37] = 2919.5f; /* massive activations, as in SmolLM2 layers 11 and 28 */
    x[700] = -1487.25f;
    x[1100] = 461.0f;
    for (int ti = 0; ti < 2; ti++) {
        const struct quant_traits *tw = quant_get(types[ti]);
        size_t rb = (size_t)(N / 32) * tw->block_bytes;
        for (int r = 0; r < ROWS; r++) {
            /* an offset per row, so the mins are far from −8·d */
            fill_gauss(tmp, N, 0.05);
            for (int i = 0; i < N; i++)
                tmp[i] += 0.02f * (float)(r - 3);
            tw->from_float(tmp, w + (size_t)r * rb, N);
        }
        float got[CPU_ISA_COUNT][ROWS];
        for (int isa = 0; isa < CPU_ISA_COUNT; isa++) {
            struct cpu_matmul_kernels k;
            if (!cpu_isa_supported((enum cpu_isa)isa))
                continue;
            CHECK_OK(cpu_matmul_kernels_get(types[ti], (enum cpu_isa)isa, &k));
            k.quantize(x, a, N);
            quant_get(HEARTH_DTYPE_Q8_1)->to_float(a, af, N);
            k.dot_rows(N, ROWS, got[isa], w, rb, a);
            for (int r = 0; r < ROWS; r++) {
                tw->to_float(w + (size_t)r * rb, wf, N);
                double ref = 0.0, abs_sum = 0.0;
                for (int i = 0; i < N; i++) {
                    ref += (double)wf[i] * (double)af[i];
                    abs_sum += fabs((double)wf[i] * (double)af[i]);
                }
                double bound = 8.0 * (N / 32 + 16) * (double)FLT_EPSILON * abs_sum;
                CHECK_MSG(fabs((double)got[isa][r] - ref) <= bound,
                          "%s %s row %d: %.7g vs dequantized %.7g (bound %.3g)",
                          cpu_isa_name(k.isa), tw->name, r, (double)got[isa][r], ref, bound);
                if (isa > 0)
                    CHECK_MSG(fabs((double)got[isa][r] - (double)got[0][r]) <= 2.0 * bound,
                              "%s %s row %d: %.7g vs scalar %.7g", cpu_isa_name(k.isa),
                              tw->name, r, (double)got[isa][r], (double)got[0][r]);
            }
        }
    }
    free(x);
    free(wf);
    free(af);
    free(tmp);
    free(w);
    free(a);
}

/* Activation blocks that stress the quantizers: zeros, ties of ±max, tiny and huge values. */
static void awkward_activation(float *x, int64_t n)
{
    fill_gauss(x, n, 1.0);
    for (int i = 0; i < 32 && i < n; i++)
        x[i] = 0.0f; /* an all-zero 32-block */
    if (n >= 512) {
        for (int i = 256; i < 512; i++)
            x[i] = (float)((i % 7) - 3) * 0.25f; /* exact ties, ±max at several places */
        x[300] = -0.75f;
        x[301] = 0.75f;
    }
    if (n >= 1024) {
        for (int i = 512; i < 768; i++)
            x[i] = (float)(test_rng_gauss() * 1e-30);
        for (int i = 768; i < 1024; i++)
            x[i] = (float)(test_rng_gauss() * 1e30);
    }
    /* values that land on .5 after scaling: max 127 makes d = 1 */
    if (n >= 1056) {
        x[1024] = 127.0f;
        for (int i = 1025; i < 1056; i++)
            x[i] = (float)(i - 1040) + 0.5f;
    }
}

/*
 * The kernel sets' quantizers equal the reference from_float byte for byte
 * (Q8_1: with the exact code sum in s, the CPU's Q8_1S), scalar and AVX2.
 */
TEST(quantizers_match_reference)
{
    static const struct {
        hearth_dtype t;
        cpu_quantize_fn scalar, avx2;
    } qs[] = {
        {HEARTH_DTYPE_Q8_0, cpu__quantize_q8_0_scalar, cpu__quantize_q8_0_avx2},
        {HEARTH_DTYPE_Q8_1, cpu__quantize_q8_1s_scalar, cpu__quantize_q8_1s_avx2},
        {HEARTH_DTYPE_Q8_K, cpu__quantize_q8_k_scalar, cpu__quantize_q8_k_avx2},
    };
    bool avx2 = cpu_isa_supported(CPU_ISA_AVX2);
    test_rng_seed(4);
    const int64_t n = 4096;
    float *x = malloc(n * sizeof(float));
    uint8_t *ref = malloc(n * 2), *got = malloc(n * 2 + 1);
    REQUIRE(x && ref && got);
    for (int round = 0; round < 2; round++) {
        if (round == 0)
            fill_gauss(x, n, 3.0);
        else
            awkward_activation(x, n);
        for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
            uint64_t bytes = 0;
            REQUIRE(quant_row_bytes(qs[i].t, (uint64_t)n, &bytes));
            quant_get(qs[i].t)->from_float(x, ref, n);
            if (qs[i].t == HEARTH_DTYPE_Q8_1)
                q8_1_to_q8_1s(ref, n);
            qs[i].scalar(x, got + 1, n);
            CHECK_MSG(memcmp(ref, got + 1, (size_t)bytes) == 0, "scalar %s round %d",
                      quant_get(qs[i].t)->name, round);
            if (avx2) {
                memset(got, 0xAB, (size_t)bytes + 1);
                qs[i].avx2(x, got + 1, n);
                CHECK_MSG(memcmp(ref, got + 1, (size_t)bytes) == 0, "avx2 %s round %d",
                          quant_get(qs[i].t)->name, round);
            }
        }
    }
    free(x);
    free(ref);
    free(got);
}

TEST(dispatch)
{
    struct cpu_matmul_kernels k;
    CHECK_INT_EQ(cpu_matmul_kernels_get(HEARTH_DTYPE_TQ1_0, CPU_ISA_AVX2, &k),
                 HEARTH_ERR_UNSUPPORTED);
    CHECK(strstr(hearth_last_error(), "TQ1_0") != NULL);
    CHECK_INT_EQ(cpu_matmul_kernels_get(HEARTH_DTYPE_Q8_K, CPU_ISA_SCALAR, &k),
                 HEARTH_ERR_UNSUPPORTED);
    /* asking for AVX-512 always succeeds, at the best ISA the CPU has at or below it */
    CHECK_OK(cpu_matmul_kernels_get(HEARTH_DTYPE_Q4_K, CPU_ISA_AVX512, &k));
    CHECK(cpu_isa_supported(k.isa));
    CHECK_INT_EQ(k.wtype, HEARTH_DTYPE_Q4_K);
    CHECK_INT_EQ(k.act_type, HEARTH_DTYPE_Q8_K);
    if (cpu_isa_supported(CPU_ISA_AVX2) && !cpu_isa_supported(CPU_ISA_AVX512))
        CHECK_INT_EQ(k.isa, CPU_ISA_AVX2);
    CHECK_OK(cpu_matmul_kernels_get(HEARTH_DTYPE_F16, CPU_ISA_AVX2, &k));
    CHECK(k.quantize == NULL);
    CHECK_INT_EQ(k.act_type, HEARTH_DTYPE_F32);

    const struct cpu_caps *c = cpu_caps_get();
    CHECK(!c->avx2 || c->avx2 == cpu_caps_get()->avx2);
    CHECK(!(c->avx512bw && !c->avx512f)); /* BW is meaningless without F on real CPUs */

    const char *old = getenv("HEARTH_CPU_ISA");
    char saved[32] = "";
    if (old)
        snprintf(saved, sizeof saved, "%s", old);
    setenv("HEARTH_CPU_ISA", "scalar", 1);
    cpu_isa_reset();
    CHECK_INT_EQ(cpu_isa_best(), CPU_ISA_SCALAR);
    setenv("HEARTH_CPU_ISA", "avx512", 1); /* a cap above the CPU changes nothing */
    cpu_isa_reset();
    enum cpu_isa capped = cpu_isa_best();
    unsetenv("HEARTH_CPU_ISA");
    cpu_isa_reset();
    enum cpu_isa best = cpu_isa_best();
    CHECK_INT_EQ(capped, best);
    CHECK(cpu_isa_supported(best));
    if (best < CPU_ISA_COUNT - 1)
        CHECK(!cpu_isa_supported((enum cpu_isa)(best + 1)));
    if (cpu_isa_supported(CPU_ISA_AVX2)) {
        setenv("HEARTH_CPU_ISA", "avx2", 1);
        cpu_isa_reset();
        CHECK_INT_EQ(cpu_isa_best(), CPU_ISA_AVX2);
    }
    if (old)
        setenv("HEARTH_CPU_ISA", saved, 1);
    else
        unsetenv("HEARTH_CPU_ISA");
    cpu_isa_reset();
    CHECK_STR_EQ(cpu_isa_name(CPU_ISA_AVX2), "avx2");
}

TEST_MAIN(TEST_CASE(dot_scalar), TEST_CASE(dot_avx2), TEST_CASE(dot_avx512),
          TEST_CASE(quantizers_match_reference), TEST_CASE(q8_1_outliers), TEST_CASE(dispatch))
