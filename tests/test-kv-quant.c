/*
 * test-kv-quant: the compressed KV head-vector formats (kv-quant.h) and the
 * CPU attention over them (cpu/attn-kvq.h).
 *
 * Rotation: orthogonality, agreement with the explicit Hadamard matrix,
 * seeding. Codebooks: recomputed Lloyd-Max levels against the stored ones and
 * the classical Gaussian MSEs. Codecs: sizes against the bits-per-value
 * formula, round-trip error bounds per type on Gaussian vectors and on vectors
 * with outlier channels (where rotation must beat q4_0 at fewer bits).
 * Attention: the kernel against a double-precision reference on the decoded
 * K/V (tight: only the kernel's float rounding separates them) and on the
 * original f32 K/V (the quantization error, bounded per type). The bounds
 * are the measured values (docs/kv-cache.md) with ~25% headroom.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/attn-kvq.h"
#include "kv-quant.h"
#include "test.h"

static const int dims[] = {64, 128, 256};
#define N_DIMS 3

static void fill_gauss(float *x, int n, double sd)
{
    for (int i = 0; i < n; i++)
        x[i] = (float)(test_rng_gauss() * sd);
}

/* Gaussian vector with channels 3 and d/2+5 at f times, like the outlier channels of real keys. */
static void fill_outlier(float *x, int d, float f)
{
    fill_gauss(x, d, 1.0);
    x[3] *= f;
    x[d / 2 + 5] *= f;
}

/* ---- rotation ------------------------------------------------------------------ */

TEST(rotate_orthogonal)
{
    static const int ds[] = {32, 64, 128, 256, 512, 96, 160, 480};
    test_rng_seed(1);
    for (size_t k = 0; k < sizeof ds / sizeof ds[0]; k++) {
        int d = ds[k];
        struct kvq_rot r;
        CHECK_OK(kvq_rot_init(&r, d, 12345, 3));
        float x[KVQ_MAX_HEAD_DIM], y[KVQ_MAX_HEAD_DIM], z[KVQ_MAX_HEAD_DIM];
        for (int rep = 0; rep < 10; rep++) {
            fill_gauss(x, d, 1.0);
            kvq_rot_forward(&r, x, y);
            kvq_rot_inverse(&r, y, z);
            double nx = 0, ny = 0, e = 0;
            for (int i = 0; i < d; i++) {
                nx += (double)x[i] * (double)x[i];
                ny += (double)y[i] * (double)y[i];
                e = fmax(e, fabs((double)z[i] - (double)x[i]));
            }
            CHECK_NEAR(sqrt(ny) / sqrt(nx), 1.0, 1e-5);
            CHECK_MSG(e <= 1e-5 * sqrt(nx / d) * 4, "d %d: max |R^T R x - x| = %g", d, e);
            /* in place gives the same */
            memcpy(z, x, sizeof(float) * (size_t)d);
            kvq_rot_forward(&r, z, z);
            CHECK(memcmp(z, y, sizeof(float) * (size_t)d) == 0);
        }
    }
}

/* R equals blockdiag(H) D / sqrt(L) with H[i][j] = (-1)^popcount(i & j). */
TEST(rotate_matches_matrix)
{
    static const int ds[] = {64, 96};
    test_rng_seed(2);
    for (size_t k = 0; k < 2; k++) {
        int d = ds[k];
        struct kvq_rot r;
        CHECK_OK(kvq_rot_init(&r, d, 7, 0));
        CHECK_INT_EQ(r.n_piece, d == 64 ? 1 : 2);
        float x[128], y[128];
        fill_gauss(x, d, 1.0);
        kvq_rot_forward(&r, x, y);
        double emax = 0;
        for (int p = 0; p < r.n_piece; p++) {
            int off = r.piece_off[p], len = r.piece_len[p];
            for (int i = 0; i < len; i++) {
                double s = 0;
                for (int j = 0; j < len; j++) {
                    double h = (__builtin_popcount((unsigned)(i & j)) & 1) ? -1.0 : 1.0;
                    s += h * (double)r.sign[off + j] * (double)x[off + j];
                }
                s /= sqrt((double)len);
                emax = fmax(emax, fabs(s - (double)y[off + i]));
            }
        }
        CHECK_MSG(emax < 1e-5, "d %d: max deviation from the explicit matrix %g", d, emax);
    }
}

TEST(rotate_seeding)
{
    struct kvq_rot a, b, c, m;
    CHECK_OK(kvq_rot_init(&a, 128, 99, 5));
    CHECK_OK(kvq_rot_init(&b, 128, 99, 5));
    CHECK_OK(kvq_rot_init(&c, 128, 99, 6));
    CHECK_OK(kvq_rot_init(&m, 128, 100, 5));
    CHECK(memcmp(a.sign, b.sign, sizeof a.sign) == 0);
    int diff_layer = 0, diff_model = 0, neg = 0;
    for (int i = 0; i < 128; i++) {
        CHECK(a.sign[i] == 1.0f || a.sign[i] == -1.0f);
        diff_layer += a.sign[i] != c.sign[i];
        diff_model += a.sign[i] != m.sign[i];
        neg += a.sign[i] < 0;
    }
    /* independent random signs: ~64 of 128 differ; 32..96 is > 5 sigma either side */
    CHECK_MSG(diff_layer > 32 && diff_layer < 96, "layers 5 and 6 differ in %d signs", diff_layer);
    CHECK_MSG(diff_model > 32 && diff_model < 96, "seeds 99 and 100 differ in %d", diff_model);
    CHECK_MSG(neg > 32 && neg < 96, "%d negative signs of 128", neg);
    /* FNV-1a 64 of "a" */
    CHECK(kvq_model_seed("a", 1) == 0xaf63dc4c8601ec8cull);
    CHECK(kvq_rot_init(&a, 100, 1, 0) == HEARTH_ERR_UNSUPPORTED);
    CHECK(kvq_rot_init(&a, 1024, 1, 0) == HEARTH_ERR_UNSUPPORTED);
}

/* ---- codebooks ------------------------------------------------------------------ */

TEST(codebook_lloyd_max)
{
    static const double known_mse[2] = {0.0345, 0.0095}; /* Max (1960), 8 and 16 levels */
    for (int bits = 3; bits <= 4; bits++) {
        const struct kvq_codebook *cb = kvq_codebook_get(bits);
        REQUIRE(cb && cb->n == 1 << bits && cb->bits == bits);
        double lv[16];
        double mse = kvq_lloyd_max_gauss(cb->n, 100000, lv);
        CHECK_NEAR(mse, known_mse[bits - 3], 0.05 * known_mse[bits - 3]);
        CHECK_NEAR(mse, cb->mse, 1e-6);
        for (int i = 0; i < cb->n; i++) {
            CHECK_NEAR(cb->level[i], lv[i], 1e-4);
            CHECK_NEAR(cb->level[i], -cb->level[cb->n - 1 - i], 1e-6);
            if (i > 0) {
                CHECK(cb->level[i] > cb->level[i - 1]);
                CHECK_NEAR(cb->thresh[i - 1], 0.5f * (cb->level[i] + cb->level[i - 1]), 1e-6);
            }
        }
        /* the empirical MSE of N(0,1) samples through the stored book */
        test_rng_seed(3);
        double se = 0;
        int n = 200000;
        for (int s = 0; s < n; s++) {
            float x = (float)test_rng_gauss();
            float q = cb->level[kvq_codebook_index(cb, x)];
            se += (double)(x - q) * (double)(x - q);
        }
        CHECK_NEAR(se / n, known_mse[bits - 3], 0.05 * known_mse[bits - 3]);
        printf("  %d-bit Lloyd-Max: exact MSE %.6f, sampled %.6f\n", bits, mse, se / n);
    }
    CHECK(kvq_codebook_get(2) == NULL);
    CHECK(kvq_lloyd_max_gauss(1, 10, (double[1]){0}) < 0);
}

TEST(codebook_nearest)
{
    test_rng_seed(4);
    for (int bits = 3; bits <= 4; bits++) {
        const struct kvq_codebook *cb = kvq_codebook_get(bits);
        for (int s = 0; s < 5000; s++) {
            float x = (float)(test_rng_gauss() * 1.5);
            int best = 0;
            for (int i = 1; i < cb->n; i++)
                if (fabsf(x - cb->level[i]) < fabsf(x - cb->level[best]))
                    best = i;
            int got = kvq_codebook_index(cb, x);
            CHECK_MSG(fabsf(x - cb->level[got]) == fabsf(x - cb->level[best]),
                      "x %g: index %d, nearest %d", (double)x, got, best);
        }
    }
}

/* ---- types, sizes -------------------------------------------------------------------- */

TEST(types_and_bits)
{
    static const int ds[] = {32, 64, 96, 128, 256, 512};
    for (int t = 0; t < KVQ_TYPE_COUNT; t++) {
        enum kvq_type got;
        CHECK_OK(kvq_type_from_name(kvq_type_name((enum kvq_type)t), &got));
        CHECK_INT_EQ(got, t);
        for (size_t k = 0; k < sizeof ds / sizeof ds[0]; k++) {
            int d = ds[k];
            int pieces = __builtin_popcount((unsigned)d / 32u);
            double want;
            switch ((enum kvq_type)t) {
            case KVQ_F16: want = 16.0; break;
            case KVQ_Q8_0: want = 8.5; break;   /* 34 bytes / 32 values */
            case KVQ_Q4_0: want = 4.5; break;   /* 18 bytes / 32 values */
            case KVQ_ROT4: want = 4.0 + 16.0 * pieces / d; break; /* codes + f16 per piece */
            default: want = 3.0 + 16.0 * pieces / d; break;
            }
            CHECK_NEAR(kvq_bits_per_value((enum kvq_type)t, d), want, 1e-12);
            CHECK_INT_EQ(kvq_head_bytes((enum kvq_type)t, d) * 8, (long long)(want * d + 0.5));
        }
        CHECK_INT_EQ(kvq_head_bytes((enum kvq_type)t, 48), t == KVQ_F16 ? 96 : 0);
        CHECK(kvq_check((enum kvq_type)t, 1024) == HEARTH_ERR_UNSUPPORTED);
    }
    CHECK_OK(kvq_type_from_name("ROT3", &(enum kvq_type){KVQ_F16}));
    enum kvq_type t;
    CHECK(kvq_type_from_name("q5_0", &t) == HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "rot4") != NULL);
    for (int k = 0; k < N_DIMS; k++)
        printf("  head_dim %3d bits/value: f16 %.4g  q8_0 %.4g  q4_0 %.4g  rot4 %.4g  rot3 %.4g\n",
               dims[k], kvq_bits_per_value(KVQ_F16, dims[k]),
               kvq_bits_per_value(KVQ_Q8_0, dims[k]), kvq_bits_per_value(KVQ_Q4_0, dims[k]),
               kvq_bits_per_value(KVQ_ROT4, dims[k]), kvq_bits_per_value(KVQ_ROT3, dims[k]));
}

/* ---- round trips ------------------------------------------------------------------ */

/* sqrt(Σ|x - x̂|² / Σ|x|²) over n_vec vectors of type t, head_dim d. */
static double roundtrip_err(enum kvq_type t, int d, int n_vec, float outliers)
{
    struct kvq_rot r;
    if (kvq_rot_init(&r, d, 42, 1) != HEARTH_OK)
        return INFINITY;
    float x[KVQ_MAX_HEAD_DIM], y[KVQ_MAX_HEAD_DIM];
    uint8_t buf[2 * KVQ_MAX_HEAD_DIM];
    double se = 0, sx = 0;
    for (int v = 0; v < n_vec; v++) {
        if (outliers > 0.0f)
            fill_outlier(x, d, outliers);
        else
            fill_gauss(x, d, 1.0);
        kvq_encode(t, &r, d, x, buf);
        kvq_decode(t, &r, d, buf, y);
        for (int i = 0; i < d; i++) {
            se += (double)(x[i] - y[i]) * (double)(x[i] - y[i]);
            sx += (double)x[i] * (double)x[i];
        }
    }
    return sqrt(se / sx);
}

/* Relative RMS error bounds, [type][gauss, outlier], from the measured values + ~25%. */
static const double rt_bound[KVQ_TYPE_COUNT][2] = {
    {2.6e-4, 2.6e-4},  /* f16 */
    {6.8e-3, 1.55e-2}, /* q8_0 */
    {0.108, 0.191},    /* q4_0 */
    {0.116, 0.103},    /* rot4 */
    {0.228, 0.198},    /* rot3 */
};

TEST(roundtrip)
{
    double err[KVQ_TYPE_COUNT][N_DIMS][2];
    for (int t = 0; t < KVQ_TYPE_COUNT; t++) {
        for (int k = 0; k < N_DIMS; k++) {
            for (int o = 0; o < 2; o++) {
                test_rng_seed(100 + (uint64_t)k);
                double e = roundtrip_err((enum kvq_type)t, dims[k], 200, o ? 20.0f : 0.0f);
                err[t][k][o] = e;
                CHECK_MSG(e <= rt_bound[t][o], "%s d %d %s: rel error %.4g > %.4g",
                          kvq_type_name((enum kvq_type)t), dims[k], o ? "outliers" : "gauss", e,
                          rt_bound[t][o]);
            }
        }
    }
    for (int k = 0; k < N_DIMS; k++) {
        /*
         * The point of rotation: fewer bits than q4_0 and less error on outlier
         * vectors for rot4 (and on Gaussian ones at d = 64); rot3, at 1.25-1.44
         * fewer bits, comes within 9%. On pure Gaussian vectors at d >= 128 q4_0's
         * extra 0.38-0.44 bits win by 2-7% (docs/kv-cache.md).
         */
        CHECK(err[KVQ_ROT4][k][1] < 0.7 * err[KVQ_Q4_0][k][1]);
        CHECK(err[KVQ_ROT3][k][1] < 1.15 * err[KVQ_Q4_0][k][1]);
        /* near the Gaussian Lloyd-Max limit sqrt(MSE) (scale in f16 and the finite-d fit) */
        CHECK(err[KVQ_ROT4][k][0] < 1.15 * sqrt(kvq_codebook_get(4)->mse));
        CHECK(err[KVQ_ROT3][k][0] < 1.15 * sqrt(kvq_codebook_get(3)->mse));
    }
    printf("  relative RMS error (gauss / 2 outlier channels at 20x):\n");
    for (int t = 0; t < KVQ_TYPE_COUNT; t++) {
        printf("    %-5s", kvq_type_name((enum kvq_type)t));
        for (int k = 0; k < N_DIMS; k++)
            printf("  d%-3d %.4g / %.4g", dims[k], err[t][k][0], err[t][k][1]);
        printf("\n");
    }
}

TEST(roundtrip_edge)
{
    /* zero and constant vectors, and a one-hot: no NaN, zero stays zero */
    for (int k = 0; k < N_DIMS; k++) {
        int d = dims[k];
        struct kvq_rot r;
        CHECK_OK(kvq_rot_init(&r, d, 1, 0));
        float x[KVQ_MAX_HEAD_DIM], y[KVQ_MAX_HEAD_DIM];
        uint8_t buf[2 * KVQ_MAX_HEAD_DIM];
        for (int t = 0; t < KVQ_TYPE_COUNT; t++) {
            memset(x, 0, sizeof x);
            kvq_encode((enum kvq_type)t, &r, d, x, buf);
            kvq_decode((enum kvq_type)t, &r, d, buf, y);
            for (int i = 0; i < d; i++)
                CHECK(y[i] == 0.0f);
            x[5] = 3.0f;
            kvq_encode((enum kvq_type)t, &r, d, x, buf);
            kvq_decode((enum kvq_type)t, &r, d, buf, y);
            double e = 0;
            for (int i = 0; i < d; i++)
                e += (double)(y[i] - x[i]) * (double)(y[i] - x[i]);
            /* a one-hot rotates to ±3/sqrt(d) everywhere: two levels, nearly exact */
            CHECK_MSG(sqrt(e) / 3.0 < (t == KVQ_ROT3 ? 0.35 : 0.2), "%s d %d one-hot: %g",
                      kvq_type_name((enum kvq_type)t), d, sqrt(e) / 3.0);
        }
    }
}

/* ---- attention ------------------------------------------------------------------ */

/* out[d] = softmax(scale K q) V in double; K, V: [n][d]. */
static void attn_ref(double *out, const float *q, const float *kk, const float *vv, int n, int d,
                     double scale)
{
    double *s = malloc(sizeof(double) * (size_t)n);
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j < n; j++) {
        double a = 0;
        for (int i = 0; i < d; i++)
            a += (double)q[i] * (double)kk[(size_t)j * d + i];
        s[j] = a * scale;
        mx = fmax(mx, s[j]);
    }
    for (int j = 0; j < n; j++) {
        s[j] = exp(s[j] - mx);
        sum += s[j];
    }
    for (int i = 0; i < d; i++)
        out[i] = 0;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < d; i++)
            out[i] += s[j] / sum * (double)vv[(size_t)j * d + i];
    free(s);
}

static double rel_err(const float *got, const double *want, int d)
{
    double e = 0, w = 0;
    for (int i = 0; i < d; i++) {
        e += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        w += want[i] * want[i];
    }
    return sqrt(e / w);
}

struct attn_err {
    double vs_decoded; /* max: kernel against the reference on decoded K/V */
    double vs_f32;     /* RMS over trials: kernel against the reference on the f32 K/V */
    double logit;      /* RMS of the score error q.(k̂ - k) over RMS of the scores q.k */
};

/*
 * Attention of one query over n positions with K type kt and V type vt, head_dim d;
 * keys with two outlier channels at 10x when outliers (at 20x, 92% of a d=64 key's
 * energy sits where the query is small, and every type's score error swamps the
 * scores; 10x keeps the comparison meaningful). Scores have a standard deviation of
 * about 2 (q scaled by 2), sharper than random but like real heads.
 */
static struct attn_err attn_trial(enum kvq_type kt, enum kvq_type vt, int d, int n, int outliers,
                                  int trials)
{
    struct attn_err r = {0, 0, 0};
    struct kvq_rot rot;
    if (kvq_rot_init(&rot, d, 5, 2) != HEARTH_OK)
        return (struct attn_err){INFINITY, INFINITY, INFINITY};
    size_t kb = kvq_head_bytes(kt, d), vb = kvq_head_bytes(vt, d);
    /* two heads per row, attention on the second: exercises the stride */
    size_t ks = 2 * kb, vs = 2 * vb;
    float *kk = malloc(sizeof(float) * (size_t)n * d), *vv = malloc(sizeof(float) * (size_t)n * d);
    float *kd = malloc(sizeof(float) * (size_t)n * d), *vd = malloc(sizeof(float) * (size_t)n * d);
    uint8_t *kc = calloc((size_t)n, ks), *vc = calloc((size_t)n, vs);
    float *scratch = malloc(sizeof(float) * cpu_attn_kvq_scratch_floats(n, d));
    float q[KVQ_MAX_HEAD_DIM], out[KVQ_MAX_HEAD_DIM];
    double ref[KVQ_MAX_HEAD_DIM], se = 0, sle = 0, sls = 0;
    double scale = 1.0 / sqrt((double)d);
    for (int tr = 0; tr < trials; tr++) {
        fill_gauss(q, d, 2.0);
        for (int j = 0; j < n; j++) {
            float *kj = kk + (size_t)j * d, *vj = vv + (size_t)j * d;
            if (outliers)
                fill_outlier(kj, d, 10.0f);
            else
                fill_gauss(kj, d, 1.0);
            fill_gauss(vj, d, 1.0);
            kvq_encode(kt, &rot, d, kj, kc + (size_t)j * ks + kb);
            kvq_encode(vt, &rot, d, vj, vc + (size_t)j * vs + vb);
            kvq_decode(kt, &rot, d, kc + (size_t)j * ks + kb, kd + (size_t)j * d);
            kvq_decode(vt, &rot, d, vc + (size_t)j * vs + vb, vd + (size_t)j * d);
        }
        if (outliers) { /* real queries are small on the outlier channels */
            q[3] *= 0.05f;
            q[d / 2 + 5] *= 0.05f;
        }
        cpu_attn_kvq_head(kt, vt, &rot, out, q, kc + kb, ks, vc + vb, vs, n, d, (float)scale,
                          scratch);
        for (int j = 0; j < n; j++) {
            double a = 0, b = 0;
            for (int i = 0; i < d; i++) {
                a += (double)q[i] * (double)kk[(size_t)j * d + i];
                b += (double)q[i] * (double)kd[(size_t)j * d + i];
            }
            sle += (a - b) * (a - b);
            sls += a * a;
        }
        attn_ref(ref, q, kd, vd, n, d, scale);
        r.vs_decoded = fmax(r.vs_decoded, rel_err(out, ref, d));
        attn_ref(ref, q, kk, vv, n, d, scale);
        double e = rel_err(out, ref, d);
        se += e * e;
    }
    r.vs_f32 = sqrt(se / trials);
    r.logit = sqrt(sle / sls);
    free(kk);
    free(vv);
    free(kd);
    free(vd);
    free(kc);
    free(vc);
    free(scratch);
    return r;
}

/* Output relative error bounds against f32 attention, [type][gauss keys, outlier keys]. */
static const double attn_bound[KVQ_TYPE_COUNT][2] = {
    {6e-4, 6e-4},   /* f16 */
    {0.018, 0.045}, /* q8_0 */
    {0.27, 0.87},   /* q4_0 */
    {0.28, 0.40},   /* rot4 */
    {0.46, 0.68},   /* rot3 */
};

TEST(attention)
{
    static const int ns[] = {1, 17, 300};
    double err[KVQ_TYPE_COUNT][N_DIMS][2], lerr[KVQ_TYPE_COUNT][N_DIMS][2];
    for (int t = 0; t < KVQ_TYPE_COUNT; t++) {
        for (int k = 0; k < N_DIMS; k++) {
            for (int o = 0; o < 2; o++) {
                double worst = 0;
                for (int m = 0; m < 3; m++) {
                    test_rng_seed(1000 + (uint64_t)(t * 100 + k * 10 + m));
                    struct attn_err e = attn_trial((enum kvq_type)t, (enum kvq_type)t, dims[k],
                                                   ns[m], o, 6);
                    CHECK_MSG(e.vs_decoded < 2e-5, "%s d %d n %d: kernel vs decoded %g",
                              kvq_type_name((enum kvq_type)t), dims[k], ns[m], e.vs_decoded);
                    if (ns[m] == 300) {
                        err[t][k][o] = e.vs_f32;
                        lerr[t][k][o] = e.logit;
                    }
                    worst = fmax(worst, e.vs_f32);
                }
                CHECK_MSG(worst <= attn_bound[t][o], "%s d %d %s: attention error %.4g > %.4g",
                          kvq_type_name((enum kvq_type)t), dims[k], o ? "outliers" : "gauss",
                          worst, attn_bound[t][o]);
            }
        }
    }
    /*
     * Score errors average over 1800 scores per case and so compare types
     * reliably; one output's error swings with which few positions win the
     * softmax, so outputs are only compared on outlier keys, where the gap is wide.
     */
    for (int k = 0; k < N_DIMS; k++) {
        CHECK(lerr[KVQ_ROT4][k][1] < 0.8 * lerr[KVQ_Q4_0][k][1]);
        CHECK(lerr[KVQ_ROT4][k][0] < 1.2 * lerr[KVQ_Q4_0][k][0]);
        CHECK(lerr[KVQ_F16][k][1] < 1e-3 && lerr[KVQ_Q8_0][k][1] < 0.05);
        CHECK(err[KVQ_ROT4][k][1] < err[KVQ_Q4_0][k][1]);
    }
    printf("  n=300, gauss keys / outlier keys: score error (rel RMS) | output error (rel)\n");
    for (int t = 0; t < KVQ_TYPE_COUNT; t++) {
        for (int k = 0; k < N_DIMS; k++)
            printf("    %-5s d%-3d  %.4g / %.4g | %.4g / %.4g\n", kvq_type_name((enum kvq_type)t),
                   dims[k], lerr[t][k][0], lerr[t][k][1], err[t][k][0], err[t][k][1]);
    }
}

/* K and V of different types, and a non-power-of-two head_dim. */
TEST(attention_mixed)
{
    static const enum kvq_type pairs[][2] = {
        {KVQ_ROT4, KVQ_Q8_0}, {KVQ_Q8_0, KVQ_ROT3}, {KVQ_F16, KVQ_ROT4}, {KVQ_ROT3, KVQ_F16}};
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        for (int d = 96; d <= 128; d += 32) {
            test_rng_seed(77 + p);
            struct attn_err e = attn_trial(pairs[p][0], pairs[p][1], d, 50, 0, 3);
            CHECK_MSG(e.vs_decoded < 2e-5, "%s/%s d %d: kernel vs decoded %g",
                      kvq_type_name(pairs[p][0]), kvq_type_name(pairs[p][1]), d, e.vs_decoded);
            CHECK_MSG(e.vs_f32 < 0.5, "%s/%s d %d: attention error %g",
                      kvq_type_name(pairs[p][0]), kvq_type_name(pairs[p][1]), d, e.vs_f32);
        }
    }
}

TEST_MAIN(TEST_CASE(rotate_orthogonal), TEST_CASE(rotate_matches_matrix),
          TEST_CASE(rotate_seeding), TEST_CASE(codebook_lloyd_max), TEST_CASE(codebook_nearest),
          TEST_CASE(types_and_bits), TEST_CASE(roundtrip), TEST_CASE(roundtrip_edge),
          TEST_CASE(attention), TEST_CASE(attention_mixed))
