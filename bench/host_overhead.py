"""Host overhead: requests/s of GET /api/modules through Greenroom's full middleware stack
(CORS, auth, JSON errors, slash collapsing, logging) against a bare Flask app answering the
same JSON, both on waitress with the same thread count, measured in the same run.

    .venv/bin/python bench/host_overhead.py [--seconds 20] [--rounds 10] [--clients 8]

The client threads share the machine's cores with the server (and parse the extra CORS headers
Greenroom sends), so on a 2-core machine single runs swing widely; the median of paired rounds is
the figure to quote.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.server_process import free_port  # noqa: E402

BARE_APP = """
import logging, sys
from flask import Flask, jsonify
from waitress import serve
app = Flask("bare")
@app.get("/api/modules")
def modules():
    return jsonify({"modules": ["hello"]})
serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=%d, ident="bare")
"""


def start(cmd: list[str], port: int, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/api/modules")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{cmd} did not start")


def hammer(port: int, clients: int, seconds: float) -> tuple[float, int]:
    """Each client keeps one connection alive and sends GETs until time is up; returns (req/s, errors)."""
    counts, errors = [0] * clients, [0] * clients
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop:
            conn.request("GET", "/api/modules", headers={"Origin": "http://localhost:8000"})
            response = conn.getresponse()
            body = response.read()
            if response.status != 200 or "modules" not in json.loads(body):
                errors[i] += 1
            counts[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - t0), sum(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="per server, split over the rounds")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10, help="alternating bare/ours runs to pair up")
    args = parser.parse_args()
    threads = 8
    env = {"GREENROOM_LOAD_PLUGINS": ""}
    ours_port, bare_port = free_port(), free_port()
    # Default log level (INFO): one access-log line per request, as users run it.
    ours = start([sys.executable, "server.py", "--port", str(ours_port), "--config", os.devnull], ours_port, env)
    bare = start([sys.executable, "-c", BARE_APP % (threads + 8), str(bare_port)], bare_port, env)
    try:
        hammer(ours_port, args.clients, 1)  # warm-up
        hammer(bare_port, args.clients, 1)
        # Alternate short runs and compare each pair: the machine's speed drifts over seconds.
        rounds = []
        for _ in range(args.rounds):
            bare_rps, bare_errors = hammer(bare_port, args.clients, args.seconds / args.rounds)
            ours_rps, ours_errors = hammer(ours_port, args.clients, args.seconds / args.rounds)
            rounds.append((bare_rps, ours_rps, bare_errors + ours_errors))
    finally:
        ours.terminate()
        bare.terminate()
    ratios = sorted(ours / bare for bare, ours, _ in rounds)
    print(f"clients={args.clients} seconds={args.seconds} rounds={args.rounds}")
    print(f"bare Flask on waitress : {statistics.median(r[0] for r in rounds):8.0f} req/s (median)")
    print(f"Greenroom full stack   : {statistics.median(r[1] for r in rounds):8.0f} req/s (median)")
    print(f"ratio greenroom/bare   : {statistics.median(ratios):8.2f}   (median of {len(ratios)} paired rounds, "
          f"range {ratios[0]:.2f}-{ratios[-1]:.2f}; goal >= 0.8)   errors: {sum(r[2] for r in rounds)}")


if __name__ == "__main__":
    main()
