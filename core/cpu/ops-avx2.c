/*
 * cpu/ops-avx2: the F16 dot and axpy of attention with F16C conversion and FMA,
 * 8 halves per step, scalar tails; the GLU activations and a row of e^x on
 * cpu_vexp_avx2. Only called after cpu_attn_kernels_get / cpu_glu_kernels_get
 * saw AVX2, FMA and F16C. Loads are unaligned (KV rows are only 2-byte aligned
 * when head_dim is odd multiples of 4, and q comes from arbitrary scratch
 * offsets).
 *
 * The element-wise ops run their last n % 8 elements through the same vector
 * code on a padded copy, so an element's bits do not depend on where it sits
 * in the row: a batch split into rows (backend-cpu.c) equals one call over
 * the batch (forward.c).
 */
#include <immintrin.h>
#include <string.h>

#include "cpu/ops.h"
#include "cpu/vexp-avx2.h"
#include "f16.h"

float cpu_dot_f16_avx2(const float *q, const uint16_t *k, int64_t n)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(k + i)));
        __m256 k1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(k + i + 8)));
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), k0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), k1, acc1);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(k + i)));
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), k0, acc0);
    }
    acc0 = _mm256_add_ps(acc0, acc1);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    float r = _mm_cvtss_f32(s);
    for (; i < n; i++)
        r += q[i] * f16_to_f32(k[i]);
    return r;
}

void cpu_axpy_f16_avx2(float *y, float a, const uint16_t *v, int64_t n)
{
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(v + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, x, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++)
        y[i] += a * f16_to_f32(v[i]);
}

void cpu_exp_avx2(float *y, const float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, cpu_vexp_avx2(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float b[8] = {0};
        memcpy(b, x + i, (size_t)(n - i) * sizeof *b);
        _mm256_storeu_ps(b, cpu_vexp_avx2(_mm256_loadu_ps(b)));
        memcpy(y + i, b, (size_t)(n - i) * sizeof *b);
    }
}

double cpu_exp_sum_avx2(float *s, int64_t n, float mx)
{
    const __m256 m = _mm256_set1_ps(mx);
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = cpu_vexp_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + i), m));
        _mm256_storeu_ps(s + i, e);
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    if (i < n) {
        float b[8] = {0};
        size_t bytes = (size_t)(n - i) * sizeof *b;
        memcpy(b, s + i, bytes);
        _mm256_storeu_ps(b, cpu_vexp_avx2(_mm256_sub_ps(_mm256_loadu_ps(b), m)));
        memcpy(s + i, b, bytes);
        memset(b + (n - i), 0, sizeof b - bytes); /* the padding adds nothing */
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm_loadu_ps(b)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm_loadu_ps(b + 4)));
    }
    __m256d a = _mm256_add_pd(a0, a1);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

/*
 * Both activations are x · σ(z) = x / (1 + e^−z): SiLU with z = x, tanh-GELU
 * with z = 2√(2/π)(x + 0.044715 x³), since (1 + tanh y) / 2 = 1 / (1 + e^−2y).
 * Unlike 1 + tanh y this has no cancellation for negative y, and e^−z = +inf
 * gives x / inf = ±0, the limit, with no overflow to guard.
 */
static inline __m256 silu_avx2(__m256 x)
{
    __m256 e = cpu_vexp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static inline __m256 gelu_tanh_avx2(__m256 x)
{
    /* −z = x (k1 + k3 x²) */
    const __m256 k1 = _mm256_set1_ps((float)(-2.0 * 0.7978845608028654));
    const __m256 k3 = _mm256_set1_ps((float)(-2.0 * 0.7978845608028654 * 0.044715));
    __m256 mz = _mm256_mul_ps(x, _mm256_fmadd_ps(k3, _mm256_mul_ps(x, x), k1));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), cpu_vexp_avx2(mz)));
}

/*
 * g[i] = act(g[i]) · u[i]; always inlined into each caller, so act is a
 * constant there and inlined too.
 */
static inline __attribute__((always_inline)) void glu_row(__m256 (*act)(__m256), float *g,
                                                          const float *u, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(g + i, _mm256_mul_ps(act(_mm256_loadu_ps(g + i)), _mm256_loadu_ps(u + i)));
    if (i < n) {
        float gb[8] = {0}, ub[8] = {0};
        size_t bytes = (size_t)(n - i) * sizeof *gb;
        memcpy(gb, g + i, bytes);
        memcpy(ub, u + i, bytes);
        _mm256_storeu_ps(gb, _mm256_mul_ps(act(_mm256_loadu_ps(gb)), _mm256_loadu_ps(ub)));
        memcpy(g + i, gb, bytes);
    }
}

void cpu_swiglu_avx2(float *g, const float *u, int64_t n)
{
    glu_row(silu_avx2, g, u, n);
}

void cpu_geglu_avx2(float *g, const float *u, int64_t n)
{
    glu_row(gelu_tanh_avx2, g, u, n);
}
