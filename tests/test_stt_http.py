"""The stt module through real HTTP with the real Whisper tiny.en: Greenroom's own TTS speaks known
sentences and STT must hear them (word error rate), through SillyTavern's endpoint with WebM/Opus, the
official `openai` client, both streaming variants, every recording format, bad input and overload.
One server process (tts + stt) serves the whole file."""
from __future__ import annotations

import io
import json
import re

import numpy as np
import openai
import pytest
import requests
import soundfile as sf

from .server_process import ServerProcess
from .test_stt_units import recording
from .test_tts_http import word_error_rate

SENTENCES = ["The quick brown fox jumps over the lazy dog.",
             "My sister bought some green apples at the market on Sunday.",
             "Please turn off the lights before you leave the room.",
             "We walked along the river until the sun went down."]
HELLO = "Hello there, how are you today?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stt")
    (folder / "plugins.toml").write_text("[modules.stt]\nmax_jobs = 4\n")
    proc = ServerProcess(["--enable-modules=silero-tts,stt", "--config", str(folder / "plugins.toml")])
    yield proc
    proc.stop()


def speech(server, text: str) -> tuple[np.ndarray, int]:
    """``text`` spoken by Greenroom's TTS: float32 mono and its rate."""
    r = requests.post(server.url + "/v1/audio/speech", json={"input": text, "voice": "jf_alpha",
                                                            "response_format": "wav"}, timeout=300)
    assert r.status_code == 200, r.text
    pcm, rate = sf.read(io.BytesIO(r.content), dtype="float32")
    return pcm, rate


@pytest.fixture(scope="module")
def hello(server) -> tuple[np.ndarray, int]:
    return speech(server, HELLO)


def wav(pcm: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, pcm, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def upload(server, path: str, audio: bytes, field: str = "file", name: str = "speech.wav", **form):
    return requests.post(server.url + path, files={field: (name, audio)}, data=form, timeout=300)


def error(r: requests.Response) -> str:
    """The message of an error reply: Greenroom's {"error": "..."}, or OpenAI's {"error": {"message": ...}}
    under /v1/."""
    body = r.json()["error"]
    return body["message"] if isinstance(body, dict) else body


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def test_discovery_openapi_and_models(server):
    from openapi_spec_validator import validate

    assert "whisper-stt" in requests.get(server.url + "/api/modules").json()["modules"]
    doc = requests.get(server.url + "/openapi.json").json()
    validate(doc)
    for path in ("/api/speech-recognition/whisper/process-audio", "/v1/audio/transcriptions",
                 "/v1/audio/translations", "/api/stt/transcribe", "/v1/models"):
        assert path in doc["paths"], path
    form = doc["paths"]["/v1/audio/transcriptions"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert form["schema"]["properties"]["file"]["format"] == "binary"
    assert "timestamp_granularities[]" in form["schema"]["properties"]
    st = doc["paths"]["/api/speech-recognition/whisper/process-audio"]["post"]["requestBody"]["content"]
    assert "AudioFile" in st["multipart/form-data"]["schema"]["required"]
    models = [m["id"] for m in requests.get(server.url + "/v1/models").json()["data"]]
    assert {"whisper-1", "tiny.en", "kokoro", "tts-1"} <= set(models), models
    status = requests.get(server.url + "/api/modules/stt").json()["status"]
    assert status["model"] == "tiny.en" and status["languages"] == ["en"]


@pytest.mark.slow
def test_round_trip_tts_to_stt_word_error_rate(server):
    reference, heard = [], []
    for sentence in SENTENCES:
        pcm, rate = speech(server, sentence)
        r = upload(server, "/api/stt/transcribe", wav(pcm, rate))
        assert r.status_code == 200, r.text
        body = r.json()
        reference += words(sentence)
        heard += words(body["text"])
        timed = [w for s in body["segments"] for w in s["words"]]
        assert len(timed) == len(words(body["text"]))
        assert all(0 <= w["start"] <= w["end"] <= body["duration"] + 0.05 for w in timed)
        assert [w["start"] for w in timed] == sorted(w["start"] for w in timed)
    wer = word_error_rate(reference, heard)
    assert wer < 0.2, (wer, " ".join(heard))


@pytest.mark.slow
def test_openai_client_json_text_and_verbose_json_with_words(server, hello):
    audio = wav(*hello)
    api = client(server)
    plain = api.audio.transcriptions.create(model="whisper-1", file=("hello.wav", audio))
    assert word_error_rate(words(HELLO), words(plain.text)) < 0.2, plain.text
    text = api.audio.transcriptions.create(model="whisper-1", file=("hello.wav", audio), response_format="text")
    assert isinstance(text, str) and words(text) == words(plain.text)
    verbose = api.audio.transcriptions.create(model="whisper-1", file=("hello.wav", audio),
                                              response_format="verbose_json", language="en",
                                              timestamp_granularities=["word", "segment"])
    assert verbose.language == "english" and verbose.text == plain.text
    assert abs(verbose.duration - len(hello[0]) / hello[1]) < 0.1
    assert [w.word.lower().strip(",.?!") for w in verbose.words] == words(plain.text)
    starts = [w.start for w in verbose.words]
    assert starts == sorted(starts) and all(w.start <= w.end for w in verbose.words)
    assert verbose.segments and verbose.segments[0].start == pytest.approx(0, abs=0.5)
    # only words: no segments in the reply
    only = api.audio.transcriptions.create(model="whisper-1", file=("hello.wav", audio),
                                           response_format="verbose_json", timestamp_granularities=["word"])
    assert only.words and not only.segments


@pytest.mark.slow
def test_openai_streaming_events_and_translation(server, hello):
    api = client(server)
    events = list(api.audio.transcriptions.create(model="whisper-1", file=("hello.wav", wav(*hello)), stream=True))
    assert [e.type for e in events][-1] == "transcript.text.done"
    deltas = "".join(e.delta for e in events if e.type == "transcript.text.delta")
    assert deltas == events[-1].text and word_error_rate(words(HELLO), words(deltas)) < 0.2
    translated = api.audio.translations.create(model="whisper-1", file=("hello.wav", wav(*hello)))
    assert word_error_rate(words(HELLO), words(translated.text)) < 0.2


@pytest.mark.slow
def test_sillytavern_multipart_with_webm_opus_from_pyav(server, hello):
    webm = recording(*hello, "webm-opus", live=True)  # what MediaRecorder sends: no length in the header
    assert webm[:4] == b"\x1a\x45\xdf\xa3"  # EBML
    r = upload(server, "/api/speech-recognition/whisper/process-audio", webm, field="AudioFile",
               name="record.webm", language="en")
    assert r.status_code == 200, r.text
    assert list(r.json()) == ["transcript"]
    assert word_error_rate(words(HELLO), words(r.json()["transcript"])) < 0.2, r.json()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ogg-opus", "mp3", "m4a-aac", "flac", "wav-8k"])
def test_every_recording_format_is_understood(server, hello, kind):
    r = upload(server, "/v1/audio/transcriptions", recording(*hello, kind), name=f"speech.{kind}",
               response_format="text")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain"), r.text
    assert word_error_rate(words(HELLO), words(r.text)) < 0.2, r.text


@pytest.mark.slow
def test_subtitles_and_ndjson_stream(server):
    pcm, rate = speech(server, " ".join(SENTENCES[:2]))
    audio = wav(pcm, rate)
    srt = upload(server, "/v1/audio/transcriptions", audio, response_format="srt")
    assert srt.headers["Content-Type"].startswith("application/x-subrip")
    assert re.match(r"1\n00:00:0\d,\d{3} --> 00:00:\d\d,\d{3}\n\S", srt.text), srt.text
    vtt = upload(server, "/v1/audio/transcriptions", audio, response_format="vtt")
    assert vtt.text.startswith("WEBVTT\n\n00:00:") and vtt.headers["Content-Type"].startswith("text/vtt")
    r = requests.post(server.url + "/api/stt/transcribe", files={"file": ("two.wav", audio)},
                      data={"stream": "true"}, stream=True, timeout=300)
    assert r.headers["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in r.iter_lines() if line]
    assert lines[0]["type"] == "info" and lines[0]["language"] == "en"
    assert lines[0]["duration"] == pytest.approx(len(pcm) / rate, abs=0.05)
    segments = [line for line in lines if line.get("type") == "segment"]
    assert segments and lines[-1]["type"] == "done" and len(lines) == len(segments) + 2
    assert lines[-1]["text"] == " ".join(s["text"] for s in segments)
    assert word_error_rate(words(" ".join(SENTENCES[:2])), words(lines[-1]["text"])) < 0.2
    assert all(s["words"] for s in segments)


def silent_wav() -> bytes:
    return wav(np.zeros(16000, np.float32), 16000)


@pytest.mark.slow
def test_bad_input_gets_4xx_naming_the_problem_and_the_server_stays_healthy(server, hello):
    good = wav(*hello)
    st = "/api/speech-recognition/whisper/process-audio"
    cases = [  # (path, files, form, status, words in the message)
        (st, {"AudioFile": ("a.wav", b"")}, {}, 400, "AudioFile: the file is empty"),
        (st, {"AudioFile": ("a.wav", b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x07" * 300)}, {}, 400, "AudioFile:"),
        (st, {"AudioFile": ("a.wav", silent_wav())}, {}, 400, "AudioFile: the audio is silent"),
        (st, {"AudioFile": ("a.webm", recording(*hello, "webm-opus")[:60])}, {}, 400, "AudioFile:"),
        (st, {"file": ("a.wav", good)}, {}, 400, "AudioFile: required"),
        (st, {"AudioFile": ("a.wav", good)}, {"language": "klingon"}, 400, "language: 'klingon'"),
        (st, {"AudioFile": ("a.wav", good)}, {"language": "de"}, 400, "only knows English"),
        ("/v1/audio/transcriptions", {"file": ("a.wav", good)}, {"response_format": "mp4"}, 400, "response_format"),
        ("/v1/audio/transcriptions", {"file": ("a.wav", good)}, {"temperature": "5"}, 400, "temperature"),
        ("/v1/audio/transcriptions", {"file": ("a.wav", good)}, {"timestamp_granularities[]": "char"}, 400,
         "timestamp_granularities"),
        ("/api/stt/transcribe", {"file": ("a.wav", good)}, {"task": "summarize"}, 400, "task"),
        ("/api/stt/transcribe", {"file": ("a.wav", good)}, {"beam": "3"}, 400, "beam: Extra inputs"),
    ]
    for path, files, form, status, message in cases:
        r = requests.post(server.url + path, files=files, data=form, timeout=120)
        assert r.status_code == status and message in error(r), (path, form, r.status_code, r.text)
    r = requests.post(server.url + st, json={"AudioFile": "aGVsbG8="}, timeout=60)
    assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]
    settings = server.url + "/api/modules/stt/settings"
    assert requests.post(settings, json={"max_audio_seconds": 1}).status_code == 200
    try:
        r = upload(server, st, good, field="AudioFile")
        assert r.status_code == 400 and "the limit is 1 s (setting max_audio_seconds)" in r.json()["error"], r.text
    finally:
        requests.post(settings, json={"max_audio_seconds": 600})
    assert requests.get(server.url + "/health").json()["status"] == "ok"
    assert upload(server, st, good, field="AudioFile").json()["transcript"]
    assert "Traceback" not in server.log()


def test_live_settings_are_validated(server):
    settings = server.url + "/api/modules/stt/settings"
    r = requests.post(settings, json={"language": "fr"})
    assert r.status_code == 422 and "language: 'fr'" in r.json()["error"]
    r = requests.post(settings, json={"beam_size": 0})
    assert r.status_code == 422 and "beam_size" in r.json()["error"]
    r = requests.post(settings, json={"model": "small"})
    assert r.status_code == 422 and "load time" in r.json()["error"]
    assert requests.post(settings, json={"language": "English"}).status_code == 200
    assert requests.post(settings, json={"language": ""}).status_code == 200


@pytest.mark.slow
def test_a_full_queue_answers_503_with_retry_after(server, hello):
    pcm, rate = hello
    long = wav(np.tile(np.concatenate([pcm, np.zeros(rate // 2, np.float32)]), 100), rate)  # ~4 minutes
    settings = server.url + "/api/modules/stt/settings"
    assert requests.post(settings, json={"max_jobs": 1}).status_code == 200
    try:
        with requests.post(server.url + "/api/stt/transcribe", files={"file": ("long.wav", long)},
                           data={"stream": "true", "word_timestamps": "false"}, stream=True, timeout=300) as first:
            assert json.loads(next(first.iter_lines()))["type"] == "info"  # in flight, many segments to go
            r = upload(server, "/v1/audio/transcriptions", wav(pcm, rate))
            assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1, r.text
            assert "limit 1" in error(r)
        # leaving: the worker drops the rest of the recording once a write finds the client gone
    finally:
        requests.post(settings, json={"max_jobs": 4})
    # the abandoned recording may still be decoding: the scheduler takes turns, so this one is not stuck
    r = upload(server, "/v1/audio/transcriptions", wav(pcm, rate))
    assert r.status_code == 200 and word_error_rate(words(HELLO), words(r.json()["text"])) < 0.2
