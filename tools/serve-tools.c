/*
 * serve-tools: OpenAI function calling for `hearth serve` (chat only).
 *
 * hearth renders no Jinja, so tool use is one convention for every chat
 * family, the one most open models are trained on (Hermes / Qwen style):
 *  - the tools go into the system message as JSON inside <tools></tools>,
 *    with an instruction to answer a call as
 *        <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>
 *  - an assistant message's tool_calls are written back in that form;
 *  - a "tool" message is a user turn holding <tool_response>...</tool_response>
 *    (every family can render a user turn; not all know a tool role);
 *  - the reply is scanned for <tool_call> blocks, each a JSON object with a
 *    string "name" and "arguments" (or "parameters") that becomes one
 *    tool_calls entry; the text before the first block is the content. A
 *    reply that is only such an object, or an array of them, naming offered
 *    functions, is taken as calls too: models trained on their own format
 *    (Llama 3.1's JSON, Mistral's [TOOL_CALLS] array) answer that way.
 * tool_choice "required" opens the reply with `<tool_call>\n{"name": "` and a
 * named function with its name and `"arguments": `: the model continues a
 * call it cannot decline, without any grammar. "none" renders no tools.
 */
#ifdef HEARTH_WITH_SERVER

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"
#include "strbuf.h"

#define OPEN_TAG SERVE_TOOL_OPEN_TAG
#define CLOSE_TAG SERVE_TOOL_CLOSE_TAG

static bool bad(struct serve_error *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char msg[400];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    serve_error_set(e, 400, "invalid_request_error", "tools", NULL, "%s", msg);
    return false;
}

/* tool_choice: "none", "auto", "required" or {"type": "function", "function": {"name"}}. */
static bool parse_choice(const cJSON *root, struct serve_req *r, const char **named,
                         struct serve_error *e)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "tool_choice");
    *named = NULL;
    r->tool_choice = SERVE_TOOLS_AUTO;
    if (!c || cJSON_IsNull(c))
        return true;
    if (cJSON_IsString(c)) {
        if (!strcmp(c->valuestring, "none"))
            r->tool_choice = SERVE_TOOLS_NONE;
        else if (!strcmp(c->valuestring, "required"))
            r->tool_choice = SERVE_TOOLS_REQUIRED;
        else if (strcmp(c->valuestring, "auto") != 0)
            goto wrong;
        return true;
    }
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "function");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
    if (!cJSON_IsObject(c) || !cJSON_IsString(name))
        goto wrong;
    r->tool_choice = SERVE_TOOLS_NAMED;
    *named = name->valuestring;
    return true;
wrong:
    serve_error_set(e, 400, "invalid_request_error", "tool_choice", NULL,
                    "'tool_choice' must be \"none\", \"auto\", \"required\" or "
                    "{\"type\": \"function\", \"function\": {\"name\": ...}}");
    return false;
}

/* A JSON string literal of s (malloc'd). */
static char *json_string(const char *s)
{
    cJSON *j = cJSON_CreateString(s);
    char *out = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return out;
}

/*
 * A named call's arguments: valid against the function's parameters when
 * hearth can enforce that schema (serve_schema_compile), else any JSON
 * object. A function marked "strict": true whose schema hearth cannot
 * enforce is refused, as OpenAI refuses strict schemas it does not support.
 */
static bool guard_args(const cJSON *f, struct serve_req *r, struct serve_error *e)
{
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(f, "parameters");
    r->call_guarded = true;
    if (!cJSON_IsObject(params)) {
        r->json_object = true;
        return true;
    }
    struct js_schema *sc = calloc(1, sizeof *sc);
    struct serve_error ce;
    if (sc && serve_schema_compile(params, sc, &ce)) {
        r->schema = sc;
        return true;
    }
    free(sc);
    if (!sc || ce.http >= 500) {
        serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "strict"))) {
        *e = ce;
        e->param = "tools";
        return false;
    }
    r->json_object = true;
    return true;
}

bool serve_parse_tools(const struct cJSON *root, struct serve_req *r, struct serve_error *e)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
    const cJSON *par = cJSON_GetObjectItemCaseSensitive(root, "parallel_tool_calls");
    const char *named = NULL;
    if (par && !cJSON_IsNull(par) && !cJSON_IsBool(par)) {
        serve_error_set(e, 400, "invalid_request_error", "parallel_tool_calls", NULL,
                        "'parallel_tool_calls' must be a boolean");
        return false;
    }
    r->one_call = cJSON_IsFalse(par);
    if (!parse_choice(root, r, &named, e))
        return false;
    if (!tools || cJSON_IsNull(tools) || (cJSON_IsArray(tools) && !tools->child)) {
        if (r->tool_choice == SERVE_TOOLS_REQUIRED || r->tool_choice == SERVE_TOOLS_NAMED) {
            serve_error_set(e, 400, "invalid_request_error", "tool_choice", NULL,
                            "'tool_choice' asks for a tool call but the request has no tools");
            return false;
        }
        r->tool_choice = SERVE_TOOLS_NONE;
        return true;
    }
    if (!cJSON_IsArray(tools) || cJSON_GetArraySize(tools) > SERVE_MAX_TOOLS)
        return bad(e, "'tools' must be an array of at most %d tools", SERVE_MAX_TOOLS);
    bool found = named == NULL;
    const cJSON *named_fn = NULL;
    struct strbuf b = {0}, names = {0};
    strbuf_puts(&names, "\n");
    strbuf_puts(&b, "You can call functions to help with the user's request. They are described "
               "below in JSON Schema, one per line, within <tools></tools>:\n<tools>\n");
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(f, "parameters");
        if (!cJSON_IsObject(t) || !cJSON_IsString(type) || strcmp(type->valuestring, "function") ||
            !cJSON_IsObject(f) || !cJSON_IsString(name) || !name->valuestring[0] ||
            (params && !cJSON_IsObject(params) && !cJSON_IsNull(params)) ||
            strchr(name->valuestring, '\n')) {
            free(b.p);
            free(names.p);
            return bad(e, "tools[%d] must be {\"type\": \"function\", \"function\": {\"name\": "
                       "a non-empty string, \"parameters\": an object, ...}}", i);
        }
        if (named && !named_fn && !strcmp(name->valuestring, named))
            named_fn = f;
        found = found || named_fn;
        strbuf_puts(&names, name->valuestring);
        strbuf_puts(&names, "\n");
        char *js = cJSON_PrintUnformatted(f);
        if (!js) {
            b.oom = true;
            break;
        }
        strbuf_puts(&b, js);
        strbuf_puts(&b, "\n");
        cJSON_free(js);
        i++;
    }
    r->tool_names = strbuf_take(&names);
    if (r->tool_choice == SERVE_TOOLS_REQUIRED && i == 1) {
        /* one tool that must be called is a named call: its arguments can be guarded */
        const cJSON *only = cJSON_GetObjectItemCaseSensitive(tools->child, "function");
        r->tool_choice = SERVE_TOOLS_NAMED;
        named = cJSON_GetObjectItemCaseSensitive(only, "name")->valuestring;
        named_fn = only;
    }
    if (!found) {
        free(b.p);
        serve_error_set(e, 400, "invalid_request_error", "tool_choice", NULL,
                        "'tool_choice' names '%.64s', which is not among the tools", named);
        return false;
    }
    strbuf_puts(&b, "</tools>\nTo call a function, answer with one block per call, each holding a "
               "JSON object with the function's name and its arguments:\n" OPEN_TAG
               "\n{\"name\": <function name>, \"arguments\": <arguments object>}\n" CLOSE_TAG);
    r->tools_text = strbuf_take(&b);
    if (!r->tools_text || !r->tool_names)
        goto oom;
    if (r->tool_choice == SERVE_TOOLS_REQUIRED) {
        r->tool_prefill = strdup(OPEN_TAG "\n{\"name\": \"");
    } else if (r->tool_choice == SERVE_TOOLS_NAMED) {
        char *q = json_string(named);
        struct strbuf p = {0};
        strbuf_puts(&p, OPEN_TAG "\n{\"name\": ");
        strbuf_puts(&p, q ? q : "\"\"");
        strbuf_puts(&p, ", \"arguments\": ");
        p.oom = p.oom || !q;
        cJSON_free(q);
        r->tool_prefill = strbuf_take(&p);
        if (!guard_args(named_fn, r, e))
            return false;
    }
    if (r->tool_choice == SERVE_TOOLS_NONE) {
        free(r->tools_text); /* offered but not to be used: the model never sees them */
        r->tools_text = NULL;
    } else if ((r->tool_choice == SERVE_TOOLS_REQUIRED || r->tool_choice == SERVE_TOOLS_NAMED) &&
               !r->tool_prefill) {
        goto oom;
    }
    return true;
oom:
    serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return false;
}

char *serve_tools_render_calls(const struct cJSON *calls, const char *content, size_t i,
                               struct serve_error *e)
{
    struct strbuf b = {0};
    if (content)
        strbuf_puts(&b, content);
    const cJSON *c;
    cJSON_ArrayForEach(c, calls)
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(f, "arguments");
        if (!cJSON_IsString(name) || (args && !cJSON_IsString(args) && !cJSON_IsObject(args))) {
            free(b.p);
            serve_error_set(e, 400, "invalid_request_error", "messages", NULL,
                            "messages[%zu].tool_calls entries must be {\"function\": {\"name\": "
                            "string, \"arguments\": string}}",
                            i);
            return NULL;
        }
        /* arguments come as a JSON string; written back as the object they hold */
        cJSON *obj = cJSON_IsString(args) ? cJSON_Parse(args->valuestring) : NULL;
        cJSON *call = cJSON_CreateObject();
        cJSON_AddStringToObject(call, "name", name->valuestring);
        if (obj)
            cJSON_AddItemToObject(call, "arguments", obj);
        else if (cJSON_IsObject(args))
            cJSON_AddItemToObject(call, "arguments", cJSON_Duplicate(args, true));
        else
            cJSON_AddStringToObject(call, "arguments", args ? args->valuestring : "");
        char *js = cJSON_PrintUnformatted(call);
        cJSON_Delete(call);
        if (b.len > 0)
            strbuf_puts(&b, "\n");
        strbuf_puts(&b, OPEN_TAG "\n");
        strbuf_puts(&b, js ? js : "");
        strbuf_puts(&b, "\n" CLOSE_TAG);
        b.oom = b.oom || !js;
        cJSON_free(js);
    }
    char *out = strbuf_take(&b);
    if (!out)
        serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return out;
}

char *serve_tools_render_result(const char *content)
{
    struct strbuf b = {0};
    strbuf_puts(&b, "<tool_response>\n");
    strbuf_puts(&b, content);
    strbuf_puts(&b, "\n</tool_response>");
    return strbuf_take(&b);
}

/* The call in json[0..n), or NULL when it is not an object with a string name. */
static cJSON *one_call(const char *json, size_t n, const char *id)
{
    cJSON *o = cJSON_ParseWithLength(json, n);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(o, "arguments");
    if (!args)
        args = cJSON_GetObjectItemCaseSensitive(o, "parameters");
    if (!cJSON_IsObject(o) || !cJSON_IsString(name) || (args && !cJSON_IsObject(args) &&
                                                        !cJSON_IsString(args))) {
        cJSON_Delete(o);
        return NULL;
    }
    char *a = !args ? strdup("{}") : cJSON_IsString(args) ? strdup(args->valuestring)
                                                           : cJSON_PrintUnformatted(args);
    cJSON *call = cJSON_CreateObject();
    cJSON *f = NULL;
    if (call && a) {
        cJSON_AddStringToObject(call, "id", id);
        cJSON_AddStringToObject(call, "type", "function");
        f = cJSON_AddObjectToObject(call, "function");
    }
    if (f) {
        cJSON_AddStringToObject(f, "name", name->valuestring);
        cJSON_AddStringToObject(f, "arguments", a);
    } else {
        cJSON_Delete(call);
        call = NULL;
    }
    free(a);
    cJSON_Delete(o);
    return call;
}

/* Whether name is in names ("\nname\n...\n"). */
static bool offered(const char *names, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = names; n > 0 && p && *p; p++)
        if (p[0] == '\n' && !strncmp(p + 1, name, n) && p[1 + n] == '\n')
            return true;
    return false;
}

/* A reply that is only a call object or an array of them, all naming offered functions. */
static cJSON *bare_calls(const char *text, size_t len, const char *id_prefix, const char *names)
{
    const char *end = NULL;
    cJSON *j = names ? cJSON_ParseWithLengthOpts(text, len, &end, false) : NULL;
    bool ok = j && (cJSON_IsObject(j) || (cJSON_IsArray(j) && j->child));
    while (ok && end && (size_t)(end - text) < len && strchr(" \t\r\n", *end))
        end++;
    ok = ok && end && (size_t)(end - text) == len;
    cJSON *calls = ok ? cJSON_CreateArray() : NULL;
    const cJSON *it = cJSON_IsArray(j) ? j->child : j;
    for (int k = 0; calls && it; k++, it = cJSON_IsArray(j) ? it->next : NULL) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        char *js = cJSON_PrintUnformatted(it);
        char id[96];
        snprintf(id, sizeof id, "%s_%d", id_prefix, k);
        cJSON *call = cJSON_IsString(name) && offered(names, name->valuestring) && js
                          ? one_call(js, strlen(js), id)
                          : NULL;
        cJSON_free(js);
        if (!call) {
            cJSON_Delete(calls);
            calls = NULL;
            break;
        }
        cJSON_AddItemToArray(calls, call);
    }
    cJSON_Delete(j);
    return calls;
}

struct cJSON *serve_tools_parse(const char *text, size_t len, const char *id_prefix,
                                const char *names, bool one, size_t *content_len)
{
    const size_t no = strlen(OPEN_TAG), nc = strlen(CLOSE_TAG);
    cJSON *calls = NULL;
    *content_len = len;
    size_t at = 0;
    for (int k = 0;; k++) {
        const char *open = NULL;
        for (size_t i = at; i + no <= len && !open; i++)
            if (!memcmp(text + i, OPEN_TAG, no))
                open = text + i;
        if (!open)
            break;
        size_t body = (size_t)(open - text) + no, end = len, next = len;
        for (size_t i = body; i + nc <= len; i++)
            if (!memcmp(text + i, CLOSE_TAG, nc)) {
                end = i;
                next = i + nc;
                break;
            }
        char id[96];
        snprintf(id, sizeof id, "%s_%d", id_prefix, k);
        cJSON *call = one_call(text + body, end - body, id);
        if (!call)
            break; /* not a call after all: it stays text */
        if (!calls && !(calls = cJSON_CreateArray())) {
            cJSON_Delete(call);
            break;
        }
        if (k == 0)
            *content_len = (size_t)(open - text);
        cJSON_AddItemToArray(calls, call);
        at = next;
    }
    if (!calls) {
        size_t lead = 0;
        while (lead < len && strchr(" \t\r\n", text[lead]))
            lead++;
        if (lead < len && (text[lead] == '{' || text[lead] == '[') &&
            (calls = bare_calls(text + lead, len - lead, id_prefix, names)) != NULL)
            *content_len = 0;
    }
    while (one && cJSON_GetArraySize(calls) > 1)
        cJSON_DeleteItemFromArray(calls, cJSON_GetArraySize(calls) - 1);
    /* the content ends where the calls begin, without the blank space before them */
    while (calls && *content_len > 0 && strchr(" \t\r\n", text[*content_len - 1]))
        (*content_len)--;
    return calls;
}

size_t serve_tools_safe_len(const char *text, size_t len, size_t from)
{
    const size_t no = strlen(OPEN_TAG);
    size_t lead = 0;
    while (lead < len && strchr(" \t\r\n", text[lead]))
        lead++;
    if (lead == len || text[lead] == '{' || text[lead] == '[')
        return 0; /* nothing yet, or what may be a bare call: held to the end */
    for (size_t i = from < len ? from : len; i + no <= len; i++)
        if (!memcmp(text + i, OPEN_TAG, no))
            return i;
    /* a tail that may be the tag's start is held back */
    for (size_t k = no - 1; k > 0; k--)
        if (k <= len && !memcmp(text + len - k, OPEN_TAG, k))
            return len - k;
    return len;
}

#else
typedef int serve_tools_unused; /* ISO C forbids an empty translation unit */
#endif
