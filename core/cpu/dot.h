/*
 * cpu/dot: the CPU's quantized dot products and the activation quantizers they
 * consume, chosen at run time by cpuid.
 *
 * A matrix-vector product y = W x with W in a block format is computed as: x is
 * quantized once to W's activation format (Q8_0, Q8_1 or Q8_K, see
 * quant_traits.vec_dot_type), then every row of W is dotted with it. Each ISA
 * (scalar, AVX2, AVX-512 with VNNI where present) has its own file
 * (dot-scalar.c, dot-avx2.c, dot-avx512.c) compiled with its own flags; the
 * dispatcher here only hands out pointers, so code built for AVX-512 never runs
 * on a CPU without it. The scalar kernels are the portable path and the
 * reference the SIMD ones are tested against (besides float64 dequantize-then-dot).
 *
 * "Q8_1S", the CPU's internal variant of Q8_1: activation buffers for Q4_1/Q5_1
 * (act_type HEARTH_DTYPE_Q8_1, same 36-byte block, same f16 d and int8 qs[32] as
 * the reference quantizer) hold in the 2-byte s slot the exact code sum Σqs as
 * a little-endian int16 (|Σqs| ≤ 32·127 = 4064), not the f16 d·Σqs. The min
 * terms of Q4_1/Q5_1 need Σqs exactly (s's f16 rounding put errors of ~4 into
 * outputs of ~1 on SmolLM2's massive activations), and computing it once per
 * activation block here, instead of per weight row in every kernel, is what
 * keeps those kernels as fast as Q4_0's. These buffers never leave the CPU
 * matmul (quantize -> dot/dot_rows/dot_tile), so nothing else reads s; a
 * reference Q8_1 to_float, which ignores s, still dequantizes them. Rejected:
 * a separate array of sums beside the Q8_1 bytes (plumbing through matmul.c and
 * every kernel signature for the same information).
 */
#ifndef HEARTH_CPU_DOT_H
#define HEARTH_CPU_DOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

enum cpu_isa { CPU_ISA_SCALAR = 0, CPU_ISA_AVX2 = 1, CPU_ISA_AVX512 = 2, CPU_ISA_COUNT };

struct cpu_caps {
    bool avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512dq, avx512vnni;
    bool avxvnni;
};

/* What this CPU supports (cpuid and xgetbv, read once). */
const struct cpu_caps *cpu_caps_get(void);
/*
 * The best ISA this CPU runs; HEARTH_CPU_ISA=scalar|avx2|avx512 in the
 * environment caps it (for testing the portable paths on a fast machine).
 */
enum cpu_isa cpu_isa_best(void);
/* Forgets the cached cpu_isa_best() so the next call reads HEARTH_CPU_ISA again (tests). */
void cpu_isa_reset(void);
bool cpu_isa_supported(enum cpu_isa isa);
const char *cpu_isa_name(enum cpu_isa isa);

/*
 * x: n floats -> y: n/blck blocks of the activation format. n is a multiple of blck.
 * Output is bit-identical to the reference from_float of the activation type,
 * except that Q8_1's s slot holds the int16 code sum (Q8_1S, see above).
 */
typedef void (*cpu_quantize_fn)(const float *x, void *y, int64_t n);
/*
 * *s = dot(row w of n elements in the weight format, row a in the activation format).
 * n is a multiple of the weight block size (any n for F32/F16/BF16, whose
 * activation is n plain floats). w and a may have any byte alignment.
 */
typedef void (*cpu_dot_fn)(int64_t n, float *s, const void *w, const void *a);
/*
 * s[r] = dot(row r of W, a) for r in [0, nrows): rows are w_stride bytes apart.
 * Several rows per call let a kernel reuse the activation block from registers
 * and keep more loads in flight.
 */
typedef void (*cpu_dot_rows_fn)(int64_t n, int nrows, float *s, const void *w, size_t w_stride,
                                const void *a);

/*
 * s[t * s_stride + r] = dot(row r of W, activation row t) for r < nrows, t < ntok:
 * weight rows are w_stride bytes apart, activation rows a_stride bytes apart.
 * Each output is bit-identical to dot() of the same ISA on that (row, token),
 * so a batch gives the same bits as token-by-token decode. A kernel unpacks a
 * weight block once and dots it with several tokens, which is what makes
 * batched prefill compute-efficient.
 */
typedef void (*cpu_dot_tile_fn)(int64_t n, int nrows, int ntok, float *s, size_t s_stride,
                                const void *w, size_t w_stride, const void *a, size_t a_stride);

struct cpu_matmul_kernels {
    hearth_dtype wtype;
    hearth_dtype act_type;    /* HEARTH_DTYPE_F32: activations are used as plain floats;
                                 HEARTH_DTYPE_Q8_1: the Q8_1S variant (see above) */
    enum cpu_isa isa;         /* the ISA these pointers were compiled for */
    cpu_quantize_fn quantize; /* NULL when act_type is F32 */
    cpu_dot_fn dot;
    cpu_dot_rows_fn dot_rows; /* never NULL (a loop over dot where no special kernel exists) */
    cpu_dot_tile_fn dot_tile; /* never NULL; from the same ISA as dot */
};

/*
 * Kernels for weights of type wtype at isa, falling back to the best lower ISA
 * that has them and that this CPU runs (out->isa says which; asking for
 * CPU_ISA_AVX512 on an AVX2 machine yields AVX2 kernels). The quantizer may come
 * from a lower ISA than dot (AVX-512 reuses AVX2's). HEARTH_CPU_ISA does not
 * apply here, only to cpu_isa_best(). HEARTH_ERR_UNSUPPORTED (message names the
 * type) if hearth has no CPU kernel for wtype.
 */
hearth_status cpu_matmul_kernels_get(hearth_dtype wtype, enum cpu_isa isa,
                                     struct cpu_matmul_kernels *out);

#endif
