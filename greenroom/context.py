"""What a module may use of the host: its :class:`Context`, handed to ``Module.__init__``.

Everything modules share goes through here: typed services, events, host-wide objects (a model two
modules use), long-lived streams and the shutdown signal. No Flask, so library code may take a context.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

from .errors import Busy, contained_base_exceptions

if TYPE_CHECKING:
    from .config import ServerSettings
    from .plugins import PluginRegistry

log = logging.getLogger("greenroom.context")
T = TypeVar("T")


CLIENT: ContextVar[str | None] = ContextVar("greenroom_client", default=None)
"""The address of the client whose request this thread serves (the HTTP layer sets it)."""


class StreamSlots:
    """Counts long-lived streams so that they never take every worker thread, nor one client every slot."""

    def __init__(self, limit: int, per_client: int = 0) -> None:
        self.limit = limit
        self.per_client = per_client or max(1, limit - 1)
        self._lock = threading.Lock()
        self.open = 0
        self._held: Counter[str | None] = Counter()
        """Streams held per client address (None: a client of unknown address, never limited alone)."""

    def acquire(self, client: str | None = None) -> None:
        with self._lock:
            if self.open >= self.limit:
                raise Busy(f"too many open streams (limit {self.limit}); close one and retry")
            if client and self._held[client] >= self.per_client:
                raise Busy(f"{client} holds {self._held[client]} streams, the most one client may "
                           "(max_streams_per_client); close one and retry")
            self.open += 1
            self._held[client] += 1

    def release(self, client: str | None = None) -> None:
        with self._lock:
            self.open -= 1
            self._held[client] -= 1
            if self._held[client] <= 0:
                del self._held[client]


class _HeldStream:
    """An iterator that holds a stream slot until it is exhausted or closed (even if never started)."""

    def __init__(self, slots: StreamSlots, chunks: Iterator[bytes], stopping: threading.Event,
                 client: str | None = None) -> None:
        self._slots, self._chunks, self._stopping, self._client = slots, chunks, stopping, client
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
        if self._released:
            return
        self._released = True
        try:
            getattr(self._chunks, "close", lambda: None)()  # a generator's finally runs now
        finally:
            self._slots.release(self._client)


class Context:
    """The host as a module sees it. One context serves every module of an app."""

    def __init__(self, server: "ServerSettings", registry: "PluginRegistry", is_loaded: Callable[[str], bool]) -> None:
        self.server = server
        """The ``[server]`` settings, read-only by convention (device, limits, flags)."""
        self.stopping = threading.Event()
        """Set when the server shuts down: long loops check it and end."""
        self.streams = StreamSlots(server.max_streams, server.max_streams_per_client)
        self.draining = ""
        """Why the server is draining ('' while it is not; greenroom/server/draining.py): /health answers 503 and
        modules create no new sessions, while open streams keep running."""
        self.is_loaded = is_loaded
        """``is_loaded("talkinghead")``: whether another module is loaded and serving."""
        self._registry = registry
        self._services: dict[type, Any] = {}
        self._subscribers: dict[str, list[Callable[..., Any]]] = {}
        self._shared: dict[Any, Any] = {}
        self._shared_lock = threading.Lock()

    def provide(self, kind: type[T], service: T) -> None:
        """Offer ``service`` as the implementation of the contract ``kind``: a runtime-checkable Protocol or
        an ABC that the providing module publishes (e.g. ``greenroom_modules.tts.contract.Speech``)."""
        if not isinstance(service, kind):
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

    def shared(self, key: Any, factory: Callable[[], T]) -> T:
        """One object per key for the whole host, e.g. a model that two modules use. Start the key with a
        type of your own (``(SharedEncoder, path, device)``), so keys never collide by accident."""
        with self._shared_lock:
            if key not in self._shared:
                self._shared[key] = factory()
            return self._shared[key]

    def stream(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """Wrap a long-lived response body: holds a stream slot (503 when none is free, or when the client
        already holds max_streams_per_client) and ends at shutdown."""
        client = CLIENT.get()
        self.streams.acquire(client)
        return _HeldStream(self.streams, chunks, self.stopping, client)

    def collect(self, hook: str, base: type[T]) -> list[tuple[str, type[T]]]:
        """Call the ``register_*`` hook ``hook`` of every plugin: ``(plugin, class)`` pairs, the built-in
        plugins first, each class checked to be a ``base``. Declare the hook in ``Module.hookspecs``."""
        found = self._registry.collect(hook, base)
        return sorted(found, key=lambda pc: not self._registry.plugins[pc[0]].builtin)
