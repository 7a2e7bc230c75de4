/*
 * harness: the harness behind tests/test.h, linked into every test binary.
 */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

int test__failed;
int test__skipped;

int test__run(const struct test_case *cases, int n, int argc, char **argv)
{
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < n; i++) {
        if (argc > 1) {
            int wanted = 0;
            for (int a = 1; a < argc; a++)
                if (strcmp(argv[a], cases[i].name) == 0)
                    wanted = 1;
            if (!wanted)
                continue;
        }
        test__failed = 0;
        test__skipped = 0;
        printf("-- %s\n", cases[i].name);
        fflush(stdout);
        cases[i].fn();
        if (test__failed) {
            printf("FAIL %s (%d checks failed)\n", cases[i].name, test__failed);
            failed++;
        } else if (test__skipped) {
            printf("skip %s\n", cases[i].name);
            skipped++;
        } else {
            printf("ok   %s\n", cases[i].name);
            passed++;
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    if (failed)
        return 1;
    if (skipped && !passed)
        return 77;
    return 0;
}

const char *test_model_path(const char *file)
{
    static char path[4096];
    const char *dir = getenv("HEARTH_MODELS_DIR");
    if (!dir || !*dir)
        dir = HEARTH_SOURCE_DIR "/models";
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (access(path, R_OK) != 0) {
        TEST_FAIL_AT("model %s not found: run `bash scripts/fetch-models.sh` from the "
                     "repository root (or set HEARTH_MODELS_DIR)",
                     path);
        return NULL;
    }
    return path;
}

const char *test_data_path(const char *file)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/%s", HEARTH_SOURCE_DIR, file);
    return path;
}

const char *test_tmp_dir(void)
{
    static char dir[256];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/hearth-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) {
            fprintf(stderr, "test: mkdtemp failed: %s\n", strerror(errno));
            snprintf(dir, sizeof dir, "/tmp");
        }
    }
    return dir;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

void test_rng_seed(uint64_t seed)
{
    rng_state = seed;
}

uint64_t test_rng_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double test_rng_uniform(void)
{
    return (double)(test_rng_u64() >> 11) * (1.0 / 9007199254740992.0);
}

double test_rng_gauss(void)
{
    /* Box-Muller; u1 kept away from 0 so log() is finite */
    double u1 = test_rng_uniform(), u2 = test_rng_uniform();
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
