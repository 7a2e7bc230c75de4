/*
 * serve-internal: what serve-http.c (the libmicrohttpd plumbing: connections,
 * bodies, authentication, routing, metrics), serve-completion.c (the
 * completion endpoints: requests to slots, whole and streamed replies) and
 * serve-embed.c (embeddings) share.
 */
#ifndef HEARTH_TOOLS_SERVE_INTERNAL_H
#define HEARTH_TOOLS_SERVE_INTERNAL_H

#include "serve.h"

#ifdef HEARTH_WITH_SERVER

#include <microhttpd.h>
#include <stdatomic.h>

#define SERVE_SLICE_MS 200
#define SERVE_KEEPALIVE_MS 15000

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

/* One choice of a completion: a slots request and what has been sent of it. */
struct serve_choice {
    struct slots_req *req;
    struct slots_result res;
    bool role_sent, echoed, finished;
    /* the generated text streamed so far, in bytes and in characters from the start of
       the prompt (completions' text_offset) */
    size_t sent_bytes, sent_chars;
    /* echo, or a prompt of ids: the decoded prompt, where each prompt token starts in it */
    char *echo_text;
    size_t echo_len;
    size_t *echo_off;
    /* a whole reply, or a stream with tools: text (after the tool prefill) and records
       gathered */
    char *text;
    size_t len;
    struct slots_logprob *lp;
    size_t n_lp;
    /* a stream with tools: content bytes of text sent; what is due at the end (0: text,
       1: the tool calls, 2: the end after calls, 3: the end without) */
    size_t t_sent;
    int t_stage;
    bool closed_call; /* call_guarded: the call's closing was appended to text */
    struct cJSON *calls;
};

/* Per connection (MHD's con_cls). */
struct conn {
    struct serve_server *srv;
    char *body;
    size_t len, cap;
    bool too_large;
    size_t discarded; /* body bytes dropped after crossing the limit */
    /* a running completion: n_ch choices */
    struct serve_choice *ch;
    int n_ch;
    int per_prompt; /* choices per prompt (the request's n) */
    struct serve_meta meta;
    char id[48];
    bool include_usage, logprobs, echo;
    bool tools;       /* chat with tools offered: replies are scanned for calls */
    char *tool_names; /* serve_req.tool_names, for bare calls (owned) */
    bool one_call;    /* parallel_tool_calls false */
    bool call_guarded; /* serve_req.call_guarded: a choice ending its arguments gets the closing */
    MHD_socket fd;
    /* stream state: pending bytes of the current event */
    char *out;
    size_t out_len, out_off;
    int phase; /* 0: role chunks due (chat), 1: text, 2: all ended, 3: [DONE] sent, 4: usage sent */
    int next;  /* the choice a stream looks at first (round robin) */
};

enum MHD_Result serve__send_buf(struct MHD_Connection *c, struct serve_server *s, int status,
                                const char *type, char *body, size_t len);
enum MHD_Result serve__send_json(struct MHD_Connection *c, struct serve_server *s, int status,
                                 char *json);
enum MHD_Result serve__send_error(struct MHD_Connection *c, struct serve_server *s,
                                  const struct serve_error *e);
/* True when the peer closed its end (an orderly shutdown or a reset). */
bool serve__peer_gone(MHD_socket fd);

/* POST /v1/chat/completions (chat) and /v1/completions (serve-completion.c). */
enum MHD_Result serve__completion(struct MHD_Connection *c, struct serve_server *s,
                                  struct conn *cn, bool chat);
/*
 * POST /apply-template (llama.cpp's server's endpoint): a chat request's
 * messages (and tools) rendered as the prompt the model would get,
 * {"prompt": text}, without generating.
 */
enum MHD_Result serve__apply_template(struct MHD_Connection *c, struct serve_server *s,
                                      struct conn *cn);
/* POST /v1/embeddings (serve-embed.c). */
enum MHD_Result serve__embeddings(struct MHD_Connection *c, struct serve_server *s,
                                  struct conn *cn);
/* Releases the choices' requests (cancelling what still runs) and frees them. */
void serve__free_choices(struct conn *cn);

#endif /* HEARTH_WITH_SERVER */

#endif
