/*
 * cpu-caps: what instruction sets this CPU and OS let hearth use.
 *
 * A cpuid feature bit says the core implements the instructions; it does not
 * say the OS saves the wider registers on a context switch. So AVX/AVX2/FMA/F16C
 * are trusted only if OSXSAVE is set and XCR0 (read with xgetbv) enables the
 * SSE and YMM state (bits 1-2), and AVX-512 only if XCR0 also enables the
 * opmask and both ZMM state components (bits 5-7). Caps are read once, under
 * pthread_once, so concurrent first callers neither race nor see half a struct.
 * On a non-x86 build every flag is false and only the scalar kernels run.
 */
#include <pthread.h>

#include "cpu/dot.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(struct cpu_caps *c)
{
    unsigned int a, b, cx, d;
    if (!__get_cpuid(1, &a, &b, &cx, &d))
        return;
    bool osxsave = (cx >> 27) & 1, avx = (cx >> 28) & 1;
    bool fma = (cx >> 12) & 1, f16c = (cx >> 29) & 1;
    if (!osxsave || !avx)
        return;
    uint64_t xcr0 = read_xcr0();
    bool ymm_ok = (xcr0 & 0x6) == 0x6;
    bool zmm_ok = ymm_ok && (xcr0 & 0xE0) == 0xE0;
    if (!ymm_ok)
        return;
    c->fma = fma;
    c->f16c = f16c;
    unsigned int max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 7)
        return;
    __cpuid_count(7, 0, a, b, cx, d);
    c->avx2 = (b >> 5) & 1;
    if (zmm_ok) {
        c->avx512f = (b >> 16) & 1;
        c->avx512dq = (b >> 17) & 1;
        c->avx512bw = (b >> 30) & 1;
        c->avx512vl = (b >> 31) & 1;
        c->avx512vnni = (cx >> 11) & 1;
    }
    unsigned int max_sub = a;
    if (max_sub >= 1) {
        __cpuid_count(7, 1, a, b, cx, d);
        c->avxvnni = (a >> 4) & 1;
    }
}
#else
static void detect(struct cpu_caps *c)
{
    (void)c;
}
#endif

static struct cpu_caps caps;
static pthread_once_t caps_once = PTHREAD_ONCE_INIT;

static void caps_init(void)
{
    detect(&caps);
}

const struct cpu_caps *cpu_caps_get(void)
{
    pthread_once(&caps_once, caps_init);
    return &caps;
}
