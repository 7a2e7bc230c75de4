/*
 * kvq-env.h: the two devices a GPU backend's compressed-KV attention tests
 * run the op on, whichever backend that is (test-vk-kvq.c, and the window
 * cases of tests/kvq-window-cases.h for Vulkan and CUDA):
 *   - struct kenv: dev[0] the CPU backend (the comparison device), dev[1]
 *     the device under test, a stream on each (opened and closed by the
 *     backend's fixtures: vk-kvq-fixtures.h, or the CUDA test itself), and
 *     the test buffers allocated on either, freed together
 *     (kenv_free_bufs);
 *   - kenv_mk (a tensor holding host bytes), kenv_gauss (Gaussian host data
 *     from the test RNG), kenv_bits_differ.
 * Only core/backend.h: nothing here knows a backend. Failures are checks of
 * the calling case.
 */
#ifndef HEARTH_TEST_KVQ_ENV_H
#define HEARTH_TEST_KVQ_ENV_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

enum { KENV_MAX_BUFS = 128 };

struct kenv {
    struct hearth_device *dev[2]; /* 0: cpu, 1: the device under test */
    struct hearth_stream *s[2];
    struct hearth_buffer *bufs[KENV_MAX_BUFS];
    int n_bufs;
};

/* A tensor of n_rows x ne0 of type t on device d holding host bytes (NULL: zeros). */
struct hearth_tensor kenv_mk(struct kenv *e, int d, hearth_dtype t, int64_t ne0, size_t row_bytes,
                             int64_t n_rows, const void *host);
/* Frees every buffer kenv_mk allocated on e so far. */
void kenv_free_bufs(struct kenv *e);
/* n floats drawn from test_rng_gauss() scaled by s (malloc'ed; NULL when out of memory). */
float *kenv_gauss(size_t n, double s);
/* Counts the floats of a[n] and b[n] whose bits differ. */
int kenv_bits_differ(const float *a, const float *b, size_t n);

#endif
