"""The transport contract SillyTavern clients rely on: CORS (flask-cors), API key, slashes, JSON errors, logging."""
from __future__ import annotations

import hmac
import logging
import re
import time
from typing import Any, Callable

from flask import Flask, Response, g, jsonify, request
from flask_cors import CORS
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from .context import CLIENT
from .errors import BadRequest, Error, describe_validation_error

log = logging.getLogger("greenroom.http")

EXPOSED_HEADERS = ["Retry-After", "X-Request-Duration", "X-Instance-Id", "X-Frame-Seq"]
"""Response headers a browser page may read: CORS echoes the origin and the requested headers, and a
page on a public site may reach this server on the local network (private network access)."""
_SLASHES = re.compile(r"/{2,}")


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


ERROR_SHAPES: dict[str, Callable[[Error], dict[str, Any]]] = {"/": greenroom_error}
"""The body of an error answer by route prefix, longest first: the one place where a family of routes
(an OpenAI-compatible ``/v1``, say) can answer errors in its own contract's shape."""


def error_response(exc: Error) -> Response:
    """Every error the server answers passes here: the shape chosen by path, then status and headers."""
    prefix = max((p for p in ERROR_SHAPES if request.path.startswith(p)), key=len, default="/")
    response = jsonify(ERROR_SHAPES[prefix](exc))
    response.status_code = exc.status
    response.headers.update(exc.headers)
    return response


def key_matches(header: str, key: str) -> bool:
    """``Authorization: Bearer <key>`` (scheme case-insensitive), compared in constant time."""
    scheme, _, token = header.strip().partition(" ")
    # Compare even when the scheme is wrong, so timing says nothing about which part failed.
    same = hmac.compare_digest(token.strip().encode("utf-8", "replace"), key.encode("utf-8"))
    return scheme.lower() == "bearer" and same


def install(app: Flask, api_key: str | None, exempt: set[str], access_log: bool = False) -> None:
    """Wire the transport contract into ``app``. ``exempt`` holds endpoint names that skip the key.

    Failed requests are always logged; successful ones only with ``access_log`` (a log line costs
    about a third of a tiny request's time).
    """
    CORS(app, send_wildcard=False, allow_headers="*", expose_headers=EXPOSED_HEADERS, allow_private_network=True)

    @app.before_request
    def _start() -> Response | None:
        g.started = time.perf_counter()
        CLIENT.set(request.remote_addr)  # streams are counted per client address
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
