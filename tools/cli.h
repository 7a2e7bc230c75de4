/*
 * cli: the subcommands of the `hearth` program. Each lives in its own
 * tools/cmd-<name>.c and returns a process exit code (0 ok, 1 failure,
 * 2 usage error); errors are printed by the command itself on stderr.
 */
#ifndef HEARTH_CLI_H
#define HEARTH_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "hearth.h"

int cmd_inspect(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_embed(int argc, char **argv);

/* One scheme of `hearth plan --compare-quants` (tools/plan-svg.c draws them). */
struct plan_svg_row {
    const char *type; /* "Q4_K_M" */
    bool ok;          /* false: the mix has no type for this model's shapes */
    double file_bytes, bpw, vram_bytes, ram_bytes;
    double gpu_share; /* weights on a GPU / all weights, 0..1 */
    double prefill_tps, decode_tps;
    bool ram_over;    /* the host part exceeds the host's RAM (pages from disk) */
};
/* Writes the comparison chart as a standalone SVG file; 0 on success, -1 (errno set) on I/O. */
int plan_svg_write(const char *path, const char *title, const struct plan_svg_row *rows, int n,
                   double vram_bytes);

/* Prints "hearth: <message>" with hearth_last_error() appended when set. */
void cli_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/*
 * Strict number parsing for flags (no atoi): the whole string must be a number in
 * range. Return 0 on success, -1 (after printing which flag was bad) otherwise.
 */
int cli_parse_i64(const char *flag, const char *s, long long lo, long long hi, long long *out);
int cli_parse_f64(const char *flag, const char *s, double lo, double hi, double *out);
/* "24GiB", "512MiB", "1.5GB", "1000" (bytes). */
int cli_parse_bytes(const char *flag, const char *s, unsigned long long *out);

/*
 * The whole of file path in a malloc'd buffer (*out, *len bytes; NUL after
 * them). HEARTH_ERR_IO naming the file and why, HEARTH_ERR_NO_MEMORY.
 */
hearth_status cli_read_file(const char *path, char **out, size_t *len);

/* Default model path (models/SmolLM2-135M-Instruct.Q4_1.gguf under the source tree or $HEARTH_MODEL). */
const char *cli_default_model(void);

#endif
