/*
 * vulkan/vk-graph: executes core/backend.h op lists (struct hearth_op) with
 * the vk_* ops; the state a stream keeps between lists (scratch, RoPE
 * frequency tables). Used by backend.c only.
 */
#ifndef HEARTH_VK_GRAPH_H
#define HEARTH_VK_GRAPH_H

#include "backend-registry.h"
#include "backend.h"
#include "vk-internal.h"

struct vk_graph;

hearth_status vk_graph_create(struct vk_ctx *ctx, struct vk_graph **out);
void vk_graph_destroy(struct vk_graph *g);
/* Records ops[0..n_ops) on g's context (backend.h contracts); does not wait. */
hearth_status vk_graph_run(struct vk_graph *g, const struct hearth_op *ops, int n_ops);

/* Replay counters of g (zeros with replay off). */
void vk_graph_replay_stats(const struct vk_graph *g, struct vk_replay_stats *out);

/*
 * replay.c: a stream's recorded single-token op lists. Between begin and
 * end the context captures dispatches instead of recording them; end (given
 * the walk's status) executes the matching recording, recording it first if
 * the capture is new. Every call to begin is followed by one to end.
 */
struct vk_replay;
hearth_status vk_replay_create(struct vk_ctx *ctx, struct vk_replay **out);
void vk_replay_destroy(struct vk_replay *r);
void vk_replay_begin(struct vk_replay *r);
hearth_status vk_replay_end(struct vk_replay *r, hearth_status walk_st);
/* Counts an op list run without capture (replay off for it). */
void vk_replay_count_walk(struct vk_replay *r);
void vk_replay_get_stats(const struct vk_replay *r, struct vk_replay_stats *out);

/* The vk_buffer behind a Vulkan hearth_buffer; NULL for another backend's buffer. */
struct vk_buffer *vk__hearth_buffer(struct hearth_buffer *buf);
/* The registry table (device.c returns it from vk_backend_ops). */
const struct hearth_backend_ops *vk__backend_table(void);
/* Lists devices without opening one (device.c). */
int vk_probe_devices(struct reg_device_info *out, int max);

#endif
