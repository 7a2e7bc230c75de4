/*
 * kvq-window-cases.h: the ATTENTION op's exact recent window and ring-only
 * layers over compressed KV caches (core/backend.h ATTENTION steps 5 and 6),
 * as one body of cases that any GPU backend's test runs on its device next
 * to the CPU backend: test-vk-kvq-window.c (Vulkan) and
 * test-cuda-kvq-window.c (CUDA) open their devices into a struct kenv
 * (tests/kvq-env.h), seed the test RNG, and call these. Only core/backend.h
 * is used; what differs between backends is in struct kvqw_backend.
 *   1. kvqw_exact_window (step 5): rot4/rot4, q8_0/rot4, q4_0/q4_0 and
 *      rot3/f16 at W 1, 5 and 40: batches, decode steps (the second through
 *      the first's tensors) and a rewind, against the contract's double
 *      reference (tests/kvq-ref.c), the contract's ring bit for bit and the
 *      CPU backend's op.
 *   2. kvqw_ring_only (step 6): a prefill, 17 decode steps and a batch with
 *      a sliding window of 16 and kv_window 16 or 20, run with the caches
 *      present and then absent: outputs, rings, tags and k_aux bit-identical
 *      after every call; broken preconditions give INVALID_ARG naming a cache.
 *   3. kvqw_ring_only_f16 (step 6, both types f16): the same script, where
 *      the ring is the layer's whole cache: the ring bit for bit against the
 *      contract's f16 rows, out against a double reference over them and
 *      against the CPU backend's op.
 * Each prints a line of what it measured. Failures are checks of the
 * calling case.
 */
#ifndef HEARTH_TEST_KVQ_WINDOW_CASES_H
#define HEARTH_TEST_KVQ_WINDOW_CASES_H

#include <stdbool.h>
#include <stdint.h>

#include "kv-quant.h"
#include "kvq-env.h"

/* The backend under test, as the cases see it. */
struct kvqw_backend {
    const char *name;  /* in messages: "vulkan", "cuda" */
    uint64_t kv_seed;  /* every op's kv_seed */
    /* out against the double reference: |out - ref| <= ref_rel * max|ref| + ref_abs */
    double ref_rel, ref_abs;
    /* bound (of max |out|) of a kt/vt output against the CPU backend's */
    double (*cpu_tol)(enum kvq_type kt, enum kvq_type vt);
    /* exact window: the CPU backend's ring values within an f16 step of the contract's (its
     * tags are always checked) */
    bool cpu_ring_values;
    /* optional (NULL: not checked): the recordings replayed so far on s into *n; false when
     * replay is off, so decode steps are not expected to replay */
    bool (*replays)(struct hearth_stream *s, uint64_t *n);
};

void kvqw_exact_window(struct kenv *e, const struct kvqw_backend *be);
void kvqw_ring_only(struct kenv *e, const struct kvqw_backend *be);
void kvqw_ring_only_f16(struct kenv *e, const struct kvqw_backend *be);

#endif
