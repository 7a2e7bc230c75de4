#version 450
// rope: one invocation per rotated pair (token, head, k). theta = pos *
// inv_freq[k] in f32 (inv_freq comes from the host in double precision, with
// freq_scale and the llama3 per-dim divisors folded in); the f32 product
// costs ~pos * 6e-8 radians, below the F16 KV cache's own rounding for any
// context a decode reaches. The CPU computes theta in double; see docs/vulkan.md.
#extension GL_GOOGLE_include_directive : require
#include "params/rope.h"

layout(local_size_x = VK_ROPE_WG) in;
layout(binding = 0) buffer XBuf { float x[]; };
layout(binding = 1) readonly buffer FBuf { float inv_freq[]; };
layout(binding = 2) readonly buffer StepBuf { uint step[]; }; // read only when pos_slot > 0
#include "common/step.glsl"

void main()
{
    uint half_rot = pc.n_rot / 2u;
    uint idx = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * VK_ROPE_WG;
    uint per_tok = pc.n_heads * half_rot;
    if (idx >= pc.n_tok * per_tok)
        return;
    uint t = idx / per_tok, rem = idx % per_tok, h = rem / half_rot, k = rem % half_rot;
    uint pos0 = batch_pos0(pc.pos0, pc.pos_slot);
    float th = float(pos0 + t) * inv_freq[pc.f_off + k];
    float c = cos(th), s = sin(th);
    uint b = pc.x_off + t * pc.x_stride + h * pc.head_dim;
    uint i = pc.neox != 0u ? b + k : b + 2u * k;
    uint j = pc.neox != 0u ? b + k + half_rot : b + 2u * k + 1u;
    float a = x[i], bb = x[j];
    x[i] = a * c - bb * s;
    x[j] = a * s + bb * c;
}
