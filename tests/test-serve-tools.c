/*
 * test-serve-tools: the server's function calling without a model
 * (tools/serve-tools.c, with the request parser it plugs into): tool calls
 * found in reply text, the content before them, text that only looks like a
 * call staying text, the streaming hold-back at a possible opening tag, and
 * a conversation's tools, calls and results written into the messages the
 * chat template renders (a call written back parses to the same call);
 * and completions' logprobs object (token spellings, character offsets) on
 * SmolLM2's tokenizer. Built with the server's sources when libcjson is
 * found; skips otherwise.
 */
#include <stdio.h>
#include <string.h>

#include "test.h"

#ifdef HEARTH_WITH_SERVER

#include <cjson/cJSON.h>
#include <stdlib.h>

#include "model.h"
#include "serve.h"
#include "tokenizer.h"

/* The k-th call's name and arguments. */
static void check_call(const cJSON *calls, int k, const char *name, const char *args)
{
    const cJSON *c = cJSON_GetArrayItem(calls, k);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "function");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(f, "name");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(f, "arguments");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(c, "type");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
    CHECK(cJSON_IsString(type) && !strcmp(type->valuestring, "function"));
    CHECK(cJSON_IsString(id) && id->valuestring[0]);
    CHECK_MSG(cJSON_IsString(n) && !strcmp(n->valuestring, name), "call %d: name", k);
    CHECK_MSG(cJSON_IsString(a) && !strcmp(a->valuestring, args), "call %d: arguments '%s'", k,
              cJSON_IsString(a) ? a->valuestring : "?");
}

static cJSON *parse(const char *text, size_t *content_len)
{
    return serve_tools_parse(text, strlen(text), "call_t", "\nf\ng\n", false, content_len);
}

TEST(calls_in_text)
{
    size_t cl = 0;
    const char *two = "Sure.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n"
                      "</tool_call>\n<tool_call>{\"name\":\"g\",\"parameters\":{}}</tool_call>";
    cJSON *calls = parse(two, &cl);
    CHECK_INT_EQ(cJSON_GetArraySize(calls), 2);
    check_call(calls, 0, "f", "{\"a\":1}");
    check_call(calls, 1, "g", "{}");
    CHECK_INT_EQ(cl, 5); /* "Sure.", without the blank before the call */
    cJSON_Delete(calls);
    /* parallel_tool_calls false: the first call only */
    calls = serve_tools_parse(two, strlen(two), "c", NULL, true, &cl);
    CHECK_INT_EQ(cJSON_GetArraySize(calls), 1);
    check_call(calls, 0, "f", "{\"a\":1}");
    cJSON_Delete(calls);
    /* arguments given as a string stay that string; no arguments are {} */
    calls = parse("<tool_call>{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":2}\"}</tool_call>", &cl);
    check_call(calls, 0, "f", "{\"x\":2}");
    CHECK_INT_EQ(cl, 0);
    cJSON_Delete(calls);
    /* a reply cut after the object (a stop at the closing tag) is still a call */
    calls = parse("<tool_call>\n{\"name\":\"f\"}\n", &cl);
    CHECK_INT_EQ(cJSON_GetArraySize(calls), 1);
    check_call(calls, 0, "f", "{}");
    cJSON_Delete(calls);
    /* text that is not a call stays text */
    const char *nots[] = {"no calls here", "<tool_call>{\"name\": 3}</tool_call>",
                          "<tool_call>{\"name\": \"f\", \"arguments\": 7}</tool_call>",
                          "<tool_call>not json</tool_call>", "<tool_call>{\"name\": \"f\""};
    for (size_t i = 0; i < sizeof nots / sizeof nots[0]; i++) {
        calls = parse(nots[i], &cl);
        CHECK_MSG(calls == NULL, "'%s' gave calls", nots[i]);
        CHECK_INT_EQ(cl, strlen(nots[i]));
        cJSON_Delete(calls);
    }
    /* a valid call then a broken one: the broken one ends the calls */
    calls = parse("<tool_call>{\"name\":\"f\"}</tool_call><tool_call>{oops</tool_call>", &cl);
    CHECK_INT_EQ(cJSON_GetArraySize(calls), 1);
    cJSON_Delete(calls);
}

/* Llama 3.1's and Mistral's bare forms: only offered names, only a whole reply. */
TEST(bare_calls)
{
    size_t cl = 1;
    cJSON *calls = parse(" {\"name\": \"f\", \"parameters\": {\"x\": 1}}\n", &cl);
    CHECK_INT_EQ(cJSON_GetArraySize(calls), 1);
    check_call(calls, 0, "f", "{\"x\":1}");
    CHECK_INT_EQ(cl, 0);
    cJSON_Delete(calls);
    calls = parse("[{\"name\": \"g\", \"arguments\": {}}, {\"name\": \"f\"}]", &cl);
    CHECK_INT_EQ(cJSON_GetArraySize(calls), 2);
    check_call(calls, 0, "g", "{}");
    check_call(calls, 1, "f", "{}");
    cJSON_Delete(calls);
    /* a JSON answer is not a call: a name not offered, more text, a prefix of a name, [] */
    const char *nots[] = {"{\"name\": \"h\", \"arguments\": {}}", "{\"name\": \"f\"} and more",
                          "{\"name\": \"\"}", "[]", "[{\"name\": \"f\"}, 3]",
                          "{\"city\": \"Paris\"}"};
    for (size_t i = 0; i < sizeof nots / sizeof nots[0]; i++) {
        calls = parse(nots[i], &cl);
        CHECK_MSG(calls == NULL, "'%s' gave calls", nots[i]);
        CHECK_INT_EQ(cl, strlen(nots[i]));
        cJSON_Delete(calls);
    }
    /* without names (no tools offered) nothing bare is a call */
    calls = serve_tools_parse("{\"name\": \"f\"}", 13, "c", NULL, false, &cl);
    CHECK(calls == NULL);
}

TEST(stream_holds_back_a_possible_tag)
{
    static const struct {
        const char *text;
        size_t safe;
    } cases[] = {{"Hello", 5},        {"Hello <tool", 6}, {"Hello <tool_call>{\"n", 6},
                 {"a<", 1},           {"<tool_call", 0},  {"x < y", 5},
                 {"<tool_cal x", 11}, {"", 0},            {"<<tool_call>", 1},
                 {" {\"name", 0},     {"[1, 2", 0},       {"  ", 0},
                 {"a {b}", 5}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].text), got = serve_tools_safe_len(cases[i].text, n, 0);
        CHECK_MSG(got == cases[i].safe, "'%s': %zu, expected %zu", cases[i].text, got,
                  cases[i].safe);
        /* a stream asks again from its last answer, and gets the same */
        CHECK(serve_tools_safe_len(cases[i].text, n, got) == got);
    }
    /* text grown after a held tail: the tag is found where the tail began */
    CHECK_INT_EQ(serve_tools_safe_len("Hi <tool_call>{", 15, 3), 3);
}

/* Parses a chat body that must be accepted. */
static bool accept(const char *body, struct serve_req *r)
{
    struct serve_error e;
    bool ok = serve_parse_request(body, strlen(body), true, r, &e);
    CHECK_MSG(ok, "rejected: %s", ok ? "" : e.message);
    return ok;
}

TEST(conversation_rendered)
{
    const char *body =
        "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
        " {\"role\": \"user\", \"content\": \"Weather in Paris?\"},"
        " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\","
        "   \"type\": \"function\", \"function\": {\"name\": \"get_weather\","
        "   \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"18 C\"}],"
        " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\","
        "   \"parameters\": {\"type\": \"object\"}}}],"
        " \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"get_weather\"}}}";
    struct serve_req r;
    if (!accept(body, &r))
        return;
    CHECK_INT_EQ(r.n_msgs, 4);
    CHECK_INT_EQ(r.tool_choice, SERVE_TOOLS_NAMED);
    /* the tools join the existing system message */
    CHECK(!strcmp(r.msgs[0].role, "system") && !strncmp(r.msgs[0].content, "Be brief.\n\n", 11));
    CHECK(strstr(r.msgs[0].content, "{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\"}}"));
    CHECK(r.tool_prefill && !strcmp(r.tool_prefill,
                                    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "));
    CHECK(r.tool_names && !strcmp(r.tool_names, "\nget_weather\n"));
    /* the call written back parses to the same call */
    CHECK(!strcmp(r.msgs[2].role, "assistant"));
    size_t cl = 0;
    cJSON *calls =
        serve_tools_parse(r.msgs[2].content, strlen(r.msgs[2].content), "x", r.tool_names, false,
                          &cl);
    CHECK_INT_EQ(cJSON_GetArraySize(calls), 1);
    check_call(calls, 0, "get_weather", "{\"city\":\"Paris\"}");
    CHECK_INT_EQ(cl, 0);
    cJSON_Delete(calls);
    /* the result is a user turn carrying it */
    CHECK(!strcmp(r.msgs[3].role, "user"));
    CHECK(!strcmp(r.msgs[3].content, "<tool_response>\n18 C\n</tool_response>"));
    serve_req_free(&r);

    /* without a system message the tools lead as one; "none" offers nothing */
    if (accept("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\":"
               " \"function\", \"function\": {\"name\": \"f\"}}]}",
               &r)) {
        CHECK_INT_EQ(r.n_msgs, 2);
        CHECK(!strcmp(r.msgs[0].role, "system") && strstr(r.msgs[0].content, "<tools>"));
        CHECK(r.tool_choice == SERVE_TOOLS_AUTO && r.tool_prefill == NULL);
        serve_req_free(&r);
    }
    if (accept("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\":"
               " \"function\", \"function\": {\"name\": \"f\"}}], \"tool_choice\": \"none\"}",
               &r)) {
        CHECK_INT_EQ(r.n_msgs, 1);
        CHECK(r.tools_text == NULL);
        serve_req_free(&r);
    }
    /* "required" with two tools opens a call; with one, it is that call, arguments guarded */
    if (accept("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\":"
               " \"function\", \"function\": {\"name\": \"f\"}}, {\"type\": \"function\", "
               "\"function\": {\"name\": \"g\"}}], \"tool_choice\": \"required\"}",
               &r)) {
        CHECK(r.tool_prefill && !strcmp(r.tool_prefill, "<tool_call>\n{\"name\": \""));
        CHECK(!r.call_guarded && !r.json_object && !r.schema);
        serve_req_free(&r);
    }
    if (accept("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\":"
               " \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": "
               "\"object\", \"properties\": {\"x\": {\"type\": \"integer\"}}}}}], \"tool_choice\": "
               "\"required\"}",
               &r)) {
        CHECK(r.tool_prefill &&
              !strcmp(r.tool_prefill, "<tool_call>\n{\"name\": \"f\", \"arguments\": "));
        CHECK(r.call_guarded && r.schema && r.schema->n_nodes >= 2 && !r.json_object);
        serve_req_free(&r);
    }
    /* parameters hearth cannot enforce: any object, unless the function is strict */
    if (accept("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\":"
               " \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": "
               "\"object\", \"properties\": {\"x\": {\"type\": \"string\", \"pattern\": \"a\"}}}}}], "
               "\"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"f\"}}}",
               &r)) {
        CHECK(r.call_guarded && r.json_object && !r.schema);
        serve_req_free(&r);
    }
    struct serve_error e;
    const char *strict =
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": "
        "\"function\", \"function\": {\"name\": \"f\", \"strict\": true, \"parameters\": {\"type\": "
        "\"object\", \"properties\": {\"x\": {\"type\": \"string\", \"pattern\": \"a\"}}}}}], "
        "\"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"f\"}}}";
    CHECK(!serve_parse_request(strict, strlen(strict), true, &r, &e));
    CHECK(e.http == 400 && e.param && !strcmp(e.param, "tools") && strstr(e.message, "pattern"));
}

/*
 * Completions' logprobs object on SmolLM2's tokenizer: tokens spell the text,
 * text_offset counts characters (not bytes) from the prompt's start, and a
 * token that is part of a character is spelled "bytes:\\xNN".
 */
TEST(completion_logprobs_offsets)
{
    const char *path = test_model_path(TEST_SMOLLM2);
    REQUIRE(path);
    struct model *m = NULL;
    struct tokenizer *t = NULL;
    CHECK_OK(model_load(path, &m));
    REQUIRE(m);
    CHECK_OK(tok_load(m->gguf, &t));
    REQUIRE(t);
    const char *text = "h\xc3\xa9llo w\xc3\xb6rld \xf0\x9f\x98\x80!";
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(tok_encode(t, text, strlen(text), false, false, &ids, &n));
    struct slots_logprob *lp = calloc(n ? n : 1, sizeof *lp);
    REQUIRE(ids && lp && n >= 4);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nb = 0;
        tok_token_bytes(t, ids[i], &nb);
        lp[i].id = ids[i];
        lp[i].logprob = -1.0f - (float)i;
        lp[i].offset = 100 + off; /* this text starts at generated byte 100 */
        off += nb;
    }
    CHECK_INT_EQ(off, strlen(text));
    struct serve_logprobs l = {t, lp, n, text, strlen(text), 100, 7};
    cJSON *o = serve_logprobs_json(false, &l);
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(o, "tokens");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(o, "text_offset");
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(o, "token_logprobs");
    CHECK(cJSON_GetArraySize(toks) == (int)n && cJSON_GetArraySize(offs) == (int)n);
    char joined[128] = "";
    bool split = false;
    for (size_t i = 0; i < n; i++) {
        const char *s = cJSON_GetArrayItem(toks, (int)i)->valuestring;
        size_t at = lp[i].offset - 100, chars = 0;
        for (size_t k = 0; k < at; k++)
            chars += ((unsigned char)text[k] & 0xC0) != 0x80;
        CHECK_MSG(cJSON_GetArrayItem(offs, (int)i)->valueint == (int)(7 + chars),
                  "token %zu: offset %d, expected %zu", i, cJSON_GetArrayItem(offs, (int)i)->valueint,
                  7 + chars);
        CHECK(cJSON_GetArrayItem(vals, (int)i)->valuedouble == -1.0 - (double)i);
        if (!strncmp(s, "bytes:", 6)) {
            /* a piece of a character: its bytes spelled \xNN, read back here */
            split = true;
            for (const char *q = s + 6; q[0] == '\\' && q[1] == 'x' && q[2] && q[3]; q += 4) {
                char hex[3] = {q[2], q[3], 0};
                size_t j = strlen(joined);
                if (j + 1 < sizeof joined) {
                    joined[j] = (char)strtol(hex, NULL, 16);
                    joined[j + 1] = '\0';
                }
            }
        } else {
            strncat(joined, s, sizeof joined - strlen(joined) - 1);
        }
    }
    CHECK_MSG(split, "no token is a partial character");
    CHECK_MSG(!strcmp(joined, text), "the tokens spell '%s'", joined);
    cJSON_Delete(o);
    free(lp);
    free(ids);
    tok_free(t);
    model_free(m);
}

TEST_MAIN(TEST_CASE(calls_in_text), TEST_CASE(bare_calls), TEST_CASE(stream_holds_back_a_possible_tag),
          TEST_CASE(conversation_rendered), TEST_CASE(completion_logprobs_offsets))

#else

int main(void)
{
    puts("test-serve-tools: skipped: built without the server (libcjson)");
    return 77;
}

#endif
