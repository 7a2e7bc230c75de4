#!/usr/bin/env bash
# bench/gpu-e2e.sh: the end-to-end figures the open issues ask of a lent GPU,
# in one device call after bench/gpu-run.sh has checked the kernels.
#
#   build    the hearth CLI on the device (CUDA sm_90, Vulkan if its loader
#            and glslc are there); falls back to a carried build-cuda/hearth
#   devices  `hearth devices --measure --rates` (copy and host-to-device bandwidth, FLOP,
#            attention and matvec rates, op latency: the figures the planner predicts from)
#   tg       synth llama3-8b at Q4_0, Q4_K_M, Q8_0; `hearth bench -ngl all`:
#            pp512 and tg128, each against the copy bandwidth (issue: CUDA);
#            then tg128 of Q4_0 and Q4_K_M with HEARTH_CUDA_MV_Q8=1
#   graph    decode as CUDA graphs against op by op (HEARTH_CUDA_GRAPH=0): greedy
#            tokens of synth llama3-1b must match, then tg128 both ways for 1B and
#            the preset at Q4_K_M (issue: CUDA, launch overhead)
#   partial  Q4_K_M at -ngl 16 and 24 (issue: CUDA, partial offload)
#   kv       Q4_K_M decode at depth 8192 and 32768 for f16, q8_0, rot4, rot3
#            KV caches (issue: compressed KV)
#   swa      synth gemma3-270m Q4_K_M decode at depth 8192 and 32768 with an
#            f16 cache (its sliding-window layers keep only their ring), rot4,
#            and rot4 --kv-window 128 (issue: compressed KV; docs/kv-cache.md)
#   serve    `hearth serve` with 16 slots on DEV, bench/serve-load.py at 1, 4
#            and 16 concurrent clients: aggregate tokens/s; bench/embed-load.py:
#            /v1/embeddings prompt tokens/s (issue: serve)
#   vulkan   on the first hardware Vulkan device: bench-vulkan (per-op GB/s and
#            TFLOP/s) and bench/vk-cuda-ratio.sh against gpu-run.sh's bench-cuda
#            CSV ($CUDA_CSV, default $OUT/../run/bench.csv, gpu-session's layout),
#            then the tg step, for the Vulkan/CUDA ratios (issue: Vulkan)
#   plan70   synth llama3-70b Q4_K_M (~42 GB; skipped without 50 GB free
#            disk), `hearth plan` for the device, then bench with the planner
#            and with -ngl N sweeps, both under --vram-budget 24GiB when the
#            CLI has it (issue: planner)
#   iq       the tg step for the lattice types IQ2_XS and IQ3_S (8B)
#   iq70     synth llama3-70b IQ2_XS (~21 GB; removes the 70B Q4_K_M first when
#            disk is short), bench under --vram-budget 24GiB: the "70B on one
#            24 GB card" case, all weights on the GPU
# Every bench row is appended to $OUT/e2e.jsonl (one JSON array per run,
# prefixed by a label line), a readable log to $OUT/e2e.txt, one line per
# step to $OUT/summary.txt: three files, well under the tool's limit of 8.
#
# Dry run on a machine without a GPU (checks the script, not the GPU):
#   DEV=cpu NGL=0 PRESET=llama3-1b LAYERS=2 STEPS="tg kv" bash bench/gpu-e2e.sh
set -u
OUT=${OUT:-$PWD/gpu-e2e-out}
mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH
STEPS=${STEPS:-build devices tg graph partial kv swa serve vulkan plan70 iq iq70}
DEV=${DEV:-cuda0}
NGL=${NGL:-all}
PRESET=${PRESET:-llama3-8b}
LAYERS=${LAYERS:-}
MODELS=${MODELS:-/tmp/hearth-models}
BIN=${HEARTH_BIN:-}
has() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }
say() { echo "== $*" | tee -a "$OUT/summary.txt"; }
cd "$(dirname "$0")/.." || exit 1
# PCRE2, serve and Vulkan build dependencies carried as .gpu/ (bench/gpu-kit.sh)
. bench/gpu-kit.sh env
mkdir -p "$MODELS"

if has build; then
    t0=$(date +%s)
    if cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DHEARTH_CUDA=ON -DHEARTH_VULKAN=AUTO \
            -DHEARTH_CUDA_ARCHS=90 >"$OUT/e2e.txt" 2>&1 &&
        cmake --build build-gpu -j 16 --target hearth-cli bench-vulkan >>"$OUT/e2e.txt" 2>&1; then
        BIN=build-gpu/hearth
        say "built the CLI on the device in $(($(date +%s) - t0)) s"
    else
        say "CLI build on the device failed: $(tail -n 3 "$OUT/e2e.txt" | tr '\n' ' ')"
    fi
fi
if [ -z "$BIN" ]; then
    for b in build-gpu/hearth build-cuda/hearth build/hearth; do
        [ -x "$b" ] && BIN=$b && break
    done
fi
[ -n "$BIN" ] || { say "no hearth binary (build failed, nothing carried)"; exit 1; }
say "binary $BIN, device $DEV, preset $PRESET${LAYERS:+ ($LAYERS layers)}"

# synth PRESET TYPE -> path (cached in $MODELS)
synth() {
    local f="$MODELS/$1-$2${LAYERS:+-L$LAYERS}.gguf"
    if [ ! -s "$f" ]; then
        "$BIN" synth --preset "$1" --type "$2" ${LAYERS:+--layers "$LAYERS"} -o "$f" \
            >>"$OUT/e2e.txt" 2>&1 || { say "synth $1 $2 failed"; return 1; }
    fi
    echo "$f"
}

# bench LABEL ARGS...: one `hearth bench --json` run, logged and appended
bench() {
    local label=$1
    shift
    local t0
    t0=$(date +%s)
    echo "## $label" >>"$OUT/e2e.jsonl"
    if "$BIN" bench --json "$@" >"$OUT/run.json" 2>"$OUT/run.err"; then
        cat "$OUT/run.json" >>"$OUT/e2e.jsonl"
        local line
        line=$(python3 -c "
import json, sys
rows = json.load(open(sys.argv[1]))
def one(r):
    s = '%s %.1f t/s' % (r['test'], r['tps_median'])
    if r.get('roofline_tps'):  # the GPU path: the plan's reads at each device's copy bw
        s += ' (%.0f%% of the %.1f t/s roofline%s)' % (100 * r['roofline_fraction'],
             r['roofline_tps'], ', bw assumed' if r['roofline_bw_assumed'] else '')
    elif r.get('time_split') is None:
        s += ' (%.0f%% of host copy bw)' % (100 * r['bw_fraction'])
    sp = r.get('time_split') or {}
    if len([k for k in sp if k != 'moves' and sp[k] > 0.005]) > 1:
        s += ' [time: ' + ', '.join('%s %.0f%%' % (k, 100 * v) for k, v in sp.items()) + ']'
    return s
print('  '.join(one(r) for r in rows))" "$OUT/run.json" 2>/dev/null)
        say "$label: $line [$(grep -m1 '^plan:' "$OUT/run.err")] $(($(date +%s) - t0)) s"
    else
        say "$label: FAILED: $(tail -n 2 "$OUT/run.err" | tr '\n' ' ')"
    fi
    rm -f "$OUT/run.json" "$OUT/run.err"
}

if has devices; then
    "$BIN" devices --measure --rates >>"$OUT/e2e.txt" 2>&1
    say "devices: $(grep -E "^($DEV|vulkan[0-9])" "$OUT/e2e.txt" | tr -s ' ' | tr '\n' ';')"
fi

if has tg; then
    for t in Q4_0 Q4_K_M Q8_0; do
        f=$(synth "$PRESET" "$t") || continue
        bench "$PRESET $t $DEV -ngl $NGL" -m "$f" --device "$DEV" -ngl "$NGL" -p 512 -n 128 -r 3
    done
    # the 8-bit activation matvec (cuda/matvec-q8.cu, off by default): decode only
    for t in Q4_0 Q4_K_M; do
        f=$(synth "$PRESET" "$t") || continue
        HEARTH_CUDA_MV_Q8=1 bench "$PRESET $t $DEV -ngl $NGL matvec-q8" -m "$f" --device "$DEV" \
            -ngl "$NGL" -p 0 -n 128 -r 3
    done
fi

if has graph; then
    g1=$(synth llama3-1b Q4_K_M) && {
        a=$("$BIN" run -m "$g1" --device "$DEV" -ngl "$NGL" --temp 0 -n 32 -p "The" --print-ids 2>/dev/null)
        b=$(HEARTH_CUDA_GRAPH=0 "$BIN" run -m "$g1" --device "$DEV" -ngl "$NGL" --temp 0 -n 32 \
            -p "The" --print-ids 2>/dev/null)
        if [ -n "$a" ] && [ "$a" = "$b" ]; then say "graph: 32 greedy tokens identical ($a)"
        else say "graph: tokens DIFFER with and without CUDA graphs: [$a] vs [$b]"; fi
    }
    for g in "llama3-1b" "$PRESET"; do
        f=$(synth "$g" Q4_K_M) || continue
        bench "$g Q4_K_M $DEV graphs" -m "$f" --device "$DEV" -ngl "$NGL" -p 0 -n 128 -r 3
        HEARTH_CUDA_GRAPH=0 bench "$g Q4_K_M $DEV op-by-op" -m "$f" --device "$DEV" \
            -ngl "$NGL" -p 0 -n 128 -r 3
    done
fi

if has partial; then
    f=$(synth "$PRESET" Q4_K_M) &&
        for n in 16 24; do
            bench "$PRESET Q4_K_M $DEV -ngl $n" -m "$f" --device "$DEV" -ngl "$n" -p 512 \
                -n 128 -r 3
        done
fi

if has kv; then
    f=$(synth "$PRESET" Q4_K_M) &&
        for d in 8192 32768; do
            for kt in f16 q8_0 rot4 rot3; do
                bench "$PRESET Q4_K_M $DEV kv $kt depth $d" -m "$f" --device "$DEV" -ngl "$NGL" \
                    -p 0 -n 64 -r 3 -d "$d" --kv-type "$kt"
            done
        done
fi

if has swa; then
    f=$(synth gemma3-270m Q4_K_M) &&
        for d in 8192 32768; do
            for kv in "f16" "rot4" "rot4 --kv-window 128"; do
                # shellcheck disable=SC2086
                bench "gemma3-270m Q4_K_M $DEV swa $kv depth $d" -m "$f" --device "$DEV" \
                    -ngl "$NGL" -p 0 -n 64 -r 3 -d "$d" --kv-type $kv
            done
        done
fi

if has serve; then
    if f=$(synth "$PRESET" Q4_K_M); then
        port=18089
        "$BIN" serve -m "$f" --device "$DEV" -ngl "$NGL" --parallel 16 --port "$port" \
            -c 1024 >"$OUT/serve.log" 2>&1 &
        spid=$!
        up=0
        for _ in $(seq 1 120); do
            python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=2)" \
                2>/dev/null && up=1 && break
            kill -0 "$spid" 2>/dev/null || break
            sleep 1
        done
        if [ "$up" = 1 ]; then
            python3 bench/serve-load.py --url "http://127.0.0.1:$port" --clients 1,4,16 \
                --max-tokens 64 --seconds 15 >"$OUT/load.txt" 2>&1
            cat "$OUT/load.txt" >>"$OUT/e2e.txt"
            say "serve $PRESET Q4_K_M $DEV aggregate tok/s: $(awk '$1 ~ /^[0-9]+$/ && NF >= 5 \
                {printf "%s clients %s; ", $1, $5}' "$OUT/load.txt")"
            rm -f "$OUT/load.txt"
            python3 bench/embed-load.py --url "http://127.0.0.1:$port" \
                --file tests/data/kjv-genesis.txt --max-chars 300 --inputs 512 \
                --per-request 64 --clients 2 >"$OUT/embed.txt" 2>&1
            cat "$OUT/embed.txt" >>"$OUT/e2e.txt"
            say "serve $PRESET Q4_K_M $DEV $(tail -n 1 "$OUT/embed.txt")"
            rm -f "$OUT/embed.txt"
        else
            say "serve: the server did not come up: $(tail -n 2 "$OUT/serve.log" | tr '\n' ' ')"
        fi
        kill -INT "$spid" 2>/dev/null
        wait "$spid" 2>/dev/null
        cat "$OUT/serve.log" >>"$OUT/e2e.txt"
        rm -f "$OUT/serve.log"
    fi
fi

if has vulkan; then
    vk=$("$BIN" devices 2>/dev/null | awk '/^vulkan[0-9]/ && !/llvmpipe|lavapipe|SwiftShader/ {print $1; exit}')
    if [ -n "$vk" ]; then
        # per-op figures first (bench-vulkan: matvec per type and shape, prefill), then the
        # Vulkan/CUDA ratio of each op against bench-cuda's CSV of this session (gpu-run.sh)
        vkb=$(dirname "$BIN")/bench-vulkan
        if [ -x "$vkb" ]; then
            BENCH_CSV="$OUT/vk-bench.csv" timeout 150 "$vkb" -d "${vk#vulkan}" >"$OUT/vk-bench.txt" 2>&1
            say "bench-vulkan $vk rc=$?: $(head -n 2 "$OUT/vk-bench.txt" | tr '\n' ' ')"
            cuda_csv=${CUDA_CSV:-$OUT/../run/bench.csv}
            if [ -s "$cuda_csv" ]; then
                bash bench/vk-cuda-ratio.sh "$cuda_csv" "$OUT/vk-bench.csv" >>"$OUT/vk-bench.txt"
                # the ratio rows only ("TYPE NxK"; bench-vulkan's own rows write "N x K")
                grep -E '^(copy bandwidth: cuda|decode +(Q4_0|Q4_K|Q6_K|Q8_0) |prefill +[A-Z0-9_]+ [0-9]+x)' \
                    "$OUT/vk-bench.txt" | while read -r l; do say "vk/cuda: $l"; done
            else
                say "vk/cuda: no bench-cuda CSV at $cuda_csv (run gpu-run.sh bench first)"
            fi
        else
            say "bench-vulkan: not built next to $BIN (the build step builds it)"
        fi
        for t in Q4_0 Q4_K_M Q8_0; do
            f=$(synth "$PRESET" "$t") || continue
            bench "$PRESET $t $vk -ngl all" -m "$f" --device "$vk" -ngl all -p 512 -n 128 -r 3
        done
    else
        say "vulkan: no hardware Vulkan device listed (loader or ICD missing?)"
    fi
fi

if has plan70; then
    free_gb=$(df -Pk "$MODELS" | awk 'NR == 2 {print int($4 / 1048576)}')
    if [ "${free_gb:-0}" -lt 50 ]; then
        say "plan70: skipped, $free_gb GB free under $MODELS (needs 50)"
    elif f=$(synth llama3-70b Q4_K_M); then
        budget=()
        "$BIN" bench --help 2>&1 | grep -q -- '--vram-budget' && budget=(--vram-budget 24GiB)
        # the plan alone in its own file: e2e.txt holds earlier steps' lines too
        "$BIN" plan "$f" --device "$DEV" --vram-budget 24GiB -c 4096 >"$OUT/plan.txt" 2>&1
        cat "$OUT/plan.txt" >>"$OUT/e2e.txt"
        say "plan70: $(grep -m2 -iE 'predicted|tok/s' "$OUT/plan.txt" | tr '\n' ' ')"
        "$BIN" plan "$f" --device "$DEV" --vram-budget 24GiB -c 4096 --json >"$OUT/plan.txt" 2>&1
        say "plan70 predicted: $(grep -oE '"(prefill|decode)_tps": [0-9.]+' "$OUT/plan.txt" | head -2 | tr '\n' ' ')"
        rm -f "$OUT/plan.txt"
        bench "llama3-70b Q4_K_M $DEV planner ${budget[*]}" -m "$f" --device "$DEV" \
            "${budget[@]}" -p 512 -n 32 -r 1
        for n in 44 40 36 32; do
            bench "llama3-70b Q4_K_M $DEV -ngl $n ${budget[*]}" -m "$f" --device "$DEV" \
                -ngl "$n" "${budget[@]}" -p 512 -n 32 -r 1
        done
    fi
fi
if has iq; then
    for t in IQ2_XS IQ3_S; do
        f=$(synth "$PRESET" "$t") || continue
        bench "$PRESET $t $DEV -ngl $NGL" -m "$f" --device "$DEV" -ngl "$NGL" -p 512 -n 128 -r 3
    done
fi

if has iq70; then
    free_gb=$(df -Pk "$MODELS" | awk 'NR == 2 {print int($4 / 1048576)}')
    if [ "${free_gb:-0}" -lt 25 ]; then
        rm -f "$MODELS"/llama3-70b-Q4_K_M*.gguf
        free_gb=$(df -Pk "$MODELS" | awk 'NR == 2 {print int($4 / 1048576)}')
    fi
    if [ "${free_gb:-0}" -lt 25 ]; then
        say "iq70: skipped, $free_gb GB free under $MODELS (needs 25)"
    elif f=$(synth llama3-70b IQ2_XS); then
        "$BIN" plan "$f" --vram-budget 24GiB -c 4096 >"$OUT/plan.txt" 2>&1
        cat "$OUT/plan.txt" >>"$OUT/e2e.txt"
        say "iq70 plan: $(grep -m2 -iE 'predicted|tok/s' "$OUT/plan.txt" | tr '\n' ' ')"
        rm -f "$OUT/plan.txt"
        bench "llama3-70b IQ2_XS $DEV planner --vram-budget 24GiB" -m "$f" --device "$DEV" \
            --vram-budget 24GiB -p 512 -n 64 -r 2
    fi
fi
cat "$OUT/summary.txt"
