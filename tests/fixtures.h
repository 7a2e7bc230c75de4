/*
 * fixtures.h: the setup several tests share (a CPU backend device, a real
 * model loaded), so each test says only what it checks. Failures are checks
 * of the calling case (CHECK_OK), and the functions then return NULL.
 */
#ifndef HEARTH_TEST_FIXTURES_H
#define HEARTH_TEST_FIXTURES_H

#include <stdbool.h>

#include "backend.h"
#include "model.h"
#include "plan.h"

/* A CPU backend device named name ("cpu", "cpu-b") with n_threads threads, any ISA. */
struct hearth_device *fixture_cpu_device(const char *name, int n_threads);
/* The model file (TEST_SMOLLM2, TEST_GEMMA3) loaded; NULL when missing (the case fails). */
struct model *fixture_model(const char *file);

/*
 * The planner options that decide the KV cache's layout (plan_kv_layer_window,
 * plan_kv_layer_codes): the defaults with n_ctx, the K and V types, the exact
 * window w and swa_full.
 */
struct plan_opts fixture_kv_opts(uint32_t n_ctx, int kt, int vt, uint32_t w, bool swa_full);

/*
 * A tiny random-weight Gemma 3 (synth, Q8_0, seed 11): 6 layers, 0-4 local
 * with a sliding window of 16 and 5 global, n_embd 128, 2 heads and 1 KV head
 * of 64, n_ff 256, a vocabulary of 512 with synth's tokenizer. Written once
 * per process under test_tmp_dir(); returns its path, NULL on failure (the
 * case fails). Small enough that rewinds past a local layer's ring (16 +
 * PLAN_SWA_SLACK) take a few hundred positions.
 */
const char *fixture_tiny_gemma3_path(void);

/*
 * A random-weight Qwen3-0.6B cut to 2 blocks (synth, Q8_0, seed 3, std 0.05,
 * norm weights 1 + noise of std 0.3): the real widths (n_embd 1024, 16 heads
 * and 8 KV heads of 128, n_ff 3072) and the real 151936-token vocabulary with
 * the tied LM head, ~200 MB. The same bytes as
 *   hearth synth --preset qwen3-0.6b --type Q8_0 --layers 2 --seed 3 --std 0.05 \
 *       --norm-std 0.3
 * which is what tests/data/fwd-qwen3*.txt were computed from. Written once per
 * process under test_tmp_dir() and removed at exit; NULL on failure (the case
 * fails).
 */
const char *fixture_synth_qwen3_path(void);

/*
 * Whether this is an AddressSanitizer run with LSAN_OPTIONS=fast_unwind_on_malloc=0
 * (the sanitizer CI job's setting). Under it lavapipe deadlocks: LLVM registers
 * the JIT's EH frames, libgcc's unwinder takes its lock and mallocs, and ASan's
 * slow unwind of that malloc re-enters the unwinder. Vulkan tests skip such a
 * run; under ASan they run with fast unwinding (the default) instead.
 */
bool fixture_asan_slow_unwind(void);

#endif
