# SPDX-License-Identifier: BSD-2-Clause
"""Analog video filters: low resolution, chroma subsampling, sync faults and VHS artefacts."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image
from scipy import ndimage

from .. import kernels as K
from ..colorspace import LUMA
from ..context import Context
from ..params import Bool, Choice, Float, Int
from ..registry import register
from .common import glitch_count, held, shift_rows, vhs_blend
from .noise import noise_view

VHS_STREAK = (0.5, 8.0)
"""VHS noise is blurred along the scan line only: (sigma_y, sigma_x) in pixels."""

VHS_GAMMA = 2.2
"""Tape noise is even in the gamma-encoded signal, so in linear light it is dark with bright specks."""


@register("analog_lowres", dynamic=False, order=5.0, params=[
    Float("sigma", 1.5, 0.1, 3.0, "Blur in pixels: how much resolution the analog signal lost."),
])
def analog_lowres(planes: np.ndarray, ctx: Context, sigma: float) -> None:
    """A low-resolution analog signal: a slight Gaussian blur of the whole picture."""
    a, b = ctx.scratch(2)
    K.blur_premultiplied(planes, sigma, a, b)


def _to_yuv(planes: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray, tmp: np.ndarray) -> None:
    K.luminance(planes, y, tmp)
    np.subtract(planes[2], y, out=u)
    np.subtract(planes[0], y, out=v)


def _from_yuv(planes: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
    np.add(y, v, out=planes[0])
    np.add(y, u, out=planes[2])
    # G from Y = 0.2126 R + 0.7152 G + 0.0722 B
    np.multiply(planes[0], -LUMA[0], out=planes[1])
    planes[1] -= planes[2] * LUMA[2]
    planes[1] += y
    planes[1] *= np.float32(1.0 / LUMA[1])
    np.clip(planes[:3], 0.0, 1.0, out=planes[:3])


@register("chroma_subsample", dynamic=False, order=5.5, params=[
    Choice("mode", "analog", ("analog", "digital"), "analog: colour smeared sideways; digital: blocky colour."),
    Choice("subsampling", "4:2:0", ("4:2:0", "4:2:2"), "Digital mode: colour at half width and height, "
           "or half width only."),
    Choice("upscale", "nearest", ("nearest", "bilinear"), "Digital mode: how colour is scaled back up."),
    Bool("double_size", True, "Digital mode: quarter instead of half width (4:1:0 / 4:1:1)."),
    Float("sigma", 4.0, 0.1, 7.0, "Analog mode: horizontal colour smear in pixels."),
])
def chroma_subsample(planes: np.ndarray, ctx: Context, mode: str, subsampling: str, upscale: str,
                     double_size: bool, sigma: float) -> None:
    """Lower colour resolution than brightness resolution, as every video format has."""
    _, h, w = planes.shape
    y, u, v, tmp = ctx.scratch(4)
    _to_yuv(planes, y, u, v, tmp)
    if mode == "analog":
        for p in (u, v):
            ndimage.gaussian_filter1d(p, sigma, axis=1, output=tmp, mode="nearest", truncate=3.0)
            np.copyto(p, tmp)
    else:
        fx = 4 if double_size else 2
        fy = 2 if subsampling == "4:2:0" else 1
        for p in (u, v):
            small = np.array(Image.fromarray(p).reduce((fx, fy)), dtype=np.float32)
            if upscale == "nearest":
                p[...] = np.repeat(np.repeat(small, fy, axis=0), fx, axis=1)[:h, :w]
            else:
                K.upsample_into(small, p, tmp, ctx.scratch(5)[4])
    _from_yuv(planes, y, u, v)


@register("analog_rippling_hsync", dynamic=True, order=6.0, params=[
    Float("speed", 8.0, 0.0, 32.0, "How fast the ripples move down, in pixels per frame at 25 fps."),
    Float("amplitude1", 0.001, 0.0, 0.01, "Sideways swing of the first ripple (image width = 2)."),
    Float("density1", 4.0, 1.0, 100.0, "Waves of the first ripple per frame height."),
    Float("amplitude2", 0.001, 0.0, 0.01, "Sideways swing of the second ripple."),
    Float("density2", 13.0, 1.0, 100.0, "Waves of the second ripple per frame height."),
    Float("amplitude3", 0.001, 0.0, 0.01, "Sideways swing of the third ripple."),
    Float("density3", 27.0, 1.0, 100.0, "Waves of the third ripple per frame height."),
])
def analog_rippling_hsync(planes: np.ndarray, ctx: Context, speed: float, amplitude1: float, density1: float,
                          amplitude2: float, density2: float, amplitude3: float, density3: float) -> None:
    """Unstable horizontal sync: the lines wobble sideways in waves that roll down the picture."""
    _, h, w = planes.shape
    y = (np.arange(h) - speed * ctx.frame_no) / h
    dx = sum(a * np.sin(2 * math.pi * d * y) for a, d in
             ((amplitude1, density1), (amplitude2, density2), (amplitude3, density3)))
    shift_rows(planes, ctx, np.arange(h), dx * (w / 2))


@register("analog_runaway_hsync", dynamic=True, order=7.0, params=[
    Float("strength", 0.1, 0.0, 0.5, "Sideways skew of the outermost line (image width = 2)."),
    Float("height", 0.125, 0.02, 0.5, "Part of the frame height that is skewed."),
    Float("speed", 8.0, 0.0, 32.0, "How fast the skew wobbles."),
    Float("asymmetry", 0.1, 0.0, 0.5, "How unevenly the wobble swings."),
    Float("ripple_amplitude", 0.002, 0.0, 0.01, "Extra fine ripple on the skewed lines."),
    Float("ripple_density", 20.0, 1.0, 100.0, "Waves of the ripple per frame height."),
    Choice("placement", "bottom", ("bottom", "top"), "Which edge of the picture loses sync."),
])
def analog_runaway_hsync(planes: np.ndarray, ctx: Context, strength: float, height: float, speed: float,
                         asymmetry: float, ripple_amplitude: float, ripple_density: float, placement: str) -> None:
    """Horizontal sync lost near one edge: those lines skew sideways more and more, wobbling."""
    _, h, w = planes.shape
    n = max(1, int(round(height * h)))
    p = (np.arange(n) + 1.0) / n  # 0 at the start of the band, 1 at the picture's edge
    t = speed * ctx.frame_no / 25.0
    wobble = 0.75 + 0.25 * math.sin(2 * math.pi * t) + asymmetry * math.sin(2 * math.pi * 1.618 * t)
    y = np.arange(n) / h
    dx = strength * wobble * p * p + ripple_amplitude * np.sin(2 * math.pi * ripple_density * (y - 0.3 * t))
    rows = np.arange(h - n, h) if placement == "bottom" else np.arange(n - 1, -1, -1)
    shift_rows(planes, ctx, rows, dx * (w / 2))


def _vhs_noise_rgb(planes: np.ndarray, ctx: Context, rows: slice, strength: float | np.ndarray,
                   double_size: bool, salt: int = 0) -> None:
    """Blend VHS luma noise (horizontal streaks) into the RGB of ``rows``."""
    region = planes[:, rows]
    n = noise_view(ctx, "vhs", *VHS_STREAK, double_size, shape=region.shape[1:], salt=salt, gamma=VHS_GAMMA)
    vhs_blend(region, n, strength)


@register("analog_vhs_noise", dynamic=True, order=7.5, params=[
    Float("strength", 0.2, 0.0, 1.0, "How much noise is blended in."),
    Choice("mode", "PAL", ("PAL", "NTSC"), "PAL: brightness noise only; NTSC: also colour noise."),
    Bool("double_size", True, "Noise at half resolution (coarser)."),
])
def analog_vhs_noise(planes: np.ndarray, ctx: Context, strength: float, mode: str, double_size: bool) -> None:
    """Tape noise: streaky snow along the scan lines, new every frame. Alpha is unchanged."""
    if strength <= 0:
        return
    (tmp,) = ctx.scratch(1)
    n = noise_view(ctx, "vhs", *VHS_STREAK, double_size, gamma=VHS_GAMMA)
    for c in range(3):
        np.subtract(n, planes[c], out=tmp)
        tmp *= np.float32(strength)
        planes[c] += tmp
    if mode == "NTSC":  # "never the same colour": chroma noise too, smeared wider
        u = noise_view(ctx, "vhs-chroma", 1.0, 16.0, double_size, salt=1)
        v = noise_view(ctx, "vhs-chroma", 1.0, 16.0, double_size, salt=2)
        k = np.float32(strength)
        planes[0] += (v - 0.5) * k
        planes[2] += (u - 0.5) * k
        planes[1] -= ((v - 0.5) * LUMA[0] + (u - 0.5) * LUMA[2]) * (k / LUMA[1])
        np.clip(planes[:3], 0.0, 1.0, out=planes[:3])


@register("analog_vhsglitches", dynamic=True, order=8.0, params=[
    Float("strength", 0.3, 0.0, 1.0, "How strongly the noise replaces the picture in a glitch band."),
    Float("unboost", 4.0, 0.1, 10.0, "Higher values make glitches rarer."),
    Int("max_glitches", 3, 1, 10, "Most glitch bands at once."),
    Int("min_glitch_height", 3, 1, 64, "Smallest band height in pixels."),
    Int("max_glitch_height", 6, 1, 128, "Largest band height in pixels."),
    Int("hold_min", 1, 1, 25, "Fewest frames (at 25 fps) a glitch pattern lasts."),
    Int("hold_max", 3, 1, 25, "Most frames a glitch pattern lasts."),
    Bool("double_size", True, "Noise at half resolution (coarser)."),
])
def analog_vhsglitches(planes: np.ndarray, ctx: Context, strength: float, unboost: float, max_glitches: int,
                       min_glitch_height: int, max_glitch_height: int, hold_min: int, hold_max: int,
                       double_size: bool) -> None:
    """Random horizontal bands of tape noise that flash for a few frames. Alpha is unchanged."""
    _, h, _ = planes.shape
    lo, hi = sorted((min_glitch_height, max_glitch_height))

    def make(rng: np.random.Generator) -> list[tuple[float, int]]:
        return [(float(rng.random()), int(rng.integers(lo, hi + 1)))
                for _ in range(glitch_count(rng, unboost, max_glitches))]

    for i, (pos, size) in enumerate(held(ctx, hold_min, hold_max, make)):
        y0 = int(pos * max(h - size, 0))
        _vhs_noise_rgb(planes, ctx, slice(y0, min(h, y0 + size)), strength, double_size, salt=10 + i)


@register("analog_vhs_headswitching", dynamic=True, order=8.5, params=[
    Float("speed", 8.0, 0.0, 32.0, "How fast the distortion changes."),
    Float("height", 0.035, 0.01, 0.1, "Part of the frame height at the bottom that is distorted."),
    Float("max_displacement", 0.03, 0.0, 0.1, "Largest sideways shift of the bottom line (width = 2)."),
    Float("noise_blend", 0.075, 0.0, 1.0, "Tape noise blended into the distorted band."),
    Bool("double_size", True, "Noise at half resolution (coarser)."),
])
def analog_vhs_headswitching(planes: np.ndarray, ctx: Context, speed: float, height: float,
                             max_displacement: float, noise_blend: float, double_size: bool) -> None:
    """VHS head-switching noise: the bottom lines shear sideways and get noisy."""
    _, h, w = planes.shape
    n = max(1, int(round(height * h)))
    p = (np.arange(n) + 1.0) / n
    t = speed * ctx.frame_no / 25.0
    r = np.arange(n, dtype=np.float64)
    wave = (np.sin(2 * math.pi * (0.7 * t + r / 17.0)) + np.sin(2 * math.pi * (1.3 * t - r / 7.3))
            + np.sin(2 * math.pi * (2.9 * t + r / 3.1))) / 3.0
    dx = max_displacement * p * p * (0.6 + 0.4 * wave)
    shift_rows(planes, ctx, np.arange(h - n, h), dx * (w / 2))
    if noise_blend > 0:
        _vhs_noise_rgb(planes, ctx, slice(h - n, h), np.float32(noise_blend) * p[:, None].astype(np.float32),
                       double_size)


@register("analog_vhstracking", dynamic=True, order=9.0, params=[
    Float("base_offset", 0.03, 0.0, 0.25, "Average upward shift of the picture (frame height = 1)."),
    Float("max_dynamic_offset", 0.01, 0.0, 0.1, "How far the picture drifts around that."),
    Float("speed", 0.5, 0.0, 5.0, "Drift cycles per second."),
    Bool("double_size", True, "Noise at half resolution (coarser)."),
])
def analog_vhstracking(planes: np.ndarray, ctx: Context, base_offset: float, max_dynamic_offset: float,
                       speed: float, double_size: bool) -> None:
    """Bad VHS tracking: the picture drifts up and down over a band of opaque noise at the bottom."""
    _, h, w = planes.shape
    wave = math.sin(2 * math.pi * speed * ctx.t) * 0.7 + math.sin(2 * math.pi * speed * 2.41 * ctx.t) * 0.3
    offset = max(0.0, base_offset + max_dynamic_offset * wave) * h
    if offset <= 0:
        return
    a, b = ctx.scratch(2)
    taps = K.linear_taps(np.arange(h) + offset, h)
    for p in planes:
        K.sample_rows(p, taps, a, b)
        np.copyto(p, a)
    band = min(h, int(math.ceil(offset)))
    region = planes[:, h - band:]
    n = noise_view(ctx, "vhs", *VHS_STREAK, double_size, shape=region.shape[1:], salt=3, gamma=VHS_GAMMA)
    for c in range(3):
        np.copyto(region[c], n)
    region[3] = 1.0
