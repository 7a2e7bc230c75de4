/*
 * cmd-run: `hearth run -m MODEL -p PROMPT [...]` generates a continuation (or,
 * with --chat, an assistant reply) and streams it to stdout token by token.
 *
 * Also home of the setup shared with cmd-chat.c (declared in progress.h): the
 * common flags, model + tokenizer + engine + session creation, the device
 * flags (--device, -ngl; also used by bench and perplexity) and the
 * statistics line. Output discipline: stdout carries only generated text
 * (flushed per token, so a pipe sees it live); everything else (seed, the
 * engine's placement line "plan: layers 0-29 ... on vulkan0, ...", load bar,
 * speed) goes to stderr and -q silences all of it except errors. Exit codes:
 * 0 ok, 1 failure (unreadable model, evaluation error), 2 usage.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "cli.h"
#include "err.h"
#include "generate.h"
#include "kv-quant.h"
#include "placement.h"
#include "progress.h"

#define DEFAULT_CTX 4096

static void usage(FILE *out)
{
    fprintf(out,
            "usage: hearth run [-m MODEL] (-p PROMPT | -f FILE) [options]\n\n"
            "Generates text from PROMPT and streams it to stdout.\n\n"
            "  -m, --model FILE        GGUF model (default: %s)\n"
            "  -p, --prompt TEXT       the prompt (raw text unless --chat)\n"
            "  -f, --file FILE         the prompt from a UTF-8 text file instead\n"
            "  --chat                  wrap the prompt in the model's chat template\n"
            "  --system TEXT           system message (with --chat)\n"
            "  -n, --n-predict N       tokens to generate (default 128; -1: until the end)\n"
            "  --temp T                temperature (default 0.8; 0: greedy)\n"
            "  --top-k K               (default 40; 0: off)\n"
            "  --top-p P               (default 0.95; 1: off)\n"
            "  --min-p P               (default 0.05; 0: off)\n"
            "  --repeat-penalty R      (default 1.0: off)\n"
            "  --repeat-last-n N       penalty window (default 64)\n"
            "  --presence-penalty P    (default 0)\n"
            "  --frequency-penalty F   (default 0)\n"
            "  --seed S                random seed (default: from the clock, printed)\n"
            "  -l, --logit-bias ID+B   add B to token ID's logit (ID-B subtracts; ID-inf\n"
            "                          or a bias of -100 or less bans it; repeatable)\n"
            "  -t, --threads N         CPU threads (default: physical cores)\n"
            "  -c, --ctx-size N        context length (default: min(4096, training))\n"
            RUN_DEVICE_FLAGS_HELP
            "  --stop STR              stop before STR (repeatable)\n"
            "  -q, --quiet             only the generated text; no stats\n"
            "  --print-ids             token ids instead of text (random-weight synth models)\n",
            cli_default_model());
}

void run_opts_default(struct run_opts *o)
{
    memset(o, 0, sizeof *o);
    sampler_params_default(&o->sp);
    o->n_predict = 128;
    run_devices_default(&o->devs);
}

void run_devices_default(struct run_devices *d)
{
    memset(d, 0, sizeof *d);
    d->ngl = ENGINE_NGL_UNSET;
}

int run_parse_device_flag(const char *a, const char *v, struct run_devices *d)
{
    if (!strcmp(a, "--device")) {
        if (!*v) {
            fprintf(stderr, "hearth: --device needs a device name (see `hearth devices`)\n");
            return -1;
        }
        if (d->n == RUN_MAX_DEVICES) {
            fprintf(stderr, "hearth: at most %d --device flags\n", RUN_MAX_DEVICES);
            return -1;
        }
        d->names[d->n++] = v;
        return 1;
    }
    if (!strcmp(a, "--kv-type") || !strcmp(a, "--kv-type-k") || !strcmp(a, "--kv-type-v")) {
        enum kvq_type t;
        if (kvq_type_from_name(v, &t) != HEARTH_OK) {
            fprintf(stderr, "hearth: %s: %s\n", a, hearth_last_error());
            return -1;
        }
        if (strcmp(a, "--kv-type-v"))
            d->kv_type_k = (int)t;
        if (strcmp(a, "--kv-type-k"))
            d->kv_type_v = (int)t;
        return 1;
    }
    if (!strcmp(a, "--kv-window")) {
        long long w;
        if (cli_parse_i64(a, v, 0, 1 << 24, &w))
            return -1;
        d->kv_window = (int)w;
        return 1;
    }
    if (!strcmp(a, "--vram-budget")) {
        if (cli_parse_bytes(a, v, &d->vram_budget))
            return -1;
        if (d->vram_budget == 0) {
            fprintf(stderr, "hearth: --vram-budget must be more than 0 bytes\n");
            return -1;
        }
        return 1;
    }
    if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
        long long b;
        if (cli_parse_i64(a, v, 1, 4096, &b))
            return -1;
        d->n_batch = (int)b;
        return 1;
    }
    if (strcmp(a, "-ngl") && strcmp(a, "--n-gpu-layers") && strcmp(a, "--gpu-layers"))
        return 0;
    if (!strcmp(v, "all")) {
        d->ngl = 100000; /* more than any model's layers: everything, output head included */
        return 1;
    }
    int ngl;
    if (placement_parse_ngl(v, &ngl) != HEARTH_OK) {
        fprintf(stderr, "hearth: %s: \"%s\" is not a layer count, \"auto\" or \"all\"\n", a,
                v);
        return -1;
    }
    d->ngl = ngl;
    return 1;
}

int run_parse_device_switch(const char *a, struct run_devices *d)
{
    if (!strcmp(a, "--no-stream"))
        d->no_stream = true;
    else if (!strcmp(a, "--swa-full"))
        d->swa_full = true;
    else
        return 0;
    return 1;
}

int run_engine_open(const struct model *m, const struct engine_params *p,
                    const struct run_devices *d, bool quiet, struct engine **out)
{
    struct engine_params ep = *p;
    ep.devices = d->names;
    ep.n_devices = d->n;
    ep.ngl = d->ngl;
    ep.kv_type_k = d->kv_type_k;
    ep.kv_type_v = d->kv_type_v;
    ep.kv_window = d->kv_window;
    ep.vram_budget = d->vram_budget;
    ep.no_stream = d->no_stream;
    ep.swa_full = d->swa_full;
    if (d->n_batch > 0)
        ep.n_batch = d->n_batch;
    err_clear();
    if (engine_create(m, &ep, out) != HEARTH_OK) {
        cli_error("cannot set up the forward pass");
        return 1;
    }
    if (!quiet) {
        fprintf(stderr, "%s\n", engine_describe(*out));
        fflush(stderr);
    }
    return 0;
}

/*
 * -l ID+BIAS / ID-BIAS (llama.cpp's form): BIAS a number or "inf"; -inf, or
 * -100 and below, bans (sampler_set_bias). The id's range is checked when
 * the session is made.
 */
static int parse_bias(const char *a, const char *v, struct run_opts *o)
{
    char *end = NULL;
    long long id = (*v >= '0' && *v <= '9') ? strtoll(v, &end, 10) : -1;
    if (id < 0 || id > INT32_MAX || !end || (*end != '+' && *end != '-')) {
        fprintf(stderr, "hearth: %s: expected TOKEN_ID+BIAS or TOKEN_ID-BIAS, got '%s'\n", a, v);
        return -1;
    }
    const bool neg = *end == '-';
    const char *b = end + 1;
    double bias;
    if (!strcmp(b, "inf")) {
        bias = neg ? -1e30 : 1e30;
    } else {
        char *bend = NULL;
        bias = strtod(b, &bend);
        if (!*b || *bend || !isfinite(bias) || *b == '+' || *b == '-') {
            fprintf(stderr, "hearth: %s: '%s' is not a bias (a number or inf)\n", a, b);
            return -1;
        }
        bias = neg ? -bias : bias;
    }
    if (o->n_bias == RUN_MAX_BIAS) {
        fprintf(stderr, "hearth: at most %d %s flags\n", RUN_MAX_BIAS, a);
        return -1;
    }
    o->bias_ids[o->n_bias] = (int32_t)id;
    o->bias[o->n_bias++] = bias <= (double)SAMPLER_BIAS_BAN ? SAMPLER_BIAS_BAN
                           : bias > 1e6                    ? 1e6f
                                                           : (float)bias;
    return 0;
}

/* The value of the flag at argv[*i]; NULL (and a message) if it is the last word. */
static const char *flag_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "hearth: %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static bool is(const char *a, const char *s1, const char *s2)
{
    return !strcmp(a, s1) || (s2 && !strcmp(a, s2));
}

int run_parse_flag(int argc, char **argv, int *i, struct run_opts *o)
{
    const char *a = argv[*i], *v;
    long long n;
    double d;
#define VALUE()                                \
    do {                                       \
        if (!(v = flag_value(argc, argv, i)))  \
            return -1;                         \
    } while (0)
    if (is(a, "-m", "--model")) {
        VALUE();
        o->model_path = v;
    } else if (is(a, "-p", "--prompt")) {
        VALUE();
        o->prompt = v;
    } else if (is(a, "--system", NULL)) {
        VALUE();
        o->system = v;
    } else if (is(a, "-n", "--n-predict")) {
        VALUE();
        if (cli_parse_i64(a, v, -1, INT32_MAX, &n))
            return -1;
        o->n_predict = (int32_t)n;
    } else if (is(a, "--temp", NULL)) {
        VALUE();
        if (cli_parse_f64(a, v, 0, 1e4, &d))
            return -1;
        o->sp.temp = (float)d;
    } else if (is(a, "--top-k", NULL)) {
        VALUE();
        if (cli_parse_i64(a, v, 0, INT32_MAX, &n))
            return -1;
        o->sp.top_k = (int32_t)n;
    } else if (is(a, "--top-p", NULL)) {
        VALUE();
        if (cli_parse_f64(a, v, 1e-9, 1, &d))
            return -1;
        o->sp.top_p = (float)d;
    } else if (is(a, "--min-p", NULL)) {
        VALUE();
        if (cli_parse_f64(a, v, 0, 1, &d))
            return -1;
        o->sp.min_p = (float)d;
    } else if (is(a, "--repeat-penalty", NULL)) {
        VALUE();
        if (cli_parse_f64(a, v, 1e-6, 1e6, &d))
            return -1;
        o->sp.repeat_penalty = (float)d;
    } else if (is(a, "--repeat-last-n", NULL)) {
        VALUE();
        if (cli_parse_i64(a, v, 0, SAMPLER_MAX_LAST_N, &n))
            return -1;
        o->sp.repeat_last_n = (int32_t)n;
    } else if (is(a, "--presence-penalty", NULL)) {
        VALUE();
        if (cli_parse_f64(a, v, -1e6, 1e6, &d))
            return -1;
        o->sp.presence_penalty = (float)d;
    } else if (is(a, "--frequency-penalty", NULL)) {
        VALUE();
        if (cli_parse_f64(a, v, -1e6, 1e6, &d))
            return -1;
        o->sp.frequency_penalty = (float)d;
    } else if (is(a, "-l", "--logit-bias")) {
        VALUE();
        if (parse_bias(a, v, o) != 0)
            return -1;
    } else if (is(a, "--seed", "-s")) {
        VALUE();
        if (cli_parse_i64(a, v, 0, INT64_MAX, &n))
            return -1;
        o->sp.seed = (uint64_t)n;
        o->sp.seed_set = true;
    } else if (is(a, "-t", "--threads")) {
        VALUE();
        if (cli_parse_i64(a, v, 1, 1024, &n))
            return -1;
        o->n_threads = (int)n;
    } else if (is(a, "-c", "--ctx-size")) {
        VALUE();
        if (cli_parse_i64(a, v, 1, 1 << 24, &n))
            return -1;
        o->n_ctx = (uint32_t)n;
    } else if (is(a, "--stop", NULL)) {
        VALUE();
        if (o->n_stops == RUN_MAX_STOPS) {
            fprintf(stderr, "hearth: at most %d --stop strings\n", RUN_MAX_STOPS);
            return -1;
        }
        o->stops[o->n_stops++] = v;
    } else if (is(a, "-q", "--quiet")) {
        o->quiet = true;
    } else if (is(a, "--print-rss", NULL)) {
        o->print_rss = true;
    } else if (is(a, "--print-ids", NULL)) {
        o->print_ids = true;
    } else if (run_parse_device_switch(a, &o->devs)) {
        /* --no-stream, --swa-full */
    } else if (is(a, "--device", NULL) || is(a, "-ngl", "--n-gpu-layers") ||
               is(a, "--gpu-layers", NULL) || is(a, "--kv-type", NULL) ||
               is(a, "--kv-type-k", "--kv-type-v") || is(a, "--vram-budget", NULL) ||
               is(a, "--kv-window", NULL) || is(a, "-b", "--batch-size")) {
        VALUE();
        if (run_parse_device_flag(a, v, &o->devs) < 0)
            return -1;
    } else {
        return 0;
    }
#undef VALUE
    return 1;
}

int run_ctx_open(const struct run_opts *o, struct run_ctx *c)
{
    memset(c, 0, sizeof *c);
    const char *path = o->model_path;
    if (!path) {
        path = cli_default_model();
        if (access(path, R_OK) != 0) {
            fprintf(stderr,
                    "hearth: no -m given and the default model %s is missing: run "
                    "scripts/fetch-models.sh from the repository root, or pass -m FILE\n",
                    path);
            return 1;
        }
    }
    err_clear();
    hearth_status st = model_load(path, &c->m);
    if (st != HEARTH_OK) {
        cli_error("cannot load model '%s'", path);
        return 1;
    }
    if ((st = tok_load(c->m->gguf, &c->tok)) != HEARTH_OK) {
        cli_error("cannot load the tokenizer of '%s'", path);
        goto fail;
    }
    progress_touch(c->m->gguf->base, (size_t)c->m->gguf->size, "loading", !o->quiet);

    struct engine_params ep = engine_params_default();
    ep.n_threads = o->n_threads;
    ep.n_ctx = o->n_ctx;
    if (ep.n_ctx == 0)
        ep.n_ctx = c->m->hp.n_ctx_train > 0 && c->m->hp.n_ctx_train < DEFAULT_CTX
                       ? c->m->hp.n_ctx_train
                       : DEFAULT_CTX;
    if (run_engine_open(c->m, &ep, &o->devs, o->quiet, &c->eng))
        goto fail;
    if ((st = gen_session_create(c->m, c->tok, c->eng, &o->sp, &c->gs)) != HEARTH_OK) {
        cli_error("cannot create the generation session");
        goto fail;
    }
    if (o->n_bias > 0 &&
        (st = gen_session_set_bias(c->gs, o->bias_ids, o->bias, o->n_bias)) != HEARTH_OK) {
        cli_error("--logit-bias");
        goto fail;
    }
    gen_chat_init(c->m, c->tok, -1, &c->chat);
    return 0;
fail:
    run_ctx_close(c);
    return 1;
}

void run_ctx_close(struct run_ctx *c)
{
    gen_session_free(c->gs);
    engine_destroy(c->eng);
    tok_free(c->tok);
    model_free(c->m);
    memset(c, 0, sizeof *c);
}

void run_print_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) {
            char *end;
            long long kb = strtoll(line + 6, &end, 10);
            fprintf(stderr, "peak RSS: %lld kB\n", kb);
        }
    fclose(f);
}

static double per_s(size_t n, double ms)
{
    return ms > 0 ? (double)n * 1e3 / ms : 0.0;
}

void run_print_stats(const struct gen_stats *st)
{
    fprintf(stderr, "prompt: %zu tokens, %.1f tok/s | generation: %zu tokens, %.1f tok/s\n",
            st->n_prompt_eval, per_s(st->n_prompt_eval, st->prompt_ms), st->n_gen,
            per_s(st->n_gen, st->gen_ms));
}

/* Streams each piece to stdout at once, so a reader of the pipe sees tokens live. */
static bool print_piece(void *user, const char *text, size_t len, int32_t token)
{
    (void)user;
    (void)token;
    if (len > 0) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    return true;
}

/* A synth model's byte tokenizer decodes random ids to nothing printable: compare ids. */
static bool print_id(void *user, const char *text, size_t len, int32_t token)
{
    (void)user;
    (void)text;
    (void)len;
    printf("%d ", token);
    fflush(stdout);
    return true;
}

int cmd_run(int argc, char **argv)
{
    struct run_opts o;
    run_opts_default(&o);
    const char *prompt_file = NULL;
    char *prompt_buf = NULL; /* -f's text, o.prompt then */
    for (int i = 1; i < argc; i++) {
        if (is(argv[i], "-h", "--help")) {
            usage(stdout);
            return 0;
        }
        if (is(argv[i], "--chat", NULL)) {
            o.chat = true;
            continue;
        }
        if (is(argv[i], "-f", "--file")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hearth: %s needs a file name\n", argv[i]);
                return 2;
            }
            prompt_file = argv[++i];
            continue;
        }
        int r = run_parse_flag(argc, argv, &i, &o);
        if (r < 0)
            return 2;
        if (r == 0) {
            fprintf(stderr, "hearth: run: unknown option '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (prompt_file && o.prompt) {
        fprintf(stderr, "hearth: run: give the prompt with -p or -f, not both\n");
        return 2;
    }
    if (prompt_file) {
        size_t len = 0;
        err_clear();
        if (cli_read_file(prompt_file, &prompt_buf, &len) != HEARTH_OK) {
            cli_error("-f");
            return 1;
        }
        if (strlen(prompt_buf) != len || len == 0) {
            fprintf(stderr, "hearth: run: -f %s: %s\n", prompt_file,
                    len == 0 ? "the file is empty" : "the file holds a NUL byte (not text)");
            free(prompt_buf);
            return 1;
        }
        o.prompt = prompt_buf;
    }
    if (!o.prompt) {
        fprintf(stderr, "hearth: run: no prompt (-p TEXT or -f FILE)\n\n");
        usage(stderr);
        return 2;
    }
    struct run_ctx c;
    if (run_ctx_open(&o, &c)) {
        free(prompt_buf);
        return 1;
    }
    if (!o.quiet && !o.sp.seed_set)
        fprintf(stderr, "seed: %llu\n", (unsigned long long)gen_session_seed(c.gs));

    int32_t *ids = NULL;
    size_t n_ids = 0;
    hearth_status st;
    if (o.chat) {
        struct chat_msg msgs[2];
        size_t n = 0;
        if (o.system)
            msgs[n++] = (struct chat_msg){"system", o.system};
        msgs[n++] = (struct chat_msg){"user", o.prompt};
        st = gen_chat_tokenize(&c.chat, c.tok, msgs, n, true, &ids, &n_ids);
    } else {
        st = gen_tokenize_prompt(c.tok, o.prompt, strlen(o.prompt), true, &ids, &n_ids);
    }
    int rc = 0;
    if (st != HEARTH_OK) {
        cli_error("cannot prepare the prompt");
        rc = 1;
        goto done;
    }
    struct gen_params gp;
    gen_params_default(&gp);
    gp.n_predict = o.n_predict;
    gp.stop = o.stops;
    gp.n_stop = o.n_stops;
    gp.chat = o.chat ? &c.chat : NULL;
    gp.on_token = o.print_ids ? print_id : print_piece;
    struct gen_stats stats;
    if ((st = gen_run(c.gs, ids, n_ids, &gp, &stats)) != HEARTH_OK) {
        fflush(stdout);
        cli_error("generation failed");
        rc = 1;
        goto done;
    }
    fputc('\n', stdout);
    fflush(stdout);
    if (!o.quiet) {
        if (stats.stop == GEN_STOP_CTX_FULL)
            fprintf(stderr, "(stopped: the context of %u tokens is full)\n",
                    gen_session_n_ctx(c.gs));
        run_print_stats(&stats);
    }
done:
    free(ids);
    run_ctx_close(&c);
    free(prompt_buf);
    if (o.print_rss)
        run_print_rss();
    return rc;
}
