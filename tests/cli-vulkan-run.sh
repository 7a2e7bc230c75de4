#!/usr/bin/env bash
# cli-vulkan-run: the end-to-end Vulkan check. `hearth run` on SmolLM2-135M,
# greedy, 32 tokens from a fixed prompt, must print the same text with every
# layer and the output head on vulkan0 (-ngl all) as on the CPU, and the same
# again with a mixed split (-ngl n_layer/2: the first half of the layers on
# vulkan0, the rest and the output head on the CPU, so the residual stream
# crosses devices every token). The mixed run also shows the placement line
# printed at load. Runs for real on lavapipe (slow: a few minutes there).
# Exact text is a strict bar, so the prompt is one whose greedy path has wide
# top-1/top-2 margins (the smallest is 2.3 logits on the CPU): prose prompts
# have margins under 0.4 logits over 32 tokens, and vulkan0 (f32 activations)
# differs from the CPU (8-bit activations) by up to ~0.7 logits, so a prose
# prompt would test rounding luck rather than kernels. A divergence reports the
# first differing word so that a late flip can be told from a broken kernel.
# Sanitizer builds skip this end-to-end run (lavapipe is slow; test-vulkan and
# test-vk-backend cover the Vulkan code under the sanitizers).
# No Vulkan device: skipped (exit 77), unless CI=true (CI installs lavapipe,
# so a missing device there is a failure).
# Validation: the two full runs go without the validation layer (it makes
# lavapipe ~2.5x slower). With HEARTH_VULKAN_VALIDATE=1 (CI), a shortened run
# follows (-ngl all, 4 tokens, validation on, and buffers capped at 8 MiB by
# HEARTH_VULKAN_MAX_BUFFER so the head runs split in 4 row parts, the plan
# saying so first), which must print the first
# words of the CPU's text and exit 0: any validation warning or error fails
# the next submission (vulkan/command.c), so hearth exits with the message.
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
if [ -n "${HEARTH_SANITIZED:-}" ]; then
    echo "SKIP: sanitizer build (see the comment at the top)"
    exit 77
fi

"$bin" devices --no-bandwidth > "$tmp/dev" 2>&1
if ! grep -Eq '^vulkan0 ' "$tmp/dev"; then
    if [ "${CI:-}" = "true" ]; then
        echo "FAIL: CI=true but no vulkan0 device (is lavapipe installed, and the build" \
            "configured with -DHEARTH_VULKAN=ON?):"
        cat "$tmp/dev"
        exit 1
    fi
    echo "SKIP: no vulkan0 device in this build / on this machine"
    exit 77
fi
grep '^vulkan0 ' "$tmp/dev"

"$bin" inspect "$smol" > "$tmp/info" || { echo "FAIL: inspect"; exit 1; }
n_layer=$(sed -nE 's/^  blocks +([0-9]+).*/\1/p' "$tmp/info" | head -1)
[ -n "$n_layer" ] || { echo "FAIL: no block count from inspect"; exit 1; }
half=$((n_layer / 2))

p="2, 4, 6, 8, 10, 12,"
common=(-m "$smol" -p "$p" --temp 0 -n 32 -c 256 -t 2)
"$bin" run "${common[@]}" -q --device cpu > "$tmp/cpu" 2> "$tmp/ecpu" \
    || fail "--device cpu exit $?: $(cat "$tmp/ecpu")"
[ -s "$tmp/cpu" ] || fail "no text from the CPU run"
echo "cpu:          $(cat "$tmp/cpu")"

# the first differing word, to tell a late divergence (rounding) from garbage
words() { tr -s ' \n' '\n\n' < "$1" | sed '/^$/d'; }
first_diff() {
    paste -d '\n' <(words "$1") <(words "$2") | awk '
        NR % 2 == 1 { a = $0; next }
        { i++; if (a != $0) { print "word " i ": \"" a "\" vs \"" $0 "\""; exit } }'
}

t0=$(date +%s)
env -u HEARTH_VULKAN_VALIDATE "$bin" run "${common[@]}" -q --device vulkan0 -ngl all > "$tmp/vk" 2> "$tmp/evk" \
    || fail "--device vulkan0 -ngl all exit $?: $(cat "$tmp/evk")"
echo "vulkan0 all:  $(cat "$tmp/vk")   ($(($(date +%s) - t0)) s)"
[ -s "$tmp/evk" ] && fail "-q printed on stderr: $(cat "$tmp/evk")"
cmp -s "$tmp/cpu" "$tmp/vk" ||
    fail "-ngl all on vulkan0 differs from the CPU at $(first_diff "$tmp/cpu" "$tmp/vk")"

t0=$(date +%s)
env -u HEARTH_VULKAN_VALIDATE "$bin" run "${common[@]}" --device vulkan0 -ngl "$half" > "$tmp/mix" 2> "$tmp/emix" \
    || fail "--device vulkan0 -ngl $half exit $?: $(cat "$tmp/emix")"
echo "vulkan0 $half:   $(cat "$tmp/mix")   ($(($(date +%s) - t0)) s)"
echo "load line:    $(grep '^plan: ' "$tmp/emix")"
want="^plan: layers 0-$((half - 1)) attention\+ffn on vulkan0, layers $half-$((n_layer - 1)) "
want+="attention\+ffn on cpu, output on cpu; [0-9]+ MiB on vulkan0, [0-9]+ MiB host \(-ngl $half\); "
want+="predicted [0-9]+ tok/s prefill \([0-9]+-token prompt\), [0-9]+\.[0-9][0-9] tok/s decode"
grep -Eq "$want" "$tmp/emix" || fail "no (or a wrong) placement line at load: $(cat "$tmp/emix")"
cmp -s "$tmp/cpu" "$tmp/mix" ||
    fail "-ngl $half on vulkan0 differs from the CPU at $(first_diff "$tmp/cpu" "$tmp/mix")"

# a driver whose buffers stop at 8 MiB (HEARTH_VULKAN_MAX_BUFFER): the 29 MiB head goes to
# vulkan0 in 4 row parts, as the plan says (with 64-token batches: the 512-token scratch
# is 12 MiB); the validated run below computes with them
cap=(env HEARTH_VULKAN_MAX_BUFFER=8388608)
"${cap[@]}" "$bin" plan "$smol" -ngl 99 -c 64 -b 64 > "$tmp/plan8" 2>&1 || fail "plan 8 MiB exit $?"
grep -q 'token_embd.weight (LM head, 29 MiB Q8_0) on vulkan0 in 4 buffers by rows' "$tmp/plan8" \
    || fail "8 MiB buffers: head not split in 4: $(grep 'LM head' "$tmp/plan8")"

if [ "${HEARTH_VULKAN_VALIDATE:-}" = "1" ]; then
    t0=$(date +%s)
    short=(-m "$smol" -p "$p" --temp 0 -n 4 -c 64 -t 2)
    "${cap[@]}" "$bin" run "${short[@]}" -b 64 -q --device vulkan0 -ngl all > "$tmp/val" 2> "$tmp/eval" \
        || fail "validated run (-ngl all, 4 tokens, head in 4 parts) exit $?: $(cat "$tmp/eval")"
    echo "validated:    $(cat "$tmp/val")   ($(($(date +%s) - t0)) s)"
    [ -s "$tmp/val" ] || fail "no text from the validated run"
    case "$(cat "$tmp/cpu")" in
        "$(cat "$tmp/val")"*) ;;
        *) fail "the validated 4-token run is not a prefix of the CPU text: $(cat "$tmp/val")" ;;
    esac
else
    echo "note: HEARTH_VULKAN_VALIDATE is not 1: no validated run"
fi

# --vram-budget caps the planner's view of the device: 40 MiB is inside the GPU
# reserve (nothing fits), 320 MiB leaves ~60 MiB (part of the model), and the
# whole model fits without a cap (checked above)
"$bin" run --device vulkan0 --vram-budget 40MiB -c 128 -n 1 -p Hi --temp 0 > /dev/null \
    2> "$tmp/b40" || fail "--vram-budget 40MiB exit $?: $(cat "$tmp/b40")"
grep -q '^plan: all [0-9]* layers and output on cpu' "$tmp/b40" \
    || fail "--vram-budget 40MiB still used the device: $(grep '^plan' "$tmp/b40")"
"$bin" run --device vulkan0 --vram-budget 320MiB -c 128 -n 1 -p Hi --temp 0 > /dev/null \
    2> "$tmp/b320" || fail "--vram-budget 320MiB exit $?: $(cat "$tmp/b320")"
grep '^plan: ' "$tmp/b320" | grep -q 'on vulkan0.*on cpu' \
    || fail "--vram-budget 320MiB: expected a split: $(grep '^plan' "$tmp/b320")"
"$bin" run --device vulkan0 --vram-budget 0 -n 1 -p Hi > /dev/null 2>&1
[ $? -eq 2 ] || fail "--vram-budget 0 should be a usage error"

[ $fails -eq 0 ] && echo "cli-vulkan-run: all passed"
[ $fails -eq 0 ]
