/*
 * vk-kvq-fixtures.h: what the Vulkan compressed-KV attention tests
 * (test-vk-kvq.c: encoder, kernel, key centring; test-vk-kvq-window.c: the
 * exact window and ring-only layers) share, so both run the op on the same
 * devices with the same tolerances. It provides:
 *   - struct kenv: the CPU backend ("cpu-ref", the comparison device) and the
 *     first Vulkan device, a stream on each, and the test buffers allocated
 *     on either, freed together (vkq_env_free_bufs) or at vkq_env_close,
 *     which also fails the case on any Vulkan validation message;
 *   - OPEN_OR_SKIP(e): declares and opens e, or skips the case where there
 *     is no Vulkan device (and under an ASan run with slow unwinding);
 *   - vkq_mk (a tensor holding host bytes), vkq_gauss (Gaussian host data
 *     from the test RNG), vkq_bits_differ, vkq_cpu_tol (the per-pair bound
 *     against the CPU backend's output);
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
#include "test.h"

enum { H = 4, HK = 2, CTX = 80, MAX_BUFS = 64 };
static const uint64_t SEED = 0x5eedf00dull;

struct kenv {
    struct hearth_device *dev[2]; /* 0: cpu, 1: vulkan */
    struct hearth_stream *s[2];
    struct hearth_buffer *bufs[MAX_BUFS];
    int n_bufs;
};

/* Opens both devices and their streams; false where there is no Vulkan device to test. */
bool vkq_env_open(struct kenv *e);
/* Frees every buffer vkq_mk allocated on e so far. */
void vkq_env_free_bufs(struct kenv *e);
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

/* A tensor of n_rows x ne0 of type t on device d holding host bytes (NULL: zeros). */
struct hearth_tensor vkq_mk(struct kenv *e, int d, hearth_dtype t, int64_t ne0, size_t row_bytes,
                            int64_t n_rows, const void *host);
/* n floats drawn from test_rng_gauss() scaled by s (malloc'ed; NULL when out of memory). */
float *vkq_gauss(size_t n, double s);
/* Counts the floats of a[n] and b[n] whose bits differ. */
int vkq_bits_differ(const float *a, const float *b, size_t n);
/* Tolerance (of max |out|) of a kt/vt Vulkan output against the CPU backend's. */
double vkq_cpu_tol(enum kvq_type kt, enum kvq_type vt);

#endif
