#version 450
// kv-ring: the batch's exact rows (kv-exact.comp's scratch) into the layer's
// exact-window ring after the attention pass read the ring's older rows
// (core/backend.h ATTENTION step 5: slot p % W, tag p, for every batch
// position in order, so only the last min(W, n_tok) tokens survive and only
// those are written). One invocation per (uint32 word of a row, token).
#extension GL_GOOGLE_include_directive : require
#define VK_SHADER_KV_RING
#include "params/kv.h"
layout(local_size_x = VK_KV_WG) in;

layout(binding = 0) readonly buffer Scratch { uint xs[]; };
layout(binding = 1) writeonly buffer KRing { uint kr[]; };
layout(binding = 2) writeonly buffer VRing { uint vr[]; };
layout(binding = 3) writeonly buffer RingPos { int rpos[]; };
layout(binding = 4) readonly buffer StepBuf { uint step[]; }; // read only when pos_slot > 0
#include "common/step.glsl"

void main()
{
    uint w = gl_GlobalInvocationID.x, nw = pc.kv_dim / 2u;
    uint n_last = min(pc.kv_window, pc.n_tok);
    uint t = pc.n_tok - n_last + gl_GlobalInvocationID.y;
    if (w >= nw || t >= pc.n_tok)
        return;
    uint pos0 = batch_pos0(pc.pos0, pc.pos_slot);
    uint p = pos0 + t, slot = p % pc.kv_window;
    kr[pc.kr_off + slot * pc.r_stride + w] = xs[t * nw + w];
    vr[pc.vr_off + slot * pc.r_stride + w] = xs[(pc.n_tok + t) * nw + w];
    if (w == 0u)
        rpos[pc.rp_off + slot] = int(p);
}
