"""Per-request latency seen by several concurrent clients, shared by the benches."""
from __future__ import annotations

import threading
import time
from typing import Callable

import requests


def client_latencies(request: Callable[[requests.Session], object], clients: int, each: int) -> list[float]:
    """Seconds per call of ``request(session)``: ``clients`` threads, each with its own session, ``each`` calls."""
    out: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as s:
            for _ in range(each):
                t0 = time.perf_counter()
                request(s)
                with lock:
                    out.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out
