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

struct cJSON;     /* cjson/cJSON.h, which only the .c files include */
struct js_schema; /* json-schema.h */

#define SERVE_MAX_STOP 4
#define SERVE_MAX_MSGS 1024
#define SERVE_BODY_LIMIT (1u << 20)
#define SERVE_MAX_BIAS 1024 /* logit_bias entries */
#define SERVE_MAX_CHOICES 64 /* prompts x n in one request */
#define SERVE_MAX_TOOLS 128

/* The tags around a tool call (the Hermes convention every chat family gets: serve-tools.c) */
#define SERVE_TOOL_OPEN_TAG "<tool_call>"
#define SERVE_TOOL_CLOSE_TAG "</tool_call>"

/* tool_choice (serve-tools.c) */
enum serve_tool_choice { SERVE_TOOLS_NONE, SERVE_TOOLS_AUTO, SERVE_TOOLS_REQUIRED, SERVE_TOOLS_NAMED };

/* One completions prompt: text, or token ids taken as given. */
struct serve_prompt {
    const char *text; /* NULL for ids */
    int32_t *ids;     /* [n_ids] (malloc'd) */
    size_t n_ids;
};

/* A parsed and validated completion request. Strings point into the cJSON tree. */
struct serve_req {
    bool chat;             /* /v1/chat/completions (else /v1/completions) */
    void *json;            /* the cJSON tree that owns the strings below */
    struct chat_msg *msgs; /* [n_msgs] chat only; malloc'd */
    size_t n_msgs;
    char **parts; /* content arrays joined into owned strings */
    size_t n_parts;
    struct serve_prompt *prompts; /* completions only: [n_prompts] (malloc'd), >= 1 */
    size_t n_prompts;
    int n;              /* choices per prompt (chat: per conversation) */
    bool echo;          /* completions: the prompt leads the text (and its tokens the logprobs) */
    int32_t max_tokens; /* -1: not given; 0 only with echo */
    struct sampler_params sp;
    const char *stop[SERVE_MAX_STOP];
    size_t n_stop;
    bool stream;
    bool include_usage; /* stream_options.include_usage */
    int32_t *bias_ids;  /* [n_bias] logit_bias keys (malloc'd); ids checked by the slots */
    float *bias;        /* [n_bias] their values, in [-100, 100] */
    size_t n_bias;
    bool logprobs;      /* chat's logprobs: true; completions' logprobs: a number */
    int top_logprobs;   /* alternatives per token, 0..SLOTS_MAX_TOP */
    /* chat's tools: the system text offering them (NULL: none offered, or tool_choice
       none), the text that opens the reply (required / named), both malloc'd */
    enum serve_tool_choice tool_choice;
    char *tools_text;
    char *tool_prefill;
    char *tool_names; /* "\nname\n...\n": the offered functions (malloc'd), for bare calls */
    bool one_call;    /* parallel_tool_calls false: the first call only */
    /*
     * A named tool_choice whose arguments are constrained (json_object, or
     * schema compiled from the function's parameters): the reply is the
     * arguments object alone, and the server closes the call.
     */
    bool call_guarded;
    bool json_object; /* response_format json_object: the reply is one JSON object */
    struct js_schema *schema; /* response_format json_schema, compiled (malloc'd); else NULL */
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

/*
 * Field name of root: a string, token ids, or an array of strings or of
 * token-id arrays (never mixed), each non-empty, at most max of them: into
 * *out ([*n_out], calloc'd; strings point into root; free with
 * serve_prompts_free, also after a failure). False with e filled (400
 * naming the field).
 */
bool serve_parse_prompts(const struct cJSON *root, const char *name, int max,
                         struct serve_prompt **out, size_t *n_out, struct serve_error *e);
void serve_prompts_free(struct serve_prompt *p, size_t n);

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

/*
 * The tokens of a response or chunk with their log-probabilities
 * (serve-logprobs.c). text[0..text_len) is the generated text these records'
 * offsets point into, starting at generated byte base_bytes, which is
 * character base_chars counted from the start of the prompt (completions'
 * text_offset).
 */
struct serve_logprobs {
    const struct tokenizer *tok;
    const struct slots_logprob *lp;
    size_t n;
    const char *text;
    size_t text_len;
    size_t base_bytes, base_chars;
};

/* The choice's "logprobs" object, chat's or completions' shape; NULL when out of memory. */
struct cJSON *serve_logprobs_json(bool chat, const struct serve_logprobs *l);
/* Characters (code points) in the UTF-8 text s[0..n). */
size_t serve_utf8_chars(const char *s, size_t n);
/*
 * The echoed prompt: ids[0..n) decoded (no special tokens' text) into *text
 * (malloc'd, NUL-terminated, *len bytes), and where each token's text starts
 * in it (*off, malloc'd [n]). False when out of memory.
 */
bool serve_echo_text(const struct tokenizer *t, const int32_t *ids, size_t n, char **text,
                     size_t *len, size_t **off);

/* "stop" / "length" / NULL (for a chunk that is not the last). */
const char *serve_finish_reason(enum gen_stop stop);
/* One choice of a whole response. lp: NULL for "logprobs": null. */
struct serve_choice_out {
    const char *text;
    const char *finish;
    const struct serve_logprobs *lp;
    const struct cJSON *tool_calls; /* chat: the message's tool_calls (content null if empty) */
};
/* A whole (non-streamed) response with choices c[0..n) (index = position), malloc'd. */
char *serve_response_json(const struct serve_meta *m, const struct serve_choice_out *c, size_t n,
                          size_t n_prompt, size_t n_gen);
/*
 * One streamed chunk of choice `index`, malloc'd, framed as
 * "data: {...}\n\n". role_delta: the choice's first chat chunk (delta
 * carries the role). finish non-NULL: the choice's last chunk. usage: a
 * usage-only chunk (choices empty).
 */
char *serve_chunk_sse(const struct serve_meta *m, int index, const char *text, bool role_delta,
                      const char *finish, bool usage, size_t n_prompt, size_t n_gen,
                      const struct serve_logprobs *lp);
/* A stream chunk whose delta carries choice index's tool_calls (chat), malloc'd. */
char *serve_chunk_tool_calls_sse(const struct serve_meta *m, int index,
                                 const struct cJSON *tool_calls);
/* GET /v1/models, malloc'd. */
char *serve_models_json(const char *model, long long created);

struct tokenizer;

/*
 * Function calling (serve-tools.c). serve_parse_tools reads tools and
 * tool_choice of a chat request into r (tool_choice, tools_text,
 * tool_prefill); false with e filled (400 naming tools or tool_choice).
 */
bool serve_parse_tools(const struct cJSON *root, struct serve_req *r, struct serve_error *e);
/* An assistant message's content with its tool_calls written after it (malloc'd); NULL
   with e filled for a malformed call (message i) or out of memory. */
char *serve_tools_render_calls(const struct cJSON *calls, const char *content, size_t i,
                               struct serve_error *e);
/* A tool message's content as the user turn that carries it (malloc'd; NULL: out of memory). */
char *serve_tools_render_result(const char *content);
/*
 * The tool calls in a reply's text[0..len) (the prefill included), as
 * OpenAI's tool_calls array (ids id_prefix_K), NULL when there is none;
 * *content_len: the bytes of text before them (all of it without calls).
 * Without <tool_call> blocks, a reply that is nothing but a JSON call object
 * or an array of them (the bare form Llama 3.1 and Mistral use, their
 * special tokens dropped from the text) is taken as calls when every name is
 * one of names ("\nname\n...\n"; NULL: never). one: keep the first call only.
 */
struct cJSON *serve_tools_parse(const char *text, size_t len, const char *id_prefix,
                                const char *names, bool one, size_t *content_len);
/* Bytes of text[0..len) that may stream as content: up to a call's opening tag, or up to a
   tail that may become one; nothing while the reply opens with { or [ (a bare call). The
   tag is looked for from `from` on: text before an earlier answer needs no second look. */
size_t serve_tools_safe_len(const char *text, size_t len, size_t from);

/*
 * response_format json_schema (serve-schema.c): compiles schema (a JSON
 * Schema, an object or a boolean) into *out (free with js_schema_free),
 * with the subset and meaning json-schema.h gives. False with e filled and
 * *out zeroed: 400, param "response_format", the message naming the
 * keyword and its JSON pointer path, e.g. "response_format: schema
 * /properties/age: 'minimum' is not supported (hearth enforces type, ...)";
 * 500 server_error when out of memory.
 */
bool serve_schema_compile(const struct cJSON *schema, struct js_schema *out, struct serve_error *e);

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
    enum embd_pool pool; /* /v1/embeddings' pooling (not EMBD_POOL_NONE) */
};

struct serve_server;

/* Starts listening; prints "hearth: listening on http://HOST:PORT" on stderr. */
int serve_start(const struct serve_opts *o, struct slots *slots, const struct tokenizer *tok,
                const struct gen_chat *chat, struct serve_server **out);
/* Stops accepting, drains (opts.drain_ms), closes every connection, frees. */
void serve_stop(struct serve_server *s);

#endif /* HEARTH_WITH_SERVER */

#endif
