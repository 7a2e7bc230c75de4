/*
 * backend-registry: the one place that knows which backends were compiled in.
 * Tools, the planner and the scheduler ask it for devices; nothing else in
 * core/ mentions CUDA or Vulkan.
 *
 * Each compiled-in backend contributes one registration table (struct
 * hearth_backend_ops, core/backend.h) through one function:
 *     const struct hearth_backend_ops *cpu_backend_ops(void);   core/cpu/backend-cpu.c
 *     const struct hearth_backend_ops *cuda_backend_ops(void);  cuda/ (HEARTH_WITH_CUDA)
 *     const struct hearth_backend_ops *vk_backend_ops(void);    vulkan/ (HEARTH_WITH_VULKAN)
 * (see docs/backends.md). During the transition a GPU backend that does not
 * define its *_backend_ops yet is still listed through its probe function
 * (cuda_probe_devices / vk_probe_devices), but cannot be opened.
 */
#ifndef HEARTH_BACKEND_REGISTRY_H
#define HEARTH_BACKEND_REGISTRY_H

#include <stdint.h>

#include "backend.h"
#include "hearth.h"

struct reg_device_info {
    char name[32];        /* "cpu", "cuda0", "vulkan0" */
    char desc[256];       /* what the driver calls it */
    uint64_t total_bytes; /* device memory (host RAM for cpu) */
    uint64_t free_bytes;
    double bw_gbps;       /* measured memory bandwidth, 1e9 B/s; 0: not measured */
    uint64_t host_staging_bytes; /* hearth_device_props.host_staging_bytes */
    uint64_t max_buffer_bytes;   /* hearth_device_props.max_buffer_bytes */
};

/*
 * True when a device description names a software rasterizer (lavapipe/
 * llvmpipe, SwiftShader, softpipe): a "GPU" that computes on the host's own
 * cores, which the engine's implicit device choice and the planner's
 * automatic placement skip.
 */
bool reg_is_software_device(const char *desc);

/* Names of the backends compiled into this build, space separated ("cpu cuda vulkan"). */
const char *reg_backends_built(void);
/* Fills up to max entries; returns how many devices exist (may exceed max). */
int reg_list_devices(struct reg_device_info *out, int max);

/*
 * The registration tables of the compiled-in backends that provide one, cpu
 * first; fills up to max, returns how many exist.
 */
int reg_backends(const struct hearth_backend_ops **out, int max);

/*
 * Opens a device by its listed name ("cpu", "cuda0", "vulkan1"); the caller
 * destroys it with backend_device_destroy. NOT_FOUND (the message lists the
 * names this build and machine offer) for an unknown name; UNSUPPORTED for a
 * device that is listed but whose backend cannot be opened yet.
 */
hearth_status reg_device_open(const char *name, struct hearth_device **out);

#endif
