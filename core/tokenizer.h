/*
 * tokenizer: text <-> token ids for the vocabularies stored in GGUF metadata.
 *
 * Two models are implemented, chosen by tokenizer.ggml.model:
 *  - "gpt2": byte-level BPE. The text is split by the pre-tokenizer regexes
 *    named by tokenizer.ggml.pre (tok-pretok.c, PCRE2), each piece's bytes are
 *    mapped to the GPT-2 printable characters and merged by merge rank
 *    (tok-bpe.c).
 *  - "llama": SentencePiece BPE with scores and <0xNN> byte fallback
 *    (tok-spm.c). Gemma GGUFs use this model too (with add_space_prefix false
 *    and many user-defined tokens such as "\n\n" or "<table>").
 * Before either runs, the text is cut at special tokens: user-defined tokens
 * always match literally, control tokens only when the caller asks for
 * parse_special (so a user typing "<|im_end|>" cannot end a turn).
 *
 * The tokenizer copies everything it needs out of the GGUF file, so it may
 * outlive the file. It is immutable after tok_load: encoding and decoding from
 * several threads at once is safe (each call has its own scratch).
 */
#ifndef HEARTH_TOKENIZER_H
#define HEARTH_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "hearth.h"

struct tokenizer;

/* tokenizer.ggml.token_type values (facts sheet §5.2). */
enum tok_type {
    TOK_TYPE_UNDEFINED = 0,
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6
};

enum tok_model {
    TOK_MODEL_SPM = 1, /* "llama": SentencePiece BPE with byte fallback */
    TOK_MODEL_BPE = 2  /* "gpt2": byte-level BPE with merges */
};

/*
 * Builds a tokenizer from f's tokenizer.* keys. Errors: HEARTH_ERR_UNSUPPORTED
 * for a tokenizer.ggml.model other than gpt2/llama, HEARTH_ERR_BAD_FILE for
 * missing or inconsistent arrays, HEARTH_ERR_NO_MEMORY. An unknown
 * tokenizer.ggml.pre is not an error: the "default" regexes are used and
 * tok_pre_fallback() reports it.
 */
hearth_status tok_load(const struct gguf_file *f, struct tokenizer **out);
void tok_free(struct tokenizer *t);

/*
 * Tokenizes text[0..len) (UTF-8; invalid bytes are still encoded, as byte
 * tokens). add_special: prepend BOS if the model's add_bos is set and append
 * EOS if its add_eos is set (llama.cpp's "add_special"; SmolLM2 has add_bos
 * false, Gemma true). parse_special: also match control tokens written in the
 * text (<|im_start|>, <start_of_turn>) as single ids. On success *ids is a
 * malloc'd array the caller frees (non-NULL even when *n_ids is 0).
 */
hearth_status tok_encode(const struct tokenizer *t, const char *text, size_t len, bool add_special,
                         bool parse_special, int32_t **ids, size_t *n_ids);

enum tok_model tok_model_kind(const struct tokenizer *t);
size_t tok_n_vocab(const struct tokenizer *t);
/* Special ids from the metadata (or the model's defaults); -1 when the model has none. */
int32_t tok_bos(const struct tokenizer *t);
int32_t tok_eos(const struct tokenizer *t);
int32_t tok_eot(const struct tokenizer *t); /* eot key, else a control token <|im_end|>,
                                              <end_of_turn>, <|eot_id|>, ...; else -1 */
int32_t tok_pad(const struct tokenizer *t);
int32_t tok_unk(const struct tokenizer *t);
bool tok_add_bos(const struct tokenizer *t);
bool tok_add_eos(const struct tokenizer *t);
bool tok_add_space_prefix(const struct tokenizer *t);
/* End of generation: eos, eot, eom and the turn-closing control tokens (§5.6). */
bool tok_is_eog(const struct tokenizer *t, int32_t id);
/* TOK_TYPE_* of id (TOK_TYPE_UNDEFINED for an id out of range). */
enum tok_type tok_token_type(const struct tokenizer *t, int32_t id);
bool tok_is_control(const struct tokenizer *t, int32_t id);

/* The pre-tokenizer in use ("smollm", "default", ...; "" for SPM). */
const char *tok_pre_name(const struct tokenizer *t);
/* True when tokenizer.ggml.pre named a pre-tokenizer this build does not know
   (or was absent for gpt2) and the "default" regexes were used instead. */
bool tok_pre_fallback(const struct tokenizer *t);

/* The vocabulary text of id as stored (GPT-2 mapped chars, ▁ for space); NUL-terminated.
   NULL for an id out of range. */
const char *tok_piece(const struct tokenizer *t, int32_t id, size_t *len);
/* The bytes id stands for in decoded text (may be a partial UTF-8 sequence); not
   NUL-terminated. Control tokens give their text. NULL for an id out of range. */
const char *tok_token_bytes(const struct tokenizer *t, int32_t id, size_t *len);
/* Exact-text lookup of a vocabulary piece ("<|im_end|>", "Hello"); -1 if absent. */
int32_t tok_find(const struct tokenizer *t, const char *piece);
int32_t tok_find_n(const struct tokenizer *t, const char *piece, size_t len);
/* Longest tok_token_bytes() over the vocabulary. */
size_t tok_max_token_bytes(const struct tokenizer *t);

/*
 * Decodes ids[0..n) into one malloc'd NUL-terminated string (*out, length in
 * *out_len). Control tokens are skipped unless render_special; for SPM models
 * with add_space_prefix the first text token's leading space is dropped.
 * Invalid UTF-8 is replaced by U+FFFD.
 */
hearth_status tok_decode(const struct tokenizer *t, const int32_t *ids, size_t n,
                         bool render_special, char **out, size_t *out_len);

/*
 * Streaming decoder: push ids one at a time and get only complete UTF-8
 * sequences back. A sequence split across tokens (emoji from byte-fallback
 * tokens, multi-byte BPE pieces) is held until it completes; bytes that can
 * never be valid become U+FFFD at once; tok_decoder_flush turns a held
 * incomplete tail into U+FFFD. Same control-token and leading-space rules as
 * tok_decode.
 */
struct tok_decoder;
hearth_status tok_decoder_create(const struct tokenizer *t, bool render_special,
                                 struct tok_decoder **out);
void tok_decoder_free(struct tok_decoder *d);
/* Forget held bytes and start a new text (the leading-space rule applies again). */
void tok_decoder_reset(struct tok_decoder *d);
/* Room a push or flush may need: cap >= this never fails with INVALID_ARG. */
size_t tok_decoder_max_out(const struct tokenizer *t);
/*
 * Decodes one id into out[0..cap) (*n_out bytes, always complete valid UTF-8,
 * not NUL-terminated). Errors: HEARTH_ERR_INVALID_ARG for an id out of range or
 * a cap too small for this output; the decoder state is then unchanged.
 */
hearth_status tok_decoder_push(struct tok_decoder *d, int32_t id, char *out, size_t cap,
                               size_t *n_out);
/* Emits what is held (as U+FFFD: it is an incomplete sequence). */
hearth_status tok_decoder_flush(struct tok_decoder *d, char *out, size_t cap, size_t *n_out);

/* ---- internals shared by tokenizer.c, tok-bpe.c, tok-spm.c, tok-pretok.c ---- */

/* Open-addressing hash set of token ids keyed by their text. A slot holds
   (hash >> 32) << 32 | (id + 1), 0 = empty: the stored hash bits reject almost
   every non-matching probe without touching the token text. */
struct tok__text_map {
    uint64_t *slots; /* (mask + 1) entries */
    uint32_t mask;
};

/* BPE merges: (left id, right id) -> rank and merged id. */
struct tok__merge_map {
    uint64_t *keys;  /* (mask + 1) entries: left << 32 | right, UINT64_MAX = empty */
    int32_t *rank;   /* merge rank, lower applies first */
    int32_t *merged; /* id of left text + right text */
    uint32_t mask;
};

struct tok__pretok; /* compiled regex sequence (tok-pretok.c) */

struct tokenizer {
    enum tok_model model;
    uint32_t n_vocab;
    char *arena;         /* every piece text, NUL-terminated, back to back */
    uint64_t *text_off;  /* [n_vocab] offset of the piece text in arena */
    uint32_t *text_len;  /* [n_vocab] */
    char *bytes_arena;   /* decoded bytes of every token (tok_token_bytes) */
    uint64_t *bytes_off; /* [n_vocab] */
    uint32_t *bytes_len; /* [n_vocab] */
    size_t max_bytes;
    float *scores;  /* [n_vocab] SPM merge priority (higher first); 0 if absent */
    uint8_t *types; /* [n_vocab] enum tok_type */
    struct tok__text_map map;
    struct tok__merge_map merges; /* BPE only */
    int32_t byte_tok[256];        /* SPM: id of <0xNN>; BPE: id of the mapped char; -1 */

    /* Special tokens that are cut out of the text before tokenizing: control and
       user-defined (and unknown) ids, with the distinct lengths longest first. */
    int32_t *special_ids; /* [n_special] */
    uint32_t n_special;
    struct tok__text_map special_map; /* text -> id over special_ids only */
    uint32_t *special_lens;           /* [n_special_lens] descending */
    uint32_t n_special_lens;
    uint8_t special_first[32]; /* bitmap of first bytes of special texts */

    int32_t bos, eos, eot, eom, pad, unk;
    int32_t *eog_ids; /* [n_eog] */
    uint32_t n_eog;
    bool add_bos, add_eos, add_space_prefix;
    bool ignore_merges; /* llama3: a piece that is a whole token skips merging */

    char pre_name[64];
    bool pre_fallback;
    struct tok__pretok *pretok; /* BPE only */
};

/* Hashing shared by the maps. */
uint64_t tok__hash(const char *s, size_t n);
/* Looks text up in the full vocabulary; -1 if absent. */
int32_t tok__lookup(const struct tokenizer *t, const char *s, size_t n);

/* tok-bpe.c: merge tables and the per-piece BPE; appends ids to a growing array. */
struct tok__ids {
    int32_t *v;
    size_t n, cap;
};
hearth_status tok__ids_push(struct tok__ids *ids, int32_t id);
hearth_status tok__bpe_init(struct tokenizer *t, const struct gguf_file *f);
hearth_status tok__bpe_encode(const struct tokenizer *t, const char *text, size_t len,
                              struct tok__ids *ids);
/*
 * tok-heap.c: merge candidates, smallest (key, left) first. BPE: key = rank,
 * a, b = the two symbols' ids; SPM: key = -score, a, b = the two spans'
 * lengths. id: the merged token.
 */
struct tok__cand {
    double key;
    uint32_t left, right; /* symbol indices */
    int32_t a, b, id;
};
struct tok__heap {
    struct tok__cand *a;
    size_t n, cap;
};
hearth_status tok__heap_push(struct tok__heap *h, const struct tok__cand *e);
struct tok__cand tok__heap_pop(struct tok__heap *h); /* h->n > 0 */
void tok__heap_free(struct tok__heap *h);

/* GPT-2 byte <-> code point table (facts sheet §5.5). */
uint32_t tok__gpt2_byte_to_cp(uint8_t b);
/* The byte a mapped code point stands for, or -1 if cp is not in the table. */
int tok__gpt2_cp_to_byte(uint32_t cp);

/* tok-spm.c */
hearth_status tok__spm_init(struct tokenizer *t);
hearth_status tok__spm_encode(const struct tokenizer *t, const char *text, size_t len,
                              bool add_prefix, struct tok__ids *ids);

/* tok-pretok.c: compiled pre-tokenizer regexes and the splitter. */
hearth_status tok__pretok_create(const char *name, struct tok__pretok **out, bool *fallback);
void tok__pretok_free(struct tok__pretok *p);
bool tok__pretok_ignore_merges(const char *name);
bool tok__pretok_adds_bos(const char *name);
/*
 * Splits text[0..len) into pieces; calls fn(ctx, offset, length) for each in
 * order. The pieces tile the text exactly. Invalid UTF-8 bytes become pieces of
 * their own (PCRE2 only sees valid UTF-8).
 */
typedef hearth_status (*tok__piece_fn)(void *ctx, size_t off, size_t n);
hearth_status tok__pretok_split(const struct tok__pretok *p, const char *text, size_t len,
                                tok__piece_fn fn, void *ctx);

#endif
