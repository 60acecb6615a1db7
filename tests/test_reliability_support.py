"""Shared helpers of the reliability suites (fuzz, hostile input, faults) and of bench/load.py.

No tests live here. The one all-modules server is started once per pytest session and shared by
every file that imports ``shared_server``: pytest makes one fixture per importing module, so the
process itself is cached here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from .server_process import ROOT, ServerProcess
from .test_websearch_fakes import FakeEngines

ALL_MODULES = "classify,embeddings,nlp,imagefx,tts,websearch,talkinghead"
CHARACTER = "lambda_00"
MAX_BODY_MB = 16

# Small request limits keep fuzzed synthesis and inference cheap on two cores; the checks are the same.
MODULE_LIMITS: dict[str, dict[str, Any]] = {
    "tts": {"max_chars": 120, "max_jobs": 6},
    "classify": {"max_texts": 16, "max_text_chars": 2000},
    "embeddings": {"max_texts": 32, "max_text_chars": 2000},
    "nlp": {"max_texts": 8, "max_text_chars": 2000},
    "imagefx": {"max_input_pixels": 1_000_000, "max_output_pixels": 4_000_000},
}


def toml_value(value: Any) -> str:
    """A TOML literal for str/int/float/bool/list values (JSON spells them the same way)."""
    return json.dumps(value)


def write_config(path: Path, server: dict[str, Any], modules: dict[str, dict[str, Any]]) -> Path:
    """A plugins.toml with ``[server]`` and ``[modules.<name>]`` tables (one level of sub-tables)."""
    lines = ["[server]", *(f"{k} = {toml_value(v)}" for k, v in server.items())]
    for name, table in modules.items():
        lines += ["", f"[modules.{name}]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
        for sub, values in ((k, v) for k, v in table.items() if isinstance(v, dict)):
            lines += ["", f"[modules.{name}.{sub}]", *(f"{k} = {toml_value(v)}" for k, v in values.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def talkinghead_settings(folder: Path, max_instances: int = 4) -> dict[str, Any]:
    """low_compute without the start-up speed probe or background emotion renders: cheap on a CPU."""
    return {"mode": "low_compute", "cache_dir": str(folder / "th-cache"), "precompute_emotions": False,
            "max_instances": max_instances, "animator": {"target_fps": 10}}


def private_files_env(folder: Path) -> dict[str, str]:
    """Environment that keeps files the server writes (saved emotion sets) out of the working tree."""
    sets = folder / "emotion-sets"
    sets.mkdir(parents=True, exist_ok=True)
    return {"GREENROOM_EMOTION_SETS_DIR": str(sets)}


@dataclass
class Server:
    """A running server plus what a client needs to call it."""

    proc: ServerProcess
    key: str | None
    folder: Path
    fakes: FakeEngines | None = None

    @property
    def url(self) -> str:
        return self.proc.url

    @property
    def pid(self) -> int:
        return self.proc.proc.pid

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def get(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 60)
        return requests.get(self.url + path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 120)
        return requests.post(self.url + path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def status(self) -> dict[str, Any]:
        """The host's read-only counters (open stream slots, threads, RSS)."""
        reply = self.get("/api/server/status", timeout=30)
        reply.raise_for_status()
        return reply.json()

    def log(self) -> str:
        return self.proc.log()

    def stop(self) -> int:
        try:
            return self.proc.stop()
        finally:
            if self.fakes is not None:
                self.fakes.close()


def start_all_modules(folder: Path, secure: bool = True, max_streams: int = 4, threads: int = 8,
                      log_level: str = "INFO", extra_modules: dict[str, dict[str, Any]] | None = None) -> Server:
    """Every built-in module on one server; websearch talks to local fake engines, never the internet."""
    folder.mkdir(parents=True, exist_ok=True)
    fakes = FakeEngines(slow_s=2.0)
    modules = {name: dict(table) for name, table in MODULE_LIMITS.items()}
    modules["websearch"] = {**fakes.settings(), "engines": ["searxng", "duckduckgo", "brave"]}
    modules["talkinghead"] = talkinghead_settings(folder)
    for name, table in (extra_modules or {}).items():
        modules.setdefault(name, {}).update(table)
    key_file = folder / "api_key.txt"
    server = {"api_key_file": str(key_file), "max_streams": max_streams, "max_streams_per_client": max_streams,
              "threads": threads, "max_content_length_mb": MAX_BODY_MB}
    config = write_config(folder / "plugins.toml", server, modules)
    args = ["--config", str(config), f"--enable-modules={ALL_MODULES}", "--log-level", log_level]
    if secure:
        args.append("--secure")
    try:
        proc = ServerProcess(args, env=private_files_env(folder), log_path=folder / "server.log")
    except Exception:
        fakes.close()
        raise
    key = key_file.read_text().strip() if secure else None
    return Server(proc, key, folder, fakes)


_SHARED: dict[str, Server] = {}
_SHARED_LOCK = threading.Lock()


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory) -> Iterator[Server]:
    """The all-modules server (``--secure``) shared by the fuzz, hostile-input and reliability files.

    While developing, ``RELIABILITY_SERVER=info.json`` (``{"url", "key", "pid"}``) reuses a running one.
    """
    reuse = os.environ.get("RELIABILITY_SERVER")
    if reuse:
        yield _reused(Path(reuse))
        return
    with _SHARED_LOCK:
        created = "all" not in _SHARED
        if created:
            _SHARED["all"] = start_all_modules(tmp_path_factory.mktemp("shared-server"))
    server = _SHARED["all"]
    yield server
    if created:
        server.stop()
        _SHARED.pop("all", None)


class _ReusedProcess:
    def __init__(self, info: dict[str, Any], folder: Path) -> None:
        self.url, self.port = info["url"], int(info["url"].rsplit(":", 1)[1])
        self.proc = type("P", (), {"pid": info["pid"]})()
        self.log_path = folder / "server.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        return 0


def _reused(info_path: Path) -> Server:
    info = json.loads(info_path.read_text())
    return Server(_ReusedProcess(info, info_path.parent), info["key"], info_path.parent)  # type: ignore[arg-type]


# -- talkinghead helpers --------------------------------------------------------------------------

def load_character(server: Server, instance_id: str | None = None, new: bool = False,
                   name: str = CHARACTER) -> dict[str, Any]:
    data = {"character": name}
    if instance_id:
        data["instance_id"] = instance_id
    if new:
        data["new"] = "true"
    reply = server.post("/api/talkinghead/load", files={k: (None, v) for k, v in data.items()}, timeout=180)
    assert reply.status_code == 200, reply.text
    return reply.json()


def delete_instances(server: Server) -> None:
    listing = server.get("/api/talkinghead/instances").json()["instances"]
    for inst in listing:
        server.post("/api/talkinghead/unload", params={"instance_id": inst["instance_id"]})


class FrameReader:
    """Splits a multipart/x-mixed-replace feed into frames, keeping what it read past the last one."""

    def __init__(self, response: requests.Response) -> None:
        self._chunks = response.iter_content(chunk_size=65536)
        self._buffer = b""

    def next_frame(self, timeout: float = 60) -> bytes | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            head = self._buffer.find(b"\r\n\r\n")
            if head >= 0 and self._buffer.startswith(b"--frame"):
                length = next(int(line.split(b":")[1]) for line in self._buffer[:head].split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                end = head + 4 + length + 2
                if len(self._buffer) >= end:
                    frame = self._buffer[head + 4:head + 4 + length]
                    self._buffer = self._buffer[end:]
                    return frame
            chunk = next(self._chunks, None)
            if chunk is None:
                return None
            self._buffer += chunk
        return None


def read_parts(response: requests.Response, count: int, timeout: float = 60) -> list[bytes]:
    """The first ``count`` frames of a multipart/x-mixed-replace feed."""
    reader = FrameReader(response)
    frames: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline:
        frame = reader.next_frame(max(0.0, deadline - time.monotonic()))
        if frame is None:
            break
        frames.append(frame)
    return frames


def wait_until(predicate, timeout: float = 30, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def settle_status(server: Server, want_streams: int, max_threads: int, timeout: float = 30) -> dict[str, Any]:
    """Poll the server counters until streams and threads are back to what the test expects."""
    last: dict[str, Any] = {}

    def ok() -> bool:
        nonlocal last
        last = server.status()
        return last["streams_open"] == want_streams and last["threads"] <= max_threads

    wait_until(ok, timeout)
    return last


# -- module settings snapshot (the fuzzer may change live settings) -----------------------------

def live_settings(server: Server) -> dict[str, dict[str, Any]]:
    out = {}
    for name in server.get("/api/modules").json()["modules"]:
        reply = server.get(f"/api/modules/{name}/schema")
        if reply.status_code == 200 and reply.json()["module"] == name:
            body = reply.json()
            out[name] = {k: v for k, v in body["values"].items() if k not in body["load_time"]}
    return out


def restore_settings(server: Server, snapshot: dict[str, dict[str, Any]]) -> None:
    for name, values in snapshot.items():
        reply = server.post(f"/api/modules/{name}/settings", json=values)
        assert reply.status_code == 200, (name, reply.text)


# -- schemathesis ---------------------------------------------------------------------------------

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance", "ignored_auth", "unsupported_method")
"""What must hold for every generated request: no 5xx, every status, content type and JSON body as
documented, the API key enforced where the document says so, and 405 for undocumented methods.
Left out: negative_data_rejection and positive_data_acceptance. Parsing is deliberately lenient
(pydantic's lax mode: SillyTavern sends 25.0 for an int) and some rules cannot be written in JSON
Schema (a role must exist, a voice must be installed), so those two would flag intended behaviour."""

ENDLESS = ("/api/talkinghead/result_feed", "/api/avatar/result_feed")
"""Endless streams never end by themselves; tests/test_faults.py and test_hostile.py cover them."""


@dataclass
class FuzzResult:
    returncode: int
    output: str
    failures: list[str]
    cases: int
    seconds: float


def run_schemathesis(server: Server, report_dir: Path, *, max_examples: int, max_time: float | None = None,
                     workers: int = 2, phases: str = "examples,coverage,fuzzing,stateful", seed: int | None = None,
                     request_timeout: float = 60, extra: list[str] | None = None) -> FuzzResult:
    """Run the schemathesis CLI against ``server``; every failure is one line in ``failures``."""
    report_dir.mkdir(parents=True, exist_ok=True)
    junit = report_dir / "junit.xml"
    cmd = [sys.executable, "-m", "schemathesis.cli", "run", server.url + "/openapi.json",
           "--checks", ",".join(CHECKS), "-n", str(max_examples), "--phases", phases, "-w", str(workers),
           "--request-timeout", str(request_timeout), "--no-color", "--suppress-health-check", "all",
           "--report", "junit", "--report-junit-path", str(junit), "--generation-database", "none",
           "--max-failures", "50", "--continue-on-failure"]
    for path in ENDLESS:
        cmd += ["--exclude-path", path]
    if server.key:
        cmd += ["-H", f"Authorization: Bearer {server.key}"]
    if max_time:
        cmd += ["--max-time", str(int(max_time))]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    cmd += extra or []
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1", "COLUMNS": "160"}
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=report_dir, capture_output=True, text=True, env=env,
                          timeout=(max_time or 1800) + 600)
    seconds = time.monotonic() - t0
    output = done.stdout + done.stderr
    (report_dir / "output.txt").write_text(output, encoding="utf-8")
    return FuzzResult(done.returncode, output, junit_failures(junit), count_cases(output), seconds)


def junit_failures(path: Path) -> list[str]:
    if not path.exists():
        return []
    failures = []
    for case in ET.parse(path).getroot().iter("testcase"):
        for problem in list(case.findall("failure")) + list(case.findall("error")):
            text = (problem.text or problem.get("message") or "").split("Reproduce with:")
            lines = [line.strip() for line in text[0].splitlines() if line.strip()]
            curl = [line.strip() for line in text[1].splitlines() if line.strip()][:1] if len(text) > 1 else []
            failures.append(f"{case.get('name')}: {' | '.join(lines[:12] + curl)}")
    return failures


def count_cases(output: str) -> int:
    """The "N generated" figure of the CLI summary (0 when absent)."""
    for line in output.splitlines():
        line = line.strip()
        if " generated" in line and line.split()[0].isdigit():
            return int(line.split()[0])
    return 0


__all__ = ["ALL_MODULES", "CHARACTER", "ROOT", "Server", "shared_server", "start_all_modules", "write_config",
           "talkinghead_settings", "load_character", "delete_instances", "read_parts", "FrameReader", "wait_until",
           "settle_status", "live_settings", "restore_settings", "run_schemathesis", "FuzzResult"]
