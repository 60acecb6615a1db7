"""Hostile input against the real all-modules server (``--secure``): path traversal in every field that
names a file, decompression bombs and truncated images, huge and deeply nested JSON, invalid UTF-8,
API-key attempts with wrong schemes, and exempt routes that try to reach other routes. Every attempt
must get a clean 4xx (a JSON ``{"error"}`` wherever Flask answers) and the server must keep serving."""
from __future__ import annotations

import http.client
import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from greenroom.web import transport

from .test_reliability_support import MAX_BODY_MB, Server, delete_instances, load_character, shared_server  # noqa: F401

pytestmark = pytest.mark.slow

TRAVERSALS = ["../../../../etc/passwd", "..", "../characters/lambda_00", "/etc/passwd", "lambda_00/../lambda_01",
              "..\\..\\windows\\win.ini", "....//....//etc/passwd", "%2e%2e%2fetc%2fpasswd", "lambda_00\x00.png",
              "~/.ssh/id_rsa", "lambda_00.png", "file:///etc/passwd", "\u2025/etc/passwd", "lambda_00/", " ", ""]


# -- helpers ------------------------------------------------------------------------------------------

def raw(server: Server, method: str, target: str, headers: dict[str, str] | None = None,
        body: bytes | None = None) -> tuple[int, str, bytes]:
    """One request sent exactly as written (requests would normalise ``..`` and percent escapes)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.proc.port, timeout=60)
    try:
        conn.putrequest(method, target, skip_host="Host" in (headers or {}), skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        reply = conn.getresponse()
        return reply.status, reply.getheader("Content-Type") or "", reply.read()
    finally:
        conn.close()


def clean_4xx(status: int, content_type: str, body: bytes, what: str, json_error: bool = True) -> dict | None:
    assert 400 <= status < 500, f"{what}: {status} {body[:300]!r}"
    if not json_error:
        return None
    assert content_type.startswith("application/json"), f"{what}: {content_type} {body[:200]!r}"
    data = json.loads(body)
    error = data.get("error")  # Greenroom's {"error": "..."}, or OpenAI's {"error": {"message": ...}} under /v1/
    message = error.get("message") if isinstance(error, dict) else error
    assert isinstance(message, str) and message, f"{what}: {data}"
    assert "root:" not in body.decode("utf-8", "replace"), what  # no file content leaks into the answer
    return data


def check(reply, what: str, json_error: bool = True) -> dict | None:
    return clean_4xx(reply.status_code, reply.headers.get("Content-Type", ""), reply.content, what, json_error)


@pytest.fixture(scope="module")
def server(shared_server):
    yield shared_server
    log = shared_server.log()
    assert "Traceback" not in log and "unhandled error" not in log, log[-4000:]
    assert shared_server.get("/health").json()["status"] == "ok"


@pytest.fixture
def avatar(server):
    load_character(server)
    yield server
    delete_instances(server)


# -- images ------------------------------------------------------------------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int, height: int, color_type: int = 0, depth: int = 1) -> bytes:
    """A valid PNG of zeros that is tiny on the wire and huge decoded (width x height pixels)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    rows = bytes(1 + (width * channels * depth + 7) // 8) * 64
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(rows) for _ in range(height // 64)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_text_bomb() -> bytes:
    """A 4x4 RGBA PNG carrying a zTXt chunk that inflates to 64 MiB."""
    buf = io.BytesIO()
    Image.new("RGBA", (4, 4), (1, 2, 3, 255)).save(buf, "PNG")
    png = buf.getvalue()
    ztxt = b"Comment\x00\x00" + zlib.compress(bytes(64 * 2**20), 9)
    return png[:33] + _chunk(b"zTXt", ztxt) + png[33:]


def image(fmt: str, size: tuple[int, int] = (64, 64), mode: str = "RGBA") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (200, 100, 50, 255)[:len(mode)]).save(buf, fmt)
    return buf.getvalue()


BAD_IMAGES = {
    "pixel bomb 30000x30000": lambda: png_bomb(30000, 30000),
    "header claims 60000x60000": lambda: png_bomb(60000, 64),
    "over the module limit": lambda: png_bomb(5000, 5000, color_type=6, depth=8),
    "zTXt bomb": png_text_bomb,
    "truncated PNG": lambda: image("PNG", (256, 256))[:-40],
    "PNG cut after the header": lambda: image("PNG", (512, 512))[:60],
    "truncated JPEG": lambda: image("JPEG", (256, 256), "RGB")[:300],
    "PNG signature then zeros": lambda: b"\x89PNG\r\n\x1a\n" + bytes(200),
    "not an image": lambda: b"GIF89a" + bytes(20),
    "empty file": lambda: b"",
}


@pytest.mark.parametrize("name", list(BAD_IMAGES))
def test_bad_images_get_4xx(server, name):
    data = BAD_IMAGES[name]()
    targets = [("/api/imagefx/process", {}), ("/api/imagefx/upscale", {"json": (None, '{"scale": 2}')}),
               ("/api/talkinghead/load", {"instance_id": (None, "hostile-image")})]
    for route, fields in targets:
        reply = server.post(route, files={"file": ("x.png", data, "image/png"), **fields})
        if name in ("over the module limit", "pixel bomb 30000x30000") and route == "/api/talkinghead/load":
            # above talkinghead's max_image_pixels (16 M) as well (30000x30000: Pillow refuses it first)
            assert reply.status_code == 413, reply.text
        if name == "zTXt bomb" and reply.status_code == 200:
            continue  # Pillow caps text chunks (MAX_TEXT_CHUNK) and may skip it; the answer must not be slow or 5xx
        check(reply, f"{name} -> {route}")
    assert server.get("/api/talkinghead/instances").json()["instances"] == []


def test_upscale_output_bomb_is_413(server):
    reply = server.post("/api/imagefx/upscale", files={"file": ("x.png", image("PNG", (1000, 1000))),
                                                       "json": (None, json.dumps({"scale": 16}))})
    assert reply.status_code == 413 and "pixels" in check(reply, "upscale x16")["error"]
    reply = server.post("/api/imagefx/upscale", files={"file": ("x.png", image("PNG")),
                                                       "json": (None, json.dumps({"upscaled_width": 65536,
                                                                                  "upscaled_height": 65536}))})
    assert reply.status_code == 413


def test_multipart_abuse(server):
    many = {f"f{i}": (None, "x") for i in range(1500)}
    check(server.post("/api/imagefx/process", files={"file": ("x.png", image("PNG")), **many}), "1500 parts")
    body = b"--abc\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n\r\n" + image("PNG")
    for ctype in ("multipart/form-data; boundary=abc", "multipart/form-data", "multipart/form-data; boundary="):
        reply = server.post("/api/imagefx/process", data=body, headers={"Content-Type": ctype})
        check(reply, f"unterminated multipart ({ctype})")
    reply = server.post("/api/talkinghead/load", data=b"\x00" * 1000, headers={"Content-Type": "image/png"})
    check(reply, "raw body instead of multipart")


# -- path traversal ------------------------------------------------------------------------------

def test_character_names_never_leave_the_assets_folder(server):
    for name in TRAVERSALS:
        reply = server.post("/api/talkinghead/load", files={"character": (None, name), "instance_id": (None, "trav")})
        check(reply, f"character {name!r}")
    assert server.get("/api/talkinghead/instances").json()["instances"] == []


def test_upload_file_names_are_never_paths(server, tmp_path):
    target = tmp_path / "written.png"
    sneaky = "../" * 12 + str(target).lstrip("/")
    reply = server.post("/api/talkinghead/load", files={"file": (sneaky, image("PNG", (128, 128))),
                                                        "instance_id": (None, "upload-name")})
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["character"]) <= 64
    reply = server.post("/api/imagefx/process", files={"file": (sneaky, image("PNG")), "json": (None, "{}")})
    assert reply.status_code == 200
    assert not target.exists()
    delete_instances(server)


def test_instance_ids_in_every_place(server):
    for bad in ["../default", "..", "a/b", "default\x00", "x" * 65, "%2e%2e", "déjà", " default"]:
        check(server.get("/api/talkinghead/status", params={"instance_id": bad}), f"query {bad!r}")
        check(server.post("/api/talkinghead/start", json={"instance_id": bad}), f"body {bad!r}")
        check(server.post("/api/talkinghead/load", files={"character": (None, "lambda_00"), "instance_id": (None, bad)}),
              f"form {bad!r}")
        check(server.get("/api/talkinghead/result_feed", params={"instance_id": bad}), f"feed {bad!r}")
    clean_4xx(*raw(server, "GET", "/api/talkinghead/result_feed?instance_id=..%2Fdefault"), "raw feed query")


def test_voice_names(server):
    for bad in ["../../../../etc/passwd", "..", "jf_alpha/../../x", "/etc/passwd", "jf_alpha\x00", "jf_alpha(1)+../x",
                "..\\..\\x", "voices/jf_alpha"]:
        check(server.post("/api/tts/speak", json={"text": "Hi.", "voice": bad}), f"speak voice {bad!r}")
        check(server.post("/api/tts/speak", json={"text": "Hi.", "voice": "jf_alpha", "voice2": bad}), f"voice2 {bad!r}")
        check(server.post("/v1/audio/speech", json={"input": "Hi.", "voice": bad}), f"openai voice {bad!r}")
        check(server.post("/api/tts/generate", json={"text": "Hi.", "speaker": bad}), f"silero speaker {bad!r}")
    for target in ["/api/tts/sample/..", "/api/tts/sample/..%2F..%2F..%2Fetc%2Fpasswd", "/api/tts/sample/%2e%2e",
                   "/api/tts/sample/jf_alpha%00", "/api/tts/sample/..%5C..%5Cwin.ini"]:
        clean_4xx(*raw(server, "GET", target), target)


def test_emotion_template_names(avatar):
    server = avatar
    morphs = {"eye_wink_left_index": 1.0}
    for bad in ["../../../../etc/passwd", "..", "a/b", "a\\b", "neutral\x00", "/etc/passwd"]:
        check(server.post("/api/talkinghead/load_emotion_templates", json={bad: morphs}), f"template {bad!r}")
    # set_emotion answers 200 and falls back to neutral for any unknown name (SillyTavern contract, G15):
    # the name is looked up in memory, never used as a file name.
    reply = server.post("/api/talkinghead/set_emotion", json={"emotion_name": "../../../../etc/passwd"})
    assert reply.status_code == 200 and reply.text == "emotion set to neutral"


def test_emotion_set_names(avatar, tmp_path):
    server = avatar
    sets_folder = server.folder / "emotion-sets"
    before = sorted(p.name for p in sets_folder.iterdir()) if sets_folder.is_dir() else []
    body = json.dumps({"joy": {"eye_wink_left_index": 1.0}}).encode()
    headers = {**server.headers, "Content-Type": "application/json"}
    for name in ["..%2F..%2F..%2Ftmp%2Fpwned", "..", "%2e%2e", "a%00b", "..%5C..%5Cx", "x.json", ".hidden",
                 "%2Ftmp%2Fpwned", "a" * 65, "%ff"]:
        target = f"/api/talkinghead/emotion_sets/{name}"
        for method, data in (("GET", None), ("PUT", body), ("DELETE", None)):
            clean_4xx(*raw(server, method, target, headers, data), f"{method} {target}")
    for bad in ["../default", "/etc/passwd", "..", "a/b", "x.json"]:
        check(server.post("/api/talkinghead/load_emotion_set", json={"name": bad}), f"load_emotion_set {bad!r}")
        check(server.post("/api/talkinghead/pose", json={"character": bad, "pose": {}}), f"pose character {bad!r}")
    after = sorted(p.name for p in sets_folder.iterdir()) if sets_folder.is_dir() else []
    assert after == before and not Path("/tmp/pwned.json").exists()


def test_web_page_files_stay_in_their_folders(server):
    """/ui/ serves static files and backdrops without the key: no name reaches another file."""
    assert raw(server, "GET", "/ui/backdrops/sunset.jpg")[0] == 200
    for target in ["/ui/..%2F..%2Fplugins.toml", "/ui/..%2Fapp.py", "/ui/js/..%2F..%2Fapp.py",
                   "/ui/js/..%2F..%2F..%2Fplugins.toml", "/ui/backdrops/..%2F..%2Fplugins.toml",
                   "/ui/backdrops/..%2Fcharacters%2Flambda_00.png", "/ui/backdrops/%2e%2e%2fcharacters%2flambda_00.png",
                   "/ui/backdrops/..%5C..%5Cplugins.toml.png", "/ui/backdrops/%2Fetc%2Fpasswd",
                   "/ui/backdrops/sunset.jpg%00.png", "/ui/%2Fetc%2Fpasswd", "/ui/backdrops/.%2E%2F.%2E%2Fserver.py.jpg"]:
        status, ctype, body = raw(server, "GET", target)
        assert b"[server]" not in body and b"import " not in body and b"\x89PNG" not in body[:8], target
        clean_4xx(status, ctype, body, target)


def test_other_name_fields(server):
    check(server.post("/api/embeddings/compute", json={"text": "x", "model": "../../etc/passwd"}), "embeddings role")
    check(server.post("/v1/embeddings", json={"input": "x", "model": "/etc/passwd"}), "openai embeddings model")
    check(server.post("/api/nlp/analyze", json={"text": "x", "pipes": ["../ner"]}), "nlp pipes")
    check(server.post("/api/websearch", json={"query": "x", "engine": "../../searxng"}), "websearch engine")
    check(server.post("/api/imagefx/process", files={"file": ("x.png", image("PNG")),
                                                     "json": (None, '{"format": "../../png"}')}), "imagefx format")
    for target in ["/api/modules/..%2F..%2Fetc", "/api/modules/../../etc/schema", "/api/modules/%2e%2e/settings"]:
        clean_4xx(*raw(server, "GET", target, server.headers), target)
    # Settings that name files or folders apply at load time only: the API refuses to change them.
    for module, key in [("talkinghead", "cache_dir"), ("talkinghead", "weights_dir"), ("tts", "onnx_model"),
                        ("tts", "onnx_voices"), ("tts", "torch_voices_dir"), ("nlp", "model"),
                        ("classify", "embedding_model"), ("embeddings", "roles")]:
        value = {"default": "/etc"} if key == "roles" else "/etc"
        reply = server.post(f"/api/modules/{module}/settings", json={key: value})
        assert reply.status_code == 422, (module, key, reply.text)


# -- JSON ----------------------------------------------------------------------------------------------

def test_bodies_over_the_limit(server):
    limit = MAX_BODY_MB * 2**20
    reply = server.post("/api/classify", data=b'{"text": "' + b"a" * limit + b'"}')
    assert reply.status_code == 413 and "too large" in check(reply, "just over the limit")["error"]
    # Far over the limit (or chunked without a length), waitress refuses before reading the body.
    for body in (b"a" * (limit * 2), (b"a" * 2**20 for _ in range(MAX_BODY_MB + 4))):
        reply = server.post("/api/classify", data=body)
        assert reply.status_code == 413
        check(reply, "far over the limit")  # waitress's own answer is JSON too


def test_huge_and_deep_json(server):
    cases = {
        "deep arrays": "[" * 100_000,
        "deep inside a field": '{"text": ' + "[" * 5000 + "]" * 5000 + "}",
        "deep objects": '{"a":' * 70 + "1" + "}" * 70,
        "5000-digit integer": '{"text": ' + "1" * 5000 + "}",
        "top-level array": '["hi"]',
        "top-level string": '"hi"',
        "truncated": '{"text": "hi',
        "trailing garbage": '{"text": "hi"} x',
    }
    for name, body in cases.items():
        for route in ("/api/classify", "/api/tts/speak", "/api/talkinghead/load_animator_settings"):
            reply = server.post(route, data=body.encode())
            check(reply, f"{name} -> {route}")
    for value in ("NaN", "Infinity", "-Infinity", "1e999", "-0", "[1]", '"1.0"x'):
        check(server.post("/api/tts/speak", data=f'{{"text": "hi", "speed": {value}}}'.encode()), f"speed {value}")
    check(server.post("/api/classify", json={"text": ["x"] * 100_000}), "100000 texts")
    check(server.post("/api/embeddings/compute", json={"text": "x" * 3_000_000}), "3 MB text")
    check(server.post("/api/nlp/analyze", json={"text": "x", "pipes": ["ner"] * 200_000}), "200000 pipes")
    deep = {"x": 1}
    for _ in range(60):
        deep = {"x": deep}
    check(server.post("/api/talkinghead/load_emotion_templates", json={"joy": deep}), "nested template")


def test_invalid_utf8_everywhere(server, avatar):
    bodies = [b'{"text": "\xff\xfe"}', b'\xef\xbb\xbf{"text": "bom"}\xc3', b'{"text": "\xed\xa0\x80"}']
    for body in bodies:
        for route in ("/api/classify", "/api/embeddings/compute", "/api/nlp/analyze", "/api/tts/speak",
                      "/api/talkinghead/set_emotion", "/api/websearch"):
            clean_4xx(*raw(server, "POST", route, {**server.headers, "Content-Type": "application/json"}, body),
                      f"{body!r} -> {route}")
    for target in ["/api/talkinghead/status?instance_id=%ff%fe", "/api/tts/sample/%ff%fe",
                   "/api/modules/%ff/schema", "/v1/audio/voices?legacy=%ff"]:
        clean_4xx(*raw(server, "GET", target, server.headers), target)
    form = (b"--b\r\nContent-Disposition: form-data; name=\"character\"\r\n\r\n\xff\xfe..\r\n--b--\r\n")
    clean_4xx(*raw(server, "POST", "/api/talkinghead/load",
                   {**server.headers, "Content-Type": "multipart/form-data; boundary=b"}, form), "form field")
    # Lone surrogates are valid JSON escapes: replaced, and the request is served.
    reply = server.post("/api/classify", data=b'{"text": "I am so happy \\ud800 today"}')
    assert reply.status_code == 200 and reply.json()["classification"][0]["label"]


# -- API key ---------------------------------------------------------------------------------------------

def test_wrong_schemes_and_places_for_the_key(server):
    key = server.key
    wrong = [
        {}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer "},
        {"Authorization": f"Basic {key}"}, {"Authorization": f"Token {key}"}, {"Authorization": f" {key}x"},
        {"Authorization": f"Bearer{key}"}, {"Authorization": f"Bearer {key[:-1]}"},
        {"Authorization": f"Bearer {key}x"}, {"Authorization": f"Bearer {key} {key}"},
        {"Authorization": f"Bearer {key.upper() if key.upper() != key else key.lower()}"},
        {"Authorization": f"Bearer \u00e9{key}".encode("utf-8").decode("latin-1")},
        {"Authorization": "Bearer " + "a" * 60_000}, {"X-Api-Key": key}, {"Api-Key": key},
        {"Cookie": f"api_key={key}"}, {"Proxy-Authorization": f"Bearer {key}"},
    ]
    for headers in wrong:
        status, ctype, body = raw(server, "GET", "/api/modules", headers)
        assert status == 401 and json.loads(body) == {"error": "401: Invalid API key"}, (headers, status, body)
        status, _, body = raw(server, "POST", "/api/classify", {**headers, "Content-Type": "application/json"},
                              b'{"text": "hi"}')
        assert status == 401, headers
    status, _, _ = raw(server, "GET", f"/api/modules?api_key={key}&key={key}")
    assert status == 401
    for good in (f"Bearer {key}", f"bearer {key}", f"BEARER {key}", f"Bearer {key} "):
        assert raw(server, "GET", "/api/modules", {"Authorization": good})[0] == 200, good


def test_key_comparison_is_constant_time(monkeypatch):
    """Every check runs hmac.compare_digest over the token and over the bare value (Raven's client sends the
    key without a scheme), whatever the scheme or length, and the results decide; an early-exit ``==`` would
    let response timing reveal the key a byte at a time."""
    calls: list[tuple[bytes, bytes]] = []
    real = transport.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(transport.hmac, "compare_digest", spy)
    key = "s3cret-key-0123456789"
    attempts = {f"Bearer {key}": True, f"bearer {key}": True, f"Bearer {key[:5]}": False,
                f"Bearer {key}0": False, f"Basic {key}": False, key: True, f"{key}0": False, "": False, "Bearer": False,
                f"Bearer {'x' * len(key)}": False, f"Token {key}": False}
    for header, expected in attempts.items():
        calls.clear()
        assert transport.key_matches(header, key) is expected, header
        assert len(calls) == 2 and all(secret == key.encode() for _, secret in calls), header
    monkeypatch.setattr(transport.hmac, "compare_digest", lambda a, b: True)
    assert transport.key_matches("Bearer anything", key)  # the digest comparison is what decides


def test_exempt_routes_cannot_reach_other_routes(server):
    """``/api/tts/sample/<voice>``, the feed, /health and the docs need no key; no spelling of a path
    through them reaches a protected route."""
    protected = b'"modules":["'
    attempts = [
        "/api/tts/sample/../../api/modules", "/api/tts/sample/..%2F..%2Fapi%2Fmodules",
        "/api/tts/sample/%2e%2e/%2e%2e/api/modules", "/api/tts/sample/jf_alpha/../../../api/modules",
        "/api/talkinghead/result_feed/../../modules", "/api/talkinghead/result_feed;/api/modules",
        "/api/talkinghead/result_feed%2F..%2F..%2Fmodules", "/health/../api/modules", "/health/%2e%2e/api/modules",
        "/openapi.json/../api/modules", "/docs;/api/modules", "//health//..//api//modules",
        f"http://127.0.0.1:{server.proc.port}/api/modules", "http://evil.example/api/modules",
        "/api/tts/sample/x?next=/api/modules", "/api/talkinghead/result_feed?instance_id=/api/modules",
        "/api/modules?x=/health", "/api/modules#/health", "/api/modules/", "//api/modules", "/API/MODULES",
        "/api/modules%00/health", "/api/tts/sample/%0a/../../api/modules", "/ui/../api/modules",
        "/ui/js/..%2F..%2Fapi%2Fmodules", "/ui/backdrops/../../api/modules", "/ui/..%2Fapi%2Fmodules",
    ]
    for target in attempts:
        status, ctype, body = raw(server, "GET", target)
        assert protected not in body, target
        clean_4xx(status, ctype, body, target)
    tricks = [{"X-Original-URL": "/api/modules"}, {"X-Rewrite-URL": "/api/modules"},
              {"X-HTTP-Method-Override": "POST"}, {"X-Forwarded-Prefix": "/api/modules"},
              {"X-Script-Name": "/api"}, {"Host": "localhost/api/modules"}]
    for headers in tricks:
        refused = "Host" in headers  # not a name this server answers to (allowed_hosts)
        status, _, body = raw(server, "GET", "/health", headers)
        assert status in ((403,) if refused else (200, 400)) and protected not in body, headers
        status, _, body = raw(server, "GET", "/api/tts/sample/nope", headers)
        assert status == (403 if refused else 404) and protected not in body, headers
    for method in ("POST", "PUT", "DELETE", "PATCH", "HEAD"):
        status, _, body = raw(server, method, "/api/modules")
        assert status in (401, 405) and protected not in body, method
    # A CORS preflight needs no key and answers nothing but headers.
    status, _, body = raw(server, "OPTIONS", "/api/modules", {"Origin": "http://evil.example",
                                                              "Access-Control-Request-Method": "GET"})
    assert status == 200 and body == b""


@pytest.mark.parametrize("request_bytes", [
    b"GET /api/modules HTTP/1.1\r\nHost: 127.0.0.1\r\nBroken header line\r\n\r\n",
    b"GET /api/modules HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: nope\r\n\r\n",
    b"\x00\x01garbage\r\n\r\n",
])
def test_requests_waitress_cannot_parse_get_a_json_error(server, request_bytes):
    """Waitress answers these itself, before any route; the answer is JSON and the log holds no traceback
    (a request line too broken to parse has no path to choose the error's shape by)."""
    import socket
    with socket.create_connection(("127.0.0.1", server.proc.port), timeout=30) as sock:
        sock.sendall(request_bytes)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert 400 <= status < 500, reply[:300]
    assert b"application/json" in head.lower(), head
    assert "error" in json.loads(body), body
