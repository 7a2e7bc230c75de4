#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs the GGUF reader
# fuzzer for N seconds (default 60) from a seed corpus: real model headers
# (cut from models/, or $HEARTH_MODELS_DIR, at a few lengths) plus tests/corpus/gguf/*.gguf broken files.
set -euo pipefail
secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=build-fuzz
CC=clang cmake -S . -B $build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHEARTH_FUZZ=ON \
    -DHEARTH_CUDA=OFF -DHEARTH_VULKAN=OFF -DBUILD_TESTING=OFF >/dev/null
cmake --build $build -j"$(nproc)" --target fuzz-gguf
seeds=$build/seeds; run=$build/corpus-run
rm -rf "$seeds"; mkdir -p "$seeds" "$run"
for m in "${HEARTH_MODELS_DIR:-models}"/*.gguf; do
    [ -f "$m" ] || continue
    b=$(basename "$m" .gguf)
    for n in 4096 65536 1048576; do head -c $n "$m" > "$seeds/$b-$n.gguf"; done
done
if [ -d tests/corpus/gguf ]; then cp tests/corpus/gguf/*.gguf "$seeds"/ 2>/dev/null || true; fi
ASAN_OPTIONS=detect_leaks=1 "$build/fuzz-gguf" -max_total_time="$secs" -rss_limit_mb=2048 \
    -max_len=1048576 -print_final_stats=1 "$run" "$seeds"
