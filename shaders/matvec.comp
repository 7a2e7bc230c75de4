#version 450
// matvec: decode-time y = W x. A workgroup owns VK_MATVEC_ROWS weight rows
// and MV_TOKS activation rows; each invocation walks the rows in
// strides of 4 elements, decoding each group of 4 weights once in registers
// (dq4) and using it for every token, so the weights are read once per
// workgroup. Partial sums meet in reduce_sum (any subgroup size). Types with a
// unit_dot (common/dequant-unit.glsl: every quantized type) take whole
// 32-element units per invocation instead of groups of 4: the block's address
// and scales are decoded once per unit, not once per 4 weights.
// MV_TOKS is VK_MATVEC_TOKS, or 1 for the *_1 variants that op-matmul.c picks
// for a single token (plain decode): with 4, a lone token would be loaded and
// multiplied four times (the rows past n_tok are clamped, not skipped), which
// costs 4x the ALU work per weight and more registers.
// Grid: x + z * gl_NumWorkGroups.x = row group (x is capped at 65535 on the
// host), y = token group. Up to 3 weights sharing x (q/k/v, gate/up) can go in one
// dispatch, their row groups one after another (pick_weight): one launch fills
// the GPU where k and v alone would leave most of it idle, and saves two barriers.
#extension GL_GOOGLE_include_directive : require
#ifdef USE_16BIT
#extension GL_EXT_shader_16bit_storage : require
#endif
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#include "params/matmul.h"
#ifndef MV_TOKS
#define MV_TOKS VK_MATVEC_TOKS
#endif

layout(local_size_x = VK_MATVEC_WG) in;
layout(binding = 0) readonly buffer WBuf { uint wq[]; };
layout(binding = 1) readonly buffer XBuf { vec4 x4[]; };
layout(binding = 2) writeonly buffer YBuf { float y[]; };
layout(binding = 3) readonly buffer BBuf { float bias[]; };

// binding 4: the IQ grid buffer (params/iq-grids.h), declared by dequant.glsl for the
// lattice types only; the host binds a buffer there for every type
#define IQ_GRID_BINDING 4
#include "common/dequant.glsl"
#include "common/dequant-unit.glsl"
#define RED_WG VK_MATVEC_WG
#define RED_N (VK_MATVEC_ROWS * MV_TOKS)
#include "common/reduce.glsl"

// the weight a row group belongs to (params/matmul.h n_w): its fields, g made relative to it
struct mv_weight {
    uint w_off, n_out, y_off, y_stride, b_off;
};
mv_weight pick_weight(inout uint g)
{
    mv_weight m = mv_weight(pc.w_off, pc.n_out, pc.y_off, pc.y_stride, pc.b_off);
    uint g0 = (pc.n_out + VK_MATVEC_ROWS - 1u) / VK_MATVEC_ROWS;
    if (pc.n_w < 2u || g < g0)
        return m;
    g -= g0;
    uint g1 = (pc.n1_out + VK_MATVEC_ROWS - 1u) / VK_MATVEC_ROWS;
    if (pc.n_w < 3u || g < g1)
        return mv_weight(pc.w1_off, pc.n1_out, pc.y1_off, pc.y1_stride, pc.b1_off);
    g -= g1;
    return mv_weight(pc.w2_off, pc.n2_out, pc.y2_off, pc.y2_stride, pc.b2_off);
}

void main()
{
    uint g = gl_WorkGroupID.z * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    mv_weight m = pick_weight(g);
    uint r0 = g * VK_MATVEC_ROWS, t0 = gl_WorkGroupID.y * MV_TOKS;
    if (r0 >= m.n_out)
        return; // uniform over the workgroup
    float acc[RED_N];
    for (int i = 0; i < RED_N; i++)
        acc[i] = 0.0;
#ifdef HAS_UNIT
    // whole 32-element units (common/dequant-unit.glsl); n_in is a multiple of the block
    uint xb[MV_TOKS];
    for (uint t = 0u; t < MV_TOKS; t++)
        xb[t] = (pc.x_off + min(t0 + t, pc.n_tok - 1u) * pc.x_stride) / 4u;
    // each unit for every row in turn: the unit's activations are loaded once for all rows.
    // A row of fewer units than invocations leaves the rest idle; on lavapipe and on GPUs a
    // wholly idle subgroup costs nothing, and giving each row its own share of invocations
    // measured slower on lavapipe (the rows no longer share the activation loads)
    uint nu = pc.n_in / 32u;
    for (uint u = gl_LocalInvocationID.x; u < nu; u += VK_MATVEC_WG)
        for (uint r = 0u; r < VK_MATVEC_ROWS; r++) {
            float s[MV_TOKS];
            unit_dot(m.w_off + min(r0 + r, m.n_out - 1u) * pc.row_bytes, u, xb, s);
            for (uint t = 0u; t < MV_TOKS; t++)
                acc[r * MV_TOKS + t] += s[t];
        }
#else
    uint n4 = pc.n_in / 4u;
    for (uint i = gl_LocalInvocationID.x; i < n4; i += VK_MATVEC_WG) {
        vec4 xv[MV_TOKS];
        for (uint t = 0u; t < MV_TOKS; t++) {
            // x_off and x_stride are multiples of 4 (checked on the host)
            uint tt = min(t0 + t, pc.n_tok - 1u);
            xv[t] = x4[(pc.x_off + tt * pc.x_stride) / 4u + i];
        }
        for (uint r = 0u; r < VK_MATVEC_ROWS; r++) {
            uint rr = min(r0 + r, m.n_out - 1u);
            vec4 w = dq4(m.w_off + rr * pc.row_bytes, 4u * i);
            for (uint t = 0u; t < MV_TOKS; t++)
                acc[r * MV_TOKS + t] += dot(w, xv[t]);
        }
    }
#endif
    reduce_sum(acc);
    if (gl_LocalInvocationID.x == 0u)
        for (uint r = 0u; r < VK_MATVEC_ROWS; r++)
            for (uint t = 0u; t < MV_TOKS; t++)
                if (r0 + r < m.n_out && t0 + t < pc.n_tok)
                    y[m.y_off + (t0 + t) * m.y_stride + r0 + r] =
                        acc[r * MV_TOKS + t] + (pc.has_b != 0u ? bias[m.b_off + r0 + r] : 0.0);
}
