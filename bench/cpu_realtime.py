"""What a viewer of the CPU avatar sees: distinct frames per second on the real HTTP feed (issue 23).

It starts the real server (``server.py --enable-modules=talkinghead``, low_compute mode, 512x512, the
default postprocessor chain) in its own process and reads ``/api/talkinghead/result_feed`` like a browser.
A part counts as *distinct* when its image differs from the previous part's (compared byte for byte:
the encoder is deterministic, so equal pixels give equal bytes). Scenarios, in one run and one server:

* ``cold``: a fresh cache folder; one avatar talking while the background renderer fills the cache
  (measured once the neutral face, its blink and talking layers exist, so the picture can move);
* ``warm``: the same avatar once the cache is full (background renderer idle);
* ``two``: a second instance, both talking, two feeds (warm: its cache is filled before its feed opens).

Per feed it prints: distinct frames/s (the headline), the 5th percentile of distinct frames over
1-second windows, the longest run of repeated parts and the longest time one picture stayed on screen,
parts/s, and the server's CPU per distinct frame (whole process; the live render/output threads;
the background renderer, counted per finished job). Goal (issue 23): >= 24 distinct/s with p5 >= 20 cold and warm, >= 20 each
for two avatars.

    .venv/bin/python bench/cpu_realtime.py [--seconds 20] [--scenarios cold,warm,two] [--format PNG]

``--format webp`` asks the feeds for WebP (``?format=webp``, what the web UI uses); ``--setting KEY=VALUE``
adds a line to the server's ``[modules.talkinghead]`` table (``--setting background_idle=true``). A shared machine makes absolute figures noisy: compare runs made
side by side.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.feed_parts import feed_parts  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402

TH = "/api/talkinghead"


class Feed:
    """Reads one result_feed in a thread; records each part's arrival time, a hash of its bytes and
    its X-Frame-Seq header (when the server sends one)."""

    def __init__(self, url: str, instance_id: str, fmt: str | None) -> None:
        params = {"instance_id": instance_id, **({"format": fmt.lower()} if fmt else {})}
        self.response = requests.get(f"{url}{TH}/result_feed", params=params, stream=True, timeout=60)
        self.response.raise_for_status()
        self.parts: list[tuple[float, int, str | None]] = []  # (arrival, hash of the image bytes, seq)
        self.content_types: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for headers, data in feed_parts(self.response):
            self.parts.append((time.monotonic(), hash(data), headers.get("x-frame-seq")))
            self.content_types.add(headers["content-type"])
            if self.stop.is_set():
                break
        self.response.close()

    def window(self, t0: float, t1: float) -> dict:
        """Figures over the parts that arrived in [t0, t1)."""
        inside = [i for i, p in enumerate(self.parts) if t0 <= p[0] < t1]
        if not inside:
            return {"parts_fps": 0.0, "distinct_fps": 0.0, "p5": 0, "longest_repeat": 0, "longest_still_ms": float("nan"),
                    "resent": 0, "distinct": 0}
        distinct_at, run, longest, resent = [], 0, 0, 0
        for i in inside:
            at, digest, seq = self.parts[i]
            same = i > 0 and self.parts[i - 1][1] == digest
            if same:
                run += 1
                longest = max(longest, run)
                resent += i > 0 and seq is not None and self.parts[i - 1][2] == seq
            else:
                run = 0
                distinct_at.append(at)
        seconds = t1 - t0
        per_second = [sum(1 for at in distinct_at if t0 + k <= at < t0 + k + 1) for k in range(int(seconds))]
        p5 = sorted(per_second)[int(0.05 * (len(per_second) - 1))] if per_second else 0
        gaps = [b - a for a, b in zip([t0] + distinct_at, distinct_at + [t1])]
        return {"parts_fps": len(inside) / seconds, "distinct_fps": len(distinct_at) / seconds, "p5": p5,
                "longest_repeat": longest, "longest_still_ms": 1000 * max(gaps), "resent": resent,
                "distinct": len(distinct_at), "per_second": per_second}


def status(url: str, iid: str) -> dict:
    return requests.get(f"{url}{TH}/status", params={"instance_id": iid}, timeout=30).json()


def module_status(url: str) -> dict:
    return requests.get(f"{url}/api/modules/talkinghead", timeout=30).json()["status"]


def wait(predicate, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)
    return time.monotonic() - t0


def idle_layers_ready(url: str, iid: str) -> bool:
    """The neutral face, body and the blink/talk layers are cached: talking and blinking can show."""
    cache = status(url, iid)["cache"]
    return cache["faces"] >= 1 and cache["body_poses"] >= 1 and cache["face_layers"] >= 3


def measure(url: str, pid: int, iids: list[str], feeds: list[Feed], seconds: float) -> dict:
    """Talk on every instance, settle 2 s, then measure ``seconds``: per-feed figures and server CPU."""
    for iid in iids:
        requests.get(f"{url}{TH}/start_talking", params={"instance_id": iid}, timeout=30)
    time.sleep(2.0)
    proc = psutil.Process(pid)
    before = [status(url, iid) for iid in iids]
    worker0 = module_status(url)["worker"]
    cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = sum(proc.cpu_times()[:2]), time.monotonic()
    after = [status(url, iid) for iid in iids]
    worker1 = module_status(url)["worker"]
    for iid in iids:
        requests.get(f"{url}{TH}/stop_talking", params={"instance_id": iid}, timeout=30)
    results = [feed.window(t0, t1) for feed in feeds]
    distinct = sum(r["distinct"] for r in results) or 1
    live = sum(a["cpu_seconds"]["live"] - b["cpu_seconds"]["live"] for a, b in zip(after, before))
    background = worker1["cpu_seconds"] - worker0["cpu_seconds"]
    return {"feeds": results, "seconds": t1 - t0, "load": os.getloadavg()[0],
            "cpu_ms_per_frame": 1000 * (cpu1 - cpu0) / distinct, "live_cpu_ms_per_frame": 1000 * live / distinct,
            "background_cores": background / (t1 - t0), "pending": (before[0]["cache"]["pending"], after[0]["cache"]["pending"]),
            "stage_ms": after[0]["stage_ms"], "content_types": sorted(set().union(*(f.content_types for f in feeds)))}


def report(name: str, res: dict) -> None:
    print(f"\n== {name} ({res['seconds']:.0f} s, load average {res['load']:.2f}, {', '.join(res['content_types'])})")
    for i, r in enumerate(res["feeds"]):
        print(f"  feed {i + 1}: DISTINCT {r['distinct_fps']:.1f} frames/s, p5 over 1-s windows {r['p5']}, "
              f"longest run of repeated parts {r['longest_repeat']}, longest still picture {r['longest_still_ms']:.0f} ms; "
              f"{r['parts_fps']:.1f} parts/s ({r['resent']} parts re-sent the same frame)")
        print(f"          distinct per 1-s window: {r['per_second']}")
    print(f"  server CPU per distinct frame: {res['cpu_ms_per_frame']:.1f} ms (process), "
          f"{res['live_cpu_ms_per_frame']:.1f} ms (render + output threads); background renderer "
          f"{res['background_cores']:.2f} cores; cache pending {res['pending'][0]} -> {res['pending'][1]}")
    print("  stage ms (wall, feed 1's instance): " + ", ".join(f"{k} {v}" for k, v in res["stage_ms"].items() if v is not None))


def load(url: str, character: str) -> str:
    """A new instance showing ``character``; its id."""
    r = requests.post(f"{url}{TH}/load", data={"character": character, "new": "true"}, timeout=120)
    r.raise_for_status()
    assert r.json()["mode"] == "low_compute", r.json()
    return r.json()["instance_id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window per scenario")
    parser.add_argument("--scenarios", default="cold,warm,two", help="comma-separated: cold, warm, two")
    parser.add_argument("--format", default="", help="ask the feed for this format (png, webp); default: the server's")
    parser.add_argument("--second-character", default="lambda_01", help="the second avatar of 'two'")
    parser.add_argument("--warmup-limit", type=float, default=900.0, help="most seconds to wait for a full cache")
    parser.add_argument("--cache-dir", default="", help="pose cache folder (default: a fresh, cold one)")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="a [modules.talkinghead] line for plugins.toml, e.g. background_idle=true (repeatable)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows at once when piped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a killed bench still stops its server
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    folder = Path(tempfile.mkdtemp(prefix="cpu-realtime-"))
    cache_dir = args.cache_dir or str(folder / "cache")
    config = folder / "plugins.toml"
    config.write_text(f'[modules.talkinghead]\nmode = "low_compute"\ncache_dir = "{cache_dir}"\n'
                      + "".join(f"{line.split('=', 1)[0].strip()} = {line.split('=', 1)[1].strip()}\n" for line in args.setting))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, cache {cache_dir}; "
          "a shared machine makes these figures noisy")
    server = ServerProcess(["--config", str(config), "--enable-modules=talkinghead"], log_path=folder / "server.log")
    url, feeds = server.url, []
    try:
        t0 = time.monotonic()
        first = load(url, "lambda_00")
        feeds.append(Feed(url, first, args.format))
        wait(lambda: idle_layers_ready(url, first), args.warmup_limit, "the neutral layers")
        ready = time.monotonic() - t0
        print(f"first part {feeds[0].parts[0][0] - t0:.2f} s after the load call; neutral face, body and idle "
              f"layers cached after {ready:.1f} s")
        if "cold" in scenarios:
            res = measure(url, server.proc.pid, [first], feeds, args.seconds)
            report(("the given cache" if args.cache_dir else "cold cache") + ", background renderer busy, one avatar talking", res)
            if res["pending"][1] == 0:
                print("  (the cache filled during the window: the background renderer was idle for part of it)")
        if "warm" in scenarios or "two" in scenarios:
            filled = wait(lambda: status(url, first)["cache"]["pending"] == 0, args.warmup_limit, "a full cache")
            print(f"\ncache full {time.monotonic() - t0:.0f} s after the load (waited {filled:.0f} s more)")
        if "warm" in scenarios:
            report("warm cache, background renderer idle, one avatar talking",
                   measure(url, server.proc.pid, [first], feeds, args.seconds))
        if "two" in scenarios:
            # Its cache fills before its feed opens: with two feeds on two cores the background renderer's
            # optional work (SCHED_IDLE) gets little CPU, as intended.
            second = load(url, args.second_character)
            filled = wait(lambda: status(url, second)["cache"]["pending"] == 0, args.warmup_limit, "the second cache")
            print(f"\nsecond avatar ({args.second_character}) cached in {filled:.0f} s")
            feeds.append(Feed(url, second, args.format))
            report("two avatars talking, warm caches", measure(url, server.proc.pid, [first, second], feeds, args.seconds))
    finally:
        for feed in feeds:
            feed.stop.set()
        server.stop()


if __name__ == "__main__":
    main()
