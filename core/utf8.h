/*
 * utf8: the few UTF-8 helpers the tokenizers and the streaming decoder need.
 *
 * "Valid" means RFC 3629: no overlong forms, no surrogates (U+D800..U+DFFF),
 * nothing above U+10FFFF. Every function takes a length and never reads past
 * it; none of them needs a NUL terminator. Unicode classification (letters,
 * digits, ...) is deliberately absent: that is PCRE2's job (tok-pretok.c).
 */
#ifndef HEARTH_UTF8_H
#define HEARTH_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The replacement character U+FFFD as UTF-8 bytes. */
#define UTF8_REPLACEMENT "\xEF\xBF\xBD"
#define UTF8_REPLACEMENT_LEN 3

/* Sequence length announced by a lead byte: 1..4, or 0 for a byte that cannot start one. */
size_t utf8_lead_len(uint8_t c);

/*
 * Decodes the sequence at s[0..n). Returns its length (1..4) and stores the code
 * point in *cp, or returns 0 if s does not start with a complete valid sequence.
 */
size_t utf8_decode(const char *s, size_t n, uint32_t *cp);

/*
 * Length of the longest prefix of s[0..n) that could still become a valid
 * sequence if more bytes followed (0 if s[0] already rules that out). When the
 * result equals n and the sequence is incomplete, the caller should wait.
 */
size_t utf8_partial_len(const char *s, size_t n);

/* Writes cp (must be <= 0x10FFFF and not a surrogate) to out; returns 1..4, or 0 if invalid. */
size_t utf8_encode(uint32_t cp, char out[4]);

/* Whether all of s[0..n) is valid UTF-8. */
bool utf8_valid(const char *s, size_t n);

#endif
