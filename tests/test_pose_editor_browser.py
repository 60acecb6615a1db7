"""The pose editor page in a real headless Chromium (Debian's /usr/bin/chromium through Playwright) against a
real server process: moving a slider updates the preview, and the saved set is JSON that
load_emotion_templates accepts and that changes what the live avatar shows."""
from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
import requests
from PIL import Image

from greenroom_modules.talkinghead import pose as P
from greenroom_modules.talkinghead.templates_store import SETS_DIR_ENV

from .server_process import ROOT, ServerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
QUIET = {"postprocessor_chain": [], "blink_probability": 0.0, "sway_macro_strength": 0.0,
         "sway_micro_strength": 0.0, "target_fps": 10}
EYES = (slice(105, 185), slice(185, 335))  # rows, cols around lambda_00's eyes (angry pose) in a 512x512 frame
GLARE = ("eye_unimpressed_left_index", "eye_unimpressed_right_index")  # half-closed eyes: a glare
pytestmark = pytest.mark.slow

# The preview image's pixels in the eye region, read back through a canvas.
READ_EYES = """(img) => {
  const c = document.createElement("canvas"); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext("2d"); g.drawImage(img, 0, 0);
  return {w: img.naturalWidth, h: img.naturalHeight, data: Array.from(g.getImageData(185, 105, 150, 80).data)};
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pose-editor")
    config = folder / "plugins.toml"
    config.write_text(f'[modules.talkinghead]\ncache_dir = "{folder / "cache"}"\nprecompute_emotions = false\n')
    proc = ServerProcess(["--config", str(config), "--enable-modules=talkinghead"],
                         env={SETS_DIR_ENV: str(folder / "sets")})
    proc.sets_dir = folder / "sets"
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def frame(url: str) -> np.ndarray:
    r = requests.get(f"{url}/api/talkinghead/frame", timeout=30)
    assert r.status_code == 200, r.text
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"), dtype=np.float32)


def eye_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean difference around the eyes, after the best shift of up to 3 px: breathing moves the head a little
    (it never stops), a changed template changes the eyes themselves."""
    ref = b[EYES]
    return min(float(np.abs(a[EYES[0].start + dy:EYES[0].stop + dy, EYES[1].start + dx:EYES[1].stop + dx] - ref).mean())
               for dy in range(-3, 4) for dx in range(-3, 4))


def wait_for(predicate, timeout: float = 300, interval: float = 0.5):
    """Wait for a state; the timeout only ends a test that would otherwise hang."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(interval)


def settled_frame(url: str) -> np.ndarray:
    """The avatar's frame once it shows the exact pose: no cache work pending (low_compute shows the nearest
    cached pose until then) and the frame no longer changes (blinks and sway are off)."""
    last = [frame(url)]

    def still():
        time.sleep(1.0)
        status = requests.get(f"{url}/api/talkinghead/status", params={"instance_id": "default"}, timeout=30).json()
        now = frame(url)
        same = status.get("cache", {}).get("pending", 0) == 0 and float(np.abs(now - last[0]).mean()) < 0.2
        last[0] = now
        return same
    wait_for(still)
    return last[0]


def test_editing_saving_and_applying_a_template(server, browser, tmp_path):
    url = server.url
    r = requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_00"})
    assert r.status_code == 200, r.text
    assert requests.post(f"{url}/api/talkinghead/load_animator_settings", json=QUIET).status_code == 200
    assert requests.post(f"{url}/api/talkinghead/set_emotion", json={"emotion_name": "anger"}).ok
    before = settled_frame(url)
    # Two frames of the same emotion still differ a little (breathing). Changes must stand out from that.
    noise = max(eye_change(settled_frame(url), before) for _ in range(2))
    visible = max(1.0, 4 * noise)

    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{url}/ui/modules/talkinghead/pose-editor.html#emotion=anger")
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    assert page.locator("#pe-emotion").input_value() == "anger"
    assert page.locator("#pe-groups input[type=range]").count() == 45
    groups = page.locator("#pe-groups details summary").all_inner_texts()
    assert [g.split()[0] for g in groups] == ["Eyebrows", "Eyes", "Iris", "Mouth", "Face", "Breathing"]
    page.wait_for_selector("#pe-preview[data-renders='1']", timeout=300_000)
    first = page.locator("#pe-preview").evaluate(READ_EYES)
    assert (first["w"], first["h"]) == (512, 512)

    # Move one slider of a linked pair: both sides follow, and the preview shows the new state.
    page.locator(f"input[type=range][data-morph={GLARE[0]}]").fill("1")
    assert page.locator(f"input[type=range][data-morph={GLARE[1]}]").input_value() == "1"
    page.wait_for_function(
        """(names) => { const p = JSON.parse(document.querySelector('#pe-preview').dataset.pose || '{}');
                        return names.every((n) => p[n] === 1); }""", arg=list(GLARE), timeout=300_000)
    after = page.locator("#pe-preview").evaluate(READ_EYES)
    changed = np.abs(np.array(after["data"], dtype=np.float32) - np.array(first["data"], dtype=np.float32)).mean()
    assert changed > 1.5, f"the preview's eyes hardly changed ({changed:.2f})"
    assert "changed" in page.locator("#pe-changed").inner_text()
    page.screenshot(path=str(tmp_path / "pose-editor.png"))

    # Download: JSON that load_emotion_templates accepts, with the edit in it.
    with page.expect_download() as info:
        page.click("#pe-download")
    data = json.loads(open(info.value.path(), encoding="utf-8").read())
    assert data["anger"][GLARE[0]] == data["anger"][GLARE[1]] == 1.0
    assert set(P.EMOTIONS) <= set(data) and P.parse_templates(data)

    # Save on the server under a name.
    page.fill("#pe-set-name", "browser-angry")
    page.click("#pe-save")
    page.wait_for_function("document.querySelector('#pe-message').textContent.includes('Saved')", timeout=60_000)
    saved = json.loads((server.sets_dir / "browser-angry.json").read_text())
    assert saved == data

    # The downloaded JSON changes the live avatar's anger.
    r = requests.post(f"{url}/api/talkinghead/load_emotion_templates", data=json.dumps(data),
                      headers={"Content-Type": "application/json"})
    assert (r.status_code, r.text) == (200, "OK")
    wait_for(lambda: eye_change(frame(url), before) > visible)
    glaring = settled_frame(url)
    glare = eye_change(glaring, before)
    assert glare > visible, (glare, noise)

    # Back to the shipped templates by name, then "Apply to instance" from the page does the same again.
    r = requests.post(f"{url}/api/talkinghead/load_emotion_set", json={"name": "default"})
    assert r.status_code == 200
    wait_for(lambda: eye_change(frame(url), before) < glare / 3)
    page.select_option("#pe-instance", "default")
    page.click("#pe-apply")
    page.wait_for_function("document.querySelector('#pe-message').textContent.includes('Applied')", timeout=60_000)
    emotions = requests.get(f"{url}/api/talkinghead/emotions").json()
    assert emotions["current"] == "anger" and emotions["emotions"]["anger"][GLARE[0]] == 1.0
    wait_for(lambda: eye_change(frame(url), before) > visible)

    # Open JSON: a file edited elsewhere comes back onto the sliders.
    data["anger"]["mouth_smirk"] = 0.5
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    with page.expect_file_chooser() as chooser:
        page.click("#pe-open")
    chooser.value.set_files(str(edited))
    page.wait_for_function("document.querySelector('#pe-message').textContent.includes('edited.json')")
    assert page.locator("input[type=range][data-morph=mouth_smirk]").input_value() == "0.5"
    assert page.locator("#pe-set-name").input_value() == "edited"

    # Upload a character: it becomes a paused instance and the preview shows it.
    renders = int(page.locator("#pe-preview").get_attribute("data-renders"))
    with page.expect_file_chooser() as chooser:
        page.click("#pe-upload")
    chooser.value.set_files(str(ROOT / "assets" / "characters" / "lambda_01.png"))
    page.wait_for_function("document.querySelector('#pe-character').value.startsWith('instance:')", timeout=60_000)
    new_id = page.locator("#pe-character").input_value().split(":", 1)[1]
    listed = {i["instance_id"]: i for i in requests.get(f"{url}/api/talkinghead/instances").json()["instances"]}
    assert listed[new_id]["paused"] and listed[new_id]["character"] == "lambda_01.png"
    page.wait_for_function(f"Number(document.querySelector('#pe-preview').dataset.renders) > {renders}",
                           timeout=300_000)
    assert not problems, problems
    page.close()
