# SPDX-License-Identifier: BSD-2-Clause
"""Colour grading: desaturation with tint and hue bandpass, monochrome displays, posterization."""
from __future__ import annotations

import numpy as np

from .. import kernels as K
from ..colorspace import LUMA, linear_to_srgb, srgb_to_linear
from ..context import Context
from ..params import Bool, Color, Float, Int
from ..registry import register

LUT_SIZE = 4096


@register("desaturate", dynamic=False, order=3.5, params=[
    Float("strength", 1.0, 0.0, 1.0, "0 keeps the colours, 1 makes the image fully grey (times the tint)."),
    Color("tint_rgb", (1.0, 1.0, 1.0), "Colour the grey image is multiplied by, e.g. sepia [1, 0.8, 0.6]."),
    Color("bandpass_reference_rgb", (1.0, 0.0, 0.0), "Hue kept in colour when bandpass_q > 0."),
    Float("bandpass_q", 0.0, 0.0, 1.0, "Width of the kept hue band; 0 desaturates every hue."),
])
def desaturate(planes: np.ndarray, ctx: Context, strength: float, tint_rgb: tuple[float, float, float],
               bandpass_reference_rgb: tuple[float, float, float], bandpass_q: float) -> None:
    """Colour grading: blend toward luminance times a tint. With the hue bandpass, colours near a
    reference hue stay saturated (e.g. keep only the reds). Alpha is unchanged."""
    if strength <= 0:
        return
    y, tmp, weight, u = ctx.scratch(4)
    K.luminance(planes, y, tmp)
    if bandpass_q <= 0:
        K.mix_toward(planes, y, np.float32(strength), tmp, tint_rgb)
        return
    ref = np.asarray(bandpass_reference_rgb, np.float32)
    ref_y = float(ref @ LUMA)
    ref_u, ref_v = ref[2] - ref_y, ref[0] - ref_y
    ref_norm = max(float(np.hypot(ref_u, ref_v)), 1e-6)
    # opponent-colour chroma vector (B - Y, R - Y); cosine of the hue angle to the reference
    np.subtract(planes[2], y, out=u)
    np.subtract(planes[0], y, out=tmp)
    np.multiply(u, np.float32(ref_u / ref_norm), out=weight)
    weight += tmp * np.float32(ref_v / ref_norm)
    np.hypot(u, tmp, out=u)
    u += K.EPS
    weight /= u  # cos(angle)
    # distance 0 (same hue) .. 1 (opposite); keep = 1 - (d / q)^2 inside the band
    weight *= np.float32(-0.5)
    weight += np.float32(0.5)
    weight *= np.float32(1.0 / bandpass_q)
    np.square(weight, out=weight)
    np.minimum(weight, 1.0, out=weight)  # now 1 - keep
    weight *= np.float32(strength)
    K.mix_toward(planes, y, weight, tmp, tint_rgb)


@register("monochrome_display", dynamic=False, order=11.0, params=[
    Float("strength", 1.0, 0.0, 1.0, "How far toward monochrome; 1 is fully monochrome."),
    Color("tint_rgb", (1.0, 1.0, 1.0), "Phosphor colour: green [0.5, 1, 0.5], amber [1, 0.5, 0.2]."),
])
def monochrome_display(planes: np.ndarray, ctx: Context, strength: float,
                       tint_rgb: tuple[float, float, float]) -> None:
    """A monochrome monitor: brightness only, in the phosphor's colour. Put it late in the chain
    so that earlier colour noise collapses into brightness noise."""
    if strength <= 0:
        return
    y, tmp = ctx.scratch(2)
    K.luminance(planes, y, tmp)
    K.mix_toward(planes, y, np.float32(strength), tmp, tint_rgb)


def _posterize_lut(levels: int) -> np.ndarray:
    """Linear value (quantised to LUT_SIZE steps) -> linear value of the nearest of ``levels`` sRGB levels."""
    x = np.arange(LUT_SIZE, dtype=np.float32) / (LUT_SIZE - 1)
    q = np.round(linear_to_srgb(x) * (levels - 1)) / (levels - 1)
    return srgb_to_linear(q)


BAYER4 = (np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], np.float32) + 0.5) / 16 - 0.5


@register("posterize", dynamic=False, order=11.5, params=[
    Int("levels", 6, 2, 64, "Brightness levels per colour channel (in perceptual sRGB steps)."),
    Bool("dither", False, "Ordered (Bayer) dithering between levels, for an 8-bit look."),
])
def posterize(planes: np.ndarray, ctx: Context, levels: int, dither: bool) -> None:
    """Fewer colours: each channel snaps to a few evenly spaced sRGB levels (optionally dithered)."""
    _, h, w = planes.shape
    tmp, idx_f = ctx.scratch(2)
    index = ctx.shared_buffer("posterize-index", (h, w), np.intp)
    if not dither:
        lut = ctx.cached(("posterize-lut", levels), lambda: _posterize_lut(levels))
        for c in range(3):
            np.clip(planes[c], 0.0, 1.0, out=tmp)
            tmp *= np.float32(LUT_SIZE - 1)
            tmp += np.float32(0.5)
            np.copyto(index, tmp, casting="unsafe")
            np.take(lut, index, out=planes[c], mode="clip")
        return
    to_srgb = ctx.cached("srgb-lut", lambda: linear_to_srgb(np.arange(LUT_SIZE, dtype=np.float32) / (LUT_SIZE - 1)))
    back = ctx.cached(("level-lut", levels), lambda: srgb_to_linear(np.arange(levels, dtype=np.float32) / (levels - 1)))
    threshold = ctx.cached("bayer", lambda: np.tile(BAYER4, (-(-h // 4), -(-w // 4)))[:h, :w].copy())
    for c in range(3):
        np.clip(planes[c], 0.0, 1.0, out=tmp)
        tmp *= np.float32(LUT_SIZE - 1)
        tmp += np.float32(0.5)
        np.copyto(index, tmp, casting="unsafe")
        np.take(to_srgb, index, out=idx_f, mode="clip")
        idx_f *= np.float32(levels - 1)
        idx_f += threshold
        idx_f += np.float32(0.5)
        np.copyto(index, idx_f, casting="unsafe")
        np.take(back, index, out=planes[c], mode="clip")
