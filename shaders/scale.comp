#version 450
// scale: a[i] *= s (gemma's embedding scale). Binding 1 is unused but kept so
// every element-wise op shares one descriptor layout.
#extension GL_GOOGLE_include_directive : require
#include "params/eltwise.h"

layout(local_size_x = VK_ELT_WG) in;
layout(binding = 0) buffer ABuf { float a[]; };
layout(binding = 1) readonly buffer BBuf { float b[]; };

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * VK_ELT_WG;
    if (i < pc.n)
        a[pc.a_off + i] *= pc.s;
}
