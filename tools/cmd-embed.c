/*
 * cmd-embed: `hearth embed -m MODEL -p TEXT` prints the text's embedding:
 * the final norm's output per token, pooled (mean, last or cls), cut to
 * --dims values and scaled to unit length, as `hearth serve`'s
 * /v1/embeddings gives it (the same core/embed.c code and bits on the same
 * devices). With -f, every non-empty line of a file is one text, so a
 * script can embed a corpus without a server.
 *
 * Output: one line per text, its values separated by spaces with 9
 * significant digits (the exact float32), or with --json one object
 * {"n_embd","pooling","data":[{"index","tokens","embedding"}]}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "embed.h"
#include "engine.h"
#include "err.h"
#include "generate.h"
#include "model.h"
#include "progress.h"
#include "tokenizer.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: hearth embed [-m MODEL] (-p TEXT | -f FILE) [options]\n\n"
            "Prints the embedding of a text (with -f: of every non-empty line): the\n"
            "model's last hidden state, pooled and scaled to unit length.\n\n"
            "  -m, --model FILE   GGUF model (default: %s)\n"
            "  -p, --prompt TEXT  the text\n"
            "  -f, --file FILE    one text per line\n"
            "  --pooling P        mean, last or cls (default: the model's pooling_type, else "
            "mean)\n"
            "  --dims N           keep the first N values (then normalize)\n"
            "  --json             one JSON object instead of a line per text\n"
            "  -c, --ctx-size N   longest text in tokens + 1 (default 2048)\n"
            "  -t, --threads N    CPU threads (default: physical cores)\n" RUN_DEVICE_FLAGS_HELP,
            cli_default_model());
}

struct embed_opts {
    const char *model, *prompt, *file;
    enum embd_pool pool; /* NONE: the model's */
    long long dims, n_ctx, threads;
    bool json;
    struct run_devices devs;
};

static int parse_args(int argc, char **argv, struct embed_opts *o)
{
    memset(o, 0, sizeof *o);
    o->model = cli_default_model();
    o->n_ctx = 2048;
    run_devices_default(&o->devs);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--json")) {
            o->json = true;
            continue;
        }
        if (run_parse_device_switch(a, &o->devs))
            continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "hearth: embed: %s: unknown flag or missing value\n\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        int dv = run_parse_device_flag(a, v, &o->devs);
        if (dv < 0)
            return 2;
        if (dv > 0)
            continue;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            o->model = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            o->prompt = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            o->file = v;
        } else if (!strcmp(a, "--pooling")) {
            if ((o->pool = embd_pool_from_name(v)) == EMBD_POOL_NONE) {
                fprintf(stderr, "hearth: embed: --pooling '%s': expected mean, last or cls\n",
                        v);
                return 2;
            }
        } else if (!strcmp(a, "--dims")) {
            if (cli_parse_i64(a, v, 1, 1 << 20, &o->dims))
                return 2;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (cli_parse_i64(a, v, 16, 1 << 20, &o->n_ctx))
                return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (cli_parse_i64(a, v, 1, 1024, &o->threads))
                return 2;
        } else {
            fprintf(stderr, "hearth: embed: unknown flag '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o->prompt == !o->file) {
        fprintf(stderr, "hearth: embed: give one of -p TEXT and -f FILE\n\n");
        usage(stderr);
        return 2;
    }
    return 0;
}

/* One text's vector printed; its line number (1-based) or 0 names it in errors. */
static int embed_one(struct engine *e, const struct tokenizer *tok, enum embd_pool pool,
                     const struct embed_opts *o, const char *text, size_t len, size_t index,
                     size_t line, float *v)
{
    int32_t *ids = NULL;
    size_t n = 0;
    err_clear();
    hearth_status st = gen_tokenize_prompt(tok, text, len, false, &ids, &n);
    if (st == HEARTH_OK)
        st = embd_text(e, ids, n, pool, v);
    free(ids);
    if (st != HEARTH_OK) {
        if (line)
            cli_error("%s: line %zu", o->file, line);
        else
            cli_error("the text");
        return 1;
    }
    const size_t dims = o->dims ? (size_t)o->dims : engine_n_embd(e);
    embd_normalize(v, dims);
    if (o->json)
        printf("%s{\"index\":%zu,\"tokens\":%zu,\"embedding\":[", index ? "," : "", index, n);
    for (size_t j = 0; j < dims; j++)
        printf(j ? (o->json ? ",%.9g" : " %.9g") : "%.9g", (double)v[j]);
    fputs(o->json ? "]}" : "\n", stdout);
    return 0;
}

/* Every non-empty line of buf[0..len) (CR before LF dropped), in order. */
static int embed_lines(struct engine *e, const struct tokenizer *tok, enum embd_pool pool,
                       const struct embed_opts *o, const char *buf, size_t len, float *v)
{
    size_t index = 0, line = 0;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(buf + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - buf) : len, n = end - at;
        line++;
        if (n > 0 && buf[at + n - 1] == '\r')
            n--;
        if (n > 0 && embed_one(e, tok, pool, o, buf + at, n, index++, line, v))
            return 1;
        at = end + 1;
    }
    return 0;
}

int cmd_embed(int argc, char **argv)
{
    struct embed_opts o;
    int pr = parse_args(argc, argv, &o);
    if (pr)
        return pr == 1 ? 0 : pr;
    int rc = 1;
    struct model *m = NULL;
    struct tokenizer *tok = NULL;
    struct engine *e = NULL;
    char *buf = NULL;
    size_t len = 0;
    float *v = NULL;
    err_clear();
    if (model_load(o.model, &m) != HEARTH_OK) {
        cli_error("cannot load %s", o.model);
        goto done;
    }
    if (tok_load(m->gguf, &tok) != HEARTH_OK) {
        cli_error("%s: cannot load the tokenizer", o.model);
        goto done;
    }
    if (o.dims > (long long)m->hp.n_embd) {
        fprintf(stderr, "hearth: embed: --dims %lld: the model's vectors have %u values\n",
                o.dims, m->hp.n_embd);
        rc = 2;
        goto done;
    }
    if (o.file && cli_read_file(o.file, &buf, &len) != HEARTH_OK) {
        cli_error("cannot read the texts");
        goto done;
    }
    struct engine_params ep = engine_params_default();
    ep.n_ctx = (uint32_t)o.n_ctx;
    ep.n_threads = (int)o.threads;
    if (run_engine_open(m, &ep, &o.devs, true, &e))
        goto done;
    if (!(v = malloc(m->hp.n_embd * sizeof *v))) {
        cli_error("out of memory");
        goto done;
    }
    const enum embd_pool pool =
        o.pool != EMBD_POOL_NONE ? o.pool : embd_pool_of_gguf(m->hp.pooling_type);
    if (o.json)
        printf("{\"n_embd\":%lld,\"pooling\":\"%s\",\"data\":[",
               o.dims ? o.dims : (long long)m->hp.n_embd, embd_pool_name(pool));
    rc = o.file ? embed_lines(e, tok, pool, &o, buf, len, v)
                : embed_one(e, tok, pool, &o, o.prompt, strlen(o.prompt), 0, 0, v);
    if (o.json && rc == 0)
        fputs("]}\n", stdout);
done:
    free(v);
    free(buf);
    engine_destroy(e);
    tok_free(tok);
    model_free(m);
    return rc;
}
