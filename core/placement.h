/*
 * placement: which device runs each block of a model.
 *
 * A layer is three blocks: attention (with its KV cache), FFN (ffn_norm,
 * gate/up matmul, GLU) and FFN_DOWN (down matmul, post-FFN norm, residual
 * add), so a layer's gate/up can run on one device and its down projection
 * on another (the planner splits there when VRAM is short; the GLU output
 * then crosses devices with the residual). The token embedding and the
 * output head (final norm + output projection) are one block each. A
 * placement maps every block to an index into the device list the scheduler
 * is given (core/scheduler.h). It is plain data on purpose: -ngl N, -ngl auto
 * and the planner (placement_from_plan) fill it.
 *
 * A block's home is one of three kinds: resident on a device and computed
 * there; resident in host RAM and computed by the CPU; or resident in host
 * RAM and streamed to a GPU for batched prefill (block_stream >= 0: batches
 * of at least stream_min_batch tokens copy the block's weights into that
 * device's double buffer and run the block there; smaller batches, decode,
 * run it where block_dev says). Only FFN and FFN_DOWN blocks stream (an
 * attention block runs where its KV cache lives), and the planner streams a
 * layer's FFN only when the layer then runs its whole FFN on one device in
 * prefill, so streaming never adds a GLU crossing the plan did not stage.
 *
 * Sizes for -ngl auto come from the model's bound weights (bytes of every
 * tensor a block reads, each rounded up to PLACEMENT_TENSOR_ALIGN for the
 * allocator) plus the F16 K/V of n_ctx positions for attention blocks. The
 * estimate is a pure function of its inputs, so tests can hand it a fake
 * device budget.
 */
#ifndef HEARTH_PLACEMENT_H
#define HEARTH_PLACEMENT_H

#include <stdint.h>

#include "hearth.h"
#include "model.h"
#include "plan.h"

enum placement_block {
    PLACEMENT_ATTN = 0,     /* attention + its KV cache */
    PLACEMENT_FFN = 1,      /* ffn_norm, ffn_gate + ffn_up, GLU */
    PLACEMENT_FFN_DOWN = 2, /* ffn_down, post_ffw_norm, residual add */
    PLACEMENT_N_BLOCKS = 3
};

#define PLACEMENT_NGL_AUTO (-1)
#define PLACEMENT_TENSOR_ALIGN 256
/*
 * Default stream threshold: with ~0.6 bytes per weight (Q4) the CPU's ~2
 * TFLOP/s spend as long on a batch of ~35 tokens as PCIe's ~16 GB/s take to
 * copy the weights; placement_from_plan computes it from the plan's figures.
 */
#define PLACEMENT_STREAM_MIN_BATCH 32

struct placement {
    uint32_t n_layer;
    int embd_dev;   /* device index of the token embedding lookup */
    int out_dev;    /* device index of the final norm + output projection */
    int *block_dev; /* [n_layer][3]: block_dev[PLACEMENT_N_BLOCKS * il + block] */
    /*
     * [n_layer][3], same indexing: -1, or the device index the block's
     * host-resident weights are streamed to for batches of >= stream_min_batch
     * tokens (FFN and FFN_DOWN blocks only).
     */
    int *block_stream;
    int stream_min_batch; /* tokens; >= 1 (default PLACEMENT_STREAM_MIN_BATCH) */
    /*
     * Bytes of each of the two halves of the stream double buffer (the plan's
     * plan_usage.stream / 2); 0: the scheduler sizes them to the largest
     * streamed tensor (plan_stream_half_bytes).
     */
    uint64_t stream_half_bytes;
};

/* Every block on device index dev, nothing streamed. NO_MEMORY, INVALID_ARG for n_layer 0. */
hearth_status placement_create(uint32_t n_layer, int dev, struct placement **out);
void placement_free(struct placement *p); /* NULL: nothing */
/* A copy of p (the scheduler keeps its own). */
hearth_status placement_clone(const struct placement *p, struct placement **out);

static inline int placement_get(const struct placement *p, uint32_t il, enum placement_block b)
{
    return p->block_dev[PLACEMENT_N_BLOCKS * (size_t)il + (size_t)b];
}
static inline void placement_set(struct placement *p, uint32_t il, enum placement_block b, int dev)
{
    p->block_dev[PLACEMENT_N_BLOCKS * (size_t)il + (size_t)b] = dev;
}

/* Stream target of block b of layer il, -1 when it is not streamed. */
static inline int placement_get_stream(const struct placement *p, uint32_t il,
                                       enum placement_block b)
{
    return p->block_stream[PLACEMENT_N_BLOCKS * (size_t)il + (size_t)b];
}
static inline void placement_set_stream(struct placement *p, uint32_t il, enum placement_block b,
                                        int dev)
{
    p->block_stream[PLACEMENT_N_BLOCKS * (size_t)il + (size_t)b] = dev;
}
/* Blocks streamed for prefill (block_stream >= 0). */
int placement_n_streamed_blocks(const struct placement *p);

/* Both FFN blocks of layer il (gate/up and down) on dev: the layer's FFN unsplit. */
static inline void placement_set_ffn(struct placement *p, uint32_t il, int dev)
{
    placement_set(p, il, PLACEMENT_FFN, dev);
    placement_set(p, il, PLACEMENT_FFN_DOWN, dev);
}

/*
 * Parses an -ngl value: a decimal count >= 0 ("0", "16"; larger than the
 * model's layer count is allowed and means all of them plus the output head)
 * or "auto" (PLACEMENT_NGL_AUTO). INVALID_ARG naming the text otherwise.
 */
hearth_status placement_parse_ngl(const char *s, int *ngl);

/*
 * -ngl N: all blocks of layers [0, min(N, n_layer)) on gpu_dev, the rest on
 * cpu_dev; the output head on gpu_dev when N > n_layer (the count llama.cpp
 * users know: n_layer + 1 offloads everything); the embedding lookup always
 * on cpu_dev (a row gather, cheap anywhere, and the table is large).
 * INVALID_ARG for N < 0.
 */
hearth_status placement_from_ngl(struct placement *p, int ngl, int gpu_dev, int cpu_dev);

/*
 * The block placement of plan pn (for model description pm; plan device i is
 * scheduler device i): each layer's attention where the plan keeps its KV,
 * its FFN block where the plan computes ffn_gate/ffn_up and its FFN_DOWN
 * block where it computes ffn_down (plan_layer.ffn_up_dev / ffn_down_dev: a
 * plan made with sched_layout keeps each part on one device; otherwise the
 * device computing most of its bytes), the output head where the plan
 * computes the LM head, the embedding on the host (0). Streaming: an FFN or
 * FFN_DOWN block whose matrices the plan streams (PLAN_KIND_STREAM) streams
 * to their prefill device, provided the layer's whole FFN then runs on that
 * device in prefill (else neither block streams); stream_min_batch is the
 * smallest batch for which the plan's figures make the copy and the GPU
 * faster than the CPU on those blocks, stream_half_bytes the plan's half.
 * The LM head is never streamed (the GPU holds no logits room for it).
 * INVALID_ARG when the layer counts differ or a device index is >= n_dev.
 */
hearth_status placement_from_plan(struct placement *p, const struct plan_model *pm,
                                  const struct plan *pn, int n_dev);
/* Layers with any block (attention, FFN or FFN_DOWN) on a device other than the host (0). */
int placement_n_offloaded_layers(const struct placement *p);

/* Bytes a device holds for layer il: its weights plus K/V for n_ctx positions. */
uint64_t placement_layer_bytes(const struct model *m, uint32_t il, uint32_t n_ctx);
/* Bytes of the output head (final norm + output matrix). */
uint64_t placement_output_bytes(const struct model *m);

/*
 * -ngl auto: the largest N whose first N layers (and, once all layers fit,
 * the output head, giving n_layer + 1) fit in free_bytes - margin_bytes -
 * fixed_bytes (fixed: activations and staging the scheduler keeps on the
 * device, see sched_device_fixed_bytes). 0 when not even one layer fits.
 */
int placement_auto_ngl(const struct model *m, uint32_t n_ctx, uint64_t free_bytes,
                       uint64_t margin_bytes, uint64_t fixed_bytes);

#endif
