"""Audio encoding with PyAV (FFmpeg's codecs): wav, pcm, mp3, aac, opus and flac, whole or streamed.

Streaming writes to a sink that cannot seek, so each call to :meth:`Encoder.add` returns the bytes
ready so far (complete MP3/ADTS frames, Ogg pages, WAV data after a header of unknown length).
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

from .backends import SAMPLE_RATE
from .contract import MEDIA_TYPES


@dataclass(frozen=True)
class Format:
    container: str
    codec: str
    media_type: str
    bit_rate: int = 0


FORMATS: dict[str, Format] = {
    "mp3": Format("mp3", "libmp3lame", MEDIA_TYPES["mp3"], 64000),
    "opus": Format("ogg", "libopus", MEDIA_TYPES["opus"], 48000),
    "aac": Format("adts", "aac", MEDIA_TYPES["aac"], 64000),
    "flac": Format("flac", "flac", MEDIA_TYPES["flac"]),
    "wav": Format("wav", "pcm_s16le", MEDIA_TYPES["wav"]),
    "pcm": Format("s16le", "pcm_s16le", MEDIA_TYPES["pcm"]),
}
"""OpenAI's response formats. ``pcm`` is raw signed 16-bit little-endian mono at 24 kHz."""


class _Sink:
    """A write-only file for PyAV: no ``seek``, so muxers write streamable headers; drained after each add."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def write(self, data: bytes) -> int:
        self._buf += bytes(data)
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        out = bytes(self._buf)
        self._buf.clear()
        return out


class Encoder:
    """Encode float32 mono audio at 24 kHz into one of :data:`FORMATS`."""

    def __init__(self, fmt: str, streaming: bool = False) -> None:
        spec = FORMATS[fmt]
        self.format = fmt
        self.media_type = spec.media_type
        self._streaming = streaming
        self._out = _Sink() if streaming else io.BytesIO()
        options = {"page_duration": "50000"} if spec.container == "ogg" else {}  # small Ogg pages stream sooner
        self._container = av.open(self._out, "w", format=spec.container, options=options)
        self._stream = self._container.add_stream(spec.codec, rate=SAMPLE_RATE)
        self._stream.layout = "mono"
        if spec.bit_rate:
            self._stream.bit_rate = spec.bit_rate
        self._fifo = av.AudioFifo()
        self._closed = False

    def add(self, audio: np.ndarray) -> bytes:
        """Encode more audio; when streaming, the bytes that are ready now (may be empty)."""
        pcm = (np.clip(np.nan_to_num(audio, nan=0.0), -1.0, 1.0) * 32767).astype(np.int16).reshape(1, -1)
        if pcm.size:
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            self._fifo.write(frame)
        size = self._stream.codec_context.frame_size or 2048
        while self._fifo.samples >= size:
            self._mux(self._fifo.read(size))
        return self._drain()

    def finish(self) -> bytes:
        """Flush the encoder and close the container; the remaining bytes (or the whole file)."""
        if self._closed:
            return b""
        self._closed = True
        rest = self._fifo.read()
        if rest is not None:
            self._mux(rest)
        self._mux(None)
        self._container.close()
        return self._out.drain() if isinstance(self._out, _Sink) else self._out.getvalue()

    def _mux(self, frame: av.AudioFrame | None) -> None:
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def _drain(self) -> bytes:
        return self._out.drain() if isinstance(self._out, _Sink) else b""

    def close(self) -> None:
        """Release FFmpeg resources without producing output (e.g. when a client went away)."""
        if not self._closed:
            self._closed = True
            try:
                self._container.close()
            except Exception:
                pass


def encode(audio: np.ndarray, fmt: str) -> bytes:
    """A complete file of ``audio`` in ``fmt`` (seekable output, so WAV and FLAC headers carry lengths)."""
    enc = Encoder(fmt)
    enc.add(audio)
    return enc.finish()
