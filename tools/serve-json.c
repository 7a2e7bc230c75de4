/*
 * serve-json: the JSON of `hearth serve`: parsing and validating OpenAI
 * chat / completions requests, and building responses, stream chunks and
 * error objects (cJSON).
 *
 * Validation is strict where a wrong value would silently change behaviour
 * (types, ranges, unknown roles) and lenient where OpenAI clients
 * send fields hearth has no use for (user, response_format text, tools...):
 * unknown fields are ignored. logit_bias is applied (sampler_set_bias);
 * logprobs, top_logprobs and echo are honoured (serve-logprobs.c);
 * response_format json_object and json_schema constrain the reply (a schema
 * hearth cannot enforce is refused, not ignored: serve-schema.c). Every
 * refusal names the field in `param`, as OpenAI does. Ranges follow the OpenAI API
 * (temperature 0..2, penalties -2..2) plus hearth's own sampler fields
 * (top_k, min_p, repeat_penalty).
 */
#include "serve.h"

#ifdef HEARTH_WITH_SERVER

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-schema.h"

void serve_error_set(struct serve_error *e, int http, const char *type, const char *param,
                     const char *code, const char *fmt, ...)
{
    e->http = http;
    e->type = type;
    e->param = param;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

static bool bad(struct serve_error *e, const char *param, const char *fmt, const char *what)
{
    serve_error_set(e, 400, "invalid_request_error", param, NULL, fmt, what);
    return false;
}

char *serve_error_json(const struct serve_error *e)
{
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    if (!err) {
        cJSON_Delete(root);
        return NULL;
    }
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", e->type ? e->type : "invalid_request_error");
    if (e->param)
        cJSON_AddStringToObject(err, "param", e->param);
    else
        cJSON_AddNullToObject(err, "param");
    if (e->code)
        cJSON_AddStringToObject(err, "code", e->code);
    else
        cJSON_AddNullToObject(err, "code");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* A number field in [lo, hi] (absent: unchanged). */
static bool get_num(const cJSON *root, const char *name, double lo, double hi, double *out,
                    struct serve_error *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        serve_error_set(e, 400, "invalid_request_error", name, NULL, "'%s' must be a number", name);
        return false;
    }
    if (v->valuedouble < lo || v->valuedouble > hi) {
        serve_error_set(e, 400, "invalid_request_error", name, NULL,
                        "'%s' is %g, expected a number in [%g, %g]", name, v->valuedouble, lo, hi);
        return false;
    }
    *out = v->valuedouble;
    return true;
}

/* An integer field in [lo, hi] (absent: unchanged, *given false). */
static bool get_int(const cJSON *root, const char *name, double lo, double hi, long long *out,
                    bool *given, struct serve_error *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (given)
        *given = false;
    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        floor(v->valuedouble) != v->valuedouble) {
        serve_error_set(e, 400, "invalid_request_error", name, NULL, "'%s' must be an integer",
                        name);
        return false;
    }
    if (v->valuedouble < lo || v->valuedouble > hi) {
        serve_error_set(e, 400, "invalid_request_error", name, NULL,
                        "'%s' is %.0f, expected an integer in [%.0f, %.0f]", name, v->valuedouble,
                        lo, hi);
        return false;
    }
    *out = (long long)v->valuedouble;
    if (given)
        *given = true;
    return true;
}

static bool get_bool(const cJSON *root, const char *name, bool *out, struct serve_error *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsBool(v))
        return bad(e, name, "'%s' must be a boolean", name);
    *out = cJSON_IsTrue(v);
    return true;
}

/* Keeps a string the request owns (freed with it); false when out of memory (s freed). */
static bool own(struct serve_req *r, char *s, struct serve_error *e)
{
    char **grown = s ? realloc(r->parts, (r->n_parts + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(s);
        serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    r->parts = grown;
    r->parts[r->n_parts++] = s;
    return true;
}

/* Content as a string, or an array of {"type":"text","text":...} parts joined. */
static bool get_content(struct serve_req *r, const cJSON *c, size_t i, const char **out,
                        struct serve_error *e)
{
    if (cJSON_IsString(c)) {
        *out = c->valuestring;
        return true;
    }
    if (!cJSON_IsArray(c)) {
        serve_error_set(e, 400, "invalid_request_error", "messages", NULL,
                        "messages[%zu].content must be a string or an array of text parts", i);
        return false;
    }
    size_t total = 1;
    const cJSON *part;
    cJSON_ArrayForEach(part, c)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text)) {
            serve_error_set(e, 400, "invalid_request_error", "messages", NULL,
                            "messages[%zu].content: only parts {\"type\":\"text\",\"text\":...} "
                            "are supported",
                            i);
            return false;
        }
        total += strlen(text->valuestring);
    }
    char *joined = malloc(total);
    if (!own(r, joined, e))
        return false;
    size_t at = 0;
    cJSON_ArrayForEach(part, c)
    {
        const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        size_t n = strlen(t);
        memcpy(joined + at, t, n);
        at += n;
    }
    joined[at] = '\0';
    *out = joined;
    return true;
}

static bool parse_messages(const cJSON *root, struct serve_req *r, struct serve_error *e)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!msgs)
        return bad(e, "messages", "'%s' is required", "messages");
    if (!cJSON_IsArray(msgs))
        return bad(e, "messages", "'%s' must be an array of messages", "messages");
    int n = cJSON_GetArraySize(msgs);
    if (n < 1)
        return bad(e, "messages", "'%s' must hold at least one message", "messages");
    if (n > SERVE_MAX_MSGS) {
        serve_error_set(e, 400, "invalid_request_error", "messages", NULL,
                        "%d messages, at most %d", n, SERVE_MAX_MSGS);
        return false;
    }
    r->msgs = calloc((size_t)n, sizeof *r->msgs);
    if (!r->msgs) {
        serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    static const char *const roles[] = {"system", "user", "assistant", "developer", "tool"};
    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            serve_error_set(e, 400, "invalid_request_error", "messages", NULL,
                            "messages[%zu] must be an object with a string 'role'", i);
            return false;
        }
        const char *rs = NULL;
        for (size_t k = 0; k < sizeof roles / sizeof roles[0]; k++)
            if (!strcmp(role->valuestring, roles[k]))
                rs = k == 3 ? "system" : roles[k]; /* OpenAI's newer name for system */
        if (!rs) {
            serve_error_set(e, 400, "invalid_request_error", "messages", NULL,
                            "messages[%zu].role is '%.64s', expected system, user, assistant or "
                            "tool",
                            i, role->valuestring);
            return false;
        }
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        bool has_calls = !strcmp(rs, "assistant") && cJSON_IsArray(calls) && calls->child;
        if (calls && !cJSON_IsNull(calls) && !cJSON_IsArray(calls)) {
            serve_error_set(e, 400, "invalid_request_error", "messages", NULL,
                            "messages[%zu].tool_calls must be an array", i);
            return false;
        }
        if (!content || (cJSON_IsNull(content) && !has_calls)) {
            serve_error_set(e, 400, "invalid_request_error", "messages", NULL,
                            "messages[%zu].content is required", i);
            return false;
        }
        r->msgs[i].role = rs;
        r->msgs[i].content = NULL;
        if (!cJSON_IsNull(content) && !get_content(r, content, i, &r->msgs[i].content, e))
            return false;
        if (has_calls) {
            /* the calls the model made, written back as it would have written them */
            char *t = serve_tools_render_calls(calls, r->msgs[i].content, i, e);
            if (!t || !own(r, t, e))
                return false;
            r->msgs[i].content = t;
        } else if (!strcmp(rs, "tool")) {
            char *t = serve_tools_render_result(r->msgs[i].content);
            if (!own(r, t, e))
                return false;
            r->msgs[i].role = "user"; /* every family has a user turn; not all a tool role */
            r->msgs[i].content = t;
        }
        i++;
    }
    r->n_msgs = i;
    return true;
}

/* An array of token ids (integers in [0, 2^31)), non-empty, into pr; name: the field. */
static bool parse_prompt_ids(const cJSON *p, const char *name, struct serve_prompt *pr,
                             struct serve_error *e)
{
    int n = cJSON_GetArraySize(p);
    if (n == 0)
        return bad(e, name, "'%s' must not be empty", name);
    pr->ids = malloc((size_t)n * sizeof *pr->ids);
    if (!pr->ids) {
        serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, p)
    {
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (!isfinite(v) || v < 0 || v > INT32_MAX || floor(v) != v)
            return bad(e, name, "'%s' token ids must be integers in [0, 2^31)", name);
        pr->ids[pr->n_ids++] = (int32_t)v;
    }
    return true;
}

/* One prompt: a non-empty string or an array of token ids. */
static bool parse_one_prompt(const cJSON *p, const char *name, struct serve_prompt *pr,
                             struct serve_error *e)
{
    if (cJSON_IsArray(p))
        return parse_prompt_ids(p, name, pr, e);
    if (!cJSON_IsString(p))
        return bad(e, name, "'%s' must be a string, token ids, or an array of those", name);
    if (!p->valuestring[0])
        return bad(e, name, "'%s' must not be empty", name);
    pr->text = p->valuestring;
    return true;
}

bool serve_parse_prompts(const cJSON *root, const char *name, int max, struct serve_prompt **out,
                         size_t *n_out, struct serve_error *e)
{
    *out = NULL;
    *n_out = 0;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!p)
        return bad(e, name, "'%s' is required", name);
    bool many = cJSON_IsArray(p) && (cJSON_IsString(p->child) || cJSON_IsArray(p->child));
    int n = many ? cJSON_GetArraySize(p) : 1;
    if (n > max) {
        serve_error_set(e, 400, "invalid_request_error", name, NULL,
                        "'%s' holds %d texts, more than the %d a request may have", name, n, max);
        return false;
    }
    struct serve_prompt *pr = calloc((size_t)n, sizeof *pr);
    if (!pr) {
        serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    *out = pr;
    if (!many) {
        *n_out = 1;
        return parse_one_prompt(p, name, &pr[0], e);
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, p)
    {
        /* all strings or all id arrays, as OpenAI takes them */
        if (cJSON_IsString(it) != cJSON_IsString(p->child))
            return bad(e, name, "'%s' mixes strings and token-id arrays", name);
        if (!parse_one_prompt(it, name, &pr[(*n_out)++], e))
            return false;
    }
    return true;
}

void serve_prompts_free(struct serve_prompt *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(p[i].ids);
    free(p);
}

static bool parse_stop(const cJSON *root, struct serve_req *r, struct serve_error *e)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!s || cJSON_IsNull(s))
        return true;
    if (cJSON_IsString(s)) {
        if (s->valuestring[0])
            r->stop[r->n_stop++] = s->valuestring;
        return true;
    }
    if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) > SERVE_MAX_STOP)
        return bad(e, "stop", "'%s' must be a string or an array of at most 4 strings", "stop");
    const cJSON *it;
    cJSON_ArrayForEach(it, s)
    {
        if (!cJSON_IsString(it))
            return bad(e, "stop", "'%s' must be a string or an array of at most 4 strings", "stop");
        if (it->valuestring[0])
            r->stop[r->n_stop++] = it->valuestring;
    }
    return true;
}

/*
 * logit_bias: {"token id": bias in [-100, 100]}, at most SERVE_MAX_BIAS
 * entries. The ids' range is the vocabulary's, checked where it is known
 * (slots_req_create, via sampler_set_bias).
 */
static bool parse_logit_bias(const cJSON *root, struct serve_req *r, struct serve_error *e)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "logit_bias");
    if (!b || cJSON_IsNull(b))
        return true;
    if (!cJSON_IsObject(b))
        return bad(e, "logit_bias", "'%s' must be an object mapping token ids to numbers",
                   "logit_bias");
    int n = cJSON_GetArraySize(b);
    if (n > SERVE_MAX_BIAS)
        return bad(e, "logit_bias", "'%s' has more than 1024 entries", "logit_bias");
    if (n == 0)
        return true;
    r->bias_ids = malloc((size_t)n * sizeof *r->bias_ids);
    r->bias = malloc((size_t)n * sizeof *r->bias);
    if (!r->bias_ids || !r->bias) {
        serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory for logit_bias");
        return false;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, b)
    {
        const char *k = it->string;
        char *end = NULL;
        long long id = (k && *k >= '0' && *k <= '9') ? strtoll(k, &end, 10) : -1;
        if (id < 0 || id > INT32_MAX || !end || *end)
            return bad(e, "logit_bias", "'%s' keys must be token ids (decimal integers)",
                       "logit_bias");
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < -100 ||
            it->valuedouble > 100)
            return bad(e, "logit_bias", "'%s' values must be numbers in [-100, 100]",
                       "logit_bias");
        r->bias_ids[r->n_bias] = (int32_t)id;
        r->bias[r->n_bias++] = (float)it->valuedouble;
    }
    return true;
}

/*
 * Chat: logprobs (boolean) and top_logprobs (0..20, only with logprobs).
 * Completions: logprobs, the number of alternatives (0..20; 0 still gives
 * the chosen tokens'); null is absent; echo.
 */
static bool parse_logprobs(const cJSON *root, bool chat, struct serve_req *r,
                           struct serve_error *e)
{
    long long v = 0;
    bool given = false;
    if (chat) {
        if (!get_bool(root, "logprobs", &r->logprobs, e) ||
            !get_int(root, "top_logprobs", 0, SLOTS_MAX_TOP, &v, &given, e))
            return false;
        if (v > 0 && !r->logprobs)
            return bad(e, "top_logprobs", "'%s' needs \"logprobs\": true", "top_logprobs");
    } else {
        if (!get_int(root, "logprobs", 0, SLOTS_MAX_TOP, &v, &given, e) ||
            !get_bool(root, "echo", &r->echo, e))
            return false;
        r->logprobs = given;
    }
    r->top_logprobs = (int)v;
    return true;
}

/* response_format json_schema: {"name", "schema", "strict"}; name and strict change nothing
   (hearth enforces the schema either way, or refuses it). */
static bool parse_json_schema(const cJSON *rf, struct serve_req *r, struct serve_error *e)
{
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
    const cJSON *schema =
        cJSON_IsObject(js) ? cJSON_GetObjectItemCaseSensitive(js, "schema") : NULL;
    if (!schema)
        return bad(e, "response_format",
                   "'%s' json_schema needs \"json_schema\": {\"name\": ..., \"schema\": {...}}",
                   "response_format");
    r->schema = malloc(sizeof *r->schema);
    if (!r->schema) {
        serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    if (!serve_schema_compile(schema, r->schema, e)) {
        free(r->schema);
        r->schema = NULL;
        return false;
    }
    return true;
}

/*
 * response_format: text, json_object (the reply is constrained to one JSON
 * object, core/json-guard.h) or json_schema (to the schema's values). Any
 * other type is refused rather than ignored: a reply that ignored it would
 * look like an answer to the request that was made.
 */
static bool parse_response_format(const cJSON *root, struct serve_req *r, struct serve_error *e)
{
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(root, "response_format");
    if (!rf || cJSON_IsNull(rf))
        return true;
    const cJSON *t = cJSON_IsObject(rf) ? cJSON_GetObjectItemCaseSensitive(rf, "type") : NULL;
    const char *type = cJSON_IsString(t) ? t->valuestring : "";
    bool object = !strcmp(type, "json_object"), schema = !strcmp(type, "json_schema");
    if (!object && !schema && strcmp(type, "text") != 0)
        return bad(e, "response_format",
                   "'%s' must be {\"type\": \"text\"}, {\"type\": \"json_object\"} or "
                   "{\"type\": \"json_schema\", \"json_schema\": {...}}",
                   "response_format");
    /* the forced call's prefill already decides how the reply opens */
    if ((object || schema) && r->tool_prefill)
        return bad(e, "response_format",
                   "'%s' json_object or json_schema cannot be combined with a tool_choice "
                   "that forces a call",
                   "response_format");
    r->json_object = r->json_object || object; /* a named call's guard may have set it */
    return !schema || parse_json_schema(rf, r, e);
}

static bool parse_sampling(const cJSON *root, struct serve_req *r, struct serve_error *e)
{
    struct sampler_params *sp = &r->sp;
    double d;
    long long v;
    bool given;
    d = sp->temp;
    if (!get_num(root, "temperature", 0, 2, &d, e))
        return false;
    sp->temp = (float)d;
    d = sp->top_p;
    if (!get_num(root, "top_p", 0, 1, &d, e))
        return false;
    if (d <= 0)
        return bad(e, "top_p", "'%s' must be in (0, 1]", "top_p");
    sp->top_p = (float)d;
    d = sp->min_p;
    if (!get_num(root, "min_p", 0, 1, &d, e))
        return false;
    sp->min_p = (float)d;
    v = sp->top_k;
    if (!get_int(root, "top_k", 0, INT32_MAX, &v, NULL, e))
        return false;
    sp->top_k = (int32_t)v;
    d = sp->presence_penalty;
    if (!get_num(root, "presence_penalty", -2, 2, &d, e))
        return false;
    sp->presence_penalty = (float)d;
    d = sp->frequency_penalty;
    if (!get_num(root, "frequency_penalty", -2, 2, &d, e))
        return false;
    sp->frequency_penalty = (float)d;
    d = sp->repeat_penalty;
    if (!get_num(root, "repeat_penalty", 0.01, 100, &d, e))
        return false;
    sp->repeat_penalty = (float)d;
    /* JSON numbers are doubles: seeds are exact up to 2^53 */
    if (!get_int(root, "seed", -9007199254740992.0, 9007199254740992.0, &v, &given, e))
        return false;
    if (given) {
        sp->seed = (uint64_t)v;
        sp->seed_set = true;
    }
    return true;
}

/* The tools' text joins the system message, or leads as one. */
static bool offer_tools(struct serve_req *r, struct serve_error *e)
{
    if (!r->tools_text)
        return true;
    if (!strcmp(r->msgs[0].role, "system")) {
        const char *sys = r->msgs[0].content;
        size_t n = strlen(sys) + 2 + strlen(r->tools_text) + 1;
        char *t = malloc(n);
        if (t)
            snprintf(t, n, "%s\n\n%s", sys, r->tools_text);
        if (!own(r, t, e))
            return false;
        r->msgs[0].content = t;
        return true;
    }
    struct chat_msg *grown = realloc(r->msgs, (r->n_msgs + 1) * sizeof *grown);
    if (!grown) {
        serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    r->msgs = grown;
    memmove(r->msgs + 1, r->msgs, r->n_msgs * sizeof *r->msgs);
    r->msgs[0].role = "system";
    r->msgs[0].content = r->tools_text;
    r->n_msgs++;
    return true;
}

bool serve_parse_request(const char *body, size_t len, bool chat, struct serve_req *r,
                         struct serve_error *e)
{
    memset(r, 0, sizeof *r);
    r->chat = chat;
    r->max_tokens = -1;
    sampler_params_default(&r->sp);
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) {
        serve_error_set(e, 400, "invalid_request_error", NULL, NULL,
                        "the body is not valid JSON (%zu bytes)", len);
        return false;
    }
    r->json = root;
    if (!cJSON_IsObject(root)) {
        serve_error_set(e, 400, "invalid_request_error", NULL, NULL,
                        "the body must be a JSON object");
        goto fail;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsString(model)) {
        bad(e, "model", "'%s' must be a string", "model");
        goto fail;
    }
    if (chat ? !parse_messages(root, r, e)
             : !serve_parse_prompts(root, "prompt", SERVE_MAX_CHOICES, &r->prompts, &r->n_prompts,
                                    e))
        goto fail;
    long long v = 0;
    bool given = false;
    if (!get_int(root, "max_completion_tokens", 1, INT32_MAX, &v, &given, e))
        goto fail;
    if (given)
        r->max_tokens = (int32_t)v;
    if (!get_int(root, "max_tokens", chat ? 1 : 0, INT32_MAX, &v, &given, e))
        goto fail;
    if (given)
        r->max_tokens = (int32_t)v;
    r->n = 1;
    if (!get_int(root, "n", 1, SERVE_MAX_CHOICES, &v, &given, e))
        goto fail;
    if (given)
        r->n = (int)v;
    if ((size_t)r->n * (chat ? 1 : r->n_prompts) > SERVE_MAX_CHOICES) {
        serve_error_set(e, 400, "invalid_request_error", "n", NULL,
                        "'n' %d times %zu prompts is more than the %d choices a request may have",
                        r->n, chat ? (size_t)1 : r->n_prompts, SERVE_MAX_CHOICES);
        goto fail;
    }
    if (chat && (!serve_parse_tools(root, r, e) || !offer_tools(r, e)))
        goto fail;
    if (!parse_sampling(root, r, e) || !parse_stop(root, r, e) || !parse_logit_bias(root, r, e) ||
        !parse_logprobs(root, chat, r, e) || !parse_response_format(root, r, e))
        goto fail;
    if (r->max_tokens == 0 && !r->echo) {
        /* a count of 0 only makes sense when the prompt itself is the answer */
        bad(e, "max_tokens", "'%s' is 0, which needs \"echo\": true (else at least 1)",
            "max_tokens");
        goto fail;
    }
    if (!get_bool(root, "stream", &r->stream, e))
        goto fail;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) {
            bad(e, "stream_options", "'%s' must be an object", "stream_options");
            goto fail;
        }
        if (!get_bool(so, "include_usage", &r->include_usage, e))
            goto fail;
    }
    return true;
fail:
    serve_req_free(r);
    return false;
}

void serve_req_free(struct serve_req *r)
{
    for (size_t i = 0; i < r->n_parts; i++)
        free(r->parts[i]);
    free(r->parts);
    free(r->msgs);
    free(r->bias_ids);
    free(r->bias);
    serve_prompts_free(r->prompts, r->n_prompts);
    free(r->tools_text);
    free(r->tool_prefill);
    free(r->tool_names);
    js_schema_free(r->schema);
    free(r->schema);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof *r);
}

/* ---- responses ------------------------------------------------------------------ */

const char *serve_finish_reason(enum gen_stop stop)
{
    switch (stop) {
    case GEN_STOP_EOG:
    case GEN_STOP_STRING:
        return "stop";
    case GEN_STOP_LIMIT:
    case GEN_STOP_CTX_FULL:
        return "length";
    default:
        return "stop";
    }
}

static cJSON *base_object(const struct serve_meta *m, bool chunk)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    const char *obj =
        m->chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "object", obj);
    cJSON_AddNumberToObject(o, "created", (double)m->created);
    cJSON_AddStringToObject(o, "model", m->model);
    cJSON_AddStringToObject(o, "system_fingerprint", "hearth");
    return o;
}

static void add_usage(cJSON *o, size_t n_prompt, size_t n_gen)
{
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    if (!u)
        return;
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(n_prompt + n_gen));
}

static void add_finish(cJSON *c, const char *finish)
{
    if (finish)
        cJSON_AddStringToObject(c, "finish_reason", finish);
    else
        cJSON_AddNullToObject(c, "finish_reason");
}

/* "logprobs": the records' object, or null */
static void add_logprobs(cJSON *c, bool chat, const struct serve_logprobs *lp)
{
    cJSON *o = lp ? serve_logprobs_json(chat, lp) : NULL;
    if (o)
        cJSON_AddItemToObject(c, "logprobs", o);
    else
        cJSON_AddNullToObject(c, "logprobs");
}

char *serve_response_json(const struct serve_meta *m, const struct serve_choice_out *ch, size_t n,
                          size_t n_prompt, size_t n_gen)
{
    cJSON *o = base_object(m, false);
    cJSON *choices = o ? cJSON_AddArrayToObject(o, "choices") : NULL;
    if (!choices) {
        cJSON_Delete(o);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        cJSON *c = cJSON_CreateObject();
        if (!c) {
            cJSON_Delete(o);
            return NULL;
        }
        cJSON_AddItemToArray(choices, c);
        cJSON_AddNumberToObject(c, "index", (double)i);
        if (m->chat) {
            cJSON *msg = cJSON_AddObjectToObject(c, "message");
            if (msg) {
                cJSON_AddStringToObject(msg, "role", "assistant");
                if (ch[i].tool_calls && !ch[i].text[0])
                    cJSON_AddNullToObject(msg, "content");
                else
                    cJSON_AddStringToObject(msg, "content", ch[i].text);
                if (ch[i].tool_calls)
                    cJSON_AddItemToObject(msg, "tool_calls",
                                          cJSON_Duplicate(ch[i].tool_calls, true));
            }
        } else {
            cJSON_AddStringToObject(c, "text", ch[i].text);
        }
        add_logprobs(c, m->chat, ch[i].lp);
        add_finish(c, ch[i].finish);
    }
    add_usage(o, n_prompt, n_gen);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* "data: " + json + "\n\n" */
static char *frame(cJSON *o)
{
    char *j = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!j)
        return NULL;
    size_t n = strlen(j);
    char *out = malloc(n + 9);
    if (out) {
        memcpy(out, "data: ", 6);
        memcpy(out + 6, j, n);
        memcpy(out + 6 + n, "\n\n", 3);
    }
    cJSON_free(j);
    return out;
}

char *serve_chunk_sse(const struct serve_meta *m, int index, const char *text, bool role_delta,
                      const char *finish, bool usage, size_t n_prompt, size_t n_gen,
                      const struct serve_logprobs *lp)
{
    cJSON *o = base_object(m, true);
    cJSON *choices = o ? cJSON_AddArrayToObject(o, "choices") : NULL;
    if (!choices) {
        cJSON_Delete(o);
        return NULL;
    }
    if (usage) {
        add_usage(o, n_prompt, n_gen);
        return frame(o);
    }
    cJSON *c = cJSON_CreateObject();
    if (!c) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", index);
    if (m->chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (d && role_delta)
            cJSON_AddStringToObject(d, "role", "assistant");
        if (d && (text || role_delta))
            cJSON_AddStringToObject(d, "content", text ? text : "");
    } else {
        cJSON_AddStringToObject(c, "text", text ? text : "");
    }
    add_logprobs(c, m->chat, lp);
    add_finish(c, finish);
    return frame(o);
}

char *serve_chunk_tool_calls_sse(const struct serve_meta *m, int index, const cJSON *tool_calls)
{
    cJSON *o = base_object(m, true);
    cJSON *choices = o ? cJSON_AddArrayToObject(o, "choices") : NULL;
    cJSON *c = choices ? cJSON_CreateObject() : NULL;
    cJSON *d = c ? cJSON_AddObjectToObject(c, "delta") : NULL;
    cJSON *calls = d ? cJSON_Duplicate(tool_calls, true) : NULL;
    if (!calls) {
        cJSON_Delete(c);
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", index);
    /* a streamed call names its position in the message's list */
    int k = 0;
    cJSON *call;
    cJSON_ArrayForEach(call, calls)
    {
        cJSON_AddNumberToObject(call, "index", k++);
    }
    cJSON_AddItemToObject(d, "tool_calls", calls);
    cJSON_AddNullToObject(c, "logprobs");
    add_finish(c, NULL);
    return frame(o);
}

char *serve_models_json(const char *model, long long created)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *data = o ? cJSON_AddArrayToObject(o, "data") : NULL;
    cJSON *m = cJSON_CreateObject();
    if (!data || !m) {
        cJSON_Delete(m);
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddItemToArray(data, m);
    cJSON_AddStringToObject(m, "id", model);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)created);
    cJSON_AddStringToObject(m, "owned_by", "hearth");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

#else
typedef int serve_json_unused; /* ISO C forbids an empty translation unit */
#endif
