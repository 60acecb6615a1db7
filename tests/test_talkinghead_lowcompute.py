"""The low_compute mode (real THA3 weights on the CPU, real HTTP): the feed runs at its rate while
the pose cache fills, blinks and talking move eyes and mouth, emotions reach the feed, and a
restarted server reuses the on-disk cache."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
import requests

from greenroom_modules.talkinghead import pose as P
from greenroom_modules.talkinghead.renderers import _nearest_pair

from .server_process import ServerProcess
from .test_talkinghead import FACE, FeedReader, face_difference, frame, rgba, wait_for

EYES = (slice(125, 165), slice(210, 300))  # where lambda_00's eyes and mouth change (measured)
MOUTH = (slice(168, 192), slice(238, 278))


def start(folder) -> ServerProcess:
    config = folder / "plugins.toml"
    if not config.exists():
        config.write_text(f'[modules.talkinghead]\nmode = "low_compute"\nbackground_nice = 0\ncache_dir = "{folder / "cache"}"\n')
    return ServerProcess(["--config", str(config), "--enable-modules=talkinghead"])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("lowcompute")


@pytest.fixture(scope="module")
def server(folder):
    proc = start(folder)
    yield proc
    proc.stop()


def status(url: str, iid: str = "default") -> dict:
    return requests.get(f"{url}/api/talkinghead/status", params={"instance_id": iid}).json()


def test_feed_keeps_sending_new_frames_while_the_cache_fills(server):
    url = server.url
    r = requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_00"})
    assert r.json()["mode"] == "low_compute"
    feed = requests.get(f"{url}/api/talkinghead/result_feed", stream=True, timeout=30)
    try:
        reader = FeedReader(feed)
        reader.parts(1)  # the feed starts at once, from the unposed character if nothing is cached yet
        parts = reader.parts(60)
    finally:
        feed.close()
    s = status(url)
    assert s["cache"]["fill"] < 1.0 and s["cache"]["pending"] > 0  # still precomputing emotions
    seqs = [int(headers["x-frame-seq"]) for headers, _ in parts]
    assert len(set(seqs)) > 40, seqs  # new frames while the cache fills (a repeat is a 1-s keep-alive)
    assert len({data for _, data in parts}) >= 2  # a live picture, not one frame re-sent
    assert s["stage_ms"]["warp_ms"] is not None and s["stage_ms"]["encode"] is not None
    wait_for(lambda: status(url)["frames"]["encoded"] > 10)


@pytest.mark.slow
def test_blinking_and_talking_move_eyes_and_mouth(server):
    url = server.url
    requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_00"})
    requests.post(f"{url}/api/talkinghead/load_animator_settings",
                  json={"postprocessor_chain": [], "sway_macro_strength": 0, "blink_probability": 1.0,
                        "blink_interval_min": 0.3, "blink_interval_max": 0.3, "target_fps": 25})
    # The neutral face, its blink and talking layers, its body and breathing come first in the background
    # queue; all must be there, or one arriving mid-capture moves the whole picture (clothes included).
    def neutral_set(cache: dict) -> bool:
        return cache["face_layers"] >= 3 and cache["faces"] >= 1 and cache["body_poses"] >= 1 and cache["breathing"]
    wait_for(lambda: neutral_set(status(url)["cache"]), timeout=300)
    requests.get(f"{url}/api/talkinghead/start_talking")
    frames = []
    for _ in range(40):
        frames.append(frame(url, "default"))
        time.sleep(0.05)
    requests.get(f"{url}/api/talkinghead/stop_talking")
    stack = np.stack(frames)
    eye_motion = stack[:, EYES[0], EYES[1], :3].std(axis=0).mean()
    mouth_motion = stack[:, MOUTH[0], MOUTH[1], :3].std(axis=0).mean()
    still = stack[:, 400:500, 100:200, :3].std(axis=0).mean()  # clothes: only breathing moves them
    assert eye_motion > 1.0 and mouth_motion > 1.0, (eye_motion, mouth_motion, still)
    assert min(eye_motion, mouth_motion) > 1.5 * still, (eye_motion, mouth_motion, still)


@pytest.mark.slow
def test_emotion_change_reaches_the_feed(server):
    url = server.url
    requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_00"})
    requests.post(f"{url}/api/talkinghead/load_animator_settings",
                  json={"postprocessor_chain": [], "sway_macro_strength": 0, "blink_probability": 0.0})
    time.sleep(1.0)
    before = frame(url, "default")
    requests.post(f"{url}/api/talkinghead/set_emotion", json={"emotion_name": "surprise"})
    feed = requests.get(f"{url}/api/talkinghead/result_feed", stream=True, timeout=30)
    try:
        reader = FeedReader(feed)
        wait_for(lambda: face_difference(before, rgba(reader.parts(1)[0][1])) > 4.0, timeout=300, interval=0)
    finally:
        feed.close()


@pytest.mark.slow
def test_restart_reuses_the_disk_cache(server, folder):
    url = server.url
    requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_00"})
    wait_for(lambda: status(url)["cache"]["body_poses"] >= 1 and status(url)["cache"]["faces"] >= 1, timeout=300)
    cache = status(url)["cache"]
    rendered_before = cache["body_poses"] + cache["faces"] + cache["face_layers"]
    server.stop()
    again = start(folder)
    try:
        requests.post(f"{again.url}/api/talkinghead/load", data={"character": "lambda_00"})
        cache = status(again.url)["cache"]
        jobs = requests.get(f"{again.url}/api/modules/talkinghead").json()["status"]["worker"]["jobs_done"]
        assert cache["body_poses"] + cache["faces"] + cache["face_layers"] >= rendered_before > jobs
        wait_for(lambda: requests.get(f"{again.url}/api/modules/talkinghead").json()["status"]["cache"]["disk_reads"] > 0,
                 timeout=30)
    finally:
        again.stop()


def test_nearest_pair_interpolates_along_a_segment():
    keys = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    i, j, t, d = _nearest_pair(keys, np.array([0.3, 0.0]))
    assert (i, j) == (0, 1) and abs(t - 0.3) < 1e-6 and d < 1e-6
    assert _nearest_pair(keys, np.array([0.0, 0.0]))[:3] == (0, 0, 0.0)


def test_face_regions_are_where_the_tests_look():
    assert FACE[0].start < EYES[0].start < MOUTH[0].start < FACE[0].stop
    assert len(P.EXPRESSION) + len(P.WINK) + len(P.MOUTH_OPEN) == 39


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling classes")
def test_background_jobs_the_picture_does_not_wait_for_run_in_the_idle_class():
    """Optional jobs (other emotions, new sway poses) get only CPU time the live feeds leave; what the
    picture waits for runs at the worker's nice value, and ``idle`` puts everything in SCHED_IDLE."""
    from greenroom_modules.talkinghead.cache import PoseWorker
    from greenroom_modules.talkinghead.renderers import EMOTION_BODY, EMOTION_FACE, GATE, NOW, TARGET

    def policy_of(worker: PoseWorker, priority: int) -> int:
        seen: list[int] = []
        worker.submit(("test", priority, len(seen)), priority, lambda: seen.append(os.sched_getscheduler(0)))
        wait_for(lambda: seen, 10)
        return seen[0]

    worker = PoseWorker(nice=0, idle_from=EMOTION_FACE)
    try:
        assert policy_of(worker, NOW) == os.SCHED_OTHER
        assert policy_of(worker, GATE) == os.SCHED_IDLE
        assert policy_of(worker, EMOTION_BODY) == os.SCHED_IDLE
        if os.geteuid() == 0:  # unprivileged, leaving SCHED_IDLE needs RLIMIT_NICE: the worker stays idle
            assert policy_of(worker, TARGET) == os.SCHED_OTHER
    finally:
        worker.stop()
    worker = PoseWorker(nice=0, idle=True, idle_from=EMOTION_FACE)
    try:
        assert policy_of(worker, NOW) == os.SCHED_IDLE
    finally:
        worker.stop()
