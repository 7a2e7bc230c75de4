/*
 * sched-internal: the scheduler's state, shared by scheduler.c (building and
 * freeing), sched-exec.c (running batches) and sched-stream.c (streaming host
 * weights to a GPU for prefill). Not part of any interface: only these three
 * files include it. The design is in scheduler.c's opening comment.
 */
#ifndef HEARTH_SCHED_INTERNAL_H
#define HEARTH_SCHED_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "scheduler.h"

enum { ACT_X, ACT_XN, ACT_Q, ACT_K, ACT_V, ACT_ATT, ACT_TMP, ACT_GATE, ACT_UP, ACT_N };

struct sdev {
    struct hearth_device *dev;   /* borrowed */
    struct hearth_stream *stream;
    struct hearth_buffer *act;   /* packed activations, see the design comment */
    struct hearth_tensor a[ACT_N];
    struct hearth_tensor ids;    /* I32 [n_batch], embedding device only */
    struct hearth_tensor logits; /* F32 [n_batch][n_vocab], output device only */
    struct hearth_tensor rope_divs; /* F32 [n_rot/2] or absent */
    struct hearth_buffer *stage; /* host-visible boundary staging: F32 [n_batch][n_embd],
                                    then F32 [n_batch][n_ff] when glu_in */
    bool glu_in;                 /* runs a down projection whose gate/up ran elsewhere */
    uint64_t bytes;
    bool used;
    double busy_s;               /* wall time of its stretches of blocks (sched_device_seconds) */
};

struct kv_ring_track;

struct slayer {
    struct hearth_tensor attn_norm, wq, wk, wv, wo, bq, bk, bv, bo, q_norm, k_norm,
        post_attn_norm, ffn_norm, gate, up, down, post_ffn_norm, k_cache, v_cache;
    struct hearth_tensor k_aux; /* F32 [2][n_kv*hd] for a compressed K (absent for f16) */
    /*
     * k_cache, v_cache and k_aux above are sequence 0's views; the buffers
     * hold n_seq of them back to back, sequence q's at q * these strides.
     */
    size_t k_seq_stride, v_seq_stride, aux_seq_stride; /* bytes */
    /*
     * The exact window of this layer, W = kv_window = plan_kv_layer_window
     * (0: none): sequence 0's F16 [W][Hk*D] K and V rings and I32 [W] tags,
     * in one buffer per layer holding n_seq blocks of plan_kv_window_bytes
     * (k ring, v ring, tags), sequence q's at q * ring_seq_stride.
     */
    uint32_t kv_window;
    bool ring_only; /* no k_cache/v_cache rows (plan_kv_layer_codes; ATTENTION step 6) */
    struct hearth_tensor k_ring, v_ring, ring_pos;
    size_t ring_seq_stride; /* bytes */
};

/* A contiguous run of batch rows of one sequence at consecutive positions. */
struct sched_run {
    int row0, n, seq, pos0;
};

/*
 * Streaming host weights to a GPU for prefill (see the stream_* sections):
 * one matrix per half of a double buffer on the target device.
 */
struct sstream_item {
    uint32_t il;
    int which; /* 0: ffn_gate, 1: ffn_up, 2: ffn_down */
};

struct sstream {
    int dev;                        /* target device index; -1: nothing streams */
    int n_seq;                      /* streamed matrices per batch */
    struct sstream_item *seq;       /* [n_seq], in execution order */
    struct hearth_buffer *half[2];  /* device-local, half_bytes each */
    uint64_t half_bytes;
    struct hearth_buffer *stage[2]; /* pinned host staging chunks (staging_bytes each) */
    struct hearth_stream *copy;     /* a second stream for the copies, or NULL */
    struct hearth_event *staged[2]; /* copy stream: stage[i] drained */
    struct hearth_event *filled[2]; /* copy stream: half[i] holds its matrix */
    struct hearth_event *done[2];   /* compute stream: the op reading half[i] ended */
    int issued, used;               /* of this batch's seq: copies issued, matrices run */
    unsigned next_stage;
    bool active;                    /* this batch streams (n >= stream_min_batch) */
    uint64_t n_bytes;               /* host weight bytes copied so far */
};

struct sched {
    const struct model *m;
    struct placement *pl;
    int n_dev;
    struct sdev dev[SCHED_MAX_DEVICES];
    struct slayer *layers; /* [n_layer] */
    struct hearth_tensor tok_embd, output_norm;
    /*
     * The LM head's matrix as n_output row ranges, each in its own buffer:
     * one, unless it exceeds the largest buffer of its device
     * (plan_head_split_rows); part k's rows follow part k-1's.
     */
    struct hearth_tensor *output;
    int n_output;
    struct hearth_buffer **bufs; /* every weight/cache buffer, freed at destroy */
    int n_bufs, cap_bufs;
    uint32_t n_ctx;
    int n_seq;
    uint32_t *seq_used;  /* [n_seq] positions each sequence's cache holds */
    struct kv_ring_track *seq_ring; /* [n_seq] what the ring-only layers hold (slots 0: none) */
    uint32_t *seq_next;  /* [n_seq] validation scratch: where each sequence ends */
    int32_t *seq_last;   /* [n_seq] validation scratch: its last token in the call */
    struct sched_run *runs; /* [n_batch] attention runs of the current batch */
    bool *want;          /* [n_batch] logits wanted per row of the current batch */
    struct hearth_op *ops; /* [n_batch + 4] one block's op list */
    uint64_t kv_bytes;
    int kv_type_k, kv_type_v; /* enum kvq_type */
    uint64_t kv_seed;         /* model_kv_seed */
    uint32_t kv_window;       /* requested exact window W (0: none, also for f16/f16), <= n_ctx;
                                 each layer's own is slayer.kv_window */
    bool swa_full;            /* sliding-window layers keep their rows (sched_params) */
    int32_t *ring_reset;      /* [max slayer.kv_window] -1s: what sched_seq_clear writes */
    int n_batch;
    int n_logits; /* rows of the logits buffer (sched_params.n_logits) */
    bool map_host;
    size_t staging_bytes;
    uint64_t n_moves, n_glu_moves;
    int32_t *tok_host;     /* [n_batch] the batch's token ids, the embedding upload's source */
    double seg_t0;         /* when the device now running began its stretch (bw_now) */
    double xfer_s;         /* wall time of boundary moves (sched_transfer_seconds) */
    struct sched_oom *oom; /* the caller's, or NULL */
    struct sstream str;    /* prefill streaming */
};

/*
 * Loading state: per device that uploads, two staging halves, kept until the
 * load ends so each device allocates them once (the plan counts them once).
 */
struct loader {
    struct sched *s;
    struct hearth_buffer *half[SCHED_MAX_DEVICES][2];
    struct hearth_event *ev[SCHED_MAX_DEVICES][2];
    unsigned next[SCHED_MAX_DEVICES];
};

/* The first n rows of a [n_batch][w] activation. */
static inline struct hearth_tensor rows(const struct hearth_tensor *t, int n)
{
    struct hearth_tensor r = *t;
    r.n_rows = n;
    return r;
}

/* ---- scheduler.c ---- */

/* Device d's name for messages ("cuda0"), in buf. */
const char *sched__dev_name(const struct sched *s, int d, char buf[32]);
/* size bytes of bt for device d, tracked for destroy; an OOM names what and fills s->oom. */
hearth_status sched__alloc_on(struct sched *s, int d, struct hearth_buffer_type *bt, size_t size,
                              const char *what, struct hearth_buffer **out);

/* ---- sched-exec.c ---- */

/* Ops [first, last) of layer il's FFN (norm, gate/up, GLU, down, add) on device d. */
hearth_status sched__run_ffn(struct sched *s, int d, uint32_t il, int n, int first, int last);

/* ---- sched-stream.c ---- */

/* Marks the streamed blocks and sizes the double buffer (before weights load). */
hearth_status sched__stream_mark(struct sched *s);
/* Allocates the double buffer, staging, copy stream and events (after weights load). */
hearth_status sched__stream_setup(struct sched *s, struct loader *L);
void sched__stream_release(struct sched *s);
/* Per batch of n rows: whether it streams. */
void sched__stream_begin(struct sched *s, int n);
/* The device block b of layer il is streamed to in this batch, or -1. */
int sched__stream_block_dev(const struct sched *s, uint32_t il, enum placement_block b);
/* Issues the first copy of the batch before its first streamed block is reached. */
hearth_status sched__stream_prefetch(struct sched *s);
/* Ops [first, last) of a streamed FFN on device d, weights from the double buffer. */
hearth_status sched__stream_run_ffn(struct sched *s, int d, uint32_t il, int n, int first,
                                    int last);

#endif
