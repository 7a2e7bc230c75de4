/* cuda-kvq-fixtures: see cuda-kvq-fixtures.h. */
#ifdef HEARTH_WITH_CUDA
#include "cuda-kvq-fixtures.h"

#include <stddef.h>

bool cukvq_open_devices(struct hearth_device **cpu, struct hearth_device **gpu)
{
    struct cpu_backend_params cp = {.n_threads = 1, .isa = -1, .name = "cpu-ref"};
    *gpu = NULL;
    CHECK_OK(cpu_backend_device_create(&cp, cpu));
    CHECK_OK(cuda_backend_ops()->device_open(0, gpu));
    if (!*cpu || !*gpu) {
        backend_device_destroy(*cpu);
        backend_device_destroy(*gpu);
        *cpu = *gpu = NULL;
        return false;
    }
    return true;
}

void cukvq_close_devices(struct hearth_device **cpu, struct hearth_device *gpu)
{
    backend_device_destroy(gpu);
    backend_device_destroy(*cpu);
    *cpu = NULL;
}

/*
 * The two devices' RoPE and norms differ in the last bits, which can flip a
 * K code at a rounding boundary; one flipped code moves a score by one
 * quantization step of one coordinate, so the bound is a fraction of the
 * type's step.
 */
double cukvq_tol(enum kvq_type t)
{
    switch (t) {
    case KVQ_F16:
        return 2e-3;  /* a flipped f16 rounding: 2^-11 relative */
    case KVQ_Q8_0:
        return 2e-2;  /* step amax/127 */
    case KVQ_Q4_0:
    case KVQ_ROT4:
        return 0.1;   /* step ~1/8 of the block's range (q4_0), ~0.3 sigma (rot4) */
    default:
        return 0.2;   /* rot3: steps ~0.5 sigma */
    }
}

#else
/* Without the CUDA backend there is nothing to share (ISO C wants a declaration here). */
typedef int cukvq_fixtures_not_built;
#endif
