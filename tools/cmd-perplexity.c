/*
 * cmd-perplexity: `hearth perplexity -m MODEL -f TEXT ...` scores a text with
 * a model (core/perplexity.h has the method) and optionally saves the top-k
 * log-probabilities of every scored token, or compares them with a file saved
 * by another run (another quantization, backend or thread count) as a KL
 * divergence.
 *
 * `--kl-divergence` with no file instead measures a KV cache type in one
 * run: a second engine on the same model, devices, -ngl and -c but with an
 * f16 KV cache evaluates every chunk beside the one with the --kv-type* under
 * test, and the full rows are compared (ppl_evaluate_pair). The flag's value
 * is optional so that the older `--kl-divergence FILE` keeps working: a
 * following argument that starts with '-' (or none) means "no file".
 *
 * Output: one progress entry per chunk on stderr ("[1]12.3456,[2]..."), the
 * running perplexity after that chunk; on stdout a few info lines, the KL
 * statistics when asked, and always last the line
 * "perplexity: X +/- Y" (Y the standard error) that scripts parse. With
 * --json, stdout is one JSON object instead (bench/kv-quality.sh reads it).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "engine.h"
#include "err.h"
#include "kv-quant.h"
#include "model.h"
#include "perplexity.h"
#include "progress.h"
#include "tokenizer.h"

/* Belongs in tools/cli.h with the other subcommands (owned by the lead). */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: hearth perplexity [-m MODEL] -f TEXT [-c 512] [-t N] [--chunks N]\n"
            "                         [--save-logits FILE] [--kl-divergence [FILE]] [--json]\n"
            "                         [--device NAME] [-ngl N|auto|all] [--kv-type T]\n\n"
            "Scores TEXT in non-overlapping chunks of -c tokens, each from an empty cache;\n"
            "the second half of every chunk is scored (each token predicted with at least\n"
            "c/2 tokens of context). Prints the running perplexity per chunk on stderr and\n"
            "ends with 'perplexity: X +/- Y' (Y: standard error).\n\n"
            "  -m MODEL              GGUF model (default %s)\n"
            "  -f TEXT               UTF-8 text file\n"
            "  -c N                  tokens per chunk (default 512)\n"
            "  -t N                  threads (default: physical cores)\n"
            "  --chunks N            score at most N chunks (default: all whole chunks)\n"
            "  --device NAME         run on NAME (repeatable; see `hearth devices`)\n"
            "  -ngl N                layers on the GPU(s): a count, all, or auto (default)\n"
            "  --vram-budget S       plan as if no GPU had more than S free (e.g. 24GiB)\n"
            "  -b N                  tokens per prefill batch (default 512 with a GPU,\n"
            "                        else 64)\n"
            "  --kv-type T           KV cache type (f16, q8_0, q4_0, rot4, rot3); also\n"
            "                        --kv-type-k T / --kv-type-v T\n"
            "  --kv-window N         keep the last N positions' K/V exact (f16) beside a\n"
            "                        compressed cache; sliding-window layers keep their\n"
            "                        whole window (docs/kv-cache.md)\n"
            "  --swa-full            sliding-window layers keep every position's K/V\n"
            "                        (the --kl-divergence reference too)\n"
            "  --no-stream           never copy host weights to a GPU for prefill\n"
            "  --save-logits FILE    write the top-%d log-probs of every scored token\n"
            "  --kl-divergence FILE  compare with a file saved by another run of the same\n"
            "                        text and -c: mean KL(saved || this run), its standard\n"
            "                        error, 99th percentile, max, and top-1 agreement\n"
            "  --kl-divergence       (no file) also run an f16-KV reference engine and\n"
            "                        compare full rows: both perplexities, mean/p99/max\n"
            "                        KL(f16 || --kv-type), top-1 agreement, bits per value\n"
            "  --json                print one JSON object on stdout instead of the text\n",
            cli_default_model(), PPL_TOPK);
}

struct run_state {
    struct ppl_logfile *save; /* NULL unless --save-logits */
    struct ppl_logfile *base; /* NULL unless --kl-divergence */
    double *kld;              /* [n_scored] per-token KLD */
    int64_t n_agree;
    double base_nll_sum;
};

static hearth_status on_token(void *ud, int64_t index, const float *logits, uint32_t n_vocab,
                              double lse, int32_t target)
{
    struct run_state *s = ud;
    hearth_status st;
    if (s->save && (st = ppl_logfile_write(s->save, logits, n_vocab, lse, target)) != HEARTH_OK)
        return st;
    if (s->base) {
        struct ppl_kld_token k;
        if ((st = ppl_logfile_compare(s->base, logits, n_vocab, lse, target, &k)) != HEARTH_OK)
            return st;
        s->kld[index] = k.kld;
        s->n_agree += k.top1_agree;
        s->base_nll_sum += k.base_nll;
    }
    return HEARTH_OK;
}

static void on_chunk(void *ud, int chunk, const struct ppl_acc *acc)
{
    (void)ud;
    fprintf(stderr, "[%d]%.4f,", chunk + 1, ppl_acc_ppl(acc));
    fflush(stderr);
}

/* What the end of a run reports (text lines, or the --json object). */
struct report {
    const char *model_path, *text_path;
    int k_type, v_type;
    int kv_window; /* exact window in effect (0: none, or an f16/f16 cache) */
    bool swa_full; /* --swa-full: sliding-window layers keep every row (the reference too) */
    uint32_t head_dim;
    long long n_ctx;
    int n_chunks;
    int64_t n_scored;
    double ppl, ppl_err;
    bool has_ref;        /* a reference: --kl-divergence, with or without a file */
    bool ref_in_process; /* the f16-KV engine rather than a file */
    const char *ref_file;
    double ppl_ref;
    struct ppl_kld_summary ks;
};

/* A JSON number: finite values to 10 significant digits, else null (JSON has no inf/nan). */
static void json_num(const char *key, double v, bool comma)
{
    if (isfinite(v))
        printf("\"%s\": %.10g%s", key, v, comma ? ", " : "");
    else
        printf("\"%s\": null%s", key, comma ? ", " : "");
}

static void print_report(const struct report *r, bool json)
{
    const double k_bpv = kvq_bits_per_value((enum kvq_type)r->k_type, (int)r->head_dim);
    const double v_bpv = kvq_bits_per_value((enum kvq_type)r->v_type, (int)r->head_dim);
    const double delta = r->has_ref && r->ppl_ref > 0.0
                             ? 100.0 * (r->ppl - r->ppl_ref) / r->ppl_ref
                             : 0.0;
    if (json) {
        printf("{");
        json_num("ppl", r->ppl, true);
        json_num("ppl_err", r->ppl_err, true);
        if (r->has_ref) {
            json_num("ppl_ref", r->ppl_ref, true);
            json_num("ppl_delta_pct", delta, true);
            json_num("kld_mean", r->ks.mean, true);
            json_num("kld_mean_err", r->ks.mean_err, true);
            json_num("kld_p99", r->ks.p99, true);
            json_num("kld_max", r->ks.max, true);
            json_num("top1_pct", 100.0 * r->ks.top1, true);
            printf("\"reference\": \"%s\", ", r->ref_in_process ? "f16 kv" : "file");
        }
        printf("\"k_type\": \"%s\", \"v_type\": \"%s\", ",
               kvq_type_name((enum kvq_type)r->k_type), kvq_type_name((enum kvq_type)r->v_type));
        json_num("k_bpv", k_bpv, true);
        json_num("v_bpv", v_bpv, true);
        printf("\"kv_window\": %d, \"swa_full\": %s, ", r->kv_window,
               r->swa_full ? "true" : "false");
        printf("\"n_ctx\": %lld, \"n_chunks\": %d, \"n_tokens_scored\": %lld}\n", r->n_ctx,
               r->n_chunks, (long long)r->n_scored);
        return;
    }
    if (r->has_ref && r->ref_in_process) {
        char kvt[64];
        kvq_pair_name(r->k_type, r->v_type, kvt, sizeof kvt);
        printf("kv type: %s (K %.2f, V %.2f bits/value at head_dim %u)", kvt, k_bpv, v_bpv,
               r->head_dim);
        if (r->kv_window > 0)
            printf(", exact window of %d positions", r->kv_window);
        if (r->swa_full)
            printf(", sliding-window layers with every row");
        printf("\n");
        printf("reference perplexity: %.4f (f16 KV cache)\n", r->ppl_ref);
        printf("perplexity delta: %+.4f%%\n", delta);
    } else if (r->has_ref) {
        printf("base perplexity: %.4f (from %s)\n", r->ppl_ref, r->ref_file);
    }
    if (r->has_ref) {
        printf("kld mean: %.6g +/- %.6g\n", r->ks.mean, r->ks.mean_err);
        printf("kld p99: %.6g\n", r->ks.p99);
        printf("kld max: %.6g\n", r->ks.max);
        printf("top-1 agreement: %.6f (%lld of %lld)\n", r->ks.top1, (long long)r->ks.n_agree,
               (long long)r->n_scored);
    }
    printf("perplexity: %.4f +/- %.4f\n", r->ppl, r->ppl_err);
}

int cmd_perplexity(int argc, char **argv)
{
    const char *model_path = cli_default_model(), *text_path = NULL;
    const char *save_path = NULL, *kl_path = NULL;
    bool kl_ref = false, json = false;
    long long n_ctx = 512, n_threads = 0, max_chunks = 0;
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
        if (!strcmp(a, "--kl-divergence") && (i + 1 >= argc || argv[i + 1][0] == '-')) {
            kl_ref = true; /* no file: the in-process f16-KV reference */
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "hearth: %s: unknown flag or missing value\n\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        int dv = run_parse_device_flag(a, v, &devs);
        if (dv < 0)
            return 2;
        if (dv > 0)
            continue;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            model_path = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            text_path = v;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            if (cli_parse_i64(a, v, 4, 1 << 20, &n_ctx))
                return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (cli_parse_i64(a, v, 1, 512, &n_threads))
                return 2;
        } else if (!strcmp(a, "--chunks")) {
            if (cli_parse_i64(a, v, 1, 1 << 24, &max_chunks))
                return 2;
        } else if (!strcmp(a, "--save-logits")) {
            save_path = v;
        } else if (!strcmp(a, "--kl-divergence")) {
            kl_path = v;
        } else {
            fprintf(stderr, "hearth: unknown flag '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!text_path) {
        fprintf(stderr, "hearth: perplexity needs a text: -f FILE\n\n");
        usage(stderr);
        return 2;
    }
    if (kl_ref && kl_path) {
        fprintf(stderr, "hearth: --kl-divergence is given both with a file ('%s') and without "
                        "one (the f16-KV reference): choose one\n",
                kl_path);
        return 2;
    }
    if (kl_ref && save_path) {
        fprintf(stderr, "hearth: --save-logits is not written in a run with an f16-KV "
                        "reference (--kl-divergence without a file): run it separately\n");
        return 2;
    }
    if (save_path && kl_path && !strcmp(save_path, kl_path)) {
        fprintf(stderr, "hearth: --save-logits and --kl-divergence name the same file '%s'\n",
                save_path);
        return 2;
    }

    int rc = 1;
    struct model *m = NULL;
    struct tokenizer *tok = NULL;
    struct engine *fc = NULL, *ref = NULL;
    char *text = NULL;
    int32_t *tokens = NULL;
    struct run_state rs = {0};
    size_t text_len = 0;
    int n_chunks = 0;
    hearth_status st;

    if ((st = model_load(model_path, &m)) != HEARTH_OK) {
        cli_error("cannot load %s", model_path);
        goto done;
    }
    if ((st = tok_load(m->gguf, &tok)) != HEARTH_OK) {
        cli_error("%s: cannot load the tokenizer", model_path);
        goto done;
    }
    if ((st = cli_read_file(text_path, &text, &text_len)) != HEARTH_OK) {
        cli_error("cannot read the text");
        goto done;
    }
    if ((st = ppl_tokens(tok, text, text_len, (int)n_ctx, (int)max_chunks, &tokens,
                         &n_chunks)) != HEARTH_OK) {
        cli_error("%s", text_path);
        goto done;
    }
    struct engine_params fp = engine_params_default();
    fp.n_ctx = (uint32_t)n_ctx;
    fp.n_threads = (int)n_threads;
    fp.n_logits = PPL_LOGIT_BATCH; /* its engine_eval calls want that many rows at once */
    if (run_engine_open(m, &fp, &devs, false, &fc))
        goto done;
    if (kl_ref) {
        /* the reference differs from the engine under test only in its KV cache */
        struct run_devices rd = devs;
        rd.kv_type_k = KVQ_F16;
        rd.kv_type_v = KVQ_F16;
        rd.kv_window = 0;
        if (run_engine_open(m, &fp, &rd, false, &ref))
            goto done;
    }
    const uint32_t n_vocab = m->hp.n_vocab;
    const uint64_t n_tok = (uint64_t)n_chunks * (uint64_t)n_ctx;
    const int64_t n_scored = (int64_t)n_chunks * ppl_scored_per_chunk((int)n_ctx);
    if (kl_path) {
        if ((st = ppl_logfile_open(kl_path, n_vocab, (uint32_t)n_ctx, tokens, n_tok,
                                   (uint64_t)n_scored, &rs.base)) != HEARTH_OK) {
            cli_error("--kl-divergence");
            goto done;
        }
        rs.kld = malloc((size_t)n_scored * sizeof *rs.kld);
        if (!rs.kld) {
            cli_error("out of memory");
            goto done;
        }
    }
    if (save_path && (st = ppl_logfile_create(save_path, n_vocab, (uint32_t)n_ctx, tokens,
                                              n_tok, (uint64_t)n_scored, &rs.save)) != HEARTH_OK) {
        cli_error("--save-logits");
        goto done;
    }
    if (!json) {
        printf("model: %s\ntext: %s: %llu tokens in %d chunks of %lld, %lld scored; threads: "
               "%d\n",
               model_path, text_path, (unsigned long long)n_tok, n_chunks, n_ctx,
               (long long)n_scored, engine_n_threads(fc));
        fflush(stdout);
    }

    struct report r = {0};
    r.model_path = model_path;
    r.text_path = text_path;
    r.k_type = devs.kv_type_k;
    r.v_type = devs.kv_type_v;
    if (r.k_type != KVQ_F16 || r.v_type != KVQ_F16)
        r.kv_window = devs.kv_window < n_ctx ? devs.kv_window : (int)n_ctx;
    r.swa_full = devs.swa_full;
    r.head_dim = m->hp.head_dim;
    r.n_ctx = n_ctx;
    r.n_chunks = n_chunks;
    r.n_scored = n_scored;
    if (kl_ref) {
        struct ppl_pair_result pr;
        st = ppl_evaluate_pair(fc, ref, n_vocab, tokens, n_chunks, (int)n_ctx, on_chunk, NULL,
                               &pr);
        fputc('\n', stderr);
        if (st != HEARTH_OK) {
            cli_error("perplexity failed");
            goto done;
        }
        r.ppl = ppl_acc_ppl(&pr.test);
        r.ppl_err = ppl_acc_err(&pr.test);
        r.has_ref = r.ref_in_process = true;
        r.ppl_ref = ppl_acc_ppl(&pr.ref);
        r.ks = pr.kld;
        print_report(&r, json);
        rc = 0;
        goto done;
    }

    struct ppl_acc acc;
    st = ppl_evaluate(fc, n_vocab, tokens, n_chunks, (int)n_ctx, on_token, on_chunk, &rs, &acc);
    fputc('\n', stderr);
    if (st != HEARTH_OK) {
        cli_error("perplexity failed");
        goto done;
    }
    if (rs.save) {
        st = ppl_logfile_close(rs.save);
        rs.save = NULL;
        if (st != HEARTH_OK) {
            cli_error("--save-logits");
            goto done;
        }
        if (!json)
            printf("saved: %s (%lld tokens, top-%d log-probs each)\n", save_path,
                   (long long)n_scored, PPL_TOPK);
    }
    r.ppl = ppl_acc_ppl(&acc);
    r.ppl_err = ppl_acc_err(&acc);
    if (rs.base) {
        r.has_ref = true;
        r.ref_file = kl_path;
        r.ppl_ref = exp(rs.base_nll_sum / (double)n_scored);
        ppl_kld_summarize(rs.kld, n_scored, rs.n_agree, &r.ks);
    }
    print_report(&r, json);
    rc = 0;
done:
    if (rs.save) {
        ppl_logfile_close(rs.save);
        remove(save_path); /* a half-written file would only mislead a later comparison */
    }
    ppl_logfile_close(rs.base);
    free(rs.kld);
    free(tokens);
    free(text);
    engine_destroy(ref);
    engine_destroy(fc);
    tok_free(tok);
    model_free(m);
    return rc;
}
