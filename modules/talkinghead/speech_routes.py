"""Lip-sync routes: speak through the tts module's :class:`Speech` service, then move the mouth in
time with the audio the client plays.

``POST /api/talkinghead/speak`` synthesizes, answers the audio with its word timings (the JSON of
``/api/tts/speak``) plus an ``utterance_id``, and schedules the mouth; the client signals playback
with ``/speak/start`` (or asks for ``autostart``) and cancels with ``/speak/stop``.
"""
from __future__ import annotations

import base64
import logging
import time
from typing import TYPE_CHECKING, Any

from flask import jsonify
from pydantic import BaseModel, Field

from greenroom import ApiError
from greenroom.views import Routes
from greenroom_modules.tts.contract import AudioFormat, Speech, WordTiming

from .lipsync import LipSync, Track, prefetch_pose
from .renderers import NOW
from .request import ID_PATTERN, NOT_FOUND, instance_from_request, instance_id_field

if TYPE_CHECKING:
    from .instance import Instance
    from .module import Talkinghead

log = logging.getLogger("greenroom.talkinghead.speech")

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
    speech = module.context.service(Speech)
    if speech is None:
        raise ApiError(503, "speak needs the tts module; enable it (--enable-modules=talkinghead,tts)")
    prefetch_mouths(inst)
    t0 = time.perf_counter()
    said = speech.speak(body.text, body.voice, voice2=body.voice2, mix=body.mix, speed=body.speed,
                        format=body.format)
    words = [w.as_dict() for w in said.words]
    track = Track.from_words(words)
    lipsync = lipsync_of(inst)
    utterance = lipsync.prepare(track, said.duration, words=len(words))
    if body.autostart:
        lipsync.start(utterance.id, 0.0, inst.settings.lipsync_latency)
    inst.touch()
    log.info("talkinghead speak: instance %s, %d chars, %d words, %.2f s audio, %d keyframes, %s, %.2f s",
             inst.id, len(body.text), len(words), said.duration, len(track), body.format, time.perf_counter() - t0)
    return jsonify({"audio": base64.b64encode(said.data).decode("ascii"), "format": body.format,
                    "media_type": said.media_type, "sample_rate": said.sample_rate, "duration": said.duration,
                    "voice": said.voice, "words": words, "utterance_id": utterance.id, "instance_id": inst.id,
                    "keyframes": len(track), "started": body.autostart})


@routes.api("/api/talkinghead/speak/start", methods=["POST"], body=SpeakStartBody,
            summary="Playback began: the mouth follows the audio from 'offset' seconds on",
            responses={200: UtteranceState, 404: "Unknown instance, or nothing to start",
                       409: "utterance_id was replaced by a newer utterance or stopped"})
def speak_start(module: "Talkinghead", body: SpeakStartBody):
    inst = instance_from_request(module, body)
    latency = inst.settings.lipsync_latency if body.latency is None else body.latency
    utterance = lipsync_of(inst).start(body.utterance_id, body.offset, latency)
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
