/*
 * test-cuda-kvq-window: the CUDA ATTENTION op's exact recent window over the
 * compressed KV cache types (core/backend.h ATTENTION steps 5 and 6;
 * cuda/attention-kvq.cu, dispatched by cuda/backend.c), next to the CPU
 * backend. The cases are tests/kvq-window-cases.h, which
 * test-vk-kvq-window.c runs on Vulkan too; this file gives them cuda0 and
 * its bounds:
 *   1. attention_exact_window (step 5): out within 2e-4 max|ref| + 1e-5 of
 *      the contract's double reference, within cukvq_tol of the CPU
 *      backend's, whose tags must equal the contract's; and
 *      supports_kv_window for every pair but f16/f16;
 *   2. attention_ring_only (step 6): caches present and absent
 *      bit-identical; broken preconditions give INVALID_ARG naming a cache;
 *   3. attention_ring_only_f16 (step 6 over an f16/f16 cache): as 1, over
 *      the f16 rows.
 * With the cases' 80 cache rows the op splits each call in two (cuda/
 * backend.c picks n_split from the cache rows), so case 1 also checks the
 * split's merge with exact rows; ring-only layers (window 16) run unsplit.
 * The store kernel and the plain op are tests/test-cuda-kvq.c; the devices
 * and bounds both use are tests/cuda-kvq-fixtures.h. Without a CUDA device
 * every case skips ("skipped: no CUDA device", exit 77).
 */
#include <math.h>
#include <string.h>

#include "test.h"

#ifdef HEARTH_WITH_CUDA
#include "backend.h"
#include "cuda-kvq-fixtures.h"
#include "kv-quant.h"
#include "kvq-window-cases.h"

/* A pair takes its coarser type's bound. */
static double cuda_cpu_tol(enum kvq_type kt, enum kvq_type vt)
{
    return fmax(cukvq_tol(kt), cukvq_tol(vt));
}

/*
 * The CPU backend's ring values in the exact window are not compared here
 * (only its tags): that bound was measured on lavapipe only. CUDA's streams
 * keep no recordings to count.
 */
static const struct kvqw_backend cuda_be = {
    .name = "cuda",
    .kv_seed = 0x1234567ull,
    .ref_rel = 2e-4,
    .ref_abs = 1e-5,
    .cpu_tol = cuda_cpu_tol,
    .cpu_ring_values = false,
    .replays = NULL,
};

/*
 * One case's cases on cpu-ref and cuda0 with a stream each, the RNG seeded
 * (skips without a CUDA device).
 */
static void run(uint64_t seed, void (*cases)(struct kenv *, const struct kvqw_backend *))
{
    NEED_DEVICE();
    test_rng_seed(seed);
    struct kenv e;
    memset(&e, 0, sizeof e);
    bool ok = cukvq_open_devices(&e.dev[0], &e.dev[1]);
    for (int i = 0; ok && i < 2; i++)
        CHECK_OK(backend_stream_create(e.dev[i], &e.s[i]));
    if (ok && e.s[0] && e.s[1])
        cases(&e, &cuda_be);
    kenv_free_bufs(&e);
    for (int i = 0; i < 2; i++)
        backend_stream_destroy(e.s[i]);
    cukvq_close_devices(&e.dev[0], e.dev[1]);
}

/* The window cases, then which pairs cuda0 says it serves with the window (all but f16/f16). */
static void exact_window(struct kenv *e, const struct kvqw_backend *be)
{
    kvqw_exact_window(e, be);
    for (int kt = 0; kt < KVQ_TYPE_COUNT; kt++)
        for (int vt = 0; vt < KVQ_TYPE_COUNT; vt++)
            CHECK_MSG(backend_device_supports_kv_window(e->dev[1], kt, vt) ==
                          (kt != KVQ_F16 || vt != KVQ_F16), "supports_kv_window %d/%d", kt, vt);
}

TEST(attention_exact_window)
{
    run(84, exact_window);
}

TEST(attention_ring_only)
{
    run(85, kvqw_ring_only);
}

TEST(attention_ring_only_f16)
{
    run(86, kvqw_ring_only_f16);
}

TEST_MAIN(TEST_CASE(attention_exact_window), TEST_CASE(attention_ring_only),
          TEST_CASE(attention_ring_only_f16))

#else /* no CUDA backend in this build */

TEST(cuda_kvq_window)
{
    TEST_SKIP("no CUDA device (CUDA backend not built)");
}

TEST_MAIN(TEST_CASE(cuda_kvq_window))
#endif
