"""The host object kept in ``app.extensions["greenroom"]``: builds, places, loads and unloads the modules."""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Iterable

from pydantic import SecretStr, ValidationError

from .config import ConfigError, HostConfig, validate_module_settings
from .context import Context
from .errors import Invalid, describe_validation_error, validation_details
from .module import Compute, Module, ModuleSettings
from .plugins import PluginRegistry
from .resources import choose_compute, cpu_fallback, memory_added, memory_mb

log = logging.getLogger("greenroom.host")


@dataclass
class ModuleRecord:
    """What the host knows about one installed module."""

    name: str
    plugin: str
    cls: type[Module]
    instance: Module | None = None
    state: str = "disabled"  # disabled | loading | loaded | failed
    error: str | None = None
    compute: Compute | None = None
    load_seconds: float | None = None
    memory: dict[str, Any] = field(default_factory=dict)

    def info(self, registry: PluginRegistry) -> dict[str, Any]:
        plugin = registry.plugins.get(self.plugin)
        out: dict[str, Any] = {
            "name": self.name, "version": self.cls.version, "description": self.cls.description,
            "aliases": list(self.cls.aliases), "state": self.state, "error": self.error,
            "plugin": self.plugin, "distribution": plugin.distribution if plugin else None,
            "builtin": plugin.builtin if plugin else False,
            "resources": {"device": self.cls.resources.device, "memory_mb": self.cls.resources.memory_mb,
                          "cpu_fallback": self.cls.resources.cpu_fallback},
        }
        if self.compute is not None:
            out.update(device=self.compute.device, dtype=self.compute.dtype, placement=self.compute.reason)
        if self.load_seconds is not None:
            out["load_seconds"] = round(self.load_seconds, 3)
        out["memory"] = self.memory
        if self.state == "loaded" and self.instance is not None:
            try:
                out["status"] = self.instance.status()
            except Exception as exc:  # status is informational; never fail the request for it
                out["status"] = {"error": f"{type(exc).__name__}: {exc}"}
        return out


class Host:
    """Owns the modules of one app and lets them find each other's services."""

    def __init__(self, config: HostConfig, registry: PluginRegistry) -> None:
        self.config = config
        self.server = config.server
        self.registry = registry
        self.records: dict[str, ModuleRecord] = {}
        self.enabled: list[str] = []
        self.auth_exempt: set[str] = set()
        self.context = Context(config.server, registry, self.is_loaded)
        """What the modules see of the host (greenroom/context.py)."""

    # -- modules -----------------------------------------------------------------------------

    def build_modules(self) -> None:
        """Instantiate every installed module (cheap) with its validated settings."""
        for plugin, cls in self.registry.module_classes():
            if cls.name in self.records:
                self.registry.plugins[plugin].error = f"module name '{cls.name}' already provided by plugin " \
                                                      f"'{self.records[cls.name].plugin}'"
                log.error("plugin %s: %s", plugin, self.registry.plugins[plugin].error)
                continue
            settings = validate_module_settings(self.config.source, cls.name, cls.Settings,
                                                self.config.modules.get(cls.name, {}))
            try:
                instance = cls(self.context, settings)
            except Exception as exc:
                self.registry.plugins[plugin].error = f"{type(exc).__name__}: {exc}"
                log.error("module %s could not be created: %s", cls.name, exc)
                continue
            self.records[cls.name] = ModuleRecord(cls.name, plugin, cls, instance)
        unused = set(self.config.modules) - set(self.records)
        for name in sorted(unused):
            log.warning("%s: [modules.%s] configures a module that is not installed", self.config.source, name)
        self._enable(self.server.enable_modules)

    def _enable(self, names: Iterable[str]) -> None:
        available = self.available_names()
        for raw in names:
            name = self.canonical_name(raw)
            if name is None:
                raise ConfigError(f"unknown module '{raw}'; available modules: {', '.join(available) or '(none)'}")
            if name not in self.enabled:
                self.enabled.append(name)

    def available_names(self) -> list[str]:
        return sorted(self.records)

    def canonical_name(self, name: str) -> str | None:
        """A module's own name for ``name``, which may be one of its aliases (e.g. 'silero-tts')."""
        if name in self.records:
            return name
        for rec in self.records.values():
            if name in rec.cls.aliases:
                return rec.name
        return None

    def load_all(self) -> None:
        for name in self.enabled:
            self._load(self.records[name])

    def _load(self, rec: ModuleRecord) -> None:
        assert rec.instance is not None
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
                compute = cpu_fallback(compute)
                rec.instance.load(compute)
        except Exception as exc:
            rec.state, rec.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("module %s failed to load: %s", rec.name, rec.error)
            log.debug("%s", traceback.format_exc())
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

    def update_settings(self, name: str, changes: dict[str, Any]) -> ModuleSettings:
        """Validate and apply live settings; load-time fields cannot change while running."""
        rec = self.records[name]
        assert rec.instance is not None
        current = rec.instance.settings
        frozen = [k for k in changes if k in current.load_time_fields() and changes[k] != getattr(current, k)]
        if frozen:
            raise Invalid(f"{', '.join(frozen)}: applies at load time only; set it in plugins.toml and restart",
                          details=[{"loc": [k], "msg": "load-time setting"} for k in frozen])
        locked = [] if self.server.allow_remote_settings else \
            [k for k in changes if k in current.sensitive_fields() and not _same(getattr(current, k), changes[k])]
        if locked:
            raise Invalid(f"{', '.join(locked)}: names a URL or holds a secret, so it is set in plugins.toml; the "
                          "API changes it only with allow_remote_settings = true in [server]",
                          details=[{"loc": [k], "msg": "remote change refused"} for k in locked])
        try:
            new = type(current).model_validate({**current.model_dump(), **changes})
        except ValidationError as exc:
            raise Invalid(describe_validation_error(exc), details=validation_details(exc)) from None
        rec.instance.apply_settings(new)
        return new

    # -- shutdown ------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop streams and unload every loaded module, once."""
        if self.context.stopping.is_set():
            return
        self.context.stopping.set()
        for name in reversed(self.enabled):
            rec = self.records[name]
            if rec.state == "loaded" and rec.instance is not None:
                try:
                    rec.instance.unload()
                except Exception:
                    log.exception("module %s failed to unload", name)
                rec.state = "unloaded"


def _same(current: Any, sent: Any) -> bool:
    """Whether a settings form sent back the current value (a secret comes back as its mask or itself)."""
    if isinstance(current, SecretStr):
        return sent in (str(current), current.get_secret_value())
    return bool(sent == current)
