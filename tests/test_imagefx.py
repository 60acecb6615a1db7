"""The imagefx module through real HTTP: filter listing, processing, resizing and every error case.
One server process serves the whole file."""
from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
import requests
from PIL import Image

from greenroom_modules.postprocessor import validate_chain

from .server_process import ROOT, ServerProcess

BACKDROP = ROOT / "assets" / "backdrops" / "night_city.jpg"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imagefx")
    (folder / "plugins.toml").write_text("[modules.imagefx]\nmax_input_pixels = 1500000\n"
                                         "max_output_pixels = 4000000\n")
    proc = ServerProcess(["--enable-modules=imagefx", "--config", str(folder / "plugins.toml")])
    yield proc
    proc.stop()


def png(rgba: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, "PNG")
    return buf.getvalue()


def sprite() -> np.ndarray:
    img = np.zeros((64, 96, 4), np.uint8)
    img[16:48, 24:72] = (220, 40, 40, 255)
    return img


def post(server, route, data: bytes, params=None, as_file=False, **extra):
    files = {"file": ("img.png", data, "image/png")}
    form = {}
    if params is not None:
        text = json.dumps(params)
        if as_file:
            files["json"] = ("params.json", text.encode(), "application/json")
        else:
            form["json"] = text
    return requests.post(server.url + route, files=files, data=form, timeout=60, **extra)


def decode(resp) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(resp.content)).convert("RGBA"))


def test_filters_listing_round_trips_into_a_valid_chain(server):
    reply = requests.get(server.url + "/api/imagefx/filters", timeout=10).json()
    names = [f["name"] for f in reply["filters"]]
    assert {"blur", "bloom", "pixelize", "posterize", "rect_glitches", "scanlines"} <= set(names)
    chain = [[f["name"], {p["name"]: p["default"] for p in f["params"]}] for f in reply["filters"]]
    assert len(validate_chain(chain)) == len(names)
    assert "lineart" in reply["upscale_methods"] and "png" in reply["formats"]
    assert validate_chain(reply["default_chain"])


def test_blurring_a_backdrop(server):
    raw = BACKDROP.read_bytes()
    src = np.asarray(Image.open(io.BytesIO(raw)).convert("RGBA")).astype(np.float32)
    resp = post(server, "/api/imagefx/process", raw, {"filters": [["blur", {"sigma": 12}]], "format": "png"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "image/png"
    out = decode(resp).astype(np.float32)
    assert out.shape == src.shape
    detail = lambda img: np.abs(np.diff(img[..., :3], axis=1)).mean()  # noqa: E731
    assert detail(out) < 0.5 * detail(src)
    assert abs(out[..., :3].mean() - src[..., :3].mean()) < 8  # blurring keeps the overall brightness


@pytest.mark.parametrize("fmt, mime", [("png", "image/png"), ("jpeg", "image/jpeg"), ("webp", "image/webp"),
                                       ("qoi", "image/qoi"), ("tga", "image/x-tga"), ("jpg", "image/jpeg")])
def test_output_formats(server, fmt, mime):
    resp = post(server, "/api/imagefx/process", png(sprite()), {"filters": [["posterize", {"levels": 3}]],
                                                                "format": fmt})
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == mime
    assert decode(resp).shape == (64, 96, 4)


def test_params_as_a_json_file_part_and_alpha_survives(server):
    resp = post(server, "/api/imagefx/process", png(sprite()), {"filters": [["translucent_display",
                                                                             {"alpha": 0.5}]]}, as_file=True)
    assert resp.status_code == 200, resp.text
    out = decode(resp)
    assert out[32, 48, 3] == 128 and out[0, 0, 3] == 0
    np.testing.assert_array_equal(out[32, 48, :3], sprite()[32, 48, :3])


def test_no_chain_returns_the_image_unchanged(server):
    resp = post(server, "/api/imagefx/process", png(sprite()))
    assert resp.status_code == 200
    np.testing.assert_array_equal(decode(resp), sprite())


def test_upscale_by_scale_and_by_size(server):
    resp = post(server, "/api/imagefx/upscale", png(sprite()), {"scale": 2, "method": "lanczos"})
    assert resp.status_code == 200, resp.text
    out = decode(resp)
    assert out.shape == (128, 192, 4)
    assert tuple(out[64, 96]) == (220, 40, 40, 255)
    resp = post(server, "/api/imagefx/upscale", png(sprite()), {"upscaled_width": 300, "quality": "high",
                                                                "preset": "C", "format": "webp"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "image/webp"
    assert decode(resp).shape == (200, 300, 4)


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size (its pixel data is a few bytes): a decompression bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("route, data, params, status, needle", [
    ("/api/imagefx/process", b"this is not an image", {}, 400, "file"),
    ("/api/imagefx/process", b"", {}, 400, "file"),
    ("/api/imagefx/process", huge_png_header(30000, 30000), {}, 413, "limit"),
    ("/api/imagefx/process", "sprite", {"format": "gif89"}, 400, "format"),
    ("/api/imagefx/process", "sprite", {"filters": [["sparkle", {}]]}, 400, "sparkle"),
    ("/api/imagefx/process", "sprite", {"filters": [["bloom", {"sigma": -1}]]}, 400, "sigma"),
    ("/api/imagefx/process", "sprite", {"filters": "bloom"}, 400, "filters"),
    ("/api/imagefx/process", "sprite", {"colour": "red"}, 400, "colour"),
    ("/api/imagefx/upscale", "sprite", {}, 400, "scale"),
    ("/api/imagefx/upscale", "sprite", {"scale": 2, "method": "anime4k"}, 400, "method"),
    ("/api/imagefx/upscale", "sprite", {"upscaled_width": 4000, "upscaled_height": 4000}, 413, "limit"),
    ("/api/imagefx/upscale", "sprite", {"upscaled_width": 0}, 400, "upscaled_width"),
])
def test_errors_are_clear_4xx(server, route, data, params, status, needle):
    body = png(sprite()) if data == "sprite" else data
    resp = post(server, route, body, params)
    assert resp.status_code == status, resp.content[:200]
    assert needle in resp.json()["error"]


def test_bad_chain_reply_names_filter_and_param(server):
    resp = post(server, "/api/imagefx/process", png(sprite()), {"filters": [["vignetting", {}],
                                                                            ["noise", {"channel": "Q"}]]})
    assert resp.status_code == 400
    assert resp.json()["filter"] == "noise" and resp.json()["param"] == "channel" and resp.json()["index"] == 1


def test_missing_parts_and_bad_json(server):
    resp = requests.post(server.url + "/api/imagefx/process", data={"json": "{}"}, timeout=10)
    assert resp.status_code == 400 and "file" in resp.json()["error"]
    resp = requests.post(server.url + "/api/imagefx/process", files={"file": ("a.png", png(sprite()))},
                         data={"json": "{not json"}, timeout=10)
    assert resp.status_code == 400 and "json" in resp.json()["error"]
    resp = requests.post(server.url + "/api/imagefx/process", files={"file": ("a.png", png(sprite()))},
                         data={"json": "[1, 2]"}, timeout=10)
    assert resp.status_code == 400 and "json" in resp.json()["error"]


def test_openapi_documents_the_routes(server):
    doc = requests.get(server.url + "/openapi.json", timeout=10).json()
    for path in ("/api/imagefx/process", "/api/imagefx/upscale"):
        body = doc["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
        assert body["schema"]["required"] == ["file"]
        assert "json" in body["schema"]["properties"]
    assert "/api/imagefx/filters" in doc["paths"]
    from openapi_spec_validator import validate
    validate(doc)
