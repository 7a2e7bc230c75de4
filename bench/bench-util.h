/*
 * bench-util: the wall clock, the sort and the argument parsing the CPU
 * benchmarks here share (header-only: each bench-*.c is its own executable).
 */
#ifndef HEARTH_BENCH_UTIL_H
#define HEARTH_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
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

#endif
