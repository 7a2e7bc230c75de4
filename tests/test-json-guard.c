/*
 * test-json-guard: the incremental JSON recognizer behind response_format
 * json_object (core/json-guard.h).
 *
 *  - valid texts (objects with every kind of value, numbers in every form,
 *    escapes, multi-byte characters) are accepted whole, byte by byte and in
 *    random pieces, done only at their end; each proper prefix is accepted
 *    and not done;
 *  - invalid texts are refused at the first byte that makes them so (the
 *    test names that byte): trailing commas, missing colons, leading zeros,
 *    bad escapes, control bytes, overlong and surrogate UTF-8, a closer of
 *    the wrong kind, too deep a nesting, too long a run of whitespace;
 *  - object_only refuses any other top-level value;
 *  - on SmolLM2's vocabulary (jg_allows): "{" may open, words may not, the
 *    end-of-generation token only once the object is closed; the sweep of
 *    the sorted vocabulary (jg_candidates) finds exactly the same tokens;
 *  - with a schema (hand-built tables): kinds, keys (only the properties,
 *    each once, required ones before the close), integers, array lengths,
 *    enum values (also numbers that prefix each other), nullable strings,
 *    an unconstrained subtree, recursion up to JS_MAX_NEST frames.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-guard.h"
#include "model.h"
#include "test.h"
#include "tokenizer.h"

static const char *const valid[] = {
    "{}",
    " {\"a\": 1}",
    "{\"a\":[1,2,3],\"b\":{\"c\":null},\"d\":true,\"e\":false}",
    "{\"n\": [0, -0, 12, -3.25, 1e9, 1E-7, 2.5e+3, 0.0, -0.5E3]}",
    "{\"s\": \"tab\\t quote\\\" slash\\/ back\\\\ \\u00e9\\uD83D\\uDE00 \\b\\f\\n\\r\"}",
    "{\"utf8\": \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\x9f\xbf \xf4\x8f\xbf\xbf\"}",
    "{\n  \"nested\": {\n    \"deep\": [[[{}]]]\n  },\n  \"empty\": [],\n  \"e\": \"\"\n}\n",
};

/* text, the index of the first byte that must be refused */
static const struct {
    const char *text;
    size_t bad;
} invalid[] = {
    {"{\"a\":1,}", 7},
    {"{\"a\" 1}", 5},
    {"{\"a\":01}", 6},
    {"{\"a\":1.}", 7},
    {"{\"a\":.5}", 5},
    {"{\"a\":-}", 6},
    {"{\"a\":1e}", 7},
    {"{\"a\":tru}", 8},
    {"{\"a\":nul1}", 8},
    {"{\"a\":\"\\q\"}", 7},
    {"{\"a\":\"\\u12G4\"}", 10},
    {"{\"a\":\"x\x01\"}", 7},
    {"{\"a\":\"\xc0\x80\"}", 6},
    {"{\"a\":\"\xed\xa0\x80\"}", 7},
    {"{\"a\":\"\xe0\x80\x80\"}", 7},
    {"{\"a\":\"\xf5\"}", 6},
    {"{\"a\":\"\xc3(\"}", 7},
    {"{\"a\":[1}", 7},
    {"{\"a\":{]", 6},
    {"{1:2}", 1},
    {"{\"a\":1}}", 7},
    {"{\"a\":1} x", 8},
    {"{,}", 1},
    {"{\"a\":[1,]}", 8},
    {"{\"a\":[,1]}", 6},
    {"{\"a\" : : 1}", 7},
};

static void expect_valid(const char *text, bool object_only)
{
    const size_t n = strlen(text);
    struct jg_state s;
    jg_init(&s, object_only);
    for (size_t i = 0; i < n; i++) {
        CHECK_MSG(jg_feed(&s, text + i, 1), "%s: byte %zu refused", text, i);
        /* a proper prefix of an object is never complete (trailing whitespace aside) */
        bool rest_ws = strspn(text + i + 1, " \n") == n - i - 1;
        if (!rest_ws)
            CHECK_MSG(!jg_done(&s), "%s: done after byte %zu", text, i);
    }
    CHECK_MSG(jg_done(&s), "%s: not done at its end", text);
    /* random pieces give the same answer */
    for (int r = 0; r < 20; r++) {
        jg_init(&s, object_only);
        bool ok = true;
        for (size_t at = 0; at < n && ok;) {
            size_t k = 1 + (size_t)(test_rng_u64() % 7);
            k = k > n - at ? n - at : k;
            ok = jg_feed(&s, text + at, k);
            at += k;
        }
        CHECK_MSG(ok && jg_done(&s), "%s: refused or not done when fed in pieces", text);
    }
}

TEST(valid_texts)
{
    test_rng_seed(3);
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        expect_valid(valid[i], true);
    /* without object_only: any value at the top */
    const char *tops[] = {"[1, {\"a\": []}]", "\"text\"", "true", "null", "-12.5e3", "0"};
    for (size_t i = 0; i < sizeof tops / sizeof tops[0]; i++) {
        struct jg_state s;
        jg_init(&s, false);
        CHECK_MSG(jg_feed(&s, tops[i], strlen(tops[i])) && jg_done(&s), "%s", tops[i]);
        jg_init(&s, true);
        CHECK_MSG(!jg_feed(&s, tops[i], strlen(tops[i])), "%s accepted with object_only",
                  tops[i]);
    }
}

TEST(invalid_texts)
{
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        const char *t = invalid[i].text;
        struct jg_state s;
        jg_init(&s, true);
        size_t at = 0;
        while (at < strlen(t) && jg_feed(&s, t + at, 1))
            at++;
        CHECK_MSG(at == invalid[i].bad, "%s: refused at byte %zu, expected %zu", t, at,
                  invalid[i].bad);
    }
}

TEST(limits)
{
    char deep[2 * JG_MAX_DEPTH + 8];
    struct jg_state s;
    /* JG_MAX_DEPTH levels are fine, one more is refused */
    size_t n = 0;
    deep[n++] = '{';
    deep[n++] = '"';
    deep[n++] = 'a';
    deep[n++] = '"';
    deep[n++] = ':';
    for (int d = 1; d < JG_MAX_DEPTH; d++)
        deep[n++] = '[';
    jg_init(&s, true);
    CHECK(jg_feed(&s, deep, n));
    CHECK(!jg_feed(&s, "[", 1));
    char ws[JG_MAX_WS + 2];
    memset(ws, ' ', sizeof ws);
    jg_init(&s, true);
    CHECK(jg_feed(&s, "{", 1) && jg_feed(&s, ws, JG_MAX_WS));
    CHECK(!jg_feed(&s, " ", 1));
    jg_init(&s, true);
    CHECK(jg_feed(&s, "{", 1) && jg_feed(&s, ws, JG_MAX_WS) && jg_feed(&s, "}", 1));
    CHECK(jg_done(&s));
}

/* SmolLM2's model (for its file) and tokenizer; NULL after a failed check. */
static struct tokenizer *load_vocab(struct model **m)
{
    const char *path = test_model_path(TEST_SMOLLM2);
    struct tokenizer *t = NULL;
    if (!path || model_load(path, m) != HEARTH_OK || tok_load((*m)->gguf, &t) != HEARTH_OK) {
        TEST_FAIL_AT("cannot load SmolLM2's tokenizer: %s", hearth_last_error());
        return NULL;
    }
    return t;
}

/* jg_candidates gives exactly the tokens jg_allows accepts from s. */
static void check_candidates(const struct tokenizer *t, const struct jg_index *x,
                             const struct jg_state *s, const char *label)
{
    const size_t V = tok_n_vocab(t);
    int32_t *ids = malloc(V * sizeof *ids);
    bool *seen = calloc(V, sizeof *seen);
    REQUIRE(ids && seen);
    size_t n = jg_candidates(s, x, t, ids), brute = 0;
    REQUIRE(n != SIZE_MAX);
    for (size_t i = 0; i < n; i++)
        seen[ids[i]] = true;
    for (int32_t id = 0; id < (int32_t)V; id++) {
        bool ok = jg_allows(s, t, id, false);
        brute += ok;
        if (ok != seen[id]) {
            CHECK_MSG(false, "state '%s': token %d allowed %d, found %d", label, id, ok, seen[id]);
            break;
        }
    }
    CHECK_INT_EQ(n, brute);
    free(ids);
    free(seen);
}

TEST(vocabulary)
{
    struct model *m = NULL;
    struct tokenizer *t = load_vocab(&m);
    REQUIRE(t);
    const int32_t brace = tok_find(t, "{"), word = tok_find(t, "Hello");
    const int32_t eos = tok_eos(t);
    REQUIRE(brace >= 0 && word >= 0 && eos >= 0);
    struct jg_state s;
    jg_init(&s, true);
    CHECK(jg_allows(&s, t, brace, false));
    CHECK(!jg_allows(&s, t, word, false));
    CHECK(!jg_allows(&s, t, eos, true));
    CHECK(!jg_allows(&s, t, -1, false));
    CHECK(!jg_allows(&s, t, (int32_t)tok_n_vocab(t), false));
    CHECK(jg_feed(&s, "{\"greeting\": \"", 14));
    CHECK(jg_allows(&s, t, word, false)); /* any text inside a string */
    CHECK(jg_feed(&s, "Hello\"}", 7) && jg_done(&s));
    CHECK(jg_allows(&s, t, eos, true));
    CHECK(!jg_allows(&s, t, brace, false));
    size_t n_ok = 0;
    for (int32_t id = 0; id < (int32_t)tok_n_vocab(t); id++)
        n_ok += jg_allows(&s, t, id, false);
    CHECK_INT_EQ(n_ok, 0);
    /* the sorted walk finds exactly the tokens jg_allows finds, in several states */
    struct jg_index x;
    REQUIRE(jg_index_build(t, &x));
    const char *states[] = {"", "{\"a\": \"x", "{\"a\": 12", "{\"a\": [true, ", "{\"a\"", "{}"};
    for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
        jg_init(&s, true);
        CHECK(jg_feed(&s, states[k], strlen(states[k])));
        check_candidates(t, &x, &s, states[k]);
    }
    jg_index_free(&x);
    tok_free(t);
    model_free(m);
}

/* ---- json_schema ------------------------------------------------------------------ */

/*
 * A hand-built schema (what tools/serve-schema.c would compile):
 *   0 root: object {name: 1 (string, required), age: 2 (integer, required),
 *           tags: 3 (array of 1, 1..2 items), color: 4 (enum "red" "green"),
 *           nick: 5 (string or null), meta: 6 (any), n: 7 (enum 1, 12),
 *           tree: 8}
 *   8 tree: object {value: 2 (required), children: 9}; 9: array of 8
 */
static char arena[] = "nameagetagscolornickmetantreevaluechildren\"red\"\"green\"112";
static struct js_node nodes[] = {
    {JS_OBJECT, 0, -1, 0, UINT32_MAX, 0, 0},
    {JS_STRING, -1, -1, 0, UINT32_MAX, 0, 0},
    {JS_INTEGER, -1, -1, 0, UINT32_MAX, 0, 0},
    {JS_ARRAY, -1, 1, 1, 2, 0, 0},
    {JS_STRING, -1, -1, 0, UINT32_MAX, 0, 2},
    {JS_STRING | JS_NULL, -1, -1, 0, UINT32_MAX, 0, 0},
    {JS_ANY, -1, -1, 0, UINT32_MAX, 0, 0},
    {JS_NUMBER, -1, -1, 0, UINT32_MAX, 2, 2},
    {JS_OBJECT, 1, -1, 0, UINT32_MAX, 0, 0},
    {JS_ARRAY, -1, 8, 0, UINT32_MAX, 0, 0},
};
static struct js_prop props[] = {
    {0, 4, 1}, {4, 3, 2}, {7, 4, 3}, {11, 5, 4}, {16, 4, 5}, {20, 4, 6}, {24, 1, 7}, {25, 4, 8},
    {29, 5, 2}, {34, 8, 9},
};
static struct js_obj objs[] = {{0, 8, 0x3}, {8, 2, 0x1}};
static struct js_enum enums[] = {{42, 5}, {47, 7}, {54, 1}, {55, 2}};
static const struct js_schema schema = {nodes, 10, props, 10, objs, 2, enums, 4, arena,
                                        sizeof arena - 1};

/* The first byte of text the schema refuses (strlen when none); *done: complete at the end. */
static size_t schema_stop(const char *text, bool *done)
{
    struct jg_state s;
    jg_init_schema(&s, &schema);
    size_t at = 0;
    while (text[at] && jg_feed(&s, text + at, 1))
        at++;
    *done = !text[at] && jg_done(&s);
    return at;
}

TEST(schema_valid)
{
    const char *ok[] = {
        "{\"name\": \"Tom\", \"age\": 3}",
        "{\"age\":-12,\"name\":\"x\",\"tags\":[\"a\",\"b\"],\"color\":\"green\",\"nick\":null}",
        "{\"name\":\"\",\"age\":0,\"nick\":\"T\",\"n\":12,\"color\":\"red\"}",
        "{\"name\":\"a\",\"age\":1,\"n\":1,\"meta\":{\"x\":[1,{\"y\":null}],\"z\":\"w\"}}",
        "{\"name\":\"a\",\"age\":1,\"tree\":{\"value\":1,\"children\":[{\"value\":2,"
        "\"children\":[{\"value\":3,\"children\":[]}]},{\"value\":4}]}}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        bool done;
        size_t at = schema_stop(ok[i], &done);
        CHECK_MSG(at == strlen(ok[i]) && done, "%s: refused at byte %zu (done %d)", ok[i], at,
                  done);
    }
}

TEST(schema_invalid)
{
    const struct {
        const char *text;
        size_t bad;
    } bad[] = {
        {"[", 0},                                    /* the root is an object */
        {"{\"name\":\"Tom\"}", 13},                  /* age is required */
        {"{}", 1},                                   /* so is name */
        {"{\"nam\":", 5},                            /* not a property */
        {"{\"extra\":1}", 2},                        /* not one either */
        {"{\"name\":\"a\",\"name\":", 14},           /* each key once ("n" is one too) */
        {"{\"age\":3.5", 8},                         /* an integer */
        {"{\"age\":1e3", 8},                         /* no exponent either */
        {"{\"age\":\"3\"", 7},                       /* not a string */
        {"{\"tags\":[]", 9},                         /* at least one item */
        {"{\"tags\":[\"a\",\"b\",", 16},             /* at most two */
        {"{\"tags\":[1]", 9},                        /* items are strings */
        {"{\"color\":\"blue\"", 10},                 /* an enum value */
        {"{\"color\":\"redd", 13},                   /* a whole one */
        {"{\"nick\":5", 8},                          /* string or null */
        {"{\"n\":13", 6},                            /* enum 1 or 12 */
        {"{\"n\":2", 5},
        {"{\"name\":\"a\",\"age\":1,\"tree\":{\"children\":[]}", 41}, /* value required */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool done;
        size_t at = schema_stop(bad[i].text, &done);
        CHECK_MSG(at == bad[i].bad, "%s: refused at byte %zu, expected %zu", bad[i].text, at,
                  bad[i].bad);
    }
    /* a comma no key could follow: every property already present */
    char all[512];
    snprintf(all, sizeof all, "%s", "{\"name\":\"a\",\"age\":1,\"tags\":[\"t\"],\"color\":\"red\","
                                    "\"nick\":null,\"meta\":0,\"n\":1,\"tree\":{\"value\":1}");
    bool done;
    CHECK_INT_EQ(schema_stop(all, &done), strlen(all));
    size_t len = strlen(all);
    snprintf(all + len, sizeof all - len, ",");
    CHECK_INT_EQ(schema_stop(all, &done), strlen(all) - 1);
    /* recursion deeper than JS_MAX_NEST frames is refused */
    char deep[4096];
    int n = snprintf(deep, sizeof deep, "{\"name\":\"a\",\"age\":1,\"tree\":");
    for (int d = 0; d < JS_MAX_NEST; d++)
        n += snprintf(deep + n, sizeof deep - (size_t)n, "{\"value\":1,\"children\":[");
    size_t at = schema_stop(deep, &done);
    CHECK_MSG(at < strlen(deep), "%d nested trees accepted", JS_MAX_NEST);
}

/* The sorted walk agrees with jg_allows under a schema too (frames pushed inside tokens). */
TEST(schema_candidates)
{
    struct model *m = NULL;
    struct tokenizer *t = load_vocab(&m);
    REQUIRE(t);
    struct jg_index x;
    REQUIRE(jg_index_build(t, &x));
    const char *states[] = {"", "{\"", "{\"na", "{\"name\": ", "{\"tags\": [", "{\"color\": \"",
                            "{\"n\": 1", "{\"name\":\"a\",\"age\":1,\"tree\":{\"children\":[{"};
    for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
        struct jg_state s;
        jg_init_schema(&s, &schema);
        CHECK_MSG(jg_feed(&s, states[k], strlen(states[k])), "state '%s' refused", states[k]);
        check_candidates(t, &x, &s, states[k]);
    }
    jg_index_free(&x);
    tok_free(t);
    model_free(m);
}

TEST_MAIN(TEST_CASE(valid_texts), TEST_CASE(invalid_texts), TEST_CASE(limits),
          TEST_CASE(vocabulary), TEST_CASE(schema_valid), TEST_CASE(schema_invalid),
          TEST_CASE(schema_candidates))
