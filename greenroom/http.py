"""The transport contract SillyTavern clients rely on: CORS (flask-cors), API key, slashes, JSON errors, logging."""
from __future__ import annotations

import hmac
import logging
import re
import time
from typing import Any, Callable
from urllib.parse import urlsplit

from flask import Flask, Response, g, jsonify, request
from flask_cors import CORS
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from .context import CLIENT
from .errors import BadRequest, Error, describe_validation_error
from .web.openai_models import openai_error

log = logging.getLogger("greenroom.http")

EXPOSED_HEADERS = ["Retry-After", "X-Request-Duration", "X-Instance-Id", "X-Frame-Seq",
                   "X-Audio-Duration", "X-Word-Timestamps"]  # the last two: Raven's speak (modules/raven)
"""Response headers a browser page may read: CORS echoes the origin and the requested headers, and a
page on a public site may reach this server on the local network (private network access)."""
_SLASHES = re.compile(r"/{2,}")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
"""Methods that change nothing: any page may send them (a browser lets it read the answer only when its
origin is allowed). The others need an allowed Origin, or none (curl, Python, SillyTavern's server)."""


class CollapseSlashes:
    """WSGI middleware: ``//api/x`` is served as ``/api/x`` (ST concatenates URLs)."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        path = environ.get("PATH_INFO", "")
        if "//" in path:
            environ["PATH_INFO"] = _SLASHES.sub("/", path)
        return self.app(environ, start_response)


def greenroom_error(exc: Error) -> dict[str, Any]:
    return exc.body()


ERROR_SHAPES: dict[str, Callable[[Error], dict[str, Any]]] = {"/": greenroom_error, "/v1/": openai_error}
"""The body of an error answer by route prefix, longest first: the one place where a family of routes
(an OpenAI-compatible ``/v1``, say) can answer errors in its own contract's shape."""


def error_body(exc: Error, path: str) -> dict[str, Any]:
    """The body of ``exc`` in the shape of the routes ``path`` belongs to."""
    prefix = max((p for p in ERROR_SHAPES if path.startswith(p)), key=len, default="/")
    return ERROR_SHAPES[prefix](exc)


def error_response(exc: Error) -> Response:
    """Every error the server answers passes here (waitress's own through error_body): the shape chosen by
    path, then status and headers."""
    response = jsonify(error_body(exc, request.path))
    response.status_code = exc.status
    response.headers.update(exc.headers)
    return response


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


def origin_patterns(origins: list[str]) -> list[re.Pattern] | str:
    """``cors_origins`` for flask-cors: '*', or one anchored pattern per origin ('http://host': any port)."""
    if "*" in origins:
        return "*"
    return [re.compile(re.escape(o.rstrip("/")) + (r"\Z" if re.search(r":\d+$", o) else r"(:\d+)?\Z"), re.I)
            for o in origins]


def origin_allowed(origin: str, patterns: list[re.Pattern] | str) -> bool:
    return patterns == "*" or any(p.match(origin) for p in patterns)


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


def install(app: Flask, api_key: str | None, exempt: set[str], access_log: bool = False,
            origins: list[str] | None = None, hosts: set[str] | None = None) -> None:
    """Wire the transport contract into ``app``. ``exempt`` holds endpoint names that skip the key.

    Failed requests are always logged; successful ones only with ``access_log`` (a log line costs
    about a third of a tiny request's time).
    """
    allowed = origin_patterns(origins if origins is not None else ["*"])
    CORS(app, origins=allowed, send_wildcard=False, allow_headers="*", expose_headers=EXPOSED_HEADERS,
         allow_private_network=True)

    @app.before_request
    def _start() -> Response | None:
        g.started = time.perf_counter()
        CLIENT.set(request.remote_addr)  # streams are counted per client address
        if hosts is not None and host_name(request.host) not in hosts:
            return error_response(Error(403, f"Host {host_name(request.host)} is not a name this server answers "
                                             "to; add it to allowed_hosts in the [server] table of plugins.toml"))
        origin = request.headers.get("Origin")
        same_site = origin is not None and urlsplit(origin).netloc.lower() == request.host.lower()
        if origin is not None and request.method not in SAFE_METHODS and not same_site \
                and not origin_allowed(origin, allowed):
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
        if (access_log or response.status_code >= 400) and log.isEnabledFor(logging.INFO):
            log.info("%s %s %s in=%dB %.1fms", request.method, request.path, response.status_code,
                     request.content_length or 0, elapsed * 1000)
        return response

    @app.errorhandler(Error)
    def _error(exc: Error) -> Response:
        return error_response(exc)

    @app.errorhandler(ValidationError)
    def _validation_error(exc: ValidationError) -> Response:
        return error_response(BadRequest(describe_validation_error(exc)))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response | HTTPException:
        if exc.code is None or exc.code < 400:
            return exc
        message = {404: f"not found: {request.path}",
                   405: f"method {request.method} not allowed for {request.path}",
                   413: f"request body too large (limit {app.config.get('MAX_CONTENT_LENGTH')} bytes)",
                   }.get(exc.code, exc.description or exc.name)
        allow = exc.get_response().headers.get("Allow", "") if exc.code == 405 else None
        return error_response(Error(exc.code, message, headers={"Allow": allow} if allow is not None else None))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(Error(500, f"internal error ({type(exc).__name__}); see the server log"))
