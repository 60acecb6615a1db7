"""Batched full posing: the frames that all full-mode instances ask for are posed together.

Each full-mode instance's render thread calls :meth:`PoseBatcher.pose` and waits. One batch thread
collects the waiting requests and poses them in one THA3 forward pass
(:meth:`SharedPoser.pose_batch`; different characters share a batch), copies the batch to the host
once, and hands each frame back to its instance. The instances' own threads then convert,
postprocess and encode their frames in parallel while the next batch runs.

A batch goes as soon as

* it is full (``max_batch``), or
* every *live* client (one that asked or was answered within the last second) has a request in,
  so that a lone instance never waits, or
* the oldest request has waited the deadline: ``wait_ms``, or a tenth of the last forward pass
  when that is longer (so that a slow device, a CPU, still fills its batches).

A client has at most one request in flight (its render thread waits for it), so a slow batch makes
the instances skip ticks, their animation following the wall clock, instead of building a queue.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Hashable

import numpy as np
import torch

from .poser import Cancelled, Character, SharedPoser

LIVE_SECONDS = 1.0       # a client that asked this recently is expected to ask again
SLOW_FRACTION = 0.1      # the deadline is at least this fraction of the last forward pass
_clients = itertools.count(1)


def new_client() -> int:
    """A key that names one requester (a renderer) to the batcher."""
    return next(_clients)


@dataclass(eq=False)
class _Request:
    client: Hashable
    character: Character
    pose: np.ndarray
    queued: float
    done: threading.Event = field(default_factory=threading.Event)
    image: torch.Tensor | None = None
    error: BaseException | None = None


@dataclass
class Dispatch:
    """Why and how one batch went (the last one is kept for status and tests)."""

    size: int
    reason: str          # "full", "all_in" or "deadline"
    waited_s: float      # how long its oldest request waited for the batch to go
    forward_s: float = 0.0
    transfer_s: float = 0.0


class _Mean:
    """Mean of the last N values."""

    def __init__(self, size: int = 100) -> None:
        self.values: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        self.values.append(value)

    def mean(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None


@dataclass
class _Stats:
    batches: int = 0
    frames: int = 0
    fill: float = 0.0                       # sum over batches of size / max_batch
    sizes: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    max_pending: int = 0
    wait: _Mean = field(default_factory=_Mean)
    forward: _Mean = field(default_factory=_Mean)
    transfer: _Mean = field(default_factory=_Mean)
    by_size: dict[int, _Mean] = field(default_factory=dict)   # forward + transfer seconds per batch size


class PoseBatcher:
    """One thread that poses the pending requests of every full-mode instance in batches."""

    def __init__(self, poser: SharedPoser, max_batch: int = 8, wait_ms: float = 4.0) -> None:
        self.poser = poser
        self.max_batch, self.wait_s = max_batch, wait_ms / 1000.0
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._seen: dict[Hashable, float] = {}   # client -> when it last asked or was answered
        self._closed = False
        self.in_flight = 0                          # frames of the batch being posed now
        self._stats = _Stats()
        self.last: Dispatch | None = None
        self._torch_threads = torch.get_num_threads()  # the caller's; a new thread's default may differ
        self._thread = threading.Thread(target=self._loop, name="talkinghead-batcher", daemon=True)
        self._thread.start()

    def configure(self, max_batch: int, wait_ms: float) -> None:
        with self._cond:
            self.max_batch, self.wait_s = max_batch, wait_ms / 1000.0
            self._cond.notify_all()

    # -- the instances' side ---------------------------------------------------------------------

    def pose(self, client: Hashable, character: Character, pose: np.ndarray) -> torch.Tensor:
        """``character`` in ``pose``, posed in the next batch: 4x512x512 in [-1, 1] on the CPU, in the
        poser's dtype. Blocks the calling thread until its batch is done."""
        request = _Request(client, character, np.array(pose, dtype=np.float32).reshape(45), time.monotonic())
        with self._cond:
            if self._closed:
                raise Cancelled("the poser is stopping")
            self._seen[client] = request.queued
            self._pending.append(request)
            self._stats.max_pending = max(self._stats.max_pending, len(self._pending))
            self._cond.notify_all()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.image  # type: ignore[return-value]

    # -- the batch thread ------------------------------------------------------------------------

    def _deadline(self) -> float:
        forward = self._stats.forward.mean() or 0.0
        return max(self.wait_s, SLOW_FRACTION * forward)

    def _collect(self) -> tuple[list[_Request], Dispatch] | None:
        """The next batch and why it goes now; None once closed."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                if not self._pending:
                    self._cond.wait()
                    continue
                now = time.monotonic()
                waiting = {r.client for r in self._pending}
                self._seen = {c: t for c, t in self._seen.items() if c in waiting or now - t < LIVE_SECONDS}
                oldest = self._pending[0].queued
                if len(self._pending) >= self.max_batch:
                    reason = "full"
                elif waiting >= self._seen.keys():
                    reason = "all_in"
                elif now - oldest >= self._deadline():
                    reason = "deadline"
                else:  # wake at the deadline, or when the next absent client stops counting as live
                    lapse = min(t + LIVE_SECONDS for c, t in self._seen.items() if c not in waiting)
                    self._cond.wait(min(oldest + self._deadline(), lapse) - now)
                    continue
                batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
                self.in_flight = len(batch)
                return batch, Dispatch(len(batch), reason, now - oldest)

    def _loop(self) -> None:
        torch.set_num_threads(self._torch_threads)
        while True:
            collected = self._collect()
            if collected is None:
                break
            self._run(*collected)
            del collected  # while idle the thread holds no request: no character, no frame
        with self._cond:
            stranded, self._pending = self._pending, []
        for request in stranded:
            request.error = Cancelled("the poser is stopping")
            request.done.set()

    def _run(self, batch: list[_Request], dispatch: Dispatch) -> None:
        t0 = time.perf_counter()
        try:
            images = self.poser.pose_batch([r.character for r in batch], np.stack([r.pose for r in batch]))
            self.poser.synchronize()
            t1 = time.perf_counter()
            host = self.poser.to_host(images)
            dispatch.forward_s, dispatch.transfer_s = t1 - t0, time.perf_counter() - t1
            for i, request in enumerate(batch):
                request.image = host[i]
        except BaseException as exc:  # every request of the batch hears about it; the thread goes on
            for request in batch:
                request.error = exc
        finally:
            self._record(batch, dispatch)  # before anyone is answered: a client sees its own batch in status
            for request in batch:
                request.done.set()

    def _record(self, batch: list[_Request], dispatch: Dispatch) -> None:
        with self._cond:
            now = time.monotonic()
            for request in batch:  # answered now: expected to ask again, however long the batch took
                self._seen[request.client] = now
            self.in_flight = 0
            s = self._stats
            s.batches += 1
            s.frames += dispatch.size
            s.fill += dispatch.size / self.max_batch
            s.sizes[dispatch.size] += 1
            s.reasons[dispatch.reason] += 1
            s.wait.add(dispatch.waited_s)
            if dispatch.forward_s:
                s.forward.add(dispatch.forward_s)
                s.transfer.add(dispatch.transfer_s)
                s.by_size.setdefault(dispatch.size, _Mean(20)).add(dispatch.forward_s + dispatch.transfer_s)
            self.last = dispatch

    # -- status ----------------------------------------------------------------------------------

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def live_clients(self) -> int:
        now = time.monotonic()
        with self._cond:
            return sum(now - t < LIVE_SECONDS for t in self._seen.values())

    def sustained_fps(self) -> float | None:
        """The most frames per second a batch size seen so far (three batches or more) achieved."""
        with self._cond:
            rates = [size / m.mean() for size, m in self._stats.by_size.items() if len(m.values) >= 3 and m.mean()]
        return max(rates, default=None)

    def stats(self) -> dict[str, Any]:
        ms = lambda m: None if m.mean() is None else round(m.mean() * 1000, 2)  # noqa: E731
        with self._cond:
            s = self._stats
            return {
                "max_batch": self.max_batch, "wait_ms": round(self.wait_s * 1000, 2),
                "batches": s.batches, "frames": s.frames,
                "batch_sizes_seen": {str(k): v for k, v in sorted(s.sizes.items())},
                "mean_batch_size": round(s.frames / s.batches, 3) if s.batches else 0.0,
                "mean_fill": round(s.fill / s.batches, 3) if s.batches else 0.0,
                "dispatch": dict(s.reasons), "pending": len(self._pending), "in_flight": self.in_flight,
                "max_pending": s.max_pending,
                "stage_ms": {"wait": ms(s.wait), "forward": ms(s.forward), "transfer": ms(s.transfer)},
                "frames_per_second_by_size": {str(k): round(k / m.mean(), 2)
                                              for k, m in sorted(s.by_size.items()) if m.mean()},
            }

    def close(self) -> None:
        """Stop the batch thread; requests still waiting fail with :class:`Cancelled`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=120)  # a batch in progress finishes first
