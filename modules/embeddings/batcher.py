"""Dynamic batching: texts from requests that arrive together go through the model in one call.

A model call on a CPU or GPU costs little more for 16 sentences than for one, so
concurrent small requests are queued, merged while the previous call runs (plus
an optional short window), encoded together and split back to their callers.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

log = logging.getLogger("greenroom.embeddings")

EncodeFn = Callable[[list[str], bool], tuple[np.ndarray, list[int] | None]]
"""``encode(texts, count_tokens) -> (unit vectors [n, d], tokens per text or None)``."""


class BatcherClosed(RuntimeError):
    """The batcher stopped (server shutting down) before the job ran."""


@dataclass
class Job:
    """One request's texts and, once done, its slice of the merged result."""

    texts: list[str]
    count_tokens: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    vectors: np.ndarray | None = None
    tokens: list[int] | None = None
    error: BaseException | None = None


class DynamicBatcher:
    """Merges concurrently submitted jobs into single ``encode`` calls on one worker thread."""

    def __init__(self, encode: EncodeFn, window_s: float = 0.002, max_batch: int = 512, name: str = "batcher"):
        self.encode = encode
        self.window_s = window_s
        self.max_batch = max_batch
        self.calls = 0
        self.texts_encoded = 0
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._closed = False
        self._state = threading.Lock()  # no job is queued after close()'s stop marker
        self._thread = threading.Thread(target=self._run, name=f"greenroom-{name}", daemon=True)
        self._thread.start()

    def submit(self, texts: list[str], count_tokens: bool = False) -> Job:
        """Encode ``texts`` (blocking) and return the finished job; re-raises the model's error."""
        job = Job(list(texts), count_tokens)
        with self._state:
            if self._closed:
                raise BatcherClosed("the embeddings batcher is stopped")
            self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job

    def close(self, timeout: float = 5) -> None:
        """Stop the worker; queued jobs that did not run fail with :class:`BatcherClosed`."""
        with self._state:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)

    # -- worker -------------------------------------------------------------------------------

    def _gather(self, first: Job) -> list[Job]:
        """``first`` plus whatever is queued now or arrives within the window, up to ``max_batch`` texts."""
        jobs, count = [first], len(first.texts)
        deadline = time.monotonic() + self.window_s
        while count < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    job = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if job is None:  # close() while gathering: finish this batch, then stop
                self._queue.put(None)
                break
            jobs.append(job)
            count += len(job.texts)
        return jobs

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            self._process(self._gather(first))
        self._fail_pending()

    def _process(self, jobs: list[Job]) -> None:
        texts = [t for job in jobs for t in job.texts]
        t0 = time.perf_counter()
        try:
            vectors, tokens = self.encode(texts, any(job.count_tokens for job in jobs))
        except BaseException as exc:  # hand the failure to every caller of this batch
            for job in jobs:
                job.error = exc
                job.done.set()
            return
        self.calls += 1
        self.texts_encoded += len(texts)
        log.debug("encoded %d texts from %d requests in %.1f ms", len(texts), len(jobs),
                  (time.perf_counter() - t0) * 1000)
        start = 0
        for job in jobs:
            end = start + len(job.texts)
            job.vectors = vectors[start:end]
            job.tokens = tokens[start:end] if tokens is not None else None
            job.done.set()
            start = end

    def _fail_pending(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.error = BatcherClosed("the server is shutting down")
                job.done.set()
