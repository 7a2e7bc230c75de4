#!/usr/bin/env bash
# Creates the Python environment of the server tests (tests/cli-serve.sh):
# a venv with the official `openai` client, pinned so that CI is reproducible.
# Debian needs python3-venv (scripts/setup.sh installs it). Re-running is cheap:
# an existing venv with the pinned version is left alone.
#   HEARTH_PYENV  where to create it (default: build/pyenv under the repository)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${HEARTH_PYENV:-$root/build/pyenv}
openai_version=3.54.0
py=/usr/bin/python3
[ -x "$py" ] || py=python3
if [ -x "$venv/bin/python" ] &&
   "$venv/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$openai_version')" 2>/dev/null; then
    echo "py-env: $venv has openai $openai_version"
    exit 0
fi
mkdir -p "$(dirname "$venv")"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "openai==$openai_version"
echo "py-env: created $venv (openai $openai_version)"
