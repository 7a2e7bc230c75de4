/*
 * plan-kv: the sizes the planner reserves besides weights: KV cache per layer,
 * compute scratch per device, and the GPU reserve.
 *
 * These formulas are the allocation, not an estimate of it: the loader calls
 * the same functions (through the plan) to size its buffers. KV: K and V each
 * n_ctx * n_parallel rows of n_head_kv head vectors in the K or V kvq type
 * (kv-quant.h: f16 by default, q8_0/q4_0 blocks, rot4/rot3 codes), each
 * rounded to PLAN_ALIGN.
 * Sliding-window layers of an f16 cache keep only a ring of their window
 * and a slack where that is shorter than the context; with an exact window
 * their ring covers their whole attention window and the slack
 * (plan_kv_layer_window), and they keep no encoded rows at all
 * (plan_kv_layer_codes): every row they read is in the ring. swa_full
 * gives them their rows back (codes, or f16 rows with no ring).
 *
 * Scratch is the scheduler's packed activation buffer: one micro-batch of
 * activations (residual, norm, attention in and out, q/k/v, gate/up), the
 * token ids on the device running the embedding and, on the device computing
 * the LM head, n_logits rows of logits (one per sequence unless asked: a
 * batch wanting more gets them in rounds, so a whole batch's 512 x 262144
 * floats of Gemma 3 logits need not take 512 MiB of VRAM).
 * Staging is the host-visible buffer of boundary moves (one batch of x, or x
 * and the GLU output on a device running a down projection whose gate/up ran
 * elsewhere) plus, on a device that uploads weights, the two upload halves.
 * The GPU reserve (256 MiB + 1% of the budget, plus attention score tiles of
 * 1024 keys that GPU kernels keep for themselves) covers the driver's
 * context, backend working memory and allocator fragmentation; nothing is
 * allocated from it. The 256 MiB + 1% is a margin chosen from experience with
 * CUDA contexts (docs/planner.md).
 */
#include "kv-quant.h"
#include "plan.h"

#define PLAN_SCORE_TILE 1024u
#define PLAN_RESERVE_FIXED (256ull << 20)

uint64_t plan_kv_row_bytes(int type, uint32_t n_head_kv, uint32_t head_dim)
{
    if (type == KVQ_F16)
        return 2ull * n_head_kv * head_dim; /* f16 takes any head width */
    return (uint64_t)n_head_kv * kvq_head_bytes((enum kvq_type)type, (int)head_dim);
}

uint64_t plan_kv_buffer_bytes(uint64_t row, uint64_t rows)
{
    return plan_align_up(row * rows);
}

uint64_t plan_kv_aux_bytes(int k_type, uint32_t n_head_kv, uint32_t head_dim)
{
    if (k_type == KVQ_F16)
        return 0;
    return plan_align_up(2ull * n_head_kv * head_dim * sizeof(float));
}

/* Layer il's KV buffers (core/scheduler.c allocates each on its own): K, V, aux, rings. */
static void kv_layer_parts(const struct arch_info *a, const struct plan_opts *o, uint32_t il,
                           uint64_t b[4])
{
    const uint32_t swa = arch_layer_swa(a, il) ? a->sliding_window : 0;
    uint64_t n_seq = o->n_parallel ? o->n_parallel : 1;
    /* a ring-only layer keeps no encoded rows: its ring is all it reads */
    uint64_t rows = plan_kv_layer_codes(o, swa) ? (uint64_t)o->n_ctx * n_seq : 0;
    b[0] = plan_kv_buffer_bytes(plan_kv_row_bytes(o->kv_type_k, a->n_head_kv, a->head_dim_k),
                                rows);
    b[1] = plan_kv_buffer_bytes(plan_kv_row_bytes(o->kv_type_v, a->n_head_kv, a->head_dim_v),
                                rows);
    b[2] = n_seq * plan_kv_aux_bytes(o->kv_type_k, a->n_head_kv, a->head_dim_k);
    b[3] = n_seq * plan_kv_window_bytes(o, swa, a->n_head_kv, a->head_dim_k, a->head_dim_v);
}

uint64_t plan_kv_layer_bytes(const struct arch_info *a, const struct plan_opts *o, uint32_t il)
{
    uint64_t b[4];
    kv_layer_parts(a, o, il, b);
    return b[0] + b[1] + b[2] + b[3];
}

uint64_t plan_kv_layer_largest(const struct arch_info *a, const struct plan_opts *o, uint32_t il)
{
    uint64_t b[4], m = 0;
    kv_layer_parts(a, o, il, b);
    for (int i = 0; i < 4; i++)
        m = b[i] > m ? b[i] : m;
    return m;
}

uint32_t plan_kv_layer_window(const struct plan_opts *o, uint32_t swa)
{
    const bool f16 = o->kv_type_k == KVQ_F16 && o->kv_type_v == KVQ_F16;
    if (swa > 0 && f16 && !o->swa_full) {
        /* the ring replaces the f16 rows only where it is shorter than the context */
        const uint64_t ring = (uint64_t)swa + PLAN_SWA_SLACK;
        return ring < o->n_ctx ? (uint32_t)ring : 0;
    }
    if (o->kv_window == 0 || f16)
        return 0;
    const uint64_t w = swa > 0 ? (uint64_t)swa + PLAN_SWA_SLACK : o->kv_window;
    return w < o->n_ctx ? (uint32_t)w : o->n_ctx;
}

bool plan_kv_layer_codes(const struct plan_opts *o, uint32_t swa)
{
    return swa == 0 || o->swa_full || plan_kv_layer_window(o, swa) == 0;
}

uint64_t plan_kv_window_bytes(const struct plan_opts *o, uint32_t swa, uint32_t n_head_kv,
                              uint32_t head_dim_k, uint32_t head_dim_v)
{
    const uint64_t w = plan_kv_layer_window(o, swa);
    if (w == 0)
        return 0;
    /* f16 K and V rows of the last w positions, and each slot's position tag */
    return plan_align_up(w * n_head_kv * ((uint64_t)head_dim_k + head_dim_v) * 2 +
                         w * sizeof(int32_t));
}

uint64_t plan_act_bytes(uint64_t n_batch, uint64_t n_embd, uint64_t q_dim, uint64_t kv_dim,
                        uint64_t n_ff, uint64_t n_vocab, bool embd, uint64_t n_logits)
{
    uint64_t floats = n_batch * (3 * n_embd + 2 * q_dim + 2 * kv_dim + 2 * n_ff);
    uint64_t b = plan_align_up(floats * 4 + (embd ? n_batch * 4 : 0));
    return plan_align_up(b + n_logits * n_vocab * 4);
}

uint64_t plan_stage_bytes(uint64_t n_batch, uint64_t n_embd)
{
    return plan_align_up(n_batch * n_embd * 4);
}

uint64_t plan_glu_stage_bytes(uint64_t n_batch, uint64_t n_embd, uint64_t n_ff)
{
    return plan_align_up(n_batch * (n_embd + n_ff) * 4);
}

uint64_t plan_stream_half_bytes(uint64_t largest)
{
    return plan_align_up(largest);
}

/* Rows whose bytes are a whole number of PLAN_ALIGN units: PLAN_ALIGN / gcd(row_bytes, it). */
static uint64_t row_group(uint64_t row_bytes)
{
    uint64_t g = PLAN_ALIGN, r = row_bytes;
    while (r % 2 == 0 && g > 1)
        r /= 2, g /= 2;
    return g;
}

uint64_t plan_head_split_rows(uint64_t row_bytes, uint64_t n_rows, uint64_t cap)
{
    if (row_bytes == 0 || n_rows == 0)
        return 0;
    if (cap == 0 || plan_align_up(row_bytes * n_rows) <= cap)
        return n_rows;
    const uint64_t g = row_group(row_bytes);
    uint64_t rows = cap / row_bytes / g * g;
    return rows < n_rows ? rows : n_rows;
}

uint64_t plan__head_rows(const struct plan_model_tensor *t, uint64_t cap, uint64_t *group_bytes)
{
    const uint64_t row_bytes = t->ne[1] ? t->nbytes / t->ne[1] : 0;
    if (group_bytes)
        *group_bytes = row_bytes * row_group(row_bytes ? row_bytes : 1);
    return plan_head_split_rows(row_bytes, t->ne[1], cap);
}

uint32_t plan_tensor_buffers(const struct plan_model *m, const struct plan *p, size_t i)
{
    const struct plan_model_tensor *t = &m->tensors[i];
    const int d = p->tensors[i].resident;
    if (t->role != PLAN_ROLE_OUTPUT || d == PLAN_HOST)
        return 1;
    uint64_t rows = plan__head_rows(t, p->devs.dev[d].max_buffer_bytes, NULL);
    return rows ? (uint32_t)((t->ne[1] + rows - 1) / rows) : 1;
}

uint64_t plan__scratch_bytes(const struct arch_info *a, const struct plan_opts *o, bool embd,
                             bool with_logits)
{
    return plan_act_bytes(o->n_batch, a->n_embd, (uint64_t)a->n_head * a->head_dim_k,
                          (uint64_t)a->n_head_kv * a->head_dim_k, a->n_ff, a->n_vocab, embd,
                          with_logits ? o->n_logits : 0);
}

/* Attention score tiles the GPU kernels keep for themselves (backend working memory). */
static uint64_t score_bytes(const struct arch_info *a, const struct plan_opts *o)
{
    uint64_t keys = o->n_ctx < PLAN_SCORE_TILE ? o->n_ctx : PLAN_SCORE_TILE;
    return plan_align_up((uint64_t)a->n_head * o->n_batch * keys * 4);
}

uint64_t plan__reserve_bytes(const struct arch_info *a, const struct plan_opts *o,
                             const struct plan_device *dev)
{
    if (dev->kind == PLAN_DEV_CPU)
        return 0;
    return plan_align_up(PLAN_RESERVE_FIXED + dev->budget_bytes / 100) + score_bytes(a, o);
}

uint64_t plan__budget_for_usable(const struct arch_info *a, const struct plan_opts *o,
                                 const struct plan_device *dev, uint64_t usable)
{
    struct plan_device d = *dev;
    d.budget_bytes = usable;
    /* the reserve grows by 1% of the budget: a few steps settle B - reserve(B) <= usable */
    for (int i = 0; i < 8; i++) {
        uint64_t r = plan__reserve_bytes(a, o, &d);
        uint64_t want = usable + r;
        if (want == d.budget_bytes)
            break;
        d.budget_bytes = want;
    }
    for (;;) {
        uint64_t r = plan__reserve_bytes(a, o, &d);
        if (d.budget_bytes <= usable || d.budget_bytes <= r || d.budget_bytes - r <= usable)
            break;
        d.budget_bytes -= PLAN_ALIGN;
    }
    return d.budget_bytes;
}
