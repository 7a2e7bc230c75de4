/*
 * attn-kvq: CPU attention of one query head over a KV range stored in the
 * compressed head-vector formats of kv-quant.h (K and V types independent).
 *
 * Scores are computed on the encoded keys directly: for a rotated K the query
 * is rotated once (q.k = (Rq).(Rk)) and each key costs one codebook lookup and
 * one multiply-add per coordinate; for q8_0/q4_0 the block scale multiplies a
 * per-block integer-weighted sum. Values are dequantized inside the
 * accumulation loop; for a rotated V the weighted sum stays in the rotated
 * domain and is rotated back once at the end (R^T is linear), so the inverse
 * transform costs O(d log d) per output instead of per position.
 */
#ifndef HEARTH_ATTN_KVQ_H
#define HEARTH_ATTN_KVQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"
#include "kv-quant.h"

/* Floats of scratch cpu_attn_kvq_head needs for n positions of head_dim hd: n + 2 hd. */
size_t cpu_attn_kvq_scratch_floats(int64_t n, int hd);

/*
 * out[hd] = Σ_j softmax_j(scale · q·K_j) V_j over j < n.
 * q: [hd] floats (unrotated). k0, v0: the encoded head vector of the first
 * position (the head's byte offset within the row already applied); position
 * j's is k_stride / v_stride bytes further per step (a cache row holds
 * n_head_kv vectors, so stride = n_head_kv · kvq_head_bytes). rot: the layer's
 * rotation when kt or vt is rotated (rot->d == hd), else may be NULL.
 * scratch: cpu_attn_kvq_scratch_floats(n, hd) floats. n >= 1; the caller has
 * checked kvq_check for both types (no status: this is the decode hot loop).
 */
void cpu_attn_kvq_head(enum kvq_type kt, enum kvq_type vt, const struct kvq_rot *rot, float *out,
                       const float *q, const uint8_t *k0, size_t k_stride, const uint8_t *v0,
                       size_t v_stride, int64_t n, int hd, float scale, float *scratch);

/* ---- one layer's attention for a batch of tokens ------------------------------
 *
 * The cost of attention over an encoded cache is in turning codes into
 * floats, so the batched kernel decodes each needed row of each KV head once
 * into an f32 tile and reuses it for the G = n_head / n_head_kv query heads of
 * every token of the batch that reads that cache (a decode step of one token
 * still shares it across G heads). Positions are processed in chunks of
 * CPU_KVQ_CHUNK at absolute boundaries (chunk c = positions [c·C, (c+1)·C)):
 * one parallel item is (cache, KV head, chunk); within a chunk a token's
 * scores, max, exp-sum and weighted V sum are computed in position order, and
 * the chunks' partial results are merged in chunk order with the usual
 * max-rescaling. Every float operation a token sees depends only on its own
 * range [lo, p] and the cache contents, never on the other tokens of the
 * batch, the thread count or the wave split: batched prefill and one-token
 * decode give the same bits (tests/test-kv-cache.c). Rotated K: the queries
 * are rotated once (q·k = Rq·Rk) and K tiles stay in the rotated domain;
 * rotated V: the merged sum is rotated back once per output.
 * Rejected: the per-query kernel above for every (token, head) (decodes each
 * row n_tok·G times: ~175 ns per position at d = 128); one tile of the whole
 * range (memory grows with n_ctx).
 */

/* Positions per chunk (a multiple of 8). */
#define CPU_KVQ_CHUNK 256

/* The tokens of a batch that read one cache (one sequence). */
struct cpu_kvq_seq {
    const uint8_t *k; /* the layer's K rows from position 0: [n_ctx][k_row] bytes */
    const uint8_t *v; /* the layer's V rows: [n_ctx][v_row] bytes */
    const int32_t *tok; /* [n] batch rows of these tokens (any order) */
    int n;
    /*
     * [n_head_kv·hd] floats or NULL: when set, the key of position 0 (KV head
     * h at h·hd, unrotated) used instead of decoding K row 0 (kv-cache.h k_aux)
     */
    const float *k_sink;
};

/*
 * The exact rows of one group (cpu_kvq_layer.exact_window W > 0): kx, vx are
 * [nx][n_head_kv·hd] floats, the exact K and V rows of positions [x0, x0 +
 * nx) in the kernel's domain (rotated per KV head for a rotated type; K row
 * 0, when in range, should be the sink). Token t reads position j from them
 * iff j > pos[t] - W and x0 <= j < x0 + nx, else the decoded row. Kept out
 * of struct cpu_kvq_seq so that its positional initializers stay complete.
 */
struct cpu_kvq_exact {
    const float *kx, *vx;
    int64_t x0, nx;
};

/* One layer's attention call: what cpu_kvq_attn_run reads. */
struct cpu_kvq_layer {
    enum kvq_type kt, vt;
    const struct kvq_rot *rot; /* the layer's rotation when kt or vt is rotated, else NULL */
    int n_head, n_head_kv, hd;
    size_t k_row, v_row;       /* bytes per cache row: n_head_kv encoded head vectors */
    float scale;               /* multiplies q·k */
    uint32_t window;           /* 0: full causal; else positions [p - window + 1, p] */
    uint32_t exact_window;     /* W: positions (p - W, p] from exact[s]; 0: none */
    const struct cpu_kvq_exact *exact; /* [n_seq] when exact_window > 0, else unused */
    const int32_t *pos;        /* [n_tok] position of each batch row */
    const float *q;            /* [n_tok][q_stride] floats, head h at h·hd, unrotated */
    int64_t q_stride;
    float *out;                /* [n_tok][out_stride] floats, head h at h·hd */
    int64_t out_stride;
    const struct cpu_kvq_seq *seq; /* [n_seq] disjoint groups covering the batch rows used */
    int n_seq;
};

struct cpu_kvq_attn; /* kernels of one ISA and the scratch of one thread pool */
struct threadpool;

/*
 * Workspace for a pool of n_threads (>= 1) and head dims up to
 * KVQ_MAX_HEAD_DIM, with the fastest kernels isa allows (an enum cpu_isa,
 * cpu/dot.h; AVX2 needs FMA and F16C too). HEARTH_ERR_NO_MEMORY.
 */
hearth_status cpu_kvq_attn_create(int isa, int n_threads, struct cpu_kvq_attn **out);
void cpu_kvq_attn_destroy(struct cpu_kvq_attn *a);
/* Grows the scratch for batches of up to n_tok tokens of n_head heads of hd (no-op if fits). */
hearth_status cpu_kvq_attn_reserve(struct cpu_kvq_attn *a, int n_tok, int n_head, int hd);
/*
 * out[t][h] = Σ_j softmax_j(scale · q[t][h]·K_j) V_j over j in [lo_t, pos[t]] of
 * KV head h / G of the cache of t's group; K_j, V_j as kvq_decode gives them.
 * The caller reserved for n_tok >= every batch row used, n_head, hd, and has
 * checked kvq_check for both types; tp has the n_threads given at creation.
 */
void cpu_kvq_attn_run(struct cpu_kvq_attn *a, struct threadpool *tp, const struct cpu_kvq_layer *L);

/*
 * Encodes the new K/V rows of a batch, spread over tp: for t < n_tok, the
 * n_head_kv head vectors of k[t] (k: [n_tok][kv_stride] floats) into
 * k_dst[t] (k_row bytes, kvq_encode(kt)), likewise v into v_dst[t].
 */
void cpu_kvq_encode_rows(struct threadpool *tp, enum kvq_type kt, enum kvq_type vt,
                         const struct kvq_rot *rot, int n_tok, int n_head_kv, int hd,
                         const float *k, const float *v, int64_t kv_stride,
                         uint8_t *const *k_dst, uint8_t *const *v_dst);

/* ---- key mean subtraction and the sink key -------------------------------------
 *
 * Attention is invariant to subtracting one vector mu from every key of a
 * cache (per layer and KV head): q·(k_j - mu) = q·k_j - q·mu and the softmax
 * over j cancels the constant. Keys of real models share a large common
 * component (the same few channels carry much of every key's norm; RoPE
 * hardly turns the low-frequency pairs they sit in): on SmolLM2 the mean
 * holds ~50% of the key energy, so storing k - mu halves the norm the 4- and
 * 3-bit codes must cover. mu must be the same for every position of the
 * cache, so the batch that writes position 0 fixes it: the mean of the keys
 * of positions [CPU_KVQ_MEAN_SKIP, min(m, CPU_KVQ_MEAN_N)) of its m tokens of
 * that cache (zero when m <= CPU_KVQ_MEAN_SKIP), kept until position 0 is
 * written again. Position 0 is left out of the mean (and kept exactly, next)
 * because it is the attention sink, whose key is unlike all others.
 * Prefill and decode agree bit for bit when the first batch has at least
 * CPU_KVQ_MEAN_N tokens (or the same count either way).
 *
 * The sink: most queries put much of their weight on position 0, so its key
 * error costs more than any other's; the same batch keeps k_0 - mu exactly
 * (kv-cache.h k_aux row 1) and attention uses it for position 0 (struct
 * cpu_kvq_seq k_sink). The cache row of position 0 is encoded as usual.
 */

/* Positions the key mean averages over: [CPU_KVQ_MEAN_SKIP, CPU_KVQ_MEAN_N) (0 switches it off). */
#define CPU_KVQ_MEAN_SKIP 1
#ifndef CPU_KVQ_MEAN_N
#define CPU_KVQ_MEAN_N 64
#endif

/*
 * The key mean step of one cache's new rows, before they are encoded:
 * k + rows[i]·stride is the key row ([kv_dim] floats, KV head h at h·hd) of
 * the i-th new position of the cache, i < n, in position order. When first
 * (rows[0] is position 0), mu[kv_dim] is set first to the mean of the rows
 * i in [CPU_KVQ_MEAN_SKIP, min(n, CPU_KVQ_MEAN_N)), summed in double in
 * position order (all zero when that range is empty); then mu is subtracted
 * from every row, and when first and sink is not NULL, sink[kv_dim] becomes
 * the centred row of position 0. mu, sink: the cache's k_aux rows of this
 * layer (kv-cache.h).
 */
void cpu_kvq_key_center(float *k, int64_t stride, const int32_t *rows, int n, bool first,
                        int kv_dim, float *mu, float *sink);

/* ---- the exact window's staging (kv-window.c) ----------------------------------
 *
 * What forward.c and the backend's ATTENTION (backend.h step 5) both run
 * before cpu_kvq_attn_run, so the two paths give the same bits: per group,
 * the exact rows a token may read are staged as floats, then the batch's
 * rows enter the ring.
 */

/* One layer's ring of one sequence (kv-cache.h xk/xv/xpos; backend.h k_ring/v_ring/ring_pos). */
struct cpu_kvq_ring {
    uint16_t *k, *v;           /* [w] slots of halves, slot i at i·k_stride / i·v_stride */
    size_t k_stride, v_stride; /* halves per slot, >= n_head_kv·hd */
    int32_t *pos;              /* [w] the position slot i holds (p % w == i), -1: none */
    uint32_t w;                /* W >= 1 */
    /*
     * Positions staged back from the first token, itself included: 0 means
     * w. A sliding-window layer passes its attention window: its ring's
     * slack holds rows for rewinds, which no token attends to.
     */
    uint32_t span;
};

/* Rows of kx (and of vx) cpu_kvq_exact_stage fills at most for n batch rows: W - 1 + n. */
size_t cpu_kvq_exact_rows(uint32_t w, int n);

/*
 * Stages the exact rows of group sq (its n tokens at consecutive positions
 * [first, first + n), k/v rows k + tok[i]·kv_stride, already centred for a
 * compressed K) for positions [x0, first + n), x0 = max(0, first - W + 1):
 * those before first from the ring slot when its tag matches, else decoded
 * from the cache rows sq->k / sq->v (k_row / v_row bytes each) into the
 * attention's domain; the batch's own rows through the f16 rounding of the
 * ring, in the domain (R·x per KV head for a rotated type). K row 0, when
 * staged and sq->k_sink is set, is the sink (rotated for a rotated K). Then
 * the batch's rows are in the ring: slot p % W = the f16 row, tag p, in
 * position order (so it ends with the last min(W, n)). kx, vx:
 * [cpu_kvq_exact_rows(W, n)][n_head_kv·hd] floats; *ex describes them.
 */
void cpu_kvq_exact_stage(enum kvq_type kt, enum kvq_type vt, const struct kvq_rot *rot,
                         int n_head_kv, int hd, size_t k_row, size_t v_row,
                         const struct cpu_kvq_seq *sq, int64_t first, const float *k,
                         const float *v, int64_t kv_stride, const struct cpu_kvq_ring *ring,
                         float *kx, float *vx, struct cpu_kvq_exact *ex);

/* ---- internal: the AVX2 kernels (attn-kvq-avx2.c; AVX2, FMA and F16C only) ---- */

/*
 * dst[n][hd] = rows src + r·stride (r < n) decoded: kvq_decode for f16, q8_0
 * and q4_0, kvq_decode_rotated for rot4/rot3, bit for bit.
 */
void cpu_kvq__decode_rows_avx2(enum kvq_type t, const struct kvq_rot *rot, int hd,
                               const uint8_t *src, size_t stride, int n, float *dst);
/* dst[i] = the half src[i] as a float, i < n (exact, the same bits as f16_to_f32). */
void cpu_kvq__f16_to_f32_avx2(const uint16_t *src, size_t n, float *dst);
/* Σ a[i] b[i], i < n. */
float cpu_kvq__dot_avx2(const float *a, const float *b, int n);
/* y[i] += s · x[i], i < n. */
void cpu_kvq__axpy_avx2(float *y, float s, const float *x, int n);

/*
 * The query heads of one KV head at once (attn-kvq-group-avx2.c), with the
 * bits of the per-row kernels above; hd % 8 == 0, n >= 1.
 * sc[r·ld + j] = cpu_kvq__dot_avx2(q + r·hd, rows[j], hd) · scale, r < nq, j < n.
 */
void cpu_kvq__group_dots_avx2(const float *q, int nq, int hd, const float *const *rows, int n,
                              float scale, float *sc, int ld);
/*
 * acc + r·ld = 0, then cpu_kvq__axpy_avx2(acc + r·ld, w[r·wld + j], rows[j], hd)
 * for j = 0 .. n - 1, for each r < nq.
 */
void cpu_kvq__group_axpys_avx2(float *acc, size_t ld, int nq, int hd, const float *const *rows,
                               int n, const float *w, int wld);
/*
 * Test hook: makes a (AVX2) run every query head on its own with the per-row
 * kernels, the path the grouped kernels must match bit for bit.
 */
void cpu_kvq__attn_per_head(struct cpu_kvq_attn *a);

#endif
