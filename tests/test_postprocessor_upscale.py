"""The upscaler: sizes, every method, clean alpha edges, and the edge-preserving line-art mode."""
from __future__ import annotations

import numpy as np
import pytest

from greenroom_modules.postprocessor import UPSCALE_METHODS, upscale
from greenroom_modules.postprocessor.upscale import upscale_planar


def sprite() -> np.ndarray:
    """An opaque red disc on transparent pixels whose (meaningless) colour is bright green."""
    y, x = np.mgrid[0:64, 0:64]
    frame = np.zeros((64, 64, 4), np.float32)
    frame[..., 1] = 1.0
    inside = (x - 31.5) ** 2 + (y - 31.5) ** 2 < 20 ** 2
    frame[inside] = (0.9, 0.05, 0.05, 1.0)
    return frame


def lineart() -> np.ndarray:
    """Thin dark lines (one pixel, two pixels) on white, opaque: the line-art case."""
    frame = np.ones((48, 48, 4), np.float32)
    frame[:, 10, :3] = 0.0
    frame[:, 20:22, :3] = 0.0
    frame[30, :, :3] = 0.0
    return frame


@pytest.mark.parametrize("method", UPSCALE_METHODS)
def test_every_method_gives_the_requested_size(method):
    frame = sprite()
    assert upscale(frame, 2.0, method).shape == (128, 128, 4)
    assert upscale(frame, 1.5, method).shape == (96, 96, 4)
    assert upscale(frame, 1.0, method, size=(80, 40)).shape == (40, 80, 4)
    small = upscale(frame, 0.5, method)
    assert small.shape == (32, 32, 4) and small.dtype == np.float32


@pytest.mark.parametrize("method", UPSCALE_METHODS)
def test_transparent_colour_never_bleeds_into_the_silhouette(method):
    out = upscale(sprite(), 3.0, method)
    alpha = out[..., 3]
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    edge = (alpha > 0.02) & (alpha < 0.98)
    assert edge.any() or method == "nearest"
    visible = alpha > 0.02
    assert out[..., 1][visible].max() < 0.1  # no green fringe anywhere visible (source green is 0.05)
    assert out[..., :3].min() >= 0 and out[..., :3].max() <= 1


def test_upscale_preserves_content():
    frame = sprite()
    out = upscale(frame, 2.0, "bicubic")
    np.testing.assert_allclose(out[64, 64], frame[32, 32], atol=1e-4)
    assert out[..., 3].sum() / 4 == pytest.approx(frame[..., 3].sum(), rel=0.02)


def greyness(row: np.ndarray) -> float:
    """How far the pixels are from pure black or white, summed: soft edges score high."""
    return float(np.minimum(row, 1.0 - row).sum())


def test_lineart_is_crisper_than_bicubic_without_ringing():
    frame = lineart()
    cubic = upscale(frame, 4.0, "bicubic")[..., 0]
    lanczos = upscale(frame, 4.0, "lanczos")[..., 0]
    crisp = upscale(frame, 4.0, "lineart")[..., 0]
    row = 100  # away from the horizontal line
    assert greyness(crisp[row]) < 0.7 * greyness(cubic[row])
    # no halo: the line art mode never leaves the source range, while plain interpolation rings
    assert crisp.min() >= 0.0 and crisp.max() <= 1.0
    assert (lanczos[row] < 0.999).sum() > (crisp[row] < 0.999).sum()
    # a one-pixel line stays dark in the middle
    assert crisp[row, 10 * 4 + 2] < 0.05


def test_planar_variant_matches_and_checks_arguments():
    frame = sprite()
    planes = np.ascontiguousarray(frame.transpose(2, 0, 1))
    np.testing.assert_allclose(upscale_planar(planes, 2.0, "bilinear").transpose(1, 2, 0),
                               upscale(frame, 2.0, "bilinear"), atol=1e-6)
    np.testing.assert_array_equal(planes.transpose(1, 2, 0), frame)  # input untouched
    with pytest.raises(ValueError, match="method"):
        upscale(frame, 2.0, "anime4k")
    with pytest.raises(ValueError, match="scale"):
        upscale(frame, 0.0, "bicubic")
    with pytest.raises(ValueError, match="larger"):
        upscale(frame, 1.0, "bicubic", size=(100_000, 100_000))
