/*
 * test-sampler: the sampling chain of core/sampler.c against closed-form
 * references: argmax, softmax frequencies, the top-k / top-p / min-p survivor
 * sets computed independently here (full sort, double precision), and the
 * penalty formulas evaluated by hand.
 */
#include <stdbool.h>

#include "sampler.h"
#include "test.h"

/* Params with every truncation off: temperature only. */
static struct sampler_params plain_params(float temp, uint64_t seed)
{
    struct sampler_params p;
    sampler_params_default(&p);
    p.temp = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    p.seed_set = true;
    return p;
}

static void softmax_ref(const float *l, int n, double temp, double *p)
{
    double m = -(double)INFINITY, z = 0.0;
    for (int i = 0; i < n; i++)
        m = (double)l[i] > m ? (double)l[i] : m;
    for (int i = 0; i < n; i++)
        z += p[i] = exp(((double)l[i] - m) / temp);
    for (int i = 0; i < n; i++)
        p[i] /= z;
}

/* Draws n_draws tokens and counts them in hist[n_vocab]. */
static void draw_hist(struct sampler *s, const float *logits, int n_draws, int *hist)
{
    for (int i = 0; i < n_draws; i++) {
        int32_t t = -1;
        CHECK_OK(sampler_sample(s, logits, &t));
        if (t < 0 || t >= sampler_n_vocab(s)) {
            CHECK_MSG(false, "token %d out of range", (int)t);
            return;
        }
        hist[t]++;
    }
}

static const float *g_sort_logits;
static int cmp_desc(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    float x = g_sort_logits[i], y = g_sort_logits[j];
    if (x != y)
        return x > y ? -1 : 1;
    return i < j ? -1 : 1;
}

/* Ids sorted by logit descending (ties: lower id first); caller frees. */
static int *sorted_ids(const float *l, int n)
{
    int *ids = malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++)
        ids[i] = i;
    g_sort_logits = l;
    qsort(ids, (size_t)n, sizeof *ids, cmp_desc);
    return ids;
}

TEST(params_validation)
{
    struct sampler_params p;
    struct sampler *s = NULL;
    sampler_params_default(&p);
    CHECK_OK(sampler_params_validate(&p));
    p.temp = -0.1f;
    CHECK_INT_EQ(sampler_create(&p, 10, &s), HEARTH_ERR_INVALID_ARG);
    CHECK(s == NULL);
    CHECK(strstr(hearth_last_error(), "temp") != NULL);
    sampler_params_default(&p);
    p.top_p = 0.0f;
    CHECK_INT_EQ(sampler_params_validate(&p), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "top_p") != NULL);
    p.top_p = 1.01f;
    CHECK_INT_EQ(sampler_params_validate(&p), HEARTH_ERR_INVALID_ARG);
    p.top_p = NAN;
    CHECK_INT_EQ(sampler_params_validate(&p), HEARTH_ERR_INVALID_ARG);
    sampler_params_default(&p);
    p.min_p = -0.01f;
    CHECK_INT_EQ(sampler_params_validate(&p), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "min_p") != NULL);
    sampler_params_default(&p);
    p.top_k = -1;
    CHECK_INT_EQ(sampler_params_validate(&p), HEARTH_ERR_INVALID_ARG);
    sampler_params_default(&p);
    p.repeat_penalty = 0.0f;
    CHECK_INT_EQ(sampler_params_validate(&p), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "repeat_penalty") != NULL);
    sampler_params_default(&p);
    p.repeat_last_n = -1;
    CHECK_INT_EQ(sampler_params_validate(&p), HEARTH_ERR_INVALID_ARG);
    sampler_params_default(&p);
    p.frequency_penalty = INFINITY;
    CHECK_INT_EQ(sampler_params_validate(&p), HEARTH_ERR_INVALID_ARG);
    sampler_params_default(&p);
    p.temp = INFINITY;
    CHECK_INT_EQ(sampler_params_validate(&p), HEARTH_ERR_INVALID_ARG);
    sampler_params_default(&p);
    CHECK_INT_EQ(sampler_create(&p, 0, &s), HEARTH_ERR_INVALID_ARG);
    CHECK(s == NULL);
    /* accept range */
    CHECK_OK(sampler_create(&p, 10, &s));
    REQUIRE(s != NULL);
    CHECK_INT_EQ(sampler_accept(s, 10), HEARTH_ERR_INVALID_ARG);
    CHECK_INT_EQ(sampler_accept(s, -1), HEARTH_ERR_INVALID_ARG);
    CHECK_OK(sampler_accept(s, 9));
    sampler_free(s);
}

TEST(greedy_argmax_and_ties)
{
    struct sampler_params p = plain_params(0.0f, 1);
    struct sampler *s = NULL;
    CHECK_OK(sampler_create(&p, 8, &s));
    REQUIRE(s);
    const float tie[8] = {0.5f, 1.0f, -2.0f, 3.0f, 1.0f, 2.9f, 0.0f, 3.0f};
    int32_t t = -1;
    CHECK_OK(sampler_sample(s, tie, &t));
    CHECK_INT_EQ(t, 3);
    const float last[8] = {0, 0, 0, 0, 0, 0, 0, 0.25f};
    CHECK_OK(sampler_sample(s, last, &t));
    CHECK_INT_EQ(t, 7);
    const float all_equal[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    CHECK_OK(sampler_sample(s, all_equal, &t));
    CHECK_INT_EQ(t, 0);
    sampler_free(s);

    /* random vocabularies against a plain argmax */
    CHECK_OK(sampler_create(&p, 1000, &s));
    REQUIRE(s);
    float l[1000];
    test_rng_seed(7);
    for (int rep = 0; rep < 50; rep++) {
        int best = 0;
        for (int i = 0; i < 1000; i++) {
            l[i] = (float)test_rng_gauss();
            if (l[i] > l[best])
                best = i;
        }
        CHECK_OK(sampler_sample(s, l, &t));
        CHECK_INT_EQ(t, best);
    }
    sampler_free(s);
}

/*
 * 20,000 draws from 5 logits. Each frequency has a standard deviation of at most
 * sqrt(0.25 / 20000) = 0.0035; the bound 0.015 is over 4 sigma, and the seed is
 * fixed, so the test is deterministic. Chi-square with 4 degrees of freedom: the
 * 0.1% critical value is 18.47. A wrong temperature (e.g. multiplying instead of
 * dividing) moves frequencies by > 0.1 and fails both.
 */
static void check_temperature(float temp, double *freq_top)
{
    const float l[5] = {1.0f, 2.0f, 0.5f, -1.0f, 1.5f};
    struct sampler_params p = plain_params(temp, 2024);
    struct sampler *s = NULL;
    CHECK_OK(sampler_create(&p, 5, &s));
    if (!s)
        return;
    int hist[5] = {0};
    const int n = 20000;
    draw_hist(s, l, n, hist);
    double ref[5], chi2 = 0.0;
    softmax_ref(l, 5, (double)temp, ref);
    for (int i = 0; i < 5; i++) {
        double f = (double)hist[i] / n;
        CHECK_MSG(fabs(f - ref[i]) <= 0.015, "temp %g token %d: freq %.4f vs softmax %.4f",
                  (double)temp, i, f, ref[i]);
        double e = ref[i] * n;
        chi2 += ((double)hist[i] - e) * ((double)hist[i] - e) / e;
    }
    CHECK_MSG(chi2 < 18.47, "temp %g: chi-square %.2f >= 18.47", (double)temp, chi2);
    *freq_top = (double)hist[1] / n;
    sampler_free(s);
}

TEST(temperature_distribution)
{
    double top1 = 0, top05 = 0, top2 = 0;
    check_temperature(1.0f, &top1);
    check_temperature(0.5f, &top05);
    check_temperature(2.0f, &top2);
    /* softmax(l / 0.5) puts 0.6429 on the best token, softmax(l) 0.4450, softmax(l / 2) 0.3246 */
    CHECK(top05 > top1 + 0.15);
    CHECK(top2 < top1 - 0.05);
}

TEST(top_k)
{
    test_rng_seed(11);
    float l[300];
    for (int i = 0; i < 300; i++)
        l[i] = (float)test_rng_gauss();
    int *ids = sorted_ids(l, 300);
    struct sampler_params p = plain_params(1.5f, 5);
    p.top_k = 1;
    struct sampler *s = NULL;
    CHECK_OK(sampler_create(&p, 300, &s));
    REQUIRE(s);
    int32_t t;
    for (int i = 0; i < 200; i++) {
        CHECK_OK(sampler_sample(s, l, &t));
        CHECK_INT_EQ(t, ids[0]);
    }
    sampler_free(s);

    p.top_k = 2;
    p.temp = 1.0f;
    CHECK_OK(sampler_create(&p, 300, &s));
    REQUIRE(s);
    int hist[300] = {0};
    draw_hist(s, l, 2000, hist);
    CHECK_INT_EQ(hist[ids[0]] + hist[ids[1]], 2000);
    CHECK(hist[ids[0]] > 0 && hist[ids[1]] > 0);
    /* within the two, the odds follow the softmax of the pair */
    double pr = 1.0 / (1.0 + exp((double)l[ids[1]] - (double)l[ids[0]]));
    CHECK_NEAR((double)hist[ids[0]] / 2000, pr, 0.05);
    sampler_free(s);

    /* top-k = 37 with a high temperature: every draw in the 37 best, most of them seen */
    p.top_k = 37;
    p.temp = 5.0f;
    CHECK_OK(sampler_create(&p, 300, &s));
    REQUIRE(s);
    memset(hist, 0, sizeof hist);
    draw_hist(s, l, 3000, hist);
    int in = 0, seen = 0;
    for (int r = 0; r < 37; r++) {
        in += hist[ids[r]];
        seen += hist[ids[r]] > 0;
    }
    CHECK_INT_EQ(in, 3000);
    CHECK(seen >= 35);
    sampler_free(s);

    /* k > n_vocab / 8 takes the quickselect path instead of the heap */
    p.top_k = 200;
    p.temp = 50.0f;
    CHECK_OK(sampler_create(&p, 300, &s));
    REQUIRE(s);
    memset(hist, 0, sizeof hist);
    draw_hist(s, l, 3000, hist);
    in = 0;
    seen = 0;
    for (int r = 0; r < 200; r++) {
        in += hist[ids[r]];
        seen += hist[ids[r]] > 0;
    }
    CHECK_INT_EQ(in, 3000);
    CHECK(seen >= 150);
    sampler_free(s);
    free(ids);

    /* ties at the cut: the lower id survives top-k, on both paths */
    const float tie[12] = {0, 5, 1, 5, 0, 0, 0, 0, 0, 0, 0, 5};
    for (int n = 4; n <= 12; n += 8) {
        p = plain_params(1.0f, 3);
        p.top_k = 1;
        CHECK_OK(sampler_create(&p, n, &s));
        REQUIRE(s);
        for (int i = 0; i < 20; i++) {
            t = -1;
            CHECK_OK(sampler_sample(s, tie, &t));
            CHECK_INT_EQ(t, 1);
        }
        sampler_free(s);
    }
}

TEST(top_p_small)
{
    /* p = 0.4, 0.3, 0.2, 0.1 (ids shuffled): top_p 0.5 -> {0.4, 0.3}; 0.75 -> three */
    const float l[4] = {logf(0.2f), logf(0.4f), logf(0.1f), logf(0.3f)};
    struct sampler_params p = plain_params(1.0f, 99);
    p.top_p = 0.5f;
    struct sampler *s = NULL;
    CHECK_OK(sampler_create(&p, 4, &s));
    REQUIRE(s);
    int hist[4] = {0};
    draw_hist(s, l, 5000, hist);
    CHECK_INT_EQ(hist[0], 0);
    CHECK_INT_EQ(hist[2], 0);
    CHECK_NEAR((double)hist[1] / 5000, 0.4 / 0.7, 0.03);
    sampler_free(s);

    p.top_p = 0.75f;
    CHECK_OK(sampler_create(&p, 4, &s));
    REQUIRE(s);
    memset(hist, 0, sizeof hist);
    draw_hist(s, l, 5000, hist);
    CHECK_INT_EQ(hist[2], 0);
    CHECK(hist[0] > 0 && hist[1] > 0 && hist[3] > 0);
    sampler_free(s);

    /* a top_p smaller than the best token's mass keeps only that token */
    p.top_p = 0.1f;
    CHECK_OK(sampler_create(&p, 4, &s));
    REQUIRE(s);
    memset(hist, 0, sizeof hist);
    draw_hist(s, l, 500, hist);
    CHECK_INT_EQ(hist[1], 500);
    sampler_free(s);
}

/* Reference nucleus: the smallest sorted prefix with mass >= top_p. */
static int nucleus_size(const float *l, const int *ids, int n, double top_p)
{
    double *pr = malloc((size_t)n * sizeof *pr), cum = 0.0;
    softmax_ref(l, n, 1.0, pr);
    int k = n;
    for (int r = 0; r < n; r++) {
        cum += pr[ids[r]];
        if (cum >= top_p) {
            k = r + 1;
            break;
        }
    }
    free(pr);
    return k;
}

TEST(top_p_large_flat)
{
    /* a flat distribution whose nucleus is hundreds of tokens: exercises the
     * growing sorted head (64, 256, 1024, ...) against a full sort */
    const int n = 5000;
    float *l = malloc((size_t)n * sizeof *l);
    test_rng_seed(3);
    for (int i = 0; i < n; i++)
        l[i] = (float)(0.5 * test_rng_gauss());
    int *ids = sorted_ids(l, n);
    int k = nucleus_size(l, ids, n, 0.3);
    CHECK(k > 256 && k < n / 2);
    char *in = calloc((size_t)n, 1);
    for (int r = 0; r < k; r++)
        in[ids[r]] = 1;
    struct sampler_params p = plain_params(1.0f, 17);
    p.top_p = 0.3f;
    struct sampler *s = NULL;
    CHECK_OK(sampler_create(&p, n, &s));
    int *hist = calloc((size_t)n, sizeof *hist);
    if (s)
        draw_hist(s, l, 4000, hist);
    int outside = 0;
    for (int i = 0; i < n; i++)
        if (!in[i])
            outside += hist[i];
    CHECK_INT_EQ(outside, 0);
    /* with top-k first, top-p renormalises over the k survivors */
    sampler_free(s);
    p.top_k = 100;
    p.top_p = 0.5f;
    CHECK_OK(sampler_create(&p, n, &s));
    float *lk = malloc(100 * sizeof *lk);
    for (int r = 0; r < 100; r++)
        lk[r] = l[ids[r]];
    int *idk = sorted_ids(lk, 100);
    int kk = nucleus_size(lk, idk, 100, 0.5);
    CHECK(kk > 1 && kk < 100);
    memset(hist, 0, (size_t)n * sizeof *hist);
    if (s)
        draw_hist(s, l, 3000, hist);
    int in_k = 0;
    for (int r = 0; r < kk; r++)
        in_k += hist[ids[r]];
    CHECK_INT_EQ(in_k, 3000);
    CHECK(hist[ids[kk - 1]] > 0);
    sampler_free(s);
    free(lk);
    free(idk);
    free(hist);
    free(in);
    free(ids);
    free(l);
}

TEST(min_p)
{
    /* p_i / p_max = exp(l_i - l_max): 1, 0.607, 0.368, 0.135, 0.050, 0.018 */
    const float l[6] = {-1.0f, 1.0f, 0.5f, -2.0f, -0.0f, -3.0f};
    /* ratios by id: 0.135, 1, 0.607, 0.050, 0.368, 0.018; min_p 0.2 keeps ids 1, 2, 4 */
    struct sampler_params p = plain_params(1.0f, 4);
    p.min_p = 0.2f;
    struct sampler *s = NULL;
    CHECK_OK(sampler_create(&p, 6, &s));
    REQUIRE(s);
    int hist[6] = {0};
    draw_hist(s, l, 5000, hist);
    CHECK_INT_EQ(hist[0] + hist[3] + hist[5], 0);
    CHECK(hist[1] > 0 && hist[2] > 0 && hist[4] > 0);
    /* renormalised over the survivors */
    double z = 1.0 + exp(-0.5) + exp(-1.0);
    CHECK_NEAR((double)hist[1] / 5000, 1.0 / z, 0.03);
    sampler_free(s);

    /* temperature comes after min-p: a hot temperature cannot revive the tail */
    p.temp = 10.0f;
    p.min_p = 0.1f; /* keeps ids 0, 1, 2, 4 (0.135 >= 0.1), drops 3 and 5 */
    CHECK_OK(sampler_create(&p, 6, &s));
    REQUIRE(s);
    memset(hist, 0, sizeof hist);
    draw_hist(s, l, 5000, hist);
    CHECK_INT_EQ(hist[3] + hist[5], 0);
    CHECK(hist[0] > 0 && hist[1] > 0 && hist[2] > 0 && hist[4] > 0);
    sampler_free(s);

    /* min_p = 1 keeps only the maximum */
    p.min_p = 1.0f;
    CHECK_OK(sampler_create(&p, 6, &s));
    REQUIRE(s);
    memset(hist, 0, sizeof hist);
    draw_hist(s, l, 200, hist);
    CHECK_INT_EQ(hist[1], 200);
    sampler_free(s);
}

TEST(penalty_values)
{
    struct sampler_params p = plain_params(0.0f, 1);
    p.repeat_penalty = 1.5f;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    p.repeat_last_n = 4;
    struct sampler *s = NULL;
    CHECK_OK(sampler_create(&p, 6, &s));
    REQUIRE(s);
    const int32_t hist_toks[5] = {1, 2, 2, 3, 4}; /* window of 4: token 1 falls out */
    for (int i = 0; i < 5; i++)
        CHECK_OK(sampler_accept(s, hist_toks[i]));
    float l[6] = {1.0f, 2.0f, -1.0f, 0.5f, -2.0f, 3.0f};
    sampler_apply_penalties(s, l);
    CHECK_NEAR(l[0], 1.0, 0);
    CHECK_NEAR(l[1], 2.0, 0);                             /* evicted: untouched */
    CHECK_NEAR(l[2], -1.0 * 1.5 - (2 * 0.25 + 0.5), 1e-6); /* -2.5 */
    CHECK_NEAR(l[3], 0.5 / 1.5 - (0.25 + 0.5), 1e-6);     /* -0.41667 */
    CHECK_NEAR(l[4], -2.0 * 1.5 - (0.25 + 0.5), 1e-6);    /* -3.75 */
    CHECK_NEAR(l[5], 3.0, 0);

    /* a longer run wraps the ring several times; counts stay exact */
    for (int i = 0; i < 10; i++)
        CHECK_OK(sampler_accept(s, (int32_t)(i % 2))); /* window ends 0, 1, 0, 1 */
    float m[6] = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    sampler_apply_penalties(s, m);
    double pen2 = 1.0 / 1.5 - (2 * 0.25 + 0.5);
    CHECK_NEAR(m[0], pen2, 1e-6);
    CHECK_NEAR(m[1], pen2, 1e-6);
    for (int i = 2; i < 6; i++)
        CHECK_NEAR(m[i], 1.0, 0);

    /* reset clears the history */
    sampler_reset(s);
    float r[6] = {1.0f, 2.0f, -1.0f, 0.5f, -2.0f, 3.0f};
    sampler_apply_penalties(s, r);
    CHECK_NEAR(r[2], -1.0, 0);
    CHECK_NEAR(r[3], 0.5, 0);
    sampler_free(s);
}

TEST(penalty_changes_greedy)
{
    const float l[3] = {0.0f, 5.0f, 4.5f};
    struct sampler_params p = plain_params(0.0f, 1);
    p.repeat_penalty = 1.2f; /* 5 / 1.2 = 4.17 < 4.5 */
    struct sampler *s = NULL;
    int32_t t = -1;
    CHECK_OK(sampler_create(&p, 3, &s));
    REQUIRE(s);
    CHECK_OK(sampler_sample(s, l, &t));
    CHECK_INT_EQ(t, 1);
    CHECK_OK(sampler_accept(s, 1));
    CHECK_OK(sampler_sample(s, l, &t));
    CHECK_INT_EQ(t, 2);
    /* the caller's logits are not modified */
    CHECK_NEAR(l[1], 5.0, 0);
    sampler_free(s);

    /* frequency: two occurrences of 1 cost 2 * 0.3 = 0.6 > 0.5; one costs 0.3 < 0.5 */
    p.repeat_penalty = 1.0f;
    p.frequency_penalty = 0.3f;
    CHECK_OK(sampler_create(&p, 3, &s));
    REQUIRE(s);
    CHECK_OK(sampler_accept(s, 1));
    CHECK_OK(sampler_sample(s, l, &t));
    CHECK_INT_EQ(t, 1);
    CHECK_OK(sampler_accept(s, 1));
    CHECK_OK(sampler_sample(s, l, &t));
    CHECK_INT_EQ(t, 2);
    sampler_free(s);

    /* presence: any occurrence costs 0.6 */
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.6f;
    CHECK_OK(sampler_create(&p, 3, &s));
    REQUIRE(s);
    CHECK_OK(sampler_accept(s, 1));
    CHECK_OK(sampler_sample(s, l, &t));
    CHECK_INT_EQ(t, 2);
    sampler_free(s);
}

/*
 * logit_bias (step 0): an addition moves greedy's choice, -100 bans a token
 * even when it is the only one left by top-k, the bias adds before the
 * penalties (a token biased up and then repeated falls back), the
 * distribution shifts as exp(bias), bad ids are refused, n 0 clears.
 */
TEST(logit_bias)
{
    const float l[4] = {0.0f, 5.0f, 4.5f, 1.0f};
    struct sampler_params p = plain_params(0.0f, 1);
    struct sampler *s = NULL;
    int32_t t = -1;
    CHECK_OK(sampler_create(&p, 4, &s));
    REQUIRE(s);
    const int32_t up_id[1] = {3};
    const float up[1] = {4.5f}; /* 1 + 4.5 = 5.5 > 5 */
    CHECK_OK(sampler_set_bias(s, up_id, up, 1));
    CHECK_OK(sampler_sample(s, l, &t));
    CHECK_INT_EQ(t, 3);
    CHECK_NEAR(l[3], 1.0, 0); /* the caller's logits are not modified */
    const int32_t ban_id[2] = {1, 1};
    const float ban[2] = {-100.0f, 50.0f}; /* a ban stays a ban whatever else adds */
    CHECK_OK(sampler_set_bias(s, ban_id, ban, 2));
    CHECK_OK(sampler_sample(s, l, &t));
    CHECK_INT_EQ(t, 2);
    sampler_reset(s); /* the bias outlives a reset */
    CHECK_OK(sampler_sample(s, l, &t));
    CHECK_INT_EQ(t, 2);
    CHECK_OK(sampler_set_bias(s, NULL, NULL, 0));
    CHECK_OK(sampler_sample(s, l, &t));
    CHECK_INT_EQ(t, 1);
    /* refused: nothing changes */
    const int32_t bad_id[1] = {4};
    CHECK_INT_EQ(sampler_set_bias(s, bad_id, up, 1), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "logit_bias") != NULL);
    const float inf[1] = {INFINITY};
    CHECK_INT_EQ(sampler_set_bias(s, up_id, inf, 1), HEARTH_ERR_INVALID_ARG);
    CHECK_OK(sampler_sample(s, l, &t));
    CHECK_INT_EQ(t, 1);
    sampler_free(s);

    /* a ban holds under top-k 1 and sampling: the ban is before the chain */
    p = plain_params(1.0f, 7);
    p.top_k = 1;
    CHECK_OK(sampler_create(&p, 4, &s));
    REQUIRE(s);
    const int32_t b1[1] = {1};
    const float m100[1] = {-100.0f};
    CHECK_OK(sampler_set_bias(s, b1, m100, 1));
    for (int i = 0; i < 50; i++) {
        CHECK_OK(sampler_sample(s, l, &t));
        CHECK_INT_EQ(t, 2);
    }
    /* a new sampler takes the bias over (gen_session_set_sampler), the ban included */
    struct sampler *s2 = NULL;
    CHECK_OK(sampler_create(&p, 4, &s2));
    REQUIRE(s2);
    CHECK_OK(sampler_copy_bias(s2, s));
    CHECK_OK(sampler_sample(s2, l, &t));
    CHECK_INT_EQ(t, 2);
    sampler_free(s2);
    CHECK_OK(sampler_create(&p, 5, &s2));
    REQUIRE(s2);
    CHECK_INT_EQ(sampler_copy_bias(s2, s), HEARTH_ERR_INVALID_ARG);
    sampler_free(s2);
    sampler_free(s);

    /* before the penalties: +1 makes 2 the best (5.5), a repeat (penalty 1.5) drops it */
    p = plain_params(0.0f, 1);
    p.repeat_penalty = 1.5f;
    CHECK_OK(sampler_create(&p, 4, &s));
    REQUIRE(s);
    const int32_t b2[1] = {2};
    const float one[1] = {1.0f};
    CHECK_OK(sampler_set_bias(s, b2, one, 1));
    CHECK_OK(sampler_sample(s, l, &t));
    CHECK_INT_EQ(t, 2);
    CHECK_OK(sampler_accept(s, 2)); /* (4.5 + 1) / 1.5 = 3.67 < 5 */
    CHECK_OK(sampler_sample(s, l, &t));
    CHECK_INT_EQ(t, 1);
    sampler_free(s);

    /* sampling: a bias of ln 3 on one of two equal logits makes it 3:1 */
    const float flat[2] = {0.0f, 0.0f};
    p = plain_params(1.0f, 11);
    CHECK_OK(sampler_create(&p, 2, &s));
    REQUIRE(s);
    const int32_t b0[1] = {0};
    const float ln3[1] = {(float)log(3.0)};
    CHECK_OK(sampler_set_bias(s, b0, ln3, 1));
    int hist[2] = {0, 0};
    draw_hist(s, flat, 20000, hist);
    CHECK_NEAR((double)hist[0] / 20000.0, 0.75, 0.015); /* 5 sigma of 0.0031 */
    sampler_free(s);
}

static void draw_seq(uint64_t seed, bool seed_set, int32_t *seq, int n, uint64_t *used)
{
    float l[100];
    test_rng_seed(21);
    for (int i = 0; i < 100; i++)
        l[i] = (float)test_rng_gauss();
    struct sampler_params p;
    sampler_params_default(&p); /* the default chain: top-k 40, top-p, min-p, temp 0.8 */
    p.temp = 1.5f;
    p.seed = seed;
    p.seed_set = seed_set;
    struct sampler *s = NULL;
    CHECK_OK(sampler_create(&p, 100, &s));
    if (!s)
        return;
    for (int i = 0; i < n; i++)
        CHECK_OK(sampler_sample(s, l, &seq[i]));
    if (used)
        *used = sampler_seed(s);
    /* reset restarts the same stream */
    sampler_reset(s);
    int32_t again;
    CHECK_OK(sampler_sample(s, l, &again));
    CHECK_INT_EQ(again, seq[0]);
    sampler_free(s);
}

TEST(seed_determinism)
{
    enum { N = 1000 };
    static int32_t a[N], b[N], c[N], d[N], e[N];
    uint64_t used = 0;
    draw_seq(1234, true, a, N, &used);
    CHECK_INT_EQ(used, 1234);
    draw_seq(1234, true, b, N, NULL);
    draw_seq(1235, true, c, N, NULL);
    int diff_same = 0, diff_other = 0;
    for (int i = 0; i < N; i++) {
        diff_same += a[i] != b[i];
        diff_other += a[i] != c[i];
    }
    CHECK_INT_EQ(diff_same, 0);
    CHECK(diff_other > N / 2);
    /* an unset seed comes from the clock, fits 32 bits, and replays when given back */
    draw_seq(0, false, d, N, &used);
    CHECK(used <= 0xffffffffull);
    draw_seq(used, true, e, N, NULL);
    CHECK(memcmp(d, e, sizeof d) == 0);
}

TEST(nonfinite_logits)
{
    struct sampler_params p = plain_params(1.0f, 8);
    struct sampler *s = NULL;
    CHECK_OK(sampler_create(&p, 4, &s));
    REQUIRE(s);
    const float nan_l[4] = {NAN, 0.0f, NAN, 0.1f};
    int hist[4] = {0};
    draw_hist(s, nan_l, 1000, hist);
    CHECK_INT_EQ(hist[0] + hist[2], 0);
    const float masked[4] = {-INFINITY, -INFINITY, 2.0f, -INFINITY};
    int32_t t = -1;
    for (int i = 0; i < 50; i++) {
        CHECK_OK(sampler_sample(s, masked, &t));
        CHECK_INT_EQ(t, 2);
    }
    const float inf_l[4] = {1.0f, INFINITY, 2.0f, 0.0f};
    for (int i = 0; i < 50; i++) {
        CHECK_OK(sampler_sample(s, inf_l, &t));
        CHECK_INT_EQ(t, 1);
    }
    sampler_free(s);
    /* two +inf (clamped to FLT_MAX) tie: greedy takes the lower id, on the heap path too */
    p = plain_params(0.0f, 8);
    CHECK_OK(sampler_create(&p, 16, &s));
    REQUIRE(s);
    float two_inf[16] = {0};
    two_inf[3] = INFINITY;
    two_inf[9] = INFINITY;
    two_inf[12] = NAN;
    CHECK_OK(sampler_sample(s, two_inf, &t));
    CHECK_INT_EQ(t, 3);
    const float none[16] = {NAN, -INFINITY, NAN, -INFINITY, NAN, NAN, NAN, NAN,
                            NAN, NAN, NAN, NAN, NAN, NAN, NAN, -INFINITY};
    CHECK_INT_EQ(sampler_sample(s, none, &t), HEARTH_ERR_INVALID_ARG);
    sampler_free(s);
}

TEST(large_vocab)
{
    const int n = 262144;
    float *l = malloc((size_t)n * sizeof *l);
    REQUIRE(l);
    test_rng_seed(262144);
    for (int i = 0; i < n; i++)
        l[i] = (float)(3.0 * test_rng_gauss());
    int *ids = sorted_ids(l, n);
    char *rank_ok = calloc((size_t)n, 1);

    /* default chain (top-k 40 first): every draw within the 40 best */
    struct sampler_params p;
    sampler_params_default(&p);
    p.seed = 5;
    p.seed_set = true;
    struct sampler *s = NULL;
    CHECK_OK(sampler_create(&p, n, &s));
    for (int r = 0; r < 40; r++)
        rank_ok[ids[r]] = 1;
    int32_t t = -1;
    for (int i = 0; s && i < 30; i++) {
        CHECK_OK(sampler_sample(s, l, &t));
        CHECK(t >= 0 && t < n && rank_ok[t]);
        CHECK_OK(sampler_accept(s, t));
    }
    sampler_free(s);

    /* top-p alone over the whole vocabulary */
    p = plain_params(1.0f, 6);
    p.top_p = 0.9f;
    int k = nucleus_size(l, ids, n, 0.9);
    memset(rank_ok, 0, (size_t)n);
    for (int r = 0; r < k; r++)
        rank_ok[ids[r]] = 1;
    CHECK_OK(sampler_create(&p, n, &s));
    for (int i = 0; s && i < 30; i++) {
        CHECK_OK(sampler_sample(s, l, &t));
        CHECK(t >= 0 && t < n && rank_ok[t]);
    }
    sampler_free(s);

    /* greedy */
    p = plain_params(0.0f, 6);
    CHECK_OK(sampler_create(&p, n, &s));
    if (s) {
        CHECK_OK(sampler_sample(s, l, &t));
        CHECK_INT_EQ(t, ids[0]);
    }
    sampler_free(s);
    free(rank_ok);
    free(ids);
    free(l);
}

TEST_MAIN(TEST_CASE(params_validation), TEST_CASE(greedy_argmax_and_ties),
          TEST_CASE(temperature_distribution), TEST_CASE(top_k), TEST_CASE(top_p_small),
          TEST_CASE(top_p_large_flat), TEST_CASE(min_p), TEST_CASE(penalty_values),
          TEST_CASE(penalty_changes_greedy), TEST_CASE(logit_bias), TEST_CASE(seed_determinism),
          TEST_CASE(nonfinite_logits), TEST_CASE(large_vocab))
