/*
 * fixtures.h: the setup several tests share (a CPU backend device, a real
 * model loaded), so each test says only what it checks. Failures are checks
 * of the calling case (CHECK_OK), and the functions then return NULL.
 */
#ifndef HEARTH_TEST_FIXTURES_H
#define HEARTH_TEST_FIXTURES_H

#include "backend.h"
#include "model.h"

/* A CPU backend device named name ("cpu", "cpu-b") with n_threads threads, any ISA. */
struct hearth_device *fixture_cpu_device(const char *name, int n_threads);
/* The model file (TEST_SMOLLM2, TEST_GEMMA3) loaded; NULL when missing (the case fails). */
struct model *fixture_model(const char *file);

#endif
