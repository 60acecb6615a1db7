"""Character images: uploads and named characters, validated and fitted to THA3's 512x512 RGBA input.

A named character is ``characters/<name>.png`` in the user data folder, else in the shipped assets
(see :mod:`greenroom.paths`)."""
from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from greenroom.errors import Error
from greenroom.paths import search_path

from .settings import ASSETS

SIZE = 512
CHARACTERS = ASSETS / "characters"   # the shipped ones
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ImageError(Error, ValueError):
    """A character image that cannot be used: 400, 404 (no such character) or 413; ``field`` is ``file``
    (an upload) or ``character`` (a name)."""

    def __init__(self, message: str, status: int = 400, field: str = "file") -> None:
        super().__init__(status, message, field=field)


def decode(data: bytes, max_pixels: int) -> Image.Image:
    """Open uploaded bytes as an RGBA image, refusing non-images, images without alpha and pixel bombs."""
    if not data:
        raise ImageError("file: the uploaded file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > max_pixels:
                raise ImageError(f"file: image is {image.width}x{image.height} pixels; the limit is {max_pixels} pixels",
                                 status=413)
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # Pillow refuses before our check
        raise ImageError(f"file: image has over {Image.MAX_IMAGE_PIXELS} pixels; the limit is {max_pixels} pixels",
                         status=413) from None
    except UnidentifiedImageError as exc:
        raise ImageError(f"file: not a readable image ({type(exc).__name__})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"file: not a readable image ({exc})") from None
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        raise ImageError(f"file: image has no alpha channel (mode {image.mode}); THA3 needs a character on a "
                         "transparent background (RGBA PNG)")
    return image.convert("RGBA")


def fit(image: Image.Image) -> Image.Image:
    """Scale to fit 512x512 (Lanczos) and centre on a transparent canvas; 512x512 passes unchanged."""
    if image.size == (SIZE, SIZE):
        return image
    scale = SIZE / max(image.width, image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resized = image.resize(size, Image.LANCZOS)
    canvas = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    canvas.paste(resized, ((SIZE - size[0]) // 2, (SIZE - size[1]) // 2))
    return canvas


def to_linear(image: Image.Image) -> np.ndarray:
    """512x512 RGBA (sRGB) -> float32 HxWx4 in [0, 1] with linear RGB."""
    rgba = np.asarray(image, dtype=np.float32) / 255.0
    rgb = rgba[..., :3]
    rgba[..., :3] = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return rgba


def within_limit(data: bytes, max_upload_mb: float) -> bytes:
    """``data``, or a 413 naming the ``max_upload_mb`` setting when it is larger."""
    if len(data) > max_upload_mb * 2**20:
        raise ImageError(f"file: larger than max_upload_mb ({max_upload_mb} MiB)", status=413)
    return data


def load_upload(data: bytes, max_pixels: int) -> np.ndarray:
    return to_linear(fit(decode(data, max_pixels)))


def _folders(folder: Path | None) -> list[Path]:
    return [folder] if folder is not None else search_path("characters")


def character_names(folder: Path | None = None) -> list[str]:
    """Names in ``folder``, else in the user's and the shipped characters."""
    return sorted({p.stem for f in _folders(folder) for p in f.glob("*.png") if _NAME.fullmatch(p.stem)})


def load_named(name: str, folder: Path | None = None, max_pixels: int = 16_000_000) -> np.ndarray:
    """``<name>.png`` from ``folder``, else the user's, else the shipped one; names are plain (no paths, no traversal)."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise ImageError(f"character: '{name[:80]}' is not a valid name (letters, digits, '_', '-', '.')",
                         field="character")
    for candidate in _folders(folder):
        path = (candidate / f"{name}.png").resolve()
        if path.parent == candidate.resolve() and path.is_file():
            return load_upload(path.read_bytes(), max_pixels)
    raise ImageError(f"character: no character named '{name}'; available: {', '.join(character_names(folder))}",
                     status=404, field="character")
