/*
 * test-serve-tools: the server's function calling without a model
 * (tools/serve-tools.c, with the request parser it plugs into): tool calls
 * found in reply text, the content before them, text that only looks like a
 * call staying text, the streaming hold-back at a possible opening tag, and
 * a conversation's tools, calls and results written into the messages the
 * chat template renders (a call written back parses to the same call).
 * Built with the server's sources when libcjson is found; skips otherwise.
 */
#include <stdio.h>
#include <string.h>

#include "test.h"

#ifdef HEARTH_WITH_SERVER

#include <cjson/cJSON.h>

#include "serve.h"

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
    return serve_tools_parse(text, strlen(text), "call_t", content_len);
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

TEST(stream_holds_back_a_possible_tag)
{
    static const struct {
        const char *text;
        size_t safe;
    } cases[] = {{"Hello", 5},          {"Hello <tool", 6}, {"Hello <tool_call>{\"n", 6},
                 {"a<", 1},             {"<tool_call", 0},  {"x < y", 5},
                 {"<tool_cal x", 11},   {"", 0},            {"<<tool_call>", 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(serve_tools_safe_len(cases[i].text, strlen(cases[i].text)) == cases[i].safe,
                  "'%s': %zu, expected %zu", cases[i].text,
                  serve_tools_safe_len(cases[i].text, strlen(cases[i].text)), cases[i].safe);
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
    /* the call written back parses to the same call */
    CHECK(!strcmp(r.msgs[2].role, "assistant"));
    size_t cl = 0;
    cJSON *calls = serve_tools_parse(r.msgs[2].content, strlen(r.msgs[2].content), "x", &cl);
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
    if (accept("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\":"
               " \"function\", \"function\": {\"name\": \"f\"}}], \"tool_choice\": \"required\"}",
               &r)) {
        CHECK(r.tool_prefill && !strcmp(r.tool_prefill, "<tool_call>\n{\"name\": \""));
        serve_req_free(&r);
    }
}

TEST_MAIN(TEST_CASE(calls_in_text), TEST_CASE(stream_holds_back_a_possible_tag),
          TEST_CASE(conversation_rendered))

#else

int main(void)
{
    puts("test-serve-tools: skipped: built without the server (libcjson)");
    return 77;
}

#endif
