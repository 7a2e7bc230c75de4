"""A client that disconnects cancels its generation and frees its slot: streamed
(closed after the first chunk), whole (closed while waiting), and embeddings (closed
while its inputs run)."""
import time

from common import check, metrics, raw_stream_open, read_until, request, wait_metric

CHAT = "/v1/chat/completions"
LONG = {"messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
        "max_tokens": 1000, "temperature": 0}

base = metrics()
s = raw_stream_open(CHAT, dict(LONG, stream=True))
first = read_until(s, rb"data: \{.*\n\n")
check(b"200 OK" in first and b"chat.completion.chunk" in first, first[:300])
wait_metric("hearth_slots_active", lambda v: v >= 1)
s.close()
t0 = time.time()
wait_metric("hearth_requests_cancelled_total",
            lambda v: v >= base["hearth_requests_cancelled_total"] + 1)
wait_metric("hearth_slots_active", lambda v: v == 0)
freed_s = time.time() - t0
m = metrics()
gen = m["hearth_generated_tokens_total"] - base["hearth_generated_tokens_total"]
check(gen < 900, f"{gen} tokens generated: the generation was not cancelled")

# a whole (non-streamed) request whose client gives up while it runs
s = raw_stream_open(CHAT, LONG)
wait_metric("hearth_slots_active", lambda v: v >= 1)
time.sleep(0.3)
s.close()
wait_metric("hearth_requests_cancelled_total",
            lambda v: v >= base["hearth_requests_cancelled_total"] + 2)
wait_metric("hearth_slots_active", lambda v: v == 0)

# an embeddings request of many long inputs whose client leaves: what runs is cancelled and
# the inputs not yet fed never are
before = metrics()
s = raw_stream_open("/v1/embeddings", {"input": ["word " * 200] * 500})
wait_metric("hearth_slots_active", lambda v: v >= 1)
time.sleep(0.3)
s.close()
wait_metric("hearth_requests_cancelled_total",
            lambda v: v >= before["hearth_requests_cancelled_total"] + 1)
wait_metric("hearth_slots_active", lambda v: v == 0)
time.sleep(0.5)
m = metrics()
fed = m["hearth_prompt_tokens_total"] - before["hearth_prompt_tokens_total"]
done = m["hearth_embeddings_total"] - before["hearth_embeddings_total"]
check(fed < 50000 and done < 250, f"{fed} prompt tokens, {done} embeddings after the close")

st, _, body = request("POST", CHAT, {"messages": [{"role": "user", "content": "hi"}],
                                     "max_tokens": 4})
check(st == 200, (st, body))
print(f"test_disconnect: ok (slot freed {freed_s:.2f} s after the close)")
