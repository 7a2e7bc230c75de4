/*
 * slots-req: a request's life on the caller's side (slots.h): made and
 * checked on the caller's thread, queued with a bound, read back (text,
 * log-probabilities, embedding) by waiting on its condition variable, and
 * released. The engine side is slots.c.
 */
#include "slots-internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"

static void req_free(struct slots_req *r)
{
    sampler_free(r->smp);
    tok_decoder_free(r->dec);
    chat_stop_free(&r->sm);
    pthread_cond_destroy(&r->cv);
    free(r->prompt);
    free(r->text);
    free(r->lp);
    free(r->plp);
    free(r->emb);
    js_schema_free(&r->schema);
    free(r);
}

void slots__req_unref(struct slots_req *r)
{
    if (--r->refs == 0)
        req_free(r);
}

static hearth_status init_stops(struct slots *s, struct slots_req *r,
                                const struct slots_req_params *p)
{
    size_t n_chat = p->chat && s->chat ? s->chat->n_stop_strs : 0;
    const char **all = malloc((p->n_stop + n_chat + 1) * sizeof *all);
    if (!all)
        return err_set(HEARTH_ERR_NO_MEMORY, "slots: stop list");
    for (size_t i = 0; i < p->n_stop; i++)
        all[i] = p->stop[i];
    for (size_t i = 0; i < n_chat; i++)
        all[p->n_stop + i] = s->chat->stop_strs[i];
    hearth_status st = chat_stop_init(&r->sm, all, p->n_stop + n_chat);
    free(all);
    return st;
}

/* The request's sampler, its logit bias, and the penalty window primed with the prompt's tail. */
static hearth_status init_sampler(struct slots *s, struct slots_req *r,
                                  const struct slots_req_params *p)
{
    hearth_status st;
    if ((st = sampler_create(&p->sp, s->n_vocab, &r->smp)) != HEARTH_OK ||
        (p->n_bias > 0 &&
         (st = sampler_set_bias(r->smp, p->bias_ids, p->bias, (int)p->n_bias)) != HEARTH_OK))
        return st;
    /* as in generate.c */
    size_t win = p->sp.repeat_last_n > 0 ? (size_t)p->sp.repeat_last_n : 0;
    for (size_t i = p->n_prompt > win ? p->n_prompt - win : 0; i < p->n_prompt; i++)
        if ((st = sampler_accept(r->smp, p->prompt[i])) != HEARTH_OK)
            return st;
    return HEARTH_OK;
}

hearth_status slots_req_create(struct slots *s, const struct slots_req_params *p,
                               struct slots_req **out)
{
    *out = NULL;
    uint32_t n_ctx = engine_n_ctx(s->eng);
    if (p->n_prompt == 0)
        return err_set(HEARTH_ERR_INVALID_ARG, "prompt: the prompt has no tokens");
    if (p->n_prompt >= n_ctx)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "prompt: %zu tokens, but a slot's context holds %u (at most %u for the "
                       "prompt)",
                       p->n_prompt, n_ctx, n_ctx - 1);
    for (size_t i = 0; i < p->n_prompt; i++)
        if (p->prompt[i] < 0 || p->prompt[i] >= s->n_vocab)
            return err_set(HEARTH_ERR_INVALID_ARG, "prompt: token %zu is id %d, outside [0, %d)", i,
                           (int)p->prompt[i], (int)s->n_vocab);
    const bool embed = p->pool != EMBD_POOL_NONE;
    if (embed && (p->n_predict != 0 || p->logprobs || p->echo))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "slots: an embedding request generates nothing (n_predict 0, no "
                       "logprobs or echo)");
    if ((unsigned)p->pool > EMBD_POOL_FIRST)
        return err_set(HEARTH_ERR_INVALID_ARG, "slots: pooling %d is not an enum embd_pool",
                       (int)p->pool);
    if (!embed && (p->n_predict < (p->echo ? 0 : 1) || (uint32_t)p->n_predict > n_ctx))
        return err_set(HEARTH_ERR_INVALID_ARG, "max_tokens: %d, expected %d..%u",
                       (int)p->n_predict, p->echo ? 0 : 1, n_ctx);
    if (p->top_logprobs < 0 || p->top_logprobs > SLOTS_MAX_TOP)
        return err_set(HEARTH_ERR_INVALID_ARG, "top_logprobs: %d, expected 0..%d",
                       p->top_logprobs, SLOTS_MAX_TOP);
    hearth_status st = sampler_params_validate(&p->sp);
    if (st != HEARTH_OK)
        return st;

    struct slots_req *r = calloc(1, sizeof *r);
    if (!r)
        return err_set(HEARTH_ERR_NO_MEMORY, "slots: request");
    if (pthread_cond_init(&r->cv, NULL) != 0) {
        free(r);
        return err_set(HEARTH_ERR_NO_MEMORY, "slots: condition variable");
    }
    r->owner = s;
    r->refs = 1;
    r->n_predict = p->n_predict;
    r->logprobs = p->logprobs;
    r->echo = p->echo && p->logprobs;
    r->n_top = p->logprobs ? p->top_logprobs : 0;
    r->res.n_prompt = p->n_prompt;
    r->res.slot = -1;
    r->prompt = malloc(p->n_prompt * sizeof *r->prompt);
    if (!r->prompt) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "slots: %zu prompt ids", p->n_prompt);
        goto fail;
    }
    memcpy(r->prompt, p->prompt, p->n_prompt * sizeof *r->prompt);
    r->n_prompt = p->n_prompt;
    if (r->echo) {
        if (!(r->plp = calloc(p->n_prompt, sizeof *r->plp))) {
            st = err_set(HEARTH_ERR_NO_MEMORY, "slots: %zu prompt log-probabilities", p->n_prompt);
            goto fail;
        }
        r->plp[0].id = p->prompt[0]; /* nothing before it: no log-probability */
        r->plp[0].logprob = NAN;
    }
    r->pool = p->pool;
    r->json = p->json_object || p->schema;
    jg_init(&r->jg, true);
    if (p->schema) {
        if (!js_schema_clone(p->schema, &r->schema)) {
            st = err_set(HEARTH_ERR_NO_MEMORY, "slots: the JSON schema");
            goto fail;
        }
        jg_init_schema(&r->jg, &r->schema);
    }
    if (embed && !(r->emb = calloc(s->m->hp.n_embd, sizeof *r->emb))) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "slots: embedding of %u floats", s->m->hp.n_embd);
        goto fail;
    }
    /* an embedding samples nothing: no sampler (three n_vocab arrays) per input */
    if (!embed && (st = init_sampler(s, r, p)) != HEARTH_OK)
        goto fail;
    if ((st = tok_decoder_create(s->tok, false, &r->dec)) != HEARTH_OK)
        goto fail;
    if ((st = init_stops(s, r, p)) != HEARTH_OK)
        goto fail;
    *out = r;
    return HEARTH_OK;
fail:
    req_free(r);
    return st;
}

enum slots_admit slots_submit(struct slots *s, struct slots_req *r)
{
    enum slots_admit a = SLOTS_QUEUED;
    pthread_mutex_lock(&s->mu);
    if (s->closed) {
        a = SLOTS_CLOSED;
    } else if (s->q_len >= s->p.max_queue) {
        a = SLOTS_FULL;
    } else {
        s->queue[(s->q_head + s->q_len) % s->p.max_queue] = r;
        s->q_len++;
        r->refs++;
        s->st.n_requests++;
        pthread_cond_signal(&s->work_cv);
    }
    if (a != SLOTS_QUEUED)
        s->st.n_rejected++;
    pthread_mutex_unlock(&s->mu);
    return a;
}

/* Bytes of buf[0..len) that end on a character boundary (UTF-8 lead bytes checked). */
static size_t whole_chars(const char *buf, size_t len)
{
    size_t i = len, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return len;
    unsigned char lead = (unsigned char)buf[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return back + 1 >= need ? len : i - 1;
}

void slots__deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/*
 * Hands out the records not yet taken whose text starts before avail (at the
 * end: all but those cut off by a stop string). With s->mu held.
 */
static void take_logprobs(struct slots_req *r, size_t avail, struct slots_logprob **lp,
                          size_t *n_lp)
{
    *lp = NULL;
    *n_lp = 0;
    bool all = r->res.done && r->res.stop != GEN_STOP_STRING;
    size_t end = r->lp_taken;
    while (end < r->n_lp && (all || r->lp[end].offset < avail))
        end++;
    if (end == r->lp_taken)
        return;
    size_t n = end - r->lp_taken;
    *lp = malloc(n * sizeof **lp);
    if (!*lp)
        return; /* out of memory: the records stay for a later call */
    memcpy(*lp, r->lp + r->lp_taken, n * sizeof **lp);
    *n_lp = n;
    r->lp_taken = end;
}

char *slots_req_take(struct slots_req *r, int timeout_ms, size_t *len, struct slots_result *res,
                     struct slots_logprob **lp, size_t *n_lp)
{
    struct slots *s = r->owner;
    char *out = NULL;
    *len = 0;
    if (lp) {
        *lp = NULL;
        *n_lp = 0;
    }
    pthread_mutex_lock(&s->mu);
    if (r->taken == r->len && !r->res.done && timeout_ms > 0) {
        struct timespec ts;
        slots__deadline_after(&ts, timeout_ms);
        while (r->taken == r->len && !r->res.done)
            if (pthread_cond_timedwait(&r->cv, &s->mu, &ts) != 0)
                break;
    }
    size_t avail = r->res.done ? r->len : whole_chars(r->text, r->len);
    if (avail > r->taken) {
        size_t n = avail - r->taken;
        out = malloc(n + 1);
        if (out) {
            memcpy(out, r->text + r->taken, n);
            out[n] = '\0';
            r->taken = avail;
            *len = n;
        }
    }
    if (lp)
        take_logprobs(r, r->taken, lp, n_lp);
    *res = r->res;
    pthread_mutex_unlock(&s->mu);
    return out;
}

bool slots_req_prompt_logprobs(struct slots_req *r, int timeout_ms, struct slots_logprob **lp,
                               size_t *n_lp, struct slots_result *res)
{
    struct slots *s = r->owner;
    bool got = false;
    *lp = NULL;
    *n_lp = 0;
    pthread_mutex_lock(&s->mu);
    if (r->echo && !r->plp_ready && !r->res.done && timeout_ms > 0) {
        struct timespec ts;
        slots__deadline_after(&ts, timeout_ms);
        while (!r->plp_ready && !r->res.done)
            if (pthread_cond_timedwait(&r->cv, &s->mu, &ts) != 0)
                break;
    }
    if (r->plp_ready && !r->plp_taken && (*lp = malloc(r->n_prompt * sizeof **lp))) {
        memcpy(*lp, r->plp, r->n_prompt * sizeof **lp);
        *n_lp = r->n_prompt;
        r->plp_taken = true;
        got = true;
    }
    *res = r->res;
    pthread_mutex_unlock(&s->mu);
    return got;
}

bool slots_req_embedding(struct slots_req *r, float *out)
{
    struct slots *s = r->owner;
    pthread_mutex_lock(&s->mu);
    bool ok = r->emb && r->res.done && r->res.status == HEARTH_OK &&
              r->res.stop != GEN_STOP_CANCELLED;
    for (uint32_t j = 0; ok && j < s->m->hp.n_embd; j++)
        out[j] = (float)r->emb[j];
    pthread_mutex_unlock(&s->mu);
    return ok;
}

int slots_n_embd(const struct slots *s)
{
    return (int)s->m->hp.n_embd;
}

int32_t slots_n_vocab(const struct slots *s)
{
    return s->n_vocab;
}

void slots_req_release(struct slots_req *r)
{
    if (!r)
        return;
    struct slots *s = r->owner;
    pthread_mutex_lock(&s->mu);
    if (!r->res.done && !r->cancelled) {
        r->cancelled = true;
        pthread_cond_signal(&s->work_cv);
    }
    slots__req_unref(r);
    pthread_mutex_unlock(&s->mu);
}
