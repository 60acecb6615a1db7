"""The application factory: ``create_app(config)`` builds one Flask app with its modules loaded."""
from __future__ import annotations

import logging
from typing import Any, Iterable

from flask import Flask, current_app

from . import http
from .api import ApiBlueprint
from .config import HostConfig
from .errors import Error
from .host import Host
from .plugins import PluginRegistry

log = logging.getLogger("greenroom")


def host_of(app: Flask | None = None) -> Host:
    """The :class:`Host` of ``app`` (default: the current app)."""
    return (app or current_app).extensions["greenroom"]


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
    from .web import transport
    from .web.routes import host_blueprint  # it imports host_of from here

    config = config or HostConfig()
    registry = PluginRegistry()
    if discover:
        registry.discover()
    for name, obj in plugins:
        registry.add(obj, name)
    host = Host(config, registry)
    host.build_modules()

    app = Flask("greenroom")
    app.config["MAX_CONTENT_LENGTH"] = int(config.server.max_content_length_mb * 2**20)
    app.json.sort_keys = False
    app.url_map.strict_slashes = False
    app.extensions["greenroom"] = host
    blueprints: dict[str, ApiBlueprint] = {"host": host_blueprint()}
    # Enabled modules first, so a disabled module can never shadow an enabled one's route.
    for name in host.enabled + [n for n in host.available_names() if n not in host.enabled]:
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
    http.install_error_handlers(app)
    exempt = {op.endpoint for bp in blueprints.values() for op in bp.operations if not op.auth}
    transport.install(app, config.server, exempt)  # CORS, the API key but for ``exempt``, the allow-lists
    host.load_all()
    return app
