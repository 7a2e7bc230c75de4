/*
 * cuda/ops.h: the C interface of the CUDA kernels (one cuda/<op>.cu per op,
 * each with static __global__ kernels and the extern "C" launchers below).
 *
 * Semantics mirror core/cpu/ops.h and the op contracts of core/backend.h; the
 * CPU code is the reference the tests compare against (tests/test-cuda-ops.c).
 * Conventions:
 *  - Every pointer named d_* is device memory; "F32 [a][b]" is a rows of b
 *    floats, rows `stride` elements apart where a stride is given.
 *  - `stream` is a cudaStream_t passed as void * (NULL: the legacy default
 *    stream) so that C callers need no CUDA header. Launchers only enqueue;
 *    they return a status from cudaGetLastError (bad configuration, OOM), and
 *    asynchronous faults surface at cuda_synchronize.
 *  - Positions come from a device-side int32 (d_pos: the first new token's
 *    position) rather than a by-value argument, so one decode step has the
 *    same launch arguments every time and can be captured as a CUDA graph; the
 *    caller updates *d_pos with cuda_i32_set (outside the graph) or
 *    cuda_i32_add (inside it, after the step).
 *  - Quantized weights live on the device in the padded row layout of
 *    cuda/layout.h (rows 16-byte aligned, blocks unchanged), so every kernel
 *    can read them with aligned 16-byte loads.
 */
#ifndef HEARTH_CUDA_OPS_H
#define HEARTH_CUDA_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"
#include "layout.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== memory and streams (mem.cu) ========================================= */

/* Devices visible (0 without a driver or device; never an error). */
int cuda_device_count(void);
/* Makes device i current for this thread. */
hearth_status cuda_set_device(int i);
/* SMs, L2 bytes and a name of the current device, for benchmarks and launch sizing. */
hearth_status cuda_device_info(int *n_sm, size_t *l2_bytes, char *name, size_t name_cap);
/* n >= 1 bytes of device memory; DEVICE_OOM names the size. */
hearth_status cuda_alloc(void **d_ptr, size_t n);
void cuda_free(void *d_ptr); /* NULL: nothing */
hearth_status cuda_upload(void *d_dst, const void *src, size_t n);
hearth_status cuda_download(void *dst, const void *d_src, size_t n);
hearth_status cuda_memset(void *d_dst, int byte, size_t n);
/* Device-to-device copy on stream. */
hearth_status cuda_copy(void *d_dst, const void *d_src, size_t n, void *stream);
/* Fills n floats with value (tests poison outputs with NaN). */
hearth_status cuda_fill_f32(float *d_dst, float value, int64_t n, void *stream);
hearth_status cuda_synchronize(void);
hearth_status cuda_stream_create(void **stream);
void cuda_stream_destroy(void *stream);
/* Events for timing (bench/): create, record on a stream, elapsed ms between two. */
hearth_status cuda_event_create(void **ev);
void cuda_event_destroy(void *ev);
hearth_status cuda_event_record(void *ev, void *stream);
hearth_status cuda_event_elapsed_ms(void *start, void *stop, float *ms);
/* Pinned host memory (cudaMallocHost): async copies from it overlap compute. */
hearth_status cuda_host_alloc(void **ptr, size_t n);
void cuda_host_free(void *ptr);
hearth_status cuda_upload_async(void *d_dst, const void *src, size_t n, void *stream);
hearth_status cuda_download_async(void *dst, const void *d_src, size_t n, void *stream);
hearth_status cuda_stream_synchronize(void *stream);
hearth_status cuda_event_synchronize(void *ev);
/* Free and total bytes of the current device. */
hearth_status cuda_mem_info(size_t *free_b, size_t *total_b);
/* *d_v = value / *d_v += delta, as one-thread kernels on stream (graph-capturable). */
hearth_status cuda_i32_set(int32_t *d_v, int32_t value, void *stream);
hearth_status cuda_i32_add(int32_t *d_v, int32_t delta, void *stream);

/* ==== CUDA graphs (graph.cu; the decode-step cache is graph-cache.c) ====== */

/* Most ATTENTION ops (so positions) one captured op list may hold. */
#define CUDA_GRAPH_MAX_POS 16
/* d_v[0..n) = values[0..n) (n <= CUDA_GRAPH_MAX_POS), one launch, values passed by value. */
hearth_status cuda_i32_set_n(int32_t *d_v, const int32_t *values, int n, void *stream);
/* Starts a thread-local stream capture: launches on stream are recorded, not run. */
hearth_status cuda_graph_begin(void *stream);
/*
 * Ends the capture and instantiates it (*exec, for cuda_graph_launch). Fails
 * (exec NULL) when a call during the capture invalidated it; the stream is
 * out of capture mode either way.
 */
hearth_status cuda_graph_end(void *stream, void **exec);
hearth_status cuda_graph_launch(void *exec, void *stream);
void cuda_graph_destroy(void *exec);

/* ==== weights (layout.h for the layout; upload in mem.cu) ================= */

/*
 * Uploads n_rows GGUF rows (src: rows of quant_row_bytes(type, K) bytes, back
 * to back, any alignment) into d_dst laid out as *l says (l from
 * cuda_wlayout_init; d_dst holds l->bytes). Stages through a bounded host
 * buffer; NO_MEMORY / DEVICE errors as statuses.
 */
hearth_status cuda_weight_upload(const struct cuda_wlayout *l, void *d_dst, const void *src);

/* ==== matmul: decode matvec (matvec.cu) and prefill (mmq.cu, gemm.cu) ===== */

/*
 * One weight of a matmul: d_w in the layout *l (N = l->n_rows rows of K =
 * l->k elements), optional bias d_b (F32 [N], NULL: none), output d_y
 * (F32 [n_tok][N], rows y_stride floats apart).
 */
struct cuda_mm_out {
    const struct cuda_wlayout *l;
    const void *d_w;
    const float *d_b;
    float *d_y;
    int64_t y_stride;
};

/* Most token rows the fused matvec takes in one pass over the weights. */
#define CUDA_MATVEC_MAX_TOK 4

/*
 * Fused dequant-matvec, y[i][t][r] = W_i row r . x[t] (+ b_i[r]) for i < n_w
 * (1..3) and t < n_tok (1..CUDA_MATVEC_MAX_TOK). Every W_i has the same type
 * and K; x: F32 [n_tok][K] (rows x_stride floats apart, 16-byte aligned,
 * x_stride % 4 == 0). One launch covers all n_w weights (gate+up, q/k/v).
 * Weight rows must be 16-byte aligned (row_stride % 16 == 0, d_w too):
 * INVALID_ARG otherwise; cuda_matmul then takes the MMA kernel instead.
 * UNSUPPORTED for a type without a kernel or mismatched weights.
 */
hearth_status cuda_matvec(int n_w, const struct cuda_mm_out *w, const float *d_x,
                          int64_t x_stride, int n_tok, void *stream);

/*
 * The same product with x quantized to 8 bits per 32 values and dp4a
 * (matvec-q8.cu), for the types with an integer unit form (Q4_0..Q8_0,
 * Q2_K..Q6_K) while x fits in shared memory (cuda_matvec_q8_usable).
 * cuda_matvec takes this path when cuda_matvec_q8_enabled() (the environment
 * variable HEARTH_CUDA_MV_Q8=1, read at the first call, or cuda_matvec_q8_set)
 * and the shape is usable. x needs only 4-byte alignment here.
 */
hearth_status cuda_matvec_q8(int n_w, const struct cuda_mm_out *w, const float *d_x,
                             int64_t x_stride, int n_tok, void *stream);
bool cuda_matvec_q8_usable(int type, int64_t k, int n_tok);
bool cuda_matvec_q8_enabled(void);
void cuda_matvec_q8_set(bool on);

/*
 * Prefill matmul on tensor cores: y[t][r] = W row r . x[t] (+ b[r]) for any
 * n_tok >= 1. Weight tiles are dequantized to F16 in shared memory and
 * multiplied with WMMA m16n16k16 (F16 in, F32 accumulate); x is rounded to
 * F16. x: F32 [n_tok][K], rows x_stride floats apart (16-byte aligned).
 * Reads weight blocks straight from global memory, so any row stride works
 * (raw GGUF rows too); only the float types need 16-byte-aligned rows, which
 * K % 32 == 0 gives them.
 */
hearth_status cuda_matmul_mma(const struct cuda_mm_out *w, const float *d_x, int64_t x_stride,
                              int n_tok, void *stream);

/*
 * cuBLAS path: dequantize a slab of weight rows to F16 in d_ws, convert x to
 * F16 there too, and cublasGemmEx (F16 x F16 -> F32, F32 compute), slab after
 * slab. d_ws: ws_bytes of device scratch; needs at least
 * cuda_matmul_blas_ws_min(K, n_tok) bytes (INVALID_ARG otherwise), more means
 * bigger slabs. blas: a handle from cuda_blas_create, bound to stream here.
 */
hearth_status cuda_blas_create(void **blas);
void cuda_blas_destroy(void *blas);
size_t cuda_matmul_blas_ws_min(int64_t K, int n_tok);
hearth_status cuda_matmul_blas(void *blas, const struct cuda_mm_out *w, const float *d_x,
                               int64_t x_stride, int n_tok, void *d_ws, size_t ws_bytes,
                               void *stream);

/*
 * The dispatcher the backend uses: matvec for n_tok <= CUDA_MATVEC_MAX_TOK,
 * cuBLAS for n_tok >= CUDA_MATMUL_BLAS_MIN_TOK when blas and enough scratch
 * are given, the MMA kernel otherwise. The thresholds are first guesses that
 * bench/bench-cuda.c exists to confirm on the GPU (bench/README-gpu.md).
 */
#define CUDA_MATMUL_BLAS_MIN_TOK 128
hearth_status cuda_matmul(void *blas, int n_w, const struct cuda_mm_out *w, const float *d_x,
                          int64_t x_stride, int n_tok, void *d_ws, size_t ws_bytes,
                          void *stream);

/*
 * Dequantizes rows [r0, r0 + n) of a weight to F16 (d_dst: [n][K] halves,
 * packed) or F32 (dequant.cu). The F16 form feeds cuBLAS; F32 is for tests.
 */
hearth_status cuda_dequant_f16(const struct cuda_wlayout *l, const void *d_w, int64_t r0,
                               int64_t n, uint16_t *d_dst, void *stream);
hearth_status cuda_dequant_f32(const struct cuda_wlayout *l, const void *d_w, int64_t r0,
                               int64_t n, float *d_dst, void *stream);

/* ==== small ops (norm.cu, eltwise.cu, embed.cu, rope.cu) ================== */

/*
 * y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w for r < n_rows; x, y: F32
 * [n_rows][n] with row strides x_stride / y_stride floats; w: F32 [n] or NULL.
 * y may alias x. Also the per-head q/k norm (rows = tokens * heads, n = D).
 */
hearth_status cuda_rmsnorm(float *d_y, int64_t y_stride, const float *d_x, int64_t x_stride,
                           const float *d_w, int64_t n_rows, int64_t n, float eps,
                           void *stream);
/*
 * x[r] += (w ? rmsnorm(y[r]) * w : y[r]); with w, y is overwritten by the
 * normed row (the ADD op of backend.h). x, y: F32 [n_rows][n], packed.
 */
hearth_status cuda_add(float *d_x, float *d_y, const float *d_w, int64_t n_rows, int64_t n,
                       float eps, void *stream);
/* g[i] = act(g[i]) * u[i], i < n; act 0: silu (SwiGLU), 1: gelu_tanh (GeGLU). */
hearth_status cuda_glu(float *d_g, const float *d_u, int64_t n, int act, void *stream);
/* x[i] *= s, i < n. */
hearth_status cuda_scale(float *d_x, float s, int64_t n, void *stream);
/*
 * out[t] = dequant(table row ids[t]) * scale, t < n_tok; table in layout *l
 * ([n_vocab][E]); ids: I32 [n_tok] (validated by the caller); out: F32
 * [n_tok][E] packed.
 */
hearth_status cuda_embed(const struct cuda_wlayout *l, const void *d_table, const int32_t *d_ids,
                         int n_tok, float scale, float *d_out, void *stream);
/*
 * RoPE in place on x: F32 [n_tok][n_heads * head_dim] (rows x_stride floats
 * apart); token t is at position *d_pos + t. The first n_rot dims of every
 * head rotate by theta_k = p * freq_scale * base^(-2k/n_rot) / divs[k]
 * (d_divs: F32 [n_rot/2] or NULL), angles in double as on the CPU; mode 0
 * pairs (2k, 2k+1), mode 2 (NEOX) pairs (k, k + n_rot/2).
 */
hearth_status cuda_rope(float *d_x, int64_t x_stride, int n_tok, int n_heads, int head_dim,
                        int n_rot, const int32_t *d_pos, float base, float freq_scale,
                        const float *d_divs, int mode, void *stream);

/* ==== attention (attention.cu) ============================================ */

struct cuda_attn_args {
    const float *d_q;        /* F32 [n_tok][n_head * head_dim], normed and rotated */
    const float *d_k;        /* F32 [n_tok][n_head_kv * head_dim], normed and rotated */
    const float *d_v;        /* F32 [n_tok][n_head_kv * head_dim] */
    uint16_t *d_k_cache;     /* F16 [n_ctx][n_head_kv * head_dim], this layer's */
    uint16_t *d_v_cache;     /* F16 [n_ctx][n_head_kv * head_dim] */
    float *d_out;            /* F32 [n_tok][n_head * head_dim] */
    const int32_t *d_pos;    /* device int: position of token 0 (pos0) */
    int n_tok, n_head, n_head_kv, head_dim; /* head_dim % 32 == 0, <= 256 */
    int64_t n_ctx;           /* cache rows; the caller ensures pos0 + n_tok <= n_ctx */
    int64_t kv_stride;       /* halves between cache rows; 0: n_head_kv * head_dim */
    float scale;             /* multiplies q . k */
    uint32_t window;         /* 0: full causal; else the window latest positions */
    int n_split;             /* sequence splits per (token, head), 1..CUDA_ATTN_MAX_SPLIT */
};

#define CUDA_ATTN_MAX_SPLIT 64
/* From this many tokens with n_split == 1, cuda_attention uses the tiled prefill kernel. */
#define CUDA_ATTN_TILED_MIN_TOK 16

/* Writes k/v of the n_tok new tokens into the caches at rows *d_pos + t (as F16). */
hearth_status cuda_kv_store(const struct cuda_attn_args *a, void *stream);
/* Splits a good fit for n_tok tokens and n_ctx cache rows on n_sm SMs. */
int cuda_attn_pick_split(int n_tok, int n_head, int64_t n_ctx, int n_sm);
/* Scratch bytes cuda_attention needs for a->n_tok, n_head, head_dim, n_split. */
size_t cuda_attn_ws_bytes(const struct cuda_attn_args *a);
/*
 * out[t][h] = sum_j softmax_j(scale * q[t][h] . K_j) V_j over cached
 * positions j in [lo, p], p = *d_pos + t, lo = window ? max(0, p-window+1) : 0,
 * K_j/V_j from KV head h / (n_head / n_head_kv), read from the F16 cache (call
 * cuda_kv_store first). Flash-decoding: each (token, head) range is cut into
 * n_split pieces processed by separate blocks with an online softmax, then
 * combined by log-sum-exp weights. With n_split == 1 and n_tok >=
 * CUDA_ATTN_TILED_MIN_TOK a tiled kernel (16 queries per block sharing K/V
 * tiles in shared memory) runs instead. d_ws: cuda_attn_ws_bytes bytes
 * (unused by the tiled kernel).
 */
hearth_status cuda_attention(const struct cuda_attn_args *a, void *d_ws, void *stream);

/* ==== attention over a compressed KV cache (attention-kvq.cu) ============== */

/*
 * The cache in the head-vector formats of core/kv-quant.h (k_type, v_type:
 * enum kvq_type values, any pair). A cache row (one position) holds
 * n_head_kv encoded head vectors of kvq_head_bytes(type, head_dim) bytes back
 * to back; rows are k_row_stride / v_row_stride bytes apart (even, like the
 * cache base addresses: the kernel reads rows as 16-bit words).
 */
struct cuda_kvq_args {
    const float *d_q;     /* F32 [n_tok][n_head * head_dim], normed and rotated */
    float *d_k;           /* F32 [n_tok][n_head_kv * head_dim], normed and rotated; centred in
                             place by cuda_kvq_store when k_type != f16 */
    const float *d_v;     /* F32 [n_tok][n_head_kv * head_dim] */
    void *d_k_cache;      /* [n_ctx] rows of k_row_stride bytes, this layer's; NULL (with
                             d_v_cache): a ring-only layer, see cuda_kvq_attention */
    void *d_v_cache;      /* [n_ctx] rows of v_row_stride bytes */
    size_t k_row_stride, v_row_stride;
    float *d_out;         /* F32 [n_tok][n_head * head_dim] */
    const int32_t *d_pos; /* device int: position of token 0 (pos0) */
    /*
     * F32 [head_dim], each ±1: the diagonal D of the layer's rotation
     * (struct kvq_rot.sign from kvq_rot_init(head_dim, seed, layer)); needed
     * when either type is rot4/rot3, else may be NULL.
     */
    const float *d_sign;
    int k_type, v_type;
    int n_tok, n_head, n_head_kv, head_dim; /* head_dim % 32 == 0, <= 256 */
    float scale;          /* multiplies q . k */
    uint32_t window;      /* 0: full causal; else the window latest positions */
    /*
     * k_aux (core/backend.h ATTENTION step 3), required when k_type != f16
     * (ignored otherwise): F32 [2][n_head_kv * head_dim], rows aux_stride
     * floats apart; row 0 the key mean mu, row 1 the centred sink key.
     */
    float *d_k_aux;
    int64_t aux_stride;
    /*
     * The exact window (core/backend.h ATTENTION step 5), kv_window W > 0
     * (0: none, the rest unused): d_k_ring / d_v_ring F16 [W] rows of
     * n_head_kv * head_dim halves, ring_stride halves apart; d_ring_pos I32
     * [W] (position held, -1 none); d_xs scratch of 2 * n_tok * n_head_kv *
     * head_dim halves (cuda_kvq_window_bytes) that cuda_kvq_store fills with
     * the batch's exact rows and cuda_kvq_attention reads, so the two must
     * run in order on one stream with the same args.
     */
    uint32_t kv_window;
    uint16_t *d_k_ring, *d_v_ring;
    int64_t ring_stride;
    int32_t *d_ring_pos;
    uint16_t *d_xs;
    /*
     * Flash-decoding (cuda_kvq_attention only): n_split pieces per (head,
     * token), 0 or 1 for none, at most CUDA_ATTN_MAX_SPLIT; above 1, d_part is
     * scratch of cuda_kvq_part_bytes for the pieces' partial results.
     */
    int n_split;
    float *d_part;
};

/* Bytes of d_xs the exact window needs for a's batch (0 when a->kv_window is 0). */
size_t cuda_kvq_window_bytes(const struct cuda_kvq_args *a);
/* Bytes of d_part a's n_split needs (0 for n_split <= 1). */
size_t cuda_kvq_part_bytes(const struct cuda_kvq_args *a);

/* Whether cuda_kvq_store / cuda_kvq_attention take this pair and head_dim. */
bool cuda_kvq_supported(int k_type, int v_type, int head_dim);
/*
 * Encodes k/v of the n_tok new tokens into cache rows *d_pos + t, each head
 * vector byte-identical to kvq_encode's (same float operations in the same
 * order; the codebooks come from kvq_codebook_get). For k_type != f16 the
 * keys are centred first, as cpu_kvq_key_center (core/cpu/attn-kvq.h) does
 * it, in the same double sum order: when *d_pos == 0, d_k_aux row 0 = mu (the
 * mean of k over tokens [1, min(n_tok, 64))) and row 1 = the centred k[0];
 * then d_k[t] -= row 0 in place for every t. With kv_window > 0, then also
 * the batch's exact rows into d_xs: K rows [n_tok][kv] (R (k - mu) per head
 * for a rotated K, k - mu otherwise), then V rows (R v or v), each rounded
 * to f16.
 */
hearth_status cuda_kvq_store(const struct cuda_kvq_args *a, void *stream);
/*
 * out[t][h] = sum_j softmax_j(scale * q[t][h] . K_j) V_j over cached positions
 * j in [lo, p], p = *d_pos + t, lo = window ? max(0, p - window + 1) : 0, of KV
 * head h / (n_head / n_head_kv), K_j and V_j decoded as kvq_decode does (call
 * cuda_kvq_store first), except K_0 = d_k_aux row 1 when k_type != f16 (the
 * exact sink key, rotated like the query for a rotated K). One block per
 * (head, token, piece): with n_split > 1 each of the n_split equal pieces of
 * [lo, p] (cut on the device from *d_pos, so the grid does not depend on the
 * position) writes its partial to d_part and a second kernel merges them by
 * log-sum-exp weights (cuda_attention's flash-decoding); with n_split <= 1
 * one pass, no d_part. The split changes only the float summation order.
 * With kv_window W > 0, positions j > p - W read exact rows
 * instead (backend.h step 5): j >= *d_pos from d_xs, older ones from ring
 * slot j % W when d_ring_pos says it holds j (else the decoded row); K_0
 * stays the sink. Afterwards the batch's last min(W, n_tok) rows enter the
 * ring with their tags.
 * Ring-only layer (backend.h step 6): d_k_cache and d_v_cache NULL, window >
 * 0, kv_window >= window (else INVALID_ARG, from both functions), any type
 * pair (f16/f16 too: its ring rows are k and v rounded to f16, no k_aux):
 * cuda_kvq_store encodes nothing (centring and d_xs as before),
 * cuda_kvq_attention reads no cache row; the caller keeps d_ring_pos[j % W]
 * == j for every j in [max(0, pos0 - window + 1), pos0). An exact window
 * over f16/f16 caches that are present is INVALID_ARG (backend.h: 0 there).
 */
hearth_status cuda_kvq_attention(const struct cuda_kvq_args *a, void *stream);

/* ==== registration (backend.c) ============================================ */

struct hearth_backend_ops;
/* The CUDA backend's table for core/backend-registry.c (backend.h's interface). */
const struct hearth_backend_ops *cuda_backend_ops(void);

/* Counters of a stream's CUDA-graph path (graph-cache.h). */
struct cuda_graph_stats {
    uint64_t captures; /* graphs instantiated */
    uint64_t launches; /* op lists run as one graph launch */
    uint64_t eager;    /* graphable lists run op by op (first sighting, failed capture) */
    uint64_t failures; /* captures that failed (that call then ran op by op) */
};
struct hearth_stream;
/* s: a CUDA stream. All zero for one created under HEARTH_CUDA_GRAPH=0. */
void cuda_backend_graph_stats(const struct hearth_stream *s, struct cuda_graph_stats *out);

#ifdef __cplusplus
}
#endif
#endif
