/*
 * cpu/vexp-avx2: e^x of eight floats with AVX2+FMA, for the GLU activations and
 * the softmax of attention. Only *-avx2.c files (built with -mavx2 -mfma)
 * include it, and only run it after the ISA check saw AVX2 and FMA.
 *
 * e^x = 2^n · e^r with n = round(x · log2 e) and r = x − n·ln 2 (ln 2 in two
 * parts, Cephes' C1 + C2: C1 has 9 significant bits, so n·C1 is exact for
 * |n| <= 150 and r carries no cancellation error), |r| <= ln2/2; e^r is
 * Cephes' degree-7 expf polynomial 1 + r + r²·P(r) by FMA Horner. 2^n is
 * applied as two factors 2^(n>>1) · 2^(n − (n>>1)), each a normal float for
 * n in [−150, 128], so results in the subnormal range are rounded once from
 * the polynomial's value and 2^128 overflows to +inf as it should.
 * tests/test-vexp.c sweeps the float range against double exp: at most
 * 2 ulp (1 measured) from e^x, subnormal results included.
 *
 * x is clamped to [−104, 89] first: below, e^x < 2^−150 rounds to +0; above,
 * it overflows to +inf. The clamp keeps a NaN (max/min return their second
 * operand on NaN), and the polynomial of a NaN is NaN whatever 2^n became.
 */
#ifndef HEARTH_CPU_VEXP_AVX2_H
#define HEARTH_CPU_VEXP_AVX2_H

#if !defined(__AVX2__) || !defined(__FMA__)
#error "vexp-avx2.h needs -mavx2 -mfma (include it from *-avx2.c files only)"
#endif

#include <immintrin.h>

static inline __m256 cpu_vexp_avx2(__m256 x)
{
    x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x);
    x = _mm256_min_ps(_mm256_set1_ps(89.0f), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i na = _mm256_srai_epi32(ni, 1), nb = _mm256_sub_epi32(ni, na);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 sa = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(na, bias), 23));
    __m256 sb = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(nb, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, sa), sb);
}

#endif
