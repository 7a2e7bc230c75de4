/*
 * test-quant-models: every tensor of both real models (SmolLM2 Q4_1, Gemma 3
 * Q4_K_M) dequantizes to finite, plausible values: weight matrices with a
 * near-zero mean, std and tails inside the measured ranges of trained
 * weights; norm weights positive on average (Gemma 3's with the folded +1).
 * Split from test-quant, which tests the block formats themselves.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"
#include "test.h"

struct tensor_stats {
    double mean, std, mean_abs, max_abs;
    uint64_t n, nonfinite;
};

/* Dequantizes every row of t (ne[0] elements each) and accumulates statistics. */
static hearth_status tensor_stats(const struct gguf_tensor *t, struct tensor_stats *st)
{
    const struct quant_traits *q = quant_get(t->type);
    uint64_t rb = 0;
    if (!q || !q->to_float || !quant_row_bytes(t->type, t->ne[0], &rb))
        return HEARTH_ERR_UNSUPPORTED;
    uint64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    if (rb * rows != t->nbytes)
        return HEARTH_ERR_BAD_FILE;
    float *y = malloc((size_t)t->ne[0] * sizeof(float));
    if (!y)
        return HEARTH_ERR_NO_MEMORY;
    double s = 0.0, s2 = 0.0, sa = 0.0, ma = 0.0;
    uint64_t bad = 0;
    for (uint64_t r = 0; r < rows; r++) {
        q->to_float((const uint8_t *)t->data + r * rb, y, (int64_t)t->ne[0]);
        for (uint64_t i = 0; i < t->ne[0]; i++) {
            double v = (double)y[i];
            if (!isfinite(v)) {
                bad++;
                continue;
            }
            s += v;
            s2 += v * v;
            sa += fabs(v);
            ma = fmax(ma, fabs(v));
        }
    }
    free(y);
    st->n = rows * t->ne[0];
    st->nonfinite = bad;
    st->mean = s / (double)st->n;
    st->std = sqrt(fmax(0.0, s2 / (double)st->n - st->mean * st->mean));
    st->mean_abs = sa / (double)st->n;
    st->max_abs = ma;
    return HEARTH_OK;
}

static bool name_ends_with(struct gguf_str s, const char *suffix)
{
    size_t n = strlen(suffix);
    return s.len >= n && memcmp(s.ptr + s.len - n, suffix, n) == 0;
}

static void check_model_tensors(const char *file, bool gemma, uint64_t n_expected, bool verbose)
{
    const char *path = test_model_path(file);
    if (!path)
        return;
    struct gguf_file *f = NULL;
    CHECK_OK(gguf_open(path, &f));
    REQUIRE(f);
    int counts[HEARTH_DTYPE_COUNT] = {0};
    uint64_t n_ok = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        struct tensor_stats st;
        hearth_status rc = tensor_stats(t, &st);
        CHECK_MSG(rc == HEARTH_OK, "%.*s: type %s: %s", (int)t->name.len, t->name.ptr,
                  hearth_dtype_name(t->type) ? hearth_dtype_name(t->type) : "?",
                  hearth_status_name(rc));
        if (rc != HEARTH_OK)
            continue;
        counts[t->type]++;
        if (verbose)
            printf("  %-28.*s %-5s n=%-9llu mean=%+.4f std=%.4f mean|x|=%.4f max|x|=%.3f\n",
                   (int)t->name.len, t->name.ptr, hearth_dtype_name(t->type),
                   (unsigned long long)st.n, st.mean, st.std, st.mean_abs, st.max_abs);
        CHECK_MSG(st.nonfinite == 0, "%.*s: %llu non-finite values", (int)t->name.len,
                  t->name.ptr, (unsigned long long)st.nonfinite);
        const char *nm = hearth_dtype_name(t->type);
        if (name_ends_with(t->name, "norm.weight")) {
            /*
             * Norm weights are multipliers: positive on average. SmolLM2's are small
             * (means 0.001..1.8 measured); Gemma 3's carry the folded +1 (§8.6) and
             * grow large in the deep layers (means up to ~330, max ~1660 measured).
             */
            CHECK_MSG(st.mean > 0.0 && st.max_abs < (gemma ? 4000.0 : 10.0),
                      "%.*s: norm mean %.4f max %.3f", (int)t->name.len, t->name.ptr, st.mean,
                      st.max_abs);
            CHECK_MSG(!gemma || st.mean >= 0.5, "%.*s: gemma norm mean %.4f (missing +1?)",
                      (int)t->name.len, t->name.ptr, st.mean);
        } else {
            /* weight matrices: near-zero mean, std 0.012..0.40 measured, bounded tails */
            CHECK_MSG(fabs(st.mean) < 0.01 && st.std > 0.005 && st.std < 0.6 &&
                          st.mean_abs < 0.5 && st.max_abs < 20.0,
                      "%.*s (%s): mean %.5f std %.5f mean|x| %.5f max|x| %.3f",
                      (int)t->name.len, t->name.ptr, nm, st.mean, st.std, st.mean_abs,
                      st.max_abs);
        }
        n_ok++;
    }
    for (int ty = 0; ty < HEARTH_DTYPE_COUNT; ty++)
        if (counts[ty])
            printf("  %s: %d tensors of type %s\n", file, counts[ty], hearth_dtype_name(ty));
    CHECK_INT_EQ(n_ok, f->n_tensors);
    CHECK_INT_EQ(f->n_tensors, n_expected);
    gguf_close(f);
}

TEST(model_smollm2_tensors_dequantize)
{
    check_model_tensors(TEST_SMOLLM2, false, 272, getenv("HEARTH_TEST_VERBOSE") != NULL);
}

TEST(model_gemma3_tensors_dequantize)
{
    check_model_tensors(TEST_GEMMA3, true, 236, getenv("HEARTH_TEST_VERBOSE") != NULL);
}

TEST_MAIN(TEST_CASE(model_smollm2_tensors_dequantize), TEST_CASE(model_gemma3_tensors_dequantize))
