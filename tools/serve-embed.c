/*
 * serve-embed: POST /v1/embeddings, in OpenAI's shape.
 *
 * Each input is one slots request with pooling (slots.h): the engine
 * evaluates its tokens in the same batched steps as everyone's generation
 * and pools the final norm's output rows into one vector. Every input is
 * checked and tokenized first, so a bad one is a 400 before any work. Then
 * at most n_slots of the request's inputs are in the engine at a time: a
 * 2,048-input request (OpenAI's limit, what RAG indexers send) needs neither
 * 2,048 queue places nor shuts other clients out, since its requests queue
 * behind theirs. Only the first input can be refused (503, like a
 * completion); later ones wait for a queue place, watching the client.
 *
 * Vectors are L2-normalized, as OpenAI's are (cosine similarity becomes a
 * dot product), after keeping the first `dimensions` values when that is
 * asked (models trained Matryoshka-style, such as Qwen3-Embedding, keep
 * their quality in a prefix). Floats are written with 9 significant digits,
 * which gives back the exact float32; "base64" is the float32 bytes, little
 * endian, which is what the official openai client asks for by default.
 */
#include "serve-internal.h"

#ifdef HEARTH_WITH_SERVER

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "embed.h"
#include "err.h"
#include "strbuf.h"

#define SERVE_MAX_INPUTS 2048

struct embed_req {
    cJSON *json; /* owns the input strings */
    struct serve_prompt *in;
    size_t n_in;
    bool base64;
    int dims; /* 0: all */
};

/* One input's state: its ids until it is queued, then its request. */
struct embed_item {
    int32_t *ids;
    size_t n_ids;
    struct slots_req *req;
    bool done;
};

static bool embed_bad(struct serve_error *e, const char *param, const char *msg)
{
    serve_error_set(e, 400, "invalid_request_error", param, NULL, "%s", msg);
    return false;
}

static bool parse_embed(const struct conn *cn, int n_embd, struct embed_req *r,
                        struct serve_error *e)
{
    memset(r, 0, sizeof *r);
    r->json = cJSON_ParseWithLength(cn->body ? cn->body : "", cn->len);
    if (!r->json) {
        serve_error_set(e, 400, "invalid_request_error", NULL, NULL,
                        "the body is not valid JSON (%zu bytes)", cn->len);
        return false;
    }
    if (!cJSON_IsObject(r->json))
        return embed_bad(e, NULL, "the body must be a JSON object");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(r->json, "model");
    if (model && !cJSON_IsString(model))
        return embed_bad(e, "model", "'model' must be a string");
    if (!serve_parse_prompts(r->json, "input", SERVE_MAX_INPUTS, &r->in, &r->n_in, e))
        return false;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(r->json, "encoding_format");
    if (fmt && !cJSON_IsNull(fmt)) {
        if (!cJSON_IsString(fmt) ||
            (strcmp(fmt->valuestring, "float") && strcmp(fmt->valuestring, "base64")))
            return embed_bad(e, "encoding_format",
                             "'encoding_format' must be \"float\" or \"base64\"");
        r->base64 = !strcmp(fmt->valuestring, "base64");
    }
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(r->json, "dimensions");
    if (dims && !cJSON_IsNull(dims)) {
        double v = cJSON_IsNumber(dims) ? dims->valuedouble : 0;
        if (!(v >= 1 && v <= n_embd && floor(v) == v)) {
            serve_error_set(e, 400, "invalid_request_error", "dimensions", NULL,
                            "'dimensions' must be an integer in [1, %d] (the model's width)",
                            n_embd);
            return false;
        }
        r->dims = (int)v;
    }
    return true;
}

static void embed_req_free(struct embed_req *r)
{
    serve_prompts_free(r->in, r->n_in);
    cJSON_Delete(r->json);
}

static void items_free(struct embed_item *it, size_t n)
{
    for (size_t i = 0; it && i < n; i++) {
        slots_req_release(it[i].req);
        free(it[i].ids);
    }
    free(it);
}

/* Tokenizes every input and checks its ids and its length against a slot's context. */
static bool tokenize_inputs(struct serve_server *s, const struct embed_req *r,
                            struct embed_item *it, struct serve_error *e)
{
    const uint32_t n_ctx = slots_n_ctx(s->slots);
    for (size_t i = 0; i < r->n_in; i++) {
        const struct serve_prompt *p = &r->in[i];
        err_clear();
        hearth_status st = HEARTH_OK;
        if (p->text)
            st = gen_tokenize_prompt(s->tok, p->text, strlen(p->text), false, &it[i].ids,
                                     &it[i].n_ids);
        else if ((it[i].ids = malloc(p->n_ids * sizeof *it[i].ids)))
            memcpy(it[i].ids, p->ids, (it[i].n_ids = p->n_ids) * sizeof *it[i].ids);
        else
            st = err_set(HEARTH_ERR_NO_MEMORY, "input: out of memory");
        if (st != HEARTH_OK) {
            bool bad = st == HEARTH_ERR_INVALID_ARG;
            serve_error_set(e, bad ? 400 : 500, bad ? "invalid_request_error" : "server_error",
                            "input", NULL, "input %zu: %s", i, hearth_last_error());
            return false;
        }
        for (size_t j = 0; j < it[i].n_ids; j++)
            if (it[i].ids[j] >= slots_n_vocab(s->slots)) {
                serve_error_set(e, 400, "invalid_request_error", "input", NULL,
                                "input %zu: token %zu is id %d, outside [0, %d)", i, j,
                                (int)it[i].ids[j], (int)slots_n_vocab(s->slots));
                return false;
            }
        if (it[i].n_ids == 0 || it[i].n_ids >= n_ctx) {
            serve_error_set(e, 400, "invalid_request_error", "input",
                            it[i].n_ids ? "context_length_exceeded" : NULL,
                            "input %zu has %zu tokens; a slot's context holds %u (at most %u "
                            "for one input, at least 1)",
                            i, it[i].n_ids, n_ctx, n_ctx - 1);
            return false;
        }
    }
    return true;
}

/* Input i's slots request, queued. 0: queued; 1: the queue is full; -1: e is filled. */
static int queue_input(struct serve_server *s, struct embed_item *it, size_t i,
                       struct serve_error *e)
{
    if (!it->req) {
        struct slots_req_params p;
        memset(&p, 0, sizeof p);
        p.prompt = it->ids;
        p.n_prompt = it->n_ids;
        p.pool = s->o.pool;
        sampler_params_default(&p.sp);
        err_clear();
        if (slots_req_create(s->slots, &p, &it->req) != HEARTH_OK) {
            serve_error_set(e, 500, "server_error", "input", NULL, "input %zu: %s", i,
                            hearth_last_error());
            return -1;
        }
    }
    enum slots_admit a = slots_submit(s->slots, it->req);
    if (a == SLOTS_QUEUED)
        return 0;
    if (a == SLOTS_FULL)
        return 1;
    serve_error_set(e, 503, "server_error", NULL, "shutting_down", "the server is shutting down");
    return -1;
}

static bool queue_has_room(struct serve_server *s)
{
    struct slots_stats st;
    slots_get_stats(s->slots, &st);
    return st.n_queued < st.max_queue;
}

/*
 * Runs every input through the slots, at most n_slots at a time. False with
 * e filled, or with e->http 0 when the client went away.
 */
static bool run_inputs(struct serve_server *s, struct conn *cn, struct embed_item *it, size_t n,
                       struct serve_error *e)
{
    struct slots_stats st;
    slots_get_stats(s->slots, &st);
    const size_t window = (size_t)st.n_slots;
    size_t next = 0, n_done = 0;
    while (n_done < n) {
        while (next < n && next - n_done < window) {
            /* a later input waits for a place instead of being refused (and counted so) */
            if (next > 0 && !queue_has_room(s))
                break;
            int q = queue_input(s, &it[next], next, e);
            if (q < 0)
                return false;
            if (q == 1 && next == 0) {
                serve_error_set(e, 503, "server_error", NULL, "server_busy",
                                "the server is busy: every slot and queue place is taken, "
                                "retry later");
                return false;
            }
            if (q == 1)
                break; /* wait for a place, as the inputs before it finish */
            next++;
        }
        size_t wait_on = n_done; /* the oldest input still running */
        while (wait_on < next && it[wait_on].done)
            wait_on++;
        if (wait_on == next) /* none running: the queue was full, wait for it to move */
            nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
        for (size_t i = n_done; i < next; i++) {
            if (it[i].done)
                continue;
            size_t len = 0;
            struct slots_result res;
            free(slots_req_take(it[i].req, i == wait_on ? SERVE_SLICE_MS : 0, &len, &res, NULL,
                                NULL));
            it[i].done = res.done;
        }
        while (n_done < next && it[n_done].done)
            n_done++;
        if (serve__peer_gone(cn->fd)) {
            e->http = 0;
            return false;
        }
    }
    return true;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* v[0..n) as float32 little-endian bytes in base64 (RFC 4648, padded). */
static void put_base64(struct strbuf *b, const float *v, int n)
{
    const size_t nb = (size_t)n * 4;
    char quad[4];
    uint8_t in[3];
    for (size_t i = 0; i < nb; i += 3) {
        size_t k = 0;
        for (; k < 3 && i + k < nb; k++) {
            uint32_t u;
            memcpy(&u, &v[(i + k) / 4], 4);
            in[k] = (uint8_t)(u >> (8 * ((i + k) % 4)));
        }
        for (size_t j = k; j < 3; j++)
            in[j] = 0;
        quad[0] = b64[in[0] >> 2];
        quad[1] = b64[(in[0] & 3) << 4 | in[1] >> 4];
        quad[2] = k > 1 ? b64[(in[1] & 15) << 2 | in[2] >> 6] : '=';
        quad[3] = k > 2 ? b64[in[2] & 63] : '=';
        strbuf_add(b, quad, 4);
    }
}

/* One "data" entry: the vector cut to dims and normalized. */
static void put_embedding(struct strbuf *b, size_t index, float *v, int dims, bool base64)
{
    embd_normalize(v, (size_t)dims);
    char num[32];
    snprintf(num, sizeof num, "%zu", index);
    strbuf_puts(b, index ? ",{\"object\":\"embedding\",\"index\":"
                         : "{\"object\":\"embedding\",\"index\":");
    strbuf_puts(b, num);
    strbuf_puts(b, base64 ? ",\"embedding\":\"" : ",\"embedding\":[");
    if (base64)
        put_base64(b, v, dims);
    for (int j = 0; !base64 && j < dims; j++) {
        snprintf(num, sizeof num, j ? ",%.9g" : "%.9g", (double)v[j]);
        strbuf_puts(b, num);
    }
    strbuf_puts(b, base64 ? "\"}" : "]}");
}

/* The reply: every vector, the model, and usage; NULL when out of memory or an input failed. */
static char *reply_json(struct serve_server *s, const struct embed_req *r, struct embed_item *it,
                        struct serve_error *e)
{
    const int n_embd = slots_n_embd(s->slots), dims = r->dims ? r->dims : n_embd;
    float *v = malloc((size_t)n_embd * sizeof *v);
    struct strbuf b = {0};
    size_t n_tok = 0;
    strbuf_puts(&b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; v && i < r->n_in; i++) {
        bool finite = slots_req_embedding(it[i].req, v);
        for (int j = 0; finite && j < n_embd; j++)
            finite = isfinite(v[j]);
        if (!finite) {
            serve_error_set(e, 500, "server_error", NULL, NULL,
                            "input %zu: the engine gave no finite embedding", i);
            free(v);
            free(strbuf_take(&b));
            return NULL;
        }
        put_embedding(&b, i, v, dims, r->base64);
        n_tok += it[i].n_ids;
    }
    free(v);
    cJSON *model = cJSON_CreateString(s->o.model_name);
    char *model_json = model ? cJSON_PrintUnformatted(model) : NULL;
    cJSON_Delete(model);
    char tail[96];
    snprintf(tail, sizeof tail, ",\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu}}", n_tok,
             n_tok);
    strbuf_puts(&b, "],\"model\":");
    strbuf_puts(&b, model_json ? model_json : "\"\"");
    strbuf_puts(&b, tail);
    free(model_json);
    char *json = strbuf_take(&b);
    if (!json)
        serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return json;
}

enum MHD_Result serve__embeddings(struct MHD_Connection *mc, struct serve_server *s,
                                  struct conn *cn)
{
    struct embed_req r;
    struct serve_error e;
    struct embed_item *it = NULL;
    char *json = NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    cn->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;
    bool ok = parse_embed(cn, slots_n_embd(s->slots), &r, &e);
    if (ok && !(it = calloc(r.n_in, sizeof *it))) {
        serve_error_set(&e, 500, "server_error", NULL, NULL, "out of memory");
        ok = false;
    }
    ok = ok && tokenize_inputs(s, &r, it, &e) && run_inputs(s, cn, it, r.n_in, &e) &&
         (json = reply_json(s, &r, it, &e));
    items_free(it, it ? r.n_in : 0);
    embed_req_free(&r);
    if (ok)
        return serve__send_json(mc, s, 200, json);
    if (e.http == 0)
        return MHD_NO; /* the client went away: close the connection */
    return serve__send_error(mc, s, &e);
}

#else
typedef int serve_embed_unused; /* ISO C forbids an empty translation unit */
#endif
