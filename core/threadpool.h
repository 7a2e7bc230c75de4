/*
 * threadpool: a persistent pool of worker threads running parallel-for loops.
 *
 * The calling thread takes part as thread 0; n_threads - 1 workers are created
 * once and live until threadpool_destroy. Between jobs a worker spins for a
 * short while (a decode step issues hundreds of small jobs per token, and a
 * futex wake-up costs more than most of them) and then sleeps on a condition
 * variable, so an idle pool costs no CPU. Work inside one job is handed out in
 * chunks of `grain` items from an atomic counter, which balances uneven chunks
 * and cores shared with other processes.
 *
 * Alternatives rejected: OpenMP (a compiler dependency and no control over the
 * spin/sleep policy); a thread per job (pthread_create costs ~20 us, more than
 * a whole small matmul).
 *
 * One pool runs one job at a time: threadpool_for must not be called from two
 * threads at once, nor from inside a job.
 */
#ifndef HEARTH_THREADPOOL_H
#define HEARTH_THREADPOOL_H

#include <stdint.h>

#include "hearth.h"

struct threadpool;

/*
 * The body of a parallel loop: processes items [begin, end). tid in
 * [0, n_threads) is the thread running it (for per-thread scratch); a thread
 * may get several chunks.
 */
typedef void (*threadpool_fn)(void *arg, int64_t begin, int64_t end, int tid);

/* n_threads <= 0 means threadpool_default_threads(). */
hearth_status threadpool_create(int n_threads, struct threadpool **out);
void threadpool_destroy(struct threadpool *tp);
int threadpool_n_threads(const struct threadpool *tp);

/*
 * Runs fn over [0, n) in chunks of at least grain items (grain <= 0: 1) and
 * returns when every item is done. Small loops (one chunk) run on the caller
 * without waking anyone.
 */
void threadpool_for(struct threadpool *tp, int64_t n, int64_t grain, threadpool_fn fn, void *arg);

/*
 * Number of physical cores (distinct thread-sibling sets in sysfs); the online
 * CPU count if sysfs cannot tell; at least 1.
 */
int threadpool_default_threads(void);

#endif
