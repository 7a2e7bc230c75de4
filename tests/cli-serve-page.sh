#!/usr/bin/env bash
# The chat page of `hearth serve` in headless Chromium: the page is opened with
# ?q=... (its test hook sends that message on load), and tests/serve/page_check.py
# waits for the streamed reply to finish, checks it is non-empty and arrived in
# several pieces, and saves a screenshot ($HEARTH_SCREENSHOT, default a temp
# file). Skips (77) without chromium or without the server in this build.
set -uo pipefail
src=${HEARTH_SOURCE_DIR:?}
bin=${HEARTH_BIN:?}
model=$src/models/SmolLM2-135M-Instruct.Q4_1.gguf
py=$(command -v python3)
if ! "$bin" serve --help >/dev/null 2>&1; then
    echo "cli-serve-page: skipped: this hearth was built without the server"; exit 77
fi
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    echo "cli-serve-page: skipped: no chromium (apt install chromium)"; exit 77
fi
[ -f "$model" ] || { echo "cli-serve-page: missing $model"; exit 1; }
tmp=$(mktemp -d)
log=$tmp/server.log
: >"$log"
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
"$bin" serve -m "$model" --port 0 --parallel 1 -c 1024 -t 2 >"$log" 2>&1 &
pid=$!
port=
for _ in $(seq 1 100); do
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "cli-serve-page: the server did not start"; cat "$log"; exit 1; }
shot=${HEARTH_SCREENSHOT:-$tmp/page.png}
q='What%20is%20the%20capital%20of%20France%3F'
timeout 90 "$py" "$src/tests/serve/page_check.py" \
    "http://127.0.0.1:$port/?q=$q&temp=0&max=32" "$shot" 60
rc=$?
kill -TERM "$pid"
wait "$pid"; status=$?
pid=
[ "$status" = 0 ] || { echo "cli-serve-page: server exit status $status"; rc=1; }
[ $rc = 0 ] && echo "cli-serve-page: ok" || cat "$log"
exit $rc
