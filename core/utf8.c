/*
 * utf8: strict UTF-8 decoding and encoding (see utf8.h).
 *
 * The second-byte ranges below are the table from the Unicode standard
 * (Table 3-7, "well-formed UTF-8 byte sequences"): checking the second byte
 * against a per-lead range rejects overlongs, surrogates and values above
 * U+10FFFF without decoding first. utf8_partial_len uses the same ranges so
 * that the streaming decoder holds back exactly the prefixes that can still
 * complete and never waits on a byte that is already invalid.
 */
#include "utf8.h"

size_t utf8_lead_len(uint8_t c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF)
        return 3;
    if (c >= 0xF0 && c <= 0xF4)
        return 4;
    return 0;
}

/* Allowed range of the second byte after lead c (for multi-byte leads). */
static void second_range(uint8_t c, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (c == 0xE0)
        *lo = 0xA0;
    else if (c == 0xED)
        *hi = 0x9F;
    else if (c == 0xF0)
        *lo = 0x90;
    else if (c == 0xF4)
        *hi = 0x8F;
}

size_t utf8_partial_len(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    const uint8_t *u = (const uint8_t *)s;
    size_t need = utf8_lead_len(u[0]);
    if (need == 0)
        return 0;
    size_t i = 1;
    for (; i < need && i < n; i++) {
        uint8_t lo = 0x80, hi = 0xBF;
        if (i == 1)
            second_range(u[0], &lo, &hi);
        if (u[i] < lo || u[i] > hi)
            return i;
    }
    return i;
}

size_t utf8_decode(const char *s, size_t n, uint32_t *cp)
{
    if (n == 0)
        return 0;
    const uint8_t *u = (const uint8_t *)s;
    size_t need = utf8_lead_len(u[0]);
    if (need == 0 || utf8_partial_len(s, n) < need)
        return 0;
    uint32_t v;
    switch (need) {
    case 1:
        v = u[0];
        break;
    case 2:
        v = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
        break;
    case 3:
        v = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
        break;
    default:
        v = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
            ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
        break;
    }
    *cp = v;
    return need;
}

size_t utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF)
        return 0;
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp > 0x10FFFF)
        return 0;
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

bool utf8_valid(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if ((uint8_t)s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = utf8_decode(s + i, n - i, &cp);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}
