#include "json-schema.h"

#include <stdlib.h>
#include <string.h>

static void *dup_array(const void *src, size_t n, size_t size, bool *ok)
{
    if (n == 0 || !src)
        return NULL;
    void *p = malloc(n * size);
    if (!p)
        *ok = false;
    else
        memcpy(p, src, n * size);
    return p;
}

bool js_schema_clone(const struct js_schema *src, struct js_schema *dst)
{
    bool ok = true;
    *dst = *src;
    dst->nodes = dup_array(src->nodes, (size_t)src->n_nodes, sizeof *src->nodes, &ok);
    dst->props = dup_array(src->props, (size_t)src->n_props, sizeof *src->props, &ok);
    dst->objs = dup_array(src->objs, (size_t)src->n_objs, sizeof *src->objs, &ok);
    dst->enums = dup_array(src->enums, (size_t)src->n_enums, sizeof *src->enums, &ok);
    dst->arena = dup_array(src->arena, src->arena_len, 1, &ok);
    if (!ok)
        js_schema_free(dst);
    return ok;
}

void js_schema_free(struct js_schema *s)
{
    if (!s)
        return;
    free(s->nodes);
    free(s->props);
    free(s->objs);
    free(s->enums);
    free(s->arena);
    memset(s, 0, sizeof *s);
}
