/*
 * tok-pretok: the BPE pre-tokenizers, by tokenizer.ggml.pre name, on PCRE2.
 *
 * A pre-tokenizer is a sequence of regexes (facts sheet §5.4): the first splits
 * the text, each next one re-splits every piece, and at every step both the
 * matches and the unmatched stretches between them are kept, so the pieces
 * always tile the text. Each regex sees one piece as its whole subject, which
 * is what makes `\s+(?!\S)` stop at a piece's end rather than peek into the
 * next piece.
 *
 * PCRE2 is compiled with PCRE2_UTF | PCRE2_UCP so \p{L}, \p{N} and \s are the
 * Unicode classes; JIT is used when the platform has it (pcre2_match falls back
 * to the interpreter by itself when pcre2_jit_compile failed). PCRE2 requires
 * valid UTF-8, so the splitter first cuts the text into valid runs; an invalid
 * byte becomes a piece of its own (byte-level BPE can still encode it). Each
 * valid run is checked once and matched with PCRE2_NO_UTF_CHECK: checking on
 * every pcre2_match call would make splitting quadratic in the run length.
 *
 * Rejected: hand-written matchers per pattern (as llama.cpp does) - faster, but
 * a second Unicode table to keep right; the patterns here are the spec.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tokenizer.h"
#include "utf8.h"

#define TOK_MAX_REGEX 4

struct tok__pretok {
    pcre2_code *re[TOK_MAX_REGEX];
    int n_re;
};

/* Patterns of §5.4, as C strings. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_LLAMA3_HEAD                                                                             \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
#define RE_LLAMA3_TAIL "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3 RE_LLAMA3_HEAD "\\p{N}{1,3}" RE_LLAMA3_TAIL
#define RE_QWEN2 RE_LLAMA3_HEAD "\\p{N}" RE_LLAMA3_TAIL

struct pre_def {
    const char *const *names; /* NULL-terminated */
    const char *re[TOK_MAX_REGEX];
    bool ignore_merges;
    bool adds_bos;
};

static const char *const names_default[] = {"default", NULL};
static const char *const names_llama3[] = {
    "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", NULL};
static const char *const names_dbrx[] = {"dbrx", "smaug-bpe", NULL};
static const char *const names_qwen2[] = {"qwen2",   "deepseek-r1-qwen", "stablelm2",
                                          "hunyuan", "megrez",           NULL};
static const char *const names_smollm[] = {"smollm",    "starcoder", "refact",     "command-r",
                                           "codeshell", "exaone",    "minerva-7b", NULL};
static const char *const names_gpt2[] = {"gpt-2", "gpt2",    "phi-2",       "mpt", "olmo",
                                         "jais",  "exaone4", "roberta-bpe", NULL};

static const struct pre_def pre_defs[] = {
    {names_default,
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"},
     false,
     false},
    {names_llama3, {RE_LLAMA3, NULL, NULL, NULL}, true, true},
    {names_dbrx, {RE_LLAMA3, NULL, NULL, NULL}, false, false},
    {names_qwen2, {RE_QWEN2, NULL, NULL, NULL}, false, false},
    {names_smollm, {"\\p{N}", RE_GPT2, NULL, NULL}, false, false},
    {names_gpt2, {RE_GPT2, NULL, NULL, NULL}, false, false},
};

static const struct pre_def *find_def(const char *name)
{
    for (size_t i = 0; i < sizeof pre_defs / sizeof pre_defs[0]; i++)
        for (const char *const *n = pre_defs[i].names; *n; n++)
            if (strcmp(*n, name) == 0)
                return &pre_defs[i];
    return NULL;
}

bool tok__pretok_ignore_merges(const char *name)
{
    const struct pre_def *d = find_def(name);
    return d && d->ignore_merges;
}

bool tok__pretok_adds_bos(const char *name)
{
    const struct pre_def *d = find_def(name);
    return d && d->adds_bos;
}

void tok__pretok_free(struct tok__pretok *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_re; i++)
        pcre2_code_free(p->re[i]);
    free(p);
}

hearth_status tok__pretok_create(const char *name, struct tok__pretok **out, bool *fallback)
{
    *out = NULL;
    const struct pre_def *d = find_def(name);
    *fallback = d == NULL;
    if (!d)
        d = &pre_defs[0];
    struct tok__pretok *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(HEARTH_ERR_NO_MEMORY, "tokenizer: pre-tokenizer allocation");
    for (int i = 0; i < TOK_MAX_REGEX && d->re[i]; i++) {
        int ec;
        PCRE2_SIZE eo;
        p->re[i] = pcre2_compile((PCRE2_SPTR)d->re[i], PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                 &ec, &eo, NULL);
        if (!p->re[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(ec, msg, sizeof msg);
            tok__pretok_free(p);
            return err_set(HEARTH_ERR_INTERNAL,
                           "tokenizer: pre-tokenizer '%s' regex %d: PCRE2 compile error at "
                           "offset %zu: %s",
                           name, i, (size_t)eo, (const char *)msg);
        }
        p->n_re = i + 1;
        /* A failure only means no JIT here (or no memory for it): the interpreter
           gives the same matches. */
        (void)pcre2_jit_compile(p->re[i], PCRE2_JIT_COMPLETE);
    }
    *out = p;
    return HEARTH_OK;
}

/* A list of (offset, length) pieces. */
struct span_list {
    size_t *v; /* [2 * n]: offset, length */
    size_t n, cap;
};

static hearth_status spans_push(struct span_list *l, size_t off, size_t n)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        size_t *v = realloc(l->v, cap * 2 * sizeof *v);
        if (!v)
            return err_set(HEARTH_ERR_NO_MEMORY, "tokenizer: pre-tokenizer pieces");
        l->v = v;
        l->cap = cap;
    }
    l->v[2 * l->n] = off;
    l->v[2 * l->n + 1] = n;
    l->n++;
    return HEARTH_OK;
}

struct match_ctx {
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *js;
};

/* Splits text[off..off+n) (valid UTF-8) with re, appending pieces to dst. */
static hearth_status split_one(const pcre2_code *re, struct match_ctx *m, const char *text,
                               size_t off, size_t n, struct span_list *dst)
{
    PCRE2_SPTR subj = (PCRE2_SPTR)(text + off);
    size_t pos = 0, prev = 0;
    hearth_status st;
    while (pos < n) {
        int rc = pcre2_match(re, subj, n, pos, PCRE2_NO_UTF_CHECK, m->md, m->mc);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return err_set(HEARTH_ERR_INTERNAL,
                           "tokenizer: pre-tokenizer match at text offset %zu: %s", off + pos,
                           (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
        size_t s = ov[0], e = ov[1];
        if (e <= s) {
            /* No pattern here matches empty; if one did, step one character on. */
            size_t k = utf8_lead_len((uint8_t)text[off + s]);
            pos = s + (k ? k : 1);
            continue;
        }
        if (s > prev && (st = spans_push(dst, off + prev, s - prev)) != HEARTH_OK)
            return st;
        if ((st = spans_push(dst, off + s, e - s)) != HEARTH_OK)
            return st;
        prev = pos = e;
    }
    if (n > prev && (st = spans_push(dst, off + prev, n - prev)) != HEARTH_OK)
        return st;
    return HEARTH_OK;
}

/* Runs the regex sequence over one valid-UTF-8 run and reports its pieces. */
static hearth_status split_valid(const struct tok__pretok *p, struct match_ctx *m, const char *text,
                                 size_t off, size_t n, struct span_list *a, struct span_list *b,
                                 tok__piece_fn fn, void *ctx)
{
    hearth_status st;
    a->n = 0;
    if ((st = spans_push(a, off, n)) != HEARTH_OK)
        return st;
    for (int r = 0; r < p->n_re; r++) {
        b->n = 0;
        for (size_t i = 0; i < a->n; i++)
            if ((st = split_one(p->re[r], m, text, a->v[2 * i], a->v[2 * i + 1], b)) != HEARTH_OK)
                return st;
        struct span_list tmp = *a;
        *a = *b;
        *b = tmp;
    }
    for (size_t i = 0; i < a->n; i++)
        if ((st = fn(ctx, a->v[2 * i], a->v[2 * i + 1])) != HEARTH_OK)
            return st;
    return HEARTH_OK;
}

hearth_status tok__pretok_split(const struct tok__pretok *p, const char *text, size_t len,
                                tok__piece_fn fn, void *ctx)
{
    hearth_status st = HEARTH_OK;
    struct span_list a = {0}, b = {0};
    struct match_ctx m = {0};
    m.md = pcre2_match_data_create(4, NULL);
    m.mc = pcre2_match_context_create(NULL);
    m.js = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, NULL);
    if (!m.md || !m.mc) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "tokenizer: PCRE2 match data");
        goto done;
    }
    if (m.js) /* without a JIT stack of our own, JIT uses its 32 KB default */
        pcre2_jit_stack_assign(m.mc, NULL, m.js);

    size_t i = 0;
    while (i < len) {
        /* the longest valid run starting at i */
        size_t j = i;
        while (j < len) {
            if ((uint8_t)text[j] < 0x80) {
                j++;
                continue;
            }
            uint32_t cp;
            size_t k = utf8_decode(text + j, len - j, &cp);
            if (k == 0)
                break;
            j += k;
        }
        if (j > i && (st = split_valid(p, &m, text, i, j - i, &a, &b, fn, ctx)) != HEARTH_OK)
            goto done;
        if (j < len) { /* one invalid byte, alone */
            if ((st = fn(ctx, j, 1)) != HEARTH_OK)
                goto done;
            j++;
        }
        i = j;
    }
done:
    free(a.v);
    free(b.v);
    if (m.js)
        pcre2_jit_stack_free(m.js);
    pcre2_match_context_free(m.mc);
    pcre2_match_data_free(m.md);
    return st;
}
