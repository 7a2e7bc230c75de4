/*
 * test-kv-swa-full: sliding-window layers that keep a row for every position
 * (plan_opts.swa_full, --swa-full, hearth_session_params.swa_full), so that a
 * rewind of any length is served instead of restarting from position 0.
 *
 *  - the rule: under swa_full every layer keeps codes (plan_kv_layer_codes);
 *    a local layer's ring is 0 for f16/f16 (full rows, no ring) and
 *    min(swa + slack, n_ctx) beside its codes for a compressed cache with a
 *    window, 0 without one; the global layers are unchanged;
 *  - the bytes: plan_kv_layer_bytes on Gemma 3's header at 32k (f16: every
 *    layer 2 x 32768 rows, 0.5625 GiB against 15 rings of 576; rot4 with a
 *    128 window: each local layer its rows, aux and ring), and forward.c's
 *    kv_cache_bytes on the real Gemma 3 equal the same rule;
 *  - the tiny synth gemma3 (window 16, ring 80), 140 positions then a rewind
 *    to 70 (70 or 71 back, past the 64 slack), on forward.c, the engine and
 *    the scheduler on the CPU backend:
 *      f16: accepted (refused without swa_full), and the logits are a fresh
 *      run's bits; the scheduler gives forward.c's bits;
 *      rot4 with a window: accepted and finite; positions 55-60, which the
 *      local layers' rings no longer hold, come from their codes, so the
 *      logits are not a fresh run's bits (that run read them exact) but
 *      near them; garbage over those codes changes the rewound logits while
 *      garbage over every local code changes nothing for a step that did not
 *      rewind; a rewind within the slack still gives a fresh run's bits; the
 *      scheduler gives forward.c's bits;
 *  - the public API: a second prompt sharing 40 tokens with the first (93
 *    positions back) reuses them with swa_full (30 evaluated, the same ids as
 *    a fresh session) and evaluates all 70 without;
 *  - every layer on vulkan0 (lavapipe in CI; skipped without Vulkan): the
 *    long rewind is accepted there too, f16 gives a fresh vulkan0 run's bits
 *    and rot4 stays within 0.1 of the largest logit of forward.c's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-registry.h"
#include "backend.h"
#include "cpu/forward.h"
#include "engine.h"
#include "err.h"
#include "fixtures.h"
#include "gguf.h"
#include "hearth.h"
#include "kv-cache.h"
#include "kv-quant.h"
#include "model.h"
#include "placement.h"
#include "plan.h"
#include "scheduler.h"
#include "test.h"

TEST(rule)
{
    const uint32_t ring = 512 + PLAN_SWA_SLACK;
    struct plan_opts o = fixture_kv_opts(2048, KVQ_ROT4, KVQ_ROT4, 128, true);
    CHECK_INT_EQ(plan_kv_layer_window(&o, 0), 128);
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), ring); /* its whole window exact, as before */
    CHECK(plan_kv_layer_codes(&o, 0) && plan_kv_layer_codes(&o, 512)); /* and its codes */
    o.swa_full = false; /* the flag is what keeps them */
    CHECK(!plan_kv_layer_codes(&o, 512));
    o = fixture_kv_opts(300, KVQ_ROT4, KVQ_ROT4, 128, true);
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), 300); /* capped at the context */
    CHECK(plan_kv_layer_codes(&o, 512));
    o.kv_window = 0; /* no window: codes only, as without the flag */
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), 0);
    CHECK(plan_kv_layer_codes(&o, 512));
    /* one compressed side is enough */
    o = fixture_kv_opts(2048, KVQ_F16, KVQ_ROT4, 128, true);
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), ring);
    CHECK(plan_kv_layer_codes(&o, 512));
    /* f16/f16: full rows and no ring, with or without --kv-window */
    o = fixture_kv_opts(2048, KVQ_F16, KVQ_F16, 0, true);
    for (int w = 0; w < 2; w++) {
        o.kv_window = w ? 128 : 0;
        CHECK_INT_EQ(plan_kv_layer_window(&o, 512), 0);
        CHECK_INT_EQ(plan_kv_layer_window(&o, 0), 0);
        CHECK(plan_kv_layer_codes(&o, 512) && plan_kv_layer_codes(&o, 0));
        CHECK_INT_EQ(plan_kv_window_bytes(&o, 512, 1, 256, 256), 0);
    }
    o.swa_full = false;
    CHECK_INT_EQ(plan_kv_layer_window(&o, 512), ring);
    CHECK(!plan_kv_layer_codes(&o, 512));
}

/* Gemma 3 270M's header: 18 layers (15 local, swa 512), 1 KV head of 256. */
static bool gemma_header(struct plan_model *pm)
{
    const char *path = test_model_path(TEST_GEMMA3);
    struct gguf_file *g = NULL;
    if (!path || gguf_open(path, &g) != HEARTH_OK)
        return false;
    hearth_status st = plan_model_from_gguf(g, pm);
    gguf_close(g);
    CHECK_OK(st);
    return st == HEARTH_OK;
}

static uint64_t kv_total(const struct arch_info *a, const struct plan_opts *o)
{
    uint64_t b = 0;
    for (uint32_t il = 0; il < a->n_layer; il++)
        b += plan_kv_layer_bytes(a, o, il);
    return b;
}

TEST(plan_bytes)
{
    struct plan_model pm;
    memset(&pm, 0, sizeof pm);
    REQUIRE(gemma_header(&pm));
    const struct arch_info *a = &pm.arch;
    CHECK_INT_EQ(a->n_layer, 18);
    CHECK_INT_EQ(a->sliding_window, 512);
    CHECK_INT_EQ(a->n_head_kv, 1);
    CHECK_INT_EQ(a->head_dim_k, 256);
    const uint64_t n = 32768, ring = 512 + PLAN_SWA_SLACK;
    /* f16: 15 rings of 576 positions become full rows (hearth plan: 0.10 -> 0.56 GiB) */
    const struct plan_opts ring_f16 = fixture_kv_opts(n, KVQ_F16, KVQ_F16, 0, false);
    const struct plan_opts full_f16 = fixture_kv_opts(n, KVQ_F16, KVQ_F16, 0, true);
    const uint64_t rows = 2 * plan_kv_buffer_bytes(512, n); /* K and V of 256 halves */
    const uint64_t rb = plan_kv_window_bytes(&ring_f16, 512, 1, 256, 256);
    CHECK_INT_EQ(rb, ring * 512 * 2 + ring * 4); /* already a multiple of PLAN_ALIGN */
    CHECK_INT_EQ(kv_total(a, &full_f16), 18 * rows);
    CHECK_INT_EQ(kv_total(a, &full_f16), 603979776); /* 0.5625 GiB */
    CHECK_INT_EQ(kv_total(a, &ring_f16), 3 * rows + 15 * rb);
    /* rot4 with a 128 window: a local layer adds its rows (and aux) to the ring it had */
    const struct plan_opts ring_q = fixture_kv_opts(n, KVQ_ROT4, KVQ_ROT4, 128, false);
    const struct plan_opts full_q = fixture_kv_opts(n, KVQ_ROT4, KVQ_ROT4, 128, true);
    const uint64_t qrows = 2 * plan_kv_buffer_bytes(plan_kv_row_bytes(KVQ_ROT4, 1, 256), n);
    const uint64_t aux = plan_kv_aux_bytes(KVQ_ROT4, 1, 256);
    for (uint32_t il = 0; il < a->n_layer; il++) {
        const bool local = arch_layer_swa(a, il);
        const uint64_t wb = plan_kv_window_bytes(&full_q, local ? 512 : 0, 1, 256, 256);
        CHECK_INT_EQ(wb, local ? rb : plan_kv_window_bytes(&ring_q, 0, 1, 256, 256));
        CHECK_INT_EQ(plan_kv_layer_bytes(a, &full_q, il), qrows + aux + wb);
        CHECK_INT_EQ(plan_kv_layer_bytes(a, &ring_q, il), (local ? 0 : qrows) + aux + wb);
    }
    /* per sequence: three sequences cost three times one */
    struct plan_opts par = full_q;
    par.n_parallel = 3;
    CHECK_INT_EQ(kv_total(a, &par), 3 * kv_total(a, &full_q));
    plan_model_free(&pm);
}

/* forward.c's cache on the real Gemma 3 under swa_full: rows everywhere, rings by the rule. */
TEST(forward_bytes)
{
    struct model *m = fixture_model(TEST_GEMMA3);
    REQUIRE(m);
    const struct model_hparams *hp = &m->hp;
    const enum kvq_type types[2] = {KVQ_F16, KVQ_ROT4};
    for (int i = 0; i < 2; i++) {
        struct forward_params p = forward_params_default();
        p.n_ctx = 700;
        p.n_threads = 1;
        p.kv_type_k = p.kv_type_v = types[i];
        p.kv_window = types[i] == KVQ_F16 ? 0 : 8;
        p.swa_full = true;
        struct forward_ctx *f = NULL;
        CHECK_OK(forward_create(m, &p, &f));
        if (!f)
            continue;
        const size_t row = 2 * hp->n_head_kv * kvq_head_bytes(types[i], (int)hp->head_dim);
        const size_t slot = 2 * (size_t)hp->n_head_kv * hp->head_dim * 2;
        size_t want = 0;
        for (uint32_t il = 0; il < hp->n_layer; il++) {
            const bool local = m->layers[il].is_swa;
            const uint32_t w = types[i] == KVQ_F16 ? 0 : local ? 512 + PLAN_SWA_SLACK : 8;
            CHECK_MSG(forward_kv_cache(f, 0)->k[il] != NULL, "%s layer %u has no rows",
                      kvq_type_name(types[i]), il);
            want += 700 * row + w * slot;
        }
        CHECK_INT_EQ(forward_kv_bytes(f), want);
        forward_destroy(f);
    }
    model_free(m);
}

/* ---- rewinds on the tiny gemma3 (fixtures.h: window 16, ring 16 + PLAN_SWA_SLACK) ------- */

/*
 * The global layer's window is the whole context, so that after the rewind
 * it reads every row exact: what differs from a fresh run can only come from
 * the local layers. BACK is past the first 64 positions, so the rewound and
 * the fresh run fix the same key mean (kv-cache.md: the first batch's
 * positions 1-63) and differ in nothing but the rows they read.
 */
enum { N_CTX = 256, SWA = 16, FILLED = 140, BACK = 70, N_NEW = 20, SHARED = 40 };

static struct model *g_tiny;
static int32_t g_tok[FILLED + 32]; /* FILLED, then the other tokens of the rewinds */

static void tiny_free(void)
{
    model_free(g_tiny);
}

static bool tiny_load(void)
{
    if (!g_tiny) {
        const char *path = fixture_tiny_gemma3_path();
        if (!path)
            return false;
        CHECK_OK(model_load(path, &g_tiny));
        if (!g_tiny)
            return false;
        atexit(tiny_free);
    }
    CHECK_INT_EQ(g_tiny->hp.sliding_window, SWA);
    test_rng_seed(5);
    for (int i = 0; i < FILLED + 32; i++)
        g_tok[i] = 3 + (int32_t)(test_rng_u64() % 509);
    return true;
}

/* A context of N_CTX on forward.c: type t (for both K and V) with the exact window w. */
static struct forward_ctx *tiny_forward_w(enum kvq_type t, int w, bool swa_full)
{
    struct forward_params p = forward_params_default();
    p.n_ctx = N_CTX;
    p.n_threads = 2;
    p.n_batch = 64;
    p.kv_type_k = p.kv_type_v = t;
    p.kv_window = w;
    p.swa_full = swa_full;
    struct forward_ctx *f = NULL;
    CHECK_OK(forward_create(g_tiny, &p, &f));
    return f;
}

/* The cases' context: rot4 with the window N_CTX, or f16. */
static struct forward_ctx *tiny_forward(enum kvq_type t, bool swa_full)
{
    return tiny_forward_w(t, t == KVQ_F16 ? 0 : N_CTX, swa_full);
}

/* The same on the scheduler over devs (placement NULL: all on devs[0]). */
static struct sched *tiny_sched(struct hearth_device **devs, int n_dev, const struct placement *pl,
                                enum kvq_type t)
{
    struct sched_params sp = sched_params_default();
    sp.n_ctx = N_CTX;
    sp.n_batch = 64;
    sp.n_devices = n_dev;
    sp.devices = devs;
    sp.placement = pl;
    sp.kv_type_k = sp.kv_type_v = t;
    sp.kv_window = t == KVQ_F16 ? 0 : N_CTX;
    sp.swa_full = true;
    struct sched *s = NULL;
    CHECK_OK(sched_create(g_tiny, &sp, &s));
    return s;
}

static hearth_status eval_on(struct forward_ctx *f, struct sched *s, const int32_t *tk, int n,
                             int pos0, float *out)
{
    return f ? forward_eval(f, tk, n, pos0, out, true) : sched_eval(s, tk, n, pos0, out, true);
}

/* Positions [0, FILLED) as batches of 70, 40, 20 and 10 decode steps (scratch [70][V]). */
static bool fill(struct forward_ctx *f, struct sched *s, float *scratch)
{
    static const int cuts[] = {0, 70, 110, 130};
    hearth_status st = HEARTH_OK;
    for (int i = 0; i < 3 && st == HEARTH_OK; i++)
        st = eval_on(f, s, g_tok + cuts[i], cuts[i + 1] - cuts[i], cuts[i], scratch);
    for (int p = 130; p < FILLED && st == HEARTH_OK; p++)
        st = eval_on(f, s, g_tok + p, 1, p, scratch);
    CHECK_OK(st);
    return st == HEARTH_OK;
}

/*
 * The rewind: N_NEW other tokens at pos0 (into out [N_NEW][V]). Its fresh
 * counterpart is tokens [0, pos0) and the same N_NEW from an empty cache.
 */
static bool rewind_to(struct forward_ctx *f, struct sched *s, int pos0, float *out)
{
    const bool ok = f ? forward_seq_can_resume(f, 0, (uint32_t)pos0)
                      : sched_seq_can_resume(s, 0, (uint32_t)pos0);
    CHECK_MSG(ok, "a rewind to %d refused", pos0);
    hearth_status st = eval_on(f, s, g_tok + FILLED, N_NEW, pos0, out);
    CHECK_OK(st);
    return ok && st == HEARTH_OK;
}

static bool fresh_run(enum kvq_type t, int w, int pos0, float *out)
{
    struct forward_ctx *f = tiny_forward_w(t, w, true);
    int32_t tk[FILLED + N_NEW];
    memcpy(tk, g_tok, (size_t)pos0 * sizeof *tk);
    memcpy(tk + pos0, g_tok + FILLED, N_NEW * sizeof *tk);
    hearth_status st = f ? forward_eval(f, tk, pos0 + N_NEW, 0, out, true) : HEARTH_ERR_NO_MEMORY;
    CHECK_OK(st);
    forward_destroy(f);
    return st == HEARTH_OK;
}

static size_t n_differ(const float *a, const float *b, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return d;
}

/* max |a - b| over the max |b|; infinite when a is not finite */
static double rel_gap(const float *a, const float *b, size_t n)
{
    double mx = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return (double)INFINITY;
        const double d = fabs((double)a[i] - (double)b[i]);
        mx = fmax(mx, fabs((double)b[i]));
        worst = fmax(worst, d);
    }
    return mx > 0.0 ? worst / mx : (double)INFINITY;
}

/* Buffers of the rewind cases: scratch [70][V], fresh [FILLED + N_NEW][V], two [N_NEW][V]. */
struct bufs {
    float *scratch, *fresh, *a, *b;
    size_t V;
};

static void bufs_free(struct bufs *B)
{
    free(B->scratch);
    free(B->fresh);
    free(B->a);
    free(B->b);
}

/* All four, or none (freed) and false. */
static bool bufs_alloc(struct bufs *B)
{
    B->V = g_tiny->hp.n_vocab;
    B->scratch = malloc(70 * B->V * sizeof(float));
    B->fresh = malloc((FILLED + N_NEW) * B->V * sizeof(float));
    B->a = malloc(N_NEW * B->V * sizeof(float));
    B->b = malloc(N_NEW * B->V * sizeof(float));
    if (B->scratch && B->fresh && B->a && B->b)
        return true;
    bufs_free(B);
    return false;
}

TEST(f16_rewind_past_the_slack)
{
    REQUIRE(tiny_load());
    struct bufs B;
    REQUIRE(bufs_alloc(&B));
    const size_t NV = N_NEW * B.V;
    /* without swa_full the rings hold [60, 140): 70 needs 55 and is refused */
    struct forward_ctx *f = tiny_forward(KVQ_F16, false);
    if (f && fill(f, NULL, B.scratch))
        CHECK(!forward_seq_can_resume(f, 0, BACK) && forward_seq_can_resume(f, 0, 75));
    forward_destroy(f);
    /* with it: full rows, no ring, and the rewound logits are a fresh run's */
    f = tiny_forward(KVQ_F16, true);
    if (f) {
        const struct kv_cache *c = forward_kv_cache(f, 0);
        CHECK(c->k[0] != NULL && c->xw == 0);
    }
    if (f && fresh_run(KVQ_F16, 0, BACK, B.fresh) && fill(f, NULL, B.scratch)) {
        for (uint32_t p = 0; p <= FILLED; p++)
            CHECK_MSG(forward_seq_can_resume(f, 0, p), "resume at %u", p);
        if (rewind_to(f, NULL, BACK, B.a))
            CHECK_INT_EQ(n_differ(B.fresh + BACK * B.V, B.a, NV), 0);
    }
    forward_destroy(f);
    /* the engine (CPU path) passes the flag through */
    struct engine_params ep = engine_params_default();
    ep.n_ctx = N_CTX;
    ep.n_threads = 2;
    ep.ngl = 0;
    for (int full = 0; full < 2; full++) {
        ep.swa_full = full;
        struct engine *e = NULL;
        CHECK_OK(engine_create(g_tiny, &ep, &e));
        if (e) {
            CHECK_OK(engine_eval(e, g_tok, FILLED, 0, NULL, false));
            CHECK_MSG(engine_seq_can_resume(e, 0, BACK) == (full == 1), "engine swa_full %d", full);
        }
        engine_destroy(e);
    }
    /* the scheduler on the CPU backend: forward.c's bits */
    struct hearth_device *dev = fixture_cpu_device("cpu", 2);
    struct sched *s = dev ? tiny_sched(&dev, 1, NULL, KVQ_F16) : NULL;
    if (s && fill(NULL, s, B.scratch) && rewind_to(NULL, s, BACK, B.b))
        CHECK_INT_EQ(n_differ(B.a, B.b, NV), 0);
    sched_destroy(s);
    backend_device_destroy(dev);
    bufs_free(&B);
}

/*
 * Without swa_full an f16 cache's local layers keep only their rings
 * (cpu/attn-ring.h); their attention is the grouped f16 kernel over the
 * window in position order, the very arithmetic of the full rows. So the
 * ring-only context gives the swa_full context's bits at every step of
 * fill's batches (140 positions: the rings of 80 wrap), on forward.c and on
 * the scheduler over the CPU backend (its ATTENTION's ring-only path).
 * (The route it replaced matched here too: a window of 16 is too short for
 * its float sums to round differently; test-attn-ring.c checks Gemma 3's
 * shapes, where they do.)
 */
TEST(f16_ring_gives_swa_full_bits)
{
    REQUIRE(tiny_load());
    struct bufs B;
    REQUIRE(bufs_alloc(&B));
    struct forward_ctx *ring = tiny_forward(KVQ_F16, false), *full = tiny_forward(KVQ_F16, true);
    struct hearth_device *dev = fixture_cpu_device("cpu", 2);
    struct sched *s = NULL;
    if (dev) {
        struct sched_params sp = sched_params_default();
        sp.n_ctx = N_CTX;
        sp.n_batch = 64;
        sp.n_devices = 1;
        sp.devices = &dev;
        CHECK_OK(sched_create(g_tiny, &sp, &s));
    }
    if (ring && full && s) {
        CHECK(forward_kv_cache(ring, 0)->xw > 0 && forward_kv_cache(full, 0)->xw == 0);
        static const int cuts[] = {0, 70, 110, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139,
                                   FILLED};
        for (int i = 0; i + 1 < (int)(sizeof cuts / sizeof cuts[0]); i++) {
            const int n = cuts[i + 1] - cuts[i];
            const size_t nv = (size_t)n * B.V;
            CHECK_OK(forward_eval(full, g_tok + cuts[i], n, cuts[i], B.scratch, true));
            CHECK_OK(forward_eval(ring, g_tok + cuts[i], n, cuts[i], B.fresh, true));
            CHECK_OK(sched_eval(s, g_tok + cuts[i], n, cuts[i], B.fresh + nv, true));
            CHECK_MSG(n_differ(B.fresh, B.scratch, nv) == 0, "forward.c, positions %d..%d",
                      cuts[i], cuts[i + 1] - 1);
            CHECK_MSG(n_differ(B.fresh + nv, B.scratch, nv) == 0, "scheduler, positions %d..%d",
                      cuts[i], cuts[i + 1] - 1);
        }
    }
    sched_destroy(s);
    backend_device_destroy(dev);
    forward_destroy(ring);
    forward_destroy(full);
    bufs_free(&B);
}

/* Overwrites the codes (K and V) of positions [0, n) of every local layer with garbage. */
static void scribble_local(struct forward_ctx *f, uint32_t n)
{
    struct kv_cache *c = forward_kv_cache(f, 0);
    test_rng_seed(9);
    for (uint32_t il = 0; il < c->n_layer; il++) {
        if (!g_tiny->layers[il].is_swa)
            continue;
        for (uint32_t p = 0; p < n; p++) {
            for (size_t i = 0; i < c->k_row; i++)
                kv_cache_k(c, il, p)[i] = (uint8_t)test_rng_u64();
            for (size_t i = 0; i < c->v_row; i++)
                kv_cache_v(c, il, p)[i] = (uint8_t)test_rng_u64();
        }
    }
}

TEST(rot4_rewind_reads_codes)
{
    REQUIRE(tiny_load());
    struct bufs B;
    REQUIRE(bufs_alloc(&B));
    const size_t NV = N_NEW * B.V, V = B.V;
    float *step = malloc(2 * V * sizeof(float));
    struct forward_ctx *f = tiny_forward(KVQ_ROT4, true), *g = tiny_forward(KVQ_ROT4, true);
    if (!step || !f || !g || !fresh_run(KVQ_ROT4, N_CTX, BACK, B.fresh) ||
        !fill(f, NULL, B.scratch) || !fill(g, NULL, B.scratch)) {
        CHECK(false);
        goto done;
    }
    const struct kv_cache *c = forward_kv_cache(f, 0);
    CHECK(c->xw_layer[0] == SWA + PLAN_SWA_SLACK && c->xw_layer[5] == N_CTX);
    CHECK_MSG(c->k[0] != NULL, "a local layer without codes");
    if (!c->k[0])
        goto done; /* nothing to scribble on */
    /* a step that rewinds nothing reads no local code: garbage over all of them is unseen */
    scribble_local(g, FILLED);
    CHECK_OK(forward_eval(f, g_tok + 3, 1, FILLED, step, false));
    CHECK_OK(forward_eval(g, g_tok + 3, 1, FILLED, step + V, false));
    CHECK_INT_EQ(n_differ(step, step + V, V), 0);
    /* 71 back: accepted; positions 55..60 (ring slots of 135..140) come from the codes */
    if (rewind_to(f, NULL, BACK, B.a) && rewind_to(g, NULL, BACK, B.b)) {
        const size_t d = n_differ(B.a, B.b, V);
        CHECK_MSG(d > V / 2, "garbage codes moved only %zu of %zu logits of position %d", d, V,
                  BACK);
        /*
         * The fresh run read those rows exact, so these are not its bits
         * (0.076 of the largest logit measured), but nearer to them than a
         * cache without the window, which reads every row from codes
         * (0.165): a long rewind costs a few rows' quantization error.
         */
        const float *ref = B.fresh + BACK * V;
        const double gap = rel_gap(B.a, ref, NV);
        CHECK_MSG(n_differ(B.a, ref, NV) > 0, "the rewound run read no code");
        float *coded = malloc((BACK + N_NEW) * V * sizeof(float));
        if (coded && fresh_run(KVQ_ROT4, 0, BACK, coded)) {
            const double coded_gap = rel_gap(coded + BACK * V, ref, NV);
            CHECK_MSG(gap < coded_gap,
                      "rewound: %g of the largest logit from a fresh run, "
                      "codes only: %g",
                      gap, coded_gap);
        }
        free(coded);
    }
    /* 65 back, the first resume within the slack: every row read exact, a fresh run's bits */
    enum { EDGE = FILLED + 1 - (int)PLAN_SWA_SLACK - 1 };
    float *edge = malloc((EDGE + N_NEW) * V * sizeof(float));
    struct forward_ctx *h = tiny_forward(KVQ_ROT4, true);
    if (edge && h && fresh_run(KVQ_ROT4, N_CTX, EDGE, edge) && fill(h, NULL, B.scratch) &&
        forward_eval(h, g_tok + 3, 1, FILLED, step, false) == HEARTH_OK &&
        rewind_to(h, NULL, EDGE, B.b))
        CHECK_INT_EQ(n_differ(edge + EDGE * V, B.b, NV), 0);
    forward_destroy(h);
    free(edge);
    /* the scheduler on the CPU backend: forward.c's bits for the long rewind */
    struct hearth_device *dev = fixture_cpu_device("cpu", 2);
    struct sched *s = dev ? tiny_sched(&dev, 1, NULL, KVQ_ROT4) : NULL;
    if (s && fill(NULL, s, B.scratch) &&
        sched_eval(s, g_tok + 3, 1, FILLED, step, false) == HEARTH_OK &&
        rewind_to(NULL, s, BACK, B.b))
        CHECK_INT_EQ(n_differ(B.a, B.b, NV), 0);
    sched_destroy(s);
    backend_device_destroy(dev);
done:
    forward_destroy(f);
    forward_destroy(g);
    free(step);
    bufs_free(&B);
}

struct ids {
    int32_t v[8];
    int n;
};

static bool keep_ids(void *user, const char *text, size_t len, int32_t token)
{
    (void)text;
    (void)len;
    struct ids *c = user;
    if (token >= 0 && c->n < 8)
        c->v[c->n++] = token;
    return true;
}

/* hearth_generate_tokens of n ids with 4 greedy tokens; returns n_prompt_eval (-1: error). */
static long generate(hearth_session *s, const int32_t *ids, size_t n, struct ids *out)
{
    hearth_generate_params gp;
    hearth_generate_params_default(&gp);
    gp.n_predict = 4;
    gp.on_token = keep_ids;
    gp.user = out;
    hearth_generate_stats st;
    hearth_status rc = hearth_generate_tokens(s, ids, n, &gp, &st);
    CHECK_OK(rc);
    return rc == HEARTH_OK ? (long)st.n_prompt_eval : -1;
}

TEST(api_reuses_a_prefix_after_a_long_rewind)
{
    REQUIRE(tiny_load());
    const char *path = fixture_tiny_gemma3_path();
    hearth_model *m = NULL;
    REQUIRE(path);
    CHECK_OK(hearth_model_load(path, &m));
    REQUIRE(m);
    /* the first prompt: 130 tokens; the second shares its first 40, then 30 others */
    int32_t second[SHARED + 30];
    memcpy(second, g_tok, SHARED * sizeof *second);
    memcpy(second + SHARED, g_tok + FILLED, 30 * sizeof *second);
    struct ids reused = {0}, fresh = {0};
    for (int full = 0; full < 2; full++) {
        hearth_session_params sp;
        hearth_session_params_default(&sp);
        sp.n_ctx = N_CTX;
        sp.n_threads = 2;
        sp.sampling.temp = 0.0f;
        sp.swa_full = full;
        hearth_session *s = NULL, *t = NULL;
        CHECK_OK(hearth_session_create(m, &sp, &s));
        CHECK_OK(hearth_session_create(m, &sp, &t));
        struct ids first = {0}, again = {0};
        if (s && t) {
            CHECK_INT_EQ(generate(s, g_tok, 130, &first), 130);
            /* about 133 cached: 40 is 93 back, past the 64 of the local rings' slack */
            CHECK_INT_EQ(generate(s, second, 70, full ? &reused : &again), full ? 30 : 70);
            if (full)
                CHECK_INT_EQ(generate(t, second, 70, &fresh), 70);
        }
        hearth_session_free(s);
        hearth_session_free(t);
    }
    CHECK(reused.n > 0 && reused.n == fresh.n);
    CHECK(!memcmp(reused.v, fresh.v, (size_t)reused.n * sizeof reused.v[0]));
    hearth_model_free(m);
}

static void vulkan_of(struct hearth_device **devs, enum kvq_type t);

TEST(vulkan_rewind_past_the_slack)
{
    REQUIRE(tiny_load());
    struct hearth_device *devs[2] = {fixture_cpu_device("cpu", 2), NULL};
    REQUIRE(devs[0]);
    if (fixture_asan_slow_unwind() || reg_device_open("vulkan0", &devs[1]) != HEARTH_OK) {
        err_clear();
        backend_device_destroy(devs[0]);
        TEST_SKIP("no vulkan0");
    }
    vulkan_of(devs, KVQ_F16);
    vulkan_of(devs, KVQ_ROT4);
    backend_device_destroy(devs[1]);
    backend_device_destroy(devs[0]);
}

static void vulkan_of(struct hearth_device **devs, enum kvq_type t)
{
    struct bufs B;
    struct placement *pl = NULL;
    struct sched *s = NULL;
    struct forward_ctx *f = NULL;
    REQUIRE(bufs_alloc(&B));
    const size_t NV = N_NEW * B.V;
    CHECK_OK(placement_create(g_tiny->hp.n_layer, 0, &pl));
    if (!pl)
        goto done;
    CHECK_OK(placement_from_ngl(pl, (int)g_tiny->hp.n_layer, 1, 0)); /* head on the CPU */
    s = tiny_sched(devs, 2, pl, t);
    f = tiny_forward(t, true);
    if (!s || !f || !fill(NULL, s, B.scratch) || !rewind_to(NULL, s, BACK, B.a) ||
        !fill(f, NULL, B.scratch) || !rewind_to(f, NULL, BACK, B.b))
        goto done;
    const double gap = rel_gap(B.a, B.b, NV);
    CHECK_MSG(gap <= 0.1, "vulkan0 %s: %g of the largest logit from forward.c's", kvq_type_name(t),
              gap);
    if (t == KVQ_F16) {
        /* full rows: a fresh vulkan0 run of the same tokens gives the same bits */
        int32_t tk[BACK + N_NEW];
        memcpy(tk, g_tok, BACK * sizeof *tk);
        memcpy(tk + BACK, g_tok + FILLED, N_NEW * sizeof *tk);
        sched_seq_clear(s, 0);
        CHECK_OK(sched_eval(s, tk, BACK + N_NEW, 0, B.fresh, true));
        CHECK_INT_EQ(n_differ(B.fresh + BACK * B.V, B.a, NV), 0);
    }
done:
    forward_destroy(f);
    sched_destroy(s);
    placement_free(pl);
    bufs_free(&B);
}

TEST_MAIN(TEST_CASE(rule), TEST_CASE(plan_bytes), TEST_CASE(forward_bytes),
          TEST_CASE(f16_rewind_past_the_slack), TEST_CASE(f16_ring_gives_swa_full_bits),
          TEST_CASE(rot4_rewind_reads_codes),
          TEST_CASE(api_reuses_a_prefix_after_a_long_rewind),
          TEST_CASE(vulkan_rewind_past_the_slack))
