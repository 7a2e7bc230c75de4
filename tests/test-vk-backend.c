/*
 * test-vk-backend: the Vulkan backend through core/backend.h, op by op,
 * against the CPU backend (the reference) on the same inputs. Every tensor
 * is made twice from the same host bytes (a "twin"), the op runs on both
 * devices, and the outputs (and, for ATTENTION, the overwritten q/k and the
 * F16 caches) are compared with the tolerances tests/test-backend.c states
 * for GPU backends: RMSNORM, ADD, GLU, EMBED 1e-5 relative; ATTENTION 1e-3;
 * MATMUL / LOGITS 2e-2 x max|y| (the CPU rounds activations to 8 bits, the
 * Vulkan kernels keep them f32). Skips without a Vulkan device.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "fixtures.h"

#ifdef HEARTH_WITH_VULKAN
#include "../vulkan/vk.h"
#include "backend-registry.h"
#include "backend.h"
#include "plan.h"
#include "quant.h"
#include "vk-env.h"

struct twin {
    struct hearth_tensor t[2];
};

static struct twin mk(struct kenv *e, hearth_dtype t, int64_t ne0, int64_t n_rows, const void *host)
{
    struct twin w;
    memset(&w, 0, sizeof w);
    uint64_t rb = 0;
    if (!quant_row_bytes(t, (uint64_t)ne0, &rb)) {
        TEST_FAIL_AT("bad test tensor");
        return w;
    }
    for (int d = 0; d < 2; d++)
        w.t[d] = kenv_mk(e, d, t, ne0, (size_t)rb, n_rows, host);
    return w;
}

/* A random F32 twin. */
static struct twin mk_f32(struct kenv *e, int64_t ne0, int64_t n_rows, double s)
{
    float *x = kenv_gauss((size_t)(ne0 * n_rows), s);
    struct twin w = mk(e, HEARTH_DTYPE_F32, ne0, n_rows, x);
    free(x);
    return w;
}

/* A random matrix quantized to t. */
static struct twin mk_weight(struct kenv *e, hearth_dtype t, int64_t ne0, int64_t n_rows)
{
    uint64_t rb = 0;
    quant_row_bytes(t, (uint64_t)ne0, &rb);
    float *x = kenv_gauss((size_t)(ne0 * n_rows), 0.5);
    uint8_t *q = malloc((size_t)rb * (size_t)n_rows);
    struct twin w;
    memset(&w, 0, sizeof w);
    if (x && q) {
        for (int64_t r = 0; r < n_rows; r++)
            quant_get(t)->from_float(x + r * ne0, q + (size_t)r * rb, ne0);
        w = mk(e, t, ne0, n_rows, q);
    }
    free(x);
    free(q);
    return w;
}

/* Runs op_for(d) on both devices and waits. */
static bool run_both(struct kenv *e, const struct hearth_op *ops_cpu, const struct hearth_op *ops_vk,
                     int n)
{
    hearth_status a = backend_stream_run(e->s[0], ops_cpu, n);
    hearth_status b = backend_stream_run(e->s[1], ops_vk, n);
    CHECK_OK(a);
    CHECK_OK(b);
    CHECK_OK(backend_stream_synchronize(e->s[0]));
    CHECK_OK(backend_stream_synchronize(e->s[1]));
    return a == HEARTH_OK && b == HEARTH_OK;
}

/*
 * Compares the twin's F32 contents: |vk - cpu| <= atol + rtol |cpu|, with
 * atol = abs_of_max * max|cpu| when abs_of_max > 0.
 */
static void cmp(const char *what, const struct twin *w, double atol, double rtol, double abs_of_max)
{
    size_t n = w->t[0].buf->size / 4;
    float *a = malloc(n * 4), *b = malloc(n * 4);
    REQUIRE(a && b);
    CHECK_OK(backend_buffer_get(w->t[0].buf, 0, a, n * 4));
    CHECK_OK(backend_buffer_get(w->t[1].buf, 0, b, n * 4));
    double mx = 0.0;
    for (size_t i = 0; i < n; i++)
        mx = fmax(mx, fabs((double)a[i]));
    if (abs_of_max > 0)
        atol = abs_of_max * mx;
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)b[i] - (double)a[i]) <= atol + rtol * fabs((double)a[i])) && bad++ == 0)
            first = i;
    CHECK_MSG(bad == 0, "%s: %zu of %zu outside atol %.3g rtol %.3g; first [%zu] vulkan %.9g cpu %.9g",
              what, bad, n, atol, rtol, first, (double)b[first], (double)a[first]);
    free(a);
    free(b);
}

/* The same op on both devices: fill op for device d from the twins. */
#define OP_PAIR(opc, opv) struct hearth_op opc, opv; memset(&opc, 0, sizeof opc); memset(&opv, 0, sizeof opv)

TEST(embed_rmsnorm_glu_add)
{
    VK_ENV_OPEN_OR_SKIP(e);
    test_rng_seed(201);
    enum { T = 5, E = 256, V = 64, F = 512 };
    int32_t ids[T] = {3, 63, 0, 3, 41};
    struct twin table = mk_weight(&e, HEARTH_DTYPE_Q4_K, E, V);
    struct twin idt = mk(&e, HEARTH_DTYPE_I32, T, 1, ids);
    struct twin x = mk(&e, HEARTH_DTYPE_F32, E, T, NULL), xn = mk(&e, HEARTH_DTYPE_F32, E, T, NULL);
    struct twin w = mk_f32(&e, E, 1, 1.0);
    struct twin g1 = mk_f32(&e, F, T, 2.0), u1 = mk_f32(&e, F, T, 1.0);
    struct twin g2 = mk_f32(&e, F, T, 2.0), u2 = mk_f32(&e, F, T, 1.0);
    struct twin y = mk_f32(&e, E, T, 1.0), y2 = mk_f32(&e, E, T, 1.0);
    struct hearth_op ops[2][7];
    memset(ops, 0, sizeof ops);
    for (int d = 0; d < 2; d++) {
        struct hearth_op *o = ops[d];
        o[0].kind = HEARTH_OP_EMBED, o[0].n_tok = T;
        o[0].u.embed = (struct hearth_op_embed){table.t[d], idt.t[d], x.t[d], 16.0f};
        o[1].kind = HEARTH_OP_RMSNORM, o[1].n_tok = T;
        o[1].u.rmsnorm = (struct hearth_op_rmsnorm){x.t[d], w.t[d], xn.t[d], 1e-6f};
        o[2].kind = HEARTH_OP_GLU, o[2].n_tok = T;
        o[2].u.glu = (struct hearth_op_glu){g1.t[d], u1.t[d], HEARTH_GLU_SILU};
        o[3].kind = HEARTH_OP_GLU, o[3].n_tok = T;
        o[3].u.glu = (struct hearth_op_glu){g2.t[d], u2.t[d], HEARTH_GLU_GELU_TANH};
        o[4].kind = HEARTH_OP_ADD, o[4].n_tok = T;
        o[4].u.add = (struct hearth_op_add){xn.t[d], y.t[d], {0}, 0.0f};
        o[5].kind = HEARTH_OP_ADD, o[5].n_tok = T; /* gemma3 post-norm: y2 normed then added */
        o[5].u.add = (struct hearth_op_add){x.t[d], y2.t[d], w.t[d], 1e-6f};
        o[6].kind = HEARTH_OP_RMSNORM, o[6].n_tok = T; /* in place, no gain */
        o[6].u.rmsnorm = (struct hearth_op_rmsnorm){y.t[d], {0}, y.t[d], 1e-6f};
    }
    if (run_both(&e, ops[0], ops[1], 7)) {
        cmp("embed + add(normed)", &x, 1e-6, 1e-5, 0);
        cmp("rmsnorm + add", &xn, 1e-6, 1e-5, 0);
        cmp("swiglu", &g1, 1e-6, 1e-5, 0);
        cmp("geglu", &g2, 1e-6, 1e-5, 0);
        cmp("add: normed y", &y2, 1e-6, 1e-5, 0);
        cmp("rmsnorm in place", &y, 1e-6, 1e-5, 0);
    }
    vkq_env_close(&e);
}

TEST(matmul_and_logits)
{
    VK_ENV_OPEN_OR_SKIP(e);
    test_rng_seed(202);
    enum { T = 7, K = 512 };
    static const hearth_dtype types[] = {HEARTH_DTYPE_Q4_0, HEARTH_DTYPE_Q5_1, HEARTH_DTYPE_Q4_K,
                                         HEARTH_DTYPE_Q6_K, HEARTH_DTYPE_F16, HEARTH_DTYPE_IQ4_XS};
    for (int ti = 0; ti < 6; ti++) {
        struct twin x = mk_f32(&e, K, T, 1.0);
        struct twin w0 = mk_weight(&e, types[ti], K, 96), w1 = mk_weight(&e, types[ti], K, 40);
        struct twin b1 = mk_f32(&e, 40, 1, 1.0);
        struct twin y0 = mk(&e, HEARTH_DTYPE_F32, 96, T, NULL), y1 = mk(&e, HEARTH_DTYPE_F32, 40, T, NULL);
        struct twin nw = mk_f32(&e, K, 1, 1.0), lg = mk(&e, HEARTH_DTYPE_F32, 96, 2, NULL);
        struct hearth_op ops[2][2];
        memset(ops, 0, sizeof ops);
        for (int d = 0; d < 2; d++) {
            ops[d][0].kind = HEARTH_OP_MATMUL, ops[d][0].n_tok = T;
            struct hearth_op_matmul *m = &ops[d][0].u.matmul;
            m->n_w = 2, m->x = x.t[d];
            m->w[0] = w0.t[d], m->y[0] = y0.t[d];
            m->w[1] = w1.t[d], m->b[1] = b1.t[d], m->y[1] = y1.t[d];
            ops[d][1].kind = HEARTH_OP_LOGITS, ops[d][1].n_tok = 2;
            struct hearth_tensor last2 = x.t[d]; /* the last two token rows */
            last2.offset = (size_t)(T - 2) * last2.row_stride;
            last2.n_rows = 2;
            ops[d][1].u.logits = (struct hearth_op_logits){last2, nw.t[d], w0.t[d], lg.t[d], 1e-6f};
        }
        if (run_both(&e, ops[0], ops[1], 2)) {
            char what[64];
            snprintf(what, sizeof what, "matmul %s", hearth_dtype_name(types[ti]));
            cmp(what, &y0, 0, 0, 2e-2);
            snprintf(what, sizeof what, "matmul %s + bias", hearth_dtype_name(types[ti]));
            cmp(what, &y1, 0, 0, 2e-2);
            snprintf(what, sizeof what, "logits %s", hearth_dtype_name(types[ti]));
            cmp(what, &lg, 0, 0, 2e-2);
        }
    }
    vkq_env_close(&e);
}

/* Prefill of 9 tokens then one decode step, GQA 4/2, qk-norm, llama3 divisors, window. */
static void attention_case(enum hearth_rope_mode mode, uint32_t window, bool qk_norm)
{
    VK_ENV_OPEN_OR_SKIP(e);
    test_rng_seed(203 + window);
    enum { H = 4, HK = 2, D = 64, CTX = 48, ROT = 64 };
    float divs[ROT / 2];
    for (int k = 0; k < ROT / 2; k++)
        divs[k] = 1.0f + (float)k / 4.0f;
    struct twin dv = mk(&e, HEARTH_DTYPE_F32, ROT / 2, 1, divs);
    struct twin qn = mk_f32(&e, D, 1, 1.0), kn = mk_f32(&e, D, 1, 1.0);
    struct twin kc = mk(&e, HEARTH_DTYPE_F16, HK * D, CTX, NULL);
    struct twin vc = mk(&e, HEARTH_DTYPE_F16, HK * D, CTX, NULL);
    for (int step = 0; step < 2; step++) {
        int n = step ? 1 : 9, pos0 = step ? 9 : 0;
        struct twin q = mk_f32(&e, H * D, n, 1.0), k = mk_f32(&e, HK * D, n, 1.0);
        struct twin v = mk_f32(&e, HK * D, n, 1.0), out = mk(&e, HEARTH_DTYPE_F32, H * D, n, NULL);
        struct hearth_op ops[2];
        memset(ops, 0, sizeof ops);
        for (int d = 0; d < 2; d++) {
            ops[d].kind = HEARTH_OP_ATTENTION, ops[d].n_tok = n;
            struct hearth_op_attention *a = &ops[d].u.attn;
            a->q = q.t[d], a->k = k.t[d], a->v = v.t[d], a->rope_divs = dv.t[d];
            a->k_cache = kc.t[d], a->v_cache = vc.t[d], a->out = out.t[d];
            if (qk_norm)
                a->q_norm = qn.t[d], a->k_norm = kn.t[d];
            a->n_head = H, a->n_head_kv = HK, a->head_dim = D, a->n_rot = ROT;
            a->rope_mode = mode, a->rope_base = 10000.0f, a->rope_freq_scale = 1.0f;
            a->norm_eps = 1e-6f, a->scale = 0.125f, a->pos0 = pos0, a->window = window;
        }
        if (!run_both(&e, &ops[0], &ops[1], 1))
            break;
        cmp("attention: q (normed, rotated)", &q, 1e-3, 1e-3, 0);
        cmp("attention: k (normed, rotated)", &k, 1e-3, 1e-3, 0);
        cmp("attention: out", &out, 1e-3, 1e-3, 0);
    }
    /* the caches as halves: compare decoded */
    uint16_t a[CTX * HK * D], b[CTX * HK * D];
    CHECK_OK(backend_buffer_get(kc.t[0].buf, 0, a, sizeof a));
    CHECK_OK(backend_buffer_get(kc.t[1].buf, 0, b, sizeof b));
    int off = 0;
    for (int i = 0; i < CTX * HK * D; i++)
        off += abs((int)a[i] - (int)b[i]) > 8; /* a few f16 ulps: rotation differs by ~1e-6 rel */
    CHECK_MSG(off == 0, "%d K-cache halves differ by more than 8 ulps", off);
    vkq_env_close(&e);
}

TEST(attention_neox_qknorm_window)
{
    attention_case(HEARTH_ROPE_NEOX, 4, true);
}

TEST(attention_normal_causal)
{
    attention_case(HEARTH_ROPE_NORMAL, 0, false);
}

TEST(device_tables)
{
    VK_ENV_OPEN_OR_SKIP(e);
    struct hearth_device_props p;
    backend_device_props(e.dev[1], &p);
    CHECK_STR_EQ(p.name, "vulkan0");
    CHECK(!p.host_memory);
    CHECK(backend_device_supports_op(e.dev[1], HEARTH_OP_MATMUL, HEARTH_DTYPE_IQ4_NL));
    CHECK(!backend_device_supports_op(e.dev[1], HEARTH_OP_MATMUL, HEARTH_DTYPE_TQ1_0));
    CHECK(!backend_device_supports_op(e.dev[1], HEARTH_OP_RMSNORM, HEARTH_DTYPE_F16));
    struct hearth_buffer_type *bt = backend_device_buffer_type(e.dev[1]);
    CHECK(backend_buft_max_size(bt) >= (64u << 20));
    CHECK(backend_buft_flags(bt) & HEARTH_BUFT_DEVICE_LOCAL);
    /*
     * Its own host staging: the frames' worst case for its max chunk, which
     * at >= 64 MiB is the 4 x 64 MiB a described Vulkan device is planned
     * with; the registry's description (device not opened) says the same.
     */
    CHECK_INT_EQ(p.host_staging_bytes, vk_host_staging_bytes(backend_buft_max_size(bt)));
    CHECK_INT_EQ(p.host_staging_bytes, PLAN_DEFAULT_VULKAN_HOST_STAGING);
    struct reg_device_info info[16];
    int n = reg_list_devices(info, 16), found = 0;
    for (int i = 0; i < n && i < 16; i++)
        if (!strcmp(info[i].name, "vulkan0")) {
            found = 1;
            CHECK_INT_EQ(info[i].host_staging_bytes, p.host_staging_bytes);
        }
    CHECK(found);
    struct hearth_buffer *b = NULL;
    CHECK_OK(backend_buffer_alloc(bt, 1001, &b));
    if (b) {
        uint8_t in[1001], out[1001];
        for (int i = 0; i < 1001; i++)
            in[i] = (uint8_t)(i * 7);
        CHECK_OK(backend_buffer_set(b, 0, in, sizeof in));
        CHECK_OK(backend_buffer_get(b, 0, out, sizeof out));
        CHECK(memcmp(in, out, sizeof in) == 0);
        CHECK_OK(backend_buffer_clear(b, 0xab));
        CHECK_OK(backend_buffer_get(b, 500, out, 501));
        CHECK(out[0] == 0xab && out[500] == 0xab);
        CHECK_INT_EQ(backend_buffer_get(b, 900, out, 200), HEARTH_ERR_INVALID_ARG);
        backend_buffer_free(b);
    }
    vkq_env_close(&e);
}

/*
 * Device-side copies (copy_from: what `hearth devices` times when a backend has no
 * benchmark) and measure_bandwidth: bytes land where asked and nowhere else; overlap,
 * ranges and another device's buffer are refused; the bandwidth is positive and the
 * props report it afterwards.
 */
TEST(copies_and_bandwidth)
{
    VK_ENV_OPEN_OR_SKIP(e);
    struct hearth_buffer_type *bt = backend_device_buffer_type(e.dev[1]);
    struct hearth_buffer *a = NULL, *b = NULL, *h = NULL;
    CHECK_OK(backend_buffer_alloc(bt, 4096, &a));
    CHECK_OK(backend_buffer_alloc(bt, 4096, &b));
    CHECK_OK(backend_buffer_alloc(backend_device_buffer_type(e.dev[0]), 4096, &h));
    if (a && b && h) {
        static uint8_t in[4096], out[4096];
        for (int i = 0; i < 4096; i++)
            in[i] = (uint8_t)(i * 13 + 5);
        CHECK_OK(backend_buffer_set(a, 0, in, sizeof in));
        CHECK_OK(backend_buffer_clear(b, 0x11));
        CHECK_OK(backend_buffer_copy(b, 100, a, 200, 1000));
        CHECK_OK(backend_buffer_get(b, 0, out, sizeof out));
        int bad = 0;
        for (int i = 0; i < 4096; i++)
            bad += out[i] != (i >= 100 && i < 1100 ? in[i + 100] : 0x11);
        CHECK_MSG(bad == 0, "%d bytes wrong after a device copy", bad);
        CHECK_INT_EQ(backend_buffer_copy(b, 4000, a, 0, 200), HEARTH_ERR_INVALID_ARG);
        CHECK_INT_EQ(backend_buffer_copy(a, 0, a, 10, 100), HEARTH_ERR_INVALID_ARG);
        CHECK_INT_EQ(backend_buffer_copy(b, 0, h, 0, 100), HEARTH_ERR_UNSUPPORTED);
    }
    backend_buffer_free(h);
    backend_buffer_free(b);
    backend_buffer_free(a);
    double g = 0.0;
    CHECK_OK(backend_device_measure_bandwidth(e.dev[1], &g));
    struct hearth_device_props p;
    backend_device_props(e.dev[1], &p);
    CHECK_MSG(g > 0.0 && p.bw_gbps == g, "copy bandwidth %.3g GB/s, props say %.3g", g, p.bw_gbps);
    printf("vulkan0 copy bandwidth: %.1f GB/s (read + written)\n", g);
    vkq_env_close(&e);
}

TEST_MAIN(TEST_CASE(embed_rmsnorm_glu_add), TEST_CASE(matmul_and_logits),
          TEST_CASE(attention_neox_qknorm_window), TEST_CASE(attention_normal_causal),
          TEST_CASE(device_tables), TEST_CASE(copies_and_bandwidth))

#else

TEST(vulkan_not_built)
{
    TEST_SKIP("no Vulkan device (backend not built)");
}

TEST_MAIN(TEST_CASE(vulkan_not_built))
#endif
