"""Render a commented plugins.toml documenting every setting with its default."""
from __future__ import annotations

import json
from typing import Any, Iterable

from pydantic import BaseModel

from ..config import ServerSettings

HEADER = """\
# Greenroom configuration. Every setting is shown commented out with its default;
# uncomment and change what you need. Command-line flags override [server].
# Regenerate this documentation with: python server.py --print-config
"""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if value is None:
        return '""  # unset'
    if isinstance(value, dict):  # an inline table, so that uncommenting the line gives valid TOML
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def render_table(table: str, model: type[BaseModel], intro: str = "") -> str:
    lines = [f"[{table}]"]
    if intro:
        lines.insert(0, f"# {intro}")
    schema = model.model_json_schema()
    for name, field in model.model_fields.items():
        prop = schema.get("properties", {}).get(name, {})
        notes = [field.description or ""]
        if "enum" in prop:
            notes.append("one of: " + ", ".join(map(str, prop["enum"])))
        bounds = [f"{k} {prop[k]}" for k in ("minimum", "maximum", "exclusiveMinimum") if k in prop]
        if bounds:
            notes.append("; ".join(bounds))
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("x-load-time"):
            notes.append("applies at load time")
        lines.append("# " + " | ".join(n for n in notes if n))
        default = field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            default = default.model_dump(mode="json")
        lines.append(f"# {name} = {_toml_value(default)}")
    return "\n".join(lines) + "\n"


def render_plugins_toml(modules: Iterable[tuple[str, str, type[BaseModel]]]) -> str:
    """``modules`` is ``(name, description, Settings)`` for each module to document."""
    parts = [HEADER, render_table("server", ServerSettings)]
    for name, description, settings in sorted(modules):
        parts.append(render_table(f"modules.{name}", settings, intro=f"{name}: {description}"))
    return "\n".join(parts)
