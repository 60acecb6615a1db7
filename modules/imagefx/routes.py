"""imagefx routes: list filters, run a chain over an uploaded image, resize an uploaded image."""
from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from flask import Response, jsonify, request
from pydantic import BaseModel

from greenroom import ApiError
from greenroom.api import binary, parse_model
from greenroom.views import Routes
from greenroom_modules.postprocessor import (DEFAULT_CHAIN, UPSCALE_METHODS, ChainError, Postprocessor, describe_filters,
                                   linear_to_rgba8, rgba8_to_linear)
from greenroom_modules.postprocessor.upscale import output_size, upscale_planar

from .codec import FORMATS, decode_rgba, encode, output_format
from .schemas import FiltersReply, ProcessParams, UpscaleParams, multipart_body

if TYPE_CHECKING:
    from .module import ImageFx

log = logging.getLogger("greenroom.imagefx")

IMAGE_RESPONSE = binary(*(mime for _, mime in FORMATS.values()), description="The image in the requested format")

routes = Routes()


@routes.api("/api/imagefx/filters", summary="Every filter with its parameters, defaults and ranges",
            responses={200: FiltersReply})
def filters(module: "ImageFx"):
    return jsonify({"filters": describe_filters(), "default_chain": [list(e) for e in DEFAULT_CHAIN],
                    "upscale_methods": list(UPSCALE_METHODS), "formats": list(FORMATS)})


@routes.api("/api/imagefx/process", methods=["POST"], request_content=multipart_body(ProcessParams, "to filter"),
            summary="Run a filter chain over an uploaded image (e.g. blur a backdrop)",
            responses={200: IMAGE_RESPONSE})
def process(module: "ImageFx"):
    """Multipart ``file`` (the image) and ``json`` (``{"format", "filters", "t"}``). The filters run in
    linear light on RGBA; the reply has the same size as the upload."""
    data, params = _upload(ProcessParams)
    fmt = output_format(params.format or module.settings.default_format)
    try:
        pp = Postprocessor(params.filters)
    except ChainError as exc:
        raise ApiError(400, str(exc), filter=exc.filter, param=exc.param, index=exc.index) from None
    with _slot(module):
        start = time.perf_counter()
        rgba = decode_rgba(data, module.settings.max_input_pixels)
        frame = rgba8_to_linear(rgba)
        pp.apply(frame, t=params.t)
        body = encode(linear_to_rgba8(frame), fmt)
        module.processed += 1
    log.info("process %dx%d, %d filters (%s) -> %s %d bytes in %.0f ms", rgba.shape[1], rgba.shape[0],
             len(pp.chain), ",".join(n for n, _ in pp.chain), fmt, len(body), (time.perf_counter() - start) * 1e3)
    return Response(body, mimetype=FORMATS[fmt][1])


@routes.api("/api/imagefx/upscale", methods=["POST"], request_content=multipart_body(UpscaleParams, "to resize"),
            summary="Resize an uploaded image (bilinear, bicubic, Lanczos, edge-preserving line art)",
            responses={200: IMAGE_RESPONSE})
def upscale(module: "ImageFx"):
    """Multipart ``file`` and ``json`` (``{"scale"}`` or ``{"upscaled_width", "upscaled_height"}``, plus
    ``method`` and ``format``). Colour is resampled premultiplied by alpha, so edges stay clean."""
    data, params = _upload(UpscaleParams)
    fmt = output_format(params.format or module.settings.default_format)
    method = params.method or _method_from_quality(params.quality)
    with _slot(module):
        start = time.perf_counter()
        rgba = decode_rgba(data, module.settings.max_input_pixels)
        h, w = rgba.shape[:2]
        ow, oh = _target_size(params, w, h)
        if ow * oh > module.settings.max_output_pixels:
            raise ApiError(413, f"upscaled_width/upscaled_height: output {ow} x {oh} = {ow * oh} pixels exceeds "
                                f"the limit of {module.settings.max_output_pixels}", field="scale")
        planes = rgba8_to_linear(rgba).transpose(2, 0, 1).copy()
        out = upscale_planar(planes, 1.0, method, size=(ow, oh), premultiplied_ok=True)
        body = encode(linear_to_rgba8(out.transpose(1, 2, 0)), fmt)
        module.processed += 1
    log.info("upscale %dx%d -> %dx%d %s -> %s %d bytes in %.0f ms", w, h, ow, oh, method, fmt, len(body),
             (time.perf_counter() - start) * 1e3)
    return Response(body, mimetype=FORMATS[fmt][1])


def _upload(model: type[BaseModel]) -> tuple[bytes, Any]:
    """The ``file`` part's bytes and the ``json`` part (text field or file) validated into ``model``."""
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "file: missing; send the image as multipart/form-data field 'file'", field="file")
    if "json" in request.files:
        raw = request.files["json"].read().decode("utf-8", "replace")
    else:
        raw = request.form.get("json", "")
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise ApiError(400, f"json: not valid JSON ({exc})", field="json") from None
    return upload.read(), parse_model(model, data, "json")


def _method_from_quality(quality: str | None) -> str:
    if quality in ("low", "high"):
        return "lineart"
    return quality or "bicubic"


def _target_size(params: UpscaleParams, width: int, height: int) -> tuple[int, int]:
    """(width, height) asked for: both given, one given (aspect kept), or ``scale``."""
    tw, th = params.upscaled_width, params.upscaled_height
    if tw and th:
        return tw, th
    if tw:
        return tw, max(1, round(height * tw / width))
    if th:
        return max(1, round(width * th / height)), th
    if params.scale:
        oh, ow = output_size(height, width, params.scale)
        return ow, oh
    raise ApiError(400, "scale: give 'scale' or 'upscaled_width'/'upscaled_height'", field="scale")


@contextmanager
def _slot(module: "ImageFx") -> Iterator[None]:
    """Hold one of the module's processing slots (503 when none frees up in time)."""
    slots = module.slots
    if not slots.acquire(timeout=module.settings.queue_timeout_s):
        raise ApiError(503, "imagefx is busy; retry later", headers={"Retry-After": "5"})
    try:
        yield
    finally:
        slots.release()
