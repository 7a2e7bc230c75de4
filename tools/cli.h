/*
 * cli: the subcommands of the `hearth` program. Each lives in its own
 * tools/cmd-<name>.c and returns a process exit code (0 ok, 1 failure,
 * 2 usage error); errors are printed by the command itself on stderr.
 */
#ifndef HEARTH_CLI_H
#define HEARTH_CLI_H

int cmd_inspect(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_devices(int argc, char **argv);

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

/* Default model path (models/SmolLM2-135M-Instruct.Q4_1.gguf under the source tree or $HEARTH_MODEL). */
const char *cli_default_model(void);

#endif
