/*
 * vk-kvq-fixtures.h: what the Vulkan compressed-KV attention tests
 * (test-vk-kvq.c: encoder, kernel, key centring; test-vk-kvq-window.c: the
 * exact window and ring-only layers) share, so both run the op on the same
 * devices with the same tolerances. It provides:
 *   - a struct kenv (tests/kvq-env.h) over the CPU backend ("cpu-ref", the
 *     comparison device) and the first Vulkan device, a stream on each, its
 *     buffers freed at vkq_env_close, which also fails the case on any
 *     Vulkan validation message;
 *   - OPEN_OR_SKIP(e): declares and opens e, or skips the case where there
 *     is no Vulkan device (and under an ASan run with slow unwinding);
 *   - vkq_cpu_tol (the per-pair bound against the CPU backend's output);
 *   - the shape both use: H query heads over HK KV heads, CTX cache rows,
 *     and the kv_seed SEED of every op.
 * Failures are checks of the calling case. Built only with the Vulkan
 * backend (HEARTH_WITH_VULKAN).
 */
#ifndef HEARTH_TEST_VK_KVQ_FIXTURES_H
#define HEARTH_TEST_VK_KVQ_FIXTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "kv-quant.h"
#include "kvq-env.h"
#include "test.h"

enum { H = 4, HK = 2, CTX = 80 };
static const uint64_t SEED = 0x5eedf00dull;

/* Opens both devices and their streams; false where there is no Vulkan device to test. */
bool vkq_env_open(struct kenv *e);
/* Checks Vulkan validation stayed silent, then frees the buffers, streams and devices. */
void vkq_env_close(struct kenv *e);

#define OPEN_OR_SKIP(e)                                                                   \
    struct kenv e;                                                                        \
    if (!vkq_env_open(&e)) {                                                              \
        vkq_env_close(&e);                                                                \
        TEST_SKIP("skipped: no Vulkan device");                                           \
    }                                                                                     \
    if (!e.s[0] || !e.s[1]) {                                                             \
        vkq_env_close(&e);                                                                \
        return;                                                                           \
    }

/* Tolerance (of max |out|) of a kt/vt Vulkan output against the CPU backend's. */
double vkq_cpu_tol(enum kvq_type kt, enum kvq_type vt);

#endif
