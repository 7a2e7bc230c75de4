/*
 * synth: random-weight GGUF models (see synth.h).
 *
 * Weight bytes are produced block by block: the whole block is filled with
 * random bits (xoshiro256**, core/rng.h), then its scale fields (f16 d, and the
 * min / dmin field where the type has one) are overwritten with constants. A
 * block's dequantized value is then d * A(codes) + mfield * B(codes), linear in
 * d when mfield = c * d; so the std for d = 1 ("unit std") is measured once per
 * type by dequantizing a few hundred calibration blocks with the reference
 * to_float, and d = target / unit_std. c is chosen to cancel the mean the
 * unsigned codes would otherwise give (e.g. Q4_1: m = -7.5 d). Alternative
 * rejected: quantizing random floats with from_float, which for K-quants runs
 * a scale search and is two orders of magnitude slower than the disk.
 *
 * Each tensor draws from its own stream seeded by (seed, name), so the bytes
 * of a tensor do not depend on which tensors precede it. Data goes to the
 * writer in chunks of whole blocks through one CHUNK_BYTES buffer: memory use
 * is constant whatever the model size.
 */
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "f16.h"
#include "gguf-write.h"
#include "quant-internal.h"
#include "quant.h"
#include "rng.h"

#define CHUNK_BYTES ((size_t)8 << 20)
#define CALIB_BLOCKS 256

/*
 * Where a type keeps its f16 scale fields; m_off < 0: no second field.
 * d_off == IQ1_M_D: IQ1_M, whose f16 d is spread over the top nibbles of its
 * four u16 scale words at byte 48 (quant__iq1_m_set_d16).
 */
#define IQ1_M_D (-1)
struct scale_fields {
    hearth_dtype type;
    int d_off;
    int m_off;
    float m_ratio; /* second field = m_ratio * d */
};

static const struct scale_fields fields[] = {
    {HEARTH_DTYPE_Q4_0, 0, -1, 0.0f},   {HEARTH_DTYPE_Q4_1, 0, 2, -7.5f},
    {HEARTH_DTYPE_Q5_0, 0, -1, 0.0f},   {HEARTH_DTYPE_Q5_1, 0, 2, -15.5f},
    {HEARTH_DTYPE_Q8_0, 0, -1, 0.0f},   {HEARTH_DTYPE_Q2_K, 80, 82, 1.5f},
    {HEARTH_DTYPE_Q3_K, 108, -1, 0.0f}, {HEARTH_DTYPE_Q4_K, 0, 2, 7.5f},
    {HEARTH_DTYPE_Q5_K, 0, 2, 15.5f},   {HEARTH_DTYPE_Q6_K, 208, -1, 0.0f},
    {HEARTH_DTYPE_IQ4_NL, 0, -1, 0.0f}, {HEARTH_DTYPE_IQ4_XS, 0, -1, 0.0f},
    {HEARTH_DTYPE_IQ2_XXS, 0, -1, 0.0f}, {HEARTH_DTYPE_IQ2_XS, 0, -1, 0.0f},
    {HEARTH_DTYPE_IQ2_S, 0, -1, 0.0f},  {HEARTH_DTYPE_IQ3_XXS, 0, -1, 0.0f},
    {HEARTH_DTYPE_IQ3_S, 0, -1, 0.0f},  {HEARTH_DTYPE_IQ1_S, 0, -1, 0.0f},
    {HEARTH_DTYPE_IQ1_M, IQ1_M_D, -1, 0.0f},
};

static const struct scale_fields *fields_of(hearth_dtype t)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].type == t)
            return &fields[i];
    return NULL;
}

static void fill_random(struct rng *r, uint8_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = rng_u64(r);
        memcpy(dst + i, &v, 8);
    }
    if (i < n) {
        uint64_t v = rng_u64(r);
        memcpy(dst + i, &v, n - i);
    }
}

/* Uniform float in [-a, a) from 24 random bits. */
static float uniform_sym(uint64_t bits, float a)
{
    return ((float)(bits >> 40) * (1.0f / 8388608.0f) - 1.0f) * a;
}

/* n_blocks blocks of quantized type t with scale d (already rounded to f16). */
static void fill_quant(const struct scale_fields *sf, size_t block_bytes, uint64_t n_blocks,
                       uint16_t d16, uint16_t m16, struct rng *r, uint8_t *dst)
{
    fill_random(r, dst, (size_t)n_blocks * block_bytes);
    for (uint64_t b = 0; b < n_blocks; b++) {
        uint8_t *blk = dst + b * block_bytes;
        if (sf->d_off == IQ1_M_D)
            quant__iq1_m_set_d16(blk + 48, d16);
        else
            memcpy(blk + sf->d_off, &d16, 2);
        if (sf->m_off >= 0)
            memcpy(blk + sf->m_off, &m16, 2);
    }
}

static void fill_float(hearth_dtype t, uint64_t n, float std, struct rng *r, uint8_t *dst)
{
    const float a = std * 1.7320508f; /* uniform on [-a, a) has std a / sqrt(3) */
    for (uint64_t i = 0; i < n; i++) {
        float v = uniform_sym(rng_u64(r), a);
        if (t == HEARTH_DTYPE_F32) {
            memcpy(dst + 4 * i, &v, 4);
        } else {
            uint16_t h = t == HEARTH_DTYPE_F16 ? f32_to_f16(v) : f32_to_bf16(v);
            memcpy(dst + 2 * i, &h, 2);
        }
    }
}

/* Std of the dequantized values of random blocks with d = 1 (fixed calibration stream). */
static hearth_status unit_std(const struct quant_traits *q, const struct scale_fields *sf,
                              double *out)
{
    size_t nb = (size_t)CALIB_BLOCKS;
    size_t n = nb * (size_t)q->blck;
    uint8_t *blocks = malloc(nb * q->block_bytes);
    float *vals = malloc(n * sizeof *vals);
    hearth_status st = HEARTH_OK;
    if (!blocks || !vals) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "synth: out of memory calibrating %s", q->name);
        goto done;
    }
    struct rng r;
    rng_seed(&r, 0x5eed5eedull);
    fill_quant(sf, q->block_bytes, nb, f32_to_f16(1.0f), f32_to_f16(sf->m_ratio), &r, blocks);
    q->to_float(blocks, vals, (int64_t)n);
    double s = 0.0, s2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += (double)vals[i];
        s2 += (double)vals[i] * (double)vals[i];
    }
    double mean = s / (double)n;
    *out = sqrt(s2 / (double)n - mean * mean);
    if (!(*out > 0.0))
        st = err_set(HEARTH_ERR_INTERNAL, "synth: calibration of %s gave std %g", q->name, *out);
done:
    free(blocks);
    free(vals);
    return st;
}

/* Scale-field values for type t and target std (both 0 for float types). */
static hearth_status scales_for(hearth_dtype t, float std, uint16_t *d16, uint16_t *m16)
{
    const struct quant_traits *q = quant_get(t);
    if (!q)
        return err_set(HEARTH_ERR_UNSUPPORTED, "synth: unknown type id %d", (int)t);
    *d16 = 0;
    *m16 = 0;
    if (!q->is_quantized)
        return HEARTH_OK;
    const struct scale_fields *sf = fields_of(t);
    if (!sf || !q->to_float)
        return err_set(HEARTH_ERR_UNSUPPORTED, "synth: cannot generate random %s blocks", q->name);
    double u = 0.0;
    hearth_status st = unit_std(q, sf, &u);
    if (st != HEARTH_OK)
        return st;
    *d16 = f32_to_f16((float)((double)std / u));
    *m16 = f32_to_f16(sf->m_ratio * f16_to_f32(*d16));
    return HEARTH_OK;
}

static hearth_status fill_with(hearth_dtype t, uint64_t n_blocks, float std, uint16_t d16,
                               uint16_t m16, struct rng *r, void *dst)
{
    const struct quant_traits *q = quant_get(t);
    if (!q)
        return err_set(HEARTH_ERR_UNSUPPORTED, "synth: unknown type id %d", (int)t);
    if (t == HEARTH_DTYPE_F32 || t == HEARTH_DTYPE_F16 || t == HEARTH_DTYPE_BF16) {
        fill_float(t, n_blocks, std, r, dst);
        return HEARTH_OK;
    }
    const struct scale_fields *sf = fields_of(t);
    if (!sf)
        return err_set(HEARTH_ERR_UNSUPPORTED, "synth: cannot generate random %s blocks", q->name);
    fill_quant(sf, q->block_bytes, n_blocks, d16, m16, r, dst);
    return HEARTH_OK;
}

hearth_status synth_fill(hearth_dtype t, uint64_t n_blocks, float std, struct rng *r, void *dst)
{
    uint16_t d16, m16;
    hearth_status st = scales_for(t, std, &d16, &m16);
    if (st != HEARTH_OK)
        return st;
    return fill_with(t, n_blocks, std, d16, m16, r, dst);
}

/* ---- tokenizer ------------------------------------------------------------ */

/*
 * A byte-level BPE vocabulary: ids 0-255 the GPT-2 byte symbols (§5.5), 256
 * <|begin_of_text|> (bos), 257 <|end_of_text|> (eos), then <|synth_N|> control
 * tokens up to n_vocab. No merges: every text tokenizes to its bytes.
 */
struct synth_vocab {
    char *buf;         /* all token strings, NUL-terminated, back to back */
    const char **strs; /* [n_vocab] pointers into buf */
    int32_t *types;    /* [n_vocab] token_type values (1 normal, 3 control) */
};

#define SYNTH_BOS 256u
#define SYNTH_EOS 257u

static void vocab_free(struct synth_vocab *v)
{
    free(v->buf);
    free(v->strs);
    free(v->types);
    memset(v, 0, sizeof *v);
}

static hearth_status vocab_build(uint32_t n_vocab, struct synth_vocab *v)
{
    memset(v, 0, sizeof *v);
    if (n_vocab < 258)
        return err_set(HEARTH_ERR_INVALID_ARG, "synth: vocabulary of %u tokens is below 258",
                       n_vocab);
    size_t cap = (size_t)n_vocab * 24;
    v->buf = malloc(cap);
    v->strs = malloc((size_t)n_vocab * sizeof *v->strs);
    v->types = malloc((size_t)n_vocab * sizeof *v->types);
    if (!v->buf || !v->strs || !v->types) {
        vocab_free(v);
        return err_set(HEARTH_ERR_NO_MEMORY, "synth: out of memory for %u tokens", n_vocab);
    }
    size_t pos = 0;
    uint32_t next_extra = 0x100; /* the n-th byte without a printable self maps to U+0100 + n */
    for (uint32_t b = 0; b < 256; b++) {
        bool self = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
        uint32_t cp = self ? b : next_extra++;
        v->strs[b] = v->buf + pos;
        if (cp < 0x80) {
            v->buf[pos++] = (char)cp;
        } else { /* every code point here is below U+0800: two bytes */
            v->buf[pos++] = (char)(0xc0 | (cp >> 6));
            v->buf[pos++] = (char)(0x80 | (cp & 0x3f));
        }
        v->buf[pos++] = '\0';
        v->types[b] = 1;
    }
    for (uint32_t id = 256; id < n_vocab; id++) {
        v->strs[id] = v->buf + pos;
        int n;
        if (id == SYNTH_BOS)
            n = snprintf(v->buf + pos, cap - pos, "<|begin_of_text|>");
        else if (id == SYNTH_EOS)
            n = snprintf(v->buf + pos, cap - pos, "<|end_of_text|>");
        else
            n = snprintf(v->buf + pos, cap - pos, "<|synth_%u|>", id - 258);
        pos += (size_t)n + 1;
        v->types[id] = 3;
    }
    return HEARTH_OK;
}

/* ---- metadata ----------------------------------------------------------------- */

static hearth_status set_arch_u32(struct gguf_writer *w, const char *arch, const char *k,
                                  uint32_t v)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return gguf_writer_set_u32(w, key, v);
}

static hearth_status set_arch_f32(struct gguf_writer *w, const char *arch, const char *k, float v)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    return gguf_writer_set_f32(w, key, v);
}

static hearth_status write_metadata(struct gguf_writer *w, const struct model_preset *p,
                                    const struct quant_mix *mix, const struct synth_vocab *v)
{
    const char *a = p->arch;
    char name[128];
    snprintf(name, sizeof name, "hearth synth %s %s", p->name, mix->name);
    hearth_status st;
    if ((st = gguf_writer_set_str(w, "general.architecture", a)) ||
        (st = gguf_writer_set_str(w, "general.name", name)) ||
        (st = gguf_writer_set_u32(w, "general.file_type", (uint32_t)mix->ftype)) ||
        (st = gguf_writer_set_u32(w, "general.quantization_version", 2)) ||
        (st = set_arch_u32(w, a, "context_length", p->n_ctx)) ||
        (st = set_arch_u32(w, a, "embedding_length", p->n_embd)) ||
        (st = set_arch_u32(w, a, "block_count", p->n_layer)) ||
        (st = set_arch_u32(w, a, "feed_forward_length", p->n_ff)) ||
        (st = set_arch_u32(w, a, "attention.head_count", p->n_head)) ||
        (st = set_arch_u32(w, a, "attention.head_count_kv", p->n_head_kv)) ||
        (st = set_arch_f32(w, a, "attention.layer_norm_rms_epsilon", p->norm_eps)) ||
        (st = set_arch_f32(w, a, "rope.freq_base", p->rope_base)) ||
        (st = set_arch_u32(w, a, "vocab_size", p->n_vocab)))
        return st;
    if (p->head_dim != p->n_embd / p->n_head &&
        ((st = set_arch_u32(w, a, "attention.key_length", p->head_dim)) ||
         (st = set_arch_u32(w, a, "attention.value_length", p->head_dim))))
        return st;
    /* gemma3's converter stores no rope.dimension_count (n_rot = key_length) */
    if (strcmp(a, "gemma3") != 0 && (st = set_arch_u32(w, a, "rope.dimension_count", p->head_dim)))
        return st;
    if (p->sliding_window &&
        (st = set_arch_u32(w, a, "attention.sliding_window", p->sliding_window)))
        return st;
    if ((st = gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2")) ||
        (st = gguf_writer_set_str(w, "tokenizer.ggml.pre", "default")) ||
        (st = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", p->n_vocab, v->strs)) ||
        (st = gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, p->n_vocab,
                                  v->types)) ||
        (st = gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", 0, NULL)) ||
        (st = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", SYNTH_BOS)) ||
        (st = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", SYNTH_EOS)) ||
        (st = gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true)))
        return st;
    return HEARTH_OK;
}

/* ---- tensors ------------------------------------------------------------------- */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* Streams tensor idx's bytes to the writer through buf (CHUNK_BYTES). */
static hearth_status write_tensor(struct gguf_writer *w, size_t idx, const struct preset_tensor *t,
                                  hearth_dtype type, const struct synth_opts *o,
                                  const struct model_preset *p, float std, uint16_t d16,
                                  uint16_t m16, uint8_t *buf)
{
    const struct quant_traits *q = quant_get(type);
    uint64_t nbytes = gguf_writer_tensor_nbytes(w, idx);
    uint64_t n_elems = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    hearth_status st;
    struct rng r;
    rng_seed(&r, o->seed * 0x9e3779b97f4a7c15ull ^ name_hash(t->name));
    if (t->kind == PRESET_T_NORM || t->kind == PRESET_T_ROPE_FREQS) {
        /* small 1-D F32 tensors: built whole */
        float *vals = malloc((size_t)n_elems * sizeof *vals);
        if (!vals)
            return err_set(HEARTH_ERR_NO_MEMORY, "synth: out of memory for '%s'", t->name);
        if (t->kind == PRESET_T_NORM) {
            /* uniform on [-sqrt(3), sqrt(3)) has std 1 */
            const double a = 1.7320508075688772 * (double)o->norm_std;
            for (uint64_t i = 0; i < n_elems; i++)
                vals[i] = o->norm_std > 0.0f ? (float)(1.0 + a * (2.0 * rng_uniform(&r) - 1.0))
                                             : 1.0f;
        } else {
            model_preset_llama3_rope_freqs(p, vals);
        }
        st = gguf_writer_write_tensor_data(w, idx, vals, nbytes);
        free(vals);
        return st;
    }
    uint64_t blocks_left = nbytes / q->block_bytes;
    uint64_t per_chunk = CHUNK_BYTES / q->block_bytes;
    while (blocks_left) {
        uint64_t nb = blocks_left < per_chunk ? blocks_left : per_chunk;
        if ((st = fill_with(type, nb, std, d16, m16, &r, buf)) ||
            (st = gguf_writer_write_tensor_chunk(w, idx, buf, nb * q->block_bytes)))
            return st;
        blocks_left -= nb;
    }
    return HEARTH_OK;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

hearth_status synth_write(const struct synth_opts *opts, const char *path,
                          struct synth_stats *stats)
{
    if (!opts || !opts->preset || !opts->mix || !path)
        return err_set(HEARTH_ERR_INVALID_ARG, "synth: preset, mix and path are required");
    double t0 = now_seconds();
    struct model_preset p = *opts->preset;
    if (opts->n_layer)
        p.n_layer = opts->n_layer;
    float std = opts->std > 0.0f ? opts->std : SYNTH_DEFAULT_STD;
    struct synth_stats s;
    memset(&s, 0, sizeof s);
    struct quant_mix_ctx ctx;
    struct synth_vocab vocab = {0};
    struct gguf_writer *w = NULL;
    hearth_dtype *types = NULL;
    uint8_t *buf = NULL;
    size_t n = model_preset_n_tensors(&p);
    /* per-type scale fields, computed the first time a type is met */
    uint16_t d16[HEARTH_DTYPE_COUNT], m16[HEARTH_DTYPE_COUNT];
    bool have_scale[HEARTH_DTYPE_COUNT] = {false};
    hearth_status st;
    if ((st = quant_mix_ctx_init(&ctx, opts->mix, p.arch, p.n_layer, p.n_head, p.n_head_kv, 0,
                                 !p.tied)))
        return st;
    if ((st = vocab_build(p.n_vocab, &vocab)))
        return st;
    types = malloc(n * sizeof *types);
    if (!types) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "synth: out of memory");
        goto done;
    }
    if ((st = gguf_writer_create(&w)) || (st = write_metadata(w, &p, opts->mix, &vocab)))
        goto done;
    for (size_t i = 0; i < n; i++) {
        struct preset_tensor t;
        model_preset_tensor(&p, i, &t);
        if ((st = quant_mix_type_for(&ctx, t.name, t.n_dims, t.ne, &types[i])) ||
            (st = gguf_writer_add_tensor(w, t.name, types[i], t.n_dims, t.ne, NULL)))
            goto done;
        s.n_params += t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3];
        s.tensor_bytes += gguf_writer_tensor_nbytes(w, i);
        s.type_count[types[i]]++;
    }
    s.n_tensors = n;
    if ((st = gguf_writer_layout(w, NULL, &s.file_size)) || (st = gguf_writer_open(w, path)))
        goto done;
    if (opts->header_only) {
        st = gguf_writer_finish_sparse(w);
        goto done;
    }
    buf = malloc(CHUNK_BYTES);
    if (!buf) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "synth: out of memory for the write buffer");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        struct preset_tensor t;
        model_preset_tensor(&p, i, &t);
        hearth_dtype ty = types[i];
        if (!have_scale[ty]) {
            if ((st = scales_for(ty, std, &d16[ty], &m16[ty])))
                goto done;
            have_scale[ty] = true;
        }
        if ((st = write_tensor(w, i, &t, ty, opts, &p, std, d16[ty], m16[ty], buf))) {
            err_prefix(st, "synth: tensor '%s'", t.name);
            goto done;
        }
    }
    st = gguf_writer_close(w);
done:
    if (w)
        gguf_writer_destroy(w);
    free(buf);
    free(types);
    vocab_free(&vocab);
    s.seconds = now_seconds() - t0;
    if (stats)
        *stats = s;
    if (st != HEARTH_OK)
        return err_prefix(st, "%s", path);
    return HEARTH_OK;
}
