"""The host through real HTTP against a real server process: the SillyTavern transport contract,
the example third-party plugin, the deliberately broken one, the CLI and graceful shutdown."""
from __future__ import annotations

import os
import time

import pytest
import requests

from .server_process import run_cli

ST_HEADERS = "Authorization, Bypass-Tunnel-Reminder, Cache-Control, X-CSRF-Token"


@pytest.fixture
def plugin_env(example_plugins):
    path = os.pathsep.join(filter(None, [str(example_plugins), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "GREENROOM_LOAD_PLUGINS": "greenroom-hello,greenroom-broken"}


@pytest.fixture
def hello_server(server_factory, plugin_env):
    return server_factory("--enable-modules=hello", env=plugin_env)


def test_example_plugin_is_served(hello_server):
    url = hello_server.url
    assert requests.get(url + "/api/modules").json() == {"modules": ["hello"]}
    assert requests.post(url + "/api/hello", json={"name": "Ada"}).json() == {"message": "Hello, Ada!"}
    doc = requests.get(url + "/openapi.json").json()
    assert "/api/hello" in doc["paths"] and "/api/hello/badge.svg" in doc["paths"]
    info = requests.get(url + "/api/modules/hello").json()
    assert info["distribution"] == "greenroom-hello" and info["builtin"] is False and info["state"] == "loaded"


def test_broken_plugins_do_not_take_the_host_down(hello_server):
    plugins = {p["name"]: p for p in requests.get(hello_server.url + "/api/plugins").json()["plugins"]}
    assert "No module named 'greenroom_dependency_that_is_not_installed'" in plugins["broken-import"]["error"]
    assert plugins["broken-hook"]["error"] == "RuntimeError: this plugin is broken on purpose"
    assert "broken-import" in hello_server.log()


def test_list_modules_shows_example_and_broken(plugin_env):
    out = run_cli(["--list-modules"], env=plugin_env)
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert "greenroom-hello" in lines["hello"] and "ok: Greets people" in lines["hello"]
    assert "built-in" in lines["tts"]
    assert "BROKEN: RuntimeError: this plugin is broken on purpose" in lines["broken-hook"]
    assert "BROKEN: ModuleNotFoundError" in lines["broken-import"]


def test_guard_keeps_installed_plugins_out(plugin_env):
    out = run_cli(["--list-modules"], env={**plugin_env, "GREENROOM_LOAD_PLUGINS": ""})
    assert "hello" not in out.stdout and "broken" not in out.stdout


def test_unknown_module_exits_2_listing_available(plugin_env):
    out = run_cli(["--enable-modules= hello , nope"], env=plugin_env)
    assert out.returncode == 2
    assert "unknown module 'nope'" in out.stderr and "hello" in out.stderr and "tts" in out.stderr


def test_bad_config_file_exits_2(tmp_path):
    cfg = tmp_path / "plugins.toml"
    cfg.write_text("[server]\nthreads = 0\n")
    out = run_cli(["--config", str(cfg)])
    assert out.returncode == 2 and "[server] key 'threads'" in out.stderr and str(cfg) in out.stderr


def test_cors_preflight_and_headers_on_errors(hello_server):
    url = hello_server.url
    pre = requests.options(url + "/api/hello", headers={
        "Origin": "http://localhost:8000", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": ST_HEADERS})
    assert pre.status_code == 200
    assert pre.headers["Access-Control-Allow-Origin"] == "http://localhost:8000"
    assert pre.headers["Access-Control-Allow-Headers"] == ST_HEADERS
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    missing = requests.get(url + "/api/nothing", headers={"Origin": "http://localhost:8000"})
    assert missing.status_code == 404 and missing.headers["Access-Control-Allow-Origin"] == "http://localhost:8000"
    assert requests.get(url + "/api/modules").headers["Access-Control-Allow-Origin"] == "*"
    assert float(requests.get(url + "/api/modules").headers["X-Request-Duration"]) >= 0


def test_double_slashes_and_missing_content_type(hello_server):
    url = hello_server.url
    assert requests.get(url + "//api/modules").json() == {"modules": ["hello"]}
    raw = requests.post(url + "//api/hello", data=b'{"name": "Bo"}')  # no Content-Type at all
    assert raw.status_code == 200 and raw.json() == {"message": "Hello, Bo!"}
    bad = requests.post(url + "/api/hello", json={"name": ""})
    assert bad.status_code == 400 and bad.json()["error"].startswith("name:")


def test_secure_mode(server_factory, plugin_env, tmp_path):
    key_file = tmp_path / "key.txt"
    server = server_factory("--enable-modules=hello", "--secure", "--api-key-file", str(key_file), env=plugin_env)
    url, key = server.url, key_file.read_text().strip()
    assert f"API key (from {key_file}): {key}" in server.log()
    denied = requests.get(url + "/api/modules", headers={"Origin": "http://localhost:8000"})
    assert denied.status_code == 401 and denied.json() == {"error": "401: Invalid API key"}
    assert denied.headers["Access-Control-Allow-Origin"] == "http://localhost:8000"
    for header in ("Bearer wrong", f"Basic {key}", key[:-1], f"Token {key}"):
        assert requests.get(url + "/api/modules", headers={"Authorization": header}).status_code == 401
    ok = requests.get(url + "/api/modules", headers={"Authorization": f"Bearer {key}"})
    assert ok.json() == {"modules": ["hello"]}
    bare = requests.get(url + "/api/modules", headers={"Authorization": key})  # Raven's client sends no scheme
    assert bare.json() == {"modules": ["hello"]}
    assert requests.options(url + "/api/modules", headers={"Access-Control-Request-Headers": ST_HEADERS}).status_code == 200
    assert requests.get(url + "/api/hello/badge.svg").status_code == 200  # exempt: loaded by <img>
    assert requests.get(url + "/api/unknown").status_code == 401  # unknown paths are not revealed
    # An exempt route cannot be used to reach another one.
    for sneaky in ("/api/hello/badge.svg/../../modules", "/api/hello/badge.svg%2F..%2F..%2Fmodules",
                   "/api/hello/badge.svg?next=/api/modules"):
        reply = requests.get(url + sneaky)
        assert reply.status_code in (200, 401, 404) and "modules" not in reply.text


def test_binds_localhost_only_by_default(hello_server):
    import psutil
    listening = [c.laddr for c in psutil.Process(hello_server.proc.pid).net_connections(kind="tcp")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening)


def test_sigterm_stops_gracefully(server_factory, plugin_env):
    server = server_factory("--enable-modules=hello", env=plugin_env)
    stream = requests.get(server.url + "/api/hello/ticks", stream=True, timeout=10)
    assert next(stream.iter_lines()) == b"data: 0"  # an open stream must not hold shutdown up
    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < 10
    assert "Traceback" not in server.log() and "SIGTERM received; shutting down" in server.log()


def test_streams_never_starve_ordinary_requests(server_factory, plugin_env, tmp_path):
    cfg = tmp_path / "plugins.toml"
    cfg.write_text("[server]\nthreads = 2\nmax_streams = 2\nmax_streams_per_client = 2\n")
    server = server_factory("--config", str(cfg), "--enable-modules=hello", env=plugin_env)
    url = server.url + "/api/hello/ticks?interval=0.05"
    streams = [requests.get(url, stream=True, timeout=10) for _ in range(2)]
    try:
        for s in streams:
            assert s.status_code == 200 and next(s.iter_lines()) == b"data: 0"
        # Both stream slots are taken; ordinary requests still get their own workers.
        for _ in range(5):
            assert requests.get(server.url + "/api/modules", timeout=5).status_code == 200
        refused = requests.get(url, timeout=5)
        assert refused.status_code == 503 and "too many open streams" in refused.json()["error"]
        assert refused.headers["Retry-After"]
    finally:
        for s in streams:
            s.close()
    # A client that went away gives its slot back.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        again = requests.get(url, stream=True, timeout=5)
        status = again.status_code
        again.close()
        if status == 200:
            break
        time.sleep(0.2)
    assert status == 200
    bad = requests.get(server.url + "/api/hello/ticks?interval=-1", timeout=10)
    assert bad.status_code == 400 and bad.json()["error"].startswith("interval:")
