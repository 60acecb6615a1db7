"""Throw-away plugins for tests, registered with ``create_app(config, plugins=[("name", plugin(...))])``."""
from __future__ import annotations

import types
from typing import Callable, Iterable

from greenroom import hookimpl


def plugin(*modules: type, **hooks: Iterable[type]) -> types.SimpleNamespace:
    """A plugin whose ``register_modules`` hook registers ``modules``; each keyword names another
    ``register_*`` hook and the classes it registers, e.g. ``register_websearch_engines=[MyEngine]``."""
    ns = types.SimpleNamespace()
    for hook, classes in {"register_modules": modules, **hooks}.items():
        if classes:
            setattr(ns, hook, _registering(list(classes)))
    return ns


def _registering(classes: list[type]) -> Callable[[Callable[[type], None]], None]:
    @hookimpl
    def impl(register: Callable[[type], None]) -> None:
        for cls in classes:
            register(cls)

    return impl
