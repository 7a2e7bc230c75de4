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
 *      vkq_cpu_tol (the two encoders may round a few codes differently).
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
 * supports_kv and supports_kv_window: which K/V pairs the device takes (all;
 * the exact window for every pair but f16/f16). The exact window and
 * ring-only layers (ATTENTION steps 5 and 6) are tests/test-vk-kvq-window.c.
 * Skips with "no Vulkan device" where there is none.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#ifdef HEARTH_WITH_VULKAN
#include "backend.h"
#include "cpu/attn-kvq.h"
#include "kv-quant.h"
#include "vk-kvq-fixtures.h"
#include "../vulkan/vk.h"

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
/* Cache rows of the flash-decoding cases (vulkan/attn-split.c's rule splits at 2 * 128). */
enum { CTX_LONG = 2200 };

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
struct kcase {
    enum kvq_type kt, vt;
    int hd, n_tok, pos0;
    uint32_t window;
    bool qk_norm;
    uint32_t layer;
    bool no_rope; /* rope_freq_scale 0: RoPE leaves q and k bit for bit */
    int pre_n;    /* > 0: a first batch of pre_n tokens at 0 writes the prefix (pos0 == pre_n) */
    int ctx;      /* cache rows: 0 for CTX, else <= CTX_LONG (long enough to split) */
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
    double s[CTX_LONG];
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
    const int n_rows = c->ctx ? c->ctx : CTX;
    struct kvq_rot rot;
    CHECK_OK(kvq_rot_init(&rot, hd, SEED, c->layer));
    bool use_cpu = backend_device_supports_kv(e->dev[0], c->kt, c->vt);
    const bool centred = c->kt != KVQ_F16;

    /* host data: the prefix rows (encoded here), the new q/k/v, qk-norm gains, k_aux */
    uint8_t *kc = calloc((size_t)n_rows, krow), *vc = calloc((size_t)n_rows, vrow);
    size_t n_prefix = (size_t)c->pos0 * HK * (size_t)hd + 1; /* + 1: never malloc(0) */
    size_t n_pre = (size_t)pn * HK * (size_t)hd + 1;
    float *kp = kenv_gauss(n_prefix, 1.0), *vp = kenv_gauss(n_prefix, 1.0);
    float *q = kenv_gauss((size_t)n * H * hd, 1.0), *k = kenv_gauss((size_t)n * HK * hd, 1.0);
    float *v = kenv_gauss((size_t)n * HK * hd, 1.0), *g = kenv_gauss(2 * (size_t)hd, 0.3);
    /* drawn only by the two-batch cases, so the other cases see the RNG stream they always had */
    float *pq = pn ? kenv_gauss((size_t)pn * H * hd, 1.0) : malloc(4);
    float *pk = pn ? kenv_gauss(n_pre, 1.0) : malloc(4);
    float *pv = pn ? kenv_gauss(n_pre, 1.0) : malloc(4);
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
        qkv[d][0] = kenv_mk(e, d, HEARTH_DTYPE_F32, H * hd, (size_t)H * hd * 4, n, q);
        qkv[d][1] = kenv_mk(e, d, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, n, k);
        qkv[d][2] = kenv_mk(e, d, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, n, v);
        qkv[d][3] = kenv_mk(e, d, HEARTH_DTYPE_F32, H * hd, (size_t)H * hd * 4, n, NULL);
        t[3] = kenv_mk(e, d, kdt, c->kt == KVQ_F16 ? KV : (int64_t)krow, krow, n_rows, kc);
        t[4] = kenv_mk(e, d, vdt, c->vt == KVQ_F16 ? KV : (int64_t)vrow, vrow, n_rows, vc);
        t[6] = kenv_mk(e, d, HEARTH_DTYPE_F32, hd, (size_t)hd * 4, 1, g);
        t[7] = kenv_mk(e, d, HEARTH_DTYPE_F32, hd, (size_t)hd * 4, 1, g + hd);
        t[8] = kenv_mk(e, d, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, 2, aux);
        fill_op(c, &ops[d], t, qkv[d], n, c->pos0);
        if (pn > 0) {
            pqkv[d][0] = kenv_mk(e, d, HEARTH_DTYPE_F32, H * hd, (size_t)H * hd * 4, pn, pq);
            pqkv[d][1] = kenv_mk(e, d, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, pn, pk);
            pqkv[d][2] = kenv_mk(e, d, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, pn, pv);
            pqkv[d][3] = kenv_mk(e, d, HEARTH_DTYPE_F32, H * hd, (size_t)H * hd * 4, pn, NULL);
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
    CHECK_OK(backend_buffer_get(tt[1][3].buf, 0, kc, (size_t)n_rows * krow));
    CHECK_OK(backend_buffer_get(tt[1][4].buf, 0, vc, (size_t)n_rows * vrow));
    CHECK_OK(backend_buffer_get(tt[1][8].buf, 0, aux_vk, 2 * (size_t)KV * 4));

    /* 4. key centring */
    if (centred && c->pos0 > 0) {
        CHECK_MSG(memcmp(aux, aux_vk, 2 * (size_t)KV * 4) == 0,
                  "%s pos%d: k_aux changed by a batch that does not write position 0", name,
                  c->pos0);
    } else if (centred) {
        CHECK_MSG(kenv_bits_differ(aux_vk + KV, kr, (size_t)KV) == 0,
                  "%s n%d: the sink is not the centred k[0]", name, n);
        if (n == 1) {
            float zero[2 * KVQ_MAX_HEAD_DIM] = {0};
            CHECK_MSG(kenv_bits_differ(aux_vk, zero, (size_t)KV) == 0,
                      "%s: mu of one token not 0", name);
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
        int bad = kenv_bits_differ(mu, aux_vk, (size_t)KV) +
                  kenv_bits_differ(sink, aux_vk + KV, (size_t)KV) +
                  kenv_bits_differ(kh, kr, (size_t)n * KV);
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
        tally_cpu_worst = fmax(tally_cpu_worst, ec / (vkq_cpu_tol(c->kt, c->vt) * mc));
        CHECK_MSG(ec <= vkq_cpu_tol(c->kt, c->vt) * mc, "%s d%d n%d pos%d: vs cpu %.3g of max %.3g",
                  name, hd, n, c->pos0, ec, mc);
    }
done:
    kenv_free_bufs(e);
    free(kc), free(vc), free(kp), free(vp), free(q), free(k), free(v), free(g);
    free(pq), free(pk), free(pv), free(aux), free(aux_vk), free(aux_cpu);
    free(out), free(out_cpu), free(qr), free(kr), free(ref);
}

/* Every pair of one K type with itself at head_dim hd: n_tok 1 and 7, pos0 0 and 37. */
static void same_types(int hd)
{
    VK_ENV_OPEN_OR_SKIP(e);
    test_rng_seed(7000 + (uint64_t)hd);
    for (int t = 0; t < KVQ_TYPE_COUNT; t++)
        for (int n = 1; n <= 7; n += 6)
            for (int pos0 = 0; pos0 <= 37; pos0 += 37) {
                struct kcase c = {(enum kvq_type)t, (enum kvq_type)t, hd, n, pos0, 0, false,
                                  (uint32_t)(t + n), false, 0, 0};
                run_case(&e, &c);
            }
    print_tally();
    vkq_env_close(&e);
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
    VK_ENV_OPEN_OR_SKIP(e);
    test_rng_seed(7100);
    static const enum kvq_type pairs[2][2] = {{KVQ_Q8_0, KVQ_ROT4}, {KVQ_ROT3, KVQ_F16}};
    for (int pi = 0; pi < 2; pi++)
        for (int hd = 64; hd <= 256; hd *= 2)
            for (int n = 1; n <= 7; n += 6) {
                struct kcase c = {pairs[pi][0], pairs[pi][1], hd, n, 37, 0, true, 3, false, 0, 0};
                run_case(&e, &c);
            }
    print_tally();
    vkq_env_close(&e);
}

/*
 * Sliding window (5 latest positions) over a prefix of 37, and head_dim 96
 * (two rotation pieces, 64 + 32, each with its own scale).
 */
TEST(window_and_pieces)
{
    VK_ENV_OPEN_OR_SKIP(e);
    test_rng_seed(7200);
    struct kcase c[] = {
        {KVQ_ROT4, KVQ_ROT4, 128, 7, 37, 5, false, 11, false, 0, 0},
        {KVQ_Q4_0, KVQ_ROT3, 64, 7, 37, 5, true, 12, false, 0, 0},
        {KVQ_ROT3, KVQ_ROT3, 96, 7, 37, 0, false, 13, false, 0, 0},
        {KVQ_ROT4, KVQ_Q8_0, 96, 1, 20, 0, false, 14, false, 0, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        run_case(&e, &c[i]);
    print_tally();
    vkq_env_close(&e);
}

/*
 * Key centring checked bit for bit (RoPE off, no qk-norm: the kernels see k
 * itself): every non-f16 K type as a first batch of 7, of 1 (mu = 0) and of
 * 70 tokens (the mean stops at CPU_KVQ_MEAN_N), and a second batch at 37
 * over host-set k_aux (mu reused as is).
 */
TEST(centring_exact)
{
    VK_ENV_OPEN_OR_SKIP(e);
    test_rng_seed(7300);
    static const int ns[3] = {7, 1, 70};
    for (int t = KVQ_Q8_0; t < KVQ_TYPE_COUNT; t++) {
        for (int i = 0; i < 3; i++) {
            struct kcase c = {(enum kvq_type)t, KVQ_Q8_0, 64, ns[i], 0, 0, false,
                              (uint32_t)(20 + t), true, 0, 0};
            run_case(&e, &c);
        }
        struct kcase c2 = {(enum kvq_type)t, KVQ_F16, 128, 5, 37, 0, false, 30, true, 0, 0};
        run_case(&e, &c2);
    }
    print_tally();
    vkq_env_close(&e);
}

/*
 * Two batches of one sequence through the op itself: 9 tokens at 0 fix mu
 * and the sink, 4 at 9 reuse them (k_aux byte-equal after the second) and
 * attend to the sink; with RoPE and qk-norm, on both backends.
 */
TEST(two_batches)
{
    VK_ENV_OPEN_OR_SKIP(e);
    test_rng_seed(7400);
    struct kcase c[] = {
        {KVQ_ROT4, KVQ_ROT4, 128, 4, 9, 0, true, 21, false, 9, 0},
        {KVQ_Q4_0, KVQ_ROT3, 64, 4, 9, 0, false, 22, false, 9, 0},
        {KVQ_ROT3, KVQ_F16, 64, 1, 9, 0, true, 23, true, 9, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        run_case(&e, &c[i]);
    print_tally();
    vkq_env_close(&e);
}

/*
 * Flash-decoding by the rule (vulkan/attn-split.c): caches of CTX_LONG rows,
 * batches of 1 and 7 tokens at 2093 (17 splits of up to 124 positions; 2
 * under a 300-position window), every type pair above: each type with
 * itself, the mixed pairs, a window, head_dim 96's two pieces, the sink
 * (position 0 in piece 0 only). The bounds are those of the single pass:
 * the split reorders the softmax sums (see test-vulkan.c attention_split).
 */
TEST(split_long)
{
    VK_ENV_OPEN_OR_SKIP(e);
    test_rng_seed(7500);
    CHECK(vk_attn_pick_split(1, H, CTX_LONG) > 1 && vk_attn_pick_split(7, H, CTX_LONG) > 1 &&
          vk_attn_pick_split(7, H, 300) > 1);
    for (int t = 0; t < KVQ_TYPE_COUNT; t++)
        for (int n = 1; n <= 7; n += 6) {
            struct kcase c = {(enum kvq_type)t, (enum kvq_type)t, 64, n, 2093, 0, false,
                              (uint32_t)(40 + t), false, 0, CTX_LONG};
            run_case(&e, &c);
        }
    struct kcase c[] = {
        {KVQ_Q8_0, KVQ_ROT4, 128, 1, 2093, 0, true, 3, false, 0, CTX_LONG},
        {KVQ_ROT3, KVQ_F16, 128, 7, 2093, 0, true, 3, false, 0, CTX_LONG},
        {KVQ_ROT4, KVQ_ROT4, 128, 7, 2093, 300, false, 11, false, 0, CTX_LONG},
        {KVQ_Q4_0, KVQ_ROT3, 64, 1, 2093, 300, true, 12, false, 0, CTX_LONG},
        {KVQ_ROT3, KVQ_ROT3, 96, 7, 2093, 0, false, 13, false, 0, CTX_LONG},
        {KVQ_ROT4, KVQ_Q8_0, 256, 1, 700, 0, false, 14, false, 0, CTX_LONG},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        run_case(&e, &c[i]);
    print_tally();
    vkq_env_close(&e);
}

/*
 * Forced counts (HEARTH_VULKAN_ATTN_SPLIT, read at stream creation) on the
 * short cases: 64 splits over at most 44 positions (most pieces empty,
 * including every piece of a 1-token first batch but piece 0), and 5
 * (uneven pieces), over each type with itself, the mixed pairs, the window
 * and the two-batch cases.
 */
TEST(split_forced)
{
    static const char *const counts[2] = {"64", "5"};
    for (int ci = 0; ci < 2; ci++) {
        VK_ENV_OPEN_WITH_OR_SKIP(e, vkq_env_open_split(&e, counts[ci]));
        test_rng_seed(7550 + (uint64_t)ci);
        for (int t = 0; t < KVQ_TYPE_COUNT; t++)
            for (int pos0 = 0; pos0 <= 37; pos0 += 37) {
                struct kcase c = {(enum kvq_type)t, (enum kvq_type)t, 64, pos0 ? 7 : 1, pos0, 0,
                                  false, (uint32_t)(50 + t), false, 0, 0};
                run_case(&e, &c);
            }
        struct kcase c[] = {
            {KVQ_Q8_0, KVQ_ROT4, 128, 1, 37, 0, true, 3, false, 0, 0},
            {KVQ_ROT3, KVQ_F16, 64, 7, 37, 0, true, 3, false, 0, 0},
            {KVQ_ROT4, KVQ_ROT4, 128, 7, 37, 5, false, 11, false, 0, 0},
            {KVQ_ROT3, KVQ_ROT3, 96, 7, 37, 0, false, 13, false, 0, 0},
            {KVQ_Q4_0, KVQ_ROT3, 64, 4, 9, 0, false, 22, false, 9, 0},
        };
        for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
            run_case(&e, &c[i]);
        print_tally();
        vkq_env_close(&e);
    }
}

TEST(supports_kv_window)
{
    VK_ENV_OPEN_OR_SKIP(e);
    for (int kt = 0; kt < KVQ_TYPE_COUNT; kt++)
        for (int vt = 0; vt < KVQ_TYPE_COUNT; vt++)
            CHECK_MSG(backend_device_supports_kv_window(e.dev[1], kt, vt) ==
                          (kt != KVQ_F16 || vt != KVQ_F16), "pair %d/%d", kt, vt);
    CHECK(!backend_device_supports_kv_window(e.dev[1], KVQ_TYPE_COUNT, 0));
    vkq_env_close(&e);
}

TEST(supports_kv)
{
    VK_ENV_OPEN_OR_SKIP(e);
    for (int kt = 0; kt < KVQ_TYPE_COUNT; kt++)
        for (int vt = 0; vt < KVQ_TYPE_COUNT; vt++)
            CHECK_MSG(backend_device_supports_kv(e.dev[1], kt, vt), "pair %d/%d", kt, vt);
    CHECK(!backend_device_supports_kv(e.dev[1], KVQ_TYPE_COUNT, 0));
    CHECK(!backend_device_supports_kv(e.dev[1], 0, -1));
    vkq_env_close(&e);
}

TEST_MAIN(TEST_CASE(same_types_d64), TEST_CASE(same_types_d128), TEST_CASE(same_types_d256),
          TEST_CASE(mixed_types), TEST_CASE(window_and_pieces), TEST_CASE(centring_exact),
          TEST_CASE(two_batches), TEST_CASE(split_long), TEST_CASE(split_forced),
          TEST_CASE(supports_kv), TEST_CASE(supports_kv_window))

#else

TEST(vulkan_not_built)
{
    TEST_SKIP("skipped: no Vulkan device (built without Vulkan)");
}

TEST_MAIN(TEST_CASE(vulkan_not_built))

#endif
