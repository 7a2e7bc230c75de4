#!/usr/bin/env bash
# One-shot set-up on a fresh Debian 12 machine: installs the build and test
# dependencies (apt), fetches and verifies the models (scripts/fetch-models.sh),
# configures and builds. Re-running it is cheap: it installs only what is
# missing and rebuilds incrementally.
#
# Environment knobs (all optional):
#   BUILD_DIR (build)  BUILD_TYPE (Release)  HEARTH_WERROR (OFF)
#   HEARTH_SANITIZE ("" or "address;undefined")  HEARTH_CUDA (AUTO)  HEARTH_VULKAN (AUTO)
#   HEARTH_CUDA_ARCHS (86;89;90;120)  HEARTH_ASSERTS (OFF)  CC
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

pkgs=(build-essential cmake pkg-config git python3 python3-pip clang libclang-rt-14-dev
      libpcre2-dev glslc libvulkan-dev mesa-vulkan-drivers vulkan-validationlayers
      libmicrohttpd-dev libcjson-dev python3-venv chromium libsimde-dev ninja-build)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The CUDA toolkit is not a Debian package here: when nvcc is installed in the
# usual place, put it on PATH so CMake finds it; without it the CUDA backend is off.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH=/usr/local/cuda/bin:$PATH
fi

bash scripts/fetch-models.sh
bash scripts/py-env.sh

build=${BUILD_DIR:-build}
mkdir -p "$build"
if ! cmake -S . -B "$build" \
    -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" \
    -DHEARTH_WERROR="${HEARTH_WERROR:-OFF}" \
    -DHEARTH_SANITIZE="${HEARTH_SANITIZE:-}" \
    -DHEARTH_ASSERTS="${HEARTH_ASSERTS:-OFF}" \
    -DHEARTH_CUDA="${HEARTH_CUDA:-AUTO}" \
    -DHEARTH_VULKAN="${HEARTH_VULKAN:-AUTO}" \
    -DHEARTH_CUDA_ARCHS="${HEARTH_CUDA_ARCHS:-86;89;90;120}" >"$build/configure.log" 2>&1; then
    cat "$build/configure.log" >&2
    echo "setup: configure failed (log above)" >&2
    exit 1
fi
grep -E "^-- hearth:" "$build/configure.log" || true
cmake --build "$build" -j"$(nproc)"
echo "setup: built $build/hearth"
