"""Raven's avatar client (Technologicat/raven, raven.client.api and raven.client.avatar_renderer) against
Greenroom: each request is built as Raven's client builds it (bare-key Authorization, JSON bodies with the
instance id, multipart uploads with cel attachments, reload's JSON file attachment), and the video feed is
read by Raven's rules: sync on the boundary, headers split at the first colon and lower-cased, Content-Length
mandatory, then X-Crop (JSON box), X-Full-Size ("W H") and X-Server-Stats (JSON numbers) on every part.

One real server (raven + talkinghead, real THA3 weights on the CPU), a few frames per test."""
from __future__ import annotations

import io
import json
import re
import time

import numpy as np
import pytest
import qoi
import requests
from PIL import Image

from greenroom.app import create_app

from .server_process import ROOT, ServerProcess

pytestmark = pytest.mark.slow

CHARACTER = ROOT / "assets" / "characters" / "lambda_00.png"
OTHER_CHARACTER = ROOT / "assets" / "characters" / "lambda_01.png"
KEY = "raven-avatar-k3y"
RAVEN_SETTINGS = {  # the keys of Raven-server's animator defaults; Raven's own extras are ignored by Greenroom
    "target_fps": 10, "format": "QOI", "upscale": 1.0, "upscale_preset": "C", "upscale_quality": "low",
    "metrics_enabled": False, "crop_left": 0.0, "crop_right": 0.0, "crop_top": 0.0, "crop_bottom": 0.0,
    "pose_interpolator_step": 0.3, "blink_interval_min": 2.0, "blink_interval_max": 5.0, "blink_probability": 0.03,
    "blink_confusion_duration": 10.0, "talking_fps": 12, "talking_morph": "mouth_aaa_index",
    "sway_morphs": ["head_x_index", "head_y_index", "neck_z_index", "body_y_index", "body_z_index"],
    "sway_interval_min": 5.0, "sway_interval_max": 10.0, "sway_macro_strength": 0.6, "sway_micro_strength": 0.02,
    "breathing_cycle_duration": 4.0, "postprocessor_chain": []}
STATS_KEYS = {"render_ms", "render_fps", "encode_ms", "encode_fps", "output_ms", "output_fps", "target_fps"}


@pytest.fixture(scope="module")
def raven(tmp_path_factory):
    """A secured server with raven and talkinghead; yields (url, headers as Raven's client builds them)."""
    folder = tmp_path_factory.mktemp("raven-avatar")
    (folder / "api_key.txt").write_text(KEY + "\n")
    config = folder / "plugins.toml"
    config.write_text(f'[modules.talkinghead]\ncache_dir = "{folder / "cache"}"\nprecompute_emotions = false\n'
                      'background_nice = 0\nmax_instances = 4\n')
    proc = ServerProcess(["--config", str(config), "--enable-modules=raven,talkinghead", "--secure",
                          "--api-key-file", str(folder / "api_key.txt")])
    yield proc.url, {"Authorization": KEY}
    proc.stop()


# -- Raven's client, request by request -------------------------------------------------------------

def post_json(url: str, headers: dict, path: str, data: dict) -> requests.Response:
    return requests.post(f"{url}{path}", json=data, headers={**headers, "Content-Type": "application/json"},
                         timeout=60)


def avatar_load(url: str, headers: dict, image=CHARACTER, cels: dict | None = None) -> requests.Response:
    """The base image as "file" and each add-on cel under its own name, all application/octet-stream."""
    files = {"file": (str(image), image.read_bytes(), "application/octet-stream")}
    for name, data in (cels or {}).items():
        files[name] = (f"{image.stem}_{name}.png", data, "application/octet-stream")
    return requests.post(f"{url}/api/avatar/load", headers=headers, files=files, timeout=120)


def avatar_reload(url: str, headers: dict, instance_id: str, image=OTHER_CHARACTER) -> requests.Response:
    files = {"json": ("parameters.json", json.dumps({"instance_id": instance_id}, indent=2), "application/json"),
             "file": (str(image), image.read_bytes(), "application/octet-stream")}
    return requests.post(f"{url}/api/avatar/reload", headers=headers, files=files, timeout=120)


def loaded(url: str, headers: dict) -> str:
    reply = avatar_load(url, headers)
    assert reply.status_code == 200, reply.text
    return reply.json()["instance_id"]


def ok(reply: requests.Response) -> str:
    assert reply.status_code == 200, reply.text
    assert reply.text.startswith("OK")
    return reply.text


class RavenFeed:
    """avatar_result_feed plus ResultFeedReader.get_frame, by Raven's parsing rules."""

    def __init__(self, url: str, headers: dict, instance_id: str) -> None:
        self.response = requests.get(f"{url}/api/avatar/result_feed?instance_id={instance_id}",
                                     headers={**headers, "Accept": "multipart/x-mixed-replace"}, stream=True,
                                     timeout=60)
        assert self.response.status_code == 200, self.response.text
        boundary = re.search(r"boundary=(\S+)", self.response.headers["Content-Type"]).group(1)
        self.boundary = f"--{boundary}".encode()
        self.chunks = self.response.iter_content(chunk_size=4096)
        self.buffer = b""

    def _more(self) -> None:
        self.buffer += next(self.chunks)

    def frame(self) -> tuple[str, dict, tuple[int, int], dict, bytes]:
        """(mimetype, crop box, full size, server stats, payload) of the next part."""
        while (start := self.buffer.rfind(self.boundary)) < 0:
            self.buffer = b""
            self._more()
        self.buffer = self.buffer[start:]
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._more()
        lines, self.buffer = self.buffer[:end].split(b"\r\n"), self.buffer[end + 4:]
        assert lines[0] == self.boundary
        mimetype, length, extra = None, None, {}
        for line in lines[1:]:
            name, _, value = line.decode("utf-8").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-type":
                mimetype = value.lower()
            elif name == "content-length":
                length = int(value)
            elif not name.startswith("content-"):
                extra[name] = value
        assert length is not None, "Raven's reader needs Content-Length"
        while len(self.buffer) < length:
            self._more()
        payload, self.buffer = self.buffer[:length], self.buffer[length:]
        crop = json.loads(extra["x-crop"])
        full_w, full_h = extra["x-full-size"].split()
        stats = json.loads(extra["x-server-stats"])
        return mimetype, crop, (int(full_w), int(full_h)), stats, payload

    def close(self) -> None:
        self.response.close()


def decode(mimetype: str, payload: bytes) -> np.ndarray:
    """As Raven's renderer does: QOI by the qoi package, anything else by PIL."""
    if mimetype == "image/qoi":
        return qoi.decode(payload)
    return np.asarray(Image.open(io.BytesIO(payload)).convert("RGBA"))


def renderer_line(stats: dict) -> str:
    """The renderer's second FPS-counter line, which formats every figure as a float."""
    return (f"Server: render {stats['render_ms']:.1f}ms [{stats['render_fps']:.1f} FPS] | "
            f"encode {stats['encode_ms']:.1f}ms [{stats['encode_fps']:.1f} FPS] | "
            f"output {stats['output_ms']:.1f}ms [{stats['output_fps']:.1f} FPS]; target {stats['target_fps']:.1f} FPS")


# -- the tests --------------------------------------------------------------------------------------

def test_lifecycle_as_ravens_client_suite_runs_it(raven):
    """Raven's TestAvatar.test_avatar_lifecycle, with cels and Raven's full settings dict on top."""
    url, headers = raven
    assert "avatar" in requests.get(f"{url}/api/modules", headers=headers, timeout=30).json()["modules"]
    blush = io.BytesIO()
    Image.new("RGBA", (512, 512), (255, 0, 0, 40)).save(blush, "PNG")
    reply = avatar_load(url, headers, cels={"blush1": blush.getvalue()})
    assert reply.status_code == 200, reply.text
    instance_id = reply.json()["instance_id"]
    assert set(reply.json()) == {"instance_id"} and instance_id and reply.headers["X-Instance-Id"] == instance_id
    try:
        ignored = ok(post_json(url, headers, "/api/avatar/load_animator_settings",
                               {"instance_id": instance_id, "animator_settings": RAVEN_SETTINGS}))
        assert "upscale_preset" in ignored and "metrics_enabled" in ignored
        emotions = {"surprise": {"eye_surprised_left_index": 1.0, "eye_surprised_right_index": 1.0, "sweat1": 0.5},
                    "joy": {"pose": {"eye_happy_wink_left_index": 1.0}, "cels": {"blush2": 1.0}}}
        dropped = ok(post_json(url, headers, "/api/avatar/load_emotion_templates",
                               {"instance_id": instance_id, "emotions": emotions}))
        assert "sweat1" in dropped and "blush2" in dropped
        ok(post_json(url, headers, "/api/avatar/start", {"instance_id": instance_id}))
        feed = RavenFeed(url, headers, instance_id)
        ok(post_json(url, headers, "/api/avatar/start_talking", {"instance_id": instance_id}))
        ok(post_json(url, headers, "/api/avatar/set_emotion", {"instance_id": instance_id, "emotion_name": "surprise"}))
        for _ in range(5):
            mimetype, crop, full_size, stats, payload = feed.frame()
            image = decode(mimetype, payload)
            assert mimetype == "image/qoi" and image.shape == (512, 512, 4) and image[..., 3].max() == 255
            assert crop == {"enabled": False, "left": 0.0, "top": 0.0, "right": 1.0, "bottom": 1.0}
            assert full_size == (512, 512)
            assert set(stats) == STATS_KEYS and stats["target_fps"] == 10.0
            renderer_line(stats)
        assert stats["render_ms"] > 0 and stats["encode_ms"] > 0
        ok(post_json(url, headers, "/api/avatar/stop_talking", {"instance_id": instance_id}))
        ok(post_json(url, headers, "/api/avatar/stop", {"instance_id": instance_id}))
        ok(post_json(url, headers, "/api/avatar/start", {"instance_id": instance_id}))
    finally:
        ok(post_json(url, headers, "/api/avatar/unload", {"instance_id": instance_id}))
    with pytest.raises((StopIteration, requests.exceptions.ChunkedEncodingError)):  # unload ends the feed
        for _ in range(100):
            feed.frame()
    feed.close()
    again = post_json(url, headers, "/api/avatar/unload", {"instance_id": instance_id})
    assert again.status_code == 200 and instance_id in again.text
    assert post_json(url, headers, "/api/avatar/unload", {"instance_id": "never-existed"}).status_code == 200


def test_crop_box_and_upscale_reach_the_part_headers(raven):
    url, headers = raven
    instance_id = loaded(url, headers)
    try:
        settings = {"target_fps": 10, "postprocessor_chain": [], "format": "PNG", "upscale": 2.0,
                    "upscale_method": "bilinear",
                    "crop": {"enabled": True, "left": 0.25, "top": 0.125, "right": 0.75, "bottom": 1.0}}
        ok(post_json(url, headers, "/api/avatar/load_animator_settings",
                     {"instance_id": instance_id, "animator_settings": settings}))
        ok(post_json(url, headers, "/api/avatar/start", {"instance_id": instance_id}))
        feed = RavenFeed(url, headers, instance_id)
        deadline = time.monotonic() + 60
        while True:  # frames encoded before the settings arrived may still come first
            mimetype, crop, full_size, stats, payload = feed.frame()
            if crop["enabled"] or time.monotonic() > deadline:
                break
        feed.close()
        assert crop == {"enabled": True, "left": 0.25, "top": 0.125, "right": 0.75, "bottom": 1.0}
        assert full_size == (1024, 1024) and mimetype == "image/png"
        assert decode(mimetype, payload).shape == (896, 512, 4)  # the kept box of the full size, as Raven places it
    finally:
        ok(post_json(url, headers, "/api/avatar/unload", {"instance_id": instance_id}))


def test_reload_overrides_and_errors(raven):
    url, headers = raven
    first, second = loaded(url, headers), loaded(url, headers)
    assert first != second  # load always makes a new instance
    try:
        reload = avatar_reload(url, headers, first)
        ok(reload)
        assert reload.headers["X-Instance-Id"] == first  # for load balancers, as talkinghead's replies
        assert avatar_reload(url, headers, "no-such-instance").status_code == 404
        text = ok(post_json(url, headers, "/api/avatar/set_overrides",
                            {"instance_id": first, "overrides": {"mouth_aaa_index": 0.8, "data1": 1.0}}))
        assert "data1" in text
        for action in ("set", "unset"):
            ok(post_json(url, headers, "/api/avatar/modify_overrides",
                         {"instance_id": first, "action": action, "overrides": {"eye_wink_left_index": 1.0}}))
        bad = post_json(url, headers, "/api/avatar/set_overrides",
                        {"instance_id": first, "overrides": {"mouth_aaa_index": 3.0}})
        assert bad.status_code == 400 and bad.json()["field"] == "mouth_aaa_index"
        unknown = post_json(url, headers, "/api/avatar/set_emotion", {"instance_id": first, "emotion_name": "glee"})
        assert unknown.status_code == 400 and "joy" in unknown.json()["valid_emotions"]
        setting = post_json(url, headers, "/api/avatar/load_animator_settings",
                            {"instance_id": first, "animator_settings": {"target_fps": 500}})
        assert setting.status_code == 400 and setting.json()["field"] == "target_fps"
        missing = post_json(url, headers, "/api/avatar/start", {})
        assert missing.status_code == 400 and "instance_id" in missing.json()["error"]
        gone = post_json(url, headers, "/api/avatar/start", {"instance_id": "no-such-instance"})
        assert gone.status_code == 404 and gone.json()["instance_id"] == "no-such-instance"
        assert gone.headers["X-Instance-Id"] == "no-such-instance"
        feed = requests.get(f"{url}/api/avatar/result_feed?instance_id=no-such-instance", headers=headers, timeout=30)
        assert feed.status_code == 404
        no_file = requests.post(f"{url}/api/avatar/load", headers=headers, files={"blush1": b"x"}, timeout=30)
        assert no_file.status_code == 400 and no_file.json()["field"] == "file"
        not_image = requests.post(f"{url}/api/avatar/load", headers=headers, files={"file": b"not an image"},
                                  timeout=30)
        assert not_image.status_code == 400 and not_image.json()["field"] == "file"
        assert requests.post(f"{url}/api/avatar/start", json={"instance_id": first}, timeout=30).status_code == 401
    finally:
        for instance_id in (first, second):
            ok(post_json(url, headers, "/api/avatar/unload", {"instance_id": instance_id}))


def test_without_talkinghead_the_avatar_routes_name_it(make_config):
    client = create_app(make_config(enable=["raven"])).test_client()
    reply = client.post("/api/avatar/start", json={"instance_id": "x"})
    assert reply.status_code == 503 and "'talkinghead'" in reply.json["error"]
    assert client.get("/api/avatar/result_feed?instance_id=x").status_code == 503
