# SPDX-License-Identifier: BSD-2-Clause
"""The filter registry: each filter is a function plus its declared parameters.

Filters register themselves with :func:`register`; :func:`describe_filters`
and :func:`validate_chain` read the same declarations, so introspection and
validation always match what actually runs.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .params import ChainError, Param

MAX_CHAIN_LENGTH = 64
"""A chain longer than this is rejected (each entry costs a pass over the frame)."""

IGNORED_KEYS = frozenset({"name"})
"""Keys accepted and dropped in a filter's params: Raven's chains carry a ``name`` cache label."""


@dataclass(frozen=True)
class FilterDef:
    """A registered filter.

    ``fn(frame, ctx, **params)`` modifies ``frame`` (float32 HxWx4, linear RGB,
    straight alpha) in place. ``order`` is the suggested position in a chain
    (scene < 0, capture 0-5, signal 5-10, display >= 10); it orders listings
    only and never reorders a chain.
    """

    name: str
    fn: Callable[..., None]
    params: tuple[Param, ...]
    dynamic: bool
    description: str
    order: float

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "dynamic": self.dynamic,
                "order": self.order, "params": [p.describe() for p in self.params]}


FILTERS: dict[str, FilterDef] = {}


def register(name: str, *, params: Iterable[Param], dynamic: bool, order: float) -> Callable:
    """Decorator: register ``fn`` as filter ``name``; its docstring becomes the description."""
    def decorate(fn: Callable) -> Callable:
        declared = tuple(params)
        names = [p.name for p in declared]
        accepted = [n for n in inspect.signature(fn).parameters][2:]
        if sorted(names) != sorted(accepted):
            raise TypeError(f"filter {name}: declared params {names} differ from the function's {accepted}")
        if name in FILTERS:
            raise ValueError(f"filter {name} registered twice")
        FILTERS[name] = FilterDef(name, fn, declared, dynamic, inspect.getdoc(fn) or "", order)
        return fn

    return decorate


def describe_filters() -> list[dict[str, Any]]:
    """Every filter with its parameters, JSON-able, in suggested chain order."""
    _ensure_loaded()
    return [f.describe() for f in sorted(FILTERS.values(), key=lambda f: (f.order, f.name))]


def validate_chain(spec: Any) -> list[tuple[str, dict[str, Any]]]:
    """``[[name, {params}], ...]`` checked and normalised, missing params filled with defaults.

    Raises :class:`ChainError` whose ``.filter`` and ``.param`` name the problem.
    """
    _ensure_loaded()
    if isinstance(spec, (str, bytes, dict)) or not isinstance(spec, Iterable):
        raise ChainError(f"a chain must be a list of [filter_name, {{params}}] pairs, not {type(spec).__name__}")
    entries = list(spec)
    if len(entries) > MAX_CHAIN_LENGTH:
        raise ChainError(f"a chain may hold at most {MAX_CHAIN_LENGTH} filters, not {len(entries)}")
    return [_validate_entry(i, entry) for i, entry in enumerate(entries)]


def _validate_entry(index: int, entry: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(entry, str):
        name, given = entry, {}
    elif isinstance(entry, (list, tuple)) and len(entry) in (1, 2) and isinstance(entry[0], str):
        name = entry[0]
        given = entry[1] if len(entry) == 2 and entry[1] is not None else {}
    else:
        raise ChainError(f"chain[{index}] must be [filter_name, {{params}}], not {entry!r:.80}", index=index)
    fdef = FILTERS.get(name)
    if fdef is None:
        raise ChainError(f"chain[{index}]: unknown filter '{name:.80}'; known: {', '.join(sorted(FILTERS))}",
                         filter=name, index=index)
    if not isinstance(given, dict):
        raise ChainError(f"chain[{index}] filter '{name}': params must be an object, not {type(given).__name__}",
                         filter=name, index=index)
    declared = {p.name: p for p in fdef.params}
    params = fdef.defaults()
    for key, value in given.items():
        if key in declared:
            params[key] = declared[key].check(value, name, index)
        elif key not in IGNORED_KEYS:
            raise ChainError(f"chain[{index}] filter '{name}': unknown parameter '{key!s:.80}'; "
                             f"known: {', '.join(declared)}", filter=name, param=str(key), index=index)
    return name, params


def _ensure_loaded() -> None:
    """Import the filter modules (they register on import)."""
    from . import filters  # noqa: F401
