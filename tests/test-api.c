/*
 * test-api: the public API of include/hearth.h end to end on SmolLM2-135M:
 * the shape getters, tokenize = tok_encode, detokenize round trip, 16 greedy
 * tokens through hearth_generate = the same through gen_run directly, a chat
 * reply, the errors (bad path, bad sampling field, bad ids) and their messages
 * through hearth_last_error(), sessions with compressed KV cache types, and
 * embeddings (unit length, the pooling chosen, the session's cache given back).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "generate.h"
#include "hearth.h"
#include "model.h"
#include "test.h"
#include "tokenizer.h"

#define MAX_IDS 256
struct collect {
    char text[4096];
    size_t len;
    int32_t ids[MAX_IDS];
    int n_ids;
};

static bool on_token(void *user, const char *text, size_t len, int32_t token)
{
    struct collect *c = user;
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, text, len);
        c->len += len;
        c->text[c->len] = '\0';
    }
    if (token >= 0 && c->n_ids < MAX_IDS)
        c->ids[c->n_ids++] = token;
    return true;
}

static hearth_model *load(void)
{
    const char *path = test_model_path(TEST_SMOLLM2);
    if (!path)
        return NULL;
    hearth_model *m = NULL;
    CHECK_OK(hearth_model_load(path, &m));
    return m;
}

static hearth_session *greedy_session(hearth_model *m, uint32_t n_ctx)
{
    hearth_session_params sp;
    hearth_session_params_default(&sp);
    sp.n_ctx = n_ctx;
    sp.sampling.temp = 0.0f;
    hearth_session *s = NULL;
    CHECK_OK(hearth_session_create(m, &sp, &s));
    return s;
}

TEST(model_getters)
{
    hearth_model *m = load();
    REQUIRE(m);
    /* SmolLM2-135M: 30 layers, 576 wide, 9 heads of 64, 3 KV heads, 49152 tokens */
    CHECK_STR_EQ(hearth_model_arch(m), "llama");
    CHECK_INT_EQ(hearth_model_n_layer(m), 30);
    CHECK_INT_EQ(hearth_model_n_embd(m), 576);
    CHECK_INT_EQ(hearth_model_n_head(m), 9);
    CHECK_INT_EQ(hearth_model_n_head_kv(m), 3);
    CHECK_INT_EQ(hearth_model_head_dim(m), 64);
    CHECK_INT_EQ(hearth_model_n_vocab(m), 49152);
    CHECK_INT_EQ(hearth_model_n_ctx_train(m), 8192);
    CHECK_STR_EQ(hearth_model_chat_format(m), "chatml");
    CHECK(hearth_model_token_is_eog(m, hearth_model_token_eos(m)));
    CHECK(!hearth_model_token_is_eog(m, 1000));
    hearth_model_free(m);
}

TEST(tokenize_matches_internal)
{
    const char *path = test_model_path(TEST_SMOLLM2);
    REQUIRE(path);
    hearth_model *m = load();
    REQUIRE(m);
    struct model *im = NULL;
    struct tokenizer *tok = NULL;
    CHECK_OK(model_load(path, &im));
    REQUIRE(im);
    CHECK_OK(tok_load(im->gguf, &tok));
    REQUIRE(tok);
    static const char *const texts[] = {"Hello, world! The quick brown fox.",
                                        "<|im_start|>user\nhi<|im_end|>", "naïve café 123"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        for (int ps = 0; ps < 2; ps++) {
            int32_t *a = NULL, *b = NULL;
            size_t na = 0, nb = 0;
            size_t len = strlen(texts[i]);
            CHECK_OK(hearth_tokenize(m, texts[i], len, true, ps, &a, &na));
            CHECK_OK(tok_encode(tok, texts[i], len, true, ps, &b, &nb));
            CHECK_INT_EQ(na, nb);
            CHECK(na == nb && na > 0 && !memcmp(a, b, na * sizeof *a));
            char *back = NULL;
            size_t back_len = 0;
            CHECK_OK(hearth_detokenize(m, a, na, true, &back, &back_len));
            CHECK_STR_EQ(back, texts[i]);
            CHECK_INT_EQ(back_len, len);
            hearth_free(back);
            hearth_free(a);
            free(b);
        }
    }
    /* the control token is one id only when parsed */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(hearth_tokenize(m, "<|im_end|>", 10, false, true, &ids, &n));
    CHECK_INT_EQ(n, 1);
    hearth_free(ids);
    CHECK_OK(hearth_tokenize(m, "<|im_end|>", 10, false, false, &ids, &n));
    CHECK(n > 1);
    hearth_free(ids);
    tok_free(tok);
    model_free(im);
    hearth_model_free(m);
}

TEST(generate_matches_internal)
{
    const char *path = test_model_path(TEST_SMOLLM2);
    REQUIRE(path);
    const char *prompt = "Once upon a time";
    hearth_model *m = load();
    REQUIRE(m);
    hearth_session *s = greedy_session(m, 256);
    REQUIRE(s);
    struct collect a = {0}, b = {0};
    hearth_generate_params gp;
    hearth_generate_params_default(&gp);
    gp.n_predict = 16;
    gp.on_token = on_token;
    gp.user = &a;
    hearth_generate_stats st;
    CHECK_OK(hearth_generate(s, prompt, &gp, &st));
    CHECK_INT_EQ(st.n_gen, 16);
    CHECK_INT_EQ(st.stop, HEARTH_STOP_LIMIT);
    CHECK_INT_EQ(a.n_ids, 16);

    /* the same through the internal loop */
    struct model *im = NULL;
    struct tokenizer *tok = NULL;
    struct engine *fc = NULL;
    struct gen_session *gs = NULL;
    struct engine_params fp = engine_params_default();
    fp.n_ctx = 256;
    struct sampler_params sp;
    sampler_params_default(&sp);
    sp.temp = 0.0f;
    CHECK_OK(model_load(path, &im));
    REQUIRE(im);
    CHECK_OK(tok_load(im->gguf, &tok));
    CHECK_OK(engine_create(im, &fp, &fc));
    CHECK_OK(gen_session_create(im, tok, fc, &sp, &gs));
    if (gs) {
        struct gen_params p;
        gen_params_default(&p);
        p.n_predict = 16;
        p.on_token = on_token;
        p.user = &b;
        CHECK_OK(gen_run_text(gs, prompt, strlen(prompt), true, &p, NULL));
        CHECK_INT_EQ(b.n_ids, 16);
        CHECK(!memcmp(a.ids, b.ids, sizeof a.ids));
        CHECK_STR_EQ(a.text, b.text);
    }
    /* the token ids through hearth_generate_tokens continue identically */
    struct collect c = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(hearth_tokenize(m, prompt, strlen(prompt), true, true, &ids, &n));
    gp.user = &c;
    hearth_session_reset(s);
    CHECK_OK(hearth_generate_tokens(s, ids, n, &gp, &st));
    CHECK_INT_EQ(st.n_prompt_eval, n);
    CHECK(!memcmp(a.ids, c.ids, sizeof a.ids));
    hearth_free(ids);

    gen_session_free(gs);
    engine_destroy(fc);
    tok_free(tok);
    model_free(im);
    hearth_session_free(s);
    hearth_model_free(m);
}

TEST(chat_reply)
{
    hearth_model *m = load();
    REQUIRE(m);
    hearth_session *s = greedy_session(m, 256);
    REQUIRE(s);
    hearth_chat_message msgs[] = {{"user", "What is the capital of France?"}};
    struct collect c = {0};
    hearth_generate_params gp;
    hearth_generate_params_default(&gp);
    gp.n_predict = 48;
    gp.on_token = on_token;
    gp.user = &c;
    hearth_generate_stats st;
    CHECK_OK(hearth_generate_chat(s, msgs, 1, &gp, &st));
    CHECK_INT_EQ(st.stop, HEARTH_STOP_EOG);
    CHECK_MSG(strstr(c.text, "Paris") != NULL, "reply: '%s'", c.text);
    hearth_session_free(s);
    hearth_model_free(m);
}

/*
 * hearth_session_set_logit_bias: +100 on " banana" (SmolLM2 id 21285, as the
 * tokenizer says) makes greedy generation repeat it, also after the sampling
 * is replaced; -100 on the greedy first token makes the text start
 * otherwise; n 0 restores greedy's text; a bad id is refused and changes
 * nothing.
 */
TEST(logit_bias)
{
    hearth_model *m = load();
    REQUIRE(m);
    hearth_session *s = greedy_session(m, 128);
    REQUIRE(s);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    CHECK_OK(hearth_tokenize(m, " banana", 7, false, false, &ids, &n_ids));
    CHECK(n_ids == 1 && ids && ids[0] == 21285);
    hearth_generate_params gp;
    hearth_generate_params_default(&gp);
    gp.n_predict = 3;
    gp.on_token = on_token;
    struct collect base = {0}, c = {0};
    gp.user = &base;
    CHECK_OK(hearth_generate(s, "I like to eat", &gp, NULL));
    const float up = 100.0f, ban = -100.0f;
    CHECK_OK(hearth_session_set_logit_bias(s, ids, &up, 1));
    hearth_session_reset(s);
    gp.user = &c;
    CHECK_OK(hearth_generate(s, "I like to eat", &gp, NULL));
    CHECK_STR_EQ(c.text, " banana banana banana");
    hearth_sampling_params sp;
    hearth_sampling_params_default(&sp);
    sp.temp = 0.0f;
    CHECK_OK(hearth_session_set_sampling(s, &sp)); /* the bias stays */
    hearth_session_reset(s);
    memset(&c, 0, sizeof c);
    CHECK_OK(hearth_generate(s, "I like to eat", &gp, NULL));
    CHECK_STR_EQ(c.text, " banana banana banana");
    if (base.n_ids > 0) {
        CHECK_OK(hearth_session_set_logit_bias(s, base.ids, &ban, 1));
        hearth_session_reset(s);
        memset(&c, 0, sizeof c);
        CHECK_OK(hearth_generate(s, "I like to eat", &gp, NULL));
        CHECK(c.n_ids > 0 && c.ids[0] != base.ids[0]);
    }
    const int32_t bad = 49152;
    CHECK_INT_EQ(hearth_session_set_logit_bias(s, &bad, &up, 1), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "49152") != NULL);
    CHECK_INT_EQ(hearth_session_set_logit_bias(NULL, ids, &up, 1), HEARTH_ERR_INVALID_ARG);
    CHECK_OK(hearth_session_set_logit_bias(s, NULL, NULL, 0));
    hearth_session_reset(s);
    memset(&c, 0, sizeof c);
    CHECK_OK(hearth_generate(s, "I like to eat", &gp, NULL));
    CHECK_STR_EQ(c.text, base.text);
    hearth_free(ids);
    hearth_session_free(s);
    hearth_model_free(m);
}

TEST(errors)
{
    hearth_model *m = (hearth_model *)&m; /* must be reset to NULL on failure */
    const char *bad = "/nonexistent/dir/no-such-model.gguf";
    hearth_status st = hearth_model_load(bad, &m);
    CHECK(st != HEARTH_OK);
    CHECK(m == NULL);
    CHECK_MSG(strstr(hearth_last_error(), bad) != NULL, "message: %s", hearth_last_error());

    m = load();
    REQUIRE(m);
    hearth_session_params sp;
    hearth_session_params_default(&sp);
    sp.sampling.top_p = 1.5f;
    hearth_session *s = (hearth_session *)&s;
    CHECK_INT_EQ(hearth_session_create(m, &sp, &s), HEARTH_ERR_INVALID_ARG);
    CHECK(s == NULL);
    CHECK_MSG(strstr(hearth_last_error(), "top_p") != NULL, "message: %s", hearth_last_error());

    s = greedy_session(m, 64);
    REQUIRE(s);
    int32_t bad_ids[] = {1, 999999};
    CHECK_INT_EQ(hearth_generate_tokens(s, bad_ids, 2, NULL, NULL), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "999999") != NULL);
    char *text = NULL;
    CHECK_INT_EQ(hearth_detokenize(m, bad_ids, 2, false, &text, NULL), HEARTH_ERR_INVALID_ARG);
    CHECK(text == NULL);
    CHECK_INT_EQ(hearth_generate(s, "", NULL, NULL), HEARTH_ERR_INVALID_ARG);
    CHECK_INT_EQ(hearth_generate(NULL, "x", NULL, NULL), HEARTH_ERR_INVALID_ARG);
    hearth_chat_message msgs[] = {{"user", NULL}};
    CHECK_INT_EQ(hearth_generate_chat(s, msgs, 1, NULL, NULL), HEARTH_ERR_INVALID_ARG);
    hearth_session_free(s);
    hearth_model_free(m);
}

/*
 * KV cache types through the public params: the defaults are f16; a session
 * with a rot4 cache (K and V) is created and answers the chat question as the
 * f16 one does (a cache that decoded to garbage would not say Paris); a mixed
 * K q8_0 / V rot3 session generates its 8 tokens; out-of-range types are
 * INVALID_ARG with a message naming the field and the value.
 */
TEST(kv_types)
{
    hearth_session_params sp;
    hearth_session_params_default(&sp);
    CHECK_INT_EQ(sp.kv_type_k, HEARTH_KV_F16);
    CHECK_INT_EQ(sp.kv_type_v, HEARTH_KV_F16);
    hearth_model *m = load();
    REQUIRE(m);
    sp.n_ctx = 256;
    sp.sampling.temp = 0.0f;
    sp.kv_type_k = HEARTH_KV_ROT4;
    sp.kv_type_v = HEARTH_KV_ROT4;
    hearth_session *s = NULL;
    CHECK_OK(hearth_session_create(m, &sp, &s));
    if (s) {
        hearth_chat_message msgs[] = {{"user", "What is the capital of France?"}};
        struct collect c = {0};
        hearth_generate_params gp;
        hearth_generate_params_default(&gp);
        gp.n_predict = 48;
        gp.on_token = on_token;
        gp.user = &c;
        hearth_generate_stats st;
        CHECK_OK(hearth_generate_chat(s, msgs, 1, &gp, &st));
        CHECK(st.n_gen > 0);
        CHECK_MSG(strstr(c.text, "Paris") != NULL, "rot4 reply: '%s'", c.text);
        hearth_session_free(s);
        s = NULL;
    }
    sp.kv_type_k = HEARTH_KV_Q8_0;
    sp.kv_type_v = HEARTH_KV_ROT3;
    CHECK_OK(hearth_session_create(m, &sp, &s));
    if (s) {
        hearth_generate_params gp;
        hearth_generate_params_default(&gp);
        gp.n_predict = 8;
        hearth_generate_stats st;
        CHECK_OK(hearth_generate(s, "Once upon a time", &gp, &st));
        CHECK(st.n_gen == 8 || st.stop == HEARTH_STOP_EOG);
        hearth_session_free(s);
        s = NULL;
    }

    sp.kv_type_k = HEARTH_KV_F16;
    sp.kv_type_v = (hearth_kv_type)HEARTH_KV_TYPE_COUNT;
    s = (hearth_session *)&s;
    CHECK_INT_EQ(hearth_session_create(m, &sp, &s), HEARTH_ERR_INVALID_ARG);
    CHECK(s == NULL);
    CHECK_MSG(strstr(hearth_last_error(), "kv_type_v is 5") != NULL, "message: %s",
              hearth_last_error());
    sp.kv_type_k = (hearth_kv_type)-1;
    CHECK_INT_EQ(hearth_session_create(m, &sp, &s), HEARTH_ERR_INVALID_ARG);
    CHECK_MSG(strstr(hearth_last_error(), "kv_type_k is -1") != NULL, "message: %s",
              hearth_last_error());
    hearth_model_free(m);
}

/* Greedy continuation of "Once upon a time" through a session on the given devices. */
static hearth_status device_run(hearth_model *m, const char *const *devs, int n_dev, int ngl,
                                struct collect *c)
{
    hearth_session_params sp;
    hearth_session_params_default(&sp);
    sp.n_ctx = 128;
    sp.sampling.temp = 0.0f;
    sp.devices = devs;
    sp.n_devices = n_dev;
    sp.n_gpu_layers = ngl;
    hearth_session *s = NULL;
    hearth_status st = hearth_session_create(m, &sp, &s);
    if (st != HEARTH_OK)
        return st;
    hearth_generate_params gp;
    hearth_generate_params_default(&gp);
    gp.n_predict = 12;
    gp.on_token = on_token;
    gp.user = c;
    hearth_generate_stats gs;
    st = hearth_generate(s, "Once upon a time", &gp, &gs);
    hearth_session_free(s);
    return st;
}

TEST(devices)
{
    hearth_session_params sp;
    hearth_session_params_default(&sp);
    CHECK_INT_EQ(sp.n_devices, 0);
    CHECK_INT_EQ(sp.n_gpu_layers, HEARTH_GPU_LAYERS_PLAN);
    hearth_model *m = load();
    REQUIRE(m);
    /* the default and an explicit "cpu" are the same CPU forward pass: same tokens */
    struct collect a = {0}, b = {0}, c = {0};
    const char *cpu[] = {"cpu"};
    CHECK_OK(device_run(m, NULL, 0, HEARTH_GPU_LAYERS_PLAN, &a));
    CHECK_OK(device_run(m, cpu, 1, 0, &b));
    CHECK_INT_EQ(a.n_ids, 12);
    CHECK_INT_EQ(b.n_ids, a.n_ids);
    CHECK(memcmp(a.ids, b.ids, sizeof a.ids) == 0);
    const char *bad[] = {"nosuch7"};
    CHECK_INT_EQ(device_run(m, bad, 1, HEARTH_GPU_LAYERS_PLAN, &c), HEARTH_ERR_NOT_FOUND);
    CHECK_MSG(strstr(hearth_last_error(), "nosuch7") && strstr(hearth_last_error(), "cpu"),
              "message: %s", hearth_last_error());
    CHECK_INT_EQ(device_run(m, cpu, -1, 0, &c), HEARTH_ERR_INVALID_ARG);
    CHECK_INT_EQ(device_run(m, cpu, 1, -3, &c), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "n_gpu_layers is -3") != NULL);
    hearth_model_free(m);
}

/*
 * hearth_embed: a unit vector of n_embd values; the same text gives the same
 * bits, also after a generation used the cache; mean, last and cls pooling
 * give different vectors, HEARTH_POOLING_MODEL the mean (SmolLM2 has no
 * pooling key); a prompt generated before and after the embeddings gets the
 * same reply (the cache was given back, not reused as if it still held the
 * prompt);
 * bad arguments are INVALID_ARG naming what is wrong.
 */
TEST(embed)
{
    hearth_model *m = load();
    if (!m)
        return;
    const size_t E = (size_t)hearth_model_n_embd(m);
    hearth_session *s = greedy_session(m, 128);
    REQUIRE(s);
    float *v[4];
    for (int k = 0; k < 4; k++)
        REQUIRE((v[k] = malloc(E * sizeof(float))));
    const char *text = "Embeddings turn a text into one vector of numbers.";
    struct collect fresh, after;
    memset(&fresh, 0, sizeof fresh);
    memset(&after, 0, sizeof after);
    hearth_generate_params gp;
    hearth_generate_params_default(&gp);
    gp.n_predict = 8;
    gp.on_token = on_token;
    gp.user = &fresh;
    CHECK_OK(hearth_generate(s, "The capital of France is", &gp, NULL));
    const hearth_pooling pools[4] = {HEARTH_POOLING_MEAN, HEARTH_POOLING_LAST, HEARTH_POOLING_CLS,
                                     HEARTH_POOLING_MODEL};
    for (int k = 0; k < 4; k++) {
        CHECK_OK(hearth_embed(s, text, pools[k], v[k], E));
        double ss = 0.0;
        for (size_t j = 0; j < E; j++)
            ss += (double)v[k][j] * (double)v[k][j];
        CHECK_MSG(fabs(sqrt(ss) - 1.0) < 1e-5, "pooling %d: |v| = %g", (int)pools[k], sqrt(ss));
    }
    CHECK(memcmp(v[0], v[3], E * sizeof(float)) == 0); /* no pooling key: the mean */
    CHECK(memcmp(v[0], v[1], E * sizeof(float)) != 0);
    CHECK(memcmp(v[1], v[2], E * sizeof(float)) != 0);

    /* the same prompt before and after the embeddings: the cache was given back */
    gp.user = &after;
    CHECK_OK(hearth_generate(s, "The capital of France is", &gp, NULL));
    CHECK_MSG(strcmp(fresh.text, after.text) == 0, "after an embedding: %s, before: %s",
              after.text, fresh.text);
    CHECK_OK(hearth_embed(s, text, HEARTH_POOLING_MEAN, v[3], E));
    CHECK(memcmp(v[0], v[3], E * sizeof(float)) == 0);

    CHECK_INT_EQ(hearth_embed(s, text, HEARTH_POOLING_MEAN, v[3], E - 1), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "floats") != NULL);
    CHECK_INT_EQ(hearth_embed(s, text, (hearth_pooling)7, v[3], E), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "pooling 7") != NULL);
    CHECK_INT_EQ(hearth_embed(s, "", HEARTH_POOLING_MEAN, v[3], E), HEARTH_ERR_INVALID_ARG);
    CHECK_INT_EQ(hearth_embed(NULL, text, HEARTH_POOLING_MEAN, v[3], E), HEARTH_ERR_INVALID_ARG);
    for (int k = 0; k < 4; k++)
        free(v[k]);
    hearth_session_free(s);
    hearth_model_free(m);
}

TEST_MAIN(TEST_CASE(model_getters), TEST_CASE(tokenize_matches_internal),
          TEST_CASE(generate_matches_internal), TEST_CASE(chat_reply), TEST_CASE(logit_bias),
          TEST_CASE(errors),
          TEST_CASE(kv_types), TEST_CASE(devices), TEST_CASE(embed))
