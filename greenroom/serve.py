"""Serving with waitress, sized so that long-lived streams never starve ordinary requests."""
from __future__ import annotations

import logging
import signal
from typing import Any

from flask import Flask
from waitress.server import create_server
from waitress.wasyncore import ExitNow

from .app import host_of

log = logging.getLogger("greenroom.serve")


class _Stop(ExitNow):
    """Raised by the signal handler; waitress's event loop re-raises ExitNow instead of swallowing it."""


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

    def stop(signum: int, _frame: Any) -> None:
        raise _Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"Greenroom serving on http://{host}:{server.effective_port} "
          f"({threads} worker threads, {gr.server.max_streams} for streams)", flush=True)
    try:
        server.run()
    except _Stop as exc:
        log.info("%s received; shutting down", exc)
    finally:
        gr.shutdown()
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        server.close()
        log.info("stopped")
