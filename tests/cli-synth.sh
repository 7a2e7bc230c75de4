#!/usr/bin/env bash
# cli-synth: `hearth synth` writes a small model that `hearth inspect` reads;
# a header-only 70B costs no disk; IQ2_XS files carry the mix's types per tensor;
# Qwen3's tensor list; --norm-std changes the norms only;
# bad flags exit 2 with a clear message.
set -u
bin=${HEARTH_BIN:?HEARTH_BIN must name the hearth binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# a 2-block SmolLM2-shaped model at Q8_0, read back by inspect
"$bin" synth --preset smollm2-135m --type q8_0 --layers 2 --seed 5 -o "$tmp/small.gguf" \
    > "$tmp/out.txt" 2>&1 || fail "synth exit $?: $(cat "$tmp/out.txt")"
grep -q "wrote $tmp/small.gguf" "$tmp/out.txt" || fail "synth did not report the file"
"$bin" inspect --json "$tmp/small.gguf" > "$tmp/small.json" || fail "inspect of synth file exit $?"
python3 - "$tmp/small.json" <<'PY' || fail "synth file content"
import json, sys
d = json.load(open(sys.argv[1]))
a = d["architecture"]
assert (a["arch"], a["blocks"], a["embedding"], a["heads"], a["kv_heads"], a["vocab"]) == \
    ("llama", 2, 576, 9, 3, 49152), a
assert a["tokenizer"] == "gpt2"
kv = {m["key"]: m for m in d["metadata"]}
assert kv["general.name"]["value"] == "hearth synth smollm2-135m Q8_0"
assert kv["general.file_type"]["value"] == 7
assert kv["tokenizer.ggml.tokens"]["value"][:3] == ["\u0100", "\u0101", "\u0102"]
types = {t["name"]: t["type"] for t in d["tensors"]}
assert len(types) == 20, len(types)
assert types["token_embd.weight"] == "Q8_0" and types["blk.1.ffn_down.weight"] == "Q8_0"
assert types["blk.0.attn_norm.weight"] == "F32"
PY

# header-only 70B: 39.6 GiB apparent size, almost no disk
"$bin" synth --preset llama3-70b --type Q4_K_M --header-only -o "$tmp/70b.gguf" > /dev/null \
    || fail "header-only 70B exit $?"
size=$(stat -c %s "$tmp/70b.gguf")
used=$(( $(stat -c %b "$tmp/70b.gguf") * $(stat -c %B "$tmp/70b.gguf") ))
[ "$size" -gt 42000000000 ] && [ "$size" -lt 43000000000 ] || fail "70B size $size"
[ "$used" -lt 67108864 ] || fail "70B file uses $used bytes of disk"
"$bin" inspect "$tmp/70b.gguf" | grep -Eq '^  blocks +80$' || fail "inspect of 70B header"

# IQ2_XS (the "70B on one 24 GB card" mix), per tensor as core/quant-mix's rules give it
# (facts sheet 7.4-7.6). Header-only Llama-3.2-1B (tied, 16 blocks, n/8 = 2, n_gqa = 4): the
# tied token_embd takes the output rule (Q5_K), attn_v Q4_K, ffn_down Q2_K in blocks 0-1.
"$bin" synth --preset llama3-1b --type iq2_xs --header-only -o "$tmp/iq1b.gguf" > /dev/null \
    || fail "header-only llama3-1b IQ2_XS exit $?"
"$bin" inspect --json "$tmp/iq1b.gguf" > "$tmp/iq1b.json" || fail "inspect of IQ2_XS header exit $?"
python3 - "$tmp/iq1b.json" <<'PY' || fail "llama3-1b IQ2_XS types"
import json, sys
d = json.load(open(sys.argv[1]))
kv = {m["key"]: m for m in d["metadata"]}
assert kv["general.file_type"]["value"] == 20, kv["general.file_type"]
types = {t["name"]: t["type"] for t in d["tensors"]}
want = {"token_embd.weight": "Q5_K", "output_norm.weight": "F32", "rope_freqs.weight": "F32"}
for i in range(16):
    b = "blk.%d." % i
    want.update({b + "attn_q.weight": "IQ2_XS", b + "attn_k.weight": "IQ2_XS",
                 b + "attn_v.weight": "Q4_K", b + "attn_output.weight": "IQ2_XS",
                 b + "ffn_gate.weight": "IQ2_XS", b + "ffn_up.weight": "IQ2_XS",
                 b + "ffn_down.weight": "Q2_K" if i < 2 else "IQ2_XS",
                 b + "attn_norm.weight": "F32", b + "ffn_norm.weight": "F32"})
assert types == want, sorted((k, types.get(k), v) for k, v in want.items() if types.get(k) != v)
PY
# A written 2-block SmolLM2 IQ2_XS: rows of 576 are no multiple of 256, so most matrices fall
# back to IQ4_NL and the tied token_embd to Q8_0; ffn_down (rows of 1536) keeps IQ2_XS, as
# 2 / 8 = 0 blocks get R4's Q2_K. Needs synth's random IQ2_XS blocks.
"$bin" synth --preset smollm2-135m --type IQ2_XS --layers 2 --seed 3 -o "$tmp/iq.gguf" \
    > "$tmp/out.txt" 2>&1 || fail "synth IQ2_XS exit $?: $(cat "$tmp/out.txt")"
"$bin" inspect --json "$tmp/iq.gguf" > "$tmp/iq.json" || fail "inspect of IQ2_XS file exit $?"
python3 - "$tmp/iq.json" <<'PY' || fail "smollm2 IQ2_XS types"
import json, sys
d = json.load(open(sys.argv[1]))
kv = {m["key"]: m for m in d["metadata"]}
assert kv["general.file_type"]["value"] == 20, kv["general.file_type"]
types = {t["name"]: t["type"] for t in d["tensors"]}
want = {"token_embd.weight": "Q8_0", "output_norm.weight": "F32"}
for i in range(2):
    b = "blk.%d." % i
    want.update({b + "attn_q.weight": "IQ4_NL", b + "attn_k.weight": "IQ4_NL",
                 b + "attn_v.weight": "IQ4_NL", b + "attn_output.weight": "IQ4_NL",
                 b + "ffn_gate.weight": "IQ4_NL", b + "ffn_up.weight": "IQ4_NL",
                 b + "ffn_down.weight": "IQ2_XS",
                 b + "attn_norm.weight": "F32", b + "ffn_norm.weight": "F32"})
assert types == want, sorted((k, types.get(k), v) for k, v in want.items() if types.get(k) != v)
PY

# header-only Qwen3-8B: the converter's 399 tensors (untied: output.weight), per-head QK-norms
# of head_dim 128 and no biases
"$bin" synth --preset qwen3-8b --type Q8_0 --header-only -o "$tmp/q3.gguf" > /dev/null \
    || fail "header-only qwen3-8b exit $?"
"$bin" inspect --json "$tmp/q3.gguf" > "$tmp/q3.json" || fail "inspect of qwen3-8b header exit $?"
python3 - "$tmp/q3.json" <<'PY' || fail "qwen3-8b header content"
import json, sys
d = json.load(open(sys.argv[1]))
a = d["architecture"]
assert (a["arch"], a["blocks"], a["embedding"], a["heads"], a["kv_heads"], a["vocab"]) == \
    ("qwen3", 36, 4096, 32, 8, 151936), a
t = {t["name"]: t for t in d["tensors"]}
assert len(t) == 399 and "output.weight" in t, len(t)
assert t["blk.35.attn_q_norm.weight"]["shape"] == [128], t["blk.35.attn_q_norm.weight"]
assert t["blk.0.attn_k_norm.weight"]["type"] == "F32"
assert not any(n.endswith(".bias") for n in t), [n for n in t if n.endswith(".bias")]
PY

# --norm-std: norm weights 1 + noise, matrices unchanged (the same seed, the same bytes)
"$bin" synth --preset qwen3-0.6b --type q8_0 --layers 1 --seed 5 -o "$tmp/n0.gguf" > /dev/null \
    || fail "synth qwen3-0.6b exit $?"
"$bin" synth --preset qwen3-0.6b --type q8_0 --layers 1 --seed 5 --norm-std 0.3 \
    -o "$tmp/n3.gguf" > /dev/null || fail "synth --norm-std exit $?"
cmp -s "$tmp/n0.gguf" "$tmp/n3.gguf" && fail "--norm-std changed nothing"
[ "$(stat -c %s "$tmp/n0.gguf")" = "$(stat -c %s "$tmp/n3.gguf")" ] || fail "--norm-std size"
# only norm bytes differ: at most 3 norms of 1024 and 2 of 128 floats
ndiff=$(cmp -l "$tmp/n0.gguf" "$tmp/n3.gguf" | wc -l)
[ "$ndiff" -le $(( (3 * 1024 + 2 * 128) * 4 )) ] || fail "--norm-std changed $ndiff bytes"
rm -f "$tmp/n0.gguf" "$tmp/n3.gguf"

# bad flags: exit 2 and a message that helps
expect_usage_error() { # pattern args...
    local pat=$1
    shift
    "$bin" synth "$@" > /dev/null 2> "$tmp/err.txt"
    local rc=$?
    [ $rc -eq 2 ] || fail "synth $*: exit $rc, want 2"
    grep -q -- "$pat" "$tmp/err.txt" || fail "synth $*: message lacks '$pat': $(cat "$tmp/err.txt")"
}
expect_usage_error "llama3-8b" --preset llama9 --type q4_0 -o "$tmp/x.gguf"
expect_usage_error "Q4_K_M" --preset llama3-8b --type q4_z -o "$tmp/x.gguf"
expect_usage_error "required" --preset llama3-8b --type q4_0
expect_usage_error "unknown option" --preset llama3-8b --type q4_0 -o "$tmp/x.gguf" --bogus
expect_usage_error "--seed" --preset llama3-8b --type q4_0 -o "$tmp/x.gguf" --seed abc
expect_usage_error "needs a value" --preset
expect_usage_error "--norm-std" --preset qwen3-8b --type q4_0 -o "$tmp/x.gguf" --norm-std 2
[ ! -e "$tmp/x.gguf" ] || fail "a failed synth left $tmp/x.gguf"

# an unwritable path: exit 1 and the path in the message
"$bin" synth --preset smollm2-135m --type q4_0 --header-only -o "$tmp/no/such/dir.gguf" \
    > /dev/null 2> "$tmp/err.txt"
rc=$?
[ $rc -eq 1 ] || fail "unwritable path: exit $rc, want 1"
grep -q "no/such/dir.gguf" "$tmp/err.txt" || fail "unwritable path not named"

[ $fails -eq 0 ] && echo "cli-synth: all checks passed"
exit $((fails > 0))
