"""Batched full posing (issue 16): exact against single poses, routed to the right instance, no wait for a
lone instance, nothing leaked when instances come and go while batches run, admission by capacity.

Everything runs the real THA3 weights on the CPU; nothing here depends on how fast the machine is.
"""
from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest
import requests
import torch

from greenroom.config import HostConfig, ServerSettings
from greenroom_modules.talkinghead import encoding
from greenroom_modules.talkinghead import pose as P
from greenroom_modules.talkinghead.batcher import LIVE_SECONDS, PoseBatcher, new_client
from greenroom_modules.talkinghead.images import CHARACTERS, load_named
from greenroom_modules.talkinghead.poser import SharedPoser, resolve_dtype, to_frame

from .server_process import InProcessServer

FACE = (slice(60, 200), slice(190, 330))  # rows, cols of the face in a 512x512 frame
EMOTIONS = ("joy", "anger", "surprise", "sadness")
STILL = {"postprocessor_chain": [], "blink_probability": 0.0, "sway_macro_strength": 0.0,
         "sway_micro_strength": 0.0, "pose_interpolator_step": 1.0, "target_fps": 5}


@pytest.fixture(scope="module")
def poser():
    return SharedPoser("separable_float", "cpu")


@pytest.fixture(scope="module")
def characters(poser):
    return [poser.character(load_named(name, CHARACTERS), name) for name in ("lambda_00", "lambda_01")]


def random_poses(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    poses = rng.uniform(0.0, 1.0, (count, 45)).astype(np.float32) * 0.8
    poses[:, P.ROTATION] = rng.uniform(-0.6, 0.6, (count, len(P.ROTATION)))
    return poses


def test_dtype_on_cpu_is_float32():
    for requested in ("auto", "float16", "bfloat16", "float32"):
        assert resolve_dtype(torch.device("cpu"), requested) == torch.float32


def test_a_batch_over_two_characters_equals_single_poses(poser, characters):
    a, b = characters
    chars, poses = [a, b, a], random_poses(3)
    singles = torch.cat([poser.pose(c, p) for c, p in zip(chars, poses)])
    batch = poser.pose_batch(chars, poses)
    assert batch.shape == (3, 4, 512, 512)
    assert (batch - singles).abs().max().item() < 2e-3
    # the frames really differ (character and pose), so equality above says something
    assert (singles[0] - singles[1]).abs().mean().item() > 0.01 and (singles[0] - singles[2]).abs().mean().item() > 0.01
    # padded to a fixed size (as with compile or CUDA graphs): the extra frame is dropped, the rest unchanged
    poser.fixed_sizes = (4,)
    try:
        assert poser.padded_size(3) == 4
        padded = poser.pose_batch(chars, poses)
    finally:
        poser.fixed_sizes = ()
    assert padded.shape == (3, 4, 512, 512) and (padded - singles).abs().max().item() < 2e-3


def test_a_lone_request_goes_without_waiting(poser, characters):
    """One live client: its request goes at once ("all_in"), even with a deadline of a minute."""
    batcher = PoseBatcher(poser, max_batch=4, wait_ms=60_000)
    try:
        pose = random_poses(1, seed=1)[0]
        image = batcher.pose(new_client(), characters[0], pose)
        assert batcher.last.reason == "all_in" and batcher.last.size == 1 and image.shape == (4, 512, 512)
        # a second live client that has nothing pending: a lone request now waits for it, up to the deadline
        other, alone = new_client(), new_client()
        batcher.pose(other, characters[1], pose)
        batcher.configure(max_batch=4, wait_ms=300)
        batcher.pose(alone, characters[0], pose)
        assert batcher.last.reason == "deadline" and batcher.last.waited_s >= 0.3
        # two requests waiting while a batch runs (the test holds the poser's lock meanwhile): they go
        # together as soon as the batch is done, since together they fill max_batch
        batcher.configure(max_batch=2, wait_ms=60_000)
        with poser.lock:
            first = threading.Thread(target=batcher.pose, args=(new_client(), characters[1], pose))
            first.start()
            wait_for(lambda: batcher.in_flight == 1, interval=0.01)  # taken, and blocked on the lock
            threads = [threading.Thread(target=batcher.pose, args=(c, characters[0], pose)) for c in (other, alone)]
            for t in threads:
                t.start()
            wait_for(lambda: batcher.pending() == 2, interval=0.01)
        for t in (first, *threads):
            t.join()
        assert batcher.last.reason == "full" and batcher.last.size == 2
        assert batcher.stats()["batch_sizes_seen"] == {"1": 4, "2": 1}
    finally:
        batcher.close()
    assert not batcher._thread.is_alive()


# -- instances through the server ----------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    config = HostConfig(server=ServerSettings(enable_modules=["talkinghead"], api_key_file=str(folder / "key.txt")),
                        modules={"talkinghead": {"cache_dir": "", "precompute_emotions": False, "mode": "full",
                                                 "max_batch": 4, "max_instances": 8, "animator": STILL}},
                        source="test.toml")
    srv = InProcessServer(config)
    yield srv
    srv.stop()


def load(url: str, character: str) -> str:
    r = requests.post(f"{url}/api/talkinghead/load", data={"character": character, "new": "true"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["instance_id"]


def status(url: str, iid: str) -> dict:
    return requests.get(f"{url}/api/talkinghead/status", params={"instance_id": iid}, timeout=30).json()


def wait_for(predicate, timeout: float = 600, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.mark.slow
def test_four_instances_with_different_emotions_get_their_own_frames(server):
    url, module = server.url, server.module()
    characters = ("lambda_00", "lambda_01", "lambda_00", "lambda_01")
    ids = [load(url, name) for name in characters]
    try:
        for iid, emotion in zip(ids, EMOTIONS):
            r = requests.post(f"{url}/api/talkinghead/set_emotion", json={"instance_id": iid, "emotion_name": emotion})
            assert r.status_code == 200, r.text
        base = {iid: status(url, iid)["frames"]["rendered"] for iid in ids}
        # the third frame rendered after the emotion was set: its pose was taken after the change
        wait_for(lambda: all(status(url, iid)["frames"]["rendered"] >= base[iid] + 3 for iid in ids))
        got = {iid: encoding_rgba(requests.get(f"{url}/api/talkinghead/frame", params={"instance_id": iid}).content)
               for iid in ids}
        templates = module.default_templates()
        chars = [module.posing.named_character(name) for name in characters]
        expected = module.poser.pose_batch(chars, np.stack([templates[e] for e in EMOTIONS]))
        expected = [encoding.to_srgb8(to_frame(image.unsqueeze(0))).astype(np.float32) for image in expected]
        for i, iid in enumerate(ids):
            distances = [np.abs(got[iid][FACE] - e[FACE]).mean() for e in expected]
            assert int(np.argmin(distances)) == i, (EMOTIONS[i], distances)
        stats = module.manager.batcher.stats()
        assert max(int(size) for size in stats["batch_sizes_seen"]) >= 2, stats  # they were posed together
        assert stats["max_pending"] <= len(ids), stats  # one request per instance at most: no backlog
    finally:
        for iid in ids:
            requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": iid})


def encoding_rgba(data: bytes) -> np.ndarray:
    import io

    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32)


def live_tensors() -> int:
    gc.collect()
    return sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects())  # type(): no lazy attribute access


def instance_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("th-render", "th-output"))]


def test_instances_come_and_go_while_batches_run_and_leave_nothing(server):
    url, manager = server.url, server.module().manager
    batcher = manager.batcher
    requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": load(url, "lambda_00")})  # warm: imports
    wait_for(lambda: batcher.pending() == 0 and not instance_threads())
    threads, tensors = set(threading.enumerate()), live_tensors()
    first = batcher.stats()["batches"]
    ids = [load(url, "lambda_00"), load(url, "lambda_01")]
    wait_for(lambda: batcher.stats()["batches"] > first)
    # one goes while its next frame is pending or being posed; another comes; frames keep coming
    requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": ids.pop(0)})
    ids.append(load(url, "lambda_00"))
    served = batcher.stats()["frames"]
    wait_for(lambda: batcher.stats()["frames"] >= served + 2)
    for iid in ids:
        assert requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": iid}).status_code == 200
    assert manager.all() == [] and batcher.pending() == 0
    assert not instance_threads()
    assert set(threading.enumerate()) <= threads
    time.sleep(LIVE_SECONDS + 0.1)
    assert batcher.live_clients() == 0
    assert live_tensors() <= tensors


def test_status_reports_device_dtype_batching_and_memory(server):
    info = requests.get(f"{server.url}/api/modules/talkinghead", timeout=30).json()
    status = info["status"]
    assert status["poser"]["device"] == "cpu" and status["poser"]["dtype"] == "float32"
    assert status["gpu_memory"] == {"in_use_mb": None, "peak_mb": None}
    batching = status["batching"]
    assert batching["max_batch"] == 4 and {"batch_sizes_seen", "mean_fill", "stage_ms"} <= batching.keys()
    assert 0.0 <= batching["mean_fill"] <= 1.0
    assert status["capacity"]["sustainable_fps"] is None  # a CPU has no admission by capacity


def test_admission_refuses_instances_beyond_the_measured_capacity(server):
    """On a GPU the start-up measure sets the capacity; here it is set by hand to 7 frames/s."""
    url, manager = server.url, server.module().manager
    manager.measured_fps = 7.0
    ids = []
    try:
        ids.append(load(url, "lambda_00"))  # 5 frames/s fit
        r = requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_00", "new": "true"})
        assert r.status_code == 429, r.text
        assert "sustains about 7 full-mode frames/s" in r.json()["error"] and "low_compute" in r.json()["error"]
        # a paused instance asks nothing of the poser: the next one fits again
        requests.post(f"{url}/api/talkinghead/stop", json={"instance_id": ids[0]})
        ids.append(load(url, "lambda_00"))
    finally:
        manager.measured_fps = None
        for iid in ids:
            requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": iid})
