/*
 * cpu/ops: the CPU building blocks of the forward pass, each on plain float
 * rows (F16 for the KV cache): RMSNorm, RoPE, attention over the KV cache,
 * SwiGLU / GeGLU, residual add, and the quantized matmul (matmul.c).
 *
 * Everything here is a pure function of its inputs (no hidden state, no
 * allocation), so the same op gives the same bits whatever thread runs it and
 * however a batch is split: batched prefill equals token-by-token decode.
 * The F16 dot/axpy of attention and its softmax's e^x have an AVX2+F16C
 * version (ops-avx2.c) picked once per context through struct
 * cpu_attn_kernels, the GLUs one through struct cpu_glu_kernels (their
 * precision: ops.c's header), and so has the grouped
 * attention of the query heads sharing a KV head (attn-f16-avx2.c), which
 * gives the same bits as one cpu_attn_head per head.
 */
#ifndef HEARTH_CPU_OPS_H
#define HEARTH_CPU_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu/dot.h"
#include "hearth.h"
#include "model.h"
#include "threadpool.h"

/* y[n] = x[n] / sqrt(mean(x²) + eps) ⊙ w[n] (w NULL: no gain). y may alias x. */
void cpu_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);

/*
 * cos/sin table of one position: cs[2k] = cos θ_k, cs[2k+1] = sin θ_k for
 * k < n_rot/2, θ_k = pos · freq_scale · base^(−2k/n_rot) / divs[k] (divs NULL:
 * 1), computed in double.
 */
void cpu_rope_table(float *cs, int n_rot, int64_t pos, float base, float freq_scale,
                    const float *divs);
/*
 * Rotates n_heads heads of head_dim floats stored back to back in x: the first
 * n_rot dims of each head, pairs chosen by mode (facts sheet §4.4).
 */
void cpu_rope(float *x, int n_heads, int head_dim, int n_rot, const float *cs,
              enum model_rope_mode mode);

/* g[i] = silu(g[i]) · u[i] */
void cpu_swiglu(float *g, const float *u, int64_t n);
/* g[i] = gelu_tanh(g[i]) · u[i]; gelu_tanh(x) = x/2 (1 + tanh(√(2/π)(x + 0.044715 x³))) */
void cpu_geglu(float *g, const float *u, int64_t n);

/*
 * The GLU activations the ISA runs, picked once per context like the
 * attention kernels: the scalar ones above are the reference (and what the
 * scalar ISA runs); the AVX2 ones (ops-avx2.c) compute x / (1 + e^−z) with
 * cpu_vexp_avx2 and agree with them to a few float ulps (tests/test-vexp.c).
 * Either gives an element the same bits wherever it sits in the row.
 */
typedef void (*cpu_glu_fn)(float *g, const float *u, int64_t n);
struct cpu_glu_kernels {
    cpu_glu_fn silu;      /* cpu_swiglu's contract */
    cpu_glu_fn gelu_tanh; /* cpu_geglu's contract */
};
void cpu_glu_kernels_get(enum cpu_isa isa, struct cpu_glu_kernels *out);
/* AVX2 versions, ops-avx2.c; only call when the CPU has AVX2 and FMA. */
void cpu_swiglu_avx2(float *g, const float *u, int64_t n);
void cpu_geglu_avx2(float *g, const float *u, int64_t n);
/* y[i] = e^x[i] by cpu_vexp_avx2 (vexp-avx2.h); y may alias x. AVX2 and FMA only. */
void cpu_exp_avx2(float *y, const float *x, int64_t n);
/* x[i] += y[i] */
void cpu_add(float *x, const float *y, int64_t n);

/* F16 helpers of attention: dot of float q[n] with half k[n]; y[n] += a · half v[n]. */
typedef float (*cpu_dot_f16_fn)(const float *q, const uint16_t *k, int64_t n);
typedef void (*cpu_axpy_f16_fn)(float *y, float a, const uint16_t *v, int64_t n);
struct cpu_attn_kernels;
/* cpu_attn_heads's signature (below). */
typedef void (*cpu_attn_heads_fn)(const struct cpu_attn_kernels *ak, float *out, const float *q,
                                  int n_q, const uint16_t *k0, const uint16_t *v0,
                                  size_t kv_stride, int64_t n, int hd, float scale,
                                  float *scores);

/* Softmax numerator: s[j] = e^(s[j] − mx) for j < n; returns Σ_j s[j] accumulated in double. */
typedef double (*cpu_exp_sum_fn)(float *s, int64_t n, float mx);

struct cpu_attn_kernels {
    cpu_dot_f16_fn dot_f16;
    cpu_axpy_f16_fn axpy_f16;
    cpu_attn_heads_fn heads; /* NULL: cpu_attn_heads_ref */
    cpu_exp_sum_fn exp_sum;  /* NULL: cpu_exp_sum_scalar */
};

/* The fastest F16 helpers the ISA runs (AVX2 needs F16C and FMA too). */
void cpu_attn_kernels_get(enum cpu_isa isa, struct cpu_attn_kernels *out);
/* Scalar versions (also the reference of the AVX2 ones). */
float cpu_dot_f16_scalar(const float *q, const uint16_t *k, int64_t n);
void cpu_axpy_f16_scalar(float *y, float a, const uint16_t *v, int64_t n);
/* expf per element, the sum in order */
double cpu_exp_sum_scalar(float *s, int64_t n, float mx);
/* AVX2 versions, ops-avx2.c; only call when the CPU has AVX2, FMA and F16C. */
float cpu_dot_f16_avx2(const float *q, const uint16_t *k, int64_t n);
void cpu_axpy_f16_avx2(float *y, float a, const uint16_t *v, int64_t n);
/* cpu_vexp_avx2 per element; the sum in 8 double lanes, then folded in a fixed order */
double cpu_exp_sum_avx2(float *s, int64_t n, float mx);

/*
 * One query head against positions [lo, hi] of one KV head:
 *   out[hd] = Σ_j softmax_j(scale · q·K_j) V_j
 * q: [hd] floats; k0, v0: row of position lo (head's column offset already
 * applied), rows kv_stride halves apart; scores: scratch of hi − lo + 1 floats.
 */
void cpu_attn_head(const struct cpu_attn_kernels *ak, float *out, const float *q,
                   const uint16_t *k0, const uint16_t *v0, size_t kv_stride, int64_t lo,
                   int64_t hi, int hd, float scale, float *scores);

/*
 * n_q query heads that share one KV head (GQA), against the n positions whose
 * rows start at k0, v0 (kv_stride halves apart):
 *   out[r·hd ..] = Σ_j softmax_j(scale · q_r·K_j) V_j,  q_r = q + r·hd, r < n_q
 * (heads back to back, as in a row of Q). scores: scratch of
 * cpu_attn_scratch(n_q, n) floats (heads are done CPU_ATTN_TILE_HEADS at a time).
 * The same bits as n_q calls of cpu_attn_head with the same ak, which is
 * what cpu_attn_heads_ref does; the AVX2 version shares each K/V row's
 * conversion among the heads and keeps the output in registers.
 */
enum { CPU_ATTN_TILE_HEADS = 4 };
static inline size_t cpu_attn_scratch(int n_q, int64_t n)
{
    return (size_t)(n_q < CPU_ATTN_TILE_HEADS ? n_q : CPU_ATTN_TILE_HEADS) * (size_t)n;
}
void cpu_attn_heads(const struct cpu_attn_kernels *ak, float *out, const float *q, int n_q,
                    const uint16_t *k0, const uint16_t *v0, size_t kv_stride, int64_t n, int hd,
                    float scale, float *scores);
void cpu_attn_heads_ref(const struct cpu_attn_kernels *ak, float *out, const float *q, int n_q,
                        const uint16_t *k0, const uint16_t *v0, size_t kv_stride, int64_t n,
                        int hd, float scale, float *scores);
/*
 * The work items of a batch's F16 attention: qb query heads of one token that
 * share a KV head. qb divides n_gqa = n_head / n_head_kv: the whole group
 * in a prefill; in a decode step of few KV heads, smaller groups where that
 * shortens the busiest thread's share (cost model in ops.c). Items run
 * token-major:
 * it = (t · n_head_kv + kv head) · (n_gqa / qb) + group.
 */
struct cpu_attn_split {
    int n_gqa, qb, per_tok; /* per_tok = n_head / qb items per token */
};
void cpu_attn_split_init(struct cpu_attn_split *s, int n_tok, int n_head, int n_head_kv,
                         int n_threads);
/* Item it's token t and first query head h (its heads are h .. h + s->qb − 1). */
static inline void cpu_attn_split_item(const struct cpu_attn_split *s, int64_t it, int *t, int *h)
{
    *t = (int)(it / s->per_tok);
    *h = (int)(it % s->per_tok) * s->qb;
}

/* attn-f16-avx2.c; only with the AVX2 ak of cpu_attn_kernels_get. */
void cpu_attn_heads_avx2(const struct cpu_attn_kernels *ak, float *out, const float *q, int n_q,
                         const uint16_t *k0, const uint16_t *v0, size_t kv_stride, int64_t n,
                         int hd, float scale, float *scores);

/* ---- matmul (matmul.c) ---------------------------------------------------- */

/* Bytes of one activation row of K elements in k's activation format. */
size_t cpu_act_row_bytes(const struct cpu_matmul_kernels *k, int64_t K);
/*
 * Quantizes n_tok rows x[n_tok][K] into act (n_tok rows of
 * cpu_act_row_bytes(k, K) bytes). For F32 activations it copies.
 */
void cpu_act_quantize(struct threadpool *tp, const struct cpu_matmul_kernels *k, const float *x,
                      int64_t K, int n_tok, void *act);
/*
 * y[t][r] = W row r · act row t for t < n_tok, r < W->n_out; y rows are y_stride
 * floats apart. act as produced by cpu_act_quantize for W->n_in. Output rows
 * are split across threads; within a thread a tile of weight rows is dotted
 * with every token before moving on, so W is read from memory once per call.
 */
void cpu_matmul_act(struct threadpool *tp, const struct cpu_matmul_kernels *k,
                    const struct model_weight *w, const void *act, int n_tok, float *y,
                    int64_t y_stride);
/*
 * n_w (<= 3) products sharing one quantized input (every k[i] has the same
 * activation format and every w[i] the same n_in) as one parallel job:
 * y[i][t][r] = w[i] row r · act row t.
 */
void cpu_matmul_act_multi(struct threadpool *tp, int n_w, const struct cpu_matmul_kernels *const *k,
                          const struct model_weight *const *w, const void *act, int n_tok,
                          float *const *y, const int64_t *y_stride);
/* cpu_act_quantize + cpu_matmul_act, with act_buf as the quantized scratch. */
void cpu_matmul(struct threadpool *tp, const struct cpu_matmul_kernels *k,
                const struct model_weight *w, const float *x, int n_tok, float *y,
                int64_t y_stride, void *act_buf);

#endif
