/*
 * fuzz-serve: libFuzzer target for what `hearth serve` does with a request
 * body before any model sees it (run by scripts/fuzz.sh; built only when
 * libcjson is found, like the server).
 *
 * Input: byte 0 picks the endpoint (bit 0: chat or completions) and how the
 * prompt text is cut into streamed pieces (the other bits); the rest is the
 * body. A body the parser accepts is then taken through every step the
 * server takes with its strings: rendered by every chat format, its stop
 * strings run over the prompt text as a generation would stream it, and the
 * text put into a response and a stream chunk. Checked with __builtin_trap,
 * so a failure is a crash with the input saved:
 *  - a rejected body gets a 4xx status and a message, and its error object
 *    is valid JSON;
 *  - an accepted one keeps its bounds (message and stop counts, sampling
 *    ranges, logprobs, a prompt of token ids) and every string in it is
 *    readable (ASan);
 *  - the stop matcher returns, over any cut of the text into pieces, the
 *    text up to where the first stop string found starts, or all of it;
 *  - responses and chunks are JSON that gives back the exact text;
 *  - with response_format json_object or json_schema, the JSON guard
 *    accepts the same bytes of the text however it is cut, and a text it
 *    accepts whole as complete is JSON that cJSON parses.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "fuzz.h"
#include "json-guard.h"
#include "serve.h"

static volatile size_t sink;

static void touch(const char *s)
{
    if (s)
        sink += strlen(s);
}

/* The JSON in js (a chunk may be framed "data: ...\n\n") is an object whose path gives text. */
static void check_json_text(const char *js, bool chunk, bool chat, const char *text)
{
    FUZZ_CHECK(js != NULL);
    if (chunk) {
        FUZZ_CHECK(!strncmp(js, "data: ", 6));
        js += 6;
    }
    cJSON *o = cJSON_Parse(js);
    FUZZ_CHECK(o != NULL);
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "choices"), 0);
    const cJSON *t;
    if (chat) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(choice, chunk ? "delta" : "message");
        t = cJSON_GetObjectItemCaseSensitive(m, "content");
    } else {
        t = cJSON_GetObjectItemCaseSensitive(choice, "text");
    }
    FUZZ_CHECK(cJSON_IsString(t) && !strcmp(t->valuestring, text));
    cJSON_Delete(o);
}

/* Where the first occurrence of a non-empty stop string starts in text[0..len); len if none. */
static size_t first_stop(const char *const *stops, size_t n_stops, const char *text, size_t len)
{
    size_t best = len;
    for (size_t k = 0; k < n_stops; k++) {
        size_t sl = strlen(stops[k]);
        for (size_t i = 0; sl && i + sl <= len && i < best; i++)
            if (!memcmp(text + i, stops[k], sl)) {
                best = i;
                break;
            }
    }
    return best;
}

/*
 * Streams text through a matcher for stops in pieces cut every `step` bytes
 * (0: one piece) and checks the result against a direct search: a generation
 * stops after the first piece whose end completes a stop string, cut where
 * the earliest occurrence in the text so far starts (within one piece the
 * first to start wins, as llama.cpp's server cuts); with no stop, the whole
 * text comes back.
 */
static void check_stops(const char *const *stops, size_t n_stops, const char *text, size_t step)
{
    struct chat_stop_matcher m;
    if (chat_stop_init(&m, stops, n_stops) != HEARTH_OK)
        return; /* out of memory only */
    const size_t len = strlen(text);
    char *got = malloc(len + 1);
    FUZZ_CHECK(got != NULL);
    size_t n_got = 0, want = len;
    bool stopped = false, want_stop = false;
    for (size_t at = 0; at < len && !stopped;) {
        size_t piece = step == 0 || len - at < step ? len - at : step;
        const char *emit;
        size_t emit_len;
        FUZZ_CHECK(chat_stop_feed(&m, text + at, piece, &emit, &emit_len, &stopped) == HEARTH_OK);
        FUZZ_CHECK(n_got + emit_len <= len);
        memcpy(got + n_got, emit, emit_len);
        n_got += emit_len;
        at += piece;
        if (!want_stop && (want = first_stop(stops, n_stops, text, at)) < at)
            want_stop = true;
    }
    if (!stopped) {
        const char *emit;
        size_t emit_len;
        chat_stop_flush(&m, &emit, &emit_len);
        FUZZ_CHECK(n_got + emit_len <= len);
        memcpy(got + n_got, emit, emit_len);
        n_got += emit_len;
    }
    chat_stop_free(&m);
    FUZZ_CHECK(stopped == want_stop);
    FUZZ_CHECK(n_got == (want_stop ? want : len) && !memcmp(got, text, n_got));
    free(got);
}

/* How many bytes of text the request's JSON guard accepts, fed step bytes at a time. */
static size_t guard_prefix(const struct serve_req *r, const char *text, size_t step, bool *done)
{
    struct jg_state g;
    if (r->schema)
        jg_init_schema(&g, r->schema);
    else
        jg_init(&g, true);
    const size_t n = strlen(text), k = step ? step : n;
    size_t at = 0;
    while (at < n) {
        size_t len = n - at < k ? n - at : k;
        struct jg_state before = g;
        if (!jg_feed(&g, text + at, len)) {
            /* the refused byte: feed the piece again one byte at a time */
            g = before;
            while (jg_feed(&g, text + at, 1))
                at++;
            *done = false;
            return at;
        }
        at += len;
    }
    *done = jg_done(&g);
    return at;
}

/*
 * The JSON guard of a json_object or json_schema request over the prompt
 * text: the same bytes accepted whatever the pieces, and a text it accepts
 * whole and calls done parses as JSON (cJSON is the more lenient reader),
 * an object for json_object.
 */
static void check_guard(const struct serve_req *r, const char *text, size_t step)
{
    bool done1, done2;
    const size_t a = guard_prefix(r, text, 0, &done1), b = guard_prefix(r, text, step, &done2);
    FUZZ_CHECK(a == b && done1 == done2);
    if (done1 && a == strlen(text)) {
        cJSON *o = cJSON_Parse(text);
        FUZZ_CHECK(o != NULL && (r->schema || cJSON_IsObject(o)));
        cJSON_Delete(o);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > SERVE_BODY_LIMIT)
        return 0;
    const bool chat = data[0] & 1;
    const size_t step = data[0] >> 1; /* 0: the whole text in one piece */
    struct serve_req r;
    struct serve_error e;
    memset(&e, 0, sizeof e);
    if (!serve_parse_request((const char *)data + 1, size - 1, chat, &r, &e)) {
        FUZZ_CHECK(e.http >= 400 && e.http < 500 && e.message[0] != '\0');
        FUZZ_CHECK(memchr(e.message, '\0', sizeof e.message) != NULL);
        char *js = serve_error_json(&e);
        FUZZ_CHECK(js != NULL);
        cJSON *o = cJSON_Parse(js);
        FUZZ_CHECK(o != NULL && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "error")));
        cJSON_Delete(o);
        free(js);
        return 0; /* the parser freed what it took, as the server relies on */
    }
    FUZZ_CHECK(r.chat == chat && r.n_stop <= SERVE_MAX_STOP && r.max_tokens >= -1);
    FUZZ_CHECK(r.sp.temp >= 0.0f && r.sp.top_p >= 0.0f && r.sp.top_p <= 1.0f);
    FUZZ_CHECK(r.sp.min_p >= 0.0f && r.sp.min_p <= 1.0f && r.sp.top_k >= 0);
    for (size_t k = 0; k < r.n_stop; k++)
        touch(r.stop[k]);
    FUZZ_CHECK(r.n_bias <= SERVE_MAX_BIAS && (r.n_bias == 0 || (r.bias_ids && r.bias)));
    for (size_t k = 0; k < r.n_bias; k++)
        FUZZ_CHECK(r.bias_ids[k] >= 0 && r.bias[k] >= -100.0f && r.bias[k] <= 100.0f);
    FUZZ_CHECK(r.top_logprobs >= 0 && r.top_logprobs <= SLOTS_MAX_TOP);
    FUZZ_CHECK(!(chat && r.echo) && (r.max_tokens != 0 || r.echo));
    FUZZ_CHECK(r.n >= 1 && (size_t)r.n * (chat ? 1 : r.n_prompts) <= SERVE_MAX_CHOICES);
    const char *text = NULL;
    for (size_t i = 0; !chat && i < r.n_prompts; i++) {
        /* token ids: their range is the vocabulary's, checked by the slots */
        const struct serve_prompt *p = &r.prompts[i];
        FUZZ_CHECK(p->text ? p->text[0] != '\0' : p->n_ids >= 1 && p->ids != NULL);
        for (size_t k = 0; !p->text && k < p->n_ids; k++)
            FUZZ_CHECK(p->ids[k] >= 0);
        touch(p->text);
        text = text ? text : p->text ? p->text : "";
    }
    FUZZ_CHECK(chat || r.n_prompts >= 1);
    if (chat) {
        FUZZ_CHECK(r.n_msgs >= 1 && r.n_msgs <= SERVE_MAX_MSGS && r.msgs != NULL);
        for (size_t i = 0; i < r.n_msgs; i++) {
            FUZZ_CHECK(r.msgs[i].role && r.msgs[i].content);
            touch(r.msgs[i].role);
            touch(r.msgs[i].content);
        }
        static const char *const formats[] = {"chatml", "llama3", "llama2",
                                              "mistral", "gemma", "phi3"};
        for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
            enum chat_format cf;
            FUZZ_CHECK(chat_format_from_name(formats[f], &cf));
            char *out = NULL;
            hearth_status st = chat_render(cf, r.msgs, r.n_msgs, true, &out);
            FUZZ_CHECK((st == HEARTH_OK) == (out != NULL));
            touch(out);
            free(out);
        }
        text = r.msgs[r.n_msgs - 1].content;
    }
    FUZZ_CHECK(text != NULL);
    check_stops(r.stop, r.n_stop, text, step);
    if (r.schema || r.json_object)
        check_guard(&r, text, step);
    const struct serve_meta meta = {chat, chat ? "chatcmpl-fuzz" : "cmpl-fuzz", 1, "m"};
    const struct serve_choice_out one = {text, "stop", NULL};
    char *js = serve_response_json(&meta, &one, 1, 3, 4);
    check_json_text(js, false, chat, text);
    free(js);
    js = serve_chunk_sse(&meta, 0, text, false, NULL, false, 3, 4, NULL);
    check_json_text(js, true, chat, text);
    free(js);
    serve_req_free(&r);
    return 0;
}
