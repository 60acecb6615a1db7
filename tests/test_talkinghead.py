"""talkinghead through real HTTP against one real server process (real THA3 weights on the CPU),
plus in-process checks of the animator, the classify cooperation and the idle timeout."""
from __future__ import annotations

import io
import random
import threading
import time

import numpy as np
import pytest
import requests
from PIL import Image

from greenroom_modules.talkinghead import pose as P
from greenroom_modules.talkinghead.animator import Animator, blink_amount
from greenroom_modules.talkinghead.settings import AnimatorSettings, SettingsError, merge_settings

from .server_process import ROOT, ServerProcess

CHARACTER = ROOT / "assets" / "characters" / "lambda_00.png"
FACE = (slice(60, 200), slice(190, 330))  # rows, cols of the face in a 512x512 frame
BROWSER_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"  # what Chromium's <img> sends
QUIET = {"postprocessor_chain": [], "blink_probability": 0.0, "sway_macro_strength": 0.0,
         "sway_micro_strength": 0.0, "target_fps": 10}


# -- helpers ------------------------------------------------------------------------------------

class FeedReader:
    """Parses parts of a multipart/x-mixed-replace body (requires Content-Length per part).

    One reader per response: it keeps the chunk iterator and the bytes already received.
    """

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.chunks = response.iter_content(chunk_size=65536)
        self.buf = b""

    def parts(self, count: int, timeout: float = 60) -> list[tuple[dict, bytes]]:
        parts, deadline = [], time.monotonic() + timeout
        while len(parts) < count:
            assert time.monotonic() < deadline, f"only {len(parts)} parts within {timeout} s"
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end >= 0:
                lines = self.buf[:head_end].decode("latin-1").split("\r\n")
                assert lines[0] == "--frame", lines[0]
                headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
                end = head_end + 4 + int(headers["content-length"])
                if len(self.buf) >= end + 2:
                    parts.append((headers, self.buf[head_end + 4:end]))
                    assert self.buf[end:end + 2] == b"\r\n"
                    self.buf = self.buf[end + 2:]
                    continue
            self.buf += next(self.chunks)
        return parts


def read_parts(response: requests.Response, count: int, timeout: float = 60) -> list[tuple[dict, bytes]]:
    return FeedReader(response).parts(count, timeout)


def rgba(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.mode == "RGBA"
    return np.asarray(image, dtype=np.float32)


def face_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a[FACE] - b[FACE]).mean())


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def frame(url: str, instance_id: str) -> np.ndarray:
    r = requests.get(f"{url}/api/talkinghead/frame", params={"instance_id": instance_id}, timeout=30)
    assert r.status_code == 200, r.text
    return rgba(r.content)


def wait_for(predicate, timeout: float = 300, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def new_instance(url: str, **settings) -> str:
    with open(CHARACTER, "rb") as f:
        r = requests.post(f"{url}/api/talkinghead/load", files={"file": ("talkinghead.png", f, "image/png")},
                          data={"new": "true"}, timeout=30)
    assert r.status_code == 200, r.text
    iid = r.json()["instance_id"]
    if settings:
        r = requests.post(f"{url}/api/talkinghead/load_animator_settings", json={"instance_id": iid, **settings})
        assert r.status_code == 200, r.text
    return iid


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("talkinghead")
    config = folder / "plugins.toml"
    config.write_text(f'[modules.talkinghead]\ncache_dir = "{folder / "cache"}"\nmax_instances = 6\n'
                      'precompute_emotions = false\nmax_upload_mb = 2\nbackground_nice = 0\n')
    proc = ServerProcess(["--config", str(config), "--enable-modules=talkinghead"])
    yield proc
    proc.stop()


# -- SillyTavern's contract ---------------------------------------------------------------------

def test_feed_sends_512_rgba_png_parts(server):
    url = server.url
    with open(CHARACTER, "rb") as f:
        r = requests.post(f"{url}/api/talkinghead/load", files={"file": ("talkinghead.png", f, "image/png")})
    assert r.status_code == 200 and r.json()["instance_id"] == "default"
    # SillyTavern's <img> says it takes WebP too; without ?format= its feed stays PNG, as in Extras
    feed = requests.get(f"{url}/api/talkinghead/result_feed", headers={"Accept": BROWSER_ACCEPT}, stream=True,
                        timeout=30)
    try:
        assert feed.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
        parts = read_parts(feed, 3)
    finally:
        feed.close()
    for headers, data in parts:
        assert headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(data))
        assert image.format == "PNG" and image.size == (512, 512) and image.mode == "RGBA"
        alpha = np.asarray(image)[..., 3]
        assert alpha[0, 0] == 0 and alpha[300, 256] > 200  # transparent background, opaque character


def test_several_feeds_and_pausing(server):
    url = server.url
    requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_00"})
    feeds = [requests.get(f"{url}/api/talkinghead/result_feed", stream=True, timeout=30) for _ in range(2)]
    try:
        readers = [FeedReader(f) for f in feeds]
        for reader in readers:
            assert len(reader.parts(2)) == 2
        assert requests.get(f"{url}/api/talkinghead/status?instance_id=default").json()["feeds"] == 2
        assert requests.post(f"{url}/api/talkinghead/stop", json={}).text == "animation paused"
        for _ in range(300):  # drain what was already on its way before the pause
            t0 = time.monotonic()
            readers[0].parts(1)
            if time.monotonic() - t0 > 0.5:
                break
        t0 = time.monotonic()
        readers[0].parts(1)
        assert time.monotonic() - t0 > 0.7  # paused: a keep-alive frame a second, nothing queued up
        assert requests.post(f"{url}/api/talkinghead/start", json={}).text == "animation started"
        t0 = time.monotonic()
        readers[1].parts(10)
        assert time.monotonic() - t0 < 8
    finally:
        for f in feeds:
            f.close()


def test_feed_sends_each_new_frame_once(server):
    """The feed follows the frames, not a clock of its own: every part is a newer frame than the one before,
    and a part repeats the previous frame only after a second without a new one (the keep-alive)."""
    url = server.url
    iid = new_instance(url)  # the default chain: its scanlines alternate, so every frame is new
    requests.get(f"{url}/api/talkinghead/start_talking", params={"instance_id": iid})
    feed = requests.get(f"{url}/api/talkinghead/result_feed", params={"instance_id": iid}, stream=True, timeout=30)
    try:
        reader, arrivals = FeedReader(feed), []
        for _ in range(40):
            headers, data = reader.parts(1)[0]
            arrivals.append((time.monotonic(), int(headers["x-frame-seq"]), data))
    finally:
        feed.close()
        requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": iid})
    for (t0, seq0, data0), (t1, seq1, data1) in zip(arrivals, arrivals[1:]):
        assert seq1 >= seq0, "the feed went back to an older frame"
        if seq1 == seq0:
            assert data1 == data0 and t1 - t0 > 0.8, f"frame {seq0} sent again after {t1 - t0:.2f} s"
    assert len({seq for _, seq, _ in arrivals}) > 20  # mostly new frames, not keep-alives


def test_feed_format_webp_is_lossless_with_alpha(server):
    """?format=webp: the same frames as the PNG feed, losslessly, alpha included (browsers show WebP parts)."""
    url = server.url
    iid = new_instance(url)
    feeds = {fmt: requests.get(f"{url}/api/talkinghead/result_feed", params={"instance_id": iid, **query},
                               headers={"Accept": BROWSER_ACCEPT}, stream=True, timeout=30)
             for fmt, query in (("png", {}), ("webp", {"format": "webp"}))}
    try:
        readers = {fmt: FeedReader(response) for fmt, response in feeds.items()}
        seen: dict[str, dict[int, tuple[dict, bytes]]] = {"png": {}, "webp": {}}
        for _ in range(50):  # both feeds send every frame: a frame seen by both comes within a few parts
            for fmt, reader in readers.items():
                headers, data = reader.parts(1)[0]
                seen[fmt][int(headers["x-frame-seq"])] = (headers, data)
            if seen["png"].keys() & seen["webp"].keys():
                break
    finally:
        for response in feeds.values():
            response.close()
    seq = max(seen["png"].keys() & seen["webp"].keys())
    (png_headers, png), (webp_headers, webp) = seen["png"][seq], seen["webp"][seq]
    assert (png_headers["content-type"], webp_headers["content-type"]) == ("image/png", "image/webp")
    image = Image.open(io.BytesIO(webp))
    assert image.format == "WEBP" and image.mode == "RGBA" and image.size == (512, 512)
    a, b = np.asarray(Image.open(io.BytesIO(png))), np.asarray(image)
    assert np.array_equal(a[..., 3], b[..., 3]) and a[0, 0, 3] == 0 and a[300, 256, 3] > 200
    visible = a[..., 3] > 0  # lossless: only fully transparent pixels may change colour
    assert np.array_equal(a[visible], b[visible])
    r = requests.get(f"{url}/api/talkinghead/result_feed", params={"instance_id": iid, "format": "gif"}, timeout=30)
    assert r.status_code == 400 and "format" in r.json()["error"], r.text
    requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": iid})


def test_sillytavern_call_sequence(server):
    url = server.url
    with open(CHARACTER, "rb") as f:
        assert requests.post(f"{url}/api/talkinghead/load", files={"file": ("talkinghead.png", f, "image/png")}).ok
    r = requests.post(f"{url}/api/talkinghead/load_emotion_templates", data="{}",
                      headers={"Content-Type": "application/json", "Bypass-Tunnel-Reminder": "bypass"})
    assert (r.status_code, r.text) == (200, "OK")
    r = requests.post(f"{url}/api/talkinghead/load_animator_settings", json={})
    assert (r.status_code, r.text) == (200, "OK")
    feed = requests.get(f"{url}//api/talkinghead/result_feed", stream=True, timeout=30)  # ST may double the slash
    try:
        assert feed.status_code == 200 and len(read_parts(feed, 1)) == 1
    finally:
        feed.close()
    r = requests.post(f"{url}/api/talkinghead/set_emotion", json={"emotion_name": "joy"})
    assert (r.status_code, r.text) == (200, "emotion set to joy")
    assert requests.get(f"{url}/api/talkinghead/start_talking").text == "talking started"
    assert requests.get(f"{url}//api/talkinghead/stop_talking").text == "talking stopped"
    r = requests.get(f"{url}/api/talkinghead/unload")
    assert (r.status_code, r.text) == (200, "animation paused")
    assert requests.post(f"{url}/api/talkinghead/start_talking").status_code == 200
    assert requests.post(f"{url}/api/talkinghead/set_emotion", json={}).status_code == 400  # emotion_name required


def test_unknown_emotion_falls_back_to_neutral(server):
    with open(CHARACTER, "rb") as f:
        requests.post(f"{server.url}/api/talkinghead/load", files={"file": ("t.png", f, "image/png")})
    r = requests.post(f"{server.url}/api/talkinghead/set_emotion", data='{"emotion_name": "smugness"}')
    assert (r.status_code, r.text) == (200, "emotion set to neutral")


# -- rendering ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_emotion_changes_the_face_and_instances_differ(server):
    url = server.url
    a, b = new_instance(url, **QUIET), new_instance(url, **QUIET)
    time.sleep(1.0)
    before = frame(url, a)
    for iid, emotion in ((a, "surprise"), (b, "anger")):
        r = requests.post(f"{url}/api/talkinghead/set_emotion", json={"emotion_name": emotion, "instance_id": iid})
        assert r.text == f"emotion set to {emotion}"
    wait_for(lambda: face_difference(before, frame(url, a)) > 3.0)
    wait_for(lambda: face_difference(frame(url, a), frame(url, b)) > 1.5)
    # Deleting one instance ends its feed only.
    feeds = {iid: requests.get(f"{url}/api/talkinghead/result_feed", params={"instance_id": iid}, stream=True,
                               timeout=30) for iid in (a, b)}
    readers = {iid: FeedReader(response) for iid, response in feeds.items()}
    try:
        for reader in readers.values():
            reader.parts(1)
        r = requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": a})
        assert r.status_code == 200 and "deleted" in r.text
        ended = threading.Event()

        def drain():
            for _ in readers[a].chunks:
                pass
            ended.set()
        threading.Thread(target=drain, daemon=True).start()
        assert ended.wait(15), "the deleted instance's feed did not end"
        assert len(readers[b].parts(2)) == 2
        assert requests.get(f"{url}/api/talkinghead/status", params={"instance_id": a}).status_code == 404
    finally:
        for response in feeds.values():
            response.close()
        requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": b})


@pytest.mark.slow
def test_full_mode_poses_every_frame(server):
    url = server.url
    iid = new_instance(url, mode="full", postprocessor_chain=[], target_fps=5)
    status = wait_for(lambda: (s := requests.get(f"{url}/api/talkinghead/status",
                                                 params={"instance_id": iid}).json())["frames"]["rendered"] >= 2 and s)
    assert status["mode"] == "full" and status["stage_ms"]["pose"] > 0
    assert frame(url, iid).shape == (512, 512, 4)
    requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": iid})


def test_other_formats_and_sizes(server):
    url = server.url
    small = Image.open(CHARACTER).resize((300, 200))
    r = requests.post(f"{url}/api/talkinghead/load", files={"file": ("c.png", png_bytes(small), "image/png")},
                      data={"instance_id": "fitted"})
    assert r.status_code == 200 and r.json()["created"] is True and r.json()["size"] == [512, 512]
    for fmt, mime in (("WEBP", "image/webp"), ("QOI", "image/qoi")):
        r = requests.post(f"{url}/api/talkinghead/load_animator_settings?instance_id=fitted",
                          json={"format": fmt, "postprocessor_chain": []})
        assert r.status_code == 200
        got = wait_for(lambda: (x := requests.get(f"{url}/api/talkinghead/frame",
                                                  params={"instance_id": "fitted"})).headers["Content-Type"] == mime and x)
        if fmt == "WEBP":
            assert Image.open(io.BytesIO(got.content)).size == (512, 512)
        else:
            assert got.content[:4] == b"qoif"
    r = requests.post(f"{url}/api/talkinghead/load_animator_settings?instance_id=fitted",
                      json={"upscale": 1.5, "crop_left": 0.5, "postprocessor_chain": [["vignetting", {}]]})
    assert r.status_code == 200
    wait_for(lambda: Image.open(io.BytesIO(requests.get(f"{url}/api/talkinghead/frame",
                                                        params={"instance_id": "fitted"}).content)).size == (576, 768))
    r = requests.post(f"{url}/api/talkinghead/load_animator_settings?instance_id=fitted",
                      json={"upscale": 2, "upscale_method": "lanczos", "postprocess_before_upscale": True,
                            "postprocessor_chain": [["vignetting", {}]]})
    assert r.status_code == 200
    wait_for(lambda: Image.open(io.BytesIO(requests.get(f"{url}/api/talkinghead/frame",
                                                        params={"instance_id": "fitted"}).content)).size == (1024, 1024))
    assert requests.get(f"{url}/api/talkinghead/animator_settings?instance_id=fitted").json()["upscale_method"] == "lanczos"
    requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": "fitted"})


# -- the instance API and bad input -------------------------------------------------------------

def test_instance_api(server):
    url = server.url
    r = requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_01", "instance_id": "mine"})
    assert r.status_code == 200 and r.json() == {**r.json(), "instance_id": "mine", "created": True}
    r = requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_00", "instance_id": "mine"})
    assert r.json()["created"] is False
    ids = {i["instance_id"] for i in requests.get(f"{url}/api/talkinghead/instances").json()["instances"]}
    assert "mine" in ids
    for path, body in (("set_overrides", {"overrides": {"mouth_aaa_index": 1.0, "head_x_index": -0.5}}),
                       ("modify_overrides", {"action": "unset", "overrides": {"head_x_index": 0}}),
                       ("pose_hint", {"hint": "look_left", "duration": 2}),
                       ("stop", {}), ("start", {})):
        r = requests.post(f"{url}/api/talkinghead/{path}", json={"instance_id": "mine", **body})
        assert r.status_code == 200, (path, r.text)
    status = requests.get(f"{url}/api/talkinghead/status", params={"instance_id": "mine"}).json()
    assert status["overrides"] == {"mouth_aaa_index": 1.0} and status["hint"] == "look_left"
    assert status["mode"] == "low_compute" and "cache" in status and status["paused"] is False
    assert set(requests.get(f"{url}/api/talkinghead/characters").json()["characters"]) >= {"lambda_00", "lambda_01"}
    assert len(requests.get(f"{url}/api/talkinghead/morphs").json()["morphs"]) == 45
    assert len(requests.get(f"{url}/api/talkinghead/emotions?instance_id=mine").json()["emotions"]) == 28
    assert requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": "mine"}).status_code == 200


def test_max_instances(server):
    url = server.url
    existing = len(requests.get(f"{url}/api/talkinghead/instances").json()["instances"])
    created = []
    try:
        for _ in range(6 - existing):
            created.append(requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_00", "new": "true"}).json()["instance_id"])
        r = requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_00", "new": "true"})
        assert r.status_code == 429 and "max_instances" in r.json()["error"]
    finally:
        for iid in created:
            requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": iid})


def test_bad_input(server):
    url = server.url
    r = requests.post(f"{url}/api/talkinghead/set_emotion", json={"emotion_name": "joy", "instance_id": "nobody"})
    assert r.status_code == 404 and "nobody" in r.json()["error"]
    assert requests.get(f"{url}/api/talkinghead/result_feed?instance_id=nobody").status_code == 404
    assert requests.get(f"{url}/api/talkinghead/start_talking?instance_id=nobody").status_code == 404
    assert requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": "nobody"}).status_code == 404
    requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_00"})
    r = requests.post(f"{url}/api/talkinghead/set_overrides", json={"overrides": {"mouth_xyz": 1}})
    assert r.status_code == 400 and "mouth_xyz" in r.json()["error"] and "mouth_aaa_index" in r.json()["valid_morphs"]
    r = requests.post(f"{url}/api/talkinghead/modify_overrides", json={"overrides": {"head_x_index": 3}})
    assert r.status_code == 400 and "head_x_index" in r.json()["error"]
    r = requests.post(f"{url}/api/talkinghead/load_emotion_templates", json={"joy": {"eye_wink_left_index": 2}})
    assert r.status_code == 400 and "eye_wink_left_index" in r.json()["error"]
    r = requests.post(f"{url}/api/talkinghead/load_animator_settings", json={"target_fps": "fast"})
    assert r.status_code == 400 and "target_fps" in r.json()["error"]
    r = requests.post(f"{url}/api/talkinghead/load_animator_settings", json={"no_such_setting": 1})
    assert r.status_code == 200 and "no_such_setting" in r.text
    r = requests.post(f"{url}/api/talkinghead/load_animator_settings",
                      json={"postprocessor_chain": [["vignetting", {"strength": 99}]]})
    assert r.status_code == 400 and "vignetting" in r.json()["error"] and "strength" in r.json()["error"]
    r = requests.post(f"{url}/api/talkinghead/load_animator_settings", json={"postprocessor_chain": [["nope", {}]]})
    assert r.status_code == 200 and "unknown filter 'nope' dropped" in r.text  # old _animator.json files load
    r = requests.post(f"{url}/api/talkinghead/load_animator_settings", json={"postprocessor_chain": "nope"})
    assert r.status_code == 400 and "chain" in r.json()["error"]
    r = requests.post(f"{url}/api/talkinghead/load", files={"file": ("x.png", b"not an image", "image/png")})
    assert r.status_code == 400 and "not a readable image" in r.json()["error"]
    rgb = png_bytes(Image.new("RGB", (512, 512), (200, 100, 50)))
    r = requests.post(f"{url}/api/talkinghead/load", files={"file": ("x.png", rgb, "image/png")})
    assert r.status_code == 400 and "alpha" in r.json()["error"]
    big = b"\0" * (3 * 2**20)
    r = requests.post(f"{url}/api/talkinghead/load", files={"file": ("x.png", big, "image/png")})
    assert r.status_code == 413
    r = requests.post(f"{url}/api/talkinghead/load", data={"character": "../../etc/passwd"})
    assert r.status_code == 400
    r = requests.post(f"{url}/api/talkinghead/load", data={"character": "nobody_here"})
    assert r.status_code == 404 and "lambda_00" in r.json()["error"]
    assert requests.post(f"{url}/api/talkinghead/load").status_code == 400
    assert requests.post(f"{url}/api/talkinghead/load", data={"new": "maybe", "character": "lambda_00"}).status_code == 400
    r = requests.post(f"{url}/api/talkinghead/pose_hint", json={"hint": "dance"})
    assert r.status_code == 400
    # The instance survived all of that and still renders.
    assert frame(url, "default").shape == (512, 512, 4)


def test_schema_and_openapi(server):
    url = server.url
    schema = requests.get(f"{url}/api/modules/talkinghead/schema").json()
    props = schema["schema"]["properties"]
    assert {"model", "mode", "compile", "cache_dir", "max_instances", "idle_timeout_minutes"} <= set(props)
    chain = schema["schema"]["$defs"]["AnimatorSettings"]["properties"]["postprocessor_chain"]
    filters = requests.get(f"{url}/api/talkinghead/filters").json()["filters"]
    assert chain["x-filters"] == filters and {f["name"] for f in filters} >= {"bloom", "scanlines"}
    paths = requests.get(f"{url}/openapi.json").json()["paths"]
    for route in ("load", "result_feed", "set_emotion", "set_overrides", "status", "filters", "unload"):
        assert f"/api/talkinghead/{route}" in paths
    assert paths["/api/talkinghead/result_feed"]["get"].get("security") in (None, [])


# -- in-process: animator, settings, cooperation, idle timeout ---------------------------------

def _animator(**changes) -> Animator:
    settings, _ = merge_settings(AnimatorSettings().model_dump(), changes)
    return Animator(settings, P.load_template_dir(ROOT / "assets" / "emotions"), random.Random(1))


def test_animation_follows_wall_clock_not_frame_count():
    slow, fast = _animator(sway_macro_strength=0), _animator(sway_macro_strength=0)
    for a in (slow, fast):
        a.tick(0.0)
        a.set_emotion("surprise")
    for i in range(1, 5):
        slow.tick(i * 0.25)   # 4 fps
    for i in range(1, 26):
        fast.tick(i * 0.04)   # 25 fps
    i = P.INDEX["eyebrow_raised_left_index"]
    assert abs(slow.current[i] - fast.current[i]) < 0.02 and fast.current[i] > 0.9


def test_animator_drivers():
    a = _animator(blink_probability=0.0)
    a.tick(0.0)
    assert a.set_emotion("made-up") == "neutral"
    a.set_overrides({"head_x_index": 0.5})
    for i in range(1, 30):
        pose = a.tick(i * 0.04)
    assert abs(pose[P.INDEX["head_x_index"]] - 0.5) < 0.05
    a.modify_overrides("unset", {"head_x_index": 0})
    assert a.overrides == {}
    a.start_talking()
    mouths = {round(float(a.tick(1.2 + i * 0.04)[P.INDEX["mouth_aaa_index"]]), 2) for i in range(25)}
    assert len(mouths) >= 4 and max(mouths) > 0.4 and min(mouths) < 0.2
    breaths = [a.tick(t)[P.BREATHING] for t in (4.0, 5.0, 6.0)]
    assert max(breaths) - min(breaths) > 0.5
    a.force_blink(10.0)
    assert a.tick(10.0)[P.WINK].min() == 1.0 and blink_amount(1.0) == 0.0


def test_settings_merge_rules():
    base = AnimatorSettings().model_dump()
    settings, warnings = merge_settings(base, {"target_fps": 30.0, "bogus": 1})
    assert settings.target_fps == 30 and warnings == ["unknown setting 'bogus' ignored"]
    with pytest.raises(SettingsError) as err:
        merge_settings(base, {"blink_probability": "often"})
    assert err.value.field == "blink_probability"
    assert merge_settings(base, {})[0] == AnimatorSettings.model_validate(base)


@pytest.fixture(scope="module")
def app():
    from greenroom.app import create_app
    from greenroom.config import HostConfig, ServerSettings
    cfg = HostConfig(server=ServerSettings(enable_modules=["talkinghead"], api_key_file="/dev/null/none"),
                     modules={"talkinghead": {"cache_dir": "", "precompute_emotions": False,
                                              "idle_timeout_minutes": 0.02}})
    application = create_app(cfg)
    yield application
    application.extensions["greenroom"].shutdown()


def test_classify_result_sets_default_emotion(app):
    client = app.test_client()
    assert client.post("/api/talkinghead/load", data={"character": "lambda_00"}).status_code == 200
    host = app.extensions["greenroom"]
    host.context.publish("classify.result", label="anger", scores=[])
    assert host.module("talkinghead").manager.find(None).animator.emotion == "anger"


def test_idle_instances_are_deleted(app):
    client = app.test_client()
    client.post("/api/talkinghead/load", data={"character": "lambda_00", "instance_id": "idle"})
    ids = lambda: {i["instance_id"] for i in client.get("/api/talkinghead/instances").json["instances"]}  # noqa: E731
    assert "idle" in ids()
    wait_for(lambda: "idle" not in ids(), timeout=30)  # listing instances does not count as activity
