"""Raven's speech recognition and page fetching, in Raven's shapes, on the stt and websearch modules.

- ``GET /api/stt/info`` -> ``{"sample_rate", "model"}`` (Raven's client reads the rate before it sends audio).
- ``POST /api/stt/transcribe`` shares its path with the stt module's own route. Raven's client sends
  multipart with two files: ``file`` (the audio, any format) and ``json`` (a ``parameters.json`` holding
  ``{"prompt"?, "language"?}``). Greenroom's form never has a ``json`` file, so :func:`intercept_transcribe`
  answers those requests with ``{"text"}`` and leaves every other one to the stt route.
- ``POST /api/webfetch`` ``{"url", "format": "markdown"|"text"}`` -> ``{"content", "url", "spaSuspected",
  "title"}``. As in Raven, a URL that is refused (the SSRF rules) or cannot be read is still a 200, with
  the reason as ``content``: Raven's Librarian hands ``content`` to its LLM, which then tells the user.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from flask import Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from greenroom.api import parse_model
from greenroom.errors import BadRequest
from greenroom.views import Routes
from greenroom_modules.stt.contract import Transcribing
from greenroom_modules.websearch.contract import FetchFailed, FetchRefused, WebFetching

from .common import authorised, needed

if TYPE_CHECKING:
    from .module import Raven

routes = Routes()

MAX_PARAMETERS_BYTES = 64 * 1024
SPA_SUSPECTED_CHARS = 200
"""A web page whose text is shorter than this is flagged ``spaSuspected`` (its content is probably drawn
by JavaScript, which Greenroom does not run)."""


class TranscribeParameters(BaseModel):
    """The ``json`` attachment of Raven's ``stt_transcribe``."""
    model_config = ConfigDict(extra="ignore")
    prompt: str | None = Field(None, max_length=4000, description="Text the speech continues (names, spelling).")
    language: str | None = Field(None, max_length=40, description="'en', 'fi'...; none: the stt module's default.")


class WebfetchRequest(BaseModel):
    """Raven's ``webfetch_fetch`` body."""
    url: str = Field(max_length=8192)
    format: Literal["markdown", "text"] = "markdown"


class WebfetchReply(BaseModel):
    content: str = Field(description="The page's text, or why it was not fetched.")
    url: str = Field(description="The page's URL after redirects (the requested one when refused).")
    spaSuspected: bool = Field(description="The page had almost no text without running its JavaScript.")
    title: str | None


@routes.hook("before_app_request")
def intercept_transcribe(module: "Raven") -> Response | None:
    """Answer Raven's form of ``POST /api/stt/transcribe`` (it carries a ``json`` file); None lets the stt
    route answer everyone else. Runs before the host's key check, so it leaves unauthorised requests alone."""
    if (request.endpoint != "stt.transcribe" or request.method != "POST" or not module.context.is_loaded(module.name)
            or not authorised() or "json" not in request.files):
        return None
    stt = needed(module, Transcribing, "stt")
    attachment = request.files["json"].read(MAX_PARAMETERS_BYTES + 1)
    if len(attachment) > MAX_PARAMETERS_BYTES:
        raise BadRequest(f"json: the parameters file is larger than {MAX_PARAMETERS_BYTES} bytes")
    try:
        parameters = json.loads(attachment or b"{}")
    except ValueError:
        raise BadRequest("json: the parameters file is not JSON") from None
    options = parse_model(TranscribeParameters, parameters, "json")
    audio = request.files.get("file")
    if audio is None:
        raise BadRequest("file: required (the audio, as a multipart file)")
    return jsonify({"text": stt.transcribe_file(audio.read(), options.language, options.prompt)})


@routes.api("/api/stt/info", summary="Raven: the speech recognition model and the sample rate it hears",
            tags=["raven"], responses={503: "stt is not loaded"})
def stt_info(module: "Raven"):
    stt = needed(module, Transcribing, "stt")
    return jsonify({"sample_rate": stt.sample_rate, "model": stt.model_name})


@routes.api("/api/webfetch", methods=["POST"], body=WebfetchRequest, tags=["raven"],
            summary="Raven: one web page's main text; refusals and failures answer the reason as content",
            responses={200: WebfetchReply, 400: "Missing or bad url or format", 503: "websearch is not loaded"})
def webfetch(module: "Raven", body: WebfetchRequest):
    """Fetched by the websearch module under its SSRF rules, timeout and size limit (webfetch_* settings)."""
    fetcher = needed(module, WebFetching, "websearch")
    try:
        page = fetcher.fetch_page(body.url, body.format)
    except (FetchRefused, FetchFailed) as exc:
        return jsonify(raven_page(f"The page was not fetched: {exc.message}.", body.url, None, False))
    return jsonify(raven_page(page.text, page.url, page.title,
                              page.media_type != "text/plain" and len(page.text) < SPA_SUSPECTED_CHARS))


def raven_page(content: str, url: str, title: str | None, spa_suspected: bool) -> dict[str, Any]:
    return {"content": content, "url": url, "spaSuspected": spa_suspected, "title": title}
