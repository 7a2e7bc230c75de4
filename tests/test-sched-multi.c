/*
 * test-sched-multi: several sequences through the scheduler (sched_eval_multi)
 * and the server's slots on a GPU.
 *
 *  - on one CPU device, sched_eval_multi gives the bits forward_eval_multi
 *    gives, call by call (SmolLM2, 3 sequences, n_batch 16 so calls split
 *    into batches: mixed prefill chunks and decode rows, a sequence's rows
 *    interleaved with another's in one batch, a rewind through a smaller
 *    first position, a cleared sequence refilled), and every wanted row
 *    equals the single-sequence sched_eval of that sequence's tokens; so
 *    do the hidden rows (the LM head's input, for embeddings) of rows
 *    wanted in several runs per batch;
 *  - argument errors name the token index and change nothing;
 *  - with n_parallel 3 the planner's per-device bytes are exactly what the
 *    scheduler allocates (n_seq 3), and the KV is three sequences' worth;
 *  - on vulkan0 (lavapipe in CI; skipped without a Vulkan device): every
 *    wanted row of 3 sequences batched equals (argmax, logits within 4e-3 x
 *    max|logit|) the sequence alone, and so does its hidden row (5e-4 x
 *    max|h|), fetched from vulkan0; the slots on vulkan0 are tested end to
 *    end by tests/cli-serve-vulkan.sh.
 * f16 caches throughout: with a compressed K the key mean comes from the run
 * of rows that writes position 0, so interleaving a sequence's first rows
 * with another's (allowed, and bit-identical for f16) may change it.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-registry.h"
#include "backend.h"
#include "cpu/forward.h"
#include "engine.h"
#include "err.h"
#include "fixtures.h"
#include "generate.h"
#include "golden.h"
#include "kv-quant.h"
#include "model-presets.h"
#include "model.h"
#include "plan.h"
#include "quant-mix.h"
#include "scheduler.h"
#include "slots.h"
#include "synth.h"
#include "test.h"
#include "tokenizer.h"

enum { N_SEQ = 3, N_CTX = 96, N_BATCH = 16, MAX_CALL = 48 };

static struct sched *make_sched(const struct model *m, struct hearth_device **dev, int n_seq)
{
    struct sched_params sp = sched_params_default();
    sp.n_ctx = N_CTX;
    sp.n_batch = N_BATCH;
    sp.n_devices = 1;
    sp.devices = dev;
    sp.n_seq = n_seq;
    struct sched *s = NULL;
    CHECK_OK(sched_create(m, &sp, &s));
    return s;
}

/* One multi-sequence call under construction. */
struct call {
    int32_t tok[MAX_CALL], seq[MAX_CALL], pos[MAX_CALL];
    bool want[MAX_CALL];
    int n;
};

/* Appends k tokens of sequence q from position p0; want: the last only, or all. */
static void add(struct call *c, int q, int p0, int k, bool all)
{
    for (int i = 0; i < k && c->n < MAX_CALL; i++, c->n++) {
        c->tok[c->n] = (int32_t)(test_rng_u64() % 30000u) + 50;
        c->seq[c->n] = q;
        c->pos[c->n] = p0 + i;
        c->want[c->n] = all || i == k - 1;
    }
}

static int n_wanted(const struct call *c)
{
    int n = 0;
    for (int t = 0; t < c->n; t++)
        n += c->want[t];
    return n;
}

TEST(multi_matches_forward_and_single)
{
    struct model *m = fixture_model(TEST_SMOLLM2);
    REQUIRE(m);
    const size_t V = m->hp.n_vocab;
    struct hearth_device *dev = fixture_cpu_device("cpu", 2);
    struct forward_params fp = forward_params_default();
    fp.n_ctx = N_CTX;
    fp.n_threads = 2;
    fp.n_batch = N_BATCH;
    struct forward_ctx *fc = NULL;
    CHECK_OK(forward_create_multi(m, &fp, N_SEQ, &fc));
    struct sched *s = dev ? make_sched(m, &dev, N_SEQ) : NULL;
    float *lf = malloc((size_t)MAX_CALL * V * sizeof(float));
    float *ls = malloc((size_t)MAX_CALL * V * sizeof(float));
    float *one = malloc((size_t)N_CTX * V * sizeof(float));
    const size_t E = m->hp.n_embd;
    float *hf = malloc((size_t)MAX_CALL * E * sizeof(float));
    float *hs = malloc((size_t)MAX_CALL * E * sizeof(float));
    REQUIRE(fc && s && lf && ls && one && hf && hs);
    CHECK_INT_EQ(sched_n_seq(s), N_SEQ);
    /* hist[q][p]: the token sequence q holds at position p, as a lone run would feed it */
    static int32_t hist[N_SEQ][N_CTX];
    test_rng_seed(11);
    struct call calls[5];
    memset(calls, 0, sizeof calls);
    /* 0: prefills of 10, 6 (all logits) and 1 token: one batch boundary inside */
    add(&calls[0], 0, 0, 10, false);
    add(&calls[0], 1, 0, 6, true);
    add(&calls[0], 2, 0, 1, false);
    /* 1: decode rows first, then prefill chunks, interleaved: 0, 1, 1, 0, 2, 2, 2 */
    add(&calls[1], 0, 10, 1, false);
    add(&calls[1], 1, 6, 2, true);
    add(&calls[1], 0, 11, 1, false);
    add(&calls[1], 2, 1, 3, true);
    /* 2: sequence 1 rewinds to position 3 with 4 tokens; 2 and 0 decode */
    add(&calls[2], 2, 4, 1, false);
    add(&calls[2], 1, 3, 4, true);
    add(&calls[2], 0, 12, 1, false);
    /* 3: (sequence 0 cleared first) 0 refills 20 tokens across batches, others decode */
    add(&calls[3], 1, 7, 1, false);
    add(&calls[3], 0, 0, 20, true);
    add(&calls[3], 2, 5, 1, false);
    /* 4: a long interleave: 2 prefills 12 between two decode rows of 0 and 1 */
    add(&calls[4], 0, 20, 1, false);
    add(&calls[4], 2, 6, 12, false);
    add(&calls[4], 1, 8, 1, false);
    const uint32_t past[5][N_SEQ] = {{10, 6, 1}, {12, 8, 4}, {13, 7, 5}, {20, 8, 6},
                                     {21, 9, 18}};
    for (int k = 0; k < 5; k++) {
        const struct call *c = &calls[k];
        if (k == 3) {
            forward_seq_clear(fc, 0);
            sched_seq_clear(s, 0);
            CHECK_INT_EQ(sched_seq_n_past(s, 0), 0);
        }
        /* hidden rows in runs that split the wanted ones: every third row skipped */
        bool hid_want[MAX_CALL];
        int n_hid = 0;
        for (int t = 0; t < c->n; t++)
            n_hid += hid_want[t] = t % 3 != 1;
        const struct seq_batch_out of = {lf, c->want, hf, hid_want},
                                   os = {ls, c->want, hs, hid_want};
        CHECK_OK(forward_eval_multi_out(fc, c->tok, c->seq, c->pos, c->n, &of));
        CHECK_OK(sched_eval_multi_out(s, c->tok, c->seq, c->pos, c->n, &os));
        const int nw = n_wanted(c);
        CHECK_MSG(memcmp(lf, ls, (size_t)nw * V * sizeof(float)) == 0,
                  "call %d: sched logits differ from forward_eval_multi's", k);
        CHECK_MSG(memcmp(hf, hs, (size_t)n_hid * E * sizeof(float)) == 0,
                  "call %d: sched hidden rows differ from forward_eval_multi's", k);
        for (int q = 0; q < N_SEQ; q++) {
            CHECK_INT_EQ(sched_seq_n_past(s, q), past[k][q]);
            CHECK_INT_EQ(forward_seq_n_past(fc, q), past[k][q]);
        }
        for (int t = 0; t < c->n; t++)
            hist[c->seq[t]][c->pos[t]] = c->tok[t];
        /* each wanted row against sequence q run alone, all its tokens in one sched_eval */
        for (int q = 0; q < N_SEQ; q++) {
            struct sched *solo = make_sched(m, &dev, 1);
            if (!solo)
                break;
            const int np = (int)past[k][q];
            CHECK_OK(sched_eval(solo, hist[q], np, 0, one, true));
            int row = 0;
            for (int t = 0; t < c->n; t++) {
                if (!c->want[t])
                    continue;
                if (c->seq[t] == q)
                    CHECK_MSG(memcmp(ls + (size_t)row * V, one + (size_t)c->pos[t] * V,
                                     V * sizeof(float)) == 0,
                              "call %d token %d (sequence %d, position %d): batched logits "
                              "differ from the sequence alone",
                              k, t, q, c->pos[t]);
                row++;
            }
            sched_destroy(solo);
        }
    }
    /* logits NULL or no row wanted: the caches still advance */
    struct call d;
    memset(&d, 0, sizeof d);
    add(&d, 1, 9, 2, false);
    CHECK_OK(sched_eval_multi(s, d.tok, d.seq, d.pos, d.n, NULL, d.want));
    CHECK_INT_EQ(sched_seq_n_past(s, 1), 11);
    CHECK_INT_EQ(sched_n_past(s), sched_seq_n_past(s, 0));
    free(lf);
    free(ls);
    free(one);
    free(hf);
    free(hs);
    sched_destroy(s);
    forward_destroy(fc);
    backend_device_destroy(dev);
    model_free(m);
}

/* err must name the token index ("token N") and the sequence caches must be unchanged. */
static void expect_error(struct sched *s, const struct call *c, const char *needle)
{
    uint32_t before[N_SEQ];
    for (int q = 0; q < N_SEQ; q++)
        before[q] = sched_seq_n_past(s, q);
    err_clear();
    hearth_status st = sched_eval_multi(s, c->tok, c->seq, c->pos, c->n, NULL, c->want);
    CHECK_INT_EQ(st, HEARTH_ERR_INVALID_ARG);
    CHECK_MSG(strstr(hearth_last_error(), needle) != NULL, "message '%s' lacks '%s'",
              hearth_last_error(), needle);
    for (int q = 0; q < N_SEQ; q++)
        CHECK_INT_EQ(sched_seq_n_past(s, q), before[q]);
}

TEST(multi_errors_name_the_token)
{
    struct model *m = fixture_model(TEST_SMOLLM2);
    REQUIRE(m);
    struct hearth_device *dev = fixture_cpu_device("cpu", 2);
    struct sched *s = dev ? make_sched(m, &dev, N_SEQ) : NULL;
    REQUIRE(s);
    test_rng_seed(3);
    struct call c;
    memset(&c, 0, sizeof c);
    add(&c, 0, 0, 4, false);
    CHECK_OK(sched_eval_multi(s, c.tok, c.seq, c.pos, c.n, NULL, NULL));
    /* sequence out of range at index 2 */
    memset(&c, 0, sizeof c);
    add(&c, 0, 4, 2, false);
    add(&c, 3, 0, 1, false);
    expect_error(s, &c, "token 2 names sequence 3");
    c.seq[2] = -1;
    expect_error(s, &c, "token 2 names sequence -1");
    /* non-consecutive positions of sequence 0 at index 2 */
    memset(&c, 0, sizeof c);
    add(&c, 1, 0, 1, false);
    add(&c, 0, 4, 1, false);
    add(&c, 0, 6, 1, false);
    expect_error(s, &c, "token 2 of sequence 0 is at position 6, expected 5");
    /* beyond the past: sequence 0 holds 4, sequence 2 holds none */
    memset(&c, 0, sizeof c);
    add(&c, 0, 5, 1, false);
    expect_error(s, &c, "token 0 of sequence 0 at position 5");
    memset(&c, 0, sizeof c);
    add(&c, 0, 4, 1, false);
    add(&c, 2, 1, 1, false);
    expect_error(s, &c, "token 1 of sequence 2 at position 1");
    /* a token id out of range, and the context end */
    memset(&c, 0, sizeof c);
    add(&c, 0, 4, 2, false);
    c.tok[1] = (int32_t)m->hp.n_vocab;
    expect_error(s, &c, "at index 1");
    memset(&c, 0, sizeof c);
    add(&c, 1, 0, 1, false);
    c.pos[0] = N_CTX;
    expect_error(s, &c, "token 0 of sequence 1 at position");
    CHECK_INT_EQ(sched_eval_multi(s, c.tok, c.seq, c.pos, 0, NULL, NULL),
                 HEARTH_ERR_INVALID_ARG);
    sched_destroy(s);
    backend_device_destroy(dev);
    model_free(m);
}

TEST(plan_counts_n_seq_kv)
{
    struct model *m = fixture_model(TEST_SMOLLM2);
    REQUIRE(m);
    struct hearth_device *devs[2] = {fixture_cpu_device("cpu", 2), fixture_cpu_device("cpu-b", 2)};
    REQUIRE(devs[0] && devs[1]);
    struct engine_load in;
    memset(&in, 0, sizeof in);
    in.m = m;
    in.n_dev = 2;
    in.devices = devs;
    plan_devices_init(&in.devs);
    in.devs.dev[PLAN_HOST].budget_bytes = 64ull << 30;
    struct plan_device *g = &in.devs.dev[in.devs.n++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "cpu-b");
    g->kind = PLAN_DEV_CPU;
    g->budget_bytes = 4ull << 30;
    g->mem_bw = 200e9;
    g->flops = 10e12;
    g->h2d_bw = 16e9;
    const int kvs[2] = {KVQ_F16, KVQ_Q8_0};
    for (int k = 0; k < 2; k++) {
        plan_opts_default(&in.opts);
        in.opts.n_ctx = 200;
        in.opts.n_batch = 64;
        in.opts.kv_type_k = in.opts.kv_type_v = kvs[k];
        in.opts.n_gpu_layers = 10;
        in.opts.n_parallel = 3;
        struct sched *s = NULL;
        struct placement *pl = NULL;
        struct plan plan;
        char how[128];
        CHECK_OK(engine__load_planned(&in, &s, &pl, &plan, how, sizeof how));
        if (!s)
            break;
        CHECK_INT_EQ(sched_n_seq(s), 3);
        uint64_t kv = 0;
        for (int d = 0; d < 2; d++) {
            CHECK_MSG(sched_device_bytes(s, d) == plan_device_alloc_bytes(&plan, d),
                      "kv %d device %d: sched %llu, plan %llu", kvs[k], d,
                      (unsigned long long)sched_device_bytes(s, d),
                      (unsigned long long)plan_device_alloc_bytes(&plan, d));
            kv += plan.use[d].kv;
        }
        CHECK_INT_EQ(sched_kv_bytes(s), kv);
        /* three sequences' worth: K and V of 3 x 200 rows per layer */
        const uint64_t row = 2ull * m->hp.n_head_kv * m->hp.head_dim;
        if (kvs[k] == KVQ_F16)
            CHECK_INT_EQ(kv, (uint64_t)m->hp.n_layer * 2 * plan_kv_buffer_bytes(row, 600));
        sched_destroy(s);
        placement_free(pl);
        plan_free(&plan);
    }
    backend_device_destroy(devs[1]);
    backend_device_destroy(devs[0]);
    model_free(m);
}

/* ---- several sequences on vulkan0 ------------------------------------------------- */

/*
 * A 2-layer random-weight SmolLM2 (synth.h), its layers on vulkan0: lavapipe
 * runs the real model at well under a token per second on a small CI
 * machine. The slots on top of this are exercised end to end by
 * tests/cli-serve-vulkan.sh.
 */
static struct sched *make_vk(const struct model *m, struct hearth_device **devs, int n_seq)
{
    struct placement *pl = NULL;
    CHECK_OK(placement_create(m->hp.n_layer, 0, &pl));
    if (!pl)
        return NULL;
    /* the head on the CPU: lavapipe takes about a second per row of its 49152 x 576 */
    CHECK_OK(placement_from_ngl(pl, (int)m->hp.n_layer, 1, 0));
    struct sched_params sp = sched_params_default();
    sp.n_ctx = N_CTX;
    sp.n_batch = N_BATCH;
    sp.n_devices = 2;
    sp.devices = devs;
    sp.placement = pl;
    sp.n_seq = n_seq;
    struct sched *s = NULL;
    CHECK_OK(sched_create(m, &sp, &s));
    placement_free(pl);
    return s;
}

/* max |a - b| and max |b| over n values. */
static void max_diff(const float *a, const float *b, size_t n, double *dmax, double *bmax)
{
    *dmax = *bmax = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]), x = fabs((double)b[i]);
        *dmax = d > *dmax ? d : *dmax;
        *bmax = x > *bmax ? x : *bmax;
    }
}

/*
 * sched_eval_multi on vulkan0 (lavapipe in CI; skipped without a Vulkan
 * device): 3 sequences, prefill chunks, interleaved decode rows and a
 * rewind; every wanted row's argmax equals that sequence run alone through
 * sched_eval on vulkan0 (the same rows per call), and its logits agree within
 * 4e-3 x max|logit|: the batched matmul of several rows may take another
 * kernel than one row's, and the CPU head quantizes its input to 8 bits, so
 * a 1e-6 difference in x can move a logit by a quantization step (7.6e-4
 * measured). The hidden rows (copied out of vulkan0 before the head) agree
 * within 5e-4 x max|h| (6.9e-5 measured on lavapipe).
 */
TEST(multi_on_vulkan_equals_alone)
{
    struct hearth_device *gpu = NULL;
    if (reg_device_open("vulkan0", &gpu) != HEARTH_OK) {
        err_clear();
        TEST_SKIP("no Vulkan device");
    }
    char path[512];
    snprintf(path, sizeof path, "%s/sched-multi-tiny.gguf", test_tmp_dir());
    struct synth_opts so;
    memset(&so, 0, sizeof so);
    CHECK_OK(model_preset_find("smollm2-135m", &so.preset));
    CHECK_OK(quant_mix_from_name("Q4_1", &so.mix));
    so.seed = 5;
    so.n_layer = 2;
    so.std = 0.05f;
    REQUIRE(so.preset && so.mix);
    CHECK_OK(synth_write(&so, path, NULL));
    struct model *m = NULL;
    CHECK_OK(model_load(path, &m));
    REQUIRE(m);
    struct hearth_device *devs[2] = {fixture_cpu_device("cpu", 2), gpu};
    struct sched *s = devs[0] ? make_vk(m, devs, N_SEQ) : NULL;
    /* solo[q]: sequence q alone, fed each call's rows of q as one sched_eval */
    struct sched *solo[N_SEQ] = {0};
    for (int q = 0; q < N_SEQ && devs[0]; q++)
        solo[q] = make_vk(m, devs, 1);
    const size_t V = m->hp.n_vocab;
    float *ls = malloc((size_t)MAX_CALL * V * sizeof(float));
    float *one = malloc((size_t)MAX_CALL * V * sizeof(float));
    const size_t E = m->hp.n_embd;
    float *hb = malloc((size_t)MAX_CALL * E * sizeof(float));
    float *h1 = malloc((size_t)MAX_CALL * E * sizeof(float));
    REQUIRE(s && solo[0] && solo[1] && solo[2] && ls && one && hb && h1);
    test_rng_seed(12);
    struct call calls[3];
    memset(calls, 0, sizeof calls);
    add(&calls[0], 0, 0, 9, false);
    add(&calls[0], 1, 0, 5, true);
    add(&calls[0], 2, 0, 1, false);
    add(&calls[1], 0, 9, 1, false);
    add(&calls[1], 1, 5, 2, true);
    add(&calls[1], 2, 1, 3, true);
    add(&calls[2], 2, 4, 1, false);
    add(&calls[2], 1, 3, 2, true); /* rewinds sequence 1 */
    add(&calls[2], 0, 10, 1, false);
    const uint32_t past[3][N_SEQ] = {{9, 5, 1}, {10, 7, 4}, {11, 5, 5}};
    double worst = 0.0, worst_h = 0.0;
    for (int k = 0; k < 3; k++) {
        const struct call *c = &calls[k];
        const struct seq_batch_out ob = {ls, c->want, hb, c->want};
        CHECK_OK(sched_eval_multi_out(s, c->tok, c->seq, c->pos, c->n, &ob));
        for (int q = 0; q < N_SEQ; q++) {
            CHECK_INT_EQ(sched_seq_n_past(s, q), past[k][q]);
            int32_t toks[MAX_CALL], zero[MAX_CALL] = {0}, pos[MAX_CALL];
            bool all[MAX_CALL];
            int n = 0, p0 = -1;
            for (int t = 0; t < c->n; t++)
                if (c->seq[t] == q) {
                    p0 = p0 < 0 ? c->pos[t] : p0;
                    pos[n] = c->pos[t];
                    all[n] = true;
                    toks[n++] = c->tok[t];
                }
            if (n == 0)
                continue;
            const struct seq_batch_out oo = {one, all, h1, all};
            CHECK_OK(sched_eval_multi_out(solo[q], toks, zero, pos, n, &oo));
            int row = 0;
            for (int t = 0; t < c->n; t++) {
                if (!c->want[t])
                    continue;
                if (c->seq[t] == q) {
                    /* the hidden row, fetched from vulkan0 before the CPU head */
                    double hd, hm, dmax, amax;
                    max_diff(hb + (size_t)row * E, h1 + (size_t)(c->pos[t] - p0) * E, E, &hd,
                             &hm);
                    worst_h = hd / hm > worst_h ? hd / hm : worst_h;
                    CHECK_MSG(hm > 0 && hd <= 5e-4 * hm,
                              "call %d token %d: hidden max diff %g, max|h| %g", k, t, hd, hm);
                    const float *a = ls + (size_t)row * V;
                    const float *b = one + (size_t)(c->pos[t] - p0) * V;
                    max_diff(a, b, V, &dmax, &amax);
                    worst = dmax / amax > worst ? dmax / amax : worst;
                    CHECK_MSG(dmax <= 4e-3 * amax,
                              "call %d token %d (sequence %d): max diff %g, max|logit| %g", k, t,
                              q, dmax, amax);
                    CHECK_INT_EQ(golden_argmax(a, (int)V), golden_argmax(b, (int)V));
                }
                row++;
            }
        }
    }
    printf("  vulkan0 batched vs alone: worst max|diff| = %.2e x max|logit|, hidden %.2e x "
           "max|h|\n",
           worst, worst_h);
    free(ls);
    free(one);
    free(hb);
    free(h1);
    for (int q = 0; q < N_SEQ; q++)
        sched_destroy(solo[q]);
    sched_destroy(s);
    backend_device_destroy(devs[0]);
    backend_device_destroy(gpu);
    model_free(m);
    remove(path);
}

TEST_MAIN(TEST_CASE(multi_matches_forward_and_single), TEST_CASE(multi_errors_name_the_token),
          TEST_CASE(plan_counts_n_seq_kv), TEST_CASE(multi_on_vulkan_equals_alone))
