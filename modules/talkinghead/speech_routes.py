"""Lip-sync routes: speak through the tts module (host service ``tts.speak``), then move the mouth in
time with the audio the client plays.

``POST /api/talkinghead/speak`` synthesizes, answers the audio with its word timings (the JSON of
``/api/tts/speak``) plus an ``utterance_id``, and schedules the mouth; the client signals playback
with ``/speak/start`` (or asks for ``autostart``) and cancels with ``/speak/stop``.
"""
from __future__ import annotations

import base64
import io
import logging
import time
import wave
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from flask import jsonify
from pydantic import BaseModel, Field

from greenroom import ApiError
from greenroom.views import Routes

from .lipsync import LipSync, LipSyncError, Track, prefetch_pose
from .renderers import NOW
from .request import ID_PATTERN, NOT_FOUND, instance_from_request, instance_id_field

if TYPE_CHECKING:
    from .instance import Instance
    from .module import Talkinghead

log = logging.getLogger("greenroom.talkinghead.speech")

AudioFormat = Literal["wav", "mp3", "opus", "aac", "flac", "pcm"]
MEDIA_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac",
               "flac": "audio/flac", "pcm": "audio/pcm"}
INSTANCE = "Avatar instance; the default instance when omitted."


def _utterance_field() -> Any:
    return Field(None, pattern=ID_PATTERN, description="The utterance_id /speak returned; the current one "
                                                       "when omitted.")


class SpeakBody(BaseModel):
    """What to say and how; the avatar's mouth follows once playback starts."""
    text: str = Field(min_length=1, max_length=20000, description="What to say.")
    voice: str | None = Field(None, max_length=400, description="A tts voice, mix ('a+b', 'a(2)+b(1)') or "
                                                                "alias; default: the tts module's default voice.")
    voice2: str | None = Field(None, max_length=400, description="A second voice to blend with 'voice'.")
    mix: float | None = Field(None, ge=0, le=1, description="Balance between voice (0) and voice2 (1).")
    speed: float = Field(1.0, ge=0.25, le=4.0, description="Speaking rate (1 = normal).")
    format: AudioFormat = Field("wav", description="Audio format of the base64 'audio'.")
    autostart: bool = Field(False, description="Start the mouth when this reply is sent, for clients that play "
                                               "at once and never call /speak/start.")
    instance_id: str | None = instance_id_field(INSTANCE)


class SpeakStartBody(BaseModel):
    """Playback of the utterance's audio has begun (``offset`` seconds into it, now)."""
    utterance_id: str | None = _utterance_field()
    offset: float = Field(0.0, ge=0.0, le=3600.0, description="Seconds of the audio already played when this "
                                                              "request is sent (e.g. audio.currentTime).")
    latency: float | None = Field(None, ge=-2.0, le=2.0, description="Show mouth shapes this many seconds "
                                                                    "early; default: the instance's "
                                                                    "lipsync_latency setting.")
    instance_id: str | None = instance_id_field(INSTANCE)


class SpeakStopBody(BaseModel):
    """Cancel the mouth schedule (the mouth eases back to the expression)."""
    utterance_id: str | None = _utterance_field()
    instance_id: str | None = instance_id_field(INSTANCE)


class WordTiming(BaseModel):
    word: str
    original: str
    phonemes: str
    start: float
    end: float


class SpeakReply(BaseModel):
    """The JSON of /api/tts/speak plus the lip-sync schedule's id."""
    audio: str = Field(description="Base64 of the audio file in 'format'.")
    format: str
    media_type: str
    sample_rate: int
    duration: float
    voice: str
    words: list[WordTiming]
    utterance_id: str = Field(description="Pass to /speak/start when playback begins, and to /speak/stop.")
    instance_id: str
    keyframes: int = Field(description="Mouth keyframes scheduled.")
    started: bool = Field(description="True with autostart: the mouth already runs.")


class UtteranceState(BaseModel):
    """The lip-sync state of an instance after the call."""
    instance_id: str
    utterance_id: str | None
    started: bool | None = None
    stopped: bool | None = None
    latency: float | None = None
    lipsync: dict[str, Any]


def encode_wav(pcm: np.ndarray, sample_rate: int) -> bytes:
    """16-bit mono WAV (the format every browser plays) without needing the tts module's encoder."""
    samples = (np.clip(np.nan_to_num(pcm), -1.0, 1.0) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def encode_audio(host: Any, pcm: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """``fmt`` through the host service ``tts.encode`` when offered; WAV and raw PCM work without it."""
    encoder = host.service("tts.encode")
    if encoder is not None:
        return encoder(pcm, fmt)
    if fmt == "wav":
        return encode_wav(pcm, sample_rate)
    if fmt == "pcm":
        return (np.clip(np.nan_to_num(pcm), -1.0, 1.0) * 32767).astype("<i2").tobytes()
    raise ApiError(400, f"format: '{fmt}' needs the tts module's encoder service (tts.encode), which this "
                        "server lacks; use wav or pcm", field="format")


def lipsync_of(inst: "Instance") -> LipSync:
    return inst.animator.talking.lipsync


def prefetch_mouths(inst: "Instance") -> None:
    """Queue the cached renderer's mouth layers for the current expression before the audio plays."""
    target = inst.animator_target()
    if target is not None:
        inst.renderer.prefetch(prefetch_pose(target), NOW)


routes = Routes()


@routes.api("/api/talkinghead/speak", methods=["POST"], body=SpeakBody,
            summary="Speak through tts and lip-sync the avatar: audio + word timings + utterance_id",
            responses={200: SpeakReply, 400: "Bad text, voice, mix, speed or format", 404: NOT_FOUND,
                       503: "tts not loaded, or busy (Retry-After)"})
def speak(module: "Talkinghead", body: SpeakBody):
    """The mouth starts when the client calls /speak/start (or at once with autostart)."""
    inst = instance_from_request(module, body)
    tts = module.host.service("tts.speak")
    if tts is None:
        raise ApiError(503, "speak needs the tts module; enable it (--enable-modules=talkinghead,tts)")
    prefetch_mouths(inst)
    t0 = time.perf_counter()
    try:
        result = tts(body.text, body.voice, body.speed, body.voice2, body.mix)
    except ValueError as exc:  # the tts module's input errors name the field
        raise ApiError(400, str(exc)) from None
    except RuntimeError as exc:  # the tts scheduler is full
        retry = str(getattr(exc, "retry_after", 5))
        raise ApiError(503, str(exc), headers={"Retry-After": retry}) from None
    track = Track.from_words(result["words"])
    lipsync = lipsync_of(inst)
    utterance = lipsync.prepare(track, result["duration"], words=len(result["words"]))
    if body.autostart:
        lipsync.start(utterance.id, 0.0, inst.settings.lipsync_latency)
    data = encode_audio(module.host, result["audio"], result["sample_rate"], body.format)
    inst.touch()
    log.info("talkinghead speak: instance %s, %d chars, %d words, %.2f s audio, %d keyframes, %s, %.2f s",
             inst.id, len(body.text), len(result["words"]), result["duration"], len(track), body.format,
             time.perf_counter() - t0)
    return jsonify({"audio": base64.b64encode(data).decode("ascii"), "format": body.format,
                    "media_type": MEDIA_TYPES[body.format], "sample_rate": result["sample_rate"],
                    "duration": result["duration"], "voice": result["voice"], "words": result["words"],
                    "utterance_id": utterance.id, "instance_id": inst.id, "keyframes": len(track),
                    "started": body.autostart})


@routes.api("/api/talkinghead/speak/start", methods=["POST"], body=SpeakStartBody,
            summary="Playback began: the mouth follows the audio from 'offset' seconds on",
            responses={200: UtteranceState, 404: "Unknown instance, or nothing to start",
                       409: "utterance_id was replaced by a newer utterance or stopped"})
def speak_start(module: "Talkinghead", body: SpeakStartBody):
    inst = instance_from_request(module, body)
    latency = inst.settings.lipsync_latency if body.latency is None else body.latency
    try:
        utterance = lipsync_of(inst).start(body.utterance_id, body.offset, latency)
    except LipSyncError as exc:
        raise ApiError(exc.status, str(exc), utterance_id=body.utterance_id) from None
    inst.touch()
    return jsonify({"instance_id": inst.id, "utterance_id": utterance.id, "started": True, "latency": latency,
                    "lipsync": lipsync_of(inst).status()})


@routes.api("/api/talkinghead/speak/stop", methods=["POST"], body=SpeakStopBody,
            summary="Cancel the lip-sync schedule (idempotent: stopped=false when nothing matched)",
            responses={200: UtteranceState, 404: NOT_FOUND})
def speak_stop(module: "Talkinghead", body: SpeakStopBody):
    inst = instance_from_request(module, body)
    lipsync = lipsync_of(inst)
    stopped = lipsync.stop(body.utterance_id)
    current = lipsync.current()
    return jsonify({"instance_id": inst.id, "utterance_id": body.utterance_id or (current.id if current else None),
                    "stopped": stopped, "lipsync": lipsync.status()})
