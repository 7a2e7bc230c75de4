/*
 * bench-attn-ring: one ring-only f16 layer's attention on Gemma 3's shapes
 * (head dim 256, 4 query heads over 1 KV head, window 512, ring 576), the
 * grouped f16 kernel route (cpu/attn-ring.h) against the compressed-cache
 * route it replaced (cpu_kvq_exact_stage + cpu_kvq_attn_run), staging
 * included, as a ratio taken in one process.
 *
 * Each round times a batch of n tokens at positions [depth, depth + n) on
 * both routes, alternating which goes first, so load on a shared machine
 * falls on both alike (two `hearth bench` runs on a loaded 2-core machine
 * differ by more than attention's share of a step). Repeating a batch reads
 * the same rows: its own slots held positions older than every window.
 *
 * Usage: bench-attn-ring [n 64] [depth 4096] [rounds 30] [threads 1]
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench-util.h"
#include "cpu/attn-kvq.h"
#include "cpu/attn-ring.h"
#include "f16.h"
#include "threadpool.h"

enum { HD = 256, NH = 4, KV = HD, Q = NH * HD, WIN = 512, RING = WIN + 64 };

int main(int argc, char **argv)
{
    const char *who = "bench-attn-ring";
    const int n = (int)bench_arg_long(who, argc, argv, 1, 64);
    const int64_t depth = bench_arg_long(who, argc, argv, 2, 4096);
    const int rounds = (int)bench_arg_long(who, argc, argv, 3, 30);
    const int nth = (int)bench_arg_long(who, argc, argv, 4, 1);
    if (n > RING - WIN + 1 || depth < RING) {
        fprintf(stderr,
                "bench-attn-ring: n %d, depth %lld: expected n <= %d (the ring's slack + 1) "
                "and depth >= %d (a full ring)\n",
                n, (long long)depth, RING - WIN + 1, RING);
        return 2;
    }
    const size_t xrows = cpu_kvq_exact_rows(RING, n);
    uint16_t *rk = malloc(RING * KV * 2), *rv = malloc(RING * KV * 2);
    int32_t *rpos = malloc(RING * sizeof *rpos), *pos = malloc((size_t)n * sizeof *pos),
            *tok = malloc((size_t)n * sizeof *tok);
    float *q = malloc((size_t)n * Q * 4), *k = malloc((size_t)n * KV * 4),
          *v = malloc((size_t)n * KV * 4), *out = malloc((size_t)n * Q * 4),
          *xf = malloc(2 * xrows * KV * 4), *scores = malloc((size_t)nth * 4 * WIN * 4);
    uint16_t *xh = malloc(2 * xrows * KV * 2);
    double *ta = malloc((size_t)rounds * sizeof *ta), *tb = malloc((size_t)rounds * sizeof *tb);
    struct threadpool *tp = NULL;
    struct cpu_kvq_attn *kva = NULL;
    if (!rk || !rv || !rpos || !pos || !tok || !q || !k || !v || !out || !xf || !scores || !xh ||
        !ta || !tb || threadpool_create(nth, &tp) != HEARTH_OK ||
        cpu_kvq_attn_create(cpu_isa_best(), nth, &kva) != HEARTH_OK ||
        cpu_kvq_attn_reserve(kva, n, NH, HD) != HEARTH_OK) {
        fprintf(stderr, "bench-attn-ring: out of memory\n");
        return 1;
    }
    uint32_t r = 1;
    for (int i = 0; i < RING; i++) {
        for (int d = 0; d < KV; d++) {
            r = r * 1664525u + 1013904223u;
            rk[i * KV + d] = f32_to_f16((float)(r >> 8) / 16777216.0f - 0.5f);
            rv[i * KV + d] = f32_to_f16((float)(r >> 9) / 8388608.0f - 0.5f);
        }
    }
    for (int i = 0; i < RING; i++) /* the position p < depth with p % RING == i */
        rpos[i] = (int32_t)(depth - 1 - ((depth - 1 - i) % RING + RING) % RING);
    for (int t = 0; t < n; t++) {
        pos[t] = (int32_t)(depth + t);
        tok[t] = t;
        for (int d = 0; d < Q; d++)
            q[t * Q + d] = (float)((t * 31 + d * 7) % 13) / 13.0f - 0.5f;
        for (int d = 0; d < KV; d++) {
            k[t * KV + d] = (float)((t + d * 3) % 11) / 11.0f - 0.5f;
            v[t * KV + d] = (float)((t * 5 + d) % 17) / 17.0f - 0.5f;
        }
    }
    struct cpu_attn_kernels ak;
    cpu_attn_kernels_get(cpu_isa_best(), &ak);
    struct cpu_kvq_ring ring = {.k = rk, .v = rv, .k_stride = KV, .v_stride = KV, .pos = rpos,
                                .w = RING, .span = WIN};
    struct cpu_kvq_seq sq = {.tok = tok, .n = n};
    for (int it = 0; it < rounds + 1; it++) {
        double t_new = 0.0, t_old = 0.0;
        for (int side = 0; side < 2; side++) {
            const bool is_new = (side == 0) == (it % 2 == 0);
            double t0 = bench_now();
            if (is_new) {
                struct cpu_ring_rows rows;
                cpu_ring_stage_f16(&ring, KV, depth, n, tok, k, v, KV, xh, xh + xrows * KV,
                                   &rows);
                const struct cpu_ring_attn ra = {
                    .ak = &ak, .rows = &rows, .pos = pos, .q = q, .q_stride = Q, .out = out,
                    .out_stride = Q, .n_head = NH, .n_head_kv = 1, .hd = HD, .window = WIN,
                    .scale = 0.0625f, .scores = scores, .scores_per = 4 * WIN};
                cpu_ring_attn_run(tp, &ra, n);
                t_new = bench_now() - t0;
            } else {
                struct cpu_kvq_exact ex;
                cpu_kvq_exact_stage(KVQ_F16, KVQ_F16, NULL, 1, HD, 2 * KV, 2 * KV, &sq, depth, k,
                                    v, KV, &ring, xf, xf + xrows * KV, &ex);
                const struct cpu_kvq_layer L = {
                    .kt = KVQ_F16, .vt = KVQ_F16, .n_head = NH, .n_head_kv = 1, .hd = HD,
                    .k_row = 2 * KV, .v_row = 2 * KV, .scale = 0.0625f, .window = WIN,
                    .exact_window = RING, .exact = &ex, .pos = pos, .q = q, .q_stride = Q,
                    .out = out, .out_stride = Q, .seq = &sq, .n_seq = 1};
                cpu_kvq_attn_run(kva, tp, &L);
                t_old = bench_now() - t0;
            }
        }
        if (it > 0) { /* the first round warms caches and the pool */
            ta[it - 1] = t_new;
            tb[it - 1] = t_old;
        }
    }
    qsort(ta, (size_t)rounds, sizeof *ta, bench_cmp_double);
    qsort(tb, (size_t)rounds, sizeof *tb, bench_cmp_double);
    printf("n %d at depth %lld, %d threads, %d rounds: grouped f16 route median %.1f us "
           "(p25 %.1f), compressed-cache route median %.1f us (p25 %.1f); old / new %.2fx "
           "(p25 %.2fx)\n",
           n, (long long)depth, nth, rounds, 1e6 * ta[rounds / 2], 1e6 * ta[rounds / 4],
           1e6 * tb[rounds / 2], 1e6 * tb[rounds / 4], tb[rounds / 2] / ta[rounds / 2],
           tb[rounds / 4] / ta[rounds / 4]);
    cpu_kvq_attn_destroy(kva);
    threadpool_destroy(tp);
    free(rk);
    free(rv);
    free(rpos);
    free(pos);
    free(tok);
    free(q);
    free(k);
    free(v);
    free(out);
    free(xf);
    free(scores);
    free(xh);
    free(ta);
    free(tb);
    return 0;
}
