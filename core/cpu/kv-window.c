/*
 * cpu/kv-window: staging of the exact recent window (attn-kvq.h
 * cpu_kvq_exact_stage), shared by cpu/forward.c and the CPU backend's
 * ATTENTION (backend.h step 5) so both give the same bits.
 *
 * Per group of a batch (one cache, consecutive positions [first, last]) the
 * rows of [max(0, first - W + 1), last] are staged as floats in the
 * attention's domain: the older ones from the ring (the decoded row where a
 * rewind left its slot holding another position), the batch's own from its
 * centred k and its v through the same f16 rounding the ring applies, so a
 * row reads the same whether it came in this batch or an earlier one. The
 * batch's rows then enter the ring; every old row is read before the first
 * write because the two share slots. The ring is addressed through a small
 * struct (base, stride, tags) rather than kv_cache, so the backend's ring
 * tensors and the forward pass's kv_cache arrays are the same case.
 * Cost: a decode step stages W - 1 ring rows per layer (a sliding-window layer
 * its window - 1, cpu_kvq_ring.span); ring halves become
 * floats with F16C where cpu_isa_best allows AVX2 (exact, so the same bits
 * as the scalar f16_to_f32: ~13x faster, a few per cent of the layer's
 * attention at W = 128 instead of ~20%), and the kernel skips decoding the
 * compressed rows the staged ones replace (attn-kvq.c), so the window about
 * breaks even against W = 0. Rejected: staging into the kernel's decoded
 * tiles, or reading the ring in place in the kernel (the kernel would need
 * the ring's tags and slot wrap, and a batch longer than W overwrites slots
 * its own early tokens still read); a persistent f32 mirror of the ring
 * (twice the ring's memory for the little the staging still costs).
 */
#include <string.h>

#include "cpu/attn-kvq.h"
#include "cpu/dot.h"
#include "f16.h"

size_t cpu_kvq_exact_rows(uint32_t w, int n)
{
    return (size_t)(w > 0 ? w - 1 : 0) + (size_t)(n > 0 ? n : 0);
}

/* x ([nkv][hd] floats) in type t's attention domain, rounded to f16 into h16. */
static void exact_row_store(enum kvq_type t, const struct kvq_rot *rot, const float *x, int nkv,
                            int hd, uint16_t *h16)
{
    float tmp[KVQ_MAX_HEAD_DIM];
    for (int h = 0; h < nkv; h++) {
        const float *xh = x + (size_t)h * (size_t)hd;
        if (kvq_is_rotated(t)) {
            kvq_rot_forward(rot, xh, tmp);
            xh = tmp;
        }
        for (int i = 0; i < hd; i++)
            h16[(size_t)h * (size_t)hd + (size_t)i] = f32_to_f16(xh[i]);
    }
}

/* The encoded row src (nkv head vectors of type t) decoded into the attention domain. */
static void exact_row_decode(enum kvq_type t, const struct kvq_rot *rot, const uint8_t *src,
                             int nkv, int hd, float *dst)
{
    const size_t hb = kvq_head_bytes(t, hd);
    for (int h = 0; h < nkv; h++) {
        if (kvq_is_rotated(t))
            kvq_decode_rotated(t, rot, src + (size_t)h * hb, dst + (size_t)h * (size_t)hd);
        else
            kvq_decode(t, rot, hd, src + (size_t)h * hb, dst + (size_t)h * (size_t)hd);
    }
}

typedef void (*f16_rows_fn)(const uint16_t *h16, size_t n, float *dst);

static void f16_rows_scalar(const uint16_t *h16, size_t n, float *dst)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = f16_to_f32(h16[i]);
}

void cpu_kvq_exact_stage(enum kvq_type kt, enum kvq_type vt, const struct kvq_rot *rot,
                         int n_head_kv, int hd, size_t k_row, size_t v_row,
                         const struct cpu_kvq_seq *sq, int64_t first, const float *k,
                         const float *v, int64_t kv_stride, const struct cpu_kvq_ring *ring,
                         float *kx, float *vx, struct cpu_kvq_exact *ex)
{
    const int nkv = n_head_kv;
    const size_t KV = (size_t)nkv * (size_t)hd;
    const int64_t W = ring->w;
    const int64_t span = ring->span > 0 && ring->span < ring->w ? ring->span : W;
    const int64_t x0 = first - span + 1 > 0 ? first - span + 1 : 0;
    ex->kx = kx;
    ex->vx = vx;
    ex->x0 = x0;
    ex->nx = first - x0 + sq->n;
    /* both conversions are exact, so the choice never moves a bit */
    const f16_rows_fn f16_row_to_f32 =
        cpu_isa_best() >= CPU_ISA_AVX2 ? cpu_kvq__f16_to_f32_avx2 : f16_rows_scalar;
    for (int64_t p = x0; p < first; p++) {
        const size_t r = (size_t)(p - x0) * KV, slot = (size_t)(p % W);
        float *kd = kx + r, *vd = vx + r;
        if (ring->pos[slot] == (int32_t)p) {
            f16_row_to_f32(ring->k + slot * ring->k_stride, KV, kd);
            f16_row_to_f32(ring->v + slot * ring->v_stride, KV, vd);
        } else if (!sq->k) {
            /*
             * A ring-only layer (no codes): the rewind rule keeps every row
             * it attends to in the ring, so this one is older than its
             * sliding window and never read.
             */
            memset(kd, 0, KV * sizeof *kd);
            memset(vd, 0, KV * sizeof *vd);
        } else {
            exact_row_decode(kt, rot, sq->k + (size_t)p * k_row, nkv, hd, kd);
            exact_row_decode(vt, rot, sq->v + (size_t)p * v_row, nkv, hd, vd);
        }
    }
    for (int i = 0; i < sq->n; i++) {
        const int64_t row = sq->tok[i], p = first + i;
        const size_t slot = (size_t)(p % W);
        uint16_t *hk = ring->k + slot * ring->k_stride, *hv = ring->v + slot * ring->v_stride;
        exact_row_store(kt, rot, k + row * kv_stride, nkv, hd, hk);
        exact_row_store(vt, rot, v + row * kv_stride, nkv, hd, hv);
        ring->pos[slot] = (int32_t)p;
        f16_row_to_f32(hk, KV, kx + (size_t)(p - x0) * KV);
        f16_row_to_f32(hv, KV, vx + (size_t)(p - x0) * KV);
    }
    if (x0 == 0 && sq->k_sink) {
        for (int h = 0; h < nkv; h++) {
            const float *ks = sq->k_sink + (size_t)h * (size_t)hd;
            if (kvq_is_rotated(kt))
                kvq_rot_forward(rot, ks, kx + (size_t)h * (size_t)hd);
            else
                memcpy(kx + (size_t)h * (size_t)hd, ks, (size_t)hd * sizeof *kx);
        }
    }
}
