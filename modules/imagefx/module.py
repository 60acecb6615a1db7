"""The imagefx module: filters and resizing for still images (backdrops, portraits, sprites)."""
from __future__ import annotations

import threading
from typing import Any

from greenroom import Context, Module, Resources

from .settings import ImageFxSettings


class ImageFx(Module):
    name = "imagefx"
    version = "0.1.0"
    description = "The video postprocessor's filters and the upscaler for still images (e.g. blur a backdrop)."
    Settings = ImageFxSettings
    resources = Resources(device="cpu", memory_mb=0)
    settings: ImageFxSettings

    def __init__(self, context: Context, settings: ImageFxSettings) -> None:
        super().__init__(context, settings)
        self.slots = threading.BoundedSemaphore(settings.max_concurrent)
        self.processed = 0

    def apply_settings(self, settings: ImageFxSettings) -> None:  # type: ignore[override]
        if settings.max_concurrent != self.settings.max_concurrent:
            self.slots = threading.BoundedSemaphore(settings.max_concurrent)
        self.settings = settings

    def status(self) -> dict[str, Any]:
        return {"images_processed": self.processed, "max_concurrent": self.settings.max_concurrent}
