/*
 * cuda/attention: K/V append into the F16 cache, and attention over it with
 * causal and sliding-window masks and grouped KV heads.
 *
 * Flash-decoding: the positions [lo, p] a query attends to are cut into
 * n_split equal pieces; block (split, head, token) runs an online softmax over
 * its piece (each of 4 warps takes every 4th position: lanes split the head
 * dimension, a warp reduction gives the score; running max m, normalizer l
 * and unnormalized accumulator per warp, merged across warps at the end) and
 * writes (m, l, acc[D]) to scratch. A second kernel combines the pieces with
 * log-sum-exp weights: out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M).
 * With n_split = 1 this is one pass per (token, head), which is what prefill
 * uses today; the split count is a launch constant and each block derives its
 * range from *d_pos on the device, so a decode step is graph-capturable.
 *
 * Prefill (n_split == 1 and n_tok >= CUDA_ATTN_TILED_MIN_TOK) takes the
 * tiled kernel below instead: 16 queries per block share each K/V tile.
 * Not yet: tensor-core QK^T / PV, and one K/V tile shared by the G query
 * heads of a group; both cut L2 traffic and instructions, not results.
 */
#include <math.h>

#include "common.cuh"

#define ATT_WARPS 4
#define ATT_MAX_DL 8 /* head_dim / 32 <= 8 */

static __global__ void kv_store_kernel(const float *k, const float *v, __half *kc, __half *vc,
                                       int64_t width, int64_t cstride, const int32_t *pos)
{
    const int64_t row = (int64_t)*pos + blockIdx.x;
    const float *kr = k + (int64_t)blockIdx.x * width, *vr = v + (int64_t)blockIdx.x * width;
    for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
        kc[row * cstride + i] = __float2half_rn(kr[i]);
        vc[row * cstride + i] = __float2half_rn(vr[i]);
    }
}

extern "C" hearth_status cuda_kv_store(const struct cuda_attn_args *a, void *stream)
{
    if (a->n_tok <= 0)
        return HEARTH_OK;
    int64_t width = (int64_t)a->n_head_kv * a->head_dim;
    kv_store_kernel<<<(unsigned)a->n_tok, 256, 0, CUDA_STREAM(stream)>>>(
        a->d_k, a->d_v, (__half *)a->d_k_cache, (__half *)a->d_v_cache, width,
        a->kv_stride ? a->kv_stride : width, a->d_pos);
    CUDA_RETURN_LAUNCH();
}

struct att_params {
    const float *q;
    const __half *kc, *vc;
    float *ws;
    const int32_t *pos;
    int n_head, group, hd, dl, n_split;
    int64_t kv_width; /* halves between cache rows */
    float scale;
    uint32_t window;
};

static __global__ void __launch_bounds__(ATT_WARPS * 32) attn_split_kernel(const att_params p)
{
    __shared__ float sm_m[ATT_WARPS], sm_l[ATT_WARPS];
    __shared__ float sm_acc[ATT_WARPS][ATT_MAX_DL * 32];
    const int s = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t pp = (int64_t)*p.pos + t;
    const int64_t lo = p.window && pp + 1 > (int64_t)p.window ? pp + 1 - p.window : 0;
    const int64_t len = pp - lo + 1, chunk = (len + p.n_split - 1) / p.n_split;
    const int64_t j0 = lo + s * chunk, j1 = min(pp + 1, j0 + chunk);

    const float *q = p.q + ((int64_t)t * p.n_head + h) * p.hd;
    const int64_t koff = (int64_t)(h / p.group) * p.hd;
    float qr[ATT_MAX_DL], acc[ATT_MAX_DL];
#pragma unroll
    for (int i = 0; i < ATT_MAX_DL; i++) {
        qr[i] = i < p.dl ? q[lane + 32 * i] : 0.0f;
        acc[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int64_t j = j0 + warp; j < j1; j += ATT_WARPS) {
        const __half *kr = p.kc + j * p.kv_width + koff;
        float d = 0.0f;
#pragma unroll
        for (int i = 0; i < ATT_MAX_DL; i++)
            if (i < p.dl)
                d = fmaf(qr[i], __half2float(kr[lane + 32 * i]), d);
        float sc = warp_sum(d) * p.scale;
        float mn = fmaxf(m, sc), corr = expf(m - mn), e = expf(sc - mn);
        const __half *vr = p.vc + j * p.kv_width + koff;
        l = l * corr + e;
#pragma unroll
        for (int i = 0; i < ATT_MAX_DL; i++)
            if (i < p.dl)
                acc[i] = acc[i] * corr + e * __half2float(vr[lane + 32 * i]);
        m = mn;
    }
    if (lane == 0)
        sm_m[warp] = m, sm_l[warp] = l;
#pragma unroll
    for (int i = 0; i < ATT_MAX_DL; i++)
        if (i < p.dl)
            sm_acc[warp][lane + 32 * i] = acc[i];
    __syncthreads();
    float M = -INFINITY;
    for (int w = 0; w < ATT_WARPS; w++)
        M = fmaxf(M, sm_m[w]);
    float *out = p.ws + (((int64_t)t * p.n_head + h) * p.n_split + s) * (p.hd + 2);
    float L = 0.0f;
    for (int w = 0; w < ATT_WARPS; w++)
        L += M == -INFINITY ? 0.0f : sm_l[w] * expf(sm_m[w] - M);
    for (int d = threadIdx.x; d < p.hd; d += blockDim.x) {
        float a = 0.0f;
        for (int w = 0; w < ATT_WARPS; w++)
            a += M == -INFINITY ? 0.0f : sm_acc[w][d] * expf(sm_m[w] - M);
        out[2 + d] = a;
    }
    if (threadIdx.x == 0)
        out[0] = M, out[1] = L;
}

static __global__ void attn_combine_kernel(const float *ws, float *out, int n_head, int hd,
                                           int n_split)
{
    const int h = blockIdx.x, t = blockIdx.y;
    const float *part = ws + ((int64_t)t * n_head + h) * n_split * (hd + 2);
    float M = -INFINITY;
    for (int s = 0; s < n_split; s++)
        M = fmaxf(M, part[s * (hd + 2)]);
    float L = 0.0f;
    for (int s = 0; s < n_split; s++) {
        float ms = part[s * (hd + 2)];
        if (ms != -INFINITY)
            L += part[s * (hd + 2) + 1] * expf(ms - M);
    }
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float a = 0.0f;
        for (int s = 0; s < n_split; s++) {
            float ms = part[s * (hd + 2)];
            if (ms != -INFINITY)
                a += part[s * (hd + 2) + 2 + d] * expf(ms - M);
        }
        out[((int64_t)t * n_head + h) * hd + d] = a / L;
    }
}

/*
 * Tiled prefill: block (16-token tile, query head). The 16 queries sit in
 * shared memory as F32; K/V tiles of 32 positions are staged once per block
 * as F16 (K rows padded by one word so lane j reading row j hits distinct
 * banks) and reused by all 16 queries. Each warp owns 4 queries; per tile,
 * lane j scores position jt + j against a query (no reductions), masked to
 * [lo_t, p_t]; the warp's max/sum give the online-softmax update, and the PV
 * product broadcasts each position's weight with a shuffle while lanes own
 * the output dimensions.
 */
#define AT_Q 16
#define AT_K 32

static __global__ void __launch_bounds__(128) attn_tile_kernel(const att_params p, int n_tok,
                                                               float *out)
{
    extern __shared__ __align__(16) uint8_t at_smem[];
    const int D = p.hd, D2 = D / 2, ldk = D2 + 1; /* ldk in half2 words */
    float *qs = (float *)at_smem;                                    /* [AT_Q][D] */
    __half2 *ks = (__half2 *)(at_smem + AT_Q * D * 4);               /* [AT_K][ldk] */
    __half2 *vs = ks + AT_K * ldk;                                   /* [AT_K][D2] */
    const int t0 = blockIdx.x * AT_Q, h = blockIdx.y;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t P0 = *p.pos;
    const int t_last = min(t0 + AT_Q, n_tok) - 1;
    const int64_t jhi = P0 + t_last;
    const int64_t jlo = p.window && P0 + t0 + 1 > (int64_t)p.window ? P0 + t0 + 1 - p.window : 0;
    const int64_t koff = (int64_t)(h / p.group) * D;

    for (int i = threadIdx.x; i < AT_Q * D; i += blockDim.x) {
        int qi = i / D, d = i % D;
        qs[i] = t0 + qi < n_tok ? p.q[((int64_t)(t0 + qi) * p.n_head + h) * D + d] : 0.0f;
    }
    float m[4], l[4], acc[4][ATT_MAX_DL];
#pragma unroll
    for (int qi = 0; qi < 4; qi++) {
        m[qi] = -INFINITY, l[qi] = 0.0f;
#pragma unroll
        for (int i = 0; i < ATT_MAX_DL; i++)
            acc[qi][i] = 0.0f;
    }
    for (int64_t jt = jlo; jt <= jhi; jt += AT_K) {
        __syncthreads(); /* previous tile fully used (and qs written, first time) */
        for (int i = threadIdx.x; i < AT_K * D2; i += blockDim.x) {
            int jj = i / D2, dd = i % D2;
            int64_t j = jt + jj;
            __half2 kv = __float2half2_rn(0.0f), vv = kv;
            if (j <= jhi) {
                kv = *(const __half2 *)(p.kc + j * p.kv_width + koff + 2 * dd);
                vv = *(const __half2 *)(p.vc + j * p.kv_width + koff + 2 * dd);
            }
            ks[jj * ldk + dd] = kv;
            vs[jj * D2 + dd] = vv;
        }
        __syncthreads();
        const int64_t j = jt + lane;
#pragma unroll
        for (int qi = 0; qi < 4; qi++) {
            const int qrow = warp * 4 + qi, t = t0 + qrow;
            if (t >= n_tok)
                break;
            const int64_t pt = P0 + t;
            const int64_t lo = p.window && pt + 1 > (int64_t)p.window ? pt + 1 - p.window : 0;
            const bool valid = j <= pt && j >= lo;
            const float2 *q2 = (const float2 *)(qs + qrow * D);
            float sc = 0.0f;
            for (int dd = 0; dd < D2; dd++) {
                float2 kf = __half22float2(ks[lane * ldk + dd]), qf = q2[dd];
                sc = fmaf(qf.x, kf.x, fmaf(qf.y, kf.y, sc));
            }
            sc = valid ? sc * p.scale : -INFINITY;
            float tmax = warp_max(sc);
            if (tmax == -INFINITY)
                continue;
            float mn = fmaxf(m[qi], tmax), corr = expf(m[qi] - mn);
            float pj = valid ? expf(sc - mn) : 0.0f;
            l[qi] = l[qi] * corr + warp_sum(pj);
#pragma unroll
            for (int i = 0; i < ATT_MAX_DL; i++)
                acc[qi][i] *= corr;
            for (int jj = 0; jj < AT_K; jj++) {
                float w = __shfl_sync(0xffffffffu, pj, jj);
                const __half *vr = (const __half *)(vs + jj * D2);
#pragma unroll
                for (int i = 0; i < ATT_MAX_DL; i++)
                    if (i < p.dl)
                        acc[qi][i] = fmaf(w, __half2float(vr[lane + 32 * i]), acc[qi][i]);
            }
            m[qi] = mn;
        }
    }
#pragma unroll
    for (int qi = 0; qi < 4; qi++) {
        const int t = t0 + warp * 4 + qi;
        if (t >= n_tok)
            break;
        float *o = out + ((int64_t)t * p.n_head + h) * D;
#pragma unroll
        for (int i = 0; i < ATT_MAX_DL; i++)
            if (i < p.dl)
                o[lane + 32 * i] = acc[qi][i] / l[qi];
    }
}

static size_t attn_tile_smem(int D)
{
    return (size_t)AT_Q * D * 4 + (size_t)AT_K * (D / 2 + 1) * 4 + (size_t)AT_K * D * 2;
}

extern "C" int cuda_attn_pick_split(int n_tok, int n_head, int64_t n_ctx, int n_sm)
{
    int64_t base = (int64_t)(n_tok > 0 ? n_tok : 1) * (n_head > 0 ? n_head : 1);
    int64_t want = (4 * (int64_t)(n_sm > 0 ? n_sm : 1) + base - 1) / base;
    int64_t cap = (n_ctx + 63) / 64; /* at least ~64 positions per split */
    if (want > cap)
        want = cap;
    if (want > CUDA_ATTN_MAX_SPLIT)
        want = CUDA_ATTN_MAX_SPLIT;
    return want < 1 ? 1 : (int)want;
}

extern "C" size_t cuda_attn_ws_bytes(const struct cuda_attn_args *a)
{
    return (size_t)a->n_tok * (size_t)a->n_head * (size_t)a->n_split *
           ((size_t)a->head_dim + 2u) * sizeof(float);
}

extern "C" hearth_status cuda_attention(const struct cuda_attn_args *a, void *d_ws, void *stream)
{
    if (a->n_tok <= 0)
        return HEARTH_OK;
    if (a->head_dim % 32 != 0 || a->head_dim > 32 * ATT_MAX_DL || a->n_head_kv < 1 ||
        a->n_head % a->n_head_kv != 0 || a->n_split < 1 || a->n_split > CUDA_ATTN_MAX_SPLIT ||
        a->n_tok > 65535)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "cuda_attention: head_dim %d (multiple of 32, <= 256), heads %d/%d, "
                       "n_split %d, n_tok %d", a->head_dim, a->n_head, a->n_head_kv,
                       a->n_split, a->n_tok);
    att_params p;
    p.q = a->d_q;
    p.kc = (const __half *)a->d_k_cache;
    p.vc = (const __half *)a->d_v_cache;
    p.ws = (float *)d_ws;
    p.pos = a->d_pos;
    p.n_head = a->n_head;
    p.group = a->n_head / a->n_head_kv;
    p.hd = a->head_dim;
    p.dl = a->head_dim / 32;
    p.n_split = a->n_split;
    p.kv_width = a->kv_stride ? a->kv_stride : (int64_t)a->n_head_kv * a->head_dim;
    p.scale = a->scale;
    p.window = a->window;
    cudaStream_t s = CUDA_STREAM(stream);
    if (a->n_split == 1 && a->n_tok >= CUDA_ATTN_TILED_MIN_TOK) {
        size_t smem = attn_tile_smem(a->head_dim);
        cudaError_t e = cudaFuncSetAttribute(attn_tile_kernel,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess)
            return cuda__fail(e, "cudaFuncSetAttribute(attn_tile_kernel)", __FILE__, __LINE__);
        attn_tile_kernel<<<dim3(cuda__blocks(a->n_tok, AT_Q), (unsigned)a->n_head), 128, smem,
                           s>>>(p, a->n_tok, a->d_out);
        CUDA_RETURN_LAUNCH();
    }
    attn_split_kernel<<<dim3((unsigned)a->n_split, (unsigned)a->n_head, (unsigned)a->n_tok),
                        ATT_WARPS * 32, 0, s>>>(p);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return cuda__fail(e, "attn_split_kernel", __FILE__, __LINE__);
    attn_combine_kernel<<<dim3((unsigned)a->n_head, (unsigned)a->n_tok), 128, 0, s>>>(
        (const float *)d_ws, a->d_out, a->n_head, a->head_dim, a->n_split);
    CUDA_RETURN_LAUNCH();
}
