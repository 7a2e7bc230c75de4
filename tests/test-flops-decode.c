/*
 * test-flops-decode: decode's measured figures (core/flops.h: matvec rates per
 * weight type, op latency), their place in the device cache (v3) and the
 * planner's decode cost built from them.
 *
 *  - cache: rates and op latency round-trip; the file line lists the rates as
 *    TYPE:GB/s in type-id order, "-" for none; an unknown type name, a rate
 *    that is not a number, a rate without its colon or a v2 line under a v3
 *    header make the file ignored with a note naming the line;
 *  - the measurement on a CPU device (and vulkan0 when it opens): Q4_K's
 *    shape grown as flops.h says, its rate the bytes it reports over the
 *    median run, the other listed types all measured or (a device too slow)
 *    none, and a positive op latency;
 *  - the planner, on SmolLM2 host-only with described rates: the matvec term
 *    is every matmul's bytes at its type's rate (a type without one: its
 *    weights at Q4_K's rate, as Q4_K bytes) plus the KV at the copy rate; the
 *    step is the largest work term plus ops x latency, with 10 ops a layer
 *    and 2 for the head; halving the rates slows decode; a --host
 *    description drops the machine's figures (FLOP rate included) and the
 *    reasons say so;
 *  - a GPU whose measured matvec rate is below the host's, or a software
 *    rasterizer, is left unused by the automatic placement (with its reason)
 *    but not by -ngl; one above it, or unmeasured, is used.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-registry.h"
#include "backend.h"
#include "bandwidth.h"
#include "fixtures.h"
#include "flops.h"
#include "gguf.h"
#include "plan-env.h"
#include "plan.h"
#include "quant.h"
#include "test.h"

/* Line k (0-based) of the file, without its newline; "" past the end. */
static const char *line_of(const char *path, int k)
{
    static char line[1024];
    line[0] = '\0';
    FILE *f = fopen(path, "r");
    for (int i = 0; f && i <= k; i++)
        if (!fgets(line, sizeof line, f))
            line[0] = '\0';
    if (f)
        fclose(f);
    line[strcspn(line, "\n")] = '\0';
    return line;
}

TEST(cache_rates_round_trip)
{
    const char *path = plan_env_cache("rates");
    REQUIRE(path);
    struct bw_entry e, got;
    memset(&e, 0, sizeof e);
    snprintf(e.name, sizeof e.name, "cpu");
    snprintf(e.desc, sizeof e.desc, "Some CPU");
    e.mem_gbps = 20.0;
    e.gflops = 100.0;
    e.op_us = 1.5;
    e.attn_gflops = 30.25;
    e.mv_gbps[HEARTH_DTYPE_Q4_K] = 10.5;
    e.mv_gbps[HEARTH_DTYPE_Q8_0] = 12.25;
    e.mm_gflops[HEARTH_DTYPE_Q4_K] = 80.5;
    e.mm_gflops[HEARTH_DTYPE_Q4_1] = 60.0;
    CHECK_OK(bw_cache_store(&e));
    CHECK_STR_EQ(line_of(path, 0), "# hearth devices v3");
    CHECK_STR_EQ(line_of(path, 1), "cpu\t20.000\t0.000\t100.000\t30.250\t1.500\t"
                                   "Q8_0:12.250,Q4_K:10.500\tQ4_1:60.000,Q4_K:80.500\tSome CPU");
    char note[256];
    CHECK(bw_cache_lookup("cpu", "Some CPU", &got, note, sizeof note));
    CHECK_STR_EQ(note, "");
    CHECK_NEAR(got.op_us, 1.5, 1e-12);
    CHECK_NEAR(got.attn_gflops, 30.25, 1e-12);
    for (int t = 0; t < HEARTH_DTYPE_COUNT; t++) {
        CHECK_MSG(got.mv_gbps[t] == e.mv_gbps[t], "type %d: %g, stored %g", t, got.mv_gbps[t],
                  e.mv_gbps[t]);
        CHECK_MSG(got.mm_gflops[t] == e.mm_gflops[t], "type %d: %g GFLOP/s, stored %g", t,
                  got.mm_gflops[t], e.mm_gflops[t]);
    }
    unsetenv("HEARTH_CACHE_DIR");
}

TEST(cache_bad_rates_ignored)
{
    const char *path = plan_env_cache("badrates");
    REQUIRE(path);
    static const char *const bad[] = {
        "cpu\t20\t0\t100\t30\t1.5\tQ9_Z:1.0\t-\tSome CPU\n",    /* no such type */
        "cpu\t20\t0\t100\t30\t1.5\tQ4_K:fast\t-\tSome CPU\n",   /* not a number */
        "cpu\t20\t0\t100\t30\t1.5\tQ4_K\t-\tSome CPU\n",        /* no colon */
        "cpu\t20\t0\t100\t30\t1.5\tQ4_K:-2\t-\tSome CPU\n",     /* negative */
        "cpu\t20\t0\t100\t30\t1.5\t-\tQ4_K:x\tSome CPU\n",     /* a bad matmul rate */
        "cpu\t20\t0\t100\t30\t1.5\tQ4_K:1\tSome CPU\n",         /* no matmul field */
        "cpu\t20\t0\t100\tfast\t1.5\t-\t-\tSome CPU\n",        /* a bad attention rate */
        "cpu\t20\t0\t100\tSome CPU\n",                     /* a v2 line */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "# hearth devices v3\n%s", bad[i]);
        REQUIRE(plan_env_write(path, text));
        struct bw_entry got;
        char note[256] = "";
        CHECK_MSG(!bw_cache_lookup("cpu", "Some CPU", &got, note, sizeof note), "case %zu read",
                  i);
        CHECK_MSG(strstr(note, "line 2") && strstr(note, "ignored"), "case %zu note: %s", i, note);
    }
    unsetenv("HEARTH_CACHE_DIR");
}

/* v is lo * 2^k (or the cap) for some k >= 0, and <= cap. */
static bool grown_from(int64_t v, int64_t lo, int64_t cap)
{
    if (v == cap)
        return true;
    if (v < lo || v > cap)
        return false;
    while (v > lo && v % 2 == 0)
        v /= 2;
    return v == lo;
}

static void check_decode(struct hearth_device *dev, const char *what)
{
    struct flops_decode_result r;
    CHECK_OK(flops_measure_decode(dev, &r));
    const double q4k = r.gbps[HEARTH_DTYPE_Q4_K];
    CHECK_MSG(isfinite(q4k) && q4k > 0.0, "Q4_K rate %g", q4k);
    CHECK_MSG(grown_from(r.n_out, FLOPS_DEC_N_OUT_MIN, FLOPS_DEC_N_OUT), "n_out %lld",
              (long long)r.n_out);
    CHECK(r.n_w >= 1 && r.n_w <= FLOPS_DEC_N_W);
    CHECK(r.n_w == 1 || r.n_out == FLOPS_DEC_N_OUT); /* more weights only at full size */
    CHECK(r.n_iter >= 1 && r.n_iter <= FLOPS_DEC_MAX_ITER);
    CHECK(r.n_iter == 1 || r.n_out == FLOPS_DEC_N_OUT); /* more passes only at full size */
    CHECK(r.reps == 3 || r.reps == 5);
    uint64_t row = 0;
    REQUIRE(quant_row_bytes(HEARTH_DTYPE_Q4_K, FLOPS_DEC_N_IN, &row));
    CHECK_NEAR(r.bytes, (double)row * (double)r.n_out * r.n_w * r.n_iter, 0.0);
    CHECK_NEAR(q4k, r.bytes / r.seconds / 1e9, 1e-9 * q4k);
    int others = 0;
    for (int i = 1; i < FLOPS_DEC_N_TYPES; i++)
        others += r.gbps[flops_dec_types[i]] > 0.0;
    /* a device fast enough to reach the full shape is timed on every type */
    CHECK_MSG(others == 0 || others == FLOPS_DEC_N_TYPES - 1, "%d of %d other types timed",
              others, FLOPS_DEC_N_TYPES - 1);
    CHECK(others == 0 || r.n_out == FLOPS_DEC_N_OUT);
    for (int t = 0; t < HEARTH_DTYPE_COUNT; t++) {
        bool listed = false;
        for (int i = 0; i < FLOPS_DEC_N_TYPES; i++)
            listed |= flops_dec_types[i] == (hearth_dtype)t;
        CHECK_MSG(listed || r.gbps[t] == 0.0, "unlisted type %d has a rate", t);
    }
    CHECK_MSG(isfinite(r.op_s) && r.op_s > 0.0, "op latency %g s", r.op_s);
    CHECK(r.n_ops >= 16 && r.n_ops <= FLOPS_DEC_MAX_OPS);
    printf("  %s: Q4_K %.2f GB/s (%lld rows x %d weights x %d passes, %.4f s), %d other types, "
           "%.2f us per op\n",
           what, q4k, (long long)r.n_out, r.n_w, r.n_iter, r.seconds, others, r.op_s * 1e6);
}

TEST(measure_decode_cpu)
{
    struct hearth_device *dev = fixture_cpu_device("cpu", 1);
    REQUIRE(dev);
    check_decode(dev, "cpu (1 thread)");
    backend_device_destroy(dev);
}

TEST(measure_decode_vulkan)
{
    struct hearth_device *dev = NULL;
    if (reg_device_open("vulkan0", &dev) != HEARTH_OK)
        TEST_SKIP("no vulkan0 here: %s", hearth_last_error());
    check_decode(dev, "vulkan0");
    backend_device_destroy(dev);
}

static double params(const struct plan_model_tensor *t)
{
    return (double)t->ne[0] * (double)t->ne[1] * (double)t->ne[2] * (double)t->ne[3];
}

/* The host's decode matvec term as the test reads plan.h's rule. */
static double expect_mv(const struct plan_model *pm, const struct plan *p, double q4k,
                        double q41, double kv_bytes)
{
    const double mem = p->devs.dev[PLAN_HOST].mem_bw;
    double s = kv_bytes / mem;
    for (size_t i = 0; i < pm->n_tensors; i++) {
        const struct plan_model_tensor *t = &pm->tensors[i];
        if (t->n_dims < 2 || t->role == PLAN_ROLE_EMBD)
            continue;
        if (t->type == HEARTH_DTYPE_Q4_1)
            s += (double)t->nbytes / q41;
        else
            s += params(t) * (144.0 / 256.0) / q4k;
    }
    return s;
}

TEST(planner_decode_from_rates)
{
    const char *path = plan_env_cache("plan");
    REQUIRE(path);
    struct gguf_file *gf;
    struct plan_model pm;
    REQUIRE(plan_env_model(TEST_SMOLLM2, &gf, &pm) == HEARTH_OK);
    struct plan_opts o;
    plan_opts_default(&o);

    /* Q4_1 and Q4_K rates; SmolLM2's Q8_0 head has none, so it is costed at Q4_K's */
    const double rates[2][2] = {{8.0, 6.0}, {4.0, 3.0}}; /* Q4_K, Q4_1 GB/s */
    double tps[2];
    for (int k = 0; k < 2; k++) {
        char text[512];
        snprintf(text, sizeof text,
                 "# hearth devices v3\ncpu\t20.000\t0.000\t100.000\t0.000\t2.500\t"
                 "Q4_1:%.3f,Q4_K:%.3f\t-\tFake CPU\n",
                 rates[k][1], rates[k][0]);
        REQUIRE(plan_env_write(path, text));
        struct plan_devices pd;
        plan_devices_init(&pd);
        REQUIRE(plan_devices_apply_cache(&pd, PLAN_HOST, "Fake CPU"));
        CHECK_NEAR(pd.dev[PLAN_HOST].op_s, 2.5e-6, 1e-15);
        struct plan p;
        CHECK_OK(plan_make(&pm, &pd, &o, &p));
        const struct plan_usage *u = &p.use[PLAN_HOST];
        double kv = 0;
        for (uint32_t l = 0; l < p.n_layer; l++)
            kv += (double)p.layers[l].kv_bytes * p.opts.n_prompt / p.opts.n_ctx;
        double mv = expect_mv(&pm, &p, rates[k][0] * 1e9, rates[k][1] * 1e9, kv);
        CHECK_NEAR(u->decode_mv_s, mv, 1e-9 * mv);
        CHECK_NEAR(u->decode_ops, 10.0 * p.n_layer + 2.0, 0.0);
        double work = fmax(fmax(u->decode_mem_s, u->decode_mv_s), u->decode_comp_s);
        CHECK_MSG(u->decode_mv_s > u->decode_mem_s, "these rates bind: %g s vs %g s at copy",
                  u->decode_mv_s, u->decode_mem_s);
        CHECK_NEAR(u->decode_s, work + u->decode_ops * 2.5e-6, 1e-12);
        CHECK_NEAR(p.decode_tps, 1.0 / u->decode_s, 1e-9 * p.decode_tps);
        CHECK_MSG(plan_env_reason(&p, "cpu: one-token matmuls read", "measured on this machine"),
                  "no reason names the measured matvec rate");
        CHECK_MSG(plan_env_reason(&p, "at its measured matvec rates", "us, measured"),
                  "the decode term does not say what binds it");
        tps[k] = p.decode_tps;
        plan_free(&p);

        /* a described host is another machine: this one's decode figures go */
        CHECK_OK(plan_devices_set_host(&pd, "16GiB:40GB/s"));
        CHECK(pd.dev[PLAN_HOST].flops_assumed && !pd.dev[PLAN_HOST].flops_measured);
        CHECK_NEAR(pd.dev[PLAN_HOST].flops, PLAN_DEFAULT_HOST_FLOPS, 0.0);
        CHECK_OK(plan_make(&pm, &pd, &o, &p));
        CHECK_NEAR(p.use[PLAN_HOST].decode_mv_s, 0.0, 0.0);
        CHECK_NEAR(p.use[PLAN_HOST].decode_ops_s,
                   p.use[PLAN_HOST].decode_ops * PLAN_DEFAULT_CPU_OP_S, 1e-15);
        CHECK_MSG(plan_env_reason(&p, "cpu figures assumed, not measured", "matvec rate"),
                  "a described host's matvec rate is not called assumed");
        CHECK_MSG(plan_env_reason(&p, "cpu figures assumed, not measured", "op latency"),
                  "a described host's op latency is not called assumed");
        plan_free(&p);
    }
    CHECK_MSG(tps[1] < tps[0] * 0.6, "halved rates: %.2f tok/s, was %.2f", tps[1], tps[0]);
    plan_env_model_close(gf, &pm);
    unsetenv("HEARTH_CACHE_DIR");
}

/* Weight bytes resident on GPU 1 of a plan of pm on pd with -ngl ngl (-1: automatic). */
static uint64_t on_gpu(const struct plan_model *pm, const struct plan_devices *pd, int ngl,
                       bool *slow, bool *reason)
{
    struct plan_opts o;
    plan_opts_default(&o);
    o.n_gpu_layers = ngl;
    struct plan p;
    *slow = *reason = false;
    if (plan_make(pm, pd, &o, &p) != HEARTH_OK)
        return UINT64_MAX;
    uint64_t b = 0;
    for (size_t i = 0; i < pm->n_tensors; i++)
        if (p.tensors[i].resident == 1)
            b += pm->tensors[i].nbytes;
    *slow = p.skipped_gpu[1];
    *reason = plan_env_reason(&p, "vulkan0 unused: one-token matmuls there read", "slower than the host");
    plan_free(&p);
    return b;
}

TEST(skipped_gpu_left_unused)
{
    struct gguf_file *gf;
    struct plan_model pm;
    REQUIRE(plan_env_model(TEST_SMOLLM2, &gf, &pm) == HEARTH_OK);
    struct plan_devices pd;
    plan_devices_init(&pd);
    CHECK_OK(plan_devices_add(&pd, "vulkan:8GiB:256GB/s"));
    pd.dev[PLAN_HOST].mv_bw[HEARTH_DTYPE_Q4_K] = 5e9;
    bool slow = false, reason = false;
    /* unmeasured: used */
    CHECK(on_gpu(&pm, &pd, -1, &slow, &reason) == plan_model_bytes(&pm));
    CHECK(!slow && !reason);
    /* measured below the host (a software device): unused, with its reason */
    pd.dev[1].mv_bw[HEARTH_DTYPE_Q4_K] = 0.01e9;
    CHECK(on_gpu(&pm, &pd, -1, &slow, &reason) == 0);
    CHECK(slow && reason);
    /* -ngl asks for it: used */
    CHECK(on_gpu(&pm, &pd, 10, &slow, &reason) > 0);
    CHECK(!slow && !reason);
    /* measured above the host: used */
    pd.dev[1].mv_bw[HEARTH_DTYPE_Q4_K] = 200e9;
    CHECK(on_gpu(&pm, &pd, -1, &slow, &reason) == plan_model_bytes(&pm));
    CHECK(!slow && !reason);
    /* a software rasterizer, unmeasured: unused, with its own reason; -ngl uses it */
    pd.dev[1].mv_bw[HEARTH_DTYPE_Q4_K] = 0;
    pd.dev[1].software = true;
    struct plan_opts o;
    plan_opts_default(&o);
    struct plan p;
    CHECK_OK(plan_make(&pm, &pd, &o, &p));
    CHECK(p.skipped_gpu[1] && p.use[1].total == 0);
    CHECK(plan_env_reason(&p, "vulkan0 unused: a software rasterizer", NULL));
    plan_free(&p);
    CHECK(on_gpu(&pm, &pd, 10, &slow, &reason) > 0);
    pd.dev[1].software = false;
    /* the host unmeasured: its copy bandwidth (50 GB/s assumed) is the bar */
    pd.dev[PLAN_HOST].mv_bw[HEARTH_DTYPE_Q4_K] = 0;
    pd.dev[1].mv_bw[HEARTH_DTYPE_Q4_K] = 40e9;
    CHECK(on_gpu(&pm, &pd, -1, &slow, &reason) == 0);
    CHECK(slow && reason);
    plan_env_model_close(gf, &pm);
}

TEST_MAIN(TEST_CASE(cache_rates_round_trip), TEST_CASE(cache_bad_rates_ignored),
          TEST_CASE(measure_decode_cpu), TEST_CASE(measure_decode_vulkan),
          TEST_CASE(planner_decode_from_rates), TEST_CASE(skipped_gpu_left_unused))
