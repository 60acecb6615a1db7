# SPDX-License-Identifier: BSD-2-Clause
"""Resizing RGBA frames: bilinear, bicubic, Lanczos, nearest, and an edge-preserving line-art mode.

Colour is resampled premultiplied by alpha, so pixels that are transparent never
bleed their (meaningless) colour into the silhouette; alpha goes through the same
kernel and the result is clamped so that ringing can neither make alpha leave
[0, 1] nor make colour brighter than its own coverage allows.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from . import kernels as K

UPSCALE_METHODS: tuple[str, ...] = ("bilinear", "bicubic", "lanczos", "lineart", "nearest")
"""``lineart``: bicubic, sharpened, and clamped to each source cell's range: crisp lines, no halos."""

_PIL = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
        "lanczos": Image.LANCZOS, "lineart": Image.BICUBIC}

MAX_OUTPUT_PIXELS = 8192 * 8192


def output_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(height, width) of a frame scaled by ``scale``, at least 1 x 1."""
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def upscale(frame: np.ndarray, scale: float, method: str = "bicubic", *,
            size: tuple[int, int] | None = None) -> np.ndarray:
    """A new float32 HxWx4 frame resized by ``scale`` (or to ``size`` = (width, height)) with ``method``.

    Works for any scale, also below 1 (then it antialiases like a downscale should).
    """
    if frame.ndim != 3 or frame.shape[2] != 4:
        raise ValueError(f"frame must be HxWx4, not {frame.shape}")
    planes = np.empty((4,) + frame.shape[:2], np.float32)
    for c in range(4):
        np.copyto(planes[c], frame[..., c])
    result = upscale_planar(planes, scale, method, size=size, premultiplied_ok=True)
    out = np.empty(result.shape[1:] + (4,), np.float32)
    for c in range(4):
        np.copyto(out[..., c], result[c])
    return out


def upscale_planar(planes: np.ndarray, scale: float, method: str = "bicubic", *,
                   size: tuple[int, int] | None = None, premultiplied_ok: bool = False) -> np.ndarray:
    """Like :func:`upscale` for float32 4xHxW planes; returns new planes.

    ``premultiplied_ok`` lets the function premultiply ``planes`` in place (saves a copy).
    """
    if method not in _PIL:
        raise ValueError(f"unknown upscale method {method!r}; choose one of {', '.join(UPSCALE_METHODS)}")
    _, h, w = planes.shape
    if size is None:
        if not (scale > 0):
            raise ValueError(f"scale must be positive, not {scale}")
        oh, ow = output_size(h, w, scale)
    else:
        ow, oh = int(size[0]), int(size[1])
        if ow < 1 or oh < 1:
            raise ValueError(f"size must be at least 1 x 1, not {size}")
    if oh * ow > MAX_OUTPUT_PIXELS:
        raise ValueError(f"output {ow} x {oh} is larger than {MAX_OUTPUT_PIXELS} pixels")
    src = planes if premultiplied_ok else planes.copy()
    np.clip(src[3], 0.0, 1.0, out=src[3])
    K.premultiply(src)
    if (oh, ow) == (h, w):
        out = src.copy()
    else:
        out = np.empty((4, oh, ow), np.float32)
        for c in range(4):
            out[c] = np.asarray(Image.fromarray(src[c]).resize((ow, oh), _PIL[method]))
        if method == "lineart" and oh >= h and ow >= w:
            _refine_lineart(src, out)
    np.clip(out[3], 0.0, 1.0, out=out[3])
    np.clip(out[:3], 0.0, None, out=out[:3])
    np.minimum(out[:3], out[3], out=out[:3])  # premultiplied colour can't exceed coverage
    K.unpremultiply(out, np.empty_like(out[3]))
    return out


def _cell_bounds(src: np.ndarray, oh: int, ow: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel, the min and max of the 2x2 source pixels it lies between (for each plane)."""
    pad = np.pad(src, ((0, 0), (0, 1), (0, 1)), mode="edge")
    quad = (pad[:, :-1, :-1], pad[:, 1:, :-1], pad[:, :-1, 1:], pad[:, 1:, 1:])
    lo = np.minimum(np.minimum(quad[0], quad[1]), np.minimum(quad[2], quad[3]))
    hi = np.maximum(np.maximum(quad[0], quad[1]), np.maximum(quad[2], quad[3]))
    _, h, w = src.shape
    ys = np.clip(np.floor((np.arange(oh) + 0.5) * h / oh - 0.5), 0, h - 1).astype(np.intp)
    xs = np.clip(np.floor((np.arange(ow) + 0.5) * w / ow - 0.5), 0, w - 1).astype(np.intp)
    return (lo.take(ys, axis=1, mode="clip").take(xs, axis=2, mode="clip"),
            hi.take(ys, axis=1, mode="clip").take(xs, axis=2, mode="clip"))


def _refine_lineart(src: np.ndarray, out: np.ndarray) -> None:
    """Sharpen the interpolated planes, then clamp each pixel to its source cell's range.

    Interpolation turns a one-pixel line into a soft ramp; sharpening steepens the ramp
    and the clamp removes the overshoot sharpening would add, so lines stay crisp and
    dark and flat areas stay flat, with no ringing halos.
    """
    _, oh, ow = out.shape
    lo, hi = _cell_bounds(src, oh, ow)
    detail = np.empty_like(out[0])
    step = max(1, int(round(oh / src.shape[1] / 2)))  # the blur grows with the scale factor
    for c in range(4):
        _binomial_highpass(out[c], detail, step)
        detail *= np.float32(1.5)
        out[c] += detail
    np.clip(out, lo, hi, out=out)


def _binomial_highpass(plane: np.ndarray, out: np.ndarray, k: int) -> None:
    """``plane`` minus its [1, 2, 1] blur with taps ``k`` pixels apart (sigma about 0.7 k): the detail
    an unsharp mask boosts. Edges repeat the border pixel."""
    q = np.float32(0.25)
    np.multiply(plane, np.float32(0.5), out=out)
    out[:, k:] += plane[:, :-k] * q
    out[:, :-k] += plane[:, k:] * q
    out[:, :k] += plane[:, :1] * q
    out[:, -k:] += plane[:, -1:] * q
    rows = out.copy()
    np.multiply(rows, np.float32(0.5), out=out)
    out[k:] += rows[:-k] * q
    out[:-k] += rows[k:] * q
    out[:k] += rows[:1] * q
    out[-k:] += rows[-1:] * q
    np.subtract(plane, out, out=out)
