/*
 * model-presets: the shapes of a few real models, by name, for `hearth synth`
 * and for tests that need a model of realistic size without its weights.
 *
 * A preset is pure data (facts sheet §6, §7.7, §7.8, §8): hyper-parameters and
 * the metadata values a converter would write. The tensor list is derived from
 * it on demand (model_preset_tensor) rather than stored, so adding a preset is
 * one table row. Tensor names and shapes follow llama.cpp's converter (§4.2,
 * §8.4); ne is in ggml order (ne[0] contiguous).
 */
#ifndef HEARTH_MODEL_PRESETS_H
#define HEARTH_MODEL_PRESETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

struct model_preset {
    const char *name; /* "llama3-8b": the CLI spelling */
    const char *desc; /* "Llama-3-8B": the model it mimics */
    const char *arch; /* general.architecture: llama, qwen2, qwen3, gemma3 */
    uint32_t n_layer;
    uint32_t n_embd;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim; /* key and value length per head */
    uint32_t n_ff;
    uint32_t n_vocab;
    uint32_t n_ctx;           /* {arch}.context_length (training context) */
    float rope_base;          /* {arch}.rope.freq_base (global layers for gemma3) */
    float rope_llama3_factor; /* > 0: Llama-3.1 style scaling stored as rope_freqs.weight (§9) */
    float norm_eps;           /* RMSNorm epsilon */
    bool tied;                /* no output.weight: token_embd is the LM head */
    bool qkv_bias;            /* attn_q/k/v biases (qwen2) */
    uint32_t sliding_window;  /* gemma3 local-attention window; 0 = none */
    const char *tok_pre;      /* the real model's tokenizer.ggml.pre, for reference */
};

/* Looks up a preset by name (case-insensitive); NOT_FOUND lists the presets. */
hearth_status model_preset_find(const char *name, const struct model_preset **out);
size_t model_preset_count(void);
const struct model_preset *model_preset_at(size_t i);
/* "smollm2-135m, llama3-1b, ..." into buf. */
void model_preset_list(char *buf, size_t size);

enum preset_tensor_kind {
    PRESET_T_MATRIX,     /* a 2-D weight: random, quantized by the mix */
    PRESET_T_NORM,       /* 1-D norm gain: F32, all 1.0 */
    PRESET_T_BIAS,       /* 1-D bias: F32, small random */
    PRESET_T_ROPE_FREQS, /* [head_dim/2] F32 llama3 frequency divisors */
};

struct preset_tensor {
    char name[64];
    uint32_t n_dims;
    uint64_t ne[4]; /* ggml order; unused dims 1 */
    enum preset_tensor_kind kind;
};

/* Number of tensors of the model (e.g. 291 for llama3-8b). */
size_t model_preset_n_tensors(const struct model_preset *p);
/*
 * Tensor idx in file order: token_embd, [rope_freqs], output_norm, [output], then
 * the blocks in order. false if idx is out of range.
 */
bool model_preset_tensor(const struct model_preset *p, size_t idx, struct preset_tensor *out);
/* Total parameter count (sum of element counts of all tensors). */
uint64_t model_preset_n_params(const struct model_preset *p);

/*
 * The llama3 RoPE divisors f_k (§9.2) for k in [0, head_dim/2), computed in
 * float32 from rope_base, factor, low 1, high 4, original context 8192.
 * out holds head_dim/2 floats.
 */
void model_preset_llama3_rope_freqs(const struct model_preset *p, float *out);

#endif
