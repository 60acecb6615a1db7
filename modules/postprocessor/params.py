# SPDX-License-Identifier: BSD-2-Clause
"""Self-describing filter parameters and their validation.

Every filter declares its parameters as :class:`Param` objects; the same
objects produce the JSON a GUI builds its editor from (:meth:`Param.describe`)
and check the values a client sends (:meth:`Param.check`), so the two can
never disagree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

ParamType = Literal["float", "int", "bool", "choice", "color"]


class ChainError(ValueError):
    """A chain that cannot run: names the offending filter and parameter (``None`` when not applicable)."""

    def __init__(self, message: str, filter: str | None = None, param: str | None = None,
                 index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.filter = filter
        self.param = param
        self.index = index


@dataclass(frozen=True)
class Param:
    """One parameter of a filter: type, default, allowed values and a one-line description."""

    name: str
    type: ParamType
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None

    def describe(self) -> dict[str, Any]:
        """The JSON-able description used by ``describe_filters``."""
        out: dict[str, Any] = {"name": self.name, "type": self.type,
                               "default": list(self.default) if self.type == "color" else self.default}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.choices is not None:
            out["choices"] = list(self.choices)
        out["description"] = self.description
        return out

    def check(self, value: Any, filter_name: str, index: int | None = None) -> Any:
        """``value`` normalised to this parameter's type, or :class:`ChainError` naming the problem."""
        def fail(why: str) -> ChainError:
            where = f"chain[{index}] " if index is not None else ""
            return ChainError(f"{where}filter '{filter_name}': parameter '{self.name}' {why}",
                              filter=filter_name, param=self.name, index=index)

        if self.type == "bool":
            if not isinstance(value, bool):
                raise fail(f"must be true or false, not {value!r}")
            return value
        if self.type == "choice":
            if not isinstance(value, str) or value not in (self.choices or ()):
                raise fail(f"must be one of {list(self.choices or ())}, not {value!r}")
            return value
        if self.type == "color":
            if (not isinstance(value, (list, tuple)) or len(value) != 3
                    or not all(_is_number(v) for v in value)):
                raise fail(f"must be an [R, G, B] list of three numbers in [0, 1], not {value!r}")
            rgb = tuple(float(v) for v in value)
            if not all(0.0 <= v <= 1.0 for v in rgb):
                raise fail(f"components must lie in [0, 1], got {list(rgb)}")
            return rgb
        if not _is_number(value):
            raise fail(f"must be a number, not {value!r}")
        if self.type == "int":
            if float(value) != int(value):
                raise fail(f"must be a whole number, not {value!r}")
            value = int(value)
        else:
            value = float(value)
        if self.min is not None and value < self.min:
            raise fail(f"= {value} is below its minimum {self.min}")
        if self.max is not None and value > self.max:
            raise fail(f"= {value} is above its maximum {self.max}")
        return value


def _is_number(value: Any) -> bool:
    """True for finite ints and floats; bools are not numbers here (JSON ``true`` is not ``1``)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def Float(name: str, default: float, lo: float, hi: float, description: str) -> Param:
    return Param(name, "float", float(default), description, float(lo), float(hi))


def Int(name: str, default: int, lo: int, hi: int, description: str) -> Param:
    return Param(name, "int", int(default), description, int(lo), int(hi))


def Bool(name: str, default: bool, description: str) -> Param:
    return Param(name, "bool", bool(default), description)


def Choice(name: str, default: str, choices: tuple[str, ...], description: str) -> Param:
    return Param(name, "choice", default, description, choices=tuple(choices))


def Color(name: str, default: tuple[float, float, float], description: str) -> Param:
    return Param(name, "color", tuple(float(c) for c in default), description)
