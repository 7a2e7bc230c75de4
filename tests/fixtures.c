/* fixtures: see fixtures.h. */
#include "fixtures.h"

#include <stdlib.h>
#include <string.h>

#include "test.h"

struct hearth_device *fixture_cpu_device(const char *name, int n_threads)
{
    struct cpu_backend_params p = {.n_threads = n_threads, .isa = -1, .name = name};
    struct hearth_device *d = NULL;
    CHECK_OK(cpu_backend_device_create(&p, &d));
    return d;
}

struct model *fixture_model(const char *file)
{
    const char *path = test_model_path(file);
    if (!path)
        return NULL;
    struct model *m = NULL;
    CHECK_OK(model_load(path, &m));
    return m;
}

bool fixture_asan_slow_unwind(void)
{
#if defined(__SANITIZE_ADDRESS__)
    const char *o = getenv("LSAN_OPTIONS");
    return o && strstr(o, "fast_unwind_on_malloc=0") != NULL;
#else
    return false;
#endif
}
