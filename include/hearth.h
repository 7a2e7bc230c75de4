/*
 * hearth.h: the one public header of hearth, a GPU inference engine for
 * open-weight language models in GGUF files.
 *
 * Conventions (see docs/design.md):
 *  - Every function that can fail returns a hearth_status: 0 is OK, errors are
 *    negative. The human-readable detail (file, byte offset or field, and what
 *    was expected) is kept in a thread-local buffer read by hearth_last_error().
 *  - Opaque handles come in _create/_destroy or _open/_close pairs; the caller
 *    owns what a _create returns and nothing else.
 *  - Nothing in the library calls exit() or abort() on bad input.
 */
#ifndef HEARTH_H
#define HEARTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HEARTH_VERSION_MAJOR 0
#define HEARTH_VERSION_MINOR 1
#define HEARTH_VERSION_PATCH 0

/* The status list, written once. X(NAME, value, "message"). */
#define HEARTH_STATUS_LIST(X)                                                    \
    X(OK, 0, "ok")                                                               \
    X(ERR_INVALID_ARG, -1, "invalid argument")                                   \
    X(ERR_NO_MEMORY, -2, "out of host memory")                                   \
    X(ERR_DEVICE_OOM, -3, "out of device memory")                                \
    X(ERR_IO, -4, "input/output error")                                          \
    X(ERR_BAD_FILE, -5, "malformed model file")                                  \
    X(ERR_UNSUPPORTED, -6, "unsupported type, architecture or operation")        \
    X(ERR_DEVICE_LOST, -7, "device lost")                                        \
    X(ERR_NOT_FOUND, -8, "not found")                                            \
    X(ERR_BACKEND, -9, "backend error")                                          \
    X(ERR_CANCELLED, -10, "cancelled")                                           \
    X(ERR_INTERNAL, -11, "internal error")

typedef enum hearth_status {
#define HEARTH_X_ENUM(name, value, msg) HEARTH_##name = value,
    HEARTH_STATUS_LIST(HEARTH_X_ENUM)
#undef HEARTH_X_ENUM
} hearth_status;

/* "HEARTH_ERR_BAD_FILE" for HEARTH_ERR_BAD_FILE; "HEARTH_UNKNOWN" otherwise. */
const char *hearth_status_name(hearth_status st);
/* A short generic description of a status ("malformed model file"). */
const char *hearth_status_str(hearth_status st);
/*
 * The detailed message of the most recent failure on this thread, for example
 * "model.gguf: offset 1234: tensor 'blk.0.attn_q.weight': type id 77 is not a
 * known ggml type". Never NULL; "" when nothing failed yet.
 */
const char *hearth_last_error(void);

/*
 * Element types, numbered as ggml numbers them so that a GGUF tensor's type id
 * is a hearth_dtype. Gaps are ids that ggml retired.
 */
typedef enum hearth_dtype {
    HEARTH_DTYPE_F32 = 0,
    HEARTH_DTYPE_F16 = 1,
    HEARTH_DTYPE_Q4_0 = 2,
    HEARTH_DTYPE_Q4_1 = 3,
    HEARTH_DTYPE_Q5_0 = 6,
    HEARTH_DTYPE_Q5_1 = 7,
    HEARTH_DTYPE_Q8_0 = 8,
    HEARTH_DTYPE_Q8_1 = 9,
    HEARTH_DTYPE_Q2_K = 10,
    HEARTH_DTYPE_Q3_K = 11,
    HEARTH_DTYPE_Q4_K = 12,
    HEARTH_DTYPE_Q5_K = 13,
    HEARTH_DTYPE_Q6_K = 14,
    HEARTH_DTYPE_Q8_K = 15,
    HEARTH_DTYPE_IQ2_XXS = 16,
    HEARTH_DTYPE_IQ2_XS = 17,
    HEARTH_DTYPE_IQ3_XXS = 18,
    HEARTH_DTYPE_IQ1_S = 19,
    HEARTH_DTYPE_IQ4_NL = 20,
    HEARTH_DTYPE_IQ3_S = 21,
    HEARTH_DTYPE_IQ2_S = 22,
    HEARTH_DTYPE_IQ4_XS = 23,
    HEARTH_DTYPE_I8 = 24,
    HEARTH_DTYPE_I16 = 25,
    HEARTH_DTYPE_I32 = 26,
    HEARTH_DTYPE_I64 = 27,
    HEARTH_DTYPE_F64 = 28,
    HEARTH_DTYPE_IQ1_M = 29,
    HEARTH_DTYPE_BF16 = 30,
    HEARTH_DTYPE_TQ1_0 = 34,
    HEARTH_DTYPE_TQ2_0 = 35,
    HEARTH_DTYPE_MXFP4 = 39,
    HEARTH_DTYPE_NVFP4 = 40,
    HEARTH_DTYPE_Q1_0 = 41,
    HEARTH_DTYPE_Q2_0 = 42,
    HEARTH_DTYPE_COUNT = 43 /* one past the last id ggml knows */
} hearth_dtype;

/* "Q4_K" for HEARTH_DTYPE_Q4_K; NULL for an id that is no type. */
const char *hearth_dtype_name(hearth_dtype t);

/* ==== Models, sessions and generation (core/api.c) ===========================
 *
 * A hearth_model is a GGUF file mapped read-only plus its tokenizer; it is
 * immutable after loading, so several sessions (on several threads) may share
 * one. A hearth_session is one conversation: its own KV cache, thread pool and
 * sampler; use one session from one thread at a time. Text is UTF-8 and never
 * split inside a character. Error details: hearth_last_error() on the calling
 * thread.
 */

typedef struct hearth_model hearth_model;
typedef struct hearth_session hearth_session;

/*
 * Maps the GGUF file at path and binds its weights and tokenizer. *out is the
 * caller's (hearth_model_free); NULL on failure. Errors: HEARTH_ERR_IO (cannot
 * open or map; the message names the path), HEARTH_ERR_BAD_FILE (malformed
 * file: names the offset or field), HEARTH_ERR_UNSUPPORTED (architecture,
 * tensor type or tokenizer not supported), HEARTH_ERR_NO_MEMORY.
 */
hearth_status hearth_model_load(const char *path, hearth_model **out);
/* Frees the model. All its sessions must be freed first. NULL is a no-op. */
void hearth_model_free(hearth_model *model);

/* "llama", "qwen2", "gemma3". */
const char *hearth_model_arch(const hearth_model *model);
int32_t hearth_model_n_vocab(const hearth_model *model);   /* logits per position */
int32_t hearth_model_n_ctx_train(const hearth_model *model);
int32_t hearth_model_n_layer(const hearth_model *model);
int32_t hearth_model_n_embd(const hearth_model *model);
int32_t hearth_model_n_head(const hearth_model *model);
int32_t hearth_model_n_head_kv(const hearth_model *model);
int32_t hearth_model_head_dim(const hearth_model *model);
/* Special ids; -1 when the model has none. */
int32_t hearth_model_token_bos(const hearth_model *model);
int32_t hearth_model_token_eos(const hearth_model *model);
/* True for ids that end generation (EOS, end-of-turn markers). */
bool hearth_model_token_is_eog(const hearth_model *model, int32_t token);
/* The chat family used by hearth_generate_chat: "chatml", "llama3", "gemma", ... */
const char *hearth_model_chat_format(const hearth_model *model);

/*
 * Text -> ids. add_special: prepend BOS (and append EOS) as the model's
 * tokenizer metadata says. parse_special: control tokens written in the text
 * ("<|im_start|>") become their ids; otherwise they are tokenized as plain
 * text. *ids is malloc'd (free with hearth_free; non-NULL even when *n_ids is
 * 0). Errors: HEARTH_ERR_INVALID_ARG (NULL arguments), HEARTH_ERR_NO_MEMORY.
 */
hearth_status hearth_tokenize(const hearth_model *model, const char *text, size_t len,
                              bool add_special, bool parse_special, int32_t **ids,
                              size_t *n_ids);
/*
 * Ids -> text. Control tokens are skipped unless render_special; invalid UTF-8
 * becomes U+FFFD. *text is malloc'd and NUL-terminated (free with hearth_free);
 * *len (may be NULL) gets its length. Errors: HEARTH_ERR_INVALID_ARG (an id
 * outside [0, n_vocab)), HEARTH_ERR_NO_MEMORY.
 */
hearth_status hearth_detokenize(const hearth_model *model, const int32_t *ids, size_t n,
                                bool render_special, char **text, size_t *len);
/* Frees memory the library returned (token arrays, strings). NULL is a no-op. */
void hearth_free(void *ptr);

/*
 * The sampling chain (logit bias, hearth_session_set_logit_bias; penalties;
 * then top-k, top-p, min-p, temperature).
 */
typedef struct hearth_sampling_params {
    float temp;              /* >= 0; 0 = greedy (argmax). default 0.8 */
    int32_t top_k;           /* >= 0; 0 = off. default 40 */
    float top_p;             /* (0, 1]; 1 = off. default 0.95 */
    float min_p;             /* [0, 1]; 0 = off. default 0.05 */
    float repeat_penalty;    /* > 0; 1 = off. default 1.0 */
    int32_t repeat_last_n;   /* tokens the penalties look back on. default 64 */
    float presence_penalty;  /* default 0 */
    float frequency_penalty; /* default 0 */
    uint64_t seed;           /* used when seed_set */
    bool seed_set;           /* false: a seed from the clock (hearth_session_seed) */
} hearth_sampling_params;

/*
 * Storage types of the KV cache (docs/kv-cache.md). f16 is exact to the
 * activations; q8_0 and q4_0 are ggml's 32-value blocks (8.5 and 4.5 bits per
 * value); rot4 and rot3 rotate each head vector (randomized Hadamard) and store
 * 4- or 3-bit codebook indices plus one f16 scale per piece. K and V may
 * differ. Measure a type on your model with `hearth perplexity --kl-divergence`.
 */
typedef enum hearth_kv_type {
    HEARTH_KV_F16 = 0,
    HEARTH_KV_Q8_0 = 1,
    HEARTH_KV_Q4_0 = 2,
    HEARTH_KV_ROT4 = 3,
    HEARTH_KV_ROT3 = 4,
    HEARTH_KV_TYPE_COUNT = 5 /* one past the last type */
} hearth_kv_type;

typedef struct hearth_session_params {
    uint32_t n_ctx;      /* positions of the KV cache; 0: min(4096, training context) */
    int32_t n_threads;   /* CPU threads; <= 0: the physical cores */
    hearth_sampling_params sampling;
    hearth_kv_type kv_type_k; /* type of the cached keys; default HEARTH_KV_F16 */
    hearth_kv_type kv_type_v; /* type of the cached values; default HEARTH_KV_F16 */
    /*
     * Devices by the names `hearth devices` lists ("cpu", "cuda0",
     * "vulkan1"), borrowed for the call; n_devices 0 (default): the CPU
     * unless a hardware GPU is present, as the CLI without --device.
     */
    const char *const *devices;
    int32_t n_devices;
    /*
     * Layers on the GPU(s): >= 0 a count (n_layer + 1 adds the output head),
     * HEARTH_GPU_LAYERS_PLAN (default): the planner decides whenever a GPU
     * takes part; as the CLI's -ngl.
     */
    int32_t n_gpu_layers;
    /*
     * Exact window of a compressed KV cache (docs/kv-cache.md): a token at
     * position t reads the K/V of positions j > t - kv_window from f16
     * copies instead of the compressed codes, for kv_window f16 rows per
     * layer and sequence. 0 (default): none; at most 2^24. A session that
     * puts attention on a device without the window (a backend that does
     * not implement it) fails with HEARTH_ERR_UNSUPPORTED.
     */
    uint32_t kv_window;
    /*
     * Sliding-window layers (Gemma 3's local layers) keep a K/V row for
     * every position, as the global layers do (llama.cpp's --swa-full).
     * false (default): they keep only their window plus 64 positions where
     * that is shorter than the context, and going back further than that
     * (a prompt that shares a long prefix with the previous one but differs
     * more than 64 tokens before its end) evaluates the prompt again from
     * its start; true trades the memory back for reusing any shared prefix.
     * Models without sliding-window layers are unaffected.
     */
    bool swa_full;
} hearth_session_params;

#define HEARTH_GPU_LAYERS_PLAN (-1)

/* Fills p with the defaults documented in the structs. */
void hearth_sampling_params_default(hearth_sampling_params *p);
void hearth_session_params_default(hearth_session_params *p);

/*
 * A conversation over model (borrowed: it must outlive the session). p NULL:
 * defaults. *out is the caller's (hearth_session_free); NULL on failure.
 * Errors: HEARTH_ERR_INVALID_ARG (a sampling field, KV type, device count or
 * layer count out of range: the message names it), HEARTH_ERR_NOT_FOUND (a
 * device name this build and machine do not offer: the message lists those
 * that exist), HEARTH_ERR_UNSUPPORTED (a weight type with no kernel on the
 * chosen device, a KV type the model's head size cannot use),
 * HEARTH_ERR_DEVICE_OOM (a manual n_gpu_layers that does not fit), HEARTH_ERR_NO_MEMORY
 * (the KV cache: n_layer * n_ctx * n_head_kv * (K + V bytes per head vector),
 * 2 * head_dim bytes each for f16).
 */
hearth_status hearth_session_create(hearth_model *model, const hearth_session_params *p,
                                    hearth_session **out);
void hearth_session_free(hearth_session *session);
/* Forgets the KV cache contents: the next generation evaluates its whole prompt. */
void hearth_session_reset(hearth_session *session);
/* Replaces the sampling parameters (and restarts the random stream). Errors as create. */
hearth_status hearth_session_set_sampling(hearth_session *session,
                                          const hearth_sampling_params *p);
/*
 * Logit bias (OpenAI's logit_bias, llama.cpp's --logit-bias): before the
 * sampling chain, bias[i] is added to the logit of token ids[i] (a repeated
 * id adds up); a bias of -100 or less bans the token (never chosen, greedy
 * included). n 0 clears it. It stays across hearth_session_set_sampling.
 * Errors: HEARTH_ERR_INVALID_ARG (an id outside [0, n_vocab), a bias that is
 * not finite, n above 2^20: nothing changes), HEARTH_ERR_NO_MEMORY.
 */
hearth_status hearth_session_set_logit_bias(hearth_session *session, const int32_t *ids,
                                            const float *bias, size_t n);
uint64_t hearth_session_seed(const hearth_session *session);
uint32_t hearth_session_n_ctx(const hearth_session *session);

/*
 * Streaming callback: called once per generated token with the text that
 * became safe to show (len may be 0 while text is held back: an incomplete
 * character or a possible stop-string start; text is not NUL-terminated and
 * only valid during the call), and at the end with token -1 for text released
 * then. Return false to stop generating at once (not an error).
 */
typedef bool (*hearth_token_callback)(void *user, const char *text, size_t len, int32_t token);

typedef enum hearth_stop_reason {
    HEARTH_STOP_NONE = 0,
    HEARTH_STOP_EOG = 1,       /* the model ended its text or turn */
    HEARTH_STOP_STRING = 2,    /* a stop string appeared (it is not emitted) */
    HEARTH_STOP_LIMIT = 3,     /* n_predict tokens were generated */
    HEARTH_STOP_CTX_FULL = 4,  /* the KV cache is full */
    HEARTH_STOP_CANCELLED = 5  /* the callback returned false */
} hearth_stop_reason;

typedef struct hearth_generate_params {
    int32_t n_predict;           /* max tokens; -1: until EOG or the context is full. default 128 */
    const char *const *stop;     /* [n_stop] strings that end generation; may be NULL */
    size_t n_stop;
    hearth_token_callback on_token; /* may be NULL */
    void *user;                  /* passed to on_token */
} hearth_generate_params;

typedef struct hearth_generate_stats {
    size_t n_prompt;        /* prompt tokens */
    size_t n_prompt_eval;   /* of those, evaluated (the rest reused from the KV cache) */
    double prompt_ms;
    size_t n_gen;           /* generated tokens (the final EOG is not counted) */
    double gen_ms;
    hearth_stop_reason stop;
} hearth_generate_stats;

void hearth_generate_params_default(hearth_generate_params *p);

/*
 * Generates a continuation of prompt (raw text, NUL-terminated: BOS added as
 * the tokenizer says, control tokens in it parsed). The KV cache keeps the
 * tokens of earlier calls: a prompt that extends the previous prompt + reply
 * only evaluates the new part. p NULL: defaults; stats may be NULL. Errors:
 * HEARTH_ERR_INVALID_ARG (empty prompt, a prompt longer than the context),
 * HEARTH_ERR_NO_MEMORY, HEARTH_ERR_INTERNAL.
 */
hearth_status hearth_generate(hearth_session *session, const char *prompt,
                              const hearth_generate_params *p, hearth_generate_stats *stats);
/* The same from token ids (ids[0..n), each in [0, n_vocab)). */
hearth_status hearth_generate_tokens(hearth_session *session, const int32_t *ids, size_t n,
                                     const hearth_generate_params *p,
                                     hearth_generate_stats *stats);

typedef struct hearth_chat_message {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* UTF-8, NUL-terminated */
} hearth_chat_message;

/*
 * Renders msgs[0..n) with the model's chat template (hearth_model_chat_format)
 * plus the opening of an assistant turn, and generates the reply, which ends
 * at the family's end-of-turn marker. Pass the whole conversation each turn:
 * earlier turns are found in the KV cache. Errors: as hearth_generate, and
 * HEARTH_ERR_INVALID_ARG for a role the template cannot express.
 */
hearth_status hearth_generate_chat(hearth_session *session, const hearth_chat_message *msgs,
                                   size_t n, const hearth_generate_params *p,
                                   hearth_generate_stats *stats);

/*
 * How hearth_embed pools a text's token vectors (numbered as GGUF's
 * {arch}.pooling_type): the model's own key (HEARTH_POOLING_MODEL, mean
 * when the file has none), the mean, the first token's (CLS), or the last
 * token's (what last-token embedding models such as Qwen3-Embedding use).
 */
typedef enum hearth_pooling {
    HEARTH_POOLING_MODEL = 0,
    HEARTH_POOLING_MEAN = 1,
    HEARTH_POOLING_CLS = 2,
    HEARTH_POOLING_LAST = 3
} hearth_pooling;

/*
 * The embedding of text (raw UTF-8, NUL-terminated; BOS added as the
 * tokenizer says, control tokens not parsed): the final norm's output for
 * each token (the LM head's input), pooled, scaled to unit L2 length, into
 * out[0..n_embd) (hearth_model_n_embd). It uses the session's KV cache: the
 * next generation evaluates its whole prompt. `hearth serve`'s
 * /v1/embeddings gives the same vector for the same text on the same devices.
 * Errors: HEARTH_ERR_INVALID_ARG (NULL arguments, n_out below n_embd, a
 * pooling out of range, a text with no tokens or longer than the context),
 * HEARTH_ERR_NO_MEMORY, a device's status.
 */
hearth_status hearth_embed(hearth_session *session, const char *text, hearth_pooling pooling,
                           float *out, size_t n_out);

#ifdef __cplusplus
}
#endif
#endif /* HEARTH_H */
