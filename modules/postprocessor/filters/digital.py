# SPDX-License-Identifier: BSD-2-Clause
"""Digital transmission glitches: shifted line blocks and damaged rectangles."""
from __future__ import annotations

import numpy as np

from .. import kernels as K
from ..context import Context
from ..params import Choice, Color, Float, Int
from ..registry import register
from .common import glitch_count, held, shift_rows

RECT_KINDS = ("constant", "missing", "blur", "zigzag")


@register("digital_glitches", dynamic=True, order=10.0, params=[
    Float("strength", 0.05, -0.25, 0.25, "Sideways shift of a glitched block (frame width = 1); "
          "use two entries with opposite signs to shift both ways."),
    Float("unboost", 4.0, 0.1, 10.0, "Higher values make glitches rarer."),
    Int("max_glitches", 3, 1, 10, "Most glitched blocks at once."),
    Int("min_glitch_height", 20, 1, 200, "Smallest block height in pixels."),
    Int("max_glitch_height", 30, 1, 200, "Largest block height in pixels."),
    Int("hold_min", 1, 1, 25, "Fewest frames (at 25 fps) a glitch pattern lasts."),
    Int("hold_max", 3, 1, 25, "Most frames a glitch pattern lasts."),
])
def digital_glitches(planes: np.ndarray, ctx: Context, strength: float, unboost: float, max_glitches: int,
                     min_glitch_height: int, max_glitch_height: int, hold_min: int, hold_max: int) -> None:
    """Blocks of lines shifted sideways (wrapping around), as when a digital stream loses data."""
    _, h, w = planes.shape
    lo, hi = sorted((min_glitch_height, max_glitch_height))

    def make(rng: np.random.Generator) -> list[tuple[float, int, float]]:
        return [(float(rng.random()), int(rng.integers(lo, hi + 1)), float(rng.uniform(0.5, 1.0)))
                for _ in range(glitch_count(rng, unboost, max_glitches))]

    for pos, size, amount in held(ctx, hold_min, hold_max, make):
        y0 = int(pos * max(h - size, 0))
        shift = int(round(strength * amount * w))
        if shift:
            band = planes[:, y0:min(h, y0 + size)]
            band[...] = np.roll(band, shift, axis=2)


@register("rect_glitches", dynamic=True, order=10.2, params=[
    Choice("kind", "mixed", ("mixed",) + RECT_KINDS, "What a damaged rectangle shows: a constant colour, "
           "missing data (transparent), a blur, a zigzag, or a random mix."),
    Float("unboost", 2.0, 0.1, 10.0, "Higher values make glitches rarer."),
    Int("max_rects", 4, 1, 16, "Most rectangles at once."),
    Float("min_size", 0.04, 0.01, 1.0, "Smallest rectangle side (frame size = 1)."),
    Float("max_size", 0.2, 0.01, 1.0, "Largest rectangle side (frame size = 1)."),
    Int("hold_min", 2, 1, 50, "Fewest frames (at 25 fps) a rectangle stays."),
    Int("hold_max", 6, 1, 50, "Most frames a rectangle stays."),
    Color("color", (0.0, 1.0, 0.3), "Colour of 'constant' rectangles."),
    Float("blur_sigma", 6.0, 0.5, 64.0, "Blur of 'blur' rectangles in pixels (large: the average colour)."),
    Float("zigzag_amplitude", 0.02, 0.0, 0.2, "Sideways swing of 'zigzag' rows (frame width = 1)."),
    Int("zigzag_period", 8, 2, 64, "Rows per zigzag tooth."),
])
def rect_glitches(planes: np.ndarray, ctx: Context, kind: str, unboost: float, max_rects: int, min_size: float,
                  max_size: float, hold_min: int, hold_max: int, color: tuple[float, float, float],
                  blur_sigma: float, zigzag_amplitude: float, zigzag_period: int) -> None:
    """Damaged rectangles from a broken digital stream; each persists for a few frames."""
    _, h, w = planes.shape
    lo, hi = sorted((min_size, max_size))

    def make(rng: np.random.Generator) -> list[tuple[str, float, float, float, float]]:
        rects = []
        for _ in range(glitch_count(rng, unboost, max_rects)):
            rw, rh = rng.uniform(lo, hi, size=2)
            x0, y0 = rng.random(2)
            k = str(rng.choice(RECT_KINDS)) if kind == "mixed" else kind
            rects.append((k, float(x0 * (1 - rw)), float(y0 * (1 - rh)), float(rw), float(rh)))
        return rects

    for k, fx, fy, fw, fh in held(ctx, hold_min, hold_max, make):
        x0, y0 = int(fx * w), int(fy * h)
        x1, y1 = min(w, x0 + max(1, int(fw * w))), min(h, y0 + max(1, int(fh * h)))
        region = planes[:, y0:y1, x0:x1]
        if k == "constant":
            region[:3] = np.asarray(color, np.float32)[:, None, None]
            region[3] = 1.0
        elif k == "missing":
            region[...] = 0.0
        elif k == "blur":
            part = np.ascontiguousarray(region)
            tmp, tmp2 = np.empty_like(part[0]), np.empty_like(part[0])
            K.blur_premultiplied(part, blur_sigma, tmp, tmp2)
            region[...] = part
        else:
            part = np.ascontiguousarray(region)
            rows = np.arange(part.shape[1])
            tooth = (rows % (2 * zigzag_period)) / zigzag_period
            shift = zigzag_amplitude * w * (np.abs(tooth - 1.0) - 0.5)
            shift_rows(part, ctx, rows, shift, wrap=True)
            region[...] = part
