/*
 * arch-info: the architecture summary of a GGUF model, read from its metadata.
 *
 * One small struct with the hyper-parameters every consumer asks for first
 * (inspect, synth's self-check, the model loader): block count, widths, heads,
 * RoPE, vocabulary and tokenizer kind. Keys follow facts sheet §4.1/§5.1/§8.1;
 * defaults are llama.cpp's where a key is optional. Reading is lenient about
 * integer widths (u32 or u64, scalar or per-layer array) and strict about
 * meaning: a present key of a non-numeric type, or a missing required key, is
 * HEARTH_ERR_BAD_FILE naming the file and the key.
 */
#ifndef HEARTH_ARCH_INFO_H
#define HEARTH_ARCH_INFO_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"

/* Layers whose sliding-window flag arch_info can carry (gemma3 models have 18-62). */
#define ARCH_SWA_MAX_LAYERS 512u

struct arch_info {
    char arch[32];        /* general.architecture */
    uint32_t n_layer;     /* block_count */
    uint32_t n_embd;      /* embedding_length */
    uint32_t n_head;      /* attention.head_count (max over layers if per-layer) */
    uint32_t n_head_kv;   /* attention.head_count_kv; default n_head */
    uint32_t head_dim_k;  /* attention.key_length; default n_embd / n_head */
    uint32_t head_dim_v;  /* attention.value_length; default n_embd / n_head */
    uint32_t n_ff;        /* feed_forward_length (max over layers if per-layer); 0 if absent */
    uint32_t n_ctx_train; /* context_length */
    uint32_t n_rot;       /* rope.dimension_count; default head_dim_k */
    float rope_base;      /* rope.freq_base; default 10000 */
    char
        rope_scaling[16]; /* rope.scaling.type, "none" if absent; "llama3" when rope_freqs.weight */
    float rope_scale_factor; /* rope.scaling.factor; 0 if absent */
    bool has_rope_freqs;     /* rope_freqs.weight present (Llama-3.1 style scaling, §9) */
    float norm_eps;          /* attention.layer_norm_rms_epsilon; 0 if absent */
    uint32_t sliding_window; /* attention.sliding_window; 0 if absent */
    /* bit il % 64 of word il / 64: layer il is a sliding-window (local) layer (arch_swa_layers) */
    uint64_t swa_mask[ARCH_SWA_MAX_LAYERS / 64];
    uint32_t n_expert;       /* expert_count; 0 for dense */
    uint32_t n_expert_used;  /* expert_used_count */
    uint32_t n_vocab;        /* {arch}.vocab_size, else length of tokenizer.ggml.tokens */
    char tok_model[32];      /* tokenizer.ggml.model; "" if absent */
    char tok_pre[32];        /* tokenizer.ggml.pre; "default" if absent */
    bool per_layer_heads;    /* head_count / head_count_kv / feed_forward_length were arrays */
    bool tied;               /* no output.weight: token_embd is the LM head */
};

/*
 * Reads the summary. HEARTH_ERR_BAD_FILE (message names the file and key) when
 * general.architecture, block_count, embedding_length or context_length is
 * missing, a key has a type that does not convert, or the head counts are
 * inconsistent (zero, or n_head not a multiple of n_head_kv).
 */
hearth_status arch_info_read(const struct gguf_file *f, struct arch_info *out);

/*
 * Which layers attend through the sliding window (facts sheet §8.2): only
 * gemma3 with sliding_window > 0 has such layers; there
 * "{arch}.attention.sliding_window_pattern" is an array of n_layer bools
 * (true: local) or a u32 period p (layer il local unless il % p == p - 1),
 * default period 6. mask gets bit il for each local layer. The model loader
 * and the planner both take the layer kinds from here. HEARTH_ERR_BAD_FILE
 * (file and key named) for a malformed pattern or n_layer above
 * ARCH_SWA_MAX_LAYERS with local layers.
 */
hearth_status arch_swa_layers(const struct gguf_file *f, const char *arch, uint32_t n_layer,
                              uint32_t sliding_window, uint64_t mask[ARCH_SWA_MAX_LAYERS / 64]);

static inline bool arch_layer_swa(const struct arch_info *a, uint32_t il)
{
    return il < ARCH_SWA_MAX_LAYERS && (a->swa_mask[il / 64] >> (il % 64) & 1u) != 0;
}

#endif
