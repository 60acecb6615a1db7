"""Raven's own client (Technologicat/raven, raven.client.api and raven.client.tts) against Greenroom: each test
sends the request Raven's client sends, with its bare-key Authorization header, and decodes the reply the way
that client does (header timestamps percent-decoded, Doc JSON into a blank spaCy vocab, the transcript's
``text``, webfetch's ``content``)."""
from __future__ import annotations

import base64
import io
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import requests
import soundfile as sf

from greenroom.app import create_app

from .server_process import ServerProcess

pytestmark = pytest.mark.slow

SILLYTAVERN_AGENT = {"User-Agent": "node-fetch"}  # what SillyTavern's server sends


@pytest.fixture(scope="module")
def raven(tmp_path_factory):
    """A secured server with raven, tts, nlp and stt; yields (url, headers as Raven's client builds them)."""
    key_file = tmp_path_factory.mktemp("raven") / "api_key.txt"
    key_file.write_text("raven-k3y\n")
    proc = ServerProcess(["--enable-modules=raven,tts,nlp,stt", "--secure", "--api-key-file", str(key_file)])
    yield proc.url, {"Authorization": "raven-k3y"}  # Raven's client: the key alone, no scheme
    proc.stop()


def a_voice(url: str, headers: dict[str, str]) -> str:
    reply = requests.get(f"{url}/api/tts/list_voices", headers=headers, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()["voices"][0]


def tts_prepare(url: str, headers: dict[str, str], text: str, voice: str, get_metadata: bool,
                fmt: str = "flac") -> requests.Response:
    """The body and headers of Raven's tts_prepare."""
    body = {"voice": voice, "text": text, "format": fmt, "speed": 1.0, "stream": True, "get_metadata": get_metadata}
    return requests.post(f"{url}/api/tts/speak", headers={"Content-Type": "application/json", **headers},
                         json=body, stream=True, timeout=300)


def stt_transcribe(url: str, headers: dict[str, str], audio: bytes, **parameters: str) -> requests.Response:
    """Raven's stt_transcribe: multipart with the parameters as a JSON file and the audio as 'audio.bin'."""
    files = {"json": ("parameters.json", json.dumps(parameters, indent=4), "application/json"),
             "file": ("audio.bin", audio, "application/octet-stream")}
    return requests.post(f"{url}/api/stt/transcribe", headers=headers, files=files, timeout=300)


def test_raven_sees_its_module_names_and_sillytavern_does_not(raven):
    url, headers = raven
    names = requests.get(f"{url}/api/modules", headers=headers, timeout=30).json()["modules"]
    assert "natlang" in names and "tts" in names and "nlp" in names
    st = requests.get(f"{url}/api/modules", headers={**headers, **SILLYTAVERN_AGENT}, timeout=30).json()["modules"]
    assert "tts" not in st and "natlang" not in st and "silero-tts" in st and "raven" not in st
    listed = requests.get(f"{url}/api/raven/modules", headers={**headers, **SILLYTAVERN_AGENT}, timeout=30)
    assert listed.json()["modules"] == names


def test_bare_key_is_required_and_raven_routes_do_not_skip_it(raven):
    url, _ = raven
    assert requests.get(f"{url}/api/tts/info", timeout=30).status_code == 401
    assert tts_prepare(url, {"Authorization": "raven-k3"}, "Hi.", "x", True).status_code == 401
    assert requests.get(f"{url}/api/modules", headers={"Authorization": "wrong"}, timeout=30).status_code == 401


def test_tts_info_and_voices(raven):
    url, headers = raven
    info = requests.get(f"{url}/api/tts/info", headers=headers, timeout=30).json()
    assert info == {"sample_rate": 24000, "model": "Kokoro-82M"}
    voices = requests.get(f"{url}/api/tts/list_voices", headers=headers, timeout=30).json()["voices"]
    assert voices and all(isinstance(v, str) for v in voices)


def test_tts_speak_answers_raw_audio_with_ravens_headers(raven):
    url, headers = raven
    page = "http://localhost:8000"  # a browser-based client: CORS must let it read Raven's headers
    reply = tts_prepare(url, {**headers, "Origin": page}, "Hello world, café.", a_voice(url, headers), get_metadata=True)
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"] == "audio/flac" and reply.headers["Access-Control-Allow-Origin"] == page
    exposed = {h.strip().lower() for h in reply.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"x-audio-duration", "x-word-timestamps"} <= exposed
    audio = b"".join(reply.iter_content(chunk_size=4096))
    duration = json.loads(reply.headers["x-audio-duration"])
    samples, rate = sf.read(io.BytesIO(audio), dtype="float32")
    assert rate == 24000 and abs(len(samples) / rate - duration) < 0.01
    raw = json.loads(reply.headers["x-word-timestamps"])
    words = [urllib.parse.unquote(t["word"]) for t in raw]
    phonemes = [urllib.parse.unquote(t["phonemes"]) for t in raw]
    assert words == ["Hello", "world", "café"]
    assert all(p and p != urllib.parse.quote(p) for p in phonemes)  # IPA travels percent-encoded
    starts, ends = [t["start_time"] for t in raw], [t["end_time"] for t in raw]
    assert starts == sorted(starts) and all(s < e for s, e in zip(starts, ends)) and ends[-1] <= duration + 0.01


def test_tts_speak_without_metadata_and_in_another_format(raven):
    url, headers = raven
    reply = tts_prepare(url, headers, "One.", a_voice(url, headers), get_metadata=False, fmt="mp3")
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "audio/mpeg"
    assert "x-word-timestamps" not in reply.headers and json.loads(reply.headers["x-audio-duration"]) > 0
    assert reply.content[:3] == b"ID3" or reply.content[0] == 0xFF


def test_greenroom_clients_keep_the_json_speak_and_bad_raven_input_is_named(raven):
    url, headers = raven
    own = requests.post(f"{url}/api/tts/speak", headers=headers, json={"text": "One.", "voice": a_voice(url, headers)},
                        timeout=300)
    assert own.status_code == 200 and set(own.json()) >= {"audio", "words", "duration"}
    bad = tts_prepare(url, headers, "One.", a_voice(url, headers), get_metadata=True, fmt="ogg")
    assert bad.status_code == 400 and "format" in bad.json()["error"]
    unknown = tts_prepare(url, headers, "One.", "no_such_voice", get_metadata=True)
    assert unknown.status_code == 400 and "voice" in unknown.json()["error"]


def test_natlang_round_trip_through_a_blank_spacy_pipeline(raven):
    import spacy
    from spacy.tokens import Doc
    url, headers = raven
    body = {"text": ["This is a multi-sentence document. It has two sentences, see.", "Another one."],
            "pipes": ["tok2vec", "parser", "senter"], "with_vectors": True}
    reply = requests.post(f"{url}/api/natlang/analyze", headers=headers, json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    items = reply.json()
    assert [item["lang"] for item in items] == ["en", "en"]
    vocab = spacy.blank("en").vocab
    docs = [Doc(vocab).from_json(item["doc"]) for item in items]
    assert len(list(docs[0].sents)) == 2 and docs[1].text == "Another one."
    assert [t.text for t in docs[1]] == ["Another", "one", "."] and docs[1][1].dep_  # the parser ran
    vectors = items[0]["vectors"]
    tensor = np.frombuffer(base64.b64decode(vectors["b64"]), dtype="<f4").reshape(-1, vectors["dim"])
    assert set(vectors) == {"dim", "b64"} and tensor.shape[0] == len(docs[0]) and np.abs(tensor).sum() > 0


def test_natlang_single_text_without_vectors_and_bad_pipes(raven):
    url, headers = raven
    single = requests.post(f"{url}/api/natlang/analyze", headers=headers, json={"text": "Albert Einstein was born."},
                           timeout=120).json()
    assert len(single) == 1 and "vectors" not in single[0] and single[0]["doc"]["ents"]
    bad = requests.post(f"{url}/api/natlang/analyze", headers=headers, json={"text": "x", "pipes": ["nope"]},
                        timeout=120)
    assert bad.status_code == 400 and "pipes" in bad.json()["error"]


SPOKEN = "The quick brown fox jumps over the lazy dog."


def test_stt_info_and_ravens_round_trip_through_tts(raven):
    """Raven's TestStt: speak, then transcribe the answer as it came (FLAC) and as stt_transcribe_array sends
    an array (16-bit FLAC at the array's rate), with the prompt and language in the JSON attachment."""
    url, headers = raven
    info = requests.get(f"{url}/api/stt/info", headers=headers, timeout=30).json()
    assert info == {"sample_rate": 16000, "model": "tiny.en"}
    spoken = tts_prepare(url, headers, SPOKEN, a_voice(url, headers), get_metadata=False)
    assert spoken.status_code == 200, spoken.text
    as_received = stt_transcribe(url, headers, spoken.content, prompt=SPOKEN)
    assert as_received.status_code == 200, as_received.text
    assert set(as_received.json()) == {"text"} and "fox" in as_received.json()["text"].lower()
    samples, rate = sf.read(io.BytesIO(spoken.content), dtype="float32")
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(samples * 32767.0, dtype=np.int16), rate, format="FLAC", subtype="PCM_16")
    from_array = stt_transcribe(url, headers, buffer.getvalue(), language="en")
    assert from_array.status_code == 200 and "dog" in from_array.json()["text"].lower()


def test_stt_bad_raven_input_is_named_and_greenroom_form_is_untouched(raven):
    url, headers = raven
    spoken = tts_prepare(url, headers, "Hello.", a_voice(url, headers), get_metadata=False).content
    bad_json = requests.post(f"{url}/api/stt/transcribe", headers=headers, timeout=60, files={
        "json": ("parameters.json", "{not json", "application/json"), "file": ("audio.bin", spoken)})
    assert bad_json.status_code == 400 and bad_json.json()["error"].startswith("json:")
    unknown = stt_transcribe(url, headers, spoken, language="klingon")
    assert unknown.status_code == 400 and "language" in unknown.json()["error"]
    no_audio = requests.post(f"{url}/api/stt/transcribe", headers=headers, timeout=60,
                             files={"json": ("parameters.json", "{}", "application/json")})
    assert no_audio.status_code == 400 and no_audio.json()["error"].startswith("file:")
    assert stt_transcribe(url, {"Authorization": "raven-k3"}, spoken).status_code == 401
    own = requests.post(f"{url}/api/stt/transcribe", headers=headers, files={"file": ("a.flac", spoken)}, timeout=60)
    assert own.status_code == 200 and {"text", "segments", "language"} <= set(own.json())


def test_missing_provider_is_a_503_naming_it(make_config):
    client = create_app(make_config(enable=["raven"])).test_client()
    for path in ("/api/tts/info", "/api/tts/list_voices"):
        reply = client.get(path)
        assert reply.status_code == 503 and "'tts'" in reply.json["error"]
    reply = client.post("/api/natlang/analyze", json={"text": "x"})
    assert reply.status_code == 503 and "'nlp'" in reply.json["error"]
    for path, body in (("/api/websearch2", {"query": "cats"}), ("/api/webfetch", {"url": "https://example.org/"})):
        reply = client.post(path, json=body)
        assert reply.status_code == 503 and "'websearch'" in reply.json["error"]
    reply = client.get("/api/stt/info")
    assert reply.status_code == 503 and "'stt'" in reply.json["error"]
    reply = client.post("/api/stt/transcribe", data={"json": (io.BytesIO(b"{}"), "parameters.json"),
                                                     "file": (io.BytesIO(b"RIFF"), "audio.bin")})
    assert reply.status_code == 503 and "'stt'" in reply.json["error"]
    raven_only = client.get("/api/modules", headers={"User-Agent": "python-requests/2.32"}).json["modules"]
    assert "tts" not in raven_only and "natlang" not in raven_only


ARTICLE = """<!doctype html><html><head><title>Swallows &amp; velocity</title><script>track()</script></head>
<body><nav><a href="/">Home</a> | <a href="/about">About</a></nav><main><h1>Airspeed</h1>
<p>An unladen European swallow flies at roughly eleven metres per second.</p><ul><li>African</li><li>European</li>
</ul><p>""" + "It beats its wings often. " * 12 + """</p></main><footer>Copyright 2026</footer></body></html>"""


class Pages(BaseHTTPRequestHandler):
    """The web as webfetch meets it: an article, redirects, a picture, a huge page, a 404, a page drawn by
    JavaScript, plain text and a server that drips its answer."""

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        if self.path == "/moved":
            return self.answer(302, "text/html", b"", Location="/article")
        if self.path == "/to-localhost":  # same machine, another name: the redirect must be checked again
            return self.answer(302, "text/html", b"", Location=f"http://localhost:{port}/article")
        if self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"<p>drip</p>")
                self.wfile.flush()
                time.sleep(0.1)
            return None
        pages = {"/article": ("text/html; charset=utf-8", ARTICLE.encode()),
                 "/picture": ("image/png", b"\x89PNG\r\n"),
                 "/huge": ("text/html", b"<p>" + b"big " * 40_000 + b"</p>"),
                 "/app": ("text/html", b"<html><body><div id=root></div><script>render()</script></body></html>"),
                 "/notes.txt": ("text/plain; charset=utf-8", "Line one\r\n\r\n\r\nLine two \u2014 done".encode())}
        media, body = pages.get(self.path, ("text/html", b"<p>no such page</p>"))
        return self.answer(200 if self.path in pages else 404, media, body)

    def answer(self, status: int, media: str, body: bytes, **headers: str) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": media, "Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def pages():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # /slow's reader hangs up mid-drip, as it should
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def search_server(tmp_path_factory):
    """raven and websearch, the engines being the local fakes of tests/test_websearch_fakes.py; webfetch may
    reach 127.0.0.1 (named in webfetch_allowed_hosts) but no other non-public host."""
    from .test_websearch_fakes import FakeEngines
    engines = FakeEngines(slow_s=5.0)
    folder = tmp_path_factory.mktemp("raven-search")
    fetch = {"webfetch_allowed_hosts": ["127.0.0.1"], "webfetch_timeout_s": 2.0, "webfetch_max_bytes": 65536}
    toml = "\n".join(f"{k} = {json.dumps(v)}" for k, v in {**engines.settings(), **fetch}.items())
    config = folder / "plugins.toml"
    config.write_text(f'[server]\napi_key_file = "{folder / "key.txt"}"\n\n[modules.websearch]\n{toml}\n')
    proc = ServerProcess(["--config", str(config), "--enable-modules=raven,websearch"])
    yield proc.url, engines
    proc.stop()
    engines.close()


def test_websearch2_answers_ravens_shape(search_server):
    url, engines = search_server
    engines.reset()
    reply = requests.post(f"{url}/api/websearch2", json={"query": "cats", "engine": "duckduckgo", "max_links": 2},
                          timeout=30)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert [d["link"] for d in answer["data"]] == [f"https://example.org/duckduckgo/{i}?q=cats" for i in (1, 2)]
    assert all(set(d) == {"title", "link", "text"} and "<b>" not in d["title"] for d in answer["data"])
    assert answer["results"] == "\n".join(d["text"] for d in answer["data"]) and "cats" in answer["results"]
    assert len(engines.requests_to("duckduckgo")) == 1
    bad = requests.post(f"{url}/api/websearch2", json={"query": "cats", "engine": "altavista"}, timeout=30)
    assert bad.status_code == 400 and "engine" in bad.json()["error"]


def webfetch(url: str, target: str, fmt: str = "markdown") -> dict:
    """Raven's webfetch_fetch: POST {url, format}; the answer is read whole, an 'error' in it is a failure."""
    reply = requests.post(f"{url}/api/webfetch", json={"url": target, "format": fmt}, timeout=30)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert "error" not in answer and set(answer) == {"content", "url", "spaSuspected", "title"}
    return answer


def test_webfetch_returns_the_pages_readable_text(search_server, pages):
    url, _ = search_server
    article = webfetch(url, f"{pages}/moved")
    assert article["url"] == f"{pages}/article" and article["title"] == "Swallows & velocity"
    assert article["content"].startswith("# Airspeed\n\nAn unladen European swallow") and not article["spaSuspected"]
    assert "- African\n- European" in article["content"]
    assert not any(junk in article["content"] for junk in ("Home", "track()", "Copyright"))
    plain = webfetch(url, f"{pages}/article", fmt="text")["content"]
    assert plain.startswith("Airspeed\n\nAn unladen") and "#" not in plain and "- African" not in plain
    notes = webfetch(url, f"{pages}/notes.txt")
    assert notes["content"] == "Line one\n\nLine two \u2014 done" and notes["title"] is None
    assert webfetch(url, f"{pages}/app")["spaSuspected"]


def test_webfetch_refuses_private_addresses_and_other_pages_with_a_reason(search_server, pages):
    url, _ = search_server
    port = pages.rsplit(":", 1)[1]
    refused = {f"{pages}/to-localhost": "localhost resolves to a non-public address (127.0.0.1)",
               f"http://localhost:{port}/article": "non-public address",
               "http://169.254.169.254/latest/meta-data/": "non-public address",
               f"http://[::1]:{port}/article": "non-public address",
               f"http://2130706433:{port}/article": "non-public address (127.0.0.1)",
               f"http://user:secret@127.0.0.1:{port}/article": "user name or password",
               "file:///etc/passwd": "only http and https",
               f"{pages}/picture": "Content-Type 'image/png'",
               f"{pages}/huge": "larger than 65536 bytes",
               f"{pages}/missing": "HTTP 404",
               f"{pages}/slow": "within 2 s"}
    for target, reason in refused.items():
        answer = webfetch(url, target)
        assert answer["content"].startswith("The page was not fetched:") and reason in answer["content"], target
        assert answer["url"] == target and answer["title"] is None and not answer["spaSuspected"]
    for body, field in (({"format": "markdown"}, "url"), ({"url": f"{pages}/article", "format": "pdf"}, "format"),
                        ({"url": "http://[::1"}, "url")):
        bad = requests.post(f"{url}/api/webfetch", json=body, timeout=30)
        assert bad.status_code == 400 and bad.json()["error"].startswith(field), body


def test_dehyphenate_and_translate_name_the_missing_model(make_config):
    client = create_app(make_config(enable=["raven"])).test_client()
    dehyphenate = client.post("/api/sanitize/dehyphenate", json={"text": "signifi-\ncant"})
    assert dehyphenate.status_code == 503 and dehyphenate.json["model_missing"] == "dehyphenate"
    assert "language model" in dehyphenate.json["error"] and "PyPI" in dehyphenate.json["error"]
    translate = client.post("/api/translate", json={"text": "Hello.", "source_lang": "en", "target_lang": "fi"})
    assert translate.status_code == 503 and "translation model" in translate.json["error"]


def test_available_filters_in_ravens_notation(make_config):
    from greenroom_modules.postprocessor import describe_filters
    client = create_app(make_config(enable=["raven"])).test_client()
    filters = client.get("/api/avatar/get_available_filters").json["filters"]
    ours = {f["name"]: f for f in describe_filters()}
    assert [name for name, _ in filters] == [f["name"] for f in describe_filters()]
    kinds = set()
    for name, spec in filters:
        assert set(spec) == {"defaults", "ranges", "docstring"} and spec["docstring"] == ours[name]["description"]
        assert set(spec["defaults"]) == set(spec["ranges"]) == {p["name"] for p in ours[name]["params"]}
        for param, rng in spec["ranges"].items():
            default = spec["defaults"][param]
            if rng == ["!RGB"]:
                kinds.add("rgb")
                assert len(default) == 3
            elif all(isinstance(v, bool) for v in rng):  # JSON true/false, not 0.0/1.0
                assert rng == [False, True]
                kinds.add("bool")
                assert isinstance(default, bool)
            elif all(isinstance(v, str) for v in rng):
                kinds.add("choice")
                assert default in rng
            else:
                kinds.add("number")
                assert rng[0] <= default <= rng[1]
    assert kinds == {"rgb", "bool", "choice", "number"}
