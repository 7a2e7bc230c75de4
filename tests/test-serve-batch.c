/*
 * test-serve-batch: the engine side of `hearth serve`.
 *
 * forward_eval_multi must give every sequence bit-identical logits to the
 * same sequence run alone through forward_eval (the batched matmul computes
 * each (row, token) dot independently; attention reads only the token's own
 * cache), whatever other sequences share the batch and at whatever position
 * they are. The slots engine must then give greedy replies equal to gen_run's,
 * alone or with other requests in flight, reuse a shared prompt prefix, refuse
 * work beyond its queue bound, and free a cancelled request's slot. An
 * embedding request pools the rows that feed the LM head, bit for bit as a
 * lone forward pass gives them, while other requests share its steps.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/forward.h"
#include "engine.h"
#include "generate.h"
#include "model.h"
#include "quant.h"
#include "slots.h"
#include "test.h"
#include "tokenizer.h"

static int32_t argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static struct forward_ctx *make_multi(const struct model *m, int n_seq, int n_batch)
{
    struct forward_params fp = forward_params_default();
    fp.n_ctx = 128;
    fp.n_threads = 2;
    fp.n_batch = n_batch;
    struct forward_ctx *c = NULL;
    CHECK_OK(forward_create_multi(m, &fp, n_seq, &c));
    return c;
}

enum { N_SEQ = 3, N_GEN = 6 };

/* Sequence s runs alone: prefill, then N_GEN greedy steps; logits of each step kept. */
static void run_alone(const struct model *m, const int32_t *prompt, int n, float *hist,
                      int32_t *out)
{
    const size_t V = m->hp.n_vocab;
    struct forward_ctx *c = make_multi(m, 1, 64);
    if (!c)
        return;
    CHECK_OK(forward_eval(c, prompt, n, 0, hist, false));
    for (int i = 0; i < N_GEN; i++) {
        out[i] = argmax(hist + (size_t)i * V, (int)V);
        CHECK_OK(forward_eval(c, &out[i], 1, n + i, hist + (size_t)(i + 1) * V, false));
    }
    forward_destroy(c);
}

TEST(multi_equals_alone)
{
    const char *path = test_model_path(TEST_SMOLLM2);
    REQUIRE(path);
    struct model *m = NULL;
    CHECK_OK(model_load(path, &m));
    REQUIRE(m);
    const size_t V = m->hp.n_vocab;
    static const int32_t p0[] = {1, 504, 3458, 282, 4649, 314, 253, 1345, 30, 216, 2378, 28};
    static const int32_t p1[] = {1, 17, 18, 19, 20, 21, 22};
    static const int32_t p2[] = {1,  9906, 28, 2914, 4470, 314, 1029, 355, 30, 216,
                                 33, 34,   35, 36,   37,   38,  39,   40,  41};
    const int32_t *pr[N_SEQ] = {p0, p1, p2};
    const int np[N_SEQ] = {12, 7, 19};
    float *alone = malloc((size_t)N_SEQ * (N_GEN + 1) * V * sizeof(float));
    float *multi = malloc((size_t)N_SEQ * (N_GEN + 1) * V * sizeof(float));
    float *lg = malloc((size_t)N_SEQ * V * sizeof(float));
    int32_t out[N_SEQ][N_GEN];
    REQUIRE(alone && multi && lg);
    for (int s = 0; s < N_SEQ; s++)
        run_alone(m, pr[s], np[s], alone + (size_t)s * (N_GEN + 1) * V, out[s]);

    /* n_batch 8 splits the 38-token first batch across chunks as well */
    struct forward_ctx *c = make_multi(m, N_SEQ, 8);
    REQUIRE(c);
    CHECK_INT_EQ(forward_n_seq(c), N_SEQ);
    int32_t tok[64], seq[64], pos[64];
    bool want[64];
    int n = 0;
    /* interleave the prompts' order: sequence 2 first, then 0, then 1 */
    const int order[N_SEQ] = {2, 0, 1};
    for (int oi = 0; oi < N_SEQ; oi++) {
        int s = order[oi];
        for (int i = 0; i < np[s]; i++, n++) {
            tok[n] = pr[s][i];
            seq[n] = s;
            pos[n] = i;
            want[n] = i == np[s] - 1;
        }
    }
    CHECK_OK(forward_eval_multi(c, tok, seq, pos, n, lg, want));
    for (int oi = 0; oi < N_SEQ; oi++)
        memcpy(multi + ((size_t)order[oi] * (N_GEN + 1)) * V, lg + (size_t)oi * V,
               V * sizeof(float));
    for (int i = 0; i < N_GEN; i++) {
        n = 0;
        /* sequence 1 stops after 3 steps: batches of 3, then 2 sequences */
        for (int s = 0; s < N_SEQ; s++) {
            if (s == 1 && i >= 3)
                continue;
            tok[n] = out[s][i];
            seq[n] = s;
            pos[n] = np[s] + i;
            want[n] = true;
            n++;
        }
        CHECK_OK(forward_eval_multi(c, tok, seq, pos, n, lg, want));
        for (int r = 0; r < n; r++)
            memcpy(multi + ((size_t)seq[r] * (N_GEN + 1) + (size_t)i + 1) * V, lg + (size_t)r * V,
                   V * sizeof(float));
    }
    for (int s = 0; s < N_SEQ; s++) {
        int steps = s == 1 ? 4 : N_GEN + 1;
        const float *a = alone + (size_t)s * (N_GEN + 1) * V;
        const float *b = multi + (size_t)s * (N_GEN + 1) * V;
        CHECK_MSG(memcmp(a, b, (size_t)steps * V * sizeof(float)) == 0,
                  "sequence %d: batched logits differ from the sequence alone", s);
        CHECK_INT_EQ(forward_seq_n_past(c, s), (uint32_t)(np[s] + (s == 1 ? 3 : N_GEN)));
    }
    forward_destroy(c);
    free(alone);
    free(multi);
    free(lg);
    model_free(m);
}

TEST(multi_argument_errors)
{
    const char *path = test_model_path(TEST_SMOLLM2);
    REQUIRE(path);
    struct model *m = NULL;
    CHECK_OK(model_load(path, &m));
    REQUIRE(m);
    struct forward_ctx *c = make_multi(m, 2, 64);
    REQUIRE(c);
    int32_t tok[3] = {1, 2, 3}, seq[3] = {0, 0, 1}, pos[3] = {0, 1, 0};
    CHECK_OK(forward_eval_multi(c, tok, seq, pos, 3, NULL, NULL));
    CHECK_INT_EQ(forward_seq_n_past(c, 0), 2);
    CHECK_INT_EQ(forward_seq_n_past(c, 1), 1);
    int32_t bad_seq[1] = {2}, p0[1] = {0};
    CHECK(forward_eval_multi(c, tok, bad_seq, p0, 1, NULL, NULL) == HEARTH_ERR_INVALID_ARG);
    int32_t s1[1] = {1}, gap[1] = {2}; /* sequence 1 holds 1 position: 2 leaves a hole */
    CHECK(forward_eval_multi(c, tok, s1, gap, 1, NULL, NULL) == HEARTH_ERR_INVALID_ARG);
    int32_t s00[2] = {0, 0}, skip[2] = {2, 4};
    CHECK(forward_eval_multi(c, tok, s00, skip, 2, NULL, NULL) == HEARTH_ERR_INVALID_ARG);
    int32_t badtok[1] = {(int32_t)m->hp.n_vocab};
    CHECK(forward_eval_multi(c, badtok, s1, p0, 1, NULL, NULL) == HEARTH_ERR_INVALID_ARG);
    int32_t far[1] = {128};
    CHECK(forward_eval_multi(c, tok, s1, far, 1, NULL, NULL) == HEARTH_ERR_INVALID_ARG);
    /* failures changed nothing; a rewind is allowed */
    CHECK_INT_EQ(forward_seq_n_past(c, 0), 2);
    CHECK_OK(forward_eval_multi(c, tok, s00, p0, 1, NULL, NULL));
    CHECK_INT_EQ(forward_seq_n_past(c, 0), 1);
    CHECK_INT_EQ(forward_seq_n_past(c, 1), 1);
    forward_seq_clear(c, 1);
    CHECK_INT_EQ(forward_seq_n_past(c, 1), 0);
    struct forward_ctx *bad = NULL;
    CHECK(forward_create_multi(m, NULL, 0, &bad) == HEARTH_ERR_INVALID_ARG);
    CHECK(bad == NULL);
    forward_destroy(c);
    model_free(m);
}

/* ---- the slots engine --------------------------------------------------------- */

struct env {
    struct model *m;
    struct tokenizer *tok;
    struct gen_chat chat;
};

static bool env_open(struct env *e)
{
    memset(e, 0, sizeof *e);
    const char *path = test_model_path(TEST_SMOLLM2);
    if (!path)
        return false;
    CHECK_OK(model_load(path, &e->m));
    if (!e->m)
        return false;
    CHECK_OK(tok_load(e->m->gguf, &e->tok));
    if (!e->tok)
        return false;
    gen_chat_init(e->m, e->tok, -1, &e->chat);
    return true;
}

static void env_close(struct env *e)
{
    tok_free(e->tok);
    model_free(e->m);
}

static void greedy(struct sampler_params *sp)
{
    sampler_params_default(sp);
    sp->temp = 0.0f;
}

struct collect {
    char buf[4096];
    size_t len;
};

static bool collect_piece(void *user, const char *text, size_t len, int32_t token)
{
    struct collect *c = user;
    (void)token;
    if (c->len + len < sizeof c->buf) {
        memcpy(c->buf + c->len, text, len);
        c->len += len;
    }
    c->buf[c->len] = '\0';
    return true;
}

/* The reference: gen_run on its own forward context. */
static void reference_reply(struct env *e, const int32_t *ids, size_t n, int n_predict,
                            struct collect *out)
{
    memset(out, 0, sizeof *out);
    struct engine_params ep = engine_params_default();
    ep.n_ctx = 256;
    ep.n_threads = 2;
    ep.ngl = 0; /* the CPU forward pass, as the slots engine runs */
    struct engine *fc = NULL;
    struct gen_session *gs = NULL;
    struct sampler_params sp;
    greedy(&sp);
    CHECK_OK(engine_create(e->m, &ep, &fc));
    if (fc)
        CHECK_OK(gen_session_create(e->m, e->tok, fc, &sp, &gs));
    if (gs) {
        struct gen_params gp;
        gen_params_default(&gp);
        gp.n_predict = n_predict;
        gp.chat = &e->chat;
        gp.on_token = collect_piece;
        gp.user = out;
        CHECK_OK(gen_run(gs, ids, n, &gp, NULL));
    }
    gen_session_free(gs);
    engine_destroy(fc);
}

/* A greedy chat request of n_predict tokens on ids[0..n). */
static void greedy_req(struct slots_req_params *rp, const int32_t *ids, size_t n, int n_predict)
{
    memset(rp, 0, sizeof *rp);
    rp->prompt = ids;
    rp->n_prompt = n;
    greedy(&rp->sp);
    rp->n_predict = n_predict;
    rp->chat = true;
}

static struct slots_req *submit(struct slots *s, const int32_t *ids, size_t n, int n_predict)
{
    struct slots_req_params rp;
    greedy_req(&rp, ids, n, n_predict);
    struct slots_req *r = NULL;
    CHECK_OK(slots_req_create(s, &rp, &r));
    if (r)
        CHECK_INT_EQ(slots_submit(s, r), SLOTS_QUEUED);
    return r;
}

/* Reads r to the end into out. */
static void drain_req(struct slots_req *r, struct collect *out, struct slots_result *res)
{
    memset(out, 0, sizeof *out);
    for (int guard = 0; guard < 10000; guard++) {
        size_t len;
        char *t = slots_req_take(r, 1000, &len, res, NULL, NULL);
        if (t)
            collect_piece(out, t, len, 0);
        free(t);
        if (res->done)
            return;
    }
    TEST_FAIL_AT("request did not finish");
}

TEST(slots_greedy_equals_alone)
{
    struct env e;
    if (!env_open(&e)) {
        env_close(&e);
        return;
    }
    const char *qs[4] = {"What is the capital of France?", "Name three colors.",
                         "Write a haiku about snow.", "What is 2 + 2?"};
    enum { NQ = 4, NP = 12 };
    int32_t *ids[NQ] = {0};
    size_t n_ids[NQ] = {0};
    struct collect ref[NQ];
    for (int q = 0; q < NQ; q++) {
        struct chat_msg msg = {"user", qs[q]};
        CHECK_OK(gen_chat_tokenize(&e.chat, e.tok, &msg, 1, true, &ids[q], &n_ids[q]));
        reference_reply(&e, ids[q], n_ids[q], NP, &ref[q]);
        CHECK(ref[q].len > 0);
    }
    struct slots_params sp = {
        .n_slots = 3, .max_queue = 8, .n_ctx = 256, .n_threads = 2, .prefill_chunk = 16};
    struct slots *s = NULL;
    CHECK_OK(slots_create(e.m, e.tok, &e.chat, &sp, &s));
    if (s) {
        /* 4 requests on 3 slots: one waits in the queue and joins when a slot frees */
        struct slots_req *r[NQ];
        for (int q = 0; q < NQ; q++)
            r[q] = submit(s, ids[q], n_ids[q], NP);
        for (int q = 0; q < NQ; q++) {
            struct collect got;
            struct slots_result res;
            if (!r[q])
                continue;
            drain_req(r[q], &got, &res);
            CHECK_STR_EQ(got.buf, ref[q].buf);
            CHECK_INT_EQ(res.status, HEARTH_OK);
            CHECK(res.stop == GEN_STOP_LIMIT || res.stop == GEN_STOP_EOG);
            CHECK(res.n_gen >= 1 && res.n_gen <= NP);
            slots_req_release(r[q]);
        }
        /* the last prompt again: its slot still holds it, one token is evaluated */
        struct slots_req *again = submit(s, ids[NQ - 1], n_ids[NQ - 1], NP);
        if (again) {
            struct collect got;
            struct slots_result res;
            drain_req(again, &got, &res);
            CHECK_STR_EQ(got.buf, ref[NQ - 1].buf);
            CHECK_INT_EQ(res.n_prompt_eval, 1);
            slots_req_release(again);
        }
        struct slots_stats st;
        slots_get_stats(s, &st);
        CHECK_INT_EQ(st.n_requests, 5);
        CHECK_INT_EQ(st.n_completed, 5);
        CHECK_INT_EQ(st.n_active, 0);
        CHECK(st.n_reused_tokens >= n_ids[NQ - 1] - 1);
        CHECK(slots_drain(s, 1000));
        slots_destroy(s);
    }
    for (int q = 0; q < NQ; q++)
        free(ids[q]);
    env_close(&e);
}

TEST(slots_queue_bound_and_cancel)
{
    struct env e;
    if (!env_open(&e)) {
        env_close(&e);
        return;
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    static const char text[] = "Once upon a time, in a land far away, there lived";
    CHECK_OK(gen_tokenize_prompt(e.tok, text, strlen(text), false, &ids, &n_ids));
    struct slots_params sp = {
        .n_slots = 1, .max_queue = 1, .n_ctx = 512, .n_threads = 2, .prefill_chunk = 64};
    struct slots *s = NULL;
    CHECK_OK(slots_create(e.m, e.tok, &e.chat, &sp, &s));
    if (s && ids) {
        struct slots_req *busy = submit(s, ids, n_ids, 400);
        REQUIRE(busy);
        /* wait until it holds the slot and streams */
        struct slots_result res = {0};
        for (int i = 0; i < 100 && res.n_gen == 0; i++) {
            size_t len;
            free(slots_req_take(busy, 100, &len, &res, NULL, NULL));
        }
        CHECK_INT_EQ(res.slot, 0);
        CHECK(!res.done);
        struct slots_req *waiting = submit(s, ids, n_ids, 4);
        struct slots_req_params rp;
        memset(&rp, 0, sizeof rp);
        rp.prompt = ids;
        rp.n_prompt = n_ids;
        greedy(&rp.sp);
        rp.n_predict = 4;
        struct slots_req *extra = NULL;
        CHECK_OK(slots_req_create(s, &rp, &extra));
        if (extra) {
            CHECK_INT_EQ(slots_submit(s, extra), SLOTS_FULL);
            slots_req_release(extra);
        }
        /* the client goes away: its slot frees and the waiting request runs */
        slots_req_release(busy);
        if (waiting) {
            struct collect got;
            drain_req(waiting, &got, &res);
            CHECK_INT_EQ(res.stop, GEN_STOP_LIMIT);
            CHECK_INT_EQ(res.n_gen, 4);
            slots_req_release(waiting);
        }
        struct slots_stats st;
        slots_get_stats(s, &st);
        CHECK_INT_EQ(st.n_cancelled, 1);
        CHECK_INT_EQ(st.n_rejected, 1);
        CHECK_INT_EQ(st.n_active, 0);
        /* bad requests are refused up front, naming the field */
        rp.n_predict = 0;
        CHECK(slots_req_create(s, &rp, &extra) == HEARTH_ERR_INVALID_ARG);
        rp.n_predict = 4;
        rp.sp.top_p = 0.0f;
        CHECK(slots_req_create(s, &rp, &extra) == HEARTH_ERR_INVALID_ARG);
        slots_close(s);
        rp.sp.top_p = 1.0f;
        CHECK_OK(slots_req_create(s, &rp, &extra));
        if (extra) {
            CHECK_INT_EQ(slots_submit(s, extra), SLOTS_CLOSED);
            slots_req_release(extra);
        }
    }
    slots_destroy(s);
    free(ids);
    env_close(&e);
}

/* A greedy request of n tokens with logit_bias ids/bias; its text in out. */
static void biased(struct slots *s, const int32_t *ids, size_t n, const int32_t *bid,
                   const float *bias, size_t nb, int n_predict, struct collect *out)
{
    struct slots_req_params rp;
    greedy_req(&rp, ids, n, n_predict);
    rp.bias_ids = bid;
    rp.bias = bias;
    rp.n_bias = nb;
    struct slots_req *r = NULL;
    memset(out, 0, sizeof *out);
    CHECK_OK(slots_req_create(s, &rp, &r));
    if (!r)
        return;
    CHECK_INT_EQ(slots_submit(s, r), SLOTS_QUEUED);
    struct slots_result res;
    drain_req(r, out, &res);
    CHECK_INT_EQ(res.status, HEARTH_OK);
    slots_req_release(r);
}

/*
 * logit_bias reaches a slot's sampler (the server's logit_bias): -100 on the
 * greedy first token makes the reply start otherwise; +100 on a token makes
 * every greedy step pick it; an id outside the vocabulary is refused up
 * front, naming logit_bias.
 */
TEST(slots_logit_bias)
{
    struct env e;
    if (!env_open(&e)) {
        env_close(&e);
        return;
    }
    struct chat_msg msg = {"user", "What is the capital of France?"};
    int32_t *ids = NULL, *first = NULL, *force = NULL;
    size_t n_ids = 0, n_first = 0, n_force = 0;
    CHECK_OK(gen_chat_tokenize(&e.chat, e.tok, &msg, 1, true, &ids, &n_ids));
    struct slots_params sp = {
        .n_slots = 1, .max_queue = 2, .n_ctx = 256, .n_threads = 2, .prefill_chunk = 64};
    struct slots *s = NULL;
    CHECK_OK(slots_create(e.m, e.tok, &e.chat, &sp, &s));
    if (s && ids) {
        struct collect plain, got;
        biased(s, ids, n_ids, NULL, NULL, 0, 1, &plain);
        CHECK(plain.len > 0);
        /* the first token's id: its text encodes back to one id */
        CHECK_OK(tok_encode(e.tok, plain.buf, plain.len, false, false, &first, &n_first));
        CHECK_INT_EQ(n_first, 1);
        if (n_first == 1) {
            const float ban = -100.0f;
            biased(s, ids, n_ids, first, &ban, 1, 1, &got);
            CHECK(got.len > 0);
            CHECK_MSG(strcmp(got.buf, plain.buf) != 0, "banned '%s' came back", plain.buf);
        }
        CHECK_OK(tok_encode(e.tok, " banana", 7, false, false, &force, &n_force));
        CHECK_INT_EQ(n_force, 1);
        if (n_force == 1) {
            const float up = 100.0f;
            biased(s, ids, n_ids, force, &up, 1, 3, &got);
            CHECK_STR_EQ(got.buf, " banana banana banana");
        }
        struct slots_req_params rp;
        greedy_req(&rp, ids, n_ids, 1);
        const int32_t bad_id = (int32_t)e.m->hp.n_vocab;
        const float b = 1.0f;
        rp.bias_ids = &bad_id;
        rp.bias = &b;
        rp.n_bias = 1;
        struct slots_req *r = NULL;
        CHECK_INT_EQ(slots_req_create(s, &rp, &r), HEARTH_ERR_INVALID_ARG);
        CHECK(r == NULL && !strncmp(hearth_last_error(), "logit_bias", 10));
        CHECK(slots_drain(s, 1000));
        slots_destroy(s);
    }
    free(ids);
    free(first);
    free(force);
    env_close(&e);
}

/* ---- log-probabilities ---------------------------------------------------------- */

/* r against the reference logits row: id, ln softmax, and a true, ordered top. */
static void check_record(const struct slots_logprob *r, const float *row, int32_t V, int32_t id,
                         int n_top, const char *what, size_t k)
{
    double mx = (double)row[0], sum = 0;
    for (int32_t v = 1; v < V; v++)
        mx = (double)row[v] > mx ? (double)row[v] : mx;
    for (int32_t v = 0; v < V; v++)
        sum += exp((double)row[v] - mx);
    const double lse = mx + log(sum);
    CHECK_MSG(r->id == id, "%s %zu: id %d, expected %d", what, k, (int)r->id, (int)id);
    CHECK_MSG(fabs((double)r->logprob - ((double)row[id] - lse)) < 1e-4,
              "%s %zu: logprob %g, expected %g", what, k, (double)r->logprob,
              (double)row[id] - lse);
    CHECK_INT_EQ(r->n_top, n_top);
    for (int j = 0; j < r->n_top && j < n_top; j++) {
        CHECK(fabs((double)r->top_logprob[j] - ((double)row[r->top_id[j]] - lse)) < 1e-4);
        if (j > 0)
            CHECK(row[r->top_id[j - 1]] >= row[r->top_id[j]]);
    }
    if (r->n_top == n_top && n_top > 0) {
        /* nothing outside the top is more likely than its last */
        int above = 0;
        for (int32_t v = 0; v < V; v++)
            above += row[v] > row[r->top_id[n_top - 1]];
        CHECK_MSG(above <= n_top - 1, "%s %zu: %d ids above the top's last", what, k, above);
    }
}

/* Submits a greedy completion request with logprobs; its text and records to the end. */
static void logprob_req(struct slots *s, const int32_t *ids, size_t n, int n_predict, bool echo,
                        const char *stop, struct collect *text, struct slots_logprob **lp,
                        size_t *n_lp, struct slots_logprob **plp, size_t *n_plp,
                        struct slots_result *res)
{
    struct slots_req_params rp;
    greedy_req(&rp, ids, n, n_predict);
    rp.chat = false;
    rp.logprobs = true;
    rp.top_logprobs = 5;
    rp.echo = echo;
    rp.stop = &stop;
    rp.n_stop = stop ? 1 : 0;
    struct slots_req *r = NULL;
    memset(text, 0, sizeof *text);
    *lp = *plp = NULL;
    *n_lp = *n_plp = 0;
    CHECK_OK(slots_req_create(s, &rp, &r));
    if (!r)
        return;
    CHECK_INT_EQ(slots_submit(s, r), SLOTS_QUEUED);
    if (echo)
        for (int guard = 0; guard < 1000 && !slots_req_prompt_logprobs(r, 1000, plp, n_plp, res);
             guard++)
            if (res->done)
                break;
    for (int guard = 0; guard < 10000; guard++) {
        size_t len, k = 0;
        struct slots_logprob *got = NULL;
        char *t = slots_req_take(r, 1000, &len, res, &got, &k);
        if (t)
            collect_piece(text, t, len, 0);
        if (k > 0) {
            /* every record handed out starts in the text handed out with or before it */
            for (size_t i = 0; i < k; i++)
                CHECK(got[i].offset < text->len || (res->done && res->stop != GEN_STOP_STRING));
            struct slots_logprob *all = realloc(*lp, (*n_lp + k) * sizeof *all);
            if (all) {
                memcpy(all + *n_lp, got, k * sizeof *all);
                *lp = all;
                *n_lp += k;
            }
        }
        free(got);
        free(t);
        if (res->done)
            break;
    }
    CHECK(res->done);
    slots_req_release(r);
}

/*
 * Log-probabilities (the server's logprobs, top_logprobs and echo): each
 * generated token's record equals ln softmax of the reference forward pass's
 * logits with the true top 5 in order, its offset is where its text starts;
 * echo scores every prompt token but the first from the logits before it,
 * also across prompt chunks; a stop string drops the records of the tokens
 * it cuts; max_tokens 0 with echo ends after the prompt.
 */
TEST(slots_logprobs)
{
    struct env e;
    if (!env_open(&e)) {
        env_close(&e);
        return;
    }
    const char *prompt = "The capital of France is";
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(gen_tokenize_prompt(e.tok, prompt, strlen(prompt), false, &ids, &n));
    REQUIRE(ids && n >= 4);
    const int32_t V = (int32_t)e.m->hp.n_vocab;
    enum { NG = 5 };
    /* the reference: every prompt row, then NG greedy steps */
    float *ref = malloc((n + NG) * (size_t)V * sizeof *ref);
    int32_t gen[NG];
    struct forward_ctx *c = make_multi(e.m, 1, 64);
    REQUIRE(ref && c);
    CHECK_OK(forward_eval(c, ids, (int)n, 0, ref, true));
    for (int i = 0; i < NG; i++) {
        gen[i] = argmax(ref + (n - 1 + (size_t)i) * V, V);
        CHECK_OK(forward_eval(c, &gen[i], 1, (int)n + i, ref + (n + (size_t)i) * V, false));
    }
    forward_destroy(c);
    size_t off[NG + 1] = {0};
    struct tok_decoder *d = NULL;
    char piece[512];
    CHECK_OK(tok_decoder_create(e.tok, false, &d));
    for (int i = 0; d && i < NG; i++) {
        size_t got = 0;
        CHECK_OK(tok_decoder_push(d, gen[i], piece, sizeof piece, &got));
        off[i + 1] = off[i] + got;
    }
    tok_decoder_free(d);

    /* prefill in chunks of 3 tokens, so echo's rows come from several steps */
    struct slots_params sp = {
        .n_slots = 2, .max_queue = 4, .n_ctx = 128, .n_threads = 2, .prefill_chunk = 3};
    struct slots *s = NULL;
    CHECK_OK(slots_create(e.m, e.tok, &e.chat, &sp, &s));
    if (s) {
        struct collect text;
        struct slots_logprob *lp, *plp;
        size_t n_lp, n_plp;
        struct slots_result res;
        logprob_req(s, ids, n, NG, true, NULL, &text, &lp, &n_lp, &plp, &n_plp, &res);
        CHECK_INT_EQ(res.stop, GEN_STOP_LIMIT);
        CHECK_INT_EQ(n_lp, NG);
        CHECK_INT_EQ(text.len, off[NG]);
        for (size_t k = 0; k < n_lp && k < NG; k++) {
            check_record(&lp[k], ref + (n - 1 + k) * V, V, gen[k], 5, "generated", k);
            CHECK_INT_EQ(lp[k].offset, off[k]);
        }
        CHECK_INT_EQ(n_plp, n);
        if (n_plp == n) {
            CHECK(plp[0].id == ids[0] && isnan(plp[0].logprob) && plp[0].n_top == 0);
            for (size_t j = 1; j < n; j++)
                check_record(&plp[j], ref + (j - 1) * V, V, ids[j], 5, "prompt", j);
        }
        free(lp);
        free(plp);

        /* a stop string from token 2's text on: records from there on are cut */
        const char *stop = text.buf + off[2];
        char stop_buf[64];
        snprintf(stop_buf, sizeof stop_buf, "%s", stop);
        const char *hit = strstr(text.buf, stop_buf);
        REQUIRE(stop_buf[0] && hit);
        size_t cut = (size_t)(hit - text.buf), expect = 0;
        for (int k = 0; k < NG; k++)
            expect += off[k] < cut;
        logprob_req(s, ids, n, NG, false, stop_buf, &text, &lp, &n_lp, &plp, &n_plp, &res);
        CHECK_INT_EQ(res.stop, GEN_STOP_STRING);
        CHECK_INT_EQ(text.len, cut);
        CHECK_INT_EQ(n_lp, expect);
        CHECK(plp == NULL);
        for (size_t k = 0; k < n_lp; k++)
            check_record(&lp[k], ref + (n - 1 + k) * V, V, gen[k], 5, "cut", k);
        free(lp);

        /* echo with max_tokens 0: the prompt's records, nothing generated */
        logprob_req(s, ids, n, 0, true, NULL, &text, &lp, &n_lp, &plp, &n_plp, &res);
        CHECK_INT_EQ(res.stop, GEN_STOP_LIMIT);
        CHECK_INT_EQ(res.n_gen, 0);
        CHECK_INT_EQ(text.len, 0);
        CHECK_INT_EQ(n_lp, 0);
        CHECK_INT_EQ(n_plp, n);
        for (size_t j = 1; j < n_plp; j++)
            check_record(&plp[j], ref + (j - 1) * V, V, ids[j], 5, "prompt only", j);
        free(lp);
        free(plp);

        /* refused up front */
        struct slots_req_params rp;
        struct slots_req *r = NULL;
        greedy_req(&rp, ids, n, 0);
        CHECK_INT_EQ(slots_req_create(s, &rp, &r), HEARTH_ERR_INVALID_ARG); /* 0 without echo */
        rp.logprobs = true;
        rp.echo = true;
        rp.top_logprobs = SLOTS_MAX_TOP + 1;
        CHECK_INT_EQ(slots_req_create(s, &rp, &r), HEARTH_ERR_INVALID_ARG);
        CHECK(r == NULL);

        /* echo without logprobs: max_tokens 0 still ends after the prompt, nothing scored */
        greedy_req(&rp, ids, n, 0);
        rp.echo = true;
        CHECK_OK(slots_req_create(s, &rp, &r));
        if (r) {
            CHECK_INT_EQ(slots_submit(s, r), SLOTS_QUEUED);
            struct collect none;
            drain_req(r, &none, &res);
            CHECK(res.stop == GEN_STOP_LIMIT && res.n_gen == 0 && none.len == 0);
            CHECK(!slots_req_prompt_logprobs(r, 0, &plp, &n_plp, &res) && plp == NULL);
            slots_req_release(r);
        }
        CHECK(slots_drain(s, 1000));
        slots_destroy(s);
    }
    free(ref);
    free(ids);
    env_close(&e);
}

/* ---- embeddings ------------------------------------------------------------------ */

/* An embedding request on ids[0..n), queued. */
static struct slots_req *submit_embed(struct slots *s, const int32_t *ids, size_t n,
                                      enum embd_pool pool)
{
    struct slots_req_params rp;
    greedy_req(&rp, ids, n, 0);
    rp.chat = false;
    rp.pool = pool;
    struct slots_req *r = NULL;
    CHECK_OK(slots_req_create(s, &rp, &r));
    if (r)
        CHECK_INT_EQ(slots_submit(s, r), SLOTS_QUEUED);
    return r;
}

/*
 * The hidden rows are the LM head's input: W_out . h, with h rounded the way
 * the CPU dot product rounds its input (the weight type's vec_dot_type, Q8_0
 * blocks for SmolLM2's head) and the dequantized rows summed in double,
 * gives the forward pass's logits up to float summation order. Pre-norm
 * rows, a missing norm gain or another row miss by whole logits.
 */
static void check_head_input(const struct model *m, const float *h, const float *lg)
{
    const struct model_weight *w = &m->output;
    const struct quant_traits *qt = quant_get(w->type), *at = qt ? quant_get(qt->vec_dot_type) : NULL;
    REQUIRE(qt && qt->to_float && at);
    const int64_t E = w->n_in;
    float *row = malloc((size_t)E * sizeof *row), *hq = malloc((size_t)E * sizeof *hq);
    void *blocks = malloc((size_t)(E / at->blck + 1) * at->block_bytes + (size_t)E * 4);
    REQUIRE(row && hq && blocks);
    memcpy(hq, h, (size_t)E * sizeof *hq);
    if (at->is_quantized && at->from_float && at->to_float) {
        at->from_float(h, blocks, E);
        at->to_float(blocks, hq, E);
    }
    double dmax = 0.0, amax = 0.0;
    for (int64_t v = 0; v < w->n_out; v += 97) {
        qt->to_float((const uint8_t *)w->data + (size_t)v * w->row_bytes, row, E);
        double dot = 0.0;
        for (int64_t j = 0; j < E; j++)
            dot += (double)row[j] * (double)hq[j];
        double d = fabs(dot - (double)lg[v]);
        dmax = d > dmax ? d : dmax;
        amax = fabs((double)lg[v]) > amax ? fabs((double)lg[v]) : amax;
    }
    CHECK_MSG(dmax <= 1e-4 * amax, "W_out . hidden misses the logits by %g (max|logit| %g)",
              dmax, amax);
    free(row);
    free(hq);
    free(blocks);
}

/*
 * Mean, last and first pooling equal the rows of a lone forward pass pooled
 * the same way (a double sum in row order), bit for bit, though the slots
 * take the prompt 3 tokens a step beside a generating request; the rows are
 * the LM head's input; an embedding request that asks to generate is refused.
 */
TEST(slots_embeddings)
{
    struct env e;
    if (!env_open(&e)) {
        env_close(&e);
        return;
    }
    const char *text = "Embeddings turn a text into one vector of numbers.";
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(gen_tokenize_prompt(e.tok, text, strlen(text), false, &ids, &n));
    REQUIRE(ids && n >= 8);
    const size_t E = e.m->hp.n_embd, V = e.m->hp.n_vocab;
    float *hid = malloc(n * E * sizeof *hid), *lg = malloc(n * V * sizeof *lg);
    bool *all = malloc(n * sizeof *all);
    int32_t *seq = calloc(n, sizeof *seq), *pos = malloc(n * sizeof *pos);
    REQUIRE(hid && lg && all && seq && pos);
    for (size_t t = 0; t < n; t++) {
        all[t] = true;
        pos[t] = (int32_t)t;
    }
    struct forward_ctx *c = make_multi(e.m, 1, 64);
    REQUIRE(c);
    const struct seq_batch_out out = {lg, all, hid, all};
    CHECK_OK(forward_eval_multi_out(c, ids, seq, pos, (int)n, &out));
    forward_destroy(c);
    check_head_input(e.m, hid, lg);
    check_head_input(e.m, hid + (n - 1) * E, lg + (n - 1) * V);
    float *want[3];
    for (int k = 0; k < 3; k++)
        REQUIRE((want[k] = malloc(E * sizeof(float))));
    for (size_t j = 0; j < E; j++) {
        double acc = 0.0;
        for (size_t t = 0; t < n; t++)
            acc += (double)hid[t * E + j];
        want[0][j] = (float)(acc / (double)n);
        want[1][j] = hid[(n - 1) * E + j];
        want[2][j] = hid[j];
    }

    struct slots_params sp = {
        .n_slots = 2, .max_queue = 8, .n_ctx = 128, .n_threads = 2, .prefill_chunk = 3};
    struct slots *s = NULL;
    CHECK_OK(slots_create(e.m, e.tok, &e.chat, &sp, &s));
    if (s) {
        CHECK_INT_EQ(slots_n_embd(s), (int)E);
        /* a generation shares the steps with every embedding */
        struct slots_req *gen = submit(s, ids, n, 24);
        const enum embd_pool pools[3] = {EMBD_POOL_MEAN, EMBD_POOL_LAST, EMBD_POOL_FIRST};
        struct slots_req *r[3];
        for (int k = 0; k < 3; k++)
            r[k] = submit_embed(s, ids, n, pools[k]);
        float *got = malloc(E * sizeof *got);
        REQUIRE(got);
        for (int k = 0; k < 3; k++) {
            struct collect none;
            struct slots_result res;
            if (!r[k])
                continue;
            drain_req(r[k], &none, &res);
            CHECK(res.done && res.status == HEARTH_OK && res.n_gen == 0 && none.len == 0);
            CHECK_INT_EQ(res.n_prompt_eval, n);
            CHECK(slots_req_embedding(r[k], got));
            CHECK_MSG(memcmp(got, want[k], E * sizeof *got) == 0,
                      "pooling %d: the slots' embedding differs from the lone forward pass's",
                      (int)pools[k]);
            slots_req_release(r[k]);
        }
        struct collect reply;
        struct slots_result gres;
        if (gen) {
            drain_req(gen, &reply, &gres);
            CHECK(gres.n_gen > 0);
            slots_req_release(gen);
        }
        struct slots_stats st;
        slots_get_stats(s, &st);
        CHECK_INT_EQ(st.n_embeddings, 3);

        struct slots_req_params rp;
        struct slots_req *bad = NULL;
        greedy_req(&rp, ids, n, 1); /* an embedding generates nothing */
        rp.pool = EMBD_POOL_MEAN;
        CHECK_INT_EQ(slots_req_create(s, &rp, &bad), HEARTH_ERR_INVALID_ARG);
        greedy_req(&rp, ids, n, 0);
        rp.pool = EMBD_POOL_LAST;
        rp.logprobs = true;
        CHECK_INT_EQ(slots_req_create(s, &rp, &bad), HEARTH_ERR_INVALID_ARG);
        greedy_req(&rp, ids, n, 0);
        rp.pool = (enum embd_pool)7;
        CHECK_INT_EQ(slots_req_create(s, &rp, &bad), HEARTH_ERR_INVALID_ARG);
        CHECK(bad == NULL);
        free(got);
        CHECK(slots_drain(s, 1000));
        slots_destroy(s);
    }
    for (int k = 0; k < 3; k++)
        free(want[k]);
    free(hid);
    free(lg);
    free(all);
    free(seq);
    free(pos);
    free(ids);
    env_close(&e);
}

TEST_MAIN(TEST_CASE(multi_equals_alone), TEST_CASE(multi_argument_errors),
          TEST_CASE(slots_greedy_equals_alone), TEST_CASE(slots_queue_bound_and_cancel),
          TEST_CASE(slots_logit_bias), TEST_CASE(slots_logprobs),
          TEST_CASE(slots_embeddings))
