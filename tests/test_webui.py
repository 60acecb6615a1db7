"""The web page at /ui/ in a real headless Chromium (Debian's, driven by Playwright) against a real server
with talkinghead (low_compute), tts, classify and imagefx: loads without console errors, the feed updates,
emotion buttons and the filter chain editor change the avatar, speech plays while the mouth moves, classify
applies to the avatar, server errors are shown, an instance the server lost is created again with what the page
had sent (one lost again after each re-creation is given up on after a few tries, saying so), and --secure asks
for the key once. Third-party modules add their own tabs, and a broken one spoils nothing else.

Screenshots go to test-artifacts/webui/.
"""
from __future__ import annotations

import base64
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image
from waitress import create_server

from greenroom.app import create_app

from .server_process import ROOT, ServerProcess
from .test_webui_routes import panel_module, plugin

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts" / "webui"
FACE = (190, 60, 140, 140)    # x, y, w, h of the face in the 512x512 frame
EYES = (205, 128, 110, 34)
MOUTH = (232, 158, 50, 28)
QUIET_ANIMATOR = """[modules.talkinghead.animator]
target_fps = 15
blink_probability = 0.0
sway_macro_strength = 0.0
sway_micro_strength = 0.0
postprocessor_chain = []
"""
# The feed image (same origin, so readable) cropped to a region, as a PNG data URL.
CROP_JS = """([x, y, w, h]) => {
  const img = document.getElementById("feed");
  if (!img.naturalWidth) return null;
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  c.getContext("2d").drawImage(img, x, y, w, h, 0, 0, w, h);
  return c.toDataURL("image/png");
}"""


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (setup.sh does it as root: apt-get install chromium)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("webui")
    config = folder / "plugins.toml"
    config.write_text(f'[modules.talkinghead]\ncache_dir = "{folder / "cache"}"\nmode = "low_compute"\n'
                      f'precompute_emotions = false\nmax_instances = 4\n\n{QUIET_ANIMATOR}')
    proc = ServerProcess(["--config", str(config), "--enable-modules=talkinghead,tts,classify,imagefx"])
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """One browser tab on the page, recording console errors and uncaught exceptions."""

    def __init__(self, browser, url: str) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.url = url

    def open(self, fragment: str = "") -> None:
        self.page.goto(f"{self.url}/ui/{fragment}")
        self.page.wait_for_selector("body[data-ready=true]", timeout=120_000)

    def crop(self, region: tuple[int, int, int, int]) -> np.ndarray:
        data = self.page.evaluate(CROP_JS, list(region))
        assert data, "the feed image has no frame"
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))).convert("RGB"), np.float32)

    def wait_change(self, region, before: np.ndarray, threshold: float, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        diff = 0.0
        while time.monotonic() < deadline:
            diff = float(np.abs(self.crop(region) - before).mean())
            if diff > threshold:
                return diff
            time.sleep(0.25)
        raise AssertionError(f"region {region} changed only by {diff:.2f} (wanted > {threshold}) in {timeout} s")

    def wait_still(self, region, timeout: float = 120) -> np.ndarray:
        """The region once it stops changing (two crops 0.5 s apart within 0.5 of each other)."""
        deadline = time.monotonic() + timeout
        last = self.crop(region)
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.crop(region)
            if float(np.abs(now - last).mean()) < 0.5:
                return now
            last = now
        raise AssertionError(f"region {region} kept changing for {timeout} s")

    def tab(self, name: str) -> None:
        self.page.click(f"nav.tabs button[data-target=tab-{name}]")

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


@pytest.fixture(scope="module")
def ui(server, browser):
    page = Page(browser, server.url)
    page.open()
    page.page.wait_for_function("document.getElementById('feed').naturalWidth > 0", timeout=180_000)
    yield page
    page.page.close()


def test_page_loads_without_console_errors(ui, server):
    page = ui.page
    assert page.title() == "Greenroom"
    for name in ("talkinghead", "tts", "classify", "imagefx"):
        assert page.locator("#health .pill.ok", has_text=name).count() == 1
    assert page.locator("#emotions .emotion").count() == 28
    assert page.locator("#instance-select option").count() >= 1
    assert page.eval_on_selector("#feed", "img => [img.naturalWidth, img.naturalHeight]") == [512, 512]
    # the backdrop is set behind the transparent feed
    page.wait_for_function("getComputedStyle(document.getElementById('backdrop')).backgroundImage.includes('url(')")
    ui.shot("01-loaded")
    assert ui.errors == []


def test_feed_updates(ui, server):
    iid = ui.page.eval_on_selector("#instance-select", "s => s.value")
    sent = requests.get(f"{server.url}/api/talkinghead/status", params={"instance_id": iid}, timeout=30).json()
    assert sent["feeds"] >= 1  # the page's <img> holds the feed open
    before = ui.crop(EYES)
    r = requests.post(f"{server.url}/api/talkinghead/set_overrides", timeout=30,
                      json={"instance_id": iid, "overrides": {"eye_wink_left_index": 1.0, "eye_wink_right_index": 1.0}})
    assert r.status_code == 200, r.text
    try:
        ui.wait_change(EYES, before, 4.0)  # the picture in the page follows the server
    finally:
        requests.post(f"{server.url}/api/talkinghead/set_overrides", json={"instance_id": iid, "overrides": {}}, timeout=30)
    later = requests.get(f"{server.url}/api/talkinghead/status", params={"instance_id": iid}, timeout=30).json()
    assert later["frames"]["sent"] > sent["frames"]["sent"]
    ui.wait_change(EYES, ui.crop(EYES), 4.0)  # eyes open again


def test_emotion_click_changes_the_avatar(ui, server):
    ui.tab("avatar")
    before = ui.wait_still(FACE)
    ui.page.click("#emotions .emotion[data-emotion=surprise]")
    ui.page.wait_for_selector("#emotions .emotion.active[data-emotion=surprise]")
    ui.wait_change(FACE, before, 2.5)
    iid = ui.page.eval_on_selector("#instance-select", "s => s.value")
    status = requests.get(f"{server.url}/api/talkinghead/status", params={"instance_id": iid}, timeout=30).json()
    assert status["emotion"] == "surprise"
    ui.shot("02-emotion-surprise")
    ui.page.click("#emotions .emotion[data-emotion=neutral]")
    ui.page.wait_for_selector("#emotions .emotion.active[data-emotion=neutral]")


def test_chain_editor_adds_a_filter_and_the_frame_changes(ui, server):
    ui.tab("style")
    page = ui.page
    page.wait_for_selector("#chain .empty-note")  # the test server starts without filters
    whole = (0, 0, 512, 512)
    before = ui.wait_still(whole)
    page.select_option("#filter-picker", "monochrome_display")
    page.click("#add-filter")
    page.wait_for_selector("#chain .step[data-filter=monochrome_display]")
    # the parameter controls come from the introspection data
    params = page.locator("#chain .step[data-filter=monochrome_display] .params > *").count()
    assert params >= 2
    ui.wait_change(whole, before, 3.0)
    iid = page.eval_on_selector("#instance-select", "s => s.value")
    chain = requests.get(f"{server.url}/api/talkinghead/animator_settings", params={"instance_id": iid},
                         timeout=30).json()["postprocessor_chain"]
    assert [step[0] for step in chain] == ["monochrome_display"]
    ui.shot("03-filter-chain")
    page.click("#chain .step[data-filter=monochrome_display] button.remove")
    page.wait_for_selector("#chain .empty-note")
    ui.wait_change(whole, ui.crop(whole), 3.0)
    assert ui.errors == []


def test_speak_plays_audio_and_the_mouth_moves(ui, server):
    page = ui.page
    ui.tab("speech")
    page.fill("#speech-text", "Hello there! Look at my mouth, I am talking to you.")
    ui.wait_still(FACE)
    idle = [ui.crop(MOUTH) for _ in range(6)]
    base = idle[0]
    noise = max(float(np.abs(a - base).mean()) for a in idle)
    page.evaluate("""() => { window.__playing = false;
        document.getElementById('speech-audio').addEventListener('playing', () => { window.__playing = true; }); }""")
    page.click("#speak-button")
    page.wait_for_function("window.__playing", timeout=240_000)
    # the badge shows once the server has acknowledged /speak/start, a round trip after "playing"
    page.wait_for_selector("#speaking-badge", state="visible", timeout=30_000)
    diffs, shot = [], False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not page.evaluate("document.getElementById('speech-audio').ended"):
        diffs.append(float(np.abs(ui.crop(MOUTH) - base).mean()))
        if not shot and diffs[-1] > noise + 3:
            ui.shot("04-speaking")
            shot = True
        time.sleep(0.05)
    state = page.evaluate("(() => { const a = document.getElementById('speech-audio'); return [a.currentTime, a.duration]; })()")
    assert state[0] > 0.5, f"audio did not advance: {state}"
    assert page.locator("#words .word").count() >= 8
    assert max(diffs) > noise + 3.0, f"mouth changed by {max(diffs):.2f} at most (idle noise {noise:.2f})"
    assert ui.errors == []


def current_instance(ui) -> str:
    return ui.page.eval_on_selector("#instance-select", "s => s.value")


def status_of(server, iid: str) -> dict:
    return requests.get(f"{server.url}/api/talkinghead/status", params={"instance_id": iid}, timeout=30).json()


def test_morph_slider_and_pose_hint_reach_the_instance(ui, server):
    page = ui.page
    ui.tab("avatar")
    iid = current_instance(ui)
    number = page.locator(".morph[data-morph=mouth_smirk] input.num")
    number.fill("0.8")
    number.press("Enter")
    page.wait_for_selector(".morph.set[data-morph=mouth_smirk]")
    deadline = time.monotonic() + 10
    while status_of(server, iid)["overrides"].get("mouth_smirk") != pytest.approx(0.8):
        assert time.monotonic() < deadline, status_of(server, iid)["overrides"]
        time.sleep(0.2)
    page.click(".morph[data-morph=mouth_smirk] button.close")
    page.wait_for_selector(".morph.set[data-morph=mouth_smirk]", state="detached")
    assert "mouth_smirk" not in status_of(server, iid)["overrides"]
    page.click("button[data-hint=look_left]")
    deadline = time.monotonic() + 10
    while status_of(server, iid)["hint"] != "look_left":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    page.click("button[data-hint=new_sway]")


def test_instances_are_created_switched_and_deleted(ui, server):
    page = ui.page
    first = current_instance(ui)
    count = page.locator("#instance-select option").count()
    page.select_option("#character-select", "lambda_01")
    page.click("#new-instance")
    page.wait_for_function(f"document.querySelectorAll('#instance-select option').length === {count + 1}", timeout=60_000)
    second = current_instance(ui)
    assert second != first and "lambda_01" in page.inner_text("#instance-select")
    page.wait_for_function(f"document.getElementById('feed').src.includes('instance_id={second}')")
    page.wait_for_function("document.getElementById('feed').naturalWidth > 0", timeout=120_000)
    page.select_option("#instance-select", first)
    page.wait_for_function(f"document.getElementById('feed').src.includes('instance_id={first}')")
    page.select_option("#instance-select", second)
    page.click("#stage-toolbar button:has-text('Delete')")
    page.wait_for_function(f"document.querySelectorAll('#instance-select option').length === {count}", timeout=60_000)
    ids = [i["instance_id"] for i in requests.get(f"{server.url}/api/talkinghead/instances", timeout=30).json()["instances"]]
    assert second not in ids and current_instance(ui) == first
    page.wait_for_function("document.getElementById('feed').naturalWidth > 0", timeout=120_000)
    assert ui.errors == []


def test_settings_are_saved_and_loaded_as_json(ui, server, tmp_path):
    page = ui.page
    ui.tab("style")
    iid = current_instance(ui)
    with page.expect_download() as download:
        page.click("button:has-text('Save settings')")
    saved = tmp_path / "settings.json"
    download.value.save_as(saved)
    data = json.loads(saved.read_text())
    assert data["target_fps"] == 15 and data["postprocessor_chain"] == []
    data.update(target_fps=12, postprocessor_chain=[["desaturate", {}]])
    saved.write_text(json.dumps(data))
    with page.expect_file_chooser() as chooser:
        page.click("button:has-text('Load settings')")
    chooser.value.set_files(str(saved))
    page.wait_for_selector("#chain .step[data-filter=desaturate]")
    settings = requests.get(f"{server.url}/api/talkinghead/animator_settings", params={"instance_id": iid}, timeout=30).json()
    assert settings["target_fps"] == 12 and [s[0] for s in settings["postprocessor_chain"]] == ["desaturate"]
    data.update(target_fps=15, postprocessor_chain=[])
    saved.write_text(json.dumps(data))
    with page.expect_file_chooser() as chooser:
        page.click("button:has-text('Load settings')")
    chooser.value.set_files(str(saved))
    page.wait_for_selector("#chain .empty-note")
    assert ui.errors == []


def test_speak_api_schedules_cancels_and_names_errors(ui, server):
    """The three lip-sync routes over plain HTTP (the page's own calls are covered above)."""
    url = server.url
    iid = ui.page.eval_on_selector("#instance-select", "s => s.value")
    first = requests.post(f"{url}/api/talkinghead/speak", json={"instance_id": iid, "text": "One two."}, timeout=300)
    assert first.status_code == 200, first.text
    reply = first.json()
    assert reply["format"] == "wav" and reply["media_type"] == "audio/wav" and not reply["started"]
    assert base64.b64decode(reply["audio"])[:4] == b"RIFF" and reply["keyframes"] > 4
    assert len(reply["words"]) == 2 and reply["words"][0]["start"] < reply["words"][1]["start"]
    start = requests.post(f"{url}/api/talkinghead/speak/start", timeout=30,
                          json={"instance_id": iid, "utterance_id": reply["utterance_id"], "offset": 0.2})
    assert start.status_code == 200 and start.json()["lipsync"]["utterance"]["state"] == "playing"
    # a new utterance replaces it: the old id is refused, stop of the old id does nothing
    second = requests.post(f"{url}/api/talkinghead/speak", timeout=300,
                           json={"instance_id": iid, "text": "Three.", "autostart": True, "format": "mp3"}).json()
    assert second["started"] and second["utterance_id"] != reply["utterance_id"]
    assert base64.b64decode(second["audio"])[:3] == b"ID3"  # encoded by the tts module's tts.encode service
    stale = requests.post(f"{url}/api/talkinghead/speak/start", timeout=30,
                          json={"instance_id": iid, "utterance_id": reply["utterance_id"]})
    assert stale.status_code == 409 and second["utterance_id"] in stale.json()["error"]
    assert requests.post(f"{url}/api/talkinghead/speak/stop", timeout=30,
                         json={"instance_id": iid, "utterance_id": reply["utterance_id"]}).json()["stopped"] is False
    assert requests.post(f"{url}/api/talkinghead/speak/stop", json={"instance_id": iid}, timeout=30).json()["stopped"]
    bad = {"voice": ("voice", {"text": "x", "voice": "nobody"}), "text": ("text", {"text": ""}),
           "speed": ("speed", {"text": "x", "speed": 9}), "offset": ("offset", {"offset": -1})}
    for name, (field, body) in bad.items():
        path = "/api/talkinghead/speak/start" if name == "offset" else "/api/talkinghead/speak"
        r = requests.post(f"{url}{path}", json={"instance_id": iid, **body}, timeout=60)
        assert r.status_code == 400 and field in r.json()["error"], (name, r.text)
    r = requests.post(f"{url}/api/talkinghead/speak", json={"instance_id": "nobody-here", "text": "x"}, timeout=30)
    assert r.status_code == 404 and "nobody-here" in r.json()["error"]


def test_classify_ranks_and_applies_to_the_avatar(ui, server):
    page = ui.page
    ui.tab("classify")
    page.fill("#classify-text", "I am so angry, this is outrageous and I hate it!")
    page.click("#classify-button")
    page.wait_for_selector("#ranking li.top")
    assert page.locator("#ranking li").count() == 28
    top = page.get_attribute("#ranking li.top", "data-label")
    page.click("#apply-emotion")
    page.wait_for_selector(f"#emotions .emotion.active[data-emotion={top}]", state="attached")
    iid = page.eval_on_selector("#instance-select", "s => s.value")
    deadline = time.monotonic() + 10
    while requests.get(f"{server.url}/api/talkinghead/status", params={"instance_id": iid},
                       timeout=30).json()["emotion"] != top:
        assert time.monotonic() < deadline, "the avatar did not take the classified emotion"
        time.sleep(0.2)
    ui.shot("05-classify")


def test_settings_form_shows_server_errors(ui, server):
    page = ui.page
    ui.tab("settings")
    page.click("details.module-settings[data-module=tts] > summary")
    field = page.locator("details[data-module=tts] .field[data-field=sample_text] input")
    field.fill("")  # min_length 1: the server answers 422 naming the field
    page.click("details[data-module=tts] button[type=submit]")
    error = page.locator("details[data-module=tts] .field[data-field=sample_text] .field-error")
    error.wait_for()
    assert "sample_text" in page.inner_text("details[data-module=tts] .form-status") or error.inner_text()
    assert page.locator("details[data-module=tts] .field.invalid").count() == 1
    ui.shot("06-settings-error")
    # a good value applies
    field.fill("Testing one two.")
    page.click("details[data-module=tts] button[type=submit]")
    page.wait_for_selector("details[data-module=tts] .form-status:has-text('Applied')")
    values = requests.get(f"{server.url}/api/modules/tts/schema", timeout=30).json()["values"]
    assert values["sample_text"] == "Testing one two."
    ui.errors.clear()  # Chromium itself logs the refused request ("status of 422") as a console error


def instances_of(server) -> list[str]:
    return [i["instance_id"] for i in requests.get(f"{server.url}/api/talkinghead/instances", timeout=30).json()["instances"]]


def wait_for(what, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while not (value := what()):
        assert time.monotonic() < deadline, f"{message} not met in {timeout} s"
        time.sleep(0.25)
    return value


def test_an_instance_the_server_lost_is_created_again_with_its_settings(ui, server):
    """A restarted server, or a replaced worker behind a balancer, answers 404 naming the instance on stage:
    the page loads it again under the same id, with the emotion, morph override and filter chain it had sent,
    and the feed resumes, with nobody touching the page."""
    page = ui.page
    iid = current_instance(ui)
    ui.tab("style")
    page.select_option("#filter-picker", "monochrome_display")
    page.click("#add-filter")
    ui.tab("avatar")
    page.click("#emotions .emotion[data-emotion=joy]")
    number = page.locator(".morph[data-morph=mouth_smirk] input.num")
    number.fill("0.6")
    number.press("Enter")
    wait_for(lambda: (s := status_of(server, iid))["emotion"] == "joy" and "mouth_smirk" in s["overrides"], 20, "sent")
    sent_at = time.time() * 1000
    page.wait_for_function(f"Number(document.getElementById('stage').dataset.rememberedAt) > {sent_at}", timeout=30_000)
    before = status_of(server, iid)
    settings = requests.get(f"{server.url}/api/talkinghead/animator_settings", params={"instance_id": iid}, timeout=30).json()
    assert [step[0] for step in settings["postprocessor_chain"]] == ["monochrome_display"]

    requests.post(f"{server.url}/api/talkinghead/unload", json={"instance_id": iid}, timeout=30).raise_for_status()
    wait_for(lambda: iid in instances_of(server), 60, "the instance created again")
    wait_for(lambda: status_of(server, iid)["overrides"], 30, "its overrides restored")
    again = status_of(server, iid)
    keys = ("character", "image_digest", "emotion", "overrides")
    assert [again[k] for k in keys] == [before[k] for k in keys]
    assert requests.get(f"{server.url}/api/talkinghead/animator_settings", params={"instance_id": iid},
                        timeout=30).json() == settings
    wait_for(lambda: status_of(server, iid)["feeds"] >= 1, 30, "the feed reopened")
    sent = status_of(server, iid)["frames"]["sent"]
    wait_for(lambda: status_of(server, iid)["frames"]["sent"] > sent, 30, "frames flowing again")
    page.wait_for_selector("#stage-message", state="hidden", timeout=30_000)
    assert current_instance(ui) == iid
    ui.shot("07-instance-created-again")
    # back to the state the other tests expect
    page.click(".morph[data-morph=mouth_smirk] button.close")
    page.click("#emotions .emotion[data-emotion=neutral]")
    ui.tab("style")
    page.click("#chain .step[data-filter=monochrome_display] button.remove")
    page.wait_for_selector("#chain .empty-note")
    ui.tab("avatar")
    assert [e for e in ui.errors if "404" not in e] == []  # Chromium logs the 404 that told the page
    ui.errors.clear()


def test_it_stops_re_creating_an_instance_that_keeps_getting_lost(ui, server):
    """No reload loop: an instance lost again after each re-creation is created again a few times (with growing
    delays), then the page stops and says what happened; Load starts it again."""
    page = ui.page
    iid = current_instance(ui)
    gave_up = "document.getElementById('stage-message').textContent.includes('could not be created again')"
    created_again = -1  # the first unload is of the original
    deadline = time.monotonic() + 150
    while not page.evaluate(gave_up):
        assert time.monotonic() < deadline, f"the page never gave up ({created_again} re-creations)"
        if iid in instances_of(server):
            created_again += 1
            requests.post(f"{server.url}/api/talkinghead/unload", json={"instance_id": iid}, timeout=30).raise_for_status()
        time.sleep(0.3)
    assert created_again <= 3
    assert iid in page.inner_text("#stage-message")  # and why: the last try's error, or "lost it again"
    ui.shot("08-instance-lost")
    time.sleep(8)  # longer than the longest back-off: no further try
    assert iid not in instances_of(server)
    page.select_option("#character-select", "lambda_00")
    page.click("#load-character")
    wait_for(lambda: iid in instances_of(server), 60, "Load created it again")
    page.wait_for_selector("#stage-message", state="hidden", timeout=60_000)
    assert [e for e in ui.errors if "404" not in e] == []
    ui.errors.clear()


def test_secure_server_asks_for_the_key_once(browser, tmp_path):
    key_file = tmp_path / "key.txt"
    key_file.write_text("s3cret-key-for-the-page\n")
    server = ServerProcess(["--secure", "--api-key-file", str(key_file), "--enable-modules=imagefx"])
    try:
        page = Page(browser, server.url)
        page.page.goto(f"{server.url}/ui/")
        page.page.wait_for_selector("#key-dialog[open]")
        page.page.fill("#key-input", "s3cret-key-for-the-page")
        page.page.click("#key-dialog button[value=ok]")
        page.page.wait_for_selector("body[data-ready=true]", timeout=60_000)
        page.tab("modules")
        page.page.wait_for_selector("table.modules tr[data-module=imagefx] .pill.ok")
        page.tab("settings")
        page.page.click("details.module-settings[data-module=imagefx] > summary")
        page.page.wait_for_selector("details[data-module=imagefx] .schema-form")
        assert page.page.locator("#key-dialog[open]").count() == 0  # asked once only
        page.tab("avatar")
        assert "talkinghead module" in page.page.inner_text("#tab-avatar")
        page.shot("07-secure")
        unexpected = [e for e in page.errors if "401" not in e]
        assert unexpected == []
        page.page.close()
    finally:
        server.stop()


# A panel as a third-party module ships it: the shell's helpers imported by URL, its own API called with them.
GREETER_JS = """import {api} from "../../js/api.js";
import {h, card} from "../../js/dom.js";

export async function mount(container, {module}) {
  const {greeting} = await api(`api/${module}/hello`);
  container.replaceChildren(card("Greeter", h("p", {id: "greeting"}, greeting)));
}
"""
GRUMPY_JS = 'export function mount() { throw new Error("grumpy refuses to mount"); }\n'


@pytest.fixture
def plugin_page(browser, make_config, tmp_path):
    """The page of a server (waitress, in this process) with two throw-away plugins: greeter, whose panel
    works, and grumpy, whose panel throws."""
    modules = []
    for name, script in (("greeter", GREETER_JS), ("grumpy", GRUMPY_JS)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "panel.js").write_text(script)
        modules.append(panel_module(name, tmp_path / name))
    app = create_app(make_config(enable=["greeter", "grumpy"]), plugins=[("panels", plugin(*modules))], discover=False)
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    page = Page(browser, f"http://127.0.0.1:{server.effective_port}")
    yield page
    page.page.close()
    server.close()


def test_a_third_party_module_adds_a_tab(plugin_page):
    page = plugin_page.page
    plugin_page.open("#greeter")
    tabs = page.locator("nav.tabs button").all_inner_texts()
    assert tabs == ["Greeter", "Grumpy", "Settings", "Modules"]
    assert page.inner_text("#tab-greeter #greeting") == "hello from greeter"  # its script ran and called its API
    plugin_page.tab("grumpy")
    assert "grumpy refuses to mount" in page.inner_text("#tab-grumpy .error-note")
    plugin_page.tab("settings")  # the settings forms are built from the schemas, as for every module
    assert page.locator("details.module-settings[data-module=greeter]").count() == 1
    assert page.locator("#stage-col").is_hidden()  # no panel put anything on the stage
    plugin_page.shot("08-third-party-panel")
    assert plugin_page.errors == []
