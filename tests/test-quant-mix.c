/*
 * test-quant-mix: the per-tensor types of llama.cpp's quantization mixes.
 *
 * Totals are compared byte-exactly with the sizes computed in the facts sheet
 * (§7.7, §7.8, §8.8), which were themselves checked against published files;
 * the published numbers are checked too, with the stated tolerance. The two
 * real models are checked tensor by tensor: every type in the files equals what
 * the rules predict for their mix.
 */
#include <stdio.h>

#include "gguf.h"
#include "model-presets.h"
#include "quant-mix.h"
#include "quant.h"
#include "test.h"

struct mix_total {
    uint64_t bytes;
    uint64_t n_f32;
    uint64_t count[HEARTH_DTYPE_COUNT];
};

static int mix_sizes(const char *preset, const char *mix_name, bool imatrix, struct mix_total *out)
{
    memset(out, 0, sizeof *out);
    const struct model_preset *p;
    const struct quant_mix *mix;
    struct quant_mix_ctx ctx;
    if (model_preset_find(preset, &p) || quant_mix_from_name(mix_name, &mix) ||
        quant_mix_ctx_init(&ctx, mix, p->arch, p->n_layer, p->n_head, p->n_head_kv, 0, !p->tied))
        return -1;
    ctx.imatrix = imatrix;
    struct preset_tensor t;
    for (size_t i = 0; model_preset_tensor(p, i, &t); i++) {
        hearth_dtype ty;
        uint64_t row;
        if (quant_mix_type_for(&ctx, t.name, t.n_dims, t.ne, &ty) != HEARTH_OK)
            return -1;
        if (!quant_row_bytes(ty, t.ne[0], &row))
            return -1;
        out->bytes += row * t.ne[1] * t.ne[2] * t.ne[3];
        out->count[ty]++;
    }
    out->n_f32 = out->count[HEARTH_DTYPE_F32];
    return 0;
}

/* Checks a size row of the facts sheet: total bytes and the count of each non-F32 type. */
#define CHECK_MIX(preset, mix, imat, expect_bytes, ...)                                            \
    do {                                                                                           \
        struct mix_total mt_;                                                                      \
        REQUIRE(mix_sizes(preset, mix, imat, &mt_) == 0);                                          \
        CHECK_MSG(mt_.bytes == (uint64_t)(expect_bytes), "%s %s: %llu bytes, want %llu", preset,   \
                  mix, (unsigned long long)mt_.bytes, (unsigned long long)(expect_bytes));         \
        const int counts_[][2] = {__VA_ARGS__};                                                    \
        for (size_t k_ = 0; k_ < sizeof counts_ / sizeof counts_[0]; k_++)                         \
            CHECK_MSG(mt_.count[counts_[k_][0]] == (uint64_t)counts_[k_][1],                       \
                      "%s %s: %s count %llu, want %d", preset, mix,                                \
                      hearth_dtype_name((hearth_dtype)counts_[k_][0]),                             \
                      (unsigned long long)mt_.count[counts_[k_][0]], counts_[k_][1]);              \
    } while (0)

#define T(x) HEARTH_DTYPE_##x

TEST(use_more_bits_table)
{
    /* §7.3: n -> number of layers where use_more_bits holds */
    static const uint32_t n[] = {16, 18, 28, 30, 32, 80};
    static const int want[] = {8, 9, 14, 14, 16, 40};
    for (size_t k = 0; k < 6; k++) {
        int c = 0;
        for (uint32_t i = 0; i < n[k]; i++)
            c += quant_mix_use_more_bits(i, n[k]);
        CHECK_INT_EQ(c, want[k]);
    }
    /* n = 32: 0-3, 6, 9, ..., 27, 28-31 */
    CHECK(quant_mix_use_more_bits(3, 32));
    CHECK(!quant_mix_use_more_bits(4, 32));
    CHECK(!quant_mix_use_more_bits(5, 32));
    CHECK(quant_mix_use_more_bits(6, 32));
    CHECK(quant_mix_use_more_bits(27, 32));
    CHECK(!quant_mix_use_more_bits(26, 32));
    CHECK(quant_mix_use_more_bits(28, 32));
}

TEST(names_and_ftypes)
{
    const struct quant_mix *m;
    CHECK_OK(quant_mix_from_name("q4_k_m", &m));
    REQUIRE(m != NULL);
    CHECK_STR_EQ(m->name, "Q4_K_M");
    CHECK_INT_EQ(m->ftype, 15);
    CHECK_INT_EQ(m->default_type, HEARTH_DTYPE_Q4_K);
    CHECK_OK(quant_mix_from_name("f32", &m));
    CHECK_INT_EQ(m->ftype, 0);
    CHECK_OK(quant_mix_from_name("BF16", &m));
    CHECK_INT_EQ(m->ftype, 32);
    CHECK_OK(quant_mix_from_name("iq4_xs", &m));
    CHECK_INT_EQ(m->ftype, 30);
    CHECK_INT_EQ(quant_mix_from_name("q4_k_x", &m), HEARTH_ERR_NOT_FOUND);
    CHECK(m == NULL);
    CHECK(strstr(hearth_last_error(), "Q4_K_M") != NULL);
    CHECK(quant_mix_from_ftype(7) && !strcmp(quant_mix_from_ftype(7)->name, "Q8_0"));
    CHECK(quant_mix_from_ftype(21) == NULL); /* Q2_K_S: not offered */
    CHECK(quant_mix_from_ftype(36) == NULL); /* TQ1_0: not offered */
    CHECK(quant_mix_from_ftype(4) == NULL);  /* retired */
    for (size_t i = 0; i < quant_mix_count(); i++)
        CHECK(quant_mix_from_ftype((uint32_t)quant_mix_at(i)->ftype) == quant_mix_at(i));
}

TEST(llama3_8b_per_tensor)
{
    const struct model_preset *p;
    const struct quant_mix *mix;
    struct quant_mix_ctx ctx;
    REQUIRE(model_preset_find("llama3-8b", &p) == HEARTH_OK);
    CHECK_INT_EQ(model_preset_n_tensors(p), 291);
    CHECK_INT_EQ(model_preset_n_params(p), 8030261248ll);
    REQUIRE(quant_mix_from_name("Q4_K_M", &mix) == HEARTH_OK);
    REQUIRE(quant_mix_ctx_init(&ctx, mix, "llama", 32, 32, 8, 0, true) == HEARTH_OK);
    CHECK(!ctx.is_70b);
    const uint64_t emb[2] = {4096, 128256}, v[2] = {4096, 1024}, down[2] = {14336, 4096},
                   norm[1] = {4096};
    hearth_dtype t;
    CHECK_OK(quant_mix_type_for(&ctx, "output.weight", 2, emb, &t));
    CHECK_INT_EQ(t, T(Q6_K));
    CHECK_OK(quant_mix_type_for(&ctx, "token_embd.weight", 2, emb, &t));
    CHECK_INT_EQ(t, T(Q4_K));
    CHECK_OK(quant_mix_type_for(&ctx, "blk.0.attn_v.weight", 2, v, &t));
    CHECK_INT_EQ(t, T(Q6_K));
    CHECK_OK(quant_mix_type_for(&ctx, "blk.4.attn_v.weight", 2, v, &t));
    CHECK_INT_EQ(t, T(Q4_K));
    CHECK_OK(quant_mix_type_for(&ctx, "blk.6.ffn_down.weight", 2, down, &t));
    CHECK_INT_EQ(t, T(Q6_K));
    CHECK_OK(quant_mix_type_for(&ctx, "blk.7.ffn_down.weight", 2, down, &t));
    CHECK_INT_EQ(t, T(Q4_K));
    CHECK_OK(quant_mix_type_for(&ctx, "blk.31.ffn_down.weight", 2, down, &t));
    CHECK_INT_EQ(t, T(Q6_K));
    CHECK_OK(quant_mix_type_for(&ctx, "blk.3.attn_norm.weight", 1, norm, &t));
    CHECK_INT_EQ(t, T(F32));
    /* tied: token_embd takes the output rule */
    ctx.has_output = false;
    CHECK_OK(quant_mix_type_for(&ctx, "token_embd.weight", 2, emb, &t));
    CHECK_INT_EQ(t, T(Q6_K));
    /* Q3_K_M: attn_v Q5_K for i < 2; ffn_down Q5_K for i < n/16 = 2 */
    REQUIRE(quant_mix_from_name("Q3_K_M", &mix) == HEARTH_OK);
    REQUIRE(quant_mix_ctx_init(&ctx, mix, "llama", 32, 32, 8, 0, true) == HEARTH_OK);
    CHECK_OK(quant_mix_type_for(&ctx, "blk.1.attn_v.weight", 2, v, &t));
    CHECK_INT_EQ(t, T(Q5_K));
    CHECK_OK(quant_mix_type_for(&ctx, "blk.2.attn_v.weight", 2, v, &t));
    CHECK_INT_EQ(t, T(Q4_K));
    CHECK_OK(quant_mix_type_for(&ctx, "blk.2.ffn_down.weight", 2, down, &t));
    CHECK_INT_EQ(t, T(Q4_K));
    CHECK_OK(quant_mix_type_for(&ctx, "blk.2.attn_output.weight", 2, emb, &t));
    CHECK_INT_EQ(t, T(Q4_K));
}

TEST(llama3_70b_per_tensor)
{
    const struct quant_mix *mix;
    struct quant_mix_ctx ctx;
    REQUIRE(quant_mix_from_name("Q4_K_M", &mix) == HEARTH_OK);
    REQUIRE(quant_mix_ctx_init(&ctx, mix, "llama", 80, 64, 8, 0, true) == HEARTH_OK);
    CHECK(ctx.is_70b);
    const uint64_t v[2] = {8192, 1024};
    hearth_dtype t;
    CHECK_OK(quant_mix_type_for(&ctx, "blk.9.attn_v.weight", 2, v, &t));
    CHECK_INT_EQ(t, T(Q6_K));
    CHECK_OK(quant_mix_type_for(&ctx, "blk.10.attn_v.weight", 2, v, &t));
    CHECK_INT_EQ(t, T(Q5_K)); /* the 70B bump */
    CHECK_OK(quant_mix_type_for(&ctx, "blk.12.attn_v.weight", 2, v, &t));
    CHECK_INT_EQ(t, T(Q6_K));
    /* MoE with 8 experts: attn_v and attn_k Q8_0 */
    REQUIRE(quant_mix_ctx_init(&ctx, mix, "llama", 32, 32, 8, 8, true) == HEARTH_OK);
    CHECK_OK(quant_mix_type_for(&ctx, "blk.5.attn_v.weight", 2, v, &t));
    CHECK_INT_EQ(t, T(Q8_0));
    CHECK_OK(quant_mix_type_for(&ctx, "blk.5.attn_k.weight", 2, v, &t));
    CHECK_INT_EQ(t, T(Q8_0));
    CHECK_OK(quant_mix_type_for(&ctx, "blk.5.attn_output.weight", 2, v, &t));
    CHECK_INT_EQ(t, T(Q5_K));
}

TEST(fallbacks)
{
    const struct quant_mix *mix;
    struct quant_mix_ctx ctx;
    hearth_dtype t;
    const uint64_t r576[2] = {576, 192}, r48[2] = {48, 16}, r1536[2] = {1536, 576};
    REQUIRE(quant_mix_from_name("Q4_K_M", &mix) == HEARTH_OK);
    REQUIRE(quant_mix_ctx_init(&ctx, mix, "llama", 30, 9, 3, 0, false) == HEARTH_OK);
    CHECK_OK(quant_mix_type_for(&ctx, "blk.3.attn_q.weight", 2, r576, &t));
    CHECK_INT_EQ(t, T(Q5_0)); /* Q4_K -> Q5_0 */
    CHECK_OK(quant_mix_type_for(&ctx, "blk.0.attn_v.weight", 2, r576, &t));
    CHECK_INT_EQ(t, T(Q8_0)); /* Q6_K -> Q8_0 */
    CHECK_OK(quant_mix_type_for(&ctx, "token_embd.weight", 2, r576, &t));
    CHECK_INT_EQ(t, T(Q8_0)); /* R1 straight to Q8_0 */
    CHECK_OK(quant_mix_type_for(&ctx, "blk.3.ffn_down.weight", 2, r1536, &t));
    CHECK_INT_EQ(t, T(Q4_K)); /* 1536 = 6 * 256 fits */
    CHECK_OK(quant_mix_type_for(&ctx, "blk.3.attn_q.weight", 2, r48, &t));
    CHECK_INT_EQ(t, T(F16)); /* Q5_0's 32 does not divide 48 either */
    REQUIRE(quant_mix_from_name("Q5_K_S", &mix) == HEARTH_OK);
    REQUIRE(quant_mix_ctx_init(&ctx, mix, "llama", 30, 9, 3, 0, false) == HEARTH_OK);
    CHECK_OK(quant_mix_type_for(&ctx, "blk.3.attn_q.weight", 2, r576, &t));
    CHECK_INT_EQ(t, T(Q5_1));
    REQUIRE(quant_mix_from_name("IQ4_XS", &mix) == HEARTH_OK);
    REQUIRE(quant_mix_ctx_init(&ctx, mix, "llama", 30, 9, 3, 0, false) == HEARTH_OK);
    CHECK_OK(quant_mix_type_for(&ctx, "blk.3.attn_q.weight", 2, r576, &t));
    CHECK_INT_EQ(t, T(IQ4_NL));
    REQUIRE(quant_mix_from_name("Q2_K", &mix) == HEARTH_OK);
    REQUIRE(quant_mix_ctx_init(&ctx, mix, "llama", 30, 9, 3, 0, false) == HEARTH_OK);
    CHECK_OK(quant_mix_type_for(&ctx, "blk.3.attn_q.weight", 2, r576, &t));
    CHECK_INT_EQ(t, T(IQ4_NL));
    /* a legacy 32-block type that does not fit has no fallback */
    REQUIRE(quant_mix_from_name("Q4_0", &mix) == HEARTH_OK);
    REQUIRE(quant_mix_ctx_init(&ctx, mix, "llama", 30, 9, 3, 0, false) == HEARTH_OK);
    CHECK_INT_EQ(quant_mix_type_for(&ctx, "blk.3.attn_q.weight", 2, r48, &t),
                 HEARTH_ERR_UNSUPPORTED);
    CHECK(strstr(hearth_last_error(), "blk.3.attn_q.weight") != NULL);
    /* F16 mix: every matrix F16, whatever its shape */
    REQUIRE(quant_mix_from_name("F16", &mix) == HEARTH_OK);
    REQUIRE(quant_mix_ctx_init(&ctx, mix, "llama", 30, 9, 3, 0, false) == HEARTH_OK);
    CHECK_OK(quant_mix_type_for(&ctx, "token_embd.weight", 2, r48, &t));
    CHECK_INT_EQ(t, T(F16));
}

/* §7.7, Llama-3-70B: bytes and non-F32 counts */
TEST(llama3_70b_sizes)
{
    const char *p = "llama3-70b";
    CHECK_MIX(p, "Q2_K", false, 26367246336ull, {T(Q2_K), 321}, {T(Q3_K), 160}, {T(Q5_K), 80},
              {T(Q6_K), 1});
    CHECK_MIX(p, "Q3_K_S", false, 30904188928ull, {T(Q3_K), 481}, {T(Q5_K), 80}, {T(Q6_K), 1});
    CHECK_MIX(p, "Q3_K_M", false, 34259632128ull, {T(Q3_K), 321}, {T(Q4_K), 155}, {T(Q5_K), 85},
              {T(Q6_K), 1});
    CHECK_MIX(p, "Q3_K_L", false, 37132730368ull, {T(Q3_K), 321}, {T(Q5_K), 240}, {T(Q6_K), 1});
    CHECK_MIX(p, "Q4_0", false, 39961870336ull, {T(Q4_0), 561}, {T(Q6_K), 1});
    CHECK_MIX(p, "Q4_0", true, 40108670976ull, {T(Q4_0), 551}, {T(Q4_1), 10}, {T(Q6_K), 1});
    CHECK_MIX(p, "Q4_K_S", false, 40339357696ull, {T(Q4_K), 471}, {T(Q5_K), 90}, {T(Q6_K), 1});
    CHECK_MIX(p, "Q4_K_M", false, 42512531456ull, {T(Q4_K), 441}, {T(Q6_K), 81}, {T(Q5_K), 40},
              {T(F32), 161});
    CHECK_MIX(p, "Q5_K_S", false, 48649584640ull, {T(Q5_K), 561}, {T(Q6_K), 1});
    CHECK_MIX(p, "Q5_K_M", false, 49941954560ull, {T(Q5_K), 481}, {T(Q6_K), 81});
    CHECK_MIX(p, "Q6_K", false, 57880281088ull, {T(Q6_K), 562});
    CHECK_MIX(p, "Q8_0", false, 74967187456ull, {T(Q8_0), 562});
    CHECK_MIX(p, "IQ4_XS", false, 38261800960ull, {T(IQ4_XS), 471}, {T(Q5_K), 90}, {T(Q6_K), 1});
    CHECK_MIX(p, "IQ4_XS", true, 37894799360ull, {T(IQ4_XS), 481}, {T(Q5_K), 80}, {T(Q6_K), 1});
    CHECK_MIX(p, "F16", false, 141110050816ull, {T(F16), 562});
}

/* §7.7, Llama-3-8B */
TEST(llama3_8b_sizes)
{
    const char *p = "llama3-8b";
    CHECK_MIX(p, "Q2_K", false, 3171295232ull, {T(Q2_K), 129}, {T(Q3_K), 64}, {T(Q4_K), 32},
              {T(Q6_K), 1});
    CHECK_MIX(p, "Q3_K_S", false, 3656663040ull, {T(Q3_K), 225}, {T(Q6_K), 1});
    CHECK_MIX(p, "Q3_K_M", false, 4011081728ull, {T(Q3_K), 129}, {T(Q4_K), 92}, {T(Q5_K), 4},
              {T(Q6_K), 1});
    CHECK_MIX(p, "Q3_K_L", false, 4314120192ull, {T(Q3_K), 129}, {T(Q5_K), 96}, {T(Q6_K), 1});
    CHECK_MIX(p, "Q4_0", false, 4653375488ull, {T(Q4_0), 225}, {T(Q6_K), 1});
    CHECK_MIX(p, "Q4_0", true, 4668055552ull, {T(Q4_0), 221}, {T(Q4_1), 4}, {T(Q6_K), 1});
    CHECK_MIX(p, "Q4_K_S", false, 4684832768ull, {T(Q4_K), 217}, {T(Q5_K), 8}, {T(Q6_K), 1});
    CHECK_MIX(p, "Q4_K_M", false, 4912898048ull, {T(Q4_K), 193}, {T(Q6_K), 33}, {T(F32), 65});
    CHECK_MIX(p, "Q5_K_S", false, 5591457792ull, {T(Q5_K), 225}, {T(Q6_K), 1});
    CHECK_MIX(p, "Q5_K_M", false, 5725151232ull, {T(Q5_K), 193}, {T(Q6_K), 33});
    CHECK_MIX(p, "Q6_K", false, 6588170240ull, {T(Q6_K), 226});
    CHECK_MIX(p, "Q8_0", false, 8532934656ull, {T(Q8_0), 226});
    CHECK_MIX(p, "IQ4_XS", false, 4476526592ull, {T(IQ4_XS), 189}, {T(Q5_K), 36}, {T(Q6_K), 1});
    CHECK_MIX(p, "IQ4_XS", true, 4439826432ull, {T(IQ4_XS), 193}, {T(Q5_K), 32}, {T(Q6_K), 1});
    CHECK_MIX(p, "F16", false, 16061054976ull, {T(F16), 226});
}

/* §7.7 cross-check: the published files and llama-bench sizes, with the sheet's tolerances */
TEST(published_sizes)
{
    /* bartowski's imatrix 70B files (GB = 1e9): published exceeds tensor data by 0.005-0.013 GB */
    static const struct {
        const char *mix;
        bool imatrix;
        double gb;
    } pub70[] = {
        {"Q8_0", false, 74.98},   {"Q6_K", false, 57.89},   {"Q5_K_M", false, 49.95},
        {"Q5_K_S", false, 48.66}, {"Q4_K_M", false, 42.52}, {"Q4_K_S", false, 40.35},
        {"Q4_0", true, 40.12},    {"IQ4_XS", true, 37.90},  {"Q3_K_L", false, 37.14},
        {"Q3_K_M", false, 34.27}, {"Q3_K_S", false, 30.91},
    };
    for (size_t i = 0; i < sizeof pub70 / sizeof pub70[0]; i++) {
        struct mix_total mt;
        REQUIRE(mix_sizes("llama3-70b", pub70[i].mix, pub70[i].imatrix, &mt) == 0);
        double diff = pub70[i].gb - (double)mt.bytes / 1e9;
        CHECK_MSG(diff > 0.0 && diff <= 0.015, "70B %s: published %.2f GB, computed %.3f GB",
                  pub70[i].mix, pub70[i].gb, (double)mt.bytes / 1e9);
    }
    /* llama-bench "size" (GiB of tensor data), printed to 2 decimals */
    static const struct {
        const char *preset, *mix;
        double gib;
    } bench[] = {
        {"llama3-70b", "Q4_K_M", 39.59}, {"llama3-8b", "Q4_K_M", 4.58},
        {"llama3-8b", "Q8_0", 7.95},     {"llama3-8b", "Q4_0", 4.33},
        {"llama3-8b", "Q5_K_M", 5.33},   {"qwen2-7b", "Q4_K_M", 4.36},
        {"mistral-7b", "Q4_K_M", 4.07},  {"llama3-1b", "Q4_K_M", 762.81 / 1024.0},
    };
    for (size_t i = 0; i < sizeof bench / sizeof bench[0]; i++) {
        struct mix_total mt;
        REQUIRE(mix_sizes(bench[i].preset, bench[i].mix, false, &mt) == 0);
        CHECK_NEAR((double)mt.bytes / 1073741824.0, bench[i].gib, 0.0051);
    }
}

/* §7.8: the other presets */
TEST(other_preset_sizes)
{
    static const struct {
        const char *preset;
        uint64_t params, f16, q8_0, q6_k, q5_k_m, q4_k_m, q3_k_m, q2_k;
        size_t n_tensors;
    } rows[] = {
        {"llama3-1b", 1235814432ull, 2471764096ull, 1313251456ull, 1013969024ull, 903671936ull,
         799862912ull, 683012224ull, 573042816ull, 147},
        {"mistral-7b", 7241732096ull, 14483996672ull, 7695122432ull, 5941329920ull, 5130674176ull,
         4367704064ull, 3518251008ull, 2718507008ull, 291},
        {"qwen2-7b", 7615616512ull, 15231899648ull, 8092571648ull, 6248245248ull, 5438877696ull,
         4677120000ull, 3802437632ull, 3009986560ull, 339},
        {"smollm2-135m", 134515008ull, 269100288ull, 143025408ull, 136597248ull, 110317824ull,
         103668480ull, 91724544ull, 86416128ull, 272},
    };
    static const char *mixes[] = {"F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K"};
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        const struct model_preset *p;
        REQUIRE(model_preset_find(rows[r].preset, &p) == HEARTH_OK);
        CHECK_INT_EQ(model_preset_n_params(p), rows[r].params);
        CHECK_INT_EQ(model_preset_n_tensors(p), rows[r].n_tensors);
        const uint64_t want[] = {rows[r].f16,    rows[r].q8_0,   rows[r].q6_k, rows[r].q5_k_m,
                                 rows[r].q4_k_m, rows[r].q3_k_m, rows[r].q2_k};
        for (size_t m = 0; m < 7; m++) {
            struct mix_total mt;
            REQUIRE(mix_sizes(rows[r].preset, mixes[m], true, &mt) == 0);
            CHECK_MSG(mt.bytes == want[m], "%s %s: %llu, want %llu", rows[r].preset, mixes[m],
                      (unsigned long long)mt.bytes, (unsigned long long)want[m]);
        }
    }
}

/* §8.8: Gemma-3-270M */
TEST(gemma3_sizes)
{
    const struct model_preset *p;
    REQUIRE(model_preset_find("gemma3-270m", &p) == HEARTH_OK);
    CHECK_INT_EQ(model_preset_n_tensors(p), 236);
    CHECK_INT_EQ(model_preset_n_params(p), 268098176ll);
    const char *g = "gemma3-270m";
    CHECK_MIX(g, "F16", false, 536308224ull, {T(F16), 127}, {T(F32), 109});
    CHECK_MIX(g, "Q8_0", false, 285018624ull, {T(Q8_0), 127});
    CHECK_MIX(g, "Q6_K", false, 276447744ull, {T(Q8_0), 91}, {T(Q6_K), 36});
    CHECK_MIX(g, "Q4_K_M", false, 246587904ull, {T(Q5_0), 81}, {T(Q4_K), 27}, {T(Q8_0), 10},
              {T(Q6_K), 9});
    CHECK_MIX(g, "Q4_0", false, 234883584ull, {T(Q4_0), 126}, {T(Q8_0), 1});
    CHECK_MIX(g, "Q4_0", true, 235047424ull, {T(Q4_0), 124}, {T(Q4_1), 2}, {T(Q8_0), 1});
}

/* Every tensor type of a real file equals the rules' prediction for its mix. */
static void check_real_file(const char *path, const char *mix_name, const char *arch,
                            uint32_t n_layer, uint32_t n_head, uint32_t n_head_kv)
{
    struct gguf_file *f = NULL;
    const struct quant_mix *mix;
    struct quant_mix_ctx ctx;
    CHECK_OK(gguf_open(path, &f));
    REQUIRE(f != NULL);
    CHECK(quant_mix_from_name(mix_name, &mix) == HEARTH_OK);
    bool has_output = gguf_find_tensor(f, "output.weight") != NULL;
    CHECK_OK(quant_mix_ctx_init(&ctx, mix, arch, n_layer, n_head, n_head_kv, 0, has_output));
    int mismatches = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        hearth_dtype ty;
        CHECK_OK(quant_mix_type_for(&ctx, name, t->n_dims, t->ne, &ty));
        if (ty != t->type && mismatches++ < 5)
            TEST_FAIL_AT("%s: file has %s, rules give %s", name, hearth_dtype_name(t->type),
                         hearth_dtype_name(ty));
    }
    CHECK_INT_EQ(mismatches, 0);
    gguf_close(f);
}

TEST(real_files_match_rules)
{
    /* test_model_path returns a static buffer: use each path before asking for the next */
    const char *smol = test_model_path(TEST_SMOLLM2);
    if (smol)
        check_real_file(smol, "Q4_1", "llama", 30, 9, 3);
    const char *gemma = test_model_path(TEST_GEMMA3);
    if (gemma)
        check_real_file(gemma, "Q4_K_M", "gemma3", 18, 4, 1);
}

/* §9.4: the llama3 RoPE divisors written as rope_freqs.weight, and the 3.1 preset's extra tensor */
TEST(llama3_rope_freqs)
{
    const struct model_preset *p;
    REQUIRE(model_preset_find("llama3-1b", &p) == HEARTH_OK);
    float f[32];
    model_preset_llama3_rope_freqs(p, f);
    for (int k = 0; k <= 14; k++)
        CHECK_NEAR(f[k], 1.0, 0.0);
    for (int k = 18; k < 32; k++)
        CHECK_NEAR(f[k], 32.0, 0.0);
    /* f32 bit patterns of the sheet: 3fd35ec2 4052b46f 411aaaee (last bit may differ) */
    static const uint32_t want[3] = {0x3fd35ec2u, 0x4052b46fu, 0x411aaaeeu};
    for (int k = 0; k < 3; k++) {
        uint32_t bits;
        memcpy(&bits, &f[15 + k], 4);
        CHECK_MSG(bits + 1u - want[k] <= 2u, "f[%d] = %.7f (%08x), want %08x", 15 + k,
                  (double)f[15 + k], bits, want[k]);
    }
    REQUIRE(model_preset_find("llama3.1-8b", &p) == HEARTH_OK);
    CHECK_INT_EQ(model_preset_n_tensors(p), 292);
    float g[64];
    model_preset_llama3_rope_freqs(p, g);
    CHECK_NEAR(g[28], 1.0, 0.0);
    CHECK_NEAR(g[29], 1.207484, 2e-6);
    CHECK_NEAR(g[34], 5.257327, 2e-6);
    CHECK_NEAR(g[35], 8.0, 0.0);
    struct mix_total mt;
    REQUIRE(mix_sizes("llama3.1-8b", "Q4_K_M", false, &mt) == 0);
    CHECK_INT_EQ(mt.bytes, 4912898048ll + 256); /* + rope_freqs [64] F32 */
}

/* ---- the lattice mixes (IQ1/IQ2/IQ3): facts sheet §7.2-§7.5 ---------------------------- */

TEST(iq_names_and_ftypes)
{
    /* general.file_type ids of §2 and the default types of §7.2 ("not detailed" line) */
    static const struct {
        const char *name;
        uint32_t ftype;
        hearth_dtype def;
        bool needs_imatrix;
    } want[] = {
        {"IQ2_XXS", 19, T(IQ2_XXS), true}, {"IQ2_XS", 20, T(IQ2_XS), true},
        {"IQ2_S", 28, T(IQ2_XS), true},    {"IQ2_M", 29, T(IQ2_S), true},
        {"IQ3_XXS", 23, T(IQ3_XXS), true}, {"IQ3_XS", 22, T(IQ3_S), false},
        {"IQ3_S", 26, T(IQ3_S), false},    {"IQ3_M", 27, T(IQ3_S), false},
        {"IQ1_S", 24, T(IQ1_S), true},     {"IQ1_M", 31, T(IQ1_M), true},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct quant_mix *m = quant_mix_from_ftype(want[i].ftype);
        REQUIRE(m != NULL);
        CHECK_STR_EQ(m->name, want[i].name);
        CHECK_INT_EQ(m->default_type, want[i].def);
        CHECK_INT_EQ(m->needs_imatrix, want[i].needs_imatrix);
        char lower[16];
        size_t k = 0;
        for (; want[i].name[k] && k + 1 < sizeof lower; k++)
            lower[k] = (char)(want[i].name[k] >= 'A' && want[i].name[k] <= 'Z'
                                  ? want[i].name[k] - 'A' + 'a'
                                  : want[i].name[k]);
        lower[k] = '\0';
        const struct quant_mix *n;
        CHECK_OK(quant_mix_from_name(lower, &n));
        CHECK(n == m);
        /* ctx_init assumes an imatrix exactly for the mixes that need one */
        struct quant_mix_ctx ctx;
        CHECK_OK(quant_mix_ctx_init(&ctx, m, "llama", 32, 32, 8, 0, true));
        CHECK_INT_EQ(ctx.imatrix, want[i].needs_imatrix);
    }
    const struct quant_mix *m;
    CHECK_INT_EQ(quant_mix_from_name("IQ2_L", &m), HEARTH_ERR_NOT_FOUND);
    CHECK(strstr(hearth_last_error(), "IQ1_M") != NULL); /* the list of names is not truncated */
    char list[512];
    quant_mix_list(list, sizeof list);
    CHECK(strstr(list, "IQ2_XXS") != NULL && strstr(list, "IQ3_M") != NULL);
}

/* The type the rules give one tensor of a preset (shape from the preset); COUNT on error. */
static hearth_dtype preset_type(const char *preset, const char *mix_name, int imatrix,
                                const char *name)
{
    const struct model_preset *p;
    const struct quant_mix *mix;
    struct quant_mix_ctx ctx;
    if (model_preset_find(preset, &p) || quant_mix_from_name(mix_name, &mix) ||
        quant_mix_ctx_init(&ctx, mix, p->arch, p->n_layer, p->n_head, p->n_head_kv, 0, !p->tied))
        return HEARTH_DTYPE_COUNT;
    if (imatrix >= 0)
        ctx.imatrix = imatrix != 0;
    struct preset_tensor t;
    for (size_t i = 0; model_preset_tensor(p, i, &t); i++) {
        hearth_dtype ty;
        if (!strcmp(t.name, name))
            return quant_mix_type_for(&ctx, t.name, t.n_dims, t.ne, &ty) ? HEARTH_DTYPE_COUNT : ty;
    }
    return HEARTH_DTYPE_COUNT;
}

/* One row per mix: the expected type of each probed tensor, in the order of the probe list. */
struct iq_row {
    const char *mix;
    int imatrix; /* -1: as ctx_init sets it */
    hearth_dtype t[13];
};

static void check_iq_rows(const char *preset, const char *const probes[13],
                          const struct iq_row *rows, size_t n_rows)
{
    for (size_t r = 0; r < n_rows; r++)
        for (size_t k = 0; k < 13; k++) {
            hearth_dtype got = preset_type(preset, rows[r].mix, rows[r].imatrix, probes[k]);
            CHECK_MSG(got == rows[r].t[k], "%s %s%s %s: %s, want %s", preset, rows[r].mix,
                      rows[r].imatrix == 0 ? " (no imatrix)" : "", probes[k],
                      got == HEARTH_DTYPE_COUNT ? "error" : hearth_dtype_name(got),
                      hearth_dtype_name(rows[r].t[k]));
        }
}

/*
 * Llama-3-8B: 32 layers, so n/8 = 4 and 7n/8 = 28; n_gqa = 4; no "70B" label.
 * Expected types written from §7.4: R1 (output: Q5_K for the IQ2/IQ1 family and IQ3_XXS, else
 * Q6_K), R3 (token_embd), R4 for the IQ2/IQ1 family (attn_v Q4_K as n_gqa >= 4; ffn_down
 * Q2_K / IQ3_S below n/8; attn_output IQ2_XXS for IQ1, IQ3_S for IQ2_S/M), R5-R11 for IQ3.
 */
TEST(llama3_8b_iq_per_tensor)
{
    static const char *const probes[13] = {
        "output.weight",
        "token_embd.weight",
        "blk.0.attn_q.weight",
        "blk.0.attn_k.weight",
        "blk.0.attn_v.weight",
        "blk.31.attn_v.weight",
        "blk.5.attn_output.weight",
        "blk.3.ffn_down.weight",
        "blk.4.ffn_down.weight",
        "blk.3.ffn_gate.weight",
        "blk.4.ffn_up.weight",
        "blk.27.ffn_gate.weight",
        "blk.28.ffn_up.weight",
    };
    static const struct iq_row rows[] = {
        {"IQ1_S",
         -1,
         {T(Q5_K), T(Q2_K), T(IQ1_S), T(IQ1_S), T(Q4_K), T(Q4_K), T(IQ2_XXS), T(Q2_K), T(IQ1_S),
          T(IQ1_S), T(IQ1_S), T(IQ1_S), T(IQ1_S)}},
        {"IQ1_M",
         -1,
         {T(Q5_K), T(Q2_K), T(IQ1_M), T(IQ1_M), T(Q4_K), T(Q4_K), T(IQ2_XXS), T(Q2_K), T(IQ1_M),
          T(IQ1_M), T(IQ1_M), T(IQ1_M), T(IQ1_M)}},
        {"IQ2_XXS",
         -1,
         {T(Q5_K), T(Q2_K), T(IQ2_XXS), T(IQ2_XXS), T(Q4_K), T(Q4_K), T(IQ2_XXS), T(Q2_K),
          T(IQ2_XXS), T(IQ2_XXS), T(IQ2_XXS), T(IQ2_XXS), T(IQ2_XXS)}},
        {"IQ2_XS",
         -1,
         {T(Q5_K), T(Q2_K), T(IQ2_XS), T(IQ2_XS), T(Q4_K), T(Q4_K), T(IQ2_XS), T(Q2_K), T(IQ2_XS),
          T(IQ2_XS), T(IQ2_XS), T(IQ2_XS), T(IQ2_XS)}},
        {"IQ2_S",
         -1,
         {T(Q5_K), T(IQ3_S), T(IQ2_XS), T(IQ2_XS), T(Q4_K), T(Q4_K), T(IQ3_S), T(IQ3_S), T(IQ2_XS),
          T(IQ2_XS), T(IQ2_XS), T(IQ2_XS), T(IQ2_XS)}},
        {"IQ2_M",
         -1,
         {T(Q5_K), T(IQ3_S), T(IQ2_S), T(IQ2_S), T(Q4_K), T(Q4_K), T(IQ3_S), T(IQ3_S), T(IQ2_S),
          T(IQ2_S), T(IQ2_S), T(IQ2_S), T(IQ2_S)}},
        {"IQ3_XXS",
         -1,
         {T(Q5_K), T(IQ3_S), T(IQ2_S), T(IQ2_S), T(Q4_K), T(Q4_K), T(IQ3_S), T(IQ3_XXS), T(IQ3_XXS),
          T(IQ3_XXS), T(IQ3_XXS), T(IQ3_XXS), T(IQ3_XXS)}},
        /* R8 without an imatrix: Q4_K below n/8, Q3_K after */
        {"IQ3_XXS",
         0,
         {T(Q5_K), T(IQ3_S), T(IQ2_S), T(IQ2_S), T(Q4_K), T(Q4_K), T(IQ3_S), T(Q4_K), T(Q3_K),
          T(IQ3_XXS), T(IQ3_XXS), T(IQ3_XXS), T(IQ3_XXS)}},
        /* R6/R7: q, k IQ3_XXS; R11: gate/up IQ3_XXS for 4 <= i < 28 */
        {"IQ3_XS",
         -1,
         {T(Q6_K), T(IQ3_S), T(IQ3_XXS), T(IQ3_XXS), T(Q4_K), T(Q4_K), T(IQ3_S), T(IQ3_S), T(IQ3_S),
          T(IQ3_S), T(IQ3_XXS), T(IQ3_XXS), T(IQ3_S)}},
        {"IQ3_S",
         -1,
         {T(Q6_K), T(IQ3_S), T(IQ3_S), T(IQ3_S), T(Q4_K), T(Q4_K), T(IQ3_S), T(IQ3_S), T(IQ3_S),
          T(IQ3_S), T(IQ3_S), T(IQ3_S), T(IQ3_S)}},
        /* R9: attn_output Q4_K; R8: ffn_down Q4_K below n/8 */
        {"IQ3_M",
         -1,
         {T(Q6_K), T(IQ3_S), T(IQ3_S), T(IQ3_S), T(Q4_K), T(Q4_K), T(Q4_K), T(Q4_K), T(IQ3_S),
          T(IQ3_S), T(IQ3_S), T(IQ3_S), T(IQ3_S)}},
    };
    check_iq_rows("llama3-8b", probes, rows, sizeof rows / sizeof rows[0]);
}

/*
 * Llama-3-70B: 80 layers (n/8 = 10, 7n/8 = 70), n_gqa = 8, labelled "70B": R5's bump turns
 * the IQ3 mixes' Q4_K attn_v into Q5_K, while R4 (IQ2/IQ1 family) has no bump: Q4_K.
 */
TEST(llama3_70b_iq_per_tensor)
{
    static const char *const probes[13] = {
        "output.weight",
        "token_embd.weight",
        "blk.0.attn_q.weight",
        "blk.0.attn_k.weight",
        "blk.0.attn_v.weight",
        "blk.40.attn_v.weight",
        "blk.5.attn_output.weight",
        "blk.9.ffn_down.weight",
        "blk.10.ffn_down.weight",
        "blk.9.ffn_gate.weight",
        "blk.10.ffn_up.weight",
        "blk.69.ffn_gate.weight",
        "blk.70.ffn_up.weight",
    };
    static const struct iq_row rows[] = {
        {"IQ1_S",
         -1,
         {T(Q5_K), T(Q2_K), T(IQ1_S), T(IQ1_S), T(Q4_K), T(Q4_K), T(IQ2_XXS), T(Q2_K), T(IQ1_S),
          T(IQ1_S), T(IQ1_S), T(IQ1_S), T(IQ1_S)}},
        {"IQ1_M",
         -1,
         {T(Q5_K), T(Q2_K), T(IQ1_M), T(IQ1_M), T(Q4_K), T(Q4_K), T(IQ2_XXS), T(Q2_K), T(IQ1_M),
          T(IQ1_M), T(IQ1_M), T(IQ1_M), T(IQ1_M)}},
        {"IQ2_XXS",
         -1,
         {T(Q5_K), T(Q2_K), T(IQ2_XXS), T(IQ2_XXS), T(Q4_K), T(Q4_K), T(IQ2_XXS), T(Q2_K),
          T(IQ2_XXS), T(IQ2_XXS), T(IQ2_XXS), T(IQ2_XXS), T(IQ2_XXS)}},
        {"IQ2_XS",
         -1,
         {T(Q5_K), T(Q2_K), T(IQ2_XS), T(IQ2_XS), T(Q4_K), T(Q4_K), T(IQ2_XS), T(Q2_K), T(IQ2_XS),
          T(IQ2_XS), T(IQ2_XS), T(IQ2_XS), T(IQ2_XS)}},
        {"IQ2_S",
         -1,
         {T(Q5_K), T(IQ3_S), T(IQ2_XS), T(IQ2_XS), T(Q4_K), T(Q4_K), T(IQ3_S), T(IQ3_S), T(IQ2_XS),
          T(IQ2_XS), T(IQ2_XS), T(IQ2_XS), T(IQ2_XS)}},
        {"IQ2_M",
         -1,
         {T(Q5_K), T(IQ3_S), T(IQ2_S), T(IQ2_S), T(Q4_K), T(Q4_K), T(IQ3_S), T(IQ3_S), T(IQ2_S),
          T(IQ2_S), T(IQ2_S), T(IQ2_S), T(IQ2_S)}},
        {"IQ3_XXS",
         -1,
         {T(Q5_K), T(IQ3_S), T(IQ2_S), T(IQ2_S), T(Q5_K), T(Q5_K), T(IQ3_S), T(IQ3_XXS), T(IQ3_XXS),
          T(IQ3_XXS), T(IQ3_XXS), T(IQ3_XXS), T(IQ3_XXS)}},
        {"IQ3_XXS",
         0,
         {T(Q5_K), T(IQ3_S), T(IQ2_S), T(IQ2_S), T(Q5_K), T(Q5_K), T(IQ3_S), T(Q4_K), T(Q3_K),
          T(IQ3_XXS), T(IQ3_XXS), T(IQ3_XXS), T(IQ3_XXS)}},
        {"IQ3_XS",
         -1,
         {T(Q6_K), T(IQ3_S), T(IQ3_XXS), T(IQ3_XXS), T(Q5_K), T(Q5_K), T(IQ3_S), T(IQ3_S), T(IQ3_S),
          T(IQ3_S), T(IQ3_XXS), T(IQ3_XXS), T(IQ3_S)}},
        {"IQ3_S",
         -1,
         {T(Q6_K), T(IQ3_S), T(IQ3_S), T(IQ3_S), T(Q5_K), T(Q5_K), T(IQ3_S), T(IQ3_S), T(IQ3_S),
          T(IQ3_S), T(IQ3_S), T(IQ3_S), T(IQ3_S)}},
        {"IQ3_M",
         -1,
         {T(Q6_K), T(IQ3_S), T(IQ3_S), T(IQ3_S), T(Q5_K), T(Q5_K), T(Q4_K), T(Q4_K), T(IQ3_S),
          T(IQ3_S), T(IQ3_S), T(IQ3_S), T(IQ3_S)}},
    };
    check_iq_rows("llama3-70b", probes, rows, sizeof rows / sizeof rows[0]);
}

static hearth_dtype ctx_type(const char *mix_name, const char *arch, uint32_t n_layer,
                             uint32_t n_head, uint32_t n_head_kv, uint32_t n_expert,
                             bool has_output, int imatrix, const char *name, uint64_t ne0)
{
    const struct quant_mix *mix;
    struct quant_mix_ctx ctx;
    const uint64_t ne[2] = {ne0, 1024};
    hearth_dtype t;
    if (quant_mix_from_name(mix_name, &mix) ||
        quant_mix_ctx_init(&ctx, mix, arch, n_layer, n_head, n_head_kv, n_expert, has_output))
        return HEARTH_DTYPE_COUNT;
    if (imatrix >= 0)
        ctx.imatrix = imatrix != 0;
    return quant_mix_type_for(&ctx, name, 2, ne, &t) ? HEARTH_DTYPE_COUNT : t;
}

/* The branches Llama 3 does not reach: n_gqa < 4, 8 experts, fused QKV, tied, fallbacks. */
TEST(iq_other_branches)
{
    const char *v = "blk.6.attn_v.weight";
    /* n_gqa = 1 (§7.5 last paragraph): IQ2_XXS/IQ2_XS/IQ1 -> Q2_K, IQ2_S/M -> IQ3_S,
     * IQ3_XXS -> IQ3_S without imatrix, IQ3_XXS with; IQ3_XS/IQ3_S keep D; IQ3_M Q4_K */
    CHECK_INT_EQ(ctx_type("IQ2_XXS", "llama", 32, 32, 32, 0, true, -1, v, 4096), T(Q2_K));
    CHECK_INT_EQ(ctx_type("IQ2_XS", "llama", 32, 32, 32, 0, true, -1, v, 4096), T(Q2_K));
    CHECK_INT_EQ(ctx_type("IQ1_M", "llama", 32, 32, 32, 0, true, -1, v, 4096), T(Q2_K));
    CHECK_INT_EQ(ctx_type("IQ2_S", "llama", 32, 32, 32, 0, true, -1, v, 4096), T(IQ3_S));
    CHECK_INT_EQ(ctx_type("IQ2_M", "llama", 32, 32, 32, 0, true, -1, v, 4096), T(IQ3_S));
    CHECK_INT_EQ(ctx_type("IQ3_XXS", "llama", 32, 32, 32, 0, true, 0, v, 4096), T(IQ3_S));
    CHECK_INT_EQ(ctx_type("IQ3_XXS", "llama", 32, 32, 32, 0, true, 1, v, 4096), T(IQ3_XXS));
    CHECK_INT_EQ(ctx_type("IQ3_XS", "llama", 32, 32, 32, 0, true, -1, v, 4096), T(IQ3_S));
    CHECK_INT_EQ(ctx_type("IQ3_S", "llama", 32, 32, 32, 0, true, -1, v, 4096), T(IQ3_S));
    CHECK_INT_EQ(ctx_type("IQ3_M", "llama", 32, 32, 32, 0, true, -1, v, 4096), T(Q4_K));
    /* n_gqa = 2 and 4 experts: R4 counts n_expert >= 4 like n_gqa >= 4 */
    CHECK_INT_EQ(ctx_type("IQ2_XXS", "llama", 32, 32, 16, 4, true, -1, v, 4096), T(Q4_K));
    CHECK_INT_EQ(ctx_type("IQ2_XXS", "llama", 32, 32, 16, 2, true, -1, v, 4096), T(Q2_K));
    /* a "70B" (qwen2, 80 layers) with n_gqa < 4: IQ3_M's Q4_K is bumped, IQ3_S's D is not */
    CHECK_INT_EQ(ctx_type("IQ3_M", "qwen2", 80, 64, 64, 0, true, -1, v, 8192), T(Q5_K));
    CHECK_INT_EQ(ctx_type("IQ3_S", "qwen2", 80, 64, 64, 0, true, -1, v, 8192), T(IQ3_S));
    /* 8 experts: R4 gives attn_v Q4_K, attn_k Q4_K, attn_output Q5_K; R5/R6 give IQ3 Q8_0 */
    CHECK_INT_EQ(ctx_type("IQ2_XS", "llama", 32, 32, 8, 8, true, -1, v, 4096), T(Q4_K));
    CHECK_INT_EQ(ctx_type("IQ2_XS", "llama", 32, 32, 8, 8, true, -1, "blk.6.attn_k.weight", 4096),
                 T(Q4_K));
    CHECK_INT_EQ(
        ctx_type("IQ1_S", "llama", 32, 32, 8, 8, true, -1, "blk.6.attn_output.weight", 4096),
        T(Q5_K));
    CHECK_INT_EQ(ctx_type("IQ3_S", "llama", 32, 32, 8, 8, true, -1, v, 4096), T(Q8_0));
    CHECK_INT_EQ(ctx_type("IQ3_XS", "llama", 32, 32, 8, 8, true, -1, "blk.6.attn_k.weight", 4096),
                 T(Q8_0));
    CHECK_INT_EQ(
        ctx_type("IQ3_XS", "llama", 32, 32, 8, 8, true, -1, "blk.6.attn_output.weight", 4096),
        T(Q5_K));
    /* IQ3_M ffn_down with 8 experts: also Q4_K in use_more_bits layers past n/8 (6 yes, 7 no) */
    CHECK_INT_EQ(
        ctx_type("IQ3_M", "llama", 32, 32, 8, 8, true, -1, "blk.6.ffn_down_exps.weight", 4096),
        T(Q4_K));
    CHECK_INT_EQ(
        ctx_type("IQ3_M", "llama", 32, 32, 8, 8, true, -1, "blk.7.ffn_down_exps.weight", 4096),
        T(IQ3_S));
    CHECK_INT_EQ(ctx_type("IQ3_M", "llama", 32, 32, 8, 0, true, -1, "blk.6.ffn_down.weight", 4096),
                 T(IQ3_S));
    /* fused QKV: R10 for IQ3_M; R4's attn_v line for the IQ2 family (assumed, see quant-mix.c) */
    CHECK_INT_EQ(ctx_type("IQ3_M", "llama", 32, 32, 8, 0, true, -1, "blk.1.attn_qkv.weight", 4096),
                 T(Q4_K));
    CHECK_INT_EQ(ctx_type("IQ3_S", "llama", 32, 32, 8, 0, true, -1, "blk.1.attn_qkv.weight", 4096),
                 T(IQ3_S));
    CHECK_INT_EQ(ctx_type("IQ2_S", "llama", 32, 32, 32, 0, true, -1, "blk.1.attn_qkv.weight", 4096),
                 T(IQ3_S));
    /* tied: token_embd takes R1 (Q5_K for the IQ2 family, Q6_K for IQ3_S) */
    CHECK_INT_EQ(ctx_type("IQ2_XS", "llama", 16, 32, 8, 0, false, -1, "token_embd.weight", 2048),
                 T(Q5_K));
    CHECK_INT_EQ(ctx_type("IQ3_S", "llama", 16, 32, 8, 0, false, -1, "token_embd.weight", 2048),
                 T(Q6_K));
    /* §7.6: a row of 576 is no multiple of 256: IQ types -> IQ4_NL, R1 -> Q8_0, Q4_K -> Q5_0,
     * Q2_K -> IQ4_NL, IQ3_S -> IQ4_NL */
    CHECK_INT_EQ(ctx_type("IQ2_XS", "llama", 30, 9, 3, 0, false, -1, "blk.9.attn_q.weight", 576),
                 T(IQ4_NL));
    CHECK_INT_EQ(ctx_type("IQ2_XS", "llama", 30, 9, 3, 0, false, -1, "token_embd.weight", 576),
                 T(Q8_0));
    CHECK_INT_EQ(ctx_type("IQ2_XS", "llama", 30, 9, 3, 0, false, -1, "blk.0.ffn_down.weight", 576),
                 T(IQ4_NL));
    CHECK_INT_EQ(
        ctx_type("IQ2_M", "llama", 30, 9, 3, 0, false, -1, "blk.9.attn_output.weight", 576),
        T(IQ4_NL));
    CHECK_INT_EQ(
        ctx_type("IQ3_M", "llama", 30, 9, 3, 0, false, -1, "blk.9.attn_output.weight", 576),
        T(Q5_0));
    CHECK_INT_EQ(ctx_type("IQ1_S", "llama", 30, 9, 3, 0, false, -1, "blk.9.attn_q.weight", 48),
                 T(F16));
    CHECK_INT_EQ(ctx_type("IQ1_S", "llama", 30, 9, 3, 0, false, -1, "blk.9.ffn_down.weight", 1536),
                 T(IQ1_S));
}

/* bits per weight of a whole preset under a mix */
static double mix_bpw(const char *preset, const struct mix_total *mt)
{
    const struct model_preset *p;
    if (model_preset_find(preset, &p))
        return 0.0;
    return 8.0 * (double)mt->bytes / (double)model_preset_n_params(p);
}

#define CHECK_BPW(preset, mix, imat, lo, hi)                                                       \
    do {                                                                                           \
        struct mix_total mb_;                                                                      \
        REQUIRE(mix_sizes(preset, mix, imat, &mb_) == 0);                                          \
        double bpw_ = mix_bpw(preset, &mb_);                                                       \
        CHECK_MSG(bpw_ >= (lo) && bpw_ <= (hi), "%s %s: %.4f bpw, want %.3f-%.3f", preset, mix,    \
                  bpw_, (double)(lo), (double)(hi));                                               \
    } while (0)

/*
 * Whole-model sizes. IQ2_XXS, IQ2_XS and IQ3_XXS are the facts sheet's §7.7 rows; the other
 * totals were computed from the rules (and by a separate script) and are bounded here by a
 * hand derivation: bpw = sum over tensor groups of (share of the weights) x (bits per weight
 * of its type, §2: IQ1_S 1.5625, IQ1_M 1.75, IQ2_XXS 2.0625, IQ2_XS 2.3125, IQ2_S 2.5625,
 * Q2_K 2.625, IQ3_XXS 3.0625, IQ3_S 3.4375, Q3_K 3.4375, Q4_K 4.5, Q5_K 5.5, Q6_K 6.5625).
 * 70B shares (% of 70.55 B weights): output and token_embd 1.489 each, attn_q and
 * attn_output 7.609 each, attn_k and attn_v 0.951 each, ffn_gate/up/down 26.633 each, of
 * which ffn_down of layers 0-9 is 3.329 and gate (or up) of layers 10-69 19.975.
 * E.g. IQ2_XS: 1.489 x 5.5 (Q5_K head) + 1.489 x 2.625 (Q2_K embd) + 0.951 x 4.5 (Q4_K v)
 * + 3.329 x 2.625 (Q2_K down 0-9) + 92.742 x 2.3125 = 2.396 bpw.
 * Hand results: IQ1_S 1.738, IQ1_M 1.898, IQ2_XXS 2.164, IQ2_XS 2.396, IQ2_S 2.520,
 * IQ2_M 2.733, IQ3_XXS 3.113, IQ3_XS 3.322, IQ3_S 3.504, IQ3_M 3.620 (IQ3 attn_v is Q5_K).
 */
TEST(llama3_70b_iq_sizes)
{
    const char *p = "llama3-70b";
    CHECK_MIX(p, "IQ1_S", true, 15335620608ull, {T(IQ1_S), 390}, {T(Q4_K), 80}, {T(IQ2_XXS), 80},
              {T(Q2_K), 11}, {T(Q5_K), 1});
    CHECK_MIX(p, "IQ1_M", true, 16743333888ull, {T(IQ1_M), 390}, {T(Q4_K), 80}, {T(IQ2_XXS), 80},
              {T(Q2_K), 11}, {T(Q5_K), 1});
    CHECK_MIX(p, "IQ2_XXS", true, 19089522688ull, {T(IQ2_XXS), 470}, {T(Q4_K), 80}, {T(Q2_K), 11},
              {T(Q5_K), 1});
    CHECK_MIX(p, "IQ2_XS", true, 21134245888ull, {T(IQ2_XS), 470}, {T(Q4_K), 80}, {T(Q2_K), 11},
              {T(Q5_K), 1});
    CHECK_MIX(p, "IQ2_S", true, 22234480640ull, {T(IQ2_XS), 390}, {T(IQ3_S), 91}, {T(Q4_K), 80},
              {T(Q5_K), 1});
    CHECK_MIX(p, "IQ2_M", true, 24111431680ull, {T(IQ2_S), 390}, {T(IQ3_S), 91}, {T(Q4_K), 80},
              {T(Q5_K), 1});
    CHECK_MIX(p, "IQ3_XXS", true, 27461632000ull, {T(IQ3_XXS), 240}, {T(IQ2_S), 160},
              {T(IQ3_S), 81}, {T(Q5_K), 81});
    CHECK_MIX(p, "IQ3_XXS", false, 28654387200ull, {T(IQ2_S), 160}, {T(IQ3_XXS), 160},
              {T(IQ3_S), 81}, {T(Q5_K), 81}, {T(Q3_K), 70}, {T(Q4_K), 10});
    CHECK_MIX(p, "IQ3_XS", false, 29299867648ull, {T(IQ3_XXS), 280}, {T(IQ3_S), 201}, {T(Q5_K), 80},
              {T(Q6_K), 1});
    /* IQ3_S and Q3_K are both 110 bytes per 256: the IQ3_S mix is Q3_K_S's size to the byte */
    CHECK_MIX(p, "IQ3_S", false, 30904188928ull, {T(IQ3_S), 481}, {T(Q5_K), 80}, {T(Q6_K), 1});
    CHECK_MIX(p, "IQ3_M", false, 31929171968ull, {T(IQ3_S), 391}, {T(Q4_K), 90}, {T(Q5_K), 80},
              {T(Q6_K), 1});
    CHECK_BPW(p, "IQ1_S", true, 1.733, 1.743);
    CHECK_BPW(p, "IQ1_M", true, 1.893, 1.903);
    CHECK_BPW(p, "IQ2_XXS", true, 2.159, 2.169);
    CHECK_BPW(p, "IQ2_XS", true, 2.391, 2.401);
    CHECK_BPW(p, "IQ2_S", true, 2.515, 2.525);
    CHECK_BPW(p, "IQ2_M", true, 2.728, 2.738);
    CHECK_BPW(p, "IQ3_XXS", true, 3.108, 3.118);
    CHECK_BPW(p, "IQ3_XS", false, 3.317, 3.327);
    CHECK_BPW(p, "IQ3_S", false, 3.499, 3.509);
    CHECK_BPW(p, "IQ3_M", false, 3.615, 3.625);
    /* the published imatrix IQ3_M of a Llama-3.1-70B derivative (§7.7's list): 31.94 GB, i.e.
     * tensor data + the 0.005-0.013 GB of header every other row of that list shows */
    struct mix_total mt;
    REQUIRE(mix_sizes(p, "IQ3_M", true, &mt) == 0);
    double diff = 31.94 - (double)mt.bytes / 1e9;
    CHECK_MSG(diff > 0.0 && diff <= 0.015, "IQ3_M: published 31.94 GB, computed %.3f GB",
              (double)mt.bytes / 1e9);
}

/*
 * Llama-3-8B (8.03 B weights) shares, %: output and token_embd 6.542 each, attn_q and
 * attn_output 6.686 each, attn_k and attn_v 1.671 each, ffn_gate/up/down 23.399 each, of
 * which ffn_down of layers 0-3 is 2.925 and gate (or up) of layers 4-27 17.549. Hand results
 * as for the 70B (attn_v Q4_K everywhere, no "70B" label): IQ1_S 2.003, IQ1_M 2.145,
 * IQ2_XXS 2.381, IQ2_XS 2.587, IQ2_S 2.739, IQ2_M 2.928, IQ3_XXS 3.254, IQ3_XS 3.497,
 * IQ3_S 3.660, IQ3_M 3.762. The 8B's bpw is higher than the 70B's for the same mix because
 * its Q5_K/Q6_K head and embedding are 13% of its weights instead of 3%.
 */
TEST(llama3_8b_iq_sizes)
{
    const char *p = "llama3-8b";
    CHECK_MIX(p, "IQ1_S", true, 2011791360ull, {T(IQ1_S), 156}, {T(Q4_K), 32}, {T(IQ2_XXS), 32},
              {T(Q2_K), 5}, {T(Q5_K), 1});
    CHECK_MIX(p, "IQ1_M", true, 2154135552ull, {T(IQ1_M), 156}, {T(Q4_K), 32}, {T(IQ2_XXS), 32},
              {T(Q2_K), 5}, {T(Q5_K), 1});
    CHECK_MIX(p, "IQ2_XXS", true, 2391375872ull, {T(IQ2_XXS), 188}, {T(Q4_K), 32}, {T(Q2_K), 5},
              {T(Q5_K), 1});
    CHECK_MIX(p, "IQ2_XS", true, 2597945344ull, {T(IQ2_XS), 188}, {T(Q4_K), 32}, {T(Q2_K), 5},
              {T(Q5_K), 1});
    CHECK_MIX(p, "IQ2_S", true, 2750652416ull, {T(IQ2_XS), 156}, {T(IQ3_S), 37}, {T(Q4_K), 32},
              {T(Q5_K), 1});
    CHECK_MIX(p, "IQ2_M", true, 2940444672ull, {T(IQ2_S), 156}, {T(IQ3_S), 37}, {T(Q4_K), 32},
              {T(Q5_K), 1});
    CHECK_MIX(p, "IQ3_XXS", true, 3267076096ull, {T(IQ3_XXS), 96}, {T(IQ2_S), 64}, {T(IQ3_S), 33},
              {T(Q4_K), 32}, {T(Q5_K), 1});
    CHECK_MIX(p, "IQ3_XXS", false, 3386351616ull, {T(IQ2_S), 64}, {T(IQ3_XXS), 64}, {T(Q4_K), 36},
              {T(IQ3_S), 33}, {T(Q3_K), 28}, {T(Q5_K), 1});
    CHECK_MIX(p, "IQ3_XS", false, 3510910976ull, {T(IQ3_XXS), 112}, {T(IQ3_S), 81}, {T(Q4_K), 32},
              {T(Q6_K), 1});
    CHECK_MIX(p, "IQ3_S", false, 3674488832ull, {T(IQ3_S), 193}, {T(Q4_K), 32}, {T(Q6_K), 1});
    CHECK_MIX(p, "IQ3_M", false, 3776987136ull, {T(IQ3_S), 157}, {T(Q4_K), 68}, {T(Q6_K), 1});
    CHECK_BPW(p, "IQ1_S", true, 1.998, 2.008);
    CHECK_BPW(p, "IQ1_M", true, 2.140, 2.150);
    CHECK_BPW(p, "IQ2_XXS", true, 2.376, 2.386);
    CHECK_BPW(p, "IQ2_XS", true, 2.582, 2.592);
    CHECK_BPW(p, "IQ2_S", true, 2.734, 2.744);
    CHECK_BPW(p, "IQ2_M", true, 2.923, 2.933);
    CHECK_BPW(p, "IQ3_XXS", true, 3.249, 3.259);
    CHECK_BPW(p, "IQ3_XS", false, 3.492, 3.502);
    CHECK_BPW(p, "IQ3_S", false, 3.655, 3.665);
    CHECK_BPW(p, "IQ3_M", false, 3.757, 3.767);
}

TEST_MAIN(TEST_CASE(use_more_bits_table), TEST_CASE(names_and_ftypes),
          TEST_CASE(llama3_8b_per_tensor), TEST_CASE(llama3_70b_per_tensor), TEST_CASE(fallbacks),
          TEST_CASE(llama3_70b_sizes), TEST_CASE(llama3_8b_sizes), TEST_CASE(published_sizes),
          TEST_CASE(other_preset_sizes), TEST_CASE(gemma3_sizes), TEST_CASE(real_files_match_rules),
          TEST_CASE(llama3_rope_freqs), TEST_CASE(iq_names_and_ftypes),
          TEST_CASE(llama3_8b_iq_per_tensor), TEST_CASE(llama3_70b_iq_per_tensor),
          TEST_CASE(iq_other_branches), TEST_CASE(llama3_70b_iq_sizes),
          TEST_CASE(llama3_8b_iq_sizes))
