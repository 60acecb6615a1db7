"""Any audio a browser or phone records (WebM/Opus, Ogg, MP3, M4A/AAC, FLAC, WAV, at any rate and channel
count) as the 16 kHz mono float32 that Whisper takes, decoded by FFmpeg through PyAV.

Decoding stops as soon as the audio passes the length limit, so a small file that expands to hours of
audio costs no more than the limit. Problems raise :class:`BadRequest` with a message that names
the form field and what is wrong with it.
"""
from __future__ import annotations

import io
import logging
import math

import av
import numpy as np

from greenroom.errors import BadRequest

log = logging.getLogger("greenroom.stt.decode")

SAMPLE_RATE = 16_000
SILENCE_DBFS = -60.0
"""Audio whose loudest sample stays below this is refused as silent (Whisper invents words for silence)."""


def decode(data: bytes, max_seconds: float, field: str = "file") -> np.ndarray:
    """``data`` (a whole audio file) as 16 kHz mono float32 in [-1, 1]."""
    if not data:
        raise BadRequest(f"{field}: the file is empty")
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise BadRequest(f"{field}: not an audio file FFmpeg can read ({_reason(exc)})") from None
    with container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise BadRequest(f"{field}: the file has no audio stream")
        declared = container.duration / av.time_base if container.duration else 0.0
        if declared > max_seconds + 1:
            raise BadRequest(_too_long(field, max_seconds, f"{declared:.1f} s"))
        pcm = _resampled(container, stream, max_seconds, field)
        if pcm.size == 0:
            raise BadRequest(f"{field}: no audio could be decoded (empty or corrupt {container.format.name})")
    return pcm


def _resampled(container: av.container.InputContainer, stream: av.AudioStream, max_seconds: float,
               field: str) -> np.ndarray:
    limit = int(max_seconds * SAMPLE_RATE)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    parts: list[np.ndarray] = []
    total = 0
    try:
        for frame in container.decode(stream):
            frame.pts = None  # timestamps of recorded audio jump; the resampler only needs the order
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray().reshape(-1))
                total += parts[-1].size
            if total > limit:
                raise BadRequest(_too_long(field, max_seconds, f"more than {max_seconds:g} s"))
        for out in resampler.resample(None):
            parts.append(out.to_ndarray().reshape(-1))
    except (av.FFmpegError, ValueError) as exc:
        if not parts:
            raise BadRequest(f"{field}: corrupt audio ({_reason(exc)})") from None
        # A recording cut off mid-frame (a stopped MediaRecorder) keeps what decoded before the break.
        log.info("%s: decoding stopped after %.2f s: %s", field, total / SAMPLE_RATE, _reason(exc))
    pcm = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return np.clip(pcm, -1.0, 1.0, out=pcm)


def check_not_silent(pcm: np.ndarray, field: str = "file") -> None:
    """Refuse audio with nothing above the silence threshold, naming its level."""
    peak = float(np.max(np.abs(pcm))) if pcm.size else 0.0
    level = 20 * math.log10(peak) if peak > 0 else -math.inf
    if level < SILENCE_DBFS:
        shown = "digital silence" if peak == 0 else f"its loudest sample is {level:.0f} dBFS"
        raise BadRequest(f"{field}: the audio is silent ({shown}; below {SILENCE_DBFS:.0f} dBFS)")


def _too_long(field: str, max_seconds: float, length: str) -> str:
    return f"{field}: {length} of audio; the limit is {max_seconds:g} s (setting max_audio_seconds)"


def _reason(exc: BaseException) -> str:
    """FFmpeg's own words ('Invalid data found when processing input'), without errno and file name."""
    return getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
