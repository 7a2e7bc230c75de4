/*
 * backend-registry: the one place that knows which backends were compiled in.
 * Tools and (later) the planner ask it for devices; nothing else in core/
 * mentions CUDA or Vulkan.
 */
#ifndef HEARTH_BACKEND_REGISTRY_H
#define HEARTH_BACKEND_REGISTRY_H

#include <stdint.h>

#include "hearth.h"

struct reg_device_info {
    char name[32];        /* "cpu", "cuda0", "vulkan0" */
    char desc[256];       /* what the driver calls it */
    uint64_t total_bytes; /* device memory (host RAM for cpu) */
    uint64_t free_bytes;
};

/* Names of the backends compiled into this build, space separated ("cpu cuda vulkan"). */
const char *reg_backends_built(void);
/* Fills up to max entries; returns how many devices exist (may exceed max). */
int reg_list_devices(struct reg_device_info *out, int max);

#endif
