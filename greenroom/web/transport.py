"""The transport contract SillyTavern clients and browsers rely on, wired into the app by ``create_app``:
CORS (flask-cors), the API key, the origin and Host allow-lists, ``//`` in paths, timing and the access log.
"""
from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from flask import Flask, Response, g, request
from flask_cors import CORS

from ..config import ServerSettings
from ..context import CLIENT
from ..errors import Error
from ..http import error_response

log = logging.getLogger("greenroom.http")

EXPOSED_HEADERS = ["Retry-After", "X-Request-Duration", "X-Instance-Id", "X-Frame-Seq",
                   "X-Audio-Duration", "X-Word-Timestamps"]  # the last two: Raven's speak (modules/raven)
"""Response headers a browser page may read: CORS echoes the origin and the requested headers, and a
page on a public site may reach this server on the local network (private network access)."""
_SLASHES = re.compile(r"/{2,}")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
"""Methods that change nothing: any page may send them (a browser lets it read the answer only when its
origin is allowed). The others need an allowed Origin, or none (curl, Python, SillyTavern's server)."""


def collapse_slashes(app: Callable) -> Callable:
    """WSGI middleware: ``//api/x`` is served as ``/api/x`` (ST concatenates URLs)."""

    def collapsed(environ: dict[str, Any], start_response: Callable) -> Any:
        if "//" in environ.get("PATH_INFO", ""):
            environ["PATH_INFO"] = _SLASHES.sub("/", environ["PATH_INFO"])
        return app(environ, start_response)
    return collapsed


def key_matches(header: str, key: str) -> bool:
    """``Authorization: Bearer <key>`` (scheme case-insensitive) or the bare ``<key>`` that Raven's client
    sends, compared in constant time."""
    value = header.strip()
    scheme, _, token = value.partition(" ")
    secret = key.encode("utf-8")
    # Both comparisons always run, so timing says nothing about which form or part failed.
    bearer = hmac.compare_digest(token.strip().encode("utf-8", "replace"), secret)
    bare = hmac.compare_digest(value.encode("utf-8", "replace"), secret)
    return (scheme.lower() == "bearer" and bearer) | bare


def read_or_create_key(path: str) -> str:
    """The API key from ``path``; a random one is generated there (mode 600) when missing or empty."""
    file = Path(path).expanduser()
    key = file.read_text(encoding="utf-8").strip() if file.exists() else ""
    if not key:
        file.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(24)
        file.write_text(key + "\n", encoding="utf-8")
        file.chmod(0o600)
    return key


def origin_patterns(origins: list[str]) -> list[re.Pattern] | str:
    """``cors_origins`` for flask-cors: '*', or one anchored pattern per origin ('http://host': any port)."""
    if "*" in origins:
        return "*"
    return [re.compile(re.escape(o.rstrip("/")) + (r"\Z" if re.search(r":\d+$", o) else r"(:\d+)?\Z"), re.I)
            for o in origins]


def server_hosts(listen: bool, extra: list[str]) -> set[str]:
    """Host names (no port) a request may name: loopback ones, ``extra``, and with ``listen`` this machine's
    own name and interface addresses."""
    hosts = {"localhost", "127.0.0.1", "::1", *(h.lower() for h in extra)}
    if listen:
        import socket

        import psutil
        name = socket.gethostname().lower()
        hosts |= {name, f"{name}.local", socket.getfqdn().lower()}
        hosts |= {a.address.split("%")[0].lower() for addrs in psutil.net_if_addrs().values() for a in addrs
                  if a.family in (socket.AF_INET, socket.AF_INET6)}
    return hosts


def host_name(host: str) -> str:
    """``Host`` without its port: 'a.b:5100' -> 'a.b', '[::1]:5100' -> '::1'."""
    if host.startswith("["):
        return host[1:host.find("]")].lower()
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


def install(app: Flask, server: ServerSettings, exempt: set[str]) -> None:
    """Wire the transport contract into ``app``; ``exempt`` holds endpoint names that skip the key. The key
    (with ``secure``) is kept in ``app.extensions["greenroom.api_key"]``.

    Failed requests are always logged; successful ones only with ``access_log`` (a log line costs
    about a third of a tiny request's time).
    """
    api_key = read_or_create_key(server.api_key_file) if server.secure else None
    app.extensions["greenroom.api_key"] = api_key
    allowed = origin_patterns(server.cors_origins)
    hosts = server_hosts(server.listen, server.allowed_hosts)
    CORS(app, origins=allowed, send_wildcard=False, allow_headers="*", expose_headers=EXPOSED_HEADERS,
         allow_private_network=True)
    app.wsgi_app = collapse_slashes(app.wsgi_app)

    @app.before_request
    def _start() -> Response | None:
        g.started = time.perf_counter()
        CLIENT.set(request.remote_addr)  # streams are counted per client address
        if host_name(request.host) not in hosts:
            return error_response(Error(403, f"Host {host_name(request.host)} is not a name this server answers "
                                             "to; add it to allowed_hosts in the [server] table of plugins.toml"))
        origin = request.headers.get("Origin")
        same_site = origin is not None and urlsplit(origin).netloc.lower() == request.host.lower()
        if origin is not None and request.method not in SAFE_METHODS and not same_site \
                and not (allowed == "*" or any(p.match(origin) for p in allowed)):
            return error_response(Error(403, f"origin {origin} may not change anything here; add it to "
                                             f"cors_origins in the [server] table of plugins.toml "
                                             f"(cors_origins = [..., \"{origin}\"])", origin=origin))
        if request.method == "OPTIONS":  # every preflight succeeds, before the key check; CORS adds the rest
            return Response(status=200)
        if api_key is not None and request.endpoint not in exempt:
            if not key_matches(request.headers.get("Authorization", ""), api_key):
                return error_response(Error(401, "401: Invalid API key"))  # SillyTavern-Extras' words
        return None

    @app.after_request
    def _finish(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        response.headers["X-Request-Duration"] = f"{elapsed:.6f}"
        if "Origin" not in request.headers:  # not a browser's cross-site request: nothing to protect
            response.headers.setdefault("Access-Control-Allow-Origin", "*")
        # The shape of the request, never its content.
        if (server.access_log or response.status_code >= 400) and log.isEnabledFor(logging.INFO):
            log.info("%s %s %s in=%dB %.1fms", request.method, request.path, response.status_code,
                     request.content_length or 0, elapsed * 1000)
        return response
