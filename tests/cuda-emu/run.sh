#!/usr/bin/env bash
# tests/cuda-emu/run.sh [BUILD_DIR]: builds the emulated CUDA tests
# (build.sh) and runs the emulator's selftest, then test-cuda-ops,
# test-cuda-kvq and test-cuda-kvq-window,
# printing each one's wall time. Exits 0 when all pass, 1 when one fails,
# 77 (skipped) when the CUDA headers are missing. CUDA_EMU_ORDER and the
# other emulator variables (README.md) pass through to the tests.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build-cemu}
case $build in /*) ;; *) build=$src/$build ;; esac
if [ ! -f "${CUDA_HOME:-/usr/local/cuda}/include/cuda_runtime.h" ]; then
    echo "cuda-emu: skipped: no CUDA headers (set CUDA_HOME)"
    exit 77
fi
bash "$src/tests/cuda-emu/build.sh" "$build" >/dev/null
cd "$src"
# a private bandwidth cache: the emulated device must never be recorded as a real one
export HEARTH_CACHE_DIR=$build/${EMU_NAME:-cuda-emu}/cache
mkdir -p "$HEARTH_CACHE_DIR"
fail=0
for t in selftest test-cuda-ops test-cuda-kvq test-cuda-kvq-window; do
    t0=$(date +%s.%N)
    if "$build/${EMU_NAME:-cuda-emu}/$t" >"$build/${EMU_NAME:-cuda-emu}/$t.log" 2>&1; then
        r=ok
    else
        r=FAIL
        fail=1
    fi
    t1=$(date +%s.%N)
    printf 'cuda-emu: %-4s %-22s %6.1f s  %s\n' "$r" "$t" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
        "$(tail -n 1 "$build/${EMU_NAME:-cuda-emu}/$t.log")"
    [ $r = ok ] || tail -n 30 "$build/${EMU_NAME:-cuda-emu}/$t.log"
done
exit $fail
