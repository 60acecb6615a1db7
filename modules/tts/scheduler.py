"""Fair, bounded scheduling of synthesis: sentence by sentence, round robin over the requests in flight.

A long text never holds the model for its whole length: after each sentence the worker moves to the
next request, so a second client's first sentence waits at most one sentence. At most ``max_jobs``
requests are in flight; more are refused at once (the route answers 503 with Retry-After).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from typing import Any, Callable

log = logging.getLogger("greenroom.tts.scheduler")

_DONE = object()


class Busy(RuntimeError):
    """Too many requests in flight; ``retry_after`` is a hint in seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Job:
    """One request: ``count`` units rendered in order, read by iterating; ``close`` cancels the rest."""

    def __init__(self, render: Callable[[int], Any], count: int, label: str) -> None:
        self.render = render
        self.count = count
        self.label = label
        self.next = 0
        self.cancelled = False
        self.timeout: float | None = None
        self._read = 0
        self._out: queue.Queue = queue.Queue()

    def put(self, item: Any) -> None:
        self._out.put(item)

    def __iter__(self) -> "Job":
        return self

    def __next__(self) -> Any:
        """The next unit's result in order; re-raises a unit's exception."""
        if self._read >= self.count or self.cancelled:
            raise StopIteration
        try:
            item = self._out.get(timeout=self.timeout)
        except queue.Empty:
            self.close()
            raise TimeoutError(f"no speech for {self.timeout:.0f} s") from None
        if item is _DONE:
            raise StopIteration
        self._read += 1
        if isinstance(item, BaseException):
            self.close()
            raise item
        return item

    def close(self) -> None:
        """Stop rendering the rest (the client went away or the request failed)."""
        self.cancelled = True


class Scheduler:
    """``workers`` threads render units of the queued jobs in round-robin order."""

    def __init__(self, max_jobs: int, workers: int = 1) -> None:
        self.max_jobs = max_jobs
        self._ready: deque[Job] = deque()
        self._active = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._seconds_per_unit = 1.0
        self._threads = [threading.Thread(target=self._work, name=f"tts-worker-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    @property
    def active(self) -> int:
        return self._active

    def submit(self, render: Callable[[int], Any], count: int, label: str = "", timeout: float | None = None) -> Job:
        """Queue a job of ``count`` units; :class:`Busy` when ``max_jobs`` are already in flight."""
        with self._cond:
            if self._stopping:
                raise Busy("the server is shutting down", 5)
            if self._active >= self.max_jobs:
                wait = max(1, round(self._seconds_per_unit * (1 + sum(j.count - j.next for j in self._ready)
                                                              / max(len(self._threads), 1))))
                raise Busy(f"{self._active} speech requests in flight (limit {self.max_jobs}); retry later",
                           min(wait, 120))
            job = Job(render, count, label)
            job.timeout = timeout
            self._active += 1
            if count == 0:
                self._finish(job)
            else:
                self._ready.append(job)
                self._cond.notify()
            return job

    def _finish(self, job: Job) -> None:
        self._active -= 1
        job.put(_DONE)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._ready and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._ready.popleft()
                if job.cancelled:
                    self._finish(job)
                    continue
                index = job.next
                job.next += 1
            started = time.perf_counter()
            failed = False
            try:
                result: Any = job.render(index)
            except Exception as exc:  # handed to the request thread, which reports it
                log.exception("synthesis failed (%s, unit %d)", job.label, index)
                result, failed = exc, True
            elapsed = time.perf_counter() - started
            job.put(result)
            with self._cond:
                self._seconds_per_unit = 0.8 * self._seconds_per_unit + 0.2 * elapsed
                if self._stopping:
                    job.put(RuntimeError("the server is shutting down"))
                elif job.next < job.count and not job.cancelled and not failed:
                    self._ready.append(job)  # back of the line: others get their turn first
                    self._cond.notify()
                else:
                    self._finish(job)

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            for job in self._ready:
                job.put(RuntimeError("the server is shutting down"))
            self._ready.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)
