/*
 * placement: the block -> device map, -ngl parsing and the -ngl auto fit
 * (see placement.h). Layers are filled front to back because the scheduler
 * runs them in order: one contiguous GPU range means one activation move in
 * and one out per token, whatever N is.
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
    if (!p || !bd) {
        free(p);
        free(bd);
        return err_set(HEARTH_ERR_NO_MEMORY, "placement: out of memory for %u layers", n_layer);
    }
    for (size_t i = 0; i < PLACEMENT_N_BLOCKS * (size_t)n_layer; i++)
        bd[i] = dev;
    p->n_layer = n_layer;
    p->embd_dev = dev;
    p->out_dev = dev;
    p->block_dev = bd;
    *out = p;
    return HEARTH_OK;
}

void placement_free(struct placement *p)
{
    if (!p)
        return;
    free(p->block_dev);
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
    return HEARTH_OK;
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
