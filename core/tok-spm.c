/*
 * tok-spm: SentencePiece-style BPE (tokenizer.ggml.model = "llama"), as used
 * by Llama 1/2, Mistral and Gemma GGUFs.
 *
 * Procedure (facts sheet §5.3): optionally prepend a space, replace every
 * space by U+2581 "▁", start from one symbol per UTF-8 character, and
 * repeatedly merge the adjacent pair whose concatenation is a vocabulary
 * token with the highest score (leftmost on ties). A symbol that ends up not
 * being a token is written as <0xNN> byte tokens, one per byte (byte
 * fallback), or as the unknown token if the vocabulary has no byte tokens.
 *
 * Symbols are (offset, length) spans of the normalized buffer, so a pair's
 * text is just the span from the left symbol's start: no string is built.
 * Candidate pairs sit in a binary heap keyed (score, position); a popped pair
 * is stale unless both symbols are still adjacent with the lengths it was
 * made from. Control, unused and byte tokens are never merge targets: like
 * SentencePiece itself, plain text must not turn into "<eos>" by merging.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tokenizer.h"
#include "utf8.h"

#define SPM_SPACE "\xE2\x96\x81" /* U+2581 */

hearth_status tok__spm_init(struct tokenizer *t)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
        t->byte_tok[b] = tok__lookup(t, name, 6);
    }
    return HEARTH_OK;
}

struct spm_sym {
    uint32_t off, len; /* span in the normalized buffer; len 0 = merged away */
    int32_t prev, next;
};

struct spm_ctx {
    struct spm_sym *sym;
    struct tok__heap heap;
};

static bool mergeable(const struct tokenizer *t, int32_t id)
{
    uint8_t ty = t->types[id];
    return ty != TOK_TYPE_CONTROL && ty != TOK_TYPE_UNUSED && ty != TOK_TYPE_BYTE;
}

static hearth_status try_pair(const struct tokenizer *t, struct spm_ctx *c, const char *buf,
                              int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return HEARTH_OK;
    const struct spm_sym *a = &c->sym[l], *b = &c->sym[r];
    int32_t id = tok__lookup(t, buf + a->off, a->len + b->len);
    if (id < 0 || !mergeable(t, id))
        return HEARTH_OK;
    /* the highest score first: the heap pops the smallest key */
    struct tok__cand p = {-(double)t->scores[id], (uint32_t)l, (uint32_t)r, (int32_t)a->len,
                          (int32_t)b->len, id};
    return tok__heap_push(&c->heap, &p);
}

static hearth_status emit_symbol(const struct tokenizer *t, const char *s, size_t n,
                                 struct tok__ids *ids)
{
    int32_t id = tok__lookup(t, s, n);
    if (id >= 0 && mergeable(t, id))
        return tok__ids_push(ids, id);
    for (size_t i = 0; i < n; i++) {
        int32_t b = t->byte_tok[(uint8_t)s[i]];
        if (b < 0) { /* no byte fallback: the whole symbol is one unknown token */
            return t->unk >= 0 ? tok__ids_push(ids, t->unk) : HEARTH_OK;
        }
        hearth_status st = tok__ids_push(ids, b);
        if (st != HEARTH_OK)
            return st;
    }
    return HEARTH_OK;
}

hearth_status tok__spm_encode(const struct tokenizer *t, const char *text, size_t len,
                              bool add_prefix, struct tok__ids *ids)
{
    hearth_status st = HEARTH_OK;
    struct spm_ctx c = {0};
    /* normalized text: a space becomes 3 bytes */
    size_t cap = (len + 1) * 3;
    char *buf = malloc(cap);
    if (!buf)
        return err_set(HEARTH_ERR_NO_MEMORY, "tokenizer: SPM buffer for %zu bytes", len);
    size_t n = 0;
    if (add_prefix) {
        memcpy(buf, SPM_SPACE, 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + n, SPM_SPACE, 3);
            n += 3;
        } else {
            buf[n++] = text[i];
        }
    }
    if (n == 0)
        goto done;
    if (n > INT32_MAX) {
        st = err_set(HEARTH_ERR_INVALID_ARG, "tokenizer: text of %zu bytes is too long", len);
        goto done;
    }
    c.sym = malloc(n * sizeof *c.sym);
    if (!c.sym) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "tokenizer: SPM symbols for %zu bytes", len);
        goto done;
    }
    int32_t n_sym = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_decode(buf + i, n - i, &cp);
        if (k == 0)
            k = 1; /* an invalid byte is a symbol of its own; byte fallback takes it */
        c.sym[n_sym].off = (uint32_t)i;
        c.sym[n_sym].len = (uint32_t)k;
        c.sym[n_sym].prev = n_sym - 1;
        c.sym[n_sym].next = n_sym + 1;
        n_sym++;
        i += k;
    }
    c.sym[n_sym - 1].next = -1;
    for (int32_t i = 0; i + 1 < n_sym; i++)
        if ((st = try_pair(t, &c, buf, i, i + 1)) != HEARTH_OK)
            goto done;
    while (c.heap.n > 0) {
        struct tok__cand p = tok__heap_pop(&c.heap);
        struct spm_sym *a = &c.sym[p.left], *b = &c.sym[p.right];
        if (a->len != (uint32_t)p.a || b->len != (uint32_t)p.b || a->next != (int32_t)p.right)
            continue;
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (b->next >= 0)
            c.sym[b->next].prev = (int32_t)p.left;
        if ((st = try_pair(t, &c, buf, a->prev, (int32_t)p.left)) != HEARTH_OK ||
            (st = try_pair(t, &c, buf, (int32_t)p.left, a->next)) != HEARTH_OK)
            goto done;
    }
    for (int32_t i = 0; i >= 0; i = c.sym[i].next)
        if ((st = emit_symbol(t, buf + c.sym[i].off, c.sym[i].len, ids)) != HEARTH_OK)
            goto done;
done:
    tok__heap_free(&c.heap);
    free(c.sym);
    free(buf);
    return st;
}
