/*
 * model-presets: a table of real model shapes and the tensor lists they imply.
 *
 * Numbers come from the facts sheet (§6 SmolLM2, §7.7 Llama-3, §7.8 others, §8
 * Gemma 3) and, for Qwen3, the models' published config.json. The per-block tensor list is a small per-architecture table of
 * (suffix, shape rule); model_preset_tensor expands index -> (name, ne) by
 * arithmetic, so enumerating a 723-tensor model allocates nothing.
 */
#include "model-presets.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "err.h"

static const struct model_preset presets[] = {
    /* name, desc, arch, L, embd, head, kv, hd, ff, vocab, ctx, base, llama3, eps, tied, bias,
       swa, pre */
    {"smollm2-135m", "SmolLM2-135M", "llama", 30, 576, 9, 3, 64, 1536, 49152, 8192, 100000.0f, 0.0f,
     1e-5f, true, false, 0, "smollm"},
    {"llama3-1b", "Llama-3.2-1B", "llama", 16, 2048, 32, 8, 64, 8192, 128256, 131072, 500000.0f,
     32.0f, 1e-5f, true, false, 0, "llama-bpe"},
    {"llama3-8b", "Llama-3-8B", "llama", 32, 4096, 32, 8, 128, 14336, 128256, 8192, 500000.0f, 0.0f,
     1e-5f, false, false, 0, "llama-bpe"},
    {"llama3.1-8b", "Llama-3.1-8B", "llama", 32, 4096, 32, 8, 128, 14336, 128256, 131072, 500000.0f,
     8.0f, 1e-5f, false, false, 0, "llama-bpe"},
    {"llama3-70b", "Llama-3-70B", "llama", 80, 8192, 64, 8, 128, 28672, 128256, 8192, 500000.0f,
     0.0f, 1e-5f, false, false, 0, "llama-bpe"},
    {"mistral-7b", "Mistral-7B-v0.1", "llama", 32, 4096, 32, 8, 128, 14336, 32000, 32768, 10000.0f,
     0.0f, 1e-5f, false, false, 0, "default"},
    {"qwen2-7b", "Qwen2-7B", "qwen2", 28, 3584, 28, 4, 128, 18944, 152064, 131072, 1000000.0f, 0.0f,
     1e-6f, false, true, 0, "qwen2"},
    {"qwen3-0.6b", "Qwen3-0.6B", "qwen3", 28, 1024, 16, 8, 128, 3072, 151936, 40960, 1000000.0f,
     0.0f, 1e-6f, true, false, 0, "qwen2"},
    {"qwen3-8b", "Qwen3-8B", "qwen3", 36, 4096, 32, 8, 128, 12288, 151936, 40960, 1000000.0f, 0.0f,
     1e-6f, false, false, 0, "qwen2"},
    {"qwen3-32b", "Qwen3-32B", "qwen3", 64, 5120, 64, 8, 128, 25600, 151936, 40960, 1000000.0f,
     0.0f, 1e-6f, false, false, 0, "qwen2"},
    {"gemma3-270m", "Gemma-3-270M", "gemma3", 18, 640, 4, 1, 256, 2048, 262144, 32768, 1000000.0f,
     0.0f, 1e-6f, true, false, 512, "default"},
};

#define PRESET_COUNT (sizeof presets / sizeof presets[0])

size_t model_preset_count(void)
{
    return PRESET_COUNT;
}

const struct model_preset *model_preset_at(size_t i)
{
    return i < PRESET_COUNT ? &presets[i] : NULL;
}

void model_preset_list(char *buf, size_t size)
{
    size_t used = 0;
    if (size == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < PRESET_COUNT && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", presets[i].name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

hearth_status model_preset_find(const char *name, const struct model_preset **out)
{
    *out = NULL;
    for (size_t i = 0; name && i < PRESET_COUNT; i++) {
        if (!strcasecmp(name, presets[i].name)) {
            *out = &presets[i];
            return HEARTH_OK;
        }
    }
    char names[256];
    model_preset_list(names, sizeof names);
    return err_set(HEARTH_ERR_NOT_FOUND, "unknown preset '%s' (known: %s)", name ? name : "(null)",
                   names);
}

/* Shape rules of per-block tensors, in units the preset defines. */
enum dim {
    D_ONE,
    D_EMBD, /* n_embd */
    D_Q,    /* n_head * head_dim */
    D_KV,   /* n_head_kv * head_dim */
    D_FF,   /* n_ff */
    D_HEAD, /* head_dim */
};

struct block_tensor {
    const char *suffix;
    enum dim d0, d1; /* d1 == D_ONE: 1-D */
    enum preset_tensor_kind kind;
};

static const struct block_tensor llama_block[] = {
    {"attn_norm.weight", D_EMBD, D_ONE, PRESET_T_NORM},
    {"attn_q.weight", D_EMBD, D_Q, PRESET_T_MATRIX},
    {"attn_k.weight", D_EMBD, D_KV, PRESET_T_MATRIX},
    {"attn_v.weight", D_EMBD, D_KV, PRESET_T_MATRIX},
    {"attn_output.weight", D_Q, D_EMBD, PRESET_T_MATRIX},
    {"ffn_norm.weight", D_EMBD, D_ONE, PRESET_T_NORM},
    {"ffn_gate.weight", D_EMBD, D_FF, PRESET_T_MATRIX},
    {"ffn_up.weight", D_EMBD, D_FF, PRESET_T_MATRIX},
    {"ffn_down.weight", D_FF, D_EMBD, PRESET_T_MATRIX},
};

static const struct block_tensor qwen2_block[] = {
    {"attn_norm.weight", D_EMBD, D_ONE, PRESET_T_NORM},
    {"attn_q.weight", D_EMBD, D_Q, PRESET_T_MATRIX},
    {"attn_q.bias", D_Q, D_ONE, PRESET_T_BIAS},
    {"attn_k.weight", D_EMBD, D_KV, PRESET_T_MATRIX},
    {"attn_k.bias", D_KV, D_ONE, PRESET_T_BIAS},
    {"attn_v.weight", D_EMBD, D_KV, PRESET_T_MATRIX},
    {"attn_v.bias", D_KV, D_ONE, PRESET_T_BIAS},
    {"attn_output.weight", D_Q, D_EMBD, PRESET_T_MATRIX},
    {"ffn_norm.weight", D_EMBD, D_ONE, PRESET_T_NORM},
    {"ffn_gate.weight", D_EMBD, D_FF, PRESET_T_MATRIX},
    {"ffn_up.weight", D_EMBD, D_FF, PRESET_T_MATRIX},
    {"ffn_down.weight", D_FF, D_EMBD, PRESET_T_MATRIX},
};

/* qwen2's block without the biases, plus per-head QK-norms (in the converter's order) */
static const struct block_tensor qwen3_block[] = {
    {"attn_norm.weight", D_EMBD, D_ONE, PRESET_T_NORM},
    {"attn_q.weight", D_EMBD, D_Q, PRESET_T_MATRIX},
    {"attn_k.weight", D_EMBD, D_KV, PRESET_T_MATRIX},
    {"attn_v.weight", D_EMBD, D_KV, PRESET_T_MATRIX},
    {"attn_q_norm.weight", D_HEAD, D_ONE, PRESET_T_NORM},
    {"attn_k_norm.weight", D_HEAD, D_ONE, PRESET_T_NORM},
    {"attn_output.weight", D_Q, D_EMBD, PRESET_T_MATRIX},
    {"ffn_norm.weight", D_EMBD, D_ONE, PRESET_T_NORM},
    {"ffn_gate.weight", D_EMBD, D_FF, PRESET_T_MATRIX},
    {"ffn_up.weight", D_EMBD, D_FF, PRESET_T_MATRIX},
    {"ffn_down.weight", D_FF, D_EMBD, PRESET_T_MATRIX},
};

static const struct block_tensor gemma3_block[] = {
    {"attn_norm.weight", D_EMBD, D_ONE, PRESET_T_NORM},
    {"attn_q.weight", D_EMBD, D_Q, PRESET_T_MATRIX},
    {"attn_k.weight", D_EMBD, D_KV, PRESET_T_MATRIX},
    {"attn_v.weight", D_EMBD, D_KV, PRESET_T_MATRIX},
    {"attn_q_norm.weight", D_HEAD, D_ONE, PRESET_T_NORM},
    {"attn_k_norm.weight", D_HEAD, D_ONE, PRESET_T_NORM},
    {"attn_output.weight", D_Q, D_EMBD, PRESET_T_MATRIX},
    {"post_attention_norm.weight", D_EMBD, D_ONE, PRESET_T_NORM},
    {"ffn_norm.weight", D_EMBD, D_ONE, PRESET_T_NORM},
    {"ffn_gate.weight", D_EMBD, D_FF, PRESET_T_MATRIX},
    {"ffn_up.weight", D_EMBD, D_FF, PRESET_T_MATRIX},
    {"ffn_down.weight", D_FF, D_EMBD, PRESET_T_MATRIX},
    {"post_ffw_norm.weight", D_EMBD, D_ONE, PRESET_T_NORM},
};

static const struct block_tensor *block_list(const struct model_preset *p, size_t *n)
{
    if (!strcmp(p->arch, "qwen2") || p->qkv_bias) {
        *n = sizeof qwen2_block / sizeof qwen2_block[0];
        return qwen2_block;
    }
    if (!strcmp(p->arch, "qwen3")) {
        *n = sizeof qwen3_block / sizeof qwen3_block[0];
        return qwen3_block;
    }
    if (!strcmp(p->arch, "gemma3")) {
        *n = sizeof gemma3_block / sizeof gemma3_block[0];
        return gemma3_block;
    }
    *n = sizeof llama_block / sizeof llama_block[0];
    return llama_block;
}

static uint64_t dim_value(const struct model_preset *p, enum dim d)
{
    switch (d) {
    case D_EMBD:
        return p->n_embd;
    case D_Q:
        return (uint64_t)p->n_head * p->head_dim;
    case D_KV:
        return (uint64_t)p->n_head_kv * p->head_dim;
    case D_FF:
        return p->n_ff;
    case D_HEAD:
        return p->head_dim;
    default:
        return 1;
    }
}

static size_t n_globals(const struct model_preset *p)
{
    return 2 + (p->rope_llama3_factor > 0.0f) + !p->tied;
}

size_t model_preset_n_tensors(const struct model_preset *p)
{
    size_t nb;
    block_list(p, &nb);
    return n_globals(p) + (size_t)p->n_layer * nb;
}

static void set_tensor(struct preset_tensor *t, const char *name, uint64_t ne0, uint64_t ne1,
                       enum preset_tensor_kind kind)
{
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = ne1 > 1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = 1;
    t->ne[3] = 1;
    t->kind = kind;
}

bool model_preset_tensor(const struct model_preset *p, size_t idx, struct preset_tensor *out)
{
    memset(out, 0, sizeof *out);
    size_t g = 0;
    if (idx == g++) {
        set_tensor(out, "token_embd.weight", p->n_embd, p->n_vocab, PRESET_T_MATRIX);
        return true;
    }
    if (p->rope_llama3_factor > 0.0f && idx == g++) {
        set_tensor(out, "rope_freqs.weight", p->head_dim / 2, 1, PRESET_T_ROPE_FREQS);
        return true;
    }
    if (idx == g++) {
        set_tensor(out, "output_norm.weight", p->n_embd, 1, PRESET_T_NORM);
        return true;
    }
    if (!p->tied && idx == g++) {
        set_tensor(out, "output.weight", p->n_embd, p->n_vocab, PRESET_T_MATRIX);
        return true;
    }
    size_t nb;
    const struct block_tensor *bl = block_list(p, &nb);
    size_t rel = idx - g;
    if (idx < g || rel / nb >= p->n_layer)
        return false;
    const struct block_tensor *bt = &bl[rel % nb];
    char name[64];
    snprintf(name, sizeof name, "blk.%zu.%s", rel / nb, bt->suffix);
    set_tensor(out, name, dim_value(p, bt->d0), dim_value(p, bt->d1), bt->kind);
    return true;
}

uint64_t model_preset_n_params(const struct model_preset *p)
{
    uint64_t total = 0;
    struct preset_tensor t;
    for (size_t i = 0; model_preset_tensor(p, i, &t); i++)
        total += t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3];
    return total;
}

void model_preset_llama3_rope_freqs(const struct model_preset *p, float *out)
{
    const float low = 1.0f, high = 4.0f, l0 = 8192.0f;
    const float factor = p->rope_llama3_factor > 0.0f ? p->rope_llama3_factor : 1.0f;
    const float lambda_hi = l0 / high, lambda_lo = l0 / low;
    uint32_t d = p->head_dim;
    for (uint32_t k = 0; k < d / 2; k++) {
        float omega = powf(p->rope_base, -(float)(2 * k) / (float)d);
        float lambda = 2.0f * (float)M_PI / omega;
        if (lambda < lambda_hi) {
            out[k] = 1.0f;
        } else if (lambda > lambda_lo) {
            out[k] = factor;
        } else {
            float s = (l0 / lambda - low) / (high - low);
            out[k] = 1.0f / ((1.0f - s) / factor + s);
        }
    }
}
