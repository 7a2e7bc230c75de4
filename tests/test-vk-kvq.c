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
 * Skips with "no Vulkan device" where there is none.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#ifdef HEARTH_WITH_VULKAN
#include "../vulkan/vk.h"
#include "backend.h"
#include "kv-quant.h"

const struct hearth_backend_ops *vk_backend_ops(void);

enum { H = 4, HK = 2, CTX = 48, MAX_BUFS = 32 };
static const uint64_t SEED = 0x5eedf00dull;

/* Encoded vectors checked and byte-equal to kvq_encode's, per type, over a test case. */
static int tally_vectors[KVQ_TYPE_COUNT], tally_equal[KVQ_TYPE_COUNT];
/* Runs compared with the CPU backend, and the worst error / tolerance ratio among them. */
static int tally_cpu_runs;
static double tally_cpu_worst;
/* The worst kernel error (of max |ref|) against the decoded-cache reference. */
static double tally_kernel_worst;

struct kenv {
    struct hearth_device *dev[2]; /* 0: cpu, 1: vulkan */
    struct hearth_stream *s[2];
    struct hearth_buffer *bufs[MAX_BUFS];
    int n_bufs;
};

/* lavapipe deadlocks under ASan with slow unwinding (see test-vk-backend.c). */
static bool asan_slow_unwind(void)
{
#if defined(__SANITIZE_ADDRESS__)
    const char *o = getenv("LSAN_OPTIONS");
    return o && strstr(o, "fast_unwind_on_malloc=0") != NULL;
#else
    return false;
#endif
}

static bool env_open(struct kenv *e)
{
    memset(e, 0, sizeof *e);
    if (asan_slow_unwind())
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
    tally_cpu_runs = 0;
    tally_cpu_worst = tally_kernel_worst = 0.0;
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

/* out[t][h] = softmax attention over the decoded cache rows, in double. */
static void reference(const struct kcase *c, const struct kvq_rot *rot, const float *q,
                      const uint8_t *kc, size_t krow, const uint8_t *vc, size_t vrow, float scale,
                      double *out)
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

/* Runs one case on Vulkan (and on the CPU where it supports the pair) and checks it. */
static void run_case(struct kenv *e, const struct kcase *c)
{
    int hd = c->hd, n = c->n_tok;
    size_t khb = kvq_head_bytes(c->kt, hd), vhb = kvq_head_bytes(c->vt, hd);
    size_t krow = HK * khb, vrow = HK * vhb;
    struct kvq_rot rot;
    CHECK_OK(kvq_rot_init(&rot, hd, SEED, c->layer));
    bool use_cpu = backend_device_supports_kv(e->dev[0], c->kt, c->vt);

    /* host data: the prefix rows (encoded here), the new q/k/v, qk-norm gains */
    uint8_t *kc = calloc(CTX, krow), *vc = calloc(CTX, vrow);
    size_t n_prefix = (size_t)c->pos0 * HK * (size_t)hd + 1; /* + 1: never malloc(0) */
    float *kp = gauss(n_prefix, 1.0), *vp = gauss(n_prefix, 1.0);
    float *q = gauss((size_t)n * H * hd, 1.0), *k = gauss((size_t)n * HK * hd, 1.0);
    float *v = gauss((size_t)n * HK * hd, 1.0), *g = gauss(2 * (size_t)hd, 0.3);
    float *out = calloc((size_t)n * H * hd, sizeof *out), *out_cpu = calloc((size_t)n * H * hd, 4);
    float *qr = malloc((size_t)n * H * hd * 4), *kr = malloc((size_t)n * HK * hd * 4);
    double *ref = malloc((size_t)n * H * hd * sizeof *ref);
    REQUIRE(kc && vc && kp && vp && q && k && v && g && out && out_cpu && qr && kr && ref);
    for (int j = 0; j < c->pos0; j++)
        for (int h = 0; h < HK; h++) {
            size_t x = ((size_t)j * HK + (size_t)h) * (size_t)hd;
            kvq_encode(c->kt, &rot, hd, kp + x, kc + (size_t)j * krow + (size_t)h * khb);
            kvq_encode(c->vt, &rot, hd, vp + x, vc + (size_t)j * vrow + (size_t)h * vhb);
        }
    for (int i = 0; i < 2 * hd; i++)
        g[i] += 1.0f;

    struct hearth_tensor tt[2][9];
    struct hearth_op ops[2];
    memset(ops, 0, sizeof ops);
    for (int d = 0; d < 2; d++) {
        if (d == 0 && !use_cpu)
            continue;
        hearth_dtype kdt = c->kt == KVQ_F16 ? HEARTH_DTYPE_F16 : HEARTH_DTYPE_I8;
        hearth_dtype vdt = c->vt == KVQ_F16 ? HEARTH_DTYPE_F16 : HEARTH_DTYPE_I8;
        struct hearth_tensor *t = tt[d];
        t[0] = mk(e, d, HEARTH_DTYPE_F32, H * hd, (size_t)H * hd * 4, n, q);
        t[1] = mk(e, d, HEARTH_DTYPE_F32, HK * hd, (size_t)HK * hd * 4, n, k);
        t[2] = mk(e, d, HEARTH_DTYPE_F32, HK * hd, (size_t)HK * hd * 4, n, v);
        t[3] = mk(e, d, kdt, c->kt == KVQ_F16 ? HK * hd : (int64_t)krow, krow, CTX, kc);
        t[4] = mk(e, d, vdt, c->vt == KVQ_F16 ? HK * hd : (int64_t)vrow, vrow, CTX, vc);
        t[5] = mk(e, d, HEARTH_DTYPE_F32, H * hd, (size_t)H * hd * 4, n, NULL);
        t[6] = mk(e, d, HEARTH_DTYPE_F32, hd, (size_t)hd * 4, 1, g);
        t[7] = mk(e, d, HEARTH_DTYPE_F32, hd, (size_t)hd * 4, 1, g + hd);
        ops[d].kind = HEARTH_OP_ATTENTION;
        ops[d].n_tok = n;
        struct hearth_op_attention *a = &ops[d].u.attn;
        a->q = t[0], a->k = t[1], a->v = t[2], a->k_cache = t[3], a->v_cache = t[4];
        a->out = t[5];
        if (c->qk_norm)
            a->q_norm = t[6], a->k_norm = t[7];
        a->n_head = H, a->n_head_kv = HK, a->head_dim = hd, a->n_rot = hd;
        a->rope_mode = c->layer % 2 ? HEARTH_ROPE_NEOX : HEARTH_ROPE_NORMAL;
        a->rope_base = 10000.0f, a->rope_freq_scale = 1.0f, a->norm_eps = 1e-6f;
        a->scale = 1.0f / sqrtf((float)hd), a->pos0 = c->pos0, a->window = c->window;
        a->k_type = c->kt, a->v_type = c->vt, a->layer = c->layer, a->kv_seed = SEED;
    }
    char name[48];
    kvq_pair_name(c->kt, c->vt, name, sizeof name);
    hearth_status st = backend_stream_run(e->s[1], &ops[1], 1);
    CHECK_MSG(st == HEARTH_OK, "%s d%d n%d pos%d: vulkan run failed", name, hd, n, c->pos0);
    CHECK_OK(backend_stream_synchronize(e->s[1]));
    if (st != HEARTH_OK)
        goto done;
    CHECK_OK(backend_buffer_get(tt[1][5].buf, 0, out, (size_t)n * H * hd * 4));
    CHECK_OK(backend_buffer_get(tt[1][0].buf, 0, qr, (size_t)n * H * hd * 4));
    CHECK_OK(backend_buffer_get(tt[1][1].buf, 0, kr, (size_t)n * HK * hd * 4));
    CHECK_OK(backend_buffer_get(tt[1][3].buf, 0, kc, CTX * krow));
    CHECK_OK(backend_buffer_get(tt[1][4].buf, 0, vc, CTX * vrow));

    /* 1. the encoder */
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

    /* 2. the kernel against the decoded cache */
    reference(c, &rot, qr, kc, krow, vc, vrow, 1.0f / sqrtf((float)hd), ref);
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
        CHECK_OK(backend_buffer_get(tt[0][5].buf, 0, out_cpu, (size_t)n * H * hd * 4));
        double mc = 0.0, ec = 0.0;
        for (size_t i = 0; i < (size_t)n * H * hd; i++) {
            mc = fmax(mc, fabs((double)out_cpu[i]));
            ec = fmax(ec, fabs((double)out[i] - (double)out_cpu[i]));
        }
        tally_cpu_runs++;
        tally_cpu_worst = fmax(tally_cpu_worst, ec / (cpu_tol(c->kt, c->vt) * mc));
        CHECK_MSG(ec <= cpu_tol(c->kt, c->vt) * mc, "%s d%d n%d pos%d: vs cpu %.3g of max %.3g",
                  name, hd, n, c->pos0, ec, mc);
    }
done:
    env_free_bufs(e);
    free(kc), free(vc), free(kp), free(vp), free(q), free(k), free(v), free(g);
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
                                  (uint32_t)(t + n)};
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
                struct kcase c = {pairs[pi][0], pairs[pi][1], hd, n, 37, 0, true, 3};
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
        {KVQ_ROT4, KVQ_ROT4, 128, 7, 37, 5, false, 11},
        {KVQ_Q4_0, KVQ_ROT3, 64, 7, 37, 5, true, 12},
        {KVQ_ROT3, KVQ_ROT3, 96, 7, 37, 0, false, 13},
        {KVQ_ROT4, KVQ_Q8_0, 96, 1, 20, 0, false, 14},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        run_case(&e, &c[i]);
    print_tally();
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
          TEST_CASE(mixed_types), TEST_CASE(window_and_pieces), TEST_CASE(supports_kv))

#else

TEST(vulkan_not_built)
{
    TEST_SKIP("skipped: no Vulkan device (built without Vulkan)");
}

TEST_MAIN(TEST_CASE(vulkan_not_built))

#endif
