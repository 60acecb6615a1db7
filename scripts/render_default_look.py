#!/usr/bin/env python3
"""Render docs/filters/default-chain-before-after.png: every example character posed 'joy' (mouth open)
by the real THA3 poser, without filters and under the default postprocessor chain, over the backdrop
of the filter gallery. It shows what tests/test_look.py guards: a soft glow, not a white face.

Run from the repository root: ``python scripts/render_default_look.py`` (loads THA3 on the CPU, about a
minute). The example characters are THA3's lambda_00/lambda_01 (garun for Pramook Khungurn, CC-BY-NC 4.0),
and so is the picture made from them.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from make_character_docs import HEAD, grid  # noqa: E402  (same folder: the labelled grid of the character docs)
from render_filter_docs import OUT, T, backdrop, composite  # noqa: E402

from greenroom_modules.postprocessor import DEFAULT_CHAIN, Postprocessor, linear_to_rgba8  # noqa: E402
from greenroom_modules.talkinghead import pose as P  # noqa: E402
from greenroom_modules.talkinghead.images import character_names, load_named  # noqa: E402
from greenroom_modules.talkinghead.poser import SharedPoser, to_frame  # noqa: E402

PICTURE = OUT / "default-chain-before-after.png"
CHARACTERS = ROOT / "assets" / "characters"


def posed_frames() -> list[tuple[str, np.ndarray]]:
    """Every example character in the shipped 'joy' pose, as linear RGBA frames."""
    poser = SharedPoser("separable_float", "cpu")
    joy = P.to_vector(json.loads((ROOT / "assets" / "emotions" / "joy.json").read_text(encoding="utf-8")))
    return [(name, to_frame(poser.pose(poser.character(load_named(name, CHARACTERS), name), joy)))
            for name in character_names(CHARACTERS)]


def main() -> None:
    back = backdrop(512)
    tiles = []
    for name, frame in posed_frames():
        after = frame.copy()
        Postprocessor(DEFAULT_CHAIN).apply(after, t=T)
        for image, label in ((frame, "no filters"), (after, "default chain")):
            tiles.append((composite(linear_to_rgba8(image), back).crop(HEAD), f"{name}, joy: {label}"))
    grid(tiles, 2, "The default postprocessor chain, before and after").save(PICTURE, optimize=True)
    print(f"{PICTURE.relative_to(ROOT)}: {PICTURE.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
