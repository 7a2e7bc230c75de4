/*
 * err: status names and the thread-local error buffer (see err.h).
 * The status table comes from HEARTH_STATUS_LIST so names, values and
 * messages cannot drift apart.
 */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char err_buf[1024];

const char *hearth_status_name(hearth_status st)
{
    switch (st) {
#define HEARTH_X_NAME(name, value, msg) \
    case HEARTH_##name:                 \
        return "HEARTH_" #name;
        HEARTH_STATUS_LIST(HEARTH_X_NAME)
#undef HEARTH_X_NAME
    }
    return "HEARTH_UNKNOWN";
}

const char *hearth_status_str(hearth_status st)
{
    switch (st) {
#define HEARTH_X_STR(name, value, msg) \
    case HEARTH_##name:                \
        return msg;
        HEARTH_STATUS_LIST(HEARTH_X_STR)
#undef HEARTH_X_STR
    }
    return "unknown status";
}

const char *hearth_last_error(void)
{
    return err_buf;
}

hearth_status err_set(hearth_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return st;
}

hearth_status err_prefix(hearth_status st, const char *fmt, ...)
{
    char prefix[512];
    char old[sizeof err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_buf, sizeof old);
    snprintf(err_buf, sizeof err_buf, "%s: %s", prefix, old);
    return st;
}

void err_clear(void)
{
    err_buf[0] = '\0';
}

#ifdef HEARTH_ENABLE_ASSERT
void err__assert_fail(const char *expr, const char *file, int line)
{
    /* An assert guards hearth's own invariants; reaching here is a bug in hearth. */
    fprintf(stderr, "hearth: internal assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
#endif
