/*
 * kvq-ref.c: see kvq-ref.h. Written for clarity, not speed: every score is
 * a double dot product over decoded floats, the test sizes are small.
 */
#include "kvq-ref.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "f16.h"

void kvq_ref_domain(enum kvq_type t, const struct kvq_rot *rot, const float *x, int n_head_kv,
                    int hd, float *y)
{
    for (int h = 0; h < n_head_kv; h++) {
        const size_t o = (size_t)h * (size_t)hd;
        if (kvq_is_rotated(t))
            kvq_rot_forward(rot, x + o, y + o);
        else
            memcpy(y + o, x + o, (size_t)hd * sizeof *y);
    }
}

/* The f16 row of position j for the query at p (batch, ring or none), as in the header. */
static const uint16_t *exact_row(const struct kvq_ref_window *r, const uint16_t *x,
                                 const uint16_t *ring, int p, int j, int pos0)
{
    const size_t kv = (size_t)r->n_head_kv * (size_t)r->hd;
    if (j + r->w <= p)
        return NULL;
    if (j >= pos0)
        return x + (size_t)(j - pos0) * kv;
    int slot = j % r->w;
    return r->ring_pos[slot] == j ? ring + (size_t)slot * r->ring_stride : NULL;
}

/* Head kvh of position j in type t's domain: the exact row x when given, else decoded. */
static void head_of(const struct kvq_ref_window *r, enum kvq_type t, const uint16_t *x,
                    const uint8_t *cache, int j, int kvh, float *y)
{
    const int hd = r->hd;
    if (x) {
        for (int i = 0; i < hd; i++)
            y[i] = f16_to_f32(x[(size_t)kvh * (size_t)hd + (size_t)i]);
        return;
    }
    const size_t hb = kvq_head_bytes(t, hd);
    const uint8_t *src = cache + (size_t)j * (size_t)r->n_head_kv * hb + (size_t)kvh * hb;
    if (kvq_is_rotated(t))
        kvq_decode_rotated(t, r->rot, src, y);
    else
        kvq_decode(t, r->rot, hd, src, y);
}

bool kvq_ref_window_attention(const struct kvq_ref_window *r, int n, int pos0, const float *q,
                              double *out)
{
    const int hd = r->hd, group = r->n_head / r->n_head_kv;
    float qd[KVQ_MAX_HEAD_DIM], kd[KVQ_MAX_HEAD_DIM], vd[KVQ_MAX_HEAD_DIM];
    float acc[KVQ_MAX_HEAD_DIM], o[KVQ_MAX_HEAD_DIM];
    double od[KVQ_MAX_HEAD_DIM];
    double *s = malloc((size_t)(pos0 + n) * sizeof *s);
    if (!s)
        return false;
    const double scale = (double)(1.0f / sqrtf((float)hd));
    for (int t = 0; t < n; t++) {
        const int p = pos0 + t;
        for (int h = 0; h < r->n_head; h++) {
            const int kvh = h / group;
            kvq_ref_domain(r->kt, r->rot, q + ((size_t)t * (size_t)r->n_head + (size_t)h) *
                           (size_t)hd, 1, hd, qd);
            double mx = -INFINITY, sum = 0.0;
            for (int j = 0; j <= p; j++) {
                if (j == 0 && r->sink)
                    kvq_ref_domain(r->kt, r->rot, r->sink + (size_t)kvh * (size_t)hd, 1, hd, kd);
                else
                    head_of(r, r->kt, exact_row(r, r->xk, r->ring_k, p, j, pos0), r->kc, j, kvh,
                            kd);
                double d = 0.0;
                for (int i = 0; i < hd; i++)
                    d += (double)qd[i] * (double)kd[i];
                s[j] = d * scale;
                mx = fmax(mx, s[j]);
            }
            for (int j = 0; j <= p; j++)
                sum += (s[j] = exp(s[j] - mx));
            for (int i = 0; i < hd; i++)
                od[i] = 0.0;
            for (int j = 0; j <= p; j++) {
                head_of(r, r->vt, exact_row(r, r->xv, r->ring_v, p, j, pos0), r->vc, j, kvh, vd);
                for (int i = 0; i < hd; i++)
                    od[i] += s[j] / sum * (double)vd[i];
            }
            double *dst = out + ((size_t)t * (size_t)r->n_head + (size_t)h) * (size_t)hd;
            if (kvq_is_rotated(r->vt)) {
                /* R^T in double would be closer; float is far inside the tests' bounds */
                for (int i = 0; i < hd; i++)
                    acc[i] = (float)od[i];
                kvq_rot_inverse(r->rot, acc, o);
                for (int i = 0; i < hd; i++)
                    dst[i] = (double)o[i];
            } else {
                memcpy(dst, od, (size_t)hd * sizeof *dst);
            }
        }
    }
    free(s);
    return true;
}
