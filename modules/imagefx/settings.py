"""imagefx settings: size limits that keep one request from taking the server's memory or CPU."""
from __future__ import annotations

from pydantic import Field

from greenroom import ModuleSettings


class ImageFxSettings(ModuleSettings):
    max_input_pixels: int = Field(16_777_216, ge=1, le=268_435_456,
                                  description="Largest accepted image in pixels (width x height); "
                                              "bigger uploads get 413.")
    max_output_pixels: int = Field(16_777_216, ge=1, le=268_435_456,
                                   description="Largest image an upscale may produce, in pixels; bigger requests "
                                               "get 413.")
    max_concurrent: int = Field(2, ge=1, le=64,
                                description="Images processed at the same time; further requests wait.")
    queue_timeout_s: float = Field(60.0, ge=0.1, le=3600.0,
                                   description="How long a request waits for a free slot before 503.")
    default_format: str = Field("png", pattern="^(png|jpeg|webp|qoi|tga|bmp|tiff)$",
                                description="Output format when a request names none.")
