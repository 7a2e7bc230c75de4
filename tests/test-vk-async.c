/*
 * test-vk-async: the Vulkan backend's asynchronous copies and events
 * (vulkan/command.c's submission ring, backend.c's set_async / get_async /
 * event_*), through core/backend.h as the scheduler uses them.
 *
 * Semantics checked: set_async copies src into staging when called (src may
 * change right after: the device must see the old bytes); get_async writes
 * dst only when the submission holding the copy is waited for (synchronize
 * or an event after it), so before that dst keeps its old bytes; an event is
 * the submission that its record ended, and synchronizing it waits for that
 * one and those before it, never later ones (shown by the ring's counters,
 * vk_backend_submit_stats, not by timing). Results are compared bit for bit
 * with the synchronous path (buffer set / get). streamed_prefill_counts runs
 * the scheduler's streamed prefill on vulkan0 (copy stream, staged / filled /
 * done events) against the same blocks resident there, bit for bit (as
 * test-sched-stream's vulkan_streamed_prefill does with decode steps);
 * it and model_submit_counts print the submits and waits of a prefill and of
 * a decode step (never asserted beyond what the design guarantees);
 * model_submit_counts also checks that the host staging the load and runs
 * grew stays within the device's host_staging_bytes (what the planner charges
 * the host). Skips without a Vulkan device; with HEARTH_VULKAN_VALIDATE=1 any
 * validation message fails the submit and so the case.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#ifdef HEARTH_WITH_VULKAN
#include "../vulkan/vk-internal.h"
#include "backend-registry.h"
#include "backend.h"
#include "fixtures.h"
#include "model.h"
#include "placement.h"
#include "scheduler.h"

const struct hearth_backend_ops *vk_backend_ops(void);

enum { ROWS = 4, COLS = 256, N_F = ROWS * COLS };

struct env {
    struct hearth_device *dev;
    struct hearth_stream *s;
};

static bool env_open(struct env *e)
{
    memset(e, 0, sizeof *e);
    if (fixture_asan_slow_unwind())
        return false;
    vk_keep_driver_loaded();
    const struct hearth_backend_ops *ops = vk_backend_ops();
    if (ops->device_count() < 1)
        return false;
    hearth_status st = ops->device_open(0, &e->dev);
    if (st != HEARTH_OK)
        return false;
    CHECK_OK(backend_stream_create(e->dev, &e->s));
    return e->s != NULL;
}

static void env_close(struct env *e)
{
    if (e->dev) {
        const char *first = NULL;
        int n = vk_backend_validation_errors(e->dev, &first);
        CHECK_MSG(n == 0, "%d validation messages, first: %s", n, first ? first : "");
    }
    backend_stream_destroy(e->s);
    backend_device_destroy(e->dev);
}

static struct vk_submit_stats stats(const struct env *e)
{
    struct vk_submit_stats st;
    vk_backend_submit_stats(e->dev, &st);
    return st;
}

static struct hearth_buffer *fbuf(struct env *e, size_t n_floats)
{
    struct hearth_buffer *b = NULL;
    CHECK_OK(backend_buffer_alloc(backend_device_buffer_type(e->dev), n_floats * 4, &b));
    return b;
}

static void fill(float *x, int n, float scale)
{
    for (int i = 0; i < n; i++)
        x[i] = (float)test_rng_gauss() * scale;
}

/* ADD x += y then RMSNORM of x into z (gain w), [ROWS][COLS] f32 each. */
static hearth_status run_ops(struct env *e, struct hearth_buffer *x, struct hearth_buffer *y,
                             struct hearth_buffer *w, struct hearth_buffer *z)
{
    struct hearth_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].kind = HEARTH_OP_ADD;
    ops[0].n_tok = ROWS;
    backend_tensor_2d(&ops[0].u.add.x, x, 0, HEARTH_DTYPE_F32, COLS, ROWS);
    backend_tensor_2d(&ops[0].u.add.y, y, 0, HEARTH_DTYPE_F32, COLS, ROWS);
    ops[1].kind = HEARTH_OP_RMSNORM;
    ops[1].n_tok = ROWS;
    backend_tensor_2d(&ops[1].u.rmsnorm.x, x, 0, HEARTH_DTYPE_F32, COLS, ROWS);
    backend_tensor_2d(&ops[1].u.rmsnorm.w, w, 0, HEARTH_DTYPE_F32, COLS, 1);
    backend_tensor_2d(&ops[1].u.rmsnorm.y, z, 0, HEARTH_DTYPE_F32, COLS, ROWS);
    ops[1].u.rmsnorm.eps = 1e-5f;
    return backend_stream_run(e->s, ops, 2);
}

/*
 * set_async x, y, w; ops; get_async x and z; synchronize: one submission and
 * one wait, dst untouched before synchronize, bytes equal to the buffer
 * set / get path's, and src changed after enqueue not seen.
 */
TEST(async_equals_sync)
{
    struct env e;
    if (!env_open(&e)) {
        env_close(&e);
        TEST_SKIP("no Vulkan device");
    }
    float *x = malloc(N_F * 4), *y = malloc(N_F * 4), *w = malloc(COLS * 4);
    float *x0 = malloc(N_F * 4), *y0 = malloc(N_F * 4), *w0 = malloc(COLS * 4);
    float *ra = malloc(2 * N_F * 4), *rs = malloc(2 * N_F * 4);
    REQUIRE(x && y && w && x0 && y0 && w0 && ra && rs);
    test_rng_seed(5);
    fill(x, N_F, 1.0f);
    fill(y, N_F, 0.5f);
    fill(w, COLS, 1.0f);
    memcpy(x0, x, N_F * 4);
    memcpy(y0, y, N_F * 4);
    memcpy(w0, w, COLS * 4);
    struct hearth_buffer *b[8];
    for (int i = 0; i < 8; i++)
        b[i] = fbuf(&e, i % 4 == 2 ? COLS : N_F);
    REQUIRE(b[7] != NULL);
    /* sync path on b[4..8) */
    CHECK_OK(backend_buffer_set(b[4], 0, x0, N_F * 4));
    CHECK_OK(backend_buffer_set(b[5], 0, y0, N_F * 4));
    CHECK_OK(backend_buffer_set(b[6], 0, w0, COLS * 4));
    CHECK_OK(run_ops(&e, b[4], b[5], b[6], b[7]));
    CHECK_OK(backend_stream_synchronize(e.s));
    CHECK_OK(backend_buffer_get(b[4], 0, rs, N_F * 4));
    CHECK_OK(backend_buffer_get(b[7], 0, rs + N_F, N_F * 4));
    /* async path on b[0..4) */
    struct vk_submit_stats s0 = stats(&e);
    CHECK_OK(backend_stream_set_async(e.s, b[0], 0, x, N_F * 4));
    CHECK_OK(backend_stream_set_async(e.s, b[1], 0, y, N_F * 4));
    CHECK_OK(backend_stream_set_async(e.s, b[2], 0, w, COLS * 4));
    /* copied at enqueue: these changes must not reach the device */
    for (int i = 0; i < N_F; i++)
        x[i] = y[i] = 1234.0f;
    for (int i = 0; i < COLS; i++)
        w[i] = -1.0f;
    CHECK_OK(run_ops(&e, b[0], b[1], b[2], b[3]));
    for (int i = 0; i < 2 * N_F; i++)
        ra[i] = -7.0f;
    CHECK_OK(backend_stream_get_async(e.s, b[0], 0, ra, N_F * 4));
    CHECK_OK(backend_stream_get_async(e.s, b[3], 0, ra + N_F, N_F * 4));
    struct vk_submit_stats s1 = stats(&e);
    CHECK_MSG(s1.submits == s0.submits && s1.waits == s0.waits,
              "enqueueing submitted %llu times, waited %llu times",
              (unsigned long long)(s1.submits - s0.submits),
              (unsigned long long)(s1.waits - s0.waits));
    CHECK_MSG(ra[0] == -7.0f && ra[2 * N_F - 1] == -7.0f, "dst written before synchronize");
    CHECK_OK(backend_stream_synchronize(e.s));
    struct vk_submit_stats s2 = stats(&e);
    CHECK_INT_EQ((int)(s2.submits - s1.submits), 1);
    CHECK_INT_EQ((int)(s2.waits - s1.waits), 1);
    CHECK_MSG(memcmp(ra, rs, 2 * N_F * 4) == 0, "async results differ from the sync path's");
    /* and x + y is what the host computes (one float add, exact) */
    int bad = 0;
    for (int i = 0; i < N_F; i++)
        bad += ra[i] != x0[i] + y0[i];
    CHECK_INT_EQ(bad, 0);
    for (int i = 0; i < 8; i++)
        backend_buffer_free(b[i]);
    free(x), free(y), free(w), free(x0), free(y0), free(w0), free(ra), free(rs);
    env_close(&e);
}

/*
 * Copy A, get_async A, record ev1; copy B, ops, get_async, record ev2.
 * Synchronizing ev1 waits once, leaves ev2's submission unwaited, and A's
 * readback is there; ev1 again waits for nothing; ev2 is then recorded again
 * and destroyed unsynchronized; synchronize finishes everything.
 */
TEST(event_waits_only_to_its_point)
{
    struct env e;
    if (!env_open(&e)) {
        env_close(&e);
        TEST_SKIP("no Vulkan device");
    }
    float *a = malloc(N_F * 4), *ra = malloc(N_F * 4), *rb = malloc(N_F * 4);
    float *y = malloc(N_F * 4), *w = malloc(COLS * 4);
    REQUIRE(a && ra && rb && y && w);
    test_rng_seed(9);
    fill(a, N_F, 1.0f);
    fill(y, N_F, 1.0f);
    fill(w, COLS, 1.0f);
    struct hearth_buffer *ba = fbuf(&e, N_F), *by = fbuf(&e, N_F), *bw = fbuf(&e, COLS),
                         *bz = fbuf(&e, N_F);
    struct hearth_event *ev1 = NULL, *ev2 = NULL, *ev0 = NULL;
    REQUIRE(ba && by && bw && bz);
    CHECK_OK(backend_event_create(e.s, &ev0));
    CHECK_OK(backend_event_create(e.s, &ev1));
    CHECK_OK(backend_event_create(e.s, &ev2));
    REQUIRE(ev0 && ev1 && ev2);
    CHECK_OK(backend_stream_synchronize(e.s));
    /* recorded with nothing enqueued: its point is already complete */
    CHECK_OK(backend_event_record(ev0));
    struct vk_submit_stats s0 = stats(&e);
    CHECK_OK(backend_event_synchronize(ev0));
    CHECK_INT_EQ((int)(stats(&e).waits - s0.waits), 0);

    CHECK_OK(backend_stream_set_async(e.s, ba, 0, a, N_F * 4));
    memset(ra, 0, N_F * 4);
    CHECK_OK(backend_stream_get_async(e.s, ba, 0, ra, N_F * 4));
    CHECK_OK(backend_event_record(ev1));
    struct vk_submit_stats s1 = stats(&e);
    CHECK_INT_EQ((int)(s1.submits - s0.submits), 1);
    CHECK_OK(backend_stream_set_async(e.s, by, 0, y, N_F * 4));
    CHECK_OK(backend_stream_set_async(e.s, bw, 0, w, COLS * 4));
    CHECK_OK(run_ops(&e, ba, by, bw, bz));
    CHECK_OK(backend_stream_get_async(e.s, bz, 0, rb, N_F * 4));
    CHECK_OK(backend_event_record(ev2));
    struct vk_submit_stats s2 = stats(&e);
    CHECK_INT_EQ((int)(s2.submits - s1.submits), 1);
    CHECK_INT_EQ((int)(s2.waits - s0.waits), 0);

    CHECK_OK(backend_event_synchronize(ev1));
    struct vk_submit_stats s3 = stats(&e);
    CHECK_INT_EQ((int)(s3.waits - s2.waits), 1);
    CHECK_MSG(s3.done < s3.submits, "ev1 drained the stream: %llu of %llu submissions done",
              (unsigned long long)s3.done, (unsigned long long)s3.submits);
    CHECK_MSG(memcmp(ra, a, N_F * 4) == 0, "readback before ev1 not there after it");
    /* twice: nothing more to wait for */
    CHECK_OK(backend_event_synchronize(ev1));
    CHECK_INT_EQ((int)(stats(&e).waits - s3.waits), 0);
    /* ev2 recorded again with nothing new: the same point; then dropped unsynchronized */
    CHECK_OK(backend_event_record(ev2));
    CHECK_INT_EQ((int)(stats(&e).submits - s3.submits), 0);
    backend_event_destroy(ev2);
    CHECK_OK(backend_stream_synchronize(e.s));
    CHECK_INT_EQ((int)(stats(&e).done), (int)stats(&e).submits);
    /* z = rmsnorm(a + y) * w: compare with the sync path on the same inputs */
    float *ref = malloc(N_F * 4);
    REQUIRE(ref);
    CHECK_OK(backend_buffer_set(ba, 0, a, N_F * 4));
    CHECK_OK(run_ops(&e, ba, by, bw, bz));
    CHECK_OK(backend_buffer_get(bz, 0, ref, N_F * 4));
    CHECK_MSG(memcmp(ref, rb, N_F * 4) == 0, "event-path result differs from the sync path's");
    free(ref);
    backend_event_destroy(ev0);
    backend_event_destroy(ev1);
    backend_buffer_free(ba);
    backend_buffer_free(by);
    backend_buffer_free(bw);
    backend_buffer_free(bz);
    free(a), free(ra), free(rb), free(y), free(w);
    env_close(&e);
}

/*
 * The scheduler's protocol across two streams of one device: the copy
 * stream uploads and records `filled`; the compute stream synchronizes it on
 * the host, runs ops reading the upload, records `done`; the copy stream
 * waits `done` before overwriting. Two rounds over one buffer pair.
 */
TEST(two_streams_protocol)
{
    struct env e;
    if (!env_open(&e)) {
        env_close(&e);
        TEST_SKIP("no Vulkan device");
    }
    struct hearth_stream *cs = NULL;
    CHECK_OK(backend_stream_create(e.dev, &cs));
    float *y[2], *x = malloc(N_F * 4), *w = malloc(COLS * 4), *got[2], *ref = malloc(N_F * 4);
    REQUIRE(cs && x && w && ref);
    test_rng_seed(21);
    fill(x, N_F, 1.0f);
    fill(w, COLS, 1.0f);
    for (int r = 0; r < 2; r++) {
        y[r] = malloc(N_F * 4);
        got[r] = malloc(N_F * 4);
        REQUIRE(y[r] && got[r]);
        fill(y[r], N_F, 1.0f);
    }
    struct hearth_buffer *bx = fbuf(&e, N_F), *by = fbuf(&e, N_F), *bw = fbuf(&e, COLS),
                         *bz = fbuf(&e, N_F);
    REQUIRE(bx && by && bw && bz);
    struct hearth_event *filled = NULL, *done = NULL;
    CHECK_OK(backend_event_create(cs, &filled));
    CHECK_OK(backend_event_create(e.s, &done));
    REQUIRE(filled && done);
    CHECK_OK(backend_buffer_set(bw, 0, w, COLS * 4));
    for (int r = 0; r < 2; r++) {
        CHECK_OK(backend_event_synchronize(done));
        CHECK_OK(backend_buffer_set(bx, 0, x, N_F * 4));
        CHECK_OK(backend_stream_set_async(cs, by, 0, y[r], N_F * 4));
        CHECK_OK(backend_event_record(filled));
        CHECK_OK(backend_event_synchronize(filled));
        CHECK_OK(run_ops(&e, bx, by, bw, bz));
        CHECK_OK(backend_event_record(done));
        CHECK_OK(backend_stream_get_async(e.s, bz, 0, got[r], N_F * 4));
    }
    CHECK_OK(backend_stream_synchronize(e.s));
    CHECK_OK(backend_stream_synchronize(cs));
    for (int r = 0; r < 2; r++) {
        CHECK_OK(backend_buffer_set(bx, 0, x, N_F * 4));
        CHECK_OK(backend_buffer_set(by, 0, y[r], N_F * 4));
        CHECK_OK(run_ops(&e, bx, by, bw, bz));
        CHECK_OK(backend_buffer_get(bz, 0, ref, N_F * 4));
        CHECK_MSG(memcmp(ref, got[r], N_F * 4) == 0, "round %d differs from the sync path", r);
    }
    backend_event_destroy(filled);
    backend_event_destroy(done);
    backend_buffer_free(bx);
    backend_buffer_free(by);
    backend_buffer_free(bw);
    backend_buffer_free(bz);
    for (int r = 0; r < 2; r++)
        free(y[r]), free(got[r]);
    free(x), free(w), free(ref);
    backend_stream_destroy(cs);
    env_close(&e);
}

/*
 * Twelve uploads of 384 KiB fill frames' 1 MiB staging two at a time, so
 * the recording moves on six times and wraps the ring (VK_FRAMES frames):
 * staging exhaustion submits and frame reuse waits, and every byte arrives.
 */
TEST(staging_wraps_the_ring)
{
    struct env e;
    if (!env_open(&e)) {
        env_close(&e);
        TEST_SKIP("no Vulkan device");
    }
    enum { N_UP = 12, UP_F = 96 * 1024 };
    float *h = malloc((size_t)N_UP * UP_F * 4), *r = malloc((size_t)N_UP * UP_F * 4);
    REQUIRE(h && r);
    test_rng_seed(33);
    fill(h, N_UP * UP_F, 1.0f);
    struct hearth_buffer *b = fbuf(&e, (size_t)N_UP * UP_F);
    REQUIRE(b);
    struct vk_submit_stats s0 = stats(&e);
    for (int i = 0; i < N_UP; i++)
        CHECK_OK(backend_stream_set_async(e.s, b, (size_t)i * UP_F * 4, h + (size_t)i * UP_F,
                                          UP_F * 4));
    struct vk_submit_stats s1 = stats(&e);
    CHECK_MSG(s1.submits - s0.submits >= VK_FRAMES && s1.waits > s0.waits,
              "%llu submits, %llu waits while enqueueing",
              (unsigned long long)(s1.submits - s0.submits),
              (unsigned long long)(s1.waits - s0.waits));
    CHECK_OK(backend_buffer_get(b, 0, r, (size_t)N_UP * UP_F * 4));
    CHECK_MSG(memcmp(h, r, (size_t)N_UP * UP_F * 4) == 0, "uploaded bytes differ");
    printf("  %d uploads of %d KiB: %llu submits, %llu waits while enqueueing\n", N_UP,
           UP_F * 4 / 1024, (unsigned long long)(s1.submits - s0.submits),
           (unsigned long long)(s1.waits - s0.waits));
    backend_buffer_free(b);
    free(h), free(r);
    env_close(&e);
}

/*
 * SmolLM2 with layers 0-1 on vulkan0 (the rest and the output on the CPU):
 * submits and waits of an 8-token prefill and of each decode step, printed
 * (the figures docs/vulkan.md quotes). Asserted: a decode step waits at most
 * as often as it submits, submits exactly once with the default placement
 * (the synchronize of the move out of vulkan0: the move in does not
 * synchronize, so its upload joins that submission), and nothing is left in flight once
 * its logits are read (the readback ran, so every submission was retired).
 */
TEST(model_submit_counts)
{
    struct hearth_device *gpu = NULL;
    if (fixture_asan_slow_unwind())
        TEST_SKIP("lavapipe under ASan with slow unwinding");
    vk_keep_driver_loaded();
    if (reg_device_open("vulkan0", &gpu) != HEARTH_OK)
        TEST_SKIP("no vulkan0 here: %s", hearth_last_error());
    struct model *m = fixture_model(TEST_SMOLLM2);
    struct hearth_device *devs[2] = {fixture_cpu_device("cpu", 2), gpu};
    struct placement *pl = NULL;
    if (m && devs[0])
        CHECK_OK(placement_create(m->hp.n_layer, 0, &pl));
    if (pl) {
        /* HEARTH_TEST_VK_ASYNC_NGL=n (measurements): n layers on vulkan0 instead of 2 */
        const char *ngl_env = getenv("HEARTH_TEST_VK_ASYNC_NGL");
        char *end = NULL;
        long ngl = ngl_env ? strtol(ngl_env, &end, 10) : 2;
        if (!ngl_env || end == ngl_env || *end || ngl < 1 || ngl > (long)m->hp.n_layer)
            ngl = 2;
        CHECK_OK(placement_from_ngl(pl, (int)ngl, 1, 0));
        struct sched_params p = sched_params_default();
        p.n_ctx = 32;
        p.n_batch = 8;
        p.n_devices = 2;
        p.devices = devs;
        p.placement = pl;
        p.map_host_weights = false;
        struct sched *s = NULL;
        CHECK_OK(sched_create(m, &p, &s));
        const size_t V = m->hp.n_vocab;
        float *lg = malloc(V * 4);
        REQUIRE(lg);
        int32_t toks[8] = {1, 504, 3136, 282, 260, 5640, 30, 2205};
        struct vk_submit_stats a, b;
        vk_backend_submit_stats(gpu, &a);
        if (s)
            CHECK_OK(sched_eval(s, toks, 8, 0, lg, false));
        vk_backend_submit_stats(gpu, &b);
        printf("  prefill of 8 tokens: %llu submits, %llu waits\n",
               (unsigned long long)(b.submits - a.submits),
               (unsigned long long)(b.waits - a.waits));
        for (int i = 0; s && i < 3; i++) {
            int32_t t = 0;
            for (size_t v = 1; v < V; v++)
                if (lg[v] > lg[t])
                    t = (int32_t)v;
            vk_backend_submit_stats(gpu, &a);
            CHECK_OK(sched_eval(s, &t, 1, 8 + i, lg, false));
            vk_backend_submit_stats(gpu, &b);
            printf("  decode step %d: %llu submits, %llu waits\n", i,
                   (unsigned long long)(b.submits - a.submits),
                   (unsigned long long)(b.waits - a.waits));
            CHECK(b.waits - a.waits <= b.submits - a.submits);
            CHECK(b.done == b.submits); /* the logits were read: nothing left in flight */
            /* default placement: one submit per scheduler synchronize (was 3 when every copy
             * submitted and waited, 2 while the move in synchronized too) */
            CHECK_MSG(getenv("HEARTH_TEST_VK_ASYNC_NGL") || b.submits - a.submits == 1,
                      "decode step %d: %llu submits, expected 1", i,
                      (unsigned long long)(b.submits - a.submits));
        }
        /* the staging the loads and runs grew stays within what the planner charges the host */
        struct hearth_device_props gp;
        backend_device_props(gpu, &gp);
        printf("  host staging: %llu KiB of at most %llu KiB\n",
               (unsigned long long)(b.staging_bytes >> 10),
               (unsigned long long)(gp.host_staging_bytes >> 10));
        CHECK(b.staging_bytes > 0 && b.staging_bytes <= gp.host_staging_bytes);
        free(lg);
        sched_destroy(s);
    }
    placement_free(pl);
    backend_device_destroy(devs[0]);
    const char *first = NULL;
    int n = vk_backend_validation_errors(gpu, &first);
    CHECK_MSG(n == 0, "%d validation messages, first: %s", n, first ? first : "");
    backend_device_destroy(gpu);
    model_free(m);
}

/* An 8-token prefill of SmolLM2 under pl on (cpu, gpu); logits of the last token to lg. */
static struct sched *prefill_on(struct model *m, struct hearth_device **devs,
                                const struct placement *pl, float *lg, struct vk_submit_stats *d)
{
    struct vk_submit_stats a, b;
    struct sched_params p = sched_params_default();
    p.n_ctx = 32;
    p.n_batch = 8;
    p.n_devices = 2;
    p.devices = devs;
    p.placement = pl;
    p.map_host_weights = false;
    struct sched *s = NULL;
    CHECK_OK(sched_create(m, &p, &s));
    int32_t toks[8] = {1, 504, 3136, 282, 260, 5640, 30, 2205};
    vk_backend_submit_stats(devs[1], &a);
    if (s)
        CHECK_OK(sched_eval(s, toks, 8, 0, lg, false));
    vk_backend_submit_stats(devs[1], &b);
    d->submits = b.submits - a.submits;
    d->waits = b.waits - a.waits;
    return s;
}

/*
 * The scheduler's streamed prefill on vulkan0 (layer 0 there, the FFN of
 * layers 2-4 on the CPU streamed to it: set_async on its copy stream with
 * the staged/filled/done events) gives the same logits bit for bit as the
 * same FFN blocks resident on vulkan0; the submits and waits of the streamed
 * prefill are printed.
 */
TEST(streamed_prefill_counts)
{
    struct hearth_device *gpu = NULL;
    if (fixture_asan_slow_unwind())
        TEST_SKIP("lavapipe under ASan with slow unwinding");
    vk_keep_driver_loaded();
    if (reg_device_open("vulkan0", &gpu) != HEARTH_OK)
        TEST_SKIP("no vulkan0 here: %s", hearth_last_error());
    struct model *m = fixture_model(TEST_SMOLLM2);
    struct hearth_device *devs[2] = {fixture_cpu_device("cpu", 2), gpu};
    struct placement *str = NULL, *res = NULL;
    if (m && devs[0]) {
        CHECK_OK(placement_create(m->hp.n_layer, 0, &str));
        CHECK_OK(placement_create(m->hp.n_layer, 0, &res));
    }
    if (str && res) {
        CHECK_OK(placement_from_ngl(str, 1, 1, 0));
        CHECK_OK(placement_from_ngl(res, 1, 1, 0));
        for (uint32_t il = 2; il < 5 && il < str->n_layer; il++) {
            placement_set_stream(str, il, PLACEMENT_FFN, 1);
            placement_set_stream(str, il, PLACEMENT_FFN_DOWN, 1);
            placement_set(res, il, PLACEMENT_FFN, 1);
            placement_set(res, il, PLACEMENT_FFN_DOWN, 1);
        }
        str->stream_min_batch = 8;
        const size_t V = m->hp.n_vocab;
        float *ls = malloc(V * 4), *lr = malloc(V * 4);
        REQUIRE(ls && lr);
        struct vk_submit_stats cr = {0}, cs = {0};
        struct sched *sr = prefill_on(m, devs, res, lr, &cr);
        struct sched *ss = prefill_on(m, devs, str, ls, &cs);
        if (ss && sr) {
            CHECK(sched_n_streamed_bytes(ss) > 0);
            CHECK_MSG(memcmp(ls, lr, V * 4) == 0, "streamed logits differ from resident ones");
        }
        printf("  prefill of 8 tokens, FFN 2-4 resident: %llu submits, %llu waits; streamed: "
               "%llu submits, %llu waits\n", (unsigned long long)cr.submits,
               (unsigned long long)cr.waits, (unsigned long long)cs.submits,
               (unsigned long long)cs.waits);
        free(ls);
        free(lr);
        sched_destroy(ss);
        sched_destroy(sr);
    }
    placement_free(str);
    placement_free(res);
    backend_device_destroy(devs[0]);
    const char *first = NULL;
    int n = vk_backend_validation_errors(gpu, &first);
    CHECK_MSG(n == 0, "%d validation messages, first: %s", n, first ? first : "");
    backend_device_destroy(gpu);
    model_free(m);
}

TEST_MAIN(TEST_CASE(async_equals_sync), TEST_CASE(event_waits_only_to_its_point),
          TEST_CASE(two_streams_protocol), TEST_CASE(staging_wraps_the_ring),
          TEST_CASE(model_submit_counts), TEST_CASE(streamed_prefill_counts))
#else
TEST(no_vulkan)
{
    TEST_SKIP("built without Vulkan");
}
TEST_MAIN(TEST_CASE(no_vulkan))
#endif
