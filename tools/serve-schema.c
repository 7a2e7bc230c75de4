/*
 * serve-schema: response_format json_schema's schema (a cJSON tree)
 * compiled into the tables of core/json-schema.h, which the JSON guard
 * follows. The subset and its meaning are json-schema.h's.
 *
 * A schema that becomes a node is compiled once: a memo keyed by its cJSON
 * object maps it to its node (and an object schema to its js_obj), and the
 * index is taken before the body is compiled, so a $ref that reaches a
 * definition still being compiled (a tree whose children are trees) gets
 * the index of the node in progress instead of recursing forever.
 *
 * anyOf/oneOf is not a node of its own: its alternatives are read into one
 * accumulator (struct sc_acc) and must be of different JSON kinds, so the
 * guard knows from a value's first byte which one it follows. An
 * alternative that is a $ref is read inline from the definition (its
 * properties and items are still shared through the memo); reading inline
 * rather than copying the definition's node is what lets Optional[Node]
 * appear inside Node itself, where Node's node is not finished yet.
 * A node's properties and enum values are gathered first and written as
 * one block, since compiling its children appends to the same tables.
 *
 * Keywords outside the subset are refused, never ignored: a reply that
 * ignored "minimum" would look like an answer to the schema that was sent.
 * Each refusal names the keyword and the JSON pointer of its schema.
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
#include "utf8.h"

#define SC_MAX_DEPTH 64 /* nested schemas, the root's included */
#define SC_MAX_NAME 256 /* bytes of a property name */
#define SC_SUPPORTED                                                                               \
    "(hearth enforces type, properties, required, items, minItems, maxItems, enum, const, "        \
    "anyOf/oneOf of different kinds, $ref to $defs)"

/* Keywords that constrain, as bits of sc_keys' mask, in sc_keywords' order. */
enum {
    K_TYPE = 1 << 0,
    K_PROPS = 1 << 1,
    K_REQUIRED = 1 << 2,
    K_ADDL = 1 << 3,
    K_ITEMS = 1 << 4,
    K_MIN = 1 << 5,
    K_MAX = 1 << 6,
    K_ENUM = 1 << 7,
    K_CONST = 1 << 8,
    K_ANYOF = 1 << 9,
    K_ONEOF = 1 << 10,
    K_REF = 1 << 11,
};
static const char *const sc_keywords[] = {"type",  "properties", "required", "additionalProperties",
                                          "items", "minItems",   "maxItems", "enum",
                                          "const", "anyOf",      "oneOf",    "$ref"};
/* Annotations; $defs and definitions are the table $ref reads, not a constraint. */
static const char *const sc_annotations[] = {"title",    "description", "default",
                                             "examples", "$schema",     "$id",
                                             "$comment", "$defs",       "definitions"};

struct sc_memo {
    const cJSON *schema;
    int32_t index;
};

struct sc {
    struct js_schema *s;
    size_t cap_nodes, cap_props, cap_objs, cap_enums, cap_arena;
    /* Linear searches: at most JS_MAX_NODES entries, so a few million compares at worst. */
    struct sc_memo *node_memo, *obj_memo;
    size_t n_node_memo, cap_node_memo, n_obj_memo, cap_obj_memo;
    const cJSON *root;
    /* definitions being read inline into the current node; [inline_base, n_inline) */
    const cJSON *inline_defs[SC_MAX_DEPTH];
    int n_inline, inline_base;
    char path[384]; /* JSON pointer of the schema being compiled, for messages */
    size_t path_len;
    struct serve_error *e;
};

/* What one node will hold, gathered from a schema and its alternatives. */
struct sc_acc {
    uint8_t kinds;      /* JS_* a value may have */
    uint8_t enum_kinds; /* of those, the kinds only the values in vals may have */
    int32_t obj, items;
    uint32_t min_items, max_items;
    int n_vals;
    const cJSON *vals[JS_MAX_ENUM];
};

static bool sc_refuse(struct sc *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static bool sc_refuse(struct sc *c, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    serve_error_set(c->e, 400, "invalid_request_error", "response_format", NULL,
                    "response_format: schema%s%s: %s", c->path_len ? " " : "", c->path, what);
    return false;
}

static bool sc_unsupported(struct sc *c, const char *keyword)
{
    return sc_refuse(c, "'%.64s' is not supported " SC_SUPPORTED, keyword);
}

static bool sc_oom(struct sc *c)
{
    serve_error_set(c->e, 500, "server_error", NULL, NULL,
                    "out of memory compiling response_format's schema");
    return false;
}

/* p grown (capacity doubling) to hold n items of size; NULL (p still valid) when out of memory. */
static void *sc_grow(struct sc *c, void *p, size_t *cap, size_t n, size_t size)
{
    if (n <= *cap)
        return p;
    size_t want = *cap ? *cap * 2 : 16;
    while (want < n)
        want *= 2;
    void *q = realloc(p, want * size);
    if (!q) {
        sc_oom(c);
        return NULL;
    }
    *cap = want;
    return q;
}

/* Appends b[0..n) to the arena at *off. */
static bool sc_arena(struct sc *c, const char *b, size_t n, uint32_t *off)
{
    struct js_schema *s = c->s;
    if (n > UINT32_MAX - s->arena_len)
        return sc_oom(c);
    char *a = sc_grow(c, s->arena, &c->cap_arena, s->arena_len + n, 1);
    if (!a)
        return false;
    s->arena = a;
    memcpy(a + s->arena_len, b, n);
    *off = s->arena_len;
    s->arena_len += (uint32_t)n;
    return true;
}

static int32_t sc_memo_find(const struct sc_memo *m, size_t n, const cJSON *schema)
{
    for (size_t i = 0; i < n; i++)
        if (m[i].schema == schema)
            return m[i].index;
    return -1;
}

static bool sc_memo_add(struct sc *c, struct sc_memo **m, size_t *n, size_t *cap,
                        const cJSON *schema, int32_t index)
{
    struct sc_memo *g = sc_grow(c, *m, cap, *n + 1, sizeof *g);
    if (!g)
        return false;
    *m = g;
    g[(*n)++] = (struct sc_memo){schema, index};
    return true;
}

/* Appends "/seg" (escaped as RFC 6901 says) to the path; returns the length to restore. */
static size_t sc_push(struct sc *c, const char *seg)
{
    size_t old = c->path_len, at = old, cap = sizeof c->path - 1;
    if (at < cap)
        c->path[at++] = '/';
    for (const char *p = seg; *p && at < cap; p++) {
        if (*p == '~' || *p == '/') {
            if (at + 2 > cap)
                break;
            c->path[at++] = '~';
            c->path[at++] = *p == '~' ? '0' : '1';
        } else {
            c->path[at++] = *p;
        }
    }
    c->path[at] = '\0';
    c->path_len = at;
    return old;
}

static void sc_pop(struct sc *c, size_t len)
{
    c->path_len = len;
    c->path[len] = '\0';
}

static void sc_push_index(struct sc *c, int i)
{
    char b[16];
    snprintf(b, sizeof b, "%d", i);
    sc_push(c, b);
}

static bool sc_in(const char *k, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(k, list[i]))
            return true;
    return false;
}

/* The constraint keywords of object schema sch as K_* bits; -1 (refused) for any other. */
static int sc_keys(struct sc *c, const cJSON *sch)
{
    int mask = 0;
    const cJSON *k;
    cJSON_ArrayForEach(k, sch)
    {
        size_t i = 0, n = sizeof sc_keywords / sizeof sc_keywords[0];
        while (i < n && strcmp(k->string, sc_keywords[i]))
            i++;
        if (i < n)
            mask |= 1 << i;
        else if (!sc_in(k->string, sc_annotations,
                        sizeof sc_annotations / sizeof sc_annotations[0])) {
            sc_unsupported(c, k->string);
            return -1;
        }
    }
    return mask;
}

/* Whether x accepts any value: true, or an object of annotations only ({} included). */
static bool sc_is_any(const cJSON *x)
{
    if (cJSON_IsTrue(x))
        return true;
    if (!cJSON_IsObject(x))
        return false;
    const cJSON *k;
    cJSON_ArrayForEach(k, x)
    {
        if (!sc_in(k->string, sc_annotations, sizeof sc_annotations / sizeof sc_annotations[0]))
            return false;
    }
    return true;
}

/* integer counts as number: the two overlap */
static uint8_t sc_class(uint8_t kinds)
{
    return (kinds & JS_INTEGER) ? (uint8_t)((kinds & ~JS_INTEGER) | JS_NUMBER) : kinds;
}

/* "type" names, in JS_* bit order */
static const char *const sc_kind_names[] = {"object",  "array",   "string", "number",
                                            "integer", "boolean", "null"};

/* The name of the first kind in kinds. */
static const char *sc_kind_name(uint8_t kinds)
{
    for (int i = 0; i < 7; i++)
        if (kinds & (1 << i))
            return sc_kind_names[i];
    return "?";
}

/* "type": a name or a non-empty array of names, into *kinds. */
static bool sc_types(struct sc *c, const cJSON *t, uint8_t *kinds)
{
    *kinds = 0;
    bool one = cJSON_IsString(t);
    if (!one && (!cJSON_IsArray(t) || !t->child))
        return sc_refuse(c, "'type' must be a type name or a non-empty array of them");
    const cJSON *it = one ? t : t->child;
    for (; it; it = one ? NULL : it->next) {
        int i = 0;
        while (i < 7 && !(cJSON_IsString(it) && !strcmp(it->valuestring, sc_kind_names[i])))
            i++;
        if (i == 7)
            return sc_refuse(c,
                             "'type' %.64s is not one of object, array, string, number, "
                             "integer, boolean, null",
                             cJSON_IsString(it) ? it->valuestring : "(not a string)");
        *kinds |= (uint8_t)(1 << i);
    }
    if ((*kinds & JS_NUMBER) && (*kinds & JS_INTEGER))
        *kinds &= (uint8_t)~JS_INTEGER;
    return true;
}

/* minItems / maxItems: absent leaves *v; else an integer in [0, 2^32 - 2]. */
static bool sc_count(struct sc *c, const cJSON *sch, const char *name, uint32_t *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(sch, name);
    if (!x)
        return true;
    double d = cJSON_IsNumber(x) ? x->valuedouble : -1;
    if (!(d >= 0 && d <= (double)(UINT32_MAX - 1)) || floor(d) != d)
        return sc_refuse(c, "'%s' must be a non-negative integer below 2^32 - 1", name);
    *v = (uint32_t)d;
    return true;
}

/* "#/$defs/NAME" or "#/definitions/NAME" in the root schema; NULL when refused. */
static const cJSON *sc_ref(struct sc *c, const cJSON *ref)
{
    if (!cJSON_IsString(ref))
        return sc_refuse(c, "'$ref' must be a string"), NULL;
    const char *r = ref->valuestring, *table = NULL;
    if (!strncmp(r, "#/$defs/", 8))
        table = "$defs";
    else if (!strncmp(r, "#/definitions/", 14))
        table = "definitions";
    /* NAME is one RFC 6901 token: ~0 is '~', ~1 is '/', and a bare '/' would go deeper */
    const char *p = table ? r + strlen(table) + 3 : "";
    char name[SC_MAX_NAME + 1];
    size_t n = 0;
    bool ok = table != NULL;
    for (size_t i = 0; p[i] && ok; i++) {
        char ch = p[i];
        if (ch == '/')
            ok = false;
        else if (ch == '~' && (ok = p[i + 1] == '0' || p[i + 1] == '1'))
            ch = p[++i] == '0' ? '~' : '/';
        if (ok && n < SC_MAX_NAME)
            name[n++] = ch;
        else
            ok = false;
    }
    name[n] = '\0';
    if (!ok) {
        sc_refuse(c,
                  "'$ref' \"%.100s\" is not supported: hearth resolves only #/$defs/NAME and "
                  "#/definitions/NAME",
                  r);
        return NULL;
    }
    const cJSON *defs = cJSON_GetObjectItemCaseSensitive(c->root, table);
    const cJSON *d = cJSON_IsObject(defs) ? cJSON_GetObjectItemCaseSensitive(defs, name) : NULL;
    if (!d)
        sc_refuse(c, "'$ref' \"%.100s\" names no definition of the root schema", r);
    return d;
}

/* Sets the path to the definition's: a refusal inside it names where it is written. */
static void sc_path_to_def(struct sc *c, const cJSON *ref)
{
    const char *r = ref->valuestring + 1; /* already escaped, as a pointer */
    size_t n = strlen(r);
    if (n >= sizeof c->path)
        n = sizeof c->path - 1;
    memcpy(c->path, r, n);
    sc_pop(c, n);
}

/* The name of the first keyword in mask (not 0). */
static const char *sc_keyword(int mask)
{
    size_t i = 0;
    while (!(mask & (1 << i)))
        i++;
    return sc_keywords[i];
}

/* A $ref schema allows nothing beside it but annotations (no intersections). */
static bool sc_ref_alone(struct sc *c, int mask)
{
    if (mask & ~K_REF)
        return sc_refuse(c, "'$ref' beside '%s' is not supported " SC_SUPPORTED,
                         sc_keyword(mask & ~K_REF));
    return true;
}

static int32_t sc_node(struct sc *c, const cJSON *sch, int depth);
static bool sc_read(struct sc *c, const cJSON *sch, struct sc_acc *a, int depth);

/*
 * The js_obj of object schema sch (-1: any object); -2 when refused. The
 * object and its block of properties are placed (and memoized) before the
 * properties' schemas are compiled, which may reach this same object again.
 */
static int32_t sc_obj(struct sc *c, const cJSON *sch, int depth)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(sch, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(sch, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(sch, "additionalProperties");
    if (props && !cJSON_IsObject(props))
        return sc_refuse(c, "'properties' must be an object"), -2;
    if (addl && !cJSON_IsFalse(addl) && (props || !sc_is_any(addl)))
        return sc_refuse(c, "'additionalProperties' other than false is not supported beside "
                            "'properties', nor a schema for it alone: hearth closes an object to "
                            "its listed properties, or leaves it free " SC_SUPPORTED),
               -2;
    if (req && !cJSON_IsArray(req))
        return sc_refuse(c, "'required' must be an array of property names"), -2;
    if (!props && !cJSON_IsFalse(addl) && !(req && req->child))
        return -1;
    int32_t found = sc_memo_find(c->obj_memo, c->n_obj_memo, sch);
    if (found >= 0)
        return found;
    int n = props ? cJSON_GetArraySize(props) : 0;
    if (n > JS_MAX_PROPS)
        return sc_refuse(c, "'properties' lists %d, at most %d", n, JS_MAX_PROPS), -2;
    const cJSON *p = props ? props->child : NULL;
    for (const cJSON *q = p; q; q = q->next) {
        size_t len = strlen(q->string);
        bool plain = len > 0 && len <= SC_MAX_NAME && utf8_valid(q->string, len);
        for (size_t i = 0; plain && i < len; i++)
            plain = q->string[i] != '"' && q->string[i] != '\\' && (uint8_t)q->string[i] >= 0x20;
        if (!plain)
            return sc_refuse(c,
                             "'properties' name \"%.64s\" is not supported: hearth needs "
                             "names of 1 to %d bytes of UTF-8 that JSON writes unescaped "
                             "(no '\"', '\\', control characters)",
                             q->string, SC_MAX_NAME),
                   -2;
        for (const cJSON *o = p; o != q; o = o->next)
            if (!strcmp(o->string, q->string))
                return sc_refuse(c, "'properties' lists \"%.64s\" twice", q->string), -2;
    }
    uint64_t required = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, req)
    {
        int i = 0;
        const cJSON *q = p;
        while (q && !(cJSON_IsString(r) && !strcmp(q->string, r->valuestring)))
            q = q->next, i++;
        if (!q)
            return sc_refuse(c, "'required' names %.64s, which 'properties' does not list",
                             cJSON_IsString(r) ? r->valuestring : "a non-string"),
                   -2;
        required |= 1ull << i;
    }
    struct js_schema *s = c->s;
    struct js_obj *objs = sc_grow(c, s->objs, &c->cap_objs, (size_t)s->n_objs + 1, sizeof *objs);
    if (!objs)
        return -2;
    s->objs = objs;
    if (n) {
        struct js_prop *pr =
            sc_grow(c, s->props, &c->cap_props, (size_t)(s->n_props + n), sizeof *pr);
        if (!pr)
            return -2;
        s->props = pr;
    }
    int32_t index = s->n_objs++, prop0 = s->n_props;
    objs[index] = (struct js_obj){prop0, n, required};
    for (const cJSON *q = p; q; q = q->next) {
        struct js_prop *x = &s->props[s->n_props++];
        x->name_len = (uint32_t)strlen(q->string);
        x->node = -1;
        if (!sc_arena(c, q->string, x->name_len, &x->name_off))
            return -2;
    }
    if (!sc_memo_add(c, &c->obj_memo, &c->n_obj_memo, &c->cap_obj_memo, sch, index))
        return -2;
    size_t at = sc_push(c, "properties");
    int i = 0;
    for (const cJSON *q = p; q; q = q->next, i++) {
        size_t at2 = sc_push(c, q->string);
        int32_t node = sc_node(c, q, depth + 1);
        sc_pop(c, at2);
        if (node < 0)
            return -2;
        s->props[prop0 + i].node = node;
    }
    sc_pop(c, at);
    return index;
}

/* The kind of an enum/const value (0: not a scalar); *integral: a number written without
   fraction or exponent. */
static uint8_t sc_value_kind(const cJSON *v, bool *integral)
{
    *integral = false;
    if (cJSON_IsString(v))
        return utf8_valid(v->valuestring, strlen(v->valuestring)) ? JS_STRING : 0;
    if (cJSON_IsBool(v))
        return JS_BOOL;
    if (cJSON_IsNull(v))
        return JS_NULL;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return 0;
    char *t = cJSON_PrintUnformatted(v);
    *integral = t && !strpbrk(t, ".eE");
    cJSON_free(t);
    return JS_NUMBER;
}

/* "enum" or "const" into a; typed: "type" gave type_kinds, which every value must fit. */
static bool sc_values(struct sc *c, const cJSON *sch, int mask, bool typed, uint8_t type_kinds,
                      struct sc_acc *a)
{
    if ((mask & K_ENUM) && (mask & K_CONST))
        return sc_refuse(c, "'const' beside 'enum' is not supported " SC_SUPPORTED);
    const char *kw = (mask & K_ENUM) ? "enum" : "const";
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(sch, kw);
    bool one = !(mask & K_ENUM);
    int n = one ? 1 : cJSON_GetArraySize(x);
    if (!one && (!cJSON_IsArray(x) || n < 1 || n > JS_MAX_ENUM))
        return sc_refuse(c, "'enum' must be an array of 1 to %d values", JS_MAX_ENUM);
    const cJSON *v = one ? x : x->child;
    for (; v; v = one ? NULL : v->next) {
        bool integral;
        uint8_t k = sc_value_kind(v, &integral);
        if (!k)
            return sc_refuse(c,
                             "'%s' values must be strings (of UTF-8), numbers, booleans or "
                             "null: objects and arrays are not supported",
                             kw);
        bool fits = (k & type_kinds) || (k == JS_NUMBER && integral && (type_kinds & JS_INTEGER));
        if (typed && !fits)
            return sc_refuse(c, "'%s' holds a %s value, which 'type' does not allow", kw,
                             k == JS_NUMBER && !integral && (type_kinds & JS_INTEGER)
                                 ? "non-integer number"
                                 : sc_kind_name(k));
        a->vals[a->n_vals++] = v;
        a->kinds |= k;
    }
    a->enum_kinds = a->kinds;
    return true;
}

/* A schema without anyOf/oneOf/$ref into a. */
static bool sc_read_plain(struct sc *c, const cJSON *sch, int mask, struct sc_acc *a, int depth)
{
    uint8_t kinds = 0;
    bool typed = mask & K_TYPE;
    if (typed && !sc_types(c, cJSON_GetObjectItemCaseSensitive(sch, "type"), &kinds))
        return false;
    if (mask & (K_ENUM | K_CONST))
        return sc_values(c, sch, mask, typed, kinds, a);
    if (!typed) {
        if (mask & (K_PROPS | K_REQUIRED | K_ADDL))
            kinds |= JS_OBJECT;
        if (mask & (K_ITEMS | K_MIN | K_MAX))
            kinds |= JS_ARRAY;
        if (!kinds)
            kinds = JS_ANY;
    }
    a->kinds = kinds;
    if (kinds & JS_OBJECT) {
        a->obj = sc_obj(c, sch, depth);
        if (a->obj == -2)
            return false;
    }
    if (!(kinds & JS_ARRAY))
        return true;
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(sch, "items");
    if (cJSON_IsArray(items))
        return sc_refuse(c, "'items' as an array (tuple form) is not supported " SC_SUPPORTED);
    if (items && !sc_is_any(items)) {
        size_t at = sc_push(c, "items");
        a->items = sc_node(c, items, depth + 1);
        sc_pop(c, at);
        if (a->items < 0)
            return false;
    }
    if (!sc_count(c, sch, "minItems", &a->min_items) ||
        !sc_count(c, sch, "maxItems", &a->max_items))
        return false;
    if (a->min_items > a->max_items)
        return sc_refuse(c, "'minItems' %u is above 'maxItems' %u", a->min_items, a->max_items);
    return true;
}

/* anyOf / oneOf: the alternatives, of pairwise different kinds, merged into a. */
static bool sc_read_alts(struct sc *c, const cJSON *sch, int mask, struct sc_acc *a, int depth)
{
    const char *kw = (mask & K_ANYOF) ? "anyOf" : "oneOf";
    /* a sibling would intersect with the union, which one node cannot hold */
    int other = (mask & K_ANYOF) ? mask & ~K_ANYOF : mask & ~K_ONEOF;
    if (other)
        return sc_refuse(c, "'%s' beside '%s' is not supported " SC_SUPPORTED, kw,
                         sc_keyword(other));
    const cJSON *alts = cJSON_GetObjectItemCaseSensitive(sch, kw);
    if (!cJSON_IsArray(alts) || !alts->child)
        return sc_refuse(c, "'%s' must be a non-empty array of schemas", kw);
    int i = 0;
    for (const cJSON *alt = alts->child; alt; alt = alt->next, i++) {
        struct sc_acc b;
        size_t at = sc_push(c, kw);
        sc_push_index(c, i);
        bool ok = sc_read(c, alt, &b, depth + 1);
        sc_pop(c, at);
        if (!ok)
            return false;
        uint8_t both = sc_class(a->kinds) & sc_class(b.kinds);
        if (both)
            return sc_refuse(c,
                             "'%s' alternative %d is again of kind %s: hearth needs "
                             "alternatives of different JSON kinds " SC_SUPPORTED,
                             kw, i, sc_kind_name(both));
        if (a->n_vals + b.n_vals > JS_MAX_ENUM)
            return sc_refuse(c, "'%s' alternatives hold more than %d enum values", kw, JS_MAX_ENUM);
        memcpy(a->vals + a->n_vals, b.vals, (size_t)b.n_vals * sizeof *b.vals);
        a->n_vals += b.n_vals;
        a->kinds |= b.kinds;
        a->enum_kinds |= b.enum_kinds;
        if (b.kinds & JS_OBJECT)
            a->obj = b.obj;
        if (b.kinds & JS_ARRAY) {
            a->items = b.items;
            a->min_items = b.min_items;
            a->max_items = b.max_items;
        }
    }
    /* one node has one value list: beside enum values, only null and booleans, which the
       list can spell out, may stay free */
    uint8_t free_kinds = a->kinds & (uint8_t)~a->enum_kinds;
    if (a->n_vals && (free_kinds & ~(JS_NULL | JS_BOOL)))
        return sc_refuse(c,
                         "'%s' joins enum values with any %s: not supported (an enum "
                         "alternative can be joined with null or boolean only)",
                         kw, sc_kind_name(free_kinds & ~(JS_NULL | JS_BOOL)));
    return true;
}

/* Schema sch's constraints into a (fresh); a $ref (an alternative's) is read inline. */
static bool sc_read(struct sc *c, const cJSON *sch, struct sc_acc *a, int depth)
{
    *a = (struct sc_acc){.obj = -1, .items = -1, .max_items = UINT32_MAX};
    if (depth >= SC_MAX_DEPTH)
        return sc_refuse(c, "schemas nest deeper than %d", SC_MAX_DEPTH);
    if (cJSON_IsTrue(sch)) {
        a->kinds = JS_ANY;
        return true;
    }
    if (cJSON_IsFalse(sch))
        return sc_refuse(c, "the schema false allows no value");
    if (!cJSON_IsObject(sch))
        return sc_refuse(c, "a schema must be an object or a boolean");
    int mask = sc_keys(c, sch);
    if (mask < 0)
        return false;
    if (mask & (K_ANYOF | K_ONEOF))
        return sc_read_alts(c, sch, mask, a, depth);
    if (!(mask & K_REF))
        return sc_read_plain(c, sch, mask, a, depth);
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(sch, "$ref");
    const cJSON *def = sc_ref_alone(c, mask) ? sc_ref(c, ref) : NULL;
    if (!def)
        return false;
    if (c->n_inline >= SC_MAX_DEPTH)
        return sc_refuse(c, "schemas nest deeper than %d", SC_MAX_DEPTH);
    for (int i = c->inline_base; i < c->n_inline; i++)
        if (c->inline_defs[i] == def)
            return sc_refuse(c, "'$ref' \"%.100s\" is an alternative of itself", ref->valuestring);
    char saved[sizeof c->path];
    size_t saved_len = c->path_len;
    memcpy(saved, c->path, saved_len + 1);
    sc_path_to_def(c, ref);
    c->inline_defs[c->n_inline++] = def;
    bool ok = sc_read(c, def, a, depth + 1);
    c->n_inline--;
    memcpy(c->path, saved, saved_len + 1);
    c->path_len = saved_len;
    return ok;
}

/* Writes a's enum values as one block; the node's range in *enum0, *n_enum. */
static bool sc_enums(struct sc *c, const struct sc_acc *a, int32_t *enum0, int32_t *n_enum)
{
    struct js_schema *s = c->s;
    uint8_t free_kinds = a->kinds & (uint8_t)~a->enum_kinds;
    const char *extra[3];
    int n_extra = 0;
    if (free_kinds & JS_NULL)
        extra[n_extra++] = "null";
    if (free_kinds & JS_BOOL) {
        extra[n_extra++] = "true";
        extra[n_extra++] = "false";
    }
    *enum0 = s->n_enums;
    *n_enum = 0;
    for (int i = 0; i < a->n_vals + n_extra; i++) {
        char *t = i < a->n_vals ? cJSON_PrintUnformatted(a->vals[i]) : NULL;
        const char *text = i < a->n_vals ? t : extra[i - a->n_vals];
        if (!text)
            return sc_oom(c);
        size_t len = strlen(text);
        bool dup = false;
        for (int j = *enum0; j < s->n_enums && !dup; j++)
            dup = s->enums[j].len == len && !memcmp(s->arena + s->enums[j].off, text, len);
        bool ok = true;
        if (!dup) {
            struct js_enum *en =
                sc_grow(c, s->enums, &c->cap_enums, (size_t)s->n_enums + 1, sizeof *en);
            uint32_t off = 0;
            if (en)
                s->enums = en;
            ok = en && sc_arena(c, text, len, &off);
            if (ok) {
                en[s->n_enums++] = (struct js_enum){off, (uint32_t)len};
                (*n_enum)++;
            }
        }
        cJSON_free(t);
        if (!ok)
            return false;
    }
    if (*n_enum > JS_MAX_ENUM)
        return sc_refuse(c, "more than %d enum values", JS_MAX_ENUM);
    return true;
}

/* The node of schema sch (its $refs followed); -1 when refused. */
static int32_t sc_node(struct sc *c, const cJSON *sch, int depth)
{
    char saved[sizeof c->path];
    size_t saved_len = c->path_len;
    memcpy(saved, c->path, saved_len + 1);
    int32_t index = -1;
    for (int hops = 0; cJSON_IsObject(sch) && cJSON_GetObjectItemCaseSensitive(sch, "$ref");
         hops++) {
        int mask = sc_keys(c, sch);
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(sch, "$ref");
        if (hops > SC_MAX_DEPTH) {
            sc_refuse(c, "'$ref' \"%.100s\" leads only to other $refs", ref->valuestring);
            goto done;
        }
        if (mask < 0 || !sc_ref_alone(c, mask) || !(sch = sc_ref(c, ref)))
            goto done;
        sc_path_to_def(c, ref);
    }
    index = sc_memo_find(c->node_memo, c->n_node_memo, sch);
    if (index >= 0)
        goto done;
    struct js_schema *s = c->s;
    if (s->n_nodes >= JS_MAX_NODES) {
        sc_refuse(c, "more than %d schema nodes", JS_MAX_NODES);
        goto done;
    }
    struct js_node *nodes =
        sc_grow(c, s->nodes, &c->cap_nodes, (size_t)s->n_nodes + 1, sizeof *nodes);
    if (!nodes)
        goto done;
    s->nodes = nodes;
    index = s->n_nodes++;
    nodes[index] = (struct js_node){.obj = -1, .items = -1, .max_items = UINT32_MAX};
    int base = c->inline_base;
    c->inline_base = c->n_inline;
    struct sc_acc a;
    int32_t enum0 = 0, n_enum = 0;
    bool ok = sc_memo_add(c, &c->node_memo, &c->n_node_memo, &c->cap_node_memo, sch, index) &&
              sc_read(c, sch, &a, depth) && (!a.n_vals || sc_enums(c, &a, &enum0, &n_enum));
    c->inline_base = base;
    if (!ok) {
        index = -1;
        goto done;
    }
    /* JS_ANY has both number bits; a type listing every name means the same */
    uint8_t kinds = (a.kinds | JS_INTEGER) == JS_ANY ? (uint8_t)JS_ANY : a.kinds;
    bool arr = (kinds & JS_ARRAY) && !a.n_vals;
    s->nodes[index] = (struct js_node){
        .kinds = kinds,
        .obj = (kinds & JS_OBJECT) && !a.n_vals ? a.obj : -1,
        .items = arr ? a.items : -1,
        .min_items = arr ? a.min_items : 0,
        .max_items = arr ? a.max_items : UINT32_MAX,
        .enum0 = enum0,
        .n_enum = n_enum,
    };
done:
    memcpy(c->path, saved, saved_len + 1);
    c->path_len = saved_len;
    return index;
}

bool serve_schema_compile(const cJSON *schema, struct js_schema *out, struct serve_error *e)
{
    memset(out, 0, sizeof *out);
    struct sc c = {.s = out, .root = schema, .e = e};
    bool ok = sc_node(&c, schema, 0) == 0; /* the first node taken is the root's */
    free(c.node_memo);
    free(c.obj_memo);
    if (!ok)
        js_schema_free(out);
    return ok;
}

#else
typedef int serve_schema_unused; /* ISO C forbids an empty translation unit */
#endif
