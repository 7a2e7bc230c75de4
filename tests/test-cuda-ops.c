/*
 * test-cuda-ops: every CUDA kernel (cuda/ops.h) against the CPU reference on
 * fresh random inputs from a fixed seed. Without a CUDA device every case
 * skips ("skipped: no CUDA device", exit 77, as CI and machines without a GPU
 * see it); without the CUDA backend compiled in, so does the file.
 *
 * Each output buffer is poisoned with NaN before the kernel runs and every
 * element is then compared, so an element the kernel forgot to write fails.
 * References and tolerances (written at each check):
 *  - matvec: reference dequantizer (quant_traits.to_float) and a double dot
 *    with F32 x; |y - ref| <= 1e-4 * sum|w x| + 1e-5 (F32 accumulation order).
 *  - MMA and cuBLAS prefill: x and W rounded to F16 on the GPU, so
 *    |y - ref| <= 4e-3 * sum|w x| + 1e-4 (two F16 roundings, 2^-11 each).
 *  - dequant/embed: |y - ref| <= 1e-6 * max|ref| (the GPU may fuse a*b-c).
 *  - rmsnorm/add: 1e-5 relative; glu 1e-5 relative; rope 1e-5 absolute on
 *    O(1) inputs (same double angles); attention 2e-4 absolute on O(1) values
 *    (online vs two-pass softmax, same F16 cache); both the split
 *    (flash-decoding) and the tiled prefill kernels are exercised.
 * Awkward sizes on purpose: 37 and 70 rows (not multiples of the 8-row and
 * 64-row tiles), rows padded to 16 bytes (K = 256 for Q6_K), batches 1, 2, 7,
 * 64, 512, windowed and grouped attention, several sequence splits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#ifdef HEARTH_WITH_CUDA
#include "../cuda/ops.h"
#include "backend.h"
#include "cpu/ops.h"
#include "cuda-kvq-fixtures.h" /* NEED_DEVICE */
#include "f16.h"
#include "quant.h"
#include "rng.h"
#include "synth.h"

static const hearth_dtype types[] = {
    HEARTH_DTYPE_F32,  HEARTH_DTYPE_F16,  HEARTH_DTYPE_BF16, HEARTH_DTYPE_Q4_0,
    HEARTH_DTYPE_Q4_1, HEARTH_DTYPE_Q5_0, HEARTH_DTYPE_Q5_1, HEARTH_DTYPE_Q8_0,
    HEARTH_DTYPE_Q2_K, HEARTH_DTYPE_Q3_K, HEARTH_DTYPE_Q4_K, HEARTH_DTYPE_Q5_K,
    HEARTH_DTYPE_Q6_K, HEARTH_DTYPE_IQ4_NL, HEARTH_DTYPE_IQ4_XS, HEARTH_DTYPE_IQ2_XXS,
    HEARTH_DTYPE_IQ2_XS, HEARTH_DTYPE_IQ2_S, HEARTH_DTYPE_IQ3_XXS, HEARTH_DTYPE_IQ3_S,
    HEARTH_DTYPE_IQ1_S, HEARTH_DTYPE_IQ1_M};
#define N_TYPES ((int)(sizeof types / sizeof types[0]))

static void fill_gauss(float *x, size_t n, float sd)
{
    for (size_t i = 0; i < n; i++)
        x[i] = sd * (float)test_rng_gauss();
}

/* Device copy of a host float array (NULL on failure, after a failed check). */
static float *dev_floats(const float *h, size_t n)
{
    void *d = NULL;
    CHECK_OK(cuda_alloc(&d, n * sizeof(float)));
    if (d && h)
        CHECK_OK(cuda_upload(d, h, n * sizeof(float)));
    return d;
}

static float *dev_poisoned(size_t n)
{
    float *d = dev_floats(NULL, n);
    if (d)
        CHECK_OK(cuda_fill_f32(d, NAN, (int64_t)n, NULL));
    return d;
}

/*
 * A random N x K weight of type t: quantized host bytes, its exact dequantized
 * floats (the reference), and the device copy in the padded layout. Types
 * hearth cannot quantize (the IQ1/IQ2/IQ3 lattice types: no from_float) get
 * random blocks from synth_fill instead, seeded from the test RNG.
 */
struct tw {
    struct cuda_wlayout l;
    uint8_t *q;
    float *ref;
    void *d;
};

static bool tw_make(struct tw *w, hearth_dtype t, int64_t n, int64_t k)
{
    memset(w, 0, sizeof *w);
    const struct quant_traits *qt = quant_get(t);
    if (!qt || !qt->to_float || !cuda_wlayout_init(&w->l, t, n, k))
        return false;
    float *src = malloc((size_t)(n * k) * sizeof(float));
    w->q = malloc(w->l.row_bytes * (size_t)n);
    w->ref = malloc((size_t)(n * k) * sizeof(float));
    if (!src || !w->q || !w->ref) {
        free(src);
        return false;
    }
    if (qt->from_float) {
        fill_gauss(src, (size_t)(n * k), 1.0f);
        qt->from_float(src, w->q, n * k);
    } else {
        struct rng r;
        rng_seed(&r, test_rng_u64());
        hearth_status st = synth_fill(t, (uint64_t)(n * k / qt->blck), 1.0f, &r, w->q);
        CHECK_OK(st);
        if (st != HEARTH_OK) {
            free(src), free(w->q), free(w->ref);
            w->q = NULL, w->ref = NULL;
            return false;
        }
    }
    qt->to_float(w->q, w->ref, n * k);
    free(src);
    CHECK_OK(cuda_alloc(&w->d, w->l.bytes));
    if (!w->d)
        return false;
    CHECK_OK(cuda_weight_upload(&w->l, w->d, w->q));
    return true;
}

static void tw_free(struct tw *w)
{
    free(w->q);
    free(w->ref);
    cuda_free(w->d);
}

/*
 * Checks y (F32 [n_tok][N], rows y_stride apart, downloaded) against
 * W x (+ b) in double with |d| <= rel * sum|w x| + abs; returns failures.
 */
static int check_matmul(const char *what, const struct tw *w, const float *b, const float *x,
                        int n_tok, const float *y, int64_t y_stride, double rel, double abs_tol)
{
    int bad = 0;
    int64_t N = w->l.n_rows, K = w->l.k;
    for (int t = 0; t < n_tok; t++) {
        for (int64_t r = 0; r < N; r++) {
            double s = 0.0, m = 0.0;
            for (int64_t c = 0; c < K; c++) {
                double p = (double)w->ref[r * K + c] * (double)x[t * K + c];
                s += p;
                m += fabs(p);
            }
            if (b)
                s += (double)b[r];
            double got = (double)y[t * y_stride + r];
            if (!(fabs(got - s) <= rel * m + abs_tol)) {
                if (bad++ < 3)
                    TEST_FAIL_AT("%s %s N=%lld K=%lld tok %d row %lld: %.7g vs %.7g (tol %.3g)",
                                 what, hearth_dtype_name(w->l.type), (long long)N, (long long)K,
                                 t, (long long)r, got, s, rel * m + abs_tol);
            }
        }
    }
    return bad;
}

/*
 * x as the 8-bit matvec sees it (matvec-q8.cu, mq_quantize32): per 32 values
 * d = amax * (1/127), codes round-half-even(x * (127 / amax)) by the
 * 1.5 * 2^23 trick, all codes 0 when amax <= 1e-30; back to d * code.
 */
static void q8_roundtrip(const float *x, float *xr, int64_t n)
{
    for (int64_t b = 0; b < n / 32; b++) {
        const float *v = x + 32 * b;
        float amax = 0.0f;
        for (int i = 0; i < 32; i++)
            amax = fmaxf(amax, fabsf(v[i]));
        float id = amax > 1e-30f ? 127.0f / amax : 0.0f, d = amax * (1.0f / 127.0f);
        for (int i = 0; i < 32; i++) {
            float t = fmaf(v[i], id, 12582912.0f);
            int32_t bits;
            memcpy(&bits, &t, 4);
            xr[32 * b + i] = d * (float)(bits - 0x4b400000);
        }
    }
}

/*
 * Two weights sharing x (the gate+up shape; the second with a bias and a
 * strided y) for every type, K 256 and 2304, 1..4 tokens. q8: with the 8-bit
 * activation path on, for the types it takes (it must take them: checked),
 * against x rounded as that path rounds it.
 */
static void matvec_types(bool q8)
{
    const int64_t ks[] = {256, 2304};
    cuda_matvec_q8_set(q8);
    for (int ti = 0; ti < N_TYPES; ti++) {
        for (int kk = 0; kk < 2; kk++) {
            int64_t K = ks[kk], N0 = 37, N1 = 70;
            if (q8 && !cuda_matvec_q8_usable(types[ti], K, 1))
                continue;
            struct tw w0, w1;
            REQUIRE(tw_make(&w0, types[ti], N0, K));
            REQUIRE(tw_make(&w1, types[ti], N1, K));
            for (int n_tok = 1; n_tok <= CUDA_MATVEC_MAX_TOK; n_tok++) {
                float *x = malloc((size_t)(n_tok * K) * sizeof(float));
                float *xr = malloc((size_t)(n_tok * K) * sizeof(float));
                float b1[70];
                float *y0 = malloc((size_t)n_tok * N0 * 4), *y1 = malloc((size_t)n_tok * 80 * 4);
                REQUIRE(x && xr && y0 && y1);
                fill_gauss(x, (size_t)(n_tok * K), 1.0f);
                fill_gauss(b1, 70, 1.0f);
                if (q8) {
                    CHECK(cuda_matvec_q8_usable(types[ti], K, n_tok));
                    q8_roundtrip(x, xr, n_tok * K);
                } else {
                    memcpy(xr, x, (size_t)(n_tok * K) * sizeof(float));
                }
                float *dx = dev_floats(x, (size_t)(n_tok * K)), *db1 = dev_floats(b1, 70);
                float *dy0 = dev_poisoned((size_t)n_tok * N0);
                float *dy1 = dev_poisoned((size_t)n_tok * 80);
                REQUIRE(dx && db1 && dy0 && dy1);
                struct cuda_mm_out o[2] = {{&w0.l, w0.d, NULL, dy0, N0},
                                           {&w1.l, w1.d, db1, dy1, 80}};
                CHECK_OK(cuda_matvec(2, o, dx, K, n_tok, NULL));
                CHECK_OK(cuda_synchronize());
                CHECK_OK(cuda_download(y0, dy0, (size_t)n_tok * N0 * 4));
                CHECK_OK(cuda_download(y1, dy1, (size_t)n_tok * 80 * 4));
                const char *what = q8 ? "matvec-q8" : "matvec";
                check_matmul(what, &w0, NULL, xr, n_tok, y0, N0, 1e-4, 1e-5);
                check_matmul(what, &w1, b1, xr, n_tok, y1, 80, 1e-4, 1e-5);
                free(x), free(xr), free(y0), free(y1);
                cuda_free(dx), cuda_free(db1), cuda_free(dy0), cuda_free(dy1);
            }
            tw_free(&w0);
            tw_free(&w1);
        }
    }
    cuda_matvec_q8_set(false);
}

TEST(matvec_every_type)
{
    NEED_DEVICE();
    test_rng_seed(11);
    matvec_types(false);
}

TEST(matvec_q8_every_type)
{
    NEED_DEVICE();
    test_rng_seed(12);
    /* the ten types with an integer unit form, and not the others */
    int n_int = 0;
    for (int ti = 0; ti < N_TYPES; ti++)
        n_int += cuda_matvec_q8_usable(types[ti], 256, 1);
    CHECK_INT_EQ(n_int, 10);
    CHECK(!cuda_matvec_q8_usable(HEARTH_DTYPE_F16, 256, 1));
    /* x beyond shared memory stays on the F32 path */
    CHECK(!cuda_matvec_q8_usable(HEARTH_DTYPE_Q4_0, 14336, 4));
    CHECK(cuda_matvec_q8_usable(HEARTH_DTYPE_Q4_0, 14336, 1));
    matvec_types(true);
}

/*
 * cuda_matmul on q/k/v-like weights of mixed types (Q4_K, Q6_K, Q4_K: the
 * first and third share a launch, the second goes alone) for 1 and 3 tokens,
 * against the reference: every weight's rows land in its own y whatever launch
 * it joined.
 */
TEST(matmul_mixed_types)
{
    NEED_DEVICE();
    test_rng_seed(13);
    const int64_t K = 512, N[3] = {96, 32, 32};
    const hearth_dtype t[3] = {HEARTH_DTYPE_Q4_K, HEARTH_DTYPE_Q6_K, HEARTH_DTYPE_Q4_K};
    struct tw w[3];
    for (int i = 0; i < 3; i++)
        REQUIRE(tw_make(&w[i], t[i], N[i], K));
    for (int n_tok = 1; n_tok <= 3; n_tok += 2) {
        float *x = malloc((size_t)(n_tok * K) * sizeof(float)), *y[3], *dy[3];
        REQUIRE(x);
        fill_gauss(x, (size_t)(n_tok * K), 1.0f);
        float *dx = dev_floats(x, (size_t)(n_tok * K));
        REQUIRE(dx);
        struct cuda_mm_out o[3];
        for (int i = 0; i < 3; i++) {
            y[i] = malloc((size_t)(n_tok * N[i]) * 4);
            dy[i] = dev_poisoned((size_t)(n_tok * N[i]));
            REQUIRE(y[i] && dy[i]);
            o[i] = (struct cuda_mm_out){&w[i].l, w[i].d, NULL, dy[i], N[i]};
        }
        CHECK_OK(cuda_matmul(NULL, 3, o, dx, K, n_tok, NULL, 0, NULL));
        CHECK_OK(cuda_synchronize());
        for (int i = 0; i < 3; i++) {
            CHECK_OK(cuda_download(y[i], dy[i], (size_t)(n_tok * N[i]) * 4));
            check_matmul("matmul mixed", &w[i], NULL, x, n_tok, y[i], N[i], 1e-4, 1e-5);
            free(y[i]);
            cuda_free(dy[i]);
        }
        free(x);
        cuda_free(dx);
    }
    for (int i = 0; i < 3; i++)
        tw_free(&w[i]);
}

static void prefill_case(int use_blas)
{
    NEED_DEVICE();
    test_rng_seed(use_blas ? 13 : 12);
    void *blas = NULL, *ws = NULL;
    size_t ws_bytes = (size_t)8 << 20;
    if (use_blas) {
        CHECK_OK(cuda_blas_create(&blas));
        CHECK_OK(cuda_alloc(&ws, ws_bytes));
        REQUIRE(blas && ws);
    }
    const int toks[] = {1, 2, 7, 64, 512};
    for (int ti = 0; ti < N_TYPES; ti++) {
        int64_t K = 512, N = 70;
        struct tw w;
        REQUIRE(tw_make(&w, types[ti], N, K));
        float b[70];
        fill_gauss(b, 70, 1.0f);
        float *db = dev_floats(b, 70);
        for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++) {
            int n_tok = toks[i];
            float *x = malloc((size_t)(n_tok * K) * 4), *y = malloc((size_t)n_tok * N * 4);
            REQUIRE(x && y);
            fill_gauss(x, (size_t)(n_tok * K), 1.0f);
            float *dx = dev_floats(x, (size_t)(n_tok * K)), *dy = dev_poisoned((size_t)n_tok * N);
            REQUIRE(dx && dy);
            struct cuda_mm_out o = {&w.l, w.d, db, dy, N};
            if (use_blas)
                CHECK_OK(cuda_matmul_blas(blas, &o, dx, K, n_tok, ws, ws_bytes, NULL));
            else
                CHECK_OK(cuda_matmul_mma(&o, dx, K, n_tok, NULL));
            CHECK_OK(cuda_synchronize());
            CHECK_OK(cuda_download(y, dy, (size_t)n_tok * N * 4));
            check_matmul(use_blas ? "blas" : "mma", &w, b, x, n_tok, y, N, 4e-3, 1e-4);
            free(x), free(y);
            cuda_free(dx), cuda_free(dy);
        }
        cuda_free(db);
        tw_free(&w);
    }
    cuda_free(ws);
    cuda_blas_destroy(blas);
}

TEST(matmul_mma_every_type) { prefill_case(0); }
TEST(matmul_blas_every_type) { prefill_case(1); }

TEST(dequant_and_embed_every_type)
{
    NEED_DEVICE();
    test_rng_seed(14);
    for (int ti = 0; ti < N_TYPES; ti++) {
        int64_t K = 512, N = 19;
        struct tw w;
        REQUIRE(tw_make(&w, types[ti], N, K));
        double mx = 0.0;
        for (int64_t i = 0; i < N * K; i++)
            mx = fmax(mx, fabs((double)w.ref[i]));
        float *y = malloc((size_t)(N * K) * 4);
        float *dy = dev_poisoned((size_t)(N * K));
        REQUIRE(y && dy);
        CHECK_OK(cuda_dequant_f32(&w.l, w.d, 0, N, dy, NULL));
        CHECK_OK(cuda_download(y, dy, (size_t)(N * K) * 4));
        int bad = 0;
        for (int64_t i = 0; i < N * K; i++)
            if (!(fabs((double)y[i] - (double)w.ref[i]) <= 1e-6 * mx) && bad++ < 3)
                TEST_FAIL_AT("dequant %s elem %lld: %.7g vs %.7g", hearth_dtype_name(types[ti]),
                             (long long)i, (double)y[i], (double)w.ref[i]);
        /* embed rows 18, 0, 7, 7, 3 scaled by 0.5 */
        int32_t ids[5] = {18, 0, 7, 7, 3};
        void *dids = NULL;
        CHECK_OK(cuda_alloc(&dids, sizeof ids));
        CHECK_OK(cuda_upload(dids, ids, sizeof ids));
        CHECK_OK(cuda_fill_f32(dy, NAN, 5 * K, NULL));
        CHECK_OK(cuda_embed(&w.l, w.d, dids, 5, 0.5f, dy, NULL));
        CHECK_OK(cuda_download(y, dy, (size_t)(5 * K) * 4));
        for (int t = 0; t < 5; t++)
            for (int64_t c = 0; c < K; c++) {
                double ref = 0.5 * (double)w.ref[ids[t] * K + c];
                if (!(fabs((double)y[t * K + c] - ref) <= 1e-6 * mx) && bad++ < 3)
                    TEST_FAIL_AT("embed %s tok %d col %lld: %.7g vs %.7g",
                                 hearth_dtype_name(types[ti]), t, (long long)c,
                                 (double)y[t * K + c], ref);
            }
        free(y);
        cuda_free(dy);
        cuda_free(dids);
        tw_free(&w);
    }
}

/* |got - ref| <= rel * |ref| + abs for n floats; counts and reports the first few. */
static int check_close(const char *what, const float *got, const float *ref, size_t n, double rel,
                       double abs_tol)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= rel * fabs((double)ref[i]) + abs_tol) && bad++ < 3)
            TEST_FAIL_AT("%s [%zu]: %.8g vs %.8g", what, i, (double)got[i], (double)ref[i]);
    }
    return bad;
}

TEST(rmsnorm_add_glu_scale)
{
    NEED_DEVICE();
    test_rng_seed(15);
    const int rows = 7;
    const int64_t n = 1000; /* not a multiple of the block size */
    size_t tot = (size_t)rows * (size_t)n;
    float *x = malloc(tot * 4), *y = malloc(tot * 4), *w = malloc((size_t)n * 4);
    float *ref = malloc(tot * 4), *ref2 = malloc(tot * 4), *got = malloc(tot * 4);
    REQUIRE(x && y && w && ref && ref2 && got);
    fill_gauss(x, tot, 2.0f);
    fill_gauss(y, tot, 1.0f);
    fill_gauss(w, (size_t)n, 1.0f);
    float *dx = dev_floats(x, tot), *dy = dev_floats(y, tot), *dw = dev_floats(w, (size_t)n);
    float *dout = dev_poisoned(tot);
    REQUIRE(dx && dy && dw && dout);

    /* rmsnorm with and without gain */
    for (int g = 0; g < 2; g++) {
        for (int r = 0; r < rows; r++)
            cpu_rmsnorm(ref + r * n, x + r * n, g ? w : NULL, n, 1e-6f);
        CHECK_OK(cuda_fill_f32(dout, NAN, (int64_t)tot, NULL));
        CHECK_OK(cuda_rmsnorm(dout, n, dx, n, g ? dw : NULL, rows, n, 1e-6f, NULL));
        CHECK_OK(cuda_download(got, dout, tot * 4));
        check_close("rmsnorm", got, ref, tot, 1e-5, 1e-6);
    }
    /* add: plain, then with a normed branch (y overwritten by the normed row) */
    for (int g = 0; g < 2; g++) {
        memcpy(ref, x, tot * 4);
        memcpy(ref2, y, tot * 4);
        for (int r = 0; r < rows; r++) {
            if (g)
                cpu_rmsnorm(ref2 + r * n, ref2 + r * n, w, n, 1e-5f);
            cpu_add(ref + r * n, ref2 + r * n, n);
        }
        CHECK_OK(cuda_copy(dout, dx, tot * 4, NULL));
        float *dy2 = dev_floats(y, tot);
        REQUIRE(dy2);
        CHECK_OK(cuda_add(dout, dy2, g ? dw : NULL, rows, n, 1e-5f, NULL));
        CHECK_OK(cuda_download(got, dout, tot * 4));
        check_close("add x", got, ref, tot, 1e-5, 1e-5);
        CHECK_OK(cuda_download(got, dy2, tot * 4));
        check_close("add y", got, ref2, tot, 1e-5, 1e-6);
        cuda_free(dy2);
    }
    /* glu: silu and gelu_tanh */
    for (int act = 0; act < 2; act++) {
        memcpy(ref, x, tot * 4);
        if (act)
            cpu_geglu(ref, y, (int64_t)tot);
        else
            cpu_swiglu(ref, y, (int64_t)tot);
        CHECK_OK(cuda_copy(dout, dx, tot * 4, NULL));
        CHECK_OK(cuda_glu(dout, dy, (int64_t)tot, act, NULL));
        CHECK_OK(cuda_download(got, dout, tot * 4));
        check_close(act ? "geglu" : "swiglu", got, ref, tot, 1e-5, 1e-6);
    }
    /* scale */
    for (size_t i = 0; i < tot; i++)
        ref[i] = x[i] * 0.37f;
    CHECK_OK(cuda_copy(dout, dx, tot * 4, NULL));
    CHECK_OK(cuda_scale(dout, 0.37f, (int64_t)tot, NULL));
    CHECK_OK(cuda_download(got, dout, tot * 4));
    check_close("scale", got, ref, tot, 0.0, 0.0);

    free(x), free(y), free(w), free(ref), free(ref2), free(got);
    cuda_free(dx), cuda_free(dy), cuda_free(dw), cuda_free(dout);
}

TEST(rope_both_modes)
{
    NEED_DEVICE();
    test_rng_seed(16);
    const int n_tok = 7, H = 5, D = 64;
    const int32_t pos0 = 1234;
    size_t tot = (size_t)n_tok * H * D;
    float *x = malloc(tot * 4), *ref = malloc(tot * 4), *got = malloc(tot * 4);
    float divs[24], cs[64];
    REQUIRE(x && ref && got);
    fill_gauss(x, tot, 1.0f);
    for (int k = 0; k < 24; k++)
        divs[k] = 1.0f + 0.25f * (float)k;
    void *dpos = NULL;
    CHECK_OK(cuda_alloc(&dpos, 4));
    CHECK_OK(cuda_i32_set(dpos, pos0, NULL));
    float *dx = dev_floats(NULL, tot), *ddivs = dev_floats(divs, 24);
    REQUIRE(dpos && dx && ddivs);
    for (int mode = 0; mode <= 2; mode += 2) {
        for (int use_divs = 0; use_divs < 2; use_divs++) {
            int n_rot = use_divs ? 48 : 64; /* partial rotation with freq factors */
            memcpy(ref, x, tot * 4);
            for (int t = 0; t < n_tok; t++) {
                cpu_rope_table(cs, n_rot, pos0 + t, 10000.0f, 0.5f, use_divs ? divs : NULL);
                cpu_rope(ref + (size_t)t * H * D, H, D, n_rot, cs, (enum model_rope_mode)mode);
            }
            CHECK_OK(cuda_upload(dx, x, tot * 4));
            CHECK_OK(cuda_rope(dx, (int64_t)H * D, n_tok, H, D, n_rot, dpos, 10000.0f, 0.5f,
                               use_divs ? ddivs : NULL, mode, NULL));
            CHECK_OK(cuda_download(got, dx, tot * 4));
            check_close("rope", got, ref, tot, 0.0, 1e-5);
        }
    }
    free(x), free(ref), free(got);
    cuda_free(dpos), cuda_free(dx), cuda_free(ddivs);
}

/* One attention run vs cpu_attn_head on the same F16 cache. */
static void attn_case(int n_tok, int64_t pos0, int H, int Hk, int D, uint32_t window, int n_split)
{
    const int64_t n_ctx = pos0 + n_tok + 3;
    const int64_t kvw = (int64_t)Hk * D;
    size_t nq = (size_t)n_tok * H * D, nk = (size_t)n_tok * kvw, nc = (size_t)(n_ctx * kvw);
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4);
    float *ref = malloc(nq * 4), *got = malloc(nq * 4), *scores = malloc((size_t)n_ctx * 4);
    uint16_t *kc = malloc(nc * 2), *vc = malloc(nc * 2);
    REQUIRE(q && k && v && ref && got && scores && kc && vc);
    fill_gauss(q, nq, 1.0f);
    fill_gauss(k, nk, 1.0f);
    fill_gauss(v, nk, 1.0f);
    /* history [0, pos0) random, rows past the new tokens poisoned (must not be read) */
    for (size_t i = 0; i < nc; i++) {
        kc[i] = f32_to_f16((float)test_rng_gauss());
        vc[i] = f32_to_f16((float)test_rng_gauss());
    }
    for (size_t i = (size_t)((pos0 + n_tok) * kvw); i < nc; i++)
        kc[i] = vc[i] = 0x7e00; /* NaN */
    void *dkc = NULL, *dvc = NULL, *dpos = NULL, *ws = NULL;
    CHECK_OK(cuda_alloc(&dkc, nc * 2));
    CHECK_OK(cuda_alloc(&dvc, nc * 2));
    CHECK_OK(cuda_alloc(&dpos, 4));
    REQUIRE(dkc && dvc && dpos);
    CHECK_OK(cuda_upload(dkc, kc, nc * 2));
    CHECK_OK(cuda_upload(dvc, vc, nc * 2));
    CHECK_OK(cuda_i32_set(dpos, (int32_t)pos0, NULL));
    float *dq = dev_floats(q, nq), *dk = dev_floats(k, nk), *dv = dev_floats(v, nk);
    float *dout = dev_poisoned(nq);
    REQUIRE(dq && dk && dv && dout);
    struct cuda_attn_args a = {dq, dk, dv, dkc, dvc, dout, dpos, n_tok, H, Hk, D, n_ctx, 0,
                               1.0f / sqrtf((float)D), window, n_split};
    CHECK_OK(cuda_alloc(&ws, cuda_attn_ws_bytes(&a)));
    REQUIRE(ws);
    CHECK_OK(cuda_kv_store(&a, NULL));
    CHECK_OK(cuda_attention(&a, ws, NULL));
    CHECK_OK(cuda_synchronize());
    CHECK_OK(cuda_download(got, dout, nq * 4));

    for (size_t i = 0; i < nk; i++) {
        kc[(size_t)pos0 * kvw + i] = f32_to_f16(k[i]);
        vc[(size_t)pos0 * kvw + i] = f32_to_f16(v[i]);
    }
    struct cpu_attn_kernels ak = {cpu_dot_f16_scalar, cpu_axpy_f16_scalar, cpu_attn_heads_ref,
                                  cpu_exp_sum_scalar};
    for (int t = 0; t < n_tok; t++) {
        int64_t p = pos0 + t, lo = window && p + 1 > (int64_t)window ? p + 1 - window : 0;
        for (int h = 0; h < H; h++) {
            int64_t off = (int64_t)(h / (H / Hk)) * D;
            cpu_attn_head(&ak, ref + ((size_t)t * H + h) * D, q + ((size_t)t * H + h) * D,
                          kc + lo * kvw + off, vc + lo * kvw + off, (size_t)kvw, lo, p, D,
                          1.0f / sqrtf((float)D), scores);
        }
    }
    char what[96];
    snprintf(what, sizeof what, "attention tok %d pos0 %lld H %d/%d D %d win %u split %d", n_tok,
             (long long)pos0, H, Hk, D, window, n_split);
    check_close(what, got, ref, nq, 0.0, 2e-4);
    /* the new rows of the cache hold exactly the rounded k/v */
    uint16_t *back = malloc(nk * 2);
    REQUIRE(back);
    CHECK_OK(cuda_download(back, (uint8_t *)dkc + (size_t)pos0 * kvw * 2, nk * 2));
    CHECK(memcmp(back, kc + (size_t)pos0 * kvw, nk * 2) == 0);
    free(back);
    free(q), free(k), free(v), free(ref), free(got), free(scores), free(kc), free(vc);
    cuda_free(dkc), cuda_free(dvc), cuda_free(dpos), cuda_free(ws);
    cuda_free(dq), cuda_free(dk), cuda_free(dv), cuda_free(dout);
}

TEST(attention_decode)
{
    NEED_DEVICE();
    test_rng_seed(17);
    attn_case(1, 0, 4, 4, 64, 0, 1);        /* first token: one position */
    attn_case(1, 777, 8, 2, 128, 0, 1);     /* GQA, one split */
    attn_case(1, 777, 8, 2, 128, 0, 13);    /* same, flash-decoding splits */
    attn_case(1, 777, 6, 3, 256, 100, 7);   /* sliding window, D = 256 */
    attn_case(2, 40, 4, 1, 64, 0, 64);      /* more splits than positions */
}

TEST(attention_prefill)
{
    NEED_DEVICE();
    test_rng_seed(18);
    attn_case(7, 5, 8, 4, 64, 0, 1);       /* below CUDA_ATTN_TILED_MIN_TOK: split kernel */
    attn_case(64, 0, 4, 2, 128, 16, 1);    /* tiled; window inside the batch */
    attn_case(37, 100, 6, 2, 256, 0, 1);   /* tiled; partial tile, history, D = 256 */
    attn_case(100, 50, 4, 4, 64, 33, 1);   /* tiled; window spanning tiles */
    attn_case(512, 0, 2, 1, 64, 0, 2);     /* split kernel at prefill size */
}

TEST(pos_counter)
{
    NEED_DEVICE();
    void *d = NULL;
    int32_t v = 0;
    CHECK_OK(cuda_alloc(&d, 4));
    REQUIRE(d);
    CHECK_OK(cuda_i32_set(d, 41, NULL));
    CHECK_OK(cuda_i32_add(d, 3, NULL));
    CHECK_OK(cuda_download(&v, d, 4));
    CHECK_INT_EQ(v, 44);
    cuda_free(d);
}

/*
 * The CUDA backend (cuda/backend.c) through the vtables against the CPU
 * backend: one attention block and one FFN block plus embedding and logits,
 * the way the scheduler issues them, as one graph_run per device. Inputs are
 * identical bytes on both; the chain's outputs agree within 3e-2 x max|ref|
 * (test-backend.c's MATMUL tolerance: the CPU rounds activations to 8 bits,
 * CUDA keeps F32). Mixed weight types in one MATMUL (Q4_K q, Q6_K k/v) and
 * rows that are not 16-byte multiples (Q6_K, K = 256: 210 bytes) exercise the
 * per-weight fallback to the MMA kernel.
 */
#define BK_N 5
#define BK_E 256
#define BK_H 4
#define BK_HK 2
#define BK_D 64
#define BK_F 512
#define BK_V 300
#define BK_CTX 256 /* > 128 rows: decode attention splits (cuda_attn_pick_split) */
#define BK_POS0 3

enum { T_IDS, T_TABLE, T_X, T_XN, T_WN, T_WQ, T_WK, T_WV, T_BQ, T_Q, T_K, T_V, T_QN, T_KN,
       T_KC, T_VC, T_ATT, T_WO, T_TMP, T_W2, T_WG, T_WU, T_G, T_U, T_WD, T_NW, T_OUT, T_Y,
       T_COUNT };

struct bk_spec {
    hearth_dtype type;
    int64_t ne0, n_rows;
};

static const struct bk_spec bk_specs[T_COUNT] = {
    [T_IDS] = {HEARTH_DTYPE_I32, BK_N, 1},       [T_TABLE] = {HEARTH_DTYPE_Q4_0, BK_E, 50},
    [T_X] = {HEARTH_DTYPE_F32, BK_E, BK_N},      [T_XN] = {HEARTH_DTYPE_F32, BK_E, BK_N},
    [T_WN] = {HEARTH_DTYPE_F32, BK_E, 1},        [T_WQ] = {HEARTH_DTYPE_Q4_K, BK_E, BK_H * BK_D},
    [T_WK] = {HEARTH_DTYPE_Q6_K, BK_E, BK_HK * BK_D},
    [T_WV] = {HEARTH_DTYPE_Q6_K, BK_E, BK_HK * BK_D},
    [T_BQ] = {HEARTH_DTYPE_F32, BK_H * BK_D, 1}, [T_Q] = {HEARTH_DTYPE_F32, BK_H * BK_D, BK_N},
    [T_K] = {HEARTH_DTYPE_F32, BK_HK * BK_D, BK_N}, [T_V] = {HEARTH_DTYPE_F32, BK_HK * BK_D, BK_N},
    [T_QN] = {HEARTH_DTYPE_F32, BK_D, 1},        [T_KN] = {HEARTH_DTYPE_F32, BK_D, 1},
    [T_KC] = {HEARTH_DTYPE_F16, BK_HK * BK_D, BK_CTX},
    [T_VC] = {HEARTH_DTYPE_F16, BK_HK * BK_D, BK_CTX},
    [T_ATT] = {HEARTH_DTYPE_F32, BK_H * BK_D, BK_N}, [T_WO] = {HEARTH_DTYPE_F16, BK_H * BK_D, BK_E},
    [T_TMP] = {HEARTH_DTYPE_F32, BK_E, BK_N},    [T_W2] = {HEARTH_DTYPE_F32, BK_E, 1},
    [T_WG] = {HEARTH_DTYPE_Q4_0, BK_E, BK_F},    [T_WU] = {HEARTH_DTYPE_Q4_0, BK_E, BK_F},
    [T_G] = {HEARTH_DTYPE_F32, BK_F, BK_N},      [T_U] = {HEARTH_DTYPE_F32, BK_F, BK_N},
    [T_WD] = {HEARTH_DTYPE_Q8_0, BK_F, BK_E},    [T_NW] = {HEARTH_DTYPE_F32, BK_E, 1},
    [T_OUT] = {HEARTH_DTYPE_Q8_0, BK_E, BK_V},   [T_Y] = {HEARTH_DTYPE_F32, BK_V, BK_N},
};

/* Allocates every tensor on dev and uploads the same host bytes (init[i], or zeros). */
static bool bk_alloc(struct hearth_device *dev, uint8_t *const *init, struct hearth_tensor *t)
{
    for (int i = 0; i < T_COUNT; i++) {
        const struct bk_spec *sp = &bk_specs[i];
        uint64_t rb = (uint64_t)sp->ne0 * 4u; /* I32 ids */
        if (sp->type != HEARTH_DTYPE_I32 && !quant_row_bytes(sp->type, (uint64_t)sp->ne0, &rb))
            return false;
        size_t n = (size_t)rb * (size_t)sp->n_rows;
        struct hearth_buffer *b = NULL;
        CHECK_OK(backend_buffer_alloc(backend_device_buffer_type(dev), n, &b));
        if (!b)
            return false;
        t[i] = (struct hearth_tensor){b, 0, sp->type, sp->ne0, sp->n_rows, (size_t)rb};
        if (init[i])
            CHECK_OK(backend_buffer_set(b, 0, init[i], n));
        else
            CHECK_OK(backend_buffer_clear(b, 0));
    }
    return true;
}

static void bk_ops(const struct hearth_tensor *t, struct hearth_op *ops)
{
    memset(ops, 0, 9 * sizeof *ops);
    for (int i = 0; i < 9; i++)
        ops[i].n_tok = BK_N;
    ops[0].kind = HEARTH_OP_EMBED;
    ops[0].u.embed = (struct hearth_op_embed){t[T_TABLE], t[T_IDS], t[T_X], 1.0f};
    ops[1].kind = HEARTH_OP_RMSNORM;
    ops[1].u.rmsnorm = (struct hearth_op_rmsnorm){t[T_X], t[T_WN], t[T_XN], 1e-5f};
    ops[2].kind = HEARTH_OP_MATMUL;
    ops[2].u.matmul.n_w = 3;
    ops[2].u.matmul.x = t[T_XN];
    ops[2].u.matmul.w[0] = t[T_WQ], ops[2].u.matmul.w[1] = t[T_WK], ops[2].u.matmul.w[2] = t[T_WV];
    ops[2].u.matmul.b[0] = t[T_BQ];
    ops[2].u.matmul.y[0] = t[T_Q], ops[2].u.matmul.y[1] = t[T_K], ops[2].u.matmul.y[2] = t[T_V];
    ops[3].kind = HEARTH_OP_ATTENTION;
    struct hearth_op_attention *a = &ops[3].u.attn;
    a->q = t[T_Q], a->k = t[T_K], a->v = t[T_V], a->q_norm = t[T_QN], a->k_norm = t[T_KN];
    a->k_cache = t[T_KC], a->v_cache = t[T_VC], a->out = t[T_ATT];
    a->n_head = BK_H, a->n_head_kv = BK_HK, a->head_dim = BK_D, a->n_rot = BK_D;
    a->rope_mode = HEARTH_ROPE_NEOX, a->rope_base = 10000.0f, a->rope_freq_scale = 1.0f;
    a->norm_eps = 1e-6f, a->scale = 0.125f, a->pos0 = BK_POS0, a->window = 0;
    ops[4].kind = HEARTH_OP_MATMUL;
    ops[4].u.matmul.n_w = 1;
    ops[4].u.matmul.x = t[T_ATT], ops[4].u.matmul.w[0] = t[T_WO], ops[4].u.matmul.y[0] = t[T_TMP];
    ops[5].kind = HEARTH_OP_ADD;
    ops[5].u.add = (struct hearth_op_add){t[T_X], t[T_TMP], t[T_W2], 1e-6f};
    ops[6].kind = HEARTH_OP_MATMUL;
    ops[6].u.matmul.n_w = 2;
    ops[6].u.matmul.x = t[T_X], ops[6].u.matmul.w[0] = t[T_WG], ops[6].u.matmul.w[1] = t[T_WU];
    ops[6].u.matmul.y[0] = t[T_G], ops[6].u.matmul.y[1] = t[T_U];
    ops[7].kind = HEARTH_OP_GLU;
    ops[7].u.glu = (struct hearth_op_glu){t[T_G], t[T_U], HEARTH_GLU_SILU};
    ops[8].kind = HEARTH_OP_LOGITS;
    ops[8].u.logits = (struct hearth_op_logits){t[T_X], t[T_NW], t[T_OUT], t[T_Y], 1e-6f};
}

/* Host contents of the block: weights quantized from gaussians, norms near 1, ids, cache history. */
static bool bk_init(uint8_t **init)
{
    memset(init, 0, T_COUNT * sizeof *init);
    for (int i = 0; i < T_COUNT; i++) {
        const struct bk_spec *sp = &bk_specs[i];
        if (i == T_IDS) {
            int32_t *ids = malloc(BK_N * 4);
            if (!ids)
                return false;
            for (int k = 0; k < BK_N; k++)
                ids[k] = (int32_t)(test_rng_u64() % 50);
            init[i] = (uint8_t *)ids;
            continue;
        }
        bool is_act = i == T_X || i == T_XN || i == T_Q || i == T_K || i == T_V || i == T_ATT ||
                      i == T_TMP || i == T_G || i == T_U || i == T_Y;
        if (is_act)
            continue;
        size_t ne = (size_t)(sp->ne0 * sp->n_rows);
        float *f = malloc(ne * 4);
        uint64_t rb = 0;
        if (!f || !quant_row_bytes(sp->type, (uint64_t)sp->ne0, &rb)) {
            free(f);
            return false;
        }
        bool is_gain = i == T_WN || i == T_QN || i == T_KN || i == T_W2 || i == T_NW;
        for (size_t k = 0; k < ne; k++)
            f[k] = is_gain ? 1.0f + 0.1f * (float)test_rng_gauss() : 0.5f * (float)test_rng_gauss();
        init[i] = malloc((size_t)rb * (size_t)sp->n_rows);
        if (!init[i]) {
            free(f);
            return false;
        }
        if (i == T_KC || i == T_VC) /* history rows [0, pos0), zeros after */
            for (size_t k = (size_t)BK_POS0 * (size_t)sp->ne0; k < ne; k++)
                f[k] = 0.0f;
        quant_get(sp->type)->from_float(f, init[i], (int64_t)ne);
        free(f);
    }
    return true;
}

TEST(backend_block_matches_cpu)
{
    NEED_DEVICE();
    test_rng_seed(19);
    uint8_t *init[T_COUNT];
    REQUIRE(bk_init(init));
    struct hearth_device *cpu = NULL, *gpu = NULL;
    struct cpu_backend_params cp = {.n_threads = 1, .isa = -1, .name = "cpu-ref"};
    CHECK_OK(cpu_backend_device_create(&cp, &cpu));
    CHECK_OK(cuda_backend_ops()->device_open(0, &gpu));
    REQUIRE(cpu && gpu);
    struct hearth_tensor tc[T_COUNT], tg[T_COUNT];
    struct hearth_op oc[9], og[9];
    struct hearth_stream *sc = NULL, *sg = NULL;
    REQUIRE(bk_alloc(cpu, init, tc) && bk_alloc(gpu, init, tg));
    bk_ops(tc, oc);
    bk_ops(tg, og);
    CHECK_OK(backend_stream_create(cpu, &sc));
    CHECK_OK(backend_stream_create(gpu, &sg));
    REQUIRE(sc && sg);
    CHECK_OK(backend_stream_run(sc, oc, 9));
    CHECK_OK(backend_stream_run(sg, og, 9));
    CHECK_OK(backend_stream_synchronize(sc));
    CHECK_OK(backend_stream_synchronize(sg));
    const int check[] = {T_XN, T_Q, T_K, T_ATT, T_X, T_G, T_Y};
    const char *names[] = {"xn", "q", "k", "att", "x", "g", "logits"};
    for (size_t c = 0; c < sizeof check / sizeof check[0]; c++) {
        const struct hearth_tensor *a = &tc[check[c]], *b = &tg[check[c]];
        size_t n = (size_t)(a->ne0 * a->n_rows);
        float *ra = malloc(n * 4), *rg = malloc(n * 4);
        REQUIRE(ra && rg);
        CHECK_OK(backend_buffer_get(a->buf, 0, ra, n * 4));
        CHECK_OK(backend_buffer_get(b->buf, 0, rg, n * 4));
        double mx = 0.0;
        for (size_t k = 0; k < n; k++)
            mx = fmax(mx, fabs((double)ra[k]));
        char what[64];
        snprintf(what, sizeof what, "backend %s (max|ref| %.3g)", names[c], mx);
        check_close(what, rg, ra, n, 0.0, 3e-2 * mx);
        free(ra);
        free(rg);
    }
    /* the new K rows in the cache: same F16 rows up to the chain's error */
    backend_stream_destroy(sc);
    backend_stream_destroy(sg);
    for (int i = 0; i < T_COUNT; i++) {
        backend_buffer_free(tc[i].buf);
        backend_buffer_free(tg[i].buf);
        free(init[i]);
    }
    backend_device_destroy(cpu);
    backend_device_destroy(gpu);
}

static void bk_free(struct hearth_tensor *t)
{
    for (int i = 0; i < T_COUNT; i++)
        backend_buffer_free(t[i].buf);
}

/* Bytes of t that differ between two devices' copies of it (whole buffers). */
static size_t bk_diff(const struct hearth_tensor *a, const struct hearth_tensor *b)
{
    size_t n = a->buf->size, diff = 0;
    uint8_t *ha = malloc(n), *hb = malloc(n);
    if (!ha || !hb) {
        free(ha);
        free(hb);
        return (size_t)-1;
    }
    if (backend_buffer_get(a->buf, 0, ha, n) != HEARTH_OK ||
        backend_buffer_get(b->buf, 0, hb, n) != HEARTH_OK)
        diff = (size_t)-1;
    for (size_t i = 0; diff != (size_t)-1 && i < n; i++)
        diff += ha[i] != hb[i];
    free(ha);
    free(hb);
    return diff;
}

#define GR_STEPS 40

/*
 * CUDA graphs (cuda/graph-cache.h): the block above as decode steps (n_tok
 * 1) on two streams of one device, stream 0 with graphs (the default),
 * stream 1 created under HEARTH_CUDA_GRAPH=0, each over its own tensors made
 * from the same bytes. Each step uploads a new token id and attends one
 * position further; the logits of every step, and x and both caches at the
 * end, must agree bit for bit, and stream 0 must have launched graphs. A
 * graph that kept a stale position (RoPE angle, cache row, attention
 * length) or read a stale id would diverge from the second launch on.
 * Midway a 5-token LOGITS (not graphable) grows the logits scratch, which
 * the 9-op graph points into: the steps after it must still agree.
 */
TEST(graph_decode_matches_eager)
{
    NEED_DEVICE();
    test_rng_seed(23);
    uint8_t *init[T_COUNT];
    REQUIRE(bk_init(init));
    struct hearth_device *gpu = NULL;
    CHECK_OK(cuda_backend_ops()->device_open(0, &gpu));
    REQUIRE(gpu);
    struct hearth_tensor t[2][T_COUNT];
    struct hearth_stream *s[2] = {NULL, NULL};
    REQUIRE(bk_alloc(gpu, init, t[0]) && bk_alloc(gpu, init, t[1]));
    CHECK_OK(backend_stream_create(gpu, &s[0]));
    setenv("HEARTH_CUDA_GRAPH", "0", 1);
    CHECK_OK(backend_stream_create(gpu, &s[1]));
    unsetenv("HEARTH_CUDA_GRAPH");
    REQUIRE(s[0] && s[1]);
    static int32_t ids[GR_STEPS]; /* set_async sources stay valid until the final synchronize */
    float *y[2] = {malloc(BK_V * 4), malloc(BK_V * 4)};
    REQUIRE(y[0] && y[1]);
    int bad_steps = 0;
    for (int step = 0; step < GR_STEPS; step++) {
        ids[step] = (int32_t)((step * 7 + 3) % 50);
        for (int k = 0; k < 2; k++) {
            struct hearth_op ops[9];
            bk_ops(t[k], ops);
            for (int i = 0; i < 9; i++)
                ops[i].n_tok = 1;
            ops[3].u.attn.pos0 = BK_POS0 + step;
            CHECK_OK(backend_stream_set_async(s[k], t[k][T_IDS].buf, 0, &ids[step], 4));
            CHECK_OK(backend_stream_run(s[k], ops, 9));
            if (step == GR_STEPS / 2) {
                ops[8].n_tok = BK_N;
                CHECK_OK(backend_stream_run(s[k], &ops[8], 1));
            }
            CHECK_OK(backend_stream_synchronize(s[k]));
            CHECK_OK(backend_buffer_get(t[k][T_Y].buf, 0, y[k], BK_V * 4));
        }
        bad_steps += memcmp(y[0], y[1], BK_V * 4) != 0;
    }
    CHECK_MSG(bad_steps == 0, "%d of %d decode steps: graph logits differ from op by op",
              bad_steps, GR_STEPS);
    const int state[] = {T_X, T_KC, T_VC};
    for (size_t i = 0; i < sizeof state / sizeof state[0]; i++)
        CHECK_MSG(bk_diff(&t[0][state[i]], &t[1][state[i]]) == 0,
                  "tensor %d: graph and op-by-op streams differ after %d steps", state[i],
                  GR_STEPS);
    struct cuda_graph_stats g0, g1;
    cuda_backend_graph_stats(s[0], &g0);
    cuda_backend_graph_stats(s[1], &g1);
    printf("graphs: %llu captures, %llu launches, %llu eager, %llu failed captures\n",
           (unsigned long long)g0.captures, (unsigned long long)g0.launches,
           (unsigned long long)g0.eager, (unsigned long long)g0.failures);
    CHECK_MSG(g0.captures >= 1 && g0.launches >= GR_STEPS - 4 && g0.failures == 0,
              "stream 0: %llu captures, %llu launches of %d steps, %llu failures",
              (unsigned long long)g0.captures, (unsigned long long)g0.launches, GR_STEPS,
              (unsigned long long)g0.failures);
    CHECK_MSG(g1.launches == 0, "HEARTH_CUDA_GRAPH=0 stream launched %llu graphs",
              (unsigned long long)g1.launches);
    free(y[0]);
    free(y[1]);
    backend_stream_destroy(s[0]);
    backend_stream_destroy(s[1]);
    bk_free(t[0]);
    bk_free(t[1]);
    for (int i = 0; i < T_COUNT; i++)
        free(init[i]);
    backend_device_destroy(gpu);
}

TEST_MAIN(TEST_CASE(matvec_every_type), TEST_CASE(matvec_q8_every_type),
          TEST_CASE(matmul_mixed_types),
          TEST_CASE(matmul_mma_every_type), TEST_CASE(matmul_blas_every_type),
          TEST_CASE(dequant_and_embed_every_type),
          TEST_CASE(rmsnorm_add_glu_scale), TEST_CASE(rope_both_modes),
          TEST_CASE(attention_decode), TEST_CASE(attention_prefill), TEST_CASE(pos_counter),
          TEST_CASE(backend_block_matches_cpu), TEST_CASE(graph_decode_matches_eager))

#else /* no CUDA backend in this build */

TEST(cuda_ops)
{
    TEST_SKIP("no CUDA device (CUDA backend not built)");
}

TEST_MAIN(TEST_CASE(cuda_ops))
#endif
