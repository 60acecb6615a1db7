"""Character images: uploads and named assets, validated and fitted to THA3's 512x512 RGBA input."""
from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .settings import ASSETS

SIZE = 512
CHARACTERS = ASSETS / "characters"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ImageError(ValueError):
    """A character image that cannot be used; ``status`` is the HTTP answer (400 or 413)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def decode(data: bytes, max_pixels: int) -> Image.Image:
    """Open uploaded bytes as an RGBA image, refusing non-images, images without alpha and pixel bombs."""
    if not data:
        raise ImageError("the uploaded file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > max_pixels:
                raise ImageError(f"image is {image.width}x{image.height} pixels; the limit is {max_pixels} pixels",
                                 status=413)
            image.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"file is not a readable image ({type(exc).__name__})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"file is not a readable image ({exc})") from None
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        raise ImageError(f"image has no alpha channel (mode {image.mode}); THA3 needs a character on a "
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


def load_upload(data: bytes, max_pixels: int) -> np.ndarray:
    return to_linear(fit(decode(data, max_pixels)))


def character_names(folder: Path = CHARACTERS) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.png") if _NAME.match(p.stem))


def load_named(name: str, folder: Path = CHARACTERS, max_pixels: int = 16_000_000) -> np.ndarray:
    """A character from ``assets/characters/<name>.png``; names are plain (no paths, no traversal)."""
    if not _NAME.match(name) or ".." in name:
        raise ImageError(f"character: '{name[:80]}' is not a valid name (letters, digits, '_', '-', '.')")
    path = (folder / f"{name}.png").resolve()
    if path.parent != folder.resolve() or not path.is_file():
        raise ImageError(f"character: no character named '{name}'; available: {', '.join(character_names(folder))}",
                         status=404)
    return load_upload(path.read_bytes(), max_pixels)
