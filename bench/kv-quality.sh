#!/usr/bin/env bash
# kv-quality: what each KV cache type costs in quality, as a markdown table.
#
# For every model and KV type pair it runs
#   hearth perplexity -c CTX --kl-divergence --json -f tests/data/kjv-genesis.txt
# which evaluates every chunk twice in one process, once with the type under
# test and once with an f16 KV cache (the reference), and compares the full
# logit rows: both perplexities, mean and 99th-percentile KL(f16 || type) and
# top-1 agreement. The weights, devices, context and tokens are the same for
# both, so the figures isolate the cache; bits/value is the mean of K's and
# V's stored bits (scales included) at the model's head size.
#
# The exact window (`-- --kv-window N`) shows in the window column; bits/value
# then adds its f16 rows amortized over the context (16 * N / ctx).
# A full run (-c 2048, all of Genesis, two models, six pairs) takes hours on
# a 2-core CPU: check the script with --chunks 1 -c 256 --models smollm2.
#
# usage: bench/kv-quality.sh [-c 2048] [--chunks N] [-t N] [--models smollm2,gemma3]
#                            [--types "q8_0 q4_0 rot4 rot3 q8_0/rot4"] [--bin PATH]
#                            [-- extra perplexity flags, e.g. --device cuda0 -ngl all]
# A type "K/V" sets K and V apart. Needs python3 (to read the JSON).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${HEARTH_BIN:-$here/build/hearth}
models_dir=${HEARTH_MODELS_DIR:-$here/models}
text=$here/tests/data/kjv-genesis.txt
ctx=2048
chunks=0
threads=
models=smollm2,gemma3
types="q8_0 q4_0 rot4 rot3 q8_0/rot4"
extra=()

die() { echo "kv-quality: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        -c) ctx=${2:?-c needs a value}; shift 2 ;;
        --chunks) chunks=${2:?--chunks needs a value}; shift 2 ;;
        -t) threads=${2:?-t needs a value}; shift 2 ;;
        --models) models=${2:?--models needs a value}; shift 2 ;;
        --types) types=${2:?--types needs a value}; shift 2 ;;
        --bin) bin=${2:?--bin needs a value}; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[ -x "$bin" ] || die "no hearth binary at $bin (set HEARTH_BIN or --bin)"
command -v python3 > /dev/null || die "python3 is needed to read the JSON"
[[ $ctx =~ ^[0-9]+$ ]] || die "-c $ctx is not a number"
[[ $chunks =~ ^[0-9]+$ ]] || die "--chunks $chunks is not a number"

model_file() {
    case $1 in
        smollm2) echo "$models_dir/SmolLM2-135M-Instruct.Q4_1.gguf" ;;
        gemma3) echo "$models_dir/gemma-3-270m-Q4_K_M.gguf" ;;
        *) echo "$1" ;; # a path
    esac
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(-c "$ctx" --kl-divergence --json -f "$text")
[ "$chunks" -gt 0 ] && flags+=(--chunks "$chunks")
[ -n "$threads" ] && flags+=(-t "$threads")

echo "| model | K type | V type | window | bits/value | PPL | PPL f16 | delta % | mean KLD | KLD p99 | top-1 % |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
status=0
IFS=, read -r -a model_list <<< "$models"
for name in "${model_list[@]}"; do
    mf=$(model_file "$name")
    [ -f "$mf" ] || { echo "kv-quality: model $mf not found" >&2; status=1; continue; }
    for t in $types; do
        k=${t%%/*}
        v=${t#*/}
        out=$tmp/run.json
        if ! "$bin" perplexity -m "$mf" "${flags[@]}" --kv-type-k "$k" --kv-type-v "$v" \
            "${extra[@]}" > "$out" 2> "$tmp/run.err"; then
            echo "kv-quality: $name K $k V $v failed: $(tail -3 "$tmp/run.err")" >&2
            status=1
            continue
        fi
        python3 - "$out" "$(basename "$mf" .gguf)" <<'PY' || status=1
import json, sys
j = json.load(open(sys.argv[1]))
# the exact window's f16 K and V rows, amortized over the context
w = j.get("kv_window", 0)
bpv = (j["k_bpv"] + j["v_bpv"]) / 2 + 16.0 * w / j["n_ctx"]
print("| %s | %s | %s | %d | %.2f | %.4f | %.4f | %+.2f | %.5f | %.4f | %.2f |" % (
    sys.argv[2], j["k_type"], j["v_type"], w, bpv, j["ppl"],
    j["ppl_ref"], j["ppl_delta_pct"], j["kld_mean"], j["kld_p99"], j["top1_pct"]))
PY
    done
done
echo
echo "-c $ctx, $([ "$chunks" -gt 0 ] && echo "$chunks chunks" || echo "all chunks") of" \
    "tests/data/kjv-genesis.txt; KLD in nats, KL(f16 KV || type) over the full vocabulary."
exit $status
