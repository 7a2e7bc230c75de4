/*
 * plan: the model description and the placement (see plan.h for the outputs).
 *
 * Placement is first fit over "units" in order of value per byte of VRAM.
 * Decode reads every weight once per token, so any byte moved from host RAM to
 * a GPU saves (1/host_bw - 1/gpu_bw) seconds per token whatever tensor it
 * belongs to; what differs is what must move together and what is read less:
 *   class 0  output_norm, rope_freqs, the LM head: read in full every token;
 *   class 1  one unit per layer: its attention tensors + its KV cache. They are
 *            atomic: attention runs where the KV lives, and KV is read every
 *            token too (more, the longer the context);
 *   class 2  FFN tensors one by one, layer by layer (norm, gate, up, down);
 *            with sched_layout, per layer its gate/up part then its down part
 *            (the scheduler's FFN and FFN_DOWN blocks); a GPU getting a down
 *            part without its gate/up also pays the wider GLU staging;
 *   class 3  MoE expert stacks (decode reads n_expert_used / n_expert of them);
 *   class 4  token_embd (untied): one row per token, so last.
 * Within a class units go by layer, then tensor index, so plans are
 * deterministic. Each unit goes to the first GPU, fastest first (memory
 * bandwidth, then index), whose room holds it, else to host RAM. Room only
 * shrinks, so a unit left on the host is larger than every GPU's final room:
 * the plan never leaves a tensor in RAM that a GPU could still hold.
 *
 * A GPU's room is its budget less fixed costs: reserve, scratch (with the
 * logits on the fastest GPU) and, when host weights will be streamed for
 * prefill, a double buffer of twice the largest streamable tensor. Streaming
 * is decided by a second pass: pass one places without the stream buffer; if
 * host-resident FFN weights remain and the cost model says streaming beats the
 * CPU, pass two places again with the buffer reserved.
 *
 * Alternatives rejected: whole layers (llama.cpp's -ngl) waste up to a layer
 * of VRAM and cannot keep attention on the GPU while FFN spills; an exact
 * knapsack gains nothing, as every weight byte has the same decode value.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kv-quant.h"
#include "plan.h"
#include "quant.h"

/* ---- model description ---------------------------------------------------- */

static enum plan_role role_of(const char *name, bool tied, int32_t *layer)
{
    *layer = -1;
    if (!strcmp(name, "token_embd.weight"))
        return tied ? PLAN_ROLE_OUTPUT : PLAN_ROLE_EMBD;
    if (!strncmp(name, "output.", 7))
        return PLAN_ROLE_OUTPUT;
    if (!strncmp(name, "output_norm.", 12))
        return PLAN_ROLE_OUTPUT_NORM;
    if (strncmp(name, "blk.", 4) != 0)
        return PLAN_ROLE_OTHER;
    char *end;
    long l = strtol(name + 4, &end, 10);
    if (end == name + 4 || *end != '.' || l < 0 || l > 1000000)
        return PLAN_ROLE_OTHER;
    *layer = (int32_t)l;
    const char *rest = end + 1;
    if (!strncmp(rest, "attn_", 5) || !strncmp(rest, "post_attention_norm", 19))
        return PLAN_ROLE_ATTN;
    if (strstr(rest, "_exps") || strstr(rest, "_chexps"))
        return PLAN_ROLE_EXPERT;
    if (!strncmp(rest, "ffn_norm", 8) || !strncmp(rest, "post_ffw_norm", 13) ||
        !strncmp(rest, "ffn_gate_inp", 12))
        return PLAN_ROLE_FFN_NORM;
    return PLAN_ROLE_FFN;
}

static void set_name(struct plan_model *m, const struct gguf_file *f)
{
    struct gguf_str s;
    if (gguf_get_str(f, "general.name", &s) == HEARTH_OK && s.len > 0) {
        size_t n = s.len < sizeof m->name - 1 ? (size_t)s.len : sizeof m->name - 1;
        memcpy(m->name, s.ptr, n);
        m->name[n] = '\0';
        return;
    }
    err_clear();
    const char *b = strrchr(f->path, '/');
    snprintf(m->name, sizeof m->name, "%s", b ? b + 1 : f->path);
}

hearth_status plan_model_from_gguf(const struct gguf_file *f, struct plan_model *out)
{
    memset(out, 0, sizeof *out);
    hearth_status st = arch_info_read(f, &out->arch);
    if (st)
        return st;
    set_name(out, f);
    if (f->n_tensors == 0)
        return err_set(HEARTH_ERR_BAD_FILE, "%s: no tensors to plan", f->path);
    out->tensors = calloc((size_t)f->n_tensors, sizeof *out->tensors);
    if (!out->tensors)
        return err_set(HEARTH_ERR_NO_MEMORY, "%s: plan: %llu tensors", f->path,
                       (unsigned long long)f->n_tensors);
    out->n_tensors = (size_t)f->n_tensors;
    for (size_t i = 0; i < out->n_tensors; i++) {
        const struct gguf_tensor *g = &f->tensors[i];
        struct plan_model_tensor *t = &out->tensors[i];
        size_t n = g->name.len < sizeof t->name - 1 ? (size_t)g->name.len : sizeof t->name - 1;
        memcpy(t->name, g->name.ptr, n);
        t->name[n] = '\0';
        t->type = g->type;
        t->n_dims = g->n_dims;
        memcpy(t->ne, g->ne, sizeof t->ne);
        t->nbytes = g->nbytes;
        t->role = role_of(t->name, out->arch.tied, &t->layer);
        if (t->layer >= (int32_t)out->arch.n_layer)
            t->role = PLAN_ROLE_OTHER; /* a block past block_count: keep it, place it simply */
    }
    return HEARTH_OK;
}

hearth_status plan_model_retype(const struct plan_model *src, const struct quant_mix *mix,
                                bool imatrix, struct plan_model *out)
{
    struct quant_mix_ctx ctx;
    memset(out, 0, sizeof *out);
    hearth_status st = quant_mix_ctx_init(&ctx, mix, src->arch.arch, src->arch.n_layer,
                                          src->arch.n_head, src->arch.n_head_kv,
                                          src->arch.n_expert, !src->arch.tied);
    if (st)
        return st;
    ctx.imatrix = imatrix;
    *out = *src;
    out->tensors = malloc(src->n_tensors * sizeof *out->tensors);
    if (!out->tensors)
        return err_set(HEARTH_ERR_NO_MEMORY, "plan: retype %zu tensors", src->n_tensors);
    memcpy(out->tensors, src->tensors, src->n_tensors * sizeof *out->tensors);
    for (size_t i = 0; i < out->n_tensors; i++) {
        struct plan_model_tensor *t = &out->tensors[i];
        uint64_t row;
        hearth_dtype ty;
        /* 1-D tensors keep their type (norms F32; the converter's choice, not the mix's) */
        if (quant_mix_is_quantizable(t->name, t->n_dims)) {
            if ((st = quant_mix_type_for(&ctx, t->name, t->n_dims, t->ne, &ty)))
                goto fail;
        } else {
            ty = t->type;
        }
        if (!quant_row_bytes(ty, t->ne[0], &row)) {
            st = err_set(HEARTH_ERR_UNSUPPORTED, "%s: %s: %s rows of %llu elements", mix->name,
                         t->name, hearth_dtype_name(ty), (unsigned long long)t->ne[0]);
            goto fail;
        }
        t->type = ty;
        t->nbytes = row * t->ne[1] * t->ne[2] * t->ne[3];
    }
    return HEARTH_OK;
fail:
    free(out->tensors);
    memset(out, 0, sizeof *out);
    return st;
}

void plan_model_free(struct plan_model *m)
{
    if (!m)
        return;
    free(m->tensors);
    memset(m, 0, sizeof *m);
}

uint64_t plan_model_bytes(const struct plan_model *m)
{
    uint64_t s = 0;
    for (size_t i = 0; i < m->n_tensors; i++)
        s += m->tensors[i].nbytes;
    return s;
}

uint64_t plan_model_params(const struct plan_model *m)
{
    uint64_t s = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const uint64_t *ne = m->tensors[i].ne;
        s += ne[0] * ne[1] * ne[2] * ne[3];
    }
    return s;
}

/* ---- options -------------------------------------------------------------- */

void plan_opts_default(struct plan_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_gpu_layers = -1;
}

static hearth_status resolve_opts(const struct plan_model *m, const struct plan_opts *in,
                                  struct plan_opts *o)
{
    if (in)
        *o = *in;
    else
        plan_opts_default(o);
    if (o->n_ctx == 0)
        o->n_ctx = m->arch.n_ctx_train && m->arch.n_ctx_train < 4096 ? m->arch.n_ctx_train
                                                                      : 4096;
    if (o->n_parallel == 0)
        o->n_parallel = 1;
    if (o->n_batch == 0)
        o->n_batch = 512;
    if (o->n_prompt == 0)
        o->n_prompt = 512;
    if (o->n_prompt > o->n_ctx)
        o->n_prompt = o->n_ctx;
    if (o->n_logits == 0)
        o->n_logits = o->n_parallel;
    if (o->n_logits > o->n_batch)
        o->n_logits = o->n_batch;
    const int kt[2] = {o->kv_type_k, o->kv_type_v};
    const uint32_t hd[2] = {m->arch.head_dim_k, m->arch.head_dim_v};
    for (int i = 0; i < 2; i++) {
        if ((unsigned)kt[i] >= KVQ_TYPE_COUNT)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "plan: KV type id %d for %s: expected f16, q8_0, q4_0, rot4 or rot3",
                           kt[i], i ? "V" : "K");
        if (kt[i] != KVQ_F16 && kvq_check((enum kvq_type)kt[i], (int)hd[i]) != HEARTH_OK)
            return err_set(HEARTH_ERR_UNSUPPORTED,
                           "plan: KV type %s for %s: head_dim %u is not a multiple of 32 in 32..%d",
                           kvq_type_name((enum kvq_type)kt[i]), i ? "V" : "K", hd[i],
                           KVQ_MAX_HEAD_DIM);
    }
    if (o->n_ctx > (1u << 24) || o->n_parallel > 4096 || o->n_batch > 65536)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "plan: context %u x %u sequences, batch %u: out of range", o->n_ctx,
                       o->n_parallel, o->n_batch);
    return HEARTH_OK;
}

/* ---- reasons -------------------------------------------------------------- */

hearth_status plan__reason(struct plan *p, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **r = realloc(p->reasons, (p->n_reasons + 1) * sizeof *r);
    if (!r)
        return err_set(HEARTH_ERR_NO_MEMORY, "plan: reason list");
    p->reasons = r;
    size_t n = strlen(buf) + 1;
    if (!(r[p->n_reasons] = malloc(n)))
        return err_set(HEARTH_ERR_NO_MEMORY, "plan: reason text");
    memcpy(r[p->n_reasons++], buf, n);
    return HEARTH_OK;
}

/* ---- placement -------------------------------------------------------------- */

/*
 * Which tensors move together: one tensor, a layer's attention (+ KV), a
 * layer's FFN gate/up part, its down part, the head.
 */
enum unit_group { GROUP_ONE, GROUP_ATTN, GROUP_FFN, GROUP_FFN_DOWN, GROUP_HEAD, GROUP_NONE };

struct unit {
    int cls;
    int32_t layer;    /* -1 outside blocks */
    int sub;          /* order inside a layer: norms before matrices */
    size_t first;     /* first tensor index (ties) */
    uint64_t bytes;   /* alloc bytes of its tensors (+ KV for attention) */
    enum unit_group group;
    bool host_only;   /* the loader computes it on the host whatever the room */
    /*
     * Its largest single buffer, which must fit a GPU's max_buffer_bytes:
     * a tensor (largest_tensor), the layer's K or V cache (attention), or
     * the activations with the logits (the head).
     */
    uint64_t largest;
    enum { BIG_TENSOR, BIG_KV, BIG_LOGITS } largest_kind;
    size_t largest_tensor;
    /*
     * The head's matrix (SIZE_MAX: none): not in largest, as the loader
     * splits it by rows to fit a GPU's buffers (plan_head_split_rows).
     */
    size_t split_tensor;
};

static int unit_cmp(const void *pa, const void *pb)
{
    const struct unit *a = pa, *b = pb;
    if (a->cls != b->cls)
        return a->cls < b->cls ? -1 : 1;
    if (a->layer != b->layer)
        return a->layer < b->layer ? -1 : 1;
    if (a->sub != b->sub)
        return a->sub < b->sub ? -1 : 1;
    return a->first < b->first ? -1 : a->first > b->first;
}

static uint64_t align_up(uint64_t x)
{
    return plan_align_up(x);
}

/* RoPE frequency factors: every device running attention keeps a copy (tiny). */
static bool is_rope(const struct plan_model_tensor *t)
{
    return t->role == PLAN_ROLE_OTHER && !strcmp(t->name, "rope_freqs.weight");
}

bool plan__ffn_down_part(const struct plan_model_tensor *t)
{
    if (t->role != PLAN_ROLE_FFN && t->role != PLAN_ROLE_FFN_NORM)
        return false; /* expert stacks stay with the gate/up part (no MoE split yet) */
    const char *r = strchr(t->name, '.');
    r = r ? strchr(r + 1, '.') : NULL;
    if (!r)
        return false;
    r++;
    return (!strncmp(r, "ffn_down", 8) && (r[8] == '.' || r[8] == '\0')) ||
           !strncmp(r, "post_ffw_norm", 13);
}

static enum unit_group group_of(const struct plan_model_tensor *t, bool sched_layout)
{
    if (is_rope(t))
        return GROUP_NONE;
    switch (t->role) {
    case PLAN_ROLE_ATTN:
        return GROUP_ATTN;
    case PLAN_ROLE_OUTPUT:
    case PLAN_ROLE_OUTPUT_NORM:
        return GROUP_HEAD; /* the final norm runs where the LM head does */
    case PLAN_ROLE_FFN_NORM:
    case PLAN_ROLE_FFN:
    case PLAN_ROLE_EXPERT:
        if (!sched_layout)
            return GROUP_ONE;
        return plan__ffn_down_part(t) ? GROUP_FFN_DOWN : GROUP_FFN;
    default:
        return GROUP_ONE;
    }
}

/*
 * The scheduler streams FFN blocks only (it holds no logits buffer on a GPU
 * that does not own the head), so under sched_layout a host head is computed
 * by the CPU and must not size the stream double buffer.
 */
bool plan__streamable(const struct plan_model *m, const struct plan *p, size_t i, int gpu)
{
    const struct plan_model_tensor *t = &m->tensors[i];
    const uint64_t cap = p->devs.dev[gpu].max_buffer_bytes;
    return p->tensors[i].resident == PLAN_HOST && t->n_dims >= 2 &&
           (t->role == PLAN_ROLE_FFN || t->role == PLAN_ROLE_EXPERT ||
            (t->role == PLAN_ROLE_OUTPUT && !p->opts.sched_layout)) &&
           (cap == 0 || plan_align_up(t->nbytes) <= cap); /* one half holds it */
}

/*
 * Whether the automatic placement skips GPU i: its measured Q4_K matvec rate
 * is below what the host reads at (its own measured rate, else its copy
 * bandwidth), so every byte placed there would decode slower than at home.
 */
static bool gpu_slower_than_host(const struct plan_devices *d, int i)
{
    const struct plan_device *h = &d->dev[PLAN_HOST], *g = &d->dev[i];
    double host = h->mv_bw[HEARTH_DTYPE_Q4_K] > 0 ? h->mv_bw[HEARTH_DTYPE_Q4_K] : h->mem_bw;
    return g->mv_bw[HEARTH_DTYPE_Q4_K] > 0 && g->mv_bw[HEARTH_DTYPE_Q4_K] < host;
}

/*
 * GPUs to place on (-ngl or every_gpu: all; automatic: those neither
 * software nor gpu_slower_than_host), by memory bandwidth (desc), then index.
 */
static int gpu_order(const struct plan_devices *d, const struct plan_opts *o, bool *slow,
                     int *order)
{
    int n = 0;
    for (int i = 1; i < d->n; i++) {
        slow[i] = o->n_gpu_layers < 0 && !o->every_gpu &&
                  (d->dev[i].software || gpu_slower_than_host(d, i));
        if (!slow[i])
            order[n++] = i;
    }
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && d->dev[order[b]].mem_bw > d->dev[order[b - 1]].mem_bw; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    return n;
}

struct placer {
    const struct plan_model *m;
    struct plan *p;
    struct unit *units;
    size_t n_units;
    uint64_t rope_bytes;              /* alloc bytes of rope_freqs (0: none) */
    uint64_t fixed[PLAN_MAX_DEVICES]; /* reserve + scratch + staging (+ stream) per GPU */
    uint64_t room[PLAN_MAX_DEVICES];
    bool usable[PLAN_MAX_DEVICES];
    /*
     * sched_layout: GPUs that already hold the wide (x + GLU output) boundary
     * staging, which the first down unit whose gate/up unit went elsewhere
     * brings; and per layer the device its gate/up unit went to in this pass.
     */
    bool wide[PLAN_MAX_DEVICES];
    int *up_dev;       /* [n_layer] */
    uint64_t glu_extra; /* plan_glu_stage_bytes - plan_stage_bytes */
    int order[PLAN_MAX_DEVICES];
    int n_gpu;
};

static hearth_status build_units(struct placer *pl)
{
    const struct plan_model *m = pl->m;
    const bool sl = pl->p->opts.sched_layout;
    uint32_t L = m->arch.n_layer;
    /* attention units [0, L), gate/up units [L, 2L) and down units [2L, 3L) when grouped */
    pl->units = calloc(m->n_tensors + 3 * (size_t)L + 1, sizeof *pl->units);
    if (!pl->units)
        return err_set(HEARTH_ERR_NO_MEMORY, "plan: %zu units", m->n_tensors + (size_t)L);
    /* one attention unit per layer, even with no attention tensor (it still holds KV) */
    for (uint32_t l = 0; l < L; l++) {
        struct unit *u = &pl->units[pl->n_units++];
        u->cls = 1;
        u->layer = (int32_t)l;
        u->first = m->n_tensors;
        u->bytes = pl->p->layers[l].kv_bytes;
        u->group = GROUP_ATTN;
        u->largest = plan_kv_layer_largest(&m->arch, &pl->p->opts, l);
        u->largest_kind = BIG_KV;
    }
    size_t ffn0 = pl->n_units, head = SIZE_MAX;
    if (sl) {
        /* gate/up before down within a layer (sub 0, 1): the order the layer computes */
        for (int part = 0; part < 2; part++)
            for (uint32_t l = 0; l < L; l++) {
                struct unit *u = &pl->units[pl->n_units++];
                u->cls = 2;
                u->layer = (int32_t)l;
                u->sub = part;
                u->first = m->n_tensors;
                u->group = part ? GROUP_FFN_DOWN : GROUP_FFN;
            }
    }
    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct plan_model_tensor *t = &m->tensors[i];
        uint64_t b = align_up(t->nbytes);
        enum unit_group g = group_of(t, sl);
        struct unit *u = NULL;
        if (g == GROUP_NONE) {
            pl->rope_bytes += b;
            continue;
        } else if (g == GROUP_ATTN) {
            u = &pl->units[t->layer];
        } else if (g == GROUP_FFN) {
            u = &pl->units[ffn0 + (size_t)t->layer];
        } else if (g == GROUP_FFN_DOWN) {
            u = &pl->units[ffn0 + L + (size_t)t->layer];
        } else if (g == GROUP_HEAD) {
            if (head == SIZE_MAX) {
                head = pl->n_units++;
                /* the head brings its logits buffer to whichever device computes it */
                const struct arch_info *a = &m->arch;
                uint64_t logits = plan__scratch_bytes(a, &pl->p->opts, false, true) -
                                  plan__scratch_bytes(a, &pl->p->opts, false, false);
                pl->units[head] = (struct unit){
                    .cls = 0, .layer = -1, .sub = 1, .first = i, .bytes = logits,
                    .group = GROUP_HEAD, .largest_kind = BIG_LOGITS,
                    /* the logits share the packed activation buffer */
                    .largest = plan__scratch_bytes(a, &pl->p->opts, false, true),
                    .split_tensor = SIZE_MAX};
            }
            u = &pl->units[head];
        }
        if (u) {
            u->bytes += b;
            if (i < u->first)
                u->first = i;
            if (g == GROUP_HEAD && t->role == PLAN_ROLE_OUTPUT)
                u->split_tensor = i;
            else if (b > u->largest)
                u->largest = b, u->largest_kind = BIG_TENSOR, u->largest_tensor = i;
            continue;
        }
        u = &pl->units[pl->n_units++];
        u->first = i;
        u->split_tensor = SIZE_MAX;
        u->bytes = b;
        u->largest = b;
        u->largest_kind = BIG_TENSOR;
        u->largest_tensor = i;
        u->layer = t->layer;
        u->group = GROUP_ONE;
        switch (t->role) {
        case PLAN_ROLE_FFN_NORM:
            u->cls = 2;
            u->sub = 0;
            break;
        case PLAN_ROLE_FFN:
            u->cls = 2;
            u->sub = 1;
            break;
        case PLAN_ROLE_EXPERT:
            u->cls = 3;
            break;
        case PLAN_ROLE_EMBD:
            u->cls = 4;
            u->host_only = sl; /* the scheduler gathers embedding rows on the host */
            break;
        default: /* OTHER */
            u->cls = 0;
            u->sub = 0;
            u->layer = -1;
            u->host_only = sl; /* the scheduler does not load what it does not know */
            break;
        }
    }
    qsort(pl->units, pl->n_units, sizeof *pl->units, unit_cmp);
    return HEARTH_OK;
}

static bool in_unit(const struct plan_model *m, const struct unit *u, size_t i, bool sl)
{
    if (u->group == GROUP_ONE)
        return i == u->first;
    const struct plan_model_tensor *t = &m->tensors[i];
    if (group_of(t, sl) != u->group)
        return false;
    return u->group == GROUP_HEAD || t->layer == u->layer;
}

/*
 * The extra staging unit u brings to device dev: a down unit whose gate/up
 * unit went to another device makes dev receive the GLU output, so its
 * boundary staging grows to plan_glu_stage_bytes (once per device).
 */
static uint64_t glu_extra(const struct placer *pl, const struct unit *u, int dev)
{
    if (u->group != GROUP_FFN_DOWN || pl->wide[dev] || pl->up_dev[u->layer] == dev)
        return 0;
    return pl->glu_extra;
}

/* Puts unit u on device dev: its tensors, and for an attention unit the layer's KV. */
static void assign(struct placer *pl, const struct unit *u, int dev)
{
    struct plan *p = pl->p;
    if (u->group == GROUP_ATTN)
        p->layers[u->layer].attn_dev = dev;
    if (u->group == GROUP_FFN)
        pl->up_dev[u->layer] = dev;
    uint64_t extra = glu_extra(pl, u, dev);
    if (extra)
        pl->wide[dev] = true;
    size_t i0 = u->group == GROUP_ONE ? u->first : 0;
    size_t i1 = u->group == GROUP_ONE ? u->first + 1 : pl->m->n_tensors;
    for (size_t i = i0; i < i1; i++) {
        if (!in_unit(pl->m, u, i, p->opts.sched_layout))
            continue;
        struct plan_tensor *t = &p->tensors[i];
        t->resident = t->compute = t->prefill = dev;
        t->unit_bytes = u->bytes;
        t->unit_largest = u->largest;
    }
    if (dev != PLAN_HOST)
        pl->room[dev] -= u->bytes + extra;
}

static bool in_manual(const struct plan_opts *o, uint32_t n_layer, const struct unit *u)
{
    if (u->cls == 4 || u->host_only)
        return false;
    if (u->layer < 0)
        return (uint32_t)o->n_gpu_layers > n_layer; /* -ngl n_layer+1 adds the output */
    return u->layer < o->n_gpu_layers;
}

/* Staging a device needs: boundary moves, and the upload halves unless it maps weights. */
static uint64_t staging_bytes(const struct plan_model *m, const struct plan *p, int d,
                              bool uploads)
{
    uint64_t b = plan_stage_bytes(p->opts.n_batch, m->arch.n_embd);
    if (uploads && !p->devs.dev[d].maps_weights)
        b += 2 * PLAN_UPLOAD_HALF;
    return b;
}

/* Notes that a buffer of `bytes` (what) kept a unit off GPU dev, or dev out of use. */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static void note_limit(struct plan *p, int dev, bool scratch, uint64_t bytes, const char *fmt,
                       ...)
{
    if (p->n_limits++ >= PLAN_MAX_LIMITS)
        return;
    struct plan_buffer_limit *l = &p->limits[p->n_limits - 1];
    l->dev = dev;
    l->scratch = scratch;
    l->bytes = bytes;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->what, sizeof l->what, fmt, ap);
    va_end(ap);
}

/* Whether every buffer of unit u fits one buffer of GPU g; if not, notes why. */
static bool fits_buffer(struct placer *pl, const struct unit *u, int g)
{
    const uint64_t cap = pl->p->devs.dev[g].max_buffer_bytes;
    const struct plan_model *m = pl->m;
    if (cap == 0)
        return true;
    if (u->largest <= cap) {
        uint64_t group = 0;
        if (u->split_tensor == SIZE_MAX ||
            plan__head_rows(&m->tensors[u->split_tensor], cap, &group) > 0)
            return true;
        note_limit(pl->p, g, false, group, "the smallest part of %s",
                   m->tensors[u->split_tensor].name);
        return false;
    }
    if (u->largest_kind == BIG_KV)
        note_limit(pl->p, g, false, u->largest, "the KV cache of layer %d", (int)u->layer);
    else if (u->largest_kind == BIG_LOGITS)
        note_limit(pl->p, g, false, u->largest, "the LM head's activations with %u x %u logits",
                   pl->p->opts.n_logits, m->arch.n_vocab);
    else
        note_limit(pl->p, g, false, u->largest, "%s", m->tensors[u->largest_tensor].name);
    return false;
}

/* One placement pass with the given stream buffer on the first GPU. */
static hearth_status place(struct placer *pl, uint64_t stream_bytes)
{
    struct plan *p = pl->p;
    const struct plan_opts *o = &p->opts;
    const struct arch_info *a = &pl->m->arch;
    p->n_limits = 0;
    for (int k = 0; k < pl->n_gpu; k++) {
        int g = pl->order[k];
        uint64_t budget = p->devs.dev[g].budget_bytes;
        const uint64_t scratch = plan__scratch_bytes(a, o, false, false),
                       cap = p->devs.dev[g].max_buffer_bytes;
        uint64_t fixed = plan__reserve_bytes(a, o, &p->devs.dev[g]) + scratch +
                         staging_bytes(pl->m, p, g, true) + pl->rope_bytes +
                         (k == 0 ? stream_bytes : 0);
        pl->fixed[g] = fixed;
        pl->usable[g] = fixed < budget;
        if (cap && scratch > cap) {
            /* the packed activation buffer is one buffer too */
            if (o->n_gpu_layers > 0 && k == 0)
                return err_set(HEARTH_ERR_DEVICE_OOM,
                               "plan: -ngl %d: the scratch of %u-token batches is one buffer "
                               "of %.1f MiB, larger than the largest buffer %s allocates "
                               "(%.1f MiB); a smaller batch (-b) fits",
                               o->n_gpu_layers, o->n_batch, (double)scratch / 1048576.0,
                               p->devs.dev[g].name, (double)cap / 1048576.0);
            note_limit(p, g, true, scratch, "the scratch of %u-token batches", o->n_batch);
            pl->usable[g] = false;
        }
        pl->room[g] = pl->usable[g] ? budget - fixed : 0;
    }
    memset(pl->wide, 0, sizeof pl->wide);
    for (uint32_t l = 0; l < p->n_layer; l++)
        pl->up_dev[l] = -1;
    for (size_t k = 0; k < pl->n_units; k++) {
        const struct unit *u = &pl->units[k];
        int dev = PLAN_HOST;
        if (u->host_only) {
            /* stays on the host */
        } else if (o->n_gpu_layers >= 0) {
            if (pl->n_gpu > 0 && in_manual(o, pl->m->arch.n_layer, u) &&
                fits_buffer(pl, u, pl->order[0])) {
                /* a unit with a buffer past the GPU's largest stays home (reasons say so) */
                int g = pl->order[0];
                if (u->bytes + glu_extra(pl, u, g) > pl->room[g])
                    return err_set(HEARTH_ERR_DEVICE_OOM,
                                   "plan: -ngl %d does not fit on %s: its budget of %.2f GiB "
                                   "leaves %.2f GiB for weights and KV, short of the next "
                                   "%.1f MiB",
                                   o->n_gpu_layers, p->devs.dev[g].name,
                                   (double)p->devs.dev[g].budget_bytes / 1073741824.0,
                                   (double)pl->room[g] / 1073741824.0,
                                   (double)u->bytes / 1048576.0);
                dev = g;
            }
        } else {
            for (int j = 0; j < pl->n_gpu; j++) {
                int g = pl->order[j];
                if (pl->usable[g] && u->bytes + glu_extra(pl, u, g) <= pl->room[g] &&
                    fits_buffer(pl, u, g)) {
                    dev = g;
                    break;
                }
            }
        }
        assign(pl, u, dev);
    }
    /* rope_freqs: resident with layer 0's attention (every attention device gets a copy) */
    for (size_t i = 0; i < pl->m->n_tensors; i++)
        if (is_rope(&pl->m->tensors[i])) {
            int d = p->n_layer ? p->layers[0].attn_dev : PLAN_HOST;
            p->tensors[i].resident = p->tensors[i].compute = p->tensors[i].prefill = d;
            p->tensors[i].unit_bytes = p->tensors[i].unit_largest =
                align_up(pl->m->tensors[i].nbytes);
        }
    return HEARTH_OK;
}

/* Host tensors streamable to the first GPU (pl->n_gpu > 0). */
static bool host_has_streamable(const struct placer *pl)
{
    for (size_t i = 0; i < pl->m->n_tensors; i++)
        if (plan__streamable(pl->m, pl->p, i, pl->order[0]))
            return true;
    return false;
}

static uint64_t max_host_streamable(const struct placer *pl)
{
    uint64_t b = 0;
    for (size_t i = 0; i < pl->m->n_tensors; i++)
        if (plan__streamable(pl->m, pl->p, i, pl->order[0]) &&
            align_up(pl->m->tensors[i].nbytes) > b)
            b = align_up(pl->m->tensors[i].nbytes);
    return b;
}

/* Whether streaming every streamable host tensor beats computing them on the CPU. */
static bool stream_worth(const struct placer *pl, int gpu)
{
    double cpu = 0, str = 0;
    for (size_t i = 0; i < pl->m->n_tensors; i++) {
        if (!plan__streamable(pl->m, pl->p, i, gpu))
            continue;
        double c, s;
        plan__prefill_cost(pl->m, &pl->p->devs, &pl->p->opts, i, gpu, &c, &s);
        cpu += c;
        str += s;
    }
    return str < cpu;
}

static void fill_usage(const struct placer *pl, uint64_t stream_bytes)
{
    struct plan *p = pl->p;
    const struct plan_model *m = pl->m;
    bool has_attn[PLAN_MAX_DEVICES] = {false}, glu_in[PLAN_MAX_DEVICES] = {false};
    int head_dev = PLAN_HOST;
    /* the devices that receive a GLU output: the scheduler's split layers (sched_layout) */
    for (uint32_t l = 0; l < p->n_layer && p->opts.sched_layout; l++)
        if (p->layers[l].ffn_up_dev != p->layers[l].ffn_down_dev)
            glu_in[p->layers[l].ffn_down_dev] = true;
    for (int d = 0; d < p->devs.n; d++) {
        memset(&p->use[d], 0, sizeof p->use[d]);
        p->use[d].budget = p->devs.dev[d].budget_bytes;
    }
    for (uint32_t l = 0; l < p->n_layer; l++) {
        p->use[p->layers[l].attn_dev].kv += p->layers[l].kv_bytes;
        has_attn[p->layers[l].attn_dev] = true;
    }
    /* offsets in file order, per resident device */
    for (size_t i = 0; i < m->n_tensors; i++) {
        struct plan_tensor *t = &p->tensors[i];
        t->alloc_bytes = align_up(m->tensors[i].nbytes);
        t->offset = p->use[t->resident].weights;
        p->use[t->resident].weights += t->alloc_bytes;
        if (m->tensors[i].role == PLAN_ROLE_OUTPUT)
            head_dev = t->compute;
        /* copies past the buffer: rope_freqs on every other attention device, and a
           tied token_embd on the host, which gathers the embedding rows */
        if (is_rope(&m->tensors[i]))
            for (int d = 0; d < p->devs.n; d++)
                if (has_attn[d] && d != t->resident)
                    p->use[d].copies += t->alloc_bytes;
        if (m->arch.tied && m->tensors[i].role == PLAN_ROLE_OUTPUT &&
            !strcmp(m->tensors[i].name, "token_embd.weight") && t->resident != PLAN_HOST)
            p->use[PLAN_HOST].copies += t->alloc_bytes;
    }
    for (int d = 0; d < p->devs.n; d++)
        p->use[d].weights += p->use[d].copies;
    /* the host always runs something (the embedding lookup, sampling) */
    for (int d = 0; d < p->devs.n; d++) {
        struct plan_usage *u = &p->use[d];
        bool used = d == PLAN_HOST || u->weights > 0 || u->kv > 0;
        if (used) {
            u->scratch = plan__scratch_bytes(&m->arch, &p->opts, d == PLAN_HOST, d == head_dev);
            u->staging = staging_bytes(m, p, d, u->weights > 0) + (glu_in[d] ? pl->glu_extra : 0);
        }
        if (used && d != PLAN_HOST) {
            u->reserve = plan__reserve_bytes(&m->arch, &p->opts, &p->devs.dev[d]);
            u->stream = pl->n_gpu > 0 && d == pl->order[0] ? stream_bytes : 0;
        }
    }
    /* host RAM the used GPUs' backends stage their own copies through, at its worst case */
    for (int d = 1; d < p->devs.n; d++)
        if (p->use[d].weights > 0 || p->use[d].kv > 0)
            p->use[PLAN_HOST].host_staging += p->devs.dev[d].host_staging_bytes;
    for (int d = 0; d < p->devs.n; d++) {
        struct plan_usage *u = &p->use[d];
        u->total = u->weights + u->kv + u->scratch + u->staging + u->stream + u->reserve +
                   u->host_staging;
        if (d == PLAN_HOST || u->total)
            u->room = u->total < u->budget ? u->budget - u->total : 0;
        else
            u->room = pl->room[d];
    }
    p->host_overcommitted = p->use[PLAN_HOST].total > p->use[PLAN_HOST].budget;
}

/*
 * Per layer, the device computing its gate/up part and its down part: the
 * one computing most of the part's bytes (with sched_layout a part is one
 * unit, so that is simply its device); a part with no tensor runs where the
 * layer's previous block does.
 */
static void fill_ffn_devs(const struct placer *pl)
{
    struct plan *p = pl->p;
    const struct plan_model *m = pl->m;
    for (uint32_t l = 0; l < p->n_layer; l++) {
        uint64_t bytes[2][PLAN_MAX_DEVICES];
        memset(bytes, 0, sizeof bytes);
        bool any[2] = {false, false};
        for (size_t i = 0; i < m->n_tensors; i++) {
            const struct plan_model_tensor *t = &m->tensors[i];
            if (t->layer != (int32_t)l ||
                (t->role != PLAN_ROLE_FFN && t->role != PLAN_ROLE_FFN_NORM &&
                 t->role != PLAN_ROLE_EXPERT))
                continue;
            int part = plan__ffn_down_part(t) ? 1 : 0;
            int c = p->tensors[i].compute;
            if (c >= 0 && c < PLAN_MAX_DEVICES) {
                bytes[part][c] += t->nbytes + 1; /* +1: a zero-byte tensor still counts */
                any[part] = true;
            }
        }
        int dev[2];
        for (int part = 0; part < 2; part++) {
            int best = PLAN_HOST;
            for (int d = 0; d < PLAN_MAX_DEVICES; d++)
                if (bytes[part][d] > bytes[part][best])
                    best = d;
            dev[part] = best;
        }
        p->layers[l].ffn_up_dev = any[0] ? dev[0] : p->layers[l].attn_dev;
        p->layers[l].ffn_down_dev = any[1] ? dev[1] : p->layers[l].ffn_up_dev;
    }
}

static void fill_layers(const struct placer *pl)
{
    struct plan *p = pl->p;
    for (uint32_t l = 0; l < p->n_layer; l++)
        p->layers[l].ffn_dev = -2; /* none seen yet */
    for (size_t i = 0; i < pl->m->n_tensors; i++) {
        const struct plan_model_tensor *t = &pl->m->tensors[i];
        if (t->layer < 0 || t->role == PLAN_ROLE_OTHER)
            continue;
        struct plan_layer *ly = &p->layers[t->layer];
        uint64_t b = p->tensors[i].alloc_bytes;
        if (t->role == PLAN_ROLE_ATTN) {
            ly->attn_bytes += b;
            continue;
        }
        ly->ffn_bytes += b;
        if (p->tensors[i].resident != PLAN_HOST)
            ly->ffn_gpu_bytes += b;
        if (t->n_dims < 2)
            continue; /* norms and biases follow; the matrices say where FFN runs */
        int dev = p->tensors[i].compute;
        ly->ffn_dev = ly->ffn_dev == -2 ? dev : ly->ffn_dev == dev ? dev : -1;
    }
    for (uint32_t l = 0; l < p->n_layer; l++)
        if (p->layers[l].ffn_dev == -2)
            p->layers[l].ffn_dev = p->layers[l].attn_dev;
}

hearth_status plan_make(const struct plan_model *m, const struct plan_devices *d,
                        const struct plan_opts *o, struct plan *out)
{
    hearth_status st;
    struct placer pl;
    memset(out, 0, sizeof *out);
    memset(&pl, 0, sizeof pl);
    if (!m || !d || d->n < 1 || d->n > PLAN_MAX_DEVICES || m->n_tensors == 0)
        return err_set(HEARTH_ERR_INVALID_ARG, "plan: no model or no devices");
    out->devs = *d;
    if ((st = resolve_opts(m, o, &out->opts)))
        return st;
    out->n_tensors = m->n_tensors;
    out->n_layer = m->arch.n_layer;
    out->tensors = calloc(m->n_tensors, sizeof *out->tensors);
    out->layers = calloc(out->n_layer ? out->n_layer : 1, sizeof *out->layers);
    if (!out->tensors || !out->layers) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "plan: %zu tensors", m->n_tensors);
        goto fail;
    }
    pl.m = m;
    pl.p = out;
    for (uint32_t l = 0; l < out->n_layer; l++)
        out->layers[l].kv_bytes = plan_kv_layer_bytes(&m->arch, &out->opts, l);
    pl.n_gpu = gpu_order(d, &out->opts, out->skipped_gpu, pl.order);
    pl.glu_extra = plan_glu_stage_bytes(out->opts.n_batch, m->arch.n_embd, m->arch.n_ff) -
                   plan_stage_bytes(out->opts.n_batch, m->arch.n_embd);
    pl.up_dev = calloc(out->n_layer ? out->n_layer : 1, sizeof *pl.up_dev);
    if (!pl.up_dev) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "plan: %u layers", out->n_layer);
        goto fail;
    }
    if ((st = build_units(&pl)))
        goto fail;
    if ((st = place(&pl, 0)))
        goto fail;
    uint64_t stream_bytes = 0;
    if (pl.n_gpu > 0 && !out->opts.no_stream && host_has_streamable(&pl) &&
        stream_worth(&pl, pl.order[0])) {
        /*
         * The double buffer holds two of the largest host-resident streamable
         * tensors. Reserving it can push a larger tensor to the host, so grow
         * and replace until it holds: room only shrinks, so this ends within a
         * few passes (at most one per distinct tensor size).
         */
        for (int pass = 0; pass < 16; pass++) {
            uint64_t biggest = max_host_streamable(&pl);
            if (2 * biggest <= stream_bytes)
                break;
            stream_bytes = 2 * biggest;
            if ((st = place(&pl, stream_bytes)))
                goto fail;
        }
        /* a GPU too small for the buffer streams nothing */
        if (!pl.usable[pl.order[0]]) {
            stream_bytes = 0;
            if ((st = place(&pl, 0)))
                goto fail;
        }
    }
    for (size_t i = 0; i < m->n_tensors; i++)
        out->tensors[i].kind =
            out->tensors[i].resident == PLAN_HOST ? PLAN_KIND_HOST : PLAN_KIND_DEVICE;
    fill_ffn_devs(&pl);
    fill_usage(&pl, stream_bytes);
    fill_layers(&pl);
    if (stream_bytes) {
        out->streaming = true;
        plan__decide_stream(m, out);
    }
    plan__predict(m, out);
    if ((st = plan__explain(m, out)))
        goto fail;
    free(pl.units);
    free(pl.up_dev);
    return HEARTH_OK;
fail:
    free(pl.units);
    free(pl.up_dev);
    plan_free(out);
    return st;
}

void plan_free(struct plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_reasons; i++)
        free(p->reasons[i]);
    free(p->reasons);
    free(p->tensors);
    free(p->layers);
    memset(p, 0, sizeof *p);
}

uint64_t plan_device_alloc_bytes(const struct plan *p, int i)
{
    if (i < 0 || i >= p->devs.n)
        return 0;
    const struct plan_usage *u = &p->use[i];
    uint64_t w = p->devs.dev[i].maps_weights ? 0 : u->weights;
    return w + u->kv + u->scratch + u->staging + u->stream;
}
