/*
 * test-vk-f16: the two paths for F16 weights on Vulkan, and the validation
 * plumbing itself.
 *
 * Where the device has storageBuffer16BitAccess, device.c enables it and the
 * F16 matmul/embed kernels read groups of four halves as one f16vec4; with
 * vk_ctx_opts.no_16bit the device is created without the feature and the
 * word-assembly kernels run. Both decode the same halves exactly and sum in
 * the same order, so the two paths must agree BIT FOR BIT with each other,
 * and both must be within float rounding of a double reference. The 16-bit
 * case also checks that the 16-bit pipelines were the ones built (so the
 * comparison is not the word path twice), and that a weight at an offset
 * that is 4 but not 8 modulo 8 falls back to the word path and stays exact.
 * Under HEARTH_VULKAN_VALIDATE=1, a 16-bit shader run on the device without
 * the feature would be a validation error, which fails the case.
 *
 * validation_reports: with the layer required (opts.validate), a deliberate
 * misuse (vkCmdFillBuffer of 6 bytes) must fail the next vk_submit with
 * HEARTH_ERR_BACKEND naming the VUID, and be counted. Skips without the
 * layer (Debian: vulkan-validationlayers); without a device everything skips.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "vk-env.h"
#include "fixtures.h"

#ifdef HEARTH_WITH_VULKAN
#include "../vulkan/vk-internal.h"
#include "f16.h"
#include "quant.h"

static struct vk_ctx *open_ctx(const struct vk_ctx_opts *o, hearth_status *st_out)
{
    *st_out = HEARTH_ERR_NOT_FOUND;
    if (fixture_asan_slow_unwind())
        return NULL;
    vk_keep_driver_loaded();
    struct vk_ctx *ctx = NULL;
    *st_out = vk_ctx_create(o, &ctx);
    return ctx;
}

static void close_ctx(struct vk_ctx *ctx)
{
    const char *msg = NULL;
    int n = vk_ctx_validation_errors(ctx, &msg);
    CHECK_MSG(n == 0, "%d validation messages, first: %s", n, msg);
    if (vk_ctx_caps(ctx)->validation_missing)
        vkq_check_validation_setup();
    vk_ctx_destroy(ctx);
}

enum { N_IN = 520, N_OUT = 67, MAX_TOK = 40, W_PAD = 4 };

/* A random F16 matrix [N_OUT][N_IN] and the activations [MAX_TOK][N_IN]. */
struct data {
    uint16_t *w;   /* [N_OUT][N_IN] halves */
    float *wf;     /* the same, as floats */
    float *x;      /* [MAX_TOK][N_IN] */
    uint32_t ids[5];
};

static bool data_make(struct data *d)
{
    memset(d, 0, sizeof *d);
    d->w = malloc((size_t)N_OUT * N_IN * sizeof *d->w);
    d->wf = malloc((size_t)N_OUT * N_IN * sizeof *d->wf);
    d->x = malloc((size_t)MAX_TOK * N_IN * sizeof *d->x);
    if (!d->w || !d->wf || !d->x) {
        TEST_FAIL_AT("out of memory");
        return false;
    }
    test_rng_seed(501);
    for (size_t i = 0; i < (size_t)N_OUT * N_IN; i++) {
        d->w[i] = f32_to_f16((float)test_rng_gauss());
        d->wf[i] = f16_to_f32(d->w[i]);
    }
    for (size_t i = 0; i < (size_t)MAX_TOK * N_IN; i++)
        d->x[i] = (float)test_rng_gauss();
    const uint32_t ids[5] = {0, 66, 3, 3, 41};
    memcpy(d->ids, ids, sizeof ids);
    return true;
}

static void data_free(struct data *d)
{
    free(d->w);
    free(d->wf);
    free(d->x);
}

/* Outputs of one path: matmul for n_tok 1, 3, 7 (tiled), 40, then embed of 5 ids. */
enum { N_RUNS = 4 };
static const int run_tok[N_RUNS] = {1, 3, 7, 40};
static const int run_kernel[N_RUNS] = {0, 0, 2, 0};
enum { OUT_FLOATS = (1 + 3 + 7 + 40) * N_OUT + 5 * N_IN };

/*
 * Runs every op on ctx with the weight at byte offset w_off of its buffer;
 * out gets OUT_FLOATS floats. Checks each against the double reference:
 * |d| <= 1e-6 + 1e-5 Σ|w x| (matmul), exact (embed: f16 -> f32 is exact).
 */
static void run_all(struct vk_ctx *ctx, const struct data *d, uint64_t w_off, float *out,
                    const char *label)
{
    struct vk_buffer wb = {0}, xb = {0}, yb = {0}, ib = {0};
    uint64_t wbytes = (uint64_t)N_OUT * N_IN * 2;
    CHECK_OK(vk_buffer_create(ctx, w_off + wbytes, VK_BUF_DEVICE, &wb));
    CHECK_OK(vk_buffer_create(ctx, (uint64_t)MAX_TOK * N_IN * 4, VK_BUF_DEVICE, &xb));
    CHECK_OK(vk_buffer_create(ctx, (uint64_t)MAX_TOK * N_IN * 4, VK_BUF_DEVICE, &yb));
    CHECK_OK(vk_buffer_create(ctx, sizeof d->ids, VK_BUF_DEVICE, &ib));
    if (test__failed)
        goto done;
    CHECK_OK(vk_buffer_upload(ctx, &wb, w_off, d->w, wbytes));
    CHECK_OK(vk_buffer_upload(ctx, &xb, 0, d->x, (uint64_t)MAX_TOK * N_IN * 4));
    CHECK_OK(vk_buffer_upload(ctx, &ib, 0, d->ids, sizeof d->ids));
    size_t at = 0;
    for (int r = 0; r < N_RUNS; r++) {
        int nt = run_tok[r];
        struct vk_matmul_args a = {
            .type = HEARTH_DTYPE_F16, .w = {&wb, w_off}, .row_bytes = N_IN * 2, .n_in = N_IN,
            .n_out = N_OUT, .n_tok = (uint32_t)nt, .x = {&xb, 0}, .x_stride = N_IN,
            .y = {&yb, 0}, .y_stride = N_OUT, .force_kernel = run_kernel[r],
        };
        CHECK_OK(vk_matmul(ctx, &a));
        CHECK_OK(vk_buffer_download(ctx, &yb, 0, out + at, (uint64_t)nt * N_OUT * 4));
        int bad = 0;
        for (int t = 0; t < nt; t++)
            for (int o = 0; o < N_OUT; o++) {
                double s = 0.0, l = 0.0;
                for (int k = 0; k < N_IN; k++) {
                    double p = (double)d->wf[o * N_IN + k] * (double)d->x[t * N_IN + k];
                    s += p;
                    l += fabs(p);
                }
                float got = out[at + (size_t)t * N_OUT + (size_t)o];
                if (!(fabs((double)got - s) <= 1e-6 + 1e-5 * l) && bad++ == 0)
                    TEST_FAIL_AT("%s: matmul n_tok %d [%d][%d] got %.9g ref %.9g", label, nt, t,
                                 o, (double)got, s);
            }
        at += (size_t)nt * N_OUT;
    }
    struct vk_embed_args e = {
        .type = HEARTH_DTYPE_F16, .w = {&wb, w_off}, .row_bytes = N_IN * 2, .n_in = N_IN,
        .n_rows = N_OUT, .ids = {&ib, 0}, .n_ids = 5, .y = {&yb, 0}, .y_stride = N_IN,
        .scale = 1.0f,
    };
    CHECK_OK(vk_embed(ctx, &e));
    CHECK_OK(vk_buffer_download(ctx, &yb, 0, out + at, 5 * N_IN * 4));
    for (int i = 0; i < 5; i++)
        CHECK_MSG(memcmp(out + at + (size_t)i * N_IN, d->wf + (size_t)d->ids[i] * N_IN,
                         N_IN * 4) == 0, "%s: embed row %d (id %u) differs", label, i, d->ids[i]);
done:
    vk_buffer_destroy(ctx, &wb);
    vk_buffer_destroy(ctx, &xb);
    vk_buffer_destroy(ctx, &yb);
    vk_buffer_destroy(ctx, &ib);
}

static void check_same(const float *a, const float *b, const char *what)
{
    size_t i = 0;
    while (i < OUT_FLOATS && memcmp(&a[i], &b[i], 4) == 0)
        i++;
    CHECK_MSG(i == OUT_FLOATS, "%s: first difference at float %zu: %.9g vs %.9g", what, i,
              (double)a[i < OUT_FLOATS ? i : 0], (double)b[i < OUT_FLOATS ? i : 0]);
}

static bool built(const struct vk_ctx *ctx, enum vk_shader id)
{
    return ctx->pipes[id].pipe != VK_NULL_HANDLE;
}

TEST(f16_weights_both_paths)
{
    hearth_status st;
    struct vk_ctx_opts o16 = {.device_index = -1};
    struct vk_ctx *ctx = open_ctx(&o16, &st);
    if (!ctx) {
        if (st != HEARTH_ERR_NOT_FOUND)
            CHECK_OK(st);
        TEST_SKIP("no Vulkan device");
    }
    const struct vk_caps *c = vk_ctx_caps(ctx);
    printf("  %s: storageBuffer16BitAccess %d (enabled %d), shaderFloat16 %d, validation %d\n",
           c->name, c->storage_16bit, c->storage_16bit_on, c->float16, c->validation);
    /* (also pulls quant.c and api.c out of the static core library, which hearth_vulkan needs) */
    uint64_t rb = 0;
    CHECK(quant_row_bytes(HEARTH_DTYPE_F16, N_IN, &rb) && rb == N_IN * 2);
    CHECK_STR_EQ(hearth_dtype_name(HEARTH_DTYPE_F16), "F16");
    struct data d;
    float *h = malloc(OUT_FLOATS * sizeof *h), *wd = malloc(OUT_FLOATS * sizeof *wd);
    float *mis = malloc(OUT_FLOATS * sizeof *mis), *nodev = malloc(OUT_FLOATS * sizeof *nodev);
    if (!h || !wd || !mis || !nodev || !data_make(&d)) {
        TEST_FAIL_AT("out of memory");
        goto out;
    }
    /* 1. the device's default: 16-bit loads where the feature exists */
    run_all(ctx, &d, 0, h, "16-bit");
    if (c->storage_16bit_on) {
        CHECK_MSG(built(ctx, VK_SH_MATVEC_F16_H) || built(ctx, VK_SH_MATVEC_F16_H_SG),
                  "16-bit storage is on but no 16-bit matvec was built");
        CHECK(built(ctx, VK_SH_MATMUL_F16_H));
        CHECK(built(ctx, VK_SH_EMBED_F16_H));
    } else {
        printf("  no 16-bit storage on this device: only the word path runs\n");
    }
    /* 2. a weight at offset 4 (mod 8): the word path, same numbers */
    run_all(ctx, &d, W_PAD, mis, "offset-4");
    check_same(h, mis, "16-bit vs offset-4 (word path)");
    /* 3. the word path on the same device */
    vk_ctx_set_use_16bit(ctx, false);
    run_all(ctx, &d, 0, wd, "word");
    check_same(h, wd, "16-bit vs word path");
    close_ctx(ctx);
    ctx = NULL;

    /* 4. a device created without the feature: what a device lacking it runs */
    struct vk_ctx_opts o32 = {.device_index = -1, .no_16bit = true};
    ctx = open_ctx(&o32, &st);
    CHECK_OK(st);
    if (ctx) {
        CHECK(!vk_ctx_caps(ctx)->storage_16bit_on);
        run_all(ctx, &d, 0, nodev, "no-16bit device");
        CHECK(!built(ctx, VK_SH_MATVEC_F16_H) && !built(ctx, VK_SH_MATVEC_F16_H_SG) &&
              !built(ctx, VK_SH_MATMUL_F16_H) && !built(ctx, VK_SH_EMBED_F16_H));
        check_same(h, nodev, "16-bit vs no-16bit device");
        close_ctx(ctx);
        ctx = NULL;
    }
out:
    if (ctx)
        close_ctx(ctx);
    data_free(&d);
    free(h);
    free(wd);
    free(mis);
    free(nodev);
}

TEST(validation_reports)
{
#if defined(__SANITIZE_ADDRESS__)
    /* the layer keeps process-lifetime allocations that tests/lsan.supp does not name */
    TEST_SKIP("the validation layer under LeakSanitizer (covered by the plain build)");
#endif
    hearth_status st;
    struct vk_ctx_opts o = {.device_index = -1, .validate = true};
    struct vk_ctx *ctx = open_ctx(&o, &st);
    if (!ctx) {
        if (st == HEARTH_ERR_UNSUPPORTED) {
            printf("  note: %s\n", hearth_last_error());
            TEST_SKIP("VK_LAYER_KHRONOS_validation is not installed");
        }
        if (st != HEARTH_ERR_NOT_FOUND)
            CHECK_OK(st);
        TEST_SKIP("no Vulkan device");
    }
    CHECK(vk_ctx_caps(ctx)->validation);
    struct vk_buffer b = {0};
    CHECK_OK(vk_buffer_create(ctx, 64, VK_BUF_DEVICE, &b));
    CHECK_OK(vk__begin(ctx));
    /* size 6: not a multiple of 4 (VUID-vkCmdFillBuffer-size-00028) */
    vkCmdFillBuffer(ctx->cmd, b.buf, 0, 6, 0u);
    st = vk_submit(ctx);
    CHECK_INT_EQ(st, HEARTH_ERR_BACKEND);
    CHECK_MSG(strstr(hearth_last_error(), "vkCmdFillBuffer") != NULL, "message: %s",
              hearth_last_error());
    const char *first = NULL;
    int n = vk_ctx_validation_errors(ctx, &first);
    CHECK_MSG(n >= 1 && strstr(first, "VUID-vkCmdFillBuffer-size") != NULL, "%d messages, first: %s",
              n, first);
    /* reported once: the next (clean) submission succeeds */
    CHECK_OK(vk_buffer_fill(ctx, &b, 0, 64, 7u));
    CHECK_OK(vk_submit(ctx));
    vk_buffer_destroy(ctx, &b);
    vk_ctx_destroy(ctx);
}

TEST_MAIN(TEST_CASE(f16_weights_both_paths), TEST_CASE(validation_reports))

#else

TEST(vulkan_not_built)
{
    TEST_SKIP("built without the Vulkan backend");
}
TEST_MAIN(TEST_CASE(vulkan_not_built))
#endif
