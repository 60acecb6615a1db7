"""The application factory: ``create_app(config)`` builds one Flask app with its modules loaded."""
from __future__ import annotations

import logging
import secrets
from pathlib import Path
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
