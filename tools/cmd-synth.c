/*
 * cmd-synth: `hearth synth` writes a random-weight GGUF of a named shape; a
 * thin wrapper over core/synth (which the tests call directly).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "model-presets.h"
#include "quant-mix.h"
#include "synth.h"

static void usage(FILE *out)
{
    char presets[512], types[512];
    model_preset_list(presets, sizeof presets);
    quant_mix_list(types, sizeof types);
    fprintf(out,
            "usage: hearth synth --preset NAME --type TYPE -o FILE [--header-only] [--seed N]\n"
            "                    [--layers N] [--std X] [--norm-std X]\n\n"
            "Writes a GGUF model of a real model's shape with random weights: every tensor\n"
            "of the architecture, typed by llama.cpp's quantization mix TYPE, the metadata a\n"
            "loader needs and a byte-level tokenizer.\n\n"
            "  --preset NAME   %s\n"
            "  --type TYPE     %s\n"
            "  -o FILE         output path\n"
            "  --header-only   leave the tensor data as a sparse hole (sizes only)\n"
            "  --seed N        random seed (default 1); same seed, same bytes\n"
            "  --layers N      number of blocks instead of the preset's (small test models)\n"
            "  --std X         standard deviation of matrix weights (default 0.02)\n"
            "  --norm-std X    norm weights 1 + noise of std X instead of all 1 (default 0)\n",
            presets, types);
}

int cmd_synth(int argc, char **argv)
{
    const char *preset_name = NULL, *type_name = NULL, *out_path = NULL;
    struct synth_opts o;
    memset(&o, 0, sizeof o);
    o.seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--header-only")) {
            o.header_only = true;
        } else if (!strcmp(a, "--preset") || !strcmp(a, "--type") || !strcmp(a, "-o") ||
                   !strcmp(a, "--seed") || !strcmp(a, "--layers") || !strcmp(a, "--std") ||
                   !strcmp(a, "--norm-std")) {
            if (!has_val) {
                fprintf(stderr, "hearth synth: %s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            long long n;
            double x;
            if (!strcmp(a, "--preset")) {
                preset_name = v;
            } else if (!strcmp(a, "--type")) {
                type_name = v;
            } else if (!strcmp(a, "-o")) {
                out_path = v;
            } else if (!strcmp(a, "--seed")) {
                if (cli_parse_i64(a, v, 0, 9223372036854775807ll, &n))
                    return 2;
                o.seed = (uint64_t)n;
            } else if (!strcmp(a, "--layers")) {
                if (cli_parse_i64(a, v, 1, 1000, &n))
                    return 2;
                o.n_layer = (uint32_t)n;
            } else if (!strcmp(a, "--norm-std")) {
                if (cli_parse_f64(a, v, 0.0, 1.0, &x))
                    return 2;
                o.norm_std = (float)x;
            } else {
                if (cli_parse_f64(a, v, 1e-6, 10.0, &x))
                    return 2;
                o.std = (float)x;
            }
        } else {
            fprintf(stderr, "hearth synth: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!preset_name || !type_name || !out_path) {
        fprintf(stderr, "hearth synth: --preset, --type and -o are required\n\n");
        usage(stderr);
        return 2;
    }
    if (model_preset_find(preset_name, &o.preset) != HEARTH_OK) {
        fprintf(stderr, "hearth synth: %s\n", hearth_last_error());
        return 2;
    }
    if (quant_mix_from_name(type_name, &o.mix) != HEARTH_OK) {
        fprintf(stderr, "hearth synth: %s\n", hearth_last_error());
        return 2;
    }
    err_clear();
    struct synth_stats s;
    if (synth_write(&o, out_path, &s) != HEARTH_OK) {
        fprintf(stderr, "hearth synth: %s\n", hearth_last_error());
        return 1;
    }
    printf("wrote %s: %s %s%s, %llu tensors, %llu parameters\n", out_path, o.preset->name,
           o.mix->name, o.header_only ? " (header only, sparse data)" : "",
           (unsigned long long)s.n_tensors, (unsigned long long)s.n_params);
    printf("  file %llu bytes (%.3f GiB), tensor data %llu bytes (%.3f GiB, %.4f bits/weight)\n",
           (unsigned long long)s.file_size, (double)s.file_size / 1073741824.0,
           (unsigned long long)s.tensor_bytes, (double)s.tensor_bytes / 1073741824.0,
           s.n_params ? 8.0 * (double)s.tensor_bytes / (double)s.n_params : 0.0);
    printf("  types:");
    for (int t = 0; t < HEARTH_DTYPE_COUNT; t++)
        if (s.type_count[t])
            printf(" %s %llu", hearth_dtype_name((hearth_dtype)t),
                   (unsigned long long)s.type_count[t]);
    printf("\n  %.2f s", s.seconds);
    if (!o.header_only && s.seconds > 0.0)
        printf(", %.0f MB/s", (double)s.file_size / 1e6 / s.seconds);
    printf("\n");
    return 0;
}
