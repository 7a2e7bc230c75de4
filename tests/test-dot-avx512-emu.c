/*
 * test-dot-avx512-emu: core/cpu/dot-avx512.c's kernels, both flavours (VNNI
 * vpdpbusd and the vpmaddubsw + vpmaddwd one), checked by test-dot.c's own
 * cases on a CPU without AVX-512, through SIMDe's portable implementations of
 * the intrinsics (tests/avx512-emu/immintrin.h, which this target finds
 * before the compiler's; CMakeLists.txt builds it with SIMDe, Debian
 * libsimde-dev, and without it the test skips).
 *
 * Why: the development and CI machines have no AVX-512, yet a lent GPU
 * machine's host does, and there these kernels are the CPU reference of every
 * CUDA comparison. Emulation checks their logic (lane layout, scale order,
 * masks, tails); not their speed, and not the compiler's native code, which
 * test-dot checks wherever the CPU has AVX-512.
 *
 * test-dot.c is included with two names redirected: cpu_isa_supported says
 * yes to AVX-512, and cpu_matmul_kernels_get hands out the emulated kernels for
 * it (with the AVX2 activation quantizers, as the dispatcher does). Only the
 * cases that run the AVX-512 kernels are run here; test-dot runs the rest.
 */
#include <stdio.h>

#include "test.h"

#if defined(HEARTH_TEST_AVX512_EMU)

#define cpu__kernels_avx512 emu_kernels_avx512
#include "../core/cpu/dot-avx512.c"

static bool emu_vnni;

static bool emu_isa_supported(enum cpu_isa isa)
{
    return isa == CPU_ISA_AVX512 ? cpu_isa_supported(CPU_ISA_AVX2) : cpu_isa_supported(isa);
}

static hearth_status emu_kernels_get(hearth_dtype wtype, enum cpu_isa isa,
                                     struct cpu_matmul_kernels *out)
{
    if (isa != CPU_ISA_AVX512)
        return cpu_matmul_kernels_get(wtype, isa, out);
    hearth_status st = cpu_matmul_kernels_get(wtype, CPU_ISA_AVX2, out);
    struct cpu__kernel_set k;
    if (st == HEARTH_OK && emu_kernels_avx512(wtype, emu_vnni, &k)) {
        out->isa = CPU_ISA_AVX512;
        out->dot = k.dot;
        out->dot_rows = k.dot_rows;
        out->dot_tile = k.dot_tile;
    }
    return st;
}

#define cpu_isa_supported emu_isa_supported
#define cpu_matmul_kernels_get emu_kernels_get
/* test-dot.c's main and the cases not run here are dropped */
#undef TEST_MAIN
#define TEST_MAIN(...)
#pragma GCC diagnostic ignored "-Wunused-function"
#include "test-dot.c"
#undef cpu_isa_supported
#undef cpu_matmul_kernels_get

static void run_emulated(bool vnni)
{
    if (!cpu_isa_supported(CPU_ISA_AVX2))
        TEST_SKIP("the AVX-512 sets borrow the AVX2 activation quantizers; this CPU has no AVX2");
    emu_vnni = vnni;
    int native = 0;
    test_rng_seed(3);
    check_isa(CPU_ISA_AVX512, &native);
    CHECK_INT_EQ(native, 5); /* Q4_0, Q8_0, Q4_K, Q5_K, Q6_K */
}

TEST(dot_avx512_vnni_emulated)
{
    run_emulated(true);
}

TEST(dot_avx512_bw_emulated)
{
    run_emulated(false);
}

/* the outlier regression over every ISA, AVX-512 included, in both flavours */
TEST(q8_1_outliers_emulated)
{
    if (!cpu_isa_supported(CPU_ISA_AVX2))
        TEST_SKIP("no AVX2");
    emu_vnni = true;
    q8_1_outliers();
    emu_vnni = false;
    q8_1_outliers();
}

int main(int argc, char **argv)
{
    static const struct test_case cases[] = {TEST_CASE(dot_avx512_vnni_emulated),
                                             TEST_CASE(dot_avx512_bw_emulated),
                                             TEST_CASE(q8_1_outliers_emulated)};
    return test__run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
}

#else

TEST(dot_avx512_emulated)
{
    TEST_SKIP("built without SIMDe (Debian libsimde-dev) or not on x86-64: nothing to emulate");
}

TEST_MAIN(TEST_CASE(dot_avx512_emulated))

#endif
