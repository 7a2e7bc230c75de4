/*
 * test-vk-kvq-window: the Vulkan ATTENTION op's exact recent window over
 * compressed KV caches (core/backend.h ATTENTION steps 5 and 6;
 * vulkan/op-attention.c) on the first Vulkan device, next to the CPU backend.
 * The cases are tests/kvq-window-cases.h, which test-cuda-kvq-window.c runs
 * on CUDA too; this file gives them the Vulkan device and its bounds:
 *   1. exact_window (ATTENTION step 5): out within 2e-5 of max |ref| of the
 *      contract's double reference, the CPU backend's within vkq_cpu_tol and
 *      its ring within an f16 step; the second decode step replayed;
 *   2. ring_only (ATTENTION step 6): caches present and absent
 *      bit-identical, all but the first decode step replayed; broken
 *      preconditions give INVALID_ARG naming a cache;
 *   3. ring_only_f16 (step 6 over an f16/f16 cache): as 1, over the f16 rows.
 *   4. split_*: 1 to 3 again with flash-decoding forced (HEARTH_VULKAN_ATTN_SPLIT,
 *      vulkan/attn-split.c): 5 and 3 splits (the first positions leave
 *      pieces empty; 64 forced on every batch, prefill included, cost
 *      lavapipe 10 s here, and test-vk-kvq split_forced has 64 already);
 *      exact-window rows, the sink and sliding windows must
 *      give the single pass's results within the same bounds, and replay
 *      (and step 6's bit-identity between caches present and absent) holds.
 * The encoder, kernel and key centring of a plain op are tests/test-vk-kvq.c;
 * the devices and tolerances both use are tests/vk-kvq-fixtures.h.
 * Skips with "no Vulkan device" where there is none.
 */
#include <stdlib.h>

#include "test.h"

#ifdef HEARTH_WITH_VULKAN
#include "../vulkan/vk.h"
#include "kvq-window-cases.h"
#include "vk-kvq-fixtures.h"

/* The recordings replayed on s; HEARTH_VULKAN_REPLAY set turns replay off (false). */
static bool vk_replays(struct hearth_stream *s, uint64_t *n)
{
    if (getenv("HEARTH_VULKAN_REPLAY") != NULL)
        return false;
    struct vk_replay_stats rs;
    vk_backend_replay_stats(s, &rs);
    *n = rs.replays;
    return true;
}

static const struct kvqw_backend vk_be = {
    .name = "vulkan",
    .kv_seed = SEED,
    .ref_rel = 2e-5,
    .ref_abs = 0.0,
    .cpu_tol = vkq_cpu_tol,
    .cpu_ring_values = true,
    .replays = vk_replays,
};

/* One case's cases on a fresh kenv, the RNG seeded (skips without a Vulkan device). */
static void run(uint64_t seed, void (*cases)(struct kenv *, const struct kvqw_backend *))
{
    VK_ENV_OPEN_OR_SKIP(e);
    test_rng_seed(seed);
    cases(&e, &vk_be);
    vkq_env_close(&e);
}

TEST(exact_window)
{
    run(7600, kvqw_exact_window);
}

TEST(ring_only)
{
    run(7700, kvqw_ring_only);
}

TEST(ring_only_f16)
{
    run(7800, kvqw_ring_only_f16);
}

/* run() with the Vulkan stream created under HEARTH_VULKAN_ATTN_SPLIT=count. */
static void run_split(uint64_t seed, void (*cases)(struct kenv *, const struct kvqw_backend *),
                      const char *count)
{
    VK_ENV_OPEN_WITH_OR_SKIP(e, vkq_env_open_split(&e, count));
    test_rng_seed(seed);
    cases(&e, &vk_be);
    vkq_env_close(&e);
}

TEST(split_exact_window)
{
    run_split(7600, kvqw_exact_window, "5");
    run_split(7601, kvqw_exact_window, "3");
}

TEST(split_ring_only)
{
    run_split(7700, kvqw_ring_only, "5");
    run_split(7701, kvqw_ring_only_f16, "3");
}

TEST_MAIN(TEST_CASE(exact_window), TEST_CASE(ring_only), TEST_CASE(ring_only_f16),
          TEST_CASE(split_exact_window), TEST_CASE(split_ring_only))

#else

TEST(vulkan_not_built)
{
    TEST_SKIP("skipped: no Vulkan device (built without Vulkan)");
}

TEST_MAIN(TEST_CASE(vulkan_not_built))

#endif
