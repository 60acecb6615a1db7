"""Shared fixtures. Plugins installed on this machine never leak into the tests: only the
built-in modules load unless a test names third-party distributions itself."""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ["GREENROOM_LOAD_PLUGINS"] = ""  # the test guard: no third-party plugins by default
# User data and caches (greenroom/paths.py) go to a throw-away folder: never into ~ nor the checkout.
os.environ["GREENROOM_DATA_DIR"] = tempfile.mkdtemp(prefix="greenroom-test-data-")
atexit.register(shutil.rmtree, os.environ["GREENROOM_DATA_DIR"], ignore_errors=True)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from greenroom.config import HostConfig, ServerSettings  # noqa: E402

from .server_process import ROOT, ServerProcess  # noqa: E402


FIGURES: list[str] = []


@pytest.fixture
def report_figure():
    """``report_figure("fuzz: 412 cases in 95 s")``: a measured figure, printed at the end of the run
    (docs/reliability.md quotes them)."""
    return FIGURES.append


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture
def make_config(tmp_path):
    """``make_config(enable=[...], modules={...}, **server)`` -> HostConfig with a private key file."""

    def make(enable=(), modules=None, **server) -> HostConfig:
        server.setdefault("api_key_file", str(tmp_path / "api_key.txt"))
        return HostConfig(server=ServerSettings(enable_modules=list(enable), **server), modules=modules or {},
                          source="test.toml")

    return make


@pytest.fixture(scope="session")
def example_plugins(tmp_path_factory) -> Path:
    """The example plugins in examples/, pip-installed into a private folder (PYTHONPATH-able)."""
    target = tmp_path_factory.mktemp("example-plugins")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT / "examples/greenroom-hello"),
                    str(ROOT / "examples/greenroom-broken")], check=True)
    return target


@pytest.fixture
def server_factory():
    """Start real server processes; all are stopped (SIGTERM) after the test."""
    started: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, **kwargs) -> ServerProcess:
        server = ServerProcess(list(args), env=env, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
