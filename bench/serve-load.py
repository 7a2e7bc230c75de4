#!/usr/bin/env python3
"""Load test of `hearth serve`: aggregate generated tokens/s at several client counts.

usage: serve-load.py --url http://127.0.0.1:8080 [--clients 1,4,16] [--max-tokens 64]
                     [--seconds 20] [--api-key KEY] [--prompts 1]

Each client is a thread that sends /v1/completions requests back to back
(greedy, a different prompt per client, max_tokens each) until the time is
up; a request's completion_tokens (the server's usage count) are credited when
it finishes. Aggregate tokens/s = all credited tokens / wall time from the
first request to the last reply; also prints the mean per-request latency and
per-client tokens/s. Standard library only. Start the server with
--parallel >= the largest client count, or requests queue (that is measured
too, as lower throughput per client). --prompts P sends P prompts in each
request (P choices, batched by the server like P clients).
"""
import argparse
import http.client
import json
import threading
import time
import urllib.parse

PROMPTS = ["Once upon a time, in a small village by the sea,",
           "The history of the printing press begins",
           "Here is a recipe for a simple tomato soup:",
           "The three laws of thermodynamics state that",
           "In the year 2100, cities will",
           "A guide to growing tomatoes at home:",
           "The most important thing about learning to code is",
           "Dear diary, today was a strange day because"]


def client(url, key, idx, max_tokens, stop_at, out, n_prompts=1):
    u = urllib.parse.urlparse(url)
    tokens = reqs = 0
    lat = 0.0
    while time.time() < stop_at:
        prompts = [PROMPTS[(idx * n_prompts + j) % len(PROMPTS)] + f" ({idx}.{j})"
                   for j in range(n_prompts)]
        body = json.dumps({"prompt": prompts if n_prompts > 1 else prompts[0],
                           "max_tokens": max_tokens, "temperature": 0})
        h = {"Content-Type": "application/json"}
        if key:
            h["Authorization"] = "Bearer " + key
        t0 = time.time()
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
        c.request("POST", "/v1/completions", body=body, headers=h)
        r = c.getresponse()
        data = json.loads(r.read())
        c.close()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {data}")
        tokens += data["usage"]["completion_tokens"]
        reqs += 1
        lat += time.time() - t0
    out[idx] = (tokens, reqs, lat, time.time())


def run(url, key, n, max_tokens, seconds, n_prompts=1):
    out = [None] * n
    t0 = time.time()
    stop_at = t0 + seconds
    ts = [threading.Thread(target=client,
                           args=(url, key, i, max_tokens, stop_at, out, n_prompts))
          for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    end = max(o[3] for o in out)
    tokens = sum(o[0] for o in out)
    reqs = sum(o[1] for o in out)
    wall = end - t0
    return tokens, reqs, wall, sum(o[2] for o in out) / max(reqs, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--api-key", default="")
    ap.add_argument("--prompts", type=int, default=1, help="prompts per request")
    a = ap.parse_args()
    base = None
    print(f"{'clients':>7} {'requests':>8} {'tokens':>7} {'wall s':>7} {'agg tok/s':>9} "
          f"{'per-client':>10} {'latency s':>9} {'vs 1':>6}")
    for n in [int(x) for x in a.clients.split(",")]:
        tokens, reqs, wall, lat = run(a.url, a.api_key, n, a.max_tokens, a.seconds, a.prompts)
        tps = tokens / wall
        base = base or tps
        print(f"{n:>7} {reqs:>8} {tokens:>7} {wall:>7.1f} {tps:>9.1f} {tps / n:>10.1f} "
              f"{lat:>9.2f} {tps / base:>5.2f}x", flush=True)


if __name__ == "__main__":
    main()
