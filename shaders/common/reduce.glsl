// common/reduce: sum of one float per invocation over the whole workgroup,
// correct for any subgroup size (8 on lavapipe, 32 on NVIDIA, 64 on AMD) and
// for none. The including shader defines RED_WG (its local_size_x, a power of
// two) and RED_N (values reduced at once). With USE_SUBGROUP, subgroupAdd
// first folds each subgroup and one value per subgroup goes through shared
// memory; gl_NumSubgroups is read at run time, never assumed. Without it, a
// shared-memory tree. Every invocation receives the totals.
shared float red_sh[RED_N][RED_WG];

void reduce_sum(inout float v[RED_N])
{
#ifdef USE_SUBGROUP
    for (int i = 0; i < RED_N; i++)
        v[i] = subgroupAdd(v[i]);
    if (subgroupElect())
        for (int i = 0; i < RED_N; i++)
            red_sh[i][gl_SubgroupID] = v[i];
    barrier();
    for (int i = 0; i < RED_N; i++) {
        float s = 0.0;
        for (uint g = 0u; g < gl_NumSubgroups; g++)
            s += red_sh[i][g];
        v[i] = s;
    }
    barrier();
#else
    uint tid = gl_LocalInvocationID.x;
    for (int i = 0; i < RED_N; i++)
        red_sh[i][tid] = v[i];
    barrier();
    for (uint s = RED_WG / 2u; s > 0u; s >>= 1) {
        if (tid < s)
            for (int i = 0; i < RED_N; i++)
                red_sh[i][tid] += red_sh[i][tid + s];
        barrier();
    }
    for (int i = 0; i < RED_N; i++)
        v[i] = red_sh[i][0];
    barrier();
#endif
}
