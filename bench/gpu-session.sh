#!/usr/bin/env bash
# bench/gpu-session.sh: what every open GPU issue asks of a lent machine, in
# as few device calls as the plan allows, most important first.
#
# Why: the machine is handed back 30 s after a call returns (status:
# idle_release_s), a fresh start costs minutes, and twice on 2026-11-23 a later
# call found no machine lent at all. So one call carries a whole plan, and a
# slow step must not starve the rest: every step runs under its own cap and
# the call's deadline (DEADLINE s from the start, default 570 of the tool's
# 600), and a step with under 15 s left is skipped and named.
#
#   PLAN=first (default): CUDA tests (bench/gpu-run.sh build test), kernel
#     bench (bench), then bench/gpu-e2e.sh build devices, tg graph, kv, swa,
#     serve, vulkan, partial
#   PLAN=second: compute-sanitizer (gpu-run.sh sanitize), then gpu-e2e.sh
#     plan70, iq, iq70 (the 70B files take minutes to write)
#   PLAN="step step ...": any of the step names below, in that order
#
# Output: $OUT/summary.txt (each step's own summary lines and rc, in order) and
# $OUT/session.tar.gz (every log and result file): two files, inside the tool's
# limit of 8. Command: bash bench/gpu-session.sh, carry [".gpu"], timeout_s 600.
set -u
OUT=${OUT:?set OUT to the output folder}
cd "$(dirname "$0")/.." || exit 1
W=${WORK:-/tmp/gpu-session}
rm -rf "$W"
mkdir -p "$W/run" "$W/e2e"
T0=$(date +%s)
DEADLINE=${DEADLINE:-570}
S=$OUT/summary.txt
left() { echo $((DEADLINE - ($(date +%s) - T0))); }

# step NAME CAP SCRIPT STEPS: one run of bench/gpu-run.sh or gpu-e2e.sh
step() {
    local name=$1 cap=$2 script=$3 steps=$4 l t rc sub
    l=$(left)
    if [ "$l" -lt 15 ]; then
        echo "== $name: skipped, $l s left of the call's $DEADLINE" >>"$S"
        return
    fi
    [ "$cap" -gt "$l" ] && cap=$l
    case $script in *run*) sub=$W/run ;; *) sub=$W/e2e ;; esac
    : >"$sub/summary.txt"
    t=$(date +%s)
    OUT=$sub STEPS=$steps timeout -k 5 "$cap" bash "$script" >>"$W/$name.log" 2>&1
    rc=$?
    cat "$sub/summary.txt" >>"$S"
    echo "== $name: rc=$rc in $(($(date +%s) - t)) s (cap $cap)" >>"$S"
    cat "$sub/summary.txt" >>"$W/summary-all.txt"
}

PLAN=${PLAN:-first}
case $PLAN in
first) PLAN="test bench e2e-build tg kv swa serve vulkan partial" ;;
second) PLAN="sanitize plan70 iq iq70" ;;
esac
echo "== gpu-session: plan \"$PLAN\", deadline $DEADLINE s, $(nvidia-smi -L 2>/dev/null | head -1)" >"$S"
for s in $PLAN; do
    case $s in
    test) step test 150 bench/gpu-run.sh "build test" ;;
    bench) step bench 120 bench/gpu-run.sh "bench" ;;
    sanitize) step sanitize 300 bench/gpu-run.sh "build sanitize" ;;
    e2e-build) step e2e-build 90 bench/gpu-e2e.sh "build devices" ;;
    tg) step tg 120 bench/gpu-e2e.sh "tg graph" ;;
    kv) step kv 200 bench/gpu-e2e.sh "kv" ;;
    swa) step swa 90 bench/gpu-e2e.sh "swa" ;;
    serve) step serve 100 bench/gpu-e2e.sh "serve" ;;
    vulkan) step vulkan 180 bench/gpu-e2e.sh "vulkan" ;;
    partial) step partial 90 bench/gpu-e2e.sh "partial" ;;
    plan70) step plan70 400 bench/gpu-e2e.sh "plan70" ;;
    iq) step iq 90 bench/gpu-e2e.sh "iq" ;;
    iq70) step iq70 300 bench/gpu-e2e.sh "iq70" ;;
    *) echo "== unknown step $s" >>"$S" ;;
    esac
done
echo "== gpu-session: done in $(($(date +%s) - T0)) s" >>"$S"
tar -C "$W" -czf "$OUT/session.tar.gz" . 2>/dev/null
cat "$S"
