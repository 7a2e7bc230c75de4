/*
 * progress: the load progress bar of `hearth run` / `hearth chat`.
 *
 * Weights are memory-mapped, so "loading" a model is the page faults of its
 * first forward pass, which would otherwise show up as a slow first token.
 * progress_touch faults the mapping in up front (madvise(WILLNEED) on a chunk,
 * then one read per page) and draws a bar while doing so. The bar is drawn only
 * when stderr is a terminal: piped or redirected output gets nothing, so logs
 * and tests see clean stderr.
 */
#ifndef HEARTH_PROGRESS_H
#define HEARTH_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Touches every page of base[0..size) (a read-only mapping), drawing
 * "label [#####     ] 42%" on stderr when show is true and stderr is a tty.
 */
void progress_touch(const void *base, size_t size, const char *label, bool show);

/* ---- shared by cmd-run.c (which defines these) and cmd-chat.c ---------------
 * They live here rather than in cli.h because cli.h belongs to the dispatcher;
 * both commands need the same flags, model loading and session setup. */

#include <stdint.h>

#include "engine.h"
#include "generate.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

#define RUN_MAX_STOPS 16
#define RUN_MAX_BIAS 64
#define RUN_MAX_DEVICES ENGINE_MAX_DEVICES

/*
 * --device NAME (repeatable), -ngl N|auto|all and the KV cache types
 * (--kv-type, --kv-type-k, --kv-type-v), shared by run, chat, bench,
 * perplexity and serve.
 */
struct run_devices {
    const char *names[RUN_MAX_DEVICES]; /* [n] as given (argv strings) */
    int n;
    int ngl; /* >= 0, ENGINE_NGL_AUTO, or ENGINE_NGL_UNSET when -ngl is not given */
    int kv_type_k, kv_type_v; /* enum kvq_type; 0: f16 */
    int kv_window; /* --kv-window: exact f16 window of a compressed cache; 0: none */
    bool no_stream; /* --no-stream: never stream host weights to a GPU for prefill */
    bool swa_full;  /* --swa-full: sliding-window layers keep every position's K/V */
    unsigned long long vram_budget; /* --vram-budget: cap of every GPU's plan budget; 0: none */
    int n_batch; /* -b: tokens per prefill batch; 0: the engine's default */
};

/* The help lines of the flags run_parse_device_flag takes. */
#define RUN_DEVICE_FLAGS_HELP                                                                      \
    "  --device NAME           run on NAME (repeatable: cpu, vulkan0, cuda0, ...;\n"               \
    "                          see `hearth devices`); default: the CPU unless a\n"                 \
    "                          hardware GPU is present\n"                                          \
    "  -ngl, --n-gpu-layers N  layers on the GPU(s): a count (n_layers + 1 adds\n"                 \
    "                          the output head), all, or auto (the planner; default)\n"            \
    "  --kv-type T             KV cache type of K and V: f16 (default), q8_0, q4_0,\n"            \
    "                          rot4, rot3 (docs/kv-cache.md)\n"                                    \
    "  --kv-type-k T, --kv-type-v T  the type of K or of V alone\n"                              \
    "  --kv-window N           keep the last N positions' K/V exact (f16) beside a\n"              \
    "                          compressed cache (docs/kv-cache.md)\n"                              \
    "  --swa-full              sliding-window layers keep every position's K/V, so\n"          \
    "                          any rewind reuses the cache (more memory)\n"                       \
    "  --vram-budget SIZE      plan as if no GPU had more than SIZE free (24GiB)\n"              \
    "  --no-stream             never copy host weights to a GPU for prefill\n"                 \
    "  -b, --batch-size N      tokens per prefill batch (default 512 with a GPU, else\n"        \
    "                          64); smaller needs less scratch per device\n"

void run_devices_default(struct run_devices *d);
/*
 * Flag a with value v: --device / -ngl (also --n-gpu-layers) / --kv-type* /
 * --kv-window / --vram-budget / -b (--batch-size). Returns 1 when
 * consumed, 0 when a is not one of them, -1 on a bad value (message printed;
 * exit with 2).
 */
int run_parse_device_flag(const char *a, const char *v, struct run_devices *d);
/* Flag a without a value: --no-stream, --swa-full. 1 when consumed, 0 otherwise. */
int run_parse_device_switch(const char *a, struct run_devices *d);
/*
 * engine_create(m, p with d's devices and ngl); prints the placement line on
 * stderr unless quiet. Returns 0, or 1 after printing the error (an unknown
 * device's message lists the available ones).
 */
int run_engine_open(const struct model *m, const struct engine_params *p,
                    const struct run_devices *d, bool quiet, struct engine **out);

struct run_opts {
    const char *model_path; /* NULL: cli_default_model() */
    const char *prompt;     /* run: -p */
    const char *system;     /* --system */
    struct sampler_params sp;
    int32_t n_predict;      /* -n; -1: until EOG or the context is full */
    int n_threads;          /* -t; 0: physical cores */
    uint32_t n_ctx;         /* -c; 0: min(4096, training context) */
    const char *stops[RUN_MAX_STOPS];
    size_t n_stops;
    bool chat;              /* run --chat */
    bool quiet;             /* -q */
    bool print_rss;         /* hidden --print-rss: VmHWM on stderr at exit */
    bool print_ids;         /* --print-ids: token ids instead of text (random-weight models) */
    struct run_devices devs;/* --device, -ngl */
    int32_t bias_ids[RUN_MAX_BIAS]; /* -l/--logit-bias ID(+|-)BIAS, [n_bias] */
    float bias[RUN_MAX_BIAS];
    int n_bias;
};

struct run_ctx {
    struct model *m;
    struct tokenizer *tok;
    struct engine *eng;
    struct gen_session *gs;
    struct gen_chat chat;
};

/* The subcommands (tools/hearth.c dispatches to them). */

void run_opts_default(struct run_opts *o);
/*
 * Parses the flag at argv[*i] if it is one of the shared ones (-m, sampling,
 * -t, -c, -n, --stop, --system, -q, --seed, --device, -ngl), advancing *i past its value.
 * Returns 1 when consumed, 0 when not a shared flag, -1 on a bad value (the
 * message is printed; exit with 2).
 */
int run_parse_flag(int argc, char **argv, int *i, struct run_opts *o);
/* Loads the model (with the progress bar unless quiet) and creates the session.
   Returns 0, or 1 after printing what failed. */
int run_ctx_open(const struct run_opts *o, struct run_ctx *c);
void run_ctx_close(struct run_ctx *c);
/* Prints "peak RSS: N MiB" (VmHWM) on stderr. */
void run_print_rss(void);
/* "prompt: 23 tokens, 412.3 tok/s | generation: 64 tokens, 58.1 tok/s" on stderr. */
void run_print_stats(const struct gen_stats *st);

#endif
