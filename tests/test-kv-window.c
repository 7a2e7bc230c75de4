/*
 * test-kv-window: the exact recent window of a compressed KV cache
 * (forward_params.kv_window, kv-cache.h's f16 ring,
 * cpu/attn-kvq.h struct cpu_kvq_exact).
 *
 *  - the batched kernel with exact rows against a double-precision softmax
 *    attention that uses the exact rows for positions j > p - W (and the
 *    sink for position 0) and the decoded rows elsewhere: relative error
 *    < 1e-5 for mixed type pairs, W in {1, 5, 40}, ranges across the
 *    256-position chunk boundary, both ISAs; and the same output is far
 *    (> 1e-3) from the all-decoded reference, so the rows were really used;
 *  - the kernel's arithmetic is unchanged by the window: W = 0 with exact
 *    arrays present gives the bits of no window at all, and W > 0 whose
 *    exact rows equal the decoded ones gives the same bits again, also for
 *    windows in {1, 3, 5, 40, 255} where the tile skips decoding the rows
 *    every token reads exactly while earlier tokens still read decoded rows;
 *  - the staging's F16C conversion gives f16_to_f32's bits for every half a
 *    ring can hold (lengths hitting each loop tail, no write past the end),
 *    and cpu_kvq_exact_stage under HEARTH_CPU_ISA=scalar and avx2 stages the
 *    same rows and leaves the same ring (stale tags included);
 *  - SmolLM2 end to end: one batched forward_eval equals a different batch
 *    split followed by token-by-token decode bit for bit, rot4 with W in
 *    {1, 5, 64} (the splits cross the window) and K rot3 / V q8_0 with W = 5;
 *    W = 1 changes nothing but position t itself, yet the logits differ
 *    from W = 0; two sequences decoding together (forward_eval_multi)
 *    equal each alone;
 *  - (the window's bytes and the per-layer rule: test-kv-window-swa.c);
 *  - through the backend interface (backend.h ATTENTION step 5): the
 *    scheduler on one CPU backend device gives forward.c's logits bit for
 *    bit with the same window (rot4/rot4 and q8_0/rot4, W in {5, 64}:
 *    prefill in batches of 16, decode steps, a rewind, more tokens; Gemma 3
 *    with rot4/q8_0, W 5 and a shorter script), and for two sequences with
 *    interleaved rows and a cleared, refilled sequence (sched_eval_multi
 *    against forward_eval_multi);
 *  - a device without the window: sched_create fails with UNSUPPORTED
 *    naming it (a CPU device whose ops table lacks supports_kv_window), and
 *    the engine says "--kv-window" and the device (Vulkan, while it lacks
 *    the window; skipped otherwise).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-registry.h"
#include "backend.h"
#include "cpu/attn-kvq.h"
#include "cpu/dot.h"
#include "cpu/forward.h"
#include "engine.h"
#include "err.h"
#include "f16.h"
#include "kv-cache.h"
#include "kv-quant.h"
#include "model.h"
#include "plan.h"
#include "scheduler.h"
#include "test.h"
#include "threadpool.h"
#include "tokenizer.h"

enum { N_TOK = 130, N_CTX = 144 };

static struct model *g_model;
static int32_t g_toks[N_TOK + 100];

static void release_shared(void)
{
    model_free(g_model);
}

/* SmolLM2 and the first N_TOK + 100 tokens of Genesis, loaded once. */
static struct model *model_and_tokens(void)
{
    if (g_model)
        return g_model;
    const char *path = test_model_path(TEST_SMOLLM2);
    if (!path)
        return NULL;
    FILE *f = fopen(test_data_path("kjv-genesis.txt"), "rb");
    CHECK_MSG(f != NULL, "cannot read tests/data/kjv-genesis.txt");
    if (!f)
        return NULL;
    char *text = malloc(1 << 14);
    size_t len = text ? fread(text, 1, (1 << 14) - 1, f) : 0;
    fclose(f);
    if (!text)
        return NULL;
    text[len] = '\0';
    struct model *m = NULL;
    struct tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    CHECK_OK(model_load(path, &m));
    if (m)
        CHECK_OK(tok_load(m->gguf, &tok));
    if (tok)
        CHECK_OK(tok_encode(tok, text, len, true, false, &ids, &n_ids));
    CHECK(n_ids >= N_TOK + 100);
    if (ids && n_ids >= N_TOK + 100) {
        memcpy(g_toks, ids, sizeof g_toks);
        g_model = m;
        atexit(release_shared);
        m = NULL;
    }
    free(ids);
    tok_free(tok);
    model_free(m);
    free(text);
    return g_model;
}

/* ---- the kernel on synthetic rows ------------------------------------------------ */

enum { NP = 300, HK = 2, G = 2, H = HK * G, HD = 64, NT = 6, KVD = HK * HD };

/* Softmax attention in double of one head: row j's key kr(j), value vr(j) ([HD] each). */
static void ref_attention(const float *q, const float *const *kr, const float *const *vr,
                          int64_t lo, int64_t hi, float scale, double *out)
{
    double mx = -INFINITY, sum = 0.0, s[NP];
    for (int64_t j = lo; j <= hi; j++) {
        double d = 0.0;
        for (int i = 0; i < HD; i++)
            d += (double)q[i] * (double)kr[j][i];
        s[j - lo] = d * (double)scale;
        mx = s[j - lo] > mx ? s[j - lo] : mx;
    }
    for (int i = 0; i < HD; i++)
        out[i] = 0.0;
    for (int64_t j = lo; j <= hi; j++) {
        double w = exp(s[j - lo] - mx);
        sum += w;
        for (int i = 0; i < HD; i++)
            out[i] += w * (double)vr[j][i];
    }
    for (int i = 0; i < HD; i++)
        out[i] /= sum;
}

/* One cache of NP positions: encoded rows, and per head the decoded and exact rows. */
struct syn {
    enum kvq_type kt, vt;
    struct kvq_rot rot;
    size_t kr, vr;       /* bytes per cache row */
    uint8_t *kc, *vc;    /* [NP][kr], [NP][vr] encoded */
    float *kd, *vd;      /* [NP][KVD] decoded, unrotated */
    float *kx, *vx;      /* [NP][KVD] exact rows in the kernel's domain (f16-rounded) */
    float *kxu, *vxu;    /* [NP][KVD] the same rows unrotated (the reference's) */
    float *kxd, *vxd;    /* [NP][KVD] decoded rows in the kernel's domain */
    float sink[KVD];     /* exact key of position 0, unrotated */
};

static void syn_free(struct syn *y)
{
    free(y->kc);
    free(y->vc);
    free(y->kd);
    free(y->vd);
    free(y->kx);
    free(y->vx);
    free(y->kxu);
    free(y->vxu);
    free(y->kxd);
    free(y->vxd);
}

/* x ([HD]) -> domain of t, f16-rounded into dom, and back unrotated into unrot. */
static void exact_of(enum kvq_type t, const struct kvq_rot *rot, const float *x, float *dom,
                     float *unrot)
{
    float tmp[HD];
    if (kvq_is_rotated(t))
        kvq_rot_forward(rot, x, tmp);
    else
        memcpy(tmp, x, sizeof tmp);
    for (int i = 0; i < HD; i++)
        dom[i] = f16_to_f32(f32_to_f16(tmp[i]));
    if (kvq_is_rotated(t))
        kvq_rot_inverse(rot, dom, unrot);
    else
        memcpy(unrot, dom, sizeof tmp);
}

static void dec_of(enum kvq_type t, const struct kvq_rot *rot, const uint8_t *src, float *unrot,
                   float *dom)
{
    kvq_decode(t, rot, HD, src, unrot);
    if (kvq_is_rotated(t))
        kvq_decode_rotated(t, rot, src, dom);
    else
        memcpy(dom, unrot, sizeof(float) * HD);
}

static bool syn_make(struct syn *y, enum kvq_type kt, enum kvq_type vt, uint64_t seed)
{
    memset(y, 0, sizeof *y);
    y->kt = kt;
    y->vt = vt;
    CHECK_OK(kvq_rot_init(&y->rot, HD, 5, 2));
    size_t kb = kvq_head_bytes(kt, HD), vb = kvq_head_bytes(vt, HD);
    y->kr = HK * kb;
    y->vr = HK * vb;
    const size_t nf = (size_t)NP * KVD;
    y->kc = malloc(NP * y->kr);
    y->vc = malloc(NP * y->vr);
    float **fs[] = {&y->kd, &y->vd, &y->kx, &y->vx, &y->kxu, &y->vxu, &y->kxd, &y->vxd};
    bool ok = y->kc && y->vc;
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
        *fs[i] = malloc(nf * sizeof(float));
        ok = ok && *fs[i];
    }
    if (!ok)
        return false;
    test_rng_seed(seed);
    float x[HD];
    for (int p = 0; p < NP; p++) {
        for (int h = 0; h < HK; h++) {
            const size_t o = (size_t)p * KVD + (size_t)h * HD;
            for (int i = 0; i < HD; i++)
                x[i] = (float)test_rng_gauss() * (i == 3 ? 6.0f : 1.0f);
            if (p == 0)
                memcpy(y->sink + h * HD, x, sizeof x);
            kvq_encode(kt, &y->rot, HD, x, y->kc + p * y->kr + h * kb);
            dec_of(kt, &y->rot, y->kc + p * y->kr + h * kb, y->kd + o, y->kxd + o);
            exact_of(kt, &y->rot, x, y->kx + o, y->kxu + o);
            for (int i = 0; i < HD; i++)
                x[i] = (float)test_rng_gauss();
            kvq_encode(vt, &y->rot, HD, x, y->vc + p * y->vr + h * vb);
            dec_of(vt, &y->rot, y->vc + p * y->vr + h * vb, y->vd + o, y->vxd + o);
            exact_of(vt, &y->rot, x, y->vx + o, y->vxu + o);
        }
    }
    /* the sink replaces position 0's key in both kinds of row */
    for (int h = 0; h < HK; h++) {
        float *dom = y->kx + h * HD;
        if (kvq_is_rotated(kt))
            kvq_rot_forward(&y->rot, y->sink + h * HD, dom);
        else
            memcpy(dom, y->sink + h * HD, sizeof(float) * HD);
        memcpy(y->kxu + h * HD, y->sink + h * HD, sizeof(float) * HD);
        memcpy(y->kd + h * HD, y->sink + h * HD, sizeof(float) * HD);
    }
    return true;
}

/* Tokens at positions 250..255 (one group, a decode-like batch crossing no boundary) and more. */
static const int32_t g_pos[NT] = {250, 251, 252, 253, 254, 255};
static const int32_t g_pos2[NT] = {255, 256, 257, 258, 259, 260};

/*
 * Runs the kernel over y with window W for tokens at pos; ex covers
 * [x0, pos[NT-1]] from the rows kx/vx (NULL: no exact struct at all).
 */
static void kernel_run(int isa, const struct syn *y, const int32_t *pos, uint32_t W,
                       const float *kx, const float *vx, int64_t x0, const float *q, float *out)
{
    int32_t tok[NT];
    for (int t = 0; t < NT; t++)
        tok[t] = t;
    struct cpu_kvq_seq seq = {y->kc, y->vc, tok, NT, y->sink};
    struct cpu_kvq_exact ex = {NULL, NULL, x0, pos[NT - 1] - x0 + 1};
    if (kx) {
        ex.kx = kx + (size_t)x0 * KVD;
        ex.vx = vx + (size_t)x0 * KVD;
    }
    struct cpu_kvq_layer L = {.kt = y->kt,
                              .vt = y->vt,
                              .rot = &y->rot,
                              .n_head = H,
                              .n_head_kv = HK,
                              .hd = HD,
                              .k_row = y->kr,
                              .v_row = y->vr,
                              .scale = 0.125f,
                              .exact_window = W,
                              .exact = kx ? &ex : NULL,
                              .pos = pos,
                              .q = q,
                              .q_stride = H * HD,
                              .out = out,
                              .out_stride = H * HD,
                              .seq = &seq,
                              .n_seq = 1};
    struct threadpool *tp = NULL;
    struct cpu_kvq_attn *a = NULL;
    CHECK_OK(threadpool_create(2, &tp));
    CHECK_OK(cpu_kvq_attn_create(isa, 2, &a));
    if (tp && a) {
        CHECK_OK(cpu_kvq_attn_reserve(a, NT, H, HD));
        cpu_kvq_attn_run(a, tp, &L);
    }
    cpu_kvq_attn_destroy(a);
    threadpool_destroy(tp);
}

/* Worst relative error of out against the reference with window W (0: all decoded). */
static double ref_error(const struct syn *y, const int32_t *pos, uint32_t W, const float *q,
                        const float *out)
{
    const float *kr[NP], *vr[NP];
    double worst = 0.0, ref[HD];
    for (int t = 0; t < NT; t++) {
        for (int h = 0; h < H; h++) {
            const size_t col = (size_t)(h / G) * HD;
            for (int64_t j = 0; j <= pos[t]; j++) {
                bool exact = W > 0 && j > (int64_t)pos[t] - (int64_t)W;
                kr[j] = (exact ? y->kxu : y->kd) + (size_t)j * KVD + col;
                vr[j] = (exact ? y->vxu : y->vd) + (size_t)j * KVD + col;
            }
            ref_attention(q + (t * H + h) * HD, kr, vr, 0, pos[t], 0.125f, ref);
            double e2 = 0.0, r2 = 0.0;
            for (int i = 0; i < HD; i++) {
                double d = (double)out[(t * H + h) * HD + i] - ref[i];
                e2 += d * d;
                r2 += ref[i] * ref[i];
            }
            double rel = sqrt(e2 / r2);
            worst = rel > worst ? rel : worst;
        }
    }
    return worst;
}

static void kernel_case(int isa, enum kvq_type kt, enum kvq_type vt, uint32_t W,
                        const int32_t *pos)
{
    struct syn y;
    bool ok = syn_make(&y, kt, vt, 77 + (uint64_t)kt * 5 + vt);
    float *q = malloc(sizeof(float) * NT * H * HD), *out = malloc(sizeof(float) * NT * H * HD);
    if (ok && q && out) {
        for (int i = 0; i < NT * H * HD; i++)
            q[i] = 0.7f * (float)test_rng_gauss();
        int64_t x0 = pos[0] - (int64_t)W + 1 > 0 ? pos[0] - (int64_t)W + 1 : 0;
        kernel_run(isa, &y, pos, W, y.kx, y.vx, x0, q, out);
        char name[48];
        kvq_pair_name(kt, vt, name, sizeof name);
        double e = ref_error(&y, pos, W, q, out), e0 = ref_error(&y, pos, 0, q, out);
        CHECK_MSG(e < 1e-5, "%s isa %d W %u: relative error %.3g against the window reference",
                  name, isa, W, e);
        /* f16 V's rows are exact anyway; a decoded f16 K differs only by f16 rounding */
        if (W >= 5 && !(kt == KVQ_F16 && vt == KVQ_F16))
            CHECK_MSG(e0 > 1e-3, "%s isa %d W %u: %.3g from the all-decoded reference", name,
                      isa, W, e0);
    } else {
        CHECK(ok && q && out);
    }
    free(q);
    free(out);
    syn_free(&y);
}

TEST(kernel_vs_window_reference)
{
    static const int pairs[][2] = {{KVQ_ROT4, KVQ_ROT4}, {KVQ_Q4_0, KVQ_ROT3},
                                   {KVQ_ROT3, KVQ_Q8_0}, {KVQ_F16, KVQ_ROT4}};
    static const uint32_t ws[] = {1, 5, 40};
    for (int isa = 0; isa <= 1; isa++)
        for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
            for (size_t w = 0; w < sizeof ws / sizeof ws[0]; w++) {
                kernel_case(isa, pairs[i][0], pairs[i][1], ws[w], g_pos);
                kernel_case(isa, pairs[i][0], pairs[i][1], ws[w], g_pos2);
            }
}

/* The window only picks rows: with the decoded rows as "exact" ones the bits do not move. */
TEST(kernel_window_same_bits)
{
    struct syn y;
    bool ok = syn_make(&y, KVQ_ROT4, KVQ_Q4_0, 9);
    const size_t n = (size_t)NT * H * HD;
    float *q = malloc(sizeof(float) * n), *a = malloc(sizeof(float) * n),
          *b = malloc(sizeof(float) * n), *c = malloc(sizeof(float) * n);
    if (ok && q && a && b && c) {
        for (size_t i = 0; i < n; i++)
            q[i] = 0.7f * (float)test_rng_gauss();
        /* the decoded tile uses the sink for position 0, so the stand-in rows must too */
        for (int h = 0; h < HK; h++)
            kvq_rot_forward(&y.rot, y.sink + h * HD, y.kxd + h * HD);
        for (int isa = 0; isa <= 1; isa++) {
            kernel_run(isa, &y, g_pos2, 0, NULL, NULL, 0, q, a);
            kernel_run(isa, &y, g_pos2, 0, y.kx, y.vx, 100, q, b); /* W = 0: rows ignored */
            kernel_run(isa, &y, g_pos2, 300, y.kxd, y.vxd, 0, q, c);
            CHECK_MSG(memcmp(a, b, n * sizeof(float)) == 0, "isa %d: W = 0 moved bits", isa);
            CHECK_MSG(memcmp(a, c, n * sizeof(float)) == 0,
                      "isa %d: decoded rows through the window moved bits", isa);
        }
    } else {
        CHECK(ok);
    }
    free(q);
    free(a);
    free(b);
    free(c);
    syn_free(&y);
}

/*
 * The tile skips decoding rows every token of the group reads exactly: with
 * decoded stand-ins as the exact rows, windows that cover part of the range
 * (some tokens still read decoded rows below theirs, across the chunk
 * boundary at 256 and within one chunk) give the bits of no window, so no
 * token read a skipped (undecoded) tile row.
 */
TEST(kernel_skip_same_bits)
{
    struct syn y;
    bool ok = syn_make(&y, KVQ_ROT3, KVQ_ROT4, 21);
    const size_t n = (size_t)NT * H * HD;
    float *q = malloc(sizeof(float) * n), *a = malloc(sizeof(float) * n),
          *b = malloc(sizeof(float) * n);
    if (ok && q && a && b) {
        for (size_t i = 0; i < n; i++)
            q[i] = 0.7f * (float)test_rng_gauss();
        for (int h = 0; h < HK; h++)
            kvq_rot_forward(&y.rot, y.sink + h * HD, y.kxd + h * HD);
        static const uint32_t ws[] = {1, 3, 5, 40, 255};
        const int32_t *ps[] = {g_pos, g_pos2};
        for (int isa = 0; isa <= 1; isa++)
            for (int pi = 0; pi < 2; pi++) {
                kernel_run(isa, &y, ps[pi], 0, NULL, NULL, 0, q, a);
                for (size_t w = 0; w < sizeof ws / sizeof ws[0]; w++) {
                    int64_t x0 = ps[pi][0] - (int64_t)ws[w] + 1;
                    x0 = x0 > 0 ? x0 : 0;
                    kernel_run(isa, &y, ps[pi], ws[w], y.kxd, y.vxd, x0, q, b);
                    CHECK_MSG(memcmp(a, b, n * sizeof(float)) == 0,
                              "isa %d positions %d.. W %u: skipping decoded rows moved bits",
                              isa, ps[pi][0], ws[w]);
                }
            }
    } else {
        CHECK(ok);
    }
    free(q);
    free(a);
    free(b);
    syn_free(&y);
}

/* Every half except the signalling NaNs (the ring holds none: f32_to_f16 quiets them). */
static bool half_in_ring(uint16_t h)
{
    return !((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0 && !(h & 0x200u));
}

/* The AVX2 (F16C) ring conversion gives f16_to_f32's bits for every half a ring may hold. */
TEST(f16_rows_exact)
{
    if (!cpu_isa_supported(CPU_ISA_AVX2))
        TEST_SKIP("no AVX2/FMA/F16C here");
    uint16_t *h = malloc(65536 * sizeof *h);
    float *f = malloc(65537 * sizeof *f);
    REQUIRE(h && f);
    size_t m = 0;
    for (uint32_t i = 0; i < 65536; i++)
        if (half_in_ring((uint16_t)i))
            h[m++] = (uint16_t)i;
    /* lengths that end in each of the 16-wide, 8-wide and scalar parts; f[len] is a guard */
    static const size_t lens[] = {0, 7, 8, 13, 16, 29, 65536};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const size_t len = lens[li] < m ? lens[li] : m;
        const float guard = -1234.5f;
        f[len] = guard;
        cpu_kvq__f16_to_f32_avx2(h + (m - len), len, f);
        size_t bad = 0;
        for (size_t i = 0; i < len; i++) {
            float want = f16_to_f32(h[m - len + i]);
            bad += memcmp(&want, &f[i], sizeof want) != 0;
        }
        CHECK_MSG(bad == 0, "length %zu: %zu of the halves convert differently", len, bad);
        CHECK_MSG(memcmp(&f[len], &guard, sizeof guard) == 0, "length %zu: wrote past the end",
                  len);
    }
    free(h);
    free(f);
}

/*
 * cpu_kvq_exact_stage under HEARTH_CPU_ISA=scalar and avx2 stages the same
 * bits and leaves the same ring, with ring slots of every kind of half,
 * some tags stale (a rewind: those rows are decoded) and rows from the batch.
 */
TEST(stage_isa_same_bits)
{
    enum { W = 40, FIRST = 150, NB = 3 };
    if (!cpu_isa_supported(CPU_ISA_AVX2))
        TEST_SKIP("no AVX2/FMA/F16C here");
    struct syn y;
    bool ok = syn_make(&y, KVQ_ROT4, KVQ_Q8_0, 31);
    const size_t rows = cpu_kvq_exact_rows(W, NB), ringh = (size_t)W * KVD;
    float *kx[2] = {malloc(rows * KVD * sizeof(float)), malloc(rows * KVD * sizeof(float))};
    float *vx[2] = {malloc(rows * KVD * sizeof(float)), malloc(rows * KVD * sizeof(float))};
    uint16_t *r0 = malloc(2 * ringh * sizeof *r0), *r[2] = {malloc(2 * ringh * sizeof *r0),
                                                            malloc(2 * ringh * sizeof *r0)};
    float *kn = malloc((size_t)NB * KVD * sizeof(float));
    float *vn = malloc((size_t)NB * KVD * sizeof(float));
    int32_t pos0[W], pos[2][W];
    const char *old = getenv("HEARTH_CPU_ISA");
    char saved[32] = "";
    if (old)
        snprintf(saved, sizeof saved, "%s", old);
    if (ok && kx[0] && kx[1] && vx[0] && vx[1] && r0 && r[0] && r[1] && kn && vn) {
        for (size_t i = 0; i < 2 * ringh; i++) {
            uint16_t h;
            do
                h = (uint16_t)test_rng_u64();
            while (!half_in_ring(h));
            r0[i] = h;
        }
        for (int s = 0; s < W; s++) { /* slot s holds the position p % W == s below FIRST */
            int32_t p = FIRST - W + ((s - (FIRST - W) % W) + W) % W;
            pos0[s] = s % 7 == 3 ? p - W : p; /* a few stale tags */
        }
        for (size_t i = 0; i < (size_t)NB * KVD; i++) {
            kn[i] = (float)test_rng_gauss();
            vn[i] = (float)test_rng_gauss();
        }
        int32_t tok[NB] = {0, 1, 2};
        struct cpu_kvq_seq sq = {y.kc, y.vc, tok, NB, y.sink};
        struct cpu_kvq_exact ex[2];
        for (int isa = 0; isa < 2; isa++) {
            setenv("HEARTH_CPU_ISA", isa ? "avx2" : "scalar", 1);
            cpu_isa_reset();
            memcpy(r[isa], r0, 2 * ringh * sizeof *r0);
            memcpy(pos[isa], pos0, sizeof pos0);
            struct cpu_kvq_ring ring = {r[isa], r[isa] + ringh, KVD, KVD, pos[isa], W, 0};
            cpu_kvq_exact_stage(KVQ_ROT4, KVQ_Q8_0, &y.rot, HK, HD, y.kr, y.vr, &sq, FIRST, kn,
                                vn, KVD, &ring, kx[isa], vx[isa], &ex[isa]);
        }
        CHECK_INT_EQ(ex[0].x0, FIRST - W + 1);
        CHECK_INT_EQ(ex[0].nx, W - 1 + NB);
        CHECK(ex[0].x0 == ex[1].x0 && ex[0].nx == ex[1].nx);
        const size_t nf = (size_t)ex[0].nx * KVD;
        CHECK_MSG(memcmp(kx[0], kx[1], nf * sizeof(float)) == 0, "staged K rows differ");
        CHECK_MSG(memcmp(vx[0], vx[1], nf * sizeof(float)) == 0, "staged V rows differ");
        CHECK_MSG(memcmp(r[0], r[1], 2 * ringh * sizeof *r0) == 0, "the rings differ");
        CHECK(memcmp(pos[0], pos[1], sizeof pos0) == 0);
        /* a matching slot was read from the ring: position FIRST - 1's first K half */
        const int32_t pl = FIRST - 1;
        CHECK(pos0[pl % W] == pl);
        float want = f16_to_f32(r0[(size_t)(pl % W) * KVD]);
        CHECK(memcmp(&want, &kx[1][(size_t)(pl - ex[1].x0) * KVD], sizeof want) == 0);
    } else {
        CHECK(ok);
    }
    if (old)
        setenv("HEARTH_CPU_ISA", saved, 1);
    else
        unsetenv("HEARTH_CPU_ISA");
    cpu_isa_reset();
    for (int i = 0; i < 2; i++) {
        free(kx[i]);
        free(vx[i]);
        free(r[i]);
    }
    free(r0);
    free(kn);
    free(vn);
    syn_free(&y);
}

/* ---- the forward pass ------------------------------------------------------------- */

static struct forward_ctx *ctx_new(const struct model *m, int kt, int vt, int W, int n_seq,
                                   int n_batch)
{
    struct forward_params p = forward_params_default();
    p.n_ctx = N_CTX;
    p.n_threads = 2;
    p.n_batch = n_batch;
    p.kv_type_k = kt;
    p.kv_type_v = vt;
    p.kv_window = W;
    struct forward_ctx *c = NULL;
    CHECK_OK(forward_create_multi(m, &p, n_seq, &c));
    return c;
}

/*
 * Logits of g_toks[0..N_TOK) two ways: all in one call (batches 64, 64, 2),
 * and (b not NULL) 70 + 30 tokens in two calls (batches 64, 6, 30) then 30
 * one at a time.
 */
static void prefill_vs_decode(int kt, int vt, int W, float *a, float *b)
{
    struct model *m = g_model;
    const size_t V = m->hp.n_vocab;
    struct forward_ctx *c = ctx_new(m, kt, vt, W, 1, 64);
    if (c)
        CHECK_OK(forward_eval(c, g_toks, N_TOK, 0, a, true));
    forward_destroy(c);
    if (!b)
        return;
    c = ctx_new(m, kt, vt, W, 1, 64);
    if (c) {
        CHECK_OK(forward_eval(c, g_toks, 70, 0, b, true));
        CHECK_OK(forward_eval(c, g_toks + 70, 30, 70, b + 70 * V, true));
        for (int t = 100; t < N_TOK; t++)
            CHECK_OK(forward_eval(c, g_toks + t, 1, t, b + (size_t)t * V, false));
    }
    forward_destroy(c);
}

static size_t n_diff(const float *a, const float *b, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return d;
}

TEST(prefill_equals_decode)
{
    struct model *m = model_and_tokens();
    REQUIRE(m);
    const size_t n = (size_t)N_TOK * m->hp.n_vocab;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)),
          *w0 = malloc(n * sizeof(float));
    REQUIRE(a && b && w0);
    /* W = 0 (the old path; test-kv-cache checks its split independence): the baseline */
    prefill_vs_decode(KVQ_ROT4, KVQ_ROT4, 0, w0, NULL);
    static const struct {
        int kt, vt, W;
    } cases[] = {{KVQ_ROT4, KVQ_ROT4, 1}, {KVQ_ROT4, KVQ_ROT4, 64}, {KVQ_ROT4, KVQ_ROT4, 5},
                 {KVQ_ROT3, KVQ_Q8_0, 5}};
    /* under the sanitizers (after memory errors, not bits) W 1 and the mixed pair cover the
       paths: each case costs ~10 s of CI's ASan stage, which has little margin left */
    const bool sanitized = getenv("HEARTH_SANITIZED") != NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (sanitized && (i == 1 || i == 2))
            continue;
        prefill_vs_decode(cases[i].kt, cases[i].vt, cases[i].W, a, b);
        size_t d = n_diff(a, b, n);
        char name[48];
        kvq_pair_name(cases[i].kt, cases[i].vt, name, sizeof name);
        CHECK_MSG(d == 0, "%s W %d: %zu of %zu logits differ", name, cases[i].W, d, n);
        CHECK(isfinite(a[n - 1]));
        if (cases[i].kt == KVQ_ROT4 && cases[i].vt == KVQ_ROT4)
            /* the window changes the result (W = 1: each query's own row exact) */
            CHECK_MSG(n_diff(w0, a, n) > n / 2, "rot4 W %d: the same logits as W = 0",
                      cases[i].W);
    }
    free(a);
    free(b);
    free(w0);
}

/*
 * Two sequences prefilled together in one batch and then decoded together
 * give each the bits it gets alone (the staging of several groups).
 */
TEST(multi_sequence)
{
    enum { NP0 = 80, ND = 12, W = 5 };
    struct model *m = model_and_tokens();
    REQUIRE(m);
    const size_t V = m->hp.n_vocab;
    const int32_t *toks[2] = {g_toks, g_toks + 100};
    float *alone = malloc(2 * (NP0 + ND) * V * sizeof(float));
    float *both = malloc(2 * (NP0 + ND) * V * sizeof(float));
    REQUIRE(alone && both);
    for (int s = 0; s < 2; s++) {
        struct forward_ctx *c = ctx_new(m, KVQ_ROT4, KVQ_Q8_0, W, 1, 256);
        float *o = alone + (size_t)s * (NP0 + ND) * V;
        if (c) {
            CHECK_OK(forward_eval(c, toks[s], NP0, 0, o, true));
            for (int t = NP0; t < NP0 + ND; t++)
                CHECK_OK(forward_eval(c, toks[s] + t, 1, t, o + (size_t)t * V, false));
        }
        forward_destroy(c);
    }
    struct forward_ctx *c = ctx_new(m, KVQ_ROT4, KVQ_Q8_0, W, 2, 256);
    if (c) {
        int32_t tk[2 * NP0], sq[2 * NP0], ps[2 * NP0];
        bool want[2 * NP0];
        for (int i = 0; i < 2 * NP0; i++) { /* sequence 1's rows first, then 0's */
            int s = i < NP0 ? 1 : 0, t = i % NP0;
            tk[i] = toks[s][t];
            sq[i] = s;
            ps[i] = t;
            want[i] = true;
        }
        float *lg = malloc(2 * NP0 * V * sizeof(float));
        REQUIRE(lg);
        CHECK_OK(forward_eval_multi(c, tk, sq, ps, 2 * NP0, lg, want));
        for (int i = 0; i < 2 * NP0; i++)
            memcpy(both + ((size_t)sq[i] * (NP0 + ND) + (size_t)ps[i]) * V, lg + (size_t)i * V,
                   V * sizeof(float));
        for (int t = NP0; t < NP0 + ND; t++) {
            int32_t tk2[2] = {toks[0][t], toks[1][t]}, sq2[2] = {0, 1}, ps2[2] = {t, t};
            CHECK_OK(forward_eval_multi(c, tk2, sq2, ps2, 2, lg, want));
            for (int s = 0; s < 2; s++)
                memcpy(both + ((size_t)s * (NP0 + ND) + (size_t)t) * V, lg + (size_t)s * V,
                       V * sizeof(float));
        }
        free(lg);
        size_t d = n_diff(alone, both, 2 * (NP0 + ND) * V);
        CHECK_MSG(d == 0, "%zu logits differ between alone and together", d);
    }
    forward_destroy(c);
    free(alone);
    free(both);
}

/* ---- the scheduler on the CPU backend ---------------------------------------------- */

enum { SB = 16 }; /* batch of both paths */

static struct hearth_device *cpu_dev(void)
{
    struct cpu_backend_params p = {.n_threads = 2, .isa = -1, .name = "cpu"};
    struct hearth_device *d = NULL;
    CHECK_OK(cpu_backend_device_create(&p, &d));
    return d;
}

static hearth_status sched_new(const struct model *m, struct hearth_device **dev, int kt, int vt,
                               int W, int n_seq, struct sched **out)
{
    struct sched_params sp = sched_params_default();
    sp.n_ctx = N_CTX;
    sp.n_batch = SB;
    sp.n_devices = 1;
    sp.devices = dev;
    sp.n_seq = n_seq;
    sp.kv_type_k = kt;
    sp.kv_type_v = vt;
    sp.kv_window = (uint32_t)W;
    *out = NULL;
    return sched_create(m, &sp, out);
}

/*
 * One evaluation of the script below on either path: a = forward (s NULL),
 * else the sched. Positions: 0..39 (3 batches), decode 40..43, rewind to 28
 * with 16 tokens (28..43: W = 5 then reads slots holding later positions),
 * decode 44..45. Logits of every token into out, in call order.
 */
static const int g_script[][2] = {{0, 40}, {40, 1}, {41, 1}, {42, 1}, {43, 1},
                                  {28, 16}, {44, 1}, {45, 1}};
/* A shorter one for the larger Gemma 3 (rewind at call 3). */
static const int g_script_short[][2] = {{0, 20}, {20, 1}, {21, 1}, {12, 12}, {24, 1}};

static int script_run_of(const struct model *m, const int (*calls)[2], size_t n_calls,
                         size_t rewind, struct forward_ctx *f, struct sched *s, float *out)
{
    const size_t V = m->hp.n_vocab;
    int rows = 0;
    for (size_t i = 0; i < n_calls; i++) {
        const int p0 = calls[i][0], n = calls[i][1];
        /* the rewound tokens differ from the first ones at the same positions */
        const int32_t *tk = g_toks + p0 + (i == rewind ? 50 : 0);
        float *o = out + (size_t)rows * V;
        hearth_status st = f ? forward_eval(f, tk, n, p0, o, true)
                             : sched_eval(s, tk, n, p0, o, true);
        CHECK_OK(st);
        if (st != HEARTH_OK)
            return -1;
        rows += n;
    }
    return rows;
}

static int script_run(struct forward_ctx *f, struct sched *s, float *out)
{
    return script_run_of(g_model, g_script, sizeof g_script / sizeof g_script[0], 5, f, s, out);
}

TEST(sched_equals_forward)
{
    struct model *m = model_and_tokens();
    REQUIRE(m);
    struct hearth_device *dev = cpu_dev();
    REQUIRE(dev);
    const size_t V = m->hp.n_vocab, n = 64 * V;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    REQUIRE(a && b);
    static const struct {
        int kt, vt, W;
    } cases[] = {{KVQ_ROT4, KVQ_ROT4, 5}, {KVQ_Q8_0, KVQ_ROT4, 5}, {KVQ_ROT4, KVQ_ROT4, 64},
                 {KVQ_Q8_0, KVQ_ROT4, 64}};
    /* under the sanitizers (memory errors, not bits) the first and last: both pairs, both W */
    const bool sanitized = getenv("HEARTH_SANITIZED") != NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (sanitized && (i == 1 || i == 2))
            continue;
        char name[48];
        kvq_pair_name(cases[i].kt, cases[i].vt, name, sizeof name);
        struct forward_ctx *f = ctx_new(m, cases[i].kt, cases[i].vt, cases[i].W, 1, SB);
        struct sched *s = NULL;
        CHECK_OK(sched_new(m, &dev, cases[i].kt, cases[i].vt, cases[i].W, 1, &s));
        if (f && s) {
            int ra = script_run(f, NULL, a), rb = script_run(NULL, s, b);
            CHECK_INT_EQ(ra, rb);
            if (ra > 0 && ra == rb) {
                size_t d = n_diff(a, b, (size_t)ra * V);
                CHECK_MSG(d == 0, "%s W %d: %zu of %zu logits differ from forward.c", name,
                          cases[i].W, d, (size_t)ra * V);
                CHECK(isfinite(b[(size_t)ra * V - 1]));
            }
        }
        sched_destroy(s);
        forward_destroy(f);
    }
    /* the window reached the op: without it the sched's logits differ */
    struct sched *s0 = NULL;
    CHECK_OK(sched_new(m, &dev, KVQ_ROT4, KVQ_ROT4, 0, 1, &s0));
    int r0 = s0 ? script_run(NULL, s0, a) : 0;
    if (r0 > 0) {
        struct sched *s5 = NULL;
        CHECK_OK(sched_new(m, &dev, KVQ_ROT4, KVQ_ROT4, 5, 1, &s5));
        if (s5 && script_run(NULL, s5, b) == r0)
            CHECK_MSG(n_diff(a, b, (size_t)r0 * V) > (size_t)r0 * V / 2,
                      "rot4: W 5 gives the logits of W 0");
        sched_destroy(s5);
    }
    sched_destroy(s0);
    free(a);
    free(b);
    backend_device_destroy(dev);
}

/*
 * Gemma 3 (qk-norm, one KV head of 256, local and global layers): the
 * sched with a window equals forward.c with it.
 */
TEST(sched_equals_forward_gemma3)
{
    REQUIRE(model_and_tokens()); /* the token ids (all < Gemma's vocabulary) */
    const char *path = test_model_path(TEST_GEMMA3);
    REQUIRE(path);
    struct model *m = NULL;
    CHECK_OK(model_load(path, &m));
    REQUIRE(m);
    struct hearth_device *dev = cpu_dev();
    const size_t V = m->hp.n_vocab, n = 48 * V;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    struct forward_ctx *f = ctx_new(m, KVQ_ROT4, KVQ_Q8_0, 5, 1, SB);
    struct sched *s = NULL;
    if (dev)
        CHECK_OK(sched_new(m, &dev, KVQ_ROT4, KVQ_Q8_0, 5, 1, &s));
    const size_t nc = sizeof g_script_short / sizeof g_script_short[0];
    if (a && b && f && s) {
        int ra = script_run_of(m, g_script_short, nc, 3, f, NULL, a);
        int rb = script_run_of(m, g_script_short, nc, 3, NULL, s, b);
        CHECK_INT_EQ(ra, rb);
        if (ra > 0 && ra == rb) {
            size_t d = n_diff(a, b, (size_t)ra * V);
            CHECK_MSG(d == 0, "gemma3 W 5: %zu of %zu logits differ from forward.c", d,
                      (size_t)ra * V);
        }
    }
    sched_destroy(s);
    forward_destroy(f);
    free(a);
    free(b);
    backend_device_destroy(dev);
    model_free(m);
}

/* One multi-sequence call on both paths; logits of every token compared bit for bit. */
static void multi_both(struct forward_ctx *f, struct sched *s, const int32_t *tk,
                       const int32_t *sq, const int32_t *ps, int n, float *a, float *b,
                       const char *what)
{
    bool want[64];
    for (int i = 0; i < n; i++)
        want[i] = true;
    CHECK_OK(forward_eval_multi(f, tk, sq, ps, n, a, want));
    CHECK_OK(sched_eval_multi(s, tk, sq, ps, n, b, want));
    size_t d = n_diff(a, b, (size_t)n * g_model->hp.n_vocab);
    CHECK_MSG(d == 0, "%s: %zu logits differ from forward_eval_multi", what, d);
}

TEST(sched_multi_equals_forward)
{
    enum { W = 5, NP0 = 20 };
    struct model *m = model_and_tokens();
    REQUIRE(m);
    struct hearth_device *dev = cpu_dev();
    REQUIRE(dev);
    const size_t V = m->hp.n_vocab;
    float *a = malloc(64 * V * sizeof(float)), *b = malloc(64 * V * sizeof(float));
    struct forward_ctx *f = ctx_new(m, KVQ_Q8_0, KVQ_ROT4, W, 2, SB);
    struct sched *s = NULL;
    CHECK_OK(sched_new(m, &dev, KVQ_Q8_0, KVQ_ROT4, W, 2, &s));
    REQUIRE(a && b && f && s);
    int32_t tk[64], sq[64], ps[64];
    /* prefill: sequence 1's 20 rows, then sequence 0's (batches 16 | 4 + 12 | 8) */
    for (int i = 0; i < 2 * NP0; i++) {
        sq[i] = i < NP0 ? 1 : 0;
        ps[i] = i % NP0;
        tk[i] = g_toks[ps[i] + (sq[i] ? 100 : 0)];
    }
    multi_both(f, s, tk, sq, ps, 2 * NP0, a, b, "prefill");
    /* rows interleaved: each sequence in two runs of one batch (s0, s1, s0, s1) */
    for (int step = 0; step < 2; step++) {
        int p0 = NP0 + 3 * step;
        int next[2] = {p0, p0};
        int order[6] = {0, 0, 1, 1, 0, 1};
        for (int i = 0; i < 6; i++) {
            sq[i] = order[i];
            ps[i] = next[sq[i]]++;
            tk[i] = g_toks[ps[i] + (sq[i] ? 100 : 0)];
        }
        multi_both(f, s, tk, sq, ps, 6, a, b, "interleaved decode");
    }
    /* sequence 1 cleared and refilled with other tokens while 0 goes on */
    forward_seq_clear(f, 1);
    sched_seq_clear(s, 1);
    CHECK_INT_EQ(sched_seq_n_past(s, 1), 0);
    for (int i = 0; i < 10; i++) {
        sq[i] = 1;
        ps[i] = i;
        tk[i] = g_toks[60 + i];
    }
    sq[10] = 0;
    ps[10] = NP0 + 6;
    tk[10] = g_toks[NP0 + 6];
    multi_both(f, s, tk, sq, ps, 11, a, b, "refill after clear");
    for (int t = 0; t < 2; t++) {
        int32_t tk2[2] = {g_toks[NP0 + 7 + t], g_toks[70 + t]}, sq2[2] = {0, 1},
                ps2[2] = {NP0 + 7 + t, 10 + t};
        multi_both(f, s, tk2, sq2, ps2, 2, a, b, "decode after refill");
    }
    sched_destroy(s);
    forward_destroy(f);
    free(a);
    free(b);
    backend_device_destroy(dev);
}

/* A CPU device whose ops table is the CPU's minus supports_kv_window (an ABI 2 style device). */
static struct hearth_device_ops g_nowin_ops;

TEST(device_without_window)
{
    struct model *m = model_and_tokens();
    REQUIRE(m);
    struct hearth_device *cpu = cpu_dev();
    REQUIRE(cpu);
    g_nowin_ops = *cpu->ops;
    g_nowin_ops.supports_kv_window = NULL;
    struct hearth_device fake = {.ops = &g_nowin_ops, .ctx = cpu->ctx};
    struct hearth_device *dev = &fake;
    CHECK(backend_device_supports_kv_window(cpu, KVQ_ROT4, KVQ_ROT4));
    CHECK(!backend_device_supports_kv_window(dev, KVQ_ROT4, KVQ_ROT4));
    struct sched *s = NULL;
    CHECK_INT_EQ(sched_new(m, &dev, KVQ_ROT4, KVQ_ROT4, 8, 1, &s), HEARTH_ERR_UNSUPPORTED);
    CHECK(s == NULL);
    CHECK_MSG(strstr(hearth_last_error(), "cpu") && strstr(hearth_last_error(), "exact"),
              "message: %s", hearth_last_error());
    /* no window asked, or an f16 cache: the same device is fine */
    CHECK_OK(sched_new(m, &dev, KVQ_ROT4, KVQ_ROT4, 0, 1, &s));
    sched_destroy(s);
    CHECK_OK(sched_new(m, &dev, KVQ_F16, KVQ_F16, 8, 1, &s));
    sched_destroy(s);
    backend_device_destroy(cpu);
}

/* The engine on a GPU without the window (Vulkan before it had one). */
TEST(engine_without_window)
{
    struct model *m = model_and_tokens();
    REQUIRE(m);
    struct hearth_device *vk = NULL;
    if (reg_device_open("vulkan0", &vk) != HEARTH_OK) {
        err_clear();
        TEST_SKIP("no vulkan0 for the engine half");
    }
    bool has = backend_device_supports_kv_window(vk, KVQ_ROT4, KVQ_ROT4);
    backend_device_destroy(vk);
    if (has)
        TEST_SKIP("vulkan0 implements the window: the engine half has no device to refuse");
    static const char *const names[] = {"vulkan0"};
    struct engine_params ep = engine_params_default();
    ep.n_ctx = 64;
    ep.n_threads = 2;
    ep.n_devices = 1;
    ep.devices = names;
    ep.ngl = 1;
    ep.kv_type_k = ep.kv_type_v = KVQ_ROT4;
    ep.kv_window = 8;
    struct engine *e = NULL;
    CHECK_INT_EQ(engine_create(m, &ep, &e), HEARTH_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(hearth_last_error(), "--kv-window 8: vulkan0 does not implement"),
              "message: %s", hearth_last_error());
    engine_destroy(e);
}

TEST_MAIN(TEST_CASE(kernel_vs_window_reference), TEST_CASE(kernel_window_same_bits),
          TEST_CASE(kernel_skip_same_bits), TEST_CASE(f16_rows_exact),
          TEST_CASE(stage_isa_same_bits),
          TEST_CASE(prefill_equals_decode),
          TEST_CASE(multi_sequence), TEST_CASE(sched_equals_forward),
          TEST_CASE(sched_equals_forward_gemma3), TEST_CASE(sched_multi_equals_forward),
          TEST_CASE(device_without_window), TEST_CASE(engine_without_window))
