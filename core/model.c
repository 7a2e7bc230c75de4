/*
 * model: GGUF metadata -> hyperparameters, tensor names -> bound weights.
 *
 * Every value the forward pass relies on is checked here, once, so that the
 * hot loops can trust it: head_dim * n_head and the KV width match the
 * projection shapes, every matrix's row length is a whole number of blocks,
 * norm weights and biases are F32 vectors of the right length. Errors name
 * the file and the key or tensor and say what was expected versus found.
 *
 * Per-architecture facts (facts sheet §4, §6, §8): llama rotates adjacent
 * pairs (the converter permuted Q/K rows), qwen2 rotates halves and has Q/K/V
 * biases, qwen3 rotates halves and norms q and k per head before RoPE with
 * the weights as stored (no biases, no post-norms; head_dim comes from
 * key_length, 128, which for most sizes is not n_embd/n_head), gemma3 rotates
 * halves, norms q and k per head, has post-norms,
 * GELU-tanh, embeddings scaled by sqrt(n_embd), local layers (l % 6 < 5 by
 * default) with window `sliding_window` and base 10000, global layers with
 * rope.freq_base and the linear scaling factor, and attention scale
 * 1/sqrt(head_dim) except for the 62-layer 27B (1/sqrt(n_embd/n_head)).
 * Gemma3 norm weights already contain the +1 (§8.6): used as stored.
 *
 * Per-layer hyperparameter arrays (some GGUFs store head_count per layer) are
 * accepted only when every entry is equal; anything else is reported as
 * unsupported rather than silently using the first value.
 */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch-info.h"
#include "err.h"
#include "kv-quant.h"
#include "quant.h"

static const char *const arch_names[MODEL_ARCH_COUNT] = {"llama", "qwen2", "gemma3", "qwen3"};

uint64_t model_kv_seed(const struct model *m)
{
    char id[160];
    int n = snprintf(id, sizeof id, "hearth-kv %s L%u E%u H%u/%u D%u V%u",
                     model_arch_name(m->hp.arch), m->hp.n_layer, m->hp.n_embd, m->hp.n_head,
                     m->hp.n_head_kv, m->hp.head_dim, m->hp.n_vocab);
    return kvq_model_seed(id, n > 0 ? (size_t)n : 0);
}

const char *model_arch_name(enum model_arch a)
{
    return (unsigned)a < MODEL_ARCH_COUNT ? arch_names[a] : "unknown";
}

struct loader {
    struct gguf_file *f;
    const char *arch; /* "llama" etc. */
    char key[256];
    bool llama3;      /* rope.scaling.type = "llama3": divisors from keys, not a tensor */
};

static const char *lkey(struct loader *L, const char *suffix)
{
    snprintf(L->key, sizeof L->key, "%s.%s", L->arch, suffix);
    return L->key;
}

/*
 * A u32 hyperparameter "{arch}.suffix": scalar, or an array of equal integers.
 * Absent: *out = def if !required, else an error naming the key.
 */
static hearth_status get_hp_u32(struct loader *L, const char *suffix, bool required, uint32_t def,
                                uint32_t *out)
{
    const char *key = lkey(L, suffix);
    const struct gguf_kv *kv = gguf_find_kv(L->f, key);
    if (!kv) {
        if (required)
            return err_set(HEARTH_ERR_BAD_FILE, "%s: required key '%s' is missing", L->f->path,
                           key);
        *out = def;
        return HEARTH_OK;
    }
    if (kv->type != GGUF_VT_ARRAY) {
        hearth_status st = gguf_get_u32(L->f, key, out);
        if (st != HEARTH_OK)
            return st;
        return HEARTH_OK;
    }
    size_t esz = gguf_vtype_size(kv->arr_type);
    if (esz == 0 || kv->arr_type == GGUF_VT_FLOAT32 || kv->arr_type == GGUF_VT_FLOAT64 ||
        kv->arr_n == 0)
        return err_set(HEARTH_ERR_BAD_FILE, "%s: key '%s': expected a u32 or an array of integers",
                       L->f->path, key);
    uint64_t first = 0;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        uint64_t v = 0;
        memcpy(&v, kv->data + i * esz, esz); /* little-endian: low bytes first */
        if (i == 0)
            first = v;
        else if (v != first)
            return err_set(HEARTH_ERR_UNSUPPORTED,
                           "%s: key '%s': per-layer values differ (entry 0 = %llu, entry %llu = "
                           "%llu); only uniform layers are supported",
                           L->f->path, key, (unsigned long long)first, (unsigned long long)i,
                           (unsigned long long)v);
    }
    if (first > UINT32_MAX)
        return err_set(HEARTH_ERR_BAD_FILE, "%s: key '%s': value %llu does not fit in u32",
                       L->f->path, key, (unsigned long long)first);
    *out = (uint32_t)first;
    return HEARTH_OK;
}

static hearth_status get_hp_f32(struct loader *L, const char *suffix, bool required, float def,
                                float *out)
{
    const char *key = lkey(L, suffix);
    if (!gguf_find_kv(L->f, key)) {
        if (required)
            return err_set(HEARTH_ERR_BAD_FILE, "%s: required key '%s' is missing", L->f->path,
                           key);
        *out = def;
        return HEARTH_OK;
    }
    return gguf_get_f32(L->f, key, out);
}

static void fmt_shape(char *buf, size_t cap, const struct gguf_tensor *t)
{
    int n = snprintf(buf, cap, "[");
    for (uint32_t d = 0; d < t->n_dims && n > 0 && (size_t)n < cap; d++)
        n += snprintf(buf + n, cap - (size_t)n, "%s%llu", d ? ", " : "",
                      (unsigned long long)t->ne[d]);
    if (n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, "]");
}

/*
 * Binds tensor `name`. n_out == 0 binds a 1-D F32 vector of n_in elements;
 * otherwise a matrix ne = [n_in, n_out] of any type hearth can compute with.
 * Absent and !required: w->data = NULL, OK.
 */
static hearth_status bind(struct loader *L, const char *name, int64_t n_in, int64_t n_out,
                          bool required, struct model_weight *w)
{
    memset(w, 0, sizeof *w);
    const struct gguf_tensor *t = gguf_find_tensor(L->f, name);
    if (!t) {
        if (!required)
            return HEARTH_OK;
        return err_set(HEARTH_ERR_BAD_FILE, "%s: tensor '%s' is missing (required by arch %s)",
                       L->f->path, name, L->arch);
    }
    bool vec = n_out == 0;
    bool shape_ok = t->ne[0] == (uint64_t)n_in && t->ne[2] == 1 && t->ne[3] == 1 &&
                    t->ne[1] == (uint64_t)(vec ? 1 : n_out);
    if (!shape_ok) {
        char found[96];
        fmt_shape(found, sizeof found, t);
        if (vec)
            return err_set(HEARTH_ERR_BAD_FILE, "%s: tensor '%s': expected shape [%lld], found %s",
                           L->f->path, name, (long long)n_in, found);
        return err_set(HEARTH_ERR_BAD_FILE,
                       "%s: tensor '%s': expected shape [%lld, %lld], found %s", L->f->path, name,
                       (long long)n_in, (long long)n_out, found);
    }
    const struct quant_traits *qt = quant_get(t->type);
    if (vec && t->type != HEARTH_DTYPE_F32) {
        const char *tn = hearth_dtype_name(t->type);
        return err_set(HEARTH_ERR_UNSUPPORTED, "%s: tensor '%s': type %s, expected F32", L->f->path,
                       name, tn ? tn : "?");
    }
    if (!qt || !qt->to_float) {
        const char *tn = hearth_dtype_name(t->type);
        return err_set(HEARTH_ERR_UNSUPPORTED, "%s: tensor '%s': type %s (id %d) is not supported",
                       L->f->path, name, tn ? tn : "?", (int)t->type);
    }
    uint64_t rb = 0;
    if (!quant_row_bytes(t->type, t->ne[0], &rb))
        return err_set(HEARTH_ERR_BAD_FILE,
                       "%s: tensor '%s': row length %llu is not a multiple of the %s block (%lld)",
                       L->f->path, name, (unsigned long long)t->ne[0], qt->name,
                       (long long)qt->blck);
    int64_t rows = vec ? 1 : n_out;
    if (rb * (uint64_t)rows > t->nbytes)
        return err_set(HEARTH_ERR_BAD_FILE, "%s: tensor '%s': %llu bytes, expected %llu",
                       L->f->path, name, (unsigned long long)t->nbytes,
                       (unsigned long long)(rb * (uint64_t)rows));
    w->data = t->data;
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = rows;
    w->row_bytes = (size_t)rb;
    return HEARTH_OK;
}

static hearth_status bind_layer(struct loader *L, int il, const char *base, int64_t n_in,
                                int64_t n_out, bool required, struct model_weight *w)
{
    char name[128];
    snprintf(name, sizeof name, "blk.%d.%s", il, base);
    return bind(L, name, n_in, n_out, required, w);
}

static hearth_status read_hparams(struct loader *L, struct model_hparams *hp)
{
    hearth_status st;
    uint32_t key_len = 0, val_len = 0;
    if ((st = get_hp_u32(L, "block_count", true, 0, &hp->n_layer)) ||
        (st = get_hp_u32(L, "embedding_length", true, 0, &hp->n_embd)) ||
        (st = get_hp_u32(L, "context_length", true, 0, &hp->n_ctx_train)) ||
        (st = get_hp_u32(L, "feed_forward_length", true, 0, &hp->n_ff)) ||
        (st = get_hp_u32(L, "attention.head_count", true, 0, &hp->n_head)))
        return st;
    /* an embedding model's pooling (llama.cpp's numbering: 1 mean, 2 cls, 3 last) */
    if ((st = get_hp_u32(L, "pooling_type", false, 0, &hp->pooling_type)))
        return st;
    if (hp->n_layer == 0 || hp->n_embd == 0 || hp->n_head == 0 || hp->n_ff == 0)
        return err_set(HEARTH_ERR_BAD_FILE,
                       "%s: block_count, embedding_length, feed_forward_length and head_count must "
                       "be > 0 (found %u, %u, %u, %u)",
                       L->f->path, hp->n_layer, hp->n_embd, hp->n_ff, hp->n_head);
    /* each block has tensors of its own: a larger count is a broken header (found by fuzz-model) */
    if (hp->n_layer > L->f->n_tensors)
        return err_set(HEARTH_ERR_BAD_FILE,
                       "%s: '%s.block_count' = %u, but the file has %llu tensors; expected at "
                       "most one block per tensor",
                       L->f->path, L->arch, hp->n_layer, (unsigned long long)L->f->n_tensors);
    if ((st = get_hp_u32(L, "attention.head_count_kv", false, hp->n_head, &hp->n_head_kv)))
        return st;
    if (hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv != 0)
        return err_set(HEARTH_ERR_BAD_FILE,
                       "%s: '%s.attention.head_count_kv' = %u must divide head_count = %u",
                       L->f->path, L->arch, hp->n_head_kv, hp->n_head);
    uint32_t def_hd = hp->n_embd / hp->n_head;
    if ((st = get_hp_u32(L, "attention.key_length", false, def_hd, &key_len)) ||
        (st = get_hp_u32(L, "attention.value_length", false, def_hd, &val_len)))
        return st;
    if (key_len != val_len)
        return err_set(HEARTH_ERR_UNSUPPORTED,
                       "%s: key_length %u != value_length %u is not supported", L->f->path,
                       key_len, val_len);
    if (key_len == 0 || key_len % 2 != 0)
        return err_set(HEARTH_ERR_BAD_FILE, "%s: head dimension %u must be even and > 0",
                       L->f->path, key_len);
    hp->head_dim = key_len;
    if ((st = get_hp_u32(L, "rope.dimension_count", false, key_len, &hp->n_rot)))
        return st;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return err_set(HEARTH_ERR_BAD_FILE,
                       "%s: '%s.rope.dimension_count' = %u must be even and <= head dim %u",
                       L->f->path, L->arch, hp->n_rot, hp->head_dim);
    if ((st = get_hp_f32(L, "attention.layer_norm_rms_epsilon", true, 0.0f, &hp->norm_eps)) ||
        (st = get_hp_f32(L, "rope.freq_base", false, 10000.0f, &hp->rope_base)))
        return st;
    if (!(hp->norm_eps >= 0.0f) || !(hp->rope_base > 0.0f))
        return err_set(HEARTH_ERR_BAD_FILE, "%s: norm epsilon %g or rope base %g out of range",
                       L->f->path, (double)hp->norm_eps, (double)hp->rope_base);

    /* RoPE scaling: none or linear; llama3-style comes as the rope_freqs tensor. */
    hp->rope_freq_scale = 1.0f;
    const struct gguf_kv *skv = gguf_find_kv(L->f, lkey(L, "rope.scaling.type"));
    bool linear = true; /* llama.cpp's default when only a factor is given */
    if (skv) {
        struct gguf_str s;
        if ((st = gguf_get_str(L->f, L->key, &s)))
            return st;
        if (gguf_str_eq(s, "none")) {
            linear = false;
        } else if (gguf_str_eq(s, "llama3")) {
            linear = false; /* divisors computed in load_llama3_divs, unless the tensor exists */
            L->llama3 = true;
        } else if (!gguf_str_eq(s, "linear")) {
            return err_set(HEARTH_ERR_UNSUPPORTED,
                           "%s: '%s' = '%.*s': only 'none', 'linear' and 'llama3' RoPE scaling "
                           "are supported",
                           L->f->path, L->key, (int)(s.len > 64 ? 64 : s.len), s.ptr);
        }
    }
    float factor = 0.0f;
    if ((st = get_hp_f32(L, "rope.scaling.factor", false, 0.0f, &factor)))
        return st;
    if (linear && factor > 0.0f)
        hp->rope_freq_scale = 1.0f / factor;

    hp->rope_base_local = hp->rope_base;
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->embd_scale = 1.0f;
    hp->ffn_act = MODEL_FFN_SILU;
    hp->rope_mode = hp->arch == MODEL_ARCH_LLAMA ? MODEL_ROPE_NORMAL : MODEL_ROPE_NEOX;
    /* qwen3 is qwen2 without the biases plus gemma3's QK-norm, and nothing else of gemma3's */
    hp->qk_norm = hp->arch == MODEL_ARCH_GEMMA3 || hp->arch == MODEL_ARCH_QWEN3;
    if (hp->arch == MODEL_ARCH_GEMMA3) {
        hp->ffn_act = MODEL_FFN_GELU_TANH;
        hp->post_norms = true;
        hp->embd_scale = sqrtf((float)hp->n_embd);
        if ((st = get_hp_u32(L, "attention.sliding_window", false, 0, &hp->sliding_window)) ||
            (st = get_hp_f32(L, "rope.freq_base_swa", false, 10000.0f, &hp->rope_base_local)))
            return st;
        if (hp->n_layer == 62) /* the 27B: scale by 1/sqrt(n_embd/n_head), facts sheet §8.3 */
            hp->attn_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    }
    return HEARTH_OK;
}

/* Marks local layers and sets per-layer RoPE bases (gemma3 §8.2; others: all global). */
static hearth_status assign_layer_kinds(struct loader *L, struct model *m)
{
    struct model_hparams *hp = &m->hp;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        m->layers[il].is_swa = false;
        m->layers[il].rope_base = hp->rope_base;
        m->layers[il].rope_freq_scale = hp->rope_freq_scale;
    }
    if (hp->arch != MODEL_ARCH_GEMMA3 || hp->sliding_window == 0)
        return HEARTH_OK;
    uint64_t mask[ARCH_SWA_MAX_LAYERS / 64];
    hearth_status st = arch_swa_layers(L->f, L->arch, hp->n_layer, hp->sliding_window, mask);
    if (st)
        return st;
    for (uint32_t il = 0; il < hp->n_layer; il++)
        m->layers[il].is_swa = (mask[il / 64] >> (il % 64) & 1u) != 0;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        if (m->layers[il].is_swa) {
            m->layers[il].rope_base = hp->rope_base_local;
            m->layers[il].rope_freq_scale = 1.0f;
        }
    }
    return HEARTH_OK;
}

static hearth_status bind_all(struct loader *L, struct model *m)
{
    const struct model_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim,
                  KV = (int64_t)hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    hearth_status st;
    const struct gguf_tensor *te = gguf_find_tensor(L->f, "token_embd.weight");
    if (!te)
        return err_set(HEARTH_ERR_BAD_FILE, "%s: tensor 'token_embd.weight' is missing",
                       L->f->path);
    if (te->ne[1] == 0 || te->ne[1] > INT32_MAX)
        return err_set(HEARTH_ERR_BAD_FILE,
                       "%s: tensor 'token_embd.weight': vocabulary of %llu rows", L->f->path,
                       (unsigned long long)te->ne[1]);
    m->hp.n_vocab = (uint32_t)te->ne[1];
    const int64_t V = hp->n_vocab;
    if ((st = bind(L, "token_embd.weight", E, V, true, &m->tok_embd)) ||
        (st = bind(L, "output_norm.weight", E, 0, true, &m->output_norm)) ||
        (st = bind(L, "output.weight", E, V, false, &m->output)) ||
        (st = bind(L, "rope_freqs.weight", hp->n_rot / 2, 0, false, &m->rope_freqs)))
        return st;
    if (!m->output.data)
        m->output = m->tok_embd; /* tied embeddings, §4.3 */
    bool gemma = hp->arch == MODEL_ARCH_GEMMA3, qwen = hp->arch == MODEL_ARCH_QWEN2;
    for (uint32_t i = 0; i < hp->n_layer; i++) {
        int il = (int)i;
        struct model_layer *ly = &m->layers[i];
        if ((st = bind_layer(L, il, "attn_norm.weight", E, 0, true, &ly->attn_norm)) ||
            (st = bind_layer(L, il, "attn_q.weight", E, Q, true, &ly->wq)) ||
            (st = bind_layer(L, il, "attn_k.weight", E, KV, true, &ly->wk)) ||
            (st = bind_layer(L, il, "attn_v.weight", E, KV, true, &ly->wv)) ||
            (st = bind_layer(L, il, "attn_output.weight", Q, E, true, &ly->wo)) ||
            (st = bind_layer(L, il, "attn_q.bias", Q, 0, qwen, &ly->bq)) ||
            (st = bind_layer(L, il, "attn_k.bias", KV, 0, qwen, &ly->bk)) ||
            (st = bind_layer(L, il, "attn_v.bias", KV, 0, qwen, &ly->bv)) ||
            (st = bind_layer(L, il, "attn_output.bias", E, 0, false, &ly->bo)) ||
            (st = bind_layer(L, il, "ffn_norm.weight", E, 0, true, &ly->ffn_norm)) ||
            (st = bind_layer(L, il, "ffn_gate.weight", E, F, true, &ly->ffn_gate)) ||
            (st = bind_layer(L, il, "ffn_up.weight", E, F, true, &ly->ffn_up)) ||
            (st = bind_layer(L, il, "ffn_down.weight", F, E, true, &ly->ffn_down)))
            return st;
        if (hp->qk_norm &&
            ((st = bind_layer(L, il, "attn_q_norm.weight", hp->head_dim, 0, true, &ly->q_norm)) ||
             (st = bind_layer(L, il, "attn_k_norm.weight", hp->head_dim, 0, true, &ly->k_norm))))
            return st;
        if (gemma &&
            ((st = bind_layer(L, il, "post_attention_norm.weight", E, 0, true,
                              &ly->post_attn_norm)) ||
             (st = bind_layer(L, il, "post_ffw_norm.weight", E, 0, true, &ly->post_ffn_norm))))
            return st;
    }
    return HEARTH_OK;
}

/* The QK-norm pairs a rotated K cache uses (model_qk_norms); a few KiB per model. */
static hearth_status balance_qk_norms(struct model *m)
{
    const struct model_hparams *hp = &m->hp;
    if (!hp->qk_norm)
        return HEARTH_OK;
    const size_t d = hp->head_dim;
    m->qk_bal_owned = malloc((size_t)hp->n_layer * 2 * d * sizeof(float));
    if (!m->qk_bal_owned)
        return err_set(HEARTH_ERR_NO_MEMORY, "model: out of memory for balanced QK-norms");
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        struct model_layer *ly = &m->layers[il];
        float *q = m->qk_bal_owned + (size_t)il * 2 * d, *k = q + d;
        /* norm weights are F32 (bind checks it), [head_dim] */
        kvq_qk_balance(ly->q_norm.data, ly->k_norm.data, (int)d, (int)hp->n_rot,
                       hp->rope_mode == MODEL_ROPE_NEOX, q, k);
        ly->q_norm_bal = ly->q_norm;
        ly->q_norm_bal.data = q;
        ly->k_norm_bal = ly->k_norm;
        ly->k_norm_bal.data = k;
    }
    return HEARTH_OK;
}

void model_llama3_rope_divisors(uint32_t n_rot, float base, float factor, float low_freq_factor,
                                float high_freq_factor, float orig_ctx, float *out)
{
    const float lambda_hi = orig_ctx / high_freq_factor, lambda_lo = orig_ctx / low_freq_factor;
    for (uint32_t k = 0; k < n_rot / 2; k++) {
        float omega = powf(base, -(float)(2 * k) / (float)n_rot);
        float lambda = 2.0f * 3.14159265358979f / omega;
        if (lambda < lambda_hi) {
            out[k] = 1.0f;
        } else if (lambda > lambda_lo) {
            out[k] = factor;
        } else {
            float s = (orig_ctx / lambda - low_freq_factor) / (high_freq_factor - low_freq_factor);
            out[k] = 1.0f / ((1.0f - s) / factor + s);
        }
    }
}

/*
 * rope.scaling.type = "llama3" without a rope_freqs tensor: compute the divisors
 * from {arch}.rope.scaling.factor, .low_freq_factor (1), .high_freq_factor (4),
 * .original_context_length (8192).
 */
static hearth_status load_llama3_divs(struct loader *L, struct model *m)
{
    if (!L->llama3 || m->rope_freqs.data)
        return HEARTH_OK;
    float factor, low, high;
    uint32_t orig;
    hearth_status st;
    if ((st = get_hp_f32(L, "rope.scaling.factor", false, 8.0f, &factor)) ||
        (st = get_hp_f32(L, "rope.scaling.low_freq_factor", false, 1.0f, &low)) ||
        (st = get_hp_f32(L, "rope.scaling.high_freq_factor", false, 4.0f, &high)) ||
        (st = get_hp_u32(L, "rope.scaling.original_context_length", false, 8192, &orig)))
        return st;
    if (!(factor >= 1.0f) || !(low > 0.0f) || !(high > low) || orig == 0)
        return err_set(HEARTH_ERR_BAD_FILE,
                       "%s: llama3 RoPE scaling: factor %g, low %g, high %g, original context %u "
                       "(expected factor >= 1, 0 < low < high, context > 0)",
                       L->f->path, (double)factor, (double)low, (double)high, orig);
    m->rope_divs_owned = malloc((m->hp.n_rot / 2 + 1) * sizeof(float));
    if (!m->rope_divs_owned)
        return err_set(HEARTH_ERR_NO_MEMORY, "model: out of memory");
    model_llama3_rope_divisors(m->hp.n_rot, m->hp.rope_base, factor, low, high, (float)orig,
                               m->rope_divs_owned);
    m->rope_freqs.data = m->rope_divs_owned;
    m->rope_freqs.type = HEARTH_DTYPE_F32;
    m->rope_freqs.n_in = m->hp.n_rot / 2;
    m->rope_freqs.n_out = 1;
    m->rope_freqs.row_bytes = (size_t)(m->hp.n_rot / 2) * sizeof(float);
    return HEARTH_OK;
}

hearth_status model_load_gguf(struct gguf_file *f, struct model **out)
{
    *out = NULL;
    struct loader L = {.f = f};
    struct gguf_str a;
    hearth_status st = gguf_get_str(f, "general.architecture", &a);
    if (st != HEARTH_OK)
        return err_set(HEARTH_ERR_BAD_FILE, "%s: required key 'general.architecture' is missing "
                       "or not a string", f->path);
    int arch = -1;
    for (int i = 0; i < MODEL_ARCH_COUNT; i++)
        if (gguf_str_eq(a, arch_names[i]))
            arch = i;
    if (arch < 0)
        return err_set(HEARTH_ERR_UNSUPPORTED,
                       "%s: general.architecture = '%.*s' is not supported (supported: llama, "
                       "qwen2, qwen3, gemma3)",
                       f->path, (int)(a.len > 64 ? 64 : a.len), a.ptr);
    L.arch = arch_names[arch];

    struct model *m = calloc(1, sizeof *m);
    if (!m)
        return err_set(HEARTH_ERR_NO_MEMORY, "model: out of memory");
    m->gguf = f;
    m->hp.arch = (enum model_arch)arch;
    if ((st = read_hparams(&L, &m->hp)) != HEARTH_OK)
        goto fail;
    m->layers = calloc(m->hp.n_layer, sizeof *m->layers);
    if (!m->layers) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "model: out of memory for %u layers", m->hp.n_layer);
        goto fail;
    }
    if ((st = assign_layer_kinds(&L, m)) != HEARTH_OK || (st = bind_all(&L, m)) != HEARTH_OK ||
        (st = load_llama3_divs(&L, m)) != HEARTH_OK || (st = balance_qk_norms(m)) != HEARTH_OK)
        goto fail;
    *out = m;
    return HEARTH_OK;
fail:
    free(m->qk_bal_owned);
    free(m->rope_divs_owned);
    free(m->layers);
    free(m);
    return st;
}

hearth_status model_load(const char *path, struct model **out)
{
    *out = NULL;
    struct gguf_file *f = NULL;
    hearth_status st = gguf_open(path, &f);
    if (st != HEARTH_OK)
        return st;
    st = model_load_gguf(f, out);
    if (st != HEARTH_OK) {
        gguf_close(f);
        return st;
    }
    (*out)->owns_gguf = true;
    return HEARTH_OK;
}

void model_free(struct model *m)
{
    if (!m)
        return;
    if (m->owns_gguf)
        gguf_close(m->gguf);
    free(m->qk_bal_owned);
    free(m->rope_divs_owned);
    free(m->layers);
    free(m);
}

void model_qk_norms(const struct model *m, uint32_t il, bool rotated_codes,
                    const struct model_weight **qn, const struct model_weight **kn)
{
    const struct model_layer *ly = &m->layers[il];
    const bool bal = rotated_codes && ly->k_norm_bal.data;
    *qn = bal ? &ly->q_norm_bal : &ly->q_norm;
    *kn = bal ? &ly->k_norm_bal : &ly->k_norm;
}

hearth_status model_weight_row(const struct model_weight *w, int64_t row, float *out)
{
    if (!w->data || row < 0 || row >= w->n_out)
        return err_set(HEARTH_ERR_INVALID_ARG, "model: row %lld out of range [0, %lld)",
                       (long long)row, (long long)w->n_out);
    const struct quant_traits *qt = quant_get(w->type);
    qt->to_float((const uint8_t *)w->data + (size_t)row * w->row_bytes, out, w->n_in);
    return HEARTH_OK;
}
