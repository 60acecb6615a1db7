"""The host object kept in ``app.extensions["greenroom"]``: builds, places, loads and unloads the modules."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .config import ConfigError, HostConfig, validate_module_settings
from .context import Context
from .module import Compute, Module
from .plugins import PluginRegistry
from .resources import choose_compute, memory_added, memory_mb

log = logging.getLogger("greenroom.host")


@dataclass
class ModuleRecord:
    """What the host knows about one installed module."""

    name: str
    plugin: str
    cls: type[Module]
    instance: Module
    state: str = "disabled"  # disabled | loading | loaded | failed
    error: str | None = None
    compute: Compute | None = None
    load_seconds: float | None = None
    memory: dict[str, Any] = field(default_factory=dict)


class Host:
    """Owns the modules of one app and lets them find each other's services."""

    def __init__(self, config: HostConfig, registry: PluginRegistry) -> None:
        self.config = config
        self.server = config.server
        self.registry = registry
        self.records: dict[str, ModuleRecord] = {}
        self.enabled: list[str] = []
        self.context = Context(config.server, registry, self.is_loaded)
        """What the modules see of the host (greenroom/context.py)."""

    # -- modules -----------------------------------------------------------------------------

    def build_modules(self) -> None:
        """Instantiate every installed module (cheap) with its validated settings."""
        for plugin, cls in self.registry.module_classes():
            if cls.name in self.records:
                self.registry.fail(plugin, f"module name '{cls.name}' already provided by plugin "
                                           f"'{self.records[cls.name].plugin}'")
                continue
            settings = validate_module_settings(self.config.source, cls.name, cls.Settings,
                                                self.config.modules.get(cls.name, {}))
            try:
                instance = cls(self.context, settings)
            except Exception as exc:
                self.registry.fail(plugin, f"module {cls.name} could not be created: {type(exc).__name__}: {exc}")
                continue
            self.records[cls.name] = ModuleRecord(cls.name, plugin, cls, instance)
        for name in sorted(set(self.config.modules) - set(self.records)):
            log.warning("%s: [modules.%s] configures a module that is not installed", self.config.source, name)
        for raw in self.server.enable_modules:
            name = self.canonical_name(raw)
            if name is None:
                raise ConfigError(f"unknown module '{raw}'; available modules: "
                                  f"{', '.join(self.available_names()) or '(none)'}")
            if name not in self.enabled:
                self.enabled.append(name)

    def available_names(self) -> list[str]:
        return sorted(self.records)

    def canonical_name(self, name: str) -> str | None:
        """A module's own name for ``name``, which may be one of its aliases (e.g. 'silero-tts')."""
        if name in self.records:
            return name
        return next((rec.name for rec in self.records.values() if name in rec.cls.aliases), None)

    def load_all(self) -> None:
        for name in self.enabled:
            self._load(self.records[name])

    def _load(self, rec: ModuleRecord) -> None:
        compute = choose_compute(rec.name, rec.cls.resources, rec.instance.settings,
                                 self.server.device, self.server.cuda_device)
        log.info("loading module %s on %s (%s, %s)", rec.name, compute.device, compute.dtype, compute.reason)
        rec.state = "loading"
        before, t0 = memory_mb(), time.perf_counter()
        try:
            try:
                rec.instance.load(compute)
            except Exception:
                if not (compute.is_cuda and rec.cls.resources.cpu_fallback):
                    raise
                log.warning("module %s failed to load on %s; retrying on CPU", rec.name, compute.device)
                compute = Compute("cpu", "float32", f"load on {compute.device} failed; retried on CPU")
                rec.instance.load(compute)
        except Exception as exc:
            rec.state, rec.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("module %s failed to load: %s", rec.name, rec.error)
            log.debug("traceback", exc_info=True)
            return
        rec.load_seconds = time.perf_counter() - t0
        rec.memory = memory_added(before)
        rec.compute, rec.state = compute, "loaded"
        log.info("module %s loaded in %.2f s (%s)", rec.name, rec.load_seconds,
                 ", ".join(f"{k} {v:+}" for k, v in rec.memory.items()))

    def advertised(self) -> list[str]:
        """The names SillyTavern sees in /api/modules: loaded modules and their aliases."""
        names: list[str] = []
        for name in self.enabled:
            rec = self.records[name]
            if rec.state == "loaded":
                if rec.cls.advertise_name:
                    names.append(name)
                names.extend(a for a in rec.cls.aliases if a not in names)
        return names

    def is_loaded(self, name: str) -> bool:
        rec = self.records.get(name)
        return rec is not None and rec.state == "loaded"

    def module(self, name: str) -> Module | None:
        """A loaded module instance, or None."""
        return self.records[name].instance if self.is_loaded(name) else None

    # -- shutdown ------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop streams and unload every loaded module, once."""
        if self.context.stopping.is_set():
            return
        self.context.stopping.set()
        for name in reversed(self.enabled):
            rec = self.records[name]
            if rec.state == "loaded":
                try:
                    rec.instance.unload()
                except Exception:
                    log.exception("module %s failed to unload", name)
                rec.state = "unloaded"
