/*
 * test-kv-window-swa: how big the exact window is, per layer
 * (plan_kv_layer_window, kv_cache_params.layer_window), and what a
 * sliding-window layer's window buys.
 *
 *  - the rule: 0 without a window or for an f16/f16 cache; a global layer
 *    min(W, n_ctx); a sliding-window layer min(swa, n_ctx) whether W is
 *    below or above swa; plan_kv_window_bytes charges W_l rows of f16 K and
 *    V and an int32 tag, rounded up;
 *  - kv_cache_bytes counts each layer's own ring (uniform and per-layer),
 *    a window past n_ctx is capped, the tags start at -1; forward_kv_bytes
 *    on SmolLM2 (all global layers) and on Gemma 3 (local layers get their
 *    512-position window) equals the formula; a negative window is
 *    HEARTH_ERR_INVALID_ARG;
 *  - Gemma 3, rot4/rot4, W 8: after a 40-token prefill, the codes of every
 *    local layer's rows are overwritten with garbage and the next decode
 *    step still gives the same logits bit for bit (a local layer reads only
 *    its exact rows); the same garbage in one global layer's codes changes
 *    the logits (it reads codes for positions older than 8), so the
 *    comparison can fail.
 * The scheduler's per-layer rings are checked against forward.c in
 * test-kv-window (sched_equals_forward_gemma3) and against the plan's bytes
 * in test-plan-alloc (window_allocates_the_plan).
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/forward.h"
#include "err.h"
#include "kv-cache.h"
#include "kv-quant.h"
#include "model.h"
#include "plan.h"
#include "test.h"

static struct plan_opts window_opts(uint32_t n_ctx, int kt, int vt, uint32_t w)
{
    struct plan_opts o;
    plan_opts_default(&o);
    o.n_ctx = n_ctx;
    o.kv_type_k = kt;
    o.kv_type_v = vt;
    o.kv_window = w;
    return o;
}

TEST(layer_window_rule)
{
    struct plan_opts o = window_opts(2048, KVQ_ROT4, KVQ_ROT4, 128);
    CHECK_INT_EQ(plan_kv_layer_window(&o, 0), 128);
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), 512); /* W below the local window */
    o.kv_window = 1024;
    CHECK_INT_EQ(plan_kv_layer_window(&o, 0), 1024);
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), 512); /* nothing it cannot read */
    o.kv_window = 5000;
    CHECK_INT_EQ(plan_kv_layer_window(&o, 0), 2048); /* capped at the context */
    o.n_ctx = 300;
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), 300);
    o.kv_window = 0; /* no window asked: none anywhere */
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), 0);
    CHECK_INT_EQ(plan_kv_window_bytes(&o, 512, 1, 256, 256), 0);
    o = window_opts(2048, KVQ_F16, KVQ_F16, 128); /* f16/f16 is exact everywhere */
    CHECK_INT_EQ(plan_kv_layer_window(&o, 0), 0);
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), 0);
    o = window_opts(2048, KVQ_F16, KVQ_ROT4, 128); /* one compressed side is enough */
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), 512);
    /* K and V rows of W_l positions in f16 plus a tag each, rounded up to PLAN_ALIGN */
    const uint64_t raw = 512ull * 1 * (256 + 256) * 2 + 512 * 4;
    const uint64_t wb = plan_kv_window_bytes(&o, 512, 1, 256, 256);
    CHECK(wb >= raw && wb < raw + PLAN_ALIGN);
    CHECK_INT_EQ(wb % PLAN_ALIGN, 0);
}

/* kv_cache_bytes counts the rings, uniform and per layer; windows are capped at n_ctx. */
TEST(cache_bytes)
{
    struct kv_cache_params p = {.n_layer = 3, .n_ctx = 100, .n_head_kv = 2, .head_dim = 64,
                                .k_type = KVQ_ROT4, .v_type = KVQ_Q8_0, .seed = 1,
                                .exact_window = 16};
    const size_t rows =
        3 * 100 * (2 * kvq_head_bytes(KVQ_ROT4, 64) + 2 * kvq_head_bytes(KVQ_Q8_0, 64));
    struct kv_cache *c = NULL;
    CHECK_OK(kv_cache_create(&p, &c));
    if (c) {
        CHECK_INT_EQ(kv_cache_bytes(c), rows + 3 * 16 * 2 * 128 * 2);
        CHECK_INT_EQ(*kv_cache_xpos(c, 2, 37), -1);
        kv_cache_destroy(c);
    }
    p.exact_window = 1000; /* capped at n_ctx */
    CHECK_OK(kv_cache_create(&p, &c));
    if (c) {
        CHECK_INT_EQ(c->xw, 100);
        kv_cache_destroy(c);
    }
    /* per layer: 4, 100 (capped from 500) and 16 slots, back to back */
    const uint32_t lw[3] = {4, 500, 16};
    p.exact_window = 16;
    p.layer_window = lw;
    CHECK_OK(kv_cache_create(&p, &c));
    if (c) {
        CHECK_INT_EQ(c->xw, 100);
        CHECK_INT_EQ(c->xw_layer[1], 100);
        CHECK_INT_EQ(kv_cache_bytes(c), rows + (4 + 100 + 16) * 2 * 128 * 2);
        /* slots of different layers never overlap: layer 1's last is right before layer 2's */
        CHECK(kv_cache_xk(c, 1, 99) + 128 == kv_cache_xk(c, 2, 0));
        CHECK(kv_cache_xk(c, 0, 7) == kv_cache_xk(c, 0, 3)); /* slot p % 4 */
        for (uint32_t pos = 0; pos < 100; pos++)
            CHECK_INT_EQ(*kv_cache_xpos(c, 1, pos), -1);
        kv_cache_destroy(c);
    }
}

static struct forward_ctx *ctx_new(const struct model *m, int kt, int vt, int W, uint32_t n_ctx)
{
    struct forward_params p = forward_params_default();
    p.n_ctx = n_ctx;
    p.n_threads = 2;
    p.n_batch = 64;
    p.kv_type_k = kt;
    p.kv_type_v = vt;
    p.kv_window = W;
    struct forward_ctx *c = NULL;
    CHECK_OK(forward_create(m, &p, &c));
    return c;
}

/* forward_kv_bytes: codes of n_ctx rows per layer plus each layer's ring by the rule. */
static void check_forward_bytes(const struct model *m, uint32_t n_ctx, int W)
{
    const struct model_hparams *hp = &m->hp;
    struct forward_ctx *f = ctx_new(m, KVQ_ROT4, KVQ_ROT4, W, n_ctx);
    if (!f)
        return;
    const struct plan_opts o = window_opts(n_ctx, KVQ_ROT4, KVQ_ROT4, (uint32_t)W);
    const size_t row = 2 * hp->n_head_kv * kvq_head_bytes(KVQ_ROT4, (int)hp->head_dim);
    size_t want = 0, n_local = 0;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const bool swa = m->layers[il].is_swa;
        n_local += swa;
        const uint32_t wl = plan_kv_layer_window(&o, swa ? hp->sliding_window : 0);
        CHECK_INT_EQ(wl, swa ? (n_ctx < hp->sliding_window ? n_ctx : hp->sliding_window)
                             : (uint32_t)W);
        want += n_ctx * row + (size_t)wl * 2 * hp->n_head_kv * hp->head_dim * 2;
    }
    CHECK_INT_EQ(forward_kv_bytes(f), want);
    CHECK_MSG(n_local == 0 || hp->sliding_window > 0, "local layers without a window");
    forward_destroy(f);
}

TEST(forward_bytes)
{
    const char *path = test_model_path(TEST_SMOLLM2);
    REQUIRE(path);
    struct model *m = NULL;
    CHECK_OK(model_load(path, &m));
    REQUIRE(m);
    check_forward_bytes(m, 32, 8);
    struct forward_params fp = forward_params_default();
    fp.kv_type_k = fp.kv_type_v = KVQ_ROT4;
    fp.kv_window = -1;
    struct forward_ctx *f = NULL;
    CHECK_INT_EQ(forward_create(m, &fp, &f), HEARTH_ERR_INVALID_ARG);
    model_free(m);

    path = test_model_path(TEST_GEMMA3);
    REQUIRE(path);
    CHECK_OK(model_load(path, &m));
    REQUIRE(m);
    uint32_t n_local = 0;
    for (uint32_t il = 0; il < m->hp.n_layer; il++)
        n_local += m->layers[il].is_swa;
    CHECK_INT_EQ(m->hp.sliding_window, 512);
    CHECK_INT_EQ(n_local, 15); /* 18 layers, every sixth global */
    check_forward_bytes(m, 600, 8);  /* local rings of 512 */
    check_forward_bytes(m, 300, 8);  /* local rings capped at the context */
    model_free(m);
}

/* Overwrites positions [0, n) of layer il's codes (K and V) with bytes from the test RNG. */
static void scribble(struct kv_cache *c, uint32_t il, uint32_t n)
{
    for (uint32_t p = 0; p < n; p++) {
        uint8_t *k = kv_cache_k(c, il, p), *v = kv_cache_v(c, il, p);
        for (size_t i = 0; i < c->k_row; i++)
            k[i] = (uint8_t)test_rng_u64();
        for (size_t i = 0; i < c->v_row; i++)
            v[i] = (uint8_t)test_rng_u64();
    }
}

/*
 * Logits of token n_pre + 1 after a prefill of n_pre tokens whose codes in the
 * layers `which` selects (1: local, 2: the first global, 0: none) were
 * overwritten.
 */
static bool decode_after(const struct model *m, const int32_t *tk, int n_pre, int which,
                         float *out)
{
    struct forward_ctx *f = ctx_new(m, KVQ_ROT4, KVQ_ROT4, 8, 64);
    if (!f)
        return false;
    hearth_status st = forward_eval(f, tk, n_pre, 0, NULL, false);
    CHECK_OK(st);
    struct kv_cache *c = forward_kv_cache(f, 0);
    CHECK(c != NULL && forward_kv_cache(f, 1) == NULL);
    bool done_global = false;
    for (uint32_t il = 0; c && il < m->hp.n_layer; il++) {
        if (which == 1 && m->layers[il].is_swa)
            scribble(c, il, (uint32_t)n_pre);
        if (which == 2 && !m->layers[il].is_swa && !done_global) {
            scribble(c, il, (uint32_t)n_pre);
            done_global = true;
        }
    }
    if (st == HEARTH_OK)
        st = forward_eval(f, tk + n_pre, 1, n_pre, out, false);
    CHECK_OK(st);
    forward_destroy(f);
    return st == HEARTH_OK;
}

TEST(local_layers_read_only_exact_rows)
{
    const char *path = test_model_path(TEST_GEMMA3);
    REQUIRE(path);
    struct model *m = NULL;
    CHECK_OK(model_load(path, &m));
    REQUIRE(m);
    enum { NPRE = 40 };
    int32_t tk[NPRE + 1];
    test_rng_seed(7);
    for (int i = 0; i < NPRE + 1; i++)
        tk[i] = 2 + (int32_t)(test_rng_u64() % 20000); /* plain vocabulary ids */
    tk[0] = 2; /* <bos> */
    const size_t V = m->hp.n_vocab;
    float *a = malloc(V * sizeof *a), *b = malloc(V * sizeof *b), *g = malloc(V * sizeof *g);
    REQUIRE(a && b && g);
    if (decode_after(m, tk, NPRE, 0, a) && decode_after(m, tk, NPRE, 1, b) &&
        decode_after(m, tk, NPRE, 2, g)) {
        size_t d_local = 0, d_global = 0;
        for (size_t i = 0; i < V; i++) {
            d_local += memcmp(&a[i], &b[i], sizeof *a) != 0;
            d_global += memcmp(&a[i], &g[i], sizeof *a) != 0;
        }
        CHECK_MSG(d_local == 0, "garbage codes in the local layers moved %zu of %zu logits",
                  d_local, V);
        CHECK_MSG(d_global > V / 2, "garbage codes in a global layer moved only %zu of %zu",
                  d_global, V);
    }
    free(a);
    free(b);
    free(g);
    model_free(m);
}

TEST_MAIN(TEST_CASE(layer_window_rule), TEST_CASE(cache_bytes), TEST_CASE(forward_bytes),
          TEST_CASE(local_layers_read_only_exact_rows))
