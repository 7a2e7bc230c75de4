/*
 * cpu/matmul: y = W x for a batch of tokens with quantized weights.
 *
 * The activations are quantized once per call into W's activation format
 * (quant_traits.vec_dot_type), then output rows are split across threads in
 * chunks of whole row tiles. Inside a chunk the loop order is
 *     token tile (MM_TT tokens) -> row tile (MM_RB rows) -> token
 * so a row tile (a few KB) stays in L1 while it is dotted with every token of
 * the tile, and the token tile's activations (MM_TT rows, ~40 KB for a 576-wide
 * Q8 row) stay in L2: each weight byte comes from memory once per MM_TT tokens
 * instead of once per token. The row tile x token tile product is one
 * dot_tile call, which unpacks each weight block once per few tokens (the
 * unpacking, not the memory, bounds prefill). For decode (one token) this
 * degenerates to a plain streaming matrix-vector product through dot_rows.
 *
 * The result of an output element depends only on its weight row and its
 * token's activation row (dot_rows and dot_tile equal dot bit for bit), never on the
 * split, so batch size and thread count do not change the bits.
 */
#include <string.h>

#include "cpu/ops.h"
#include "quant.h"

enum { MM_RB = 16, MM_TT = 64 };

size_t cpu_act_row_bytes(const struct cpu_matmul_kernels *k, int64_t K)
{
    if (!k->quantize)
        return (size_t)K * sizeof(float);
    uint64_t b = 0;
    if (!quant_row_bytes(k->act_type, (uint64_t)K, &b))
        return 0;
    return (size_t)b;
}

struct quant_job {
    const struct cpu_matmul_kernels *k;
    const float *x;
    int64_t K;
    uint8_t *act;
    size_t act_rb;
};

static void quant_rows(void *arg, int64_t b, int64_t e, int tid)
{
    (void)tid;
    const struct quant_job *j = arg;
    for (int64_t t = b; t < e; t++) {
        if (j->k->quantize)
            j->k->quantize(j->x + t * j->K, j->act + (size_t)t * j->act_rb, j->K);
        else
            memcpy(j->act + (size_t)t * j->act_rb, j->x + t * j->K, j->act_rb);
    }
}

void cpu_act_quantize(struct threadpool *tp, const struct cpu_matmul_kernels *k, const float *x,
                      int64_t K, int n_tok, void *act)
{
    struct quant_job j = {k, x, K, act, cpu_act_row_bytes(k, K)};
    /* A row takes ~1 us; waking the pool only pays for several rows per thread. */
    threadpool_for(tp, n_tok, 4, quant_rows, &j);
}

/*
 * Up to MM_MAXW weights that share one quantized input run as one job (q/k/v,
 * gate/up): their rows are numbered back to back, so one pool round trip
 * covers all of them. A chunk may straddle two weights; mm_rows splits it.
 */
enum { MM_MAXW = 3 };

struct mm_job {
    const struct cpu_matmul_kernels *k[MM_MAXW];
    const struct model_weight *w[MM_MAXW];
    float *y[MM_MAXW];
    int64_t y_stride[MM_MAXW];
    int64_t row0[MM_MAXW + 1]; /* first combined row of each weight; row0[n_w] = total */
    int n_w;
    const uint8_t *act;
    size_t act_rb;
    int n_tok;
};

static void mm_one(const struct mm_job *j, int wi, int64_t r0, int64_t r1)
{
    const struct cpu_matmul_kernels *k = j->k[wi];
    const uint8_t *wbase = j->w[wi]->data;
    const size_t rb = j->w[wi]->row_bytes;
    const int64_t K = j->w[wi]->n_in;
    float *y = j->y[wi];
    const int64_t ys = j->y_stride[wi];
    for (int t0 = 0; t0 < j->n_tok; t0 += MM_TT) {
        int t1 = t0 + MM_TT < j->n_tok ? t0 + MM_TT : j->n_tok;
        for (int64_t r = r0; r < r1; r += MM_RB) {
            int nr = (int)(r + MM_RB < r1 ? MM_RB : r1 - r);
            const uint8_t *wr = wbase + (size_t)r * rb;
            if (t1 - t0 == 1)
                k->dot_rows(K, nr, y + (int64_t)t0 * ys + r, wr, rb,
                            j->act + (size_t)t0 * j->act_rb);
            else
                k->dot_tile(K, nr, t1 - t0, y + (int64_t)t0 * ys + r, (size_t)ys, wr, rb,
                            j->act + (size_t)t0 * j->act_rb, j->act_rb);
        }
    }
}

static void mm_rows(void *arg, int64_t b, int64_t e, int tid)
{
    (void)tid;
    const struct mm_job *j = arg;
    for (int wi = 0; wi < j->n_w; wi++) {
        int64_t lo = b > j->row0[wi] ? b : j->row0[wi];
        int64_t hi = e < j->row0[wi + 1] ? e : j->row0[wi + 1];
        if (lo < hi)
            mm_one(j, wi, lo - j->row0[wi], hi - j->row0[wi]);
    }
}

void cpu_matmul_act_multi(struct threadpool *tp, int n_w, const struct cpu_matmul_kernels *const *k,
                          const struct model_weight *const *w, const void *act, int n_tok,
                          float *const *y, const int64_t *y_stride)
{
    struct mm_job j;
    memset(&j, 0, sizeof j);
    j.n_w = n_w;
    j.act = act;
    j.n_tok = n_tok;
    j.act_rb = cpu_act_row_bytes(k[0], w[0]->n_in);
    for (int i = 0; i < n_w; i++) {
        j.k[i] = k[i];
        j.w[i] = w[i];
        j.y[i] = y[i];
        j.y_stride[i] = y_stride[i];
        j.row0[i + 1] = j.row0[i] + w[i]->n_out;
    }
    int64_t total = j.row0[n_w];
    int nth = threadpool_n_threads(tp);
    /* ~4 chunks per thread for balance, each a whole number of row tiles. */
    int64_t grain = (total + (int64_t)nth * 4 - 1) / ((int64_t)nth * 4);
    grain = (grain + MM_RB - 1) / MM_RB * MM_RB;
    threadpool_for(tp, total, grain, mm_rows, &j);
}

void cpu_matmul_act(struct threadpool *tp, const struct cpu_matmul_kernels *k,
                    const struct model_weight *w, const void *act, int n_tok, float *y,
                    int64_t y_stride)
{
    cpu_matmul_act_multi(tp, 1, &k, &w, act, n_tok, &y, &y_stride);
}

void cpu_matmul(struct threadpool *tp, const struct cpu_matmul_kernels *k,
                const struct model_weight *w, const float *x, int n_tok, float *y,
                int64_t y_stride, void *act_buf)
{
    cpu_act_quantize(tp, k, x, w->n_in, n_tok, act_buf);
    cpu_matmul_act(tp, k, w, act_buf, n_tok, y, y_stride);
}
