#version 450
// matvec: decode-time y = W x. A workgroup owns VK_MATVEC_ROWS weight rows
// and MV_TOKS activation rows; each invocation walks the rows in
// strides of 4 elements, decoding each group of 4 weights once in registers
// (dq4) and using it for every token, so the weights are read once per
// workgroup. Partial sums meet in reduce_sum (any subgroup size).
// MV_TOKS is VK_MATVEC_TOKS, or 1 for the *_1 variants that op-matmul.c picks
// for a single token (plain decode): with 4, a lone token would be loaded and
// multiplied four times (the rows past n_tok are clamped, not skipped), which
// costs 4x the ALU work per weight and more registers.
// Grid: x + z * gl_NumWorkGroups.x = row group (x is capped at 65535 on the
// host), y = token group.
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
#define RED_WG VK_MATVEC_WG
#define RED_N (VK_MATVEC_ROWS * MV_TOKS)
#include "common/reduce.glsl"

float bias_of(uint r) { return pc.has_b != 0u ? bias[pc.b_off + r] : 0.0; }

void main()
{
    uint g = gl_WorkGroupID.z * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint r0 = g * VK_MATVEC_ROWS, t0 = gl_WorkGroupID.y * MV_TOKS;
    if (r0 >= pc.n_out)
        return; // uniform over the workgroup
    float acc[RED_N];
    for (int i = 0; i < RED_N; i++)
        acc[i] = 0.0;
    uint n4 = pc.n_in / 4u;
    for (uint i = gl_LocalInvocationID.x; i < n4; i += VK_MATVEC_WG) {
        vec4 xv[MV_TOKS];
        for (uint t = 0u; t < MV_TOKS; t++) {
            // x_off and x_stride are multiples of 4 (checked on the host)
            uint tt = min(t0 + t, pc.n_tok - 1u);
            xv[t] = x4[(pc.x_off + tt * pc.x_stride) / 4u + i];
        }
        for (uint r = 0u; r < VK_MATVEC_ROWS; r++) {
            uint rr = min(r0 + r, pc.n_out - 1u);
            vec4 w = dq4(pc.w_off + rr * pc.row_bytes, 4u * i);
            for (uint t = 0u; t < MV_TOKS; t++)
                acc[r * MV_TOKS + t] += dot(w, xv[t]);
        }
    }
    reduce_sum(acc);
    if (gl_LocalInvocationID.x == 0u)
        for (uint r = 0u; r < VK_MATVEC_ROWS; r++)
            for (uint t = 0u; t < MV_TOKS; t++)
                if (r0 + r < pc.n_out && t0 + t < pc.n_tok)
                    y[pc.y_off + (t0 + t) * pc.y_stride + r0 + r] =
                        acc[r * MV_TOKS + t] + bias_of(r0 + r);
}
