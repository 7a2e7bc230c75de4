"""Drives headless Chromium through the chat page of `hearth serve`.

usage: page_check.py URL SCREENSHOT.png [TIMEOUT_S]

Opens URL (the page with ?q=... so that it sends a message by itself), waits
until <body data-state> is "done" (the streamed reply finished) or "error",
checks that the assistant bubble holds a non-empty reply and that the page
showed it in several streamed pieces (its data-chunks counter), saves a screenshot, and prints the reply.

Chromium is driven over --remote-debugging-pipe (the DevTools protocol as
NUL-separated JSON on fds 3 and 4), which needs no extra Python package:
--dump-dom alone snapshots at the load event, before a streamed reply ends.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

url, shot = sys.argv[1], sys.argv[2]
limit = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
browser = shutil.which("chromium") or shutil.which("chromium-browser")
if not browser:
    print("page_check: no chromium")
    sys.exit(77)

cmd_r, cmd_w = os.pipe()    # we write commands, chromium reads fd 3
resp_r, resp_w = os.pipe()  # chromium writes fd 4, we read


def child_fds():
    # via spare numbers, so neither dup2 clobbers the other pipe's end; dup2
    # clears close-on-exec, which a no-op dup2 onto itself would not
    a, b = os.dup(cmd_r), os.dup(resp_w)
    os.dup2(a, 3)
    os.dup2(b, 4)
    os.set_inheritable(3, True)
    os.set_inheritable(4, True)


profile = tempfile.mkdtemp(prefix="hearth-page-")
proc = subprocess.Popen(
    [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
     "--remote-debugging-pipe", f"--user-data-dir={profile}", "--window-size=900,640", url],
    preexec_fn=child_fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
os.close(cmd_r)
os.close(resp_w)
buf = b""
next_id = 0


def call(method, params=None, session=None):
    global buf, next_id
    next_id += 1
    msg = {"id": next_id, "method": method, "params": params or {}}
    if session:
        msg["sessionId"] = session
    os.write(cmd_w, json.dumps(msg).encode() + b"\0")
    while True:
        while b"\0" not in buf:
            chunk = os.read(resp_r, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            buf += chunk
        raw, buf = buf.split(b"\0", 1)
        m = json.loads(raw)
        if m.get("id") == next_id:
            if "error" in m:
                raise RuntimeError(f"{method}: {m['error']}")
            return m["result"]


def evaluate(expr, session):
    r = call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session)
    return r["result"].get("value")


rc = 1
try:
    deadline = time.time() + limit
    page = None
    while page is None and time.time() < deadline:
        for t in call("Target.getTargets")["targetInfos"]:
            if t["type"] == "page" and t["url"].startswith(url.split("?")[0]):
                page = t["targetId"]
        time.sleep(0.1)
    assert page, "the page did not open"
    session = call("Target.attachToTarget", {"targetId": page, "flatten": True})["sessionId"]
    state = None
    while time.time() < deadline:
        state = evaluate("document.body.dataset.state", session)
        if state in ("done", "error"):
            break
        time.sleep(0.1)
    user = evaluate("(document.querySelector('.msg.user') || {}).textContent", session)
    reply = evaluate("(document.querySelector('.msg.assistant') || {}).textContent", session)
    err = evaluate("(document.querySelector('.msg.error') || {}).textContent", session)
    steps = int(evaluate("document.body.dataset.chunks || '0'", session))
    png = call("Page.captureScreenshot", {"format": "png"}, session)["data"]
    with open(shot, "wb") as f:
        f.write(base64.b64decode(png))
    print(f"page_check: state={state} user={user!r} reply={reply!r} error={err!r} "
          f"streamed chunks={steps}")
    assert state == "done", f"page state {state!r} (error bubble: {err!r})"
    assert reply and reply.strip(), "empty reply"
    assert steps >= 2, "the reply did not stream (one update only)"
    rc = 0
except Exception as e:  # reported, then the browser is cleaned up
    print(f"page_check: FAIL: {e}")
finally:
    try:
        call("Browser.close")
    except Exception:
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    shutil.rmtree(profile, ignore_errors=True)
sys.exit(rc)
