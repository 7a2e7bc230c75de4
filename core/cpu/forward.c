/*
 * cpu/forward: embeddings -> blocks -> final norm -> logits, on the CPU.
 *
 * A batch of B tokens (B <= n_batch) flows through every layer together:
 * each row-wise op loops over the B rows, each matmul is one cpu_matmul call
 * over all B rows (weights read once per batch), and attention runs in
 * parallel over (token, group of query heads sharing a KV head) items
 * (cpu_attn_split; the grouped kernel gives each head the per-head kernel's
 * bits, so the grouping never changes a result). The new K/V rows are
 * written to the F16 cache *before* attention and attention reads them back
 * from the cache, so a token sees exactly the same (rounded) keys whether it
 * came in a batch or alone: batched prefill and token-by-token decode give
 * the same bits.
 *
 * KV types (forward_params.kv_type_k / kv_type_v, kv-quant.h): with f16 for
 * both, the cache and the attention are the plain F16 ones above (unchanged
 * bits). Any other pair encodes the new rows with kvq_encode (one pool item
 * per token, KV head and K/V: the rotated encoders cost microseconds) and
 * runs cpu/attn-kvq.h's batched kernel, which decodes each cached row once
 * per layer and batch into f32 tiles shared by the G query heads and every
 * token of the batch reading that cache (tokens grouped by cache, so a
 * multi-sequence decode step shares nothing across sequences but still runs
 * as one parallel job). Its arithmetic per token depends only on the token's
 * own range, so the batch-split independence above holds for every type.
 * A K type other than f16 also gets the key mean and the exact sink key
 * (attn-kvq.h cpu_kvq_key_center): the batch that writes a cache's position
 * 0 fixes them from its own keys, so that independence holds whenever the
 * first batch has >= CPU_KVQ_MEAN_N tokens (or the same count either way).
 * An exact window W (forward_params.kv_window; per layer by the planner's
 * plan_kv_layer_window, a sliding-window layer's being its whole window)
 * makes a query at position t read positions j > t - W from f16 copies
 * (kv-cache.h's ring; the batch's own rows rounded the same way), so the
 * split independence holds with it too: whether j is exact depends only on
 * j and t, never on which batch brought j. An f16 cache's ring-only
 * (sliding-window) layers keep only such a ring and run the grouped f16
 * kernel over it (cpu/attn-ring.h), with full rows' bits.
 *
 * Per layer (facts sheet §4.6, §8.5):
 *   a = rmsnorm(x) ⊙ attn_norm; q,k,v = W a (+ bias); gemma3, qwen3: per-head
 *   rmsnorm of q, k; rope(q, k); K/V -> cache; o = attention; t = Wo o (+ b);
 *   gemma3: t = rmsnorm(t) ⊙ post_attn_norm; x += t;
 *   a = rmsnorm(x) ⊙ ffn_norm; t = Wdown (act(Wgate a) ⊙ Wup a);
 *   gemma3: t = rmsnorm(t) ⊙ post_ffw_norm; x += t.
 * Then logits = Wout (rmsnorm(x) ⊙ output_norm), only for the rows asked for.
 *
 * Row-wise ops (norms, RoPE, GLU) run on the calling thread: they are
 * O(B·n_embd) against the matmuls' O(B·n_embd·n_ff) and a pool round trip
 * would cost more than they do at decode.
 *
 * Multi-sequence contexts (forward_create_multi): n_seq KV caches share the
 * weights, the pool and the scratch. Internally every batch is described per
 * token (bpos[t], bkv[t]: its position and its sequence's cache), so the
 * single-sequence path is the special case "all tokens in cache 0 at
 * consecutive positions" and both run the same code: a decode step of S
 * sequences is one batch of S rows, one matmul per weight, and attention of
 * each row over its own cache. Because the matmul and every row-wise op give
 * each row the same bits whatever the batch (cpu/ops.h), a sequence's logits
 * do not depend on which other sequences share its batch.
 */
#include "cpu/forward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/attn-kvq.h"
#include "cpu/attn-ring.h"
#include "cpu/ops.h"
#include "cpu/rows.h"
#include "err.h"
#include "f16.h"
#include "kv-cache.h"
#include "plan.h"
#include "quant.h"
#include "seq-batch.h"
#include "threadpool.h"

struct forward_ctx {
    const struct model *m;
    struct threadpool *tp;
    struct kv_cache *kv;   /* kvs[0]: the cache of the single-sequence API */
    struct kv_cache **kvs; /* [n_seq] one cache per sequence */
    int n_seq;
    int n_batch;
    enum cpu_isa isa;
    struct cpu_attn_kernels ak;
    struct cpu_glu_kernels glu;
    /* compressed cache (any type but f16 for K or V): the batched kernel of attn-kvq.h */
    bool kvq;     /* a compressed K or V type */
    bool kvq_any; /* kvq, or some ring-only layer (both need the batch's groups, xst) */
    enum kvq_type kt, vt;
    struct cpu_kvq_attn *kva;
    uint8_t **kdst, **vdst;      /* [n_batch] cache rows the batch's new K/V go to */
    struct kv_cache **grp_kv;    /* [n_batch] the distinct caches of the batch */
    struct cpu_kvq_seq *grp;     /* [n_batch] their tokens, per layer their rows */
    int32_t *grp_tok;            /* [n_batch] batch rows grouped by cache */
    int n_grp;
    /*
     * exact window (forward_params.kv_window, kv-cache.h): xw = the widest
     * layer's W (0 none), xw_layer [n_layer] each layer's
     * (plan_kv_layer_window); xst_k, xst_v: [xst_rows][kv_dim] floats, per
     * layer and batch the exact rows each group reads (grp_x), groups back
     * to back
     */
    uint32_t xw;
    uint32_t *xw_layer;
    bool *xcodes; /* [n_layer] false: a ring-only layer (plan_kv_layer_codes), no codes */
    struct kv_ring_track *ring; /* [n_seq] what the ring-only layers hold (slots 0: none) */
    float *xst_k, *xst_v;
    size_t xst_rows;
    struct cpu_kvq_exact *grp_x; /* [n_batch] the exact rows of each group */
    /*
     * an f16 cache's ring-only layers (attn-ring.h): each group's rows staged
     * as halves in xst_k / xst_v (half of what the f32 staging takes), and
     * each batch row's group
     */
    struct cpu_ring_rows *grp_rows; /* [n_batch] */
    int32_t *tok_grp;               /* [n_batch] */
    struct cpu_matmul_kernels kern[HEARTH_DTYPE_COUNT]; /* valid where kern_ok */
    bool kern_ok[HEARTH_DTYPE_COUNT];

    /* scratch, row-major with n_batch rows */
    float *x;    /* [n_batch][n_embd] residual stream */
    float *xn;   /* [n_batch][n_embd] normed input of a sub-block */
    float *q;    /* [n_batch][n_head*hd] */
    float *k;    /* [n_batch][n_kv*hd] */
    float *v;    /* [n_batch][n_kv*hd] */
    float *att;  /* [n_batch][n_head*hd] attention output, heads concatenated */
    float *tmp;  /* [n_batch][n_embd] sub-block output */
    float *gate; /* [n_batch][n_ff] */
    float *up;   /* [n_batch][n_ff] */
    float *rope; /* [2 kinds][n_batch][n_rot] cos/sin pairs */
    float *scores; /* [n_threads][cpu_attn_scratch(n_gqa, n_ctx)] attention scratch */
    int32_t *bpos;           /* [n_batch] position of each token of the batch */
    struct kv_cache **bkv;   /* [n_batch] the cache each token of the batch reads and writes */
    int32_t *out_rows;       /* [n_batch] batch rows whose logits are wanted, ascending */
    int32_t *hid_rows;       /* [n_batch] batch rows whose hidden state is wanted, ascending */
    uint32_t *seq_next;      /* [n_seq] validation scratch: next position per sequence */
    int32_t *seq_last;       /* [n_seq] validation scratch: index of the last token seen */
    void *act;   /* quantized activations, act_bytes */
    size_t act_bytes;
};

struct forward_params forward_params_default(void)
{
    struct forward_params p = {.n_ctx = 0, .n_threads = 0, .n_batch = 64, .isa = -1};
    return p;
}

uint32_t forward_n_ctx(const struct forward_ctx *c)
{
    return c->kv->n_ctx;
}

uint32_t forward_n_past(const struct forward_ctx *c)
{
    return c->kv->n_used;
}

int forward_n_threads(const struct forward_ctx *c)
{
    return threadpool_n_threads(c->tp);
}

static const struct cpu_matmul_kernels *kern_of(const struct forward_ctx *c,
                                                const struct model_weight *w)
{
    return &c->kern[w->type];
}

/* Two kernel sets read the same quantized activation rows. */
static bool same_act(const struct cpu_matmul_kernels *a, const struct cpu_matmul_kernels *b)
{
    return a->act_type == b->act_type && a->quantize == b->quantize;
}

/* Looks up the kernels of w's type (once per type) and grows the act buffer need. */
static hearth_status prepare_weight(struct forward_ctx *c, const struct model_weight *w,
                                    const char *what, size_t *act_need)
{
    if (!c->kern_ok[w->type]) {
        hearth_status st = cpu_matmul_kernels_get(w->type, c->isa, &c->kern[w->type]);
        if (st != HEARTH_OK)
            return err_prefix(st, "forward: weight %s", what);
        c->kern_ok[w->type] = true;
    }
    size_t rb = cpu_act_row_bytes(&c->kern[w->type], w->n_in);
    if (rb == 0) {
        const char *an = hearth_dtype_name(c->kern[w->type].act_type);
        return err_set(HEARTH_ERR_UNSUPPORTED,
                       "forward: weight %s: row length %lld does not fit the activation format %s",
                       what, (long long)w->n_in, an ? an : "?");
    }
    size_t need = rb * (size_t)c->n_batch;
    if (need > *act_need)
        *act_need = need;
    return HEARTH_OK;
}

static float *alloc_f(size_t n, hearth_status *st)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p && *st == HEARTH_OK)
        *st = err_set(HEARTH_ERR_NO_MEMORY, "forward: out of memory for %zu floats of scratch", n);
    return p;
}

/* The exact window: at most n_ctx (a larger window is the whole context). */
static hearth_status exact_window_choose(int param, uint32_t n_ctx, uint32_t *out)
{
    if (param < 0 || param > (1 << 24))
        return err_set(HEARTH_ERR_INVALID_ARG, "forward: kv_window %d, expected [0, 2^24]",
                       param);
    *out = (uint32_t)param < n_ctx ? (uint32_t)param : n_ctx;
    return HEARTH_OK;
}

hearth_status forward_create(const struct model *m, const struct forward_params *params,
                             struct forward_ctx **out)
{
    return forward_create_multi(m, params, 1, out);
}

hearth_status forward_create_multi(const struct model *m, const struct forward_params *params,
                                   int n_seq, struct forward_ctx **out)
{
    *out = NULL;
    if (n_seq < 1 || n_seq > FORWARD_MAX_SEQ)
        return err_set(HEARTH_ERR_INVALID_ARG, "forward: n_seq %d out of range [1, %d]", n_seq,
                       FORWARD_MAX_SEQ);
    struct forward_params p = params ? *params : forward_params_default();
    const struct model_hparams *hp = &m->hp;
    if (p.n_batch <= 0)
        p.n_batch = 64;
    if (p.n_batch > 4096)
        return err_set(HEARTH_ERR_INVALID_ARG, "forward: n_batch %d, at most 4096", p.n_batch);
    uint32_t n_ctx = p.n_ctx ? p.n_ctx : hp->n_ctx_train;
    if (n_ctx == 0 || n_ctx > (1u << 24))
        return err_set(HEARTH_ERR_INVALID_ARG, "forward: n_ctx %u out of range [1, 2^24]", n_ctx);
    if (p.isa >= CPU_ISA_COUNT)
        return err_set(HEARTH_ERR_INVALID_ARG, "forward: isa %d is no cpu_isa", p.isa);

    struct forward_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(HEARTH_ERR_NO_MEMORY, "forward: out of memory");
    c->m = m;
    c->n_batch = p.n_batch;
    c->isa = p.isa < 0 ? cpu_isa_best() : (enum cpu_isa)p.isa;
    cpu_attn_kernels_get(c->isa, &c->ak);
    cpu_glu_kernels_get(c->isa, &c->glu);

    hearth_status st = HEARTH_OK;
    size_t act_need = 0;
    if ((st = prepare_weight(c, &m->output, "output", &act_need)) != HEARTH_OK)
        goto fail;
    static const char *const names[] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                        "ffn_gate", "ffn_up", "ffn_down"};
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const struct model_layer *ly = &m->layers[il];
        const struct model_weight *ws[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo,
                                           &ly->ffn_gate, &ly->ffn_up, &ly->ffn_down};
        for (int i = 0; i < 7; i++) {
            char what[64];
            snprintf(what, sizeof what, "blk.%u.%s", il, names[i]);
            if ((st = prepare_weight(c, ws[i], what, &act_need)) != HEARTH_OK)
                goto fail;
        }
    }
    if ((st = threadpool_create(p.n_threads, &c->tp)) != HEARTH_OK)
        goto fail;
    const uint32_t hd = hp->head_dim, kv_dim = hp->n_head_kv * hd;
    if ((unsigned)p.kv_type_k >= KVQ_TYPE_COUNT || (unsigned)p.kv_type_v >= KVQ_TYPE_COUNT) {
        st = err_set(HEARTH_ERR_INVALID_ARG, "forward: KV cache types %d / %d, expected [0, %d)",
                     p.kv_type_k, p.kv_type_v, (int)KVQ_TYPE_COUNT);
        goto fail;
    }
    c->kt = (enum kvq_type)p.kv_type_k;
    c->vt = (enum kvq_type)p.kv_type_v;
    c->kvq = c->kt != KVQ_F16 || c->vt != KVQ_F16;
    if (p.kv_window < 0) {
        st = err_set(HEARTH_ERR_INVALID_ARG, "forward: kv_window %d, expected >= 0", p.kv_window);
        goto fail;
    }
    if ((st = exact_window_choose(p.kv_window, n_ctx, &c->xw)) != HEARTH_OK)
        goto fail;
    if (!c->kvq)
        c->xw = 0; /* an f16/f16 cache is exact everywhere */
    /* each layer's window by the planner's rule (a sliding-window layer: its whole window) */
    c->xw_layer = calloc(hp->n_layer, sizeof *c->xw_layer);
    c->xcodes = calloc(hp->n_layer, sizeof *c->xcodes);
    if (!c->xw_layer || !c->xcodes) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "forward: out of memory for %u layers", hp->n_layer);
        goto fail;
    }
    {
        struct plan_opts wo;
        memset(&wo, 0, sizeof wo);
        wo.n_ctx = n_ctx;
        wo.kv_type_k = c->kt;
        wo.kv_type_v = c->vt;
        wo.kv_window = c->xw;
        wo.swa_full = p.swa_full;
        uint32_t w_max = 0;
        for (uint32_t il = 0; il < hp->n_layer; il++) {
            const bool swa = m->layers[il].is_swa && hp->sliding_window > 0;
            c->xw_layer[il] = plan_kv_layer_window(&wo, swa ? hp->sliding_window : 0);
            c->xcodes[il] = plan_kv_layer_codes(&wo, swa ? hp->sliding_window : 0);
            w_max = c->xw_layer[il] > w_max ? c->xw_layer[il] : w_max;
            c->kvq_any |= !c->xcodes[il];
        }
        c->xw = w_max;
    }
    c->kvq_any |= c->kvq;
    const struct kv_cache_params kp = {.n_layer = hp->n_layer, .n_ctx = n_ctx,
                                       .n_head_kv = hp->n_head_kv, .head_dim = hd,
                                       .k_type = c->kt, .v_type = c->vt,
                                       .seed = model_kv_seed(m), .exact_window = c->xw,
                                       .layer_window = c->xw_layer, .layer_codes = c->xcodes,
                                       .ring_swa = hp->sliding_window};
    c->kvs = calloc((size_t)n_seq, sizeof *c->kvs);
    c->ring = calloc((size_t)n_seq, sizeof *c->ring);
    c->seq_next = calloc((size_t)n_seq, sizeof *c->seq_next);
    c->seq_last = calloc((size_t)n_seq, sizeof *c->seq_last);
    if (!c->kvs || !c->ring || !c->seq_next || !c->seq_last) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "forward: out of memory for %d sequences", n_seq);
        goto fail;
    }
    c->n_seq = n_seq;
    for (int s = 0; s < n_seq; s++)
        if ((st = kv_cache_create(&kp, &c->kvs[s])) != HEARTH_OK)
            goto fail;
    for (uint32_t il = 0; il < hp->n_layer; il++)
        for (int s = 0; !c->xcodes[il] && s < n_seq; s++)
            c->ring[s] = (struct kv_ring_track){.swa = hp->sliding_window,
                                                .slots = c->xw_layer[il]};
    c->kv = c->kvs[0];
    if (c->kvq_any) {
        /* an f16 cache's ring-only layers run attn-ring.h, not the compressed kernel */
        if (c->kvq &&
            ((st = cpu_kvq_attn_create(c->isa, threadpool_n_threads(c->tp), &c->kva)) !=
                 HEARTH_OK ||
             (st = cpu_kvq_attn_reserve(c->kva, p.n_batch, (int)hp->n_head, (int)hd)) !=
                 HEARTH_OK))
            goto fail;
        c->kdst = calloc((size_t)p.n_batch, sizeof *c->kdst);
        c->vdst = calloc((size_t)p.n_batch, sizeof *c->vdst);
        c->grp_kv = calloc((size_t)p.n_batch, sizeof *c->grp_kv);
        c->grp = calloc((size_t)p.n_batch, sizeof *c->grp);
        c->grp_tok = calloc((size_t)p.n_batch, sizeof *c->grp_tok);
        if (!c->kdst || !c->vdst || !c->grp_kv || !c->grp || !c->grp_tok) {
            st = err_set(HEARTH_ERR_NO_MEMORY, "forward: out of memory for the KV batch tables");
            goto fail;
        }
        if (c->xw > 0) {
            /* each group: W - 1 rows before its first token, plus its own tokens */
            size_t n_grp_max = (size_t)(n_seq < p.n_batch ? n_seq : p.n_batch);
            c->xst_rows = n_grp_max * (c->xw - 1) + (size_t)p.n_batch;
            c->xst_k = malloc(c->xst_rows * kv_dim * sizeof *c->xst_k);
            c->xst_v = malloc(c->xst_rows * kv_dim * sizeof *c->xst_v);
            c->grp_x = calloc((size_t)p.n_batch, sizeof *c->grp_x);
            c->grp_rows = calloc((size_t)p.n_batch, sizeof *c->grp_rows);
            c->tok_grp = calloc((size_t)p.n_batch, sizeof *c->tok_grp);
            if (!c->xst_k || !c->xst_v || !c->grp_x || !c->grp_rows || !c->tok_grp) {
                st = err_set(HEARTH_ERR_NO_MEMORY,
                             "forward: out of memory for %zu exact-window rows of %u floats",
                             c->xst_rows, kv_dim);
                goto fail;
            }
        }
    }

    const size_t B = (size_t)p.n_batch, E = hp->n_embd, Q = (size_t)hp->n_head * hd;
    c->x = alloc_f(B * E, &st);
    c->xn = alloc_f(B * E, &st);
    c->q = alloc_f(B * Q, &st);
    c->k = alloc_f(B * kv_dim, &st);
    c->v = alloc_f(B * kv_dim, &st);
    c->att = alloc_f(B * Q, &st);
    c->tmp = alloc_f(B * E, &st);
    c->gate = alloc_f(B * hp->n_ff, &st);
    c->up = alloc_f(B * hp->n_ff, &st);
    c->rope = alloc_f(2 * B * hp->n_rot, &st);
    c->scores = alloc_f((size_t)threadpool_n_threads(c->tp) *
                            cpu_attn_scratch((int)(hp->n_head / hp->n_head_kv), n_ctx),
                        &st);
    c->bpos = calloc(B, sizeof *c->bpos);
    c->bkv = calloc(B, sizeof *c->bkv);
    c->out_rows = calloc(B, sizeof *c->out_rows);
    c->hid_rows = calloc(B, sizeof *c->hid_rows);
    if ((!c->bpos || !c->bkv || !c->out_rows || !c->hid_rows) && st == HEARTH_OK)
        st = err_set(HEARTH_ERR_NO_MEMORY, "forward: out of memory for the batch tables");
    c->act_bytes = act_need;
    c->act = malloc(act_need ? act_need : 1);
    if (!c->act && st == HEARTH_OK)
        st = err_set(HEARTH_ERR_NO_MEMORY, "forward: out of memory for %zu bytes of activations",
                     act_need);
    if (st != HEARTH_OK)
        goto fail;
    *out = c;
    return HEARTH_OK;
fail:
    forward_destroy(c);
    return st;
}

void forward_destroy(struct forward_ctx *c)
{
    if (!c)
        return;
    threadpool_destroy(c->tp);
    for (int s = 0; c->kvs && s < c->n_seq; s++)
        kv_cache_destroy(c->kvs[s]);
    free(c->kvs);
    cpu_kvq_attn_destroy(c->kva);
    free(c->kdst);
    free(c->vdst);
    free(c->grp_kv);
    free(c->grp);
    free(c->grp_tok);
    free(c->xw_layer);
    free(c->xcodes);
    free(c->ring);
    free(c->xst_k);
    free(c->xst_v);
    free(c->grp_x);
    free(c->grp_rows);
    free(c->tok_grp);
    free(c->seq_next);
    free(c->seq_last);
    free(c->bpos);
    free(c->bkv);
    free(c->out_rows);
    free(c->hid_rows);
    free(c->x);
    free(c->xn);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->att);
    free(c->tmp);
    free(c->gate);
    free(c->up);
    free(c->rope);
    free(c->scores);
    free(c->act);
    free(c);
}

/* x += bias (bias absent: nothing). */
static void add_bias_row(float *x, const struct model_weight *b, int64_t width)
{
    if (b->data)
        cpu_add(x, b->data, width);
}

struct attn_job {
    struct forward_ctx *c;
    uint32_t il;
    size_t scores_per; /* floats of scratch per thread */
    struct cpu_attn_split split;
};

static void attn_items(void *arg, int64_t b, int64_t e, int tid)
{
    const struct attn_job *j = arg;
    const struct forward_ctx *c = j->c;
    const struct model_hparams *hp = &c->m->hp;
    const struct model_layer *ly = &c->m->layers[j->il];
    const int hd = (int)hp->head_dim;
    const int64_t Q = (int64_t)hp->n_head * hd;
    float *scores = c->scores + (size_t)tid * j->scores_per;
    for (int64_t it = b; it < e; it++) {
        int t, h;
        cpu_attn_split_item(&j->split, it, &t, &h);
        const struct kv_cache *kv = c->bkv[t];
        int64_t p = c->bpos[t], lo = 0;
        if (ly->is_swa && hp->sliding_window > 0 && p - (int64_t)hp->sliding_window + 1 > 0)
            lo = p - (int64_t)hp->sliding_window + 1; /* the n_swa latest, itself included */
        size_t col = (size_t)(h / j->split.n_gqa) * (size_t)hd;
        cpu_attn_heads(&c->ak, c->att + t * Q + (int64_t)h * hd, c->q + t * Q + (int64_t)h * hd,
                       j->split.qb, kv_cache_k16(kv, j->il, (uint32_t)lo) + col,
                       kv_cache_v16(kv, j->il, (uint32_t)lo) + col, kv->kv_dim, p - lo + 1, hd,
                       hp->attn_scale, scores);
    }
}

/*
 * Attention of the batch over f16 caches: one item per token and group of
 * query heads sharing a KV head (cpu_attn_split).
 */
static void attn_f16(struct forward_ctx *c, uint32_t il, int n)
{
    const struct model_hparams *hp = &c->m->hp;
    const int64_t hd = hp->head_dim;
    struct attn_job aj = {.c = c, .il = il,
                          .scores_per = cpu_attn_scratch((int)(hp->n_head / hp->n_head_kv),
                                                         c->kv->n_ctx)};
    cpu_attn_split_init(&aj.split, n, (int)hp->n_head, (int)hp->n_head_kv,
                        threadpool_n_threads(c->tp));
    /*
     * An item is qb heads of one token, O(qb · pos · hd). Short contexts run on
     * the caller: below ~64k multiply-adds a pool round trip costs more than it saves.
     */
    int64_t n_items = (int64_t)n * aj.split.per_tok, max_pos = 0;
    for (int t = 0; t < n; t++)
        max_pos = c->bpos[t] > max_pos ? c->bpos[t] : max_pos;
    int64_t work = n_items * aj.split.qb * (max_pos + 1) * hd;
    threadpool_for(c->tp, n_items, work < 65536 ? n_items : 1, attn_items, &aj);
}

/*
 * Key mean subtraction and the sink key (attn-kvq.h): a batch that writes
 * position 0 of a cache sets that cache's mean and sink for layer il from its
 * own keys; then every new key of the batch has its cache's mean subtracted
 * before encoding, and attention reads the sink for position 0.
 */
static void key_mean_apply(struct forward_ctx *c, uint32_t il)
{
    const int KV = (int)(c->m->hp.n_head_kv * c->m->hp.head_dim);
    for (int g = 0; g < c->n_grp; g++) {
        float *mu = kv_cache_k_mean(c->grp_kv[g], il), *sink = kv_cache_k_sink(c->grp_kv[g], il);
        c->grp[g].k_sink = sink;
        if (mu)
            cpu_kvq_key_center(c->k, KV, c->grp[g].tok, c->grp[g].n,
                               c->bpos[c->grp[g].tok[0]] == 0, KV, mu, sink);
    }
}

/*
 * The exact window of layer il for this batch (kv-cache.h, attn-kvq.h
 * cpu_kvq_exact_stage, the staging the backend's ATTENTION runs too): per
 * group, the rows of [max(0, first - W + 1), last] staged as floats in the
 * attention's domain, groups back to back in xst_k / xst_v, then the
 * batch's rows in the cache's ring.
 */
/* Group g's cache's ring of layer il. */
static struct cpu_kvq_ring layer_ring(const struct forward_ctx *c, int g, uint32_t il)
{
    const struct model_hparams *hp = &c->m->hp;
    const size_t KV = (size_t)hp->n_head_kv * hp->head_dim;
    struct kv_cache *kv = c->grp_kv[g];
    /* a sliding-window layer reads nothing older than its window, codes or not */
    const uint32_t span = c->m->layers[il].is_swa ? hp->sliding_window : 0;
    return (struct cpu_kvq_ring){.k = kv_cache_xk(kv, il, 0), .v = kv_cache_xv(kv, il, 0),
                                 .k_stride = KV, .v_stride = KV, .pos = kv_cache_xpos(kv, il, 0),
                                 .w = c->xw_layer[il], .span = span};
}

static void exact_window_apply(struct forward_ctx *c, uint32_t il, const struct kvq_rot *rot)
{
    const struct model_hparams *hp = &c->m->hp;
    const int hd = (int)hp->head_dim, nkv = (int)hp->n_head_kv, KV = nkv * hd;
    size_t off = 0;
    for (int g = 0; g < c->n_grp; g++) {
        const struct cpu_kvq_seq *sq = &c->grp[g];
        struct kv_cache *kv = c->grp_kv[g];
        const struct cpu_kvq_ring ring = layer_ring(c, g, il);
        HEARTH_ASSERT(off + cpu_kvq_exact_rows(c->xw_layer[il], sq->n) <= c->xst_rows);
        cpu_kvq_exact_stage(c->kt, c->vt, rot, nkv, hd, kv->k_row, kv->v_row, sq,
                            c->bpos[sq->tok[0]], c->k, c->v, KV, &ring,
                            c->xst_k + off * (size_t)KV, c->xst_v + off * (size_t)KV,
                            &c->grp_x[g]);
        off += (size_t)c->grp_x[g].nx;
    }
}

/*
 * The new K/V rows of the batch (k, v scratch; rows kdst/vdst) encoded, then
 * attention over the compressed caches, tokens grouped by cache so each KV
 * row is decoded once per batch (attn-kvq.h).
 */
static void attn_kvq(struct forward_ctx *c, uint32_t il, int n)
{
    const struct model_hparams *hp = &c->m->hp;
    const int hd = (int)hp->head_dim, KV = (int)(hp->n_head_kv * hp->head_dim);
    const struct model_layer *ly = &c->m->layers[il];
    const struct kvq_rot *rot = kv_cache_rot(c->kv, il);
    key_mean_apply(c, il);
    if (c->xcodes[il]) /* a ring-only layer stores no codes (the ring gets its rows below) */
        cpu_kvq_encode_rows(c->tp, c->kt, c->vt, rot, n, (int)hp->n_head_kv, hd, c->k, c->v,
                            KV, c->kdst, c->vdst);
    for (int g = 0; g < c->n_grp; g++) {
        c->grp[g].k = c->grp_kv[g]->k[il];
        c->grp[g].v = c->grp_kv[g]->v[il];
    }
    if (c->xw_layer[il] > 0)
        exact_window_apply(c, il, rot);
    const int64_t Q = (int64_t)hp->n_head * hd;
    struct cpu_kvq_layer L = {
        .kt = c->kt, .vt = c->vt, .rot = rot, .n_head = (int)hp->n_head,
        .n_head_kv = (int)hp->n_head_kv, .hd = hd, .k_row = c->kv->k_row, .v_row = c->kv->v_row,
        .scale = hp->attn_scale,
        .window = ly->is_swa && hp->sliding_window > 0 ? hp->sliding_window : 0,
        .exact_window = c->xw_layer[il], .exact = c->grp_x, .pos = c->bpos, .q = c->q, .q_stride = Q,
        .out = c->att, .out_stride = Q, .seq = c->grp, .n_seq = c->n_grp};
    cpu_kvq_attn_run(c->kva, c->tp, &L);
}

/*
 * An f16 cache's ring-only layer (attn-ring.h): per group its window's rows
 * staged as halves (xst_k / xst_v, groups back to back) and the batch's rows
 * into the ring, then the grouped f16 kernel over each token's window.
 */
static void attn_ring(struct forward_ctx *c, uint32_t il, int n)
{
    const struct model_hparams *hp = &c->m->hp;
    const int KV = (int)(hp->n_head_kv * hp->head_dim);
    /* halves in the f32 staging buffers: the f16 path never uses them as floats */
    uint16_t *xk = (uint16_t *)(void *)c->xst_k, *xv = (uint16_t *)(void *)c->xst_v;
    size_t off = 0;
    for (int g = 0; g < c->n_grp; g++) {
        const struct cpu_kvq_seq *sq = &c->grp[g];
        const struct cpu_kvq_ring ring = layer_ring(c, g, il);
        const int64_t first = c->bpos[sq->tok[0]];
        HEARTH_ASSERT(off + cpu_kvq_exact_rows(c->xw_layer[il], sq->n) <= c->xst_rows);
        cpu_ring_stage_f16(&ring, KV, first, sq->n, sq->tok, c->k, c->v, KV,
                           xk + off * (size_t)KV, xv + off * (size_t)KV, &c->grp_rows[g]);
        off += (size_t)(first - c->grp_rows[g].x0 + sq->n);
        for (int i = 0; i < sq->n; i++)
            c->tok_grp[sq->tok[i]] = g;
    }
    const int64_t Q = (int64_t)hp->n_head * hp->head_dim;
    const struct cpu_ring_attn ra = {
        .ak = &c->ak, .rows = c->grp_rows, .grp = c->tok_grp, .pos = c->bpos, .q = c->q,
        .q_stride = Q, .out = c->att, .out_stride = Q, .n_head = (int)hp->n_head,
        .n_head_kv = (int)hp->n_head_kv, .hd = (int)hp->head_dim, .window = hp->sliding_window,
        .scale = hp->attn_scale, .scores = c->scores,
        .scores_per = cpu_attn_scratch((int)(hp->n_head / hp->n_head_kv), c->kv->n_ctx)};
    cpu_ring_attn_run(c->tp, &ra, n);
}

/* Groups the batch rows by the cache they read (grp, grp_kv, grp_tok; first-seen order). */
static void group_batch(struct forward_ctx *c, int n)
{
    c->n_grp = 0;
    for (int t = 0; t < n; t++) {
        int g = 0;
        while (g < c->n_grp && c->grp_kv[g] != c->bkv[t])
            g++;
        if (g == c->n_grp) {
            c->grp_kv[g] = c->bkv[t];
            c->grp[g].n = 0;
            c->n_grp++;
        }
        c->grp[g].n++;
    }
    int off = 0;
    for (int g = 0; g < c->n_grp; g++) {
        c->grp[g].tok = c->grp_tok + off;
        off += c->grp[g].n;
        c->grp[g].n = 0;
    }
    for (int t = 0; t < n; t++) {
        int g = 0;
        while (c->grp_kv[g] != c->bkv[t])
            g++;
        c->grp_tok[(c->grp[g].tok - c->grp_tok) + c->grp[g].n++] = t;
    }
}

/* One layer's per-token work, run over the batch's tokens by cpu_rows_for. */
struct layer_job {
    struct forward_ctx *c;
    const struct model_layer *ly;
    uint32_t il;
    const float *rope;              /* this layer's kind of cos/sin rows */
    const struct model_weight *qn, *kn; /* QK norms (data NULL: none) */
};

static void row_attn_norm(void *arg, int t)
{
    const struct layer_job *j = arg;
    const struct forward_ctx *c = j->c;
    const int64_t E = c->m->hp.n_embd;
    cpu_rmsnorm(c->xn + t * E, c->x + t * E, j->ly->attn_norm.data, E, c->m->hp.norm_eps);
}

/* q/k biases and norms, RoPE, and the f16 cache store (or the row pointers to encode to). */
static void row_qk(void *arg, int t)
{
    const struct layer_job *j = arg;
    struct forward_ctx *c = j->c;
    const struct model_hparams *hp = &c->m->hp;
    const struct model_layer *ly = j->ly;
    const int64_t hd = hp->head_dim, Q = (int64_t)hp->n_head * hd,
                  KV = (int64_t)hp->n_head_kv * hd;
    float *qt = c->q + t * Q, *kt = c->k + t * KV, *vt = c->v + t * KV;
    add_bias_row(qt, &ly->bq, Q);
    add_bias_row(kt, &ly->bk, KV);
    add_bias_row(vt, &ly->bv, KV);
    if (j->qn->data) {
        for (uint32_t h = 0; h < hp->n_head; h++)
            cpu_rmsnorm(qt + h * hd, qt + h * hd, j->qn->data, hd, hp->norm_eps);
        for (uint32_t h = 0; h < hp->n_head_kv; h++)
            cpu_rmsnorm(kt + h * hd, kt + h * hd, j->kn->data, hd, hp->norm_eps);
    }
    const float *cs = j->rope + (size_t)t * hp->n_rot;
    cpu_rope(qt, (int)hp->n_head, (int)hd, (int)hp->n_rot, cs, hp->rope_mode);
    cpu_rope(kt, (int)hp->n_head_kv, (int)hd, (int)hp->n_rot, cs, hp->rope_mode);
    if (c->kvq || !c->xcodes[j->il]) {
        if (c->xcodes[j->il]) {
            c->kdst[t] = kv_cache_k(c->bkv[t], j->il, (uint32_t)c->bpos[t]);
            c->vdst[t] = kv_cache_v(c->bkv[t], j->il, (uint32_t)c->bpos[t]);
        }
        return;
    }
    uint16_t *kc = kv_cache_k16(c->bkv[t], j->il, (uint32_t)c->bpos[t]);
    uint16_t *vc = kv_cache_v16(c->bkv[t], j->il, (uint32_t)c->bpos[t]);
    for (int64_t i = 0; i < KV; i++) {
        kc[i] = f32_to_f16(kt[i]);
        vc[i] = f32_to_f16(vt[i]);
    }
}

/* The attention output into the residual stream, then the FFN's normed input. */
static void row_attn_out(void *arg, int t)
{
    const struct layer_job *j = arg;
    const struct forward_ctx *c = j->c;
    const struct model_hparams *hp = &c->m->hp;
    const int64_t E = hp->n_embd;
    float *tmp = c->tmp + t * E, *x = c->x + t * E;
    add_bias_row(tmp, &j->ly->bo, E);
    if (hp->post_norms)
        cpu_rmsnorm(tmp, tmp, j->ly->post_attn_norm.data, E, hp->norm_eps);
    cpu_add(x, tmp, E);
    cpu_rmsnorm(c->xn + t * E, x, j->ly->ffn_norm.data, E, hp->norm_eps);
}

static void row_glu(void *arg, int t)
{
    const struct layer_job *j = arg;
    const struct forward_ctx *c = j->c;
    const int64_t F = c->m->hp.n_ff;
    (c->m->hp.ffn_act == MODEL_FFN_GELU_TANH ? c->glu.gelu_tanh : c->glu.silu)(
        c->gate + t * F, c->up + t * F, F);
}

static void row_ffn_out(void *arg, int t)
{
    const struct layer_job *j = arg;
    const struct forward_ctx *c = j->c;
    const struct model_hparams *hp = &c->m->hp;
    const int64_t E = hp->n_embd;
    float *tmp = c->tmp + t * E;
    if (hp->post_norms)
        cpu_rmsnorm(tmp, tmp, j->ly->post_ffn_norm.data, E, hp->norm_eps);
    cpu_add(c->x + t * E, tmp, E);
}

/* One layer over the n tokens of the batch (positions and caches in bpos / bkv). */
static void layer_forward(struct forward_ctx *c, uint32_t il, int n)
{
    const struct model *m = c->m;
    const struct model_hparams *hp = &m->hp;
    const struct model_layer *ly = &m->layers[il];
    const int64_t E = hp->n_embd, hd = hp->head_dim, Q = (int64_t)hp->n_head * hd,
                  KV = (int64_t)hp->n_head_kv * hd, F = hp->n_ff;
    struct layer_job lj = {.c = c, .ly = ly, .il = il,
                           .rope = c->rope + (ly->is_swa ? (size_t)c->n_batch * hp->n_rot : 0)};
    model_qk_norms(m, il, kvq_is_rotated(c->kt) && c->xcodes[il], &lj.qn, &lj.kn);

    /* attention sub-block */
    cpu_rows_for(c->tp, n, E, row_attn_norm, &lj);
    const struct cpu_matmul_kernels *kq = kern_of(c, &ly->wq), *kk = kern_of(c, &ly->wk),
                                    *kv = kern_of(c, &ly->wv);
    if (same_act(kq, kk) && same_act(kk, kv)) {
        /* the common case: one quantization, one pool round trip for q, k and v */
        const struct cpu_matmul_kernels *ks[3] = {kq, kk, kv};
        const struct model_weight *ws[3] = {&ly->wq, &ly->wk, &ly->wv};
        float *ys[3] = {c->q, c->k, c->v};
        const int64_t ss[3] = {Q, KV, KV};
        cpu_act_quantize(c->tp, kq, c->xn, E, n, c->act);
        cpu_matmul_act_multi(c->tp, 3, ks, ws, c->act, n, ys, ss);
    } else {
        cpu_matmul(c->tp, kq, &ly->wq, c->xn, n, c->q, Q, c->act);
        cpu_matmul(c->tp, kk, &ly->wk, c->xn, n, c->k, KV, c->act);
        cpu_matmul(c->tp, kv, &ly->wv, c->xn, n, c->v, KV, c->act);
    }
    cpu_rows_for(c->tp, n, Q + 2 * KV, row_qk, &lj);
    if (c->kvq)
        attn_kvq(c, il, n);
    else if (!c->xcodes[il])
        attn_ring(c, il, n);
    else
        attn_f16(c, il, n);

    cpu_matmul(c->tp, kern_of(c, &ly->wo), &ly->wo, c->att, n, c->tmp, E, c->act);
    cpu_rows_for(c->tp, n, 2 * E, row_attn_out, &lj);

    /* feed-forward sub-block */
    const struct cpu_matmul_kernels *kg = kern_of(c, &ly->ffn_gate), *ku = kern_of(c, &ly->ffn_up);
    if (same_act(kg, ku)) {
        const struct cpu_matmul_kernels *ks[2] = {kg, ku};
        const struct model_weight *ws[2] = {&ly->ffn_gate, &ly->ffn_up};
        float *ys[2] = {c->gate, c->up};
        const int64_t ss[2] = {F, F};
        cpu_act_quantize(c->tp, kg, c->xn, E, n, c->act);
        cpu_matmul_act_multi(c->tp, 2, ks, ws, c->act, n, ys, ss);
    } else {
        cpu_matmul(c->tp, kg, &ly->ffn_gate, c->xn, n, c->gate, F, c->act);
        cpu_matmul(c->tp, ku, &ly->ffn_up, c->xn, n, c->up, F, c->act);
    }
    cpu_rows_for(c->tp, n, F, row_glu, &lj);
    cpu_matmul(c->tp, kern_of(c, &ly->ffn_down), &ly->ffn_down, c->gate, n, c->tmp, E, c->act);
    cpu_rows_for(c->tp, n, E, row_ffn_out, &lj);
}

struct embed_job {
    struct forward_ctx *c;
    const int32_t *tokens;
};

/*
 * Token t's embedding row, and the cos/sin of its position for global (kind
 * 0) and local (kind 1) layers.
 */
static void row_embed(void *arg, int t)
{
    const struct embed_job *j = arg;
    const struct forward_ctx *c = j->c;
    const struct model *m = c->m;
    const struct model_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd;
    float *xt = c->x + t * E;
    model_weight_row(&m->tok_embd, j->tokens[t], xt); /* ids validated by forward_eval */
    if (hp->embd_scale != 1.0f)
        for (int64_t i = 0; i < E; i++)
            xt[i] *= hp->embd_scale;
    const float *divs = m->rope_freqs.data;
    cpu_rope_table(c->rope + (size_t)t * hp->n_rot, (int)hp->n_rot, c->bpos[t], hp->rope_base,
                   hp->rope_freq_scale, divs);
    if (hp->sliding_window > 0)
        cpu_rope_table(c->rope + ((size_t)c->n_batch + (size_t)t) * hp->n_rot, (int)hp->n_rot,
                       c->bpos[t], hp->rope_base_local, 1.0f, divs);
}

/*
 * One batch of n <= n_batch tokens, token t at position bpos[t] of cache
 * bkv[t]. logits: NULL, or n_out rows of n_vocab floats, those of batch rows
 * out_rows[0..n_out); hidden: NULL, or n_hid rows of n_embd floats (the final
 * norm's output), those of batch rows hid_rows[0..n_hid).
 */
static void forward_batch(struct forward_ctx *c, const int32_t *tokens, int n, float *logits,
                          int n_out, float *hidden, int n_hid)
{
    const struct model *m = c->m;
    const struct model_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd;
    struct embed_job ej = {c, tokens};
    cpu_rows_for(c->tp, n, E + 2 * (int64_t)hp->n_rot, row_embed, &ej);
    if (c->kvq_any)
        group_batch(c, n);
    for (uint32_t il = 0; il < hp->n_layer; il++)
        layer_forward(c, il, n);
    for (int i = 0; hidden && i < n_hid; i++)
        cpu_rmsnorm(hidden + i * E, c->x + (int64_t)c->hid_rows[i] * E, m->output_norm.data, E,
                    hp->norm_eps);
    if (!logits || n_out == 0)
        return;
    /* only the rows asked for go through the (large) output matmul */
    for (int i = 0; i < n_out; i++)
        cpu_rmsnorm(c->xn + i * E, c->x + (int64_t)c->out_rows[i] * E, m->output_norm.data, E,
                    hp->norm_eps);
    cpu_matmul(c->tp, kern_of(c, &m->output), &m->output, c->xn, n_out, logits, hp->n_vocab,
               c->act);
}

hearth_status forward_eval(struct forward_ctx *c, const int32_t *tokens, int n_tokens, int pos0,
                           float *logits_out, bool all_logits)
{
    const struct model_hparams *hp = &c->m->hp;
    if (!tokens || n_tokens < 1)
        return err_set(HEARTH_ERR_INVALID_ARG, "forward_eval: %d tokens, expected at least 1",
                       n_tokens);
    if (pos0 < 0 || (uint32_t)pos0 > c->kv->n_used)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "forward_eval: pos0 %d out of range: the cache holds positions [0, %u), "
                       "so pos0 must be in [0, %u]",
                       pos0, c->kv->n_used, c->kv->n_used);
    if ((int64_t)pos0 + n_tokens > (int64_t)c->kv->n_ctx)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "forward_eval: positions %d..%lld exceed the context of %u positions",
                       pos0, (long long)pos0 + n_tokens - 1, c->kv->n_ctx);
    for (int t = 0; t < n_tokens; t++)
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= hp->n_vocab)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "forward_eval: token %d (at index %d) out of range [0, %u)", tokens[t],
                           t, hp->n_vocab);
    if (!kv_ring_can_eval(&c->ring[0], (uint32_t)pos0))
        return seq_batch_ring_lost("forward_eval", 0, &c->ring[0], (uint32_t)pos0);
    c->kv->n_used = (uint32_t)pos0;
    for (int t0 = 0; t0 < n_tokens; t0 += c->n_batch) {
        int n = n_tokens - t0 < c->n_batch ? n_tokens - t0 : c->n_batch;
        bool last = t0 + n == n_tokens;
        float *lg = NULL;
        int n_out = 0;
        if (logits_out && all_logits) {
            lg = logits_out + (size_t)t0 * hp->n_vocab;
            for (int t = 0; t < n; t++)
                c->out_rows[n_out++] = t;
        } else if (logits_out && last) {
            lg = logits_out;
            c->out_rows[n_out++] = n - 1;
        }
        for (int t = 0; t < n; t++) {
            c->bpos[t] = pos0 + t0 + t;
            c->bkv[t] = c->kv;
        }
        forward_batch(c, tokens + t0, n, lg, n_out, NULL, 0);
        c->kv->n_used = (uint32_t)(pos0 + t0 + n);
        kv_ring_advance(&c->ring[0], (uint32_t)(pos0 + t0), (uint32_t)n);
    }
    return HEARTH_OK;
}

/* ---- several sequences ------------------------------------------------------ */

int forward_n_seq(const struct forward_ctx *c)
{
    return c->n_seq;
}

uint32_t forward_seq_n_past(const struct forward_ctx *c, int seq)
{
    return seq >= 0 && seq < c->n_seq ? c->kvs[seq]->n_used : 0;
}

size_t forward_kv_bytes(const struct forward_ctx *c)
{
    return (size_t)c->n_seq * kv_cache_bytes(c->kv);
}

struct kv_cache *forward_kv_cache(struct forward_ctx *c, int seq)
{
    return seq >= 0 && seq < c->n_seq ? c->kvs[seq] : NULL;
}

/*
 * Checks a multi-sequence batch without changing anything; on success
 * seq_next[s] is where sequence s ends after the call (its old n_used when
 * the batch has none of its tokens).
 */
static hearth_status check_multi(struct forward_ctx *c, const int32_t *tokens,
                                 const int32_t *seq, const int32_t *pos, int n)
{
    for (int s = 0; s < c->n_seq; s++)
        c->seq_next[s] = c->kvs[s]->n_used;
    const struct seq_batch_limits lim = {"forward_eval_multi", c->n_seq, c->m->hp.n_vocab,
                                         c->kv->n_ctx};
    hearth_status st = seq_batch_check(&lim, tokens, seq, pos, n, c->seq_next, c->seq_last);
    if (st != HEARTH_OK)
        return st;
    return seq_batch_ring_check(lim.who, c->ring, c->n_seq, seq, pos, n);
}

hearth_status forward_eval_multi(struct forward_ctx *c, const int32_t *tokens, const int32_t *seq,
                                 const int32_t *pos, int n_tokens, float *logits_out,
                                 const bool *want_logits)
{
    const struct seq_batch_out out = {logits_out, want_logits, NULL, NULL};
    return forward_eval_multi_out(c, tokens, seq, pos, n_tokens, &out);
}

hearth_status forward_eval_multi_out(struct forward_ctx *c, const int32_t *tokens,
                                     const int32_t *seq, const int32_t *pos, int n_tokens,
                                     const struct seq_batch_out *out)
{
    if (!tokens || !seq || !pos || n_tokens < 1)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "forward_eval_multi: %d tokens (or a NULL array), expected at least 1",
                       n_tokens);
    hearth_status st = check_multi(c, tokens, seq, pos, n_tokens);
    if (st != HEARTH_OK)
        return st;
    const size_t n_vocab = c->m->hp.n_vocab, n_embd = c->m->hp.n_embd;
    const bool *want_lg = out->logits ? out->want_logits : NULL;
    const bool *want_hid = out->hidden ? out->want_hidden : NULL;
    float *lg = out->logits, *hid = out->hidden;
    for (int t0 = 0; t0 < n_tokens; t0 += c->n_batch) {
        int n = n_tokens - t0 < c->n_batch ? n_tokens - t0 : c->n_batch, n_out = 0, n_hid = 0;
        for (int t = 0; t < n; t++) {
            c->bpos[t] = pos[t0 + t];
            c->bkv[t] = c->kvs[seq[t0 + t]];
            if (want_lg && want_lg[t0 + t])
                c->out_rows[n_out++] = t;
            if (want_hid && want_hid[t0 + t])
                c->hid_rows[n_hid++] = t;
        }
        forward_batch(c, tokens + t0, n, lg, n_out, hid, n_hid);
        if (lg)
            lg += (size_t)n_out * n_vocab;
        if (hid)
            hid += (size_t)n_hid * n_embd;
    }
    seq_batch_ring_advance(c->ring, c->n_seq, seq, pos, n_tokens, c->seq_next);
    for (int s = 0; s < c->n_seq; s++)
        c->kvs[s]->n_used = c->seq_next[s];
    return HEARTH_OK;
}

void forward_seq_clear(struct forward_ctx *c, int seq)
{
    if (seq >= 0 && seq < c->n_seq) {
        c->kvs[seq]->n_used = 0;
        c->ring[seq].lo = 0;
    }
}

bool forward_seq_can_resume(const struct forward_ctx *c, int seq, uint32_t pos)
{
    return seq >= 0 && seq < c->n_seq && pos <= c->kvs[seq]->n_used &&
           kv_ring_can_eval(&c->ring[seq], pos);
}
