/*
 * vulkan/op-attention: store the batch's K/V rows into the F16 cache
 * (kv-store.comp), then attend (attention.comp, one workgroup per head and
 * token, online softmax over chunks of positions). The barrier vk__dispatch
 * records between the two makes the new rows visible to the attention pass,
 * so a batch attends to its own earlier tokens exactly as decode would.
 *
 * Compressed caches (vk-kvq.h, the second half of this file): the same two
 * steps with kv-store-q.comp (one dispatch for K, one for V: each encodes
 * into its own type) and attention-kvq.comp, preceded for a non-f16 K by
 * kv-center.comp (the key mean and sink of ATTENTION step 3, k_aux). All
 * of them take their position from replay.c's step buffer while it captures
 * (the last binding: 4 for kv_store and attention, 5 for attention_kvq after
 * its sink, 2 for kv_store_q and kv_center; kv_center's `first` is then
 * step == 0), so decode replays cover both paths. The rotation's sign diagonal is
 * drawn on the host per op (kvq_rot_init, see kq_sign_bits) and
 * travels as 256 bits of push constants, so no per-layer buffer or upload
 * exists. Encoded bytes equal kvq_encode's except where the rotated types'
 * float scale search (the CPU's is double) tips a code (kv-store-q.comp).
 * The three kvq pipelines are pipeline.c's (VK_SH_KV_STORE_Q, ..._KVQ,
 * VK_SH_KV_CENTER) so vk__dispatch can capture them.
 * The exact window (ATTENTION step 5, kv_window > 0) attends first and
 * writes the ring after: kv-exact.comp puts the batch's K and V rows, in the
 * attention's domain and rounded to f16, into a per-stream scratch buffer;
 * attention-kvq.comp reads positions inside the window from it (the batch's
 * own) or from the ring (older ones whose tag matches); kv-ring.comp then
 * copies the batch's last min(W, n_tok) rows into their slots. Staging the
 * whole window as forward.c does was rejected: it costs a copy of W - 1 ring
 * rows per layer and token, where reading the ring in place costs one tag
 * read per position; and the ring cannot be written first, since a batch
 * longer than one token overwrites slots its earlier tokens still read.
 * A ring-only layer (step 6: no caches, window > 0, kv_window >= window)
 * runs the same passes minus kv-store-q: with W >= window every position the
 * attention reads is the batch's or a ring slot the caller keeps tagged, so
 * attention-kvq.comp never reaches its decode path, and q's buffer stands in
 * at the cache bindings (which a Vulkan descriptor cannot leave empty). That
 * holds for f16/f16 too (vk_kvq_takes sends it here, not to vk_attention,
 * whose kernels need the caches): both types f16 means no kv-center, no
 * sink, no rotation, so the ring rows are k and v rounded to f16.
 * Flash-decoding (attn-split.c, vk-attn-split.h): for a decode-sized batch
 * over a long cache both attention kernels run a (head, token, split) grid
 * into the caller's scratch, and attention_combine merges the partials into
 * out (undoing a rotated V's rotation there); the count and the scratch are
 * settled before the first dispatch, since growing the scratch submits.
 * graph.c's run_attention runs the q/k norms and RoPE for every cache type
 * and calls vk_attention_kvq for the compressed ones; vk_kvq_args_from_op
 * checks their tensors.
 */
#include <stdlib.h>
#include <string.h>

#include "vk-attn-split.h"
#include "vk-graph.h"
#include "vk-internal.h"
#include "vk-kvq.h"
#include "cpu/attn-kvq.h"
#include "../shaders/params/attn.h"
#include "../shaders/params/kv.h"

hearth_status vk_attention(struct vk_ctx *ctx, const struct vk_attn_args *a)
{
    hearth_status st;
    uint32_t kv_dim = a->n_head_kv * a->head_dim;
    if (a->n_tok == 0 || a->n_head == 0 || a->n_head_kv == 0 || a->n_head % a->n_head_kv != 0 ||
        a->head_dim == 0 || a->head_dim % 2 != 0 || a->head_dim > VK_ATTN_MAX_HD ||
        (uint64_t)a->pos0 + a->n_tok > a->n_ctx || a->q_stride < a->n_head * a->head_dim ||
        a->o_stride < a->n_head * a->head_dim || a->kv_stride < kv_dim ||
        a->n_head > ctx->caps.max_wg_count[0] || a->n_tok > ctx->caps.max_wg_count[1])
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan attention: %u tokens at %u (n_ctx %u), "
                       "heads %u/%u of %u dims (even, <= %d), strides q %u kv %u o %u",
                       a->n_tok, a->pos0, a->n_ctx, a->n_head, a->n_head_kv, a->head_dim,
                       VK_ATTN_MAX_HD, a->q_stride, a->kv_stride, a->o_stride);
    /* flash-decoding: the count and its scratch first (growing it submits) */
    uint32_t ns = vk__attn_n_split(ctx, a, a->window && a->window < a->n_ctx ? a->window : a->n_ctx);
    if (ns > 1 && (st = vk__attn_split_scratch(ctx, a, ns)))
        return st;
    uint32_t qo, ko, vo, kco, vco, oo;
    uint64_t cache_bytes = (uint64_t)a->n_ctx * kv_dim * 2;
    uint64_t kv_bytes = ((uint64_t)(a->n_tok - 1) * a->kv_stride + kv_dim) * 4;
    uint64_t q_bytes = ((uint64_t)(a->n_tok - 1) * a->q_stride + a->n_head * a->head_dim) * 4;
    uint64_t o_bytes = ((uint64_t)(a->n_tok - 1) * a->o_stride + a->n_head * a->head_dim) * 4;
    if ((st = vk__view_words(a->q, q_bytes, "attention", "q", &qo)) ||
        (st = vk__view_words(a->k_new, kv_bytes, "attention", "k_new", &ko)) ||
        (st = vk__view_words(a->v_new, kv_bytes, "attention", "v_new", &vo)) ||
        (st = vk__view_words(a->k_cache, cache_bytes, "attention", "k_cache", &kco)) ||
        (st = vk__view_words(a->v_cache, cache_bytes, "attention", "v_cache", &vco)) ||
        (st = vk__view_words(a->out, o_bytes, "attention", "out", &oo)))
        return st;

    /* while replay.c captures, the position comes from its step buffer (slot > 0) */
    uint32_t slot = vk__pos_slot(ctx, a->pos0);
    const struct vk_buffer *step = vk__step_bind(ctx, slot, a->q.buf);
    uint32_t pos0 = slot ? 0 : a->pos0;
    struct vk_kv_store_params kp = {
        .n_tok = a->n_tok, .kv_dim = kv_dim, .pos0 = pos0, .pos_slot = slot, .k_src_off = ko, .v_src_off = vo,
        .src_stride = a->kv_stride, .k_cache_off = kco, .v_cache_off = vco,
    };
    const struct vk_buffer *kb[5] = {a->k_new.buf, a->v_new.buf, a->k_cache.buf, a->v_cache.buf,
                                     step};
    uint32_t gx, gy;
    vk__grid((uint32_t)(((uint64_t)a->n_tok * (kv_dim / 2) + VK_KV_WG - 1) / VK_KV_WG), &gx, &gy);
    if ((st = vk__dispatch(ctx, VK_SH_KV_STORE, kb, &kp, sizeof kp, gx, gy, 1)) != HEARTH_OK)
        return st;

    struct vk_attn_params ap = {
        .n_tok = a->n_tok, .n_head = a->n_head, .n_head_kv = a->n_head_kv,
        .head_dim = a->head_dim, .pos0 = pos0, .window = a->window, .scale = a->scale,
        .kv_dim = kv_dim, .q_off = qo, .q_stride = a->q_stride, .o_off = oo,
        .o_stride = a->o_stride, .k_cache_off = kco, .v_cache_off = vco, .pos_slot = slot,
        .n_split = ns,
    };
    /* split: the partials go to the scratch (at float 0), and the merge writes out */
    if (ns > 1)
        ap.o_off = 0;
    const struct vk_buffer *ab[5] = {a->q.buf, a->k_cache.buf, a->v_cache.buf,
                                     ns > 1 ? a->split_scratch : a->out.buf, step};
    if ((st = vk__dispatch(ctx, VK_SH_ATTENTION, ab, &ap, sizeof ap, a->n_head, a->n_tok, ns)))
        return st;
    return ns > 1 ? vk__attn_combine(ctx, a, ns, oo, NULL) : HEARTH_OK;
}

/* ==== compressed KV caches (vk-kvq.h) ======================================= */

_Static_assert(VK_KVQ_F16 == KVQ_F16 && VK_KVQ_Q8_0 == KVQ_Q8_0 && VK_KVQ_Q4_0 == KVQ_Q4_0 &&
                   VK_KVQ_ROT4 == KVQ_ROT4 && VK_KVQ_ROT3 == KVQ_ROT3,
               "shader type ids are enum kvq_type");
_Static_assert(VK_KVQ_MAX_HD == VK_ATTN_MAX_HD && VK_KVQ_SIGN_WORDS * 32 == VK_KVQ_MAX_HD,
               "one head_dim limit, one sign bit per coordinate");

struct vk_kvq {
    struct vk_ctx *ctx;
    struct vk_buffer xs; /* the exact window's batch rows: K [n_tok][kv_dim] halves, then V */
};

hearth_status vk_kvq_create(struct vk_ctx *ctx, struct vk_kvq **out)
{
    *out = NULL;
    struct vk_kvq *kq = calloc(1, sizeof *kq);
    if (!kq)
        return err_set(HEARTH_ERR_NO_MEMORY, "vulkan kvq: stream state");
    kq->ctx = ctx;
    *out = kq;
    return HEARTH_OK;
}

void vk_kvq_destroy(struct vk_kvq *kq)
{
    if (!kq)
        return;
    vk_buffer_destroy(kq->ctx, &kq->xs);
    free(kq);
}

bool vk_kvq_supports(int k_type, int v_type)
{
    return k_type >= 0 && k_type < KVQ_TYPE_COUNT && v_type >= 0 && v_type < KVQ_TYPE_COUNT;
}

bool vk_kvq_supports_window(int k_type, int v_type)
{
    return vk_kvq_supports(k_type, v_type) && (k_type != KVQ_F16 || v_type != KVQ_F16);
}

bool vk_kvq_takes(const struct hearth_op_attention *at)
{
    return at->k_type != KVQ_F16 || at->v_type != KVQ_F16 || at->k_cache.buf == NULL;
}

/* Makes the scratch at least need bytes (after running recorded work that may read it). */
static hearth_status kq_scratch(struct vk_kvq *kq, uint64_t need)
{
    hearth_status st;
    if (kq->xs.buf && kq->xs.size >= need)
        return HEARTH_OK;
    if ((st = vk_submit(kq->ctx)))
        return st;
    vk_buffer_destroy(kq->ctx, &kq->xs);
    uint64_t want = need < (64u << 10) ? (64u << 10) : need;
    if ((st = vk_buffer_create(kq->ctx, want, VK_BUF_DEVICE, &kq->xs)))
        return err_prefix(st, "vulkan attention: exact-window scratch of %llu bytes",
                          (unsigned long long)want);
    return HEARTH_OK;
}

/*
 * Step 5's passes before the attention: the batch's K and V rows in the
 * attention's domain as f16 into the scratch (K rows at word 0, V after).
 */
static hearth_status kq_exact_rows(struct vk_kvq *kq, const struct vk_kvq_args *ka, uint32_t ko,
                                   uint32_t vo, const uint32_t *sign)
{
    const struct vk_attn_args *a = &ka->a;
    uint32_t kv_dim = a->n_head_kv * a->head_dim;
    hearth_status st = kq_scratch(kq, (uint64_t)a->n_tok * kv_dim * 4);
    for (int which = 0; which < 2 && st == HEARTH_OK; which++) {
        struct vk_kv_exact_params xp = {
            .n_tok = a->n_tok, .n_head_kv = a->n_head_kv, .head_dim = a->head_dim,
            .type = (uint32_t)(which ? ka->v_type : ka->k_type), .src_off = which ? vo : ko,
            .src_stride = a->kv_stride, .dst_off = which ? a->n_tok * kv_dim / 2 : 0,
        };
        memcpy(xp.sign, sign, sizeof xp.sign);
        const struct vk_buffer *xb[2] = {which ? a->v_new.buf : a->k_new.buf, &kq->xs};
        st = vk__dispatch(kq->ctx, VK_SH_KV_EXACT, xb, &xp, sizeof xp, a->n_head_kv, a->n_tok, 1);
    }
    return st;
}

/* kvq_head_bytes, limited to the head widths the shaders take (<= VK_KVQ_MAX_HD). */
static uint32_t kq_head_bytes(enum kvq_type t, uint32_t hd)
{
    return hd <= VK_KVQ_MAX_HD ? (uint32_t)kvq_head_bytes(t, (int)hd) : 0;
}

/* The sign diagonal of kvq_rot_init(hd, seed, layer) as bits (set: -1), for push constants. */
static hearth_status kq_sign_bits(uint64_t seed, uint32_t layer, uint32_t hd, uint32_t *bits)
{
    struct kvq_rot r;
    hearth_status st = kvq_rot_init(&r, (int)hd, seed, layer);
    if (st != HEARTH_OK)
        return st;
    memset(bits, 0, VK_KVQ_SIGN_WORDS * sizeof *bits);
    for (uint32_t i = 0; i < hd; i++)
        if (r.sign[i] < 0.0f)
            bits[i / 32] |= 1u << (i % 32);
    return HEARTH_OK;
}

/*
 * ATTENTION step 6 (k_cache absent): v_cache absent too and a sliding window
 * the exact window covers (so every attended position is in the ring or the
 * batch). Any type pair: for f16/f16 the ring is the layer's whole cache.
 */
static hearth_status kq_ring_only_ok(bool v_cache, uint32_t window, uint32_t kv_window)
{
    if (v_cache)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan attention: k_cache absent but v_cache "
                       "present (a ring-only layer, backend.h step 6, has neither)");
    if (window == 0 || kv_window < window)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan attention: caches absent (ring-only "
                       "layer, backend.h step 6) need window > 0 and kv_window >= window; got "
                       "window %u, kv_window %u", window, kv_window);
    return HEARTH_OK;
}

hearth_status vk_attention_kvq(struct vk_kvq *kq, const struct vk_kvq_args *ka)
{
    hearth_status st;
    const struct vk_attn_args *a = &ka->a;
    struct vk_ctx *ctx = kq->ctx;
    uint32_t hd = a->head_dim, kv_dim = a->n_head_kv * hd;
    bool rotated = kvq_is_rotated(ka->k_type) || kvq_is_rotated(ka->v_type);
    uint64_t khb = kq_head_bytes(ka->k_type, hd), vhb = kq_head_bytes(ka->v_type, hd);
    if (khb == 0 || vhb == 0 || hd % 2 != 0)
        return err_set(HEARTH_ERR_UNSUPPORTED, "vulkan attention: kv types %d/%d at head_dim %u "
                       "(<= %d, even; a multiple of 32 for the quantized types)",
                       (int)ka->k_type, (int)ka->v_type, hd, VK_KVQ_MAX_HD);
    /* step 6: no caches, so no rows, no n_ctx bound (positions must fit a uint32) */
    const bool ring_only = a->k_cache.buf == NULL;
    if (ring_only && (st = kq_ring_only_ok(a->v_cache.buf != NULL, a->window, ka->kv_window)))
        return st;
    if (a->n_tok == 0 || a->n_head == 0 || a->n_head_kv == 0 || a->n_head % a->n_head_kv != 0 ||
        (uint64_t)a->pos0 + a->n_tok > (ring_only ? 0xffffffffull : a->n_ctx) ||
        a->q_stride < a->n_head * hd || a->o_stride < a->n_head * hd || a->kv_stride < kv_dim ||
        (!ring_only && (ka->k_row_bytes < a->n_head_kv * khb ||
                        ka->v_row_bytes < a->n_head_kv * vhb)) ||
        a->n_head > ctx->caps.max_wg_count[0] || a->n_tok > ctx->caps.max_wg_count[1])
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan attention: %u tokens at %u (n_ctx %u), "
                       "heads %u/%u of %u dims, strides q %u kv %u o %u, cache rows %u/%u bytes",
                       a->n_tok, a->pos0, a->n_ctx, a->n_head, a->n_head_kv, hd, a->q_stride,
                       a->kv_stride, a->o_stride, ka->k_row_bytes, ka->v_row_bytes);
    uint64_t kc_bytes = (uint64_t)a->n_ctx * ka->k_row_bytes;
    uint64_t vc_bytes = (uint64_t)a->n_ctx * ka->v_row_bytes;
    if (!ring_only &&
        (a->v_cache.buf == NULL || a->k_cache.offset + kc_bytes > a->k_cache.buf->size ||
         a->v_cache.offset + vc_bytes > a->v_cache.buf->size ||
         a->k_cache.offset + kc_bytes > 0xffffffffull ||
         a->v_cache.offset + vc_bytes > 0xffffffffull))
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan attention: caches of %u rows (%u / %u "
                       "bytes) do not fit their buffers", a->n_ctx, ka->k_row_bytes,
                       ka->v_row_bytes);
    /* flash-decoding, as vk_attention; a ring-only layer spans its window */
    uint32_t span = a->window && (ring_only || a->window < a->n_ctx) ? a->window : a->n_ctx;
    uint32_t ns = vk__attn_n_split(ctx, a, span);
    if (ns > 1 && (st = vk__attn_split_scratch(ctx, a, ns)))
        return st;
    uint32_t qo, ko, vo, oo;
    uint64_t kv_bytes = ((uint64_t)(a->n_tok - 1) * a->kv_stride + kv_dim) * 4;
    uint64_t q_bytes = ((uint64_t)(a->n_tok - 1) * a->q_stride + a->n_head * hd) * 4;
    uint64_t o_bytes = ((uint64_t)(a->n_tok - 1) * a->o_stride + a->n_head * hd) * 4;
    if ((st = vk__view_words(a->q, q_bytes, "attention", "q", &qo)) ||
        (st = vk__view_words(a->k_new, kv_bytes, "attention", "k_new", &ko)) ||
        (st = vk__view_words(a->v_new, kv_bytes, "attention", "v_new", &vo)) ||
        (st = vk__view_words(a->out, o_bytes, "attention", "out", &oo)))
        return st;

    uint32_t sign[VK_KVQ_SIGN_WORDS] = {0};
    if (rotated && (st = kq_sign_bits(ka->kv_seed, ka->layer, hd, sign)) != HEARTH_OK)
        return st;
    /* replay capture: the position (and kv_center's first) comes from a step slot */
    uint32_t slot = vk__pos_slot(ctx, a->pos0);
    const struct vk_buffer *step = vk__step_bind(ctx, slot, a->q.buf);
    uint32_t pos0 = slot ? 0 : a->pos0;
    const bool centred = ka->k_type != KVQ_F16;
    uint32_t auxo = 0;
    if (centred) {
        /* step 3's key mean: k_new centred in place, mu and the sink into k_aux */
        uint64_t aux_bytes = ((uint64_t)ka->aux_stride + kv_dim) * 4;
        if (ka->k_aux.buf == NULL || ka->aux_stride < kv_dim)
            return err_set(HEARTH_ERR_INVALID_ARG, "vulkan attention: a %s K cache needs k_aux, "
                           "F32 [2][%u] (row stride %u floats)", kvq_type_name(ka->k_type),
                           kv_dim, ka->aux_stride);
        if ((st = vk__view_words(ka->k_aux, aux_bytes, "attention", "k_aux", &auxo)))
            return st;
        uint32_t hi = a->n_tok < CPU_KVQ_MEAN_N ? a->n_tok : CPU_KVQ_MEAN_N;
        struct vk_kv_center_params cp = {
            .n_tok = a->n_tok, .kv_dim = kv_dim, .k_off = ko, .k_stride = a->kv_stride,
            .aux_off = auxo, .aux_stride = ka->aux_stride, .first = pos0 == 0 && !slot,
            .mean_lo = CPU_KVQ_MEAN_SKIP,
            .mean_hi = hi > CPU_KVQ_MEAN_SKIP ? hi : CPU_KVQ_MEAN_SKIP, .pos_slot = slot,
        };
        const struct vk_buffer *cb[3] = {a->k_new.buf, ka->k_aux.buf, step};
        if ((st = vk__dispatch(ctx, VK_SH_KV_CENTER, cb, &cp, sizeof cp,
                               (kv_dim + VK_KV_WG - 1) / VK_KV_WG, 1, 1)))
            return st;
    }
    for (int which = 0; which < 2 && !ring_only; which++) {
        struct vk_kvq_store_params sp = {
            .n_tok = a->n_tok, .n_head_kv = a->n_head_kv, .head_dim = hd,
            .type = (uint32_t)(which ? ka->v_type : ka->k_type), .pos0 = pos0,
            .src_off = which ? vo : ko, .src_stride = a->kv_stride,
            .cache_off = (uint32_t)(which ? a->v_cache.offset : a->k_cache.offset),
            .row_bytes = which ? ka->v_row_bytes : ka->k_row_bytes, .pos_slot = slot,
        };
        memcpy(sp.sign, sign, sizeof sign);
        const struct vk_buffer *sb[3] = {which ? a->v_new.buf : a->k_new.buf,
                                         which ? a->v_cache.buf : a->k_cache.buf, step};
        if ((st = vk__dispatch(ctx, VK_SH_KV_STORE_Q, sb, &sp, sizeof sp, a->n_head_kv, a->n_tok,
                               1)) != HEARTH_OK)
            return st;
    }

    /* step 5: the window's rows of this batch, and where the ring's older ones lie */
    const uint32_t W = ka->kv_window;
    uint32_t kro = 0, vro = 0, rpo = 0;
    if (W > 0) {
        uint64_t ring_bytes = ((uint64_t)(W - 1) * ka->ring_stride + kv_dim / 2) * 4;
        if ((ka->k_type == KVQ_F16 && ka->v_type == KVQ_F16 && !ring_only) ||
            (st = vk__view_words(ka->k_ring, ring_bytes, "attention", "k_ring", &kro)) ||
            (st = vk__view_words(ka->v_ring, ring_bytes, "attention", "v_ring", &vro)) ||
            (st = vk__view_words(ka->ring_pos, (uint64_t)W * 4, "attention", "ring_pos", &rpo)))
            return st ? st : err_set(HEARTH_ERR_INVALID_ARG, "vulkan attention: an exact window "
                                     "over an f16/f16 cache (backend.h: kv_window 0 there but "
                                     "on a ring-only layer)");
        if ((st = kq_exact_rows(kq, ka, ko, vo, sign)))
            return st;
    }

    struct vk_attn_kvq_params ap = {
        .n_tok = a->n_tok, .n_head = a->n_head, .n_head_kv = a->n_head_kv, .head_dim = hd,
        .pos0 = pos0, .window = a->window, .scale = a->scale,
        .types = (uint32_t)ka->k_type | (uint32_t)ka->v_type << 8 | (uint32_t)centred << 16 |
                 ns << 24,
        .q_off = qo, .q_stride = a->q_stride, .o_off = ns > 1 ? 0 : oo, .o_stride = a->o_stride,
        .k_off = ring_only ? 0 : (uint32_t)a->k_cache.offset,
        .v_off = ring_only ? 0 : (uint32_t)a->v_cache.offset,
        .k_row_bytes = ka->k_row_bytes, .v_row_bytes = ka->v_row_bytes,
        .sink_off = auxo + (centred ? ka->aux_stride : 0), .pos_slot = slot,
        .kv_window = W, .kr_off = kro, .vr_off = vro, .rp_off = rpo, .r_stride = ka->ring_stride,
    };
    memcpy(ap.sign, sign, sizeof sign);
    /*
     * The descriptor set must bind a valid buffer in every slot; slots the
     * shader never reads in this call (no sink, no window; no caches on a
     * ring-only layer, where W >= window sends every position to the batch or
     * the ring) are bound to q's buffer.
     */
    const struct vk_buffer *ph = a->q.buf;
    const struct vk_buffer *ab[10] = {a->q.buf, ring_only ? ph : a->k_cache.buf,
                                      ring_only ? ph : a->v_cache.buf,
                                      ns > 1 ? a->split_scratch : a->out.buf,
                                      centred ? ka->k_aux.buf : ph, step,
                                      W ? &kq->xs : ph, W ? ka->k_ring.buf : ph,
                                      W ? ka->v_ring.buf : ph, W ? ka->ring_pos.buf : ph};
    if ((st = vk__dispatch(ctx, VK_SH_ATTENTION_KVQ, ab, &ap, sizeof ap, a->n_head, a->n_tok,
                           ns)) ||
        (ns > 1 && (st = vk__attn_combine(ctx, a, ns, oo,
                                          kvq_is_rotated(ka->v_type) ? sign : NULL))))
        return st;
    if (W == 0)
        return HEARTH_OK;
    /* the batch's last min(W, n_tok) rows into the ring, now that every old row was read */
    struct vk_kv_ring_params rp = {
        .n_tok = a->n_tok, .kv_dim = kv_dim, .pos0 = pos0, .kv_window = W, .kr_off = kro,
        .vr_off = vro, .rp_off = rpo, .pos_slot = slot, .r_stride = ka->ring_stride,
    };
    const struct vk_buffer *rb[5] = {&kq->xs, ka->k_ring.buf, ka->v_ring.buf, ka->ring_pos.buf,
                                     step};
    uint32_t n_last = a->n_tok < W ? a->n_tok : W;
    return vk__dispatch(ctx, VK_SH_KV_RING, rb, &rp, sizeof rp,
                        (kv_dim / 2 + VK_KV_WG - 1) / VK_KV_WG, n_last, 1);
}

/* ---- the ATTENTION op (core/backend.h) on a kvq cache ------------------------ */

/* The cache tensor of type t holds n_head_kv head vectors of hd per row. */
static hearth_status kq_cache_ok(const struct hearth_tensor *c, enum kvq_type t, int n_head_kv,
                                 int hd, const char *what)
{
    size_t need = (size_t)n_head_kv * kq_head_bytes(t, (uint32_t)hd);
    hearth_dtype want = t == KVQ_F16 ? HEARTH_DTYPE_F16 : HEARTH_DTYPE_I8;
    size_t elem = t == KVQ_F16 ? 2 : 1;
    if (c->type != want || (size_t)c->ne0 * elem < need || c->row_stride < need ||
        c->row_stride > 0xffffffffu || c->n_rows < 1 || c->n_rows > 0x7fffffff)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "vulkan attention: %s cache (dtype %d, ne0 %lld, row stride %zu) for kv "
                       "type %s: expected %s rows of >= %zu bytes", what, (int)c->type,
                       (long long)c->ne0, c->row_stride, kvq_type_name(t),
                       t == KVQ_F16 ? "F16" : "I8", need);
    return HEARTH_OK;
}

/* The exact window's tensors of at (kv_window > 0): packed F16 rings and I32 tags, on Vulkan. */
static hearth_status kq_window_from_op(const struct hearth_op_attention *at,
                                       struct vk_kvq_args *ka)
{
    uint32_t W = at->kv_window;
    ka->kv_window = W;
    if (W == 0)
        return HEARTH_OK;
    hearth_status st = backend_check_kv_ring(at, "vulkan");
    if (st != HEARTH_OK)
        return st;
    const struct hearth_tensor *r[3] = {&at->k_ring, &at->v_ring, &at->ring_pos};
    struct vk_view *out[3] = {&ka->k_ring, &ka->v_ring, &ka->ring_pos};
    for (int i = 0; i < 3; i++) {
        const struct hearth_tensor *x = r[i];
        struct vk_buffer *b = x->buf ? vk__hearth_buffer(x->buf) : NULL;
        /* the shaders read both rings in 32-bit words with one stride */
        bool ok = i == 2 || (x->row_stride % 4 == 0 && x->row_stride == r[0]->row_stride &&
                             x->row_stride / 4 < (1u << 24));
        if (!b || !ok)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "vulkan attention: exact window %u: %s (row stride %zu) must be a "
                           "Vulkan buffer, the K and V rings with one row stride, a multiple "
                           "of 4 bytes",
                           W, i == 0 ? "k_ring" : i == 1 ? "v_ring" : "ring_pos", x->row_stride);
        *out[i] = (struct vk_view){b, x->offset};
    }
    ka->ring_stride = (uint32_t)(at->k_ring.row_stride / 4);
    if (at->k_type == KVQ_F16 && at->v_type == KVQ_F16 && at->k_cache.buf)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan attention: exact window %u over an "
                       "f16/f16 cache (backend.h: the caller passes 0 there but on a ring-only "
                       "layer)", W);
    return HEARTH_OK;
}

hearth_status vk_kvq_args_from_op(const struct hearth_op_attention *at, struct vk_kvq_args *ka)
{
    if (!vk_kvq_supports(at->k_type, at->v_type) || at->head_dim < 2 ||
        at->head_dim > VK_KVQ_MAX_HD)
        return err_set(HEARTH_ERR_UNSUPPORTED, "vulkan attention: kv types %d/%d, head_dim %d",
                       at->k_type, at->v_type, at->head_dim);
    ka->k_type = (enum kvq_type)at->k_type;
    ka->v_type = (enum kvq_type)at->v_type;
    if (kq_head_bytes(ka->k_type, (uint32_t)at->head_dim) == 0 ||
        kq_head_bytes(ka->v_type, (uint32_t)at->head_dim) == 0 || at->head_dim % 2 != 0)
        return err_set(HEARTH_ERR_UNSUPPORTED, "vulkan attention: kv types %s/%s at head_dim %d "
                       "(<= %d, even; a multiple of 32 for the quantized types)",
                       kvq_type_name(ka->k_type), kvq_type_name(ka->v_type), at->head_dim,
                       VK_KVQ_MAX_HD);
    hearth_status st;
    const bool ring_only = at->k_cache.buf == NULL;
    if (ring_only) {
        /* step 6: no rows to check; the window's preconditions instead */
        if ((st = kq_ring_only_ok(at->v_cache.buf != NULL, at->window, at->kv_window)))
            return st;
    } else {
        if ((st = kq_cache_ok(&at->k_cache, ka->k_type, at->n_head_kv, at->head_dim, "k")) ||
            (st = kq_cache_ok(&at->v_cache, ka->v_type, at->n_head_kv, at->head_dim, "v")))
            return st;
        if (at->k_cache.n_rows != at->v_cache.n_rows)
            return err_set(HEARTH_ERR_UNSUPPORTED, "vulkan attention: K and V caches of %lld "
                           "and %lld rows", (long long)at->k_cache.n_rows,
                           (long long)at->v_cache.n_rows);
    }
    ka->kv_seed = at->kv_seed;
    ka->layer = at->layer;
    ka->k_row_bytes = ring_only ? 0 : (uint32_t)at->k_cache.row_stride;
    ka->v_row_bytes = ring_only ? 0 : (uint32_t)at->v_cache.row_stride;
    if ((st = kq_window_from_op(at, ka)))
        return st;
    if (ka->k_type == KVQ_F16)
        return HEARTH_OK;
    const struct hearth_tensor *x = &at->k_aux;
    struct vk_buffer *xb = x->buf ? vk__hearth_buffer(x->buf) : NULL;
    if (!xb || x->type != HEARTH_DTYPE_F32 || x->ne0 < (int64_t)at->n_head_kv * at->head_dim ||
        x->n_rows < 2 || x->row_stride % 4 != 0 || x->row_stride / 4 > 0xffffffffu)
        return err_set(HEARTH_ERR_INVALID_ARG, "vulkan attention: a %s K cache needs k_aux, "
                       "F32 [2][%d] in a Vulkan buffer (backend.h)", kvq_type_name(ka->k_type),
                       at->n_head_kv * at->head_dim);
    ka->k_aux = (struct vk_view){xb, x->offset};
    ka->aux_stride = (uint32_t)(x->row_stride / 4);
    return HEARTH_OK;
}
