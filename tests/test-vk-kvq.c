/*
 * test-vk-kvq: the Vulkan ATTENTION op over compressed KV caches (f16, q8_0,
 * q4_0, rot4, rot3; vulkan/op-attention.c, shaders/kv-store-q.comp,
 * shaders/attention-kvq.comp) on the first Vulkan device.
 *
 * Each case fills the cache prefix [0, pos0) with rows encoded on the host
 * (kvq_encode), runs one ATTENTION op of n_tok tokens on Vulkan and checks:
 *   1. the encoder: the new cache rows against kvq_encode of the op's own
 *      normed+RoPE'd k (read back) and v: f16 bit-exact; q8_0/q4_0 within
 *      one quantization step of the CPU's decoded value and mostly byte-equal
 *      (the GPU's float division need not round like the CPU's); rot4/rot3
 *      (float scale search where the CPU uses double) with a squared
 *      reconstruction error within 2% of the CPU encoder's and most vectors
 *      byte-equal. Counts are printed.
 *   2. the kernel: out against a double-precision softmax attention over the
 *      read-back cache rows decoded with kvq_decode (so encoder differences
 *      cannot hide or excuse kernel errors): max |out - ref| <= 2e-5 max |ref|.
 *   3. when the CPU backend supports the pair (backend_device_supports_kv),
 *      out against the CPU backend's, with the per-type tolerances of
 *      cpu_tol (the two encoders may round a few codes differently).
 *   4. key centring (non-f16 K, core/backend.h ATTENTION step 3): the read
 *      back k is the centred key that step 1 encodes and the reference of 2
 *      scores position 0 with k_aux row 1 (the sink). A batch at pos0 > 0
 *      leaves k_aux byte-equal (mu reused, not recomputed); a one-token first
 *      batch gives mu = 0 exactly; the sink equals the read-back centred k[0]
 *      bit for bit. Cases with rope_freq_scale 0 and no qk-norm hand the
 *      kernels the input k unchanged, so mu, the sink and every centred key
 *      are checked bit for bit against cpu_kvq_key_center on the host (the
 *      shader's compensated float sum against the CPU's double sum); with
 *      RoPE, mu against the CPU backend's within 1e-5 (measured worst printed).
 *   5. the exact window (ATTENTION step 5, exact_window): sequences of
 *      batches, decode steps (the second replayed) and a rewind per pair and
 *      W, against the contract's double reference, the contract's ring bit
 *      for bit and the CPU backend's op (see win_case).
 * Skips with "no Vulkan device" where there is none.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "fixtures.h"

#ifdef HEARTH_WITH_VULKAN
#include "../vulkan/vk.h"
#include "backend.h"
#include "cpu/attn-kvq.h"
#include "f16.h"
#include "kv-quant.h"
#include "kvq-ref.h"

const struct hearth_backend_ops *vk_backend_ops(void);

enum { H = 4, HK = 2, CTX = 80, MAX_BUFS = 64 };
static const uint64_t SEED = 0x5eedf00dull;

/* Encoded vectors checked and byte-equal to kvq_encode's, per type, over a test case. */
static int tally_vectors[KVQ_TYPE_COUNT], tally_equal[KVQ_TYPE_COUNT];
/* Runs compared with the CPU backend, and the worst error / tolerance ratio among them. */
static int tally_cpu_runs;
static double tally_cpu_worst;
/* The worst kernel error (of max |ref|) against the decoded-cache reference. */
static double tally_kernel_worst;
/* Key centring: worst |mu_vk - mu_cpu backend| (RoPE'd cases), exact cases and their mismatches. */
static double tally_mu_worst;
static int tally_exact_runs, tally_exact_bad;

struct kenv {
    struct hearth_device *dev[2]; /* 0: cpu, 1: vulkan */
    struct hearth_stream *s[2];
    struct hearth_buffer *bufs[MAX_BUFS];
    int n_bufs;
};

static bool env_open(struct kenv *e)
{
    memset(e, 0, sizeof *e);
    if (fixture_asan_slow_unwind())
        return false;
    vk_keep_driver_loaded();
    const struct hearth_backend_ops *vo = vk_backend_ops();
    if (!vo || vo->device_count() < 1)
        return false;
    struct cpu_backend_params p = {.n_threads = 2, .isa = 0, .name = "cpu-ref"};
    CHECK_OK(cpu_backend_device_create(&p, &e->dev[0]));
    CHECK_OK(vo->device_open(0, &e->dev[1]));
    for (int i = 0; i < 2; i++)
        if (e->dev[i])
            CHECK_OK(backend_stream_create(e->dev[i], &e->s[i]));
    return true;
}

static void env_free_bufs(struct kenv *e)
{
    for (int i = 0; i < e->n_bufs; i++)
        backend_buffer_free(e->bufs[i]);
    e->n_bufs = 0;
}

static void env_close(struct kenv *e)
{
    if (e->dev[1]) {
        const char *msg = NULL;
        int n = vk_backend_validation_errors(e->dev[1], &msg);
        CHECK_MSG(n == 0, "%d validation messages, last: %s", n, msg);
    }
    env_free_bufs(e);
    for (int i = 0; i < 2; i++) {
        backend_stream_destroy(e->s[i]);
        backend_device_destroy(e->dev[i]);
    }
}

/* Prints and resets the tally: how many encoded vectors matched kvq_encode byte for byte. */
static void print_tally(void)
{
    for (int t = 0; t < KVQ_TYPE_COUNT; t++) {
        if (tally_vectors[t])
            printf("  %s: %d of %d vectors byte-equal to kvq_encode\n", kvq_type_name(t),
                   tally_equal[t], tally_vectors[t]);
        tally_vectors[t] = tally_equal[t] = 0;
    }
    printf("  kernel vs decoded-cache reference: worst %.3g of max |ref|\n", tally_kernel_worst);
    if (tally_cpu_runs)
        printf("  %d runs vs the CPU backend: worst error %.3g of its tolerance\n",
               tally_cpu_runs, tally_cpu_worst);
    else
        printf("  CPU backend takes no kv pair here: compared with the reference only\n");
    if (tally_exact_runs)
        printf("  key centring: %d exact runs, %d floats differ from cpu_kvq_key_center\n",
               tally_exact_runs, tally_exact_bad);
    printf("  key mean vs the CPU backend (RoPE'd k): worst |diff| %.3g\n", tally_mu_worst);
    tally_cpu_runs = tally_exact_runs = tally_exact_bad = 0;
    tally_cpu_worst = tally_kernel_worst = tally_mu_worst = 0.0;
}

#define OPEN_OR_SKIP(e)                                                                   \
    struct kenv e;                                                                        \
    if (!env_open(&e)) {                                                                  \
        env_close(&e);                                                                    \
        TEST_SKIP("skipped: no Vulkan device");                                           \
    }                                                                                     \
    if (!e.s[0] || !e.s[1]) {                                                             \
        env_close(&e);                                                                    \
        return;                                                                           \
    }

/* A tensor of n_rows x ne0 of type t on device d holding host bytes (NULL: zeros). */
static struct hearth_tensor mk(struct kenv *e, int d, hearth_dtype t, int64_t ne0, size_t row_bytes,
                               int64_t n_rows, const void *host)
{
    struct hearth_tensor w;
    memset(&w, 0, sizeof w);
    size_t n = row_bytes * (size_t)n_rows;
    struct hearth_buffer *b = NULL;
    if (e->n_bufs >= MAX_BUFS) {
        TEST_FAIL_AT("too many test buffers");
        return w;
    }
    CHECK_OK(backend_buffer_alloc(backend_device_buffer_type(e->dev[d]), n, &b));
    if (!b)
        return w;
    e->bufs[e->n_bufs++] = b;
    if (host)
        CHECK_OK(backend_buffer_set(b, 0, host, n));
    else
        CHECK_OK(backend_buffer_clear(b, 0));
    w.buf = b;
    w.type = t;
    w.ne0 = ne0;
    w.n_rows = n_rows;
    w.row_stride = row_bytes;
    return w;
}

static float *gauss(size_t n, double s)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; x && i < n; i++)
        x[i] = (float)(test_rng_gauss() * s);
    return x;
}

struct kcase {
    enum kvq_type kt, vt;
    int hd, n_tok, pos0;
    uint32_t window;
    bool qk_norm;
    uint32_t layer;
    bool no_rope; /* rope_freq_scale 0: RoPE leaves q and k bit for bit */
    int pre_n;    /* > 0: a first batch of pre_n tokens at 0 writes the prefix (pos0 == pre_n) */
};

/* Encoder statistics over one case (both K and V vectors of its type). */
struct enc_stats {
    int vectors, identical;
    double err_gpu, err_cpu; /* Σ ||x - decode(enc(x))||² */
    double worst_step;       /* block types: max |gpu - cpu| decoded / block scale */
};

/*
 * Compares the n_tok new rows of a cache (bytes, row_bytes apart) with
 * kvq_encode of x ([n_tok][HK * hd], the op's input after norm/RoPE).
 */
static void check_rows(const struct kcase *c, enum kvq_type t, const struct kvq_rot *rot,
                       const uint8_t *cache, size_t row_bytes, const float *x,
                       struct enc_stats *st)
{
    size_t hb = kvq_head_bytes(t, c->hd);
    uint8_t ref[2 * KVQ_MAX_HEAD_DIM];
    float dg[KVQ_MAX_HEAD_DIM], dc[KVQ_MAX_HEAD_DIM];
    for (int tk = 0; tk < c->n_tok; tk++) {
        for (int h = 0; h < HK; h++) {
            const float *xv = x + ((size_t)tk * HK + (size_t)h) * (size_t)c->hd;
            const uint8_t *got = cache + (size_t)(c->pos0 + tk) * row_bytes + (size_t)h * hb;
            kvq_encode(t, rot, c->hd, xv, ref);
            st->vectors++;
            st->identical += memcmp(got, ref, hb) == 0;
            kvq_decode(t, rot, c->hd, got, dg);
            kvq_decode(t, rot, c->hd, ref, dc);
            for (int i = 0; i < c->hd; i++) {
                double eg = (double)xv[i] - (double)dg[i], ec = (double)xv[i] - (double)dc[i];
                st->err_gpu += eg * eg;
                st->err_cpu += ec * ec;
                if (t == KVQ_Q8_0 || t == KVQ_Q4_0) {
                    /* the block's scale: max |x| / 127 or / 8 */
                    double amax = 0.0;
                    for (int k = i / 32 * 32; k < i / 32 * 32 + 32; k++)
                        amax = fmax(amax, fabs((double)xv[k]));
                    double step = amax / (t == KVQ_Q8_0 ? 127.0 : 8.0);
                    if (step > 0.0)
                        st->worst_step =
                            fmax(st->worst_step, fabs((double)dg[i] - (double)dc[i]) / step);
                }
            }
        }
    }
}

static void check_encoder(const struct kcase *c, enum kvq_type t, const struct enc_stats *st,
                          const char *what)
{
    tally_vectors[t] += st->vectors;
    tally_equal[t] += st->identical;
    if (st->identical < st->vectors)
        printf("  %s %s d%d: %d/%d vectors byte-equal to kvq_encode, squared error gpu/cpu "
               "%.6f\n", what, kvq_type_name(t), c->hd, st->identical, st->vectors,
               st->err_cpu > 0 ? st->err_gpu / st->err_cpu : 1.0);
    switch (t) {
    case KVQ_F16:
        CHECK_MSG(st->identical == st->vectors, "%s f16: %d of %d vectors differ", what,
                  st->vectors - st->identical, st->vectors);
        break;
    case KVQ_Q8_0:
    case KVQ_Q4_0:
        CHECK_MSG(st->worst_step <= 1.01, "%s %s: decoded value %.3f steps from the CPU's", what,
                  kvq_type_name(t), st->worst_step);
        CHECK_MSG(st->identical * 10 >= st->vectors * 9, "%s %s: only %d of %d vectors equal",
                  what, kvq_type_name(t), st->identical, st->vectors);
        break;
    default:
        CHECK_MSG(st->err_gpu <= 1.02 * st->err_cpu + 1e-12, "%s %s: gpu error %.6g vs cpu %.6g",
                  what, kvq_type_name(t), st->err_gpu, st->err_cpu);
        CHECK_MSG(st->identical * 2 >= st->vectors, "%s %s: only %d of %d vectors equal", what,
                  kvq_type_name(t), st->identical, st->vectors);
        break;
    }
}

/*
 * Tolerance (of max |out|) against the CPU backend, by the coarser type of
 * the pair. Both encode the same bytes nearly always (float RoPE and sums
 * differ by ~1e-6), so these bound what a tipped code may move: one block
 * step of a position's value (q8_0 1/127, q4_0 1/8 of the block max) times
 * its softmax weight, or one rotated coordinate's level gap. Measured on
 * lavapipe: 3.6e-4 at worst (one tipped rot3 vector at d256), 1e-6 otherwise.
 */
static double cpu_tol(enum kvq_type kt, enum kvq_type vt)
{
    static const double tol[KVQ_TYPE_COUNT] = {2e-4, 2e-3, 1e-2, 1e-2, 1e-2};
    return fmax(tol[kt], tol[vt]);
}

/*
 * out[t][h] = softmax attention over the decoded cache rows, in double;
 * sink ([HK * hd] or NULL): position 0's keys instead of the decoded row 0.
 */
static void reference(const struct kcase *c, const struct kvq_rot *rot, const float *q,
                      const uint8_t *kc, size_t krow, const uint8_t *vc, size_t vrow, float scale,
                      const float *sink, double *out)
{
    int hd = c->hd;
    size_t khb = kvq_head_bytes(c->kt, hd), vhb = kvq_head_bytes(c->vt, hd);
    float kd[KVQ_MAX_HEAD_DIM], vd[KVQ_MAX_HEAD_DIM];
    double s[CTX];
    for (int t = 0; t < c->n_tok; t++) {
        int p = c->pos0 + t;
        int lo = c->window && p + 1 > (int)c->window ? p + 1 - (int)c->window : 0;
        for (int h = 0; h < H; h++) {
            int kvh = h / (H / HK);
            const float *qh = q + ((size_t)t * H + (size_t)h) * (size_t)hd;
            double mx = -INFINITY, sum = 0.0;
            for (int j = lo; j <= p; j++) {
                kvq_decode(c->kt, rot, hd, kc + (size_t)j * krow + (size_t)kvh * khb, kd);
                if (j == 0 && sink)
                    memcpy(kd, sink + (size_t)kvh * (size_t)hd, (size_t)hd * sizeof *kd);
                double d = 0.0;
                for (int i = 0; i < hd; i++)
                    d += (double)qh[i] * (double)kd[i];
                s[j] = d * (double)scale;
                mx = fmax(mx, s[j]);
            }
            for (int j = lo; j <= p; j++)
                sum += (s[j] = exp(s[j] - mx));
            double *o = out + ((size_t)t * H + (size_t)h) * (size_t)hd;
            for (int i = 0; i < hd; i++)
                o[i] = 0.0;
            for (int j = lo; j <= p; j++) {
                kvq_decode(c->vt, rot, hd, vc + (size_t)j * vrow + (size_t)kvh * vhb, vd);
                for (int i = 0; i < hd; i++)
                    o[i] += s[j] / sum * (double)vd[i];
            }
        }
    }
}

/* Counts the floats of a[n] and b[n] whose bits differ. */
static int bits_differ(const float *a, const float *b, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += memcmp(&a[i], &b[i], sizeof a[i]) != 0;
    return bad;
}

/* Fills an ATTENTION op of n tokens at pos0 of case c over the tensors t (q, k, v, caches, ...). */
static void fill_op(const struct kcase *c, struct hearth_op *op, const struct hearth_tensor *t,
                    const struct hearth_tensor *qkv, int n, int pos0)
{
    memset(op, 0, sizeof *op);
    op->kind = HEARTH_OP_ATTENTION;
    op->n_tok = n;
    struct hearth_op_attention *a = &op->u.attn;
    a->q = qkv[0], a->k = qkv[1], a->v = qkv[2], a->k_cache = t[3], a->v_cache = t[4];
    a->out = qkv[3];
    if (c->qk_norm)
        a->q_norm = t[6], a->k_norm = t[7];
    if (c->kt != KVQ_F16)
        a->k_aux = t[8];
    a->n_head = H, a->n_head_kv = HK, a->head_dim = c->hd, a->n_rot = c->hd;
    a->rope_mode = c->layer % 2 ? HEARTH_ROPE_NEOX : HEARTH_ROPE_NORMAL;
    a->rope_base = 10000.0f, a->rope_freq_scale = c->no_rope ? 0.0f : 1.0f, a->norm_eps = 1e-6f;
    a->scale = 1.0f / sqrtf((float)c->hd), a->pos0 = pos0, a->window = c->window;
    a->k_type = c->kt, a->v_type = c->vt, a->layer = c->layer, a->kv_seed = SEED;
}

/* Runs one case on Vulkan (and on the CPU where it supports the pair) and checks it. */
static void run_case(struct kenv *e, const struct kcase *c)
{
    int hd = c->hd, n = c->n_tok, pn = c->pre_n;
    const int KV = HK * hd;
    size_t khb = kvq_head_bytes(c->kt, hd), vhb = kvq_head_bytes(c->vt, hd);
    size_t krow = HK * khb, vrow = HK * vhb;
    struct kvq_rot rot;
    CHECK_OK(kvq_rot_init(&rot, hd, SEED, c->layer));
    bool use_cpu = backend_device_supports_kv(e->dev[0], c->kt, c->vt);
    const bool centred = c->kt != KVQ_F16;

    /* host data: the prefix rows (encoded here), the new q/k/v, qk-norm gains, k_aux */
    uint8_t *kc = calloc(CTX, krow), *vc = calloc(CTX, vrow);
    size_t n_prefix = (size_t)c->pos0 * HK * (size_t)hd + 1; /* + 1: never malloc(0) */
    size_t n_pre = (size_t)pn * HK * (size_t)hd + 1;
    float *kp = gauss(n_prefix, 1.0), *vp = gauss(n_prefix, 1.0);
    float *q = gauss((size_t)n * H * hd, 1.0), *k = gauss((size_t)n * HK * hd, 1.0);
    float *v = gauss((size_t)n * HK * hd, 1.0), *g = gauss(2 * (size_t)hd, 0.3);
    /* drawn only by the two-batch cases, so the other cases see the RNG stream they always had */
    float *pq = pn ? gauss((size_t)pn * H * hd, 1.0) : malloc(4);
    float *pk = pn ? gauss(n_pre, 1.0) : malloc(4), *pv = pn ? gauss(n_pre, 1.0) : malloc(4);
    float *aux = malloc(2 * (size_t)KV * sizeof(float));
    float *aux_vk = calloc(2 * (size_t)KV, sizeof(float));
    float *aux_cpu = calloc(2 * (size_t)KV, sizeof(float));
    float *out = calloc((size_t)n * H * hd, sizeof *out), *out_cpu = calloc((size_t)n * H * hd, 4);
    float *qr = malloc((size_t)n * H * hd * 4), *kr = malloc((size_t)n * HK * hd * 4);
    double *ref = malloc((size_t)n * H * hd * sizeof *ref);
    REQUIRE(kc && vc && kp && vp && q && k && v && g && pq && pk && pv && aux && aux_vk &&
            aux_cpu && out && out_cpu && qr && kr && ref);
    /* k_aux of an earlier batch: any mu and sink (a fixed pattern, not the RNG) */
    for (int i = 0; i < 2 * KV; i++)
        aux[i] = (i < KV ? 0.5f : 1.0f) * sinf(0.37f * (float)i + 1.0f);
    /* the prefix: written by an earlier batch of the op itself, or encoded here */
    if (pn > 0 || c->pos0 == 0)
        memset(aux, 0, 2 * (size_t)KV * sizeof *aux); /* zero before the first batch */
    for (int j = 0; j < c->pos0 && pn == 0; j++)
        for (int h = 0; h < HK; h++) {
            size_t x = ((size_t)j * HK + (size_t)h) * (size_t)hd;
            kvq_encode(c->kt, &rot, hd, kp + x, kc + (size_t)j * krow + (size_t)h * khb);
            kvq_encode(c->vt, &rot, hd, vp + x, vc + (size_t)j * vrow + (size_t)h * vhb);
        }
    for (int i = 0; i < 2 * hd; i++)
        g[i] += 1.0f;

    struct hearth_tensor tt[2][9], qkv[2][4], pqkv[2][4];
    struct hearth_op ops[2], pre[2];
    for (int d = 0; d < 2; d++) {
        if (d == 0 && !use_cpu)
            continue;
        hearth_dtype kdt = c->kt == KVQ_F16 ? HEARTH_DTYPE_F16 : HEARTH_DTYPE_I8;
        hearth_dtype vdt = c->vt == KVQ_F16 ? HEARTH_DTYPE_F16 : HEARTH_DTYPE_I8;
        struct hearth_tensor *t = tt[d];
        qkv[d][0] = mk(e, d, HEARTH_DTYPE_F32, H * hd, (size_t)H * hd * 4, n, q);
        qkv[d][1] = mk(e, d, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, n, k);
        qkv[d][2] = mk(e, d, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, n, v);
        qkv[d][3] = mk(e, d, HEARTH_DTYPE_F32, H * hd, (size_t)H * hd * 4, n, NULL);
        t[3] = mk(e, d, kdt, c->kt == KVQ_F16 ? KV : (int64_t)krow, krow, CTX, kc);
        t[4] = mk(e, d, vdt, c->vt == KVQ_F16 ? KV : (int64_t)vrow, vrow, CTX, vc);
        t[6] = mk(e, d, HEARTH_DTYPE_F32, hd, (size_t)hd * 4, 1, g);
        t[7] = mk(e, d, HEARTH_DTYPE_F32, hd, (size_t)hd * 4, 1, g + hd);
        t[8] = mk(e, d, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, 2, aux);
        fill_op(c, &ops[d], t, qkv[d], n, c->pos0);
        if (pn > 0) {
            pqkv[d][0] = mk(e, d, HEARTH_DTYPE_F32, H * hd, (size_t)H * hd * 4, pn, pq);
            pqkv[d][1] = mk(e, d, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, pn, pk);
            pqkv[d][2] = mk(e, d, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, pn, pv);
            pqkv[d][3] = mk(e, d, HEARTH_DTYPE_F32, H * hd, (size_t)H * hd * 4, pn, NULL);
            fill_op(c, &pre[d], t, pqkv[d], pn, 0);
        }
    }
    char name[48];
    kvq_pair_name(c->kt, c->vt, name, sizeof name);
    hearth_status st = HEARTH_OK;
    if (pn > 0) {
        st = backend_stream_run(e->s[1], &pre[1], 1);
        CHECK_MSG(st == HEARTH_OK, "%s: vulkan first batch failed", name);
        CHECK_OK(backend_stream_synchronize(e->s[1]));
        /* the mu and sink the second batch must leave alone */
        CHECK_OK(backend_buffer_get(tt[1][8].buf, 0, aux, 2 * (size_t)KV * 4));
        if (use_cpu) {
            CHECK_OK(backend_stream_run(e->s[0], &pre[0], 1));
            CHECK_OK(backend_stream_synchronize(e->s[0]));
        }
    }
    if (st == HEARTH_OK)
        st = backend_stream_run(e->s[1], &ops[1], 1);
    CHECK_MSG(st == HEARTH_OK, "%s d%d n%d pos%d: vulkan run failed", name, hd, n, c->pos0);
    CHECK_OK(backend_stream_synchronize(e->s[1]));
    if (st != HEARTH_OK)
        goto done;
    CHECK_OK(backend_buffer_get(qkv[1][3].buf, 0, out, (size_t)n * H * hd * 4));
    CHECK_OK(backend_buffer_get(qkv[1][0].buf, 0, qr, (size_t)n * H * hd * 4));
    CHECK_OK(backend_buffer_get(qkv[1][1].buf, 0, kr, (size_t)n * KV * 4));
    CHECK_OK(backend_buffer_get(tt[1][3].buf, 0, kc, CTX * krow));
    CHECK_OK(backend_buffer_get(tt[1][4].buf, 0, vc, CTX * vrow));
    CHECK_OK(backend_buffer_get(tt[1][8].buf, 0, aux_vk, 2 * (size_t)KV * 4));

    /* 4. key centring */
    if (centred && c->pos0 > 0) {
        CHECK_MSG(memcmp(aux, aux_vk, 2 * (size_t)KV * 4) == 0,
                  "%s pos%d: k_aux changed by a batch that does not write position 0", name,
                  c->pos0);
    } else if (centred) {
        CHECK_MSG(bits_differ(aux_vk + KV, kr, (size_t)KV) == 0,
                  "%s n%d: the sink is not the centred k[0]", name, n);
        if (n == 1) {
            float zero[2 * KVQ_MAX_HEAD_DIM] = {0};
            CHECK_MSG(bits_differ(aux_vk, zero, (size_t)KV) == 0, "%s: mu of one token not 0",
                      name);
        }
    } else {
        CHECK_MSG(memcmp(aux, aux_vk, 2 * (size_t)KV * 4) == 0, "%s: f16 K touched k_aux", name);
    }
    if (centred && c->no_rope && !c->qk_norm) {
        /* the kernels saw k itself: cpu_kvq_key_center on the host must give the same bits */
        float *kh = malloc((size_t)n * KV * sizeof *kh);
        int32_t rows[CTX];
        REQUIRE(kh);
        memcpy(kh, k, (size_t)n * KV * sizeof *kh);
        for (int i = 0; i < n; i++)
            rows[i] = i;
        float mu[2 * KVQ_MAX_HEAD_DIM], sink[2 * KVQ_MAX_HEAD_DIM];
        memcpy(mu, aux, (size_t)KV * sizeof *mu);
        memcpy(sink, aux + KV, (size_t)KV * sizeof *sink);
        cpu_kvq_key_center(kh, KV, rows, n, c->pos0 == 0, KV, mu, sink);
        int bad = bits_differ(mu, aux_vk, (size_t)KV) + bits_differ(sink, aux_vk + KV, (size_t)KV) +
                  bits_differ(kh, kr, (size_t)n * KV);
        tally_exact_runs++;
        tally_exact_bad += bad;
        CHECK_MSG(bad == 0, "%s n%d pos%d: %d floats of mu/sink/centred k differ from the CPU's",
                  name, n, c->pos0, bad);
        free(kh);
    }

    /* 1. the encoder: the cache holds enc(k - mu) */
    struct enc_stats sk = {0}, sv = {0};
    check_rows(c, c->kt, &rot, kc, krow, kr, &sk);
    check_rows(c, c->vt, &rot, vc, vrow, v, &sv);
    if (c->kt == c->vt) {
        sk.vectors += sv.vectors, sk.identical += sv.identical, sk.err_gpu += sv.err_gpu;
        sk.err_cpu += sv.err_cpu, sk.worst_step = fmax(sk.worst_step, sv.worst_step);
        check_encoder(c, c->kt, &sk, "K+V");
    } else {
        check_encoder(c, c->kt, &sk, "K");
        check_encoder(c, c->vt, &sv, "V");
    }

    /* 2. the kernel against the decoded cache and the sink */
    reference(c, &rot, qr, kc, krow, vc, vrow, 1.0f / sqrtf((float)hd),
              centred ? aux_vk + KV : NULL, ref);
    double mx = 0.0, err = 0.0;
    for (size_t i = 0; i < (size_t)n * H * hd; i++) {
        mx = fmax(mx, fabs(ref[i]));
        err = fmax(err, fabs((double)out[i] - ref[i]));
    }
    tally_kernel_worst = fmax(tally_kernel_worst, err / mx);
    CHECK_MSG(err <= 2e-5 * mx, "%s d%d n%d pos%d win%u: kernel error %.3g of max %.3g", name, hd,
              n, c->pos0, c->window, err, mx);

    /* 3. the CPU backend, where it takes this pair */
    if (use_cpu) {
        CHECK_OK(backend_stream_run(e->s[0], &ops[0], 1));
        CHECK_OK(backend_stream_synchronize(e->s[0]));
        CHECK_OK(backend_buffer_get(qkv[0][3].buf, 0, out_cpu, (size_t)n * H * hd * 4));
        CHECK_OK(backend_buffer_get(tt[0][8].buf, 0, aux_cpu, 2 * (size_t)KV * 4));
        double mc = 0.0, ec = 0.0, em = 0.0;
        for (size_t i = 0; i < (size_t)n * H * hd; i++) {
            mc = fmax(mc, fabs((double)out_cpu[i]));
            ec = fmax(ec, fabs((double)out[i] - (double)out_cpu[i]));
        }
        for (int i = 0; i < 2 * KV; i++)
            em = fmax(em, fabs((double)aux_vk[i] - (double)aux_cpu[i]));
        tally_mu_worst = fmax(tally_mu_worst, em);
        CHECK_MSG(em <= 1e-5, "%s n%d pos%d: k_aux differs from the CPU backend's by %.3g", name,
                  n, c->pos0, em);
        tally_cpu_runs++;
        tally_cpu_worst = fmax(tally_cpu_worst, ec / (cpu_tol(c->kt, c->vt) * mc));
        CHECK_MSG(ec <= cpu_tol(c->kt, c->vt) * mc, "%s d%d n%d pos%d: vs cpu %.3g of max %.3g",
                  name, hd, n, c->pos0, ec, mc);
    }
done:
    env_free_bufs(e);
    free(kc), free(vc), free(kp), free(vp), free(q), free(k), free(v), free(g);
    free(pq), free(pk), free(pv), free(aux), free(aux_vk), free(aux_cpu);
    free(out), free(out_cpu), free(qr), free(kr), free(ref);
}

/* Every pair of one K type with itself at head_dim hd: n_tok 1 and 7, pos0 0 and 37. */
static void same_types(int hd)
{
    OPEN_OR_SKIP(e);
    test_rng_seed(7000 + (uint64_t)hd);
    for (int t = 0; t < KVQ_TYPE_COUNT; t++)
        for (int n = 1; n <= 7; n += 6)
            for (int pos0 = 0; pos0 <= 37; pos0 += 37) {
                struct kcase c = {(enum kvq_type)t, (enum kvq_type)t, hd, n, pos0, 0, false,
                                  (uint32_t)(t + n), false, 0};
                run_case(&e, &c);
            }
    print_tally();
    env_close(&e);
}

TEST(same_types_d64)
{
    same_types(64);
}

TEST(same_types_d128)
{
    same_types(128);
}

TEST(same_types_d256)
{
    same_types(256);
}

/* K q8_0 / V rot4 and K rot3 / V f16, every head_dim, with qk-norm. */
TEST(mixed_types)
{
    OPEN_OR_SKIP(e);
    test_rng_seed(7100);
    static const enum kvq_type pairs[2][2] = {{KVQ_Q8_0, KVQ_ROT4}, {KVQ_ROT3, KVQ_F16}};
    for (int pi = 0; pi < 2; pi++)
        for (int hd = 64; hd <= 256; hd *= 2)
            for (int n = 1; n <= 7; n += 6) {
                struct kcase c = {pairs[pi][0], pairs[pi][1], hd, n, 37, 0, true, 3, false, 0};
                run_case(&e, &c);
            }
    print_tally();
    env_close(&e);
}

/*
 * Sliding window (5 latest positions) over a prefix of 37, and head_dim 96
 * (two rotation pieces, 64 + 32, each with its own scale).
 */
TEST(window_and_pieces)
{
    OPEN_OR_SKIP(e);
    test_rng_seed(7200);
    struct kcase c[] = {
        {KVQ_ROT4, KVQ_ROT4, 128, 7, 37, 5, false, 11, false, 0},
        {KVQ_Q4_0, KVQ_ROT3, 64, 7, 37, 5, true, 12, false, 0},
        {KVQ_ROT3, KVQ_ROT3, 96, 7, 37, 0, false, 13, false, 0},
        {KVQ_ROT4, KVQ_Q8_0, 96, 1, 20, 0, false, 14, false, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        run_case(&e, &c[i]);
    print_tally();
    env_close(&e);
}

/*
 * Key centring checked bit for bit (RoPE off, no qk-norm: the kernels see k
 * itself): every non-f16 K type as a first batch of 7, of 1 (mu = 0) and of
 * 70 tokens (the mean stops at CPU_KVQ_MEAN_N), and a second batch at 37
 * over host-set k_aux (mu reused as is).
 */
TEST(centring_exact)
{
    OPEN_OR_SKIP(e);
    test_rng_seed(7300);
    static const int ns[3] = {7, 1, 70};
    for (int t = KVQ_Q8_0; t < KVQ_TYPE_COUNT; t++) {
        for (int i = 0; i < 3; i++) {
            struct kcase c = {(enum kvq_type)t, KVQ_Q8_0, 64, ns[i], 0, 0, false,
                              (uint32_t)(20 + t), true, 0};
            run_case(&e, &c);
        }
        struct kcase c2 = {(enum kvq_type)t, KVQ_F16, 128, 5, 37, 0, false, 30, true, 0};
        run_case(&e, &c2);
    }
    print_tally();
    env_close(&e);
}

/*
 * Two batches of one sequence through the op itself: 9 tokens at 0 fix mu
 * and the sink, 4 at 9 reuse them (k_aux byte-equal after the second) and
 * attend to the sink; with RoPE and qk-norm, on both backends.
 */
TEST(two_batches)
{
    OPEN_OR_SKIP(e);
    test_rng_seed(7400);
    struct kcase c[] = {
        {KVQ_ROT4, KVQ_ROT4, 128, 4, 9, 0, true, 21, false, 9},
        {KVQ_Q4_0, KVQ_ROT3, 64, 4, 9, 0, false, 22, false, 9},
        {KVQ_ROT3, KVQ_F16, 64, 1, 9, 0, true, 23, true, 9},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        run_case(&e, &c[i]);
    print_tally();
    env_close(&e);
}


/* ==== the exact window (core/backend.h ATTENTION step 5) ===================== */

/* Worst kernel error (of max |ref|) of the window cases; ring words checked / differing. */
static double tally_win_worst, tally_win_cpu_worst, tally_win_ring_cpu;
static int tally_win_ring_words, tally_win_ring_bad, tally_win_cpu_runs;

/* One device's state of a window sequence: caches, k_aux, rings (tensors t[0..5]). */
struct wdev {
    struct hearth_tensor kc, vc, aux, kr, vr, rp;
};

/* The contract's ring (host model): W rows of KV halves per cache, tags. */
struct wring {
    uint16_t k[40][HK * 64], v[40][HK * 64];
    int32_t pos[40];
};

/* The tensors of one device for a window sequence; the ring tags start at -1. */
static void win_dev_init(struct kenv *e, int d, enum kvq_type kt, enum kvq_type vt, int hd, int W,
                         struct wdev *w)
{
    const int KV = HK * hd;
    size_t krow = HK * kvq_head_bytes(kt, hd), vrow = HK * kvq_head_bytes(vt, hd);
    int32_t tags[40];
    for (int i = 0; i < 40; i++)
        tags[i] = -1;
    w->kc = mk(e, d, kt == KVQ_F16 ? HEARTH_DTYPE_F16 : HEARTH_DTYPE_I8,
               kt == KVQ_F16 ? KV : (int64_t)krow, krow, CTX, NULL);
    w->vc = mk(e, d, vt == KVQ_F16 ? HEARTH_DTYPE_F16 : HEARTH_DTYPE_I8,
               vt == KVQ_F16 ? KV : (int64_t)vrow, vrow, CTX, NULL);
    w->aux = mk(e, d, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, 2, NULL);
    w->kr = mk(e, d, HEARTH_DTYPE_F16, KV, (size_t)KV * 2, W, NULL);
    w->vr = mk(e, d, HEARTH_DTYPE_F16, KV, (size_t)KV * 2, W, NULL);
    w->rp = mk(e, d, HEARTH_DTYPE_I32, W, (size_t)W * 4, 1, tags);
}

/* An ATTENTION op with the exact window over w's tensors and the batch's q/k/v/out. */
static void win_op(enum kvq_type kt, enum kvq_type vt, int hd, int W, uint32_t layer,
                   const struct wdev *w, const struct hearth_tensor *qkv, int n, int pos0,
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
    a->n_head = H, a->n_head_kv = HK, a->head_dim = hd, a->n_rot = hd;
    a->rope_mode = layer % 2 ? HEARTH_ROPE_NEOX : HEARTH_ROPE_NORMAL;
    a->rope_base = 10000.0f, a->rope_freq_scale = 1.0f, a->norm_eps = 1e-6f;
    a->scale = 1.0f / sqrtf((float)hd), a->pos0 = pos0;
    a->k_type = kt, a->v_type = vt, a->layer = layer, a->kv_seed = SEED;
    a->kv_window = (uint32_t)W, a->k_ring = w->kr, a->v_ring = w->vr, a->ring_pos = w->rp;
}

/*
 * One window sequence of kt/vt at W: batches (0, 9), (9, max(W + 3, 4)) (more
 * than W tokens after earlier ones), two decode steps through the same
 * tensors (the second replays the first's recording), then a rewind of 4
 * tokens at end - 7 (older slots hold later, discarded positions: stale tags
 * must read the decoded rows). After each batch: out against the contract's
 * double reference; the ring and its tags bit for bit against the contract's
 * (built from the op's own read-back centred k and v); where the CPU backend
 * has the window, out against its within cpu_tol, its tags equal, its ring
 * within an f16 step.
 */
static void win_case(struct kenv *e, enum kvq_type kt, enum kvq_type vt, int W, uint32_t layer)
{
    const int hd = 64, KV = HK * hd, QD = H * hd;
    size_t krow = HK * kvq_head_bytes(kt, hd), vrow = HK * kvq_head_bytes(vt, hd);
    const bool centred = kt != KVQ_F16;
    bool use_cpu = backend_device_supports_kv_window(e->dev[0], kt, vt);
    struct kvq_rot rot;
    CHECK_OK(kvq_rot_init(&rot, hd, SEED, layer));
    char name[48];
    kvq_pair_name(kt, vt, name, sizeof name);
    int nb = W + 3 > 4 ? W + 3 : 4, end = 9 + nb + 2;
    const int sched[5][2] = {{0, 9}, {9, nb}, {9 + nb, 1}, {10 + nb, 1}, {end - 7, 4}};
    struct wdev wd[2];
    struct wring *model = malloc(sizeof *model), *cring = malloc(sizeof *cring);
    uint8_t *kc = malloc(CTX * krow), *vc = malloc(CTX * vrow);
    float *q = malloc((size_t)CTX * QD * 4), *k = malloc((size_t)CTX * KV * 4);
    float *v = malloc((size_t)CTX * KV * 4), *out = malloc((size_t)CTX * QD * 4);
    float *outc = malloc((size_t)CTX * QD * 4), *qr = malloc((size_t)CTX * QD * 4);
    float *kr = malloc((size_t)CTX * KV * 4), *aux = malloc(2 * (size_t)KV * 4);
    float *tmp = malloc((size_t)KV * 4);
    uint16_t *xk = malloc((size_t)CTX * KV * 2), *xv = malloc((size_t)CTX * KV * 2);
    double *ref = malloc((size_t)CTX * QD * sizeof *ref);
    REQUIRE(model && cring && kc && vc && q && k && v && out && outc && qr && kr && aux && tmp &&
            xk && xv && ref);
    for (int i = 0; i < W; i++)
        model->pos[i] = -1;
    for (int d = 0; d < 2; d++)
        if (d == 1 || use_cpu)
            win_dev_init(e, d, kt, vt, hd, W, &wd[d]);
    struct hearth_tensor dec[2][4]; /* the decode steps' tensors, shared by both steps */
    for (int b = 0; b < 5; b++) {
        int pos0 = sched[b][0], n = sched[b][1];
        for (size_t i = 0; i < (size_t)n * QD; i++)
            q[i] = (float)test_rng_gauss();
        for (size_t i = 0; i < (size_t)n * KV; i++) {
            k[i] = (float)test_rng_gauss() + 0.3f;
            v[i] = (float)test_rng_gauss();
        }
        struct hearth_op op[2];
        for (int d = 0; d < 2; d++) {
            if (d == 0 && !use_cpu)
                continue;
            struct hearth_tensor qkv[4], *t = qkv;
            if (n == 1 && b == 3) {
                t = dec[d];
                CHECK_OK(backend_buffer_set(t[0].buf, 0, q, (size_t)QD * 4));
                CHECK_OK(backend_buffer_set(t[1].buf, 0, k, (size_t)KV * 4));
                CHECK_OK(backend_buffer_set(t[2].buf, 0, v, (size_t)KV * 4));
            } else {
                if (n == 1)
                    t = dec[d];
                t[0] = mk(e, d, HEARTH_DTYPE_F32, QD, (size_t)QD * 4, n, q);
                t[1] = mk(e, d, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, n, k);
                t[2] = mk(e, d, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, n, v);
                t[3] = mk(e, d, HEARTH_DTYPE_F32, QD, (size_t)QD * 4, n, NULL);
            }
            win_op(kt, vt, hd, W, layer, &wd[d], t, n, pos0, &op[d]);
        }
        struct vk_replay_stats rs0, rs1;
        vk_backend_replay_stats(e->s[1], &rs0);
        hearth_status st = backend_stream_run(e->s[1], &op[1], 1);
        CHECK_MSG(st == HEARTH_OK, "%s W%d batch %d: vulkan run failed", name, W, b);
        CHECK_OK(backend_stream_synchronize(e->s[1]));
        if (st != HEARTH_OK)
            break;
        vk_backend_replay_stats(e->s[1], &rs1);
        if (b == 3 && getenv("HEARTH_VULKAN_REPLAY") == NULL) /* the second decode step */
            CHECK_MSG(rs1.replays == rs0.replays + 1, "%s W%d: the decode step was not "
                      "replayed (%llu -> %llu)", name, W, (unsigned long long)rs0.replays,
                      (unsigned long long)rs1.replays);
        const struct hearth_op_attention *a = &op[1].u.attn;
        CHECK_OK(backend_buffer_get(a->out.buf, 0, out, (size_t)n * QD * 4));
        CHECK_OK(backend_buffer_get(a->q.buf, 0, qr, (size_t)n * QD * 4));
        CHECK_OK(backend_buffer_get(a->k.buf, 0, kr, (size_t)n * KV * 4));
        CHECK_OK(backend_buffer_get(wd[1].kc.buf, 0, kc, CTX * krow));
        CHECK_OK(backend_buffer_get(wd[1].vc.buf, 0, vc, CTX * vrow));
        CHECK_OK(backend_buffer_get(wd[1].aux.buf, 0, aux, 2 * (size_t)KV * 4));
        /* the batch's exact rows by the contract, from the op's own centred k and v */
        for (int t = 0; t < n; t++) {
            kvq_ref_domain(kt, &rot, kr + (size_t)t * KV, HK, hd, tmp);
            for (int i = 0; i < KV; i++)
                xk[(size_t)t * KV + (size_t)i] = f32_to_f16(tmp[i]);
            kvq_ref_domain(vt, &rot, v + (size_t)t * KV, HK, hd, tmp);
            for (int i = 0; i < KV; i++)
                xv[(size_t)t * KV + (size_t)i] = f32_to_f16(tmp[i]);
        }
        const struct kvq_ref_window refw = {
            .kt = kt, .vt = vt, .rot = &rot, .hd = hd, .n_head = H, .n_head_kv = HK, .w = W,
            .xk = xk, .xv = xv, .ring_k = model->k[0], .ring_v = model->v[0],
            .ring_stride = sizeof model->k[0] / sizeof model->k[0][0], .ring_pos = model->pos,
            .kc = kc, .vc = vc, .sink = centred ? aux + KV : NULL,
        };
        if (!kvq_ref_window_attention(&refw, n, pos0, qr, ref)) {
            TEST_FAIL_AT("out of memory");
            break;
        }
        double mx = 0.0, err = 0.0;
        for (size_t i = 0; i < (size_t)n * QD; i++) {
            mx = fmax(mx, fabs(ref[i]));
            err = fmax(err, fabs((double)out[i] - ref[i]));
        }
        tally_win_worst = fmax(tally_win_worst, err / mx);
        CHECK_MSG(err <= 2e-5 * mx, "%s W%d batch %d (%d at %d): kernel error %.3g of max %.3g",
                  name, W, b, n, pos0, err, mx);
        /* the ring afterwards: slot p % W = row p for every p of the batch, in order */
        for (int t = 0; t < n; t++) {
            int sl = (pos0 + t) % W;
            memcpy(model->k[sl], xk + (size_t)t * KV, (size_t)KV * 2);
            memcpy(model->v[sl], xv + (size_t)t * KV, (size_t)KV * 2);
            model->pos[sl] = pos0 + t;
        }
        CHECK_OK(backend_buffer_get(wd[1].kr.buf, 0, cring->k, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(wd[1].vr.buf, 0, cring->v, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(wd[1].rp.buf, 0, cring->pos, (size_t)W * 4));
        int bad = 0;
        for (int sl = 0; sl < W; sl++) {
            bad += cring->pos[sl] != model->pos[sl];
            if (model->pos[sl] < 0)
                continue;
            for (int i = 0; i < KV; i++)
                bad += (cring->k[sl][i] != model->k[sl][i]) + (cring->v[sl][i] != model->v[sl][i]);
            tally_win_ring_words += 2 * KV + 1;
        }
        tally_win_ring_bad += bad;
        CHECK_MSG(bad == 0, "%s W%d batch %d: %d ring halves/tags differ from the contract's",
                  name, W, b, bad);
        if (!use_cpu)
            continue;
        /* the CPU backend's op on the same inputs */
        CHECK_OK(backend_stream_run(e->s[0], &op[0], 1));
        CHECK_OK(backend_stream_synchronize(e->s[0]));
        CHECK_OK(backend_buffer_get(op[0].u.attn.out.buf, 0, outc, (size_t)n * QD * 4));
        double mc = 0.0, ec = 0.0;
        for (size_t i = 0; i < (size_t)n * QD; i++) {
            mc = fmax(mc, fabs((double)outc[i]));
            ec = fmax(ec, fabs((double)out[i] - (double)outc[i]));
        }
        tally_win_cpu_runs++;
        tally_win_cpu_worst = fmax(tally_win_cpu_worst, ec / (cpu_tol(kt, vt) * mc));
        CHECK_MSG(ec <= cpu_tol(kt, vt) * mc, "%s W%d batch %d: vs cpu %.3g of max %.3g", name,
                  W, b, ec, mc);
        struct wring *cr = cring;
        CHECK_OK(backend_buffer_get(wd[0].kr.buf, 0, cr->k, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(wd[0].vr.buf, 0, cr->v, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(wd[0].rp.buf, 0, cr->pos, (size_t)W * 4));
        int tb = 0;
        double rw = 0.0;
        for (int sl = 0; sl < W; sl++) {
            tb += cr->pos[sl] != model->pos[sl];
            for (int i = 0; model->pos[sl] >= 0 && i < KV; i++) {
                float a0 = f16_to_f32(model->k[sl][i]), a1 = f16_to_f32(cr->k[sl][i]);
                float b0 = f16_to_f32(model->v[sl][i]), b1 = f16_to_f32(cr->v[sl][i]);
                rw = fmax(rw, fabs((double)a0 - (double)a1) / (1e-3 + fabs((double)a0)));
                rw = fmax(rw, fabs((double)b0 - (double)b1) / (1e-3 + fabs((double)b0)));
            }
        }
        tally_win_ring_cpu = fmax(tally_win_ring_cpu, rw);
        CHECK_MSG(tb == 0 && rw <= 2e-3, "%s W%d batch %d: cpu ring: %d tags differ, values by "
                  "%.3g (relative)", name, W, b, tb, rw);
    }
    env_free_bufs(e);
    free(model), free(cring), free(kc), free(vc), free(q), free(k), free(v), free(out);
    free(outc), free(qr), free(kr), free(aux), free(tmp), free(xk), free(xv), free(ref);
}

/* The brief's pairs at W 1, 5 and 40 (the last takes a 43-token batch). */
TEST(exact_window)
{
    OPEN_OR_SKIP(e);
    test_rng_seed(7600);
    static const enum kvq_type pairs[4][2] = {
        {KVQ_ROT4, KVQ_ROT4}, {KVQ_Q8_0, KVQ_ROT4}, {KVQ_Q4_0, KVQ_Q4_0}, {KVQ_ROT3, KVQ_F16}};
    static const int ws[3] = {1, 5, 40};
    for (int p = 0; p < 4; p++)
        for (int w = 0; w < 3; w++)
            win_case(&e, pairs[p][0], pairs[p][1], ws[w], (uint32_t)(30 + 3 * p + w));
    printf("  window: kernel worst %.3g of max |ref|; ring %d words, %d differ from the "
           "contract's; cpu runs %d, worst %.3g of tolerance, ring %.3g relative\n",
           tally_win_worst, tally_win_ring_words, tally_win_ring_bad, tally_win_cpu_runs,
           tally_win_cpu_worst, tally_win_ring_cpu);
    env_close(&e);
}

TEST(supports_kv_window)
{
    OPEN_OR_SKIP(e);
    for (int kt = 0; kt < KVQ_TYPE_COUNT; kt++)
        for (int vt = 0; vt < KVQ_TYPE_COUNT; vt++)
            CHECK_MSG(backend_device_supports_kv_window(e.dev[1], kt, vt) ==
                          (kt != KVQ_F16 || vt != KVQ_F16), "pair %d/%d", kt, vt);
    CHECK(!backend_device_supports_kv_window(e.dev[1], KVQ_TYPE_COUNT, 0));
    env_close(&e);
}

TEST(supports_kv)
{
    OPEN_OR_SKIP(e);
    for (int kt = 0; kt < KVQ_TYPE_COUNT; kt++)
        for (int vt = 0; vt < KVQ_TYPE_COUNT; vt++)
            CHECK_MSG(backend_device_supports_kv(e.dev[1], kt, vt), "pair %d/%d", kt, vt);
    CHECK(!backend_device_supports_kv(e.dev[1], KVQ_TYPE_COUNT, 0));
    CHECK(!backend_device_supports_kv(e.dev[1], 0, -1));
    env_close(&e);
}

TEST_MAIN(TEST_CASE(same_types_d64), TEST_CASE(same_types_d128), TEST_CASE(same_types_d256),
          TEST_CASE(mixed_types), TEST_CASE(window_and_pieces), TEST_CASE(centring_exact),
          TEST_CASE(two_batches), TEST_CASE(supports_kv), TEST_CASE(exact_window),
          TEST_CASE(supports_kv_window))

#else

TEST(vulkan_not_built)
{
    TEST_SKIP("skipped: no Vulkan device (built without Vulkan)");
}

TEST_MAIN(TEST_CASE(vulkan_not_built))

#endif
