"""Decoding uploads and encoding results, with the size checks done before any pixel is decoded."""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from greenroom.errors import BadRequest, Error

FORMATS: dict[str, tuple[str, str]] = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
    "qoi": ("QOI", "image/qoi"),
    "tga": ("TGA", "image/x-tga"),
    "bmp": ("BMP", "image/bmp"),
    "tiff": ("TIFF", "image/tiff"),
}
"""Output formats: request name -> (Pillow format, MIME type)."""

ALIASES = {"jpg": "jpeg", "tif": "tiff"}

SAVE_OPTIONS: dict[str, dict] = {"PNG": {"compress_level": 1}, "JPEG": {"quality": 90},
                                 "WEBP": {"quality": 90}, "TGA": {"compression": "tga_rle"}}


def output_format(name: str) -> str:
    """The canonical format name for ``name`` (case-insensitive), or 400 naming the field."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in FORMATS:
        raise BadRequest(f"format: unknown image format '{name:.40}'; choose one of {', '.join(FORMATS)}",
                         field="format")
    return key


def decode_rgba(data: bytes, max_pixels: int) -> np.ndarray:
    """An uploaded image as uint8 HxWx4 RGBA; 400 if unreadable, 413 if larger than ``max_pixels``."""
    if not data:
        raise BadRequest("file: the uploaded image is empty", field="file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise Error(413, f"file: image is {width} x {height} = {width * height} pixels; "
                                 f"the limit is {max_pixels}", field="file", width=width, height=height)
            img.load()
    except Error:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Error(413, f"file: image too large to decode ({exc})", field="file") from None
    except Exception as exc:  # Pillow raises many types for corrupt or unknown data
        raise BadRequest(f"file: not an image this server can read ({type(exc).__name__})",
                         field="file") from None
    if width < 1 or height < 1:
        raise BadRequest("file: image has no pixels", field="file")
    return np.asarray(img.convert("RGBA"))


def encode(rgba: np.ndarray, fmt: str) -> bytes:
    """uint8 HxWx4 RGBA as ``fmt`` bytes; formats without alpha (JPEG, BMP) drop it."""
    pil_format, _ = FORMATS[fmt]
    img = Image.fromarray(rgba)
    if pil_format in ("JPEG", "BMP"):
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, pil_format, **SAVE_OPTIONS.get(pil_format, {}))
    return buf.getvalue()
