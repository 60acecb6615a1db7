"""Errors as HTTP answers, in one place: every :class:`~greenroom.errors.Error` a view raises, a validation
error, a Werkzeug 404/405/413 and an unexpected exception become JSON with the status and headers.

The body's shape follows the route's contract (:data:`ERROR_SHAPES`): ``{"error": message, ...}`` on
Greenroom and SillyTavern routes, OpenAI's shape under ``/v1/``.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from .errors import BadRequest, Error, describe_validation_error
from .web.openai_models import openai_error

log = logging.getLogger("greenroom.http")

ERROR_SHAPES: dict[str, Callable[[Error], dict[str, Any]]] = {"/": Error.body, "/v1/": openai_error}
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


def install_error_handlers(app: Flask) -> None:
    app.register_error_handler(Error, error_response)

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
