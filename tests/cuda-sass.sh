#!/usr/bin/env bash
# tests/cuda-sass.sh BUILD_DIR: reads the machine code (SASS) of BUILD_DIR's
# libhearth_cuda.a and fails on an instruction this code base never means.
#
# F2I from F16 (a half's value converted to an integer): nothing in cuda/
# asks for one, yet ptxas 13.0 emitted F2I.U8.F16.TRUNC for the low byte of
# a half stored as two st.u8 (every architecture from sm_75 to sm_120), so
# attention-kvq.cu's store wrote halves whose low byte was the value
# truncated to an integer. The emulator (tests/cuda-emu) cannot see that:
# it never runs ptxas. This test can, on any machine with the toolkit.
# Tools: cuobjdump and nvdisasm from the toolkit, else from NVIDIA's wheels in
# scripts/py-env.sh's venv (HEARTH_PYENV, default build/pyenv); skipped
# (77) without them or without a CUDA build.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
lib=$build/libhearth_cuda.a
[ -f "$lib" ] || { echo "skipped: no $lib (a build without CUDA)"; exit 77; }
for d in /usr/local/cuda/bin "${HEARTH_PYENV:-$root/build/pyenv}"/lib/python3*/site-packages/nvidia/cu*/bin; do
    [ -x "$d/cuobjdump" ] && [ -x "$d/nvdisasm" ] && PATH=$d:$PATH && break
done
if ! command -v cuobjdump >/dev/null || ! command -v nvdisasm >/dev/null; then
    echo "skipped: no cuobjdump and nvdisasm (scripts/py-env.sh installs them)"
    exit 77
fi
sass=$(mktemp)
trap 'rm -f "$sass"' EXIT
if ! cuobjdump -sass "$lib" >"$sass" 2>&1; then
    echo "FAIL: cuobjdump -sass $lib: $(tail -n 2 "$sass")"
    exit 1
fi
n_fun=$(grep -c 'Function :' "$sass")
if [ "$n_fun" -lt 10 ]; then  # an empty disassembly must not pass as clean
    echo "FAIL: cuobjdump found $n_fun functions in $lib (expected every kernel): $(tail -n 2 "$sass")"
    exit 1
fi
bad=$(awk '/Function :/ { f = $3 } /F2I[.A-Z0-9_]*\.F16[ .]/ { sub(/^[ \t]*/, ""); print f ": " $0 }' "$sass")
if [ -n "$bad" ]; then
    echo "FAIL: F2I from F16 (a half converted to an integer) in $lib:"
    echo "$bad" | head -20
    exit 1
fi
echo "ok: $n_fun functions in $lib, no F2I from F16"
