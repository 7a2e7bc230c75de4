#version 450
// kv-store-q: encodes the batch's new K (or V) head vectors into a cache of
// any kvq type (core/kv-quant.h), one workgroup per (KV head, token), the
// arithmetic of core/kv-quant.c's kvq_encode step by step:
//   f16        round to nearest even (integer ops, not packHalf2x16);
//   q8_0/q4_0  one invocation per 32-block: the reference's scale and codes
//              (sequential max, same float divisions and rounding);
//   rot4/rot3  R x in shared memory (kvq_rotate, the CPU's butterfly order),
//              then per piece the scale search of kv-quant.c best_scale:
//              8 trial scales across [0.8, 1.22] x RMS, two refit rounds, a
//              final pass at the best input scale.
// The one departure: best_scale works in double (the sum of squares, the
// trial scales, the error comparison) and sums codes sequentially; here all
// is float and the sums are workgroup trees (shaderFloat64 is optional in
// Vulkan and absent on many GPUs). A code can then land on the other side of
// a threshold or a trial win by a hair; tests/test-vk-kvq.c measures how
// often and bounds the effect on the decoded values.
// Output: the encoded bytes are gathered per destination word; a cache row or
// head vector need not be 4-byte aligned (rot3 at head_dim 64 is 26 bytes),
// so words shared with a neighbouring head vector (another workgroup) are
// merged with atomicAnd/atomicOr on disjoint bytes, never plain stores.
#extension GL_GOOGLE_include_directive : require
#define VK_SHADER_KVQ_STORE
#include "params/kv.h"
// before common/kvq.glsl: its kvq_rotate reads gl_WorkGroupSize
layout(local_size_x = VK_KVQ_WG) in;
#include "common/kvq.glsl"

layout(binding = 0) readonly buffer Src { float src[]; };
layout(binding = 1) coherent buffer Cache { uint cache[]; };
layout(binding = 2) readonly buffer StepBuf { uint step[]; }; // read only when pos_slot > 0
#include "common/step.glsl"

shared uint code[VK_KVQ_MAX_HD]; // per coordinate: f16 bits, i8 byte or level index
shared uint scl[8];              // f16 bits of each block's or piece's scale
shared float ra[VK_KVQ_WG], rb[VK_KVQ_WG];

// (Σ a, Σ b) over the workgroup; every invocation gets it. Uniform control flow.
vec2 wg_sum2(float a, float b)
{
    uint tid = gl_LocalInvocationID.x;
    ra[tid] = a;
    rb[tid] = b;
    barrier();
    for (uint s = VK_KVQ_WG / 2u; s > 0u; s >>= 1) {
        if (tid < s) {
            ra[tid] += ra[tid + s];
            rb[tid] += rb[tid + s];
        }
        barrier();
    }
    vec2 r = vec2(ra[0], rb[0]);
    barrier();
    return r;
}

int q_round(float x)
{
    return int(x >= 0.0 ? x + 0.5 : x - 0.5);
}

// One quantization pass of piece [off, off + len) at scale s: codes into
// code[], returns (least-squares scale, squared error Σy² - (Σyc)²/Σc²).
vec2 fit_pass(uint type, uint off, uint len, float ss, float s)
{
    uint tid = gl_LocalInvocationID.x;
    float inv = 1.0 / s;
    float yc = 0.0, cc = 0.0;
    for (uint i = tid; i < len; i += VK_KVQ_WG) {
        float y = kvq_vec[off + i];
        float x = y * inv;
        uint c = type == VK_KVQ_ROT4 ? kvq_index4(x) : kvq_index3(x);
        code[off + i] = c;
        float lv = kvq_level(type, c);
        yc += y * lv;
        cc += lv * lv;
    }
    vec2 r = wg_sum2(yc, cc);
    return vec2(r.x / r.y, ss - r.x * r.x / r.y);
}

void encode_rotated(uint type, uint hd)
{
    uint tid = gl_LocalInvocationID.x;
    kvq_rotate(hd, false);
    uint off = 0u, p = 0u;
    for (uint len = uint(VK_KVQ_MAX_HD); len >= 32u; len >>= 1) {
        if ((hd & len) == 0u)
            continue;
        float sq = 0.0;
        for (uint i = tid; i < len; i += VK_KVQ_WG)
            sq += kvq_vec[off + i] * kvq_vec[off + i];
        float ss = wg_sum2(sq, 0.0).x;
        float s = 0.0;
        if (ss > 0.0) {
            float rms = sqrt(ss / float(len));
            float best = uintBitsToFloat(0x7f800000u), best_in = rms, cur = rms;
            for (uint g = 0u; g < 8u; g++) {
                float s_in = rms * (0.8 + 0.06 * float(g));
                vec2 r = fit_pass(type, off, len, ss, s_in);
                if (r.y < best) {
                    best = r.y;
                    best_in = s_in;
                    cur = r.x;
                }
            }
            for (uint rr = 0u; rr < 2u; rr++) {
                vec2 r = fit_pass(type, off, len, ss, cur);
                if (r.y < best) {
                    best = r.y;
                    best_in = cur;
                }
                cur = r.x;
            }
            s = fit_pass(type, off, len, ss, best_in).x;
        }
        if (!(s > 0.0)) { // zero piece: scale 0, codes 0 (as kvq_encode)
            s = 0.0;
            for (uint i = tid; i < len; i += VK_KVQ_WG)
                code[off + i] = 0u;
        }
        if (tid == 0u)
            scl[p] = kvq_f16_bits(min(s, 65504.0));
        off += len;
        p++;
        barrier();
    }
}

// q8_0 (bits 8) or q4_0 (bits 4) block b: the scale and 32 codes of quant-legacy.c
void encode_block(uint type, uint b)
{
    uint e0 = 32u * b;
    if (type == VK_KVQ_Q8_0) {
        float amax = 0.0;
        for (uint e = 0u; e < 32u; e++)
            amax = max(amax, abs(kvq_vec[e0 + e]));
        float d = amax / 127.0;
        float id = d != 0.0 ? 1.0 / d : 0.0;
        for (uint e = 0u; e < 32u; e++)
            code[e0 + e] = uint(q_round(clamp(kvq_vec[e0 + e] * id, -127.0, 127.0))) & 0xffu;
        scl[b] = kvq_f16_bits(d);
    } else {
        float amax = 0.0, m = 0.0; // element of largest magnitude, first on ties
        for (uint e = 0u; e < 32u; e++) {
            float x = kvq_vec[e0 + e];
            if (abs(x) > amax) {
                amax = abs(x);
                m = x;
            }
        }
        float d = m / -8.0;
        float id = d != 0.0 ? 1.0 / d : 0.0;
        for (uint e = 0u; e < 32u; e++)
            code[e0 + e] =
                uint(clamp(q_round(clamp(kvq_vec[e0 + e] * id, -8.0, 7.0)) + 8, 0, 15));
        scl[b] = kvq_f16_bits(d);
    }
}

// byte a of the encoded head vector (kv-quant.h layouts)
uint out_byte(uint type, uint hd, uint a)
{
    if (type == VK_KVQ_F16)
        return (code[a >> 1] >> ((a & 1u) * 8u)) & 0xffu;
    if (type == VK_KVQ_Q8_0) {
        uint b = a / 34u, o = a % 34u;
        return o < 2u ? (scl[b] >> (8u * o)) & 0xffu : code[32u * b + o - 2u];
    }
    if (type == VK_KVQ_Q4_0) {
        uint b = a / 18u, o = a % 18u;
        if (o < 2u)
            return (scl[b] >> (8u * o)) & 0xffu;
        uint e = 32u * b + o - 2u;
        return code[e] | (code[e + 16u] << 4);
    }
    uint np = kvq_n_pieces(hd);
    if (a < 2u * np)
        return (scl[a >> 1] >> ((a & 1u) * 8u)) & 0xffu;
    uint c = a - 2u * np;
    if (type == VK_KVQ_ROT4)
        return code[2u * c] | (code[2u * c + 1u] << 4);
    uint g = c / 3u, k = c % 3u, w = 0u;
    for (uint i = 0u; i < 8u; i++)
        w |= code[8u * g + i] << (3u * i);
    return (w >> (8u * k)) & 0xffu;
}

void main()
{
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
    uint hd = pc.head_dim, type = pc.type;
    uint sb = pc.src_off + t * pc.src_stride + h * hd;
    for (uint d = tid; d < hd; d += VK_KVQ_WG)
        kvq_vec[d] = src[sb + d];
    barrier();

    if (type == VK_KVQ_F16) {
        for (uint d = tid; d < hd; d += VK_KVQ_WG)
            code[d] = kvq_f16_bits(kvq_vec[d]);
    } else if (type == VK_KVQ_Q8_0 || type == VK_KVQ_Q4_0) {
        for (uint b = tid; b < hd / 32u; b += VK_KVQ_WG)
            encode_block(type, b);
    } else {
        encode_rotated(type, hd);
    }
    barrier();

    uint hb = kvq_head_bytes(type, hd);
    uint pos0 = batch_pos0(pc.pos0, pc.pos_slot);
    uint base = pc.cache_off + (pos0 + t) * pc.row_bytes + h * hb;
    uint w0 = base >> 2, w1 = (base + hb - 1u) >> 2;
    for (uint w = w0 + tid; w <= w1; w += VK_KVQ_WG) {
        uint val = 0u, mask = 0u;
        for (uint k = 0u; k < 4u; k++) {
            uint a = 4u * w + k;
            if (a >= base && a < base + hb) {
                val |= out_byte(type, hd, a - base) << (8u * k);
                mask |= 0xffu << (8u * k);
            }
        }
        if (mask == 0xffffffffu) {
            cache[w] = val;
        } else {
            atomicAnd(cache[w], ~mask);
            atomicOr(cache[w], val);
        }
    }
}
