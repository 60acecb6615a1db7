"""Single poses on request (the pose editor's preview), with request coalescing.

A full THA3 pose takes about a second on a CPU, while a slider sends a new state
every few milliseconds. Requests on one *channel* (one editor) therefore coalesce:
at most one render runs and one request waits; a newer request replaces the waiting
one, and the replaced request is answered with the newer image. So the poser only
ever works on the latest slider state, and every caller still gets an image.
"""
from __future__ import annotations

import io
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar

import numpy as np
from PIL import Image

from . import encoding
from .images import load_named
from .poser import Character, to_frame

if TYPE_CHECKING:
    from .module import Talkinghead

log = logging.getLogger("greenroom.talkinghead")
T = TypeVar("T")
PNG_CACHE_ENTRIES = 48        # ~48 x 350 kB: toggling "compare" and undoing a slider are instant
NAMED_CHARACTERS = 4          # prepared named characters kept (each holds its eyebrow decomposition)


@dataclass(eq=False)
class _Ticket(Generic[T]):
    """One request in a channel: rendered itself, or answered with the ticket that replaced it."""

    job: Callable[[], T]
    seq: int
    replaced_by: "_Ticket[T] | None" = None
    done: bool = False
    value: T | None = None
    error: BaseException | None = None

    def final(self) -> "_Ticket[T]":
        ticket = self
        while ticket.replaced_by is not None:
            ticket = ticket.replaced_by
        return ticket


@dataclass
class _Channel:
    running: _Ticket | None = None
    waiting: _Ticket | None = None


@dataclass
class Outcome(Generic[T]):
    """What a caller gets back: the value, and whether a newer request's render answered it."""

    value: T
    superseded: bool
    seq: int            # this request's number (1, 2, ... per coalescer)
    rendered_seq: int   # the request whose render produced ``value``


@dataclass
class CoalescerStats:
    requests: int = 0
    renders: int = 0
    superseded: int = 0
    rendering: int = 0
    waiting: int = 0
    channels: dict[str, int] = field(default_factory=dict)


class Coalescer:
    """Per channel, one job runs and at most one waits; a newer job replaces the waiting one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._channels: dict[str, _Channel] = {}
        self._seq = 0
        self._renders = 0
        self._superseded = 0

    def submit(self, channel: str, job: Callable[[], T]) -> Outcome[T]:
        """Run ``job`` (in the caller's thread) unless a newer job on ``channel`` replaces it first."""
        with self._cond:
            self._seq += 1
            ticket: _Ticket[T] = _Ticket(job, self._seq)
            chan = self._channels.setdefault(channel, _Channel())
            if chan.running is None:
                chan.running = ticket
            else:
                if chan.waiting is not None:
                    chan.waiting.replaced_by = ticket
                    self._superseded += 1
                    self._cond.notify_all()
                chan.waiting = ticket
            while chan.running is not ticket:
                final = ticket.final()
                if final is not ticket and final.done:
                    return self._outcome(ticket, final)
                self._cond.wait()
        try:
            ticket.value = job()
        except BaseException as exc:  # handed to every request this render answers
            ticket.error = exc
        with self._cond:
            ticket.done = True
            self._renders += 1
            chan.running, chan.waiting = chan.waiting, None
            if chan.running is None:
                self._channels.pop(channel, None)
            self._cond.notify_all()
        return self._outcome(ticket, ticket)

    @staticmethod
    def _outcome(ticket: _Ticket[T], final: _Ticket[T]) -> Outcome[T]:
        if final.error is not None:
            raise final.error
        return Outcome(final.value, final is not ticket, ticket.seq, final.seq)  # type: ignore[arg-type]

    def stats(self) -> CoalescerStats:
        with self._cond:
            chans = {name: (c.running is not None) + (c.waiting is not None) for name, c in self._channels.items()}
            return CoalescerStats(self._seq, self._renders, self._superseded,
                                  sum(c.running is not None for c in self._channels.values()),
                                  sum(c.waiting is not None for c in self._channels.values()), chans)


class LRU(Generic[T]):
    """A small thread-safe least-recently-used map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, T] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: Any) -> T | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                self.hits += 1
            return value

    def put(self, key: Any, value: T) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class PoseImage:
    png: bytes
    digest: str
    render_ms: float
    cached: bool


def encode_png(frame: np.ndarray) -> bytes:
    """Linear float RGBA -> an sRGB RGBA PNG (moderate compression: it travels to a browser)."""
    buf = io.BytesIO()
    Image.fromarray(encoding.to_srgb8(frame), "RGBA").save(buf, format="PNG", compress_level=4)
    return buf.getvalue()


class PoseService:
    """Renders one pose of a character as a PNG: cached, coalesced per channel, on the shared poser."""

    def __init__(self, module: "Talkinghead") -> None:
        self.module = module
        self.coalescer = Coalescer()
        self.pngs: LRU[bytes] = LRU(PNG_CACHE_ENTRIES)
        self.characters: LRU[Character] = LRU(NAMED_CHARACTERS)
        self._char_lock = threading.Lock()

    def named_character(self, name: str) -> Character:
        """A shipped character, prepared once (raises ImageError 400/404 for bad or unknown names)."""
        with self._char_lock:
            char = self.characters.get(name)
            if char is None:
                rgba = load_named(name, max_pixels=self.module.settings.max_image_pixels)
                char = self.module.poser.character(rgba, name)
                self.characters.put(name, char)
            return char

    def render(self, char: Character, pose: np.ndarray, channel: str) -> Outcome[PoseImage]:
        """The PNG of ``pose``; from the cache when this exact pose of this image was rendered lately.

        A cache hit skips the coalescer (its ``seq`` is 0): nothing waits for the poser.
        """
        key = (char.digest, np.asarray(pose, dtype=np.float32).round(4).tobytes())
        hit = self.pngs.get(key)
        if hit is not None:
            return Outcome(PoseImage(hit, char.digest, 0.0, True), False, 0, 0)

        def job() -> PoseImage:
            cached = self.pngs.get(key)  # an identical request may have rendered it meanwhile
            if cached is not None:
                return PoseImage(cached, char.digest, 0.0, True)
            t0 = time.perf_counter()
            png = encode_png(to_frame(self.module.poser.pose(char, pose)))
            self.pngs.put(key, png)
            return PoseImage(png, char.digest, (time.perf_counter() - t0) * 1000, False)

        return self.coalescer.submit(channel, job)

    def stats(self) -> dict[str, Any]:
        s = self.coalescer.stats()
        return {"requests": s.requests, "renders": s.renders, "superseded": s.superseded,
                "rendering": s.rendering, "waiting": s.waiting, "channels": s.channels,
                "png_cache": {"entries": len(self.pngs), "hits": self.pngs.hits}}


__all__ = ["Coalescer", "Outcome", "PoseService", "PoseImage", "encode_png"]
