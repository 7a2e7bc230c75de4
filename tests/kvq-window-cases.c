/* kvq-window-cases: see kvq-window-cases.h. */
#include "kvq-window-cases.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "f16.h"
#include "kvq-ref.h"
#include "test.h"

/* The shape of every case: H query heads over HK KV heads, CTX cache rows, rings of <= MAXW. */
enum { H = 4, HK = 2, CTX = 80, MAXW = 40 };

/* One device's state of a layer: caches (absent: zero tensors), k_aux, rings; decode tensors. */
struct kvdev {
    struct hearth_tensor kc, vc, aux, kr, vr, rp, dec[4];
};

/* On device d: kt/vt caches of CTX rows (if caches), k_aux and W-row rings, tags at -1. */
static void kvdev_init(struct kenv *e, int d, enum kvq_type kt, enum kvq_type vt, int hd, int hk,
                       int W, bool caches, struct kvdev *s)
{
    const int KV = hk * hd;
    size_t krow = (size_t)hk * kvq_head_bytes(kt, hd), vrow = (size_t)hk * kvq_head_bytes(vt, hd);
    int32_t tags[MAXW];
    for (int i = 0; i < MAXW; i++)
        tags[i] = -1;
    memset(s, 0, sizeof *s);
    if (caches) {
        s->kc = kenv_mk(e, d, kt == KVQ_F16 ? HEARTH_DTYPE_F16 : HEARTH_DTYPE_I8,
                        kt == KVQ_F16 ? KV : (int64_t)krow, krow, CTX, NULL);
        s->vc = kenv_mk(e, d, vt == KVQ_F16 ? HEARTH_DTYPE_F16 : HEARTH_DTYPE_I8,
                        vt == KVQ_F16 ? KV : (int64_t)vrow, vrow, CTX, NULL);
    }
    s->aux = kenv_mk(e, d, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, 2, NULL);
    s->kr = kenv_mk(e, d, HEARTH_DTYPE_F16, KV, (size_t)KV * 2, W, NULL);
    s->vr = kenv_mk(e, d, HEARTH_DTYPE_F16, KV, (size_t)KV * 2, W, NULL);
    s->rp = kenv_mk(e, d, HEARTH_DTYPE_I32, W, (size_t)W * 4, 1, tags);
}

/*
 * An ATTENTION op of n tokens at pos0 over s and the batch's q/k/v/out: H
 * query heads over hk, sliding window `window` (0: none), exact window W.
 */
static void kv_op(const struct kvqw_backend *be, enum kvq_type kt, enum kvq_type vt, int hd,
                  int hk, int W, uint32_t window, uint32_t layer, const struct kvdev *s,
                  const struct hearth_tensor *qkv, int n, int pos0, struct hearth_op *op)
{
    memset(op, 0, sizeof *op);
    op->kind = HEARTH_OP_ATTENTION;
    op->n_tok = n;
    struct hearth_op_attention *a = &op->u.attn;
    a->q = qkv[0], a->k = qkv[1], a->v = qkv[2], a->out = qkv[3];
    a->k_cache = s->kc, a->v_cache = s->vc;
    if (kt != KVQ_F16)
        a->k_aux = s->aux;
    a->n_head = H, a->n_head_kv = hk, a->head_dim = hd, a->n_rot = hd;
    a->rope_mode = layer % 2 ? HEARTH_ROPE_NEOX : HEARTH_ROPE_NORMAL;
    a->rope_base = 10000.0f, a->rope_freq_scale = 1.0f, a->norm_eps = 1e-6f;
    a->scale = 1.0f / sqrtf((float)hd), a->pos0 = pos0, a->window = window;
    a->k_type = kt, a->v_type = vt, a->layer = layer, a->kv_seed = be->kv_seed;
    a->kv_window = (uint32_t)W, a->k_ring = s->kr, a->v_ring = s->vr, a->ring_pos = s->rp;
}

/*
 * A batch's q/k/v/out tensors on device d, n rows of qd/kv floats from q/k/v:
 * a decode step (n == 1) goes through s->dec, made fresh unless `refill`
 * (then its inputs are rewritten, so the op's recording can replay); other
 * batches get fresh tensors in fresh. Returns the four.
 */
static struct hearth_tensor *batch(struct kenv *e, int d, struct kvdev *s, bool refill, int n,
                                   int qd, int kv, const float *q, const float *k, const float *v,
                                   struct hearth_tensor fresh[4])
{
    struct hearth_tensor *t = n == 1 ? s->dec : fresh;
    if (n == 1 && refill) {
        CHECK_OK(backend_buffer_set(t[0].buf, 0, q, (size_t)qd * 4));
        CHECK_OK(backend_buffer_set(t[1].buf, 0, k, (size_t)kv * 4));
        CHECK_OK(backend_buffer_set(t[2].buf, 0, v, (size_t)kv * 4));
        return t;
    }
    t[0] = kenv_mk(e, d, HEARTH_DTYPE_F32, qd, (size_t)qd * 4, n, q);
    t[1] = kenv_mk(e, d, HEARTH_DTYPE_F32, kv, (size_t)kv * 4, n, k);
    t[2] = kenv_mk(e, d, HEARTH_DTYPE_F32, kv, (size_t)kv * 4, n, v);
    t[3] = kenv_mk(e, d, HEARTH_DTYPE_F32, qd, (size_t)qd * 4, n, NULL);
    return t;
}

/* CPU backend runs compared, and the worst distance of one (of its tolerance). */
struct cpu_tally {
    int runs;
    double worst;
};

/*
 * The device's out against the CPU backend's outc (n floats): max |outc| and
 * max |out - outc| into *mc and *ec, tallied in ct; true if ec <= tol * mc.
 */
static bool vs_cpu(const float *out, const float *outc, size_t n, double tol,
                   struct cpu_tally *ct, double *mc, double *ec)
{
    *mc = *ec = 0.0;
    for (size_t i = 0; i < n; i++) {
        *mc = fmax(*mc, fabs((double)outc[i]));
        *ec = fmax(*ec, fabs((double)out[i] - (double)outc[i]));
    }
    ct->runs++;
    ct->worst = fmax(ct->worst, *ec / (tol * *mc));
    return *ec <= tol * *mc;
}

/* ==== the exact window (core/backend.h ATTENTION step 5) ===================== */

/* Worst kernel error (of max |ref|) of the window cases; ring words checked / differing. */
struct win_tally {
    double worst, ring_cpu;
    int ring_words, ring_bad;
    struct cpu_tally cpu;
};

/* The contract's ring (host model): W rows of KV halves per cache, tags. */
struct wring {
    uint16_t k[MAXW][HK * 64], v[MAXW][HK * 64];
    int32_t pos[MAXW];
};

/*
 * One window sequence of kt/vt at W: batches (0, 9), (9, max(W + 3, 4)) (more
 * than W tokens after earlier ones), two decode steps through the same
 * tensors (the second replays the first's recording), then a rewind of 4
 * tokens at end - 7 (older slots hold later, discarded positions: stale tags
 * must read the decoded rows). After each batch: out against the contract's
 * double reference; the ring and its tags bit for bit against the contract's
 * (built from the op's own read-back centred k and v); where the CPU backend
 * has the window, out against its within be->cpu_tol, its tags equal, and
 * (be->cpu_ring_values) its ring within an f16 step.
 */
static void win_case(struct kenv *e, const struct kvqw_backend *be, struct win_tally *ty,
                     enum kvq_type kt, enum kvq_type vt, int W, uint32_t layer)
{
    const int hd = 64, KV = HK * hd, QD = H * hd;
    size_t krow = HK * kvq_head_bytes(kt, hd), vrow = HK * kvq_head_bytes(vt, hd);
    const bool centred = kt != KVQ_F16;
    bool use_cpu = backend_device_supports_kv_window(e->dev[0], kt, vt);
    struct kvq_rot rot;
    CHECK_OK(kvq_rot_init(&rot, hd, be->kv_seed, layer));
    char name[48];
    kvq_pair_name(kt, vt, name, sizeof name);
    int nb = W + 3 > 4 ? W + 3 : 4, end = 9 + nb + 2;
    const int sched[5][2] = {{0, 9}, {9, nb}, {9 + nb, 1}, {10 + nb, 1}, {end - 7, 4}};
    struct kvdev wd[2];
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
            kvdev_init(e, d, kt, vt, hd, HK, W, true, &wd[d]);
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
            struct hearth_tensor fresh[4];
            /* the second decode step (b 3) goes through the first's tensors */
            const struct hearth_tensor *t = batch(e, d, &wd[d], b == 3, n, QD, KV, q, k, v, fresh);
            kv_op(be, kt, vt, hd, HK, W, 0, layer, &wd[d], t, n, pos0, &op[d]);
        }
        uint64_t rs0 = 0, rs1 = 0;
        const bool counted = b == 3 && be->replays && be->replays(e->s[1], &rs0);
        hearth_status st = backend_stream_run(e->s[1], &op[1], 1);
        CHECK_MSG(st == HEARTH_OK, "%s W%d batch %d: %s run failed", name, W, b, be->name);
        CHECK_OK(backend_stream_synchronize(e->s[1]));
        if (st != HEARTH_OK)
            break;
        if (counted && be->replays(e->s[1], &rs1)) /* the second decode step */
            CHECK_MSG(rs1 == rs0 + 1, "%s W%d: the decode step was not replayed (%llu -> %llu)",
                      name, W, (unsigned long long)rs0, (unsigned long long)rs1);
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
        ty->worst = fmax(ty->worst, err / mx);
        CHECK_MSG(err <= be->ref_rel * mx + be->ref_abs, "%s W%d batch %d (%d at %d): kernel error %.3g of max %.3g",
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
            ty->ring_words += 2 * KV + 1;
        }
        ty->ring_bad += bad;
        CHECK_MSG(bad == 0, "%s W%d batch %d: %d ring halves/tags differ from the contract's",
                  name, W, b, bad);
        if (!use_cpu)
            continue;
        /* the CPU backend's op on the same inputs */
        CHECK_OK(backend_stream_run(e->s[0], &op[0], 1));
        CHECK_OK(backend_stream_synchronize(e->s[0]));
        CHECK_OK(backend_buffer_get(op[0].u.attn.out.buf, 0, outc, (size_t)n * QD * 4));
        double mc, ec;
        CHECK_MSG(vs_cpu(out, outc, (size_t)n * QD, be->cpu_tol(kt, vt), &ty->cpu, &mc, &ec),
                  "%s W%d batch %d: vs cpu %.3g of max %.3g", name, W, b, ec, mc);
        struct wring *cr = cring;
        CHECK_OK(backend_buffer_get(wd[0].kr.buf, 0, cr->k, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(wd[0].vr.buf, 0, cr->v, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(wd[0].rp.buf, 0, cr->pos, (size_t)W * 4));
        int tb = 0;
        double rw = 0.0;
        for (int sl = 0; sl < W; sl++) {
            tb += cr->pos[sl] != model->pos[sl];
            for (int i = 0; be->cpu_ring_values && model->pos[sl] >= 0 && i < KV; i++) {
                float a0 = f16_to_f32(model->k[sl][i]), a1 = f16_to_f32(cr->k[sl][i]);
                float b0 = f16_to_f32(model->v[sl][i]), b1 = f16_to_f32(cr->v[sl][i]);
                rw = fmax(rw, fabs((double)a0 - (double)a1) / (1e-3 + fabs((double)a0)));
                rw = fmax(rw, fabs((double)b0 - (double)b1) / (1e-3 + fabs((double)b0)));
            }
        }
        ty->ring_cpu = fmax(ty->ring_cpu, rw);
        CHECK_MSG(tb == 0 && rw <= 2e-3, "%s W%d batch %d: cpu ring: %d tags differ, values by "
                  "%.3g (relative)", name, W, b, tb, rw);
    }
    kenv_free_bufs(e);
    free(model), free(cring), free(kc), free(vc), free(q), free(k), free(v), free(out);
    free(outc), free(qr), free(kr), free(aux), free(tmp), free(xk), free(xv), free(ref);
}

/* The brief's pairs at W 1, 5 and 40 (the last takes a 43-token batch). */
void kvqw_exact_window(struct kenv *e, const struct kvqw_backend *be)
{
    struct win_tally ty = {0};
    static const enum kvq_type pairs[4][2] = {
        {KVQ_ROT4, KVQ_ROT4}, {KVQ_Q8_0, KVQ_ROT4}, {KVQ_Q4_0, KVQ_Q4_0}, {KVQ_ROT3, KVQ_F16}};
    static const int ws[3] = {1, 5, 40};
    for (int p = 0; p < 4; p++)
        for (int w = 0; w < 3; w++)
            win_case(e, be, &ty, pairs[p][0], pairs[p][1], ws[w], (uint32_t)(30 + 3 * p + w));
    printf("  window: kernel worst %.3g of max |ref|; ring %d words, %d differ from the "
           "contract's; cpu runs %d, worst %.3g of tolerance, ring %.3g relative\n",
           ty.worst, ty.ring_words, ty.ring_bad, ty.cpu.runs, ty.cpu.worst, ty.ring_cpu);
}

/* ==== ring-only layers (core/backend.h ATTENTION step 6) ===================== */

enum { RO_CALLS = 19, RO_POS = 46, RO_SWA = 16, RO_MAXW = 20 };

/* The script: a 24-token prefill, decode steps 24..40 (the ring wraps), 5 tokens at 41. */
static void ro_call(int c, int *pos0, int *n)
{
    *pos0 = c == 0 ? 0 : 23 + c;
    *n = c == 0 ? 24 : c == RO_CALLS - 1 ? 5 : 1;
}

/* What one run leaves after each call: out by position; rings, tags and k_aux per call. */
struct ro_trace {
    float *out;      /* [RO_POS][H * hd] */
    uint16_t *k, *v; /* [RO_CALLS][W][hk * hd] */
    int32_t *tags;   /* [RO_CALLS][W] */
    float *aux;      /* [RO_CALLS][2][hk * hd] */
};

/*
 * Runs the script once on the device under test, caches present or absent,
 * fresh state, inputs q/k/v ([RO_POS] rows) by position; the decode steps
 * share one set of tensors, so all but the first replay a recording (where
 * be->replays counts them). Returns false when a call failed (checked here).
 */
static bool ro_run(struct kenv *e, const struct kvqw_backend *be, enum kvq_type kt,
                   enum kvq_type vt, int hd, int hk, int W, uint32_t layer, bool present,
                   const float *q, const float *k, const float *v, struct ro_trace *tr)
{
    const int KV = hk * hd, QD = H * hd;
    struct kvdev s;
    kvdev_init(e, 1, kt, vt, hd, hk, W, present, &s);
    uint64_t rs0 = 0, rs1 = 0;
    const bool counted = be->replays && be->replays(e->s[1], &rs0);
    for (int c = 0; c < RO_CALLS; c++) {
        int pos0, n;
        ro_call(c, &pos0, &n);
        struct hearth_tensor fresh[4];
        const size_t r = (size_t)pos0;
        const struct hearth_tensor *t =
            batch(e, 1, &s, c > 1, n, QD, KV, q + r * QD, k + r * KV, v + r * KV, fresh);
        struct hearth_op op;
        kv_op(be, kt, vt, hd, hk, W, RO_SWA, layer, &s, t, n, pos0, &op);
        hearth_status st = backend_stream_run(e->s[1], &op, 1);
        CHECK_MSG(st == HEARTH_OK, "caches %s, call %d (%d at %d): %s",
                  present ? "present" : "absent", c, n, pos0, hearth_last_error());
        if (st != HEARTH_OK || backend_stream_synchronize(e->s[1]) != HEARTH_OK)
            return false;
        CHECK_OK(backend_buffer_get(t[3].buf, 0, tr->out + (size_t)pos0 * QD, (size_t)n * QD * 4));
        CHECK_OK(backend_buffer_get(s.kr.buf, 0, tr->k + (size_t)c * W * KV, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(s.vr.buf, 0, tr->v + (size_t)c * W * KV, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(s.rp.buf, 0, tr->tags + (size_t)c * W, (size_t)W * 4));
        CHECK_OK(backend_buffer_get(s.aux.buf, 0, tr->aux + (size_t)c * 2 * KV,
                                    (size_t)2 * KV * 4));
    }
    if (counted && be->replays(e->s[1], &rs1))
        CHECK_MSG(rs1 >= rs0 + 15, "caches %s: %llu of 17 decode steps replayed",
                  present ? "present" : "absent", (unsigned long long)(rs1 - rs0));
    return true;
}

/*
 * kt/vt at head_dim hd over hk KV heads, sliding window RO_SWA, exact window
 * W >= RO_SWA: the script with caches present, then absent (fresh rings and
 * k_aux each time). Step 6 says absent changes nothing when the ring covers
 * the window (the codes are never read), so every output float, ring half,
 * tag and k_aux float must be bit-identical after every call. The present
 * run's tags must also be the contract's (slot p % W holds the last p
 * written), so the rings compared are live, and its outputs finite.
 */
static void ro_case(struct kenv *e, const struct kvqw_backend *be, enum kvq_type kt,
                    enum kvq_type vt, int hd, int hk, int W, uint32_t layer)
{
    const int KV = hk * hd, QD = H * hd;
    char name[48];
    kvq_pair_name(kt, vt, name, sizeof name);
    float *q = kenv_gauss((size_t)RO_POS * QD, 1.0), *k = kenv_gauss((size_t)RO_POS * KV, 1.0);
    float *v = kenv_gauss((size_t)RO_POS * KV, 1.0);
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
    for (int i = 0; ok && i < RO_POS * KV; i++)
        k[i] += 0.3f; /* a key mean for step 3 to take out */
    CHECK_MSG(ok, "out of memory");
    /* tr[0]: caches present, tr[1]: absent */
    ok = ok && ro_run(e, be, kt, vt, hd, hk, W, layer, true, q, k, v, &tr[0]);
    kenv_free_bufs(e);
    ok = ok && ro_run(e, be, kt, vt, hd, hk, W, layer, false, q, k, v, &tr[1]);
    kenv_free_bufs(e);
    int32_t model[RO_MAXW];
    for (int i = 0; i < W; i++)
        model[i] = -1;
    int finite = 0;
    for (int c = 0; ok && c < RO_CALLS; c++) {
        int pos0, n;
        ro_call(c, &pos0, &n);
        for (int t = 0; t < n; t++)
            model[(pos0 + t) % W] = pos0 + t;
        size_t o0 = (size_t)pos0 * QD, r0 = (size_t)c * W * KV;
        int bad_out = kenv_bits_differ(tr[0].out + o0, tr[1].out + o0, (size_t)n * QD);
        int bad_ring = 0;
        for (size_t i = r0; i < r0 + (size_t)W * KV; i++)
            bad_ring += (tr[0].k[i] != tr[1].k[i]) + (tr[0].v[i] != tr[1].v[i]);
        int bad_tags = 0, bad_model = 0;
        for (int i = 0; i < W; i++) {
            bad_tags += tr[0].tags[c * W + i] != tr[1].tags[c * W + i];
            bad_model += tr[0].tags[c * W + i] != model[i];
        }
        int bad_aux = kenv_bits_differ(tr[0].aux + (size_t)c * 2 * KV,
                                      tr[1].aux + (size_t)c * 2 * KV, (size_t)2 * KV);
        for (size_t i = o0; i < o0 + (size_t)n * QD; i++)
            finite += isfinite(tr[0].out[i]) && tr[0].out[i] != 0.0f;
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

/* An op with absent caches that breaks step 6's preconditions: INVALID_ARG naming the window. */
static void ro_bad(struct kenv *e, const struct kvqw_backend *be, enum kvq_type kt,
                   enum kvq_type vt, int W, uint32_t window, bool v_cache, const char *what)
{
    const int hd = 64, KV = HK * hd, QD = H * hd;
    float *q = kenv_gauss((size_t)QD, 1.0), *k = kenv_gauss((size_t)KV, 1.0);
    float *v = kenv_gauss((size_t)KV, 1.0);
    REQUIRE(q && k && v);
    struct kvdev s;
    kvdev_init(e, 1, kt, vt, hd, HK, W, false, &s);
    if (v_cache)
        s.vc = kenv_mk(e, 1, HEARTH_DTYPE_I8, (int64_t)HK * (int64_t)kvq_head_bytes(vt, hd),
                       (size_t)HK * kvq_head_bytes(vt, hd), CTX, NULL);
    struct hearth_tensor t[4] = {
        kenv_mk(e, 1, HEARTH_DTYPE_F32, QD, (size_t)QD * 4, 1, q),
        kenv_mk(e, 1, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, 1, k),
        kenv_mk(e, 1, HEARTH_DTYPE_F32, KV, (size_t)KV * 4, 1, v),
        kenv_mk(e, 1, HEARTH_DTYPE_F32, QD, (size_t)QD * 4, 1, NULL),
    };
    struct hearth_op op;
    kv_op(be, kt, vt, hd, HK, W, window, 50, &s, t, 1, 0, &op);
    hearth_status st = backend_stream_run(e->s[1], &op, 1);
    const char *msg = hearth_last_error();
    CHECK_MSG(st == HEARTH_ERR_INVALID_ARG && msg && strstr(msg, "cache"),
              "%s: status %d, message '%s'", what, (int)st, msg ? msg : "");
    if (st == HEARTH_OK)
        CHECK_OK(backend_stream_synchronize(e->s[1]));
    kenv_free_bufs(e);
    free(q), free(k), free(v);
}

/* rot4/rot4 and q8_0/rot4 at d 64 (2 KV heads) and 256 (1, as Gemma 3), W 16 and 20. */
void kvqw_ring_only(struct kenv *e, const struct kvqw_backend *be)
{
    static const enum kvq_type pairs[2][2] = {{KVQ_ROT4, KVQ_ROT4}, {KVQ_Q8_0, KVQ_ROT4}};
    static const int ws[2] = {RO_SWA, 20};
    for (int p = 0; p < 2; p++)
        for (int d = 0; d < 2; d++)
            for (int w = 0; w < 2; w++)
                ro_case(e, be, pairs[p][0], pairs[p][1], d ? 256 : 64, d ? 1 : HK, ws[w],
                        (uint32_t)(40 + 4 * p + 2 * d + w));
    ro_bad(e, be, KVQ_ROT4, KVQ_ROT4, 12, RO_SWA, false, "kv_window 12 < window 16");
    ro_bad(e, be, KVQ_Q8_0, KVQ_ROT4, 20, 0, false, "window 0 (full attention)");
    ro_bad(e, be, KVQ_ROT4, KVQ_Q8_0, 20, RO_SWA, true, "k_cache absent, v_cache present");
}

/* ==== ring-only layers over an f16/f16 cache (step 6 with both types f16) ====== */

/* Worst kernel error (of max |ref|), worst cpu distance (of tolerance); ring words checked. */
struct rf_tally {
    double worst;
    int ring_words, cpu_ring_bad;
    struct cpu_tally cpu;
};

/*
 * The f16/f16 ring-only layer at head_dim hd over hk KV heads, sliding window
 * RO_SWA, exact window W: the ring_only script on the device under test and
 * on the CPU backend (fresh rings, no caches, no k_aux), decode steps through
 * shared tensors (replayed where be->replays counts them). After every call:
 *   - the device's ring and tags bit for bit against the contract's: slot p % W
 *     holds f32_to_f16 of position p's k (read back after the op's RoPE) and
 *     v, tag p, for the latest p written; untouched slots stay -1;
 *   - the device's output against a double reference over those same f16
 *     rows and the op's own RoPE'd q, window [p - RO_SWA + 1, p] (be->ref_rel
 *     of max, + be->ref_abs);
 *   - the device's output against the CPU backend's op on the same inputs,
 *     within be->cpu_tol(f16, f16) of max |out|, the CPU's tags equal and its
 *     ring halves equal but where the two RoPEs round a half differently.
 */
static void rf_case(struct kenv *e, const struct kvqw_backend *be, struct rf_tally *ty, int hd,
                    int hk, int W, uint32_t layer)
{
    const int KV = hk * hd, QD = H * hd, NMAX = 24;
    float *q = kenv_gauss((size_t)RO_POS * QD, 1.0), *k = kenv_gauss((size_t)RO_POS * KV, 1.0);
    float *v = kenv_gauss((size_t)RO_POS * KV, 1.0);
    float *out = malloc((size_t)NMAX * QD * 4), *outc = malloc((size_t)NMAX * QD * 4);
    float *qr = malloc((size_t)NMAX * QD * 4), *kr = malloc((size_t)NMAX * KV * 4);
    uint16_t *xk = malloc((size_t)RO_POS * KV * 2), *xv = malloc((size_t)RO_POS * KV * 2);
    uint16_t *rk = malloc((size_t)W * KV * 2), *rv = malloc((size_t)W * KV * 2);
    double *ref = malloc((size_t)NMAX * QD * sizeof *ref), *sc = malloc(RO_SWA * sizeof *sc);
    REQUIRE(q && k && v && out && outc && qr && kr && xk && xv && rk && rv && ref && sc);
    CHECK_MSG(backend_device_supports_kv_ring_only(e->dev[1], KVQ_F16, KVQ_F16),
              "%s: no f16/f16 ring-only layers", be->name);
    const bool use_cpu = backend_device_supports_kv_ring_only(e->dev[0], KVQ_F16, KVQ_F16);
    CHECK_MSG(use_cpu, "the CPU backend lacks f16/f16 ring-only layers");
    int32_t tags[RO_MAXW], model[RO_MAXW], rt[RO_MAXW];
    for (int i = 0; i < RO_MAXW; i++)
        tags[i] = model[i] = -1;
    struct kvdev s[2];
    memset(s, 0, sizeof s);
    for (int d = 0; d < 2; d++) {
        s[d].kr = kenv_mk(e, d, HEARTH_DTYPE_F16, KV, (size_t)KV * 2, W, NULL);
        s[d].vr = kenv_mk(e, d, HEARTH_DTYPE_F16, KV, (size_t)KV * 2, W, NULL);
        s[d].rp = kenv_mk(e, d, HEARTH_DTYPE_I32, W, (size_t)W * 4, 1, tags);
    }
    uint64_t rs0 = 0, rs1 = 0;
    const bool counted = be->replays && be->replays(e->s[1], &rs0);
    for (int c = 0; c < RO_CALLS; c++) {
        int pos0, n;
        ro_call(c, &pos0, &n);
        const float *qs = q + (size_t)pos0 * QD, *ks = k + (size_t)pos0 * KV;
        const float *vs = v + (size_t)pos0 * KV;
        struct hearth_op op[2];
        struct hearth_tensor fresh[2][4];
        for (int d = 0; d < 2; d++) {
            const struct hearth_tensor *t =
                batch(e, d, &s[d], c > 1, n, QD, KV, qs, ks, vs, fresh[d]);
            kv_op(be, KVQ_F16, KVQ_F16, hd, hk, W, RO_SWA, layer, &s[d], t, n, pos0, &op[d]);
        }
        hearth_status st = backend_stream_run(e->s[1], &op[1], 1);
        CHECK_MSG(st == HEARTH_OK, "f16 d%d W%d call %d (%d at %d): %s", hd, W, c, n, pos0,
                  hearth_last_error());
        if (st != HEARTH_OK || backend_stream_synchronize(e->s[1]) != HEARTH_OK)
            break;
        const struct hearth_op_attention *a = &op[1].u.attn;
        CHECK_OK(backend_buffer_get(a->out.buf, 0, out, (size_t)n * QD * 4));
        CHECK_OK(backend_buffer_get(a->q.buf, 0, qr, (size_t)n * QD * 4));
        CHECK_OK(backend_buffer_get(a->k.buf, 0, kr, (size_t)n * KV * 4));
        /* the contract's rows: k after the op's RoPE and v, rounded to f16 */
        for (size_t i = 0; i < (size_t)n * KV; i++) {
            xk[(size_t)pos0 * KV + i] = f32_to_f16(kr[i]);
            xv[(size_t)pos0 * KV + i] = f32_to_f16(vs[i]);
        }
        /* the double reference over those rows, the sliding window only */
        double mx = 0.0, err = 0.0;
        for (int t = 0; t < n; t++) {
            const int p = pos0 + t, lo = p + 1 > RO_SWA ? p + 1 - RO_SWA : 0;
            for (int h = 0; h < H; h++) {
                const float *qh = qr + ((size_t)t * H + (size_t)h) * (size_t)hd;
                const size_t ho = (size_t)(h / (H / hk)) * (size_t)hd;
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
                    size_t oi = ((size_t)t * H + (size_t)h) * (size_t)hd + (size_t)i;
                    ref[oi] = o;
                    mx = fmax(mx, fabs(o));
                    err = fmax(err, fabs((double)out[oi] - o));
                }
            }
        }
        ty->worst = fmax(ty->worst, err / mx);
        CHECK_MSG(err <= be->ref_rel * mx + be->ref_abs, "f16 d%d W%d call %d (%d at %d): kernel error %.3g of max "
                  "%.3g", hd, W, c, n, pos0, err, mx);
        /* the ring and its tags against the contract's, bit for bit */
        for (int t = 0; t < n; t++)
            model[(pos0 + t) % W] = pos0 + t;
        CHECK_OK(backend_buffer_get(s[1].kr.buf, 0, rk, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(s[1].vr.buf, 0, rv, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(s[1].rp.buf, 0, rt, (size_t)W * 4));
        int bad = 0;
        for (int sl = 0; sl < W; sl++) {
            bad += rt[sl] != model[sl];
            if (model[sl] < 0)
                continue;
            const size_t xo = (size_t)model[sl] * KV, ro = (size_t)sl * KV;
            for (int i = 0; i < KV; i++)
                bad += (rk[ro + i] != xk[xo + i]) + (rv[ro + i] != xv[xo + i]);
            ty->ring_words += 2 * KV + 1;
        }
        CHECK_MSG(bad == 0, "f16 d%d W%d call %d (%d at %d): %d ring halves/tags differ from "
                  "the contract's", hd, W, c, n, pos0, bad);
        if (!use_cpu)
            continue;
        /* the CPU backend's op on the same inputs */
        st = backend_stream_run(e->s[0], &op[0], 1);
        CHECK_MSG(st == HEARTH_OK, "cpu f16 d%d W%d call %d: %s", hd, W, c, hearth_last_error());
        if (st != HEARTH_OK || backend_stream_synchronize(e->s[0]) != HEARTH_OK)
            break;
        CHECK_OK(backend_buffer_get(op[0].u.attn.out.buf, 0, outc, (size_t)n * QD * 4));
        double mc, ec;
        CHECK_MSG(vs_cpu(out, outc, (size_t)n * QD, be->cpu_tol(KVQ_F16, KVQ_F16), &ty->cpu, &mc,
                         &ec), "f16 d%d W%d call %d: vs cpu %.3g of max %.3g", hd, W, c, ec, mc);
        CHECK_OK(backend_buffer_get(s[0].kr.buf, 0, rk, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(s[0].vr.buf, 0, rv, (size_t)W * KV * 2));
        CHECK_OK(backend_buffer_get(s[0].rp.buf, 0, rt, (size_t)W * 4));
        /* v goes in untransformed, so its halves agree exactly; K's within an f16 step */
        int tb = 0, kb = 0, vb = 0;
        double rw = 0.0;
        for (int sl = 0; sl < W; sl++) {
            tb += rt[sl] != model[sl];
            for (int i = 0; model[sl] >= 0 && i < KV; i++) {
                const size_t xo = (size_t)model[sl] * KV + (size_t)i;
                const size_t ro = (size_t)sl * KV + (size_t)i;
                float a0 = f16_to_f32(xk[xo]), a1 = f16_to_f32(rk[ro]);
                kb += xk[xo] != rk[ro];
                vb += xv[xo] != rv[ro];
                rw = fmax(rw, fabs((double)a0 - (double)a1) / (1e-3 + fabs((double)a0)));
            }
        }
        ty->cpu_ring_bad += kb;
        CHECK_MSG(tb == 0 && vb == 0 && rw <= 2e-3, "f16 d%d W%d call %d: cpu ring: %d tags "
                  "and %d V halves differ, K by %.3g (relative)", hd, W, c, tb, vb, rw);
    }
    if (counted && be->replays(e->s[1], &rs1))
        CHECK_MSG(rs1 >= rs0 + 15, "f16 d%d W%d: %llu of 17 decode steps replayed", hd, W,
                  (unsigned long long)(rs1 - rs0));
    kenv_free_bufs(e);
    free(q), free(k), free(v), free(out), free(outc), free(qr), free(kr), free(xk), free(xv);
    free(rk), free(rv), free(ref), free(sc);
}

/* f16/f16 at d 64 (2 KV heads) and 256 (1, as Gemma 3), W 16 and 20; one broken precondition. */
void kvqw_ring_only_f16(struct kenv *e, const struct kvqw_backend *be)
{
    struct rf_tally ty = {0};
    static const int ws[2] = {RO_SWA, 20};
    for (int d = 0; d < 2; d++)
        for (int w = 0; w < 2; w++)
            rf_case(e, be, &ty, d ? 256 : 64, d ? 1 : HK, ws[w], (uint32_t)(60 + 2 * d + w));
    printf("  f16 ring-only: kernel worst %.3g of max |ref|; ring %d words bit-exact; cpu runs "
           "%d, worst %.3g of tolerance, %d K ring halves rounded otherwise\n", ty.worst,
           ty.ring_words, ty.cpu.runs, ty.cpu.worst, ty.cpu_ring_bad);
    ro_bad(e, be, KVQ_F16, KVQ_F16, 12, RO_SWA, false, "f16/f16, kv_window 12 < window 16");
}
