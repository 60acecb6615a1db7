# SPDX-License-Identifier: BSD-2-Clause
"""Numeric building blocks shared by the filters, all on planar float32 data.

Frames are processed as four contiguous planes (R, G, B, A), because numpy
runs an order of magnitude faster on contiguous rows than on interleaved
channels. Every helper writes into buffers the caller owns, so a running
stream allocates no full-size temporaries.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from .colorspace import LUMA

EPS = np.float32(1e-6)


def luminance(planes: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """Relative luminance Y of the RGB planes (linear BT.709) into ``out``."""
    np.multiply(planes[0], LUMA[0], out=out)
    np.multiply(planes[1], LUMA[1], out=tmp)
    out += tmp
    np.multiply(planes[2], LUMA[2], out=tmp)
    out += tmp
    return out


def mix_toward(planes: np.ndarray, target: np.ndarray, weight: np.ndarray | float, tmp: np.ndarray,
               tint: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> None:
    """RGB <- RGB + weight * (target * tint - RGB): blend every colour plane toward a tinted grey."""
    for c in range(3):
        np.multiply(target, np.float32(tint[c]), out=tmp)
        tmp -= planes[c]
        tmp *= weight
        planes[c] += tmp


def gain(rgb: np.ndarray, factor: np.ndarray | float, tmp: np.ndarray) -> None:
    """RGB *= factor in place, where gains above 1 roll off toward white instead of clipping.

    ``x * g / (1 + (g - 1) * x)`` for g > 1: white stays white and bright detail keeps
    its contrast. ``factor`` is a scalar or broadcasts against a plane (e.g. one gain per row)."""
    factor = np.asarray(factor, np.float32)
    knee = np.maximum(factor - np.float32(1.0), np.float32(0.0))
    for plane in rgb:
        np.multiply(plane, knee, out=tmp)
        tmp += np.float32(1.0)
        plane *= factor
        plane /= tmp


def premultiply(planes: np.ndarray) -> None:
    """RGB *= A (straight -> premultiplied alpha)."""
    planes[:3] *= planes[3]


def unpremultiply(planes: np.ndarray, tmp: np.ndarray) -> None:
    """RGB /= A where A > 0 (premultiplied -> straight), RGB = 0 where fully transparent."""
    np.maximum(planes[3], EPS, out=tmp)
    np.reciprocal(tmp, out=tmp)
    tmp[planes[3] <= EPS] = 0.0
    planes[:3] *= tmp


# --- resampling -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Taps:
    """Linear-interpolation taps along one axis: ``out[i] = w0[i]*src[i0[i]] + w1[i]*src[i0[i]+1]``."""

    i0: np.ndarray
    i1: np.ndarray
    w0: np.ndarray
    w1: np.ndarray


def linear_taps(coords: np.ndarray, size: int) -> Taps:
    """Taps sampling ``coords`` (source pixel centres are 0..size-1); outside samples repeat the edge."""
    coords = np.clip(np.asarray(coords, np.float64), 0.0, size - 1)
    i0 = np.minimum(np.floor(coords).astype(np.intp), max(size - 2, 0))
    w1 = (coords - i0).astype(np.float32)
    return Taps(i0, np.minimum(i0 + 1, size - 1), (1 - w1).astype(np.float32), w1)


def scale_taps(size: int, scale: float, center: float | None = None) -> Taps:
    """Taps that magnify an axis of ``size`` pixels by ``scale`` about ``center`` (default the middle)."""
    c = (size - 1) / 2 if center is None else center
    return linear_taps(c + (np.arange(size) - (size - 1) / 2) / scale, size)


def sample_rows(src: np.ndarray, taps: Taps, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """Resample ``src`` (H x W) along axis 0 into ``out`` (len(taps) x W)."""
    np.take(src, taps.i0, axis=0, out=out, mode="clip")
    np.take(src, taps.i1, axis=0, out=tmp, mode="clip")
    out *= taps.w0[:, None]
    tmp *= taps.w1[:, None]
    out += tmp
    return out


def sample_cols(src: np.ndarray, taps: Taps, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """Resample ``src`` (H x W) along axis 1 into ``out`` (H x len(taps))."""
    np.take(src, taps.i0, axis=1, out=out, mode="clip")
    np.take(src, taps.i1, axis=1, out=tmp, mode="clip")
    out *= taps.w0
    tmp *= taps.w1
    out += tmp
    return out


# --- blur -------------------------------------------------------------------------------------------

def downsample(plane: np.ndarray, factor: int) -> np.ndarray:
    """Box-filtered ``factor``x reduction (edges averaged over the pixels that exist); a new small array."""
    if factor == 1:
        return plane.copy()
    return np.array(Image.fromarray(plane).reduce(factor), dtype=np.float32)


def view(buffer: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A contiguous array of ``shape`` carved from the start of a (larger) scratch ``buffer``."""
    return buffer.reshape(-1)[:math.prod(shape)].reshape(shape)


def resize_taps(src_size: int, dst_size: int) -> Taps:
    """Pixel-centre-aligned bilinear taps from ``src_size`` to ``dst_size`` samples."""
    return linear_taps((np.arange(dst_size) + 0.5) * src_size / dst_size - 0.5, src_size)


def upsample_into(small: np.ndarray, out: np.ndarray, tmp: np.ndarray, tmp2: np.ndarray) -> np.ndarray:
    """Bilinear resize of ``small`` to ``out``'s shape; ``tmp``/``tmp2`` are scratch at least out's size."""
    h, w = out.shape
    sh, sw = small.shape
    a, b = view(tmp, (h, sw)), view(tmp2, (h, sw))
    sample_rows(small, resize_taps(sh, h), a, b)
    return sample_cols(a, resize_taps(sw, w), out, tmp2)


def gaussian_blur(plane: np.ndarray, sigma: float, out: np.ndarray, tmp: np.ndarray,
                  tmp2: np.ndarray) -> np.ndarray:
    """Gaussian blur of one plane into ``out`` (may be ``plane`` itself).

    Small sigmas run separably at full size; large ones on a box-reduced copy and
    are scaled back up bilinearly, which costs the same whatever the sigma.
    """
    if sigma <= 0:
        if out is not plane:
            np.copyto(out, plane)
        return out
    factor = pyramid_factor(sigma, plane.shape)
    if factor == 1:
        ndimage.gaussian_filter1d(plane, sigma, axis=1, output=tmp, mode="nearest", truncate=3.0)
        ndimage.gaussian_filter1d(tmp, sigma, axis=0, output=out, mode="nearest", truncate=3.0)
        return out
    small = downsample(plane, factor)
    rest = math.sqrt(max(sigma * sigma - factor * factor / 4.0, 0.0)) / factor
    if rest > 0.1:
        ndimage.gaussian_filter(small, rest, output=small, mode="nearest", truncate=3.0)
    return upsample_into(small, out, tmp, tmp2)


def pyramid_factor(sigma: float, shape: tuple[int, int]) -> int:
    """How much a blur of ``sigma`` may shrink the image first without visible loss."""
    factor = 1
    while sigma >= 2.0 * factor and min(shape) // (factor * 2) >= 8:
        factor *= 2
    return factor


def blur_premultiplied(planes: np.ndarray, sigma: float, tmp: np.ndarray, tmp2: np.ndarray) -> None:
    """Blur the planes in place treating alpha correctly: transparent pixels lend no colour."""
    premultiply(planes)
    for c in range(4):
        gaussian_blur(planes[c], sigma, planes[c], tmp, tmp2)
    unpremultiply(planes, tmp)
