"""OpenAI's conventions shared by every ``/v1`` route: the model listing and the error shape.

- ``GET /v1/models`` and ``GET /v1/models/{id}`` are host routes (:func:`add_routes`), so the listing never
  depends on which module is loaded. Each module offers its models while it is loaded
  (:func:`offer_models`, called from its ``load``) with their owner and creation time.
- Every error answered under ``/v1/`` takes OpenAI's shape (:func:`openai_error`, chosen by
  ``greenroom.http.ERROR_SHAPES``): ``{"error": {"message", "type", "param", "code"}}``, which the official
  clients turn into typed exceptions carrying the message.

No Flask at import time: modules call :func:`offer_models` and :func:`model_not_found` from their load code.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..errors import Error, NotFound

if TYPE_CHECKING:
    from ..api import ApiBlueprint
    from ..context import Context

MODELS_TOPIC = "openai.models"


@dataclass(frozen=True)
class ModelCard:
    """One entry of ``/v1/models``: ``created`` is Unix seconds, ``owned_by`` who made the model."""
    id: str
    created: int
    owned_by: str
    object: str = "model"


def created_time(path: str | os.PathLike[str] | None) -> int | None:
    """When the model's file or folder at ``path`` was written (Unix seconds); None when it is not a path."""
    try:
        return int(os.stat(path).st_mtime) if path else None
    except (OSError, TypeError, ValueError):
        return None


def offer_models(context: "Context", names: Callable[[], Iterable[str]], owned_by: str = "greenroom",
                 created: int | None = None) -> None:
    """List ``names()`` in /v1/models from now on, owned by ``owned_by`` and created at ``created`` (default:
    now, the time the module loaded them). ``names()`` may return nothing once the module is unloaded."""
    when = int(time.time()) if created is None else created
    context.subscribe(MODELS_TOPIC, lambda add: add(ModelCard(n, when, owned_by) for n in names()))


def models(context: "Context") -> dict[str, ModelCard]:
    """Every offered model by id, in the order offered (the first offer of an id wins)."""
    found: dict[str, ModelCard] = {}

    def add(cards: Iterable[ModelCard]) -> None:
        for card in cards:
            found.setdefault(card.id, card)

    context.publish(MODELS_TOPIC, add=add)
    return found


def model_list(context: "Context") -> dict[str, Any]:
    """The body of ``GET /v1/models``."""
    return {"object": "list", "data": [asdict(card) for card in models(context).values()]}


def model_not_found(name: str, available: Iterable[str] = ()) -> NotFound:
    """OpenAI's 404 for a ``model`` no loaded module serves (``code: model_not_found``)."""
    names = list(available)
    hint = f"; available: {', '.join(names)}" if names else "; see GET /v1/models"
    return NotFound(f"model: the model '{name}' does not exist{hint}", param="model", code="model_not_found")


# -- the error shape ------------------------------------------------------------------------------

_FIELD = re.compile(r"([A-Za-z_][\w.\[\]]*): ")
"""Greenroom messages start with the field they are about ('input: ...', 'voice: ...')."""
_TYPES = {401: "invalid_request_error", 403: "invalid_request_error", 429: "rate_limit_error"}
_CODES = {401: "invalid_api_key", 403: "module_disabled", 404: "not_found", 405: "method_not_allowed",
          413: "request_too_large", 429: "rate_limit_exceeded", 503: "service_unavailable"}


def openai_error(exc: Error) -> dict[str, Any]:
    """``exc`` in OpenAI's shape. ``param`` and ``code`` come from the error's own fields when it has them
    (``NotFound(..., param="model", code="model_not_found")``), else from its message and status."""
    field = _FIELD.match(exc.message)
    param = exc.extra.get("param", field.group(1) if field and field.group(1) != "body" else None)
    kind = exc.extra.get("type") or _TYPES.get(exc.status) or (
        "server_error" if exc.status >= 500 else "invalid_request_error")
    return {"error": {"message": exc.message, "type": kind, "param": param,
                      "code": exc.extra.get("code", _CODES.get(exc.status))}}


# -- the routes -----------------------------------------------------------------------------------

def add_routes(bp: "ApiBlueprint") -> None:
    """``GET /v1/models`` and ``GET /v1/models/{id}`` on the host blueprint."""
    from flask import current_app, jsonify

    def context() -> "Context":
        return current_app.extensions["greenroom"].context

    @bp.api("/v1/models", tags=["openai"], summary="Every model the loaded modules serve (OpenAI's list)",
            responses={200: "{object: 'list', data: [{id, object, created, owned_by}]}"})
    def openai_model_list():
        return jsonify(model_list(context()))

    @bp.api("/v1/models/<path:model>", tags=["openai"], summary="One model of GET /v1/models",
            responses={200: "{id, object, created, owned_by}", 404: "No loaded module serves it (model_not_found)"})
    def openai_model(model: str):
        cards = models(context())
        if model not in cards:
            raise model_not_found(model, cards)
        return jsonify(asdict(cards[model]))
