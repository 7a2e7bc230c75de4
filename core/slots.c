/*
 * slots: the continuous-batching engine described in slots.h.
 *
 * Threads and locks: one mutex (s->mu) guards the queue, every request's
 * shared fields (text, done, refs, cancelled) and the statistics; each request
 * has its own condition variable for its reader, the engine one for "work
 * arrived". The engine thread alone touches the forward pass (s->eng), the slot
 * table and a running request's sampler / decoder / matcher, and it never
 * holds the mutex during a forward pass.
 *
 * Slot invariant: slot->cache[0..n_cache) are the ids whose K/V the slot's
 * cache holds, and n_cache == engine_seq_n_past(eng, slot) after each step.
 * The last sampled token of a finished request is never evaluated (nothing
 * would use its K/V unless a later prompt continues it, and then it is
 * evaluated as part of that prompt).
 *
 * Request lifetime: refs counts the caller's and (once queued) the engine's
 * reference; the last release frees it. The engine drops its reference when
 * the request is done (finished, failed or cancelled).
 */
#include "slots.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "cpu/forward.h"
#include "engine.h"
#include "err.h"
#include "json-guard.h"
#include "kv-quant.h"
#include "perplexity.h"

struct slots_req {
    /* set at creation, then owned by the engine */
    int32_t *prompt;
    size_t n_prompt;
    int32_t n_predict;
    struct sampler *smp;
    struct tok_decoder *dec;
    struct chat_stop_matcher sm;
    struct slots *owner;
    bool logprobs;
    bool echo; /* echo with logprobs: the prompt's tokens are scored (plp) */
    int n_top;
    size_t dec_bytes;          /* decoder output so far: the next token's text offset */
    struct slots_logprob *plp; /* [n_prompt] with echo: written before plp_ready */
    enum embd_pool pool;
    double *emb; /* [n_embd] with pool: the sum of the pooled rows, then the result */
    bool json;   /* json_object: jg holds the reply so far */
    struct jg_state jg;
    /* guarded by owner->mu */
    pthread_cond_t cv;
    char *text;             /* generated text, whole characters */
    size_t len, cap, taken; /* taken: bytes handed to the reader */
    struct slots_logprob *lp; /* [n_lp] records of generated tokens (logprobs) */
    size_t n_lp, cap_lp, lp_taken;
    bool plp_ready, plp_taken;
    int refs;
    bool cancelled;
    struct slots_result res;
};

struct slot {
    struct slots_req *req; /* NULL: free */
    int32_t *cache;        /* [n_ctx] ids in the cache, position order */
    size_t n_cache;
    size_t n_fed;       /* prompt tokens evaluated (or reused) so far */
    int32_t next;       /* sampled token to evaluate next step (decoding) */
    uint64_t last_used; /* admission counter: ties go to the least recently used slot */
    bool decoding;
};

struct slots {
    const struct model *m;
    const struct tokenizer *tok;
    const struct gen_chat *chat;
    struct engine *eng;
    struct slots_params p;
    int32_t n_vocab;
    struct slot *slot; /* [n_slots] */
    char *piece;       /* decoder output buffer */
    size_t piece_cap;
    /* step batch: [n_slots + prefill_chunk] */
    int32_t *b_tok, *b_seq, *b_pos;
    bool *b_want;
    int *b_owner;       /* slot of each logits row */
    bool *b_hid;        /* hidden row wanted (embedding requests) */
    int *b_hid_owner;   /* slot of each hidden row */
    float *hidden;      /* [n_slots + prefill_chunk][n_embd] */
    float *masked;      /* [n_vocab] a logits row with the tokens JSON refuses at -inf */
    int32_t *b_idx;     /* prompt position of each row scored for echo; -1: a row to sample */
    float *logits;      /* [logits_rows][n_vocab] */
    size_t logits_rows; /* n_slots, grown to the step's capacity by an echo request */

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* signalled on submit, cancel and stop */
    pthread_cond_t idle_cv;   /* signalled when a request ends */
    struct slots_req **queue; /* ring of max_queue */
    int q_head, q_len;
    int n_active;
    uint64_t n_admitted;
    bool closed, stopping;
    struct slots_stats st;
    double tps_t0;   /* start of the current tokens/s window */
    uint64_t tps_n0; /* n_gen_tokens at tps_t0 */
    double tps_prev;
};

/* ---- requests ------------------------------------------------------------------ */

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
    free(r);
}

/* With s->mu held. */
static void req_unref(struct slots_req *r)
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
    r->json = p->json_object;
    jg_init(&r->jg, true);
    if (embed && !(r->emb = calloc(s->m->hp.n_embd, sizeof *r->emb))) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "slots: embedding of %u floats", s->m->hp.n_embd);
        goto fail;
    }
    if ((st = sampler_create(&p->sp, s->n_vocab, &r->smp)) != HEARTH_OK ||
        (p->n_bias > 0 &&
         (st = sampler_set_bias(r->smp, p->bias_ids, p->bias, (int)p->n_bias)) != HEARTH_OK))
        goto fail;
    /* the penalty window starts as the prompt's tail, as in generate.c */
    size_t win = p->sp.repeat_last_n > 0 ? (size_t)p->sp.repeat_last_n : 0;
    for (size_t i = p->n_prompt > win ? p->n_prompt - win : 0; i < p->n_prompt; i++)
        if ((st = sampler_accept(r->smp, p->prompt[i])) != HEARTH_OK)
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

static void deadline_after(struct timespec *ts, int ms)
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
        deadline_after(&ts, timeout_ms);
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
        deadline_after(&ts, timeout_ms);
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
    req_unref(r);
    pthread_mutex_unlock(&s->mu);
}

/* ---- the engine -------------------------------------------------------------- */

static double now_s(void)
{
    return gen_now_ms() * 1e-3;
}

/* Appends text for the reader (engine thread, mutex taken here). */
static void req_emit(struct slots *s, struct slots_req *r, const char *txt, size_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&s->mu);
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *grown = realloc(r->text, cap);
        if (!grown) {
            /* the reader then sees the text cut short; the status says why */
            r->res.status = HEARTH_ERR_NO_MEMORY;
            pthread_mutex_unlock(&s->mu);
            return;
        }
        r->text = grown;
        r->cap = cap;
    }
    memcpy(r->text + r->len, txt, n);
    r->len += n;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Ends the slot's request: flushes held text unless stopped or cancelled, wakes the reader. */
static void slot_finish(struct slots *s, int i, enum gen_stop stop, hearth_status status)
{
    struct slot *sl = &s->slot[i];
    struct slots_req *r = sl->req;
    if (status == HEARTH_OK && stop != GEN_STOP_STRING && stop != GEN_STOP_CANCELLED) {
        size_t n_piece = 0;
        const char *txt;
        size_t txt_len;
        bool stopped = false;
        if (tok_decoder_flush(r->dec, s->piece, s->piece_cap, &n_piece) == HEARTH_OK &&
            n_piece > 0 &&
            chat_stop_feed(&r->sm, s->piece, n_piece, &txt, &txt_len, &stopped) == HEARTH_OK)
            req_emit(s, r, txt, txt_len);
        if (!stopped) {
            chat_stop_flush(&r->sm, &txt, &txt_len);
            req_emit(s, r, txt, txt_len);
        }
    }
    pthread_mutex_lock(&s->mu);
    r->res.done = true;
    r->res.stop = stop;
    if (r->res.status == HEARTH_OK)
        r->res.status = status;
    if (stop == GEN_STOP_CANCELLED)
        s->st.n_cancelled++;
    else
        s->st.n_completed++;
    s->n_active--;
    pthread_cond_broadcast(&r->cv);
    pthread_cond_broadcast(&s->idle_cv);
    req_unref(r);
    pthread_mutex_unlock(&s->mu);
    sl->req = NULL;
    sl->decoding = false;
}

/* Longest common prefix of the slot's cache and the prompt, leaving one prompt token. */
static size_t slot_lcp(const struct slot *sl, const struct slots_req *r)
{
    size_t lim = sl->n_cache < r->n_prompt - 1 ? sl->n_cache : r->n_prompt - 1, k = 0;
    while (k < lim && sl->cache[k] == r->prompt[k])
        k++;
    return k;
}

/* Moves queued requests into free slots (mutex held). */
static void admit(struct slots *s)
{
    while (s->q_len > 0) {
        struct slots_req *r = s->queue[s->q_head];
        if (r->cancelled) {
            /* its client left while it waited: it never takes a slot */
            s->q_head = (s->q_head + 1) % s->p.max_queue;
            s->q_len--;
            r->res.done = true;
            r->res.stop = GEN_STOP_CANCELLED;
            s->st.n_cancelled++;
            pthread_cond_broadcast(&r->cv);
            pthread_cond_broadcast(&s->idle_cv);
            req_unref(r);
            continue;
        }
        int best = -1;
        size_t best_k = 0;
        for (int i = 0; i < s->p.n_slots; i++) {
            if (s->slot[i].req)
                continue;
            /* echo scores every token, an embedding pools their rows */
            size_t k = r->echo || r->pool ? 0 : slot_lcp(&s->slot[i], r);
            if (k > 0 && !engine_seq_can_resume(s->eng, i, (uint32_t)k))
                k = 0; /* its sliding-window rings no longer reach back to k */
            if (best < 0 || k > best_k ||
                (k == best_k && s->slot[i].last_used < s->slot[best].last_used)) {
                best = i;
                best_k = k;
            }
        }
        if (best < 0)
            return;
        s->q_head = (s->q_head + 1) % s->p.max_queue;
        s->q_len--;
        struct slot *sl = &s->slot[best];
        sl->req = r;
        sl->n_cache = best_k; /* the slot's next eval rewinds its cache to here */
        sl->n_fed = best_k;
        sl->decoding = false;
        sl->last_used = ++s->n_admitted;
        r->res.slot = best;
        r->res.n_prompt_eval = r->n_prompt - best_k;
        s->st.n_reused_tokens += best_k;
        s->n_active++;
    }
}

static bool is_stop_id(const struct slots *s, int32_t id)
{
    if (tok_is_eog(s->tok, id))
        return true;
    for (size_t i = 0; s->chat && i < s->chat->n_stop_ids; i++)
        if (s->chat->stop_ids[i] == id)
            return true;
    return false;
}

/* rec's n_top most likely ids, most likely first, the lower id first among equals. */
static void top_logprobs(const float *logits, int32_t n_vocab, double lse,
                         struct slots_logprob *rec, int n_top)
{
    int k = 0;
    for (int32_t v = 0; v < n_vocab && n_top > 0; v++) {
        float x = logits[v];
        if (k == n_top && !(x > logits[rec->top_id[k - 1]]))
            continue;
        int j = k < n_top ? k++ : k - 1;
        while (j > 0 && x > logits[rec->top_id[j - 1]]) {
            rec->top_id[j] = rec->top_id[j - 1];
            j--;
        }
        rec->top_id[j] = v;
    }
    rec->n_top = k;
    for (int j = 0; j < k; j++)
        rec->top_logprob[j] = (float)((double)logits[rec->top_id[j]] - lse);
}

/* id's record from its logits row: ln softmax at id, the n_top most likely. */
static void fill_record(const struct slots *s, const float *logits, int32_t id, int n_top,
                        struct slots_logprob *rec)
{
    memset(rec, 0, sizeof *rec);
    double lse = ppl_log_sum_exp(logits, (uint32_t)s->n_vocab);
    rec->id = id;
    rec->logprob = (float)((double)logits[id] - lse);
    top_logprobs(logits, s->n_vocab, lse, rec, n_top);
}

/* Appends a record for the reader (engine thread); false when out of memory. */
static bool req_add_logprob(struct slots *s, struct slots_req *r, const struct slots_logprob *rec)
{
    bool ok = true;
    pthread_mutex_lock(&s->mu);
    if (r->n_lp == r->cap_lp) {
        size_t cap = r->cap_lp ? 2 * r->cap_lp : 64;
        struct slots_logprob *grown = realloc(r->lp, cap * sizeof *grown);
        if (grown) {
            r->lp = grown;
            r->cap_lp = cap;
        } else {
            ok = false;
        }
    }
    if (ok)
        r->lp[r->n_lp++] = *rec;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/*
 * Samples for a json_object request: the sampled token when the JSON guard
 * allows it (nearly always: the check costs one token's bytes), else a
 * sample over the row with every refused token at -inf (the whole vocabulary
 * checked, about a millisecond). The chosen token's bytes advance the guard.
 */
static hearth_status sample_json(struct slots *s, struct slots_req *r, const float *logits,
                                 int32_t *id)
{
    hearth_status st = sampler_sample(r->smp, logits, id);
    if (st == HEARTH_OK && !jg_allows(&r->jg, s->tok, *id, is_stop_id(s, *id))) {
        for (int32_t v = 0; v < s->n_vocab; v++)
            s->masked[v] = jg_allows(&r->jg, s->tok, v, is_stop_id(s, v)) ? logits[v] : -INFINITY;
        st = sampler_sample(r->smp, s->masked, id);
        if (st != HEARTH_OK) /* only when no token can continue: cannot happen mid-text */
            return err_set(HEARTH_ERR_INTERNAL, "json_object: no token continues the reply");
    }
    size_t n = 0;
    const char *b = is_stop_id(s, *id) ? NULL : tok_token_bytes(s->tok, *id, &n);
    if (b && !jg_feed(&r->jg, b, n))
        return err_set(HEARTH_ERR_INTERNAL, "json_object: the guard refused its own token");
    return st;
}

/* Samples slot i's next token from its logits row and streams its text. */
static void slot_sample(struct slots *s, int i, const float *logits)
{
    struct slot *sl = &s->slot[i];
    struct slots_req *r = sl->req;
    if (r->echo && !sl->decoding) {
        /* the prompt's last row: every prompt record is written */
        pthread_mutex_lock(&s->mu);
        r->plp_ready = true;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&s->mu);
    }
    if (r->n_predict == 0) { /* echo only: the prompt was the whole request */
        slot_finish(s, i, GEN_STOP_LIMIT, HEARTH_OK);
        return;
    }
    int32_t id;
    hearth_status st = r->json ? sample_json(s, r, logits, &id) : sampler_sample(r->smp, logits, &id);
    if (st != HEARTH_OK) {
        slot_finish(s, i, GEN_STOP_NONE, st);
        return;
    }
    if (is_stop_id(s, id)) {
        slot_finish(s, i, GEN_STOP_EOG, HEARTH_OK);
        return;
    }
    size_t n_piece = 0;
    const char *txt = NULL;
    size_t txt_len = 0;
    bool stopped = false;
    if ((st = sampler_accept(r->smp, id)) == HEARTH_OK &&
        (st = tok_decoder_push(r->dec, id, s->piece, s->piece_cap, &n_piece)) == HEARTH_OK &&
        r->logprobs) {
        struct slots_logprob rec;
        fill_record(s, logits, id, r->n_top, &rec);
        rec.offset = r->dec_bytes;
        if (!req_add_logprob(s, r, &rec))
            st = err_set(HEARTH_ERR_NO_MEMORY, "slots: log-probability records");
    }
    r->dec_bytes += n_piece;
    if (st == HEARTH_OK)
        st = chat_stop_feed(&r->sm, s->piece, n_piece, &txt, &txt_len, &stopped);
    if (st != HEARTH_OK) {
        slot_finish(s, i, GEN_STOP_NONE, st);
        return;
    }
    pthread_mutex_lock(&s->mu);
    r->res.n_gen++;
    s->st.n_gen_tokens++;
    pthread_mutex_unlock(&s->mu);
    req_emit(s, r, txt, txt_len);
    if (stopped)
        slot_finish(s, i, GEN_STOP_STRING, HEARTH_OK);
    else if (r->res.n_gen >= (size_t)r->n_predict)
        slot_finish(s, i, GEN_STOP_LIMIT, HEARTH_OK);
    else if (sl->n_cache >= engine_n_ctx(s->eng))
        slot_finish(s, i, GEN_STOP_CTX_FULL, HEARTH_OK);
    else {
        sl->next = id;
        sl->decoding = true;
    }
}

/* Logits rows for a step that scores whole prompt chunks (echo); false when out of memory. */
static bool grow_logits(struct slots *s)
{
    size_t rows = (size_t)s->p.n_slots + (size_t)s->p.prefill_chunk;
    if (s->logits_rows >= rows)
        return true;
    float *grown = realloc(s->logits, rows * (size_t)s->n_vocab * sizeof *grown);
    if (!grown)
        return false;
    s->logits = grown;
    s->logits_rows = rows;
    return true;
}

/* Adds this step's hidden rows to their requests and ends those whose prompt is done. */
static void pool_rows(struct slots *s, int n_hid)
{
    const size_t E = s->m->hp.n_embd;
    for (int h = 0; h < n_hid; h++) {
        const float *row = s->hidden + (size_t)h * E;
        embd_pool_add(s->slot[s->b_hid_owner[h]].req->emb, row, E);
    }
    for (int i = 0; i < s->p.n_slots; i++) {
        struct slots_req *r = s->slot[i].req;
        if (!r || !r->pool || s->slot[i].n_fed < r->n_prompt)
            continue;
        embd_pool_finish(r->pool, r->emb, E, r->n_prompt);
        pthread_mutex_lock(&s->mu);
        s->st.n_embeddings++;
        pthread_mutex_unlock(&s->mu);
        slot_finish(s, i, GEN_STOP_LIMIT, HEARTH_OK);
    }
}

/* One step: batch, evaluate, sample. Returns false when there was nothing to do. */
static bool step(struct slots *s)
{
    int n = 0, n_rows = 0, n_hid = 0, budget = s->p.prefill_chunk;
    /* decoding slots first: one token each */
    for (int i = 0; i < s->p.n_slots; i++) {
        struct slot *sl = &s->slot[i];
        if (!sl->req || !sl->decoding)
            continue;
        s->b_tok[n] = sl->next;
        s->b_seq[n] = i;
        s->b_pos[n] = (int32_t)sl->n_cache;
        s->b_want[n] = true;
        s->b_hid[n] = false;
        s->b_idx[n_rows] = -1;
        s->b_owner[n_rows++] = i;
        n++;
    }
    /* then prompt chunks, while the step's prefill budget lasts */
    for (int i = 0; i < s->p.n_slots && budget > 0; i++) {
        struct slot *sl = &s->slot[i];
        if (!sl->req || sl->decoding)
            continue;
        const bool echo = sl->req->echo;
        const enum embd_pool pool = sl->req->pool;
        if (echo && !grow_logits(s)) {
            slot_finish(s, i, GEN_STOP_NONE,
                        err_set(HEARTH_ERR_NO_MEMORY, "slots: logits rows for echo"));
            continue;
        }
        size_t left = sl->req->n_prompt - sl->n_fed;
        int k = left < (size_t)budget ? (int)left : budget;
        for (int j = 0; j < k; j++) {
            size_t at = sl->n_fed + (size_t)j;
            bool last = at + 1 == sl->req->n_prompt;
            s->b_tok[n] = sl->req->prompt[at];
            s->b_seq[n] = i;
            s->b_pos[n] = (int32_t)(sl->n_cache + (size_t)j);
            s->b_want[n] = !pool && (last || echo);
            s->b_hid[n] = embd_pool_takes(pool, at, last);
            if (s->b_hid[n])
                s->b_hid_owner[n_hid++] = i;
            if (s->b_want[n]) {
                s->b_idx[n_rows] = last ? -1 : (int32_t)at;
                s->b_owner[n_rows++] = i;
            }
            n++;
        }
        budget -= k;
    }
    if (n == 0)
        return false;
    double t0 = now_s();
    const struct seq_batch_out out = {s->logits, s->b_want, n_hid ? s->hidden : NULL, s->b_hid};
    hearth_status st = engine_eval_multi_out(s->eng, s->b_tok, s->b_seq, s->b_pos, n, &out);
    if (st != HEARTH_OK) {
        /* cannot happen for batches built above; fail the slots rather than loop */
        for (int i = 0; i < s->p.n_slots; i++) {
            if (s->slot[i].req)
                slot_finish(s, i, GEN_STOP_NONE, st);
            s->slot[i].n_cache = 0;
            engine_seq_clear(s->eng, i);
        }
        return true;
    }
    size_t n_prompt_eval = 0;
    for (int t = 0; t < n; t++) {
        struct slot *sl = &s->slot[s->b_seq[t]];
        sl->cache[sl->n_cache++] = s->b_tok[t];
        if (!sl->decoding) {
            sl->n_fed++;
            n_prompt_eval++;
        }
    }
    for (int row = 0; row < n_rows; row++) {
        const float *lg = s->logits + (size_t)row * (size_t)s->n_vocab;
        int i = s->b_owner[row];
        if (s->b_idx[row] >= 0) {
            /* prompt position j's logits score the prompt token after it */
            struct slots_req *r = s->slot[i].req;
            size_t j = (size_t)s->b_idx[row] + 1;
            fill_record(s, lg, r->prompt[j], r->n_top, &r->plp[j]);
        } else {
            slot_sample(s, i, lg);
        }
    }
    pool_rows(s, n_hid);
    double t1 = now_s();
    pthread_mutex_lock(&s->mu);
    s->st.n_steps++;
    s->st.busy_s += t1 - t0;
    s->st.n_prompt_tokens += n_prompt_eval;
    if (t1 - s->tps_t0 >= 10.0) {
        s->tps_prev = (double)(s->st.n_gen_tokens - s->tps_n0) / (t1 - s->tps_t0);
        s->tps_t0 = t1;
        s->tps_n0 = s->st.n_gen_tokens;
    }
    pthread_mutex_unlock(&s->mu);
    return true;
}

static void *engine_main(void *arg)
{
    struct slots *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        for (;;) {
            /* cancelled requests leave their slots before anything else */
            for (int i = 0; i < s->p.n_slots; i++)
                if (s->slot[i].req && (s->slot[i].req->cancelled || s->stopping)) {
                    pthread_mutex_unlock(&s->mu);
                    slot_finish(s, i, GEN_STOP_CANCELLED, HEARTH_OK);
                    pthread_mutex_lock(&s->mu);
                }
            if (s->stopping) {
                while (s->q_len > 0) {
                    struct slots_req *r = s->queue[s->q_head];
                    s->q_head = (s->q_head + 1) % s->p.max_queue;
                    s->q_len--;
                    r->res.done = true;
                    r->res.stop = GEN_STOP_CANCELLED;
                    s->st.n_cancelled++;
                    pthread_cond_broadcast(&r->cv);
                    req_unref(r);
                }
                pthread_cond_broadcast(&s->idle_cv);
                pthread_mutex_unlock(&s->mu);
                return NULL;
            }
            admit(s);
            if (s->n_active > 0)
                break;
            pthread_cond_wait(&s->work_cv, &s->mu);
        }
        pthread_mutex_unlock(&s->mu);
        step(s);
    }
}

/* ---- lifetime and statistics -------------------------------------------------- */

/* Frees s and everything it holds but the thread and locks (created or not). */
static void free_all(struct slots *s)
{
    for (int i = 0; s->slot && i < s->p.n_slots; i++)
        free(s->slot[i].cache);
    free(s->slot);
    free(s->piece);
    free(s->b_tok);
    free(s->b_seq);
    free(s->b_pos);
    free(s->b_want);
    free(s->b_owner);
    free(s->b_idx);
    free(s->b_hid);
    free(s->b_hid_owner);
    free(s->hidden);
    free(s->masked);
    free(s->logits);
    free(s->queue);
    engine_destroy(s->eng);
    free(s);
}

hearth_status slots_create(const struct model *m, const struct tokenizer *t,
                           const struct gen_chat *chat, const struct slots_params *p,
                           struct slots **out)
{
    *out = NULL;
    if (p->n_slots < 1 || p->n_slots > FORWARD_MAX_SEQ)
        return err_set(HEARTH_ERR_INVALID_ARG, "slots: n_slots %d out of range [1, %d]", p->n_slots,
                       FORWARD_MAX_SEQ);
    if (p->max_queue < 1 || p->max_queue > 1 << 20)
        return err_set(HEARTH_ERR_INVALID_ARG, "slots: max_queue %d out of range [1, 2^20]",
                       p->max_queue);
    if (p->kv_type_k < 0 || p->kv_type_k >= KVQ_TYPE_COUNT || p->kv_type_v < 0 ||
        p->kv_type_v >= KVQ_TYPE_COUNT)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "slots: KV types K %d, V %d, expected enum kvq_type values 0..%d",
                       p->kv_type_k, p->kv_type_v, KVQ_TYPE_COUNT - 1);
    struct slots *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(HEARTH_ERR_NO_MEMORY, "slots: out of memory");
    s->m = m;
    s->tok = t;
    s->chat = chat;
    s->p = *p;
    if (s->p.prefill_chunk <= 0)
        s->p.prefill_chunk = 64;
    s->n_vocab = (int32_t)m->hp.n_vocab;
    bool mu_ok = false, cv1 = false, cv2 = false;
    hearth_status st = HEARTH_OK;
    struct engine_params ep = engine_params_default();
    ep.n_ctx = p->n_ctx;
    ep.n_threads = p->n_threads;
    ep.kv_type_k = p->kv_type_k;
    ep.kv_type_v = p->kv_type_v;
    ep.devices = p->devices;
    ep.n_devices = p->n_devices;
    ep.ngl = p->ngl;
    ep.vram_budget = p->vram_budget;
    ep.kv_window = p->kv_window;
    ep.swa_full = p->swa_full;
    ep.no_stream = p->no_stream;
    ep.n_seq = p->n_slots;
    ep.n_batch = p->n_batch;
    if ((st = engine_create(m, &ep, &s->eng)) != HEARTH_OK)
        goto fail;
    const size_t n_slots = (size_t)p->n_slots, cap = n_slots + (size_t)s->p.prefill_chunk;
    const uint32_t n_ctx = engine_n_ctx(s->eng);
    s->slot = calloc(n_slots, sizeof *s->slot);
    s->piece_cap = tok_decoder_max_out(t);
    s->piece = malloc(s->piece_cap);
    s->b_tok = malloc(cap * sizeof *s->b_tok);
    s->b_seq = malloc(cap * sizeof *s->b_seq);
    s->b_pos = malloc(cap * sizeof *s->b_pos);
    s->b_want = malloc(cap * sizeof *s->b_want);
    s->b_owner = malloc(cap * sizeof *s->b_owner);
    s->b_idx = malloc(cap * sizeof *s->b_idx);
    s->b_hid = malloc(cap * sizeof *s->b_hid);
    s->b_hid_owner = malloc(cap * sizeof *s->b_hid_owner);
    s->hidden = malloc(cap * m->hp.n_embd * sizeof *s->hidden);
    s->masked = malloc((size_t)s->n_vocab * sizeof *s->masked);
    s->logits = malloc(n_slots * (size_t)s->n_vocab * sizeof *s->logits);
    s->logits_rows = n_slots;
    s->queue = calloc((size_t)p->max_queue, sizeof *s->queue);
    if (!s->slot || !s->piece || !s->b_tok || !s->b_seq || !s->b_pos || !s->b_want || !s->b_owner ||
        !s->b_idx || !s->b_hid || !s->b_hid_owner || !s->hidden || !s->masked || !s->logits ||
        !s->queue) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "slots: out of memory for %d slots", p->n_slots);
        goto fail;
    }
    for (size_t i = 0; i < n_slots; i++) {
        s->slot[i].cache = malloc((size_t)n_ctx * sizeof *s->slot[i].cache);
        if (!s->slot[i].cache) {
            st = err_set(HEARTH_ERR_NO_MEMORY, "slots: %u-token mirror", n_ctx);
            goto fail;
        }
    }
    mu_ok = pthread_mutex_init(&s->mu, NULL) == 0;
    cv1 = mu_ok && pthread_cond_init(&s->work_cv, NULL) == 0;
    cv2 = cv1 && pthread_cond_init(&s->idle_cv, NULL) == 0;
    if (!cv2) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "slots: mutex or condition variable");
        goto fail;
    }
    s->st.n_slots = p->n_slots;
    s->st.max_queue = p->max_queue;
    s->st.kv_bytes = 0;
    for (int d = 0; d < engine_n_devices(s->eng) && d < SLOTS_MAX_DEVICES; d++) {
        struct slots_mem *mm = &s->st.mem[s->st.n_mem++];
        const char *name = "";
        engine_device_memory(s->eng, d, &name, &mm->bytes, &mm->kv);
        snprintf(mm->device, sizeof mm->device, "%s", name);
        s->st.kv_bytes += (size_t)mm->kv;
    }
    s->st.kv_type_k = p->kv_type_k;
    s->st.kv_type_v = p->kv_type_v;
    s->st.weight_bytes = (size_t)m->gguf->size;
    s->tps_t0 = now_s();
    if (pthread_create(&s->thread, NULL, engine_main, s) != 0) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "slots: cannot start the engine thread");
        goto fail;
    }
    s->thread_started = true;
    *out = s;
    return HEARTH_OK;
fail:
    if (cv2)
        pthread_cond_destroy(&s->idle_cv);
    if (cv1)
        pthread_cond_destroy(&s->work_cv);
    if (mu_ok)
        pthread_mutex_destroy(&s->mu);
    s->thread_started = false;
    free_all(s);
    return st;
}

void slots_destroy(struct slots *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    s->stopping = true;
    pthread_cond_signal(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->idle_cv);
    pthread_cond_destroy(&s->work_cv);
    pthread_mutex_destroy(&s->mu);
    free_all(s);
}

uint32_t slots_n_ctx(const struct slots *s)
{
    return engine_n_ctx(s->eng);
}

const char *slots_describe(const struct slots *s)
{
    return engine_describe(s->eng);
}

void slots_close(struct slots *s)
{
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    pthread_mutex_unlock(&s->mu);
}

bool slots_drain(struct slots *s, int timeout_ms)
{
    struct timespec ts;
    deadline_after(&ts, timeout_ms);
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    while (s->n_active > 0 || s->q_len > 0)
        if (pthread_cond_timedwait(&s->idle_cv, &s->mu, &ts) != 0)
            break;
    bool clean = s->n_active == 0 && s->q_len == 0;
    if (!clean) {
        s->stopping = true;
        pthread_cond_signal(&s->work_cv);
    }
    pthread_mutex_unlock(&s->mu);
    return clean;
}

void slots_get_stats(struct slots *s, struct slots_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    out->n_active = s->n_active;
    out->n_queued = s->q_len;
    out->prefill_chunk = s->p.prefill_chunk;
    out->n_batch = engine_n_batch(s->eng);
    double t = now_s();
    /* the current window when it is long enough, else the last complete one */
    out->gen_tps = t - s->tps_t0 >= 1.0 ? (double)(s->st.n_gen_tokens - s->tps_n0) / (t - s->tps_t0)
                                        : s->tps_prev;
    pthread_mutex_unlock(&s->mu);
}
