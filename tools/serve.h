/*
 * serve: the pieces of `hearth serve` (tools/cmd-serve.c: flags, set-up,
 * signals; tools/serve-http.c: the libmicrohttpd handlers; tools/serve-json.c:
 * request parsing and validation, response and error objects with cJSON).
 * The engine behind them is core/slots.h.
 *
 * serve-http.c and serve-json.c compile to nothing unless the build found
 * libmicrohttpd and libcjson (HEARTH_WITH_SERVER); cmd-serve.c then explains
 * that the server was not built.
 */
#ifndef HEARTH_TOOLS_SERVE_H
#define HEARTH_TOOLS_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The chat page (tools/serve-page.html), embedded by CMake as bytes. */
extern const unsigned char serve_page_html[];
extern const size_t serve_page_len;

int cmd_serve(int argc, char **argv);

#ifdef HEARTH_WITH_SERVER

#include "generate.h"
#include "sampler.h"
#include "slots.h"

#define SERVE_MAX_STOP 4
#define SERVE_MAX_MSGS 1024
#define SERVE_BODY_LIMIT (1u << 20)
#define SERVE_MAX_BIAS 1024 /* logit_bias entries */

/* A parsed and validated completion request. Strings point into the cJSON tree. */
struct serve_req {
    bool chat;             /* /v1/chat/completions (else /v1/completions) */
    void *json;            /* the cJSON tree that owns the strings below */
    struct chat_msg *msgs; /* [n_msgs] chat only; malloc'd */
    size_t n_msgs;
    char **parts; /* content arrays joined into owned strings */
    size_t n_parts;
    const char *prompt; /* completions only */
    int32_t max_tokens; /* -1: not given */
    struct sampler_params sp;
    const char *stop[SERVE_MAX_STOP];
    size_t n_stop;
    bool stream;
    bool include_usage; /* stream_options.include_usage */
    int32_t *bias_ids;  /* [n_bias] logit_bias keys (malloc'd); ids checked by the slots */
    float *bias;        /* [n_bias] their values, in [-100, 100] */
    size_t n_bias;
};

/* An OpenAI-style error: HTTP status, message, the offending field (or NULL), code. */
struct serve_error {
    int http;
    char message[512];
    const char *param;
    const char *type;
    const char *code;
};

/*
 * Parses body[0..len) of a chat (chat true) or completions request. Returns
 * true and fills r (free it with serve_req_free), or false with e filled
 * (400 naming the field).
 */
bool serve_parse_request(const char *body, size_t len, bool chat, struct serve_req *r,
                         struct serve_error *e);
void serve_req_free(struct serve_req *r);

/* {"error":{"message","type","param","code"}}, malloc'd. */
char *serve_error_json(const struct serve_error *e);
/* Sets e (printf-style message). */
void serve_error_set(struct serve_error *e, int http, const char *type, const char *param,
                     const char *code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

/* What a response needs besides the text. */
struct serve_meta {
    bool chat;
    const char *id;    /* "chatcmpl-..." / "cmpl-..." */
    long long created; /* unix seconds */
    const char *model;
};

/* "stop" / "length" / NULL (for a chunk that is not the last). */
const char *serve_finish_reason(enum gen_stop stop);
/* A whole (non-streamed) response, malloc'd. */
char *serve_response_json(const struct serve_meta *m, const char *text, const char *finish,
                          size_t n_prompt, size_t n_gen);
/*
 * One streamed chunk, malloc'd, framed as "data: {...}\n\n". role_delta:
 * the first chat chunk (delta carries the role). finish non-NULL: the last
 * chunk. usage: a usage-only chunk (choices empty).
 */
char *serve_chunk_sse(const struct serve_meta *m, const char *text, bool role_delta,
                      const char *finish, bool usage, size_t n_prompt, size_t n_gen);
/* GET /v1/models, malloc'd. */
char *serve_models_json(const char *model, long long created);

struct tokenizer;
/*
 * POST /tokenize and /detokenize (serve-tokenize.c): body[0..len) in, the
 * response JSON (malloc'd) in *out; false with e filled (400 naming the
 * field, 500 out of memory).
 */
bool serve_tokenize(const struct tokenizer *t, const char *body, size_t len, char **out,
                    struct serve_error *e);
bool serve_detokenize(const struct tokenizer *t, const char *body, size_t len, char **out,
                      struct serve_error *e);

/* The server (serve-http.c). */
struct serve_opts {
    const char *host;
    int port;               /* 0: any free port (printed) */
    const char *api_key;    /* NULL: no authentication */
    const char *model_name; /* shown in responses and /v1/models */
    int default_max_tokens;
    int drain_ms; /* on SIGINT/SIGTERM: wait this long for running requests */
};

struct serve_server;

/* Starts listening; prints "hearth: listening on http://HOST:PORT" on stderr. */
int serve_start(const struct serve_opts *o, struct slots *slots, const struct tokenizer *tok,
                const struct gen_chat *chat, struct serve_server **out);
/* Stops accepting, drains (opts.drain_ms), closes every connection, frees. */
void serve_stop(struct serve_server *s);

#endif /* HEARTH_WITH_SERVER */

#endif
