// common/dequant: reads weights of the type selected by A_<TYPE> from the
// uint32 storage array `wq` (declared by the including shader) and decodes
// FOUR consecutive elements at a time: dq4(row_byte_offset, e) returns
// elements e..e+3 of the row (e a multiple of 4). Four is the largest group
// that shares one scale in every format and whose quant bits sit in one
// unaligned 32-bit read, so each format decodes in registers without a
// per-element branch. Blocks are only byte-aligned inside a row (Q4_0 is 18
// bytes), so reads go through rd8/rd16/rd32, which assemble bytes from the
// 32-bit words; buffer.c pads every weight allocation by 16 bytes so the
// second word of an unaligned rd32 at the end of a row is always in bounds.
// Layouts: facts sheet §3 (core/quant-internal.h).
// The lattice types (IQ1/IQ2/IQ3) look groups of 8 (or 4) up in the grids of
// core/iq-grids.h, held in one read-only storage buffer per context
// (vulkan/iq-grids.c; word layout in params/iq-grids.h) at binding
// IQ_GRID_BINDING, which the including shader defines: a group of 4 is one
// uint of a grid entry, so they decode without a per-element branch too. The
// implied eighth sign bit of IQ2_XXS/IQ2_XS/IQ3_XXS is computed (bitCount
// parity), not a table. Rejected: the grids as GLSL constant arrays. Indexed
// per invocation, glslang gives each invocation a function-local copy of the
// whole table (1-16 KiB), which Mesa 22.3's lavapipe JIT took 26 s to minutes
// per pipeline to compile, and which a GPU may spill to scratch memory. A
// storage-buffer read goes through the cache like any weight read; the tables
// (33 KiB) stay resident in L1/L2 on any GPU.

uint rd8(uint b) { return (wq[b >> 2] >> ((b & 3u) << 3)) & 0xffu; }
uint rd16(uint b) { return (wq[b >> 2] >> ((b & 2u) << 3)) & 0xffffu; } // b even
uint rd32(uint b)
{
    uint s = (b & 3u) << 3;
    uint lo = wq[b >> 2];
    if (s == 0u)
        return lo;
    return (lo >> s) | (wq[(b >> 2) + 1u] << (32u - s));
}
float f16at(uint b) { return unpackHalf2x16(rd16(b)).x; }
// the four bytes of q, each shifted right by sh and masked
uvec4 bytes4(uint q, uint sh, uint mask)
{
    return uvec4(q >> sh, q >> (8u + sh), q >> (16u + sh), q >> (24u + sh)) & mask;
}
// the four bytes of q as signed int8
ivec4 sbytes4(uint q)
{
    return ivec4(int(q << 24) >> 24, int(q << 16) >> 24, int(q << 8) >> 24, int(q) >> 24);
}

#if defined(A_IQ4_NL) || defined(A_IQ4_XS)
const float iq4_vals[16] = float[16](-127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0,
                                      1.0, 13.0, 25.0, 38.0, 53.0, 69.0, 89.0, 113.0);
vec4 iq4_lookup(uvec4 n)
{
    return vec4(iq4_vals[n.x], iq4_vals[n.y], iq4_vals[n.z], iq4_vals[n.w]);
}
#endif

#if defined(A_IQ2_XXS) || defined(A_IQ2_XS) || defined(A_IQ2_S) || defined(A_IQ3_XXS) || \
    defined(A_IQ3_S) || defined(A_IQ1_S) || defined(A_IQ1_M)
#include "params/iq-grids.h"
layout(binding = IQ_GRID_BINDING) readonly buffer IqGrid { uint iqg[]; }; // [VK_IQ_GRID_WORDS]
#endif

#if defined(A_IQ2_XXS) || defined(A_IQ2_XS) || defined(A_IQ2_S) || defined(A_IQ3_XXS) || \
    defined(A_IQ3_S)
// bit i of s set: element i negated (a multiply, not a branch)
vec4 iq_signs4(uint s)
{
    return vec4(1.0) - 2.0 * vec4(uvec4(s, s >> 1, s >> 2, s >> 3) & 1u);
}
// a 7-bit sign index to its 8 sign bits: the format keeps the count of negated elements even,
// so bit 7 is the parity of the other seven (the table the format names, computed)
uint iq_signs8(uint s7)
{
    return s7 | ((uint(bitCount(s7)) & 1u) << 7);
}
#endif

#if defined(A_F32)
vec4 dq4(uint rb, uint e)
{
    uint b = rb + e * 4u;
    return vec4(uintBitsToFloat(rd32(b)), uintBitsToFloat(rd32(b + 4u)),
                uintBitsToFloat(rd32(b + 8u)), uintBitsToFloat(rd32(b + 12u)));
}
#elif defined(A_F16) && defined(USE_16BIT)
// 16-bit storage (the device's storageBuffer16BitAccess, enabled by device.c):
// the same binding seen as f16vec4, so a group of 4 is one 64-bit load and a
// hardware conversion. The host picks this variant only when the weight's
// byte offset is a multiple of 8 (rows of 2 * n_in bytes, n_in % 4 == 0, keep
// every group 8-aligned after that).
layout(binding = 0) readonly buffer WBufH { f16vec4 wh4[]; };
vec4 dq4(uint rb, uint e)
{
    return vec4(wh4[(rb + e * 2u) >> 3]);
}
#elif defined(A_F16)
vec4 dq4(uint rb, uint e)
{
    uint b = rb + e * 2u;
    return vec4(unpackHalf2x16(rd32(b)), unpackHalf2x16(rd32(b + 4u)));
}
#elif defined(A_BF16)
vec4 dq4(uint rb, uint e)
{
    uint b = rb + e * 2u;
    uint p = rd32(b), q = rd32(b + 4u);
    return vec4(uintBitsToFloat(p << 16), uintBitsToFloat(p & 0xffff0000u),
                uintBitsToFloat(q << 16), uintBitsToFloat(q & 0xffff0000u));
}
#elif defined(A_Q4_0) || defined(A_Q4_1) || defined(A_IQ4_NL)
#if defined(A_Q4_1)
const uint BS = 20u, QS = 4u;
#else
const uint BS = 18u, QS = 2u;
#endif
vec4 dq4(uint rb, uint e)
{
    uint base = rb + (e >> 5) * BS, eb = e & 31u;
    uvec4 n = bytes4(rd32(base + QS + (eb & 15u)), eb >= 16u ? 4u : 0u, 15u);
    float d = f16at(base);
#if defined(A_Q4_0)
    return d * (vec4(n) - 8.0);
#elif defined(A_Q4_1)
    return d * vec4(n) + f16at(base + 2u);
#else
    return d * iq4_lookup(n);
#endif
}
#elif defined(A_Q5_0) || defined(A_Q5_1)
#if defined(A_Q5_1)
const uint BS = 24u, QH = 4u;
#else
const uint BS = 22u, QH = 2u;
#endif
// bits 0-3 of h as the fifth bit (16) of four quants
uvec4 q5_high4(uint h)
{
    return uvec4(h << 4, h << 3, h << 2, h << 1) & 16u;
}
vec4 dq4(uint rb, uint e)
{
    uint base = rb + (e >> 5) * BS, eb = e & 31u;
    uvec4 n = bytes4(rd32(base + QH + 4u + (eb & 15u)), eb >= 16u ? 4u : 0u, 15u);
    uint h = rd32(base + QH) >> eb;
    n += q5_high4(h);
    float d = f16at(base);
#if defined(A_Q5_0)
    return d * (vec4(n) - 16.0);
#else
    return d * vec4(n) + f16at(base + 2u);
#endif
}
#elif defined(A_Q8_0)
vec4 dq4(uint rb, uint e)
{
    uint base = rb + (e >> 5) * 34u;
    return f16at(base) * vec4(sbytes4(rd32(base + 2u + (e & 31u))));
}
#elif defined(A_Q2_K)
vec4 dq4(uint rb, uint e)
{
    uint base = rb + (e >> 8) * 84u, eb = e & 255u;
    uvec4 q = bytes4(rd32(base + 16u + 32u * (eb >> 7) + (eb & 31u)), 2u * ((eb & 127u) >> 5), 3u);
    uint sc = rd8(base + (eb >> 4));
    return f16at(base + 80u) * float(sc & 15u) * vec4(q) - f16at(base + 82u) * float(sc >> 4);
}
#elif defined(A_Q3_K)
vec4 dq4(uint rb, uint e)
{
    uint base = rb + (e >> 8) * 110u, eb = e & 255u;
    uvec4 lo = bytes4(rd32(base + 32u + 32u * (eb >> 7) + (eb & 31u)), 2u * ((eb & 127u) >> 5), 3u);
    uvec4 hb = bytes4(rd32(base + (eb & 31u)), eb >> 5, 1u);
    uint j = eb >> 4;
    uint low4 = j < 8u ? rd8(base + 96u + j) & 15u : rd8(base + 88u + j) >> 4;
    uint high2 = (rd8(base + 104u + (j & 3u)) >> (2u * (j >> 2))) & 3u;
    float sc = float(int(low4 | (high2 << 4)) - 32);
    return f16at(base + 108u) * sc * (vec4(lo + 4u * hb) - 4.0);
}
#elif defined(A_Q4_K) || defined(A_Q5_K)
#if defined(A_Q4_K)
const uint BS = 144u, QS = 16u;
#else
const uint BS = 176u, QS = 48u;
#endif
// sub-block j's 6-bit scale (x) and min (y) of the super-block at base (get_scale_min)
uvec2 k4_scale_min(uint base, uint j)
{
    if (j < 4u)
        return uvec2(rd8(base + 4u + j), rd8(base + 8u + j)) & 63u;
    uint s8 = rd8(base + 8u + j);
    return uvec2((s8 & 15u) | ((rd8(base + j) >> 6) << 4), (s8 >> 4) | ((rd8(base + 4u + j) >> 6) << 4));
}
vec4 dq4(uint rb, uint e)
{
    uint base = rb + (e >> 8) * BS, eb = e & 255u, j = eb >> 5;
    uvec4 n = bytes4(rd32(base + QS + 32u * (eb >> 6) + (eb & 31u)), (eb & 63u) >= 32u ? 4u : 0u, 15u);
#if defined(A_Q5_K)
    n += bytes4(rd32(base + 16u + (eb & 31u)), j, 1u) << 4;
#endif
    uvec2 sm = k4_scale_min(base, j);
    return f16at(base) * float(sm.x) * vec4(n) - f16at(base + 2u) * float(sm.y);
}
#elif defined(A_Q6_K)
vec4 dq4(uint rb, uint e)
{
    uint base = rb + (e >> 8) * 210u, eb = e & 255u;
    uint h = eb >> 7, k = (eb & 127u) >> 5, l = eb & 31u;
    uvec4 lo = bytes4(rd32(base + 64u * h + 32u * (k & 1u) + l), k >= 2u ? 4u : 0u, 15u);
    uvec4 hi = bytes4(rd32(base + 128u + 32u * h + l), 2u * k, 3u);
    float sc = float(int(rd8(base + 192u + (eb >> 4)) << 24) >> 24);
    return f16at(base + 208u) * sc * (vec4(lo | (hi << 4)) - 32.0);
}
#elif defined(A_IQ4_XS)
vec4 dq4(uint rb, uint e)
{
    uint base = rb + (e >> 8) * 136u, eb = e & 255u, ib = eb >> 5, j = eb & 31u;
    uint ls = ((rd8(base + 4u + (ib >> 1)) >> (4u * (ib & 1u))) & 15u) |
              (((rd16(base + 2u) >> (2u * ib)) & 3u) << 4);
    uvec4 n = bytes4(rd32(base + 8u + 16u * ib + (j & 15u)), j >= 16u ? 4u : 0u, 15u);
    return f16at(base) * float(int(ls) - 32) * iq4_lookup(n);
}
#elif defined(A_IQ2_XXS)
// 32-element sub-block: 4 grid bytes, then a word of four 7-bit sign indexes + a 4-bit scale
vec4 dq4(uint rb, uint e)
{
    uint base = rb + (e >> 8) * 66u, eb = e & 255u, sb = base + 2u + 8u * (eb >> 5);
    uint l = (eb >> 3) & 3u, h = (eb >> 2) & 1u, aux = rd32(sb + 4u);
    uint g = iqg[IQ_OFF_IQ2XXS + 2u * rd8(sb + l) + h];
    uint s = iq_signs8((aux >> (7u * l)) & 127u) >> (4u * h);
    float db = f16at(base) * (0.5 + float(aux >> 28)) * 0.25;
    return db * vec4(bytes4(g, 0u, 255u)) * iq_signs4(s);
}
#elif defined(A_IQ2_XS)
// one u16 per 8 elements: 9-bit grid index, 7-bit sign index; a 4-bit scale per 16 elements
vec4 dq4(uint rb, uint e)
{
    uint base = rb + (e >> 8) * 74u, eb = e & 255u, h = (eb >> 2) & 1u;
    uint q = rd16(base + 2u + 2u * (eb >> 3));
    uint g = iqg[IQ_OFF_IQ2XS + 2u * (q & 511u) + h];
    uint s = iq_signs8(q >> 9) >> (4u * h);
    uint sc = (rd8(base + 66u + (eb >> 5)) >> (4u * ((eb >> 4) & 1u))) & 15u;
    return f16at(base) * (0.5 + float(sc)) * 0.25 * vec4(bytes4(g, 0u, 255u)) * iq_signs4(s);
}
#elif defined(A_IQ2_S)
// per 8 elements: grid index low byte (qs) + 2 high bits (qh), one sign byte (no parity)
vec4 dq4(uint rb, uint e)
{
    uint base = rb + (e >> 8) * 82u, eb = e & 255u, gi = eb >> 3, h = (eb >> 2) & 1u;
    uint hi = (rd8(base + 66u + (gi >> 2)) >> (2u * (gi & 3u))) & 3u;
    uint idx = rd8(base + 2u + gi) | (hi << 8);
    uint g = iqg[IQ_OFF_IQ2S + 2u * idx + h];
    uint s = rd8(base + 34u + gi) >> (4u * h);
    uint sc = (rd8(base + 74u + (eb >> 5)) >> (4u * ((eb >> 4) & 1u))) & 15u;
    return f16at(base) * (0.5 + float(sc)) * 0.25 * vec4(bytes4(g, 0u, 255u)) * iq_signs4(s);
}
#elif defined(A_IQ3_XXS)
// one grid byte per 4 elements; per 32 a word of four 7-bit sign indexes + a 4-bit scale
vec4 dq4(uint rb, uint e)
{
    uint base = rb + (e >> 8) * 98u, eb = e & 255u;
    uint aux = rd32(base + 66u + 4u * (eb >> 5));
    uint g = iqg[IQ_OFF_IQ3XXS + rd8(base + 2u + (eb >> 2))];
    uint s = iq_signs8((aux >> (7u * ((eb >> 3) & 3u))) & 127u) >> (4u * ((eb >> 2) & 1u));
    float db = f16at(base) * (0.5 + float(aux >> 28)) * 0.5;
    return db * vec4(bytes4(g, 0u, 255u)) * iq_signs4(s);
}
#elif defined(A_IQ3_S)
// per 4 elements: grid index low byte + 1 high bit; one sign bit per element; scale per 32
vec4 dq4(uint rb, uint e)
{
    uint base = rb + (e >> 8) * 110u, eb = e & 255u, k = eb >> 2;
    uint idx = rd8(base + 2u + k) | (((rd8(base + 66u + (k >> 3)) >> (k & 7u)) & 1u) << 8);
    uint s = rd8(base + 74u + (eb >> 3)) >> (4u * (k & 1u));
    uint sc = (rd8(base + 106u + (eb >> 6)) >> (4u * ((eb >> 5) & 1u))) & 15u;
    return f16at(base) * float(2u * sc + 1u) * vec4(bytes4(iqg[IQ_OFF_IQ3S + idx], 0u, 255u)) *
           iq_signs4(s);
}
#elif defined(A_IQ1_S)
// per 32 elements a u16: four 3-bit grid-index tops, a 3-bit scale, the delta's sign (bit 15)
vec4 dq4(uint rb, uint e)
{
    uint base = rb + (e >> 8) * 50u, eb = e & 255u, gi = eb >> 3;
    uint qh = rd16(base + 34u + 2u * (eb >> 5));
    uint idx = rd8(base + 2u + gi) | (((qh >> (3u * (gi & 3u))) & 7u) << 8);
    uint g = iqg[IQ_OFF_IQ1S + 2u * idx + ((eb >> 2) & 1u)];
    float dl = f16at(base) * float(2u * ((qh >> 12) & 7u) + 1u);
    return dl * (vec4(sbytes4(g)) + ((qh & 0x8000u) != 0u ? -0.125 : 0.125));
}
#elif defined(A_IQ1_M)
// no f16 field: d is the top nibbles of the four u16 scale words; per 8 elements a nibble of
// qh (3 grid-index bits + the delta's sign); a 3-bit scale per 16 elements
vec4 dq4(uint rb, uint e)
{
    uint base = rb + (e >> 8) * 56u, eb = e & 255u, gi = eb >> 3;
    uint s01 = rd32(base + 48u), s23 = rd32(base + 52u);
    uint dbits = ((s01 >> 12) & 0xfu) | ((s01 >> 24) & 0xf0u) | ((s23 >> 4) & 0xf00u) |
                 ((s23 >> 16) & 0xf000u);
    uint sc = (rd16(base + 48u + 2u * (eb >> 6)) >> (3u * ((eb >> 4) & 3u))) & 7u;
    uint nib = rd8(base + 32u + (gi >> 1)) >> (4u * (gi & 1u));
    uint g = iqg[IQ_OFF_IQ1S + 2u * (rd8(base + gi) | ((nib & 7u) << 8)) + ((eb >> 2) & 1u)];
    float dl = unpackHalf2x16(dbits).x * float(2u * sc + 1u);
    return dl * (vec4(sbytes4(g)) + ((nib & 8u) != 0u ? -0.125 : 0.125));
}
#else
#error "dequant.glsl: define one A_<TYPE>"
#endif
