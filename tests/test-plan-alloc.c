/*
 * test-plan-alloc: the plan is the allocation (issue #6).
 *
 *  - SmolLM2 planned onto the host CPU plus a second CPU device that uploads
 *    every weight (map_host_weights false, so weights are really allocated),
 *    for -ngl 10, -ngl all+head, a planner placement that spills and one
 *    that fits, KV f16 and q8_0, contexts 128 and 512: the bytes every
 *    device's buffer types gave out (counted by the allocation hook) equal
 *    plan_device_alloc_bytes and sched_device_bytes, exactly; no allocation
 *    is attributed to any other device.
 *  - the same on vulkan0 when it opens (lavapipe in CI), else skipped, and a
 *    replan there when it gives out only 40 MiB of the 1 GiB it was said to have;
 *    there the backend's own host staging (props.host_staging_bytes, 4 x 64
 *    MiB) is in the host's planned bytes and not in what the loader allocates,
 *    and a CPU device has none.
 *  - replan on OOM: a device that fails once it has given out N bytes; the
 *    load succeeds after a replan whose budget is what it had, the note says
 *    "replanned: cpu-b had ... MiB, not ... MiB", the final allocation fits
 *    in N and equals the plan; a manual -ngl that cannot fit is DEVICE_OOM.
 *  - budgets that split a layer's FFN (gate/up on cpu-b, down on the host,
 *    and the reverse with its wider GLU staging charged to the budget):
 *    allocated == planned, the placement and the reasons say the split.
 *  - a plan that streams host FFN weights for prefill (a small budget on
 *    cpu-b, and on vulkan0 when it opens): the plan reserves the double
 *    buffer, the placement streams whole FFN blocks, allocated == planned on
 *    every device exactly (the two stream halves, and the upload staging the
 *    scheduler keeps for streaming where it uploads weights; a device that
 *    maps them copies straight from the mapping); a 40-token prefill streams and
 *    a decode step after it does not; with --no-stream nothing is reserved.
 *  - an exact KV window (--kv-window) with compressed caches (rot4, q8_0), one
 *    and three sequences: the rings (plan_kv_window_bytes per layer and
 *    sequence) are allocated as planned on both devices, exactly; on Gemma 3
 *    the local layers' rings are their 512-position window and slack, and
 *    they have no K/V rows, as planned; with swa_full they keep their rows
 *    beside the same rings (rot4), or rows and no ring (f16), as planned.
 *  - the bandwidth cache: store, replace, look up; measured figures reach the
 *    plan as "measured"; a malformed or unreadable file is ignored with a
 *    note that reaches the plan's reasons; a CPU device measures > 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend-registry.h"
#include "backend.h"
#include "bandwidth.h"
#include "engine.h"
#include "fixtures.h"
#include "kv-quant.h"
#include "model.h"
#include "plan-env.h"
#include "plan.h"
#include "test.h"

#define N_DEV_MAX 2

/* Bytes given out per device of devs, by the allocation hook. */
struct count_state {
    struct hearth_device *devs[N_DEV_MAX];
    struct hearth_buffer_type *host_bt[N_DEV_MAX]; /* a device's pinned host type may
                                                      name no device (Vulkan's) */
    int n_dev;
    uint64_t bytes[N_DEV_MAX];
    uint64_t other;
    /* failure injection: device fail_dev gives out at most limit bytes per load */
    int fail_dev;
    uint64_t limit;
    uint64_t used;
    int failures;
};

static hearth_status count_hook(void *user, struct hearth_buffer_type *bt, size_t size)
{
    struct count_state *c = user;
    int d = -1;
    for (int i = 0; i < c->n_dev; i++)
        if (bt->dev == c->devs[i] || bt == c->host_bt[i])
            d = i;
    if (d >= 0 && d == c->fail_dev) {
        if (c->used + size > c->limit) {
            c->used = 0; /* a failed load frees everything; the next one starts afresh */
            c->failures++;
            return HEARTH_ERR_DEVICE_OOM;
        }
        c->used += size;
    }
    if (d < 0)
        c->other += size;
    else
        c->bytes[d] += size;
    return HEARTH_OK;
}

static void count_init(struct count_state *c, struct hearth_device **devs)
{
    for (int i = 0; i < N_DEV_MAX; i++) {
        c->devs[i] = devs[i];
        c->host_bt[i] = backend_device_host_buffer_type(devs[i]);
    }
    c->n_dev = N_DEV_MAX;
}

/* The host plus one "GPU" description of device dev named name with the given budget. */
static void describe(struct plan_devices *pd, struct hearth_device *dev, const char *name,
                     enum plan_dev_kind kind, uint64_t budget)
{
    struct hearth_device_props props;
    backend_device_props(dev, &props);
    plan_devices_init(pd);
    pd->dev[PLAN_HOST].budget_bytes = 64ull << 30;
    struct plan_device *g = &pd->dev[pd->n++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    g->kind = kind;
    g->budget_bytes = budget;
    g->mem_bw = 200e9;
    g->flops = 10e12;
    g->h2d_bw = 16e9;
    g->maps_weights = props.host_memory;
    g->host_staging_bytes = props.host_staging_bytes; /* as engine.c describes it */
    g->max_buffer_bytes = backend_device_max_buffer(dev);
}

/* Options check_load adds to the plan (the window case; 0 elsewhere). */
static uint32_t g_kv_window, g_n_parallel;
static bool g_swa_full;
/* plan_device_alloc_bytes of the last check_load, per device, where its head ran, in parts */
static uint64_t g_planned[2];
static int g_out_dev;
static int g_out_parts;

/* One load through engine__load_planned, checked device by device. */
static void check_load(const struct model *m, struct hearth_device **devs, const char *gpu_name,
                       enum plan_dev_kind kind, uint64_t budget, int ngl, int kv, uint32_t ctx,
                       bool map_host, bool expect_split)
{
    struct count_state c;
    memset(&c, 0, sizeof c);
    count_init(&c, devs);
    c.fail_dev = -1;
    struct engine_load in;
    memset(&in, 0, sizeof in);
    in.m = m;
    in.n_dev = 2;
    in.devices = devs;
    describe(&in.devs, devs[1], gpu_name, kind, budget);
    plan_opts_default(&in.opts);
    in.opts.n_ctx = ctx;
    in.opts.n_batch = 64;
    in.opts.kv_type_k = in.opts.kv_type_v = kv;
    in.opts.n_gpu_layers = ngl;
    in.opts.kv_window = g_kv_window;
    in.opts.swa_full = g_swa_full;
    if (g_n_parallel)
        in.opts.n_parallel = g_n_parallel;
    in.map_host_weights = map_host;
    struct sched *s = NULL;
    struct placement *pl = NULL;
    struct plan plan;
    char how[256];
    backend_set_alloc_hook(count_hook, &c);
    hearth_status st = engine__load_planned(&in, &s, &pl, &plan, how, sizeof how);
    backend_set_alloc_hook(NULL, NULL);
    CHECK_OK(st);
    if (st != HEARTH_OK)
        return;
    char what[128];
    snprintf(what, sizeof what, "%s ngl %d kv %s ctx %u window %u seq %u%s", gpu_name, ngl,
             kvq_type_name((enum kvq_type)kv), ctx, g_kv_window, g_n_parallel,
             map_host ? " mapped" : "");
    CHECK_MSG(s != NULL, "%s: no scheduler", what);
    CHECK_MSG(how[0] == '\0', "%s: unexpected note '%s'", what, how);
    for (int d = 0; d < 2; d++) {
        uint64_t want = plan_device_alloc_bytes(&plan, d);
        g_planned[d] = want;
        CHECK_MSG(c.bytes[d] == want, "%s: device %d allocated %llu, plan %llu (diff %lld)", what,
                  d, (unsigned long long)c.bytes[d], (unsigned long long)want,
                  (long long)(c.bytes[d] - want));
        if (s)
            CHECK_MSG(sched_device_bytes(s, d) == want, "%s: device %d sched %llu, plan %llu",
                      what, d, (unsigned long long)sched_device_bytes(s, d),
                      (unsigned long long)want);
    }
    CHECK_MSG(c.other == 0, "%s: %llu bytes on no device", what, (unsigned long long)c.other);
    /* the placement is what was asked for */
    g_out_dev = pl ? pl->out_dev : -1;
    g_out_parts = s ? sched_output_parts(s) : 0;
    int off = placement_n_offloaded_layers(pl);
    if (ngl >= 0)
        CHECK_INT_EQ(off, ngl < (int)m->hp.n_layer ? ngl : (int)m->hp.n_layer);
    else if (expect_split) {
        int host_blocks = 0;
        for (uint32_t il = 0; il < pl->n_layer; il++)
            host_blocks += (placement_get(pl, il, PLACEMENT_ATTN) == 0) +
                           (placement_get(pl, il, PLACEMENT_FFN) == 0);
        CHECK_MSG(off > 0 && host_blocks > 0, "%s: %d layers offloaded, %d blocks on the host",
                  what, off, host_blocks);
    }
    else
        CHECK_MSG(off == (int)m->hp.n_layer && pl->out_dev == 1, "%s: %d layers offloaded",
                  what, off);
    CHECK(plan_device_alloc_bytes(&plan, 1) > 0);
    /*
     * The GPU's own host staging (backend props: 4 x 64 MiB on vulkan0, none
     * on a CPU device) is in the host's planned bytes, at its worst case, and
     * outside what the loader allocates (checked equal above).
     */
    struct hearth_device_props gp;
    backend_device_props(devs[1], &gp);
    CHECK_INT_EQ(gp.host_staging_bytes,
                 kind == PLAN_DEV_VULKAN ? (long long)PLAN_DEFAULT_VULKAN_HOST_STAGING : 0);
    CHECK_INT_EQ(plan.use[PLAN_HOST].host_staging, gp.host_staging_bytes);
    CHECK(plan.use[PLAN_HOST].total >= plan_device_alloc_bytes(&plan, PLAN_HOST) +
                                           plan.use[PLAN_HOST].host_staging);
    sched_destroy(s);
    placement_free(pl);
    plan_free(&plan);
}

TEST(cpu_pair_allocates_the_plan)
{
    struct model *m = fixture_model(TEST_SMOLLM2);
    REQUIRE(m);
    struct hearth_device *devs[2] = {fixture_cpu_device("cpu", 1), fixture_cpu_device("cpu-b", 1)};
    REQUIRE(devs[0] && devs[1]);
    const int L = (int)m->hp.n_layer;
    const int kvs[2] = {KVQ_F16, KVQ_Q8_0};
    const uint32_t ctxs[2] = {128, 512};
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < 2; c++) {
            check_load(m, devs, "cpu-b", PLAN_DEV_CPU, 4ull << 30, 10, kvs[k], ctxs[c], false,
                       false);
            check_load(m, devs, "cpu-b", PLAN_DEV_CPU, 4ull << 30, L + 1, kvs[k], ctxs[c],
                       false, false);
            check_load(m, devs, "cpu-b", PLAN_DEV_CPU, 24ull << 20, -1, kvs[k], ctxs[c], false,
                       true);
            check_load(m, devs, "cpu-b", PLAN_DEV_CPU, 4ull << 30, -1, kvs[k], ctxs[c], false,
                       false);
        }
    /* the host reading its weights from the mapping: nothing allocated for them */
    check_load(m, devs, "cpu-b", PLAN_DEV_CPU, 24ull << 20, -1, KVQ_F16, 256, true, true);
    backend_device_destroy(devs[1]);
    backend_device_destroy(devs[0]);
    model_free(m);
}

TEST(window_allocates_the_plan)
{
    struct model *m = fixture_model(TEST_SMOLLM2);
    REQUIRE(m);
    struct hearth_device *devs[2] = {fixture_cpu_device("cpu", 1), fixture_cpu_device("cpu-b", 1)};
    REQUIRE(devs[0] && devs[1]);
    const int kvs[2] = {KVQ_ROT4, KVQ_Q8_0};
    const uint32_t L = m->hp.n_layer, nkv = m->hp.n_head_kv, hd = m->hp.head_dim;
    for (int k = 0; k < 2; k++) {
        g_n_parallel = k ? 3 : 1;
        g_kv_window = 0;
        check_load(m, devs, "cpu-b", PLAN_DEV_CPU, 4ull << 30, 10, kvs[k], 128, false, false);
        const uint64_t base[2] = {g_planned[0], g_planned[1]};
        g_kv_window = 32;
        check_load(m, devs, "cpu-b", PLAN_DEV_CPU, 4ull << 30, 10, kvs[k], 128, false, false);
        /* the rings are in there: per attention layer and sequence, on its device */
        struct plan_opts o;
        plan_opts_default(&o);
        o.n_ctx = 128;
        o.kv_type_k = o.kv_type_v = kvs[k];
        o.kv_window = 32;
        const uint64_t wb = plan_kv_window_bytes(&o, 0, nkv, hd, hd);
        CHECK(wb >= 32ull * nkv * hd * 4);
        CHECK_INT_EQ(g_planned[1] - base[1], 10ull * g_n_parallel * wb);
        CHECK_INT_EQ(g_planned[0] - base[0], (uint64_t)(L - 10) * g_n_parallel * wb);
        /* a window past the context: capped at n_ctx on both sides */
        g_kv_window = 1000;
        check_load(m, devs, "cpu-b", PLAN_DEV_CPU, 4ull << 30, 10, kvs[k], 128, true, false);
    }
    /*
     * Gemma 3: a local layer's ring is its whole 512-position window and
     * the slack (plan_kv_layer_window) and it keeps no K/V rows, a global
     * layer's ring the 32 asked for; layers 0-9 (one global, layer 5) on
     * cpu-b, the rest on the host.
     */
    struct model *gm = fixture_model(TEST_GEMMA3);
    if (gm) {
        g_n_parallel = 1;
        g_kv_window = 0;
        check_load(gm, devs, "cpu-b", PLAN_DEV_CPU, 4ull << 30, 10, KVQ_ROT4, 600, true, false);
        const uint64_t base[2] = {g_planned[0], g_planned[1]};
        g_kv_window = 32;
        check_load(gm, devs, "cpu-b", PLAN_DEV_CPU, 4ull << 30, 10, KVQ_ROT4, 600, true, false);
        struct plan_opts o;
        plan_opts_default(&o);
        o.n_ctx = 600;
        o.kv_type_k = o.kv_type_v = KVQ_ROT4;
        o.kv_window = 32;
        const uint32_t gkv = gm->hp.n_head_kv, ghd = gm->hp.head_dim;
        /* each layer gains its ring; a local one loses its K and V rows (ring-only) */
        const uint64_t row = plan_kv_row_bytes(KVQ_ROT4, gkv, ghd);
        int64_t want[2] = {0, 0};
        for (uint32_t il = 0; il < gm->hp.n_layer; il++) {
            const uint32_t swa = gm->layers[il].is_swa ? gm->hp.sliding_window : 0;
            want[il < 10] += (int64_t)plan_kv_window_bytes(&o, swa, gkv, ghd, ghd);
            CHECK_INT_EQ(plan_kv_layer_codes(&o, swa), swa == 0);
            if (swa)
                want[il < 10] -= 2 * (int64_t)plan_kv_buffer_bytes(row, 600);
        }
        CHECK(plan_kv_window_bytes(&o, 512, gkv, ghd, ghd) >= 512ull * gkv * ghd * 4);
        CHECK_INT_EQ((int64_t)(g_planned[1] - base[1]), want[1]);
        CHECK_INT_EQ((int64_t)(g_planned[0] - base[0]), want[0]);
        /* --swa-full: the same rings, and the local layers keep their K and V rows */
        g_swa_full = true;
        check_load(gm, devs, "cpu-b", PLAN_DEV_CPU, 4ull << 30, 10, KVQ_ROT4, 600, true, false);
        for (uint32_t il = 0; il < gm->hp.n_layer; il++)
            if (gm->layers[il].is_swa)
                want[il < 10] += 2 * (int64_t)plan_kv_buffer_bytes(row, 600);
        CHECK_INT_EQ((int64_t)(g_planned[1] - base[1]), want[1]);
        CHECK_INT_EQ((int64_t)(g_planned[0] - base[0]), want[0]);
        /* and f16, whose local layers would otherwise keep only a ring of 576 < 600 */
        g_kv_window = 0;
        check_load(gm, devs, "cpu-b", PLAN_DEV_CPU, 4ull << 30, 10, KVQ_F16, 600, true, false);
        const uint64_t f16_full = g_planned[1];
        g_swa_full = false;
        check_load(gm, devs, "cpu-b", PLAN_DEV_CPU, 4ull << 30, 10, KVQ_F16, 600, true, false);
        o = (struct plan_opts){.n_ctx = 600}; /* f16/f16 */
        const uint64_t f16_row = plan_kv_row_bytes(KVQ_F16, gkv, ghd);
        uint64_t n_local_b = 0; /* local layers among 0-9, on cpu-b */
        for (uint32_t il = 0; il < 10; il++)
            n_local_b += gm->layers[il].is_swa;
        CHECK_INT_EQ(f16_full - g_planned[1],
                     n_local_b * (2 * plan_kv_buffer_bytes(f16_row, 600) -
                                  plan_kv_window_bytes(&o, gm->hp.sliding_window, gkv, ghd, ghd)));
        model_free(gm);
    }
    g_kv_window = 0;
    g_n_parallel = 0;
    backend_device_destroy(devs[1]);
    backend_device_destroy(devs[0]);
    model_free(m);
}

TEST(vulkan_allocates_the_plan)
{
    struct model *m = fixture_model(TEST_SMOLLM2);
    REQUIRE(m);
    struct hearth_device *devs[2] = {fixture_cpu_device("cpu", 1), NULL};
    REQUIRE(devs[0]);
    if (reg_device_open("vulkan0", &devs[1]) != HEARTH_OK) {
        backend_device_destroy(devs[0]);
        model_free(m);
        TEST_SKIP("no vulkan0 here: %s", hearth_last_error());
    }
    uint64_t fr = 0, tot = 0;
    backend_device_memory(devs[1], &fr, &tot);
    /* the reserve takes 256 MiB + 1%; these budgets leave 40 MiB and plenty */
    const uint64_t small = (256ull << 20) + (48ull << 20);
    check_load(m, devs, "vulkan0", PLAN_DEV_VULKAN, small, -1, KVQ_F16, 256, true, true);
    check_load(m, devs, "vulkan0", PLAN_DEV_VULKAN, 2ull << 30, (int)m->hp.n_layer + 1,
               KVQ_F16, 512, true, false);
    CHECK_INT_EQ(g_out_dev, 1);
    /*
     * Gemma 3's tied head is 170 MiB of Q8_0, past lavapipe's 128 MiB
     * buffers: every layer and the head go to vulkan0, the head in row
     * parts as plan_head_split_rows cuts it, planned so (allocated ==
     * planned, no failed allocation, no replan).
     */
    const uint64_t cap = backend_device_max_buffer(devs[1]);
    struct hearth_device_props vp;
    backend_device_props(devs[1], &vp);
    CHECK_INT_EQ(vp.max_buffer_bytes, cap); /* the description says what allocation enforces */
    struct model *gm = fixture_model(TEST_GEMMA3);
    if (gm && cap && cap < (uint64_t)gm->output.n_out * gm->output.row_bytes) {
        check_load(gm, devs, "vulkan0", PLAN_DEV_VULKAN, 2ull << 30, (int)gm->hp.n_layer + 1,
                   KVQ_F16, 256, true, false);
        CHECK_INT_EQ(g_out_dev, 1);
        const uint64_t rows = plan_head_split_rows(gm->output.row_bytes,
                                                   (uint64_t)gm->output.n_out, cap);
        CHECK(rows > 0 && rows < (uint64_t)gm->output.n_out);
        CHECK_INT_EQ(g_out_parts, rows ? ((uint64_t)gm->output.n_out + rows - 1) / rows : 0);
        CHECK(g_out_parts >= 2);
    } else {
        printf("  gemma3 case skipped: %s\n", gm ? "vulkan0 holds its head in one buffer"
                                                  : "no gemma3 model");
    }
    model_free(gm);
    check_load(m, devs, "vulkan0", PLAN_DEV_VULKAN, 2ull << 30, 6, KVQ_F16, 128, true, false);
    if (backend_device_supports_kv(devs[1], KVQ_Q8_0, KVQ_Q8_0))
        check_load(m, devs, "vulkan0", PLAN_DEV_VULKAN, 2ull << 30, -1, KVQ_Q8_0, 256, true,
                   false);
    /*
     * vulkan0 gives out 56 MiB however much it reports: one replan, then the
     * plan fits (the head, ~40 MiB with the fixed buffers, and some layers)
     */
    struct count_state c;
    memset(&c, 0, sizeof c);
    count_init(&c, devs);
    c.fail_dev = 1;
    c.limit = 56ull << 20;
    struct engine_load in;
    memset(&in, 0, sizeof in);
    in.m = m;
    in.n_dev = 2;
    in.devices = devs;
    describe(&in.devs, devs[1], "vulkan0", PLAN_DEV_VULKAN, 1ull << 30);
    plan_opts_default(&in.opts);
    in.opts.n_ctx = 256;
    in.opts.n_batch = 64;
    in.map_host_weights = true;
    struct sched *s = NULL;
    struct placement *pl = NULL;
    struct plan plan;
    char how[256];
    backend_set_alloc_hook(count_hook, &c);
    hearth_status st = engine__load_planned(&in, &s, &pl, &plan, how, sizeof how);
    backend_set_alloc_hook(NULL, NULL);
    CHECK_OK(st);
    printf("  %s\n", how);
    CHECK_MSG(strstr(how, "replanned: vulkan0 had ") && strstr(how, "not 1024 MiB"), "'%s'", how);
    if (st == HEARTH_OK) {
        CHECK(c.used == plan_device_alloc_bytes(&plan, 1) && c.used <= c.limit);
        CHECK(placement_n_offloaded_layers(pl) > 0);
        sched_destroy(s);
        placement_free(pl);
        plan_free(&plan);
    }
    backend_device_destroy(devs[1]);
    backend_device_destroy(devs[0]);
    model_free(m);
}

TEST(replan_on_oom)
{
    struct model *m = fixture_model(TEST_SMOLLM2);
    REQUIRE(m);
    struct hearth_device *devs[2] = {fixture_cpu_device("cpu", 1), fixture_cpu_device("cpu-b", 1)};
    REQUIRE(devs[0] && devs[1]);
    struct engine_load in;
    memset(&in, 0, sizeof in);
    in.m = m;
    in.n_dev = 2;
    in.devices = devs;
    describe(&in.devs, devs[1], "cpu-b", PLAN_DEV_CPU, 1ull << 30);
    plan_opts_default(&in.opts);
    in.opts.n_ctx = 256;
    in.opts.n_batch = 64;
    in.map_host_weights = false;
    /* what a load wants on cpu-b when the budget is believed */
    struct sched *s = NULL;
    struct placement *pl = NULL;
    struct plan plan;
    char how[256];
    CHECK_OK(engine__load_planned(&in, &s, &pl, &plan, how, sizeof how));
    const uint64_t full = plan_device_alloc_bytes(&plan, 1);
    const int full_layers = placement_n_offloaded_layers(pl);
    CHECK_INT_EQ(full_layers, (int)m->hp.n_layer);
    sched_destroy(s);
    placement_free(pl);
    plan_free(&plan);

    /* the device really has 45% of that (the head is about a third of SmolLM2) */
    struct count_state c;
    memset(&c, 0, sizeof c);
    count_init(&c, devs);
    c.fail_dev = 1;
    c.limit = full / 20 * 9;
    backend_set_alloc_hook(count_hook, &c);
    hearth_status st = engine__load_planned(&in, &s, &pl, &plan, how, sizeof how);
    backend_set_alloc_hook(NULL, NULL);
    CHECK_OK(st);
    printf("  %s\n", how);
    CHECK_MSG(!strncmp(how, "replanned: cpu-b had ", 21) && strstr(how, " MiB, not 1024 MiB"),
              "note: '%s'", how);
    CHECK(c.failures >= 1);
    if (st == HEARTH_OK) {
        uint64_t got = plan_device_alloc_bytes(&plan, 1);
        CHECK_MSG(c.used == got && got <= c.limit, "replanned load %llu, plan %llu, limit %llu",
                  (unsigned long long)c.used, (unsigned long long)got,
                  (unsigned long long)c.limit);
        CHECK(sched_device_bytes(s, 1) == got);
        int off = placement_n_offloaded_layers(pl);
        CHECK_MSG(off > 0 && off < full_layers, "%d layers after the replan", off);
        CHECK(plan.devs.dev[1].budget_bytes < (1ull << 30));
        sched_destroy(s);
        placement_free(pl);
        plan_free(&plan);
    }

    /* a manual -ngl that the device cannot hold: DEVICE_OOM naming the device, no leak */
    in.opts.n_gpu_layers = (int)m->hp.n_layer + 1;
    memset(&c, 0, sizeof c);
    count_init(&c, devs);
    c.fail_dev = 1;
    c.limit = full / 2;
    backend_set_alloc_hook(count_hook, &c);
    st = engine__load_planned(&in, &s, &pl, &plan, how, sizeof how);
    backend_set_alloc_hook(NULL, NULL);
    CHECK_INT_EQ(st, HEARTH_ERR_DEVICE_OOM);
    CHECK(s == NULL && pl == NULL);
    CHECK_MSG(strstr(hearth_last_error(), "cpu-b"), "%s", hearth_last_error());
    backend_device_destroy(devs[1]);
    backend_device_destroy(devs[0]);
    model_free(m);
}

TEST(bandwidth_cache)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/bwcache", test_tmp_dir());
    REQUIRE(setenv("HEARTH_CACHE_DIR", dir, 1) == 0);
    CHECK_OK(bw_cache_path(path, sizeof path));
    CHECK(!strcmp(path + strlen(dir), "/devices.txt"));
    remove(path);
    rmdir(path); /* a directory left by an earlier run */
    struct bw_entry e, got;
    char note[256];
    CHECK(!bw_cache_lookup("cpu", "x", &got, note, sizeof note));
    CHECK_STR_EQ(note, "");
    memset(&e, 0, sizeof e);
    snprintf(e.name, sizeof e.name, "vulkan0");
    snprintf(e.desc, sizeof e.desc, "Test GPU (fake)");
    e.mem_gbps = 321.25;
    e.h2d_gbps = 12.25;
    CHECK_OK(bw_cache_store(&e));
    snprintf(e.name, sizeof e.name, "cpu");
    snprintf(e.desc, sizeof e.desc, "Some CPU");
    e.mem_gbps = 20.0;
    e.h2d_gbps = 0.0;
    CHECK_OK(bw_cache_store(&e));
    e.mem_gbps = 25.0; /* replaces, does not add */
    CHECK_OK(bw_cache_store(&e));
    CHECK(bw_cache_lookup("vulkan0", "Test GPU (fake)", &got, note, sizeof note));
    CHECK_NEAR(got.mem_gbps, 321.25, 1e-9);
    CHECK_NEAR(got.h2d_gbps, 12.25, 1e-9);
    CHECK(bw_cache_lookup("cpu", "Some CPU", &got, note, sizeof note));
    CHECK_NEAR(got.mem_gbps, 25.0, 1e-9);
    CHECK(!bw_cache_lookup("vulkan0", "Another GPU", &got, note, sizeof note));
    FILE *f = fopen(path, "r");
    REQUIRE(f);
    int lines = 0;
    char buf[512];
    while (fgets(buf, sizeof buf, f))
        lines++;
    fclose(f);
    CHECK_INT_EQ(lines, 3);

    /* measured figures reach the plan and its reasons */
    struct plan_devices pd;
    plan_devices_init(&pd);
    CHECK_OK(plan_devices_add(&pd, "vulkan:8GiB:100GB/s"));
    CHECK(plan_devices_apply_cache(&pd, 0, "Some CPU"));
    CHECK(plan_devices_apply_cache(&pd, 1, "Test GPU (fake)"));
    CHECK_NEAR(pd.dev[0].mem_bw, 25e9, 1.0);
    CHECK_NEAR(pd.dev[1].mem_bw, 321.25e9, 1.0);
    CHECK_NEAR(pd.dev[1].h2d_bw, 12.25e9, 1.0);
    CHECK(pd.dev[1].mem_bw_measured && pd.dev[1].h2d_bw_measured && !pd.dev[1].h2d_bw_assumed);
    struct gguf_file *gf;
    struct plan_model pm;
    struct plan p;
    if (plan_env_model(TEST_SMOLLM2, &gf, &pm) == HEARTH_OK) {
        CHECK_OK(plan_make(&pm, &pd, NULL, &p));
        CHECK_MSG(plan_env_reason(&p, "321 GB/s, measured", NULL),
                  "no reason says the measured vulkan0 figure");
        plan_free(&p);
    }

    /* a malformed file: ignored with a note naming the line, reaching the plan */
    REQUIRE(plan_env_write(path, "# hearth devices v1\nvulkan0\t321.25\tfast\tTest GPU (fake)\n"));
    CHECK(!bw_cache_lookup("vulkan0", "Test GPU (fake)", &got, note, sizeof note));
    CHECK_MSG(strstr(note, "line 2") && strstr(note, "ignored"), "note: %s", note);
    REQUIRE(plan_env_write(path, "not a header\n"));
    CHECK(!bw_cache_lookup("vulkan0", "Test GPU (fake)", &got, note, sizeof note));
    CHECK_MSG(strstr(note, "line 1"), "note: %s", note);
    plan_devices_init(&pd);
    CHECK(!plan_devices_apply_cache(&pd, 0, "Some CPU"));
    CHECK(pd.dev[0].mem_bw_assumed);
    CHECK_MSG(strstr(pd.cache_note, "devices.txt line 1"), "%s", pd.cache_note);
    if (pm.n_tensors) {
        CHECK_OK(plan_make(&pm, &pd, NULL, &p));
        CHECK(plan_env_reason(&p, "bandwidth cache", NULL));
        plan_free(&p);
    }
    /* storing over a malformed file replaces it */
    CHECK_OK(bw_cache_store(&e));
    CHECK(bw_cache_lookup("cpu", "Some CPU", &got, note, sizeof note));
    /* unreadable: a directory where the file should be */
    remove(path);
    REQUIRE(mkdir(path, 0755) == 0);
    CHECK(!bw_cache_lookup("cpu", "Some CPU", &got, note, sizeof note));
    CHECK_MSG(note[0] != '\0', "no note for an unreadable cache");
    CHECK(bw_cache_store(&e) != HEARTH_OK);
    rmdir(path);

    /* a real measurement of a CPU device */
    struct hearth_device *dev = fixture_cpu_device("cpu", 1);
    REQUIRE(dev);
    CHECK_OK(bw_measure_device(dev, &e));
    CHECK(e.mem_gbps > 0.1 && e.h2d_gbps == 0.0);
    CHECK_STR_EQ(e.name, "cpu");
    backend_device_destroy(dev);
    plan_env_model_close(gf, &pm);
    unsetenv("HEARTH_CACHE_DIR");
}

/*
 * Loads m onto the host + cpu-b (weights uploaded, budget on cpu-b) through
 * the engine's planner, checking allocated == planned bytes on each device;
 * the caller inspects and frees *pl and *plan.
 */
static bool load_counted(const struct model *m, struct hearth_device **devs, uint64_t budget,
                         struct placement **pl, struct plan *plan)
{
    struct count_state c;
    memset(&c, 0, sizeof c);
    count_init(&c, devs);
    c.fail_dev = -1;
    struct engine_load in;
    memset(&in, 0, sizeof in);
    in.m = m;
    in.n_dev = 2;
    in.devices = devs;
    describe(&in.devs, devs[1], "cpu-b", PLAN_DEV_CPU, budget);
    plan_opts_default(&in.opts);
    in.opts.n_ctx = 256;
    in.opts.n_batch = 64;
    in.opts.no_stream = true; /* the budgets below are sized for resident units only */
    in.map_host_weights = false;
    struct sched *s = NULL;
    char how[256];
    backend_set_alloc_hook(count_hook, &c);
    hearth_status st = engine__load_planned(&in, &s, pl, plan, how, sizeof how);
    backend_set_alloc_hook(NULL, NULL);
    CHECK_OK(st);
    if (st != HEARTH_OK)
        return false;
    for (int d = 0; d < 2; d++) {
        uint64_t want = plan_device_alloc_bytes(plan, d);
        CHECK_MSG(c.bytes[d] == want && sched_device_bytes(s, d) == want,
                  "budget %llu: device %d allocated %llu, sched %llu, plan %llu",
                  (unsigned long long)budget, d, (unsigned long long)c.bytes[d],
                  (unsigned long long)sched_device_bytes(s, d), (unsigned long long)want);
    }
    CHECK(c.other == 0);
    sched_destroy(s);
    return true;
}

/*
 * Budgets that force a layer's FFN to split (issue #6): built from the
 * all-on-cpu-b plan so that layer K's gate/up fits and its down does not
 * (down on the host), or the reverse (room for the down projection and the
 * wider GLU staging it brings, not for gate/up); one byte less than the
 * reverse needs keeps layer K whole on the host, so the staging is charged.
 * Each: allocated == planned per device, the placement has exactly that
 * split, and the reasons say so in words.
 */
TEST(ffn_split_allocates_the_plan)
{
    struct model *m = fixture_model(TEST_SMOLLM2);
    REQUIRE(m);
    struct hearth_device *devs[2] = {fixture_cpu_device("cpu", 1), fixture_cpu_device("cpu-b", 1)};
    REQUIRE(devs[0] && devs[1]);
    const uint32_t L = m->hp.n_layer, K = 20;
    struct placement *pl = NULL;
    struct plan full;
    struct plan_model pm;
    REQUIRE(K + 1 < L);
    REQUIRE(load_counted(m, devs, 4ull << 30, &pl, &full));
    CHECK_OK(plan_model_from_gguf(m->gguf, &pm));
    uint64_t tail = 0, up = 0, down = 0;
    for (size_t i = 0; i < pm.n_tensors; i++) {
        const struct plan_model_tensor *t = &pm.tensors[i];
        if (t->layer < (int32_t)K ||
            (t->role != PLAN_ROLE_FFN && t->role != PLAN_ROLE_FFN_NORM))
            continue;
        tail += full.tensors[i].alloc_bytes;
        if (t->layer == (int32_t)K)
            *(plan__ffn_down_part(t) ? &down : &up) += full.tensors[i].alloc_bytes;
    }
    const uint64_t total = full.use[1].total;
    const uint64_t extra = plan_glu_stage_bytes(64, m->hp.n_embd, m->hp.n_ff) -
                           plan_stage_bytes(64, m->hp.n_embd);
    printf("  layer %u: gate/up %llu bytes, down %llu, GLU staging +%llu\n", K,
           (unsigned long long)up, (unsigned long long)down, (unsigned long long)extra);
    REQUIRE(up > down + extra); /* else the reverse budget would fit gate/up too */
    placement_free(pl);
    plan_free(&full);
    const struct {
        uint64_t budget;
        int up_dev, down_dev;    /* layer K's FFN blocks */
        const char *reason;      /* "" when no split is expected */
    } cases[] = {
        {total - tail + up + down / 2, 1, 0, "ffn_gate+ffn_up on cpu-b, ffn_down on cpu "},
        {total - tail + down + extra, 0, 1, "ffn_gate+ffn_up on cpu, ffn_down on cpu-b "},
        {total - tail + down + extra - 1, 0, 0, ""},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct plan p;
        if (!load_counted(m, devs, cases[k].budget, &pl, &p))
            continue;
        CHECK_INT_EQ(placement_get(pl, K, PLACEMENT_FFN), cases[k].up_dev);
        CHECK_INT_EQ(placement_get(pl, K, PLACEMENT_FFN_DOWN), cases[k].down_dev);
        int split = 0;
        for (uint32_t il = 0; il < L; il++) {
            split += placement_get(pl, il, PLACEMENT_FFN) !=
                     placement_get(pl, il, PLACEMENT_FFN_DOWN);
            CHECK_INT_EQ(placement_get(pl, il, PLACEMENT_ATTN), 1);
            if (il < K)
                CHECK(placement_get(pl, il, PLACEMENT_FFN_DOWN) == 1);
            if (il > K)
                CHECK(placement_get(pl, il, PLACEMENT_FFN) == 0 &&
                      placement_get(pl, il, PLACEMENT_FFN_DOWN) == 0);
        }
        CHECK_INT_EQ(split, cases[k].reason[0] ? 1 : 0);
        CHECK_INT_EQ(p.layers[K].ffn_dev, cases[k].reason[0] ? -1 : 0);
        if (cases[k].reason[0]) {
            CHECK_MSG(plan_env_reason(&p, "FFN split inside layer 20:", cases[k].reason),
                      "case %zu: no reason names the split", k);
            /* the receiving device's staging holds a batch of x and of the GLU output
               (both devices upload weights here, so the rest of their staging is equal) */
            int rx = cases[k].down_dev;
            CHECK_INT_EQ(p.use[rx].staging - p.use[1 - rx].staging, extra);
        } else {
            CHECK(!plan_env_reason(&p, "FFN split", NULL));
        }
        for (size_t i = 0; i < p.n_reasons && k == 0; i++)
            if (strstr(p.reasons[i], "FFN split"))
                printf("  %s\n", p.reasons[i]);
        placement_free(pl);
        plan_free(&p);
    }
    plan_model_free(&pm);
    backend_device_destroy(devs[1]);
    backend_device_destroy(devs[0]);
    model_free(m);
}

/*
 * A streaming plan on devs[1] (budget bytes): allocated == planned on both
 * devices, blocks streamed, a prefill streams and a decode step does not.
 */
/*
 * The smallest budget from `from` up in 4 MiB steps for which the loader's
 * plan (sched_layout, n_ctx 512) streams host FFN weights; 0 if none does.
 */
static uint64_t stream_budget(const struct model *m, struct hearth_device *dev, const char *name,
                              enum plan_dev_kind kind, uint64_t from, bool map_host)
{
    struct plan_model pm;
    if (plan_model_from_gguf(m->gguf, &pm) != HEARTH_OK)
        return 0;
    uint64_t found = 0;
    for (uint64_t b = from; !found && b < from + (256ull << 20); b += 4ull << 20) {
        struct plan_devices pd;
        describe(&pd, dev, name, kind, b);
        for (int d = 0; d < pd.n; d++) /* as the loader plans */
            pd.dev[d].maps_weights = map_host && pd.dev[d].maps_weights;
        struct plan_opts o;
        plan_opts_default(&o);
        o.n_ctx = 512;
        o.n_batch = 64;
        o.sched_layout = true;
        struct plan p;
        if (plan_make(&pm, &pd, &o, &p) != HEARTH_OK)
            break;
        if (p.streaming)
            found = b;
        plan_free(&p);
    }
    plan_model_free(&pm);
    return found;
}

static void check_streaming(const struct model *m, struct hearth_device **devs, const char *name,
                            enum plan_dev_kind kind, uint64_t from, bool map_host, bool eval)
{
    const uint64_t budget = stream_budget(m, devs[1], name, kind, from, map_host);
    CHECK_MSG(budget > 0, "%s: no budget from %llu MiB on streams", name,
              (unsigned long long)(from >> 20));
    if (!budget)
        return;
    struct count_state c;
    memset(&c, 0, sizeof c);
    count_init(&c, devs);
    c.fail_dev = -1;
    struct engine_load in;
    memset(&in, 0, sizeof in);
    in.m = m;
    in.n_dev = 2;
    in.devices = devs;
    describe(&in.devs, devs[1], name, kind, budget);
    plan_opts_default(&in.opts);
    in.opts.n_ctx = 512;
    in.opts.n_batch = 64;
    in.map_host_weights = map_host;
    struct sched *s = NULL;
    struct placement *pl = NULL;
    struct plan plan;
    char how[256];
    backend_set_alloc_hook(count_hook, &c);
    hearth_status st = engine__load_planned(&in, &s, &pl, &plan, how, sizeof how);
    backend_set_alloc_hook(NULL, NULL);
    CHECK_OK(st);
    if (st != HEARTH_OK)
        return;
    CHECK_MSG(plan.streaming && plan.use[1].stream > 0, "%s: the plan does not stream", name);
    const int n_str = placement_n_streamed_blocks(pl);
    CHECK_MSG(n_str > 0, "%s: no block streamed", name);
    CHECK(pl->stream_half_bytes * 2 == plan.use[1].stream);
    CHECK(pl->stream_min_batch >= 1 && pl->stream_min_batch <= 40);
    for (int d = 0; d < 2; d++) {
        uint64_t want = plan_device_alloc_bytes(&plan, d);
        CHECK_MSG(c.bytes[d] == want && sched_device_bytes(s, d) == want,
                  "%s streaming: device %d allocated %llu, sched %llu, plan %llu", name, d,
                  (unsigned long long)c.bytes[d], (unsigned long long)sched_device_bytes(s, d),
                  (unsigned long long)want);
    }
    CHECK(c.other == 0);
    printf("  %s, budget %llu MiB: %d blocks streamed for batches of %d+, stream buffer %llu "
           "bytes\n",
           name, (unsigned long long)(budget >> 20), n_str, pl->stream_min_batch,
           (unsigned long long)plan.use[1].stream);
    int32_t toks[40];
    for (int i = 0; i < 40; i++)
        toks[i] = 100 + 37 * i;
    if (eval) { /* (lavapipe's run is test-sched-stream's) */
        CHECK_OK(sched_eval(s, toks, 40, 0, NULL, false));
        const uint64_t after = sched_n_streamed_bytes(s);
        CHECK_MSG(after > 0, "%s: the prefill streamed nothing", name);
        CHECK_OK(sched_eval(s, toks, 1, 40, NULL, false));
        CHECK(sched_n_streamed_bytes(s) == after);
    }
    sched_destroy(s);
    placement_free(pl);
    plan_free(&plan);
    /* --no-stream: no buffer reserved, nothing streamed */
    in.opts.no_stream = true;
    CHECK_OK(engine__load_planned(&in, &s, &pl, &plan, how, sizeof how));
    if (s) {
        CHECK(!plan.streaming && plan.use[1].stream == 0);
        CHECK_INT_EQ(placement_n_streamed_blocks(pl), 0);
        sched_destroy(s);
        placement_free(pl);
        plan_free(&plan);
    }
}

TEST(streaming_allocates_the_plan)
{
    struct model *m = fixture_model(TEST_SMOLLM2);
    REQUIRE(m);
    struct hearth_device *devs[2] = {fixture_cpu_device("cpu", 1), fixture_cpu_device("cpu-b", 1)};
    REQUIRE(devs[0] && devs[1]);
    check_streaming(m, devs, "cpu-b", PLAN_DEV_CPU, 24ull << 20, false, true);
    check_streaming(m, devs, "cpu-b", PLAN_DEV_CPU, 24ull << 20, true, true);
    backend_device_destroy(devs[1]);
    if (reg_device_open("vulkan0", &devs[1]) == HEARTH_OK) {
        check_streaming(m, devs, "vulkan0", PLAN_DEV_VULKAN, 256ull << 20, true, false);
        backend_device_destroy(devs[1]);
    } else {
        printf("  no vulkan0: %s\n", hearth_last_error());
    }
    backend_device_destroy(devs[0]);
    model_free(m);
}

TEST_MAIN(TEST_CASE(cpu_pair_allocates_the_plan), TEST_CASE(window_allocates_the_plan),
          TEST_CASE(vulkan_allocates_the_plan),
          TEST_CASE(replan_on_oom), TEST_CASE(bandwidth_cache),
          TEST_CASE(ffn_split_allocates_the_plan), TEST_CASE(streaming_allocates_the_plan))
