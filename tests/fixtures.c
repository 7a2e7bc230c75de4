/* fixtures: see fixtures.h. */
#include "fixtures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant-mix.h"
#include "synth.h"
#include "test.h"

struct hearth_device *fixture_cpu_device(const char *name, int n_threads)
{
    struct cpu_backend_params p = {.n_threads = n_threads, .isa = -1, .name = name};
    struct hearth_device *d = NULL;
    CHECK_OK(cpu_backend_device_create(&p, &d));
    return d;
}

struct model *fixture_model(const char *file)
{
    const char *path = test_model_path(file);
    if (!path)
        return NULL;
    struct model *m = NULL;
    CHECK_OK(model_load(path, &m));
    return m;
}

struct plan_opts fixture_kv_opts(uint32_t n_ctx, int kt, int vt, uint32_t w, bool swa_full)
{
    struct plan_opts o;
    plan_opts_default(&o);
    o.n_ctx = n_ctx;
    o.kv_type_k = kt;
    o.kv_type_v = vt;
    o.kv_window = w;
    o.swa_full = swa_full;
    return o;
}

const char *fixture_tiny_gemma3_path(void)
{
    static char path[512];
    if (path[0])
        return path;
    const struct model_preset *base = NULL;
    CHECK_OK(model_preset_find("gemma3-270m", &base));
    if (!base)
        return NULL;
    static struct model_preset p;
    p = *base;
    p.name = "tiny-gemma3";
    p.n_layer = 6; /* layers 0-4 local, 5 global */
    p.n_embd = 128;
    p.n_head = 2;
    p.n_head_kv = 1;
    p.head_dim = 64;
    p.n_ff = 256;
    p.n_vocab = 512;
    p.sliding_window = 16;
    struct synth_opts so;
    memset(&so, 0, sizeof so);
    so.preset = &p;
    CHECK_OK(quant_mix_from_name("Q8_0", &so.mix));
    so.seed = 11;
    so.std = 0.08f;
    char file[512];
    snprintf(file, sizeof file, "%s/tiny-gemma3.gguf", test_tmp_dir());
    if (!so.mix)
        return NULL;
    hearth_status st = synth_write(&so, file, NULL);
    CHECK_OK(st);
    if (st != HEARTH_OK)
        return NULL;
    memcpy(path, file, sizeof path);
    return path;
}

static char qwen3_path[512];

static void remove_qwen3(void)
{
    remove(qwen3_path);
}

const char *fixture_synth_qwen3_path(void)
{
    if (qwen3_path[0])
        return qwen3_path;
    struct synth_opts so;
    memset(&so, 0, sizeof so);
    CHECK_OK(model_preset_find("qwen3-0.6b", &so.preset));
    CHECK_OK(quant_mix_from_name("Q8_0", &so.mix));
    if (!so.preset || !so.mix)
        return NULL;
    so.n_layer = 2;
    so.seed = 3;
    so.std = 0.05f;
    so.norm_std = 0.3f;
    char file[512];
    snprintf(file, sizeof file, "%s/synth-qwen3.gguf", test_tmp_dir());
    hearth_status st = synth_write(&so, file, NULL);
    CHECK_OK(st);
    if (st != HEARTH_OK) {
        remove(file);
        return NULL;
    }
    memcpy(qwen3_path, file, sizeof qwen3_path);
    atexit(remove_qwen3);
    return qwen3_path;
}

bool fixture_asan_slow_unwind(void)
{
#if defined(__SANITIZE_ADDRESS__)
    const char *o = getenv("LSAN_OPTIONS");
    return o && strstr(o, "fast_unwind_on_malloc=0") != NULL;
#else
    return false;
#endif
}
