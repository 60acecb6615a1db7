"""The one error type of Greenroom. Domain code raises it; the host turns it into an HTTP answer.

This file imports neither Flask nor the host, so a module's library code can raise ``BadRequest`` or
``Busy`` and stay usable outside a server. The host maps every :class:`Error` to a response in one
place (:func:`greenroom.http.error_response`): ``{"error": message, **extra}`` with ``status`` and
``headers``.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from pydantic import ValidationError


class Error(Exception):
    """A failure the client should hear about: ``status`` (an HTTP code), a message naming the field or
    problem, optional response ``headers`` and ``extra`` fields for the body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **self.extra}


ApiError = Error
"""The name route code has always used."""


class BadRequest(Error):
    """400: the input is wrong; the message names the field."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(400, message, **extra)


class NotFound(Error):
    """404: the thing the request names does not exist."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(404, message, **extra)


class Invalid(Error):
    """422: well-formed but not acceptable (settings that do not fit)."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(422, message, **extra)


class Busy(Error):
    """503 with ``Retry-After``: full or not ready now; ``retry_after`` seconds is a hint."""

    def __init__(self, message: str, retry_after: int = 5, **extra: Any) -> None:
        super().__init__(503, message, headers={"Retry-After": str(retry_after)}, **extra)
        self.retry_after = retry_after


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming the field path: ``text: Field required``."""
    return "; ".join(f"{prefix}{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
                     for err in exc.errors())


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]


class RequestAborted(RuntimeError):
    """A SystemExit, KeyboardInterrupt or bare BaseException raised by module code while serving a request.

    Flask and waitress handle only ``Exception``: anything else left the client waiting with no answer
    until the connection timed out. As a RuntimeError it becomes an ordinary 500 (or ends a stream).
    """


@contextlib.contextmanager
def contained_base_exceptions() -> Iterator[None]:
    try:
        yield
    except (Exception, GeneratorExit):
        raise
    except BaseException as exc:
        raise RequestAborted(f"{type(exc).__name__} raised while serving a request") from exc
