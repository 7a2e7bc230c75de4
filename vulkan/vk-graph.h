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

/* The vk_buffer behind a Vulkan hearth_buffer; NULL for another backend's buffer. */
struct vk_buffer *vk__hearth_buffer(struct hearth_buffer *buf);
/* The registry table (device.c returns it from vk_backend_ops). */
const struct hearth_backend_ops *vk__backend_table(void);
/* Lists devices without opening one (device.c). */
int vk_probe_devices(struct reg_device_info *out, int max);

#endif
