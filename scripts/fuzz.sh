#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs them for N
# seconds in all (default 60):
#  - half to the GGUF reader (fuzz-gguf), from real model headers (cut from
#    models/, or $HEARTH_MODELS_DIR, at a few lengths) and the broken files
#    of tests/corpus/gguf;
#  - the other half shared by
#    - fuzz-model: what reads a model's metadata after it (tokenizer loader,
#      chat template, model loader, planner), from the headers of small synth
#      models that the target writes itself;
#    - fuzz-tokenize: the real models' tokenizers on arbitrary text (round
#      trips, the streaming decoder), from tests/corpus/tokenize, when a
#      model is there;
#    - fuzz-serve: the server's request handling, from tests/corpus/serve,
#      when libcjson is installed.
set -euo pipefail
secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=build-fuzz
models=${HEARTH_MODELS_DIR:-models}
CC=clang cmake -S . -B $build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHEARTH_FUZZ=ON \
    -DHEARTH_CUDA=OFF -DHEARTH_VULKAN=OFF -DBUILD_TESTING=OFF >/dev/null
serve=0; tokenize=0
pkg-config --exists libcjson && serve=1
ls "$models"/*.gguf >/dev/null 2>&1 && tokenize=1
targets=(fuzz-gguf fuzz-model)
[ $serve = 1 ] && targets+=(fuzz-serve)
[ $tokenize = 1 ] && targets+=(fuzz-tokenize)
cmake --build $build -j"$(nproc)" --target "${targets[@]}"
gguf_secs=$(( secs / 2 ))
each=$(( (secs - gguf_secs) / (1 + serve + tokenize) ))
export ASAN_OPTIONS=detect_leaks=1
common=(-rss_limit_mb=2048 -timeout=10 -print_final_stats=1)

seeds=$build/seeds; run=$build/corpus-run
rm -rf "$seeds"; mkdir -p "$seeds" "$run"
for m in "$models"/*.gguf; do
    [ -f "$m" ] || continue
    b=$(basename "$m" .gguf)
    for n in 4096 65536 1048576; do head -c $n "$m" > "$seeds/$b-$n.gguf"; done
done
if [ -d tests/corpus/gguf ]; then cp tests/corpus/gguf/*.gguf "$seeds"/ 2>/dev/null || true; fi
"$build/fuzz-gguf" -max_total_time="$gguf_secs" -max_len=1048576 "${common[@]}" "$run" "$seeds"

mseeds=$build/seeds-model
rm -rf "$mseeds"; mkdir -p "$mseeds" $build/corpus-model
HEARTH_FUZZ_WRITE_SEEDS="$mseeds" "$build/fuzz-model"
"$build/fuzz-model" -max_total_time="$each" -max_len=262144 "${common[@]}" \
    $build/corpus-model "$mseeds"

if [ $tokenize = 1 ]; then
    mkdir -p $build/corpus-tokenize
    HEARTH_MODELS_DIR="$models" "$build/fuzz-tokenize" -max_total_time="$each" -max_len=4096 \
        "${common[@]}" $build/corpus-tokenize tests/corpus/tokenize
else
    echo "fuzz: fuzz-tokenize skipped (no model in $models)"
fi

if [ $serve = 1 ]; then
    # byte 0 of an input picks the endpoint and the stream cut (fuzz/fuzz-serve.c)
    mkdir -p $build/corpus-serve
    "$build/fuzz-serve" -max_total_time="$each" -max_len=65536 "${common[@]}" \
        $build/corpus-serve tests/corpus/serve
else
    echo "fuzz: fuzz-serve skipped (libcjson not installed)"
fi
