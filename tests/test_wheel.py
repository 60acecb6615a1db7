"""Greenroom outside its editable install: a plain checkout, and a built wheel installed elsewhere.

Each case runs in a fresh venv that sees the project's installed requirements through a ``.pth`` file
naming a folder of links to ``.venv``'s site-packages, less Greenroom's own install (its dist-info and
editable finder). Nothing from the checkout is importable there unless the case puts it there, and
no torch is reinstalled.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
import requests
from PIL import Image

from greenroom.plugins import DEFAULT_PLUGINS

from .server_process import ROOT, ServerProcess
from .test_paths import red_character

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


def test_every_built_in_module_is_registered_by_import_path_and_entry_point():
    folders = {p.parent.name for p in (ROOT / "modules").glob("*/plugin.py")}
    assert folders == BUILTINS
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["greenroom.modules"]
    assert entry_points == {path.split(".")[1]: path for path in DEFAULT_PLUGINS}


@pytest.mark.slow
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
        assert len(requests.get(f"{server.url}/ui/backdrops.json").json()["backdrops"]) == 4  # the checkout's assets/
        plugins = {p["name"]: p for p in requests.get(f"{server.url}/api/plugins").json()["plugins"]}
        for name in BUILTINS:
            assert plugins[name]["loaded"] and plugins[name]["builtin"], plugins[name]
    finally:
        server.stop()


SHIPPED = ["greenroom_assets/characters/lambda_00.png", "greenroom_assets/emotions/joy.json",
           "greenroom_assets/backdrops/sunset.jpg", "greenroom_assets/settings/animator.json",
           "greenroom/web/ui/index.html", "greenroom/web/templates/index.html"]


def pip(*args: str, cwd: Path, python: str | Path = sys.executable) -> None:
    subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "-q", *args], cwd=cwd,
                   env=clean_env(cwd), check=True)


def frame(url: str) -> Image.Image:
    for _ in range(30):  # 503 until the first frame is rendered
        r = requests.get(f"{url}/api/talkinghead/frame", timeout=60)
        if r.status_code != 503:
            break
        time.sleep(1)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png", r.text[:200]
    return Image.open(io.BytesIO(r.content))


@pytest.mark.slow
def test_pip_install_without_e_ships_the_assets(tmp_path):
    source = copy_checkout(tmp_path / "source")
    pip("install", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(tmp_path / "site"), str(source),
        cwd=tmp_path)
    for name in SHIPPED:
        assert (tmp_path / "site" / name).is_file(), name


@pytest.mark.slow
def test_the_wheel_installs_and_serves_a_named_character_outside_the_checkout(tmp_path):
    source = copy_checkout(tmp_path / "source")
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source), cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("greenroom-*.whl"))
    assert set(SHIPPED) <= set(zipfile.ZipFile(wheel).namelist())
    python = bare_venv(tmp_path / "env")
    pip("install", "--no-deps", "--no-index", str(wheel), cwd=tmp_path, python=python)
    for name, file in where(python, tmp_path, "greenroom", "greenroom_modules", "greenroom_assets").items():
        assert file.is_relative_to(tmp_path / "env") and not file.is_relative_to(ROOT), (name, file)

    red_character(tmp_path / "data" / "characters" / "mine.png")  # the user's own, beside the shipped ones
    config = tmp_path / "plugins.toml"
    config.write_text("[modules.talkinghead]\nprecompute_emotions = false\nbackground_nice = 0\n")
    server = ServerProcess(["--config", str(config), "--enable-modules=talkinghead"], env=clean_env(tmp_path),
                           command=[str(python.parent / "greenroom")], cwd=tmp_path)
    try:
        url = server.url
        plugins = {p["name"]: p for p in requests.get(f"{url}/api/plugins").json()["plugins"]}
        for name in BUILTINS:
            assert plugins[name]["loaded"] and plugins[name]["distribution"] == "greenroom", plugins[name]
        assert {"lambda_00", "mine"} <= set(requests.get(f"{url}/api/talkinghead/characters").json()["characters"])
        r = requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_00"}, timeout=120)
        assert r.status_code == 200, r.text
        image = frame(url)
        assert image.size == (512, 512) and image.mode == "RGBA"
        assert len(requests.get(f"{url}/ui/backdrops.json").json()["backdrops"]) == 4
        assert "<html" in requests.get(f"{url}/ui/").text.lower()
    finally:
        server.stop()
