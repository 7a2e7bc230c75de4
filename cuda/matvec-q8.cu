/*
 * cuda/matvec-q8: the decode matvec with 8-bit activations, y = W x for 1..4
 * token rows and 1..3 weights sharing x, for the types with an integer unit
 * form (dequant-int.cuh: Q4_0..Q8_0, Q2_K..Q6_K).
 *
 * Why: matvec.cu turns every weight into a float and spends an FFMA on it;
 * here four codes are multiplied by four activation bytes in one dp4a, and
 * the unit's scales apply once per 16 elements. Each block first quantizes
 * all of x into shared memory, one thread per 32 values (d = amax / 127 as a
 * float, codes rounded to nearest), with the two 16-element code sums that
 * the constant part of a weight (Q4_0's -8, a K-quant's min) multiplies.
 * Every block repeats that (about 5 instructions per value, against about
 * 1.3 per weight for the dot itself), so blocks are larger here: 8 warps, 16
 * rows (4 warps for the types with tiles over 1 KB, whose tiles would not
 * fit the 48 KB of shared memory twice over).
 *
 * The weight stream is matvec.cuh's mv_stream, as for matvec.cu (tiles one ahead in
 * registers, staged through the warp's shared slice). The results differ
 * from the F32 path by the activations' rounding, as the CPU's own quantized
 * dot products do (core/cpu/dot.h), so it is a switch until a GPU has timed
 * both: HEARTH_CUDA_MV_Q8=1 at the first matvec, or cuda_matvec_q8_set.
 * Shapes whose x does not fit beside the tiles (n_tok * K beyond ~25k
 * values) stay on the F32 path.
 */
#include <stdlib.h>
#include <string.h>

#include "dequant-int.cuh"
#include "matvec.cuh"

#define MQ_SMEM_MAX (48 * 1024)

template <int T> struct mq_geom {
    static constexpr int WARPS = mv_geom<T>::TB > 1024 ? 4 : 8;
    static constexpr int MINB = 16 / WARPS; /* 128 registers a thread, 16 warps an SM */
    static constexpr size_t TILE_SMEM = (size_t)WARPS * MV_R * mv_geom<T>::NV * 16;
};

/* Bytes of quantized x in dynamic shared memory: codes, then d, Σ codes 0..15, Σ 16..31. */
static size_t mq_x_bytes(int64_t k, int n_tok)
{
    return (size_t)n_tok * (size_t)k + (size_t)n_tok * (size_t)(k / 32) * 12u;
}

/*
 * One thread quantizes one block of 32 values x (float4-aligned) into codes
 * q (8 words), its scale and the two 16-value code sums. d = amax / 127 as a
 * multiply and codes rounded half to even through the 1.5 * 2^23 trick:
 * cheaper than Q8_0's division and q_round, and this format never leaves the
 * kernel (tests/test-cuda-ops.c restates it to build its reference).
 */
__device__ __forceinline__ void mq_quantize32(const float *x, int4 *q, float *d, float *s0,
                                              float *s1)
{
    float v[32];
    const float4 *x4 = (const float4 *)x;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        float4 f = x4[i];
        v[4 * i] = f.x, v[4 * i + 1] = f.y, v[4 * i + 2] = f.z, v[4 * i + 3] = f.w;
    }
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 32; i++)
        amax = fmaxf(amax, fabsf(v[i]));
    /* below 1e-30 (never an activation) 127 / amax could overflow: all codes 0 */
    const float id = amax > 1e-30f ? __fdiv_rn(127.0f, amax) : 0.0f;
    int w[8];
#pragma unroll
    for (int j = 0; j < 8; j++) {
        uint32_t word = 0;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int c = __float_as_int(fmaf(v[4 * j + e], id, 12582912.0f)) - 0x4b400000;
            word |= ((uint32_t)c & 0xffu) << (8 * e);
        }
        w[j] = (int)word;
    }
    int a = 0, b = 0;
#pragma unroll
    for (int j = 0; j < 4; j++)
        a = __dp4a(w[j], 0x01010101, a), b = __dp4a(w[4 + j], 0x01010101, b);
    q[0] = make_int4(w[0], w[1], w[2], w[3]);
    q[1] = make_int4(w[4], w[5], w[6], w[7]);
    *d = __fmul_rn(amax, 1.0f / 127.0f);
    *s0 = (float)a, *s1 = (float)b;
}

template <int T>
static __global__ void __launch_bounds__(mq_geom<T>::WARPS * 32, mq_geom<T>::MINB)
    matvec_q8_kernel(const mv_params p)
{
    using Q = mq_geom<T>;
    __shared__ uint4 tile[Q::WARPS][MV_R][mv_geom<T>::NV];
    extern __shared__ __align__(16) uint8_t mq_smem[];
    const int64_t nb = p.k / 32;
    const int n_xb = p.n_tok * (int)nb;
    int8_t *xq = (int8_t *)mq_smem;
    float *xd = (float *)(mq_smem + (size_t)p.n_tok * (size_t)p.k);
    float *xs0 = xd + n_xb, *xs1 = xs0 + n_xb;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

    /* x rows are 16-byte aligned (cuda_matvec_q8 checks) */
    for (int g = threadIdx.x; g < n_xb; g += Q::WARPS * 32) {
        const int tk = g / (int)nb;
        const int64_t gb = g - (int64_t)tk * nb;
        mq_quantize32(p.x + tk * p.x_stride + 32 * gb,
                      (int4 *)(xq + (int64_t)tk * p.k + 32 * gb), &xd[g], &xs0[g], &xs1[g]);
    }
    __syncthreads();

    mv_rows R;
    if (!mv_rows_init(p, Q::WARPS * MV_R, warp, R))
        return;
    float acc[MV_R][CUDA_MATVEC_MAX_TOK];
    mv_zero(acc);
    mv_stream<T>(p, R, tile[warp], lane,
                 [&](const uint8_t *const (&blk)[MV_R], int part, int64_t g) {
        int q[MV_R][8];
        float d[MV_R][2], m[MV_R][2];
#pragma unroll
        for (int r = 0; r < MV_R; r++)
            dqi<T>::unit(blk[r], part, q[r], d[r], m[r]);
#pragma unroll
        for (int tk = 0; tk < CUDA_MATVEC_MAX_TOK; tk++) {
            if (tk >= p.n_tok)
                break;
            const int4 *xw = (const int4 *)(xq + (int64_t)tk * p.k + 32 * g);
            const int4 a = xw[0], c = xw[1];
            const int xi = tk * (int)nb + (int)g;
            const float dx = xd[xi], s0 = xs0[xi], s1 = xs1[xi];
#pragma unroll
            for (int r = 0; r < MV_R; r++) {
                int p0 = __dp4a(q[r][0], a.x, 0);
                p0 = __dp4a(q[r][1], a.y, p0);
                p0 = __dp4a(q[r][2], a.z, p0);
                p0 = __dp4a(q[r][3], a.w, p0);
                int p1 = __dp4a(q[r][4], c.x, 0);
                p1 = __dp4a(q[r][5], c.y, p1);
                p1 = __dp4a(q[r][6], c.z, p1);
                p1 = __dp4a(q[r][7], c.w, p1);
                acc[r][tk] += dx * (d[r][0] * (float)p0 + d[r][1] * (float)p1 +
                                    m[r][0] * s0 + m[r][1] * s1);
            }
        }
    });
    mv_store(R, acc, p.n_tok, lane);
}

/* Warps per block and static shared bytes of the type's kernel; false: no integer form. */
static bool mq_info(int type, int *warps, size_t *tile_smem)
{
    switch (type) {
#define MQ_INFO(T)                                                                   \
    case T:                                                                          \
        *warps = mq_geom<T>::WARPS, *tile_smem = mq_geom<T>::TILE_SMEM;              \
        return true;
        CUDA_FOR_INT_TYPES(MQ_INFO)
#undef MQ_INFO
    default:
        return false;
    }
}

static int g_q8_mode = -1; /* -1: HEARTH_CUDA_MV_Q8 not read yet */

extern "C" void cuda_matvec_q8_set(bool on)
{
    g_q8_mode = on ? 1 : 0;
}

extern "C" bool cuda_matvec_q8_enabled(void)
{
    if (g_q8_mode < 0) {
        const char *e = getenv("HEARTH_CUDA_MV_Q8");
        g_q8_mode = e && e[0] == '1' && e[1] == '\0';
    }
    return g_q8_mode == 1;
}

extern "C" bool cuda_matvec_q8_usable(int type, int64_t k, int n_tok)
{
    int warps;
    size_t tile_smem;
    return mq_info(type, &warps, &tile_smem) && n_tok >= 1 && n_tok <= CUDA_MATVEC_MAX_TOK &&
           k > 0 && k % 32 == 0 && tile_smem + mq_x_bytes(k, n_tok) <= MQ_SMEM_MAX;
}

extern "C" hearth_status cuda_matvec_q8(int n_w, const struct cuda_mm_out *w, const float *d_x,
                                        int64_t x_stride, int n_tok, void *stream)
{
    if (n_w < 1 || n_w > 3)
        return err_set(HEARTH_ERR_INVALID_ARG, "cuda_matvec_q8: n_w %d (1..3)", n_w);
    const int type = w[0].l->type;
    const int64_t k = w[0].l->k;
    int warps;
    size_t tile_smem;
    if (!cuda_matvec_q8_usable(type, k, n_tok) || !mq_info(type, &warps, &tile_smem))
        return err_set(HEARTH_ERR_UNSUPPORTED,
                       "cuda_matvec_q8: %s K=%lld n_tok %d (needs an integer unit form, K %% 32 "
                       "== 0, 1..%d tokens and x within %d bytes of shared memory)",
                       hearth_dtype_name((enum hearth_dtype)type), (long long)k, n_tok,
                       CUDA_MATVEC_MAX_TOK, MQ_SMEM_MAX);
    mv_params p;
    unsigned blocks = 0;
    hearth_status st = mv_params_init("cuda_matvec_q8", n_w, w, d_x, x_stride, n_tok,
                                      warps * MV_R, &p, &blocks);
    if (st != HEARTH_OK)
        return st;
    const size_t smem = mq_x_bytes(k, n_tok);
    cudaStream_t s = CUDA_STREAM(stream);
    switch (type) {
#define MQ_CASE(T)                                                                   \
    case T:                                                                          \
        matvec_q8_kernel<T><<<blocks, warps * 32, smem, s>>>(p);                     \
        break;
        CUDA_FOR_INT_TYPES(MQ_CASE)
#undef MQ_CASE
    default:
        break;
    }
    CUDA_RETURN_LAUNCH();
}
