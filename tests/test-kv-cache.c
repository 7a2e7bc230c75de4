/*
 * test-kv-cache: the compressed KV cache on the CPU path (kv-cache.c,
 * cpu/attn-kvq.c batched kernel, cpu/forward.c, the CPU backend's ATTENTION).
 *
 *  - SmolLM2 on 300 tokens of Genesis with each KV type against the f16
 *    cache: mean KL divergence and top-1 agreement of the next-token
 *    distributions within per-type bounds (measured values + margin; a cache
 *    that skips the query rotation or mixes up K and V types lands far off,
 *    and so does one without the key mean or the exact sink key);
 *  - cpu_kvq_key_center: the key mean (positions [1, 64) of the batch holding
 *    position 0), the sink, the subtraction, softmax invariance;
 *  - batched prefill equals token-by-token decode bit for bit: 300 tokens in
 *    batches of 64 against 200 in batches of 64 (a different split of rows
 *    192..255) then 100 one at a time (across the 256-position chunk
 *    boundary of the kernel); rot3, and q4_0 with a sliding window of 100 on
 *    every layer;
 *  - kv_cache_bytes = n_layer · n_ctx · n_head_kv · (K + V head bytes), the
 *    f16 case exactly the old 2 · n_layer · n_ctx · kv_dim · 2, and the errors;
 *  - the batched kernel against a double-precision softmax attention on the
 *    decoded K/V (mixed K/V types, several sequences, sliding window, ranges
 *    across chunk boundaries, an exact sink key): relative error < 1e-5;
 *  - the scheduler on a CPU device (the backend's ATTENTION op) with a
 *    compressed cache gives the same bits as forward.c with the same types.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu/attn-kvq.h"
#include "cpu/dot.h"
#include "cpu/forward.h"
#include "kv-cache.h"
#include "kv-quant.h"
#include "model.h"
#include "scheduler.h"
#include "test.h"
#include "threadpool.h"
#include "tokenizer.h"

/* N_SPLIT: the decode half of prefill_equals_decode starts there, crossing position 256 */
enum { N_TOK = 300, N_CTX = 320, N_SPLIT = 200 };

static struct model *g_model;
static int32_t g_toks[N_TOK];
static float *g_ref; /* [N_TOK][n_vocab] logits with the f16 cache */

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 16);
    size_t n = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

/* atexit: the shared model and reference logits (LSan sees no leak whichever cases ran). */
static void release_shared(void)
{
    free(g_ref);
    model_free(g_model);
}

/* Loads SmolLM2 and the first N_TOK tokens of Genesis once. */
static struct model *model_and_tokens(void)
{
    if (g_model)
        return g_model;
    const char *path = test_model_path(TEST_SMOLLM2);
    if (!path)
        return NULL;
    size_t len = 0;
    char *text = read_all(test_data_path("kjv-genesis.txt"), &len);
    CHECK_MSG(text != NULL, "cannot read tests/data/kjv-genesis.txt");
    if (!text)
        return NULL;
    struct model *m = NULL;
    struct tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    CHECK_OK(model_load(path, &m));
    if (m)
        CHECK_OK(tok_load(m->gguf, &tok));
    if (tok)
        CHECK_OK(tok_encode(tok, text, len, true, false, &ids, &n_ids));
    CHECK(n_ids >= N_TOK);
    if (ids && n_ids >= N_TOK) {
        memcpy(g_toks, ids, sizeof g_toks);
        g_model = m;
        atexit(release_shared);
        m = NULL;
    }
    free(ids);
    tok_free(tok);
    model_free(m);
    free(text);
    return g_model;
}

/*
 * Logits of every token of g_toks with a kt/vt cache: one batched call, or
 * the first n_batched tokens batched and the rest one token per call.
 */
static bool run(const struct model *m, int kt, int vt, int n_batched, float *out)
{
    struct forward_params p = forward_params_default();
    p.n_ctx = N_CTX;
    p.n_threads = 2;
    p.n_batch = 64;
    p.kv_type_k = kt;
    p.kv_type_v = vt;
    struct forward_ctx *c = NULL;
    CHECK_OK(forward_create(m, &p, &c));
    if (!c)
        return false;
    bool ok = forward_eval(c, g_toks, n_batched, 0, out, true) == HEARTH_OK;
    for (int t = n_batched; ok && t < N_TOK; t++)
        ok = forward_eval(c, g_toks + t, 1, t, out + (size_t)t * m->hp.n_vocab, false) ==
             HEARTH_OK;
    CHECK(ok);
    forward_destroy(c);
    return ok;
}

static const float *reference(void)
{
    struct model *m = model_and_tokens();
    if (!m || g_ref)
        return g_ref;
    float *r = malloc((size_t)N_TOK * m->hp.n_vocab * sizeof(float));
    if (r && run(m, KVQ_F16, KVQ_F16, N_TOK, r))
        g_ref = r;
    else
        free(r);
    return g_ref;
}

/* Mean KL(ref || got) over the rows and the fraction of rows with the same argmax. */
static void compare(const float *ref, const float *got, int rows, size_t V, double *kld,
                    double *top1)
{
    double sum = 0.0;
    int same = 0;
    for (int r = 0; r < rows; r++) {
        const float *a = ref + (size_t)r * V, *b = got + (size_t)r * V;
        size_t ia = 0, ib = 0;
        for (size_t i = 1; i < V; i++) {
            ia = a[i] > a[ia] ? i : ia;
            ib = b[i] > b[ib] ? i : ib;
        }
        double za = 0.0, zb = 0.0;
        for (size_t i = 0; i < V; i++) {
            za += exp((double)a[i] - (double)a[ia]);
            zb += exp((double)b[i] - (double)b[ib]);
        }
        double la = log(za), lb = log(zb), k = 0.0;
        for (size_t i = 0; i < V; i++) {
            double lpa = (double)a[i] - (double)a[ia] - la;
            double lpb = (double)b[i] - (double)b[ib] - lb;
            k += exp(lpa) * (lpa - lpb);
        }
        sum += k;
        same += ia == ib;
    }
    *kld = sum / rows;
    *top1 = (double)same / rows;
}

/*
 * Per type: the largest mean KLD and the smallest top-1 agreement accepted.
 * Measured (AVX2, 2 threads, 300 tokens), KLD / top-1:
 *
 *   K handling             q8_0            q4_0           rot4           rot3
 *   plain                  0.0093 / 0.967  0.418 / 0.720  0.133 / 0.840  0.498 / 0.690
 *   key mean only          0.0087 / 0.963  0.218 / 0.817  0.101 / 0.873  0.369 / 0.777
 *   exact sink only        0.0093 / 0.973  0.426 / 0.717  0.131 / 0.843  0.452 / 0.717
 *   mean + sink (built)    0.0080 / 0.967  0.095 / 0.910  0.068 / 0.910  0.278 / 0.793
 *
 * (K q8_0 V rot3: 0.097 / 0.877.) The q4_0, rot4 and rot3 bounds below fail
 * with either half switched off. The floor is not 0: the f16 cache read
 * through the batched kernel (float sums in another order) already gives
 * 0.0053 / 0.977, because the 8-bit activation quantization of the matmuls
 * turns last-bit differences into whole quantization steps (scalar vs AVX2
 * differ by 1.8% in perplexity, test-perplexity.c).
 * Top-1 over 300 tokens moves by whole percents with such last bits: scaling
 * every other SiLU output of the scalar GLU by (1 + k·2^−23), k = ±1..±7,
 * gave q4_0 0.867 to 0.913 (13 runs, 0.910 unperturbed) and rot4 0.873 to
 * 0.903; the AVX2 GLU and softmax e^x (vexp-avx2.h) give q4_0 0.877, rot4
 * 0.893. Hence q4_0's 0.86 (its halves switched off give 0.82 and 0.72) and
 * rot4's 0.865 (was 0.885, inside that spread); for rot4 the KLD bound is what
 * fails with either half switched off (0.101, 0.131 against 0.09).
 */
static void quality(int kt, int vt, double max_kld, double min_top1)
{
    /* the sanitizers are after memory errors, and the short cases below run the same paths;
       300 tokens per type under ASan cost CI ~3 of its 30 minutes (bench/RESULTS.md) */
    if (getenv("HEARTH_SANITIZED"))
        TEST_SKIP("sanitizer build: quality is measured in the plain build");
    const float *ref = reference();
    REQUIRE(ref);
    const size_t V = g_model->hp.n_vocab;
    float *got = malloc((size_t)N_TOK * V * sizeof(float));
    REQUIRE(got);
    if (run(g_model, kt, vt, N_TOK, got)) {
        double kld = 0.0, top1 = 0.0;
        compare(ref, got, N_TOK, V, &kld, &top1);
        char name[48];
        kvq_pair_name(kt, vt, name, sizeof name);
        printf("  %-18s KLD %.5f  top-1 %.3f\n", name, kld, top1);
        CHECK_MSG(kld <= max_kld, "%s: KLD %.5f above %.5f", name, kld, max_kld);
        CHECK_MSG(top1 >= min_top1, "%s: top-1 %.3f below %.3f", name, top1, min_top1);
        CHECK_MSG(kld > 0.0, "%s: identical to f16: the type was not applied", name);
    }
    free(got);
}

TEST(quality_q8_0)
{
    quality(KVQ_Q8_0, KVQ_Q8_0, 0.015, 0.95);
}

TEST(quality_q4_0)
{
    quality(KVQ_Q4_0, KVQ_Q4_0, 0.13, 0.86);
}

TEST(quality_rot4)
{
    quality(KVQ_ROT4, KVQ_ROT4, 0.09, 0.865);
}

TEST(quality_rot3)
{
    quality(KVQ_ROT3, KVQ_ROT3, 0.34, 0.765);
}

TEST(quality_mixed)
{
    /* measured 0.097 / 0.877 */
    quality(KVQ_Q8_0, KVQ_ROT3, 0.13, 0.84);
}

static void prefill_equals_decode(int type, uint32_t window)
{
    struct model *m = model_and_tokens();
    REQUIRE(m);
    struct model_hparams saved = m->hp;
    if (window) {
        m->hp.sliding_window = window;
        m->hp.rope_base_local = m->hp.rope_base;
        for (uint32_t il = 0; il < m->hp.n_layer; il++)
            m->layers[il].is_swa = true;
    }
    const size_t n = (size_t)N_TOK * m->hp.n_vocab;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    if (a && b && run(m, type, type, N_TOK, a) && run(m, type, type, N_SPLIT, b)) {
        size_t diff = 0;
        for (size_t i = 0; i < n; i++)
            diff += memcmp(&a[i], &b[i], sizeof(float)) != 0;
        CHECK_MSG(diff == 0, "%s window %u: %zu of %zu logits differ", kvq_type_name(type), window,
                  diff, n);
        CHECK(isfinite(a[n - 1]));
    }
    if (window) {
        m->hp = saved;
        for (uint32_t il = 0; il < m->hp.n_layer; il++)
            m->layers[il].is_swa = false;
    }
    free(a);
    free(b);
}

TEST(prefill_equals_decode_rot3)
{
    /* ~30 s under ASan; there the rot3 encoder's memory is covered by test-kv-window's
       prefill_equals_decode (rot3 keys) and the q4_0 case below runs the same paths */
    if (getenv("HEARTH_SANITIZED"))
        TEST_SKIP("sanitizer build: checked in the plain build");
    prefill_equals_decode(KVQ_ROT3, 0);
}

TEST(prefill_equals_decode_q4_0_window)
{
    prefill_equals_decode(KVQ_Q4_0, 100);
}

/*
 * cpu_kvq_key_center: the mean of positions [1, min(n, 64)) in double and the
 * centred key of position 0, set only by the batch holding position 0, the
 * mean subtracted from every row; an f16 K has no mean; and attention over
 * the centred keys equals attention over the raw ones (softmax invariance)
 * to float rounding.
 */
TEST(key_center)
{
    enum { KV = 8, NR = 80 };
    static float k[NR][KV], orig[NR][KV];
    int32_t rows[NR];
    for (int i = 0; i < NR; i++) {
        rows[i] = NR - 1 - i; /* position i in batch row NR-1-i: rows need not be in order */
        for (int d = 0; d < KV; d++)
            k[NR - 1 - i][d] = orig[NR - 1 - i][d] = (float)(i * 3 + d) + (d == 2 ? 100.0f : 0.0f);
    }
    float mu[KV];
    float sink[KV];
    cpu_kvq_key_center(&k[0][0], KV, rows, NR, true, KV, mu, sink);
    for (int d = 0; d < KV; d++) {
        /* mean of i*3 + d (+100) for i in [1, 64): 3 * 32 + d (+100) */
        double want = 96.0 + d + (d == 2 ? 100.0 : 0.0);
        CHECK_NEAR(mu[d], want, 1e-4);
        for (int i = 0; i < NR; i++)
            CHECK_NEAR(k[rows[i]][d], orig[rows[i]][d] - mu[d], 0.0);
        CHECK_NEAR(sink[d], k[rows[0]][d], 0.0); /* the centred key of position 0 */
    }
    /* a later batch (first = false) keeps mu */
    float more[2][KV] = {{1, 2, 3, 4, 5, 6, 7, 8}, {0}};
    int32_t r2[2] = {0, 1};
    float mu0[KV];
    memcpy(mu0, mu, sizeof mu);
    memcpy(sink, mu, sizeof sink);
    cpu_kvq_key_center(&more[0][0], KV, r2, 2, false, KV, mu, sink);
    CHECK(memcmp(sink, mu0, sizeof sink) == 0); /* not first: the sink is not written */
    CHECK(memcmp(mu0, mu, sizeof mu) == 0);
    CHECK_NEAR(more[0][0], 1.0 - (double)mu[0], 0.0);
    CHECK_NEAR(more[1][7], -(double)mu[7], 0.0);
    /* a first batch of one token (the sink only) gives mu = 0 */
    float one[KV] = {5, 5, 5, 5, 5, 5, 5, 5};
    int32_t r1 = 0;
    cpu_kvq_key_center(one, KV, &r1, 1, true, KV, mu, NULL);
    for (int d = 0; d < KV; d++) {
        CHECK_NEAR(mu[d], 0.0, 0.0);
        CHECK_NEAR(one[d], 5.0, 0.0);
    }
    /* caches: a mean for every non-f16 K, none for f16 */
    struct kv_cache_params p = {.n_layer = 2, .n_ctx = 4, .n_head_kv = 2, .head_dim = 64,
                                .k_type = KVQ_F16, .v_type = KVQ_ROT4};
    struct kv_cache *c = NULL;
    CHECK_OK(kv_cache_create(&p, &c));
    if (c)
        CHECK(kv_cache_k_mean(c, 1) == NULL);
    kv_cache_destroy(c);
    c = NULL;
    p.k_type = KVQ_Q4_0;
    p.v_type = KVQ_F16;
    CHECK_OK(kv_cache_create(&p, &c));
    if (c) {
        /* [layer][mean, sink][kv_dim 128] */
        REQUIRE(kv_cache_k_mean(c, 1) == c->k_aux + 256);
        CHECK(kv_cache_k_sink(c, 1) == c->k_aux + 384);
        for (int i = 0; i < 512; i++)
            CHECK_NEAR(c->k_aux[i], 0.0, 0.0);
    }
    kv_cache_destroy(c);

    /* softmax invariance: centred keys give the same attention (in double, up to float rounding) */
    enum { HD = 64, NP = 40 };
    static float kk[NP][HD], kc[NP][HD], vv[NP][HD];
    float q[HD], out_a[HD], out_b[HD], m64[HD];
    int32_t rr[NP];
    test_rng_seed(91);
    for (int d = 0; d < HD; d++)
        q[d] = (float)test_rng_gauss();
    for (int j = 0; j < NP; j++) {
        rr[j] = j;
        for (int d = 0; d < HD; d++) {
            kk[j][d] = (float)test_rng_gauss() + (d < 4 ? 8.0f : 0.0f);
            vv[j][d] = (float)test_rng_gauss();
        }
    }
    memcpy(kc, kk, sizeof kk);
    cpu_kvq_key_center(&kc[0][0], HD, rr, NP, true, HD, m64, NULL);
    double ref[HD] = {0}, cen[HD] = {0}, sa[NP], sb[NP], ma = -1e300, mb = -1e300;
    for (int j = 0; j < NP; j++) {
        sa[j] = sb[j] = 0.0;
        for (int d = 0; d < HD; d++) {
            sa[j] += (double)q[d] * (double)kk[j][d] * 0.125;
            sb[j] += (double)q[d] * (double)kc[j][d] * 0.125;
        }
        ma = sa[j] > ma ? sa[j] : ma;
        mb = sb[j] > mb ? sb[j] : mb;
    }
    double za = 0.0, zb = 0.0;
    for (int j = 0; j < NP; j++) {
        double pa = exp(sa[j] - ma), pb = exp(sb[j] - mb);
        za += pa;
        zb += pb;
        for (int d = 0; d < HD; d++) {
            ref[d] += pa * (double)vv[j][d];
            cen[d] += pb * (double)vv[j][d];
        }
    }
    double err = 0.0, nrm = 0.0;
    for (int d = 0; d < HD; d++) {
        out_a[d] = (float)(ref[d] / za);
        out_b[d] = (float)(cen[d] / zb);
        double e = (double)out_a[d] - (double)out_b[d];
        err += e * e;
        nrm += (double)out_a[d] * (double)out_a[d];
    }
    CHECK_MSG(sqrt(err / nrm) < 1e-5, "centred keys change attention by %.3g", sqrt(err / nrm));
}

TEST(cache_bytes)
{
    for (int kt = 0; kt < KVQ_TYPE_COUNT; kt++) {
        for (int vt = 0; vt < KVQ_TYPE_COUNT; vt++) {
            struct kv_cache_params p = {.n_layer = 3,
                                        .n_ctx = 17,
                                        .n_head_kv = 2,
                                        .head_dim = 64,
                                        .k_type = kt,
                                        .v_type = vt,
                                        .seed = 5};
            struct kv_cache *c = NULL;
            CHECK_OK(kv_cache_create(&p, &c));
            if (!c)
                continue;
            size_t kr = 2 * kvq_head_bytes(kt, 64), vr = 2 * kvq_head_bytes(vt, 64);
            CHECK_INT_EQ(c->k_row, kr);
            CHECK_INT_EQ(c->v_row, vr);
            CHECK_INT_EQ(kv_cache_bytes(c), (size_t)3 * 17 * (kr + vr));
            CHECK_INT_EQ(kv_cache_k(c, 2, 5) - c->k[2], 5 * kr);
            CHECK_INT_EQ(kv_cache_v(c, 1, 16) - c->v[1], 16 * vr);
            CHECK((c->rot != NULL) == (kvq_is_rotated(kt) || kvq_is_rotated(vt)));
            if (c->rot) {
                struct kvq_rot r;
                CHECK_OK(kvq_rot_init(&r, 64, 5, 2));
                CHECK(memcmp(r.sign, kv_cache_rot(c, 2)->sign, 64 * sizeof(float)) == 0);
            }
            if (kt == KVQ_F16 && vt == KVQ_F16) /* the old layout's bytes */
                CHECK_INT_EQ(kv_cache_bytes(c), (size_t)2 * 3 * 17 * 128 * 2);
            if (kt == KVQ_ROT3 && vt == KVQ_Q8_0) /* 3.25 and 8.5 bits per value */
                CHECK_INT_EQ(kv_cache_bytes(c), (size_t)3 * 17 * 2 * (26 + 68));
            kv_cache_destroy(c);
        }
    }
    struct kv_cache_params bad = {.n_layer = 2,
                                  .n_ctx = 4,
                                  .n_head_kv = 1,
                                  .head_dim = 48,
                                  .k_type = KVQ_F16,
                                  .v_type = KVQ_Q4_0};
    struct kv_cache *c = NULL;
    CHECK_INT_EQ(kv_cache_create(&bad, &c), HEARTH_ERR_UNSUPPORTED);
    CHECK(c == NULL);
    CHECK_MSG(strstr(hearth_last_error(), "q4_0") && strstr(hearth_last_error(), "48"),
              "message: %s", hearth_last_error());
    bad.v_type = KVQ_F16;
    bad.n_ctx = 0;
    CHECK_INT_EQ(kv_cache_create(&bad, &c), HEARTH_ERR_INVALID_ARG);

    struct model *m = model_and_tokens();
    REQUIRE(m);
    struct forward_params fp = forward_params_default();
    fp.n_ctx = 64;
    fp.n_threads = 1;
    fp.kv_type_k = KVQ_ROT4;
    fp.kv_type_v = KVQ_Q8_0;
    struct forward_ctx *f = NULL;
    CHECK_OK(forward_create(m, &fp, &f));
    if (f) {
        const struct model_hparams *hp = &m->hp;
        size_t row = hp->n_head_kv * (kvq_head_bytes(KVQ_ROT4, (int)hp->head_dim) +
                                      kvq_head_bytes(KVQ_Q8_0, (int)hp->head_dim));
        CHECK_INT_EQ(forward_kv_bytes(f), (size_t)hp->n_layer * 64 * row);
        forward_destroy(f);
    }
    fp.kv_type_k = KVQ_TYPE_COUNT;
    CHECK_INT_EQ(forward_create(m, &fp, &f), HEARTH_ERR_INVALID_ARG);
}

/* Softmax attention in double over decoded K/V rows of one head. */
static void ref_attention(const float *q, const float *kd, const float *vd, int64_t lo, int64_t hi,
                          int hd, float scale, double *out)
{
    double mx = -INFINITY, sum = 0.0;
    double *s = malloc(sizeof(double) * (size_t)(hi - lo + 1));
    for (int64_t j = lo; j <= hi; j++) {
        double d = 0.0;
        for (int i = 0; i < hd; i++)
            d += (double)q[i] * (double)kd[(size_t)j * (size_t)hd + (size_t)i];
        s[j - lo] = d * (double)scale;
        mx = s[j - lo] > mx ? s[j - lo] : mx;
    }
    for (int i = 0; i < hd; i++)
        out[i] = 0.0;
    for (int64_t j = lo; j <= hi; j++) {
        double w = exp(s[j - lo] - mx);
        sum += w;
        for (int i = 0; i < hd; i++)
            out[i] += w * (double)vd[(size_t)j * (size_t)hd + (size_t)i];
    }
    for (int i = 0; i < hd; i++)
        out[i] /= sum;
    free(s);
}

/*
 * The batched kernel on random data: two sequences (caches) of 600 positions,
 * 5 tokens each at scattered positions (so ranges start and end inside and
 * across 256-position chunks), 2 KV heads x G = 3, every K/V type pair that
 * matters, with and without a window; the second cache with an exact sink
 * key in place of its decoded position 0 (cpu_kvq_seq.k_sink).
 */
static void kernel_case(int isa, enum kvq_type kt, enum kvq_type vt, uint32_t window)
{
    enum { NP = 600, HK = 2, G = 3, H = HK * G, HD = 64, NT = 10 };
    struct kvq_rot rot;
    CHECK_OK(kvq_rot_init(&rot, HD, 99, 3));
    size_t kb = kvq_head_bytes(kt, HD), vb = kvq_head_bytes(vt, HD);
    size_t kr = HK * kb, vr = HK * vb;
    uint8_t *kc[2], *vc[2];
    float *kd[2][HK], *vd[2][HK]; /* decoded, per head: [NP][HD] */
    float x[HD];
    test_rng_seed(1234 + (uint64_t)kt * 7 + vt);
    for (int s = 0; s < 2; s++) {
        kc[s] = malloc(NP * kr);
        vc[s] = malloc(NP * vr);
        for (int h = 0; h < HK; h++) {
            kd[s][h] = malloc(sizeof(float) * NP * HD);
            vd[s][h] = malloc(sizeof(float) * NP * HD);
        }
        for (int p = 0; p < NP; p++) {
            for (int h = 0; h < HK; h++) {
                for (int i = 0; i < HD; i++)
                    x[i] = (float)test_rng_gauss() * (i == 3 ? 8.0f : 1.0f);
                kvq_encode(kt, &rot, HD, x, kc[s] + p * kr + h * kb);
                kvq_decode(kt, &rot, HD, kc[s] + p * kr + h * kb, kd[s][h] + p * HD);
                for (int i = 0; i < HD; i++)
                    x[i] = (float)test_rng_gauss();
                kvq_encode(vt, &rot, HD, x, vc[s] + p * vr + h * vb);
                kvq_decode(vt, &rot, HD, vc[s] + p * vr + h * vb, vd[s][h] + p * HD);
            }
        }
    }
    static const int32_t pos[NT] = {0, 255, 256, 599, 300, 511, 17, 513, 260, 598};
    float *q = malloc(sizeof(float) * NT * H * HD), *out = malloc(sizeof(float) * NT * H * HD);
    for (int i = 0; i < NT * H * HD; i++)
        q[i] = 0.6f * (float)test_rng_gauss();
    int32_t tok0[5] = {0, 2, 4, 6, 8}, tok1[5] = {9, 7, 5, 3, 1};
    /* cache 1 has an exact sink key for position 0 (large, so ignoring it shows) */
    float sink[HK * HD];
    for (int h = 0; h < HK; h++)
        for (int i = 0; i < HD; i++)
            kd[1][h][i] = sink[h * HD + i] = 3.0f * (float)test_rng_gauss();
    struct cpu_kvq_seq seq[2] = {{kc[0], vc[0], tok0, 5, NULL}, {kc[1], vc[1], tok1, 5, sink}};
    struct cpu_kvq_layer L = {.kt = kt,
                              .vt = vt,
                              .rot = &rot,
                              .n_head = H,
                              .n_head_kv = HK,
                              .hd = HD,
                              .k_row = kr,
                              .v_row = vr,
                              .scale = 0.125f,
                              .window = window,
                              .pos = pos,
                              .q = q,
                              .q_stride = H * HD,
                              .out = out,
                              .out_stride = H * HD,
                              .seq = seq,
                              .n_seq = 2};
    struct threadpool *tp = NULL;
    struct cpu_kvq_attn *a = NULL;
    CHECK_OK(threadpool_create(2, &tp));
    CHECK_OK(cpu_kvq_attn_create(isa, 2, &a));
    if (tp && a) {
        CHECK_OK(cpu_kvq_attn_reserve(a, NT, H, HD));
        cpu_kvq_attn_run(a, tp, &L);
        double worst = 0.0, ref[HD];
        for (int t = 0; t < NT; t++) {
            int s = t % 2 == 0 ? 0 : 1;
            int64_t lo = window && pos[t] + 1 > (int32_t)window ? pos[t] - (int32_t)window + 1 : 0;
            for (int h = 0; h < H; h++) {
                ref_attention(q + (t * H + h) * HD, kd[s][h / G], vd[s][h / G], lo, pos[t], HD,
                              0.125f, ref);
                double e2 = 0.0, r2 = 0.0;
                for (int i = 0; i < HD; i++) {
                    double d = (double)out[(t * H + h) * HD + i] - ref[i];
                    e2 += d * d;
                    r2 += ref[i] * ref[i];
                }
                double rel = sqrt(e2 / r2);
                worst = rel > worst ? rel : worst;
            }
        }
        char name[48];
        kvq_pair_name(kt, vt, name, sizeof name);
        CHECK_MSG(worst < 1e-5, "%s isa %d window %u: relative error %.3g", name, isa, window,
                  worst);
    }
    cpu_kvq_attn_destroy(a);
    threadpool_destroy(tp);
    for (int s = 0; s < 2; s++) {
        free(kc[s]);
        free(vc[s]);
        for (int h = 0; h < HK; h++) {
            free(kd[s][h]);
            free(vd[s][h]);
        }
    }
    free(q);
    free(out);
}

/* The AVX2 row decoders give kv-quant.c's bits (the tiles must not depend on the ISA's decoder). */
TEST(avx2_decode_bitwise)
{
    const struct cpu_caps *caps = cpu_caps_get();
    if (!(caps->avx2 && caps->fma && caps->f16c))
        TEST_SKIP("no AVX2/FMA/F16C");
    static const int dims[] = {64, 96, 128, 256};
    test_rng_seed(77);
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        const int d = dims[di];
        struct kvq_rot rot;
        CHECK_OK(kvq_rot_init(&rot, d, 3, 1));
        for (int t = 0; t < KVQ_TYPE_COUNT; t++) {
            enum { N = 5 };
            size_t hb = kvq_head_bytes((enum kvq_type)t, d), stride = hb + 7;
            uint8_t *rows = calloc(N, stride);
            float *a = malloc(sizeof(float) * N * (size_t)d),
                  *b = malloc(sizeof(float) * N * (size_t)d);
            REQUIRE(rows && a && b);
            float x[KVQ_MAX_HEAD_DIM];
            for (int r = 0; r < N; r++) {
                for (int i = 0; i < d; i++)
                    x[i] = (float)test_rng_gauss() * (i == 5 ? 12.0f : 1.0f);
                kvq_encode((enum kvq_type)t, &rot, d, x, rows + (size_t)r * stride);
                if (kvq_is_rotated((enum kvq_type)t))
                    kvq_decode_rotated((enum kvq_type)t, &rot, rows + (size_t)r * stride,
                                       a + (size_t)r * (size_t)d);
                else
                    kvq_decode((enum kvq_type)t, &rot, d, rows + (size_t)r * stride,
                               a + (size_t)r * (size_t)d);
            }
            cpu_kvq__decode_rows_avx2((enum kvq_type)t, &rot, d, rows, stride, N, b);
            CHECK_MSG(memcmp(a, b, sizeof(float) * N * (size_t)d) == 0, "%s d %d differs",
                      kvq_type_name((enum kvq_type)t), d);
            free(rows);
            free(a);
            free(b);
        }
    }
}

TEST(kernel_vs_reference)
{
    static const int pairs[][2] = {{KVQ_Q8_0, KVQ_Q8_0}, {KVQ_Q4_0, KVQ_Q4_0}, {KVQ_ROT4, KVQ_ROT4},
                                   {KVQ_ROT3, KVQ_ROT3}, {KVQ_F16, KVQ_ROT4},  {KVQ_ROT3, KVQ_Q8_0},
                                   {KVQ_Q4_0, KVQ_F16}};
    for (int isa = 0; isa <= 1; isa++)
        for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
            for (int w = 0; w < 2; w++)
                kernel_case(isa, pairs[i][0], pairs[i][1], w ? 300u : 0u);
}

/* The scheduler on one CPU device (backend ATTENTION op) against forward.c, same kv types. */
static void sched_vs_forward(int kt, int vt)
{
    enum { NP = 20, ND = 6 };
    struct model *m = model_and_tokens();
    REQUIRE(m);
    const size_t V = m->hp.n_vocab, n = (size_t)(NP + ND) * V;
    float *ref = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    struct cpu_backend_params cp = {.n_threads = 2, .isa = -1, .name = NULL};
    struct hearth_device *dev = NULL;
    CHECK_OK(cpu_backend_device_create(&cp, &dev));
    REQUIRE(ref && got && dev);
    CHECK(backend_device_supports_kv(dev, kt, vt));
    struct forward_params fp = forward_params_default();
    fp.n_ctx = 64;
    fp.n_threads = 2;
    fp.kv_type_k = kt;
    fp.kv_type_v = vt;
    struct forward_ctx *f = NULL;
    CHECK_OK(forward_create(m, &fp, &f));
    struct sched_params sp = sched_params_default();
    sp.n_ctx = 64;
    sp.n_devices = 1;
    sp.devices = &dev;
    sp.kv_type_k = kt;
    sp.kv_type_v = vt;
    struct sched *s = NULL;
    CHECK_OK(sched_create(m, &sp, &s));
    if (f && s) {
        CHECK_OK(forward_eval(f, g_toks, NP, 0, ref, true));
        CHECK_OK(sched_eval(s, g_toks, NP, 0, got, true));
        for (int i = 0; i < ND; i++) {
            CHECK_OK(forward_eval(f, g_toks + NP + i, 1, NP + i, ref + (NP + i) * V, false));
            CHECK_OK(sched_eval(s, g_toks + NP + i, 1, NP + i, got + (NP + i) * V, false));
        }
        size_t diff = 0;
        for (size_t i = 0; i < n; i++)
            diff += memcmp(&ref[i], &got[i], sizeof(float)) != 0;
        CHECK_MSG(diff == 0, "K %s V %s: %zu of %zu logits differ", kvq_type_name(kt),
                  kvq_type_name(vt), diff, n);
    }
    sched_destroy(s);
    forward_destroy(f);
    backend_device_destroy(dev);
    free(ref);
    free(got);
}

TEST(sched_equals_forward)
{
    sched_vs_forward(KVQ_ROT4, KVQ_ROT4);
    sched_vs_forward(KVQ_Q8_0, KVQ_ROT3);
}

TEST_MAIN(TEST_CASE(key_center), TEST_CASE(cache_bytes), TEST_CASE(avx2_decode_bitwise),
          TEST_CASE(kernel_vs_reference), TEST_CASE(quality_q8_0), TEST_CASE(quality_q4_0), TEST_CASE(quality_rot4),
          TEST_CASE(quality_rot3), TEST_CASE(quality_mixed), TEST_CASE(prefill_equals_decode_rot3),
          TEST_CASE(prefill_equals_decode_q4_0_window),
          TEST_CASE(sched_equals_forward))
