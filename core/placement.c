/*
 * placement: the block -> device map, -ngl parsing and the -ngl auto fit
 * (see placement.h). Layers are filled front to back because the scheduler
 * runs them in order: one contiguous GPU range means one activation move in
 * and one out per token, whatever N is. block_stream is a second array of
 * the same shape rather than a flag in block_dev, so every existing reader
 * of block_dev keeps meaning "where the block runs in decode".
 */
#include "placement.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

hearth_status placement_create(uint32_t n_layer, int dev, struct placement **out)
{
    *out = NULL;
    if (n_layer == 0)
        return err_set(HEARTH_ERR_INVALID_ARG, "placement: a model of 0 layers");
    struct placement *p = calloc(1, sizeof *p);
    int *bd = calloc(PLACEMENT_N_BLOCKS * (size_t)n_layer, sizeof *bd);
    int *bs = calloc(PLACEMENT_N_BLOCKS * (size_t)n_layer, sizeof *bs);
    if (!p || !bd || !bs) {
        free(p);
        free(bd);
        free(bs);
        return err_set(HEARTH_ERR_NO_MEMORY, "placement: out of memory for %u layers", n_layer);
    }
    for (size_t i = 0; i < PLACEMENT_N_BLOCKS * (size_t)n_layer; i++) {
        bd[i] = dev;
        bs[i] = -1;
    }
    p->n_layer = n_layer;
    p->embd_dev = dev;
    p->out_dev = dev;
    p->block_dev = bd;
    p->block_stream = bs;
    p->stream_min_batch = PLACEMENT_STREAM_MIN_BATCH;
    *out = p;
    return HEARTH_OK;
}

void placement_free(struct placement *p)
{
    if (!p)
        return;
    free(p->block_dev);
    free(p->block_stream);
    free(p);
}

hearth_status placement_clone(const struct placement *p, struct placement **out)
{
    hearth_status st = placement_create(p->n_layer, 0, out);
    if (st != HEARTH_OK)
        return st;
    (*out)->embd_dev = p->embd_dev;
    (*out)->out_dev = p->out_dev;
    memcpy((*out)->block_dev, p->block_dev,
           PLACEMENT_N_BLOCKS * (size_t)p->n_layer * sizeof(int));
    memcpy((*out)->block_stream, p->block_stream,
           PLACEMENT_N_BLOCKS * (size_t)p->n_layer * sizeof(int));
    (*out)->stream_min_batch = p->stream_min_batch;
    (*out)->stream_half_bytes = p->stream_half_bytes;
    return HEARTH_OK;
}

hearth_status placement_parse_ngl(const char *s, int *ngl)
{
    if (!s || !*s)
        return err_set(HEARTH_ERR_INVALID_ARG, "-ngl: empty value; expected a count or \"auto\"");
    if (strcmp(s, "auto") == 0) {
        *ngl = PLACEMENT_NGL_AUTO;
        return HEARTH_OK;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || errno || v < 0 || v > 100000 || s[0] == '-' || s[0] == '+' ||
        s[0] == ' ')
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "-ngl: \"%s\" is neither a layer count in [0, 100000] nor \"auto\"", s);
    *ngl = (int)v;
    return HEARTH_OK;
}

hearth_status placement_from_ngl(struct placement *p, int ngl, int gpu_dev, int cpu_dev)
{
    if (ngl < 0)
        return err_set(HEARTH_ERR_INVALID_ARG, "placement: -ngl %d (resolve auto first)", ngl);
    for (uint32_t il = 0; il < p->n_layer; il++) {
        int d = (int64_t)il < ngl ? gpu_dev : cpu_dev;
        placement_set(p, il, PLACEMENT_ATTN, d);
        placement_set_ffn(p, il, d);
    }
    p->embd_dev = cpu_dev;
    p->out_dev = (int64_t)ngl > (int64_t)p->n_layer ? gpu_dev : cpu_dev;
    return HEARTH_OK;
}

static uint64_t wbytes(const struct model_weight *w)
{
    if (!w->data)
        return 0;
    uint64_t b = (uint64_t)w->row_bytes * (uint64_t)w->n_out;
    return (b + PLACEMENT_TENSOR_ALIGN - 1) / PLACEMENT_TENSOR_ALIGN * PLACEMENT_TENSOR_ALIGN;
}

uint64_t placement_layer_bytes(const struct model *m, uint32_t il, uint32_t n_ctx)
{
    const struct model_layer *l = &m->layers[il];
    const struct model_weight *ws[] = {
        &l->attn_norm, &l->wq, &l->wk, &l->wv, &l->wo, &l->bq, &l->bk, &l->bv, &l->bo,
        &l->q_norm, &l->k_norm, &l->post_attn_norm, &l->ffn_norm, &l->ffn_gate, &l->ffn_up,
        &l->ffn_down, &l->post_ffn_norm};
    uint64_t b = 0;
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
        b += wbytes(ws[i]);
    uint64_t kv = 2ull * n_ctx * m->hp.n_head_kv * m->hp.head_dim * sizeof(uint16_t);
    return b + kv;
}

uint64_t placement_output_bytes(const struct model *m)
{
    return wbytes(&m->output_norm) + wbytes(&m->output);
}

int placement_auto_ngl(const struct model *m, uint32_t n_ctx, uint64_t free_bytes,
                       uint64_t margin_bytes, uint64_t fixed_bytes)
{
    if (free_bytes <= margin_bytes || free_bytes - margin_bytes <= fixed_bytes)
        return 0;
    uint64_t budget = free_bytes - margin_bytes - fixed_bytes, used = 0;
    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        used += placement_layer_bytes(m, il, n_ctx);
        if (used > budget)
            return (int)il;
    }
    used += placement_output_bytes(m);
    return used > budget ? (int)m->hp.n_layer : (int)m->hp.n_layer + 1;
}

/*
 * Per layer and FFN block (0: gate/up part, 1: down part), the device its
 * matrices are streamed to when every matrix of the block is STREAM to that
 * one device, else -1 (also for a block without matrices).
 */
static void stream_targets(const struct plan_model *pm, const struct plan *pn, uint32_t il,
                           int tgt[2])
{
    bool any[2] = {false, false}, all[2] = {true, true};
    tgt[0] = tgt[1] = -1;
    for (size_t i = 0; i < pm->n_tensors; i++) {
        const struct plan_model_tensor *t = &pm->tensors[i];
        if (t->layer != (int32_t)il || t->n_dims < 2 ||
            (t->role != PLAN_ROLE_FFN && t->role != PLAN_ROLE_EXPERT))
            continue;
        int part = plan__ffn_down_part(t) ? 1 : 0;
        const struct plan_tensor *pt = &pn->tensors[i];
        if (pt->kind != PLAN_KIND_STREAM || (any[part] && pt->prefill != tgt[part]))
            all[part] = false;
        any[part] = true;
        tgt[part] = pt->prefill;
    }
    for (int part = 0; part < 2; part++)
        if (!any[part] || !all[part])
            tgt[part] = -1;
}

/*
 * The smallest batch for which streaming the streamed matrices (bytes B,
 * weights P in all) beats the CPU by the plan's figures: per batch of n
 * tokens the CPU takes max(B / host_bw, 2 P n / host_flops), the stream
 * max(B / h2d_bw, 2 P n / gpu_flops) (the copy overlapping the compute, as
 * plan-cost.c models it). A batch that streams nothing faster gives 4096.
 */
static int stream_threshold(const struct plan_model *pm, const struct plan *pn, int g,
                            const struct placement *p)
{
    double B = 0, P = 0;
    for (size_t i = 0; i < pm->n_tensors; i++) {
        const struct plan_model_tensor *t = &pm->tensors[i];
        if (t->layer < 0 || (uint32_t)t->layer >= p->n_layer || t->n_dims < 2 ||
            (t->role != PLAN_ROLE_FFN && t->role != PLAN_ROLE_EXPERT))
            continue;
        enum placement_block b = plan__ffn_down_part(t) ? PLACEMENT_FFN_DOWN : PLACEMENT_FFN;
        if (placement_get_stream(p, (uint32_t)t->layer, b) < 0)
            continue;
        B += (double)t->nbytes;
        P += (double)t->ne[0] * (double)t->ne[1] * (double)t->ne[2] * (double)t->ne[3];
    }
    const struct plan_device *h = &pn->devs.dev[PLAN_HOST], *d = &pn->devs.dev[g];
    if (P <= 0 || h->mem_bw <= 0 || h->flops <= 0 || d->h2d_bw <= 0 || d->flops <= 0)
        return PLACEMENT_STREAM_MIN_BATCH;
    for (int n = 1; n <= 4096; n++) {
        double cm = B / h->mem_bw, cc = 2.0 * P * n / h->flops;
        double sm = B / d->h2d_bw, sc = 2.0 * P * n / d->flops;
        if ((sm > sc ? sm : sc) < (cm > cc ? cm : cc))
            return n;
    }
    return 4096;
}

static hearth_status stream_from_plan(struct placement *p, const struct plan_model *pm,
                                      const struct plan *pn, int n_dev)
{
    for (size_t i = 0; i < PLACEMENT_N_BLOCKS * (size_t)p->n_layer; i++)
        p->block_stream[i] = -1;
    p->stream_min_batch = PLACEMENT_STREAM_MIN_BATCH;
    p->stream_half_bytes = 0;
    if (!pn->streaming)
        return HEARTH_OK;
    int g = -1;
    for (uint32_t il = 0; il < p->n_layer; il++) {
        int tgt[2];
        stream_targets(pm, pn, il, tgt);
        if (tgt[0] >= n_dev || tgt[1] >= n_dev)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "placement: layer %u streamed to a device >= %d", il, n_dev);
        /* where the layer's two FFN blocks run in prefill if the eligible ones stream */
        int up = tgt[0] >= 0 ? tgt[0] : placement_get(p, il, PLACEMENT_FFN);
        int down = tgt[1] >= 0 ? tgt[1] : placement_get(p, il, PLACEMENT_FFN_DOWN);
        if (up != down || (tgt[0] < 0 && tgt[1] < 0))
            continue; /* streaming would split the layer across devices: keep it on the CPU */
        placement_set_stream(p, il, PLACEMENT_FFN, tgt[0]);
        placement_set_stream(p, il, PLACEMENT_FFN_DOWN, tgt[1]);
        g = up;
    }
    if (g < 0)
        return HEARTH_OK;
    p->stream_half_bytes = pn->use[g].stream / 2;
    p->stream_min_batch = stream_threshold(pm, pn, g, p);
    return HEARTH_OK;
}

hearth_status placement_from_plan(struct placement *p, const struct plan_model *pm,
                                  const struct plan *pn, int n_dev)
{
    if (pn->n_layer != p->n_layer || pn->n_tensors != pm->n_tensors)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "placement: a plan of %u layers for a placement of %u", pn->n_layer,
                       p->n_layer);
    if (pn->devs.n > n_dev)
        return err_set(HEARTH_ERR_INVALID_ARG, "placement: a plan of %d devices for %d",
                       pn->devs.n, n_dev);
    for (uint32_t il = 0; il < p->n_layer; il++) {
        const struct plan_layer *ly = &pn->layers[il];
        if (ly->attn_dev >= n_dev || ly->ffn_up_dev >= n_dev || ly->ffn_down_dev >= n_dev)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "placement: layer %u planned on a device >= %d", il, n_dev);
        placement_set(p, il, PLACEMENT_ATTN, ly->attn_dev);
        placement_set(p, il, PLACEMENT_FFN, ly->ffn_up_dev);
        placement_set(p, il, PLACEMENT_FFN_DOWN, ly->ffn_down_dev);
    }
    p->embd_dev = PLAN_HOST;
    p->out_dev = PLAN_HOST;
    for (size_t i = 0; i < pm->n_tensors; i++)
        if (pm->tensors[i].role == PLAN_ROLE_OUTPUT)
            p->out_dev = pn->tensors[i].compute;
    return stream_from_plan(p, pm, pn, n_dev);
}

int placement_n_streamed_blocks(const struct placement *p)
{
    int n = 0;
    for (size_t i = 0; i < PLACEMENT_N_BLOCKS * (size_t)p->n_layer; i++)
        n += p->block_stream[i] >= 0;
    return n;
}

int placement_n_offloaded_layers(const struct placement *p)
{
    int n = 0;
    for (uint32_t il = 0; il < p->n_layer; il++)
        n += placement_get(p, il, PLACEMENT_ATTN) != 0 ||
             placement_get(p, il, PLACEMENT_FFN) != 0 ||
             placement_get(p, il, PLACEMENT_FFN_DOWN) != 0;
    return n;
}
