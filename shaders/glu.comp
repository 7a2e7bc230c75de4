#version 450
// glu: a[i] = act(a[i]) * b[i]; act = silu (GLU_SILU) or tanh-GELU (GLU_GELU).
#extension GL_GOOGLE_include_directive : require
#include "params/eltwise.h"

layout(local_size_x = VK_ELT_WG) in;
layout(binding = 0) buffer ABuf { float a[]; };
layout(binding = 1) readonly buffer BBuf { float b[]; };

void main()
{
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * VK_ELT_WG;
    if (i >= pc.n)
        return;
    float x = a[pc.a_off + i];
#if defined(GLU_SILU)
    float g = x / (1.0 + exp(-x));
#else
    // tanh(u) = 1 - 2 / (exp(2u) + 1): no inf/inf for large |u|, unlike a
    // driver's tanh that may expand to (e^2u - 1) / (e^2u + 1)
    float u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
    float th = 1.0 - 2.0 / (exp(2.0 * clamp(u, -40.0, 40.0)) + 1.0);
    float g = 0.5 * x * (1.0 + th);
#endif
    a[pc.a_off + i] = g * b[pc.b_off + i];
}
