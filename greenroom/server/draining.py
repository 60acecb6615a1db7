"""Draining: a worker behind a load balancer lets its open feeds finish before it stops.

With ``drain_timeout_s`` > 0 (``--drain-timeout``) the first SIGTERM/SIGINT does not stop the server at once.
It drains: ``/health`` answers 503 with the reason, so the balancer sends no new work; modules create no new
sessions (talkinghead refuses new instances, 503); requests and streams already open keep running. The drain
ends at the timeout, or earlier once nothing is left to serve and the balancer has had time to notice; then
the usual graceful stop runs. A second signal ends the drain at once (see ``serve._Signals``).
"""
from __future__ import annotations

import logging
import time
from typing import Any

from ..context import Context

log = logging.getLogger("greenroom.serve")

NOTICE_S = 2.0
"""The shortest drain of an idle worker: deploy/haproxy.cfg checks /health every second and takes one failed
check as down, so after two seconds no new request is on its way here."""


class Drain:
    """The drain's clock and its verdict; :attr:`Context.draining` carries the reason to /health and modules."""

    def __init__(self, context: Context, timeout_s: float) -> None:
        self.context = context
        self.timeout_s = timeout_s
        self.started: float | None = None

    def start(self, signal_name: str) -> None:
        self.started = time.monotonic()
        self.context.draining = f"{signal_name} received; draining for up to {self.timeout_s:g} s"
        log.warning("%s; /health answers 503, no new instances, open feeds keep running "
                    "(another %s stops now)", self.context.draining, signal_name)

    def over(self, busy: bool) -> bool:
        """Whether to stop now: past the timeout, or idle (``busy`` False) once the balancer has noticed."""
        if self.started is None:
            return False
        elapsed = time.monotonic() - self.started
        return elapsed >= self.timeout_s or (not busy and elapsed >= min(NOTICE_S, self.timeout_s))


def serve_until_drained(server: Any, drain: Drain, poll_s: float = 0.2) -> None:
    """Waitress's event loop, one poll at a time, until the drain is over (a signal may also raise out of it).

    Busy means a request or stream is being served or queued (waitress's own task counters)."""
    tasks = server.task_dispatcher
    while not drain.over(busy=tasks.active_count > 0 or len(tasks.queue) > 0):
        server.asyncore.loop(timeout=poll_s, map=server._map, use_poll=server.adj.asyncore_use_poll, count=1)
    log.info("drained; shutting down")
