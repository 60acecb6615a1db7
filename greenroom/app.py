"""The application factory: ``create_app(config)`` builds one Flask app with its modules loaded."""
from __future__ import annotations

import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Iterable

import psutil
from flask import Flask, current_app, jsonify, render_template, request
from pydantic import BaseModel, ConfigDict, Field

from . import __version__, explorer, http, openai_models, webui
from .api import ApiBlueprint
from .config import HostConfig
from .errors import Error, NotFound
from .host import Host
from .openapi import build_openapi
from .plugins import PluginRegistry

log = logging.getLogger("greenroom")


def host_of(app: Flask | None = None) -> Host:
    """The :class:`Host` of ``app`` (default: the current app)."""
    return (app or current_app).extensions["greenroom"]


def read_or_create_key(path: str) -> str:
    """The API key from ``path``; a random one is generated there (mode 600) when missing."""
    file = Path(path).expanduser()
    if file.exists():
        key = file.read_text(encoding="utf-8").strip()
        if key:
            return key
    file.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(24)
    file.write_text(key + "\n", encoding="utf-8")
    file.chmod(0o600)
    return key


class ModulesList(BaseModel):
    """The enabled, loaded modules, as SillyTavern expects."""
    modules: list[str]


class Health(BaseModel):
    """Liveness and the state of every enabled module."""
    status: str = Field(description="'ok' when every enabled module loaded, else 'degraded'.")
    modules: dict[str, str]


class ModuleInfo(BaseModel):
    """Everything the host knows about one module: origin, state, placement, load cost."""
    model_config = ConfigDict(extra="allow")
    name: str
    version: str
    state: str


class SettingsSchema(BaseModel):
    """A module's settings as JSON Schema 2020-12, with the current values."""
    model_config = ConfigDict(extra="allow")
    module: str
    schema_: dict[str, Any] = Field(alias="schema")
    values: dict[str, Any]
    load_time: list[str]


class ServerStatus(BaseModel):
    """Live counters of the serving process (read-only), for monitoring and leak checks."""
    streams_open: int = Field(description="Long-lived streams (video feeds, audio streams) holding a slot now.")
    streams_limit: int = Field(description="Most streams at once (server setting max_streams).")
    threads: int = Field(description="Python threads alive in the server process.")
    rss_mb: float = Field(description="Resident memory of the server process in MiB.")
    uptime_s: float = Field(description="Seconds since the server process started.")


class SettingsChange(BaseModel):
    """Any subset of the module's live settings."""
    model_config = ConfigDict(extra="allow")


def core_blueprint() -> ApiBlueprint:
    bp = ApiBlueprint("host", __name__)

    @bp.api("/", summary="A small human page listing modules with links to their documentation", auth=False,
            responses={200: {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}})
    def index():
        host = host_of()
        return render_template("index.html", host=host, version=__version__,
                               records=[host.records[n] for n in host.available_names()])

    webui.add_routes(bp)  # the web page at /ui/ (greenroom/webui.py)
    explorer.add_routes(bp)  # the API explorer at /docs (greenroom/explorer.py)
    openai_models.add_routes(bp)  # GET /v1/models, whichever modules are loaded

    @bp.api("/health", summary="Liveness and module states", auth=False, responses={200: Health})
    def health():
        host = host_of()
        states = {name: host.records[name].state for name in host.enabled}
        if host.context.draining:  # the load balancer stops sending new work here
            return jsonify({"status": "draining", "reason": host.context.draining, "modules": states}), 503
        ok = all(s == "loaded" for s in states.values())
        return jsonify({"status": "ok" if ok else "degraded", "modules": states})

    @bp.api("/api/modules", summary="Enabled modules (the SillyTavern discovery call)", responses={200: ModulesList})
    def modules():
        return jsonify({"modules": host_of().advertised()})

    @bp.api("/api/plugins", summary="Every installed plugin, where it came from and whether it loaded")
    def plugins():
        return jsonify({"plugins": host_of().registry.listing()})

    @bp.api("/api/modules/<name>", summary="One installed module: version, origin, state, device, load cost",
            responses={200: ModuleInfo, 404: "No such module"})
    def module_info(name: str):
        host = host_of()
        return jsonify(_record(host, name).info(host.registry))

    @bp.api("/api/modules/<name>/schema", summary="A module's settings as JSON Schema, with current values",
            responses={200: SettingsSchema, 404: "No such module"})
    def module_schema(name: str):
        rec = _record(host_of(), name)
        settings = rec.instance.settings
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **type(settings).model_json_schema()}
        return jsonify({"module": rec.name, "schema": schema, "values": settings.model_dump(mode="json"),
                        "load_time": settings.load_time_fields()})

    @bp.api("/api/modules/<name>/settings", methods=["POST", "PATCH"], body=SettingsChange,
            summary="Change live settings; validated by the module's settings model (422 names the field)",
            responses={200: "The new settings", 404: "No such module", 422: "Invalid value or load-time setting"})
    def module_settings(name: str, body: SettingsChange):
        host = host_of()
        rec = _record(host, name)
        if rec.state != "loaded":
            raise Error(409, f"module '{name}' is {rec.state}; settings can change only while it runs")
        new = host.update_settings(rec.name, body.model_dump())
        return jsonify({"module": rec.name, "values": new.model_dump(mode="json")})

    @bp.api("/api/server/status", summary="Open streams, threads and memory of the server process (read-only)",
            responses={200: ServerStatus})
    def server_status():
        host = host_of()
        proc = psutil.Process()
        return jsonify({"streams_open": host.context.streams.open, "streams_limit": host.context.streams.limit,
                        "threads": threading.active_count(), "rss_mb": round(proc.memory_info().rss / 2**20, 1),
                        "uptime_s": round(time.time() - proc.create_time(), 1)})

    @bp.api("/api/extensions", summary="Legacy stub kept for very old SillyTavern clients")
    def extensions():
        return jsonify({"extensions": [{"name": "not-supported", "metadata": {
            "display_name": "Extensions served by the Extras API are no longer supported.",
            "requires": [], "assets": []}}]})

    @bp.api("/openapi.json", summary="This document", auth=False)
    def openapi():
        return jsonify(openapi_document(current_app))

    return bp


def _record(host: Host, name: str):
    canonical = host.canonical_name(name)
    if canonical is None:
        raise NotFound(f"no module named '{name}'; installed: {', '.join(host.available_names())}")
    return host.records[canonical]


def openapi_document(app: Flask, every_module: bool = False) -> dict[str, Any]:
    """The enabled modules' operations; ``every_module``: every installed module's (the documentation site)."""
    host = host_of(app)
    blueprints = app.extensions["greenroom.blueprints"]
    names = [name for name in blueprints if name != "host"] if every_module else host.enabled
    module_ops = [op for name in names for op in blueprints[name].operations]
    return build_openapi("Greenroom", __version__, app.extensions["greenroom.blueprints"]["host"].operations,
                         module_ops, secure=host.server.secure)


def _guard(bp: ApiBlueprint, host: Host, name: str) -> None:
    """Answer 403 while the module is disabled and 503 if its load failed (EX's require_module)."""

    @bp.before_request
    def _module_state():
        rec = host.records[name]
        if name not in host.enabled:
            raise Error(403, f"Module '{name}' not enabled in config")
        if rec.state != "loaded":
            raise Error(503, f"module '{name}' is {rec.state}: {rec.error or 'not ready'}")


def create_app(config: HostConfig | None = None, plugins: Iterable[tuple[str, Any]] = (),
               discover: bool = True) -> Flask:
    """Build the app: discover plugins, validate settings, register blueprints, load enabled modules.

    ``plugins`` adds ``(name, plugin object)`` pairs beside the discovered ones (tests use it);
    ``discover=False`` skips entry points entirely.
    """
    config = config or HostConfig()
    registry = PluginRegistry()
    if discover:
        registry.discover()
    for name, obj in plugins:
        registry.add(obj, name)
    host = Host(config, registry)
    host.build_modules()

    app = Flask("greenroom", template_folder=str(Path(__file__).parent / "templates"))
    app.config["MAX_CONTENT_LENGTH"] = int(config.server.max_content_length_mb * 2**20)
    app.json.sort_keys = False
    app.url_map.strict_slashes = False
    app.extensions["greenroom"] = host
    blueprints: dict[str, ApiBlueprint] = {"host": core_blueprint()}
    # Enabled modules first, so a disabled module can never shadow an enabled one's route.
    order = host.enabled + [n for n in host.available_names() if n not in host.enabled]
    for name in order:
        rec = host.records[name]
        try:
            bp = rec.instance.blueprint()
        except Exception as exc:
            rec.state, rec.error = "failed", f"blueprint: {type(exc).__name__}: {exc}"
            log.error("module %s has no usable blueprint: %s", name, rec.error)
            continue
        _guard(bp, host, name)
        blueprints[name] = bp
    app.extensions["greenroom.blueprints"] = blueprints
    for bp in blueprints.values():
        app.register_blueprint(bp)
        host.auth_exempt.update(op.endpoint for op in bp.operations if not op.auth)

    api_key = read_or_create_key(config.server.api_key_file) if config.server.secure else None
    app.extensions["greenroom.api_key"] = api_key
    http.install(app, api_key, host.auth_exempt, config.server.access_log, config.server.cors_origins,
                 http.server_hosts(config.server.listen, config.server.allowed_hosts))
    app.wsgi_app = http.CollapseSlashes(app.wsgi_app)
    host.load_all()
    return app
