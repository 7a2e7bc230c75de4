/*
 * attn-kvq: scalar CPU attention over compressed KV head vectors (attn-kvq.h).
 *
 * One dot kernel and one axpy kernel per type, picked once per call through a
 * small table so the position loop carries no type switch. The rotated
 * kernels read codes straight from the packed bytes (two 4-bit codes per
 * byte, eight 3-bit codes per 3 bytes) and look levels up in the 8- or
 * 16-entry codebook, which stays in L1; the per-piece f16 scale multiplies
 * the piece's partial sum once. Softmax is the max-subtracted two-pass one
 * of cpu_attn_head (ops.c) with the sum in double, so this kernel with f16 K
 * and V matches it to rounding (and cpu_attn_heads, the f16 cache's grouped
 * kernel, which gives cpu_attn_head's bits).
 *
 * Speed: the per-query kernel is written for clarity and as the reference of
 * SIMD/GPU versions. The forward pass uses the batched kernel at the end of
 * this file (design in attn-kvq.h): rows decoded once into f32 tiles (AVX2
 * decoders with the codebook in registers in attn-kvq-avx2.c, bit-identical
 * to kv-quant.c's), f32 dot/axpy on the tiles, chunk partials merged in
 * chunk order; the scalar decoders and dot/axpy below are its fallback.
 * With AVX2 a token's G heads of one KV head take the group kernels
 * (attn-kvq-group-avx2.c: each K row loaded once for the group, V sums in
 * registers) with the bits of one dot/axpy call per head and position; the
 * max, expf and float sum between them are the per-head loop's.
 * With an exact window (struct cpu_kvq_exact) a token's recent positions
 * read caller-staged f32 rows instead of the tile's decoded ones: only the
 * row pointer changes, never the arithmetic, so W = 0 keeps its bits. The
 * tile skips decoding the rows that every token of the group reads exactly
 * (exact_only_rows: a decode step's whole window), so the window costs no
 * decoding it does not use; rows that some token still reads decoded (an
 * early token of a long batch) are decoded as before.
 * The key mean / sink step (cpu_kvq_key_center) lives here too because
 * forward.c and the CPU backend must run the very same arithmetic.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "attn-kvq.h"
#include "cpu/dot.h"
#include "err.h"
#include "f16.h"
#include "threadpool.h"

typedef float (*row_dot_fn)(const struct kvq_rot *rot, const float *q, const uint8_t *row, int hd);
typedef void (*row_axpy_fn)(const struct kvq_rot *rot, float *y, float a, const uint8_t *row,
                            int hd);

static float f16_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return f16_to_f32(h);
}

/* ---- f16 ---------------------------------------------------------------------- */

static float dot_f16(const struct kvq_rot *rot, const float *q, const uint8_t *row, int hd)
{
    (void)rot;
    float s = 0.0f;
    for (int i = 0; i < hd; i++)
        s += q[i] * f16_at(row + 2 * i);
    return s;
}

static void axpy_f16(const struct kvq_rot *rot, float *y, float a, const uint8_t *row, int hd)
{
    (void)rot;
    for (int i = 0; i < hd; i++)
        y[i] += a * f16_at(row + 2 * i);
}

/* ---- q8_0: [d f16][32 x i8] per 32 values ---------------------------------------- */

static float dot_q8_0(const struct kvq_rot *rot, const float *q, const uint8_t *row, int hd)
{
    (void)rot;
    float s = 0.0f;
    for (int b = 0; b < hd / 32; b++, row += 34, q += 32) {
        float part = 0.0f;
        for (int e = 0; e < 32; e++)
            part += q[e] * (float)(int8_t)row[2 + e];
        s += f16_at(row) * part;
    }
    return s;
}

static void axpy_q8_0(const struct kvq_rot *rot, float *y, float a, const uint8_t *row, int hd)
{
    (void)rot;
    for (int b = 0; b < hd / 32; b++, row += 34, y += 32) {
        float ad = a * f16_at(row);
        for (int e = 0; e < 32; e++)
            y[e] += ad * (float)(int8_t)row[2 + e];
    }
}

/* ---- q4_0: [d f16][16 bytes]; low nibbles elements 0..15, high 16..31 -------------- */

static float dot_q4_0(const struct kvq_rot *rot, const float *q, const uint8_t *row, int hd)
{
    (void)rot;
    float s = 0.0f;
    for (int b = 0; b < hd / 32; b++, row += 18, q += 32) {
        float part = 0.0f;
        for (int e = 0; e < 16; e++) {
            uint8_t v = row[2 + e];
            part += q[e] * (float)((int)(v & 0x0fu) - 8) + q[e + 16] * (float)((int)(v >> 4) - 8);
        }
        s += f16_at(row) * part;
    }
    return s;
}

static void axpy_q4_0(const struct kvq_rot *rot, float *y, float a, const uint8_t *row, int hd)
{
    (void)rot;
    for (int b = 0; b < hd / 32; b++, row += 18, y += 32) {
        float ad = a * f16_at(row);
        for (int e = 0; e < 16; e++) {
            uint8_t v = row[2 + e];
            y[e] += ad * (float)((int)(v & 0x0fu) - 8);
            y[e + 16] += ad * (float)((int)(v >> 4) - 8);
        }
    }
}

/* ---- rot4 / rot3: [n_piece f16 scales][packed codes] (kv-quant.h) --------------- */

/* Σ q[i] level[code i] over coordinates [off, off + len) of a 4-bit row's codes. */
static float sum4(const float *lv, const float *q, const uint8_t *codes, int off, int len)
{
    float s = 0.0f;
    for (int i = off; i < off + len; i += 2) {
        uint8_t c = codes[i / 2];
        s += q[i] * lv[c & 0x0fu] + q[i + 1] * lv[c >> 4];
    }
    return s;
}

static float sum3(const float *lv, const float *q, const uint8_t *codes, int off, int len)
{
    float s = 0.0f;
    for (int g = off / 8; g < (off + len) / 8; g++) {
        const uint8_t *p = codes + 3 * g;
        uint32_t w = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
        const float *qg = q + 8 * g;
        for (int k = 0; k < 8; k++)
            s += qg[k] * lv[(w >> (3 * k)) & 7u];
    }
    return s;
}

static float dot_rot4(const struct kvq_rot *rot, const float *q, const uint8_t *row, int hd)
{
    const float *lv = kvq_codebook_get(4)->level;
    const uint8_t *codes = row + 2 * rot->n_piece;
    (void)hd;
    float s = 0.0f;
    for (int p = 0; p < rot->n_piece; p++)
        s += f16_at(row + 2 * p) * sum4(lv, q, codes, rot->piece_off[p], rot->piece_len[p]);
    return s;
}

static float dot_rot3(const struct kvq_rot *rot, const float *q, const uint8_t *row, int hd)
{
    const float *lv = kvq_codebook_get(3)->level;
    const uint8_t *codes = row + 2 * rot->n_piece;
    (void)hd;
    float s = 0.0f;
    for (int p = 0; p < rot->n_piece; p++)
        s += f16_at(row + 2 * p) * sum3(lv, q, codes, rot->piece_off[p], rot->piece_len[p]);
    return s;
}

static void axpy_rot4(const struct kvq_rot *rot, float *y, float a, const uint8_t *row, int hd)
{
    const float *lv = kvq_codebook_get(4)->level;
    const uint8_t *codes = row + 2 * rot->n_piece;
    (void)hd;
    for (int p = 0; p < rot->n_piece; p++) {
        float as = a * f16_at(row + 2 * p);
        for (int i = rot->piece_off[p]; i < rot->piece_off[p] + rot->piece_len[p]; i += 2) {
            uint8_t c = codes[i / 2];
            y[i] += as * lv[c & 0x0fu];
            y[i + 1] += as * lv[c >> 4];
        }
    }
}

static void axpy_rot3(const struct kvq_rot *rot, float *y, float a, const uint8_t *row, int hd)
{
    const float *lv = kvq_codebook_get(3)->level;
    const uint8_t *codes = row + 2 * rot->n_piece;
    (void)hd;
    for (int p = 0; p < rot->n_piece; p++) {
        float as = a * f16_at(row + 2 * p);
        int off = rot->piece_off[p], len = rot->piece_len[p];
        for (int g = off / 8; g < (off + len) / 8; g++) {
            const uint8_t *b = codes + 3 * g;
            uint32_t w = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16;
            float *yg = y + 8 * g;
            for (int k = 0; k < 8; k++)
                yg[k] += as * lv[(w >> (3 * k)) & 7u];
        }
    }
}

static const row_dot_fn dots[KVQ_TYPE_COUNT] = {dot_f16, dot_q8_0, dot_q4_0, dot_rot4, dot_rot3};
static const row_axpy_fn axpys[KVQ_TYPE_COUNT] = {axpy_f16, axpy_q8_0, axpy_q4_0, axpy_rot4,
                                                  axpy_rot3};

size_t cpu_attn_kvq_scratch_floats(int64_t n, int hd)
{
    return (size_t)n + 2u * (size_t)hd;
}

void cpu_attn_kvq_head(enum kvq_type kt, enum kvq_type vt, const struct kvq_rot *rot, float *out,
                       const float *q, const uint8_t *k0, size_t k_stride, const uint8_t *v0,
                       size_t v_stride, int64_t n, int hd, float scale, float *scratch)
{
    HEARTH_ASSERT((unsigned)kt < KVQ_TYPE_COUNT && (unsigned)vt < KVQ_TYPE_COUNT && n >= 1);
    HEARTH_ASSERT(!(kvq_is_rotated(kt) || kvq_is_rotated(vt)) || (rot && rot->d == hd));
    float *scores = scratch;  /* [n] */
    float *qr = scratch + n;  /* [hd] the query in K's domain */
    float *acc = qr + hd;     /* [hd] the output in V's domain */
    if (kvq_is_rotated(kt))
        kvq_rot_forward(rot, q, qr);
    else
        memcpy(qr, q, (size_t)hd * sizeof *qr);

    row_dot_fn dot = dots[kt];
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
        float s = dot(rot, qr, k0 + (size_t)j * k_stride, hd) * scale;
        scores[j] = s;
        mx = s > mx ? s : mx;
    }
    double sum = 0.0;
    for (int64_t j = 0; j < n; j++) {
        float e = expf(scores[j] - mx);
        scores[j] = e;
        sum += (double)e;
    }
    float inv = (float)(1.0 / sum);

    row_axpy_fn axpy = axpys[vt];
    for (int i = 0; i < hd; i++)
        acc[i] = 0.0f;
    for (int64_t j = 0; j < n; j++)
        axpy(rot, acc, scores[j] * inv, v0 + (size_t)j * v_stride, hd);
    if (kvq_is_rotated(vt))
        kvq_rot_inverse(rot, acc, out);
    else
        memcpy(out, acc, (size_t)hd * sizeof *out);
}

/* ---- batched layer attention (attn-kvq.h) --------------------------------------- */

#define KVQ_WAVE 16 /* chunks per parallel round; the merge order makes results independent of it */

typedef void (*decode_rows_fn)(enum kvq_type t, const struct kvq_rot *rot, int hd,
                               const uint8_t *src, size_t stride, int n, float *dst);
typedef float (*fdot_fn)(const float *a, const float *b, int n);
typedef void (*faxpy_fn)(float *y, float s, const float *x, int n);
typedef void (*gdots_fn)(const float *q, int nq, int hd, const float *const *rows, int n,
                         float scale, float *sc, int ld);
typedef void (*gaxpys_fn)(float *acc, size_t ld, int nq, int hd, const float *const *rows, int n,
                          const float *w, int wld);

struct cpu_kvq_attn {
    decode_rows_fn decode_rows;
    fdot_fn dot;
    faxpy_fn axpy;
    gdots_fn group_dots;     /* NULL: each query head on its own with dot and axpy */
    gaxpys_fn group_axpys;
    int n_threads;
    int cap_tok, cap_head, cap_hd; /* what the buffers below hold */
    /* [n_threads][2 C hd + C cap_head]: K tile [C][hd], V tile [C][hd], scores [G][C] */
    float *tile;
    const float **rows; /* [n_threads][2 C]: each position's K row, then its V row */
    float *qr;     /* [cap_tok][cap_head][hd] queries in K's domain */
    float *part;   /* [KVQ_WAVE][cap_tok][cap_head][hd + 2]: acc[hd], max, sum per chunk */
    float *run;    /* [cap_tok][cap_head][hd + 2]: the merged state */
    int64_t *lo;   /* [cap_tok] first position each batch row attends to */
    int64_t *slo, *shi; /* [cap_tok] each group's lowest and highest position */
};

static void decode_rows_scalar(enum kvq_type t, const struct kvq_rot *rot, int hd,
                               const uint8_t *src, size_t stride, int n, float *dst)
{
    for (int r = 0; r < n; r++, src += stride, dst += hd) {
        if (kvq_is_rotated(t))
            kvq_decode_rotated(t, rot, src, dst);
        else
            kvq_decode(t, rot, hd, src, dst);
    }
}

static float fdot_scalar(const float *a, const float *b, int n)
{
    float s = 0.0f;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void faxpy_scalar(float *y, float s, const float *x, int n)
{
    for (int i = 0; i < n; i++)
        y[i] += s * x[i];
}

hearth_status cpu_kvq_attn_create(int isa, int n_threads, struct cpu_kvq_attn **out)
{
    *out = NULL;
    struct cpu_kvq_attn *a = calloc(1, sizeof *a);
    if (!a)
        return err_set(HEARTH_ERR_NO_MEMORY, "attn-kvq: out of memory");
    const struct cpu_caps *caps = cpu_caps_get();
    if (isa >= CPU_ISA_AVX2 && caps->avx2 && caps->fma && caps->f16c) {
        a->decode_rows = cpu_kvq__decode_rows_avx2;
        a->dot = cpu_kvq__dot_avx2;
        a->axpy = cpu_kvq__axpy_avx2;
        a->group_dots = cpu_kvq__group_dots_avx2;
        a->group_axpys = cpu_kvq__group_axpys_avx2;
    } else {
        a->decode_rows = decode_rows_scalar;
        a->dot = fdot_scalar;
        a->axpy = faxpy_scalar;
    }
    a->n_threads = n_threads < 1 ? 1 : n_threads;
    a->rows = malloc(sizeof *a->rows * 2 * CPU_KVQ_CHUNK * (size_t)a->n_threads);
    if (!a->rows) {
        free(a);
        return err_set(HEARTH_ERR_NO_MEMORY, "attn-kvq: out of memory");
    }
    *out = a;
    return HEARTH_OK;
}

void cpu_kvq__attn_per_head(struct cpu_kvq_attn *a)
{
    a->group_dots = NULL;
    a->group_axpys = NULL;
}

void cpu_kvq_attn_destroy(struct cpu_kvq_attn *a)
{
    if (!a)
        return;
    free(a->tile);
    free(a->rows);
    free(a->qr);
    free(a->part);
    free(a->run);
    free(a->lo);
    free(a->slo);
    free(a->shi);
    free(a);
}

hearth_status cpu_kvq_attn_reserve(struct cpu_kvq_attn *a, int n_tok, int n_head, int hd)
{
    if (n_tok <= a->cap_tok && n_head <= a->cap_head && hd <= a->cap_hd)
        return HEARTH_OK;
    n_tok = n_tok > a->cap_tok ? n_tok : a->cap_tok;
    n_head = n_head > a->cap_head ? n_head : a->cap_head;
    hd = hd > a->cap_hd ? hd : a->cap_hd;
    const size_t C = CPU_KVQ_CHUNK, th = (size_t)n_tok * (size_t)n_head;
    float *tile = malloc(sizeof(float) * (size_t)a->n_threads *
                         (2 * C * (size_t)hd + C * (size_t)n_head));
    float *qr = malloc(sizeof(float) * th * (size_t)hd);
    float *part = malloc(sizeof(float) * KVQ_WAVE * th * ((size_t)hd + 2));
    float *run = malloc(sizeof(float) * th * ((size_t)hd + 2));
    int64_t *lo = malloc(sizeof(int64_t) * (size_t)n_tok);
    int64_t *slo = malloc(sizeof(int64_t) * (size_t)n_tok);
    int64_t *shi = malloc(sizeof(int64_t) * (size_t)n_tok);
    if (!tile || !qr || !part || !run || !lo || !slo || !shi) {
        free(tile);
        free(qr);
        free(part);
        free(run);
        free(lo);
        free(slo);
        free(shi);
        return err_set(HEARTH_ERR_NO_MEMORY,
                       "attn-kvq: out of memory for the scratch of %d tokens x %d heads of %d",
                       n_tok, n_head, hd);
    }
    free(a->tile);
    free(a->qr);
    free(a->part);
    free(a->run);
    free(a->lo);
    free(a->slo);
    free(a->shi);
    a->tile = tile;
    a->qr = qr;
    a->part = part;
    a->run = run;
    a->lo = lo;
    a->slo = slo;
    a->shi = shi;
    a->cap_tok = n_tok;
    a->cap_head = n_head;
    a->cap_hd = hd;
    return HEARTH_OK;
}

struct wave_job {
    struct cpu_kvq_attn *a;
    const struct cpu_kvq_layer *L;
    int64_t c_first; /* absolute chunk index of the wave's first chunk */
    int n_chunk;     /* chunks in this wave */
};

/* Partial state of (batch row t, head h) for the wave's chunk ci: acc[hd], max, sum. */
static float *part_at(const struct cpu_kvq_attn *a, int ci, int t, int h, int hd)
{
    size_t th = (size_t)a->cap_tok * (size_t)a->cap_head;
    return a->part + ((size_t)ci * th + (size_t)t * (size_t)a->cap_head + (size_t)h) *
                         ((size_t)hd + 2);
}

static float *run_at(const struct cpu_kvq_attn *a, int t, int h, int hd)
{
    return a->run + ((size_t)t * (size_t)a->cap_head + (size_t)h) * ((size_t)hd + 2);
}

/* Rows [j0, j1] of group sq's KV head hk decoded into the chunk tiles kt, vt (row c0 first). */
static void tile_decode(const struct cpu_kvq_attn *a, const struct cpu_kvq_layer *L,
                        const struct cpu_kvq_seq *sq, int hk, int64_t c0, int64_t j0, int64_t j1,
                        float *kt, float *vt)
{
    if (j0 > j1)
        return;
    const int hd = L->hd, nr = (int)(j1 - j0 + 1);
    const size_t kb = kvq_head_bytes(L->kt, hd), vb = kvq_head_bytes(L->vt, hd);
    a->decode_rows(L->kt, L->rot, hd, sq->k + (size_t)j0 * L->k_row + (size_t)hk * kb, L->k_row,
                   nr, kt + (size_t)(j0 - c0) * (size_t)hd);
    a->decode_rows(L->vt, L->rot, hd, sq->v + (size_t)j0 * L->v_row + (size_t)hk * vb, L->v_row,
                   nr, vt + (size_t)(j0 - c0) * (size_t)hd);
}

/*
 * The rows [*d0, *d1] of group s that every token of it reads from the exact
 * rows (empty: *d0 > *d1): token t reads j exactly iff j > pos[t] - W and x0
 * <= j < x0 + nx, and pos[t] <= shi, so j >= max(shi - W + 1, x0) and j <
 * x0 + nx is read exactly by every token whose range holds j. Their tile
 * rows are never read, so they are not decoded.
 */
static void exact_only_rows(const struct cpu_kvq_attn *a, const struct cpu_kvq_layer *L, int s,
                            int64_t *d0, int64_t *d1)
{
    *d0 = INT64_MAX;
    *d1 = -1;
    if (L->exact_window == 0 || L->exact[s].nx <= 0)
        return;
    const struct cpu_kvq_exact *ex = &L->exact[s];
    const int64_t lo = a->shi[s] - (int64_t)L->exact_window + 1;
    *d0 = lo > ex->x0 ? lo : ex->x0;
    *d1 = ex->x0 + ex->nx - 1;
}

/* w[j] = e^(w[j] - mx), j < n; returns their sum, in float, in order. */
static float exp_weights(float *w, int64_t n, float mx)
{
    float sum = 0.0f;
    for (int64_t j = 0; j < n; j++) {
        float e = expf(w[j] - mx);
        w[j] = e;
        sum += e;
    }
    return sum;
}

/*
 * One token's G heads of one KV head (queries q0, partials acc0 hd + 2
 * apart) over the n positions whose rows are kp[j], vp[j], at once with the
 * AVX2 group kernels: all heads' scores, then each head's max and weights
 * (the per-head path's loops), then all heads' weighted V sums.
 */
static void group_heads(const struct cpu_kvq_attn *a, int G, int hd, float scale,
                        const float *const *kp, const float *const *vp, int n, const float *q0,
                        float *acc0, float *sc)
{
    a->group_dots(q0, G, hd, kp, n, scale, sc, n);
    for (int g = 0; g < G; g++) {
        float *w = sc + (size_t)g * (size_t)n, *acc = acc0 + (size_t)g * ((size_t)hd + 2);
        float mx = -INFINITY;
        for (int j = 0; j < n; j++)
            mx = w[j] > mx ? w[j] : mx;
        acc[hd] = mx;
        acc[hd + 1] = exp_weights(w, n, mx);
    }
    a->group_axpys(acc0, (size_t)hd + 2, G, hd, vp, n, sc, n);
}

/* One item: (group s, KV head hk, chunk) of the wave; see attn-kvq.h. */
static void wave_items(void *arg, int64_t b, int64_t e, int tid)
{
    const struct wave_job *j = arg;
    struct cpu_kvq_attn *a = j->a;
    const struct cpu_kvq_layer *L = j->L;
    const int hd = L->hd, G = L->n_head / L->n_head_kv;
    const int64_t C = CPU_KVQ_CHUNK;
    const size_t tile_floats = 2 * (size_t)C * (size_t)hd + (size_t)C * (size_t)L->n_head;
    float *kt = a->tile + (size_t)tid * tile_floats;
    float *vt = kt + (size_t)C * (size_t)hd, *sc = vt + (size_t)C * (size_t)hd;
    const float **kp = a->rows + (size_t)tid * 2 * (size_t)C, **vp = kp + C;
    const bool grouped = a->group_dots && hd % 8 == 0;
    for (int64_t it = b; it < e; it++) {
        int ci = (int)(it % j->n_chunk);
        int hk = (int)(it / j->n_chunk % L->n_head_kv);
        int s = (int)(it / j->n_chunk / L->n_head_kv);
        const struct cpu_kvq_seq *sq = &L->seq[s];
        const int64_t c0 = (j->c_first + ci) * C, c1 = c0 + C - 1;
        int64_t j0 = c0 > a->slo[s] ? c0 : a->slo[s], j1 = c1 < a->shi[s] ? c1 : a->shi[s];
        if (j0 > j1)
            continue;
        int64_t d0, d1;
        exact_only_rows(a, L, s, &d0, &d1);
        if (!sq->k) {
            /* a ring-only layer: every row its tokens attend to is exact (backend.h step 6) */
        } else if (d0 > d1) {
            tile_decode(a, L, sq, hk, c0, j0, j1, kt, vt);
        } else {
            tile_decode(a, L, sq, hk, c0, j0, j1 < d0 - 1 ? j1 : d0 - 1, kt, vt);
            tile_decode(a, L, sq, hk, c0, j0 > d1 + 1 ? j0 : d1 + 1, j1, kt, vt);
        }
        if (j0 == 0 && sq->k_sink) {
            /* position 0 is in this tile: its exact key replaces the decoded one */
            const float *ks = sq->k_sink + (size_t)hk * (size_t)hd;
            if (kvq_is_rotated(L->kt))
                kvq_rot_forward(L->rot, ks, kt);
            else
                memcpy(kt, ks, (size_t)hd * sizeof *kt);
        }
        for (int i = 0; i < sq->n; i++) {
            int t = sq->tok[i];
            int64_t lo = a->lo[t] > c0 ? a->lo[t] : c0, hi = L->pos[t] < c1 ? L->pos[t] : c1;
            if (lo > hi)
                continue;
            /* positions [xlo, xhi] of this token come from the exact rows */
            int64_t xlo = INT64_MAX, xhi = -1;
            const struct cpu_kvq_exact *ex = L->exact_window > 0 ? &L->exact[s] : NULL;
            const size_t xs = (size_t)L->n_head_kv * (size_t)hd;
            const float *kxr = NULL, *vxr = NULL;
            int64_t x0 = 0;
            if (ex && ex->nx > 0) {
                x0 = ex->x0;
                xlo = L->pos[t] - (int64_t)L->exact_window + 1;
                xlo = xlo > x0 ? xlo : x0;
                xhi = x0 + ex->nx - 1;
                kxr = ex->kx + (size_t)hk * (size_t)hd;
                vxr = ex->vx + (size_t)hk * (size_t)hd;
            }
            if (grouped) {
                for (int64_t p = lo; p <= hi; p++) {
                    bool x = p >= xlo && p <= xhi;
                    size_t xo = (size_t)(p - x0) * xs, to = (size_t)(p - c0) * (size_t)hd;
                    kp[p - lo] = x ? kxr + xo : kt + to;
                    vp[p - lo] = x ? vxr + xo : vt + to;
                }
                int h0 = hk * G;
                group_heads(a, G, hd, L->scale, kp, vp, (int)(hi - lo + 1),
                            a->qr + ((size_t)t * (size_t)a->cap_head + (size_t)h0) * (size_t)hd,
                            part_at(a, ci, t, h0, hd), sc);
                continue;
            }
            for (int g = 0; g < G; g++) {
                int h = hk * G + g;
                const float *q = a->qr + ((size_t)t * (size_t)a->cap_head + (size_t)h) * (size_t)hd;
                float mx = -INFINITY;
                for (int64_t p = lo; p <= hi; p++) {
                    const float *kr = p >= xlo && p <= xhi ? kxr + (size_t)(p - x0) * xs
                                                           : kt + (size_t)(p - c0) * (size_t)hd;
                    float v = a->dot(q, kr, hd) * L->scale;
                    sc[p - lo] = v;
                    mx = v > mx ? v : mx;
                }
                float sum = exp_weights(sc, hi - lo + 1, mx);
                float *acc = part_at(a, ci, t, h, hd);
                for (int d = 0; d < hd; d++)
                    acc[d] = 0.0f;
                for (int64_t p = lo; p <= hi; p++) {
                    const float *vr = p >= xlo && p <= xhi ? vxr + (size_t)(p - x0) * xs
                                                           : vt + (size_t)(p - c0) * (size_t)hd;
                    a->axpy(acc, sc[p - lo], vr, hd);
                }
                acc[hd] = mx;
                acc[hd + 1] = sum;
            }
        }
    }
}

/* Folds chunk partial pt into the running state rs (both [hd] acc, max, sum). */
static void merge(float *rs, const float *pt, int hd)
{
    float m = rs[hd] > pt[hd] ? rs[hd] : pt[hd];
    float fa = rs[hd] == -INFINITY ? 0.0f : expf(rs[hd] - m), fb = expf(pt[hd] - m);
    for (int d = 0; d < hd; d++)
        rs[d] = rs[d] * fa + pt[d] * fb;
    rs[hd] = m;
    rs[hd + 1] = rs[hd + 1] * fa + pt[hd + 1] * fb;
}

void cpu_kvq_attn_run(struct cpu_kvq_attn *a, struct threadpool *tp, const struct cpu_kvq_layer *L)
{
    const int hd = L->hd, H = L->n_head;
    const int64_t C = CPU_KVQ_CHUNK;
    HEARTH_ASSERT(H <= a->cap_head && hd <= a->cap_hd && L->n_seq <= a->cap_tok);
    HEARTH_ASSERT(!(kvq_is_rotated(L->kt) || kvq_is_rotated(L->vt)) ||
                  (L->rot && L->rot->d == hd));
    int64_t cmin = INT64_MAX, cmax = -1, work = 0;
    for (int s = 0; s < L->n_seq; s++) {
        const struct cpu_kvq_seq *sq = &L->seq[s];
        a->slo[s] = INT64_MAX;
        a->shi[s] = -1;
        for (int i = 0; i < sq->n; i++) {
            int t = sq->tok[i];
            HEARTH_ASSERT(t >= 0 && t < a->cap_tok);
            int64_t p = L->pos[t], lo = 0;
            if (L->window > 0 && p - (int64_t)L->window + 1 > 0)
                lo = p - (int64_t)L->window + 1; /* the window latest, itself included */
            a->lo[t] = lo;
            a->slo[s] = lo < a->slo[s] ? lo : a->slo[s];
            a->shi[s] = p > a->shi[s] ? p : a->shi[s];
            work += (p - lo + 1) * H * hd;
            for (int h = 0; h < H; h++) {
                const float *q = L->q + (int64_t)t * L->q_stride + (int64_t)h * hd;
                float *qr = a->qr + ((size_t)t * (size_t)a->cap_head + (size_t)h) * (size_t)hd;
                if (kvq_is_rotated(L->kt))
                    kvq_rot_forward(L->rot, q, qr);
                else
                    memcpy(qr, q, (size_t)hd * sizeof *qr);
                float *rs = run_at(a, t, h, hd);
                memset(rs, 0, (size_t)hd * sizeof *rs);
                rs[hd] = -INFINITY;
                rs[hd + 1] = 0.0f;
            }
        }
        if (sq->n > 0) {
            cmin = a->slo[s] / C < cmin ? a->slo[s] / C : cmin;
            cmax = a->shi[s] / C > cmax ? a->shi[s] / C : cmax;
        }
    }
    for (int64_t cw = cmin; cw <= cmax; cw += KVQ_WAVE) {
        int nw = (int)(cmax - cw + 1 < KVQ_WAVE ? cmax - cw + 1 : KVQ_WAVE);
        struct wave_job j = {a, L, cw, nw};
        int64_t n_items = (int64_t)L->n_seq * L->n_head_kv * nw;
        /* below ~64k multiply-adds a pool round trip costs more than it saves (as forward.c) */
        threadpool_for(tp, n_items, work < 65536 ? n_items : 1, wave_items, &j);
        for (int s = 0; s < L->n_seq; s++) {
            for (int i = 0; i < L->seq[s].n; i++) {
                int t = L->seq[s].tok[i];
                for (int ci = 0; ci < nw; ci++) {
                    int64_t c0 = (cw + ci) * C;
                    if (c0 > L->pos[t] || c0 + C - 1 < a->lo[t])
                        continue;
                    for (int h = 0; h < H; h++)
                        merge(run_at(a, t, h, hd), part_at(a, ci, t, h, hd), hd);
                }
            }
        }
    }
    for (int s = 0; s < L->n_seq; s++) {
        for (int i = 0; i < L->seq[s].n; i++) {
            int t = L->seq[s].tok[i];
            for (int h = 0; h < H; h++) {
                float *rs = run_at(a, t, h, hd);
                float *o = L->out + (int64_t)t * L->out_stride + (int64_t)h * hd;
                float inv = 1.0f / rs[hd + 1];
                for (int d = 0; d < hd; d++)
                    rs[d] *= inv;
                if (kvq_is_rotated(L->vt))
                    kvq_rot_inverse(L->rot, rs, o);
                else
                    memcpy(o, rs, (size_t)hd * sizeof *o);
            }
        }
    }
}

/* ---- key mean ---------------------------------------------------------------------- */

void cpu_kvq_key_center(float *k, int64_t stride, const int32_t *rows, int n, bool first,
                        int kv_dim, float *mu, float *sink)
{
    if (first) {
        int hi = n < CPU_KVQ_MEAN_N ? n : CPU_KVQ_MEAN_N;
        for (int d = 0; d < kv_dim; d++) {
            double sum = 0.0;
            for (int i = CPU_KVQ_MEAN_SKIP; i < hi; i++)
                sum += (double)k[(int64_t)rows[i] * stride + d];
            mu[d] = hi > CPU_KVQ_MEAN_SKIP ? (float)(sum / (hi - CPU_KVQ_MEAN_SKIP)) : 0.0f;
        }
    }
    for (int i = 0; i < n; i++) {
        float *ki = k + (int64_t)rows[i] * stride;
        for (int d = 0; d < kv_dim; d++)
            ki[d] -= mu[d];
    }
    if (first && sink && n > 0)
        memcpy(sink, k + (int64_t)rows[0] * stride, (size_t)kv_dim * sizeof *sink);
}

/* ---- encoding the new rows ------------------------------------------------------- */

struct enc_job {
    enum kvq_type kt, vt;
    const struct kvq_rot *rot;
    int n_head_kv, hd;
    const float *k, *v;
    int64_t stride;
    uint8_t *const *k_dst;
    uint8_t *const *v_dst;
};

/* Item = (token, KV head, K or V). */
static void enc_items(void *arg, int64_t b, int64_t e, int tid)
{
    const struct enc_job *j = arg;
    (void)tid;
    for (int64_t it = b; it < e; it++) {
        int is_v = (int)(it & 1);
        int h = (int)(it / 2 % j->n_head_kv), t = (int)(it / 2 / j->n_head_kv);
        enum kvq_type ty = is_v ? j->vt : j->kt;
        const float *x = (is_v ? j->v : j->k) + (int64_t)t * j->stride + (int64_t)h * j->hd;
        uint8_t *dst = (is_v ? j->v_dst : j->k_dst)[t] + (size_t)h * kvq_head_bytes(ty, j->hd);
        kvq_encode(ty, j->rot, j->hd, x, dst);
    }
}

void cpu_kvq_encode_rows(struct threadpool *tp, enum kvq_type kt, enum kvq_type vt,
                         const struct kvq_rot *rot, int n_tok, int n_head_kv, int hd,
                         const float *k, const float *v, int64_t kv_stride,
                         uint8_t *const *k_dst, uint8_t *const *v_dst)
{
    struct enc_job j = {kt, vt, rot, n_head_kv, hd, k, v, kv_stride, k_dst, v_dst};
    int64_t n_items = (int64_t)n_tok * n_head_kv * 2;
    /* a rotated vector costs microseconds to encode (the scale search); the block types less */
    bool costly = kvq_is_rotated(kt) || kvq_is_rotated(vt);
    threadpool_for(tp, n_items, costly || n_items >= 32 ? 1 : n_items, enc_items, &j);
}
