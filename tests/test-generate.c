/*
 * test-generate: the generation loop on the real SmolLM2-135M (greedy, so the
 * outputs are fixed): stop strings cut exactly before the stop string (also
 * one spanning a token boundary), EOG ends a chat reply without being
 * emitted, a cancelling callback stops at once (nothing more evaluated or
 * called), a full context stops, and KV reuse: a second chat turn evaluates
 * only the tokens after the common prefix and produces the same ids as
 * evaluating the whole conversation from scratch.
 */
#include <string.h>

#include "backend-registry.h"
#include "chat.h"
#include "engine.h"
#include "err.h"
#include "generate.h"
#include "model.h"
#include "test.h"
#include "tokenizer.h"

struct fixture {
    struct model *m;
    struct tokenizer *tok;
    struct engine *fc;
    struct gen_session *gs;
    struct gen_chat chat;
};

static bool fixture_open(struct fixture *f, uint32_t n_ctx)
{
    memset(f, 0, sizeof *f);
    const char *path = test_model_path(TEST_SMOLLM2);
    if (!path)
        return false;
    struct engine_params fp = engine_params_default();
    fp.n_ctx = n_ctx;
    struct sampler_params sp;
    sampler_params_default(&sp);
    sp.temp = 0.0f;
    hearth_status st = model_load(path, &f->m);
    if (st == HEARTH_OK)
        st = tok_load(f->m->gguf, &f->tok);
    if (st == HEARTH_OK)
        st = engine_create(f->m, &fp, &f->fc);
    if (st == HEARTH_OK)
        st = gen_session_create(f->m, f->tok, f->fc, &sp, &f->gs);
    CHECK_OK(st);
    if (st == HEARTH_OK)
        gen_chat_init(f->m, f->tok, -1, &f->chat);
    return st == HEARTH_OK;
}

static void fixture_close(struct fixture *f)
{
    gen_session_free(f->gs);
    engine_destroy(f->fc);
    tok_free(f->tok);
    model_free(f->m);
}

#define MAX_IDS 512
struct collect {
    char text[8192];
    size_t len;
    int32_t ids[MAX_IDS];
    int n_ids;
    int calls;
    int cancel_after; /* > 0: return false on this call */
    int eog_seen;
    const struct tokenizer *tok;
};

static bool on_token(void *user, const char *text, size_t len, int32_t token)
{
    struct collect *c = user;
    c->calls++;
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, text, len);
        c->len += len;
        c->text[c->len] = '\0';
    }
    if (token >= 0 && c->n_ids < MAX_IDS)
        c->ids[c->n_ids++] = token;
    if (token >= 0 && c->tok && tok_is_eog(c->tok, token))
        c->eog_seen++;
    return !(c->cancel_after > 0 && c->calls >= c->cancel_after);
}

static hearth_status run_text(struct fixture *f, const char *prompt, int n_predict,
                              const char *const *stops, size_t n_stops, struct collect *c,
                              struct gen_stats *st)
{
    struct gen_params p;
    gen_params_default(&p);
    p.n_predict = n_predict;
    p.stop = stops;
    p.n_stop = n_stops;
    p.on_token = on_token;
    p.user = c;
    c->tok = f->tok;
    return gen_run_text(f->gs, prompt, strlen(prompt), true, &p, st);
}

static hearth_status run_chat(struct fixture *f, const struct chat_msg *msgs, size_t n,
                              int n_predict, struct collect *c, struct gen_stats *st)
{
    int32_t *ids;
    size_t n_ids;
    hearth_status s = gen_chat_tokenize(&f->chat, f->tok, msgs, n, true, &ids, &n_ids);
    if (s != HEARTH_OK)
        return s;
    struct gen_params p;
    gen_params_default(&p);
    p.n_predict = n_predict;
    p.chat = &f->chat;
    p.on_token = on_token;
    p.user = c;
    c->tok = f->tok;
    s = gen_run(f->gs, ids, n_ids, &p, st);
    free(ids);
    return s;
}

#define FOX "The quick brown fox"
/* SmolLM2-135M Q4_1's greedy continuation of FOX begins with this. */
#define FOX_CONT " with a quick brown bear."

TEST(stop_strings)
{
    struct fixture f;
    if (!fixture_open(&f, 256))
        return;
    struct collect ref = {0}, c = {0};
    struct gen_stats st;
    CHECK_OK(run_text(&f, FOX, 24, NULL, 0, &ref, &st));
    CHECK_INT_EQ(st.stop, GEN_STOP_LIMIT);
    CHECK_INT_EQ(st.n_gen, 24);
    CHECK_MSG(!strncmp(ref.text, FOX_CONT, strlen(FOX_CONT)), "greedy text: '%s'", ref.text);

    /* "own be" spans the tokens of "brown" and " bear" */
    static const char *const stops1[] = {"zzz-never", "own be"};
    CHECK_OK(run_text(&f, FOX, 24, stops1, 2, &c, &st));
    CHECK_INT_EQ(st.stop, GEN_STOP_STRING);
    CHECK_STR_EQ(c.text, " with a quick br");
    /* the token that completed the stop string was still reported */
    CHECK(c.n_ids >= 5 && c.n_ids < 24);
    CHECK(!memcmp(c.ids, ref.ids, (size_t)c.n_ids * sizeof c.ids[0]));

    /* a stop string that is a whole later word: everything before it, exactly */
    const char *later = strstr(ref.text + 1, "bear.");
    REQUIRE(later);
    memset(&c, 0, sizeof c);
    static const char *const stops2[] = {"bear."};
    CHECK_OK(run_text(&f, FOX, 24, stops2, 1, &c, &st));
    CHECK_INT_EQ(st.stop, GEN_STOP_STRING);
    CHECK_INT_EQ(c.len, (size_t)(later - ref.text));
    CHECK(!strncmp(c.text, ref.text, c.len));
    fixture_close(&f);
}

TEST(eog_stops_chat_reply)
{
    struct fixture f;
    if (!fixture_open(&f, 256))
        return;
    struct chat_msg msgs[] = {{"user", "What is the capital of France?"}};
    struct collect c = {0};
    struct gen_stats st;
    CHECK_OK(run_chat(&f, msgs, 1, 64, &c, &st));
    CHECK_INT_EQ(st.stop, GEN_STOP_EOG);
    CHECK_STR_EQ(c.text, "The capital of France is Paris.");
    CHECK_INT_EQ(c.eog_seen, 0);
    CHECK(st.n_gen == (size_t)c.n_ids && st.n_gen < 64);
    CHECK_INT_EQ(st.n_prompt_eval, st.n_prompt);
    fixture_close(&f);
}

TEST(cancel_stops_at_once)
{
    struct fixture f;
    if (!fixture_open(&f, 256))
        return;
    struct collect c = {0};
    c.cancel_after = 3;
    struct gen_stats st;
    uint64_t before = gen_session_n_evaluated(f.gs);
    CHECK_OK(run_text(&f, FOX, 24, NULL, 0, &c, &st));
    CHECK_INT_EQ(st.stop, GEN_STOP_CANCELLED);
    CHECK_INT_EQ(c.calls, 3); /* no final flush call after a cancel */
    CHECK_INT_EQ(st.n_gen, 3);
    /* tokens 1 and 2 were evaluated to produce 2 and 3; token 3 was not */
    CHECK_INT_EQ(gen_session_n_evaluated(f.gs) - before, st.n_prompt + 2);
    CHECK_INT_EQ(gen_session_n_cached(f.gs), st.n_prompt + 2);
    fixture_close(&f);
}

TEST(context_full)
{
    struct fixture f;
    if (!fixture_open(&f, 12))
        return;
    struct collect c = {0};
    struct gen_stats st;
    CHECK_OK(run_text(&f, FOX, -1, NULL, 0, &c, &st));
    CHECK_INT_EQ(st.stop, GEN_STOP_CTX_FULL);
    CHECK_INT_EQ(gen_session_n_cached(f.gs), 12);
    CHECK_INT_EQ(st.n_gen, 12 - st.n_prompt + 1); /* the last one sampled, never evaluated */
    /* a prompt longer than the context is refused, naming both sizes */
    memset(&c, 0, sizeof c);
    hearth_status s = run_text(&f, FOX FOX FOX FOX FOX, 4, NULL, 0, &c, &st);
    CHECK_INT_EQ(s, HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "context holds 12") != NULL);
    fixture_close(&f);
}

TEST(kv_reuse_second_turn)
{
    struct fixture f, g;
    if (!fixture_open(&f, 512))
        return;
    struct chat_msg msgs[3] = {{"user", "Remember the word \"banana\"."}, {"assistant", ""},
                               {"user", "What word did I ask you to remember?"}};
    struct collect c1 = {0}, c2 = {0}, c3 = {0};
    struct gen_stats st1, st2, st3;
    CHECK_OK(run_chat(&f, msgs, 1, 24, &c1, &st1));
    REQUIRE(c1.len > 0);
    msgs[1].content = c1.text;

    int32_t *ids;
    size_t n_ids;
    CHECK_OK(gen_chat_tokenize(&f.chat, f.tok, msgs, 3, true, &ids, &n_ids));
    size_t lcp = 0, n_cached = gen_session_n_cached(f.gs);
    const int32_t *cached = gen_session_cached(f.gs);
    while (lcp < n_cached && lcp < n_ids && cached[lcp] == ids[lcp])
        lcp++;
    free(ids);
    CHECK(lcp >= st1.n_prompt); /* at least the whole first prompt is shared */

    uint64_t before = gen_session_n_evaluated(f.gs);
    CHECK_OK(run_chat(&f, msgs, 3, 24, &c2, &st2));
    CHECK_INT_EQ(st2.n_prompt_eval, st2.n_prompt - lcp);
    CHECK(st2.n_prompt_eval < st2.n_prompt / 2);
    size_t decode_evals = st2.stop == GEN_STOP_EOG ? st2.n_gen : st2.n_gen - 1;
    CHECK_INT_EQ(gen_session_n_evaluated(f.gs) - before, st2.n_prompt_eval + decode_evals);
    CHECK_MSG(strstr(c2.text, "banana") != NULL, "second reply: '%s'", c2.text);

    /* the same conversation from scratch in a fresh context gives the same ids */
    if (fixture_open(&g, 512)) {
        CHECK_OK(run_chat(&g, msgs, 3, 24, &c3, &st3));
        CHECK_INT_EQ(st3.n_prompt_eval, st3.n_prompt);
        CHECK_INT_EQ(c3.n_ids, c2.n_ids);
        CHECK(c3.n_ids == c2.n_ids &&
              !memcmp(c3.ids, c2.ids, (size_t)c2.n_ids * sizeof c2.ids[0]));
        CHECK_STR_EQ(c3.text, c2.text);
        fixture_close(&g);
    }
    /* after a reset everything is evaluated again, with the same result */
    gen_session_reset(f.gs);
    memset(&c3, 0, sizeof c3);
    CHECK_OK(run_chat(&f, msgs, 3, 24, &c3, &st3));
    CHECK_INT_EQ(st3.n_prompt_eval, st3.n_prompt);
    CHECK_STR_EQ(c3.text, c2.text);
    fixture_close(&f);
}

/*
 * The prefill batch the engine picks (engine.h): 64 on the CPU alone, 512 once
 * a GPU takes part (so CUDA prefill reaches cuBLAS), a user's -b either way.
 */
TEST(engine_batch_defaults)
{
    const char *path = test_model_path(TEST_SMOLLM2);
    if (!path)
        TEST_SKIP("no SmolLM2 model");
    struct model *m = NULL;
    CHECK_OK(model_load(path, &m));
    if (!m)
        return;
    struct engine_params ep = engine_params_default();
    ep.n_ctx = 64;
    ep.n_threads = 2;
    ep.ngl = 0;
    struct engine *e = NULL;
    CHECK_OK(engine_create(m, &ep, &e));
    if (e)
        CHECK_INT_EQ(engine_n_batch(e), ENGINE_CPU_BATCH);
    engine_destroy(e);
    e = NULL;
    ep.n_batch = 100;
    CHECK_OK(engine_create(m, &ep, &e));
    if (e)
        CHECK_INT_EQ(engine_n_batch(e), 100);
    engine_destroy(e);
    e = NULL;

    struct hearth_device *vk = NULL;
    if (reg_device_open("vulkan0", &vk) != HEARTH_OK) {
        err_clear();
        model_free(m);
        TEST_SKIP("no vulkan0 for the GPU half");
    }
    backend_device_destroy(vk);
    static const char *const names[] = {"vulkan0"};
    ep.n_batch = 0;
    ep.n_devices = 1;
    ep.devices = names;
    ep.ngl = 1;
    CHECK_OK(engine_create(m, &ep, &e));
    if (e) {
        CHECK(engine_uses_devices(e));
        CHECK_INT_EQ(engine_n_batch(e), ENGINE_GPU_BATCH);
    }
    engine_destroy(e);
    model_free(m);
}

TEST_MAIN(TEST_CASE(stop_strings), TEST_CASE(eog_stops_chat_reply),
          TEST_CASE(cancel_stops_at_once), TEST_CASE(context_full),
          TEST_CASE(kv_reuse_second_turn), TEST_CASE(engine_batch_defaults))
