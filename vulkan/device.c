/*
 * vulkan/device: physical-device discovery for the registry. No loader, no
 * ICD or no device is not an error: the build simply lists no vulkan devices.
 */
#include <stdio.h>
#include <string.h>
#include <vulkan/vulkan.h>

#include "backend-registry.h"

int vk_probe_devices(struct reg_device_info *out, int max);

int vk_probe_devices(struct reg_device_info *out, int max)
{
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "hearth",
        .apiVersion = VK_API_VERSION_1_2,
    };
    VkInstanceCreateInfo ici = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pApplicationInfo = &app,
    };
    VkInstance inst;
    if (vkCreateInstance(&ici, NULL, &inst) != VK_SUCCESS)
        return 0;
    uint32_t count = 0;
    vkEnumeratePhysicalDevices(inst, &count, NULL);
    VkPhysicalDevice devs[16];
    if (count > 16)
        count = 16;
    vkEnumeratePhysicalDevices(inst, &count, devs);
    for (uint32_t i = 0; i < count && (int)i < max; i++) {
        VkPhysicalDeviceProperties p;
        VkPhysicalDeviceMemoryProperties mp;
        vkGetPhysicalDeviceProperties(devs[i], &p);
        vkGetPhysicalDeviceMemoryProperties(devs[i], &mp);
        memset(&out[i], 0, sizeof out[i]);
        snprintf(out[i].name, sizeof out[i].name, "vulkan%u", i);
        snprintf(out[i].desc, sizeof out[i].desc, "%s (Vulkan %u.%u)", p.deviceName,
                 VK_API_VERSION_MAJOR(p.apiVersion), VK_API_VERSION_MINOR(p.apiVersion));
        for (uint32_t h = 0; h < mp.memoryHeapCount; h++)
            if (mp.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
                out[i].total_bytes += mp.memoryHeaps[h].size;
        out[i].free_bytes = out[i].total_bytes;
    }
    vkDestroyInstance(inst, NULL);
    return (int)count;
}
