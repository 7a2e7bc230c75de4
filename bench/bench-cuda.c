/*
 * bench-cuda: kernel timings on the GPU, as ratios to the copy bandwidth
 * measured in the same run (style point 14).
 *
 *   1. copy bandwidth: cudaMemcpy device-to-device of 1 GiB, bytes read +
 *      written, median of 20;
 *   2. decode matvec (n_tok = 1) for every type at N x K = 4096x4096,
 *      14336x4096, 4096x14336, 128256x4096: GB/s of weight + x + y bytes and
 *      the fraction of copy bandwidth. Launches rotate over enough weight
 *      copies (>= 4x L2) that L2 cannot serve them; median of 20 batches;
 *      the types with an integer unit form also as "matvec-q8", the 8-bit
 *      activation kernel (cuda/matvec-q8.cu) that is off by default until
 *      these rows say which is faster;
 *   3. prefill at 512 tokens: TFLOP/s of the WMMA kernel and the cuBLAS path
 *      for a few types at 4096x4096 and 14336x4096 (confirms or moves
 *      CUDA_MATMUL_BLAS_MIN_TOK, cuda/ops.h).
 * Weights are filled with a byte pattern (0x11: small finite scales), since
 * timing does not depend on values, except for the lattice types (IQ1_*,
 * IQ2_*, IQ3_*; not IQ4_*): their grid lookups cost more when the lanes of a
 * warp index different entries, so they get random bytes. Usage: bench-cuda
 * [type-name ...] limits part 2 to those types. Without the CUDA backend it
 * says so and exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"
#include "hearth.h"
#include "quant.h"

#ifdef HEARTH_WITH_CUDA
#include "../cuda/ops.h"

#define REPS 20

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float median(float *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    return v[n / 2];
}

#define TRY(call)                                                                    \
    do {                                                                             \
        hearth_status st__ = (call);                                                 \
        if (st__ != HEARTH_OK) {                                                     \
            fprintf(stderr, "bench-cuda: %s: %s\n", #call, hearth_last_error());     \
            return -1;                                                               \
        }                                                                            \
    } while (0)

static void *ev0, *ev1;

static double copy_bandwidth(void)
{
    size_t n = (size_t)1 << 30;
    void *a = NULL, *b = NULL;
    float t[REPS];
    TRY(cuda_alloc(&a, n));
    TRY(cuda_alloc(&b, n));
    TRY(cuda_memset(a, 1, n));
    TRY(cuda_copy(b, a, n, NULL)); /* warm-up */
    for (int r = 0; r < REPS; r++) {
        TRY(cuda_event_record(ev0, NULL));
        TRY(cuda_copy(b, a, n, NULL));
        TRY(cuda_event_record(ev1, NULL));
        TRY(cuda_event_elapsed_ms(ev0, ev1, &t[r]));
    }
    cuda_free(a);
    cuda_free(b);
    return 2.0 * (double)n / ((double)median(t, REPS) * 1e-3) / 1e9;
}

/* Median ms of one matvec over REPS batches of n_copies launches (one per copy). */
static double time_matvec(const struct cuda_wlayout *l, void **w, int n_copies, float *x,
                          float *y)
{
    float t[REPS];
    for (int r = -1; r < REPS; r++) {
        TRY(cuda_event_record(ev0, NULL));
        for (int c = 0; c < n_copies; c++) {
            struct cuda_mm_out o = {l, w[c], NULL, y, l->n_rows};
            TRY(cuda_matvec(1, &o, x, l->k, 1, NULL));
        }
        TRY(cuda_event_record(ev1, NULL));
        float ms;
        TRY(cuda_event_elapsed_ms(ev0, ev1, &ms));
        if (r >= 0)
            t[r] = ms / (float)n_copies;
    }
    return (double)median(t, REPS);
}

/* Fills n device bytes at d: 0x11, or random bytes (xorshift64) for a grid type. */
static int fill_weight(hearth_dtype t, void *d, size_t n)
{
    if (!bench_is_grid_type(t))
        return cuda_memset(d, 0x11, n) == HEARTH_OK;
    uint8_t *h = malloc(n);
    if (!h)
        return 0;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        h[i] = (uint8_t)(x >> 32);
    }
    int ok = cuda_upload(d, h, n) == HEARTH_OK;
    free(h);
    return ok;
}

static int bench_matvec(hearth_dtype type, double copy_gbps, size_t l2, FILE *csv)
{
    static const int64_t shapes[][2] = {{4096, 4096}, {14336, 4096}, {4096, 14336},
                                        {128256, 4096}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        struct cuda_wlayout l;
        if (!cuda_wlayout_init(&l, type, shapes[s][0], shapes[s][1]))
            continue;
        int n_copies = (int)((4 * l2 + l.bytes - 1) / l.bytes);
        if (n_copies < 1)
            n_copies = 1;
        if (n_copies > 16)
            n_copies = 16;
        void *w[16] = {0};
        float *x = NULL, *y = NULL;
        int ok = 1;
        for (int c = 0; c < n_copies && ok; c++) {
            ok = cuda_alloc(&w[c], l.bytes) == HEARTH_OK && fill_weight(type, w[c], l.bytes);
        }
        ok = ok && cuda_alloc((void **)&x, (size_t)l.k * 4) == HEARTH_OK &&
             cuda_alloc((void **)&y, (size_t)l.n_rows * 4) == HEARTH_OK &&
             cuda_fill_f32(x, 0.5f, l.k, NULL) == HEARTH_OK;
        /* both paths where the 8-bit activation one applies (cuda/matvec-q8.cu) */
        const int n_paths = cuda_matvec_q8_usable(type, l.k, 1) ? 2 : 1;
        for (int q8 = 0; q8 < n_paths; q8++) {
            cuda_matvec_q8_set(q8 == 1);
            const char *kind = q8 ? "matvec-q8" : "matvec";
            double ms = ok ? time_matvec(&l, w, n_copies, x, y) : -1.0;
            if (ms > 0) {
                double bytes = (double)l.bytes + (double)l.k * 4.0 + (double)l.n_rows * 4.0;
                double gbps = bytes / (ms * 1e-3) / 1e9;
                printf("%-9s %-7s %6lld x %-6lld %9.1f us %8.1f GB/s %6.1f %% of copy\n", kind,
                       hearth_dtype_name(type), (long long)l.n_rows, (long long)l.k, ms * 1e3,
                       gbps, 100.0 * gbps / copy_gbps);
                fprintf(csv, "%s,%s,%lld,%lld,%.3f,%.1f,%.3f\n", kind, hearth_dtype_name(type),
                        (long long)l.n_rows, (long long)l.k, ms * 1e3, gbps, gbps / copy_gbps);
            } else {
                printf("%-9s %-7s %6lld x %-6lld FAILED: %s\n", kind, hearth_dtype_name(type),
                       (long long)l.n_rows, (long long)l.k, hearth_last_error());
            }
        }
        cuda_matvec_q8_set(false);
        fflush(stdout);
        for (int c = 0; c < n_copies; c++)
            cuda_free(w[c]);
        cuda_free(x);
        cuda_free(y);
    }
    return 0;
}

static int bench_prefill(void *blas, FILE *csv)
{
    const hearth_dtype types[] = {HEARTH_DTYPE_F16, HEARTH_DTYPE_Q4_0, HEARTH_DTYPE_Q8_0,
                                  HEARTH_DTYPE_Q4_K, HEARTH_DTYPE_Q6_K, HEARTH_DTYPE_IQ2_XXS};
    const int64_t shapes[][2] = {{4096, 4096}, {14336, 4096}};
    const int n_tok = 512;
    size_t ws_bytes = (size_t)256 << 20;
    void *ws = NULL, *w = NULL;
    float *x = NULL, *y = NULL;
    TRY(cuda_alloc(&ws, ws_bytes));
    TRY(cuda_alloc((void **)&x, (size_t)n_tok * 14336 * 4));
    TRY(cuda_alloc((void **)&y, (size_t)n_tok * 14336 * 4));
    TRY(cuda_fill_f32(x, 0.25f, (int64_t)n_tok * 14336, NULL));
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        for (size_t s = 0; s < 2; s++) {
            struct cuda_wlayout l;
            if (!cuda_wlayout_init(&l, types[ti], shapes[s][0], shapes[s][1]))
                continue;
            TRY(cuda_alloc(&w, l.bytes));
            if (!fill_weight(types[ti], w, l.bytes))
                return -1;
            struct cuda_mm_out o = {&l, w, NULL, y, l.n_rows};
            for (int path = 0; path < 2; path++) {
                float t[REPS];
                for (int r = -1; r < REPS; r++) {
                    TRY(cuda_event_record(ev0, NULL));
                    if (path == 0)
                        TRY(cuda_matmul_mma(&o, x, l.k, n_tok, NULL));
                    else
                        TRY(cuda_matmul_blas(blas, &o, x, l.k, n_tok, ws, ws_bytes, NULL));
                    TRY(cuda_event_record(ev1, NULL));
                    float ms;
                    TRY(cuda_event_elapsed_ms(ev0, ev1, &ms));
                    if (r >= 0)
                        t[r] = ms;
                }
                double ms = (double)median(t, REPS);
                double tflops = 2.0 * (double)l.n_rows * (double)l.k * n_tok / (ms * 1e-3) / 1e12;
                printf("prefill %-7s %6lld x %-6lld x %d tok  %-5s %9.1f us %7.1f TFLOP/s\n",
                       hearth_dtype_name(types[ti]), (long long)l.n_rows, (long long)l.k, n_tok,
                       path ? "cublas" : "mma", ms * 1e3, tflops);
                fprintf(csv, "prefill_%s,%s,%lld,%lld,%.3f,%.2f,\n", path ? "cublas" : "mma",
                        hearth_dtype_name(types[ti]), (long long)l.n_rows, (long long)l.k,
                        ms * 1e3, tflops);
                fflush(stdout);
            }
            cuda_free(w);
            w = NULL;
        }
    }
    cuda_free(ws);
    cuda_free(x);
    cuda_free(y);
    return 0;
}

int main(int argc, char **argv)
{
    static const hearth_dtype all[] = {
        HEARTH_DTYPE_F32,  HEARTH_DTYPE_F16,  HEARTH_DTYPE_BF16, HEARTH_DTYPE_Q4_0,
        HEARTH_DTYPE_Q4_1, HEARTH_DTYPE_Q5_0, HEARTH_DTYPE_Q5_1, HEARTH_DTYPE_Q8_0,
        HEARTH_DTYPE_Q2_K, HEARTH_DTYPE_Q3_K, HEARTH_DTYPE_Q4_K, HEARTH_DTYPE_Q5_K,
        HEARTH_DTYPE_Q6_K, HEARTH_DTYPE_IQ4_NL, HEARTH_DTYPE_IQ4_XS, HEARTH_DTYPE_IQ2_XXS,
        HEARTH_DTYPE_IQ2_XS, HEARTH_DTYPE_IQ2_S, HEARTH_DTYPE_IQ3_XXS, HEARTH_DTYPE_IQ3_S,
        HEARTH_DTYPE_IQ1_S, HEARTH_DTYPE_IQ1_M};
    if (cuda_device_count() < 1) {
        printf("bench-cuda: no CUDA device\n");
        return 0;
    }
    int n_sm = 0;
    size_t l2 = 0;
    char name[256];
    void *blas = NULL;
    TRY(cuda_set_device(0));
    TRY(cuda_device_info(&n_sm, &l2, name, sizeof name));
    TRY(cuda_event_create(&ev0));
    TRY(cuda_event_create(&ev1));
    TRY(cuda_blas_create(&blas));
    const char *csv_path = getenv("BENCH_CSV");
    FILE *csv = fopen(csv_path ? csv_path : "/dev/null", "w");
    if (!csv)
        csv = stderr;
    printf("device: %s, %d SMs, L2 %zu MB\n", name, n_sm, l2 >> 20);
    double copy = copy_bandwidth();
    if (copy <= 0)
        return 1;
    printf("copy bandwidth (D2D 1 GiB, read+write, median of %d): %.1f GB/s\n", REPS, copy);
    fprintf(csv, "kind,type,n,k,us,gbps_or_tflops,frac_copy\ncopy,,,,,%.1f,1\n", copy);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        int want = argc < 2;
        for (int a = 1; a < argc; a++) {
            hearth_dtype t;
            if (quant_from_name(argv[a], &t) && t == all[i])
                want = 1;
        }
        if (want && bench_matvec(all[i], copy, l2, csv) != 0)
            return 1;
    }
    if (bench_prefill(blas, csv) != 0)
        return 1;
    if (csv != stderr)
        fclose(csv);
    cuda_blas_destroy(blas);
    cuda_event_destroy(ev0);
    cuda_event_destroy(ev1);
    return 0;
}

#else

int main(void)
{
    printf("bench-cuda: built without the CUDA backend (configure with -DHEARTH_CUDA=ON)\n");
    return 0;
}
#endif
