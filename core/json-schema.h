/*
 * json-schema (js_ prefix): a JSON Schema compiled into the tables the JSON
 * guard (json-guard.h) follows, for response_format json_schema.
 *
 * The subset is what structured-output clients send (OpenAI's strict mode,
 * pydantic's model_json_schema()): "type" (a name or an array of names),
 * "properties" with "required" (an object takes only its listed keys, in
 * any order, each at most once, and closes only when every required key is
 * present), "items", "minItems"/"maxItems", "enum" and "const" of scalars,
 * "anyOf"/"oneOf" whose alternatives are of different JSON kinds (Optional[X]
 * is anyOf [X, null]), and "$ref" to "#/$defs/NAME" or "#/definitions/NAME"
 * (recursion allowed). An empty schema, or one of type object without
 * "properties", accepts any value of its kinds. Annotations (title,
 * description, default, examples, $schema, $id, $comment) are ignored; any
 * other keyword is refused with an error naming it, since a reply that
 * ignored it would look like an answer to the schema that was sent.
 *
 * The compiler from JSON text needs cJSON and lives with the server
 * (tools/serve-schema.c, serve_schema_compile); core only holds the tables.
 */
#ifndef HEARTH_JSON_SCHEMA_H
#define HEARTH_JSON_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* JSON kinds, as bits of js_node.kinds. */
enum {
    JS_OBJECT = 1 << 0,
    JS_ARRAY = 1 << 1,
    JS_STRING = 1 << 2,
    JS_NUMBER = 1 << 3,  /* any number */
    JS_INTEGER = 1 << 4, /* no fraction or exponent (only when JS_NUMBER is not set) */
    JS_BOOL = 1 << 5,
    JS_NULL = 1 << 6,
    JS_ANY = 0x7f
};

#define JS_MAX_PROPS 64    /* properties per object (a 64-bit mask tracks them) */
#define JS_MAX_ENUM 64     /* enum values per node (a 64-bit mask tracks them) */
#define JS_MAX_NODES 4096  /* per schema */
#define JS_MAX_NEST 16     /* schema-constrained nesting (deeper: refused by the guard) */

struct js_node {
    uint8_t kinds;      /* JS_* bits a value may have */
    int32_t obj;        /* with JS_OBJECT: index into js_schema.objs, -1: any object */
    int32_t items;      /* with JS_ARRAY: node of the elements, -1: any value */
    uint32_t min_items; /* with JS_ARRAY */
    uint32_t max_items; /* with JS_ARRAY; UINT32_MAX: no bound */
    /*
     * n_enum > 0: the value must be one of js_schema.enums[enum0 .. enum0 +
     * n_enum), each the canonical text of a scalar (a string with its quotes
     * and escapes as cJSON prints them, a number, true, false, null); kinds
     * then holds the kinds of those values.
     */
    int32_t enum0, n_enum;
};

struct js_prop {
    uint32_t name_off, name_len; /* key bytes in js_schema.arena (no escapes needed) */
    int32_t node;
};

struct js_obj {
    int32_t prop0, n_props; /* js_schema.props[prop0 .. prop0 + n_props) */
    uint64_t required;      /* bit i: props[prop0 + i] is required */
};

struct js_enum {
    uint32_t off, len; /* canonical value text in js_schema.arena */
};

/* Every array malloc'd (free with js_schema_free); offsets, not pointers, so a copy is memcpy. */
struct js_schema {
    struct js_node *nodes; /* nodes[0] is the root */
    int32_t n_nodes;
    struct js_prop *props;
    int32_t n_props;
    struct js_obj *objs;
    int32_t n_objs;
    struct js_enum *enums;
    int32_t n_enums;
    char *arena;
    uint32_t arena_len;
};

/* A deep copy of src into *dst; false (dst zeroed) when out of memory. */
bool js_schema_clone(const struct js_schema *src, struct js_schema *dst);
/* Frees what s holds and zeroes it (NULL or zeroed: nothing). */
void js_schema_free(struct js_schema *s);

#endif
