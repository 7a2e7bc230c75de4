/*
 * quant-mix: the per-tensor type rules of llama-quantize (facts sheet §7.3-§7.6).
 *
 * The rules are written as one function per tensor category, each a chain of
 * "first matching condition wins", mirroring the order of §7.4 so a reader can
 * check them line by line against the sheet. Only the mixes in mix_table exist
 * here. The IQ1/IQ2/IQ3 mixes follow R1, R3, R4 and the IQ lines of R5-R11; where
 * the sheet is silent the assumption is stated at the line that makes it (IQ1
 * default types, which mixes need an imatrix, R4 for fused QKV / KV_B, the R4
 * ffn_down counter read as the block index).
 * Alternative rejected: a table of (category, condition, type) rows. The
 * conditions mix layer arithmetic, architecture and model labels, and a table
 * of predicates would be harder to audit than the plain chains below.
 */
#include "quant-mix.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "quant.h"

/* needs_imatrix: §7.2 marks IQ2_XXS/IQ2_XS required and IQ3_XXS required at the 2026 head;
 * the sheet does not detail IQ2_S/IQ2_M/IQ1_S/IQ1_M, we assume the same for them because their
 * default types are IQ2/IQ1 grids like IQ2_XXS's. IQ3_XS/IQ3_S/IQ3_M (IQ3_S default) assumed
 * optional. The flag changes no rule but IQ3_XXS's (R5, R8). */
static const struct quant_mix mix_table[] = {
    {"ALL_F32", QUANT_FTYPE_ALL_F32, HEARTH_DTYPE_F32, false},
    {"F16", QUANT_FTYPE_F16, HEARTH_DTYPE_F16, false},
    {"BF16", QUANT_FTYPE_BF16, HEARTH_DTYPE_BF16, false},
    {"Q4_0", QUANT_FTYPE_Q4_0, HEARTH_DTYPE_Q4_0, false},
    {"Q4_1", QUANT_FTYPE_Q4_1, HEARTH_DTYPE_Q4_1, false},
    {"Q5_0", QUANT_FTYPE_Q5_0, HEARTH_DTYPE_Q5_0, false},
    {"Q5_1", QUANT_FTYPE_Q5_1, HEARTH_DTYPE_Q5_1, false},
    {"Q8_0", QUANT_FTYPE_Q8_0, HEARTH_DTYPE_Q8_0, false},
    {"Q2_K", QUANT_FTYPE_Q2_K, HEARTH_DTYPE_Q2_K, false},
    {"Q3_K_S", QUANT_FTYPE_Q3_K_S, HEARTH_DTYPE_Q3_K, false},
    {"Q3_K_M", QUANT_FTYPE_Q3_K_M, HEARTH_DTYPE_Q3_K, false},
    {"Q3_K_L", QUANT_FTYPE_Q3_K_L, HEARTH_DTYPE_Q3_K, false},
    {"Q4_K_S", QUANT_FTYPE_Q4_K_S, HEARTH_DTYPE_Q4_K, false},
    {"Q4_K_M", QUANT_FTYPE_Q4_K_M, HEARTH_DTYPE_Q4_K, false},
    {"Q5_K_S", QUANT_FTYPE_Q5_K_S, HEARTH_DTYPE_Q5_K, false},
    {"Q5_K_M", QUANT_FTYPE_Q5_K_M, HEARTH_DTYPE_Q5_K, false},
    {"Q6_K", QUANT_FTYPE_Q6_K, HEARTH_DTYPE_Q6_K, false},
    {"IQ4_NL", QUANT_FTYPE_IQ4_NL, HEARTH_DTYPE_IQ4_NL, false},
    {"IQ4_XS", QUANT_FTYPE_IQ4_XS, HEARTH_DTYPE_IQ4_XS, false},
    /* §7.2 and its "not detailed" line: IQ2_S -> IQ2_XS default, IQ2_M -> IQ2_S,
     * IQ3_XS/IQ3_S/IQ3_M -> IQ3_S; IQ1_S/IQ1_M assumed to default to their own type */
    {"IQ1_S", QUANT_FTYPE_IQ1_S, HEARTH_DTYPE_IQ1_S, true},
    {"IQ1_M", QUANT_FTYPE_IQ1_M, HEARTH_DTYPE_IQ1_M, true},
    {"IQ2_XXS", QUANT_FTYPE_IQ2_XXS, HEARTH_DTYPE_IQ2_XXS, true},
    {"IQ2_XS", QUANT_FTYPE_IQ2_XS, HEARTH_DTYPE_IQ2_XS, true},
    {"IQ2_S", QUANT_FTYPE_IQ2_S, HEARTH_DTYPE_IQ2_XS, true},
    {"IQ2_M", QUANT_FTYPE_IQ2_M, HEARTH_DTYPE_IQ2_S, true},
    {"IQ3_XXS", QUANT_FTYPE_IQ3_XXS, HEARTH_DTYPE_IQ3_XXS, true},
    {"IQ3_XS", QUANT_FTYPE_IQ3_XS, HEARTH_DTYPE_IQ3_S, false},
    {"IQ3_S", QUANT_FTYPE_IQ3_S, HEARTH_DTYPE_IQ3_S, false},
    {"IQ3_M", QUANT_FTYPE_IQ3_M, HEARTH_DTYPE_IQ3_S, false},
};

#define MIX_COUNT (sizeof mix_table / sizeof mix_table[0])

size_t quant_mix_count(void)
{
    return MIX_COUNT;
}

const struct quant_mix *quant_mix_at(size_t i)
{
    return i < MIX_COUNT ? &mix_table[i] : NULL;
}

void quant_mix_list(char *buf, size_t size)
{
    size_t used = 0;
    if (size == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < MIX_COUNT && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", mix_table[i].name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

hearth_status quant_mix_from_name(const char *name, const struct quant_mix **out)
{
    *out = NULL;
    if (name && !strcasecmp(name, "F32"))
        name = "ALL_F32";
    for (size_t i = 0; name && i < MIX_COUNT; i++) {
        if (!strcasecmp(name, mix_table[i].name)) {
            *out = &mix_table[i];
            return HEARTH_OK;
        }
    }
    char names[512];
    quant_mix_list(names, sizeof names);
    return err_set(HEARTH_ERR_NOT_FOUND, "unknown quantization type '%s' (known: %s)",
                   name ? name : "(null)", names);
}

const struct quant_mix *quant_mix_from_ftype(uint32_t ftype)
{
    for (size_t i = 0; i < MIX_COUNT; i++)
        if ((uint32_t)mix_table[i].ftype == ftype)
            return &mix_table[i];
    return NULL;
}

hearth_status quant_mix_ctx_init(struct quant_mix_ctx *ctx, const struct quant_mix *mix,
                                 const char *arch, uint32_t n_layer, uint32_t n_head,
                                 uint32_t n_head_kv, uint32_t n_expert, bool has_output)
{
    memset(ctx, 0, sizeof *ctx);
    if (!mix || !arch)
        return err_set(HEARTH_ERR_INVALID_ARG, "quant_mix_ctx_init: mix and arch are required");
    if (n_head_kv == 0 || n_head % n_head_kv != 0)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "quant_mix_ctx_init: n_head %u is not a multiple of n_head_kv %u", n_head,
                       n_head_kv);
    ctx->mix = mix;
    snprintf(ctx->arch, sizeof ctx->arch, "%s", arch);
    ctx->n_layer = n_layer;
    ctx->n_head = n_head;
    ctx->n_head_kv = n_head_kv;
    ctx->n_expert = n_expert;
    ctx->has_output = has_output;
    ctx->imatrix = mix->needs_imatrix;
    /* llama.cpp's size label; only the "70B" one changes a rule (R5) */
    if (!strcmp(arch, "llama"))
        ctx->is_70b = n_layer == 80 && n_head != n_head_kv;
    else if (!strcmp(arch, "qwen2"))
        ctx->is_70b = n_layer == 80;
    return HEARTH_OK;
}

bool quant_mix_use_more_bits(uint32_t i, uint32_t n)
{
    uint32_t lo = n / 8, hi = 7 * n / 8;
    return i < lo || i >= hi || (i - lo) % 3 == 2;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && !memcmp(s + ls - lx, suffix, lx);
}

bool quant_mix_is_quantizable(const char *name, uint32_t n_dims)
{
    return n_dims >= 2 && ends_with(name, "weight") && !strstr(name, "_norm.weight") &&
           !strstr(name, "ffn_gate_inp.weight");
}

enum category {
    CAT_OTHER,
    CAT_OUTPUT,
    CAT_TOKEN_EMBD,
    CAT_ATTN_QKV,
    CAT_ATTN_KV_B,
    CAT_ATTN_V,
    CAT_ATTN_K,
    CAT_ATTN_Q,
    CAT_ATTN_OUTPUT,
    CAT_FFN_UP,
    CAT_FFN_GATE,
    CAT_FFN_DOWN,
};

static enum category classify(const char *name)
{
    if (!strcmp(name, "output.weight"))
        return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight"))
        return CAT_TOKEN_EMBD;
    static const struct {
        const char *needle;
        enum category cat;
    } contains[] = {
        {"attn_qkv.weight", CAT_ATTN_QKV},
        {"attn_kv_b.weight", CAT_ATTN_KV_B},
        {"attn_v.weight", CAT_ATTN_V},
        {"attn_k.weight", CAT_ATTN_K},
        {"attn_q.weight", CAT_ATTN_Q},
        {"attn_output.weight", CAT_ATTN_OUTPUT},
        {"ffn_up", CAT_FFN_UP},
        {"ffn_gate", CAT_FFN_GATE},
        {"ffn_down", CAT_FFN_DOWN},
    };
    for (size_t i = 0; i < sizeof contains / sizeof contains[0]; i++)
        if (strstr(name, contains[i].needle))
            return contains[i].cat;
    return CAT_OTHER;
}

/* The N of "blk.N."; 0 for tensors outside the blocks. Stands in for llama.cpp's counters. */
static uint32_t block_index(const char *name)
{
    if (strncmp(name, "blk.", 4) != 0)
        return 0;
    uint32_t v = 0;
    for (const char *p = name + 4; *p >= '0' && *p <= '9'; p++) {
        if (v > 100000000u)
            return v;
        v = v * 10u + (uint32_t)(*p - '0');
    }
    return v;
}

static int64_t blck_of(hearth_dtype t)
{
    const struct quant_traits *q = quant_get(t);
    return q ? q->blck : 0;
}

/* R4's family (§7.4): for these mixes R5-R11 are never reached. */
static bool iq2_family(enum quant_ftype f)
{
    return f == QUANT_FTYPE_IQ2_XXS || f == QUANT_FTYPE_IQ2_XS || f == QUANT_FTYPE_IQ2_S ||
           f == QUANT_FTYPE_IQ2_M || f == QUANT_FTYPE_IQ1_S || f == QUANT_FTYPE_IQ1_M;
}

/* R1: the LM head (and a tied token_embd). */
static hearth_dtype rule_output(const struct quant_mix_ctx *c, uint64_t ne0)
{
    hearth_dtype d = c->mix->default_type;
    int64_t b = blck_of(d);
    if (b <= 0 || ne0 % (uint64_t)b != 0 || !strcmp(c->arch, "falcon"))
        return HEARTH_DTYPE_Q8_0;
    /* R1's set {IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S, IQ2_S, IQ2_M, IQ1_M}: R4's family + IQ3_XXS */
    if (iq2_family(c->mix->ftype) || c->mix->ftype == QUANT_FTYPE_IQ3_XXS)
        return HEARTH_DTYPE_Q5_K;
    if (d != HEARTH_DTYPE_Q8_0)
        return HEARTH_DTYPE_Q6_K;
    return HEARTH_DTYPE_Q8_0;
}

/* R3: an untied token_embd. */
static hearth_dtype rule_token_embd(const struct quant_mix_ctx *c)
{
    switch (c->mix->ftype) {
    case QUANT_FTYPE_IQ2_XXS:
    case QUANT_FTYPE_IQ2_XS:
    case QUANT_FTYPE_IQ1_S:
    case QUANT_FTYPE_IQ1_M:
        return HEARTH_DTYPE_Q2_K;
    case QUANT_FTYPE_IQ2_S:
    case QUANT_FTYPE_IQ2_M:
    case QUANT_FTYPE_IQ3_XXS:
        return HEARTH_DTYPE_IQ3_S;
    default:
        return c->mix->default_type; /* IQ3_XS/IQ3_S/IQ3_M too: D = IQ3_S */
    }
}

/*
 * R4: every block tensor of the IQ2/IQ1 family. IQ2_S/IQ2_M take IQ3_S where the
 * others take Q2_K. Assumptions: the sheet names QKV and KV_B with ATTN_V here
 * (its R5 says "at the 2026 head" for the same extension, R4 does not), so we
 * apply R4's attn_v line to them; the ffn_down counter of the sheet is read as
 * the block index (equal for dense models; §10 notes MoE files with both
 * ffn_down_exps and ffn_down_shexp, where llama.cpp's counter runs ahead).
 */
static hearth_dtype rule_iq2_family(const struct quant_mix_ctx *c, enum category cat, uint32_t i)
{
    enum quant_ftype f = c->mix->ftype;
    hearth_dtype d = c->mix->default_type;
    bool s_or_m = f == QUANT_FTYPE_IQ2_S || f == QUANT_FTYPE_IQ2_M;
    uint32_t n_gqa = c->n_head / c->n_head_kv;
    switch (cat) {
    case CAT_ATTN_V:
    case CAT_ATTN_QKV:
    case CAT_ATTN_KV_B:
        /* no 70B bump and no 8-expert Q8_0 here: those are R5's overrides */
        if (n_gqa >= 4 || c->n_expert >= 4)
            return HEARTH_DTYPE_Q4_K;
        return s_or_m ? HEARTH_DTYPE_IQ3_S : HEARTH_DTYPE_Q2_K;
    case CAT_ATTN_K:
        return c->n_expert == 8 ? HEARTH_DTYPE_Q4_K : d;
    case CAT_FFN_DOWN:
        if (i < c->n_layer / 8)
            return s_or_m ? HEARTH_DTYPE_IQ3_S : HEARTH_DTYPE_Q2_K;
        return d;
    case CAT_ATTN_OUTPUT:
        if (c->n_expert == 8)
            return HEARTH_DTYPE_Q5_K;
        if (f == QUANT_FTYPE_IQ1_S || f == QUANT_FTYPE_IQ1_M)
            return HEARTH_DTYPE_IQ2_XXS;
        return s_or_m ? HEARTH_DTYPE_IQ3_S : d;
    default:
        return d; /* attn_q, ffn_gate/up, other */
    }
}

/* R5: attn_v, i = block index, n = block count (one attn_v per block). */
static hearth_dtype rule_attn_v(const struct quant_mix_ctx *c, uint32_t i)
{
    enum quant_ftype f = c->mix->ftype;
    uint32_t n_gqa = c->n_head / c->n_head_kv;
    hearth_dtype t = c->mix->default_type;
    if (f == QUANT_FTYPE_Q2_K)
        t = n_gqa >= 4 ? HEARTH_DTYPE_Q4_K : HEARTH_DTYPE_Q3_K;
    else if (f == QUANT_FTYPE_IQ3_XXS)
        t = n_gqa >= 4 ? HEARTH_DTYPE_Q4_K : c->imatrix ? HEARTH_DTYPE_IQ3_XXS : HEARTH_DTYPE_IQ3_S;
    else if ((f == QUANT_FTYPE_IQ3_XS || f == QUANT_FTYPE_IQ3_S) && n_gqa >= 4)
        t = HEARTH_DTYPE_Q4_K;
    else if (f == QUANT_FTYPE_IQ3_M)
        t = HEARTH_DTYPE_Q4_K;
    else if (f == QUANT_FTYPE_Q3_K_M)
        t = i < 2 ? HEARTH_DTYPE_Q5_K : HEARTH_DTYPE_Q4_K;
    else if (f == QUANT_FTYPE_Q3_K_L)
        t = HEARTH_DTYPE_Q5_K;
    else if ((f == QUANT_FTYPE_IQ4_NL || f == QUANT_FTYPE_IQ4_XS) && n_gqa >= 4)
        t = HEARTH_DTYPE_Q5_K;
    else if ((f == QUANT_FTYPE_Q4_K_M || f == QUANT_FTYPE_Q5_K_M) &&
             quant_mix_use_more_bits(i, c->n_layer))
        t = HEARTH_DTYPE_Q6_K;
    else if (f == QUANT_FTYPE_Q4_K_S && i < 4)
        t = HEARTH_DTYPE_Q5_K;
    if (c->is_70b && (t == HEARTH_DTYPE_Q3_K || t == HEARTH_DTYPE_Q4_K))
        t = HEARTH_DTYPE_Q5_K;
    if (c->n_expert == 8)
        t = HEARTH_DTYPE_Q8_0;
    return t;
}

/* R6: attn_k. */
static hearth_dtype rule_attn_k(const struct quant_mix_ctx *c)
{
    if (c->n_expert == 8)
        return HEARTH_DTYPE_Q8_0;
    if (c->mix->ftype == QUANT_FTYPE_IQ3_XS)
        return HEARTH_DTYPE_IQ3_XXS;
    if (c->mix->ftype == QUANT_FTYPE_IQ3_XXS)
        return HEARTH_DTYPE_IQ2_S;
    return c->mix->default_type;
}

/* R7: attn_q. */
static hearth_dtype rule_attn_q(const struct quant_mix_ctx *c)
{
    if (c->mix->ftype == QUANT_FTYPE_IQ3_XS)
        return HEARTH_DTYPE_IQ3_XXS;
    if (c->mix->ftype == QUANT_FTYPE_IQ3_XXS)
        return HEARTH_DTYPE_IQ2_S;
    return c->mix->default_type;
}

/* R8: ffn_down. */
static hearth_dtype rule_ffn_down(const struct quant_mix_ctx *c, uint32_t i)
{
    enum quant_ftype f = c->mix->ftype;
    uint32_t n = c->n_layer;
    bool falcon = !strcmp(c->arch, "falcon");
    bool umb = quant_mix_use_more_bits(i, n);
    switch (f) {
    case QUANT_FTYPE_Q2_K:
        return HEARTH_DTYPE_Q3_K;
    case QUANT_FTYPE_IQ3_XXS: /* with an imatrix no later line matches IQ3_XXS: D */
        if (!c->imatrix)
            return i < n / 8 ? HEARTH_DTYPE_Q4_K : HEARTH_DTYPE_Q3_K;
        return c->mix->default_type;
    case QUANT_FTYPE_Q3_K_M:
        if (falcon)
            return umb ? HEARTH_DTYPE_Q4_K : HEARTH_DTYPE_Q3_K;
        return i < n / 16 ? HEARTH_DTYPE_Q5_K : HEARTH_DTYPE_Q4_K;
    case QUANT_FTYPE_IQ3_M:
        return i < n / 8 || (c->n_expert == 8 && umb) ? HEARTH_DTYPE_Q4_K : c->mix->default_type;
    case QUANT_FTYPE_Q3_K_L:
        return falcon ? HEARTH_DTYPE_Q4_K : HEARTH_DTYPE_Q5_K;
    case QUANT_FTYPE_Q4_K_M:
        if (falcon)
            return i < n / 16 ? HEARTH_DTYPE_Q6_K : umb ? HEARTH_DTYPE_Q5_K : HEARTH_DTYPE_Q4_K;
        return umb ? HEARTH_DTYPE_Q6_K : c->mix->default_type;
    case QUANT_FTYPE_IQ4_NL:
    case QUANT_FTYPE_IQ4_XS:
        return !c->imatrix && i < n / 8 ? HEARTH_DTYPE_Q5_K : c->mix->default_type;
    case QUANT_FTYPE_Q5_K_M:
        return umb ? HEARTH_DTYPE_Q6_K : c->mix->default_type;
    case QUANT_FTYPE_Q4_K_S:
        return !falcon && i < n / 8 ? HEARTH_DTYPE_Q5_K : c->mix->default_type;
    case QUANT_FTYPE_Q4_0:
        return c->imatrix && i < n / 8 ? HEARTH_DTYPE_Q4_1 : c->mix->default_type;
    case QUANT_FTYPE_Q5_0:
        return c->imatrix && i < n / 8 ? HEARTH_DTYPE_Q5_1 : c->mix->default_type;
    default:
        return c->mix->default_type;
    }
}

/* R9: attn_output. */
static hearth_dtype rule_attn_output(const struct quant_mix_ctx *c)
{
    enum quant_ftype f = c->mix->ftype;
    if (!strcmp(c->arch, "falcon"))
        return f == QUANT_FTYPE_Q3_K_L ? HEARTH_DTYPE_Q4_K : c->mix->default_type;
    if (c->n_expert == 8) {
        switch (f) {
        case QUANT_FTYPE_Q2_K:
        case QUANT_FTYPE_IQ3_XS:
        case QUANT_FTYPE_IQ3_XXS:
        case QUANT_FTYPE_Q3_K_S:
        case QUANT_FTYPE_Q3_K_M:
        case QUANT_FTYPE_IQ4_NL:
        case QUANT_FTYPE_Q4_K_S:
        case QUANT_FTYPE_Q4_K_M:
        case QUANT_FTYPE_IQ3_S:
        case QUANT_FTYPE_IQ3_M:
        case QUANT_FTYPE_IQ4_XS:
            return HEARTH_DTYPE_Q5_K;
        default:
            return c->mix->default_type;
        }
    }
    switch (f) {
    case QUANT_FTYPE_Q2_K:
        return HEARTH_DTYPE_Q3_K;
    case QUANT_FTYPE_IQ3_XXS:
        return HEARTH_DTYPE_IQ3_S;
    case QUANT_FTYPE_Q3_K_M:
        return HEARTH_DTYPE_Q4_K;
    case QUANT_FTYPE_Q3_K_L:
        return HEARTH_DTYPE_Q5_K;
    case QUANT_FTYPE_IQ3_M:
        return HEARTH_DTYPE_Q4_K;
    default:
        return c->mix->default_type;
    }
}

/* R10 (2025 behaviour): fused QKV. */
static hearth_dtype rule_attn_qkv(const struct quant_mix_ctx *c)
{
    switch (c->mix->ftype) {
    case QUANT_FTYPE_Q3_K_M:
    case QUANT_FTYPE_Q3_K_L:
    case QUANT_FTYPE_IQ3_M:
        return HEARTH_DTYPE_Q4_K;
    case QUANT_FTYPE_Q4_K_M:
        return HEARTH_DTYPE_Q5_K;
    case QUANT_FTYPE_Q5_K_M:
        return HEARTH_DTYPE_Q6_K;
    default:
        return c->mix->default_type;
    }
}

/* R11: ffn_gate and ffn_up. */
static hearth_dtype rule_ffn_gate_up(const struct quant_mix_ctx *c, uint32_t i)
{
    uint32_t n = c->n_layer;
    if (c->mix->ftype == QUANT_FTYPE_IQ3_XS && i >= n / 8 && i < 7 * n / 8)
        return HEARTH_DTYPE_IQ3_XXS;
    return c->mix->default_type;
}

/* R5-R11: a block tensor under any mix outside R4's family. */
static hearth_dtype rule_block(const struct quant_mix_ctx *c, enum category cat, uint32_t i)
{
    switch (cat) {
    case CAT_ATTN_V:
        return rule_attn_v(c, i);
    case CAT_ATTN_K:
        return rule_attn_k(c);
    case CAT_ATTN_Q:
        return rule_attn_q(c);
    case CAT_ATTN_OUTPUT:
        return rule_attn_output(c);
    case CAT_ATTN_QKV:
        return rule_attn_qkv(c);
    case CAT_FFN_DOWN:
        return rule_ffn_down(c, i);
    case CAT_FFN_GATE:
    case CAT_FFN_UP:
        return rule_ffn_gate_up(c, i);
    default:
        return c->mix->default_type; /* kv_b (2025: no rule), other */
    }
}

/* §7.6: the 32-block stand-in for a type whose block does not divide the row. */
static hearth_dtype fallback_of(hearth_dtype t)
{
    switch (t) {
    case HEARTH_DTYPE_IQ1_S:
    case HEARTH_DTYPE_IQ1_M:
    case HEARTH_DTYPE_IQ2_XXS:
    case HEARTH_DTYPE_IQ2_XS:
    case HEARTH_DTYPE_IQ2_S:
    case HEARTH_DTYPE_IQ3_XXS:
    case HEARTH_DTYPE_IQ3_S:
    case HEARTH_DTYPE_IQ4_XS:
    case HEARTH_DTYPE_Q2_K:
    case HEARTH_DTYPE_Q3_K:
        return HEARTH_DTYPE_IQ4_NL;
    case HEARTH_DTYPE_TQ1_0:
    case HEARTH_DTYPE_TQ2_0:
        return HEARTH_DTYPE_Q4_0;
    case HEARTH_DTYPE_Q4_K:
        return HEARTH_DTYPE_Q5_0;
    case HEARTH_DTYPE_Q5_K:
        return HEARTH_DTYPE_Q5_1;
    case HEARTH_DTYPE_Q6_K:
        return HEARTH_DTYPE_Q8_0;
    default:
        return HEARTH_DTYPE_COUNT; /* no fallback */
    }
}

hearth_status quant_mix_type_for(const struct quant_mix_ctx *ctx, const char *name, uint32_t n_dims,
                                 const uint64_t *ne, hearth_dtype *out)
{
    *out = HEARTH_DTYPE_F32;
    if (!ctx || !ctx->mix || !name || !ne || n_dims == 0)
        return err_set(HEARTH_ERR_INVALID_ARG, "quant_mix_type_for: missing argument");
    if (!quant_mix_is_quantizable(name, n_dims))
        return HEARTH_OK;
    hearth_dtype d = ctx->mix->default_type;
    if (!quant_get(d) || !quant_get(d)->is_quantized) {
        *out = d; /* ALL_F32, F16, BF16: every matrix gets the default, no rules */
        return HEARTH_OK;
    }
    uint32_t i = block_index(name);
    hearth_dtype t = d;
    enum category cat = classify(name);
    switch (cat) {
    case CAT_OUTPUT:
        t = rule_output(ctx, ne[0]);
        break;
    case CAT_TOKEN_EMBD:
        t = ctx->has_output ? rule_token_embd(ctx) : rule_output(ctx, ne[0]);
        break;
    default:
        if (iq2_family(ctx->mix->ftype)) {
            t = rule_iq2_family(ctx, cat, i);
            break;
        }
        t = rule_block(ctx, cat, i);
        break;
    }
    int64_t b = blck_of(t);
    if (b > 0 && ne[0] % (uint64_t)b == 0) {
        *out = t;
        return HEARTH_OK;
    }
    hearth_dtype fb = fallback_of(t);
    if (fb == HEARTH_DTYPE_COUNT)
        return err_set(HEARTH_ERR_UNSUPPORTED,
                       "tensor '%s': row length %llu is not a multiple of %s's block of %lld and "
                       "%s has no fallback type",
                       name, (unsigned long long)ne[0], hearth_dtype_name(t), (long long)b,
                       hearth_dtype_name(t));
    b = blck_of(fb);
    *out = (b > 0 && ne[0] % (uint64_t)b == 0) ? fb : HEARTH_DTYPE_F16;
    return HEARTH_OK;
}
