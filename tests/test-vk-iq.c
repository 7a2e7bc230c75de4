/*
 * test-vk-iq: the IQ1/IQ2/IQ3 lattice weight types (IQ2_XXS, IQ2_XS, IQ2_S,
 * IQ3_XXS, IQ3_S, IQ1_S, IQ1_M) in every Vulkan kernel that decodes weights
 * (shaders/common/dequant.glsl through matvec.comp, its subgroup variant,
 * matmul.comp and embed.comp), on the first Vulkan device (lavapipe in CI).
 *
 * hearth has no quantizer for these types, so the matrices are random block
 * bytes from synth_fill (a different super-scale per block): every grid
 * index, sign pattern and sub-block scale is then reachable. The
 * reference is the CPU's to_float (quant_traits) and a dot in double:
 *   matmul: |y - ref| <= 1e-6 + 1e-5 * Σ_k |w_k x_k|   (as test-vulkan: f32
 *           accumulation of <= 768 terms stays far inside; a wrong grid entry,
 *           sign or scale moves a term by a whole quantization step);
 *   embed:  |y - ref| <= 1e-6 * max|ref| + 1e-6 * |ref|  (one f32 product
 *           chain per element; the GPU may round its order differently).
 * Shapes: rows of 1 and 3 super-blocks (n_in 256, 768), 37 rows (odd: partial
 * row groups and tiles); matvec at batch 1 (with and without subgroups) and
 * 2, batch 7 forced onto the matvec, batch 64 on the tiled kernel. The worst
 * error over the bound is printed per type. The grids come from the
 * context's grid buffer (vulkan/iq-grids.c): a wrong table offset or word
 * order fails here. Skips with "no Vulkan device" where there is none.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "fixtures.h"

#ifdef HEARTH_WITH_VULKAN
#include "../vulkan/vk.h"
#include "quant.h"
#include "rng.h"
#include "synth.h"

/* smallest grid first (1, 2, 2, 4, 8, 16, 16 KiB): on a slow JIT the cheap types report first */
static const hearth_dtype iq_types[] = {
    HEARTH_DTYPE_IQ3_XXS, HEARTH_DTYPE_IQ2_XXS, HEARTH_DTYPE_IQ3_S, HEARTH_DTYPE_IQ2_XS,
    HEARTH_DTYPE_IQ2_S,   HEARTH_DTYPE_IQ1_S,   HEARTH_DTYPE_IQ1_M,
};
enum { N_IQ = sizeof iq_types / sizeof iq_types[0], N_OUT = 37 };

/* LSan: keep the driver loaded (vk.h); NULL where there is no device. */
static struct vk_ctx *open_ctx(void)
{
    if (fixture_asan_slow_unwind())
        return NULL;
    vk_keep_driver_loaded();
    struct vk_ctx_opts o = {.device_index = -1};
    struct vk_ctx *ctx = NULL;
    hearth_status st = vk_ctx_create(&o, &ctx);
    if (st == HEARTH_ERR_NOT_FOUND)
        return NULL;
    CHECK_OK(st);
    return ctx;
}

#define OPEN_OR_SKIP(ctx)                                                              \
    struct vk_ctx *ctx = open_ctx();                                                   \
    if (!ctx) {                                                                        \
        if (test__failed)                                                              \
            return;                                                                    \
        TEST_SKIP(fixture_asan_slow_unwind() ? "no Vulkan device under ASan slow unwinding"    \
                                     : "no Vulkan device");                            \
    }

static void close_ctx(struct vk_ctx *ctx)
{
    const char *msg = NULL;
    int n = vk_ctx_validation_errors(ctx, &msg);
    CHECK_MSG(n == 0, "%d validation messages, first: %s", n, msg);
    vk_ctx_destroy(ctx);
}

/*
 * Random blocks of an IQ type (synth_fill: random codes, signs and sub-block
 * scales, the super-scale d set for a target std), one block at a time with
 * a std of 0.01 .. 0.04 so that d differs between neighbouring blocks: a
 * kernel that read another block's d would fail.
 */
static bool fill_iq(hearth_dtype t, size_t block_bytes, uint64_t n_blocks, uint8_t *dst)
{
    struct rng r;
    rng_seed(&r, test_rng_u64());
    for (uint64_t b = 0; b < n_blocks; b++) {
        float std = 0.01f * (float)(1 + test_rng_u64() % 4);
        hearth_status st = synth_fill(t, 1, std, &r, dst + b * block_bytes);
        CHECK_OK(st);
        if (st != HEARTH_OK)
            return false;
    }
    return true;
}

/* A random [n_out][n_in] matrix of type t: block bytes and the CPU's dequantization. */
struct iqmat {
    hearth_dtype t;
    uint32_t n_in, n_out;
    uint64_t row_bytes;
    uint8_t *q;  /* [n_out][row_bytes] */
    float *deq;  /* [n_out][n_in], quant_traits.to_float of each row */
};

static bool iqmat_make(struct iqmat *m, hearth_dtype t, uint32_t n_in, uint32_t n_out)
{
    const struct quant_traits *tr = quant_get(t);
    memset(m, 0, sizeof *m);
    if (!tr || !quant_row_bytes(t, n_in, &m->row_bytes)) {
        TEST_FAIL_AT("type %d: no traits or bad row size at n_in %u", (int)t, n_in);
        return false;
    }
    if (!tr->to_float) {
        TEST_FAIL_AT("%s has no CPU to_float (core/quant-iq2.c): no reference", tr->name);
        return false;
    }
    m->t = t;
    m->n_in = n_in;
    m->n_out = n_out;
    m->q = malloc(m->row_bytes * n_out);
    m->deq = malloc((size_t)n_in * n_out * sizeof *m->deq);
    if (!m->q || !m->deq) {
        TEST_FAIL_AT("out of memory");
        return false;
    }
    if (!fill_iq(t, tr->block_bytes, (uint64_t)n_out * (n_in / (uint64_t)tr->blck), m->q))
        return false;
    for (uint32_t r = 0; r < n_out; r++)
        tr->to_float(m->q + r * m->row_bytes, m->deq + (size_t)r * n_in, n_in);
    return true;
}

static void iqmat_free(struct iqmat *m)
{
    free(m->q);
    free(m->deq);
}

static bool make_buf(struct vk_ctx *ctx, struct vk_buffer *b, const void *host, uint64_t bytes)
{
    hearth_status st = vk_buffer_create(ctx, bytes, VK_BUF_DEVICE, b);
    CHECK_OK(st);
    if (st == HEARTH_OK && host) {
        st = vk_buffer_upload(ctx, b, 0, host, bytes);
        CHECK_OK(st);
    }
    return st == HEARTH_OK;
}

static struct vk_view view(const struct vk_buffer *b)
{
    struct vk_view v = {b, 0};
    return v;
}

/* Worst |err| / bound seen per type (index into iq_types), matmul and embed. */
static double worst_mm[N_IQ], worst_emb[N_IQ];

/*
 * y = W x on the device for n_tok tokens (kernel: 0 auto, 1 matvec, 2 tiled),
 * every element checked against the double dot of the reference rows.
 */
static void run_matmul(struct vk_ctx *ctx, const struct iqmat *m, int ti, struct vk_view w,
                       uint32_t n_tok, int kernel, const char *label)
{
    size_t nx = (size_t)n_tok * m->n_in, ny = (size_t)n_tok * m->n_out;
    float *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y);
    double *ref = malloc(ny * sizeof *ref), *lim = malloc(ny * sizeof *lim);
    struct vk_buffer xb = {0}, yb = {0};
    if (!x || !y || !ref || !lim) {
        TEST_FAIL_AT("out of memory");
        goto done;
    }
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)test_rng_gauss();
    for (uint32_t t = 0; t < n_tok; t++)
        for (uint32_t r = 0; r < m->n_out; r++) {
            double s = 0.0, a = 0.0;
            for (uint32_t k = 0; k < m->n_in; k++) {
                double p = (double)m->deq[(size_t)r * m->n_in + k] * (double)x[t * m->n_in + k];
                s += p;
                a += fabs(p);
            }
            ref[t * m->n_out + r] = s;
            lim[t * m->n_out + r] = 1e-6 + 1e-5 * a;
        }
    if (!make_buf(ctx, &xb, x, nx * 4) || !make_buf(ctx, &yb, NULL, ny * 4))
        goto done;
    struct vk_matmul_args a = {
        .type = m->t, .w = w, .row_bytes = m->row_bytes, .n_in = m->n_in, .n_out = m->n_out,
        .n_tok = n_tok, .x = view(&xb), .x_stride = m->n_in, .y = view(&yb),
        .y_stride = m->n_out, .force_kernel = kernel,
    };
    CHECK_OK(vk_matmul(ctx, &a));
    CHECK_OK(vk_buffer_download(ctx, &yb, 0, y, ny * 4));
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < ny; i++) {
        double err = fabs((double)y[i] - ref[i]);
        if (!(err <= lim[i]) && bad++ == 0)
            first = i;
        worst_mm[ti] = fmax(worst_mm[ti], isnan(err) ? HUGE_VAL : err / lim[i]);
    }
    CHECK_MSG(bad == 0, "matmul %s %s %ux%u n_tok %u kernel %d: %zu of %zu wrong; first [%zu] "
              "got %.9g ref %.9g lim %.3g", hearth_dtype_name(m->t), label, m->n_out, m->n_in,
              n_tok, kernel, bad, ny, first, (double)y[first], ref[first], lim[first]);
done:
    vk_buffer_destroy(ctx, &xb);
    vk_buffer_destroy(ctx, &yb);
    free(x);
    free(y);
    free(ref);
    free(lim);
}

/* Element i of the rows ids[0], ids[1], ... of the reference, back to back. */
static float ref_of(const struct iqmat *m, const uint32_t *ids, size_t i)
{
    return m->deq[(size_t)ids[i / m->n_in] * m->n_in + i % m->n_in];
}

/* A few rows (repeats, first, last) through vk_embed with a scale, against the reference rows. */
static void run_embed(struct vk_ctx *ctx, const struct iqmat *m, int ti, struct vk_view w)
{
    enum { NI = 5 };
    const float scale = 1.5f;
    uint32_t ids[NI] = {m->n_out - 1, 0, 17, 17, 5};
    size_t ny = (size_t)NI * m->n_in;
    float *y = malloc(ny * sizeof *y);
    struct vk_buffer ib = {0}, yb = {0};
    if (!y) {
        TEST_FAIL_AT("out of memory");
        return;
    }
    if (make_buf(ctx, &ib, ids, sizeof ids) && make_buf(ctx, &yb, NULL, ny * 4)) {
        struct vk_embed_args a = {
            .type = m->t, .w = w, .row_bytes = m->row_bytes, .n_in = m->n_in,
            .n_rows = m->n_out, .ids = view(&ib), .n_ids = NI, .y = view(&yb),
            .y_stride = m->n_in, .scale = scale,
        };
        CHECK_OK(vk_embed(ctx, &a));
        CHECK_OK(vk_buffer_download(ctx, &yb, 0, y, ny * 4));
        double mx = 0.0;
        for (size_t i = 0; i < ny; i++)
            mx = fmax(mx, fabs((double)scale * (double)ref_of(m, ids, i)));
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < ny; i++) {
            double ref = (double)scale * (double)ref_of(m, ids, i);
            double err = fabs((double)y[i] - ref), lim = 1e-6 * mx + 1e-6 * fabs(ref);
            if (!(err <= lim) && bad++ == 0)
                first = i;
            worst_emb[ti] = fmax(worst_emb[ti], isnan(err) ? HUGE_VAL : err / lim);
        }
        CHECK_MSG(bad == 0, "embed %s n_in %u: %zu of %zu wrong; first [%zu] got %.9g",
                  hearth_dtype_name(m->t), m->n_in, bad, ny, first, (double)y[first]);
    }
    vk_buffer_destroy(ctx, &ib);
    vk_buffer_destroy(ctx, &yb);
    free(y);
}

/* Every kernel path for every IQ type at n_in; prints the worst error / bound per type. */
static void all_paths(struct vk_ctx *ctx, uint32_t n_in, uint64_t seed)
{
    bool sg = vk_ctx_caps(ctx)->subgroup_arith;
    test_rng_seed(seed);
    for (int i = 0; i < N_IQ; i++) {
        worst_mm[i] = worst_emb[i] = 0.0;
        CHECK(vk_matmul_supports(iq_types[i]));
        struct iqmat m;
        if (!iqmat_make(&m, iq_types[i], n_in, N_OUT)) {
            iqmat_free(&m);
            continue;
        }
        struct vk_weights *w = NULL;
        const void *data[1] = {m.q};
        uint64_t bytes[1] = {m.row_bytes * m.n_out};
        CHECK_OK(vk_weights_create(ctx, 1, data, bytes, &w));
        if (w) {
            struct vk_view wv = vk_weights_view(w, 0);
            run_matmul(ctx, &m, i, wv, 1, 0, "decode");
            if (sg) { /* the shared-memory reduction as well as the subgroup one */
                vk_ctx_set_use_subgroup(ctx, false);
                run_matmul(ctx, &m, i, wv, 1, 0, "decode-no-subgroup");
                vk_ctx_set_use_subgroup(ctx, true);
            }
            run_matmul(ctx, &m, i, wv, 2, 0, "batch2");
            run_matmul(ctx, &m, i, wv, 7, 1, "batch7-matvec");
            run_matmul(ctx, &m, i, wv, 64, 2, "batch64-tiled");
            run_embed(ctx, &m, i, wv);
        }
        vk_weights_destroy(ctx, w);
        printf("  %-7s n_in %u: worst |err|/bound matmul %.4f, embed %.4f\n",
               hearth_dtype_name(iq_types[i]), n_in, worst_mm[i], worst_emb[i]);
        iqmat_free(&m);
    }
}

/*
 * Rows of one super-block, then of three (block offsets past the first), in
 * one context: each of the 35 pipelines is built once (~0.1-2 s each on
 * lavapipe, most of this test's time).
 */
TEST(iq_all_paths)
{
    OPEN_OR_SKIP(ctx);
    all_paths(ctx, 256, 201);
    all_paths(ctx, 768, 202);
    close_ctx(ctx);
}

TEST_MAIN(TEST_CASE(iq_all_paths))

#else

TEST(vulkan_not_built)
{
    TEST_SKIP("the Vulkan backend is not built (HEARTH_VULKAN=OFF)");
}

TEST_MAIN(TEST_CASE(vulkan_not_built))

#endif
