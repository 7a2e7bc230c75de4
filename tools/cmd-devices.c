/*
 * cmd-devices: `hearth devices` lists what this build and this machine offer:
 * each device's name (what --device takes), memory, and its memory bandwidth
 * measured now by the backend (a copy benchmark of well under a second per
 * device) where the backend can measure it. --no-bandwidth skips the
 * measurement, which is what scripts that only want the names should use.
 */
#include <stdio.h>
#include <string.h>

#include "backend-registry.h"
#include "backend.h"
#include "cli.h"

/* Opens a listed device and measures it; 0 when it cannot be opened or measured. */
static double measure(const char *name)
{
    struct hearth_device *dev = NULL;
    if (reg_device_open(name, &dev) != HEARTH_OK)
        return 0.0;
    double gbps = 0.0;
    if (backend_device_measure_bandwidth(dev, &gbps) != HEARTH_OK)
        gbps = 0.0;
    backend_device_destroy(dev);
    return gbps;
}

int cmd_devices(int argc, char **argv)
{
    int bandwidth = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: hearth devices [--no-bandwidth]\n\n"
                   "Lists the devices this build and machine offer, with their memory and\n"
                   "measured memory bandwidth (GB/s = 1e9 bytes read+written per second).\n"
                   "  --no-bandwidth   skip the bandwidth measurement\n");
            return 0;
        }
        if (!strcmp(argv[i], "--no-bandwidth")) {
            bandwidth = 0;
            continue;
        }
        fprintf(stderr, "hearth devices: unknown option '%s' (see --help)\n", argv[i]);
        return 2;
    }
    struct reg_device_info devs[32];
    int n = reg_list_devices(devs, 32);
    if (n > 32)
        n = 32;
    printf("backends built: %s\n", reg_backends_built());
    printf("%-10s %12s %12s %10s  %s\n", "device", "total MiB", "free MiB", "GB/s",
           "description");
    for (int i = 0; i < n; i++) {
        double bw = devs[i].bw_gbps;
        if (bandwidth && bw <= 0.0)
            bw = measure(devs[i].name);
        char bws[32];
        if (bw > 0.0)
            snprintf(bws, sizeof bws, "%.1f", bw);
        else
            snprintf(bws, sizeof bws, "-");
        printf("%-10s %12llu %12llu %10s  %s\n", devs[i].name,
               (unsigned long long)(devs[i].total_bytes >> 20),
               (unsigned long long)(devs[i].free_bytes >> 20), bws, devs[i].desc);
        fflush(stdout);
    }
    return 0;
}
