"""The host in-process: discovery, configuration, resources, schemas, routing and the transport contract."""
from __future__ import annotations

import json
import subprocess
import sys
import types
from typing import Protocol, runtime_checkable

import pytest
from flask import jsonify
from pydantic import BaseModel, Field

from greenroom import (ApiBlueprint, Busy, ComputeSettings, Module, ModuleSettings, Resources, hookimpl, hookspec,
                       load_time_field)
from greenroom.app import create_app
from greenroom.config import ConfigError
from greenroom.server.config_file import read_config_file
from greenroom.http import ERROR_SHAPES
from greenroom.web.transport import key_matches
from greenroom.module import Compute
from greenroom.plugins import allowed_distributions
from greenroom.resources import choose_compute

from .plugins_helper import plugin


class EchoSettings(ComputeSettings):
    prefix: str = Field(">", max_length=5, description="Put before every echo.")
    repeat: int = Field(1, ge=1, le=3, description="How many times to echo.")
    model: str = load_time_field("tiny", "Which model to load.")


class EchoBody(BaseModel):
    text: str = Field(min_length=1)


class Echo(Module):
    name = "echo"
    version = "1.2.3"
    description = "Echoes text back."
    aliases = ("echo-compat",)
    Settings = EchoSettings
    resources = Resources(device="any", memory_mb=1)

    def blueprint(self):
        bp = ApiBlueprint("echo", __name__)

        @bp.api("/api/echo", methods=["POST"], body=EchoBody, summary="Echo")
        def echo(body: EchoBody):
            self.context.publish("echoed", text=body.text)
            return jsonify({"echo": self.settings.prefix + body.text * self.settings.repeat})

        @bp.api("/api/echo/open", summary="No key needed", auth=False)
        def open_route():
            return jsonify({"open": True})

        @bp.api("/api/echo/boom", summary="Always fails")
        def boom():
            raise RuntimeError("kaboom")

        @bp.api("/api/echo/busy", summary="A domain error, raised far from Flask")
        def busy():
            raise Busy("echo is full", retry_after=7, queue=3)

        return bp

    def load(self, compute: Compute) -> None:
        self.loaded_on = compute


class Failing(Module):
    name = "failing"
    description = "Cannot load."

    def blueprint(self):
        bp = ApiBlueprint("failing", __name__)

        @bp.api("/api/failing", summary="Never served")
        def never():
            return "unreachable"

        return bp

    def load(self, compute):
        raise FileNotFoundError("weights.bin is missing")


@pytest.fixture
def app_with(make_config):
    def make(enable=("echo",), modules=None, extra=(), **server):
        config = make_config(enable=enable, modules=modules, **server)
        return create_app(config, plugins=[("test-plugin", plugin(Echo, Failing)), *extra], discover=False)

    return make


# -- configuration ---------------------------------------------------------------------------------

def test_config_file_errors_name_file_module_key_and_expectation(tmp_path, make_config):
    bad = tmp_path / "plugins.toml"
    bad.write_text('[modules.echo]\nrepeat = 9\n')
    config = read_config_file(bad)
    with pytest.raises(ConfigError) as err:
        create_app(config, plugins=[("p", plugin(Echo))], discover=False)
    message = str(err.value)
    assert str(bad) in message and "[modules.echo]" in message and "'repeat'" in message
    assert "less than or equal to 3" in message

    bad.write_text('[modules.echo]\nrepat = 2\n')
    with pytest.raises(ConfigError, match=r"unknown key 'repat'; expected one of: .*repeat"):
        create_app(read_config_file(bad), plugins=[("p", plugin(Echo))], discover=False)

    bad.write_text('[modules.echo]\nprefix = 3\n')
    with pytest.raises(ConfigError, match=r"key 'prefix': Input should be a valid string \(got 3\)"):
        create_app(read_config_file(bad), plugins=[("p", plugin(Echo))], discover=False)


def test_config_file_server_table_and_syntax(tmp_path):
    path = tmp_path / "plugins.toml"
    path.write_text("[server]\nport = 70000\n")
    with pytest.raises(ConfigError, match=r"\[server\] key 'port'"):
        read_config_file(path)
    path.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_config_file(path)
    path.write_text("[srever]\n")
    with pytest.raises(ConfigError, match="unknown table"):
        read_config_file(path)
    with pytest.raises(ConfigError, match="file not found"):
        read_config_file(tmp_path / "missing.toml")


def test_unknown_module_lists_available(app_with):
    with pytest.raises(ConfigError, match=r"unknown module 'nope'; available modules: echo, failing"):
        app_with(enable=["echo", "nope"])


def test_alias_enables_module_and_is_advertised(app_with):
    app = app_with(enable=["echo-compat"])
    assert app.test_client().get("/api/modules").json == {"modules": ["echo", "echo-compat"]}


def test_shipped_plugins_toml_is_valid_for_builtin_settings():
    from greenroom.server.cli import DEFAULT_CONFIG
    config = read_config_file(DEFAULT_CONFIG)
    assert config.server.port == 5100 and config.server.listen is False


# -- discovery -------------------------------------------------------------------------------------

def test_broken_plugins_are_reported_and_skipped(make_config):
    class NotAModule:
        name = "x"

    @hookimpl
    def register_modules(register):
        raise RuntimeError("hook exploded")

    raising = types.SimpleNamespace(register_modules=register_modules)
    app = create_app(make_config(enable=["echo"]), discover=False, plugins=[
        ("good", plugin(Echo)), ("raising", raising), ("wrong-type", plugin(NotAModule))])
    listing = {p["name"]: p for p in app.test_client().get("/api/plugins").json["plugins"]}
    assert listing["good"]["loaded"] and listing["good"]["modules"] == ["echo"]
    assert listing["raising"]["error"] == "RuntimeError: hook exploded"
    assert "not a Module subclass" in listing["wrong-type"]["error"]
    assert app.test_client().get("/api/modules").json == {"modules": ["echo", "echo-compat"]}


@hookspec
def register_gadgets(register):
    """A hook that the workshop module declares for plugins."""


GadgetHooks = types.SimpleNamespace(register_gadgets=register_gadgets)


class Workshop(Echo):
    name = "workshop"
    hookspecs = GadgetHooks

    def load(self, compute):
        self.gadgets = self.context.collect("register_gadgets", object)


def test_a_module_declares_hooks_for_plugins(make_config):
    misfit = types.SimpleNamespace(register_gadgets=hookimpl(lambda wrong_argument: None))
    app = create_app(make_config(enable=["workshop"]), discover=False, plugins=[
        ("misfit", misfit), ("workshop", plugin(Workshop)), ("gadgets", plugin(register_gadgets=[int, str]))])
    assert app.extensions["greenroom"].module("workshop").gadgets == [("gadgets", int), ("gadgets", str)]
    listing = {p["name"]: p for p in app.test_client().get("/api/plugins").json["plugins"]}
    assert "wrong_argument" in listing["misfit"]["error"] and listing["gadgets"]["error"] is None


def test_duplicate_module_name_is_reported(make_config):
    app = create_app(make_config(enable=["echo"]), discover=False,
                     plugins=[("first", plugin(Echo)), ("second", plugin(Echo))])
    listing = {p["name"]: p for p in app.test_client().get("/api/plugins").json["plugins"]}
    assert "already provided by plugin 'first'" in listing["second"]["error"]


def test_builtin_modules_are_discovered_through_entry_points(make_config):
    app = create_app(make_config())
    plugins = {p["name"]: p for p in app.test_client().get("/api/plugins").json["plugins"]}
    for name in ("talkinghead", "tts", "classify", "embeddings", "websearch", "nlp"):
        assert plugins[name]["builtin"] and plugins[name]["distribution"] == "greenroom"


def test_load_plugins_environment_variable(monkeypatch):
    monkeypatch.delenv("GREENROOM_LOAD_PLUGINS")
    assert allowed_distributions() is None
    monkeypatch.setenv("GREENROOM_LOAD_PLUGINS", "")
    assert allowed_distributions() == set()
    monkeypatch.setenv("GREENROOM_LOAD_PLUGINS", "greenroom_hello, Other-Pkg")
    assert allowed_distributions() == {"greenroom-hello", "other-pkg"}


# -- resources -------------------------------------------------------------------------------------

def test_compute_choice():
    s = EchoSettings()
    any_dev, cpu_only = Resources(device="any"), Resources(device="cpu")
    assert choose_compute("m", any_dev, s, "cpu", "cuda:0", has_cuda=True) == Compute("cpu", "float32", "CPU requested")
    assert choose_compute("m", cpu_only, s, "cuda", "cuda:0", has_cuda=True).device == "cpu"
    gpu = choose_compute("m", any_dev, s, "cuda", "cuda:1", has_cuda=True)
    assert (gpu.device, gpu.dtype) == ("cuda:1", "float16")
    missing = choose_compute("m", any_dev, s, "cuda", "cuda:0", has_cuda=False)
    assert missing.device == "cpu" and "not available" in missing.reason
    pinned = choose_compute("m", any_dev, EchoSettings(device="cuda", dtype="bfloat16"), "cpu", "cuda:0", has_cuda=True)
    assert (pinned.device, pinned.dtype) == ("cuda:0", "bfloat16")


def test_gpu_load_failure_retries_on_cpu(make_config, monkeypatch):
    class GpuShy(Echo):
        name = "gpushy"

        def load(self, compute):
            if compute.is_cuda:
                raise RuntimeError("CUDA out of memory")
            self.loaded_on = compute

    monkeypatch.setattr("greenroom.resources.cuda_available", lambda: True)
    app = create_app(make_config(enable=["gpushy"], device="cuda"), plugins=[("p", plugin(GpuShy))], discover=False)
    info = app.test_client().get("/api/modules/gpushy").json
    assert info["state"] == "loaded" and info["device"] == "cpu" and "retried on CPU" in info["placement"]
    assert "rss_mb" in info["memory"] and info["load_seconds"] >= 0


def test_failed_module_is_reported_and_others_serve(app_with):
    app = app_with(enable=["echo", "failing"])
    client = app.test_client()
    assert client.get("/api/modules").json["modules"] == ["echo", "echo-compat"]
    assert client.get("/health").json == {"status": "degraded", "modules": {"echo": "loaded", "failing": "failed"}}
    info = client.get("/api/modules/failing").json
    assert info["state"] == "failed" and "weights.bin is missing" in info["error"]
    reply = client.get("/api/failing")
    assert reply.status_code == 503 and "weights.bin is missing" in reply.json["error"]
    assert client.post("/api/echo", json={"text": "hi"}).json == {"echo": ">hi"}


def test_disabled_module_route_is_403(app_with):
    reply = app_with(enable=[]).test_client().post("/api/echo", json={"text": "x"})
    assert reply.status_code == 403 and reply.json == {"error": "Module 'echo' not enabled in config"}


# -- settings introspection ------------------------------------------------------------------------

def test_schema_describes_settings_and_marks_load_time(app_with):
    body = app_with(modules={"echo": {"repeat": 2}}).test_client().get("/api/modules/echo/schema").json
    schema = body["schema"]
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["properties"]["repeat"] == {"default": 1, "description": "How many times to echo.",
                                              "maximum": 3, "minimum": 1, "title": "Repeat", "type": "integer"}
    assert schema["properties"]["device"]["enum"] == ["auto", "cpu", "cuda"]
    assert schema["properties"]["model"]["x-load-time"] is True
    assert set(body["load_time"]) == {"device", "dtype", "model"}
    assert body["values"]["repeat"] == 2


def test_live_settings_change_validated(app_with):
    client = app_with().test_client()
    ok = client.post("/api/modules/echo/settings", json={"repeat": 3})
    assert ok.status_code == 200 and ok.json["values"]["repeat"] == 3
    assert client.post("/api/echo", json={"text": "a"}).json == {"echo": ">aaa"}
    bad = client.post("/api/modules/echo/settings", json={"repeat": 7})
    assert bad.status_code == 422 and bad.json["details"][0]["loc"] == ["repeat"]
    assert "repeat:" in bad.json["error"]
    frozen = client.patch("/api/modules/echo/settings", json={"model": "huge"})
    assert frozen.status_code == 422 and "model: applies at load time" in frozen.json["error"]
    unknown = client.post("/api/modules/echo/settings", json={"nope": 1})
    assert unknown.status_code == 422 and "nope" in unknown.json["error"]
    assert client.get("/api/modules/nothing/schema").status_code == 404


# -- services between modules ----------------------------------------------------------------------

@runtime_checkable
class Shouter(Protocol):
    """A typed contract, as a module publishes one in its contract.py."""

    def shout(self, text: str) -> str: ...


class Loud:
    def shout(self, text: str) -> str:
        return text.upper() + "!"


def test_modules_cooperate_through_the_host(app_with):
    app = app_with()
    context = app.extensions["greenroom"].context
    seen = []
    context.subscribe("echoed", lambda text: seen.append(text))
    context.subscribe("echoed", lambda text: 1 / 0)  # a failing subscriber must not break the request
    assert app.test_client().post("/api/echo", json={"text": "yo"}).status_code == 200
    assert seen == ["yo"]
    context.provide(Shouter, Loud())
    assert context.service(Shouter).shout("a") == "A!" and context.service(Loud) is None
    with pytest.raises(TypeError, match="does not implement Shouter"):
        context.provide(Shouter, object())
    calls = []
    assert context.shared("k", lambda: calls.append(1) or "model") == context.shared("k", lambda: calls.append(1))
    assert calls == [1]


# -- request handling ------------------------------------------------------------------------------

def test_json_body_without_content_type_and_bad_bodies(app_with):
    client = app_with(max_content_length_mb=0.01).test_client()
    raw = client.post("/api/echo", data=json.dumps({"text": "x"}), content_type=None)
    assert raw.status_code == 200 and raw.json == {"echo": ">x"}
    assert client.post("/api/echo", data="{nope").json["error"].startswith("request body is not valid JSON")
    assert client.post("/api/echo", data=b"\xff\xfe").status_code == 400
    missing = client.post("/api/echo", json={})
    assert missing.status_code == 400 and missing.json["error"] == "text: Field required"
    assert client.post("/api/echo", json=["a"]).json["error"] == "request body must be a JSON object"
    deep = "[" * 100000 + "]" * 100000
    assert client.post("/api/echo", data=deep).status_code in (400, 413)
    nested = '{"text": "x", "y": ' + "[" * 80 + "]" * 80 + "}"
    assert "nested" in client.post("/api/echo", data=nested).json["error"]
    surrogate = client.post("/api/echo", data='{"text": "a\\ud800b"}')
    assert surrogate.status_code == 200 and surrogate.json["echo"] == ">a\ufffdb"
    big = client.post("/api/echo", json={"text": "x" * 20000})
    assert big.status_code == 413 and "too large" in big.json["error"]


def test_unexpected_error_is_json_500_and_server_continues(app_with):
    client = app_with().test_client()
    reply = client.get("/api/echo/boom")
    assert reply.status_code == 500 and reply.json["error"] == "internal error (RuntimeError); see the server log"
    assert client.get("/api/modules").status_code == 200


def test_domain_errors_map_to_http_once(app_with, monkeypatch):
    client = app_with().test_client()
    reply = client.get("/api/echo/busy")
    assert reply.status_code == 503 and reply.headers["Retry-After"] == "7"
    assert reply.json == {"error": "echo is full", "queue": 3}
    monkeypatch.setitem(ERROR_SHAPES, "/api/echo/", lambda exc: {"detail": exc.message, "code": exc.status})
    assert client.get("/api/echo/busy").json == {"detail": "echo is full", "code": 503}
    assert client.get("/api/nothing").json == {"error": "not found: /api/nothing"}


def test_import_greenroom_loads_no_flask():
    code = ("import sys, greenroom, greenroom.errors, greenroom.module; "
            "assert 'flask' not in sys.modules, 'greenroom imported flask'; "
            "assert callable(greenroom.create_app) and 'flask' in sys.modules")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_errors_are_json(app_with):
    client = app_with().test_client()
    assert client.get("/api/nothing").json == {"error": "not found: /api/nothing"}
    wrong = client.get("/api/echo")
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"] and "error" in wrong.json


def test_cors_echoes_origin_and_headers_and_exposes_ours(app_with):
    client = app_with().test_client()
    pre = client.options("/api/echo", headers={
        "Origin": "http://127.0.0.1:8000", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "X-CSRF-Token, Authorization",
        "Access-Control-Request-Private-Network": "true"})
    assert pre.status_code == 200 and pre.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8000"
    assert pre.headers["Access-Control-Allow-Headers"] == "Authorization, X-CSRF-Token"
    assert pre.headers["Access-Control-Allow-Private-Network"] == "true" and "Origin" in pre.headers["Vary"]
    assert {"GET", "POST", "DELETE"} <= {m.strip() for m in pre.headers["Access-Control-Allow-Methods"].split(",")}
    busy = client.get("/api/echo/busy", headers={"Origin": "http://localhost:8000"})
    assert busy.headers["Access-Control-Allow-Origin"] == "http://localhost:8000"
    exposed = {h.strip() for h in busy.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Retry-After", "X-Request-Duration", "X-Instance-Id", "X-Frame-Seq"} <= exposed
    assert client.get("/api/modules").headers["Access-Control-Allow-Origin"] == "*"


def test_api_key_comparison():
    assert key_matches("Bearer s3cret", "s3cret") and key_matches("bearer s3cret", "s3cret")
    assert not key_matches("Basic s3cret", "s3cret") and not key_matches("Bearer s3cre", "s3cret")
    assert not key_matches("", "s3cret") and not key_matches("Bearer \u00e9", "s3cret")
    assert key_matches("s3cret", "s3cret") and key_matches(" s3cret ", "s3cret")  # Raven's bare key
    assert not key_matches("s3cre", "s3cret") and not key_matches("Token s3cret", "s3cret")


def test_secure_mode_in_process(app_with, tmp_path):
    (tmp_path / "key.txt").write_text("k3y\n")
    client = app_with(secure=True, api_key_file=str(tmp_path / "key.txt")).test_client()
    assert client.get("/api/modules").status_code == 401
    assert client.get("/api/modules", headers={"Authorization": "Bearer k3y"}).status_code == 200
    assert client.get("/api/echo/open").status_code == 200
    assert client.options("/api/modules").status_code == 200


def test_generated_key_file_is_private(app_with, tmp_path):
    key_file = tmp_path / "sub" / "key.txt"
    app = app_with(secure=True, api_key_file=str(key_file))
    key = key_file.read_text().strip()
    assert len(key) >= 24 and app.extensions["greenroom.api_key"] == key
    assert key_file.stat().st_mode & 0o077 == 0


# -- OpenAPI ---------------------------------------------------------------------------------------

def test_openapi_covers_every_served_route(app_with):
    from openapi_spec_validator import validate

    from greenroom.web.openapi import openapi_path
    app = app_with(secure=True)
    doc = app.test_client().get("/openapi.json").json
    validate(doc)
    served = {openapi_path(rule.rule)[0] for rule in app.url_map.iter_rules()
              if rule.endpoint != "static" and not rule.endpoint.startswith("failing.")}
    assert served == set(doc["paths"])
    echo = doc["paths"]["/api/echo"]["post"]
    assert echo["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/EchoBody"}
    assert {"400", "401", "403", "413"} <= set(echo["responses"])
    assert doc["paths"]["/api/echo/open"]["get"]["security"] == []


def test_human_pages(app_with):
    client = app_with().test_client()
    page = client.get("/").get_data(as_text=True)
    assert "echo" in page and "Echoes text back." in page and 'href="api/modules/echo/schema"' in page
    docs = client.get("/docs").get_data(as_text=True)
    assert "/api/echo" in docs and "Echo" in docs


def test_shipped_plugins_toml_documents_every_builtin_setting(make_config):
    """The commented plugins.toml must mention every setting of every built-in module and the server."""
    import re

    from greenroom.server.cli import DEFAULT_CONFIG
    from greenroom.config import ServerSettings
    text = DEFAULT_CONFIG.read_text()
    tables = dict(re.findall(r"^\[([\w.]+)\]\n(.*?)(?=^\[|\Z)", text, flags=re.S | re.M))
    for field in ServerSettings.model_fields:
        assert f"# {field} = " in tables["server"], field
    host = create_app(make_config()).extensions["greenroom"]
    builtin = [r for r in host.records.values() if host.registry.plugins[r.plugin].builtin]
    for rec in builtin:
        section = tables.get(f"modules.{rec.name}", "")
        for field in rec.cls.Settings.model_fields:
            assert f"# {field} = " in section, f"plugins.toml lacks [modules.{rec.name}] {field}"


def test_module_can_hide_its_own_name(make_config):
    class Quiet(Echo):
        name = "quiet"
        aliases = ("quiet-compat",)
        advertise_name = False

    app = create_app(make_config(enable=["quiet"]), plugins=[("p", plugin(Quiet))], discover=False)
    assert app.test_client().get("/api/modules").json == {"modules": ["quiet-compat"]}
    assert app.test_client().get("/api/modules/quiet").json["state"] == "loaded"


def test_shipped_plugins_toml_is_valid_when_uncommented():
    """Uncommenting any documented default must give valid TOML (nested lists and tables included)."""
    import re
    import tomllib

    from greenroom.server.cli import DEFAULT_CONFIG
    text = re.sub(r"^# (\w+ = .*)$", r"\1", DEFAULT_CONFIG.read_text(), flags=re.M)
    data = tomllib.loads(text)
    assert data["server"]["port"] == 5100 and "tts" in data["modules"]


_FAULTS_PER_BUFFER = """
import resource, sys, threading
import numpy as np
from greenroom.server.cli import tune_malloc
tune_malloc()
def work(out):
    np.ones(2**21, np.float32)  # the first 8 MiB buffer may be a fresh mapping
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(40):
        np.ones(2**21, np.float32)  # 8 MiB (2,048 pages), freed at once: an avatar frame's buffers
    out.append((resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before) / 40)
out = []
thread = threading.Thread(target=work, args=(out,))
thread.start()
thread.join()
print(out[0])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_the_server_reuses_freed_frame_buffers_instead_of_mapping_new_ones():
    """With tune_malloc a freed 8 MiB buffer is reused by the next one; a 1 MiB mmap threshold made every
    buffer a fresh mapping (2,048 page faults each: 45 % of a CPU avatar's time went to the kernel)."""
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", _FAULTS_PER_BUFFER], capture_output=True, text=True, env=env,
                         timeout=60, check=True)
    assert float(out.stdout) < 100, f"{out.stdout.strip()} page faults per 8 MiB buffer"
