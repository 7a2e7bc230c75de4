#include "json-guard.h"

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
};

static const char *const literals[3] = {"true", "false", "null"};

void jg_init(struct jg_state *s, bool object_only)
{
    *s = (struct jg_state){.mode = M_VALUE, .object_only = object_only};
}

static bool is_ws(unsigned c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(unsigned c)
{
    return c >= '0' && c <= '9';
}

static bool end_value(struct jg_state *s)
{
    s->mode = s->depth ? M_AFTER : M_DONE;
    return true;
}

static bool open_nest(struct jg_state *s, bool array)
{
    if (s->depth >= JG_MAX_DEPTH)
        return false;
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
    s->depth--;
    return end_value(s);
}

static bool start_string(struct jg_state *s, bool key)
{
    s->mode = M_STR;
    s->key = key;
    return true;
}

static bool start_value(struct jg_state *s, unsigned c)
{
    if (s->depth == 0 && s->object_only && c != '{')
        return false;
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
    if ((m == M_ZERO || m == M_INT) && c == '.') {
        s->mode = M_DOT;
        return true;
    }
    if ((m == M_ZERO || m == M_INT || m == M_FRAC) && (c == 'e' || c == 'E')) {
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

/* Between tokens: whitespace (bounded), then what the mode expects. */
static bool structural(struct jg_state *s, unsigned c)
{
    if (is_ws(c))
        return ++s->ws <= JG_MAX_WS;
    s->ws = 0;
    switch ((enum jg_mode)s->mode) {
    case M_VALUE:
        return start_value(s, c);
    case M_ARR_FIRST:
        return c == ']' ? close_nest(s, c) : start_value(s, c);
    case M_OBJ_FIRST:
        return c == '}' ? close_nest(s, c) : c == '"' && start_string(s, true);
    case M_OBJ_KEY:
        return c == '"' && start_string(s, true);
    case M_COLON:
        if (c != ':')
            return false;
        s->mode = M_VALUE;
        return true;
    case M_AFTER:
        if (c == ',') {
            s->mode = in_array(s) ? M_VALUE : M_OBJ_KEY;
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
    /* a number at the top level ends with the text (only without object_only) */
    return m == M_DONE ||
           (s->depth == 0 && (m == M_ZERO || m == M_INT || m == M_FRAC || m == M_EXP));
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
    struct jg_state c = *s;
    return jg_feed(&c, b, n);
}
