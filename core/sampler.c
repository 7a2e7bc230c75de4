/*
 * sampler: the sampling chain described in sampler.h.
 *
 * Working state, all allocated once in sampler_create:
 *   cand[n_vocab]   candidates (id, logit, p); after step k only cand[0..n) live.
 *   work[n_vocab]   a copy of the logits with penalties applied (only when active).
 *   counts[n_vocab] occurrences of each id in the penalty window (kept in step
 *                   with the ring, so penalties cost O(window), not O(n_vocab)).
 *   ring[last_n]    the window itself, oldest entry at ring_pos once full.
 *   distinct[last_n] scratch: the distinct ids of the window.
 * Candidate order is the total order "higher logit first, then lower id", used
 * by selection and sorting alike, so ties never depend on the algorithm path.
 * top-k for k <= n_vocab / 8 (greedy is top-1) scans the logits once with a
 * k-entry heap and never builds the other n_vocab - k candidates; larger k
 * builds all candidates and uses quickselect.
 * Alternatives rejected: qsort (glibc's may allocate, and its comparator call
 * per compare is slow for 262k entries); a full sort per token (O(n log n) where
 * selection is O(n)); recomputing counts from the window per token (fine for 64
 * entries, poor for a large window).
 */
#include "sampler.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "rng.h"

struct sampler_cand {
    int32_t id;
    float logit;
    double p; /* probability when a step has computed it */
};

struct sampler {
    struct sampler_params p;
    int32_t n_vocab;
    uint64_t seed;
    struct rng rng;
    struct sampler_cand *cand; /* [n_vocab] */
    float *work;               /* [n_vocab] the logits after penalties */
    int32_t *counts;           /* [n_vocab] occurrences in the window */
    int32_t *ring;             /* [repeat_last_n] the window, circular */
    int32_t *distinct;         /* [repeat_last_n] scratch */
    int32_t ring_len;          /* entries filled, <= repeat_last_n */
    int32_t ring_pos;          /* next slot to write */
    int32_t *bias_id;          /* [n_bias] sampler_set_bias */
    float *bias;               /* [n_bias] added; -inf bans */
    int n_bias;
};

void sampler_params_default(struct sampler_params *p)
{
    memset(p, 0, sizeof *p);
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->presence_penalty = 0.0f;
    p->frequency_penalty = 0.0f;
    p->seed = 0;
    p->seed_set = false;
}

hearth_status sampler_params_validate(const struct sampler_params *p)
{
    if (!p)
        return err_set(HEARTH_ERR_INVALID_ARG, "sampler: params is NULL");
    if (!isfinite(p->temp) || p->temp < 0.0f)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "sampler: temp = %g: expected a finite value >= 0 (0 = greedy)",
                       (double)p->temp);
    if (p->top_k < 0)
        return err_set(HEARTH_ERR_INVALID_ARG, "sampler: top_k = %d: expected >= 0 (0 = off)",
                       (int)p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return err_set(HEARTH_ERR_INVALID_ARG, "sampler: top_p = %g: expected in (0, 1] (1 = off)",
                       (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return err_set(HEARTH_ERR_INVALID_ARG, "sampler: min_p = %g: expected in [0, 1] (0 = off)",
                       (double)p->min_p);
    if (!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0.0f)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "sampler: repeat_penalty = %g: expected a finite value > 0 (1 = off)",
                       (double)p->repeat_penalty);
    if (p->repeat_last_n < 0 || p->repeat_last_n > SAMPLER_MAX_LAST_N)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "sampler: repeat_last_n = %d: expected in [0, %d] (0 = off)",
                       (int)p->repeat_last_n, SAMPLER_MAX_LAST_N);
    if (!isfinite(p->presence_penalty))
        return err_set(HEARTH_ERR_INVALID_ARG, "sampler: presence_penalty = %g: expected finite",
                       (double)p->presence_penalty);
    if (!isfinite(p->frequency_penalty))
        return err_set(HEARTH_ERR_INVALID_ARG, "sampler: frequency_penalty = %g: expected finite",
                       (double)p->frequency_penalty);
    return HEARTH_OK;
}

/* A seed from the wall clock, kept to 32 bits so that it round-trips through any
 * integer flag parser when the user copies it into --seed. */
static uint64_t clock_seed(void)
{
    struct timespec ts;
    uint64_t x = 0;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
        x = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    struct rng r;
    rng_seed(&r, x);
    return rng_u64(&r) & 0xffffffffull;
}

hearth_status sampler_create(const struct sampler_params *p, int32_t n_vocab,
                             struct sampler **out)
{
    hearth_status st;
    struct sampler *s = NULL;
    if (!out)
        return err_set(HEARTH_ERR_INVALID_ARG, "sampler_create: out is NULL");
    *out = NULL;
    if ((st = sampler_params_validate(p)) != HEARTH_OK)
        return st;
    if (n_vocab < 1)
        return err_set(HEARTH_ERR_INVALID_ARG, "sampler_create: n_vocab = %d: expected >= 1",
                       (int)n_vocab);
    s = calloc(1, sizeof *s);
    if (!s)
        goto oom;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->work = malloc((size_t)n_vocab * sizeof *s->work);
    s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
    if (!s->cand || !s->work || !s->counts)
        goto oom;
    if (p->repeat_last_n > 0) {
        s->ring = malloc((size_t)p->repeat_last_n * sizeof *s->ring);
        s->distinct = malloc((size_t)p->repeat_last_n * sizeof *s->distinct);
        if (!s->ring || !s->distinct)
            goto oom;
    }
    s->seed = p->seed_set ? p->seed : clock_seed();
    rng_seed(&s->rng, s->seed);
    *out = s;
    return HEARTH_OK;
oom:
    sampler_free(s);
    return err_set(HEARTH_ERR_NO_MEMORY, "sampler_create: n_vocab %d, repeat_last_n %d",
                   (int)n_vocab, (int)p->repeat_last_n);
}

void sampler_free(struct sampler *s)
{
    if (!s)
        return;
    free(s->cand);
    free(s->work);
    free(s->counts);
    free(s->ring);
    free(s->distinct);
    free(s->bias_id);
    free(s->bias);
    free(s);
}

/* Replaces s's bias with copies of ids/bias (validated), bans made -inf. */
static hearth_status set_bias(struct sampler *s, const int32_t *ids, const float *bias, int n)
{
    int32_t *ni = NULL;
    float *nb = NULL;
    if (n > 0) {
        ni = malloc((size_t)n * sizeof *ni);
        nb = malloc((size_t)n * sizeof *nb);
        if (!ni || !nb) {
            free(ni);
            free(nb);
            return err_set(HEARTH_ERR_NO_MEMORY, "logit_bias: %d entries", n);
        }
        memcpy(ni, ids, (size_t)n * sizeof *ni);
        for (int i = 0; i < n; i++)
            nb[i] = bias[i] <= SAMPLER_BIAS_BAN ? -INFINITY : bias[i];
    }
    free(s->bias_id);
    free(s->bias);
    s->bias_id = ni;
    s->bias = nb;
    s->n_bias = n;
    return HEARTH_OK;
}

hearth_status sampler_set_bias(struct sampler *s, const int32_t *ids, const float *bias, int n)
{
    if (n < 0 || (n > 0 && (!ids || !bias)))
        return err_set(HEARTH_ERR_INVALID_ARG, "logit_bias: %d entries", n);
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= s->n_vocab)
            return err_set(HEARTH_ERR_INVALID_ARG, "logit_bias: token id %d, outside [0, %d)",
                           (int)ids[i], (int)s->n_vocab);
        if (!isfinite(bias[i]))
            return err_set(HEARTH_ERR_INVALID_ARG, "logit_bias: token %d: bias is not finite",
                           (int)ids[i]);
    }
    return set_bias(s, ids, bias, n);
}

hearth_status sampler_copy_bias(struct sampler *dst, const struct sampler *src)
{
    if (dst->n_vocab != src->n_vocab)
        return err_set(HEARTH_ERR_INVALID_ARG, "logit_bias: vocabularies of %d and %d",
                       (int)dst->n_vocab, (int)src->n_vocab);
    return set_bias(dst, src->bias_id, src->bias, src->n_bias);
}

uint64_t sampler_seed(const struct sampler *s)
{
    return s->seed;
}

int32_t sampler_n_vocab(const struct sampler *s)
{
    return s->n_vocab;
}

hearth_status sampler_accept(struct sampler *s, int32_t token)
{
    if (token < 0 || token >= s->n_vocab)
        return err_set(HEARTH_ERR_INVALID_ARG, "sampler_accept: token %d: expected in [0, %d)",
                       (int)token, (int)s->n_vocab);
    int32_t cap = s->p.repeat_last_n;
    if (cap == 0)
        return HEARTH_OK;
    if (s->ring_len == cap)
        s->counts[s->ring[s->ring_pos]]--;
    else
        s->ring_len++;
    s->ring[s->ring_pos] = token;
    s->counts[token]++;
    s->ring_pos = s->ring_pos + 1 == cap ? 0 : s->ring_pos + 1;
    return HEARTH_OK;
}

void sampler_reset(struct sampler *s)
{
    for (int32_t i = 0; i < s->ring_len; i++)
        s->counts[s->ring[i]] = 0;
    s->ring_len = 0;
    s->ring_pos = 0;
    rng_seed(&s->rng, s->seed);
}

/* ---- penalties ----------------------------------------------------------- */

static bool penalties_active(const struct sampler *s)
{
    return s->ring_len > 0 && (s->p.repeat_penalty != 1.0f || s->p.presence_penalty != 0.0f ||
                               s->p.frequency_penalty != 0.0f);
}

/* Fills s->distinct with the distinct ids of the window; returns how many.
 * Marks seen ids by negating their count, then restores the counts. */
static int32_t window_distinct(struct sampler *s)
{
    int32_t nd = 0;
    for (int32_t i = 0; i < s->ring_len; i++) {
        int32_t t = s->ring[i];
        if (s->counts[t] > 0) {
            s->distinct[nd++] = t;
            s->counts[t] = -s->counts[t];
        }
    }
    for (int32_t i = 0; i < nd; i++)
        s->counts[s->distinct[i]] = -s->counts[s->distinct[i]];
    return nd;
}

static float penalize(const struct sampler_params *p, float l, int32_t count)
{
    l = l > 0.0f ? l / p->repeat_penalty : l * p->repeat_penalty;
    return l - ((float)count * p->frequency_penalty + p->presence_penalty);
}

void sampler_apply_penalties(struct sampler *s, float *logits)
{
    if (!penalties_active(s))
        return;
    int32_t nd = window_distinct(s);
    for (int32_t i = 0; i < nd; i++) {
        int32_t t = s->distinct[i];
        logits[t] = penalize(&s->p, logits[t], s->counts[t]);
    }
}

/* ---- ordering, selection, sorting ---------------------------------------- */

/* The candidate order: higher logit first, ties to the lower id. */
static inline bool cand_before(const struct sampler_cand *a, const struct sampler_cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static inline void cand_swap(struct sampler_cand *c, size_t i, size_t j)
{
    struct sampler_cand t = c[i];
    c[i] = c[j];
    c[j] = t;
}

/* Partitions c[lo..hi] (inclusive) around a median-of-three pivot; returns the
 * pivot's final index: everything before it is cand_before it. */
static size_t cand_partition(struct sampler_cand *c, size_t lo, size_t hi)
{
    size_t mid = lo + (hi - lo) / 2;
    if (cand_before(&c[mid], &c[lo]))
        cand_swap(c, mid, lo);
    if (cand_before(&c[hi], &c[lo]))
        cand_swap(c, hi, lo);
    if (cand_before(&c[hi], &c[mid]))
        cand_swap(c, hi, mid);
    cand_swap(c, mid, hi); /* the median is the pivot, parked at hi */
    struct sampler_cand pivot = c[hi];
    size_t store = lo;
    for (size_t i = lo; i < hi; i++)
        if (cand_before(&c[i], &pivot))
            cand_swap(c, i, store++);
    cand_swap(c, store, hi);
    return store;
}

/* Rearranges c[0..n) so that c[0..k) are the first k in candidate order (unsorted). */
static void cand_select(struct sampler_cand *c, size_t n, size_t k)
{
    if (k == 0 || k >= n)
        return;
    size_t lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        size_t p = cand_partition(c, lo, hi);
        if (p == want)
            return;
        if (p < want)
            lo = p + 1;
        else
            hi = p - 1;
    }
}

static void cand_sort(struct sampler_cand *c, size_t n)
{
    while (n > 16) {
        size_t p = cand_partition(c, 0, n - 1);
        /* recurse into the smaller side so the stack stays O(log n) */
        if (p < n - 1 - p) {
            cand_sort(c, p);
            c += p + 1;
            n -= p + 1;
        } else {
            cand_sort(c + p + 1, n - 1 - p);
            n = p;
        }
    }
    for (size_t i = 1; i < n; i++) {
        struct sampler_cand x = c[i];
        size_t j = i;
        for (; j > 0 && cand_before(&x, &c[j - 1]); j--)
            c[j] = c[j - 1];
        c[j] = x;
    }
}

/* ---- the chain ----------------------------------------------------------- */

static float sanitize(float l)
{
    if (isnan(l))
        return -INFINITY;
    if (l > FLT_MAX)
        return FLT_MAX;
    return l;
}

/* Greedy over cand[0..n): the first in candidate order. */
static int32_t cand_argmax(const struct sampler_cand *c, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (cand_before(&c[i], &c[best]))
            best = i;
    return c[best].id;
}

static float cand_max_logit(const struct sampler_cand *c, size_t n)
{
    float m = c[0].logit;
    for (size_t i = 1; i < n; i++)
        if (c[i].logit > m)
            m = c[i].logit;
    return m;
}

/*
 * top-p over cand[0..n); sorted says the candidates are already in order.
 * Unsorted, it first drops every token with p < (1 - top_p) / n: such a token
 * cannot be in the nucleus (if it were, it and everything ranked below it, at
 * most n tokens each below (1 - top_p) / n, would hold more than 1 - top_p of
 * the mass). Real logits put most of a large vocabulary below that line. Then
 * it sorts a head of 64, 256, 1024, ... candidates (each round selects the next
 * block from the unsorted rest) until the head holds top_p of the mass.
 * Returns the number kept; cand[0..kept) end up sorted.
 */
static size_t step_top_p(struct sampler_cand *c, size_t n, bool sorted, float top_p)
{
    double lmax = (double)cand_max_logit(c, n), z = 0.0;
    for (size_t i = 0; i < n; i++) {
        c[i].p = exp((double)c[i].logit - lmax);
        z += c[i].p;
    }
    double inv_z = 1.0 / z;
    for (size_t i = 0; i < n; i++)
        c[i].p *= inv_z;
    if (!sorted) {
        /* half the bound, so that rounding can never drop a nucleus token */
        double floor_p = 0.5 * (1.0 - (double)top_p) / (double)n;
        size_t kept = 0;
        for (size_t i = 0; i < n; i++)
            if (c[i].p >= floor_p)
                c[kept++] = c[i];
        n = kept;
    }
    double cum = 0.0;
    size_t head = 0, m = sorted ? n : 64;
    for (;;) {
        if (m > n)
            m = n;
        if (!sorted && m > head) {
            cand_select(c + head, n - head, m - head);
            cand_sort(c + head, m - head);
        }
        for (size_t i = head; i < m; i++) {
            cum += c[i].p;
            if (cum >= (double)top_p)
                return i + 1;
        }
        if (m == n)
            return n; /* rounding kept cum just under top_p: keep everything */
        head = m;
        m *= 4;
    }
}

/* min-p over cand[0..n): keeps p_i >= min_p * p_max, i.e. l_i - l_max >= ln(min_p),
 * compacting in place so that a sorted list stays sorted. Returns the number kept. */
static size_t step_min_p(struct sampler_cand *c, size_t n, float min_p)
{
    double lmax = (double)cand_max_logit(c, n);
    double thresh = log((double)min_p);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if ((double)c[i].logit - lmax >= thresh)
            c[kept++] = c[i];
    return kept;
}

/* Temperature, softmax and one draw over cand[0..n). */
static int32_t step_draw(struct sampler_cand *c, size_t n, float temp, struct rng *r)
{
    double lmax = (double)cand_max_logit(c, n), inv_t = 1.0 / (double)temp, z = 0.0;
    for (size_t i = 0; i < n; i++) {
        c[i].p = exp(((double)c[i].logit - lmax) * inv_t);
        z += c[i].p;
    }
    double target = rng_uniform(r) * z, cum = 0.0;
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i].p <= 0.0)
            continue;
        cum += c[i].p;
        last = i;
        if (target < cum)
            return c[i].id;
    }
    return c[last].id; /* rounding: target landed on the total */
}

static void heap_sift_down(struct sampler_cand *h, size_t k, size_t i)
{
    /* a heap whose root is the *last* candidate in candidate order */
    for (;;) {
        size_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < k && cand_before(&h[worst], &h[l]))
            worst = l;
        if (r < k && cand_before(&h[worst], &h[r]))
            worst = r;
        if (worst == i)
            return;
        cand_swap(h, i, worst);
        i = worst;
    }
}

/*
 * The k best of src[0..n) into c[0..k) (unsorted), in one pass with a k-entry
 * heap: after the first few thousand entries almost every logit fails the one
 * comparison with the heap's worst and costs nothing more. Ids arrive in
 * increasing order, so a tie with the worst never displaces it (lower id wins).
 */
static void heap_top_k(struct sampler_cand *c, const float *src, size_t n, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        c[i].id = (int32_t)i;
        c[i].logit = sanitize(src[i]);
        c[i].p = 0.0;
    }
    for (size_t i = k / 2; i-- > 0;)
        heap_sift_down(c, k, i);
    float thr = c[0].logit;
    for (size_t i = k; i < n; i++) {
        if (src[i] > thr) { /* false for NaN */
            float v = sanitize(src[i]);
            if (!(v > thr))
                continue; /* +inf clamped to FLT_MAX ties the worst: the lower id stays */
            c[0].id = (int32_t)i;
            c[0].logit = v;
            heap_sift_down(c, k, 0);
            thr = c[0].logit;
        }
    }
}

hearth_status sampler_sample(struct sampler *s, const float *logits, int32_t *token)
{
    struct sampler_cand *c = s->cand;
    size_t n_vocab = (size_t)s->n_vocab, n = n_vocab;
    const float *src = logits;
    if (penalties_active(s) || s->n_bias > 0) {
        memcpy(s->work, logits, n_vocab * sizeof *s->work);
        for (int i = 0; i < s->n_bias; i++)
            s->work[s->bias_id[i]] += s->bias[i];
        sampler_apply_penalties(s, s->work);
        src = s->work;
    }
    size_t k = s->p.top_k > 0 && (size_t)s->p.top_k < n_vocab ? (size_t)s->p.top_k : 0;
    bool greedy = s->p.temp == 0.0f;
    if (greedy) {
        k = 1; /* greedy is top-1 */
    }
    if (k > 0 && k <= n_vocab / 8) {
        heap_top_k(c, src, n_vocab, k);
        n = k;
    } else {
        for (size_t i = 0; i < n_vocab; i++) {
            c[i].id = (int32_t)i;
            c[i].logit = sanitize(src[i]);
            c[i].p = 0.0;
        }
        if (k > 0) {
            cand_select(c, n_vocab, k);
            n = k;
        }
    }
    /* the best finite logit, if any, is among the survivors of top-k */
    if (!(cand_max_logit(c, n) > -INFINITY))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "sampler_sample: none of the %d logits is finite (all NaN or -inf)",
                       (int)s->n_vocab);
    if (greedy) {
        *token = cand_argmax(c, n);
        return HEARTH_OK;
    }
    bool sorted = false;
    if (s->p.top_p < 1.0f) {
        if (k > 0) {
            cand_sort(c, n);
            sorted = true;
        }
        n = step_top_p(c, n, sorted, s->p.top_p);
        sorted = true;
    }
    if (s->p.min_p > 0.0f)
        n = step_min_p(c, n, s->p.min_p);
    *token = step_draw(c, n, s->p.temp, &s->rng);
    return HEARTH_OK;
}
