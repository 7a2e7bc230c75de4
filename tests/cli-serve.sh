#!/usr/bin/env bash
# `hearth serve` end to end: starts the real server on 127.0.0.1 (a free port
# chosen by the server, --port 0) with SmolLM2, 4 slots, a queue of 8, -b 32
# (said in its banner) and an API key, waits for /health, runs the Python
# suites in tests/serve/ (the official `openai` client from scripts/py-env.sh's
# venv, or $HEARTH_PY), each
# under a timeout, then sends SIGTERM and checks the server drained and
# exited 0. Skips (77) when the server or the Python environment is missing.
set -uo pipefail
src=${HEARTH_SOURCE_DIR:?}
bin=${HEARTH_BIN:?}
model=$src/models/SmolLM2-135M-Instruct.Q4_1.gguf
py=${HEARTH_PY:-$src/build/pyenv/bin/python}
if ! "$bin" serve --help >/dev/null 2>&1; then
    echo "cli-serve: skipped: this hearth was built without the server"; exit 77
fi
if ! "$py" -c "import openai" 2>/dev/null; then
    echo "cli-serve: skipped: no python with openai at $py (run scripts/py-env.sh)"; exit 77
fi
[ -f "$model" ] || { echo "cli-serve: missing $model (scripts/fetch-models.sh)"; exit 1; }

slow=1
grep -q __asan_init "$bin" 2>/dev/null && slow=10 # a sanitizer build (see below)
tmp=$(mktemp -d)
log=$tmp/server.log
: >"$log"
key=test-key-$$
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "cli-serve: FAIL: $*"; echo "--- server log"; cat "$log"; exit 1; }

"$bin" serve -m "$model" --host 127.0.0.1 --port 0 --parallel 4 --queue 8 -c 1024 -t 2 -b 32 \
    --api-key "$key" --drain-timeout $((5 * slow)) >"$log" 2>&1 &
pid=$!
port=
for _ in $(seq 1 $((100 * slow))); do
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || fail "the server exited at start"
    sleep 0.1
done
[ -n "$port" ] || fail "the server did not start listening"
# -b 32: prompts enter 32 tokens per step, and the engine's batch is 32
for _ in $(seq 1 $((50 * slow))); do grep -q 'hearth: serving' "$log" && break; sleep 0.1; done
grep -q 'prompts in steps of 32 tokens (batch 32)' "$log" || fail "-b 32 not taken"
"$bin" serve -b 0 >/dev/null 2>&1
[ $? -eq 2 ] || fail "serve -b 0 should be a usage error"
url=http://127.0.0.1:$port
for _ in $(seq 1 50); do
    "$py" -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('$url/health', timeout=2).status != 200)" \
        2>/dev/null && break
    sleep 0.1
done

# A sanitizer build (ASan, Debug) generates ~10x slower: longer timeouts, and
# the concurrency suite (dozens of generations) is left to the optimized builds.
suite_s=60 suites="test_openai test_concurrent test_malformed test_disconnect"
if [ "$slow" != 1 ]; then
    suite_s=300 suites="test_openai test_malformed test_disconnect"
    echo "cli-serve: sanitizer build: timeouts x$slow, test_concurrent skipped"
fi
export HEARTH_URL=$url HEARTH_API_KEY=$key PYTHONPATH=$src/tests/serve HEARTH_TEST_SLOW=$slow
rc=0
for suite in $suites; do
    t0=$(date +%s%N)
    if ! timeout "$suite_s" "$py" "$src/tests/serve/$suite.py"; then
        echo "cli-serve: FAIL: $suite"; rc=1
    fi
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    printf 'cli-serve: %s took %d.%03d s\n' "$suite" $((ms / 1000)) $((ms % 1000))
    kill -0 "$pid" 2>/dev/null || fail "the server died during $suite"
done

# SIGTERM while a request runs: it drains, then exits 0
"$py" - "$url" "$key" <<'PY' &
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/v1/completions",
    data=json.dumps({"prompt": "Once upon a time", "max_tokens": 24, "temperature": 0}).encode(),
    headers={"Authorization": "Bearer " + sys.argv[2], "Content-Type": "application/json"})
r = json.load(urllib.request.urlopen(req, timeout=300))
assert r["usage"]["completion_tokens"] == 24, r
PY
client=$!
sleep 0.3
kill -TERM "$pid"
wait "$client" || { echo "cli-serve: FAIL: the request running at SIGTERM did not complete"; rc=1; }
for _ in $(seq 1 $((100 * slow))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "the server did not exit within $((10 * slow)) s of SIGTERM"
wait "$pid"; status=$?
pid=
[ "$status" = 0 ] || fail "exit status $status after SIGTERM"
grep -q "server stopped" "$log" || fail "no clean-stop line in the log"
[ $rc = 0 ] || { echo "--- server log"; cat "$log"; exit 1; }
echo "cli-serve: ok"
