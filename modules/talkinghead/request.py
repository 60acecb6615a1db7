"""What every talkinghead route reads from a request: which instance it acts on.

One id pattern and one parser: a route names its instance with ``instance_id`` in the JSON body (or
form), else in the query string; without one it acts on the default instance.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from flask import Response, request
from pydantic import BaseModel, Field

from greenroom import ApiError

from .manager import InstanceError, InstanceManager

if TYPE_CHECKING:
    from .instance import Instance
    from .module import Talkinghead

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
NOT_FOUND = "Unknown instance_id (the message names it)"


def instance_id_field(description: str = "Instance to act on; the default instance when omitted.") -> Any:
    """The optional ``instance_id`` of a request body (checked against :data:`ID_PATTERN`)."""
    return Field(None, pattern=ID_PATTERN, description=description)


class InstanceQuery(BaseModel):
    instance_id: str | None = instance_id_field()


def parse_instance_id(raw: str | None) -> str | None:
    """A client's id checked like the body field (400 naming ``instance_id``); empty or absent: None."""
    return InstanceQuery.model_validate({"instance_id": raw}).instance_id if raw else None


def requested_instance_id(body: BaseModel | None = None) -> str | None:
    """The id a request names: the body's ``instance_id``, else ``?instance_id=``; None means the default."""
    named = getattr(body, "instance_id", None)
    return named if named is not None else parse_instance_id(request.args.get("instance_id"))


def loaded_manager(module: "Talkinghead") -> InstanceManager:
    if module.manager is None:
        raise ApiError(503, "talkinghead is not loaded")
    return module.manager


@contextmanager
def instance_errors() -> Iterator[None]:
    """The manager's InstanceError as the HTTP error it describes, naming the instance_id."""
    try:
        yield
    except InstanceError as exc:
        raise ApiError(exc.status, str(exc), instance_id=exc.instance_id) from None


def instance_by_id(module: "Talkinghead", instance_id: str | None) -> "Instance":
    """The live instance ``instance_id`` (None: the default one); 404 naming the id when there is none."""
    with instance_errors():
        return loaded_manager(module).get(instance_id)


def instance_from_request(module: "Talkinghead", body: BaseModel | None = None) -> "Instance":
    """The instance the request names (see :func:`requested_instance_id`)."""
    return instance_by_id(module, requested_instance_id(body))


def plain(message: str, inst: "Instance | None" = None) -> Response:
    """A text/plain answer as SillyTavern expects, naming the instance in ``X-Instance-Id``."""
    response = Response(message, mimetype="text/plain")
    if inst is not None:
        response.headers["X-Instance-Id"] = inst.id
    return response
