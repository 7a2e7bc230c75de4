/*
 * test-synth: random-weight models written by core/synth and read back with the
 * GGUF reader: sizes against the facts sheet (§7.7, §8.8), tensor names, shapes
 * and types against the preset and mix, dequantized values finite with the
 * intended spread, and byte-for-byte determinism per seed.
 */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch-info.h"
#include "gguf.h"
#include "model-presets.h"
#include "quant-mix.h"
#include "quant.h"
#include "rng.h"
#include "synth.h"
#include "test.h"

static const char *tmp_path(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", test_tmp_dir(), name);
    return path;
}

static hearth_status synth(const char *preset, const char *mix, bool header_only, uint64_t seed,
                           uint32_t n_layer, const char *path, struct synth_stats *s)
{
    struct synth_opts o;
    memset(&o, 0, sizeof o);
    hearth_status st = model_preset_find(preset, &o.preset);
    if (st == HEARTH_OK)
        st = quant_mix_from_name(mix, &o.mix);
    if (st != HEARTH_OK)
        return st;
    o.header_only = header_only;
    o.seed = seed;
    o.n_layer = n_layer;
    return synth_write(&o, path, s);
}

static uint64_t sum_tensor_bytes(const struct gguf_file *f)
{
    uint64_t total = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        total += f->tensors[i].nbytes;
    return total;
}

TEST(header_only_70b)
{
    const char *path = tmp_path("70b-q4_k_m.gguf");
    struct synth_stats s;
    CHECK_OK(synth("llama3-70b", "Q4_K_M", true, 1, 0, path, &s));
    struct stat sb;
    REQUIRE(stat(path, &sb) == 0);
    double gib = (double)sb.st_size / 1073741824.0;
    CHECK_MSG(fabs(gib - 39.6) <= 0.396, "70B Q4_K_M file is %.3f GiB, want 39.6 +- 1%%", gib);
    CHECK_INT_EQ((uint64_t)sb.st_size, s.file_size);
    /* the data is a hole: the file takes a few MB of disk, not 40 GB */
    CHECK_MSG((uint64_t)sb.st_blocks * 512u < (64u << 20), "file occupies %llu bytes of disk",
              (unsigned long long)sb.st_blocks * 512u);
    struct gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    REQUIRE(f != NULL);
    CHECK_INT_EQ(f->n_tensors, 723);
    CHECK_INT_EQ(sum_tensor_bytes(f), 42512531456ll);
    CHECK_INT_EQ(s.tensor_bytes, 42512531456ll);
    struct arch_info ai;
    CHECK_OK(arch_info_read(f, &ai));
    CHECK_STR_EQ(ai.arch, "llama");
    CHECK_INT_EQ(ai.n_layer, 80);
    CHECK_INT_EQ(ai.n_embd, 8192);
    CHECK_INT_EQ(ai.n_head, 64);
    CHECK_INT_EQ(ai.n_head_kv, 8);
    CHECK_INT_EQ(ai.n_ff, 28672);
    CHECK_INT_EQ(ai.n_vocab, 128256);
    CHECK(!ai.tied);
    uint32_t ft = 0;
    CHECK_OK(gguf_get_u32(f, "general.file_type", &ft));
    CHECK_INT_EQ(ft, 15);
    const struct gguf_tensor *v10 = gguf_find_tensor(f, "blk.10.attn_v.weight");
    REQUIRE(v10 != NULL);
    CHECK_INT_EQ(v10->type, HEARTH_DTYPE_Q5_K);
    gguf_close(f);
    unlink(path);
}

TEST(header_only_8b)
{
    const char *path = tmp_path("8b-q4_k_m.gguf");
    struct synth_stats s;
    CHECK_OK(synth("llama3-8b", "Q4_K_M", true, 1, 0, path, &s));
    struct gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    REQUIRE(f != NULL);
    CHECK_INT_EQ(f->n_tensors, 291);
    uint64_t bytes = sum_tensor_bytes(f);
    CHECK_INT_EQ(bytes, 4912898048ll);
    /* llama-bench prints 4.58 GiB of tensor data for published 8B Q4_K_M files (§7.7) */
    CHECK_NEAR((double)bytes / 1073741824.0, 4.58, 0.005);
    /* header: 128256 tokens and types; well under the ~8-10 MB of a real file with merges */
    CHECK(f->size > bytes && f->size - bytes < (16u << 20));
    gguf_close(f);
    unlink(path);
}

TEST(header_only_gemma3)
{
    const char *path = tmp_path("gemma3-q4_k_m.gguf");
    struct synth_stats s;
    CHECK_OK(synth("gemma3-270m", "Q4_K_M", true, 1, 0, path, &s));
    struct gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    REQUIRE(f != NULL);
    CHECK_INT_EQ(f->n_tensors, 236);
    CHECK_INT_EQ(sum_tensor_bytes(f), 246587904ll); /* §8.8 */
    struct arch_info ai;
    CHECK_OK(arch_info_read(f, &ai));
    CHECK_STR_EQ(ai.arch, "gemma3");
    CHECK_INT_EQ(ai.head_dim_k, 256);
    CHECK_INT_EQ(ai.n_rot, 256);
    CHECK_INT_EQ(ai.sliding_window, 512);
    CHECK(ai.tied);
    CHECK(gguf_find_tensor(f, "blk.17.post_ffw_norm.weight") != NULL);
    gguf_close(f);
    unlink(path);
}

/* Dequantizes up to the first max_elems of t (whole blocks) into vals; returns the count. */
static uint64_t dequant_prefix(const struct gguf_tensor *t, float *vals, uint64_t max_elems)
{
    const struct quant_traits *q = quant_get(t->type);
    if (!q || !q->to_float)
        return 0;
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims; d++)
        n *= t->ne[d];
    if (n > max_elems)
        n = max_elems - max_elems % (uint64_t)q->blck;
    q->to_float(t->data, vals, (int64_t)n);
    return n;
}

/* A real synth file: names, shapes, types, metadata, values. */
static void check_real(const char *mix_name)
{
    char name[64];
    snprintf(name, sizeof name, "smollm2-%s.gguf", mix_name);
    const char *path = tmp_path(name);
    struct synth_stats s;
    CHECK_OK(synth("smollm2-135m", mix_name, false, 42, 0, path, &s));
    const struct model_preset *p;
    const struct quant_mix *mix;
    struct quant_mix_ctx ctx;
    REQUIRE(model_preset_find("smollm2-135m", &p) == HEARTH_OK);
    REQUIRE(quant_mix_from_name(mix_name, &mix) == HEARTH_OK);
    REQUIRE(quant_mix_ctx_init(&ctx, mix, "llama", 30, 9, 3, 0, false) == HEARTH_OK);
    struct gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    REQUIRE(f != NULL);
    CHECK_INT_EQ(f->n_tensors, 272);
    uint32_t u = 0;
    CHECK_OK(gguf_get_u32(f, "general.file_type", &u));
    CHECK_INT_EQ(u, (uint32_t)mix->ftype);
    CHECK_OK(gguf_get_u32(f, "general.quantization_version", &u));
    CHECK_INT_EQ(u, 2);
    struct gguf_str gs;
    CHECK_OK(gguf_get_str(f, "tokenizer.ggml.model", &gs));
    CHECK(gguf_str_eq(gs, "gpt2"));
    CHECK_OK(gguf_get_str(f, "general.name", &gs));
    char want_name[96];
    snprintf(want_name, sizeof want_name, "hearth synth smollm2-135m %s", mix->name);
    CHECK(gguf_str_eq(gs, want_name));
    const struct gguf_kv *tok = gguf_find_kv(f, "tokenizer.ggml.tokens");
    REQUIRE(tok != NULL && tok->type == GGUF_VT_ARRAY && tok->arr_type == GGUF_VT_STRING);
    CHECK_INT_EQ(tok->arr_n, 49152);
    CHECK(gguf_str_eq(tok->arr_strs[0x20], "\xc4\xa0")); /* space -> U+0120 */
    CHECK(gguf_str_eq(tok->arr_strs[0x0a], "\xc4\x8a")); /* newline -> U+010A */
    CHECK(gguf_str_eq(tok->arr_strs[0xad], "\xc5\x83")); /* 0xAD -> U+0143 */
    CHECK(gguf_str_eq(tok->arr_strs['A'], "A"));
    CHECK_OK(gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &u));
    CHECK(gguf_str_eq(tok->arr_strs[u], "<|begin_of_text|>"));
    float *vals = malloc((size_t)1 << 22);
    REQUIRE(vals != NULL);
    struct preset_tensor pt;
    for (size_t i = 0; model_preset_tensor(p, i, &pt); i++) {
        const struct gguf_tensor *t = gguf_find_tensor(f, pt.name);
        CHECK_MSG(t != NULL, "tensor %s missing", pt.name);
        if (!t)
            continue;
        hearth_dtype want;
        CHECK_OK(quant_mix_type_for(&ctx, pt.name, pt.n_dims, pt.ne, &want));
        CHECK_MSG(t->type == want, "%s: %s, want %s", pt.name, hearth_dtype_name(t->type),
                  hearth_dtype_name(want));
        CHECK_INT_EQ(t->n_dims, pt.n_dims);
        CHECK(t->ne[0] == pt.ne[0] && t->ne[1] == pt.ne[1]);
        uint64_t n = dequant_prefix(t, vals, (uint64_t)1 << 20);
        REQUIRE(n > 0);
        double sum = 0.0, sum2 = 0.0;
        int nonfinite = 0, not_one = 0;
        for (uint64_t k = 0; k < n; k++) {
            nonfinite += !isfinite(vals[k]);
            not_one += vals[k] != 1.0f;
            sum += (double)vals[k];
            sum2 += (double)vals[k] * (double)vals[k];
        }
        CHECK_MSG(nonfinite == 0, "%s: %d non-finite values", pt.name, nonfinite);
        if (pt.kind == PRESET_T_NORM) {
            CHECK_MSG(not_one == 0, "%s: %d norm weights differ from 1", pt.name, not_one);
        } else {
            double mean = sum / (double)n, sd = sqrt(sum2 / (double)n - mean * mean);
            CHECK_MSG(sd > 0.015 && sd < 0.025, "%s (%s): std %.5f, want 0.02", pt.name,
                      hearth_dtype_name(t->type), sd);
            CHECK_MSG(fabs(mean) < 0.006, "%s (%s): mean %.5f", pt.name, hearth_dtype_name(t->type),
                      mean);
        }
    }
    free(vals);
    gguf_close(f);
    unlink(path);
}

TEST(real_smollm2_q4_0)
{
    check_real("q4_0");
}

TEST(real_smollm2_q4_k_m)
{
    check_real("q4_k_m");
}

/* Every generable type hits the target spread, directly through synth_fill. */
TEST(fill_every_type)
{
    static const hearth_dtype types[] = {
        HEARTH_DTYPE_F32,  HEARTH_DTYPE_F16,    HEARTH_DTYPE_BF16,   HEARTH_DTYPE_Q4_0,
        HEARTH_DTYPE_Q4_1, HEARTH_DTYPE_Q5_0,   HEARTH_DTYPE_Q5_1,   HEARTH_DTYPE_Q8_0,
        HEARTH_DTYPE_Q2_K, HEARTH_DTYPE_Q3_K,   HEARTH_DTYPE_Q4_K,   HEARTH_DTYPE_Q5_K,
        HEARTH_DTYPE_Q6_K, HEARTH_DTYPE_IQ4_NL, HEARTH_DTYPE_IQ4_XS,
    };
    const uint64_t n = 65536;
    float *vals = malloc(n * sizeof *vals);
    uint8_t *blocks = malloc(n * 4);
    REQUIRE(vals && blocks);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const struct quant_traits *q = quant_get(types[i]);
        REQUIRE(q != NULL && q->to_float != NULL);
        struct rng r;
        rng_seed(&r, 3);
        CHECK_OK(synth_fill(types[i], n / (uint64_t)q->blck, 0.05f, &r, blocks));
        q->to_float(blocks, vals, (int64_t)n);
        double sum = 0.0, sum2 = 0.0;
        for (uint64_t k = 0; k < n; k++) {
            sum += (double)vals[k];
            sum2 += (double)vals[k] * (double)vals[k];
        }
        double mean = sum / (double)n, sd = sqrt(sum2 / (double)n - mean * mean);
        CHECK_MSG(fabs(sd - 0.05) < 0.005, "%s: std %.5f, want 0.05", q->name, sd);
        CHECK_MSG(fabs(mean) < 0.01, "%s: mean %.5f", q->name, mean);
    }
    struct rng r;
    rng_seed(&r, 3);
    CHECK_INT_EQ(synth_fill(HEARTH_DTYPE_TQ1_0, 1, 0.02f, &r, blocks), HEARTH_ERR_UNSUPPORTED);
    free(vals);
    free(blocks);
}

static bool files_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool eq = fa && fb;
    static char ba[1 << 16], bb[1 << 16];
    while (eq) {
        size_t na = fread(ba, 1, sizeof ba, fa), nb = fread(bb, 1, sizeof bb, fb);
        if (na != nb || memcmp(ba, bb, na) != 0)
            eq = false;
        if (na == 0)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return eq;
}

TEST(deterministic_per_seed)
{
    char a[512], b[512], c[512];
    snprintf(a, sizeof a, "%s", tmp_path("det-a.gguf"));
    snprintf(b, sizeof b, "%s", tmp_path("det-b.gguf"));
    snprintf(c, sizeof c, "%s", tmp_path("det-c.gguf"));
    /* 2 blocks keep the files at ~30 MB (token_embd dominates) */
    CHECK_OK(synth("smollm2-135m", "Q4_K_M", false, 7, 2, a, NULL));
    CHECK_OK(synth("smollm2-135m", "Q4_K_M", false, 7, 2, b, NULL));
    CHECK_OK(synth("smollm2-135m", "Q4_K_M", false, 8, 2, c, NULL));
    CHECK(files_equal(a, b));
    CHECK(!files_equal(a, c));
    struct gguf_file *f = NULL;
    CHECK_OK(gguf_open(c, &f));
    if (f) {
        CHECK_INT_EQ(f->n_tensors, 2 + 2 * 9);
        uint32_t n_layer = 0;
        CHECK_OK(gguf_get_u32(f, "llama.block_count", &n_layer));
        CHECK_INT_EQ(n_layer, 2);
        gguf_close(f);
    }
    unlink(a);
    unlink(b);
    unlink(c);
}

TEST(bad_options)
{
    struct synth_opts o;
    memset(&o, 0, sizeof o);
    CHECK_INT_EQ(synth_write(&o, tmp_path("x.gguf"), NULL), HEARTH_ERR_INVALID_ARG);
    CHECK_OK(model_preset_find("smollm2-135m", &o.preset));
    CHECK_OK(quant_mix_from_name("q8_0", &o.mix));
    o.header_only = true;
    CHECK(synth_write(&o, "/nonexistent-dir/x.gguf", NULL) != HEARTH_OK);
    CHECK(strstr(hearth_last_error(), "/nonexistent-dir/x.gguf") != NULL);
    const struct model_preset *p;
    CHECK_INT_EQ(model_preset_find("llama9-1t", &p), HEARTH_ERR_NOT_FOUND);
    CHECK(strstr(hearth_last_error(), "smollm2-135m") != NULL);
}

TEST_MAIN(TEST_CASE(header_only_70b), TEST_CASE(header_only_8b), TEST_CASE(header_only_gemma3),
          TEST_CASE(real_smollm2_q4_0), TEST_CASE(real_smollm2_q4_k_m), TEST_CASE(fill_every_type),
          TEST_CASE(deterministic_per_seed), TEST_CASE(bad_options))
