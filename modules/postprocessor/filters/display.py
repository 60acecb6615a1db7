# SPDX-License-Identifier: BSD-2-Clause
"""Display filters: hologram translucency, moving bands, scanlines, pixelization."""
from __future__ import annotations

import math

import numpy as np

from .. import kernels as K
from ..context import Context
from ..params import Bool, Choice, Float, Int
from ..registry import register


@register("translucent_display", dynamic=False, order=10.5, params=[
    Float("alpha", 0.9, 0.0, 1.0, "Opacity multiplier; lower is more see-through."),
])
def translucent_display(planes: np.ndarray, ctx: Context, alpha: float) -> None:
    """A translucent (hologram) display: multiplies the opacity."""
    planes[3] *= np.float32(alpha)


@register("banding", dynamic=True, order=12.0, params=[
    Float("strength", 0.4, 0.0, 0.9, "Brightness swing of the bands."),
    Float("density", 2.0, 0.5, 8.0, "Bands per frame height."),
    Float("speed", 16.0, 0.0, 64.0, "Downward speed in pixels per frame at 25 fps."),
])
def banding(planes: np.ndarray, ctx: Context, strength: float, density: float, speed: float) -> None:
    """Bright and dark horizontal bands rolling down the picture, as on a badly synced CRT."""
    if strength <= 0:
        return
    _, h, _ = planes.shape
    y = (np.arange(h, dtype=np.float64) - speed * ctx.frame_no) / h
    factor = (1.0 + strength * (np.sin(math.pi * density * y) ** 2 - 0.5)).astype(np.float32)
    K.gain(planes[:3], factor[:, None], ctx.scratch(1)[0])  # bright bands roll off: skin keeps its detail


@register("scanlines", dynamic=True, order=13.0, params=[
    Float("strength", 0.1, 0.0, 0.9, "How much the dimmed lines are darkened."),
    Int("field", 0, 0, 1, "Which field (even or odd lines) is dimmed first."),
    Bool("dynamic", True, "Alternate the dimmed field every frame (1/25 s), like interlaced video."),
    Bool("double_size", True, "Lines two pixels tall (better for upscaled output)."),
    Choice("channel", "Y", ("Y", "A"), "Y: darken the lines; A: make them more transparent."),
])
def scanlines(planes: np.ndarray, ctx: Context, strength: float, field: int, dynamic: bool,
              double_size: bool, channel: str) -> None:
    """CRT scanlines: every other line (or pair of lines) is dimmed."""
    if strength <= 0:
        return
    _, h, _ = planes.shape
    if dynamic:
        field ^= ctx.tick & 1
    line = 2 if double_size else 1
    target = planes[3:4] if channel == "A" else planes[:3]
    for start in range(line):  # rows with (row // line) % 2 == field
        sel = target[:, field * line + start::2 * line, :]
        sel *= np.float32(1.0 - strength)


@register("pixelize", dynamic=False, order=11.2, params=[
    Int("size", 8, 2, 64, "Block size in pixels."),
])
def pixelize(planes: np.ndarray, ctx: Context, size: int) -> None:
    """Big square pixels: each block takes its average colour (opacity-weighted) and opacity."""
    _, h, w = planes.shape
    ys = np.arange(0, h, size)
    xs = np.arange(0, w, size)
    counts_y = np.diff(np.append(ys, h))
    counts_x = np.diff(np.append(xs, w))
    area = (counts_y[:, None] * counts_x[None, :]).astype(np.float32)
    planes[:3] *= planes[3]
    sums = np.add.reduceat(np.add.reduceat(planes, ys, axis=1), xs, axis=2)
    alpha = sums[3] / area
    inv = np.where(sums[3] > 1e-6, 1.0 / np.maximum(sums[3], 1e-6), 0.0).astype(np.float32)
    blocks = np.empty_like(sums)
    blocks[:3] = sums[:3] * inv
    blocks[3] = alpha
    planes[...] = np.repeat(np.repeat(blocks, counts_y, axis=1), counts_x, axis=2)
