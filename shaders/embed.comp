#version 450
// embed: rows of an embedding matrix in any weight format, dequantized:
// y[i][:] = scale * W[ids[i]][:]. One workgroup per id; each invocation
// decodes groups of 4 (dq4). An id past the matrix gives a zero row rather
// than an out-of-bounds read (the host validates ids; this is a backstop).
#extension GL_GOOGLE_include_directive : require
#ifdef USE_16BIT
#extension GL_EXT_shader_16bit_storage : require
#endif
#include "params/embed.h"

layout(local_size_x = VK_EMBED_WG) in;
layout(binding = 0) readonly buffer WBuf { uint wq[]; };
layout(binding = 1) readonly buffer IBuf { uint ids[]; };
layout(binding = 2) writeonly buffer YBuf { float y[]; };

// binding 3: the IQ grid buffer (params/iq-grids.h), declared by dequant.glsl for the
// lattice types only; the host binds a buffer there for every type
#define IQ_GRID_BINDING 3
#include "common/dequant.glsl"

void main()
{
    uint i = gl_WorkGroupID.x;
    uint id = ids[pc.ids_off + i];
    uint yb = pc.y_off + i * pc.y_stride;
    for (uint e = 4u * gl_LocalInvocationID.x; e < pc.n_in; e += 4u * VK_EMBED_WG) {
        vec4 v = id < pc.n_rows ? pc.scale * dq4(pc.w_off + id * pc.row_bytes, e) : vec4(0.0);
        y[yb + e] = v.x; y[yb + e + 1u] = v.y; y[yb + e + 2u] = v.z; y[yb + e + 3u] = v.w;
    }
}
