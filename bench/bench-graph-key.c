/*
 * bench-graph-key: host time of the CUDA-graph decode cache's key and lookup
 * (cuda/graph-cache.c) per op list, the work the CUDA backend adds before
 * each graph launch. Runs without CUDA: the graph calls are not made.
 *
 *   bench-graph-key [lists] [iterations]
 *
 * lists (default 64: an 8B model's 32 layers x attention and FFN) lists of a
 * decode step's attention block (norm, q/k/v matmul, attention, output
 * matmul, residual add), each on its own weights, all added to the table;
 * then each iteration keys and finds every list at a new position. Prints
 * the median of 5 runs in microseconds per list.
 */
#define cuda_graph_destroy bench_graph_destroy /* before graph-cache.c declares it */
#include "../cuda/graph-cache.c"

#include "bench-util.h"

void bench_graph_destroy(void *exec)
{
    (void)exec;
}

static struct hearth_buffer bufs[4]; /* only their addresses enter a key */

/* A tensor view as the scheduler makes them (backend_tensor_2d: the type's real row stride). */
static struct hearth_tensor ten(int b, size_t off, hearth_dtype t, int64_t ne0, int64_t rows)
{
    struct hearth_tensor r;
    memset(&r, 0, sizeof r);
    backend_tensor_2d(&r, &bufs[b], off, t, ne0, rows);
    return r;
}

/* Layer l's attention block at decode, Llama-3-8B's widths; weights at l's offsets. */
static void attn_block(struct hearth_op *ops, int l)
{
    const size_t wl = (size_t)l << 26;
    memset(ops, 0, 5 * sizeof *ops);
    for (int i = 0; i < 5; i++)
        ops[i].n_tok = 1;
    struct hearth_tensor x = ten(0, 0, HEARTH_DTYPE_F32, 4096, 1);
    struct hearth_tensor xn = ten(0, 16384, HEARTH_DTYPE_F32, 4096, 1);
    struct hearth_tensor q = ten(0, 32768, HEARTH_DTYPE_F32, 4096, 1);
    struct hearth_tensor att = ten(0, 49152, HEARTH_DTYPE_F32, 4096, 1);
    ops[0].kind = HEARTH_OP_RMSNORM;
    ops[0].u.rmsnorm = (struct hearth_op_rmsnorm){x, ten(1, wl, HEARTH_DTYPE_F32, 4096, 1), xn,
                                                  1e-5f};
    ops[1].kind = HEARTH_OP_MATMUL;
    struct hearth_op_matmul *m = &ops[1].u.matmul;
    m->n_w = 3;
    m->x = xn;
    for (int w = 0; w < 3; w++) {
        m->w[w] = ten(1, wl + (size_t)w * 9437184, HEARTH_DTYPE_Q4_K, 4096, w ? 1024 : 4096);
        m->y[w] = ten(0, 65536 + (size_t)w * 16384, HEARTH_DTYPE_F32, w ? 1024 : 4096, 1);
    }
    ops[2].kind = HEARTH_OP_ATTENTION;
    struct hearth_op_attention *a = &ops[2].u.attn;
    a->q = m->y[0], a->k = m->y[1], a->v = m->y[2], a->out = att;
    a->k_cache = ten(2, (size_t)l << 24, HEARTH_DTYPE_F16, 1024, 8192);
    a->v_cache = ten(3, (size_t)l << 24, HEARTH_DTYPE_F16, 1024, 8192);
    a->n_head = 32, a->n_head_kv = 8, a->head_dim = 128, a->n_rot = 128;
    a->rope_mode = HEARTH_ROPE_NORMAL, a->rope_base = 500000.0f, a->rope_freq_scale = 1.0f;
    a->norm_eps = 1e-5f, a->scale = 0.08838835f, a->layer = (uint32_t)l;
    ops[3].kind = HEARTH_OP_MATMUL;
    ops[3].u.matmul.n_w = 1;
    ops[3].u.matmul.x = att;
    ops[3].u.matmul.w[0] = ten(1, wl + 3 * 9437184, HEARTH_DTYPE_Q4_K, 4096, 4096);
    ops[3].u.matmul.y[0] = q;
    ops[4].kind = HEARTH_OP_ADD;
    ops[4].u.add.x = x, ops[4].u.add.y = q;
}

int main(int argc, char **argv)
{
    const int n_lists = (int)bench_arg_long("bench-graph-key", argc, argv, 1, 64);
    const long iters = bench_arg_long("bench-graph-key", argc, argv, 2, 5000);
    struct hearth_op *ops = malloc((size_t)n_lists * 5 * sizeof *ops);
    struct cuda_graph_cache c;
    memset(&c, 0, sizeof c);
    if (!ops || n_lists > CUDA_GRAPH_MAX_ENTRIES) {
        fprintf(stderr, "bench-graph-key: %d lists: out of memory or past the table's %d\n",
                n_lists, CUDA_GRAPH_MAX_ENTRIES);
        return 1;
    }
    for (int l = 0; l < n_lists; l++) {
        attn_block(&ops[5 * l], l);
        if (!cuda_graph_key(&c, &ops[5 * l], 5) || !cuda_graph_add(&c)) {
            fprintf(stderr, "bench-graph-key: list %d not keyed\n", l);
            return 1;
        }
    }
    double runs[5];
    long misses = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = bench_now();
        for (long it = 0; it < iters; it++)
            for (int l = 0; l < n_lists; l++) {
                ops[5 * l + 2].u.attn.pos0 = it;
                misses += !cuda_graph_key(&c, &ops[5 * l], 5) || !cuda_graph_find(&c);
            }
        runs[r] = (bench_now() - t0) / ((double)iters * n_lists);
    }
    qsort(runs, 5, sizeof runs[0], bench_cmp_double);
    printf("graph key + lookup: %.3f us per 5-op list (median of 5 runs of %ld x %d lists; "
           "key %zu bytes, %d entries, %ld misses)\n",
           runs[2] * 1e6, iters, n_lists, c.len, c.n, misses);
    cuda_graph_cache_clear(&c);
    free(ops);
    return misses != 0;
}
