"""How many full-mode 512x512 avatars one device keeps at 25 distinct frames/s each: batched posing against
the same code at batch size 1, in one run, with the default postprocessor chain and real HTTP feeds.

For each setting (``max_batch`` = --max-batch, then 1) a fresh server starts (``server.py``, a separate
process, so this script's feed readers do not take its CPU) and avatars are added step by step
(1, 2, 4, 6, 8, ...), each talking, each feed read over HTTP at 25 parts/s. A step passes when every
avatar's feed brought at least --fraction x 25 *distinct* frames per second (a part that differs from
the one before). The search stops at the first step that fails; then, at a fixed count of avatars
(--ratio-avatars), both settings are measured once more for the ratio of their total distinct
frames/s.

Per step it prints: distinct frames/s per avatar (min and mean) and in total, feed parts/s, the
server's CPU (cores busy), GPU utilisation (nvidia-smi, when present) and memory (torch's allocator, in
use and peak), batch fill, and the stage times (batch wait / forward / transfer from the batcher,
pose / postprocess / encode per instance). --json writes everything.

GPU (see the README for the CUDA set-up):
    .venv/bin/python bench/gpu_avatars.py --device cuda --json gpu_avatars.json
CPU (25 frames/s is out of reach: the count is 0 and the ratio is the figure):
    .venv/bin/python bench/gpu_avatars.py --device cpu --ratio-avatars 4 --seconds 60 --settle 20
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from greenroom.resources import cuda_available  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402

TARGET_FPS = 25


class Feed(threading.Thread):
    """Reads one avatar's multipart feed: parts received, and distinct frames among them.

    A PNG ends with its last IDAT chunk's CRC and IEND; that CRC covers the zlib stream's closing
    checksum of the whole image, so the last 64 bytes tell two frames apart without hashing them.
    """

    def __init__(self, url: str, instance_id: str) -> None:
        super().__init__(name=f"feed-{instance_id[:8]}", daemon=True)
        self.url, self.instance_id = url, instance_id
        self.parts = self.distinct = 0
        self.error: str | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            with requests.get(f"{self.url}/api/talkinghead/result_feed", params={"instance_id": self.instance_id},
                              stream=True, timeout=(10, 600)) as response:  # the first pose may take a while
                buf, last = bytearray(), b""
                for chunk in response.iter_content(1 << 18):
                    if self.stopping.is_set():
                        return
                    buf += chunk
                    while (head := buf.find(b"\r\n\r\n")) >= 0:
                        lines = bytes(buf[:head]).decode("latin-1").split("\r\n")
                        length = next(int(line.split(":", 1)[1]) for line in lines
                                      if line.lower().startswith("content-length"))
                        end = head + 4 + length
                        if len(buf) < end + 2:
                            break
                        tail = bytes(buf[end - 64:end])
                        self.parts += 1
                        if tail != last:
                            self.distinct, last = self.distinct + 1, tail
                        del buf[:end + 2]
        except Exception as exc:  # reported in the step's line; the bench goes on
            if not self.stopping.is_set():
                self.error = f"{type(exc).__name__}: {exc}"


class Avatar:
    """One full-mode instance that talks, with its feed being read."""

    def __init__(self, url: str, character: str) -> None:
        r = requests.post(f"{url}/api/talkinghead/load", data={"character": character, "new": "true"}, timeout=120)
        r.raise_for_status()
        self.url, self.id = url, r.json()["instance_id"]
        requests.post(f"{url}/api/talkinghead/start_talking", params={"instance_id": self.id}, timeout=30)
        self.feed = Feed(url, self.id)
        self.feed.start()

    def status(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/api/talkinghead/status", params={"instance_id": self.id}, timeout=30).json()

    def close(self) -> None:
        self.feed.stopping.set()
        requests.post(f"{self.url}/api/talkinghead/unload", json={"instance_id": self.id}, timeout=120)
        self.feed.join(timeout=10)


class GpuSampler(threading.Thread):
    """nvidia-smi's utilisation of one GPU, sampled every 0.5 s while running (nothing without nvidia-smi)."""

    def __init__(self, index: int) -> None:
        super().__init__(daemon=True)
        self.index, self.samples = index, []
        self.stopping = threading.Event()

    def run(self) -> None:
        if shutil.which("nvidia-smi") is None:
            return
        while not self.stopping.wait(0.5):
            out = subprocess.run(["nvidia-smi", "-i", str(self.index), "--query-gpu=utilization.gpu",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip().isdigit():
                self.samples.append(int(out.stdout.strip()))

    def mean(self) -> float | None:
        return round(sum(self.samples) / len(self.samples), 1) if self.samples else None


def start_server(args: argparse.Namespace, max_batch: int, folder: Path) -> ServerProcess:
    config = folder / f"plugins-{max_batch}.toml"
    streams = 4 * args.max_avatars + 8
    config.write_text(f"""[server]
threads = 16
max_streams = {streams}
max_streams_per_client = {streams}

[modules.talkinghead]
mode = "full"
max_batch = {max_batch}
admission = false
max_instances = {args.max_avatars + 4}
cache_dir = ""
precompute_emotions = false
""")
    device = ["--cuda", "--cuda-device", args.cuda_device] if args.device == "cuda" else ["--cpu"]
    return ServerProcess(["--config", str(config), "--enable-modules=talkinghead", "--api-key-file",
                          str(folder / "key.txt"), *device], log_path=folder / f"server-{max_batch}.log")


def module_status(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/api/modules/talkinghead", timeout=30).json()["status"]


def measure(server: ServerProcess, avatars: list[Avatar], args: argparse.Namespace) -> dict[str, Any]:
    """One measuring window over the avatars now running (after --settle seconds)."""
    time.sleep(args.settle)
    proc = psutil.Process(server.proc.pid)
    gpu = GpuSampler(int(args.cuda_device.partition(":")[2] or 0))
    before_feed = [(a.feed.distinct, a.feed.parts) for a in avatars]
    before_status = [a.status()["frames"]["encoded"] for a in avatars]
    before_batch = module_status(server.url)["batching"]
    cpu0, t0 = sum(proc.cpu_times()[:2]), time.perf_counter()
    gpu.start()
    time.sleep(args.seconds)
    gpu.stopping.set()
    elapsed, cpu = time.perf_counter() - t0, sum(proc.cpu_times()[:2]) - cpu0
    after_feed = [(a.feed.distinct, a.feed.parts) for a in avatars]
    statuses = [a.status() for a in avatars]
    module = module_status(server.url)
    batching = module["batching"]
    distinct = [(d1 - d0) / elapsed for (d0, _), (d1, _) in zip(before_feed, after_feed)]
    parts = sum(p1 - p0 for (_, p0), (_, p1) in zip(before_feed, after_feed)) / elapsed
    encoded = [(s["frames"]["encoded"] - e0) / elapsed for s, e0 in zip(statuses, before_status)]
    batches = batching["batches"] - before_batch["batches"]
    frames = batching["frames"] - before_batch["frames"]
    stage = lambda k: round(sum(s["stage_ms"].get(k) or 0 for s in statuses) / len(statuses), 1)  # noqa: E731
    return {
        "avatars": len(avatars),
        "sustained": min(distinct) >= args.fraction * TARGET_FPS,
        "distinct_fps_min": round(min(distinct), 2), "distinct_fps_mean": round(sum(distinct) / len(distinct), 2),
        "distinct_fps_total": round(sum(distinct), 2), "encoded_fps_total": round(sum(encoded), 2),
        "feed_parts_per_s": round(parts, 1), "server_cores_busy": round(cpu / elapsed, 2),
        # CPU per distinct frame: the figure a busy shared machine disturbs least
        "server_cpu_ms_per_frame": round(1000 * cpu / max(sum(encoded) * elapsed, 1), 1),
        "gpu_utilisation_pct": gpu.mean(), "gpu_memory_mb": module["gpu_memory"],
        "mean_batch_size": round(frames / batches, 2) if batches else 0.0,
        "batch_stage_ms": batching["stage_ms"],
        "instance_stage_ms": {k: stage(k) for k in ("pose", "postprocess", "encode", "frame")},
        "feed_errors": [a.feed.error for a in avatars if a.feed.error],
    }


def describe(step: dict[str, Any], label: str = "") -> str:
    b, i = step["batch_stage_ms"], step["instance_stage_ms"]
    memory = step["gpu_memory_mb"]
    return (f"  {label}{step['avatars']:3d} avatars: distinct frames/s per avatar min {step['distinct_fps_min']:.1f} "
            f"mean {step['distinct_fps_mean']:.1f} (total {step['distinct_fps_total']:.1f}, feed parts "
            f"{step['feed_parts_per_s']:.0f}/s) {'OK' if step['sustained'] else 'below target'}; "
            f"server {step['server_cores_busy']:.1f} cores, {step['server_cpu_ms_per_frame']} CPU ms/frame; GPU {step['gpu_utilisation_pct']}% "
            f"{memory['in_use_mb']}/{memory['peak_mb']} MiB (in use/peak); batch {step['mean_batch_size']:.2f}; "
            f"batch ms wait {b['wait']} forward {b['forward']} transfer {b['transfer']}; instance ms pose "
            f"{i['pose']} postprocess {i['postprocess']} encode {i['encode']}"
            + (f"; feed errors: {step['feed_errors']}" if step["feed_errors"] else ""))


def ramp(limit: int) -> list[int]:
    return [n for n in (1, 2, 4, *range(6, limit + 1, 2)) if n <= limit]


def run_setting(args: argparse.Namespace, max_batch: int, folder: Path) -> dict[str, Any]:
    print(f"max_batch {max_batch}:", flush=True)
    server = start_server(args, max_batch, folder)
    avatars: list[Avatar] = []
    characters = ("lambda_00", "lambda_01")
    try:
        module = module_status(server.url)
        print(f"  poser {module['poser']}", flush=True)
        steps = []
        for count in ramp(args.max_avatars):
            while len(avatars) < count:
                avatars.append(Avatar(server.url, characters[len(avatars) % 2]))
            steps.append(measure(server, avatars, args))
            print(describe(steps[-1]), flush=True)
            if not steps[-1]["sustained"]:
                break
        while len(avatars) > args.ratio_avatars:
            avatars.pop().close()
        while len(avatars) < args.ratio_avatars:
            avatars.append(Avatar(server.url, characters[len(avatars) % 2]))
        at_ratio = measure(server, avatars, args)
        print(describe(at_ratio, "ratio point, "), flush=True)
        sustained = max((s["avatars"] for s in steps if s["sustained"]), default=0)
        return {"max_batch": max_batch, "poser": module["poser"], "steps": steps, "sustained_avatars": sustained,
                "at_ratio": at_ratio, "batching": module_status(server.url)["batching"]}
    finally:
        for avatar in avatars:
            avatar.close()
        server.stop(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if cuda_available() else "cpu")
    parser.add_argument("--cuda-device", default="cuda:0")
    parser.add_argument("--max-batch", type=int, default=16, help="the batched setting's max_batch")
    parser.add_argument("--max-avatars", type=int, default=32, help="the search stops here")
    parser.add_argument("--ratio-avatars", type=int, default=8, help="avatars at which both settings are compared")
    parser.add_argument("--fraction", type=float, default=0.96, help="a step passes at fraction x 25 distinct fps")
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring window per step")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before each window (first poses, feeds)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the servers are stopped on the way out
    print(f"device {args.device}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"target {TARGET_FPS} distinct frames/s per avatar", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu-avatars-") as tmp:
        results = {str(m): run_setting(args, m, Path(tmp)) for m in (args.max_batch, 1)}
    batched, single = results[str(args.max_batch)], results["1"]
    ratio = batched["at_ratio"]["distinct_fps_total"] / max(single["at_ratio"]["distinct_fps_total"], 1e-9)
    print(f"avatars at {TARGET_FPS} distinct frames/s: batched (max_batch {args.max_batch}) "
          f"{batched['sustained_avatars']}, batch size 1 {single['sustained_avatars']}")
    cpu_ratio = single["at_ratio"]["server_cpu_ms_per_frame"] / max(batched["at_ratio"]["server_cpu_ms_per_frame"], 1e-9)
    print(f"at {args.ratio_avatars} avatars, total distinct frames/s: batched {batched['at_ratio']['distinct_fps_total']:.2f}, "
          f"batch size 1 {single['at_ratio']['distinct_fps_total']:.2f}; ratio {ratio:.2f} "
          f"(server CPU per frame, batch size 1 / batched: {cpu_ratio:.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results, "ratio": ratio,
                                                "cpu_per_frame_ratio": cpu_ratio}, indent=1))


if __name__ == "__main__":
    main()
