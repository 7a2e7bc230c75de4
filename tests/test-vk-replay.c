/*
 * test-vk-replay: command-buffer replay of single-token op lists on the
 * Vulkan backend (vulkan/replay.c). One device, two streams: stream 0 with
 * replay on, stream 1 created under HEARTH_VULKAN_REPLAY=0. Both run the
 * scheduler's attention block (RMSNORM, MATMUL q/k/v, ATTENTION with RoPE
 * and an F16 cache, MATMUL wo, ADD) over their own activations and caches,
 * decode step after step; every output and the caches must agree bit for
 * bit, and the counters must show one recording per distinct op list, the
 * later steps replayed. A replay that read a stale position (RoPE angle,
 * cache row, attention length) would diverge at the second step. Host time
 * per step with and without replay is printed (never asserted). Skips
 * without a Vulkan device; with HEARTH_VULKAN_VALIDATE=1 any validation
 * message fails the case.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test.h"
#include "vk-env.h"

#ifdef HEARTH_WITH_VULKAN
#include "../vulkan/vk.h"
#include "backend.h"
#include "kv-quant.h"
#include "quant.h"

const struct hearth_backend_ops *vk_backend_ops(void);

enum { E = 64, H = 4, HK = 2, D = 32, ROT = 16, CTX = 48, KVD = HK * D, MAX_L = 32 };
/* Cache rows of the flash-decoding cases: enough for vulkan/attn-split.c's rule to split. */
enum { CTX_SPLIT = 1024 };

/*
 * One layer's tensors for one stream: activations [1][..] f32; caches
 * [CTX][KVD] f16, or for a compressed type I8 rows of HK * kvq_head_bytes;
 * kaux F32 [2][KVD] (k_type != f16 only).
 */
struct lay {
    struct hearth_tensor x, xn, q, k, v, att, tmp, kc, vc, kaux;
};

struct env {
    struct hearth_device *dev;
    struct hearth_stream *s[2]; /* 0: replay on, 1: replay off */
    struct hearth_tensor wq, wk, wv, wo, nw, qn, kn;
    struct lay l[2][MAX_L];
    struct hearth_buffer *bufs[1024];
    int n_bufs;
    int window;
    int ctx; /* cache rows: CTX, or CTX_SPLIT */
    enum kvq_type kt, vt; /* cache types (f16/f16: graph.c's path, else op-attention.c's kvq) */
};

static struct hearth_tensor mk(struct env *e, hearth_dtype t, int64_t ne0, int64_t n_rows,
                               const void *host)
{
    struct hearth_tensor r;
    memset(&r, 0, sizeof r);
    uint64_t rb = 0;
    if (!quant_row_bytes(t, (uint64_t)ne0, &rb) || e->n_bufs >= 1024) {
        TEST_FAIL_AT("bad test tensor");
        return r;
    }
    size_t n = (size_t)rb * (size_t)n_rows;
    struct hearth_buffer *b = NULL;
    CHECK_OK(backend_buffer_alloc(backend_device_buffer_type(e->dev), n, &b));
    if (!b)
        return r;
    e->bufs[e->n_bufs++] = b;
    if (host)
        CHECK_OK(backend_buffer_set(b, 0, host, n));
    else
        CHECK_OK(backend_buffer_clear(b, 0));
    backend_tensor_2d(&r, b, 0, t, ne0, n_rows);
    return r;
}

/* rows x cols of gaussians * sc, as f32, or quantized to Q8_0 when q8. */
static struct hearth_tensor mk_rand(struct env *e, int rows, int cols, float sc, bool q8)
{
    float *f = malloc((size_t)rows * cols * sizeof *f);
    uint8_t *qb = malloc((size_t)rows * cols * 2);
    struct hearth_tensor r;
    memset(&r, 0, sizeof r);
    if (!f || !qb) {
        TEST_FAIL_AT("no memory");
        free(f);
        free(qb);
        return r;
    }
    for (int i = 0; i < rows * cols; i++)
        f[i] = (float)test_rng_gauss() * sc;
    if (q8) {
        uint64_t rb = 0;
        const struct quant_traits *qt = quant_get(HEARTH_DTYPE_Q8_0);
        if (quant_row_bytes(HEARTH_DTYPE_Q8_0, (uint64_t)cols, &rb) && qt && qt->from_float) {
            for (int i = 0; i < rows; i++)
                qt->from_float(f + (size_t)i * cols, qb + (size_t)i * rb, cols);
            r = mk(e, HEARTH_DTYPE_Q8_0, cols, rows, qb);
        } else {
            TEST_FAIL_AT("no Q8_0 quantizer");
        }
    } else {
        r = mk(e, HEARTH_DTYPE_F32, cols, rows, f);
    }
    free(f);
    free(qb);
    return r;
}

/* A cache of e->ctx rows of type t: F16 [ctx][KVD] or I8 [ctx][HK * head bytes]. */
static struct hearth_tensor mk_cache(struct env *e, enum kvq_type t)
{
    if (t == KVQ_F16)
        return mk(e, HEARTH_DTYPE_F16, KVD, e->ctx, NULL);
    return mk(e, HEARTH_DTYPE_I8, (int64_t)(HK * kvq_head_bytes(t, D)), e->ctx, NULL);
}

static bool env_open_kv(struct env *e, int n_layers, int window, int ctx, enum kvq_type kt,
                        enum kvq_type vt)
{
    memset(e, 0, sizeof *e);
    e->window = window;
    e->ctx = ctx;
    e->kt = kt;
    e->vt = vt;
    vk_keep_driver_loaded();
    const struct hearth_backend_ops *vo = vk_backend_ops();
    if (!vo || vo->device_count() < 1)
        return false;
    CHECK_OK(vo->device_open(0, &e->dev));
    if (!e->dev)
        return false;
    const char *old = getenv("HEARTH_VULKAN_REPLAY");
    char saved[16] = {0};
    if (old)
        snprintf(saved, sizeof saved, "%s", old);
    unsetenv("HEARTH_VULKAN_REPLAY");
    CHECK_OK(backend_stream_create(e->dev, &e->s[0]));
    setenv("HEARTH_VULKAN_REPLAY", "0", 1);
    CHECK_OK(backend_stream_create(e->dev, &e->s[1]));
    if (old)
        setenv("HEARTH_VULKAN_REPLAY", saved, 1);
    else
        unsetenv("HEARTH_VULKAN_REPLAY");
    test_rng_seed(7);
    e->wq = mk_rand(e, H * D, E, 0.2f, true);
    e->wk = mk_rand(e, KVD, E, 0.2f, true);
    e->wv = mk_rand(e, KVD, E, 0.2f, false);
    e->wo = mk_rand(e, E, H * D, 0.2f, true);
    e->nw = mk_rand(e, 1, E, 1.0f, false);
    e->qn = mk_rand(e, 1, D, 1.0f, false);
    e->kn = mk_rand(e, 1, D, 1.0f, false);
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < n_layers; i++) {
            struct lay *l = &e->l[s][i];
            l->x = mk(e, HEARTH_DTYPE_F32, E, 1, NULL);
            l->xn = mk(e, HEARTH_DTYPE_F32, E, 1, NULL);
            l->q = mk(e, HEARTH_DTYPE_F32, H * D, 1, NULL);
            l->k = mk(e, HEARTH_DTYPE_F32, KVD, 1, NULL);
            l->v = mk(e, HEARTH_DTYPE_F32, KVD, 1, NULL);
            l->att = mk(e, HEARTH_DTYPE_F32, H * D, 1, NULL);
            l->tmp = mk(e, HEARTH_DTYPE_F32, E, 1, NULL);
            l->kc = mk_cache(e, kt);
            l->vc = mk_cache(e, vt);
            if (kt != KVQ_F16)
                l->kaux = mk(e, HEARTH_DTYPE_F32, KVD, 2, NULL);
        }
    return e->s[0] && e->s[1] && test__failed == 0;
}


static void env_close(struct env *e)
{
    if (e->dev) {
        const char *msg = NULL;
        int n = vk_backend_validation_errors(e->dev, &msg);
        CHECK_MSG(n == 0, "%d validation messages, first: %s", n, msg);
        vkq_check_validation_setup();
    }
    for (int i = 0; i < e->n_bufs; i++)
        backend_buffer_free(e->bufs[i]);
    for (int s = 0; s < 2; s++)
        backend_stream_destroy(e->s[s]);
    backend_device_destroy(e->dev);
}

#define OPEN_OR_SKIP(e, n_layers, window) \
    OPEN_KV_OR_SKIP(e, n_layers, window, CTX, KVQ_F16, KVQ_F16)
#define OPEN_KV_OR_SKIP(e, n_layers, window, ctx, kt, vt)   \
    struct env e;                                           \
    if (!env_open_kv(&e, n_layers, window, ctx, kt, vt)) {  \
        bool fail_ = test__failed > 0;                  \
        env_close(&e);                                 \
        if (fail_)                                     \
            return;                                    \
        TEST_SKIP("no Vulkan device");                 \
    }

/* The scheduler's attention block (core/scheduler.c run_attn) for layer l at pos0. */
static int attn_block(const struct env *e, const struct lay *l, int pos0, struct hearth_op *ops)
{
    memset(ops, 0, 5 * sizeof *ops);
    for (int i = 0; i < 5; i++)
        ops[i].n_tok = 1;
    ops[0].kind = HEARTH_OP_RMSNORM;
    ops[0].u.rmsnorm = (struct hearth_op_rmsnorm){l->x, e->nw, l->xn, 1e-5f};
    ops[1].kind = HEARTH_OP_MATMUL;
    struct hearth_op_matmul *mm = &ops[1].u.matmul;
    mm->n_w = 3;
    mm->x = l->xn;
    mm->w[0] = e->wq, mm->w[1] = e->wk, mm->w[2] = e->wv;
    mm->y[0] = l->q, mm->y[1] = l->k, mm->y[2] = l->v;
    ops[2].kind = HEARTH_OP_ATTENTION;
    struct hearth_op_attention *a = &ops[2].u.attn;
    a->q = l->q, a->k = l->k, a->v = l->v, a->k_cache = l->kc, a->v_cache = l->vc;
    a->out = l->att;
    a->q_norm = e->qn, a->k_norm = e->kn;
    a->n_head = H, a->n_head_kv = HK, a->head_dim = D, a->n_rot = ROT;
    a->rope_mode = HEARTH_ROPE_NEOX, a->rope_base = 10000.0f, a->rope_freq_scale = 1.0f;
    a->norm_eps = 1e-6f, a->scale = 0.25f, a->pos0 = pos0, a->window = e->window;
    a->k_type = (int)e->kt, a->v_type = (int)e->vt, a->k_aux = l->kaux;
    a->kv_seed = 0x5eedu, a->layer = (uint32_t)((l - e->l[0]) % MAX_L);
    ops[3].kind = HEARTH_OP_MATMUL;
    mm = &ops[3].u.matmul;
    mm->n_w = 1;
    mm->x = l->att;
    mm->w[0] = e->wo;
    mm->y[0] = l->tmp;
    ops[4].kind = HEARTH_OP_ADD;
    ops[4].u.add = (struct hearth_op_add){l->x, l->tmp, {0}, 1e-5f};
    return 5;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * One decode step on stream s: x of layer 0 <- x0, then layers 0..n-1 (each
 * on its own x and cache), layer i + 1's x taken from layer i's by a get/set
 * round trip only at the end (the blocks stay in one submission). Returns
 * layer n-1's x in out. *host_s += the time spent in graph_run calls.
 */
static void step(struct env *e, int s, int n_layers, int pos0, const float *x0, float *out,
                 double *host_s, int repeat_layer0)
{
    struct hearth_op ops[5];
    for (int i = 0; i < n_layers; i++)
        CHECK_OK(backend_buffer_set(e->l[s][i].x.buf, 0, x0, E * sizeof(float)));
    double t0 = now_s();
    for (int i = 0; i < n_layers; i++) {
        int n = attn_block(e, &e->l[s][i], pos0, ops);
        CHECK_OK(backend_stream_run(e->s[s], ops, n));
        if (i == 0 && repeat_layer0)
            CHECK_OK(backend_stream_run(e->s[s], ops, n)); /* same list twice in one submission */
    }
    *host_s += now_s() - t0;
    double t1 = now_s();
    CHECK_OK(backend_stream_synchronize(e->s[s]));
    if (getenv("VKREPLAY_TRACE"))
        printf("  stream %d pos %d: run %.0f us, sync %.0f us\n", s, pos0, (t1 - t0) * 1e6,
               (now_s() - t1) * 1e6);
    CHECK_OK(backend_buffer_get(e->l[s][n_layers - 1].x.buf, 0, out, E * sizeof(float)));
}

/*
 * Runs n_steps on both streams; fails on the first output that differs.
 * host[0..1]: graph_run time of steps 1.. per stream; host[2..3]: of step 0.
 */
static void decode_both(struct env *e, int n_layers, int n_steps, int repeat_at, double *host)
{
    float x0[E], y[2][E];
    host[0] = host[1] = host[2] = host[3] = 0;
    int first_diff = -1;
    double sum_abs = 0;
    for (int p = 0; p < n_steps; p++) {
        for (int i = 0; i < E; i++)
            x0[i] = (float)test_rng_gauss();
        for (int s = 0; s < 2; s++)
            step(e, s, n_layers, p, x0, y[s], p == 0 ? &host[2 + s] : &host[s], p == repeat_at);
        if (first_diff < 0 && memcmp(y[0], y[1], sizeof y[0]) != 0)
            first_diff = p;
        for (int i = 0; i < E; i++)
            sum_abs += (double)(y[0][i] > x0[i] ? y[0][i] - x0[i] : x0[i] - y[0][i]);
    }
    CHECK_MSG(first_diff < 0, "replay on and off differ first at step %d", first_diff);
    CHECK_MSG(sum_abs > 1e-3, "the block changed nothing (sum |y - x0| = %g)", sum_abs);
    /* the caches (and k_aux): every row written, bit for bit */
    for (int i = 0; i < n_layers; i++) {
        static unsigned char a[CTX_SPLIT * KVD * 2], b[CTX_SPLIT * KVD * 2];
        const struct hearth_tensor *t0[3] = {&e->l[0][i].kc, &e->l[0][i].vc, &e->l[0][i].kaux};
        const struct hearth_tensor *t1[3] = {&e->l[1][i].kc, &e->l[1][i].vc, &e->l[1][i].kaux};
        static const char *const name[3] = {"K cache", "V cache", "k_aux"};
        for (int j = 0; j < 3; j++) {
            if (!t0[j]->buf)
                continue;
            size_t n = t0[j]->row_stride * (size_t)t0[j]->n_rows;
            REQUIRE(n <= sizeof a);
            CHECK_OK(backend_buffer_get(t0[j]->buf, 0, a, n));
            CHECK_OK(backend_buffer_get(t1[j]->buf, 0, b, n));
            CHECK_MSG(memcmp(a, b, n) == 0, "layer %d %s differs", i, name[j]);
        }
    }
}

/* 40 decode steps of one block: bit-identical with replay on and off, recorded once. */
TEST(decode_40_steps_bit_identical)
{
    OPEN_OR_SKIP(e, 1, 0);
    double host[4];
    decode_both(&e, 1, 40, -1, host);
    struct vk_replay_stats on, off;
    vk_backend_replay_stats(e.s[0], &on);
    vk_backend_replay_stats(e.s[1], &off);
    CHECK_INT_EQ((long long)on.records, 1);
    CHECK_INT_EQ((long long)on.replays, 39);
    CHECK_INT_EQ((long long)on.walks, 0);
    CHECK_INT_EQ((long long)off.records, 0);
    CHECK_INT_EQ((long long)off.replays, 0);
    env_close(&e);
}

/*
 * Sliding window 8 over 40 positions (lo moves every step), four layers per
 * step in one submission (one recording each), layer 0's list run twice in
 * the submission at step 5 (flushes first), a dead buffer at step 20 (every
 * recording dropped and made again), a two-token list (walked, not kept).
 */
TEST(window_layers_and_invalidation)
{
    OPEN_OR_SKIP(e, 4, 8);
    double host[4];
    decode_both(&e, 4, 20, 5, host);
    struct vk_replay_stats st;
    vk_backend_replay_stats(e.s[0], &st);
    CHECK_INT_EQ((long long)st.records, 4);
    CHECK_INT_EQ((long long)st.replays, 4 * 20 + 1 - 4);
    CHECK_INT_EQ(st.cached, 4);

    /* a buffer dies: recordings may bind it, so all are dropped and re-made */
    struct hearth_buffer *b = NULL;
    CHECK_OK(backend_buffer_alloc(backend_device_buffer_type(e.dev), 256, &b));
    backend_buffer_free(b);
    float x0[E], y[2][E];
    double h = 0;
    for (int i = 0; i < E; i++)
        x0[i] = 0.5f;
    for (int s = 0; s < 2; s++)
        step(&e, s, 4, 20, x0, y[s], &h, 0);
    CHECK(memcmp(y[0], y[1], sizeof y[0]) == 0);
    vk_backend_replay_stats(e.s[0], &st);
    CHECK_INT_EQ((long long)st.records, 8);
    CHECK_INT_EQ(st.cached, 4);

    /* two tokens: not replayed, not kept */
    uint64_t walks0 = st.walks;
    struct hearth_tensor big = mk(&e, HEARTH_DTYPE_F32, E, 2, NULL);
    struct hearth_op rn;
    memset(&rn, 0, sizeof rn);
    rn.kind = HEARTH_OP_RMSNORM;
    rn.n_tok = 2;
    rn.u.rmsnorm = (struct hearth_op_rmsnorm){big, e.nw, big, 1e-5f};
    CHECK_OK(backend_stream_run(e.s[0], &rn, 1));
    CHECK_OK(backend_stream_synchronize(e.s[0]));
    vk_backend_replay_stats(e.s[0], &st);
    CHECK_INT_EQ((long long)(st.walks - walks0), 1);
    CHECK_INT_EQ(st.cached, 4);
    env_close(&e);
}

/* Host time per decode step, 30 blocks a step (SmolLM2's layer count), on and off; printed. */
TEST(host_time_per_step)
{
    OPEN_OR_SKIP(e, 30, 0);
    double host[4];
    int n_steps = 12;
    double t0 = now_s();
    decode_both(&e, 30, n_steps, -1, host);
    double wall = now_s() - t0;
    struct vk_replay_stats st;
    vk_backend_replay_stats(e.s[0], &st);
    CHECK_INT_EQ((long long)st.records, 30);
    printf("  30 attention blocks per step (lavapipe): graph_run host time per step %.0f us "
           "with replay, %.0f us without (steps 1..%d); step 0 (records) %.0f us vs %.0f us; "
           "wall of both runs %.2f s\n", host[0] / (n_steps - 1) * 1e6,
           host[1] / (n_steps - 1) * 1e6, n_steps - 1, host[2] * 1e6, host[3] * 1e6, wall);
    env_close(&e);
}

/*
 * Compressed caches (op-attention.c's kvq path, k_aux centring): 30 decode
 * steps of two layers, bit-identical caches, k_aux and outputs with replay on
 * and off; one recording per layer (pos0 == 0 too: kv_center's first flag
 * comes from the step slot), the rest replayed.
 */
static void decode_kvq_case(enum kvq_type kt, enum kvq_type vt, int ctx)
{
    OPEN_KV_OR_SKIP(e, 2, 0, ctx, kt, vt);
    double host[4];
    decode_both(&e, 2, 30, -1, host);
    struct vk_replay_stats on, off;
    vk_backend_replay_stats(e.s[0], &on);
    vk_backend_replay_stats(e.s[1], &off);
    CHECK_INT_EQ((long long)on.records, 2);
    CHECK_INT_EQ((long long)on.replays, 58);
    CHECK_INT_EQ((long long)on.walks, 0);
    CHECK_INT_EQ((long long)off.records, 0);
    env_close(&e);
}

TEST(kvq_rot4_q8_0_decode_30_steps)
{
    decode_kvq_case(KVQ_ROT4, KVQ_Q8_0, CTX);
}

TEST(kvq_rot3_rot3_decode_30_steps)
{
    decode_kvq_case(KVQ_ROT3, KVQ_ROT3, CTX);
}

/*
 * Flash-decoding active (a CTX_SPLIT-row cache: the rule splits each head's
 * positions, vulkan/attn-split.c): the split count and grid depend on the
 * cache, not the position, so the f16 block still records once over 40
 * steps and two kvq layers (a rotated V: the merge's inverse rotation) once
 * each over 30, bit-identical with replay off.
 */
TEST(split_decode_records_once)
{
    CHECK(vk_attn_pick_split(1, H, CTX_SPLIT) > 1 && vk_attn_pick_split(1, H, CTX) == 1);
    {
        OPEN_KV_OR_SKIP(e, 1, 0, CTX_SPLIT, KVQ_F16, KVQ_F16);
        double host[4];
        decode_both(&e, 1, 40, -1, host);
        struct vk_replay_stats on;
        vk_backend_replay_stats(e.s[0], &on);
        CHECK_INT_EQ((long long)on.records, 1);
        CHECK_INT_EQ((long long)on.replays, 39);
        env_close(&e);
    }
    decode_kvq_case(KVQ_ROT4, KVQ_ROT3, CTX_SPLIT);
}

TEST_MAIN(TEST_CASE(decode_40_steps_bit_identical), TEST_CASE(window_layers_and_invalidation),
          TEST_CASE(host_time_per_step), TEST_CASE(kvq_rot4_q8_0_decode_30_steps),
          TEST_CASE(kvq_rot3_rot3_decode_30_steps), TEST_CASE(split_decode_records_once))
#else
TEST(no_vulkan)
{
    TEST_SKIP("built without Vulkan");
}
TEST_MAIN(TEST_CASE(no_vulkan))
#endif
