#!/usr/bin/env python3
"""Independent numpy reference of the forward pass (llama, qwen3 and gemma3 GGUFs).

Written from the facts sheet (../../shared/docs, §4, §6, §8), not from hearth's C
code: weights are dequantized with the `gguf` package (gguf.quants.dequantize),
everything is computed in float32 with float64 norm sums, the KV "cache" is kept
in float32, and activations are NOT quantized unless --emulate-q8 is given (then
matmul inputs are rounded the way hearth's CPU dot products round them: Q8_0/Q8_1
per 32 values with an f16 scale, Q8_K per 256 with an f32 scale, and K/V rounded to
f16). It writes the golden file tests/data/fwd-<name>.txt that tests/test-forward.c
reads.

Usage (in a venv with `pip install numpy gguf`):
    python tests/ref/ref_forward.py MODEL.gguf OUT.txt [--emulate-q8] [--gen N]
        [--tokens 1,2,3]
The default token sequence is the SmolLM2 chat prompt of test-forward.c (ids from
this file's own byte-level BPE over the GGUF vocabulary and merges) for llama, and
the Gemma chat prompt "<bos><start_of_turn>user\nWhat is the capital of
France?<end_of_turn>\n<start_of_turn>model\n" as ids (checked against the GGUF
token list) for gemma3; qwen3 (a random-weight `hearth synth` file, whose byte-level
vocabulary has no real words) the fixed ids QWEN3_IDS. qwen3, from the public Qwen3 config and
llama.cpp's conventions: rotates halves (NEOX) like qwen2 but has no q/k/v biases, and
RMS-normalises each head of q and k with attn_q_norm / attn_k_norm (weights as stored,
the layers' eps) before RoPE; head_dim is key_length. Not handled: qwen2 biases,
linear/llama3 RoPE scaling (no test model uses them). --emulate-q8 does not emulate
the f16 rounding of Q8_1's block sum.

The committed goldens were made with (models from scripts/fetch-models.sh):
    ref_forward.py SmolLM2-135M-Instruct.Q4_1.gguf fwd-smollm2.txt --gen 12
    ref_forward.py SmolLM2-135M-Instruct.Q4_1.gguf fwd-smollm2-q8.txt --gen 12 --emulate-q8
    ref_forward.py gemma-3-270m-Q4_K_M.gguf fwd-gemma3.txt --gen 8
    ref_forward.py gemma-3-270m-Q4_K_M.gguf fwd-gemma3-q8.txt --emulate-q8
    ref_forward.py gemma-3-270m-Q4_K_M.gguf fwd-gemma3-swa4.txt --swa 4
(about a minute each on two cores; greedy tokens recompute the whole sequence), and
for qwen3 (~10 s each; tests/fixtures.c writes the same file at test time):
    hearth synth --preset qwen3-0.6b --type Q8_0 --layers 2 --seed 3 --std 0.05 \
        --norm-std 0.3 -o qwen3-synth.gguf
    ref_forward.py qwen3-synth.gguf fwd-qwen3.txt --positions 0,1,2,4,7,10,13,15 --topk 8
    ref_forward.py qwen3-synth.gguf fwd-qwen3-q8.txt --positions 0,1,2,4,7,10,13,15 \
        --topk 8 --emulate-q8
(no --gen: a random model's top logits lie within 8-bit rounding noise of each other).
"""
import argparse
import math
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

Q8_K_TYPES = {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"}
F32_ACT_TYPES = {"F32", "F16", "BF16"}


def field(r, key, default=None):
    f = r.fields.get(key)
    if f is None:
        return default
    return f.contents()


class Weights:
    def __init__(self, path):
        self.r = GGUFReader(path)
        self.t = {t.name: t for t in self.r.tensors}
        self.cache = {}

    def has(self, name):
        return name in self.t

    def get(self, name):
        if name not in self.cache:
            t = self.t[name]
            a = dequantize(t.data, t.tensor_type).astype(np.float32)
            shape = [int(x) for x in t.shape][::-1]  # numpy order: [ne1, ne0]
            self.cache[name] = a.reshape(shape)
        return self.cache[name]

    def type_name(self, name):
        return self.t[name].tensor_type.name


def round_away(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def q8_block(x, blk):
    """Q8_0/Q8_1 activation rounding of rows of x, blocks of blk values (f16 scale)."""
    s = x.reshape(x.shape[0], -1, blk)
    amax = np.abs(s).max(axis=2, keepdims=True)
    d = amax / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0.0)
    q = round_away(s * inv)
    d16 = d.astype(np.float16).astype(np.float32)
    return (q * d16).reshape(x.shape).astype(np.float32)


def q8_k(x):
    """Q8_K activation rounding: per 256, signed max, iscale = -127/max, f32 scale."""
    s = x.reshape(x.shape[0], -1, 256).astype(np.float32)
    idx = np.abs(s).argmax(axis=2)
    xmax = np.take_along_axis(s, idx[..., None], axis=2)
    iscale = np.where(xmax != 0, np.float32(-127.0) / np.where(xmax != 0, xmax, 1), 0).astype(
        np.float32)
    q = np.minimum(127, np.rint(iscale * s))
    d = np.where(iscale != 0, 1.0 / np.where(iscale != 0, iscale, 1), 0).astype(np.float32)
    return (q * d).reshape(x.shape).astype(np.float32)


class Model:
    def __init__(self, path, emulate):
        self.w = Weights(path)
        r = self.w.r
        self.arch = field(r, "general.architecture")
        a = self.arch
        g = lambda k, d=None: field(r, f"{a}.{k}", d)
        self.n_layer = int(g("block_count"))
        self.n_embd = int(g("embedding_length"))
        self.n_head = int(g("attention.head_count"))
        self.n_kv = int(g("attention.head_count_kv", self.n_head))
        self.hd = int(g("attention.key_length", self.n_embd // self.n_head))
        self.n_rot = int(g("rope.dimension_count", self.hd))
        self.eps = float(g("attention.layer_norm_rms_epsilon"))
        self.base = float(g("rope.freq_base", 10000.0))
        self.gemma = a == "gemma3"
        self.qk_norm = a in ("gemma3", "qwen3")
        self.neox = a in ("gemma3", "qwen3")
        self.swa = int(g("attention.sliding_window", 0)) if self.gemma else 0
        self.base_local = float(g("rope.freq_base_swa", 10000.0))
        self.emulate = emulate
        self.scale = 1.0 / math.sqrt(self.hd)
        if self.gemma and self.n_layer == 62:
            self.scale = 1.0 / math.sqrt(self.n_embd / self.n_head)
        self.out_name = "output.weight" if self.w.has("output.weight") else "token_embd.weight"
        if a not in ("llama", "gemma3", "qwen3"):
            sys.exit(f"ref: architecture {a} not handled by this reference")

    def is_local(self, il):
        return self.gemma and self.swa > 0 and il % 6 < 5

    def mm(self, name, x):
        """x: [T, K] -> [T, N] with W [N, K] (rows = outputs)."""
        W = self.w.get(name)
        if self.emulate:
            tn = self.w.type_name(name)
            if tn in Q8_K_TYPES:
                x = q8_k(x)
            elif tn not in F32_ACT_TYPES:
                x = q8_block(x, 32)
        return (x.astype(np.float32) @ W.T).astype(np.float32)

    def norm(self, x, wname):
        x64 = x.astype(np.float64)
        r = 1.0 / np.sqrt((x64 * x64).mean(axis=-1, keepdims=True) + self.eps)
        y = (x * r.astype(np.float32)).astype(np.float32)
        return y * self.w.get(wname) if wname else y

    def rope(self, x, pos, base):
        """x: [T, H, hd]; llama: adjacent pairs, gemma3 and qwen3: halves (facts §4.4)."""
        half = self.n_rot // 2
        k = np.arange(half, dtype=np.float64)
        inv = base ** (-2.0 * k / self.n_rot)
        th = np.asarray(pos, dtype=np.float64)[:, None] * inv[None, :]
        c = np.cos(th).astype(np.float32)[:, None, :]
        s = np.sin(th).astype(np.float32)[:, None, :]
        y = x.copy()
        if self.neox:
            a, b = x[..., :half], x[..., half:self.n_rot]
            y[..., :half] = a * c - b * s
            y[..., half:self.n_rot] = a * s + b * c
        else:  # NORMAL
            a, b = x[..., 0:self.n_rot:2], x[..., 1:self.n_rot:2]
            y[..., 0:self.n_rot:2] = a * c - b * s
            y[..., 1:self.n_rot:2] = a * s + b * c
        return y

    def forward(self, tokens):
        """All-position logits [T, n_vocab] of one pass over tokens from position 0."""
        T = len(tokens)
        E = self.w.get("token_embd.weight")
        x = E[np.asarray(tokens)].astype(np.float32)
        if self.gemma:
            x = x * np.float32(math.sqrt(self.n_embd))
        pos = np.arange(T)
        gqa = self.n_head // self.n_kv
        for il in range(self.n_layer):
            p = f"blk.{il}."
            a = self.norm(x, p + "attn_norm.weight")
            q = self.mm(p + "attn_q.weight", a).reshape(T, self.n_head, self.hd)
            k = self.mm(p + "attn_k.weight", a).reshape(T, self.n_kv, self.hd)
            v = self.mm(p + "attn_v.weight", a).reshape(T, self.n_kv, self.hd)
            if self.qk_norm:  # per head (norm reduces the last axis), before RoPE
                q = self.norm(q, p + "attn_q_norm.weight")
                k = self.norm(k, p + "attn_k_norm.weight")
            base = self.base_local if self.is_local(il) else self.base
            q = self.rope(q, pos, base)
            k = self.rope(k, pos, base)
            if self.emulate:
                k = k.astype(np.float16).astype(np.float32)
                v = v.astype(np.float16).astype(np.float32)
            o = np.zeros((T, self.n_head, self.hd), dtype=np.float32)
            for h in range(self.n_head):
                g = h // gqa
                s = (q[:, h, :] @ k[:, g, :].T) * np.float32(self.scale)  # [T, T]
                i, j = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
                mask = j > i
                if self.is_local(il):
                    mask |= (i - j) >= self.swa
                s = np.where(mask, -np.inf, s)
                s = s - s.max(axis=1, keepdims=True)
                e = np.exp(s.astype(np.float64))
                pr = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
                o[:, h, :] = pr @ v[:, g, :]
            t = self.mm(p + "attn_output.weight", o.reshape(T, -1))
            if self.gemma:
                t = self.norm(t, p + "post_attention_norm.weight")
            x = x + t
            a = self.norm(x, p + "ffn_norm.weight")
            gt = self.mm(p + "ffn_gate.weight", a)
            up = self.mm(p + "ffn_up.weight", a)
            if self.gemma:
                c = np.float32(math.sqrt(2.0 / math.pi))
                act = 0.5 * gt * (1.0 + np.tanh(c * (gt + np.float32(0.044715) * gt ** 3)))
            else:
                act = gt / (1.0 + np.exp(-gt))
            t = self.mm(p + "ffn_down.weight", (act * up).astype(np.float32))
            if self.gemma:
                t = self.norm(t, p + "post_ffw_norm.weight")
            x = x + t
        h = self.norm(x, "output_norm.weight")
        return self.mm(self.out_name, h)


def gpt2_byte_map():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def bpe_encode_word(word, ranks, vocab):
    """Byte-level BPE of one pre-token (text without special tokens)."""
    bm = gpt2_byte_map()
    parts = [bm[b] for b in word.encode("utf-8")]
    while len(parts) > 1:
        best = None
        for i in range(len(parts) - 1):
            rk = ranks.get((parts[i], parts[i + 1]))
            if rk is not None and (best is None or rk < best[0]):
                best = (rk, i)
        if best is None:
            break
        i = best[1]
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return [vocab[p] for p in parts]


def smollm_prompt_ids(r):
    tokens = field(r, "tokenizer.ggml.tokens")
    merges = field(r, "tokenizer.ggml.merges")
    vocab = {t: i for i, t in enumerate(tokens)}
    ranks = {}
    for i, m in enumerate(merges):
        a, b = m.split(" ", 1)
        ranks[(a, b)] = i
    # "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    # pre-tokenized by hand with the GPT-2 rule (a word keeps its leading space):
    seq = [("S", "<|im_start|>"), ("T", "user"), ("T", "\n"), ("T", "What"), ("T", " is"),
           ("T", " the"), ("T", " capital"), ("T", " of"), ("T", " France"), ("T", "?"),
           ("S", "<|im_end|>"), ("T", "\n"), ("S", "<|im_start|>"), ("T", "assistant"),
           ("T", "\n")]
    ids = []
    for kind, s in seq:
        ids += [vocab[s]] if kind == "S" else bpe_encode_word(s, ranks, vocab)
    return ids


# A random-weight file has no words to say: ids spread over the 151936-entry vocabulary
# (the last row included), so the embedding and LM-head rows far from 0 are read too.
QWEN3_IDS = [9707, 11, 1879, 0, 151643, 35, 120000, 42, 77777, 5, 3000, 151935, 17, 64000,
             256, 1024]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--emulate-q8", action="store_true")
    ap.add_argument("--gen", type=int, default=0, help="greedy tokens to generate")
    ap.add_argument("--tokens", default=None)
    ap.add_argument("--positions", default="0,1,2,-1")
    ap.add_argument("--topk", type=int, default=5)
    ap.add_argument("--swa", type=int, default=0,
                    help="override the sliding window (to exercise the mask on short inputs)")
    a = ap.parse_args()
    m = Model(a.model, a.emulate_q8)
    if a.swa:
        m.swa = a.swa
    if a.tokens:
        ids = [int(t) for t in a.tokens.split(",")]
    elif m.arch == "llama":
        ids = smollm_prompt_ids(m.w.r)
    elif m.arch == "qwen3":
        ids = QWEN3_IDS
    else:
        ids = [2, 105, 2364, 107, 3689, 563, 506, 5279, 529, 7001, 236881, 106, 107, 105, 4368, 107]
    logits = m.forward(ids)
    gen = []
    seq = list(ids)
    last = logits[-1]
    for _ in range(a.gen):
        nxt = int(np.argmax(last))
        gen.append(nxt)
        seq.append(nxt)
        last = m.forward(seq)[-1]  # recompute from scratch: simple, obviously right
    with open(a.out, "w") as f:
        f.write(f"# generated by tests/ref/ref_forward.py {a.model.split('/')[-1]}"
                f"{' --emulate-q8' if a.emulate_q8 else ''}{f' --swa {a.swa}' if a.swa else ''}\n")
        f.write("prompt " + " ".join(str(t) for t in ids) + "\n")
        for ps in a.positions.split(","):
            p = int(ps) % len(ids)
            row = logits[p]
            top = np.argsort(-row, kind="stable")[: a.topk]
            f.write(f"pos {p} max_abs {float(np.abs(row).max()):.6f} top " +
                    " ".join(f"{int(i)}:{float(row[i]):.6f}" for i in top) + "\n")
        if gen:
            f.write("greedy " + " ".join(str(t) for t in gen) + "\n")
    print(open(a.out).read())


if __name__ == "__main__":
    main()
