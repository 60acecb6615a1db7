# SPDX-License-Identifier: BSD-2-Clause
"""Helpers shared by the signal and glitch filters: row shifts and patterns held for a few frames."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..context import Context


def shift_rows(planes: np.ndarray, ctx: Context, rows: np.ndarray, shift: np.ndarray,
               wrap: bool = False) -> None:
    """Shift each of ``rows`` of every plane right by ``shift`` pixels (fractional: linear interpolation).

    Pixels entering from outside repeat the edge pixel, or come from the other side with ``wrap``.
    """
    n = len(rows)
    if n == 0:
        return
    c, h, w = planes.shape
    x = ctx.shared_buffer("shift-x", (h, w))[:n]
    x[...] = np.arange(w, dtype=np.float32)
    x -= np.asarray(shift, np.float32)[:, None]
    if wrap:
        np.mod(x, w, out=x)
    else:
        np.clip(x, 0, w - 1, out=x)
    i0 = ctx.shared_buffer("shift-i0", (h, w), np.intp)[:n]
    np.copyto(i0, x, casting="unsafe")  # floor, since x >= 0
    x -= i0  # the fraction
    i1 = ctx.shared_buffer("shift-i1", (h, w), np.intp)[:n]
    np.add(i0, 1, out=i1)
    if wrap:
        i1[i1 >= w] = 0
    else:
        np.minimum(i1, w - 1, out=i1)
    base = (np.asarray(rows, np.intp) * w)[:, None]
    i0 += base
    i1 += base
    flat = planes.reshape(c, h * w)
    a = ctx.shared_buffer("shift-a", (c, h, w))[:, :n]
    b = ctx.shared_buffer("shift-b", (c, h, w))[:, :n]
    for ch in range(c):
        np.take(flat[ch], i0, out=a[ch], mode="clip")
        np.take(flat[ch], i1, out=b[ch], mode="clip")
    b -= a
    b *= x
    a += b
    planes[:, rows, :] = a


def held(ctx: Context, hold_min: int, hold_max: int, make: Callable[[np.random.Generator], Any]) -> Any:
    """A random pattern from ``make(rng)`` kept for ``hold_min``..``hold_max`` frames (at 25 fps).

    A new pattern is drawn when the hold expires, or when time jumps backwards.
    """
    st = ctx.state
    tick = ctx.tick
    if "until" not in st or tick >= st["until"] or tick < st["start"]:
        rng = ctx.rng(tick, salt=1)
        st["start"] = tick
        st["until"] = tick + int(rng.integers(hold_min, max(hold_min, hold_max) + 1))
        st["pattern"] = make(rng)
    return st["pattern"]


def glitch_count(rng: np.random.Generator, unboost: float, most: int) -> int:
    """How many glitches this time: ``rand ** unboost`` times ``most`` (high unboost: mostly none)."""
    return int(rng.random() ** unboost * (most + 1) - 1e-9)


def vhs_blend(region: np.ndarray, noise: np.ndarray, amount: np.ndarray | float) -> None:
    """RGB of ``region`` (C x n x W) blended toward grey ``noise`` (n x W) by ``amount``."""
    for c in range(3):
        d = noise - region[c]
        d *= amount
        region[c] += d
