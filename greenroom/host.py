"""The host object kept in ``app.extensions["greenroom"]``: modules, services, events, streams."""
from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, TypeVar

from pydantic import ValidationError

from .config import ConfigError, HostConfig, validate_module_settings
from .errors import Busy, Invalid, contained_base_exceptions, describe_validation_error, validation_details
from .module import Compute, Module, ModuleSettings
from .plugins import PluginRegistry
from .resources import LoadMeter, choose_compute, cpu_fallback

log = logging.getLogger("greenroom.host")
T = TypeVar("T")


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


class StreamSlots:
    """Counts long-lived streams so that they never take every worker thread."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self.open = 0

    def acquire(self) -> None:
        with self._lock:
            if self.open >= self.limit:
                raise Busy(f"too many open streams (limit {self.limit}); close one and retry")
            self.open += 1

    def release(self) -> None:
        with self._lock:
            self.open -= 1


class _HeldStream:
    """An iterator that holds a stream slot until it is exhausted or closed (even if never started)."""

    def __init__(self, slots: StreamSlots, chunks: Iterator[bytes], stopping: threading.Event) -> None:
        self._slots, self._chunks, self._stopping = slots, chunks, stopping
        self._released = False

    def __iter__(self) -> "_HeldStream":
        return self

    def __next__(self) -> bytes:
        if self._stopping.is_set():
            self.close()
            raise StopIteration
        try:
            with contained_base_exceptions():
                return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if not self._released:
            self._released = True
            close = getattr(self._chunks, "close", None)
            try:
                if close is not None:
                    close()
            finally:
                self._slots.release()


class Host:
    """Owns the modules of one app and lets them find each other's services."""

    def __init__(self, config: HostConfig, registry: PluginRegistry) -> None:
        self.config = config
        self.server = config.server
        self.registry = registry
        self.records: dict[str, ModuleRecord] = {}
        self.enabled: list[str] = []
        self.auth_exempt: set[str] = set()
        self.streams = StreamSlots(config.server.max_streams)
        self.stopping = threading.Event()
        self._services: dict[Any, Any] = {}
        self._subscribers: dict[str, list[Callable[..., Any]]] = {}
        self._shared: dict[Any, Any] = {}
        self._shared_lock = threading.Lock()

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
                instance = cls(self, settings)
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
        meter = LoadMeter()
        before, t0 = meter.snapshot(), time.perf_counter()
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
        rec.memory = meter.delta_mb(before, meter.snapshot())
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
        frozen = [k for k in changes if k in current.load_time_fields()
                  and changes[k] != getattr(current, k)]
        if frozen:
            raise Invalid(f"{', '.join(frozen)}: applies at load time only; set it in plugins.toml and restart",
                          details=[{"loc": [k], "msg": "load-time setting"} for k in frozen])
        try:
            new = type(current).model_validate({**current.model_dump(), **changes})
        except ValidationError as exc:
            raise Invalid(describe_validation_error(exc), details=validation_details(exc)) from None
        rec.instance.apply_settings(new)
        return new

    # -- cooperation between modules ---------------------------------------------------------

    def provide(self, kind: type[T], service: T) -> None:
        """Offer ``service`` to other modules as the implementation of the contract ``kind`` (a Protocol or
        ABC that the providing module publishes, e.g. ``greenroom_modules.tts.contract.Speech``)."""
        if isinstance(kind, type) and not isinstance(service, kind):
            raise TypeError(f"{service!r} does not implement {kind.__name__}")
        self._services[kind] = service

    def service(self, kind: type[T]) -> T | None:
        """The loaded implementation of ``kind``, or None."""
        return self._services.get(kind)

    def subscribe(self, topic: str, callback: Callable[..., Any]) -> None:
        self._subscribers.setdefault(topic, []).append(callback)

    def publish(self, topic: str, **payload: Any) -> None:
        """Tell subscribers something happened; a failing subscriber is logged, never propagated."""
        for callback in list(self._subscribers.get(topic, ())):
            try:
                callback(**payload)
            except Exception:
                log.exception("subscriber of %s failed", topic)

    def shared(self, key: Any, factory: Callable[[], Any]) -> Any:
        """One object per key for the whole host, e.g. a model that two modules use."""
        with self._shared_lock:
            if key not in self._shared:
                self._shared[key] = factory()
            return self._shared[key]

    # -- streams and shutdown ----------------------------------------------------------------

    def stream(self, chunks: Iterator[bytes]) -> _HeldStream:
        """Wrap a long-lived response body: holds a stream slot (503 when none is free) and ends at shutdown."""
        self.streams.acquire()
        return _HeldStream(self.streams, chunks, self.stopping)

    def shutdown(self) -> None:
        """Stop streams and unload every loaded module, once."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        for name in reversed(self.enabled):
            rec = self.records[name]
            if rec.state == "loaded" and rec.instance is not None:
                try:
                    rec.instance.unload()
                except Exception:
                    log.exception("module %s failed to unload", name)
                rec.state = "unloaded"
