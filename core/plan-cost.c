/*
 * plan-cost: the speed model of a plan, and the plan's reasons in words.
 *
 * Decode (one step: one token for each of n_parallel sequences): each device
 * reads the weights it computes once (token_embd: one row per sequence; MoE
 * stacks: n_expert_used / n_expert of them) plus its layers' KV up to the
 * decode depth (n_prompt). Its time is the largest of three work terms, those
 * bytes at its memory bandwidth, its matmul weights at its measured matvec
 * rates (flops.h; the KV still at memory bandwidth) and its FLOPs at its FLOP
 * rates (matmul, attention), plus its ops (count_ops) at its op latency. Devices run one after the
 * other (layer order), so their times add, plus one PCIe hop per change of
 * device along the layer order (10 us latency + the activations). The host
 * part alone gives the physical ceiling, host bandwidth / host bytes per token.
 *
 * Prefill of n_prompt tokens in micro-batches of n_batch: per tensor the larger
 * of compute (2 * params * tokens / FLOP rate, its type's where measured) and memory (bytes per batch /
 * bandwidth), the LM head once for the last token only; attention adds
 * 4 * heads * head_dim * P(P+1)/2 FLOPs per layer at the device's measured
 * attention rate (else its matmul rate). The per-token work between the
 * matmuls (norms, QK norms and RoPE, cache stores, the GLU, residual adds:
 * row_elems) is costed as PLAN_ROW_BYTES moved per element at the copy rate
 * of the device doing it; those ops stream rows that do not stay in cache,
 * and on the 2-core VM they were ~4-5% of a small model's prefill.
 * A host tensor is either computed by the CPU, or streamed to the first GPU:
 * the copy of batch b+1's weights overlaps the compute of batch b (double
 * buffer), so its time is max(bytes / PCIe, FLOPs / GPU rate); per tensor the
 * faster of the two is chosen. Figures are estimates from the device
 * descriptions; no number here is measured by this file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kv-quant.h"
#include "plan.h"

#define PLAN_HOP_LATENCY_S 10e-6
/* bytes one element of per-token work moves: an add or GLU reads two floats, writes one */
#define PLAN_ROW_BYTES 12.0

/* ", assumed" / ", measured" after a figure, "" for one the user gave. */
static const char *bw_word(bool assumed, bool measured)
{
    return assumed ? ", assumed" : measured ? ", measured" : "";
}

static double params_of(const struct plan_model_tensor *t)
{
    return (double)t->ne[0] * (double)t->ne[1] * (double)t->ne[2] * (double)t->ne[3];
}

/* Share of an expert stack one token uses. */
static double expert_frac(const struct plan_model *m, const struct plan_model_tensor *t)
{
    if (t->role != PLAN_ROLE_EXPERT || m->arch.n_expert == 0 || m->arch.n_expert_used == 0)
        return 1.0;
    return (double)m->arch.n_expert_used / (double)m->arch.n_expert;
}

static uint32_t n_batches(const struct plan_opts *o)
{
    return (o->n_prompt + o->n_batch - 1) / o->n_batch;
}

/*
 * Tokens tensor i computes in a prefill, and the micro-batches that read it:
 * the LM head gives the logits of the prompt's last token only (forward.c and
 * the scheduler skip the other rows), so it runs once on one token.
 */
static void prefill_work(const struct plan_model_tensor *t, const struct plan_opts *o,
                         double *tokens, double *reads)
{
    const bool head = t->role == PLAN_ROLE_OUTPUT;
    *tokens = head ? 1.0 : (double)o->n_prompt;
    *reads = head ? 1.0 : (double)n_batches(o);
}

/*
 * Elements of per-token work a prompt token costs in one layer's attention
 * block (norm, quantizing the q/k/v and output matmuls' inputs, QK norms and
 * RoPE of q and k, the K/V stores, the residual add) and FFN block (norm,
 * quantizing the gate/up and down inputs, the GLU over the FFN width used,
 * the add); gemma3 adds a post-norm to each (as model.c).
 */
static void row_elems(const struct plan_model *m, double *attn, double *ffn)
{
    const struct arch_info *a = &m->arch;
    const double E = a->n_embd, hd = a->head_dim_k, post = strcmp(a->arch, "gemma3") ? 0.0 : E;
    const double Q = (double)a->n_head * hd, KV = (double)a->n_head_kv * hd;
    const double F = (double)a->n_ff * (a->n_expert > 0 && a->n_expert_used > 0
                                            ? (double)a->n_expert_used : 1.0);
    *attn = E + (E + Q) + Q + KV + 2.0 * KV + E + post;
    *ffn = E + (E + F) + F + E + post;
}

/* FLOP/s of d's attention: measured, else its matmul rate. */
static double attn_rate(const struct plan_device *d)
{
    return d->attn_flops > 0 ? d->attn_flops : d->flops;
}

/* FLOP/s device d multiplies weights of type t at in prefill: measured for t, else its rate. */
static double prefill_rate(const struct plan_device *d, hearth_dtype t)
{
    return d->mm_flops[t] > 0 ? d->mm_flops[t] : d->flops;
}

/* Seconds of tensor i's prefill computed on device d with its bytes in d's memory. */
static double prefill_on(const struct plan_model *m, const struct plan_device *d,
                         const struct plan_opts *o, size_t i)
{
    const struct plan_model_tensor *t = &m->tensors[i];
    if (t->role == PLAN_ROLE_EMBD)
        return (double)o->n_prompt * (double)t->nbytes / (double)t->ne[1] / d->mem_bw;
    double tokens, reads;
    prefill_work(t, o, &tokens, &reads);
    double flops = 2.0 * params_of(t) * expert_frac(m, t) * tokens;
    double mem = (double)t->nbytes * reads / d->mem_bw;
    double comp = flops / prefill_rate(d, t->type);
    return comp > mem ? comp : mem;
}

void plan__prefill_cost(const struct plan_model *m, const struct plan_devices *d,
                        const struct plan_opts *o, size_t i, int gpu, double *cpu_s,
                        double *stream_s)
{
    const struct plan_model_tensor *t = &m->tensors[i];
    const struct plan_device *g = &d->dev[gpu];
    *cpu_s = prefill_on(m, &d->dev[PLAN_HOST], o, i);
    double tokens, reads;
    prefill_work(t, o, &tokens, &reads);
    double copy = (double)t->nbytes * reads / g->h2d_bw;
    double comp = 2.0 * params_of(t) * expert_frac(m, t) * tokens / prefill_rate(g, t->type);
    *stream_s = copy > comp ? copy : comp;
}

static int stream_gpu(const struct plan *p)
{
    for (int d = 1; d < p->devs.n; d++)
        if (p->use[d].stream > 0)
            return d;
    return -1;
}

void plan__decide_stream(const struct plan_model *m, struct plan *p)
{
    int g = stream_gpu(p);
    if (g < 0)
        return;
    for (size_t i = 0; i < m->n_tensors; i++) {
        struct plan_tensor *pt = &p->tensors[i];
        if (!plan__streamable(m, p, i, g))
            continue;
        double c, s;
        plan__prefill_cost(m, &p->devs, &p->opts, i, g, &c, &s);
        if (s < c) {
            pt->kind = PLAN_KIND_STREAM;
            pt->prefill = g;
        }
    }
}

/* Order of the FFN tensors of a layer along the computation. */
static int ffn_rank(const char *name)
{
    static const char *const order[] = {"ffn_norm", "ffn_gate_inp", "ffn_gate", "ffn_up",
                                        "ffn_down", "post_ffw_norm"};
    const char *r = strchr(name + 4, '.');
    r = r ? r + 1 : name;
    for (int k = 0; k < 6; k++) {
        size_t n = strlen(order[k]);
        if (!strncmp(r, order[k], n) && (r[n] == '.' || r[n] == '_'))
            return k;
    }
    return 6;
}

struct hop_walk {
    const struct plan *p;
    int prev;
    int hops;
    double seconds; /* one token per sequence's activations each hop */
    double act_bytes;
};

static void hop_to(struct hop_walk *w, int dev)
{
    if (w->prev >= 0 && dev != w->prev) {
        const struct plan_devices *d = &w->p->devs;
        double bw = 0;
        if (w->prev != PLAN_HOST)
            bw = d->dev[w->prev].h2d_bw;
        if (dev != PLAN_HOST && (bw == 0 || d->dev[dev].h2d_bw < bw))
            bw = d->dev[dev].h2d_bw;
        w->hops++;
        w->seconds += PLAN_HOP_LATENCY_S + (bw > 0 ? w->act_bytes / bw : 0);
    }
    w->prev = dev;
}

/* Device changes along the layer order, with `field` choosing decode or prefill devices. */
static void walk_hops(const struct plan_model *m, const struct plan *p, bool prefill,
                      struct hop_walk *w)
{
    memset(w, 0, sizeof *w);
    w->p = p;
    w->prev = -1;
    const double rows = prefill ? (double)p->opts.n_batch : (double)p->opts.n_parallel;
    const double x_bytes = 4.0 * m->arch.n_embd * rows;
    w->act_bytes = x_bytes;
    /* the embedding rows are gathered where token_embd lives (tied: where the head is) */
    for (size_t i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, "token_embd.weight"))
            hop_to(w, p->tensors[i].compute);
    for (uint32_t l = 0; l < p->n_layer; l++) {
        hop_to(w, p->layers[l].attn_dev);
        for (int r = 0; r <= 6; r++)
            for (size_t i = 0; i < m->n_tensors; i++) {
                const struct plan_model_tensor *t = &m->tensors[i];
                if (t->layer != (int32_t)l ||
                    (t->role != PLAN_ROLE_FFN && t->role != PLAN_ROLE_FFN_NORM &&
                     t->role != PLAN_ROLE_EXPERT) ||
                    ffn_rank(t->name) != r)
                    continue;
                /* into ffn_down the GLU output crosses with x */
                w->act_bytes = r == 4 ? x_bytes + 4.0 * m->arch.n_ff * rows : x_bytes;
                hop_to(w, prefill ? p->tensors[i].prefill : p->tensors[i].compute);
                w->act_bytes = x_bytes;
            }
    }
    for (size_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].role == PLAN_ROLE_OUTPUT)
            hop_to(w, prefill ? p->tensors[i].prefill : p->tensors[i].compute);
    hop_to(w, PLAN_HOST); /* logits to the sampler */
}

double plan_op_seconds(const struct plan_device *dv)
{
    if (dv->op_s > 0)
        return dv->op_s;
    return dv->kind == PLAN_DEV_CUDA     ? PLAN_DEFAULT_CUDA_OP_S
           : dv->kind == PLAN_DEV_VULKAN ? PLAN_DEFAULT_VULKAN_OP_S
                                         : PLAN_DEFAULT_CPU_OP_S;
}

/*
 * Seconds of a share rf of matmul weight t at device dv's measured matvec
 * rate: its type's, else per weight at Q4_K's; 0 when dv has none.
 */
static double matvec_seconds(const struct plan_device *dv, const struct plan_model_tensor *t,
                             double rf)
{
    if (dv->mv_bw[t->type] > 0)
        return (double)t->nbytes * rf / dv->mv_bw[t->type];
    if (dv->mv_bw[HEARTH_DTYPE_Q4_K] > 0)
        return params_of(t) * rf * PLAN_Q4_K_BYTES_PER_WEIGHT / dv->mv_bw[HEARTH_DTYPE_Q4_K];
    return 0;
}

/*
 * Ops one decode step dispatches on each device, as the scheduler issues
 * them (sched-exec.c): a layer's attention block is norm, QKV matmul,
 * attention, output matmul, residual add; its FFN block norm, gate/up
 * matmul, GLU; its FFN_DOWN block down matmul, add; the head norm and
 * logits; the embedding one lookup. CPU-only decode (forward.c) runs about
 * as many parallel loops.
 */
static void count_ops(const struct plan_model *m, const struct plan *p, double *ops)
{
    for (uint32_t l = 0; l < p->n_layer; l++) {
        ops[p->layers[l].attn_dev] += 5;
        ops[p->layers[l].ffn_up_dev] += 3;
        ops[p->layers[l].ffn_down_dev] += 2;
    }
    for (size_t i = 0; i < m->n_tensors; i++) {
        if (m->tensors[i].role == PLAN_ROLE_OUTPUT)
            ops[p->tensors[i].compute] += 2;
        else if (m->tensors[i].role == PLAN_ROLE_EMBD)
            ops[p->tensors[i].compute] += 1;
    }
}

void plan__predict(const struct plan_model *m, struct plan *p)
{
    const struct plan_opts *o = &p->opts;
    double read[PLAN_MAX_DEVICES] = {0}, flops[PLAN_MAX_DEVICES] = {0};
    double kv[PLAN_MAX_DEVICES] = {0}, mv[PLAN_MAX_DEVICES] = {0};
    double ops[PLAN_MAX_DEVICES] = {0}, attn[PLAN_MAX_DEVICES] = {0};
    double npar = (double)o->n_parallel;
    double depth = (double)o->n_prompt;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct plan_model_tensor *t = &m->tensors[i];
        int d = p->tensors[i].compute;
        if (t->role == PLAN_ROLE_EMBD) {
            read[d] += npar * (double)t->nbytes / (double)t->ne[1];
            continue;
        }
        double f = expert_frac(m, t);
        double rf = f * npar < 1.0 ? f * npar : 1.0;
        read[d] += (double)t->nbytes * rf;
        if (t->n_dims >= 2)
            mv[d] += matvec_seconds(&p->devs.dev[d], t, rf);
        flops[d] += 2.0 * params_of(t) * f * npar;
    }
    for (uint32_t l = 0; l < p->n_layer; l++) {
        int d = p->layers[l].attn_dev;
        /* K and V rows up to the depth, for every sequence */
        kv[d] += (double)p->layers[l].kv_bytes * depth / (double)o->n_ctx;
        attn[d] += 4.0 * m->arch.n_head * m->arch.head_dim_k * depth * npar;
    }
    count_ops(m, p, ops);
    double step = 0;
    for (int d = 0; d < p->devs.n; d++) {
        const struct plan_device *dv = &p->devs.dev[d];
        struct plan_usage *u = &p->use[d];
        read[d] += kv[d];
        u->decode_mem_s = read[d] / dv->mem_bw;
        u->decode_mv_s = dv->mv_bw[HEARTH_DTYPE_Q4_K] > 0 ? mv[d] + kv[d] / dv->mem_bw : 0;
        u->decode_comp_s = flops[d] / dv->flops + attn[d] / attn_rate(dv);
        u->decode_ops = read[d] > 0 ? ops[d] : 0;
        u->decode_ops_s = u->decode_ops * plan_op_seconds(dv);
        double work = u->decode_mem_s;
        if (u->decode_mv_s > work)
            work = u->decode_mv_s;
        if (u->decode_comp_s > work)
            work = u->decode_comp_s;
        u->read_per_token = (uint64_t)read[d];
        u->decode_s = work + u->decode_ops_s;
        step += u->decode_s;
    }
    struct hop_walk w;
    walk_hops(m, p, false, &w);
    step += w.seconds;
    p->decode_tps = step > 0 ? 1.0 / step : 0;
    p->decode_tps_total = p->decode_tps * npar;
    p->host_read_per_token = (uint64_t)read[PLAN_HOST];
    p->host_ceiling_tps =
        read[PLAN_HOST] > 0 ? p->devs.dev[PLAN_HOST].mem_bw / read[PLAN_HOST] : 0;

    /* prefill */
    double P = (double)o->n_prompt;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct plan_tensor *pt = &p->tensors[i];
        if (pt->kind == PLAN_KIND_STREAM) {
            double c, s;
            plan__prefill_cost(m, &p->devs, o, i, pt->prefill, &c, &s);
            p->use[pt->prefill].prefill_s += s;
        } else {
            p->use[pt->prefill].prefill_s += prefill_on(m, &p->devs.dev[pt->prefill], o, i);
        }
    }
    double row_attn, row_ffn;
    row_elems(m, &row_attn, &row_ffn);
    for (uint32_t l = 0; l < p->n_layer; l++) {
        int d = p->layers[l].attn_dev;
        double f = 4.0 * m->arch.n_head * m->arch.head_dim_k * P * (P + 1) / 2.0;
        p->use[d].prefill_s += f / attn_rate(&p->devs.dev[d]);
        p->use[d].prefill_s += P * row_attn * PLAN_ROW_BYTES / p->devs.dev[d].mem_bw;
        int fd = p->layers[l].ffn_up_dev >= 0 ? p->layers[l].ffn_up_dev : d;
        p->use[fd].prefill_s += P * row_ffn * PLAN_ROW_BYTES / p->devs.dev[fd].mem_bw;
    }
    double total = 0;
    for (int d = 0; d < p->devs.n; d++)
        total += p->use[d].prefill_s;
    walk_hops(m, p, true, &w);
    total += w.seconds * (double)n_batches(o);
    p->prefill_tps = total > 0 ? P / total : 0;
}

/* ---- reasons ------------------------------------------------------------------ */

static double gib(uint64_t b)
{
    return (double)b / 1073741824.0;
}

/* "0-39, 41, 43-79" for the set layers of n; "" when none. */
static void ranges(const bool *set, uint32_t n, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (uint32_t a = 0; a < n; a++) {
        if (!set[a])
            continue;
        uint32_t b = a;
        while (b + 1 < n && set[b + 1])
            b++;
        int w = b > a ? snprintf(buf + len, size - len, "%s%u-%u", len ? "," : "", a, b)
                      : snprintf(buf + len, size - len, "%s%u", len ? "," : "", a);
        if (w < 0 || (size_t)w >= size - len)
            return;
        len += (size_t)w;
        a = b;
    }
}

/* The tensor's kind inside its block: "ffn_down" for "blk.7.ffn_down.weight". */
static void block_kind(const char *name, char *out, size_t size)
{
    const char *r = strchr(name + 4, '.');
    r = r ? r + 1 : name;
    const char *e = strchr(r, '.');
    size_t n = e ? (size_t)(e - r) : strlen(r);
    if (n >= size)
        n = size - 1;
    memcpy(out, r, n);
    out[n] = '\0';
}

static const char *dev_name(const struct plan *p, int d)
{
    return p->devs.dev[d].name;
}

#define TRY(x)                                                                       \
    do {                                                                             \
        hearth_status st__ = (x);                                                    \
        if (st__)                                                                    \
            return st__;                                                             \
    } while (0)

/* Where each FFN tensor kind spills: "ffn_gate.41-79, ffn_up.41-79, ffn_down.40-79". */
static hearth_status host_ffn_list(const struct plan_model *m, const struct plan *p,
                                   char *out, size_t size, uint64_t *bytes)
{
    char kinds[12][32];
    int n_kinds = 0;
    size_t len = 0;
    out[0] = '\0';
    *bytes = 0;
    bool *set = calloc(p->n_layer ? p->n_layer : 1, sizeof *set);
    if (!set)
        return err_set(HEARTH_ERR_NO_MEMORY, "plan: reasons");
    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct plan_model_tensor *t = &m->tensors[i];
        if ((t->role != PLAN_ROLE_FFN && t->role != PLAN_ROLE_EXPERT) ||
            p->tensors[i].resident != PLAN_HOST)
            continue;
        *bytes += t->nbytes;
        char k[32];
        block_kind(t->name, k, sizeof k);
        bool seen = false;
        for (int j = 0; j < n_kinds; j++)
            seen |= !strcmp(kinds[j], k);
        if (!seen && n_kinds < 12)
            memcpy(kinds[n_kinds++], k, sizeof k);
    }
    for (int j = 0; j < n_kinds; j++) {
        memset(set, 0, p->n_layer * sizeof *set);
        for (size_t i = 0; i < m->n_tensors; i++) {
            const struct plan_model_tensor *t = &m->tensors[i];
            char k[32];
            if ((t->role != PLAN_ROLE_FFN && t->role != PLAN_ROLE_EXPERT) ||
                p->tensors[i].resident != PLAN_HOST)
                continue;
            block_kind(t->name, k, sizeof k);
            if (!strcmp(k, kinds[j]))
                set[t->layer] = true;
        }
        char r[512];
        ranges(set, p->n_layer, r, sizeof r);
        int w = snprintf(out + len, size - len, "%s%s.%s", len ? ", " : "", kinds[j], r);
        if (w < 0 || (size_t)w >= size - len)
            break;
        len += (size_t)w;
    }
    free(set);
    return HEARTH_OK;
}

static hearth_status explain_attention(const struct plan *p)
{
    bool *set = calloc(p->n_layer ? p->n_layer : 1, sizeof *set);
    if (!set)
        return err_set(HEARTH_ERR_NO_MEMORY, "plan: reasons");
    hearth_status st = HEARTH_OK;
    char r[512];
    for (int d = 0; d < p->devs.n && !st; d++) {
        uint64_t w = 0, kv = 0;
        int n = 0;
        for (uint32_t l = 0; l < p->n_layer; l++) {
            set[l] = p->layers[l].attn_dev == d;
            if (set[l]) {
                n++;
                w += p->layers[l].attn_bytes;
                kv += p->layers[l].kv_bytes;
            }
        }
        if (!n)
            continue;
        ranges(set, p->n_layer, r, sizeof r);
        if (d != PLAN_HOST)
            st = plan__reason((struct plan *)p,
                              "attention and KV cache of layers %s on %s (%.2f GiB weights + "
                              "%.2f GiB KV): read every token, placed right after the LM head; "
                              "attention runs where its KV lives, so no KV crosses PCIe",
                              r, dev_name(p, d), gib(w), gib(kv));
        else
            st = plan__reason((struct plan *)p,
                              "attention of layers %s on the CPU with their KV (%.2f GiB) in "
                              "host RAM: no GPU had room for a layer's attention and KV "
                              "together",
                              r, gib(kv));
    }
    free(set);
    return st;
}

/*
 * Layers whose FFN the scheduler runs split (sched_layout): gate/up on one
 * device, down on another, one reason per (gate/up, down) device pair.
 */
static hearth_status explain_ffn_split(const struct plan_model *m, const struct plan *p)
{
    if (!p->opts.sched_layout)
        return HEARTH_OK; /* per-tensor plans list spilled tensors instead (host_ffn_list) */
    bool *set = calloc(p->n_layer ? p->n_layer : 1, sizeof *set);
    if (!set)
        return err_set(HEARTH_ERR_NO_MEMORY, "plan: reasons");
    hearth_status st = HEARTH_OK;
    char r[512];
    for (int a = 0; a < p->devs.n && !st; a++)
        for (int b = 0; b < p->devs.n && !st; b++) {
            int n = 0;
            for (uint32_t l = 0; l < p->n_layer; l++) {
                set[l] = a != b && p->layers[l].ffn_up_dev == a && p->layers[l].ffn_down_dev == b;
                n += set[l];
            }
            if (!n)
                continue;
            ranges(set, p->n_layer, r, sizeof r);
            uint64_t stage = plan_glu_stage_bytes(p->opts.n_batch, m->arch.n_embd, m->arch.n_ff);
            st = plan__reason((struct plan *)p,
                              "FFN split inside layer%s %s: ffn_gate+ffn_up on %s, ffn_down on "
                              "%s (first fit had room for one part of the layer's FFN, not both); "
                              "the GLU output (%u x %u F32 per batch) moves to %s with the "
                              "residual, through %.2f MiB of staging there",
                              n == 1 ? "" : "s", r, dev_name(p, a), dev_name(p, b), p->opts.n_batch,
                              m->arch.n_ff, dev_name(p, b), (double)stage / 1048576.0);
        }
    free(set);
    return st;
}

hearth_status plan__explain(const struct plan_model *m, struct plan *p)
{
    const struct plan_opts *o = &p->opts;
    const struct plan_device *host = &p->devs.dev[PLAN_HOST];
    char kvt[32];
    kvq_pair_name(o->kv_type_k, o->kv_type_v, kvt, sizeof kvt);

    uint64_t host_w = 0, gpu_w = 0;
    size_t n_host = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        if (p->tensors[i].resident == PLAN_HOST) {
            host_w += m->tensors[i].nbytes;
            n_host++;
        } else {
            gpu_w += m->tensors[i].nbytes;
        }
    }
    int n_gpu = 0; /* GPUs the placement could use */
    for (int d = 1; d < p->devs.n; d++)
        n_gpu += !p->skipped_gpu[d];
    if (n_gpu == 0) {
        TRY(plan__reason(p, "no GPU%s: all %zu tensors (%.2f GiB) in host RAM, computed by the "
                            "CPU",
                         p->devs.n > 1 ? " worth using" : "", m->n_tensors,
                         gib(host_w)));
    } else if (n_host == 0) {
        int d = p->tensors[0].resident;
        TRY(plan__reason(p,
                         "everything fits on the GPU: %zu tensors (%.2f GiB) and the KV cache "
                         "(%.2f GiB: %u context x %u sequence%s, %s) within %s's %.2f GiB "
                         "budget; nothing is read from host RAM per token",
                         m->n_tensors, gib(gpu_w), gib(p->use[d].kv), o->n_ctx, o->n_parallel,
                         o->n_parallel == 1 ? "" : "s", kvt, dev_name(p, d),
                         gib(p->use[d].budget)));
    }
    for (int d = 1; d < p->devs.n; d++) {
        const struct plan_usage *u = &p->use[d];
        const struct plan_device *dv = &p->devs.dev[d];
        if (p->skipped_gpu[d] && dv->software) {
            TRY(plan__reason(p,
                             "%s unused: a software rasterizer, computing on the host's own "
                             "cores (-ngl places layers on it anyway)",
                             dev_name(p, d)));
            continue;
        }
        if (p->skipped_gpu[d]) {
            TRY(plan__reason(p,
                             "%s unused: one-token matmuls there read %.2f GB/s of Q4_K "
                             "(measured), slower than the host's %.2f GB/s, so decode would be "
                             "slower there than on the CPU (-ngl places layers on it anyway)",
                             dev_name(p, d), dv->mv_bw[HEARTH_DTYPE_Q4_K] / 1e9,
                             (host->mv_bw[HEARTH_DTYPE_Q4_K] > 0 ? host->mv_bw[HEARTH_DTYPE_Q4_K]
                                                                 : host->mem_bw) /
                                 1e9));
            continue;
        }
        bool scratch_cap = false;
        for (int k = 0; k < p->n_limits && k < PLAN_MAX_LIMITS; k++)
            scratch_cap |= p->limits[k].dev == d && p->limits[k].scratch;
        if (u->total == 0 && scratch_cap) {
            TRY(plan__reason(p, "%s unused: the scratch of %u-token batches is one buffer of "
                                "%.0f MiB, and the largest buffer %s allocates is %.0f MiB "
                                "(its driver's limit); a smaller batch (-b) would fit",
                             dev_name(p, d), o->n_batch,
                             (double)plan__scratch_bytes(&m->arch, o, false, false) / 1048576.0,
                             dev_name(p, d), (double)dv->max_buffer_bytes / 1048576.0));
            continue;
        }
        if (u->total == 0) {
            TRY(plan__reason(p, "%s unused: its %.2f GiB budget %s", dev_name(p, d),
                             gib(u->budget),
                             u->room == 0 ? "does not cover its reserve and scratch"
                                          : "holds none of the remaining units"));
            continue;
        }
        TRY(plan__reason(p,
                         "%s keeps %.0f MiB in reserve (256 MiB driver context + 1%% of the "
                         "budget + attention score tiles; never allocated), %.0f MiB of "
                         "scratch for %u-token batches and %.0f MiB of staging",
                         dev_name(p, d), (double)u->reserve / 1048576.0,
                         (double)u->scratch / 1048576.0, o->n_batch,
                         (double)u->staging / 1048576.0));
        if (p->devs.dev[d].host_staging_bytes)
            TRY(plan__reason(p,
                             "%s's backend stages its own copies through up to %.0f MiB of "
                             "host RAM (grown on demand): counted in %s's RAM at that worst "
                             "case, not allocated by the loader",
                             dev_name(p, d), (double)p->devs.dev[d].host_staging_bytes / 1048576.0,
                             dev_name(p, PLAN_HOST)));
    }
    for (size_t i = 0; i < m->n_tensors && n_gpu > 0; i++) {
        const struct plan_model_tensor *t = &m->tensors[i];
        if (t->role != PLAN_ROLE_OUTPUT)
            continue;
        int d = p->tensors[i].resident;
        char split[128] = "";
        uint32_t nb = plan_tensor_buffers(m, p, i);
        if (nb > 1)
            snprintf(split, sizeof split, " in %u buffers by rows (the largest buffer it "
                     "allocates is %.0f MiB, its driver's limit)", nb,
                     (double)p->devs.dev[d].max_buffer_bytes / 1048576.0);
        TRY(plan__reason(p, "%s (LM head, %.0f MiB %s) %s%s%s: read in full every token, "
                            "placed first",
                         t->name, (double)t->nbytes / 1048576.0, hearth_dtype_name(t->type),
                         d != PLAN_HOST    ? "on "
                         : p->n_limits > 0 ? "in host RAM, computed by the CPU; no GPU had room "
                                             "or a large enough buffer (below)"
                                           : "in host RAM, computed by the CPU; no GPU had room",
                         d == PLAN_HOST ? "" : dev_name(p, d), split));
    }
    for (int k = 0; k < p->n_limits && k < PLAN_MAX_LIMITS; k++) {
        const struct plan_buffer_limit *l = &p->limits[k];
        if (l->scratch)
            continue; /* said with the device above */
        TRY(plan__reason(p, "%s (%.0f MiB in one buffer) kept off %s: the largest buffer it "
                            "allocates is %.0f MiB (its driver's limit)",
                         l->what, (double)l->bytes / 1048576.0, dev_name(p, l->dev),
                         (double)p->devs.dev[l->dev].max_buffer_bytes / 1048576.0));
    }
    if (p->n_limits > PLAN_MAX_LIMITS)
        TRY(plan__reason(p, "%d more units kept off a GPU by its largest buffer",
                         p->n_limits - PLAN_MAX_LIMITS));
    if (n_gpu > 0) {
        TRY(explain_attention(p));
        TRY(explain_ffn_split(m, p));
    }
    char list[2048];
    uint64_t ffn_host;
    TRY(host_ffn_list(m, p, list, sizeof list, &ffn_host));
    if (ffn_host > 0) {
        bool attn_gpu = true;
        for (uint32_t l = 0; l < p->n_layer; l++)
            attn_gpu &= p->layers[l].attn_dev != PLAN_HOST;
        if (n_gpu > 0)
            TRY(plan__reason(p,
                             "%s in host RAM, computed by the CPU: %s; %.2f GB read from host "
                             "per token caps decode at %.2f tok/s (host %.0f GB/s%s)",
                             list,
                             attn_gpu ? "attention and KV stay on the GPU, which is full"
                                      : "the GPU is full",
                             (double)p->host_read_per_token / 1e9, p->host_ceiling_tps,
                             host->mem_bw / 1e9, bw_word(host->mem_bw_assumed,
                                                         host->mem_bw_measured)));
    }
    for (size_t i = 0; i < m->n_tensors && n_gpu > 0; i++) {
        const struct plan_model_tensor *t = &m->tensors[i];
        if (t->role != PLAN_ROLE_EMBD)
            continue;
        int d = p->tensors[i].resident;
        TRY(plan__reason(p, "%s (%.0f MiB) %s%s: only one row is read per token, so it is "
                            "placed last",
                         t->name, (double)t->nbytes / 1048576.0,
                         d == PLAN_HOST ? "in host RAM" : "on ",
                         d == PLAN_HOST ? "" : dev_name(p, d)));
    }
    int g = stream_gpu(p);
    if (g > 0) {
        uint64_t sb = 0;
        double cpu = 0, str = 0;
        for (size_t i = 0; i < m->n_tensors; i++) {
            if (p->tensors[i].kind != PLAN_KIND_STREAM)
                continue;
            double c, s;
            plan__prefill_cost(m, &p->devs, o, i, g, &c, &s);
            cpu += c;
            str += s;
            sb += m->tensors[i].nbytes;
        }
        TRY(plan__reason(p,
                         "host weights (%.2f GB) streamed to %s for prefill over PCIe "
                         "(%.0f GB/s%s), double-buffered in 2 x %.0f MiB: %.2f s for a "
                         "%u-token prompt against %.2f s on the CPU",
                         (double)sb / 1e9, dev_name(p, g), p->devs.dev[g].h2d_bw / 1e9,
                         bw_word(p->devs.dev[g].h2d_bw_assumed, p->devs.dev[g].h2d_bw_measured),
                         (double)p->use[g].stream / 2.0 / 1048576.0, str, o->n_prompt, cpu));
    } else if (ffn_host > 0 && n_gpu > 0) {
        TRY(plan__reason(p, "host weights computed by the CPU for prefill too: %s",
                         o->no_stream ? "streaming is off"
                                      : "streaming them over PCIe would not be faster"));
    }
    /* the decode prediction, term by term */
    char terms[1024];
    size_t len = 0;
    terms[0] = '\0';
    for (int d = 0; d < p->devs.n; d++) {
        const struct plan_usage *u = &p->use[d];
        if (u->read_per_token == 0)
            continue;
        const struct plan_device *dv = &p->devs.dev[d];
        char bound[128];
        if (u->decode_comp_s > u->decode_mem_s && u->decode_comp_s > u->decode_mv_s)
            snprintf(bound, sizeof bound, "compute-bound at %.0f GFLOP/s%s", dv->flops / 1e9,
                     bw_word(dv->flops_assumed, dv->flops_measured));
        else if (u->decode_mv_s > u->decode_mem_s)
            snprintf(bound, sizeof bound,
                     "at its measured matvec rates (%.1f GB/s for Q4_K), under its %.0f GB/s "
                     "copy bandwidth",
                     dv->mv_bw[HEARTH_DTYPE_Q4_K] / 1e9, dv->mem_bw / 1e9);
        else
            snprintf(bound, sizeof bound, "at %.0f GB/s%s", dv->mem_bw / 1e9,
                     bw_word(dv->mem_bw_assumed, dv->mem_bw_measured));
        int w = snprintf(terms + len, sizeof terms - len,
                         "%s%.2f GB on %s, %s, + %.0f ops x %.1f us%s (%.1f ms)", len ? " + " : "",
                         (double)u->read_per_token / 1e9, d == PLAN_HOST ? "host" : dev_name(p, d),
                         bound, u->decode_ops, plan_op_seconds(dv) * 1e6,
                         dv->op_s > 0 ? ", measured" : ", assumed", u->decode_s * 1e3);
        if (w < 0 || (size_t)w >= sizeof terms - len)
            break;
        len += (size_t)w;
    }
    struct hop_walk w;
    walk_hops(m, p, false, &w);
    char hops[96] = "";
    if (w.hops)
        snprintf(hops, sizeof hops, " + %d PCIe hop%s (%.2f ms)", w.hops, w.hops == 1 ? "" : "s",
                 w.seconds * 1e3);
    TRY(plan__reason(p, "decode %.2f tok/s at depth %u: %s%s per token%s", p->decode_tps,
                     o->n_prompt, terms, hops,
                     p->host_ceiling_tps > 0 ? "; host bandwidth alone allows " : ""));
    if (p->host_ceiling_tps > 0) {
        char *last = p->reasons[p->n_reasons - 1];
        size_t n = strlen(last);
        char tail[64];
        int k = snprintf(tail, sizeof tail, "%.2f tok/s", p->host_ceiling_tps);
        char *grown = realloc(last, n + (size_t)k + 1);
        if (!grown)
            return err_set(HEARTH_ERR_NO_MEMORY, "plan: reasons");
        memcpy(grown + n, tail, (size_t)k + 1);
        p->reasons[p->n_reasons - 1] = grown;
    }
    if (p->host_overcommitted)
        TRY(plan__reason(p,
                         "host needs %.2f GiB but has %.2f GiB: weights would be paged in from "
                         "disk every token; expect far less than predicted",
                         gib(p->use[PLAN_HOST].total), gib(host->budget_bytes)));
    if (p->devs.cache_note[0])
        TRY(plan__reason(p, "%s", p->devs.cache_note));
    for (int d = 0; d < p->devs.n; d++) {
        const struct plan_device *dv = &p->devs.dev[d];
        if (dv->mem_bw_measured || dv->h2d_bw_measured)
            TRY(plan__reason(p, "%s: %s%s%s bandwidth measured on this machine (cached by "
                                "`hearth devices`; --measure measures again)",
                             dv->name, dv->mem_bw_measured ? "memory" : "",
                             dv->mem_bw_measured && dv->h2d_bw_measured ? " and " : "",
                             dv->h2d_bw_measured ? "host-to-device" : ""));
        if (dv->flops_measured) {
            char at[64] = "";
            if (dv->attn_flops > 0)
                snprintf(at, sizeof at, "; attention %.*f GFLOP/s", dv->attn_flops < 10e9 ? 2 : 0,
                         dv->attn_flops / 1e9);
            TRY(plan__reason(p, "%s: FLOP rate %.*f GFLOP/s measured on this machine (a Q4_K "
                                "matmul, cached by `hearth devices`; --rates lists every "
                                "type's)%s",
                             dv->name, dv->flops < 10e9 ? 2 : 0, dv->flops / 1e9, at));
        }
        const double q4k = dv->mv_bw[HEARTH_DTYPE_Q4_K];
        if (q4k > 0) {
            char share[48] = "";
            if (!dv->mem_bw_assumed)
                snprintf(share, sizeof share, " (%.0f%% of its copy bandwidth)",
                         100.0 * q4k / dv->mem_bw);
            TRY(plan__reason(p, "%s: one-token matmuls read %.*f GB/s of Q4_K%s and an op costs "
                                "%.1f us, measured on this machine (cached by `hearth devices`; "
                                "--rates lists every type's)",
                             dv->name, q4k < 10e9 ? 2 : 1, q4k / 1e9, share,
                             plan_op_seconds(dv) * 1e6));
        }
        char what[128] = "";
        const char *items[6] = {dv->budget_assumed ? "memory" : NULL,
                                dv->mem_bw_assumed ? "bandwidth" : NULL,
                                dv->flops_assumed ? "FLOP rate" : NULL,
                                d != PLAN_HOST && dv->h2d_bw_assumed ? "PCIe bandwidth" : NULL,
                                dv->mv_bw[HEARTH_DTYPE_Q4_K] > 0
                                    ? NULL
                                    : "matvec rate (decode at copy bandwidth)",
                                dv->op_s > 0 ? NULL : "op latency"};
        for (int k = 0; k < 6; k++)
            if (items[k]) {
                size_t l = strlen(what);
                snprintf(what + l, sizeof what - l, "%s%s", l ? ", " : "", items[k]);
            }
        if (what[0])
            TRY(plan__reason(p, "%s figures assumed, not measured: %s (describe it with %s)",
                             dv->name, what,
                             d == PLAN_HOST ? "--host MEM:BW[:FLOPS]"
                                            : "--device KIND:MEM:BW[:FLOPS], --pcie BW"));
    }
    return HEARTH_OK;
}

void plan_summary_line(const struct plan_model *m, const struct plan *p, char *buf, size_t size)
{
    uint64_t gpu = 0, all = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        all += m->tensors[i].nbytes;
        if (p->tensors[i].resident != PLAN_HOST)
            gpu += m->tensors[i].nbytes;
    }
    size_t len = 0;
    int w = snprintf(buf, size, "plan: %.0f%% of weights on GPU", all ? 100.0 * (double)gpu /
                                                                             (double)all
                                                                       : 0.0);
    len = w > 0 && (size_t)w < size ? (size_t)w : size - 1;
    for (int d = 1; d < p->devs.n && len < size; d++) {
        w = snprintf(buf + len, size - len, ", %s %.2f/%.2f GiB", p->devs.dev[d].name,
                     gib(p->use[d].total), gib(p->use[d].budget));
        if (w < 0 || (size_t)w >= size - len)
            return;
        len += (size_t)w;
    }
    snprintf(buf + len, size - len, "; predicted %.0f tok/s prefill, %.2f tok/s decode",
             p->prefill_tps, p->decode_tps);
}
