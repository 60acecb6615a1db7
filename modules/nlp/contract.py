"""The analysis service of the nlp module, as other modules see it. Import this file, never the nlp internals.

    from greenroom_modules.nlp.contract import NaturalLanguage

    nlp = self.context.service(NaturalLanguage)      # None while the nlp module is not loaded
    for a in nlp.analyze(["One text.", "Another."], pipes=["senter"], with_vectors=True):
        a.doc          # spaCy's Doc.to_json()
        a.vectors      # doc.tensor as float32 (tokens x width), or None

Bad input raises :class:`greenroom.errors.BadRequest` naming the field (``text``, ``text[3]``, ``pipes``),
under the module's own limits. This file imports neither Flask nor spaCy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Analysis", "NaturalLanguage"]


@dataclass(frozen=True)
class Analysis:
    """One analysed text."""

    doc: dict[str, Any]
    """spaCy's language-neutral ``Doc.to_json()``."""
    vectors: np.ndarray | None = None
    """The document's ``tensor`` (one row per token, float32) when asked for; None otherwise."""


@runtime_checkable
class NaturalLanguage(Protocol):
    """spaCy analysis. Offered by the nlp module while it is loaded."""

    def language(self) -> str:
        """The pipeline's language code, e.g. 'en'."""
        ...

    def analyze(self, text: str | list[str], pipes: list[str] | None = None, *,
                with_vectors: bool = False) -> list[Analysis]:
        """One :class:`Analysis` per text, in order, running ``pipes`` (None: the default pipes)."""
        ...
