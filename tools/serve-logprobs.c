/*
 * serve-logprobs: the "logprobs" object of a completion choice, from the
 * engine's per-token records (slots_logprob).
 *
 * Chat (OpenAI's current shape):
 *   {"content": [{"token": str, "logprob": x, "bytes": [b, ...],
 *                 "top_logprobs": [{"token", "logprob", "bytes"}, ...]}, ...],
 *    "refusal": null}
 * Completions (the legacy shape, which evaluation harnesses read):
 *   {"tokens": [str, ...], "token_logprobs": [x, ...],
 *    "top_logprobs": [{str: x, ...}, ...], "text_offset": [n, ...]}
 * text_offset counts characters (code points, as a client's string indexes
 * them) from the start of the prompt, as OpenAI's does.
 *
 * A token's string is its bytes when they are valid UTF-8 without NUL;
 * otherwise (a piece of a multi-byte character) "bytes:\xNN..." spelled out,
 * the form OpenAI uses; chat's "bytes" always carries the exact bytes.
 */
#ifdef HEARTH_WITH_SERVER

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"
#include "tokenizer.h"
#include "utf8.h"

/* Characters (UTF-8 lead bytes) in s[0..n). */
size_t serve_utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* The token's string into buf (NUL-terminated); cap >= 4 * max token bytes + 7. */
static const char *token_string(const struct tokenizer *t, int32_t id, char *buf, size_t cap)
{
    size_t n = 0;
    const char *b = tok_token_bytes(t, id, &n);
    if (!b)
        n = 0;
    if (b && utf8_valid(b, n) && !memchr(b, 0, n) && n < cap) {
        memcpy(buf, b, n);
        buf[n] = '\0';
        return buf;
    }
    size_t o = (size_t)snprintf(buf, cap, "bytes:");
    for (size_t i = 0; i < n && o + 5 <= cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", (unsigned char)b[i]);
    return buf;
}

static void add_bytes(cJSON *o, const struct tokenizer *t, int32_t id)
{
    size_t n = 0;
    const char *b = tok_token_bytes(t, id, &n);
    cJSON *arr = cJSON_AddArrayToObject(o, "bytes");
    for (size_t i = 0; arr && b && i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((unsigned char)b[i]));
}

/* {"token", "logprob", "bytes"} */
static cJSON *chat_entry(const struct tokenizer *t, int32_t id, float lp, char *buf, size_t cap)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "token", token_string(t, id, buf, cap));
    cJSON_AddNumberToObject(o, "logprob", lp);
    add_bytes(o, t, id);
    return o;
}

static cJSON *chat_logprobs(const struct serve_logprobs *l, char *buf, size_t cap)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *content = o ? cJSON_AddArrayToObject(o, "content") : NULL;
    if (!content) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddNullToObject(o, "refusal");
    for (size_t i = 0; i < l->n; i++) {
        const struct slots_logprob *r = &l->lp[i];
        cJSON *e = chat_entry(l->tok, r->id, r->logprob, buf, cap);
        if (!e)
            break;
        cJSON_AddItemToArray(content, e);
        cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
        for (int j = 0; top && j < r->n_top; j++)
            cJSON_AddItemToArray(top, chat_entry(l->tok, r->top_id[j], r->top_logprob[j], buf, cap));
    }
    return o;
}

static cJSON *completion_logprobs(const struct serve_logprobs *l, char *buf, size_t cap)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *toks = o ? cJSON_AddArrayToObject(o, "tokens") : NULL;
    cJSON *lps = o ? cJSON_AddArrayToObject(o, "token_logprobs") : NULL;
    cJSON *tops = o ? cJSON_AddArrayToObject(o, "top_logprobs") : NULL;
    cJSON *offs = o ? cJSON_AddArrayToObject(o, "text_offset") : NULL;
    if (!toks || !lps || !tops || !offs) {
        cJSON_Delete(o);
        return NULL;
    }
    for (size_t i = 0; i < l->n; i++) {
        const struct slots_logprob *r = &l->lp[i];
        cJSON_AddItemToArray(toks, cJSON_CreateString(token_string(l->tok, r->id, buf, cap)));
        /* offsets lie in this text, or at its end for a token with no text */
        size_t at = r->offset > l->base_bytes ? r->offset - l->base_bytes : 0;
        if (at > l->text_len)
            at = l->text_len;
        size_t chars = l->base_chars + serve_utf8_chars(l->text, at);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)chars));
        if (isnan(r->logprob)) {
            /* a prompt's first token: nothing before it to predict it */
            cJSON_AddItemToArray(lps, cJSON_CreateNull());
            cJSON_AddItemToArray(tops, cJSON_CreateNull());
            continue;
        }
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(r->logprob));
        cJSON *top = cJSON_CreateObject();
        for (int j = 0; top && j < r->n_top; j++) {
            const char *k = token_string(l->tok, r->top_id[j], buf, cap);
            /* two ids with one string: the more likely (listed first) is kept */
            if (!cJSON_GetObjectItemCaseSensitive(top, k))
                cJSON_AddNumberToObject(top, k, r->top_logprob[j]);
        }
        cJSON_AddItemToArray(tops, top ? top : cJSON_CreateNull());
    }
    return o;
}

bool serve_echo_text(const struct tokenizer *t, const int32_t *ids, size_t n, char **text,
                     size_t *len, size_t **off)
{
    *text = NULL;
    *len = 0;
    *off = malloc((n ? n : 1) * sizeof **off);
    struct tok_decoder *d = NULL;
    size_t cap = tok_decoder_max_out(t), room = 256;
    char *out = malloc(room);
    bool ok = *off && out && tok_decoder_create(t, false, &d) == HEARTH_OK;
    for (size_t i = 0; ok && i <= n; i++) {
        if (room - *len < cap + 1) {
            while (room - *len < cap + 1)
                room *= 2;
            char *grown = realloc(out, room);
            if (!grown) {
                ok = false;
                break;
            }
            out = grown;
        }
        size_t got = 0;
        if (i < n) {
            (*off)[i] = *len;
            ok = tok_decoder_push(d, ids[i], out + *len, cap, &got) == HEARTH_OK;
        } else {
            ok = tok_decoder_flush(d, out + *len, cap, &got) == HEARTH_OK;
        }
        *len += got;
    }
    tok_decoder_free(d);
    if (!ok) {
        free(out);
        free(*off);
        *off = NULL;
        *len = 0;
        return false;
    }
    out[*len] = '\0';
    *text = out;
    return true;
}

cJSON *serve_logprobs_json(bool chat, const struct serve_logprobs *l)
{
    size_t cap = 4 * tok_max_token_bytes(l->tok) + 16;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    cJSON *o = chat ? chat_logprobs(l, buf, cap) : completion_logprobs(l, buf, cap);
    free(buf);
    return o;
}

#else
typedef int serve_logprobs_unused; /* ISO C forbids an empty translation unit */
#endif
