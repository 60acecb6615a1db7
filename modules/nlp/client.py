"""A small Python client for Greenroom's nlp module: analysis on the server, real spaCy Docs here.

    import spacy
    from greenroom_modules.nlp.client import analyze
    nlp = spacy.blank("en")                      # or your own loaded pipeline (its vocab is used)
    docs = analyze("http://127.0.0.1:5100", ["First text.", "Second one."], vocab=nlp.vocab)
    for sent in docs[0].sents: ...

Needs only ``requests`` and ``spacy`` (not Greenroom).
"""
from __future__ import annotations

from typing import Any, Sequence

import requests


class NlpClientError(RuntimeError):
    """The server refused the request; ``status`` and the server's message are kept."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def docs_from_json(documents: Sequence[dict[str, Any]], vocab: Any = None) -> list[Any]:
    """``Doc.to_json()`` documents back into ``Doc`` objects on ``vocab`` (default: a blank English vocab)."""
    from spacy.tokens import Doc
    if vocab is None:
        import spacy
        vocab = spacy.blank("en").vocab
    return [Doc(vocab).from_json(document) for document in documents]


def analyze(base_url: str, texts: str | Sequence[str], pipes: Sequence[str] | None = None, vocab: Any = None,
            api_key: str | None = None, timeout: float = 120, session: requests.Session | None = None) -> list[Any]:
    """POST ``texts`` to ``/api/nlp/analyze`` and return one ``Doc`` per text (a string gives a list of one)."""
    payload: dict[str, Any] = {"text": texts if isinstance(texts, str) else list(texts)}
    if pipes is not None:
        payload["pipes"] = list(pipes)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    http = session or requests
    response = http.post(base_url.rstrip("/") + "/api/nlp/analyze", json=payload, headers=headers,
                         timeout=timeout)
    if response.status_code != 200:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise NlpClientError(response.status_code, message)
    return docs_from_json(response.json(), vocab)
