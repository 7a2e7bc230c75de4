/*
 * cuda/matvec.cuh: the tile geometry the two decode matvec kernels share
 * (matvec.cu, F32 activations; matvec-q8.cu, 8-bit activations and dp4a).
 * A warp streams each of its rows in tiles of TE elements, TB bytes, whole
 * blocks ending on a 16-byte boundary, loading tile t+1 while it computes t.
 */
#ifndef HEARTH_CUDA_MATVEC_CUH
#define HEARTH_CUDA_MATVEC_CUH

#include <string.h>

#include "dequant.cuh"

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

#define MV_R 2 /* weight rows per warp */

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

/*
 * Checks the arguments of cuda_matvec / cuda_matvec_q8 (who) and fills p;
 * *blocks: the grid, rows_per_block rows a block.
 */
static hearth_status mv_params_init(const char *who, int n_w, const struct cuda_mm_out *w,
                                    const float *d_x, int64_t x_stride, int n_tok,
                                    int rows_per_block, mv_params *p, unsigned *blocks)
{
    if (n_w < 1 || n_w > 3 || n_tok < 1 || n_tok > CUDA_MATVEC_MAX_TOK)
        return err_set(HEARTH_ERR_INVALID_ARG, "%s: n_w %d (1..3), n_tok %d (1..%d)", who, n_w,
                       n_tok, CUDA_MATVEC_MAX_TOK);
    if ((x_stride % 4) != 0 || ((uintptr_t)d_x & 15u) != 0)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "%s: x must be 16-byte aligned with x_stride %% 4 == 0 (x_stride %lld)",
                       who, (long long)x_stride);
    memset(p, 0, sizeof *p);
    p->n_w = n_w;
    p->n_tok = n_tok;
    p->k = w[0].l->k;
    p->row_stride = (int64_t)w[0].l->row_stride;
    p->x_stride = x_stride;
    p->x = d_x;
    int64_t nb = 0;
    for (int i = 0; i < n_w; i++) {
        const struct cuda_wlayout *l = w[i].l;
        if (l->type != w[0].l->type || l->k != p->k)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "%s: weight %d is %s K=%lld, weight 0 %s K=%lld (one launch needs "
                           "one type and K)", who, i, hearth_dtype_name(l->type),
                           (long long)l->k, hearth_dtype_name(w[0].l->type), (long long)p->k);
        if ((l->row_stride & 15u) != 0 || ((uintptr_t)w[i].d_w & 15u) != 0)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "%s: weight %d rows must be 16-byte aligned (row stride %zu; "
                           "cuda/layout.h pads them at upload)", who, i, l->row_stride);
        p->wt[i].w = (const uint8_t *)w[i].d_w;
        p->wt[i].b = w[i].d_b;
        p->wt[i].y = w[i].d_y;
        p->wt[i].n_rows = l->n_rows;
        p->wt[i].y_stride = w[i].y_stride;
        p->wt[i].first_block = nb;
        nb += (l->n_rows + rows_per_block - 1) / rows_per_block;
    }
    if (nb > 0x7fffffff)
        return err_set(HEARTH_ERR_INVALID_ARG, "%s: %lld blocks", who, (long long)nb);
    *blocks = (unsigned)nb;
    return HEARTH_OK;
}

/* A warp's MV_R rows: the weight its block serves, the first row, where each row starts. */
struct mv_rows {
    float *y;
    const float *b;
    int64_t y_stride, r0;
    const uint8_t *rowp[MV_R];
    bool valid[MV_R];
};

/* false: the warp has no row (the last block of a weight). */
__device__ __forceinline__ bool mv_rows_init(const mv_params &p, int rows_per_block, int warp,
                                             mv_rows &R)
{
    int wi = 0;
    while (wi + 1 < p.n_w && (int64_t)blockIdx.x >= p.wt[wi + 1].first_block)
        wi++;
    /* fields by value: a pointer into the kernel's parameters would put them on the stack */
    const mv_weight &W = p.wt[wi];
    R.r0 = ((int64_t)blockIdx.x - W.first_block) * rows_per_block + warp * MV_R;
    if (R.r0 >= W.n_rows)
        return false;
    R.y = W.y, R.b = W.b, R.y_stride = W.y_stride;
#pragma unroll
    for (int r = 0; r < MV_R; r++) {
        R.valid[r] = R.r0 + r < W.n_rows;
        R.rowp[r] = W.w + (size_t)(R.valid[r] ? R.r0 + r : R.r0) * (size_t)p.row_stride;
    }
    return true;
}

__device__ __forceinline__ void mv_zero(float (&acc)[MV_R][CUDA_MATVEC_MAX_TOK])
{
#pragma unroll
    for (int r = 0; r < MV_R; r++)
#pragma unroll
        for (int t = 0; t < CUDA_MATVEC_MAX_TOK; t++)
            acc[r][t] = 0.0f;
}

/* This lane's uint4s of tile t of every row (coalesced: lane-consecutive 16 bytes). */
template <int T>
__device__ __forceinline__ void mv_load(uint4 (&reg)[MV_R][mv_geom<T>::VPL], const mv_rows &R,
                                        int t, int64_t row_stride, int lane)
{
    using G = mv_geom<T>;
#pragma unroll
    for (int r = 0; r < MV_R; r++)
#pragma unroll
        for (int j = 0; j < G::VPL; j++) {
            int v = lane + 32 * j;
            int64_t off = (int64_t)t * G::TB + 16 * (int64_t)v;
            reg[r][j] = (v < G::NV && off < row_stride)
                            ? __ldg((const uint4 *)(R.rowp[r] + off))
                            : make_uint4(0, 0, 0, 0);
        }
}

/* The loaded tile into the warp's shared slice, where units straddle lanes' uint4s. */
template <int T>
__device__ __forceinline__ void mv_stage(uint4 (&tile)[MV_R][mv_geom<T>::NV],
                                         const uint4 (&reg)[MV_R][mv_geom<T>::VPL], int lane)
{
    using G = mv_geom<T>;
    __syncwarp();
#pragma unroll
    for (int r = 0; r < MV_R; r++)
#pragma unroll
        for (int j = 0; j < G::VPL; j++)
            if (lane + 32 * j < G::NV)
                tile[r][lane + 32 * j] = reg[r][j];
    __syncwarp();
}

/*
 * The stream both kernels run over a warp's MV_R rows: tile by tile, tile t+1's
 * loads in flight while tile t is consumed, one 32-element unit per lane per
 * step. unit(blk, part, g) does the kernel's own arithmetic: blk[r] is the
 * staged block of row r that holds the unit, part the unit's index inside
 * that block, g its index along the row (x's unit).
 */
template <int T, typename F>
__device__ __forceinline__ void mv_stream(const mv_params &p, const mv_rows &R,
                                          uint4 (&tile)[MV_R][mv_geom<T>::NV], int lane, F &&unit)
{
    using G = mv_geom<T>;
    constexpr int UPB = dq<T>::EB / 32;
    const int64_t n_units = p.k / 32;
    const int n_tiles = (int)((p.row_stride + G::TB - 1) / G::TB);
    uint4 reg[MV_R][G::VPL];
    mv_load<T>(reg, R, 0, p.row_stride, lane);
    for (int t = 0; t < n_tiles; t++) {
        mv_stage<T>(tile, reg, lane);
        if (t + 1 < n_tiles)
            mv_load<T>(reg, R, t + 1, p.row_stride, lane);
#pragma unroll
        for (int uu = 0; uu < G::UPL; uu++) {
            const int u = lane + 32 * uu;
            const int64_t g = (int64_t)t * (G::TE / 32) + u;
            if (g >= n_units)
                break;
            const uint8_t *blk[MV_R];
#pragma unroll
            for (int r = 0; r < MV_R; r++)
                blk[r] = (const uint8_t *)tile[r] + (u / UPB) * dq<T>::UB;
            unit(blk, u % UPB, g);
        }
    }
}

/* Sums each row's partials over the warp and writes y (+ bias). */
__device__ __forceinline__ void mv_store(const mv_rows &R, float (&acc)[MV_R][CUDA_MATVEC_MAX_TOK],
                                         int n_tok, int lane)
{
#pragma unroll
    for (int r = 0; r < MV_R; r++) {
#pragma unroll
        for (int tk = 0; tk < CUDA_MATVEC_MAX_TOK; tk++) {
            if (tk >= n_tok)
                break;
            float s = warp_sum(acc[r][tk]);
            if (lane == 0 && R.valid[r])
                R.y[tk * R.y_stride + R.r0 + r] = s + (R.b ? R.b[R.r0 + r] : 0.0f);
        }
    }
}

#endif
