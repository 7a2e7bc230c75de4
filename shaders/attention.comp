#version 450
// attention: one workgroup per (query head h, token t) over the F16 cache.
// Token t sits at position p = pos0 + t and sees positions [lo, p] (causal;
// lo = p - window + 1 for a sliding-window layer), of KV head h / (n_head /
// n_head_kv) (GQA). Positions are processed in chunks of VK_ATTN_CHUNK with an
// online softmax (running max m and sum l; earlier partial sums rescaled by
// exp(m_old - m_new)), so context length is bounded by nothing but the cache
// and the shared memory stays small. Within a chunk each invocation scores
// whole positions (q . K_j over head_dim, q staged in shared memory), then
// each invocation accumulates its own output dims (d = tid + VK_ATTN_WG * i).
// Reductions (chunk max, chunk sum) are shared-memory trees: any subgroup size.
// With n_split > 1 (flash-decoding, params/attn.h) workgroup z = s covers
// piece s of [lo, p] only and writes its unnormalised partial instead;
// attention-combine.comp merges them. n_split == 1 is the plain pass.
#extension GL_GOOGLE_include_directive : require
#include "params/attn.h"

layout(local_size_x = VK_ATTN_WG) in;
layout(binding = 0) readonly buffer QBuf { float q[]; };
layout(binding = 1) readonly buffer KCache { uint kc[]; };
layout(binding = 2) readonly buffer VCache { uint vc[]; };
layout(binding = 3) writeonly buffer OBuf { float o[]; };
layout(binding = 4) readonly buffer StepBuf { uint step[]; }; // read only when pos_slot > 0
#include "common/step.glsl"

shared float qs[VK_ATTN_MAX_HD];
shared float sc[VK_ATTN_CHUNK];
shared float red[VK_ATTN_WG];

const uint NPER = VK_ATTN_MAX_HD / VK_ATTN_WG;

float wg_reduce(float v, bool is_max)
{
    uint tid = gl_LocalInvocationID.x;
    red[tid] = v;
    barrier();
    for (uint s = VK_ATTN_WG / 2u; s > 0u; s >>= 1) {
        if (tid < s)
            red[tid] = is_max ? max(red[tid], red[tid + s]) : red[tid] + red[tid + s];
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}

void main()
{
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
    uint pos0 = batch_pos0(pc.pos0, pc.pos_slot);
    uint hd = pc.head_dim, p = pos0 + t;
    uint lo = (pc.window > 0u && p + 1u > pc.window) ? p + 1u - pc.window : 0u;
    uint hi = p; // the last position this workgroup scores
    if (pc.n_split > 1u) {
        // piece ceil(len / n_split) from the position: a trailing piece may be empty
        uint piece = (p - lo + pc.n_split) / pc.n_split;
        lo += gl_WorkGroupID.z * piece;
        hi = min(p, lo + piece - 1u);
    }
    uint kvh = h / (pc.n_head / pc.n_head_kv);
    uint col2 = kvh * hd / 2u, row2 = pc.kv_dim / 2u;
    for (uint d = tid; d < hd; d += VK_ATTN_WG)
        qs[d] = q[pc.q_off + t * pc.q_stride + h * hd + d];
    barrier();

    float m = -1e30, l = 0.0;
    float acc[NPER];
    for (uint i = 0u; i < NPER; i++)
        acc[i] = 0.0;
    for (uint c0 = lo; c0 <= hi; c0 += VK_ATTN_CHUNK) {
        uint n = min(uint(VK_ATTN_CHUNK), hi - c0 + 1u);
        float lmax = -1e30;
        for (uint j = tid; j < n; j += VK_ATTN_WG) {
            uint kb = pc.k_cache_off + (c0 + j) * row2 + col2;
            float s = 0.0;
            for (uint d2 = 0u; d2 < hd / 2u; d2++) {
                vec2 kk = unpackHalf2x16(kc[kb + d2]);
                s += qs[2u * d2] * kk.x + qs[2u * d2 + 1u] * kk.y;
            }
            s *= pc.scale;
            sc[j] = s;
            lmax = max(lmax, s);
        }
        float mnew = max(m, wg_reduce(lmax, true));
        float lsum = 0.0;
        for (uint j = tid; j < n; j += VK_ATTN_WG) {
            float e = exp(sc[j] - mnew);
            sc[j] = e;
            lsum += e;
        }
        float corr = exp(m - mnew);
        l = l * corr + wg_reduce(lsum, false); // its barriers also publish sc[]
        for (uint i = 0u; i < NPER; i++) {
            uint d = tid + VK_ATTN_WG * i;
            if (d >= hd)
                break;
            float a = acc[i] * corr;
            uint vb = pc.v_cache_off + c0 * row2 + col2 + d / 2u;
            bool odd = (d & 1u) != 0u;
            for (uint j = 0u; j < n; j++) {
                vec2 vv = unpackHalf2x16(vc[vb + j * row2]);
                a += sc[j] * (odd ? vv.y : vv.x);
            }
            acc[i] = a;
        }
        m = mnew;
        barrier(); // sc[] is rewritten by the next chunk
    }
    if (pc.n_split > 1u) {
        // an empty piece leaves m = -1e30, l = 0, acc = 0: the merge weighs it 0
        uint pb = pc.o_off + VK_ATTN_PART(t, h, gl_WorkGroupID.z, pc.n_head, pc.n_split) * (hd + 2u);
        if (tid == 0u) {
            o[pb] = m;
            o[pb + 1u] = l;
        }
        for (uint i = 0u; i < NPER; i++) {
            uint d = tid + VK_ATTN_WG * i;
            if (d < hd)
                o[pb + 2u + d] = acc[i];
        }
        return;
    }
    float inv = 1.0 / l;
    for (uint i = 0u; i < NPER; i++) {
        uint d = tid + VK_ATTN_WG * i;
        if (d < hd)
            o[pc.o_off + t * pc.o_stride + h * hd + d] = acc[i] * inv;
    }
}
