# SPDX-License-Identifier: BSD-2-Clause
"""Scene and camera filters: zoom, blur, bloom, chromatic aberration, grain, vignetting."""
from __future__ import annotations

import math

import numpy as np

from .. import kernels as K
from ..context import Context
from ..params import Bool, Choice, Float
from ..registry import register
from .noise import noise_view


@register("zoom", dynamic=False, order=-1.0, params=[
    Float("center_x", 0.0, -1.0, 1.0, "Horizontal centre of the zoomed view; -1 left edge, 1 right edge."),
    Float("center_y", -0.867, -1.0, 1.0, "Vertical centre; -1 top, 1 bottom. The default frames the head."),
    Float("factor", 2.0, 1.0, 4.0, "Magnification; 1 shows the whole frame."),
])
def zoom(planes: np.ndarray, ctx: Context, center_x: float, center_y: float, factor: float) -> None:
    """Simulated optical zoom: magnifies a window of the frame to fill it (bilinear).

    The window is moved inward when it would leave the frame, so no empty border appears."""
    if factor <= 1.0:
        return
    _, h, w = planes.shape

    def taps(size: int, center: float) -> K.Taps:
        half = size / factor / 2
        c = min(max((center + 1) / 2 * size, half), size - half)  # window kept inside the frame
        return K.linear_taps(c - 0.5 + (np.arange(size) + 0.5 - size / 2) / factor, size)

    rows, cols = ctx.cached(("zoom", center_x, center_y, factor),
                            lambda: (taps(h, center_y), taps(w, center_x)))
    a, b = ctx.scratch(2)
    for p in planes:
        K.sample_rows(p, rows, a, b)
        K.sample_cols(a, cols, p, b)


@register("blur", dynamic=False, order=-0.5, params=[
    Float("sigma", 8.0, 0.0, 64.0, "Blur radius (Gaussian standard deviation) in pixels."),
])
def blur(planes: np.ndarray, ctx: Context, sigma: float) -> None:
    """Gaussian blur, for example to put a backdrop out of focus behind the character.

    Transparent pixels lend no colour to their neighbours (premultiplied alpha)."""
    if sigma > 0:
        a, b = ctx.scratch(2)
        K.blur_premultiplied(planes, sigma, a, b)


@register("bloom", dynamic=False, order=0.0, params=[
    Float("threshold", 0.8, 0.0, 1.0, "Linear luminance above which pixels start to glow (fully 0.1 above it); "
          "0.8 is light skin, lower makes a face glow."),
    Float("strength", 0.3, 0.0, 2.0, "How much light the glow adds (tone-mapped: it brightens, never clips)."),
    Float("sigma", 7.0, 0.5, 32.0, "Glow radius in pixels."),
    Float("exposure", 1.0, 0.1, 5.0, "Brightness multiplier before the glow is added (above 1 highlights roll "
          "off instead of clipping); 1 keeps it."),
])
def bloom(planes: np.ndarray, ctx: Context, threshold: float, strength: float, sigma: float,
          exposure: float) -> None:
    """Fake HDR glow: bright parts bleed light into their surroundings, also past the silhouette.

    The glow is added as light and the sum is tone-mapped with ``1 - exp(-x)`` (the frame is first
    taken back through the inverse curve, so without glow it is unchanged): bright areas glow but
    never clip to flat white, and a face keeps its eyes and lines. Where the glow spills onto
    transparent pixels it raises their alpha. The glow is computed on a reduced copy (it is smooth)."""
    _, h, w = planes.shape
    if exposure != 1.0:
        K.gain(planes[:3], exposure, ctx.scratch(1)[0])
    factor = max(1, K.pyramid_factor(sigma, (h, w)))
    small = [K.downsample(np.multiply(planes[c], planes[3], out=ctx.scratch(1)[0]), factor) for c in range(3)]
    y = small[0] * np.float32(0.2126) + small[1] * np.float32(0.7152) + small[2] * np.float32(0.0722)
    # soft knee: the glow fades in over 0.1 above the threshold instead of switching on
    weight = np.clip((y - np.float32(threshold)) / np.float32(0.1), 0.0, 1.0)
    rest = math.sqrt(max(sigma * sigma - factor * factor / 4.0, 0.25)) / factor
    for c in range(3):  # each channel's transmittance exp(-strength * glow): the tone-mapped glow is 1 - it
        small[c] *= weight
        K.ndimage.gaussian_filter(small[c], rest, output=small[c], mode="constant", truncate=3.0)
        small[c] *= np.float32(-strength)
        np.exp(small[c], out=small[c])
    darkest = np.minimum(np.minimum(small[0], small[1]), small[2])
    transmit, tmp, tmp2, alpha, inv = ctx.scratch(5)
    # Premultiplied, the frame P = C*a and the glow combine as P' = 1 - (1 - P) * T (a screen in the
    # tone-mapped domain), the alpha as a' = 1 - (1 - a) * min(T); then P' <= a', so C' = P' / a' <= 1.
    K.upsample_into(darkest, alpha, tmp, tmp2)
    np.subtract(1.0, planes[3], out=inv)
    alpha *= inv
    np.subtract(1.0, alpha, out=alpha)
    np.maximum(alpha, K.EPS, out=inv)
    np.reciprocal(inv, out=inv)
    for c in range(3):
        K.upsample_into(small[c], transmit, tmp, tmp2)
        planes[c] *= planes[3]
        np.subtract(1.0, planes[c], out=planes[c])
        planes[c] *= transmit
        np.subtract(1.0, planes[c], out=planes[c])
        planes[c] *= inv
    np.copyto(planes[3], alpha)


@register("chromatic_aberration", dynamic=False, order=1.0, params=[
    Float("scale", 0.005, 0.0, 0.05, "Relative size difference of the red and blue images (lateral CA)."),
    Float("sigma", 0.0, 0.0, 3.0, "Extra softness of the red and blue images in pixels (0 = sharp)."),
])
def chromatic_aberration(planes: np.ndarray, ctx: Context, scale: float, sigma: float) -> None:
    """Lens colour fringing: red is imaged slightly larger and blue slightly smaller than green,
    so edges away from the centre get red and blue fringes. Alpha is unchanged."""
    if scale <= 0 and sigma <= 0:
        return
    _, h, w = planes.shape
    a, b = ctx.scratch(2)
    for ch, s in ((0, 1.0 + scale), (2, 1.0 - scale)):
        rows, cols = ctx.cached(("ca-taps", s), lambda s=s: (K.scale_taps(h, s), K.scale_taps(w, s)))
        if scale > 0:
            K.sample_rows(planes[ch], rows, a, b)
            K.sample_cols(a, cols, planes[ch], b)
        if sigma > 0:
            K.gaussian_blur(planes[ch], sigma, planes[ch], a, b)


@register("noise", dynamic=True, order=1.5, params=[
    Float("strength", 0.3, 0.0, 1.0, "How much the grain darkens: 0 none, 1 down to black."),
    Float("sigma", 1.0, 0.0, 3.0, "Grain size (blur of the noise) in pixels."),
    Choice("channel", "Y", ("Y", "A"), "Y: grain in the brightness; A: grain in the opacity."),
    Bool("double_size", True, "Grain at half resolution (coarser, compresses better)."),
])
def noise(planes: np.ndarray, ctx: Context, strength: float, sigma: float, channel: str,
          double_size: bool) -> None:
    """Sensor or film grain, new every 1/25 s: multiplies brightness (or opacity) by random values."""
    if strength <= 0:
        return
    n = noise_view(ctx, "grain", sigma, sigma, double_size)
    (factor,) = ctx.scratch(1)
    np.multiply(n, np.float32(strength), out=factor)
    factor += np.float32(1.0 - strength)
    if channel == "A":
        planes[3] *= factor
    else:
        planes[:3] *= factor


@register("vignetting", dynamic=False, order=2.0, params=[
    Float("strength", 0.42, 0.0, 0.5, "Darkening toward the corners; 0.5 makes the corners black."),
])
def vignetting(planes: np.ndarray, ctx: Context, strength: float) -> None:
    """Darker corners, as with a lens: RGB times cos^2 of the distance from the centre."""
    if strength <= 0:
        return
    _, h, w = planes.shape

    def make() -> np.ndarray:
        y = np.linspace(-1.0, 1.0, h)[:, None]
        x = np.linspace(-1.0, 1.0, w)[None, :]
        d = np.sqrt((x * x + y * y) / 2.0)  # 1 at the corners
        return (np.cos(strength * math.pi * d) ** 2).astype(np.float32)

    planes[:3] *= ctx.cached(("vignette", strength), make)
