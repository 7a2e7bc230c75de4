#!/usr/bin/env python3
"""Embedding throughput of `hearth serve`: prompt tokens/s of /v1/embeddings.

usage: embed-load.py --url http://127.0.0.1:8080 --file TEXT [--inputs 64]
                     [--per-request 16] [--clients 1] [--max-chars 0] [--api-key KEY]

The first --inputs non-empty lines of TEXT are the inputs (cycled if the file
has fewer; with --max-chars N, the text is first cut at sentence ends into
pieces of at most about N characters, for texts of long paragraphs), sent --per-request per request by --clients threads back to back
until every input is embedded. Tokens/s = the server's usage.prompt_tokens
summed / wall time from the first request to the last reply. Compare it with
`hearth bench -p N -n 0` (prefill tokens/s) on the same model and threads:
embedding is prefill without the LM head, so it should not be slower; and
with `hearth embed -f` (one sequence, no server) for the cost of the server.
Standard library only.
"""
import argparse
import http.client
import json
import re
import threading
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--inputs", type=int, default=64)
    ap.add_argument("--per-request", type=int, default=16)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--max-chars", type=int, default=0)
    ap.add_argument("--api-key", default="")
    a = ap.parse_args()
    with open(a.file, encoding="utf-8") as f:
        text = f.read()
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    if a.max_chars > 0:
        lines, cur = [], ""
        for s in re.split(r"(?<=[.;:])\s+", text):
            s = " ".join(s.split())
            if cur and len(cur) + len(s) >= a.max_chars:
                lines.append(cur)
                cur = ""
            cur = (cur + " " + s).strip()
        lines += [cur] if cur else []
    inputs = [lines[i % len(lines)] for i in range(a.inputs)]
    batches = [inputs[i:i + a.per_request] for i in range(0, len(inputs), a.per_request)]
    u = urllib.parse.urlparse(a.url)
    lock = threading.Lock()
    totals = {"tokens": 0, "vectors": 0}

    def worker():
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
        h = {"Content-Type": "application/json"}
        if a.api_key:
            h["Authorization"] = "Bearer " + a.api_key
        while True:
            with lock:
                if not batches:
                    break
                b = batches.pop(0)
            c.request("POST", "/v1/embeddings", body=json.dumps({"input": b}), headers=h)
            r = c.getresponse()
            body = json.loads(r.read())
            if r.status != 200:
                raise SystemExit(f"HTTP {r.status}: {body}")
            with lock:
                totals["tokens"] += body["usage"]["prompt_tokens"]
                totals["vectors"] += len(body["data"])
        c.close()

    t0 = time.time()
    threads = [threading.Thread(target=worker) for _ in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.time() - t0
    print(f"embed-load: {totals['vectors']} inputs, {totals['tokens']} tokens in {dt:.2f} s: "
          f"{totals['tokens'] / dt:.1f} tokens/s, {totals['vectors'] / dt:.1f} inputs/s "
          f"({a.clients} clients, {a.per_request} inputs per request)")


if __name__ == "__main__":
    main()
