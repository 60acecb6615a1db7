"""Start the real server (``python server.py ...``, or in-process with :class:`InProcessServer`) on a free
127.0.0.1 port, for integration tests."""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_run(count: int) -> int:
    """A free base port whose next ``count`` ports are free too (a cluster's worker N listens on base + N).

    Taken below the ephemeral range (32768 and up on Linux): workers bind their ports only after loading
    their models, and meanwhile outgoing connections (HAProxy's health checks among them) take ephemeral
    ports, which once took a worker's port before it could listen."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 32000 - count)
        if all(_is_free(base + i) for i in range(count + 1)):
            return base
    raise RuntimeError(f"no run of {count + 1} free ports found")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class ServerProcess:
    """A running ``server.py`` (or another ``command``); ``url`` is its base URL. Stop with :meth:`stop` (SIGTERM)."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, startup_timeout: float = 300,
                 log_path: Path | None = None, command: list[str] | None = None, cwd: Path = ROOT) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.log_path = log_path or Path(os.environ.get("TMPDIR", "/tmp")) / f"greenroom-{self.port}.log"
        self._log = open(self.log_path, "wb")
        command = command or [sys.executable, str(ROOT / "server.py")]
        self.proc = subprocess.Popen([*command, "--port", str(self.port), *args],
                                     cwd=cwd, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready(startup_timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                requests.get(self.url + "/health", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, then wait; returns the exit code (kills and fails loudly if it hangs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"server ignored SIGTERM for {timeout} s:\n{self.log()}")
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "server.py"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


class InProcessServer:
    """create_app + waitress in a thread: real sockets, and the test can reach the module's objects."""

    def __init__(self, config: Any) -> None:
        from waitress.server import create_server

        from greenroom.app import create_app
        self.app = create_app(config)
        self.host = self.app.extensions["greenroom"]
        self.server = create_server(self.app, host="127.0.0.1", port=0, threads=8, ident="greenroom-test")
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def module(self, name: str = "talkinghead") -> Any:
        return self.host.records[name].instance

    @property
    def posing(self):
        return self.host.records["talkinghead"].instance.posing

    @property
    def poser(self):
        return self.host.records["talkinghead"].instance.poser

    def stop(self) -> None:
        self.host.shutdown()
        self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        self.server.close()
