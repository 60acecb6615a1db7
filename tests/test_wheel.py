"""Greenroom outside its editable install: a plain checkout, and a built wheel installed elsewhere.

Each case runs in a fresh venv that sees the project's installed requirements through a ``.pth`` file
naming a folder of links to ``.venv``'s site-packages, less Greenroom's own install (its dist-info and
editable finder). Nothing from the checkout is importable there unless the case puts it there, and
no torch is reinstalled.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import requests

from greenroom.plugins import DEFAULT_PLUGINS

from .server_process import ROOT, ServerProcess

pytestmark = pytest.mark.slow

BUILTINS = {path.split(".")[1] for path in DEFAULT_PLUGINS}


def copy_checkout(dest: Path) -> Path:
    """The checkout's files (tracked and new, not ignored ones such as .venv) copied to ``dest``."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        source = ROOT / name
        if source.is_file():  # a file deleted in the working tree is still in the index
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(source.read_bytes())
    return dest


def bare_venv(folder: Path) -> Path:
    """A venv at ``folder`` that sees the requirements but no Greenroom; returns its python."""
    site = Path(sysconfig.get_paths()["purelib"])
    deps = folder / "deps"
    deps.mkdir(parents=True)
    for entry in site.iterdir():
        if not entry.name.lower().startswith(("greenroom", "__editable__")):
            (deps / entry.name).symlink_to(entry)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
    python = folder / "venv" / "bin" / "python"
    venv_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip()
    Path(venv_site, "greenroom-test-requirements.pth").write_text(f"{deps}\n")
    return python


def clean_env(tmp: Path) -> dict[str, str]:
    """No user site, no PYTHONPATH, and user data in ``tmp``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "PYTHONNOUSERSITE": "1", "GREENROOM_DATA_DIR": str(tmp / "data")}


def where(python: Path, cwd: Path, *packages: str) -> dict[str, Path]:
    code = "import importlib, sys; [print(importlib.import_module(n).__file__) for n in sys.argv[1:]]"
    out = subprocess.run([python, "-c", code, *packages], cwd=cwd, env=clean_env(cwd), check=True,
                         capture_output=True, text=True).stdout.split()
    return {name: Path(path) for name, path in zip(packages, out)}


def test_a_plain_checkout_runs_without_being_installed(tmp_path):
    python = bare_venv(tmp_path / "env")
    checkout = copy_checkout(tmp_path / "checkout")
    probe = subprocess.run([python, "-c", "import greenroom_modules"], cwd=tmp_path, env=clean_env(tmp_path),
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'greenroom_modules'" in probe.stderr
    server = ServerProcess(["--enable-modules=imagefx"], env=clean_env(tmp_path),
                           command=[str(python), str(checkout / "server.py")], cwd=checkout)
    try:
        assert requests.get(f"{server.url}/api/modules").json() == {"modules": ["imagefx"]}
        plugins = {p["name"]: p for p in requests.get(f"{server.url}/api/plugins").json()["plugins"]}
        for name in BUILTINS:
            assert plugins[name]["loaded"] and plugins[name]["builtin"], plugins[name]
    finally:
        server.stop()
