/*
 * cmd-bench: `hearth bench -m MODEL [-p 512] [-n 128] [-r 5] [-t N] [--json]`
 * measures prompt processing (ppP: P random tokens as batches from an empty
 * cache, logits of the last token) and text generation (tgN: N tokens one at a
 * time from an empty cache, full logits each step), each repeated r times after
 * one untimed warm-up; reports the median and min-max in tokens/s, as
 * llama-bench does.
 *
 * Decode is memory-bound once the weights exceed the caches: every weight is
 * read once per token. So each row also reports the weight bytes read per
 * token, the achieved weight rate, and that rate as a fraction of the memory
 * copy bandwidth measured by the same command (core/bandwidth.h) with the same
 * thread count. Weight bytes per token: every tensor's data, except that an
 * untied token_embd contributes one row (the lookup), while a tied one is
 * counted once (it is read whole as the output projection). Prefill reads the
 * weights once per batch of n_batch tokens, so its per-token figure is that
 * divided by the batch: a small fraction there means compute-bound, as it
 * should.
 *
 * Random tokens (a fixed seed) stand in for text: speed does not depend on
 * which ids are fed. Header-only synth files (zero weights) run too.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bandwidth.h"
#include "cli.h"
#include "cpu/dot.h"
#include "engine.h"
#include "err.h"
#include "model.h"
#include "progress.h"
#include "threadpool.h"

/* Belongs in tools/cli.h with the other subcommands (owned by the lead). */

#define BW_DEFAULT_BYTES (256ull << 20) /* per buffer: 512 MiB moved per repetition */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: hearth bench [-m MODEL] [-p 512] [-n 128] [-d 0] [-r 5] [-t N] [-b N]\n"
            "                    [--bw-size BYTES] [--device NAME] [-ngl N|auto|all] [--json]\n\n"
            "Measures prefill (pp: a P-token random prompt as batches from an empty cache)\n"
            "and decode (tg: N tokens one at a time from an empty cache), each r times after\n"
            "a warm-up, and compares the weight bytes streamed per second with the memory\n"
            "copy bandwidth measured by the same command.\n\n"
            "  -m MODEL        GGUF model (default %s)\n"
            "  -p N            prompt tokens (default 512; 0 skips pp)\n"
            "  -n N            generated tokens (default 128; 0 skips tg)\n"
            "  -d N            depth: both tests start after N cached positions (filled\n"
            "                  once, untimed; e.g. -d 8192 for decode at 8k context)\n"
            "  -r N            timed repetitions (default 5)\n"
            "  -t N            threads (default: physical cores)\n"
            "  -b N            prefill batch (default: 64 on the CPU alone, 512 with a GPU;\n"
            "                  also --batch-size)\n"
            "  --bw-size B     copy-bandwidth buffer size (default 256MiB, two of them)\n"
            "  --device NAME   run on NAME (repeatable; see `hearth devices`)\n"
            "  -ngl N          layers on the GPU(s): a count, all, or auto (default)\n"
            "  --vram-budget S plan as if no GPU had more than S free (e.g. 24GiB)\n"
            "  --kv-type T     KV cache type (f16, q8_0, q4_0, rot4, rot3); also\n"
            "                  --kv-type-k T / --kv-type-v T\n"
            "  --kv-window N   keep the last N positions' K/V exact beside a compressed\n"
            "                  cache; sliding-window layers keep their whole window\n"
            "                  (docs/kv-cache.md)\n"
            "  --swa-full      sliding-window layers keep every position's K/V (-d is\n"
            "                  then never refilled between runs)\n"
            "  --no-stream     never copy host weights to a GPU for prefill\n"
            "  --json          print a JSON array instead of the table\n",
            cli_default_model());
}

#define BENCH_MAX_DEV 16

struct bench_row {
    const char *test; /* "pp" or "tg" */
    int n_tokens;
    double tps_median, tps_min, tps_max;
    double weight_bytes_per_token;
    /* over the timed runs (device path): wall time per engine device and in moves */
    double dev_s[BENCH_MAX_DEV], xfer_s;
};

/* Adds the engine's time split since its last reset to the row, then resets it. */
static void take_split(struct engine *fc, struct bench_row *row)
{
    for (int d = 0; d < engine_n_devices(fc) && d < BENCH_MAX_DEV; d++) {
        double s = 0.0;
        if (engine_device_seconds(fc, d, &s))
            row->dev_s[d] += s;
    }
    row->xfer_s += engine_transfer_seconds(fc);
    engine_time_reset(fc);
}

static int cmp_double(const void *a, const void *b)
{
    double x, y;
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    return x < y ? -1 : x > y ? 1 : 0;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/*
 * One timed run of the test from position depth (the cache keeps positions
 * [0, depth) from the untimed fill of `fill`; evaluating at depth rewinds what
 * an earlier run wrote after it, or, where the sliding-window rings cannot
 * rewind that far, the fill is evaluated again first, untimed); returns
 * tokens/s through *tps.
 */
static hearth_status run_once(struct engine *fc, bool prefill, const int32_t *toks, int n,
                              const int32_t *fill, int depth, float *logits, double *tps)
{
    hearth_status st = HEARTH_OK;
    if (depth > 0 && !engine_seq_can_resume(fc, 0, (uint32_t)depth) &&
        (st = engine_eval(fc, fill, depth, 0, NULL, false)) != HEARTH_OK)
        return st;
    engine_time_reset(fc); /* the time split covers the timed part only */
    double t0 = bw_now();
    if (prefill) {
        st = engine_eval(fc, toks, n, depth, logits, false);
    } else {
        for (int i = 0; i < n && st == HEARTH_OK; i++)
            st = engine_eval(fc, toks + i, 1, depth + i, logits, false);
    }
    double dt = bw_now() - t0;
    *tps = (double)n / (dt > 1e-9 ? dt : 1e-9);
    return st;
}

static hearth_status run_test(struct engine *fc, bool prefill, const int32_t *toks, int n,
                              const int32_t *fill, int depth, int reps, float *logits,
                              struct bench_row *row)
{
    double *v = malloc((size_t)reps * sizeof *v);
    if (!v)
        return err_set(HEARTH_ERR_NO_MEMORY, "bench: out of memory");
    double tps;
    hearth_status st = run_once(fc, prefill, toks, n, fill, depth, logits, &tps); /* warm-up */
    memset(row->dev_s, 0, sizeof row->dev_s);
    row->xfer_s = 0.0;
    for (int r = 0; r < reps && st == HEARTH_OK; r++) {
        st = run_once(fc, prefill, toks, n, fill, depth, logits, &v[r]);
        take_split(fc, row);
    }
    if (st == HEARTH_OK) {
        qsort(v, (size_t)reps, sizeof *v, cmp_double);
        row->tps_median = reps % 2 ? v[reps / 2] : 0.5 * (v[reps / 2 - 1] + v[reps / 2]);
        row->tps_min = v[0];
        row->tps_max = v[reps - 1];
        row->n_tokens = n;
    }
    free(v);
    return st;
}

/* Row r's time split as JSON ({"cuda0": 0.41, ..., "moves": 0.04}) or text; false: none. */
static bool put_split(struct engine *fc, const struct bench_row *r, bool json)
{
    int n_dev = engine_n_devices(fc);
    double s = 0.0, total = r->xfer_s;
    if (n_dev > BENCH_MAX_DEV)
        n_dev = BENCH_MAX_DEV;
    if (!engine_device_seconds(fc, 0, &s))
        return false;
    for (int d = 0; d < n_dev; d++)
        total += r->dev_s[d];
    if (!(total > 0))
        return false;
    printf(json ? "{" : "time on ");
    for (int d = 0; d < n_dev; d++) {
        const char *name = "?";
        uint64_t b, kv;
        engine_device_memory(fc, d, &name, &b, &kv);
        if (json)
            printf("\"%s\": %.4f, ", name, r->dev_s[d] / total);
        else
            printf("%s %.1f%%, ", name, 100.0 * r->dev_s[d] / total);
    }
    if (json)
        printf("\"moves\": %.4f}", r->xfer_s / total);
    else
        printf("boundary moves %.1f%%", 100.0 * r->xfer_s / total);
    return true;
}

/* The model's name for the table: the file's base name without .gguf. */
static void model_name(const char *path, char *out, size_t cap)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 5 && !strcmp(b + n - 5, ".gguf"))
        n -= 5;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, b, n);
    out[n] = '\0';
}

/* Writes s as a JSON string (names are file names: escape quotes, backslashes, controls). */
static void put_json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

int cmd_bench(int argc, char **argv)
{
    const char *model_path = cli_default_model();
    long long n_prompt = 512, n_gen = 128, reps = 5, n_threads = 0, depth = 0;
    unsigned long long bw_bytes = BW_DEFAULT_BYTES;
    bool json = false;
    struct run_devices devs;
    run_devices_default(&devs);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) {
            json = true;
            continue;
        }
        if (run_parse_device_switch(a, &devs))
            continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "hearth: %s: unknown flag or missing value\n\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        int bad = 0, dv = run_parse_device_flag(a, v, &devs);
        if (dv < 0)
            return 2;
        if (dv > 0)
            continue;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            model_path = v;
        else if (!strcmp(a, "-p"))
            bad = cli_parse_i64(a, v, 0, 1 << 20, &n_prompt);
        else if (!strcmp(a, "-n"))
            bad = cli_parse_i64(a, v, 0, 1 << 20, &n_gen);
        else if (!strcmp(a, "-d") || !strcmp(a, "--depth"))
            bad = cli_parse_i64(a, v, 0, 1 << 20, &depth);
        else if (!strcmp(a, "-r"))
            bad = cli_parse_i64(a, v, 1, 101, &reps);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            bad = cli_parse_i64(a, v, 1, 512, &n_threads);
        else if (!strcmp(a, "--bw-size"))
            bad = cli_parse_bytes(a, v, &bw_bytes) || bw_bytes < (1ull << 20);
        else {
            fprintf(stderr, "hearth: unknown flag '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
        if (bad) {
            if (!strcmp(a, "--bw-size"))
                fprintf(stderr, "hearth: --bw-size expects at least 1MiB, got '%s'\n", v);
            return 2;
        }
    }
    if (n_prompt == 0 && n_gen == 0) {
        fprintf(stderr, "hearth: nothing to measure: -p 0 and -n 0\n");
        return 2;
    }

    int rc = 1;
    struct model *m = NULL;
    struct engine *fc = NULL;
    struct threadpool *tp = NULL;
    int32_t *toks = NULL;
    float *logits = NULL;
    hearth_status st;
    if ((st = model_load(model_path, &m)) != HEARTH_OK) {
        cli_error("cannot load %s", model_path);
        goto done;
    }
    /* sizes: all tensor data, parameters, and what one decode step reads */
    const struct gguf_file *g = m->gguf;
    uint64_t tensor_bytes = 0, n_params = 0, embd_bytes = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        uint64_t ne = 1;
        for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
            ne *= t->ne[d];
        n_params += ne;
        tensor_bytes += t->nbytes;
        if (t->data == m->tok_embd.data)
            embd_bytes = t->nbytes;
    }
    const bool tied = m->output.data == m->tok_embd.data;
    double w_tok = (double)tensor_bytes + (double)m->tok_embd.row_bytes;
    if (!tied)
        w_tok -= (double)embd_bytes;

    const int max_n = (int)(n_prompt > n_gen ? n_prompt : n_gen);
    struct engine_params fp = engine_params_default();
    fp.n_ctx = (uint32_t)(depth + max_n);
    fp.n_threads = (int)n_threads;
    if (run_engine_open(m, &fp, &devs, false, &fc))
        goto done;
    const int batch = engine_n_batch(fc); /* the default depends on the devices taking part */
    const int nth = engine_n_threads(fc);
    const char *isa = cpu_isa_name(cpu_isa_best());

    /* copy bandwidth with the same thread count, and single-threaded for reference */
    struct bw_result bw, bw1;
    if ((st = threadpool_create(nth, &tp)) != HEARTH_OK ||
        (st = bw_measure_copy(tp, (size_t)bw_bytes, 5, &bw)) != HEARTH_OK ||
        (st = bw_measure_copy(NULL, (size_t)bw_bytes, 5, &bw1)) != HEARTH_OK) {
        cli_error("copy bandwidth");
        goto done;
    }
    threadpool_destroy(tp);
    tp = NULL;

    toks = malloc((size_t)(depth + max_n) * sizeof *toks);
    logits = malloc((size_t)m->hp.n_vocab * sizeof *logits);
    if (!toks || !logits) {
        cli_error("out of memory");
        goto done;
    }
    uint64_t seed = 1234;
    for (long long i = 0; i < depth + max_n; i++)
        toks[i] = (int32_t)(splitmix(&seed) % m->hp.n_vocab);
    if (depth > 0 &&
        (st = engine_eval(fc, toks + max_n, (int)depth, 0, NULL, false)) != HEARTH_OK) {
        cli_error("filling %lld positions of depth", depth);
        goto done;
    }

    struct bench_row rows[2];
    int n_rows = 0;
    if (n_prompt > 0) {
        struct bench_row *r = &rows[n_rows++];
        r->test = "pp";
        int n_batches = (int)((n_prompt + batch - 1) / batch);
        r->weight_bytes_per_token = w_tok * n_batches / (double)n_prompt;
        if ((st = run_test(fc, true, toks, (int)n_prompt, toks + max_n, (int)depth, (int)reps,
                           logits, r)) != HEARTH_OK) {
            cli_error("pp%lld failed", n_prompt);
            goto done;
        }
    }
    if (n_gen > 0) {
        struct bench_row *r = &rows[n_rows++];
        r->test = "tg";
        r->weight_bytes_per_token = w_tok;
        if ((st = run_test(fc, false, toks, (int)n_gen, toks + max_n, (int)depth, (int)reps,
                           logits, r)) != HEARTH_OK) {
            cli_error("tg%lld failed", n_gen);
            goto done;
        }
    }

    char name[64];
    model_name(model_path, name, sizeof name);
    /* on GPUs the roofline is the plan's bytes per device at each device's copy bandwidth */
    double roof = 0.0;
    int roof_assumed = 0;
    const bool has_roof = engine_roofline(fc, &roof, &roof_assumed);
    if (json) {
        printf("[\n");
        for (int i = 0; i < n_rows; i++) {
            const struct bench_row *r = &rows[i];
            double gbps = r->weight_bytes_per_token * r->tps_median * 1e-9;
            printf("  {\"model\": ");
            put_json_str(name);
            printf(", \"file_bytes\": %" PRIu64 ", \"n_params\": %" PRIu64
                   ", \"threads\": %d, \"isa\": \"%s\", \"test\": \"%s%d\", \"n_tokens\": %d,"
                   " \"tps_median\": %.4f, \"tps_min\": %.4f, \"tps_max\": %.4f,"
                   " \"weight_bytes_per_token\": %.0f, \"weight_gbps\": %.4f,"
                   " \"copy_gbps\": %.4f, \"copy_gbps_1thread\": %.4f, \"bw_fraction\": %.4f,"
                   " \"n_batch\": %d, \"reps\": %lld, \"depth\": %lld",
                   g->size, n_params, nth, isa, r->test, r->n_tokens, r->n_tokens,
                   r->tps_median, r->tps_min, r->tps_max, r->weight_bytes_per_token, gbps,
                   bw.gbps_median, bw1.gbps_median, gbps / bw.gbps_median, batch, reps, depth);
            if (has_roof && !strcmp(r->test, "tg"))
                printf(", \"roofline_tps\": %.4f, \"roofline_fraction\": %.4f,"
                       " \"roofline_bw_assumed\": %d", roof, r->tps_median / roof, roof_assumed);
            printf(", \"time_split\": ");
            if (!put_split(fc, r, true))
                printf("null");
            printf("}%s\n", i + 1 < n_rows ? "," : "");
        }
        printf("]\n");
    } else {
        printf("copy bandwidth: %.2f GB/s with %d threads (%.2f-%.2f), %.2f GB/s with 1 "
               "(bytes read + written, median of 5 copies of %.0f MiB)\n",
               bw.gbps_median, nth, bw.gbps_min, bw.gbps_max, bw1.gbps_median,
               (double)bw_bytes / 1048576.0);
        printf("weights read per decoded token: %.2f MiB (%s embedding), prefill batch %d\n\n",
               w_tok / 1048576.0, tied ? "tied" : "untied", batch);
        printf("%-30s %9s %8s %7s %-6s %-12s %13s %17s %7s %10s\n", "model", "size", "params",
               "threads", "isa", "test", "t/s (median)", "spread (min-max)", "GB/s",
               "of copy bw");
        for (int i = 0; i < n_rows; i++) {
            const struct bench_row *r = &rows[i];
            double gbps = r->weight_bytes_per_token * r->tps_median * 1e-9;
            char test[32], spread[48];
            if (depth > 0)
                snprintf(test, sizeof test, "%s%d@d%lld", r->test, r->n_tokens, depth);
            else
                snprintf(test, sizeof test, "%s%d", r->test, r->n_tokens);
            snprintf(spread, sizeof spread, "%.2f-%.2f", r->tps_min, r->tps_max);
            double p = (double)n_params;
            printf("%-30s %6.1fMiB %7.1f%s %7d %-6s %-12s %13.2f %17s %7.2f %9.1f%%\n", name,
                   (double)tensor_bytes / 1048576.0, p >= 1e9 ? p / 1e9 : p / 1e6,
                   p >= 1e9 ? "B" : "M", nth, isa, test, r->tps_median, spread, gbps,
                   100.0 * gbps / bw.gbps_median);
        }
        for (int i = 0; has_roof && i < n_rows; i++) { /* the device path */
            const struct bench_row *r = &rows[i];
            printf("%s%d: ", r->test, r->n_tokens);
            if (!put_split(fc, r, false))
                printf("no time recorded");
            if (has_roof && !strcmp(r->test, "tg"))
                printf("; decode roofline %.2f tok/s (each device's reads per token at its copy "
                       "bandwidth, %s), reached %.1f%%",
                       roof, roof_assumed ? "some assumed: run `hearth devices --measure`"
                                          : "measured",
                       100.0 * r->tps_median / roof);
            printf("\n");
        }
    }
    rc = 0;
done:
    threadpool_destroy(tp);
    free(toks);
    free(logits);
    engine_destroy(fc);
    model_free(m);
    return rc;
}
