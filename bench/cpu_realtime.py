"""Real-time avatar on a CPU: low_compute mode against full posing, in the same run, through real
HTTP feeds with the default postprocessor chain at 512x512.

Per mode it prints: frames/s delivered by the feed and distinct frames/s encoded, CPU time per
delivered frame (the whole process, and without the background cache renderer), time from the load
call to the first feed part, time until an emotion change is visible in the feed, and (low_compute)
the cache warm-up time from a cold disk cache. Goal: >= 25 frames/s delivered, an emotion change
visible within 1 s once that emotion is cached.

Run: .venv/bin/python bench/cpu_realtime.py [--seconds S] [--warmup-limit S]
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
import psutil
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GREENROOM_LOAD_PLUGINS", "")
FACE = (slice(60, 200), slice(190, 330))


class Feed:
    """Reads one result_feed in a thread: counts parts, keeps the latest image and its arrival time."""

    def __init__(self, url: str, instance_id: str) -> None:
        self.url, self.instance_id = url, instance_id
        self.count, self.first_at, self.latest, self.latest_at = 0, None, None, 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with requests.get(f"{self.url}/api/talkinghead/result_feed", params={"instance_id": self.instance_id},
                          stream=True, timeout=120) as r:
            buf = b""
            for chunk in r.iter_content(65536):
                buf += chunk
                while True:
                    head = buf.find(b"\r\n\r\n")
                    if head < 0:
                        break
                    length = int([line.split(b":")[1] for line in buf[:head].split(b"\r\n")
                                  if line.lower().startswith(b"content-length")][0])
                    if len(buf) < head + 4 + length + 2:
                        break
                    self.latest, self.latest_at = buf[head + 4:head + 4 + length], time.monotonic()
                    buf = buf[head + 4 + length + 2:]
                    self.count += 1
                    if self.first_at is None:
                        self.first_at = self.latest_at
                if self.stop.is_set():
                    return

    def face(self) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(self.latest)), dtype=np.float32)[FACE]


def serve(cache_dir: str):
    from waitress.server import create_server

    from greenroom.app import create_app
    from greenroom.config import HostConfig, ServerSettings
    config = HostConfig(server=ServerSettings(enable_modules=["talkinghead"], max_streams=16,
                                              api_key_file=str(Path(tempfile.mkdtemp()) / "key")),
                        modules={"talkinghead": {"cache_dir": cache_dir, "mode": "low_compute"}})
    app = create_app(config)
    server = create_server(app, host="127.0.0.1", port=0, threads=24)
    threading.Thread(target=server.run, daemon=True).start()
    return app, server, f"http://127.0.0.1:{server.effective_port}"


def cpu_seconds(exclude: set[int]) -> tuple[float, float]:
    """(process CPU seconds, CPU seconds without the threads in ``exclude``)."""
    proc = psutil.Process()
    total = sum(proc.cpu_times()[:2])
    excluded = sum(t.user_time + t.system_time for t in proc.threads() if t.id in exclude)
    return total, total - excluded


def emotion_latency(url: str, iid: str, feed: Feed, emotion: str, timeout: float = 120) -> float:
    time.sleep(1.0)
    before = feed.face()
    t0 = time.monotonic()
    requests.post(f"{url}/api/talkinghead/set_emotion", json={"emotion_name": emotion, "instance_id": iid})
    while time.monotonic() - t0 < timeout:
        if feed.latest_at > t0 and np.abs(feed.face() - before).mean() > 4.0:
            return feed.latest_at - t0
        time.sleep(0.005)
    return float("nan")


def pipeline_cpu_ms(app, iid: str, frames: int = 40) -> dict:
    """CPU milliseconds per frame of the live path, run on this thread with the instance's own objects
    (animator tick, render, crop/postprocess/sRGB, encode): what 25 frames/s costs, independent of how
    busy the machine is (thread CPU time, not wall time)."""
    import torch

    from greenroom_modules.talkinghead import encoding
    torch.set_num_threads(1)  # per thread: all work stays on this thread, where thread_time sees it
    inst = app.extensions["greenroom"].module("talkinghead").manager.get(iid)
    costs = {"render": 0.0, "postprocess+srgb": 0.0, "encode": 0.0}
    now = time.monotonic()
    for i in range(frames):
        c0 = time.thread_time()
        pose = inst.animator.tick(now + i / 25)
        frame = inst.renderer.render(pose, inst.animator_target())
        c1 = time.thread_time()
        rgba8 = inst._finish(frame, inst.settings, inst.postprocessor)
        c2 = time.thread_time()
        encoding.encode(rgba8, inst.settings.format)
        c3 = time.thread_time()
        for key, value in zip(costs, (c1 - c0, c2 - c1, c3 - c2)):
            costs[key] += value * 1000 / frames
    costs["total"] = sum(costs.values())
    return costs


def cached_emotion(app, iid: str) -> str:
    """An emotion whose face and head pose are both cached (surprise when it is), for the latency test."""
    from greenroom_modules.talkinghead import pose as P
    inst = app.extensions["greenroom"].module("talkinghead").manager.get(iid)
    r = inst.renderer
    ready = [name for name, t in inst.templates.items() if name != "neutral"
             and r._has(r.face_key(t[P.EXPRESSION])) and r._has(r.body_key(t[P.ROTATION]))]
    return "surprise" if "surprise" in ready else (ready[0] if ready else "surprise")


def measure(app, url: str, mode: str, seconds: float, warmup_limit: float, worker_id: int) -> dict:
    r = requests.post(f"{url}/api/modules/talkinghead/settings", json={"mode": mode})  # new instances' mode
    assert r.status_code == 200, r.text
    t0 = time.monotonic()
    r = requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_00", "new": "true"})
    iid = r.json()["instance_id"]
    assert r.json()["mode"] == mode, r.json()
    feed = Feed(url, iid)
    status = lambda: requests.get(f"{url}/api/talkinghead/status", params={"instance_id": iid}).json()  # noqa: E731
    while feed.first_at is None and time.monotonic() - t0 < 120:
        time.sleep(0.005)
    out = {"first_frame_s": (feed.first_at or float("nan")) - t0}
    requests.get(f"{url}/api/talkinghead/start_talking", params={"instance_id": iid})
    time.sleep(2.0)
    c0, s0, n0, e0 = cpu_seconds({worker_id}), time.monotonic(), feed.count, status()["frames"]["encoded"]
    time.sleep(seconds)
    c1, s1, n1, st = cpu_seconds({worker_id}), time.monotonic(), feed.count, status()
    elapsed, delivered = s1 - s0, n1 - n0
    out.update(delivered_fps=delivered / elapsed, encoded_fps=(st["frames"]["encoded"] - e0) / elapsed,
               cpu_ms_per_frame=1000 * (c1[0] - c0[0]) / max(delivered, 1),
               cpu_ms_per_frame_live=1000 * (c1[1] - c0[1]) / max(delivered, 1),
               stages=st["stage_ms"], cache_during=st.get("cache"))
    requests.get(f"{url}/api/talkinghead/stop_talking", params={"instance_id": iid})
    if mode == "low_compute":
        while status()["cache"]["pending"] > 0 and time.monotonic() - t0 < warmup_limit:
            time.sleep(1.0)
        st = status()
        out["warmup_s"] = time.monotonic() - t0 if st["cache"]["pending"] == 0 else float("nan")
        out["cache_after"] = st["cache"]
    emotion = "surprise" if mode == "full" else cached_emotion(app, iid)
    out["emotion"] = emotion
    out["emotion_visible_s"] = emotion_latency(url, iid, feed, emotion)
    out["pipeline_cpu_ms"] = pipeline_cpu_ms(app, iid, 40 if mode == "low_compute" else 2)
    feed.stop.set()
    requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": iid})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0, help="measuring window per mode")
    parser.add_argument("--warmup-limit", type=float, default=600.0, help="give up waiting for the cache after this")
    parser.add_argument("--cache-dir", default="", help="default: a fresh (cold) temporary folder")
    args = parser.parse_args()
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="th-cache-")
    print(f"{os.cpu_count()} CPUs, torch threads {__import__('torch').get_num_threads()}, cache {cache_dir}; "
          "a shared machine makes these figures noisy")
    app, server, url = serve(cache_dir)
    worker_id = app.extensions["greenroom"].module("talkinghead").manager.worker._thread.native_id
    try:
        for mode in ("low_compute", "full"):
            res = measure(app, url, mode, args.seconds, args.warmup_limit, worker_id)
            print(f"\n== {mode}")
            print(f"  delivered {res['delivered_fps']:.1f} frames/s, distinct (encoded) {res['encoded_fps']:.1f}/s")
            print(f"  CPU per delivered frame: {res['cpu_ms_per_frame']:.1f} ms (process), "
                  f"{res['cpu_ms_per_frame_live']:.1f} ms without the background cache renderer")
            print(f"  time to first frame: {res['first_frame_s']:.3f} s")
            print(f"  emotion change ({res['emotion']}) visible after {res['emotion_visible_s']:.3f} s"
                  + (" (emotion cached)" if mode == "low_compute" else ""))
            if "warmup_s" in res:
                disk = "the given disk cache" if args.cache_dir else "cold disk cache"
                print(f"  cache warm-up ({disk}, all emotions): {res['warmup_s']:.1f} s; {res['cache_after']}")
                print(f"  cache while measuring: {res['cache_during']}")
            print("  stage ms (wall, in the server): " + ", ".join(f"{k} {v}" for k, v in res["stages"].items() if v is not None))
            cpu = res["pipeline_cpu_ms"]
            print("  live path CPU ms per frame (thread CPU time): " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
                  + f" -> {1000 / cpu['total']:.1f} frames/s per core; 25 frames/s needs {cpu['total'] * 25 / 1000:.2f} cores")
    finally:
        app.extensions["greenroom"].shutdown()
        server.close()


if __name__ == "__main__":
    from greenroom.server.cli import exit_now
    main()
    exit_now()  # the in-process server's daemon threads must not meet the interpreter's teardown
