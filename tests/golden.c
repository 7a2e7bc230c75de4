/*
 * golden.c: loading the numpy reference's golden files and checking an
 * engine's logits against them (the contract is in golden.h).
 *
 * The file format is line-based text written by tests/ref/ref_forward.py:
 *   prompt ID ID ...
 *   pos P max_abs M top ID:VAL ID:VAL ...
 *   greedy ID ID ...
 * Unknown lines (the "#" header) are ignored, so the generator may add fields.
 * Only the top-k entries of a row are compared, not the whole vocabulary: the
 * reference stores a handful of values per row to keep the files small, and a
 * wrong RoPE, norm, scale or mask moves exactly these logits by whole units.
 * The checker evaluates through a caller-supplied function rather than taking
 * a forward_ctx, so the scheduler (any device mix) is held to the same bound
 * as cpu/forward.c.
 */
#include "golden.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

static int parse_ints(char *s, int32_t *out, int cap)
{
    int n = 0;
    char *end;
    for (;;) {
        long v = strtol(s, &end, 10);
        if (end == s || n >= cap)
            break;
        out[n++] = (int32_t)v;
        s = end;
    }
    return n;
}

/* "ID:VAL ID:VAL ..." after " top " into row i of g. */
static void parse_top(char *s, struct golden *g, int i)
{
    char *end;
    while (g->n_top[i] < GOLDEN_MAX_TOP) {
        long id = strtol(s, &end, 10);
        if (end == s || *end != ':')
            break;
        s = end + 1;
        float v = strtof(s, &end);
        if (end == s)
            break;
        s = end;
        g->top_id[i][g->n_top[i]] = (int32_t)id;
        g->top_val[i][g->n_top[i]] = v;
        g->n_top[i]++;
    }
}

bool golden_load(const char *name, struct golden *g)
{
    memset(g, 0, sizeof *g);
    FILE *f = fopen(test_data_path(name), "r");
    if (!f) {
        TEST_FAIL_AT("cannot open golden file %s", test_data_path(name));
        return false;
    }
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "prompt ", 7) == 0) {
            g->n_prompt = parse_ints(line + 7, g->prompt, GOLDEN_MAX_PROMPT);
        } else if (strncmp(line, "greedy ", 7) == 0) {
            g->n_greedy = parse_ints(line + 7, g->greedy, GOLDEN_MAX_GREEDY);
        } else if (strncmp(line, "pos ", 4) == 0 && g->n_pos < GOLDEN_MAX_POS) {
            int i = g->n_pos++;
            g->pos[i] = (int)strtol(line + 4, NULL, 10);
            char *ma = strstr(line, " max_abs ");
            g->max_abs[i] = ma ? strtof(ma + 9, NULL) : 0.0f;
            char *s = strstr(line, " top ");
            if (s)
                parse_top(s + 5, g, i);
        }
    }
    fclose(f);
    if (g->n_prompt == 0 || g->n_pos == 0) {
        TEST_FAIL_AT("golden file %s: no prompt or positions", name);
        return false;
    }
    return true;
}

int golden_argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

/* The greedy continuation from the prompt's last row; checks each id. */
static void check_greedy(const struct golden *g, int n_vocab, golden_eval_fn eval, void *user,
                         const char *label, const float *last)
{
    float *step = malloc((size_t)n_vocab * sizeof(float));
    if (!step) {
        TEST_FAIL_AT("%s: out of memory", label);
        return;
    }
    int32_t tok = golden_argmax(last, n_vocab);
    for (int i = 0; i < g->n_greedy; i++) {
        CHECK_MSG(tok == g->greedy[i], "%s: greedy token %d: %d, reference %d", label, i, tok,
                  g->greedy[i]);
        if (tok != g->greedy[i] || i + 1 == g->n_greedy)
            break;
        hearth_status st = eval(user, &tok, 1, g->n_prompt + i, step, false);
        CHECK_OK(st);
        if (st != HEARTH_OK)
            break;
        tok = golden_argmax(step, n_vocab);
    }
    free(step);
}

void golden_check(const struct golden *g, int n_vocab, double tol, golden_eval_fn eval,
                  void *user, const char *label, double *worst_rel)
{
    if (worst_rel)
        *worst_rel = -1.0;
    float *logits = malloc((size_t)g->n_prompt * (size_t)n_vocab * sizeof(float));
    if (!logits) {
        TEST_FAIL_AT("%s: out of memory", label);
        return;
    }
    hearth_status st = eval(user, g->prompt, g->n_prompt, 0, logits, true);
    CHECK_OK(st);
    if (st != HEARTH_OK) {
        free(logits);
        return;
    }
    double worst = 0.0, worst_r = 0.0;
    for (int i = 0; i < g->n_pos; i++) {
        if (g->pos[i] < 0 || g->pos[i] >= g->n_prompt) {
            TEST_FAIL_AT("%s: golden position %d outside the %d-token prompt", label, g->pos[i],
                         g->n_prompt);
            continue;
        }
        const float *row = logits + (size_t)g->pos[i] * (size_t)n_vocab;
        double ptol = tol * (double)g->max_abs[i], pworst = 0.0;
        for (int j = 0; j < g->n_top[i]; j++) {
            double d = fabs((double)row[g->top_id[i][j]] - (double)g->top_val[i][j]);
            pworst = d > pworst ? d : pworst;
            CHECK_MSG(d <= ptol,
                      "%s: pos %d token %d: logit %.5f, reference %.5f (tolerance %.3f)", label,
                      g->pos[i], g->top_id[i][j], (double)row[g->top_id[i][j]],
                      (double)g->top_val[i][j], ptol);
        }
        double prel = pworst / (double)g->max_abs[i];
        printf("  %s pos %2d: max |logit - ref| = %.4f = %.4f x max|logit|\n", label, g->pos[i],
               pworst, prel);
        worst = pworst > worst ? pworst : worst;
        worst_r = prel > worst_r ? prel : worst_r;
        /* the argmax must agree unless the reference's top two are within tolerance */
        if (g->n_top[i] >= 2 && (double)(g->top_val[i][0] - g->top_val[i][1]) > 2.0 * ptol)
            CHECK_MSG(golden_argmax(row, n_vocab) == g->top_id[i][0],
                      "%s: pos %d argmax %d, reference %d", label, g->pos[i],
                      golden_argmax(row, n_vocab), g->top_id[i][0]);
    }
    printf("  %s max |logit - reference| at checked entries: %.4f (%.4f x max|logit|)\n", label,
           worst, worst_r);
    if (worst_rel)
        *worst_rel = worst_r;
    if (g->n_greedy > 0)
        check_greedy(g, n_vocab, eval, user, label,
                     logits + (size_t)(g->n_prompt - 1) * (size_t)n_vocab);
    free(logits);
}
