#version 450
// kv-exact: the batch's own exact-window rows (core/backend.h ATTENTION step
// 5): each K (or V) head vector moved into the attention's domain (R x for a
// rotated type, through kvq_rotate's butterfly order, which is
// core/kv-rotate.c's, so the floats equal kvq_rot_forward's) and rounded to
// f16 by kvq_f16_bits (core/f16.h's rounding), packed two halves a word.
// One workgroup per (KV head, token). The rows go to a scratch region, not
// the ring: the ring slot of a batch position may still hold an older
// position that an earlier token of the same batch attends to, so the ring
// is written only after the attention pass (kv-ring.comp).
#extension GL_GOOGLE_include_directive : require
#define VK_SHADER_KV_EXACT
#include "params/kv.h"
// before common/kvq.glsl: its kvq_rotate reads gl_WorkGroupSize
layout(local_size_x = VK_KVQ_WG) in;
#include "common/kvq.glsl"

layout(binding = 0) readonly buffer Src { float src[]; };
layout(binding = 1) writeonly buffer Dst { uint dst[]; };

void main()
{
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
    uint hd = pc.head_dim;
    uint sb = pc.src_off + t * pc.src_stride + h * hd;
    for (uint d = tid; d < hd; d += VK_KVQ_WG)
        kvq_vec[d] = src[sb + d];
    barrier();
    if (kvq_rotated(pc.type))
        kvq_rotate(hd, false);
    uint db = pc.dst_off + (t * pc.n_head_kv * hd + h * hd) / 2u;
    for (uint i = tid; i < hd / 2u; i += VK_KVQ_WG)
        dst[db + i] = kvq_f16_bits(kvq_vec[2u * i]) | (kvq_f16_bits(kvq_vec[2u * i + 1u]) << 16);
}
