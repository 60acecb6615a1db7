"""Helpers every file of Raven's routes uses: reaching another module's service, and the key check
that request hooks repeat (they run before the host's own)."""
from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from flask import current_app, request

from greenroom.errors import Error
from greenroom.web.transport import key_matches

if TYPE_CHECKING:
    from .module import Raven

T = TypeVar("T")


def needed(module: "Raven", kind: type[T], provider: str) -> T:
    """The service ``kind`` of module ``provider``, or a 503 naming that module."""
    service = module.context.service(kind)
    if service is None:
        raise Error(503, f"module '{provider}' is not loaded; start the server with it enabled")
    return service


def authorised() -> bool:
    """Whether the request carries the API key (or none is required): hooks that answer a request
    themselves run before the host's key check and must not answer an unauthorised one."""
    key = current_app.extensions.get("greenroom.api_key")
    return key is None or key_matches(request.headers.get("Authorization", ""), key)
