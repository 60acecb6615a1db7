"""The stt module's parts without a server: PyAV decoding of every container a browser or phone records,
the refusals (empty, corrupt, silent, too long), subtitles, and the fair scheduler."""
from __future__ import annotations

import io
import threading

import av
import numpy as np
import pytest

from greenroom.errors import BadRequest, Busy
from greenroom_modules.stt.decode import SAMPLE_RATE, check_not_silent, decode
from greenroom_modules.stt.routes import subtitles
from greenroom_modules.stt.scheduler import Scheduler

RECORDINGS = {  # name: (container, codec, sample rate, channels)
    "webm-opus": ("webm", "libopus", 48000, "mono"),
    "ogg-opus": ("ogg", "libopus", 48000, "stereo"),
    "ogg-opus-24k": ("ogg", "libopus", 24000, "mono"),
    "m4a-aac-22k": ("ipod", "aac", 22050, "stereo"),
    "mp3": ("mp3", "libmp3lame", 44100, "stereo"),
    "m4a-aac": ("mp4", "aac", 44100, "mono"),
    "flac": ("flac", "flac", 96000, "stereo"),
    "wav-8k": ("wav", "pcm_s16le", 8000, "mono"),
    "wav-float": ("wav", "pcm_f32le", 32000, "stereo"),
}


class Unseekable(io.RawIOBase):
    """Where a live recorder writes: the muxer cannot go back to fill in the length (MediaRecorder's WebM)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, chunk) -> int:
        self.data += bytes(chunk)
        return len(chunk)


def recording(pcm: np.ndarray, rate: int, kind: str, live: bool = False) -> bytes:
    """``pcm`` (float32 mono at ``rate``) as a file of one of :data:`RECORDINGS`, encoded by FFmpeg;
    ``live``: written as a recorder streams it, with no length in the header."""
    container, codec, out_rate, layout = RECORDINGS[kind]
    buf = Unseekable() if live else io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=out_rate, layout=layout)
        resampler = av.AudioResampler(format=stream.codec_context.format, layout=layout, rate=out_rate,
                                      frame_size=stream.codec_context.frame_size or 1024)
        frame = av.AudioFrame.from_ndarray((np.clip(pcm, -1, 1) * 32767).astype(np.int16).reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = rate
        for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    return bytes(buf.data) if live else buf.getvalue()


def tone(seconds: float, rate: int = 24000, hz: float = 440.0, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def dominant_hz(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm))
    return float(np.argmax(spectrum) * SAMPLE_RATE / len(pcm))


@pytest.mark.parametrize("kind", sorted(RECORDINGS))
def test_every_recording_format_becomes_16k_mono(kind):
    pcm = decode(recording(tone(2.0), 24000, kind), max_seconds=60)
    assert pcm.dtype == np.float32 and pcm.ndim == 1
    assert abs(len(pcm) / SAMPLE_RATE - 2.0) < 0.1, len(pcm) / SAMPLE_RATE  # codec padding only
    assert abs(dominant_hz(pcm) - 440) < 5
    assert 0.3 < np.max(np.abs(pcm)) <= 1.0


@pytest.mark.parametrize("data, message", [
    (b"", "file: the file is empty"),
    (b"hello, this is not audio" * 40, "file: not an audio file FFmpeg can read (Invalid data"),
])
def test_empty_and_garbage_are_refused_by_name(data, message):
    with pytest.raises(BadRequest, match=message.replace("(", r"\(")):
        decode(data, max_seconds=60)


def test_a_file_without_audio_is_refused():
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        stream = out.add_stream("mjpeg", rate=1)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuvj420p"
        out.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    with pytest.raises(BadRequest, match="AudioFile: the file has no audio stream"):
        decode(buf.getvalue(), max_seconds=60, field="AudioFile")


def test_a_truncated_recording_keeps_what_decoded():
    data = recording(tone(3.0), 24000, "webm-opus", live=True)  # MediaRecorder stopped mid-cluster
    pcm = decode(data[: len(data) * 2 // 3], max_seconds=60)
    assert 1.0 < len(pcm) / SAMPLE_RATE < 3.0


def test_too_long_audio_is_refused_before_decoding_all_of_it():
    with pytest.raises(BadRequest, match=r"file: 5.0 s of audio; the limit is 2 s \(setting max_audio_seconds\)"):
        decode(recording(tone(5.0), 24000, "flac"), max_seconds=2)
    # A live recording declares no length: it is cut off while decoding.
    with pytest.raises(BadRequest, match="more than 2 s of audio"):
        decode(recording(tone(5.0), 24000, "webm-opus", live=True), max_seconds=2)


def test_silence_is_refused_and_quiet_speech_is_not():
    with pytest.raises(BadRequest, match="digital silence"):
        check_not_silent(np.zeros(16000, np.float32))
    with pytest.raises(BadRequest, match="loudest sample is -66 dBFS"):
        check_not_silent(tone(1.0, level=0.0005))
    check_not_silent(tone(1.0, level=0.01))  # -40 dBFS: a quiet microphone


def test_subtitles():
    segments = [{"start": 0.0, "end": 2.5, "text": "Hello there."},
                {"start": 3661.25, "end": 3663.0, "text": "An hour later."}]
    assert subtitles(segments, "srt") == ("1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n"
                                          "2\n01:01:01,250 --> 01:01:03,000\nAn hour later.\n")
    assert subtitles(segments, "vtt") == ("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n"
                                          "01:01:01.250 --> 01:01:03.000\nAn hour later.\n")


class Steps:
    """A request of ``count`` steps that records the order in which the workers ran them."""

    def __init__(self, name: str, count: int, log: list[str], gate: threading.Event | None = None) -> None:
        self.name, self.count, self.log, self.gate, self.done = name, count, log, gate, 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.done == self.count:
            raise StopIteration
        if self.gate is not None:
            assert self.gate.wait(30)
        self.done += 1
        self.log.append(f"{self.name}{self.done}")
        return self.log[-1]


def test_a_short_request_waits_for_one_step_of_a_long_one():
    log: list[str] = []
    gate = threading.Event()
    scheduler = Scheduler(max_jobs=2)
    try:
        long = scheduler.submit(Steps("long", 6, log, gate), "long")
        short = scheduler.submit(Steps("short", 1, log), "short")
        gate.set()
        assert list(short) == ["short1"]
        assert list(long) == [f"long{n}" for n in range(1, 7)]
    finally:
        scheduler.close()
    assert log.index("short1") <= 1, log  # after at most the long request's first step


def test_a_full_queue_answers_busy_and_frees_its_place_when_done():
    gate = threading.Event()
    scheduler = Scheduler(max_jobs=1)
    try:
        first = scheduler.submit(Steps("a", 2, [], gate))
        with pytest.raises(Busy) as busy:
            scheduler.submit(Steps("b", 1, []))
        assert busy.value.retry_after >= 1 and "limit 1" in str(busy.value)
        gate.set()
        assert list(first) == ["a1", "a2"]
        assert list(scheduler.submit(Steps("c", 1, []))) == ["c1"]
    finally:
        scheduler.close()


def test_a_failing_step_reaches_the_reader_and_a_closed_job_stops():
    def failing():
        yield "ok"
        raise RuntimeError("model broke")

    scheduler = Scheduler(max_jobs=2)
    try:
        job = scheduler.submit(failing())
        assert next(job) == "ok"
        with pytest.raises(RuntimeError, match="model broke"):
            next(job)
        steps = Steps("x", 1000, [], threading.Event())
        cancelled = scheduler.submit(steps)
        cancelled.close()
        steps.gate.set()
        assert list(scheduler.submit(Steps("y", 1, []))) == ["y1"]
        assert steps.done <= 2 and scheduler.active == 0
    finally:
        scheduler.close()
