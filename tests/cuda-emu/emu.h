/*
 * tests/cuda-emu/emu.h: forced include (-include) for the cuda/ sources compiled as
 * host C++ by tests/cuda-emu/build.sh. It supplies what nvcc would: the
 * execution-space keywords, the built-in index variables, barriers, warp
 * shuffles, the device intrinsics the sources use, nvcuda::wmma and the
 * kernel launcher that rewrite.py puts in place of <<<>>>.
 *
 * The CUDA toolkit's own headers (cuda_runtime.h, cuda_fp16.h, cuda_bf16.h)
 * are included first: in host mode they give the real types, enum values and
 * host versions of the half conversions. The runtime functions they declare
 * are defined by emu-runtime.cpp instead of libcudart.
 *
 * Execution model (emu-runtime.cpp): the blocks of a grid run one after
 * another; the threads of a block are fibers on one OS thread, switched only
 * at barriers. So __shared__ can be a function-static array, and a barrier
 * that some thread never reaches shows up as "no fiber can run": the
 * emulator then aborts with the kernel, block and what each thread waits at.
 */
#ifndef HEARTH_CUDA_EMU_H
#define HEARTH_CUDA_EMU_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <type_traits>
#include <utility>

#undef __shared__
#undef __launch_bounds__
/* Blocks run one at a time, so one static copy per kernel is one block's shared
 * memory. All of them live in one section, which the runner fills with 0xff
 * (NaN as float) before every block: a read of shared memory the block has
 * not written shows in results instead of returning the previous block's data. */
#define __shared__ static __attribute__((section("emu_shared")))
#define __launch_bounds__(...)
static constexpr int warpSize = 32;

/* ---- the emulator's per-thread state (defined in emu-fiber.cpp) ---------------------- */
struct emu_thread {
    void *sp;        /* saved stack pointer while switched out */
    uint3 tid;       /* threadIdx */
    int lane, warp;  /* lane = linear id % 32 */
    int state;       /* EMU_RUN, EMU_WAIT_BLOCK, EMU_WAIT_WARP, EMU_DONE */
    int wait_kind;   /* which warp-collective it waits in (emu_warp_kind) */
};
struct emu_block {
    uint3 bid;
    dim3 bdim, gdim;
    void *dyn_smem;
};
extern __thread emu_thread *emu_cur; /* __thread: no C++ TLS wrapper call per access */
extern __thread emu_block *emu_blk;

#define threadIdx (emu_cur->tid)
#define blockIdx (emu_blk->bid)
#define blockDim (emu_blk->bdim)
#define gridDim (emu_blk->gdim)

enum emu_warp_kind { EMU_WK_SYNCWARP = 1, EMU_WK_SHFL, EMU_WK_WMMA };

void emu_syncthreads(void);
/* Every lane of `mask` must arrive (the emulator accepts only the warp's full mask). */
void emu_warp_sync(unsigned mask, int kind, const char *what);
/* Warp exchange: every lane publishes 8 bytes, then reads lane `src`'s (all lanes must call). */
uint64_t emu_warp_exchange(unsigned mask, uint64_t mine, int src, const char *what);
void *emu_dyn_smem(void);

static inline void __syncthreads(void)
{
    emu_syncthreads();
}
static inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    emu_warp_sync(mask, EMU_WK_SYNCWARP, "__syncwarp");
}

template <typename T> static inline T emu_shfl(unsigned mask, T v, int src, const char *what)
{
    static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
    uint64_t u = 0;
    memcpy(&u, &v, sizeof v);
    u = emu_warp_exchange(mask, u, src, what);
    T r;
    memcpy(&r, &u, sizeof r);
    return r;
}
/* Out-of-segment sources return the caller's own value, as the PTX shfl modes do. */
template <typename T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32)
{
    int lane = emu_cur->lane, base = lane & ~(width - 1);
    return emu_shfl(mask, v, base + (src & (width - 1)), "__shfl_sync");
}
template <typename T>
static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
    int lane = emu_cur->lane, src = lane ^ lane_mask;
    if ((src & ~(width - 1)) != (lane & ~(width - 1)))
        src = lane;
    return emu_shfl(mask, v, src, "__shfl_xor_sync");
}
template <typename T>
static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    int lane = emu_cur->lane, src = lane + (int)delta;
    if ((src & ~(width - 1)) != (lane & ~(width - 1)))
        src = lane;
    return emu_shfl(mask, v, src, "__shfl_down_sync");
}
template <typename T>
static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    int lane = emu_cur->lane, src = lane - (int)delta;
    if (src < (lane & ~(width - 1)))
        src = lane;
    return emu_shfl(mask, v, src, "__shfl_up_sync");
}

/* ---- device intrinsics: the host's IEEE float/double ops round to nearest already ---- */
/*
 * nvcc never fuses an explicitly rounded operation into an FMA; the empty asm
 * makes the result opaque so a host build with -ffp-contract=fast (build.sh's
 * EMU_CXXFLAGS, to mimic nvcc's default contraction elsewhere) cannot either.
 */
#define EMU_RN(T, name, expr)                                                                \
    static inline T name(T a, T b)                                                            \
    {                                                                                         \
        T r = expr;                                                                           \
        asm("" : "+x"(r));                                                                    \
        return r;                                                                             \
    }
EMU_RN(float, __fadd_rn, a + b)
EMU_RN(float, __fsub_rn, a - b)
EMU_RN(float, __fmul_rn, a *b)
EMU_RN(float, __fdiv_rn, a / b)
EMU_RN(double, __dadd_rn, a + b)
EMU_RN(double, __dsub_rn, a - b)
EMU_RN(double, __dmul_rn, a *b)
EMU_RN(double, __ddiv_rn, a / b)
#undef EMU_RN
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline double __dsqrt_rn(double a) { return sqrt(a); }
static inline float __double2float_rn(double a) { return (float)a; }
/* glibc declares its own __expf/__logf: reach ours through a macro */
static inline float emu_expf(float a) { return expf(a); }
static inline float emu_logf(float a) { return logf(a); }
#define __expf emu_expf
#define __logf emu_logf
static inline float __frcp_rn(float a) { return 1.0f / a; }
static inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
static inline float __saturatef(float a) { return a < 0.0f ? 0.0f : (a > 1.0f ? 1.0f : a); }
static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
static inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }
static inline int __float_as_int(float f) { int u; memcpy(&u, &f, 4); return u; }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
static inline int __ffs(int x) { return __builtin_ffs(x); }
/* PTX prmt default mode: byte i of the result is byte s[4i+2:4i] of {y, x} */
static inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s)
{
    uint64_t v = ((uint64_t)y << 32) | x;
    unsigned r = 0;
    for (int i = 0; i < 4; i++)
        r |= (unsigned)((v >> (8 * ((s >> (4 * i)) & 7u))) & 0xffu) << (8 * i);
    return r;
}
/* dp4a.s32.s32: c + the dot product of the four signed bytes of a and of b */
static inline int __dp4a(int a, int b, int c)
{
    for (int i = 0; i < 4; i++)
        c += (int)(int8_t)((unsigned)a >> (8 * i)) * (int)(int8_t)((unsigned)b >> (8 * i));
    return c;
}
template <typename T> static inline T __ldg(const T *p) { return *p; }
template <typename A, typename B>
static inline typename std::common_type<A, B>::type min(A a, B b)
{
    typedef typename std::common_type<A, B>::type C;
    return (C)a < (C)b ? (C)a : (C)b;
}
template <typename A, typename B>
static inline typename std::common_type<A, B>::type max(A a, B b)
{
    typedef typename std::common_type<A, B>::type C;
    return (C)a > (C)b ? (C)a : (C)b;
}

/* Blocks run one at a time on one OS thread: plain read-modify-write is atomic here. */
template <typename T> static inline T atomicAdd(T *p, T v) { T o = *p; *p = o + v; return o; }
template <typename T> static inline T atomicMax(T *p, T v) { T o = *p; *p = o > v ? o : v; return o; }
template <typename T> static inline T atomicMin(T *p, T v) { T o = *p; *p = o < v ? o : v; return o; }
template <typename T> static inline T atomicExch(T *p, T v) { T o = *p; *p = v; return o; }
template <typename T> static inline T atomicCAS(T *p, T c, T v)
{
    T o = *p;
    if (o == c)
        *p = v;
    return o;
}
static inline void __threadfence(void) {}
static inline void __threadfence_block(void) {}

/* ---- nvcuda::wmma, m16n16k16, F16 in / F32 accumulate ------------------------------ */
/*
 * The real fragment layout is unspecified; here lane l's accumulator holds the
 * 8 elements (l/2, (l%2)*8 + i), i < 8, of the row-major tile, and its A and B
 * fragments hold just what those need: A's row l/2, B's columns (l%2)*8 ..
 * +7 (with float copies, so mma_sync does no conversions). Every *_sync call
 * is a warp collective: all 32 lanes must arrive, and a load's pointer and ld
 * must be the same in every lane, as the API requires.
 */
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment;
template <typename Layout> struct fragment<matrix_a, 16, 16, 16, __half, Layout> {
    enum { num_elements = 16 };
    __half x[16]; /* [k] of row lane/2 */
    float f[16];
};
template <typename Layout> struct fragment<matrix_b, 16, 16, 16, __half, Layout> {
    enum { num_elements = 128 };
    __half x[128]; /* [c][k], c < 8: column (lane%2)*8 + c */
    float f[128];
};
template <> struct fragment<accumulator, 16, 16, 16, float, void> {
    enum { num_elements = 8 };
    float x[8];
};

static inline void fill_fragment(fragment<accumulator, 16, 16, 16, float> &f, float v)
{
    for (int i = 0; i < 8; i++)
        f.x[i] = v;
}

void emu_wmma_uniform(const void *p, unsigned ld, const char *what);

/* A: element (r, k) at p[r*ld + k] (row_major) or p[k*ld + r] (col_major) */
template <typename L>
static inline void load_matrix_sync(fragment<matrix_a, 16, 16, 16, __half, L> &f,
                                    const __half *p, unsigned ld)
{
    emu_wmma_uniform(p, ld, "wmma::load_matrix_sync(matrix_a)");
    const int r = emu_cur->lane >> 1;
    for (int k = 0; k < 16; k++) {
        f.x[k] = std::is_same<L, row_major>::value ? p[r * ld + k] : p[k * ld + r];
        f.f[k] = __half2float(f.x[k]);
    }
}
/* B: element (k, c) at p[k*ld + c] (row_major) or p[c*ld + k] (col_major) */
template <typename L>
static inline void load_matrix_sync(fragment<matrix_b, 16, 16, 16, __half, L> &f,
                                    const __half *p, unsigned ld)
{
    emu_wmma_uniform(p, ld, "wmma::load_matrix_sync(matrix_b)");
    const int c0 = (emu_cur->lane & 1) * 8;
    for (int c = 0; c < 8; c++)
        for (int k = 0; k < 16; k++) {
            f.x[c * 16 + k] =
                std::is_same<L, row_major>::value ? p[k * ld + c0 + c] : p[(c0 + c) * ld + k];
            f.f[c * 16 + k] = __half2float(f.x[c * 16 + k]);
        }
}
/* D = A*B + C; the products of two halves are exact in float, summed in order of k */
template <typename LA, typename LB>
static inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
                            const fragment<matrix_a, 16, 16, 16, __half, LA> &a,
                            const fragment<matrix_b, 16, 16, 16, __half, LB> &b,
                            const fragment<accumulator, 16, 16, 16, float> &c)
{
    emu_warp_sync(0xffffffffu, EMU_WK_WMMA, "wmma::mma_sync");
    float out[8];
    for (int i = 0; i < 8; i++) {
        float s = c.x[i];
        for (int k = 0; k < 16; k++)
            s += a.f[k] * b.f[i * 16 + k];
        out[i] = s;
    }
    for (int i = 0; i < 8; i++)
        d.x[i] = out[i];
}
static inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f,
                                     unsigned ld, layout_t layout)
{
    emu_wmma_uniform(p, ld, "wmma::store_matrix_sync");
    const int r = emu_cur->lane >> 1, c0 = (emu_cur->lane & 1) * 8;
    for (int i = 0; i < 8; i++)
        p[layout == mem_row_major ? r * ld + c0 + i : (c0 + i) * ld + r] = f.x[i];
}
} // namespace wmma
} // namespace nvcuda

/* cuda_runtime.h's typed overload is nvcc-only */
template <typename... P>
static inline cudaError_t cudaFuncSetAttribute(void (*f)(P...), cudaFuncAttribute a, int v)
{
    return cudaFuncSetAttribute((const void *)f, a, v);
}

/* ---- the launcher that rewrite.py substitutes for <<<>>> ---------------------------- */
#include <functional>

/*
 * Validates the configuration like the runtime, then runs the grid now (or,
 * while `stream` is being captured, appends it to the capture). Returns
 * nothing: errors go to cudaGetLastError, as for a real launch.
 */
void emu_launch_body(const char *name, const void *fn, dim3 grid, dim3 block, size_t shm,
                     cudaStream_t stream, std::function<void()> body);

/* A pointer argument must be NULL or point into device memory: a host address works
 * here but faults on a GPU. (Pointers inside struct arguments cannot be seen.) */
void emu_check_ptr_arg(const char *kernel, int index, const void *p);
template <typename T> static inline void emu_check_arg(const char *kernel, int index, const T &v)
{
    if constexpr (std::is_pointer<T>::value)
        emu_check_ptr_arg(kernel, index, (const void *)v);
}

/* Arguments are converted to the kernel's parameter types and copied now: a graph
 * replays these frozen values, exactly like a captured launch's parameter buffer. */
template <typename... P, typename... A>
static inline void emu_launch(const char *name, void (*k)(P...), dim3 grid, dim3 block,
                              size_t shm, cudaStream_t stream, A &&...args)
{
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong argument count");
    std::tuple<typename std::decay<P>::type...> frozen(std::forward<A>(args)...);
    std::apply(
        [name](const auto &...v) {
            int i = 0;
            (emu_check_arg(name, i++, v), ...);
        },
        frozen);
    emu_launch_body(name, (const void *)k, grid, block, shm, stream,
                    [k, frozen]() { std::apply(k, frozen); });
}

#endif
