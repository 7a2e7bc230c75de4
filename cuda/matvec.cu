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
 * needs. Every weight byte is read from DRAM exactly once; x (K floats) is
 * re-read from L1. The stream itself is matvec.cuh's mv_stream; this kernel
 * passes it the F32 unpack-and-FMA of one unit.
 *
 * Activations stay F32 here. On an H100 (bench/RESULTS.md, 2026-11-23) this
 * kernel ran every quantized type at ~1.5e12 weights/s, 21-30 % of copy
 * bandwidth for the 4-bit types, most likely held back by one int-to-float
 * conversion per weight; those are now an integer add and an FADD
 * (cuda_small_i2f, same floats), not yet re-measured. The dp4a path with x
 * quantized to 8 bits is matvec-q8.cu, which cuda_matvec hands the shape to
 * when it is switched on (HEARTH_CUDA_MV_Q8=1) and usable.
 */
#include <string.h>

#include "matvec.cuh"

#define MV_WARPS 4

template <int T>
static __global__ void __launch_bounds__(MV_WARPS * 32, mv_geom<T>::MINB)
    matvec_kernel(const mv_params p)
{
    __shared__ uint4 tile[MV_WARPS][MV_R][mv_geom<T>::NV];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    mv_rows R;
    if (!mv_rows_init(p, MV_WARPS * MV_R, warp, R))
        return;
    float acc[MV_R][CUDA_MATVEC_MAX_TOK];
    mv_zero(acc);
    mv_stream<T>(p, R, tile[warp], lane,
                 [&](const uint8_t *const (&blk)[MV_R], int part, int64_t g) {
        /* unpack the unit of every row first, so x is read once per unit and token */
        float w[MV_R][32];
#pragma unroll
        for (int r = 0; r < MV_R; r++)
            dq<T>::unit(blk[r], part, w[r]);
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
    });
    mv_store(R, acc, p.n_tok, lane);
}

extern "C" hearth_status cuda_matvec(int n_w, const struct cuda_mm_out *w, const float *d_x,
                                     int64_t x_stride, int n_tok, void *stream)
{
    if (n_w >= 1 && n_w <= 3 && cuda_matvec_q8_enabled() &&
        cuda_matvec_q8_usable(w[0].l->type, w[0].l->k, n_tok))
        return cuda_matvec_q8(n_w, w, d_x, x_stride, n_tok, stream);
    mv_params p;
    unsigned blocks = 0;
    hearth_status st =
        mv_params_init("cuda_matvec", n_w, w, d_x, x_stride, n_tok, MV_WARPS * MV_R, &p, &blocks);
    if (st != HEARTH_OK)
        return st;
    dim3 grid(blocks), block(MV_WARPS * 32);
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
