/*
 * quant-mix: llama.cpp's quantization mixes ("Q4_K_M", ...) as data and rules.
 *
 * A mix (llama.cpp calls it a file type, llama_ftype) names a default block type
 * and a set of per-tensor exceptions: the LM head gets Q6_K, attn_v and ffn_down
 * get more bits in about half the layers, and so on (facts sheet §7). Given the
 * shape of a model (quant_mix_ctx) and one tensor (name, ne), quant_mix_type_for
 * returns the type llama-quantize would give it, including the fallback to a
 * 32-block type when ne[0] is not a multiple of the chosen type's block (§7.6).
 *
 * The rules are evaluated statelessly: llama.cpp counts attn_v / ffn_down
 * tensors as it visits them; for every model with one such tensor per block
 * that counter equals the block number, which we parse from "blk.N." instead.
 * That keeps the function pure (any tensor order, no context mutation) at the
 * cost of not modelling files with several attn_v per block (none exist among
 * the architectures hearth loads). The 2024-2025 rules are encoded (fused
 * attn_qkv via R10, Q2_K/Q3_K falling back to IQ4_NL); the 2026 differences
 * change no sizes (§10). The lattice mixes (IQ1_*, IQ2_*, IQ3_*) are offered
 * for sizing and random-weight files; a real llama-quantize run of most of them
 * needs an importance matrix (quant_mix.needs_imatrix), which only changes the
 * values, except for IQ3_XXS where it also changes attn_v and ffn_down.
 * Q2_K_S (also imatrix-only) is still not offered.
 */
#ifndef HEARTH_QUANT_MIX_H
#define HEARTH_QUANT_MIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

/* llama_ftype ids as stored in general.file_type (facts sheet §2). */
enum quant_ftype {
    QUANT_FTYPE_ALL_F32 = 0,
    QUANT_FTYPE_F16 = 1,
    QUANT_FTYPE_Q4_0 = 2,
    QUANT_FTYPE_Q4_1 = 3,
    QUANT_FTYPE_Q8_0 = 7,
    QUANT_FTYPE_Q5_0 = 8,
    QUANT_FTYPE_Q5_1 = 9,
    QUANT_FTYPE_Q2_K = 10,
    QUANT_FTYPE_Q3_K_S = 11,
    QUANT_FTYPE_Q3_K_M = 12,
    QUANT_FTYPE_Q3_K_L = 13,
    QUANT_FTYPE_Q4_K_S = 14,
    QUANT_FTYPE_Q4_K_M = 15,
    QUANT_FTYPE_Q5_K_S = 16,
    QUANT_FTYPE_Q5_K_M = 17,
    QUANT_FTYPE_Q6_K = 18,
    QUANT_FTYPE_IQ2_XXS = 19,
    QUANT_FTYPE_IQ2_XS = 20,
    QUANT_FTYPE_IQ3_XS = 22,
    QUANT_FTYPE_IQ3_XXS = 23,
    QUANT_FTYPE_IQ1_S = 24,
    QUANT_FTYPE_IQ4_NL = 25,
    QUANT_FTYPE_IQ3_S = 26,
    QUANT_FTYPE_IQ3_M = 27,
    QUANT_FTYPE_IQ2_S = 28,
    QUANT_FTYPE_IQ2_M = 29,
    QUANT_FTYPE_IQ4_XS = 30,
    QUANT_FTYPE_IQ1_M = 31,
    QUANT_FTYPE_BF16 = 32,
};

struct quant_mix {
    const char *name;          /* canonical spelling: "Q4_K_M", "F16", "ALL_F32" */
    enum quant_ftype ftype;    /* value of general.file_type */
    hearth_dtype default_type; /* type of a matrix no rule singles out */
    /* llama-quantize refuses to make this mix without an importance matrix (IQ1/IQ2 types;
     * IQ3_XXS at the 2026 head); quant_mix_ctx_init then assumes one */
    bool needs_imatrix;
};

/* Case-insensitive lookup ("q4_k_m", "f32" is an alias of ALL_F32); NOT_FOUND lists the names. */
hearth_status quant_mix_from_name(const char *name, const struct quant_mix **out);
/* The mix for a general.file_type value; NULL if hearth does not know or offer it. */
const struct quant_mix *quant_mix_from_ftype(uint32_t ftype);
/* Enumeration of the offered mixes, i in [0, quant_mix_count()). */
size_t quant_mix_count(void);
const struct quant_mix *quant_mix_at(size_t i);
/* "Q4_0, Q4_1, ..." into buf (for usage and error messages). */
void quant_mix_list(char *buf, size_t size);

/* The model-level facts the rules look at. Fill with quant_mix_ctx_init. */
struct quant_mix_ctx {
    const struct quant_mix *mix;
    char arch[32];    /* general.architecture; "falcon" has its own rules */
    uint32_t n_layer; /* {arch}.block_count: the n of use_more_bits */
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t n_expert; /* 0 for dense models */
    bool has_output;   /* false: tied, token_embd gets the output rule R1 */
    bool imatrix;      /* assume an importance matrix (changes Q4_0/Q5_0/IQ4/IQ3_XXS rules);
                        * quant_mix_ctx_init sets it to mix->needs_imatrix */
    bool is_70b;       /* llama.cpp's "70B" size label (attn_v bump to Q5_K) */
};

/*
 * Fills ctx and derives is_70b the way llama.cpp labels sizes for the archs we
 * know (llama/qwen2: 80 blocks; llama additionally needs n_head != n_head_kv).
 * ctx->imatrix starts as mix->needs_imatrix; callers may override it after.
 * INVALID_ARG for n_head_kv == 0 or n_head not a multiple of it.
 */
hearth_status quant_mix_ctx_init(struct quant_mix_ctx *ctx, const struct quant_mix *mix,
                                 const char *arch, uint32_t n_layer, uint32_t n_head,
                                 uint32_t n_head_kv, uint32_t n_expert, bool has_output);

/* Whether llama-quantize would touch the tensor at all (>= 2 dims, "weight", not a norm/router). */
bool quant_mix_is_quantizable(const char *name, uint32_t n_dims);

/*
 * The type tensor `name` of shape ne[0..n_dims-1] gets under ctx's mix. Tensors
 * that are not quantizable get F32 (the converter writes 1-D tensors as F32).
 * HEARTH_ERR_UNSUPPORTED when no type fits ne[0] (a 32-block type with ne[0]
 * not a multiple of 32 has no fallback, as in llama.cpp).
 */
hearth_status quant_mix_type_for(const struct quant_mix_ctx *ctx, const char *name, uint32_t n_dims,
                                 const uint64_t *ne, hearth_dtype *out);

/* llama.cpp's use_more_bits(i, n): first and last eighth plus every third layer between. */
bool quant_mix_use_more_bits(uint32_t i, uint32_t n);

#endif
