/*
 * test-chat: template-family detection (on the real SmolLM2 template read from
 * its GGUF, on the Gemma GGUF, and on characteristic snippets of the others),
 * rendering of one fixed conversation against exact expected strings per
 * family, and the streaming stop-string matcher across chunk boundaries.
 */
#include <stdbool.h>

#include "chat.h"
#include "gguf.h"
#include "test.h"

static const struct chat_msg conv[] = {
    {"system", "You are terse."},
    {"user", "Hi there"},
    {"assistant", "Hello! How can I help?"},
    {"user", "What is 2+2?"},
};
#define CONV_N (sizeof conv / sizeof conv[0])

static void check_render(enum chat_format f, const struct chat_msg *m, size_t n, bool gen,
                         const char *want)
{
    char *got = NULL;
    CHECK_OK(chat_render(f, m, n, gen, &got));
    CHECK_MSG(got && strcmp(got, want) == 0, "%s:\n    got  [%s]\n    want [%s]",
              chat_format_name(f), got ? got : "(null)", want);
    free(got);
}

TEST(detect_smollm2_gguf)
{
    const char *path = test_model_path(TEST_SMOLLM2);
    REQUIRE(path);
    struct gguf_file *g = NULL;
    CHECK_OK(gguf_open(path, &g));
    REQUIRE(g);
    struct gguf_str t = {0, NULL};
    CHECK_OK(gguf_get_str(g, "tokenizer.chat_template", &t));
    bool fb = true;
    CHECK_INT_EQ(chat_detect(t.ptr, (size_t)t.len, &fb), CHAT_CHATML);
    CHECK(!fb);
    enum chat_source src = CHAT_SOURCE_FALLBACK;
    CHECK_INT_EQ(chat_detect_model(t.ptr, (size_t)t.len, "llama", &src), CHAT_CHATML);
    CHECK_INT_EQ(src, CHAT_SOURCE_TEMPLATE);

    /* The real template, rendered by Jinja2 for this conversation, gives exactly this.
     * Without a system message it inserts SmolLM's default one, which hearth leaves to
     * the caller: passing that text as a system message gives the template's output. */
    check_render(CHAT_CHATML, conv, CONV_N, true,
                 "<|im_start|>system\nYou are terse.<|im_end|>\n"
                 "<|im_start|>user\nHi there<|im_end|>\n"
                 "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n"
                 "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                 "<|im_start|>assistant\n");
    const struct chat_msg with_default[] = {
        {"system", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"},
        {"user", "Hi there"},
    };
    check_render(CHAT_CHATML, with_default, 2, true,
                 "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                 "Hugging Face<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
                 "<|im_start|>assistant\n");
    /* the template's default system text is in the file, as the facts sheet says */
    bool found = false;
    const char *needle = "You are a helpful AI assistant named SmolLM";
    for (uint64_t i = 0; i + strlen(needle) <= t.len && !found; i++)
        found = memcmp(t.ptr + i, needle, strlen(needle)) == 0;
    CHECK(found);
    gguf_close(g);
}

TEST(detect_gemma_gguf)
{
    const char *path = test_model_path(TEST_GEMMA3);
    REQUIRE(path);
    struct gguf_file *g = NULL;
    CHECK_OK(gguf_open(path, &g));
    REQUIRE(g);
    /* this conversion carries no tokenizer.chat_template: the architecture decides */
    struct gguf_str t = {0, NULL}, arch = {0, NULL};
    hearth_status st = gguf_get_str(g, "tokenizer.chat_template", &t);
    CHECK_OK(gguf_get_str(g, "general.architecture", &arch));
    char arch_c[64] = "";
    if (arch.len < sizeof arch_c) {
        memcpy(arch_c, arch.ptr, (size_t)arch.len);
        arch_c[arch.len] = '\0';
    }
    CHECK_STR_EQ(arch_c, "gemma3");
    enum chat_source src = CHAT_SOURCE_TEMPLATE;
    enum chat_format f = chat_detect_model(st == HEARTH_OK ? t.ptr : NULL,
                                           st == HEARTH_OK ? (size_t)t.len : 0, arch_c, &src);
    CHECK_INT_EQ(f, CHAT_GEMMA);
    if (st == HEARTH_OK)
        CHECK_INT_EQ(src, CHAT_SOURCE_TEMPLATE);
    else
        CHECK_INT_EQ(src, CHAT_SOURCE_ARCH);
    gguf_close(g);

    /* a snippet in the form of Gemma's HF template */
    const char *snip =
        "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = "
        "messages[0]['content'] + '\\n\\n' -%}{%- endif -%}{%- for message in loop_messages -%}"
        "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}"
        "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{'<start_of_turn>model\\n'}}{%- endif -%}";
    bool fb = true;
    CHECK_INT_EQ(chat_detect(snip, strlen(snip), &fb), CHAT_GEMMA);
    CHECK(!fb);
    /* the facts sheet's example (§8.7), without the <bos> the tokenizer adds */
    const struct chat_msg ex[] = {{"system", "Be helpful."}, {"user", "Hello"}};
    check_render(CHAT_GEMMA, ex, 2, true,
                 "<start_of_turn>user\nBe helpful.\n\nHello<end_of_turn>\n"
                 "<start_of_turn>model\n");
}

TEST(detect_snippets)
{
    static const struct {
        const char *tmpl;
        enum chat_format want;
        bool fell_back;
    } cases[] = {
        /* Qwen 2.5 style ChatML */
        {"{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + "
         "message.content + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt "
         "%}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
         CHAT_CHATML, false},
        /* Llama 3 */
        {"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
         "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ "
         "message['content'] | trim + '<|eot_id|>' %}{{ content }}{% endfor %}",
         CHAT_LLAMA3, false},
        /* Llama 2 */
        {"{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + "
         "system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% endif %}{{ bos_token + "
         "'[INST] ' + content.strip() + ' [/INST]' }}",
         CHAT_LLAMA2, false},
        /* Mistral v0.1 */
        {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ "
         "'[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' "
         "%}{{ message['content'] + eos_token}}{% endif %}{% endfor %}",
         CHAT_MISTRAL, false},
        /* Phi-3.5 */
        {"{% for message in messages %}{% if message['role'] == 'system' and message['content'] "
         "%}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == "
         "'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] "
         "== 'assistant' %}{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif "
         "%}{% endfor %}",
         CHAT_PHI3, false},
        /* Zephyr: <|assistant|> but turns end in </s>, not Phi-3: unknown */
        {"{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\n' + "
         "message['content'] + eos_token }}{% endif %}{% endfor %}{{ '<|assistant|>' }}",
         CHAT_CHATML, true},
        {"{{ messages | tojson }}", CHAT_CHATML, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool fb = !cases[i].fell_back;
        enum chat_format f = chat_detect(cases[i].tmpl, strlen(cases[i].tmpl), &fb);
        CHECK_MSG(f == cases[i].want && fb == cases[i].fell_back,
                  "case %zu: got %s (fell back %d), want %s (%d)", i, chat_format_name(f),
                  (int)fb, chat_format_name(cases[i].want), (int)cases[i].fell_back);
    }
    bool fb = false;
    CHECK_INT_EQ(chat_detect(NULL, 0, &fb), CHAT_CHATML);
    CHECK(fb);
    /* the length bounds the search: a marker past len is not seen */
    const char *cut = "xxxx<|start_header_id|>";
    fb = false;
    CHECK_INT_EQ(chat_detect(cut, 10, &fb), CHAT_CHATML);
    CHECK(fb);
    enum chat_source src = CHAT_SOURCE_TEMPLATE;
    CHECK_INT_EQ(chat_detect_model(NULL, 0, "llama", &src), CHAT_CHATML);
    CHECK_INT_EQ(src, CHAT_SOURCE_FALLBACK);
    CHECK_INT_EQ(chat_detect_model(NULL, 0, "phi3", &src), CHAT_PHI3);
    CHECK_INT_EQ(src, CHAT_SOURCE_ARCH);
    CHECK_INT_EQ(chat_detect_model(NULL, 0, "gemma2", &src), CHAT_GEMMA);
    CHECK_INT_EQ(chat_detect_model(NULL, 0, "gemmaX", &src), CHAT_CHATML);
    CHECK_INT_EQ(chat_detect_model(NULL, 0, "qwen3", &src), CHAT_CHATML);
    CHECK_INT_EQ(src, CHAT_SOURCE_ARCH);
    /* pieces of Qwen3's HF template (its first line, its no-thinking switch) */
    const char *q3 = "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n"
                     "{%- if enable_thinking is defined and enable_thinking is false %}"
                     "{{- '<think>\\n\\n</think>\\n\\n' }}";
    CHECK_INT_EQ(chat_detect_model(q3, strlen(q3), "qwen3", &src), CHAT_CHATML);
    CHECK_INT_EQ(src, CHAT_SOURCE_TEMPLATE);
    /* a real template wins over the architecture */
    const char *ml = "<|im_start|>";
    CHECK_INT_EQ(chat_detect_model(ml, strlen(ml), "gemma3", &src), CHAT_CHATML);
    CHECK_INT_EQ(src, CHAT_SOURCE_TEMPLATE);
    /* names round-trip */
    for (int i = 0; i < CHAT_FORMAT_COUNT; i++) {
        enum chat_format back = CHAT_FORMAT_COUNT;
        CHECK(chat_format_from_name(chat_format_name((enum chat_format)i), &back));
        CHECK_INT_EQ(back, i);
    }
    enum chat_format dummy;
    CHECK(!chat_format_from_name("jinja", &dummy));
    CHECK_STR_EQ(chat_format_name(CHAT_FORMAT_COUNT), "unknown");
}

TEST(render_all_families)
{
    check_render(CHAT_LLAMA3, conv, CONV_N, true,
                 "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
                 "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?"
                 "<|eot_id|>"
                 "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n");
    check_render(CHAT_LLAMA2, conv, CONV_N, true,
                 "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST]"
                 " Hello! How can I help? </s>"
                 "<s>[INST] What is 2+2? [/INST]");
    check_render(CHAT_MISTRAL, conv, CONV_N, true,
                 "[INST] You are terse.\n\nHi there [/INST]Hello! How can I help?</s>"
                 "[INST] What is 2+2? [/INST]");
    check_render(CHAT_GEMMA, conv, CONV_N, true,
                 "<start_of_turn>user\nYou are terse.\n\nHi there<end_of_turn>\n"
                 "<start_of_turn>model\nHello! How can I help?<end_of_turn>\n"
                 "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
                 "<start_of_turn>model\n");
    check_render(CHAT_PHI3, conv, CONV_N, true,
                 "<|system|>\nYou are terse.<|end|>\n"
                 "<|user|>\nHi there<|end|>\n"
                 "<|assistant|>\nHello! How can I help?<|end|>\n"
                 "<|user|>\nWhat is 2+2?<|end|>\n"
                 "<|assistant|>\n");
    /* without the generation prompt, and without a system message */
    check_render(CHAT_CHATML, conv + 1, 2, false,
                 "<|im_start|>user\nHi there<|im_end|>\n"
                 "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n");
    check_render(CHAT_LLAMA2, conv + 1, 3, false,
                 "[INST] Hi there [/INST] Hello! How can I help? </s>"
                 "<s>[INST] What is 2+2? [/INST]");
    check_render(CHAT_GEMMA, conv + 1, 1, false, "<start_of_turn>user\nHi there<end_of_turn>\n");
    check_render(CHAT_PHI3, conv + 1, 1, true, "<|user|>\nHi there<|end|>\n<|assistant|>\n");
    /* trimming where the family's template trims (Llama 3, Llama 2, Gemma), not elsewhere */
    const struct chat_msg ws[] = {{"user", "  padded \n"}};
    check_render(CHAT_LLAMA3, ws, 1, false,
                 "<|start_header_id|>user<|end_header_id|>\n\npadded<|eot_id|>");
    check_render(CHAT_GEMMA, ws, 1, false, "<start_of_turn>user\npadded<end_of_turn>\n");
    check_render(CHAT_LLAMA2, ws, 1, false, "[INST] padded [/INST]");
    check_render(CHAT_CHATML, ws, 1, false, "<|im_start|>user\n  padded \n<|im_end|>\n");
    /* empty conversation */
    check_render(CHAT_CHATML, NULL, 0, true, "<|im_start|>assistant\n");
}

TEST(render_errors)
{
    char *out = (char *)1;
    const struct chat_msg tool[] = {{"user", "x"}, {"tool", "y"}};
    CHECK_INT_EQ(chat_render(CHAT_LLAMA2, tool, 2, true, &out), HEARTH_ERR_INVALID_ARG);
    CHECK(out == NULL);
    CHECK(strstr(hearth_last_error(), "tool") != NULL);
    CHECK_INT_EQ(chat_render(CHAT_MISTRAL, tool, 2, true, &out), HEARTH_ERR_INVALID_ARG);
    CHECK_INT_EQ(chat_render(CHAT_PHI3, tool, 2, true, &out), HEARTH_ERR_INVALID_ARG);
    /* ChatML passes other roles through */
    CHECK_OK(chat_render(CHAT_CHATML, tool, 2, false, &out));
    CHECK_STR_EQ(out, "<|im_start|>user\nx<|im_end|>\n<|im_start|>tool\ny<|im_end|>\n");
    free(out);
    const struct chat_msg late_sys[] = {{"user", "x"}, {"system", "y"}};
    CHECK_INT_EQ(chat_render(CHAT_MISTRAL, late_sys, 2, true, &out), HEARTH_ERR_INVALID_ARG);
    CHECK_INT_EQ(chat_render(CHAT_LLAMA2, late_sys, 2, true, &out), HEARTH_ERR_INVALID_ARG);
    const struct chat_msg null_content[] = {{"user", NULL}};
    CHECK_INT_EQ(chat_render(CHAT_CHATML, null_content, 1, true, &out), HEARTH_ERR_INVALID_ARG);
    CHECK_INT_EQ(chat_render(CHAT_FORMAT_COUNT, conv, CONV_N, true, &out),
                 HEARTH_ERR_INVALID_ARG);
    CHECK(out == NULL);
}

TEST(stop_strings_per_family)
{
    size_t n = 0;
    const char *const *s = chat_stop_strings(CHAT_CHATML, &n);
    REQUIRE(n == 1);
    CHECK_STR_EQ(s[0], "<|im_end|>");
    s = chat_stop_strings(CHAT_LLAMA3, &n);
    REQUIRE(n >= 1);
    CHECK_STR_EQ(s[0], "<|eot_id|>");
    s = chat_stop_strings(CHAT_GEMMA, &n);
    REQUIRE(n == 1);
    CHECK_STR_EQ(s[0], "<end_of_turn>");
    s = chat_stop_strings(CHAT_PHI3, &n);
    REQUIRE(n >= 1);
    CHECK_STR_EQ(s[0], "<|end|>");
    s = chat_stop_strings(CHAT_LLAMA2, &n);
    REQUIRE(n == 1);
    CHECK_STR_EQ(s[0], "</s>");
    s = chat_stop_strings(CHAT_MISTRAL, &n);
    REQUIRE(n == 1);
    CHECK_STR_EQ(s[0], "</s>");
    /* every family's stop string ends the turns its renderer writes */
    for (int f = 0; f < CHAT_FORMAT_COUNT; f++) {
        char *txt = NULL;
        CHECK_OK(chat_render((enum chat_format)f, conv, CONV_N, false, &txt));
        s = chat_stop_strings((enum chat_format)f, &n);
        CHECK_MSG(txt && n > 0 && strstr(txt, s[0]) != NULL, "%s",
                  chat_format_name((enum chat_format)f));
        free(txt);
    }
}

/* Feeds chunks, concatenating what is emitted; returns whether a stop matched. */
static bool feed_all(struct chat_stop_matcher *m, const char *const *chunks, size_t n,
                     char *out, size_t out_size)
{
    size_t used = 0;
    bool stopped = false;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *e = NULL;
        size_t el = 0;
        CHECK_OK(chat_stop_feed(m, chunks[i], strlen(chunks[i]), &e, &el, &stopped));
        if (used + el < out_size) {
            memcpy(out + used, e, el);
            used += el;
            out[used] = '\0';
        }
    }
    if (!stopped) {
        const char *e = NULL;
        size_t el = 0;
        chat_stop_flush(m, &e, &el);
        if (used + el < out_size) {
            memcpy(out + used, e, el);
            used += el;
            out[used] = '\0';
        }
    }
    return stopped;
}

TEST(stop_matcher)
{
    const char *stops[] = {"<|im_end|>", "STOP"};
    struct chat_stop_matcher m;
    char out[256];

    /* split over two chunks: held, then stopped; nothing of the marker leaks */
    CHECK_OK(chat_stop_init(&m, stops, 2));
    const char *e = NULL;
    size_t el = 99;
    bool st = true;
    CHECK_OK(chat_stop_feed(&m, "Hello <|im_", 11, &e, &el, &st));
    CHECK(!st);
    CHECK_INT_EQ(el, 6);
    CHECK(memcmp(e, "Hello ", 6) == 0);
    CHECK_OK(chat_stop_feed(&m, "end|> tail", 10, &e, &el, &st));
    CHECK(st);
    CHECK_INT_EQ(el, 0);
    CHECK_OK(chat_stop_feed(&m, "more", 4, &e, &el, &st));
    CHECK(st);
    CHECK_INT_EQ(el, 0);
    chat_stop_free(&m);

    /* a false start is released as soon as it cannot match */
    CHECK_OK(chat_stop_init(&m, stops, 2));
    CHECK_OK(chat_stop_feed(&m, "a<|im_", 6, &e, &el, &st));
    CHECK_INT_EQ(el, 1);
    CHECK_OK(chat_stop_feed(&m, "x b", 3, &e, &el, &st));
    CHECK(!st);
    CHECK_INT_EQ(el, 8);
    CHECK(memcmp(e, "<|im_x b", 8) == 0);
    chat_stop_free(&m);

    /* byte-at-a-time feeding of a stop in the middle */
    CHECK_OK(chat_stop_init(&m, stops, 2));
    const char *bytes[] = {"4", " ", "S", "T", "O", "P", "!"};
    CHECK(feed_all(&m, bytes, 7, out, sizeof out));
    CHECK_STR_EQ(out, "4 ");
    chat_stop_free(&m);

    /* overlapping prefix: "STSTOP" must stop after "ST" */
    CHECK_OK(chat_stop_init(&m, stops, 2));
    const char *ov[] = {"xST", "STO", "P"};
    CHECK(feed_all(&m, ov, 3, out, sizeof out));
    CHECK_STR_EQ(out, "xST");
    chat_stop_free(&m);

    /* the earliest of two stops in one chunk wins */
    CHECK_OK(chat_stop_init(&m, stops, 2));
    const char *two[] = {"ab STOP cd <|im_end|>"};
    CHECK(feed_all(&m, two, 1, out, sizeof out));
    CHECK_STR_EQ(out, "ab ");
    chat_stop_free(&m);

    /* no stop: everything comes out, the held tail through flush */
    CHECK_OK(chat_stop_init(&m, stops, 2));
    const char *none[] = {"The end <|im", "_en"};
    CHECK(!feed_all(&m, none, 2, out, sizeof out));
    CHECK_STR_EQ(out, "The end <|im_en");
    chat_stop_free(&m);

    /* no stop strings at all: pass-through */
    CHECK_OK(chat_stop_init(&m, NULL, 0));
    const char *pass[] = {"abc", "def"};
    CHECK(!feed_all(&m, pass, 2, out, sizeof out));
    CHECK_STR_EQ(out, "abcdef");
    chat_stop_free(&m);
}

TEST_MAIN(TEST_CASE(detect_smollm2_gguf), TEST_CASE(detect_gemma_gguf),
          TEST_CASE(detect_snippets), TEST_CASE(render_all_families), TEST_CASE(render_errors),
          TEST_CASE(stop_strings_per_family), TEST_CASE(stop_matcher))
