"""Final frame conversion: linear float RGBA -> sRGB bytes in the feed's image format."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

MIMETYPES = {"PNG": "image/png", "WEBP": "image/webp", "QOI": "image/qoi", "TGA": "image/x-tga"}
_LUT_SIZE = 4096


def _srgb_lut() -> np.ndarray:
    x = np.linspace(0.0, 1.0, _LUT_SIZE)
    srgb = np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.clip(np.round(srgb * 255.0), 0, 255).astype(np.uint8)


_SRGB = _srgb_lut()


def to_srgb8(frame: np.ndarray) -> np.ndarray:
    """HxWx4 float linear [0,1] -> HxWx4 uint8 sRGB (alpha stays linear). A lookup table: ~3 ms at 512x512."""
    rgb = np.clip(frame[..., :3], 0.0, 1.0)
    rgb *= _LUT_SIZE - 1
    rgb += 0.5
    out = _SRGB[rgb.astype(np.uint16)]
    alpha = np.clip(frame[..., 3] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.dstack((out, alpha))


def encode(rgba8: np.ndarray, fmt: str) -> bytes:
    """Encode an HxWx4 uint8 image. PNG uses the fastest zlib level; WebP is lossless at its fastest method."""
    if fmt == "QOI":
        import qoi
        return bytes(qoi.encode(np.ascontiguousarray(rgba8)))
    image = Image.fromarray(rgba8, "RGBA")
    buf = io.BytesIO()
    if fmt == "PNG":
        image.save(buf, format="PNG", compress_level=1)
    elif fmt == "WEBP":
        image.save(buf, format="WEBP", lossless=True, method=0, quality=0)
    elif fmt == "TGA":
        image.save(buf, format="TGA", compression="tga_rle")
    else:
        raise ValueError(f"unknown frame format '{fmt}'")
    return buf.getvalue()
