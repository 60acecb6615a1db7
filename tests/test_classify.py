"""The classify module with the real MiniLM model: SillyTavern's shapes through real HTTP, the zero-shot
classifier on clear sentences, the talkinghead cooperation through the host (with a throw-away
'talkinghead' module), one shared copy of the embedding model, and the Hugging Face backend."""
from __future__ import annotations


import pytest
import requests

import greenroom_modules.classify.plugin as classify_plugin
import greenroom_modules.embeddings.plugin as embeddings_plugin
from greenroom import ApiBlueprint, Module
from greenroom.app import create_app
from greenroom.config import HostConfig, ServerSettings
from greenroom_modules.classify.labels import GOEMOTIONS
from greenroom_modules.embeddings.models import SharedEncoder

from .plugins_helper import plugin
from .server_process import ServerProcess

pytestmark = pytest.mark.slow

CLEAR = {
    "joy": "I am so happy, this is the best day of my life!",
    "anger": "I am so angry at you, I could punch the wall!",
    "fear": "I'm really scared, there is someone outside my window.",
    "sadness": "I feel so sad and alone since you left.",
    "gratitude": "Thank you so much for the lovely gift!",
    "love": "I love you more than anything in the world.",
    "amusement": "Hahaha, that's the funniest thing I've heard all week!",
    "nervousness": "I'm so nervous about my job interview tomorrow.",
    "grief": "My grandmother passed away last night.",
    "disgust": "Ew, there's a rotten rat in the soup, that's revolting.",
    "neutral": "The meeting is at three o'clock in room B.",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("classify") / "plugins.toml"
    cfg.write_text("[modules.classify]\nmax_texts = 20\nmax_text_chars = 1000\n")
    proc = ServerProcess(["--config", str(cfg), "--enable-modules=classify,embeddings"],
                         env={"HF_HUB_OFFLINE": "1"})
    yield proc
    proc.stop()


def classify(server, payload, status=200):
    r = requests.post(server.url + "/api/classify", json=payload, timeout=60,
                      headers={"Bypass-Tunnel-Reminder": "bypass"})
    assert r.status_code == status, r.text
    return r.json()


def assert_ranking(ranking):
    assert [x["label"] for x in ranking if x["label"] not in GOEMOTIONS] == []
    assert sorted(x["label"] for x in ranking) == sorted(GOEMOTIONS)
    scores = [x["score"] for x in ranking]
    assert all(isinstance(s, float) for s in scores) and scores == sorted(scores, reverse=True)


def test_labels_without_talkinghead(server):
    assert requests.get(server.url + "/api/modules", timeout=10).json()["modules"] == ["classify", "embeddings"]
    labels = requests.get(server.url + "/api/classify/labels", timeout=10).json()["labels"]
    assert labels == list(GOEMOTIONS) and "talkinghead" not in labels


@pytest.mark.parametrize("expected", sorted(CLEAR))
def test_zero_shot_picks_the_obvious_emotion(server, expected):
    ranking = classify(server, {"text": CLEAR[expected]})["classification"]
    assert_ranking(ranking)
    assert ranking[0]["label"] == expected, ranking[:3]
    assert abs(sum(x["score"] for x in ranking) - 1) < 1e-3


def test_batch_form_gives_one_ranking_per_text_in_order(server):
    texts = [CLEAR["love"], CLEAR["neutral"], CLEAR["fear"]]
    rankings = classify(server, {"text": texts})["classification"]
    assert len(rankings) == 3
    for ranking, label in zip(rankings, ["love", "neutral", "fear"]):
        assert_ranking(ranking)
        assert ranking[0]["label"] == label
    single = classify(server, {"text": texts[2]})["classification"]
    assert [x["label"] for x in single] == [x["label"] for x in rankings[2]]


def test_empty_text_and_odd_characters_are_classified(server):
    for text in ["", "\u0000\ufeff🙂", "a\ud800b"]:
        assert_ranking(classify(server, {"text": text})["classification"])


@pytest.mark.parametrize("payload, words", [
    ({}, ["text", "required"]), ({"text": None}, ["text"]), ({"text": {"a": 1}}, ["text", "string"]),
    ({"text": []}, ["text", "empty"]), ({"text": ["a"] * 21}, ["21", "20"]),
    ({"text": "x" * 1001}, ["text", "1001", "1000"]),
])
def test_bad_input_is_400(server, payload, words):
    error = classify(server, payload, status=400)["error"]
    assert all(w in error for w in words), error


def test_non_utf8_body_is_400(server):
    r = requests.post(server.url + "/api/classify", data=b'{"text": "\xff\xfe"}', timeout=10)
    assert r.status_code == 400 and "UTF-8" in r.json()["error"]


# -- in-process: cooperation through the host ----------------------------------------------------------

class FakeTalkinghead(Module):
    """Stands in for the real talkinghead: records what classify publishes."""

    name = "talkinghead"

    def blueprint(self):
        return ApiBlueprint("talkinghead", __name__)

    def load(self, compute):
        self.emotions: list[dict] = []
        self.context.subscribe("classify.result", lambda **kw: self.emotions.append(kw))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    key = tmp_path_factory.mktemp("key") / "api_key.txt"
    config = HostConfig(server=ServerSettings(enable_modules=["classify", "embeddings", "talkinghead"],
                                              api_key_file=str(key)))
    app = create_app(config, plugins=[("classify", classify_plugin), ("embeddings", embeddings_plugin),
                                      ("fake-talkinghead", plugin(FakeTalkinghead))], discover=False)
    yield app
    app.extensions["greenroom"].shutdown()


def test_labels_include_talkinghead_when_it_is_loaded(app):
    labels = app.test_client().get("/api/classify/labels").json["labels"]
    assert labels == [*GOEMOTIONS, "talkinghead"]


def test_classify_result_is_published_for_single_texts(app):
    talkinghead = app.extensions["greenroom"].module("talkinghead")
    client = app.test_client()
    ranking = client.post("/api/classify", json={"text": CLEAR["anger"]}).json["classification"]
    assert talkinghead.emotions[-1] == {"label": "anger", "scores": ranking}
    count = len(talkinghead.emotions)
    client.post("/api/classify", json={"text": [CLEAR["joy"], CLEAR["fear"]]})
    assert len(talkinghead.emotions) == count  # a batch is analysis, not the character's current mood


def test_embedding_model_is_loaded_once_and_shared(app):
    host = app.extensions["greenroom"]
    classify, embeddings = host.module("classify"), host.module("embeddings")
    keys = [k for k in host.context._shared if k[0] is SharedEncoder]
    assert len(keys) == 1
    assert classify.backend.encoder is embeddings._encoders["default"] is embeddings._encoders["qa"]
    assert host.records["embeddings"].load_seconds < host.records["classify"].load_seconds


def test_settings_schema_and_live_threshold(app):
    client = app.test_client()
    schema = client.get("/api/modules/classify/schema").json
    assert {"backend", "embedding_model", "hf_model", "neutral_threshold", "device"} <= set(schema["schema"]["properties"])
    assert client.post("/api/classify", json={"text": CLEAR["joy"]}).json["classification"][0]["label"] == "joy"
    assert client.post("/api/modules/classify/settings", json={"neutral_threshold": 0.99}).status_code == 200
    assert client.post("/api/classify", json={"text": CLEAR["joy"]}).json["classification"][0]["label"] == "neutral"
    client.post("/api/modules/classify/settings", json={"neutral_threshold": 0.25})
    assert client.post("/api/modules/classify/settings", json={"backend": "transformers"}).status_code == 422


# -- the Hugging Face backend, with a tiny random-weights model made here ----------------------------

@pytest.fixture(scope="module")
def tiny_goemotions(tmp_path_factory):
    """A 1-layer BERT text classifier with the 28 GoEmotions labels, saved like a hub download."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer
    folder = tmp_path_factory.mktemp("tiny-goemotions")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "i", "am", "so", "happy", "sad", "the", "cat"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=len(GOEMOTIONS),
                        id2label=dict(enumerate(GOEMOTIONS)), label2id={l: i for i, l in enumerate(GOEMOTIONS)})
    BertForSequenceClassification(config).save_pretrained(folder)
    BertTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def test_hugging_face_backend_from_a_local_path(tiny_goemotions, tmp_path):
    config = HostConfig(server=ServerSettings(enable_modules=["classify"], api_key_file=str(tmp_path / "k")),
                        modules={"classify": {"backend": "transformers", "hf_model": str(tiny_goemotions)}})
    app = create_app(config, plugins=[("classify", classify_plugin)], discover=False)
    host = app.extensions["greenroom"]
    assert host.is_loaded("classify") and not host.context._shared  # no sentence encoder loaded
    client = app.test_client()
    ranking = client.post("/api/classify", json={"text": "i am so happy " * 40}).json["classification"]
    assert_ranking(ranking)  # longer than the model's 32 positions: truncated, not an error
    batch = client.post("/api/classify", json={"text": ["the cat", "sad"]}).json["classification"]
    assert len(batch) == 2 and all(len(r) == 28 for r in batch)
    assert client.get("/api/classify/labels").json["labels"] == list(GOEMOTIONS)
    assert client.get("/api/modules/classify").json["status"]["backend"] == "transformers"
    host.shutdown()


def test_openapi_document_is_valid(server):
    from openapi_spec_validator import validate
    doc = requests.get(server.url + "/openapi.json", timeout=10).json()
    validate(doc)
    assert {"/api/classify", "/api/classify/labels", "/api/embeddings/compute", "/api/embeddings/info",
            "/v1/embeddings"} <= set(doc["paths"])
