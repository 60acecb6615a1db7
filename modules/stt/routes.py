"""HTTP routes: SillyTavern's whisper-stt endpoint, OpenAI's /v1/audio/transcriptions and /translations
(json, text, srt, vtt, verbose_json; SSE with ``stream``), Greenroom's /api/stt/transcribe (JSON, or NDJSON
per segment). GET /v1/models is the host's; the module offers its names there. Every upload is
multipart/form-data. Views sit at module level and take the module first (:mod:`greenroom.views`)."""
from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal

import numpy as np
from flask import Response, jsonify, request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from greenroom import BadRequest, Error
from greenroom.api import parse_model
from greenroom.views import Routes

from .module import Options, Task
from .scheduler import Job

if TYPE_CHECKING:
    from .module import STTModule

log = logging.getLogger("greenroom.stt.routes")

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
TEXT_TYPES = {"text": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}


class SillyTavernForm(BaseModel):
    """SillyTavern's Speech Recognition extension (whisper provider): the file field is ``AudioFile``."""
    model_config = ConfigDict(extra="ignore")
    language: str | None = Field(None, max_length=40, description="A code ('en'), tag ('en-US') or name; "
                                                                 "empty: the module's default.")


class OpenAIForm(BaseModel):
    """OpenAI's transcription and translation form (``file`` is the audio)."""
    model_config = ConfigDict(extra="ignore")
    model: str = Field("whisper-1", max_length=200, description="Accepted and ignored: the loaded model answers "
                                                               "(see /v1/models).")
    language: str | None = Field(None, max_length=40, description="The spoken language (ISO-639-1 such as 'en'); "
                                                                 "empty: detected, or the module's default.")
    prompt: str | None = Field(None, max_length=4000, description="Text that the speech continues (names, "
                                                                  "spelling, style).")
    temperature: float = Field(0.0, ge=0, le=1, description="0: greedy with Whisper's fallback to hotter "
                                                            "sampling when decoding fails; above 0: that "
                                                            "temperature only.")
    response_format: ResponseFormat = Field("json", description="json {text}, text, srt, vtt or verbose_json "
                                                                "(language, duration, segments, words).")
    timestamp_granularities: list[Literal["segment", "word"]] = Field(
        [], validation_alias=AliasChoices("timestamp_granularities[]", "timestamp_granularities"), max_length=2,
        description="With verbose_json: 'segment' (the default) and/or 'word' timestamps.")

    @field_validator("timestamp_granularities", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value
    stream: bool = Field(False, description="Server-sent events: transcript.text.delta per segment, then "
                                            "transcript.text.done.")


class TranscribeForm(BaseModel):
    """Greenroom's transcription form (``file`` is the audio)."""
    model_config = ConfigDict(extra="forbid")
    language: str | None = Field(None, max_length=40, description="A code ('en'), tag ('en-US') or name; "
                                                                 "empty: detected, or the module's default.")
    task: Task = Field("transcribe", description="'translate' gives English text (needs a multilingual model).")
    prompt: str | None = Field(None, max_length=4000, description="Text that the speech continues.")
    temperature: float = Field(0.0, ge=0, le=1, description="0: greedy with Whisper's fallback schedule.")
    word_timestamps: bool = Field(True, description="Each segment lists its words with start and end times.")
    stream: bool = Field(False, description="NDJSON: an 'info' line, one 'segment' line per segment as it is "
                                            "decoded, then a 'done' line.")


class Word(BaseModel):
    word: str
    start: float = Field(description="Seconds from the start of the audio.")
    end: float
    probability: float


class Segment(BaseModel):
    id: int
    start: float
    end: float
    text: str
    words: list[Word] = Field([], description="With word_timestamps.")


class TranscribeReply(BaseModel):
    """The transcript with its segments and word timings."""
    text: str
    language: str
    duration: float = Field(description="Seconds of audio received.")
    segments: list[Segment]


class Transcript(BaseModel):
    """SillyTavern's reply: the transcript only."""
    transcript: str


def multipart(form: type[BaseModel], file_field: str) -> dict[str, Any]:
    """The OpenAPI request content of a form model plus its audio file field."""
    schema = form.model_json_schema(by_alias=True)
    schema["properties"] = {file_field: {"type": "string", "format": "binary",
                                         "description": "The audio: WebM/Opus, Ogg, MP3, M4A/AAC, FLAC, WAV..."},
                            **schema["properties"]}
    schema["required"] = [file_field, *schema.get("required", [])]
    return {"multipart/form-data": {"schema": schema}}


def read_form(form: type[BaseModel], file_field: str) -> tuple[bytes, BaseModel]:
    """The uploaded file's bytes and the validated form fields (400 naming the field otherwise)."""
    if not request.mimetype.startswith("multipart/form-data"):
        raise BadRequest(f"{file_field}: send the audio as multipart/form-data (got "
                         f"'{request.mimetype or 'no Content-Type'}')")
    upload = request.files.get(file_field)
    if upload is None:
        raise BadRequest(f"{file_field}: required (a multipart file field)")
    fields = {key: request.form.getlist(key) if key.endswith("[]") else request.form[key] for key in request.form}
    return upload.read(), parse_model(form, fields, "form")


routes = Routes()

SSE_EVENT = {"schema": {"type": "object", "required": ["data"], "properties": {"data": {
    "type": "string",
    "description": 'JSON: {"type": "transcript.text.delta", "delta"} per segment, then {"type": '
                   '"transcript.text.done", "text"}'}}}}
"""One server-sent event of the stream (in OpenAPI 3.0/3.1, ``schema`` describes each event)."""

OPENAI_REPLIES = {200: {"description": "The transcript in response_format (with stream: server-sent events)",
                        "content": {"application/json": {"schema": {"type": "object"}},
                                    **{t: {"schema": {"type": "string"}} for t in TEXT_TYPES.values()},
                                    "text/event-stream": SSE_EVENT}},
                  400: "Bad audio or field", 503: "Too many requests in flight (Retry-After)"}


# -- SillyTavern --------------------------------------------------------------------------------

@routes.api("/api/speech-recognition/whisper/process-audio", methods=["POST"],
            request_content=multipart(SillyTavernForm, "AudioFile"),
            summary="SillyTavern's whisper-stt: multipart AudioFile (+ language) -> {transcript}",
            responses={200: Transcript, 400: "Missing, empty, silent, corrupt or too long audio; unknown language",
                       503: "Too many requests in flight (Retry-After)"})
def sillytavern(module: "STTModule"):
    data, form = read_form(SillyTavernForm, "AudioFile")
    pcm, options = audio_and_options(module, data, "AudioFile", language=form.language)
    return jsonify({"transcript": module.transcribe(pcm, options, "whisper-stt")["text"]})


# -- OpenAI -------------------------------------------------------------------------------------

@routes.api("/v1/audio/transcriptions", methods=["POST"], request_content=multipart(OpenAIForm, "file"),
            tags=["stt", "openai"], responses=OPENAI_REPLIES,
            summary="OpenAI-compatible transcription (json, text, srt, vtt, verbose_json with word timestamps)")
def openai_transcriptions(module: "STTModule"):
    return openai_task(module, "transcribe")


@routes.api("/v1/audio/translations", methods=["POST"], request_content=multipart(OpenAIForm, "file"),
            tags=["stt", "openai"], responses=OPENAI_REPLIES,
            summary="OpenAI-compatible translation into English (an English-only model transcribes English)")
def openai_translations(module: "STTModule"):
    return openai_task(module, "translate")


def openai_task(module: "STTModule", task: Task) -> Response:
    data, form = read_form(OpenAIForm, "file")
    granularities = set(form.timestamp_granularities) or {"segment"}
    verbose = form.response_format == "verbose_json"
    pcm, options = audio_and_options(module, data, "file", language=form.language, task=task, prompt=form.prompt,
                                     temperature=form.temperature, words=verbose and "word" in granularities)
    if form.stream:
        return streamed(module, _sse, pcm, options, f"openai {task} stream", "text/event-stream")
    result = module.transcribe(pcm, options, f"openai {task}")
    return openai_reply(result, form.response_format, granularities, task, module.language_name)


def _sse(job: Job) -> Iterator[bytes]:
    texts: list[str] = []
    with contextlib.closing(job):
        try:
            next(job)
            for segment in job:
                texts.append(segment["text"])
                yield _event({"type": "transcript.text.delta",
                              "delta": (" " if len(texts) > 1 else "") + segment["text"]})
        except Exception as exc:
            log.error("transcription stream failed: %s", exc)
            yield _event({"type": "error", "error": {"message": f"transcription failed ({type(exc).__name__})"}})
            return
    yield _event({"type": "transcript.text.done", "text": " ".join(t for t in texts if t)})


# -- Greenroom ----------------------------------------------------------------------------------

@routes.api("/api/stt/transcribe", methods=["POST"], request_content=multipart(TranscribeForm, "file"),
            summary="Transcript with segments and word timings (JSON, or NDJSON per segment)",
            responses={200: {"description": "The whole transcript as JSON; with `stream`, NDJSON: an 'info' line, "
                                            "'segment' lines as they are decoded, a 'done' line (or {\"error\"})",
                             "content": {"application/json": TranscribeReply,
                                         "application/x-ndjson": {"schema": {"type": "string"}}}},
                       400: "Bad audio or field", 503: "Too many requests in flight (Retry-After)"})
def transcribe(module: "STTModule"):
    """Segments carry `words` with `start`/`end` seconds when `word_timestamps` is on (the default)."""
    data, form = read_form(TranscribeForm, "file")
    pcm, options = audio_and_options(module, data, "file", language=form.language, task=form.task,
                                     prompt=form.prompt, temperature=form.temperature, words=form.word_timestamps)
    if form.stream:
        return streamed(module, _ndjson, pcm, options, "transcribe stream", "application/x-ndjson")
    result = module.transcribe(pcm, options, "transcribe")
    return jsonify({**result, "segments": [brief(s) for s in result["segments"]]})


def _ndjson(job: Job) -> Iterator[bytes]:
    started_at, texts = time.perf_counter(), []
    with contextlib.closing(job):
        try:
            yield _line({"type": "info", **next(job)})
            for segment in job:
                texts.append(segment["text"])
                yield _line({"type": "segment", **brief(segment)})
        except Exception as exc:
            log.error("transcription stream failed: %s", exc)
            yield _line({"error": f"transcription failed ({type(exc).__name__})"})
            return
    yield _line({"type": "done", "text": " ".join(t for t in texts if t),
                 "seconds": round(time.perf_counter() - started_at, 3)})


# -- shared -------------------------------------------------------------------------------------

def audio_and_options(module: "STTModule", data: bytes, field: str, **options: Any) -> tuple[np.ndarray, Options]:
    opts = module.options(**options)  # a bad language is named before the audio is decoded
    return module.audio(data, field), opts


def streamed(module: "STTModule", lines: Callable[[Job], Iterator[bytes]], pcm: np.ndarray, options: Options,
             label: str, media: str) -> Response:
    """A streamed reply holding one of the host's stream slots (503 when none is free)."""
    job = module.start(pcm, options, label)
    try:
        return Response(module.context.stream(lines(job)), mimetype=media)
    except Error:
        job.close()
        raise


def brief(segment: dict[str, Any]) -> dict[str, Any]:
    """A segment as Greenroom's API shows it (OpenAI's decoder statistics left out)."""
    return {k: segment[k] for k in ("id", "start", "end", "text", "words") if k in segment}


def openai_reply(result: dict[str, Any], fmt: str, granularities: set[str], task: str,
                 language_name: Callable[[str], str]) -> Response:
    """``result`` in OpenAI's response_format."""
    if fmt == "json":
        return jsonify({"text": result["text"]})
    if fmt == "verbose_json":
        body: dict[str, Any] = {"task": task, "language": language_name(result["language"]),
                                "duration": result["duration"], "text": result["text"]}
        if "segment" in granularities:
            body["segments"] = [{k: v for k, v in s.items() if k != "words"} for s in result["segments"]]
        if "word" in granularities:
            body["words"] = [{k: w[k] for k in ("word", "start", "end")}
                             for s in result["segments"] for w in s.get("words", ())]
        return jsonify(body)
    if fmt == "text":
        return Response(result["text"] + "\n", mimetype=TEXT_TYPES["text"])
    return Response(subtitles(result["segments"], fmt), mimetype=TEXT_TYPES[fmt])


def subtitles(segments: list[dict[str, Any]], fmt: str) -> str:
    """SubRip (numbered cues, ``00:00:01,000``) or WebVTT (``WEBVTT`` header, ``00:00:01.000``)."""
    mark = "," if fmt == "srt" else "."
    cues = [f"{_clock(s['start'], mark)} --> {_clock(s['end'], mark)}\n{s['text']}\n" for s in segments]
    if fmt == "srt":
        return "\n".join(f"{n}\n{cue}" for n, cue in enumerate(cues, 1))
    return "WEBVTT\n\n" + "\n".join(cues)


def _clock(seconds: float, mark: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours:02d}:{minutes:02d}:{millis // 1000:02d}{mark}{millis % 1000:03d}"


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


def _event(obj: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode("utf-8")
