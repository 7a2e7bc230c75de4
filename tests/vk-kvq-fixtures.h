/*
 * vk-kvq-fixtures.h: what the Vulkan compressed-KV attention tests
 * (test-vk-kvq.c: encoder, kernel, key centring; test-vk-kvq-window.c: the
 * exact window and ring-only layers) share, so both run the op on the same
 * devices with the same tolerances. It provides:
 *   - the device pair of tests/vk-env.h (vkq_env_open / vkq_env_close,
 *     VK_ENV_OPEN_OR_SKIP), whose code lives here;
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
#include "vk-env.h"

enum { H = 4, HK = 2, CTX = 80 };
static const uint64_t SEED = 0x5eedf00dull;

/* Tolerance (of max |out|) of a kt/vt Vulkan output against the CPU backend's. */
double vkq_cpu_tol(enum kvq_type kt, enum kvq_type vt);

#endif
