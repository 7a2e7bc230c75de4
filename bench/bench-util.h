/*
 * bench-util: the wall clock and the sort every CPU benchmark here uses
 * (header-only: each bench-*.c is its own executable).
 */
#ifndef HEARTH_BENCH_UTIL_H
#define HEARTH_BENCH_UTIL_H

#include <time.h>

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

#endif
