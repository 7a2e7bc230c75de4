#!/usr/bin/env bash
# bench/gpu-run.sh: everything the CUDA backend needs checked on a real GPU, in
# one device call (see bench/README-gpu.md for the plan and how to read it).
#
#   1. build: configure + build test-cuda-ops, test-cuda-kvq(-window), test-cuda-layout
#      and bench-cuda on the device (sm_90 only, no Vulkan); if that fails (no
#      pcre2 headers or pkg-config there, say), fall back to binaries carried
#      from the dev machine in build-cuda/ (run with carry
#      ["build-cuda/test-cuda-ops", "build-cuda/test-cuda-kvq", "build-cuda/test-cuda-kvq-window",
#      "build-cuda/test-cuda-layout", "build-cuda/bench-cuda", "build-cuda/test-dot"]);
#   2. tests: test-dot (the CPU kernels, AVX-512 where the host has it), test-cuda-layout, test-cuda-ops (every op vs the CPU), then
#      test-cuda-kvq (compressed KV cache: encoder bytes vs kvq_encode,
#      attention vs a decoded-cache reference and the CPU backend);
#   3. compute-sanitizer memcheck and racecheck on test-cuda-ops cases;
#   4. bench-cuda: copy bandwidth, matvec GB/s per type and shape, prefill
#      TFLOP/s (table on stdout, CSV in $OUT/bench.csv).
# Writes at most 8 files to $OUT (the device tool's limit): env.txt build.log
# test.log sanitizer.log bench.txt bench.csv summary.txt.
# STEPS (default "build test sanitize bench") picks steps, e.g. STEPS="build bench".
set -u
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH
STEPS=${STEPS:-build test sanitize bench}
has() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }
say() { echo "== $*" | tee -a "$OUT/summary.txt"; }
cd "$(dirname "$0")/.." || exit 1
# PCRE2, serve and Vulkan build dependencies carried as .gpu/ (bench/gpu-kit.sh)
. bench/gpu-kit.sh env

{
    date; uname -a; nvidia-smi; nvcc --version; cmake --version; ninja --version
    command -v compute-sanitizer; pkg-config --modversion libpcre2-8
    # for the Vulkan steps (issue: Vulkan, mixed CUDA + Vulkan): is there a loader and an ICD?
    ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/nvidia 2>&1
    ldconfig -p | grep -i -E 'libvulkan|GLX_nvidia|nvidia-glvk'
} >"$OUT/env.txt" 2>&1

BIN=""
if has build; then
    t0=$(date +%s)
    if cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DHEARTH_VULKAN=OFF \
            -DHEARTH_CUDA=ON -DHEARTH_CUDA_ARCHS=90 -DHEARTH_ASSERTS=ON \
            -DCMAKE_C_FLAGS=-DHEARTH_WITH_CUDA >"$OUT/build.log" 2>&1 &&
        cmake --build build-gpu -j 16 --target test-cuda-ops test-cuda-kvq test-cuda-kvq-window \
            test-cuda-layout bench-cuda test-dot \
            >>"$OUT/build.log" 2>&1; then
        BIN=build-gpu
        say "built on the device in $(($(date +%s) - t0)) s"
    else
        say "build on the device failed (tail of build.log below)"
        tail -n 15 "$OUT/build.log" | tee -a "$OUT/summary.txt"
    fi
fi
if [ -z "$BIN" ]; then
    # without the build step: an earlier call's build-gpu/ (bench/gpu-session.sh), else carried ones
    for d in build-gpu build-cuda; do
        if [ -x $d/test-cuda-ops ] && [ -x $d/bench-cuda ]; then
            BIN=$d
            say "using the binaries in $d/"
            break
        fi
    done
    [ -n "$BIN" ] || { say "no binaries: build failed and nothing was carried"; exit 1; }
fi

if has test; then
    set -o pipefail
    # the CUDA tests' CPU reference runs the host's best ISA: on an AVX-512 host that is
    # the only place the AVX-512 kernels get checked (none on the dev machine), so first
    if [ -x "$BIN/test-dot" ]; then
        timeout 120 "$BIN/test-dot" >"$OUT/test.log" 2>&1
        rc=$?
        say "test-dot rc=$rc (host avx512f: $(grep -c avx512f /proc/cpuinfo) cpus; $(grep -E '^[0-9]+ passed' "$OUT/test.log" | tail -1))"
        # a wrong AVX-512 kernel would fail every CUDA comparison for the wrong reason:
        # record it, and take the CPU reference from the AVX2 kernels for the rest
        if [ $rc -ne 0 ] && [ -z "${HEARTH_CPU_ISA:-}" ] && grep -q avx512f /proc/cpuinfo; then
            export HEARTH_CPU_ISA=avx2
            say "test-dot failed on this AVX-512 host: HEARTH_CPU_ISA=avx2 for the other steps"
        fi
    fi
    timeout 60 "$BIN/test-cuda-layout" >>"$OUT/test.log" 2>&1
    say "test-cuda-layout rc=$?"
    timeout 180 "$BIN/test-cuda-ops" >>"$OUT/test.log" 2>&1
    rc=$?
    say "test-cuda-ops rc=$rc ($(grep -E '^[0-9]+ passed' "$OUT/test.log" | tail -1))"
    if [ -x "$BIN/test-cuda-kvq" ]; then
        timeout 180 "$BIN/test-cuda-kvq" >>"$OUT/test.log" 2>&1
        say "test-cuda-kvq rc=$? ($(grep -E '^[0-9]+ passed' "$OUT/test.log" | tail -1))"
    else
        say "test-cuda-kvq: not built"
    fi
    if [ -x "$BIN/test-cuda-kvq-window" ]; then
        timeout 180 "$BIN/test-cuda-kvq-window" >>"$OUT/test.log" 2>&1
        say "test-cuda-kvq-window rc=$? ($(grep -E '^[0-9]+ passed' "$OUT/test.log" | tail -1))"
    else
        say "test-cuda-kvq-window: not built"
    fi
    grep -E '^(FAIL|fail)|:[0-9]+: ' "$OUT/test.log" | head -40 | tee -a "$OUT/summary.txt"
    set +o pipefail
fi

if has sanitize; then
    if command -v compute-sanitizer >/dev/null; then
        quick="rmsnorm_add_glu_scale rope_both_modes attention_decode pos_counter \
dequant_and_embed_every_type matvec_every_type backend_block_matches_cpu \
graph_decode_matches_eager"
        # shellcheck disable=SC2086
        timeout 150 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 \
            "$BIN/test-cuda-ops" $quick matmul_mma_every_type >"$OUT/sanitizer.log" 2>&1
        say "memcheck rc=$? ($(grep -c '=========' "$OUT/sanitizer.log") sanitizer lines)"
        # shellcheck disable=SC2086
        timeout 120 compute-sanitizer --tool racecheck --error-exitcode 9 \
            "$BIN/test-cuda-ops" rmsnorm_add_glu_scale attention_decode matvec_every_type \
            >>"$OUT/sanitizer.log" 2>&1
        say "racecheck rc=$?"
        if [ -x "$BIN/test-cuda-kvq" ]; then
            timeout 150 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 \
                "$BIN/test-cuda-kvq" store_bytes_match_kvq_encode supports_kv_and_bad_args \
                attention_window_long_and_pieces >>"$OUT/sanitizer.log" 2>&1
            say "memcheck test-cuda-kvq rc=$?"
            timeout 150 compute-sanitizer --tool racecheck --error-exitcode 9 \
                "$BIN/test-cuda-kvq" store_bytes_match_kvq_encode attention_window_long_and_pieces \
                >>"$OUT/sanitizer.log" 2>&1
            say "racecheck test-cuda-kvq rc=$?"
        fi
        grep -m 20 -E 'ERROR|Invalid|hazard' "$OUT/sanitizer.log" | tee -a "$OUT/summary.txt"
    else
        say "compute-sanitizer not found"
    fi
fi

if has bench; then
    BENCH_CSV="$OUT/bench.csv" timeout 240 "$BIN/bench-cuda" >"$OUT/bench.txt" 2>&1
    say "bench-cuda rc=$?"
    cat "$OUT/bench.txt"
fi
cat "$OUT/summary.txt"
