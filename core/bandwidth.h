/*
 * bandwidth: measures the host's memory copy bandwidth, the yardstick that
 * `hearth bench` holds decode speed against (decode streams every weight once
 * per token, so its ceiling is the rate at which memory can be read).
 *
 * Method: two buffers of `bytes` each (far larger than any cache) are touched
 * first so page faults fall outside the timing, then src is copied to dst with
 * memcpy `reps` times; one repetition moves 2 * bytes (bytes read + bytes
 * written, the way STREAM's "copy" counts), and the median repetition is the
 * figure. With a thread pool the copy is split into contiguous slices, one
 * memcpy per slice, so each core streams its own range.
 *
 * What is not counted: a cached store first reads the destination line (write
 * allocate), so the bus carries about 3 * bytes per copy on most CPUs; the
 * figure is the useful traffic, which is also what a weight-streaming decode
 * reports. Alternatives rejected: a read-only sum kernel would be closer to
 * decode's pattern but depends on the compiler's vectorization; memcpy is what
 * every libc tunes.
 */
#ifndef HEARTH_BANDWIDTH_H
#define HEARTH_BANDWIDTH_H

#include <stddef.h>

#include "hearth.h"

struct threadpool;

struct bw_result {
    double gbps_median; /* 1e9 bytes (read + written) per second, median repetition */
    double gbps_min;
    double gbps_max;
    int reps;
    int n_threads;
};

/*
 * Copies a buffer of `bytes` (>= 1 MiB) reps (1..101) times; tp NULL runs on
 * the calling thread only, else across the pool's threads. Errors:
 * INVALID_ARG, NO_MEMORY for the two buffers.
 */
hearth_status bw_measure_copy(struct threadpool *tp, size_t bytes, int reps,
                              struct bw_result *out);

/* Wall-clock seconds from a monotonic clock (shared by the bench tools). */
double bw_now(void);

#endif
