"""The hooks a Greenroom plugin can implement.

A plugin is any importable object (usually a Python module) named by an entry
point in the ``greenroom.modules`` group. Built-in modules are plugins of the
``greenroom`` distribution and are loaded the same way. A module may add hooks of its own for plugins
to implement (``Module.hookspecs``; websearch's engines are one).
"""
from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("greenroom")
hookimpl = pluggy.HookimplMarker("greenroom")


@hookspec
def register_modules(register: Callable[[type], None]) -> None:
    """Call ``register(ModuleClass)`` for every :class:`greenroom.Module` this plugin provides."""
