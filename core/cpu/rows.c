/* cpu/rows: per-token work of a batch over the thread pool (see rows.h). */
#include "cpu/rows.h"

#include "threadpool.h"

struct rows_job {
    cpu_row_fn fn;
    void *arg;
};

static void rows_items(void *arg, int64_t b, int64_t e, int tid)
{
    (void)tid;
    const struct rows_job *j = arg;
    for (int64_t t = b; t < e; t++)
        j->fn(j->arg, (int)t);
}

void cpu_rows_for(struct threadpool *tp, int n, int64_t row_elems, cpu_row_fn fn, void *arg)
{
    if (n <= 0)
        return;
    int64_t grain = row_elems > 0 ? (CPU_ROWS_MIN_ELEMS + row_elems - 1) / row_elems : n;
    struct rows_job j = {fn, arg};
    threadpool_for(tp, n, grain, rows_items, &j);
}
