"""Request and response models of the imagefx routes (they also document /openapi.json)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from greenroom_modules.postprocessor import MAX_CHAIN_LENGTH, UPSCALE_METHODS

CHAIN_DESCRIPTION = ("Filter chain [[filter_name, {param: value}], ...], applied in order; omitted params take "
                     "their defaults. GET /api/imagefx/filters lists every filter and its parameters.")

UpscaleMethod = Literal[UPSCALE_METHODS]  # type: ignore[valid-type]
RavenQuality = Literal[UPSCALE_METHODS + ("low", "high")]  # type: ignore[valid-type]


class ProcessParams(BaseModel):
    """The ``json`` part of POST /api/imagefx/process."""

    model_config = ConfigDict(extra="forbid")
    format: str | None = Field(None, max_length=16, description="Output format: png, jpeg, webp, qoi, tga, bmp "
                                                                "or tiff (default: the module setting).")
    filters: list[Any] = Field(default_factory=list, max_length=MAX_CHAIN_LENGTH, description=CHAIN_DESCRIPTION)
    t: float = Field(0.0, ge=0.0, le=1e9, description="Moment (seconds) at which time-dependent filters are "
                                                      "rendered; the same t gives the same picture.")


class UpscaleParams(BaseModel):
    """The ``json`` part of POST /api/imagefx/upscale. Give ``scale`` or a target width and/or height."""

    model_config = ConfigDict(extra="forbid")
    format: str | None = Field(None, max_length=16, description="Output format (default: the module setting).")
    scale: float | None = Field(None, gt=0.0, le=16.0, description="Size factor, e.g. 2.0.")
    upscaled_width: int | None = Field(None, ge=1, le=65536, description="Target width in pixels; with only one "
                                                                         "of width/height the aspect is kept.")
    upscaled_height: int | None = Field(None, ge=1, le=65536, description="Target height in pixels.")
    method: UpscaleMethod | None = Field(None, description="Resampling: bilinear, bicubic (default), lanczos, "
                                                           "lineart (edge-preserving, for anime line art), nearest.")
    quality: RavenQuality | None = Field(None, description="Raven-compatible alias of method; 'low' and 'high' "
                                                           "(Anime4K there) mean lineart here.")
    preset: str | None = Field(None, max_length=8, description="Accepted for Raven compatibility and ignored.")


class FiltersReply(BaseModel):
    """Every filter with its parameters, plus the upscale methods and output formats."""

    filters: list[dict[str, Any]]
    default_chain: list[Any]
    upscale_methods: list[str]
    formats: list[str]


def multipart_body(params: type[BaseModel], what: str) -> dict[str, Any]:
    """The OpenAPI request body of a ``file`` + ``json`` multipart upload."""
    return {"multipart/form-data": {
        "schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary", "description": f"The image {what} (PNG, JPEG, WebP, "
                                                                          "QOI, TGA, BMP, TIFF, GIF...)."},
            "json": {**params.model_json_schema(), "description": "Parameters as a JSON text field or a JSON "
                                                                  "file part named 'json'."}}},
        "encoding": {"json": {"contentType": "application/json"}}}}
