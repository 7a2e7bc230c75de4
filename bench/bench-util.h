/*
 * bench-util: the wall clock, the sort, the argument parsing and the weight
 * types' classes the benchmarks here share (header-only: each bench-*.c is its
 * own executable).
 */
#ifndef HEARTH_BENCH_UTIL_H
#define HEARTH_BENCH_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "hearth.h"

/* Monotonic wall-clock seconds. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* qsort comparator of doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Positional argument i as a positive integer, def when absent; exits 2 naming who on junk. */
static inline long bench_arg_long(const char *who, int argc, char **argv, int i, long def)
{
    if (argc <= i)
        return def;
    char *end;
    long v = strtol(argv[i], &end, 10);
    if (*end || v <= 0) {
        fprintf(stderr, "%s: argument %d: '%s' is not a positive integer\n", who, i, argv[i]);
        exit(2);
    }
    return v;
}

/*
 * IQ1/IQ2/IQ3 lattice types (not IQ4_*): their grid lookups cost more when the
 * lanes of a warp index different entries, so kernel benches fill them with
 * random bytes rather than a pattern.
 */
static inline bool bench_is_grid_type(hearth_dtype t)
{
    return t == HEARTH_DTYPE_IQ2_XXS || t == HEARTH_DTYPE_IQ2_XS || t == HEARTH_DTYPE_IQ2_S ||
           t == HEARTH_DTYPE_IQ3_XXS || t == HEARTH_DTYPE_IQ3_S || t == HEARTH_DTYPE_IQ1_S ||
           t == HEARTH_DTYPE_IQ1_M;
}

#endif
