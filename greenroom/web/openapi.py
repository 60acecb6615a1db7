"""The OpenAPI 3.1 document, built from the operations the served blueprints recorded."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Iterable

from pydantic import BaseModel

from .. import __version__
from ..api import Operation

if TYPE_CHECKING:
    from flask import Flask

ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string", "description": "What went wrong, naming the field or problem."}},
    "required": ["error"],
}
OPENAI_ERROR_SCHEMA = {
    "type": "object",
    "description": "OpenAI's error shape, answered by every /v1 route.",
    "properties": {"error": {"type": "object", "required": ["message", "type"], "properties": {
        "message": {"type": "string", "description": "What went wrong, naming the field or problem."},
        "type": {"type": "string", "description": "invalid_request_error, authentication_error, ..."},
        "param": {"type": ["string", "null"], "description": "The field at fault, when there is one."},
        "code": {"type": ["string", "null"], "description": "model_not_found, invalid_api_key, ..."}}}},
    "required": ["error"],
}
ERROR_SCHEMAS = {"/": "Error", "/v1/": "OpenAIError"}
"""The error schema by route prefix, longest first, as greenroom.http.ERROR_SHAPES answers them."""


FLASK_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


def openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """Flask's ``/x/<int:n>`` as OpenAPI's ``/x/{n}`` with its path parameters."""
    params = []
    for conv, name in FLASK_PARAM.findall(rule):
        schema = {"type": "integer"} if conv == "int" else {"type": "string"}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return FLASK_PARAM.sub(r"{\2}", rule), params


class _Schemas:
    """Collects pydantic schemas into ``components.schemas`` under unique names."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Error": ERROR_SCHEMA, "OpenAIError": OPENAI_ERROR_SCHEMA}
        self._names: dict[type[BaseModel], str] = {}

    def ref(self, model: type[BaseModel]) -> dict[str, str]:
        if model not in self._names:
            name = model.__name__
            if name in self.components:
                name = f"{model.__module__.replace('.', '_')}_{name}"
            self._names[model] = name
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for def_name, def_schema in schema.pop("$defs", {}).items():
                self.components.setdefault(def_name, def_schema)
            self.components[name] = schema
        return {"$ref": f"#/components/schemas/{self._names[model]}"}

    def query_parameters(self, model: type[BaseModel]) -> list[dict[str, Any]]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for def_name, def_schema in schema.pop("$defs", {}).items():
            self.components.setdefault(def_name, def_schema)
        required = set(schema.get("required", []))
        return [{"name": name, "in": "query", "required": name in required, "schema": prop,
                 **({"description": prop["description"]} if "description" in prop else {})}
                for name, prop in schema.get("properties", {}).items()]


def _response(spec: Any, schemas: _Schemas) -> dict[str, Any]:
    if isinstance(spec, type) and issubclass(spec, BaseModel):
        return {"description": (spec.__doc__ or spec.__name__).strip().splitlines()[0],
                "content": {"application/json": {"schema": schemas.ref(spec)}}}
    if isinstance(spec, str):
        return {"description": spec}
    content = {media: ({"schema": schemas.ref(media_spec)} if isinstance(media_spec, type) else media_spec)
               for media, media_spec in spec.get("content", {}).items()}  # a model per media type is allowed
    return {**spec, "content": content} if content else spec


def _error(description: str, path: str) -> dict[str, Any]:
    name = ERROR_SCHEMAS[max((p for p in ERROR_SCHEMAS if path.startswith(p)), key=len)]
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


def _operation(op: Operation, method: str, schemas: _Schemas, secure: bool, module_route: bool) -> dict[str, Any]:
    path, params = openapi_path(op.rule)
    doc: dict[str, Any] = {"operationId": op.endpoint.replace(".", "_") + "_" + method.lower(),
                           "summary": op.summary, "tags": op.tags}
    if op.description:
        doc["description"] = op.description
    if op.query is not None:
        params = params + schemas.query_parameters(op.query)
    if params:
        doc["parameters"] = params
    if op.body is not None:
        # An empty body is parsed as {} (json_body), so the body is optional when no field is required.
        required = bool(op.body.model_json_schema().get("required"))
        doc["requestBody"] = {"required": required, "content": {"application/json": {"schema": schemas.ref(op.body)}}}
    elif op.request_content is not None:
        doc["requestBody"] = {"required": True, "content": op.request_content}
    responses = {str(code): _response(spec, schemas) for code, spec in op.responses.items()} or {
        "200": {"description": "OK"}}
    if op.body is not None or op.query is not None or op.request_content is not None:
        responses.setdefault("400", _error("Invalid request; the message names the field.", path))
    if op.body is not None or op.request_content is not None:
        responses.setdefault("413", _error("Request body larger than the server's limit.", path))
    if secure and op.auth:
        responses.setdefault("401", _error('Missing or wrong API key: {"error": "401: Invalid API key"}.', path))
    if module_route:
        responses.setdefault("403", _error("The module is installed but not enabled.", path))
        responses.setdefault("503", _error("The module failed to load, or the server is busy.", path))
    doc["responses"] = responses
    if secure and op.auth:
        doc["security"] = [{"bearer": []}]
    elif secure:
        doc["security"] = []
    return doc


def build_openapi(title: str, version: str, host_ops: Iterable[Operation],
                  module_ops: Iterable[Operation], secure: bool) -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for ops, module_route in ((host_ops, False), (module_ops, True)):
        for op in ops:
            path, _ = openapi_path(op.rule)
            for method in op.methods:
                paths.setdefault(path, {})[method.lower()] = _operation(op, method, schemas, secure, module_route)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "Greenroom: a SillyTavern-Extras-compatible module host."},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas.components},
    }
    if secure:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc


def openapi_document(app: "Flask", every_module: bool = False) -> dict[str, Any]:
    """The enabled modules' operations; ``every_module``: every installed module's (the documentation site)."""
    host = app.extensions["greenroom"]
    blueprints = app.extensions["greenroom.blueprints"]
    names = [name for name in blueprints if name != "host"] if every_module else host.enabled
    module_ops = [op for name in names for op in blueprints[name].operations]
    return build_openapi("Greenroom", __version__, blueprints["host"].operations, module_ops,
                         secure=host.server.secure)
