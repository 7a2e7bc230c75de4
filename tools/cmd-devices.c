/*
 * cmd-devices: `hearth devices` lists what this build and this machine offer:
 * each device's name (what --device takes), memory, its memory copy bandwidth
 * and its host-to-device bandwidth.
 *
 * Bandwidths are measured once per device (core/bandwidth.h: the backend's
 * copy benchmark and timed uploads, about a second per device) and kept in
 * the bandwidth cache, which `hearth plan` and the engine's planner read so
 * their predictions rest on measured figures. A cached device is not measured
 * again unless --measure asks; --no-bandwidth skips bandwidths altogether,
 * which is what scripts that only want the names should use. A cache that
 * cannot be read or written is reported on stderr and otherwise ignored.
 */
#include <stdio.h>
#include <string.h>

#include "backend-registry.h"
#include "backend.h"
#include "bandwidth.h"
#include "cli.h"
#include "err.h"

/* Measures a listed device and caches the figures; false when it cannot be opened or measured. */
static bool measure(const char *name, const char *desc, struct bw_entry *e)
{
    struct hearth_device *dev = NULL;
    if (reg_device_open(name, &dev) != HEARTH_OK) {
        fprintf(stderr, "hearth devices: %s: %s\n", name, hearth_last_error());
        return false;
    }
    hearth_status st = bw_measure_device(dev, e);
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

static void fmt_bw(char *buf, size_t size, double gbps)
{
    if (gbps > 0.0)
        snprintf(buf, size, "%.1f", gbps);
    else
        snprintf(buf, size, "-");
}

int cmd_devices(int argc, char **argv)
{
    int bandwidth = 1, force = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: hearth devices [--no-bandwidth | --measure]\n\n"
                   "Lists the devices this build and machine offer, with their memory, memory\n"
                   "copy bandwidth and host-to-device bandwidth (GB/s = 1e9 bytes per second;\n"
                   "copy counts bytes read + written). Bandwidths are measured once and cached\n"
                   "($HEARTH_CACHE_DIR, else $XDG_CACHE_HOME/hearth, else ~/.cache/hearth:\n"
                   "devices.txt); hearth plan and the loader's planner use the cached figures.\n"
                   "  --no-bandwidth   skip bandwidths (no measurement, no cache)\n"
                   "  --measure        measure every device again and update the cache\n");
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
    printf("%-10s %12s %12s %10s %10s  %s\n", "device", "total MiB", "free MiB", "GB/s",
           "H2D GB/s", "description");
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
            if (cached)
                how = " (cached)";
            else if (measure(devs[i].name, devs[i].desc, &e))
                how = " (measured now)";
        }
        char bws[32], h2d[32];
        fmt_bw(bws, sizeof bws, e.mem_gbps);
        fmt_bw(h2d, sizeof h2d, e.h2d_gbps);
        printf("%-10s %12llu %12llu %10s %10s  %s%s\n", devs[i].name,
               (unsigned long long)(devs[i].total_bytes >> 20),
               (unsigned long long)(devs[i].free_bytes >> 20), bws, h2d, devs[i].desc, how);
        fflush(stdout);
    }
    return 0;
}
