/*
 * strbuf: a growing NUL-terminated string for text built in pieces (chat
 * prompts, the server's tool text). An append that cannot grow the buffer
 * sets oom and every later append does nothing, so a builder checks once at
 * the end instead of after every piece.
 */
#ifndef HEARTH_STRBUF_H
#define HEARTH_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
    char *p; /* NULL until the first append */
    size_t len, cap;
    bool oom;
};

void strbuf_add(struct strbuf *b, const char *s, size_t n);
void strbuf_puts(struct strbuf *b, const char *s);
/* The text (malloc'd, "" when nothing was added; the caller frees it), or NULL after an
   allocation failure; b is then empty. */
char *strbuf_take(struct strbuf *b);

#endif
