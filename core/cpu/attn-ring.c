/*
 * cpu/attn-ring: staging of a ring-only f16 layer's window and its attention
 * on the grouped kernel (design in attn-ring.h).
 */
#include "cpu/attn-ring.h"

#include <string.h>

#include "err.h"
#include "f16.h"

void cpu_ring_stage_f16(const struct cpu_kvq_ring *ring, int kv_dim, int64_t first, int n,
                        const int32_t *tok, const float *k, const float *v, int64_t kv_stride,
                        uint16_t *kx, uint16_t *vx, struct cpu_ring_rows *out)
{
    const size_t KV = (size_t)kv_dim;
    const int64_t W = ring->w;
    const int64_t span = ring->span > 0 && ring->span < ring->w ? ring->span : W;
    const int64_t x0 = first - span + 1 > 0 ? first - span + 1 : 0;
    for (int64_t p = x0; p < first; p++) {
        const size_t r = (size_t)(p - x0) * KV, slot = (size_t)(p % W);
        if (ring->pos[slot] == (int32_t)p) {
            memcpy(kx + r, ring->k + slot * ring->k_stride, KV * sizeof *kx);
            memcpy(vx + r, ring->v + slot * ring->v_stride, KV * sizeof *vx);
        } else {
            memset(kx + r, 0, KV * sizeof *kx);
            memset(vx + r, 0, KV * sizeof *vx);
        }
    }
    for (int i = 0; i < n; i++) {
        const int64_t p = first + i;
        const size_t slot = (size_t)(p % W), r = (size_t)(p - x0) * KV;
        const float *ki = k + (int64_t)tok[i] * kv_stride, *vi = v + (int64_t)tok[i] * kv_stride;
        uint16_t *hk = ring->k + slot * ring->k_stride, *hv = ring->v + slot * ring->v_stride;
        for (size_t d = 0; d < KV; d++) {
            hk[d] = f32_to_f16(ki[d]);
            hv[d] = f32_to_f16(vi[d]);
        }
        ring->pos[slot] = (int32_t)p;
        memcpy(kx + r, hk, KV * sizeof *kx);
        memcpy(vx + r, hv, KV * sizeof *vx);
    }
    *out = (struct cpu_ring_rows){.k = kx, .v = vx, .x0 = x0};
}

struct ring_job {
    const struct cpu_ring_attn *ra;
    struct cpu_attn_split split;
};

static void ring_items(void *arg, int64_t b, int64_t e, int tid)
{
    const struct ring_job *j = arg;
    const struct cpu_ring_attn *ra = j->ra;
    const int hd = ra->hd;
    const size_t KV = (size_t)ra->n_head_kv * (size_t)hd;
    float *scores = ra->scores + (size_t)tid * ra->scores_per;
    for (int64_t it = b; it < e; it++) {
        int t, h;
        cpu_attn_split_item(&j->split, it, &t, &h);
        const struct cpu_ring_rows *rw = &ra->rows[ra->grp ? ra->grp[t] : 0];
        const int64_t p = ra->pos[t];
        int64_t lo = p - (int64_t)ra->window + 1 > 0 ? p - (int64_t)ra->window + 1 : 0;
        HEARTH_ASSERT(lo >= rw->x0);
        const size_t off = (size_t)(lo - rw->x0) * KV + (size_t)(h / j->split.n_gqa) * (size_t)hd;
        cpu_attn_heads(ra->ak, ra->out + t * ra->out_stride + (int64_t)h * hd,
                       ra->q + t * ra->q_stride + (int64_t)h * hd, j->split.qb, rw->k + off,
                       rw->v + off, KV, p - lo + 1, hd, ra->scale, scores);
    }
}

void cpu_ring_attn_run(struct threadpool *tp, const struct cpu_ring_attn *ra, int n_tok)
{
    HEARTH_ASSERT(ra->window >= 1);
    struct ring_job j = {.ra = ra};
    cpu_attn_split_init(&j.split, n_tok, ra->n_head, ra->n_head_kv, threadpool_n_threads(tp));
    int64_t n_items = (int64_t)n_tok * j.split.per_tok, span = 0;
    for (int t = 0; t < n_tok; t++) {
        int64_t w = ra->window, s = ra->pos[t] + 1 < w ? ra->pos[t] + 1 : w;
        span = s > span ? s : span;
    }
    HEARTH_ASSERT(ra->scores_per >= cpu_attn_scratch(ra->n_head / ra->n_head_kv, span));
    /* below ~64k multiply-adds a pool round trip costs more than it saves (as forward.c) */
    int64_t work = n_items * j.split.qb * span * ra->hd;
    threadpool_for(tp, n_items, work < 65536 ? n_items : 1, ring_items, &j);
}
