#!/usr/bin/env python3
"""Writes tests/corpus/gguf/*.gguf: small, hand-made broken GGUF files, and EXPECTED.

Every file is one valid base file with exactly one defect: cut short inside a
given field, or one field overwritten. EXPECTED lists, per file, the status
gguf_open must return and a substring of its message, offset included; the
offsets are computed here from where the generator placed each field, so they
are the ground truth test-gguf checks the reader against.

The base file starts with a 180-byte string value so that cuts made later in
the header still pass the reader's "could the counts fit" check and reach the
record-level error they are meant to exercise.

Run: python3 tests/corpus/make-gguf-corpus.py   (rewrites the directory)
"""
import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf")

VT = dict(u8=0, i8=1, u16=2, i16=3, u32=4, i32=5, f32=6, bool=7, str=8, arr=9,
          u64=10, i64=11, f64=12)
F32, Q8_0 = 0, 8
ALIGN = 32


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def gstr(b):
    if isinstance(b, str):
        b = b.encode()
    return u64(len(b)) + b


class Builder:
    """Appends fields and remembers where each one starts (pos[name])."""

    def __init__(self):
        self.buf = bytearray()
        self.pos = {}

    def put(self, name, data):
        self.pos[name] = len(self.buf)
        self.buf += data


def base(over=None):
    """The valid base file; over maps a field name to replacement bytes."""
    over = over or {}
    b = Builder()

    def put(name, data):
        b.put(name, over.get(name, data))

    put("magic", b"GGUF")
    put("version", u32(3))
    put("tensor_count", u64(2))
    put("kv_count", u64(6))
    # kv0: a long description (padding for the count check)
    put("kv0.keylen", u64(19))
    put("kv0.key", b"general.description")
    put("kv0.type", u32(VT["str"]))
    put("kv0.val", gstr(b"d" * 180))
    # kv1: architecture string
    put("kv1.keylen", u64(20))
    put("kv1.key", b"general.architecture")
    put("kv1.type", u32(VT["str"]))
    put("kv1.vallen", u64(5))
    put("kv1.val", b"llama")
    # kv2: array of 3 strings
    put("kv2.key", gstr("tokenizer.ggml.tokens"))
    put("kv2.type", u32(VT["arr"]))
    put("kv2.etype", u32(VT["str"]))
    put("kv2.n", u64(3))
    put("kv2.s0", gstr("a"))
    put("kv2.s1", gstr("bb"))
    put("kv2.s2", gstr("ccc"))
    # kv3: u32
    put("kv3.key", gstr("llama.block_count"))
    put("kv3.type", u32(VT["u32"]))
    put("kv3.val", u32(2))
    # kv4: f32 array
    put("kv4.key", gstr("tokenizer.ggml.scores"))
    put("kv4.type", u32(VT["arr"]))
    put("kv4.etype", u32(VT["f32"]))
    put("kv4.n", u64(3))
    put("kv4.data", struct.pack("<3f", 0.0, -1.0, -2.0))
    # kv5: alignment
    put("kv5.key", gstr("general.alignment"))
    put("kv5.type", u32(VT["u32"]))
    put("kv5.val", u32(ALIGN))
    # tensor infos
    put("t0.name", gstr("token_embd.weight"))
    put("t0.ndims", u32(2))
    put("t0.ne0", u64(8))
    put("t0.ne1", u64(4))
    put("t0.type", u32(F32))
    put("t0.offset", u64(0))
    put("t1.name", gstr("blk.0.attn_q.weight"))
    put("t1.ndims", u32(2))
    put("t1.ne0", u64(32))
    put("t1.ne1", u64(2))
    put("t1.type", u32(Q8_0))
    put("t1.offset", u64(128))
    b.pos["infos_end"] = len(b.buf)
    pad = (-len(b.buf)) % ALIGN
    b.put("padding", bytes(pad))
    b.put("t0.data", bytes(range(128)))
    b.put("t1.data", bytes((i * 7) & 255 for i in range(68)))
    b.put("tail", bytes((-68) % ALIGN))
    return b


B = base()
P = B.pos
DATA = P["t0.data"]
assert P["infos_end"] % ALIGN != 0, "padding must be non-empty for the padding cut"


def cut(n):
    return bytes(B.buf[:n])


def patch(**over):
    return bytes(base({k.replace("__", "."): v for k, v in over.items()}).buf)


def left(n, at):
    """Bytes left after position at in a file of n bytes."""
    return n - at


CASES = []


def case(name, data, expect):
    CASES.append((name, data, expect))


# --- truncated in every section -------------------------------------------
case("trunc-magic", cut(2), "offset 0: header: magic: needs 4 bytes but only 2 are left")
case("trunc-version", cut(6), "offset 4: header: version: needs 4 bytes but only 2 are left")
case("trunc-tensor-count", cut(13),
     "offset 8: header: tensor_count: needs 8 bytes but only 5 are left")
case("trunc-kv-count", cut(20), "offset 16: header: kv_count: needs 8 bytes but only 4 are left")
case("trunc-counts-fit", cut(P["kv0.val"] + 20),
     "offset 8: header: tensor_count 2 needs at least 33 bytes each but only")
case("trunc-kv0-string", cut(P["kv0.val"] + 170),
     "offset %d: metadata kv 0 ('general.description'): string value length 180 exceeds the "
     "%d bytes left" % (P["kv0.val"], P["kv0.val"] + 170 - P["kv0.val"] - 8))
n = P["kv1.keylen"] + 3
case("trunc-key-length", cut(n),
     "offset %d: metadata kv 1: key length: needs 8 bytes but only 3 are left" % P["kv1.keylen"])
n = P["kv1.key"] + 5
case("trunc-key", cut(n),
     "offset %d: metadata kv 1: key length 20 exceeds the 5 bytes left" % P["kv1.keylen"])
n = P["kv1.type"] + 2
case("trunc-value-type", cut(n),
     "offset %d: metadata kv 1 ('general.architecture'): value type: needs 4 bytes but only 2"
     % P["kv1.type"])
n = P["kv1.val"] + 3
case("trunc-string-value", cut(n),
     "offset %d: metadata kv 1 ('general.architecture'): string value length 5 exceeds the 3 "
     "bytes left" % P["kv1.vallen"])
n = P["kv2.etype"] + 1
case("trunc-array-type", cut(n),
     "offset %d: metadata kv 2 ('tokenizer.ggml.tokens'): array element type: needs 4 bytes but "
     "only 1" % P["kv2.etype"])
n = P["kv2.n"] + 7
case("trunc-array-count", cut(n),
     "offset %d: metadata kv 2 ('tokenizer.ggml.tokens'): array count: needs 8 bytes but only 7"
     % P["kv2.n"])
n = P["kv2.s2"] + 9  # late enough that the 3 x 8-byte minimum still fits
case("trunc-array-string", cut(n),
     "offset %d: metadata kv 2 ('tokenizer.ggml.tokens'): array string 2: length 3 exceeds the 1 "
     "bytes left" % P["kv2.s2"])
n = P["kv2.s0"] + 20
case("trunc-array-strings-fit", cut(n),
     "offset %d: metadata kv 2 ('tokenizer.ggml.tokens'): array of 3 strings needs at least 24 "
     "bytes but only 20 are left" % P["kv2.s0"])
n = P["kv4.data"] + 5
case("trunc-array-data", cut(n),
     "offset %d: metadata kv 4 ('tokenizer.ggml.scores'): array of 3 FLOAT32 elements needs 12 "
     "bytes but only 5 are left" % P["kv4.data"])
n = P["kv5.val"] + 1
case("trunc-u32-value", cut(n),
     "offset %d: metadata kv 5 ('general.alignment'): UINT32 value needs 4 bytes but only 1"
     % P["kv5.val"])
n = P["t0.name"] + 12
case("trunc-tensor-name", cut(n),
     "offset %d: tensor info 0: name length 17 exceeds the 4 bytes left" % P["t0.name"])
n = P["t1.ndims"] + 3
case("trunc-n-dims", cut(n),
     "offset %d: tensor info 1 ('blk.0.attn_q.weight'): n_dims: needs 4 bytes but only 3"
     % P["t1.ndims"])
n = P["t1.ne1"] + 4
case("trunc-dims", cut(n),
     "offset %d: tensor info 1 ('blk.0.attn_q.weight'): ne[1]: needs 8 bytes but only 4"
     % P["t1.ne1"])
n = P["t1.type"] + 1
case("trunc-tensor-type", cut(n),
     "offset %d: tensor info 1 ('blk.0.attn_q.weight'): type: needs 4 bytes but only 1"
     % P["t1.type"])
n = P["t1.offset"] + 6
case("trunc-tensor-offset", cut(n),
     "offset %d: tensor info 1 ('blk.0.attn_q.weight'): offset: needs 8 bytes but only 6"
     % P["t1.offset"])
n = P["infos_end"] + 2
case("trunc-padding", cut(n),
     "offset %d: padding: file ends at %d, expected padding up to the data section at %d"
     % (P["infos_end"], n, DATA))
n = P["t1.data"] + 30
case("trunc-tensor-data", cut(n),
     "offset %d: tensor info 1 ('blk.0.attn_q.weight'): data [128, +68) ends past the end of the "
     "file (158 bytes of data section)" % P["t1.offset"])

# --- huge counts and lengths -----------------------------------------------
case("huge-tensor-count", patch(tensor_count=u64(1 << 62)),
     "offset 8: header: tensor_count 4611686018427387904 needs at least 33 bytes each")
case("huge-kv-count", patch(kv_count=u64(1 << 40)),
     "offset 16: header: kv_count 1099511627776 needs at least 14 bytes each")
case("huge-string-length", patch(kv1__vallen=u64(1 << 63)),
     "offset %d: metadata kv 1 ('general.architecture'): string value length 9223372036854775808 "
     "exceeds the" % P["kv1.vallen"])
case("huge-key-length", patch(kv1__keylen=u64((1 << 64) - 1)),
     "offset %d: metadata kv 1: key length 18446744073709551615 exceeds the" % P["kv1.keylen"])
case("huge-array-count", patch(kv4__n=u64(1 << 61)),
     "offset %d: metadata kv 4 ('tokenizer.ggml.scores'): array of 2305843009213693952 FLOAT32 "
     "elements needs 9223372036854775808 bytes" % P["kv4.data"])
case("huge-string-array-count", patch(kv2__n=u64(1 << 61)),
     "offset %d: metadata kv 2 ('tokenizer.ggml.tokens'): array of 2305843009213693952 strings "
     "needs more than 2^64 bytes" % P["kv2.s0"])

# --- tensor data placement ---------------------------------------------------
case("offset-past-end", patch(t1__offset=u64(4096)),
     "offset %d: tensor info 1 ('blk.0.attn_q.weight'): data [4096, +68) ends past the end"
     % P["t1.offset"])
case("offset-misaligned", patch(t1__offset=u64(136)),
     "offset %d: tensor info 1 ('blk.0.attn_q.weight'): data offset 136 is not a multiple of the "
     "alignment 32" % P["t1.offset"])
case("offset-overlap", patch(t1__offset=u64(96)),
     "offset %d: tensor info 1 ('blk.0.attn_q.weight'): data [96, 164) overlaps tensor 0 at "
     "[0, 128)" % P["t1.offset"])
case("offset-overflow", patch(t1__offset=u64((1 << 64) - 32)),
     "offset %d: tensor info 1 ('blk.0.attn_q.weight'): data [18446744073709551584, +68) ends past"
     % P["t1.offset"])

# --- bad type ids ----------------------------------------------------------------
case("value-type-13", patch(kv3__type=u32(13)),
     "offset %d: metadata kv 3 ('llama.block_count'): value type id 13, expected 0..12"
     % P["kv3.type"])
case("array-nested", patch(kv4__etype=u32(VT["arr"])),
     "offset %d: metadata kv 4 ('tokenizer.ggml.scores'): array element type 9 (ARRAY): nested "
     "arrays are not supported" % P["kv4.etype"])
case("array-elem-type-200", patch(kv4__etype=u32(200)),
     "offset %d: metadata kv 4 ('tokenizer.ggml.scores'): array element type id 200, expected "
     "0..12" % P["kv4.etype"])
case("tensor-type-4", patch(t0__type=u32(4)),
     "offset %d: tensor info 0 ('token_embd.weight'): type id 4 is not a known ggml type"
     % P["t0.type"])
case("tensor-type-77", patch(t1__type=u32(77)),
     "offset %d: tensor info 1 ('blk.0.attn_q.weight'): type id 77 is not a known ggml type"
     % P["t1.type"])
case("bool-value-2", patch(kv3__type=u32(VT["bool"]), kv3__val=bytes([2, 0, 0, 0])),
     "offset %d: metadata kv 3 ('llama.block_count'): bool value 2, expected 0 or 1"
     % P["kv3.val"])

# --- dims ---------------------------------------------------------------------------
case("n-dims-0", patch(t0__ndims=u32(0)),
     "offset %d: tensor info 0 ('token_embd.weight'): n_dims 0, expected 1 to 4" % P["t0.ndims"])
case("n-dims-5", patch(t0__ndims=u32(5)),
     "offset %d: tensor info 0 ('token_embd.weight'): n_dims 5, expected 1 to 4" % P["t0.ndims"])
case("dim-zero", patch(t0__ne1=u64(0)),
     "offset %d: tensor info 0 ('token_embd.weight'): ne[1] = 0, expected 1 to 2^63-1"
     % P["t0.ne1"])
case("dim-negative", patch(t0__ne1=u64(1 << 63)),
     "offset %d: tensor info 0 ('token_embd.weight'): ne[1] = 9223372036854775808, expected 1 to "
     "2^63-1" % P["t0.ne1"])
case("dims-overflow", patch(t0__ne0=u64(1 << 32), t0__ne1=u64(1 << 32)),
     "offset %d: tensor info 0 ('token_embd.weight'): ne[1] = 4294967296 makes the element count "
     "overflow" % P["t0.ne1"])
case("row-not-whole-blocks", patch(t1__ne0=u64(48)),
     "offset %d: tensor info 1 ('blk.0.attn_q.weight'): ne[0] = 48 is not a multiple of the Q8_0 "
     "block size 32" % P["t1.type"])

# --- names and keys ---------------------------------------------------------------------
case("duplicate-key", patch(kv3__key=gstr("general.architecture")),
     "offset %d: metadata kv 3 ('general.architecture'): duplicate key, first used by record 1 "
     "at offset %d" % (P["kv3.key"], P["kv1.keylen"]))
case("duplicate-tensor", patch(t1__name=gstr("token_embd.weight")),
     "offset %d: tensor info 1 ('token_embd.weight'): duplicate tensor name, first used by "
     "record 0 at offset %d" % (P["t1.name"], P["t0.name"]))
case("empty-key", patch(kv3__key=gstr("")),
     "offset %d: metadata kv 3: key is empty, expected a non-empty key" % P["kv3.key"])
case("key-bad-utf8", patch(kv3__key=gstr(b"llama.\xffblock_count")),
     "offset %d: metadata kv 3: key byte 6 is 0xff, expected valid UTF-8 without NUL"
     % (P["kv3.key"] + 8 + 6))
case("key-nul", patch(kv3__key=gstr(b"llama\x00block_count")),
     "offset %d: metadata kv 3: key byte 5 is 0x00, expected valid UTF-8 without NUL"
     % (P["kv3.key"] + 8 + 5))
case("tensor-name-64", patch(t0__name=gstr("t" * 64)),
     "offset %d: tensor info 0: name length 64, expected 1 to 63" % P["t0.name"])
case("tensor-name-empty", patch(t0__name=gstr("")),
     "offset %d: tensor info 0: name length 0, expected 1 to 63" % P["t0.name"])

# --- alignment -----------------------------------------------------------------------------
case("alignment-0", patch(kv5__val=u32(0)),
     "offset %d: metadata kv 5 ('general.alignment'): general.alignment is 0, expected a nonzero "
     "power of two" % P["kv5.val"])
case("alignment-3", patch(kv5__val=u32(3)),
     "offset %d: metadata kv 5 ('general.alignment'): general.alignment is 3, expected a nonzero "
     "power of two" % P["kv5.val"])
case("alignment-u64", patch(kv5__type=u32(VT["u64"]), kv5__val=u64(32)),
     "offset %d: metadata kv 5 ('general.alignment'): general.alignment has type UINT64, expected "
     "UINT32" % P["kv5.type"])

# --- magic, version, endianness ------------------------------------------------------------
case("bad-magic", patch(magic=b"GGML"),
     "offset 0: header: magic is 47 47 4d 4c, expected \"GGUF\"")
case("version-0", patch(version=u32(0)), "offset 4: header: version 0, expected 2 or 3")
case("version-1", patch(version=u32(1)),
     "offset 4: header: version 1 (32-bit counts) is no longer supported, expected 2 or 3")
case("version-4", patch(version=u32(4)), "offset 4: header: version 4, expected 2 or 3")
case("big-endian", patch(version=struct.pack(">I", 3)),
     "offset 4: header: version reads as 0x03000000: big-endian GGUF files are not supported")


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".gguf") or f == "EXPECTED":
            os.remove(os.path.join(OUT, f))
    names = set()
    lines = ["# file<TAB>status<TAB>substring of the message (after the path). "
             "Generated by tests/corpus/make-gguf-corpus.py; do not edit."]
    for name, data, expect in CASES:
        assert name not in names, name
        names.add(name)
        with open(os.path.join(OUT, name + ".gguf"), "wb") as fh:
            fh.write(data)
        lines.append("%s.gguf\tHEARTH_ERR_BAD_FILE\t%s" % (name, expect))
    with open(os.path.join(OUT, "valid-base.gguf"), "wb") as fh:
        fh.write(bytes(B.buf))
    lines.append("valid-base.gguf\tHEARTH_OK\t")
    with open(os.path.join(OUT, "EXPECTED"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("%d files in %s" % (len(CASES) + 1, OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
