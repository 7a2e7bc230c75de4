/*
 * model: hyperparameters and weight bindings of a decoder-only transformer
 * read from a GGUF file (architectures llama, qwen2, qwen3, gemma3).
 *
 * model_load maps the file (core/gguf.h) and binds every tensor the
 * architecture needs by name, checking its shape and type; weights are never
 * copied: each model_weight points into the mapping, and every backend reads
 * from there (or uploads from there). Everything architecture-specific that
 * the forward pass needs (RoPE mode and bases per layer, attention scale,
 * sliding-window layers, embedding scale, which optional tensors exist) is
 * resolved here once, so the forward passes contain no string compares.
 */
#ifndef HEARTH_MODEL_H
#define HEARTH_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "hearth.h"

enum model_arch {
    MODEL_ARCH_LLAMA = 0,
    MODEL_ARCH_QWEN2,
    MODEL_ARCH_GEMMA3,
    MODEL_ARCH_QWEN3,
    MODEL_ARCH_COUNT
};

/* The rotation pairing (facts sheet §4.4). */
enum model_rope_mode {
    /* adjacent pairs (2k, 2k+1): llama, whose Q/K rows the converter permuted */
    MODEL_ROPE_NORMAL = 0,
    MODEL_ROPE_NEOX = 2    /* halves (k, k + n_rot/2): qwen2, qwen3, gemma3 */
};

enum model_ffn_act { MODEL_FFN_SILU = 0, MODEL_FFN_GELU_TANH };

struct model_hparams {
    enum model_arch arch;
    uint32_t n_layer;
    uint32_t n_embd;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim;    /* key_length = value_length (per head) */
    uint32_t n_ff;
    uint32_t n_vocab;     /* rows of token_embd */
    uint32_t n_ctx_train;
    uint32_t pooling_type; /* {arch}.pooling_type: 0 none/absent, 1 mean, 2 cls, 3 last */
    uint32_t n_rot;       /* rotary dims per head (<= head_dim, even) */
    float norm_eps;
    float rope_base;       /* base of global (or all) layers */
    float rope_base_local; /* base of sliding-window layers (gemma3) */
    float rope_freq_scale; /* 1/linear scaling factor, global layers only */
    enum model_rope_mode rope_mode;
    float attn_scale;      /* multiplies q·k */
    float embd_scale;      /* multiplies the token embedding (sqrt(n_embd) for gemma3, else 1) */
    uint32_t sliding_window; /* window of local layers in positions (0: none) */
    enum model_ffn_act ffn_act;
    bool qk_norm;         /* per-head RMSNorm of q and k before RoPE (gemma3, qwen3) */
    bool post_norms;      /* post-attention and post-FFN RMSNorms (gemma3) */
};

/*
 * A bound tensor. For a matrix: n_out rows (ne[1]) of n_in elements (ne[0]),
 * row r at data + r * row_bytes, in `type`'s block format. For a vector
 * (norm weight, bias): n_out == 1, n_in elements, always F32. data == NULL
 * for an optional tensor that is absent.
 */
struct model_weight {
    const void *data;
    hearth_dtype type;
    int64_t n_in;
    int64_t n_out;
    size_t row_bytes;
};

struct model_layer {
    struct model_weight attn_norm;      /* [n_embd] */
    /* wq: n_embd -> n_head*hd; wk, wv: n_embd -> n_kv*hd; wo: n_head*hd -> n_embd */
    struct model_weight wq, wk, wv, wo;
    struct model_weight bq, bk, bv, bo; /* optional biases [n_head*hd], [n_kv*hd] x2, [n_embd] */
    struct model_weight q_norm, k_norm; /* [head_dim], gemma3 and qwen3 only */
    /*
     * q_norm and k_norm through kvq_qk_balance (F32, model-owned): what a layer
     * whose K cache holds rotated codes uses instead (model_qk_norms).
     */
    struct model_weight q_norm_bal, k_norm_bal;
    struct model_weight post_attn_norm; /* [n_embd], gemma3 only */
    struct model_weight ffn_norm;       /* [n_embd] (gemma3: the pre-FFN norm) */
    struct model_weight ffn_gate, ffn_up; /* [n_embd -> n_ff] */
    struct model_weight ffn_down;         /* [n_ff -> n_embd] */
    struct model_weight post_ffn_norm;    /* [n_embd], gemma3 only */
    bool is_swa;          /* sliding-window (local) layer */
    float rope_base;      /* base used by this layer */
    float rope_freq_scale;/* frequency scale used by this layer */
};

struct model {
    struct gguf_file *gguf; /* the mapping every weight points into */
    bool owns_gguf;
    struct model_hparams hp;
    struct model_weight tok_embd;    /* [n_embd, n_vocab]: row t = embedding of token t */
    struct model_weight output_norm; /* [n_embd] */
    struct model_weight output;      /* [n_embd -> n_vocab]; == tok_embd when tied */
    struct model_weight rope_freqs;  /* optional [n_rot/2] divisors of θ (llama3 scaling) */
    struct model_layer *layers;      /* [n_layer] */
    float *rope_divs_owned;          /* [n_rot/2] computed llama3 divisors, or NULL */
    float *qk_bal_owned;             /* [n_layer][2][head_dim] balanced QK-norms, or NULL */
};

/* Opens path, reads the hyperparameters and binds the tensors. */
hearth_status model_load(const char *path, struct model **out);
/*
 * The same from an already open file; f is borrowed and must outlive the model
 * (the caller closes it after model_free).
 */
hearth_status model_load_gguf(struct gguf_file *f, struct model **out);
void model_free(struct model *m);

/*
 * The seed of the rotated KV types' transforms for this model
 * (kvq_model_seed of its architecture and shape, written as text so every
 * machine derives the same value). Every backend holding a layer's cache
 * uses it, so caches agree across devices.
 */
uint64_t model_kv_seed(const struct model *m);

/*
 * The QK-norm weights layer il's attention applies (data NULL for a model
 * without QK-norm): the balanced pair where its K cache holds rotated codes
 * (rotated_codes: a rotated K type and a layer that keeps codes,
 * plan_kv_layer_codes), which leaves exact scores unchanged and moves the
 * codes' error off the channels the queries weigh (kv-balance.c); the model's
 * own otherwise, so f16, q8_0 and q4_0 caches and ring-only layers compute
 * exactly what they did.
 */
void model_qk_norms(const struct model *m, uint32_t il, bool rotated_codes,
                    const struct model_weight **qn, const struct model_weight **kn);

/* "llama", "qwen2", "gemma3", "qwen3". */
const char *model_arch_name(enum model_arch a);

/*
 * Llama-3.1-style RoPE divisors (facts sheet §9.2) for k < n_rot/2: 1 for short
 * wavelengths, `factor` for long ones, a smooth blend between; computed in
 * float32 like the converter that writes rope_freqs.weight.
 */
void model_llama3_rope_divisors(uint32_t n_rot, float base, float factor, float low_freq_factor,
                                float high_freq_factor, float orig_ctx, float *out);

/* Dequantizes row `row` of a bound matrix into out[n_in]. */
hearth_status model_weight_row(const struct model_weight *w, int64_t row, float *out);

#endif
