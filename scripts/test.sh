#!/usr/bin/env bash
# Builds (through scripts/setup.sh) and runs the whole test suite with CTest.
# Takes the same environment knobs as setup.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j"$(nproc)" "$@"
