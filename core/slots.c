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
#include "slots-internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/forward.h"
#include "err.h"
#include "kv-quant.h"
#include "perplexity.h"

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
    slots__req_unref(r);
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
            slots__req_unref(r);
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
 * Samples for a JSON request: the sampled token when the JSON guard allows
 * it (the check costs one token's bytes), else a sample over the row with
 * every refused token at -inf, the allowed ones found by a walk of the
 * sorted vocabulary (jg_candidates). The chosen token's bytes advance the guard.
 */
static hearth_status sample_json(struct slots *s, struct slots_req *r, const float *logits,
                                 int32_t *id)
{
    hearth_status st = sampler_sample(r->smp, logits, id);
    if (st == HEARTH_OK && !jg_allows(&r->jg, s->tok, *id, is_stop_id(s, *id))) {
        for (int32_t v = 0; v < s->n_vocab; v++)
            s->masked[v] = -INFINITY;
        const size_t n_ok = jg_candidates(&r->jg, &s->jgx, s->tok, s->json_ids);
        if (n_ok == SIZE_MAX)
            return err_set(HEARTH_ERR_NO_MEMORY, "JSON mode: the sweep's states");
        for (size_t k = 0; k < n_ok; k++)
            s->masked[s->json_ids[k]] = logits[s->json_ids[k]];
        for (int32_t v = 0; jg_done(&r->jg) && v < s->n_vocab; v++)
            if (is_stop_id(s, v))
                s->masked[v] = logits[v];
        st = sampler_sample(r->smp, s->masked, id);
        if (st != HEARTH_OK) /* only when no token can continue: cannot happen mid-text */
            return err_set(HEARTH_ERR_INTERNAL,
                           "JSON mode: no token continues the reply (an unsatisfiable schema?)");
    }
    size_t n = 0;
    const char *b = is_stop_id(s, *id) ? NULL : tok_token_bytes(s->tok, *id, &n);
    if (b && !jg_feed(&r->jg, b, n))
        return err_set(HEARTH_ERR_INTERNAL, "JSON mode: the guard refused its own token");
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
                    slots__req_unref(r);
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
    free(s->json_ids);
    jg_index_free(&s->jgx);
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
    s->json_ids = malloc((size_t)s->n_vocab * sizeof *s->json_ids);
    s->logits = malloc(n_slots * (size_t)s->n_vocab * sizeof *s->logits);
    s->logits_rows = n_slots;
    s->queue = calloc((size_t)p->max_queue, sizeof *s->queue);
    if (!s->slot || !s->piece || !s->b_tok || !s->b_seq || !s->b_pos || !s->b_want || !s->b_owner ||
        !s->b_idx || !s->b_hid || !s->b_hid_owner || !s->hidden || !s->masked || !s->json_ids ||
        !s->logits || !s->queue || !jg_index_build(t, &s->jgx)) {
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
    slots__deadline_after(&ts, timeout_ms);
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
