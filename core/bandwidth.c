/*
 * bandwidth: copy-bandwidth measurement (see bandwidth.h for the method) and
 * the per-device cache of measured figures. Slices are cache-line aligned so
 * no two threads write the same line. The cache readers keep their entries
 * in a static table (64 lines): the library is not re-entrant here, which is
 * fine for a file read once per load.
 */
#include "bandwidth.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "err.h"
#include "threadpool.h"

#define BW_SLICE_ALIGN 4096u

double bw_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct copy_job {
    uint8_t *dst;
    const uint8_t *src;
    size_t bytes;
    size_t slice; /* bytes per item */
};

static void copy_items(void *arg, int64_t begin, int64_t end, int tid)
{
    (void)tid;
    const struct copy_job *j = arg;
    size_t off = (size_t)begin * j->slice;
    size_t lim = (size_t)end * j->slice;
    if (lim > j->bytes)
        lim = j->bytes;
    memcpy(j->dst + off, j->src + off, lim - off);
}

static int cmp_double(const void *a, const void *b)
{
    double x, y;
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    return x < y ? -1 : x > y ? 1 : 0;
}

double bw_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

hearth_status bw_measure_copy(struct threadpool *tp, size_t bytes, int reps,
                              struct bw_result *out)
{
    memset(out, 0, sizeof *out);
    if (bytes < (1u << 20) || reps < 1 || reps > 101)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "bandwidth: %zu bytes x %d repetitions, expected >= 1 MiB and 1..101",
                       bytes, reps);
    uint8_t *src = aligned_alloc(BW_SLICE_ALIGN, (bytes + BW_SLICE_ALIGN - 1) / BW_SLICE_ALIGN *
                                                     BW_SLICE_ALIGN);
    uint8_t *dst = aligned_alloc(BW_SLICE_ALIGN, (bytes + BW_SLICE_ALIGN - 1) / BW_SLICE_ALIGN *
                                                     BW_SLICE_ALIGN);
    double *gbps = malloc((size_t)reps * sizeof *gbps);
    if (!src || !dst || !gbps) {
        free(src);
        free(dst);
        free(gbps);
        return err_set(HEARTH_ERR_NO_MEMORY, "bandwidth: out of memory for 2 x %zu bytes", bytes);
    }
    /* fault every page in before timing; distinct bytes so nothing is deduplicated */
    for (size_t i = 0; i < bytes; i++)
        src[i] = (uint8_t)(i * 131u + 7u);
    memset(dst, 1, bytes);

    int n_threads = tp ? threadpool_n_threads(tp) : 1;
    /* a few slices per thread balance a core taken by another process */
    size_t n_items = (size_t)n_threads * 4;
    size_t slice = (bytes / n_items + BW_SLICE_ALIGN - 1) / BW_SLICE_ALIGN * BW_SLICE_ALIGN;
    struct copy_job job = {dst, src, bytes, slice};
    int64_t items = (int64_t)((bytes + slice - 1) / slice);
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        double t0 = bw_now();
        if (tp)
            threadpool_for(tp, items, 1, copy_items, &job);
        else
            copy_items(&job, 0, items, 0);
        double dt = bw_now() - t0;
        if (r >= 0)
            gbps[r] = 2.0 * (double)bytes / (dt > 1e-9 ? dt : 1e-9) * 1e-9;
    }
    /* keep the copy observable */
    volatile uint8_t sink = dst[bytes / 2];
    (void)sink;
    out->gbps_median = bw_median(gbps, reps); /* sorts gbps */
    out->gbps_min = gbps[0];
    out->gbps_max = gbps[reps - 1];
    out->reps = reps;
    out->n_threads = n_threads;
    free(src);
    free(dst);
    free(gbps);
    return HEARTH_OK;
}

/* ---- device figures and their cache ---------------------------------------- */

#define BW_CACHE_HEADER "# hearth devices v3"
#define BW_CACHE_HEADER_V2 "# hearth devices v2" /* no decode figures; still read */
#define BW_CACHE_HEADER_V1 "# hearth devices v1" /* no FLOP rate either; still read */
#define BW_CACHE_MAX 64      /* entries kept */
#define BW_H2D_BYTES (64u << 20)

hearth_status bw_cache_path(char *buf, size_t size)
{
    const char *dir = getenv("HEARTH_CACHE_DIR");
    int n;
    if (dir && dir[0]) {
        n = snprintf(buf, size, "%s/devices.txt", dir);
    } else if ((dir = getenv("XDG_CACHE_HOME")) && dir[0]) {
        n = snprintf(buf, size, "%s/hearth/devices.txt", dir);
    } else if ((dir = getenv("HOME")) && dir[0]) {
        n = snprintf(buf, size, "%s/.cache/hearth/devices.txt", dir);
    } else {
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "bandwidth cache: none of HEARTH_CACHE_DIR, XDG_CACHE_HOME, HOME is set");
    }
    if (n < 0 || (size_t)n >= size)
        return err_set(HEARTH_ERR_INVALID_ARG, "bandwidth cache: path under '%s' too long", dir);
    return HEARTH_OK;
}

/* A whole field as a figure in [0, limit); false otherwise. */
static bool parse_figure(const char *f, double limit, double *out)
{
    char *end;
    double v = strtod(f, &end);
    if (end == f || *end || !(v >= 0.0 && v < limit))
        return false;
    *out = v;
    return true;
}

/* The type named name; HEARTH_DTYPE_COUNT when none is. */
static int type_named(const char *name)
{
    int t = 0;
    while (t < HEARTH_DTYPE_COUNT && !(hearth_dtype_name((hearth_dtype)t) &&
                                       !strcmp(hearth_dtype_name((hearth_dtype)t), name)))
        t++;
    return t;
}

/* "TYPE:rate,..." or "-" into rates; false on an unknown type or a bad figure. */
static bool parse_rates(char *f, double *rates)
{
    if (!strcmp(f, "-"))
        return true;
    for (char *item = f; item;) {
        char *next = strchr(item, ',');
        if (next)
            *next++ = '\0';
        char *c = strchr(item, ':');
        if (!c)
            return false;
        *c = '\0';
        int t = type_named(item);
        if (t == HEARTH_DTYPE_COUNT || !parse_figure(c + 1, 1e9, &rates[t]))
            return false;
        item = next;
    }
    return true;
}

/*
 * Parses one line (no newline): v3
 * "name\tmem\th2d\tgflops\tattn\top_us\tmv\tmm\tdesc" (mv, mm: rate lists), v2 the same without op_us and the lists, v1 without
 * gflops as well (missing figures left 0: not measured). false if malformed.
 */
static bool parse_line(char *line, int version, struct bw_entry *e)
{
    const int nf = version == 1 ? 4 : version == 2 ? 5 : 9;
    char *f[9];
    char *p = line;
    for (int i = 0; i < nf; i++) {
        f[i] = p;
        if (i == nf - 1)
            break;
        char *t = strchr(p, '\t');
        if (!t)
            return false;
        *t = '\0';
        p = t + 1;
    }
    const char *desc = f[nf - 1];
    size_t nl = strlen(f[0]), dl = strlen(desc);
    if (nl == 0 || nl >= sizeof e->name || dl >= sizeof e->desc)
        return false;
    memset(e, 0, sizeof *e);
    double m, h, g = 0.0, op = 0.0, at = 0.0;
    if (!parse_figure(f[1], 1e6, &m) || !parse_figure(f[2], 1e6, &h) ||
        (nf >= 5 && !parse_figure(f[3], 1e9, &g)) ||
        (nf == 9 && (!parse_figure(f[4], 1e9, &at) || !parse_figure(f[5], 1e6, &op) ||
                     !parse_rates(f[6], e->mv_gbps) || !parse_rates(f[7], e->mm_gflops))))
        return false;
    memcpy(e->name, f[0], nl + 1);
    memcpy(e->desc, desc, dl + 1);
    e->mem_gbps = m;
    e->h2d_gbps = h;
    e->gflops = g;
    e->op_us = op;
    e->attn_gflops = at;
    return true;
}

/* A per-type rate list as a v3 field. */
static void format_rates(const double *rates, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int t = 0; t < HEARTH_DTYPE_COUNT; t++) {
        if (!(rates[t] > 0) || !hearth_dtype_name((hearth_dtype)t))
            continue;
        int w = snprintf(buf + len, size - len, "%s%s:%.3f", len ? "," : "",
                         hearth_dtype_name((hearth_dtype)t), rates[t]);
        if (w < 0 || (size_t)w >= size - len)
            break;
        len += (size_t)w;
    }
    if (!len)
        snprintf(buf, size, "-");
}

/*
 * Reads every entry; *n 0 for a missing file. Returns false (note set) for
 * an unreadable or malformed file.
 */
static bool read_cache(const char *path, struct bw_entry *es, int *n, char *note, size_t ns)
{
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return true;
        if (note)
            snprintf(note, ns, "bandwidth cache %s unreadable (%s): ignored", path,
                     strerror(errno));
        return false;
    }
    char line[1536];
    int ln = 0, version = 3;
    bool ok = true;
    while (fgets(line, sizeof line, f)) {
        ln++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\n')
            line[--len] = '\0';
        else if (!feof(f))
            ok = false; /* a line longer than any valid one */
        if (ok && ln == 1) {
            if (!strcmp(line, BW_CACHE_HEADER_V1))
                version = 1;
            else if (!strcmp(line, BW_CACHE_HEADER_V2))
                version = 2;
            ok = version < 3 || !strcmp(line, BW_CACHE_HEADER);
        } else if (ok && len > 0) {
            if (*n >= BW_CACHE_MAX)
                break;
            ok = parse_line(line, version, &es[*n]);
            if (ok)
                (*n)++;
        }
        if (!ok) {
            if (note)
                snprintf(note, ns,
                         "bandwidth cache %s line %d: expected %s", path, ln,
                         ln == 1 ? "the header '" BW_CACHE_HEADER "' (or v1, v2); file ignored"
                         : version == 1
                             ? "NAME<TAB>GB/s<TAB>GB/s<TAB>DESCRIPTION; file ignored"
                         : version == 2
                             ? "NAME<TAB>GB/s<TAB>GB/s<TAB>GFLOP/s<TAB>DESCRIPTION; file ignored"
                             : "NAME<TAB>GB/s<TAB>GB/s<TAB>GFLOP/s<TAB>GFLOP/s<TAB>op us"
                               "<TAB>TYPE:GB/s,...<TAB>TYPE:GFLOP/s,...<TAB>DESCRIPTION; file "
                               "ignored");
            break;
        }
    }
    if (ok && ferror(f)) {
        ok = false;
        if (note)
            snprintf(note, ns, "bandwidth cache %s: read error; ignored", path);
    }
    fclose(f);
    if (!ok)
        *n = 0;
    return ok;
}

bool bw_cache_lookup(const char *name, const char *desc, struct bw_entry *out, char *note,
                     size_t note_size)
{
    char path[1024];
    if (note && note_size)
        note[0] = '\0';
    if (bw_cache_path(path, sizeof path) != HEARTH_OK) {
        err_clear();
        return false;
    }
    static struct bw_entry es[BW_CACHE_MAX];
    int n;
    if (!read_cache(path, es, &n, note, note_size))
        return false;
    for (int i = 0; i < n; i++)
        if (!strcmp(es[i].name, name) && !strcmp(es[i].desc, desc ? desc : "")) {
            *out = es[i];
            return true;
        }
    return false;
}

/* mkdir -p of path's directory. */
static hearth_status make_dirs(const char *path)
{
    char buf[1024];
    size_t len = strlen(path);
    if (len >= sizeof buf)
        return err_set(HEARTH_ERR_INVALID_ARG, "bandwidth cache: path too long");
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return err_set(HEARTH_ERR_IO, "bandwidth cache: cannot create %s: %s", buf,
                           strerror(errno));
        *p = '/';
    }
    return HEARTH_OK;
}

hearth_status bw_cache_store(const struct bw_entry *e)
{
    char path[1024], tmp[1100];
    hearth_status st = bw_cache_path(path, sizeof path);
    if (st != HEARTH_OK)
        return st;
    if (strchr(e->name, '\t') || strchr(e->name, '\n') || strchr(e->desc, '\t') ||
        strchr(e->desc, '\n') || !e->name[0])
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "bandwidth cache: device name or description with a tab or newline");
    if ((st = make_dirs(path)) != HEARTH_OK)
        return st;
    static struct bw_entry es[BW_CACHE_MAX];
    int n;
    if (!read_cache(path, es, &n, NULL, 0))
        n = 0; /* malformed: replaced */
    int k = 0;
    for (int i = 0; i < n; i++) /* drop the old line of this device */
        if (strcmp(es[i].name, e->name) || strcmp(es[i].desc, e->desc))
            es[k++] = es[i];
    if (k == BW_CACHE_MAX)
        memmove(es, es + 1, (size_t)(--k) * sizeof *es);
    es[k++] = *e;
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return err_set(HEARTH_ERR_IO, "bandwidth cache: cannot write %s: %s", tmp,
                       strerror(errno));
    fprintf(f, "%s\n", BW_CACHE_HEADER);
    for (int i = 0; i < k; i++) {
        char mv[640], mm[640];
        format_rates(es[i].mv_gbps, mv, sizeof mv);
        format_rates(es[i].mm_gflops, mm, sizeof mm);
        fprintf(f, "%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%s\t%s\t%s\n", es[i].name,
                es[i].mem_gbps, es[i].h2d_gbps, es[i].gflops, es[i].attn_gflops, es[i].op_us, mv,
                mm, es[i].desc);
    }
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        int er = errno;
        remove(tmp);
        return err_set(HEARTH_ERR_IO, "bandwidth cache: cannot write %s: %s", path,
                       strerror(er));
    }
    return HEARTH_OK;
}

/* Host-to-device: median of 5 uploads of BW_H2D_BYTES through dev's pinned host type. */
static hearth_status measure_h2d(struct hearth_device *dev, double *gbps)
{
    struct hearth_buffer *host = NULL, *dst = NULL;
    struct hearth_stream *s = NULL;
    hearth_status st;
    double t[5];
    if ((st = backend_buffer_alloc(backend_device_host_buffer_type(dev), BW_H2D_BYTES,
                                   &host)) != HEARTH_OK ||
        (st = backend_buffer_alloc(backend_device_buffer_type(dev), BW_H2D_BYTES, &dst)) !=
            HEARTH_OK ||
        (st = backend_stream_create(dev, &s)) != HEARTH_OK)
        goto done;
    if (!(backend_buft_flags(host->buft) & HEARTH_BUFT_HOST)) {
        st = err_set(HEARTH_ERR_BACKEND, "bandwidth: host buffer type is not host-visible");
        goto done;
    }
    memset(backend_buffer_base(host), 0x5a, BW_H2D_BYTES);
    for (int r = -1; r < 5; r++) { /* r = -1: warm-up */
        double t0 = bw_now();
        if ((st = backend_stream_set_async(s, dst, 0, backend_buffer_base(host), BW_H2D_BYTES)) !=
                HEARTH_OK ||
            (st = backend_stream_synchronize(s)) != HEARTH_OK)
            goto done;
        double dt = bw_now() - t0;
        if (r >= 0)
            t[r] = (double)BW_H2D_BYTES / (dt > 1e-9 ? dt : 1e-9) * 1e-9;
    }
    *gbps = bw_median(t, 5);
done:
    backend_stream_destroy(s);
    backend_buffer_free(dst);
    backend_buffer_free(host);
    return st;
}

/* Device memory: median of 5 device-side copies of BW_H2D_BYTES (read + written counted). */
static hearth_status measure_d2d(struct hearth_device *dev, double *gbps)
{
    struct hearth_buffer *a = NULL, *b = NULL;
    hearth_status st;
    double t[5];
    struct hearth_buffer_type *bt = backend_device_buffer_type(dev);
    if ((st = backend_buffer_alloc(bt, BW_H2D_BYTES, &a)) != HEARTH_OK ||
        (st = backend_buffer_alloc(bt, BW_H2D_BYTES, &b)) != HEARTH_OK)
        goto done;
    for (int r = -1; r < 5; r++) {
        double t0 = bw_now();
        if ((st = backend_buffer_copy(b, 0, a, 0, BW_H2D_BYTES)) != HEARTH_OK)
            goto done;
        double dt = bw_now() - t0;
        if (r >= 0)
            t[r] = 2.0 * (double)BW_H2D_BYTES / (dt > 1e-9 ? dt : 1e-9) * 1e-9;
    }
    *gbps = bw_median(t, 5);
done:
    backend_buffer_free(b);
    backend_buffer_free(a);
    return st;
}

hearth_status bw_measure_device(struct hearth_device *dev, struct bw_entry *out)
{
    struct hearth_device_props props;
    memset(out, 0, sizeof *out);
    backend_device_props(dev, &props);
    snprintf(out->name, sizeof out->name, "%s", props.name);
    snprintf(out->desc, sizeof out->desc, "%s", props.desc);
    for (char *c = out->desc; *c; c++)
        if (*c == '\t' || *c == '\n')
            *c = ' ';
    double g = 0.0;
    hearth_status st = backend_device_measure_bandwidth(dev, &g);
    if (st == HEARTH_ERR_UNSUPPORTED) {
        /* no benchmark of its own: a host-memory device copies host RAM; others
           are timed through device-side copies, where the backend offers them */
        err_clear();
        struct bw_result r;
        if (props.host_memory && (st = bw_measure_copy(NULL, (size_t)64 << 20, 5, &r)) ==
                                     HEARTH_OK)
            g = r.gbps_median;
        else if (!props.host_memory)
            st = measure_d2d(dev, &g);
        if (st == HEARTH_ERR_UNSUPPORTED) { /* not measurable here: stays assumed */
            err_clear();
            st = HEARTH_OK;
            g = 0.0;
        }
    }
    if (st != HEARTH_OK)
        return err_prefix(st, "bandwidth: measuring %s", props.name);
    out->mem_gbps = g;
    if (!props.host_memory && (st = measure_h2d(dev, &out->h2d_gbps)) != HEARTH_OK)
        return err_prefix(st, "bandwidth: host-to-device copies to %s", props.name);
    return HEARTH_OK;
}
