/*
 * serve-tokenize: POST /tokenize and /detokenize, with llama.cpp's server's
 * fields, so that a client can find the token ids logit_bias takes (OpenAI
 * clients get them from tiktoken; a local model's vocabulary is its own).
 *
 *   /tokenize    {"content": str, "add_special": false, "parse_special": true,
 *                 "with_pieces": false}
 *                -> {"tokens": [id, ...]}, or with pieces
 *                   {"tokens": [{"id": id, "piece": str or [byte, ...]}, ...]}
 *   /detokenize  {"tokens": [id, ...]} -> {"content": str}
 *
 * A piece is what the token stands for in decoded text: a string when its
 * bytes are valid UTF-8, else the list of byte values (one part of a
 * multi-byte character), as llama.cpp does, so no byte is replaced.
 * Detokenizing renders control tokens, so a round trip of parsed special
 * tokens gives the text back. Ids outside the vocabulary are a 400 naming
 * "tokens".
 */
#include "serve.h"

#ifdef HEARTH_WITH_SERVER

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"
#include "utf8.h"

/* A boolean field (absent or null: dflt). */
static bool flag(const cJSON *root, const char *name, bool dflt, bool *out, struct serve_error *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    *out = dflt;
    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsBool(v)) {
        serve_error_set(e, 400, "invalid_request_error", name, NULL, "'%s' must be a boolean",
                        name);
        return false;
    }
    *out = cJSON_IsTrue(v);
    return true;
}

static cJSON *parse_object(const char *body, size_t len, struct serve_error *e)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        serve_error_set(e, 400, "invalid_request_error", NULL, NULL,
                        "the body must be a JSON object (%zu bytes)", len);
        return NULL;
    }
    return root;
}

/* {"id": id, "piece": ...} for token id. */
static cJSON *piece_item(const struct tokenizer *t, int32_t id)
{
    size_t n = 0;
    const char *b = tok_token_bytes(t, id, &n);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "id", id);
    if (b && utf8_valid(b, n)) {
        char *s = malloc(n + 1);
        if (!s) {
            cJSON_Delete(o);
            return NULL;
        }
        memcpy(s, b, n);
        s[n] = '\0';
        /* a piece with a NUL byte would be cut: such bytes go as numbers */
        if (strlen(s) == n) {
            cJSON_AddStringToObject(o, "piece", s);
            free(s);
            return o;
        }
        free(s);
    }
    cJSON *arr = cJSON_AddArrayToObject(o, "piece");
    for (size_t i = 0; arr && b && i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((uint8_t)b[i]));
    return o;
}

bool serve_tokenize(const struct tokenizer *t, const char *body, size_t len, char **out,
                    struct serve_error *e)
{
    *out = NULL;
    cJSON *root = parse_object(body, len, e);
    if (!root)
        return false;
    bool add_special, parse_special, with_pieces, ok = false;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "content");
    int32_t *ids = NULL;
    size_t n = 0;
    cJSON *res = NULL;
    if (!cJSON_IsString(c)) {
        serve_error_set(e, 400, "invalid_request_error", "content", NULL,
                        "'content' must be a string");
        goto done;
    }
    if (!flag(root, "add_special", false, &add_special, e) ||
        !flag(root, "parse_special", true, &parse_special, e) ||
        !flag(root, "with_pieces", false, &with_pieces, e))
        goto done;
    if (tok_encode(t, c->valuestring, strlen(c->valuestring), add_special, parse_special, &ids,
                   &n) != HEARTH_OK) {
        serve_error_set(e, 500, "server_error", NULL, NULL, "tokenize: %s", hearth_last_error());
        goto done;
    }
    res = cJSON_CreateObject();
    cJSON *arr = res ? cJSON_AddArrayToObject(res, "tokens") : NULL;
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *it = with_pieces ? piece_item(t, ids[i]) : cJSON_CreateNumber(ids[i]);
        if (!it || !cJSON_AddItemToArray(arr, it)) {
            cJSON_Delete(it);
            arr = NULL;
        }
    }
    *out = arr ? cJSON_PrintUnformatted(res) : NULL;
    ok = *out != NULL;
    if (!ok)
        serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory for %zu tokens", n);
done:
    free(ids);
    cJSON_Delete(res);
    cJSON_Delete(root);
    return ok;
}

bool serve_detokenize(const struct tokenizer *t, const char *body, size_t len, char **out,
                      struct serve_error *e)
{
    *out = NULL;
    cJSON *root = parse_object(body, len, e);
    if (!root)
        return false;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    bool ok = false;
    int32_t *ids = NULL;
    char *text = NULL;
    size_t text_len = 0;
    if (!cJSON_IsArray(arr)) {
        serve_error_set(e, 400, "invalid_request_error", "tokens",
                        NULL, "'tokens' must be an array of token ids");
        goto done;
    }
    const size_t n = (size_t)cJSON_GetArraySize(arr), n_vocab = tok_n_vocab(t);
    ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) {
        serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory for %zu tokens", n);
        goto done;
    }
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1.0;
        if (!isfinite(v) || v < 0 || v >= (double)n_vocab || floor(v) != v) {
            serve_error_set(e, 400, "invalid_request_error", "tokens", NULL,
                            "'tokens' item %zu is not a token id in [0, %zu)", i, n_vocab);
            goto done;
        }
        ids[i++] = (int32_t)v;
    }
    if (tok_decode(t, ids, n, true, &text, &text_len) != HEARTH_OK) {
        serve_error_set(e, 500, "server_error", NULL, NULL, "detokenize: %s",
                        hearth_last_error());
        goto done;
    }
    cJSON *res = cJSON_CreateObject();
    if (res && cJSON_AddStringToObject(res, "content", text))
        *out = cJSON_PrintUnformatted(res);
    cJSON_Delete(res);
    ok = *out != NULL;
    if (!ok)
        serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory for the text");
done:
    free(ids);
    free(text);
    cJSON_Delete(root);
    return ok;
}

#endif
