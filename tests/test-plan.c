/*
 * test-plan: the planner on header-only Llama-3 8B and 70B files (core/synth)
 * and described devices. Checks the invariants a loader relies on (no budget
 * exceeded, every tensor placed once with non-overlapping offsets, bytes per
 * device equal to the sum of what was placed there, nothing left in host RAM
 * that a GPU could still hold, the same plan every run), the decode
 * prediction against the physical ceiling, KV sizing, manual -ngl, streaming,
 * a Vulkan GPU's backend host staging charged to the host, and device-string
 * errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "kv-quant.h"
#include "model-presets.h"
#include "plan-env.h"
#include "plan.h"
#include "quant-mix.h"
#include "synth.h"
#include "test.h"

#define GIB (1ull << 30)

/* A header-only synth of preset/mix, planned as a model; cached per process. */
static bool load_model(const char *preset, const char *mix_name, struct plan_model *out)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s-%s.gguf", test_tmp_dir(), preset, mix_name);
    struct synth_opts o;
    memset(&o, 0, sizeof o);
    o.seed = 1;
    o.header_only = true;
    if (model_preset_find(preset, &o.preset) || quant_mix_from_name(mix_name, &o.mix))
        return false;
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    else if (synth_write(&o, path, NULL) != HEARTH_OK)
        return false;
    struct gguf_file *g;
    if (gguf_open(path, &g) != HEARTH_OK)
        return false;
    hearth_status st = plan_model_from_gguf(g, out);
    gguf_close(g);
    return st == HEARTH_OK;
}

/* One GPU of `budget` at 1008 GB/s, host 256 GiB at 70 GB/s, PCIe 25 GB/s. */
static void one_gpu(struct plan_devices *d, uint64_t budget)
{
    char spec[64];
    plan_devices_init(d);
    snprintf(spec, sizeof spec, "cuda:%lluGiB:1008GB/s", (unsigned long long)(budget / GIB));
    CHECK_OK(plan_devices_set_host(d, "256GiB:70GB/s"));
    CHECK_OK(plan_devices_add(d, spec));
    CHECK_OK(plan_devices_set_pcie(d, "25GB/s"));
}

static int cmp_u64pair(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Every invariant of a plan that does not depend on the model's size. */
static void check_invariants(const struct plan_model *m, const struct plan *p, const char *what)
{
    REQUIRE(p->n_tensors == m->n_tensors);
    for (int d = 0; d < p->devs.n; d++) {
        const struct plan_usage *u = &p->use[d];
        uint64_t w = 0, kv = 0;
        for (size_t i = 0; i < m->n_tensors; i++)
            if (p->tensors[i].resident == d)
                w += p->tensors[i].alloc_bytes;
        for (uint32_t l = 0; l < p->n_layer; l++)
            if (p->layers[l].attn_dev == d)
                kv += p->layers[l].kv_bytes;
        w += u->copies;
        CHECK_MSG(u->weights == w, "%s: %s weights %llu != placed %llu", what,
                  p->devs.dev[d].name, (unsigned long long)u->weights, (unsigned long long)w);
        CHECK_MSG(u->kv == kv, "%s: %s kv", what, p->devs.dev[d].name);
        CHECK(u->total == u->weights + u->kv + u->scratch + u->staging + u->stream + u->reserve +
                              u->host_staging);
        CHECK(plan_device_alloc_bytes(p, d) == u->total - u->reserve - u->host_staging -
                                                   (p->devs.dev[d].maps_weights ? u->weights : 0));
        /* the host's: the worst case of every used GPU's backend staging */
        uint64_t hs = 0;
        for (int g = 1; g < p->devs.n && d == PLAN_HOST; g++)
            if (p->use[g].total)
                hs += p->devs.dev[g].host_staging_bytes;
        CHECK_MSG(u->host_staging == hs, "%s: %s host staging %llu, expected %llu", what,
                  p->devs.dev[d].name, (unsigned long long)u->host_staging,
                  (unsigned long long)hs);
        if (d != PLAN_HOST) {
            CHECK_MSG(u->total <= u->budget, "%s: %s total %llu > budget %llu", what,
                      p->devs.dev[d].name, (unsigned long long)u->total,
                      (unsigned long long)u->budget);
            if (u->total)
                CHECK(u->room == u->budget - u->total);
        }
    }
    /* offsets: each device's tensors tile its weight buffer without overlap */
    uint64_t(*ofs)[2] = malloc(m->n_tensors * sizeof *ofs);
    REQUIRE(ofs);
    for (int d = 0; d < p->devs.n; d++) {
        size_t n = 0;
        for (size_t i = 0; i < m->n_tensors; i++)
            if (p->tensors[i].resident == d) {
                ofs[n][0] = p->tensors[i].offset;
                ofs[n][1] = p->tensors[i].alloc_bytes;
                n++;
            }
        qsort(ofs, n, sizeof *ofs, cmp_u64pair);
        for (size_t k = 0; k < n; k++) {
            CHECK(ofs[k][0] % PLAN_ALIGN == 0);
            uint64_t next = k + 1 < n ? ofs[k + 1][0] : p->use[d].weights;
            CHECK_MSG(ofs[k][0] + ofs[k][1] <= next, "%s: overlap on %s", what,
                      p->devs.dev[d].name);
        }
    }
    free(ofs);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct plan_tensor *t = &p->tensors[i];
        CHECK(t->resident >= 0 && t->resident < p->devs.n);
        CHECK(t->alloc_bytes >= m->tensors[i].nbytes);
        if (t->kind == PLAN_KIND_DEVICE) {
            CHECK(t->resident != PLAN_HOST && t->compute == t->resident &&
                  t->prefill == t->resident);
        } else {
            CHECK(t->resident == PLAN_HOST && t->compute == PLAN_HOST);
            CHECK((t->kind == PLAN_KIND_STREAM) == (t->prefill != PLAN_HOST));
            /*
             * nothing in RAM that a GPU could still hold (automatic plans
             * only: -ngl obeys), unless one of its unit's buffers is larger
             * than any the GPU allocates
             */
            for (int d = 1; d < p->devs.n && p->opts.n_gpu_layers < 0; d++) {
                const uint64_t cap = p->devs.dev[d].max_buffer_bytes;
                CHECK_MSG(t->unit_bytes > p->use[d].room || (cap && t->unit_largest > cap),
                          "%s: %s (unit %llu bytes) left in host RAM, %s has %llu free", what,
                          m->tensors[i].name, (unsigned long long)t->unit_bytes,
                          p->devs.dev[d].name, (unsigned long long)p->use[d].room);
            }
        }
        /*
         * every buffer on a GPU is one it can allocate; the LM head alone
         * splits by rows, into parts within the cap (plan_head_split_rows)
         */
        const uint64_t cap = p->devs.dev[t->resident].max_buffer_bytes;
        const uint32_t nb = plan_tensor_buffers(m, p, i);
        const bool head = m->tensors[i].role == PLAN_ROLE_OUTPUT;
        CHECK_MSG(nb == 1 || (head && t->resident != PLAN_HOST && cap &&
                              t->alloc_bytes > cap),
                  "%s: %s in %u buffers", what, m->tensors[i].name, nb);
        if (t->resident != PLAN_HOST && cap) {
            const uint64_t part = plan__head_rows(&m->tensors[i], cap, NULL) *
                                  (m->tensors[i].nbytes / m->tensors[i].ne[1]);
            CHECK_MSG(t->unit_largest <= cap && (head ? part > 0 && part <= cap &&
                                                            nb * part >= m->tensors[i].nbytes
                                                      : t->alloc_bytes <= cap),
                      "%s: %s on %s brings a buffer of %llu bytes (part %llu), past its %llu",
                      what, m->tensors[i].name, p->devs.dev[t->resident].name,
                      (unsigned long long)t->unit_largest, (unsigned long long)part,
                      (unsigned long long)cap);
        }
        if (t->kind == PLAN_KIND_STREAM && p->devs.dev[t->prefill].max_buffer_bytes)
            CHECK(t->alloc_bytes <= p->devs.dev[t->prefill].max_buffer_bytes);
    }
    for (int d = 1; d < p->devs.n; d++) {
        const uint64_t cap = p->devs.dev[d].max_buffer_bytes;
        if (!cap || !p->use[d].total)
            continue;
        CHECK_MSG(p->use[d].stream / 2 <= cap, "%s: %s stream half past its largest buffer", what,
                  p->devs.dev[d].name);
        CHECK_MSG(p->use[d].scratch <= cap, "%s: %s scratch %llu past its largest buffer %llu",
                  what, p->devs.dev[d].name, (unsigned long long)p->use[d].scratch,
                  (unsigned long long)cap);
        for (uint32_t l = 0; l < p->n_layer; l++)
            if (p->layers[l].attn_dev == d)
                CHECK(plan_kv_layer_largest(&m->arch, &p->opts, l) <= cap);
    }
    /* attention tensors run where their layer's KV lives */
    for (size_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].role == PLAN_ROLE_ATTN)
            CHECK(p->tensors[i].compute == p->layers[m->tensors[i].layer].attn_dev);
}

static bool same_plan(const struct plan *a, const struct plan *b)
{
    if (a->n_tensors != b->n_tensors || a->n_reasons != b->n_reasons ||
        memcmp(a->tensors, b->tensors, a->n_tensors * sizeof *a->tensors) ||
        memcmp(a->layers, b->layers, a->n_layer * sizeof *a->layers) ||
        memcmp(a->use, b->use, sizeof a->use) || a->decode_tps != b->decode_tps ||
        a->prefill_tps != b->prefill_tps)
        return false;
    for (size_t i = 0; i < a->n_reasons; i++)
        if (strcmp(a->reasons[i], b->reasons[i]))
            return false;
    return true;
}

static uint64_t gpu_weights(const struct plan *p)
{
    uint64_t s = 0;
    for (int d = 1; d < p->devs.n; d++)
        s += p->use[d].weights;
    return s;
}

static void budgets_for(const char *preset)
{
    static const unsigned budgets[] = {4, 6, 8, 12, 16, 24, 32, 48, 64, 80};
    struct plan_model m;
    REQUIRE(load_model(preset, "Q4_K_M", &m));
    uint64_t prev = 0;
    for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
        struct plan_devices d;
        struct plan p1, p2;
        char what[64];
        snprintf(what, sizeof what, "%s @ %u GiB", preset, budgets[b]);
        one_gpu(&d, (uint64_t)budgets[b] * GIB);
        CHECK_OK(plan_make(&m, &d, NULL, &p1));
        CHECK_OK(plan_make(&m, &d, NULL, &p2));
        check_invariants(&m, &p1, what);
        CHECK_MSG(same_plan(&p1, &p2), "%s: two runs differ", what);
        /* more VRAM never means fewer weights on it */
        CHECK_MSG(gpu_weights(&p1) >= prev, "%s: GPU weights shrank", what);
        prev = gpu_weights(&p1);
        CHECK(p1.decode_tps > 0 && p1.prefill_tps > 0);
        plan_free(&p1);
        plan_free(&p2);
    }
    /* the largest budget holds everything for both models */
    CHECK(prev >= plan_model_bytes(&m));
    plan_model_free(&m);
}

TEST(budgets_8b)
{
    budgets_for("llama3-8b");
}

TEST(budgets_70b)
{
    budgets_for("llama3-70b");
}

TEST(decode_70b_24gib)
{
    struct plan_model m;
    struct plan_devices d;
    struct plan p;
    REQUIRE(load_model("llama3-70b", "Q4_K_M", &m));
    CHECK_INT_EQ(plan_model_bytes(&m), 42512531456ll);
    plan_devices_init(&d);
    CHECK_OK(plan_devices_set_host(&d, "64GiB:70GB/s"));
    CHECK_OK(plan_devices_add(&d, "cuda:24GiB:1008GB/s"));
    CHECK_OK(plan_devices_set_pcie(&d, "25GB/s"));
    REQUIRE(plan_make(&m, &d, NULL, &p) == HEARTH_OK);
    check_invariants(&m, &p, "70b/24");
    double ceiling = 70e9 / (double)p.host_read_per_token;
    CHECK_NEAR(p.host_ceiling_tps, ceiling, 1e-9 * ceiling);
    CHECK_MSG(p.decode_tps < ceiling && p.decode_tps >= 0.8 * ceiling,
              "decode %.3f tok/s vs host ceiling %.3f", p.decode_tps, ceiling);
    /* the figure: about 3.5 tok/s */
    CHECK_MSG(ceiling > 3.0 && ceiling < 4.2, "ceiling %.3f", ceiling);
    printf("  70B Q4_K_M on 24 GiB: decode %.3f tok/s (ceiling %.3f), prefill %.1f tok/s, "
           "host %.2f GB/token\n",
           p.decode_tps, ceiling, p.prefill_tps, (double)p.host_read_per_token / 1e9);
    /* all attention and KV stay on the GPU; FFN spills */
    for (uint32_t l = 0; l < p.n_layer; l++)
        CHECK(p.layers[l].attn_dev == 1);
    CHECK(plan_env_reason(&p, "ffn_down.", NULL));
    CHECK(plan_env_reason(&p, "in host RAM, computed by the CPU", NULL));
    CHECK(plan_env_reason(&p, "attention and KV stay on the GPU", NULL));
    CHECK(p.streaming);
    CHECK(plan_env_reason(&p, "streamed to cuda0 for prefill", NULL));
    /* the GPU is filled to within one FFN tensor */
    CHECK_MSG(p.use[1].room < 200ull << 20, "room %llu", (unsigned long long)p.use[1].room);
    /* without streaming, prefill is the CPU's and much slower */
    struct plan_opts o;
    struct plan q;
    plan_opts_default(&o);
    o.no_stream = true;
    REQUIRE(plan_make(&m, &d, &o, &q) == HEARTH_OK);
    check_invariants(&m, &q, "70b/24 no stream");
    CHECK(!q.streaming && q.use[1].stream == 0);
    CHECK(q.prefill_tps < p.prefill_tps);
    CHECK(q.use[1].weights >= p.use[1].weights); /* the stream buffer's room goes to weights */
    plan_free(&q);
    plan_free(&p);
    plan_model_free(&m);
}

TEST(fits_8b_8gib)
{
    struct plan_model m;
    struct plan_devices d;
    struct plan p;
    struct plan_opts o;
    REQUIRE(load_model("llama3-8b", "Q4_K_M", &m));
    one_gpu(&d, 8 * GIB);
    plan_opts_default(&o);
    o.n_ctx = 4096;
    REQUIRE(plan_make(&m, &d, &o, &p) == HEARTH_OK);
    check_invariants(&m, &p, "8b/8");
    for (size_t i = 0; i < m.n_tensors; i++)
        CHECK_MSG(p.tensors[i].resident == 1, "%s not on the GPU", m.tensors[i].name);
    CHECK(plan_env_reason(&p, "everything fits on the GPU", NULL));
    CHECK_INT_EQ(p.host_read_per_token, 0);
    CHECK(p.host_ceiling_tps == 0);
    CHECK(!p.streaming);
    /* 32 layers x (K + V) x 4096 rows x 1024 x 2 bytes */
    CHECK_INT_EQ(p.use[1].kv, 32ll * 2 * 4096 * 1024 * 2);
    plan_free(&p);
    plan_model_free(&m);
}

TEST(kv_grows_and_pushes_off)
{
    struct plan_model m;
    struct plan_devices d;
    struct plan a, b, c;
    struct plan_opts o;
    REQUIRE(load_model("llama3-8b", "Q4_K_M", &m));
    one_gpu(&d, 8 * GIB);
    plan_opts_default(&o);
    o.n_ctx = 4096;
    REQUIRE(plan_make(&m, &d, &o, &a) == HEARTH_OK);
    o.n_ctx = 32768;
    REQUIRE(plan_make(&m, &d, &o, &b) == HEARTH_OK);
    o.n_ctx = 8192;
    o.n_parallel = 4;
    REQUIRE(plan_make(&m, &d, &o, &c) == HEARTH_OK);
    check_invariants(&m, &b, "8b/8 32k");
    check_invariants(&m, &c, "8b/8 8k x4");
    CHECK_INT_EQ(b.layers[0].kv_bytes, 8 * a.layers[0].kv_bytes);
    CHECK_INT_EQ(c.layers[0].kv_bytes, 8 * a.layers[0].kv_bytes);
    CHECK(b.use[1].kv == 8 * a.use[1].kv); /* 4 GiB of KV still fits with attention */
    CHECK_MSG(b.use[1].weights < a.use[1].weights, "32k context pushed nothing off");
    CHECK(c.use[1].weights < a.use[1].weights);
    CHECK(b.host_read_per_token > 0 && b.decode_tps < a.decode_tps);
    CHECK(c.decode_tps_total > c.decode_tps);
    /* quantized KV: Q8_0 is 34/32 bytes per element over 2 for F16; rot3 at d=128: 50 bytes */
    struct plan_opts k;
    plan_opts_default(&k);
    k.n_ctx = 4096;
    k.kv_type_k = KVQ_Q8_0;
    k.kv_type_v = KVQ_Q8_0;
    /* a compressed K adds its k_aux: key mean and sink, 2 x 1024 floats */
    CHECK_INT_EQ(plan_kv_layer_bytes(&m.arch, &k, 0), 2ll * 4096 * (1024 / 32) * 34 + 8192);
    k.kv_type_v = KVQ_ROT3;
    CHECK_INT_EQ(plan_kv_layer_bytes(&m.arch, &k, 0),
                 4096ll * (1024 / 32) * 34 + 4096ll * (1024 / 128) * (2 + 128 * 3 / 8) + 8192);
    k.kv_type_k = KVQ_F16;
    k.kv_type_v = KVQ_Q8_0;
    CHECK_INT_EQ(plan_kv_layer_bytes(&m.arch, &k, 0), 4096ll * 1024 * 2 + 4096ll * (1024 / 32) * 34);
    k.kv_type_v = KVQ_TYPE_COUNT;
    struct plan bad;
    CHECK_INT_EQ(plan_make(&m, &d, &k, &bad), HEARTH_ERR_INVALID_ARG);
    plan_free(&a);
    plan_free(&b);
    plan_free(&c);
    plan_model_free(&m);
}

TEST(manual_ngl)
{
    struct plan_model m;
    struct plan_devices d;
    struct plan p;
    struct plan_opts o;
    REQUIRE(load_model("llama3-70b", "Q4_K_M", &m));
    one_gpu(&d, 24 * GIB);
    plan_opts_default(&o);
    o.n_gpu_layers = 10;
    REQUIRE(plan_make(&m, &d, &o, &p) == HEARTH_OK);
    check_invariants(&m, &p, "70b -ngl 10");
    for (uint32_t l = 0; l < p.n_layer; l++) {
        int want = l < 10 ? 1 : PLAN_HOST;
        CHECK(p.layers[l].attn_dev == want);
        CHECK(p.layers[l].ffn_dev == want);
    }
    for (size_t i = 0; i < m.n_tensors; i++)
        if (m.tensors[i].role == PLAN_ROLE_OUTPUT)
            CHECK(p.tensors[i].resident == PLAN_HOST);
    plan_free(&p);
    o.n_gpu_layers = 81;
    CHECK_INT_EQ(plan_make(&m, &d, &o, &p), HEARTH_ERR_DEVICE_OOM);
    CHECK(strstr(hearth_last_error(), "cuda0") != NULL);
    CHECK(strstr(hearth_last_error(), "-ngl 81") != NULL);
    plan_model_free(&m);
}

TEST(two_gpus_fastest_first)
{
    struct plan_model m;
    struct plan_devices d;
    struct plan p;
    REQUIRE(load_model("llama3-70b", "Q4_K_M", &m));
    plan_devices_init(&d);
    CHECK_OK(plan_devices_set_host(&d, "128GiB:70GB/s"));
    CHECK_OK(plan_devices_add(&d, "vulkan:16GiB:256GB/s"));
    CHECK_OK(plan_devices_add(&d, "cuda:24GiB:1008GB/s"));
    CHECK_STR_EQ(d.dev[1].name, "vulkan0");
    CHECK_STR_EQ(d.dev[2].name, "cuda0");
    REQUIRE(plan_make(&m, &d, NULL, &p) == HEARTH_OK);
    check_invariants(&m, &p, "70b on 16+24");
    CHECK(p.layers[0].attn_dev == 2); /* the faster card gets the first units */
    CHECK(p.use[1].weights > 0 && p.use[2].weights > 0);
    CHECK(p.use[2].weights > p.use[1].weights);
    plan_free(&p);
    plan_model_free(&m);
}

/*
 * A GPU whose driver caps one buffer (Vulkan: maxStorageBufferRange,
 * maxMemoryAllocationSize) gets no unit with a larger buffer, and the
 * reasons say which and why; budgets alone would have placed them there.
 */
TEST(buffer_cap)
{
    struct plan_model m;
    struct plan_devices d;
    struct plan p;
    struct plan_opts o;
    REQUIRE(load_model("llama3-8b", "Q4_K_M", &m));
    plan_devices_init(&d);
    CHECK_OK(plan_devices_set_host(&d, "64GiB:50GB/s"));
    CHECK_OK(plan_devices_add(&d, "vulkan:24GiB:256GB/s"));
    CHECK_OK(plan_devices_add(&d, "cuda:24GiB:1008GB/s"));
    CHECK_INT_EQ(d.dev[1].max_buffer_bytes, PLAN_DEFAULT_VULKAN_MAX_BUFFER);
    CHECK_INT_EQ(d.dev[2].max_buffer_bytes, 0);
    d.n = 2; /* the Vulkan card alone */
    /* 4 GiB: everything fits as before */
    REQUIRE(plan_make(&m, &d, NULL, &p) == HEARTH_OK);
    check_invariants(&m, &p, "8b on vulkan, 4 GiB buffers");
    CHECK_INT_EQ(p.n_limits, 0);
    for (size_t i = 0; i < m.n_tensors; i++)
        CHECK(p.tensors[i].resident == 1);
    plan_free(&p);
    /*
     * 256 MiB: the Q6_K head (411 MiB) goes in two row parts; the Q4_K
     * token_embd (282 MiB), which gathers rows and does not split, stays
     * home; every other tensor on the GPU
     */
    d.dev[1].max_buffer_bytes = 256ull << 20;
    REQUIRE(plan_make(&m, &d, NULL, &p) == HEARTH_OK);
    check_invariants(&m, &p, "8b on vulkan, 256 MiB buffers");
    for (size_t i = 0; i < m.n_tensors; i++) {
        bool big = !strcmp(m.tensors[i].name, "token_embd.weight");
        CHECK_MSG(p.tensors[i].resident == (big ? PLAN_HOST : 1), "%s on %d",
                  m.tensors[i].name, p.tensors[i].resident);
        if (!strcmp(m.tensors[i].name, "output.weight"))
            CHECK_INT_EQ(plan_tensor_buffers(&m, &p, i), 2);
    }
    CHECK(p.n_limits == 1 && p.limits[0].dev == 1 && !p.limits[0].scratch);
    CHECK(plan_env_reason(&p, "token_embd.weight (282 MiB in one buffer) kept off vulkan0",
                          "largest buffer it allocates is 256 MiB"));
    CHECK(plan_env_reason(&p, "output.weight (LM head, 411 MiB Q6_K) on vulkan0 in 2 buffers",
                          "256 MiB, its driver's limit"));
    plan_free(&p);
    /* a long shared context: each layer's K (1 GiB) is past the cap, attention stays home */
    plan_opts_default(&o);
    o.n_ctx = 131072;
    o.n_parallel = 4;
    REQUIRE(plan_make(&m, &d, &o, &p) == HEARTH_OK);
    check_invariants(&m, &p, "8b on vulkan, 256 MiB buffers, 4 x 128k");
    for (uint32_t l = 0; l < p.n_layer; l++)
        CHECK(p.layers[l].attn_dev == PLAN_HOST && p.layers[l].ffn_dev == 1);
    CHECK_INT_EQ(p.n_limits, (long long)p.n_layer + 1); /* + token_embd (the head splits) */
    CHECK(plan_env_reason(&p, "the KV cache of layer 0 (1024 MiB in one buffer)", NULL));
    CHECK(plan_env_reason(&p, "more units kept off a GPU by its largest buffer", NULL));
    plan_free(&p);
    /* 64 MiB: the 512-token scratch (100 MiB) does not fit, the GPU is not used */
    d.dev[1].max_buffer_bytes = 64ull << 20;
    REQUIRE(plan_make(&m, &d, NULL, &p) == HEARTH_OK);
    check_invariants(&m, &p, "8b on vulkan, 64 MiB buffers");
    CHECK_INT_EQ(p.use[1].total, 0);
    CHECK(p.n_limits == 1 && p.limits[0].scratch);
    CHECK(plan_env_reason(&p, "vulkan0 unused: the scratch of 512-token batches is one buffer",
                          "a smaller batch (-b) would fit"));
    plan_free(&p);
    o.n_ctx = 0;
    o.n_parallel = 0;
    o.n_gpu_layers = 8;
    CHECK_INT_EQ(plan_make(&m, &d, &o, &p), HEARTH_ERR_DEVICE_OOM);
    CHECK(strstr(hearth_last_error(), "-ngl 8") && strstr(hearth_last_error(), "vulkan0"));
    /* ... and with 64-token batches it does; Q6_K ffn_down (48 MiB) still fits */
    o.n_gpu_layers = -1;
    o.n_batch = 64;
    REQUIRE(plan_make(&m, &d, &o, &p) == HEARTH_OK);
    check_invariants(&m, &p, "8b on vulkan, 64 MiB buffers, batch 64");
    CHECK(p.use[1].total > 0 && p.layers[31].ffn_dev == 1);
    plan_free(&p);
    /*
     * 40 MiB on an 8 GiB card: the Q6_K ffn_down matrices stay home and are
     * not streamed (a stream half could not hold one); Q4_K ones are.
     */
    d.dev[1].max_buffer_bytes = 40ull << 20;
    d.dev[1].budget_bytes = 2ull << 30;
    REQUIRE(plan_make(&m, &d, &o, &p) == HEARTH_OK);
    check_invariants(&m, &p, "8b on vulkan 2 GiB, 40 MiB buffers, batch 64");
    int big_home = 0, streamed = 0;
    for (size_t i = 0; i < m.n_tensors; i++) {
        if (m.tensors[i].role != PLAN_ROLE_FFN)
            continue;
        if (m.tensors[i].nbytes > (40ull << 20)) {
            big_home++;
            CHECK(p.tensors[i].resident == PLAN_HOST && p.tensors[i].kind == PLAN_KIND_HOST);
        }
        streamed += p.tensors[i].kind == PLAN_KIND_STREAM;
    }
    CHECK(big_home > 0 && streamed > 0 && p.streaming);
    plan_free(&p);
    plan_model_free(&m);
}

TEST(host_only)
{
    struct plan_model m;
    struct plan_devices d;
    struct plan p;
    REQUIRE(load_model("llama3-8b", "Q4_K_M", &m));
    plan_devices_init(&d);
    CHECK_OK(plan_devices_set_host(&d, "32GiB:50GB/s"));
    REQUIRE(plan_make(&m, &d, NULL, &p) == HEARTH_OK);
    check_invariants(&m, &p, "8b host only");
    CHECK(plan_env_reason(&p, "no GPU", NULL));
    CHECK(p.decode_tps < p.host_ceiling_tps + 1e-12);
    /* decode reads all but token_embd (one row) and some KV */
    CHECK(p.host_read_per_token > plan_model_bytes(&m) - 300000000ull);
    plan_free(&p);
    plan_model_free(&m);
}

/* A header-only Gemma 3 270M Q4_K_M planned on a described host alone. */
static bool gemma3_host_plan(const char *host, struct plan_model *m, struct plan *p)
{
    struct plan_devices d;
    if (!load_model("gemma3-270m", "Q4_K_M", m))
        return false;
    plan_devices_init(&d);
    if (plan_devices_set_host(&d, host) != HEARTH_OK || plan_make(m, &d, NULL, p) != HEARTH_OK) {
        plan_model_free(m);
        return false;
    }
    return true;
}

/*
 * Compute-bound prefill on the host (memory 10 TB/s, 100 GFLOP/s): the
 * prediction is every matrix's 2 * params FLOPs per prompt token plus
 * attention, except the LM head, which gives the last token's logits only
 * (one token). Gemma 3 270M's tied head is 168M of its 268M parameters, so
 * costing it per token would predict ~2.7x the time.
 */
TEST(prefill_head_once)
{
    struct plan_model m;
    struct plan p;
    REQUIRE(gemma3_host_plan("64GiB:10000GB/s:100GFLOPS", &m, &p));
    const double P = (double)p.opts.n_prompt, F = 100e9;
    double flop = 0.0, head = 0.0;
    for (size_t i = 0; i < m.n_tensors; i++) {
        const struct plan_model_tensor *t = &m.tensors[i];
        const double n = (double)t->ne[0] * (double)t->ne[1] * (double)t->ne[2] * (double)t->ne[3];
        if (t->role == PLAN_ROLE_OUTPUT)
            head += 2.0 * n;
        else if (t->role != PLAN_ROLE_EMBD)
            flop += 2.0 * n * P;
    }
    CHECK(head > 3e8); /* the tied head: 262144 x 640 */
    flop += head + m.arch.n_layer * 4.0 * m.arch.n_head * m.arch.head_dim_k * P * (P + 1) / 2.0;
    const double want = P / (flop / F);
    CHECK_MSG(fabs(p.prefill_tps - want) < 0.01 * want, "prefill %.1f tok/s, want %.1f",
              p.prefill_tps, want);
    plan_free(&p);
    plan_model_free(&m);
}

/*
 * Memory-bound prefill on the host (10 GB/s, 1 PFLOP/s): every matrix read
 * once per micro-batch, the embedding's rows of the prompt, the head once,
 * and the per-token work between the matmuls at 12 bytes an element: per
 * layer and token, attention's norm, input quantization of q/k/v (E) and of
 * the output matmul (Q), QK/RoPE on q and k, K and V stores and add, the
 * FFN's norm, input quantization of gate/up (E) and down (F), GLU and add,
 * and gemma3's two post-norms.
 */
TEST(prefill_row_work)
{
    struct plan_model m;
    struct plan p;
    REQUIRE(gemma3_host_plan("64GiB:10GB/s:1000000GFLOPS", &m, &p));
    const double P = (double)p.opts.n_prompt, BW = 10e9;
    REQUIRE(p.opts.n_batch >= p.opts.n_prompt); /* one micro-batch */
    double bytes = 0.0;
    for (size_t i = 0; i < m.n_tensors; i++) {
        const struct plan_model_tensor *t = &m.tensors[i];
        if (t->role == PLAN_ROLE_EMBD)
            bytes += P * (double)t->nbytes / (double)t->ne[1];
        else
            bytes += (double)t->nbytes;
    }
    const struct arch_info *a = &m.arch;
    const double E = a->n_embd, Q = (double)a->n_head * a->head_dim_k,
                 KV = (double)a->n_head_kv * a->head_dim_k;
    const double F = a->n_ff;
    const double per_layer = (E + (E + Q) + Q + 3.0 * KV + E + E) + (E + (E + F) + F + E + E);
    const double rows = (double)a->n_layer * P * per_layer * 12.0;
    const double want = P / ((bytes + rows) / BW);
    CHECK_MSG(fabs(p.prefill_tps - want) < 1e-3 * want, "prefill %.3f tok/s, want %.3f",
              p.prefill_tps, want);
    /* the term is there: without it the prediction would be over 3% faster */
    CHECK(P / (bytes / BW) > 1.03 * p.prefill_tps);
    plan_free(&p);
    plan_model_free(&m);
}

/*
 * A described Vulkan GPU brings its backend's host staging (4 x 64 MiB, what
 * vulkan0 reports: test-vk-backend) into the host's bytes, with a reason; a
 * CUDA one does not, nor an unused Vulkan one; a host budget that holds the
 * plan only without it is overcommitted, as any host overflow.
 */
TEST(vulkan_host_staging)
{
    struct plan_model m;
    struct plan_devices d;
    struct plan v, c;
    REQUIRE(load_model("llama3-8b", "Q4_K_M", &m));
    plan_devices_init(&d);
    CHECK_OK(plan_devices_set_host(&d, "32GiB:50GB/s"));
    CHECK_OK(plan_devices_add(&d, "vulkan:8GiB:256GB/s"));
    CHECK_INT_EQ(d.dev[1].host_staging_bytes, 256ll << 20);
    CHECK_INT_EQ(d.dev[PLAN_HOST].host_staging_bytes, 0);
    REQUIRE(plan_make(&m, &d, NULL, &v) == HEARTH_OK);
    check_invariants(&m, &v, "8b on vulkan 8");
    CHECK_INT_EQ(v.use[PLAN_HOST].host_staging, 256ll << 20);
    CHECK_INT_EQ(v.use[1].host_staging, 0);
    CHECK(plan_env_reason(&v, "vulkan0's backend stages its own copies through up to 256 MiB of "
                              "host RAM",
                          NULL));
    /* the same card described as CUDA: no backend staging, host smaller by exactly that */
    struct plan_devices dc;
    plan_devices_init(&dc);
    CHECK_OK(plan_devices_set_host(&dc, "32GiB:50GB/s"));
    CHECK_OK(plan_devices_add(&dc, "cuda:8GiB:256GB/s"));
    CHECK_INT_EQ(dc.dev[1].host_staging_bytes, 0);
    REQUIRE(plan_make(&m, &dc, NULL, &c) == HEARTH_OK);
    check_invariants(&m, &c, "8b on cuda 8");
    CHECK_INT_EQ(c.use[PLAN_HOST].host_staging, 0);
    CHECK(!plan_env_reason(&c, "stages its own copies", NULL));
    CHECK_INT_EQ(v.use[PLAN_HOST].total - c.use[PLAN_HOST].total, 256ll << 20);
    CHECK_INT_EQ(plan_device_alloc_bytes(&v, PLAN_HOST), plan_device_alloc_bytes(&c, PLAN_HOST));
    /* a host budget between the two: the Vulkan plan overflows it, the CUDA one does not */
    const uint64_t mid = c.use[PLAN_HOST].total + (128ull << 20);
    d.dev[PLAN_HOST].budget_bytes = dc.dev[PLAN_HOST].budget_bytes = mid;
    plan_free(&v);
    plan_free(&c);
    REQUIRE(plan_make(&m, &d, NULL, &v) == HEARTH_OK);
    REQUIRE(plan_make(&m, &dc, NULL, &c) == HEARTH_OK);
    CHECK(v.host_overcommitted && plan_env_reason(&v, "host needs", NULL));
    CHECK(!c.host_overcommitted && !plan_env_reason(&c, "host needs", NULL));
    CHECK_INT_EQ(v.use[PLAN_HOST].room, 0);
    plan_free(&v);
    plan_free(&c);
    /* a second Vulkan card too small to be used adds nothing; two used ones add two */
    d.dev[PLAN_HOST].budget_bytes = 32ull << 30;
    CHECK_OK(plan_devices_add(&d, "vulkan:128MiB:100GB/s"));
    REQUIRE(plan_make(&m, &d, NULL, &v) == HEARTH_OK);
    check_invariants(&m, &v, "8b on vulkan 8 + 0.125");
    CHECK_INT_EQ(v.use[2].total, 0);
    CHECK_INT_EQ(v.use[PLAN_HOST].host_staging, 256ll << 20);
    plan_free(&v);
    d.dev[2].budget_bytes = 4ull << 30;
    d.dev[1].budget_bytes = 3ull << 30;
    REQUIRE(plan_make(&m, &d, NULL, &v) == HEARTH_OK);
    check_invariants(&m, &v, "8b on vulkan 3 + 4");
    CHECK(v.use[1].total > 0 && v.use[2].total > 0);
    CHECK_INT_EQ(v.use[PLAN_HOST].host_staging, 512ll << 20);
    plan_free(&v);
    plan_model_free(&m);
}

TEST(retype_matches_quant_mix)
{
    struct plan_model m, q;
    const struct quant_mix *mix;
    REQUIRE(load_model("llama3-70b", "Q4_K_M", &m));
    static const struct {
        const char *name;
        uint64_t bytes;
    } want[] = {{"Q4_K_M", 42512531456ull}, {"Q8_0", 74967187456ull}, {"Q2_K", 26367246336ull},
                {"IQ4_XS", 38261800960ull}, {"F16", 141110050816ull}, {"Q3_K_M", 34259632128ull}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        REQUIRE(quant_mix_from_name(want[i].name, &mix) == HEARTH_OK);
        CHECK_OK(plan_model_retype(&m, mix, false, &q));
        CHECK_MSG(plan_model_bytes(&q) == want[i].bytes, "%s: %llu", want[i].name,
                  (unsigned long long)plan_model_bytes(&q));
        plan_model_free(&q);
    }
    plan_model_free(&m);
}

TEST(bad_device_strings)
{
    struct plan_devices d;
    plan_devices_init(&d);
    CHECK_INT_EQ(plan_devices_add(&d, "cuda:24GiB"), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "KIND:MEMORY:BANDWIDTH") != NULL);
    CHECK_INT_EQ(plan_devices_add(&d, "tpu:24GiB:1008GB/s"), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "kind 'tpu'") != NULL);
    CHECK_INT_EQ(plan_devices_add(&d, "cuda:24XB:1008GB/s"), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "memory") != NULL);
    CHECK(strstr(hearth_last_error(), "'24XB'") != NULL);
    CHECK_INT_EQ(plan_devices_add(&d, "cuda:24GiB:fast"), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "bandwidth 'fast'") != NULL ||
          (strstr(hearth_last_error(), "bandwidth") && strstr(hearth_last_error(), "'fast'")));
    CHECK_INT_EQ(plan_devices_add(&d, "cuda:24GiB:1008GB/s:lots"), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "FLOP rate") != NULL);
    CHECK_INT_EQ(plan_devices_set_host(&d, "64GiB"), HEARTH_ERR_INVALID_ARG);
    CHECK_INT_EQ(plan_devices_set_pcie(&d, "25"), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "--pcie") != NULL);
    CHECK_INT_EQ(d.n, 1);
    CHECK_OK(plan_devices_add(&d, "cuda:1.5GiB:900GB/s:80TFLOPS"));
    CHECK_INT_EQ(d.dev[1].budget_bytes, 1610612736ll);
    CHECK_NEAR(d.dev[1].mem_bw, 900e9, 1);
    CHECK_NEAR(d.dev[1].flops, 80e12, 1);
    CHECK(!d.dev[1].flops_assumed && d.dev[1].h2d_bw_assumed);
}

TEST_MAIN(TEST_CASE(budgets_8b), TEST_CASE(budgets_70b), TEST_CASE(decode_70b_24gib),
          TEST_CASE(fits_8b_8gib), TEST_CASE(kv_grows_and_pushes_off), TEST_CASE(manual_ngl),
          TEST_CASE(two_gpus_fastest_first), TEST_CASE(buffer_cap), TEST_CASE(host_only), TEST_CASE(prefill_head_once),
          TEST_CASE(prefill_row_work), TEST_CASE(vulkan_host_staging),
          TEST_CASE(retype_matches_quant_mix), TEST_CASE(bad_device_strings))
