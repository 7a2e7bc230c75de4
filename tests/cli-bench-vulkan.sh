#!/usr/bin/env bash
# cli-bench-vulkan: bench/bench-vulkan.c keeps working where no GPU checks it
# between lent sessions. On lavapipe, two small decode shapes for two types and
# one prefill shape: exit 0, a measured copy bandwidth, one row per type and
# shape with a time and a share of that bandwidth, the same rows in BENCH_CSV
# (the columns bench/vk-cuda-ratio.sh joins on), and that script's ratio rows
# against a CSV in bench-cuda's form. Bad flags exit 2. Speeds are not
# checked (tests never assert speed). No Vulkan device: skipped (77) unless
# CI=true.
set -u
bin=${HEARTH_BIN:?HEARTH_BIN must name the hearth binary}
src=${HEARTH_SOURCE_DIR:?HEARTH_SOURCE_DIR must name the source tree}
bench=$(dirname "$bin")/bench-vulkan
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
[ -x "$bench" ] || { echo "FAIL: $bench not built"; exit 1; }
if ! "$bin" devices --no-bandwidth 2>/dev/null | grep -Eq '^vulkan0 '; then
    if [ "${CI:-}" = "true" ] && "$bin" devices --no-bandwidth 2>/dev/null |
        grep -Eq '^backends built:.* vulkan'; then
        echo "FAIL: CI=true, Vulkan built, but no vulkan0 device"
        exit 1
    fi
    echo "SKIP: no vulkan0 device in this build / on this machine"
    exit 77
fi

BENCH_CSV="$tmp/vk.csv" "$bench" -d 0 --small --shape 96x256 --shape 32x512 Q4_K Q8_0 \
    > "$tmp/out" 2> "$tmp/err" || fail "bench-vulkan exit $?: $(cat "$tmp/err")"
cat "$tmp/out"
grep -Eq '^device: .*subgroup' "$tmp/out" || fail "no device line"
grep -Eq '^copy bandwidth .*: [0-9]+\.[0-9] GB/s$' "$tmp/out" || fail "no copy bandwidth line"
for t in Q4_K Q8_0; do
    for s in "96 x 256" "32 x 512"; do
        grep -Eq "^matvec +$t +$s +[0-9]+\.[0-9] us +[0-9]+\.[0-9] GB/s +[0-9]+\.[0-9] % of copy$" \
            "$tmp/out" || fail "no matvec row for $t $s"
    done
    grep -Eq "^prefill $t +96 x 256 +x 32 tok +[0-9]+\.[0-9] us" "$tmp/out" \
        || fail "no prefill row for $t"
done
grep -q FAILED "$tmp/out" && fail "a row failed"
[ "$(sed -n 1p "$tmp/vk.csv")" = "kind,type,n,k,us,gbps_or_tflops,frac_copy" ] \
    || fail "CSV header: $(sed -n 1p "$tmp/vk.csv")"
[ "$(grep -c '^matvec,' "$tmp/vk.csv")" -eq 4 ] || fail "CSV matvec rows: $(cat "$tmp/vk.csv")"
[ "$(grep -c '^prefill_vk,' "$tmp/vk.csv")" -eq 4 ] || fail "CSV prefill rows: $(cat "$tmp/vk.csv")"
awk -F, '$1 == "copy" && $6 > 0 { ok = 1 } END { exit !ok }' "$tmp/vk.csv" || fail "CSV copy row"

# the ratio script against a CUDA CSV whose figures are twice Vulkan's (decode) and half
# (prefill, on the faster of its two paths): ratios 0.50 and 2.00
awk -F, -v OFS=, 'NR == 1 { print; next }
    $1 == "copy" { print; next }
    $1 == "matvec" { $6 = 2 * $6; print; $1 = "matvec-q8"; $6 = $6 / 4; print; next }
    { $1 = "prefill_mma"; $6 = $6 / 2; print; $1 = "prefill_cublas"; $6 = $6 / 2; print }' \
    "$tmp/vk.csv" > "$tmp/cu.csv"
bash "$src/bench/vk-cuda-ratio.sh" "$tmp/cu.csv" "$tmp/vk.csv" > "$tmp/ratio" 2>&1 \
    || fail "vk-cuda-ratio exit $?: $(cat "$tmp/ratio")"
cat "$tmp/ratio"
[ "$(grep -Ec '^decode +Q(4_K|8_0) [0-9x]+ .* 0\.50 +0\.9 +matvec \(GB/s\) +below goal$' \
    "$tmp/ratio")" -eq 4 ] || fail "decode ratio rows"
[ "$(grep -Ec '^prefill +Q(4_K|8_0) [0-9x]+ .* 2\.00 +0\.7 +prefill_mma \(TFLOP/s\)$' \
    "$tmp/ratio")" -eq 4 ] || fail "prefill ratio rows"
bash "$src/bench/vk-cuda-ratio.sh" "$tmp/cu.csv" > /dev/null 2>&1
[ $? -eq 2 ] || fail "vk-cuda-ratio with one file: exit not 2"

"$bench" --shape 12x100 > /dev/null 2>&1
[ $? -eq 2 ] || fail "--shape with K not a multiple of 256: exit not 2"
"$bench" NOT_A_TYPE > /dev/null 2>&1
[ $? -eq 2 ] || fail "unknown type: exit not 2"

[ $fails -eq 0 ] && echo "cli-bench-vulkan: all passed"
exit $((fails > 0))
