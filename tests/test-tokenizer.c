/*
 * test-tokenizer: the GGUF tokenizers against ids computed by other tokenizer
 * implementations, round trips, the streaming decoder, and the pre-tokenizer
 * regexes.
 *
 * How the expected ids were obtained (none come from hearth): a /tmp venv
 * with gguf 0.19, tokenizers 0.23.3 and sentencepiece 0.2.3 read the two real
 * GGUF files.
 *  - SmolLM2: a HF `tokenizers` BPE model built from the GGUF's tokens and
 *    merges with SmolLM2's own pre-tokenizer (Digits(individual_digits) then
 *    ByteLevel(add_prefix_space=False)) and ids 0-16 added as special tokens;
 *    parse_special=false is `encode_special_tokens = True` there.
 *  - Gemma 3: Google's `sentencepiece` with a ModelProto built from the GGUF
 *    (pieces, scores, types; model_type BPE, byte_fallback, identity
 *    normalizer, no dummy prefix). Its user-defined tokens ("\n\n", "   ",
 *    "<table>", ...) and, for parse_special, its control tokens were cut out
 *    of the text longest-first before sentencepiece ran on the rest, which is
 *    how llama.cpp partitions text (plain sentencepiece would not match the
 *    raw-space user-defined tokens, giving "multiple" "▁" "▁" "▁spaces").
 * A few were checked by hand against the vocabulary: SmolLM2 19556 "Hello",
 * 905 "Ġworld", 256 "ĠĠ", 5600 "Ġspaces", 1116 "ĊĊ", 10813 "ðŁ" (F0 9F);
 * Gemma 9259 "Hello", 1902 "▁world", 139 "   ", 109 "\n\n\n", 242687 "👋".
 */
#include <stdbool.h>
#include <time.h>

#include "gguf-write.h"
#include "gguf.h"
#include "test.h"
#include "tokenizer.h"
#include "utf8.h"

#define MAX_IDS 40

struct known {
    const char *text;
    int32_t special[MAX_IDS]; /* ids with parse_special = true */
    int32_t plain[MAX_IDS];   /* ids with parse_special = false */
    int n_special, n_plain;
};

#define N(...) (int)(sizeof((int32_t[]){__VA_ARGS__}) / sizeof(int32_t))
#define K(text, sp, pl)                                                                            \
    {                                                                                              \
        text, {UNPACK sp}, {UNPACK pl}, N(UNPACK sp), N(UNPACK pl)                                 \
    }
#define UNPACK(...) __VA_ARGS__

#define S_SPACES "multiple   spaces\n\n\nnewlines"
#define S_CODE "int main(void) { return 0; }"
#define S_EMOJI "\U0001F44B\U0001F3FD\U0001F525"
#define S_CJK "\u4F60\u597D\uFF0C\u4E16\u754C"
#define S_COMB "e\u0301 n\u0303"
#define S_CONTR "I'm don't WE'LL"
#define S_ACCENT "caf\u00E9 na\u00EFve Stra\u00DFe"
#define S_NUM "The year 2024 costs $3.50!"
#define S_TABS "\ttab\tand  two  spaces \n"

static const struct known smol_known[] = {
    K("Hello world", (19556, 905), (19556, 905)),
    K(" leading space", (2899, 1898), (2899, 1898)),
    K(S_SPACES, (30404, 256, 5600, 1116, 198, 2241, 5110),
      (30404, 256, 5600, 1116, 198, 2241, 5110)),
    /* smollm splits every digit */
    K("1234567890", (33, 34, 35, 36, 37, 38, 39, 40, 41, 32),
      (33, 34, 35, 36, 37, 38, 39, 40, 41, 32)),
    K(S_CODE, (591, 1085, 24, 32439, 25, 1662, 1003, 216, 32, 43, 4029),
      (591, 1085, 24, 32439, 25, 1662, 1003, 216, 32, 43, 4029)),
    K(S_EMOJI, (10813, 235, 229, 10813, 233, 138, 10813, 238, 115),
      (10813, 235, 229, 10813, 233, 138, 10813, 238, 115)),
    K(S_CJK, (18645, 250, 48392, 138, 12831, 7906, 240, 178, 239, 230),
      (18645, 250, 48392, 138, 12831, 7906, 240, 178, 239, 230)),
    K(S_COMB, (85, 151, 219, 304, 151, 221), (85, 151, 219, 304, 151, 221)),
    K(S_CONTR, (57, 5248, 1326, 982, 26587, 23, 16421), (57, 5248, 1326, 982, 26587, 23, 16421)),
    K(S_ACCENT, (83, 1939, 2756, 15486, 46494, 19144, 34878, 85),
      (83, 1939, 2756, 15486, 46494, 19144, 34878, 85)),
    K(S_NUM, (504, 713, 216, 34, 32, 34, 36, 3499, 1885, 35, 30, 37, 32, 17),
      (504, 713, 216, 34, 32, 34, 36, 3499, 1885, 35, 30, 37, 32, 17)),
    K(S_TABS, (197, 15999, 197, 397, 216, 827, 216, 5600, 3717),
      (197, 15999, 197, 397, 216, 827, 216, 5600, 3717)),
    K("<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
      (1, 4093, 198, 26843, 665, 2, 198, 1, 520, 9531, 198),
      (44, 108, 306, 79, 3738, 108, 46, 4093, 198, 26843, 665, 44, 108, 306, 79, 486, 108, 46, 198,
       44, 108, 306, 79, 3738, 108, 46, 520, 9531, 198)),
};

static const struct known gemma_known[] = {
    K("Hello world", (9259, 1902), (9259, 1902)),
    K(" leading space", (5830, 2557), (5830, 2557)),
    K(S_SPACES, (43819, 139, 35220, 109, 208697), (43819, 139, 35220, 109, 208697)),
    K("1234567890",
      (236770, 236778, 236800, 236812, 236810, 236825, 236832, 236828, 236819, 236771),
      (236770, 236778, 236800, 236812, 236810, 236825, 236832, 236828, 236819, 236771)),
    K(S_CODE, (720, 1689, 236769, 4117, 236768, 642, 994, 236743, 236771, 236793, 682),
      (720, 1689, 236769, 4117, 236768, 642, 994, 236743, 236771, 236793, 682)),
    K(S_EMOJI, (242687, 242713, 240785), (242687, 242713, 240785)),
    K(S_CJK, (144626, 236900, 12811), (144626, 236900, 12811)),
    K(S_COMB, (236744, 238288, 538, 240810), (236744, 238288, 538, 240810)),
    K(S_CONTR, (236777, 236789, 236757, 1537, 236789, 236745, 19716, 236789, 2182),
      (236777, 236789, 236757, 1537, 236789, 236745, 19716, 236789, 2182)),
    K(S_ACCENT, (123125, 236859, 120362, 80176), (123125, 236859, 120362, 80176)),
    K(S_NUM,
      (818, 1051, 236743, 236778, 236771, 236778, 236812, 5384, 609, 236800, 236761, 236810, 236771,
       236888),
      (818, 1051, 236743, 236778, 236771, 236778, 236812, 5384, 609, 236800, 236761, 236810, 236771,
       236888)),
    K(S_TABS, (255968, 4823, 255968, 624, 138, 13498, 138, 35220, 236743, 107),
      (255968, 4823, 255968, 624, 138, 13498, 138, 35220, 236743, 107)),
    K("<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
      (105, 2364, 107, 10979, 993, 106, 107, 105, 4368, 107),
      (236820, 3041, 236779, 1340, 236779, 887, 236813, 2364, 107, 10979, 993, 236820, 643, 236779,
       1340, 236779, 887, 236813, 107, 236820, 3041, 236779, 1340, 236779, 887, 236813, 4368, 107)),
};

/* Texts for the round trips: everything the known-id strings have, and more. */
static const char *const round_texts[] = {
    "Hello world",
    " leading space",
    "  two leading spaces and trailing  ",
    S_SPACES,
    "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\nmany newlines",
    "1234567890 0.5 1e10 -42",
    S_CODE,
    "for (int i = 0; i < n; i++) {\n\tsum += a[i] * b[i];\n}\n",
    S_EMOJI " " S_EMOJI "\U0001F9D1\u200D\U0001F680 \U0001FAE0",
    S_CJK " \u65E5\u672C\u8A9E\u306E\u30C6\u30AD\u30B9\u30C8 \uD55C\uAD6D\uC5B4",
    S_COMB " a\u0308\u0301 \u0915\u094D\u0937",
    S_CONTR " they've we'd you'll",
    S_ACCENT " \u00C5ngstr\u00F6m \u0391\u03B8\u03AE\u03BD\u03B1 "
             "\u041C\u043E\u0441\u043A\u0432\u0430",
    "\u0645\u0631\u062D\u0628\u0627 \u05E9\u05DC\u05D5\u05DD \u0E2A\u0E27\u0E31\u0E2A\u0E14\u0E35",
    "tabs\t\tand\r\ncrlf\r\n",
    "<table><tr><td>x</td></tr></table>",
    "",
};

static struct gguf_file *open_model(const char *name)
{
    const char *path = test_model_path(name);
    if (!path)
        return NULL;
    struct gguf_file *f = NULL;
    hearth_status st = gguf_open(path, &f);
    if (st != HEARTH_OK) {
        TEST_FAIL_AT("gguf_open(%s): %s", path, hearth_last_error());
        return NULL;
    }
    return f;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct tokenizer *load_model_tok(const char *name)
{
    struct gguf_file *f = open_model(name);
    if (!f)
        return NULL;
    struct tokenizer *t = NULL;
    double t0 = now_s();
    hearth_status st = tok_load(f, &t);
    double dt = now_s() - t0;
    gguf_close(f); /* the tokenizer keeps copies: it must work after this */
    if (st != HEARTH_OK) {
        TEST_FAIL_AT("tok_load(%s): %s", name, hearth_last_error());
        return NULL;
    }
    printf("  %s: tokenizer loaded in %.1f ms (%zu tokens)\n", name, dt * 1e3, tok_n_vocab(t));
    return t;
}

static void check_ids(const struct tokenizer *t, const char *text, bool parse_special,
                      const int32_t *want, int n_want)
{
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(tok_encode(t, text, strlen(text), false, parse_special, &ids, &n));
    bool same = ids && (int)n == n_want;
    for (int i = 0; same && i < n_want; i++)
        same = ids[i] == want[i];
    if (!same) {
        TEST_FAIL_AT("encode(\"%s\", parse_special=%d) differs", text, (int)parse_special);
        fprintf(stderr, "    got ");
        for (size_t i = 0; ids && i < n; i++)
            fprintf(stderr, "%d ", (int)ids[i]);
        fprintf(stderr, "\n    want ");
        for (int i = 0; i < n_want; i++)
            fprintf(stderr, "%d ", (int)want[i]);
        fputc('\n', stderr);
    }
    free(ids);
}

static void check_known(const struct tokenizer *t, const struct known *k, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        check_ids(t, k[i].text, true, k[i].special, k[i].n_special);
        check_ids(t, k[i].text, false, k[i].plain, k[i].n_plain);
    }
}

static void check_piece(const struct tokenizer *t, int32_t id, const char *want)
{
    size_t len;
    const char *p = tok_piece(t, id, &len);
    CHECK_MSG(p && len == strlen(want) && memcmp(p, want, len) == 0, "piece %d", (int)id);
}

TEST(smollm2_metadata_and_known_ids)
{
    struct tokenizer *t = load_model_tok(TEST_SMOLLM2);
    REQUIRE(t);
    CHECK_INT_EQ(tok_model_kind(t), TOK_MODEL_BPE);
    CHECK_INT_EQ(tok_n_vocab(t), 49152);
    CHECK_STR_EQ(tok_pre_name(t), "smollm");
    CHECK(!tok_pre_fallback(t));
    CHECK_INT_EQ(tok_bos(t), 1);
    CHECK_INT_EQ(tok_eos(t), 2);
    CHECK_INT_EQ(tok_pad(t), 2);
    CHECK_INT_EQ(tok_unk(t), 0);
    CHECK_INT_EQ(tok_eot(t), 2); /* <|im_end|> closes a turn */
    CHECK(!tok_add_bos(t));
    CHECK(!tok_add_space_prefix(t));
    CHECK_INT_EQ(tok_find(t, "<|im_start|>"), 1);
    CHECK_INT_EQ(tok_find(t, "<|im_end|>"), 2);
    CHECK_INT_EQ(tok_find(t, "Hello"), 19556);
    CHECK_INT_EQ(tok_find(t, "no-such-piece-here"), -1);
    CHECK(tok_is_eog(t, 2));
    CHECK(tok_is_eog(t, 0)); /* <|endoftext|> */
    CHECK(!tok_is_eog(t, 1));
    CHECK(!tok_is_eog(t, 19556));
    CHECK(tok_is_control(t, 1));
    CHECK_INT_EQ(tok_token_type(t, 19556), TOK_TYPE_NORMAL);
    check_piece(t, 905, "\u0120world");
    check_piece(t, 256, "\u0120\u0120");
    check_piece(t, 198, "\u010A");
    size_t len;
    const char *b = tok_token_bytes(t, 905, &len);
    CHECK(b && len == 6 && memcmp(b, " world", 6) == 0);
    b = tok_token_bytes(t, 10813, &len); /* "ðŁ" = bytes F0 9F */
    CHECK(b && len == 2 && (uint8_t)b[0] == 0xF0 && (uint8_t)b[1] == 0x9F);
    check_known(t, smol_known, sizeof smol_known / sizeof smol_known[0]);
    /* add_special adds nothing for SmolLM2 (add_bos_token false) */
    int32_t *ids;
    size_t n;
    CHECK_OK(tok_encode(t, "Hello world", 11, true, false, &ids, &n));
    CHECK(n == 2 && ids[0] == 19556);
    free(ids);
    CHECK_OK(tok_encode(t, "", 0, true, true, &ids, &n));
    CHECK(ids != NULL);
    CHECK_INT_EQ(n, 0);
    free(ids);
    tok_free(t);
}

TEST(gemma3_metadata_and_known_ids)
{
    struct tokenizer *t = load_model_tok(TEST_GEMMA3);
    REQUIRE(t);
    CHECK_INT_EQ(tok_model_kind(t), TOK_MODEL_SPM);
    CHECK_INT_EQ(tok_n_vocab(t), 262144);
    CHECK_INT_EQ(tok_bos(t), 2);
    CHECK_INT_EQ(tok_eos(t), 1);
    CHECK_INT_EQ(tok_pad(t), 0);
    CHECK_INT_EQ(tok_unk(t), 3);
    CHECK_INT_EQ(tok_eot(t), 106);
    CHECK(tok_add_bos(t));
    CHECK(!tok_add_eos(t));
    CHECK(!tok_add_space_prefix(t));
    CHECK(tok_is_eog(t, 1));
    CHECK(tok_is_eog(t, 106));
    CHECK(!tok_is_eog(t, 105));
    CHECK_INT_EQ(tok_find(t, "<start_of_turn>"), 105);
    CHECK_INT_EQ(tok_find(t, "<0xF0>"), 238 + 0xF0);
    CHECK_INT_EQ(tok_token_type(t, 238), TOK_TYPE_BYTE);
    CHECK_INT_EQ(tok_token_type(t, 108), TOK_TYPE_USER_DEFINED);
    check_piece(t, 1902, "\u2581world");
    check_piece(t, 139, "   ");
    size_t len;
    const char *b = tok_token_bytes(t, 1902, &len);
    CHECK(b && len == 6 && memcmp(b, " world", 6) == 0);
    b = tok_token_bytes(t, 238 + 0xAB, &len);
    CHECK(b && len == 1 && (uint8_t)b[0] == 0xAB);
    check_known(t, gemma_known, sizeof gemma_known / sizeof gemma_known[0]);
    /* add_special: exactly one BOS (id 2) in front */
    int32_t *ids;
    size_t n;
    CHECK_OK(tok_encode(t, "Hello world", 11, true, false, &ids, &n));
    CHECK(n == 3 && ids[0] == 2 && ids[1] == 9259 && ids[2] == 1902);
    free(ids);
    /* a character missing from the vocabulary falls back to its bytes: U+10FFFD
       (private use plane 16; checked absent from the vocabulary with gguf-py) */
    CHECK_OK(tok_encode(t, "\U0010FFFD", 4, false, false, &ids, &n));
    CHECK(n == 4 && ids[0] == 238 + 0xF4 && ids[1] == 238 + 0x8F && ids[2] == 238 + 0xBF &&
          ids[3] == 238 + 0xBD);
    free(ids);
    /* user-defined tokens match even without parse_special; control tokens do not */
    CHECK_OK(tok_encode(t, "<table>x<start_of_turn>", 23, false, false, &ids, &n));
    CHECK(n > 3 && ids[0] == 168 && ids[n - 1] != 105);
    free(ids);
    CHECK_OK(tok_encode(t, "<table>x<start_of_turn>", 23, false, true, &ids, &n));
    CHECK(n == 3 && ids[0] == 168 && ids[2] == 105);
    free(ids);
    tok_free(t);
}

/* decode(encode(s)) == s (both models add no space prefix, so the identity is exact). */
static void check_round_trip(const struct tokenizer *t, const char *s, size_t len)
{
    int32_t *ids = NULL;
    size_t n = 0;
    char *back = NULL;
    size_t blen = 0;
    CHECK_OK(tok_encode(t, s, len, false, false, &ids, &n));
    CHECK_OK(tok_decode(t, ids, n, false, &back, &blen));
    CHECK_MSG(back && blen == len && memcmp(back, s, len) == 0, "round trip of \"%.60s\"", s);
    free(ids);
    free(back);
}

static void round_trips(const char *model)
{
    struct tokenizer *t = load_model_tok(model);
    REQUIRE(t);
    for (size_t i = 0; i < sizeof round_texts / sizeof round_texts[0]; i++)
        check_round_trip(t, round_texts[i], strlen(round_texts[i]));
    /* special text typed by a user stays text when not parsed */
    const char *chat = "<|im_start|>user\n<start_of_turn>hi<end_of_turn><|im_end|>";
    check_round_trip(t, chat, strlen(chat));
    /* with parse_special the control tokens decode to "" unless rendered */
    int32_t *ids;
    size_t n;
    char *out;
    size_t olen;
    const char *c2 = tok_model_kind(t) == TOK_MODEL_BPE ? "<|im_start|>user\nhi<|im_end|>"
                                                        : "<start_of_turn>user\nhi<end_of_turn>";
    CHECK_OK(tok_encode(t, c2, strlen(c2), false, true, &ids, &n));
    CHECK_OK(tok_decode(t, ids, n, false, &out, &olen));
    CHECK_STR_EQ(out, "user\nhi");
    free(out);
    CHECK_OK(tok_decode(t, ids, n, true, &out, &olen));
    CHECK_STR_EQ(out, c2);
    free(out);
    free(ids);
    tok_free(t);
}

TEST(smollm2_round_trip)
{
    round_trips(TEST_SMOLLM2);
}
TEST(gemma3_round_trip)
{
    round_trips(TEST_GEMMA3);
}

/* ~1 MB of mixed text, deterministic. */
static char *make_big_text(size_t target, size_t *len)
{
    char *buf = malloc(target + 4096);
    if (!buf)
        return NULL;
    size_t n = 0;
    test_rng_seed(1234);
    size_t n_texts = sizeof round_texts / sizeof round_texts[0];
    while (n < target) {
        const char *s = round_texts[test_rng_u64() % n_texts];
        size_t k = strlen(s);
        memcpy(buf + n, s, k);
        n += k;
        buf[n++] = (test_rng_u64() % 4) ? ' ' : '\n';
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static void big_round_trip(const char *model)
{
    struct tokenizer *t = load_model_tok(model);
    REQUIRE(t);
    size_t len;
    char *text = make_big_text(1 << 20, &len);
    REQUIRE(text);
    int32_t *ids = NULL;
    size_t n = 0;
    double t0 = now_s();
    CHECK_OK(tok_encode(t, text, len, false, false, &ids, &n));
    double t1 = now_s();
    char *back = NULL;
    size_t blen = 0;
    CHECK_OK(tok_decode(t, ids, n, false, &back, &blen));
    double t2 = now_s();
    printf("  %s: %zu bytes -> %zu tokens; encode %.1f ms (%.2f MB/s), decode %.1f ms\n", model,
           len, n, (t1 - t0) * 1e3, (double)len / (t1 - t0) / 1e6, (t2 - t1) * 1e3);
    CHECK(n > len / 10);
    CHECK_MSG(back && blen == len && memcmp(back, text, len) == 0, "1 MB round trip");
    free(back);
    free(ids);
    free(text);
    tok_free(t);
}

TEST(smollm2_1mb_round_trip)
{
    big_round_trip(TEST_SMOLLM2);
}
TEST(gemma3_1mb_round_trip)
{
    big_round_trip(TEST_GEMMA3);
}

/* Pushes ids one by one; every chunk must be valid UTF-8 and they must add up to want. */
static int stream_check(const struct tokenizer *t, const int32_t *ids, size_t n, const char *want,
                        size_t want_len)
{
    struct tok_decoder *d;
    if (tok_decoder_create(t, false, &d) != HEARTH_OK) {
        TEST_FAIL_AT("tok_decoder_create: %s", hearth_last_error());
        return 0;
    }
    size_t cap = tok_decoder_max_out(t);
    char *chunk = malloc(cap), *all = malloc(want_len + 64);
    size_t total = 0;
    int held = 0; /* pushes that emitted nothing (a sequence was held back) */
    for (size_t i = 0; chunk && all && i <= n; i++) {
        size_t k;
        hearth_status st = i < n ? tok_decoder_push(d, ids[i], chunk, cap, &k)
                                 : tok_decoder_flush(d, chunk, cap, &k);
        CHECK_OK(st);
        CHECK_MSG(utf8_valid(chunk, k), "chunk %zu is not valid UTF-8", i);
        held += i < n && k == 0;
        if (total + k <= want_len + 64)
            memcpy(all + total, chunk, k);
        total += k;
    }
    CHECK_MSG(all && total == want_len && memcmp(all, want, want_len) == 0,
              "streamed text differs from \"%s\"", want);
    free(chunk);
    free(all);
    tok_decoder_free(d);
    return held;
}

static void streaming(const char *model)
{
    struct tokenizer *t = load_model_tok(model);
    REQUIRE(t);
    const char *text = "Hi " S_EMOJI " fire\U0001F525, " S_CJK " " S_COMB " \uE000\U0010FFFD!";
    int32_t *ids;
    size_t n;
    CHECK_OK(tok_encode(t, text, strlen(text), false, false, &ids, &n));
    int held = stream_check(t, ids, n, text, strlen(text));
    /* multi-byte characters split across tokens are held back at least once
       (BPE byte pieces; SPM byte fallback for U+E000 and U+10FFFD) */
    CHECK(held > 0);
    free(ids);

    /* an incomplete sequence at the end flushes as one U+FFFD; a byte that can
       never start a sequence (a lone continuation byte 80) is replaced at once */
    int32_t f0, x9f, xff, a;
    if (tok_model_kind(t) == TOK_MODEL_SPM) {
        f0 = tok_find(t, "<0xF0>");
        x9f = tok_find(t, "<0x9F>");
        xff = tok_find(t, "<0x80>");
    } else {
        f0 = tok_find(t, "\u00F0");  /* byte F0 */
        x9f = tok_find(t, "\u0141"); /* byte 9F: the 0x41st unprintable byte -> U+0141 */
        xff = tok_find(t, "\u0122"); /* byte 80 (SmolLM2 has no token for FF) */
    }
    a = tok_find(t, "a");
    REQUIRE(f0 >= 0 && x9f >= 0 && xff >= 0 && a >= 0);
    size_t len;
    const char *b = tok_token_bytes(t, x9f, &len);
    CHECK(b && len == 1 && (uint8_t)b[0] == 0x9F);
    int32_t tail[] = {a, f0, x9f};
    stream_check(t, tail, 3, "a" UTF8_REPLACEMENT, 4);
    int32_t bad[] = {xff, a};
    stream_check(t, bad, 2, UTF8_REPLACEMENT "a", 4);
    int32_t broken[] = {f0, a}; /* F0 then 'a': F0 can no longer complete */
    stream_check(t, broken, 2, UTF8_REPLACEMENT "a", 4);

    /* a cap that is too small is an error and leaves the state alone */
    struct tok_decoder *d;
    CHECK_OK(tok_decoder_create(t, false, &d));
    char small[2];
    size_t k;
    int32_t hello = tok_model_kind(t) == TOK_MODEL_SPM ? 9259 : 19556;
    CHECK_INT_EQ(tok_decoder_push(d, hello, small, sizeof small, &k), HEARTH_ERR_INVALID_ARG);
    CHECK_INT_EQ(tok_decoder_push(d, -5, small, sizeof small, &k), HEARTH_ERR_INVALID_ARG);
    char big[64];
    CHECK_OK(tok_decoder_push(d, hello, big, sizeof big, &k));
    CHECK(k == 5 && memcmp(big, "Hello", 5) == 0);
    tok_decoder_free(d);
    tok_free(t);
}

TEST(smollm2_streaming_decoder)
{
    streaming(TEST_SMOLLM2);
}
TEST(gemma3_streaming_decoder)
{
    streaming(TEST_GEMMA3);
}

/* ---- synthetic vocabularies ---- */

/* Builds an in-memory GGUF holding only tokenizer keys. */
static struct gguf_file *synth_gguf(const char *model, const char *pre, const char *const *tokens,
                                    size_t n_tok, const float *scores, const int32_t *types,
                                    const char *const *merges, size_t n_merges, uint8_t **image)
{
    struct gguf_writer *w;
    struct gguf_file *f = NULL;
    *image = NULL;
    if (gguf_writer_create(&w) != HEARTH_OK)
        return NULL;
    size_t size;
    bool ok = gguf_writer_set_str(w, "tokenizer.ggml.model", model) == HEARTH_OK &&
              (!pre || gguf_writer_set_str(w, "tokenizer.ggml.pre", pre) == HEARTH_OK) &&
              gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", n_tok, tokens) == HEARTH_OK &&
              (!scores || gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, n_tok,
                                              scores) == HEARTH_OK) &&
              (!types || gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, n_tok,
                                             types) == HEARTH_OK) &&
              (!merges || gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", n_merges, merges) ==
                              HEARTH_OK) &&
              gguf_writer_header_to_memory(w, image, &size) == HEARTH_OK &&
              gguf_open_memory(*image, size, "synthetic.gguf", &f) == HEARTH_OK;
    gguf_writer_destroy(w);
    if (!ok) {
        TEST_FAIL_AT("synthetic GGUF: %s", hearth_last_error());
        if (f)
            gguf_close(f);
        free(*image);
        *image = NULL;
        return NULL;
    }
    return f;
}

TEST(bpe_unknown_pre_falls_back)
{
    /* the 256 byte characters, then "ab" and "Ġab" built by two merges */
    static char store[258][8];
    const char *tokens[258];
    for (int b = 0; b < 256; b++) {
        size_t k = utf8_encode(tok__gpt2_byte_to_cp((uint8_t)b), store[b]);
        store[b][k] = 0;
        tokens[b] = store[b];
    }
    tokens[256] = "ab";
    tokens[257] = "\u0120ab";
    const char *merges[] = {"a b", "\u0120 ab"};
    uint8_t *image;
    struct gguf_file *f =
        synth_gguf("gpt2", "no-such-pre", tokens, 258, NULL, NULL, merges, 2, &image);
    REQUIRE(f);
    struct tokenizer *t = NULL;
    CHECK_OK(tok_load(f, &t));
    gguf_close(f);
    free(image);
    REQUIRE(t);
    CHECK(tok_pre_fallback(t));
    CHECK_STR_EQ(tok_pre_name(t), "default");
    int32_t *ids;
    size_t n;
    CHECK_OK(tok_encode(t, "ab ab a", 7, false, false, &ids, &n));
    /* "ab" | " ab" | " a": no merge "Ġ a", so the last piece is two byte tokens (id = byte) */
    CHECK(n == 4 && ids[0] == 256 && ids[1] == 257 && ids[2] == ' ' && ids[3] == 'a');
    free(ids);
    tok_free(t);
}

TEST(spm_space_prefix_and_byte_fallback)
{
    /* a tiny SentencePiece vocabulary with the SPM defaults (add_space_prefix true) */
    static char bytes[256][8];
    const char *tokens[3 + 256 + 6];
    float scores[3 + 256 + 6];
    int32_t types[3 + 256 + 6];
    tokens[0] = "<unk>";
    tokens[1] = "<s>";
    tokens[2] = "</s>";
    for (int i = 0; i < 3; i++) {
        scores[i] = 0.0f;
        types[i] = i == 0 ? TOK_TYPE_UNKNOWN : TOK_TYPE_CONTROL;
    }
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tokens[3 + b] = bytes[b];
        scores[3 + b] = 0.0f;
        types[3 + b] = TOK_TYPE_BYTE;
    }
    /* 259 ▁, 260 a, 261 b, 262 ▁a, 263 ▁ab, 264 ab: "▁a" outscores "ab", so "▁ab"
       comes from ▁a + b, never from ▁ + ab */
    const char *extra[] = {"\u2581", "a", "b", "\u2581a", "\u2581ab", "ab"};
    const float extra_scores[] = {-1.0f, -2.0f, -3.0f, -0.5f, -0.25f, -0.75f};
    for (int i = 0; i < 6; i++) {
        tokens[259 + i] = extra[i];
        scores[259 + i] = extra_scores[i];
        types[259 + i] = TOK_TYPE_NORMAL;
    }
    uint8_t *image;
    struct gguf_file *f = synth_gguf("llama", NULL, tokens, 265, scores, types, NULL, 0, &image);
    REQUIRE(f);
    struct tokenizer *t = NULL;
    CHECK_OK(tok_load(f, &t));
    gguf_close(f);
    free(image);
    REQUIRE(t);
    CHECK(tok_add_space_prefix(t));
    CHECK(tok_add_bos(t));
    CHECK_INT_EQ(tok_bos(t), 1);
    CHECK_INT_EQ(tok_eos(t), 2);
    int32_t *ids;
    size_t n;
    /* "▁ab▁c": BOS, ▁ab, ▁, and 'c' is no token: byte fallback <0x63> */
    CHECK_OK(tok_encode(t, "ab c", 4, true, false, &ids, &n));
    CHECK(n == 4 && ids[0] == 1 && ids[1] == 263 && ids[2] == 259 && ids[3] == 3 + 'c');
    char *out;
    size_t olen;
    CHECK_OK(tok_decode(t, ids, n, false, &out, &olen));
    CHECK_STR_EQ(out, "ab c"); /* the added prefix space is dropped again */
    free(out);
    free(ids);
    /* "bab" -> "▁bab": ▁b and ba are no tokens, ab is: ▁ | b | ab */
    CHECK_OK(tok_encode(t, "bab", 3, false, false, &ids, &n));
    CHECK(n == 3 && ids[0] == 259 && ids[1] == 261 && ids[2] == 264);
    free(ids);
    tok_free(t);
}

struct piece_acc {
    char buf[256];
    size_t n;
    const char *text;
};

static hearth_status collect_piece(void *ctx, size_t off, size_t n)
{
    struct piece_acc *a = ctx;
    if (a->n && a->n < sizeof a->buf - 1)
        a->buf[a->n++] = '|';
    for (size_t i = 0; i < n && a->n < sizeof a->buf - 1; i++)
        a->buf[a->n++] = a->text[off + i];
    a->buf[a->n] = 0;
    return HEARTH_OK;
}

TEST(pretokenizer_regexes)
{
    static const struct {
        const char *pre, *text, *want; /* pieces joined by '|' */
    } cases[] = {
        {"smollm", "a 123", "a| |1|2|3"},            /* digits split off first, lone space stays */
        {"llama-bpe", "a 1234567", "a| |123|456|7"}, /* groups of up to 3 */
        {"qwen2", "a 123", "a| |1|2|3"},
        {"gpt-2", "  multiple", " | multiple"},  /* \s+(?!\S) leaves the last space */
        {"gpt-2", "I'm OK'LL", "I|'m| OK|'|LL"}, /* contractions lower-case only */
        {"llama3", "I'm OK'LL", "I|'m| OK|'LL"},
        {"llama3", "x\n\n  y", "x|\n\n| | y"},
        {"default", "a+b=33", "a|+|b|=|33"},
        {"smollm", "caf\u00E9 \u4F60\u597D!", "caf\u00E9| \u4F60\u597D|!"},
        {"smollm", "a\xFF b", "a|\xFF| b"}, /* an invalid byte is a piece of its own */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct tok__pretok *p = NULL;
        bool fb = true;
        CHECK_OK(tok__pretok_create(cases[c].pre, &p, &fb));
        if (!p)
            continue;
        CHECK(!fb);
        struct piece_acc acc = {{0}, 0, cases[c].text};
        CHECK_OK(tok__pretok_split(p, cases[c].text, strlen(cases[c].text), collect_piece, &acc));
        CHECK_MSG(strcmp(acc.buf, cases[c].want) == 0, "%s on \"%s\": got \"%s\", want \"%s\"",
                  cases[c].pre, cases[c].text, acc.buf, cases[c].want);
        tok__pretok_free(p);
    }
    struct tok__pretok *p = NULL;
    bool fb = false;
    CHECK_OK(tok__pretok_create("brand-new-pre", &p, &fb));
    CHECK(p && fb);
    tok__pretok_free(p);
}

TEST(utf8_helpers)
{
    uint32_t cp = 0;
    CHECK_INT_EQ(utf8_decode("\xF0\x9F\x94\xA5", 4, &cp), 4);
    CHECK_INT_EQ(cp, 0x1F525);
    CHECK_INT_EQ(utf8_decode("\xF0\x9F\x94", 3, &cp), 0); /* truncated */
    CHECK_INT_EQ(utf8_partial_len("\xF0\x9F\x94", 3), 3); /* ... but can complete */
    CHECK_INT_EQ(utf8_partial_len("\xF0\x9F"
                                  "a",
                                  3),
                 2);                                          /* cannot */
    CHECK_INT_EQ(utf8_decode("\xC0\xAF", 2, &cp), 0);         /* overlong */
    CHECK_INT_EQ(utf8_partial_len("\xE0\x80", 2), 1);         /* overlong prefix */
    CHECK_INT_EQ(utf8_decode("\xED\xA0\x80", 3, &cp), 0);     /* surrogate */
    CHECK_INT_EQ(utf8_decode("\xF4\x90\x80\x80", 4, &cp), 0); /* > U+10FFFF */
    CHECK_INT_EQ(utf8_partial_len("\x80", 1), 0);
    char buf[4];
    CHECK_INT_EQ(utf8_encode(0x10FFFF, buf), 4);
    CHECK(memcmp(buf, "\xF4\x8F\xBF\xBF", 4) == 0);
    CHECK_INT_EQ(utf8_encode(0xD800, buf), 0);
    CHECK(utf8_valid(S_EMOJI S_CJK S_COMB, strlen(S_EMOJI S_CJK S_COMB)));
    CHECK(!utf8_valid("a\xFF", 2));
    /* the GPT-2 byte map (facts sheet 5.5): both directions, all 256 bytes */
    CHECK_INT_EQ(tok__gpt2_byte_to_cp(' '), 0x120);
    CHECK_INT_EQ(tok__gpt2_byte_to_cp('\n'), 0x10A);
    CHECK_INT_EQ(tok__gpt2_byte_to_cp('\t'), 0x109);
    CHECK_INT_EQ(tok__gpt2_byte_to_cp(0xAD), 0x143);
    CHECK_INT_EQ(tok__gpt2_byte_to_cp('A'), 'A');
    for (int b = 0; b < 256; b++)
        CHECK_INT_EQ(tok__gpt2_cp_to_byte(tok__gpt2_byte_to_cp((uint8_t)b)), b);
    CHECK_INT_EQ(tok__gpt2_cp_to_byte(0x144), -1);
    CHECK_INT_EQ(tok__gpt2_cp_to_byte(0x20), -1);
}

TEST_MAIN(TEST_CASE(utf8_helpers), TEST_CASE(smollm2_metadata_and_known_ids),
          TEST_CASE(gemma3_metadata_and_known_ids), TEST_CASE(smollm2_round_trip),
          TEST_CASE(gemma3_round_trip), TEST_CASE(smollm2_streaming_decoder),
          TEST_CASE(gemma3_streaming_decoder), TEST_CASE(smollm2_1mb_round_trip),
          TEST_CASE(gemma3_1mb_round_trip), TEST_CASE(bpe_unknown_pre_falls_back),
          TEST_CASE(spm_space_prefix_and_byte_fallback), TEST_CASE(pretokenizer_regexes))
