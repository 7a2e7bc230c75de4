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

/* A CPU backend device named name ("cpu", "cpu-b") with n_threads threads, any ISA. */
struct hearth_device *fixture_cpu_device(const char *name, int n_threads);
/* The model file (TEST_SMOLLM2, TEST_GEMMA3) loaded; NULL when missing (the case fails). */
struct model *fixture_model(const char *file);

/*
 * Whether this is an AddressSanitizer run with LSAN_OPTIONS=fast_unwind_on_malloc=0
 * (the sanitizer CI job's setting). Under it lavapipe deadlocks: LLVM registers
 * the JIT's EH frames, libgcc's unwinder takes its lock and mallocs, and ASan's
 * slow unwind of that malloc re-enters the unwinder. Vulkan tests skip such a
 * run; under ASan they run with fast unwinding (the default) instead.
 */
bool fixture_asan_slow_unwind(void);

#endif
