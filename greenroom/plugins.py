"""Plugin discovery, loaded with pluggy: the built-ins by import path, others through entry points.

The built-in modules are imported from ``DEFAULT_PLUGINS`` (as llm and datasette do), so a plain
checkout runs without being pip-installed and a new built-in needs no reinstall; their entry points
in the ``greenroom.modules`` group are skipped rather than registered twice. A plugin that fails to
import or whose hook raises is recorded and skipped; it never takes the host down.
``GREENROOM_LOAD_PLUGINS`` limits which third-party distributions load ("" loads none; "a,b" only
those), which is how the test suite keeps plugins installed on the machine out of its runs.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import pluggy

from . import __version__, hookspecs
from .module import Module

log = logging.getLogger("greenroom.plugins")

ENTRY_POINT_GROUP = "greenroom.modules"
BUILTIN_DISTRIBUTION = "greenroom"
LOAD_PLUGINS_ENV = "GREENROOM_LOAD_PLUGINS"
BUILTIN_PACKAGE = "greenroom_modules"
DEFAULT_PLUGINS = tuple(f"{BUILTIN_PACKAGE}.{name}.plugin"
                        for name in ("talkinghead", "imagefx", "tts", "classify", "embeddings", "nlp", "websearch",
                                     "stt", "raven"))


def import_builtin_package() -> None:
    """Make ``greenroom_modules`` importable in a checkout that was never pip-installed.

    An installed Greenroom (wheel or editable) maps the repository's ``modules/`` folder to the
    package ``greenroom_modules``; a plain checkout has only the folder. When the name does not
    resolve and a ``modules/`` package sits beside this ``greenroom`` package, that folder is
    imported under the package's name, and its submodules then resolve through its ``__path__``.
    """
    if BUILTIN_PACKAGE in sys.modules or importlib.util.find_spec(BUILTIN_PACKAGE) is not None:
        return
    folder = Path(__file__).resolve().parent.parent / "modules"
    if not (folder / "__init__.py").is_file():
        return
    spec = importlib.util.spec_from_file_location(BUILTIN_PACKAGE, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules[BUILTIN_PACKAGE] = package
    spec.loader.exec_module(package)


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
        return {**asdict(self), "loaded": self.error is None}


def allowed_distributions() -> set[str] | None:
    """Third-party distributions allowed by the environment; None means all."""
    value = os.environ.get(LOAD_PLUGINS_ENV)
    return None if value is None else {_normalise(v) for v in value.split(",") if v.strip()}


def _normalise(dist: str) -> str:
    return dist.strip().lower().replace("_", "-")


def _short_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class PluginRegistry:
    """Owns the pluggy manager and the list of discovered plugins."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("greenroom")
        self.pm.add_hookspecs(hookspecs)
        self._hookspecs: list[Any] = [hookspecs]
        self.plugins: dict[str, PluginInfo] = {}

    def discover(self) -> None:
        import_builtin_package()
        for path in DEFAULT_PLUGINS:
            self._load(path.split(".")[1], BUILTIN_DISTRIBUTION, __version__, True,
                       lambda path=path: importlib.import_module(path))
        allowed = allowed_distributions()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.value in DEFAULT_PLUGINS:  # registered above
                continue
            dist = ep.dist.name if ep.dist else "unknown"
            builtin = _normalise(dist) == BUILTIN_DISTRIBUTION
            if not builtin and allowed is not None and _normalise(dist) not in allowed:
                log.debug("skipping plugin %s from %s (%s)", ep.name, dist, LOAD_PLUGINS_ENV)
                continue
            self._load(ep.name, dist, ep.dist.version if ep.dist else "?", builtin, ep.load)

    def fail(self, name: str, error: str) -> None:
        """Record why plugin ``name`` does not work (``/api/plugins`` shows it), and log it."""
        self.plugins[name].error = error
        log.error("plugin %s (%s) failed: %s", name, self.plugins[name].distribution, error)

    def _load(self, name: str, dist: str, version: str, builtin: bool, load: Callable[[], Any]) -> None:
        try:
            obj = load()
        except Exception as exc:  # a broken plugin must never stop the host
            log.error("plugin %s (%s) failed to import: %s", name, dist, _short_error(exc))
            log.debug("traceback", exc_info=True)
            self.plugins[name] = PluginInfo(name, dist, version, builtin, _short_error(exc))
            return
        self.add(obj, name, dist, version, builtin)

    def add(self, obj: Any, name: str, distribution: str = "<test>", version: str = "0",
            builtin: bool = False) -> None:
        """Register a plugin object (the tests use this for throw-away plugins)."""
        self.plugins[name] = PluginInfo(name, distribution, version, builtin)
        try:
            self.pm.register(obj, name=name)
        except Exception as exc:
            self.fail(name, _short_error(exc))

    def collect(self, hook_name: str, base: type) -> list[tuple[str, type]]:
        """Call one ``register_*`` hook plugin by plugin, isolating failures.

        Returns ``(plugin name, registered class)`` pairs.
        """
        found: list[tuple[str, type]] = []
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            registered: list[type] = []
            try:
                impl.function(register=registered.append)
                for cls in registered:
                    if not (isinstance(cls, type) and issubclass(cls, base)):
                        raise TypeError(f"registered {cls!r}, which is not a {base.__name__} subclass")
            except Exception as exc:
                self.fail(impl.plugin_name, _short_error(exc))
                continue
            found.extend((impl.plugin_name, cls) for cls in registered)
        return found

    def module_classes(self) -> list[tuple[str, type[Module]]]:
        """Every registered module class, each module's own hookspecs added (so plugins can extend it)."""
        classes = self.collect("register_modules", Module)
        for plugin, cls in classes:
            self.plugins[plugin].modules.append(cls.name)
            if cls.hookspecs is not None and cls.hookspecs not in self._hookspecs:
                self._hookspecs.append(cls.hookspecs)
                try:
                    self.pm.add_hookspecs(cls.hookspecs)
                except pluggy.PluginValidationError as exc:  # an implementation does not fit the new hook
                    name = self.pm.get_name(exc.plugin)
                    self.pm.unregister(exc.plugin)
                    self.fail(name, f"does not fit module {cls.name}'s hooks: {_short_error(exc)}")
        return classes

    def listing(self) -> list[dict[str, Any]]:
        return [p.as_dict() for p in sorted(self.plugins.values(), key=lambda p: (not p.builtin, p.name))]

