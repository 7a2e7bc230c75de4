#version 450
// attention-kvq: attention.comp over K and V caches of any kvq types
// (core/kv-quant.h layouts; core/cpu/attn-kvq.c is the reference). One
// workgroup per (query head h, token t); positions [lo, p] in chunks of
// VK_ATTN_CHUNK with an online softmax, as attention.comp.
//   Scores work on the encoded keys: for a rotated K the query is rotated
//   once in shared memory (q.k = (Rq).(Rk)), then each invocation scores whole
//   positions, one scale per block or piece times an integer- or
//   level-weighted partial sum.
//   Values: each invocation owns output dims d = tid + VK_ATTN_WG * i and
//   decodes element d of every position; for a rotated V the sum stays in
//   the rotated domain and is rotated back once (R^T is linear).
// Cache rows are byte rows (a head vector need not be 4-byte aligned), read
// through byte and unaligned-word helpers over the uint32 arrays; every
// cache allocation has 16 bytes of slack, so the unaligned read's second
// word at the end of the cache stays in bounds. Reductions are shared-memory
// trees: correct for any subgroup size.
// With n_split > 1 (flash-decoding, params/attn.h; packed in types' top
// byte) workgroup z = s covers piece s of [lo, p] and writes its partial,
// a rotated V's still rotated; attention-combine.comp merges and rotates.
// The sink (has_sink, K not f16): position 0's key is the exact centred key
// of binding 4 (kv-center.comp), not the decoded row 0; it is moved into K's
// domain once per workgroup (rotated like the query for a rotated K, as the
// CPU does) and scored as a plain float dot product.
// The exact window (kv_window W > 0, core/backend.h ATTENTION step 5): a
// position j > p - W reads f16 rows already in the attention's domain (so no
// rotation per row): the batch's own from kv-exact.comp's scratch, older ones
// from the ring when its tag says it holds j. The scoring invocation decides
// the V source of each position of the chunk (xsrc[], published by the
// reduction's barriers) so the value loop needs no tag reads; K_0 stays the
// sink. The ring is written after this pass (kv-ring.comp).
#extension GL_GOOGLE_include_directive : require
#define VK_SHADER_ATTN_KVQ
#include "params/attn.h"
#include "params/kv.h"
// before common/kvq.glsl: its kvq_rotate reads gl_WorkGroupSize
layout(local_size_x = VK_ATTN_WG) in;
#include "common/kvq.glsl"

layout(binding = 0) readonly buffer QBuf { float q[]; };
layout(binding = 1) readonly buffer KCache { uint kc[]; };
layout(binding = 2) readonly buffer VCache { uint vc[]; };
layout(binding = 3) writeonly buffer OBuf { float o[]; };
layout(binding = 4) readonly buffer SinkBuf { float sink[]; };
layout(binding = 5) readonly buffer StepBuf { uint step[]; }; // read only when pos_slot > 0
#include "common/step.glsl"
// the exact window, read only when kv_window > 0 (else placeholders)
layout(binding = 6) readonly buffer XScratch { uint xs[]; };
layout(binding = 7) readonly buffer KRing { uint kr[]; };
layout(binding = 8) readonly buffer VRing { uint vr[]; };
layout(binding = 9) readonly buffer RingPos { int rpos[]; };

// where position j's exact row lives: 0 none (the decoded row), else
// XS_BATCH / XS_RING | (the uint32 word of its row start) << 2
const uint XS_BATCH = 1u, XS_RING = 2u;

shared float sc[VK_ATTN_CHUNK];
shared uint xsrc[VK_ATTN_CHUNK]; // the exact source of each position of the chunk (V's)
shared float sinkv[VK_KVQ_MAX_HD]; // the sink key in K's domain (rotated for a rotated K)
shared float red[VK_ATTN_WG];

const uint NPER = VK_ATTN_MAX_HD / VK_ATTN_WG;

// byte b, the unaligned 32-bit word at byte b, and the f16 at byte b, of K or V
uint rd8(bool v, uint b)
{
    uint w = v ? vc[b >> 2] : kc[b >> 2];
    return (w >> ((b & 3u) << 3)) & 0xffu;
}
uint rd32(bool v, uint b)
{
    uint s = (b & 3u) << 3;
    uint lo = v ? vc[b >> 2] : kc[b >> 2];
    if (s == 0u)
        return lo;
    uint hi = v ? vc[(b >> 2) + 1u] : kc[(b >> 2) + 1u];
    return (lo >> s) | (hi << (32u - s));
}
float rdf16(bool v, uint b)
{
    return unpackHalf2x16(rd8(v, b) | (rd8(v, b + 1u) << 8)).x;
}

float wg_reduce(float x, bool is_max)
{
    uint tid = gl_LocalInvocationID.x;
    red[tid] = x;
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

// q (in kvq_vec, in K's domain) . K head vector at byte kb
float score(uint type, uint hd, uint kb)
{
    float s = 0.0;
    if (type == VK_KVQ_F16) {
        for (uint d = 0u; d < hd; d += 2u) {
            vec2 kk = unpackHalf2x16(rd32(false, kb + 2u * d));
            s += kvq_vec[d] * kk.x + kvq_vec[d + 1u] * kk.y;
        }
    } else if (type == VK_KVQ_Q8_0) {
        for (uint b = 0u; b < hd / 32u; b++) {
            uint bb = kb + 34u * b;
            float part = 0.0;
            for (uint w = 0u; w < 8u; w++) {
                uint x = rd32(false, bb + 2u + 4u * w);
                for (uint k = 0u; k < 4u; k++)
                    part += kvq_vec[32u * b + 4u * w + k] * float(int(x << (24u - 8u * k)) >> 24);
            }
            s += rdf16(false, bb) * part;
        }
    } else if (type == VK_KVQ_Q4_0) {
        for (uint b = 0u; b < hd / 32u; b++) {
            uint bb = kb + 18u * b;
            float part = 0.0;
            for (uint w = 0u; w < 4u; w++) {
                uint x = rd32(false, bb + 2u + 4u * w);
                for (uint k = 0u; k < 4u; k++) {
                    uint e = 32u * b + 4u * w + k, byte = (x >> (8u * k)) & 0xffu;
                    part += kvq_vec[e] * float(int(byte & 15u) - 8) +
                            kvq_vec[e + 16u] * float(int(byte >> 4) - 8);
                }
            }
            s += rdf16(false, bb) * part;
        }
    } else {
        uint np = kvq_n_pieces(hd), cb = kb + 2u * np, off = 0u, p = 0u;
        for (uint len = uint(VK_KVQ_MAX_HD); len >= 32u; len >>= 1) {
            if ((hd & len) == 0u)
                continue;
            float part = 0.0;
            for (uint i = off; i < off + len; i += 8u) {
                if (type == VK_KVQ_ROT4) {
                    uint x = rd32(false, cb + i / 2u);
                    for (uint k = 0u; k < 8u; k++)
                        part += kvq_vec[i + k] * kvq_lv4[(x >> (4u * k)) & 15u];
                } else {
                    uint x = rd32(false, cb + 3u * (i / 8u));
                    for (uint k = 0u; k < 8u; k++)
                        part += kvq_vec[i + k] * kvq_lv3[(x >> (3u * k)) & 7u];
                }
            }
            s += rdf16(false, kb + 2u * p) * part;
            off += len;
            p++;
        }
    }
    return s;
}

// element d of the V head vector at byte vb; piece: kvq_piece_index(d, hd)
float v_elem(uint type, uint hd, uint vb, uint d, uint piece)
{
    if (type == VK_KVQ_F16)
        return rdf16(true, vb + 2u * d);
    if (type == VK_KVQ_Q8_0) {
        uint bb = vb + 34u * (d / 32u);
        return rdf16(true, bb) * float(int(rd8(true, bb + 2u + d % 32u) << 24) >> 24);
    }
    if (type == VK_KVQ_Q4_0) {
        uint bb = vb + 18u * (d / 32u), e = d % 32u;
        uint byte = rd8(true, bb + 2u + e % 16u);
        return rdf16(true, bb) * float(int(e < 16u ? byte & 15u : byte >> 4) - 8);
    }
    uint np = kvq_n_pieces(hd), cb = vb + 2u * np;
    float scale = rdf16(true, vb + 2u * piece);
    if (type == VK_KVQ_ROT4)
        return scale * kvq_lv4[(rd8(true, cb + d / 2u) >> (4u * (d & 1u))) & 15u];
    uint x = rd32(true, cb + 3u * (d / 8u));
    return scale * kvq_lv3[(x >> (3u * (d % 8u))) & 7u];
}

// the exact row of position j for query position p (0: none), see XS_*
uint exact_src(uint j, uint p, uint pos0)
{
    uint W = pc.kv_window;
    if (W == 0u || j + W <= p)
        return 0u;
    uint nw = pc.n_head_kv * pc.head_dim / 2u;
    if (j >= pos0)
        return XS_BATCH | (((j - pos0) * nw) << 2);
    uint slot = j % W;
    if (rpos[pc.rp_off + slot] != int(j))
        return 0u;
    return XS_RING | ((slot * pc.r_stride) << 2);
}

// half d of the exact row at src (head words hw further), K's ring or V's
float exact_elem(uint src, bool v, uint hw, uint d)
{
    uint w = (src >> 2) + hw + d / 2u, x;
    if ((src & 3u) == XS_BATCH)
        x = xs[w + (v ? pc.n_tok * pc.n_head_kv * pc.head_dim / 2u : 0u)];
    else
        x = v ? vr[pc.vr_off + w] : kr[pc.kr_off + w];
    return unpackHalf2x16(x >> (16u * (d & 1u))).x;
}

void main()
{
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
    uint pos0 = batch_pos0(pc.pos0, pc.pos_slot);
    uint hd = pc.head_dim, p = pos0 + t;
    uint lo = (pc.window > 0u && p + 1u > pc.window) ? p + 1u - pc.window : 0u;
    uint kvh = h / (pc.n_head / pc.n_head_kv);
    uint kt = pc.types & 0xffu, vt = (pc.types >> 8) & 0xffu, n_split = pc.types >> 24;
    uint hi = p; // the last position this workgroup scores
    if (n_split > 1u) {
        // as attention.comp: piece ceil(len / n_split), a trailing one may be empty
        uint piece = (p - lo + n_split) / n_split;
        lo += gl_WorkGroupID.z * piece;
        hi = min(p, lo + piece - 1u);
    }
    uint hw = kvh * hd / 2u; // words from an exact row's start to this head
    uint kcol = pc.k_off + kvh * kvq_head_bytes(kt, hd);
    uint vcol = pc.v_off + kvh * kvq_head_bytes(vt, hd);
    // only the piece holding position 0 starts at 0; uniform over the workgroup
    bool use_sink = ((pc.types >> 16) & 0xffu) != 0u && lo == 0u;
    if (use_sink) {
        for (uint d = tid; d < hd; d += VK_ATTN_WG)
            kvq_vec[d] = sink[pc.sink_off + kvh * hd + d];
        barrier();
        if (kvq_rotated(kt))
            kvq_rotate(hd, false);
        for (uint d = tid; d < hd; d += VK_ATTN_WG)
            sinkv[d] = kvq_vec[d];
        barrier();
    }
    for (uint d = tid; d < hd; d += VK_ATTN_WG)
        kvq_vec[d] = q[pc.q_off + t * pc.q_stride + h * hd + d];
    barrier();
    if (kvq_rotated(kt))
        kvq_rotate(hd, false);

    uint vpiece[NPER];
    for (uint i = 0u; i < NPER; i++)
        vpiece[i] = kvq_piece_index(tid + VK_ATTN_WG * i, hd);
    float m = -1e30, l = 0.0;
    float acc[NPER];
    for (uint i = 0u; i < NPER; i++)
        acc[i] = 0.0;
    for (uint c0 = lo; c0 <= hi; c0 += VK_ATTN_CHUNK) {
        uint n = min(uint(VK_ATTN_CHUNK), hi - c0 + 1u);
        float lmax = -1e30;
        for (uint j = tid; j < n; j += VK_ATTN_WG) {
            float s;
            uint xsj = exact_src(c0 + j, p, pos0);
            xsrc[j] = xsj;
            if (use_sink && c0 + j == 0u) {
                s = 0.0;
                for (uint d = 0u; d < hd; d++)
                    s += kvq_vec[d] * sinkv[d];
            } else if (xsj != 0u) {
                s = 0.0;
                for (uint d = 0u; d < hd; d += 2u) {
                    uint w = (xsj >> 2) + hw + d / 2u;
                    uint x = (xsj & 3u) == XS_BATCH ? xs[w] : kr[pc.kr_off + w];
                    vec2 kk = unpackHalf2x16(x);
                    s += kvq_vec[d] * kk.x + kvq_vec[d + 1u] * kk.y;
                }
            } else {
                s = score(kt, hd, kcol + (c0 + j) * pc.k_row_bytes);
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
            for (uint j = 0u; j < n; j++) {
                uint xsj = xsrc[j];
                a += sc[j] * (xsj != 0u ? exact_elem(xsj, true, hw, d)
                                        : v_elem(vt, hd, vcol + (c0 + j) * pc.v_row_bytes, d,
                                                 vpiece[i]));
            }
            acc[i] = a;
        }
        m = mnew;
        barrier(); // sc[] is rewritten by the next chunk
    }
    if (n_split > 1u) {
        // an empty piece leaves m = -1e30, l = 0, acc = 0: the merge weighs it 0
        uint pb = pc.o_off + VK_ATTN_PART(t, h, gl_WorkGroupID.z, pc.n_head, n_split) * (hd + 2u);
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
    uint ob = pc.o_off + t * pc.o_stride + h * hd;
    if (kvq_rotated(vt)) {
        for (uint i = 0u; i < NPER; i++) {
            uint d = tid + VK_ATTN_WG * i;
            if (d < hd)
                kvq_vec[d] = acc[i] * inv;
        }
        kvq_rotate(hd, true);
        for (uint d = tid; d < hd; d += VK_ATTN_WG)
            o[ob + d] = kvq_vec[d];
    } else {
        for (uint i = 0u; i < NPER; i++) {
            uint d = tid + VK_ATTN_WG * i;
            if (d < hd)
                o[ob + d] = acc[i] * inv;
        }
    }
}
