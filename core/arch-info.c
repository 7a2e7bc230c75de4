/*
 * arch-info: reads the architecture summary (see arch-info.h).
 *
 * Every "{arch}.x" key is looked up by building the full key from the file's
 * general.architecture, so the same code serves llama, qwen2, gemma3 and any
 * other arch that uses llama.cpp's standard key set. Per-layer arrays (some
 * models vary head or FFN counts by layer) are reduced to their maximum, which
 * is what a summary and a buffer-size computation need; per_layer_heads tells
 * the loader to read the array itself.
 */
#include "arch-info.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

static void copy_str(char *dst, size_t size, struct gguf_str s)
{
    size_t n = s.len < size - 1 ? (size_t)s.len : size - 1;
    memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

/* An unsigned integer from an integer element of type t at p; false for non-integers. */
static bool read_uint_elem(enum gguf_vtype t, const uint8_t *p, uint64_t *out)
{
    switch (t) {
    case GGUF_VT_UINT8:
    case GGUF_VT_BOOL:
        *out = p[0];
        return true;
    case GGUF_VT_INT8:
        *out = (int8_t)p[0] < 0 ? 0 : p[0];
        return true;
    case GGUF_VT_UINT16: {
        uint16_t v;
        memcpy(&v, p, 2);
        *out = v;
        return true;
    }
    case GGUF_VT_INT16: {
        int16_t v;
        memcpy(&v, p, 2);
        *out = v < 0 ? 0 : (uint64_t)v;
        return true;
    }
    case GGUF_VT_UINT32: {
        uint32_t v;
        memcpy(&v, p, 4);
        *out = v;
        return true;
    }
    case GGUF_VT_INT32: {
        int32_t v;
        memcpy(&v, p, 4);
        *out = v < 0 ? 0 : (uint64_t)v;
        return true;
    }
    case GGUF_VT_UINT64:
        memcpy(out, p, 8);
        return true;
    case GGUF_VT_INT64: {
        int64_t v;
        memcpy(&v, p, 8);
        *out = v < 0 ? 0 : (uint64_t)v;
        return true;
    }
    default:
        return false;
    }
}

/*
 * "{arch}.suffix" as a u32: scalar, or the maximum of an integer array.
 * Absent: *out = def and (if required) BAD_FILE. *was_array set when it was an array.
 */
static hearth_status get_arch_u32(const struct gguf_file *f, const char *arch, const char *suffix,
                                  bool required, uint32_t def, uint32_t *out, bool *was_array)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    *out = def;
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) {
        if (required)
            return err_set(HEARTH_ERR_BAD_FILE, "%s: required key '%s' is missing", f->path, key);
        return HEARTH_OK;
    }
    uint64_t v = 0;
    if (kv->type == GGUF_VT_ARRAY) {
        size_t es = gguf_vtype_size(kv->arr_type);
        if (es == 0 || kv->arr_n == 0)
            return err_set(HEARTH_ERR_BAD_FILE,
                           "%s: offset %llu: key '%s': expected an integer or a non-empty integer "
                           "array",
                           f->path, (unsigned long long)kv->offset, key);
        for (uint64_t i = 0; i < kv->arr_n; i++) {
            uint64_t e;
            if (!read_uint_elem(kv->arr_type, kv->data + i * es, &e))
                return err_set(HEARTH_ERR_BAD_FILE,
                               "%s: offset %llu: key '%s': array of %s, expected integers", f->path,
                               (unsigned long long)kv->offset, key, gguf_vtype_name(kv->arr_type));
            if (e > v)
                v = e;
        }
        if (was_array)
            *was_array = true;
    } else {
        hearth_status st = gguf_kv_u64(f, kv, &v);
        if (st != HEARTH_OK)
            return st;
    }
    if (v > UINT32_MAX)
        return err_set(HEARTH_ERR_BAD_FILE, "%s: offset %llu: key '%s' = %llu does not fit u32",
                       f->path, (unsigned long long)kv->offset, key, (unsigned long long)v);
    *out = (uint32_t)v;
    return HEARTH_OK;
}

static hearth_status get_arch_f32(const struct gguf_file *f, const char *arch, const char *suffix,
                                  float def, float *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    *out = def;
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return HEARTH_OK;
    double v;
    hearth_status st = gguf_kv_f64(f, kv, &v);
    if (st != HEARTH_OK)
        return st;
    *out = (float)v;
    return HEARTH_OK;
}

static hearth_status get_opt_str(const struct gguf_file *f, const char *key, char *dst, size_t size,
                                 const char *def)
{
    snprintf(dst, size, "%s", def);
    const struct gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv)
        return HEARTH_OK;
    if (kv->type != GGUF_VT_STRING)
        return err_set(HEARTH_ERR_BAD_FILE,
                       "%s: offset %llu: key '%s' has type %s, expected string", f->path,
                       (unsigned long long)kv->offset, key, gguf_vtype_name(kv->type));
    struct gguf_str s;
    hearth_status st = gguf_get_str(f, key, &s);
    if (st == HEARTH_OK)
        copy_str(dst, size, s);
    return st;
}

hearth_status arch_info_read(const struct gguf_file *f, struct arch_info *out)
{
    memset(out, 0, sizeof *out);
    hearth_status st;
    const struct gguf_kv *kv = gguf_find_kv(f, "general.architecture");
    if (!kv || kv->type != GGUF_VT_STRING)
        return err_set(HEARTH_ERR_BAD_FILE, "%s: key 'general.architecture' (string) is %s",
                       f->path, kv ? "not a string" : "missing");
    if ((st = get_opt_str(f, "general.architecture", out->arch, sizeof out->arch, "")))
        return st;
    const char *a = out->arch;
    bool arr = false;
    if ((st = get_arch_u32(f, a, "block_count", true, 0, &out->n_layer, NULL)) ||
        (st = get_arch_u32(f, a, "embedding_length", true, 0, &out->n_embd, NULL)) ||
        (st = get_arch_u32(f, a, "context_length", true, 0, &out->n_ctx_train, NULL)) ||
        (st = get_arch_u32(f, a, "feed_forward_length", false, 0, &out->n_ff, &arr)) ||
        (st = get_arch_u32(f, a, "attention.head_count", false, 0, &out->n_head, &arr)))
        return st;
    if (out->n_layer > f->n_tensors) /* each block has tensors of its own */
        return err_set(HEARTH_ERR_BAD_FILE,
                       "%s: key '%s.block_count' = %u, but the file has %llu tensors; expected "
                       "at most one block per tensor",
                       f->path, a, out->n_layer, (unsigned long long)f->n_tensors);
    if ((st = get_arch_u32(f, a, "attention.head_count_kv", false, out->n_head, &out->n_head_kv,
                           &arr)))
        return st;
    out->per_layer_heads = arr;
    if (out->n_head == 0 || out->n_head_kv == 0 || out->n_head % out->n_head_kv != 0)
        return err_set(HEARTH_ERR_BAD_FILE,
                       "%s: key '%s.attention.head_count' = %u and head_count_kv = %u: expected "
                       "non-zero counts with head_count a multiple of head_count_kv",
                       f->path, a, out->n_head, out->n_head_kv);
    uint32_t hd = out->n_embd / out->n_head;
    if ((st = get_arch_u32(f, a, "attention.key_length", false, hd, &out->head_dim_k, NULL)) ||
        (st = get_arch_u32(f, a, "attention.value_length", false, hd, &out->head_dim_v, NULL)) ||
        (st = get_arch_u32(f, a, "rope.dimension_count", false, out->head_dim_k, &out->n_rot,
                           NULL)) ||
        (st = get_arch_u32(f, a, "attention.sliding_window", false, 0, &out->sliding_window,
                           NULL)) ||
        (st = get_arch_u32(f, a, "expert_count", false, 0, &out->n_expert, NULL)) ||
        (st = get_arch_u32(f, a, "expert_used_count", false, 0, &out->n_expert_used, NULL)))
        return st;
    if ((st = get_arch_f32(f, a, "rope.freq_base", 10000.0f, &out->rope_base)) ||
        (st = get_arch_f32(f, a, "rope.scaling.factor", 0.0f, &out->rope_scale_factor)) ||
        (st = get_arch_f32(f, a, "attention.layer_norm_rms_epsilon", 0.0f, &out->norm_eps)))
        return st;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    if ((st = get_opt_str(f, key, out->rope_scaling, sizeof out->rope_scaling, "none")))
        return st;
    out->has_rope_freqs = gguf_find_tensor(f, "rope_freqs.weight") != NULL;
    if (out->has_rope_freqs && !strcmp(out->rope_scaling, "none"))
        snprintf(out->rope_scaling, sizeof out->rope_scaling, "llama3");
    out->tied = gguf_find_tensor(f, "output.weight") == NULL;
    if ((st = get_opt_str(f, "tokenizer.ggml.model", out->tok_model, sizeof out->tok_model, "")) ||
        (st = get_opt_str(f, "tokenizer.ggml.pre", out->tok_pre, sizeof out->tok_pre, "default")))
        return st;
    if ((st = get_arch_u32(f, a, "vocab_size", false, 0, &out->n_vocab, NULL)))
        return st;
    if (out->n_vocab == 0) {
        const struct gguf_kv *tk = gguf_find_kv(f, "tokenizer.ggml.tokens");
        if (tk && tk->type == GGUF_VT_ARRAY && tk->arr_n <= UINT32_MAX)
            out->n_vocab = (uint32_t)tk->arr_n;
    }
    return arch_swa_layers(f, a, out->n_layer, out->sliding_window, out->swa_mask);
}

hearth_status arch_swa_layers(const struct gguf_file *f, const char *arch, uint32_t n_layer,
                              uint32_t sliding_window, uint64_t mask[ARCH_SWA_MAX_LAYERS / 64])
{
    memset(mask, 0, ARCH_SWA_MAX_LAYERS / 8);
    if (strcmp(arch, "gemma3") != 0 || sliding_window == 0)
        return HEARTH_OK;
    char key[128];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", arch);
    if (n_layer > ARCH_SWA_MAX_LAYERS)
        return err_set(HEARTH_ERR_UNSUPPORTED,
                       "%s: %u layers with sliding-window attention, at most %u supported",
                       f->path, n_layer, ARCH_SWA_MAX_LAYERS);
    const struct gguf_kv *pkv = gguf_find_kv(f, key);
    uint32_t period = 6;
    if (pkv && pkv->type == GGUF_VT_ARRAY) {
        if (pkv->arr_type != GGUF_VT_BOOL || pkv->arr_n != n_layer)
            return err_set(HEARTH_ERR_BAD_FILE,
                           "%s: offset %llu: '%s': expected an array of %u bools (or a u32 period)",
                           f->path, (unsigned long long)pkv->offset, key, n_layer);
        for (uint32_t il = 0; il < n_layer; il++)
            if (pkv->data[il] != 0)
                mask[il / 64] |= 1ull << (il % 64);
        return HEARTH_OK;
    }
    if (pkv) {
        hearth_status st = gguf_get_u32(f, key, &period);
        if (st)
            return st;
        if (period == 0)
            return err_set(HEARTH_ERR_BAD_FILE, "%s: offset %llu: '%s' = 0, expected a period >= 1",
                           f->path, (unsigned long long)pkv->offset, key);
    }
    for (uint32_t il = 0; il < n_layer; il++)
        if (il % period < period - 1)
            mask[il / 64] |= 1ull << (il % 64);
    return HEARTH_OK;
}
