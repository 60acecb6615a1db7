"""Serving with waitress, sized so that long-lived streams never starve ordinary requests."""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
from typing import Any

from flask import Flask
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask
from waitress.wasyncore import ExitNow

from ..app import host_of
from ..errors import Error
from ..http import error_body
from .draining import Drain, serve_until_drained

log = logging.getLogger("greenroom.serve")

UNLOAD_GRACE_S = 5.0
"""How long a stop waits for the modules to unload. A model call in progress cannot be interrupted (a
background THA3 pose on a starved CPU took 40 s and more); the process leaves without it: cli.exit_now ends
it with os._exit, so a thread still inside torch is no hazard."""


class _Stop(ExitNow):
    """Raised by the signal handler; waitress's event loop re-raises ExitNow instead of swallowing it."""


class _Signals:
    """SIGTERM/SIGINT: the first stops gracefully, a second is ignored while that runs (it used to raise out
    of the shutdown with a traceback), a third leaves at once with exit code 128 + the signal's number.
    With a ``drain`` (draining.py) a signal that comes before all these starts the drain."""

    def __init__(self, drain: Drain | None = None) -> None:
        self.received = 0
        self.drain = drain

    def __call__(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.drain is not None and self.drain.started is None:
            self.drain.start(name)
            return
        self.received += 1
        if self.received == 1:
            raise _Stop(name)
        if self.received == 2:
            log.warning("%s received again while stopping; ignored (a third one exits at once)", name)
            return
        log.error("%s received a third time; exiting without finishing the shutdown", name)
        logging.shutdown()
        os._exit(128 + signum)


def _unload_within(gr: Any, seconds: float) -> bool:
    """Stop the streams and unload the modules (``Host.shutdown``), waiting at most ``seconds``; False if the
    unload was still running then. Streams end first: the shutdown sets ``context.stopping`` at once."""
    unloading = threading.Thread(target=gr.shutdown, name="greenroom-unload", daemon=True)
    unloading.start()
    unloading.join(seconds)
    if unloading.is_alive():
        log.warning("modules still unloading after %g s (a model call in progress); stopping without them", seconds)
        return False
    return True


class _JsonErrorTask(ErrorTask):
    """Waitress's own answers (a body over max_request_body_size, a malformed request) as JSON, like every
    other error."""

    def execute(self) -> None:
        error = self.request.error
        message = f"{error.reason}: {error.body}"
        if error.code == 413:
            message += " bytes (the server's max_content_length_mb)"
        path = getattr(self.request, "path", None) or "/"  # a request line too broken to parse has none
        body = json.dumps(error_body(Error(error.code, message), path)).encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _JsonErrorChannel(HTTPChannel):
    error_task_class = _JsonErrorTask


def serve(app: Flask, host: str, port: int) -> None:
    """Run until SIGTERM/SIGINT, then close streams, unload modules and stop within a few seconds."""
    gr = host_of(app)
    threads = gr.server.threads + gr.server.max_streams
    server: Any = create_server(app, host=host, port=port, threads=threads, ident="greenroom",
                                max_request_body_size=app.config["MAX_CONTENT_LENGTH"] + 65536,
                                channel_timeout=30, clear_untrusted_proxy_headers=True,
                                # A slow client blocks its stream after ~2 MiB (a few video frames)
                                # instead of 16 MiB, so feeds drop frames rather than queue them.
                                outbuf_high_watermark=2 * 2**20)
    server.channel_class = _JsonErrorChannel
    drain = Drain(gr.context, gr.server.drain_timeout_s) if gr.server.drain_timeout_s > 0 else None
    stop = _Signals(drain)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"Greenroom serving on http://{host}:{server.effective_port} "
          f"({threads} worker threads, {gr.server.max_streams} for streams)", flush=True)
    try:
        if drain is not None:
            serve_until_drained(server, drain)
        else:
            server.run()
    except _Stop as exc:
        log.info("%s received; shutting down", exc)
    finally:
        _unload_within(gr, UNLOAD_GRACE_S)
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        server.close()
        log.info("stopped")
