// common/dequant-unit: the decode matvec's per-block path. For the types below
// it defines HAS_UNIT and unit_dot(rb, u, xb, s): s[t] = the dot product of
// elements 32u..32u+31 of the row at byte rb with token t's activations, which
// start at x4 index xb[t]. A unit is one 32-element block (Q4_0, Q8_0, ...) or
// one 32-element sub-block of a 256-element super-block (K-quants, IQ4_XS, the
// IQ lattice types).
// Why not dq4 (dequant.glsl) eight times: dq4 recomputes the block address,
// assembles each unaligned word from two loads with a branch, and re-decodes
// the f16 scale (and a K-quant's 6-bit sub-scales) for every group of 4. Here
// that happens once per unit, the unit's quant words are loaded as a run, and
// each scale multiplies a sum of 16 or 32 products instead of each weight, so
// the work per weight is an extract, a convert and an FMA. Consecutive
// invocations take consecutive units, so a subgroup reads a contiguous span.
// Blocks of 18, 22, 34, 110 or 210 bytes sit on 2-byte boundaries only: their
// words come from ldw, one shift per unit (0 or 16) applied to a run of loads.
// The weight binding's offset is 4-byte aligned (vk__view_words), so the
// 20/24/84/136/144/176-byte blocks read whole words.
// The IQ lattice types look their groups up in the grid buffer (dequant.glsl).
// Expects from the including shader: wq (dequant.glsl's rd* readers and its
// per-type block constants BS, QS, QH), x4, MV_TOKS. Layouts: facts sheet §3
// (core/quant-internal.h).

// every quantized type: all but the float formats
#if !defined(A_F32) && !defined(A_F16) && !defined(A_BF16)
#define HAS_UNIT 1

// word i of the bytes from b (b even): a = b >> 2, sh = (b & 2) * 8; the high
// part shifts twice so sh = 0 shifts by 32 in all (0) without a branch
uint ldw(uint a, uint sh, uint i)
{
    return (wq[a + i] >> sh) | ((wq[a + i + 1u] << 16) << (16u - sh));
}
#define LDW_AT(b) uint a_ = (b) >> 2, sh_ = ((b) & 2u) << 3
#define LDW(i) ldw(a_, sh_, (i))

float sum4(vec4 v) { return dot(v, vec4(1.0)); }

// dot of w[lo..lo+n) with token t's activations x4[xi + lo ..]
#define DOT_RANGE(w, xi, lo, n, out_)                 \
    {                                                 \
        out_ = 0.0;                                   \
        for (uint k_ = (lo); k_ < (lo) + (n); k_++)   \
            out_ += dot(w[k_], x4[(xi) + k_]);        \
    }
#define SUM_RANGE(xi, lo, n, out_)                    \
    {                                                 \
        out_ = 0.0;                                   \
        for (uint k_ = (lo); k_ < (lo) + (n); k_++)   \
            out_ += sum4(x4[(xi) + k_]);              \
    }

// s[t] = dm.x * (w . x_t) (+ dm.y * sum of x_t for the types with a min): the end of
// every unit with one scale for all 32 elements
#if defined(A_Q4_1) || defined(A_Q5_1) || defined(A_IQ1_S)
#define UNIT_MIN 1
#endif
void unit_finish(vec4 w[8], uint u, uint xb[MV_TOKS], vec2 dm, out float s[MV_TOKS])
{
    for (uint t = 0u; t < MV_TOKS; t++) {
        uint xi = xb[t] + 8u * u;
        float p;
        DOT_RANGE(w, xi, 0u, 8u, p);
#ifdef UNIT_MIN
        float sx;
        SUM_RANGE(xi, 0u, 8u, sx);
        s[t] = dm.x * p + dm.y * sx;
#else
        s[t] = dm.x * p;
#endif
    }
}
// s[t] = d2.x * (w[0..4) . x_t) + d2.y * (w[4..8) . x_t): one scale per 16 elements
void unit_finish2(vec4 w[8], uint u, uint xb[MV_TOKS], vec2 d2, out float s[MV_TOKS])
{
    for (uint t = 0u; t < MV_TOKS; t++) {
        uint xi = xb[t] + 8u * u;
        float p0, p1;
        DOT_RANGE(w, xi, 0u, 4u, p0);
        DOT_RANGE(w, xi, 4u, 4u, p1);
        s[t] = d2.x * p0 + d2.y * p1;
    }
}
#endif

#if defined(A_Q4_0) || defined(A_Q4_1) || defined(A_IQ4_NL)
void unit_dot(uint rb, uint u, uint xb[MV_TOKS], out float s[MV_TOKS])
{
    uint base = rb + u * BS;
    LDW_AT(base + QS);
    vec4 w[8];
    for (uint i = 0u; i < 4u; i++) {
        uint q = LDW(i);
#if defined(A_IQ4_NL)
        w[i] = iq4_lookup(bytes4(q, 0u, 15u));
        w[i + 4u] = iq4_lookup(bytes4(q, 4u, 15u));
#elif defined(A_Q4_0)
        w[i] = vec4(bytes4(q, 0u, 15u)) - 8.0;
        w[i + 4u] = vec4(bytes4(q, 4u, 15u)) - 8.0;
#else
        w[i] = vec4(bytes4(q, 0u, 15u));
        w[i + 4u] = vec4(bytes4(q, 4u, 15u));
#endif
    }
#if defined(A_Q4_1)
    unit_finish(w, u, xb, unpackHalf2x16(wq[base >> 2]), s);
#else
    unit_finish(w, u, xb, vec2(f16at(base), 0.0), s);
#endif
}
#elif defined(A_Q5_0) || defined(A_Q5_1)
void unit_dot(uint rb, uint u, uint xb[MV_TOKS], out float s[MV_TOKS])
{
    uint base = rb + u * BS;
    LDW_AT(base + QH);
    uint qh = LDW(0u);
    vec4 w[8];
    for (uint i = 0u; i < 4u; i++) {
        uint q = LDW(i + 1u), hl = qh >> (4u * i), hh = qh >> (16u + 4u * i);
        uvec4 lo = bytes4(q, 0u, 15u) + q5_high4(hl);
        uvec4 hi = bytes4(q, 4u, 15u) + q5_high4(hh);
#if defined(A_Q5_0)
        w[i] = vec4(lo) - 16.0;
        w[i + 4u] = vec4(hi) - 16.0;
#else
        w[i] = vec4(lo);
        w[i + 4u] = vec4(hi);
#endif
    }
#if defined(A_Q5_1)
    unit_finish(w, u, xb, unpackHalf2x16(wq[base >> 2]), s);
#else
    unit_finish(w, u, xb, vec2(f16at(base), 0.0), s);
#endif
}
#elif defined(A_Q8_0)
void unit_dot(uint rb, uint u, uint xb[MV_TOKS], out float s[MV_TOKS])
{
    uint base = rb + u * 34u;
    LDW_AT(base + 2u);
    vec4 w[8];
    for (uint i = 0u; i < 8u; i++)
        w[i] = vec4(sbytes4(LDW(i)));
    unit_finish(w, u, xb, vec2(f16at(base), 0.0), s);
}
#elif defined(A_Q2_K)
// unit j of a super-block: 32 bytes of qs at shift 2 (j & 3), two 16-element sub-scales
void unit_dot(uint rb, uint u, uint xb[MV_TOKS], out float s[MV_TOKS])
{
    uint base = rb + (u >> 3) * 84u, j = u & 7u;
    uint a = (base + 16u + 32u * (j >> 2)) >> 2, sh = 2u * (j & 3u);
    vec4 w[8];
    for (uint i = 0u; i < 8u; i++)
        w[i] = vec4(bytes4(wq[a + i], sh, 3u));
    uint sc = rd16(base + 2u * j);
    vec2 dm = unpackHalf2x16(wq[(base + 80u) >> 2]);
    vec2 d2 = dm.x * vec2(float(sc & 15u), float((sc >> 8) & 15u));
    vec2 m2 = dm.y * vec2(float((sc >> 4) & 15u), float(sc >> 12));
    for (uint t = 0u; t < MV_TOKS; t++) {
        uint xi = xb[t] + 8u * u;
        float p0, p1, s0, s1;
        DOT_RANGE(w, xi, 0u, 4u, p0);
        DOT_RANGE(w, xi, 4u, 4u, p1);
        SUM_RANGE(xi, 0u, 4u, s0);
        SUM_RANGE(xi, 4u, 4u, s1);
        s[t] = d2.x * p0 + d2.y * p1 - m2.x * s0 - m2.y * s1;
    }
}
#elif defined(A_Q3_K)
// the 6-bit sub-scale js (0..15) of the super-block at base, minus 32
float q3_scale(uint base, uint js)
{
    uint low4 = js < 8u ? rd8(base + 96u + js) & 15u : rd8(base + 88u + js) >> 4;
    uint high2 = (rd8(base + 104u + (js & 3u)) >> (2u * (js >> 2))) & 3u;
    return float(int(low4 | (high2 << 4)) - 32);
}
// unit j: 32 qs bytes at shift 2 (j & 3), hmask bit j of the same 32 element slots
void unit_dot(uint rb, uint u, uint xb[MV_TOKS], out float s[MV_TOKS])
{
    uint base = rb + (u >> 3) * 110u, j = u & 7u;
    uint shq = 2u * (j & 3u);
    vec4 w[8];
    {
        LDW_AT(base + 32u + 32u * (j >> 2));
        for (uint i = 0u; i < 8u; i++)
            w[i] = vec4(bytes4(LDW(i), shq, 3u));
    }
    {
        LDW_AT(base);
        for (uint i = 0u; i < 8u; i++)
            w[i] += 4.0 * vec4(bytes4(LDW(i), j, 1u)) - 4.0;
    }
    float d = f16at(base + 108u);
    vec2 d2 = d * vec2(q3_scale(base, 2u * j), q3_scale(base, 2u * j + 1u));
    unit_finish2(w, u, xb, d2, s);
}
#elif defined(A_Q4_K) || defined(A_Q5_K)
// unit j: one sub-block, one 6-bit scale and min (dequant.glsl k4_scale_min)
void unit_dot(uint rb, uint u, uint xb[MV_TOKS], out float s[MV_TOKS])
{
    uint base = rb + (u >> 3) * BS, j = u & 7u;
    uint a = (base + QS + 32u * (j >> 1)) >> 2, sh = 4u * (j & 1u);
    vec4 w[8];
    for (uint i = 0u; i < 8u; i++)
        w[i] = vec4(bytes4(wq[a + i], sh, 15u));
#if defined(A_Q5_K)
    uint ah = (base + 16u) >> 2;
    for (uint i = 0u; i < 8u; i++)
        w[i] += 16.0 * vec4(bytes4(wq[ah + i], j, 1u));
#endif
    vec2 dm = unpackHalf2x16(wq[base >> 2]) * vec2(k4_scale_min(base, j));
    float ds = dm.x, ms = dm.y;
    for (uint t = 0u; t < MV_TOKS; t++) {
        uint xi = xb[t] + 8u * u;
        float p, sx;
        DOT_RANGE(w, xi, 0u, 8u, p);
        SUM_RANGE(xi, 0u, 8u, sx);
        s[t] = ds * p - ms * sx;
    }
}
#elif defined(A_Q6_K)
// unit (h, k) = u & 7 as (u >> 2 & 1, u & 3): elements 128h + 32k + l, l < 32
void unit_dot(uint rb, uint u, uint xb[MV_TOKS], out float s[MV_TOKS])
{
    uint base = rb + (u >> 3) * 210u, h = (u >> 2) & 1u, k = u & 3u;
    vec4 w[8];
    uint shl = k >= 2u ? 4u : 0u;
    {
        LDW_AT(base + 64u * h + 32u * (k & 1u));
        for (uint i = 0u; i < 8u; i++)
            w[i] = vec4(bytes4(LDW(i), shl, 15u));
    }
    {
        LDW_AT(base + 128u + 32u * h);
        for (uint i = 0u; i < 8u; i++)
            w[i] += 16.0 * vec4(bytes4(LDW(i), 2u * k, 3u)) - 32.0;
    }
    uint sc = rd16(base + 192u + 8u * h + 2u * k);
    float d = f16at(base + 208u);
    vec2 d2 = d * vec2(float(int(sc << 24) >> 24), float(int(sc << 16) >> 24));
    unit_finish2(w, u, xb, d2, s);
}
#elif defined(A_IQ4_XS)
// unit ib: 16 qs bytes (low nibbles: elements 0-15, high: 16-31), one 6-bit scale
void unit_dot(uint rb, uint u, uint xb[MV_TOKS], out float s[MV_TOKS])
{
    uint base = rb + (u >> 3) * 136u, ib = u & 7u;
    uint a = (base + 8u + 16u * ib) >> 2;
    vec4 w[8];
    for (uint i = 0u; i < 4u; i++) {
        uint q = wq[a + i];
        w[i] = iq4_lookup(bytes4(q, 0u, 15u));
        w[i + 4u] = iq4_lookup(bytes4(q, 4u, 15u));
    }
    uint w0 = wq[base >> 2];
    uint ls = ((rd8(base + 4u + (ib >> 1)) >> (4u * (ib & 1u))) & 15u) |
              (((w0 >> (16u + 2u * ib)) & 3u) << 4);
    unit_finish(w, u, xb, vec2(unpackHalf2x16(w0).x * float(int(ls) - 32), 0.0), s);
}
#elif defined(A_IQ2_XXS) || defined(A_IQ2_XS) || defined(A_IQ2_S)
// group l (8 elements) of w: grid entry gi (two words) under sign bits sg
void iq2_group(inout vec4 w[8], uint l, uint gi, uint sg)
{
    w[2u * l] = vec4(bytes4(iqg[gi], 0u, 255u)) * iq_signs4(sg);
    w[2u * l + 1u] = vec4(bytes4(iqg[gi + 1u], 0u, 255u)) * iq_signs4(sg >> 4);
}
// the two 16-element scales d (0.5 + nibble) / 4 of the byte sc
vec2 iq2_scales(float d, uint sc)
{
    return d * 0.25 * (0.5 + vec2(float(sc & 15u), float(sc >> 4)));
}
#endif
#if defined(A_IQ2_XXS)
// unit ib: 4 grid bytes (one per 8 elements), then a word of four 7-bit sign indexes and a
// 4-bit scale (dequant.glsl's dq4 for the layout)
void unit_dot(uint rb, uint u, uint xb[MV_TOKS], out float s[MV_TOKS])
{
    uint base = rb + (u >> 3) * 66u, ib = u & 7u;
    LDW_AT(base + 2u + 8u * ib);
    uint q = LDW(0u), aux = LDW(1u);
    vec4 w[8];
    for (uint l = 0u; l < 4u; l++) {
        uint gi = IQ_OFF_IQ2XXS + 2u * ((q >> (8u * l)) & 255u);
        uint sg = iq_signs8((aux >> (7u * l)) & 127u);
        iq2_group(w, l, gi, sg);
    }
    unit_finish(w, u, xb, vec2(f16at(base) * (0.5 + float(aux >> 28)) * 0.25, 0.0), s);
}
#elif defined(A_IQ2_XS)
// unit ib: four u16 (9-bit grid index, 7-bit sign index), a 4-bit scale per 16 elements
void unit_dot(uint rb, uint u, uint xb[MV_TOKS], out float s[MV_TOKS])
{
    uint base = rb + (u >> 3) * 74u, ib = u & 7u;
    LDW_AT(base + 2u + 8u * ib);
    uint q0 = LDW(0u), q1 = LDW(1u);
    vec4 w[8];
    for (uint l = 0u; l < 4u; l++) {
        uint q = ((l < 2u ? q0 : q1) >> (16u * (l & 1u))) & 0xffffu;
        uint gi = IQ_OFF_IQ2XS + 2u * (q & 511u), sg = iq_signs8(q >> 9);
        iq2_group(w, l, gi, sg);
    }
    uint sc = rd8(base + 66u + ib);
    unit_finish2(w, u, xb, iq2_scales(f16at(base), sc), s);
}
#elif defined(A_IQ2_S)
// unit ib: 4 grid-index low bytes, 2 high bits each from one qh byte, 4 sign bytes
void unit_dot(uint rb, uint u, uint xb[MV_TOKS], out float s[MV_TOKS])
{
    uint base = rb + (u >> 3) * 82u, ib = u & 7u, qs, sgn;
    {
        LDW_AT(base + 2u + 4u * ib);
        qs = LDW(0u);
    }
    {
        LDW_AT(base + 34u + 4u * ib);
        sgn = LDW(0u);
    }
    uint qh = rd8(base + 66u + ib);
    vec4 w[8];
    for (uint l = 0u; l < 4u; l++) {
        uint idx = ((qs >> (8u * l)) & 255u) | (((qh >> (2u * l)) & 3u) << 8);
        uint gi = IQ_OFF_IQ2S + 2u * idx, sg = sgn >> (8u * l);
        iq2_group(w, l, gi, sg);
    }
    uint sc = rd8(base + 74u + ib);
    unit_finish2(w, u, xb, iq2_scales(f16at(base), sc), s);
}
#elif defined(A_IQ3_XXS)
// unit ib: 8 grid bytes (one per 4 elements), a word of four 7-bit sign indexes + a scale
void unit_dot(uint rb, uint u, uint xb[MV_TOKS], out float s[MV_TOKS])
{
    uint base = rb + (u >> 3) * 98u, ib = u & 7u, q0, q1;
    {
        LDW_AT(base + 2u + 8u * ib);
        q0 = LDW(0u);
        q1 = LDW(1u);
    }
    uint aux = rd32(base + 66u + 4u * ib);
    vec4 w[8];
    for (uint k = 0u; k < 8u; k++) {
        uint g = iqg[IQ_OFF_IQ3XXS + (((k < 4u ? q0 : q1) >> (8u * (k & 3u))) & 255u)];
        uint sg = iq_signs8((aux >> (7u * (k >> 1))) & 127u) >> (4u * (k & 1u));
        w[k] = vec4(bytes4(g, 0u, 255u)) * iq_signs4(sg);
    }
    unit_finish(w, u, xb, vec2(f16at(base) * (0.5 + float(aux >> 28)) * 0.5, 0.0), s);
}
#elif defined(A_IQ3_S)
// unit ib: 8 grid-index low bytes, their high bits in one qh byte, 4 sign bytes (a bit
// per element), a 4-bit scale
void unit_dot(uint rb, uint u, uint xb[MV_TOKS], out float s[MV_TOKS])
{
    uint base = rb + (u >> 3) * 110u, ib = u & 7u, q0, q1, sgn;
    {
        LDW_AT(base + 2u + 8u * ib);
        q0 = LDW(0u);
        q1 = LDW(1u);
    }
    {
        LDW_AT(base + 74u + 4u * ib);
        sgn = LDW(0u);
    }
    uint qh = rd8(base + 66u + ib);
    vec4 w[8];
    for (uint k = 0u; k < 8u; k++) {
        uint idx = (((k < 4u ? q0 : q1) >> (8u * (k & 3u))) & 255u) | (((qh >> k) & 1u) << 8);
        w[k] = vec4(bytes4(iqg[IQ_OFF_IQ3S + idx], 0u, 255u)) * iq_signs4(sgn >> (4u * k));
    }
    uint sc = (rd8(base + 106u + (ib >> 1)) >> (4u * (ib & 1u))) & 15u;
    unit_finish(w, u, xb, vec2(f16at(base) * float(2u * sc + 1u), 0.0), s);
}
#elif defined(A_IQ1_S)
// unit ib: 4 grid-index low bytes; a u16 with their 3 high bits each, a 3-bit scale and the
// delta's sign; w holds the signed grid values, the delta comes in through the sum of x
void unit_dot(uint rb, uint u, uint xb[MV_TOKS], out float s[MV_TOKS])
{
    uint base = rb + (u >> 3) * 50u, ib = u & 7u, qs;
    {
        LDW_AT(base + 2u + 4u * ib);
        qs = LDW(0u);
    }
    uint qh = rd16(base + 34u + 2u * ib);
    vec4 w[8];
    for (uint l = 0u; l < 4u; l++) {
        uint gi = IQ_OFF_IQ1S + 2u * (((qs >> (8u * l)) & 255u) | (((qh >> (3u * l)) & 7u) << 8));
        w[2u * l] = vec4(sbytes4(iqg[gi]));
        w[2u * l + 1u] = vec4(sbytes4(iqg[gi + 1u]));
    }
    float dl = f16at(base) * float(2u * ((qh >> 12) & 7u) + 1u);
    unit_finish(w, u, xb, vec2(dl, (qh & 0x8000u) != 0u ? -0.125 * dl : 0.125 * dl), s);
}
#elif defined(A_IQ1_M)
// unit ib: 4 grid-index low bytes, a nibble each (3 high bits, the delta's sign) from one
// u16, a 3-bit scale per 16 elements; d is the top nibbles of the four scale words
void unit_dot(uint rb, uint u, uint xb[MV_TOKS], out float s[MV_TOKS])
{
    uint base = rb + (u >> 3) * 56u, ib = u & 7u;
    uint qs = wq[(base >> 2) + ib], qh = rd16(base + 32u + 2u * ib);
    vec4 w[8];
    for (uint l = 0u; l < 4u; l++) {
        uint nib = qh >> (4u * l);
        uint gi = IQ_OFF_IQ1S + 2u * (((qs >> (8u * l)) & 255u) | ((nib & 7u) << 8));
        float delta = (nib & 8u) != 0u ? -0.125 : 0.125;
        w[2u * l] = vec4(sbytes4(iqg[gi])) + delta;
        w[2u * l + 1u] = vec4(sbytes4(iqg[gi + 1u])) + delta;
    }
    uint s01 = wq[(base >> 2) + 12u], s23 = wq[(base >> 2) + 13u];
    uint dbits = ((s01 >> 12) & 0xfu) | ((s01 >> 24) & 0xf0u) | ((s23 >> 4) & 0xf00u) |
                 ((s23 >> 16) & 0xf000u);
    uint sw = rd16(base + 48u + 2u * (ib >> 1));
    uint sc0 = (sw >> (3u * ((2u * ib) & 3u))) & 7u, sc1 = (sw >> (3u * ((2u * ib + 1u) & 3u))) & 7u;
    vec2 d2 = unpackHalf2x16(dbits).x * vec2(float(2u * sc0 + 1u), float(2u * sc1 + 1u));
    unit_finish2(w, u, xb, d2, s);
}
#endif
