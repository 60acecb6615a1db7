"""OpenAI's ``GET /v1/models``, answered alike by every module that serves an OpenAI-style endpoint.

Each such module offers its model names while it is loaded (:func:`offer_models`, called from its
``load``); whichever module's route answers, :func:`model_list` lists them all.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    from .context import Context

MODELS_TOPIC = "openai.models"


def offer_models(context: "Context", names: Callable[[], Iterable[str]]) -> None:
    """List ``names()`` in /v1/models from now on."""
    context.subscribe(MODELS_TOPIC, lambda add: add(names()))


def model_list(context: "Context") -> dict[str, Any]:
    """The body of ``GET /v1/models``: every offered name once, in the order offered."""
    ids: list[str] = []
    context.publish(MODELS_TOPIC, add=lambda names: ids.extend(n for n in names if n not in ids))
    return {"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": "greenroom"}
                                       for i in ids]}
