/*
 * tests/avx512-emu/immintrin.h: stands in for the compiler's immintrin.h when
 * test-dot-avx512-emu compiles core/cpu/dot-avx512.c on a CPU without
 * AVX-512. SIMDe (Debian libsimde-dev) implements the intrinsics in portable
 * C under their Intel names; the few that SIMDe 0.7.4 lacks or aliases wrongly
 * are written below from Intel's documented semantics. Nothing here is used
 * by the library itself.
 */
#ifndef HEARTH_TEST_AVX512_EMU_IMMINTRIN_H
#define HEARTH_TEST_AVX512_EMU_IMMINTRIN_H

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>

typedef simde__mmask64 __mmask64;

/* 0.7.4 aliases the two-operand form to the masked one's four operands */
#undef _mm512_madd_epi16
#define _mm512_madd_epi16(a, b) simde_mm512_madd_epi16(a, b)

static inline float emu_cvtsh_ss(unsigned short h)
{
    return simde_mm_cvtss_f32(simde_mm_cvtph_ps(simde_mm_cvtsi32_si128((int)h)));
}
#define _cvtsh_ss(h) emu_cvtsh_ss(h)

/* lane i: (float) a.i32[i], rounded to nearest like vcvtdq2ps */
static inline simde__m512 emu_mm512_cvtepi32_ps(simde__m512i a)
{
    simde__m512i_private a_ = simde__m512i_to_private(a);
    simde__m512_private r_;
    for (int i = 0; i < 16; i++)
        r_.f32[i] = (float)a_.i32[i];
    return simde__m512_from_private(r_);
}
#define _mm512_cvtepi32_ps(a) emu_mm512_cvtepi32_ps(a)

/* lane i: a.i8[i] sign-extended (vpmovsxbd) */
static inline simde__m512i emu_mm512_cvtepi8_epi32(simde__m128i a)
{
    simde__m128i_private a_ = simde__m128i_to_private(a);
    simde__m512i_private r_;
    for (int i = 0; i < 16; i++)
        r_.i32[i] = a_.i8[i];
    return simde__m512i_from_private(r_);
}
#define _mm512_cvtepi8_epi32(a) emu_mm512_cvtepi8_epi32(a)

/*
 * The sum of the 16 lanes. Intel documents it as a sequence, not a tree
 * order, and compilers emit a halving tree (8+8, 4+4, 2+2, 1+1), which is
 * what this does, so the rounding matches what GCC generates natively.
 */
static inline float emu_mm512_reduce_add_ps(simde__m512 a)
{
    simde__m512_private a_ = simde__m512_to_private(a);
    float v[16];
    for (int i = 0; i < 16; i++)
        v[i] = a_.f32[i];
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++)
            v[i] += v[i + w];
    return v[0];
}
#define _mm512_reduce_add_ps(a) emu_mm512_reduce_add_ps(a)

#endif
