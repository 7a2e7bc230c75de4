#!/usr/bin/env bash
# bench/vk-cuda-ratio.sh CUDA_CSV VULKAN_CSV: the per-op Vulkan/CUDA ratios the
# Vulkan issue asks for, from one session's bench-cuda and bench-vulkan CSVs
# (same columns: kind,type,n,k,us,gbps_or_tflops,frac_copy).
#   decode: Vulkan matvec GB/s over CUDA's faster matvec path (F32 activations
#           or the 8-bit one), goal 0.9;
#   prefill: Vulkan's tiled kernel TFLOP/s over CUDA's faster of WMMA and
#           cuBLAS at the same shape, goal 0.7.
# Also each side's share of its own copy bandwidth: both backends drive the
# same card, so the two copy figures should agree; a gap there is a
# measurement question before it is a kernel one.
set -u
[ $# -eq 2 ] && [ -s "$1" ] && [ -s "$2" ] || {
    echo "usage: $0 CUDA_CSV VULKAN_CSV (both from the same machine and session)" >&2
    exit 2
}
awk -F, '
FNR == 1 { file++; next }
$1 == "copy" { copy[file] = $6; next }
{
    key = $2 " " $3 "x" $4
    if (file == 1) {
        side = ($1 ~ /^matvec/) ? "d" : "p"
        if (!((side, key) in cu) || $6 > cu[side, key]) { cu[side, key] = $6; cupath[side, key] = $1 }
    } else {
        side = ($1 == "matvec") ? "d" : "p"
        vk[side, key] = $6; order[++n] = side SUBSEP key
    }
}
END {
    cr = copy[1] > 0 ? copy[2] / copy[1] : 0
    printf "copy bandwidth: cuda %.1f GB/s, vulkan %.1f GB/s (ratio %.2f)\n", copy[1], copy[2], cr
    printf "%-8s %-20s %10s %10s %7s %5s  %s\n", "op", "type NxK", "vulkan", "cuda", "ratio", "goal", "cuda path"
    for (i = 1; i <= n; i++) {
        split(order[i], f, SUBSEP)
        side = f[1]; key = f[2]
        if (!((side, key) in cu)) continue
        goal = side == "d" ? 0.9 : 0.7
        r = cu[side, key] > 0 ? vk[side, key] / cu[side, key] : 0
        unit = side == "d" ? "GB/s" : "TFLOP/s"
        printf "%-8s %-20s %10.4g %10.4g %7.2f %5.1f  %s (%s)%s\n", side == "d" ? "decode" : "prefill",
            key, vk[side, key], cu[side, key], r, goal, cupath[side, key], unit, r < goal ? "  below goal" : ""
    }
}' "$1" "$2"
