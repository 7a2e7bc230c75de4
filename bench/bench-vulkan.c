/*
 * bench-vulkan: the Vulkan kernels' timings as ratios to the copy bandwidth
 * the same program measures (style point 14), in the rows and CSV columns of
 * bench-cuda, so bench/vk-cuda-ratio.sh can put each op's Vulkan/CUDA ratio
 * next to the goals (0.9 for decode, 0.7 for prefill).
 *
 *   1. copy bandwidth: vk_measure_copy_bandwidth (vulkan/bandwidth.c, the
 *      figure `hearth devices` shows);
 *   2. decode matvec (n_tok = 1) for every type at N x K = 4096x4096,
 *      14336x4096, 4096x14336, 128256x4096: GB/s of weight + x + y bytes and
 *      the fraction of copy bandwidth. Each timed batch rotates over enough
 *      weight copies (>= 256 MiB in all, more than any GPU's last-level
 *      cache) that the cache cannot serve them; timestamp queries around the
 *      batch, median of REPS batches;
 *   3. prefill at 512 tokens: TFLOP/s of the tiled kernel for a few types.
 * A weight larger than the device's largest buffer (caps.max_chunk) is
 * skipped with a note: the loader would refuse it the same way.
 * Weights are the byte 0x11 (small finite scales), except the lattice types
 * (IQ1_*, IQ2_*, IQ3_*), whose grid lookups depend on the indexes: random.
 *
 * Usage: bench-vulkan [-d INDEX|NAME] [--small] [--no-subgroup] [--shape NxK]... [--decode] [TYPE ...]
 *   -d          vulkanINDEX as `hearth devices` lists it, or a substring of
 *               its name (default: the best device, discrete first);
 *   --small     N / 16, prefill 32 tokens, 5 batches, no cache rotation: a
 *               smoke run for a CPU driver (lavapipe), where the full shapes
 *               take minutes; its figures are not GPU figures;
 *   --shape     replaces the four shapes (repeatable; K a multiple of 256);
 *   --decode    part 2 only;
 *   TYPE        limits part 2 to those types (part 3 runs those of its list).
 * BENCH_CSV=FILE writes kind,type,n,k,us,gbps_or_tflops,frac_copy rows.
 * Without the Vulkan backend, or without a device, it says so and exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"
#include "hearth.h"
#include "quant.h"

#ifdef HEARTH_WITH_VULKAN
#include "../vulkan/vk.h"

#define MAX_COPIES 16
#define TS_A 60 /* timestamp slots no op uses (bandwidth.c takes 62 and 63) */
#define TS_B 61

static int reps = 20;
static bool small;

#define TRY(call)                                                                    \
    do {                                                                             \
        hearth_status st__ = (call);                                                 \
        if (st__ != HEARTH_OK) {                                                     \
            fprintf(stderr, "bench-vulkan: %s: %s\n", #call, hearth_last_error());   \
            goto fail;                                                               \
        }                                                                            \
    } while (0)

/* The weight bytes: 0x11, or random (xorshift64) for a grid type. */
static hearth_status fill_weight(struct vk_ctx *ctx, hearth_dtype t, struct vk_buffer *b,
                                 uint64_t n)
{
    if (!bench_is_grid_type(t))
        return vk_buffer_fill(ctx, b, 0, n, 0x11111111u); /* n: a multiple of 4 */
    const uint64_t piece = (uint64_t)16 << 20;
    uint8_t *h = malloc(piece);
    if (!h)
        return HEARTH_ERR_NO_MEMORY;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    hearth_status st = HEARTH_OK;
    for (uint64_t done = 0; st == HEARTH_OK && done < n; done += piece) {
        uint64_t len = n - done < piece ? n - done : piece;
        for (uint64_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            h[i] = (uint8_t)(x >> 32);
        }
        st = vk_buffer_upload(ctx, b, done, h, len);
        if (st == HEARTH_OK)
            st = vk_submit(ctx); /* the staging ring holds a few pieces at most */
    }
    free(h);
    return st;
}

/*
 * Median seconds of one y = W x over reps batches, a batch being one matmul
 * per weight copy: timestamps where the queue has them, else the host clock
 * around submit-and-wait (which then includes the submission).
 */
static hearth_status time_matmul(struct vk_ctx *ctx, struct vk_matmul_args *a,
                                 const struct vk_buffer *w, int n_copies, double *sec)
{
    const bool ts = vk_ctx_caps(ctx)->timestamps;
    double t[64];
    hearth_status st = HEARTH_OK;
    for (int r = -1; r < reps && st == HEARTH_OK; r++) {
        double t0 = bench_now();
        if (ts && (st = vk_timestamp(ctx, TS_A)) != HEARTH_OK)
            break;
        for (int c = 0; c < n_copies && st == HEARTH_OK; c++) {
            a->w = (struct vk_view){&w[c], 0};
            st = vk_matmul(ctx, a);
        }
        if (st != HEARTH_OK || (ts && (st = vk_timestamp(ctx, TS_B)) != HEARTH_OK) ||
            (st = vk_submit(ctx)) != HEARTH_OK)
            break;
        double s = bench_now() - t0, ns = 0.0;
        if (ts && (st = vk_timestamp_elapsed_ns(ctx, TS_A, TS_B, &ns)) != HEARTH_OK)
            break;
        if (ts && ns > 0.0)
            s = ns * 1e-9;
        if (r >= 0) /* the first batch warms up (and compiles the pipeline) */
            t[r] = s / n_copies;
    }
    if (st == HEARTH_OK) {
        qsort(t, (size_t)reps, sizeof t[0], bench_cmp_double);
        *sec = t[reps / 2];
    }
    return st;
}

/*
 * One row of part 2 or 3: allocates the copies, x and y, times, prints.
 * n_tok 1 is the decode matvec (GB/s), more the prefill kernel (TFLOP/s).
 */
static int bench_one(struct vk_ctx *ctx, hearth_dtype type, uint32_t n, uint32_t k,
                     uint32_t n_tok, double copy_gbps, FILE *csv)
{
    const struct vk_caps *c = vk_ctx_caps(ctx);
    const char *kind = n_tok == 1 ? "matvec" : "prefill";
    uint64_t row_bytes = 0;
    if (!quant_row_bytes(type, k, &row_bytes))
        return 0;
    const uint64_t bytes = row_bytes * n;
    if (bytes > c->max_chunk) {
        printf("%-9s %-7s %6u x %-6u skipped: %.2f GB weight > the device's largest buffer "
               "(%.2f GB)\n", kind, hearth_dtype_name(type), n, k, (double)bytes / 1e9,
               (double)c->max_chunk / 1e9);
        return 0;
    }
    int n_copies = 1;
    if (!small && n_tok == 1) {
        n_copies = (int)((((uint64_t)256 << 20) + bytes - 1) / bytes);
        if (n_copies > MAX_COPIES)
            n_copies = MAX_COPIES;
        uint64_t room = c->device_local_bytes ? c->device_local_bytes / 4 : bytes;
        while (n_copies > 1 && (uint64_t)n_copies * bytes > room)
            n_copies--;
    }
    struct vk_buffer w[MAX_COPIES] = {0}, x = {0}, y = {0};
    int made = 0, rc = 0;
    for (; made < n_copies; made++) {
        TRY(vk_buffer_create(ctx, (bytes + 3) & ~(uint64_t)3, VK_BUF_DEVICE, &w[made]));
        TRY(fill_weight(ctx, type, &w[made], (bytes + 3) & ~(uint64_t)3));
    }
    TRY(vk_buffer_create(ctx, (uint64_t)n_tok * k * 4, VK_BUF_DEVICE, &x));
    TRY(vk_buffer_create(ctx, (uint64_t)n_tok * n * 4, VK_BUF_DEVICE, &y));
    TRY(vk_buffer_fill(ctx, &x, 0, (uint64_t)n_tok * k * 4, 0x3f000000u)); /* 0.5f */
    TRY(vk_submit(ctx));
    struct vk_matmul_args a = {.type = type, .row_bytes = row_bytes, .n_in = k, .n_out = n,
                               .n_tok = n_tok, .x = {&x, 0}, .x_stride = k, .y = {&y, 0},
                               .y_stride = n};
    double sec = 0.0;
    TRY(time_matmul(ctx, &a, w, n_copies, &sec));
    if (n_tok == 1) {
        double gbps = ((double)bytes + 4.0 * k + 4.0 * n) / sec / 1e9;
        printf("%-9s %-7s %6u x %-6u %9.1f us %8.1f GB/s %6.1f %% of copy\n", kind,
               hearth_dtype_name(type), n, k, sec * 1e6, gbps, 100.0 * gbps / copy_gbps);
        fprintf(csv, "%s,%s,%u,%u,%.3f,%.3f,%.4f\n", kind, hearth_dtype_name(type), n, k,
                sec * 1e6, gbps, gbps / copy_gbps);
    } else {
        double tflops = 2.0 * n * (double)k * n_tok / sec / 1e12;
        printf("prefill %-7s %6u x %-6u x %u tok %9.1f us %8.3f TFLOP/s\n",
               hearth_dtype_name(type), n, k, n_tok, sec * 1e6, tflops);
        fprintf(csv, "prefill_vk,%s,%u,%u,%.3f,%.6g,\n", hearth_dtype_name(type), n, k,
                sec * 1e6, tflops);
    }
    fflush(stdout);
    goto done;
fail:
    rc = -1;
    printf("%-9s %-7s %6u x %-6u FAILED: %s\n", kind, hearth_dtype_name(type), n, k,
           hearth_last_error());
done:
    vk_submit(ctx); /* nothing recorded may outlive the buffers */
    for (int i = 0; i < made; i++)
        vk_buffer_destroy(ctx, &w[i]);
    vk_buffer_destroy(ctx, &x);
    vk_buffer_destroy(ctx, &y);
    return rc;
}

static bool wanted(hearth_dtype t, int n_names, char **names)
{
    if (n_names == 0)
        return true;
    for (int i = 0; i < n_names; i++) {
        hearth_dtype u;
        if (quant_from_name(names[i], &u) && u == t)
            return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    static const hearth_dtype prefill[] = {HEARTH_DTYPE_F16, HEARTH_DTYPE_Q4_0,
                                           HEARTH_DTYPE_Q8_0, HEARTH_DTYPE_Q4_K,
                                           HEARTH_DTYPE_Q6_K, HEARTH_DTYPE_IQ2_XXS};
    uint32_t shapes[8][2] = {{4096, 4096}, {14336, 4096}, {4096, 14336}, {128256, 4096}};
    int n_shapes = 4, n_given = 0;
    struct vk_ctx_opts o = {.device_index = -1};
    bool subgroup = true, decode_only = false;
    char *names[64];
    int n_names = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-d") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end == '\0' && v >= 0)
                o.device_index = (int)v;
            else
                o.device_name = argv[i];
        } else if (!strcmp(argv[i], "--shape") && i + 1 < argc && n_given < 8) {
            unsigned n = 0, k = 0;
            if (sscanf(argv[++i], "%ux%u", &n, &k) != 2 || n == 0 || k == 0 || k % 256) {
                fprintf(stderr, "bench-vulkan: --shape %s: want NxK, K a multiple of 256\n",
                        argv[i]);
                return 2;
            }
            shapes[n_given][0] = n;
            shapes[n_given][1] = k;
            n_shapes = ++n_given;
        } else if (!strcmp(argv[i], "--decode")) {
            decode_only = true;
        } else if (!strcmp(argv[i], "--small")) {
            small = true;
        } else if (!strcmp(argv[i], "--no-subgroup")) {
            subgroup = false;
        } else if (argv[i][0] == '-' || n_names == 64) {
            fprintf(stderr, "usage: bench-vulkan [-d INDEX|NAME] [--small] [--no-subgroup] "
                            "[--shape NxK]... [--decode] [TYPE ...]\n");
            return 2;
        } else {
            hearth_dtype t;
            if (!quant_from_name(argv[i], &t)) {
                fprintf(stderr, "bench-vulkan: unknown type %s\n", argv[i]);
                return 2;
            }
            names[n_names++] = argv[i];
        }
    }
    if (small)
        reps = 5;
    /* the driver stays loaded until exit, so LeakSanitizer (CI runs this under it) can name
       what the driver keeps for the process's lifetime (vk.h) */
    vk_keep_driver_loaded();
    struct vk_ctx *ctx = NULL;
    hearth_status st = vk_ctx_create(&o, &ctx);
    if (st == HEARTH_ERR_NOT_FOUND) {
        printf("bench-vulkan: no Vulkan device: %s\n", hearth_last_error());
        return 0;
    }
    if (st != HEARTH_OK) {
        fprintf(stderr, "bench-vulkan: %s\n", hearth_last_error());
        return 1;
    }
    vk_ctx_set_use_subgroup(ctx, subgroup);
    const struct vk_caps *c = vk_ctx_caps(ctx);
    const char *csv_path = getenv("BENCH_CSV");
    FILE *csv = fopen(csv_path ? csv_path : "/dev/null", "w");
    if (!csv)
        csv = stderr;
    printf("device: %s, subgroup %u%s, 16-bit storage %s, int8 dot %s, coopmat %s, "
           "timestamps %s, largest buffer %.2f GB%s\n", c->name, c->subgroup_size,
           subgroup && c->subgroup_arith ? " (used)" : " (not used)",
           c->storage_16bit_on ? "on" : "off", c->int8_dot ? "yes" : "no",
           c->coopmat ? "yes" : "no", c->timestamps ? "yes" : "no (host clock)",
           (double)c->max_chunk / 1e9, small ? "; --small: shapes N/16, not GPU figures" : "");
    double copy = 0.0;
    int rc = 0;
    if (vk_measure_copy_bandwidth(ctx, &copy) != HEARTH_OK || copy <= 0.0) {
        fprintf(stderr, "bench-vulkan: %s\n", hearth_last_error());
        rc = 1;
        goto out;
    }
    printf("copy bandwidth (device copy, read+write, best of 5): %.1f GB/s\n", copy);
    fprintf(csv, "kind,type,n,k,us,gbps_or_tflops,frac_copy\ncopy,,,,,%.1f,1\n", copy);
    const uint32_t div = small && n_given == 0 ? 16 : 1;
    /* every type the kernels decode, in GGUF id order */
    for (int i = 0; i < HEARTH_DTYPE_COUNT; i++) {
        const hearth_dtype t = (hearth_dtype)i;
        if (!vk_matmul_supports(t) || !wanted(t, n_names, names))
            continue;
        for (int s = 0; s < n_shapes; s++)
            if (bench_one(ctx, t, shapes[s][0] / div, shapes[s][1], 1, copy, csv) != 0)
                rc = 1;
    }
    for (size_t i = 0; !decode_only && i < sizeof prefill / sizeof prefill[0]; i++) {
        if (!vk_matmul_supports(prefill[i]) || !wanted(prefill[i], n_names, names))
            continue;
        for (int s = 0; s < (n_shapes < 2 ? n_shapes : 2); s++)
            if (bench_one(ctx, prefill[i], shapes[s][0] / div, shapes[s][1], small ? 32 : 512,
                          copy, csv) != 0)
                rc = 1;
    }
out:
    if (csv != stderr)
        fclose(csv);
    vk_ctx_destroy(ctx);
    return rc;
}

#else

int main(void)
{
    printf("bench-vulkan: built without the Vulkan backend (configure with -DHEARTH_VULKAN=ON)\n");
    return 0;
}
#endif
