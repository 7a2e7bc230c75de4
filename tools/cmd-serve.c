/*
 * cmd-serve: `hearth serve -m MODEL [--host 127.0.0.1] [--port 8080]
 * [--parallel N] [--api-key KEY] ...`, an OpenAI-compatible HTTP server.
 *
 * Set-up order: flags, model + tokenizer, the slots engine (core/slots.h:
 * one multi-sequence forward pass, on the CPU or on the devices --device /
 * -ngl / --vram-budget choose exactly as for `hearth run`, every slot's KV
 * cache part of the plan), then HTTP (serve-http.c).
 * SIGINT / SIGTERM are blocked in every thread (the mask is inherited by the
 * engine and MHD threads, which are created after it) and taken
 * synchronously by sigwait in the main thread: no async-signal-safety
 * constraints, and shutdown runs as ordinary code: stop accepting, drain the
 * running generations for --drain-timeout seconds, cancel the rest, exit 0.
 *
 * Loopback by default: serving to the network is an explicit --host choice.
 * Without libmicrohttpd / libcjson at build time the command only explains
 * that the server was not built.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "serve.h"

#ifndef HEARTH_WITH_SERVER

int cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "hearth: serve: this build has no HTTP server: libmicrohttpd and libcjson "
                    "were not found at configure time (Debian: apt install libmicrohttpd-dev "
                    "libcjson-dev, then re-run cmake)\n");
    return 1;
}

#else

#include <pthread.h>

#include "err.h"
#include "generate.h"
#include "kv-quant.h"
#include "model.h"
#include "progress.h"
#include "slots.h"
#include "tokenizer.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: hearth serve [-m MODEL] [options]\n\n"
            "Serves the model over an OpenAI-compatible HTTP API (POST /v1/chat/completions,\n"
            "/v1/completions, /v1/embeddings; GET /v1/models, /health, /metrics), POST\n"
            "/tokenize and\n"
            "/detokenize (token ids for logit_bias), POST /apply-template (the prompt a\n"
            "chat request renders to), and a chat page at /. Chat requests may offer tools\n"
            "(function calling, docs/serve.md).\n\n"
            "  -m, --model FILE        GGUF model (default: %s)\n"
            "  --host ADDR             numeric address to listen on (default 127.0.0.1)\n"
            "  --port N                TCP port (default 8080; 0: any free port, printed)\n"
            "  --parallel N            sequences generated together (slots; default 4)\n"
            "  --queue N               requests that may wait for a slot before 503 "
            "(default 64)\n"
            "  --api-key KEY           require 'Authorization: Bearer KEY' on /v1 and "
            "/metrics\n"
            "                          (default: $HEARTH_API_KEY when set)\n"
            "  -c, --ctx-size N        context per slot (default: min(2048, training))\n"
            "  -t, --threads N         CPU threads (default: physical cores)\n"
            RUN_DEVICE_FLAGS_HELP
            "  --max-tokens N          default max_tokens of a request (default 256)\n"
            "  --pooling P             how /v1/embeddings pools a text's token vectors: mean,\n"
            "                          last or cls (default: the model's pooling_type key,\n"
            "                          else mean)\n"
            "  --drain-timeout S       on SIGINT/SIGTERM, seconds to let running requests "
            "finish (default 10)\n",
            cli_default_model());
}

static const char *value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "hearth: serve: %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cmd_serve(int argc, char **argv)
{
    const char *model_path = NULL, *api_key = getenv("HEARTH_API_KEY");
    struct serve_opts so = {
        .host = "127.0.0.1", .port = 8080, .default_max_tokens = 256, .drain_ms = 10000};
    long long parallel = 4, queue = 64, n_ctx = 0, threads = 0, v;
    enum embd_pool pool = EMBD_POOL_NONE; /* none given: the model's, else mean */
    double d;
    struct run_devices devs; /* --device, -ngl, --vram-budget, --kv-type* */
    run_devices_default(&devs);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
#define VAL()                                                                                      \
    do {                                                                                           \
        if (!(val = value(argc, argv, &i)))                                                        \
            return 2;                                                                              \
    } while (0)
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            VAL();
            model_path = val;
        } else if (!strcmp(a, "--host")) {
            VAL();
            so.host = val;
        } else if (!strcmp(a, "--port")) {
            VAL();
            if (cli_parse_i64(a, val, 0, 65535, &v))
                return 2;
            so.port = (int)v;
        } else if (!strcmp(a, "--parallel") || !strcmp(a, "-np")) {
            VAL();
            if (cli_parse_i64(a, val, 1, 256, &parallel))
                return 2;
        } else if (!strcmp(a, "--queue")) {
            VAL();
            if (cli_parse_i64(a, val, 1, 4096, &queue))
                return 2;
        } else if (!strcmp(a, "--api-key")) {
            VAL();
            api_key = val;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            VAL();
            if (cli_parse_i64(a, val, 16, 1 << 20, &n_ctx))
                return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            VAL();
            if (cli_parse_i64(a, val, 1, 1024, &threads))
                return 2;
        } else if (!strcmp(a, "--max-tokens")) {
            VAL();
            if (cli_parse_i64(a, val, 1, 1 << 20, &v))
                return 2;
            so.default_max_tokens = (int)v;
        } else if (!strncmp(a, "--kv-type", 9) || !strcmp(a, "--device") || !strcmp(a, "-ngl") ||
                   !strcmp(a, "--n-gpu-layers") || !strcmp(a, "--gpu-layers") ||
                   !strcmp(a, "--vram-budget") || !strcmp(a, "--kv-window") ||
                   !strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            VAL();
            int kr = run_parse_device_flag(a, val, &devs);
            if (kr < 0)
                return 2;
            if (kr == 0) {
                fprintf(stderr, "hearth: serve: unknown option '%s'\n\n", a);
                usage(stderr);
                return 2;
            }
        } else if (run_parse_device_switch(a, &devs)) {
            /* --no-stream, --swa-full */
        } else if (!strcmp(a, "--pooling")) {
            VAL();
            if ((pool = embd_pool_from_name(val)) == EMBD_POOL_NONE) {
                fprintf(stderr, "hearth: serve: --pooling '%s': expected mean, last or cls\n",
                        val);
                return 2;
            }
        } else if (!strcmp(a, "--drain-timeout")) {
            VAL();
            if (cli_parse_f64(a, val, 0, 3600, &d))
                return 2;
            so.drain_ms = (int)(d * 1000.0);
        } else {
            fprintf(stderr, "hearth: serve: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
#undef VAL
    }
    if (api_key && !api_key[0])
        api_key = NULL;
    so.api_key = api_key;
    if (!model_path) {
        model_path = cli_default_model();
        if (access(model_path, R_OK) != 0) {
            fprintf(stderr, "hearth: serve: no -m given and the default model %s is missing\n",
                    model_path);
            return 1;
        }
    }
    /* before any thread exists, so that every thread inherits the mask */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct model *m = NULL;
    struct tokenizer *tok = NULL;
    struct slots *slots = NULL;
    struct serve_server *srv = NULL;
    struct gen_chat chat;
    int rc = 1;
    err_clear();
    if (model_load(model_path, &m) != HEARTH_OK) {
        cli_error("cannot load model '%s'", model_path);
        goto done;
    }
    if (tok_load(m->gguf, &tok) != HEARTH_OK) {
        cli_error("cannot load the tokenizer of '%s'", model_path);
        goto done;
    }
    progress_touch(m->gguf->base, (size_t)m->gguf->size, "loading", true);
    gen_chat_init(m, tok, -1, &chat);
    struct slots_params sp = {.n_slots = (int)parallel,
                              .max_queue = (int)queue,
                              .n_threads = (int)threads,
                              .prefill_chunk = 64,
                              .kv_type_k = devs.kv_type_k,
                              .kv_type_v = devs.kv_type_v,
                              .devices = devs.names,
                              .n_devices = devs.n,
                              .ngl = devs.ngl,
                              .vram_budget = devs.vram_budget,
                              .kv_window = devs.kv_window,
                              .no_stream = devs.no_stream,
                              .swa_full = devs.swa_full};
    if (devs.n_batch > 0) /* -b: the prompt tokens a step takes, and the engine's batch */
        sp.prefill_chunk = sp.n_batch = devs.n_batch;
    sp.n_ctx = n_ctx > 0
                   ? (uint32_t)n_ctx
                   : (m->hp.n_ctx_train > 0 && m->hp.n_ctx_train < 2048 ? m->hp.n_ctx_train : 2048);
    if (slots_create(m, tok, &chat, &sp, &slots) != HEARTH_OK) {
        cli_error("cannot set up %lld slots of %u positions", parallel, sp.n_ctx);
        goto done;
    }
    const char *base = strrchr(model_path, '/');
    so.model_name = base ? base + 1 : model_path;
    so.pool = pool != EMBD_POOL_NONE ? pool : embd_pool_of_gguf(m->hp.pooling_type);
    int st = serve_start(&so, slots, tok, &chat, &srv);
    if (st != 0) {
        rc = st;
        goto done;
    }
    char kvt[64];
    kvq_pair_name(sp.kv_type_k, sp.kv_type_v, kvt, sizeof kvt);
    struct slots_stats ss;
    slots_get_stats(slots, &ss);
    char where[256];
    size_t wl = 0;
    where[0] = '\0';
    for (int k = 0; k < ss.n_mem && wl < sizeof where; k++)
        wl += (size_t)snprintf(where + wl, sizeof where - wl, "%s%.1f MiB KV on %s",
                               k ? ", " : "", (double)ss.mem[k].kv / 1048576.0,
                               ss.mem[k].device);
    fprintf(stderr, "%s\n", slots_describe(slots));
    fprintf(stderr,
            "hearth: serving %s: %lld slots x %u positions, prompts in steps of %d tokens "
            "(batch %d), KV cache %s (%s), chat format %s%s\n",
            so.model_name, parallel, sp.n_ctx, ss.prefill_chunk, ss.n_batch, kvt, where,
            chat_format_name(chat.fmt),
            so.api_key ? ", API key required" : "");
    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    fprintf(stderr, "hearth: %s: draining (up to %.1f s) and exiting\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", (double)so.drain_ms / 1000.0);
    serve_stop(srv);
    rc = 0;
done:
    slots_destroy(slots);
    tok_free(tok);
    model_free(m);
    if (rc == 0)
        fprintf(stderr, "hearth: server stopped\n");
    return rc;
}

#endif
