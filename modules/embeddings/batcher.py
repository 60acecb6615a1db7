"""Dynamic micro-batching: requests share model calls, and a big request never holds the model for long.

A model call on a CPU or GPU costs little more for 16 sentences than for one, so concurrent small
requests are queued, merged while the previous call runs (plus an optional short window), encoded
together and split back to their callers. A big request is cut into calls of at most ``max_batch``
texts and ``max_tokens`` tokens; after each call it goes to the back of the line, and requests that
have not started yet go first, so a small request that arrives meanwhile waits for the call in
progress, not for the whole big one.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

log = logging.getLogger("greenroom.embeddings")

EncodeFn = Callable[[list[str]], np.ndarray]
"""``encode(texts) -> unit vectors [n, d]``."""


class BatcherClosed(RuntimeError):
    """The batcher stopped (server shutting down) before the job ran."""


@dataclass
class Job:
    """One request's texts, their cost in tokens and, once done, their vectors."""

    texts: list[str]
    costs: list[int]
    done: threading.Event = field(default_factory=threading.Event)
    vectors: np.ndarray | None = None
    error: BaseException | None = None
    taken: int = 0
    """Texts already handed to a model call."""
    parts: list[np.ndarray] = field(default_factory=list)

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


@dataclass
class Slice:
    """Texts ``start:end`` of ``job`` in one model call."""

    job: Job
    start: int
    end: int


class DynamicBatcher:
    """Merges concurrently submitted jobs into ``encode`` calls on one worker thread, in turns."""

    def __init__(self, encode: EncodeFn, window_s: float = 0.002, max_batch: int = 512,
                 max_tokens: int | None = None, name: str = "batcher") -> None:
        self.encode = encode
        self.window_s = window_s
        self.max_batch = max_batch
        self.max_tokens = max_tokens
        self.calls = 0
        self.texts_encoded = 0
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._pending: deque[Job] = deque()  # the worker's own: jobs with texts not yet encoded
        self._stopping = False
        self._closed = False
        self._state = threading.Lock()  # no job is queued after close()'s stop marker
        self._thread = threading.Thread(target=self._run, name=f"greenroom-{name}", daemon=True)
        self._thread.start()

    def submit(self, texts: list[str], costs: list[int] | None = None) -> Job:
        """Encode ``texts`` (blocking; ``costs``: tokens per text, 1 each if not given) and return the
        finished job; re-raises the model's error."""
        job = Job(list(texts), list(costs) if costs is not None else [1] * len(texts))
        with self._state:
            if self._closed:
                raise BatcherClosed("the embeddings batcher is stopped")
            self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job

    def close(self, timeout: float = 5) -> None:
        """Stop the worker after its current call; jobs not finished by then fail with :class:`BatcherClosed`."""
        with self._state:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)

    # -- worker -------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            if not self._pending:
                self._accept(self._queue.get())
            self._gather()
            if self._pending and not self._stopping:
                self._process(self._take())
        for job in self._pending:
            job.fail(BatcherClosed("the server is shutting down"))
        self._fail_queued()

    def _accept(self, job: Job | None) -> None:
        if job is None:
            self._stopping = True
        elif job.texts:
            self._pending.append(job)
        else:
            job.vectors = np.zeros((0, 0), np.float32)
            job.done.set()

    def _drain(self) -> None:
        """Take in what is queued now."""
        while not self._stopping:
            try:
                self._accept(self._queue.get_nowait())
            except queue.Empty:
                return

    def _gather(self) -> None:
        """Take in what is queued now; when a call would not be full, wait up to the window for more."""
        deadline = time.monotonic() + self.window_s
        while not self._stopping:
            self._drain()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._full():
                return
            try:
                self._accept(self._queue.get(timeout=remaining))
            except queue.Empty:
                return

    def _full(self) -> bool:
        texts = sum(len(j.texts) - j.taken for j in self._pending)
        tokens = sum(sum(j.costs[j.taken:]) for j in self._pending) if self.max_tokens else 0
        return texts >= self.max_batch or (self.max_tokens is not None and tokens >= self.max_tokens)

    def _take(self) -> list[Slice]:
        """The next call, within both limits (one text at least): requests not yet started first, all of them
        that fit; a request already under way only when the call would otherwise be empty, so a small request
        that arrives during a big one waits for the call in progress, not for another share of the big one."""
        slices: list[Slice] = []
        count = tokens = 0
        for job in sorted(self._pending, key=lambda j: j.taken > 0):  # stable: line order within each group
            if job.taken and slices:
                break
            start = end = job.taken
            while end < len(job.texts) and count < self.max_batch and \
                    (self.max_tokens is None or not count or tokens + job.costs[end] <= self.max_tokens):
                tokens += job.costs[end]
                count += 1
                end += 1
            if end > start:
                slices.append(Slice(job, start, end))
                job.taken = end
            if count >= self.max_batch or (self.max_tokens is not None and tokens >= self.max_tokens):
                break
        return slices

    def _process(self, slices: list[Slice]) -> None:
        texts = [t for s in slices for t in s.job.texts[s.start:s.end]]
        t0 = time.perf_counter()
        try:
            vectors = self.encode(texts)
        except BaseException as exc:  # hand the failure to every caller of this call
            for s in slices:
                self._pending.remove(s.job)
                s.job.fail(exc)
            return
        self.calls += 1
        self.texts_encoded += len(texts)
        log.debug("encoded %d texts from %d requests in %.1f ms", len(texts), len(slices),
                  (time.perf_counter() - t0) * 1000)
        self._drain()  # requests that came during the call go ahead of the ones that just had a turn
        offset = 0
        for s in slices:
            job, size = s.job, s.end - s.start
            job.parts.append(vectors[offset:offset + size])
            offset += size
            self._pending.remove(job)
            if job.taken < len(job.texts):
                self._pending.append(job)  # back of the line: the others get their turn first
            else:
                job.vectors = job.parts[0] if len(job.parts) == 1 else np.concatenate(job.parts)
                job.parts = []
                job.done.set()

    def _fail_queued(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.fail(BatcherClosed("the server is shutting down"))
