/*
 * test-sched-stream: the scheduler streams host weights to a GPU for batched
 * prefill (issue #6, placement.block_stream).
 *
 *  - CPU pair: every block on cpu (device 0); the FFN of layers 2-9 (both
 *    blocks) and the down block of layer 12 (whose gate/up is resident on
 *    cpu-b) streamed to cpu-b, which uploads every weight like a GPU. A
 *    40-token prefill in one batch of 64 gives all logits bit-identical to
 *    the same placement unstreamed (same kernels: only where the bytes sit
 *    differs); sched_n_streamed_bytes is exactly the streamed blocks'
 *    matrices and norm gains once; decode steps afterwards stream nothing and
 *    stay bit-identical. Batches of 16 with threshold 16: the two full
 *    batches stream, the 8-token tail does not (twice the bytes), same bits.
 *  - Gemma 3 (post-FFN norm gains streamed too, GeGLU): the same bit-identity
 *    and byte count.
 *  - bad placements: a streamed attention block, a target out of range, a
 *    block streamed to its own device: INVALID_ARG, nothing leaked.
 *  - vulkan0 (lavapipe in CI; skipped when it does not open): layer 0 on
 *    vulkan0, the FFN of layers 2-4 streamed there for the golden prompt:
 *    the prompt's logits bit-identical to the same FFN blocks resident on
 *    vulkan0 (same kernels, only where the bytes sit differs), the greedy
 *    ids of the prompt and two decode steps (which compute those blocks on
 *    the CPU) equal the all-CPU run's, and the streamed
 *    bytes are those blocks' once (decode streams nothing).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-registry.h"
#include "backend.h"
#include "fixtures.h"
#include "golden.h"
#include "model.h"
#include "placement.h"
#include "scheduler.h"
#include "test.h"

enum { N_PROMPT = 40, N_DECODE = 3, N_CTX = 64 };

static uint64_t wbytes(const struct model_weight *w)
{
    return w->data ? (uint64_t)w->row_bytes * (uint64_t)w->n_out : 0;
}

/* Host weight bytes one streamed batch copies for placement pl. */
static uint64_t streamed_bytes(const struct model *m, const struct placement *pl)
{
    uint64_t b = 0;
    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        const struct model_layer *ly = &m->layers[il];
        if (placement_get_stream(pl, il, PLACEMENT_FFN) >= 0)
            b += wbytes(&ly->ffn_norm) + wbytes(&ly->ffn_gate) + wbytes(&ly->ffn_up);
        if (placement_get_stream(pl, il, PLACEMENT_FFN_DOWN) >= 0)
            b += wbytes(&ly->ffn_down) + (m->hp.post_norms ? wbytes(&ly->post_ffn_norm) : 0);
    }
    return b;
}

static struct sched *make(const struct model *m, struct hearth_device **devs,
                          const struct placement *pl, int n_batch)
{
    struct sched_params p = sched_params_default();
    p.n_ctx = N_CTX;
    p.n_batch = n_batch;
    p.n_devices = 2;
    p.devices = devs;
    p.placement = pl;
    p.map_host_weights = false;
    struct sched *s = NULL;
    CHECK_OK(sched_create(m, &p, &s));
    return s;
}

/* Prefill of n_prompt tokens (all logits) then n_decode greedy steps; out [n+d][V]. */
static bool run(struct sched *s, const struct model *m, int n_prompt, int n_decode, float *out,
                uint64_t *bytes_after_prefill)
{
    const size_t V = m->hp.n_vocab;
    int32_t toks[N_PROMPT];
    test_rng_seed(11);
    toks[0] = m->hp.arch == MODEL_ARCH_GEMMA3 ? 2 : 1;
    for (int i = 1; i < n_prompt; i++)
        toks[i] = (int32_t)(test_rng_u64() % 20000u) + 100;
    hearth_status st = sched_eval(s, toks, n_prompt, 0, out, true);
    CHECK_OK(st);
    *bytes_after_prefill = sched_n_streamed_bytes(s);
    for (int i = 0; st == HEARTH_OK && i < n_decode; i++) {
        const float *prev = out + (size_t)(n_prompt + i - 1) * V;
        int32_t tok = golden_argmax(prev, (int)V);
        st = sched_eval(s, &tok, 1, n_prompt + i, out + (size_t)(n_prompt + i) * V, false);
        CHECK_OK(st);
    }
    return st == HEARTH_OK;
}

/*
 * The streamed placement against the same placement unstreamed, batches of
 * n_batch, threshold min_batch; expect_batches: prefill batches that stream.
 */
static void compare_streamed(const struct model *m, struct hearth_device **devs,
                             const struct placement *streamed, int n_batch, int n_prompt,
                             int expect_batches, const char *label)
{
    struct placement *plain = NULL;
    CHECK_OK(placement_clone(streamed, &plain));
    REQUIRE(plain);
    for (uint32_t il = 0; il < plain->n_layer; il++)
        for (int b = 0; b < PLACEMENT_N_BLOCKS; b++)
            placement_set_stream(plain, il, (enum placement_block)b, -1);
    const size_t V = m->hp.n_vocab, rows = (size_t)n_prompt + N_DECODE;
    float *ref = calloc(rows * V, sizeof *ref), *got = calloc(rows * V, sizeof *got);
    REQUIRE(ref && got);
    struct sched *a = make(m, devs, plain, n_batch), *b = make(m, devs, streamed, n_batch);
    uint64_t ra = 0, rb = 0;
    if (a && b && run(a, m, n_prompt, N_DECODE, ref, &ra) &&
        run(b, m, n_prompt, N_DECODE, got, &rb)) {
        CHECK_INT_EQ(ra, 0);
        CHECK_INT_EQ(sched_n_streamed_bytes(a), 0);
        const uint64_t want = streamed_bytes(m, streamed) * (uint64_t)expect_batches;
        CHECK_MSG(rb == want, "%s: streamed %llu bytes, expected %llu", label,
                  (unsigned long long)rb, (unsigned long long)want);
        CHECK_MSG(sched_n_streamed_bytes(b) == rb, "%s: decode streamed %llu bytes", label,
                  (unsigned long long)(sched_n_streamed_bytes(b) - rb));
        size_t first_diff = rows * V;
        for (size_t i = 0; i < rows * V && first_diff == rows * V; i++)
            if (memcmp(&ref[i], &got[i], sizeof(float)) != 0)
                first_diff = i;
        CHECK_MSG(first_diff == rows * V, "%s: logits differ first at row %zu col %zu (%g vs %g)",
                  label, first_diff / V, first_diff % V,
                  first_diff < rows * V ? (double)ref[first_diff] : 0.0,
                  first_diff < rows * V ? (double)got[first_diff] : 0.0);
        printf("  %s: %llu bytes streamed in %d batch(es), logits bit-identical\n", label,
               (unsigned long long)rb, expect_batches);
    }
    sched_destroy(a);
    sched_destroy(b);
    placement_free(plain);
    free(ref);
    free(got);
}

TEST(cpu_pair_streams_bit_identical)
{
    struct model *m = fixture_model(TEST_SMOLLM2);
    REQUIRE(m);
    struct hearth_device *devs[2] = {fixture_cpu_device("cpu", 2), fixture_cpu_device("cpu-b", 2)};
    REQUIRE(devs[0] && devs[1]);
    struct placement *pl = NULL;
    CHECK_OK(placement_create(m->hp.n_layer, 0, &pl));
    REQUIRE(pl && m->hp.n_layer > 12);
    for (uint32_t il = 2; il <= 9; il++) {
        placement_set_stream(pl, il, PLACEMENT_FFN, 1);
        placement_set_stream(pl, il, PLACEMENT_FFN_DOWN, 1);
    }
    /* decode splits layer 12 (gate/up resident on cpu-b); prefill runs it whole there */
    placement_set(pl, 12, PLACEMENT_FFN, 1);
    placement_set_stream(pl, 12, PLACEMENT_FFN_DOWN, 1);
    CHECK_INT_EQ(placement_n_streamed_blocks(pl), 17);
    pl->stream_min_batch = 16;
    compare_streamed(m, devs, pl, 64, N_PROMPT, 1, "smollm2 batch 64");
    /* 16 + 16 stream, the 8-token tail runs on the host */
    compare_streamed(m, devs, pl, 16, N_PROMPT, 2, "smollm2 batches of 16");
    placement_free(pl);
    backend_device_destroy(devs[1]);
    backend_device_destroy(devs[0]);
    model_free(m);
}

TEST(gemma3_streams_bit_identical)
{
    struct model *m = fixture_model(TEST_GEMMA3);
    REQUIRE(m);
    struct hearth_device *devs[2] = {fixture_cpu_device("cpu", 2), fixture_cpu_device("cpu-b", 2)};
    REQUIRE(devs[0] && devs[1]);
    struct placement *pl = NULL;
    CHECK_OK(placement_create(m->hp.n_layer, 0, &pl));
    REQUIRE(pl);
    for (uint32_t il = 1; il < m->hp.n_layer; il += 3) {
        placement_set_stream(pl, il, PLACEMENT_FFN, 1);
        placement_set_stream(pl, il, PLACEMENT_FFN_DOWN, 1);
    }
    pl->stream_min_batch = 8;
    compare_streamed(m, devs, pl, 32, 20, 1, "gemma3 batch 32");
    placement_free(pl);
    backend_device_destroy(devs[1]);
    backend_device_destroy(devs[0]);
    model_free(m);
}

TEST(bad_stream_placements)
{
    struct model *m = fixture_model(TEST_SMOLLM2);
    REQUIRE(m);
    struct hearth_device *devs[2] = {fixture_cpu_device("cpu", 2), fixture_cpu_device("cpu-b", 2)};
    REQUIRE(devs[0] && devs[1]);
    struct placement *pl = NULL;
    CHECK_OK(placement_create(m->hp.n_layer, 0, &pl));
    REQUIRE(pl);
    const struct {
        uint32_t il;
        enum placement_block b;
        int dev;
    } bad[] = {{3, PLACEMENT_ATTN, 1}, {3, PLACEMENT_FFN, 2}, {3, PLACEMENT_FFN, 0}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        placement_set_stream(pl, bad[k].il, bad[k].b, bad[k].dev);
        struct sched_params p = sched_params_default();
        p.n_ctx = N_CTX;
        p.n_devices = 2;
        p.devices = devs;
        p.placement = pl;
        struct sched *s = NULL;
        CHECK_INT_EQ(sched_create(m, &p, &s), HEARTH_ERR_INVALID_ARG);
        CHECK(s == NULL);
        CHECK_MSG(strstr(hearth_last_error(), "streamed to device"), "%s", hearth_last_error());
        placement_set_stream(pl, bad[k].il, bad[k].b, -1);
    }
    placement_free(pl);
    backend_device_destroy(devs[1]);
    backend_device_destroy(devs[0]);
    model_free(m);
}

/* A sched of m over devs with placement pl; NULL (and a failed check) on error. */
static struct sched *make_on(const struct model *m, struct hearth_device **devs,
                             const struct placement *pl)
{
    struct sched_params p = sched_params_default();
    p.n_ctx = N_CTX;
    p.n_devices = 2;
    p.devices = devs;
    p.placement = pl;
    struct sched *s = NULL;
    CHECK_OK(sched_create(m, &p, &s));
    return s;
}

TEST(vulkan_streamed_prefill)
{
    struct golden g;
    if (!golden_load("fwd-smollm2.txt", &g))
        return;
    REQUIRE(g.n_prompt >= 8 && g.n_prompt + 2 <= N_CTX);
    struct hearth_device *gpu = NULL;
    if (reg_device_open("vulkan0", &gpu) != HEARTH_OK)
        TEST_SKIP("no vulkan0 here: %s", hearth_last_error());
    struct model *m = fixture_model(TEST_SMOLLM2);
    struct hearth_device *devs[2] = {fixture_cpu_device("cpu", 2), gpu};
    /*
     * str: layer 0 on vulkan0, the FFN of layers 2-4 on the CPU streamed to
     * vulkan0 for the prompt; res: the same FFN blocks resident on vulkan0;
     * cpu: everything on the CPU. Few Vulkan layers: lavapipe computes them
     * on this CPU, slowly.
     */
    struct placement *str = NULL, *res = NULL, *cpu = NULL;
    if (m && devs[0]) {
        CHECK_OK(placement_create(m->hp.n_layer, 0, &str));
        CHECK_OK(placement_create(m->hp.n_layer, 0, &res));
        CHECK_OK(placement_create(m->hp.n_layer, 0, &cpu));
    }
    if (str && res && cpu) {
        CHECK_OK(placement_from_ngl(str, 1, 1, 0));
        CHECK_OK(placement_from_ngl(res, 1, 1, 0));
        for (uint32_t il = 2; il < 5 && il < str->n_layer; il++) {
            placement_set_stream(str, il, PLACEMENT_FFN, 1);
            placement_set_stream(str, il, PLACEMENT_FFN_DOWN, 1);
            placement_set(res, il, PLACEMENT_FFN, 1);
            placement_set(res, il, PLACEMENT_FFN_DOWN, 1);
        }
        str->stream_min_batch = 8; /* the golden prompt streams, its greedy steps do not */
        struct sched *ss = make_on(m, devs, str), *sr = make_on(m, devs, res),
                     *sc = make_on(m, devs, cpu);
        const size_t V = m->hp.n_vocab;
        float *ls = malloc(V * sizeof *ls), *lr = malloc(V * sizeof *lr),
              *lc = malloc(V * sizeof *lc);
        REQUIRE(ls && lr && lc);
        int32_t ts = 0, tc = 0;
        for (int i = 0; ss && sr && sc && i < 3; i++) {
            int n = i ? 1 : g.n_prompt, pos = i ? g.n_prompt + i - 1 : 0;
            CHECK_OK(sched_eval(ss, i ? &ts : g.prompt, n, pos, ls, false));
            CHECK_OK(sched_eval(sr, i ? &ts : g.prompt, n, pos, lr, false));
            CHECK_OK(sched_eval(sc, i ? &tc : g.prompt, n, pos, lc, false));
            /*
             * The prompt's streamed FFN ran on vulkan0 like the resident one;
             * decode steps then run it on the CPU (streamed) or vulkan0.
             */
            if (i == 0)
                CHECK_MSG(!memcmp(ls, lr, V * sizeof *ls),
                          "prompt: streamed logits differ from the resident placement's");
            ts = golden_argmax(ls, (int)V);
            tc = golden_argmax(lc, (int)V);
            CHECK_MSG(ts == tc, "step %d: cpu %d, streamed vulkan %d", i, tc, ts);
        }
        if (ss)
            CHECK_INT_EQ(sched_n_streamed_bytes(ss), streamed_bytes(m, str));
        free(ls);
        free(lr);
        free(lc);
        sched_destroy(ss);
        sched_destroy(sr);
        sched_destroy(sc);
    }
    placement_free(str);
    placement_free(res);
    placement_free(cpu);
    backend_device_destroy(devs[0]);
    backend_device_destroy(gpu);
    model_free(m);
}

TEST_MAIN(TEST_CASE(cpu_pair_streams_bit_identical), TEST_CASE(gemma3_streams_bit_identical),
          TEST_CASE(bad_stream_placements), TEST_CASE(vulkan_streamed_prefill))
