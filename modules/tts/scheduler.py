"""Fair, bounded scheduling of synthesis: sentence by sentence, round robin over the requests in flight.

A long text never holds the model for its whole length: after each unit (a sentence, or a piece of a
long one) the worker moves to the next request, so a second client's first sentence waits at most one
unit. At most ``max_jobs`` requests are in flight; more are refused at once (the route answers 503 with
Retry-After). Each request has a time budget: past it the worker drops the request between two units
and the reader gets :class:`OverBudget` (also 503).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from typing import Any, Callable

from greenroom.errors import Busy

log = logging.getLogger("greenroom.tts.scheduler")

_DONE = object()


class OverBudget(Busy):
    """The request ran past its time budget; what was not rendered by then never will be."""

    def __init__(self, budget: float) -> None:
        super().__init__(f"speech took longer than the time budget of {budget:g} s (setting time_budget_s); "
                         "send shorter text, or retry when the server is less busy", 5)
        self.budget = budget


class Job:
    """One request: ``count`` units rendered in order, read by iterating; ``close`` cancels the rest.

    ``budget`` is seconds from submission (None: no limit)."""

    def __init__(self, render: Callable[[int], Any], count: int, label: str, budget: float | None = None) -> None:
        self.render = render
        self.count = count
        self.label = label
        self.next = 0
        self.cancelled = False
        self.budget = budget
        self.deadline = None if budget is None else time.monotonic() + budget
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
        wait = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
        try:
            item = self._out.get(timeout=wait)
        except queue.Empty:
            self.close()
            raise OverBudget(self.budget or 0) from None
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

    def overdue(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


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

    def submit(self, render: Callable[[int], Any], count: int, label: str = "", budget: float | None = None) -> Job:
        """Queue a job of ``count`` units that may take ``budget`` seconds; :class:`Busy` when ``max_jobs``
        are already in flight."""
        with self._cond:
            if self._stopping:
                raise Busy("the server is shutting down", 5)
            if self._active >= self.max_jobs:
                wait = max(1, round(self._seconds_per_unit * (1 + sum(j.count - j.next for j in self._ready)
                                                              / max(len(self._threads), 1))))
                raise Busy(f"{self._active} speech requests in flight (limit {self.max_jobs}); retry later",
                           min(wait, 120))
            job = Job(render, count, label, budget)
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
                if job.overdue():  # the reader may be slow; it still learns why the speech stops here
                    log.info("%s: over its %g s budget after %d of %d units", job.label, job.budget, job.next,
                             job.count)
                    job.put(OverBudget(job.budget or 0))
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
                    job.put(Busy("the server is shutting down", 5))
                elif job.next < job.count and not job.cancelled and not failed:
                    self._ready.append(job)  # back of the line: others get their turn first
                    self._cond.notify()
                else:
                    self._finish(job)

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            for job in self._ready:
                job.put(Busy("the server is shutting down", 5))
            self._ready.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)
