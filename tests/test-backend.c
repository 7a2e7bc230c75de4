/*
 * test-backend: the CPU backend through the backend vtables (core/backend.h).
 *
 * Every op runs on random inputs through backend_stream_run and is compared
 * bit for bit with direct calls of core/cpu/ops.h and the matmul kernels in
 * the order the op contract describes: the CPU backend is the reference the
 * GPU backends are held against, so its ops must be exactly the kernels
 * forward.c uses. Then buffers (alloc/set/get/clear/copy, range checks),
 * buffer type flags, the wrappers' defaults for NULL optional members, op
 * validation, and an injected allocation failure (the allocation hook) that
 * must surface as DEVICE_OOM / NO_MEMORY and leak nothing under ASan.
 *
 * Tolerances for GPU backends implementing these contracts (to be used by
 * their op tests against this backend): RMSNORM, ADD, GLU, EMBED 1e-5
 * relative; ATTENTION 1e-3 (F16 cache, reordered sums); MATMUL/LOGITS
 * 2e-2 x max|y| with F16 activations (8-bit activations round differently).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backend-registry.h"
#include "backend.h"
#include "cpu/ops.h"
#include "f16.h"
#include "fixtures.h"
#include "quant.h"
#include "test.h"
#include "threadpool.h"

/* Buffers a case allocated, freed by done(). */
struct bag {
    struct hearth_buffer *b[64];
    int n;
};

static void done(struct bag *g)
{
    for (int i = 0; i < g->n; i++)
        backend_buffer_free(g->b[i]);
    g->n = 0;
}

/* A fresh packed tensor on dev. */
static struct hearth_tensor mk(struct bag *g, struct hearth_device *dev, hearth_dtype t,
                               int64_t ne0, int64_t n_rows)
{
    struct hearth_tensor x;
    memset(&x, 0, sizeof x);
    uint64_t rb = 0;
    if (!quant_row_bytes(t, (uint64_t)ne0, &rb) || g->n >= 64) {
        TEST_FAIL_AT("bad test tensor");
        return x;
    }
    struct hearth_buffer *b = NULL;
    CHECK_OK(backend_buffer_alloc(backend_device_buffer_type(dev), (size_t)rb * (size_t)n_rows,
                                  &b));
    if (!b)
        return x;
    g->b[g->n++] = b;
    backend_tensor_2d(&x, b, 0, t, ne0, n_rows);
    return x;
}

static void *ptr(const struct hearth_tensor *t)
{
    return (uint8_t *)backend_buffer_base(t->buf) + t->offset;
}

static float *fptr(const struct hearth_tensor *t)
{
    return ptr(t);
}

static void fill_gauss(float *x, size_t n, double s)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(test_rng_gauss() * s);
}

/* A random [n_rows][ne0] matrix quantized to t. */
static struct hearth_tensor mk_weight(struct bag *g, struct hearth_device *dev, hearth_dtype t,
                                      int64_t ne0, int64_t n_rows)
{
    struct hearth_tensor w = mk(g, dev, t, ne0, n_rows);
    if (!w.buf)
        return w;
    float *tmp = malloc((size_t)ne0 * sizeof(float));
    const struct quant_traits *qt = quant_get(t);
    for (int64_t r = 0; tmp && r < n_rows; r++) {
        fill_gauss(tmp, (size_t)ne0, 0.5);
        if (t == HEARTH_DTYPE_F32)
            memcpy((uint8_t *)ptr(&w) + (size_t)r * w.row_stride, tmp, (size_t)ne0 * 4);
        else
            qt->from_float(tmp, (uint8_t *)ptr(&w) + (size_t)r * w.row_stride, ne0);
    }
    free(tmp);
    return w;
}

static struct model_weight as_mw(const struct hearth_tensor *t)
{
    struct model_weight w = {ptr(t), t->type, t->ne0, t->n_rows, t->row_stride};
    return w;
}

static bool run1(struct hearth_stream *s, const struct hearth_op *op)
{
    hearth_status st = backend_stream_run(s, op, 1);
    CHECK_OK(st);
    CHECK_OK(backend_stream_synchronize(s));
    return st == HEARTH_OK;
}

TEST(rowwise_ops_bit_exact)
{
    struct hearth_device *dev = fixture_cpu_device(NULL, 2);
    REQUIRE(dev);
    struct hearth_stream *s = NULL;
    CHECK_OK(backend_stream_create(dev, &s));
    struct bag g = {.n = 0};
    test_rng_seed(1);
    /* N * E spans several of cpu_rows_for's chunks, so two threads split the rows */
    enum { N = 200, E = 96, V = 16 };
    static float ref[N * E], ref2[N * E];

    /* RMSNORM with and without gain, in place */
    struct hearth_tensor x = mk(&g, dev, HEARTH_DTYPE_F32, E, N), y = mk(&g, dev,
                                                                         HEARTH_DTYPE_F32, E, N),
                         w = mk(&g, dev, HEARTH_DTYPE_F32, E, 1);
    REQUIRE(x.buf && y.buf && w.buf && s);
    fill_gauss(fptr(&x), N * E, 3.0);
    fill_gauss(fptr(&w), E, 1.0);
    struct hearth_op op;
    memset(&op, 0, sizeof op);
    op.kind = HEARTH_OP_RMSNORM;
    op.n_tok = N;
    op.u.rmsnorm = (struct hearth_op_rmsnorm){x, w, y, 1e-5f};
    for (int t = 0; t < N; t++)
        cpu_rmsnorm(ref + t * E, fptr(&x) + t * E, fptr(&w), E, 1e-5f);
    if (run1(s, &op))
        CHECK(memcmp(ref, fptr(&y), sizeof ref) == 0);
    op.u.rmsnorm = (struct hearth_op_rmsnorm){x, {0}, x, 1e-6f};
    memcpy(ref2, fptr(&x), sizeof ref2);
    for (int t = 0; t < N; t++)
        cpu_rmsnorm(ref2 + t * E, ref2 + t * E, NULL, E, 1e-6f);
    if (run1(s, &op))
        CHECK(memcmp(ref2, fptr(&x), sizeof ref2) == 0);

    /* GLU, both activations, with the ISA's kernels (the device's) over all rows at once */
    struct cpu_glu_kernels glu;
    cpu_glu_kernels_get(cpu_isa_best(), &glu);
    for (int act = 0; act < 2; act++) {
        fill_gauss(fptr(&x), N * E, 2.0);
        fill_gauss(fptr(&y), N * E, 2.0);
        memcpy(ref, fptr(&x), sizeof ref);
        (act ? glu.gelu_tanh : glu.silu)(ref, fptr(&y), N * E);
        op.kind = HEARTH_OP_GLU;
        op.u.glu = (struct hearth_op_glu){x, y, act ? HEARTH_GLU_GELU_TANH : HEARTH_GLU_SILU};
        if (run1(s, &op))
            CHECK_MSG(memcmp(ref, fptr(&x), sizeof ref) == 0, "glu act %d", act);
    }

    /* ADD plain and with the post-norm fused */
    for (int normed = 0; normed < 2; normed++) {
        fill_gauss(fptr(&x), N * E, 2.0);
        fill_gauss(fptr(&y), N * E, 2.0);
        memcpy(ref, fptr(&x), sizeof ref);
        memcpy(ref2, fptr(&y), sizeof ref2);
        for (int t = 0; t < N; t++) {
            if (normed)
                cpu_rmsnorm(ref2 + t * E, ref2 + t * E, fptr(&w), E, 1e-6f);
            cpu_add(ref + t * E, ref2 + t * E, E);
        }
        op.kind = HEARTH_OP_ADD;
        op.u.add = (struct hearth_op_add){x, y, normed ? w : (struct hearth_tensor){0}, 1e-6f};
        if (run1(s, &op)) {
            CHECK_MSG(memcmp(ref, fptr(&x), sizeof ref) == 0, "add normed %d", normed);
            CHECK(memcmp(ref2, fptr(&y), sizeof ref2) == 0);
        }
    }

    /* EMBED from a Q8_0 table, scaled */
    struct hearth_tensor tab = mk_weight(&g, dev, HEARTH_DTYPE_Q8_0, E, V);
    struct hearth_tensor ids = mk(&g, dev, HEARTH_DTYPE_I32, N, 1);
    REQUIRE(tab.buf && ids.buf);
    int32_t id[N];
    for (int t = 0; t < N; t++)
        id[t] = (t * 7 + 5) % V;
    CHECK_OK(backend_buffer_set(ids.buf, 0, id, sizeof id));
    struct model_weight tw = as_mw(&tab);
    for (int t = 0; t < N; t++) {
        CHECK_OK(model_weight_row(&tw, id[t], ref + t * E));
        for (int i = 0; i < E; i++)
            ref[t * E + i] *= 1.5f;
    }
    op.kind = HEARTH_OP_EMBED;
    op.u.embed = (struct hearth_op_embed){tab, ids, y, 1.5f};
    if (run1(s, &op))
        CHECK(memcmp(ref, fptr(&y), sizeof ref) == 0);
    /* an id past the table is an error naming the token, before any row is written */
    id[N - 1] = V;
    CHECK_OK(backend_buffer_set(ids.buf, 0, id, sizeof id));
    CHECK_INT_EQ(backend_stream_run(s, &op, 1), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "token 199") != NULL);

    done(&g);
    backend_stream_destroy(s);
    backend_device_destroy(dev);
}

/* MATMUL (shared-activation triple with biases, mixed formats, strided y) and LOGITS. */
TEST(matmul_and_logits_bit_exact)
{
    struct hearth_device *dev = fixture_cpu_device(NULL, 2);
    REQUIRE(dev);
    struct hearth_stream *s = NULL;
    struct threadpool *tp = NULL;
    CHECK_OK(backend_stream_create(dev, &s));
    CHECK_OK(threadpool_create(1, &tp));
    struct bag g = {.n = 0};
    test_rng_seed(2);
    enum { N = 5, K = 256, N0 = 40, N1 = 24, N2 = 24 };
    REQUIRE(s && tp);
    struct hearth_tensor x = mk(&g, dev, HEARTH_DTYPE_F32, K, N);
    fill_gauss(fptr(&x), (size_t)N * K, 1.0);
    const hearth_dtype types[3][3] = {
        {HEARTH_DTYPE_Q4_0, HEARTH_DTYPE_Q8_0, HEARTH_DTYPE_Q4_1}, /* Q8_0 / Q8_0 / Q8_1 acts */
        {HEARTH_DTYPE_Q4_K, HEARTH_DTYPE_Q6_K, HEARTH_DTYPE_Q5_K}, /* all Q8_K: one quantization */
        {HEARTH_DTYPE_F16, HEARTH_DTYPE_F32, HEARTH_DTYPE_Q5_0},
    };
    const int64_t nout[3] = {N0, N1, N2};
    for (int set = 0; set < 3; set++) {
        struct hearth_op op;
        memset(&op, 0, sizeof op);
        op.kind = HEARTH_OP_MATMUL;
        op.n_tok = N;
        struct hearth_op_matmul *m = &op.u.matmul;
        m->n_w = 3;
        m->x = x;
        float *ref[3];
        for (int i = 0; i < 3; i++) {
            m->w[i] = mk_weight(&g, dev, types[set][i], K, nout[i]);
            m->b[i] = i == 1 ? (struct hearth_tensor){0} : mk_weight(&g, dev, HEARTH_DTYPE_F32,
                                                                      nout[i], 1);
            /* y[0] strided: rows of N0 + 8 floats */
            m->y[i] = mk(&g, dev, HEARTH_DTYPE_F32, nout[i] + (i == 0 ? 8 : 0), N);
            m->y[i].ne0 = nout[i];
            ref[i] = calloc((size_t)N * (size_t)(nout[i] + 8), sizeof(float));
        }
        REQUIRE(g.n < 60);
        for (int i = 0; i < 3; i++) {
            struct cpu_matmul_kernels k;
            CHECK_OK(cpu_matmul_kernels_get(types[set][i], cpu_isa_best(), &k));
            struct model_weight w = as_mw(&m->w[i]);
            void *act = malloc(cpu_act_row_bytes(&k, K) * N);
            int64_t ys = (int64_t)(m->y[i].row_stride / 4);
            if (act && ref[i]) {
                cpu_matmul(tp, &k, &w, fptr(&x), N, ref[i], ys, act);
                for (int t = 0; m->b[i].buf && t < N; t++)
                    cpu_add(ref[i] + t * ys, fptr(&m->b[i]), nout[i]);
            }
            free(act);
        }
        if (run1(s, &op))
            for (int i = 0; i < 3; i++)
                for (int t = 0; ref[i] && t < N; t++)
                    CHECK_MSG(memcmp(ref[i] + t * (int64_t)(m->y[i].row_stride / 4),
                                     (uint8_t *)ptr(&m->y[i]) + t * m->y[i].row_stride,
                                     (size_t)nout[i] * 4) == 0,
                              "set %d weight %d (%s) token %d", set, i,
                              hearth_dtype_name(types[set][i]), t);
        for (int i = 0; i < 3; i++)
            free(ref[i]);
    }

    /* LOGITS of the last two rows of x */
    enum { V = 64 };
    struct hearth_tensor nw = mk_weight(&g, dev, HEARTH_DTYPE_F32, K, 1);
    struct hearth_tensor ow = mk_weight(&g, dev, HEARTH_DTYPE_Q6_K, K, V);
    struct hearth_tensor y = mk(&g, dev, HEARTH_DTYPE_F32, V, 2);
    REQUIRE(nw.buf && ow.buf && y.buf);
    struct hearth_tensor xs = x;
    xs.offset += 3 * x.row_stride;
    xs.n_rows = 2;
    float normed[2 * K], ref[2 * V];
    for (int t = 0; t < 2; t++)
        cpu_rmsnorm(normed + t * K, fptr(&x) + (3 + t) * K, fptr(&nw), K, 1e-5f);
    struct cpu_matmul_kernels k;
    CHECK_OK(cpu_matmul_kernels_get(HEARTH_DTYPE_Q6_K, cpu_isa_best(), &k));
    struct model_weight w = as_mw(&ow);
    void *act = malloc(cpu_act_row_bytes(&k, K) * 2);
    REQUIRE(act);
    cpu_matmul(tp, &k, &w, normed, 2, ref, V, act);
    free(act);
    struct hearth_op op;
    memset(&op, 0, sizeof op);
    op.kind = HEARTH_OP_LOGITS;
    op.n_tok = 2;
    op.u.logits = (struct hearth_op_logits){xs, nw, ow, y, 1e-5f};
    if (run1(s, &op))
        CHECK(memcmp(ref, fptr(&y), sizeof ref) == 0);

    done(&g);
    threadpool_destroy(tp);
    backend_stream_destroy(s);
    backend_device_destroy(dev);
}

/*
 * ATTENTION with GQA (4 query heads on 2 KV heads), qk-norm, partial NEOX
 * RoPE with divisors, a window of 3 and two positions already cached.
 */
static void attention_case(enum hearth_rope_mode mode, uint32_t window, bool qk_norm, int n_thr)
{
    struct hearth_device *dev = fixture_cpu_device(NULL, n_thr);
    REQUIRE(dev);
    struct hearth_stream *s = NULL;
    CHECK_OK(backend_stream_create(dev, &s));
    struct bag g = {.n = 0};
    test_rng_seed(3 + window);
    /* N tokens of Q + 2 KV floats span two of cpu_rows_for's chunks */
    enum { H = 4, HK = 2, D = 16, ROT = 12, N = 96, P0 = 2, CTX = 100, Q = H * D, KV = HK * D };
    struct hearth_tensor q = mk(&g, dev, HEARTH_DTYPE_F32, Q, N),
                         k = mk(&g, dev, HEARTH_DTYPE_F32, KV, N),
                         v = mk(&g, dev, HEARTH_DTYPE_F32, KV, N),
                         qn = mk(&g, dev, HEARTH_DTYPE_F32, D, 1),
                         kn = mk(&g, dev, HEARTH_DTYPE_F32, D, 1),
                         dv = mk(&g, dev, HEARTH_DTYPE_F32, ROT / 2, 1),
                         kc = mk(&g, dev, HEARTH_DTYPE_F16, KV, CTX),
                         vc = mk(&g, dev, HEARTH_DTYPE_F16, KV, CTX),
                         out = mk(&g, dev, HEARTH_DTYPE_F32, Q, N);
    REQUIRE(s && out.buf);
    fill_gauss(fptr(&q), N * Q, 1.0);
    fill_gauss(fptr(&k), N * KV, 1.0);
    fill_gauss(fptr(&v), N * KV, 1.0);
    fill_gauss(fptr(&qn), D, 1.0);
    fill_gauss(fptr(&kn), D, 1.0);
    for (int i = 0; i < ROT / 2; i++)
        fptr(&dv)[i] = 1.0f + (float)i * 0.5f;
    uint16_t *kcp = ptr(&kc), *vcp = ptr(&vc);
    for (int i = 0; i < P0 * KV; i++) {
        kcp[i] = f32_to_f16((float)test_rng_gauss());
        vcp[i] = f32_to_f16((float)test_rng_gauss());
    }
    /* reference on copies */
    float rq[N * Q], rk[N * KV], rout[N * Q], cs[ROT], scores[CTX];
    uint16_t rkc[CTX * KV], rvc[CTX * KV];
    memcpy(rq, fptr(&q), sizeof rq);
    memcpy(rk, fptr(&k), sizeof rk);
    memcpy(rkc, kcp, sizeof rkc);
    memcpy(rvc, vcp, sizeof rvc);
    const float scale = 0.25f, base = 10000.0f, fs = 0.5f, eps = 1e-6f;
    for (int t = 0; t < N; t++) {
        if (qk_norm) {
            for (int h = 0; h < H; h++)
                cpu_rmsnorm(rq + t * Q + h * D, rq + t * Q + h * D, fptr(&qn), D, eps);
            for (int h = 0; h < HK; h++)
                cpu_rmsnorm(rk + t * KV + h * D, rk + t * KV + h * D, fptr(&kn), D, eps);
        }
        cpu_rope_table(cs, ROT, P0 + t, base, fs, fptr(&dv));
        cpu_rope(rq + t * Q, H, D, ROT, cs, (enum model_rope_mode)mode);
        cpu_rope(rk + t * KV, HK, D, ROT, cs, (enum model_rope_mode)mode);
        for (int i = 0; i < KV; i++) {
            rkc[(P0 + t) * KV + i] = f32_to_f16(rk[t * KV + i]);
            rvc[(P0 + t) * KV + i] = f32_to_f16(fptr(&v)[t * KV + i]);
        }
    }
    struct cpu_attn_kernels ak;
    cpu_attn_kernels_get(cpu_isa_best(), &ak);
    for (int t = 0; t < N; t++)
        for (int h = 0; h < H; h++) {
            int64_t p = P0 + t, lo = 0;
            if (window && p - (int64_t)window + 1 > 0)
                lo = p - (int64_t)window + 1;
            size_t col = (size_t)(h / (H / HK)) * D;
            cpu_attn_head(&ak, rout + t * Q + h * D, rq + t * Q + h * D,
                          rkc + (size_t)lo * KV + col, rvc + (size_t)lo * KV + col, KV, lo, p, D,
                          scale, scores);
        }
    struct hearth_op op;
    memset(&op, 0, sizeof op);
    op.kind = HEARTH_OP_ATTENTION;
    op.n_tok = N;
    struct hearth_op_attention *a = &op.u.attn;
    a->q = q, a->k = k, a->v = v, a->rope_divs = dv, a->k_cache = kc, a->v_cache = vc;
    a->out = out;
    if (qk_norm)
        a->q_norm = qn, a->k_norm = kn;
    a->n_head = H, a->n_head_kv = HK, a->head_dim = D, a->n_rot = ROT;
    a->rope_mode = mode, a->rope_base = base, a->rope_freq_scale = fs;
    a->norm_eps = eps, a->scale = scale, a->pos0 = P0, a->window = window;
    if (run1(s, &op)) {
        CHECK(memcmp(rq, fptr(&q), sizeof rq) == 0);
        CHECK(memcmp(rk, fptr(&k), sizeof rk) == 0);
        CHECK(memcmp(rkc, kcp, sizeof rkc) == 0);
        CHECK(memcmp(rvc, vcp, sizeof rvc) == 0);
        CHECK(memcmp(rout, fptr(&out), sizeof rout) == 0);
    }
    /* beyond the cache: rejected by the wrapper before the backend runs */
    a->pos0 = CTX - 2;
    CHECK_INT_EQ(backend_stream_run(s, &op, 1), HEARTH_ERR_INVALID_ARG);
    done(&g);
    backend_stream_destroy(s);
    backend_device_destroy(dev);
}

TEST(attention_bit_exact)
{
    attention_case(HEARTH_ROPE_NEOX, 3, true, 2);
    attention_case(HEARTH_ROPE_NORMAL, 0, false, 1);
}

TEST(buffers_set_get_clear_copy)
{
    struct hearth_device *dev = fixture_cpu_device("cpu-x", 1);
    REQUIRE(dev);
    struct hearth_buffer_type *bt = backend_device_buffer_type(dev);
    struct hearth_buffer *a = NULL, *b = NULL;
    CHECK_OK(backend_buffer_alloc(bt, 1000, &a));
    CHECK_OK(backend_buffer_alloc(bt, 1000, &b));
    REQUIRE(a && b);
    CHECK_INT_EQ(a->size, 1000);
    CHECK(a->buft == bt && bt->dev == dev);
    uint8_t src[300], dst[300];
    for (int i = 0; i < 300; i++)
        src[i] = (uint8_t)(i * 7 + 1);
    CHECK_OK(backend_buffer_set(a, 700, src, 300));
    CHECK_OK(backend_buffer_get(a, 700, dst, 300));
    CHECK(memcmp(src, dst, 300) == 0);
    CHECK_INT_EQ(backend_buffer_set(a, 701, src, 300), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "outside a buffer of 1000") != NULL);
    CHECK_INT_EQ(backend_buffer_get(a, 1001, dst, 0), HEARTH_ERR_INVALID_ARG);
    CHECK_OK(backend_buffer_copy(b, 10, a, 700, 300));
    CHECK_OK(backend_buffer_get(b, 10, dst, 300));
    CHECK(memcmp(src, dst, 300) == 0);
    CHECK_OK(backend_buffer_clear(a, 0xAB));
    CHECK_OK(backend_buffer_get(a, 0, dst, 300));
    CHECK(dst[0] == 0xAB && dst[299] == 0xAB);
    /* async defaults and events */
    struct hearth_stream *s = NULL;
    struct hearth_event *ev = NULL;
    CHECK_OK(backend_stream_create(dev, &s));
    REQUIRE(s);
    CHECK_OK(backend_event_create(s, &ev));
    CHECK_OK(backend_event_synchronize(ev)); /* never recorded: returns at once */
    CHECK_OK(backend_stream_set_async(s, b, 0, src, 300));
    CHECK_OK(backend_event_record(ev));
    CHECK_OK(backend_event_synchronize(ev));
    memset(dst, 0, sizeof dst);
    CHECK_OK(backend_stream_get_async(s, b, 0, dst, 300));
    CHECK_OK(backend_stream_synchronize(s));
    CHECK(memcmp(src, dst, 300) == 0);
    /* host-pointer wrapper */
    struct hearth_buffer *h = NULL;
    CHECK_OK(backend_buffer_from_host_ptr(src, sizeof src, &h));
    REQUIRE(h);
    CHECK(backend_buffer_base(h) == (void *)src);
    CHECK(backend_buft_flags(h->buft) == HEARTH_BUFT_HOST);
    CHECK_OK(backend_buffer_copy(a, 0, h, 0, 300));
    backend_buffer_free(h);
    backend_event_destroy(ev);
    backend_stream_destroy(s);
    backend_buffer_free(a);
    backend_buffer_free(b);
    backend_device_destroy(dev);
}

TEST(buffer_types_and_props)
{
    struct hearth_device *dev = fixture_cpu_device("cpu-y", 1);
    REQUIRE(dev);
    struct hearth_buffer_type *bt = backend_device_buffer_type(dev);
    struct hearth_buffer_type *ht = backend_device_host_buffer_type(dev);
    REQUIRE(bt && ht && bt != ht);
    CHECK_INT_EQ(backend_buft_flags(bt), HEARTH_BUFT_HOST | HEARTH_BUFT_DEVICE_LOCAL);
    CHECK_INT_EQ(backend_buft_flags(ht), HEARTH_BUFT_HOST | HEARTH_BUFT_PINNED);
    CHECK(backend_buft_alignment(bt) >= 16);
    CHECK(backend_buft_max_size(bt) >= ((size_t)1 << 40));
    struct hearth_buffer *b = NULL;
    CHECK_OK(backend_buffer_alloc(ht, 4096, &b));
    REQUIRE(b);
    CHECK(((uintptr_t)backend_buffer_base(b) % backend_buft_alignment(ht)) == 0);
    backend_buffer_free(b);
    struct hearth_device_props p;
    backend_device_props(dev, &p);
    CHECK_STR_EQ(p.name, "cpu-y");
    CHECK(p.host_memory);
    CHECK(p.total_bytes > 0 && p.free_bytes <= p.total_bytes);
    CHECK(backend_device_supports_op(dev, HEARTH_OP_MATMUL, HEARTH_DTYPE_Q4_K));
    CHECK(backend_device_supports_op(dev, HEARTH_OP_EMBED, HEARTH_DTYPE_Q6_K));
    CHECK(!backend_device_supports_op(dev, HEARTH_OP_MATMUL, HEARTH_DTYPE_I32));
    CHECK(!backend_device_supports_op(dev, HEARTH_OP_RMSNORM, HEARTH_DTYPE_F16));
    CHECK(!backend_device_supports_op(dev, HEARTH_OP_COUNT, HEARTH_DTYPE_F32));
    CHECK_STR_EQ(backend_op_name(HEARTH_OP_ATTENTION), "attention");
    /* the registry's table */
    const struct hearth_backend_ops *ro = cpu_backend_ops();
    CHECK_INT_EQ(ro->abi_version, HEARTH_BACKEND_ABI_VERSION);
    CHECK_INT_EQ(ro->device_count(), 1);
    CHECK_INT_EQ(ro->device_open(1, &(struct hearth_device *){NULL}), HEARTH_ERR_NOT_FOUND);
    backend_device_destroy(dev);
}

/* A device table with every optional member NULL: the wrappers supply the defaults. */
static void min_props(struct hearth_device *dev, struct hearth_device_props *out)
{
    (void)dev;
    snprintf(out->name, sizeof out->name, "minimal");
    out->free_bytes = 123;
    out->total_bytes = 456;
}

TEST(optional_members_default)
{
    static const struct hearth_device_ops min_ops = {
        .abi_version = 1, .backend = "minimal", .get_props = min_props};
    struct hearth_device dev = {&min_ops, NULL};
    uint64_t fr = 0, tot = 0;
    backend_device_memory(&dev, &fr, &tot);
    CHECK_INT_EQ(fr, 123);
    CHECK_INT_EQ(tot, 456);
    CHECK(backend_device_supports_op(&dev, HEARTH_OP_GLU, HEARTH_DTYPE_F32));
    CHECK(!backend_device_supports_op(&dev, HEARTH_OP_MATMUL, HEARTH_DTYPE_Q4_0));
    double gbps = 1.0;
    CHECK_INT_EQ(backend_device_measure_bandwidth(&dev, &gbps), HEARTH_ERR_UNSUPPORTED);
    CHECK(gbps == 0.0);
    /* default host type: plain host memory, not pinned */
    struct hearth_buffer_type *ht = backend_device_host_buffer_type(&dev);
    REQUIRE(ht);
    CHECK(backend_buft_flags(ht) & HEARTH_BUFT_HOST);
    CHECK(!(backend_buft_flags(ht) & HEARTH_BUFT_PINNED));
}

TEST(op_validation)
{
    struct hearth_device *d1 = fixture_cpu_device("cpu-a", 1), *d2 = fixture_cpu_device("cpu-b", 1);
    REQUIRE(d1 && d2);
    struct hearth_stream *s = NULL;
    CHECK_OK(backend_stream_create(d1, &s));
    struct bag g = {.n = 0};
    struct hearth_tensor x = mk(&g, d1, HEARTH_DTYPE_F32, 8, 2),
                         y = mk(&g, d2, HEARTH_DTYPE_F32, 8, 2);
    REQUIRE(s && x.buf && y.buf);
    struct hearth_op op;
    memset(&op, 0, sizeof op);
    op.kind = HEARTH_OP_RMSNORM;
    op.n_tok = 2;
    op.u.rmsnorm = (struct hearth_op_rmsnorm){x, {0}, y, 1e-5f};
    /* y lives on the other CPU device: both have host memory, so it is usable */
    CHECK_OK(backend_stream_run(s, &op, 1));
    op.u.rmsnorm.y = (struct hearth_tensor){0};
    CHECK_INT_EQ(backend_stream_run(s, &op, 1), HEARTH_ERR_INVALID_ARG);
    CHECK(strstr(hearth_last_error(), "rmsnorm.y missing") != NULL);
    op.u.rmsnorm.y = x;
    op.u.rmsnorm.y.n_rows = 3; /* runs past the buffer */
    CHECK_INT_EQ(backend_stream_run(s, &op, 1), HEARTH_ERR_INVALID_ARG);
    op.u.rmsnorm.y = x;
    op.n_tok = 0;
    CHECK_INT_EQ(backend_stream_run(s, &op, 1), HEARTH_ERR_INVALID_ARG);
    op.n_tok = 2;
    op.kind = HEARTH_OP_MATMUL;
    memset(&op.u, 0, sizeof op.u);
    op.u.matmul.n_w = 4;
    CHECK_INT_EQ(backend_stream_run(s, &op, 1), HEARTH_ERR_INVALID_ARG);
    /* a weight type without a CPU kernel: the backend says UNSUPPORTED */
    struct hearth_tensor wi = mk(&g, d1, HEARTH_DTYPE_I32, 8, 4),
                         yo = mk(&g, d1, HEARTH_DTYPE_F32, 4, 2);
    op.u.matmul.n_w = 1;
    op.u.matmul.x = x;
    op.u.matmul.w[0] = wi;
    op.u.matmul.y[0] = yo;
    CHECK_INT_EQ(backend_stream_run(s, &op, 1), HEARTH_ERR_UNSUPPORTED);
    done(&g);
    backend_stream_destroy(s);
    backend_device_destroy(d1);
    backend_device_destroy(d2);
}

struct hook_state {
    int calls;
    int fail_at;        /* 1-based call that fails */
    hearth_status with; /* the status it fails with */
};

static hearth_status fail_nth(void *user, struct hearth_buffer_type *bt, size_t size)
{
    (void)bt;
    (void)size;
    struct hook_state *h = user;
    return ++h->calls == h->fail_at ? h->with : HEARTH_OK;
}

/* A constructor with a cleanup ladder, as the scheduler has, under injected failures. */
static hearth_status alloc_three(struct hearth_device *dev, struct hearth_buffer **out)
{
    struct hearth_buffer *a = NULL, *b = NULL, *c = NULL;
    hearth_status st;
    if ((st = backend_buffer_alloc(backend_device_buffer_type(dev), 100, &a)) != HEARTH_OK)
        goto fail;
    if ((st = backend_buffer_alloc(backend_device_host_buffer_type(dev), 200, &b)) != HEARTH_OK)
        goto fail;
    if ((st = backend_buffer_alloc(backend_device_buffer_type(dev), 300, &c)) != HEARTH_OK)
        goto fail;
    out[0] = a, out[1] = b, out[2] = c;
    return HEARTH_OK;
fail:
    backend_buffer_free(b);
    backend_buffer_free(a);
    return st;
}

TEST(injected_allocation_failure)
{
    struct hearth_device *dev = fixture_cpu_device(NULL, 1);
    REQUIRE(dev);
    for (int n = 1; n <= 3; n++) {
        struct hook_state h = {0, n, n == 2 ? HEARTH_ERR_NO_MEMORY : HEARTH_ERR_DEVICE_OOM};
        backend_set_alloc_hook(fail_nth, &h);
        struct hearth_buffer *out[3] = {NULL, NULL, NULL};
        hearth_status st = alloc_three(dev, out);
        CHECK_INT_EQ(st, h.with);
        CHECK(strstr(hearth_last_error(), "injected") != NULL);
        CHECK_INT_EQ(h.calls, n);
        CHECK(out[0] == NULL);
    }
    /* hook removed: everything succeeds */
    backend_set_alloc_hook(NULL, NULL);
    struct hearth_buffer *out[3] = {NULL, NULL, NULL};
    CHECK_OK(alloc_three(dev, out));
    for (int i = 0; i < 3; i++)
        backend_buffer_free(out[i]);
    backend_device_destroy(dev);
}

TEST(registry_opens_by_name)
{
    const struct hearth_backend_ops *tabs[8];
    int nb = reg_backends(tabs, 8);
    REQUIRE(nb >= 1);
    CHECK_STR_EQ(tabs[0]->name, "cpu");
    struct reg_device_info info[32];
    int nd = reg_list_devices(info, 32);
    REQUIRE(nd >= 1);
    CHECK_STR_EQ(info[0].name, "cpu");
    CHECK(info[0].total_bytes > 0);
    struct hearth_device *dev = NULL;
    CHECK_OK(reg_device_open("cpu", &dev));
    REQUIRE(dev);
    struct hearth_device_props p;
    backend_device_props(dev, &p);
    CHECK_STR_EQ(p.name, "cpu");
    double gbps = 0.0;
    CHECK_OK(backend_device_measure_bandwidth(dev, &gbps));
    CHECK(gbps > 0.0);
    backend_device_props(dev, &p);
    CHECK(p.bw_gbps == gbps);
    backend_device_destroy(dev);
    struct hearth_device *none = (struct hearth_device *)(uintptr_t)1;
    CHECK_INT_EQ(reg_device_open("nosuchdevice0", &none), HEARTH_ERR_NOT_FOUND);
    CHECK(none == NULL);
    CHECK(strstr(hearth_last_error(), "offer: cpu") != NULL);
}

TEST_MAIN(TEST_CASE(rowwise_ops_bit_exact), TEST_CASE(matmul_and_logits_bit_exact),
          TEST_CASE(attention_bit_exact), TEST_CASE(buffers_set_get_clear_copy),
          TEST_CASE(buffer_types_and_props), TEST_CASE(optional_members_default),
          TEST_CASE(op_validation), TEST_CASE(injected_allocation_failure),
          TEST_CASE(registry_opens_by_name))
