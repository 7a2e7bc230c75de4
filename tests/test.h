/*
 * test.h: the minimal test harness shared by every tests/test-*.c file.
 *
 * Each test file lists its cases once with TEST_MAIN; the harness runs them in
 * order (or only those named on the command line), prints both operands of a
 * failed check, and ends with the line "N passed, N failed". A case that cannot
 * run here (no CUDA device, no AVX-512) calls TEST_SKIP; if every case skipped,
 * the process exits 77, which CTest reports as skipped.
 */
#ifndef HEARTH_TEST_H
#define HEARTH_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth.h"

struct test_case {
    const char *name;
    void (*fn)(void);
};

extern int test__failed;  /* checks failed in the current case */
extern int test__skipped; /* the current case called TEST_SKIP */

#define TEST(name) static void name(void)
#define TEST_CASE(name) {#name, name}

#define TEST_FAIL_AT(...)                                         \
    do {                                                          \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);         \
        fprintf(stderr, __VA_ARGS__);                             \
        fputc('\n', stderr);                                      \
        test__failed++;                                           \
    } while (0)

#define CHECK(cond)                                               \
    do {                                                          \
        if (!(cond))                                              \
            TEST_FAIL_AT("CHECK(%s) failed", #cond);              \
    } while (0)

#define CHECK_MSG(cond, ...)                                      \
    do {                                                          \
        if (!(cond)) {                                            \
            TEST_FAIL_AT("CHECK(%s) failed", #cond);              \
            fprintf(stderr, "    ");                              \
            fprintf(stderr, __VA_ARGS__);                         \
            fputc('\n', stderr);                                  \
        }                                                         \
    } while (0)

#define CHECK_INT_EQ(a, b)                                                           \
    do {                                                                             \
        long long test__a = (long long)(a), test__b = (long long)(b);                \
        if (test__a != test__b)                                                      \
            TEST_FAIL_AT("%s == %s: %lld != %lld", #a, #b, test__a, test__b);        \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                           \
    do {                                                                             \
        const char *test__a = (a), *test__b = (b);                                   \
        if (!test__a || !test__b || strcmp(test__a, test__b) != 0)                   \
            TEST_FAIL_AT("%s == %s: \"%s\" != \"%s\"", #a, #b,                       \
                         test__a ? test__a : "(null)", test__b ? test__b : "(null)"); \
    } while (0)

/* |a - b| <= tol */
#define CHECK_NEAR(a, b, tol)                                                        \
    do {                                                                             \
        double test__a = (double)(a), test__b = (double)(b), test__t = (double)(tol); \
        if (!(fabs(test__a - test__b) <= test__t))                                   \
            TEST_FAIL_AT("|%s - %s| <= %s: |%.9g - %.9g| = %.3g", #a, #b, #tol,      \
                         test__a, test__b, fabs(test__a - test__b));                 \
    } while (0)

/* A status call that must succeed; prints the status and hearth_last_error() if not. */
#define CHECK_OK(call)                                                               \
    do {                                                                             \
        hearth_status test__st = (call);                                             \
        if (test__st != HEARTH_OK)                                                   \
            TEST_FAIL_AT("%s -> %s: %s", #call, hearth_status_name(test__st),        \
                         hearth_last_error());                                       \
    } while (0)

#define TEST_SKIP(...)                                            \
    do {                                                          \
        printf("  skipped: ");                                    \
        printf(__VA_ARGS__);                                      \
        printf("\n");                                             \
        test__skipped = 1;                                        \
        return;                                                   \
    } while (0)

/* Stops the current case if a check failed (for setup that later checks depend on). */
#define REQUIRE(cond)                                             \
    do {                                                          \
        if (!(cond)) {                                            \
            TEST_FAIL_AT("REQUIRE(%s) failed", #cond);            \
            return;                                               \
        }                                                         \
    } while (0)

int test__run(const struct test_case *cases, int n, int argc, char **argv);

#define TEST_MAIN(...)                                                       \
    int main(int argc, char **argv)                                          \
    {                                                                        \
        static const struct test_case test__cases[] = {__VA_ARGS__};         \
        return test__run(test__cases,                                        \
                         (int)(sizeof test__cases / sizeof test__cases[0]),  \
                         argc, argv);                                        \
    }

/*
 * Path of a real model in models/ (HEARTH_MODELS_DIR overrides). If it is
 * missing, the current case fails with a message saying how to fetch it and
 * NULL is returned: a missing model is a failure, never a skip.
 */
const char *test_model_path(const char *file);
#define TEST_SMOLLM2 "SmolLM2-135M-Instruct.Q4_1.gguf"
#define TEST_GEMMA3 "gemma-3-270m-Q4_K_M.gguf"

/* Path of a file under tests/data/. */
const char *test_data_path(const char *file);
/* A fresh temporary directory for this process (created on first call). */
const char *test_tmp_dir(void);

/* Deterministic random numbers for tests (splitmix64); seed with test_rng_seed. */
void test_rng_seed(uint64_t seed);
uint64_t test_rng_u64(void);
double test_rng_uniform(void);  /* [0, 1) */
double test_rng_gauss(void);    /* standard normal */

#endif
