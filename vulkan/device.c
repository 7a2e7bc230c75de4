/*
 * vulkan/device: instance and device creation, and what the device can do.
 *
 * vk_probe_devices (for the registry) lists devices without creating one; no
 * loader, no ICD or no device is not an error there. vk_ctx_create picks a
 * device by index, by name substring, or by type (discrete > integrated >
 * virtual > cpu: never blindly "device 0"), takes one compute queue
 * (preferring a compute-only family, which on discrete GPUs runs beside
 * graphics work), and records the features and limits once in struct
 * vk_caps. Optional features are recorded here; a shader variant that
 * needs one (the subgroup reductions, the 16-bit F16 loads) is chosen per
 * dispatch from caps, and 16-bit storage is enabled at creation unless
 * opts.no_16bit / HEARTH_VULKAN_NO_16BIT=1 asks for the word path.
 * Validation (VK_LAYER_KHRONOS_validation with synchronization validation,
 * and a debug-utils messenger counting warnings and errors) is on when asked
 * (required) or with HEARTH_VULKAN_VALIDATE=1 (used where installed, else
 * caps.validation_missing). The library never prints: the count and first
 * message are read by tests, and vk_submit fails on a new message.
 * HEARTH_VULKAN_MAX_BUFFER lowers the largest buffer (chunk_cap), in the
 * description of a device as in the device opened.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk-graph.h"

/*
 * The registry's entry point. It lives here, beside vk_probe_devices, because
 * the registry declares both weak: a weak reference pulls no object out of a
 * static archive, so the two must share the object that is linked anyway.
 */
const struct hearth_backend_ops *vk_backend_ops(void);

const struct hearth_backend_ops *vk_backend_ops(void)
{
    return vk__backend_table();
}

static const char *vk_result_name(VkResult r)
{
    switch (r) {
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_INCOMPLETE: return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    default: return "VkResult (other)";
    }
}

hearth_status vk__fail(VkResult r, const char *expr, const char *file, int line)
{
    hearth_status st = HEARTH_ERR_BACKEND;
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY)
        st = HEARTH_ERR_DEVICE_OOM;
    else if (r == VK_ERROR_OUT_OF_HOST_MEMORY)
        st = HEARTH_ERR_NO_MEMORY;
    else if (r == VK_ERROR_DEVICE_LOST)
        st = HEARTH_ERR_DEVICE_LOST;
    return err_set(st, "%s:%d: %s: %s (%d)", file, line, expr, vk_result_name(r), (int)r);
}

static VkInstance vk_instance_plain(void)
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
        return VK_NULL_HANDLE;
    return inst;
}

void vk_keep_driver_loaded(void)
{
    static VkInstance keeper = VK_NULL_HANDLE; /* reachable until exit: not a leak */
    if (keeper == VK_NULL_HANDLE)
        keeper = vk_instance_plain();
}

/*
 * HEARTH_VULKAN_MAX_BUFFER=BYTES: acts as a driver whose buffers stop at
 * BYTES (at least 1 MiB), so a small card's limits (AMD's 2-4 GiB
 * allocations, lavapipe's 128 MiB) can be tried, and tested, anywhere. 0
 * when unset or malformed.
 */
static uint64_t env_max_buffer(void)
{
    const char *e = getenv("HEARTH_VULKAN_MAX_BUFFER");
    if (!e || !*e)
        return 0;
    char *end = NULL;
    unsigned long long v = strtoull(e, &end, 10);
    return (end && *end == '\0' && v >= (1ull << 20)) ? (uint64_t)v : 0;
}

/*
 * caps.max_chunk: the largest buffer hearth creates, so every binding of it
 * stays in range and byte offsets fit the 32-bit push constants; 256 bytes
 * less for the 16-byte slack, aligned. override (tests) and
 * HEARTH_VULKAN_MAX_BUFFER only lower it.
 */
static uint64_t chunk_cap(uint64_t max_alloc, uint64_t max_storage_range, uint64_t override)
{
    uint64_t cap = max_alloc < max_storage_range ? max_alloc : max_storage_range;
    if (cap > 0xffffff00ull)
        cap = 0xffffff00ull;
    if (override && override < cap)
        cap = override;
    uint64_t env = env_max_buffer();
    if (env && env < cap)
        cap = env;
    return cap > 4096 ? cap - 256 : cap;
}

/* caps.max_chunk of an unopened device, as vk_ctx_create would cap it. */
static uint64_t probe_max_chunk(VkPhysicalDevice phys)
{
    VkPhysicalDeviceMaintenance3Properties m3 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                      .pNext = &m3};
    vkGetPhysicalDeviceProperties2(phys, &p2);
    return chunk_cap(m3.maxMemoryAllocationSize, p2.properties.limits.maxStorageBufferRange, 0);
}

int vk_probe_devices(struct reg_device_info *out, int max)
{
    /* Loading an ICD costs tens of milliseconds, and a driver unloaded before
     * exit leaves its process-lifetime allocations unattributable for the
     * sanitizer build's leak check: keep one instance (and the driver) for the
     * life of the process. */
    vk_keep_driver_loaded();
    VkInstance inst = vk_instance_plain();
    if (inst == VK_NULL_HANDLE)
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
        out[i].max_buffer_bytes = probe_max_chunk(devs[i]);
        out[i].host_staging_bytes = vk_host_staging_bytes(out[i].max_buffer_bytes);
    }
    vkDestroyInstance(inst, NULL);
    return (int)count;
}

static VKAPI_ATTR VkBool32 VKAPI_CALL vk_debug_cb(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                 VkDebugUtilsMessageTypeFlagsEXT type,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *data,
                                                 void *user)
{
    struct vk_ctx *ctx = user;
    bool counts = (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) ||
                  ((sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) &&
                   (type & (VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                            VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT)));
    if (counts) {
        const char *m = data && data->pMessage ? data->pMessage : "?";
        if (ctx->val_errors == 0)
            snprintf(ctx->val_first, sizeof ctx->val_first, "%s", m);
        ctx->val_errors++;
        snprintf(ctx->val_last, sizeof ctx->val_last, "%s", m);
    }
    return VK_FALSE;
}

static bool has_ext(const VkExtensionProperties *e, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(e[i].extensionName, name) == 0)
            return true;
    return false;
}

/* 0: off; 1: on where the layer is installed (HEARTH_VULKAN_VALIDATE=1); 2: required (opts). */
static int want_validation(const struct vk_ctx_opts *opts)
{
    const char *env = getenv("HEARTH_VULKAN_VALIDATE");
    if (opts->validate)
        return 2;
    return env && env[0] == '1' ? 1 : 0;
}

static const char *const val_layer = "VK_LAYER_KHRONOS_validation";

static hearth_status layer_installed(bool *found)
{
    uint32_t n = 0;
    *found = false;
    vkEnumerateInstanceLayerProperties(&n, NULL);
    VkLayerProperties *lp = calloc(n ? n : 1, sizeof *lp);
    if (!lp)
        return err_set(HEARTH_ERR_NO_MEMORY, "vulkan: layer list");
    vkEnumerateInstanceLayerProperties(&n, lp);
    for (uint32_t i = 0; i < n; i++)
        *found = *found || strcmp(lp[i].layerName, val_layer) == 0;
    free(lp);
    return HEARTH_OK;
}

bool vk_validation_requested(void)
{
    struct vk_ctx_opts none = {.device_index = -1};
    return want_validation(&none) == 1;
}

bool vk_validation_available(void)
{
    bool found = false;
    return layer_installed(&found) == HEARTH_OK && found;
}

/*
 * validate: as want_validation. The messenger takes warnings and errors of
 * the validation and performance kinds; synchronization validation is on as
 * well, since the one-barrier-per-dispatch model (command.c) is exactly what
 * it checks.
 */
static hearth_status create_instance(struct vk_ctx *ctx, int validate)
{
    hearth_status st = HEARTH_OK;
    const char *exts[2] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME};
    if (validate) {
        bool found = false;
        if ((st = layer_installed(&found)) != HEARTH_OK)
            return st;
        if (!found && validate == 2)
            return err_set(HEARTH_ERR_UNSUPPORTED, "vulkan: validation requested but %s is not "
                           "installed (Debian: vulkan-validationlayers)", val_layer);
        if (!found) {
            ctx->caps.validation_missing = true;
            validate = 0;
        }
    }
    VkValidationFeatureEnableEXT enables[1] = {
        VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
    VkValidationFeaturesEXT vf = {
        .sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
        .enabledValidationFeatureCount = 1,
        .pEnabledValidationFeatures = enables,
    };
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "hearth",
        .apiVersion = VK_API_VERSION_1_2,
    };
    VkInstanceCreateInfo ici = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = validate ? &vf : NULL,
        .pApplicationInfo = &app,
        .enabledLayerCount = validate ? 1u : 0u,
        .ppEnabledLayerNames = &val_layer,
        .enabledExtensionCount = validate ? 2u : 0u,
        .ppEnabledExtensionNames = exts,
    };
    VK_TRY(vkCreateInstance(&ici, NULL, &ctx->inst), fail);
    if (validate) {
        PFN_vkCreateDebugUtilsMessengerEXT create = (PFN_vkCreateDebugUtilsMessengerEXT)
            vkGetInstanceProcAddr(ctx->inst, "vkCreateDebugUtilsMessengerEXT");
        ctx->destroy_messenger = (PFN_vkDestroyDebugUtilsMessengerEXT)
            vkGetInstanceProcAddr(ctx->inst, "vkDestroyDebugUtilsMessengerEXT");
        if (!create || !ctx->destroy_messenger)
            return err_set(HEARTH_ERR_UNSUPPORTED, "vulkan: VK_EXT_debug_utils has no messenger");
        VkDebugUtilsMessengerCreateInfoEXT mci = {
            .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
            .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
            .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
            .pfnUserCallback = vk_debug_cb,
            .pUserData = ctx,
        };
        VK_TRY(create(ctx->inst, &mci, NULL, &ctx->messenger), fail);
        ctx->caps.validation = true;
    }
    return HEARTH_OK;
fail:
    return st;
}

static int type_score(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

static hearth_status pick_device(struct vk_ctx *ctx, const struct vk_ctx_opts *opts)
{
    uint32_t n = 0;
    vkEnumeratePhysicalDevices(ctx->inst, &n, NULL);
    VkPhysicalDevice devs[16];
    if (n > 16)
        n = 16;
    vkEnumeratePhysicalDevices(ctx->inst, &n, devs);
    if (n == 0)
        return err_set(HEARTH_ERR_NOT_FOUND, "vulkan: no physical device");
    int best = -1, best_score = -1;
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(devs[i], &p);
        if (p.apiVersion < VK_API_VERSION_1_2)
            continue; /* the shaders target Vulkan 1.2 */
        if (opts->device_index >= 0) {
            if ((int)i == opts->device_index)
                best = (int)i;
            continue;
        }
        if (opts->device_name && !strstr(p.deviceName, opts->device_name))
            continue;
        if (type_score(p.deviceType) > best_score) {
            best_score = type_score(p.deviceType);
            best = (int)i;
        }
    }
    if (best < 0)
        return err_set(HEARTH_ERR_NOT_FOUND, "vulkan: no Vulkan 1.2 device matches (index %d, "
                       "name \"%s\", %u devices)", opts->device_index,
                       opts->device_name ? opts->device_name : "", n);
    ctx->phys = devs[best];
    return HEARTH_OK;
}

static void record_caps(struct vk_ctx *ctx, const VkExtensionProperties *exts, uint32_t n_ext,
                        const VkPhysicalDeviceVulkan12Features *f12,
                        const VkPhysicalDeviceVulkan11Features *f11)
{
    struct vk_caps *c = &ctx->caps;
    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceMaintenance3Properties m3 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES, .pNext = &sg};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                      .pNext = &m3};
    vkGetPhysicalDeviceProperties2(ctx->phys, &p2);
    const VkPhysicalDeviceProperties *p = &p2.properties;
    snprintf(c->name, sizeof c->name, "%s", p->deviceName);
    c->api_version = p->apiVersion;
    c->vendor_id = p->vendorID;
    c->device_id = p->deviceID;
    c->type = p->deviceType;
    c->subgroup_size = sg.subgroupSize;
    c->subgroup_arith = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                        (sg.supportedOperations & VK_SUBGROUP_FEATURE_BASIC_BIT) &&
                        (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
    c->storage_16bit = f11->storageBuffer16BitAccess;
    c->float16 = f12->shaderFloat16;
    c->int8_dot = has_ext(exts, n_ext, "VK_KHR_shader_integer_dot_product") ||
                  p->apiVersion >= VK_API_VERSION_1_3;
    c->coopmat = has_ext(exts, n_ext, "VK_KHR_cooperative_matrix");
    c->memory_budget = has_ext(exts, n_ext, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    c->timestamp_period_ns = p->limits.timestampPeriod;
    c->max_alloc = m3.maxMemoryAllocationSize;
    c->max_storage_range = p->limits.maxStorageBufferRange;
    for (int i = 0; i < 3; i++)
        c->max_wg_count[i] = p->limits.maxComputeWorkGroupCount[i];
    vkGetPhysicalDeviceMemoryProperties(ctx->phys, &ctx->mem_props);
    for (uint32_t h = 0; h < ctx->mem_props.memoryHeapCount; h++)
        if (ctx->mem_props.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
            c->device_local_bytes += ctx->mem_props.memoryHeaps[h].size;
    c->device_local_free = c->device_local_bytes;
}

/* Free device-local bytes from VK_EXT_memory_budget (enabled only when present). */
static void read_budget(struct vk_ctx *ctx)
{
    if (!ctx->caps.memory_budget)
        return;
    VkPhysicalDeviceMemoryBudgetPropertiesEXT b = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 mp = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2, .pNext = &b};
    vkGetPhysicalDeviceMemoryProperties2(ctx->phys, &mp);
    uint64_t free_b = 0;
    for (uint32_t h = 0; h < mp.memoryProperties.memoryHeapCount; h++)
        if ((mp.memoryProperties.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            b.heapBudget[h] > b.heapUsage[h])
            free_b += b.heapBudget[h] - b.heapUsage[h];
    ctx->caps.device_local_free = free_b;
}

static hearth_status create_device(struct vk_ctx *ctx, const struct vk_ctx_opts *opts)
{
    hearth_status st = HEARTH_OK;
    uint32_t n_ext = 0;
    vkEnumerateDeviceExtensionProperties(ctx->phys, NULL, &n_ext, NULL);
    VkExtensionProperties *exts = calloc(n_ext ? n_ext : 1, sizeof *exts);
    VkQueueFamilyProperties *qf = NULL;
    if (!exts)
        return err_set(HEARTH_ERR_NO_MEMORY, "vulkan: extension list");
    vkEnumerateDeviceExtensionProperties(ctx->phys, NULL, &n_ext, exts);

    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                            .pNext = &f12};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11};
    vkGetPhysicalDeviceFeatures2(ctx->phys, &f2);
    record_caps(ctx, exts, n_ext, &f12, &f11);

    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(ctx->phys, &nq, NULL);
    qf = calloc(nq ? nq : 1, sizeof *qf);
    if (!qf) {
        st = err_set(HEARTH_ERR_NO_MEMORY, "vulkan: queue family list");
        goto done;
    }
    vkGetPhysicalDeviceQueueFamilyProperties(ctx->phys, &nq, qf);
    int fam = -1;
    for (uint32_t i = 0; i < nq; i++) {
        if (!(qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT))
            continue;
        bool compute_only = !(qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT);
        if (fam < 0 || (compute_only && (qf[fam].queueFlags & VK_QUEUE_GRAPHICS_BIT)))
            fam = (int)i;
    }
    if (fam < 0) {
        st = err_set(HEARTH_ERR_UNSUPPORTED, "vulkan: %s has no compute queue", ctx->caps.name);
        goto done;
    }
    ctx->qfam = (uint32_t)fam;
    ctx->caps.timestamps = qf[fam].timestampValidBits > 0 && ctx->caps.timestamp_period_ns > 0.0f;

    /*
     * Enable only what the shaders use: 16-bit storage (the F16-weight kernels'
     * loads; unless turned off, so tests reach the word path on any device) and
     * the budget query. Subgroup operations need no enabling in Vulkan 1.1+.
     */
    const char *no16 = getenv("HEARTH_VULKAN_NO_16BIT");
    ctx->caps.storage_16bit_on = ctx->caps.storage_16bit && !opts->no_16bit &&
                                 !(no16 && no16[0] == '1');
    VkPhysicalDeviceVulkan11Features en11 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
        .storageBuffer16BitAccess = ctx->caps.storage_16bit_on ? VK_TRUE : VK_FALSE,
    };
    const char *dev_exts[1];
    uint32_t n_dev_ext = 0;
    if (ctx->caps.memory_budget)
        dev_exts[n_dev_ext++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = ctx->qfam,
        .queueCount = 1,
        .pQueuePriorities = &prio,
    };
    VkDeviceCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .pNext = &en11,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &qci,
        .enabledExtensionCount = n_dev_ext,
        .ppEnabledExtensionNames = dev_exts,
    };
    VK_TRY(vkCreateDevice(ctx->phys, &dci, NULL, &ctx->dev), done);
    vkGetDeviceQueue(ctx->dev, ctx->qfam, 0, &ctx->queue);
    read_budget(ctx);

    ctx->caps.max_chunk = chunk_cap(ctx->caps.max_alloc, ctx->caps.max_storage_range,
                                    opts->max_chunk_override);
done:
    free(qf);
    free(exts);
    return st;
}

hearth_status vk_ctx_create(const struct vk_ctx_opts *opts, struct vk_ctx **out)
{
    *out = NULL;
    struct vk_ctx_opts dflt = {.device_index = -1};
    if (!opts)
        opts = &dflt;
    struct vk_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return err_set(HEARTH_ERR_NO_MEMORY, "vulkan: context");
    hearth_status st = create_instance(ctx, want_validation(opts));
    if (st != HEARTH_OK)
        goto fail;
    if ((st = pick_device(ctx, opts)) != HEARTH_OK)
        goto fail;
    if ((st = create_device(ctx, opts)) != HEARTH_OK)
        goto fail;
    ctx->use_subgroup = ctx->caps.subgroup_arith;
    ctx->use_16bit = ctx->caps.storage_16bit_on;
    VkPipelineCacheCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    VK_TRY(vkCreatePipelineCache(ctx->dev, &pci, NULL, &ctx->pcache), fail);
    if ((st = vk__command_init(ctx)) != HEARTH_OK)
        goto fail;
    *out = ctx;
    return HEARTH_OK;
fail:
    vk_ctx_destroy(ctx);
    return st;
}

void vk_ctx_destroy(struct vk_ctx *ctx)
{
    if (!ctx)
        return;
    if (ctx->dev) {
        vkDeviceWaitIdle(ctx->dev);
        vk_buffer_destroy(ctx, &ctx->staging);
        vk__command_destroy(ctx);
        vk__pipelines_destroy(ctx);
        if (ctx->pcache)
            vkDestroyPipelineCache(ctx->dev, ctx->pcache, NULL);
        vkDestroyDevice(ctx->dev, NULL);
    }
    if (ctx->messenger && ctx->destroy_messenger)
        ctx->destroy_messenger(ctx->inst, ctx->messenger, NULL);
    if (ctx->inst)
        vkDestroyInstance(ctx->inst, NULL);
    free(ctx);
}

const struct vk_caps *vk_ctx_caps(const struct vk_ctx *ctx)
{
    return &ctx->caps;
}

int vk_ctx_validation_errors(const struct vk_ctx *ctx, const char **first_message)
{
    if (first_message)
        *first_message = ctx->val_first;
    return ctx->val_errors;
}

void vk_ctx_set_use_subgroup(struct vk_ctx *ctx, bool on)
{
    ctx->use_subgroup = on && ctx->caps.subgroup_arith;
}

void vk_ctx_set_use_16bit(struct vk_ctx *ctx, bool on)
{
    ctx->use_16bit = on && ctx->caps.storage_16bit_on;
}
