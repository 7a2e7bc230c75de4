/*
 * threadpool: persistent workers, spin-then-sleep, chunked parallel-for.
 *
 * Protocol. One 64-bit atomic `ctr` holds (generation << 32 | next item). A job
 * is published by writing its descriptor into slot[gen & 1] and then storing
 * ctr = (gen << 32 | 0). Any thread claims a chunk with a CAS on ctr that keeps
 * the generation, so a claim can only succeed while its job is current; the
 * descriptor it read is that job's, because slot[g & 1] is rewritten only for
 * job g + 2, which cannot be published before job g has completed, and job g
 * completes only when every item is done (`items_done`), which needs every
 * claimed chunk to finish. The caller claims chunks like any worker and then
 * waits only for items, never for workers: on a loaded machine a worker that
 * is not scheduled simply gets no work instead of delaying the job.
 *
 * Idle workers spin on ctr for SPIN_ITERS pauses, then sleep on `wake`
 * (n_sleeping counts them so the caller only takes the mutex when someone
 * sleeps; both sides use seq_cst so the check-then-sleep cannot miss a job).
 */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

#define SPIN_ITERS 4096
#define MAX_THREADS 512

struct tp_job {
    _Atomic(threadpool_fn) fn;
    _Atomic(void *) arg;
    atomic_llong n;
    atomic_llong grain;
};

struct tp_worker {
    struct threadpool *tp;
    pthread_t thread;
    int tid;
};

struct threadpool {
    int n_threads;
    int n_started; /* workers actually running (for cleanup on failure) */
    struct tp_worker *workers; /* [n_threads - 1] */

    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_int n_sleeping;
    atomic_bool stop;

    atomic_ullong ctr;        /* gen << 32 | next item */
    atomic_llong items_done;  /* items finished in the current job */
    struct tp_job slot[2];    /* descriptor of job g in slot[g & 1] */
    uint32_t gen;             /* caller-side copy of the current generation */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Claims and runs chunks of job generation g until none are left or g is over. */
static void run_chunks(struct threadpool *tp, uint32_t g, int tid)
{
    const struct tp_job *j = &tp->slot[g & 1u];
    for (;;) {
        unsigned long long v = atomic_load(&tp->ctr);
        if ((uint32_t)(v >> 32) != g)
            return;
        int64_t b = (int64_t)(v & 0xffffffffull);
        int64_t n = atomic_load_explicit(&j->n, memory_order_relaxed);
        int64_t grain = atomic_load_explicit(&j->grain, memory_order_relaxed);
        threadpool_fn fn = atomic_load_explicit(&j->fn, memory_order_relaxed);
        void *arg = atomic_load_explicit(&j->arg, memory_order_relaxed);
        if (b >= n)
            return;
        int64_t e = b + grain < n ? b + grain : n;
        if (!atomic_compare_exchange_weak(&tp->ctr, &v, ((unsigned long long)g << 32) |
                                                            (unsigned long long)e))
            continue;
        fn(arg, b, e, tid);
        atomic_fetch_add(&tp->items_done, (long long)(e - b));
    }
}

static void *worker_main(void *p)
{
    struct tp_worker *w = p;
    struct threadpool *tp = w->tp;
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = (uint32_t)(atomic_load(&tp->ctr) >> 32);
        for (int i = 0; g == seen && i < SPIN_ITERS; i++) {
            cpu_relax();
            g = (uint32_t)(atomic_load(&tp->ctr) >> 32);
        }
        if (g == seen) {
            pthread_mutex_lock(&tp->mu);
            atomic_fetch_add(&tp->n_sleeping, 1);
            while ((g = (uint32_t)(atomic_load(&tp->ctr) >> 32)) == seen &&
                   !atomic_load(&tp->stop))
                pthread_cond_wait(&tp->wake, &tp->mu);
            atomic_fetch_sub(&tp->n_sleeping, 1);
            pthread_mutex_unlock(&tp->mu);
        }
        if (atomic_load(&tp->stop))
            return NULL;
        seen = g;
        run_chunks(tp, g, w->tid);
    }
}

static void stop_workers(struct threadpool *tp)
{
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->stop, true);
    pthread_cond_broadcast(&tp->wake);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 0; i < tp->n_started; i++)
        pthread_join(tp->workers[i].thread, NULL);
    tp->n_started = 0;
}

hearth_status threadpool_create(int n_threads, struct threadpool **out)
{
    *out = NULL;
    if (n_threads <= 0)
        n_threads = threadpool_default_threads();
    if (n_threads > MAX_THREADS)
        return err_set(HEARTH_ERR_INVALID_ARG, "threadpool: %d threads requested, at most %d",
                       n_threads, MAX_THREADS);
    struct threadpool *tp = calloc(1, sizeof *tp);
    if (!tp)
        return err_set(HEARTH_ERR_NO_MEMORY, "threadpool: out of memory");
    tp->n_threads = n_threads;
    hearth_status st = HEARTH_OK;
    if (pthread_mutex_init(&tp->mu, NULL) != 0) {
        st = err_set(HEARTH_ERR_INTERNAL, "threadpool: pthread_mutex_init failed");
        goto fail_free;
    }
    if (pthread_cond_init(&tp->wake, NULL) != 0) {
        st = err_set(HEARTH_ERR_INTERNAL, "threadpool: pthread_cond_init failed");
        goto fail_mu;
    }
    atomic_init(&tp->n_sleeping, 0);
    atomic_init(&tp->stop, false);
    atomic_init(&tp->ctr, 0ull);
    atomic_init(&tp->items_done, 0);
    for (int s = 0; s < 2; s++) {
        atomic_init(&tp->slot[s].fn, NULL);
        atomic_init(&tp->slot[s].arg, NULL);
        atomic_init(&tp->slot[s].n, 0);
        atomic_init(&tp->slot[s].grain, 1);
    }
    if (n_threads > 1) {
        tp->workers = calloc((size_t)(n_threads - 1), sizeof *tp->workers);
        if (!tp->workers) {
            st = err_set(HEARTH_ERR_NO_MEMORY, "threadpool: out of memory");
            goto fail_wake;
        }
        for (int i = 0; i < n_threads - 1; i++) {
            tp->workers[i].tp = tp;
            tp->workers[i].tid = i + 1;
            if (pthread_create(&tp->workers[i].thread, NULL, worker_main, &tp->workers[i]) != 0) {
                st = err_set(HEARTH_ERR_INTERNAL, "threadpool: could not start thread %d of %d",
                             i + 1, n_threads);
                goto fail_threads;
            }
            tp->n_started++;
        }
    }
    *out = tp;
    return HEARTH_OK;

fail_threads:
    stop_workers(tp);
    free(tp->workers);
fail_wake:
    pthread_cond_destroy(&tp->wake);
fail_mu:
    pthread_mutex_destroy(&tp->mu);
fail_free:
    free(tp);
    return st;
}

void threadpool_destroy(struct threadpool *tp)
{
    if (!tp)
        return;
    stop_workers(tp);
    free(tp->workers);
    pthread_cond_destroy(&tp->wake);
    pthread_mutex_destroy(&tp->mu);
    free(tp);
}

int threadpool_n_threads(const struct threadpool *tp)
{
    return tp->n_threads;
}

void threadpool_for(struct threadpool *tp, int64_t n, int64_t grain, threadpool_fn fn, void *arg)
{
    if (n <= 0)
        return;
    if (grain <= 0)
        grain = 1;
    if (tp->n_threads == 1 || n <= grain || n > (int64_t)0x7fffffff) {
        fn(arg, 0, n, 0);
        return;
    }
    uint32_t g = ++tp->gen;
    if (g == 0) /* generation 0 means "no job yet" to a fresh worker */
        g = ++tp->gen;
    struct tp_job *j = &tp->slot[g & 1u];
    atomic_store_explicit(&j->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&j->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&j->n, n, memory_order_relaxed);
    atomic_store_explicit(&j->grain, grain, memory_order_relaxed);
    atomic_store(&tp->items_done, 0);
    atomic_store(&tp->ctr, (unsigned long long)g << 32); /* publishes the job */
    if (atomic_load(&tp->n_sleeping) > 0) {
        pthread_mutex_lock(&tp->mu);
        pthread_cond_broadcast(&tp->wake);
        pthread_mutex_unlock(&tp->mu);
    }

    run_chunks(tp, g, 0);

    for (int i = 0; atomic_load(&tp->items_done) != n; i++) {
        if (i < SPIN_ITERS)
            cpu_relax();
        else
            sched_yield(); /* the thread we wait for may need this core */
    }
}

/* Reads a small sysfs file into buf (NUL-terminated, trailing newline cut); false on failure. */
static bool read_small_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return n > 0;
}

int threadpool_default_threads(void)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1)
        online = 1;
    if (online > MAX_THREADS)
        online = MAX_THREADS;
    /*
     * A core is counted once, at the CPU whose number opens its sibling list
     * ("0,64" or "0-1"): hyperthreads of one core share the same list.
     */
    int n_cores = 0, n_read = 0;
    for (int cpu = 0; cpu < 4096 && n_read < online; cpu++) {
        char path[128], buf[256];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list",
                 cpu);
        if (!read_small_file(path, buf, sizeof buf)) {
            if (cpu == 0)
                return (int)online; /* no sysfs topology at all */
            continue;               /* offline or absent CPU */
        }
        n_read++;
        char *end = NULL;
        long first = strtol(buf, &end, 10);
        if (end == buf)
            return (int)online;
        if (first == cpu)
            n_cores++;
    }
    if (n_cores < 1 || n_cores > online)
        return (int)online;
    return n_cores;
}
