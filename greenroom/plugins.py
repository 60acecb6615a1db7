"""Plugin discovery: entry points in the ``greenroom.modules`` group, loaded with pluggy.

A plugin that fails to import or whose hook raises is recorded and skipped; it
never takes the host down. ``GREENROOM_LOAD_PLUGINS`` limits which third-party
distributions load ("" loads none; "a,b" only those), which is how the test
suite keeps plugins installed on the machine out of its runs.
"""
from __future__ import annotations

import logging
import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .module import Module

log = logging.getLogger("greenroom.plugins")

ENTRY_POINT_GROUP = "greenroom.modules"
BUILTIN_DISTRIBUTION = "greenroom"
LOAD_PLUGINS_ENV = "GREENROOM_LOAD_PLUGINS"


@dataclass
class PluginInfo:
    """One plugin: where it came from and whether it loaded."""

    name: str
    distribution: str
    version: str
    builtin: bool
    error: str | None = None
    modules: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "distribution": self.distribution, "version": self.version,
                "builtin": self.builtin, "loaded": self.error is None, "error": self.error,
                "modules": self.modules}


def allowed_distributions() -> set[str] | None:
    """Third-party distributions allowed by the environment; None means all."""
    value = os.environ.get(LOAD_PLUGINS_ENV)
    if value is None:
        return None
    return {_normalise(v) for v in value.split(",") if v.strip()}


def _normalise(dist: str) -> str:
    return dist.strip().lower().replace("_", "-")


def _short_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class PluginRegistry:
    """Owns the pluggy manager and the list of discovered plugins."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("greenroom")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}

    def discover(self) -> None:
        allowed = allowed_distributions()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else "unknown"
            builtin = _normalise(dist) == BUILTIN_DISTRIBUTION
            if not builtin and allowed is not None and _normalise(dist) not in allowed:
                log.debug("skipping plugin %s from %s (%s)", ep.name, dist, LOAD_PLUGINS_ENV)
                continue
            version = ep.dist.version if ep.dist else "?"
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must never stop the host
                log.error("plugin %s (%s) failed to import: %s", ep.name, dist, _short_error(exc))
                log.debug("%s", traceback.format_exc())
                self.plugins[ep.name] = PluginInfo(ep.name, dist, version, builtin, _short_error(exc))
                continue
            self.add(obj, ep.name, dist, version, builtin)

    def add(self, obj: Any, name: str, distribution: str = "<test>", version: str = "0",
            builtin: bool = False) -> None:
        """Register a plugin object (the tests use this for throw-away plugins)."""
        info = PluginInfo(name, distribution, version, builtin)
        try:
            self.pm.register(obj, name=name)
        except Exception as exc:
            info.error = _short_error(exc)
            log.error("plugin %s (%s) could not be registered: %s", name, distribution, info.error)
        self.plugins[name] = info

    def collect(self, hook_name: str, base: type | None = None) -> list[tuple[str, type]]:
        """Call one ``register_*`` hook plugin by plugin, isolating failures.

        Returns ``(plugin name, registered class)`` pairs.
        """
        found: list[tuple[str, type]] = []
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            registered: list[type] = []
            try:
                impl.function(register=registered.append)
                for cls in registered:
                    if base is not None and not (isinstance(cls, type) and issubclass(cls, base)):
                        raise TypeError(f"registered {cls!r}, which is not a {base.__name__} subclass")
            except Exception as exc:
                info = self.plugins.get(impl.plugin_name)
                log.error("plugin %s failed in %s: %s", impl.plugin_name, hook_name, _short_error(exc))
                if info is not None:
                    info.error = _short_error(exc)
                continue
            found.extend((impl.plugin_name, cls) for cls in registered)
        return found

    def module_classes(self) -> list[tuple[str, type[Module]]]:
        classes = self.collect("register_modules", Module)
        for plugin, cls in classes:
            self.plugins[plugin].modules.append(cls.name)
        return classes

    def listing(self) -> list[dict[str, Any]]:
        return [p.as_dict() for p in sorted(self.plugins.values(), key=lambda p: (not p.builtin, p.name))]

