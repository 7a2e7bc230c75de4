/*
 * cmd-plan: `hearth plan MODEL` prints where every tensor of a model would
 * live on the detected (or described) devices, the memory per device, the
 * predicted prefill and decode speed and the reasons; `--compare-quants`
 * replans the same shapes under ten quantization mixes. All the deciding is
 * core/plan*.c; this file parses flags and formats text, JSON and SVG.
 *
 * Devices: without --device the backend registry's devices are planned for
 * (free memory as budget; bandwidths and FLOP rates measured by `hearth
 * devices` and read from its cache, else assumed); with --device the GPUs are
 * exactly those described, to plan for another machine. The host's RAM is
 * detected unless --host describes it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch-info.h"
#include "cli.h"
#include "err.h"
#include "gguf.h"
#include "kv-quant.h"
#include "plan.h"
#include "quant-mix.h"
#include "quant.h"

#define MAX_SPECS (PLAN_MAX_DEVICES - 1)

struct plan_cli {
    const char *model;
    const char *dev_specs[MAX_SPECS];
    int n_dev_specs;
    const char *host_spec, *pcie_spec;
    uint64_t vram_budget;
    bool json, verbose, compare, imatrix;
    const char *svg_path;
    struct plan_opts opts;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: hearth plan MODEL [--device KIND:MEM:BW[:FLOPS]]... [--host MEM:BW[:FLOPS]]\n"
            "                   [--pcie BW] [--vram-budget SIZE] [-c N] [--parallel N]\n"
            "                   [--kv-type T] [--kv-type-k T] [--kv-type-v T] [--kv-window N]\n"
            "                   [-b N] [--prompt N]\n"
            "                   [--swa-full] [-ngl N] [--no-stream]\n"
            "                   [-v] [--json] [--compare-quants [--imatrix] [--svg FILE]]\n\n"
            "Plans where each tensor of MODEL lives (GPU, host RAM and CPU, or host RAM\n"
            "streamed to the GPU for prefill), the memory per device and the predicted\n"
            "speed, with the reason for each decision. Only the header is read, so a\n"
            "header-only file (hearth synth --header-only) is enough.\n\n"
            "  --device SPEC     describe a GPU instead of detecting: cuda:24GiB:1008GB/s,\n"
            "                    vulkan:8GiB:256GB/s:20TFLOPS (repeatable)\n"
            "  --host SPEC       describe the host: 64GiB:70GB/s[:2TFLOPS]\n"
            "  --pcie BW         host-to-GPU bandwidth, e.g. 25GB/s\n"
            "  --vram-budget S   cap every GPU's budget, e.g. 20GiB\n"
            "  -c N              context per sequence (default min(training, 4096))\n"
            "  --parallel N      sequences, each with its own context (default 1)\n"
            "  --kv-type T       KV cache type of K and V: f16 (default), q8_0, q4_0, rot4, rot3\n"
            "  --kv-type-k T     ... of K only; --kv-type-v T: of V only\n"
            "  --kv-window N     count an exact f16 ring of N positions per layer and\n"
            "                    sequence beside a compressed cache, a sliding-window\n"
            "                    layer's of its whole window (docs/kv-cache.md)\n"
            "  --swa-full        sliding-window layers keep every position's K/V, as\n"
            "                    global layers do, so any rewind reuses the cache\n"
            "  -b N              prefill micro-batch (default 512)\n"
            "  --prompt N        prompt length for the prefill prediction (default 512)\n"
            "  -ngl N            manual: first N layers on the GPU (N > layers adds the head)\n"
            "  --no-stream       never stream host weights to the GPU for prefill\n"
            "  -v                add the per-tensor table\n"
            "  --json            print the plan as JSON\n"
            "  --compare-quants  one row per quantization scheme, from this model's shapes\n"
            "  --imatrix         (with --compare-quants) size mixes as made with an imatrix\n"
            "  --svg FILE        (with --compare-quants) draw the comparison as a chart\n");
}

static int parse_args(int argc, char **argv, struct plan_cli *c)
{
    memset(c, 0, sizeof *c);
    plan_opts_default(&c->opts);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(a, "--json")) {
            c->json = true;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            c->verbose = true;
        } else if (!strcmp(a, "--compare-quants")) {
            c->compare = true;
        } else if (!strcmp(a, "--imatrix")) {
            c->imatrix = true;
        } else if (!strcmp(a, "--no-stream")) {
            c->opts.no_stream = true;
        } else if (!strcmp(a, "--swa-full")) {
            c->opts.swa_full = true;
        } else if (a[0] == '-' && a[1]) {
            if (!v) {
                fprintf(stderr, "hearth plan: %s needs a value\n", a);
                return 2;
            }
            i++;
            if (!strcmp(a, "--device")) {
                if (c->n_dev_specs == MAX_SPECS) {
                    fprintf(stderr, "hearth plan: at most %d --device\n", MAX_SPECS);
                    return 2;
                }
                c->dev_specs[c->n_dev_specs++] = v;
            } else if (!strcmp(a, "--host")) {
                c->host_spec = v;
            } else if (!strcmp(a, "--pcie")) {
                c->pcie_spec = v;
            } else if (!strcmp(a, "--svg")) {
                c->svg_path = v;
            } else if (!strcmp(a, "--vram-budget")) {
                if (plan_parse_bytes("--vram-budget", v, &c->vram_budget)) {
                    fprintf(stderr, "hearth plan: %s\n", hearth_last_error());
                    return 2;
                }
            } else if (!strcmp(a, "--kv-type") || !strcmp(a, "--kv-type-k") ||
                       !strcmp(a, "--kv-type-v")) {
                enum kvq_type t;
                if (kvq_type_from_name(v, &t) != HEARTH_OK) {
                    fprintf(stderr, "hearth plan: %s: %s\n", a, hearth_last_error());
                    return 2;
                }
                if (strcmp(a, "--kv-type-v"))
                    c->opts.kv_type_k = (int)t;
                if (strcmp(a, "--kv-type-k"))
                    c->opts.kv_type_v = (int)t;
            } else if (!strcmp(a, "--kv-window")) {
                if (cli_parse_i64(a, v, 0, 1 << 24, &n))
                    return 2;
                c->opts.kv_window = (uint32_t)n;
            } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
                if (cli_parse_i64(a, v, 1, 1 << 24, &n))
                    return 2;
                c->opts.n_ctx = (uint32_t)n;
            } else if (!strcmp(a, "--parallel") || !strcmp(a, "-np")) {
                if (cli_parse_i64(a, v, 1, 4096, &n))
                    return 2;
                c->opts.n_parallel = (uint32_t)n;
            } else if (!strcmp(a, "-b") || !strcmp(a, "--batch")) {
                if (cli_parse_i64(a, v, 1, 65536, &n))
                    return 2;
                c->opts.n_batch = (uint32_t)n;
            } else if (!strcmp(a, "--prompt")) {
                if (cli_parse_i64(a, v, 1, 1 << 24, &n))
                    return 2;
                c->opts.n_prompt = (uint32_t)n;
            } else if (!strcmp(a, "-ngl") || !strcmp(a, "--n-gpu-layers")) {
                if (cli_parse_i64(a, v, 0, 100000, &n))
                    return 2;
                c->opts.n_gpu_layers = (int32_t)n;
            } else {
                fprintf(stderr, "hearth plan: unknown option '%s'\n\n", a);
                usage(stderr);
                return 2;
            }
        } else if (!c->model) {
            c->model = a;
        } else {
            fprintf(stderr, "hearth plan: more than one model ('%s', '%s')\n", c->model, a);
            return 2;
        }
    }
    if (!c->model) {
        fprintf(stderr, "hearth plan: a MODEL file is required\n\n");
        usage(stderr);
        return 2;
    }
    if (c->svg_path && !c->compare) {
        fprintf(stderr, "hearth plan: --svg draws the --compare-quants chart; add it\n");
        return 2;
    }
    return 0;
}

static int build_devices(const struct plan_cli *c, struct plan_devices *d)
{
    plan_devices_init(d);
    struct plan_devices det;
    plan_devices_init(&det);
    plan_devices_detect(&det);
    if (c->n_dev_specs == 0) {
        *d = det;
    } else {
        d->dev[PLAN_HOST] = det.dev[PLAN_HOST];
        memcpy(d->cache_note, det.cache_note, sizeof d->cache_note);
    }
    if (c->host_spec && plan_devices_set_host(d, c->host_spec))
        goto bad;
    for (int i = 0; i < c->n_dev_specs; i++)
        if (plan_devices_add(d, c->dev_specs[i]))
            goto bad;
    if (c->pcie_spec && plan_devices_set_pcie(d, c->pcie_spec))
        goto bad;
    if (c->vram_budget)
        plan_devices_cap(d, c->vram_budget);
    return 0;
bad:
    fprintf(stderr, "hearth plan: %s\n", hearth_last_error());
    return 2;
}

/* ---- JSON ------------------------------------------------------------------- */

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static const char *kind_name(enum plan_kind k)
{
    return k == PLAN_KIND_DEVICE ? "device" : k == PLAN_KIND_HOST ? "host" : "stream";
}

static const char *resident_name(const struct plan *p, int d)
{
    return d == PLAN_HOST ? "host" : p->devs.dev[d].name;
}

/* The exact KV window the plan counts: 0 without one or for an f16/f16 cache (plan-kv.c). */
static uint32_t plan_window(const struct plan *p)
{
    if (p->opts.kv_type_k == KVQ_F16 && p->opts.kv_type_v == KVQ_F16)
        return 0;
    return p->opts.kv_window < p->opts.n_ctx ? p->opts.kv_window : p->opts.n_ctx;
}

static void print_json(const struct plan_model *m, const struct plan *p)
{
    printf("{\n  \"model\": {\"name\": ");
    json_str(stdout, m->name);
    printf(", \"arch\": ");
    json_str(stdout, m->arch.arch);
    printf(", \"n_layer\": %u, \"n_tensors\": %zu, \"tensor_bytes\": %llu, \"params\": %llu},\n",
           m->arch.n_layer, m->n_tensors, (unsigned long long)plan_model_bytes(m),
           (unsigned long long)plan_model_params(m));
    printf("  \"options\": {\"n_ctx\": %u, \"n_parallel\": %u, \"kv_type_k\": \"%s\", "
           "\"kv_type_v\": \"%s\", \"kv_window\": %u, \"swa_full\": %s, \"n_batch\": %u, "
           "\"n_prompt\": %u, \"n_logits\": %u, \"n_gpu_layers\": %d},\n",
           p->opts.n_ctx, p->opts.n_parallel, kvq_type_name((enum kvq_type)p->opts.kv_type_k),
           kvq_type_name((enum kvq_type)p->opts.kv_type_v), plan_window(p),
           p->opts.swa_full ? "true" : "false", p->opts.n_batch,
           p->opts.n_prompt, p->opts.n_logits, p->opts.n_gpu_layers);
    printf("  \"devices\": [\n");
    for (int d = 0; d < p->devs.n; d++) {
        const struct plan_device *dv = &p->devs.dev[d];
        const struct plan_usage *u = &p->use[d];
        printf("    {\"name\": \"%s\", \"kind\": \"%s\", \"budget_bytes\": %llu, "
               "\"planned_bytes\": %llu, \"alloc_bytes\": %llu, \"weights_bytes\": %llu, "
               "\"kv_bytes\": %llu, \"scratch_bytes\": %llu, \"staging_bytes\": %llu, "
               "\"host_staging_bytes\": %llu, \"stream_bytes\": %llu, "
               "\"reserve_bytes\": %llu, \"max_buffer_bytes\": %llu, "
               "\"read_per_token\": %llu, \"mem_bw\": %.0f, "
               "\"flops\": %.0f, \"h2d_bw\": %.0f, \"matvec_q4_k_bw\": %.0f, \"op_s\": %.3g, "
               "\"decode_s\": %.6g, \"decode_ops\": %.0f, \"assumed\": {\"budget\": %s, "
               "\"mem_bw\": %s, \"flops\": %s}, \"measured\": {\"mem_bw\": %s, \"h2d_bw\": %s, "
               "\"matvec\": %s, \"op_s\": %s, \"flops\": %s}}%s\n",
               dv->name, dv->kind == PLAN_DEV_CPU ? "cpu" : dv->kind == PLAN_DEV_CUDA ? "cuda"
                                                                                       : "vulkan",
               (unsigned long long)u->budget, (unsigned long long)u->total,
               (unsigned long long)plan_device_alloc_bytes(p, d), (unsigned long long)u->weights,
               (unsigned long long)u->kv, (unsigned long long)u->scratch,
               (unsigned long long)u->staging, (unsigned long long)u->host_staging,
               (unsigned long long)u->stream,
               (unsigned long long)u->reserve, (unsigned long long)dv->max_buffer_bytes,
               (unsigned long long)u->read_per_token, dv->mem_bw, dv->flops,
               d == PLAN_HOST ? 0.0 : dv->h2d_bw, dv->mv_bw[HEARTH_DTYPE_Q4_K],
               plan_op_seconds(dv), u->decode_s, u->decode_ops,
               dv->budget_assumed ? "true" : "false", dv->mem_bw_assumed ? "true" : "false",
               dv->flops_assumed ? "true" : "false", dv->mem_bw_measured ? "true" : "false",
               dv->h2d_bw_measured ? "true" : "false",
               dv->mv_bw[HEARTH_DTYPE_Q4_K] > 0 ? "true" : "false",
               dv->op_s > 0 ? "true" : "false", dv->flops_measured ? "true" : "false",
               d + 1 < p->devs.n ? "," : "");
    }
    printf("  ],\n  \"predicted\": {\"prefill_tps\": %.3f, \"decode_tps\": %.4f, "
           "\"decode_tps_total\": %.4f, \"host_ceiling_tps\": %.4f, "
           "\"host_bytes_per_token\": %llu},\n",
           p->prefill_tps, p->decode_tps, p->decode_tps_total, p->host_ceiling_tps,
           (unsigned long long)p->host_read_per_token);
    printf("  \"layers\": [\n");
    for (uint32_t l = 0; l < p->n_layer; l++)
        printf("    {\"layer\": %u, \"attn\": \"%s\", \"ffn\": \"%s\", \"kv_bytes\": %llu}%s\n", l,
               p->devs.dev[p->layers[l].attn_dev].name,
               p->layers[l].ffn_dev >= 0 ? p->devs.dev[p->layers[l].ffn_dev].name : "split",
               (unsigned long long)p->layers[l].kv_bytes, l + 1 < p->n_layer ? "," : "");
    printf("  ],\n  \"reasons\": [\n");
    for (size_t i = 0; i < p->n_reasons; i++) {
        printf("    ");
        json_str(stdout, p->reasons[i]);
        printf("%s\n", i + 1 < p->n_reasons ? "," : "");
    }
    printf("  ],\n  \"tensors\": [\n");
    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct plan_tensor *t = &p->tensors[i];
        printf("    {\"name\": ");
        json_str(stdout, m->tensors[i].name);
        printf(", \"type\": \"%s\", \"bytes\": %llu, \"device\": \"%s\", \"resident\": \"%s\", "
               "\"prefill_device\": \"%s\", \"kind\": \"%s\", \"offset\": %llu, "
               "\"buffers\": %u}%s\n",
               hearth_dtype_name(m->tensors[i].type) ? hearth_dtype_name(m->tensors[i].type)
                                                      : "?",
               (unsigned long long)m->tensors[i].nbytes, p->devs.dev[t->compute].name,
               resident_name(p, t->resident), p->devs.dev[t->prefill].name, kind_name(t->kind),
               (unsigned long long)t->offset, plan_tensor_buffers(m, p, i),
               i + 1 < m->n_tensors ? "," : "");
    }
    printf("  ]\n}\n");
}

/* ---- text ------------------------------------------------------------------- */

static double gib(uint64_t b)
{
    return (double)b / 1073741824.0;
}

/* Layer ranges with the same label: "0-38 cuda0, 39 split, 40-79 cpu". */
static void print_layer_map(const struct plan *p, bool attn)
{
    uint32_t a = 0;
    printf("  %-10s", attn ? "attention" : "ffn");
    while (a < p->n_layer) {
        int dv = attn ? p->layers[a].attn_dev : p->layers[a].ffn_dev;
        uint32_t b = a;
        while (b + 1 < p->n_layer &&
               (attn ? p->layers[b + 1].attn_dev : p->layers[b + 1].ffn_dev) == dv)
            b++;
        const char *name = dv >= 0 ? p->devs.dev[dv].name : "split GPU+cpu";
        if (b > a)
            printf("%s%u-%u %s", a ? ", " : " ", a, b, name);
        else
            printf("%s%u %s", a ? ", " : " ", a, name);
        a = b + 1;
    }
    printf("\n");
}

static void print_text(const struct plan_model *m, const struct plan *p, bool verbose)
{
    uint64_t bytes = plan_model_bytes(m);
    printf("model: %s (%s, %u layers, %zu tensors, %.2f GiB, %.2f B parameters)\n", m->name,
           m->arch.arch, m->arch.n_layer, m->n_tensors, gib(bytes),
           (double)plan_model_params(m) / 1e9);
    uint64_t kv_all = 0;
    for (uint32_t l = 0; l < p->n_layer; l++)
        kv_all += p->layers[l].kv_bytes;
    char kvt[32];
    kvq_pair_name(p->opts.kv_type_k, p->opts.kv_type_v, kvt, sizeof kvt);
    char win[128] = "";
    if (plan_window(p) > 0)
        snprintf(win, sizeof win, ", exact window %u", plan_window(p));
    uint32_t n_local = 0;
    for (uint32_t l = 0; l < m->arch.n_layer; l++)
        n_local += arch_layer_swa(&m->arch, l);
    const uint32_t ring = plan_kv_layer_window(&p->opts, m->arch.sliding_window);
    size_t k = strlen(win);
    if (n_local > 0 && p->opts.swa_full && ring > 0)
        snprintf(win + k, sizeof win - k, ", %u sliding-window layers keep every row and %u exact",
                 n_local, ring);
    else if (n_local > 0 && p->opts.swa_full)
        snprintf(win + k, sizeof win - k, ", %u sliding-window layers keep every row", n_local);
    else if (n_local > 0 && ring > 0)
        snprintf(win + k, sizeof win - k, ", %u sliding-window layers keep %u", n_local, ring);
    printf("context %u x %u sequence%s, KV %s%s (%.2f GiB), batch %u\n\n", p->opts.n_ctx,
           p->opts.n_parallel, p->opts.n_parallel == 1 ? "" : "s", kvt, win, gib(kv_all),
           p->opts.n_batch);
    printf("%-9s %10s %10s %9s %9s %9s %9s %9s %10s  %s\n", "device", "weights", "KV",
           "scratch", "staging", "stream", "reserve", "total", "budget", "bandwidth");
    for (int d = 0; d < p->devs.n; d++) {
        const struct plan_device *dv = &p->devs.dev[d];
        const struct plan_usage *u = &p->use[d];
        printf("%-9s %6.2f GiB %6.2f GiB %5.2f GiB %5.2f GiB %5.2f GiB %5.2f GiB %5.2f GiB "
               "%6.2f GiB  %.0f GB/s%s\n",
               dv->name, gib(u->weights), gib(u->kv), gib(u->scratch),
               gib(u->staging + u->host_staging), /* the host's: the GPU backends' too */
               gib(u->stream), gib(u->reserve), gib(u->total), gib(u->budget), dv->mem_bw / 1e9,
               dv->mem_bw_assumed   ? " (assumed)"
               : dv->mem_bw_measured ? " (measured)"
                                     : "");
    }
    printf("\nlayers:\n");
    print_layer_map(p, true);
    print_layer_map(p, false);
    printf("\npredicted: prefill %.0f tok/s (%u-token prompt), decode %.2f tok/s", p->prefill_tps,
           p->opts.n_prompt, p->decode_tps);
    if (p->opts.n_parallel > 1)
        printf(" per sequence, %.2f tok/s for all %u", p->decode_tps_total, p->opts.n_parallel);
    if (p->host_ceiling_tps > 0)
        printf(" (host ceiling %.2f tok/s)", p->host_ceiling_tps);
    printf("\n\nwhy:\n");
    for (size_t i = 0; i < p->n_reasons; i++)
        printf("  - %s\n", p->reasons[i]);
    if (verbose) {
        printf("\n%-28s %-7s %10s %-9s %-9s %-9s %-6s %12s\n", "tensor", "type", "MiB", "resident",
               "compute", "prefill", "kind", "offset");
        for (size_t i = 0; i < m->n_tensors; i++) {
            const struct plan_tensor *t = &p->tensors[i];
            printf("%-28s %-7s %10.2f %-9s %-9s %-9s %-6s %12llu\n", m->tensors[i].name,
                   hearth_dtype_name(m->tensors[i].type) ? hearth_dtype_name(m->tensors[i].type)
                                                          : "?",
                   (double)m->tensors[i].nbytes / 1048576.0, resident_name(p, t->resident),
                   p->devs.dev[t->compute].name, p->devs.dev[t->prefill].name, kind_name(t->kind),
                   (unsigned long long)t->offset);
        }
    }
}

/* ---- compare-quants ------------------------------------------------------------ */

/*
 * Largest first, as the 70B sizes fall (facts sheet §7.7; the IQ1-IQ3 mixes from
 * core/quant-mix's rules). The lattice mixes that llama-quantize makes only with an
 * importance matrix (quant_mix.needs_imatrix) are always sized as made with one,
 * whatever --imatrix says, and are marked in the table.
 */
static const char *const schemes[] = {
    "F16",    "Q8_0",   "Q6_K",   "Q5_K_M",  "Q4_K_M", "Q4_K_S",  "Q4_0",
    "IQ4_XS", "Q3_K_M", "IQ3_M",  "IQ3_S",   "IQ3_XS", "IQ3_XXS", "Q2_K",
    "IQ2_M",  "IQ2_S",  "IQ2_XS", "IQ2_XXS", "IQ1_M",  "IQ1_S",
};
#define N_SCHEMES ((int)(sizeof schemes / sizeof schemes[0]))

static int compare_quants(const struct plan_cli *c, const struct plan_model *m,
                          const struct plan_devices *d)
{
    struct plan_svg_row rows[N_SCHEMES];
    char errs[N_SCHEMES][256];
    bool needs_imatrix[N_SCHEMES] = {false}, sized_imatrix[N_SCHEMES] = {false};
    double vram = 0;
    uint32_t ctx = 0, npar = 0;
    for (int g = 1; g < d->n; g++)
        vram += (double)d->dev[g].budget_bytes;
    memset(rows, 0, sizeof rows);
    for (int s = 0; s < N_SCHEMES; s++) {
        struct plan_svg_row *r = &rows[s];
        const struct quant_mix *mix;
        struct plan_model q;
        struct plan p;
        r->type = schemes[s];
        errs[s][0] = '\0';
        if (quant_mix_from_name(schemes[s], &mix)) {
            snprintf(errs[s], sizeof errs[s], "%s", hearth_last_error());
            continue;
        }
        needs_imatrix[s] = mix->needs_imatrix;
        sized_imatrix[s] = c->imatrix || mix->needs_imatrix;
        if (plan_model_retype(m, mix, sized_imatrix[s], &q)) {
            snprintf(errs[s], sizeof errs[s], "%s", hearth_last_error());
            continue;
        }
        if (plan_make(&q, d, &c->opts, &p)) {
            snprintf(errs[s], sizeof errs[s], "%s", hearth_last_error());
            plan_model_free(&q);
            continue;
        }
        r->ok = true;
        r->file_bytes = (double)plan_model_bytes(&q);
        r->bpw = 8.0 * r->file_bytes / (double)plan_model_params(&q);
        double gw = 0;
        for (size_t i = 0; i < q.n_tensors; i++)
            if (p.tensors[i].resident != PLAN_HOST)
                gw += (double)q.tensors[i].nbytes;
        r->gpu_share = r->file_bytes > 0 ? gw / r->file_bytes : 0;
        for (int g = 1; g < p.devs.n; g++)
            r->vram_bytes += (double)p.use[g].total;
        r->ram_bytes = (double)p.use[PLAN_HOST].total;
        r->prefill_tps = p.prefill_tps;
        r->decode_tps = p.decode_tps;
        r->ram_over = p.host_overcommitted;
        ctx = p.opts.n_ctx;
        npar = p.opts.n_parallel;
        plan_free(&p);
        plan_model_free(&q);
    }
    if (c->json) {
        printf("{\n  \"model\": ");
        json_str(stdout, m->name);
        printf(",\n  \"vram_budget_bytes\": %.0f,\n  \"imatrix\": %s,\n  \"schemes\": [\n", vram,
               c->imatrix ? "true" : "false");
        for (int s = 0; s < N_SCHEMES; s++) {
            const struct plan_svg_row *r = &rows[s];
            if (r->ok)
                printf("    {\"type\": \"%s\", \"file_bytes\": %.0f, \"bpw\": %.4f, "
                       "\"vram_bytes\": %.0f, \"ram_bytes\": %.0f, \"gpu_share\": %.4f, "
                       "\"prefill_tps\": %.3f, \"decode_tps\": %.4f, \"ram_over\": %s, "
                       "\"needs_imatrix\": %s, \"imatrix\": %s, \"ppl_cost\": null}",
                       r->type, r->file_bytes, r->bpw, r->vram_bytes, r->ram_bytes, r->gpu_share,
                       r->prefill_tps, r->decode_tps, r->ram_over ? "true" : "false",
                       needs_imatrix[s] ? "true" : "false", sized_imatrix[s] ? "true" : "false");
            else {
                printf("    {\"type\": \"%s\", \"error\": ", r->type);
                json_str(stdout, errs[s]);
                printf("}");
            }
            printf("%s\n", s + 1 < N_SCHEMES ? "," : "");
        }
        printf("  ]\n}\n");
    } else {
        printf("model: %s (%s, %u layers); VRAM budget %.2f GiB; context %u x %u; sizes are "
               "tensor data%s\n\n",
               m->name, m->arch.arch, m->arch.n_layer, vram / 1073741824.0,
               ctx, npar,
               c->imatrix ? " (imatrix mixes)" : "");
        printf("%-8s %10s %6s %10s %10s %7s %12s %11s %9s\n", "scheme", "size GB", "bpw",
               "VRAM GiB", "RAM GiB", "on GPU", "prefill t/s", "decode t/s", "ppl cost");
        for (int s = 0; s < N_SCHEMES; s++) {
            const struct plan_svg_row *r = &rows[s];
            if (!r->ok) {
                printf("%-8s n/a: %s\n", r->type, errs[s]);
                continue;
            }
            char label[16];
            snprintf(label, sizeof label, "%s%s", r->type, needs_imatrix[s] ? "*" : "");
            printf("%-8s %10.2f %6.2f %10.2f %9.2f%s %6.0f%% %12.0f %11.2f %9s\n", label,
                   r->file_bytes / 1e9, r->bpw, r->vram_bytes / 1073741824.0,
                   r->ram_bytes / 1073741824.0, r->ram_over ? "!" : " ", 100.0 * r->gpu_share,
                   r->prefill_tps, r->decode_tps, "-");
        }
        printf("\nppl cost: '-' where hearth has not measured this model's perplexity under the "
               "scheme.\n"
               "! : needs more RAM than the host has; weights would be paged from disk.\n"
               "* : llama-quantize makes this mix only with an importance matrix; sized as "
               "made with one.\n");
    }
    if (c->svg_path) {
        char title[160];
        snprintf(title, sizeof title, "%s: quantization schemes on %.1f GiB of VRAM", m->name,
                 vram / 1073741824.0);
        if (plan_svg_write(c->svg_path, title, rows, N_SCHEMES, vram)) {
            cli_error("cannot write %s", c->svg_path);
            return 1;
        }
        if (!c->json)
            printf("chart written to %s\n", c->svg_path);
    }
    return 0;
}

int cmd_plan(int argc, char **argv)
{
    struct plan_cli c;
    int rc = parse_args(argc, argv, &c);
    if (rc)
        return rc == 1 ? 0 : rc;
    struct plan_devices d;
    if ((rc = build_devices(&c, &d)))
        return rc;
    err_clear();
    struct gguf_file *f = NULL;
    if (gguf_open(c.model, &f)) {
        cli_error("cannot open %s", c.model);
        return 1;
    }
    struct plan_model m;
    if (plan_model_from_gguf(f, &m)) {
        cli_error("cannot plan %s", c.model);
        gguf_close(f);
        return 1;
    }
    gguf_close(f);
    if (c.compare) {
        rc = compare_quants(&c, &m, &d);
        plan_model_free(&m);
        return rc;
    }
    struct plan p;
    if (plan_make(&m, &d, &c.opts, &p)) {
        cli_error("cannot plan %s", c.model);
        plan_model_free(&m);
        return 1;
    }
    if (c.json)
        print_json(&m, &p);
    else
        print_text(&m, &p, c.verbose);
    plan_free(&p);
    plan_model_free(&m);
    return 0;
}
