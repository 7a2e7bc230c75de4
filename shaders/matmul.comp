#version 450
// matmul: prefill y = W x for many tokens. A workgroup computes a
// VK_MM_TILE (rows) x VK_MM_TILE (tokens) tile of y; per K step of VK_MM_BK
// elements it dequantizes a VK_MM_TILE x VK_MM_BK weight tile into shared
// memory (each invocation decodes one group of 4 via dq4) and stages the
// matching activation tile, then each invocation accumulates its 2x2 outputs.
// No cross-invocation reduction, so subgroup size never matters. Tiles are
// padded by one column against shared-memory bank conflicts.
// Grid: x = row tile, y = token tile, z extends x past 65535 as in matvec.
// IQ types read their grid from the storage buffer (binding 4), not from a
// copy in shared memory made at the start of the workgroup. A copy compiles
// as fast on lavapipe (~1 s, IQ2_XXS and IQ1_S tried, same bits), but each
// invocation does one grid lookup per K step against 128 FMAs, so the lookups
// are not what bounds this kernel. A copy would load up to 4096 words per
// workgroup (IQ1_S) and take up to 16 KiB of shared memory, Vulkan's whole
// guaranteed minimum, on top of the 8.4 KiB of tiles, which costs occupancy.
// The 33 KiB of tables stays hot in L1/L2 across workgroups anyway.
#extension GL_GOOGLE_include_directive : require
#ifdef USE_16BIT
#extension GL_EXT_shader_16bit_storage : require
#endif
#include "params/matmul.h"

layout(local_size_x = 256) in;
layout(binding = 0) readonly buffer WBuf { uint wq[]; };
layout(binding = 1) readonly buffer XBuf { vec4 x4[]; };
layout(binding = 2) writeonly buffer YBuf { float y[]; };
layout(binding = 3) readonly buffer BBuf { float bias[]; };

// binding 4: the IQ grid buffer (params/iq-grids.h), declared by dequant.glsl for the
// lattice types only; the host binds a buffer there for every type
#define IQ_GRID_BINDING 4
#include "common/dequant.glsl"

shared float ws[VK_MM_TILE][VK_MM_BK + 1];
shared float xs[VK_MM_TILE][VK_MM_BK + 1];

float bias_of(uint r) { return pc.has_b != 0u ? bias[pc.b_off + r] : 0.0; }

void main()
{
    uint rt = gl_WorkGroupID.z * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint r0 = rt * VK_MM_TILE, t0 = gl_WorkGroupID.y * VK_MM_TILE;
    if (r0 >= pc.n_out)
        return;
    uint tid = gl_LocalInvocationID.x;
    // loader role: one group of 4 of the weight tile and of the activation tile
    uint lr = tid / (VK_MM_BK / 4u), lk = (tid % (VK_MM_BK / 4u)) * 4u;
    // compute role: rows cr, cr + 16; tokens ct, ct + 16
    uint cr = tid / 16u, ct = tid % 16u;
    float acc00 = 0.0, acc01 = 0.0, acc10 = 0.0, acc11 = 0.0;
    uint wrow = min(r0 + lr, pc.n_out - 1u), xrow = min(t0 + lr, pc.n_tok - 1u);
    for (uint k0 = 0u; k0 < pc.n_in; k0 += VK_MM_BK) {
        vec4 w = vec4(0.0), xv = vec4(0.0);
        if (k0 + lk < pc.n_in) {
            w = dq4(pc.w_off + wrow * pc.row_bytes, k0 + lk);
            xv = x4[(pc.x_off + xrow * pc.x_stride + k0 + lk) / 4u];
        }
        ws[lr][lk] = w.x; ws[lr][lk + 1u] = w.y; ws[lr][lk + 2u] = w.z; ws[lr][lk + 3u] = w.w;
        xs[lr][lk] = xv.x; xs[lr][lk + 1u] = xv.y; xs[lr][lk + 2u] = xv.z; xs[lr][lk + 3u] = xv.w;
        barrier();
        for (uint k = 0u; k < VK_MM_BK; k++) {
            float a0 = ws[cr][k], a1 = ws[cr + 16u][k];
            float b0 = xs[ct][k], b1 = xs[ct + 16u][k];
            acc00 += a0 * b0; acc01 += a0 * b1;
            acc10 += a1 * b0; acc11 += a1 * b1;
        }
        barrier();
    }
    uint ra = r0 + cr, rb = r0 + cr + 16u, ta = t0 + ct, tb = t0 + ct + 16u;
    if (ra < pc.n_out && ta < pc.n_tok) y[pc.y_off + ta * pc.y_stride + ra] = acc00 + bias_of(ra);
    if (ra < pc.n_out && tb < pc.n_tok) y[pc.y_off + tb * pc.y_stride + ra] = acc01 + bias_of(ra);
    if (rb < pc.n_out && ta < pc.n_tok) y[pc.y_off + ta * pc.y_stride + rb] = acc10 + bias_of(rb);
    if (rb < pc.n_out && tb < pc.n_tok) y[pc.y_off + tb * pc.y_stride + rb] = acc11 + bias_of(rb);
}
