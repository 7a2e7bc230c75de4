/*
 * fuzz.h: what the libFuzzer targets in fuzz/ share (scripts/fuzz.sh runs them).
 */
#ifndef HEARTH_FUZZ_H
#define HEARTH_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken property traps, so libFuzzer reports a crash and saves the input. */
#define FUZZ_CHECK(c)         \
    do {                      \
        if (!(c))             \
            __builtin_trap(); \
    } while (0)

#endif
