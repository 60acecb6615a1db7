#!/usr/bin/env python3
"""The last two steps of every feed frame on the CPU: linear float -> sRGB bytes, then the image codec.

Runs on a real character after the default postprocessor chain (scanlines and glow change how well a
frame compresses) and prints thread-CPU milliseconds per 512 x 512 frame and the frame size for each feed
format, each as a ratio to PNG at zlib level 1 with the default strategy, measured in the same run.

    python bench/frame_encode.py [--repeats 40]
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from greenroom_modules.postprocessor import DEFAULT_CHAIN, Postprocessor, linear_to_rgba8, rgba8_to_linear  # noqa: E402
from greenroom_modules.talkinghead import encoding  # noqa: E402


def cpu_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median thread-CPU milliseconds of ``fn`` (CPU time, so other work on the machine matters less)."""
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.thread_time()
        fn()
        samples.append((time.thread_time() - t0) * 1000)
    return statistics.median(samples)


def srgb_int32_indices(frame: np.ndarray) -> np.ndarray:
    """The baseline for the first step: the same table look-up with int32 indices and out-of-place
    scaling (np.take converts int32 indices to intp once more)."""
    from greenroom_modules.postprocessor.colorspace import _LUT_SIZE, _linear_to_u8_lut
    clipped = np.clip(frame, 0.0, 1.0)
    index = (clipped * np.float32(_LUT_SIZE - 1) + np.float32(0.5)).astype(np.int32)
    out = np.take(_linear_to_u8_lut(), index)
    out[..., 3] = clipped[..., 3] * np.float32(255.0) + np.float32(0.5)
    return out


def png_default_strategy(rgba8: np.ndarray) -> bytes:
    """The baseline: what the feed used before, PNG at zlib level 1 with zlib's default strategy."""
    buf = io.BytesIO()
    Image.fromarray(rgba8, "RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    image = np.asarray(Image.open(ROOT / "assets" / "characters" / "lambda_00.png").convert("RGBA"))
    frame = Postprocessor([list(step) for step in DEFAULT_CHAIN]).apply(rgba8_to_linear(image), t=1.0)
    rgba8 = linear_to_rgba8(frame)

    assert np.array_equal(srgb_int32_indices(frame), rgba8)
    ms, before = cpu_ms(lambda: linear_to_rgba8(frame), args.repeats), cpu_ms(lambda: srgb_int32_indices(frame), args.repeats)
    print(f"linear -> sRGB bytes: {ms:.2f} ms ({ms / before:.2f}x the int32-index baseline's {before:.2f} ms)")

    base_ms, base_size = cpu_ms(lambda: png_default_strategy(rgba8), args.repeats), len(png_default_strategy(rgba8))
    print(f"baseline PNG, zlib level 1, default strategy: {base_ms:.2f} ms, {base_size / 1024:.0f} KiB")
    for fmt in encoding.MIMETYPES:
        ms, size = cpu_ms(lambda: encoding.encode(rgba8, fmt), args.repeats), len(encoding.encode(rgba8, fmt))
        print(f"{fmt:5s} {ms:6.2f} ms ({ms / base_ms:.2f}x the baseline's time)  "
              f"{size / 1024:5.0f} KiB ({size / base_size:.2f}x its size)")


if __name__ == "__main__":
    main()
