/*
 * chat: chat-template families, prompt rendering, and stop strings.
 *
 * hearth does not run Jinja. A GGUF's tokenizer.chat_template is only used to
 * recognise which of a few families the model speaks (by substrings that only
 * that family's template contains); each family's format is then written out in
 * C (core/chat-templates.c). An unknown or absent template falls back to ChatML
 * and says so, so the CLI can warn once.
 *
 * BOS convention: chat_render never writes the leading BOS text ("<s>",
 * "<bos>", "<|begin_of_text|>"). Tokenize the rendered prompt with special-token
 * parsing and with BOS added as the GGUF's tokenizer.ggml.add_bos_token says;
 * that yields exactly one BOS for every family (rendering the HF templates
 * literally and then adding BOS gives two, a known pitfall). BOS / EOS text that
 * a format needs *inside* the conversation (Llama 2's "</s><s>" between turns,
 * Mistral's "</s>" after each answer) is written as text.
 *
 * No default system prompt is inserted (SmolLM2's template adds "You are a
 * helpful AI assistant named SmolLM, ..." when none is given; a caller wanting
 * that passes it as a system message). Text outside the conversation that a
 * template adds when add_generation_prompt is false (Phi-3.5's trailing EOS) is
 * not written either.
 */
#ifndef HEARTH_CHAT_H
#define HEARTH_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "hearth.h"

enum chat_format {
    CHAT_CHATML,  /* <|im_start|>role\n...<|im_end|>\n          SmolLM2, Qwen */
    CHAT_LLAMA3,  /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    CHAT_LLAMA2,  /* [INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] ... </s><s> */
    CHAT_MISTRAL, /* [INST] ... [/INST]...</s>  (v0.1 / v0.2 spacing) */
    CHAT_GEMMA,   /* <start_of_turn>user\n...<end_of_turn>\n, assistant = model */
    CHAT_PHI3,    /* <|user|>\n...<|end|>\n<|assistant|>\n */
    CHAT_FORMAT_COUNT
};

/* Where chat_detect_model found the format. */
enum chat_source {
    CHAT_SOURCE_TEMPLATE, /* recognised in tokenizer.chat_template */
    CHAT_SOURCE_ARCH,     /* no usable template; implied by general.architecture */
    CHAT_SOURCE_FALLBACK  /* nothing recognised: ChatML */
};

/*
 * The family of a Jinja chat template (len bytes, need not be NUL-terminated;
 * tmpl may be NULL when len is 0). Unknown or absent: CHAT_CHATML with
 * *fell_back = true (fell_back may be NULL).
 */
enum chat_format chat_detect(const char *tmpl, size_t len, bool *fell_back);
/*
 * As chat_detect, but when the template is absent or unknown, the architecture
 * (general.architecture; may be NULL) decides for families whose GGUFs are often
 * converted without a template: gemma, gemma2, gemma3* -> Gemma; phi3 -> Phi-3;
 * qwen2, qwen3 -> ChatML.
 * (The Gemma-3-270M GGUF in models/ has no tokenizer.chat_template.)
 */
enum chat_format chat_detect_model(const char *tmpl, size_t len, const char *arch,
                                   enum chat_source *source);
/* "chatml", "llama3", "llama2", "mistral", "gemma", "phi3"; "unknown" otherwise. */
const char *chat_format_name(enum chat_format f);
/* The format named by chat_format_name (for a --chat-template flag); false if none. */
bool chat_format_from_name(const char *name, enum chat_format *out);

struct chat_msg {
    const char *role;    /* "system", "user", "assistant" (ChatML, Llama 3, Gemma pass
                            other roles through; the [INST] formats and Phi-3 reject them) */
    const char *content; /* UTF-8, NUL-terminated */
};

/*
 * Renders msgs[0..n) as the family's prompt text, special tokens written as
 * text, without the leading BOS (see above). add_generation_prompt appends the
 * opening of an assistant turn (for Llama 2 / Mistral the "[/INST]" already is
 * that, so it changes nothing). A system message is only special as msgs[0]:
 * Llama 2 puts it in <<SYS>>, Mistral and Gemma prepend it + "\n\n" to the
 * first user message; a later system message is an error for Llama 2 / Mistral
 * and an ordinary turn elsewhere. *out is malloc'd, NUL-terminated, the
 * caller's to free. Errors: HEARTH_ERR_INVALID_ARG (NULL role/content, role
 * the format cannot express, bad format), HEARTH_ERR_NO_MEMORY.
 */
hearth_status chat_render(enum chat_format f, const struct chat_msg *msgs, size_t n,
                          bool add_generation_prompt, char **out);

/*
 * The text of the family's end-of-turn markers, e.g. {"<|im_end|>"}; *n gets
 * the count. For a runner that also stops on text, besides the EOG token ids.
 */
const char *const *chat_stop_strings(enum chat_format f, size_t *n);

/*
 * Stop strings on streamed text. Feed each decoded chunk; the matcher returns
 * the text that is safe to show: everything except a tail that could still
 * become a stop string. When a stop string completes, the text before it is
 * returned, stopped is set, and the stop string and everything after it are
 * dropped. Typical use:
 *     chat_stop_feed(&m, piece, len, &txt, &txt_len, &stopped); fwrite(txt, ..);
 *     ... at the end (no stop): chat_stop_flush(&m, &txt, &txt_len); fwrite(..);
 * Returned text stays valid until the next call on the matcher.
 */
struct chat_stop_matcher {
    char **stops;    /* [n_stops] owned copies */
    size_t *lens;    /* [n_stops] */
    size_t n_stops;
    char *buf;       /* held text, then the last returned text */
    size_t len;      /* bytes in buf */
    size_t cap;
    size_t returned; /* bytes at the front of buf handed out by the last call */
    bool stopped;
};

/* Copies the n stop strings (empty strings are ignored). */
hearth_status chat_stop_init(struct chat_stop_matcher *m, const char *const *stops, size_t n);
void chat_stop_free(struct chat_stop_matcher *m);
/* Adds text; *emit / *emit_len is the safe text, *stopped whether a stop matched.
 * After a stop, further feeds return nothing. */
hearth_status chat_stop_feed(struct chat_stop_matcher *m, const char *text, size_t len,
                             const char **emit, size_t *emit_len, bool *stopped);
/* Releases the held tail (end of generation without a stop). */
void chat_stop_flush(struct chat_stop_matcher *m, const char **emit, size_t *emit_len);

#endif
