/*
 * tokenizer: vocabulary loading from GGUF metadata, special tokens, the
 * public entry points and the dispatch to tok-bpe.c / tok-spm.c.
 *
 * Load copies the token texts into one arena (so the tokenizer outlives the
 * GGUF mapping) and precomputes, per token, the bytes it decodes to; decoding
 * is then a table lookup, and loading Gemma's 262144 tokens costs a few
 * copies and one hash-table build. The vocabulary map is open addressing with
 * linear probing over ids (slot = id + 1), sized to a power of two at least
 * twice the vocabulary.
 *
 * Special tokens (control, user-defined, unknown) are cut out of the text
 * before the model runs, longest match first at each position, the way
 * llama.cpp partitions text: user-defined tokens always, control tokens only
 * with parse_special. Candidate positions are filtered by per-length
 * first/last-byte bitmaps so that Gemma's 6000+ specials and its space-run
 * tokens cost a few bit tests per byte, not a scan per special.
 *
 * The streaming decoder keeps at most 3 bytes: the longest prefix of a UTF-8
 * sequence that can still complete. Everything else is emitted at once, with
 * bytes that can never become valid replaced by U+FFFD (one per maximal
 * invalid subpart, as the Unicode standard recommends).
 */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "utf8.h"

/* ---- hashing and the vocabulary map ---- */

uint64_t tok__hash(const char *s, size_t n)
{
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001B3ull;
    }
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

static bool text_eq(const struct tokenizer *t, int32_t id, const char *s, size_t n)
{
    return t->text_len[id] == n && memcmp(t->arena + t->text_off[id], s, n) == 0;
}

static int32_t map_lookup(const struct tokenizer *t, const struct tok__text_map *m, const char *s,
                          size_t n)
{
    if (!m->slots)
        return -1;
    uint64_t h = tok__hash(s, n), tag = h >> 32;
    for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
        uint64_t v = m->slots[i];
        if (v == 0)
            return -1;
        int32_t id = (int32_t)(uint32_t)v - 1;
        if ((v >> 32) == tag && text_eq(t, id, s, n))
            return id;
    }
}

/* Inserts id unless its text is already present (the first id of a duplicate wins). */
static void map_insert_h(const struct tokenizer *t, struct tok__text_map *m, int32_t id, uint64_t h)
{
    const char *s = t->arena + t->text_off[id];
    size_t n = t->text_len[id];
    uint64_t tag = h >> 32;
    for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
        uint64_t v = m->slots[i];
        if (v == 0) {
            m->slots[i] = tag << 32 | ((uint64_t)id + 1);
            return;
        }
        if ((v >> 32) == tag && text_eq(t, (int32_t)(uint32_t)v - 1, s, n))
            return;
    }
}

static void map_insert(const struct tokenizer *t, struct tok__text_map *m, int32_t id)
{
    map_insert_h(t, m, id, tok__hash(t->arena + t->text_off[id], t->text_len[id]));
}

static hearth_status map_init(struct tok__text_map *m, size_t n)
{
    uint32_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots)
        return err_set(HEARTH_ERR_NO_MEMORY, "tokenizer: hash table of %u slots", cap);
    m->mask = cap - 1;
    return HEARTH_OK;
}

int32_t tok__lookup(const struct tokenizer *t, const char *s, size_t n)
{
    return map_lookup(t, &t->map, s, n);
}

hearth_status tok__ids_push(struct tok__ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v)
            return err_set(HEARTH_ERR_NO_MEMORY, "tokenizer: %zu token ids", cap);
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return HEARTH_OK;
}

/* ---- loading ---- */

/* An optional u32 id key; ids outside the vocabulary are ignored (as llama.cpp does). */
static void opt_id(const struct gguf_file *f, const char *key, uint32_t n_vocab, int32_t *id)
{
    uint32_t v;
    if (gguf_find_kv(f, key) && gguf_get_u32(f, key, &v) == HEARTH_OK && v < n_vocab)
        *id = (int32_t)v;
}

static hearth_status opt_bool(const struct gguf_file *f, const char *key, bool *b)
{
    if (!gguf_find_kv(f, key))
        return HEARTH_OK;
    return gguf_get_bool(f, key, b);
}

static hearth_status load_tokens(struct tokenizer *t, const struct gguf_file *f)
{
    const struct gguf_kv *kv = gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (!kv || kv->type != GGUF_VT_ARRAY || kv->arr_type != GGUF_VT_STRING || kv->arr_n == 0)
        return err_set(HEARTH_ERR_BAD_FILE,
                       "%s: tokenizer.ggml.tokens: expected a non-empty array of strings", f->path);
    if (kv->arr_n > INT32_MAX / 2)
        return err_set(HEARTH_ERR_BAD_FILE, "%s: tokenizer.ggml.tokens: %llu tokens is too many",
                       f->path, (unsigned long long)kv->arr_n);
    uint32_t n = (uint32_t)kv->arr_n;
    t->n_vocab = n;
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (kv->arr_strs[i].len > UINT32_MAX / 4)
            return err_set(HEARTH_ERR_BAD_FILE, "%s: tokenizer.ggml.tokens[%u]: length %llu",
                           f->path, i, (unsigned long long)kv->arr_strs[i].len);
        total += kv->arr_strs[i].len + 1;
    }
    t->arena = malloc(total);
    t->text_off = malloc((size_t)n * sizeof *t->text_off);
    t->text_len = malloc((size_t)n * sizeof *t->text_len);
    t->scores = calloc(n, sizeof *t->scores);
    t->types = malloc(n);
    if (!t->arena || !t->text_off || !t->text_len || !t->scores || !t->types)
        return err_set(HEARTH_ERR_NO_MEMORY, "%s: vocabulary of %u tokens", f->path, n);
    uint64_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct gguf_str s = kv->arr_strs[i];
        memcpy(t->arena + off, s.ptr, s.len);
        t->arena[off + s.len] = 0;
        t->text_off[i] = off;
        t->text_len[i] = (uint32_t)s.len;
        off += s.len + 1;
    }

    const struct gguf_kv *sc = gguf_find_kv(f, "tokenizer.ggml.scores");
    if (sc) {
        if (sc->type != GGUF_VT_ARRAY || sc->arr_n != n ||
            (sc->arr_type != GGUF_VT_FLOAT32 && sc->arr_type != GGUF_VT_INT32))
            return err_set(HEARTH_ERR_BAD_FILE,
                           "%s: tokenizer.ggml.scores: expected %u f32 (or i32) values", f->path,
                           n);
        for (uint32_t i = 0; i < n; i++) {
            if (sc->arr_type == GGUF_VT_FLOAT32) {
                memcpy(&t->scores[i], sc->data + 4 * (size_t)i, 4);
            } else {
                int32_t v;
                memcpy(&v, sc->data + 4 * (size_t)i, 4);
                t->scores[i] = (float)v;
            }
        }
    }
    const struct gguf_kv *ty = gguf_find_kv(f, "tokenizer.ggml.token_type");
    if (ty) {
        if (ty->type != GGUF_VT_ARRAY || ty->arr_n != n ||
            (ty->arr_type != GGUF_VT_INT32 && ty->arr_type != GGUF_VT_UINT32))
            return err_set(HEARTH_ERR_BAD_FILE,
                           "%s: tokenizer.ggml.token_type: expected %u i32 values", f->path, n);
        for (uint32_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, ty->data + 4 * (size_t)i, 4);
            t->types[i] = (uint8_t)(v >= 0 && v <= TOK_TYPE_BYTE ? v : TOK_TYPE_UNDEFINED);
        }
    } else {
        memset(t->types, TOK_TYPE_NORMAL, n);
    }
    hearth_status st = map_init(&t->map, n);
    if (st != HEARTH_OK)
        return st;
    /* Inserting is one cache miss per token into a multi-MB table; hashing in
       small batches first lets the slots be prefetched, which halves load time. */
    enum { BATCH = 16 };
    uint64_t h[BATCH];
    for (uint32_t i0 = 0; i0 < n; i0 += BATCH) {
        uint32_t nb = n - i0 < BATCH ? n - i0 : BATCH;
        for (uint32_t j = 0; j < nb; j++) {
            h[j] = tok__hash(t->arena + t->text_off[i0 + j], t->text_len[i0 + j]);
#if defined(__GNUC__)
            __builtin_prefetch(&t->map.slots[(uint32_t)h[j] & t->map.mask]);
#endif
        }
        for (uint32_t j = 0; j < nb; j++)
            map_insert_h(t, &t->map, (int32_t)(i0 + j), h[j]);
    }
    return HEARTH_OK;
}

/* Precomputes what each token decodes to (see tok_token_bytes). */
static hearth_status build_bytes(struct tokenizer *t)
{
    uint32_t n = t->n_vocab;
    uint64_t total = t->text_off[n - 1] + t->text_len[n - 1] + 1; /* decoding never grows */
    t->bytes_arena = malloc(total);
    t->bytes_off = malloc((size_t)n * sizeof *t->bytes_off);
    t->bytes_len = malloc((size_t)n * sizeof *t->bytes_len);
    if (!t->bytes_arena || !t->bytes_off || !t->bytes_len)
        return err_set(HEARTH_ERR_NO_MEMORY, "tokenizer: decode table for %u tokens", n);
    uint64_t off = 0;
    for (uint32_t id = 0; id < n; id++) {
        const char *s = t->arena + t->text_off[id];
        size_t len = t->text_len[id];
        char *dst = t->bytes_arena + off;
        size_t k = 0;
        uint8_t ty = t->types[id];
        bool raw = ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_USER_DEFINED || ty == TOK_TYPE_UNKNOWN;
        if (raw) {
            memcpy(dst, s, len);
            k = len;
        } else if (t->model == TOK_MODEL_SPM && ty == TOK_TYPE_BYTE && len == 6 &&
                   memcmp(s, "<0x", 3) == 0 && s[5] == '>') {
            char hx[3] = {s[3], s[4], 0}, *end;
            long v = strtol(hx, &end, 16);
            if (end == hx + 2 && v >= 0 && v <= 255) {
                dst[k++] = (char)v;
            } else {
                memcpy(dst, s, len);
                k = len;
            }
        } else if (t->model == TOK_MODEL_SPM) {
            for (size_t i = 0; i < len;) {
                if (len - i >= 3 && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
                    dst[k++] = ' ';
                    i += 3;
                } else {
                    dst[k++] = s[i++];
                }
            }
        } else { /* byte-level BPE: every character of the mapped text is one byte */
            for (size_t i = 0; i < len;) {
                uint32_t cp;
                size_t c = utf8_decode(s + i, len - i, &cp);
                int b = c ? tok__gpt2_cp_to_byte(cp) : -1;
                if (c == 0)
                    c = 1;
                if (b >= 0) {
                    dst[k++] = (char)b;
                } else { /* not a mapped char: keep it as written */
                    memcpy(dst + k, s + i, c);
                    k += c;
                }
                i += c;
            }
        }
        t->bytes_off[id] = off;
        t->bytes_len[id] = (uint32_t)k;
        if (k > t->max_bytes)
            t->max_bytes = k;
        off += k;
    }
    return HEARTH_OK;
}

static void bit_set(uint8_t *bits, uint8_t b)
{
    bits[b >> 3] |= (uint8_t)(1u << (b & 7));
}

static bool bit_get(const uint8_t *bits, uint8_t b)
{
    return (bits[b >> 3] >> (b & 7)) & 1;
}

/* Per distinct special length: which first and last bytes occur (prefilter). */
struct special_len_bits {
    uint8_t first[32], last[32];
};

static hearth_status build_specials(struct tokenizer *t)
{
    uint32_t n = 0, max_len = 0;
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        uint8_t ty = t->types[i];
        if ((ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_USER_DEFINED || ty == TOK_TYPE_UNKNOWN) &&
            t->text_len[i] > 0) {
            n++;
            if (t->text_len[i] > max_len)
                max_len = t->text_len[i];
        }
    }
    if (n == 0)
        return HEARTH_OK;
    t->special_ids = malloc((size_t)n * sizeof *t->special_ids);
    uint8_t *has_len = calloc((size_t)max_len + 1, 1);
    if (!t->special_ids || !has_len) {
        free(has_len);
        return err_set(HEARTH_ERR_NO_MEMORY, "tokenizer: %u special tokens", n);
    }
    hearth_status st = map_init(&t->special_map, n);
    if (st != HEARTH_OK) {
        free(has_len);
        return st;
    }
    for (uint32_t i = 0; i < t->n_vocab; i++) {
        uint8_t ty = t->types[i];
        if ((ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_USER_DEFINED || ty == TOK_TYPE_UNKNOWN) &&
            t->text_len[i] > 0) {
            t->special_ids[t->n_special++] = (int32_t)i;
            map_insert(t, &t->special_map, (int32_t)i);
            has_len[t->text_len[i]] = 1;
            bit_set(t->special_first, (uint8_t)t->arena[t->text_off[i]]);
        }
    }
    uint32_t n_lens = 0;
    for (uint32_t l = 0; l <= max_len; l++)
        n_lens += has_len[l];
    free(has_len);
    /* lens are followed by their prefilter bitmaps in the same allocation */
    size_t bits_off = ((size_t)n_lens * sizeof(uint32_t) + 63) / 64 * 64;
    char *block = malloc(bits_off + (size_t)n_lens * sizeof(struct special_len_bits));
    if (!block)
        return err_set(HEARTH_ERR_NO_MEMORY, "tokenizer: special-token lengths");
    t->special_lens = (uint32_t *)(void *)block;
    struct special_len_bits *bits = (struct special_len_bits *)(void *)(block + bits_off);
    memset(bits, 0, (size_t)n_lens * sizeof *bits);
    uint32_t k = 0;
    for (uint32_t i = 0; i < t->n_special; i++) {
        uint32_t l = t->text_len[t->special_ids[i]];
        uint32_t j = 0;
        while (j < k && t->special_lens[j] != l)
            j++;
        if (j == k)
            t->special_lens[k++] = l;
    }
    /* descending, so the longest special at a position wins */
    for (uint32_t i = 1; i < k; i++)
        for (uint32_t j = i; j > 0 && t->special_lens[j - 1] < t->special_lens[j]; j--) {
            uint32_t tmp = t->special_lens[j];
            t->special_lens[j] = t->special_lens[j - 1];
            t->special_lens[j - 1] = tmp;
        }
    t->n_special_lens = k;
    for (uint32_t i = 0; i < t->n_special; i++) {
        int32_t id = t->special_ids[i];
        uint32_t l = t->text_len[id], j = 0;
        while (t->special_lens[j] != l)
            j++;
        const char *s = t->arena + t->text_off[id];
        bit_set(bits[j].first, (uint8_t)s[0]);
        bit_set(bits[j].last, (uint8_t)s[l - 1]);
    }
    return HEARTH_OK;
}

static const struct special_len_bits *special_bits(const struct tokenizer *t)
{
    size_t bits_off = ((size_t)t->n_special_lens * sizeof(uint32_t) + 63) / 64 * 64;
    return (const struct special_len_bits *)(const void *)((const char *)t->special_lens +
                                                           bits_off);
}

/* Texts that close a turn or a document (§5.6); the first ones found also serve as eot. */
static const char *const eog_texts[] = {"<|eot_id|>",    "<|im_end|>",      "<end_of_turn>",
                                        "<|end|>",       "<|end_of_turn|>", "<|eom_id|>",
                                        "<|endoftext|>", "<EOT>",           "<|return|>"};

static hearth_status build_eog(struct tokenizer *t)
{
    size_t cap = 3 + sizeof eog_texts / sizeof eog_texts[0];
    t->eog_ids = malloc(cap * sizeof *t->eog_ids);
    if (!t->eog_ids)
        return err_set(HEARTH_ERR_NO_MEMORY, "tokenizer: end-of-generation ids");
    int32_t cand[3] = {t->eos, t->eot, t->eom};
    for (int i = 0; i < 3; i++)
        if (cand[i] >= 0)
            t->eog_ids[t->n_eog++] = cand[i];
    for (size_t i = 0; i < sizeof eog_texts / sizeof eog_texts[0]; i++) {
        int32_t id = tok_find(t, eog_texts[i]);
        if (id < 0 || (t->types[id] != TOK_TYPE_CONTROL && t->types[id] != TOK_TYPE_USER_DEFINED))
            continue;
        if (t->eot < 0 && i < 5)
            t->eot = id;
        bool dup = false;
        for (uint32_t j = 0; j < t->n_eog; j++)
            dup |= t->eog_ids[j] == id;
        if (!dup)
            t->eog_ids[t->n_eog++] = id;
    }
    return HEARTH_OK;
}

hearth_status tok_load(const struct gguf_file *f, struct tokenizer **out)
{
    *out = NULL;
    struct gguf_str model;
    hearth_status st = gguf_get_str(f, "tokenizer.ggml.model", &model);
    if (st != HEARTH_OK)
        return err_prefix(st, "%s: tokenizer", f->path);
    struct tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return err_set(HEARTH_ERR_NO_MEMORY, "tokenizer");
    t->bos = t->eos = t->eot = t->eom = t->pad = t->unk = -1;
    for (int b = 0; b < 256; b++)
        t->byte_tok[b] = -1;
    if (gguf_str_eq(model, "gpt2")) {
        t->model = TOK_MODEL_BPE;
    } else if (gguf_str_eq(model, "llama")) {
        t->model = TOK_MODEL_SPM;
    } else {
        st = err_set(HEARTH_ERR_UNSUPPORTED,
                     "%s: tokenizer.ggml.model: '%.*s' is not supported (expected gpt2 or llama)",
                     f->path, (int)(model.len > 64 ? 64 : model.len), model.ptr);
        goto fail;
    }
    if ((st = load_tokens(t, f)) != HEARTH_OK)
        goto fail;
    uint32_t n = t->n_vocab;

    /* defaults per model (§5.3), then the keys */
    if (t->model == TOK_MODEL_SPM) {
        t->bos = n > 1 ? 1 : -1;
        t->eos = n > 2 ? 2 : -1;
        t->unk = 0;
        t->add_bos = true;
        t->add_space_prefix = true;
    } else {
        t->bos = t->eos = n > 11 ? 11 : -1;
    }
    opt_id(f, "tokenizer.ggml.bos_token_id", n, &t->bos);
    opt_id(f, "tokenizer.ggml.eos_token_id", n, &t->eos);
    opt_id(f, "tokenizer.ggml.eot_token_id", n, &t->eot);
    opt_id(f, "tokenizer.ggml.eom_token_id", n, &t->eom);
    opt_id(f, "tokenizer.ggml.unknown_token_id", n, &t->unk);
    opt_id(f, "tokenizer.ggml.padding_token_id", n, &t->pad);

    if (t->model == TOK_MODEL_BPE) {
        struct gguf_str pre;
        const char *name = "default";
        char buf[sizeof t->pre_name];
        bool absent = !gguf_find_kv(f, "tokenizer.ggml.pre");
        if (!absent) {
            if ((st = gguf_get_str(f, "tokenizer.ggml.pre", &pre)) != HEARTH_OK)
                goto fail;
            size_t k = pre.len < sizeof buf - 1 ? (size_t)pre.len : sizeof buf - 1;
            memcpy(buf, pre.ptr, k);
            buf[k] = 0;
            name = buf;
        }
        if ((st = tok__pretok_create(name, &t->pretok, &t->pre_fallback)) != HEARTH_OK)
            goto fail;
        t->pre_fallback |= absent;
        snprintf(t->pre_name, sizeof t->pre_name, "%s", t->pre_fallback ? "default" : name);
        t->ignore_merges = tok__pretok_ignore_merges(t->pre_name);
        t->add_bos = tok__pretok_adds_bos(t->pre_name);
        if ((st = tok__bpe_init(t, f)) != HEARTH_OK)
            goto fail;
    } else {
        if ((st = tok__spm_init(t)) != HEARTH_OK)
            goto fail;
    }
    if ((st = opt_bool(f, "tokenizer.ggml.add_bos_token", &t->add_bos)) != HEARTH_OK ||
        (st = opt_bool(f, "tokenizer.ggml.add_eos_token", &t->add_eos)) != HEARTH_OK ||
        (st = opt_bool(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix)) != HEARTH_OK)
        goto fail;
    if ((st = build_bytes(t)) != HEARTH_OK || (st = build_specials(t)) != HEARTH_OK ||
        (st = build_eog(t)) != HEARTH_OK)
        goto fail;
    *out = t;
    return HEARTH_OK;
fail:
    tok_free(t);
    return st;
}

void tok_free(struct tokenizer *t)
{
    if (!t)
        return;
    tok__pretok_free(t->pretok);
    free(t->merges.keys);
    free(t->merges.rank);
    free(t->merges.merged);
    free(t->special_lens);
    free(t->special_map.slots);
    free(t->special_ids);
    free(t->eog_ids);
    free(t->map.slots);
    free(t->types);
    free(t->scores);
    free(t->bytes_len);
    free(t->bytes_off);
    free(t->bytes_arena);
    free(t->text_len);
    free(t->text_off);
    free(t->arena);
    free(t);
}

/* ---- encoding ---- */

/* The special token starting at text[i] that may be cut out, or -1. */
static int32_t match_special(const struct tokenizer *t, const char *text, size_t len, size_t i,
                             bool parse_special, uint32_t *mlen)
{
    const struct special_len_bits *bits = special_bits(t);
    uint8_t c0 = (uint8_t)text[i];
    for (uint32_t j = 0; j < t->n_special_lens; j++) {
        uint32_t l = t->special_lens[j];
        if (l > len - i || !bit_get(bits[j].first, c0) ||
            !bit_get(bits[j].last, (uint8_t)text[i + l - 1]))
            continue;
        int32_t id = map_lookup(t, &t->special_map, text + i, l);
        if (id < 0)
            continue;
        if (!parse_special && t->types[id] != TOK_TYPE_USER_DEFINED)
            continue;
        *mlen = l;
        return id;
    }
    return -1;
}

static hearth_status encode_text(const struct tokenizer *t, const char *s, size_t n,
                                 bool prev_special, struct tok__ids *ids)
{
    if (t->model == TOK_MODEL_BPE)
        return tok__bpe_encode(t, s, n, ids);
    /* llama.cpp prefixes the space at the start and after every special token */
    return tok__spm_encode(t, s, n, t->add_space_prefix && prev_special, ids);
}

hearth_status tok_encode(const struct tokenizer *t, const char *text, size_t len, bool add_special,
                         bool parse_special, int32_t **ids_out, size_t *n_ids)
{
    *ids_out = NULL;
    *n_ids = 0;
    if (!text && len > 0)
        return err_set(HEARTH_ERR_INVALID_ARG, "tok_encode: NULL text of length %zu", len);
    struct tok__ids ids = {0};
    hearth_status st = HEARTH_OK;
    if (add_special && t->add_bos && t->bos >= 0 && (st = tok__ids_push(&ids, t->bos)) != HEARTH_OK)
        goto fail;
    size_t start = 0;
    bool prev_special = true;
    for (size_t i = 0; i < len;) {
        uint32_t mlen = 0;
        int32_t id = -1;
        if (t->n_special && bit_get(t->special_first, (uint8_t)text[i]))
            id = match_special(t, text, len, i, parse_special, &mlen);
        if (id < 0) {
            i++;
            continue;
        }
        if (i > start &&
            (st = encode_text(t, text + start, i - start, prev_special, &ids)) != HEARTH_OK)
            goto fail;
        if ((st = tok__ids_push(&ids, id)) != HEARTH_OK)
            goto fail;
        prev_special = true;
        i += mlen;
        start = i;
    }
    if (len > start &&
        (st = encode_text(t, text + start, len - start, prev_special, &ids)) != HEARTH_OK)
        goto fail;
    if (add_special && t->add_eos && t->eos >= 0 && (st = tok__ids_push(&ids, t->eos)) != HEARTH_OK)
        goto fail;
    if (!ids.v && (st = tok__ids_push(&ids, 0)) == HEARTH_OK)
        ids.n = 0; /* a valid pointer even for no ids */
    if (st != HEARTH_OK)
        goto fail;
    *ids_out = ids.v;
    *n_ids = ids.n;
    return HEARTH_OK;
fail:
    free(ids.v);
    return st;
}

/* ---- queries ---- */

enum tok_model tok_model_kind(const struct tokenizer *t)
{
    return t->model;
}
size_t tok_n_vocab(const struct tokenizer *t)
{
    return t->n_vocab;
}
int32_t tok_bos(const struct tokenizer *t)
{
    return t->bos;
}
int32_t tok_eos(const struct tokenizer *t)
{
    return t->eos;
}
int32_t tok_eot(const struct tokenizer *t)
{
    return t->eot;
}
int32_t tok_pad(const struct tokenizer *t)
{
    return t->pad;
}
int32_t tok_unk(const struct tokenizer *t)
{
    return t->unk;
}
bool tok_add_bos(const struct tokenizer *t)
{
    return t->add_bos;
}
bool tok_add_eos(const struct tokenizer *t)
{
    return t->add_eos;
}
bool tok_add_space_prefix(const struct tokenizer *t)
{
    return t->add_space_prefix;
}
const char *tok_pre_name(const struct tokenizer *t)
{
    return t->pre_name;
}
bool tok_pre_fallback(const struct tokenizer *t)
{
    return t->pre_fallback;
}
size_t tok_max_token_bytes(const struct tokenizer *t)
{
    return t->max_bytes;
}

bool tok_is_eog(const struct tokenizer *t, int32_t id)
{
    for (uint32_t i = 0; i < t->n_eog; i++)
        if (t->eog_ids[i] == id)
            return true;
    return false;
}

enum tok_type tok_token_type(const struct tokenizer *t, int32_t id)
{
    if (id < 0 || (uint32_t)id >= t->n_vocab)
        return TOK_TYPE_UNDEFINED;
    return (enum tok_type)t->types[id];
}

bool tok_is_control(const struct tokenizer *t, int32_t id)
{
    return tok_token_type(t, id) == TOK_TYPE_CONTROL;
}

const char *tok_piece(const struct tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || (uint32_t)id >= t->n_vocab)
        return NULL;
    if (len)
        *len = t->text_len[id];
    return t->arena + t->text_off[id];
}

const char *tok_token_bytes(const struct tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || (uint32_t)id >= t->n_vocab)
        return NULL;
    *len = t->bytes_len[id];
    return t->bytes_arena + t->bytes_off[id];
}

int32_t tok_find_n(const struct tokenizer *t, const char *piece, size_t len)
{
    return map_lookup(t, &t->map, piece, len);
}

int32_t tok_find(const struct tokenizer *t, const char *piece)
{
    return tok_find_n(t, piece, strlen(piece));
}

/* ---- decoding ---- */

struct tok_decoder {
    const struct tokenizer *t;
    bool render_special;
    bool at_start;   /* no text token seen yet (leading-space rule) */
    uint8_t held[4]; /* an incomplete but still valid UTF-8 prefix */
    size_t n_held;
    char *scratch; /* held + one token's bytes: [t->max_bytes + 4] */
};

size_t tok_decoder_max_out(const struct tokenizer *t)
{
    return 3 * (t->max_bytes + 4);
}

hearth_status tok_decoder_create(const struct tokenizer *t, bool render_special,
                                 struct tok_decoder **out)
{
    *out = NULL;
    struct tok_decoder *d = calloc(1, sizeof *d);
    if (!d)
        return err_set(HEARTH_ERR_NO_MEMORY, "tokenizer: decoder");
    d->scratch = malloc(t->max_bytes + 4);
    if (!d->scratch) {
        free(d);
        return err_set(HEARTH_ERR_NO_MEMORY, "tokenizer: decoder buffer");
    }
    d->t = t;
    d->render_special = render_special;
    d->at_start = true;
    *out = d;
    return HEARTH_OK;
}

void tok_decoder_free(struct tok_decoder *d)
{
    if (!d)
        return;
    free(d->scratch);
    free(d);
}

void tok_decoder_reset(struct tok_decoder *d)
{
    d->n_held = 0;
    d->at_start = true;
}

/*
 * Writes the complete sequences of s[0..n) to out (when out is non-NULL),
 * replacing invalid subparts by U+FFFD; returns the bytes written and leaves
 * in *tail the length of an incomplete valid suffix that was not written.
 */
static size_t emit_utf8(const char *s, size_t n, char *out, size_t *tail)
{
    size_t i = 0, k = 0;
    *tail = 0;
    while (i < n) {
        uint32_t cp;
        size_t c = (uint8_t)s[i] < 0x80 ? 1 : utf8_decode(s + i, n - i, &cp);
        if (c) {
            if (out)
                memcpy(out + k, s + i, c);
            k += c;
            i += c;
            continue;
        }
        size_t p = utf8_partial_len(s + i, n - i);
        if (p == n - i) {
            *tail = p;
            break;
        }
        if (out)
            memcpy(out + k, UTF8_REPLACEMENT, UTF8_REPLACEMENT_LEN);
        k += UTF8_REPLACEMENT_LEN;
        i += p ? p : 1;
    }
    return k;
}

hearth_status tok_decoder_push(struct tok_decoder *d, int32_t id, char *out, size_t cap,
                               size_t *n_out)
{
    const struct tokenizer *t = d->t;
    *n_out = 0;
    if (id < 0 || (uint32_t)id >= t->n_vocab)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "tok_decoder_push: id %d is outside the %u-token "
                       "vocabulary",
                       (int)id, t->n_vocab);
    if (t->types[id] == TOK_TYPE_CONTROL && !d->render_special)
        return HEARTH_OK;
    size_t len;
    const char *b = tok_token_bytes(t, id, &len);
    bool strip = false;
    if (t->types[id] != TOK_TYPE_CONTROL) {
        strip = d->at_start && t->model == TOK_MODEL_SPM && t->add_space_prefix && len > 0 &&
                b[0] == ' ';
    }
    if (strip) {
        b++;
        len--;
    }
    memcpy(d->scratch, d->held, d->n_held);
    memcpy(d->scratch + d->n_held, b, len);
    size_t n = d->n_held + len, tail;
    size_t need = emit_utf8(d->scratch, n, NULL, &tail);
    if (need > cap)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "tok_decoder_push: token %d needs %zu bytes of output, cap is %zu", (int)id,
                       need, cap);
    emit_utf8(d->scratch, n, out, &tail);
    memcpy(d->held, d->scratch + n - tail, tail);
    d->n_held = tail;
    if (t->types[id] != TOK_TYPE_CONTROL)
        d->at_start = false;
    *n_out = need;
    return HEARTH_OK;
}

hearth_status tok_decoder_flush(struct tok_decoder *d, char *out, size_t cap, size_t *n_out)
{
    *n_out = 0;
    if (d->n_held == 0)
        return HEARTH_OK;
    if (cap < UTF8_REPLACEMENT_LEN)
        return err_set(HEARTH_ERR_INVALID_ARG, "tok_decoder_flush: cap %zu < 3", cap);
    /* what is held is one valid-but-truncated sequence: one replacement character */
    memcpy(out, UTF8_REPLACEMENT, UTF8_REPLACEMENT_LEN);
    *n_out = UTF8_REPLACEMENT_LEN;
    d->n_held = 0;
    return HEARTH_OK;
}

hearth_status tok_decode(const struct tokenizer *t, const int32_t *ids, size_t n,
                         bool render_special, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    struct tok_decoder *d;
    hearth_status st = tok_decoder_create(t, render_special, &d);
    if (st != HEARTH_OK)
        return st;
    size_t step = tok_decoder_max_out(t), cap = step * 4 + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "tok_decode: output buffer");
        goto done;
    }
    for (size_t i = 0; i <= n; i++) {
        if (cap - len < step + 1) {
            size_t ncap = cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                st = err_set(HEARTH_ERR_NO_MEMORY, "tok_decode: output of %zu bytes", ncap);
                goto done;
            }
            buf = nb;
            cap = ncap;
        }
        size_t k;
        st = i < n ? tok_decoder_push(d, ids[i], buf + len, cap - len - 1, &k)
                   : tok_decoder_flush(d, buf + len, cap - len - 1, &k);
        if (st != HEARTH_OK)
            goto done;
        len += k;
    }
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    buf = NULL;
done:
    free(buf);
    tok_decoder_free(d);
    return st;
}
