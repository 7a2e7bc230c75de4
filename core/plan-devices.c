/*
 * plan-devices: device descriptions for the planner, parsed from the command
 * line ("cuda:24GiB:1008GB/s", "--host 64GiB:70GB/s", "--pcie 25GB/s") or taken
 * from the backend registry's detected devices.
 *
 * A description is what the planner needs and nothing more: memory budget,
 * memory bandwidth, a FLOP rate for compute-bound prefill, PCIe bandwidth.
 * Figures nobody gave are filled from per-kind defaults (plan.h, all estimates)
 * and flagged *_assumed so `hearth plan` can say "assumed" next to them rather
 * than present a guess as a measurement. Sizes accept binary (GiB) and decimal
 * (GB) units; rates are decimal per second (GB/s), as vendors quote them.
 * Errors name the field ("device 'cuda:24GiB:fast': bandwidth 'fast' ...").
 * Detected devices take measured bandwidths and FLOP rates from the
 * bandwidth cache (bandwidth.h) when `hearth devices` has measured them,
 * flagged *_measured.
 * A GPU's host staging (host RAM its backend allocates for its own copies)
 * is what the backend reports for a detected device and the Vulkan figure
 * (PLAN_DEFAULT_VULKAN_HOST_STAGING) for a described one, so both plan alike.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend-registry.h"
#include "bandwidth.h"
#include "err.h"
#include "plan.h"

static void host_defaults(struct plan_device *h)
{
    memset(h, 0, sizeof *h);
    snprintf(h->name, sizeof h->name, "cpu");
    h->kind = PLAN_DEV_CPU;
    h->budget_bytes = PLAN_DEFAULT_HOST_BYTES;
    h->mem_bw = PLAN_DEFAULT_HOST_BW;
    h->flops = PLAN_DEFAULT_HOST_FLOPS;
    h->budget_assumed = h->mem_bw_assumed = h->flops_assumed = true;
    h->maps_weights = true; /* the loader reads host-resident weights from the file mapping */
}

void plan_devices_init(struct plan_devices *d)
{
    memset(d, 0, sizeof *d);
    d->n = 1;
    host_defaults(&d->dev[PLAN_HOST]);
}

/* Splits "12.5GiB" into a number and the unit text after it. */
static bool parse_number(const char *s, double *v, const char **unit)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || !isfinite(x) || x < 0)
        return false;
    *v = x;
    *unit = end;
    return true;
}

hearth_status plan_parse_bytes(const char *field, const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        double mult;
    } units[] = {
        {"", 1.0},     {"B", 1.0},          {"KB", 1e3},          {"MB", 1e6},
        {"GB", 1e9},   {"TB", 1e12},        {"KiB", 1024.0},      {"MiB", 1048576.0},
        {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}, {"K", 1e3}, {"M", 1e6},
        {"G", 1e9},    {"T", 1e12},
    };
    double v;
    const char *unit;
    if (s && parse_number(s, &v, &unit)) {
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (strcasecmp(unit, units[i].unit) == 0) {
                double b = v * units[i].mult;
                if (b >= 1.8e19)
                    break;
                *out = (uint64_t)b;
                return HEARTH_OK;
            }
        }
    }
    return err_set(HEARTH_ERR_INVALID_ARG,
                   "%s: expected a size such as 24GiB, 8GB or 512MiB, got '%s'", field,
                   s ? s : "(none)");
}

hearth_status plan_parse_rate(const char *field, const char *s, double *bytes_per_s)
{
    static const struct {
        const char *unit;
        double mult;
    } units[] = {
        {"B/s", 1.0},  {"KB/s", 1e3}, {"MB/s", 1e6},           {"GB/s", 1e9},
        {"TB/s", 1e12}, {"MiB/s", 1048576.0}, {"GiB/s", 1073741824.0},
    };
    double v;
    const char *unit;
    if (s && parse_number(s, &v, &unit) && v > 0) {
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (strcasecmp(unit, units[i].unit) == 0) {
                *bytes_per_s = v * units[i].mult;
                return HEARTH_OK;
            }
        }
    }
    return err_set(HEARTH_ERR_INVALID_ARG,
                   "%s: expected a bandwidth such as 1008GB/s or 25GB/s, got '%s'", field,
                   s ? s : "(none)");
}

static hearth_status parse_flops(const char *field, const char *s, double *out)
{
    static const struct {
        const char *unit;
        double mult;
    } units[] = {{"GFLOPS", 1e9}, {"TFLOPS", 1e12}, {"PFLOPS", 1e15}, {"G", 1e9}, {"T", 1e12}};
    double v;
    const char *unit;
    if (s && parse_number(s, &v, &unit) && v > 0) {
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (strcasecmp(unit, units[i].unit) == 0) {
                *out = v * units[i].mult;
                return HEARTH_OK;
            }
        }
    }
    return err_set(HEARTH_ERR_INVALID_ARG,
                   "%s: expected a FLOP rate such as 100TFLOPS or 800GFLOPS, got '%s'", field,
                   s ? s : "(none)");
}

/* Splits spec at ':' into at most max fields (copied into buf); returns the count. */
static int split_fields(const char *spec, char *buf, size_t size, char **fields, int max)
{
    size_t len = strlen(spec);
    if (len >= size)
        return -1;
    memcpy(buf, spec, len + 1);
    int n = 0;
    char *p = buf;
    for (;;) {
        if (n == max)
            return max + 1;
        fields[n++] = p;
        char *c = strchr(p, ':');
        if (!c)
            break;
        *c = '\0';
        p = c + 1;
    }
    return n;
}

hearth_status plan_devices_add(struct plan_devices *d, const char *spec)
{
    char buf[256], *f[4], field[320];
    hearth_status st;
    int n = split_fields(spec, buf, sizeof buf, f, 4);
    if (n < 3 || n > 4)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "device '%s': expected KIND:MEMORY:BANDWIDTH[:FLOPS], e.g. "
                       "cuda:24GiB:1008GB/s",
                       spec);
    if (d->n >= PLAN_MAX_DEVICES)
        return err_set(HEARTH_ERR_INVALID_ARG, "device '%s': at most %d GPUs can be described",
                       spec, PLAN_MAX_DEVICES - 1);
    struct plan_device g;
    memset(&g, 0, sizeof g);
    const char *kind_name;
    if (!strcasecmp(f[0], "cuda")) {
        g.kind = PLAN_DEV_CUDA;
        kind_name = "cuda";
        g.flops = PLAN_DEFAULT_CUDA_FLOPS;
    } else if (!strcasecmp(f[0], "vulkan")) {
        g.kind = PLAN_DEV_VULKAN;
        kind_name = "vulkan";
        g.flops = PLAN_DEFAULT_VULKAN_FLOPS;
        g.host_staging_bytes = PLAN_DEFAULT_VULKAN_HOST_STAGING;
        g.max_buffer_bytes = PLAN_DEFAULT_VULKAN_MAX_BUFFER;
    } else {
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "device '%s': kind '%s' is not cuda or vulkan", spec, f[0]);
    }
    snprintf(field, sizeof field, "device '%s': memory", spec);
    if ((st = plan_parse_bytes(field, f[1], &g.budget_bytes)))
        return st;
    snprintf(field, sizeof field, "device '%s': bandwidth", spec);
    if ((st = plan_parse_rate(field, f[2], &g.mem_bw)))
        return st;
    g.flops_assumed = true;
    if (n == 4) {
        snprintf(field, sizeof field, "device '%s': FLOP rate", spec);
        if ((st = parse_flops(field, f[3], &g.flops)))
            return st;
        g.flops_assumed = false;
    }
    /* a --pcie given earlier applies to GPUs described later too */
    g.h2d_bw = d->dev[PLAN_HOST].h2d_bw > 0 ? d->dev[PLAN_HOST].h2d_bw : PLAN_DEFAULT_PCIE_BW;
    g.h2d_bw_assumed = !(d->dev[PLAN_HOST].h2d_bw > 0);
    int idx = 0;
    for (int i = 1; i < d->n; i++)
        idx += d->dev[i].kind == g.kind;
    snprintf(g.name, sizeof g.name, "%s%d", kind_name, idx);
    d->dev[d->n++] = g;
    return HEARTH_OK;
}

hearth_status plan_devices_set_host(struct plan_devices *d, const char *spec)
{
    char buf[256], *f[3], field[320];
    hearth_status st;
    int n = split_fields(spec, buf, sizeof buf, f, 3);
    if (n < 2 || n > 3)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "host '%s': expected MEMORY:BANDWIDTH[:FLOPS], e.g. 64GiB:70GB/s", spec);
    struct plan_device *h = &d->dev[PLAN_HOST];
    snprintf(field, sizeof field, "host '%s': memory", spec);
    if ((st = plan_parse_bytes(field, f[0], &h->budget_bytes)))
        return st;
    snprintf(field, sizeof field, "host '%s': bandwidth", spec);
    if ((st = plan_parse_rate(field, f[1], &h->mem_bw)))
        return st;
    /*
     * The user's figures replace detected or measured ones. The described
     * host is another machine: this one's measured FLOP rate, matvec rates
     * and op latency are not its figures, so what is not given is assumed.
     */
    h->budget_assumed = h->mem_bw_assumed = h->mem_bw_measured = false;
    memset(h->mv_bw, 0, sizeof h->mv_bw);
    memset(h->mm_flops, 0, sizeof h->mm_flops);
    h->op_s = h->attn_flops = 0.0;
    h->flops = PLAN_DEFAULT_HOST_FLOPS;
    h->flops_assumed = true;
    h->flops_measured = false;
    if (n == 3) {
        snprintf(field, sizeof field, "host '%s': FLOP rate", spec);
        if ((st = parse_flops(field, f[2], &h->flops)))
            return st;
        h->flops_assumed = h->flops_measured = false;
    }
    return HEARTH_OK;
}

hearth_status plan_devices_set_pcie(struct plan_devices *d, const char *spec)
{
    double bw;
    hearth_status st = plan_parse_rate("--pcie", spec, &bw);
    if (st)
        return st;
    /* remembered on the host too, so GPUs added later (plan_devices_add) pick it up */
    for (int i = 1; i < d->n; i++) {
        d->dev[i].h2d_bw = bw;
        d->dev[i].h2d_bw_assumed = false;
    }
    d->dev[PLAN_HOST].h2d_bw = bw;
    return HEARTH_OK;
}

hearth_status plan_devices_detect(struct plan_devices *d)
{
    struct reg_device_info info[PLAN_MAX_DEVICES];
    int n = reg_list_devices(info, PLAN_MAX_DEVICES);
    if (n > PLAN_MAX_DEVICES)
        n = PLAN_MAX_DEVICES;
    for (int i = 0; i < n; i++) {
        if (!strcmp(info[i].name, "cpu")) {
            if (info[i].total_bytes) {
                d->dev[PLAN_HOST].budget_bytes = info[i].total_bytes;
                d->dev[PLAN_HOST].budget_assumed = false;
            }
            plan_devices_apply_cache(d, PLAN_HOST, info[i].desc);
            continue;
        }
        if (d->n >= PLAN_MAX_DEVICES)
            break;
        struct plan_device g;
        memset(&g, 0, sizeof g);
        memcpy(g.name, info[i].name, sizeof g.name);
        g.name[sizeof g.name - 1] = '\0';
        bool vk = !strncmp(info[i].name, "vulkan", 6);
        g.kind = vk ? PLAN_DEV_VULKAN : PLAN_DEV_CUDA;
        g.budget_bytes = info[i].free_bytes ? info[i].free_bytes : info[i].total_bytes;
        g.mem_bw = vk ? PLAN_DEFAULT_VULKAN_BW : PLAN_DEFAULT_CUDA_BW;
        g.flops = vk ? PLAN_DEFAULT_VULKAN_FLOPS : PLAN_DEFAULT_CUDA_FLOPS;
        g.h2d_bw = d->dev[PLAN_HOST].h2d_bw > 0 ? d->dev[PLAN_HOST].h2d_bw : PLAN_DEFAULT_PCIE_BW;
        g.mem_bw_assumed = g.flops_assumed = true;
        g.h2d_bw_assumed = !(d->dev[PLAN_HOST].h2d_bw > 0);
        g.host_staging_bytes = info[i].host_staging_bytes;
        g.max_buffer_bytes = info[i].max_buffer_bytes;
        g.software = reg_is_software_device(info[i].desc);
        d->dev[d->n++] = g;
        plan_devices_apply_cache(d, d->n - 1, info[i].desc);
    }
    return HEARTH_OK;
}

bool plan_devices_apply_cache(struct plan_devices *d, int i, const char *desc)
{
    if (i < 0 || i >= d->n)
        return false;
    struct bw_entry e;
    char note[sizeof d->cache_note];
    bool found = bw_cache_lookup(d->dev[i].name, desc, &e, note, sizeof note);
    if (note[0] && !d->cache_note[0])
        memcpy(d->cache_note, note, sizeof note);
    if (!found)
        return false;
    struct plan_device *g = &d->dev[i];
    if (e.mem_gbps > 0) {
        g->mem_bw = e.mem_gbps * 1e9;
        g->mem_bw_assumed = false;
        g->mem_bw_measured = true;
    }
    if (i != PLAN_HOST && e.h2d_gbps > 0) {
        g->h2d_bw = e.h2d_gbps * 1e9;
        g->h2d_bw_assumed = false;
        g->h2d_bw_measured = true;
    }
    if (e.gflops > 0) {
        g->flops = e.gflops * 1e9;
        g->flops_assumed = false;
        g->flops_measured = true;
    }
    for (int t = 0; t < HEARTH_DTYPE_COUNT; t++) {
        g->mv_bw[t] = e.mv_gbps[t] * 1e9;
        g->mm_flops[t] = e.mm_gflops[t] * 1e9;
    }
    g->op_s = e.op_us * 1e-6;
    g->attn_flops = e.attn_gflops * 1e9;
    return true;
}

void plan_devices_cap(struct plan_devices *d, uint64_t bytes)
{
    for (int i = 1; i < d->n; i++)
        if (d->dev[i].budget_bytes > bytes)
            d->dev[i].budget_bytes = bytes;
}
