/*
 * cuda/device: device discovery for the registry. A machine without a CUDA
 * driver or device is not an error: it simply has no cuda devices.
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

extern "C" {
#include "backend-registry.h"
}

extern "C" int cuda_probe_devices(struct reg_device_info *out, int max)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no driver" error */
        return 0;
    }
    for (int i = 0; i < count && i < max; i++) {
        cudaDeviceProp prop;
        memset(&out[i], 0, sizeof out[i]);
        snprintf(out[i].name, sizeof out[i].name, "cuda%d", i);
        if (cudaGetDeviceProperties(&prop, i) == cudaSuccess) {
            snprintf(out[i].desc, sizeof out[i].desc, "%s (sm_%d%d)", prop.name, prop.major,
                     prop.minor);
            out[i].total_bytes = prop.totalGlobalMem;
        }
        size_t free_b = 0, total_b = 0;
        if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
            out[i].free_bytes = free_b;
        cudaGetLastError();
    }
    return count;
}
