"""The hook the websearch module adds for plugins (``WebSearch.hookspecs``): search engine backends.

A plugin adds engines by implementing it next to its other hooks::

    from greenroom import hookimpl

    @hookimpl
    def register_websearch_engines(register):
        register(MyEngine)   # a greenroom_modules.websearch.engines.Engine subclass
"""
from __future__ import annotations

from typing import Callable

from greenroom import hookspec


@hookspec
def register_websearch_engines(register: Callable[[type], None]) -> None:
    """Call ``register(EngineClass)`` for every web-search engine backend this plugin provides."""
