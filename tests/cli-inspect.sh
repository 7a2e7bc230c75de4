#!/usr/bin/env bash
# cli-inspect: `hearth inspect` on the two real models (text and --json), on a
# truncated copy, on a missing file and without arguments.
set -u
bin=${HEARTH_BIN:?HEARTH_BIN must name the hearth binary}
src=${HEARTH_SOURCE_DIR:?HEARTH_SOURCE_DIR must name the source tree}
models=${HEARTH_MODELS_DIR:-$src/models}
smol=$models/SmolLM2-135M-Instruct.Q4_1.gguf
gemma=$models/gemma-3-270m-Q4_K_M.gguf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
for m in "$smol" "$gemma"; do
    [ -f "$m" ] || { echo "FAIL: model $m not found: run bash scripts/fetch-models.sh"; exit 1; }
done

# expect_line FILE LABEL VALUE: a summary line "  LABEL   VALUE..." exists
expect_line() {
    grep -Eq "^  $2 +$3( |\$)" "$1" || fail "$(basename "$1"): no line '$2 $3'"
}

"$bin" inspect "$smol" > "$tmp/smol.txt" 2> "$tmp/err.txt" || fail "inspect smollm2 exit $?"
expect_line "$tmp/smol.txt" arch llama
expect_line "$tmp/smol.txt" blocks 30
expect_line "$tmp/smol.txt" embedding 576
expect_line "$tmp/smol.txt" heads 9
expect_line "$tmp/smol.txt" "KV heads" 3
expect_line "$tmp/smol.txt" "FFN size" 1536
expect_line "$tmp/smol.txt" "vocab size" 49152
expect_line "$tmp/smol.txt" "RoPE base" 100000
grep -q 'tokenizer.ggml.tokens (array) = \[49152 strings: "<|endoftext|>", "<|im_start|>", "<|im_end|>", ... \]' \
    "$tmp/smol.txt" || fail "abbreviated token array not shown"
grep -Eq 'tokenizer.chat_template .*\.\.\. \([0-9]+ bytes\)' "$tmp/smol.txt" \
    || fail "long chat template not cut with its length"
grep -Eq '^  token_embd.weight +Q8_0 +\[576, 49152\] +30081024 +0$' "$tmp/smol.txt" \
    || fail "token_embd row wrong"
grep -Eq '^  Q4_1 +210 +66355200 ' "$tmp/smol.txt" || fail "Q4_1 total wrong"
grep -q '^bits per weight: ' "$tmp/smol.txt" || fail "no bits per weight"

"$bin" inspect --json "$smol" > "$tmp/smol.json" || fail "inspect --json exit $?"
python3 -m json.tool "$tmp/smol.json" > /dev/null || fail "smollm2 JSON does not parse"
python3 - "$tmp/smol.json" <<'PY' || fail "smollm2 JSON fields"
import json, sys
d = json.load(open(sys.argv[1]))
a = d["architecture"]
want = {"arch": "llama", "blocks": 30, "embedding": 576, "heads": 9, "kv_heads": 3,
        "ffn": 1536, "vocab": 49152, "context": 8192, "tokenizer": "gpt2",
        "tokenizer_pre": "smollm", "tied": True}
bad = {k: (a.get(k), v) for k, v in want.items() if a.get(k) != v}
assert not bad, bad
assert len(d["tensors"]) == 272
assert d["total_bytes"] == 96576768, d["total_bytes"]
kv = {m["key"]: m for m in d["metadata"]}
assert kv["tokenizer.ggml.tokens"]["count"] == 49152
assert kv["tokenizer.chat_template"]["value"].startswith("{% for message in messages %}")
assert kv["tokenizer.chat_template"]["length"] == len(kv["tokenizer.chat_template"]["value"].encode())
q41 = [t for t in d["totals"] if t["type"] == "Q4_1"][0]
assert q41["count"] == 210
PY

"$bin" inspect "$gemma" > "$tmp/gemma.txt" || fail "inspect gemma exit $?"
expect_line "$tmp/gemma.txt" arch gemma3
expect_line "$tmp/gemma.txt" blocks 18
expect_line "$tmp/gemma.txt" embedding 640
expect_line "$tmp/gemma.txt" heads 4
expect_line "$tmp/gemma.txt" "KV heads" 1
expect_line "$tmp/gemma.txt" "head dim" 256
expect_line "$tmp/gemma.txt" "FFN size" 2048
expect_line "$tmp/gemma.txt" context 32768
expect_line "$tmp/gemma.txt" "RoPE base" 1000000
expect_line "$tmp/gemma.txt" "sliding window" 512
expect_line "$tmp/gemma.txt" "vocab size" 262144
"$bin" inspect --json "$gemma" > "$tmp/gemma.json" || fail "gemma --json exit $?"
python3 - "$tmp/gemma.json" <<'PY' || fail "gemma JSON fields"
import json, sys
d = json.load(open(sys.argv[1]))
a = d["architecture"]
want = {"arch": "gemma3", "blocks": 18, "embedding": 640, "heads": 4, "kv_heads": 1,
        "head_dim_k": 256, "ffn": 2048, "vocab": 262144, "sliding_window": 512,
        "tokenizer": "llama"}
bad = {k: (a.get(k), v) for k, v in want.items() if a.get(k) != v}
assert not bad, bad
assert len(d["tensors"]) == 236
PY

# a truncated file: exit 1, the message names the file and an offset
head -c 10000 "$smol" > "$tmp/trunc.gguf"
"$bin" inspect "$tmp/trunc.gguf" > /dev/null 2> "$tmp/err.txt"
rc=$?
[ $rc -eq 1 ] || fail "truncated file: exit $rc, want 1"
grep -q "trunc.gguf" "$tmp/err.txt" || fail "truncated file: message does not name the file"
grep -q "offset [0-9]" "$tmp/err.txt" || fail "truncated file: message has no offset"

"$bin" inspect "$tmp/missing.gguf" > /dev/null 2> "$tmp/err.txt"
rc=$?
[ $rc -eq 1 ] || fail "missing file: exit $rc, want 1"
grep -q "missing.gguf" "$tmp/err.txt" || fail "missing file: message does not name the file"

"$bin" inspect > /dev/null 2> "$tmp/err.txt"
rc=$?
[ $rc -eq 2 ] || fail "no arguments: exit $rc, want 2"
grep -q "usage" "$tmp/err.txt" || fail "no arguments: no usage"
"$bin" inspect --bogus "$smol" > /dev/null 2>&1
rc=$?
[ $rc -eq 2 ] || fail "unknown flag: exit $rc, want 2"

[ $fails -eq 0 ] && echo "cli-inspect: all checks passed"
exit $((fails > 0))
