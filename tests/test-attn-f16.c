/*
 * test-attn-f16: the grouped F16 attention (cpu_attn_heads, attn-f16-avx2.c)
 * against a plain C reference of the per-head kernel it replaced.
 *
 * The reference below restates cpu_attn_head with the AVX2 dot/axpy
 * operation by operation in scalar C (fmaf is the correctly rounded fused
 * multiply-add, like vfmadd): eight lanes per accumulator, two accumulators
 * per 16 dims, the lane folding of the final reduction, the max-subtracted
 * softmax with its double sum, one fused multiply-add per key and output
 * element. The softmax's e^x and double sum are the scalar loop or, for the
 * AVX2 kernels, cpu_exp_sum_avx2 itself (held against double exp by
 * test-vexp). The kernel must give the same bits (memcmp) for every head_dim,
 * GQA ratio and length here; a double-precision softmax checks that the
 * reference itself computes attention.
 */
#include <math.h>

#include "cpu/ops.h"
#include "f16.h"
#include "test.h"

enum { MAX_N = 1000, MAX_HD = 256, MAX_Q = 9, KV_PAD = 12 };

/* cpu_dot_f16_avx2's order, lane by lane. */
static float ref_dot_avx2(const float *q, const uint16_t *k, int hd)
{
    float a0[8] = {0}, a1[8] = {0};
    int i = 0;
    for (; i + 16 <= hd; i += 16)
        for (int l = 0; l < 8; l++) {
            a0[l] = fmaf(q[i + l], f16_to_f32(k[i + l]), a0[l]);
            a1[l] = fmaf(q[i + 8 + l], f16_to_f32(k[i + 8 + l]), a1[l]);
        }
    for (; i + 8 <= hd; i += 8)
        for (int l = 0; l < 8; l++)
            a0[l] = fmaf(q[i + l], f16_to_f32(k[i + l]), a0[l]);
    float v[8], t[4];
    for (int l = 0; l < 8; l++)
        v[l] = a0[l] + a1[l];
    for (int l = 0; l < 4; l++)
        t[l] = v[l] + v[l + 4];
    float r = (t[0] + t[2]) + (t[1] + t[3]);
    for (; i < hd; i++) {
        float p = q[i] * f16_to_f32(k[i]);
        r += p;
    }
    return r;
}

static float ref_dot_scalar(const float *q, const uint16_t *k, int hd)
{
    float s = 0.0f;
    for (int i = 0; i < hd; i++) {
        float p = q[i] * f16_to_f32(k[i]);
        s += p;
    }
    return s;
}

/* The replaced cpu_attn_head for one query head; avx2 picks the dot/axpy order. */
static void ref_attn_head(bool avx2, float *out, const float *q, const uint16_t *k0,
                          const uint16_t *v0, size_t stride, int n, int hd, float scale)
{
    static float sc[MAX_N];
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) {
        const uint16_t *k = k0 + (size_t)j * stride;
        float s = (avx2 ? ref_dot_avx2(q, k, hd) : ref_dot_scalar(q, k, hd)) * scale;
        sc[j] = s;
        mx = s > mx ? s : mx;
    }
    double sum = 0.0;
    if (avx2) {
        sum = cpu_exp_sum_avx2(sc, n, mx);
    } else {
        for (int j = 0; j < n; j++) {
            sc[j] = expf(sc[j] - mx);
            sum += (double)sc[j];
        }
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < hd; i++)
        out[i] = 0.0f;
    int vec = avx2 ? hd / 8 * 8 : 0; /* the AVX2 axpy fuses; its scalar tail does not */
    for (int j = 0; j < n; j++) {
        float a = sc[j] * inv;
        const uint16_t *v = v0 + (size_t)j * stride;
        for (int i = 0; i < vec; i++)
            out[i] = fmaf(a, f16_to_f32(v[i]), out[i]);
        for (int i = vec; i < hd; i++) {
            float p = a * f16_to_f32(v[i]);
            out[i] += p;
        }
    }
}

/* Attention in double, for the reference's own sanity. */
static double exact_attn(const float *q, const uint16_t *k0, const uint16_t *v0, size_t stride,
                         int n, int hd, float scale, int dim)
{
    static double sc[MAX_N];
    double mx = -INFINITY, sum = 0.0, o = 0.0;
    for (int j = 0; j < n; j++) {
        double s = 0.0;
        for (int i = 0; i < hd; i++)
            s += (double)q[i] * (double)f16_to_f32(k0[(size_t)j * stride + i]);
        sc[j] = s * (double)scale;
        mx = sc[j] > mx ? sc[j] : mx;
    }
    for (int j = 0; j < n; j++) {
        sc[j] = exp(sc[j] - mx);
        sum += sc[j];
    }
    for (int j = 0; j < n; j++)
        o += sc[j] / sum * (double)f16_to_f32(v0[(size_t)j * stride + dim]);
    return o;
}

static uint16_t kbuf[MAX_N * (2 * MAX_HD + KV_PAD)], vbuf[MAX_N * (2 * MAX_HD + KV_PAD)];
static float qbuf[MAX_Q * MAX_HD], got[MAX_Q * MAX_HD], want[MAX_HD];

/*
 * One case: n_q heads of head_dim hd over n positions of the second KV head of
 * rows holding two (stride 2·hd + KV_PAD halves, so rows are not 32-byte
 * aligned). kind 0: N(0,1) with scale 1/√hd; 1: a peaked softmax (scale 4);
 * 2: q all zero (uniform weights). Returns the number of heads that differ.
 */
static int run_case(const struct cpu_attn_kernels *ak, bool avx2, int hd, int n_q, int n, int kind)
{
    const size_t stride = 2 * (size_t)hd + KV_PAD, col = (size_t)hd;
    for (size_t i = 0; i < (size_t)n * stride; i++) {
        kbuf[i] = f32_to_f16((float)test_rng_gauss());
        vbuf[i] = f32_to_f16((float)test_rng_gauss());
    }
    for (int i = 0; i < n_q * hd; i++)
        qbuf[i] = kind == 2 ? 0.0f : (float)test_rng_gauss();
    float scale = kind == 1 ? 4.0f : 1.0f / sqrtf((float)hd);
    for (int i = 0; i < n_q * hd; i++)
        got[i] = NAN; /* every element must be written */
    /* exactly the size the API promises, so ASan sees an overrun */
    float *scratch = malloc(cpu_attn_scratch(n_q, n) * sizeof *scratch);
    if (!scratch) {
        TEST_FAIL_AT("out of memory for %d x %d scores", n_q, n);
        return 1;
    }
    cpu_attn_heads(ak, got, qbuf, n_q, kbuf + col, vbuf + col, stride, n, hd, scale, scratch);
    free(scratch);
    int bad = 0;
    for (int r = 0; r < n_q; r++) {
        const float *q = qbuf + r * hd;
        ref_attn_head(avx2, want, q, kbuf + col, vbuf + col, stride, n, hd, scale);
        if (memcmp(want, got + r * hd, (size_t)hd * sizeof(float)) != 0) {
            int i = 0;
            while (memcmp(&want[i], &got[r * hd + i], sizeof(float)) == 0)
                i++;
            if (bad++ == 0)
                fprintf(stderr, "    hd %d n_q %d n %d kind %d: head %d dim %d: %.9g != %.9g\n", hd,
                        n_q, n, kind, r, i, (double)got[r * hd + i], (double)want[i]);
        }
        int d = (int)(test_rng_u64() % (uint64_t)hd);
        double e = exact_attn(q, kbuf + col, vbuf + col, stride, n, hd, scale, d);
        CHECK_NEAR(want[d], e, 1e-4 * (1.0 + fabs(e)));
    }
    return bad;
}

static void sweep(const struct cpu_attn_kernels *ak, bool avx2)
{
    /* 72: an 8-dim step after the 16-dim ones; 36, 20: scalar tails (the per-head path) */
    static const int hds[] = {64, 128, 256, 72, 36, 20};
    static const int nqs[] = {1, 2, 3, 4, 5, 8, 9};
    static const int lens[] = {1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255, 256, 511, 1000};
    int cases = 0, bad = 0;
    for (size_t a = 0; a < sizeof hds / sizeof hds[0]; a++)
        for (size_t b = 0; b < sizeof nqs / sizeof nqs[0]; b++) {
            for (size_t c = 0; c < sizeof lens / sizeof lens[0]; c++, cases++)
                bad += run_case(ak, avx2, hds[a], nqs[b], lens[c], (int)(c % 3)) != 0;
            for (int c = 0; c < 4; c++, cases++) { /* and random lengths 1..1000 */
                int n = 1 + (int)(test_rng_u64() % MAX_N);
                bad += run_case(ak, avx2, hds[a], nqs[b], n, c % 3) != 0;
            }
        }
    CHECK_MSG(bad == 0, "%d of %d cases differ from the reference", bad, cases);
}

/* The sweep with isa's kernels; per_head: through cpu_attn_heads_ref (cpu_attn_head per head). */
static void sweep_isa(enum cpu_isa isa, bool per_head, uint64_t seed)
{
    if (isa == CPU_ISA_AVX2 && !cpu_isa_supported(CPU_ISA_AVX2))
        TEST_SKIP("this CPU (or OS) has no AVX2/FMA/F16C");
    test_rng_seed(seed);
    struct cpu_attn_kernels ak;
    cpu_attn_kernels_get(isa, &ak);
    CHECK(ak.heads == (isa == CPU_ISA_AVX2 ? cpu_attn_heads_avx2 : cpu_attn_heads_ref));
    if (per_head)
        ak.heads = NULL;
    sweep(&ak, isa == CPU_ISA_AVX2);
}

TEST(attn_heads_scalar)
{
    sweep_isa(CPU_ISA_SCALAR, false, 11);
}

TEST(attn_heads_avx2)
{
    sweep_isa(CPU_ISA_AVX2, false, 12);
}

/* The per-head kernel kept for other callers is the reference too. */
TEST(attn_head_matches_reference)
{
    sweep_isa(CPU_ISA_AVX2, true, 13);
}

/* Items cover every (token, head) once, a group never straddles KV heads, prefill takes it whole.
 */
TEST(attn_split)
{
    static const int shapes[][2] = {{9, 3}, {4, 1}, {8, 8}, {32, 8}, {12, 4}, {14, 2}};
    static const int toks[] = {1, 2, 5, 64}, threads[] = {1, 2, 3, 16};
    for (size_t a = 0; a < sizeof shapes / sizeof shapes[0]; a++)
        for (size_t b = 0; b < sizeof toks / sizeof toks[0]; b++)
            for (size_t c = 0; c < sizeof threads / sizeof threads[0]; c++) {
                const int nh = shapes[a][0], nkv = shapes[a][1], nt = toks[b];
                struct cpu_attn_split sp;
                cpu_attn_split_init(&sp, nt, nh, nkv, threads[c]);
                CHECK_INT_EQ(sp.n_gqa, nh / nkv);
                REQUIRE(sp.qb >= 1 && sp.n_gqa % sp.qb == 0);
                CHECK_INT_EQ(sp.per_tok * sp.qb, nh);
                if (nt == 64 && threads[c] <= 16)
                    CHECK_INT_EQ(sp.qb, sp.n_gqa);
                int seen[64][32] = {{0}};
                for (int64_t it = 0; it < (int64_t)nt * sp.per_tok; it++) {
                    int t, h;
                    cpu_attn_split_item(&sp, it, &t, &h);
                    REQUIRE(t >= 0 && t < nt && h >= 0 && h + sp.qb <= nh);
                    CHECK_INT_EQ(h / sp.n_gqa, (h + sp.qb - 1) / sp.n_gqa);
                    for (int r = 0; r < sp.qb; r++)
                        seen[t][h + r]++;
                }
                for (int t = 0; t < nt; t++)
                    for (int h = 0; h < nh; h++)
                        CHECK_INT_EQ(seen[t][h], 1);
            }
}

TEST_MAIN(TEST_CASE(attn_heads_scalar), TEST_CASE(attn_heads_avx2),
          TEST_CASE(attn_head_matches_reference), TEST_CASE(attn_split))
