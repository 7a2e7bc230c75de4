/*
 * test-vexp: the AVX2 e^x (vexp-avx2.h, through cpu_exp_avx2) and the AVX2 GLU
 * activations built on it (ops-avx2.c).
 *
 * e^x is held against double exp over a dense sweep of the float range, an
 * exhaustive walk around the overflow and underflow thresholds (where the
 * two-factor 2^n and the subnormal rounding live) and the special values; the
 * error is counted in ulps of the float nearest e^x (2^−149 for subnormal
 * results). The GLUs are held against the double formula x / (1 + e^−z) and
 * against the scalar cpu_swiglu / cpu_geglu on random and edge inputs. Where
 * the CPU has no AVX2/FMA the cases skip.
 */
#include <float.h>
#include <math.h>

#include "cpu/ops.h"
#include "test.h"

static float f_of(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static uint32_t bits_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* |y − e^x| in ulps of the float grid at e^x; y must be +inf when e^x rounds to it. */
static double exp_ulps(float x, float y)
{
    double ref = exp((double)x);
    if (isinf((float)ref))
        return isinf(y) && y > 0 ? 0.0 : (double)INFINITY;
    if (!isfinite(y) || y < 0)
        return (double)INFINITY;
    double ulp = ref < (double)FLT_MIN ? ldexp(1.0, -149) : ldexp(1.0, ilogb(ref) - 23);
    return fabs((double)y - ref) / ulp;
}

struct sweep {
    double worst;
    float worst_x;
    long n;
};

/* e^x of the floats with bits lo, lo + step, ... < hi, in chunks through cpu_exp_avx2. */
static void sweep_bits(struct sweep *s, uint64_t lo, uint64_t hi, uint64_t step)
{
    enum { CH = 1024 };
    float x[CH], y[CH];
    for (uint64_t b = lo; b < hi;) {
        int n = 0;
        for (; n < CH && b < hi; n++, b += step)
            x[n] = f_of((uint32_t)b);
        cpu_exp_avx2(y, x, n);
        for (int i = 0; i < n; i++) {
            double e = exp_ulps(x[i], y[i]);
            if (!(e <= s->worst)) /* also takes a NaN error */
                s->worst = e, s->worst_x = x[i];
        }
        s->n += n;
    }
}

/* 2 ulp: Cephes' polynomial (<= 1 ulp in float arithmetic) plus the final scaling's rounding. */
#define EXP_MAX_ULPS 2.0

TEST(exp_range)
{
    if (!cpu_isa_supported(CPU_ISA_AVX2))
        TEST_SKIP("this CPU (or OS) has no AVX2/FMA");
    struct sweep s = {0};
    /* every 61st float of each sign up to |x| = 128 (beyond: only 0 or inf), both ends included */
    sweep_bits(&s, 0, bits_of(128.0f) + 1, 61);
    sweep_bits(&s, 0x80000000u, bits_of(-128.0f) + 1, 61);
    /* every float of [−1, 1] near 0's ulp scale: exercises n = 0 and the polynomial alone */
    sweep_bits(&s, bits_of(0.25f), bits_of(0.35f), 1);
    sweep_bits(&s, bits_of(-0.35f), bits_of(-0.25f), 1);
    /* every float around the thresholds: overflow (88.72), subnormal (−87.34), zero (−103.97) */
    static const float edges[] = {88.7228390f, -87.3365448f, -103.972084f, -103.278931f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        uint32_t b = bits_of(edges[i]);
        sweep_bits(&s, b - 65536, b + 65536, 1);
    }
    printf("  e^x: %ld floats, worst %.3f ulp at x = %.9g\n", s.n, s.worst, (double)s.worst_x);
    CHECK_MSG(s.worst <= EXP_MAX_ULPS, "%.3f ulp at x = %.9g", s.worst, (double)s.worst_x);
}

TEST(exp_special)
{
    if (!cpu_isa_supported(CPU_ISA_AVX2))
        TEST_SKIP("this CPU (or OS) has no AVX2/FMA");
    const float x[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, FLT_MAX, -FLT_MAX,
                       89.0f, 1000.0f, -104.0f, -200.0f, 1e-30f, -1e-30f, 1.0f, 88.0f};
    enum { N = sizeof x / sizeof x[0] };
    float y[N];
    cpu_exp_avx2(y, x, N);
    CHECK(isnan(y[0]) && isnan(y[1]));
    CHECK(y[2] == INFINITY && y[3] == 0.0f && !signbit(y[3]));
    CHECK(y[4] == 1.0f && y[5] == 1.0f);
    CHECK(y[6] == INFINITY && y[7] == 0.0f);
    CHECK(y[8] == INFINITY && y[9] == INFINITY);
    CHECK(y[10] == 0.0f && y[11] == 0.0f && !signbit(y[11]));
    CHECK(y[12] == 1.0f && y[13] == 1.0f);
    CHECK(exp_ulps(x[14], y[14]) <= EXP_MAX_ULPS && exp_ulps(x[15], y[15]) <= EXP_MAX_ULPS);
}

/* The tail of a row (n % 8) gives the bits the same value gets in a full vector; y may alias x. */
TEST(exp_tail_and_alias)
{
    if (!cpu_isa_supported(CPU_ISA_AVX2))
        TEST_SKIP("this CPU (or OS) has no AVX2/FMA");
    test_rng_seed(5);
    float x[21], a[21], b[21];
    for (int i = 0; i < 21; i++)
        x[i] = (float)(20.0 * test_rng_gauss());
    for (int i = 0; i < 21; i++)
        cpu_exp_avx2(a + i, x + i, 1);
    memcpy(b, x, sizeof b);
    cpu_exp_avx2(b, b, 21);
    CHECK(memcmp(a, b, sizeof a) == 0);
}

/* The softmax numerator of attention: each e^(s − mx) within EXP_MAX_ULPS, the double sum exact to rounding. */
TEST(exp_sum)
{
    if (!cpu_isa_supported(CPU_ISA_AVX2))
        TEST_SKIP("this CPU (or OS) has no AVX2/FMA");
    struct cpu_attn_kernels ak;
    cpu_attn_kernels_get(CPU_ISA_AVX2, &ak);
    CHECK(ak.exp_sum == cpu_exp_sum_avx2);
    cpu_attn_kernels_get(CPU_ISA_SCALAR, &ak);
    CHECK(ak.exp_sum == cpu_exp_sum_scalar);
    test_rng_seed(7);
    enum { MAXN = 203 };
    float x[MAXN], y[MAXN];
    int bad = 0;
    for (int n = 1; n <= MAXN; n++) {
        float mx = -INFINITY;
        for (int j = 0; j < n; j++) {
            x[j] = (float)(8.0 * test_rng_gauss());
            mx = x[j] > mx ? x[j] : mx;
        }
        memcpy(y, x, sizeof y);
        double sum = cpu_exp_sum_avx2(y, n, mx), want = 0.0;
        for (int j = 0; j < n; j++) {
            bad += !(exp_ulps(x[j] - mx, y[j]) <= EXP_MAX_ULPS);
            want += (double)y[j];
        }
        bad += !(fabs(sum - want) <= 1e-14 * want);
        bad += memcmp(x + n, y + n, sizeof y - (size_t)n * sizeof *y) != 0; /* nothing past n */
    }
    CHECK_MSG(bad == 0, "%d elements or sums off", bad);
}

/* ---- GLU --------------------------------------------------------------------------------- */

/* act(x)·u in double: x / (1 + e^−z), z = x (SiLU) or 2√(2/π)(x + 0.044715 x³) (tanh-GELU) */
static double glu_ref(bool gelu, float xf, float uf, double *z)
{
    double x = xf;
    *z = gelu ? 2.0 * 0.7978845608028654 * (x + 0.044715 * x * x * x) : x;
    return x / (1.0 + exp(-*z)) * (double)uf;
}

/* Inputs: scaled Gaussians, uniform over [−100, 100], and edge values, u Gaussian or edge. */
enum { GN = 4099 }; /* not a multiple of 8: a tail too */
static void glu_inputs(float *x, float *u, int set)
{
    static const float edge[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-40f, -1e-40f, 100.0f, -100.0f,
                                 10.0f, -10.0f, 5.0f, -5.0f, 1.0f, -1.0f, 0.5f, -0.5f, 20.0f,
                                 -20.0f, 88.0f, -88.0f, 3.0f, -3.0f, 7.5f, -7.5f};
    static const double scale[] = {0.1, 1.0, 3.0, 10.0, 30.0};
    for (int i = 0; i < GN; i++) {
        if (set < 5)
            x[i] = (float)(scale[set] * test_rng_gauss());
        else if (set == 5)
            x[i] = (float)(200.0 * test_rng_uniform() - 100.0);
        else
            x[i] = edge[i % (int)(sizeof edge / sizeof edge[0])];
        u[i] = set == 6 && i % 5 == 0 ? (i % 10 ? 1.0f : -0.0f) : (float)test_rng_gauss();
    }
}

/*
 * Against double: the vector path's error is a few roundings relative to the
 * result, plus e^−z's sensitivity to the float rounding of z: a relative
 * error ε in z is one of |z|·ε in the result, and z carries up to five
 * half-ulp roundings (for GELU: x², the FMA, the product, and the two
 * constants; SiLU's z is exact), |z| up to ~90 before the result underflows;
 * plus an
 * absolute floor: e^−z overflows float for z < −88.7, where both paths give
 * ±0 for a true |x u| e^z below |x u|·2^−127.
 * Against scalar: the scalar tanh-GELU loses digits in 1 + tanh(y) for
 * negative y (absolute error ~|x u|·2^−24), so that bound has an absolute
 * part in |x u|.
 */
static void glu_check(bool gelu)
{
    if (!cpu_isa_supported(CPU_ISA_AVX2))
        TEST_SKIP("this CPU (or OS) has no AVX2/FMA");
    struct cpu_glu_kernels k, ks;
    cpu_glu_kernels_get(CPU_ISA_AVX2, &k);
    cpu_glu_kernels_get(CPU_ISA_SCALAR, &ks);
    CHECK(k.silu == cpu_swiglu_avx2 && k.gelu_tanh == cpu_geglu_avx2);
    CHECK(ks.silu == cpu_swiglu && ks.gelu_tanh == cpu_geglu);
    static float x[GN], u[GN], v[GN], s[GN], w[GN];
    test_rng_seed(gelu ? 21 : 22);
    double worst_d = 0.0, worst_s = 0.0;
    int bad = 0, bad_zero = 0, bad_pos = 0;
    for (int set = 0; set < 7; set++) {
        glu_inputs(x, u, set);
        memcpy(v, x, sizeof v);
        memcpy(s, x, sizeof s);
        (gelu ? k.gelu_tanh : k.silu)(v, u, GN);
        (gelu ? ks.gelu_tanh : ks.silu)(s, u, GN);
        /* one element at a time: the same bits as inside the row */
        for (int i = 0; i < GN; i++) {
            w[i] = x[i];
            (gelu ? k.gelu_tanh : k.silu)(w + i, u + i, 1);
        }
        bad_pos += memcmp(v, w, sizeof v) != 0;
        for (int i = 0; i < GN; i++) {
            double z, ref = glu_ref(gelu, x[i], u[i], &z);
            double tol_d = (6.0 + 5.0 * fabs(z)) * 0x1p-24 * fabs(ref) +
                           0x1p-120 * fabs((double)x[i] * (double)u[i]) + 0x1p-140;
            double d = fabs((double)v[i] - ref);
            double tol_s = 8.0 * 0x1p-24 * fabs((double)s[i]) +
                           2.0 * 0x1p-24 * fabs((double)x[i] * (double)u[i]) + 0x1p-140;
            double ds = fabs((double)v[i] - (double)s[i]);
            if (!(d <= tol_d) || !(ds <= tol_s)) {
                if (bad++ < 5)
                    fprintf(stderr, "    x %.9g u %.9g: avx2 %.9g scalar %.9g double %.9g\n",
                            (double)x[i], (double)u[i], (double)v[i], (double)s[i], ref);
            }
            worst_d = fmax(worst_d, d / tol_d);
            worst_s = fmax(worst_s, ds / tol_s);
            /* a zero input gives the scalar's signed zero (−0 in, −0·u out) */
            if (x[i] == 0.0f && (v[i] != 0.0f || signbit(v[i]) != signbit(s[i])))
                bad_zero++;
        }
    }
    printf("  %s: worst |avx2 - double| %.3f of bound, |avx2 - scalar| %.3f of bound\n",
           gelu ? "gelu_tanh" : "silu", worst_d, worst_s);
    CHECK_MSG(bad == 0, "%d elements outside the bounds", bad);
    CHECK_MSG(bad_zero == 0, "%d zero results differ from the scalar's in sign or value", bad_zero);
    CHECK_MSG(bad_pos == 0, "%d sets where an element's bits depend on its place in the row",
              bad_pos);
}

TEST(glu_silu)
{
    glu_check(false);
}

TEST(glu_gelu_tanh)
{
    glu_check(true);
}

/* inf and NaN inputs: the vector path gives what the scalar gives (NaN where it is NaN). */
TEST(glu_nonfinite)
{
    if (!cpu_isa_supported(CPU_ISA_AVX2))
        TEST_SKIP("this CPU (or OS) has no AVX2/FMA");
    const float x[] = {INFINITY, -INFINITY, NAN, 1e20f, -1e20f, FLT_MAX, -FLT_MAX, 50.0f};
    enum { N = sizeof x / sizeof x[0] };
    for (int gelu = 0; gelu < 2; gelu++) {
        float v[N], s[N], u[N];
        for (int i = 0; i < N; i++)
            u[i] = 2.0f;
        memcpy(v, x, sizeof v);
        memcpy(s, x, sizeof s);
        (gelu ? cpu_geglu_avx2 : cpu_swiglu_avx2)(v, u, N);
        (gelu ? cpu_geglu : cpu_swiglu)(s, u, N);
        for (int i = 0; i < N; i++)
            CHECK_MSG((isnan(v[i]) && isnan(s[i])) || bits_of(v[i]) == bits_of(s[i]) ||
                          fabsf(v[i] - s[i]) <= 1e-6f * fabsf(s[i]),
                      "%s(%g): avx2 %g scalar %g", gelu ? "gelu" : "silu", (double)x[i],
                      (double)v[i], (double)s[i]);
    }
}

TEST_MAIN(TEST_CASE(exp_range), TEST_CASE(exp_special), TEST_CASE(exp_tail_and_alias), TEST_CASE(exp_sum),
          TEST_CASE(glu_silu), TEST_CASE(glu_gelu_tanh), TEST_CASE(glu_nonfinite))
