"""Raven's web API, in Raven's request and reply shapes, served through the other modules' services.

Two of Raven's calls share a path with Greenroom's own routes, so :func:`intercept` (a request hook) answers
them and leaves every other client to the usual route:

- ``GET /api/modules`` from a Raven client (User-Agent in ``client_user_agents``) also lists Raven's names
  for what is loaded (``natlang``, ``tts``). SillyTavern never gets a plain ``tts``: its XTTS provider
  would take it for an XTTS server.
- ``POST /api/tts/speak`` with a ``get_metadata`` field (Raven's client always sends it; Greenroom's own
  request has no such field) answers raw audio with Raven's ``x-audio-duration`` and ``x-word-timestamps``.
"""
from __future__ import annotations

import base64
import json
import urllib.parse
from typing import TYPE_CHECKING, Any, NoReturn

from flask import Response, jsonify, request
from pydantic import BaseModel, Field

from greenroom.api import json_body, parse_model
from greenroom.errors import BadRequest, Error
from greenroom.views import Routes
from greenroom_modules.nlp.contract import NaturalLanguage
from greenroom_modules.tts.contract import AudioFormat, Speech, WordTiming
from greenroom_modules.websearch.contract import WebSearching

from . import stt_webfetch
from .common import authorised, needed

if TYPE_CHECKING:
    from .module import Raven

routes = Routes(include=[stt_webfetch.routes])

RAVEN_NAMES = {"nlp": "natlang", "tts": "tts"}
"""Greenroom module -> the name Raven's clients look for in /api/modules."""
TTS_MODEL = "Kokoro-82M"
"""What both of the tts module's backends (onnx and torch) serve."""
MAX_TEXT = 1_000_000


class RavenSpeak(BaseModel):
    """Raven's ``tts_prepare`` body."""
    text: str = Field(max_length=MAX_TEXT)
    voice: str | None = Field(None, max_length=400)
    speed: float = 1.0
    format: AudioFormat = "flac"
    get_metadata: bool = True
    stream: bool = Field(False, description="Accepted; the audio is sent whole (Raven's server did the same).")


class NatlangRequest(BaseModel):
    """Raven's ``natlang_analyze`` body."""
    text: str | list[str]
    pipes: list[str] | None = None
    with_vectors: bool = False


# -- helpers ---------------------------------------------------------------------------------------

def raven_names(module: "Raven") -> list[str]:
    """/api/modules as Raven reads it: Greenroom's names plus Raven's for the loaded modules."""
    from greenroom.app import host_of
    names = host_of().advertised()
    names += [raven for ours, raven in RAVEN_NAMES.items() if module.context.is_loaded(ours) and raven not in names]
    return names


def word_timestamps(words: list[WordTiming]) -> str:
    """Raven's ``x-word-timestamps`` header: a JSON list of {word, phonemes, start_time, end_time} with word and
    phonemes percent-encoded, so the header stays ASCII whatever the text."""
    return json.dumps([{"word": urllib.parse.quote(w.original), "phonemes": urllib.parse.quote(w.phonemes),
                        "start_time": w.start, "end_time": w.end} for w in words], separators=(",", ":"))


def encode_vectors(vectors: Any) -> dict[str, Any]:
    """A (tokens x width) float32 array as Raven-server sends ``doc.tensor``: ``{"dim": width, "b64": base64 of
    its little-endian C-order float32 bytes}``; the client reshapes to (-1, dim)."""
    return {"dim": int(vectors.shape[1]),
            "b64": base64.b64encode(vectors.astype("<f4", copy=False).tobytes()).decode("ascii")}


# -- the hook for the shared paths -----------------------------------------------------------------

@routes.hook("before_app_request")
def intercept(module: "Raven") -> Response | None:
    """Answer Raven's own forms of /api/modules and /api/tts/speak (they share a path with Greenroom's
    routes); None lets the usual route answer.

    It runs before the host's key check, so an unauthorised request is left alone (the host answers 401)."""
    if not module.context.is_loaded(module.name) or not authorised():
        return None
    if request.endpoint == "host.modules" and request.method == "GET" and _raven_client(module):
        return jsonify({"modules": raven_names(module)})
    if request.endpoint == "tts.speak" and request.method == "POST":
        try:
            body = json_body()
        except BadRequest:
            return None  # the tts route names the problem
        if isinstance(body, dict) and "get_metadata" in body:
            return speak(module, parse_model(RavenSpeak, body))
    return None


def _raven_client(module: "Raven") -> bool:
    agent = request.headers.get("User-Agent", "")
    return any(agent.startswith(prefix) for prefix in module.settings.client_user_agents)


def speak(module: "Raven", body: RavenSpeak) -> Response:
    """Raw audio in ``format``; ``x-audio-duration`` (seconds) and, with ``get_metadata``, ``x-word-timestamps``."""
    speech = needed(module, Speech, "tts")
    spoken = speech.speak(body.text, body.voice, speed=body.speed, format=body.format)
    headers = {"x-audio-duration": str(spoken.duration)}
    if body.get_metadata:
        headers["x-word-timestamps"] = word_timestamps(spoken.words)
    return Response(spoken.data, mimetype=spoken.media_type, headers=headers)


# -- Raven's routes --------------------------------------------------------------------------------

@routes.api("/api/raven/modules", summary="/api/modules with Raven's module names, whatever the User-Agent",
            tags=["raven"])
def modules(module: "Raven"):
    return jsonify({"modules": raven_names(module)})


@routes.api("/api/tts/info", summary="Raven: the speech model and its sample rate", tags=["raven"],
            responses={503: "tts is not loaded"})
def tts_info(module: "Raven"):
    speech = needed(module, Speech, "tts")
    return jsonify({"sample_rate": speech.sample_rate, "model": TTS_MODEL})


@routes.api("/api/tts/list_voices", summary="Raven: the voice names", tags=["raven"],
            responses={503: "tts is not loaded"})
def tts_list_voices(module: "Raven"):
    return jsonify({"voices": needed(module, Speech, "tts").voices()})


@routes.api("/api/natlang/analyze", methods=["POST"], body=NatlangRequest, tags=["raven"],
            summary="Raven: spaCy analysis as [{lang, doc (Doc.to_json()), vectors?}]",
            responses={400: "Bad text or unknown pipe", 503: "nlp is not loaded"})
def natlang_analyze(module: "Raven", body: NatlangRequest):
    """``vectors`` (with ``with_vectors``): each doc's tensor as {dtype: float32, shape, data: base64}."""
    nlp = needed(module, NaturalLanguage, "nlp")
    lang = nlp.language()
    items = []
    for analysis in nlp.analyze(body.text, body.pipes, with_vectors=body.with_vectors):
        item: dict[str, Any] = {"lang": lang, "doc": analysis.doc}
        if analysis.vectors is not None:
            item["vectors"] = encode_vectors(analysis.vectors)
        items.append(item)
    return jsonify(items)


class Websearch2Request(BaseModel):
    """Raven's ``websearch_search`` body."""
    query: str
    engine: str = "duckduckgo"
    max_links: int = Field(10, ge=1, le=100)


@routes.api("/api/websearch2", methods=["POST"], body=Websearch2Request, tags=["raven"],
            summary="Raven: web search as {results (the texts, one per line), data: [{title, link, text}]}",
            responses={400: "Bad query or engine", 503: "websearch is not loaded, or every engine failed"})
def websearch2(module: "Raven", body: Websearch2Request):
    found = needed(module, WebSearching, "websearch").find(body.query, body.engine, body.max_links)
    return jsonify({"results": "\n".join(f.text or f.title for f in found),
                    "data": [{"title": f.title, "link": f.url, "text": f.text} for f in found]})


MISSING_MODELS = {
    "dehyphenate": "dehyphenation needs a character-level language model (Raven-server uses flair's through the "
                   "'dehyphen' package); no PyPI package ships one and Greenroom does not fetch models per request",
    "translate": "translation needs a machine-translation model (Raven-server uses a Helsinki-NLP opus-mt model "
                 "from the Hugging Face hub); no PyPI package ships one and Greenroom does not fetch models per request",
}


def missing_model(what: str) -> NoReturn:
    raise Error(503, f"{what} is not available: {MISSING_MODELS[what]}", model_missing=what)


@routes.api("/api/sanitize/dehyphenate", methods=["POST"], tags=["raven"],
            summary="Raven: dehyphenation; always 503, naming the model Greenroom does not have",
            responses={503: "No dehyphenation model"})
def sanitize_dehyphenate(module: "Raven"):
    missing_model("dehyphenate")


@routes.api("/api/translate", methods=["POST"], tags=["raven"],
            summary="Raven: translation; always 503, naming the model Greenroom does not have",
            responses={503: "No translation model"})
def translate(module: "Raven"):
    missing_model("translate")


def raven_range(param: dict[str, Any]) -> list[Any]:
    """A parameter's range in Raven's notation: [min, max], the choices, [False, True], ["!RGB"] for a colour,
    ["!ignore"] for anything a settings GUI should not offer."""
    kind = param["type"]
    if kind in ("float", "int") and "min" in param and "max" in param:
        return [param["min"], param["max"]]
    if kind == "choice":
        return list(param["choices"])
    if kind == "bool":
        return [False, True]
    if kind == "color":
        return ["!RGB"]
    return ["!ignore"]


@routes.api("/api/avatar/get_available_filters", tags=["raven"],
            summary="Raven: the postprocessor's filters as [[name, {defaults, ranges, docstring}], ...]")
def avatar_get_available_filters(module: "Raven"):
    from greenroom_modules.postprocessor import describe_filters
    return jsonify({"filters": [[f["name"], {"defaults": {p["name"]: p["default"] for p in f["params"]},
                                             "ranges": {p["name"]: raven_range(p) for p in f["params"]},
                                             "docstring": f["description"]}]
                                for f in describe_filters()]})
