"""The pose editor's server side through real HTTP: POST /api/talkinghead/pose (real THA3 on the CPU),
its request coalescing, and named emotion sets under the sets folder.

The server runs in this process (waitress on a free 127.0.0.1 port) so that the coalescing test can hold
the poser busy and release it at a moment it chooses: the order of events is forced, not timed.
"""
from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from greenroom.config import HostConfig, ServerSettings
from greenroom_modules.talkinghead import pose as P
from greenroom_modules.talkinghead.templates_store import SETS_DIR_ENV, StoreError, TemplateStore, check_name

from .server_process import ROOT, InProcessServer

# THA3 morphs the face inside rows 32-224, cols 160-352; the body editor smooths a little beyond (the chin).
HEAD_BOX = (slice(16, 260), slice(144, 368))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sets_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pose") / "sets"
    old = os.environ.get(SETS_DIR_ENV)
    os.environ[SETS_DIR_ENV] = str(folder)
    yield folder
    if old is None:
        os.environ.pop(SETS_DIR_ENV, None)
    else:
        os.environ[SETS_DIR_ENV] = old


@pytest.fixture(scope="module")
def server(sets_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pose-server")
    config = HostConfig(server=ServerSettings(enable_modules=["talkinghead"], api_key_file=str(folder / "key.txt")),
                        modules={"talkinghead": {"cache_dir": str(folder / "cache"), "precompute_emotions": False}},
                        source="test.toml")
    srv = InProcessServer(config)
    yield srv
    srv.stop()


def pose(url: str, morphs: dict, **fields) -> requests.Response:
    return requests.post(f"{url}/api/talkinghead/pose", json={"character": "lambda_00", "pose": morphs, **fields},
                         timeout=600)


def pixels(response: requests.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG" and image.mode == "RGBA" and image.size == (512, 512)
    return np.asarray(image, dtype=np.float32)


def centroid(diff: np.ndarray) -> tuple[float, float]:
    total = diff.sum()
    ys, xs = np.indices(diff.shape)
    return float((diff * ys).sum() / total), float((diff * xs).sum() / total)


def wait_until(predicate, timeout: float = 600) -> None:
    """Wait for a state (not a duration); the timeout only ends a hung test."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "state not reached"
        time.sleep(0.02)


# -- the pose endpoint ----------------------------------------------------------------------------

def test_pose_is_a_512_rgba_png_and_repeats_come_from_the_cache(server):
    first = pose(server.url, {})
    image = pixels(first)
    assert image[0, 0, 3] == 0 and image[300, 256, 3] > 200  # transparent background, opaque character
    assert first.headers["X-Pose-Cache"] == "miss" and first.headers["X-Pose-Superseded"] == "0"
    again = pose(server.url, {})
    assert again.headers["X-Pose-Cache"] == "hit" and again.content == first.content


def test_a_changed_morph_changes_the_right_region(server):
    base = pixels(pose(server.url, {}))
    regions = {}
    for morph in ("eye_wink_left_index", "eye_wink_right_index", "mouth_aaa_index"):
        diff = np.abs(pixels(pose(server.url, {morph: 1.0})) - base).sum(axis=-1)
        diff[diff <= 10] = 0  # visible changes only: the body editor shifts far pixels by a level or two
        assert diff.sum() > 0, morph
        assert diff[HEAD_BOX].sum() / diff.sum() > 0.99, f"{morph} changed pixels outside the head"
        regions[morph] = centroid(diff)
    (left_y, left_x), (right_y, right_x) = regions["eye_wink_left_index"], regions["eye_wink_right_index"]
    mouth_y, mouth_x = regions["mouth_aaa_index"]
    assert left_x > right_x + 20  # the character's left eye is on the image's right
    assert abs(left_y - right_y) < 10
    assert mouth_y > max(left_y, right_y) + 15  # the mouth is below the eyes ...
    assert right_x < mouth_x < left_x           # ... and between them


@pytest.mark.parametrize("body, status, field", [
    ({"pose": {"eye_wink_middle_index": 1}}, 400, "eye_wink_middle_index"),
    ({"pose": {"head_x_index": 1.5}}, 400, "head_x_index"),
    ({"pose": {"eye_wink_left_index": -0.1}}, 400, "eye_wink_left_index"),
    ({"pose": {"mouth_aaa_index": "wide"}}, 400, None),
    ({"pose": [1, 2]}, 400, None),
    ({"pose": {}, "eye_wink_left_index": 1}, 400, None),          # morphs belong in "pose"
    ({"pose": {}, "character": "../lambda_00"}, 400, None),
    ({"pose": {}, "character": "nobody"}, 404, "character"),
    ({"pose": {}, "character": "lambda_00", "instance_id": "x"}, 400, "character"),
    ({"pose": {}, "character": None, "instance_id": "missing"}, 404, None),
    ({"pose": {}, "character": None}, 400, "character"),        # no default instance in this server yet
    ({"pose": {}, "channel": "a b"}, 400, None),
])
def test_bad_pose_requests(server, body, status, field):
    body = {"character": "lambda_00", **body}
    r = requests.post(f"{server.url}/api/talkinghead/pose", json=body, timeout=60)
    assert r.status_code == status, r.text
    assert "error" in r.json()
    if field:
        assert r.json().get("field") == field and field in r.json()["error"]


def test_non_finite_values_are_rejected(server):
    r = requests.post(f"{server.url}/api/talkinghead/pose", data='{"character": "lambda_00", "pose": '
                      '{"head_x_index": NaN}}', headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 400 and "head_x_index" in r.json()["error"]


def test_concurrent_requests_on_one_channel_coalesce(server):
    """While a render is held up, three more requests arrive: only the newest is rendered, and the two it
    replaced are answered with its image. The poser lock is held by the test, so the order is forced."""
    stats = server.posing.stats
    before = stats()
    poses = [{"iris_small_left_index": v, "iris_small_right_index": v} for v in (0.11, 0.22, 0.33, 0.44)]
    results: dict[int, requests.Response] = {}

    def send(i: int) -> None:
        results[i] = pose(server.url, poses[i], channel="coalesce-test")

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    with server.poser.lock:  # the poser is busy (as with an avatar rendering): request 0 blocks inside it
        threads[0].start()
        wait_until(lambda: stats()["requests"] == before["requests"] + 1 and stats()["channels"].get("coalesce-test"))
        for i in (1, 2, 3):
            threads[i].start()
            wait_until(lambda i=i: stats()["requests"] == before["requests"] + 1 + i)
        now = stats()
        assert now["channels"]["coalesce-test"] == 2  # one rendering, one waiting
        assert now["superseded"] == before["superseded"] + 2
        assert now["renders"] == before["renders"]  # nothing finished while the poser was held
    for thread in threads:
        thread.join(600)
    after = stats()
    assert after["renders"] == before["renders"] + 2  # requests 0 and 3; never 1 or 2
    assert "coalesce-test" not in after["channels"]
    images = [pixels(results[i]) for i in range(4)]
    superseded = [results[i].headers["X-Pose-Superseded"] for i in range(4)]
    assert superseded == ["0", "1", "1", "0"]
    assert results[1].content == results[2].content == results[3].content
    assert results[1].headers["X-Pose-Rendered-Seq"] == results[3].headers["X-Pose-Seq"]
    assert np.abs(images[0] - images[3]).sum() > 0  # request 0 got its own pose, not the newest


def test_other_channels_do_not_coalesce(server):
    """Two editors (channels) each get their own pose even when their requests overlap."""
    a, b = {"iris_rotation_x_index": 0.5}, {"iris_rotation_x_index": -0.5}
    results = {}
    with server.poser.lock:
        threads = [threading.Thread(target=lambda k=k, p=p: results.__setitem__(k, pose(server.url, p, channel=k)))
                   for k, p in (("one", a), ("two", b))]
        for thread in threads:
            thread.start()
        wait_until(lambda: {"one", "two"} <= set(server.posing.stats()["channels"]))
    for thread in threads:
        thread.join(600)
    assert results["one"].headers["X-Pose-Superseded"] == results["two"].headers["X-Pose-Superseded"] == "0"
    assert results["one"].content != results["two"].content


# -- named emotion sets ---------------------------------------------------------------------------

ANGRY = {"anger": {"eyebrow_angry_left_index": 1.0, "eyebrow_angry_right_index": 1.0, "mouth_lowered_corner_left_index": 0.5,
                   "mouth_lowered_corner_right_index": 0.5, "head_x_index": -0.3}, "joy": {"pose": {"eye_happy_wink_left_index": 1}}}


def test_save_list_load_and_delete_an_emotion_set(server, sets_dir):
    url = server.url
    r = requests.put(f"{url}/api/talkinghead/emotion_sets/angry-lambda", json=ANGRY, params={"overwrite": "false"})
    assert r.status_code == 200 and r.json() == {"name": "angry-lambda", "created": True, "emotions": 2}
    saved = json.loads((sets_dir / "angry-lambda.json").read_text())
    assert saved["anger"]["eyebrow_angry_left_index"] == 1.0 and saved["joy"] == {"eye_happy_wink_left_index": 1.0}
    assert P.parse_templates(saved)  # the stored file is what load_emotion_templates accepts
    names = [s["name"] for s in requests.get(f"{url}/api/talkinghead/emotion_sets").json()["sets"]]
    assert names[0] == "default" and "angry-lambda" in names
    assert requests.get(f"{url}/api/talkinghead/emotion_sets/angry-lambda").json() == saved
    again = requests.put(f"{url}/api/talkinghead/emotion_sets/angry-lambda", json=ANGRY, params={"overwrite": "false"})
    assert again.status_code == 409
    replaced = requests.put(f"{url}/api/talkinghead/emotion_sets/angry-lambda", json={"anger": ANGRY["anger"]})
    assert replaced.status_code == 200 and replaced.json()["created"] is False

    with open(ROOT / "assets" / "characters" / "lambda_00.png", "rb") as f:
        r = requests.post(f"{url}/api/talkinghead/load", files={"file": ("c.png", f, "image/png")},
                          data={"instance_id": "sets"})
    assert r.status_code == 200, r.text
    requests.post(f"{url}/api/talkinghead/stop", json={"instance_id": "sets"})
    r = requests.post(f"{url}/api/talkinghead/load_emotion_set", json={"name": "angry-lambda", "instance_id": "sets"})
    assert (r.status_code, r.text) == (200, "OK")
    emotions = requests.get(f"{url}/api/talkinghead/emotions", params={"instance_id": "sets"}).json()["emotions"]
    assert emotions["anger"] == ANGRY["anger"]
    shipped = json.loads((ROOT / "assets" / "emotions" / "joy.json").read_text())
    assert emotions["joy"] == pytest.approx(shipped)  # the replaced set has no joy: the shipped one applies
    r = requests.post(f"{url}/api/talkinghead/load_emotion_set", json={"name": "default", "instance_id": "sets"})
    assert r.status_code == 200
    emotions = requests.get(f"{url}/api/talkinghead/emotions", params={"instance_id": "sets"}).json()["emotions"]
    assert emotions["anger"] == pytest.approx(json.loads((ROOT / "assets" / "emotions" / "anger.json").read_text()))
    assert requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": "sets"}).status_code == 200

    assert requests.delete(f"{url}/api/talkinghead/emotion_sets/angry-lambda").status_code == 200
    assert requests.get(f"{url}/api/talkinghead/emotion_sets/angry-lambda").status_code == 404
    assert not (sets_dir / "angry-lambda.json").exists()


def test_default_set_is_the_shipped_templates_and_read_only(server):
    r = requests.get(f"{server.url}/api/talkinghead/emotion_sets/default")
    shipped = json.loads((ROOT / "assets" / "emotions" / "anger.json").read_text())
    assert r.status_code == 200 and r.json()["anger"] == pytest.approx(shipped) and len(r.json()) >= 28
    assert requests.put(f"{server.url}/api/talkinghead/emotion_sets/default", json=ANGRY).status_code == 409
    assert requests.delete(f"{server.url}/api/talkinghead/emotion_sets/default").status_code == 409


@pytest.mark.parametrize("name", ["..", ".hidden", "a b", "x" * 65, "-dash", "semi;colon", "%2E%2E", "a.json"])
def test_set_names_never_become_paths(server, sets_dir, name):
    before = sorted(p.name for p in sets_dir.parent.rglob("*"))
    r = requests.put(f"{server.url}/api/talkinghead/emotion_sets/{name}", json=ANGRY)
    assert r.status_code in (400, 404), r.text  # 404: the router itself refused the path
    assert sorted(p.name for p in sets_dir.parent.rglob("*")) == before
    assert requests.get(f"{server.url}/api/talkinghead/emotion_sets/{name}").status_code in (400, 404)


def test_traversal_through_encoded_slashes_is_refused(server, sets_dir):
    for path in ("..%2F..%2Fescape", "%2E%2E%2Fescape", "..\\escape"):
        r = requests.put(f"{server.url}/api/talkinghead/emotion_sets/{path}", json=ANGRY)
        assert r.status_code in (400, 404), path
    assert not any(p.name.startswith("escape") for p in sets_dir.parent.parent.rglob("escape*"))
    r = requests.post(f"{server.url}/api/talkinghead/load_emotion_set", json={"name": "../anger"})
    assert r.status_code == 400 and "name" in r.json()["error"]


def test_bad_sets_are_refused_by_field(server, sets_dir):
    url = server.url
    r = requests.put(f"{url}/api/talkinghead/emotion_sets/broken", json={"anger": {"eyebrow_angry_index": 1}})
    assert r.status_code == 400 and r.json()["field"] == "eyebrow_angry_index"
    r = requests.put(f"{url}/api/talkinghead/emotion_sets/broken", json={"anger": {"head_x_index": -2}})
    assert r.status_code == 400 and "head_x_index" in r.json()["error"]
    r = requests.put(f"{url}/api/talkinghead/emotion_sets/broken", json={"anger": 3})
    assert r.status_code == 400
    assert requests.put(f"{url}/api/talkinghead/emotion_sets/broken", json={}).status_code == 400
    assert not (sets_dir / "broken.json").exists()
    r = requests.post(f"{url}/api/talkinghead/load_emotion_set", json={"name": "missing"})
    assert r.status_code == 404 and "missing" in r.json()["error"]


def test_store_names_and_atomic_files(tmp_path):
    store = TemplateStore(tmp_path)
    for bad in ("", "../x", "a/b", "x" * 65, ".x", "a\x00b", "é"):
        with pytest.raises(StoreError):
            check_name(bad)
    created = store.save("mine", P.parse_templates(ANGRY))
    assert created and [s["name"] for s in store.names()] == ["mine"]
    assert not store.save("mine", P.parse_templates(ANGRY))
    assert list(tmp_path.glob(".*")) == []  # no temporary files left behind
    assert Path(tmp_path / "mine.json").read_text().startswith("{")
