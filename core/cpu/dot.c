/*
 * dot: picks the CPU kernels for a weight type.
 *
 * cpu_isa_best() is the best ISA the CPU and OS support (cpu-caps.c), capped by
 * HEARTH_CPU_ISA=scalar|avx2|avx512 so the portable paths can be exercised on a
 * fast machine; it is read once and cached (cpu_isa_reset() forgets it, for
 * tests that change the variable). cpu_matmul_kernels_get() takes an explicit
 * ISA and walks downward from it, skipping ISAs the CPU lacks and ISAs without
 * a kernel for the type, so it never hands out a pointer the CPU cannot run;
 * the environment cap applies only through cpu_isa_best(), so tests can still
 * ask for every ISA by name. AVX-512 kernels come in a VNNI (vpdpbusd) and a
 * plain (vpmaddubsw) flavour chosen here by the avx512vnni cap.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/dot-internal.h"
#include "err.h"

static atomic_int isa_cached = -1;

bool cpu_isa_supported(enum cpu_isa isa)
{
    const struct cpu_caps *c = cpu_caps_get();
    switch (isa) {
    case CPU_ISA_SCALAR: return true;
    case CPU_ISA_AVX2: return c->avx2 && c->fma && c->f16c;
    case CPU_ISA_AVX512:
        return c->avx2 && c->fma && c->f16c && c->avx512f && c->avx512bw && c->avx512vl &&
               c->avx512dq;
    default: return false;
    }
}

const char *cpu_isa_name(enum cpu_isa isa)
{
    switch (isa) {
    case CPU_ISA_SCALAR: return "scalar";
    case CPU_ISA_AVX2: return "avx2";
    case CPU_ISA_AVX512: return "avx512";
    default: return "unknown";
    }
}

static enum cpu_isa isa_detect(void)
{
    enum cpu_isa best = CPU_ISA_SCALAR;
    for (int i = CPU_ISA_COUNT - 1; i > CPU_ISA_SCALAR; i--) {
        if (cpu_isa_supported((enum cpu_isa)i)) {
            best = (enum cpu_isa)i;
            break;
        }
    }
    const char *env = getenv("HEARTH_CPU_ISA");
    if (env && *env) {
        for (int i = 0; i < CPU_ISA_COUNT; i++) {
            /* a cap above what the CPU has is ignored; an unknown name too */
            if (strcmp(env, cpu_isa_name((enum cpu_isa)i)) == 0 && i < (int)best)
                best = (enum cpu_isa)i;
        }
    }
    return best;
}

enum cpu_isa cpu_isa_best(void)
{
    int v = atomic_load_explicit(&isa_cached, memory_order_relaxed);
    if (v < 0) {
        v = (int)isa_detect();
        atomic_store_explicit(&isa_cached, v, memory_order_relaxed);
    }
    return (enum cpu_isa)v;
}

void cpu_isa_reset(void)
{
    atomic_store_explicit(&isa_cached, -1, memory_order_relaxed);
}

/* The activation format of wtype's dot product; false if hearth has no CPU kernel for it. */
static bool act_type_of(hearth_dtype wtype, hearth_dtype *act)
{
    switch (wtype) {
    case HEARTH_DTYPE_F32:
    case HEARTH_DTYPE_F16:
    case HEARTH_DTYPE_BF16: *act = HEARTH_DTYPE_F32; return true;
    case HEARTH_DTYPE_Q4_0:
    case HEARTH_DTYPE_Q5_0:
    case HEARTH_DTYPE_Q8_0:
    case HEARTH_DTYPE_IQ4_NL: *act = HEARTH_DTYPE_Q8_0; return true;
    case HEARTH_DTYPE_Q4_1:
    case HEARTH_DTYPE_Q5_1: *act = HEARTH_DTYPE_Q8_1; return true;
    case HEARTH_DTYPE_Q2_K:
    case HEARTH_DTYPE_Q3_K:
    case HEARTH_DTYPE_Q4_K:
    case HEARTH_DTYPE_Q5_K:
    case HEARTH_DTYPE_Q6_K:
    case HEARTH_DTYPE_IQ2_XXS:
    case HEARTH_DTYPE_IQ2_XS:
    case HEARTH_DTYPE_IQ2_S:
    case HEARTH_DTYPE_IQ3_XXS:
    case HEARTH_DTYPE_IQ3_S:
    case HEARTH_DTYPE_IQ1_S:
    case HEARTH_DTYPE_IQ1_M:
    case HEARTH_DTYPE_IQ4_XS: *act = HEARTH_DTYPE_Q8_K; return true;
    default: return false;
    }
}

static bool lookup(enum cpu_isa isa, hearth_dtype wtype, struct cpu__kernel_set *k)
{
    memset(k, 0, sizeof *k);
    switch (isa) {
    case CPU_ISA_SCALAR: return cpu__kernels_scalar(wtype, k);
    case CPU_ISA_AVX2: return cpu__kernels_avx2(wtype, k);
    case CPU_ISA_AVX512: return cpu__kernels_avx512(wtype, cpu_caps_get()->avx512vnni, k);
    default: return false;
    }
}

hearth_status cpu_matmul_kernels_get(hearth_dtype wtype, enum cpu_isa isa,
                                     struct cpu_matmul_kernels *out)
{
    hearth_dtype act;
    const char *name = hearth_dtype_name(wtype);
    if (!act_type_of(wtype, &act))
        return err_set(HEARTH_ERR_UNSUPPORTED, "cpu dot: no CPU kernel for weight type %s (id %d)",
                       name ? name : "?", (int)wtype);
    if ((int)isa < 0 || isa >= CPU_ISA_COUNT)
        return err_set(HEARTH_ERR_INVALID_ARG, "cpu dot: ISA id %d is out of range", (int)isa);
    memset(out, 0, sizeof *out);
    for (int i = (int)isa; i >= CPU_ISA_SCALAR; i--) {
        struct cpu__kernel_set k;
        if (!cpu_isa_supported((enum cpu_isa)i) || !lookup((enum cpu_isa)i, wtype, &k))
            continue;
        if (!out->dot) {
            out->dot = k.dot;
            out->dot_rows = k.dot_rows;
            out->dot_tile = k.dot_tile;
            out->isa = (enum cpu_isa)i;
        }
        if (!out->quantize)
            out->quantize = k.quantize;
        if (out->quantize || act == HEARTH_DTYPE_F32)
            break;
    }
    out->wtype = wtype;
    out->act_type = act;
    if (!out->dot || !out->dot_rows || !out->dot_tile ||
        (act != HEARTH_DTYPE_F32 && !out->quantize))
        return err_set(HEARTH_ERR_INTERNAL, "cpu dot: kernel table for %s is incomplete", name);
    return HEARTH_OK;
}
