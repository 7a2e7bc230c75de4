/*
 * serve-http: the HTTP side of `hearth serve` on libmicrohttpd.
 *
 * MHD runs one thread per connection, so a handler may block while its
 * request generates: a streamed reply is a response from a content-reader
 * callback that waits (slots_req_take) for the engine's next text and frames
 * it as a server-sent event; a whole reply waits in the handler. Waits are
 * sliced in 200 ms and between slices the connection's socket is peeked: a
 * client that hung up is noticed within a slice even while its prompt is
 * still being evaluated, its request is released (cancelling the
 * generation) and the slot frees at the engine's next step. MHD's
 * request-completed callback releases the request in every other case (a
 * failed write of a stream, a finished reply).
 *
 * Hostile input: bodies over SERVE_BODY_LIMIT get 413 (before any upload when
 * Content-Length declares it; at the end of a chunked body otherwise, nothing
 * past the limit buffered); JSON errors, wrong types and ranges get
 * 400 with an OpenAI error object; a wrong or missing API key 401 (compared in
 * constant time); unknown paths 404, wrong methods 405, a full queue 503. No
 * path or field is ever used to open a file: the page is compiled in.
 */
#include "serve.h"

#ifdef HEARTH_WITH_SERVER

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "err.h"

#define SLICE_MS 200
#define KEEPALIVE_MS 15000

struct serve_server {
    struct MHD_Daemon *d;
    struct serve_opts o;
    struct slots *slots;
    const struct tokenizer *tok;
    const struct gen_chat *chat;
    long long started;
    atomic_uint_least64_t next_id;
    atomic_bool draining;
    atomic_uint_least64_t http_by_class[6]; /* responses by status class 1xx..5xx */
};

/* Per connection (MHD's con_cls). */
struct conn {
    struct serve_server *srv;
    char *body;
    size_t len, cap;
    bool too_large;
    size_t discarded; /* body bytes dropped after crossing the limit */
    /* a running completion */
    struct slots_req *req;
    struct serve_meta meta;
    char id[48];
    bool include_usage;
    MHD_socket fd;
    /* stream state: pending bytes of the current event */
    char *out;
    size_t out_len, out_off;
    int phase; /* 0: role chunk due (chat), 1: text, 2: final sent, 3: [DONE] sent */
    struct slots_result res;
    /* logprobs: the generated text streamed so far, in bytes and in characters
       from the start of the prompt (completions' text_offset) */
    bool logprobs;
    size_t sent_bytes, sent_chars;
    /* echo: the decoded prompt that leads the text, where each prompt token starts in it */
    bool echo, echoed;
    char *echo_text;
    size_t echo_len;
    size_t *echo_off;
};

static long long unix_now(void)
{
    return (long long)time(NULL);
}

/* ---- responses ------------------------------------------------------------------ */

static enum MHD_Result send_buf(struct MHD_Connection *c, struct serve_server *s, int status,
                                const char *type, char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (status == 405)
        MHD_add_response_header(r, "Allow", "GET, POST");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    if (status >= 100 && status < 600)
        atomic_fetch_add(&s->http_by_class[status / 100], 1);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, struct serve_server *s, int status,
                                 char *json)
{
    if (!json)
        return MHD_NO;
    return send_buf(c, s, status, "application/json", json, strlen(json));
}

static enum MHD_Result send_error(struct MHD_Connection *c, struct serve_server *s,
                                  const struct serve_error *e)
{
    return send_json(c, s, e->http, serve_error_json(e));
}

static enum MHD_Result fail(struct MHD_Connection *c, struct serve_server *s, int http,
                            const char *type, const char *param, const char *code, const char *msg)
{
    struct serve_error e;
    serve_error_set(&e, http, type, param, code, "%s", msg);
    return send_error(c, s, &e);
}

/* ---- authentication ------------------------------------------------------------- */

/* Equal strings, in time that depends only on their lengths. */
static bool const_time_eq(const char *a, size_t na, const char *b, size_t nb)
{
    unsigned diff = (unsigned)(na ^ nb);
    for (size_t i = 0; i < nb; i++)
        diff |= (unsigned)(unsigned char)(i < na ? a[i] : 0) ^ (unsigned char)b[i];
    return diff == 0;
}

static bool authorized(struct serve_server *s, struct MHD_Connection *c)
{
    if (!s->o.api_key)
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    return const_time_eq(h, strlen(h), s->o.api_key, strlen(s->o.api_key));
}

/* ---- client liveness ------------------------------------------------------------ */

/* True when the peer closed its end (an orderly shutdown or a reset). */
static bool peer_gone(MHD_socket fd)
{
    if (fd == MHD_INVALID_SOCKET)
        return false;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return false;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
        return true;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* ---- completions ------------------------------------------------------------------ */

/* Tokenizes the request and submits it; on failure fills e. */
static bool start_completion(struct serve_server *s, struct conn *cn, const struct serve_req *rq,
                             struct serve_error *e)
{
    int32_t *ids = NULL;
    size_t n_ids = 0;
    err_clear();
    hearth_status st = HEARTH_OK;
    if (rq->chat)
        st = gen_chat_tokenize(s->chat, s->tok, rq->msgs, rq->n_msgs, true, &ids, &n_ids);
    else if (rq->prompt)
        st = gen_tokenize_prompt(s->tok, rq->prompt, strlen(rq->prompt), false, &ids, &n_ids);
    else if ((ids = malloc(rq->n_prompt_ids * sizeof *ids)) != NULL) {
        memcpy(ids, rq->prompt_ids, rq->n_prompt_ids * sizeof *ids);
        n_ids = rq->n_prompt_ids;
    } else {
        st = err_set(HEARTH_ERR_NO_MEMORY, "prompt: out of memory");
    }
    if (st != HEARTH_OK) {
        serve_error_set(e, st == HEARTH_ERR_INVALID_ARG ? 400 : 500,
                        st == HEARTH_ERR_INVALID_ARG ? "invalid_request_error" : "server_error",
                        rq->chat ? "messages" : "prompt", NULL, "%s", hearth_last_error());
        return false;
    }
    struct slots_req_params p;
    memset(&p, 0, sizeof p);
    p.prompt = ids;
    p.n_prompt = n_ids;
    p.sp = rq->sp;
    uint32_t n_ctx = slots_n_ctx(s->slots);
    p.n_predict = rq->max_tokens;
    if (p.n_predict < 0) {
        /* not given: the default, within what the context leaves */
        uint32_t room = n_ids < n_ctx ? n_ctx - (uint32_t)n_ids : 1;
        p.n_predict =
            (int32_t)((uint32_t)s->o.default_max_tokens < room ? (uint32_t)s->o.default_max_tokens
                                                               : room);
    }
    p.stop = rq->stop;
    p.n_stop = rq->n_stop;
    p.chat = rq->chat;
    p.bias_ids = rq->bias_ids;
    p.bias = rq->bias;
    p.n_bias = rq->n_bias;
    p.logprobs = rq->logprobs;
    p.top_logprobs = rq->top_logprobs;
    /* max_tokens 0 (only with echo) ends the request after the prompt, which the engine
       does for echo requests: their records are then computed and left unread */
    p.echo = rq->echo && (rq->logprobs || rq->max_tokens == 0);
    p.logprobs = p.logprobs || p.echo;
    err_clear();
    st = slots_req_create(s->slots, &p, &cn->req);
    if (st == HEARTH_OK && !rq->chat && (rq->echo || !rq->prompt) &&
        !serve_echo_text(s->tok, ids, n_ids, &cn->echo_text, &cn->echo_len, &cn->echo_off)) {
        slots_req_release(cn->req);
        cn->req = NULL;
        st = err_set(HEARTH_ERR_NO_MEMORY, "echo: out of memory");
    }
    free(ids);
    if (st != HEARTH_OK) {
        const char *msg = hearth_last_error();
        const char *param = !strncmp(msg, "max_tokens", 10) ? "max_tokens"
                            : !strncmp(msg, "logit_bias", 10) ? "logit_bias"
                            : !strncmp(msg, "prompt", 6)    ? (rq->chat ? "messages" : "prompt")
                                                            : NULL;
        serve_error_set(e, st == HEARTH_ERR_INVALID_ARG ? 400 : 500,
                        st == HEARTH_ERR_INVALID_ARG ? "invalid_request_error" : "server_error",
                        param,
                        param && strstr(msg, "context") ? "context_length_exceeded" : NULL,
                        "%s", msg);
        return false;
    }
    enum slots_admit a = slots_submit(s->slots, cn->req);
    if (a != SLOTS_QUEUED) {
        slots_req_release(cn->req);
        cn->req = NULL;
        serve_error_set(e, 503, "server_error", NULL,
                        a == SLOTS_FULL ? "server_busy" : "shutting_down",
                        a == SLOTS_FULL ? "the server is busy: every slot and queue place is "
                                          "taken, retry later"
                                        : "the server is shutting down");
        return false;
    }
    snprintf(cn->id, sizeof cn->id, "%s-%llu-%llu", rq->chat ? "chatcmpl" : "cmpl",
             (unsigned long long)s->started, (unsigned long long)atomic_fetch_add(&s->next_id, 1));
    cn->meta.chat = rq->chat;
    cn->meta.id = cn->id;
    cn->meta.created = unix_now();
    cn->meta.model = s->o.model_name;
    cn->include_usage = rq->include_usage;
    cn->logprobs = rq->logprobs;
    cn->echo = rq->echo;
    cn->sent_bytes = 0;
    /* text_offset counts from the start of the prompt: the echoed one, else the given text */
    cn->sent_chars = rq->chat                  ? 0
                     : rq->prompt && !rq->echo ? serve_utf8_chars(rq->prompt, strlen(rq->prompt))
                                               : serve_utf8_chars(cn->echo_text, cn->echo_len);
    return true;
}

/* Sets the pending event (takes ownership of ev). */
static void set_out(struct conn *cn, char *ev)
{
    free(cn->out);
    cn->out = ev;
    cn->out_len = ev ? strlen(ev) : 0;
    cn->out_off = 0;
}

/*
 * Waits for the prompt's records of an echo request (*lp, *n_lp; none
 * without logprobs). False when the client left or the request ended
 * without them (cn->res says why).
 */
static bool wait_prompt_logprobs(struct conn *cn, struct slots_logprob **lp, size_t *n_lp)
{
    *lp = NULL;
    *n_lp = 0;
    if (!cn->logprobs)
        return true;
    for (;;) {
        if (slots_req_prompt_logprobs(cn->req, SLICE_MS, lp, n_lp, &cn->res))
            return true;
        if (cn->res.done || peer_gone(cn->fd))
            return false;
    }
}

/* The records of the echoed prompt, their offsets in cn->echo_text. */
static void set_echo_offsets(const struct conn *cn, struct slots_logprob *lp, size_t n_lp)
{
    for (size_t i = 0; i < n_lp; i++)
        lp[i].offset = cn->echo_off[i];
}

/* The next event of a stream; false at the end. */
static bool next_event(struct conn *cn)
{
    const struct serve_meta *m = &cn->meta;
    if (cn->phase == 0) {
        cn->phase = 1;
        if (m->chat) {
            set_out(cn, serve_chunk_sse(m, NULL, true, NULL, false, 0, 0, NULL));
            return true;
        }
    }
    if (cn->phase == 3)
        return false;
    if (cn->phase == 2) {
        cn->phase = 3;
        if (cn->include_usage) {
            set_out(cn,
                    serve_chunk_sse(m, NULL, false, NULL, true, cn->res.n_prompt, cn->res.n_gen,
                                    NULL));
            cn->phase = 4;
            return true;
        }
        set_out(cn, strdup("data: [DONE]\n\n"));
        return true;
    }
    if (cn->phase == 4) {
        cn->phase = 3;
        set_out(cn, strdup("data: [DONE]\n\n"));
        return true;
    }
    /* phase 1: the echoed prompt first, then text until done */
    if (cn->echo && !cn->echoed) {
        struct slots_logprob *plp = NULL;
        size_t n_plp = 0;
        if (!wait_prompt_logprobs(cn, &plp, &n_plp)) {
            if (!cn->res.done)
                return false; /* the client left */
            cn->echoed = true;
            return next_event(cn); /* ended without its prompt evaluated: the last chunk */
        }
        set_echo_offsets(cn, plp, n_plp);
        struct serve_logprobs sl = {cn->srv->tok, plp, n_plp, cn->echo_text, cn->echo_len, 0, 0};
        set_out(cn, serve_chunk_sse(m, cn->echo_text, false, NULL, false, 0, 0,
                                    cn->logprobs ? &sl : NULL));
        free(plp);
        cn->echoed = true;
        return true;
    }
    int waited = 0;
    for (;;) {
        size_t len = 0, n_lp = 0;
        struct slots_logprob *lp = NULL;
        char *t = slots_req_take(cn->req, SLICE_MS, &len, &cn->res, cn->logprobs ? &lp : NULL,
                                 &n_lp);
        struct serve_logprobs sl = {cn->srv->tok, lp,         n_lp, t ? t : "", len,
                                    cn->sent_bytes, cn->sent_chars};
        const struct serve_logprobs *slp = cn->logprobs ? &sl : NULL;
        if (t && len > 0) {
            set_out(cn, serve_chunk_sse(m, t, false, NULL, false, 0, 0, slp));
            cn->sent_bytes += len;
            cn->sent_chars += serve_utf8_chars(t, len);
            free(t);
            free(lp);
            return true;
        }
        free(t);
        if (cn->res.done) {
            cn->phase = 2;
            /* records of tokens with no text of their own come with the last chunk */
            set_out(cn, serve_chunk_sse(m, NULL, false, serve_finish_reason(cn->res.stop), false, 0,
                                        0, n_lp > 0 ? slp : NULL));
            free(lp);
            return true;
        }
        free(lp);
        if (peer_gone(cn->fd))
            return false;
        waited += SLICE_MS;
        if (waited >= KEEPALIVE_MS) {
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
        bool more = next_event(cn);
        if (!more) {
            if (cn->phase == 3 && cn->res.done)
                return MHD_CONTENT_READER_END_OF_STREAM;
            return MHD_CONTENT_READER_END_WITH_ERROR; /* the client left */
        }
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

static enum MHD_Result serve_completion(struct MHD_Connection *c, struct serve_server *s,
                                        struct conn *cn, bool chat)
{
    struct serve_req rq;
    struct serve_error e;
    if (!serve_parse_request(cn->body ? cn->body : "", cn->len, chat, &rq, &e))
        return send_error(c, s, &e);
    bool ok = start_completion(s, cn, &rq, &e);
    bool stream = rq.stream;
    serve_req_free(&rq);
    if (!ok)
        return send_error(c, s, &e);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    cn->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;

    if (stream) {
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, cn, NULL);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        atomic_fetch_add(&s->http_by_class[2], 1);
        return ret;
    }
    /* a whole reply: collect the text (and records) here, watching the client */
    char *text = NULL;
    size_t len = 0;
    struct slots_logprob *lps = NULL;
    size_t n_lps = 0, n_plp = 0;
    if (cn->echo) {
        /* the prompt's records, then the generated ones; the text starts with the prompt */
        if (!wait_prompt_logprobs(cn, &lps, &n_plp) && !cn->res.done)
            return MHD_NO;
        set_echo_offsets(cn, lps, n_plp);
        n_lps = n_plp;
        if (!(text = malloc(cn->echo_len + 1)))
            return MHD_NO;
        memcpy(text, cn->echo_text, cn->echo_len + 1);
        len = cn->echo_len;
    }
    for (;;) {
        size_t n = 0, n_lp = 0;
        struct slots_logprob *lp = NULL;
        char *t = slots_req_take(cn->req, SLICE_MS, &n, &cn->res, cn->logprobs ? &lp : NULL, &n_lp);
        for (size_t i = 0; i < n_lp; i++)
            lp[i].offset += cn->echo_len; /* 0 without echo */
        if (n_lp > 0) {
            struct slots_logprob *grown = realloc(lps, (n_lps + n_lp) * sizeof *lps);
            if (!grown) {
                free(lp);
                free(t);
                free(text);
                free(lps);
                return MHD_NO;
            }
            lps = grown;
            memcpy(lps + n_lps, lp, n_lp * sizeof *lps);
            n_lps += n_lp;
        }
        free(lp);
        if (t && n > 0) {
            char *grown = realloc(text, len + n + 1);
            if (!grown) {
                free(t);
                free(text);
                free(lps);
                return MHD_NO;
            }
            text = grown;
            memcpy(text + len, t, n + 1);
            len += n;
        }
        free(t);
        if (cn->res.done)
            break;
        if (peer_gone(cn->fd)) {
            free(text);
            free(lps);
            return MHD_NO; /* closes the connection; completion releases the request */
        }
    }
    if (cn->res.status != HEARTH_OK) {
        free(text);
        free(lps);
        return fail(c, s, 500, "server_error", NULL, NULL, "generation failed");
    }
    /* offsets count from the text's start: the prompt's when echoed, else after it */
    size_t base_chars = cn->echo ? 0 : cn->sent_chars;
    struct serve_logprobs sl = {s->tok, lps, n_lps, text ? text : "", len, 0, base_chars};
    char *json = serve_response_json(&cn->meta, text ? text : "", serve_finish_reason(cn->res.stop),
                                     cn->res.n_prompt, cn->res.n_gen, cn->logprobs ? &sl : NULL);
    free(text);
    free(lps);
    return send_json(c, s, 200, json);
}

/* ---- metrics -------------------------------------------------------------------- */

static enum MHD_Result serve_metrics(struct MHD_Connection *c, struct serve_server *s)
{
    struct slots_stats st;
    slots_get_stats(s->slots, &st);
    size_t cap = 8192;
    char *b = malloc(cap);
    if (!b)
        return MHD_NO;
    int n = snprintf(
        b, cap,
        "# HELP hearth_requests_total Completion requests accepted into the queue.\n"
        "# TYPE hearth_requests_total counter\nhearth_requests_total %llu\n"
        "# HELP hearth_requests_rejected_total Requests refused: queue full or shutting down.\n"
        "# TYPE hearth_requests_rejected_total counter\nhearth_requests_rejected_total %llu\n"
        "# HELP hearth_requests_cancelled_total Requests cancelled (client gone, shutdown).\n"
        "# TYPE hearth_requests_cancelled_total counter\nhearth_requests_cancelled_total %llu\n"
        "# HELP hearth_requests_completed_total Requests that ran to their end.\n"
        "# TYPE hearth_requests_completed_total counter\nhearth_requests_completed_total %llu\n"
        "# HELP hearth_prompt_tokens_total Prompt tokens evaluated.\n"
        "# TYPE hearth_prompt_tokens_total counter\nhearth_prompt_tokens_total %llu\n"
        "# HELP hearth_prompt_tokens_reused_total Prompt tokens served from a slot's cache.\n"
        "# TYPE hearth_prompt_tokens_reused_total counter\n"
        "hearth_prompt_tokens_reused_total %llu\n"
        "# HELP hearth_generated_tokens_total Tokens generated.\n"
        "# TYPE hearth_generated_tokens_total counter\nhearth_generated_tokens_total %llu\n"
        "# HELP hearth_tokens_per_second Generated tokens per second, recent window.\n"
        "# TYPE hearth_tokens_per_second gauge\nhearth_tokens_per_second %.3f\n"
        "# HELP hearth_engine_steps_total Batched forward passes.\n"
        "# TYPE hearth_engine_steps_total counter\nhearth_engine_steps_total %llu\n"
        "# HELP hearth_engine_busy_seconds_total Time spent in forward passes and sampling.\n"
        "# TYPE hearth_engine_busy_seconds_total counter\n"
        "hearth_engine_busy_seconds_total %.3f\n"
        "# HELP hearth_queue_depth Requests waiting for a slot.\n"
        "# TYPE hearth_queue_depth gauge\nhearth_queue_depth %d\n"
        "# HELP hearth_queue_capacity Requests that may wait before 503.\n"
        "# TYPE hearth_queue_capacity gauge\nhearth_queue_capacity %d\n"
        "# HELP hearth_slots_active Slots generating.\n"
        "# TYPE hearth_slots_active gauge\nhearth_slots_active %d\n"
        "# HELP hearth_slots_total Slots (parallel sequences).\n"
        "# TYPE hearth_slots_total gauge\nhearth_slots_total %d\n"
        "# HELP hearth_http_responses_total HTTP responses by status class.\n"
        "# TYPE hearth_http_responses_total counter\n"
        "hearth_http_responses_total{class=\"2xx\"} %llu\n"
        "hearth_http_responses_total{class=\"4xx\"} %llu\n"
        "hearth_http_responses_total{class=\"5xx\"} %llu\n",
        (unsigned long long)st.n_requests, (unsigned long long)st.n_rejected,
        (unsigned long long)st.n_cancelled, (unsigned long long)st.n_completed,
        (unsigned long long)st.n_prompt_tokens, (unsigned long long)st.n_reused_tokens,
        (unsigned long long)st.n_gen_tokens, st.gen_tps, (unsigned long long)st.n_steps, st.busy_s,
        st.n_queued, st.max_queue, st.n_active, st.n_slots,
        (unsigned long long)atomic_load(&s->http_by_class[2]),
        (unsigned long long)atomic_load(&s->http_by_class[4]),
        (unsigned long long)atomic_load(&s->http_by_class[5]));
    if (n < 0 || (size_t)n >= cap) {
        free(b);
        return MHD_NO;
    }
    /*
     * Memory per device from the real allocation (slots_stats.mem): the file
     * mapping is host memory shared with the page cache, so it is its own
     * "mapped" line rather than counted as a device's bytes.
     */
    int k = snprintf(b + n, cap - (size_t)n,
                     "# HELP hearth_memory_bytes Memory per device and kind (KV at full "
                     "context; allocated includes KV; mapped is the model file).\n"
                     "# TYPE hearth_memory_bytes gauge\n"
                     "hearth_memory_bytes{device=\"host\",kind=\"mapped\"} %zu\n",
                     st.weight_bytes);
    for (int d = 0; k >= 0 && (size_t)(n + k) < cap && d < st.n_mem; d++) {
        n += k;
        k = snprintf(b + n, cap - (size_t)n,
                     "hearth_memory_bytes{device=\"%s\",kind=\"allocated\"} %llu\n"
                     "hearth_memory_bytes{device=\"%s\",kind=\"kv_cache\"} %llu\n",
                     st.mem[d].device, (unsigned long long)st.mem[d].bytes, st.mem[d].device,
                     (unsigned long long)st.mem[d].kv);
    }
    if (k < 0 || (size_t)(n + k) >= cap) {
        free(b);
        return MHD_NO;
    }
    n += k;
    return send_buf(c, s, 200, "text/plain; version=0.0.4", b, (size_t)n);
}

/* ---- routing -------------------------------------------------------------------- */

static enum MHD_Result route(struct serve_server *s, struct MHD_Connection *c, struct conn *cn,
                             const char *url, const char *method)
{
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) {
        if (!get)
            return fail(c, s, 405, "invalid_request_error", NULL, "method_not_allowed",
                        "use GET for the chat page");
        char *page = malloc(serve_page_len ? serve_page_len : 1);
        if (!page)
            return MHD_NO;
        memcpy(page, serve_page_html, serve_page_len);
        return send_buf(c, s, 200, "text/html; charset=utf-8", page, serve_page_len);
    }
    if (!strcmp(url, "/health")) {
        if (!get)
            return fail(c, s, 405, "invalid_request_error", NULL, "method_not_allowed",
                        "use GET for /health");
        if (atomic_load(&s->draining))
            return send_json(c, s, 503, strdup("{\"status\":\"shutting down\"}"));
        return send_json(c, s, 200, strdup("{\"status\":\"ok\"}"));
    }
    bool is_chat = !strcmp(url, "/v1/chat/completions"), is_cmpl = !strcmp(url, "/v1/completions");
    bool is_models = !strcmp(url, "/v1/models"), is_metrics = !strcmp(url, "/metrics");
    bool is_tok = !strcmp(url, "/tokenize"), is_detok = !strcmp(url, "/detokenize");
    if (!is_chat && !is_cmpl && !is_models && !is_metrics && !is_tok && !is_detok) {
        struct serve_error e;
        serve_error_set(&e, 404, "invalid_request_error", NULL, "not_found",
                        "no such endpoint: %.200s", url);
        return send_error(c, s, &e);
    }
    if (!authorized(s, c))
        return fail(c, s, 401, "invalid_request_error", NULL, "invalid_api_key",
                    "missing or wrong API key (send 'Authorization: Bearer KEY')");
    if (is_models || is_metrics) {
        if (!get)
            return fail(c, s, 405, "invalid_request_error", NULL, "method_not_allowed",
                        "use GET for this endpoint");
        if (is_metrics)
            return serve_metrics(c, s);
        return send_json(c, s, 200, serve_models_json(s->o.model_name, s->started));
    }
    if (!post)
        return fail(c, s, 405, "invalid_request_error", NULL, "method_not_allowed",
                    "use POST for this endpoint");
    if (is_tok || is_detok) {
        struct serve_error e;
        char *out = NULL;
        const char *body = cn->body ? cn->body : "";
        if (!(is_tok ? serve_tokenize(s->tok, body, cn->len, &out, &e)
                     : serve_detokenize(s->tok, body, cn->len, &out, &e)))
            return send_error(c, s, &e);
        return send_json(c, s, 200, out);
    }
    if (atomic_load(&s->draining))
        return fail(c, s, 503, "server_error", NULL, "shutting_down",
                    "the server is shutting down");
    return serve_completion(c, s, cn, is_chat);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    struct serve_server *s = cls;
    struct conn *cn = *con_cls;
    (void)version;
    if (!cn) {
        cn = calloc(1, sizeof *cn);
        if (!cn)
            return MHD_NO;
        cn->srv = s;
        cn->fd = MHD_INVALID_SOCKET;
        *con_cls = cn;
        /* refuse a declared oversize body before reading it */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            if (end != cl && (errno == ERANGE || v > SERVE_BODY_LIMIT)) {
                /* answered before any upload (no 100 Continue); MHD then closes */
                cn->too_large = true;
                return fail(c, s, 413, "invalid_request_error", NULL, "request_too_large",
                            "the request body exceeds 1 MiB");
            }
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!cn->too_large && cn->len + *upload_size > SERVE_BODY_LIMIT)
            cn->too_large = true;
        if (cn->too_large) {
            /*
             * A body without a declared length (chunked) crossed the limit. MHD
             * cannot queue a response mid-upload, so the rest is discarded
             * unbuffered and 413 goes out at its end; past 16x the limit the
             * connection is dropped instead.
             */
            cn->discarded += *upload_size;
            *upload_size = 0;
            return cn->discarded > 16u * SERVE_BODY_LIMIT ? MHD_NO : MHD_YES;
        }
        if (cn->len + *upload_size + 1 > cn->cap) {
            size_t cap = cn->cap ? cn->cap : 4096;
            while (cap < cn->len + *upload_size + 1)
                cap *= 2;
            char *grown = realloc(cn->body, cap);
            if (!grown)
                return MHD_NO;
            cn->body = grown;
            cn->cap = cap;
        }
        memcpy(cn->body + cn->len, upload, *upload_size);
        cn->len += *upload_size;
        cn->body[cn->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    if (cn->too_large)
        return fail(c, s, 413, "invalid_request_error", NULL, "request_too_large",
                    "the request body exceeds 1 MiB");
    return route(s, c, cn, url, method);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe; /* any end releases: a generation still running (client gone) is cancelled */
    struct conn *cn = *con_cls;
    if (!cn)
        return;
    slots_req_release(cn->req);
    free(cn->out);
    free(cn->body);
    free(cn->echo_text);
    free(cn->echo_off);
    free(cn);
    *con_cls = NULL;
}

int serve_start(const struct serve_opts *o, struct slots *slots, const struct tokenizer *tok,
                const struct gen_chat *chat, struct serve_server **out)
{
    *out = NULL;
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    const struct sockaddr *sa;
    /* ITC: MHD_quiesce_daemon needs it to stop accepting while connections drain */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC;
    if (inet_pton(AF_INET, o->host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)o->port);
        sa = (const struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, o->host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)o->port);
        sa = (const struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        fprintf(stderr, "hearth: serve: --host '%s' is not a numeric IPv4 or IPv6 address\n",
                o->host);
        return 2;
    }
    struct serve_server *s = calloc(1, sizeof *s);
    if (!s) {
        fprintf(stderr, "hearth: serve: out of memory\n");
        return 1;
    }
    s->o = *o;
    s->slots = slots;
    s->tok = tok;
    s->chat = chat;
    s->started = unix_now();
    atomic_init(&s->next_id, 1);
    atomic_init(&s->draining, false);
    for (int i = 0; i < 6; i++)
        atomic_init(&s->http_by_class[i], 0);
    s->d =
        MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, sa,
                         MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_CONNECTION_LIMIT,
                         256u, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (!s->d) {
        fprintf(stderr, "hearth: serve: cannot listen on %s port %d (in use, or not allowed)\n",
                o->host, o->port);
        free(s);
        return 1;
    }
    int port = o->port;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    if (di)
        port = di->port;
    bool v6 = (flags & MHD_USE_IPv6) != 0;
    fprintf(stderr, "hearth: listening on http://%s%s%s:%d\n", v6 ? "[" : "", o->host,
            v6 ? "]" : "", port);
    *out = s;
    return 0;
}

void serve_stop(struct serve_server *s)
{
    if (!s)
        return;
    atomic_store(&s->draining, true);
    /* stop accepting; connections already open keep being served while we drain */
    MHD_quiesce_daemon(s->d);
    bool clean = slots_drain(s->slots, s->o.drain_ms);
    if (!clean)
        fprintf(stderr, "hearth: serve: drain timed out, cancelling running requests\n");
    /* give streams a moment to send their last events before the connections close */
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    MHD_stop_daemon(s->d);
    free(s);
}

#else
typedef int serve_http_unused; /* ISO C forbids an empty translation unit */
#endif
