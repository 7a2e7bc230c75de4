/*
 * cuda/attention-kvq: K/V store into a compressed KV cache (core/kv-quant.h
 * formats f16, q8_0, q4_0, rot4, rot3) and attention over it, for any
 * (K type, V type) pair. The all-f16 cache keeps the faster kernels of
 * attention.cu; the backend sends every other pair here, and every
 * ring-only layer (f16/f16 included, see below).
 *
 * Store: one block per (token, KV head, K or V) encodes one head vector the
 * way kvq_encode does, with the same float operations in the same order, so
 * the bytes equal the CPU's: every multiply/add that the reference does in
 * float or double is written with an explicit-rounding intrinsic (__fmul_rn,
 * __dadd_rn, ...) so nvcc cannot contract it into an FMA, and every sum the
 * reference accumulates sequentially (the scale fit's Σy², Σy·c, Σc²) is
 * accumulated sequentially by one thread after the block has computed the
 * terms in parallel. That costs ~12 serial passes of head_dim adds per vector
 * (microseconds per layer at decode); a tree reduction would be faster but
 * would move the fitted scale by an ulp now and then and lose byte equality,
 * which is what the tests check. The rotation's ±1 signs come from the host
 * (kvq_rot_init, uploaded once per layer by the backend) and the codebooks
 * from kvq_codebook_get, so neither is restated here.
 *
 * Attention: one block per (query head, token, piece), keys and values in
 * tiles of KQ_TILE positions staged as encoded bytes in shared memory and
 * decoded per element; online softmax across tiles. Flash-decoding as
 * attention.cu's: [lo, p] is cut into n_split equal pieces on the device
 * (from *pos, so the grid is position-independent); with n_split > 1 each
 * block writes its unnormalised (m, l, acc[hd]) to the caller's scratch and
 * kq_combine_kernel merges them by log-sum-exp weights. n_split == 1 is the
 * single pass it always was, bit for bit (the tests compare it to the CPU).
 * For a rotated K the query is rotated once (q.k = Rq.Rk); for a rotated V
 * the output is accumulated in the rotated domain and rotated back once (R^T
 * is linear), after the merge when split. Masks as attention.cu: positions
 * [lo, p], lo = window ? max(0, p - window + 1) : 0.
 * Key centring (k_type != f16, core/backend.h ATTENTION step 3): before the
 * store, kq_center_kernel (one thread per coordinate of the KV row) forms the
 * mean when the batch writes position 0, as cpu_kvq_key_center does: a
 * double sum in token order with explicit-rounding intrinsics, one division
 * in double, one rounding to float, so mu and the centred keys equal the
 * CPU's bit for bit; it writes mu and the sink into k_aux and centres k in
 * place. Attention scores position 0 with the sink (rotated like the query
 * for a rotated K) instead of decoding cache row 0.
 * Exact window (kv_window W > 0, core/backend.h ATTENTION step 5): after the
 * store, kq_exact_kernel writes the batch's K and V rows in the attention's
 * domain rounded to f16 (the rotation is kq_store_rot's, so the halves equal
 * the CPU ring's) into the caller's scratch; the attention kernel reads a
 * position j > p - W from there (j >= pos0) or from the ring when its tag
 * holds j, else decodes; kq_ring_kernel then writes the batch's last
 * min(W, n_tok) rows into the ring. The ring is written last because a batch
 * longer than one token overwrites slots its earlier tokens still read.
 * Ring-only layer (core/backend.h ATTENTION step 6: no caches, window > 0,
 * kv_window >= window): kq_setup checks the preconditions, the store kernel
 * is not launched, and the attention kernel stages no cache rows: every
 * position in [lo, p] is then > p - W, so it reads the batch's rows or a ring
 * slot the caller keeps tagged, never a decoded row. Any pair, f16/f16
 * included (the backend sends such a layer here, not to attention.cu): then
 * nothing is centred or rotated and the ring rows are k and v as f16.
 * Not yet (performance, not results): per-type template kernels instead of
 * the per-element type switch, one K/V tile shared by a GQA group.
 */
#include <math.h>

#include "common.cuh"

extern "C" {
#include "cpu/attn-kvq.h" /* CPU_KVQ_MEAN_SKIP / CPU_KVQ_MEAN_N: the mean's token range */
#include "kv-quant.h"
}

#define KQ_MAX_D 256     /* head_dim limit, as attention.cu */
#define KQ_THREADS 128   /* 4 warps per block, both kernels */
#define KQ_TILE 32       /* positions per shared-memory tile */
#define KQ_MAX_HB 512    /* bytes of the largest head vector (f16, d = 256) */

/* Codebooks of kv-codebook.c, copied by value into the launch arguments. */
struct kq_books {
    float l4[16], t4[15], l3[8], t3[7];
};

struct kq_params {
    const float *q, *k, *v; /* F32 [n_tok][heads * hd] */
    uint8_t *kc, *vc;       /* cache rows, k_stride / v_stride bytes apart */
    size_t k_stride, v_stride;
    float *out;             /* F32 [n_tok][n_head * hd] */
    const int32_t *pos;     /* device int: position of token 0 */
    const float *sign;      /* [hd] ±1 diagonal of the rotation, or NULL */
    const float *sink;      /* [n_head_kv * hd] centred key of position 0 (k_aux row 1), or NULL */
    int kt, vt, n_head, n_head_kv, group, hd, n_piece;
    int kb, vb;             /* bytes of one encoded head vector of K / V */
    float scale;
    uint32_t window;
    kq_books cb;
    /* the exact window (0: none): scratch [2][n_tok][kv] halves, rings, tags */
    uint32_t xw;
    int n_tok;
    const uint16_t *xs;
    uint16_t *kr, *vr;
    int64_t r_stride;  /* halves between ring slots */
    int32_t *rpos;
    /* the sequence split: pieces per (head, token), and their partials when > 1 */
    int n_split;
    float *part;
};

/* ---- shared helpers ------------------------------------------------------ */

/*
 * The power-of-two piece holding coordinate i of a d-wide head vector: the
 * greedy largest-first split of kvq_rot_init (96 = 64 + 32).
 */
__device__ __forceinline__ void kq_piece(int d, int i, int *off, int *len, int *idx)
{
    int o = 0, p = 0;
    for (int l = KVQ_MAX_HEAD_DIM; l >= 32; l >>= 1) {
        if (d - o >= l) {
            if (i < o + l) {
                *off = o, *len = l, *idx = p;
                return;
            }
            o += l;
            p++;
        }
    }
    *off = o, *len = 32, *idx = p; /* not reached for i < d */
}

/*
 * x[d] (shared) = per-piece Walsh-Hadamard butterfly, then * 1/sqrt(len):
 * the same pairs combined in the same stages as kvq_fwht, so each value is
 * bit-identical to the CPU's. Block-wide; x must be complete on entry.
 */
__device__ void kq_fwht(float *x, int d)
{
    for (int h = 1; h < d; h <<= 1) {
        __syncthreads();
        for (int i = threadIdx.x; i < d; i += blockDim.x) {
            int off, len, p;
            kq_piece(d, i, &off, &len, &p);
            if (h < len && !((i - off) & h)) {
                float a = x[i], b = x[i + h];
                x[i] = __fadd_rn(a, b);
                x[i + h] = __fsub_rn(a, b);
            }
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        int off, len, p;
        kq_piece(d, i, &off, &len, &p);
        x[i] = __fmul_rn(x[i], __fdiv_rn(1.0f, __fsqrt_rn((float)len)));
    }
    __syncthreads();
}

__device__ __forceinline__ float kq_f16(const uint8_t *p)
{
    return __half2float(__ushort_as_half((uint16_t)(p[0] | (p[1] << 8))));
}

/*
 * One 16-bit store; p is even (kq_setup checks the rows, every field of every
 * format sits at an even offset). Not two byte stores: ptxas 13.0 compiled
 * the low byte's st.u8 of the register cvt.rn.f16.f32 wrote as
 * F2I.U8.F16.TRUNC, the half's value truncated to an integer, so every half
 * this file stored on an H100 had a low byte of 0..4 (bench/RESULTS.md,
 * 2026-11-23). scripts/check-sass.sh keeps that instruction out of the build.
 */
__device__ __forceinline__ void kq_put_f16(uint8_t *p, float v)
{
    *reinterpret_cast<uint16_t *>(p) = __half_as_ushort(__float2half_rn(v));
}

/* quant-legacy.c's q_round: x + 0.5 rounded to float, then truncated. */
__device__ __forceinline__ int kq_round(float x)
{
    return x >= 0.0f ? (int)__fadd_rn(x, 0.5f) : (int)__fsub_rn(x, 0.5f);
}

/* ---- store --------------------------------------------------------------- */

/* f16: plain halves (round to nearest even, as f32_to_f16). */
__device__ void kq_store_f16(const float *x, uint8_t *dst, int d)
{
    for (int i = threadIdx.x; i < d; i += blockDim.x)
        kq_put_f16(dst + 2 * i, x[i]);
}

/* q8_0, one warp per 32-value block: d = amax / 127, codes round(x / d). */
__device__ void kq_store_q8_0(const float *x, uint8_t *dst, int d)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int b = warp; b < d / 32; b += nw) {
        float v = x[32 * b + lane];
        float amax = warp_max(fabsf(v)); /* max is exact: any order gives the CPU's */
        float sc = __fdiv_rn(amax, 127.0f);
        float id = sc != 0.0f ? __fdiv_rn(1.0f, sc) : 0.0f;
        int q = kq_round(fminf(fmaxf(__fmul_rn(v, id), -127.0f), 127.0f));
        uint8_t *blk = dst + 34 * b;
        blk[2 + lane] = (uint8_t)(int8_t)q;
        if (lane == 0)
            kq_put_f16(blk, sc);
    }
}

/*
 * q4_0, one warp per block: the value of largest magnitude with its sign
 * (first index on ties, as signed_absmax) maps to -8; element e goes to the
 * low nibble of byte e for e < 16, the high nibble of byte e - 16 otherwise.
 */
__device__ void kq_store_q4_0(const float *x, uint8_t *dst, int d)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int b = warp; b < d / 32; b += nw) {
        float v = x[32 * b + lane];
        float a = fabsf(v), m = v;
        int idx = lane;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            float oa = __shfl_xor_sync(0xffffffffu, a, o);
            float om = __shfl_xor_sync(0xffffffffu, m, o);
            int oi = __shfl_xor_sync(0xffffffffu, idx, o);
            if (oa > a || (oa == a && oi < idx))
                a = oa, m = om, idx = oi;
        }
        if (!(a > 0.0f))
            m = 0.0f; /* the CPU keeps its initial 0 when nothing beats |x| = 0 */
        float sc = __fdiv_rn(m, -8.0f);
        float id = sc != 0.0f ? __fdiv_rn(1.0f, sc) : 0.0f;
        int q = kq_round(fminf(fmaxf(__fmul_rn(v, id), -8.0f), 7.0f)) + 8;
        q = q < 0 ? 0 : (q > 15 ? 15 : q);
        int hi = __shfl_sync(0xffffffffu, q, (lane + 16) & 31);
        uint8_t *blk = dst + 18 * b;
        if (lane < 16)
            blk[2 + lane] = (uint8_t)(q | (hi << 4));
        if (lane == 0)
            kq_put_f16(blk, sc);
    }
}

/* Nearest level's index (ties to the lower), the unrolled search of kv-quant.c's fit_pass. */
__device__ __forceinline__ int kq_index(const float *t, int bits, float x)
{
    int c;
    if (bits == 4) {
        c = x > t[7] ? 8 : 0;
        c += x > t[c + 3] ? 4 : 0;
    } else {
        c = x > t[3] ? 4 : 0;
    }
    c += x > t[c + 1] ? 2 : 0;
    c += x > t[c] ? 1 : 0;
    return c;
}

struct kq_fit_smem {
    float pa[KQ_MAX_D], pb[KQ_MAX_D]; /* terms y·level and level² of one pass */
    float yc, cc;
    double ss;
};

/*
 * One quantization pass of piece y[0..len) at scale s (kv-quant.c fit_pass):
 * codes into code[0..len), returns the least-squares scale Σyc/Σc² and sets
 * *err = Σy² - (Σyc)²/Σc². Block-wide; every thread gets the same values.
 */
__device__ double kq_pass(const float *y, int len, double ss, double s, const float *lv,
                          const float *th, int bits, uint8_t *code, kq_fit_smem *f, double *err)
{
    const float inv = __double2float_rn(__ddiv_rn(1.0, s));
    for (int i = threadIdx.x; i < len; i += blockDim.x) {
        int c = kq_index(th, bits, __fmul_rn(y[i], inv));
        code[i] = (uint8_t)c;
        f->pa[i] = __fmul_rn(y[i], lv[c]);
        f->pb[i] = __fmul_rn(lv[c], lv[c]);
    }
    __syncthreads();
    /* the reference sums in float, in index order: two threads, two sums at once */
    if (threadIdx.x == 0) {
        float acc = 0.0f;
        for (int i = 0; i < len; i++)
            acc = __fadd_rn(acc, f->pa[i]);
        f->yc = acc;
    } else if (threadIdx.x == 32) {
        float acc = 0.0f;
        for (int i = 0; i < len; i++)
            acc = __fadd_rn(acc, f->pb[i]);
        f->cc = acc;
    }
    __syncthreads();
    const double yc = (double)f->yc, cc = (double)f->cc;
    *err = __dsub_rn(ss, __ddiv_rn(__dmul_rn(yc, yc), cc));
    return __ddiv_rn(yc, cc);
}

/*
 * Scale and codes of one piece (kv-quant.c best_scale): 8 trial scales over
 * [0.8, 1.22] x RMS, then two refit rounds from the best, then the pass at
 * the winning input scale. Returns the scale (0 for a zero piece).
 */
__device__ double kq_fit(const float *y, int len, const float *lv, const float *th, int bits,
                         uint8_t *code, kq_fit_smem *f)
{
    if (threadIdx.x == 0) {
        double ss = 0.0;
        for (int i = 0; i < len; i++)
            ss = __dadd_rn(ss, __dmul_rn((double)y[i], (double)y[i]));
        f->ss = ss;
    }
    __syncthreads();
    const double ss = f->ss;
    if (!(ss > 0.0))
        return 0.0;
    const double rms = __dsqrt_rn(__ddiv_rn(ss, (double)len));
    double best = INFINITY, best_in = rms, cur = rms, err;
    for (int g = 0; g < 8; g++) {
        double s_in = __dmul_rn(rms, __dadd_rn(0.8, __dmul_rn(0.06, (double)g)));
        double fit = kq_pass(y, len, ss, s_in, lv, th, bits, code, f, &err);
        if (err < best) {
            best = err;
            best_in = s_in;
            cur = fit;
        }
    }
    for (int round = 0; round < 2; round++) {
        double fit = kq_pass(y, len, ss, cur, lv, th, bits, code, f, &err);
        if (err < best) {
            best = err;
            best_in = cur;
        }
        cur = fit;
    }
    return kq_pass(y, len, ss, best_in, lv, th, bits, code, f, &err);
}

/*
 * rot4 / rot3: y = R x (signs, butterfly), per piece the fitted f16 scale,
 * then the codes: 4 bits two per byte (even coordinate low), 3 bits eight per
 * 24-bit little-endian word (coordinate i at bits 3i..3i+2 of its word).
 */
__device__ void kq_store_rot(const kq_params &p, int bits, const float *x, uint8_t *dst,
                             float *y, uint8_t *code, kq_fit_smem *f, const float *lv,
                             const float *th)
{
    const int d = p.hd;
    for (int i = threadIdx.x; i < d; i += blockDim.x)
        y[i] = __fmul_rn(x[i], p.sign[i]);
    kq_fwht(y, d);
    int off = 0, piece = 0;
    for (int len = KVQ_MAX_HEAD_DIM; len >= 32; len >>= 1) {
        if (d - off < len)
            continue;
        double s = kq_fit(y + off, len, lv, th, bits, code + off, f);
        __syncthreads(); /* every thread has read f before the next piece reuses it */
        if (!(s > 0.0)) {
            s = 0.0;
            for (int i = threadIdx.x; i < len; i += blockDim.x)
                code[off + i] = 0;
        }
        if (threadIdx.x == 0)
            kq_put_f16(dst + 2 * piece, __double2float_rn(fmin(s, 65504.0)));
        off += len;
        piece++;
    }
    __syncthreads();
    uint8_t *codes = dst + 2 * p.n_piece;
    if (bits == 4) {
        for (int i = threadIdx.x; i < d / 2; i += blockDim.x)
            codes[i] = (uint8_t)(code[2 * i] | (code[2 * i + 1] << 4));
    } else {
        for (int g = threadIdx.x; g < d / 8; g += blockDim.x) {
            uint32_t w = 0;
            for (int k = 0; k < 8; k++)
                w |= (uint32_t)code[8 * g + k] << (3 * k);
            codes[3 * g] = (uint8_t)(w & 0xffu);
            codes[3 * g + 1] = (uint8_t)((w >> 8) & 0xffu);
            codes[3 * g + 2] = (uint8_t)(w >> 16);
        }
    }
}

/* Block (token, KV head, 0 = K / 1 = V): encodes one head vector into its cache row. */
static __global__ void __launch_bounds__(KQ_THREADS) kq_store_kernel(const kq_params p)
{
    __shared__ float y[KQ_MAX_D];
    __shared__ uint8_t code[KQ_MAX_D];
    __shared__ kq_fit_smem f;
    __shared__ float lv[16], th[15];
    const int t = blockIdx.x, hk = blockIdx.y, is_v = blockIdx.z;
    const int type = is_v ? p.vt : p.kt;
    const int64_t row = (int64_t)*p.pos + t;
    const float *x = (is_v ? p.v : p.k) + ((int64_t)t * p.n_head_kv + hk) * p.hd;
    uint8_t *dst = is_v ? p.vc + (size_t)row * p.v_stride + (size_t)hk * (size_t)p.vb
                        : p.kc + (size_t)row * p.k_stride + (size_t)hk * (size_t)p.kb;
    switch (type) {
    case KVQ_F16:
        kq_store_f16(x, dst, p.hd);
        break;
    case KVQ_Q8_0:
        kq_store_q8_0(x, dst, p.hd);
        break;
    case KVQ_Q4_0:
        kq_store_q4_0(x, dst, p.hd);
        break;
    case KVQ_ROT4:
    case KVQ_ROT3: {
        const int bits = type == KVQ_ROT4 ? 4 : 3;
        if (threadIdx.x < 16)
            lv[threadIdx.x] = bits == 4 ? p.cb.l4[threadIdx.x] : p.cb.l3[threadIdx.x & 7];
        if (threadIdx.x < 15)
            th[threadIdx.x] = bits == 4 ? p.cb.t4[threadIdx.x] : p.cb.t3[threadIdx.x % 7];
        __syncthreads();
        kq_store_rot(p, bits, x, dst, y, code, &f, lv, th);
        break;
    }
    default:
        break;
    }
}

/* ---- attention ----------------------------------------------------------- */

/*
 * Value of coordinate c of an encoded head vector in its stored domain (the
 * rotated one for rot4/rot3): what kvq_decode (or kvq_decode_rotated) gives.
 */
__device__ __forceinline__ float kq_elem(int type, const uint8_t *row, int d, int n_piece, int c,
                                         const float *l4, const float *l3)
{
    switch (type) {
    case KVQ_F16:
        return kq_f16(row + 2 * c);
    case KVQ_Q8_0: {
        const uint8_t *blk = row + 34 * (c >> 5);
        return kq_f16(blk) * (float)(int8_t)blk[2 + (c & 31)];
    }
    case KVQ_Q4_0: {
        const uint8_t *blk = row + 18 * (c >> 5);
        const int e = c & 31;
        const uint8_t b = blk[2 + (e & 15)];
        return kq_f16(blk) * (float)((e < 16 ? (b & 15) : (b >> 4)) - 8);
    }
    case KVQ_ROT4: {
        int off, len, pi;
        kq_piece(d, c, &off, &len, &pi);
        const uint8_t b = row[2 * n_piece + (c >> 1)];
        return kq_f16(row + 2 * pi) * l4[(c & 1) ? (b >> 4) : (b & 15)];
    }
    case KVQ_ROT3: {
        int off, len, pi;
        kq_piece(d, c, &off, &len, &pi);
        const uint8_t *codes = row + 2 * n_piece;
        const int bit = 3 * c, sh = bit & 7; /* 24 * (c / 8) + 3 * (c % 8) == 3c */
        uint32_t w = codes[bit >> 3];
        if (sh > 5) /* the code runs into the next byte (still inside this group's 3) */
            w |= (uint32_t)codes[(bit >> 3) + 1] << 8;
        return kq_f16(row + 2 * pi) * l3[(w >> sh) & 7u];
    }
    default:
        return 0.0f;
    }
}

/*
 * Block (query head, token, piece): out = softmax(scale q.K) V over the
 * piece's part of [lo, p]; with n_split > 1 the unnormalised (m, l, acc)
 * go to p.part for kq_combine_kernel instead.
 */
static __global__ void __launch_bounds__(KQ_THREADS) kq_attn_kernel(const kq_params p)
{
    __shared__ uint16_t ks[KQ_TILE * KQ_MAX_HB / 2], vs[KQ_TILE * KQ_MAX_HB / 2];
    __shared__ float qs[KQ_MAX_D], os[KQ_MAX_D], sks[KQ_MAX_D];
    __shared__ float sc[KQ_TILE], pw[KQ_TILE];
    __shared__ float l4[16], l3[8];
    __shared__ float sm_corr, sm_l;
    __shared__ const uint16_t *xk[KQ_TILE], *xv[KQ_TILE]; /* exact rows (step 5), or NULL */
    const int h = blockIdx.x, t = blockIdx.y, sp = blockIdx.z, D = p.hd;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const int hk = h / p.group;
    const int64_t pp = (int64_t)*p.pos + t;
    const int64_t lo = p.window && pp + 1 > (int64_t)p.window ? pp + 1 - p.window : 0;
    /* the piece [j0, j1) as attention.cu cuts it; n_split == 1: [lo, pp] */
    const int64_t len = pp - lo + 1, chunk = (len + p.n_split - 1) / p.n_split;
    const int64_t j0 = lo + sp * chunk, j1 = min(pp + 1, j0 + chunk);
    const bool k_rot = p.kt == KVQ_ROT4 || p.kt == KVQ_ROT3;
    const bool v_rot = p.vt == KVQ_ROT4 || p.vt == KVQ_ROT3;

    if (threadIdx.x < 16)
        l4[threadIdx.x] = p.cb.l4[threadIdx.x];
    if (threadIdx.x < 8)
        l3[threadIdx.x] = p.cb.l3[threadIdx.x];
    const float *q = p.q + ((int64_t)t * p.n_head + h) * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        qs[i] = k_rot ? __fmul_rn(q[i], p.sign[i]) : q[i];
    if (k_rot)
        kq_fwht(qs, D); /* syncs on entry and exit */
    const bool use_sink = p.sink && j0 == 0; /* uniform over the block; only piece 0 */
    if (use_sink) {
        const float *sk = p.sink + (int64_t)hk * D;
        for (int i = threadIdx.x; i < D; i += blockDim.x)
            sks[i] = k_rot ? __fmul_rn(sk[i], p.sign[i]) : sk[i];
        if (k_rot)
            kq_fwht(sks, D);
        __syncthreads();
    }

    float acc[KQ_MAX_D / KQ_THREADS];
#pragma unroll
    for (int k = 0; k < KQ_MAX_D / KQ_THREADS; k++)
        acc[k] = 0.0f;
    float m = -INFINITY, l = 0.0f; /* running max and normalizer, kept by warp 0 */
    const int kw = p.kb / 2, vw = p.vb / 2; /* u16 words per head vector */
    for (int64_t jt = j0; jt < j1; jt += KQ_TILE) {
        const int nv = (int)min((int64_t)KQ_TILE, j1 - jt);
        __syncthreads(); /* the previous tile is consumed (and qs, l4, l3 written) */
        /* a ring-only layer (no caches) never needs a decoded row: nothing to stage */
        for (int i = threadIdx.x; p.kc && i < nv * kw; i += blockDim.x) {
            const int jj = i / kw, w = i % kw;
            const uint8_t *r = p.kc + (size_t)(jt + jj) * p.k_stride + (size_t)hk * p.kb;
            ks[i] = ((const uint16_t *)r)[w];
        }
        for (int i = threadIdx.x; p.vc && i < nv * vw; i += blockDim.x) {
            const int jj = i / vw, w = i % vw;
            const uint8_t *r = p.vc + (size_t)(jt + jj) * p.v_stride + (size_t)hk * p.vb;
            vs[i] = ((const uint16_t *)r)[w];
        }
        for (int jj = threadIdx.x; jj < nv; jj += blockDim.x) {
            const int64_t j = jt + jj, kv = (int64_t)p.n_head_kv * D;
            const uint16_t *ek = NULL, *ev = NULL;
            if (p.xw && j + p.xw > pp) {
                const int64_t pos0 = pp - t, sl = j % p.xw;
                if (j >= pos0) {
                    ek = p.xs + (j - pos0) * kv;
                    ev = p.xs + ((int64_t)p.n_tok + j - pos0) * kv;
                } else if (p.rpos[sl] == j) {
                    ek = p.kr + sl * p.r_stride;
                    ev = p.vr + sl * p.r_stride;
                }
            }
            xk[jj] = ek ? ek + (int64_t)hk * D : NULL;
            xv[jj] = ev ? ev + (int64_t)hk * D : NULL;
        }
        __syncthreads();
        for (int jj = warp; jj < KQ_TILE; jj += nw) {
            float s = 0.0f;
            if (jj < nv && use_sink && jt + jj == 0) {
                for (int c = lane; c < D; c += 32)
                    s = fmaf(qs[c], sks[c], s);
            } else if (jj < nv && xk[jj]) {
                for (int c = lane; c < D; c += 32)
                    s = fmaf(qs[c], __half2float(__ushort_as_half(xk[jj][c])), s);
            } else if (jj < nv) {
                const uint8_t *kr = (const uint8_t *)(ks + jj * kw);
                for (int c = lane; c < D; c += 32)
                    s = fmaf(qs[c], kq_elem(p.kt, kr, D, p.n_piece, c, l4, l3), s);
            }
            s = warp_sum(s);
            if (lane == 0)
                sc[jj] = jj < nv ? s * p.scale : -INFINITY;
        }
        __syncthreads();
        if (warp == 0) {
            const float s = sc[lane];
            const float mn = fmaxf(m, warp_max(s)); /* finite: position jt is valid */
            const float e = lane < nv ? expf(s - mn) : 0.0f;
            const float corr = expf(m - mn); /* 0 on the first tile (m = -inf) */
            l = l * corr + warp_sum(e);
            m = mn;
            pw[lane] = e;
            if (lane == 0)
                sm_corr = corr, sm_l = l;
        }
        __syncthreads();
        const float corr = sm_corr;
#pragma unroll
        for (int k = 0; k < KQ_MAX_D / KQ_THREADS; k++) {
            const int c = threadIdx.x + k * KQ_THREADS;
            if (c < D) {
                float a = acc[k] * corr;
                for (int jj = 0; jj < nv; jj++)
                    a = fmaf(pw[jj],
                             xv[jj] ? __half2float(__ushort_as_half(xv[jj][c]))
                                    : kq_elem(p.vt, (const uint8_t *)(vs + jj * vw), D,
                                              p.n_piece, c, l4, l3),
                             a);
                acc[k] = a;
            }
        }
    }
    if (p.n_split > 1) { /* uniform: no barrier below is skipped by only some threads */
        float *w = p.part + (((int64_t)t * p.n_head + h) * p.n_split + sp) * (D + 2);
#pragma unroll
        for (int k = 0; k < KQ_MAX_D / KQ_THREADS; k++) {
            const int c = threadIdx.x + k * KQ_THREADS;
            if (c < D)
                w[2 + c] = acc[k];
        }
        if (threadIdx.x == 0) /* warp 0 keeps m, l; an empty piece writes -inf, 0 */
            w[0] = m, w[1] = l;
        return;
    }
    __syncthreads();
    const float inv_l = 1.0f / sm_l;
    float *o = p.out + ((int64_t)t * p.n_head + h) * D;
#pragma unroll
    for (int k = 0; k < KQ_MAX_D / KQ_THREADS; k++) {
        const int c = threadIdx.x + k * KQ_THREADS;
        if (c < D) {
            if (v_rot)
                os[c] = acc[k] * inv_l;
            else
                o[c] = acc[k] * inv_l;
        }
    }
    if (v_rot) {
        kq_fwht(os, D); /* R^T = D H / sqrt(len): butterfly, then the signs */
        for (int i = threadIdx.x; i < D; i += blockDim.x)
            o[i] = os[i] * p.sign[i];
    }
}

/*
 * Block (query head, token): merges the n_split partials of kq_attn_kernel
 * with log-sum-exp weights as attention.cu's attn_combine_kernel does, then
 * normalises and, for a rotated V, rotates back once as kq_attn_kernel's
 * unsplit end does (R^T is linear, so after the merge is the same).
 */
static __global__ void __launch_bounds__(KQ_THREADS) kq_combine_kernel(const kq_params p)
{
    __shared__ float os[KQ_MAX_D], wt[CUDA_ATTN_MAX_SPLIT];
    __shared__ float sm_inv;
    const int h = blockIdx.x, t = blockIdx.y, D = p.hd, S = p.n_split;
    const bool v_rot = p.vt == KVQ_ROT4 || p.vt == KVQ_ROT3;
    const float *part = p.part + ((int64_t)t * p.n_head + h) * S * (D + 2);
    if (threadIdx.x == 0) {
        float M = -INFINITY, L = 0.0f; /* M finite: piece 0 is never empty */
        for (int s = 0; s < S; s++)
            M = fmaxf(M, part[s * (D + 2)]);
        for (int s = 0; s < S; s++) {
            const float ms = part[s * (D + 2)];
            wt[s] = ms == -INFINITY ? 0.0f : expf(ms - M);
            L += part[s * (D + 2) + 1] * wt[s];
        }
        sm_inv = 1.0f / L;
    }
    __syncthreads();
    const float inv_l = sm_inv;
    float *o = p.out + ((int64_t)t * p.n_head + h) * D;
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
        float a = 0.0f;
        for (int s = 0; s < S; s++)
            a += part[s * (D + 2) + 2 + c] * wt[s];
        if (v_rot)
            os[c] = a * inv_l;
        else
            o[c] = a * inv_l;
    }
    if (v_rot) {
        kq_fwht(os, D); /* syncs on entry: os is complete */
        for (int i = threadIdx.x; i < D; i += blockDim.x)
            o[i] = os[i] * p.sign[i];
    }
}

/*
 * Thread d of the KV row (kv = n_head_kv * hd floats): the key-centring step
 * of cpu_kvq_key_center for one coordinate. k: [n_tok][kv] packed; aux: k_aux
 * rows 0 (mu) and 1 (sink), aux_stride floats apart.
 */
static __global__ void __launch_bounds__(KQ_THREADS)
    kq_center_kernel(float *k, float *aux, int64_t aux_stride, const int32_t *pos, int n_tok,
                     int kv)
{
    const int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= kv)
        return;
    const bool first = *pos == 0;
    float mu;
    if (first) {
        const int hi = n_tok < CPU_KVQ_MEAN_N ? n_tok : CPU_KVQ_MEAN_N;
        double sum = 0.0;
        for (int i = CPU_KVQ_MEAN_SKIP; i < hi; i++)
            sum = __dadd_rn(sum, (double)k[(int64_t)i * kv + d]);
        mu = hi > CPU_KVQ_MEAN_SKIP
                 ? __double2float_rn(__ddiv_rn(sum, (double)(hi - CPU_KVQ_MEAN_SKIP)))
                 : 0.0f;
        aux[d] = mu;
    } else {
        mu = aux[d];
    }
    for (int t = 0; t < n_tok; t++)
        k[(int64_t)t * kv + d] = __fsub_rn(k[(int64_t)t * kv + d], mu);
    if (first)
        aux[aux_stride + d] = k[d];
}

/* ---- the exact window ---------------------------------------------------- */

/*
 * Block (token, KV head, 0 = K / 1 = V): the head vector in its type's
 * attention domain (R x through kq_store_rot's rotation for a rotated type),
 * rounded to f16 into the scratch (K rows, then V rows, [n_tok][kv] each).
 */
static __global__ void __launch_bounds__(KQ_THREADS) kq_exact_kernel(const kq_params p)
{
    __shared__ float y[KQ_MAX_D];
    const int t = blockIdx.x, hk = blockIdx.y, is_v = blockIdx.z, D = p.hd;
    const int type = is_v ? p.vt : p.kt;
    const bool rot = type == KVQ_ROT4 || type == KVQ_ROT3;
    const int64_t kv = (int64_t)p.n_head_kv * D;
    const float *x = (is_v ? p.v : p.k) + (int64_t)t * kv + (int64_t)hk * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        y[i] = rot ? __fmul_rn(x[i], p.sign[i]) : x[i];
    if (rot)
        kq_fwht(y, D); /* syncs on entry and exit */
    uint16_t *dst = (uint16_t *)p.xs + ((int64_t)is_v * p.n_tok + t) * kv + (int64_t)hk * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        dst[i] = __half_as_ushort(__float2half_rn(y[i]));
}

/* Block b: token n_tok - min(W, n_tok) + b's exact rows into ring slot (pos0 + t) % W. */
static __global__ void __launch_bounds__(KQ_THREADS) kq_ring_kernel(const kq_params p)
{
    const int n_last = (int)min((int64_t)p.xw, (int64_t)p.n_tok);
    const int t = p.n_tok - n_last + blockIdx.x;
    const int64_t kv = (int64_t)p.n_head_kv * p.hd, pos = (int64_t)*p.pos + t;
    const int64_t sl = pos % p.xw;
    for (int64_t i = threadIdx.x; i < kv; i += blockDim.x) {
        p.kr[sl * p.r_stride + i] = p.xs[(int64_t)t * kv + i];
        p.vr[sl * p.r_stride + i] = p.xs[((int64_t)p.n_tok + t) * kv + i];
    }
    if (threadIdx.x == 0)
        p.rpos[sl] = (int32_t)pos;
}

/* ---- launchers ----------------------------------------------------------- */

static hearth_status kq_setup(const struct cuda_kvq_args *a, const char *who, kq_params *p)
{
    const bool rot = kvq_is_rotated((enum kvq_type)a->k_type) ||
                     kvq_is_rotated((enum kvq_type)a->v_type);
    if (!cuda_kvq_supported(a->k_type, a->v_type, a->head_dim) || a->n_head_kv < 1 ||
        a->n_head < 1 || a->n_head % a->n_head_kv != 0 || a->n_head > 65535 ||
        a->n_head_kv > 65535 || a->n_tok > 65535 || (rot && !a->d_sign))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "%s: K %s / V %s, head_dim %d (multiple of 32, <= %d), heads %d/%d, "
                       "n_tok %d%s", who, kvq_type_name((enum kvq_type)a->k_type),
                       kvq_type_name((enum kvq_type)a->v_type), a->head_dim, KQ_MAX_D,
                       a->n_head, a->n_head_kv, a->n_tok,
                       rot && !a->d_sign ? ", rotated type without d_sign" : "");
    const int kv = a->n_head_kv * a->head_dim;
    if (a->k_type != KVQ_F16 && (!a->d_k_aux || a->aux_stride < kv))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "%s: a %s K cache needs k_aux, F32 [2][%d] (aux_stride %lld floats)", who,
                       kvq_type_name((enum kvq_type)a->k_type), kv, (long long)a->aux_stride);
    p->kb = (int)kvq_head_bytes((enum kvq_type)a->k_type, a->head_dim);
    p->vb = (int)kvq_head_bytes((enum kvq_type)a->v_type, a->head_dim);
    /* step 6: no caches only where the exact window covers the sliding one */
    const bool ring_only = !a->d_k_cache;
    if (ring_only && (a->d_v_cache || a->window == 0 || a->kv_window < a->window))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "%s: caches absent (ring-only layer, backend.h step 6) need v_cache "
                       "absent too (%s), window > 0 and kv_window >= window (got %u, %u)", who,
                       a->d_v_cache ? "present" : "absent", a->window, a->kv_window);
    /* the attention kernel stages cache rows as u16 words */
    if (!ring_only &&
        (a->k_row_stride % 2 || a->v_row_stride % 2 || (uintptr_t)a->d_k_cache % 2 ||
         !a->d_v_cache || (uintptr_t)a->d_v_cache % 2 ||
         a->k_row_stride < (size_t)a->n_head_kv * p->kb ||
         a->v_row_stride < (size_t)a->n_head_kv * p->vb))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "%s: cache rows of %zu / %zu bytes (even, >= %d x %d / %d bytes) at "
                       "even addresses expected", who, a->k_row_stride, a->v_row_stride,
                       a->n_head_kv, p->kb, p->vb);
    p->q = a->d_q;
    p->k = a->d_k;
    p->v = a->d_v;
    p->kc = (uint8_t *)a->d_k_cache;
    p->vc = (uint8_t *)a->d_v_cache;
    p->k_stride = a->k_row_stride;
    p->v_stride = a->v_row_stride;
    p->out = a->d_out;
    p->pos = a->d_pos;
    p->sign = a->d_sign;
    p->sink = a->k_type != KVQ_F16 ? a->d_k_aux + a->aux_stride : NULL;
    p->kt = a->k_type;
    p->vt = a->v_type;
    p->n_head = a->n_head;
    p->n_head_kv = a->n_head_kv;
    p->group = a->n_head / a->n_head_kv;
    p->hd = a->head_dim;
    p->n_piece = __builtin_popcount((unsigned)a->head_dim / 32u);
    p->scale = a->scale;
    p->window = a->window;
    const struct kvq_codebook *c4 = kvq_codebook_get(4), *c3 = kvq_codebook_get(3);
    for (int i = 0; i < 16; i++)
        p->cb.l4[i] = c4->level[i];
    for (int i = 0; i < 15; i++)
        p->cb.t4[i] = c4->thresh[i];
    for (int i = 0; i < 8; i++)
        p->cb.l3[i] = c3->level[i];
    for (int i = 0; i < 7; i++)
        p->cb.t3[i] = c3->thresh[i];
    p->xw = a->kv_window;
    p->n_tok = a->n_tok;
    p->xs = a->d_xs;
    p->kr = a->d_k_ring;
    p->vr = a->d_v_ring;
    p->r_stride = a->ring_stride;
    p->rpos = a->d_ring_pos;
    p->n_split = a->n_split > 1 ? a->n_split : 1;
    p->part = a->d_part;
    if (a->kv_window > 0 &&
        (!a->d_xs || !a->d_k_ring || !a->d_v_ring || !a->d_ring_pos ||
         a->ring_stride < (int64_t)kv ||
         (a->k_type == KVQ_F16 && a->v_type == KVQ_F16 && !ring_only)))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "%s: exact window %u needs scratch, rings of >= %d halves a slot "
                       "(stride %lld) and tags, and a compressed cache or none (K %s / V %s)", who,
                       a->kv_window, kv, (long long)a->ring_stride,
                       kvq_type_name((enum kvq_type)a->k_type),
                       kvq_type_name((enum kvq_type)a->v_type));
    return HEARTH_OK;
}

extern "C" size_t cuda_kvq_window_bytes(const struct cuda_kvq_args *a)
{
    return a->kv_window > 0 ? (size_t)4 * (size_t)a->n_tok * (size_t)a->n_head_kv *
                                  (size_t)a->head_dim
                            : 0;
}

extern "C" size_t cuda_kvq_part_bytes(const struct cuda_kvq_args *a)
{
    return a->n_split > 1 ? (size_t)a->n_tok * (size_t)a->n_head * (size_t)a->n_split *
                                ((size_t)a->head_dim + 2u) * sizeof(float)
                          : 0;
}

extern "C" bool cuda_kvq_supported(int k_type, int v_type, int head_dim)
{
    return k_type >= 0 && k_type < KVQ_TYPE_COUNT && v_type >= 0 && v_type < KVQ_TYPE_COUNT &&
           head_dim >= 32 && head_dim <= KQ_MAX_D && head_dim % 32 == 0;
}

extern "C" hearth_status cuda_kvq_store(const struct cuda_kvq_args *a, void *stream)
{
    if (a->n_tok <= 0)
        return HEARTH_OK;
    kq_params p;
    hearth_status st = kq_setup(a, "cuda_kvq_store", &p);
    if (st != HEARTH_OK)
        return st;
    if (a->k_type != KVQ_F16) {
        const int kv = a->n_head_kv * a->head_dim;
        kq_center_kernel<<<(unsigned)((kv + KQ_THREADS - 1) / KQ_THREADS), KQ_THREADS, 0,
                           CUDA_STREAM(stream)>>>(a->d_k, a->d_k_aux, a->aux_stride, a->d_pos,
                                                  a->n_tok, kv);
    }
    if (a->d_k_cache) /* a ring-only layer (step 6) stores no codes */
        kq_store_kernel<<<dim3((unsigned)a->n_tok, (unsigned)a->n_head_kv, 2), KQ_THREADS, 0,
                          CUDA_STREAM(stream)>>>(p);
    if (a->kv_window > 0)
        kq_exact_kernel<<<dim3((unsigned)a->n_tok, (unsigned)a->n_head_kv, 2), KQ_THREADS, 0,
                          CUDA_STREAM(stream)>>>(p);
    CUDA_RETURN_LAUNCH();
}

extern "C" hearth_status cuda_kvq_attention(const struct cuda_kvq_args *a, void *stream)
{
    if (a->n_tok <= 0)
        return HEARTH_OK;
    kq_params p;
    hearth_status st = kq_setup(a, "cuda_kvq_attention", &p);
    if (st != HEARTH_OK)
        return st;
    if (a->n_split < 0 || a->n_split > CUDA_ATTN_MAX_SPLIT || (a->n_split > 1 && !a->d_part))
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "cuda_kvq_attention: n_split %d (expected 0..%d; above 1 with d_part "
                       "of cuda_kvq_part_bytes, got %s)", a->n_split, CUDA_ATTN_MAX_SPLIT,
                       a->d_part ? "one" : "NULL");
    cudaStream_t cs = CUDA_STREAM(stream);
    kq_attn_kernel<<<dim3((unsigned)a->n_head, (unsigned)a->n_tok, (unsigned)p.n_split),
                     KQ_THREADS, 0, cs>>>(p);
    if (p.n_split > 1) {
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess)
            return cuda__fail(e, "kq_attn_kernel", __FILE__, __LINE__);
        kq_combine_kernel<<<dim3((unsigned)a->n_head, (unsigned)a->n_tok), KQ_THREADS, 0, cs>>>(
            p);
    }
    if (a->kv_window > 0) {
        const unsigned n_last = a->kv_window < (uint32_t)a->n_tok ? a->kv_window
                                                                  : (unsigned)a->n_tok;
        kq_ring_kernel<<<n_last, KQ_THREADS, 0, cs>>>(p);
    }
    CUDA_RETURN_LAUNCH();
}
