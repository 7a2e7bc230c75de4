#!/usr/bin/env bash
# `hearth serve --device vulkan0 -ngl all` end to end: the slots' forward pass
# runs through the scheduler on vulkan0, so the load line must say the layers
# and the slots' KV live there, one /v1/completions request must be answered
# (greedy, 4 tokens, "finish_reason" length), /metrics must report the KV
# and the allocation on vulkan0 (--no-stream and --kv-window are accepted
# there), echo's prompt log-probabilities must agree with generation's, and an
# embedding must be close to `hearth embed`'s on the CPU. The model is a 2-layer random
# SmolLM2 written by `hearth synth` (lavapipe runs the real one at well under a
# token per second). Skips (77) without the server, python3 or a Vulkan device
# (unless CI=true, where lavapipe is installed).
set -uo pipefail
bin=${HEARTH_BIN:?}
py=$(command -v python3) || { echo "cli-serve-vulkan: skipped: no python3"; exit 77; }
if ! "$bin" serve --help >/dev/null 2>&1; then
    echo "cli-serve-vulkan: skipped: this hearth was built without the server"; exit 77
fi
if ! "$bin" devices --no-bandwidth 2>&1 | grep -Eq '^vulkan0 '; then
    [ "${CI:-}" = true ] && { echo "cli-serve-vulkan: FAIL: no vulkan0 in CI"; exit 1; }
    echo "cli-serve-vulkan: skipped: no Vulkan device"; exit 77
fi
tmp=$(mktemp -d)
log=$tmp/server.log
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "cli-serve-vulkan: FAIL: $*"; echo "--- server log"; cat "$log"; exit 1; }

"$bin" synth --preset smollm2-135m --type Q4_1 --layers 2 --seed 3 -o "$tmp/tiny.gguf" \
    >/dev/null 2>&1 || { echo "cli-serve-vulkan: FAIL: synth"; exit 1; }
# The exact KV window runs on vulkan0 (ATTENTION step 5; its numbers are
# tested in test-vk-kvq): the flag is accepted and the model stays there.
"$bin" run -m "$tmp/tiny.gguf" --device vulkan0 -ngl all --kv-type rot4 --kv-window 8 \
    -p hi -n 2 --temp 0 >"$tmp/win.out" 2>&1 || { cat "$tmp/win.out"; fail "--kv-window on vulkan0"; }
grep -q 'layers 0-1 attention+ffn on vulkan0' "$tmp/win.out" ||
    { cat "$tmp/win.out"; fail "--kv-window moved the model off vulkan0"; }
"$bin" serve -m "$tmp/tiny.gguf" --device vulkan0 -ngl all --port 0 --parallel 3 -c 64 -t 2 \
    --no-stream \
    --drain-timeout 5 >"$log" 2>&1 &
pid=$!
port=
for _ in $(seq 1 1200); do
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || fail "the server exited at start"
    sleep 0.1
done
[ -n "$port" ] || fail "the server did not start listening"
grep -q 'layers 0-1 attention+ffn on vulkan0, output on vulkan0' "$log" ||
    fail "the load line does not place the model on vulkan0"
grep -Eq 'KV cache f16 \(0\.0 MiB KV on cpu, 0\.[1-9] MiB KV on vulkan0\)' "$log" ||
    fail "the serving line does not say where the KV lives"
url=http://127.0.0.1:$port
"$py" - "$url" "$bin" "$tmp/tiny.gguf" <<'PY' || fail "the request failed"
import json, sys, urllib.request
url = sys.argv[1]
req = urllib.request.Request(url + "/v1/completions", method="POST",
    headers={"Content-Type": "application/json"},
    data=json.dumps({"prompt": "The capital of France is", "max_tokens": 4,
                     "temperature": 0}).encode())
r = json.load(urllib.request.urlopen(req, timeout=300))
c = r["choices"][0]
assert c["finish_reason"] == "length", r
assert r["usage"]["completion_tokens"] == 4, r
m = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
assert "hearth_generated_tokens_total 4" in m, m
import re
kv = re.search(r'hearth_memory_bytes\{device="vulkan0",kind="kv_cache"\} (\d+)', m)
assert kv and int(kv.group(1)) > 0, m
al = re.search(r'hearth_memory_bytes\{device="vulkan0",kind="allocated"\} (\d+)', m)
assert al and int(al.group(1)) > int(kv.group(1)), m
# echo with logprobs: every prompt row's logits come back from vulkan0 (a step that
# wants many rows); a prompt token scored there matches the same token forced by
# logit_bias and generated (one row)
def post(body):
    req = urllib.request.Request(url + "/v1/completions", method="POST",
        headers={"Content-Type": "application/json"}, data=json.dumps(body).encode())
    return json.load(urllib.request.urlopen(req, timeout=300))
e = post({"prompt": "The capital of France is", "max_tokens": 1, "temperature": 0,
          "logprobs": 2, "echo": True})
lp = e["choices"][0]["logprobs"]
n = e["usage"]["prompt_tokens"]
assert len(lp["tokens"]) == n + 1 and lp["token_logprobs"][0] is None, e
assert all(v <= 0 for v in lp["token_logprobs"][1:]), e
ids = json.loads(urllib.request.urlopen(urllib.request.Request(url + "/tokenize",
    method="POST", data=json.dumps({"content": "The capital of France is",
                                    "add_special": True}).encode()),
    timeout=30).read())["tokens"]
for i in (1, n - 1):
    g = post({"prompt": ids[:i], "max_tokens": 1, "temperature": 0, "logprobs": 0,
              "logit_bias": {str(ids[i]): 100}})["choices"][0]["logprobs"]
    d = abs(g["token_logprobs"][0] - lp["token_logprobs"][i])
    print(f"echo vs generated, token {i}: |diff| {d:.2e}")
    assert g["tokens"][0] == lp["tokens"][i] and d < 1e-4, (g, lp)
# an embedding's rows come back from vulkan0 too: close to `hearth embed` on the CPU
import math, subprocess
text = "The capital of France is"
emb = urllib.request.Request(url + "/v1/embeddings", method="POST",
    headers={"Content-Type": "application/json"}, data=json.dumps({"input": text}).encode())
v = json.load(urllib.request.urlopen(emb, timeout=300))["data"][0]["embedding"]
cpu = subprocess.run([sys.argv[2], "embed", "-m", sys.argv[3], "-p", text, "--device", "cpu",
                      "-t", "2"], capture_output=True, text=True, timeout=120)
assert cpu.returncode == 0, cpu.stderr
c = [float(x) for x in cpu.stdout.split()]
d = max(abs(a - b) for a, b in zip(v, c))
cos = sum(a * b for a, b in zip(v, c))
print(f"embedding on vulkan0 vs the CPU: max |diff| {d:.2e}, cosine {cos:.7f}")
assert len(v) == len(c) == 576 and abs(math.sqrt(sum(a * a for a in v)) - 1) < 1e-5, len(v)
assert cos > 0.9999, cos
PY
kill -TERM "$pid"
wait "$pid"; rc=$?
pid=
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
echo "cli-serve-vulkan: ok"
