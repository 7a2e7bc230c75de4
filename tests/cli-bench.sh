#!/usr/bin/env bash
# cli-bench: `hearth bench --json` on SmolLM2 parses, has a pp and a tg row,
# every number positive and the bandwidth fraction in (0, 2); on vulkan0 (one
# layer) the plan's roofline and the time split add up; the table output
# has both rows; a small synth model runs too; bad flags exit 2.
set -u
bin=${HEARTH_BIN:?HEARTH_BIN must name the hearth binary}
src=${HEARTH_SOURCE_DIR:?HEARTH_SOURCE_DIR must name the source tree}
models=${HEARTH_MODELS_DIR:-$src/models}
smol=$models/SmolLM2-135M-Instruct.Q4_1.gguf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
[ -f "$smol" ] || { echo "FAIL: model $smol not found: run bash scripts/fetch-models.sh"; exit 1; }

"$bin" bench -m "$smol" -p 32 -n 8 -r 2 -t 2 --bw-size 64MiB --json > "$tmp/b.json" 2> "$tmp/err" \
    || fail "bench --json exit $?: $(cat "$tmp/err")"
python3 - "$tmp/b.json" <<'PY' || fail "bench JSON: $(cat "$tmp/b.json")"
import json, sys
rows = json.load(open(sys.argv[1]))
assert isinstance(rows, list) and [r["test"] for r in rows] == ["pp32", "tg8"], rows
num = ["file_bytes", "n_params", "threads", "n_tokens", "tps_median", "tps_min", "tps_max",
       "weight_bytes_per_token", "weight_gbps", "copy_gbps", "bw_fraction"]
for r in rows:
    assert r["model"] == "SmolLM2-135M-Instruct.Q4_1", r["model"]
    assert r["isa"] in ("scalar", "avx2", "avx512"), r["isa"]
    for k in num:
        assert isinstance(r[k], (int, float)) and r[k] > 0, (r["test"], k, r.get(k))
    assert 0 < r["bw_fraction"] < 2, r
    assert r["tps_min"] <= r["tps_median"] <= r["tps_max"], r
    assert r["threads"] == 2
    assert r["file_bytes"] > 96576768, r["file_bytes"]  # tensor bytes plus metadata
    assert 134_000_000 < r["n_params"] < 135_000_000, r["n_params"]
    # weight_gbps is bytes/token * tokens/s
    assert abs(r["weight_gbps"] - r["weight_bytes_per_token"] * r["tps_median"] * 1e-9) \
        <= 1e-3 * r["weight_gbps"] + 1e-4, r
pp, tg = rows
assert pp["n_tokens"] == 32 and tg["n_tokens"] == 8
# decode reads every weight (tied embedding once): all tensor bytes plus one embedding row
assert 96_000_000 < tg["weight_bytes_per_token"] < 97_000_000, tg["weight_bytes_per_token"]
# prefill reads them once per batch of up to 64: here one batch for 32 tokens
assert abs(pp["weight_bytes_per_token"] * 32 / tg["weight_bytes_per_token"] - 1) < 1e-6, pp
PY

# the device path (one layer on vulkan0, where there is one): the plan's roofline and the
# time split; on the CPU path above neither appears
python3 -c "import json, sys
assert all(r['time_split'] is None and 'roofline_tps' not in r for r in json.load(open(sys.argv[1])))" \
    "$tmp/b.json" || fail "CPU-path bench has a roofline or a time split: $(cat "$tmp/b.json")"
if "$bin" devices --no-bandwidth 2>/dev/null | grep -q '^vulkan0 '; then
    "$bin" bench -m "$smol" --device vulkan0 -ngl 1 -p 0 -n 2 -r 1 --bw-size 16MiB --json \
        > "$tmp/v.json" 2> "$tmp/verr" || fail "bench -ngl 1 on vulkan0 exit $?: $(cat "$tmp/verr")"
    pred=$(grep -Eo '[0-9.]+ tok/s decode' "$tmp/verr" | grep -Eo '^[0-9.]+')
    python3 - "$tmp/v.json" "${pred:-0}" <<'PY' || fail "device-path bench JSON: $(cat "$tmp/v.json")"
import json, sys
(r,) = json.load(open(sys.argv[1]))
pred = float(sys.argv[2])
# the roofline counts only reads at copy bandwidth: the plan's decode prediction is below it
assert pred > 0 and r["roofline_tps"] >= pred, (r["roofline_tps"], pred)
assert abs(r["roofline_fraction"] - r["tps_median"] / r["roofline_tps"]) < 1e-3, r
sp = r["time_split"]
assert set(sp) == {"cpu", "vulkan0", "moves"}, sp
assert sp["cpu"] > 0 and sp["vulkan0"] > 0 and sp["moves"] > 0, sp
assert abs(sum(sp.values()) - 1) < 1e-3, sp
PY
fi

"$bin" bench -m "$smol" -p 16 -n 4 -r 1 --bw-size 32MiB > "$tmp/t.txt" 2> "$tmp/err" \
    || fail "bench table exit $?: $(cat "$tmp/err")"
row='^SmolLM2-135M-Instruct.Q4_1 +92\.1MiB +134\.5M +[0-9]+ +[a-z0-9]+'
grep -Eq "$row +pp16 +[0-9.]+ " "$tmp/t.txt" \
    || fail "no pp16 row: $(cat "$tmp/t.txt")"
grep -Eq "$row +tg4 +[0-9.]+ +[0-9.]+-[0-9.]+ +[0-9.]+ +[0-9.]+%\$" "$tmp/t.txt" \
    || fail "no tg4 row: $(cat "$tmp/t.txt")"
grep -q '^copy bandwidth: [0-9.]* GB/s' "$tmp/t.txt" || fail "no copy bandwidth line"

# a synth model (2 blocks of llama3-1b at Q4_K_M), real weights and header-only
"$bin" synth --preset llama3-1b --type q4_k_m --layers 2 -o "$tmp/s.gguf" > /dev/null 2>&1 \
    || fail "synth failed"
"$bin" bench -m "$tmp/s.gguf" -p 8 -n 2 -r 1 --bw-size 16MiB --json > "$tmp/s.json" 2> "$tmp/err" \
    || fail "bench on synth exit $?: $(cat "$tmp/err")"
python3 -c "import json, sys
assert [x['test'] for x in json.load(open(sys.argv[1]))] == ['pp8', 'tg2']" \
    "$tmp/s.json" || fail "synth bench JSON: $(cat "$tmp/s.json")"
"$bin" synth --preset llama3-1b --type q4_k_m --layers 2 --header-only -o "$tmp/h.gguf" \
    > /dev/null 2>&1 || fail "synth --header-only failed"
"$bin" bench -m "$tmp/h.gguf" -p 0 -n 2 -r 1 --bw-size 16MiB > "$tmp/h.txt" 2> "$tmp/err" \
    || fail "bench on header-only synth exit $?: $(cat "$tmp/err")"
grep -q ' tg2 ' "$tmp/h.txt" || fail "header-only: no tg2 row"
grep -q ' pp' "$tmp/h.txt" && fail "-p 0 still printed a pp row"

# depth: both tests start after 24 cached positions, here over a compressed cache
"$bin" bench -m "$smol" -p 8 -n 2 -d 24 -r 1 --bw-size 16MiB --kv-type rot4 --json \
    > "$tmp/d.json" 2> "$tmp/err" || fail "bench -d 24 exit $?: $(cat "$tmp/err")"
python3 -c "
import json, sys
rows = json.load(open(sys.argv[1]))
assert [x['test'] for x in rows] == ['pp8', 'tg2'], rows
assert all(x['depth'] == 24 and x['tps_median'] > 0 for x in rows), rows" \
    "$tmp/d.json" || fail "bench -d JSON: $(cat "$tmp/d.json")"
grep -q 'rot4' "$tmp/err" || fail "bench --kv-type rot4: not in the load line: $(cat "$tmp/err")"
"$bin" bench -m "$smol" -p 4 -n 2 -d 8 -r 1 --bw-size 16MiB > "$tmp/d.txt" 2>/dev/null \
    || fail "bench -d 8 (table) failed"
grep -q ' tg2@d8 ' "$tmp/d.txt" || fail "no tg2@d8 row: $(cat "$tmp/d.txt")"

"$bin" bench -m "$smol" -r 0 > /dev/null 2>&1
[ $? -eq 2 ] || fail "-r 0: exit not 2"
"$bin" bench -m "$smol" -p 0 -n 0 > /dev/null 2>&1
[ $? -eq 2 ] || fail "-p 0 -n 0: exit not 2"
"$bin" bench -m "$smol" --bw-size 1KiB > /dev/null 2>&1
[ $? -eq 2 ] || fail "--bw-size 1KiB: exit not 2"
"$bin" bench -m "$tmp/missing.gguf" > /dev/null 2> "$tmp/err"
[ $? -eq 1 ] || fail "missing model: exit not 1"

[ $fails -eq 0 ] && echo "cli-bench: all checks passed"
exit $((fails > 0))
