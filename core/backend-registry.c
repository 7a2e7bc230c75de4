/*
 * backend-registry: the only file in core/ with HEARTH_WITH_CUDA and
 * HEARTH_WITH_VULKAN conditionals. Each compiled-in backend contributes its
 * devices through a probe function declared here, so a build without a backend
 * simply lists fewer devices.
 */
#include "backend-registry.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef HEARTH_WITH_CUDA
int cuda_probe_devices(struct reg_device_info *out, int max);
#endif
#ifdef HEARTH_WITH_VULKAN
int vk_probe_devices(struct reg_device_info *out, int max);
#endif

const char *reg_backends_built(void)
{
    return "cpu"
#ifdef HEARTH_WITH_CUDA
           " cuda"
#endif
#ifdef HEARTH_WITH_VULKAN
           " vulkan"
#endif
        ;
}

static int probe_cpu(struct reg_device_info *out, int max)
{
    if (max < 1)
        return 1;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "cpu");
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);
    snprintf(out->desc, sizeof out->desc, "host CPU, %ld logical cores",
             sysconf(_SC_NPROCESSORS_ONLN));
    out->total_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    out->free_bytes = avail > 0 && page > 0 ? (uint64_t)avail * (uint64_t)page : 0;
    return 1;
}

int reg_list_devices(struct reg_device_info *out, int max)
{
    int n = probe_cpu(out, max);
#ifdef HEARTH_WITH_CUDA
    n += cuda_probe_devices(out + (n < max ? n : max), n < max ? max - n : 0);
#endif
#ifdef HEARTH_WITH_VULKAN
    n += vk_probe_devices(out + (n < max ? n : max), n < max ? max - n : 0);
#endif
    return n;
}
