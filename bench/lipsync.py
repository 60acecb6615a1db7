"""Lip-sync delay: from the moment a mouth shape is scheduled to the feed frame that shows it.

A real server (talkinghead low_compute + tts) speaks "Ma. Pa. Ma. Pa." style utterances through
/api/talkinghead/speak; the bench starts each with /speak/start (offset 0) and reads the real HTTP
feed. Each frame's mouth openness is its pixel distance from the closed mouth, scaled by the fully
open one. Every time the schedule (the same Track the server builds from the word timings) opens the
mouth past half, the delay is the arrival of the first feed frame that shows it half open, minus the
scheduled time. The baseline is the same pipeline without a schedule: a mouth override (no easing)
sent at a known time and the first frame that shows it.

Prints the median delays with lipsync_latency 0 (the raw pipeline) and with the instance's default
latency, each divided by the baseline, and the frame period. The delay includes waiting for the next
rendered and sent frame, so it grows when the machine renders fewer frames per second. The machine is
shared: figures are noisy. Run: .venv/bin/python bench/lipsync.py [--utterances N] [--fps F]
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GREENROOM_LOAD_PLUGINS", "")

from bench.feed_parts import feed_parts  # noqa: E402
from greenroom_modules.talkinghead.lipsync import Track  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402

MOUTH = (slice(158, 186), slice(232, 282))  # rows, cols of the mouth in the 512x512 frame
SENTENCES = ["Ma. Pa. Ma. Pa.", "Pa. Ma. Ba. Ma.", "Ma! Pa! Ma! Pa!"]
HALF = 0.5
VERBOSE = False


class Feed(threading.Thread):
    """Reads the multipart feed, keeping (arrival time, mouth crop) for every part."""

    def __init__(self, url: str, instance_id: str) -> None:
        super().__init__(daemon=True)
        self.response = requests.get(f"{url}/api/talkinghead/result_feed", params={"instance_id": instance_id},
                                     stream=True, timeout=60)
        self.frames: list[tuple[float, np.ndarray]] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            for _, data in feed_parts(self.response):
                arrived = time.monotonic()
                crop = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[MOUTH].copy()  # uint8: hours fit
                with self.lock:
                    self.frames.append((arrived, crop))
                if self.done.is_set():
                    return
        except Exception as exc:  # noqa: BLE001 - reported by the main thread unless we were stopping
            if not self.done.is_set():
                self.error = f"{type(exc).__name__}: {exc}"

    def since(self, t: float) -> list[tuple[float, np.ndarray]]:
        if self.error:
            raise RuntimeError(f"the feed reader failed: {self.error}")
        with self.lock:
            return [f for f in self.frames if f[0] >= t]

    def latest(self) -> np.ndarray:
        with self.lock:
            return self.frames[-1][1]

    def stop(self) -> None:
        self.done.set()
        self.response.close()


def post(url: str, path: str, **json) -> requests.Response:
    r = requests.post(f"{url}{path}", json=json, timeout=300)
    r.raise_for_status()
    return r


def settle(feed: Feed, seconds: float = 1.0) -> np.ndarray:
    time.sleep(seconds)
    return feed.latest()


def openness(crop: np.ndarray, closed: np.ndarray, opened: np.ndarray) -> float:
    crop, closed, opened = (np.asarray(a, np.float32) for a in (crop, closed, opened))
    full = float(np.abs(opened - closed).mean()) or 1.0
    return float(np.abs(crop - closed).mean()) / full


def openings(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Times at which ``values`` rises past HALF (the first sample at or above it)."""
    above = values >= HALF
    return times[1:][above[1:] & ~above[:-1]]


def onset_delays(frames: list[tuple[float, float]], t0: float, track: Track) -> list[float]:
    """For each scheduled opening, the first feed frame showing it (within 1.5 s) minus its time."""
    grid = np.arange(track.start, track.end, 0.005)
    scheduled = openings(grid, np.array([float(track.sample(t).max()) for t in grid])) + t0
    times = np.array([a for a, _ in frames])
    shown = openings(times, np.array([o for _, o in frames]))
    delays = []
    for when in scheduled:
        later = shown[(shown >= when - 0.1) & (shown <= when + 1.5)]
        if len(later):
            delays.append(float(later[0] - when))
    return delays


def override_delay(url: str, iid: str, feed: Feed, closed: np.ndarray, opened: np.ndarray, repeats: int = 4) -> float:
    """Baseline: mouth override sent at t (no easing) -> first frame at least half open."""
    delays = []
    for _ in range(repeats):
        post(url, "/api/talkinghead/set_overrides", instance_id=iid, overrides={"mouth_aaa_index": 0.0})
        settle(feed)
        sent = time.monotonic()
        post(url, "/api/talkinghead/set_overrides", instance_id=iid, overrides={"mouth_aaa_index": 1.0})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            shown = [a for a, crop in feed.since(sent) if openness(crop, closed, opened) > 0.5]
            if shown:
                delays.append(shown[0] - sent)
                break
            time.sleep(0.01)
    post(url, "/api/talkinghead/set_overrides", instance_id=iid, overrides={})
    return float(np.median(delays))


def utterance_delays(url: str, iid: str, feed: Feed, text: str, latency: float, closed: np.ndarray,
                     opened: np.ndarray) -> tuple[list[float], int]:
    """The delays of one utterance's mouth openings, and how many openings it scheduled."""
    reply = post(url, "/api/talkinghead/speak", instance_id=iid, text=text).json()
    track = Track.from_words(reply["words"])
    settle(feed, 0.5)
    t0 = time.monotonic()  # as for the baseline, the time the request is sent (the audio would start now)
    post(url, "/api/talkinghead/speak/start", instance_id=iid, utterance_id=reply["utterance_id"], latency=latency)
    time.sleep(reply["duration"] + 1.0)
    frames = [(a, openness(crop, closed, opened)) for a, crop in feed.since(t0 - 0.5)]
    grid = np.arange(track.start, track.end, 0.005)
    planned = len(openings(grid, np.array([float(track.sample(t).max()) for t in grid])))
    if not frames or max(o for _, o in frames) < HALF or VERBOSE:
        print(f"  note: '{text}': {len(frames)} frames, most open {max((o for _, o in frames), default=0):.2f}; "
              f"keyframes {reply['keyframes']}", file=sys.stderr)
        if VERBOSE:
            for a, o in frames:
                print(f"    {a - t0:7.3f} s  shown {o:5.2f}  scheduled {float(track.sample(a - t0).max()):5.2f}",
                      file=sys.stderr)
    return onset_delays(frames, t0, track), planned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=3)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--verbose", action="store_true", help="print every frame's openness (stderr)")
    args = parser.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    folder = Path(tempfile.mkdtemp(prefix="bench-lipsync-"))
    config = folder / "plugins.toml"
    config.write_text(f'[modules.talkinghead]\ncache_dir = "{folder / "cache"}"\nmode = "low_compute"\n'
                      'precompute_emotions = false\n\n[modules.talkinghead.animator]\n'
                      f'target_fps = {args.fps}\nblink_probability = 0.0\nsway_macro_strength = 0.0\n'
                      'sway_micro_strength = 0.0\npostprocessor_chain = []\npose_interpolator_step = 1.0\n')
    server = ServerProcess(["--config", str(config), "--enable-modules=talkinghead,tts"])
    try:
        url = server.url
        iid = requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_00", "new": "true"},
                            timeout=60).json()["instance_id"]
        default_latency = requests.get(f"{url}/api/talkinghead/animator_settings", params={"instance_id": iid},
                                       timeout=30).json()["lipsync_latency"]
        feed = Feed(url, iid)
        feed.start()
        # Warm up: one utterance renders every mouth layer of the neutral face (low_compute caches them).
        post(url, "/api/talkinghead/speak", instance_id=iid, text="Warming up.", autostart=True)
        while requests.get(f"{url}/api/talkinghead/status", params={"instance_id": iid},
                           timeout=30).json()["cache"]["pending"]:
            time.sleep(0.5)
        closed = settle(feed, 2.0)
        post(url, "/api/talkinghead/set_overrides", instance_id=iid, overrides={"mouth_aaa_index": 1.0})
        opened = settle(feed, 2.0)
        post(url, "/api/talkinghead/set_overrides", instance_id=iid, overrides={})

        baseline = override_delay(url, iid, feed, closed, opened)
        rows = {}
        for latency in (0.0, default_latency):
            delays, planned = [], 0
            for i in range(args.utterances):
                found, scheduled = utterance_delays(url, iid, feed, SENTENCES[i % len(SENTENCES)], latency, closed, opened)
                delays += found
                planned += scheduled
            rows[latency] = (delays, planned)
        status = requests.get(f"{url}/api/talkinghead/status", params={"instance_id": iid}, timeout=30).json()
        feed.stop()
    finally:
        server.stop()

    period = 1.0 / args.fps
    print(f"feed: target {args.fps} fps, rendered {status['fps']['render']} fps, encoded {status['fps']['encode']} fps "
          f"(mode {status['mode']}); frame period {period * 1000:.0f} ms; load average {os.getloadavg()[0]:.1f}")
    print(f"baseline: mouth override -> first frame showing it: {baseline * 1000:.0f} ms "
          f"({baseline / period:.1f} frame periods)")
    for latency, (delays, planned) in rows.items():
        median = float(np.median(delays)) if delays else float("nan")
        spread = f"{np.percentile(delays, 10) * 1000:.0f}..{np.percentile(delays, 90) * 1000:.0f}" if delays else "-"
        print(f"lip-sync, lipsync_latency {latency:.2f} s: scheduled mouth opening -> feed frame showing it: median "
              f"{median * 1000:.0f} ms (10th..90th percentile {spread} ms; {len(delays)} of {planned} openings seen); "
              f"ratio to baseline {median / baseline:.2f}")
    raw = rows[0.0][0]
    if raw:
        print(f"suggested lipsync_latency for this machine: {float(np.median(raw)):.2f} s (the delay with latency 0)")


if __name__ == "__main__":
    main()
