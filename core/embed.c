#include "embed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "err.h"

enum embd_pool embd_pool_of_gguf(uint32_t pooling_type)
{
    return pooling_type == 2 ? EMBD_POOL_FIRST : pooling_type == 3 ? EMBD_POOL_LAST : EMBD_POOL_MEAN;
}

enum embd_pool embd_pool_from_name(const char *name)
{
    return !strcmp(name, "mean")   ? EMBD_POOL_MEAN
           : !strcmp(name, "last") ? EMBD_POOL_LAST
           : !strcmp(name, "cls")  ? EMBD_POOL_FIRST
                                   : EMBD_POOL_NONE;
}

const char *embd_pool_name(enum embd_pool pool)
{
    return pool == EMBD_POOL_LAST ? "last" : pool == EMBD_POOL_FIRST ? "cls" : "mean";
}

bool embd_pool_takes(enum embd_pool pool, size_t at, bool last)
{
    return pool == EMBD_POOL_MEAN || (pool == EMBD_POOL_LAST && last) ||
           (pool == EMBD_POOL_FIRST && at == 0);
}

void embd_pool_add(double *acc, const float *row, size_t n)
{
    for (size_t j = 0; j < n; j++)
        acc[j] += (double)row[j];
}

void embd_pool_finish(enum embd_pool pool, double *acc, size_t n, size_t n_rows)
{
    if (pool != EMBD_POOL_MEAN || n_rows == 0)
        return;
    for (size_t j = 0; j < n; j++)
        acc[j] /= (double)n_rows;
}

void embd_normalize(float *v, size_t n)
{
    double ss = 0.0;
    for (size_t j = 0; j < n; j++)
        ss += (double)v[j] * (double)v[j];
    const double inv = ss > 0.0 ? 1.0 / sqrt(ss) : 0.0;
    for (size_t j = 0; j < n; j++)
        v[j] = (float)((double)v[j] * inv);
}

hearth_status embd_text(struct engine *e, const int32_t *ids, size_t n, enum embd_pool pool,
                        float *out)
{
    const uint32_t n_ctx = engine_n_ctx(e);
    if (n == 0 || n >= n_ctx)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "embed: the text has %zu tokens, expected 1..%u (the context less one)",
                       n, n_ctx - 1);
    if (pool == EMBD_POOL_NONE)
        return err_set(HEARTH_ERR_INVALID_ARG, "embed: no pooling given");
    const size_t E = engine_n_embd(e), B = (size_t)engine_n_batch(e);
    double *acc = calloc(E, sizeof *acc);
    float *hid = malloc(B * E * sizeof *hid);
    int32_t *seq = calloc(B, sizeof *seq), *pos = malloc(B * sizeof *pos);
    bool *want = malloc(B * sizeof *want);
    hearth_status st = acc && hid && seq && pos && want
                           ? HEARTH_OK
                           : err_set(HEARTH_ERR_NO_MEMORY, "embed: buffers for %zu rows", B);
    for (size_t t0 = 0; st == HEARTH_OK && t0 < n; t0 += B) {
        const size_t k = n - t0 < B ? n - t0 : B;
        size_t n_hid = 0;
        for (size_t t = 0; t < k; t++) {
            pos[t] = (int32_t)(t0 + t);
            want[t] = embd_pool_takes(pool, t0 + t, t0 + t + 1 == n);
            n_hid += want[t];
        }
        const struct seq_batch_out o = {NULL, NULL, hid, want};
        st = engine_eval_multi_out(e, ids + t0, seq, pos, (int)k, &o);
        for (size_t h = 0; st == HEARTH_OK && h < n_hid; h++)
            embd_pool_add(acc, hid + h * E, E);
    }
    if (st == HEARTH_OK) {
        embd_pool_finish(pool, acc, E, n);
        for (size_t j = 0; j < E; j++)
            out[j] = (float)acc[j];
    }
    free(acc);
    free(hid);
    free(seq);
    free(pos);
    free(want);
    return st;
}
