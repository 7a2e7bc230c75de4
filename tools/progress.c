/*
 * progress: see progress.h. Pages are touched in 8 MiB chunks: each chunk is
 * first given to madvise(MADV_WILLNEED) so the kernel reads it ahead in large
 * requests, then one byte per page is read so the chunk is resident when we
 * redraw. The bar is redrawn only when the shown percentage changes (at most
 * 100 writes per load); the line is cleared at the end so the streamed output
 * starts on a clean line.
 */
#include "progress.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK (8u << 20)
#define BAR_WIDTH 30

static void draw(const char *label, int pct)
{
    char bar[BAR_WIDTH + 1];
    int fill = pct * BAR_WIDTH / 100;
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : ' ';
    bar[BAR_WIDTH] = '\0';
    fprintf(stderr, "\r%s [%s] %3d%%", label, bar, pct);
    fflush(stderr);
}

void progress_touch(const void *base, size_t size, const char *label, bool show)
{
    if (!base || size == 0)
        return;
    show = show && isatty(fileno(stderr));
    long page_l = sysconf(_SC_PAGESIZE);
    size_t page = page_l > 0 ? (size_t)page_l : 4096;
    const volatile unsigned char *p = base;
    int shown = -1;
    unsigned sink = 0;
    for (size_t off = 0; off < size; off += CHUNK) {
        size_t n = size - off < CHUNK ? size - off : CHUNK;
        /* madvise wants a page-aligned start: round down (still inside the mapping,
           which begins on a page); failure only loses the read-ahead */
        uintptr_t a = ((uintptr_t)base + off) & ~(uintptr_t)(page - 1);
        (void)madvise((void *)a, n + ((uintptr_t)base + off - a), MADV_WILLNEED);
        for (size_t i = 0; i < n; i += page)
            sink += p[off + i];
        sink += p[off + n - 1];
        int pct = (int)((off + n) * 100 / size);
        if (show && pct != shown) {
            draw(label, pct);
            shown = pct;
        }
    }
    (void)sink;
    if (show)
        fputs("\r\033[K", stderr); /* erase the bar: only drawn on a terminal */
}
