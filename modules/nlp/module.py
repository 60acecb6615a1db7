"""The nlp module: a spaCy pipeline over HTTP, answering with spaCy's language-neutral Doc JSON."""
from __future__ import annotations

from typing import Any

from greenroom import Context, Module, Resources
from greenroom.module import Compute

from greenroom_modules.textinput import text_batch

from .contract import Analysis, NaturalLanguage
from .pipeline import SpacyPipeline
from .settings import NlpSettings


class Nlp(Module):
    name = "nlp"
    version = "0.1.0"
    description = "spaCy over HTTP: tokens, tags, lemmas, dependencies, sentences and entities as Doc JSON."
    Settings = NlpSettings
    resources = Resources(device="cpu", memory_mb=250)
    settings: NlpSettings

    def __init__(self, context: Context, settings: NlpSettings) -> None:
        super().__init__(context, settings)
        self._pipeline: SpacyPipeline | None = None

    def load(self, compute: Compute) -> None:
        self._pipeline = SpacyPipeline(self.settings.model)
        self.context.provide(NaturalLanguage, self)

    def unload(self) -> None:
        self._pipeline = None

    def status(self) -> dict[str, Any]:
        return self._pipeline.info() if self._pipeline else {}

    def pipeline(self) -> SpacyPipeline:
        assert self._pipeline is not None
        return self._pipeline

    # -- the NaturalLanguage service (contract.py) -----------------------------------------------

    def language(self) -> str:
        return self.pipeline().nlp.lang

    def analyze(self, text: str | list[str], pipes: list[str] | None = None, *,
                with_vectors: bool = False) -> list[Analysis]:
        s = self.settings
        texts, _ = text_batch(text, "text", s.max_texts, s.max_text_chars)
        pipeline = self.pipeline()
        return pipeline.analyses(texts, pipeline.plan(pipes), s.batch_size, with_vectors)
