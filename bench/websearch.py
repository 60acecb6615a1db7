"""websearch: requests/s with a warm cache, and the latency Greenroom adds over the engine's own
response time, against the local fake SearXNG (tests/test_websearch_fakes.py), measured in one run.

    .venv/bin/python bench/websearch.py [--seconds 4] [--clients 8] [--requests 200] [--engine-delay-ms 20]

Baselines, same run, same client code: the fake engine asked directly (latency), and the host's
cheapest route GET /api/modules (throughput ceiling of the full middleware stack).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.server_process import ServerProcess  # noqa: E402
from tests.test_websearch_fakes import FakeEngines  # noqa: E402

JSON = {"Content-Type": "application/json"}
os.environ.setdefault("GREENROOM_LOAD_PLUGINS", "")  # built-in modules only, as in the tests


def timed(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None,
          headers: dict[str, str]) -> tuple[float, int, bytes]:
    t0 = time.perf_counter()
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return time.perf_counter() - t0, response.status, data


def latencies(host: str, port: int, make_request, n: int) -> list[float]:
    """``n`` sequential requests on one kept-alive connection; seconds each."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    out = []
    for i in range(n):
        method, path, body, headers = make_request(i)
        seconds, status, _ = timed(conn, method, path, body, headers)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")
        out.append(seconds)
    conn.close()
    return out


def hammer(port: int, method: str, path: str, body: bytes | None, clients: int, seconds: float) -> tuple[float, int]:
    """Each client keeps one connection and repeats the request until time is up; (req/s, errors)."""
    stop = time.monotonic() + seconds

    def client(_: int) -> tuple[int, int]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        done = failed = 0
        while time.monotonic() < stop:
            failed += timed(conn, method, path, body, JSON)[1] != 200
            done += 1
        return done, failed

    t0 = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    return sum(d for d, _ in results) / (time.monotonic() - t0), sum(f for _, f in results)


def start_server(fakes: FakeEngines, folder: Path) -> ServerProcess:
    settings = {**fakes.settings(), "engines": ["searxng"], "searxng_timeout_s": 10}
    toml = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
    config = folder / "plugins.toml"
    config.write_text(f'[server]\napi_key_file = "{folder / "key.txt"}"\n\n[modules.websearch]\n{toml}\n')
    return ServerProcess(["--config", str(config), "--enable-modules=websearch"], log_path=folder / "server.log")


def set_cache(server: ServerProcess, ttl_s: float) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    _, status, data = timed(conn, "POST", "/api/modules/websearch/settings",
                            json.dumps({"cache_ttl_s": ttl_s}).encode(), JSON)
    if status != 200:
        raise RuntimeError(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4, help="length of each throughput run")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="sequential requests per latency run")
    parser.add_argument("--engine-delay-ms", type=float, default=20, help="the fake engine's own think time")
    args = parser.parse_args()

    fakes = FakeEngines()
    fakes.set("searxng", "ok", delay_s=args.engine_delay_ms / 1000)
    engine = urlsplit(fakes.url("searxng"))
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(fakes, Path(tmp))
        try:
            def direct(i: int):
                form = urlencode({"q": f"query {i}", "format": "json", "pageno": "1", "safesearch": "1"})
                return ("POST", engine.path + "/search", form.encode(),
                        {"Content-Type": "application/x-www-form-urlencoded"})

            def through(i: int):
                return "POST", "/api/websearch", json.dumps({"query": f"query {i}"}).encode(), JSON

            set_cache(server, 0)
            latencies(engine.hostname, engine.port, direct, 20)  # warm-up
            latencies("127.0.0.1", server.port, through, 20)
            n = args.requests
            engine_ms = [1000 * s for s in latencies(engine.hostname, engine.port, direct, n // 2)
                         + latencies(engine.hostname, engine.port, direct, n // 2)]
            ours_ms = [1000 * s for s in latencies("127.0.0.1", server.port, through, n)]

            set_cache(server, 600)
            body = json.dumps({"query": "warm cache query", "engine": "google"}).encode()
            hammer(server.port, "POST", "/api/websearch", body, 1, 0.5)  # fills the cache
            requests_before = len(fakes.requests_to("searxng"))
            hammer(server.port, "GET", "/api/modules", None, args.clients, 1)  # warm-up
            runs = {}
            for name, method, path, payload in (("modules", "GET", "/api/modules", None),
                                                ("warm", "POST", "/api/websearch", body),
                                                ("modules2", "GET", "/api/modules", None),
                                                ("warm2", "POST", "/api/websearch", body)):
                runs[name] = hammer(server.port, method, path, payload, args.clients, args.seconds / 2)
            engine_calls = len(fakes.requests_to("searxng")) - requests_before
            set_cache(server, 0)
            cold = hammer(server.port, "POST", "/api/websearch", body, args.clients, args.seconds / 2)
        finally:
            server.stop()
            fakes.close()

    e_med, o_med = statistics.median(engine_ms), statistics.median(ours_ms)
    e_p90, o_p90 = (statistics.quantiles(x, n=10)[-1] for x in (engine_ms, ours_ms))
    warm = (runs["warm"][0] + runs["warm2"][0]) / 2
    ceiling = (runs["modules"][0] + runs["modules2"][0]) / 2
    errors = sum(e for _, e in runs.values()) + cold[1]
    print(f"fake SearXNG think time {args.engine_delay_ms:g} ms; {n} sequential requests; "
          f"{args.clients} clients x {args.seconds:g} s for throughput")
    print(f"engine asked directly          : median {e_med:7.2f} ms   p90 {e_p90:7.2f} ms")
    print(f"POST /api/websearch, cache off : median {o_med:7.2f} ms   p90 {o_p90:7.2f} ms")
    print(f"latency overhead               : median {o_med - e_med:+7.2f} ms   ratio {o_med / e_med:5.2f}")
    print(f"GET /api/modules (host ceiling): {ceiling:8.0f} req/s")
    print(f"POST /api/websearch, warm cache: {warm:8.0f} req/s   ratio to the ceiling {warm / ceiling:4.2f}")
    print(f"POST /api/websearch, cache off : {cold[0]:8.0f} req/s   (engine-bound)   warm cache: x{warm / cold[0]:.1f}")
    print(f"engine calls during warm runs  : {engine_calls}   errors: {errors}")


if __name__ == "__main__":
    main()
