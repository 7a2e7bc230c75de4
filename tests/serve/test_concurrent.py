"""8 concurrent streaming clients: all complete, and each greedy reply equals
the same request run alone (continuous batching must not change a sequence's
numbers)."""
import threading

import openai

from common import KEY, URL, check, metrics

client = openai.OpenAI(base_url=URL + "/v1", api_key=KEY, timeout=60, max_retries=0)
MODEL = client.models.list().data[0].id
QUESTIONS = ["What is the capital of France?", "Name three colors.", "What is 7 times 8?",
             "Write a haiku about the sea.", "Who wrote Hamlet?", "What do bees make?",
             "Say hello in Spanish.", "What is the boiling point of water?"]
N_TOK = 16


def ask(q, out, i):
    try:
        text, finish = "", None
        for ch in client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": q}], max_tokens=N_TOK,
                temperature=0, stream=True):
            for c in ch.choices:
                text += c.delta.content or ""
                finish = c.finish_reason or finish
        out[i] = (text, finish)
    except Exception as e:  # reported by the main thread
        out[i] = e


alone = []
for q in QUESTIONS:
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": q}],
                                       max_tokens=N_TOK, temperature=0)
    alone.append((r.choices[0].message.content, r.choices[0].finish_reason))

before = metrics()
res = [None] * len(QUESTIONS)
threads = [threading.Thread(target=ask, args=(q, res, i)) for i, q in enumerate(QUESTIONS)]
for t in threads:
    t.start()
for t in threads:
    t.join(90)
    check(not t.is_alive(), "a client did not finish")
after = metrics()
for i, q in enumerate(QUESTIONS):
    check(not isinstance(res[i], Exception), f"client {i}: {res[i]!r}")
    check(res[i] == alone[i], f"{q!r}: batched {res[i]!r} != alone {alone[i]!r}")
steps = after["hearth_engine_steps_total"] - before["hearth_engine_steps_total"]
gen = after["hearth_generated_tokens_total"] - before["hearth_generated_tokens_total"]
# batching: fewer forward passes than generated tokens (several sequences per step)
check(steps < gen, f"{steps} steps for {gen} tokens: no batching happened")
print(f"test_concurrent: ok ({int(gen)} tokens in {int(steps)} steps)")
