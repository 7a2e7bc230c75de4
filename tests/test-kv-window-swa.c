/*
 * test-kv-window-swa: how big the exact window is, per layer
 * (plan_kv_layer_window, kv_cache_params.layer_window), and the
 * sliding-window layers that keep only their ring (plan_kv_layer_codes,
 * backend.h ATTENTION step 6, kv-cache.h kv_ring_track).
 *
 *  - the rule: 0 without a window or for an f16/f16 cache; a global layer
 *    min(W, n_ctx) and codes; a sliding-window layer min(swa + slack,
 *    n_ctx) whether W is below or above swa, and no codes; for an f16/f16
 *    cache a local layer's ring is swa + slack where that is below n_ctx
 *    (no rows), else none (full rows), with or without --kv-window;
 *    plan_kv_window_bytes charges W_l rows of f16 K and V and an int32 tag,
 *    rounded up; the ring rule's arithmetic (can_eval, advance) at its edges;
 *  - kv_cache_bytes counts each layer's own ring and no rows for a ring-only
 *    layer (k[il] NULL), a ring smaller than the window is refused, a
 *    window past n_ctx is capped, tags start at -1; forward_kv_bytes on
 *    SmolLM2 (all global) and Gemma 3 (15 ring-only local layers) equals
 *    the formula; a negative window is INVALID_ARG;
 *  - Gemma 3, rot4/rot4, W 8: garbage written over one global layer's codes
 *    before a decode step changes the logits (the global layers still read
 *    codes older than 8 positions), while the local layers have none;
 *  - a tiny synth gemma3 (window 16, ring 80): a rewind of 30 positions
 *    after 130 gives the bits of a fresh run of the same tokens, for rot4
 *    with the window and for an f16 cache (whose local layers are then
 *    ring-only too); f16 ring-only layers give full f16 rows' bits (a
 *    context of 80, where the ring would not be shorter); a rewind to
 *    65 is allowed and to 64 is not (INVALID_ARG saying to start again from
 *    0, and forward_seq_can_resume false), and starting again from 0 works;
 *    two sequences, one of which rewinds too far, name that sequence; the
 *    scheduler on the CPU backend gives forward.c's bits over the same
 *    script and refuses the same rewind;
 *  - the same script with every layer on vulkan0 (lavapipe in CI; skipped
 *    without Vulkan), rot4 with the window and f16: the local layers run
 *    without cache buffers (ATTENTION step 6), the logits after the rewind equal a fresh vulkan0 run of the
 *    same tokens bit for bit and stay within 0.1 of the largest logit from
 *    forward.c's (other kernels: 0.03 measured on this random model), and
 *    the rewind past the slack is refused there too.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-registry.h"
#include "backend.h"
#include "cpu/forward.h"
#include "err.h"
#include "kv-cache.h"
#include "kv-quant.h"
#include "model.h"
#include "placement.h"
#include "plan.h"
#include "scheduler.h"
#include "fixtures.h"
#include "test.h"

TEST(layer_window_rule)
{
    struct plan_opts o = fixture_kv_opts(2048, KVQ_ROT4, KVQ_ROT4, 128, false);
    const uint32_t ring = 512 + PLAN_SWA_SLACK;
    CHECK_INT_EQ(plan_kv_layer_window(&o, 0), 128);
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), ring); /* W below the local window */
    CHECK(plan_kv_layer_codes(&o, 0));
    CHECK(!plan_kv_layer_codes(&o, 512));
    o.kv_window = 1024;
    CHECK_INT_EQ(plan_kv_layer_window(&o, 0), 1024);
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), ring); /* nothing it cannot read */
    o.kv_window = 5000;
    CHECK_INT_EQ(plan_kv_layer_window(&o, 0), 2048); /* capped at the context */
    o.n_ctx = 300;
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), 300);
    CHECK(!plan_kv_layer_codes(&o, 512));
    o.kv_window = 0; /* no window asked: none anywhere, codes everywhere */
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), 0);
    CHECK(plan_kv_layer_codes(&o, 512));
    CHECK_INT_EQ(plan_kv_window_bytes(&o, 512, 1, 256, 256), 0);
    /* f16/f16: no window on global layers; a local layer's ring is its cache where shorter */
    o = fixture_kv_opts(2048, KVQ_F16, KVQ_F16, 128, false);
    CHECK_INT_EQ(plan_kv_layer_window(&o, 0), 0);
    CHECK(plan_kv_layer_codes(&o, 0));
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), ring);
    CHECK(!plan_kv_layer_codes(&o, 512));
    o.kv_window = 0; /* the same without --kv-window */
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), ring);
    o.n_ctx = ring; /* no shorter than the context: full rows */
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), 0);
    CHECK(plan_kv_layer_codes(&o, 512));
    /* one compressed side is enough */
    o = fixture_kv_opts(2048, KVQ_F16, KVQ_ROT4, 128, false);
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), ring);
    /* K and V rows of W_l positions in f16 plus a tag each, rounded up to PLAN_ALIGN */
    const uint64_t raw = (uint64_t)ring * 1 * (256 + 256) * 2 + ring * 4;
    const uint64_t wb = plan_kv_window_bytes(&o, 512, 1, 256, 256);
    CHECK(wb >= raw && wb < raw + PLAN_ALIGN);
    CHECK_INT_EQ(wb % PLAN_ALIGN, 0);

    /* the ring rule: window 16, 80 slots */
    struct kv_ring_track t = {.swa = 16, .slots = 80, .lo = 0};
    CHECK(kv_ring_can_eval(&t, 0) && kv_ring_can_eval(&t, 7));
    kv_ring_advance(&t, 0, 130); /* holds [50, 130) */
    CHECK_INT_EQ(t.lo, 50);
    CHECK(kv_ring_can_eval(&t, 130) && kv_ring_can_eval(&t, 65));
    CHECK(!kv_ring_can_eval(&t, 64) && !kv_ring_can_eval(&t, 20));
    CHECK(kv_ring_can_eval(&t, 0));
    kv_ring_advance(&t, 100, 5); /* a short rewind keeps lo */
    CHECK_INT_EQ(t.lo, 50);
    kv_ring_advance(&t, 105, 100);
    CHECK_INT_EQ(t.lo, 125);
    kv_ring_advance(&t, 0, 3); /* starting over */
    CHECK_INT_EQ(t.lo, 0);
    struct kv_ring_track none = {0};
    kv_ring_advance(&none, 0, 1000);
    CHECK(kv_ring_can_eval(&none, 999) && none.lo == 0);
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
    /* layer 1 without codes: its ring (capped at 100) must hold its 50-position window */
    const bool codes[3] = {true, false, true};
    const uint32_t lw_small[3] = {4, 40, 16};
    p.layer_window = lw_small;
    p.layer_codes = codes;
    p.ring_swa = 50;
    CHECK_INT_EQ(kv_cache_create(&p, &c), HEARTH_ERR_INVALID_ARG);
    CHECK(c == NULL);
    const uint32_t lw_ring[3] = {4, 500, 16};
    p.layer_window = lw_ring;
    CHECK_OK(kv_cache_create(&p, &c));
    if (c) {
        CHECK(c->k[1] == NULL && c->v[1] == NULL && c->k[0] && c->v[2]);
        CHECK_INT_EQ(kv_cache_bytes(c), rows / 3 * 2 + (4 + 100 + 16) * 2 * 128 * 2);
        kv_cache_destroy(c);
    }
    p.layer_codes = NULL;
    p.ring_swa = 0;
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

/*
 * forward_kv_bytes: rows of n_ctx positions per layer with codes plus each
 * layer's ring by the rule (type t for K and V; W 0 for f16).
 */
static void check_forward_bytes(const struct model *m, uint32_t n_ctx, int W, enum kvq_type t)
{
    const struct model_hparams *hp = &m->hp;
    struct forward_ctx *f = ctx_new(m, t, t, W, n_ctx);
    if (!f)
        return;
    const struct plan_opts o = fixture_kv_opts(n_ctx, t, t, (uint32_t)W, false);
    const size_t row = 2 * hp->n_head_kv * kvq_head_bytes(t, (int)hp->head_dim);
    const uint32_t ring = hp->sliding_window + PLAN_SWA_SLACK;
    size_t want = 0, n_local = 0;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const bool swa = m->layers[il].is_swa;
        n_local += swa;
        const uint32_t wl = plan_kv_layer_window(&o, swa ? hp->sliding_window : 0);
        if (t == KVQ_F16) /* a ring only where it is shorter than the context */
            CHECK_INT_EQ(wl, swa && ring < n_ctx ? ring : 0);
        else
            CHECK_INT_EQ(wl, swa ? (n_ctx < ring ? n_ctx : ring) : (uint32_t)W);
        /* a layer with a ring and a window as wide as its attention keeps no rows */
        const bool rows = plan_kv_layer_codes(&o, swa ? hp->sliding_window : 0);
        CHECK_INT_EQ(rows, !(swa && wl > 0));
        want += (rows ? n_ctx * row : 0) + (size_t)wl * 2 * hp->n_head_kv * hp->head_dim * 2;
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
    check_forward_bytes(m, 32, 8, KVQ_ROT4);
    check_forward_bytes(m, 700, 0, KVQ_F16);
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
    check_forward_bytes(m, 700, 8, KVQ_ROT4); /* local rings of 512 + slack */
    check_forward_bytes(m, 300, 8, KVQ_ROT4); /* local rings capped at the context */
    check_forward_bytes(m, 700, 0, KVQ_F16);  /* f16: local rings, no rows */
    check_forward_bytes(m, 500, 0, KVQ_F16);  /* f16 below 576: full rows everywhere */
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
 * Logits of token n_pre + 1 after a prefill of n_pre tokens, with garbage over
 * the codes of the first global layer when `global` is set.
 */
static bool decode_after(const struct model *m, const int32_t *tk, int n_pre, bool global,
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
        /* local layers keep no codes: nothing there could be overwritten */
        CHECK_MSG((c->k[il] == NULL) == m->layers[il].is_swa, "layer %u codes", il);
        if (global && !m->layers[il].is_swa && !done_global) {
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

TEST(global_layers_read_codes)
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
    float *a = malloc(V * sizeof *a), *g = malloc(V * sizeof *g);
    REQUIRE(a && g);
    if (decode_after(m, tk, NPRE, false, a) && decode_after(m, tk, NPRE, true, g)) {
        size_t d = 0;
        for (size_t i = 0; i < V; i++)
            d += memcmp(&a[i], &g[i], sizeof *a) != 0;
        CHECK_MSG(d > V / 2, "garbage codes in a global layer moved only %zu of %zu", d, V);
    }
    free(a);
    free(g);
    model_free(m);
}

/* ---- rewinds on a tiny gemma3 (window 16, ring 16 + PLAN_SWA_SLACK) -------------- */

/*
 * The global layer's window is the whole context, so that layer too reads
 * only exact rows after a rewind (a shorter one falls back to its codes for
 * the ring slots the rewound positions had taken, by design, and would
 * differ from a fresh run); the local layers' rings are 16 + slack.
 */
enum { TN_CTX = 256, TW = TN_CTX, TSWA = 16 };

static struct model *g_tiny;

static void tiny_free(void)
{
    model_free(g_tiny);
}

static struct model *tiny_model(void)
{
    if (g_tiny)
        return g_tiny;
    const char *path = fixture_tiny_gemma3_path();
    if (!path)
        return NULL;
    CHECK_OK(model_load(path, &g_tiny));
    if (g_tiny)
        atexit(tiny_free);
    CHECK(!g_tiny || g_tiny->hp.sliding_window == TSWA);
    return g_tiny;
}

static int32_t g_ttok[2 * TN_CTX];

static void tiny_tokens(void)
{
    test_rng_seed(3);
    for (int i = 0; i < 2 * TN_CTX; i++)
        g_ttok[i] = (int32_t)(test_rng_u64() % 512);
}

/* One eval on forward.c (f) or the sched (s); logits of every token into out. */
static hearth_status tiny_eval(struct forward_ctx *f, struct sched *s, const int32_t *tk, int n,
                               int pos0, float *out)
{
    return f ? forward_eval(f, tk, n, pos0, out, true) : sched_eval(s, tk, n, pos0, out, true);
}

/*
 * 130 positions in batches (70, 40, 20), 10 decode steps, a rewind to 110
 * (30 back, within the slack) with other tokens for 110..119: the logits of
 * those 10 (into out [10][V]) must be those of a fresh run of the same 120.
 */
static bool rewind_script(struct forward_ctx *f, struct sched *s, float *scratch, float *out)
{
    int32_t tk[140];
    memcpy(tk, g_ttok, sizeof tk);
    hearth_status st = tiny_eval(f, s, tk, 70, 0, scratch);
    if (st == HEARTH_OK)
        st = tiny_eval(f, s, tk + 70, 40, 70, scratch);
    if (st == HEARTH_OK)
        st = tiny_eval(f, s, tk + 110, 20, 110, scratch);
    for (int p = 130; p < 140 && st == HEARTH_OK; p++)
        st = tiny_eval(f, s, tk + p, 1, p, scratch);
    CHECK_OK(st);
    if (st != HEARTH_OK)
        return false;
    CHECK(f ? forward_seq_can_resume(f, 0, 110) : sched_seq_can_resume(s, 0, 110));
    st = tiny_eval(f, s, g_ttok + TN_CTX, 10, 110, out);
    CHECK_OK(st);
    return st == HEARTH_OK;
}

/* The KV type of the tiny runs: rot4 with the window, or f16 (its local layers ring-only). */
static enum kvq_type g_tt = KVQ_ROT4;

static struct forward_ctx *tiny_ctx_at(int n_seq, uint32_t n_ctx)
{
    struct forward_params p = forward_params_default();
    p.n_ctx = n_ctx;
    p.n_threads = 2;
    p.n_batch = 64;
    p.kv_type_k = p.kv_type_v = g_tt;
    p.kv_window = g_tt == KVQ_F16 ? 0 : TW;
    struct forward_ctx *c = NULL;
    CHECK_OK(forward_create_multi(g_tiny, &p, n_seq, &c));
    return c;
}

static struct forward_ctx *tiny_ctx(int n_seq)
{
    return tiny_ctx_at(n_seq, TN_CTX);
}

static hearth_status tiny_sched(struct hearth_device **dev, int n_seq, struct sched **out)
{
    struct sched_params sp = sched_params_default();
    sp.n_ctx = TN_CTX;
    sp.n_batch = 64;
    sp.n_devices = 1;
    sp.devices = dev;
    sp.n_seq = n_seq;
    sp.kv_type_k = sp.kv_type_v = g_tt;
    sp.kv_window = g_tt == KVQ_F16 ? 0 : TW;
    *out = NULL;
    return sched_create(g_tiny, &sp, out);
}

static size_t n_diff(const float *a, const float *b, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return d;
}

static void rewind_within_slack_of(enum kvq_type t);

TEST(rewind_within_slack)
{
    REQUIRE(tiny_model());
    rewind_within_slack_of(KVQ_ROT4);
    rewind_within_slack_of(KVQ_F16);
    g_tt = KVQ_ROT4;
}

static void rewind_within_slack_of(enum kvq_type t)
{
    g_tt = t;
    tiny_tokens();
    const size_t V = g_tiny->hp.n_vocab;
    float *scratch = malloc(70 * V * sizeof(float)), *a = malloc(120 * V * sizeof(float)),
          *b = malloc(10 * V * sizeof(float));
    if (!scratch || !a || !b) {
        CHECK(false);
        free(scratch);
        free(a);
        free(b);
        return;
    }
    for (uint32_t il = 0; il < g_tiny->hp.n_layer; il++)
        CHECK_INT_EQ(g_tiny->layers[il].is_swa, il != 5);
    /* the fresh run: positions 0..109 as before, then the new 10 */
    int32_t fresh[120];
    memcpy(fresh, g_ttok, 110 * sizeof *fresh);
    memcpy(fresh + 110, g_ttok + TN_CTX, 10 * sizeof *fresh);
    struct forward_ctx *f = tiny_ctx(1);
    if (f) {
        CHECK_OK(forward_eval(f, fresh, 120, 0, a, true));
        CHECK(forward_kv_cache(f, 0)->k[0] == NULL && forward_kv_cache(f, 0)->k[5] != NULL);
    }
    forward_destroy(f);
    f = tiny_ctx(1);
    if (f && rewind_script(f, NULL, scratch, b)) {
        size_t d = n_diff(a + 110 * V, b, 10 * V);
        CHECK_MSG(d == 0, "%s: after a rewind of 30: %zu of %zu logits differ from a fresh run",
                  kvq_type_name(t), d, 10 * V);
    }
    forward_destroy(f);
    /* the scheduler on the CPU backend: the same bits, local layers without cache buffers */
    struct hearth_device *dev = fixture_cpu_device("cpu", 2);
    struct sched *s = NULL;
    if (dev)
        CHECK_OK(tiny_sched(&dev, 1, &s));
    if (s) {
        float *c = malloc(10 * V * sizeof(float));
        if (c && rewind_script(NULL, s, scratch, c)) {
            size_t d = n_diff(b, c, 10 * V);
            CHECK_MSG(d == 0, "%s sched: %zu of %zu logits differ from forward.c",
                      kvq_type_name(t), d, 10 * V);
        }
        free(c);
    }
    sched_destroy(s);
    backend_device_destroy(dev);
    free(scratch);
    free(a);
    free(b);
}

/*
 * f16: the ring-only local layers (n_ctx 256 > 16 + 64) against full f16 rows
 * (n_ctx 80, where the ring would not be shorter): the same f16 K/V values
 * in the same order through the same grouped f16 kernel (cpu/attn-ring.h), so
 * the logits of 70 tokens are the same bits.
 */
TEST(f16_ring_equals_rows)
{
    REQUIRE(tiny_model());
    tiny_tokens();
    g_tt = KVQ_F16;
    const size_t V = g_tiny->hp.n_vocab;
    float *a = malloc(70 * V * sizeof(float)), *b = malloc(70 * V * sizeof(float));
    struct forward_ctx *ring = tiny_ctx_at(1, TN_CTX), *rows = tiny_ctx_at(1, 80);
    if (a && b && ring && rows) {
        CHECK(forward_kv_cache(ring, 0)->k[0] == NULL && forward_kv_cache(rows, 0)->k[0]);
        CHECK_OK(forward_eval(ring, g_ttok, 70, 0, a, true));
        CHECK_OK(forward_eval(rows, g_ttok, 70, 0, b, true));
        size_t d = n_diff(a, b, 70 * V);
        CHECK_MSG(d == 0, "f16 ring vs rows: %zu of %zu logits differ", d, 70 * V);
    }
    forward_destroy(ring);
    forward_destroy(rows);
    free(a);
    free(b);
    g_tt = KVQ_ROT4;
}

TEST(rewind_beyond_slack)
{
    REQUIRE(tiny_model());
    tiny_tokens();
    const size_t V = g_tiny->hp.n_vocab;
    const uint32_t ring = TSWA + PLAN_SWA_SLACK; /* 80: after 130 positions it holds [50, 130) */
    float *out = malloc(130 * V * sizeof(float));
    REQUIRE(out);
    struct forward_ctx *f = tiny_ctx(1);
    struct hearth_device *dev = fixture_cpu_device("cpu", 2);
    struct sched *s = NULL;
    if (dev)
        CHECK_OK(tiny_sched(&dev, 1, &s));
    for (int path = 0; path < 2; path++) {
        struct forward_ctx *ff = path == 0 ? f : NULL;
        struct sched *ss = path == 1 ? s : NULL;
        if (!ff && !ss)
            continue;
        const char *who = path ? "sched" : "forward";
        CHECK_OK(tiny_eval(ff, ss, g_ttok, 130, 0, out));
        bool ok65 = ff ? forward_seq_can_resume(ff, 0, 65) : sched_seq_can_resume(ss, 0, 65);
        bool ok64 = ff ? forward_seq_can_resume(ff, 0, 64) : sched_seq_can_resume(ss, 0, 64);
        CHECK_MSG(ok65 && !ok64, "%s: resume at 65 %d, at 64 %d (ring %u)", who, ok65, ok64,
                  ring);
        CHECK_INT_EQ(tiny_eval(ff, ss, g_ttok, 1, 64, out), HEARTH_ERR_INVALID_ARG);
        CHECK_MSG(strstr(hearth_last_error(), "evaluate again from position 0") &&
                      strstr(hearth_last_error(), "64"),
                  "%s: %s", who, hearth_last_error());
        /* nothing changed: the allowed rewind still works, and so does starting over */
        CHECK_OK(tiny_eval(ff, ss, g_ttok + 65, 1, 65, out));
        CHECK_OK(tiny_eval(ff, ss, g_ttok + TN_CTX, 20, 0, out));
        CHECK(ff ? forward_seq_can_resume(ff, 0, 19) : sched_seq_can_resume(ss, 0, 19));
    }
    forward_destroy(f);
    sched_destroy(s);
    backend_device_destroy(dev);

    /* two sequences: the one that rewinds too far is named, the batch refused whole */
    struct forward_ctx *m2 = tiny_ctx(2);
    if (m2) {
        int32_t tk[2], sq[2] = {0, 1}, ps[2];
        for (int q = 0; q < 2; q++)
            CHECK_OK(forward_eval_multi(m2, g_ttok, (int32_t[]){q, q, q}, (int32_t[]){0, 1, 2},
                                        3, NULL, NULL));
        int32_t seqs[130], poss[130];
        for (int i = 0; i < 130; i++) {
            seqs[i] = 1;
            poss[i] = i;
        }
        CHECK_OK(forward_eval_multi(m2, g_ttok, seqs, poss, 130, NULL, NULL));
        tk[0] = g_ttok[3];
        tk[1] = g_ttok[5];
        ps[0] = 3;
        ps[1] = 40;
        CHECK_INT_EQ(forward_eval_multi(m2, tk, sq, ps, 2, NULL, NULL), HEARTH_ERR_INVALID_ARG);
        CHECK_MSG(strstr(hearth_last_error(), "sequence 1"), "%s", hearth_last_error());
        CHECK_INT_EQ(forward_seq_n_past(m2, 0), 3);
    }
    forward_destroy(m2);
    free(out);
}

static void vulkan_ring_only_of(struct hearth_device **devs);

TEST(vulkan_ring_only)
{
    REQUIRE(tiny_model());
    struct hearth_device *devs[2] = {fixture_cpu_device("cpu", 2), NULL};
    REQUIRE(devs[0]);
    if (reg_device_open("vulkan0", &devs[1]) != HEARTH_OK) {
        err_clear();
        backend_device_destroy(devs[0]);
        TEST_SKIP("no vulkan0");
    }
    const enum kvq_type types[2] = {KVQ_ROT4, KVQ_F16};
    for (int i = 0; i < 2; i++) {
        g_tt = types[i];
        vulkan_ring_only_of(devs);
    }
    g_tt = KVQ_ROT4;
    backend_device_destroy(devs[1]);
    backend_device_destroy(devs[0]);
}

static void vulkan_ring_only_of(struct hearth_device **devs)
{
    tiny_tokens();
    const size_t V = g_tiny->hp.n_vocab;
    float *scratch = malloc(130 * V * sizeof(float)), *a = malloc(120 * V * sizeof(float)),
          *b = malloc(10 * V * sizeof(float));
    struct placement *pl = NULL;
    CHECK_OK(placement_create(g_tiny->hp.n_layer, 0, &pl));
    struct sched *s = NULL;
    if (pl && scratch && a && b) {
        CHECK_OK(placement_from_ngl(pl, (int)g_tiny->hp.n_layer, 1, 0)); /* head on the CPU */
        struct sched_params sp = sched_params_default();
        sp.n_ctx = TN_CTX;
        sp.n_batch = 64;
        sp.n_devices = 2;
        sp.devices = devs;
        sp.placement = pl;
        sp.kv_type_k = sp.kv_type_v = g_tt;
        sp.kv_window = g_tt == KVQ_F16 ? 0 : TW;
        CHECK_OK(sched_create(g_tiny, &sp, &s));
    }
    struct forward_ctx *f = tiny_ctx(1);
    if (s && f && rewind_script(NULL, s, scratch, b)) {
        /* 140 positions written: the rings hold [60, 140), so 74 is the earliest resume */
        CHECK(sched_seq_can_resume(s, 0, 75) && !sched_seq_can_resume(s, 0, 74));
        CHECK_INT_EQ(sched_eval(s, g_ttok, 1, 74, scratch, false), HEARTH_ERR_INVALID_ARG);
        /* a fresh run of the same 120 tokens on vulkan0: the same bits */
        int32_t fresh[120];
        memcpy(fresh, g_ttok, 110 * sizeof *fresh);
        memcpy(fresh + 110, g_ttok + TN_CTX, 10 * sizeof *fresh);
        sched_seq_clear(s, 0);
        CHECK_OK(sched_eval(s, fresh, 120, 0, scratch, true));
        size_t d = n_diff(scratch + 110 * V, b, 10 * V);
        CHECK_MSG(d == 0, "vulkan0 %s: after a rewind of 30, %zu of %zu logits differ from a "
                  "fresh run", kvq_type_name(g_tt), d, 10 * V);
        /* and near forward.c's (other kernels: a loose bound that catches a wrong row) */
        CHECK_OK(forward_eval(f, fresh, 120, 0, a, true));
        float mx = 0.0f, worst = 0.0f;
        for (size_t i = 110 * V; i < 120 * V; i++) {
            mx = fabsf(a[i]) > mx ? fabsf(a[i]) : mx;
            worst = fabsf(a[i] - scratch[i]) > worst ? fabsf(a[i] - scratch[i]) : worst;
        }
        CHECK_MSG(worst <= 0.1f * mx, "vulkan0 %s: max |diff| %g from forward.c, max |logit| %g",
                  kvq_type_name(g_tt), (double)worst, (double)mx);
    }
    forward_destroy(f);
    sched_destroy(s);
    placement_free(pl);
    free(scratch);
    free(a);
    free(b);
}

TEST_MAIN(TEST_CASE(layer_window_rule), TEST_CASE(cache_bytes), TEST_CASE(forward_bytes),
          TEST_CASE(global_layers_read_codes), TEST_CASE(rewind_within_slack),
          TEST_CASE(f16_ring_equals_rows), TEST_CASE(rewind_beyond_slack),
          TEST_CASE(vulkan_ring_only))
