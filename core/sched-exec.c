/*
 * sched-exec: running batches through the blocks of a sched (sched_eval,
 * sched_eval_multi): per block an op list on its device's stream, x (and
 * the GLU output of a split FFN) moved at device boundaries, attention as
 * one op per run of one sequence's rows, logits for the wanted rows. The
 * order of ops mirrors cpu/forward.c, which is what makes the all-CPU
 * result bit-identical (scheduler.c's opening comment has the design).
 */
#include "scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bandwidth.h"
#include "cpu/ops.h"
#include "err.h"
#include "kv-cache.h"
#include "kv-quant.h"
#include "plan.h"
#include "sched-internal.h"
#include "seq-batch.h"

/* ---- execution ---------------------------------------------------------- */

/* Rows [row0, row0 + n) of a [n_batch][w] activation. */
static struct hearth_tensor row_range(const struct hearth_tensor *t, int row0, int n)
{
    struct hearth_tensor r = *t;
    r.offset += (size_t)row0 * r.row_stride;
    r.n_rows = n;
    return r;
}

/*
 * x[0..n) of device a -> x of device b, through b's host-visible staging;
 * with glu also the GLU output (gate[0..n), [n][n_ff]), staged after x's
 * batch so one synchronization of a covers both. a is synchronized: the
 * host must hold the rows before b's upload reads them. b is not: b's
 * stream orders the upload before b's ops, and nothing writes b's staging
 * again before b's stream has been synchronized, because the next move into
 * b comes after a move out of b (which synchronizes b as its a) and a batch
 * ends by synchronizing its last device. So a host-to-GPU boundary makes
 * neither side wait for the copy (and on Vulkan the upload joins the GPU's
 * next submission).
 */
static hearth_status move_acts(struct sched *s, int a, int b, int n, bool glu)
{
    struct sdev *sa = &s->dev[a], *sb = &s->dev[b];
    const size_t xb = (size_t)n * (size_t)s->m->hp.n_embd * sizeof(float);
    const size_t gb = (size_t)n * (size_t)s->m->hp.n_ff * sizeof(float);
    const size_t goff = (size_t)s->n_batch * (size_t)s->m->hp.n_embd * sizeof(float);
    uint8_t *stage = backend_buffer_base(sb->stage);
    hearth_status st;
    if ((st = backend_stream_get_async(sa->stream, sa->act, sa->a[ACT_X].offset, stage, xb)) !=
            HEARTH_OK ||
        (glu && (st = backend_stream_get_async(sa->stream, sa->act, sa->a[ACT_GATE].offset,
                                               stage + goff, gb)) != HEARTH_OK) ||
        (st = backend_stream_synchronize(sa->stream)) != HEARTH_OK)
        return st;
    double t = bw_now(); /* a's stretch ends with its last op (and the copy out) */
    sa->busy_s += t - s->seg_t0;
    s->seg_t0 = t;
    if ((st = backend_stream_set_async(sb->stream, sb->act, sb->a[ACT_X].offset, stage, xb)) !=
            HEARTH_OK ||
        (glu && (st = backend_stream_set_async(sb->stream, sb->act, sb->a[ACT_GATE].offset,
                                               stage + goff, gb)) != HEARTH_OK))
        return st;
    t = bw_now();
    s->xfer_s += t - s->seg_t0;
    s->seg_t0 = t;
    s->n_moves++;
    s->n_glu_moves += glu;
    return HEARTH_OK;
}

static hearth_status move_x(struct sched *s, int a, int b, int n)
{
    return move_acts(s, a, b, n, false);
}

/*
 * The attention block of layer il on device d over the n rows of the batch:
 * norm and the q/k/v matmul over all rows, then one ATTENTION op per run
 * (runs[0..n_runs): contiguous rows of one sequence), each pointing at its
 * sequence's slice of the layer's caches (offset views, nothing copied),
 * then the output matmul and residual add over all rows again.
 */
static hearth_status run_attn(struct sched *s, int d, uint32_t il, int n,
                              const struct sched_run *runs, int n_runs)
{
    const struct model_hparams *hp = &s->m->hp;
    const struct model_layer *ly = &s->m->layers[il];
    const struct slayer *sl = &s->layers[il];
    struct sdev *sd = &s->dev[d];
    const int n_ops = 4 + n_runs;
    struct hearth_op *ops = s->ops;
    memset(ops, 0, (size_t)n_ops * sizeof *ops);
    for (int i = 0; i < n_ops; i++)
        ops[i].n_tok = n;
    ops[0].kind = HEARTH_OP_RMSNORM;
    ops[0].u.rmsnorm = (struct hearth_op_rmsnorm){rows(&sd->a[ACT_X], n), sl->attn_norm,
                                                  rows(&sd->a[ACT_XN], n), hp->norm_eps};
    ops[1].kind = HEARTH_OP_MATMUL;
    struct hearth_op_matmul *mm = &ops[1].u.matmul;
    mm->n_w = 3;
    mm->x = rows(&sd->a[ACT_XN], n);
    mm->w[0] = sl->wq, mm->w[1] = sl->wk, mm->w[2] = sl->wv;
    mm->b[0] = sl->bq, mm->b[1] = sl->bk, mm->b[2] = sl->bv;
    mm->y[0] = rows(&sd->a[ACT_Q], n), mm->y[1] = rows(&sd->a[ACT_K], n);
    mm->y[2] = rows(&sd->a[ACT_V], n);
    for (int r = 0; r < n_runs; r++) {
        const struct sched_run *ru = &runs[r];
        struct hearth_op *op = &ops[2 + r];
        op->kind = HEARTH_OP_ATTENTION;
        op->n_tok = ru->n;
        struct hearth_op_attention *at = &op->u.attn;
        at->q = row_range(&sd->a[ACT_Q], ru->row0, ru->n);
        at->k = row_range(&sd->a[ACT_K], ru->row0, ru->n);
        at->v = row_range(&sd->a[ACT_V], ru->row0, ru->n);
        if (hp->qk_norm) {
            at->q_norm = sl->q_norm;
            at->k_norm = sl->k_norm;
        }
        at->rope_divs = sd->rope_divs;
        at->k_cache = sl->k_cache;
        at->v_cache = sl->v_cache;
        at->k_aux = sl->k_aux;
        at->k_cache.offset += (size_t)ru->seq * sl->k_seq_stride;
        at->v_cache.offset += (size_t)ru->seq * sl->v_seq_stride;
        if (at->k_aux.buf)
            at->k_aux.offset += (size_t)ru->seq * sl->aux_seq_stride;
        at->out = row_range(&sd->a[ACT_ATT], ru->row0, ru->n);
        at->n_head = (int)hp->n_head;
        at->n_head_kv = (int)hp->n_head_kv;
        at->head_dim = (int)hp->head_dim;
        at->n_rot = (int)hp->n_rot;
        at->rope_mode = hp->rope_mode == MODEL_ROPE_NEOX ? HEARTH_ROPE_NEOX : HEARTH_ROPE_NORMAL;
        at->rope_base = ly->rope_base;
        at->rope_freq_scale = ly->rope_freq_scale;
        at->norm_eps = hp->norm_eps;
        at->scale = hp->attn_scale;
        at->pos0 = ru->pos0;
        at->k_type = s->kv_type_k;
        at->v_type = s->kv_type_v;
        at->layer = il;
        at->kv_seed = s->kv_seed;
        /* a window past the context changes nothing; capped, a ring-only layer's
           ring (at most n_ctx) still covers it as step 6 asks */
        at->window = ly->is_swa ? (hp->sliding_window < s->n_ctx ? hp->sliding_window : s->n_ctx)
                                : 0;
        if (sl->kv_window > 0) {
            const size_t ro = (size_t)ru->seq * sl->ring_seq_stride;
            at->kv_window = sl->kv_window;
            at->k_ring = sl->k_ring;
            at->v_ring = sl->v_ring;
            at->ring_pos = sl->ring_pos;
            at->k_ring.offset += ro;
            at->v_ring.offset += ro;
            at->ring_pos.offset += ro;
        }
    }
    struct hearth_op *o = &ops[2 + n_runs];
    o[0].kind = HEARTH_OP_MATMUL;
    mm = &o[0].u.matmul;
    mm->n_w = 1;
    mm->x = rows(&sd->a[ACT_ATT], n);
    mm->w[0] = sl->wo;
    mm->b[0] = sl->bo;
    mm->y[0] = rows(&sd->a[ACT_TMP], n);
    o[1].kind = HEARTH_OP_ADD;
    o[1].u.add = (struct hearth_op_add){rows(&sd->a[ACT_X], n), rows(&sd->a[ACT_TMP], n),
                                        hp->post_norms ? sl->post_attn_norm
                                                       : (struct hearth_tensor){0},
                                        hp->norm_eps};
    return backend_stream_run(sd->stream, ops, n_ops);
}

/*
 * The FFN of layer il on device d: ops [first, last) of norm, gate/up, GLU,
 * down, residual add ([0, 3) is the FFN block, [3, 5) the FFN_DOWN block).
 */
hearth_status sched__run_ffn(struct sched *s, int d, uint32_t il, int n, int first, int last)
{
    const struct model_hparams *hp = &s->m->hp;
    const struct slayer *sl = &s->layers[il];
    struct sdev *sd = &s->dev[d];
    struct hearth_op ops[5];
    memset(ops, 0, sizeof ops);
    for (int i = 0; i < 5; i++)
        ops[i].n_tok = n;
    ops[0].kind = HEARTH_OP_RMSNORM;
    ops[0].u.rmsnorm = (struct hearth_op_rmsnorm){rows(&sd->a[ACT_X], n), sl->ffn_norm,
                                                  rows(&sd->a[ACT_XN], n), hp->norm_eps};
    ops[1].kind = HEARTH_OP_MATMUL;
    struct hearth_op_matmul *mm = &ops[1].u.matmul;
    mm->n_w = 2;
    mm->x = rows(&sd->a[ACT_XN], n);
    mm->w[0] = sl->gate, mm->w[1] = sl->up;
    mm->y[0] = rows(&sd->a[ACT_GATE], n), mm->y[1] = rows(&sd->a[ACT_UP], n);
    ops[2].kind = HEARTH_OP_GLU;
    ops[2].u.glu = (struct hearth_op_glu){rows(&sd->a[ACT_GATE], n), rows(&sd->a[ACT_UP], n),
                                          hp->ffn_act == MODEL_FFN_GELU_TANH
                                              ? HEARTH_GLU_GELU_TANH
                                              : HEARTH_GLU_SILU};
    ops[3].kind = HEARTH_OP_MATMUL;
    mm = &ops[3].u.matmul;
    mm->n_w = 1;
    mm->x = rows(&sd->a[ACT_GATE], n);
    mm->w[0] = sl->down;
    mm->y[0] = rows(&sd->a[ACT_TMP], n);
    ops[4].kind = HEARTH_OP_ADD;
    ops[4].u.add = (struct hearth_op_add){rows(&sd->a[ACT_X], n), rows(&sd->a[ACT_TMP], n),
                                          hp->post_norms ? sl->post_ffn_norm
                                                         : (struct hearth_tensor){0},
                                          hp->norm_eps};
    return backend_stream_run(sd->stream, ops + first, last - first);
}

/*
 * One batch of n <= n_batch rows: attention runs runs[0..n_runs) (see
 * run_attn); logits (NULL: none) receives one [n_vocab] row per row with
 * want[t], in row order. The wanted rows go through the output head as one
 * LOGITS op per contiguous run of them rather than gathered first: the
 * backend interface has no gather op (adding one means every backend), and
 * the batches slots.c builds put the decode rows (all wanted) first, so a
 * step has one run plus one per slot finishing its prompt.
 */
/* The batch's final synchronization, which also ends device d's stretch. */
static hearth_status end_batch(struct sched *s, int d)
{
    hearth_status st = backend_stream_synchronize(s->dev[d].stream);
    s->dev[d].busy_s += bw_now() - s->seg_t0;
    return st;
}

/*
 * Queues the copy of the wanted rows of x (after the last block, on device
 * d) into hidden, one copy per contiguous run; *n_hid gets their count.
 * The final norm is applied on the host once they have arrived
 * (finish_hidden): it is n_embd multiply-adds per row, and one host function
 * for every backend keeps the all-CPU result bit-identical to forward.c's.
 */
static hearth_status fetch_hidden(struct sched *s, int d, int n, float *hidden, const bool *want,
                                  int *n_hid)
{
    const struct sdev *sd = &s->dev[d];
    const size_t row = (size_t)s->m->hp.n_embd * sizeof(float);
    *n_hid = 0;
    for (int t = 0; hidden && want && t < n;) {
        if (!want[t]) {
            t++;
            continue;
        }
        int len = 1;
        while (t + len < n && want[t + len])
            len++;
        struct hearth_tensor x = row_range(&sd->a[ACT_X], t, len);
        hearth_status st = backend_stream_get_async(sd->stream, sd->act, x.offset,
                                                    (uint8_t *)hidden + (size_t)*n_hid * row,
                                                    (size_t)len * row);
        if (st != HEARTH_OK)
            return st;
        *n_hid += len;
        t += len;
    }
    return HEARTH_OK;
}

static void finish_hidden(const struct sched *s, float *hidden, int n_hid)
{
    const struct model_hparams *hp = &s->m->hp;
    const int64_t E = hp->n_embd;
    for (int i = 0; i < n_hid; i++)
        cpu_rmsnorm(hidden + i * E, hidden + i * E, s->m->output_norm.data, E, hp->norm_eps);
}

static hearth_status run_batch(struct sched *s, const int32_t *tokens, int n,
                               const struct sched_run *runs, int n_runs, float *logits,
                               const bool *want, float *hidden, const bool *want_hid)
{
    const struct model_hparams *hp = &s->m->hp;
    const struct placement *pl = s->pl;
    int cur = pl->embd_dev;
    struct sdev *sd = &s->dev[cur];
    hearth_status st;
    s->seg_t0 = bw_now();
    /*
     * From the sched's own copy: the upload may still be pending when this
     * returns to the caller's loop, and the batch's final synchronization
     * (or a boundary's) completes it before the next batch rewrites it, so
     * no synchronization is needed here.
     */
    memcpy(s->tok_host, tokens, (size_t)n * sizeof(int32_t));
    if ((st = backend_stream_set_async(sd->stream, sd->act, sd->ids.offset, s->tok_host,
                                       (size_t)n * sizeof(int32_t))) != HEARTH_OK)
        return st;
    struct hearth_op emb;
    memset(&emb, 0, sizeof emb);
    emb.kind = HEARTH_OP_EMBED;
    emb.n_tok = n;
    struct hearth_tensor ids = sd->ids;
    ids.ne0 = n;
    ids.row_stride = (size_t)n * sizeof(int32_t);
    emb.u.embed = (struct hearth_op_embed){s->tok_embd, ids, rows(&sd->a[ACT_X], n),
                                           hp->embd_scale};
    if ((st = backend_stream_run(sd->stream, &emb, 1)) != HEARTH_OK)
        return st;
    static const char *const block_name[PLACEMENT_N_BLOCKS] = {"attention", "ffn", "ffn down"};
    sched__stream_begin(s, n);
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        const int split = sched__stream_block_dev(s, il, PLACEMENT_FFN) !=
                          sched__stream_block_dev(s, il, PLACEMENT_FFN_DOWN);
        for (int b = 0; b < PLACEMENT_N_BLOCKS; b++) {
            if (b == PLACEMENT_FFN_DOWN && !split)
                continue; /* ran with its gate/up in one op list */
            int d = sched__stream_block_dev(s, il, (enum placement_block)b);
            if (d != cur && (st = move_acts(s, cur, d, n, b == PLACEMENT_FFN_DOWN)) != HEARTH_OK)
                return st;
            cur = d;
            if (b == PLACEMENT_ATTN)
                st = run_attn(s, d, il, n, runs, n_runs);
            else if (b == PLACEMENT_FFN)
                st = sched__stream_run_ffn(s, d, il, n, 0, split ? 3 : 5);
            else
                st = sched__stream_run_ffn(s, d, il, n, 3, 5);
            if (st == HEARTH_OK)
                st = sched__stream_prefetch(s);
            if (st != HEARTH_OK)
                return err_prefix(st, "sched: layer %u %s block", il, block_name[b]);
        }
    }
    int n_out = 0, n_hid = 0;
    for (int t = 0; logits && want && t < n; t++)
        n_out += want[t];
    if ((st = fetch_hidden(s, cur, n, hidden, want_hid, &n_hid)) != HEARTH_OK)
        return st;
    if (n_out == 0) {
        if ((st = end_batch(s, cur)) == HEARTH_OK)
            finish_hidden(s, hidden, n_hid);
        return st;
    }
    /* a move out of cur (move_acts) or the final synchronization completes the fetch */
    if (pl->out_dev != cur && (st = move_x(s, cur, pl->out_dev, n)) != HEARTH_OK)
        return st;
    sd = &s->dev[pl->out_dev];
    /*
     * The logits buffer holds n_logits rows (generation wants one per
     * sequence; a larger buffer would only take VRAM from weights): more
     * wanted rows go in rounds, each copied out before the next overwrites
     * the buffer, which stream order guarantees.
     */
    /* a head split by rows (load_head) takes one op per part, into its columns */
    struct hearth_op *lo = s->ops;
    const int max_lo = s->n_batch + 4; /* s->ops' length */
    for (int t = 0, done = 0; done < n_out;) {
        int n_lo = 0, o = 0;
        while (t < n && o < s->n_logits) {
            if (!want[t]) {
                t++;
                continue;
            }
            int len = 1;
            while (t + len < n && want[t + len] && o + len < s->n_logits)
                len++;
            int64_t col = 0;
            for (int k = 0; k < s->n_output; k++) {
                if (n_lo == max_lo) {
                    if ((st = backend_stream_run(sd->stream, lo, n_lo)) != HEARTH_OK)
                        return st;
                    n_lo = 0;
                }
                struct hearth_tensor y = row_range(&sd->logits, o, len);
                y.offset += (size_t)col * sizeof(float);
                y.ne0 = s->output[k].n_rows;
                col += s->output[k].n_rows;
                memset(&lo[n_lo], 0, sizeof lo[n_lo]);
                lo[n_lo].kind = HEARTH_OP_LOGITS;
                lo[n_lo].n_tok = len;
                lo[n_lo].u.logits = (struct hearth_op_logits){
                    row_range(&sd->a[ACT_X], t, len), s->output_norm, s->output[k], y,
                    hp->norm_eps};
                n_lo++;
            }
            o += len;
            t += len;
        }
        if ((st = backend_stream_run(sd->stream, lo, n_lo)) != HEARTH_OK ||
            (st = backend_stream_get_async(sd->stream, sd->act, sd->logits.offset,
                                           logits + (size_t)done * hp->n_vocab,
                                           (size_t)o * hp->n_vocab * sizeof(float))) !=
                HEARTH_OK)
            return st;
        done += o;
    }
    if ((st = end_batch(s, pl->out_dev)) == HEARTH_OK)
        finish_hidden(s, hidden, n_hid);
    return st;
}

hearth_status sched_eval(struct sched *s, const int32_t *tokens, int n_tokens, int pos0,
                         float *logits_out, bool all_logits)
{
    const struct model_hparams *hp = &s->m->hp;
    if (!tokens || n_tokens < 1)
        return err_set(HEARTH_ERR_INVALID_ARG, "sched_eval: %d tokens, expected at least 1",
                       n_tokens);
    if (pos0 < 0 || (uint32_t)pos0 > s->seq_used[0])
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "sched_eval: pos0 %d out of range: the cache holds positions [0, %u), "
                       "so pos0 must be in [0, %u]",
                       pos0, s->seq_used[0], s->seq_used[0]);
    if ((int64_t)pos0 + n_tokens > (int64_t)s->n_ctx)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "sched_eval: positions %d..%lld exceed the context of %u positions", pos0,
                       (long long)pos0 + n_tokens - 1, s->n_ctx);
    for (int t = 0; t < n_tokens; t++)
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= hp->n_vocab)
            return err_set(HEARTH_ERR_INVALID_ARG,
                           "sched_eval: token %d (at index %d) out of range [0, %u)", tokens[t],
                           t, hp->n_vocab);
    if (!kv_ring_can_eval(&s->seq_ring[0], (uint32_t)pos0))
        return seq_batch_ring_lost("sched_eval", 0, &s->seq_ring[0], (uint32_t)pos0);
    s->seq_used[0] = (uint32_t)pos0;
    for (int t0 = 0; t0 < n_tokens; t0 += s->n_batch) {
        int n = n_tokens - t0 < s->n_batch ? n_tokens - t0 : s->n_batch;
        bool last = t0 + n == n_tokens;
        float *lg = NULL;
        if (logits_out && all_logits)
            lg = logits_out + (size_t)t0 * hp->n_vocab;
        else if (logits_out && last)
            lg = logits_out;
        for (int t = 0; t < n; t++)
            s->want[t] = all_logits || t == n - 1;
        const struct sched_run run = {.row0 = 0, .n = n, .seq = 0, .pos0 = pos0 + t0};
        hearth_status st = run_batch(s, tokens + t0, n, &run, 1, lg, s->want, NULL, NULL);
        if (st != HEARTH_OK)
            return st;
        s->seq_used[0] = (uint32_t)(pos0 + t0 + n);
        kv_ring_advance(&s->seq_ring[0], (uint32_t)(pos0 + t0), (uint32_t)n);
    }
    return HEARTH_OK;
}

/*
 * Checks a multi-sequence call without changing anything; on success
 * seq_next[q] is where sequence q ends after it (its past length when the
 * call has none of its tokens).
 */
static hearth_status check_multi(struct sched *s, const int32_t *tokens, const int32_t *seq,
                                 const int32_t *pos, int n)
{
    for (int q = 0; q < s->n_seq; q++)
        s->seq_next[q] = s->seq_used[q];
    const struct seq_batch_limits lim = {"sched_eval_multi", s->n_seq, s->m->hp.n_vocab,
                                         s->n_ctx};
    hearth_status st = seq_batch_check(&lim, tokens, seq, pos, n, s->seq_next, s->seq_last);
    if (st != HEARTH_OK)
        return st;
    return seq_batch_ring_check(lim.who, s->seq_ring, s->n_seq, seq, pos, n);
}

hearth_status sched_eval_multi(struct sched *s, const int32_t *tokens, const int32_t *seq,
                               const int32_t *pos, int n_tokens, float *logits_out,
                               const bool *want_logits)
{
    const struct seq_batch_out out = {logits_out, want_logits, NULL, NULL};
    return sched_eval_multi_out(s, tokens, seq, pos, n_tokens, &out);
}

hearth_status sched_eval_multi_out(struct sched *s, const int32_t *tokens, const int32_t *seq,
                                   const int32_t *pos, int n_tokens,
                                   const struct seq_batch_out *out)
{
    if (!tokens || !seq || !pos || n_tokens < 1)
        return err_set(HEARTH_ERR_INVALID_ARG,
                       "sched_eval_multi: %d tokens (or a NULL array), expected at least 1",
                       n_tokens);
    hearth_status st = check_multi(s, tokens, seq, pos, n_tokens);
    if (st != HEARTH_OK)
        return st;
    const size_t n_vocab = s->m->hp.n_vocab, n_embd = s->m->hp.n_embd;
    const bool *want_hid = out->hidden ? out->want_hidden : NULL;
    float *lg = out->logits, *hid = out->hidden;
    for (int t0 = 0; t0 < n_tokens; t0 += s->n_batch) {
        const int n = n_tokens - t0 < s->n_batch ? n_tokens - t0 : s->n_batch;
        int n_runs = 0, n_out = 0, n_hid = 0;
        for (int t = 0; t < n; t++) {
            const int q = seq[t0 + t];
            struct sched_run *ru = n_runs ? &s->runs[n_runs - 1] : NULL;
            if (ru && ru->seq == q)
                ru->n++; /* consecutive positions: check_multi */
            else
                s->runs[n_runs++] = (struct sched_run){.row0 = t, .n = 1, .seq = q,
                                                       .pos0 = pos[t0 + t]};
            s->want[t] = lg && out->want_logits && out->want_logits[t0 + t];
            n_out += s->want[t];
            n_hid += want_hid && want_hid[t0 + t];
        }
        if ((st = run_batch(s, tokens + t0, n, s->runs, n_runs, lg, s->want, hid,
                            want_hid ? want_hid + t0 : NULL)) != HEARTH_OK)
            return st;
        if (lg)
            lg += (size_t)n_out * n_vocab;
        if (hid)
            hid += (size_t)n_hid * n_embd;
    }
    seq_batch_ring_advance(s->seq_ring, s->n_seq, seq, pos, n_tokens, s->seq_next);
    for (int q = 0; q < s->n_seq; q++)
        s->seq_used[q] = s->seq_next[q];
    return HEARTH_OK;
}
