/*
 * test-kvq-group: the grouped AVX2 kernels of the batched compressed-cache
 * attention (attn-kvq-group-avx2.c) against the per-head path they replace.
 *
 * The per-head path runs cpu_kvq__dot_avx2 and cpu_kvq__axpy_avx2 once per
 * (query head, position); the grouped kernels must give the same bits
 * (memcmp): first the two kernels alone against those calls on random rows
 * (with row pointers scattered as an exact window makes them), then whole
 * cpu_kvq_attn_run calls with the grouped path and with
 * cpu_kvq__attn_per_head over random encoded caches for several head dims,
 * group sizes, cache types, token ranges (chunk boundaries crossed, sliding
 * windows) and exact windows. A float reference of the attention keeps the
 * runs honest: equal outputs that were both wrong would fail there.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/attn-kvq.h"
#include "cpu/dot.h"
#include "kv-quant.h"
#include "test.h"
#include "threadpool.h"

enum { MAX_HD = 256, MAX_G = 8, MAX_N = 300, HK = 2, NP = 600, NT = 24 };

static void fill(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)test_rng_gauss();
}

/* The kernels alone: nq heads against n scattered rows, against the per-row calls. */
static int kernels_case(int hd, int nq, int n)
{
    static float q[MAX_G * MAX_HD], pool[2 * MAX_N * MAX_HD], w[MAX_G * MAX_N];
    static float sc[MAX_G * MAX_N], acc[MAX_G * (MAX_HD + 2)], ref[MAX_HD];
    const float *rows[MAX_N];
    fill(q, (size_t)nq * (size_t)hd);
    fill(pool, (size_t)2 * MAX_N * (size_t)hd);
    fill(w, (size_t)nq * (size_t)n);
    for (int j = 0; j < n; j++) /* any row of the pool, repeats allowed, as a window's rows */
        rows[j] = pool + (size_t)(test_rng_u64() % (2 * MAX_N)) * (size_t)hd;
    const float scale = 0.125f;
    cpu_kvq__group_dots_avx2(q, nq, hd, rows, n, scale, sc, n);
    const size_t ld = (size_t)hd + 2;
    cpu_kvq__group_axpys_avx2(acc, ld, nq, hd, rows, n, w, n);
    int bad = 0;
    for (int r = 0; r < nq; r++) {
        for (int j = 0; j < n; j++) {
            float s = cpu_kvq__dot_avx2(q + (size_t)r * (size_t)hd, rows[j], hd) * scale;
            bad += memcmp(&s, &sc[r * n + j], sizeof s) != 0;
        }
        memset(ref, 0, sizeof ref);
        for (int j = 0; j < n; j++)
            cpu_kvq__axpy_avx2(ref, w[r * n + j], rows[j], hd);
        bad += memcmp(ref, acc + (size_t)r * ld, sizeof(float) * (size_t)hd) != 0;
    }
    return bad;
}

TEST(group_kernels)
{
    if (!cpu_isa_supported(CPU_ISA_AVX2))
        TEST_SKIP("this CPU (or OS) has no AVX2/FMA/F16C");
    test_rng_seed(21);
    static const int hds[] = {8, 24, 64, 72, 128, 256}, nqs[] = {1, 2, 3, 4, 5, 8};
    static const int ns[] = {1, 7, 8, 9, 100, MAX_N};
    int bad = 0, cases = 0;
    for (size_t a = 0; a < sizeof hds / sizeof hds[0]; a++)
        for (size_t b = 0; b < sizeof nqs / sizeof nqs[0]; b++)
            for (size_t c = 0; c < sizeof ns / sizeof ns[0]; c++, cases++)
                bad += kernels_case(hds[a], nqs[b], ns[c]) != 0;
    CHECK_MSG(bad == 0, "%d of %d kernel cases differ from the per-row kernels", bad, cases);
}

/* One random encoded cache of NP positions and HK KV heads, with exact rows for every position. */
struct cache {
    enum kvq_type kt, vt;
    int hd;
    struct kvq_rot rot;
    size_t kr, vr;
    uint8_t *kc, *vc;
    float *kx, *vx; /* [NP][HK hd] */
    float *sink;    /* [HK hd] */
};

static bool cache_make(struct cache *c, enum kvq_type kt, enum kvq_type vt, int hd)
{
    memset(c, 0, sizeof *c);
    c->kt = kt;
    c->vt = vt;
    c->hd = hd;
    if (kvq_is_rotated(kt) || kvq_is_rotated(vt))
        CHECK_OK(kvq_rot_init(&c->rot, hd, 9, 1));
    size_t kb = kvq_head_bytes(kt, hd), vb = kvq_head_bytes(vt, hd), kvd = (size_t)HK * hd;
    c->kr = HK * kb;
    c->vr = HK * vb;
    c->kc = malloc(NP * c->kr);
    c->vc = malloc(NP * c->vr);
    c->kx = malloc(sizeof(float) * NP * kvd);
    c->vx = malloc(sizeof(float) * NP * kvd);
    c->sink = malloc(sizeof(float) * kvd);
    if (!c->kc || !c->vc || !c->kx || !c->vx || !c->sink)
        return false;
    fill(c->kx, NP * kvd);
    fill(c->vx, NP * kvd);
    fill(c->sink, kvd);
    for (int p = 0; p < NP; p++)
        for (int h = 0; h < HK; h++) {
            const float *k = c->kx + (size_t)p * kvd + (size_t)h * hd;
            const float *v = c->vx + (size_t)p * kvd + (size_t)h * hd;
            kvq_encode(kt, &c->rot, hd, k, c->kc + p * c->kr + h * kb);
            kvq_encode(vt, &c->rot, hd, v, c->vc + p * c->vr + h * vb);
        }
    return true;
}

static void cache_free(struct cache *c)
{
    free(c->kc);
    free(c->vc);
    free(c->kx);
    free(c->vx);
    free(c->sink);
}

/* A batch: NT tokens in two groups reading the same cache, positions, window and exact rows. */
struct batch {
    int32_t pos[NT], tok[NT];
    uint32_t window, exact_window;
    struct cpu_kvq_exact ex[2];
    struct cpu_kvq_seq seq[2];
};

/*
 * Case kind: 0 a prefill from 0, 1 a late batch across the 256 and 512
 * chunk boundaries, 2 decode-like tokens with a sliding window, 3 the late
 * batch with an exact window of 40 rows, 4 the decode-like tokens reading
 * only exact rows (a window wider than the batch).
 */
static void batch_make(struct batch *b, const struct cache *c, int kind)
{
    memset(b, 0, sizeof *b);
    const int first = kind == 0 ? 0 : kind == 2 || kind == 4 ? NP - NT : 240;
    for (int t = 0; t < NT; t++) {
        /* the late batch skips positions so that its tokens span both boundaries */
        b->pos[t] = kind == 1 || kind == 3 ? first + 15 * t : first + t;
        b->tok[t] = NT - 1 - t; /* batch rows in any order */
    }
    b->window = kind == 2 ? 100 : 0;
    b->exact_window = kind == 3 ? 40 : kind == 4 ? 64 : 0;
    const size_t kvd = (size_t)HK * (size_t)c->hd;
    for (int s = 0; s < 2; s++) {
        /* group s holds the batch rows tok[s·NT/2 ..]; its exact rows cover [x0, its last pos] */
        const int32_t *tk = b->tok + s * (NT / 2);
        int64_t hi = b->pos[s * (NT / 2) + NT / 2 - 1];
        int64_t x0 = b->pos[s * (NT / 2)] - (int64_t)b->exact_window + 1;
        x0 = x0 < 0 ? 0 : x0;
        b->ex[s] = (struct cpu_kvq_exact){c->kx + (size_t)x0 * kvd, c->vx + (size_t)x0 * kvd, x0,
                                          hi - x0 + 1};
        b->seq[s] = (struct cpu_kvq_seq){c->kc, c->vc, tk, NT / 2, s == 0 ? c->sink : NULL};
    }
    /* tok[] lists batch rows; pos[] is indexed by batch row */
    int32_t by_row[NT];
    for (int t = 0; t < NT; t++)
        by_row[b->tok[t]] = b->pos[t];
    memcpy(b->pos, by_row, sizeof by_row);
}

static void attn_run(bool grouped, const struct cache *c, const struct batch *b, int G,
                     const float *q, float *out)
{
    const int H = HK * G, hd = c->hd;
    struct cpu_kvq_layer L = {.kt = c->kt,
                              .vt = c->vt,
                              .rot = &c->rot,
                              .n_head = H,
                              .n_head_kv = HK,
                              .hd = hd,
                              .k_row = c->kr,
                              .v_row = c->vr,
                              .scale = 1.0f / sqrtf((float)hd),
                              .window = b->window,
                              .exact_window = b->exact_window,
                              .exact = b->ex,
                              .pos = b->pos,
                              .q = q,
                              .q_stride = (int64_t)H * hd,
                              .out = out,
                              .out_stride = (int64_t)H * hd,
                              .seq = b->seq,
                              .n_seq = 2};
    struct threadpool *tp = NULL;
    struct cpu_kvq_attn *a = NULL;
    CHECK_OK(threadpool_create(2, &tp));
    CHECK_OK(cpu_kvq_attn_create(CPU_ISA_AVX2, 2, &a));
    if (tp && a) {
        if (!grouped)
            cpu_kvq__attn_per_head(a);
        CHECK_OK(cpu_kvq_attn_reserve(a, NT, H, hd));
        cpu_kvq_attn_run(a, tp, &L);
    }
    cpu_kvq_attn_destroy(a);
    threadpool_destroy(tp);
}

static void exact_unrot(enum kvq_type t, const struct cache *c, const float *x, float *y)
{
    if (kvq_is_rotated(t))
        kvq_rot_inverse(&c->rot, x, y);
    else
        memcpy(y, x, sizeof(float) * (size_t)c->hd);
}

/*
 * Worst |out - ref| of batch row r, head h against float attention over the
 * rows the kernel reads (exact ones as given, the rest decoded and unrotated).
 */
static double ref_err(const struct cache *c, const struct batch *b, int G, const float *q,
                      const float *out, int r, int h)
{
    const int hd = c->hd, H = HK * G, hk = h / G, s = r >= NT / 2 ? 0 : 1;
    const size_t kvd = (size_t)HK * (size_t)hd;
    const int64_t p = b->pos[r], lo = b->window && p >= b->window ? p - b->window + 1 : 0;
    static double sc[NP];
    static float k[MAX_HD], v[MAX_HD];
    double acc[MAX_HD] = {0}, mx = -INFINITY, sum = 0.0;
    for (int pass = 0; pass < 2; pass++)
        for (int64_t j = lo; j <= p; j++) {
            bool x = b->exact_window && j > p - (int64_t)b->exact_window && j >= b->ex[s].x0 &&
                     j < b->ex[s].x0 + b->ex[s].nx;
            size_t o = (size_t)j * kvd + (size_t)hk * hd;
            if (j == 0 && b->seq[s].k_sink && !x) {
                memcpy(k, b->seq[s].k_sink + (size_t)hk * hd, sizeof(float) * (size_t)hd);
            } else if (x) { /* an exact row is in the kernel's domain */
                exact_unrot(c->kt, c, c->kx + o, k);
            } else {
                kvq_decode(c->kt, &c->rot, hd,
                           c->kc + (size_t)j * c->kr + (size_t)hk * kvq_head_bytes(c->kt, hd), k);
            }
            if (x)
                exact_unrot(c->vt, c, c->vx + o, v);
            else
                kvq_decode(c->vt, &c->rot, hd,
                           c->vc + (size_t)j * c->vr + (size_t)hk * kvq_head_bytes(c->vt, hd), v);
            if (pass == 0) {
                double d = 0.0;
                for (int i = 0; i < hd; i++)
                    d += (double)q[(size_t)r * H * hd + (size_t)h * hd + i] * (double)k[i];
                sc[j] = d * (double)(1.0f / sqrtf((float)hd));
                mx = sc[j] > mx ? sc[j] : mx;
            } else {
                double e = exp(sc[j] - mx);
                sum += e;
                for (int i = 0; i < hd; i++)
                    acc[i] += e * (double)v[i];
            }
        }
    double err = 0.0;
    for (int i = 0; i < hd; i++) {
        double d = fabs((double)out[(size_t)r * H * hd + (size_t)h * hd + i] - acc[i] / sum);
        err = d > err ? d : err;
    }
    return err;
}

/* Grouped and per-head runs of one cache, group size and batch kind; returns 1 if they differ. */
static int run_case(const struct cache *c, int G, int kind, double *worst)
{
    const size_t n = (size_t)NT * HK * (size_t)G * (size_t)c->hd;
    float *q = malloc(sizeof(float) * n), *o1 = malloc(sizeof(float) * n),
          *o2 = malloc(sizeof(float) * n);
    int bad = 1;
    if (q && o1 && o2) {
        struct batch b;
        batch_make(&b, c, kind);
        fill(q, n);
        memset(o1, 0xff, sizeof(float) * n);
        memset(o2, 0, sizeof(float) * n);
        attn_run(true, c, &b, G, q, o1);
        attn_run(false, c, &b, G, q, o2);
        bad = memcmp(o1, o2, sizeof(float) * n) != 0;
        for (int i = 0; i < 4; i++) { /* a few (row, head) against the reference */
            double e = ref_err(c, &b, G, q, o1, (int)(test_rng_u64() % NT),
                               (int)(test_rng_u64() % (uint64_t)(HK * G)));
            *worst = e > *worst || e != e ? e : *worst;
        }
    }
    free(q);
    free(o1);
    free(o2);
    return bad;
}

TEST(grouped_equals_per_head)
{
    if (!cpu_isa_supported(CPU_ISA_AVX2))
        TEST_SKIP("this CPU (or OS) has no AVX2/FMA/F16C");
    test_rng_seed(22);
    static const enum kvq_type types[][2] = {
        {KVQ_ROT4, KVQ_ROT4}, {KVQ_Q8_0, KVQ_Q4_0}, {KVQ_ROT3, KVQ_Q8_0}, {KVQ_F16, KVQ_F16}};
    /* f16 at 72 takes the 8-dim tail, at 20 the per-head path (hd % 8 != 0) */
    static const int hds[] = {64, 128, 256, 72, 20}, Gs[] = {1, 3, 4, 8};
    int bad = 0, cases = 0;
    double worst = 0.0;
    for (size_t a = 0; a < sizeof hds / sizeof hds[0]; a++)
        for (size_t ty = 0; ty < sizeof types / sizeof types[0]; ty++) {
            if (hds[a] % 32 && types[ty][0] != KVQ_F16)
                continue;
            struct cache c;
            REQUIRE(cache_make(&c, types[ty][0], types[ty][1], hds[a]));
            for (size_t g = 0; g < sizeof Gs / sizeof Gs[0]; g++)
                for (int kind = 0; kind < 5; kind++, cases++)
                    bad += run_case(&c, Gs[g], kind, &worst);
            cache_free(&c);
        }
    CHECK_MSG(bad == 0, "%d of %d runs differ between the grouped and per-head paths", bad, cases);
    CHECK_MSG(worst < 1e-5, "attention off its float reference by %g", worst);
}

TEST_MAIN(TEST_CASE(group_kernels), TEST_CASE(grouped_equals_per_head))
