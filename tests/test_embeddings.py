"""The embeddings module through real HTTP with the real MiniLM model: SillyTavern's shapes, OpenAI's
client, limits and bad input, and dynamic batching under concurrent requests."""
from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from .server_process import ServerProcess

pytestmark = pytest.mark.slow

CONFIG = """
[modules.embeddings]
max_texts = 40
max_text_chars = 500
batch_window_ms = 20
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("embeddings") / "plugins.toml"
    cfg.write_text(CONFIG)
    proc = ServerProcess(["--config", str(cfg), "--enable-modules=embeddings"], env={"HF_HUB_OFFLINE": "1"})
    yield proc
    proc.stop()


def compute(server, payload, status=200):
    r = requests.post(server.url + "/api/embeddings/compute", json=payload, timeout=60)
    assert r.status_code == status, r.text
    return r.json()


def cos(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_modules_and_info(server):
    assert "embeddings" in requests.get(server.url + "/api/modules", timeout=10).json()["modules"]
    info = requests.get(server.url + "/api/embeddings/info", timeout=10).json()
    assert info["model"] == "sentence-transformers/all-MiniLM-L6-v2" and info["dimension"] == 384
    assert set(info["roles"]) == {"default", "qa"} and info["roles"]["qa"]["dimension"] == 384
    assert info["models"] == info["roles"]  # Raven's client reads {"models": {role: {model, dimension}}}


def test_shape_mirrors_input_and_vectors_are_unit_length(server):
    single = compute(server, {"text": "A cat sat on the mat."})["embedding"]
    assert isinstance(single, list) and len(single) == 384 and isinstance(single[0], float)
    assert abs(np.linalg.norm(single) - 1) < 1e-4
    listed = compute(server, {"text": ["A cat sat on the mat."]})["embedding"]
    assert len(listed) == 1 and len(listed[0]) == 384
    assert np.allclose(listed[0], single, atol=1e-5)
    # SillyTavern omits Content-Type sometimes; the body is still read as JSON.
    raw = requests.post(server.url + "/api/embeddings/compute", data=json.dumps({"text": "x"}), timeout=30)
    assert raw.status_code == 200 and len(raw.json()["embedding"]) == 384


def test_similar_sentences_are_closer_and_order_is_kept(server):
    texts = ["The weather is sunny and warm today.", "Quarterly revenue grew by ten percent.",
             "It is a bright, hot day outside.", "Profits increased in the last quarter."]
    vectors = np.array(compute(server, {"text": texts})["embedding"])
    assert vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert cos(vectors[0], vectors[2]) > cos(vectors[0], vectors[1]) + 0.2
    assert cos(vectors[1], vectors[3]) > cos(vectors[1], vectors[2]) + 0.2
    for text, vector in zip(texts, vectors):  # each list item is that text's own vector, in order
        assert np.allclose(compute(server, {"text": text})["embedding"], vector, atol=1e-4)


def test_roles(server):
    default = compute(server, {"text": "hello", "model": "default"})["embedding"]
    qa = compute(server, {"text": "hello", "model": "qa"})["embedding"]
    assert np.allclose(default, qa, atol=1e-5)  # both roles name MiniLM by default
    error = compute(server, {"text": "hello", "model": "nope"}, status=400)["error"]
    assert "model" in error and "nope" in error and "default" in error


@pytest.mark.parametrize("payload, words", [
    ({}, ["text", "required"]),
    ({"text": 5}, ["text", "string or a list of strings"]),
    ({"text": ["ok", 3]}, ["text", "string or a list of strings"]),
    ({"text": []}, ["text", "empty"]),
    ({"text": ["x"] * 41}, ["text", "41", "40"]),
    ({"text": "y" * 501}, ["text", "501", "500"]),
    ({"text": ["fine", "z" * 501]}, ["text[1]", "500"]),
    ({"text": "x", "model": 7}, ["model"]),
])
def test_bad_input_is_400_naming_the_problem(server, payload, words):
    error = compute(server, payload, status=400)["error"]
    for word in words:
        assert word in error


def test_non_utf8_and_lone_surrogates(server):
    r = requests.post(server.url + "/api/embeddings/compute", data=b'{"text": "caf\xe9"}',
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400 and "UTF-8" in r.json()["error"]
    r = requests.post(server.url + "/api/embeddings/compute", data=b'{"text": ["a\\ud800b", "\\udfff"]}',
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 200 and len(r.json()["embedding"]) == 2
    r = requests.post(server.url + "/v1/embeddings", data=b'{"input": "\\ud83d"}', timeout=30)
    assert r.status_code == 200 and r.json()["data"][0]["index"] == 0


def test_openai_client_float_and_base64(server):
    from openai import OpenAI
    client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    texts = ["first sentence", "a second, different sentence"]
    default = client.embeddings.create(input=texts, model="default")  # the client asks for base64 itself
    as_float = client.embeddings.create(input=texts, model="sentence-transformers/all-MiniLM-L6-v2",
                                        encoding_format="float")
    assert [d.index for d in default.data] == [0, 1] and default.object == "list"
    assert default.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert default.usage.prompt_tokens == default.usage.total_tokens > 4
    for a, b in zip(default.data, as_float.data):
        assert len(a.embedding) == 384 and np.allclose(a.embedding, b.embedding, atol=1e-6)
    single = client.embeddings.create(input="first sentence", model="qa")
    assert np.allclose(single.data[0].embedding, default.data[0].embedding, atol=1e-5)


def test_openai_wire_format_and_errors(server):
    url = server.url + "/v1/embeddings"
    body = requests.post(url, json={"input": ["abc"], "model": "default", "encoding_format": "base64"},
                         timeout=30).json()
    vector = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4")
    assert vector.shape == (384,) and abs(np.linalg.norm(vector) - 1) < 1e-4
    assert body["data"][0]["object"] == "embedding" and set(body["usage"]) == {"prompt_tokens", "total_tokens"}
    for payload, status, word in [({"input": [1, 2.5]}, 400, "token IDs"), ({"input": "a", "dimensions": 385}, 400,
                                   "dimensions"), ({"input": "a", "model": "gpt-x"}, 404, "gpt-x"),
                                  ({"input": []}, 400, "empty"), ({"input": "a", "encoding_format": "hex"}, 400,
                                                                  "encoding_format")]:
        r = requests.post(url, json=payload, timeout=30)
        assert r.status_code == status and word in r.json()["error"]["message"], (payload, r.text)
    assert requests.post(url, json={"input": "a", "dimensions": 384}, timeout=30).status_code == 200
    # GET /v1/models is the host's: it lists the embeddings model though no tts or stt module is loaded
    ids = [m["id"] for m in requests.get(server.url + "/v1/models", timeout=30).json()["data"]]
    assert {"all-MiniLM-L6-v2", "text-embedding-3-small"} <= set(ids) and "tts-1" not in ids


def test_concurrent_requests_are_batched_and_each_gets_its_own_vectors(server):
    texts = [f"Sentence number {i} talks about topic {i % 7}." for i in range(36)]
    expected = np.array(compute(server, {"text": texts})["embedding"])
    before = requests.get(server.url + "/api/modules/embeddings", timeout=10).json()["status"]["batching"]
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda t: compute(server, {"text": t})["embedding"], texts))
    after = requests.get(server.url + "/api/modules/embeddings", timeout=10).json()["status"]["batching"]
    assert np.allclose(np.array(results), expected, atol=1e-4)
    assert after["texts_encoded"] - before["texts_encoded"] == len(texts)
    assert after["model_calls"] - before["model_calls"] < len(texts)  # requests shared model calls


def test_settings_schema_and_live_change(server):
    schema = requests.get(server.url + "/api/modules/embeddings/schema", timeout=10).json()
    props = schema["schema"]["properties"]
    assert {"roles", "device", "max_texts", "batch_window_ms"} <= set(props)
    assert "roles" in schema["load_time"] and schema["values"]["max_texts"] == 40
    url = server.url + "/api/modules/embeddings/settings"
    assert requests.post(url, json={"batch_window_ms": 1}, timeout=10).json()["values"]["batch_window_ms"] == 1
    assert requests.post(url, json={"batch_window_ms": -1}, timeout=10).status_code == 422
    assert requests.post(url, json={"roles": {"default": "x"}}, timeout=10).status_code == 422
