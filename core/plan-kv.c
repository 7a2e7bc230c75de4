/*
 * plan-kv: the sizes the planner reserves besides weights: KV cache per layer,
 * compute scratch per device, and the GPU reserve.
 *
 * These formulas are the allocation, not an estimate of it: the loader calls
 * the same functions (through the plan) to size its buffers. KV: K and V each
 * n_ctx * n_parallel rows of n_head_kv head vectors in the K or V kvq type
 * (kv-quant.h: f16 by default, q8_0/q4_0 blocks, rot4/rot3 codes), each
 * rounded to PLAN_ALIGN.
 * Sliding-window layers keep full rows, as core/kv-cache.c does today.
 *
 * Scratch holds one micro-batch of activations (residual, norm, attention in
 * and out, q/k/v, gate/up/product), attention scores for tiles of 1024 keys
 * (the GPU kernels tile attention, so scores never span the whole context),
 * and, on the device computing the LM head, the logits of a whole batch
 * (perplexity needs every row). The GPU reserve (256 MiB + 1% of the budget)
 * covers the driver's context and allocator fragmentation; it is a margin
 * chosen from experience with CUDA contexts, documented in docs/planner.md.
 */
#include "kv-quant.h"
#include "plan.h"

#define PLAN_SCORE_TILE 1024u
#define PLAN_RESERVE_FIXED (256ull << 20)

static uint64_t align_up(uint64_t x)
{
    return (x + PLAN_ALIGN - 1) / PLAN_ALIGN * PLAN_ALIGN;
}

/* Bytes of one cached row (one position) of n_head head vectors of width hd. */
static uint64_t kv_row_bytes(int type, uint32_t n_head, uint32_t hd)
{
    if (type == KVQ_F16)
        return 2ull * n_head * hd; /* f16 takes any head width */
    return (uint64_t)n_head * kvq_head_bytes((enum kvq_type)type, (int)hd);
}

uint64_t plan_kv_layer_bytes(const struct arch_info *a, const struct plan_opts *o)
{
    uint64_t rows = (uint64_t)o->n_ctx * (o->n_parallel ? o->n_parallel : 1);
    return align_up(kv_row_bytes(o->kv_type_k, a->n_head_kv, a->head_dim_k) * rows) +
           align_up(kv_row_bytes(o->kv_type_v, a->n_head_kv, a->head_dim_v) * rows);
}

uint64_t plan__scratch_bytes(const struct arch_info *a, const struct plan_opts *o,
                             bool with_logits)
{
    uint64_t nb = o->n_batch;
    uint64_t q_dim = (uint64_t)a->n_head * a->head_dim_k;
    uint64_t kv_dim = (uint64_t)a->n_head_kv * (a->head_dim_k + a->head_dim_v);
    uint64_t act = nb * 4 * (3ull * a->n_embd + q_dim + kv_dim + 3ull * a->n_ff);
    uint64_t keys = o->n_ctx < PLAN_SCORE_TILE ? o->n_ctx : PLAN_SCORE_TILE;
    uint64_t scores = (uint64_t)a->n_head * nb * keys * 4;
    uint64_t logits = with_logits ? nb * (uint64_t)a->n_vocab * 4 : 0;
    return align_up(act) + align_up(scores) + align_up(logits);
}

uint64_t plan__reserve_bytes(const struct plan_device *dev)
{
    if (dev->kind == PLAN_DEV_CPU)
        return 0;
    return align_up(PLAN_RESERVE_FIXED + dev->budget_bytes / 100);
}
