/*
 * bench-attn: the grouped F16 attention kernel (cpu_attn_heads) against one
 * cpu_attn_head per query head, single-threaded, as a ratio taken in one
 * process.
 *
 * For each shape (head_dim, heads per KV head, positions) both kernels run on
 * the same random cache and queries, alternating call by call (ABAB..., BABA...
 * on odd rounds) so load on a shared machine falls on both alike; reported are
 * the median time of each and the median of the per-round ratios. The shapes
 * are SmolLM2's (64, 3) and Gemma 3 270M's (256, 4), with groups of 1 as the
 * decode split uses on few KV heads. The outputs are compared too: they must
 * be the same bits.
 *
 * Usage: bench-attn [rounds 200]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"
#include "cpu/ops.h"
#include "f16.h"

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return v[n / 2];
}

/* xorshift in [-1, 1) */
static float rnd(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (float)((double)(*s >> 11) / 4503599627370496.0 - 1.0);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 200;
    if (rounds < 1) {
        fprintf(stderr, "bench-attn: rounds must be a positive integer\n");
        return 2;
    }
    if (!cpu_isa_supported(CPU_ISA_AVX2)) {
        fprintf(stderr, "bench-attn: this CPU has no AVX2/FMA/F16C\n");
        return 1;
    }
    struct cpu_attn_kernels fast, old;
    cpu_attn_kernels_get(CPU_ISA_AVX2, &fast);
    old = fast;
    old.heads = cpu_attn_heads_ref;
    static const struct {
        int hd, nq;
        int64_t n;
    } shapes[] = {{64, 3, 64},   {64, 3, 512},   {64, 3, 4096}, {64, 1, 4096},
                  {256, 4, 512}, {256, 4, 4096}, {256, 1, 4096}};
    printf("%-4s %-3s %-5s %12s %12s %8s\n", "hd", "nq", "n", "per-head us", "grouped us",
           "speedup");
    int bad = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int hd = shapes[s].hd, nq = shapes[s].nq;
        const int64_t n = shapes[s].n;
        const size_t stride = 3 * (size_t)hd; /* three KV heads per row, the second used */
        uint16_t *k = malloc((size_t)n * stride * 2), *v = malloc((size_t)n * stride * 2);
        float *q = malloc((size_t)nq * (size_t)hd * 4), *o1 = malloc((size_t)nq * (size_t)hd * 4);
        float *o2 = malloc((size_t)nq * (size_t)hd * 4);
        float *sc = malloc(cpu_attn_scratch(nq, n) * 4);
        double *ta = malloc((size_t)rounds * sizeof *ta), *tb = malloc((size_t)rounds * sizeof *tb);
        double *ratio = malloc((size_t)rounds * sizeof *ratio);
        if (!k || !v || !q || !o1 || !o2 || !sc || !ta || !tb || !ratio) {
            fprintf(stderr, "bench-attn: out of memory\n");
            return 1;
        }
        uint64_t seed = 0x9e3779b97f4a7c15ull + s;
        for (size_t i = 0; i < (size_t)n * stride; i++) {
            k[i] = f32_to_f16(2.0f * rnd(&seed));
            v[i] = f32_to_f16(rnd(&seed));
        }
        for (int i = 0; i < nq * hd; i++)
            q[i] = rnd(&seed);
        const float scale = 1.0f / sqrtf((float)hd);
        /* enough calls per sample to be well above the clock's resolution */
        int reps = (int)(2000000 / (n * hd * nq)) + 1;
        for (int r = 0; r < rounds; r++) {
            for (int side = 0; side < 2; side++) {
                bool is_old = (side == 0) == (r % 2 == 0);
                const struct cpu_attn_kernels *ak = is_old ? &old : &fast;
                float *o = is_old ? o1 : o2;
                double t0 = bench_now();
                for (int i = 0; i < reps; i++)
                    cpu_attn_heads(ak, o, q, nq, k + hd, v + hd, stride, n, hd, scale, sc);
                double dt = (bench_now() - t0) / reps * 1e6;
                *(is_old ? &ta[r] : &tb[r]) = dt;
            }
            ratio[r] = ta[r] / tb[r];
        }
        if (memcmp(o1, o2, (size_t)nq * (size_t)hd * 4) != 0) {
            fprintf(stderr, "bench-attn: hd %d nq %d n %lld: outputs differ\n", hd, nq,
                    (long long)n);
            bad = 1;
        }
        printf("%-4d %-3d %-5lld %12.2f %12.2f %7.2fx\n", hd, nq, (long long)n,
               median(ta, rounds), median(tb, rounds), median(ratio, rounds));
        free(k), free(v), free(q), free(o1), free(o2), free(sc), free(ta), free(tb), free(ratio);
    }
    return bad;
}
