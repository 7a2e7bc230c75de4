#version 450
// attention-combine: the flash-decoding merge (params/attn.h). One workgroup
// per (query head h, token t) reads the n_split partials (m_s, l_s, acc_s)
// that attention.comp or attention-kvq.comp wrote for it and forms
//   out = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s,  M = max_s m_s,
// the same online-softmax merge those kernels apply chunk by chunk. Piece 0
// is never empty, so M is a real score and an empty piece (m = -1e30,
// l = 0, acc = 0) weighs 0. Every invocation rescans the few (<= 64) m_s
// and l_s rather than reducing them through shared memory: they are 2 *
// n_split floats, cheaper than a tree of barriers. A rotated V's partials
// are in the rotated domain: R^T is linear, so it is applied once here,
// after the merge, exactly as the single pass does after its last chunk.
#extension GL_GOOGLE_include_directive : require
#define VK_SHADER_ATTN_COMBINE
#include "params/attn.h"
#include "params/kv.h"
// before common/kvq.glsl: its kvq_rotate reads gl_WorkGroupSize
layout(local_size_x = VK_ATTN_WG) in;
#include "common/kvq.glsl"

layout(binding = 0) readonly buffer Part { float part[]; };
layout(binding = 1) writeonly buffer OBuf { float o[]; };

void main()
{
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
    uint hd = pc.head_dim, ns = pc.n_split, stride = hd + 2u;
    uint pb = VK_ATTN_PART(t, h, 0u, pc.n_head, ns) * stride;
    float mx = -1e30;
    for (uint s = 0u; s < ns; s++)
        mx = max(mx, part[pb + s * stride]);
    float l = 0.0;
    for (uint s = 0u; s < ns; s++)
        l += part[pb + s * stride + 1u] * exp(part[pb + s * stride] - mx);
    float inv = 1.0 / l;
    uint ob = pc.o_off + t * pc.o_stride + h * hd;
    for (uint d = tid; d < hd; d += VK_ATTN_WG) {
        float a = 0.0;
        for (uint s = 0u; s < ns; s++)
            a += part[pb + s * stride + 2u + d] * exp(part[pb + s * stride] - mx);
        if (pc.v_rot != 0u)
            kvq_vec[d] = a * inv;
        else
            o[ob + d] = a * inv;
    }
    if (pc.v_rot != 0u) {
        kvq_rotate(hd, true);
        for (uint d = tid; d < hd; d += VK_ATTN_WG)
            o[ob + d] = kvq_vec[d];
    }
}
