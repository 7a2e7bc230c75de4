/*
 * sched-stream: host weights streamed to a GPU for batched prefill
 * (placement.block_stream; docs/planner.md "Streaming host weights for
 * prefill"). Setup marks the streamed FFN blocks and allocates the double
 * buffer the plan counted; execution copies each streamed matrix through
 * pinned staging into one half while the device computes with the other.
 * The state is struct sstream in sched-internal.h.
 */
#include "scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "kv-quant.h"
#include "plan.h"
#include "sched-internal.h"

/* ---- streaming host weights for prefill: setup --------------------------- */

/* The model weight of a streamed matrix. */
static const struct model_weight *stream_weight(const struct sched *s,
                                                const struct sstream_item *it)
{
    const struct model_layer *ly = &s->m->layers[it->il];
    return it->which == 0 ? &ly->ffn_gate : it->which == 1 ? &ly->ffn_up : &ly->ffn_down;
}

/*
 * Before any allocation: checks the placement's stream targets (FFN blocks
 * only, one target device, not the block's own device), marks the target
 * used, and marks the devices that receive a GLU output only in prefill
 * (a hand-made placement that streams half of a layer's FFN; plans never do).
 */
hearth_status sched__stream_mark(struct sched *s)
{
    const struct placement *pl = s->pl;
    struct sstream *S = &s->str;
    S->dev = -1;
    if (pl->stream_min_batch < 1)
        return err_set(HEARTH_ERR_INVALID_ARG, "sched: stream_min_batch %d, expected >= 1",
                       pl->stream_min_batch);
    for (uint32_t il = 0; il < pl->n_layer; il++) {
        int eff[PLACEMENT_N_BLOCKS];
        for (int b = 0; b < PLACEMENT_N_BLOCKS; b++) {
            int t = placement_get_stream(pl, il, (enum placement_block)b);
            eff[b] = t >= 0 ? t : placement_get(pl, il, (enum placement_block)b);
            if (t < 0)
                continue;
            if (b == PLACEMENT_ATTN || t >= s->n_dev || (S->dev >= 0 && t != S->dev) ||
                t == placement_get(pl, il, (enum placement_block)b))
                return err_set(HEARTH_ERR_INVALID_ARG,
                               "sched: layer %u block %d streamed to device %d (expected an "
                               "FFN block, one target device of %d, not its own device)",
                               il, b, t, s->n_dev);
            S->dev = t;
        }
        if (eff[PLACEMENT_FFN] != eff[PLACEMENT_FFN_DOWN])
            s->dev[eff[PLACEMENT_FFN_DOWN]].glu_in = true;
    }
    if (S->dev >= 0)
        s->dev[S->dev].used = true;
    return HEARTH_OK;
}

/*
 * After the weights are loaded: the list of streamed matrices in execution
 * order, the two device halves (the placement's size, else the largest
 * streamed matrix), the pinned staging (the loader's upload halves, kept
 * for the sched's lifetime, which the plan already counts; none on a device
 * that uploaded nothing) and the events.
 */
hearth_status sched__stream_setup(struct sched *s, struct loader *L)
{
    struct sstream *S = &s->str;
    const struct placement *pl = s->pl;
    const struct model_hparams *hp = &s->m->hp;
    if (S->dev < 0)
        return HEARTH_OK;
    const int t = S->dev;
    struct sdev *sd = &s->dev[t];
    char nb[32];
    S->seq = calloc(3 * (size_t)pl->n_layer, sizeof *S->seq);
    if (!S->seq)
        return err_set(HEARTH_ERR_NO_MEMORY, "sched: out of memory for the stream list");
    uint64_t largest = 0;
    for (uint32_t il = 0; il < pl->n_layer; il++)
        for (int k = 0; k < 3; k++) {
            enum placement_block b = k < 2 ? PLACEMENT_FFN : PLACEMENT_FFN_DOWN;
            struct sstream_item it = {il, k};
            const struct model_weight *w = stream_weight(s, &it);
            if (placement_get_stream(pl, il, b) < 0 || !w->data)
                continue;
            if (!backend_device_supports_op(sd->dev, HEARTH_OP_MATMUL, w->type))
                return err_set(HEARTH_ERR_UNSUPPORTED,
                               "sched: layer %u streams a %s matrix to %s, which has no matmul "
                               "for it", il, hearth_dtype_name(w->type), sched__dev_name(s, t, nb));
            uint64_t size = (uint64_t)w->row_bytes * (uint64_t)w->n_out;
            largest = size > largest ? size : largest;
            S->seq[S->n_seq++] = it;
        }
    S->half_bytes = pl->stream_half_bytes ? pl->stream_half_bytes
                                          : plan_stream_half_bytes(largest);
    if (largest > S->half_bytes)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "sched: a streamed matrix of %llu bytes does not fit the stream half of "
                       "%llu bytes",
                       (unsigned long long)largest, (unsigned long long)S->half_bytes);
    /* the FFN norm gains travel in the attention output rows, idle during an FFN block */
    const uint64_t slot = plan_align_up((uint64_t)hp->n_embd * sizeof(float));
    if (2 * slot > (uint64_t)s->n_batch * hp->n_head * hp->head_dim * sizeof(float))
        return err_set(HEARTH_ERR_UNSUPPORTED,
                       "sched: a batch of %d rows leaves no room for streamed norm gains",
                       s->n_batch);
    hearth_status st;
    struct hearth_buffer_type *bt = backend_device_buffer_type(sd->dev);
    for (int i = 0; i < 2; i++)
        if ((st = sched__alloc_on(s, t, bt, (size_t)S->half_bytes, "stream buffer half",
                                  &S->half[i])) != HEARTH_OK)
            return st;
    /*
     * A device that uploaded weights keeps its upload halves as the staging
     * (the plan counts them there); one that maps weights (or holds none)
     * has no staging in the plan, and copies straight from the mapping.
     */
    const bool uploaded = L->half[t][0] != NULL;
    for (int i = 0; i < 2 && uploaded; i++) {
        if ((st = backend_event_synchronize(L->ev[t][i])) != HEARTH_OK)
            return st;
        backend_event_destroy(L->ev[t][i]);
        L->ev[t][i] = NULL;
        S->stage[i] = L->half[t][i];
        L->half[t][i] = NULL;
    }
    /*
     * A second stream only where copies from pinned memory overlap compute
     * (the backend says PINNED); elsewhere copies are synchronous anyway and
     * a stream would cost device state for nothing.
     */
    if (S->stage[0] && (backend_buft_flags(S->stage[0]->buft) & HEARTH_BUFT_PINNED)) {
        if ((st = backend_stream_create(sd->dev, &S->copy)) != HEARTH_OK)
            return st;
    }
    struct hearth_stream *cs = S->copy ? S->copy : sd->stream;
    for (int i = 0; i < 2; i++)
        if ((st = backend_event_create(cs, &S->staged[i])) != HEARTH_OK ||
            (st = backend_event_create(cs, &S->filled[i])) != HEARTH_OK ||
            (st = backend_event_create(sd->stream, &S->done[i])) != HEARTH_OK)
            return st;
    return HEARTH_OK;
}

/* Frees what stream_setup took (any part of it); streams are synchronized first. */
void sched__stream_release(struct sched *s)
{
    struct sstream *S = &s->str;
    if (S->copy)
        backend_stream_synchronize(S->copy);
    for (int i = 0; i < 2; i++) {
        backend_event_destroy(S->staged[i]);
        backend_event_destroy(S->filled[i]);
        backend_event_destroy(S->done[i]);
        backend_buffer_free(S->half[i]);
        backend_buffer_free(S->stage[i]);
    }
    backend_stream_destroy(S->copy);
    free(S->seq);
    memset(S, 0, sizeof *S);
    S->dev = -1;
}

/* ---- streaming host weights for prefill: execution ----------------------- */

/*
 * Per batch: stream_begin decides whether it streams (n >= stream_min_batch);
 * streamed matrix j of the batch goes to half j % 2. stream_issue copies the
 * next matrix from the mapping through the two pinned staging chunks (the
 * host fills one while the device drains the other) into its half, once the
 * ops that read the half's previous matrix have ended; stream_take waits for
 * a matrix's copy and gives its view; stream_put marks the op that read it
 * enqueued and issues the next copy, so the host copies matrix j + 1 while
 * the device computes matrix j. A batch never prefetches into the next one,
 * so the byte counter is exactly the streamed weights times the batches.
 */
void sched__stream_begin(struct sched *s, int n)
{
    struct sstream *S = &s->str;
    S->active = S->dev >= 0 && S->n_seq > 0 && n >= s->pl->stream_min_batch;
    S->issued = S->used = 0;
}

/* Where block b of layer il runs in this batch. */
int sched__stream_block_dev(const struct sched *s, uint32_t il, enum placement_block b)
{
    int t = placement_get_stream(s->pl, il, b);
    return t >= 0 && s->str.active ? t : placement_get(s->pl, il, b);
}

static hearth_status stream_issue(struct sched *s)
{
    struct sstream *S = &s->str;
    const int h = S->issued & 1;
    const struct model_weight *w = stream_weight(s, &S->seq[S->issued]);
    struct hearth_stream *cs = S->copy ? S->copy : s->dev[S->dev].stream;
    const size_t size = w->row_bytes * (size_t)w->n_out, chunk = s->staging_bytes;
    hearth_status st = backend_event_synchronize(S->done[h]);
    if (st == HEARTH_OK && !S->stage[0])
        st = backend_stream_set_async(cs, S->half[h], 0, w->data, size);
    for (size_t off = 0; st == HEARTH_OK && S->stage[0] && off < size; off += chunk) {
        size_t len = size - off < chunk ? size - off : chunk;
        unsigned k = S->next_stage++ & 1u;
        if ((st = backend_event_synchronize(S->staged[k])) != HEARTH_OK)
            break;
        memcpy(backend_buffer_base(S->stage[k]), (const uint8_t *)w->data + off, len);
        if ((st = backend_stream_set_async(cs, S->half[h], off, backend_buffer_base(S->stage[k]),
                                           len)) == HEARTH_OK)
            st = backend_event_record(S->staged[k]);
    }
    if (st == HEARTH_OK)
        st = backend_event_record(S->filled[h]);
    if (st != HEARTH_OK)
        return err_prefix(st, "sched: streaming layer %u's weights", S->seq[S->issued].il);
    S->n_bytes += size;
    S->issued++;
    return HEARTH_OK;
}

/* The view of streamed matrix `which` (0 gate, 1 up, 2 down) of layer il, copied. */
static hearth_status stream_take(struct sched *s, uint32_t il, int which, struct hearth_tensor *w)
{
    struct sstream *S = &s->str;
    if (S->used >= S->n_seq || S->seq[S->used].il != il || S->seq[S->used].which != which)
        return err_set(HEARTH_ERR_BACKEND, "sched: layer %u matrix %d is not next to stream", il,
                       which);
    hearth_status st;
    while (S->issued <= S->used)
        if ((st = stream_issue(s)) != HEARTH_OK)
            return st;
    const int h = S->used & 1;
    if ((st = backend_event_synchronize(S->filled[h])) != HEARTH_OK)
        return st;
    const struct model_weight *mw = stream_weight(s, &S->seq[S->used]);
    *w = (struct hearth_tensor){S->half[h], 0, mw->type, mw->n_in, mw->n_out, mw->row_bytes};
    return HEARTH_OK;
}

/* The op reading the taken matrix is enqueued: free its half after it, copy the next. */
static hearth_status stream_put(struct sched *s)
{
    struct sstream *S = &s->str;
    hearth_status st = backend_event_record(S->done[S->used & 1]);
    if (st != HEARTH_OK)
        return st;
    S->used++;
    return S->issued == S->used && S->issued < S->n_seq ? stream_issue(s) : HEARTH_OK;
}

/* After any block: start the next copy when none is in flight (it overlaps that block). */
hearth_status sched__stream_prefetch(struct sched *s)
{
    struct sstream *S = &s->str;
    if (!S->active || S->issued != S->used || S->issued >= S->n_seq)
        return HEARTH_OK;
    return stream_issue(s);
}

/*
 * A streamed norm gain (F32 [n_embd], or absent) into slot k of device d's
 * attention output rows, on its compute stream (so after the ops that last
 * used those rows): the device holds no resident copy of host blocks.
 */
static hearth_status stream_gain(struct sched *s, int d, const struct model_weight *w, int k,
                                 struct hearth_tensor *out)
{
    struct sdev *sd = &s->dev[d];
    memset(out, 0, sizeof *out);
    if (!w->data)
        return HEARTH_OK;
    const size_t size = w->row_bytes * (size_t)w->n_out;
    const size_t off = sd->a[ACT_ATT].offset +
                       (size_t)k * (size_t)plan_align_up((uint64_t)s->m->hp.n_embd * 4u);
    hearth_status st = backend_stream_set_async(sd->stream, sd->act, off, w->data, size);
    if (st != HEARTH_OK)
        return st;
    s->str.n_bytes += size;
    *out = (struct hearth_tensor){sd->act, off, w->type, w->n_in, w->n_out, w->row_bytes};
    return HEARTH_OK;
}

/*
 * run_ffn for this batch: when the gate/up block (ops 0-2) or the down
 * block (ops 3-4) streams, its matrices come from the halves one matmul each
 * (gate and up apart, so each needs one half; on the CPU the same kernels
 * give the same bits), its norm gains through stream_gain; else run_ffn.
 */
hearth_status sched__stream_run_ffn(struct sched *s, int d, uint32_t il, int n, int first,
                                    int last)
{
    const bool su = first == 0 && placement_get_stream(s->pl, il, PLACEMENT_FFN) >= 0 &&
                    s->str.active;
    const bool sdn = last == 5 && placement_get_stream(s->pl, il, PLACEMENT_FFN_DOWN) >= 0 &&
                     s->str.active;
    if (!su && !sdn)
        return sched__run_ffn(s, d, il, n, first, last);
    const struct model_hparams *hp = &s->m->hp;
    const struct model_layer *ly = &s->m->layers[il];
    const struct slayer *sl = &s->layers[il];
    struct sdev *sd = &s->dev[d];
    struct hearth_op op;
    hearth_status st = HEARTH_OK;
    for (int i = first; i < last && st == HEARTH_OK; i++) {
        memset(&op, 0, sizeof op);
        op.n_tok = n;
        if (i == 0) {
            struct hearth_tensor g = sl->ffn_norm;
            if (su && (st = stream_gain(s, d, &ly->ffn_norm, 0, &g)) != HEARTH_OK)
                break;
            op.kind = HEARTH_OP_RMSNORM;
            op.u.rmsnorm = (struct hearth_op_rmsnorm){rows(&sd->a[ACT_X], n), g,
                                                      rows(&sd->a[ACT_XN], n), hp->norm_eps};
        } else if (i == 1 || i == 3) {
            op.kind = HEARTH_OP_MATMUL;
            struct hearth_op_matmul *mm = &op.u.matmul;
            mm->n_w = 1;
            mm->x = rows(&sd->a[i == 1 ? ACT_XN : ACT_GATE], n);
            mm->y[0] = rows(&sd->a[i == 1 ? ACT_GATE : ACT_TMP], n);
            mm->w[0] = i == 1 ? sl->gate : sl->down;
            if (i == 1 && !su) { /* resident gate/up: one op, as run_ffn */
                mm->n_w = 2;
                mm->w[1] = sl->up;
                mm->y[1] = rows(&sd->a[ACT_UP], n);
            }
            const bool streamed = i == 1 ? su : sdn;
            for (int k = 0; k < (i == 1 && su ? 2 : 1) && st == HEARTH_OK; k++) {
                if (k == 1)
                    mm->y[0] = rows(&sd->a[ACT_UP], n);
                if (streamed && (st = stream_take(s, il, i == 1 ? k : 2, &mm->w[0])) !=
                                    HEARTH_OK)
                    break;
                if ((st = backend_stream_run(sd->stream, &op, 1)) == HEARTH_OK && streamed)
                    st = stream_put(s);
            }
            continue;
        } else if (i == 2) {
            op.kind = HEARTH_OP_GLU;
            op.u.glu = (struct hearth_op_glu){rows(&sd->a[ACT_GATE], n), rows(&sd->a[ACT_UP], n),
                                              hp->ffn_act == MODEL_FFN_GELU_TANH
                                                  ? HEARTH_GLU_GELU_TANH
                                                  : HEARTH_GLU_SILU};
        } else {
            struct hearth_tensor g = hp->post_norms ? sl->post_ffn_norm
                                                    : (struct hearth_tensor){0};
            if (sdn && hp->post_norms &&
                (st = stream_gain(s, d, &ly->post_ffn_norm, 1, &g)) != HEARTH_OK)
                break;
            op.kind = HEARTH_OP_ADD;
            op.u.add = (struct hearth_op_add){rows(&sd->a[ACT_X], n), rows(&sd->a[ACT_TMP], n),
                                              g, hp->norm_eps};
        }
        st = backend_stream_run(sd->stream, &op, 1);
    }
    return st;
}

uint64_t sched_n_streamed_bytes(const struct sched *s)
{
    return s->str.n_bytes;
}
