/* vk-kvq-fixtures: see vk-kvq-fixtures.h. */
#ifdef HEARTH_WITH_VULKAN
#include "vk-kvq-fixtures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../vulkan/vk.h"
#include "fixtures.h"

const struct hearth_backend_ops *vk_backend_ops(void);

bool vkq_env_open(struct kenv *e)
{
    memset(e, 0, sizeof *e);
    if (fixture_asan_slow_unwind())
        return false;
    vk_keep_driver_loaded();
    const struct hearth_backend_ops *vo = vk_backend_ops();
    if (!vo || vo->device_count() < 1)
        return false;
    /* scalar kernels: the reference of the SIMD ones (and independent of their bugs) */
    struct cpu_backend_params p = {.n_threads = 2, .isa = 0, .name = "cpu-ref"};
    CHECK_OK(cpu_backend_device_create(&p, &e->dev[0]));
    CHECK_OK(vo->device_open(0, &e->dev[1]));
    for (int i = 0; i < 2; i++)
        if (e->dev[i])
            CHECK_OK(backend_stream_create(e->dev[i], &e->s[i]));
    return true;
}

bool vkq_env_open_split(struct kenv *e, const char *count)
{
    const char *old = getenv("HEARTH_VULKAN_ATTN_SPLIT");
    char saved[16] = {0};
    if (old)
        snprintf(saved, sizeof saved, "%s", old);
    setenv("HEARTH_VULKAN_ATTN_SPLIT", count, 1);
    bool have = vkq_env_open(e);
    if (old)
        setenv("HEARTH_VULKAN_ATTN_SPLIT", saved, 1);
    else
        unsetenv("HEARTH_VULKAN_ATTN_SPLIT");
    return have;
}

void vkq_check_validation_setup(void)
{
    if (!vk_validation_requested() || vk_validation_available())
        return;
    const char *ci = getenv("CI");
    if (ci && strcmp(ci, "true") == 0)
        TEST_FAIL_AT("CI=true, HEARTH_VULKAN_VALIDATE=1, but VK_LAYER_KHRONOS_validation is not "
                     "installed (scripts/setup.sh installs vulkan-validationlayers)");
    else
        printf("  note: HEARTH_VULKAN_VALIDATE=1 but VK_LAYER_KHRONOS_validation is not installed "
               "(Debian: vulkan-validationlayers): ran without validation\n");
}

void vkq_env_close(struct kenv *e)
{
    if (e->dev[1]) {
        const char *msg = NULL;
        int n = vk_backend_validation_errors(e->dev[1], &msg);
        CHECK_MSG(n == 0, "%d validation messages, last: %s", n, msg);
        vkq_check_validation_setup();
    }
    kenv_free_bufs(e);
    for (int i = 0; i < 2; i++) {
        backend_stream_destroy(e->s[i]);
        backend_device_destroy(e->dev[i]);
    }
}

/*
 * By the coarser type of the pair. Both backends encode the same bytes nearly
 * always (float RoPE and sums differ by ~1e-6), so these bound what a tipped
 * code may move: one block step of a position's value (q8_0 1/127, q4_0 1/8
 * of the block max) times its softmax weight, or one rotated coordinate's
 * level gap. Measured on lavapipe: 3.6e-4 at worst (one tipped rot3 vector at
 * d256), 1e-6 otherwise.
 */
double vkq_cpu_tol(enum kvq_type kt, enum kvq_type vt)
{
    static const double tol[KVQ_TYPE_COUNT] = {2e-4, 2e-3, 1e-2, 1e-2, 1e-2};
    return fmax(tol[kt], tol[vt]);
}

#else
/* Without the Vulkan backend there is nothing to share (ISO C wants a declaration here). */
typedef int vkq_fixtures_not_built;
#endif
