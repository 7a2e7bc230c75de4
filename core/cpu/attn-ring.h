/*
 * cpu/attn-ring: attention of an f16 cache's ring-only (sliding-window)
 * layer on the grouped f16 kernel (cpu/ops.h cpu_attn_heads), shared by
 * cpu/forward.c and the CPU backend's ATTENTION so both give the same bits.
 *
 * Such a layer keeps only a ring of its recent positions (kv-cache.h; slot
 * p % w holds position p), whose f16 rows are exactly what a full cache
 * would hold. Per group of a batch (one cache, consecutive positions
 * [first, first + n)) the rows of [max(0, first - span + 1), first + n) are
 * staged as f16, in position order and contiguous: the older ones copied
 * from the ring, then the batch's own rounded to f16 and written into the
 * ring (every old row is read before the first write, the two share slots).
 * Each token then attends to its window, one contiguous span of the staged
 * rows, with cpu_attn_heads: the keys in position order, so the result has
 * the bits of cpu_attn_head over the same positions of a full f16 cache
 * (the swa_full layout and the global layers' path).
 *
 * Why staged and not read in place: the ring's rows for a window may wrap
 * (two spans, and the kernel's softmax is over their union), and a batch
 * longer than the ring's slack overwrites slots its own early tokens still
 * read. The copy is of halves, win - 1 + n rows per group and layer, less
 * than the f32 staging of the compressed path it replaces (kv-window.c).
 */
#ifndef HEARTH_CPU_ATTN_RING_H
#define HEARTH_CPU_ATTN_RING_H

#include <stddef.h>
#include <stdint.h>

#include "cpu/attn-kvq.h"
#include "cpu/ops.h"
#include "threadpool.h"

/* One group's staged rows: position x0 + i at row i, kv_dim halves apart. */
struct cpu_ring_rows {
    const uint16_t *k, *v;
    int64_t x0;
};

/*
 * Stages one group (rows of at most cpu_kvq_exact_rows(ring->w, n) x kv_dim
 * halves in kx, vx) and writes its n new rows into the ring: row tok[i] of
 * k, v (kv_stride floats apart) is position first + i. A slot that holds
 * another position is staged as zeros: the ring keeps every row a window
 * reads (the rewind rule), so that row is older than every window.
 */
void cpu_ring_stage_f16(const struct cpu_kvq_ring *ring, int kv_dim, int64_t first, int n,
                        const int32_t *tok, const float *k, const float *v, int64_t kv_stride,
                        uint16_t *kx, uint16_t *vx, struct cpu_ring_rows *out);

/* One layer's ring attention: what cpu_ring_attn_run reads. */
struct cpu_ring_attn {
    const struct cpu_attn_kernels *ak;
    const struct cpu_ring_rows *rows; /* [n_grp] staged by cpu_ring_stage_f16 */
    const int32_t *grp;               /* [n_tok] each token's group; NULL: all in rows[0] */
    const int32_t *pos;               /* [n_tok] each token's position */
    const float *q;                   /* [n_tok][q_stride] floats, head h at h·hd */
    int64_t q_stride;
    float *out; /* [n_tok][out_stride] floats, head h at h·hd */
    int64_t out_stride;
    int n_head, n_head_kv, hd;
    uint32_t window; /* >= 1: a token attends to its window latest positions */
    float scale;
    float *scores;     /* [n_threads][scores_per] */
    size_t scores_per; /* >= cpu_attn_scratch(n_head / n_head_kv, the longest span read) */
};

/*
 * out = softmax(scale · q·K) V over each token's window, in parallel over
 * (token, group of query heads sharing a KV head) items (cpu_attn_split).
 */
void cpu_ring_attn_run(struct threadpool *tp, const struct cpu_ring_attn *ra, int n_tok);

#endif
