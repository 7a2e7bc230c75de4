#version 450
// kv-store: writes the batch's new K and V rows into the F16 cache at
// positions pos0 .. pos0 + n_tok - 1. One invocation per pair of elements:
// packHalf2x16 writes a whole uint32 word, so neither 16-bit storage nor
// byte-addressable stores are needed (kv_dim is even).
#extension GL_GOOGLE_include_directive : require
#include "params/kv.h"

layout(local_size_x = VK_KV_WG) in;
layout(binding = 0) readonly buffer KSrc { float ks[]; };
layout(binding = 1) readonly buffer VSrc { float vs[]; };
layout(binding = 2) writeonly buffer KCache { uint kc[]; };
layout(binding = 3) writeonly buffer VCache { uint vc[]; };
layout(binding = 4) readonly buffer StepBuf { uint step[]; }; // read only when pos_slot > 0
#include "common/step.glsl"

void main()
{
    uint idx = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * VK_KV_WG;
    uint half_dim = pc.kv_dim / 2u;
    if (idx >= pc.n_tok * half_dim)
        return;
    uint t = idx / half_dim, i = idx % half_dim;
    uint s = t * pc.src_stride + 2u * i;
    uint pos0 = batch_pos0(pc.pos0, pc.pos_slot);
    uint dst = (pos0 + t) * half_dim + i;
    kc[pc.k_cache_off + dst] = packHalf2x16(vec2(ks[pc.k_src_off + s], ks[pc.k_src_off + s + 1u]));
    vc[pc.v_cache_off + dst] = packHalf2x16(vec2(vs[pc.v_src_off + s], vs[pc.v_src_off + s + 1u]));
}
