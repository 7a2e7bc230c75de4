/*
 * bandwidth: copy-bandwidth measurement (see bandwidth.h for the method).
 * Slices are cache-line aligned so no two threads write the same line.
 */
#include "bandwidth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "threadpool.h"

#define BW_SLICE_ALIGN 4096u

double bw_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct copy_job {
    uint8_t *dst;
    const uint8_t *src;
    size_t bytes;
    size_t slice; /* bytes per item */
};

static void copy_items(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    const struct copy_job *j = arg;
    size_t off = (size_t)begin * j->slice;
    size_t lim = (size_t)end * j->slice;
    if (lim > j->bytes)
        lim = j->bytes;
    memcpy(j->dst + off, j->src + off, lim - off);
}

static int cmp_double(const void *a, const void *b)
{
    double x, y;
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    return x < y ? -1 : x > y ? 1 : 0;
}

hearth_status bw_measure_copy(struct threadpool *tp, size_t bytes, int reps,
                              struct bw_result *out)
{
    memset(out, 0, sizeof *out);
    if (bytes < (1u << 20) || reps < 1 || reps > 101)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "bandwidth: %zu bytes x %d repetitions, expected >= 1 MiB and 1..101",
                       bytes, reps);
    uint8_t *src = aligned_alloc(BW_SLICE_ALIGN, (bytes + BW_SLICE_ALIGN - 1) / BW_SLICE_ALIGN *
                                                     BW_SLICE_ALIGN);
    uint8_t *dst = aligned_alloc(BW_SLICE_ALIGN, (bytes + BW_SLICE_ALIGN - 1) / BW_SLICE_ALIGN *
                                                     BW_SLICE_ALIGN);
    double *gbps = malloc((size_t)reps * sizeof *gbps);
    if (!src || !dst || !gbps) {
        free(src);
        free(dst);
        free(gbps);
        return err_set(HEARTH_ERR_NO_MEMORY, "bandwidth: out of memory for 2 x %zu bytes", bytes);
    }
    /* fault every page in before timing; distinct bytes so nothing is deduplicated */
    for (size_t i = 0; i < bytes; i++)
        src[i] = (uint8_t)(i * 131u + 7u);
    memset(dst, 1, bytes);

    int n_threads = tp ? threadpool_n_threads(tp) : 1;
    /* a few slices per thread balance a core taken by another process */
    size_t n_items = (size_t)n_threads * 4;
    size_t slice = (bytes / n_items + BW_SLICE_ALIGN - 1) / BW_SLICE_ALIGN * BW_SLICE_ALIGN;
    struct copy_job job = {dst, src, bytes, slice};
    int64_t items = (int64_t)((bytes + slice - 1) / slice);
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        double t0 = bw_now();
        if (tp)
            threadpool_for(tp, items, 1, copy_items, &job);
        else
            copy_items(&job, 0, items, 0);
        double dt = bw_now() - t0;
        if (r >= 0)
            gbps[r] = 2.0 * (double)bytes / (dt > 1e-9 ? dt : 1e-9) * 1e-9;
    }
    /* keep the copy observable */
    volatile uint8_t sink = dst[bytes / 2];
    (void)sink;
    qsort(gbps, (size_t)reps, sizeof *gbps, cmp_double);
    out->gbps_median = reps % 2 ? gbps[reps / 2] : 0.5 * (gbps[reps / 2 - 1] + gbps[reps / 2]);
    out->gbps_min = gbps[0];
    out->gbps_max = gbps[reps - 1];
    out->reps = reps;
    out->n_threads = n_threads;
    free(src);
    free(dst);
    free(gbps);
    return HEARTH_OK;
}
