/*
 * bench-kv-window: what the exact recent KV window (--kv-window, docs/kv-cache.md)
 * costs a CPU decode step, as a ratio taken in one process.
 *
 * Two forward contexts over the same model and compressed KV type, one with
 * W = 0 and one with W = N, are filled to the same depth; then decode steps at
 * that depth alternate between them token by token (ABAB..., BABA... on odd
 * rounds), so load on a shared machine falls on both sides alike. Each step
 * rewrites position `depth` (a rewind by one), which keeps the depth fixed.
 * Reported: the median and 25th-percentile step times of each side and their
 * ratios. Alternative rejected: two `hearth bench` runs, whose difference on a
 * loaded 2-core machine is larger than the effect measured here.
 *
 * Usage: bench-kv-window [MODEL] [rot4|rot3|q4_0|q8_0] [depth 2048] [W 128]
 *                        [steps 200] [threads 1]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"
#include "cpu/forward.h"
#include "kv-quant.h"
#include "model.h"

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    const char *tname = argc > 2 ? argv[2] : "rot4";
    int kvt = -1;
    for (int t = 0; t < KVQ_TYPE_COUNT; t++)
        if (!strcmp(tname, kvq_type_name((enum kvq_type)t)))
            kvt = t;
    if (kvt < 0 || kvt == KVQ_F16) {
        fprintf(stderr, "bench-kv-window: KV type '%s': expected rot4, rot3, q4_0 or q8_0\n",
                tname);
        return 2;
    }
    const char *who = "bench-kv-window";
    const int depth = (int)bench_arg_long(who, argc, argv, 3, 2048);
    const int w = (int)bench_arg_long(who, argc, argv, 4, 128);
    const int steps = (int)bench_arg_long(who, argc, argv, 5, 200);
    const int nth = (int)bench_arg_long(who, argc, argv, 6, 1);
    struct model *m = NULL;
    if (model_load(path, &m) != HEARTH_OK) {
        fprintf(stderr, "bench-kv-window: %s\n", hearth_last_error());
        return 1;
    }
    int rc = 1;
    struct forward_ctx *c[2] = {NULL, NULL};
    int32_t *toks = malloc(sizeof *toks * (size_t)(depth + 1));
    float *logits = malloc(sizeof *logits * m->hp.n_vocab);
    double *t[2] = {malloc(sizeof(double) * (size_t)steps), malloc(sizeof(double) * (size_t)steps)};
    if (!toks || !logits || !t[0] || !t[1]) {
        fprintf(stderr, "bench-kv-window: out of memory\n");
        goto done;
    }
    /* a fixed token walk over the first 20k ids: any text would do for timing */
    for (int i = 0; i <= depth; i++)
        toks[i] = (int32_t)(100 + (i * 7919) % 20000) % (int32_t)m->hp.n_vocab;
    for (int k = 0; k < 2; k++) {
        struct forward_params p = forward_params_default();
        p.n_ctx = (uint32_t)depth + 8;
        p.n_threads = nth;
        p.kv_type_k = kvt;
        p.kv_type_v = kvt;
        p.kv_window = k ? (uint32_t)w : 0;
        double t0 = bench_now();
        if (forward_create(m, &p, &c[k]) != HEARTH_OK ||
            forward_eval(c[k], toks, depth, 0, NULL, false) != HEARTH_OK) {
            fprintf(stderr, "bench-kv-window: %s\n", hearth_last_error());
            goto done;
        }
        fprintf(stderr, "filled W=%d to depth %d in %.1f s\n", k ? w : 0, depth, bench_now() - t0);
    }
    for (int i = 0; i < steps; i++)
        for (int j = 0; j < 2; j++) {
            int k = (i & 1) ? 1 - j : j;
            double t0 = bench_now();
            if (forward_eval(c[k], toks + depth, 1, depth, logits, false) != HEARTH_OK) {
                fprintf(stderr, "bench-kv-window: %s\n", hearth_last_error());
                goto done;
            }
            t[k][i] = bench_now() - t0;
        }
    for (int k = 0; k < 2; k++)
        qsort(t[k], (size_t)steps, sizeof(double), bench_cmp_double);
    printf("%s depth %d, %d steps, %d thread(s): W=0 median %.3f ms (%.1f tok/s), p25 %.3f ms | "
           "W=%d median %.3f ms (%.1f tok/s), p25 %.3f ms | ratio median %.3f, p25 %.3f\n",
           tname, depth, steps, nth, t[0][steps / 2] * 1e3, 1.0 / t[0][steps / 2],
           t[0][steps / 4] * 1e3, w, t[1][steps / 2] * 1e3, 1.0 / t[1][steps / 2],
           t[1][steps / 4] * 1e3, t[1][steps / 2] / t[0][steps / 2],
           t[1][steps / 4] / t[0][steps / 4]);
    rc = 0;
done:
    for (int k = 0; k < 2; k++)
        forward_destroy(c[k]);
    model_free(m);
    free(toks);
    free(logits);
    free(t[0]);
    free(t[1]);
    return rc;
}
