#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Paint the backdrop images in assets/backdrops/ procedurally (original work, CC0).

Run from the repository root: ``python scripts/make_backdrops.py``. The output is
deterministic, so re-running it reproduces the committed files.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent.parent / "assets" / "backdrops"
W, H = 1280, 720


def grid() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    return x / (W - 1), y / (H - 1)


def lerp(a, b, t):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a + (b - a) * np.asarray(t, np.float32)[..., None]


def add_glow(img: np.ndarray, cx: float, cy: float, radius: float, color, strength: float) -> None:
    x, y = grid()
    d2 = ((x - cx) * W / H) ** 2 + (y - cy) ** 2
    img += np.exp(-d2 / (2 * radius ** 2))[..., None] * np.asarray(color, np.float32) * strength


def bokeh(img: np.ndarray, rng: np.random.Generator, n: int, palette, rmin: float, rmax: float,
          ymax: float = 1.0) -> None:
    """Soft-edged translucent discs, as out-of-focus lights."""
    x, y = grid()
    for _ in range(n):
        cx, cy = rng.random(), rng.random() * ymax
        r = rng.uniform(rmin, rmax)
        col = np.asarray(palette[rng.integers(len(palette))], np.float32)
        d = np.sqrt(((x - cx) * W / H) ** 2 + (y - cy) ** 2)
        disc = np.clip((r - d) / (0.08 * r), 0, 1) * (0.55 + 0.45 * np.clip(d / r, 0, 1) ** 4)
        img += disc[..., None] * col * rng.uniform(0.15, 0.45)


def cyberspace() -> np.ndarray:
    """Dark blue void, neon perspective floor grid, glowing horizon."""
    x, y = grid()
    img = lerp((0.01, 0.0, 0.05), (0.02, 0.05, 0.18), y)
    horizon = 0.58
    floor = y > horizon
    depth = np.where(floor, (y - horizon) / (1 - horizon), 1.0)
    z = 1.0 / np.maximum(depth, 1e-3)  # distance along the floor
    u = (x - 0.5) * z
    lines = np.exp(-((u * 8 - np.round(u * 8)) ** 2) / (2 * (0.02 * z) ** 2))
    lines = np.maximum(lines, np.exp(-((z * 2 - np.round(z * 2)) ** 2) / (2 * (0.015 * z * z) ** 2)))
    fade = np.clip(depth * 1.5, 0, 1)
    img += (floor * lines * fade)[..., None] * np.asarray((0.2, 0.9, 1.0), np.float32) * 0.8
    add_glow(img, 0.5, horizon, 0.06, (1.0, 0.2, 0.8), 0.9)
    img += np.exp(-((y - horizon) ** 2) / (2 * 0.004 ** 2))[..., None] * np.asarray((1.0, 0.5, 0.9)) * 0.8
    rng = np.random.default_rng(7)
    stars = (rng.random((H, W)) > 0.9985) & ~floor
    img += stars[..., None] * rng.uniform(0.3, 1.0, (H, W, 1)).astype(np.float32)
    return img


def sunset() -> np.ndarray:
    """Warm evening sky with a low sun and hazy out-of-focus lights."""
    x, y = grid()
    img = lerp((0.25, 0.35, 0.75), (1.0, 0.55, 0.3), np.clip(y * 1.3, 0, 1) ** 1.5)
    add_glow(img, 0.7, 0.78, 0.12, (1.0, 0.85, 0.5), 1.0)
    add_glow(img, 0.7, 0.78, 0.03, (1.0, 1.0, 0.9), 1.5)
    ground = np.clip((y - 0.82) / 0.02, 0, 1)
    img = lerp(img.reshape(-1, 3), (0.12, 0.06, 0.1), ground.ravel()).reshape(H, W, 3)
    bokeh(img, np.random.default_rng(3), 40, [(1, 0.8, 0.4), (1, 0.6, 0.5), (1, 0.95, 0.7)], 0.01, 0.05)
    return img


def night_city() -> np.ndarray:
    """Out-of-focus city lights at night."""
    x, y = grid()
    img = lerp((0.02, 0.02, 0.06), (0.08, 0.04, 0.12), y)
    bokeh(img, np.random.default_rng(11), 90,
          [(1, 0.7, 0.3), (0.3, 0.6, 1), (1, 0.3, 0.5), (0.5, 1, 0.8), (1, 1, 0.8)], 0.015, 0.08)
    return img


def studio() -> np.ndarray:
    """Neutral photo-studio sweep: soft top light, darker edges."""
    x, y = grid()
    img = lerp((0.55, 0.57, 0.6), (0.25, 0.26, 0.3), y)
    add_glow(img, 0.5, 0.3, 0.35, (0.35, 0.35, 0.33), 1.0)
    vignette = np.cos(0.35 * math.pi * np.sqrt(((x - 0.5) * 2) ** 2 + ((y - 0.5) * 2) ** 2) / math.sqrt(2)) ** 2
    return img * vignette[..., None]


def save(name: str, img: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    img = img + rng.normal(0, 0.006, img.shape)  # a whisper of grain against banding
    rgb = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    path = OUT / name
    Image.fromarray(rgb).save(path, quality=88, optimize=True, progressive=True)
    print(f"{path.relative_to(OUT.parent.parent)}: {path.stat().st_size // 1024} KiB")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    save("cyberspace.jpg", cyberspace())
    save("sunset.jpg", sunset())
    save("night_city.jpg", night_city())
    save("studio.jpg", studio())


if __name__ == "__main__":
    main()
