#!/usr/bin/env python3
"""Write tests/data/iq-vectors.bin: dequantization vectors for the lattice quants.

For each of IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S and IQ1_M the file
holds a few super-blocks of random bytes and the floats the `gguf` package
(the format's reference Python reader) dequantizes them to.
tests/test-quant-iq2.c checks hearth's to_float against them bit for bit.

The blocks are random bytes except for the f16 super-scale, which is set to a
finite value in [0.001, 0.1] (random bits there could be inf/NaN). For all
types but IQ1_M that is the u16 at byte 0; IQ1_M has no d field, its f16
super-scale is nibble k in the top nibble of the u16 scale word k at byte
48 + 2k, so those four nibbles are overwritten.

File layout (all integers little-endian u32, floats little-endian f32):
    magic "IQV1", ntypes
    ntypes times:
        type id (ggml numbering), nblocks, block_bytes,
        nblocks * block_bytes bytes of blocks,
        nblocks * 256 f32 dequantized values, in element order

Run:  python3 -m venv /tmp/gv && /tmp/gv/bin/pip install gguf numpy
      /tmp/gv/bin/python scripts/gen-iq-vectors.py
The output is committed; CI does not need the package.
"""
import os
import struct
import sys

import numpy as np
import gguf.quants as q
from gguf.constants import GGMLQuantizationType as T

TYPES = [
    # (class, type id, block bytes)
    (q.IQ2_XXS, T.IQ2_XXS, 66),
    (q.IQ2_XS, T.IQ2_XS, 74),
    (q.IQ2_S, T.IQ2_S, 82),
    (q.IQ3_XXS, T.IQ3_XXS, 98),
    (q.IQ3_S, T.IQ3_S, 110),
    (q.IQ1_S, T.IQ1_S, 50),
    (q.IQ1_M, T.IQ1_M, 56),
]
NBLOCKS = 6
SEED = 0x1A2B3C


def set_scale(blk, tid, d):
    h = int(np.array([d], dtype=np.float16).view(np.uint16)[0])
    if tid == T.IQ1_M:
        for k in range(4):
            off = 48 + 2 * k + 1  # high byte of scale word k
            blk[off] = (blk[off] & 0x0F) | (((h >> (4 * k)) & 0xF) << 4)
    else:
        blk[0] = h & 0xFF
        blk[1] = h >> 8


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rng = np.random.default_rng(SEED)
    out = [b"IQV1", struct.pack("<I", len(TYPES))]
    for cls, tid, nbytes in TYPES:
        assert q.GGML_QUANT_SIZES[tid] == (256, nbytes)
        blocks = rng.integers(0, 256, size=(NBLOCKS, nbytes), dtype=np.uint8)
        for b in range(NBLOCKS):
            set_scale(blocks[b], tid, rng.uniform(0.001, 0.1))
        vals = q.dequantize(blocks.reshape(-1), tid).astype("<f4")
        assert vals.shape == (NBLOCKS * 256,) and np.isfinite(vals).all()
        out.append(struct.pack("<III", int(tid), NBLOCKS, nbytes))
        out.append(blocks.tobytes())
        out.append(vals.tobytes())
    path = os.path.join(root, "tests", "data", "iq-vectors.bin")
    data = b"".join(out)
    with open(path, "wb") as f:
        f.write(data)
    print("wrote %s (%d bytes)" % (path, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
