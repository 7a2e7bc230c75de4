/*
 * plan-svg: draws `hearth plan --compare-quants --svg FILE` as a hand-written
 * SVG: one row per scheme, three panels side by side.
 *   left   file size as a bar, split into the part the plan puts on the GPU
 *          (blue) and the part left in host RAM (orange), with the VRAM budget
 *          as a dashed red line, so "does it fit" is read at a glance;
 *   middle predicted decode tokens/s as a green bar with its value;
 *   right  predicted prefill tokens/s as a number.
 * Text is 13-15 px sans-serif on white, every bar carries its number, and
 * nothing depends on colour alone (the legend names both bar parts). A scatter
 * of speed against size was rejected: the 4-bit schemes sit within 2 GB of
 * each other and their labels collide.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define W 980
#define ROW_H 40
#define TOP 118
#define LABEL_X 20
#define SIZE_X0 110
#define SIZE_X1 590
#define DEC_X0 640
#define DEC_X1 820
#define PRE_X 900

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            if ((unsigned char)*s >= 0x20)
                fputc(*s, f);
        }
    }
}

/* A tick step of 1, 2 or 5 times a power of ten giving about 6 ticks up to max. */
static double nice_step(double max)
{
    double raw = max / 6.0;
    double p = pow(10.0, floor(log10(raw)));
    double m = raw / p;
    return (m <= 1.0 ? 1.0 : m <= 2.0 ? 2.0 : m <= 5.0 ? 5.0 : 10.0) * p;
}

int plan_svg_write(const char *path, const char *title, const struct plan_svg_row *rows, int n,
                   double vram_bytes)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    double max_gb = vram_bytes / 1e9, max_dec = 0;
    for (int i = 0; i < n; i++) {
        if (!rows[i].ok)
            continue;
        if (rows[i].file_bytes / 1e9 > max_gb)
            max_gb = rows[i].file_bytes / 1e9;
        if (rows[i].decode_tps > max_dec)
            max_dec = rows[i].decode_tps;
    }
    if (max_gb <= 0)
        max_gb = 1;
    if (max_dec <= 0)
        max_dec = 1;
    double step = nice_step(max_gb);
    double axis_gb = ceil(max_gb / step) * step;
    double sx = (SIZE_X1 - SIZE_X0) / axis_gb;
    int bottom = TOP + n * ROW_H;
    int h = bottom + 78;

    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
            W, h, W, h);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, h);
    fprintf(f, "<text x=\"%d\" y=\"30\" font-size=\"18\" font-weight=\"bold\">", LABEL_X);
    xml_text(f, title);
    fprintf(f, "</text>\n");
    /* legend */
    fprintf(f,
            "<rect x=\"%d\" y=\"46\" width=\"14\" height=\"14\" fill=\"#3b78c9\"/>\n"
            "<text x=\"%d\" y=\"58\" font-size=\"13\">weights on the GPU</text>\n"
            "<rect x=\"%d\" y=\"46\" width=\"14\" height=\"14\" fill=\"#ee8a3c\"/>\n"
            "<text x=\"%d\" y=\"58\" font-size=\"13\">weights in host RAM (CPU)</text>\n"
            "<line x1=\"%d\" y1=\"53\" x2=\"%d\" y2=\"53\" stroke=\"#d22\" stroke-width=\"2\" "
            "stroke-dasharray=\"6,4\"/>\n"
            "<text x=\"%d\" y=\"58\" font-size=\"13\">VRAM budget</text>\n",
            LABEL_X, LABEL_X + 20, LABEL_X + 170, LABEL_X + 190, LABEL_X + 380, LABEL_X + 410,
            LABEL_X + 418);
    /* column headers */
    fprintf(f,
            "<text x=\"%d\" y=\"88\" font-size=\"14\" font-weight=\"bold\">scheme</text>\n"
            "<text x=\"%d\" y=\"88\" font-size=\"14\" font-weight=\"bold\">file size (GB)</text>\n"
            "<text x=\"%d\" y=\"88\" font-size=\"14\" font-weight=\"bold\">decode tok/s</text>\n"
            "<text x=\"%d\" y=\"88\" font-size=\"14\" font-weight=\"bold\" "
            "text-anchor=\"end\">prefill tok/s</text>\n",
            LABEL_X, SIZE_X0, DEC_X0, W - 20);
    /* size grid */
    for (double g = 0; g <= axis_gb + step * 0.01; g += step) {
        double x = SIZE_X0 + g * sx;
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n"
                "<text x=\"%.1f\" y=\"%d\" font-size=\"13\" text-anchor=\"middle\" "
                "fill=\"#444\">%g</text>\n",
                x, TOP - 6, x, bottom, x, bottom + 18, g);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"13\" text-anchor=\"middle\" fill=\"#444\">"
               "GB (10^9 bytes) of tensor data</text>\n",
            (SIZE_X0 + SIZE_X1) / 2, bottom + 38);
    for (int i = 0; i < n; i++) {
        const struct plan_svg_row *r = &rows[i];
        int y = TOP + i * ROW_H;
        if (i % 2 == 0)
            fprintf(f, "<rect x=\"10\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#f4f6f9\"/>\n",
                    y - 6, W - 20, ROW_H);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"15\" font-weight=\"bold\">", LABEL_X,
                y + 19);
        xml_text(f, r->type);
        fprintf(f, "</text>\n");
        if (!r->ok) {
            fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"13\" fill=\"#888\">not available "
                       "for this model's shapes</text>\n",
                    SIZE_X0 + 6, y + 19);
            continue;
        }
        double gb = r->file_bytes / 1e9;
        double gpu_w = gb * r->gpu_share * sx, host_w = gb * (1.0 - r->gpu_share) * sx;
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"24\" fill=\"#3b78c9\"/>\n",
                SIZE_X0, y + 2, gpu_w);
        fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"24\" fill=\"#ee8a3c\"/>\n",
                SIZE_X0 + gpu_w, y + 2, host_w);
        /* the size label sits after the bar, or inside it when the bar reaches the edge */
        double end = SIZE_X0 + gpu_w + host_w;
        if (end + 118 < SIZE_X1 + 40)
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"13\">%.1f GB, %.0f%% GPU%s</text>\n",
                    end + 6, y + 19, gb, 100.0 * r->gpu_share,
                    r->ram_over ? ", RAM too small" : "");
        else
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"13\" text-anchor=\"end\" "
                       "fill=\"white\" font-weight=\"bold\">%.1f GB, %.0f%% GPU%s</text>\n",
                    end - 6, y + 19, gb, 100.0 * r->gpu_share,
                    r->ram_over ? ", RAM too small" : "");
        double dw = (DEC_X1 - DEC_X0) * r->decode_tps / max_dec;
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"24\" fill=\"#3a9a5b\"/>\n",
                DEC_X0, y + 2, dw);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"13\">%.*f</text>\n", DEC_X0 + dw + 6,
                y + 19, r->decode_tps < 10 ? 2 : 1, r->decode_tps);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"13\" text-anchor=\"end\">%.0f</text>\n",
                W - 20, y + 19, r->prefill_tps);
    }
    if (vram_bytes > 0) {
        double x = SIZE_X0 + vram_bytes / 1e9 * sx;
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#d22\" "
                "stroke-width=\"2\" stroke-dasharray=\"6,4\"/>\n"
                "<text x=\"%.1f\" y=\"%d\" font-size=\"13\" fill=\"#d22\" "
                "text-anchor=\"middle\">VRAM %.1f GB</text>\n",
                x, TOP - 8, x, bottom, x, TOP - 10, vram_bytes / 1e9);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#666\">Predicted by hearth plan "
               "from device descriptions. Bars are weights only: KV cache, scratch and reserve "
               "use VRAM too.</text>\n",
            LABEL_X, h - 12);
    fprintf(f, "</svg>\n");
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        if (!errno)
            errno = EIO;
        return -1;
    }
    return 0;
}
