"""The classify module: emotion labels for SillyTavern's Character Expressions and the talking head."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from greenroom import Context, Module, Resources
from greenroom.module import Compute, WebPanel

from .backends import Backend, Ranking, make_backend
from .settings import ClassifySettings


class Classify(Module):
    name = "classify"
    version = "0.1.0"
    description = "Emotion classification with the 28 GoEmotions labels (zero-shot offline, or a hub model)."
    Settings = ClassifySettings
    resources = Resources(device="any", memory_mb=550, cpu_fallback=True)
    web_dir = Path(__file__).parent / "web"
    web_panels = (WebPanel("classify", "Emotion from text", "classify.js", order=40),)
    settings: ClassifySettings

    def __init__(self, context: Context, settings: ClassifySettings) -> None:
        super().__init__(context, settings)
        self.backend: Backend | None = None

    def load(self, compute: Compute) -> None:
        self.backend = make_backend(self.context, self.settings, compute)

    def unload(self) -> None:
        self.backend = None

    def apply_settings(self, settings: ClassifySettings) -> None:  # type: ignore[override]
        self.settings = settings
        if self.backend is not None and hasattr(self.backend, "settings"):
            self.backend.settings = settings

    def status(self) -> dict[str, Any]:
        model = self.settings.hf_model if self.settings.backend == "transformers" else self.settings.embedding_model
        return {"backend": self.settings.backend, "model": model, "labels": len(self.labels())}

    def labels(self) -> list[str]:
        assert self.backend is not None
        return list(self.backend.labels)

    def classify(self, texts: list[str]) -> list[Ranking]:
        assert self.backend is not None
        return self.backend.classify(texts)
