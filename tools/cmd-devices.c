/*
 * cmd-devices: `hearth devices` lists what this build and this machine offer:
 * each device's name (what --device takes), memory, its memory copy bandwidth,
 * its host-to-device bandwidth, its FLOP rate on a quantized matmul and its
 * decode figures (matvec rate, op latency).
 *
 * The figures are measured once per device (core/bandwidth.h: the backend's
 * copy benchmark and timed uploads; core/flops.h: timed Q4_K MATMULs of 512
 * tokens and of one; a few seconds per device) and kept in the bandwidth cache, which `hearth
 * plan` and the engine's planner read so their predictions rest on measured
 * figures. A cached device is not measured again unless --measure asks, except
 * that rates missing from its entry (a v1 or v2 cache) are measured and added;
 * --no-bandwidth skips all measurement, which is what scripts that only want
 * the names should use. A cache that cannot be read or written is reported on
 * stderr and otherwise ignored.
 */
#include <stdio.h>
#include <string.h>

#include "backend-registry.h"
#include "backend.h"
#include "bandwidth.h"
#include "cli.h"
#include "err.h"
#include "flops.h"

/*
 * The FLOP rates (matmul per type, attention), or with decode the matvec
 * rates and op latency, of dev into e; a device without the op keeps 0
 * (assumed).
 */
static hearth_status measure_rates(struct hearth_device *dev, bool decode, struct bw_entry *e)
{
    hearth_status st;
    if (decode) {
        struct flops_decode_result r;
        if ((st = flops_measure_decode(dev, &r)) == HEARTH_OK) {
            memcpy(e->mv_gbps, r.gbps, sizeof e->mv_gbps);
            e->op_us = r.op_s * 1e6;
        }
    } else {
        struct flops_result r;
        if ((st = flops_measure_device(dev, &r)) == HEARTH_OK) {
            e->gflops = r.gflops;
            memcpy(e->mm_gflops, r.gflops_type, sizeof e->mm_gflops);
        }
        struct flops_attn_result a;
        if (st == HEARTH_OK && (st = flops_measure_attention(dev, &a)) == HEARTH_OK)
            e->attn_gflops = a.gflops;
    }
    if (st == HEARTH_ERR_UNSUPPORTED) {
        err_clear();
        return HEARTH_OK;
    }
    return st;
}

/*
 * Measures a listed device and caches the figures: without a cached entry
 * everything, else only what *e (the cached entry) lacks: the FLOP rates
 * (matmul per type, attention) of a v1 or v2 entry, the decode figures of a
 * v1 or v2 one. False when it cannot be opened or measured.
 */
static bool measure(const char *name, const char *desc, bool cached, struct bw_entry *e)
{
    struct hearth_device *dev = NULL;
    if (reg_device_open(name, &dev) != HEARTH_OK) {
        fprintf(stderr, "hearth devices: %s: %s\n", name, hearth_last_error());
        return false;
    }
    hearth_status st = cached ? HEARTH_OK : bw_measure_device(dev, e);
    if (st == HEARTH_OK && !(cached && e->gflops > 0 && e->attn_gflops > 0))
        st = measure_rates(dev, false, e);
    if (st == HEARTH_OK && !(cached && e->mv_gbps[HEARTH_DTYPE_Q4_K] > 0))
        st = measure_rates(dev, true, e);
    backend_device_destroy(dev);
    if (st != HEARTH_OK) {
        fprintf(stderr, "hearth devices: %s\n", hearth_last_error());
        return false;
    }
    /* keyed by the listing's description, which is what readers see without opening */
    snprintf(e->desc, sizeof e->desc, "%s", desc);
    if (bw_cache_store(e) != HEARTH_OK)
        fprintf(stderr, "hearth devices: note: %s (figures not cached)\n", hearth_last_error());
    return true;
}

static void fmt_rate(char *buf, size_t size, double rate)
{
    if (rate > 0.0) /* a software device's fraction of a GFLOP/s keeps its digits */
        snprintf(buf, size, "%.*f", rate < 10.0 ? 2 : 1, rate);
    else
        snprintf(buf, size, "-");
}

/* "  what: Q4_K 10.4, Q6_K 12.1, ..." in flops.h's order; nothing when none. */
static void print_rates(const char *what, const double *rates)
{
    bool any = false;
    for (int i = 0; i < FLOPS_DEC_N_TYPES; i++) {
        hearth_dtype t = flops_dec_types[i];
        if (!(rates[t] > 0))
            continue;
        char r[32];
        fmt_rate(r, sizeof r, rates[t]);
        printf("%s %s %s", any ? "," : what, hearth_dtype_name(t), r);
        any = true;
    }
    if (any)
        printf("\n");
}

int cmd_devices(int argc, char **argv)
{
    int bandwidth = 1, force = 0, rates = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: hearth devices [--no-bandwidth | --measure] [--rates]\n\n"
                   "Lists the devices this build and machine offer, with their memory, memory\n"
                   "copy bandwidth, host-to-device bandwidth (GB/s = 1e9 bytes per second;\n"
                   "copy counts bytes read + written) and FLOP rate (GFLOP/s = 1e9 per second\n"
                   "of a Q4_K weight times 512 tokens, the matmul prefill runs), matvec rate\n"
                   "(mv GB/s: Q4_K weight bytes per second a one-token matmul consumes, what\n"
                   "decode runs) and op latency (op us: microseconds per op of a tiny one-token\n"
                   "matmul: a CPU's thread fork/join, a GPU's kernel launch). The figures\n"
                   "are measured once and cached ($HEARTH_CACHE_DIR, else\n"
                   "$XDG_CACHE_HOME/hearth, else ~/.cache/hearth: devices.txt); hearth plan\n"
                   "and the loader's planner use the cached figures.\n"
                   "  --no-bandwidth   skip bandwidths and FLOP rates (no measurement, no cache)\n"
                   "  --measure        measure every device again and update the cache\n"
                   "  --rates          also list each device's matvec and matmul rates per\n"
                   "                   weight type, and its attention rate\n");
            return 0;
        }
        if (!strcmp(argv[i], "--no-bandwidth")) {
            bandwidth = 0;
            continue;
        }
        if (!strcmp(argv[i], "--measure")) {
            force = 1;
            continue;
        }
        if (!strcmp(argv[i], "--rates")) {
            rates = 1;
            continue;
        }
        fprintf(stderr, "hearth devices: unknown option '%s' (see --help)\n", argv[i]);
        return 2;
    }
    if (!bandwidth && force) {
        fprintf(stderr, "hearth devices: --measure and --no-bandwidth contradict each other\n");
        return 2;
    }
    struct reg_device_info devs[32];
    int n = reg_list_devices(devs, 32);
    if (n > 32)
        n = 32;
    printf("backends built: %s\n", reg_backends_built());
    printf("%-10s %12s %12s %10s %10s %10s %10s %8s  %s\n", "device", "total MiB", "free MiB",
           "GB/s", "H2D GB/s", "GFLOP/s", "mv GB/s", "op us", "description");
    bool noted = false;
    for (int i = 0; i < n; i++) {
        struct bw_entry e;
        memset(&e, 0, sizeof e);
        const char *how = "";
        if (bandwidth) {
            char note[256] = "";
            bool cached = !force && bw_cache_lookup(devs[i].name, devs[i].desc, &e, note,
                                                    sizeof note);
            if (note[0] && !noted) {
                fprintf(stderr, "hearth devices: note: %s\n", note);
                noted = true;
            }
            if (cached && e.gflops > 0 && e.attn_gflops > 0 && e.mv_gbps[HEARTH_DTYPE_Q4_K] > 0)
                how = " (cached)";
            else if (cached) /* an older entry: only rates are missing */
                how = measure(devs[i].name, devs[i].desc, true, &e)
                          ? " (cached; rates measured now)"
                          : " (cached)";
            else if (measure(devs[i].name, devs[i].desc, false, &e))
                how = " (measured now)";
        }
        char bws[32], h2d[32], fl[32], mv[32], op[32];
        fmt_rate(bws, sizeof bws, e.mem_gbps);
        fmt_rate(h2d, sizeof h2d, e.h2d_gbps);
        fmt_rate(fl, sizeof fl, e.gflops);
        fmt_rate(mv, sizeof mv, e.mv_gbps[HEARTH_DTYPE_Q4_K]);
        fmt_rate(op, sizeof op, e.op_us);
        /* a driver's cap on one buffer decides what the planner can put there */
        char cap[64] = "";
        if (devs[i].max_buffer_bytes)
            snprintf(cap, sizeof cap, "; buffers up to %.0f MiB",
                     (double)devs[i].max_buffer_bytes / 1048576.0);
        printf("%-10s %12llu %12llu %10s %10s %10s %10s %8s  %s%s%s\n", devs[i].name,
               (unsigned long long)(devs[i].total_bytes >> 20),
               (unsigned long long)(devs[i].free_bytes >> 20), bws, h2d, fl, mv, op,
               devs[i].desc, cap, how);
        if (rates) {
            print_rates("  matvec GB/s:", e.mv_gbps);
            print_rates("  matmul GFLOP/s:", e.mm_gflops);
            if (e.attn_gflops > 0) {
                char r[32];
                fmt_rate(r, sizeof r, e.attn_gflops);
                printf("  attention GFLOP/s: %s (f16 cache, 32 x 8 heads of 128)\n", r);
            }
        }
        fflush(stdout);
    }
    return 0;
}
