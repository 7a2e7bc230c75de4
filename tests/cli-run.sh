#!/usr/bin/env bash
# cli-run: `hearth run` on SmolLM2-135M. The model answers a simple question
# (greedy, chat template) with "Paris"; greedy output is identical across runs
# and across -t 1 / -t 2 and -b 2 (2-token prefill batches); -q keeps stderr empty;
# without -q stderr has the
# seed and the tokens/s line; --print-ids prints 24 token ids, alike across threads;
# --swa-full is taken (and in every command's help) and leaves SmolLM2's text alone;
# -f FILE reads the prompt (same text as -p); -l/--logit-bias forces or bans a token (an
# id past the vocabulary: exit 1 naming it);
# bad model path -> exit 1 naming it; bad flags -> exit 2; peak RSS of a -c 2048 run
# stays within file + KV cache + 64 MB.
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

q="What is the capital of France?"
"$bin" run -m "$smol" --chat -p "$q" --temp 0 -n 32 -q > "$tmp/a1" 2> "$tmp/e1" \
    || fail "run exit $?: $(cat "$tmp/e1")"
echo "answer: $(cat "$tmp/a1")"
grep -q "Paris" "$tmp/a1" || fail "answer has no 'Paris': $(cat "$tmp/a1")"
[ -s "$tmp/e1" ] && fail "-q printed on stderr: $(cat "$tmp/e1")"

# greedy determinism: same run again, and with 1 and 2 threads
p="The history of the printing press"
"$bin" run -m "$smol" -p "$p" --temp 0 -n 24 -q -t 1 > "$tmp/t1" 2>&1 || fail "-t 1 exit $?"
"$bin" run -m "$smol" -p "$p" --temp 0 -n 24 -q -t 2 > "$tmp/t2" 2>&1 || fail "-t 2 exit $?"
"$bin" run -m "$smol" -p "$p" --temp 0 -n 24 -q -t 2 > "$tmp/t3" 2>&1 || fail "-t 2 (again) exit $?"
[ -s "$tmp/t1" ] || fail "no output with -t 1"
cmp -s "$tmp/t1" "$tmp/t2" || fail "-t 1 and -t 2 differ: '$(cat "$tmp/t1")' vs '$(cat "$tmp/t2")'"
cmp -s "$tmp/t2" "$tmp/t3" || fail "two greedy runs differ"

# --print-ids: the same greedy path as ids (random-weight synth models print no text),
# one integer per generated token below SmolLM2's 49152-entry vocabulary, alike across threads
"$bin" run -m "$smol" -p "$p" --temp 0 -n 24 -q -t 1 --print-ids > "$tmp/i1" 2>&1 || fail "--print-ids exit $?"
"$bin" run -m "$smol" -p "$p" --temp 0 -n 24 -q -t 2 --print-ids > "$tmp/i2" 2>&1 || fail "--print-ids -t 2 exit $?"
n_ids=$(tr ' ' '\n' < "$tmp/i1" | grep -c .)
[ "$n_ids" -eq 24 ] || fail "--print-ids printed $n_ids items, not 24: $(cat "$tmp/i1")"
tr ' ' '\n' < "$tmp/i1" | grep . | awk '!/^[0-9]+$/ || $1 >= 49152 {bad=1} END {exit bad}' \
    || fail "--print-ids: not all token ids: $(cat "$tmp/i1")"
cmp -s "$tmp/i1" "$tmp/i2" || fail "--print-ids differs between -t 1 and -t 2"

# --swa-full: every command that builds a KV cache takes it (--help says so); SmolLM2 has
# no sliding-window layers, so its text is unchanged
"$bin" run -m "$smol" -p "$p" --temp 0 -n 24 -q -t 1 --swa-full > "$tmp/sf" 2>&1 \
    || fail "--swa-full exit $?: $(cat "$tmp/sf")"
cmp -s "$tmp/sf" "$tmp/t1" || fail "--swa-full changed SmolLM2's text: '$(cat "$tmp/sf")'"
for cmd in run chat bench perplexity serve plan; do
    "$bin" $cmd --help 2>&1 | grep -q 'no HTTP server' && continue
    "$bin" $cmd --help 2>&1 | grep -q -- '--swa-full' || fail "$cmd --help has no --swa-full"
done

# sampling with a seed is reproducible too; without -q the stats line and (no --seed) the seed
"$bin" run -m "$smol" -p "$p" -n 16 --seed 42 -q > "$tmp/s1" 2>&1 || fail "--seed exit $?"
"$bin" run -m "$smol" -p "$p" -n 16 --seed 42 -q > "$tmp/s2" 2>&1 || fail "--seed exit $?"
cmp -s "$tmp/s1" "$tmp/s2" || fail "same seed, different text"
"$bin" run -m "$smol" -p "$p" -n 8 > "$tmp/o" 2> "$tmp/e" || fail "run exit $?"
grep -Eq '^prompt: [0-9]+ tokens, [0-9.]+ tok/s \| generation: 8 tokens, [0-9.]+ tok/s$' "$tmp/e" \
    || fail "no stats line on stderr: $(cat "$tmp/e")"
grep -Eq '^seed: [0-9]+$' "$tmp/e" || fail "seed not printed: $(cat "$tmp/e")"
grep -q "\[" "$tmp/e" && fail "progress bar drawn although stderr is not a terminal"

# stop strings: the text stops right before the stop string
"$bin" run -m "$smol" -p "The quick brown fox" --temp 0 -n 24 -q --stop "bear" > "$tmp/st" 2>&1
[ "$(cat "$tmp/st")" = " with a quick brown " ] || fail "--stop output: '$(cat "$tmp/st")'"

# errors
"$bin" run -m "$tmp/missing.gguf" -p hi > /dev/null 2> "$tmp/e"
rc=$?
[ $rc -eq 1 ] || fail "missing model: exit $rc, expected 1"
grep -q "$tmp/missing.gguf" "$tmp/e" || fail "missing model not named: $(cat "$tmp/e")"
HEARTH_MODEL="$tmp/gone.gguf" "$bin" run -p hi > /dev/null 2> "$tmp/e"
rc=$?
[ $rc -eq 1 ] || fail "missing default model: exit $rc, expected 1"
grep -q "fetch-models.sh" "$tmp/e" || fail "missing default model: no hint: $(cat "$tmp/e")"
HEARTH_MODEL="$smol" "$bin" run -p "$p" --temp 0 -n 24 -q -t 1 > "$tmp/d" 2>&1 \
    || fail "default model run exit $?"
cmp -s "$tmp/d" "$tmp/t1" || fail "run without -m did not use the default model"
head -c 1000 "$smol" > "$tmp/trunc.gguf"
"$bin" run -m "$tmp/trunc.gguf" -p hi > /dev/null 2> "$tmp/e"
rc=$?
[ $rc -eq 1 ] || fail "truncated model: exit $rc, expected 1"
# a 7-token prompt in batches of 2 (-b): the CPU's rows do not depend on the batching
"$bin" run -m "$smol" -p "$p" --temp 0 -n 24 -q -t 1 -b 2 > "$tmp/b2" 2>&1 || fail "-b 2 exit $?"
cmp -s "$tmp/b2" "$tmp/t1" || fail "-b 2 differs: '$(cat "$tmp/b2")'"
# -f FILE: the prompt from a file gives the -p text; a missing file exits 1 naming it
printf '%s' "$p" > "$tmp/prompt.txt"
"$bin" run -m "$smol" -f "$tmp/prompt.txt" --temp 0 -n 24 -q -t 1 > "$tmp/f1" 2>&1 || fail "-f exit $?"
cmp -s "$tmp/f1" "$tmp/t1" || fail "-f differs from -p: '$(cat "$tmp/f1")'"
"$bin" run -m "$smol" -f "$tmp/none.txt" -q > /dev/null 2> "$tmp/e"
rc=$?
[ $rc -eq 1 ] && grep -q "none.txt" "$tmp/e" || fail "-f missing file: exit $rc: $(cat "$tmp/e")"
"$bin" run -m "$smol" -f "$tmp/prompt.txt" -p hi -q > /dev/null 2>&1
[ $? -eq 2 ] || fail "-f with -p: expected exit 2"
# -l/--logit-bias: 21285 is SmolLM2's " banana", 253 its " a" (the greedy first token here)
"$bin" run -m "$smol" -p "I like to eat" --temp 0 -n 3 -q -l 21285+100 > "$tmp/l1" 2>&1 \
    || fail "-l 21285+100 exit $?"
[ "$(cat "$tmp/l1")" = " banana banana banana" ] || fail "-l 21285+100: '$(cat "$tmp/l1")'"
"$bin" run -m "$smol" -p "I like to eat" --temp 0 -n 3 -q > "$tmp/l0" 2>&1 || fail "-l base exit $?"
"$bin" run -m "$smol" -p "I like to eat" --temp 0 -n 3 -q --logit-bias 253-inf > "$tmp/l2" 2>&1 \
    || fail "--logit-bias 253-inf exit $?"
case "$(cat "$tmp/l0")" in " a"*) ;; *) fail "greedy no longer starts with ' a': '$(cat "$tmp/l0")'" ;; esac
case "$(cat "$tmp/l2")" in " a"*) fail "253-inf did not ban ' a': '$(cat "$tmp/l2")'" ;; esac
"$bin" run -m "$smol" -p hi -q -l 49152+1 > /dev/null 2> "$tmp/e"
rc=$?
[ $rc -eq 1 ] && grep -q "logit_bias: token id 49152" "$tmp/e" \
    || fail "-l past the vocabulary: exit $rc: $(cat "$tmp/e")"
for args in "-n abc" "--temp -1" "--top-p 2" "-t 0" "--bogus" "-n" "-b 0" "--batch-size 5000" \
    "-l 5" "-l x+1" "-l 5+" "-l 5+-1" "-l 5*2"; do
    # shellcheck disable=SC2086
    "$bin" run -m "$smol" -p hi $args > /dev/null 2> "$tmp/e"
    rc=$?
    [ $rc -eq 2 ] || fail "'$args': exit $rc, expected 2"
    [ -s "$tmp/e" ] || fail "'$args': no message"
done
"$bin" run -m "$smol" > /dev/null 2>&1
[ $? -eq 2 ] || fail "no prompt: expected exit 2"

# peak RSS of a -c 2048 run: weights (mapped, all touched) + KV cache + 64 MB
if [ -x /usr/bin/time ]; then
    "$bin" inspect "$smol" > "$tmp/info"
    field() { sed -nE "s/^  $1 +([0-9]+).*/\1/p" "$tmp/info" | head -1; }
    n_layer=$(field blocks); n_embd=$(field embedding); n_head=$(field heads)
    n_kv=$(field "KV heads")
    head_dim=$((n_embd / n_head))
    kv=$((2 * n_layer * 2048 * n_kv * head_dim * 2))
    file=$(stat -c %s "$smol")
    limit_kb=$(((file + kv + 64 * 1024 * 1024) / 1024))
    /usr/bin/time -v "$bin" run -m "$smol" -p "$p" --temp 0 -n 64 -c 2048 -q \
        > /dev/null 2> "$tmp/time" || fail "RSS run failed"
    rss=$(sed -nE 's/.*Maximum resident set size \(kbytes\): ([0-9]+)/\1/p' "$tmp/time")
    echo "peak RSS ${rss} kB (limit ${limit_kb} kB: file $file B + KV $kv B + 64 MiB)"
    [ -n "$rss" ] && [ "$rss" -le "$limit_kb" ] || fail "peak RSS ${rss} kB > ${limit_kb} kB"
else
    "$bin" run -m "$smol" -p "$p" --temp 0 -n 8 -c 2048 -q --print-rss > /dev/null 2> "$tmp/e"
    echo "(no /usr/bin/time) $(cat "$tmp/e")"
fi

[ $fails -eq 0 ] && echo "cli-run: all passed"
[ $fails -eq 0 ]
