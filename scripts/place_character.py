#!/usr/bin/env python3
"""Place a cut-out character on THA3's 512x512 canvas by its eyes.

THA3 morphs a fixed square of the image (x 160-352, y 32-224), so the face has to be where the example
characters have theirs. Give the two eye centres as you read them in any image viewer; the picture is
scaled and moved so that the eyes land at the template position (midpoint x 256, y 142, 48 px apart:
between lambda_00, 56 px at y 146, and lambda_01, 40 px at y 137), and cut to 512x512 with a
transparent background:

    python scripts/place_character.py cut-out.png assets/characters/mine.png --eyes 410,388,530,380

Then try it in the pose editor (docs/characters.md). Characters drawn with small or large eyes for their
head size may need --eye-distance a little higher or lower: the head, hair included, should be about
150 px wide.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from PIL import Image

SIZE = 512
EYE_MID = (256.0, 142.0)
EYE_DISTANCE = 48.0
FACE_BOX = (160, 32, 352, 224)


def place(image: Image.Image, left: tuple[float, float], right: tuple[float, float],
          eye_distance: float = EYE_DISTANCE, eye_mid: tuple[float, float] = EYE_MID) -> Image.Image:
    """Scale and move ``image`` (RGBA) so that its eyes (image-left, image-right) land on the template."""
    if image.mode != "RGBA":
        raise ValueError(f"the picture is {image.mode}; it needs an alpha channel (remove the background first)")
    distance = math.dist(left, right)
    if distance < 2:
        raise ValueError("the two eye positions are the same point")
    scale = eye_distance / distance
    mid = ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2)
    # Resample colour premultiplied by alpha, so the cut-out's edges get no dark or bright fringe.
    premultiplied = image.convert("RGBa")
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    scaled = premultiplied.resize(size, Image.LANCZOS)
    offset = (round(eye_mid[0] - mid[0] * scale), round(eye_mid[1] - mid[1] * scale))
    canvas = Image.new("RGBa", (SIZE, SIZE), (0, 0, 0, 0))
    canvas.paste(scaled, offset)  # a plain copy, clipped at the canvas edges
    return canvas.convert("RGBA")

def problems(source: Image.Image, placed: Image.Image) -> list[str]:
    """What THA3 will not like about the result."""
    found = []
    if source.getchannel("A").getextrema()[0] > 0:
        found.append("no pixel is fully transparent: is the background removed?")
    alpha = placed.getchannel("A")
    face = alpha.crop(FACE_BOX)
    if sum(face.histogram()[250:]) < 0.3 * face.width * face.height:
        found.append("the face square (x 160-352, y 32-224) is mostly empty: check the eye positions")
    top = alpha.crop((0, 0, SIZE, 2))
    if top.getextrema()[1] > 128:
        found.append("the character touches the top edge: the head is cut off or too large")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the cut-out character (PNG with alpha)")
    parser.add_argument("target", type=Path, help="where to write the 512x512 RGBA PNG")
    parser.add_argument("--eyes", required=True, metavar="LX,LY,RX,RY",
                        help="centres of the eye on the image's left and the eye on its right, in source pixels")
    parser.add_argument("--eye-distance", type=float, default=EYE_DISTANCE,
                        help=f"distance between the eyes in the result (default {EYE_DISTANCE:g} px)")
    args = parser.parse_args(argv)
    values = [float(v) for v in args.eyes.split(",")]
    if len(values) != 4:
        parser.error("--eyes needs four numbers: LX,LY,RX,RY")
    source = Image.open(args.source)
    placed = place(source, (values[0], values[1]), (values[2], values[3]), args.eye_distance)
    placed.save(args.target)
    print(f"wrote {args.target} (512x512 RGBA)")
    for problem in problems(source, placed):
        print(f"warning: {problem}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
