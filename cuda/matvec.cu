/*
 * cuda/matvec: the decode-time fused dequant matvec, y = W x for 1..4 token
 * rows and 1..3 weights sharing x (q/k/v, gate/up) in one launch.
 *
 * Shape of the work: a block is 4 warps; each warp owns MV_R = 2 weight rows
 * and streams them in tiles (cuda_matvec_tile_elems: 1024 or 2048 elements,
 * whole blocks on a 16-byte boundary). Per tile each lane issues its aligned
 * uint4 loads for both rows (coalesced: consecutive lanes, consecutive 16
 * bytes), parks them in the warp's slice of shared memory, and unpacks one
 * 32-element unit per row into registers with dq<T>::unit; the unit's 32
 * floats of x (float4 loads, L1 hits) are then read once for both rows.
 * The loads of tile t+1 are issued before tile t is unpacked, so every lane
 * has two rows x one tile of loads in flight while it computes; with 3-4
 * resident blocks per SM (mv_geom::MINB) this is the Little's-law depth HBM
 * needs. Every
 * weight byte is read from DRAM exactly once; x (K floats) is re-read from L1.
 *
 * Activations stay F32 here: a dp4a path (x quantized to q8_1, int8 dot
 * products) trades exactness against the CPU's own rounding for fewer
 * instructions per weight. On an H100 (bench/RESULTS.md, 2026-11-23) this
 * kernel ran every quantized type at ~1.5e12 weights/s, 21-30 % of copy
 * bandwidth for the 4-bit types: bound by instructions per weight. The
 * decoders' per-weight int-to-float conversions have since become an integer
 * add and an FADD (cuda_small_i2f, same floats), not yet re-measured; the dp4a
 * path is the step after that if the types stay short.
 */
#include <string.h>

#include "dequant.cuh"

#define MV_WARPS 4
#define MV_R 2

struct mv_weight {
    const uint8_t *w;
    const float *b;
    float *y;
    int64_t n_rows, y_stride;
    int64_t first_block; /* first grid block of this weight */
};

struct mv_params {
    mv_weight wt[3];
    int n_w, n_tok;
    int64_t k, row_stride, x_stride;
    const float *x;
};

/* Compile-time twin of cuda_matvec_tile_elems (checked against it in test-cuda-layout). */
__host__ __device__ constexpr int mv_gcd(int a, int b)
{
    return b == 0 ? a : mv_gcd(b, a % b);
}
template <int T> struct mv_geom {
    static constexpr int SPAN = (16 / mv_gcd(dq<T>::UB, 16)) * dq<T>::EB;
    static constexpr int TE = SPAN <= 1024 ? 1024 : (SPAN + 1023) / 1024 * 1024;
    static constexpr int TB = TE / dq<T>::EB * dq<T>::UB; /* tile bytes, multiple of 16 */
    static constexpr int NV = TB / 16;                    /* uint4 per row per tile */
    static constexpr int VPL = (NV + 31) / 32;            /* uint4 per lane per row */
    static constexpr int UPL = TE / 1024;                 /* units per lane per tile */
    /*
     * Resident blocks per SM the register budget must allow (4: 128 registers,
     * 16 warps). Types with big tiles (F32/F16/BF16/Q6_K: more uint4 per lane
     * in flight) spill at 128 and get 3; ptxas -v shows no spills this way,
     * except 4-24 bytes in IQ2_XS, IQ3_XXS and IQ3_S (grid lookups of two
     * rows in flight; kept at 4 blocks until bench-cuda says otherwise).
     */
    static constexpr int MINB = TB > 1024 ? 3 : 4;
    static_assert(TB % 16 == 0, "tile must end on a 16-byte boundary");
};

template <int T>
static __global__ void __launch_bounds__(MV_WARPS * 32, mv_geom<T>::MINB)
    matvec_kernel(const mv_params p)
{
    using G = mv_geom<T>;
    constexpr int UPB = dq<T>::EB / 32;
    __shared__ uint4 tile[MV_WARPS][MV_R][G::NV];

    int wi = 0;
    while (wi + 1 < p.n_w && (int64_t)blockIdx.x >= p.wt[wi + 1].first_block)
        wi++;
    const mv_weight &W = p.wt[wi];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t r0 = ((int64_t)blockIdx.x - W.first_block) * (MV_WARPS * MV_R) + warp * MV_R;
    if (r0 >= W.n_rows)
        return;
    const uint8_t *rowp[MV_R];
    bool valid[MV_R];
#pragma unroll
    for (int r = 0; r < MV_R; r++) {
        valid[r] = r0 + r < W.n_rows;
        rowp[r] = W.w + (size_t)(valid[r] ? r0 + r : r0) * (size_t)p.row_stride;
    }

    const int64_t n_units = p.k / 32;
    const int n_tiles = (int)((p.row_stride + G::TB - 1) / G::TB);
    float acc[MV_R][CUDA_MATVEC_MAX_TOK];
#pragma unroll
    for (int r = 0; r < MV_R; r++)
#pragma unroll
        for (int t = 0; t < CUDA_MATVEC_MAX_TOK; t++)
            acc[r][t] = 0.0f;

    uint4 reg[MV_R][G::VPL];
    const uint4 zero = make_uint4(0, 0, 0, 0);
#define MV_LOAD(tt)                                                                   \
    _Pragma("unroll") for (int r = 0; r < MV_R; r++)                                  \
    _Pragma("unroll") for (int j = 0; j < G::VPL; j++)                                \
    {                                                                                 \
        int v = lane + 32 * j;                                                        \
        int64_t off = (int64_t)(tt) * G::TB + 16 * (int64_t)v;                        \
        reg[r][j] = (v < G::NV && off < p.row_stride)                                 \
                        ? __ldg((const uint4 *)(rowp[r] + off))                       \
                        : zero;                                                       \
    }
    MV_LOAD(0);
    for (int t = 0; t < n_tiles; t++) {
        __syncwarp();
#pragma unroll
        for (int r = 0; r < MV_R; r++)
#pragma unroll
            for (int j = 0; j < G::VPL; j++)
                if (lane + 32 * j < G::NV)
                    tile[warp][r][lane + 32 * j] = reg[r][j];
        __syncwarp();
        if (t + 1 < n_tiles)
            MV_LOAD(t + 1);
#pragma unroll
        for (int uu = 0; uu < G::UPL; uu++) {
            const int u = lane + 32 * uu;
            const int64_t g = (int64_t)t * (G::TE / 32) + u;
            if (g >= n_units)
                break;
            /* unpack the unit of every row first, so x is read once per unit and token */
            float w[MV_R][32];
#pragma unroll
            for (int r = 0; r < MV_R; r++)
                dq<T>::unit((const uint8_t *)tile[warp][r] + (u / UPB) * dq<T>::UB, u % UPB,
                            w[r]);
            const float *xu = p.x + g * 32;
#pragma unroll
            for (int tk = 0; tk < CUDA_MATVEC_MAX_TOK; tk++) {
                if (tk >= p.n_tok)
                    break;
                const float4 *x4 = (const float4 *)(xu + tk * p.x_stride);
                float s[MV_R];
#pragma unroll
                for (int r = 0; r < MV_R; r++)
                    s[r] = 0.0f;
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    float4 xv = __ldg(x4 + i);
#pragma unroll
                    for (int r = 0; r < MV_R; r++) {
                        s[r] = fmaf(w[r][4 * i], xv.x, s[r]);
                        s[r] = fmaf(w[r][4 * i + 1], xv.y, s[r]);
                        s[r] = fmaf(w[r][4 * i + 2], xv.z, s[r]);
                        s[r] = fmaf(w[r][4 * i + 3], xv.w, s[r]);
                    }
                }
#pragma unroll
                for (int r = 0; r < MV_R; r++)
                    acc[r][tk] += s[r];
            }
        }
    }
#undef MV_LOAD
#pragma unroll
    for (int r = 0; r < MV_R; r++) {
#pragma unroll
        for (int tk = 0; tk < CUDA_MATVEC_MAX_TOK; tk++) {
            if (tk >= p.n_tok)
                break;
            float s = warp_sum(acc[r][tk]);
            if (lane == 0 && valid[r])
                W.y[tk * W.y_stride + r0 + r] = s + (W.b ? W.b[r0 + r] : 0.0f);
        }
    }
}

extern "C" hearth_status cuda_matvec(int n_w, const struct cuda_mm_out *w, const float *d_x,
                                     int64_t x_stride, int n_tok, void *stream)
{
    if (n_w < 1 || n_w > 3 || n_tok < 1 || n_tok > CUDA_MATVEC_MAX_TOK)
        return err_set(HEARTH_ERR_INVALID_ARG, "cuda_matvec: n_w %d (1..3), n_tok %d (1..%d)",
                       n_w, n_tok, CUDA_MATVEC_MAX_TOK);
    if ((x_stride % 4) != 0 || ((uintptr_t)d_x & 15u) != 0)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "cuda_matvec: x must be 16-byte aligned with x_stride %% 4 == 0 "
                       "(x_stride %lld)", (long long)x_stride);
    mv_params p;
    memset(&p, 0, sizeof p);
    p.n_w = n_w;
    p.n_tok = n_tok;
    p.k = w[0].l->k;
    p.row_stride = (int64_t)w[0].l->row_stride;
    p.x_stride = x_stride;
    p.x = d_x;
    int64_t blocks = 0;
    for (int i = 0; i < n_w; i++) {
        const struct cuda_wlayout *l = w[i].l;
        if (l->type != w[0].l->type || l->k != p.k)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "cuda_matvec: weight %d is %s K=%lld, weight 0 %s K=%lld (one "
                           "launch needs one type and K)", i, hearth_dtype_name(l->type),
                           (long long)l->k, hearth_dtype_name(w[0].l->type), (long long)p.k);
        if ((l->row_stride & 15u) != 0 || ((uintptr_t)w[i].d_w & 15u) != 0)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "cuda_matvec: weight %d rows must be 16-byte aligned (row stride "
                           "%zu; cuda/layout.h pads them at upload)", i, l->row_stride);
        p.wt[i].w = (const uint8_t *)w[i].d_w;
        p.wt[i].b = w[i].d_b;
        p.wt[i].y = w[i].d_y;
        p.wt[i].n_rows = l->n_rows;
        p.wt[i].y_stride = w[i].y_stride;
        p.wt[i].first_block = blocks;
        blocks += (l->n_rows + MV_WARPS * MV_R - 1) / (MV_WARPS * MV_R);
    }
    if (blocks > 0x7fffffff)
        return err_set(HEARTH_ERR_INVALID_ARG, "cuda_matvec: %lld blocks", (long long)blocks);
    dim3 grid((unsigned)blocks), block(MV_WARPS * 32);
    cudaStream_t s = CUDA_STREAM(stream);
    switch (w[0].l->type) {
#define MV_CASE(T)                                                                   \
    case T:                                                                          \
        matvec_kernel<T><<<grid, block, 0, s>>>(p);                                  \
        break;
        CUDA_FOR_TYPES(MV_CASE)
#undef MV_CASE
    default:
        return err_set(HEARTH_ERR_UNSUPPORTED, "cuda_matvec: no kernel for type %s",
                       hearth_dtype_name(w[0].l->type));
    }
    CUDA_RETURN_LAUNCH();
}
