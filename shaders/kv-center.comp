#version 450
// kv-center: the key-centring step of a compressed K cache (core/backend.h
// ATTENTION step 3; the CPU reference is core/cpu/attn-kvq.c
// cpu_kvq_key_center), run before kv-store-q encodes the keys. One
// invocation per coordinate d owns the whole column k[*][d]: it sums the
// mean range in token order, writes mu and the sink, and subtracts mu from
// every row, so no invocation waits on another and there is no barrier.
// The CPU sums in double and rounds once. shaderFloat64 is optional, so the
// sum here is a float pair (hi, lo) kept by two-sum: hi + lo is the exact
// sum up to the rounding of lo's own additions (a few ulps of an error term
// ~2^-24 of the sum). The mean is then rounded once: q0 = hi / n, the
// remainder hi - q0 n formed exactly by a Veltkamp split (n <= 64 is a small
// integer, so each partial product is exact; no fma, whose fusing Vulkan
// does not promise), and q0 + (rem + lo) / n. This equals the CPU's
// double-then-float result unless the exact mean sits within ~1e-6 ulp of a
// float rounding boundary; tests/test-vk-kvq.c checks bit equality.
// `precise` keeps the compiler from contracting or reassociating the
// error-free transforms.
#extension GL_GOOGLE_include_directive : require
#define VK_SHADER_KV_CENTER
#include "params/kv.h"
layout(local_size_x = VK_KV_WG) in;

layout(binding = 0) buffer KBuf { float k[]; };
layout(binding = 1) buffer AuxBuf { float aux[]; };
layout(binding = 2) readonly buffer StepBuf { uint step[]; }; // read only when pos_slot > 0
#include "common/step.glsl"

void main()
{
    uint d = gl_GlobalInvocationID.x;
    if (d >= pc.kv_dim)
        return;
    // replayed decode: the batch's position comes from the step buffer, so "first" does too
    bool first = batch_pos0(pc.first != 0u ? 0u : 1u, pc.pos_slot) == 0u;
    precise float mu = 0.0;
    if (first) {
        if (pc.mean_hi > pc.mean_lo) {
            precise float hi = 0.0, lo = 0.0;
            for (uint t = pc.mean_lo; t < pc.mean_hi; t++) {
                precise float x = k[pc.k_off + t * pc.k_stride + d];
                precise float s = hi + x;
                precise float bp = s - hi;
                precise float err = (hi - (s - bp)) + (x - bp);
                hi = s;
                lo += err;
            }
            float n = float(pc.mean_hi - pc.mean_lo);
            precise float q0 = hi / n;
            precise float c = q0 * 4097.0;
            precise float qh = c - (c - q0);
            precise float ql = q0 - qh;
            precise float rem = (hi - qh * n) - ql * n;
            mu = q0 + (rem + lo) / n;
        }
        aux[pc.aux_off + d] = mu;
    } else {
        mu = aux[pc.aux_off + d];
    }
    for (uint t = 0u; t < pc.n_tok; t++) {
        uint i = pc.k_off + t * pc.k_stride + d;
        precise float x = k[i] - mu;
        k[i] = x;
    }
    if (first)
        aux[pc.aux_off + pc.aux_stride + d] = k[pc.k_off + d];
}
