# SPDX-License-Identifier: BSD-2-Clause
"""sRGB <-> linear light, luminance, and fast 8-bit conversions.

Filters work on linear values so that blurs and glows mix light the way light
mixes; images arrive and leave as 8-bit sRGB. The 8-bit paths use lookup
tables because ``pow`` over a whole frame costs more than the filters.
"""
from __future__ import annotations

import numpy as np

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
"""BT.709 / sRGB luminance weights (valid on linear values)."""

LUMA4 = np.array([0.2126, 0.7152, 0.0722, 0.0], np.float32)
"""The same weights for an RGBA pixel (alpha ignored): ``frame @ LUMA4`` is the luminance image."""

_U8_TO_LINEAR = None
_LINEAR_TO_U8 = None
_LUT_SIZE = 4096


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to linear light (the exact piecewise curve); a new float array."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] to sRGB-encoded values (the exact piecewise curve); a new float array."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


def _u8_to_linear_lut() -> np.ndarray:
    global _U8_TO_LINEAR
    if _U8_TO_LINEAR is None:
        _U8_TO_LINEAR = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)
    return _U8_TO_LINEAR


def _linear_to_u8_lut() -> np.ndarray:
    """Index ``round(x * (N-1))`` -> sRGB byte; N = 4096 keeps dark tones distinct."""
    global _LINEAR_TO_U8
    if _LINEAR_TO_U8 is None:
        x = np.arange(_LUT_SIZE, dtype=np.float64) / (_LUT_SIZE - 1)
        _LINEAR_TO_U8 = np.round(linear_to_srgb(x) * 255.0).astype(np.uint8)
    return _LINEAR_TO_U8


def rgba8_to_linear(image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 HxWx4 sRGB RGBA -> float32 HxWx4 with linear RGB and alpha in [0, 1]."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f"expected uint8 HxWx4, not {image.dtype} {image.shape}")
    if out is None:
        out = np.empty(image.shape, np.float32)
    np.take(_u8_to_linear_lut(), image, out=out)  # RGB share the sRGB table; alpha is linear already
    np.multiply(image[..., 3], np.float32(1 / 255.0), out=out[..., 3])
    return out


def linear_to_rgba8(frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 HxWx4 linear RGBA -> uint8 HxWx4 sRGB RGBA (values clipped to [0, 1])."""
    if frame.ndim != 3 or frame.shape[2] != 4:
        raise ValueError(f"expected HxWx4, not {frame.shape}")
    work = np.clip(frame, 0.0, 1.0)  # the one full-size float temporary; scaled in place below
    alpha = work[..., 3] * np.float32(255.0) + np.float32(0.5)
    index = _lut_indices(work)
    if out is None:
        out = np.empty(frame.shape, np.uint8)
    np.take(_linear_to_u8_lut(), index, out=out)
    np.copyto(out[..., 3], alpha, casting="unsafe")
    return out


def planes_to_rgba8(planes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 4xHxW linear RGBA planes (what ``Postprocessor.apply_planar`` works on) -> uint8 HxWx4 sRGB
    RGBA, the same bytes as :func:`linear_to_rgba8` of the interleaved frame, without interleaving the
    floats first."""
    if planes.ndim != 3 or planes.shape[0] != 4:
        raise ValueError(f"expected 4xHxW, not {planes.shape}")
    work = np.clip(planes, 0.0, 1.0)
    if out is None:
        out = np.empty(planes.shape[1:] + (4,), np.uint8)
    np.copyto(out[..., 3], work[3] * np.float32(255.0) + np.float32(0.5), casting="unsafe")
    index, lut = _lut_indices(work[:3]), _linear_to_u8_lut()
    for c in range(3):
        np.take(lut, index[c], out=out[..., c])
    return out


def _lut_indices(work: np.ndarray) -> np.ndarray:
    """Indices into the linear -> sRGB byte table of values already clipped to [0, 1] (``work`` is scaled
    in place)."""
    work *= np.float32(_LUT_SIZE - 1)
    work += np.float32(0.5)
    return work.astype(np.intp)  # intp: np.take would otherwise convert the indices once more
