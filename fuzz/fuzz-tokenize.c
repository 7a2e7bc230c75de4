/*
 * fuzz-tokenize: libFuzzer target for the tokenizers of the real models in
 * models/ (or $HEARTH_MODELS_DIR): SmolLM2's byte-level BPE and Gemma 3's
 * SentencePiece with byte fallback (run by scripts/fuzz.sh; skipped when
 * neither model is there). The input is text a user could type or paste.
 *
 * For every loaded tokenizer and both ways of treating special text:
 *  - encoding returns ids in range, or a status;
 *  - valid UTF-8 comes back byte for byte: decode(encode(s)) == s, with
 *    control tokens rendered when they were parsed (neither model adds a
 *    space prefix, tests/test-tokenizer.c), less the bytes the vocabulary
 *    has no token for. SmolLM2's lacks the byte-level tokens of 0x04, 0x06,
 *    0x13, 0x14, 0x16, 0x1d and of the lead bytes 0xf1 and 0xf2 (found by
 *    this target; 0xc0, 0xc1, 0xf5-0xff never occur in UTF-8), and such
 *    bytes are dropped, as llama.cpp drops them: the ASCII ones are left
 *    out of the expected text, and a text with a dropped lead byte is not
 *    compared (its other bytes decode as U+FFFD);
 *  - the streaming decoder, fed the same ids one at a time, gives the same
 *    bytes as the one-shot decode, whatever the input's validity.
 * Violations trap, so the input is saved.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gguf.h"
#include "tokenizer.h"
#include "utf8.h"

static struct tokenizer *g_tok[2];
static bool g_drop[2][256]; /* bytes tokenizer i has no token for */
static int g_n;

/* Which bytes encode to nothing on their own (byte-level BPE maps any byte). */
static void find_drops(const struct tokenizer *t, bool drop[256])
{
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        int32_t *ids = NULL;
        size_t n = 0;
        drop[b] = tok_encode(t, &c, 1, false, false, &ids, &n) == HEARTH_OK && n == 0;
        free(ids);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const char *const files[] = {"SmolLM2-135M-Instruct.Q4_1.gguf",
                                        "gemma-3-270m-Q4_K_M.gguf"};
    const char *dir = getenv("HEARTH_MODELS_DIR");
    for (int i = 0; i < 2; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir ? dir : "models", files[i]);
        struct gguf_file *f = NULL;
        if (gguf_open(path, &f) != HEARTH_OK)
            continue;
        /* the tokenizer copies what it keeps: the file can go */
        if (tok_load(f, &g_tok[g_n]) == HEARTH_OK) {
            find_drops(g_tok[g_n], g_drop[g_n]);
            g_n++;
        }
        gguf_close(f);
    }
    if (g_n == 0) {
        fprintf(stderr, "fuzz-tokenize: no tokenizer loaded from %s\n", dir ? dir : "models");
        exit(1);
    }
    return 0;
}

/* The streaming decoder's bytes for ids equal the one-shot decode's. */
static void check_stream(const struct tokenizer *t, const int32_t *ids, size_t n, bool special,
                         const char *want, size_t want_len)
{
    struct tok_decoder *d = NULL;
    if (tok_decoder_create(t, special, &d) != HEARTH_OK)
        return;
    const size_t cap = tok_decoder_max_out(t);
    char *piece = malloc(cap);
    char *got = malloc(want_len + cap + 1);
    FUZZ_CHECK(piece && got);
    size_t len = 0, k;
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(tok_decoder_push(d, ids[i], piece, cap, &k) == HEARTH_OK);
        FUZZ_CHECK(len + k <= want_len);
        memcpy(got + len, piece, k);
        len += k;
    }
    FUZZ_CHECK(tok_decoder_flush(d, piece, cap, &k) == HEARTH_OK);
    FUZZ_CHECK(len + k <= want_len);
    memcpy(got + len, piece, k);
    len += k;
    FUZZ_CHECK(len == want_len && !memcmp(got, want, len));
    free(piece);
    free(got);
    tok_decoder_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0; /* long texts only repeat what short ones exercise, slower */
    const char *s = (const char *)data;
    const bool valid = utf8_valid(s, size);
    char *kept = malloc(size + 1);
    FUZZ_CHECK(kept != NULL);
    for (int i = 0; i < g_n; i++) {
        size_t n_kept = 0;
        bool comparable = valid;
        for (size_t k = 0; k < size; k++) {
            const unsigned char c = (unsigned char)s[k];
            if (!g_drop[i][c])
                kept[n_kept++] = s[k];
            else if (c >= 128)
                comparable = false;
        }
        const struct tokenizer *t = g_tok[i];
        const size_t n_vocab = tok_n_vocab(t);
        for (int special = 0; special < 2; special++) {
            int32_t *ids = NULL;
            size_t n = 0;
            if (tok_encode(t, s, size, false, special, &ids, &n) != HEARTH_OK)
                continue;
            for (size_t k = 0; k < n; k++)
                FUZZ_CHECK(ids[k] >= 0 && (size_t)ids[k] < n_vocab);
            char *back = NULL;
            size_t blen = 0;
            FUZZ_CHECK(tok_decode(t, ids, n, special, &back, &blen) == HEARTH_OK);
            FUZZ_CHECK(back != NULL && back[blen] == '\0');
            if (comparable)
                FUZZ_CHECK(blen == n_kept && !memcmp(back, kept, n_kept));
            check_stream(t, ids, n, special, back, blen);
            free(back);
            free(ids);
        }
    }
    free(kept);
    return 0;
}
