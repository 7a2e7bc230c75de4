/*
 * cli-util: flag parsing shared by the subcommands. Numbers are parsed with
 * strtoll/strtod and checked end to end, so "12abc" or "1e999" is an error that
 * names the flag rather than a silently wrong value.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "hearth.h"

void cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("hearth: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    const char *detail = hearth_last_error();
    if (detail && *detail)
        fprintf(stderr, ": %s", detail);
    fputc('\n', stderr);
}

int cli_parse_i64(const char *flag, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "hearth: %s expects an integer in [%lld, %lld], got '%s'\n", flag, lo,
                hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_f64(const char *flag, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "hearth: %s expects a number in [%g, %g], got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_bytes(const char *flag, const char *s, unsigned long long *out)
{
    static const struct {
        const char *suffix;
        double mult;
    } units[] = {
        {"", 1},          {"B", 1},          {"K", 1e3},          {"KB", 1e3},
        {"M", 1e6},       {"MB", 1e6},       {"G", 1e9},          {"GB", 1e9},
        {"T", 1e12},      {"TB", 1e12},      {"KiB", 1024.0},     {"MiB", 1048576.0},
        {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
    };
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0)
        goto bad;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (!strcasecmp(end, units[i].suffix) && (units[i].suffix[0] || !*end)) {
            double b = v * units[i].mult;
            if (b > 1.8e19)
                goto bad;
            *out = (unsigned long long)b;
            return 0;
        }
    }
bad:
    fprintf(stderr, "hearth: %s expects a size such as 24GiB, 512MiB or 8GB, got '%s'\n", flag,
            s);
    return -1;
}

const char *cli_default_model(void)
{
    static char path[4096];
    const char *env = getenv("HEARTH_MODEL");
    if (env && *env)
        return env;
    snprintf(path, sizeof path, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", HEARTH_SOURCE_DIR);
    return path;
}

hearth_status cli_read_file(const char *path, char **out, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return err_set(HEARTH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    hearth_status st = HEARTH_OK;
    while (buf) {
        if (n + 1 >= cap) { /* room for the NUL after the text */
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0)
            break;
    }
    if (!buf)
        st = err_set(HEARTH_ERR_NO_MEMORY, "%s: out of memory reading the text", path);
    else if (ferror(fp))
        st = err_set(HEARTH_ERR_IO, "%s: read failed", path);
    fclose(fp);
    if (st != HEARTH_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return HEARTH_OK;
}
