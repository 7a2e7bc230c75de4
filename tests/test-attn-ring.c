/*
 * test-attn-ring: an f16 cache's ring-only (sliding-window) layer on the
 * grouped f16 kernel (cpu/attn-ring.h) against
 *  - a full f16 cache read by cpu_attn_head over each token's window, in
 *    position order: the same bits (memcmp), since the keys' order and every
 *    float operation are the same;
 *  - the route it replaced (cpu_kvq_exact_stage + cpu_kvq_attn_run, the
 *    compressed-cache kernel, whose chunked softmax sums in float): within
 *    a bound (below), and the rings both routes leave behind are the same
 *    bytes.
 * Gemma 3's shapes: head dim 256, 4 query heads over 1 KV head, window 512,
 * a ring of window + 64 slots; two sequences (groups) in every batch at
 * different positions, batches of 64 (the prefill split), odd sizes and
 * single-token decode steps, until both rings wrapped twice.
 *
 * The bound: both routes weight exact f16 rows by a softmax; they differ in
 * the order of float sums (the score's dot, the softmax's denominator, the
 * output's accumulation over <= 512 keys, the chunk merge's rescale), each
 * a relative error of at most ~n·2^-24 of the sum of magnitudes, so the
 * output moves by well under 512 · 2^-24 · max|V| ≈ 3e-5 · max|V|, plus
 * what score rounding (|scale·q·k| <= 64 here) does to the weights through
 * exp. TOL = 1e-4 · max|V| covers that with margin; the measured gap is
 * printed. A window one position off, or a stale ring row, moves the
 * output by more than the bound (checked below), so the bound is not
 * vacuous.
 */
#include <math.h>

#include "cpu/attn-kvq.h"
#include "cpu/attn-ring.h"
#include "f16.h"
#include "test.h"
#include "threadpool.h"

enum {
    HD = 256,
    NH = 4,
    NKV = 1,
    KV = NKV * HD,
    Q = NH * HD,
    WIN = 512,
    RING = WIN + 64,
    NSEQ = 2,
    MAX_B = 64,        /* tokens per sequence per batch */
    N_POS = 2 * RING + 100, /* positions of sequence 0 */
    SEQ1_LAG = 150,    /* sequence 1 runs this many positions behind */
};

static uint32_t rng_state = 12345u;

static float frand(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffffff) / (float)0x800000 - 1.0f;
}

struct ring_buf {
    uint16_t k[RING * KV], v[RING * KV];
    int32_t pos[RING];
};

static struct ring_buf new_ring[NSEQ], old_ring[NSEQ];
static uint16_t full_k[NSEQ][N_POS * KV], full_v[NSEQ][N_POS * KV];
static float bk[NSEQ * MAX_B * KV], bv[NSEQ * MAX_B * KV], bq[NSEQ * MAX_B * Q];
static float out_new[NSEQ * MAX_B * Q], out_old[NSEQ * MAX_B * Q], out_ref[NSEQ * MAX_B * Q];
static uint16_t xh_k[NSEQ * (RING + MAX_B) * KV], xh_v[NSEQ * (RING + MAX_B) * KV];
static float xf_k[NSEQ * (RING + MAX_B) * KV], xf_v[NSEQ * (RING + MAX_B) * KV];
static float scores[8 * 4 * WIN];

static struct cpu_kvq_ring ring_of(struct ring_buf *r)
{
    return (struct cpu_kvq_ring){.k = r->k, .v = r->v, .k_stride = KV, .v_stride = KV,
                                 .pos = r->pos, .w = RING, .span = WIN};
}

struct batch {
    int n[NSEQ];        /* tokens of each sequence (rows: sequence 0's first) */
    int64_t first[NSEQ]; /* position of each sequence's first token */
    int32_t pos[NSEQ * MAX_B], grp[NSEQ * MAX_B], tok[NSEQ * MAX_B];
    int n_tok;
};

/* Fills q, k, v of the batch and the full caches' rows of its positions. */
static void batch_fill(struct batch *b)
{
    b->n_tok = 0;
    for (int s = 0; s < NSEQ; s++)
        for (int i = 0; i < b->n[s]; i++, b->n_tok++) {
            const int t = b->n_tok;
            b->pos[t] = (int32_t)(b->first[s] + i);
            b->grp[t] = s;
            b->tok[t] = t;
            for (int d = 0; d < Q; d++)
                bq[t * Q + d] = 2.0f * frand();
            for (int d = 0; d < KV; d++) {
                bk[t * KV + d] = 2.0f * frand();
                bv[t * KV + d] = frand() + 0.25f * (float)(b->pos[t] % 7);
                full_k[s][(size_t)b->pos[t] * KV + d] = f32_to_f16(bk[t * KV + d]);
                full_v[s][(size_t)b->pos[t] * KV + d] = f32_to_f16(bv[t * KV + d]);
            }
        }
}

static void run_new(struct threadpool *tp, const struct cpu_attn_kernels *ak, const struct batch *b)
{
    struct cpu_ring_rows rows[NSEQ];
    size_t off = 0;
    for (int s = 0, t0 = 0; s < NSEQ; t0 += b->n[s], s++) {
        struct cpu_kvq_ring r = ring_of(&new_ring[s]);
        cpu_ring_stage_f16(&r, KV, b->first[s], b->n[s], b->tok + t0, bk, bv, KV, xh_k + off,
                           xh_v + off, &rows[s]);
        CHECK_INT_EQ(rows[s].x0, b->first[s] - WIN + 1 > 0 ? b->first[s] - WIN + 1 : 0);
        off += (size_t)(b->first[s] - rows[s].x0 + b->n[s]) * KV;
    }
    const struct cpu_ring_attn ra = {
        .ak = ak, .rows = rows, .grp = b->grp, .pos = b->pos, .q = bq, .q_stride = Q,
        .out = out_new, .out_stride = Q, .n_head = NH, .n_head_kv = NKV, .hd = HD,
        .window = WIN, .scale = 1.0f / 16.0f, .scores = scores,
        .scores_per = cpu_attn_scratch(NH / NKV, WIN)};
    cpu_ring_attn_run(tp, &ra, b->n_tok);
}

static void run_old(struct threadpool *tp, struct cpu_kvq_attn *kva, const struct batch *b)
{
    struct cpu_kvq_seq sq[NSEQ];
    struct cpu_kvq_exact ex[NSEQ];
    size_t off = 0;
    for (int s = 0, t0 = 0; s < NSEQ; t0 += b->n[s], s++) {
        struct cpu_kvq_ring r = ring_of(&old_ring[s]);
        sq[s] = (struct cpu_kvq_seq){.tok = b->tok + t0, .n = b->n[s]};
        cpu_kvq_exact_stage(KVQ_F16, KVQ_F16, NULL, NKV, HD, 2 * KV, 2 * KV, &sq[s], b->first[s],
                            bk, bv, KV, &r, xf_k + off, xf_v + off, &ex[s]);
        off += (size_t)ex[s].nx * KV;
    }
    const struct cpu_kvq_layer L = {
        .kt = KVQ_F16, .vt = KVQ_F16, .n_head = NH, .n_head_kv = NKV, .hd = HD, .k_row = 2 * KV,
        .v_row = 2 * KV, .scale = 1.0f / 16.0f, .window = WIN, .exact_window = RING,
        .exact = ex, .pos = b->pos, .q = bq, .q_stride = Q, .out = out_old, .out_stride = Q,
        .seq = sq, .n_seq = NSEQ};
    cpu_kvq_attn_run(kva, tp, &L);
}

/* cpu_attn_head over [lo, hi] of the full cache; win: the window it assumes. */
static void run_ref(const struct cpu_attn_kernels *ak, const struct batch *b, int win)
{
    for (int t = 0; t < b->n_tok; t++) {
        const int s = b->grp[t];
        const int64_t p = b->pos[t], lo = p - win + 1 > 0 ? p - win + 1 : 0;
        for (int h = 0; h < NH; h++)
            cpu_attn_head(ak, out_ref + t * Q + h * HD, bq + t * Q + h * HD,
                          full_k[s] + lo * KV, full_v[s] + lo * KV, KV, lo, p, HD,
                          1.0f / 16.0f, scores);
    }
}

/* The largest |a - b| over the batch's outputs. */
static double max_gap(const float *a, const float *b, int n)
{
    double g = 0.0;
    for (int i = 0; i < n; i++)
        g = fmax(g, fabs((double)a[i] - (double)b[i]));
    return g;
}

static void ring_route(enum cpu_isa isa, int n_threads)
{
    struct threadpool *tp = NULL;
    struct cpu_kvq_attn *kva = NULL;
    struct cpu_attn_kernels ak;
    cpu_attn_kernels_get(isa, &ak);
    REQUIRE(threadpool_create(n_threads, &tp) == HEARTH_OK);
    REQUIRE(cpu_kvq_attn_create(isa, n_threads, &kva) == HEARTH_OK);
    REQUIRE(cpu_kvq_attn_reserve(kva, NSEQ * MAX_B, NH, HD) == HEARTH_OK);
    for (int s = 0; s < NSEQ; s++) {
        for (int i = 0; i < RING; i++)
            new_ring[s].pos[i] = old_ring[s].pos[i] = -1;
    }
    /* batch sizes cycle through the prefill split, odd sizes and decode steps */
    static const int sizes[] = {64, 64, 64, 37, 1, 1, 1, 64, 5, 1, 64, 64, 63, 2, 64, 64};
    const double v_max = 1.0 + 0.25 * 6; /* |v| bound of batch_fill */
    int64_t next[NSEQ] = {0, 0};
    double worst = 0.0, off_min = INFINITY;
    int n_batches = 0, n_checked = 0;
    for (int it = 0; next[0] < N_POS; it++) {
        struct batch b;
        for (int s = 0; s < NSEQ; s++) {
            const int64_t end = s == 0 ? N_POS : next[0] - SEQ1_LAG;
            int64_t want = sizes[(it + 3 * s) % (int)(sizeof sizes / sizeof sizes[0])];
            if (want > end - next[s])
                want = end - next[s] > 0 ? end - next[s] : 0;
            b.n[s] = (int)want;
            b.first[s] = next[s];
        }
        batch_fill(&b);
        run_new(tp, &ak, &b);
        run_old(tp, kva, &b);
        run_ref(&ak, &b, WIN);
        const int nf = b.n_tok * Q;
        CHECK_MSG(!memcmp(out_new, out_ref, (size_t)nf * sizeof(float)),
                  "batch %d (positions %lld.., %lld..): not cpu_attn_head's bits", it,
                  (long long)b.first[0], (long long)b.first[1]);
        const double g = max_gap(out_new, out_old, nf);
        CHECK_MSG(g <= 1e-4 * v_max, "batch %d: gap to the old route %g", it, g);
        worst = fmax(worst, g);
        for (int s = 0; s < NSEQ; s++) {
            CHECK(!memcmp(new_ring[s].pos, old_ring[s].pos, sizeof new_ring[s].pos));
            CHECK(!memcmp(new_ring[s].k, old_ring[s].k, sizeof new_ring[s].k));
            CHECK(!memcmp(new_ring[s].v, old_ring[s].v, sizeof new_ring[s].v));
            next[s] += b.n[s];
        }
        /* the bound is not vacuous: a window one position short is far outside it */
        if (b.first[0] >= WIN) {
            run_ref(&ak, &b, WIN - 1);
            const double off = max_gap(out_ref, out_new, nf);
            CHECK_MSG(off > 1e-4 * v_max, "batch %d: a 511-position window stays within the bound",
                      it);
            off_min = fmin(off_min, off);
            n_checked++;
        }
        n_batches++;
    }
    /* sequence 0 wrapped its ring twice, sequence 1 once and past a window more */
    CHECK(next[0] == N_POS && next[1] >= N_POS - SEQ1_LAG - MAX_B);
    CHECK(n_checked > 10);
    printf("  isa %d, %d threads: %d batches, largest gap to the old route %.3g (bound %.3g), "
           "smallest of a 511-position window %.3g\n",
           (int)isa, n_threads, n_batches, worst, 1e-4 * v_max, off_min);
    cpu_kvq_attn_destroy(kva);
    threadpool_destroy(tp);
}

TEST(ring_route_scalar)
{
    ring_route(CPU_ISA_SCALAR, 1);
}

TEST(ring_route_best)
{
    if (cpu_isa_best() < CPU_ISA_AVX2)
        TEST_SKIP("no AVX2 here");
    ring_route(cpu_isa_best(), 2);
}

/*
 * A ring slot that holds another position (left by a rewind) is staged as
 * zeros, never as the other position's row.
 */
TEST(ring_stage_stale_slot)
{
    static struct ring_buf r;
    for (int i = 0; i < RING; i++)
        r.pos[i] = -1;
    for (int d = 0; d < RING * KV; d++)
        r.k[d] = r.v[d] = f32_to_f16(1.0f);
    r.pos[10] = 10;
    r.pos[11] = 11 + RING; /* slot 11 holds a later position */
    struct cpu_kvq_ring ring = ring_of(&r);
    struct cpu_ring_rows rows;
    const int32_t tok[1] = {0};
    for (int d = 0; d < KV; d++)
        bk[d] = bv[d] = 2.0f;
    cpu_ring_stage_f16(&ring, KV, 12, 1, tok, bk, bv, KV, xh_k, xh_v, &rows);
    CHECK_INT_EQ(rows.x0, 0);
    CHECK(f16_to_f32(rows.k[10 * KV]) == 1.0f && f16_to_f32(rows.v[10 * KV + 5]) == 1.0f);
    CHECK(rows.k[11 * KV] == 0 && rows.v[11 * KV + KV - 1] == 0);
    CHECK(f16_to_f32(rows.k[12 * KV]) == 2.0f && r.pos[12] == 12);
    CHECK(f16_to_f32(r.v[12 * KV + 3]) == 2.0f);
}

TEST_MAIN(TEST_CASE(ring_route_scalar), TEST_CASE(ring_route_best),
          TEST_CASE(ring_stage_stale_slot))
