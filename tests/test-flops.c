/*
 * test-flops: the measured FLOP rate (core/flops.h), its place in the device
 * cache (format v3, bandwidth.h) and the planner's use of it
 * (test-flops-decode covers decode's figures).
 *
 *  - cache: stored and looked up with the GFLOP/s field; the file has the
 *    v3 header and nine fields a line;
 *  - a v1 file is read (bandwidths measured, FLOP rate 0, so the plan keeps
 *    assuming it) and the next store rewrites it as v3, its old lines kept;
 *  - a malformed v2 line (the v1 layout under a v2 header, a FLOP rate that
 *    is not a number) makes the file ignored with a note naming the line;
 *  - the measurement on a CPU device and on vulkan0 when it opens (lavapipe
 *    in CI): a positive finite rate, a shape grown as flops.h says, and the
 *    FLOP count it reports is 2 * n_out * n_in * n_tok * n_iter of that
 *    shape (the arithmetic, never the speed);
 *  - per-type matmul rates: measured for every listed type on a device that
 *    reaches the full row width, and the planner's prefill takes a tensor's
 *    type's rate (prefill_per_type_rates);
 *  - the planner: a cached rate for the detected cpu becomes the host's
 *    flops, flops_assumed false, and the reasons say so instead of
 *    "assumed"; SmolLM2's predicted prefill follows the rate (a lower rate,
 *    a slower prefill; the 2 TFLOP/s default, the fastest).
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
#include "test.h"

/* The file's lines (at most 8) into lines[], each without its newline. */
static int read_lines(const char *path, char lines[][512])
{
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && n < 8 && fgets(lines[n], 512, f)) {
        lines[n][strcspn(lines[n], "\n")] = '\0';
        n++;
    }
    if (f)
        fclose(f);
    return n;
}

static int count_tabs(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\t';
    return n;
}

static struct bw_entry entry(const char *name, const char *desc, double mem, double h2d,
                             double gflops)
{
    struct bw_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.name, sizeof e.name, "%s", name);
    snprintf(e.desc, sizeof e.desc, "%s", desc);
    e.mem_gbps = mem;
    e.h2d_gbps = h2d;
    e.gflops = gflops;
    return e;
}

TEST(cache_round_trip)
{
    const char *path = plan_env_cache("v2");
    REQUIRE(path);
    struct bw_entry e = entry("vulkan0", "Test GPU (fake)", 321.25, 12.25, 45678.5), got;
    CHECK_OK(bw_cache_store(&e));
    e = entry("cpu", "Some CPU", 20.0, 0.0, 187.25);
    CHECK_OK(bw_cache_store(&e));
    char note[256];
    CHECK(bw_cache_lookup("vulkan0", "Test GPU (fake)", &got, note, sizeof note));
    CHECK_NEAR(got.gflops, 45678.5, 1e-9);
    CHECK_NEAR(got.mem_gbps, 321.25, 1e-9);
    CHECK(bw_cache_lookup("cpu", "Some CPU", &got, note, sizeof note));
    CHECK_NEAR(got.gflops, 187.25, 1e-9);
    CHECK_NEAR(got.h2d_gbps, 0.0, 0.0);
    CHECK_STR_EQ(note, "");
    char lines[8][512];
    int n = read_lines(path, lines);
    REQUIRE(n == 3);
    CHECK_STR_EQ(lines[0], "# hearth devices v3");
    CHECK_STR_EQ(lines[1], "vulkan0\t321.250\t12.250\t45678.500\t0.000\t0.000\t-\t-\tTest GPU (fake)");
    CHECK_INT_EQ(count_tabs(lines[2]), 8);
    unsetenv("HEARTH_CACHE_DIR");
}

TEST(cache_v1_read_then_rewritten_as_v3)
{
    const char *path = plan_env_cache("v1");
    REQUIRE(path);
    REQUIRE(plan_env_write(path, "# hearth devices v1\ncpu\t25.500\t0.000\tSome CPU\n"
                     "vulkan0\t300.000\t10.000\tTest GPU (fake)\n"));
    struct bw_entry got;
    char note[256];
    CHECK(bw_cache_lookup("cpu", "Some CPU", &got, note, sizeof note));
    CHECK_STR_EQ(note, "");
    CHECK_NEAR(got.mem_gbps, 25.5, 1e-9);
    CHECK_NEAR(got.gflops, 0.0, 0.0);
    /* measured bandwidth, assumed FLOP rate */
    struct plan_devices pd;
    plan_devices_init(&pd);
    CHECK(plan_devices_apply_cache(&pd, PLAN_HOST, "Some CPU"));
    CHECK(pd.dev[PLAN_HOST].mem_bw_measured);
    CHECK(pd.dev[PLAN_HOST].flops_assumed && !pd.dev[PLAN_HOST].flops_measured);
    CHECK_NEAR(pd.dev[PLAN_HOST].flops, PLAN_DEFAULT_HOST_FLOPS, 0.0);
    /* the next store writes v3 and keeps the v1 line it did not replace */
    struct bw_entry e = entry("cpu", "Some CPU", 25.5, 0.0, 150.0);
    CHECK_OK(bw_cache_store(&e));
    char lines[8][512];
    int n = read_lines(path, lines);
    REQUIRE(n == 3);
    CHECK_STR_EQ(lines[0], "# hearth devices v3");
    CHECK_STR_EQ(lines[1], "vulkan0\t300.000\t10.000\t0.000\t0.000\t0.000\t-\t-\tTest GPU (fake)");
    CHECK_STR_EQ(lines[2], "cpu\t25.500\t0.000\t150.000\t0.000\t0.000\t-\t-\tSome CPU");
    CHECK(bw_cache_lookup("vulkan0", "Test GPU (fake)", &got, note, sizeof note));
    CHECK_NEAR(got.h2d_gbps, 10.0, 1e-9);
    CHECK_NEAR(got.gflops, 0.0, 0.0);
    unsetenv("HEARTH_CACHE_DIR");
}

TEST(cache_v2_malformed_line_ignored)
{
    const char *path = plan_env_cache("bad");
    REQUIRE(path);
    struct bw_entry got;
    char note[256];
    /* the v1 layout under a v2 header: the description is read as the rate */
    REQUIRE(plan_env_write(path, "# hearth devices v2\ncpu\t25.5\t0\t100\tSome CPU\n"
                     "vulkan0\t300\t10\tTest GPU (fake)\n"));
    CHECK(!bw_cache_lookup("cpu", "Some CPU", &got, note, sizeof note));
    CHECK_MSG(strstr(note, "line 3") && strstr(note, "GFLOP/s") && strstr(note, "ignored"),
              "note: %s", note);
    REQUIRE(plan_env_write(path, "# hearth devices v2\ncpu\t25.5\t0\tfast\tSome CPU\n"));
    CHECK(!bw_cache_lookup("cpu", "Some CPU", &got, note, sizeof note));
    CHECK_MSG(strstr(note, "line 2"), "note: %s", note);
    REQUIRE(plan_env_write(path, "# hearth devices v2\ncpu\t25.5\t0\t-3\tSome CPU\n"));
    CHECK(!bw_cache_lookup("cpu", "Some CPU", &got, note, sizeof note));
    CHECK_MSG(strstr(note, "line 2"), "note: %s", note);
    /* the planner gets the note and keeps its defaults */
    struct plan_devices pd;
    plan_devices_init(&pd);
    CHECK(!plan_devices_apply_cache(&pd, PLAN_HOST, "Some CPU"));
    CHECK(pd.dev[PLAN_HOST].flops_assumed);
    CHECK_MSG(strstr(pd.cache_note, "line 2"), "%s", pd.cache_note);
    /* a v4 header (a later build's) is not read as v3 */
    REQUIRE(plan_env_write(path, "# hearth devices v4\ncpu\t25.5\t0\t100\t1\t-\tSome CPU\n"));
    CHECK(!bw_cache_lookup("cpu", "Some CPU", &got, note, sizeof note));
    CHECK_MSG(strstr(note, "line 1"), "note: %s", note);
    unsetenv("HEARTH_CACHE_DIR");
}

/* v is lo * 2^k for some k >= 0, and <= hi. */
static bool doubled_from(int64_t v, int64_t lo, int64_t hi)
{
    if (v < lo || v > hi)
        return false;
    while (v > lo && v % 2 == 0)
        v /= 2;
    return v == lo;
}

/* Measures dev and checks what the result says of itself (the arithmetic, not the speed). */
static void check_measure(struct hearth_device *dev, const char *what)
{
    struct flops_result r;
    CHECK_OK(flops_measure_device(dev, &r));
    CHECK_MSG(isfinite(r.gflops) && r.gflops > 0.0, "rate %g", r.gflops);
    CHECK_INT_EQ(r.n_tok, FLOPS_N_TOK);
    /* each dimension doubled from its minimum, never past its cap */
    CHECK_MSG(doubled_from(r.n_in, FLOPS_N_IN_MIN, FLOPS_N_IN_MAX), "n_in %lld",
              (long long)r.n_in);
    CHECK_MSG(doubled_from(r.n_out, FLOPS_N_OUT_MIN, FLOPS_N_OUT_MAX), "n_out %lld",
              (long long)r.n_out);
    CHECK(r.n_out == FLOPS_N_OUT_MIN || r.n_in == FLOPS_N_IN_MAX); /* n_in grows first */
    CHECK(r.n_iter >= 1 && r.n_iter <= FLOPS_MAX_ITER);
    CHECK(r.n_iter == 1 || r.n_out == FLOPS_N_OUT_MAX); /* more ops only at the largest shape */
    CHECK(r.reps == 3 || r.reps == 5);
    double want = 2.0 * (double)r.n_out * (double)r.n_in * (double)r.n_tok * r.n_iter;
    CHECK_NEAR(r.flop, want, 0.0);
    CHECK_MSG(r.seconds > 0.0, "median run %g s", r.seconds);
    CHECK_NEAR(r.gflops, r.flop / r.seconds / 1e9, 1e-9 * r.gflops);
    CHECK_NEAR(r.gflops_type[HEARTH_DTYPE_Q4_K], r.gflops, 0.0);
    int others = 0;
    for (int i = 1; i < FLOPS_DEC_N_TYPES; i++) {
        double g = r.gflops_type[flops_dec_types[i]];
        CHECK_MSG(isfinite(g) && g >= 0.0, "%s: %g", hearth_dtype_name(flops_dec_types[i]), g);
        others += g > 0.0;
    }
    /* every other listed type exactly when the full row width was reached */
    bool full = r.n_in == FLOPS_N_IN_MAX;
    CHECK_MSG(others == (full ? FLOPS_DEC_N_TYPES - 1 : 0), "%d other types timed (full %d)",
              others, full);
    printf("  %s: %d other types, Q4_1 %.2f, Q8_0 %.2f GFLOP/s\n", what, others,
           r.gflops_type[HEARTH_DTYPE_Q4_1], r.gflops_type[HEARTH_DTYPE_Q8_0]);
    printf("  %s: %.2f GFLOP/s, %lld x %lld x %lld x %d in %.4f s (median of %d)\n", what,
           r.gflops, (long long)r.n_out, (long long)r.n_in, (long long)r.n_tok, r.n_iter,
           r.seconds, r.reps);
}

/* The attention rate's shape and arithmetic (flops.h), never its speed. */
static void check_attention(struct hearth_device *dev, const char *what)
{
    struct flops_attn_result a;
    CHECK_OK(flops_measure_attention(dev, &a));
    CHECK_MSG(isfinite(a.gflops) && a.gflops > 0.0, "attention %g GFLOP/s", a.gflops);
    CHECK_MSG(doubled_from(a.n_tok, FLOPS_ATT_TOK_MIN, FLOPS_ATT_TOK_MAX), "n_tok %d", a.n_tok);
    CHECK(a.n_iter >= 1 && a.n_iter <= FLOPS_MAX_ITER);
    CHECK(a.n_iter == 1 || a.n_tok == FLOPS_ATT_TOK_MAX);
    /* 16 queries at position 16: 16 * 16 + 136 (query, key) pairs of 4 * 32 * 128 FLOPs */
    CHECK_NEAR(flops_attention_flop(16, 16), 392.0 * 16384.0, 0.0);
    CHECK_NEAR(a.flop, flops_attention_flop(a.n_tok, a.n_tok) * a.n_iter, 0.0);
    CHECK_NEAR(a.gflops, a.flop / a.seconds / 1e9, 1e-9 * a.gflops);
    printf("  %s: attention %.2f GFLOP/s (%d queries x %d ops, %.4f s)\n", what, a.gflops,
           a.n_tok, a.n_iter, a.seconds);
}

TEST(measure_cpu_device)
{
    struct hearth_device *dev = fixture_cpu_device("cpu", 1);
    REQUIRE(dev);
    check_measure(dev, "cpu (1 thread)");
    check_attention(dev, "cpu (1 thread)");
    backend_device_destroy(dev);
}

/* lavapipe in CI: the adaptive shape keeps it to about a second. */
TEST(measure_vulkan_device)
{
    struct hearth_device *dev = NULL;
    if (reg_device_open("vulkan0", &dev) != HEARTH_OK)
        TEST_SKIP("no vulkan0 here: %s", hearth_last_error());
    check_measure(dev, "vulkan0");
    check_attention(dev, "vulkan0");
    backend_device_destroy(dev);
}

/*
 * pm's predicted prefill on the host alone, its cache entry saying gflops
 * (0: not measured); the plan is kept in *keep when keep is not NULL.
 */
static double host_prefill(const struct plan_model *pm, const char *path, const char *desc,
                           double gflops, struct plan *keep)
{
    char text[600];
    snprintf(text, sizeof text, "# hearth devices v2\ncpu\t20.000\t0.000\t%.3f\t%s\n", gflops,
             desc);
    if (!plan_env_write(path, text))
        return -1.0;
    struct plan_devices pd;
    plan_devices_init(&pd);
    plan_devices_apply_cache(&pd, PLAN_HOST, desc);
    struct plan p;
    if (plan_make(pm, &pd, NULL, &p) != HEARTH_OK)
        return -1.0;
    double tps = p.prefill_tps;
    if (keep)
        *keep = p;
    else
        plan_free(&p);
    return tps;
}

TEST(planner_uses_cached_flops)
{
    const char *path = plan_env_cache("plan");
    REQUIRE(path);
    struct reg_device_info info[8];
    int n = reg_list_devices(info, 8);
    REQUIRE(n >= 1 && !strcmp(info[0].name, "cpu"));
    char text[600];
    snprintf(text, sizeof text, "# hearth devices v2\ncpu\t20.000\t0.000\t123.500\t%s\n",
             info[0].desc);
    REQUIRE(plan_env_write(path, text));
    /* detection takes the detected cpu's cached rate */
    struct plan_devices pd;
    plan_devices_init(&pd);
    CHECK_OK(plan_devices_detect(&pd));
    CHECK_NEAR(pd.dev[PLAN_HOST].flops, 123.5e9, 1.0);
    CHECK(!pd.dev[PLAN_HOST].flops_assumed && pd.dev[PLAN_HOST].flops_measured);
    CHECK_STR_EQ(pd.cache_note, "");
    /* a --host FLOP rate replaces the measured one */
    CHECK_OK(plan_devices_set_host(&pd, "16GiB:40GB/s:1TFLOPS"));
    CHECK_NEAR(pd.dev[PLAN_HOST].flops, 1e12, 1.0);
    CHECK(!pd.dev[PLAN_HOST].flops_measured && !pd.dev[PLAN_HOST].mem_bw_measured);

    struct gguf_file *gf;
    struct plan_model pm;
    REQUIRE(plan_env_model(TEST_SMOLLM2, &gf, &pm) == HEARTH_OK);
    struct plan p;
    double slow = host_prefill(&pm, path, info[0].desc, 100.0, &p);
    double fast = host_prefill(&pm, path, info[0].desc, 400.0, NULL);
    double unmeasured = host_prefill(&pm, path, info[0].desc, 0.0, NULL);
    /* prefill of a 135M model is compute-bound at these rates: it follows the rate */
    CHECK_MSG(slow > 0 && fast > 2.0 * slow && unmeasured > fast,
              "prefill %.1f / %.1f / %.1f tok/s at 100 / 400 GFLOP/s / assumed", slow, fast,
              unmeasured);
    CHECK_MSG(plan_env_reason(&p, "cpu: FLOP rate 100 GFLOP/s measured", NULL),
              "no reason names the measured rate");
    CHECK_MSG(!plan_env_reason(&p, "assumed, not measured", "FLOP rate"),
              "the measured rate is still called assumed");
    plan_free(&p);
    host_prefill(&pm, path, info[0].desc, 0.0, &p);
    CHECK_MSG(plan_env_reason(&p, "cpu figures assumed, not measured", "FLOP rate"),
              "an unmeasured rate is not called assumed");
    plan_free(&p);
    plan_env_model_close(gf, &pm);
    unsetenv("HEARTH_CACHE_DIR");
}

/*
 * pm's host-only prefill seconds for a 512-token prompt with the cache line's
 * matmul rates mm and attention rate attn (0: not measured).
 */
static double prefill_seconds(const struct plan_model *pm, const char *path, const char *mm,
                              double attn)
{
    char text[600];
    snprintf(text, sizeof text,
             "# hearth devices v3\ncpu\t20.000\t0.000\t100.000\t%.3f\t0.000\t-\t%s\tFake CPU\n",
             attn, mm);
    if (!plan_env_write(path, text))
        return -1.0;
    struct plan_devices pd;
    plan_devices_init(&pd);
    if (!plan_devices_apply_cache(&pd, PLAN_HOST, "Fake CPU"))
        return -1.0;
    struct plan p;
    if (plan_make(pm, &pd, NULL, &p) != HEARTH_OK)
        return -1.0;
    double s = p.opts.n_prompt / p.prefill_tps;
    plan_free(&p);
    return s;
}

/*
 * A type's measured matmul rate replaces the Q4_K rate for its tensors:
 * SmolLM2's Q4_1 matrices (compute-bound here) at 50 instead of 100 GFLOP/s
 * add exactly their FLOPs x (1/50 - 1/100) ns; a Q4_1 rate equal to Q4_K's
 * changes nothing. A measured attention rate of 25 GFLOP/s adds exactly the
 * prompt's attention FLOPs x (1/25 - 1/100) ns.
 */
TEST(prefill_per_type_rates)
{
    const char *path = plan_env_cache("mm");
    REQUIRE(path);
    struct gguf_file *gf;
    struct plan_model pm;
    REQUIRE(plan_env_model(TEST_SMOLLM2, &gf, &pm) == HEARTH_OK);
    double base = prefill_seconds(&pm, path, "-", 0.0);
    double same = prefill_seconds(&pm, path, "Q4_1:100.000", 0.0);
    double slow = prefill_seconds(&pm, path, "Q4_1:50.000,Q4_K:100.000", 0.0);
    double attn = prefill_seconds(&pm, path, "-", 25.0);
    double att_flop = 4.0 * pm.arch.n_head * pm.arch.head_dim_k * 512.0 * 513.0 / 2.0 *
                      (double)pm.arch.n_layer;
    double want_attn = base + att_flop * (1.0 / 25e9 - 1.0 / 100e9);
    CHECK_MSG(fabs(attn - want_attn) < 1e-9 * want_attn,
              "prefill %.6f s with attention at 25 GFLOP/s, expected %.6f s", attn, want_attn);
    double flops = 0;
    for (size_t i = 0; i < pm.n_tensors; i++) {
        const struct plan_model_tensor *t = &pm.tensors[i];
        if (t->type == HEARTH_DTYPE_Q4_1 && t->n_dims >= 2 && t->role != PLAN_ROLE_OUTPUT)
            flops += 2.0 * (double)t->ne[0] * (double)t->ne[1] * 512.0;
    }
    REQUIRE(base > 0 && flops > 0);
    CHECK_NEAR(same, base, 1e-12 * base);
    double want = base + flops * (1.0 / 50e9 - 1.0 / 100e9);
    CHECK_MSG(fabs(slow - want) < 1e-9 * want, "prefill %.6f s, expected %.6f s (base %.6f s)",
              slow, want, base);
    plan_env_model_close(gf, &pm);
    unsetenv("HEARTH_CACHE_DIR");
}

TEST_MAIN(TEST_CASE(cache_round_trip), TEST_CASE(cache_v1_read_then_rewritten_as_v3),
          TEST_CASE(cache_v2_malformed_line_ignored), TEST_CASE(measure_cpu_device),
          TEST_CASE(measure_vulkan_device), TEST_CASE(planner_uses_cached_flops),
          TEST_CASE(prefill_per_type_rates))
