/*
 * test-cuda-kvq: the CUDA K/V store and attention over the compressed KV
 * cache types (cuda/attention-kvq.cu, dispatched by cuda/backend.c) against
 * the CPU codecs of core/kv-quant.c. Without a CUDA device every case skips
 * ("skipped: no CUDA device", exit 77).
 *
 * What is compared, and how closely:
 *  - Encoded bytes: every head vector the GPU writes must equal kvq_encode's
 *    bytes for the same input floats, for every type. The kernels repeat the
 *    reference's float and double operations in the same order with explicit
 *    rounding (no FMA contraction) and its sequential sums, so equality is
 *    expected, not approximate; a failure prints the first differing byte
 *    and how far the two vectors decode apart, to tell a bug (large) from a
 *    rounding divergence (one code or one scale ulp).
 *  - Attention output: against a double-precision softmax attention over
 *    the cache rows the GPU wrote, decoded on the host with kvq_decode, and
 *    the q the op left behind (normed and RoPE'd on the GPU): the kernel may
 *    add only float rounding, so |out - ref| <= 2e-4 * max|V| + 1e-5 (score
 *    sums of <= 256 float products and the float rotations of q and of the
 *    output are ~1e-6 relative; any indexing or decoding bug is >= 1e-2).
 *  - Against the CPU backend, when it supports the pair (supports_kv): the
 *    new V rows (same input bytes on both) must be byte-identical, and the
 *    outputs agree within a per-type bound (cukvq_tol): the two devices' RoPE
 *    and norms differ in the last bits, which can flip a K code at a
 *    rounding boundary; one flipped code moves a score by one quantization
 *    step of one coordinate, so the bound is a fraction of the type's step.
 *  - Key centring (non-f16 K): the op is given k_aux (zero before a first
 *    batch, a fixed mu/sink pattern before a later one). pos0 == 0: the sink
 *    equals the read-back centred k[0] bit for bit, mu is 0 for one token and
 *    within 1e-5 of the CPU backend's otherwise (the same double sum; only
 *    RoPE/norm bits differ); pos0 > 0: k_aux is left byte-equal. The store
 *    test checks the cache holds kvq_encode(k - mu) with mu read from k_aux,
 *    and the reference scores position 0 with k_aux row 1.
 * Cases: every K = V type plus K rot4 / V q8_0 and K q4_0 / V rot3; head_dim
 * 64, 128, 256 (96 for the multi-piece rotation); n_tok 1 and 7; pos0 0 and
 * 37; sliding windows; 300-position histories (ten tiles); GQA (4 heads over
 * 2 KV heads). Cache rows past the new tokens are poisoned and must stay so.
 * The op picks its own sequence split (the 300-position cases run split).
 * attention_split_matches forces it through cuda_kvq_args.n_split (1, 2, 5,
 * 64) at positions 700-2100: every pair, GQA, sliding windows, more pieces
 * than positions, the exact window and ring-only layers; each split within
 * 2e-5 max|V| of the unsplit output and, without the exact window, all
 * within the 2e-4 bound above of the double reference (see SPLIT_REL).
 * The exact window and ring-only layers (ATTENTION steps 5 and 6) are
 * tests/test-cuda-kvq-window.c; the devices and bounds both use are
 * tests/cuda-kvq-fixtures.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#ifdef HEARTH_WITH_CUDA
#include "../cuda/ops.h"
#include "backend.h"
#include "cuda-kvq-fixtures.h"
#include "f16.h"
#include "kv-quant.h"

#define POISON 0xa5

/*
 * A test head vector: Gaussian; keys (outliers) with channels 3 and d/2 + 5
 * ten times larger, as real keys have; every 13th vector all zeros (the
 * zero-scale path) and every 17th scaled by 1e-6 (f16 scales near the
 * subnormal range).
 */
static void fill_vec(float *x, int d, bool outliers, int serial)
{
    float s = serial % 17 == 16 ? 1e-6f : 1.0f;
    for (int i = 0; i < d; i++)
        x[i] = serial % 13 == 12 ? 0.0f : s * (float)test_rng_gauss();
    if (outliers) {
        x[3] *= 10.0f;
        x[d / 2 + 5] *= 10.0f;
    }
}

/* How far two encodings of one head vector decode apart (max abs) over max|a|. */
static double decoded_gap(enum kvq_type t, const struct kvq_rot *rot, int d, const uint8_t *a,
                          const uint8_t *b)
{
    float x[KVQ_MAX_HEAD_DIM], y[KVQ_MAX_HEAD_DIM];
    kvq_decode(t, rot, d, a, x);
    kvq_decode(t, rot, d, b, y);
    double gap = 0.0, mx = 0.0;
    for (int i = 0; i < d; i++) {
        gap = fmax(gap, fabs((double)x[i] - (double)y[i]));
        mx = fmax(mx, fabs((double)x[i]));
    }
    return mx > 0.0 ? gap / mx : gap;
}

/*
 * Compares the head vector the GPU wrote (got) with kvq_encode(x); returns
 * false (after a failed check naming everything) when the bytes differ.
 */
static bool check_encoded(const char *what, enum kvq_type t, const struct kvq_rot *rot, int d,
                          const float *x, const uint8_t *got)
{
    uint8_t want[2 * KVQ_MAX_HEAD_DIM];
    size_t hb = kvq_head_bytes(t, d);
    kvq_encode(t, rot, d, x, want);
    if (memcmp(want, got, hb) == 0)
        return true;
    size_t i = 0;
    while (i < hb && want[i] == got[i])
        i++;
    TEST_FAIL_AT("%s: %s d=%d: byte %zu of %zu is 0x%02x, kvq_encode wrote 0x%02x "
                 "(decoded gap %.3g of max|x|)", what, kvq_type_name(t), d, i, hb, got[i],
                 want[i], decoded_gap(t, rot, d, want, got));
    return false;
}

static const enum kvq_type all_types[KVQ_TYPE_COUNT] = {KVQ_F16, KVQ_Q8_0, KVQ_Q4_0, KVQ_ROT4,
                                                        KVQ_ROT3};

/*
 * After a mismatch: which of the inputs (K after centring, V; token-major, head
 * within) the bytes the GPU wrote do encode, if any. A wrong index or a stale
 * buffer shows here as another vector's bytes; "none" means wrong arithmetic.
 */
static void name_source(enum kvq_type t, const struct kvq_rot *rot, int d, const uint8_t *got,
                        const float *k, const float *v, int n_vec, const float *want)
{
    uint8_t enc[2 * KVQ_MAX_HEAD_DIM];
    const size_t hb = kvq_head_bytes(t, d);
    for (int side = 0; side < 2; side++)
        for (int i = 0; i < n_vec; i++) {
            kvq_encode(t, rot, d, (side ? v : k) + (size_t)i * d, enc);
            if (memcmp(enc, got, hb) == 0) {
                fprintf(stderr, "    the GPU's bytes encode input %s vector %d\n",
                        side ? "V" : "K", i);
                return;
            }
        }
    float y[KVQ_MAX_HEAD_DIM];
    kvq_encode(t, rot, d, want, enc);
    fprintf(stderr, "    bytes 0-7: GPU %02x %02x %02x %02x %02x %02x %02x %02x, kvq_encode "
            "%02x %02x %02x %02x %02x %02x %02x %02x\n", got[0], got[1], got[2], got[3],
            got[4], got[5], got[6], got[7], enc[0], enc[1], enc[2], enc[3], enc[4], enc[5],
            enc[6], enc[7]);
    kvq_decode(t, rot, d, got, y);
    fprintf(stderr, "    the GPU's bytes encode no input vector; they decode to %g %g %g %g "
            "..., the input is %g %g %g %g ...\n", (double)y[0], (double)y[1], (double)y[2],
            (double)y[3], (double)want[0], (double)want[1], (double)want[2], (double)want[3]);
}

/* ---- the store kernel alone ------------------------------------------------ */

/*
 * cuda_kvq_store for n_tok = 9 tokens of Hk = 3 KV heads at pos0 = 5 with K
 * of type kt and V of type vt, rows padded by 6 bytes: every written head
 * vector equals kvq_encode's, every other byte keeps its poison.
 */
static void store_case(enum kvq_type kt, enum kvq_type vt, int d, uint32_t layer)
{
    const int n_tok = 9, Hk = 3;
    const int64_t pos0 = 5, n_ctx = 16;
    const size_t kb = kvq_head_bytes(kt, d), vb = kvq_head_bytes(vt, d);
    const size_t krow = Hk * kb + 6, vrow = Hk * vb + 6;
    const size_t nx = (size_t)n_tok * Hk * d;
    struct kvq_rot rot;
    CHECK_OK(kvq_rot_init(&rot, d, 0x5eed0000u + layer, layer));
    float *k = malloc(nx * 4), *v = malloc(nx * 4);
    uint8_t *kc = malloc(krow * n_ctx), *vc = malloc(vrow * n_ctx);
    REQUIRE(k && v && kc && vc);
    for (int i = 0; i < n_tok * Hk; i++) {
        fill_vec(k + (size_t)i * d, d, true, i);
        fill_vec(v + (size_t)i * d, d, false, i + 5);
    }
    /* pos0 > 0: the store centres k on the mu already in k_aux (row 0) */
    float aux[2 * 3 * 256];
    for (int i = 0; i < 2 * Hk * d; i++)
        aux[i] = kt == KVQ_F16 ? 0.0f : 0.25f * sinf(0.7f * (float)i);
    void *dk = NULL, *dv = NULL, *dkc = NULL, *dvc = NULL, *dpos = NULL, *dsign = NULL;
    void *daux = NULL;
    CHECK_OK(cuda_alloc(&daux, sizeof aux));
    CHECK_OK(cuda_alloc(&dk, nx * 4));
    CHECK_OK(cuda_alloc(&dv, nx * 4));
    CHECK_OK(cuda_alloc(&dkc, krow * n_ctx));
    CHECK_OK(cuda_alloc(&dvc, vrow * n_ctx));
    CHECK_OK(cuda_alloc(&dpos, 4));
    CHECK_OK(cuda_alloc(&dsign, (size_t)d * 4));
    if (!dk || !dv || !dkc || !dvc || !dpos || !dsign || !daux)
        goto done;
    CHECK_OK(cuda_upload(daux, aux, sizeof aux));
    CHECK_OK(cuda_upload(dk, k, nx * 4));
    CHECK_OK(cuda_upload(dv, v, nx * 4));
    CHECK_OK(cuda_upload(dsign, rot.sign, (size_t)d * 4));
    CHECK_OK(cuda_memset(dkc, POISON, krow * n_ctx));
    CHECK_OK(cuda_memset(dvc, POISON, vrow * n_ctx));
    CHECK_OK(cuda_i32_set(dpos, (int32_t)pos0, NULL));
    struct cuda_kvq_args a = {
        .d_k = dk, .d_v = dv, .d_k_cache = dkc, .d_v_cache = dvc, .k_row_stride = krow,
        .v_row_stride = vrow, .d_pos = dpos, .d_sign = dsign, .k_type = kt, .v_type = vt,
        .n_tok = n_tok, .n_head = Hk, .n_head_kv = Hk, .head_dim = d, .scale = 1.0f,
        .d_k_aux = daux, .aux_stride = Hk * d};
    CHECK_OK(cuda_kvq_store(&a, NULL));
    for (size_t i = 0; i < nx; i++) /* what the cache must hold: enc(k - mu) */
        k[i] -= aux[i % (size_t)(Hk * d)];
    CHECK_OK(cuda_synchronize());
    CHECK_OK(cuda_download(kc, dkc, krow * n_ctx));
    CHECK_OK(cuda_download(vc, dvc, vrow * n_ctx));
    int bad = 0;
    for (int side = 0; side < 2; side++) {
        const uint8_t *c = side ? vc : kc;
        const float *x = side ? v : k;
        const size_t row = side ? vrow : krow, hb = side ? vb : kb;
        const enum kvq_type t = side ? vt : kt;
        for (int64_t r = 0; r < n_ctx; r++) {
            bool written = r >= pos0 && r < pos0 + n_tok;
            for (size_t b = 0; b < row; b++) {
                bool in_vec = written && b < Hk * hb;
                if (!in_vec && c[r * row + b] != POISON && bad++ < 3)
                    TEST_FAIL_AT("store %s: row %lld byte %zu overwritten (0x%02x)",
                                 kvq_type_name(t), (long long)r, b, c[r * row + b]);
            }
            if (!written)
                continue;
            for (int h = 0; h < Hk; h++) {
                char what[64];
                snprintf(what, sizeof what, "store %s tok %lld head %d", side ? "V" : "K",
                         (long long)(r - pos0), h);
                const float *xv = x + ((size_t)(r - pos0) * Hk + h) * d;
                if (!check_encoded(what, t, &rot, d, xv, c + r * row + h * hb)) {
                    name_source(t, &rot, d, c + r * row + h * hb, k, v, n_tok * Hk, xv);
                    if (bad++ > 3)
                        goto done;
                }
            }
        }
    }
done:
    free(k), free(v), free(kc), free(vc);
    cuda_free(dk), cuda_free(dv), cuda_free(dkc), cuda_free(dvc), cuda_free(dpos);
    cuda_free(dsign), cuda_free(daux);
}

TEST(store_bytes_match_kvq_encode)
{
    NEED_DEVICE();
    test_rng_seed(81);
    static const int dims[] = {32, 64, 96, 128, 160, 224, 256};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        for (int t = 0; t < KVQ_TYPE_COUNT; t++) /* V one type along, so both sides see all */
            store_case(all_types[t], all_types[(t + 1) % KVQ_TYPE_COUNT], dims[i], (uint32_t)i);
}

/* ---- the ATTENTION op through the backends --------------------------------- */

struct kv_case {
    enum kvq_type kt, vt;
    int d, n_tok;
    int64_t pos0;
    uint32_t window;
    bool norm_rope; /* q/k norms and NEOX RoPE before the store */
    uint64_t seed;
    uint32_t layer;
};

/* The op's inputs as host bytes, identical for every device. */
struct kv_in {
    int64_t n_ctx;
    size_t krow, vrow; /* cache row bytes */
    float *q, *k, *v, *qn, *kn;
    uint8_t *kc, *vc;  /* [n_ctx] rows: history [0, pos0), poison after */
    float aux[2 * KV_HK * 256]; /* k_aux [2][KV_HK * d] (used when kt != f16) */
};

/* What one device left behind. */
struct kv_out {
    float *q, *k, *out;
    uint8_t *kc, *vc;
    float aux[2 * KV_HK * 256];
};

static void kv_out_free(struct kv_out *o)
{
    free(o->q), free(o->k), free(o->out), free(o->kc), free(o->vc);
    memset(o, 0, sizeof *o);
}

/* A cache tensor of type t for c: F16 [n_ctx][Hk * d] or I8 [n_ctx][Hk * head bytes]. */
static bool cache_tensor(struct hearth_tensor *out, struct hearth_buffer *b, enum kvq_type t,
                         const struct kv_case *c, int64_t n_ctx)
{
    if (t == KVQ_F16)
        return backend_tensor_2d(out, b, 0, HEARTH_DTYPE_F16, (int64_t)KV_HK * c->d, n_ctx);
    return backend_tensor_2d(out, b, 0, HEARTH_DTYPE_I8,
                             (int64_t)(KV_HK * kvq_head_bytes(t, c->d)), n_ctx);
}

/* Runs the ATTENTION op of c on dev with inputs in; fills o (host copies). */
static bool kv_run(struct hearth_device *dev, const struct kv_case *c, const struct kv_in *in,
                   struct kv_out *o)
{
    enum { B_Q, B_K, B_V, B_QN, B_KN, B_KC, B_VC, B_OUT, B_AUX, B_COUNT };
    const int d = c->d, n = c->n_tok;
    const size_t nq = (size_t)n * KV_H * d, nk = (size_t)n * KV_HK * d;
    const size_t sizes[B_COUNT] = {nq * 4, nk * 4, nk * 4, (size_t)d * 4, (size_t)d * 4,
                                   in->krow * (size_t)in->n_ctx, in->vrow * (size_t)in->n_ctx,
                                   nq * 4, (size_t)2 * KV_HK * d * 4};
    const void *src[B_COUNT] = {in->q, in->k, in->v, in->qn, in->kn, in->kc, in->vc, NULL,
                                in->aux};
    struct hearth_buffer *b[B_COUNT] = {0};
    struct hearth_stream *s = NULL;
    bool ok = false;
    memset(o, 0, sizeof *o);
    for (int i = 0; i < B_COUNT; i++) {
        CHECK_OK(backend_buffer_alloc(backend_device_buffer_type(dev), sizes[i], &b[i]));
        if (!b[i])
            goto done;
        if (src[i])
            CHECK_OK(backend_buffer_set(b[i], 0, src[i], sizes[i]));
        else
            CHECK_OK(backend_buffer_clear(b[i], 0xff)); /* NaN floats: unwritten shows */
    }
    struct hearth_op op;
    memset(&op, 0, sizeof op);
    op.kind = HEARTH_OP_ATTENTION;
    op.n_tok = n;
    struct hearth_op_attention *a = &op.u.attn;
    bool t_ok = backend_tensor_2d(&a->q, b[B_Q], 0, HEARTH_DTYPE_F32, (int64_t)KV_H * d, n) &&
                backend_tensor_2d(&a->k, b[B_K], 0, HEARTH_DTYPE_F32, (int64_t)KV_HK * d, n) &&
                backend_tensor_2d(&a->v, b[B_V], 0, HEARTH_DTYPE_F32, (int64_t)KV_HK * d, n) &&
                backend_tensor_2d(&a->out, b[B_OUT], 0, HEARTH_DTYPE_F32, (int64_t)KV_H * d, n) &&
                cache_tensor(&a->k_cache, b[B_KC], c->kt, c, in->n_ctx) &&
                cache_tensor(&a->v_cache, b[B_VC], c->vt, c, in->n_ctx);
    if (!t_ok) {
        CHECK(t_ok);
        goto done;
    }
    if (c->kt != KVQ_F16)
        CHECK(backend_tensor_2d(&a->k_aux, b[B_AUX], 0, HEARTH_DTYPE_F32, (int64_t)KV_HK * d, 2));
    if (c->norm_rope) {
        CHECK(backend_tensor_2d(&a->q_norm, b[B_QN], 0, HEARTH_DTYPE_F32, d, 1));
        CHECK(backend_tensor_2d(&a->k_norm, b[B_KN], 0, HEARTH_DTYPE_F32, d, 1));
        a->n_rot = d;
    }
    a->n_head = KV_H, a->n_head_kv = KV_HK, a->head_dim = d;
    a->rope_mode = HEARTH_ROPE_NEOX, a->rope_base = 10000.0f, a->rope_freq_scale = 1.0f;
    a->norm_eps = 1e-6f, a->scale = 1.0f / sqrtf((float)d);
    a->pos0 = c->pos0, a->window = c->window;
    a->k_type = (int)c->kt, a->v_type = (int)c->vt, a->layer = c->layer, a->kv_seed = c->seed;
    CHECK_OK(backend_stream_create(dev, &s));
    if (!s)
        goto done;
    hearth_status st = backend_stream_run(s, &op, 1);
    CHECK_OK(st);
    CHECK_OK(backend_stream_synchronize(s));
    if (st != HEARTH_OK)
        goto done;
    o->q = malloc(sizes[B_Q]), o->k = malloc(sizes[B_K]), o->out = malloc(sizes[B_OUT]);
    o->kc = malloc(sizes[B_KC]), o->vc = malloc(sizes[B_VC]);
    if (!o->q || !o->k || !o->out || !o->kc || !o->vc)
        goto done;
    CHECK_OK(backend_buffer_get(b[B_Q], 0, o->q, sizes[B_Q]));
    CHECK_OK(backend_buffer_get(b[B_K], 0, o->k, sizes[B_K]));
    CHECK_OK(backend_buffer_get(b[B_OUT], 0, o->out, sizes[B_OUT]));
    CHECK_OK(backend_buffer_get(b[B_KC], 0, o->kc, sizes[B_KC]));
    CHECK_OK(backend_buffer_get(b[B_VC], 0, o->vc, sizes[B_VC]));
    CHECK_OK(backend_buffer_get(b[B_AUX], 0, o->aux, sizes[B_AUX]));
    ok = true;
done:
    backend_stream_destroy(s);
    for (int i = 0; i < B_COUNT; i++)
        backend_buffer_free(b[i]);
    if (!ok)
        kv_out_free(o);
    return ok;
}


/*
 * out[t][h] in double from q (as the op left it) and K/V decoded from the
 * cache bytes the device wrote (kd, vd: [n_ctx][Hk][d] floats).
 */
static void kv_reference(const struct kv_case *c, const float *q, const float *kd,
                         const float *vd, const float *sink, double *ref)
{
    const int d = c->d;
    double *w = malloc((size_t)(c->pos0 + c->n_tok) * sizeof *w);
    if (!w)
        return;
    for (int t = 0; t < c->n_tok; t++) {
        int64_t p = c->pos0 + t;
        int64_t lo = c->window && p + 1 > (int64_t)c->window ? p + 1 - c->window : 0;
        for (int h = 0; h < KV_H; h++) {
            const float *qh = q + ((size_t)t * KV_H + h) * d;
            int hk = h / (KV_H / KV_HK);
            double mx = -INFINITY, sum = 0.0;
            for (int64_t j = lo; j <= p; j++) {
                const float *kj = kd + ((size_t)j * KV_HK + hk) * d;
                if (j == 0 && sink) /* K_0 is the exact sink (k_aux row 1) */
                    kj = sink + (size_t)hk * d;
                double s = 0.0;
                for (int i = 0; i < d; i++)
                    s += (double)qh[i] * (double)kj[i];
                w[j] = s / sqrt((double)d);
                mx = fmax(mx, w[j]);
            }
            for (int64_t j = lo; j <= p; j++)
                sum += (w[j] = exp(w[j] - mx));
            double *r = ref + ((size_t)t * KV_H + h) * d;
            for (int i = 0; i < d; i++)
                r[i] = 0.0;
            for (int64_t j = lo; j <= p; j++) {
                const float *vj = vd + ((size_t)j * KV_HK + hk) * d;
                for (int i = 0; i < d; i++)
                    r[i] += w[j] / sum * (double)vj[i];
            }
        }
    }
    free(w);
}

static struct hearth_device *g_cpu;
static bool g_cpu_note;

/* One ATTENTION case: GPU vs the decoded-cache reference, the encoder, and the CPU backend. */
static void kv_case_run(struct hearth_device *gpu, const struct kv_case *c)
{
    const int d = c->d, n = c->n_tok;
    const size_t kb = kvq_head_bytes(c->kt, d), vb = kvq_head_bytes(c->vt, d);
    const size_t nq = (size_t)n * KV_H * d, nk = (size_t)n * KV_HK * d;
    char what[128], pair[32];
    kvq_pair_name((int)c->kt, (int)c->vt, pair, sizeof pair);
    snprintf(what, sizeof what, "%s d=%d n_tok=%d pos0=%lld window=%u%s", pair, d, n,
             (long long)c->pos0, c->window, c->norm_rope ? " norm+rope" : "");
    struct kvq_rot rot;
    CHECK_OK(kvq_rot_init(&rot, d, c->seed, c->layer));
    struct kv_in in = {.n_ctx = c->pos0 + n + 3, .krow = KV_HK * kb, .vrow = KV_HK * vb};
    struct kv_out g = {0}, cp = {0};
    const size_t nctx = (size_t)in.n_ctx, nkv = nctx * KV_HK * (size_t)d;
    in.q = malloc(nq * 4), in.k = malloc(nk * 4), in.v = malloc(nk * 4);
    in.qn = malloc((size_t)d * 4), in.kn = malloc((size_t)d * 4);
    in.kc = malloc(in.krow * nctx), in.vc = malloc(in.vrow * nctx);
    float *kd = malloc(nkv * 4), *vd = malloc(nkv * 4), *hist = malloc((size_t)d * 4);
    double *ref = malloc(nq * sizeof *ref);
    if (!in.q || !in.k || !in.v || !in.qn || !in.kn || !in.kc || !in.vc || !kd || !vd || !hist ||
        !ref) {
        CHECK(!"out of memory");
        goto done;
    }
    for (size_t i = 0; i < nq; i++)
        in.q[i] = (float)test_rng_gauss();
    for (int i = 0; i < n * KV_HK; i++) {
        fill_vec(in.k + (size_t)i * d, d, true, i + 1);
        fill_vec(in.v + (size_t)i * d, d, false, i + 3);
    }
    for (int i = 0; i < d; i++) {
        in.qn[i] = 1.0f + 0.1f * (float)test_rng_gauss();
        in.kn[i] = 1.0f + 0.1f * (float)test_rng_gauss();
    }
    /* k_aux: zero before a first batch, else some earlier batch's mu and sink */
    const int KV = KV_HK * d;
    for (int i = 0; i < 2 * KV; i++)
        in.aux[i] = c->pos0 == 0 || c->kt == KVQ_F16 ? 0.0f : 0.2f * cosf(0.3f * (float)i);
    /* history rows encoded on the host; everything after them poisoned */
    memset(in.kc, POISON, in.krow * nctx);
    memset(in.vc, POISON, in.vrow * nctx);
    for (int64_t j = 0; j < c->pos0; j++) {
        for (int h = 0; h < KV_HK; h++) {
            fill_vec(hist, d, true, (int)j + 7);
            if (c->norm_rope) /* keys of a normed model are O(1) per coordinate */
                for (int i = 0; i < d; i++)
                    hist[i] *= 0.3f;
            kvq_encode(c->kt, &rot, d, hist, in.kc + (size_t)j * in.krow + h * kb);
            fill_vec(hist, d, false, (int)j + 11);
            kvq_encode(c->vt, &rot, d, hist, in.vc + (size_t)j * in.vrow + h * vb);
        }
    }
    if (!kv_run(gpu, c, &in, &g)) {
        TEST_FAIL_AT("%s: the CUDA run failed", what);
        goto done;
    }
    /* cache: history untouched, new rows = kvq_encode of the op's k / v, the rest poisoned */
    CHECK_MSG(memcmp(g.kc, in.kc, (size_t)c->pos0 * in.krow) == 0, "%s: K history changed", what);
    CHECK_MSG(memcmp(g.vc, in.vc, (size_t)c->pos0 * in.vrow) == 0, "%s: V history changed", what);
    const size_t tail_k = (size_t)(c->pos0 + n) * in.krow, tail_v = (size_t)(c->pos0 + n) * in.vrow;
    CHECK_MSG(memcmp(g.kc + tail_k, in.kc + tail_k, 3 * in.krow) == 0, "%s: K rows past the "
              "new tokens written", what);
    CHECK_MSG(memcmp(g.vc + tail_v, in.vc + tail_v, 3 * in.vrow) == 0, "%s: V rows past the "
              "new tokens written", what);
    int bad = 0;
    for (int t = 0; t < n && bad < 3; t++) {
        for (int h = 0; h < KV_HK; h++) {
            size_t r = (size_t)(c->pos0 + t);
            const float *kx = g.k + ((size_t)t * KV_HK + h) * d;
            const float *vx = in.v + ((size_t)t * KV_HK + h) * d;
            bad += !check_encoded(what, c->kt, &rot, d, kx, g.kc + r * in.krow + h * kb);
            bad += !check_encoded(what, c->vt, &rot, d, vx, g.vc + r * in.vrow + h * vb);
        }
    }
    /* output vs the double reference over the cache as written */
    double vmax = 0.0;
    for (size_t j = 0; j < (size_t)(c->pos0 + n); j++) {
        for (int h = 0; h < KV_HK; h++) {
            kvq_decode(c->kt, &rot, d, g.kc + j * in.krow + h * kb, kd + (j * KV_HK + h) * d);
            kvq_decode(c->vt, &rot, d, g.vc + j * in.vrow + h * vb, vd + (j * KV_HK + h) * d);
        }
    }
    for (size_t i = 0; i < (size_t)(c->pos0 + n) * KV_HK * d; i++)
        vmax = fmax(vmax, fabs((double)vd[i]));
    if (c->kt != KVQ_F16 && c->pos0 > 0) {
        CHECK_MSG(memcmp(g.aux, in.aux, 2 * (size_t)KV * 4) == 0, "%s: k_aux changed", what);
    } else if (c->kt != KVQ_F16) {
        CHECK_MSG(memcmp(g.aux + KV, g.k, (size_t)KV * 4) == 0, "%s: sink != centred k[0]",
                  what);
        for (int i = 0; n == 1 && i < KV; i++)
            CHECK_MSG(g.aux[i] == 0.0f, "%s: mu of one token is %g", what, (double)g.aux[i]);
    }
    kv_reference(c, g.q, kd, vd, c->kt != KVQ_F16 ? g.aux + KV : NULL, ref);
    double worst = 0.0;
    size_t worst_i = 0;
    for (size_t i = 0; i < nq; i++) {
        double e = fabs((double)g.out[i] - ref[i]);
        if (!(e <= worst)) { /* NaN counts as worst */
            worst = isnan(e) ? (double)INFINITY : e;
            worst_i = i;
        }
    }
    CHECK_MSG(worst <= 2e-4 * vmax + 1e-5,
              "%s: out[tok %zu][head %zu][%zu] = %.7g, reference %.7g (max|V| %.3g)", what,
              worst_i / ((size_t)KV_H * d), worst_i / (size_t)d % KV_H, worst_i % (size_t)d,
              (double)g.out[worst_i], ref[worst_i], vmax);
    /* the CPU backend, where it implements the pair */
    if (!backend_device_supports_kv(g_cpu, (int)c->kt, (int)c->vt)) {
        if (!g_cpu_note)
            printf("  note: the CPU backend has no %s cache yet: compared with the in-test "
                   "reference only\n", pair);
        g_cpu_note = true;
        goto done;
    }
    if (!kv_run(g_cpu, c, &in, &cp)) {
        TEST_FAIL_AT("%s: the CPU run failed", what);
        goto done;
    }
    CHECK_MSG(memcmp(g.vc, cp.vc, in.vrow * nctx) == 0, "%s: V cache differs from the CPU's",
              what);
    double tol = fmax(cukvq_tol(c->kt), cukvq_tol(c->vt)) * vmax, cw = 0.0;
    for (size_t i = 0; i < nq; i++) {
        double e = fabs((double)g.out[i] - (double)cp.out[i]);
        cw = isnan(e) ? (double)INFINITY : fmax(cw, e);
    }
    CHECK_MSG(cw <= tol, "%s: max |cuda - cpu| = %.3g > %.3g", what, cw, tol);
    double mw = 0.0;
    for (int i = 0; i < 2 * KV; i++)
        mw = fmax(mw, fabs((double)g.aux[i] - (double)cp.aux[i]));
    CHECK_MSG(mw <= 1e-5, "%s: k_aux differs from the CPU backend's by %.3g", what, mw);
done:
    kv_out_free(&g);
    kv_out_free(&cp);
    free(in.q), free(in.k), free(in.v), free(in.qn), free(in.kn), free(in.kc), free(in.vc);
    free(kd), free(vd), free(hist), free(ref);
}

static const enum kvq_type pairs[][2] = {
    {KVQ_F16, KVQ_F16},   {KVQ_Q8_0, KVQ_Q8_0}, {KVQ_Q4_0, KVQ_Q4_0}, {KVQ_ROT4, KVQ_ROT4},
    {KVQ_ROT3, KVQ_ROT3}, {KVQ_ROT4, KVQ_Q8_0}, {KVQ_Q4_0, KVQ_ROT3},
};
#define N_PAIRS ((int)(sizeof pairs / sizeof pairs[0]))

TEST(attention_every_pair)
{
    NEED_DEVICE();
    test_rng_seed(82);
    struct hearth_device *gpu;
    REQUIRE(cukvq_open_devices(&g_cpu, &gpu));
    static const int dims[] = {64, 128, 256};
    uint32_t run = 0;
    for (int p = 0; p < N_PAIRS; p++) {
        for (int di = 0; di < 3; di++) {
            for (int n = 1; n <= 7; n += 6) {
                for (int64_t pos0 = 0; pos0 <= 37; pos0 += 37) {
                    /* a new (seed, layer) every few runs fills the device's rotation table */
                    struct kv_case c = {pairs[p][0], pairs[p][1], dims[di], n, pos0, 0,
                                        pos0 > 0, 0x1234567ull + run / 8, run % 8};
                    kv_case_run(gpu, &c);
                    run++;
                }
            }
        }
    }
    cukvq_close_devices(&g_cpu, gpu);
}

TEST(attention_window_long_and_pieces)
{
    NEED_DEVICE();
    test_rng_seed(83);
    struct hearth_device *gpu;
    REQUIRE(cukvq_open_devices(&g_cpu, &gpu));
    for (int p = 0; p < N_PAIRS; p++) {
        struct kv_case c = {pairs[p][0], pairs[p][1], 128, 7, 37, 5, true, 99, 3};
        kv_case_run(gpu, &c); /* window inside the batch: token 6 sees 38..43 only */
        c = (struct kv_case){pairs[p][0], pairs[p][1], 64, 3, 300, 0, true, 99, 4};
        kv_case_run(gpu, &c); /* ten tiles of history */
        c = (struct kv_case){pairs[p][0], pairs[p][1], 256, 2, 300, 70, false, 7, 0};
        kv_case_run(gpu, &c); /* window across a tile boundary */
    }
    /* head_dim 96 = 64 + 32: two rotation pieces, two scales */
    struct kv_case c96[] = {
        {KVQ_ROT4, KVQ_ROT4, 96, 7, 37, 0, true, 5, 1},
        {KVQ_ROT3, KVQ_Q4_0, 96, 1, 40, 0, false, 5, 2},
        {KVQ_Q8_0, KVQ_ROT3, 160, 7, 3, 0, true, 5, 2},
    };
    for (size_t i = 0; i < sizeof c96 / sizeof c96[0]; i++)
        kv_case_run(gpu, &c96[i]);
    /* a prefill batch where every token reads rows written in the same op */
    struct kv_case pre = {KVQ_ROT4, KVQ_ROT3, 128, 64, 0, 0, true, 11, 9};
    kv_case_run(gpu, &pre);
    cukvq_close_devices(&g_cpu, gpu);
}

/* ---- the sequence split, through the kernel API ---------------------------- */

/*
 * One cuda_kvq_store, then cuda_kvq_attention at several forced n_split, at
 * long positions over KV_H heads on KV_HK KV heads. kv_window > 0 adds the
 * exact window (rings of random halves, every 5th tag stale so both the ring
 * and the decoded row are read); ring_only drops the caches (every tag live).
 */
struct split_case {
    enum kvq_type kt, vt;
    int d, n_tok;
    int64_t pos0;
    uint32_t window, kv_window;
    bool ring_only;
};

static const int split_counts[] = {1, 2, 5, 64}; /* 64: more pieces than a window's positions */
#define N_SPLITS ((int)(sizeof split_counts / sizeof split_counts[0]))

/* Host inputs and per-split outputs of one split_case. */
struct split_io {
    int64_t n_ctx;
    size_t krow, vrow, nq, nk, kvw; /* kvw: halves of one ring */
    float *q, *k, *v, aux[2 * KV_HK * 256], *out[N_SPLITS];
    uint8_t *kc, *vc;
    uint16_t *kr, *vr;
    int32_t *tags;
    double vmax; /* max |V| over every V value a query can see */
};

static void split_io_free(struct split_io *io)
{
    free(io->q), free(io->k), free(io->v), free(io->kc), free(io->vc);
    free(io->kr), free(io->vr), free(io->tags);
    for (int i = 0; i < N_SPLITS; i++)
        free(io->out[i]);
}

/* Fills io for c: random q/k/v, encoded history, rings and tags; false when out of memory. */
static bool split_inputs(const struct split_case *c, const struct kvq_rot *rot,
                         struct split_io *io)
{
    const int d = c->d, W = (int)c->kv_window;
    const size_t kb = kvq_head_bytes(c->kt, d), vb = kvq_head_bytes(c->vt, d);
    io->n_ctx = c->pos0 + c->n_tok;
    io->krow = KV_HK * kb, io->vrow = KV_HK * vb;
    io->nq = (size_t)c->n_tok * KV_H * d, io->nk = (size_t)c->n_tok * KV_HK * d;
    io->kvw = (size_t)(W > 0 ? W : 1) * KV_HK * d;
    io->q = malloc(io->nq * 4), io->k = malloc(io->nk * 4), io->v = malloc(io->nk * 4);
    io->kc = malloc(io->krow * (size_t)io->n_ctx), io->vc = malloc(io->vrow * (size_t)io->n_ctx);
    io->kr = malloc(io->kvw * 2), io->vr = malloc(io->kvw * 2);
    io->tags = malloc((size_t)(W > 0 ? W : 1) * 4);
    bool ok = io->q && io->k && io->v && io->kc && io->vc && io->kr && io->vr && io->tags;
    for (int i = 0; i < N_SPLITS; i++)
        ok = (io->out[i] = malloc(io->nq * 4)) != NULL && ok;
    if (!ok)
        return false;
    float x[KVQ_MAX_HEAD_DIM];
    io->vmax = 0.0;
    for (size_t i = 0; i < io->nq; i++)
        io->q[i] = (float)test_rng_gauss();
    for (int i = 0; i < c->n_tok * KV_HK; i++) {
        fill_vec(io->k + (size_t)i * d, d, true, i + 1);
        fill_vec(io->v + (size_t)i * d, d, false, i + 3);
    }
    for (size_t i = 0; i < io->nk; i++)
        io->vmax = fmax(io->vmax, fabs((double)io->v[i]));
    for (int i = 0; i < 2 * KV_HK * d; i++)
        io->aux[i] = c->kt == KVQ_F16 ? 0.0f : 0.2f * cosf(0.3f * (float)i);
    memset(io->kc, POISON, io->krow * (size_t)io->n_ctx);
    memset(io->vc, POISON, io->vrow * (size_t)io->n_ctx);
    for (int64_t j = 0; j < c->pos0 && !c->ring_only; j++) {
        for (int h = 0; h < KV_HK; h++) {
            fill_vec(x, d, true, (int)j + 7);
            kvq_encode(c->kt, rot, d, x, io->kc + (size_t)j * io->krow + h * kb);
            fill_vec(x, d, false, (int)j + 11);
            kvq_encode(c->vt, rot, d, x, io->vc + (size_t)j * io->vrow + h * vb);
            for (int i = 0; i < d; i++)
                io->vmax = fmax(io->vmax, fabs((double)x[i]));
        }
    }
    for (size_t i = 0; i < io->kvw; i++) {
        float kx = (float)test_rng_gauss(), vx = (float)test_rng_gauss();
        io->kr[i] = f32_to_f16(kx), io->vr[i] = f32_to_f16(vx);
        io->vmax = fmax(io->vmax, fabs((double)vx));
    }
    for (int sl = 0; sl < W; sl++)
        io->tags[sl] = -1;
    for (int64_t j = c->pos0 - W; W > 0 && j < c->pos0; j++)
        if (j >= 0 && (c->ring_only || j % 5 != 0))
            io->tags[j % W] = (int32_t)j;
    return true;
}

/* Device copies of split_io's inputs; NULL members where unused. */
struct split_dev {
    void *q, *k, *v, *kc, *vc, *out, *pos, *sign, *aux, *kr, *vr, *tags, *xs, *part;
};

static void split_dev_free(struct split_dev *g)
{
    cuda_free(g->q), cuda_free(g->k), cuda_free(g->v), cuda_free(g->kc), cuda_free(g->vc);
    cuda_free(g->out), cuda_free(g->pos), cuda_free(g->sign), cuda_free(g->aux);
    cuda_free(g->kr), cuda_free(g->vr), cuda_free(g->tags), cuda_free(g->xs), cuda_free(g->part);
}

/* Allocates and uploads io to g for a's shape; false after a failed check. */
static bool split_upload(const struct split_case *c, const struct kvq_rot *rot,
                         const struct split_io *io, struct cuda_kvq_args *a, struct split_dev *g)
{
    a->n_split = split_counts[N_SPLITS - 1];
    const size_t xs = cuda_kvq_window_bytes(a), part = cuda_kvq_part_bytes(a);
    const size_t nctx = (size_t)io->n_ctx, kvw = io->kvw * 2, nt = c->kv_window ? c->kv_window : 1;
    CHECK_OK(cuda_alloc(&g->q, io->nq * 4));
    CHECK_OK(cuda_alloc(&g->k, io->nk * 4));
    CHECK_OK(cuda_alloc(&g->v, io->nk * 4));
    CHECK_OK(cuda_alloc(&g->out, io->nq * 4));
    CHECK_OK(cuda_alloc(&g->pos, 4));
    CHECK_OK(cuda_alloc(&g->sign, (size_t)c->d * 4));
    CHECK_OK(cuda_alloc(&g->aux, sizeof io->aux));
    CHECK_OK(cuda_alloc(&g->part, part));
    if (!c->ring_only) {
        CHECK_OK(cuda_alloc(&g->kc, io->krow * nctx));
        CHECK_OK(cuda_alloc(&g->vc, io->vrow * nctx));
    }
    if (c->kv_window) {
        CHECK_OK(cuda_alloc(&g->kr, kvw));
        CHECK_OK(cuda_alloc(&g->vr, kvw));
        CHECK_OK(cuda_alloc(&g->tags, nt * 4));
        CHECK_OK(cuda_alloc(&g->xs, xs));
    }
    if (!g->q || !g->k || !g->v || !g->out || !g->pos || !g->sign || !g->aux || !g->part ||
        (!c->ring_only && (!g->kc || !g->vc)) ||
        (c->kv_window && (!g->kr || !g->vr || !g->tags || !g->xs)))
        return false;
    CHECK_OK(cuda_upload(g->q, io->q, io->nq * 4));
    CHECK_OK(cuda_upload(g->k, io->k, io->nk * 4));
    CHECK_OK(cuda_upload(g->v, io->v, io->nk * 4));
    CHECK_OK(cuda_upload(g->sign, rot->sign, (size_t)c->d * 4));
    CHECK_OK(cuda_upload(g->aux, io->aux, sizeof io->aux));
    CHECK_OK(cuda_i32_set(g->pos, (int32_t)c->pos0, NULL));
    if (!c->ring_only) {
        CHECK_OK(cuda_upload(g->kc, io->kc, io->krow * nctx));
        CHECK_OK(cuda_upload(g->vc, io->vc, io->vrow * nctx));
    }
    *a = (struct cuda_kvq_args){
        .d_q = g->q, .d_k = g->k, .d_v = g->v, .d_k_cache = g->kc, .d_v_cache = g->vc,
        .k_row_stride = io->krow, .v_row_stride = io->vrow, .d_out = g->out, .d_pos = g->pos,
        .d_sign = g->sign, .k_type = c->kt, .v_type = c->vt, .n_tok = c->n_tok,
        .n_head = KV_H, .n_head_kv = KV_HK, .head_dim = c->d,
        .scale = 1.0f / sqrtf((float)c->d), .window = c->window, .d_k_aux = g->aux,
        .aux_stride = KV_HK * c->d, .kv_window = c->kv_window, .d_k_ring = g->kr,
        .d_v_ring = g->vr, .ring_stride = KV_HK * c->d, .d_ring_pos = g->tags, .d_xs = g->xs,
        .d_part = g->part};
    return true;
}

/*
 * Both bounds are of max|V| (out is a convex combination of V rows). Against
 * the double reference: kv_case_run's 2e-4 + 1e-5 (float scores and sums).
 * Between n_split values: the same float terms summed in another order (per
 * piece, then merged with one more exp and multiply per piece), a random
 * walk of rounding over <= 2100 positions of ~1e-6 of max|V|; 2e-5 leaves a
 * wide margin, while a position dropped or counted twice at a piece boundary
 * moves an output by its weight times |v_j - out|, of order 1/len of max|V|
 * (5e-4 at 2100 positions, 2.5e-2 at 40).
 */
#define SPLIT_REL 2e-5

static void split_case_run(const struct split_case *c, uint32_t layer)
{
    char what[128], pair[32];
    kvq_pair_name((int)c->kt, (int)c->vt, pair, sizeof pair);
    snprintf(what, sizeof what, "split %s d=%d n_tok=%d pos0=%lld window=%u kv_window=%u%s",
             pair, c->d, c->n_tok, (long long)c->pos0, c->window, c->kv_window,
             c->ring_only ? " ring-only" : "");
    struct kvq_rot rot;
    CHECK_OK(kvq_rot_init(&rot, c->d, 0x5eed5000u + layer, layer));
    struct split_io io;
    memset(&io, 0, sizeof io);
    struct split_dev g;
    memset(&g, 0, sizeof g);
    struct cuda_kvq_args a = {.n_tok = c->n_tok, .n_head = KV_H, .n_head_kv = KV_HK,
                              .head_dim = c->d, .kv_window = c->kv_window};
    float *kd = NULL, *vd = NULL;
    double *ref = NULL;
    if (!split_inputs(c, &rot, &io)) {
        CHECK(!"out of memory");
        goto done;
    }
    if (!split_upload(c, &rot, &io, &a, &g))
        goto done;
    CHECK_OK(cuda_kvq_store(&a, NULL));
    for (int i = 0; i < N_SPLITS; i++) {
        if (c->kv_window) { /* the previous call's ring kernel moved the ring on */
            CHECK_OK(cuda_upload(g.kr, io.kr, io.kvw * 2));
            CHECK_OK(cuda_upload(g.vr, io.vr, io.kvw * 2));
            CHECK_OK(cuda_upload(g.tags, io.tags, (size_t)c->kv_window * 4));
        }
        CHECK_OK(cuda_memset(g.out, 0xff, io.nq * 4)); /* NaN: an unwritten output shows */
        a.n_split = split_counts[i];
        CHECK_OK(cuda_kvq_attention(&a, NULL));
        CHECK_OK(cuda_synchronize());
        CHECK_OK(cuda_download(io.out[i], g.out, io.nq * 4));
    }
    for (int i = 1; i < N_SPLITS; i++) {
        double worst = 0.0;
        for (size_t e = 0; e < io.nq; e++) {
            double dlt = fabs((double)io.out[i][e] - (double)io.out[0][e]);
            worst = isnan(dlt) ? (double)INFINITY : fmax(worst, dlt);
        }
        CHECK_MSG(worst <= SPLIT_REL * io.vmax + 1e-6,
                  "%s: n_split %d vs 1: max diff %.3g (max|V| %.3g)", what, split_counts[i],
                  worst, io.vmax);
    }
    if (c->kv_window) /* the exact rows' reference is the window tests' (kvq-ref.c) */
        goto done;
    /* every split against the double reference over the cache as the GPU wrote it */
    const size_t nctx = (size_t)io.n_ctx, nkv = nctx * KV_HK * (size_t)c->d;
    const size_t kb = kvq_head_bytes(c->kt, c->d), vb = kvq_head_bytes(c->vt, c->d);
    kd = malloc(nkv * 4), vd = malloc(nkv * 4), ref = malloc(io.nq * sizeof *ref);
    if (!kd || !vd || !ref) {
        CHECK(!"out of memory");
        goto done;
    }
    CHECK_OK(cuda_download(io.kc, g.kc, io.krow * nctx));
    CHECK_OK(cuda_download(io.vc, g.vc, io.vrow * nctx));
    for (size_t j = 0; j < nctx; j++) {
        for (int h = 0; h < KV_HK; h++) {
            const size_t at = (j * KV_HK + h) * (size_t)c->d;
            kvq_decode(c->kt, &rot, c->d, io.kc + j * io.krow + h * kb, kd + at);
            kvq_decode(c->vt, &rot, c->d, io.vc + j * io.vrow + h * vb, vd + at);
        }
    }
    struct kv_case kc = {c->kt, c->vt, c->d, c->n_tok, c->pos0, c->window, false, 0, layer};
    kv_reference(&kc, io.q, kd, vd, c->kt != KVQ_F16 ? io.aux + KV_HK * c->d : NULL, ref);
    for (int i = 0; i < N_SPLITS; i++) {
        double worst = 0.0;
        for (size_t e = 0; e < io.nq; e++) {
            double dlt = fabs((double)io.out[i][e] - ref[e]);
            worst = isnan(dlt) ? (double)INFINITY : fmax(worst, dlt);
        }
        CHECK_MSG(worst <= 2e-4 * io.vmax + 1e-5, "%s: n_split %d vs the reference: %.3g",
                  what, split_counts[i], worst);
    }
done:
    free(kd), free(vd), free(ref);
    split_io_free(&io);
    split_dev_free(&g);
}

TEST(attention_split_matches)
{
    NEED_DEVICE();
    test_rng_seed(87);
    uint32_t layer = 0;
    for (int p = 0; p < N_PAIRS; p++) {
        const enum kvq_type kt = pairs[p][0], vt = pairs[p][1];
        const bool f16 = kt == KVQ_F16 && vt == KVQ_F16;
        struct split_case cs[] = {
            {kt, vt, 128, 1, 2100, 0, 0, false},   /* long decode from the sink on */
            {kt, vt, 64, 3, 700, 300, 0, false},   /* sliding window, three tokens */
            {kt, vt, 256, 2, 700, 40, 0, false},   /* 40 positions: pieces left empty */
            {kt, vt, 96, 1, 1500, 0, 0, false},    /* two rotation pieces */
            {kt, vt, 128, 2, 900, 0, 48, false},   /* the exact window (step 5) */
            {kt, vt, 128, 1, 1000, 100, 100, true}, /* ring-only (step 6) */
        };
        for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
            if (!(f16 && cs[i].kv_window && !cs[i].ring_only)) /* step 5 has no f16/f16 */
                split_case_run(&cs[i], layer++ % 8);
    }
}

TEST(supports_kv_and_bad_args)
{
    NEED_DEVICE();
    struct hearth_device *gpu = NULL;
    CHECK_OK(cuda_backend_ops()->device_open(0, &gpu));
    REQUIRE(gpu);
    for (int kt = 0; kt < KVQ_TYPE_COUNT; kt++)
        for (int vt = 0; vt < KVQ_TYPE_COUNT; vt++)
            CHECK_MSG(backend_device_supports_kv(gpu, kt, vt), "K %d V %d", kt, vt);
    CHECK(!backend_device_supports_kv(gpu, KVQ_TYPE_COUNT, 0));
    CHECK(!backend_device_supports_kv(gpu, 0, -1));
    backend_device_destroy(gpu);
    /* argument checks fire before any launch */
    CHECK(!cuda_kvq_supported(KVQ_ROT4, KVQ_ROT4, 288));
    CHECK(!cuda_kvq_supported(KVQ_Q8_0, KVQ_Q8_0, 48));
    CHECK(cuda_kvq_supported(KVQ_ROT3, KVQ_F16, 96));
    int32_t *dpos = NULL;
    CHECK_OK(cuda_alloc((void **)&dpos, 4));
    REQUIRE(dpos);
    struct cuda_kvq_args a = {.d_k_cache = dpos, .d_v_cache = dpos, .k_row_stride = 1024,
                              .v_row_stride = 1024, .d_pos = dpos, .k_type = KVQ_ROT4,
                              .v_type = KVQ_ROT4, .n_tok = 1, .n_head = 2, .n_head_kv = 2,
                              .head_dim = 64, .scale = 1.0f};
    CHECK_INT_EQ(cuda_kvq_store(&a, NULL), HEARTH_ERR_INVALID_ARG); /* rotated, no signs */
    CHECK_INT_EQ(cuda_kvq_attention(&a, NULL), HEARTH_ERR_INVALID_ARG);
    a.k_type = a.v_type = KVQ_Q8_0;
    a.k_row_stride = 135; /* odd */
    CHECK_INT_EQ(cuda_kvq_attention(&a, NULL), HEARTH_ERR_INVALID_ARG);
    a.k_row_stride = 2 * 34; /* < n_head_kv x 68 bytes */
    CHECK_INT_EQ(cuda_kvq_store(&a, NULL), HEARTH_ERR_INVALID_ARG);
    a.k_row_stride = 1024;
    a.n_head = 3; /* not a multiple of n_head_kv */
    CHECK_INT_EQ(cuda_kvq_attention(&a, NULL), HEARTH_ERR_INVALID_ARG);
    /* otherwise valid (f16/f16, no k_aux needed): only n_split / d_part are wrong */
    a.n_head = 2, a.k_type = a.v_type = KVQ_F16, a.d_out = (float *)dpos, a.d_q = (float *)dpos;
    const int bad_split[] = {-1, CUDA_ATTN_MAX_SPLIT + 1, 2 /* without d_part */};
    for (int i = 0; i < 3; i++) {
        a.n_split = bad_split[i];
        CHECK_INT_EQ(cuda_kvq_attention(&a, NULL), HEARTH_ERR_INVALID_ARG);
        CHECK_MSG(strstr(hearth_last_error(), "n_split") != NULL, "n_split %d: %s", a.n_split,
                  hearth_last_error());
    }
    CHECK_INT_EQ(cuda_kvq_part_bytes(&a), (size_t)1 * 2 * 2 * (64 + 2) * 4);
    cuda_free(dpos);
}

TEST_MAIN(TEST_CASE(store_bytes_match_kvq_encode), TEST_CASE(attention_every_pair),
          TEST_CASE(attention_window_long_and_pieces), TEST_CASE(attention_split_matches),
          TEST_CASE(supports_kv_and_bad_args))

#else /* no CUDA backend in this build */

TEST(cuda_kvq)
{
    TEST_SKIP("no CUDA device (CUDA backend not built)");
}

TEST_MAIN(TEST_CASE(cuda_kvq))
#endif
