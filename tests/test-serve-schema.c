/*
 * test-serve-schema: response_format json_schema's compiler
 * (tools/serve-schema.c) on the schemas clients send: OpenAI strict mode,
 * pydantic v2's model_json_schema() ($defs, $ref, Optional as anyOf with
 * null, enums), recursive definitions; the canonical texts of enum and const
 * values; every refusal naming its keyword and path; and the request parser
 * handing the compiled tables over (r.schema) or answering 400 naming
 * response_format. The tables are checked for sane indices after every
 * compile. Built with the server's sources when libcjson is found; skips
 * otherwise.
 */
#include <stdio.h>
#include <string.h>

#include "test.h"

#ifdef HEARTH_WITH_SERVER

#include <cjson/cJSON.h>
#include <stdlib.h>

#include "json-schema.h"
#include "serve.h"

/* Every index in range: the guard follows them without checks of its own. */
static bool tables_sane(const struct js_schema *s)
{
    bool ok = s->n_nodes >= 1;
    for (int32_t i = 0; i < s->n_nodes; i++) {
        const struct js_node *n = &s->nodes[i];
        ok &= n->kinds != 0 && (n->kinds & ~JS_ANY) == 0;
        ok &= n->kinds == JS_ANY || !((n->kinds & JS_NUMBER) && (n->kinds & JS_INTEGER));
        ok &= n->obj >= -1 && n->obj < s->n_objs && (n->obj < 0 || (n->kinds & JS_OBJECT));
        ok &= n->items >= -1 && n->items < s->n_nodes;
        ok &= n->min_items <= n->max_items;
        ok &= n->n_enum >= 0 && n->n_enum <= JS_MAX_ENUM && n->enum0 >= 0 &&
              n->enum0 + n->n_enum <= s->n_enums;
    }
    for (int32_t i = 0; i < s->n_objs; i++) {
        const struct js_obj *o = &s->objs[i];
        ok &= o->prop0 >= 0 && o->n_props >= 0 && o->n_props <= JS_MAX_PROPS &&
              o->prop0 + o->n_props <= s->n_props;
        ok &= o->n_props == 64 || (o->required >> o->n_props) == 0;
    }
    for (int32_t i = 0; i < s->n_props; i++)
        ok &= s->props[i].node >= 0 && s->props[i].node < s->n_nodes &&
              s->props[i].name_off + s->props[i].name_len <= s->arena_len;
    for (int32_t i = 0; i < s->n_enums; i++)
        ok &= s->enums[i].len > 0 && s->enums[i].off + s->enums[i].len <= s->arena_len;
    return ok;
}

/* Compiles text (which must be accepted); the tree is gone before the tables are read. */
static bool compile(const char *text, struct js_schema *s)
{
    cJSON *j = cJSON_Parse(text);
    struct serve_error e = {0};
    if (!j) {
        TEST_FAIL_AT("not JSON: %s", text);
        return false;
    }
    bool ok = serve_schema_compile(j, s, &e);
    cJSON_Delete(j);
    CHECK_MSG(ok, "refused: %s", e.message);
    if (ok)
        CHECK_MSG(tables_sane(s), "tables of %s", text);
    return ok;
}

/* The node of property name in object obj (-2: not listed); *req: whether it is required. */
static int32_t prop(const struct js_schema *s, int32_t obj, const char *name, bool *req)
{
    if (obj < 0 || obj >= s->n_objs)
        return -2;
    const struct js_obj *o = &s->objs[obj];
    for (int32_t i = 0; i < o->n_props; i++) {
        const struct js_prop *p = &s->props[o->prop0 + i];
        if (p->name_len == strlen(name) && !memcmp(s->arena + p->name_off, name, p->name_len)) {
            *req = (o->required >> i) & 1;
            return p->node;
        }
    }
    return -2;
}

/* Enum value i of node as a string (one buffer, overwritten per call). */
static const char *enum_text(const struct js_schema *s, int32_t node, int i)
{
    static char buf[256];
    const struct js_enum *en = &s->enums[s->nodes[node].enum0 + i];
    snprintf(buf, sizeof buf, "%.*s", (int)en->len, s->arena + en->off);
    return buf;
}

/* text must be refused: 400, param response_format, the message holding `names`. */
static void check_refused(const char *text, const char *names)
{
    cJSON *j = cJSON_Parse(text);
    if (!j) {
        TEST_FAIL_AT("not JSON: %s", text);
        return;
    }
    struct js_schema s;
    struct serve_error e = {0};
    bool ok = serve_schema_compile(j, &s, &e);
    cJSON_Delete(j);
    CHECK_MSG(!ok, "accepted: %s", text);
    if (ok) {
        js_schema_free(&s);
        return;
    }
    CHECK_INT_EQ(e.http, 400);
    CHECK_STR_EQ(e.param, "response_format");
    CHECK_MSG(strstr(e.message, names) != NULL, "%s: \"%s\" does not hold \"%s\"", text, e.message,
              names);
    CHECK(s.nodes == NULL && s.n_nodes == 0 && s.arena == NULL);
}

TEST(openai_strict)
{
    struct js_schema s;
    if (!compile("{\"type\": \"object\", \"properties\": {"
                 " \"name\": {\"type\": \"string\", \"description\": \"the full name\"},"
                 " \"age\": {\"type\": [\"integer\", \"null\"]},"
                 " \"address\": {\"type\": \"object\", \"properties\": {"
                 "   \"city\": {\"type\": \"string\"}, \"zip\": {\"type\": \"string\"}},"
                 "   \"required\": [\"city\", \"zip\"], \"additionalProperties\": false},"
                 " \"tags\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}},"
                 " \"nickname\": {\"type\": [\"string\", \"null\"]}},"
                 " \"required\": [\"name\", \"age\", \"address\", \"tags\", \"nickname\"],"
                 " \"additionalProperties\": false}",
                 &s))
        return;
    const struct js_node *root = &s.nodes[0];
    CHECK_INT_EQ(root->kinds, JS_OBJECT);
    CHECK_INT_EQ(root->n_enum, 0);
    const struct js_obj *o = &s.objs[root->obj];
    CHECK_INT_EQ(o->n_props, 5);
    CHECK_INT_EQ(o->required, 0x1f);
    /* properties keep the schema's order */
    CHECK(s.props[o->prop0].name_len == 4 &&
          !memcmp(s.arena + s.props[o->prop0].name_off, "name", 4));
    bool req = false;
    int32_t name = prop(&s, root->obj, "name", &req);
    CHECK(name >= 0 && req && s.nodes[name].kinds == JS_STRING);
    int32_t age = prop(&s, root->obj, "age", &req);
    CHECK(age >= 0 && s.nodes[age].kinds == (JS_INTEGER | JS_NULL));
    int32_t addr = prop(&s, root->obj, "address", &req);
    if (addr >= 0) {
        CHECK_INT_EQ(s.nodes[addr].kinds, JS_OBJECT);
        CHECK_INT_EQ(s.objs[s.nodes[addr].obj].n_props, 2);
        CHECK_INT_EQ(s.objs[s.nodes[addr].obj].required, 3);
        int32_t zip = prop(&s, s.nodes[addr].obj, "zip", &req);
        CHECK(zip >= 0 && req && s.nodes[zip].kinds == JS_STRING);
    } else {
        CHECK(addr >= 0);
    }
    int32_t tags = prop(&s, root->obj, "tags", &req);
    if (tags >= 0) {
        const struct js_node *t = &s.nodes[tags];
        CHECK_INT_EQ(t->kinds, JS_ARRAY);
        CHECK(t->items >= 0 && s.nodes[t->items].kinds == JS_STRING);
        CHECK_INT_EQ(t->min_items, 0);
        CHECK(t->max_items == UINT32_MAX);
        CHECK_INT_EQ(t->obj, -1);
    } else {
        CHECK(tags >= 0);
    }
    int32_t nick = prop(&s, root->obj, "nickname", &req);
    CHECK(nick >= 0 && s.nodes[nick].kinds == (JS_STRING | JS_NULL));
    CHECK_INT_EQ(prop(&s, root->obj, "other", &req), -2);
    CHECK_INT_EQ(s.n_nodes, 9);
    js_schema_free(&s);
    CHECK(s.nodes == NULL && s.n_nodes == 0);
}

/*
 * pydantic v2, model_json_schema() of
 *   class Color(str, Enum): red = "red"; green = "green"
 *   class Address(BaseModel): street: str; city: str
 *   class Person(BaseModel):
 *       name: str = Field(description="Full name"); address: Optional[Address] = None
 *       color: Color; favorite: Optional[Color] = None; scores: List[float]
 *       meta: Dict[str, Any]; age: Optional[int] = None
 */
TEST(pydantic_v2)
{
    struct js_schema s;
    if (!compile(
            "{\"$defs\": {\"Address\": {\"properties\": {\"street\": {\"title\": \"Street\", "
            "\"type\": \"string\"}, \"city\": {\"title\": \"City\", \"type\": \"string\"}}, "
            "\"required\": [\"street\", \"city\"], \"title\": \"Address\", \"type\": "
            "\"object\"}, \"Color\": {\"enum\": [\"red\", \"green\"], \"title\": \"Color\", "
            "\"type\": \"string\"}}, \"properties\": {\"name\": {\"description\": \"Full name\", "
            "\"title\": \"Name\", \"type\": \"string\"}, \"address\": {\"anyOf\": [{\"$ref\": "
            "\"#/$defs/Address\"}, {\"type\": \"null\"}], \"default\": null}, \"color\": "
            "{\"$ref\": \"#/$defs/Color\"}, \"favorite\": {\"anyOf\": [{\"$ref\": "
            "\"#/$defs/Color\"}, {\"type\": \"null\"}], \"default\": null}, \"scores\": "
            "{\"items\": {\"type\": \"number\"}, \"title\": \"Scores\", \"type\": \"array\"}, "
            "\"meta\": {\"additionalProperties\": true, \"title\": \"Meta\", \"type\": "
            "\"object\"}, \"age\": {\"anyOf\": [{\"type\": \"integer\"}, {\"type\": \"null\"}], "
            "\"default\": null, \"title\": \"Age\"}}, \"required\": [\"name\", \"color\", "
            "\"scores\", \"meta\"], \"title\": \"Person\", \"type\": \"object\", "
            "\"$schema\": \"https://json-schema.org/draft/2020-12/schema\"}",
            &s))
        return;
    int32_t root = s.nodes[0].obj;
    CHECK_INT_EQ(s.nodes[0].kinds, JS_OBJECT);
    CHECK_INT_EQ(s.objs[root].n_props, 7);
    CHECK_INT_EQ(s.objs[root].required, 0x35); /* name, color, scores, meta */
    bool req = true;
    int32_t addr = prop(&s, root, "address", &req);
    CHECK(!req);
    int32_t aobj = addr >= 0 ? s.nodes[addr].obj : -1;
    CHECK(addr >= 0 && s.nodes[addr].kinds == (JS_OBJECT | JS_NULL) && aobj >= 0);
    if (aobj >= 0) {
        CHECK_INT_EQ(s.objs[aobj].n_props, 2);
        CHECK_INT_EQ(s.objs[aobj].required, 3);
        int32_t city = prop(&s, aobj, "city", &req);
        CHECK(city >= 0 && s.nodes[city].kinds == JS_STRING);
    }
    /* the enum def: its values, quoted */
    int32_t color = prop(&s, root, "color", &req);
    if (color >= 0) {
        CHECK(req);
        CHECK_INT_EQ(s.nodes[color].kinds, JS_STRING);
        CHECK_INT_EQ(s.nodes[color].n_enum, 2);
        CHECK_STR_EQ(enum_text(&s, color, 0), "\"red\"");
        CHECK_STR_EQ(enum_text(&s, color, 1), "\"green\"");
    } else {
        CHECK(color >= 0);
    }
    /* Optional[Color]: the values and null, as one list */
    int32_t fav = prop(&s, root, "favorite", &req);
    if (fav >= 0) {
        CHECK_INT_EQ(s.nodes[fav].kinds, JS_STRING | JS_NULL);
        CHECK_INT_EQ(s.nodes[fav].n_enum, 3);
        CHECK_STR_EQ(enum_text(&s, fav, 0), "\"red\"");
        CHECK_STR_EQ(enum_text(&s, fav, 2), "null");
    } else {
        CHECK(fav >= 0);
    }
    int32_t scores = prop(&s, root, "scores", &req);
    CHECK(scores >= 0 && s.nodes[scores].kinds == JS_ARRAY && s.nodes[scores].items >= 0 &&
          s.nodes[s.nodes[scores].items].kinds == JS_NUMBER);
    int32_t meta = prop(&s, root, "meta", &req);
    CHECK(meta >= 0 && s.nodes[meta].kinds == JS_OBJECT && s.nodes[meta].obj == -1);
    int32_t age = prop(&s, root, "age", &req);
    CHECK(age >= 0 && s.nodes[age].kinds == (JS_INTEGER | JS_NULL) && s.nodes[age].n_enum == 0);
    js_schema_free(&s);
}

TEST(recursive)
{
    struct js_schema s;
    /* a tree: children's items are the root's node itself */
    if (compile("{\"$defs\": {\"Node\": {\"type\": \"object\", \"properties\": {"
                " \"name\": {\"type\": \"string\"},"
                " \"children\": {\"type\": \"array\", \"items\": {\"$ref\": \"#/$defs/Node\"}}},"
                " \"required\": [\"name\", \"children\"], \"additionalProperties\": false}},"
                " \"$ref\": \"#/$defs/Node\"}",
                &s)) {
        bool req;
        CHECK_INT_EQ(s.nodes[0].kinds, JS_OBJECT);
        int32_t ch = prop(&s, s.nodes[0].obj, "children", &req);
        CHECK(ch >= 0 && req && s.nodes[ch].kinds == JS_ARRAY && s.nodes[ch].items == 0);
        CHECK_INT_EQ(s.n_nodes, 3);
        CHECK_INT_EQ(s.n_objs, 1);
        js_schema_free(&s);
    }
    /* a linked list through Optional (anyOf [$ref to itself, null]), under "definitions" */
    if (compile("{\"type\": \"object\", \"properties\": {\"head\": {\"$ref\": "
                "\"#/definitions/Cell\"}}, \"definitions\": {\"Cell\": {\"type\": \"object\","
                " \"properties\": {\"v\": {\"type\": \"integer\"}, \"next\": {\"anyOf\": ["
                "{\"$ref\": \"#/definitions/Cell\"}, {\"type\": \"null\"}]}}}}}",
                &s)) {
        bool req;
        int32_t head = prop(&s, s.nodes[0].obj, "head", &req);
        int32_t cell = head >= 0 ? s.nodes[head].obj : -1;
        int32_t next = prop(&s, cell, "next", &req);
        CHECK(next >= 0 && s.nodes[next].kinds == (JS_OBJECT | JS_NULL));
        /* the same object, not a copy: the list can go on forever */
        CHECK(next >= 0 && s.nodes[next].obj == cell);
        CHECK_INT_EQ(s.n_objs, 2);
        js_schema_free(&s);
    }
    /* a definition used twice is compiled once */
    if (compile("{\"type\": \"array\", \"items\": {\"type\": \"object\", \"properties\": {"
                " \"a\": {\"$ref\": \"#/$defs/P\"}, \"b\": {\"$ref\": \"#/$defs/P\"}}},"
                " \"$defs\": {\"P\": {\"type\": \"object\", \"properties\": {\"x\": {}}}}}",
                &s)) {
        bool req;
        int32_t item = s.nodes[0].items;
        int32_t a = prop(&s, s.nodes[item].obj, "a", &req),
                b = prop(&s, s.nodes[item].obj, "b", &req);
        CHECK(a >= 0 && a == b);
        int32_t x = prop(&s, s.nodes[a].obj, "x", &req);
        CHECK(x >= 0 && s.nodes[x].kinds == JS_ANY);
        js_schema_free(&s);
    }
}

TEST(kinds_and_arrays)
{
    static const struct {
        const char *schema;
        uint8_t kinds;
        int32_t obj; /* -1: any object; else the properties of the node's object */
    } cases[] = {
        {"{}", JS_ANY, -1},
        {"true", JS_ANY, -1},
        {"{\"title\": \"anything\", \"description\": \"at all\"}", JS_ANY, -1},
        {"{\"type\": [\"number\", \"integer\"]}", JS_NUMBER, -1},
        {"{\"type\": [\"null\", \"boolean\", \"object\", \"array\", \"number\", \"string\", "
         "\"integer\"]}",
         JS_ANY, -1},
        {"{\"type\": \"integer\"}", JS_INTEGER, -1},
        {"{\"type\": \"boolean\"}", JS_BOOL, -1},
        {"{\"properties\": {\"a\": {}}}", JS_OBJECT, 1},
        {"{\"items\": {\"type\": \"null\"}}", JS_ARRAY, -1},
        {"{\"type\": \"object\"}", JS_OBJECT, -1},
        {"{\"type\": \"object\", \"additionalProperties\": true}", JS_OBJECT, -1},
        {"{\"type\": \"object\", \"additionalProperties\": {}}", JS_OBJECT, -1},
        {"{\"type\": \"object\", \"required\": []}", JS_OBJECT, -1},
        {"{\"type\": \"object\", \"additionalProperties\": false}", JS_OBJECT, 0},
        {"{\"type\": \"object\", \"properties\": {}, \"required\": [], "
         "\"additionalProperties\": false}",
         JS_OBJECT, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct js_schema s;
        if (!compile(cases[i].schema, &s))
            continue;
        CHECK_MSG(s.nodes[0].kinds == cases[i].kinds, "%s: kinds 0x%x", cases[i].schema,
                  s.nodes[0].kinds);
        int32_t obj = s.nodes[0].obj;
        CHECK_MSG(cases[i].obj < 0 ? obj == -1 : obj >= 0 && s.objs[obj].n_props == cases[i].obj,
                  "%s: obj %d", cases[i].schema, obj);
        js_schema_free(&s);
    }
    struct js_schema s;
    if (compile("{\"type\": [\"array\", \"null\"], \"items\": true, \"minItems\": 1, "
                "\"maxItems\": 3}",
                &s)) {
        CHECK_INT_EQ(s.nodes[0].kinds, JS_ARRAY | JS_NULL);
        CHECK_INT_EQ(s.nodes[0].items, -1);
        CHECK_INT_EQ(s.nodes[0].min_items, 1);
        CHECK_INT_EQ(s.nodes[0].max_items, 3);
        js_schema_free(&s);
    }
    /* anyOf of an array, an object, a string: one node with each part */
    if (compile("{\"oneOf\": [{\"type\": \"array\", \"items\": {\"type\": \"string\"}, "
                "\"maxItems\": 2}, {\"type\": \"object\", \"properties\": {\"k\": {}}, "
                "\"required\": [\"k\"]}, {\"type\": \"string\"}]}",
                &s)) {
        const struct js_node *n = &s.nodes[0];
        CHECK_INT_EQ(n->kinds, JS_ARRAY | JS_OBJECT | JS_STRING);
        CHECK(n->items >= 0 && s.nodes[n->items].kinds == JS_STRING);
        CHECK_INT_EQ(n->max_items, 2);
        CHECK(n->obj >= 0 && s.objs[n->obj].required == 1);
        js_schema_free(&s);
    }
}

TEST(enum_and_const_texts)
{
    struct js_schema s;
    if (compile("{\"enum\": [\"a\", \"say \\\"hi\\\"\", \"tab\\t\", \"caf\\u00e9\", 1, 2.5, -3, "
                "1e3, true, null, \"a\"]}",
                &s)) {
        static const char *const want[] = {"\"a\"",      "\"say \\\"hi\\\"\"",
                                           "\"tab\\t\"", "\"caf\xc3\xa9\"",
                                           "1",          "2.5",
                                           "-3",         "1000",
                                           "true",       "null"};
        const struct js_node *n = &s.nodes[0];
        CHECK_INT_EQ(n->kinds, JS_STRING | JS_NUMBER | JS_BOOL | JS_NULL);
        CHECK_INT_EQ(n->n_enum, 10); /* the second "a" is the first */
        for (int i = 0; i < n->n_enum && i < 10; i++)
            CHECK_STR_EQ(enum_text(&s, 0, i), want[i]);
        js_schema_free(&s);
    }
    if (compile("{\"const\": \"only\"}", &s)) {
        CHECK_INT_EQ(s.nodes[0].kinds, JS_STRING);
        CHECK_INT_EQ(s.nodes[0].n_enum, 1);
        CHECK_STR_EQ(enum_text(&s, 0, 0), "\"only\"");
        js_schema_free(&s);
    }
    /* integers fit "integer" and are numbers as values */
    if (compile("{\"type\": \"integer\", \"enum\": [1, 2]}", &s)) {
        CHECK_INT_EQ(s.nodes[0].kinds, JS_NUMBER);
        CHECK_INT_EQ(s.nodes[0].n_enum, 2);
        js_schema_free(&s);
    }
    /* OpenAI's nullable enum */
    if (compile("{\"type\": [\"string\", \"null\"], \"enum\": [\"x\", null]}", &s)) {
        CHECK_INT_EQ(s.nodes[0].kinds, JS_STRING | JS_NULL);
        CHECK_STR_EQ(enum_text(&s, 0, 1), "null");
        js_schema_free(&s);
    }
    /* an enum alternative joined with boolean: the booleans are spelled out */
    if (compile("{\"anyOf\": [{\"const\": 0}, {\"type\": \"boolean\"}]}", &s)) {
        CHECK_INT_EQ(s.nodes[0].kinds, JS_NUMBER | JS_BOOL);
        CHECK_INT_EQ(s.nodes[0].n_enum, 3);
        CHECK_STR_EQ(enum_text(&s, 0, 0), "0");
        CHECK_STR_EQ(enum_text(&s, 0, 1), "true");
        CHECK_STR_EQ(enum_text(&s, 0, 2), "false");
        js_schema_free(&s);
    }
}

TEST(refusals)
{
    /* the message of the brief's example, whole */
    cJSON *j = cJSON_Parse("{\"type\": \"object\", \"properties\": {\"age\": "
                           "{\"type\": \"integer\", \"minimum\": 0}}}");
    struct js_schema s;
    struct serve_error e = {0};
    CHECK(!serve_schema_compile(j, &s, &e));
    CHECK_STR_EQ(e.message,
                 "response_format: schema /properties/age: 'minimum' is not supported (hearth "
                 "enforces type, properties, required, items, minItems, maxItems, enum, const, "
                 "anyOf/oneOf of different kinds, $ref to $defs)");
    cJSON_Delete(j);

    static const char *const unsupported[] = {"minimum",
                                              "maximum",
                                              "exclusiveMinimum",
                                              "pattern",
                                              "format",
                                              "minLength",
                                              "maxLength",
                                              "multipleOf",
                                              "uniqueItems",
                                              "allOf",
                                              "not",
                                              "if",
                                              "patternProperties",
                                              "propertyNames",
                                              "dependentRequired",
                                              "prefixItems",
                                              "contains",
                                              "minProperties",
                                              "unevaluatedProperties",
                                              "nullable"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        char text[256], want[64];
        snprintf(text, sizeof text, "{\"type\": \"array\", \"items\": {\"%s\": 1}}",
                 unsupported[i]);
        snprintf(want, sizeof want, "/items: '%s' is not supported", unsupported[i]);
        check_refused(text, want);
    }
    static const struct {
        const char *schema, *names;
    } cases[] = {
        {"false", "false"},
        {"{\"properties\": {\"a\": false}}", "/properties/a: the schema false"},
        {"[1]", "object or a boolean"},
        {"{\"type\": \"float\"}", "'type'"},
        {"{\"type\": []}", "'type'"},
        /* objects */
        {"{\"type\": \"object\", \"properties\": {\"a\": {}}, \"additionalProperties\": true}",
         "additionalProperties"},
        {"{\"properties\": {\"a\": {}}, \"additionalProperties\": {\"type\": \"string\"}}",
         "additionalProperties"},
        {"{\"type\": \"object\", \"additionalProperties\": {\"type\": \"integer\"}}",
         "additionalProperties"},
        {"{\"properties\": {\"a\": {}}, \"required\": [\"b\"]}", "'required' names b"},
        {"{\"type\": \"object\", \"required\": [\"b\"]}", "'required'"},
        {"{\"properties\": {\"a\": {}}, \"required\": \"a\"}", "'required'"},
        {"{\"properties\": {\"a\": {}}, \"required\": [3]}", "'required'"},
        {"{\"properties\": {\"\": {}}}", "'properties' name \"\""},
        {"{\"properties\": {\"a\\\"b\": {}}}", "'properties' name \"a\"b\""},
        {"{\"properties\": {\"a\\\\b\": {}}}", "'properties' name"},
        {"{\"properties\": {\"a\\nb\": {}}}", "'properties' name"},
        {"{\"properties\": {\"a\": {}, \"a\": {}}}", "twice"},
        {"{\"properties\": []}", "'properties'"},
        /* arrays */
        {"{\"type\": \"array\", \"minItems\": -1}", "'minItems'"},
        {"{\"type\": \"array\", \"minItems\": 1.5}", "'minItems'"},
        {"{\"type\": \"array\", \"maxItems\": \"2\"}", "'maxItems'"},
        {"{\"type\": \"array\", \"minItems\": 3, \"maxItems\": 2}", "'minItems' 3 is above"},
        {"{\"type\": \"array\", \"items\": [{}, {}]}", "'items' as an array"},
        {"{\"type\": \"array\", \"items\": {\"type\": \"number\", \"multipleOf\": 2}}",
         "/items: 'multipleOf'"},
        /* enum and const */
        {"{\"enum\": []}", "'enum'"},
        {"{\"enum\": \"a\"}", "'enum'"},
        {"{\"enum\": [{\"a\": 1}]}", "'enum' values"},
        {"{\"enum\": [[1]]}", "'enum' values"},
        {"{\"const\": {\"a\": 1}}", "'const' values"},
        {"{\"enum\": [1], \"const\": 1}", "'const' beside 'enum'"},
        {"{\"type\": \"string\", \"enum\": [\"a\", 1]}", "'enum' holds a number"},
        {"{\"type\": \"integer\", \"enum\": [1.5]}", "non-integer"},
        {"{\"type\": \"boolean\", \"const\": null}", "'const' holds a null"},
        /* anyOf / oneOf */
        {"{\"anyOf\": [{\"type\": \"string\"}, {\"type\": \"string\", \"enum\": [\"a\"]}]}",
         "'anyOf' alternative 1 is again of kind string"},
        {"{\"anyOf\": [{\"type\": \"integer\"}, {\"type\": \"number\"}]}", "'anyOf'"},
        {"{\"oneOf\": [{\"type\": \"object\"}, {\"properties\": {\"a\": {}}}]}", "'oneOf'"},
        {"{\"anyOf\": [{}, {\"type\": \"null\"}]}", "'anyOf'"},
        {"{\"anyOf\": [{\"enum\": [\"a\"]}, {\"type\": \"integer\"}]}", "'anyOf' joins enum"},
        {"{\"anyOf\": []}", "'anyOf'"},
        {"{\"anyOf\": [{\"type\": \"null\"}], \"type\": \"null\"}", "'anyOf' beside 'type'"},
        {"{\"anyOf\": [{\"type\": \"null\"}], \"oneOf\": [{\"type\": \"string\"}]}",
         "'anyOf' beside 'oneOf'"},
        {"{\"anyOf\": [{\"type\": \"null\"}, {\"type\": \"string\", \"pattern\": \"a\"}]}",
         "/anyOf/1: 'pattern'"},
        /* $ref */
        {"{\"$ref\": \"https://example.com/s.json\"}", "'$ref' \"https://example.com/s.json\""},
        {"{\"properties\": {\"a\": {}, \"b\": {\"$ref\": \"#/properties/a\"}}}", "'$ref'"},
        {"{\"$ref\": \"#\"}", "'$ref'"},
        {"{\"$ref\": \"#/$defs/missing\", \"$defs\": {}}", "names no definition"},
        {"{\"$ref\": \"#/$defs/A/properties/x\", \"$defs\": {\"A\": {\"properties\": {\"x\": "
         "{}}}}}",
         "'$ref'"},
        {"{\"$ref\": \"#/$defs/A\", \"type\": \"object\", \"$defs\": {\"A\": {}}}",
         "'$ref' beside 'type'"},
        {"{\"$ref\": 3}", "'$ref' must be a string"},
        {"{\"$defs\": {\"A\": {\"anyOf\": [{\"$ref\": \"#/$defs/A\"}, {\"type\": \"null\"}]}},"
         " \"$ref\": \"#/$defs/A\"}",
         "alternative of itself"},
        {"{\"$defs\": {\"A\": {\"$ref\": \"#/$defs/B\"}, \"B\": {\"$ref\": \"#/$defs/A\"}},"
         " \"$ref\": \"#/$defs/A\"}",
         "other $refs"},
        /* refusals inside a definition name the definition's path */
        {"{\"$defs\": {\"A\": {\"type\": \"string\", \"format\": \"email\"}}, \"properties\": "
         "{\"a\": {\"$ref\": \"#/$defs/A\"}}}",
         "schema /$defs/A: 'format' is not supported"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_refused(cases[i].schema, cases[i].names);
}

/* Builds text into a growing buffer (the generated schemas are large). */
struct buf {
    char *p;
    size_t n, cap;
};

static void put(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort(); /* a test out of memory has nothing to report */
    }
    memcpy(b->p + b->n, s, n + 1);
    b->n += n;
}

TEST(limits)
{
    /* nesting: 64 inline levels pass, 65 do not */
    for (int levels = 64; levels <= 65; levels++) {
        struct buf b = {0};
        for (int i = 0; i < levels; i++)
            put(&b, "{\"type\": \"array\", \"items\": ");
        put(&b, "{}");
        for (int i = 0; i < levels; i++)
            put(&b, "}");
        if (levels == 64) {
            struct js_schema s;
            if (compile(b.p, &s)) {
                CHECK_INT_EQ(s.n_nodes, 64);
                js_schema_free(&s);
            }
        } else {
            check_refused(b.p, "deeper than 64");
        }
        free(b.p);
    }
    /* 65 properties; 64 pass */
    for (int n = 64; n <= 65; n++) {
        struct buf b = {0};
        put(&b, "{\"properties\": {");
        for (int i = 0; i < n; i++) {
            char p[32];
            snprintf(p, sizeof p, "%s\"p%d\": {}", i ? ", " : "", i);
            put(&b, p);
        }
        put(&b, "}}");
        struct js_schema s;
        if (n == 64 && compile(b.p, &s))
            js_schema_free(&s);
        if (n == 65)
            check_refused(b.p, "'properties' lists 65");
        free(b.p);
    }
    /* 65 enum values */
    struct buf b = {0};
    put(&b, "{\"enum\": [0");
    for (int i = 1; i < 65; i++) {
        char v[16];
        snprintf(v, sizeof v, ", %d", i);
        put(&b, v);
    }
    put(&b, "]}");
    check_refused(b.p, "'enum'");
    free(b.p);
    /* 1 + 64 + 64 * 64 nodes */
    b = (struct buf){0};
    put(&b, "{\"properties\": {");
    for (int i = 0; i < 64; i++) {
        char p[64];
        snprintf(p, sizeof p, "%s\"p%d\": {\"properties\": {", i ? ", " : "", i);
        put(&b, p);
        for (int k = 0; k < 64; k++) {
            snprintf(p, sizeof p, "%s\"q%d\": {\"type\": \"string\"}", k ? ", " : "", k);
            put(&b, p);
        }
        put(&b, "}}");
    }
    put(&b, "}}");
    check_refused(b.p, "more than 4096 schema nodes");
    free(b.p);
}

/* Parses a chat body; expect_ok: accepted, else 400 naming response_format holding `names`. */
static void request(const char *body, bool expect_ok, const char *names, struct serve_req *r)
{
    struct serve_error e = {0};
    bool ok = serve_parse_request(body, strlen(body), true, r, &e);
    CHECK_MSG(ok == expect_ok, "%s: %s", body, ok ? "accepted" : e.message);
    if (!ok && !expect_ok) {
        CHECK_INT_EQ(e.http, 400);
        CHECK_STR_EQ(e.param, "response_format");
        CHECK_MSG(strstr(e.message, names) != NULL, "\"%s\" does not hold \"%s\"", e.message,
                  names);
    }
}

#define MSGS "\"messages\": [{\"role\": \"user\", \"content\": \"Who?\"}]"

TEST(request_response_format)
{
    struct serve_req r;
    request("{" MSGS ", \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {"
            "\"name\": \"person\", \"strict\": true, \"schema\": {\"type\": \"object\", "
            "\"properties\": {\"name\": {\"type\": \"string\"}}, \"required\": [\"name\"], "
            "\"additionalProperties\": false}}}}",
            true, NULL, &r);
    CHECK(r.schema != NULL && !r.json_object);
    if (r.schema) {
        CHECK_INT_EQ(r.schema->n_nodes, 2);
        CHECK_INT_EQ(r.schema->nodes[0].kinds, JS_OBJECT);
    }
    serve_req_free(&r);
    CHECK(r.schema == NULL);
    request("{" MSGS ", \"response_format\": {\"type\": \"json_object\"}}", true, NULL, &r);
    CHECK(r.json_object && r.schema == NULL);
    serve_req_free(&r);
    request("{" MSGS ", \"response_format\": {\"type\": \"text\"}}", true, NULL, &r);
    CHECK(!r.json_object && r.schema == NULL);
    serve_req_free(&r);

    static const struct {
        const char *rf, *names;
    } bad[] = {
        {"{\"type\": \"json_schema\"}", "json_schema"},
        {"{\"type\": \"json_schema\", \"json_schema\": \"x\"}", "json_schema"},
        {"{\"type\": \"json_schema\", \"json_schema\": {\"name\": \"x\"}}", "\"schema\""},
        {"{\"type\": \"json_schema\", \"json_schema\": {\"schema\": {\"type\": \"string\", "
         "\"maxLength\": 3}}}",
         "'maxLength' is not supported"},
        {"{\"type\": \"xml\"}", "json_schema"},
        {"\"json_object\"", "json_object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "{" MSGS ", \"response_format\": %s}", bad[i].rf);
        request(body, false, bad[i].names, &r);
    }
    /* a forced call already decides how the reply opens */
    request("{" MSGS ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}],"
            " \"tool_choice\": \"required\", \"response_format\": {\"type\": \"json_schema\","
            " \"json_schema\": {\"name\": \"n\", \"schema\": {}}}}",
            false, "tool_choice", &r);
}

TEST_MAIN(TEST_CASE(openai_strict), TEST_CASE(pydantic_v2), TEST_CASE(recursive),
          TEST_CASE(kinds_and_arrays), TEST_CASE(enum_and_const_texts), TEST_CASE(refusals),
          TEST_CASE(limits), TEST_CASE(request_response_format))

#else

int main(void)
{
    puts("test-serve-schema: skipped: built without the server (libcjson)");
    return 77;
}

#endif
