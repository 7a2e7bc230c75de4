/*
 * err: how core modules report failures.
 *
 * A failing function formats its detail with err_set(), which stores it in a
 * thread-local buffer (hearth_last_error() reads it) and returns the status so
 * that `return err_set(HEARTH_ERR_BAD_FILE, "%s: offset %llu: ...", ...)` is
 * one statement. Thread-local rather than per-context because the reader and
 * the probes run before any context exists (stbi_failure_reason does the same).
 */
#ifndef HEARTH_ERR_H
#define HEARTH_ERR_H

#include "hearth.h"

#if defined(__GNUC__)
#define ERR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ERR_PRINTF(a, b)
#endif

/* Formats the message into the thread's error buffer and returns st. */
hearth_status err_set(hearth_status st, const char *fmt, ...) ERR_PRINTF(2, 3);
/* Prepends "prefix: " to the current message, keeping the status; returns st. */
hearth_status err_prefix(hearth_status st, const char *fmt, ...) ERR_PRINTF(2, 3);
void err_clear(void);

/* Active in debug and CI builds; only for hearth's own invariants, never for input. */
#ifdef HEARTH_ENABLE_ASSERT
void err__assert_fail(const char *expr, const char *file, int line);
#define HEARTH_ASSERT(x) ((x) ? (void)0 : err__assert_fail(#x, __FILE__, __LINE__))
#else
#define HEARTH_ASSERT(x) ((void)0)
#endif

#endif
