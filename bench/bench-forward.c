/*
 * bench-forward: end-to-end CPU forward-pass speed of one GGUF model, as
 * tokens per second and as weight bytes streamed per second against a memcpy
 * bandwidth measured in the same run.
 *
 * Prefill evaluates n_prompt tokens from position 0 in one forward_eval call
 * (which batches them n_batch at a time); decode then evaluates n_gen single
 * tokens one call each, computing only the last token's logits like a
 * generator would. Token ids are a fixed pseudo-random sequence (speed does not
 * depend on them). Each phase is repeated `reps` times on a rewound cache and
 * the median is reported, because the development machine is shared and noisy.
 * "Weight bytes per token" counts every matrix a token multiplies (the seven
 * per-layer matmuls and the output head); decode GB/s is that times tok/s, so
 * its ratio to the copy bandwidth says how close decode is to memory-bound.
 * The copy bandwidth is bytes read (not read + written) per second of a 256 MB
 * memcpy on one thread, comparable with a matvec that only reads. Tokens per
 * CPU-second (process CPU time) are printed too: with one thread they measure
 * the code, not the share of a loaded machine it got.
 *
 * Usage: bench-forward MODEL.gguf [threads=2] [n_prompt=512] [n_gen=128] [reps=3] [kv=f16]
 *
 * kv: the KV cache type (kv-quant.h), one name for K and V or "K,V" (q8_0,rot3).
 * Decode after an n_prompt prefill runs at depth n_prompt, so "2048 16 1 rot4"
 * gives pp2048 and tg16 at depth 2048 with a rot4 cache.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/forward.h"
#include "kv-quant.h"
#include "model.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process: with one thread, immune to time slicing on a shared machine. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double copy_read_gbps(void)
{
    size_t bytes = (size_t)256 << 20;
    uint8_t *a = malloc(bytes), *b = malloc(bytes);
    double best = 0.0;
    if (a && b) {
        memset(a, 1, bytes);
        memset(b, 2, bytes);
        for (int i = 0; i < 5; i++) {
            double t0 = now();
            memcpy(i & 1 ? a : b, i & 1 ? b : a, bytes);
            double g = (double)bytes / (now() - t0) * 1e-9;
            best = g > best ? g : best;
        }
    }
    free(a);
    free(b);
    return best;
}

static double mat_bytes(const struct model_weight *w)
{
    return w->data ? (double)w->row_bytes * (double)w->n_out : 0.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static long arg_or(int argc, char **argv, int i, long def)
{
    if (argc <= i)
        return def;
    char *end;
    long v = strtol(argv[i], &end, 10);
    return *end == '\0' && v > 0 ? v : def;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [threads] [n_prompt] [n_gen] [reps] [kv]\n",
                argv[0]);
        return 2;
    }
    int n_threads = (int)arg_or(argc, argv, 2, 2);
    int n_prompt = (int)arg_or(argc, argv, 3, 512);
    int n_gen = (int)arg_or(argc, argv, 4, 128);
    int reps = (int)arg_or(argc, argv, 5, 3);
    if (reps > 15)
        reps = 15;
    enum kvq_type kv_k = KVQ_F16, kv_v = KVQ_F16;
    if (argc > 6) {
        char kname[16] = {0};
        const char *comma = strchr(argv[6], ',');
        size_t kl = comma ? (size_t)(comma - argv[6]) : strlen(argv[6]);
        memcpy(kname, argv[6], kl < sizeof kname - 1 ? kl : sizeof kname - 1);
        if (kvq_type_from_name(kname, &kv_k) != HEARTH_OK ||
            kvq_type_from_name(comma ? comma + 1 : kname, &kv_v) != HEARTH_OK) {
            fprintf(stderr, "%s\n", hearth_last_error());
            return 2;
        }
    }
    struct model *m = NULL;
    struct forward_ctx *c = NULL;
    if (model_load(argv[1], &m) != HEARTH_OK) {
        fprintf(stderr, "%s\n", hearth_last_error());
        return 1;
    }
    struct forward_params p = forward_params_default();
    p.n_threads = n_threads;
    p.n_ctx = (uint32_t)(n_prompt + n_gen + 1);
    p.kv_type_k = kv_k;
    p.kv_type_v = kv_v;
    if (forward_create(m, &p, &c) != HEARTH_OK) {
        fprintf(stderr, "%s\n", hearth_last_error());
        model_free(m);
        return 1;
    }
    double wbytes = mat_bytes(&m->output);
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const struct model_layer *ly = &m->layers[l];
        wbytes += mat_bytes(&ly->wq) + mat_bytes(&ly->wk) + mat_bytes(&ly->wv) +
                  mat_bytes(&ly->wo) + mat_bytes(&ly->ffn_gate) + mat_bytes(&ly->ffn_up) +
                  mat_bytes(&ly->ffn_down);
    }
    int32_t *toks = malloc((size_t)(n_prompt + n_gen) * sizeof *toks);
    float *logits = malloc((size_t)m->hp.n_vocab * sizeof(float));
    if (!toks || !logits)
        return 1;
    uint64_t s = 0x243F6A8885A308D3ull;
    for (int i = 0; i < n_prompt + n_gen; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int32_t)((s >> 33) % m->hp.n_vocab);
    }
    double bw = copy_read_gbps();
    double pp[15], tg[15], ppc[15], tgc[15];
    for (int r = 0; r < reps; r++) {
        double c0 = cpu_now(), t0 = now();
        if (forward_eval(c, toks, n_prompt, 0, logits, false) != HEARTH_OK)
            goto fail;
        double t1 = now(), c1 = cpu_now();
        for (int i = 0; i < n_gen; i++)
            if (forward_eval(c, toks + n_prompt + i, 1, n_prompt + i, logits, false) != HEARTH_OK)
                goto fail;
        double t2 = now(), c2 = cpu_now();
        pp[r] = n_prompt / (t1 - t0);
        tg[r] = n_gen / (t2 - t1);
        ppc[r] = n_prompt / (c1 - c0);
        tgc[r] = n_gen / (c2 - c1);
    }
    qsort(pp, (size_t)reps, sizeof(double), cmp_double);
    qsort(tg, (size_t)reps, sizeof(double), cmp_double);
    qsort(ppc, (size_t)reps, sizeof(double), cmp_double);
    qsort(tgc, (size_t)reps, sizeof(double), cmp_double);
    double ppm = pp[reps / 2], tgm = tg[reps / 2];
    printf("model %s: %u layers, weights %.1f MB/token, %d threads, isa %s\n", argv[1],
           m->hp.n_layer, wbytes * 1e-6, n_threads, cpu_isa_name(cpu_isa_best()));
    char kvn[48];
    kvq_pair_name(kv_k, kv_v, kvn, sizeof kvn);
    printf("KV cache %s, %.1f MiB\n", kvn, (double)forward_kv_bytes(c) / (1024.0 * 1024.0));
    printf("copy bandwidth (read) %.2f GB/s\n", bw);
    printf("pp%d %.1f tok/s (min %.1f max %.1f)\n", n_prompt, ppm, pp[0], pp[reps - 1]);
    printf("tg%d %.1f tok/s (min %.1f max %.1f) = %.2f GB/s weights, %.2f of copy\n", n_gen, tgm,
           tg[0], tg[reps - 1], tgm * wbytes * 1e-9, tgm * wbytes * 1e-9 / bw);
    printf("per CPU second (all threads, spinning included): pp %.1f tok/s, tg %.1f tok/s\n",
           ppc[reps / 2], tgc[reps / 2]);
    free(toks);
    free(logits);
    forward_destroy(c);
    model_free(m);
    return 0;
fail:
    fprintf(stderr, "%s\n", hearth_last_error());
    return 1;
}
