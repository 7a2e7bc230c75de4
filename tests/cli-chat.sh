#!/usr/bin/env bash
# cli-chat: `hearth chat` fed from a pipe on SmolLM2-135M (greedy).
#  - two turns: both replies appear, and the second refers to the first (asked
#    which word it was told to remember, it says "banana", which it does not
#    say when asked the same question alone: SmolLM2-135M does not reliably
#    recall a name, but does repeat this word);
#  - /reset: the same question after it gives exactly the no-history reply;
#  - /exit quits with 0 and later lines are not read; EOF quits with 0;
#  - the second turn evaluates only the new tokens (--stats line).
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

t1='Remember the word "banana".'
t2='What word did I ask you to remember?'
chat() { "$bin" chat -m "$smol" --temp 0 -n 40 "$@"; }

# reference replies, one turn each (EOF ends the session)
printf '%s\n' "$t1" | chat -q > "$tmp/r1" 2> "$tmp/e" || fail "chat (t1) exit $?"
printf '%s\n' "$t2" | chat -q > "$tmp/alone" 2>> "$tmp/e" || fail "chat (t2) exit $?"
[ -s "$tmp/e" ] && fail "-q printed on stderr: $(cat "$tmp/e")"
[ -s "$tmp/r1" ] || fail "no first reply"
grep -q banana "$tmp/alone" && fail "reply without history already says banana: $(cat "$tmp/alone")"

# the conversation: t1, t2, /reset, t2, /exit, then a line that must not be read
printf '%s\n%s\n/reset\n%s\n/exit\n%s\n' "$t1" "$t2" "$t2" "$t1" \
    | chat --stats > "$tmp/out" 2> "$tmp/err"
rc=$?
[ $rc -eq 0 ] || fail "chat exit $rc after /exit: $(cat "$tmp/err")"
n_stats=$(grep -c '^prompt: ' "$tmp/err")
[ "$n_stats" -eq 3 ] || fail "$n_stats replies, expected 3 (/exit must stop reading)"
r1_len=$(stat -c %s "$tmp/r1")
head -c "$r1_len" "$tmp/out" | cmp -s - "$tmp/r1" \
    || fail "first reply differs from the one-turn run"
# the rest: reply 2, then reply 3 (the same as the no-history reply)
tail -c +$((r1_len + 1)) "$tmp/out" > "$tmp/rest"
alone_len=$(stat -c %s "$tmp/alone")
rest_len=$(stat -c %s "$tmp/rest")
head -c $((rest_len - alone_len)) "$tmp/rest" > "$tmp/r2"
tail -c "$alone_len" "$tmp/rest" | cmp -s - "$tmp/alone" \
    || fail "after /reset the reply is not the no-history reply"
[ -s "$tmp/r2" ] || fail "no second reply"
echo "second reply: $(cat "$tmp/r2")"
grep -q banana "$tmp/r2" || fail "second reply does not recall the word: $(cat "$tmp/r2")"
cmp -s "$tmp/r2" "$tmp/alone" && fail "second reply ignores the history"
grep -q '^> ' "$tmp/out" && fail "prompt decoration printed although stdin is a pipe"
grep -q '(history cleared)' "$tmp/err" || fail "/reset not acknowledged on stderr"

# KV reuse: turn 2 evaluates only its own tokens (fewer than the whole prompt)
p1=$(sed -nE '1s/^prompt: ([0-9]+) tokens.*/\1/p' <(grep '^prompt: ' "$tmp/err"))
p2=$(sed -nE '2s/^prompt: ([0-9]+) tokens.*/\1/p' <(grep '^prompt: ' "$tmp/err"))
[ -n "$p1" ] && [ -n "$p2" ] && [ "$p2" -lt $((p1 + 40)) ] \
    || fail "turn 2 evaluated $p2 tokens (turn 1: $p1): history not reused"

# EOF quits cleanly; an unknown flag is a usage error
printf '' | chat -q > /dev/null 2>&1 || fail "EOF: exit $?"
"$bin" chat -m "$smol" --bogus < /dev/null > /dev/null 2>&1
[ $? -eq 2 ] || fail "--bogus: expected exit 2"

[ $fails -eq 0 ] && echo "cli-chat: all passed"
[ $fails -eq 0 ]
