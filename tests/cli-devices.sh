#!/usr/bin/env bash
# cli-devices: device selection in the CLI. `hearth devices` lists cpu (and
# vulkan0 when this build has Vulkan and vulkaninfo sees a device, with its
# largest buffer, which HEARTH_VULKAN_MAX_BUFFER lowers); --device
# with an unknown name exits 1 naming the devices on offer, for run, chat,
# bench and perplexity alike; a bad -ngl value exits 2; --device cpu and -ngl 0
# take the CPU forward pass, print its placement line at load (not with -q)
# and give the same greedy text as no device flags at all. Bandwidths and FLOP
# rates are measured once into the cache (HEARTH_CACHE_DIR here; format v2),
# reused, re-measured with --measure, and read by `hearth plan` (the FLOP rate
# no longer "assumed"); a v1 cache gets its FLOP rates measured and is
# rewritten as v2; a malformed cache is a note.
set -u
bin=${HEARTH_BIN:?HEARTH_BIN must name the hearth binary}
src=${HEARTH_SOURCE_DIR:?HEARTH_SOURCE_DIR must name the source tree}
models=${HEARTH_MODELS_DIR:-$src/models}
smol=$models/SmolLM2-135M-Instruct.Q4_1.gguf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
[ -f "$smol" ] || { echo "FAIL: model $smol not found: run bash scripts/fetch-models.sh"; exit 1; }

# ---- the list
"$bin" devices --no-bandwidth > "$tmp/dev" 2> "$tmp/e" || fail "devices exit $?: $(cat "$tmp/e")"
cat "$tmp/dev"
grep -Eq '^cpu ' "$tmp/dev" || fail "devices does not list cpu"
vk_built=0
grep -Eq '^backends built:.* vulkan' "$tmp/dev" && vk_built=1
vk_listed=0
grep -Eq '^vulkan0 ' "$tmp/dev" && vk_listed=1
if [ $vk_built -eq 1 ] && command -v vulkaninfo > /dev/null 2>&1 &&
    vulkaninfo --summary 2> /dev/null | grep -q 'deviceName'; then
    [ $vk_listed -eq 1 ] || fail "vulkaninfo sees a device but devices does not list vulkan0"
fi
[ $vk_built -eq 0 ] && [ $vk_listed -eq 1 ] && fail "vulkan0 listed by a build without Vulkan"
# a device whose driver caps one buffer says so (the CPU has no cap), and
# HEARTH_VULKAN_MAX_BUFFER lowers it as a smaller driver would
grep -E '^cpu ' "$tmp/dev" | grep -q 'buffers up to' && fail "cpu lists a buffer cap"
if [ $vk_listed -eq 1 ]; then
    grep -E '^vulkan0 ' "$tmp/dev" | grep -Eq '; buffers up to [0-9]+ MiB' \
        || fail "vulkan0 lists no buffer cap: $(grep '^vulkan0 ' "$tmp/dev")"
    HEARTH_VULKAN_MAX_BUFFER=8388608 "$bin" devices --no-bandwidth > "$tmp/dev8" 2>&1
    grep -E '^vulkan0 ' "$tmp/dev8" | grep -q '; buffers up to 8 MiB' \
        || fail "HEARTH_VULKAN_MAX_BUFFER=8 MiB: $(grep '^vulkan0 ' "$tmp/dev8")"
fi
# the names on offer, as the unknown-device message must list them
names=$(awk 'NR > 2 { print $1 }' "$tmp/dev")

# ---- unknown device: exit 1, the message names it and every available device
p="The history of the printing press"
check_nosuch() { # $1: what ran, $2: its exit code, $3: its stderr file
    [ "$2" -eq 1 ] || fail "$1 --device nosuch: exit $2, expected 1"
    grep -q 'nosuch' "$3" || fail "$1: the unknown name is not in the message: $(cat "$3")"
    for n in $names; do
        grep -q "$n" "$3" || fail "$1: available device $n not named: $(cat "$3")"
    done
}
"$bin" run -m "$smol" -p "$p" -n 4 --device nosuch > /dev/null 2> "$tmp/e"
check_nosuch run $? "$tmp/e"
echo "unknown device message: $(cat "$tmp/e")"
echo hi | "$bin" chat -m "$smol" -n 4 --device nosuch > /dev/null 2> "$tmp/e"
check_nosuch chat $? "$tmp/e"
"$bin" bench -m "$smol" -p 8 -n 2 -r 1 --bw-size 16MiB --device nosuch > /dev/null 2> "$tmp/e"
check_nosuch bench $? "$tmp/e"
head -c 4000 "$src/tests/data/kjv-genesis.txt" > "$tmp/text.txt"
"$bin" perplexity -m "$smol" -f "$tmp/text.txt" -c 64 --chunks 1 --device nosuch \
    > /dev/null 2> "$tmp/e"
check_nosuch perplexity $? "$tmp/e"
# a misspelt name is an error even when nothing would be offloaded
"$bin" run -m "$smol" -p "$p" -n 4 -ngl 0 --device nosuch > /dev/null 2> "$tmp/e"
check_nosuch "run -ngl 0" $? "$tmp/e"

# ---- bad -ngl / --device values: exit 2 with a message
for tool in run chat bench perplexity; do
    for args in "-ngl abc" "-ngl -3" "-ngl 1x" "-ngl" "--device"; do
        case $tool in
        run) set -- run -m "$smol" -p "$p" -n 4 ;;
        chat) set -- chat -m "$smol" -n 4 ;;
        bench) set -- bench -m "$smol" -p 8 -n 2 -r 1 ;;
        perplexity) set -- perplexity -m "$smol" -f "$tmp/text.txt" -c 64 ;;
        esac
        # shellcheck disable=SC2086
        "$bin" "$@" $args < /dev/null > /dev/null 2> "$tmp/e"
        rc=$?
        [ $rc -eq 2 ] || fail "$tool $args: exit $rc, expected 2"
        [ -s "$tmp/e" ] || fail "$tool $args: no message"
    done
done
"$bin" run -m "$smol" -p "$p" -n 4 -ngl abc > /dev/null 2> "$tmp/e"
grep -q 'abc' "$tmp/e" || fail "-ngl abc: the value is not named: $(cat "$tmp/e")"

# ---- the CPU path: --device cpu and -ngl 0 give the default run's greedy text
"$bin" run -m "$smol" -p "$p" --temp 0 -n 16 -q -t 2 > "$tmp/plain" 2> "$tmp/e" \
    || fail "plain run exit $?: $(cat "$tmp/e")"
"$bin" run -m "$smol" -p "$p" --temp 0 -n 16 -t 2 --device cpu > "$tmp/cpu" 2> "$tmp/ecpu" \
    || fail "--device cpu exit $?: $(cat "$tmp/ecpu")"
"$bin" run -m "$smol" -p "$p" --temp 0 -n 16 -t 2 -q -ngl 0 > "$tmp/ngl0" 2> "$tmp/e0" \
    || fail "-ngl 0 exit $?: $(cat "$tmp/e0")"
[ -s "$tmp/plain" ] || fail "no output"
cmp -s "$tmp/plain" "$tmp/cpu" || fail "--device cpu text differs: '$(cat "$tmp/cpu")'"
cmp -s "$tmp/plain" "$tmp/ngl0" || fail "-ngl 0 text differs: '$(cat "$tmp/ngl0")'"
[ -s "$tmp/e0" ] && fail "-q printed on stderr: $(cat "$tmp/e0")"
echo "load line: $(grep '^plan: ' "$tmp/ecpu")"
grep -Eq '^plan: all [0-9]+ layers and output on cpu; [0-9]+ MiB host KV cache, f16 \(--device cpu\)$' \
    "$tmp/ecpu" || fail "--device cpu: no placement line at load: $(cat "$tmp/ecpu")"
# bench and perplexity print the placement line on stderr too
"$bin" perplexity -m "$smol" -f "$tmp/text.txt" -c 64 --chunks 1 --device cpu -t 2 \
    > "$tmp/ppl" 2> "$tmp/e" || fail "perplexity --device cpu exit $?: $(cat "$tmp/e")"
grep -q '^plan: all [0-9]* layers and output on cpu' "$tmp/e" \
    || fail "perplexity: no placement line: $(cat "$tmp/e")"
grep -q '^perplexity: ' "$tmp/ppl" || fail "perplexity --device cpu: no result"

# ---- measured bandwidths: measured once, cached, used by plan; a bad cache is a note
export HEARTH_CACHE_DIR="$tmp/cache"
# The checks below read the cpu entries only. Under the sanitizers, whose CI stage has
# little time to spare, the Vulkan loader finds no driver here, so the five measuring
# runs skip lavapipe's ~7 s each (test-vk-backend times Vulkan copies under them).
[ -n "${HEARTH_SANITIZED:-}" ] && export VK_ICD_FILENAMES="$tmp/no-icd.json"
"$bin" devices > "$tmp/m1" 2> "$tmp/e" || fail "devices (measuring) exit $?: $(cat "$tmp/e")"
grep -Eq '^cpu +[0-9]+ +[0-9]+ +[0-9]+\.[0-9]+ .*\(measured now\)$' "$tmp/m1" \
    || fail "devices did not measure cpu: $(cat "$tmp/m1")"
grep -Eq '^device .* GB/s +H2D GB/s +GFLOP/s +mv GB/s +op us +description$' "$tmp/m1" \
    || fail "no GFLOP/s, mv GB/s and op us columns: $(head -2 "$tmp/m1")"
# cpu: memory GB/s, no H2D, then its FLOP rate, Q4_K matvec rate and op latency
grep -Eq '^cpu +[0-9]+ +[0-9]+ +[0-9]+\.[0-9]+ +- +[0-9]+\.[0-9]+ +[0-9]+\.[0-9]+ +[0-9]+\.[0-9]+ ' \
    "$tmp/m1" || fail "devices printed no FLOP rate, matvec rate or op latency for cpu: $(cat "$tmp/m1")"
head -1 "$tmp/cache/devices.txt" | grep -qx '# hearth devices v3' || fail "cache is not v3"
awk -F'\t' '$1 == "cpu" && NF == 9 && $4 + 0 > 0 && $5 + 0 > 0 && $6 + 0 > 0 &&
            $7 ~ /(^|,)Q4_K:[0-9.]+/ && $8 ~ /(^|,)Q4_K:[0-9.]+/ { ok = 1 }
     END { exit !ok }' "$tmp/cache/devices.txt" \
    || fail "no cpu line with FLOP and attention rates, op latency and Q4_K rates in the cache: $(cat "$tmp/cache/devices.txt")"
"$bin" devices --rates > "$tmp/mr" 2> "$tmp/e" || fail "devices --rates exit $?: $(cat "$tmp/e")"
grep -Eq '^  matvec GB/s: Q4_K [0-9.]+, Q6_K [0-9.]+' "$tmp/mr" \
    || fail "devices --rates listed no per-type matvec rates: $(cat "$tmp/mr")"
grep -Eq '^  matmul GFLOP/s: Q4_K [0-9.]+, Q6_K [0-9.]+' "$tmp/mr" \
    || fail "devices --rates listed no per-type matmul rates: $(cat "$tmp/mr")"
grep -Eq '^  attention GFLOP/s: [0-9.]+' "$tmp/mr" \
    || fail "devices --rates listed no attention rate: $(cat "$tmp/mr")"
"$bin" devices > "$tmp/m2" 2> "$tmp/e" || fail "devices (cached) exit $?"
grep -Eq '^cpu .*\(cached\)$' "$tmp/m2" \
    || fail "second devices run measured again: $(cat "$tmp/m2")"
"$bin" devices --measure > "$tmp/m3" 2> "$tmp/e" || fail "devices --measure exit $?"
grep -Eq '^cpu .*\(measured now\)$' "$tmp/m3" || fail "--measure did not measure: $(cat "$tmp/m3")"
"$bin" plan "$smol" > "$tmp/plan" 2>&1 || fail "plan exit $?: $(cat "$tmp/plan")"
grep -Eq '^cpu .* GB/s \(measured\)$' "$tmp/plan" || fail "plan does not use the measured figure"
grep -q 'cpu: memory bandwidth measured on this machine' "$tmp/plan" \
    || fail "plan gives no reason for the measured figure"
grep -Eq 'cpu: FLOP rate [0-9.]+ GFLOP/s measured on this machine' "$tmp/plan" \
    || fail "plan gives no reason for the measured FLOP rate"
grep -Eq 'cpu: one-token matmuls read [0-9.]+ GB/s of Q4_K .*an op costs [0-9.]+ us, measured' \
    "$tmp/plan" || fail "plan gives no reason for the measured decode figures"
grep -Eq 'decode .*ops x [0-9.]+ us, measured' "$tmp/plan" \
    || fail "the decode term does not use the measured op latency: $(grep decode "$tmp/plan")"
grep 'cpu figures assumed, not measured' "$tmp/plan" | grep -q 'FLOP rate' \
    && fail "plan still calls the measured cpu FLOP rate assumed"
"$bin" plan "$smol" --json > "$tmp/plan.json" 2>&1 || fail "plan --json exit $?"
grep -Eq '"name": "cpu".*"assumed": \{[^}]*"flops": false\}, "measured": \{[^}]*"flops": true\}' \
    "$tmp/plan.json" || fail "plan --json: cpu flops not measured: $(grep '"cpu"' "$tmp/plan.json")"
# a v2 cache: no decode figures; devices measures them and rewrites it as v3
awk -F'\t' -v OFS='\t' 'NR == 1 { print "# hearth devices v2"; next } { print $1, $2, $3, $4, $9 }' \
    "$tmp/cache/devices.txt" > "$tmp/v2" && cp "$tmp/v2" "$tmp/cache/devices.txt"
"$bin" plan "$smol" > "$tmp/plan" 2>&1 || fail "plan with a v2 cache exit $?"
grep 'cpu figures assumed, not measured' "$tmp/plan" | grep -q 'matvec rate' \
    || fail "a v2 cache's missing matvec rate is not called assumed: $(grep assumed "$tmp/plan")"
"$bin" devices > "$tmp/m5" 2> "$tmp/e" || fail "devices over a v2 cache exit $?: $(cat "$tmp/e")"
grep -Eq '^cpu .*\(cached; rates measured now\)$' "$tmp/m5" \
    || fail "devices did not measure the rates a v2 entry lacks: $(cat "$tmp/m5")"
head -1 "$tmp/cache/devices.txt" | grep -qx '# hearth devices v3' || fail "v2 cache not rewritten"
# a v1 cache: bandwidths read, FLOP rates measured now and the file rewritten as v3
awk -F'\t' -v OFS='\t' 'NR == 1 { print "# hearth devices v1"; next } { print $1, $2, $3, $9 }' \
    "$tmp/cache/devices.txt" > "$tmp/v1" && cp "$tmp/v1" "$tmp/cache/devices.txt"
awk -F'\t' '$1 == "cpu" && NF == 4 { ok = 1 } END { exit !ok }' "$tmp/cache/devices.txt" \
    || fail "v1 fixture not made: $(cat "$tmp/cache/devices.txt")"
"$bin" plan "$smol" > "$tmp/plan" 2>&1 || fail "plan with a v1 cache exit $?"
grep -Eq '^cpu .* GB/s \(measured\)$' "$tmp/plan" || fail "a v1 cache's bandwidth was not used"
grep 'cpu figures assumed, not measured' "$tmp/plan" | grep -q 'FLOP rate' \
    || fail "a v1 cache's missing FLOP rate is not called assumed"
"$bin" devices > "$tmp/m4" 2> "$tmp/e" || fail "devices over a v1 cache exit $?: $(cat "$tmp/e")"
grep -Eq '^cpu .*\(cached; rates measured now\)$' "$tmp/m4" \
    || fail "devices did not measure the FLOP rate a v1 entry lacks: $(cat "$tmp/m4")"
head -1 "$tmp/cache/devices.txt" | grep -qx '# hearth devices v3' || fail "v1 cache not rewritten"
awk -F'\t' '$1 == "cpu" && NF == 9 && $4 + 0 > 0 && $7 ~ /Q4_K:/ && $8 ~ /Q4_K:/ { ok = 1 }
     END { exit !ok }' \
    "$tmp/cache/devices.txt" || fail "v1 entry not completed: $(cat "$tmp/cache/devices.txt")"
echo "garbage" > "$tmp/cache/devices.txt"
"$bin" plan "$smol" > "$tmp/plan" 2>&1 || fail "plan with a bad cache exit $?"
grep -q 'bandwidth cache .*devices.txt line 1' "$tmp/plan" || fail "no note for a bad cache"
grep -Eq '^cpu .* GB/s \(assumed\)$' "$tmp/plan" || fail "a bad cache was trusted"
"$bin" devices --no-bandwidth --measure > /dev/null 2>&1
[ $? -eq 2 ] || fail "--no-bandwidth --measure should be a usage error"
unset HEARTH_CACHE_DIR

[ $fails -eq 0 ] && echo "cli-devices: all passed"
[ $fails -eq 0 ]
