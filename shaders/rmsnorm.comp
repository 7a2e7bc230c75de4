#version 450
// rmsnorm: one workgroup per row; the sum of squares meets in reduce_sum,
// then every invocation scales its own elements (so y may alias x: an element
// is read before it is written, by the same invocation).
#extension GL_GOOGLE_include_directive : require
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#include "params/norm.h"

layout(local_size_x = VK_NORM_WG) in;
layout(binding = 0) readonly buffer XBuf { float x[]; };
layout(binding = 1) readonly buffer WBuf { float w[]; };
layout(binding = 2) buffer YBuf { float y[]; };

#define RED_WG VK_NORM_WG
#define RED_N 1
#include "common/reduce.glsl"

void main()
{
    uint r = gl_WorkGroupID.x;
    uint xb = pc.x_off + r * pc.x_stride, yb = pc.y_off + r * pc.y_stride;
    float s[1];
    s[0] = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < pc.n; i += VK_NORM_WG)
        s[0] += x[xb + i] * x[xb + i];
    reduce_sum(s);
    float inv = inversesqrt(s[0] / float(pc.n) + pc.eps);
    for (uint i = gl_LocalInvocationID.x; i < pc.n; i += VK_NORM_WG) {
        float v = x[xb + i] * inv;
        y[yb + i] = pc.has_w != 0u ? v * w[pc.w_off + i] : v;
    }
}
