"""Polite pacing per engine: a minimum interval between requests, and a cool-down after the
engine says 'too many requests'. A request that would wait too long fails at once, so the
search falls back to the next engine instead of piling up threads."""
from __future__ import annotations

import threading
import time
from typing import Callable

from .errors import EngineRateLimited


class RateLimiter:
    """One per engine name; shared by every request thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next_start = 0.0
        self._cool_until = 0.0

    def wait_turn(self, interval_s: float, max_wait_s: float) -> float:
        """Block until this request may go; returns the seconds waited.

        Raises :class:`EngineRateLimited` while cooling down, or when the turn is more than
        ``max_wait_s`` away (other requests are queued ahead).
        """
        with self._lock:
            now = self._clock()
            if now < self._cool_until:
                left = self._cool_until - now
                raise EngineRateLimited(f"cooling down for {left:.0f} more s after the engine asked us to slow "
                                        "down", retry_after=left)
            start = max(now, self._next_start)
            wait = start - now
            if wait > max_wait_s:
                raise EngineRateLimited(f"too many requests queued locally (next turn in {wait:.1f} s)",
                                        retry_after=wait)
            self._next_start = start + interval_s
        if wait > 0:
            self._sleep(wait)
        return wait

    def cool_down(self, seconds: float) -> None:
        with self._lock:
            self._cool_until = max(self._cool_until, self._clock() + seconds)

    def cooling_for(self) -> float:
        """Seconds of cool-down left (0 when the engine may be asked)."""
        with self._lock:
            return max(0.0, self._cool_until - self._clock())
