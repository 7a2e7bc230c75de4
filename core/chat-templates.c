/*
 * chat-templates: each family's prompt format, written out in C.
 *
 * The formats follow the published Hugging Face templates of each family, with
 * the conventions of chat.h (no leading BOS, no default system prompt):
 *   ChatML   <|im_start|>{role}\n{content}<|im_end|>\n ... gen: <|im_start|>assistant\n
 *   Llama 3  <|start_header_id|>{role}<|end_header_id|>\n\n{trim(content)}<|eot_id|>
 *            gen: <|start_header_id|>assistant<|end_header_id|>\n\n  (the 3.1+ date
 *            preamble in the system turn is not written)
 *   Llama 2  [INST] <<SYS>>\n{sys}\n<</SYS>>\n\n{user} [/INST] {answer} </s><s>[INST] ...
 *            (user part and answer stripped as the template's .strip() does)
 *   Mistral  [INST] {sys}\n\n{user} [/INST]{answer}</s>[INST] {user} [/INST]
 *            The v0.1/v0.2 "[INST] ... [/INST]" spacing. v0.3 writes "{user}[/INST] {answer}"
 *            and puts the system text before the *last* user turn, tekken drops the
 *            spaces; all of them are read correctly by these models in practice, so
 *            one form is kept rather than a variant per tokenizer version.
 *   Gemma    <start_of_turn>{user|model}\n{trim(content)}<end_of_turn>\n ... gen:
 *            <start_of_turn>model\n; the system text + "\n\n" (untrimmed) opens the
 *            first turn, as Gemma's template does.
 *   Phi-3    <|{role}|>\n{content}<|end|>\n ... gen: <|assistant|>\n  (Phi-3.5 form,
 *            which, unlike the first Phi-3-mini template, keeps the system turn)
 * A strbuf (strbuf.h) collects the text.
 */
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "err.h"
#include "strbuf.h"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Appends s[0..n) without its leading and trailing ASCII whitespace (Jinja's trim). */
static void add_trimmed(struct strbuf *b, const char *s, size_t n)
{
    while (n > 0 && is_space(s[0])) {
        s++;
        n--;
    }
    while (n > 0 && is_space(s[n - 1]))
        n--;
    strbuf_add(b, s, n);
}

static void puts_trimmed(struct strbuf *b, const char *s)
{
    add_trimmed(b, s, strlen(s));
}

static bool role_is(const struct chat_msg *m, const char *role)
{
    return strcmp(m->role, role) == 0;
}

static hearth_status bad_role(enum chat_format f, size_t i, const char *role)
{
    return err_set(HEARTH_ERR_INVALID_ARG,
                   "chat_render: message %zu: role \"%s\" cannot be written in the %s format "
                   "(expected system, user or assistant; system only as message 0)",
                   i, role, chat_format_name(f));
}

static void render_chatml(struct strbuf *b, const struct chat_msg *m, size_t n, bool gen)
{
    for (size_t i = 0; i < n; i++) {
        strbuf_puts(b, "<|im_start|>");
        strbuf_puts(b, m[i].role);
        strbuf_puts(b, "\n");
        strbuf_puts(b, m[i].content);
        strbuf_puts(b, "<|im_end|>\n");
    }
    if (gen)
        strbuf_puts(b, "<|im_start|>assistant\n");
}

static void render_llama3(struct strbuf *b, const struct chat_msg *m, size_t n, bool gen)
{
    for (size_t i = 0; i < n; i++) {
        strbuf_puts(b, "<|start_header_id|>");
        strbuf_puts(b, m[i].role);
        strbuf_puts(b, "<|end_header_id|>\n\n");
        puts_trimmed(b, m[i].content);
        strbuf_puts(b, "<|eot_id|>");
    }
    if (gen)
        strbuf_puts(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static hearth_status render_llama2(struct strbuf *b, const struct chat_msg *m, size_t n)
{
    const char *sys = NULL;
    size_t i = 0;
    if (n > 0 && role_is(&m[0], "system"))
        sys = m[i++].content;
    struct strbuf tmp = {0};
    bool first_turn = true;
    for (; i < n; i++) {
        if (role_is(&m[i], "user")) {
            /* the template strips the whole content, <<SYS>> block included */
            tmp.len = 0;
            if (sys && first_turn) {
                strbuf_puts(&tmp, "<<SYS>>\n");
                strbuf_puts(&tmp, sys);
                strbuf_puts(&tmp, "\n<</SYS>>\n\n");
            }
            strbuf_puts(&tmp, m[i].content);
            if (b->len > 0)
                strbuf_puts(b, "<s>");
            strbuf_puts(b, "[INST] ");
            if (!tmp.oom)
                add_trimmed(b, tmp.p, tmp.len);
            strbuf_puts(b, " [/INST]");
            b->oom |= tmp.oom;
        } else if (role_is(&m[i], "assistant")) {
            strbuf_puts(b, " ");
            puts_trimmed(b, m[i].content);
            strbuf_puts(b, " </s>");
        } else {
            free(tmp.p);
            return bad_role(CHAT_LLAMA2, i, m[i].role);
        }
        first_turn = false;
    }
    free(tmp.p);
    return HEARTH_OK;
}

static hearth_status render_mistral(struct strbuf *b, const struct chat_msg *m, size_t n)
{
    const char *sys = NULL;
    size_t i = 0;
    if (n > 0 && role_is(&m[0], "system"))
        sys = m[i++].content;
    for (; i < n; i++) {
        if (role_is(&m[i], "user")) {
            strbuf_puts(b, "[INST] ");
            if (sys) {
                strbuf_puts(b, sys);
                strbuf_puts(b, "\n\n");
                sys = NULL;
            }
            strbuf_puts(b, m[i].content);
            strbuf_puts(b, " [/INST]");
        } else if (role_is(&m[i], "assistant")) {
            strbuf_puts(b, m[i].content);
            strbuf_puts(b, "</s>");
        } else {
            return bad_role(CHAT_MISTRAL, i, m[i].role);
        }
    }
    return HEARTH_OK;
}

static void render_gemma(struct strbuf *b, const struct chat_msg *m, size_t n, bool gen)
{
    const char *sys = NULL;
    size_t i = 0;
    if (n > 0 && role_is(&m[0], "system"))
        sys = m[i++].content;
    for (; i < n; i++) {
        strbuf_puts(b, "<start_of_turn>");
        strbuf_puts(b, role_is(&m[i], "assistant") ? "model" : m[i].role);
        strbuf_puts(b, "\n");
        if (sys) {
            strbuf_puts(b, sys);
            strbuf_puts(b, "\n\n");
            sys = NULL;
        }
        puts_trimmed(b, m[i].content);
        strbuf_puts(b, "<end_of_turn>\n");
    }
    /* a lone system message renders as nothing, as in Gemma's template */
    if (gen)
        strbuf_puts(b, "<start_of_turn>model\n");
}

static hearth_status render_phi3(struct strbuf *b, const struct chat_msg *m, size_t n, bool gen)
{
    for (size_t i = 0; i < n; i++) {
        bool sys = role_is(&m[i], "system");
        if (!(role_is(&m[i], "user") || role_is(&m[i], "assistant") || sys))
            return bad_role(CHAT_PHI3, i, m[i].role);
        if (sys && m[i].content[0] == '\0')
            continue; /* the template skips an empty system turn */
        strbuf_puts(b, "<|");
        strbuf_puts(b, m[i].role);
        strbuf_puts(b, "|>\n");
        strbuf_puts(b, m[i].content);
        strbuf_puts(b, "<|end|>\n");
    }
    if (gen)
        strbuf_puts(b, "<|assistant|>\n");
    return HEARTH_OK;
}

hearth_status chat_render(enum chat_format f, const struct chat_msg *msgs, size_t n,
                          bool add_generation_prompt, char **out)
{
    if (!out)
        return err_set(HEARTH_ERR_INVALID_ARG, "chat_render: out is NULL");
    *out = NULL;
    if (n > 0 && !msgs)
        return err_set(HEARTH_ERR_INVALID_ARG, "chat_render: %zu messages but NULL array", n);
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content)
            return err_set(HEARTH_ERR_INVALID_ARG, "chat_render: message %zu: NULL %s", i,
                           msgs[i].role ? "content" : "role");
        if (i > 0 && (f == CHAT_LLAMA2 || f == CHAT_MISTRAL) && role_is(&msgs[i], "system"))
            return bad_role(f, i, msgs[i].role);
    }
    struct strbuf b = {0};
    hearth_status st = HEARTH_OK;
    strbuf_add(&b, "", 0); /* an empty conversation still yields "" */
    switch (f) {
    case CHAT_CHATML:
        render_chatml(&b, msgs, n, add_generation_prompt);
        break;
    case CHAT_LLAMA3:
        render_llama3(&b, msgs, n, add_generation_prompt);
        break;
    case CHAT_LLAMA2:
        st = render_llama2(&b, msgs, n);
        break;
    case CHAT_MISTRAL:
        st = render_mistral(&b, msgs, n);
        break;
    case CHAT_GEMMA:
        render_gemma(&b, msgs, n, add_generation_prompt);
        break;
    case CHAT_PHI3:
        st = render_phi3(&b, msgs, n, add_generation_prompt);
        break;
    default:
        st = err_set(HEARTH_ERR_INVALID_ARG, "chat_render: format id %d is not a chat format",
                     (int)f);
        break;
    }
    if (st == HEARTH_OK && b.oom)
        st = err_set(HEARTH_ERR_NO_MEMORY, "chat_render: %zu messages, %zu bytes", n, b.len);
    if (st != HEARTH_OK) {
        free(b.p);
        return st;
    }
    *out = b.p;
    return HEARTH_OK;
}

const char *const *chat_stop_strings(enum chat_format f, size_t *n)
{
    static const char *const chatml[] = {"<|im_end|>"};
    static const char *const llama3[] = {"<|eot_id|>", "<|eom_id|>"};
    static const char *const eos_s[] = {"</s>"};
    static const char *const gemma[] = {"<end_of_turn>"};
    static const char *const phi3[] = {"<|end|>", "<|endoftext|>"};
    switch (f) {
    case CHAT_CHATML:
        *n = 1;
        return chatml;
    case CHAT_LLAMA3:
        *n = 2;
        return llama3;
    case CHAT_LLAMA2:
    case CHAT_MISTRAL:
        *n = 1;
        return eos_s;
    case CHAT_GEMMA:
        *n = 1;
        return gemma;
    case CHAT_PHI3:
        *n = 2;
        return phi3;
    default:
        *n = 0;
        return NULL;
    }
}
