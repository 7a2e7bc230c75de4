#!/usr/bin/env bash
# cli-plan: `hearth plan` on a header-only Llama-3-70B Q4_K_M with a described
# 24 GiB card and 70 GB/s host: the text summary (devices, prediction, reasons),
# --json with the fields the issue names, a described Vulkan card's host staging
# on the host, --compare-quants --json sizes against core/quant-mix's (IQ1-IQ3
# mixes included), --svg as well-formed XML naming every scheme, --swa-full's KV
# bytes on a header-only Gemma 3, and errors.
set -u
bin=${HEARTH_BIN:?HEARTH_BIN must name the hearth binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HEARTH_CACHE_DIR="$tmp/cache" # plan reads measured bandwidths from the cache: keep this host's out
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
devs=(--device cuda:24GiB:1008GB/s --host 64GiB:70GB/s --pcie 25GB/s)

"$bin" synth --preset llama3-70b --type Q4_K_M --header-only -o "$tmp/70b.gguf" > /dev/null \
    || fail "synth 70B exit $?"

# text summary
"$bin" plan "$tmp/70b.gguf" "${devs[@]}" > "$tmp/plan.txt" 2>&1 || fail "plan exit $?"
grep -Eq '^cuda0 +[0-9.]+ GiB .* 24.00 GiB +1008 GB/s$' "$tmp/plan.txt" || fail "no cuda0 line"
grep -Eq '^cpu +[0-9.]+ GiB .* 64.00 GiB +70 GB/s$' "$tmp/plan.txt" || fail "no cpu line"
grep -Eq '^predicted: prefill [0-9]+ tok/s .*decode 3\.[0-9]+ tok/s' "$tmp/plan.txt" \
    || fail "prediction line: $(grep predicted "$tmp/plan.txt")"
grep -q 'attention  0-79 cuda0' "$tmp/plan.txt" || fail "attention map"
grep -Eq 'ffn_down\.[0-9]+-79[ ,].*in host RAM, computed by the CPU' "$tmp/plan.txt" \
    || fail "no reason for host FFN"
grep -q 'streamed to cuda0 for prefill' "$tmp/plan.txt" || fail "no streaming reason"
[ "$fails" -eq 0 ] || cat "$tmp/plan.txt"

# -v adds the per-tensor table
"$bin" plan "$tmp/70b.gguf" "${devs[@]}" -v > "$tmp/v.txt" || fail "plan -v exit $?"
grep -Eq '^blk\.79\.ffn_down\.weight +Q[46]_K .* host +cpu +cuda0 +stream' "$tmp/v.txt" \
    || fail "per-tensor table: $(grep 'blk.79.ffn_down' "$tmp/v.txt")"

# JSON
"$bin" plan "$tmp/70b.gguf" "${devs[@]}" --json > "$tmp/plan.json" || fail "plan --json exit $?"
python3 -m json.tool "$tmp/plan.json" > /dev/null || fail "plan --json is not JSON"
python3 - "$tmp/plan.json" <<'PY' || fail "plan --json content"
import json, sys
d = json.load(open(sys.argv[1]))
devs = {x["name"]: x for x in d["devices"]}
assert set(devs) == {"cpu", "cuda0"}, devs.keys()
g = devs["cuda0"]
assert g["budget_bytes"] == 24 << 30 and 0 < g["planned_bytes"] <= g["budget_bytes"], g
p = d["predicted"]
ceiling = 70e9 / p["host_bytes_per_token"]
assert 0.8 * ceiling <= p["decode_tps"] < ceiling, (p, ceiling)
assert p["prefill_tps"] > 0
t = d["tensors"]
assert len(t) == 723 and len({x["name"] for x in t}) == 723
assert sum(x["bytes"] for x in t) == 42512531456
for x in t:
    assert set(x) >= {"name", "bytes", "device", "resident"}, x
    assert x["device"] in devs and x["resident"] in ("host", "cuda0"), x
    assert (x["resident"] == "host") == (x["device"] == "cpu"), x
on_gpu = sum(x["bytes"] for x in t if x["resident"] == "cuda0")
assert abs(on_gpu - g["weights_bytes"]) < 256 * 723, (on_gpu, g["weights_bytes"])
PY

# --kv-window: the exact ring is charged to the KV of every layer where its attention runs
# (plan_kv_window_bytes: f16 K and V rows of 128 positions and an int32 tag each, per layer)
for w in 0 128; do
    "$bin" plan "$tmp/70b.gguf" "${devs[@]}" --kv-type rot4 --kv-window "$w" -c 4096 --json \
        > "$tmp/win$w.json" || fail "plan --kv-window $w exit $?"
done
python3 - "$tmp/win0.json" "$tmp/win128.json" <<'PY' || fail "plan --kv-window content"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
assert a["options"]["kv_window"] == 0 and b["options"]["kv_window"] == 128, b["options"]
kv = lambda d: sum(x["kv_bytes"] for x in d["devices"])
ring = 128 * 8 * (128 + 128) * 2 + 128 * 4  # llama3-70b: 8 KV heads of 128
ring = (ring + 255) // 256 * 256
assert kv(b) - kv(a) == 80 * ring, (kv(b) - kv(a), 80 * ring)
PY
"$bin" plan "$tmp/70b.gguf" "${devs[@]}" --kv-type rot4 --kv-window 128 -c 4096 | \
    grep -q '^context 4096 x 1 sequence, KV rot4, exact window 128 ' || fail "window in the summary"

# --swa-full on a header-only Gemma 3 270M (15 of 18 layers local, window 512; 1 KV head of
# 256) at 32k: f16 local layers keep every row instead of a ring of 512 + 64 (0.10 -> 0.56 GiB);
# rot4 --kv-window 128 keeps the same rings and adds the local layers' codes
"$bin" synth --preset gemma3-270m --type Q4_K_M --header-only -o "$tmp/g3.gguf" > /dev/null \
    || fail "synth gemma3 exit $?"
for kv in f16 rot4; do
    for full in "" --swa-full; do
        win=(); [ "$kv" = rot4 ] && win=(--kv-window 128)
        "$bin" plan "$tmp/g3.gguf" "${devs[@]}" --kv-type "$kv" "${win[@]}" $full -c 32768 --json \
            > "$tmp/g3-$kv$full.json" || fail "plan gemma3 $kv $full exit $?"
    done
done
python3 - "$tmp" <<'PY' || fail "plan --swa-full content"
import json, sys
ld = lambda n: json.load(open(f"{sys.argv[1]}/g3-{n}.json"))
kv = lambda d: sum(x["kv_bytes"] for x in d["devices"])
up = lambda b: (b + 255) // 256 * 256
n, ring = 32768, 512 + 64
f, ff, q, qf = ld("f16"), ld("f16--swa-full"), ld("rot4"), ld("rot4--swa-full")
assert not f["options"]["swa_full"] and ff["options"]["swa_full"], ff["options"]
assert kv(ff) == 18 * 2 * up(n * 512), kv(ff)  # 0.5625 GiB: full rows everywhere
assert kv(ff) - kv(f) == 15 * (2 * up(n * 512) - up(ring * 512 * 2 + ring * 4)), kv(f)
assert kv(qf) - kv(q) == 15 * 2 * up(n * (2 + 128)), (kv(q), kv(qf))  # rot4 rows: 130 bytes
PY
"$bin" plan "$tmp/g3.gguf" "${devs[@]}" -c 32768 | \
    grep -q ', KV f16, 15 sliding-window layers keep 576 (0.10 GiB)' || fail "gemma3 f16 summary"
"$bin" plan "$tmp/g3.gguf" "${devs[@]}" -c 32768 --swa-full | \
    grep -q ', KV f16, 15 sliding-window layers keep every row (0.56 GiB)' \
    || fail "gemma3 --swa-full summary"

# a described Vulkan card: its backend's host staging (4 x 64 MiB) is in the host's planned
# bytes (and its staging column), with a reason, and not in what the loader allocates there;
# the CUDA plan above has none
"$bin" plan "$tmp/70b.gguf" --device vulkan:24GiB:1008GB/s --host 64GiB:70GB/s --pcie 25GB/s \
    --json > "$tmp/vk.json" || fail "plan vulkan --json exit $?"
python3 - "$tmp/plan.json" "$tmp/vk.json" <<'PY' || fail "vulkan host staging in --json"
import json, sys
c, v = (json.load(open(f)) for f in sys.argv[1:3])
ch, vh = c["devices"][0], v["devices"][0]
assert ch["name"] == vh["name"] == "cpu", (ch["name"], vh["name"])
assert ch["host_staging_bytes"] == 0, ch
assert vh["host_staging_bytes"] == 256 << 20, vh
assert v["devices"][1]["host_staging_bytes"] == 0, v["devices"][1]
for h in (ch, vh):
    # the host maps its weights: what the loader allocates is the rest, less the backends' staging
    assert h["alloc_bytes"] == h["planned_bytes"] - h["weights_bytes"] - h["host_staging_bytes"], h
assert any("vulkan0's backend stages its own copies through up to 256 MiB" in r
           for r in v["reasons"]), v["reasons"]
assert not any("stages its own copies" in r for r in c["reasons"])
PY
"$bin" plan "$tmp/70b.gguf" --device vulkan:24GiB:1008GB/s --host 64GiB:70GB/s --pcie 25GB/s \
    > "$tmp/vk.txt" || fail "plan vulkan exit $?"
grep -Eq '^cpu +[0-9.]+ GiB +[0-9.]+ GiB +[0-9.]+ GiB +0\.2[67] GiB ' "$tmp/vk.txt" \
    || fail "host staging column: $(grep '^cpu' "$tmp/vk.txt")"

# compare-quants: 20 schemes with quant-mix's sizes (facts sheet 7.7; the IQ1-IQ3 rows are
# test-quant-mix's, sized with an imatrix where llama-quantize needs one)
"$bin" plan "$tmp/70b.gguf" "${devs[@]}" --compare-quants --json > "$tmp/cmp.json" \
    || fail "compare --json exit $?"
python3 - "$tmp/cmp.json" <<'PY' || fail "compare-quants content"
import json, sys
d = json.load(open(sys.argv[1]))
want = {"F16": 141110050816, "Q8_0": 74967187456, "Q6_K": 57880281088,
        "Q5_K_M": 49941954560, "Q4_K_M": 42512531456, "Q4_K_S": 40339357696,
        "Q4_0": 39961870336, "Q3_K_M": 34259632128, "Q2_K": 26367246336,
        "IQ4_XS": 38261800960,
        "IQ3_M": 31929171968, "IQ3_S": 30904188928, "IQ3_XS": 29299867648,
        "IQ3_XXS": 27461632000, "IQ2_M": 24111431680, "IQ2_S": 22234480640,
        "IQ2_XS": 21134245888, "IQ2_XXS": 19089522688, "IQ1_M": 16743333888,
        "IQ1_S": 15335620608}
s = {x["type"]: x for x in d["schemes"]}
assert set(s) == set(want), s.keys()
for k, v in want.items():
    x = s[k]
    assert x["file_bytes"] == v, (k, x["file_bytes"], v)
    for f in ("bpw", "vram_bytes", "ram_bytes", "prefill_tps", "decode_tps"):
        assert f in x, (k, f)
    assert x["vram_bytes"] <= 24 << 30, x
# fewer bits, faster decode when the GPU is the limit
assert s["Q2_K"]["decode_tps"] > s["Q4_K_M"]["decode_tps"] > s["Q8_0"]["decode_tps"]
PY

"$bin" plan "$tmp/70b.gguf" "${devs[@]}" --compare-quants --svg "$tmp/cmp.svg" > "$tmp/cmp.txt" \
    || fail "compare --svg exit $?"
grep -Eq '^Q4_K_M +42\.51 +4\.82 ' "$tmp/cmp.txt" || fail "compare table row: $(cat "$tmp/cmp.txt")"
python3 - "$tmp/cmp.svg" <<'PY' || fail "svg"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag.endswith("svg"), root.tag
texts = " ".join("".join(e.itertext()) for e in root.iter() if e.tag.endswith("text"))
for k in ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_K_S", "Q4_0", "Q3_K_M", "Q2_K", "IQ4_XS",
          "IQ3_M", "IQ3_S", "IQ3_XS", "IQ3_XXS", "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M",
          "IQ1_S"):
    assert k in texts.split(), k
assert "VRAM" in texts
PY

# compare-quants, the lattice mixes: sizes strictly falling from IQ3_M to IQ1_S (the order the
# rules give, checked rather than assumed: IQ3_S is Q3_K_S's size, IQ3_XXS sits above Q2_K);
# on the 24 GiB card a 70B IQ2_XS keeps every weight on the GPU while Q4_K_M cannot
python3 - "$tmp/cmp.json" <<'PY' || fail "compare-quants IQ rows"
import json, sys
d = json.load(open(sys.argv[1]))
rows = [x["type"] for x in d["schemes"]]
s = {x["type"]: x for x in d["schemes"]}
order = ["IQ3_M", "IQ3_S", "IQ3_XS", "IQ3_XXS", "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M",
         "IQ1_S"]
assert [r for r in rows if r in order] == order, rows  # listed largest first
b = [s[k]["file_bytes"] for k in order]
assert all(x > y for x, y in zip(b, b[1:])), b
assert s["IQ3_XXS"]["file_bytes"] > s["Q2_K"]["file_bytes"] > s["IQ2_M"]["file_bytes"]
assert 2.35 < s["IQ2_XS"]["bpw"] < 2.45, s["IQ2_XS"]["bpw"]
assert s["IQ2_XS"]["gpu_share"] == 1.0 and s["IQ2_XS"]["ram_bytes"] < 1 << 30, s["IQ2_XS"]
assert s["Q4_K_M"]["gpu_share"] < 0.6, s["Q4_K_M"]
assert s["IQ2_XS"]["decode_tps"] > 3 * s["Q4_K_M"]["decode_tps"], (s["IQ2_XS"], s["Q4_K_M"])
need = {"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS"}
for k, x in s.items():
    assert x["needs_imatrix"] == (k in need), (k, x["needs_imatrix"])
    assert x["imatrix"] == (k in need), (k, x["imatrix"])
PY
grep -Eq '^IQ2_XS\* +21\.13 +2\.40 ' "$tmp/cmp.txt" \
    || fail "IQ2_XS row: $(grep IQ2_XS "$tmp/cmp.txt")"
grep -Eq '^IQ3_S +30\.90 +3\.50 ' "$tmp/cmp.txt" || fail "IQ3_S row: $(grep IQ3_S "$tmp/cmp.txt")"
grep -q '^\* : llama-quantize makes this mix only with an importance matrix' "$tmp/cmp.txt" \
    || fail "no imatrix footnote"
# --imatrix changes the optional-imatrix rows only (IQ4_XS: sheet 7.7), not the required ones
"$bin" plan "$tmp/70b.gguf" "${devs[@]}" --compare-quants --imatrix --json > "$tmp/cmpi.json" \
    || fail "compare --imatrix exit $?"
python3 - "$tmp/cmp.json" "$tmp/cmpi.json" <<'PY' || fail "compare-quants --imatrix"
import json, sys
a, b = ({x["type"]: x for x in json.load(open(f))["schemes"]} for f in sys.argv[1:3])
assert b["IQ4_XS"]["file_bytes"] == 37894799360 and b["IQ4_XS"]["imatrix"], b["IQ4_XS"]
for k in ("IQ3_XXS", "IQ2_XS", "IQ3_M", "IQ1_S"):
    assert a[k]["file_bytes"] == b[k]["file_bytes"], k
PY

# errors: a bad device string names the field; exit 2
"$bin" plan "$tmp/70b.gguf" --device cuda:24GiB:fast > "$tmp/err.txt" 2>&1
[ $? -eq 2 ] || fail "bad device exit code"
grep -q "bandwidth" "$tmp/err.txt" && grep -q "'fast'" "$tmp/err.txt" \
    || fail "bad device message: $(cat "$tmp/err.txt")"
"$bin" plan "$tmp/70b.gguf" "${devs[@]}" -ngl 81 > "$tmp/err.txt" 2>&1
[ $? -eq 1 ] || fail "-ngl 81 should fail"
grep -q "does not fit on cuda0" "$tmp/err.txt" || fail "-ngl message: $(cat "$tmp/err.txt")"
"$bin" plan > /dev/null 2>&1
[ $? -eq 2 ] || fail "no model should be a usage error"

if [ "$fails" -ne 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "cli-plan: ok"
