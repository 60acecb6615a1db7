"""The host's own routes: SillyTavern's discovery calls, health, module facts and settings, server status,
``/openapi.json``, and the pages (``/``, the web page at ``/ui/``, the explorer at ``/docs``, ``/v1/models``).

Modules never import this; ``create_app`` registers :func:`host_blueprint` beside the modules' blueprints.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict
from typing import Any

import psutil
from flask import current_app, jsonify, render_template
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from .. import __version__
from ..api import ApiBlueprint
from ..app import host_of
from ..errors import Error, Invalid, NotFound, describe_validation_error, validation_details
from ..host import Host, ModuleRecord
from ..module import ModuleSettings
from ..plugins import PluginRegistry
from . import explorer, openai_models, webui
from .openapi import openapi_document


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


def host_blueprint() -> ApiBlueprint:
    bp = ApiBlueprint("host", __name__, template_folder="templates")

    @bp.api("/", summary="A small human page listing modules with links to their documentation", auth=False,
            responses={200: {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}})
    def index():
        host = host_of()
        return render_template("index.html", host=host, version=__version__,
                               records=[host.records[n] for n in host.available_names()])

    webui.add_routes(bp)  # the web page at /ui/ (webui.py)
    explorer.add_routes(bp)  # the API explorer at /docs (explorer.py)
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
        return jsonify(module_facts(_record(host, name), host.registry))

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
            responses={200: "The new settings", 404: "No such module", 409: "The module is not running (disabled or failed)",
                       422: "Invalid value or load-time setting"})
    def module_settings(name: str, body: SettingsChange):
        host = host_of()
        rec = _record(host, name)
        if rec.state != "loaded":
            raise Error(409, f"module '{name}' is {rec.state}; settings can change only while it runs")
        new = update_settings(rec, body.model_dump(), host.server.allow_remote_settings)
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


def module_facts(rec: ModuleRecord, registry: PluginRegistry) -> dict[str, Any]:
    """The body of ``/api/modules/<name>``."""
    plugin = registry.plugins.get(rec.plugin)
    out: dict[str, Any] = {
        "name": rec.name, "version": rec.cls.version, "description": rec.cls.description,
        "aliases": list(rec.cls.aliases), "state": rec.state, "error": rec.error,
        "plugin": rec.plugin, "distribution": plugin.distribution if plugin else None,
        "builtin": plugin.builtin if plugin else False,
        "resources": asdict(rec.cls.resources),
    }
    if rec.compute is not None:
        out.update(device=rec.compute.device, dtype=rec.compute.dtype, placement=rec.compute.reason)
    if rec.load_seconds is not None:
        out["load_seconds"] = round(rec.load_seconds, 3)
    out["memory"] = rec.memory
    if rec.state == "loaded":
        try:
            out["status"] = rec.instance.status()
        except Exception as exc:  # status is informational; never fail the request for it
            out["status"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def update_settings(rec: ModuleRecord, changes: dict[str, Any], allow_remote_settings: bool) -> ModuleSettings:
    """Validate and apply live settings: load-time fields cannot change while the module runs, and fields
    marked sensitive only with the server's ``allow_remote_settings``."""
    current = rec.instance.settings
    frozen = [k for k in changes if k in current.load_time_fields() and changes[k] != getattr(current, k)]
    if frozen:
        raise Invalid(f"{', '.join(frozen)}: applies at load time only; set it in plugins.toml and restart",
                      details=[{"loc": [k], "msg": "load-time setting"} for k in frozen])
    locked = [] if allow_remote_settings else \
        [k for k in changes if k in current.sensitive_fields() and not _same(getattr(current, k), changes[k])]
    if locked:
        raise Invalid(f"{', '.join(locked)}: names a URL or holds a secret, so it is set in plugins.toml; the "
                      "API changes it only with allow_remote_settings = true in [server]",
                      details=[{"loc": [k], "msg": "remote change refused"} for k in locked])
    try:
        new = type(current).model_validate({**current.model_dump(), **changes})
    except ValidationError as exc:
        raise Invalid(describe_validation_error(exc), details=validation_details(exc)) from None
    rec.instance.apply_settings(new)
    return new


def _same(current: Any, sent: Any) -> bool:
    """Whether a settings form sent back the current value (a secret comes back as its mask or itself)."""
    if isinstance(current, SecretStr):
        return sent in (str(current), current.get_secret_value())
    return bool(sent == current)
