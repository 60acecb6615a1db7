"""The transcription service of the stt module, as other modules see it. Import this file, never the stt internals.

    from greenroom_modules.stt.contract import Transcribing

    stt = self.context.service(Transcribing)      # None while the stt module is not loaded
    text = stt.transcribe_file(upload_bytes, language="en", prompt="Names: Greenroom, Raven.")
    stt.model_name, stt.sample_rate                # e.g. "tiny.en", 16000 (what Whisper hears)

The audio may be any file FFmpeg reads (WebM/Opus, Ogg, MP3, M4A, FLAC, WAV...). Errors are
:mod:`greenroom.errors` types: :class:`greenroom.errors.BadRequest` (400) naming ``field`` or ``language``
for empty, corrupt, silent or over-long audio and unknown languages, and :class:`greenroom.errors.Busy`
(503 with Retry-After) when the module's queue is full. This file imports neither Flask nor Whisper.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Transcribing"]


@runtime_checkable
class Transcribing(Protocol):
    """Speech to text. Offered by the stt module while it is loaded."""

    model_name: str
    """The Whisper model that answers, e.g. ``tiny.en``."""
    sample_rate: int
    """The rate the audio is resampled to before Whisper hears it (16000)."""

    def transcribe_file(self, data: bytes, language: str | None = None, prompt: str | None = None,
                        field: str = "file") -> str:
        """The transcript of a whole audio file; ``field`` is the name errors use for the audio."""
        ...
