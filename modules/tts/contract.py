"""The speech service of the tts module, as other modules see it. Import this file, never the tts internals.

Usage from another module (the talking head's lip-sync does exactly this)::

    from greenroom_modules.tts.contract import Speech

    speech = self.context.service(Speech)      # None while the tts module is not loaded
    said = speech.speak("Hello there.", voice="af_heart", speed=1.1, format="mp3")
    said.data, said.media_type                 # the encoded file (format given), else None
    said.audio, said.sample_rate               # float32 mono samples in [-1, 1]
    [(w.original, w.start, w.end) for w in said.words]   # seconds from the start of the audio

Errors are :mod:`greenroom.errors` types, answered by the host without any catching in between:
:class:`InvalidSpeech` (400; the message names the field) and :class:`greenroom.errors.Busy` (503 with
``retry_after`` seconds) when the synthesis queue is full or the request ran out of time.

This file imports neither Flask nor the tts engine, so importing it costs nothing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from greenroom.errors import BadRequest, Busy

__all__ = ["AudioFormat", "Busy", "InvalidSpeech", "MEDIA_TYPES", "Speech", "Spoken", "WordTiming"]

AudioFormat = Literal["wav", "mp3", "opus", "aac", "flac", "pcm"]
MEDIA_TYPES: dict[str, str] = {"wav": "audio/wav", "mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac",
                               "flac": "audio/flac", "pcm": "audio/pcm"}
"""Every format :meth:`Speech.encode` writes, with its media type. ``pcm`` is raw signed 16-bit
little-endian mono at the service's sample rate."""


class InvalidSpeech(BadRequest, ValueError):
    """Bad text, voice, mix, speed or format; the message names the field (400)."""


@dataclass(frozen=True)
class WordTiming:
    """One spoken word: as written (``original``), as normalised (``word``), its phonemes, and when."""

    word: str
    original: str
    phonemes: str
    start: float
    end: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Spoken:
    """What :meth:`Speech.speak` returns."""

    audio: np.ndarray
    """float32 mono samples in [-1, 1]."""
    sample_rate: int
    voice: str
    """The voice as the service resolved it (aliases and mixes spelled out)."""
    words: list[WordTiming]
    format: AudioFormat | None = None
    data: bytes | None = None
    """``audio`` encoded in ``format`` when one was asked for."""

    @property
    def duration(self) -> float:
        return round(len(self.audio) / self.sample_rate, 3)

    @property
    def media_type(self) -> str | None:
        return MEDIA_TYPES[self.format] if self.format else None


@runtime_checkable
class Speech(Protocol):
    """Text to speech with word timestamps. Offered by the tts module while it is loaded."""

    sample_rate: int

    def speak(self, text: str, voice: str | None = None, *, voice2: str | None = None, mix: float | None = None,
              speed: float = 1.0, format: AudioFormat | None = None) -> Spoken:
        """Say ``text`` in ``voice`` (a name, mix such as 'a+b' or alias; None: the default voice), blended
        with ``voice2`` by ``mix`` (0: all voice, 1: all voice2), at ``speed``; encoded too if ``format``.
        Raises :class:`InvalidSpeech` or :class:`Busy`."""
        ...

    def encode(self, audio: np.ndarray, format: AudioFormat) -> bytes:
        """``audio`` (float32 mono at :attr:`sample_rate`) as a complete file in ``format``."""
        ...

    def voices(self) -> list[str]:
        """The names :meth:`speak` accepts as ``voice`` (mixes and aliases aside)."""
        ...
