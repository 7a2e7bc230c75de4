/*
 * tests/cuda-emu/emu-fiber.cpp: runs a grid. Blocks run one after another;
 * a block's threads are fibers (own stacks, a 20-instruction x86-64 switch)
 * on the calling OS thread, and a fiber gives up the CPU only at a barrier.
 *
 * Barrier discipline, stricter than "it happened to work" on a GPU:
 * - __syncthreads completes when every thread of the block has arrived. A
 *   thread that returns while others wait leaves them waiting forever.
 * - a warp collective (__syncwarp, shuffles, wmma *_sync) completes when
 *   every lane of the warp has arrived at a collective of the same kind;
 *   lanes at different kinds (a shuffle against a __syncwarp) abort.
 * When no fiber can run and some are not finished, the block is deadlocked:
 * the emulator prints the kernel, the block and where each thread waits, and
 * aborts, so a divergent barrier or shuffle can never pass silently.
 */
#include "emu-internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#if !defined(__x86_64__)
#error "tests/cuda-emu: the fiber switch is written for x86-64"
#endif

enum { EMU_RUN, EMU_WAIT_BLOCK, EMU_WAIT_WARP, EMU_DONE };

__thread emu_thread *emu_cur;
__thread emu_block *emu_blk;

/* emu_switch(save, to): saves callee-saved registers and the FP control words on the
 * current stack, stores its pointer in *save, and resumes the stack `to`. */
extern "C" void emu_switch(void **save, void *to);
asm(".text\n"
    ".globl emu_switch\n"
    ".type emu_switch,@function\n"
    "emu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size emu_switch, .-emu_switch\n");

#define EMU_MAX_THREADS 1024
#define EMU_STACK (256u << 10) /* per fiber; a guard page below each */
#define EMU_PAGE 4096u

struct emu_sched {
    const char *name;
    const std::function<void()> *body;
    emu_thread t[EMU_MAX_THREADS];
    int n, n_warps, block_arrived;
    int warp_size[EMU_MAX_THREADS / 32], warp_arrived[EMU_MAX_THREADS / 32];
    int warp_kind[EMU_MAX_THREADS / 32];
    const char *warp_what[EMU_MAX_THREADS / 32];
    unsigned warp_gen[EMU_MAX_THREADS / 32];
    uint64_t xchg[EMU_MAX_THREADS / 32][2][32];
    void *main_sp;
    uint8_t *stacks;
};
static thread_local emu_sched *sched;

static void emu_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void emu_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cuda-emu: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (kernel %s, block (%u,%u,%u), thread (%u,%u,%u))\n", sched->name,
            emu_blk->bid.x, emu_blk->bid.y, emu_blk->bid.z, emu_cur->tid.x, emu_cur->tid.y,
            emu_cur->tid.z);
    abort();
}

static void yield_to_scheduler(void)
{
    emu_switch(&emu_cur->sp, sched->main_sp);
}

extern "C" void emu_fiber_main(void)
{
    (*sched->body)();
    emu_cur->state = EMU_DONE;
    yield_to_scheduler();
    abort(); /* a finished fiber is never resumed */
}

/* The first switch into a fiber "returns" into emu_fiber_entry with an aligned stack. */
extern "C" void emu_fiber_entry(void);
asm(".text\n"
    ".globl emu_fiber_entry\n"
    "emu_fiber_entry:\n"
    "  call emu_fiber_main\n"
    "  ud2\n");

static void fiber_init(emu_thread *t, uint8_t *stack_top)
{
    /* stack_top is 16-byte aligned; after the `ret` into the entry rsp is too, so its
     * `call` gives emu_fiber_main the ABI's entry alignment (rsp % 16 == 8) */
    uint64_t *sp = (uint64_t *)(stack_top - 16);
    *--sp = (uint64_t)(uintptr_t)emu_fiber_entry;
    for (int i = 0; i < 6; i++)
        *--sp = 0; /* rbp rbx r12 r13 r14 r15 */
    uint32_t mx;
    uint16_t cw;
    asm volatile("stmxcsr %0\n fnstcw %1" : "=m"(mx), "=m"(cw));
    *--sp = 0;
    memcpy(sp, &mx, 4);
    memcpy((uint8_t *)sp + 4, &cw, 2);
    t->sp = sp;
}

static emu_sched *sched_get(void)
{
    static thread_local emu_sched *s;
    if (!s) {
        s = (emu_sched *)calloc(1, sizeof *s);
        size_t per = EMU_STACK + EMU_PAGE, total = per * EMU_MAX_THREADS;
        void *m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        if (!s || m == MAP_FAILED) {
            fprintf(stderr, "cuda-emu: cannot allocate fiber stacks\n");
            abort();
        }
        s->stacks = (uint8_t *)m;
        for (int i = 0; i < EMU_MAX_THREADS; i++)
            mprotect(s->stacks + (size_t)i * per, EMU_PAGE, PROT_NONE);
    }
    return s;
}

static const char *state_name(const emu_thread *t)
{
    switch (t->state) {
    case EMU_WAIT_BLOCK:
        return "__syncthreads";
    case EMU_WAIT_WARP:
        return t->wait_kind == EMU_WK_SHFL ? "a shuffle (or wmma load/store)"
                                           : (t->wait_kind == EMU_WK_WMMA ? "a wmma *_sync"
                                                                          : "__syncwarp");
    case EMU_DONE:
        return "returned";
    default:
        return "running";
    }
}

static void report_deadlock(emu_sched *s)
{
    fprintf(stderr,
            "cuda-emu: DEADLOCK in kernel %s, block (%u,%u,%u) of grid (%u,%u,%u), block "
            "(%u,%u,%u): a barrier or warp collective that not every thread reaches\n",
            s->name, emu_blk->bid.x, emu_blk->bid.y, emu_blk->bid.z, emu_blk->gdim.x,
            emu_blk->gdim.y, emu_blk->gdim.z, emu_blk->bdim.x, emu_blk->bdim.y,
            emu_blk->bdim.z);
    for (int w = 0; w < s->n_warps; w++) {
        fprintf(stderr, "  warp %d:", w);
        int i0 = w * 32, i1 = i0 + s->warp_size[w];
        for (int i = i0; i < i1;) {
            int j = i;
            while (j < i1 && state_name(&s->t[j]) == state_name(&s->t[i]))
                j++;
            fprintf(stderr, " lanes %d-%d at %s;", i - i0, j - 1 - i0, state_name(&s->t[i]));
            i = j;
        }
        fprintf(stderr, "\n");
    }
    abort();
}

/*
 * The order fibers resume in between barriers: CUDA_EMU_ORDER=forward (the
 * default), reverse, or shuffle (a fresh permutation every sweep, seeded by
 * CUDA_EMU_SEED). A kernel whose result changes with the order reads memory
 * another thread writes without a barrier between: a race on a GPU.
 */
static void shuffle_order(int *order, int n)
{
    static int mode = -1;
    static thread_local uint64_t rng;
    if (mode < 0) {
        const char *o = getenv("CUDA_EMU_ORDER"), *seed = getenv("CUDA_EMU_SEED");
        mode = !o || strcmp(o, "forward") == 0 ? 0 : (strcmp(o, "reverse") == 0 ? 1 : 2);
        if (o && mode == 2 && strcmp(o, "shuffle") != 0) {
            fprintf(stderr, "cuda-emu: CUDA_EMU_ORDER=%s (forward, reverse or shuffle)\n", o);
            abort();
        }
        rng = seed ? strtoull(seed, NULL, 10) : 1;
    }
    if (mode == 1 && order[0] == 0)
        for (int i = 0; i < n; i++)
            order[i] = n - 1 - i;
    if (mode == 2)
        for (int i = n - 1; i > 0; i--) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            int j = (int)((rng >> 33) % (uint64_t)(i + 1)), t = order[i];
            order[i] = order[j], order[j] = t;
        }
}

static void run_block(emu_sched *s)
{
    const dim3 b = emu_blk->bdim;
    s->n = (int)(b.x * b.y * b.z);
    s->n_warps = (s->n + 31) / 32;
    s->block_arrived = 0;
    for (int w = 0; w < s->n_warps; w++) {
        s->warp_size[w] = s->n - 32 * w < 32 ? s->n - 32 * w : 32;
        s->warp_arrived[w] = 0;
        s->warp_gen[w] = 0;
        s->warp_kind[w] = 0;
    }
    size_t per = EMU_STACK + EMU_PAGE;
    for (int i = 0; i < s->n; i++) {
        emu_thread *t = &s->t[i];
        t->tid = make_uint3((unsigned)i % b.x, ((unsigned)i / b.x) % b.y, (unsigned)i / (b.x * b.y));
        t->lane = i & 31;
        t->warp = i >> 5;
        t->state = EMU_RUN;
        t->wait_kind = 0;
        fiber_init(t, s->stacks + (size_t)(i + 1) * per);
    }
    int order[EMU_MAX_THREADS];
    for (int i = 0; i < s->n; i++)
        order[i] = i;
    int done = 0;
    while (done < s->n) {
        bool ran = false;
        done = 0;
        shuffle_order(order, s->n);
        for (int k = 0; k < s->n; k++) {
            emu_thread *t = &s->t[order[k]];
            if (t->state == EMU_RUN) {
                emu_cur = t;
                emu_switch(&s->main_sp, t->sp);
                ran = true;
            }
            done += t->state == EMU_DONE;
        }
        if (!ran && done < s->n) {
            emu_cur = &s->t[0];
            report_deadlock(s);
        }
    }
    emu_cur = NULL;
}

void emu_syncthreads(void)
{
    emu_sched *s = sched;
    emu_cur->state = EMU_WAIT_BLOCK;
    if (++s->block_arrived == s->n) {
        s->block_arrived = 0;
        for (int i = 0; i < s->n; i++)
            s->t[i].state = EMU_RUN;
        return;
    }
    yield_to_scheduler();
}

/* Arrives at the warp's current collective; returns its generation once all lanes are in. */
static unsigned warp_arrive(unsigned mask, int kind, const char *what)
{
    emu_sched *s = sched;
    const int w = emu_cur->warp, size = s->warp_size[w];
    const unsigned active = size == 32 ? 0xffffffffu : (1u << size) - 1u;
    if ((mask & active) != active)
        emu_die("%s with mask 0x%08x: the emulator supports only the whole warp's mask", what,
                mask);
    if (s->warp_arrived[w] == 0) {
        s->warp_kind[w] = kind;
        s->warp_what[w] = what;
    } else if (s->warp_kind[w] != kind || (kind != EMU_WK_SYNCWARP && s->warp_what[w] != what &&
                                           strcmp(s->warp_what[w], what) != 0)) {
        emu_die("divergent warp: this lane is at %s while other lanes wait at %s", what,
                s->warp_what[w]);
    }
    unsigned gen = s->warp_gen[w];
    emu_cur->state = EMU_WAIT_WARP;
    emu_cur->wait_kind = kind;
    if (++s->warp_arrived[w] == size) {
        s->warp_arrived[w] = 0;
        s->warp_gen[w]++;
        for (int i = 32 * w; i < 32 * w + size; i++)
            s->t[i].state = EMU_RUN;
        return gen;
    }
    yield_to_scheduler();
    return gen;
}

void emu_warp_sync(unsigned mask, int kind, const char *what)
{
    warp_arrive(mask, kind, what);
}

/* Two slot sets by generation parity: a lane can run one collective ahead of
 * the slowest reader, never two (the next collective needs every lane). */
uint64_t emu_warp_exchange(unsigned mask, uint64_t mine, int src, const char *what)
{
    emu_sched *s = sched;
    const int w = emu_cur->warp;
    unsigned gen = s->warp_gen[w];
    s->xchg[w][gen & 1][emu_cur->lane] = mine;
    warp_arrive(mask, EMU_WK_SHFL, what);
    if (src < 0 || src >= s->warp_size[w])
        return mine; /* a lane beyond a partial warp: PTX leaves it undefined; keep our own */
    return s->xchg[w][gen & 1][src];
}

/* A wmma load/store: a warp collective whose pointer and ld every lane must share. */
void nvcuda::wmma::emu_wmma_uniform(const void *p, unsigned ld, const char *what)
{
    uint64_t mine = (uint64_t)(uintptr_t)p;
    uint64_t lane0 = emu_warp_exchange(0xffffffffu, mine, 0, what);
    uint64_t ld0 = emu_warp_exchange(0xffffffffu, ld, 0, what);
    if (lane0 != mine || ld0 != ld)
        emu_die("%s: lane %d passes %p (ld %u), lane 0 %p (ld %u): must be warp-uniform", what,
                emu_cur->lane, p, ld, (void *)(uintptr_t)lane0, (unsigned)ld0);
}

/* the linker's bounds of the section holding every __shared__ variable (emu.h) */
extern "C" uint8_t __start_emu_shared[] __attribute__((weak));
extern "C" uint8_t __stop_emu_shared[] __attribute__((weak));

void *emu_dyn_smem(void)
{
    return emu_blk->dyn_smem;
}

void emu_run_grid(const char *name, dim3 grid, dim3 block, size_t shm,
                  const std::function<void()> &body)
{
    static pthread_mutex_t one_grid = PTHREAD_MUTEX_INITIALIZER;
    /* function-static __shared__ arrays are one block's memory only if grids never overlap */
    pthread_mutex_lock(&one_grid);
    emu_sched *s = sched_get();
    emu_sched *outer = sched;
    sched = s;
    s->name = name;
    s->body = &body;
    std::vector<uint8_t> smem(shm ? shm : 1);
    emu_block blk;
    blk.bdim = block;
    blk.gdim = grid;
    blk.dyn_smem = smem.data();
    emu_blk = &blk;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blk.bid = make_uint3(x, y, z);
                memset(smem.data(), 0xff, smem.size()); /* NaN: unwritten shared memory shows */
                if (__start_emu_shared)
                    memset(__start_emu_shared, 0xff,
                           (size_t)(__stop_emu_shared - __start_emu_shared));
                run_block(s);
            }
    emu_blk = NULL;
    sched = outer;
    pthread_mutex_unlock(&one_grid);
}

static pthread_mutex_t attr_lock = PTHREAD_MUTEX_INITIALIZER;
static std::vector<std::pair<const void *, int>> max_dyn_smem;

extern "C" cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr,
                                            int value)
{
    if (!func)
        return emu_error(cudaErrorInvalidDeviceFunction, "cudaFuncSetAttribute: NULL function");
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize)
        return cudaSuccess;
    if (value < 0 || value > 232448) /* H100: 227 KB opt-in per block */
        return emu_error(cudaErrorInvalidValue,
                         "cudaFuncSetAttribute: MaxDynamicSharedMemorySize %d (0..232448)", value);
    pthread_mutex_lock(&attr_lock);
    bool found = false;
    for (auto &e : max_dyn_smem)
        if (e.first == func)
            e.second = value, found = true;
    if (!found)
        max_dyn_smem.push_back({func, value});
    pthread_mutex_unlock(&attr_lock);
    return cudaSuccess;
}

static int dyn_smem_limit(const void *fn)
{
    int lim = 48 << 10;
    pthread_mutex_lock(&attr_lock);
    for (auto &e : max_dyn_smem)
        if (e.first == fn)
            lim = e.second > lim ? e.second : lim;
    pthread_mutex_unlock(&attr_lock);
    return lim;
}

void emu_launch_body(const char *name, const void *fn, dim3 grid, dim3 block, size_t shm,
                     cudaStream_t stream, std::function<void()> body)
{
    uint64_t nt = (uint64_t)block.x * block.y * block.z;
    if (block.x == 0 || block.y == 0 || block.z == 0 || block.x > 1024 || block.y > 1024 ||
        block.z > 64 || nt > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
        grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
        emu_error(cudaErrorInvalidConfiguration,
                  "launch of %s: grid (%u,%u,%u), block (%u,%u,%u)", name, grid.x, grid.y, grid.z,
                  block.x, block.y, block.z);
        return;
    }
    if (shm > (size_t)dyn_smem_limit(fn)) {
        emu_error(cudaErrorInvalidValue,
                  "launch of %s: %zu bytes of dynamic shared memory, limit %d (set "
                  "cudaFuncAttributeMaxDynamicSharedMemorySize)", name, shm, dyn_smem_limit(fn));
        return;
    }
    CUstream_st *cap = NULL;
    if (emu_capture_target(stream, &cap) != cudaSuccess)
        return;
    if (cap) {
        emu_node nd;
        nd.kind = emu_node::KERNEL;
        nd.name = name;
        nd.grid = grid;
        nd.block = block;
        nd.shm = shm;
        nd.body = std::move(body);
        cap->nodes.push_back(std::move(nd));
        return;
    }
    emu_run_grid(name, grid, block, shm, body);
}
