/*
 * serve-completion: POST /v1/chat/completions and /v1/completions.
 *
 * A request becomes one slots request per choice: n per conversation (chat)
 * or per prompt (completions, which may carry several prompts), index =
 * prompt * n + j, so the engine batches a request's choices like any
 * concurrent requests. Every choice is validated and built before any is
 * queued, and a request is queued whole or not at all (503), so a refusal
 * never leaves half its choices running. Choice j of a request with a seed
 * samples with seed + j: the choices differ, and the whole reply is
 * reproducible.
 *
 * MHD runs one thread per connection: a whole reply waits here; a streamed
 * one is a content-reader callback (stream_reader) that looks at the choices
 * in turn for the next event, so a stream interleaves its choices' chunks as
 * their text arrives. Waits are sliced and the socket peeked between slices:
 * a client that hung up is noticed within one (serve-http.c explains the
 * rest of the connection's life).
 */
#include "serve-internal.h"

#ifdef HEARTH_WITH_SERVER

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "chat.h"
#include "err.h"

/* How long a stream of several choices sleeps after a round in which none had news. */
#define POLL_MS 10

void serve__free_choices(struct conn *cn)
{
    for (int k = 0; k < cn->n_ch; k++) {
        struct serve_choice *c = &cn->ch[k];
        slots_req_release(c->req);
        free(c->echo_text);
        free(c->echo_off);
        free(c->text);
        free(c->lp);
        cJSON_Delete(c->calls);
    }
    free(cn->ch);
    cn->ch = NULL;
    cn->n_ch = 0;
    free(cn->tool_names); /* the connection's, freed with its choices */
    cn->tool_names = NULL;
}

/* The prompt's token ids: the chat rendered, a text tokenized, or ids copied. */
static hearth_status prompt_ids(struct serve_server *s, const struct serve_req *rq, size_t i,
                                int32_t **ids, size_t *n_ids)
{
    if (rq->chat && rq->tool_prefill) {
        /* the reply opens with the start of a call (tool_choice required or named) */
        char *text = NULL;
        hearth_status st = chat_render(s->chat->fmt, rq->msgs, rq->n_msgs, true, &text);
        size_t n = text ? strlen(text) + strlen(rq->tool_prefill) + 1 : 0;
        char *all = text ? malloc(n) : NULL;
        if (all) {
            snprintf(all, n, "%s%s", text, rq->tool_prefill);
            st = gen_tokenize_prompt(s->tok, all, n - 1, true, ids, n_ids);
        } else if (st == HEARTH_OK) {
            st = err_set(HEARTH_ERR_NO_MEMORY, "prompt: out of memory");
        }
        free(text);
        free(all);
        return st;
    }
    if (rq->chat)
        return gen_chat_tokenize(s->chat, s->tok, rq->msgs, rq->n_msgs, true, ids, n_ids);
    const struct serve_prompt *p = &rq->prompts[i];
    if (p->text)
        return gen_tokenize_prompt(s->tok, p->text, strlen(p->text), false, ids, n_ids);
    if (!(*ids = malloc(p->n_ids * sizeof **ids)))
        return err_set(HEARTH_ERR_NO_MEMORY, "prompt: out of memory");
    memcpy(*ids, p->ids, p->n_ids * sizeof **ids);
    *n_ids = p->n_ids;
    return HEARTH_OK;
}

/* e from the status and message of a failed slots_req_create. */
static void request_error(hearth_status st, bool chat, struct serve_error *e)
{
    const char *msg = hearth_last_error();
    const char *param = !strncmp(msg, "max_tokens", 10)     ? "max_tokens"
                        : !strncmp(msg, "logit_bias", 10)   ? "logit_bias"
                        : !strncmp(msg, "top_logprobs", 12) ? "top_logprobs"
                        : !strncmp(msg, "prompt", 6)        ? (chat ? "messages" : "prompt")
                                                            : NULL;
    bool bad = st == HEARTH_ERR_INVALID_ARG;
    serve_error_set(e, bad ? 400 : 500, bad ? "invalid_request_error" : "server_error",
                    bad ? param : NULL,
                    bad && strstr(msg, "context") ? "context_length_exceeded" : NULL, "%s", msg);
}

/* Choice c's slots request for prompt ids[0..n_ids) with seed offset j. */
static hearth_status make_choice(struct serve_server *s, const struct serve_req *rq,
                                 const int32_t *ids, size_t n_ids, int j, struct serve_choice *c)
{
    struct slots_req_params p;
    memset(&p, 0, sizeof p);
    p.prompt = ids;
    p.n_prompt = n_ids;
    p.sp = rq->sp;
    if (p.sp.seed_set)
        p.sp.seed += (uint64_t)j;
    uint32_t n_ctx = slots_n_ctx(s->slots);
    p.n_predict = rq->max_tokens;
    if (p.n_predict < 0) {
        /* not given: the default, within what the context leaves */
        uint32_t room = n_ids < n_ctx ? n_ctx - (uint32_t)n_ids : 1;
        p.n_predict =
            (int32_t)((uint32_t)s->o.default_max_tokens < room ? (uint32_t)s->o.default_max_tokens
                                                               : room);
    }
    /* a named function is one call: the reply ends with its closing tag */
    const char *stops[SERVE_MAX_STOP + 1];
    memcpy(stops, rq->stop, rq->n_stop * sizeof *stops);
    p.stop = stops;
    p.n_stop = rq->n_stop;
    if (rq->chat && rq->tool_choice == SERVE_TOOLS_NAMED)
        stops[p.n_stop++] = SERVE_TOOL_CLOSE_TAG;
    p.chat = rq->chat;
    p.bias_ids = rq->bias_ids;
    p.bias = rq->bias;
    p.n_bias = rq->n_bias;
    p.logprobs = rq->logprobs;
    p.top_logprobs = rq->top_logprobs;
    p.echo = rq->echo;
    p.json_object = rq->json_object;
    p.schema = rq->schema;
    hearth_status st = slots_req_create(s->slots, &p, &c->req);
    if (st != HEARTH_OK)
        return st;
    const struct serve_prompt *pr = rq->chat ? NULL : &rq->prompts[0];
    bool ids_prompt = pr && !pr->text; /* every prompt of a request has one kind */
    if (!rq->chat && (rq->echo || ids_prompt) &&
        !serve_echo_text(s->tok, ids, n_ids, &c->echo_text, &c->echo_len, &c->echo_off))
        return err_set(HEARTH_ERR_NO_MEMORY, "echo: out of memory");
    return HEARTH_OK;
}

/* Builds every choice, then queues them all; on failure fills e and frees the choices. */
static bool start_completion(struct serve_server *s, struct conn *cn, const struct serve_req *rq,
                             struct serve_error *e)
{
    size_t n_prompts = rq->chat ? 1 : rq->n_prompts;
    int n_ch = (int)n_prompts * rq->n;
    struct slots_stats stats;
    slots_get_stats(s->slots, &stats);
    if (n_ch > stats.max_queue) {
        serve_error_set(e, 400, "invalid_request_error", rq->n > 1 ? "n" : "prompt", NULL,
                        "%d choices need %d places in the queue, which holds %d (--queue)", n_ch,
                        n_ch, stats.max_queue);
        return false;
    }
    cn->ch = calloc((size_t)n_ch, sizeof *cn->ch);
    if (!cn->ch) {
        serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    cn->n_ch = n_ch;
    for (size_t i = 0; i < n_prompts; i++) {
        int32_t *ids = NULL;
        size_t n_ids = 0;
        err_clear();
        hearth_status st = prompt_ids(s, rq, i, &ids, &n_ids);
        if (st != HEARTH_OK) {
            bool bad = st == HEARTH_ERR_INVALID_ARG;
            serve_error_set(e, bad ? 400 : 500, bad ? "invalid_request_error" : "server_error",
                            rq->chat ? "messages" : "prompt", NULL, "%s", hearth_last_error());
            serve__free_choices(cn);
            return false;
        }
        for (int j = 0; st == HEARTH_OK && j < rq->n; j++) {
            struct serve_choice *c = &cn->ch[i * (size_t)rq->n + (size_t)j];
            err_clear();
            st = make_choice(s, rq, ids, n_ids, j, c);
            if (st == HEARTH_OK && rq->tool_prefill &&
                !(c->text = strdup(rq->tool_prefill))) /* the reply's text starts there */
                st = err_set(HEARTH_ERR_NO_MEMORY, "tools: out of memory");
            c->len = c->text ? strlen(c->text) : 0;
            /* text_offset counts from the prompt's start: the given text, else the decoded */
            c->sent_chars = rq->chat                         ? 0
                            : rq->prompts[i].text && !rq->echo
                                ? serve_utf8_chars(rq->prompts[i].text, strlen(rq->prompts[i].text))
                                : serve_utf8_chars(c->echo_text ? c->echo_text : "", c->echo_len);
        }
        free(ids);
        if (st != HEARTH_OK) {
            request_error(st, rq->chat, e);
            serve__free_choices(cn);
            return false;
        }
    }
    for (int k = 0; k < n_ch; k++) {
        enum slots_admit a = slots_submit(s->slots, cn->ch[k].req);
        if (a != SLOTS_QUEUED) {
            serve__free_choices(cn); /* the ones already queued are cancelled */
            serve_error_set(e, 503, "server_error", NULL,
                            a == SLOTS_FULL ? "server_busy" : "shutting_down",
                            a == SLOTS_FULL ? "the server is busy: every slot and queue place "
                                              "is taken, retry later"
                                            : "the server is shutting down");
            return false;
        }
    }
    snprintf(cn->id, sizeof cn->id, "%s-%llu-%llu", rq->chat ? "chatcmpl" : "cmpl",
             (unsigned long long)s->started, (unsigned long long)atomic_fetch_add(&s->next_id, 1));
    cn->meta.chat = rq->chat;
    cn->meta.id = cn->id;
    cn->meta.created = (long long)time(NULL);
    cn->meta.model = s->o.model_name;
    cn->include_usage = rq->include_usage;
    cn->logprobs = rq->logprobs;
    cn->echo = rq->echo;
    cn->tools = rq->chat && rq->tool_choice != SERVE_TOOLS_NONE;
    cn->one_call = rq->one_call;
    cn->call_guarded = rq->call_guarded;
    if (cn->tools && rq->tool_names)
        cn->tool_names = strdup(rq->tool_names); /* NULL (out of memory): tagged calls only */
    return true;
}

/* Usage over the choices: each prompt's tokens once, every choice's generated tokens. */
static void usage(const struct conn *cn, size_t *n_prompt, size_t *n_gen)
{
    *n_prompt = *n_gen = 0;
    for (int k = 0; k < cn->n_ch; k++) {
        *n_gen += cn->ch[k].res.n_gen;
        if (k % cn->per_prompt == 0)
            *n_prompt += cn->ch[k].res.n_prompt;
    }
}

/* Sets the pending event (takes ownership of ev). */
static void set_out(struct conn *cn, char *ev)
{
    free(cn->out);
    cn->out = ev;
    cn->out_len = ev ? strlen(ev) : 0;
    cn->out_off = 0;
}

/* The records of an echoed prompt, their offsets in c->echo_text. */
static void set_echo_offsets(const struct serve_choice *c, struct slots_logprob *lp, size_t n_lp)
{
    for (size_t i = 0; i < n_lp; i++) /* one record per prompt token, as echo_off */
        lp[i].offset = c->echo_off[i];
}

/*
 * For an echo choice not yet echoed: the prompt's records once ready (none
 * without logprobs). Returns true when the echo is due now (*plp may be
 * NULL), false while the prompt is still evaluated; a choice that ended
 * without them (cancelled, failed) is marked echoed with nothing to send.
 */
static bool echo_ready(struct conn *cn, struct serve_choice *c, int wait_ms,
                       struct slots_logprob **plp, size_t *n_plp)
{
    *plp = NULL;
    *n_plp = 0;
    if (!cn->logprobs || slots_req_prompt_logprobs(c->req, wait_ms, plp, n_plp, &c->res)) {
        set_echo_offsets(c, *plp, *n_plp);
        return true;
    }
    if (c->res.done)
        c->echoed = true;
    return false;
}

/* Appends n bytes of text, or n records, to a choice's gathered ones; false when out of memory. */
static bool gather(struct serve_choice *c, const char *t, size_t n, const struct slots_logprob *lp,
                   size_t n_lp)
{
    if (n > 0) {
        char *grown = realloc(c->text, c->len + n + 1);
        if (!grown)
            return false;
        c->text = grown;
        memcpy(c->text + c->len, t, n);
        c->len += n;
        c->text[c->len] = '\0';
    }
    if (n_lp > 0) {
        struct slots_logprob *grown = realloc(c->lp, (c->n_lp + n_lp) * sizeof *grown);
        if (!grown)
            return false;
        c->lp = grown;
        memcpy(c->lp + c->n_lp, lp, n_lp * sizeof *grown);
        c->n_lp += n_lp;
    }
    return true;
}

/* The choice's tool calls and where its content ends, from the text gathered (once). */
static void find_calls(const struct conn *cn, int k, size_t *content_len)
{
    struct serve_choice *c = &cn->ch[k];
    if (cn->call_guarded && c->res.stop == GEN_STOP_EOG && !c->closed_call) {
        /* the guard ended the reply with the arguments: the rest of the call is ours */
        static const char tail[] = "}\n" SERVE_TOOL_CLOSE_TAG;
        if (gather(c, tail, sizeof tail - 1, NULL, 0))
            c->closed_call = true;
    }
    char id[96];
    snprintf(id, sizeof id, "call_%s_%d", strchr(cn->id, '-') ? strchr(cn->id, '-') + 1 : cn->id,
             k);
    cJSON_Delete(c->calls);
    c->calls = serve_tools_parse(c->text ? c->text : "", c->len, id, cn->tool_names, cn->one_call,
                                 content_len);
}

/*
 * One look at choice k of a stream with tools: content streams until a call
 * may begin; at the end the calls go as one tool_calls chunk, then the end
 * ("tool_calls"), with the records gathered along the way.
 */
static bool stream_tools_choice(struct conn *cn, int k, int wait_ms)
{
    const struct serve_meta *m = &cn->meta;
    struct serve_choice *c = &cn->ch[k];
    struct serve_logprobs sl = {cn->srv->tok, c->lp, c->n_lp, "", 0, 0, 0};
    const struct serve_logprobs *slp = cn->logprobs && c->n_lp > 0 ? &sl : NULL;
    if (c->t_stage == 1) {
        set_out(cn, serve_chunk_tool_calls_sse(m, k, c->calls));
        c->t_stage = 2;
        return true;
    }
    if (c->t_stage >= 2) {
        c->finished = true;
        set_out(cn, serve_chunk_sse(m, k, NULL, false,
                                    c->t_stage == 2 ? "tool_calls" : serve_finish_reason(c->res.stop),
                                    false, 0, 0, slp));
        return true;
    }
    size_t len = 0, n_lp = 0;
    struct slots_logprob *lp = NULL;
    char *t = slots_req_take(c->req, wait_ms, &len, &c->res, cn->logprobs ? &lp : NULL, &n_lp);
    bool ok = gather(c, t, t ? len : 0, lp, n_lp);
    free(t);
    free(lp);
    if (!ok) {
        set_out(cn, NULL); /* out of memory: the stream ends with an error */
        return true;
    }
    size_t end = serve_tools_safe_len(c->text ? c->text : "", c->len, c->t_sent);
    if (c->res.done) {
        find_calls(cn, k, &end);
        if (!c->calls)
            end = c->len;
        c->t_stage = c->calls ? 1 : 3;
    }
    if (end > c->t_sent) {
        char *piece = malloc(end - c->t_sent + 1);
        if (piece) {
            memcpy(piece, c->text + c->t_sent, end - c->t_sent);
            piece[end - c->t_sent] = '\0';
        }
        set_out(cn, piece ? serve_chunk_sse(m, k, piece, false, NULL, false, 0, 0, NULL) : NULL);
        free(piece);
        c->t_sent = end;
        return true;
    }
    return c->res.done ? stream_tools_choice(cn, k, 0) : false;
}

/*
 * One look at choice k of a stream: sets the next event and returns true
 * when it has one (its echo, new text, or its end).
 */
static bool stream_choice(struct conn *cn, int k, int wait_ms)
{
    const struct serve_meta *m = &cn->meta;
    const struct tokenizer *tok = cn->srv->tok;
    struct serve_choice *c = &cn->ch[k];
    if (cn->tools)
        return stream_tools_choice(cn, k, wait_ms);
    if (cn->echo && !c->echoed) {
        struct slots_logprob *plp;
        size_t n_plp;
        if (!echo_ready(cn, c, wait_ms, &plp, &n_plp))
            return false;
        struct serve_logprobs sl = {tok, plp, n_plp, c->echo_text, c->echo_len, 0, 0};
        set_out(cn, serve_chunk_sse(m, k, c->echo_text, false, NULL, false, 0, 0,
                                    cn->logprobs ? &sl : NULL));
        free(plp);
        c->echoed = true;
        return true;
    }
    size_t len = 0, n_lp = 0;
    struct slots_logprob *lp = NULL;
    char *t = slots_req_take(c->req, wait_ms, &len, &c->res, cn->logprobs ? &lp : NULL, &n_lp);
    struct serve_logprobs sl = {tok, lp, n_lp, t ? t : "", len, c->sent_bytes, c->sent_chars};
    const struct serve_logprobs *slp = cn->logprobs ? &sl : NULL;
    bool event = true;
    if (t && len > 0) {
        set_out(cn, serve_chunk_sse(m, k, t, false, NULL, false, 0, 0, slp));
        c->sent_bytes += len;
        c->sent_chars += serve_utf8_chars(t, len);
    } else if (c->res.done) {
        /* records of tokens with no text of their own come with the last chunk */
        c->finished = true;
        set_out(cn, serve_chunk_sse(m, k, NULL, false, serve_finish_reason(c->res.stop), false, 0,
                                    0, n_lp > 0 ? slp : NULL));
    } else {
        event = false;
    }
    free(t);
    free(lp);
    return event;
}

/* The next event of a stream; false at the end or when the client left. */
static bool next_event(struct conn *cn)
{
    const struct serve_meta *m = &cn->meta;
    size_t n_prompt, n_gen;
    switch (cn->phase) {
    case 0: /* chat: each choice's role chunk */
        for (int k = 0; m->chat && k < cn->n_ch; k++)
            if (!cn->ch[k].role_sent) {
                cn->ch[k].role_sent = true;
                set_out(cn, serve_chunk_sse(m, k, NULL, true, NULL, false, 0, 0, NULL));
                return true;
            }
        cn->phase = 1;
        return next_event(cn);
    case 2: /* every choice ended */
        cn->phase = 3;
        if (cn->include_usage) {
            usage(cn, &n_prompt, &n_gen);
            set_out(cn, serve_chunk_sse(m, 0, NULL, false, NULL, true, n_prompt, n_gen, NULL));
            cn->phase = 4;
            return true;
        }
        set_out(cn, strdup("data: [DONE]\n\n"));
        return true;
    case 4:
        cn->phase = 3;
        set_out(cn, strdup("data: [DONE]\n\n"));
        return true;
    case 3:
        return false;
    default:
        break;
    }
    /* phase 1: the choices in turn, from the one after the last event */
    const int wait = cn->n_ch == 1 ? SERVE_SLICE_MS : 0;
    int waited = 0;
    for (;;) {
        bool open = false;
        for (int i = 0; i < cn->n_ch; i++) {
            int k = (cn->next + i) % cn->n_ch;
            if (cn->ch[k].finished)
                continue;
            open = true;
            if (stream_choice(cn, k, wait)) {
                cn->next = (k + 1) % cn->n_ch;
                return true;
            }
        }
        if (!open) {
            cn->phase = 2;
            return next_event(cn);
        }
        if (serve__peer_gone(cn->fd))
            return false;
        if (cn->n_ch > 1)
            nanosleep(&(struct timespec){0, POLL_MS * 1000000L}, NULL);
        waited += cn->n_ch > 1 ? POLL_MS : wait;
        if (waited >= SERVE_KEEPALIVE_MS) {
            set_out(cn, strdup(": keep-alive\n\n")); /* an SSE comment: clients skip it */
            return true;
        }
    }
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct conn *cn = cls;
    (void)pos;
    if (cn->out_off >= cn->out_len) {
        if (!next_event(cn))
            return cn->phase == 3 ? MHD_CONTENT_READER_END_OF_STREAM
                                  : MHD_CONTENT_READER_END_WITH_ERROR; /* the client left */
        if (!cn->out)
            return MHD_CONTENT_READER_END_WITH_ERROR; /* out of memory */
    }
    size_t n = cn->out_len - cn->out_off;
    if (n > max)
        n = max;
    memcpy(buf, cn->out + cn->out_off, n);
    cn->out_off += n;
    return (ssize_t)n;
}

/*
 * One look at choice c of a whole reply: its echo (the prompt's text and
 * records first), then its text and records as they come. False when out of
 * memory.
 */
static bool collect_choice(struct conn *cn, struct serve_choice *c, int wait_ms)
{
    if (cn->echo && !c->echoed) {
        struct slots_logprob *plp;
        size_t n_plp;
        if (!echo_ready(cn, c, wait_ms, &plp, &n_plp))
            return true;
        bool ok = gather(c, c->echo_text, c->echo_len, plp, n_plp);
        free(plp);
        c->echoed = true;
        return ok;
    }
    size_t n = 0, n_lp = 0;
    struct slots_logprob *lp = NULL;
    char *t = slots_req_take(c->req, wait_ms, &n, &c->res, cn->logprobs ? &lp : NULL, &n_lp);
    for (size_t i = 0; i < n_lp; i++)
        lp[i].offset += cn->echo ? c->echo_len : 0; /* the text starts with the prompt */
    bool ok = gather(c, t, t ? n : 0, lp, n_lp);
    free(t);
    free(lp);
    if (c->res.done && (!cn->echo || c->echoed))
        c->finished = true;
    return ok;
}

/* The whole reply, once every choice has ended. */
static enum MHD_Result whole_reply(struct MHD_Connection *mc, struct serve_server *s,
                                   struct conn *cn)
{
    struct serve_choice_out *out = calloc((size_t)cn->n_ch, sizeof *out);
    struct serve_logprobs *sl = calloc((size_t)cn->n_ch, sizeof *sl);
    if (!out || !sl) {
        free(out);
        free(sl);
        return MHD_NO;
    }
    for (int k = 0; k < cn->n_ch; k++) {
        struct serve_choice *c = &cn->ch[k];
        if (c->res.status != HEARTH_OK) {
            free(out);
            free(sl);
            struct serve_error e;
            serve_error_set(&e, 500, "server_error", NULL, NULL, "generation failed (choice %d)",
                            k);
            return serve__send_error(mc, s, &e);
        }
        size_t content_len = c->len;
        if (cn->tools)
            find_calls(cn, k, &content_len); /* may grow c->text: take pointers after it */
        /* offsets count from the text's start: the prompt's when echoed, else after it */
        sl[k] = (struct serve_logprobs){s->tok, c->lp, c->n_lp, c->text ? c->text : "", c->len,
                                        0, cn->echo ? 0 : c->sent_chars};
        out[k].text = c->text ? c->text : "";
        out[k].finish = serve_finish_reason(c->res.stop);
        out[k].lp = cn->logprobs ? &sl[k] : NULL;
        if (cn->tools && c->calls) {
            c->text[content_len] = '\0'; /* the content is what precedes the calls */
            out[k].tool_calls = c->calls;
            out[k].finish = "tool_calls";
        }
    }
    size_t n_prompt, n_gen;
    usage(cn, &n_prompt, &n_gen);
    char *json = serve_response_json(&cn->meta, out, (size_t)cn->n_ch, n_prompt, n_gen);
    free(out);
    free(sl);
    return serve__send_json(mc, s, 200, json);
}

enum MHD_Result serve__completion(struct MHD_Connection *mc, struct serve_server *s,
                                  struct conn *cn, bool chat)
{
    struct serve_req rq;
    struct serve_error e;
    if (!serve_parse_request(cn->body ? cn->body : "", cn->len, chat, &rq, &e))
        return serve__send_error(mc, s, &e);
    cn->per_prompt = rq.n;
    bool ok = start_completion(s, cn, &rq, &e);
    bool stream = rq.stream;
    serve_req_free(&rq);
    if (!ok)
        return serve__send_error(mc, s, &e);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    cn->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;

    if (stream) {
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, cn, NULL);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        enum MHD_Result ret = MHD_queue_response(mc, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        atomic_fetch_add(&s->http_by_class[2], 1);
        return ret;
    }
    /* a whole reply: gather every choice here, watching the client */
    const int wait = cn->n_ch == 1 ? SERVE_SLICE_MS : 0;
    for (;;) {
        bool open = false;
        for (int k = 0; k < cn->n_ch; k++) {
            if (cn->ch[k].finished)
                continue;
            if (!collect_choice(cn, &cn->ch[k], wait))
                return MHD_NO; /* out of memory: the connection closes */
            open = open || !cn->ch[k].finished;
        }
        if (!open)
            break;
        if (serve__peer_gone(cn->fd))
            return MHD_NO; /* closes the connection; completion releases the requests */
        if (cn->n_ch > 1)
            nanosleep(&(struct timespec){0, POLL_MS * 1000000L}, NULL);
    }
    return whole_reply(mc, s, cn);
}

enum MHD_Result serve__apply_template(struct MHD_Connection *mc, struct serve_server *s,
                                      struct conn *cn)
{
    struct serve_req rq;
    struct serve_error e;
    if (!serve_parse_request(cn->body ? cn->body : "", cn->len, true, &rq, &e))
        return serve__send_error(mc, s, &e);
    char *text = NULL;
    err_clear();
    hearth_status st = chat_render(s->chat->fmt, rq.msgs, rq.n_msgs, true, &text);
    cJSON *o = st == HEARTH_OK ? cJSON_CreateObject() : NULL;
    if (st != HEARTH_OK) {
        bool bad = st == HEARTH_ERR_INVALID_ARG;
        serve_error_set(&e, bad ? 400 : 500, bad ? "invalid_request_error" : "server_error",
                        "messages", NULL, "%s", hearth_last_error());
        serve_req_free(&rq);
        return serve__send_error(mc, s, &e);
    }
    size_t n = strlen(text) + (rq.tool_prefill ? strlen(rq.tool_prefill) : 0) + 1;
    char *all = malloc(n);
    if (all)
        snprintf(all, n, "%s%s", text, rq.tool_prefill ? rq.tool_prefill : "");
    if (o && all)
        cJSON_AddStringToObject(o, "prompt", all);
    char *json = o && all ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    free(all);
    free(text);
    serve_req_free(&rq);
    return serve__send_json(mc, s, 200, json);
}

#else
typedef int serve_completion_unused; /* ISO C forbids an empty translation unit */
#endif
