#!/usr/bin/env bash
# cli-embed: `hearth embed` on SmolLM2. -p prints one line of n_embd values of
# unit length; -f prints one line per non-empty line (a CRLF line the same as
# its LF twin), each equal to -p of that text; --dims keeps a renormalized
# prefix; --json holds the same values; --pooling last and cls differ from the
# mean. Bad flags exit 2 with a message. (test_openai.py checks that
# /v1/embeddings gives the same bits.)
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
run() { "$bin" embed -m "$smol" -t 2 -c 256 "$@"; }

run -p "The cat sat on the mat." > "$tmp/one" || fail "embed -p: exit $?"
printf 'A first line.\n\nThe cat sat on the mat.\r\nThe cat sat on the mat.\n' > "$tmp/texts"
run -f "$tmp/texts" > "$tmp/many" || fail "embed -f: exit $?"
run -p "The cat sat on the mat." --dims 16 > "$tmp/dims" || fail "embed --dims: exit $?"
run -p "The cat sat on the mat." --json > "$tmp/json" || fail "embed --json: exit $?"
run -p "The cat sat on the mat." --pooling last > "$tmp/last" || fail "--pooling last: exit $?"
run -p "The cat sat on the mat." --pooling cls > "$tmp/cls" || fail "--pooling cls: exit $?"
python3 - "$tmp" <<'PY' || fail "the vectors (above)"
import json, math, sys
d = sys.argv[1]
vec = lambda line: [float(x) for x in line.split()]
one = vec(open(f"{d}/one").read())
many = [vec(l) for l in open(f"{d}/many").read().splitlines()]
ok = True
def check(c, msg):
    global ok
    if not c:
        print("  " + msg)
        ok = False
check(len(one) == 576, f"{len(one)} values, want 576")
check(abs(math.sqrt(sum(x * x for x in one)) - 1) < 1e-6, "not unit length")
check(len(many) == 3, f"{len(many)} lines from 3 non-empty ones")
check(len(many) == 3 and many[1] == one and many[2] == one, "-f lines differ from -p")
check(len(many) == 3 and many[0] != one, "different texts, same vector")
dims = vec(open(f"{d}/dims").read())
n = math.sqrt(sum(x * x for x in one[:16]))
check(len(dims) == 16 and max(abs(a - b / n) for a, b in zip(dims, one)) < 1e-6, "--dims 16")
j = json.load(open(f"{d}/json"))
check(j["n_embd"] == 576 and j["pooling"] == "mean" and j["data"][0]["embedding"] == one,
      "--json differs from the line")
check(j["data"][0]["tokens"] == 7, f"{j['data'][0]['tokens']} tokens")
for p in ("last", "cls"):
    v = vec(open(f"{d}/{p}").read())
    check(len(v) == 576 and v != one, f"--pooling {p} gives the mean")
sys.exit(0 if ok else 1)
PY

for bad in "--dims 577 -p x" "--pooling max -p x" "" "-p x -f $tmp/texts" "--dims 0 -p x"; do
    # shellcheck disable=SC2086
    run $bad > /dev/null 2> "$tmp/err"
    rc=$?
    [ $rc -eq 2 ] || fail "embed $bad: exit $rc, want 2"
    [ -s "$tmp/err" ] || fail "embed $bad: no message"
done
run -f "$tmp/nonexistent" > /dev/null 2> "$tmp/err"
rc=$?
[ $rc -eq 1 ] && grep -q nonexistent "$tmp/err" || fail "embed -f missing file: exit $rc, $(cat "$tmp/err")"

[ $fails -eq 0 ] && echo "cli-embed: all checks passed"
exit $((fails > 0))
