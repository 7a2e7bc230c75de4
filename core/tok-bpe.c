/*
 * tok-bpe: GPT-2 style byte-level BPE (tokenizer.ggml.model = "gpt2").
 *
 * Each pre-tokenizer piece starts as one symbol per byte (every byte maps to
 * one printable character, §5.5, so "one character of the mapped text" and
 * "one byte" are the same thing). Symbols are token ids, and merges are looked
 * up by id pair: tokenizer.ggml.merges is parsed once at load into a hash
 * table (left id, right id) -> (rank, merged id), so encoding never builds or
 * compares strings. The lowest-rank adjacent pair is merged first, leftmost on
 * ties; candidate pairs live in a binary heap keyed (rank, position) over a
 * doubly linked list of symbols, with stale heap entries detected on pop by
 * re-checking both symbols. That is O(n log n) per piece, so a piece that is
 * one long run of spaces costs no more than it should.
 *
 * A merge whose parts or result is not in the vocabulary can never fire and is
 * dropped at load. A byte whose mapped character is not a token is dropped, as
 * llama.cpp does: SmolLM2 has no token for C0, C1 and F1-FF (bytes that never
 * or almost never occur in UTF-8), and emitting its unknown token instead would
 * put <|endoftext|> (id 0) into user text.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tokenizer.h"
#include "utf8.h"

/* The 188 "printable" bytes map to themselves; the other 68 to U+0100.. in order. */
static bool gpt2_self(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/*
 * The 68 other bytes, in order, are 0x00-0x20 (33), 0x7F-0xA0 (34) and 0xAD:
 * closed forms instead of a lazily built table, so there is no shared state.
 */
uint32_t tok__gpt2_byte_to_cp(uint8_t b)
{
    if (gpt2_self(b))
        return b;
    if (b <= 0x20)
        return 0x100u + b;
    if (b <= 0xA0)
        return 0x100u + 33 + (b - 0x7Fu);
    return 0x100u + 67; /* 0xAD */
}

int tok__gpt2_cp_to_byte(uint32_t cp)
{
    if (cp < 0x100)
        return gpt2_self(cp) ? (int)cp : -1;
    uint32_t n = cp - 0x100;
    if (n < 33)
        return (int)n;
    if (n < 67)
        return (int)(0x7F + (n - 33));
    return n == 67 ? 0xAD : -1;
}

static uint64_t pair_key(int32_t l, int32_t r)
{
    return ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
}

static uint32_t pair_slot(uint64_t key, uint32_t mask)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32) & mask;
}

/* (rank, merged) of the pair, or rank -1. */
static int32_t merge_find(const struct tok__merge_map *m, int32_t l, int32_t r, int32_t *merged)
{
    if (!m->keys)
        return -1;
    uint64_t key = pair_key(l, r);
    for (uint32_t s = pair_slot(key, m->mask);; s = (s + 1) & m->mask) {
        if (m->keys[s] == UINT64_MAX)
            return -1;
        if (m->keys[s] == key) {
            *merged = m->merged[s];
            return m->rank[s];
        }
    }
}

hearth_status tok__bpe_init(struct tokenizer *t, const struct gguf_file *f)
{
    for (int b = 0; b < 256; b++) {
        char u[4];
        size_t k = utf8_encode(tok__gpt2_byte_to_cp((uint8_t)b), u);
        t->byte_tok[b] = tok__lookup(t, u, k);
    }
    const struct gguf_kv *kv = gguf_find_kv(f, "tokenizer.ggml.merges");
    if (!kv || kv->type != GGUF_VT_ARRAY || kv->arr_type != GGUF_VT_STRING)
        return err_set(HEARTH_ERR_BAD_FILE,
                       "%s: tokenizer.ggml.merges: expected an array of strings (required by "
                       "the gpt2 tokenizer)",
                       f->path);
    uint64_t n = kv->arr_n;
    if (n > (1u << 30))
        return err_set(HEARTH_ERR_BAD_FILE, "%s: tokenizer.ggml.merges: %llu entries is too many",
                       f->path, (unsigned long long)n);
    uint32_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    struct tok__merge_map *m = &t->merges;
    m->mask = cap - 1;
    m->keys = malloc((size_t)cap * sizeof *m->keys);
    m->rank = malloc((size_t)cap * sizeof *m->rank);
    m->merged = malloc((size_t)cap * sizeof *m->merged);
    char *buf = NULL;
    size_t buf_cap = 0;
    if (!m->keys || !m->rank || !m->merged)
        goto oom;
    memset(m->keys, 0xFF, (size_t)cap * sizeof *m->keys);
    for (uint64_t i = 0; i < n; i++) {
        struct gguf_str s = kv->arr_strs[i];
        /* split at the first space after position 0 (a left part may be a space-char) */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp)
            return err_set(HEARTH_ERR_BAD_FILE,
                           "%s: tokenizer.ggml.merges[%llu]: expected \"left right\", got %.*s",
                           f->path, (unsigned long long)i, (int)(s.len > 64 ? 64 : s.len), s.ptr);
        size_t ln = (size_t)(sp - s.ptr), rn = s.len - ln - 1;
        int32_t l = tok__lookup(t, s.ptr, ln), r = tok__lookup(t, sp + 1, rn);
        if (l < 0 || r < 0)
            continue;
        if (ln + rn > buf_cap) {
            buf_cap = (ln + rn) * 2;
            char *nb = realloc(buf, buf_cap);
            if (!nb)
                goto oom;
            buf = nb;
        }
        memcpy(buf, s.ptr, ln);
        memcpy(buf + ln, sp + 1, rn);
        int32_t mid = tok__lookup(t, buf, ln + rn);
        if (mid < 0)
            continue;
        uint64_t key = pair_key(l, r);
        uint32_t slot = pair_slot(key, m->mask);
        while (m->keys[slot] != UINT64_MAX && m->keys[slot] != key)
            slot = (slot + 1) & m->mask;
        if (m->keys[slot] == key)
            continue; /* a duplicate merge: the first (lowest rank) wins */
        m->keys[slot] = key;
        m->rank[slot] = (int32_t)i;
        m->merged[slot] = mid;
    }
    free(buf);
    return HEARTH_OK;
oom:
    free(buf);
    return err_set(HEARTH_ERR_NO_MEMORY, "%s: tokenizer merges table (%llu merges)", f->path,
                   (unsigned long long)n);
}

/* ---- encoding ---- */

struct bpe_ctx {
    const struct tokenizer *t;
    const char *text;
    struct tok__ids *ids;
    /* scratch per piece, [cap] each */
    int32_t *sym;
    uint32_t *prev, *next;
    struct tok__heap heap;
    size_t cap;
};

#define NONE UINT32_MAX

static hearth_status try_pair(struct bpe_ctx *c, uint32_t l, uint32_t r)
{
    if (l == NONE || r == NONE || c->sym[l] < 0 || c->sym[r] < 0)
        return HEARTH_OK;
    int32_t merged;
    int32_t rank = merge_find(&c->t->merges, c->sym[l], c->sym[r], &merged);
    if (rank < 0)
        return HEARTH_OK;
    struct tok__cand e = {(double)rank, l, r, c->sym[l], c->sym[r], merged};
    return tok__heap_push(&c->heap, &e);
}

static hearth_status emit(struct bpe_ctx *c, int32_t id)
{
    return id < 0 ? HEARTH_OK : tok__ids_push(c->ids, id);
}

static hearth_status bpe_piece(void *vctx, size_t off, size_t n)
{
    struct bpe_ctx *c = vctx;
    const struct tokenizer *t = c->t;
    const uint8_t *s = (const uint8_t *)c->text + off;
    hearth_status st;
    if (n == 0)
        return HEARTH_OK;
    if (n == 1)
        return emit(c, t->byte_tok[s[0]]);
    if (t->ignore_merges && n <= 256) {
        char mapped[1024];
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            k += utf8_encode(tok__gpt2_byte_to_cp(s[i]), mapped + k);
        int32_t id = tok__lookup(t, mapped, k);
        if (id >= 0)
            return tok__ids_push(c->ids, id);
    }
    if (n > c->cap) {
        size_t cap = n * 2;
        int32_t *sym = realloc(c->sym, cap * sizeof *sym);
        if (sym)
            c->sym = sym;
        uint32_t *pv = realloc(c->prev, cap * sizeof *pv);
        if (pv)
            c->prev = pv;
        uint32_t *nx = realloc(c->next, cap * sizeof *nx);
        if (nx)
            c->next = nx;
        if (!sym || !pv || !nx)
            return err_set(HEARTH_ERR_NO_MEMORY, "tokenizer: BPE scratch for %zu bytes", n);
        c->cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        c->sym[i] = t->byte_tok[s[i]];
        c->prev[i] = i ? (uint32_t)i - 1 : NONE;
        c->next[i] = i + 1 < n ? (uint32_t)i + 1 : NONE;
    }
    c->heap.n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if ((st = try_pair(c, (uint32_t)i, (uint32_t)i + 1)) != HEARTH_OK)
            return st;
    while (c->heap.n > 0) {
        struct tok__cand e = tok__heap_pop(&c->heap);
        /* stale unless both symbols are still there, adjacent and unchanged;
           a dead symbol has sym = -2 */
        if (c->sym[e.left] != e.a || c->sym[e.right] != e.b || c->next[e.left] != e.right)
            continue;
        uint32_t l = e.left, r = e.right;
        c->sym[l] = e.id;
        c->sym[r] = -2;
        c->next[l] = c->next[r];
        if (c->next[r] != NONE)
            c->prev[c->next[r]] = l;
        if ((st = try_pair(c, c->prev[l], l)) != HEARTH_OK ||
            (st = try_pair(c, l, c->next[l])) != HEARTH_OK)
            return st;
    }
    for (uint32_t i = 0; i != NONE; i = c->next[i])
        if ((st = emit(c, c->sym[i])) != HEARTH_OK)
            return st;
    return HEARTH_OK;
}

hearth_status tok__bpe_encode(const struct tokenizer *t, const char *text, size_t len,
                              struct tok__ids *ids)
{
    struct bpe_ctx c = {0};
    c.t = t;
    c.text = text;
    c.ids = ids;
    hearth_status st = tok__pretok_split(t->pretok, text, len, bpe_piece, &c);
    free(c.sym);
    free(c.prev);
    free(c.next);
    tok__heap_free(&c.heap);
    return st;
}
