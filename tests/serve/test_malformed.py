"""Bad input never harms the server: malformed JSON, wrong types and ranges,
unknown roles, wrong key, unknown paths and methods, oversize bodies, bad
embedding inputs, and a full queue get the right status and an OpenAI error object; afterwards the
server still answers."""
import json
import socket

from common import HOST, PORT, KEY, check, raw_stream_open, read_until, request, wait_metric

CHAT = "/v1/chat/completions"
OK_MSG = [{"role": "user", "content": "hi"}]


def expect(status, method, path, body=None, param=None, key=True, headers=None):
    st, h, raw = request(method, path, body, headers=headers, key=key)
    check(st == status, f"{method} {path} {str(body)[:80]}: {st} != {status}: {raw[:200]!r}")
    if status >= 400:
        err = json.loads(raw)["error"]
        check(isinstance(err["message"], str) and err["message"], err)
        check(set(err) == {"message", "type", "param", "code"}, err)
        if param is not None:
            check(err["param"] == param, f"param {err['param']!r} != {param!r}")
    return raw


bad_bodies = [
    ("{", None), ("[1,2]", None), ('"text"', None), ("", None), ("\x00\xff", None),
    ({"messages": "hi"}, "messages"), ({"messages": []}, "messages"), ({}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages"),
    ({"messages": [{"role": "user"}]}, "messages"),
    ({"messages": [{"role": 5, "content": "x"}]}, "messages"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages"),
    ({"messages": [{"role": "assistant", "content": None}]}, "messages"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": {}}]}, "messages"),
    ({"messages": [{"role": "assistant", "content": None,
                    "tool_calls": [{"function": {"arguments": "{}"}}]}]}, "messages"),
    ({"messages": [{"role": "tool", "content": None}]}, "messages"),
    ({"messages": OK_MSG, "tools": {}}, "tools"),
    ({"messages": OK_MSG, "tools": [{"type": "function", "function": {}}]}, "tools"),
    ({"messages": OK_MSG, "tools": [{"type": "web", "function": {"name": "f"}}]}, "tools"),
    ({"messages": OK_MSG, "tools": [{"type": "function",
                                     "function": {"name": "f", "parameters": 3}}]}, "tools"),
    ({"messages": OK_MSG, "tools": [{"type": "function", "function": {"name": "f"}}] * 129},
     "tools"),
    ({"messages": OK_MSG, "tool_choice": "sometimes"}, "tool_choice"),
    ({"messages": OK_MSG, "parallel_tool_calls": "no"}, "parallel_tool_calls"),
    ({"messages": OK_MSG, "tool_choice": "required"}, "tool_choice"),
    ({"messages": OK_MSG, "tools": [{"type": "function", "function": {"name": "f"}}],
      "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
    ({"messages": OK_MSG, "temperature": -0.5}, "temperature"),
    ({"messages": OK_MSG, "temperature": "1"}, "temperature"),
    ({"messages": OK_MSG, "top_p": 0}, "top_p"),
    ({"messages": OK_MSG, "top_p": 1.5}, "top_p"),
    ({"messages": OK_MSG, "max_tokens": 0}, "max_tokens"),
    ({"messages": OK_MSG, "max_tokens": 1.5}, "max_tokens"),
    ({"messages": OK_MSG, "max_tokens": 10 ** 9}, "max_tokens"),
    ({"messages": OK_MSG, "n": 0}, "n"),
    ({"messages": OK_MSG, "n": 65}, "n"),
    ({"messages": OK_MSG, "n": 9}, "n"),  # more choices than the server's queue of 8
    ({"messages": OK_MSG, "top_k": -1}, "top_k"),
    ({"messages": OK_MSG, "min_p": 2}, "min_p"),
    ({"messages": OK_MSG, "presence_penalty": 3}, "presence_penalty"),
    ({"messages": OK_MSG, "stop": [1]}, "stop"),
    ({"messages": OK_MSG, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": OK_MSG, "stream": "yes"}, "stream"),
    ({"messages": OK_MSG, "seed": "x"}, "seed"),
    ({"messages": OK_MSG, "model": 3}, "model"),
    ({"messages": OK_MSG, "logit_bias": [1]}, "logit_bias"),
    ({"messages": OK_MSG, "logit_bias": {"x": 1}}, "logit_bias"),
    ({"messages": OK_MSG, "logit_bias": {"-1": 1}}, "logit_bias"),
    ({"messages": OK_MSG, "logit_bias": {"12": 101}}, "logit_bias"),
    ({"messages": OK_MSG, "logit_bias": {"12": "1"}}, "logit_bias"),
    ({"messages": OK_MSG, "logit_bias": {str(i): 1 for i in range(1025)}}, "logit_bias"),
    ({"messages": OK_MSG, "logit_bias": {"99999999999": 1}}, "logit_bias"),
    ({"messages": OK_MSG, "logprobs": "yes"}, "logprobs"),
    ({"messages": OK_MSG, "logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"messages": OK_MSG, "logprobs": False, "top_logprobs": 2}, "top_logprobs"),
    ({"messages": OK_MSG, "response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "string", "format": "date"}}}}, "response_format"),
    ({"messages": OK_MSG, "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
     "response_format"),
    ({"messages": OK_MSG, "response_format": {"type": "json_schema"}}, "response_format"),
    ({"messages": OK_MSG, "response_format": {"type": "json_object"},
      "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"},
     "response_format"),
    ({"messages": OK_MSG, "response_format": "text"}, "response_format"),
]
for body, param in bad_bodies:
    expect(400, "POST", CHAT, body, param)
expect(400, "POST", "/v1/completions", {"prompt": 3}, "prompt")
expect(400, "POST", "/v1/completions", {"prompt": ""}, "prompt")
expect(400, "POST", "/v1/completions", {}, "prompt")
expect(400, "POST", "/v1/completions", {"prompt": "x", "logprobs": 21}, "logprobs")
expect(400, "POST", "/v1/completions", {"prompt": "x", "logprobs": True}, "logprobs")
expect(400, "POST", "/v1/completions", {"prompt": "x", "echo": "yes"}, "echo")
expect(400, "POST", "/v1/completions", {"prompt": "x", "max_tokens": 0}, "max_tokens")
expect(400, "POST", "/v1/completions", {"prompt": [1, -2]}, "prompt")
expect(400, "POST", "/v1/completions", {"prompt": [1.5]}, "prompt")
expect(400, "POST", "/v1/completions", {"prompt": []}, "prompt")
expect(400, "POST", "/v1/completions", {"prompt": [[1], "b"]}, "prompt")
expect(400, "POST", "/v1/completions", {"prompt": ["a", ""]}, "prompt")
expect(400, "POST", "/v1/completions", {"prompt": ["a"] * 65}, "prompt")
expect(400, "POST", "/v1/completions", {"prompt": ["a", "b"], "n": 33}, "n")
expect(400, "POST", "/v1/completions", {"prompt": [[1], [2, 49152]]}, "prompt")
expect(400, "POST", "/v1/completions", {"prompt": [1, 49152]}, "prompt")
EMB = "/v1/embeddings"
expect(400, "POST", EMB, {}, "input")
expect(400, "POST", EMB, {"input": 3}, "input")
expect(400, "POST", EMB, {"input": ""}, "input")
expect(400, "POST", EMB, {"input": []}, "input")
expect(400, "POST", EMB, {"input": ["a", [1]]}, "input")
expect(400, "POST", EMB, {"input": [1, 49152]}, "input")
expect(400, "POST", EMB, {"input": ["a"] * 2049}, "input")
expect(400, "POST", EMB, {"input": "word " * 5000}, "input")
expect(400, "POST", EMB, {"input": "x", "encoding_format": "hex"}, "encoding_format")
expect(400, "POST", EMB, {"input": "x", "dimensions": 0}, "dimensions")
expect(400, "POST", EMB, {"input": "x", "dimensions": 577}, "dimensions")
expect(400, "POST", EMB, {"input": "x", "dimensions": 1.5}, "dimensions")
expect(400, "POST", EMB, {"input": "x", "model": 1}, "model")
expect(400, "POST", EMB, "[1]")
expect(405, "GET", EMB)
expect(401, "POST", EMB, {"input": "x"}, key=False)
expect(400, "POST", "/tokenize", {"content": 3}, "content")
expect(400, "POST", "/tokenize", {"content": "x", "add_special": 1}, "add_special")
expect(400, "POST", "/tokenize", "[1]")
expect(400, "POST", "/detokenize", {"tokens": "x"}, "tokens")
expect(400, "POST", "/detokenize", {"tokens": [1, 49152]}, "tokens")
expect(400, "POST", "/detokenize", {"tokens": [1.5]}, "tokens")
expect(405, "GET", "/tokenize")
expect(401, "POST", "/tokenize", {"content": "x"}, key=False)
# deep nesting and a long prompt beyond the context
expect(400, "POST", CHAT, "[" * 5000 + "]" * 5000)
expect(400, "POST", "/v1/completions", {"prompt": "word " * 5000})

# authentication
expect(401, "POST", CHAT, {"messages": OK_MSG}, key=False)
expect(401, "GET", "/v1/models", key=False, headers={"Authorization": "Bearer " + KEY + "x"})
expect(401, "GET", "/v1/models", key=False, headers={"Authorization": KEY})
expect(401, "GET", "/metrics", key=False)

# paths and methods; no request can reach a file
expect(404, "GET", "/v1/nothing")
expect(404, "GET", "/../../etc/passwd")
expect(404, "GET", "/v1/../../etc/passwd")
expect(405, "GET", CHAT)
expect(405, "DELETE", "/v1/models")
expect(405, "POST", "/health")

# body limit: a declared 2 MiB body and one sent chunked without a length
# (a client that sends the whole 2 MiB before reading would see a broken pipe:
# the server answers and closes without reading it, as curl's 100-continue expects)
s = socket.create_connection((HOST, PORT), timeout=30)
s.sendall(f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
          f"Content-Length: {2 << 20}\r\nExpect: 100-continue\r\n\r\n".encode())
resp = read_until(s, rb"\r\n\r\n")
s.close()
check(resp.startswith(b"HTTP/1.1 413"), resp[:100])
s = socket.create_connection((HOST, PORT), timeout=30)
s.sendall(f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
          "Transfer-Encoding: chunked\r\n\r\n".encode())
# just over the limit, then stop sending: a server that closes with unread data
# resets the connection, which could discard its answer before we read it
for _ in range(17):
    s.sendall(b"10000\r\n" + b"a" * 0x10000 + b"\r\n")
s.sendall(b"0\r\n\r\n")
resp = read_until(s, rb"\r\n\r\n")
s.close()
check(resp.startswith(b"HTTP/1.1 413"), resp[:100])

# a full server: 4 slots + 8 queue places; 16 more streams at once get 503s
socks, statuses = [], []
for i in range(16):
    socks.append(raw_stream_open(CHAT, {"messages": [{"role": "user", "content": f"Count to {i}"}],
                                        "max_tokens": 200, "stream": True}))
for s in socks:
    head = read_until(s, rb"\r\n\r\n")
    statuses.append(int(head.split(b" ", 2)[1]))
for s in socks:
    s.close()
check(statuses.count(503) >= 2 and statuses.count(200) >= 8, statuses)
wait_metric("hearth_slots_active", lambda v: v == 0)
wait_metric("hearth_queue_depth", lambda v: v == 0)

# still healthy
st, _, body = request("GET", "/health")
check(st == 200 and json.loads(body)["status"] == "ok", body)
raw = expect(200, "POST", CHAT, {"messages": OK_MSG, "max_tokens": 4, "temperature": 0})
check(json.loads(raw)["choices"][0]["message"]["content"], raw)
print(f"test_malformed: ok ({len(bad_bodies) + 37} cases; 503s: {statuses.count(503)})")
