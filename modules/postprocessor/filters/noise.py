# SPDX-License-Identifier: BSD-2-Clause
"""Precomputed noise textures: a random window of a bank per frame instead of new noise per frame.

Generating and blurring a full frame of noise costs several milliseconds; picking
a random offset into a bank twice the frame's size costs nothing and looks the same.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..context import Context, stable_seed


def make_bank(shape: tuple[int, int], sigma_y: float, sigma_x: float, double_size: bool,
              seed: int, gamma: float = 1.0) -> np.ndarray:
    """Noise of twice ``shape`` with values in [0, 1], mean 0.5, blurred by (sigma_y, sigma_x) pixels.

    ``gamma`` > 1 makes noise that is even in perceived brightness (video noise lives in the
    gamma-encoded signal) into linear light: mostly dark with bright specks."""
    h, w = shape
    rng = np.random.default_rng(seed)
    div = 2 if double_size else 1
    bank = rng.random((-(-2 * h // div), -(-2 * w // div)), dtype=np.float32)
    sig = (sigma_y / div, sigma_x / div)
    if max(sig) > 0.05:
        bank = ndimage.gaussian_filter(bank, sig, mode="wrap", truncate=3.0)
    if double_size:
        bank = np.repeat(np.repeat(bank, 2, axis=0), 2, axis=1)[:2 * h, :2 * w]
    bank -= bank.mean()
    bank *= np.float32(0.5 / (3.0 * float(bank.std()) + 1e-9))  # about +-3 sigma span [0, 1]
    bank += np.float32(0.5)
    np.clip(bank, 0.0, 1.0, out=bank)
    if gamma != 1.0:
        np.power(bank, np.float32(gamma), out=bank)
    return bank


def noise_view(ctx: Context, kind: str, sigma_y: float, sigma_x: float, double_size: bool,
               shape: tuple[int, int] | None = None, salt: int = 0, gamma: float = 1.0) -> np.ndarray:
    """An H x W window of a cached bank, chosen by this entry's random stream for the current tick."""
    h, w = shape or ctx.workspace.shape[1:]
    full = ctx.workspace.shape[1:]
    bank = ctx.cached(("noise-bank", kind, sigma_y, sigma_x, double_size, gamma),
                      lambda: make_bank(full, sigma_y, sigma_x, double_size, stable_seed("noise-bank", kind), gamma))
    rng = ctx.rng(salt=salt)
    dy = int(rng.integers(0, bank.shape[0] - h + 1))
    dx = int(rng.integers(0, bank.shape[1] - w + 1))
    return bank[dy:dy + h, dx:dx + w]
