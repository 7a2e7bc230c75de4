/*
 * kv-balance: per-channel factors that move a rotated K cache's quantization
 * error off the channels the queries weigh (docs/kv-cache.md, "Balancing the
 * keys against the queries").
 *
 * A rotated code with one scale per vector leaves an error e that is isotropic
 * with a variance proportional to |k|^2. A score q.k then errs by q.e, whose
 * variance is proportional to |q|^2 |k|^2, however the energy of q and k sits
 * across channels. Storing s*k and querying with q/s (s > 0 per channel) keeps
 * every exact score but makes the error variance proportional to
 * sum_c a_c / s_c^2 * sum_c b_c s_c^2 (a_c, b_c the mean energies of q and k in
 * channel c), which Cauchy-Schwarz minimizes at s_c^2 = sqrt(a_c / b_c): the
 * ratio to the unbalanced error is (sum_c sqrt(a_c b_c))^2 / (sum a * sum b).
 * Under a per-head RMSNorm with weights qn, kn (gemma3's QK-norm) each head has
 * unit mean energy per channel before the weight, so a_c ~ qn_c^2 and
 * b_c ~ kn_c^2: the factors come from the weights alone, no calibration. On
 * Gemma 3 270M's global layers that ratio is 0.30-0.47: large key channels the
 * queries hardly read had been spreading their error over all of them.
 *
 * RoPE rotates each channel pair by an angle, so one factor per pair commutes
 * with it and the factors can be folded into qn and kn before RoPE.
 */
#include <math.h>

#include "kv-quant.h"

/* A guard for a weight at or near zero: a factor is never more than this far from 1. */
#define KVQ_BALANCE_MAX 8.0

int kvq_rope_pair(int c, int n_rot, bool neox)
{
    if (c >= n_rot)
        return c;
    if (neox)
        return c < n_rot / 2 ? c + n_rot / 2 : c - n_rot / 2;
    return c ^ 1;
}

/* log of the unnormalized factor of channel c: (a / b)^(1/4) over its pair's energies */
static double log_factor(const float *qn, const float *kn, int c, int p)
{
    /* tiny floors keep a zero weight from giving 0/0; the clamp bounds the result */
    const double floor = 1e-12;
    double a = (double)qn[c] * (double)qn[c], b = (double)kn[c] * (double)kn[c];
    if (p != c) {
        a += (double)qn[p] * (double)qn[p];
        b += (double)kn[p] * (double)kn[p];
    }
    return 0.25 * log((a + floor) / (b + floor));
}

void kvq_qk_balance(const float *qn, const float *kn, int d, int n_rot, bool neox,
                    float *qn_out, float *kn_out)
{
    double log_sum = 0.0;
    for (int c = 0; c < d; c++)
        log_sum += log_factor(qn, kn, c, kvq_rope_pair(c, n_rot, neox));
    /* a geometric mean of 1 keeps the stored keys at the model's own magnitude */
    const double mean = log_sum / d;
    for (int c = 0; c < d; c++) {
        double s = exp(log_factor(qn, kn, c, kvq_rope_pair(c, n_rot, neox)) - mean);
        s = s > KVQ_BALANCE_MAX ? KVQ_BALANCE_MAX : s;
        s = s < 1.0 / KVQ_BALANCE_MAX ? 1.0 / KVQ_BALANCE_MAX : s;
        qn_out[c] = (float)((double)qn[c] / s);
        kn_out[c] = (float)((double)kn[c] * s);
    }
}
