#!/usr/bin/env python3
"""Rewrites one cuda/*.cu source for the host emulation (tests/cuda-emu/README.md).

Only two mechanical changes, so that the kernels themselves stay byte for byte
what nvcc compiles:
  kernel<<<grid, block, shm, stream>>>(args)   ->  emu_launch("kernel", kernel, grid, block, shm, stream, args)
  extern __shared__ __align__(n) T name[];     ->  T *name = (T *)emu_dyn_smem();
The launch may be templated (k<T, O><<<...>>>) and span lines (inside a macro,
its backslashes are kept as they are). A #line directive keeps compiler
messages and the emulator's reports pointing at the original file.

usage: rewrite.py SRC.cu OUT.cpp
"""
import re
import sys


def fail(src, pos, text, what):
    line = text.count("\n", 0, pos) + 1
    sys.exit(f"{src}:{line}: rewrite.py: {what}")


def match_close(text, i, open_ch, close_ch):
    """Index just past the bracket that closes text[i] (== open_ch), or -1."""
    depth = 0
    while i < len(text):
        c = text[i]
        if c == open_ch:
            depth += 1
        elif c == close_ch:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def kernel_name_start(text, end):
    """Start of the kernel expression ending at `end` (an identifier, maybe with <...>)."""
    i = end
    while i > 0 and text[i - 1].isspace():
        i -= 1
    if text[i - 1] == ">":  # template arguments: walk back to the matching '<'
        depth = 0
        while i > 0:
            i -= 1
            if text[i] == ">":
                depth += 1
            elif text[i] == "<":
                depth -= 1
                if depth == 0:
                    break
    while i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_:"):
        i -= 1
    return i


def split_top(s):
    """Splits s at commas outside (), <>, []."""
    parts, depth, cur = [], 0, ""
    for c in s:
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    return parts


def rewrite_launches(src, text):
    out, pos, n = [], 0, 0
    while True:
        lt = text.find("<<<", pos)
        if lt < 0:
            break
        gt = text.find(">>>", lt)
        if gt < 0:
            fail(src, lt, text, "'<<<' without '>>>'")
        k0 = kernel_name_start(text, lt)
        name = text[k0:lt].strip()
        if not name:
            fail(src, lt, text, "no kernel name before '<<<'")
        cfg = split_top(text[lt + 3 : gt])
        if len(cfg) < 2 or len(cfg) > 4:
            fail(src, lt, text, f"launch configuration of {name} has {len(cfg)} parts (2..4)")
        while len(cfg) < 4:
            cfg.append(" 0")
        p = gt + 3
        while text[p].isspace():
            p += 1
        if text[p] != "(":
            fail(src, p, text, f"'(' expected after the launch of {name}")
        close = match_close(text, p, "(", ")")
        if close < 0:
            fail(src, p, text, f"unclosed argument list in the launch of {name}")
        args = text[p + 1 : close - 1]
        label = " ".join(name.replace("\\\n", " ").split())
        out.append(text[pos:k0])
        out.append(f'emu_launch("{label}", {name}, {",".join(cfg)}')
        out.append(f", {args})" if args.strip() else ")")
        pos = close
        n += 1
    out.append(text[pos:])
    return "".join(out), n


DYN_SMEM = re.compile(
    r"extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?([A-Za-z_][\w:]*)\s+"
    r"(?:__align__\s*\(\s*\d+\s*\)\s+)?([A-Za-z_]\w*)\s*\[\s*\]\s*;")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: rewrite.py SRC.cu OUT.cpp")
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        text = f.read()
    text, n = rewrite_launches(src, text)
    text = DYN_SMEM.sub(lambda m: f"{m[1]} *{m[2]} = ({m[1]} *)emu_dyn_smem();", text)
    if "<<<" in text or re.search(r"extern\s+__shared__", text):
        sys.exit(f"{src}: rewrite.py: a launch or dynamic shared array was left unrewritten")
    with open(dst, "w", encoding="utf-8") as f:
        f.write(f'#line 1 "{src}"\n{text}')
    if n == 0 and "__global__" in text:
        print(f"{src}: rewrite.py: kernels but no launches", file=sys.stderr)


if __name__ == "__main__":
    main()
