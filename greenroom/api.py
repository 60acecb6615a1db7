"""Blueprints that document themselves: every route carries its OpenAPI operation.

``ApiBlueprint.api`` registers a Flask view and records the request and
response schemas beside it, so ``/openapi.json`` is built from the routes that
really exist, and request bodies are validated by the same pydantic models
that document them.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from flask import Blueprint, request
from pydantic import BaseModel, ValidationError

from .errors import BadRequest, contained_base_exceptions, describe_validation_error, validation_details

JSON_MAX_DEPTH = 64


def _fix_surrogates(value: Any, depth: int = 0) -> Any:
    """Replace lone UTF-16 surrogates (legal in JSON escapes, fatal to encoders) with U+FFFD."""
    if depth > JSON_MAX_DEPTH:
        raise BadRequest(f"JSON nested deeper than {JSON_MAX_DEPTH} levels")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_fix_surrogates(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {_fix_surrogates(k, depth + 1): _fix_surrogates(v, depth + 1) for k, v in value.items()}
    return value


def json_body(default: Any = None) -> Any:
    """The request body parsed as JSON whatever its Content-Type (SillyTavern omits it sometimes).

    An empty body gives ``default``; anything unparseable is a 400 that says so.
    """
    raw = request.get_data(cache=True)
    if not raw.strip():
        return default
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"request body is not valid UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise BadRequest("JSON body is nested too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    return _fix_surrogates(data)


def parse_model(model: type[BaseModel], data: Any, where: str = "") -> BaseModel:
    """Validate ``data`` into ``model`` or raise a 400 that names each bad field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadRequest(f"{where or 'request body'} must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(describe_validation_error(exc), details=validation_details(exc)) from None


@dataclass
class Operation:
    """One documented route: what the OpenAPI document says about it."""

    rule: str
    methods: list[str]
    endpoint: str
    summary: str
    description: str = ""
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    request_content: dict[str, Any] | None = None
    responses: dict[int, Any] = field(default_factory=dict)
    auth: bool = True
    tags: list[str] = field(default_factory=list)


def binary(*media_types: str, description: str = "Binary content") -> dict[str, Any]:
    """A response spec for raw bytes of the given media types."""
    return {"description": description,
            "content": {m: {"schema": {"type": "string", "format": "binary"}} for m in media_types}}


def text(description: str = "Plain-text status") -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


class ApiBlueprint(Blueprint):
    """A Flask blueprint whose routes record their OpenAPI operations."""

    def __init__(self, name: str, import_name: str, **kwargs: Any) -> None:
        super().__init__(name, import_name, **kwargs)
        self.operations: list[Operation] = []

    def api(self, rule: str, methods: Iterable[str] = ("GET",), *, summary: str, description: str = "",
            body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
            request_content: dict[str, Any] | None = None, responses: dict[int, Any] | None = None,
            auth: bool = True, tags: Iterable[str] = ()) -> Callable:
        """Register a view. With ``body``/``query`` the view receives validated models as keywords.

        ``auth=False`` exempts the route from the API key (for ``<img>``/``<audio>`` sources).
        """
        methods = [m.upper() for m in methods]

        def decorate(view: Callable) -> Callable:
            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if body is not None:
                    kwargs["body"] = parse_model(body, json_body({}))
                if query is not None:
                    kwargs["query"] = parse_model(query, request.args.to_dict(), "query string")
                with contained_base_exceptions():
                    return view(*args, **kwargs)

            self.add_url_rule(rule, view_func=wrapper, methods=methods)
            self.operations.append(Operation(
                rule=rule, methods=methods, endpoint=f"{self.name}.{view.__name__}", summary=summary,
                description=description or (view.__doc__ or "").strip(), body=body, query=query,
                request_content=request_content, responses=responses or {}, auth=auth,
                tags=list(tags) or [self.name]))
            return wrapper

        return decorate
