/*
 * bench-dot: single-thread and two-thread matrix-vector speed of the CPU dot
 * kernels, as weight bytes streamed per second against memcpy bandwidth.
 *
 * For each weight type and shape (rows x cols, cols = ne0), y = W x is run with
 * the kernel set of cpu_isa_best() (HEARTH_CPU_ISA=scalar|avx2 caps it):
 * x is quantized once, then dot_rows walks the rows (one thread, or two
 * pthreads splitting the rows in halves). Weights are random block bytes with
 * sane f16 scales (the kernels' speed does not depend on the values, and the
 * reference K-quant quantizers are too slow to fill 100 MB here). Several
 * copies of the matrix are cycled so at least 128 MB is touched between
 * reuses, which defeats the last-level cache and measures DRAM. memcpy
 * bandwidth counts bytes read plus bytes written of a 256 MB copy. "1T cpu" is
 * the one-thread GB/s per second of that thread's CPU time, which a shared,
 * loaded machine does not distort by time slicing (memory contention still does).
 *
 * --tile measures prefill instead: dot_tile as matmul.c calls it (row tiles of
 * 16 rows against 64 tokens) on a 256 x 4096 matrix that stays in cache, in
 * GFLOP/s (2 * rows * cols * tokens) per second of thread CPU time, beside the
 * same products done token by token with dot (what DOT_TILE_LOOP does).
 * --shape ROWSxCOLS (after --tile) replaces 256 x 4096, e.g. 14336x4096 for an
 * FFN matrix that no longer stays in cache, or 1024x640 for Gemma 3 270M's short
 * rows (COLS a multiple of the type's block: 32, or 256 for the K-quants).
 *
 * Usage: bench-dot [--tile [--shape RxC]] [seconds per measurement, default 0.3] [types...]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/dot.h"
#include "f16.h"
#include "quant.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds of the calling thread: immune to time slicing on a shared machine. */
static double thread_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double memcpy_gbps(double min_s)
{
    size_t bytes = (size_t)256 << 20;
    uint8_t *a = malloc(bytes), *b = malloc(bytes);
    if (!a || !b) {
        free(a);
        free(b);
        return 0.0;
    }
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    double best = 0.0, t_end = now() + min_s * 3;
    int iters = 0;
    while (now() < t_end || iters < 3) {
        double t0 = now();
        memcpy(iters & 1 ? a : b, iters & 1 ? b : a, bytes);
        double g = 2.0 * (double)bytes / (now() - t0) * 1e-9;
        if (g > best)
            best = g;
        iters++;
    }
    free(a);
    free(b);
    return best;
}

/* Random block bytes; every f16 in a scale position set to a small value. */
static void fill_weights(hearth_dtype t, uint8_t *w, size_t bytes)
{
    const struct quant_traits *tr = quant_get(t);
    if (tr->blck == 1) {
        size_t n = bytes / tr->block_bytes;
        for (size_t i = 0; i < n; i++) {
            float v = (float)((double)(rng() >> 11) * 0x1.0p-53 - 0.5) * 0.1f;
            if (t == HEARTH_DTYPE_F32) {
                memcpy(w + 4 * i, &v, 4);
            } else {
                uint16_t h = t == HEARTH_DTYPE_F16 ? f32_to_f16(v) : f32_to_bf16(v);
                memcpy(w + 2 * i, &h, 2);
            }
        }
        return;
    }
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        uint64_t r = rng();
        memcpy(w + i, &r, 8);
    }
    int offs[2] = {0, 2}, nf = 1;
    switch (t) {
    case HEARTH_DTYPE_Q4_1: case HEARTH_DTYPE_Q5_1: case HEARTH_DTYPE_Q4_K:
    case HEARTH_DTYPE_Q5_K: nf = 2; break;
    case HEARTH_DTYPE_Q2_K: offs[0] = 80; offs[1] = 82; nf = 2; break;
    case HEARTH_DTYPE_Q3_K: offs[0] = 108; break;
    case HEARTH_DTYPE_Q6_K: offs[0] = 208; break;
    case HEARTH_DTYPE_IQ1_M: nf = 0; break; /* d: top nibbles of the u16 words at 48 */
    default: break;
    }
    uint16_t h = f32_to_f16(0.001f);
    for (size_t b = 0; b + tr->block_bytes <= bytes; b += tr->block_bytes)
        for (int f = 0; f < nf; f++)
            memcpy(w + b + offs[f], &h, 2);
    if (t == HEARTH_DTYPE_IQ1_M)
        for (size_t b = 0; b + tr->block_bytes <= bytes; b += tr->block_bytes)
            for (int k = 0; k < 4; k++) {
                uint8_t *p = w + b + 49 + 2 * k;
                *p = (uint8_t)((*p & 15) | (((h >> (4 * k)) & 15) << 4));
            }
}

struct job {
    const struct cpu_matmul_kernels *k;
    int64_t cols;
    int rows;
    const uint8_t *w;
    size_t row_bytes;
    const void *act;
    float *y;
};

static void run_job(const struct job *j)
{
    /* chunks of 16 rows keep the output writes and the loop overhead negligible */
    for (int r = 0; r < j->rows; r += 16) {
        int nr = j->rows - r < 16 ? j->rows - r : 16;
        j->k->dot_rows(j->cols, nr, j->y + r, j->w + (size_t)r * j->row_bytes, j->row_bytes,
                       j->act);
    }
}

static void *thread_main(void *arg)
{
    run_job(arg);
    return NULL;
}

/*
 * GB/s of weight bytes for one matvec over each copy in turn, with nthreads (1
 * or 2); *cpu_gbps (1 thread only) the same per second of this thread's CPU time.
 */
static double measure(const struct job *base, uint8_t **copies, int ncopies, int nthreads,
                      double min_s, double *cpu_gbps)
{
    size_t mat_bytes = (size_t)base->rows * base->row_bytes;
    double t_total = 0.0, c_total = 0.0;
    long iters = 0;
    while (t_total < min_s || iters < 2) {
        struct job jobs[2];
        const uint8_t *w = copies[iters % ncopies];
        double t0 = now(), c0 = thread_cpu_now();
        if (nthreads == 1) {
            jobs[0] = *base;
            jobs[0].w = w;
            run_job(&jobs[0]);
        } else {
            int half = base->rows / 2;
            for (int t = 0; t < 2; t++) {
                jobs[t] = *base;
                jobs[t].rows = t ? base->rows - half : half;
                jobs[t].w = w + (t ? (size_t)half * base->row_bytes : 0);
                jobs[t].y = base->y + (t ? half : 0);
            }
            pthread_t th;
            if (pthread_create(&th, NULL, thread_main, &jobs[1]) != 0)
                return 0.0;
            run_job(&jobs[0]);
            pthread_join(th, NULL);
        }
        double dt = now() - t0, dc = thread_cpu_now() - c0;
        if (iters > 0 || ncopies == 1) { /* the first pass over a copy only warms the TLB */
            t_total += dt;
            c_total += dc;
        }
        iters++;
    }
    long counted = iters - (ncopies == 1 ? 0 : 1);
    if (cpu_gbps)
        *cpu_gbps = (double)mat_bytes * (double)counted / c_total * 1e-9;
    return (double)mat_bytes * (double)counted / t_total * 1e-9;
}

enum { TILE_TOK = 64, TILE_RB = 16 };
static int tile_rows = 256;     /* a multiple of TILE_RB */
static int64_t tile_cols = 4096; /* a multiple of the type's block (K-quants: 256) */

/* GFLOP/s per CPU second of dot_tile (loop = 0) or of dot per (row, token) (loop = 1). */
static double tile_gflops(const struct cpu_matmul_kernels *k, const uint8_t *w, size_t rb,
                          const uint8_t *act, size_t ab, float *y, int loop, double min_s)
{
    double c_total = 0.0;
    long iters = 0;
    while (c_total < min_s || iters < 2) {
        double c0 = thread_cpu_now();
        for (int r = 0; r < tile_rows; r += TILE_RB) {
            if (!loop) {
                k->dot_tile(tile_cols, TILE_RB, TILE_TOK, y + r, tile_rows, w + (size_t)r * rb,
                            rb, act, ab);
                continue;
            }
            for (int t = 0; t < TILE_TOK; t++)
                for (int i = 0; i < TILE_RB; i++)
                    k->dot(tile_cols, y + (size_t)t * tile_rows + r + i,
                           w + (size_t)(r + i) * rb, act + (size_t)t * ab);
        }
        c_total += thread_cpu_now() - c0;
        iters++;
    }
    return 2.0 * tile_rows * (double)tile_cols * TILE_TOK * (double)iters / c_total * 1e-9;
}

/* The --tile mode for one type; returns nonzero on failure. */
static int bench_tile(hearth_dtype t, const struct cpu_matmul_kernels *k, double min_s)
{
    uint64_t rb = 0, ab = (uint64_t)tile_cols * 4;
    if (!quant_row_bytes(t, (uint64_t)tile_cols, &rb) ||
        (k->quantize && !quant_row_bytes(k->act_type, (uint64_t)tile_cols, &ab))) {
        fprintf(stderr, "%s: %lld columns are not whole blocks\n", quant_get(t)->name,
                (long long)tile_cols);
        return 1;
    }
    uint8_t *w = malloc((size_t)rb * tile_rows), *act = malloc((size_t)ab * TILE_TOK);
    float *x = malloc((size_t)tile_cols * sizeof(float));
    float *y = malloc((size_t)tile_rows * TILE_TOK * sizeof(float));
    if (!w || !act || !x || !y) {
        free(w);
        free(act);
        free(x);
        free(y);
        return 1;
    }
    fill_weights(t, w, (size_t)rb * tile_rows);
    for (int tok = 0; tok < TILE_TOK; tok++) {
        for (int i = 0; i < tile_cols; i++)
            x[i] = (float)((double)(rng() >> 11) * 0x1.0p-53 - 0.5);
        if (k->quantize)
            k->quantize(x, act + (size_t)tok * ab, tile_cols);
        else
            memcpy(act + (size_t)tok * ab, x, (size_t)ab);
    }
    double gt = tile_gflops(k, w, (size_t)rb, act, (size_t)ab, y, 0, min_s);
    double gl = tile_gflops(k, w, (size_t)rb, act, (size_t)ab, y, 1, min_s);
    printf("%-7s %5dx%-6lld %4d %10.2f %10.2f %6.2f\n", quant_get(t)->name, tile_rows,
           (long long)tile_cols, TILE_TOK, gt, gl, gt / gl);
    fflush(stdout);
    free(w);
    free(act);
    free(x);
    free(y);
    return 0;
}

int main(int argc, char **argv)
{
    double min_s = 0.3;
    int first_type = 1, tile = 0;
    if (argc > 1 && strcmp(argv[1], "--tile") == 0) {
        tile = 1;
        first_type = 2;
        if (argc > 3 && strcmp(argv[2], "--shape") == 0) {
            char *end;
            long r = strtol(argv[3], &end, 10);
            long long c = *end == 'x' ? strtoll(end + 1, &end, 10) : 0;
            if (*end != '\0' || r <= 0 || r % TILE_RB != 0 || r > 1 << 20 || c <= 0 ||
                c % 32 != 0 || c > 1 << 20) {
                fprintf(stderr, "--shape wants ROWSxCOLS, ROWS a multiple of %d, COLS of 32\n",
                        TILE_RB);
                return 1;
            }
            tile_rows = (int)r;
            tile_cols = c;
            first_type = 4;
        }
    }
    if (argc > first_type) {
        char *end;
        double v = strtod(argv[first_type], &end);
        if (*end == '\0' && v > 0.0) {
            min_s = v;
            first_type++;
        }
    }
    static const hearth_dtype types[] = {
        HEARTH_DTYPE_F32,  HEARTH_DTYPE_F16,  HEARTH_DTYPE_BF16, HEARTH_DTYPE_Q4_0,
        HEARTH_DTYPE_Q4_1, HEARTH_DTYPE_Q5_0, HEARTH_DTYPE_Q5_1, HEARTH_DTYPE_Q8_0,
        HEARTH_DTYPE_IQ4_NL, HEARTH_DTYPE_Q2_K, HEARTH_DTYPE_Q3_K, HEARTH_DTYPE_Q4_K,
        HEARTH_DTYPE_Q5_K, HEARTH_DTYPE_Q6_K, HEARTH_DTYPE_IQ4_XS,
        HEARTH_DTYPE_IQ2_XXS, HEARTH_DTYPE_IQ2_XS, HEARTH_DTYPE_IQ2_S, HEARTH_DTYPE_IQ3_XXS,
        HEARTH_DTYPE_IQ3_S, HEARTH_DTYPE_IQ1_S, HEARTH_DTYPE_IQ1_M,
    };
    static const int64_t shapes[2][2] = {{4096, 4096}, {4096, 14336}};
    enum cpu_isa isa = cpu_isa_best();
    if (tile)
        printf("isa %s, dot_tile vs dot loop, GFLOP/s per CPU second (1 thread)\n"
               "%-7s %-12s %4s %10s %10s %6s\n",
               cpu_isa_name(isa), "type", "rows x cols", "tok", "tile", "dot loop", "ratio");
    double mc = tile ? 0.0 : memcpy_gbps(min_s);
    if (!tile) {
        printf("isa %s, memcpy %.2f GB/s (read + written, 1 thread)\n", cpu_isa_name(isa), mc);
        printf("%-7s %-12s %8s %9s %6s %9s %6s %9s\n", "type", "rows x cols", "MB", "1T GB/s",
               "ratio", "2T GB/s", "ratio", "1T cpu");
    }
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        hearth_dtype t = types[ti];
        const struct quant_traits *tr = quant_get(t);
        if (argc > first_type) {
            int wanted = 0;
            for (int a = first_type; a < argc; a++)
                wanted |= strcmp(argv[a], tr->name) == 0;
            if (!wanted)
                continue;
        }
        struct cpu_matmul_kernels k;
        if (cpu_matmul_kernels_get(t, isa, &k) != HEARTH_OK) {
            fprintf(stderr, "%s: %s\n", tr->name, hearth_last_error());
            return 1;
        }
        if (tile) {
            if (bench_tile(t, &k, min_s) != 0)
                return 1;
            continue;
        }
        for (int si = 0; si < 2; si++) {
            int rows = (int)shapes[si][0];
            int64_t cols = shapes[si][1];
            uint64_t rb = 0, ab = (uint64_t)cols * 4;
            if (!quant_row_bytes(t, (uint64_t)cols, &rb) ||
                (k.quantize && !quant_row_bytes(k.act_type, (uint64_t)cols, &ab)))
                return 1;
            size_t mat = (size_t)rows * rb;
            int ncopies = (int)(((size_t)128 << 20) / mat) + 1;
            uint8_t *copies[64];
            if (ncopies > 64)
                ncopies = 64;
            float *x = malloc((size_t)cols * sizeof(float));
            float *y = malloc((size_t)rows * sizeof(float));
            uint8_t *act = malloc((size_t)ab);
            if (!x || !y || !act)
                return 1;
            for (int c = 0; c < ncopies; c++) {
                copies[c] = malloc(mat);
                if (!copies[c])
                    return 1;
                fill_weights(t, copies[c], mat);
            }
            for (int64_t i = 0; i < cols; i++)
                x[i] = (float)((double)(rng() >> 11) * 0x1.0p-53 - 0.5);
            if (k.quantize)
                k.quantize(x, act, cols);
            else
                memcpy(act, x, (size_t)cols * sizeof(float));
            struct job base = {&k, cols, rows, NULL, (size_t)rb, act, y};
            double g1c = 0.0;
            double g1 = measure(&base, copies, ncopies, 1, min_s, &g1c);
            double g2 = measure(&base, copies, ncopies, 2, min_s, NULL);
            char shape[32];
            snprintf(shape, sizeof shape, "%dx%lld", rows, (long long)cols);
            printf("%-7s %-12s %8.1f %9.2f %6.2f %9.2f %6.2f %9.2f\n", tr->name, shape,
                   (double)mat / 1e6, g1, g1 / mc, g2, g2 / mc, g1c);
            fflush(stdout);
            for (int c = 0; c < ncopies; c++)
                free(copies[c]);
            free(x);
            free(y);
            free(act);
        }
    }
    return 0;
}
