/*
 * cmd-devices: `hearth devices` lists what this build and this machine offer.
 */
#include <stdio.h>
#include <string.h>

#include "backend-registry.h"
#include "cli.h"

int cmd_devices(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: hearth devices\n\nLists the devices this build and machine offer.\n");
        return 0;
    }
    struct reg_device_info devs[32];
    int n = reg_list_devices(devs, 32);
    if (n > 32)
        n = 32;
    printf("backends built: %s\n", reg_backends_built());
    printf("%-10s %12s %12s  %s\n", "device", "total MiB", "free MiB", "description");
    for (int i = 0; i < n; i++)
        printf("%-10s %12llu %12llu  %s\n", devs[i].name,
               (unsigned long long)(devs[i].total_bytes >> 20),
               (unsigned long long)(devs[i].free_bytes >> 20), devs[i].desc);
    return 0;
}
