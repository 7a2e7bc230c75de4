#!/usr/bin/env bash
# Creates the Python environment of the server tests (tests/cli-serve.sh):
# a venv with the official `openai` client, pinned so that CI is reproducible.
# Where nvcc is installed it also gets NVIDIA's cuobjdump and nvdisasm wheels
# (the toolkit here ships neither) for tests/cuda-sass.sh, which reads the
# CUDA library's machine code. Debian needs python3-venv (scripts/setup.sh
# installs it). Re-running is cheap: what is there at the pinned versions is
# left alone.
#   HEARTH_PYENV  where to create it (default: build/pyenv under the repository)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${HEARTH_PYENV:-$root/build/pyenv}
openai_version=3.54.0
py=/usr/bin/python3
[ -x "$py" ] || py=python3
cuda_tools_version=13.5.37
if [ -x "$venv/bin/python" ] &&
   "$venv/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$openai_version')" 2>/dev/null; then
    echo "py-env: $venv has openai $openai_version"
else
    mkdir -p "$(dirname "$venv")"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "openai==$openai_version"
    echo "py-env: created $venv (openai $openai_version)"
fi
if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
    tools=("nvidia-cuda-cuobjdump==$cuda_tools_version" "nvidia-cuda-nvdisasm==$cuda_tools_version")
    have=$("$venv/bin/python" -m pip show "${tools[@]%%==*}" 2>/dev/null |
           grep -c "^Version: $cuda_tools_version\$" || true)
    if [ "$have" != 2 ]; then
        # not fatal: tests/cuda-sass.sh skips without them
        "$venv/bin/python" -m pip install -q --disable-pip-version-check "${tools[@]}" ||
            echo "py-env: could not install ${tools[*]} (tests/cuda-sass.sh will skip)" >&2
    fi
fi
