"""Scale-out: classify throughput and latency through HAProxy with 1 and with 3 workers, and what HAProxy adds
over talking to a worker directly, all in one run (deploy/greenroom-cluster.sh starts each cluster).

    .venv/bin/python bench/scale.py [--seconds 10] [--clients 6] [--rounds 2]

For each target (worker 1 directly, HAProxy with 1 worker, HAProxy with 3 workers) and each client count
(1, then --clients concurrent keep-alive clients) it sends SillyTavern-sized ``POST /api/classify`` requests
for --seconds and reports requests/s with p50 and p99 latency. HAProxy's own cost shows best on a request that
costs the worker almost nothing (``GET /api/classify/labels``, one client, directly and through HAProxy). Rounds interleave the targets, and each
figure is the median over rounds. On a machine with fewer cores than workers the 3-worker figures show
contention, not scaling (deploy/README.md says what to expect on paper).
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.server_process import free_port_run  # noqa: E402

TEXTS = ["I can't believe you remembered my birthday, thank you so much!", "Get out of my room, now.",
         "Hmm, I wonder what is behind that door.", "Oh no, I think I lost the keys again...",
         "That was the best concert of my whole life!", "Fine. Whatever. Do what you want."]


class Cluster:
    """deploy/greenroom-cluster.sh with ``workers`` classify-only workers; ``front`` and ``worker1`` URLs."""

    def __init__(self, workers: int, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        port = base = free_port_run(workers)  # workers listen on base + 1 ... base + workers
        self.front, self.worker1 = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{base + 1}"
        env = {**os.environ, "GREENROOM_WORKERS": str(workers), "GREENROOM_FRONT": f"127.0.0.1:{port}",
               "GREENROOM_BASE_PORT": str(base), "GREENROOM_RUN_DIR": str(folder), "GREENROOM_DRAIN_S": "5",
               "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen([str(ROOT / "deploy" / "greenroom-cluster.sh"), "--enable-modules=classify"],
                                     env=env, cwd=folder, stdout=open(folder / "cluster.log", "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.workers = workers
        self._wait(300)

    def _wait(self, timeout: float) -> None:
        deadline, seen = time.monotonic() + timeout, set()
        while len(seen) < self.workers:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"cluster of {self.workers} not ready; see its logs")
            try:
                seen.add(requests.get(self.front + "/health", timeout=5).headers["X-Greenroom-Worker"])
            except (requests.RequestException, KeyError):
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def drive(url: str, clients: int, seconds: float, cheap: bool = False) -> tuple[float, list[float]]:
    """``clients`` keep-alive clients classify (``cheap``: read the label list) for ``seconds``: requests/s and
    every latency in seconds."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def client(k: int) -> None:
        session, mine, i = requests.Session(), [], k
        while time.monotonic() < end:
            t0 = time.perf_counter()
            r = (session.get(url + "/api/classify/labels", timeout=60) if cheap else
                 session.post(url + "/api/classify", json={"text": TEXTS[i % len(TEXTS)]}, timeout=60))
            mine.append(time.perf_counter() - t0)
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.text[:100]}")
            i += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return len(latencies) / (time.monotonic() - t0), latencies


def p(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="greenroom-bench-scale-"))
    clusters = {}
    try:
        clusters[1] = Cluster(1, folder / "one")
        clusters[3] = Cluster(3, folder / "three")
        targets = {"worker 1 directly": clusters[1].worker1, "HAProxy, 1 worker": clusters[1].front,
                   "HAProxy, 3 workers": clusters[3].front}
        for url in targets.values():
            drive(url, 2, 2)  # warm-up: models, connections
        results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
        overhead: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for name in ("worker 1 directly", "HAProxy, 1 worker"):  # a request that costs the worker ~nothing
                overhead.setdefault(name, []).append(p(drive(targets[name], 1, args.seconds / 2, cheap=True)[1], 0.5))
            for clients in (1, args.clients):
                for name, url in targets.items():
                    rate, lat = drive(url, clients, args.seconds)
                    results.setdefault((name, clients), []).append((rate, p(lat, 0.5), p(lat, 0.99)))
    finally:
        for cluster in clusters.values():
            cluster.stop()
    load = os.getloadavg()[0]
    print(f"classify through HAProxy, {args.rounds} rounds of {args.seconds:g} s, medians; "
          f"{os.cpu_count()} CPUs, load average {load:.1f}")
    print(f"{'target':<22}{'clients':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for (name, clients), rows in results.items():
        rate, p50, p99 = (statistics.median(col) for col in zip(*rows))
        print(f"{name:<22}{clients:>8}{rate:>9.1f}{p50:>9.1f}{p99:>9.1f}")
    for clients in (1, args.clients):
        direct = statistics.median(r[1] for r in results[("worker 1 directly", clients)])
        proxied = statistics.median(r[1] for r in results[("HAProxy, 1 worker", clients)])
        print(f"HAProxy adds {proxied - direct:+.1f} ms to the p50 at {clients} client(s)")
    cheap = {name: statistics.median(values) for name, values in overhead.items()}
    print(f"GET /api/classify/labels, 1 client, p50: directly {cheap['worker 1 directly']:.2f} ms, through HAProxy "
          f"{cheap['HAProxy, 1 worker']:.2f} ms: HAProxy adds {cheap['HAProxy, 1 worker'] - cheap['worker 1 directly']:+.2f} ms")
    one = statistics.median(r[0] for r in results[("HAProxy, 1 worker", args.clients)])
    three = statistics.median(r[0] for r in results[("HAProxy, 3 workers", args.clients)])
    print(f"3 workers / 1 worker throughput at {args.clients} clients: {three / one:.2f}x "
          f"(bounded by {os.cpu_count()} CPUs here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
