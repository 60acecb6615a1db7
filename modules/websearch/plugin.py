"""Entry point of the built-in websearch plugin: the module, and its engines registered through the
same hook third-party plugins use."""
from __future__ import annotations

from typing import Callable

from greenroom import hookimpl

from .module import WebSearch
from .settings import BUILTIN_ENGINES


@hookimpl
def register_modules(register: Callable[[type], None]) -> None:
    register(WebSearch)


@hookimpl
def register_websearch_engines(register: Callable[[type], None]) -> None:
    for engine in BUILTIN_ENGINES:
        register(engine)
