/*
 * serve-http: the HTTP side of `hearth serve` on libmicrohttpd: connections,
 * bodies, authentication, routing, metrics. The completion endpoints are in
 * serve-completion.c.
 *
 * MHD runs one thread per connection, so a handler may block while its
 * request generates: a streamed reply is a response from a content-reader
 * callback that waits (slots_req_take) for the engine's next text and frames
 * it as a server-sent event; a whole reply waits in the handler. Waits are
 * sliced in 200 ms and between slices the connection's socket is peeked: a
 * client that hung up is noticed within a slice even while its prompt is
 * still being evaluated, its requests are released (cancelling the
 * generation) and the slot frees at the engine's next step. MHD's
 * request-completed callback releases the requests in every other case (a
 * failed write of a stream, a finished reply).
 *
 * Hostile input: bodies over SERVE_BODY_LIMIT get 413 (before any upload when
 * Content-Length declares it; at the end of a chunked body otherwise, nothing
 * past the limit buffered); JSON errors, wrong types and ranges get
 * 400 with an OpenAI error object; a wrong or missing API key 401 (compared in
 * constant time); unknown paths 404, wrong methods 405, a full queue 503. No
 * path or field is ever used to open a file: the page is compiled in.
 */
#include "serve-internal.h"

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

static long long unix_now(void)
{
    return (long long)time(NULL);
}

/* ---- responses ------------------------------------------------------------------ */

enum MHD_Result serve__send_buf(struct MHD_Connection *c, struct serve_server *s, int status,
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

enum MHD_Result serve__send_json(struct MHD_Connection *c, struct serve_server *s, int status,
                                 char *json)
{
    if (!json)
        return MHD_NO;
    return serve__send_buf(c, s, status, "application/json", json, strlen(json));
}

enum MHD_Result serve__send_error(struct MHD_Connection *c, struct serve_server *s,
                                  const struct serve_error *e)
{
    return serve__send_json(c, s, e->http, serve_error_json(e));
}

static enum MHD_Result fail(struct MHD_Connection *c, struct serve_server *s, int http,
                            const char *type, const char *param, const char *code, const char *msg)
{
    struct serve_error e;
    serve_error_set(&e, http, type, param, code, "%s", msg);
    return serve__send_error(c, s, &e);
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
bool serve__peer_gone(MHD_socket fd)
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
        "# HELP hearth_requests_total Completions (one per choice) accepted into the queue.\n"
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
        "# HELP hearth_embeddings_total Texts embedded (/v1/embeddings inputs).\n"
        "# TYPE hearth_embeddings_total counter\nhearth_embeddings_total %llu\n"
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
        (unsigned long long)st.n_gen_tokens, (unsigned long long)st.n_embeddings, st.gen_tps, (unsigned long long)st.n_steps, st.busy_s,
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
    return serve__send_buf(c, s, 200, "text/plain; version=0.0.4", b, (size_t)n);
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
        return serve__send_buf(c, s, 200, "text/html; charset=utf-8", page, serve_page_len);
    }
    if (!strcmp(url, "/health")) {
        if (!get)
            return fail(c, s, 405, "invalid_request_error", NULL, "method_not_allowed",
                        "use GET for /health");
        if (atomic_load(&s->draining))
            return serve__send_json(c, s, 503, strdup("{\"status\":\"shutting down\"}"));
        return serve__send_json(c, s, 200, strdup("{\"status\":\"ok\"}"));
    }
    bool is_chat = !strcmp(url, "/v1/chat/completions"), is_cmpl = !strcmp(url, "/v1/completions");
    bool is_models = !strcmp(url, "/v1/models"), is_metrics = !strcmp(url, "/metrics");
    bool is_tok = !strcmp(url, "/tokenize"), is_detok = !strcmp(url, "/detokenize");
    bool is_tmpl = !strcmp(url, "/apply-template"), is_embd = !strcmp(url, "/v1/embeddings");
    if (!is_chat && !is_cmpl && !is_models && !is_metrics && !is_tok && !is_detok && !is_tmpl &&
        !is_embd) {
        struct serve_error e;
        serve_error_set(&e, 404, "invalid_request_error", NULL, "not_found",
                        "no such endpoint: %.200s", url);
        return serve__send_error(c, s, &e);
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
        return serve__send_json(c, s, 200, serve_models_json(s->o.model_name, s->started));
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
            return serve__send_error(c, s, &e);
        return serve__send_json(c, s, 200, out);
    }
    if (is_tmpl)
        return serve__apply_template(c, s, cn);
    if (atomic_load(&s->draining))
        return fail(c, s, 503, "server_error", NULL, "shutting_down",
                    "the server is shutting down");
    if (is_embd)
        return serve__embeddings(c, s, cn);
    return serve__completion(c, s, cn, is_chat);
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
    serve__free_choices(cn);
    free(cn->out);
    free(cn->body);
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
