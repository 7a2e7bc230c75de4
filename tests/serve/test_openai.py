"""The official `openai` client against `hearth serve`: chat and completions,
streamed and not, stop strings, seeds, logit_bias, logprobs and echo, several prompts and
n choices, tool calls, embeddings, JSON mode and JSON schemas, /tokenize, /detokenize and /apply-template, usage
counts, /v1/models."""
import array
import math
import os
import subprocess
import time

import openai

import json

from common import KEY, URL, check, request

client = openai.OpenAI(base_url=URL + "/v1", api_key=KEY, timeout=30, max_retries=0)
MODEL = client.models.list().data[0].id
MSG = [{"role": "user", "content": "What is the capital of France?"}]


def chat_plain():
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=16, temperature=0)
    c = r.choices[0]
    check(r.object == "chat.completion", r.object)
    check(r.id.startswith("chatcmpl-") and r.model == MODEL, (r.id, r.model))
    check(abs(r.created - time.time()) < 120, r.created)
    check(c.message.role == "assistant" and "Paris" in c.message.content, c.message)
    check(c.finish_reason in ("stop", "length"), c.finish_reason)
    u = r.usage
    check(u.prompt_tokens > 5 and 1 <= u.completion_tokens <= 16, u)
    check(u.total_tokens == u.prompt_tokens + u.completion_tokens, u)
    return c.message.content


def chat_stream(expect):
    s = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=16, temperature=0,
                                       stream=True, stream_options={"include_usage": True})
    text, finish, usage, roles = "", None, None, 0
    for chunk in s:
        check(chunk.object == "chat.completion.chunk", chunk.object)
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.role:
                roles += 1
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    check(text == expect, f"stream {text!r} != whole {expect!r}")
    check(roles == 1 and finish in ("stop", "length"), (roles, finish))
    check(usage is not None and usage.completion_tokens >= 1, usage)


def completion_plain_and_stream():
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8,
                                  temperature=0)
    check(r.object == "text_completion", r.object)
    check(r.choices[0].finish_reason == "length", r.choices[0].finish_reason)
    check(r.usage.completion_tokens == 8, r.usage)
    text = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0,
        stream=True))
    check(text == r.choices[0].text, (text, r.choices[0].text))


def stop_strings():
    base = client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=12,
                                     temperature=0).choices[0].text
    check(" 6" in base, f"expected the count to go on: {base!r}")
    r = client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=12,
                                  temperature=0, stop=[" 6", "never"])
    t = r.choices[0].text
    check(r.choices[0].finish_reason == "stop", r.choices[0].finish_reason)
    check(t == base[:base.index(" 6")], (t, base))
    s = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0, stop=" 6", stream=True))
    check(s == t, (s, t))


def seeds():
    kw = dict(model=MODEL, messages=[{"role": "user", "content": "Tell me a short story."}],
              max_tokens=24, temperature=1.0, top_p=0.95)
    a = client.chat.completions.create(seed=1234, **kw).choices[0].message.content
    b = client.chat.completions.create(seed=1234, **kw).choices[0].message.content
    c = client.chat.completions.create(seed=99, **kw).choices[0].message.content
    check(a == b, f"same seed, different text: {a!r} vs {b!r}")
    check(a != c, f"different seeds gave the same 24 tokens: {a!r}")


def logit_bias():
    # 21285 is SmolLM2's " banana" and 7042 its " Paris" (test-serve-batch finds the former
    # through the tokenizer): +100 makes every greedy step pick it, -100 bans the answer
    kw = dict(model=MODEL, messages=MSG, max_tokens=3, temperature=0)
    r = client.chat.completions.create(logit_bias={"21285": 100}, **kw)
    text = r.choices[0].message.content
    check(text == " banana banana banana", f"+100 on ' banana': {text!r}")
    kw["max_tokens"] = 16
    text = client.chat.completions.create(logit_bias={"7042": -100}, **kw).choices[0].message.content
    check(" Paris" not in text and text != whole, f"-100 on ' Paris': {text!r}")
    c = client.completions.create(model=MODEL, prompt="I like to eat", max_tokens=2,
                                  temperature=0, logit_bias={"21285": 100})
    check(c.choices[0].text == " banana banana", c.choices[0].text)
    # the default of the field hearth refuses otherwise is accepted
    kw["max_tokens"] = 2
    client.chat.completions.create(response_format={"type": "text"}, **kw)
    try:
        client.chat.completions.create(logit_bias={"49152": 1}, **kw)
        raise AssertionError("a token id past the vocabulary accepted")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and "logit_bias" in str(e), str(e))


def tokenize():
    # /tokenize and /detokenize (llama.cpp's fields): the ids logit_bias takes
    st, _, raw = request("POST", "/tokenize", {"content": " banana"})
    check(st == 200 and json.loads(raw) == {"tokens": [21285]}, raw)
    text = "Hi <|im_start|> caf\u00e9 \U0001F600"
    st, _, raw = request("POST", "/tokenize", {"content": text, "with_pieces": True})
    toks = json.loads(raw)["tokens"]
    check(st == 200 and all(set(t) == {"id", "piece"} for t in toks), raw)
    check(any(t["piece"] == "<|im_start|>" for t in toks), toks)  # parse_special by default
    # the emoji's bytes come as byte lists where a piece is part of a character
    got = b"".join(t["piece"].encode() if isinstance(t["piece"], str) else bytes(t["piece"])
                   for t in toks)
    check(got == text.encode(), (got, text.encode()))
    st, _, raw = request("POST", "/detokenize", {"tokens": [t["id"] for t in toks]})
    check(st == 200 and json.loads(raw) == {"content": text}, raw)
    st, _, raw = request("POST", "/tokenize", {"content": "<|im_start|>", "parse_special": False})
    check(st == 200 and len(json.loads(raw)["tokens"]) > 1, raw)
    # the ids found this way steer a request
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=2, temperature=0,
                                       logit_bias={str(json.loads(request(
                                           "POST", "/tokenize", {"content": " banana"})[2])
                                           ["tokens"][0]): 100})
    check(r.choices[0].message.content == " banana banana", r.choices[0].message.content)


def check_top(lp, top, n):
    """A greedy token's record: n alternatives, most likely first, the token the first."""
    vals = [t[1] for t in top]
    check(len(top) == n and vals == sorted(vals, reverse=True), top)
    check(top[0][0] == lp[0] and abs(top[0][1] - lp[1]) < 1e-6, (lp, top))
    check(lp[1] <= 0 and sum(math.exp(v) for v in vals) <= 1 + 1e-5, (lp, vals))


def logprobs():
    # chat: each token's bytes make up the reply, greedy tokens head their alternatives
    kw = dict(model=MODEL, messages=MSG, max_tokens=8, temperature=0, logprobs=True,
              top_logprobs=3)
    r = client.chat.completions.create(**kw)
    content = r.choices[0].logprobs.content
    check(len(content) == r.usage.completion_tokens, (len(content), r.usage))
    check(b"".join(bytes(t.bytes) for t in content).decode() == r.choices[0].message.content,
          (content, r.choices[0].message.content))
    for t in content:
        check_top((t.token, t.logprob), [(a.token, a.logprob) for a in t.top_logprobs], 3)
    streamed = [t for ch in client.chat.completions.create(stream=True, **kw)
                for c in ch.choices if c.logprobs for t in c.logprobs.content]
    check([(t.token, t.logprob) for t in streamed] == [(t.token, t.logprob) for t in content],
          (streamed, content))

    # completions: tokens spell the text, text_offset counts from the prompt's start
    prompt = "The capital of France is"
    c = client.completions.create(model=MODEL, prompt=prompt, max_tokens=6, temperature=0,
                                  logprobs=2).choices[0]
    lp = c.logprobs
    check("".join(lp.tokens) == c.text, (lp.tokens, c.text))
    check(lp.text_offset == [len(prompt) + len("".join(lp.tokens[:i]))
                             for i in range(len(lp.tokens))], lp.text_offset)
    for tok, v, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        check_top((tok, v), sorted(top.items(), key=lambda kv: -kv[1]), 2)

    # echo, as evaluation harnesses send it: the prompt as token ids, one token generated;
    # every prompt token but the first is scored from the logits before it
    ids = json.loads(request("POST", "/tokenize", {"content": prompt})[2])["tokens"]
    e = client.completions.create(model=MODEL, prompt=ids, max_tokens=1, temperature=0,
                                  logprobs=1, echo=True).choices[0]
    elp = e.logprobs
    check(e.text == prompt + c.text[:len(elp.tokens[-1])], (e.text, c.text))
    check(len(elp.tokens) == len(ids) + 1 and elp.token_logprobs[0] is None, elp)
    check(elp.top_logprobs[0] is None and elp.text_offset[0] == 0, elp)
    check(elp.text_offset[len(ids)] == len(prompt), elp.text_offset)
    check(abs(elp.token_logprobs[-1] - lp.token_logprobs[0]) < 1e-6, (elp, lp))
    # the same numbers from generation: logit_bias forces the prompt's next token, and
    # logprobs are the model's, before any bias
    for i in range(1, len(ids)):
        g = client.completions.create(model=MODEL, prompt=ids[:i], max_tokens=1, temperature=0,
                                      logprobs=0, logit_bias={str(ids[i]): 100}).choices[0]
        check(g.logprobs.tokens[0] == elp.tokens[i], (g.logprobs, elp.tokens[i]))
        check(abs(g.logprobs.token_logprobs[0] - elp.token_logprobs[i]) < 1e-4,
              (i, g.logprobs.token_logprobs[0], elp.token_logprobs[i]))
    # max_tokens 0 with echo: the prompt scored, nothing generated
    z = client.completions.create(model=MODEL, prompt=prompt, max_tokens=0, logprobs=0,
                                  echo=True)
    check(z.choices[0].text == prompt and z.usage.completion_tokens == 0, z)
    check(z.choices[0].logprobs.token_logprobs == elp.token_logprobs[:len(ids)], z)
    z = client.completions.create(model=MODEL, prompt=prompt, max_tokens=0, echo=True)
    check(z.choices[0].text == prompt and z.choices[0].logprobs is None, z)
    check(z.usage.completion_tokens == 0 and z.choices[0].finish_reason == "length", z)
    streamed = list(client.completions.create(model=MODEL, prompt=prompt, max_tokens=2,
                                              temperature=0, logprobs=0, echo=True, stream=True))
    check(streamed[0].choices[0].text == prompt, streamed[0])
    check("".join(ch.choices[0].text for ch in streamed) == prompt + c.text[:len(
        "".join(lp.tokens[:2]))], streamed)


def echo_matches_perplexity():
    # echo's prompt scores against `hearth perplexity` on the same 128 tokens of real text:
    # the tool scores tokens 65..127 from its own forward passes; the mean of echo's values
    # there must give its perplexity
    src, exe = os.environ.get("HEARTH_SOURCE_DIR"), os.environ.get("HEARTH_BIN")
    if not src or not exe:
        print("test_openai: echo_matches_perplexity skipped (no HEARTH_BIN)")
        return
    text_path = os.path.join(src, "tests", "data", "kjv-genesis.txt")
    model = os.path.join(src, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    out = subprocess.run([exe, "perplexity", "-m", model, "-f", text_path, "-c", "128",
                          "--chunks", "1", "-t", "2", "--json"], capture_output=True, text=True,
                         timeout=600)
    check(out.returncode == 0, out.stderr)
    ppl = json.loads(out.stdout)["ppl"]
    with open(text_path, encoding="utf-8") as f:
        head = f.read(4000)
    ids = json.loads(request("POST", "/tokenize", {"content": head, "parse_special": False})[2])[
        "tokens"][:128]
    e = client.completions.create(model=MODEL, prompt=ids, max_tokens=0, logprobs=0, echo=True)
    lps = e.choices[0].logprobs.token_logprobs
    check(len(lps) == 128, len(lps))
    got = math.exp(-sum(lps[65:128]) / 63)
    check(abs(got - ppl) <= 1e-5 * ppl, f"echo gives perplexity {got}, hearth perplexity {ppl}")


def choices():
    # several prompts in one request: choice i is prompt i's reply, as if sent alone
    prompts = ["The capital of France is", "1, 2, 3,", "Once upon a time"]
    alone = [client.completions.create(model=MODEL, prompt=p, max_tokens=6, temperature=0)
             for p in prompts]
    r = client.completions.create(model=MODEL, prompt=prompts, max_tokens=6, temperature=0)
    check([c.index for c in r.choices] == [0, 1, 2], r.choices)
    check([c.text for c in r.choices] == [a.choices[0].text for a in alone], (r, alone))
    check(r.usage.prompt_tokens == sum(a.usage.prompt_tokens for a in alone), r.usage)
    check(r.usage.completion_tokens == sum(a.usage.completion_tokens for a in alone), r.usage)
    texts, finishes = ["", "", ""], [0, 0, 0]
    for ch in client.completions.create(model=MODEL, prompt=prompts, max_tokens=6,
                                        temperature=0, stream=True):
        for c in ch.choices:
            texts[c.index] += c.text
            finishes[c.index] += c.finish_reason is not None
    check(texts == [c.text for c in r.choices] and finishes == [1, 1, 1], (texts, finishes))
    # n samples of one conversation: choice j samples with seed + j, so the reply is
    # reproducible and choice j equals a request of its own with that seed
    kw = dict(model=MODEL, messages=[{"role": "user", "content": "Tell me a short story."}],
              max_tokens=12, temperature=1.0)
    a = client.chat.completions.create(n=3, seed=7, **kw)
    b = client.chat.completions.create(n=3, seed=7, **kw)
    got = [c.message.content for c in a.choices]
    check(got == [c.message.content for c in b.choices], (a, b))
    check(len(set(got)) > 1, f"three samples, one text: {got}")
    one = client.chat.completions.create(n=1, seed=8, **kw).choices[0].message.content
    check(got[1] == one, (got, one))
    roles, texts = [0, 0, 0], ["", "", ""]
    for ch in client.chat.completions.create(n=3, seed=7, stream=True, **kw):
        for c in ch.choices:
            roles[c.index] += c.delta.role is not None
            texts[c.index] += c.delta.content or ""
    check(roles == [1, 1, 1] and texts == got, (roles, texts, got))


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


def tools():
    ask = {"role": "user", "content": "What is the weather in Paris?"}
    called = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    result = {"role": "tool", "tool_call_id": "c1", "content": "18 C, sunny"}
    # the prompt: tools offered in the system turn, the call and its result written back
    st, _, raw = request("POST", "/apply-template",
                         {"messages": [ask, called, result], "tools": TOOLS})
    prompt = json.loads(raw)["prompt"]
    check(st == 200 and "<tools>\n" + json.dumps(TOOLS[0]["function"], separators=(",", ":"))
          in prompt, prompt)
    check('<tool_call>\n{"name":"get_weather","arguments":{"city":"Paris"}}\n</tool_call>'
          in prompt, prompt)
    check("<tool_response>\n18 C, sunny\n</tool_response>" in prompt, prompt)
    st, _, raw = request("POST", "/apply-template",
                         {"messages": [ask], "tools": TOOLS, "tool_choice": "none"})
    check(st == 200 and "<tools>" not in json.loads(raw)["prompt"], raw)
    two = TOOLS + [{"type": "function", "function": {"name": "get_time"}}]
    st, _, raw = request("POST", "/apply-template",
                         {"messages": [ask], "tools": two, "tool_choice": "required"})
    check(json.loads(raw)["prompt"].endswith('<tool_call>\n{"name": "'), raw)

    # a named function: the reply is that call, arguments a JSON string, content null
    kw = dict(model=MODEL, messages=[ask], tools=TOOLS, temperature=0, max_tokens=48,
              tool_choice={"type": "function", "function": {"name": "get_weather"}})
    r = client.chat.completions.create(**kw)
    c = r.choices[0]
    check(c.finish_reason == "tool_calls" and c.message.content is None, c)
    calls = c.message.tool_calls
    check(len(calls) == 1 and calls[0].type == "function" and calls[0].id, calls)
    check(calls[0].function.name == "get_weather", calls)
    # the arguments follow the function's parameters schema (the only property, a string)
    args = json.loads(calls[0].function.arguments)
    check(set(args) == {"city"} and isinstance(args["city"], str), calls)
    # one tool that is required is called the same way
    req = client.chat.completions.create(**dict(kw, tool_choice="required"))
    check(req.choices[0].message.tool_calls[0].function.arguments == calls[0].function.arguments,
          req)
    streamed, finish = {}, None
    for ch in client.chat.completions.create(stream=True, **kw):
        for x in ch.choices:
            finish = x.finish_reason or finish
            check(not x.delta.content, x.delta)  # a call is never streamed as content
            for tc in x.delta.tool_calls or []:
                streamed[tc.index] = (tc.id, tc.function.name, tc.function.arguments)
    check(finish == "tool_calls" and len(streamed) == 1, (finish, streamed))
    check(streamed[0][1:] == (calls[0].function.name, calls[0].function.arguments),
          (streamed, calls))
    # the conversation goes on with the result, the model free to answer in words
    r = client.chat.completions.create(model=MODEL, messages=[ask, called, result],
                                       tools=TOOLS, temperature=0, max_tokens=16)
    c = r.choices[0]
    check(c.finish_reason in ("stop", "length", "tool_calls"), c)
    check(c.message.content or c.message.tool_calls, c)


def as_f32(xs):
    return array.array("f", xs).tolist()


def embeddings():
    texts = ["The capital of France is Paris.", "1, 2, 3, 4, 5", "Once upon a time there was"]
    # the client asks for base64 by default and decodes the float32 bytes itself
    r = client.embeddings.create(model=MODEL, input=texts)
    check(r.object == "list" and r.model == MODEL, r)
    check([d.index for d in r.data] == [0, 1, 2], r.data)
    vecs = [d.embedding for d in r.data]
    n_embd = len(vecs[0])
    check(n_embd == 576 and all(len(v) == n_embd for v in vecs), [len(v) for v in vecs])
    for v in vecs:
        check(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-5, "not unit length")
    # the same vectors as JSON numbers: 9 digits give the float32 back exactly
    f = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    check([as_f32(d.embedding) for d in f.data] == [as_f32(v) for v in vecs], "float != base64")
    # usage counts the prompt tokens a completion of the same text counts
    used = sum(client.completions.create(model=MODEL, prompt=t, max_tokens=1).usage.prompt_tokens
               for t in texts)
    check(r.usage.prompt_tokens == used and r.usage.total_tokens == used, (r.usage, used))
    # alone or batched with other inputs, an input gets the same bits
    alone = client.embeddings.create(model=MODEL, input=texts[1], encoding_format="float")
    check(as_f32(alone.data[0].embedding) == as_f32(vecs[1]), "alone != batched")
    # token ids are taken as given: the text's own ids give its vector
    ids = json.loads(request("POST", "/tokenize", {"content": texts[2]})[2])["tokens"]
    by_ids = client.embeddings.create(model=MODEL, input=[ids], encoding_format="float")
    same_tok = len(ids) == client.completions.create(model=MODEL, prompt=texts[2],
                                                     max_tokens=1).usage.prompt_tokens
    if same_tok:
        check(as_f32(by_ids.data[0].embedding) == as_f32(vecs[2]), "ids != text")
    # dimensions keeps a prefix, normalized again
    d = client.embeddings.create(model=MODEL, input=texts[0], dimensions=64,
                                 encoding_format="float").data[0].embedding
    norm = math.sqrt(sum(x * x for x in vecs[0][:64]))
    check(len(d) == 64 and max(abs(a - b / norm) for a, b in zip(d, vecs[0][:64])) < 1e-6, d[:4])
    # different texts, different vectors; one text twice, one vector
    twice = client.embeddings.create(model=MODEL, input=[texts[0], texts[0]],
                                     encoding_format="float").data
    check(as_f32(twice[0].embedding) == as_f32(twice[1].embedding), "same text, other vector")
    check(max(abs(a - b) for a, b in zip(vecs[0], vecs[1])) > 1e-2, "texts 0 and 1 alike")
    # `hearth embed` (one sequence, its own batches) gives the server's bits
    exe = os.environ.get("HEARTH_BIN")
    src = os.environ.get("HEARTH_SOURCE_DIR")
    if exe and src:
        model = os.path.join(src, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
        out = subprocess.run([exe, "embed", "-m", model, "-p", texts[0], "--json"],
                             capture_output=True, text=True, timeout=120)
        check(out.returncode == 0, out.stderr)
        cli = json.loads(out.stdout)["data"][0]["embedding"]
        check(as_f32(cli) == as_f32(vecs[0]), "hearth embed differs from /v1/embeddings")
    # more inputs than the server's queue (8): fed a few at a time, in order
    many = [f"Item number {i} of the list." for i in range(40)]
    m = client.embeddings.create(model=MODEL, input=many, encoding_format="float")
    check([x.index for x in m.data] == list(range(40)), [x.index for x in m.data])
    last = client.embeddings.create(model=MODEL, input=many[39], encoding_format="float")
    check(as_f32(m.data[39].embedding) == as_f32(last.data[0].embedding), "input 39 differs")


def json_mode():
    # response_format json_object: the reply is one JSON object, whole or streamed, greedy or
    # sampled; an unconstrained greedy reply to the same request is not JSON at all
    msgs = [{"role": "user", "content": "Give a JSON object with the keys name and color for a cat."}]
    # (SmolLM2 135M answers this with Python code when unconstrained)
    free = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=60,
                                          temperature=0).choices[0].message.content
    try:
        json.loads(free)
        raise AssertionError(f"the unconstrained reply is JSON already: {free!r}")
    except ValueError:
        pass
    fmt = {"type": "json_object"}
    r = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=200,
                                       temperature=0, response_format=fmt)
    c = r.choices[0]
    check(c.finish_reason == "stop", (c.finish_reason, c.message.content))
    obj = json.loads(c.message.content)
    check(isinstance(obj, dict), c.message.content)
    streamed = "".join(ch.choices[0].delta.content or "" for ch in client.chat.completions.create(
        model=MODEL, messages=msgs, max_tokens=200, temperature=0, response_format=fmt,
        stream=True) if ch.choices)
    check(streamed == c.message.content, (streamed, c.message.content))
    for seed in (1, 2, 3):
        t = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=200,
                                           temperature=1.0, seed=seed, response_format=fmt)
        tc = t.choices[0]
        if tc.finish_reason == "stop":
            check(isinstance(json.loads(tc.message.content), dict), tc.message.content)
    p = client.completions.create(model=MODEL, prompt="A JSON object with a name and an age:",
                                  max_tokens=100, temperature=0, extra_body={"response_format": fmt})
    if p.choices[0].finish_reason == "stop":
        check(isinstance(json.loads(p.choices[0].text), dict), p.choices[0].text)
    else:
        check(p.choices[0].text.lstrip().startswith("{"), p.choices[0].text)


def json_schema_mode():
    # response_format json_schema through the client's own structured-output path: it sends
    # pydantic's strict schema (enum via $defs/$ref, Optional as anyOf with null, a list of
    # nested objects) and validates each reply with pydantic, independently of hearth
    import enum
    from typing import Optional

    import pydantic

    class Color(str, enum.Enum):
        black = "black"
        white = "white"
        orange = "orange"

    class Toy(pydantic.BaseModel):
        name: str
        squeaks: bool

    class Cat(pydantic.BaseModel):
        name: str
        age: int
        color: Color
        nickname: Optional[str]
        toys: list[Toy]

    msgs = [{"role": "user", "content": "Describe a cat as JSON: name, age, color, nickname, toys."}]
    parsed = []
    for seed in range(1, 7):
        try:
            r = client.chat.completions.parse(model=MODEL, messages=msgs, response_format=Cat,
                                              max_tokens=200, temperature=1.0, seed=seed)
        except openai.LengthFinishReasonError:
            continue  # a 135M model may ramble inside a string until max_tokens
        check(r.choices[0].finish_reason == "stop", r.choices[0])
        parsed.append(r.choices[0].message.parsed)
    check(len(parsed) >= 2 and all(isinstance(p, Cat) for p in parsed), parsed)
    # a keyword hearth cannot enforce is refused, naming it
    try:
        client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=8, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": {
                "type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]+$"}}}}})
        raise AssertionError("a schema with 'pattern' was accepted")
    except openai.BadRequestError as e:
        check("pattern" in str(e) and "/properties/zip" in str(e), str(e))


def errors_through_client():
    try:
        client.chat.completions.create(model=MODEL, messages=MSG, temperature=-1)
        raise AssertionError("temperature -1 accepted")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and "temperature" in str(e), str(e))
    bad = openai.OpenAI(base_url=URL + "/v1", api_key="wrong", timeout=30, max_retries=0)
    try:
        bad.models.list()
        raise AssertionError("wrong key accepted")
    except openai.AuthenticationError as e:
        check(e.status_code == 401, str(e))


whole = chat_plain()
chat_stream(whole)
completion_plain_and_stream()
stop_strings()
seeds()
logit_bias()
tokenize()
logprobs()
echo_matches_perplexity()
choices()
tools()
embeddings()
json_mode()
json_schema_mode()
errors_through_client()
print("test_openai: ok")
