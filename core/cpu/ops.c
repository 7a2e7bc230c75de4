/*
 * cpu/ops: scalar element-wise ops, RoPE and attention (see ops.h).
 *
 * Precision choices: RMSNorm sums squares in double (a 5k-wide row of large
 * residuals loses digits in float); RoPE angles are computed in double from
 * the position and the inverse frequency, not by repeated multiplication, so
 * position 30000 is as exact as position 3; softmax subtracts the row max and
 * accumulates its normalizer in double. GELU uses the tanh formula exactly in
 * float (llama.cpp rounds x to f16 and reads a table; the difference is below
 * the 8-bit activation noise of the matmul that follows).
 *
 * These scalar versions are the reference and what the scalar ISA runs. With
 * AVX2+FMA (cpu_glu_kernels_get, cpu_attn_kernels_get) the GLUs and the
 * softmax's e^x use cpu_vexp_avx2 (vexp-avx2.h, <= 2 ulp, 1.003 measured over
 * the float range): SiLU and tanh-GELU both as x / (1 + e^−z) (GELU's
 * 1 + tanh y = 2 / (1 + e^−2y) has no cancellation for negative y, where the
 * scalar tanhf form loses digits), within a few ulps of the double formula
 * plus |z|·2^−24-sized terms from rounding z (tests/test-vexp.c); the softmax
 * normalizer is still a double sum, in 8 lanes.
 */
#include "cpu/ops.h"

#include <math.h>

#include "f16.h"

void cpu_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps)
{
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++)
        ss += (double)x[i] * (double)x[i];
    float r = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    if (w) {
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] * r * w[i];
    } else {
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] * r;
    }
}

void cpu_rope_table(float *cs, int n_rot, int64_t pos, float base, float freq_scale,
                    const float *divs)
{
    for (int k = 0; k < n_rot / 2; k++) {
        double inv = pow((double)base, -2.0 * k / (double)n_rot) * (double)freq_scale;
        if (divs)
            inv /= (double)divs[k];
        double th = (double)pos * inv;
        cs[2 * k] = (float)cos(th);
        cs[2 * k + 1] = (float)sin(th);
    }
}

void cpu_rope(float *x, int n_heads, int head_dim, int n_rot, const float *cs,
              enum model_rope_mode mode)
{
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * (size_t)head_dim;
        for (int k = 0; k < half; k++) {
            int i = mode == MODEL_ROPE_NEOX ? k : 2 * k;
            int j = mode == MODEL_ROPE_NEOX ? k + half : 2 * k + 1;
            float c = cs[2 * k], s = cs[2 * k + 1];
            float a = v[i], b = v[j];
            v[i] = a * c - b * s;
            v[j] = a * s + b * c;
        }
    }
}

void cpu_swiglu(float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float x = g[i];
        g[i] = x / (1.0f + expf(-x)) * u[i];
    }
}

void cpu_geglu(float *g, const float *u, int64_t n)
{
    const float c = 0.7978845608028654f; /* sqrt(2/pi) */
    for (int64_t i = 0; i < n; i++) {
        float x = g[i];
        g[i] = 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x))) * u[i];
    }
}

void cpu_glu_kernels_get(enum cpu_isa isa, struct cpu_glu_kernels *out)
{
    if (isa >= CPU_ISA_AVX2 && cpu_isa_supported(CPU_ISA_AVX2)) {
        out->silu = cpu_swiglu_avx2;
        out->gelu_tanh = cpu_geglu_avx2;
    } else {
        out->silu = cpu_swiglu;
        out->gelu_tanh = cpu_geglu;
    }
}

void cpu_add(float *x, const float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] += y[i];
}

float cpu_dot_f16_scalar(const float *q, const uint16_t *k, int64_t n)
{
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += q[i] * f16_to_f32(k[i]);
    return s;
}

void cpu_axpy_f16_scalar(float *y, float a, const uint16_t *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * f16_to_f32(v[i]);
}

double cpu_exp_sum_scalar(float *s, int64_t n, float mx)
{
    double sum = 0.0;
    for (int64_t j = 0; j < n; j++) {
        float e = expf(s[j] - mx);
        s[j] = e;
        sum += (double)e;
    }
    return sum;
}

void cpu_attn_kernels_get(enum cpu_isa isa, struct cpu_attn_kernels *out)
{
    const struct cpu_caps *caps = cpu_caps_get();
    if (isa >= CPU_ISA_AVX2 && caps->avx2 && caps->fma && caps->f16c) {
        out->dot_f16 = cpu_dot_f16_avx2;
        out->axpy_f16 = cpu_axpy_f16_avx2;
        out->heads = cpu_attn_heads_avx2;
        out->exp_sum = cpu_exp_sum_avx2;
    } else {
        out->dot_f16 = cpu_dot_f16_scalar;
        out->axpy_f16 = cpu_axpy_f16_scalar;
        out->heads = cpu_attn_heads_ref;
        out->exp_sum = cpu_exp_sum_scalar;
    }
}

void cpu_attn_head(const struct cpu_attn_kernels *ak, float *out, const float *q,
                   const uint16_t *k0, const uint16_t *v0, size_t kv_stride, int64_t lo,
                   int64_t hi, int hd, float scale, float *scores)
{
    int64_t n = hi - lo + 1;
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
        float s = ak->dot_f16(q, k0 + (size_t)j * kv_stride, hd) * scale;
        scores[j] = s;
        mx = s > mx ? s : mx;
    }
    double sum = (ak->exp_sum ? ak->exp_sum : cpu_exp_sum_scalar)(scores, n, mx);
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < hd; i++)
        out[i] = 0.0f;
    for (int64_t j = 0; j < n; j++)
        ak->axpy_f16(out, scores[j] * inv, v0 + (size_t)j * kv_stride, hd);
}

void cpu_attn_heads_ref(const struct cpu_attn_kernels *ak, float *out, const float *q, int n_q,
                        const uint16_t *k0, const uint16_t *v0, size_t kv_stride, int64_t n,
                        int hd, float scale, float *scores)
{
    for (int r = 0; r < n_q; r++)
        cpu_attn_head(ak, out + (size_t)r * (size_t)hd, q + (size_t)r * (size_t)hd, k0, v0,
                      kv_stride, 0, n - 1, hd, scale, scores);
}

void cpu_attn_heads(const struct cpu_attn_kernels *ak, float *out, const float *q, int n_q,
                    const uint16_t *k0, const uint16_t *v0, size_t kv_stride, int64_t n, int hd,
                    float scale, float *scores)
{
    (ak->heads ? ak->heads : cpu_attn_heads_ref)(ak, out, q, n_q, k0, v0, kv_stride, n, hd, scale,
                                                 scores);
}

void cpu_attn_split_init(struct cpu_attn_split *s, int n_tok, int n_head, int n_head_kv,
                         int n_threads)
{
    const int n_gqa = n_head / n_head_kv;
    const int64_t nth = n_threads > 0 ? n_threads : 1;
    /*
     * The critical path: rounds of items the busiest thread runs, times the
     * cost of an item of qb heads. The AVX2 kernel is bound by converting K/V
     * rows, which a group shares: bench-attn measures a group of 3 heads
     * (head_dim 64) or 4 (256) at 1.8x to 1.9x the time of one, so an item
     * costs about (2 + qb) / 3 of a single head's pass. Ties go to the larger
     * group.
     */
    int best = 1;
    int64_t best_cost = INT64_MAX;
    for (int qb = n_gqa; qb >= 1; qb--) {
        if (n_gqa % qb)
            continue;
        int64_t items = (int64_t)n_tok * (n_head / qb);
        int64_t cost = (items + nth - 1) / nth * (2 + qb);
        if (cost < best_cost)
            best = qb, best_cost = cost;
    }
    s->n_gqa = n_gqa;
    s->qb = best;
    s->per_tok = n_head / best;
}
