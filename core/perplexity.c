/*
 * perplexity: chunked NLL scoring and the logits-file comparison (see
 * perplexity.h for the method).
 *
 * Logits file layout, every field little-endian:
 *   offset 0   char[8]  magic "HRTHPPL1"
 *          8   u32      version (1)
 *         12   u32      n_vocab
 *         16   u32      n_ctx (the -c of the run)
 *         20   u32      top_k (PPL_TOPK)
 *         24   u64      n_tokens (evaluated ids: chunks * n_ctx)
 *         32   u64      n_scored
 *         40   i32      tokens[n_tokens]
 *   then n_scored records of 4 + 8 * top_k bytes:
 *          f32 log p(target); i32 ids[top_k]; f32 log p(ids[i])[top_k]
 *   with ids by descending log-prob (ties: lower id first), so ids[0] is the
 *   argmax. Log-probs are rounded to f32 once, and the comparing run rounds
 *   its own the same way, so a run compared with itself gives exactly 0.
 * Fixed-width little-endian fields (not a struct dump) keep the file the same
 * on every host.
 */
#include "perplexity.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define LOG_MAGIC "HRTHPPL1"
#define LOG_VERSION 1u
#define LOG_HEADER_BYTES 40u
#define LOG_RECORD_BYTES (4u + 8u * PPL_TOPK)

/* ---- accumulation ---------------------------------------------------------- */

double ppl_acc_ppl(const struct ppl_acc *a)
{
    return a->n > 0 ? exp(a->nll_sum / (double)a->n) : 0.0;
}

double ppl_acc_err(const struct ppl_acc *a)
{
    if (a->n < 2)
        return 0.0;
    double n = (double)a->n, mean = a->nll_sum / n;
    double var = a->nll2_sum / n - mean * mean;
    if (var < 0.0)
        var = 0.0;
    var *= n / (n - 1.0); /* unbiased */
    return ppl_acc_ppl(a) * sqrt(var / n);
}

double ppl_log_sum_exp(const float *x, uint32_t n)
{
    float mx = -INFINITY;
    for (uint32_t i = 0; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    double s = 0.0;
    for (uint32_t i = 0; i < n; i++)
        s += exp((double)x[i] - (double)mx);
    return (double)mx + log(s);
}

int ppl_scored_per_chunk(int n_ctx)
{
    return n_ctx - 1 - n_ctx / 2;
}

/* ---- tokens and evaluation ------------------------------------------------ */

hearth_status ppl_tokens(const struct tokenizer *t, const char *text, size_t len, int n_ctx,
                         int max_chunks, int32_t **tokens, int *n_chunks)
{
    *tokens = NULL;
    *n_chunks = 0;
    if (n_ctx < 4)
        return err_set(HEARTH_ERR_INVALID_ARG, "perplexity: context %d, expected at least 4",
                       n_ctx);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    hearth_status st = tok_encode(t, text, len, false, false, &ids, &n_ids);
    if (st != HEARTH_OK)
        return err_prefix(st, "perplexity: tokenizing the text");
    const bool bos = tok_add_bos(t) && tok_bos(t) >= 0;
    size_t total = n_ids + (bos ? 1 : 0);
    size_t chunks = total / (size_t)n_ctx;
    if (max_chunks > 0 && chunks > (size_t)max_chunks)
        chunks = (size_t)max_chunks;
    if (chunks == 0) {
        free(ids);
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "perplexity: the text has %zu tokens, fewer than one chunk of %d", total,
                       n_ctx);
    }
    if (chunks > (size_t)(INT32_MAX / n_ctx)) {
        free(ids);
        return err_set(HEARTH_ERR_INVALID_ARG, "perplexity: %zu chunks of %d tokens is too many",
                       chunks, n_ctx);
    }
    size_t n_out = chunks * (size_t)n_ctx;
    int32_t *out = malloc(n_out * sizeof *out);
    if (!out) {
        free(ids);
        return err_set(HEARTH_ERR_NO_MEMORY, "perplexity: out of memory for %zu tokens", n_out);
    }
    if (bos) {
        out[0] = tok_bos(t);
        memcpy(out + 1, ids, (n_out - 1) * sizeof *out);
        /* every chunk starts as a document would (llama.cpp does the same) */
        for (size_t c = 0; c < chunks; c++)
            out[c * (size_t)n_ctx] = tok_bos(t);
    } else {
        memcpy(out, ids, n_out * sizeof *out);
    }
    free(ids);
    *tokens = out;
    *n_chunks = (int)chunks;
    return HEARTH_OK;
}

hearth_status ppl_evaluate(struct engine *fc, uint32_t n_vocab, const int32_t *tokens,
                           int n_chunks, int n_ctx, ppl_token_fn on_token, ppl_chunk_fn on_chunk,
                           void *ud, struct ppl_acc *acc)
{
    memset(acc, 0, sizeof *acc);
    if (n_ctx < 4 || n_chunks < 1 || n_vocab == 0)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "perplexity: %d chunks of %d tokens (vocab %u): expected at least one "
                       "chunk of at least 4",
                       n_chunks, n_ctx, n_vocab);
    if ((uint32_t)n_ctx > engine_n_ctx(fc))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "perplexity: chunks of %d tokens exceed the context of %u positions",
                       n_ctx, engine_n_ctx(fc));
    float *logits = malloc((size_t)PPL_LOGIT_BATCH * n_vocab * sizeof *logits);
    if (!logits)
        return err_set(HEARTH_ERR_NO_MEMORY, "perplexity: out of memory for %d x %u logits",
                       PPL_LOGIT_BATCH, n_vocab);
    hearth_status st = HEARTH_OK;
    const int first = n_ctx / 2;
    int64_t index = 0;
    for (int ch = 0; ch < n_chunks && st == HEARTH_OK; ch++) {
        const int32_t *tok = tokens + (size_t)ch * (size_t)n_ctx;
        /* the context half needs no logits */
        st = engine_eval(fc, tok, first, 0, NULL, false);
        for (int j0 = first; j0 < n_ctx - 1 && st == HEARTH_OK; j0 += PPL_LOGIT_BATCH) {
            int nb = n_ctx - 1 - j0 < PPL_LOGIT_BATCH ? n_ctx - 1 - j0 : PPL_LOGIT_BATCH;
            st = engine_eval(fc, tok + j0, nb, j0, logits, true);
            for (int r = 0; r < nb && st == HEARTH_OK; r++) {
                const float *row = logits + (size_t)r * n_vocab;
                int32_t target = tok[j0 + r + 1];
                double lse = ppl_log_sum_exp(row, n_vocab);
                double nll = lse - (double)row[target];
                acc->n++;
                acc->nll_sum += nll;
                acc->nll2_sum += nll * nll;
                if (on_token)
                    st = on_token(ud, index, row, n_vocab, lse, target);
                index++;
            }
        }
        if (st == HEARTH_OK && on_chunk)
            on_chunk(ud, ch, acc);
    }
    free(logits);
    return st;
}

/* ---- logits files ---------------------------------------------------------- */

struct ppl_logfile {
    FILE *fp;
    char *path;
    bool writing;
    uint64_t n_scored, n_done;
    uint8_t rec[LOG_RECORD_BYTES];
};

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_f32(uint8_t *p, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    put_u32(p, u);
}

static float get_f32(const uint8_t *p)
{
    uint32_t u = get_u32(p);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

static hearth_status logfile_new(const char *path, const char *mode, bool writing,
                                 struct ppl_logfile **out)
{
    struct ppl_logfile *f = calloc(1, sizeof *f);
    size_t n = strlen(path) + 1;
    char *p = malloc(n);
    if (!f || !p) {
        free(f);
        free(p);
        return err_set(HEARTH_ERR_NO_MEMORY, "%s: out of memory", path);
    }
    memcpy(p, path, n);
    f->path = p;
    f->writing = writing;
    f->fp = fopen(path, mode);
    if (!f->fp) {
        hearth_status st = err_set(HEARTH_ERR_IO, "%s: cannot open for %s: %s", path,
                                   writing ? "writing" : "reading", strerror(errno));
        free(f->path);
        free(f);
        return st;
    }
    *out = f;
    return HEARTH_OK;
}

static void logfile_free(struct ppl_logfile *f)
{
    if (!f)
        return;
    if (f->fp)
        fclose(f->fp);
    free(f->path);
    free(f);
}

hearth_status ppl_logfile_create(const char *path, uint32_t n_vocab, uint32_t n_ctx,
                                 const int32_t *tokens, uint64_t n_tokens, uint64_t n_scored,
                                 struct ppl_logfile **out)
{
    *out = NULL;
    if (n_vocab < PPL_TOPK)
        return err_set(HEARTH_ERR_INVALID_ARG, "%s: vocabulary of %u is below top-k %d", path,
                       n_vocab, PPL_TOPK);
    struct ppl_logfile *f;
    hearth_status st = logfile_new(path, "wb", true, &f);
    if (st != HEARTH_OK)
        return st;
    f->n_scored = n_scored;
    uint8_t h[LOG_HEADER_BYTES];
    memcpy(h, LOG_MAGIC, 8);
    put_u32(h + 8, LOG_VERSION);
    put_u32(h + 12, n_vocab);
    put_u32(h + 16, n_ctx);
    put_u32(h + 20, PPL_TOPK);
    put_u64(h + 24, n_tokens);
    put_u64(h + 32, n_scored);
    bool ok = fwrite(h, 1, sizeof h, f->fp) == sizeof h;
    for (uint64_t i = 0; i < n_tokens && ok; i++) {
        uint8_t b[4];
        put_u32(b, (uint32_t)tokens[i]);
        ok = fwrite(b, 1, 4, f->fp) == 4;
    }
    if (!ok) {
        st = err_set(HEARTH_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        logfile_free(f);
        return st;
    }
    *out = f;
    return HEARTH_OK;
}

/* A (log-prob, id) pair; "greater" means higher log-prob, then lower id. */
struct topk_item {
    float lp;
    int32_t id;
};

static bool item_gt(struct topk_item a, struct topk_item b)
{
    return a.lp > b.lp || (a.lp == b.lp && a.id < b.id);
}

/* Restores the min-heap property (smallest at 0) below index i of h[0..n). */
static void heap_down(struct topk_item *h, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && item_gt(h[m], h[l]))
            m = l;
        if (r < n && item_gt(h[m], h[r]))
            m = r;
        if (m == i)
            return;
        struct topk_item t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static int cmp_item_desc(const void *a, const void *b)
{
    struct topk_item x, y;
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    return item_gt(x, y) ? -1 : item_gt(y, x) ? 1 : 0;
}

/* The PPL_TOPK largest log-probs of row, descending; log p = logit - lse rounded to f32. */
static void top_k(const float *row, uint32_t n_vocab, double lse, struct topk_item *out)
{
    struct topk_item h[PPL_TOPK];
    for (int i = 0; i < PPL_TOPK; i++)
        h[i] = (struct topk_item){(float)((double)row[i] - lse), i};
    for (int i = PPL_TOPK / 2 - 1; i >= 0; i--)
        heap_down(h, PPL_TOPK, i);
    float min_logit = row[h[0].id];
    for (uint32_t v = PPL_TOPK; v < n_vocab; v++) {
        if (row[v] <= min_logit) /* fast reject; equal logits lose to the lower id kept */
            continue;
        h[0] = (struct topk_item){(float)((double)row[v] - lse), (int32_t)v};
        heap_down(h, PPL_TOPK, 0);
        min_logit = row[h[0].id];
    }
    qsort(h, PPL_TOPK, sizeof h[0], cmp_item_desc);
    memcpy(out, h, sizeof h);
}

hearth_status ppl_logfile_write(struct ppl_logfile *f, const float *logits, uint32_t n_vocab,
                                double lse, int32_t target)
{
    if (!f->writing || f->n_done >= f->n_scored)
        return err_set(HEARTH_ERR_INVALID_ARG, "%s: record %llu beyond the %llu announced",
                       f->path, (unsigned long long)f->n_done, (unsigned long long)f->n_scored);
    struct topk_item top[PPL_TOPK];
    top_k(logits, n_vocab, lse, top);
    put_f32(f->rec, (float)((double)logits[target] - lse));
    for (int i = 0; i < PPL_TOPK; i++) {
        put_u32(f->rec + 4 + 4 * i, (uint32_t)top[i].id);
        put_f32(f->rec + 4 + 4 * PPL_TOPK + 4 * i, top[i].lp);
    }
    if (fwrite(f->rec, 1, LOG_RECORD_BYTES, f->fp) != LOG_RECORD_BYTES)
        return err_set(HEARTH_ERR_IO, "%s: write failed at record %llu: %s", f->path,
                       (unsigned long long)f->n_done, strerror(errno));
    f->n_done++;
    return HEARTH_OK;
}

hearth_status ppl_logfile_close(struct ppl_logfile *f)
{
    if (!f)
        return HEARTH_OK;
    hearth_status st = HEARTH_OK;
    if (f->writing) {
        if (f->n_done != f->n_scored)
            st = err_set(HEARTH_ERR_INVALID_ARG, "%s: %llu records written, %llu announced",
                         f->path, (unsigned long long)f->n_done,
                         (unsigned long long)f->n_scored);
        int rc = fclose(f->fp);
        f->fp = NULL;
        if (rc != 0 && st == HEARTH_OK)
            st = err_set(HEARTH_ERR_IO, "%s: close failed: %s", f->path, strerror(errno));
    }
    logfile_free(f);
    return st;
}

hearth_status ppl_logfile_open(const char *path, uint32_t n_vocab, uint32_t n_ctx,
                               const int32_t *tokens, uint64_t n_tokens, uint64_t n_scored,
                               struct ppl_logfile **out)
{
    *out = NULL;
    struct ppl_logfile *f;
    hearth_status st = logfile_new(path, "rb", false, &f);
    if (st != HEARTH_OK)
        return st;
    uint8_t h[LOG_HEADER_BYTES];
    if (fread(h, 1, sizeof h, f->fp) != sizeof h || memcmp(h, LOG_MAGIC, 8) != 0) {
        st = err_set(HEARTH_ERR_BAD_FILE,
                     "%s: offset 0: not a hearth logits file (expected magic \"%s\")", path,
                     LOG_MAGIC);
        goto fail;
    }
    uint32_t ver = get_u32(h + 8), fv = get_u32(h + 12), fc = get_u32(h + 16);
    uint32_t fk = get_u32(h + 20);
    uint64_t ft = get_u64(h + 24), fs = get_u64(h + 32);
    if (ver != LOG_VERSION || fk != PPL_TOPK) {
        st = err_set(HEARTH_ERR_BAD_FILE,
                     "%s: offset 8: version %u with top-k %u, this build reads version %u "
                     "with top-k %d",
                     path, ver, fk, LOG_VERSION, PPL_TOPK);
        goto fail;
    }
    if (fv != n_vocab) {
        st = err_set(HEARTH_ERR_INVALID_ARG,
                     "%s: made with a vocabulary of %u, this model has %u (another model "
                     "family?)",
                     path, fv, n_vocab);
        goto fail;
    }
    if (fc != n_ctx) {
        st = err_set(HEARTH_ERR_INVALID_ARG, "%s: made with -c %u, this run uses -c %u", path,
                     fc, n_ctx);
        goto fail;
    }
    if (ft != n_tokens || fs != n_scored) {
        st = err_set(HEARTH_ERR_INVALID_ARG,
                     "%s: made over %llu tokens (%llu scored), this run has %llu (%llu scored): "
                     "different text or --chunks",
                     path, (unsigned long long)ft, (unsigned long long)fs,
                     (unsigned long long)n_tokens, (unsigned long long)n_scored);
        goto fail;
    }
    for (uint64_t i = 0; i < n_tokens; i++) {
        uint8_t b[4];
        if (fread(b, 1, 4, f->fp) != 4) {
            st = err_set(HEARTH_ERR_BAD_FILE, "%s: offset %llu: truncated in the token ids", path,
                         (unsigned long long)(LOG_HEADER_BYTES + 4 * i));
            goto fail;
        }
        int32_t id = (int32_t)get_u32(b);
        if (id != tokens[i]) {
            st = err_set(HEARTH_ERR_INVALID_ARG,
                         "%s: token %llu is %d, this run has %d: the texts or tokenizers differ",
                         path, (unsigned long long)i, id, tokens[i]);
            goto fail;
        }
    }
    f->n_scored = n_scored;
    *out = f;
    return HEARTH_OK;
fail:
    logfile_free(f);
    return st;
}

hearth_status ppl_logfile_compare(struct ppl_logfile *f, const float *logits, uint32_t n_vocab,
                                  double lse, int32_t target, struct ppl_kld_token *out)
{
    if (f->writing || f->n_done >= f->n_scored)
        return err_set(HEARTH_ERR_INVALID_ARG, "%s: no record %llu to compare", f->path,
                       (unsigned long long)f->n_done);
    if (fread(f->rec, 1, LOG_RECORD_BYTES, f->fp) != LOG_RECORD_BYTES)
        return err_set(HEARTH_ERR_BAD_FILE, "%s: truncated at record %llu", f->path,
                       (unsigned long long)f->n_done);
    double p_sum = 0.0, q_sum = 0.0, kld = 0.0;
    for (int i = 0; i < PPL_TOPK; i++) {
        uint32_t id = get_u32(f->rec + 4 + 4 * i);
        if (id >= n_vocab)
            return err_set(HEARTH_ERR_BAD_FILE, "%s: record %llu: id %u outside the vocabulary",
                           f->path, (unsigned long long)f->n_done, id);
        double lp = (double)get_f32(f->rec + 4 + 4 * PPL_TOPK + 4 * i);
        double lq = (double)(float)((double)logits[id] - lse);
        double p = exp(lp);
        p_sum += p;
        q_sum += exp(lq);
        kld += p * (lp - lq);
    }
    /* the rest bin: the mass outside the base's top-k ids, in both runs */
    double p_rest = 1.0 - p_sum, q_rest = 1.0 - q_sum;
    if (p_rest > 1e-12) {
        if (q_rest < 1e-12)
            q_rest = 1e-12;
        kld += p_rest * log(p_rest / q_rest);
    }
    uint32_t am = 0;
    for (uint32_t v = 1; v < n_vocab; v++)
        if (logits[v] > logits[am])
            am = v;
    out->kld = kld;
    out->top1_agree = am == get_u32(f->rec + 4);
    out->base_nll = -(double)get_f32(f->rec);
    (void)target;
    f->n_done++;
    return HEARTH_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x, y;
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    return x < y ? -1 : x > y ? 1 : 0;
}

void ppl_kld_summarize(double *kld, int64_t n, int64_t n_agree, struct ppl_kld_summary *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    out->n_agree = n_agree;
    if (n <= 0)
        return;
    double s = 0.0, s2 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        s += kld[i];
        s2 += kld[i] * kld[i];
    }
    double dn = (double)n;
    out->mean = s / dn;
    if (n > 1) {
        double var = (s2 / dn - out->mean * out->mean) * dn / (dn - 1.0);
        out->mean_err = var > 0.0 ? sqrt(var / dn) : 0.0;
    }
    qsort(kld, (size_t)n, sizeof *kld, cmp_double);
    int64_t rank = (int64_t)ceil(0.99 * dn); /* nearest rank, 1-based */
    if (rank < 1)
        rank = 1;
    out->p99 = kld[rank - 1];
    out->max = kld[n - 1];
    out->top1 = (double)n_agree / dn;
}

/* ---- in-process comparison with a reference engine ----------------------- */

static uint32_t row_argmax(const float *x, uint32_t n)
{
    uint32_t am = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[am])
            am = i;
    return am;
}

void ppl_compare_rows(const float *ref, double ref_lse, const float *test, double test_lse,
                      uint32_t n_vocab, struct ppl_row_cmp *out)
{
    double kl = 0.0;
    for (uint32_t i = 0; i < n_vocab; i++) {
        double lp = (double)ref[i] - ref_lse;
        double p = exp(lp);
        if (p > 0.0) /* also skips -inf logits, whose 0 * (-inf - x) would be NaN */
            kl += p * (lp - ((double)test[i] - test_lse));
    }
    out->kld = kl > 0.0 ? kl : 0.0;
    out->top1_agree = row_argmax(ref, n_vocab) == row_argmax(test, n_vocab);
}

static void acc_add(struct ppl_acc *a, double nll)
{
    a->n++;
    a->nll_sum += nll;
    a->nll2_sum += nll * nll;
}

hearth_status ppl_evaluate_pair(struct engine *test, struct engine *ref, uint32_t n_vocab,
                                const int32_t *tokens, int n_chunks, int n_ctx,
                                ppl_chunk_fn on_chunk, void *ud, struct ppl_pair_result *out)
{
    memset(out, 0, sizeof *out);
    if (n_ctx < 4 || n_chunks < 1 || n_vocab == 0)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "perplexity: %d chunks of %d tokens (vocab %u): expected at least one "
                       "chunk of at least 4",
                       n_chunks, n_ctx, n_vocab);
    if ((uint32_t)n_ctx > engine_n_ctx(test) || (uint32_t)n_ctx > engine_n_ctx(ref))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "perplexity: chunks of %d tokens exceed the context of %u (test) or %u "
                       "(reference) positions",
                       n_ctx, engine_n_ctx(test), engine_n_ctx(ref));
    const size_t n_scored = (size_t)n_chunks * (size_t)ppl_scored_per_chunk(n_ctx);
    const size_t n_rows = (size_t)PPL_LOGIT_BATCH * n_vocab;
    float *lt = malloc(n_rows * sizeof *lt);
    float *lr = malloc(n_rows * sizeof *lr);
    double *kld = malloc(n_scored * sizeof *kld);
    if (!lt || !lr || !kld) {
        free(lt);
        free(lr);
        free(kld);
        return err_set(HEARTH_ERR_NO_MEMORY,
                       "perplexity: out of memory for 2 x %d x %u logits and %zu KL values",
                       PPL_LOGIT_BATCH, n_vocab, n_scored);
    }
    hearth_status st = HEARTH_OK;
    const int first = n_ctx / 2;
    size_t index = 0;
    int64_t n_agree = 0;
    for (int ch = 0; ch < n_chunks && st == HEARTH_OK; ch++) {
        const int32_t *tok = tokens + (size_t)ch * (size_t)n_ctx;
        st = engine_eval(test, tok, first, 0, NULL, false);
        if (st == HEARTH_OK)
            st = engine_eval(ref, tok, first, 0, NULL, false);
        for (int j0 = first; j0 < n_ctx - 1 && st == HEARTH_OK; j0 += PPL_LOGIT_BATCH) {
            int nb = n_ctx - 1 - j0 < PPL_LOGIT_BATCH ? n_ctx - 1 - j0 : PPL_LOGIT_BATCH;
            st = engine_eval(test, tok + j0, nb, j0, lt, true);
            if (st == HEARTH_OK)
                st = engine_eval(ref, tok + j0, nb, j0, lr, true);
            for (int r = 0; r < nb && st == HEARTH_OK; r++) {
                const float *rt = lt + (size_t)r * n_vocab, *rr = lr + (size_t)r * n_vocab;
                const int32_t target = tok[j0 + r + 1];
                const double lse_t = ppl_log_sum_exp(rt, n_vocab);
                const double lse_r = ppl_log_sum_exp(rr, n_vocab);
                acc_add(&out->test, lse_t - (double)rt[target]);
                acc_add(&out->ref, lse_r - (double)rr[target]);
                struct ppl_row_cmp c;
                ppl_compare_rows(rr, lse_r, rt, lse_t, n_vocab, &c);
                kld[index++] = c.kld;
                n_agree += c.top1_agree;
            }
        }
        if (st == HEARTH_OK && on_chunk)
            on_chunk(ud, ch, &out->test);
    }
    if (st == HEARTH_OK)
        ppl_kld_summarize(kld, (int64_t)index, n_agree, &out->kld);
    free(lt);
    free(lr);
    free(kld);
    return st;
}
