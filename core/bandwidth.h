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
 *
 * Device figures are measured once and cached in a small text file
 * (bw_cache_path: $HEARTH_CACHE_DIR/devices.txt, else
 * $XDG_CACHE_HOME/hearth/devices.txt, else ~/.cache/hearth/devices.txt), one
 * line per device: "name<TAB>mem GB/s<TAB>host-to-device GB/s<TAB>GFLOP/s
 * <TAB>attention GFLOP/s<TAB>op us<TAB>matvec rates<TAB>matmul rates
 * <TAB>description", after a "# hearth devices v3" header; the FLOP rate
 * (Q4_K's), attention rate, op latency, matvec and matmul rates are
 * flops.h's, the rates comma lists of TYPE:GB/s and
 * TYPE:GFLOP/s ("Q4_K:10.400,Q6_K:12.100"; "-" for none).
 * A v2 file
 * (no matvec rate or op latency) or v1 file (no FLOP rate either) is still
 * read, the missing figures 0 (not measured, so the planner keeps assuming
 * them), and the next store rewrites it as v3.
 * The key is name + description, so a different card in the same slot is
 * measured afresh. A file that does not parse is ignored as a whole with a
 * note (and rewritten by the next store), never trusted in part: a
 * half-written figure is worse than none. Writes go to a temporary file
 * renamed over the old one.
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
/* The median of v[0..n) (n >= 1); sorts v. */
double bw_median(double *v, int n);

struct hearth_device;

/* One cached device: 1e9 bytes/s and 1e9 FLOP/s figures, 0 where not measured. */
struct bw_entry {
    char name[32];
    char desc[256];
    double mem_gbps; /* copy bandwidth of its own memory */
    double h2d_gbps; /* host-to-device copy (0 for the host itself) */
    double gflops;   /* Q4_K matmul rate (flops_measure_device); 0 in a v1 file */
    double op_us;    /* microseconds per op (flops_measure_decode); 0 before v3 */
    double attn_gflops; /* ATTENTION op rate (flops_measure_attention); 0 before v3 */
    /* one-token matmul, weight bytes per type (flops_measure_decode); 0: not measured */
    double mv_gbps[HEARTH_DTYPE_COUNT];
    /* 512-token matmul per type, GFLOP/s (flops_measure_device); 0: not measured */
    double mm_gflops[HEARTH_DTYPE_COUNT];
};

/* The cache file's path (see above). INVALID_ARG when no directory is known or it is too long. */
hearth_status bw_cache_path(char *buf, size_t size);
/*
 * The entry for (name, desc): true and *out filled when present. A missing
 * file is no entry; an unreadable or malformed one is no entry with a note
 * (note may be NULL) naming the file, the line and what was expected.
 */
bool bw_cache_lookup(const char *name, const char *desc, struct bw_entry *out, char *note,
                     size_t note_size);
/*
 * Adds or replaces e's line (creating the directory), keeping the other
 * valid lines; a malformed file is replaced. IO errors name the path.
 */
hearth_status bw_cache_store(const struct bw_entry *e);
/*
 * Measures an open device's bandwidths (gflops is left 0: flops.h measures
 * that): its memory copy bandwidth (backend
 * measure_bandwidth; without one, bw_measure_copy for a host-memory device,
 * else timed device-side buffer copies; 0 when none of these is offered)
 * and, unless it computes on host memory, host-to-device bandwidth: the
 * median of 5 stream uploads of 64 MiB from its pinned host buffer type into
 * device memory. Takes about a second. name/desc come from its props.
 */
hearth_status bw_measure_device(struct hearth_device *dev, struct bw_entry *out);

#endif
