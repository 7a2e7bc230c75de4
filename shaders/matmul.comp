#version 450
// matmul: prefill y = W x for many tokens. A workgroup of 128 computes a
// VK_MM_ROWS x VK_MM_TOKS (64 rows x 32 tokens) tile of y; per K step of
// VK_MM_BK (16) elements it dequantizes the 64 x 16 weight tile into shared
// memory (each invocation decodes two groups of 4 via dq4) and stages the
// 32 x 16 activation tile, then each invocation accumulates a 4 x 4 block of
// outputs in registers: per k, 8 shared-memory reads feed 16 FMAs. The first
// version gave each of 256 invocations a 2 x 2 block of a 32 x 32 tile, one
// shared read per FMA, which bounds a GPU without cooperative matrices by its
// shared-memory bandwidth, not its FMA rate. 64 x 16 and 32 x 16 tiles take
// 6.3 KiB, well inside Vulkan's guaranteed 16 KiB.
// No cross-invocation reduction, so subgroup size never matters.
// Grid: x = row tile, y = token tile, z extends x past 65535 as in matvec.
// IQ types read their grid from the storage buffer (binding 4), not from a
// copy in shared memory made at the start of the workgroup. A copy compiles
// as fast on lavapipe (~1 s, IQ2_XXS and IQ1_S tried, same bits), but each
// invocation does two grid lookups per K step against 256 FMAs, so the lookups
// are not what bounds this kernel. A copy would load up to 4096 words per
// workgroup (IQ1_S) and take up to 16 KiB of shared memory, Vulkan's whole
// guaranteed minimum, on top of the tiles, which costs occupancy.
// The 33 KiB of tables stays hot in L1/L2 across workgroups anyway.
#extension GL_GOOGLE_include_directive : require
#ifdef USE_16BIT
#extension GL_EXT_shader_16bit_storage : require
#endif
#include "params/matmul.h"

#define MM_WG 128 // (VK_MM_ROWS / 4) x (VK_MM_TOKS / 4) invocations, 4 x 4 outputs each
layout(local_size_x = MM_WG) in;
layout(binding = 0) readonly buffer WBuf { uint wq[]; };
layout(binding = 1) readonly buffer XBuf { vec4 x4[]; };
layout(binding = 2) writeonly buffer YBuf { float y[]; };
layout(binding = 3) readonly buffer BBuf { float bias[]; };

// binding 4: the IQ grid buffer (params/iq-grids.h), declared by dequant.glsl for the
// lattice types only; the host binds a buffer there for every type
#define IQ_GRID_BINDING 4
#include "common/dequant.glsl"

// k-major tiles: the compute loop reads a row of each per k, 4 weights and 4 tokens apart
// by 16 and 8, so a subgroup touches few distinct words (broadcasts); +1 against bank
// conflicts on the loaders' stores
shared float ws[VK_MM_BK][VK_MM_ROWS + 1];
shared float xs[VK_MM_BK][VK_MM_TOKS + 1];

float bias_of(uint r) { return pc.has_b != 0u ? bias[pc.b_off + r] : 0.0; }

void main()
{
    uint rt = gl_WorkGroupID.z * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint r0 = rt * VK_MM_ROWS, t0 = gl_WorkGroupID.y * VK_MM_TOKS;
    if (r0 >= pc.n_out)
        return;
    uint tid = gl_LocalInvocationID.x;
    // loader role: groups of 4 along K, two of the weight tile and one of the activation tile
    const uint G = VK_MM_BK / 4u; // groups per tile row
    uint lk = (tid % G) * 4u;
    uint wr0 = min(r0 + tid / G, pc.n_out - 1u), wr1 = min(r0 + tid / G + MM_WG / G, pc.n_out - 1u);
    uint xr = min(t0 + tid / G, pc.n_tok - 1u);
    // compute role: rows cr + 16 i, tokens ct + 8 j (i, j < 4)
    uint cr = tid / 8u, ct = tid % 8u;
    float acc[4][4];
    for (uint i = 0u; i < 4u; i++)
        for (uint j = 0u; j < 4u; j++)
            acc[i][j] = 0.0;
    for (uint k0 = 0u; k0 < pc.n_in; k0 += VK_MM_BK) {
        vec4 w0 = vec4(0.0), w1 = vec4(0.0), xv = vec4(0.0);
        if (k0 + lk < pc.n_in) {
            w0 = dq4(pc.w_off + wr0 * pc.row_bytes, k0 + lk);
            w1 = dq4(pc.w_off + wr1 * pc.row_bytes, k0 + lk);
            xv = x4[(pc.x_off + xr * pc.x_stride + k0 + lk) / 4u];
        }
        uint lr = tid / G;
        for (uint c = 0u; c < 4u; c++) {
            ws[lk + c][lr] = w0[c];
            ws[lk + c][lr + MM_WG / G] = w1[c];
            xs[lk + c][lr] = xv[c];
        }
        barrier();
        for (uint k = 0u; k < VK_MM_BK; k++) {
            vec4 a = vec4(ws[k][cr], ws[k][cr + 16u], ws[k][cr + 32u], ws[k][cr + 48u]);
            vec4 b = vec4(xs[k][ct], xs[k][ct + 8u], xs[k][ct + 16u], xs[k][ct + 24u]);
            for (uint i = 0u; i < 4u; i++)
                for (uint j = 0u; j < 4u; j++)
                    acc[i][j] += a[i] * b[j];
        }
        barrier();
    }
    for (uint i = 0u; i < 4u; i++) {
        uint r = r0 + cr + 16u * i;
        if (r >= pc.n_out)
            continue;
        float bi = bias_of(r);
        for (uint j = 0u; j < 4u; j++) {
            uint t = t0 + ct + 8u * j;
            if (t < pc.n_tok)
                y[pc.y_off + t * pc.y_stride + r] = acc[i][j] + bi;
        }
    }
}
