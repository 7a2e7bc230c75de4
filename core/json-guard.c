#include "json-guard.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

enum jg_mode {
    M_VALUE,     /* a value is due */
    M_OBJ_FIRST, /* after '{': a key or '}' */
    M_OBJ_KEY,   /* after ',' in an object: a key */
    M_COLON,     /* after a key */
    M_ARR_FIRST, /* after '[': a value or ']' */
    M_AFTER,     /* after a value inside an object or array: ',' or the closer */
    M_DONE,      /* the text is complete */
    M_STR,       /* inside a string */
    M_ESC,       /* after a backslash */
    M_HEX,       /* in \uXXXX */
    M_UTF8,      /* inside a multi-byte character */
    M_MINUS,     /* number: after '-' */
    M_ZERO,      /* number: a leading 0 */
    M_INT,       /* number: integer digits */
    M_DOT,       /* number: after '.' */
    M_FRAC,      /* number: fraction digits */
    M_E,         /* number: after 'e' */
    M_ESIGN,     /* number: after the exponent's sign */
    M_EXP,       /* number: exponent digits */
    M_LIT,       /* true, false or null, partly read */
    M_KEY,       /* a constrained object's key, matched against its property names */
    M_ENUM,      /* a value matched against its node's enum texts */
};

static const char *const literals[3] = {"true", "false", "null"};

void jg_init(struct jg_state *s, bool object_only)
{
    memset(s, 0, sizeof *s);
    s->mode = M_VALUE;
    s->object_only = object_only;
    s->pending = -1;
}

void jg_init_schema(struct jg_state *s, const struct js_schema *schema)
{
    jg_init(s, false);
    s->schema = schema;
    s->pending = schema && schema->n_nodes > 0 ? 0 : -1;
}

static bool is_ws(unsigned c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(unsigned c)
{
    return c >= '0' && c <= '9';
}

/* ---- the schema's view ----------------------------------------------------------- */

static struct jg_frame *top_frame(struct jg_state *s)
{
    return s->schema && s->free_depth == 0 && s->n_frames > 0 ? &s->frames[s->n_frames - 1]
                                                               : NULL;
}

static const struct js_obj *frame_obj(const struct jg_state *s, const struct jg_frame *f)
{
    const int32_t o = s->schema->nodes[f->node].obj;
    return o >= 0 ? &s->schema->objs[o] : NULL;
}

/* The properties of f's object not present yet. */
static uint64_t unseen(const struct jg_state *s, const struct jg_frame *f)
{
    const struct js_obj *o = frame_obj(s, f);
    const uint64_t all = o->n_props >= 64 ? ~0ull : (1ull << o->n_props) - 1;
    return all & ~f->seen;
}

/* A constrained container closes: its object has every required key, its array enough items. */
static bool frame_may_close(const struct jg_state *s, const struct jg_frame *f, bool array)
{
    if (array)
        return f->count >= s->schema->nodes[f->node].min_items;
    return (frame_obj(s, f)->required & ~f->seen) == 0;
}

/* The node of the value that comes after the key just read, or an array's next element. */
static void set_pending_element(struct jg_state *s, bool array)
{
    const struct jg_frame *f = top_frame(s);
    if (!f) {
        s->pending = -1;
    } else if (array) {
        s->pending = s->schema->nodes[f->node].items;
    } else {
        const struct js_obj *o = frame_obj(s, f);
        s->pending = s->schema->props[o->prop0 + f->prop].node;
    }
}

/* Whether the value starting with c fits node n's kinds; sets int_only for a number. */
static bool kind_fits(struct jg_state *s, const struct js_node *n, unsigned c)
{
    unsigned k = c == '{'                    ? JS_OBJECT
                 : c == '['                  ? JS_ARRAY
                 : c == '"'                  ? JS_STRING
                 : c == '-' || is_digit(c)   ? JS_NUMBER | JS_INTEGER
                 : c == 't' || c == 'f'      ? JS_BOOL
                 : c == 'n'                  ? JS_NULL
                                             : 0;
    s->int_only = (n->kinds & JS_NUMBER) == 0;
    return (n->kinds & k) != 0;
}

/* An enum value begins with c: the candidates whose text starts so. */
static bool start_enum(struct jg_state *s, const struct js_node *n, unsigned c)
{
    s->enum0 = n->enum0;
    s->cand = 0;
    for (int32_t i = 0; i < n->n_enum; i++) {
        const struct js_enum *e = &s->schema->enums[n->enum0 + i];
        if (e->len > 0 && (unsigned char)s->schema->arena[e->off] == c)
            s->cand |= 1ull << i;
    }
    s->mpos = 1;
    s->mode = M_ENUM;
    return s->cand != 0;
}

/* ---- structure -------------------------------------------------------------------- */

static bool end_value(struct jg_state *s)
{
    s->mode = s->depth ? M_AFTER : M_DONE;
    return true;
}

static bool open_nest(struct jg_state *s, bool array)
{
    if (s->depth >= JG_MAX_DEPTH)
        return false;
    const int32_t node = s->pending;
    if (s->schema && s->free_depth == 0) {
        const struct js_node *n = node >= 0 ? &s->schema->nodes[node] : NULL;
        if (!n || (!array && n->obj < 0)) {
            s->free_depth = (uint8_t)(s->depth + 1); /* an unconstrained subtree */
        } else {
            if (s->n_frames >= JS_MAX_NEST)
                return false;
            s->frames[s->n_frames++] = (struct jg_frame){.node = node, .prop = -1};
        }
    }
    if (array)
        s->arrays |= 1ull << s->depth;
    else
        s->arrays &= ~(1ull << s->depth);
    s->depth++;
    s->mode = array ? M_ARR_FIRST : M_OBJ_FIRST;
    return true;
}

static bool in_array(const struct jg_state *s)
{
    return s->depth > 0 && (s->arrays >> (s->depth - 1) & 1u);
}

static bool close_nest(struct jg_state *s, unsigned c)
{
    if (s->depth == 0 || (c == ']') != in_array(s))
        return false;
    if (s->free_depth == s->depth) {
        s->free_depth = 0;
    } else if (top_frame(s)) {
        if (!frame_may_close(s, top_frame(s), c == ']'))
            return false;
        s->n_frames--;
    }
    s->depth--;
    return end_value(s);
}

static bool start_string(struct jg_state *s, bool key)
{
    s->key = key;
    const struct jg_frame *f = key ? top_frame(s) : NULL;
    if (f && frame_obj(s, f)) {
        s->cand = unseen(s, f);
        s->mpos = 0;
        s->mode = M_KEY;
        return s->cand != 0;
    }
    s->mode = M_STR;
    return true;
}

static bool start_value(struct jg_state *s, unsigned c)
{
    if (s->depth == 0 && s->object_only && c != '{')
        return false;
    struct jg_frame *f = top_frame(s);
    if (f && in_array(s)) {
        if (f->count >= s->schema->nodes[f->node].max_items)
            return false;
        f->count++;
    }
    s->int_only = false;
    if (s->schema && s->free_depth == 0 && s->pending >= 0) {
        const struct js_node *n = &s->schema->nodes[s->pending];
        if (!kind_fits(s, n, c))
            return false;
        if (n->n_enum > 0)
            return start_enum(s, n, c);
    }
    switch (c) {
    case '{':
    case '[':
        return open_nest(s, c == '[');
    case '"':
        return start_string(s, false);
    case '-':
        s->mode = M_MINUS;
        return true;
    case 't':
    case 'f':
    case 'n':
        s->mode = M_LIT;
        s->lit = c == 't' ? 0 : c == 'f' ? 1 : 2;
        s->sub = 1;
        return true;
    default:
        if (!is_digit(c))
            return false;
        s->mode = c == '0' ? M_ZERO : M_INT;
        return true;
    }
}

/* The lead byte of a multi-byte character: how many bytes follow and the next one's range. */
static bool utf8_lead(struct jg_state *s, unsigned c)
{
    s->utf8_lo = 0x80;
    s->utf8_hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        s->sub = 1;
    else if (c >= 0xE0 && c <= 0xEF)
        s->sub = 2;
    else if (c >= 0xF0 && c <= 0xF4)
        s->sub = 3;
    else
        return false;
    if (c == 0xE0)
        s->utf8_lo = 0xA0; /* no overlong 3-byte forms */
    else if (c == 0xED)
        s->utf8_hi = 0x9F; /* no surrogates */
    else if (c == 0xF0)
        s->utf8_lo = 0x90; /* no overlong 4-byte forms */
    else if (c == 0xF4)
        s->utf8_hi = 0x8F; /* nothing above U+10FFFF */
    s->mode = M_UTF8;
    return true;
}

static bool step(struct jg_state *s, unsigned c);

/* A number ends at the first byte that cannot continue it, which is then read as what follows. */
static bool number(struct jg_state *s, unsigned c)
{
    const enum jg_mode m = (enum jg_mode)s->mode;
    if (is_digit(c) && m != M_ZERO) {
        s->mode = m == M_MINUS ? (c == '0' ? M_ZERO : M_INT)
                  : m == M_DOT ? M_FRAC
                  : m == M_E || m == M_ESIGN ? M_EXP
                               : m;
        return true;
    }
    if (m == M_MINUS && c == '0') {
        s->mode = M_ZERO;
        return true;
    }
    if ((m == M_ZERO || m == M_INT) && c == '.' && !s->int_only) {
        s->mode = M_DOT;
        return true;
    }
    if ((m == M_ZERO || m == M_INT || m == M_FRAC) && (c == 'e' || c == 'E') && !s->int_only) {
        s->mode = M_E;
        return true;
    }
    if (m == M_E && (c == '+' || c == '-')) {
        s->mode = M_ESIGN;
        return true;
    }
    if (m == M_ZERO || m == M_INT || m == M_FRAC || m == M_EXP)
        return end_value(s) && step(s, c);
    return false;
}

static bool in_string(struct jg_state *s, unsigned c)
{
    switch ((enum jg_mode)s->mode) {
    case M_STR:
        if (c == '"') {
            if (!s->key)
                return end_value(s);
            s->mode = M_COLON;
            return true;
        }
        if (c == '\\') {
            s->mode = M_ESC;
            return true;
        }
        return c >= 0x80 ? utf8_lead(s, c) : c >= 0x20;
    case M_ESC:
        if (c == 'u') {
            s->mode = M_HEX;
            s->sub = 4;
            return true;
        }
        s->mode = M_STR;
        return c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
               c == 'r' || c == 't';
    case M_HEX:
        if (!(is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
        if (--s->sub == 0)
            s->mode = M_STR;
        return true;
    default: /* M_UTF8 */
        if (c < s->utf8_lo || c > s->utf8_hi)
            return false;
        s->utf8_lo = 0x80;
        s->utf8_hi = 0xBF;
        if (--s->sub == 0)
            s->mode = M_STR;
        return true;
    }
}

/* A constrained key: each byte narrows the unseen names; the quote needs a whole one. */
static bool match_key(struct jg_state *s, unsigned c)
{
    struct jg_frame *f = top_frame(s);
    const struct js_obj *o = frame_obj(s, f);
    uint64_t keep = 0;
    for (int32_t i = 0; i < o->n_props; i++) {
        if (!(s->cand >> i & 1u))
            continue;
        const struct js_prop *p = &s->schema->props[o->prop0 + i];
        if (c == '"' && p->name_len == s->mpos) {
            f->prop = i;
            f->seen |= 1ull << i;
            s->mode = M_COLON;
            return true;
        }
        if (c != '"' && p->name_len > s->mpos &&
            (unsigned char)s->schema->arena[p->name_off + s->mpos] == c)
            keep |= 1ull << i;
    }
    s->cand = keep;
    s->mpos++;
    return keep != 0 && c != '\\'; /* names need no escapes: a backslash never matches */
}

/* Whether an enum candidate has been matched whole. */
static bool enum_complete(const struct jg_state *s)
{
    for (int i = 0; i < 64; i++)
        if ((s->cand >> i & 1u) && s->schema->enums[s->enum0 + i].len == s->mpos)
            return true;
    return false;
}

static bool match_enum(struct jg_state *s, unsigned c)
{
    uint64_t keep = 0;
    for (int i = 0; i < 64; i++) {
        if (!(s->cand >> i & 1u))
            continue;
        const struct js_enum *e = &s->schema->enums[s->enum0 + i];
        if (e->len > s->mpos && (unsigned char)s->schema->arena[e->off + s->mpos] == c)
            keep |= 1ull << i;
    }
    if (keep) {
        s->cand = keep;
        s->mpos++;
        return true;
    }
    /* a whole value followed by what comes after it ("1" then ','); else a wrong byte */
    return enum_complete(s) && end_value(s) && step(s, c);
}

/* Between tokens: whitespace (bounded), then what the mode expects. */
static bool structural(struct jg_state *s, unsigned c)
{
    if (is_ws(c))
        return ++s->ws <= JG_MAX_WS;
    s->ws = 0;
    struct jg_frame *f = top_frame(s);
    switch ((enum jg_mode)s->mode) {
    case M_VALUE:
        return start_value(s, c);
    case M_ARR_FIRST:
        if (c == ']')
            return close_nest(s, c);
        set_pending_element(s, true);
        return start_value(s, c);
    case M_OBJ_FIRST:
        return c == '}' ? close_nest(s, c) : c == '"' && start_string(s, true);
    case M_OBJ_KEY:
        return c == '"' && start_string(s, true);
    case M_COLON:
        if (c != ':')
            return false;
        set_pending_element(s, false);
        s->mode = M_VALUE;
        return true;
    case M_AFTER:
        if (c == ',') {
            const bool array = in_array(s);
            /* no comma that only a key or element the schema forbids could follow */
            if (f && (array ? f->count >= s->schema->nodes[f->node].max_items
                            : frame_obj(s, f) && unseen(s, f) == 0))
                return false;
            if (array)
                set_pending_element(s, true);
            s->mode = array ? M_VALUE : M_OBJ_KEY;
            return true;
        }
        return (c == '}' || c == ']') && close_nest(s, c);
    default: /* M_DONE */
        return false;
    }
}

static bool step(struct jg_state *s, unsigned c)
{
    switch ((enum jg_mode)s->mode) {
    case M_STR:
    case M_ESC:
    case M_HEX:
    case M_UTF8:
        return in_string(s, c);
    case M_KEY:
        return match_key(s, c);
    case M_ENUM:
        return match_enum(s, c);
    case M_MINUS:
    case M_ZERO:
    case M_INT:
    case M_DOT:
    case M_FRAC:
    case M_E:
    case M_ESIGN:
    case M_EXP:
        return number(s, c);
    case M_LIT:
        if (c != (unsigned char)literals[s->lit][s->sub])
            return false;
        return literals[s->lit][++s->sub] ? true : end_value(s);
    default:
        return structural(s, c);
    }
}

bool jg_feed(struct jg_state *s, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!step(s, (unsigned char)b[i]))
            return false;
    return true;
}

bool jg_done(const struct jg_state *s)
{
    const enum jg_mode m = (enum jg_mode)s->mode;
    if (m == M_DONE)
        return true;
    /* a top-level number or enum value ends with the text (never under object_only) */
    return s->depth == 0 && ((m == M_ZERO || m == M_INT || m == M_FRAC || m == M_EXP) ||
                             (m == M_ENUM && enum_complete(s)));
}

/* Frames above the top are written before they are read: a copy needs only those in use. */
static size_t state_bytes(const struct jg_state *s)
{
    return offsetof(struct jg_state, frames) + s->n_frames * sizeof s->frames[0];
}

bool jg_allows(const struct jg_state *s, const struct tokenizer *t, int32_t id, bool is_stop)
{
    if (is_stop)
        return jg_done(s);
    if (s->mode == M_DONE || id < 0 || (size_t)id >= tok_n_vocab(t) || tok_is_control(t, id))
        return false;
    size_t n = 0;
    const char *b = tok_token_bytes(t, id, &n);
    if (!b || n == 0)
        return false;
    struct jg_state c;
    memcpy(&c, s, state_bytes(s));
    return jg_feed(&c, b, n);
}

/* A token's bytes beside its id, so that the sort needs no tokenizer (qsort takes no context). */
struct tok_bytes {
    const char *b;
    size_t len;
    int32_t id;
};

static int cmp_tok_bytes(const void *pa, const void *pb)
{
    const struct tok_bytes *a = pa, *b = pb;
    int c = memcmp(a->b, b->b, a->len < b->len ? a->len : b->len);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

bool jg_index_build(const struct tokenizer *t, struct jg_index *x)
{
    memset(x, 0, sizeof *x);
    const size_t n_vocab = tok_n_vocab(t), cap = n_vocab ? n_vocab : 1;
    struct tok_bytes *e = malloc(cap * sizeof *e);
    x->ids = malloc(cap * sizeof *x->ids);
    x->lcp = malloc(cap * sizeof *x->lcp);
    if (!e || !x->ids || !x->lcp) {
        free(e);
        jg_index_free(x);
        return false;
    }
    for (size_t id = 0; id < n_vocab; id++) {
        size_t len = 0;
        const char *b = tok_token_bytes(t, (int32_t)id, &len);
        if (b && len > 0 && len <= UINT16_MAX && !tok_is_control(t, (int32_t)id)) {
            e[x->n++] = (struct tok_bytes){b, len, (int32_t)id};
            x->max_len = len > x->max_len ? len : x->max_len;
        }
    }
    qsort(e, x->n, sizeof *e, cmp_tok_bytes);
    for (size_t i = 0; i < x->n; i++) {
        size_t k = 0;
        while (i > 0 && k < e[i - 1].len && k < e[i].len && e[i - 1].b[k] == e[i].b[k])
            k++;
        x->ids[i] = e[i].id;
        x->lcp[i] = (uint16_t)k;
    }
    free(e);
    return true;
}

void jg_index_free(struct jg_index *x)
{
    free(x->ids);
    free(x->lcp);
    memset(x, 0, sizeof *x);
}

size_t jg_candidates(const struct jg_state *s, const struct jg_index *x,
                     const struct tokenizer *t, int32_t *out)
{
    if (s->mode == M_DONE || x->n == 0)
        return 0;
    /* st[d]: the state after the current token's first d bytes, valid for d <= depth */
    struct jg_state *st = malloc((x->max_len + 1) * sizeof *st);
    if (!st)
        return SIZE_MAX;
    memcpy(&st[0], s, state_bytes(s));
    size_t n = 0, depth = 0, fail = SIZE_MAX; /* fail: a refused prefix's length */
    for (size_t i = 0; i < x->n; i++) {
        const size_t shared = x->lcp[i];
        if (fail <= shared)
            continue; /* starts with the refused prefix */
        fail = SIZE_MAX;
        size_t len = 0;
        const char *b = tok_token_bytes(t, x->ids[i], &len);
        size_t d = shared < depth ? shared : depth;
        for (; d < len; d++) {
            memcpy(&st[d + 1], &st[d], state_bytes(&st[d]));
            if (!jg_feed(&st[d + 1], b + d, 1)) {
                fail = d + 1;
                break;
            }
        }
        depth = d; /* st[0..d] hold this token's prefixes */
        if (d == len)
            out[n++] = x->ids[i];
    }
    free(st);
    return n;
}
