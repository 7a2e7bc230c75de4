/*
 * quant-k-search: the scale/min/code search behind the Q2_K..Q6_K, IQ4_NL and
 * IQ4_XS quantizers. One engine serves all of them, parametrized by the code
 * levels (uniform or the IQ4 codebook), the sub-block size, whether a min is
 * subtracted, and the integer ranges of the sub-block scales and mins.
 *
 * Objective: the weighted squared error sum_e w_e (y_e - x_e)^2 with
 * w_e = x_e^2 + mean(x^2) over the block. The x^2 term spends precision on
 * large weights, which dominate a dot product's error; the mean term keeps
 * small weights from being ignored (and makes w > 0 everywhere).
 *
 * Method, per block:
 *  1. Sub-block fit. For each sub-block, try a fan of candidate scales: for
 *     min types, span/(L*(1+g)) with span = max(x) - min(min(x), 0) and L the
 *     top level; for signed types, xm/(level*(1+g)) with xm the element of
 *     largest magnitude mapped to either end of the level range (the ends are
 *     asymmetric: -4..3, -32..31, -127..113). g runs over [-0.2, 0.4], i.e.
 *     from covering the range loosely to clipping the extremes. Each candidate
 *     assigns codes by rounding (nearest codebook entry for IQ4), then the
 *     scale (and the min, kept <= 0 as an offset) is refit by weighted least
 *     squares on those codes; the best refit error wins. From the winner,
 *     alternate re-assignment and refit while the error drops (Lloyd steps).
 *  2. Super-block encoding. d = the largest sub-block scale over the top of
 *     the integer scale range (for signed ranges the largest-magnitude scale,
 *     with its sign, maps to the extra negative level), dmin likewise over the
 *     mins; both rounded to f16 first, so the integers are chosen against the
 *     scales the decoder will really use. Each sub-block then tries its
 *     rounded integer scale and min and their +-1 neighbours, re-assigning the
 *     codes against each quantized pair, and keeps the best.
 *  3. Global refit. With integers and codes fixed, d (and dmin) are refit by
 *     least squares over the whole block, rounded to f16, and step 2's local
 *     search is redone; the result is kept only if the block error dropped.
 *
 * Rejected: one max-abs scale per sub-block (the naive rule; the test measures
 * the margin), and exhaustive search over integer scales (slower for a gain
 * the +-1 neighbourhood already captures on Gaussian data).
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "f16.h"
#include "quant-internal.h"

#define KQ_NCAND 25
#define KQ_G_LO (-0.2f)
#define KQ_G_HI 0.4f
#define KQ_LLOYD_ITERS 4
#define KQ_GLOBAL_ITERS 2

static inline float level(const struct quant_kq_spec *s, int i)
{
    return s->book ? (float)s->book[i] : (float)(i + s->qoff);
}

/* Code index whose level is nearest to t (ties to the lower level). */
static int nearest(const struct quant_kq_spec *s, float t)
{
    if (s->book) {
        int lo = 0, hi = s->nlev - 1;
        if (!(t > (float)s->book[0]))
            return 0;
        if (t >= (float)s->book[hi])
            return hi;
        while (hi - lo > 1) { /* book[lo] < t <= book[hi] */
            int mid = (lo + hi) / 2;
            if ((float)s->book[mid] < t)
                lo = mid;
            else
                hi = mid;
        }
        return (t - (float)s->book[lo] <= (float)s->book[hi] - t) ? lo : hi;
    }
    float v = t - (float)s->qoff;
    if (!(v > 0.0f)) /* also catches NaN */
        return 0;
    if (v >= (float)(s->nlev - 1))
        return s->nlev - 1;
    return (int)(v + 0.5f);
}

/* Codes for y = a*level + b; a == 0 gives the code nearest to level 0 (value irrelevant). */
static void assign(const struct quant_kq_spec *s, int n, const float *x, float a, float b,
                   uint8_t *q)
{
    float ia = a != 0.0f ? 1.0f / a : 0.0f;
    for (int e = 0; e < n; e++)
        q[e] = (uint8_t)nearest(s, (x[e] - b) * ia);
}

static float wsq_err(const struct quant_kq_spec *s, int n, const float *x, const float *w,
                     float a, float b, const uint8_t *q)
{
    float err = 0.0f;
    for (int e = 0; e < n; e++) {
        float r = a * level(s, q[e]) + b - x[e];
        err += w[e] * r * r;
    }
    return err;
}

/* Weighted LS of x ~ a*level(q) + b (b <= 0 when has_min, else b = 0). */
static void refit(const struct quant_kq_spec *s, int n, const float *x, const float *w,
                  const uint8_t *q, float *a, float *b)
{
    float s1 = 0.0f, sl = 0.0f, sll = 0.0f, sx = 0.0f, slx = 0.0f;
    for (int e = 0; e < n; e++) {
        float l = level(s, q[e]);
        s1 += w[e];
        sl += w[e] * l;
        sll += w[e] * l * l;
        sx += w[e] * x[e];
        slx += w[e] * l * x[e];
    }
    if (s->has_min) {
        float det = s1 * sll - sl * sl;
        if (det > 0.0f) {
            float na = (s1 * slx - sl * sx) / det;
            float nb = (sll * sx - sl * slx) / det;
            if (nb <= 0.0f && na >= 0.0f) {
                *a = na;
                *b = nb;
                return;
            }
        }
        /* constrained: b = 0 (all data above zero) or degenerate codes */
        if (sll > 0.0f && slx >= 0.0f) {
            *a = slx / sll;
            *b = 0.0f;
        } else {
            *a = 0.0f;
            *b = s1 > 0.0f ? fminf(sx / s1, 0.0f) : 0.0f;
        }
        return;
    }
    *a = sll > 0.0f ? slx / sll : 0.0f;
    *b = 0.0f;
}

/* Step 1 for one sub-block: best (a, b) by candidate fan + refit + Lloyd steps. */
static float fit_sub(const struct quant_kq_spec *s, int n, const float *x, const float *w,
                     float *a_out, float *b_out)
{
    uint8_t q[QK_K];
    float best = FLT_MAX, ba = 0.0f, bb = 0.0f;
    float lo = x[0], hi = x[0], xm = 0.0f;
    for (int e = 0; e < n; e++) {
        lo = fminf(lo, x[e]);
        hi = fmaxf(hi, x[e]);
        if (fabsf(x[e]) > fabsf(xm))
            xm = x[e];
    }
    if (s->has_min) {
        lo = fminf(lo, 0.0f);
        if (!(hi > lo)) { /* constant non-positive sub-block: the min alone is exact */
            *a_out = 0.0f;
            *b_out = lo;
            return 0.0f;
        }
    } else if (xm == 0.0f) {
        *a_out = *b_out = 0.0f;
        return 0.0f;
    }
    int nends = s->has_min ? 1 : 2;
    for (int end = 0; end < nends; end++) {
        for (int k = 0; k < KQ_NCAND; k++) {
            float g = KQ_G_LO + (KQ_G_HI - KQ_G_LO) * (float)k / (float)(KQ_NCAND - 1);
            float a, b;
            if (s->has_min) {
                a = (hi - lo) / (level(s, s->nlev - 1) * (1.0f + g));
                b = lo;
            } else {
                float lv = level(s, end == 0 ? 0 : s->nlev - 1);
                a = xm / (lv * (1.0f + g));
                b = 0.0f;
            }
            assign(s, n, x, a, b, q);
            refit(s, n, x, w, q, &a, &b);
            float err = wsq_err(s, n, x, w, a, b, q);
            if (err < best) {
                best = err;
                ba = a;
                bb = b;
            }
        }
    }
    for (int it = 0; it < KQ_LLOYD_ITERS; it++) {
        float a = ba, b = bb;
        assign(s, n, x, a, b, q);
        refit(s, n, x, w, q, &a, &b);
        float err = wsq_err(s, n, x, w, a, b, q);
        if (!(err < best))
            break;
        best = err;
        ba = a;
        bb = b;
    }
    *a_out = ba;
    *b_out = bb;
    return best;
}

/* f16-representable value nearest to v (finite: clamped to the f16 range). */
static float round_f16(float v, uint16_t *bits)
{
    v = fminf(fmaxf(v, -65504.0f), 65504.0f);
    *bits = f32_to_f16(v);
    return f16_to_f32(*bits);
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

static int round_div(float num, float den, int lo, int hi)
{
    if (den == 0.0f)
        return lo > 0 ? lo : (hi < 0 ? hi : 0);
    float t = num / den;
    t = fminf(fmaxf(t, (float)lo), (float)hi);
    return clampi((int)(t >= 0.0f ? t + 0.5f : t - 0.5f), lo, hi);
}

/*
 * Step 2 for every sub-block given f16 d and dmin: integer scale and min from
 * rounding, then the +-1 neighbourhood with codes re-assigned. Returns the
 * block's weighted error.
 */
static float encode_subs(const struct quant_kq_spec *s, const float *x, const float *w,
                         const float *fa, const float *fb, struct quant_kq_result *r)
{
    int nsub = s->n / s->sub;
    float total = 0.0f;
    uint8_t q[QK_K];
    for (int j = 0; j < nsub; j++) {
        const float *xs = x + j * s->sub;
        const float *ws = w + j * s->sub;
        int s0 = round_div(fa[j], r->d, s->smin, s->smax);
        int m0 = s->has_min ? round_div(-fb[j], r->dmin, 0, s->mmax) : 0;
        float best = FLT_MAX;
        int mspan = s->has_min ? 1 : 0;
        for (int si = clampi(s0 - 1, s->smin, s->smax); si <= clampi(s0 + 1, s->smin, s->smax);
             si++) {
            for (int mi = clampi(m0 - mspan, 0, s->mmax); mi <= clampi(m0 + mspan, 0, s->mmax);
                 mi++) {
                float a = r->d * (float)si, b = -r->dmin * (float)mi;
                assign(s, s->sub, xs, a, b, q);
                float err = wsq_err(s, s->sub, xs, ws, a, b, q);
                if (err < best) {
                    best = err;
                    r->sc[j] = si;
                    r->mn[j] = mi;
                    memcpy(r->q + j * s->sub, q, (size_t)s->sub);
                }
            }
        }
        total += best;
    }
    return total;
}

/* Step 3: LS refit of d (and dmin) with the integers and codes of r fixed. */
static void refit_global(const struct quant_kq_spec *s, const float *x, const float *w,
                         const struct quant_kq_result *r, float *d, float *dmin)
{
    float suu = 0.0f, suv = 0.0f, svv = 0.0f, sux = 0.0f, svx = 0.0f;
    for (int e = 0; e < s->n; e++) {
        int j = e / s->sub;
        float u = (float)r->sc[j] * level(s, r->q[e]);
        float v = s->has_min ? -(float)r->mn[j] : 0.0f;
        suu += w[e] * u * u;
        suv += w[e] * u * v;
        svv += w[e] * v * v;
        sux += w[e] * u * x[e];
        svx += w[e] * v * x[e];
    }
    *d = r->d;
    *dmin = r->dmin;
    if (s->has_min) {
        float det = suu * svv - suv * suv;
        if (det > 0.0f) {
            float nd = (svv * sux - suv * svx) / det;
            float nm = (suu * svx - suv * sux) / det;
            if (nd >= 0.0f && nm >= 0.0f) {
                *d = nd;
                *dmin = nm;
                return;
            }
        }
    }
    /* fallback: keep dmin, refit d alone (residual d*u + dmin*v - x) */
    if (suu > 0.0f)
        *d = (sux - *dmin * suv) / suu;
}

void quant__kq_search(const float *x, const struct quant_kq_spec *s, struct quant_kq_result *r)
{
    float w[QK_K], fa[QK_K / 16], fb[QK_K / 16];
    int nsub = s->n / s->sub;
    float sigma2 = 0.0f;
    for (int e = 0; e < s->n; e++)
        sigma2 += x[e] * x[e];
    sigma2 /= (float)s->n;
    for (int e = 0; e < s->n; e++)
        w[e] = x[e] * x[e] + sigma2;
    memset(r, 0, sizeof *r);
    if (!(sigma2 > 0.0f)) { /* all zero (or non-finite): zero scales, codes nearest 0 */
        uint8_t z = (uint8_t)nearest(s, 0.0f);
        memset(r->q, z, (size_t)s->n);
        r->d16 = f32_to_f16(0.0f);
        r->dmin16 = r->d16;
        return;
    }
    for (int j = 0; j < nsub; j++)
        fit_sub(s, s->sub, x + j * s->sub, w + j * s->sub, &fa[j], &fb[j]);

    if (s->smax == 0) { /* one scale per block (IQ4_NL): d itself is the scale */
        r->d = round_f16(fa[0], &r->d16);
        r->sc[0] = 1;
        assign(s, s->n, x, r->d, 0.0f, r->q);
        return;
    }

    /* step 2: super-block scales over the integer ranges */
    float amax = 0.0f, asigned = 0.0f, mmax = 0.0f;
    for (int j = 0; j < nsub; j++) {
        if (fabsf(fa[j]) > amax) {
            amax = fabsf(fa[j]);
            asigned = fa[j];
        }
        mmax = fmaxf(mmax, -fb[j]);
    }
    float d = s->smin < 0 ? asigned / (float)s->smin : amax / (float)s->smax;
    r->d = round_f16(d, &r->d16);
    r->dmin = s->has_min ? round_f16(mmax / (float)s->mmax, &r->dmin16) : 0.0f;
    if (!s->has_min)
        r->dmin16 = f32_to_f16(0.0f);
    float best = encode_subs(s, x, w, fa, fb, r);

    /* step 3: global refit of d, dmin; keep only improvements */
    for (int it = 0; it < KQ_GLOBAL_ITERS; it++) {
        struct quant_kq_result t = *r;
        float nd, nm;
        refit_global(s, x, w, r, &nd, &nm);
        t.d = round_f16(nd, &t.d16);
        if (s->has_min)
            t.dmin = round_f16(nm, &t.dmin16);
        if (t.d == r->d && t.dmin == r->dmin)
            break;
        float err = encode_subs(s, x, w, fa, fb, &t);
        if (!(err < best))
            break;
        best = err;
        *r = t;
    }
}
