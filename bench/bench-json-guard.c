/*
 * bench-json-guard: what the JSON mode's fallback costs per step: one sweep
 * of jg_allows over the whole vocabulary (what core/slots.c sample_json
 * does when the sampled token would break the JSON), from three states: the
 * start (almost every token refused at its first byte), inside a string
 * (almost every token fed whole) and after a value in an object.
 *
 * usage: bench-json-guard MODEL.gguf [reps]
 * Prints the median milliseconds per sweep, token by token (jg_allows) and by
 * first-byte groups (jg_candidates: a walk of the sorted vocabulary, what the slots use), and the tokens allowed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"
#include "json-guard.h"
#include "model.h"
#include "tokenizer.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench-json-guard MODEL.gguf [reps]\n");
        return 2;
    }
    const long reps = bench_arg_long("bench-json-guard", argc, argv, 2, 21);
    struct model *m = NULL;
    struct tokenizer *t = NULL;
    if (model_load(argv[1], &m) != HEARTH_OK || tok_load(m->gguf, &t) != HEARTH_OK) {
        fprintf(stderr, "bench-json-guard: %s\n", hearth_last_error());
        return 1;
    }
    const char *const states[3] = {"", "{\"name\": \"Fel", "{\"age\": 3"};
    const char *const names[3] = {"start", "in a string", "after a number"};
    double *ms = malloc((size_t)reps * sizeof *ms);
    const int32_t n_vocab = (int32_t)tok_n_vocab(t);
    struct jg_index x;
    int32_t *ids = jg_index_build(t, &x) ? malloc((size_t)n_vocab * sizeof *ids) : NULL;
    for (int k = 0; k < 3 && ms; k++) {
        struct jg_state s;
        jg_init(&s, true);
        jg_feed(&s, states[k], strlen(states[k]));
        size_t allowed = 0;
        for (long r = 0; r < reps; r++) {
            double t0 = bench_now();
            allowed = 0;
            for (int32_t id = 0; id < n_vocab; id++)
                allowed += jg_allows(&s, t, id, false);
            ms[r] = (bench_now() - t0) * 1e3;
        }
        qsort(ms, (size_t)reps, sizeof *ms, bench_cmp_double);
        const double plain = ms[reps / 2];
        size_t found = 0;
        for (long r = 0; r < reps && ids; r++) {
            double t0 = bench_now();
            found = jg_candidates(&s, &x, t, ids);
            ms[r] = (bench_now() - t0) * 1e3;
        }
        qsort(ms, (size_t)reps, sizeof *ms, bench_cmp_double);
        printf("json-guard sweep of %d tokens, %s: %.3f ms each, %.3f ms by the sorted walk "
               "(median of %ld), %zu allowed (%zu found)\n",
               (int)n_vocab, names[k], plain, ms[reps / 2], reps, allowed, found);
    }
    free(ms);
    free(ids);
    jg_index_free(&x);
    tok_free(t);
    model_free(m);
    return 0;
}
