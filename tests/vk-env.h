/*
 * vk-env.h: the device pair every Vulkan op test compares on (test-vk-backend.c,
 * test-vk-kvq.c, test-vk-kvq-window.c): a struct kenv (tests/kvq-env.h) over
 * the CPU backend with scalar kernels ("cpu-ref": the reference of the SIMD
 * ones, and independent of their bugs) and the first Vulkan device, a stream
 * on each. vkq_env_close fails the case on any Vulkan validation message (and,
 * where CI=true, on HEARTH_VULKAN_VALIDATE=1 without the layer installed),
 * then frees the buffers, streams and devices. Built only with the Vulkan
 * backend (HEARTH_WITH_VULKAN); the code is in vk-kvq-fixtures.c.
 */
#ifndef HEARTH_TEST_VK_ENV_H
#define HEARTH_TEST_VK_ENV_H

#include <stdbool.h>

#include "fixtures.h"
#include "kvq-env.h"
#include "test.h"

/*
 * HEARTH_VULKAN_VALIDATE=1 without VK_LAYER_KHRONOS_validation installed: a
 * note, or a failed check where CI=true (CI must not pass unvalidated).
 */
void vkq_check_validation_setup(void);
/* Opens both devices and their streams; false where there is no Vulkan device to test. */
bool vkq_env_open(struct kenv *e);
/*
 * vkq_env_open with the Vulkan stream created under HEARTH_VULKAN_ATTN_SPLIT=count
 * (flash-decoding forced, vulkan/attn-split.c); the variable is restored after.
 */
bool vkq_env_open_split(struct kenv *e, const char *count);
/* Checks Vulkan validation stayed silent, then frees the buffers, streams and devices. */
void vkq_env_close(struct kenv *e);

/* Declares and opens e, or skips the case (no Vulkan device, or ASan with slow unwinding). */
#define VK_ENV_OPEN_OR_SKIP(e) VK_ENV_OPEN_WITH_OR_SKIP(e, vkq_env_open(&e))
/* The same, opened by the call `open` (vkq_env_open_split). */
#define VK_ENV_OPEN_WITH_OR_SKIP(e, open)                                                          \
    struct kenv e;                                                                                 \
    if (!(open)) {                                                                                 \
        vkq_env_close(&e);                                                                         \
        TEST_SKIP(fixture_asan_slow_unwind() ? "no Vulkan device under ASan slow "                 \
                                               "unwinding (see fixture_asan_slow_unwind)"          \
                                             : "no Vulkan device");                                \
    }                                                                                              \
    if (!e.s[0] || !e.s[1]) {                                                                      \
        vkq_env_close(&e);                                                                         \
        return;                                                                                    \
    }

#endif
