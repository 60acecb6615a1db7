"""HTTP routes: /api/tts/speak (JSON or NDJSON with word timestamps), OpenAI's /v1/audio/speech (streamed
sentence by sentence by default, or as server-sent events) and /v1/audio/voices, and SillyTavern's Silero
provider endpoints. GET /v1/models is the host's (greenroom.web.openai_models); this module offers its names."""
from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal

from flask import Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from greenroom import ApiError
from greenroom.api import binary
from greenroom.web.openai_models import model_not_found
from greenroom.views import Routes

from . import audio
from .backends import SAMPLE_RATE
from .engine import SPEED_RANGE, Plan, TTSInputError
from .scheduler import Busy
from .settings import OPENAI_MODELS

if TYPE_CHECKING:
    from .module import TTSModule

log = logging.getLogger("greenroom.tts.routes")

AudioFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
MAX_TEXT = 1_000_000
AUDIO_TYPES = tuple(f.media_type for f in audio.FORMATS.values())


class VoiceFields(BaseModel):
    voice: str | None = Field(None, max_length=400, description="A voice, 'a+b' (equal mix) or 'a(2)+b(1)' "
                                                                "(weighted); default: the module's default voice.")
    voice2: str | None = Field(None, max_length=400, description="A second voice (or mix) to blend with 'voice'.")
    mix: float | None = Field(None, ge=0, le=1, description="Balance between voice (0) and voice2 (1); "
                                                            "default 0.5 when voice2 is given.")
    speed: float = Field(1.0, ge=SPEED_RANGE[0], le=SPEED_RANGE[1], description="Speaking rate (1 = normal).")
    lang: Literal["en-us", "en-gb"] | None = Field(None, description="Pronunciation; default follows the voice "
                                                                      "(b* voices British) or the module setting.")


class SpeakRequest(VoiceFields):
    """Speech with the time and phonemes of every word (for lip-sync and highlighting)."""
    text: str = Field(max_length=MAX_TEXT, description="What to say.")
    format: AudioFormat | None = Field(None, description="Audio format of the base64 'audio'; default: module setting.")
    stream: bool = Field(False, description="Send one JSON object per line (NDJSON), one per sentence.")


class WordTiming(BaseModel):
    word: str = Field(description="The spoken form after normalisation ('three dollars and fifty cents').")
    original: str = Field(description="The word as written in the request ('$3.50').")
    phonemes: str
    start: float = Field(description="Seconds from the start of the audio.")
    end: float


class SpeakReply(BaseModel):
    """The audio (base64) and its word timeline."""
    audio: str
    format: str
    media_type: str
    sample_rate: int
    duration: float
    voice: str
    words: list[WordTiming]


class SpeechRequest(VoiceFields):
    """OpenAI's /v1/audio/speech body, plus Greenroom's voice2/mix/lang/stream."""
    model_config = ConfigDict(extra="ignore")
    model: str = Field("kokoro", max_length=200,
                       description=f"One of {', '.join(OPENAI_MODELS)}: all name the same Kokoro model; "
                                   "others are 404 model_not_found.")
    input: str = Field(max_length=MAX_TEXT, description="What to say.")
    response_format: AudioFormat = Field("mp3", description="Audio format.")
    instructions: str | None = Field(None, max_length=MAX_TEXT,
                                     description="Accepted and ignored: Kokoro cannot follow speaking "
                                                 "instructions (tone, accent); pick a voice instead.")
    stream_format: Literal["audio", "sse"] = Field(
        "audio", description="'sse': server-sent events as OpenAI sends them: speech.audio.delta (base64 "
                             "audio in response_format, one per encoded chunk), then speech.audio.done.")
    stream: bool | None = Field(None, description="Send audio as each sentence is ready (chunked transfer); "
                                                  "default: the stream_speech setting (on).")


class SileroGenerate(BaseModel):
    """SillyTavern's Silero provider request."""
    text: str = Field(max_length=MAX_TEXT, description="What to say ('*' is removed).")
    speaker: str = Field(max_length=400, description="A voice_id from /api/tts/speakers (mixes work too).")
    session: str | None = Field(None, max_length=400, description="Ignored (SillyTavern sends 'sillytavern').")


class SileroSession(BaseModel):
    """Accepted and ignored: Greenroom keeps no per-session TTS state."""
    model_config = ConfigDict(extra="allow")
    path: str | None = Field(None, max_length=4096)


class Speaker(BaseModel):
    name: str
    voice_id: str
    preview_url: str


class VoicesQuery(BaseModel):
    legacy: bool = Field(False, description="true: a bare list of voice ids (older clients).")


def _audio_response(description: str) -> dict[str, Any]:
    return binary(*AUDIO_TYPES, description=description)


routes = Routes()


@routes.api("/api/tts/speak", methods=["POST"], body=SpeakRequest,
            summary="Speech plus the time and phonemes of every word (JSON, or NDJSON per sentence)",
            responses={200: {"description": "The whole utterance as JSON; with `stream: true`, NDJSON: one "
                                            "object per sentence as it is ready (the last may be {\"error\": ...})",
                             "content": {"application/json": SpeakReply,
                                         "application/x-ndjson": {"schema": {"type": "string"}}}},
                       400: "Bad text, voice, mix, speed or format",
                       503: "Too many requests in flight, or past time_budget_s (Retry-After)"})
def speak(module: "TTSModule", body: SpeakRequest):
    """`words[].original` is the word as written; `word` is what was spoken after normalisation."""
    t0 = time.perf_counter()
    fmt = body.format or module.settings.default_format
    plan = _plan(module, body.text, body)
    if body.stream:
        return _streamed(module, _ndjson, plan, fmt, t0, "application/x-ndjson")
    pcm, words = module.synthesize(plan, "speak")
    _log_done("speak", plan, fmt, len(pcm) / SAMPLE_RATE, t0)
    return jsonify({"audio": base64.b64encode(audio.encode(pcm, fmt)).decode("ascii"), "format": fmt,
                    "media_type": audio.FORMATS[fmt].media_type, "sample_rate": SAMPLE_RATE,
                    "duration": round(len(pcm) / SAMPLE_RATE, 3), "voice": plan.voice, "words": words})


SSE_EVENT = {"schema": {"type": "object", "required": ["data"], "properties": {"data": {
    "type": "string",
    "description": 'JSON: {"type": "speech.audio.delta", "audio": base64} per chunk, then {"type": '
                   '"speech.audio.done"} (or {"type": "error", ...})'}}}}
"""One server-sent event of the stream (in OpenAPI 3.0/3.1, ``schema`` describes each event)."""


@routes.api("/v1/audio/speech", methods=["POST"], body=SpeechRequest, tags=["tts", "openai"],
            summary="OpenAI-compatible speech (mp3, opus, aac, flac, wav, pcm), streamed sentence by sentence",
            responses={200: {**_audio_response("Audio in response_format (chunked, unless streaming is off)"),
                             "content": {**_audio_response("")["content"],
                                         "text/event-stream": SSE_EVENT}},
                       400: "Bad input", 404: "Unknown model (model_not_found)",
                       503: "Too many requests in flight, or past time_budget_s (Retry-After)"})
def openai_speech(module: "TTSModule", body: SpeechRequest):
    """`voice` takes Kokoro voices, OpenAI's voice names (mapped by the voice_aliases setting), mixes
    ('a+b', 'a(2)+b(1)') and other aliases. `instructions` is accepted and ignored."""
    if body.model not in OPENAI_MODELS:
        raise model_not_found(body.model, OPENAI_MODELS)
    t0 = time.perf_counter()
    plan = _plan(module, body.input, body)
    fmt = body.response_format
    media = audio.FORMATS[fmt].media_type
    if body.stream_format == "sse":
        return _streamed(module, _sse, plan, fmt, t0, "text/event-stream")
    if module.settings.stream_speech if body.stream is None else body.stream:
        return _streamed(module, _audio_stream, plan, fmt, t0, media)
    pcm, _ = module.synthesize(plan, "openai")
    _log_done("openai", plan, fmt, len(pcm) / SAMPLE_RATE, t0)
    return Response(audio.encode(pcm, fmt), mimetype=media)


@routes.api("/v1/audio/voices", query=VoicesQuery, tags=["tts", "openai"],
            summary="Voices as [{id, name}] (Open WebUI, Kokoro-FastAPI clients)")
def openai_voices(module: "TTSModule", query: VoicesQuery):
    synth = module._ready()
    ids = synth.voices() + [a for a in module.settings.alias_map() if _alias_ok(module, a)]
    if query.legacy:
        return jsonify({"voices": ids})
    aliases = module.settings.alias_map()
    return jsonify({"voices": [{"id": v, "name": f"{v} ({aliases[v]})" if v in aliases else v} for v in ids]})


@routes.api("/api/tts/voices", summary="Voices, aliases and the default voice")
def voices(module: "TTSModule"):
    synth = module._ready()
    aliases = {a: s for a, s in module.settings.alias_map().items() if _alias_ok(module, a)}
    return jsonify({"voices": synth.voices(), "aliases": aliases,
                    "default": module.default_voice(synth), "sample_rate": SAMPLE_RATE})


# -- SillyTavern's Silero provider -------------------------------------------------------------

@routes.api("/api/tts/speakers", summary="Voices for SillyTavern's Silero provider (a bare array)",
            responses={200: {"description": "Bare JSON array", "content": {"application/json": {"schema": {
                "type": "array", "items": Speaker.model_json_schema()}}}}})
def speakers(module: "TTSModule"):
    root = request.url_root.rstrip("/")
    return jsonify([{"name": v, "voice_id": v, "preview_url": f"{root}/api/tts/sample/{v}"}
                    for v in module._ready().voices()])


@routes.api("/api/tts/generate", methods=["POST"], body=SileroGenerate,
            summary="Silero-provider speech: WAV (audio/x-wav), '*' stripped",
            responses={200: binary("audio/x-wav", description="WAV, 24 kHz mono"), 400: "Bad input",
                       503: "Busy, or past time_budget_s (Retry-After)"})
def generate(module: "TTSModule", body: SileroGenerate):
    t0 = time.perf_counter()
    plan = _plan(module, body.text.replace("*", ""), VoiceFields(voice=body.speaker))
    pcm, _ = module.synthesize(plan, "silero")
    _log_done("silero", plan, "wav", len(pcm) / SAMPLE_RATE, t0)
    return Response(audio.encode(pcm, "wav"), mimetype="audio/x-wav")


@routes.api("/api/tts/sample/<voice>", auth=False, summary="A short cached sample of a voice (for <audio>)",
            responses={200: binary("audio/x-wav", description="WAV sample"), 404: "Unknown voice"})
def sample(module: "TTSModule", voice: str):
    if voice not in module._ready().voices():
        raise ApiError(404, f"no voice '{voice}'; see /api/tts/speakers")
    data = module.sample(voice)
    return Response(data, mimetype="audio/x-wav", headers={"Cache-Control": "public, max-age=3600"})


@routes.api("/api/tts/session", methods=["POST"], body=SileroSession,
            summary="Accepted for SillyTavern's Silero provider; nothing to set up")
def session(module: "TTSModule", body: SileroSession):
    return jsonify({"ok": True})


# -- helpers -------------------------------------------------------------------------------------

def _plan(module: "TTSModule", text: Any, fields: VoiceFields) -> Plan:
    """The validated request (TTSInputError is a 400 naming the field)."""
    return module.plan(text, fields.voice, fields.speed, fields.voice2, fields.mix, fields.lang)


def _streamed(module: "TTSModule", body: Callable[..., Iterator[bytes]], plan: Plan, fmt: str, t0: float,
              media: str) -> Response:
    """A streamed response holding one of the host's stream slots (503 when none is free)."""
    segments = module.segments(plan, f"{fmt} stream")
    try:
        return Response(module.context.stream(body(segments, plan, fmt, t0)), mimetype=media)
    except ApiError:
        segments.close()
        raise


def _log_done(label: str, plan: Plan, fmt: str, seconds: float, t0: float) -> None:
    log.info("%s: %d sentences, voice %s, %s, speed %.2f -> %.2f s audio in %.2f s", label,
             len(plan.sentences), plan.voice, fmt, plan.speed, seconds, time.perf_counter() - t0)


def _ndjson(segments: Iterator, plan: Plan, fmt: str, t0: float) -> Iterator[bytes]:
    offset = 0.0
    with contextlib.closing(segments):
        try:
            for seg in segments:
                line = {"index": seg.index, "count": len(plan.sentences), "text": seg.text,
                        "audio": base64.b64encode(audio.encode(seg.audio, fmt)).decode("ascii"),
                        "format": fmt, "sample_rate": SAMPLE_RATE, "start": round(offset, 3),
                        "duration": round(seg.duration, 3), "words": seg.words_at(offset)}
                offset += seg.duration
                yield (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
        except Exception as exc:
            log.error("speak stream failed: %s", exc)
            yield (json.dumps({"error": _stream_error(exc)}) + "\n").encode()
            return
    _log_done("speak stream", plan, fmt, offset, t0)


def _stream_error(exc: Exception) -> str:
    """What a stream's last message says of a failure after the status line was sent."""
    return str(exc) if isinstance(exc, Busy) else f"synthesis failed ({type(exc).__name__})"


def _encoded(segments: Iterator, fmt: str) -> Iterator[tuple[bytes, float]]:
    """The segments encoded as one stream: each non-empty chunk with the seconds of audio so far."""
    encoder = audio.Encoder(fmt, streaming=True)
    seconds = 0.0
    with contextlib.closing(segments):
        try:
            for seg in segments:
                seconds += seg.duration
                chunk = encoder.add(seg.audio)
                if chunk:
                    yield chunk, seconds
            tail = encoder.finish()
            if tail:
                yield tail, seconds
        except BaseException:
            encoder.close()
            raise


def _audio_stream(segments: Iterator, plan: Plan, fmt: str, t0: float) -> Iterator[bytes]:
    seconds = 0.0
    with contextlib.closing(_encoded(segments, fmt)) as chunks:
        try:
            for chunk, seconds in chunks:
                yield chunk
        except Exception as exc:  # the status line is gone; end the audio where it is
            log.error("openai stream failed: %s", exc)
            return
    _log_done("openai stream", plan, fmt, seconds, t0)


def _sse(segments: Iterator, plan: Plan, fmt: str, t0: float) -> Iterator[bytes]:
    """OpenAI's speech events: speech.audio.delta per chunk, then speech.audio.done (or an error event)."""
    seconds = 0.0
    with contextlib.closing(_encoded(segments, fmt)) as chunks:
        try:
            for chunk, seconds in chunks:
                yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode("ascii")})
        except Exception as exc:
            log.error("openai sse stream failed: %s", exc)
            yield _event({"type": "error", "error": {"message": _stream_error(exc), "type": "server_error"}})
            return
    yield _event({"type": "speech.audio.done"})
    _log_done("openai sse stream", plan, fmt, seconds, t0)


def _event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode("ascii")


def _alias_ok(module: "TTSModule", alias: str) -> bool:
    """An alias is offered only when its voices exist in the loaded backend."""
    try:
        module.plan("x", alias)
        return True
    except (TTSInputError, ApiError):
        return False
