"""The avatar speaks through the tts module's typed Speech service: /api/talkinghead/speak over real HTTP with
the real Kokoro model, every audio format the contract names, and the service's errors as the client sees them."""
from __future__ import annotations

import base64
import io

import pytest
import requests
import soundfile as sf

from .server_process import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speak")
    config = folder / "plugins.toml"
    config.write_text(f'[modules.talkinghead]\ncache_dir = "{folder / "cache"}"\nprecompute_emotions = false\n'
                      'background_nice = 0\n')
    proc = ServerProcess(["--config", str(config), "--enable-modules=talkinghead,tts"])
    r = requests.post(f"{proc.url}/api/talkinghead/load", data={"character": "lambda_00"}, timeout=60)
    assert r.status_code == 200, r.text
    yield proc
    proc.stop()


def speak(server, **body) -> requests.Response:
    return requests.post(f"{server.url}/api/talkinghead/speak", json=body, timeout=300)


def test_speak_answers_audio_words_and_an_utterance(server):
    r = speak(server, text="Hello there, Bob.", voice="jf_alpha")
    assert r.status_code == 200, r.text
    reply = r.json()
    pcm, rate = sf.read(io.BytesIO(base64.b64decode(reply["audio"])), dtype="float32")
    assert reply["format"] == "wav" and reply["media_type"] == "audio/wav" and rate == reply["sample_rate"] == 24000
    assert abs(len(pcm) / rate - reply["duration"]) < 0.01 and reply["voice"] == "jf_alpha"
    assert [w["original"] for w in reply["words"]] == ["Hello", "there", "Bob"]
    assert set(reply["words"][0]) == {"word", "original", "phonemes", "start", "end"}
    assert reply["words"][0]["start"] < reply["words"][-1]["end"] <= reply["duration"] + 0.01
    assert reply["keyframes"] > 4 and reply["started"] is False and reply["instance_id"] == "default"
    start = requests.post(f"{server.url}/api/talkinghead/speak/start", json={"utterance_id": reply["utterance_id"]},
                          timeout=30)
    assert start.status_code == 200, start.text
    assert start.json()["lipsync"]["utterance"]["utterance_id"] == reply["utterance_id"]


@pytest.mark.parametrize("fmt, media_type, magic", [("mp3", "audio/mpeg", b"ID3"), ("opus", "audio/ogg", b"OggS"),
                                                     ("flac", "audio/flac", b"fLaC"), ("pcm", "audio/pcm", None)])
def test_every_contract_format_is_encoded_by_the_service(server, fmt, media_type, magic):
    reply = speak(server, text="One.", format=fmt, autostart=True).json()
    data = base64.b64decode(reply["audio"])
    assert reply["format"] == fmt and reply["media_type"] == media_type and reply["started"] is True
    if magic is None:  # raw 16-bit samples: two bytes per sample of the stated duration
        assert abs(len(data) / 2 / reply["sample_rate"] - reply["duration"]) < 0.01
    else:
        assert data.startswith(magic)


def test_service_errors_reach_the_client_named(server):
    r = speak(server, text="Hi.", voice="nobody")
    assert r.status_code == 400 and "voice" in r.json()["error"], r.text
    r = speak(server, text="Hi.", format="ogg")
    assert r.status_code == 400 and "format" in r.json()["error"], r.text


def test_speak_without_tts_says_what_to_enable():
    from greenroom.app import create_app
    from greenroom.config import HostConfig, ServerSettings

    app = create_app(HostConfig(server=ServerSettings(enable_modules=["talkinghead"], api_key_file="/dev/null/none"),
                                modules={"talkinghead": {"cache_dir": "", "precompute_emotions": False}}))
    try:
        client = app.test_client()
        assert client.post("/api/talkinghead/load", data={"character": "lambda_00"}).status_code == 200
        r = client.post("/api/talkinghead/speak", json={"text": "Hi."})
        assert r.status_code == 503 and "tts" in r.json["error"]
    finally:
        app.extensions["greenroom"].shutdown()
