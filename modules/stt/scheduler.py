"""Fair, bounded transcription: the workers take one step of each request in turn.

A request is an iterator of steps (preparing the audio, then one Whisper segment per step). After each
step its request goes to the back of the line, so a short utterance waits for at most one step of a
long recording, never for the whole recording. At most ``max_jobs`` requests are in flight; more are
refused at once with :class:`Busy` (the routes answer 503 with Retry-After).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from typing import Any, Iterator

from greenroom.errors import Busy

log = logging.getLogger("greenroom.stt.scheduler")

class Job:
    """One request's results, read by iterating; ``close`` cancels the rest.

    The workers hand over ``(True, result)`` per step, then ``(False, None)`` at the end or
    ``(False, exception)`` when a step failed. A reader that waits ``timeout`` s for one step gets
    :class:`Busy` (the model is stuck or the machine overloaded: a 503, never a hang)."""

    def __init__(self, steps: Iterator[Any], label: str, timeout: float) -> None:
        self.steps = steps
        self.label = label
        self.timeout = timeout
        self.cancelled = False
        self.finished = False
        self.results: queue.Queue[tuple[bool, Any]] = queue.Queue()

    def __iter__(self) -> "Job":
        return self

    def __next__(self) -> Any:
        if self.cancelled:
            raise StopIteration
        try:
            ok, item = self.results.get(timeout=self.timeout)
        except queue.Empty:
            item = Busy(f"no transcription progress for {self.timeout:.0f} s; the server is overloaded", 30)
            ok = False
        if ok:
            return item
        self.close()
        if item is None:
            raise StopIteration
        raise item

    def close(self) -> None:
        """Stop working on this request (the client left, or the request failed)."""
        self.cancelled = True


class Scheduler:
    """``workers`` threads advance the queued jobs round robin, one step at a time."""

    def __init__(self, max_jobs: int, workers: int = 1) -> None:
        self.max_jobs = max_jobs
        self.active = 0
        self._line: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._step_seconds = 1.0
        self._workers = [threading.Thread(target=self._run, name=f"stt-worker-{n}", daemon=True)
                         for n in range(workers)]
        for worker in self._workers:
            worker.start()

    def submit(self, steps: Iterator[Any], label: str = "", timeout: float = 300.0) -> Job:
        """Queue a request; :class:`Busy` when ``max_jobs`` are already in flight."""
        with self._cond:
            if self._closed:
                raise Busy("the server is shutting down", 5)
            if self.active >= self.max_jobs:
                hint = self._step_seconds * (1 + len(self._line)) / len(self._workers)
                raise Busy(f"{self.active} transcriptions in flight (limit {self.max_jobs}); retry later",
                           min(max(1, round(hint)), 120))
            job = Job(steps, label, timeout)
            self.active += 1
            self._line.append(job)
            self._cond.notify()
            return job

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._line and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._line.popleft()
            more = not job.cancelled and self._step(job)
            with self._cond:
                if more and not self._closed:
                    self._line.append(job)  # back of the line: the others get their turn first
                    self._cond.notify()
                    continue
                if more:
                    job.results.put((False, Busy("the server is shutting down")))
                self._retire(job)

    def _step(self, job: Job) -> bool:
        """Advance ``job`` by one step and hand over the result; False when the job is done."""
        started = time.perf_counter()
        try:
            job.results.put((True, next(job.steps)))
            return True
        except StopIteration:
            return False
        except Exception as exc:  # handed to the request thread, which reports it
            log.exception("transcription failed (%s)", job.label)
            job.results.put((False, exc))
            return False
        finally:
            self._step_seconds = 0.8 * self._step_seconds + 0.2 * (time.perf_counter() - started)

    def _retire(self, job: Job) -> None:
        if not job.finished:
            job.finished = True
            self.active -= 1
            close = getattr(job.steps, "close", None)
            if close is not None:
                close()
            job.results.put((False, None))

    def close(self) -> None:
        """Refuse new work, fail the queued jobs and stop the workers."""
        with self._cond:
            self._closed = True
            for job in self._line:
                job.results.put((False, Busy("the server is shutting down")))
                self._retire(job)
            self._line.clear()
            self._cond.notify_all()
        for worker in self._workers:
            worker.join(timeout=10)
