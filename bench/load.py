"""Load: one all-modules server on 127.0.0.1 driven for a set time by several talkinghead feeds, avatar
sessions created and deleted in a loop, classify and embeddings traffic and TTS requests at once.

Reports throughput, latency percentiles and errors per kind of request, the frames each feed received,
the server's RSS and thread count over time, whether both stay flat across the session create/delete
cycles, and the ratio of ordinary-request p99 latency with every stream slot held by a feed to the
same p99 measured first, in the same run, with no feed open. Between the two, a "big" phase: one
client sends the largest requests the limits allow (a max_chars TTS text without a sentence break, an
embeddings request of max_request_tokens) while the others measure their p99, short TTS included.

    .venv/bin/python bench/load.py [--seconds 120] [--big-seconds 60] [--cycles 500] [--feeds 4] [--json out.json]

Goals (checked at the end; the exit status is 1 when one fails): zero errors; median RSS over the last
50 cycles within 128 MiB, and threads within 2, of the median over cycles 100-150; p99 of ordinary
requests (classify, embeddings, discovery) under 2 s while every stream slot holds a feed, sessions
churn and TTS speaks, and under 2 s while the biggest requests run, on two cores. The big TTS request
ends at the module's time budget (503), as documented: that answer is counted as expected, not as an
error. The load generator shares the machine's cores with the server, so figures are noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GREENROOM_LOAD_PLUGINS", "")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from tests.test_reliability_support import FrameReader, Server, start_all_modules  # noqa: E402

TEXTS = ["I can't believe you did that, it's wonderful!", "The train was late again this morning.",
         "Please leave me alone for a while.", "What a lovely surprise to see you here."]
P99_BOUND_S = 2.0
RSS_BOUND_MB = 128.0
THREAD_BOUND = 2
WARM_CYCLES = 100  # the bounded pose cache fills and the allocator settles meanwhile
WINDOW = 50
RSS_ABORT_MB = 6144
CACHE_MB = 128  # the pose cache is bounded by design; a small bound lets it fill before the warm mark
TTS_MAX_CHARS = 20000  # the module's default limits: the big phase sends the largest they allow
TTS_BUDGET_S = 60
EMBED_MAX_TOKENS = 65536
BIG_TTS_TEXT = ("$1,234,567.89 " * (TTS_MAX_CHARS // 14))[:TTS_MAX_CHARS]
"""No sentence break: one 'sentence' of hours of speech, cut into units by the module."""
BIG_EMBED_TEXTS = [(" ".join(TEXTS) * 20)[:2000]] * (EMBED_MAX_TOKENS // 256)
"""Texts of 2,000 characters, each cut to the model's 256 tokens: exactly max_request_tokens."""


class Stats:
    """Latencies and errors per kind of request, safe to record from many threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)

    def timed(self, kind: str, call: Callable[[], requests.Response], ok: Callable[[requests.Response], bool]
              = lambda r: r.status_code == 200) -> requests.Response | None:
        t0 = time.perf_counter()
        try:
            reply = call()
        except requests.RequestException as exc:
            with self.lock:
                self.errors[kind].append(type(exc).__name__)
            return None
        elapsed = time.perf_counter() - t0
        with self.lock:
            if ok(reply):
                self.latency[kind].append(elapsed)
            else:
                self.errors[kind].append(f"{reply.status_code} {reply.text[:120]}")
        return reply


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


class Sampler(threading.Thread):
    """RSS and thread count of the server process once a second (read from /proc, not over HTTP)."""

    def __init__(self, pid: int, progress: Callable[[], int]) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.progress = progress
        self.samples: list[tuple[float, float, int, int]] = []
        self.stop = threading.Event()
        self.over_limit = threading.Event()
        self.t0 = time.monotonic()

    def snapshot(self) -> tuple[float, float, int, int]:
        """(seconds, RSS MiB, threads, session cycles done)."""
        return (round(time.monotonic() - self.t0, 1), round(self.proc.memory_info().rss / 2**20, 1),
                self.proc.num_threads(), self.progress())

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.samples.append(self.snapshot())
            if self.samples[-1][1] > RSS_ABORT_MB:  # never take a shared machine's memory
                print(f"server RSS above {RSS_ABORT_MB} MiB: stopping the run", flush=True)
                self.over_limit.set()


class Feed(threading.Thread):
    """One talkinghead feed read continuously, as a browser <img> does; counts frames."""

    def __init__(self, server: Server, instance_id: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{server.url}/api/talkinghead/result_feed?instance_id={instance_id}"
        self.frames = 0
        self.error: str | None = None
        self.stop = threading.Event()
        self.opened = threading.Event()

    def run(self) -> None:
        try:
            with requests.get(self.url, stream=True, timeout=30) as reply:
                if reply.status_code != 200:
                    self.error = f"{reply.status_code} {reply.text[:120]}"
                    return
                self.opened.set()
                reader = FrameReader(reply)
                while not self.stop.is_set():
                    if reader.next_frame(timeout=30) is None:
                        self.error = "feed ended"
                        return
                    self.frames += 1
        except requests.RequestException as exc:
            if not self.stop.is_set():
                self.error = type(exc).__name__
        finally:
            self.opened.set()


def ordinary_requests(server: Server, stats: Stats, prefix: str, stop: threading.Event, seconds: float) -> None:
    """Classify, embeddings and the discovery call, one after another, for ``seconds``."""
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end and not stop.is_set():
        text = TEXTS[i % len(TEXTS)]
        stats.timed(f"{prefix}classify", lambda: server.post("/api/classify", json={"text": text}, timeout=60))
        stats.timed(f"{prefix}embeddings", lambda: server.post("/api/embeddings/compute",
                                                               json={"text": [text, text[::-1]]}, timeout=60))
        stats.timed(f"{prefix}modules", lambda: server.get("/api/modules", timeout=60))
        i += 1


def tts_requests(server: Server, stats: Stats, stop: threading.Event, kind: str = "tts speak") -> None:
    i = 0
    while not stop.is_set():
        text = TEXTS[i % len(TEXTS)]
        stats.timed(kind, lambda: server.post("/api/tts/speak", json={"text": text}, timeout=300))
        i += 1


def big_requests(server: Server, stats: Stats, stop: threading.Event) -> None:
    """The largest allowed TTS and embeddings requests, each on its own connection, until ``stop``."""
    def tts() -> None:
        while not stop.is_set():
            stats.timed("largest tts (503 = budget)",
                        lambda: server.post("/api/tts/speak", json={"text": BIG_TTS_TEXT}, timeout=TTS_BUDGET_S + 120),
                        ok=lambda r: r.status_code in (200, 503))

    def embeddings() -> None:
        while not stop.is_set():
            stats.timed("largest embeddings", lambda: server.post("/api/embeddings/compute",
                                                                  json={"text": BIG_EMBED_TEXTS}, timeout=600))

    threads = [threading.Thread(target=tts), threading.Thread(target=embeddings)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def big_phase(server: Server, stats: Stats, clients: int, seconds: float) -> None:
    """``clients`` ordinary clients and one short-TTS client measure their latency for ``seconds`` while
    the big client runs."""
    stop = threading.Event()
    big = threading.Thread(target=big_requests, args=(server, stats, stop))
    big.start()
    time.sleep(2)  # the big requests are in the model before the measurement starts
    measuring = [threading.Thread(target=ordinary_requests, args=(server, stats, "big ", stop, seconds))
                 for _ in range(clients)]
    measuring.append(threading.Thread(target=tts_requests, args=(server, stats, stop, "big tts speak")))
    for t in measuring:
        t.start()
    try:
        for t in measuring[:-1]:
            t.join()
    finally:  # SIGTERM too: every client stops, so the process can end
        stop.set()
    measuring[-1].join()
    big.join()


def session_cycles(server: Server, stats: Stats, cycles: int, marks: dict[Any, Any], stop: threading.Event) -> None:
    """Create an avatar instance (new=true) and delete it, ``cycles`` times."""
    files = {"character": (None, "lambda_00"), "new": (None, "true")}
    for n in range(1, cycles + 1):
        if stop.is_set():
            return
        reply = stats.timed("session create", lambda: server.post("/api/talkinghead/load", files=files, timeout=120))
        if reply is not None and reply.status_code == 200:
            instance_id = reply.json()["instance_id"]
            stats.timed("session delete", lambda: server.post("/api/talkinghead/unload",
                                                              params={"instance_id": instance_id}, timeout=60))
        marks["done"] = n


def summary(stats: Stats, phase_seconds: dict[str, float], load_seconds: float) -> dict[str, Any]:
    """Figures per kind; a kind named "<phase> ..." is counted over that phase's seconds."""
    out = {}
    for kind in sorted(set(stats.latency) | set(stats.errors)):
        values = stats.latency[kind]
        span = next((s for prefix, s in phase_seconds.items() if kind.startswith(prefix)), load_seconds) or 1
        out[kind] = {"count": len(values), "errors": len(stats.errors[kind]), "per_s": round(len(values) / span, 2),
                     "p50_ms": round(percentile(values, 50) * 1000, 1), "p95_ms": round(percentile(values, 95) * 1000, 1),
                     "p99_ms": round(percentile(values, 99) * 1000, 1),
                     "first_errors": stats.errors[kind][:3]}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120, help="duration of the loaded phase (at least)")
    parser.add_argument("--idle-seconds", type=float, default=20, help="baseline phase without feeds")
    parser.add_argument("--big-seconds", type=float, default=60,
                        help="phase with the largest allowed TTS and embeddings requests running (0: skip)")
    parser.add_argument("--cycles", type=int, default=500, help="session create/delete cycles")
    parser.add_argument("--feeds", type=int, default=4, help="feeds (= the server's max_streams)")
    parser.add_argument("--clients", type=int, default=2, help="threads sending ordinary requests")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on the way out

    folder = Path(tempfile.mkdtemp(prefix="greenroom-load-"))
    print(f"starting the all-modules server (max_streams={args.feeds}) ...", flush=True)
    server = start_all_modules(folder, secure=False, max_streams=args.feeds, log_level="WARNING",
                               extra_modules={"talkinghead": {"max_instances": args.feeds + 2,
                                                              "cache_memory_mb": CACHE_MB},
                                              "tts": {"max_chars": TTS_MAX_CHARS, "time_budget_s": TTS_BUDGET_S},
                                              "embeddings": {"max_texts": 2048, "max_text_chars": 20000,
                                                             "max_request_tokens": EMBED_MAX_TOKENS}})
    stats, stop = Stats(), threading.Event()
    marks: dict[Any, Any] = {"done": 0}
    sampler = Sampler(server.pid, lambda: marks["done"])
    sampler.start()
    result: dict[str, Any] = {"cpu_count": os.cpu_count(), "load_average_start": os.getloadavg()}
    try:
        server.post("/api/classify", json={"text": "warm up"}, timeout=120)  # first calls are not measured
        server.post("/api/embeddings/compute", json={"text": "warm up"}, timeout=120)
        print(f"baseline: ordinary requests for {args.idle_seconds:.0f} s with no feed open ...", flush=True)
        idle_threads = [threading.Thread(target=ordinary_requests, args=(server, stats, "idle ", stop,
                                                                         args.idle_seconds))
                        for _ in range(args.clients)]
        for t in idle_threads:
            t.start()
        for t in idle_threads:
            t.join()
        if args.big_seconds > 0:
            print(f"big: the largest allowed TTS and embeddings requests for {args.big_seconds:.0f} s while "
                  f"{args.clients} ordinary clients and a short-TTS client measure ...", flush=True)
            big_phase(server, stats, args.clients, args.big_seconds)

        instance_ids = []
        for i in range(args.feeds):
            reply = server.post("/api/talkinghead/load", files={"character": (None, "lambda_00"),
                                                                "instance_id": (None, f"feed{i}")}, timeout=120)
            reply.raise_for_status()
            instance_ids.append(reply.json()["instance_id"])
        feeds = [Feed(server, i) for i in instance_ids]
        for feed in feeds:
            feed.start()
            feed.opened.wait(60)
        held = server.status()["streams_open"]
        print(f"load: {len(feeds)} feeds open ({held} of {args.feeds} stream slots), {args.cycles} session "
              f"cycles, {args.clients} ordinary clients, 1 TTS client, at least {args.seconds:.0f} s ...", flush=True)
        t_load = time.monotonic()
        workers = [threading.Thread(target=ordinary_requests, args=(server, stats, "", stop, 10**9))
                   for _ in range(args.clients)]
        workers.append(threading.Thread(target=tts_requests, args=(server, stats, stop)))
        churn = threading.Thread(target=session_cycles, args=(server, stats, args.cycles, marks, stop))
        for t in workers + [churn]:
            t.start()
        deadline = t_load + max(args.seconds, 1) + 1800
        while time.monotonic() < deadline and (time.monotonic() - t_load < args.seconds or churn.is_alive()) \
                and not sampler.over_limit.is_set():
            time.sleep(1)
            if int(time.monotonic() - t_load) % 15 == 0:
                s = sampler.snapshot()
                print(f"  t={time.monotonic() - t_load:5.0f} s  cycles {marks['done']:4d}  rss {s[1]:7.1f} MiB  "
                      f"threads {s[2]}", flush=True)
        stop.set()
        for t in workers + [churn]:
            t.join(120)
        load_seconds = time.monotonic() - t_load
        frames = [f.frames for f in feeds]
        for feed in feeds:
            feed.stop.set()
        for feed in feeds:
            feed.join(30)
        result.update({
            "load_seconds": round(load_seconds, 1), "cycles_done": marks["done"],
            "requests": summary(stats, {"idle ": args.idle_seconds, "big ": args.big_seconds,
                                        "largest ": args.big_seconds}, load_seconds),
            "feeds": {"count": len(feeds), "frames": frames, "fps": [round(n / load_seconds, 2) for n in frames],
                      "errors": [f.error for f in feeds if f.error]},
            "samples": sampler.samples, "load_average_end": os.getloadavg()})
    finally:
        stop.set()  # SIGTERM lands here too: the clients' threads end with the server
        sampler.stop.set()
        exit_code = server.stop()
        result["server_exit_code"] = exit_code
    return report(result, args)


def report(result: dict[str, Any], args: argparse.Namespace) -> int:
    print(f"\nmachine: {result['cpu_count']} cores, load average {result['load_average_start'][0]:.1f} at start, "
          f"{result['load_average_end'][0]:.1f} at end (other processes share the cores)")
    print(f"{'request':<22}{'count':>7}{'errors':>8}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for kind, row in result["requests"].items():
        print(f"{kind:<22}{row['count']:>7}{row['errors']:>8}{row['per_s']:>8}{row['p50_ms']:>9}{row['p95_ms']:>9}"
              f"{row['p99_ms']:>9}")
    feeds = result["feeds"]
    print(f"feeds: {feeds['count']} open for {result['load_seconds']} s, fps {feeds['fps']}, errors {feeds['errors']}")
    samples = result["samples"]
    rss = [s[1] for s in samples]
    threads = [s[2] for s in samples]
    print(f"server RSS MiB: start {rss[0]}, max {max(rss)}, end {rss[-1]}; threads: start {threads[0]}, "
          f"max {max(threads)}, end {threads[-1]}")
    print("timeline (s, RSS MiB, threads, cycles): " + ", ".join(f"({t:.0f}, {r:.0f}, {n}, {c})"
                                                                  for t, r, n, c in samples[::30]))
    early = [s for s in samples if WARM_CYCLES <= s[3] <= WARM_CYCLES + WINDOW]
    late = [s for s in samples if s[3] >= args.cycles - WINDOW]
    ok = True
    if result["cycles_done"] >= args.cycles and early and late:
        rss_early, rss_late = statistics.median(s[1] for s in early), statistics.median(s[1] for s in late)
        thr_early, thr_late = statistics.median(s[2] for s in early), statistics.median(s[2] for s in late)
        result["flatness"] = {"rss_mib": [rss_early, rss_late], "threads": [thr_early, thr_late]}
        print(f"session cycles: {result['cycles_done']}; median over cycles {WARM_CYCLES}-{WARM_CYCLES + WINDOW}: "
              f"{rss_early:.0f} MiB, {thr_early:.0f} threads; over the last {WINDOW}: {rss_late:.0f} MiB, "
              f"{thr_late:.0f} threads (RSS {rss_late - rss_early:+.0f} MiB, threads {thr_late - thr_early:+.0f})")
        ok &= abs(rss_late - rss_early) <= RSS_BOUND_MB and abs(thr_late - thr_early) <= THREAD_BOUND
    else:
        print(f"session cycles: only {result['cycles_done']} of {args.cycles} done")
        ok = False
    ordinary = [k for k in result["requests"] if not k.startswith(("idle", "tts", "session", "big", "largest"))]
    during_big = [k for k in result["requests"] if k.startswith("big ") and k != "big tts speak"]
    worst = max(result["requests"][k]["p99_ms"] for k in ordinary) / 1000
    worst_big = max((result["requests"][k]["p99_ms"] for k in during_big), default=0) / 1000
    for kind in ordinary:
        idle = result["requests"].get(f"idle {kind}")
        if idle and idle["p99_ms"] > 0:
            print(f"p99 {kind}: {result['requests'][kind]['p99_ms']} ms with {feeds['count']} feeds + churn + TTS "
                  f"vs {idle['p99_ms']} ms idle (ratio {result['requests'][kind]['p99_ms'] / idle['p99_ms']:.2f})")
        big = result["requests"].get(f"big {kind}")
        if idle and big and idle["p99_ms"] > 0:
            print(f"p99 {kind}: {big['p99_ms']} ms beside the largest TTS and embeddings requests "
                  f"vs {idle['p99_ms']} ms idle (ratio {big['p99_ms'] / idle['p99_ms']:.2f})")
    if "big tts speak" in result["requests"]:
        print(f"p99 short TTS beside the largest TTS request: {result['requests']['big tts speak']['p99_ms']} ms")
    errors = sum(row["errors"] for row in result["requests"].values()) + len(feeds["errors"])
    print(f"errors: {errors}; worst ordinary p99 under load {worst:.3f} s, beside the biggest requests "
          f"{worst_big:.3f} s (goal < {P99_BOUND_S} s); server exit code {result['server_exit_code']}")
    ok &= errors == 0 and worst < P99_BOUND_S and worst_big < P99_BOUND_S and result["server_exit_code"] == 0
    print("goals:", "met" if ok else "NOT met")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
