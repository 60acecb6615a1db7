"""What every talkinghead route reads from a request: which instance it acts on.

One id pattern and one parser. A request names its instance in any of three places: ``instance_id`` in
the JSON body (or form), ``?instance_id=`` in the query string, or the ``X-Instance-Id`` header (load
balancers route by the last two; they never read bodies). Where several are given they must name the
same instance, else 400 naming ``instance_id``: so a balancer routing by header and a route reading
the body can never act on two different instances. Without any, a route acts on the default instance.

Every reply concerning an instance names it in ``X-Instance-Id`` (the module's after_request hook,
:func:`name_instance`), 404s included, so a balancer learns where each instance lives.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Response, g, request
from pydantic import BaseModel, Field

from greenroom import ApiError
from greenroom.errors import Busy

from .manager import DEFAULT_ID, InstanceManager

if TYPE_CHECKING:
    from .instance import Instance
    from .module import Talkinghead

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
NOT_FOUND = "Unknown instance_id (the message names it)"
HEADER = "X-Instance-Id"


def instance_id_field(description: str = "Instance to act on; the default instance when omitted.") -> Any:
    """The optional ``instance_id`` of a request body (checked against :data:`ID_PATTERN`)."""
    return Field(None, pattern=ID_PATTERN, description=description)


class InstanceQuery(BaseModel):
    instance_id: str | None = instance_id_field()


def parse_instance_id(raw: str | None) -> str | None:
    """A client's id checked like the body field (400 naming ``instance_id``); empty or absent: None."""
    return InstanceQuery.model_validate({"instance_id": raw}).instance_id if raw else None


def requested_instance_id(body: BaseModel | None = None) -> str | None:
    """The id a request names in its body, query or ``X-Instance-Id`` header; None means the default.

    The places may repeat one id; two different ids are a 400 naming ``instance_id``."""
    given = {"body": getattr(body, "instance_id", None),
             "query": parse_instance_id(request.args.get("instance_id")),
             "header": parse_instance_id(request.headers.get(HEADER))}
    named = {place: value for place, value in given.items() if value is not None}
    if len(set(named.values())) > 1:
        places = ", ".join(f"{place} '{value}'" for place, value in named.items())
        raise ApiError(400, f"instance_id: the request names different instances ({places}); name one",
                       field="instance_id")
    return next(iter(named.values()), None)


def concerns(instance_id: str | None) -> None:
    """Record that this reply concerns ``instance_id`` (None: the default instance), for :func:`name_instance`."""
    g.instance_id = instance_id or DEFAULT_ID


def name_instance(_module: "Talkinghead", response: Response) -> Response:
    """after_request: ``X-Instance-Id`` on every reply that concerns an instance (see :func:`concerns`)."""
    instance_id = g.get("instance_id")
    if instance_id is not None:
        response.headers.setdefault(HEADER, instance_id)
    return response


def refuse_new_while_draining(module: "Talkinghead", new: bool, instance_id: str | None) -> None:
    """A draining worker (SIGTERM, see greenroom/server/draining.py) keeps its instances but creates none (503)."""
    reason = module.context.draining
    if reason and (new or loaded_manager(module).find(instance_id) is None):
        raise Busy(f"this worker is draining ({reason}) and creates no new instances; retry, the load "
                   "balancer sends the retry to another worker")


def loaded_manager(module: "Talkinghead") -> InstanceManager:
    if module.manager is None:
        raise ApiError(503, "talkinghead is not loaded")
    return module.manager


def instance_by_id(module: "Talkinghead", instance_id: str | None) -> "Instance":
    """The live instance ``instance_id`` (None: the default one); 404 naming the id when there is none."""
    concerns(instance_id)
    return loaded_manager(module).get(instance_id)


def instance_from_request(module: "Talkinghead", body: BaseModel | None = None) -> "Instance":
    """The instance the request names (see :func:`requested_instance_id`)."""
    return instance_by_id(module, requested_instance_id(body))


def plain(message: str, inst: "Instance | None" = None) -> Response:
    """A text/plain answer as SillyTavern expects, naming the instance in ``X-Instance-Id``."""
    response = Response(message, mimetype="text/plain")
    if inst is not None:
        response.headers[HEADER] = inst.id
    return response
