/*
 * test-cuda-kvq-window: the CUDA ATTENTION op's exact recent window over the
 * compressed KV cache types (core/backend.h ATTENTION steps 5 and 6;
 * cuda/attention-kvq.cu, dispatched by cuda/backend.c), next to the CPU
 * backend, as tests/test-vk-kvq-window.c does on Vulkan. The store kernel
 * and the plain op are tests/test-cuda-kvq.c; the devices and bounds both
 * use are tests/cuda-kvq-fixtures.h. Without a CUDA device every case skips
 * ("skipped: no CUDA device", exit 77).
 *
 * The exact window (ATTENTION step 5, attention_exact_window): rot4/rot4,
 * q8_0/rot4, q4_0/q4_0, rot3/f16 at W 1, 5, 40 through batches, decode steps
 * and a rewind, against the contract's double reference and ring (bit for
 * bit) and the CPU backend's op.
 * Ring-only layers (ATTENTION step 6, attention_ring_only): a prefill, 17
 * decode steps and a batch, sliding window 16, kv_window 16 and 20, caches
 * present and then absent: outputs, rings, tags and k_aux bit-identical
 * after every call; broken preconditions give INVALID_ARG.
 * Ring-only layers over an f16/f16 cache (attention_ring_only_f16): the same
 * script with both types f16, the ring bit for bit against the contract's f16
 * rows, out against a double reference over them and the CPU backend's op.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#ifdef HEARTH_WITH_CUDA
#include "backend.h"
#include "cuda-kvq-fixtures.h"
#include "f16.h"
#include "kv-quant.h"
#include "kvq-ref.h"

static struct hearth_device *g_cpu;

/* ==== the exact window (core/backend.h ATTENTION step 5) ===================== */

enum { WX_CTX = 80, WX_HD = 64, WX_KV = KV_HK * WX_HD, WX_QD = KV_H * WX_HD, WX_MAXW = 40 };

/* One device's tensors for a window sequence, and the buffers behind them. */
struct wx_dev {
    struct hearth_device *dev;
    struct hearth_stream *s;
    struct hearth_buffer *bufs[24];
    int n_bufs;
    struct hearth_tensor kc, vc, aux, kr, vr, rp;
};

/* The contract's ring (host model): W rows of WX_KV halves per cache, and tags. */
struct wx_ring {
    uint16_t k[WX_MAXW][WX_KV], v[WX_MAXW][WX_KV];
    int32_t pos[WX_MAXW];
};

/* A tensor of n_rows x ne0 of type t on w's device holding host bytes (NULL: zeros). */
static struct hearth_tensor wx_mk(struct wx_dev *w, hearth_dtype t, int64_t ne0, size_t row_bytes,
                                  int64_t n_rows, const void *host)
{
    struct hearth_tensor x;
    memset(&x, 0, sizeof x);
    struct hearth_buffer *b = NULL;
    size_t n = row_bytes * (size_t)n_rows;
    if (w->n_bufs >= (int)(sizeof w->bufs / sizeof w->bufs[0])) {
        TEST_FAIL_AT("too many test buffers");
        return x;
    }
    CHECK_OK(backend_buffer_alloc(backend_device_buffer_type(w->dev), n, &b));
    if (!b)
        return x;
    w->bufs[w->n_bufs++] = b;
    if (host)
        CHECK_OK(backend_buffer_set(b, 0, host, n));
    else
        CHECK_OK(backend_buffer_clear(b, 0));
    x.buf = b, x.type = t, x.ne0 = ne0, x.n_rows = n_rows, x.row_stride = row_bytes;
    return x;
}

static void wx_dev_free(struct wx_dev *w)
{
    for (int i = 0; i < w->n_bufs; i++)
        backend_buffer_free(w->bufs[i]);
    w->n_bufs = 0;
    backend_stream_destroy(w->s);
    w->s = NULL;
}

/* The caches, k_aux and rings of one device (ring tags -1). */
static void wx_dev_init(struct wx_dev *w, enum kvq_type kt, enum kvq_type vt, int W)
{
    size_t krow = KV_HK * kvq_head_bytes(kt, WX_HD), vrow = KV_HK * kvq_head_bytes(vt, WX_HD);
    int32_t tags[WX_MAXW];
    for (int i = 0; i < WX_MAXW; i++)
        tags[i] = -1;
    CHECK_OK(backend_stream_create(w->dev, &w->s));
    w->kc = wx_mk(w, kt == KVQ_F16 ? HEARTH_DTYPE_F16 : HEARTH_DTYPE_I8,
                  kt == KVQ_F16 ? WX_KV : (int64_t)krow, krow, WX_CTX, NULL);
    w->vc = wx_mk(w, vt == KVQ_F16 ? HEARTH_DTYPE_F16 : HEARTH_DTYPE_I8,
                  vt == KVQ_F16 ? WX_KV : (int64_t)vrow, vrow, WX_CTX, NULL);
    w->aux = wx_mk(w, HEARTH_DTYPE_F32, WX_KV, WX_KV * 4, 2, NULL);
    w->kr = wx_mk(w, HEARTH_DTYPE_F16, WX_KV, WX_KV * 2, W, NULL);
    w->vr = wx_mk(w, HEARTH_DTYPE_F16, WX_KV, WX_KV * 2, W, NULL);
    w->rp = wx_mk(w, HEARTH_DTYPE_I32, W, (size_t)W * 4, 1, tags);
}

static void wx_op(enum kvq_type kt, enum kvq_type vt, int W, uint32_t layer, const struct wx_dev *w,
                  const struct hearth_tensor *qkv, int n, int pos0, struct hearth_op *op)
{
    memset(op, 0, sizeof *op);
    op->kind = HEARTH_OP_ATTENTION;
    op->n_tok = n;
    struct hearth_op_attention *a = &op->u.attn;
    a->q = qkv[0], a->k = qkv[1], a->v = qkv[2], a->out = qkv[3];
    a->k_cache = w->kc, a->v_cache = w->vc;
    if (kt != KVQ_F16)
        a->k_aux = w->aux;
    a->n_head = KV_H, a->n_head_kv = KV_HK, a->head_dim = WX_HD, a->n_rot = WX_HD;
    a->rope_mode = layer % 2 ? HEARTH_ROPE_NEOX : HEARTH_ROPE_NORMAL;
    a->rope_base = 10000.0f, a->rope_freq_scale = 1.0f, a->norm_eps = 1e-6f;
    a->scale = 1.0f / sqrtf((float)WX_HD), a->pos0 = pos0;
    a->k_type = kt, a->v_type = vt, a->layer = layer, a->kv_seed = 0x1234567ull;
    a->kv_window = (uint32_t)W, a->k_ring = w->kr, a->v_ring = w->vr, a->ring_pos = w->rp;
}

/*
 * As tests/test-vk-kvq-window.c win_case: batches (0, 9), (9, max(W + 3,
 * 4)), two decode steps, a 4-token rewind at end - 7; after each, out
 * against the contract's double reference (2e-4 max|ref| + 1e-5), the ring
 * and tags bit for bit against the contract's (from the op's own read-back
 * centred k and v), and, where the CPU backend has the window, out within
 * cukvq_tol of its and its tags equal.
 */
static void wx_case(struct hearth_device *gpu, enum kvq_type kt, enum kvq_type vt, int W,
                    uint32_t layer)
{
    size_t krow = KV_HK * kvq_head_bytes(kt, WX_HD), vrow = KV_HK * kvq_head_bytes(vt, WX_HD);
    const bool centred = kt != KVQ_F16;
    const bool use_cpu = backend_device_supports_kv_window(g_cpu, kt, vt);
    struct kvq_rot rot;
    CHECK_OK(kvq_rot_init(&rot, WX_HD, 0x1234567ull, layer));
    char name[48];
    kvq_pair_name(kt, vt, name, sizeof name);
    const int nb = W + 3 > 4 ? W + 3 : 4, end = 9 + nb + 2;
    const int sched[5][2] = {{0, 9}, {9, nb}, {9 + nb, 1}, {10 + nb, 1}, {end - 7, 4}};
    struct wx_dev wd[2] = {{.dev = g_cpu}, {.dev = gpu}};
    struct wx_ring *model = malloc(sizeof *model), *got = malloc(sizeof *got);
    uint8_t *kc = malloc(WX_CTX * krow), *vc = malloc(WX_CTX * vrow);
    float *q = malloc(WX_CTX * WX_QD * 4), *k = malloc(WX_CTX * WX_KV * 4);
    float *v = malloc(WX_CTX * WX_KV * 4), *out = malloc(WX_CTX * WX_QD * 4);
    float *outc = malloc(WX_CTX * WX_QD * 4), *qr = malloc(WX_CTX * WX_QD * 4);
    float *kr = malloc(WX_CTX * WX_KV * 4), *aux = malloc(2 * WX_KV * 4), tmp[WX_KV];
    uint16_t *xk = malloc(WX_CTX * WX_KV * 2), *xv = malloc(WX_CTX * WX_KV * 2);
    double *ref = malloc(WX_CTX * WX_QD * sizeof *ref);
    REQUIRE(model && got && kc && vc && q && k && v && out && outc && qr && kr && aux && xk &&
            xv && ref);
    for (int i = 0; i < W; i++)
        model->pos[i] = -1;
    for (int d = 0; d < 2; d++)
        if (d == 1 || use_cpu)
            wx_dev_init(&wd[d], kt, vt, W);
    for (int b = 0; b < 5; b++) {
        const int pos0 = sched[b][0], n = sched[b][1];
        for (int i = 0; i < n * WX_QD; i++)
            q[i] = (float)test_rng_gauss();
        for (int i = 0; i < n * WX_KV; i++) {
            k[i] = (float)test_rng_gauss() + 0.3f;
            v[i] = (float)test_rng_gauss();
        }
        struct hearth_op op[2];
        for (int d = 0; d < 2; d++) {
            if (d == 0 && !use_cpu)
                continue;
            struct hearth_tensor t[4];
            t[0] = wx_mk(&wd[d], HEARTH_DTYPE_F32, WX_QD, WX_QD * 4, n, q);
            t[1] = wx_mk(&wd[d], HEARTH_DTYPE_F32, WX_KV, WX_KV * 4, n, k);
            t[2] = wx_mk(&wd[d], HEARTH_DTYPE_F32, WX_KV, WX_KV * 4, n, v);
            t[3] = wx_mk(&wd[d], HEARTH_DTYPE_F32, WX_QD, WX_QD * 4, n, NULL);
            wx_op(kt, vt, W, layer, &wd[d], t, n, pos0, &op[d]);
        }
        hearth_status st = backend_stream_run(wd[1].s, &op[1], 1);
        CHECK_MSG(st == HEARTH_OK, "%s W%d batch %d: cuda run failed", name, W, b);
        CHECK_OK(backend_stream_synchronize(wd[1].s));
        if (st != HEARTH_OK)
            break;
        const struct hearth_op_attention *a = &op[1].u.attn;
        CHECK_OK(backend_buffer_get(a->out.buf, 0, out, (size_t)n * WX_QD * 4));
        CHECK_OK(backend_buffer_get(a->q.buf, 0, qr, (size_t)n * WX_QD * 4));
        CHECK_OK(backend_buffer_get(a->k.buf, 0, kr, (size_t)n * WX_KV * 4));
        CHECK_OK(backend_buffer_get(wd[1].kc.buf, 0, kc, WX_CTX * krow));
        CHECK_OK(backend_buffer_get(wd[1].vc.buf, 0, vc, WX_CTX * vrow));
        CHECK_OK(backend_buffer_get(wd[1].aux.buf, 0, aux, 2 * WX_KV * 4));
        for (int t = 0; t < n; t++) {
            kvq_ref_domain(kt, &rot, kr + t * WX_KV, KV_HK, WX_HD, tmp);
            for (int i = 0; i < WX_KV; i++)
                xk[t * WX_KV + i] = f32_to_f16(tmp[i]);
            kvq_ref_domain(vt, &rot, v + t * WX_KV, KV_HK, WX_HD, tmp);
            for (int i = 0; i < WX_KV; i++)
                xv[t * WX_KV + i] = f32_to_f16(tmp[i]);
        }
        const struct kvq_ref_window refw = {
            .kt = kt, .vt = vt, .rot = &rot, .hd = WX_HD, .n_head = KV_H, .n_head_kv = KV_HK,
            .w = W, .xk = xk, .xv = xv, .ring_k = model->k[0], .ring_v = model->v[0],
            .ring_stride = WX_KV, .ring_pos = model->pos, .kc = kc, .vc = vc,
            .sink = centred ? aux + WX_KV : NULL,
        };
        if (!kvq_ref_window_attention(&refw, n, pos0, qr, ref)) {
            TEST_FAIL_AT("out of memory");
            break;
        }
        double mx = 0.0, err = 0.0;
        for (int i = 0; i < n * WX_QD; i++) {
            mx = fmax(mx, fabs(ref[i]));
            err = fmax(err, fabs((double)out[i] - ref[i]));
        }
        CHECK_MSG(err <= 2e-4 * mx + 1e-5, "%s W%d batch %d (%d at %d): error %.3g of max %.3g",
                  name, W, b, n, pos0, err, mx);
        for (int t = 0; t < n; t++) {
            const int sl = (pos0 + t) % W;
            memcpy(model->k[sl], xk + t * WX_KV, sizeof model->k[sl]);
            memcpy(model->v[sl], xv + t * WX_KV, sizeof model->v[sl]);
            model->pos[sl] = pos0 + t;
        }
        CHECK_OK(backend_buffer_get(wd[1].kr.buf, 0, got->k, (size_t)W * WX_KV * 2));
        CHECK_OK(backend_buffer_get(wd[1].vr.buf, 0, got->v, (size_t)W * WX_KV * 2));
        CHECK_OK(backend_buffer_get(wd[1].rp.buf, 0, got->pos, (size_t)W * 4));
        int bad = 0;
        for (int sl = 0; sl < W; sl++) {
            bad += got->pos[sl] != model->pos[sl];
            for (int i = 0; model->pos[sl] >= 0 && i < WX_KV; i++)
                bad += (got->k[sl][i] != model->k[sl][i]) + (got->v[sl][i] != model->v[sl][i]);
        }
        CHECK_MSG(bad == 0, "%s W%d batch %d: %d ring halves/tags differ from the contract's",
                  name, W, b, bad);
        if (!use_cpu)
            continue;
        CHECK_OK(backend_stream_run(wd[0].s, &op[0], 1));
        CHECK_OK(backend_stream_synchronize(wd[0].s));
        CHECK_OK(backend_buffer_get(op[0].u.attn.out.buf, 0, outc, (size_t)n * WX_QD * 4));
        CHECK_OK(backend_buffer_get(wd[0].rp.buf, 0, got->pos, (size_t)W * 4));
        double mc = 0.0, ec = 0.0;
        for (int i = 0; i < n * WX_QD; i++) {
            mc = fmax(mc, fabs((double)outc[i]));
            ec = fmax(ec, fabs((double)out[i] - (double)outc[i]));
        }
        double tol = fmax(cukvq_tol(kt), cukvq_tol(vt));
        CHECK_MSG(ec <= tol * mc, "%s W%d batch %d: vs cpu %.3g of max %.3g", name, W, b, ec, mc);
        CHECK_MSG(memcmp(got->pos, model->pos, (size_t)W * 4) == 0, "%s W%d batch %d: cpu tags",
                  name, W, b);
    }
    for (int d = 0; d < 2; d++)
        wx_dev_free(&wd[d]);
    free(model), free(got), free(kc), free(vc), free(q), free(k), free(v), free(out);
    free(outc), free(qr), free(kr), free(aux), free(xk), free(xv), free(ref);
}

TEST(attention_exact_window)
{
    NEED_DEVICE();
    test_rng_seed(84);
    struct hearth_device *gpu;
    REQUIRE(cukvq_open_devices(&g_cpu, &gpu));
    static const enum kvq_type wp[4][2] = {
        {KVQ_ROT4, KVQ_ROT4}, {KVQ_Q8_0, KVQ_ROT4}, {KVQ_Q4_0, KVQ_Q4_0}, {KVQ_ROT3, KVQ_F16}};
    static const int ws[3] = {1, 5, WX_MAXW};
    for (int p = 0; p < 4; p++)
        for (int w = 0; w < 3; w++)
            wx_case(gpu, wp[p][0], wp[p][1], ws[w], (uint32_t)(30 + 3 * p + w));
    for (int kt = 0; kt < KVQ_TYPE_COUNT; kt++)
        for (int vt = 0; vt < KVQ_TYPE_COUNT; vt++)
            CHECK_MSG(backend_device_supports_kv_window(gpu, kt, vt) ==
                          (kt != KVQ_F16 || vt != KVQ_F16), "supports_kv_window %d/%d", kt, vt);
    cukvq_close_devices(&g_cpu, gpu);
}

/* ==== ring-only layers (core/backend.h ATTENTION step 6) ===================== */

enum { RO_CALLS = 19, RO_POS = 46, RO_SWA = 16, RO_MAXW = 20 };

/* The script: a 24-token prefill, decode steps 24..40 (the ring wraps), 5 tokens at 41. */
static void ro_call(int c, int *pos0, int *n)
{
    *pos0 = c == 0 ? 0 : 23 + c;
    *n = c == 0 ? 24 : c == RO_CALLS - 1 ? 5 : 1;
}

/* An ATTENTION op of n tokens at pos0 over w (sliding window RO_SWA, exact window W). */
static void ro_op(enum kvq_type kt, enum kvq_type vt, int hd, int hk, int W, uint32_t layer,
                  const struct wx_dev *w, const struct hearth_tensor *qkv, int n, int pos0,
                  struct hearth_op *op)
{
    memset(op, 0, sizeof *op);
    op->kind = HEARTH_OP_ATTENTION;
    op->n_tok = n;
    struct hearth_op_attention *a = &op->u.attn;
    a->q = qkv[0], a->k = qkv[1], a->v = qkv[2], a->out = qkv[3];
    a->k_cache = w->kc, a->v_cache = w->vc;
    if (kt != KVQ_F16)
        a->k_aux = w->aux;
    a->n_head = KV_H, a->n_head_kv = hk, a->head_dim = hd, a->n_rot = hd;
    a->rope_mode = layer % 2 ? HEARTH_ROPE_NEOX : HEARTH_ROPE_NORMAL;
    a->rope_base = 10000.0f, a->rope_freq_scale = 1.0f, a->norm_eps = 1e-6f;
    a->scale = 1.0f / sqrtf((float)hd), a->pos0 = pos0, a->window = RO_SWA;
    a->k_type = kt, a->v_type = vt, a->layer = layer, a->kv_seed = 0x1234567ull;
    a->kv_window = (uint32_t)W, a->k_ring = w->kr, a->v_ring = w->vr, a->ring_pos = w->rp;
}

/* What one run leaves after each call: out by position; rings, tags and k_aux per call. */
struct ro_trace {
    float *out;      /* [RO_POS][KV_H * hd] */
    uint16_t *k, *v; /* [RO_CALLS][W][hk * hd] */
    int32_t *tags;   /* [RO_CALLS][W] */
    float *aux;      /* [RO_CALLS][2][hk * hd] */
};

/*
 * Runs the script once on gpu's fresh stream, caches present or absent,
 * fresh k_aux and rings, inputs q/k/v ([RO_POS] rows) by position; the
 * decode steps share one set of tensors. False when a call failed (checked).
 */
static bool ro_run(struct hearth_device *gpu, enum kvq_type kt, enum kvq_type vt, int hd, int hk,
                   int W, uint32_t layer, bool present, const float *q, const float *k,
                   const float *v, struct ro_trace *tr)
{
    const int KV = hk * hd, QD = KV_H * hd;
    size_t krow = (size_t)hk * kvq_head_bytes(kt, hd), vrow = (size_t)hk * kvq_head_bytes(vt, hd);
    struct wx_dev w = {.dev = gpu};
    int32_t tags[RO_MAXW];
    for (int i = 0; i < RO_MAXW; i++)
        tags[i] = -1;
    CHECK_OK(backend_stream_create(gpu, &w.s));
    if (present) {
        w.kc = wx_mk(&w, kt == KVQ_F16 ? HEARTH_DTYPE_F16 : HEARTH_DTYPE_I8,
                     kt == KVQ_F16 ? KV : (int64_t)krow, krow, WX_CTX, NULL);
        w.vc = wx_mk(&w, vt == KVQ_F16 ? HEARTH_DTYPE_F16 : HEARTH_DTYPE_I8,
                     vt == KVQ_F16 ? KV : (int64_t)vrow, vrow, WX_CTX, NULL);
    }
    w.aux = wx_mk(&w, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, 2, NULL);
    w.kr = wx_mk(&w, HEARTH_DTYPE_F16, KV, (size_t)KV * 2, W, NULL);
    w.vr = wx_mk(&w, HEARTH_DTYPE_F16, KV, (size_t)KV * 2, W, NULL);
    w.rp = wx_mk(&w, HEARTH_DTYPE_I32, W, (size_t)W * 4, 1, tags);
    struct hearth_tensor dec[4];
    bool ok = w.s != NULL;
    for (int c = 0; ok && c < RO_CALLS; c++) {
        int pos0, n;
        ro_call(c, &pos0, &n);
        const float *qs = q + (size_t)pos0 * QD, *ks = k + (size_t)pos0 * KV;
        const float *vs = v + (size_t)pos0 * KV;
        struct hearth_tensor fresh[4], *t = fresh;
        if (n == 1 && c > 1) {
            t = dec;
            CHECK_OK(backend_buffer_set(t[0].buf, 0, qs, (size_t)QD * 4));
            CHECK_OK(backend_buffer_set(t[1].buf, 0, ks, (size_t)KV * 4));
            CHECK_OK(backend_buffer_set(t[2].buf, 0, vs, (size_t)KV * 4));
        } else {
            if (n == 1)
                t = dec;
            t[0] = wx_mk(&w, HEARTH_DTYPE_F32, QD, (size_t)QD * 4, n, qs);
            t[1] = wx_mk(&w, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, n, ks);
            t[2] = wx_mk(&w, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, n, vs);
            t[3] = wx_mk(&w, HEARTH_DTYPE_F32, QD, (size_t)QD * 4, n, NULL);
        }
        struct hearth_op op;
        ro_op(kt, vt, hd, hk, W, layer, &w, t, n, pos0, &op);
        hearth_status st = backend_stream_run(w.s, &op, 1);
        CHECK_MSG(st == HEARTH_OK, "caches %s, call %d (%d at %d): %s",
                  present ? "present" : "absent", c, n, pos0, hearth_last_error());
        ok = st == HEARTH_OK && backend_stream_synchronize(w.s) == HEARTH_OK;
        if (!ok)
            break;
        CHECK_OK(backend_buffer_get(t[3].buf, 0, tr->out + (size_t)pos0 * QD, (size_t)n * QD * 4));
        CHECK_OK(backend_buffer_get(w.kr.buf, 0, tr->k + (size_t)c * W * KV, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(w.vr.buf, 0, tr->v + (size_t)c * W * KV, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(w.rp.buf, 0, tr->tags + (size_t)c * W, (size_t)W * 4));
        CHECK_OK(backend_buffer_get(w.aux.buf, 0, tr->aux + (size_t)c * 2 * KV,
                                    (size_t)2 * KV * 4));
    }
    wx_dev_free(&w);
    return ok;
}

/*
 * As tests/test-vk-kvq-window.c ro_case: kt/vt at head_dim hd over hk KV
 * heads, sliding window RO_SWA, exact window W >= RO_SWA; the script with caches
 * present, then absent: every output float, ring half, tag and k_aux float
 * bit-identical after every call (step 6: the codes are never read when the
 * ring covers the window), the present run's tags the contract's, its
 * outputs finite.
 */
static void ro_case(struct hearth_device *gpu, enum kvq_type kt, enum kvq_type vt, int hd, int hk,
                    int W, uint32_t layer)
{
    const int KV = hk * hd, QD = KV_H * hd;
    char name[48];
    kvq_pair_name(kt, vt, name, sizeof name);
    float *q = malloc((size_t)RO_POS * QD * 4), *k = malloc((size_t)RO_POS * KV * 4);
    float *v = malloc((size_t)RO_POS * KV * 4);
    struct ro_trace tr[2];
    bool ok = q && k && v;
    for (int i = 0; i < 2; i++) {
        tr[i].out = malloc((size_t)RO_POS * QD * sizeof *tr[i].out);
        tr[i].k = malloc((size_t)RO_CALLS * W * KV * 2);
        tr[i].v = malloc((size_t)RO_CALLS * W * KV * 2);
        tr[i].tags = malloc((size_t)RO_CALLS * W * 4);
        tr[i].aux = malloc((size_t)RO_CALLS * 2 * KV * 4);
        ok = ok && tr[i].out && tr[i].k && tr[i].v && tr[i].tags && tr[i].aux;
    }
    CHECK_MSG(ok, "out of memory");
    for (int i = 0; ok && i < RO_POS * QD; i++)
        q[i] = (float)test_rng_gauss();
    for (int i = 0; ok && i < RO_POS * KV; i++) {
        k[i] = (float)test_rng_gauss() + 0.3f; /* a key mean for step 3 to take out */
        v[i] = (float)test_rng_gauss();
    }
    /* tr[0]: caches present, tr[1]: absent */
    ok = ok && ro_run(gpu, kt, vt, hd, hk, W, layer, true, q, k, v, &tr[0]);
    ok = ok && ro_run(gpu, kt, vt, hd, hk, W, layer, false, q, k, v, &tr[1]);
    int32_t model[RO_MAXW];
    for (int i = 0; i < W; i++)
        model[i] = -1;
    int finite = 0;
    for (int c = 0; ok && c < RO_CALLS; c++) {
        int pos0, n;
        ro_call(c, &pos0, &n);
        for (int t = 0; t < n; t++)
            model[(pos0 + t) % W] = pos0 + t;
        size_t o0 = (size_t)pos0 * QD, r0 = (size_t)c * W * KV, a0 = (size_t)c * 2 * KV;
        int bad_out = 0, bad_ring = 0, bad_tags = 0, bad_model = 0, bad_aux = 0;
        for (size_t i = o0; i < o0 + (size_t)n * QD; i++) {
            bad_out += memcmp(&tr[0].out[i], &tr[1].out[i], sizeof(float)) != 0;
            finite += isfinite(tr[0].out[i]) && tr[0].out[i] != 0.0f;
        }
        for (size_t i = r0; i < r0 + (size_t)W * KV; i++)
            bad_ring += (tr[0].k[i] != tr[1].k[i]) + (tr[0].v[i] != tr[1].v[i]);
        for (int i = 0; i < W; i++) {
            bad_tags += tr[0].tags[c * W + i] != tr[1].tags[c * W + i];
            bad_model += tr[0].tags[c * W + i] != model[i];
        }
        for (size_t i = a0; i < a0 + (size_t)2 * KV; i++)
            bad_aux += memcmp(&tr[0].aux[i], &tr[1].aux[i], sizeof(float)) != 0;
        CHECK_MSG(bad_out + bad_ring + bad_tags + bad_aux == 0,
                  "%s d%d W%d call %d (%d at %d): absent caches differ: %d out floats, %d ring "
                  "halves, %d tags, %d k_aux floats", name, hd, W, c, n, pos0, bad_out, bad_ring,
                  bad_tags, bad_aux);
        CHECK_MSG(bad_model == 0, "%s d%d W%d call %d: %d ring tags differ from the contract's",
                  name, hd, W, c, bad_model);
    }
    CHECK_MSG(!ok || finite == RO_POS * QD, "%s d%d W%d: %d of %d outputs finite and non-zero",
              name, hd, W, finite, RO_POS * QD);
    free(q), free(k), free(v);
    for (int i = 0; i < 2; i++)
        free(tr[i].out), free(tr[i].k), free(tr[i].v), free(tr[i].tags), free(tr[i].aux);
}

/* An op with absent k_cache that breaks step 6's preconditions: INVALID_ARG. */
static void ro_bad(struct hearth_device *gpu, enum kvq_type kt, enum kvq_type vt, int W,
                   uint32_t window, bool v_cache, const char *what)
{
    const int hd = WX_HD, KV = WX_KV, QD = WX_QD;
    float q[WX_QD], k[WX_KV], v[WX_KV];
    int32_t tags[RO_MAXW];
    for (int i = 0; i < RO_MAXW; i++)
        tags[i] = -1;
    for (int i = 0; i < QD; i++)
        q[i] = (float)test_rng_gauss();
    for (int i = 0; i < KV; i++)
        k[i] = (float)test_rng_gauss(), v[i] = (float)test_rng_gauss();
    struct wx_dev w = {.dev = gpu};
    CHECK_OK(backend_stream_create(gpu, &w.s));
    if (!w.s)
        return;
    size_t vrow = KV_HK * kvq_head_bytes(vt, hd);
    if (v_cache)
        w.vc = wx_mk(&w, HEARTH_DTYPE_I8, (int64_t)vrow, vrow, WX_CTX, NULL);
    w.aux = wx_mk(&w, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, 2, NULL);
    w.kr = wx_mk(&w, HEARTH_DTYPE_F16, KV, (size_t)KV * 2, W, NULL);
    w.vr = wx_mk(&w, HEARTH_DTYPE_F16, KV, (size_t)KV * 2, W, NULL);
    w.rp = wx_mk(&w, HEARTH_DTYPE_I32, W, (size_t)W * 4, 1, tags);
    struct hearth_tensor t[4] = {
        wx_mk(&w, HEARTH_DTYPE_F32, QD, (size_t)QD * 4, 1, q),
        wx_mk(&w, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, 1, k),
        wx_mk(&w, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, 1, v),
        wx_mk(&w, HEARTH_DTYPE_F32, QD, (size_t)QD * 4, 1, NULL),
    };
    struct hearth_op op;
    ro_op(kt, vt, hd, KV_HK, W, 50, &w, t, 1, 0, &op);
    op.u.attn.window = window;
    hearth_status st = backend_stream_run(w.s, &op, 1);
    CHECK_MSG(st == HEARTH_ERR_INVALID_ARG, "%s: status %d (%s)", what, (int)st,
              hearth_last_error());
    if (st == HEARTH_OK)
        CHECK_OK(backend_stream_synchronize(w.s));
    wx_dev_free(&w);
}

/* rot4/rot4 and q8_0/rot4 at d 64 (2 KV heads) and 256 (1, as Gemma 3), W 16 and 20. */
TEST(attention_ring_only)
{
    NEED_DEVICE();
    test_rng_seed(85);
    struct hearth_device *gpu;
    REQUIRE(cukvq_open_devices(&g_cpu, &gpu));
    static const enum kvq_type rp[2][2] = {{KVQ_ROT4, KVQ_ROT4}, {KVQ_Q8_0, KVQ_ROT4}};
    static const int ws[2] = {RO_SWA, RO_MAXW};
    for (int p = 0; p < 2; p++)
        for (int d = 0; d < 2; d++)
            for (int w = 0; w < 2; w++)
                ro_case(gpu, rp[p][0], rp[p][1], d ? 256 : 64, d ? 1 : KV_HK, ws[w],
                        (uint32_t)(40 + 4 * p + 2 * d + w));
    ro_bad(gpu, KVQ_ROT4, KVQ_ROT4, 12, RO_SWA, false, "kv_window 12 < window 16");
    ro_bad(gpu, KVQ_Q8_0, KVQ_ROT4, RO_MAXW, 0, false, "window 0 (full attention)");
    ro_bad(gpu, KVQ_ROT4, KVQ_Q8_0, RO_MAXW, RO_SWA, true, "k_cache absent, v_cache present");
    cukvq_close_devices(&g_cpu, gpu);
}

/* ==== ring-only layers over an f16/f16 cache (step 6 with both types f16) ====== */

/*
 * As tests/test-vk-kvq-window.c rf_case: the f16/f16 ring-only layer at
 * head_dim hd over hk KV heads (sliding window RO_SWA, exact window W, no
 * caches, no k_aux), the ring_only script on cuda0 and on the CPU backend,
 * decode steps through shared tensors. After every call: the GPU ring and
 * tags bit for bit against the contract's (slot p % W = f32_to_f16 of the
 * op's RoPE'd k and of v at p, tag p); out against a double reference over
 * those rows and the op's RoPE'd q, window [p - RO_SWA + 1, p] (2e-4 max|ref|
 * + 1e-5); out within cukvq_tol(f16) of the CPU's, whose tags and V halves
 * must equal the contract's and K halves be within an f16 step.
 */
static void rf_case(struct hearth_device *gpu, int hd, int hk, int W, uint32_t layer)
{
    const int KV = hk * hd, QD = KV_H * hd, NMAX = 24;
    float *q = malloc((size_t)RO_POS * QD * 4), *k = malloc((size_t)RO_POS * KV * 4);
    float *v = malloc((size_t)RO_POS * KV * 4);
    float *out = malloc((size_t)NMAX * QD * 4), *outc = malloc((size_t)NMAX * QD * 4);
    float *qr = malloc((size_t)NMAX * QD * 4), *kr = malloc((size_t)NMAX * KV * 4);
    uint16_t *xk = malloc((size_t)RO_POS * KV * 2), *xv = malloc((size_t)RO_POS * KV * 2);
    uint16_t *rk = malloc((size_t)W * KV * 2), *rv = malloc((size_t)W * KV * 2);
    double *sc = malloc(RO_SWA * sizeof *sc);
    REQUIRE(q && k && v && out && outc && qr && kr && xk && xv && rk && rv && sc);
    for (int i = 0; i < RO_POS * QD; i++)
        q[i] = (float)test_rng_gauss();
    for (int i = 0; i < RO_POS * KV; i++) {
        k[i] = (float)test_rng_gauss();
        v[i] = (float)test_rng_gauss();
    }
    CHECK_MSG(backend_device_supports_kv_ring_only(gpu, KVQ_F16, KVQ_F16),
              "cuda: no f16/f16 ring-only layers");
    const bool use_cpu = backend_device_supports_kv_ring_only(g_cpu, KVQ_F16, KVQ_F16);
    CHECK_MSG(use_cpu, "the CPU backend lacks f16/f16 ring-only layers");
    int32_t tags[RO_MAXW], model[RO_MAXW], rt[RO_MAXW];
    for (int i = 0; i < RO_MAXW; i++)
        tags[i] = model[i] = -1;
    struct wx_dev wd[2] = {{.dev = g_cpu}, {.dev = gpu}};
    struct hearth_tensor dec[2][4];
    for (int d = 0; d < 2; d++) {
        CHECK_OK(backend_stream_create(wd[d].dev, &wd[d].s));
        wd[d].kr = wx_mk(&wd[d], HEARTH_DTYPE_F16, KV, (size_t)KV * 2, W, NULL);
        wd[d].vr = wx_mk(&wd[d], HEARTH_DTYPE_F16, KV, (size_t)KV * 2, W, NULL);
        wd[d].rp = wx_mk(&wd[d], HEARTH_DTYPE_I32, W, (size_t)W * 4, 1, tags);
    }
    for (int c = 0; wd[0].s && wd[1].s && c < RO_CALLS; c++) {
        int pos0, n;
        ro_call(c, &pos0, &n);
        const float *qs = q + (size_t)pos0 * QD, *ks = k + (size_t)pos0 * KV;
        const float *vs = v + (size_t)pos0 * KV;
        struct hearth_op op[2];
        struct hearth_tensor fresh[2][4];
        for (int d = 0; d < 2; d++) {
            struct hearth_tensor *t = fresh[d];
            if (n == 1 && c > 1) {
                t = dec[d];
                CHECK_OK(backend_buffer_set(t[0].buf, 0, qs, (size_t)QD * 4));
                CHECK_OK(backend_buffer_set(t[1].buf, 0, ks, (size_t)KV * 4));
                CHECK_OK(backend_buffer_set(t[2].buf, 0, vs, (size_t)KV * 4));
            } else {
                if (n == 1)
                    t = dec[d];
                t[0] = wx_mk(&wd[d], HEARTH_DTYPE_F32, QD, (size_t)QD * 4, n, qs);
                t[1] = wx_mk(&wd[d], HEARTH_DTYPE_F32, KV, (size_t)KV * 4, n, ks);
                t[2] = wx_mk(&wd[d], HEARTH_DTYPE_F32, KV, (size_t)KV * 4, n, vs);
                t[3] = wx_mk(&wd[d], HEARTH_DTYPE_F32, QD, (size_t)QD * 4, n, NULL);
            }
            ro_op(KVQ_F16, KVQ_F16, hd, hk, W, layer, &wd[d], t, n, pos0, &op[d]);
        }
        hearth_status st = backend_stream_run(wd[1].s, &op[1], 1);
        CHECK_MSG(st == HEARTH_OK, "f16 d%d W%d call %d (%d at %d): %s", hd, W, c, n, pos0,
                  hearth_last_error());
        if (st != HEARTH_OK || backend_stream_synchronize(wd[1].s) != HEARTH_OK)
            break;
        const struct hearth_op_attention *a = &op[1].u.attn;
        CHECK_OK(backend_buffer_get(a->out.buf, 0, out, (size_t)n * QD * 4));
        CHECK_OK(backend_buffer_get(a->q.buf, 0, qr, (size_t)n * QD * 4));
        CHECK_OK(backend_buffer_get(a->k.buf, 0, kr, (size_t)n * KV * 4));
        for (size_t i = 0; i < (size_t)n * KV; i++) {
            xk[(size_t)pos0 * KV + i] = f32_to_f16(kr[i]);
            xv[(size_t)pos0 * KV + i] = f32_to_f16(vs[i]);
        }
        double mx = 0.0, err = 0.0;
        for (int t = 0; t < n; t++) {
            const int p = pos0 + t, lo = p + 1 > RO_SWA ? p + 1 - RO_SWA : 0;
            for (int h = 0; h < KV_H; h++) {
                const float *qh = qr + ((size_t)t * KV_H + (size_t)h) * (size_t)hd;
                const size_t ho = (size_t)(h / (KV_H / hk)) * (size_t)hd;
                double smax = -INFINITY, sum = 0.0;
                for (int j = lo; j <= p; j++) {
                    double dot = 0.0;
                    for (int i = 0; i < hd; i++)
                        dot += (double)qh[i] *
                               (double)f16_to_f32(xk[(size_t)j * KV + ho + (size_t)i]);
                    sc[j - lo] = dot * (double)a->scale;
                    smax = fmax(smax, sc[j - lo]);
                }
                for (int j = lo; j <= p; j++)
                    sum += (sc[j - lo] = exp(sc[j - lo] - smax));
                for (int i = 0; i < hd; i++) {
                    double o = 0.0;
                    for (int j = lo; j <= p; j++)
                        o += sc[j - lo] / sum *
                             (double)f16_to_f32(xv[(size_t)j * KV + ho + (size_t)i]);
                    const size_t oi = ((size_t)t * KV_H + (size_t)h) * (size_t)hd + (size_t)i;
                    mx = fmax(mx, fabs(o));
                    err = fmax(err, fabs((double)out[oi] - o));
                }
            }
        }
        CHECK_MSG(err <= 2e-4 * mx + 1e-5, "f16 d%d W%d call %d (%d at %d): error %.3g of max "
                  "%.3g", hd, W, c, n, pos0, err, mx);
        for (int t = 0; t < n; t++)
            model[(pos0 + t) % W] = pos0 + t;
        CHECK_OK(backend_buffer_get(wd[1].kr.buf, 0, rk, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(wd[1].vr.buf, 0, rv, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(wd[1].rp.buf, 0, rt, (size_t)W * 4));
        int bad = 0;
        for (int sl = 0; sl < W; sl++) {
            bad += rt[sl] != model[sl];
            for (int i = 0; model[sl] >= 0 && i < KV; i++) {
                const size_t xo = (size_t)model[sl] * KV + (size_t)i;
                const size_t ro = (size_t)sl * KV + (size_t)i;
                bad += (rk[ro] != xk[xo]) + (rv[ro] != xv[xo]);
            }
        }
        CHECK_MSG(bad == 0, "f16 d%d W%d call %d (%d at %d): %d ring halves/tags differ from "
                  "the contract's", hd, W, c, n, pos0, bad);
        if (!use_cpu)
            continue;
        st = backend_stream_run(wd[0].s, &op[0], 1);
        CHECK_MSG(st == HEARTH_OK, "cpu f16 d%d W%d call %d: %s", hd, W, c, hearth_last_error());
        if (st != HEARTH_OK || backend_stream_synchronize(wd[0].s) != HEARTH_OK)
            break;
        CHECK_OK(backend_buffer_get(op[0].u.attn.out.buf, 0, outc, (size_t)n * QD * 4));
        double mc = 0.0, ec = 0.0;
        for (size_t i = 0; i < (size_t)n * QD; i++) {
            mc = fmax(mc, fabs((double)outc[i]));
            ec = fmax(ec, fabs((double)out[i] - (double)outc[i]));
        }
        CHECK_MSG(ec <= cukvq_tol(KVQ_F16) * mc, "f16 d%d W%d call %d: vs cpu %.3g of max %.3g",
                  hd, W, c, ec, mc);
        CHECK_OK(backend_buffer_get(wd[0].kr.buf, 0, rk, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(wd[0].vr.buf, 0, rv, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(wd[0].rp.buf, 0, rt, (size_t)W * 4));
        int tb = 0, vb = 0;
        double rw = 0.0;
        for (int sl = 0; sl < W; sl++) {
            tb += rt[sl] != model[sl];
            for (int i = 0; model[sl] >= 0 && i < KV; i++) {
                const size_t xo = (size_t)model[sl] * KV + (size_t)i;
                const size_t ro = (size_t)sl * KV + (size_t)i;
                const double a0 = (double)f16_to_f32(xk[xo]), a1 = (double)f16_to_f32(rk[ro]);
                vb += xv[xo] != rv[ro];
                rw = fmax(rw, fabs(a0 - a1) / (1e-3 + fabs(a0)));
            }
        }
        CHECK_MSG(tb == 0 && vb == 0 && rw <= 2e-3, "f16 d%d W%d call %d: cpu ring: %d tags "
                  "and %d V halves differ, K by %.3g (relative)", hd, W, c, tb, vb, rw);
    }
    for (int d = 0; d < 2; d++)
        wx_dev_free(&wd[d]);
    free(q), free(k), free(v), free(out), free(outc), free(qr), free(kr), free(xk), free(xv);
    free(rk), free(rv), free(sc);
}

/* f16/f16 at d 64 (2 KV heads) and 256 (1, as Gemma 3), W 16 and 20; one broken precondition. */
TEST(attention_ring_only_f16)
{
    NEED_DEVICE();
    test_rng_seed(86);
    struct hearth_device *gpu;
    REQUIRE(cukvq_open_devices(&g_cpu, &gpu));
    static const int ws[2] = {RO_SWA, RO_MAXW};
    for (int d = 0; d < 2; d++)
        for (int w = 0; w < 2; w++)
            rf_case(gpu, d ? 256 : 64, d ? 1 : KV_HK, ws[w], (uint32_t)(60 + 2 * d + w));
    ro_bad(gpu, KVQ_F16, KVQ_F16, 12, RO_SWA, false, "f16/f16, kv_window 12 < window 16");
    cukvq_close_devices(&g_cpu, gpu);
}

TEST_MAIN(TEST_CASE(attention_exact_window), TEST_CASE(attention_ring_only),
          TEST_CASE(attention_ring_only_f16))

#else /* no CUDA backend in this build */

TEST(cuda_kvq_window)
{
    TEST_SKIP("no CUDA device (CUDA backend not built)");
}

TEST_MAIN(TEST_CASE(cuda_kvq_window))
#endif
