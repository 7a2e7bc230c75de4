/*
 * test-vulkan: every Vulkan op against the CPU reference, on whatever device
 * the loader finds (Mesa's lavapipe in CI). Each case makes its own context
 * (so nothing leaks between cases and ASan sees a clean exit), runs the op on
 * random inputs from a fixed seed, and compares with the reference under the
 * tolerance written next to the check. With HEARTH_VULKAN_VALIDATE=1 the
 * Khronos validation layer is on (with synchronization validation) and any
 * warning or error it reports fails the case (CI sets it); without the layer
 * installed the cases run unvalidated with a note (a failure under CI=true). Without a device every case skips ("no Vulkan device"); without
 * the backend compiled in, so does the file.
 *
 * References: matmul and embed against the reference dequantizer
 * (quant_traits.to_float) and a dot product in double; the rest against
 * core/cpu/ops.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "vk-env.h"
#include "fixtures.h"

#ifdef HEARTH_WITH_VULKAN
#include "../vulkan/vk.h"
#include "cpu/ops.h"
#include "f16.h"
#include "quant.h"

static struct vk_ctx *open_ctx(uint64_t max_chunk)
{
    if (fixture_asan_slow_unwind())
        return NULL;
    vk_keep_driver_loaded(); /* LSan: see vk.h */
    struct vk_ctx_opts o = {.device_index = -1, .max_chunk_override = max_chunk};
    struct vk_ctx *ctx = NULL;
    hearth_status st = vk_ctx_create(&o, &ctx);
    if (st == HEARTH_ERR_NOT_FOUND)
        return NULL;
    CHECK_OK(st);
    return ctx;
}

#define OPEN_OR_SKIP(ctx, cap)                                  \
    struct vk_ctx *ctx = open_ctx(cap);                         \
    if (!ctx) {                                                 \
        if (test__failed)                                       \
            return;                                             \
        TEST_SKIP(fixture_asan_slow_unwind() ? "no Vulkan device under ASan slow unwinding (see " \
                  "fixture_asan_slow_unwind)" : "no Vulkan device");    \
    }

/* Fails the case on any validation message, then destroys the context. */
static void close_ctx(struct vk_ctx *ctx)
{
    const char *msg = NULL;
    int n = vk_ctx_validation_errors(ctx, &msg);
    CHECK_MSG(n == 0, "%d validation messages, first: %s", n, msg);
    vkq_check_validation_setup();
    vk_ctx_destroy(ctx);
}

static void fill_gauss(float *x, size_t n, float sd)
{
    for (size_t i = 0; i < n; i++)
        x[i] = sd * (float)test_rng_gauss();
}

/* A device buffer holding n floats from host (NULL: uninitialized). */
static bool make_buf(struct vk_ctx *ctx, struct vk_buffer *b, const void *host, uint64_t bytes)
{
    hearth_status st = vk_buffer_create(ctx, bytes, VK_BUF_DEVICE, b);
    CHECK_OK(st);
    if (st != HEARTH_OK)
        return false;
    if (host) {
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

/* |got - ref| <= atol + rtol |ref| over n values; reports the worst element. */
static void check_close(const char *what, const float *got, const float *ref, size_t n, double atol,
                        double rtol)
{
    size_t bad = 0, worst = 0;
    double worst_ex = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        double lim = atol + rtol * fabs((double)ref[i]);
        if (!(d <= lim)) {
            bad++;
            if (!(d - lim <= worst_ex)) {
                worst_ex = d - lim;
                worst = i;
            }
        }
    }
    CHECK_MSG(bad == 0, "%s: %zu of %zu outside atol %.3g rtol %.3g; worst [%zu] got %.9g ref %.9g",
              what, bad, n, atol, rtol, worst, (double)got[worst], (double)ref[worst]);
}

static const hearth_dtype wtypes[] = {
    HEARTH_DTYPE_F32,  HEARTH_DTYPE_F16,  HEARTH_DTYPE_BF16, HEARTH_DTYPE_Q4_0,   HEARTH_DTYPE_Q4_1,
    HEARTH_DTYPE_Q5_0, HEARTH_DTYPE_Q5_1, HEARTH_DTYPE_Q8_0, HEARTH_DTYPE_Q2_K,   HEARTH_DTYPE_Q3_K,
    HEARTH_DTYPE_Q4_K, HEARTH_DTYPE_Q5_K, HEARTH_DTYPE_Q6_K, HEARTH_DTYPE_IQ4_NL, HEARTH_DTYPE_IQ4_XS,
};
enum { N_WTYPES = sizeof wtypes / sizeof wtypes[0] };

/* A random matrix in type t: packed bytes and its reference dequantization. */
struct qmat {
    hearth_dtype t;
    int64_t n_in, n_out;
    uint64_t row_bytes;
    uint8_t *q;    /* [n_out][row_bytes] */
    float *deq;    /* [n_out][n_in] */
};

static bool qmat_make(struct qmat *m, hearth_dtype t, int64_t n_in, int64_t n_out)
{
    const struct quant_traits *tr = quant_get(t);
    memset(m, 0, sizeof *m);
    if (!tr || !tr->from_float || !tr->to_float ||
                     !quant_row_bytes(t, (uint64_t)n_in, &m->row_bytes)) {
        TEST_FAIL_AT("type %s cannot be quantized at n_in %lld", hearth_dtype_name(t),
                     (long long)n_in);
        return false;
    }
    m->t = t;
    m->n_in = n_in;
    m->n_out = n_out;
    float *src = malloc((size_t)(n_in * n_out) * sizeof *src);
    m->q = malloc(m->row_bytes * (size_t)n_out);
    m->deq = malloc((size_t)(n_in * n_out) * sizeof *m->deq);
    if (!src || !m->q || !m->deq) {
        free(src);
        TEST_FAIL_AT("out of memory");
        return false;
    }
    fill_gauss(src, (size_t)(n_in * n_out), 1.0f);
    for (int64_t r = 0; r < n_out; r++) {
        tr->from_float(src + r * n_in, m->q + (size_t)r * m->row_bytes, n_in);
        tr->to_float(m->q + (size_t)r * m->row_bytes, m->deq + r * n_in, n_in);
    }
    free(src);
    return true;
}

static void qmat_free(struct qmat *m)
{
    free(m->q);
    free(m->deq);
}

/*
 * Runs y = W x on the device (kernel 0 auto, 1 matvec, 2 tiled) and checks
 * every element against the double-precision dot of the reference
 * dequantization (+ bias): |d| <= 1e-6 + 1e-5 * (Σ_k |w_k x_k| + |bias|) (f32 accumulation of up
 * to a few thousand terms stays well inside; a wrong nibble, scale or offset
 * is off by whole quantization steps).
 */
static void run_matmul(struct vk_ctx *ctx, const struct qmat *m, struct vk_view w, int n_tok,
                       int kernel, const char *label)
{
    /* the 7-token runs also add a bias (the optional third input) */
    bool with_bias = n_tok == 7;
    float *bias = malloc((size_t)m->n_out * sizeof *bias);
    struct vk_buffer bb = {0};
    size_t nx = (size_t)n_tok * (size_t)m->n_in, ny = (size_t)n_tok * (size_t)m->n_out;
    float *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y);
    float *ref = malloc(ny * sizeof *ref), *lim = malloc(ny * sizeof *lim);
    struct vk_buffer xb = {0}, yb = {0};
    if (!x || !y || !ref || !lim || !bias) {
        TEST_FAIL_AT("out of memory");
        goto done;
    }
    fill_gauss(x, nx, 1.0f);
    fill_gauss(bias, (size_t)m->n_out, 1.0f);
    for (int t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < m->n_out; r++) {
            double s = with_bias ? (double)bias[r] : 0.0, a = fabs(s);
            for (int64_t k = 0; k < m->n_in; k++) {
                double p = (double)m->deq[r * m->n_in + k] * (double)x[t * m->n_in + k];
                s += p;
                a += fabs(p);
            }
            ref[(size_t)t * (size_t)m->n_out + (size_t)r] = (float)s;
            lim[(size_t)t * (size_t)m->n_out + (size_t)r] = (float)(1e-6 + 1e-5 * a);
        }
    if (!make_buf(ctx, &xb, x, nx * 4) || !make_buf(ctx, &yb, NULL, ny * 4) ||
        !make_buf(ctx, &bb, bias, (uint64_t)m->n_out * 4))
        goto done;
    struct vk_matmul_args a = {
        .type = m->t, .w = w, .row_bytes = m->row_bytes, .n_in = (uint32_t)m->n_in,
        .n_out = (uint32_t)m->n_out, .n_tok = (uint32_t)n_tok, .x = view(&xb),
        .x_stride = (uint32_t)m->n_in, .y = view(&yb), .y_stride = (uint32_t)m->n_out,
        .force_kernel = kernel,
    };
    if (with_bias)
        a.bias = view(&bb);
    CHECK_OK(vk_matmul(ctx, &a));
    CHECK_OK(vk_buffer_download(ctx, &yb, 0, y, ny * 4));
    size_t bad = 0, worst = 0;
    for (size_t i = 0; i < ny; i++)
        if (!(fabsf(y[i] - ref[i]) <= lim[i]) && bad++ == 0)
            worst = i;
    CHECK_MSG(bad == 0, "matmul %s %s %lldx%lld n_tok %d kernel %d: %zu of %zu wrong; first "
              "[%zu] got %.9g ref %.9g lim %.3g", hearth_dtype_name(m->t), label,
              (long long)m->n_out, (long long)m->n_in, n_tok, kernel, bad, ny, worst,
              (double)y[worst], (double)ref[worst], (double)lim[worst]);
done:
    vk_buffer_destroy(ctx, &xb);
    vk_buffer_destroy(ctx, &yb);
    vk_buffer_destroy(ctx, &bb);
    free(bias);
    free(x);
    free(y);
    free(ref);
    free(lim);
}

/* Uploads m as a one-tensor weight set. */
static struct vk_weights *upload_weights(struct vk_ctx *ctx, const struct qmat *m)
{
    struct vk_weights *w = NULL;
    const void *data[1] = {m->q};
    uint64_t bytes[1] = {m->row_bytes * (uint64_t)m->n_out};
    CHECK_OK(vk_weights_create(ctx, 1, data, bytes, &w));
    return w;
}

/* Every weight type: 131 rows (odd: partial row groups and tiles) x 512. */
TEST(matmul_all_types)
{
    OPEN_OR_SKIP(ctx, 0);
    const struct vk_caps *c = vk_ctx_caps(ctx);
    printf("  device: %s; subgroup %u (arith %d), 16-bit storage %d, float16 %d, int8 dot %d, "
           "coopmat %d, memory_budget %d, timestamps %d, maxAlloc %llu MiB, maxStorageRange "
           "%llu MiB\n", c->name, c->subgroup_size, c->subgroup_arith, c->storage_16bit,
           c->float16, c->int8_dot, c->coopmat, c->memory_budget, c->timestamps,
           (unsigned long long)(c->max_alloc >> 20), (unsigned long long)(c->max_storage_range >> 20));
    test_rng_seed(101);
    for (int i = 0; i < N_WTYPES; i++) {
        struct qmat m;
        if (!qmat_make(&m, wtypes[i], 512, 131))
            continue;
        struct vk_weights *w = upload_weights(ctx, &m);
        if (w) {
            struct vk_view wv = vk_weights_view(w, 0);
            run_matmul(ctx, &m, wv, 1, 0, "decode");
            if (c->subgroup_arith) { /* the shared-memory-only reduction too */
                vk_ctx_set_use_subgroup(ctx, false);
                run_matmul(ctx, &m, wv, 1, 0, "decode-no-subgroup");
                vk_ctx_set_use_subgroup(ctx, true);
            }
            run_matmul(ctx, &m, wv, 2, 0, "batch2");
            run_matmul(ctx, &m, wv, 7, 1, "batch7-matvec");
            run_matmul(ctx, &m, wv, 7, 2, "batch7-tiled");
            run_matmul(ctx, &m, wv, 64, 0, "batch64");
        }
        vk_weights_destroy(ctx, w);
        qmat_free(&m);
    }
    close_ctx(ctx);
}

/* n_in of exactly one block (one K step shorter than the tiled kernel's BK for 32-blocks). */
TEST(matmul_one_block)
{
    OPEN_OR_SKIP(ctx, 0);
    test_rng_seed(102);
    for (int i = 0; i < N_WTYPES; i++) {
        const struct quant_traits *tr = quant_get(wtypes[i]);
        int64_t k = tr->blck > 1 ? tr->blck : 4;
        struct qmat m;
        if (!qmat_make(&m, wtypes[i], k, 33))
            continue;
        struct vk_weights *w = upload_weights(ctx, &m);
        if (w) {
            run_matmul(ctx, &m, vk_weights_view(w, 0), 1, 1, "one-block");
            run_matmul(ctx, &m, vk_weights_view(w, 0), 5, 2, "one-block");
        }
        vk_weights_destroy(ctx, w);
        qmat_free(&m);
    }
    close_ctx(ctx);
}

static uint64_t dispatch_count(const struct vk_ctx *ctx)
{
    struct vk_submit_stats s;
    vk_ctx_submit_stats(ctx, &s);
    return s.dispatches;
}

/*
 * vk_matmul_group on three q/k/v-like weights (131, 33 and 64 rows of 512, one
 * weight set, outputs at offsets in one buffer with padded strides, biases in
 * one buffer): one dispatch for 1 and 3 tokens, the same bits as a vk_matmul
 * per weight (each row's arithmetic is unchanged, only the dispatch is shared);
 * with a Q6_K third weight beside two Q4_K, two dispatches; with 5 tokens (the
 * tiled kernel), one per weight; the same bits throughout. The counts come from the context's
 * dispatch counter, so a silent fallback fails the case.
 */
TEST(matmul_group)
{
    OPEN_OR_SKIP(ctx, 0);
    test_rng_seed(107);
    static const struct { hearth_dtype t[3]; } sets[] = {
        {{HEARTH_DTYPE_Q4_K, HEARTH_DTYPE_Q4_K, HEARTH_DTYPE_Q4_K}},
        {{HEARTH_DTYPE_Q6_K, HEARTH_DTYPE_Q6_K, HEARTH_DTYPE_Q6_K}},
        {{HEARTH_DTYPE_Q4_0, HEARTH_DTYPE_Q4_0, HEARTH_DTYPE_Q4_0}},
        {{HEARTH_DTYPE_F16, HEARTH_DTYPE_F16, HEARTH_DTYPE_F16}},
        {{HEARTH_DTYPE_Q4_K, HEARTH_DTYPE_Q4_K, HEARTH_DTYPE_Q6_K}}, /* Q4_K_M's q/k/v mix */
    };
    enum { K = 512, T = 5 };
    static const uint32_t rows[3] = {131, 33, 64};
    const uint32_t yoff[3] = {0, 6 * 132, 6 * 132 + 6 * 34}, ystr[3] = {132, 34, 64};
    const uint64_t ybytes = 4ull * (yoff[2] + 6 * 64), nb = 131 + 33 + 64;
    float *x = malloc((size_t)T * K * sizeof *x), *bias = malloc(nb * sizeof *bias);
    float *yg = malloc(ybytes), *ys = malloc(ybytes);
    struct vk_buffer xb = {0}, bb = {0}, ygb = {0}, ysb = {0};
    if (!x || !bias || !yg || !ys) {
        TEST_FAIL_AT("out of memory");
        goto done;
    }
    fill_gauss(x, (size_t)T * K, 1.0f);
    fill_gauss(bias, nb, 1.0f);
    memset(yg, 0, ybytes);
    if (!make_buf(ctx, &xb, x, (uint64_t)T * K * 4) || !make_buf(ctx, &bb, bias, nb * 4) ||
        !make_buf(ctx, &ygb, yg, ybytes) || !make_buf(ctx, &ysb, yg, ybytes))
        goto done;
    for (size_t si = 0; si < sizeof sets / sizeof sets[0]; si++) {
        struct qmat m[3] = {{0}};
        struct vk_weights *w = NULL;
        bool made = true;
        for (int i = 0; i < 3; i++)
            made = made && qmat_make(&m[i], sets[si].t[i], K, rows[i]);
        if (made) {
            const void *data[3] = {m[0].q, m[1].q, m[2].q};
            uint64_t bytes[3];
            for (int i = 0; i < 3; i++)
                bytes[i] = m[i].row_bytes * rows[i];
            CHECK_OK(vk_weights_create(ctx, 3, data, bytes, &w));
        }
        bool same = sets[si].t[2] == sets[si].t[0];
        static const int toks[] = {1, 3, 5};
        for (int ti = 0; w && ti < 3; ti++)
            for (int with_b = 0; with_b < 2; with_b++) {
                int nt = toks[ti];
                struct vk_matmul_args a[3];
                for (int i = 0; i < 3; i++) {
                    a[i] = (struct vk_matmul_args){
                        .type = m[i].t, .w = vk_weights_view(w, i), .row_bytes = m[i].row_bytes,
                        .n_in = K, .n_out = rows[i], .n_tok = (uint32_t)nt, .x = view(&xb),
                        .x_stride = K, .y = {&ygb, 4ull * yoff[i]}, .y_stride = ystr[i],
                    };
                    if (with_b)
                        a[i].bias = (struct vk_view){&bb, 4ull * (i == 0 ? 0 : i == 1 ? 131 : 164)};
                }
                uint64_t d0 = dispatch_count(ctx);
                CHECK_OK(vk_matmul_group(ctx, a, 3));
                uint64_t fused = dispatch_count(ctx) - d0;
                for (int i = 0; i < 3; i++) {
                    a[i].y.buf = &ysb;
                    CHECK_OK(vk_matmul(ctx, &a[i]));
                }
                CHECK_OK(vk_buffer_download(ctx, &ygb, 0, yg, ybytes));
                CHECK_OK(vk_buffer_download(ctx, &ysb, 0, ys, ybytes));
                uint64_t want = nt > 4 ? 3 : same ? 1 : 2;
                CHECK_MSG(fused == want, "%s/%s/%s n_tok %d bias %d: %llu dispatches, want %llu",
                          hearth_dtype_name(m[0].t), hearth_dtype_name(m[1].t),
                          hearth_dtype_name(m[2].t), nt, with_b, (unsigned long long)fused,
                          (unsigned long long)want);
                size_t bad = 0, first = 0;
                for (size_t i = 0; i < ybytes / 4; i++)
                    if (memcmp(&yg[i], &ys[i], 4) != 0 && bad++ == 0)
                        first = i;
                CHECK_MSG(bad == 0, "%s/%s/%s n_tok %d bias %d: %zu outputs differ from one "
                          "dispatch per weight; first [%zu] %.9g vs %.9g",
                          hearth_dtype_name(m[0].t), hearth_dtype_name(m[1].t),
                          hearth_dtype_name(m[2].t), nt, with_b, bad, first, (double)yg[first],
                          (double)ys[first]);
            }
        vk_weights_destroy(ctx, w);
        for (int i = 0; i < 3; i++)
            qmat_free(&m[i]);
    }
done:
    vk_buffer_destroy(ctx, &xb);
    vk_buffer_destroy(ctx, &bb);
    vk_buffer_destroy(ctx, &ygb);
    vk_buffer_destroy(ctx, &ysb);
    free(x);
    free(bias);
    free(yg);
    free(ys);
    close_ctx(ctx);
}

/* One larger case: Q4_K 1024 x 2048, decode and a 33-token batch. */
TEST(matmul_large)
{
    OPEN_OR_SKIP(ctx, 0);
    test_rng_seed(103);
    struct qmat m;
    if (!qmat_make(&m, HEARTH_DTYPE_Q4_K, 2048, 1024)) {
        close_ctx(ctx);
        return;
    }
    struct vk_weights *w = upload_weights(ctx, &m);
    if (w) {
        run_matmul(ctx, &m, vk_weights_view(w, 0), 1, 0, "large");
        run_matmul(ctx, &m, vk_weights_view(w, 0), 33, 0, "large");
    }
    /* timestamp queries (for bench/): written slots read back, unwritten ones refused */
    if (w && vk_ctx_caps(ctx)->timestamps) {
        struct vk_buffer xb = {0}, yb = {0};
        if (make_buf(ctx, &xb, m.deq, 2048 * 4) && make_buf(ctx, &yb, NULL, 1024 * 4)) {
            struct vk_matmul_args a = {
                .type = m.t, .w = vk_weights_view(w, 0), .row_bytes = m.row_bytes, .n_in = 2048,
                .n_out = 1024, .n_tok = 1, .x = view(&xb), .x_stride = 2048, .y = view(&yb),
                .y_stride = 1024,
            };
            double ns = -1.0;
            CHECK_OK(vk_timestamp(ctx, 0));
            CHECK_OK(vk_matmul(ctx, &a));
            CHECK_OK(vk_timestamp(ctx, 1));
            CHECK_OK(vk_submit(ctx));
            CHECK_OK(vk_timestamp_elapsed_ns(ctx, 0, 1, &ns));
            CHECK(ns >= 0.0);
            printf("  Q4_K 1024x2048 matvec: %.1f us (timestamps)\n", ns / 1e3);
            CHECK_INT_EQ(vk_timestamp_elapsed_ns(ctx, 0, 7, &ns), HEARTH_ERR_INVALID_ARG);
        }
        vk_buffer_destroy(ctx, &xb);
        vk_buffer_destroy(ctx, &yb);
    }
    vk_weights_destroy(ctx, w);
    qmat_free(&m);
    close_ctx(ctx);
}

/*
 * With chunks capped at 1 MiB, five ~600 KiB tensors need five chunks (two
 * never share one), each matmul binds its own chunk at its own offset and
 * is still exact; a tensor over the cap is refused as unsupported.
 */
TEST(weights_split_across_chunks)
{
    OPEN_OR_SKIP(ctx, 1u << 20);
    test_rng_seed(104);
    enum { NT = 5 };
    struct qmat m[NT];
    const void *data[NT];
    uint64_t bytes[NT];
    int made = 0;
    for (int i = 0; i < NT; i++, made++) {
        hearth_dtype t = i % 2 ? HEARTH_DTYPE_Q8_0 : HEARTH_DTYPE_Q4_0;
        if (!qmat_make(&m[i], t, 1024, (i % 2 ? 560 : 1000) + 8 * i))
            break;
        data[i] = m[i].q;
        bytes[i] = m[i].row_bytes * (uint64_t)m[i].n_out;
    }
    struct vk_weights *w = NULL;
    if (made == NT) {
        CHECK_OK(vk_weights_create(ctx, NT, data, bytes, &w));
    }
    if (w) {
        CHECK(w->n_chunks == NT);
        for (int i = 0; i < NT; i++) {
            CHECK(w->chunks[w->chunk_of[i]].size <= vk_ctx_caps(ctx)->max_chunk);
            run_matmul(ctx, &m[i], vk_weights_view(w, i), 1, 0, "split");
            run_matmul(ctx, &m[i], vk_weights_view(w, i), 9, 0, "split");
        }
        /* small tensors share a chunk: 3 x 200 KiB fit in one 1 MiB chunk */
        struct vk_weights *w2 = NULL;
        uint64_t small[3] = {200 << 10, 200 << 10, 200 << 10};
        const void *sd[3] = {m[0].q, m[0].q, m[0].q};
        CHECK_OK(vk_weights_create(ctx, 3, sd, small, &w2));
        if (w2) {
            CHECK_INT_EQ(w2->n_chunks, 1);
            CHECK(w2->offset_of[1] % 256 == 0 && w2->offset_of[1] >= small[0]);
        }
        vk_weights_destroy(ctx, w2);
        uint64_t big[1] = {2u << 20};
        const void *bd[1] = {m[0].q};
        struct vk_weights *w3 = NULL;
        CHECK_INT_EQ(vk_weights_create(ctx, 1, bd, big, &w3), HEARTH_ERR_UNSUPPORTED);
        CHECK(w3 == NULL);
    }
    vk_weights_destroy(ctx, w);
    for (int i = 0; i < made; i++)
        qmat_free(&m[i]);
    close_ctx(ctx);
}

/*
 * The frames' host staging (command.c) grows on demand and never past
 * vk_host_staging_bytes, the worst case the planner charges to the host.
 * max_chunk 3 MiB + 8 makes the per-frame cap 3 MiB (rounded down to 16):
 * a small copy grows less; whole-chunk uploads (a 3 MiB piece and an 8-byte
 * one each) stay within it; 3 MiB uploads through every frame reach it
 * exactly; every byte arrives.
 */
TEST(staging_stays_within_its_worst_case)
{
    const uint64_t chunk = (3ull << 20) + 8;
    OPEN_OR_SKIP(ctx, chunk + 256);
    CHECK_INT_EQ(vk_ctx_caps(ctx)->max_chunk, chunk);
    const uint64_t worst = vk_host_staging_bytes(chunk);
    CHECK_INT_EQ(worst, 4ll * (3 << 20));
    CHECK_INT_EQ(vk_host_staging_bytes(4ull << 30), 4ll * (64 << 20));
    enum { NB = 6 };
    struct vk_buffer b[NB];
    memset(b, 0, sizeof b);
    uint8_t *h = malloc(chunk), *r = malloc(chunk);
    REQUIRE(h && r);
    test_rng_seed(111);
    for (uint64_t i = 0; i < chunk; i++)
        h[i] = (uint8_t)(test_rng_u64() >> 56);
    for (int i = 0; i < NB; i++)
        CHECK_OK(vk_buffer_create(ctx, chunk, VK_BUF_DEVICE, &b[i]));
    struct vk_submit_stats s;
    if (b[NB - 1].buf) {
        CHECK_OK(vk_buffer_upload(ctx, &b[0], 0, h, 1000));
        CHECK_OK(vk_submit(ctx));
        vk_ctx_submit_stats(ctx, &s);
        CHECK_MSG(s.staging_bytes > 0 && s.staging_bytes < worst, "after 1000 bytes: %llu",
                  (unsigned long long)s.staging_bytes);
        for (int i = 0; i < NB; i++)
            CHECK_OK(vk_buffer_upload(ctx, &b[i], 0, h, chunk));
        CHECK_OK(vk_submit(ctx));
        vk_ctx_submit_stats(ctx, &s);
        CHECK_MSG(s.staging_bytes <= worst, "whole chunks: %llu > %llu",
                  (unsigned long long)s.staging_bytes, (unsigned long long)worst);
        for (int i = 0; i < NB; i++)
            CHECK_OK(vk_buffer_upload(ctx, &b[i], 0, h, 3u << 20));
        for (int i = 0; i < NB; i++) {
            CHECK_OK(vk_buffer_download(ctx, &b[i], 0, r, chunk));
            CHECK_MSG(memcmp(h, r, chunk) == 0, "buffer %d: bytes differ", i);
        }
        vk_ctx_submit_stats(ctx, &s);
        CHECK_INT_EQ(s.staging_bytes, worst);
    }
    for (int i = 0; i < NB; i++)
        vk_buffer_destroy(ctx, &b[i]);
    free(h);
    free(r);
    close_ctx(ctx);
}

/* rmsnorm vs cpu_rmsnorm: |d| <= 1e-6 + 2e-6 |ref| (one f32 sum of squares, order differs). */
TEST(rmsnorm)
{
    OPEN_OR_SKIP(ctx, 0);
    test_rng_seed(105);
    enum { N = 576, R = 7 };
    float *x = malloc(N * R * 4), *g = malloc(N * 4), *ref = malloc(N * R * 4), *y = malloc(N * R * 4);
    struct vk_buffer xb = {0}, gb = {0}, yb = {0};
    REQUIRE(x && g && ref && y);
    fill_gauss(x, N * R, 2.0f);
    fill_gauss(g, N, 1.0f);
    if (make_buf(ctx, &xb, x, N * R * 4) && make_buf(ctx, &gb, g, N * 4) &&
        make_buf(ctx, &yb, NULL, N * R * 4)) {
        for (int with_w = 0; with_w < 2; with_w++) {
            for (int r = 0; r < R; r++)
                cpu_rmsnorm(ref + r * N, x + r * N, with_w ? g : NULL, N, 1e-5f);
            struct vk_view none = {0};
            CHECK_OK(vk_rmsnorm(ctx, view(&xb), N, with_w ? view(&gb) : none, view(&yb), N, N, R,
                                1e-5f));
            CHECK_OK(vk_buffer_download(ctx, &yb, 0, y, N * R * 4));
            check_close(with_w ? "rmsnorm" : "rmsnorm (no gain)", y, ref, N * R, 1e-6, 2e-6);
        }
        /* in place (y aliases x) */
        CHECK_OK(vk_rmsnorm(ctx, view(&xb), N, view(&gb), view(&xb), N, N, R, 1e-5f));
        CHECK_OK(vk_buffer_download(ctx, &xb, 0, y, N * R * 4));
        check_close("rmsnorm in place", y, ref, N * R, 1e-6, 2e-6);
    }
    vk_buffer_destroy(ctx, &xb);
    vk_buffer_destroy(ctx, &gb);
    vk_buffer_destroy(ctx, &yb);
    free(x);
    free(g);
    free(ref);
    free(y);
    close_ctx(ctx);
}

/*
 * rope vs cpu_rope_table + cpu_rope, both modes, full and partial rotation,
 * llama3 divisors: |d| <= 2e-4 + 1e-4 |ref| at positions up to ~2000 (theta
 * is f32 on the device, double on the CPU: ~pos * 6e-8 rad per element).
 */
TEST(rope)
{
    OPEN_OR_SKIP(ctx, 0);
    test_rng_seed(106);
    enum { T = 7, H = 5, HD = 64 };
    float *x = malloc(T * H * HD * 4), *ref = malloc(T * H * HD * 4), *y = malloc(T * H * HD * 4);
    float divs[HD / 2], inv[HD / 2], cs[HD];
    struct vk_buffer xb = {0}, fb = {0};
    REQUIRE(x && ref && y);
    for (int k = 0; k < HD / 2; k++)
        divs[k] = 1.0f + 7.0f * (float)test_rng_uniform();
    if (make_buf(ctx, &xb, NULL, T * H * HD * 4) && make_buf(ctx, &fb, NULL, HD / 2 * 4)) {
        for (int c = 0; c < 8; c++) {
            enum model_rope_mode mode = c & 1 ? MODEL_ROPE_NEOX : MODEL_ROPE_NORMAL;
            int n_rot = c & 2 ? HD / 2 : HD;
            const float *dv = c & 4 ? divs : NULL;
            uint32_t pos0 = c & 4 ? 1990 : 3;
            fill_gauss(x, T * H * HD, 1.0f);
            memcpy(ref, x, T * H * HD * 4);
            for (int t = 0; t < T; t++) {
                cpu_rope_table(cs, n_rot, pos0 + t, 10000.0f, 0.5f, dv);
                cpu_rope(ref + t * H * HD, H, HD, n_rot, cs, mode);
            }
            vk_rope_inv_freq(inv, n_rot, 10000.0f, 0.5f, dv);
            CHECK_OK(vk_buffer_upload(ctx, &xb, 0, x, T * H * HD * 4));
            CHECK_OK(vk_buffer_upload(ctx, &fb, 0, inv, (uint64_t)n_rot / 2 * 4));
            CHECK_OK(vk_rope(ctx, view(&xb), H * HD, T, H, HD, (uint32_t)n_rot, pos0, mode, view(&fb)));
            CHECK_OK(vk_buffer_download(ctx, &xb, 0, y, T * H * HD * 4));
            char what[64];
            snprintf(what, sizeof what, "rope %s n_rot %d divs %d pos0 %u",
                     mode == MODEL_ROPE_NEOX ? "neox" : "normal", n_rot, dv != NULL, pos0);
            check_close(what, y, ref, T * H * HD, 2e-4, 1e-4);
        }
    }
    vk_buffer_destroy(ctx, &xb);
    vk_buffer_destroy(ctx, &fb);
    free(x);
    free(ref);
    free(y);
    close_ctx(ctx);
}

/*
 * What the attention tests share: n_tok tokens of gaussian q [n_tok][nh * hd]
 * and k, v [n_tok][nkv * hd] on the host (kc, vc: their f16 roundings, the
 * CPU reference's cache) and on the device, F16 caches of n_ctx rows, out
 * [n_tok][nh * hd].
 */
struct attn_fix {
    uint32_t nh, nkv, hd, n_ctx, n_tok;
    float *q, *k, *v, *ref, *scores;
    uint16_t *kc, *vc;
    struct vk_buffer qb, kb, vb, kcb, vcb, ob;
};

static bool attn_fix_init(struct vk_ctx *ctx, struct attn_fix *f, uint32_t nh, uint32_t nkv,
                          uint32_t hd, uint32_t n_ctx, uint32_t n_tok)
{
    *f = (struct attn_fix){.nh = nh, .nkv = nkv, .hd = hd, .n_ctx = n_ctx, .n_tok = n_tok};
    size_t qn = (size_t)n_tok * nh * hd, kn = (size_t)n_tok * nkv * hd;
    uint64_t cache = (uint64_t)n_ctx * nkv * hd * 2;
    f->q = malloc(qn * 4), f->k = malloc(kn * 4), f->v = malloc(kn * 4);
    f->ref = malloc(qn * 4), f->scores = malloc((size_t)n_ctx * 4);
    f->kc = malloc(kn * 2), f->vc = malloc(kn * 2);
    if (!(f->q && f->k && f->v && f->ref && f->scores && f->kc && f->vc)) {
        CHECK_MSG(false, "attention fixture: no host memory for %u tokens", n_tok);
        return false;
    }
    fill_gauss(f->q, qn, 1.0f);
    fill_gauss(f->k, kn, 1.0f);
    fill_gauss(f->v, kn, 1.0f);
    for (size_t i = 0; i < kn; i++) {
        f->kc[i] = f32_to_f16(f->k[i]);
        f->vc[i] = f32_to_f16(f->v[i]);
    }
    return make_buf(ctx, &f->qb, f->q, qn * 4) && make_buf(ctx, &f->kb, f->k, kn * 4) &&
           make_buf(ctx, &f->vb, f->v, kn * 4) && make_buf(ctx, &f->kcb, NULL, cache) &&
           make_buf(ctx, &f->vcb, NULL, cache) && make_buf(ctx, &f->ob, NULL, qn * 4);
}

static void attn_fix_free(struct vk_ctx *ctx, struct attn_fix *f)
{
    struct vk_buffer *b[6] = {&f->qb, &f->kb, &f->vb, &f->kcb, &f->vcb, &f->ob};
    for (int i = 0; i < 6; i++)
        vk_buffer_destroy(ctx, b[i]);
    free(f->q), free(f->k), free(f->v), free(f->ref), free(f->scores), free(f->kc), free(f->vc);
}

/* vk_attention's arguments for tokens [pos0, pos0 + n_tok) of f (packed rows). */
static struct vk_attn_args attn_fix_args(struct attn_fix *f, uint32_t pos0, uint32_t n_tok,
                                         uint32_t window, float scale)
{
    uint32_t qd = f->nh * f->hd, kvd = f->nkv * f->hd;
    return (struct vk_attn_args){
        .q = {&f->qb, (uint64_t)pos0 * qd * 4}, .k_new = {&f->kb, (uint64_t)pos0 * kvd * 4},
        .v_new = {&f->vb, (uint64_t)pos0 * kvd * 4}, .k_cache = view(&f->kcb),
        .v_cache = view(&f->vcb), .out = {&f->ob, (uint64_t)pos0 * qd * 4}, .q_stride = qd,
        .kv_stride = kvd, .o_stride = qd, .n_tok = n_tok, .n_head = f->nh, .n_head_kv = f->nkv,
        .head_dim = f->hd, .n_ctx = f->n_ctx, .pos0 = pos0, .window = window, .scale = scale,
    };
}

/* f->ref's row of position p: cpu_attn_head of every head over the host f16 cache. */
static void attn_fix_ref(struct attn_fix *f, uint32_t p, uint32_t window, float scale)
{
    static const struct cpu_attn_kernels ak = {cpu_dot_f16_scalar, cpu_axpy_f16_scalar,
                                               cpu_attn_heads_ref, cpu_exp_sum_scalar};
    size_t qd = (size_t)f->nh * f->hd, kvd = (size_t)f->nkv * f->hd;
    int lo = window && p + 1 > window ? (int)(p + 1 - window) : 0;
    for (uint32_t h = 0; h < f->nh; h++) {
        size_t col = (size_t)(h / (f->nh / f->nkv)) * f->hd;
        cpu_attn_head(&ak, f->ref + p * qd + (size_t)h * f->hd, f->q + p * qd + (size_t)h * f->hd,
                      f->kc + (size_t)lo * kvd + col, f->vc + (size_t)lo * kvd + col, (int)kvd,
                      lo, (int)p, (int)f->hd, scale, f->scores);
    }
}

/*
 * Attention with GQA (4 query heads on 2 KV heads, head_dim 64): a 150-token
 * prefill (two chunks of the online softmax) then a 7-token batch at position
 * 150, with and without a 32-position sliding window, against cpu_attn_head
 * on a CPU-side F16 cache. The stored cache must equal f32_to_f16 of the new
 * rows to within one f16 ulp; outputs |d| <= 2e-5 + 1e-4 |ref|.
 */
TEST(attention)
{
    OPEN_OR_SKIP(ctx, 0);
    test_rng_seed(107);
    enum { NH = 4, NKV = 2, HD = 64, KVD = NKV * HD, NCTX = 200, T0 = 150, T1 = 7 };
    const float scale = 0.125f;
    size_t qn = (size_t)(T0 + T1) * NH * HD, kn = (size_t)(T0 + T1) * KVD;
    struct attn_fix f;
    float *out = malloc(qn * 4);
    uint16_t *kc_dev = malloc(kn * 2);
    REQUIRE(out && kc_dev);
    if (attn_fix_init(ctx, &f, NH, NKV, HD, NCTX, T0 + T1)) {
        for (int win = 0; win < 2; win++) {
            uint32_t window = win ? 32 : 0;
            CHECK_OK(vk_buffer_fill(ctx, &f.kcb, 0, (uint64_t)NCTX * KVD * 2, 0));
            CHECK_OK(vk_buffer_fill(ctx, &f.vcb, 0, (uint64_t)NCTX * KVD * 2, 0));
            for (int step = 0; step < 2; step++) {
                struct vk_attn_args a = attn_fix_args(&f, step ? T0 : 0, step ? T1 : T0, window,
                                                      scale);
                CHECK_OK(vk_attention(ctx, &a));
            }
            CHECK_OK(vk_buffer_download(ctx, &f.ob, 0, out, qn * 4));
            CHECK_OK(vk_buffer_download(ctx, &f.kcb, 0, kc_dev, kn * 2));
            size_t ulp_bad = 0;
            for (size_t i = 0; i < kn; i++)
                ulp_bad += abs((int)kc_dev[i] - (int)f.kc[i]) > 1;
            CHECK_MSG(ulp_bad == 0, "%zu cached K halves off by more than 1 ulp", ulp_bad);
            for (uint32_t p = 0; p < T0 + T1; p++)
                attn_fix_ref(&f, p, window, scale);
            check_close(win ? "attention (window 32)" : "attention (causal)", out, f.ref, qn,
                        2e-5, 1e-4);
        }
    }
    attn_fix_free(ctx, &f);
    free(out);
    free(kc_dev);
    close_ctx(ctx);
}

/*
 * Flash-decoding (vulkan/attn-split.c): a 2102-position sequence of GQA (6
 * query heads on 2 KV heads, head_dim 80: a partly used second output dim
 * per invocation) in calls of the rule's count (a 6-token start, one token
 * at 2095: 17 splits of 124 positions, five at 2096; 2 splits under the
 * 300-position window) and of forced ones (64 splits over 7 positions, so
 * 57 pieces are empty; 5 over a 3-token batch at 7; 7 at 2101), with a
 * 2085 positions of history between, uploaded into the caches as the
 * reference's f16 rows (a prefill through the kernel would cost lavapipe
 * half a minute and is attention's own test), causal and windowed, against
 * cpu_attn_head as TEST(attention). Same bound: |d| <= 2e-5 + 1e-4 |ref|.
 * The split only reorders the sums (each piece's exponentials against its
 * own running max, rescaled by e^(m_s - M) at the merge: a few f32 roundings
 * per term more), so it is not bit-exact against the single pass, but the
 * outputs, weighted means of O(1) values, stay ~1e-7 off: far inside it.
 */
TEST(attention_split)
{
    OPEN_OR_SKIP(ctx, 0);
    test_rng_seed(109);
    enum { NH = 6, NKV = 2, HD = 80, NCTX = 2200, NTOK = 2102 };
    static const struct { uint32_t pos0, n_tok, n_split; bool check; } calls[] = {
        {0, 6, 0, true},     {6, 1, 64, true},   {7, 3, 5, true},      {10, 2085, 0, false},
        {2095, 1, 0, true},  {2096, 5, 0, true}, {2101, 1, 7, true},
    };
    /* the rule splits these decode shapes, not prefill, and never past its cap */
    CHECK(vk_attn_pick_split(1, NH, NCTX) > 1 && vk_attn_pick_split(5, NH, NCTX) > 1);
    CHECK(vk_attn_pick_split(1, NH, 300) == 2 && vk_attn_pick_split(2085, NH, NCTX) == 1);
    CHECK(vk_attn_pick_split(1, 1, 1u << 24) == 64 && vk_attn_pick_split(1, NH, 100) == 1);
    const float scale = 0.11f;
    size_t row = (size_t)NH * HD;
    struct attn_fix f;
    struct vk_buffer split = {0};
    float *got = malloc((size_t)NTOK * row * 4), *want = malloc((size_t)NTOK * row * 4);
    REQUIRE(got && want);
    if (attn_fix_init(ctx, &f, NH, NKV, HD, NCTX, NTOK)) {
        for (int win = 0; win < 2; win++) {
            uint32_t window = win ? 300 : 0;
            size_t n_got = 0;
            for (size_t c = 0; c < sizeof calls / sizeof calls[0]; c++) {
                uint32_t pos0 = calls[c].pos0, nt = calls[c].n_tok;
                if (!calls[c].check) { /* history: the rows go straight into the caches */
                    size_t kvd = (size_t)NKV * HD, off = (size_t)pos0 * kvd;
                    CHECK_OK(vk_buffer_upload(ctx, &f.kcb, off * 2, f.kc + off, nt * kvd * 2));
                    CHECK_OK(vk_buffer_upload(ctx, &f.vcb, off * 2, f.vc + off, nt * kvd * 2));
                    continue;
                }
                struct vk_attn_args a = attn_fix_args(&f, pos0, nt, window, scale);
                a.split_scratch = &split;
                a.n_split = calls[c].n_split;
                CHECK_OK(vk_attention(ctx, &a));
                CHECK_OK(vk_buffer_download(ctx, &f.ob, pos0 * row * 4, got + n_got,
                                            nt * row * 4));
                for (uint32_t p = pos0; p < pos0 + nt; p++)
                    attn_fix_ref(&f, p, window, scale);
                memcpy(want + n_got, f.ref + pos0 * row, nt * row * 4);
                n_got += nt * row;
            }
            check_close(win ? "split attention (window 300)" : "split attention (causal)", got,
                        want, n_got, 2e-5, 1e-4);
        }
    }
    attn_fix_free(ctx, &f);
    vk_buffer_destroy(ctx, &split);
    free(got);
    free(want);
    close_ctx(ctx);
}

/*
 * swiglu / geglu vs cpu_swiglu / cpu_geglu (|d| <= 1e-6 + 2e-6 |ref|: exp and
 * tanh differ in the last bits between libm and the driver); add and scale
 * are exact in f32 and must match bit for bit. n = 1000: not a multiple of
 * the workgroup.
 */
TEST(eltwise)
{
    OPEN_OR_SKIP(ctx, 0);
    test_rng_seed(108);
    enum { N = 1000 };
    float a[N], b[N], ref[N], y[N];
    struct vk_buffer ab = {0}, bb = {0};
    if (make_buf(ctx, &ab, NULL, N * 4) && make_buf(ctx, &bb, NULL, N * 4)) {
        for (int op = 0; op < 4; op++) {
            fill_gauss(a, N, 3.0f);
            fill_gauss(b, N, 1.0f);
            a[0] = 60.0f; /* saturating gates */
            a[1] = -60.0f;
            memcpy(ref, a, sizeof a);
            CHECK_OK(vk_buffer_upload(ctx, &ab, 0, a, N * 4));
            CHECK_OK(vk_buffer_upload(ctx, &bb, 0, b, N * 4));
            if (op == 0) {
                cpu_swiglu(ref, b, N);
                CHECK_OK(vk_swiglu(ctx, view(&ab), view(&bb), N));
            } else if (op == 1) {
                cpu_geglu(ref, b, N);
                CHECK_OK(vk_geglu(ctx, view(&ab), view(&bb), N));
            } else if (op == 2) {
                cpu_add(ref, b, N);
                CHECK_OK(vk_add(ctx, view(&ab), view(&bb), N));
            } else {
                for (int i = 0; i < N; i++)
                    ref[i] *= 25.298221f;
                CHECK_OK(vk_scale(ctx, view(&ab), N, 25.298221f));
            }
            CHECK_OK(vk_buffer_download(ctx, &ab, 0, y, N * 4));
            static const char *names[] = {"swiglu", "geglu", "add", "scale"};
            if (op < 2)
                check_close(names[op], y, ref, N, 1e-6, 2e-6);
            else
                check_close(names[op], y, ref, N, 0.0, 0.0);
        }
    }
    vk_buffer_destroy(ctx, &ab);
    vk_buffer_destroy(ctx, &bb);
    close_ctx(ctx);
}

/*
 * Embedding rows of every type (scale 2.5, ids out of order and repeated, the
 * last row included) vs to_float of the row: |d| <= 1e-6 * max|row| + 1e-6 |ref|
 * (same formula as the reference, evaluation order may differ by an ulp).
 */
TEST(embed_all_types)
{
    OPEN_OR_SKIP(ctx, 0);
    test_rng_seed(109);
    enum { NIN = 512, NR = 40, NI = 6 };
    uint32_t ids[NI] = {39, 0, 17, 17, 5, 38};
    float y[NI * NIN], ref[NI * NIN];
    struct vk_buffer ib = {0}, yb = {0};
    if (make_buf(ctx, &ib, ids, sizeof ids) && make_buf(ctx, &yb, NULL, sizeof y)) {
        for (int i = 0; i < N_WTYPES; i++) {
            struct qmat m;
            if (!qmat_make(&m, wtypes[i], NIN, NR))
                continue;
            struct vk_weights *w = upload_weights(ctx, &m);
            if (w) {
                struct vk_embed_args a = {
                    .type = m.t, .w = vk_weights_view(w, 0), .row_bytes = m.row_bytes,
                    .n_in = NIN, .n_rows = NR, .ids = view(&ib), .n_ids = NI, .y = view(&yb),
                    .y_stride = NIN, .scale = 2.5f,
                };
                CHECK_OK(vk_embed(ctx, &a));
                CHECK_OK(vk_buffer_download(ctx, &yb, 0, y, sizeof y));
                float mx = 0.0f;
                for (int j = 0; j < NI; j++)
                    for (int e = 0; e < NIN; e++) {
                        ref[j * NIN + e] = 2.5f * m.deq[ids[j] * NIN + e];
                        mx = fmaxf(mx, fabsf(ref[j * NIN + e]));
                    }
                char what[64];
                snprintf(what, sizeof what, "embed %s", hearth_dtype_name(m.t));
                check_close(what, y, ref, NI * NIN, 1e-6 * (double)mx, 1e-6);
            }
            vk_weights_destroy(ctx, w);
            qmat_free(&m);
        }
    }
    vk_buffer_destroy(ctx, &ib);
    vk_buffer_destroy(ctx, &yb);
    close_ctx(ctx);
}

/* Bad arguments are statuses with a message, never a crash or a bad dispatch. */
TEST(rejects_bad_args)
{
    OPEN_OR_SKIP(ctx, 0);
    struct vk_buffer b = {0};
    if (make_buf(ctx, &b, NULL, 4096)) {
        struct vk_matmul_args a = {
            .type = HEARTH_DTYPE_TQ1_0, .w = view(&b), .row_bytes = 54, .n_in = 256, .n_out = 1,
            .n_tok = 1, .x = view(&b), .x_stride = 256, .y = view(&b), .y_stride = 1,
        };
        CHECK_INT_EQ(vk_matmul(ctx, &a), HEARTH_ERR_UNSUPPORTED);
        a.type = HEARTH_DTYPE_Q4_0;
        a.row_bytes = 144;
        a.n_out = 100; /* 100 rows of 144 bytes do not fit in 4096 */
        CHECK_INT_EQ(vk_matmul(ctx, &a), HEARTH_ERR_INVALID_ARG);
        a.row_bytes = 100; /* wrong row size for Q4_0 x 256 */
        a.n_out = 1;
        CHECK_INT_EQ(vk_matmul(ctx, &a), HEARTH_ERR_INVALID_ARG);
        CHECK(strstr(hearth_last_error(), "row_bytes") != NULL);
        struct vk_view odd = {&b, 2};
        CHECK_INT_EQ(vk_add(ctx, odd, view(&b), 4), HEARTH_ERR_INVALID_ARG);
        CHECK_INT_EQ(vk_scale(ctx, view(&b), 2000, 1.0f), HEARTH_ERR_INVALID_ARG);
    }
    vk_buffer_destroy(ctx, &b);
    close_ctx(ctx);
}

TEST_MAIN(TEST_CASE(matmul_all_types), TEST_CASE(matmul_one_block), TEST_CASE(matmul_group),
          TEST_CASE(matmul_large),
          TEST_CASE(weights_split_across_chunks), TEST_CASE(staging_stays_within_its_worst_case),
          TEST_CASE(rmsnorm), TEST_CASE(rope),
          TEST_CASE(attention), TEST_CASE(attention_split), TEST_CASE(eltwise), TEST_CASE(embed_all_types),
          TEST_CASE(rejects_bad_args))

#else /* no Vulkan backend in this build */

TEST(vulkan_not_built)
{
    TEST_SKIP("no Vulkan device (backend not built: HEARTH_VULKAN=OFF or no loader/glslc)");
}

TEST_MAIN(TEST_CASE(vulkan_not_built))
#endif
