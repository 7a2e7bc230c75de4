/*
 * chat: template-family detection, format names, and the streaming stop-string
 * matcher. Rendering lives in chat-templates.c.
 *
 * Detection looks for substrings that only one family's template contains,
 * most specific first: "<|im_start|>" (ChatML), "<|start_header_id|>" (Llama 3),
 * "<start_of_turn>" (Gemma), "<|assistant|>" with "<|end|>" (Phi-3; Zephyr-like
 * templates use <|assistant|> with </s> and are not Phi-3), then "[INST]" with
 * "<<SYS>>" (Llama 2) or without (Mistral). Alternatives rejected: hashing known
 * template texts (every fine-tune edits them slightly), running Jinja (a large
 * interpreter for six fixed formats).
 *
 * The matcher keeps one buffer: [text returned by the last call][held tail].
 * Each call first drops the returned prefix, appends the new chunk, looks for
 * the earliest complete stop string, and otherwise holds back the longest tail
 * that is a proper prefix of some stop string (at most max_len - 1 bytes).
 */
#include "chat.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

/* memmem without _GNU_SOURCE: first occurrence of needle in hay, or NULL. */
static const char *find_bytes(const char *hay, size_t hay_len, const char *needle,
                              size_t needle_len)
{
    if (needle_len == 0 || needle_len > hay_len)
        return NULL;
    for (size_t i = 0; i + needle_len <= hay_len; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, needle_len) == 0)
            return hay + i;
    return NULL;
}

static bool has(const char *t, size_t len, const char *s)
{
    return find_bytes(t, len, s, strlen(s)) != NULL;
}

enum chat_format chat_detect(const char *tmpl, size_t len, bool *fell_back)
{
    enum chat_format f = CHAT_CHATML;
    bool fb = false;
    if (!tmpl || len == 0)
        fb = true;
    else if (has(tmpl, len, "<|im_start|>"))
        f = CHAT_CHATML;
    else if (has(tmpl, len, "<|start_header_id|>"))
        f = CHAT_LLAMA3;
    else if (has(tmpl, len, "<start_of_turn>"))
        f = CHAT_GEMMA;
    else if (has(tmpl, len, "<|assistant|>") && has(tmpl, len, "<|end|>"))
        f = CHAT_PHI3;
    else if (has(tmpl, len, "[INST]"))
        f = has(tmpl, len, "<<SYS>>") ? CHAT_LLAMA2 : CHAT_MISTRAL;
    else
        fb = true;
    if (fell_back)
        *fell_back = fb;
    return f;
}

enum chat_format chat_detect_model(const char *tmpl, size_t len, const char *arch,
                                   enum chat_source *source)
{
    bool fb = false;
    enum chat_format f = chat_detect(tmpl, len, &fb);
    enum chat_source src = CHAT_SOURCE_TEMPLATE;
    if (fb) {
        src = CHAT_SOURCE_FALLBACK;
        if (arch && strncmp(arch, "gemma", 5) == 0 &&
            (arch[5] == '\0' || arch[5] == '2' || arch[5] == '3')) {
            f = CHAT_GEMMA;
            src = CHAT_SOURCE_ARCH;
        } else if (arch && strcmp(arch, "phi3") == 0) {
            f = CHAT_PHI3;
            src = CHAT_SOURCE_ARCH;
        } else if (arch && (strcmp(arch, "qwen2") == 0 || strcmp(arch, "qwen3") == 0)) {
            /* the fallback's format, but known rather than guessed: no warning */
            f = CHAT_CHATML;
            src = CHAT_SOURCE_ARCH;
        }
    }
    if (source)
        *source = src;
    return f;
}

static const char *const format_names[CHAT_FORMAT_COUNT] = {
    [CHAT_CHATML] = "chatml", [CHAT_LLAMA3] = "llama3",   [CHAT_LLAMA2] = "llama2",
    [CHAT_MISTRAL] = "mistral", [CHAT_GEMMA] = "gemma", [CHAT_PHI3] = "phi3",
};

const char *chat_format_name(enum chat_format f)
{
    if ((int)f < 0 || f >= CHAT_FORMAT_COUNT)
        return "unknown";
    return format_names[f];
}

bool chat_format_from_name(const char *name, enum chat_format *out)
{
    for (int i = 0; name && i < CHAT_FORMAT_COUNT; i++) {
        if (strcmp(name, format_names[i]) == 0) {
            *out = (enum chat_format)i;
            return true;
        }
    }
    return false;
}

/* ---- stop matcher -------------------------------------------------------- */

hearth_status chat_stop_init(struct chat_stop_matcher *m, const char *const *stops, size_t n)
{
    memset(m, 0, sizeof *m);
    if (n > 0 && !stops)
        return err_set(HEARTH_ERR_INVALID_ARG, "chat_stop_init: %zu stop strings but NULL array",
                       n);
    if (n > 0) {
        m->stops = calloc(n, sizeof *m->stops);
        m->lens = calloc(n, sizeof *m->lens);
        if (!m->stops || !m->lens)
            goto oom;
    }
    for (size_t i = 0; i < n; i++) {
        if (!stops[i]) {
            chat_stop_free(m);
            return err_set(HEARTH_ERR_INVALID_ARG, "chat_stop_init: stop string %zu is NULL", i);
        }
        size_t l = strlen(stops[i]);
        if (l == 0)
            continue;
        char *copy = malloc(l + 1);
        if (!copy)
            goto oom;
        memcpy(copy, stops[i], l + 1);
        m->stops[m->n_stops] = copy;
        m->lens[m->n_stops] = l;
        m->n_stops++;
    }
    return HEARTH_OK;
oom:
    chat_stop_free(m);
    return err_set(HEARTH_ERR_NO_MEMORY, "chat_stop_init: %zu stop strings", n);
}

void chat_stop_free(struct chat_stop_matcher *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_stops; i++)
        free(m->stops[i]);
    free(m->stops);
    free(m->lens);
    free(m->buf);
    memset(m, 0, sizeof *m);
}

/* Drops the text handed out by the previous call. */
static void drop_returned(struct chat_stop_matcher *m)
{
    if (m->returned == 0)
        return;
    memmove(m->buf, m->buf + m->returned, m->len - m->returned);
    m->len -= m->returned;
    m->returned = 0;
}

/* Length of the longest tail of buf[0..len) that is a proper prefix of a stop string. */
static size_t held_tail(const struct chat_stop_matcher *m)
{
    size_t best = 0;
    for (size_t s = 0; s < m->n_stops; s++) {
        size_t maxk = m->lens[s] - 1 < m->len ? m->lens[s] - 1 : m->len;
        for (size_t k = maxk; k > best; k--) {
            if (memcmp(m->buf + m->len - k, m->stops[s], k) == 0) {
                best = k;
                break;
            }
        }
    }
    return best;
}

hearth_status chat_stop_feed(struct chat_stop_matcher *m, const char *text, size_t len,
                             const char **emit, size_t *emit_len, bool *stopped)
{
    drop_returned(m);
    *emit = m->buf ? m->buf : "";
    *emit_len = 0;
    if (m->stopped) {
        *stopped = true;
        return HEARTH_OK;
    }
    *stopped = false;
    if (len > 0) {
        if (m->len + len + 1 > m->cap) {
            size_t cap = m->cap ? m->cap : 64;
            while (cap < m->len + len + 1)
                cap *= 2;
            char *nb = realloc(m->buf, cap);
            if (!nb)
                return err_set(HEARTH_ERR_NO_MEMORY, "chat_stop_feed: %zu bytes", cap);
            m->buf = nb;
            m->cap = cap;
        }
        memcpy(m->buf + m->len, text, len);
        m->len += len;
        m->buf[m->len] = '\0';
    }
    *emit = m->buf ? m->buf : "";
    /* the earliest complete stop string wins */
    const char *first = NULL;
    for (size_t s = 0; s < m->n_stops; s++) {
        const char *hit = find_bytes(m->buf, m->len, m->stops[s], m->lens[s]);
        if (hit && (!first || hit < first))
            first = hit;
    }
    if (first) {
        m->len = (size_t)(first - m->buf);
        m->returned = m->len;
        m->stopped = true;
        *emit_len = m->len;
        *stopped = true;
        return HEARTH_OK;
    }
    m->returned = m->len - held_tail(m);
    *emit_len = m->returned;
    return HEARTH_OK;
}

void chat_stop_flush(struct chat_stop_matcher *m, const char **emit, size_t *emit_len)
{
    drop_returned(m);
    *emit = m->buf ? m->buf : "";
    *emit_len = m->stopped ? 0 : m->len;
    m->returned = *emit_len;
}
