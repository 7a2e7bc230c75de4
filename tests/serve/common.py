"""Shared helpers of the `hearth serve` test suites (driven by tests/cli-serve.sh).

The server under test is at $HEARTH_URL (http://127.0.0.1:PORT) and requires
the API key $HEARTH_API_KEY. Every network call has a timeout, so a hung server
fails a suite instead of stalling CI.
"""
import http.client
import json
import os
import re
import socket
import time
import urllib.parse

URL = os.environ["HEARTH_URL"]
KEY = os.environ.get("HEARTH_API_KEY", "")
_u = urllib.parse.urlparse(URL)
HOST, PORT = _u.hostname, _u.port
# sanitizer builds run the model ~10x slower: tests/cli-serve.sh sets HEARTH_TEST_SLOW
SLOW = float(os.environ.get("HEARTH_TEST_SLOW", "1"))
TIMEOUT = 30 * SLOW


def conn():
    return http.client.HTTPConnection(HOST, PORT, timeout=TIMEOUT)


def request(method, path, body=None, headers=None, key=True):
    """Returns (status, headers dict, body bytes)."""
    h = {} if headers is None else dict(headers)
    if key and KEY:
        h.setdefault("Authorization", "Bearer " + KEY)
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    c = conn()
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def metrics():
    st, _, body = request("GET", "/metrics")
    assert st == 200, st
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def wait_metric(name, pred, timeout=10.0):
    """Polls /metrics until pred(value) holds; returns the value (asserts on timeout)."""
    timeout *= SLOW
    end = time.time() + timeout
    v = None
    while time.time() < end:
        v = metrics().get(name)
        if v is not None and pred(v):
            return v
        time.sleep(0.1)
    raise AssertionError(f"{name} = {v} after {timeout} s")


def raw_stream_open(path, body):
    """Sends a request on a plain socket and returns the socket (for disconnect tests)."""
    data = json.dumps(body).encode()
    s = socket.create_connection((HOST, PORT), timeout=TIMEOUT)
    head = (f"POST {path} HTTP/1.1\r\nHost: {HOST}:{PORT}\r\n"
            f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n")
    s.sendall(head.encode() + data)
    return s


def read_until(s, pattern, limit=1 << 20):
    buf = b""
    while not re.search(pattern, buf):
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
        assert len(buf) < limit
    return buf


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
