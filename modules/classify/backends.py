"""The two classifiers: zero-shot over sentence embeddings (offline default) and a Hugging Face model."""
from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

import numpy as np

from greenroom import Compute, Context
from greenroom_modules.embeddings.models import shared_encoder

from .labels import GOEMOTIONS, NEUTRAL, PROTOTYPES
from .settings import ClassifySettings

log = logging.getLogger("greenroom.classify")

Ranking = list[dict[str, Any]]
"""``[{"label": str, "score": float}, ...]``, every label, highest score first."""


class Backend(Protocol):
    labels: list[str]

    def classify(self, texts: list[str]) -> list[Ranking]: ...


def rank(labels: list[str], scores: np.ndarray) -> Ranking:
    order = np.argsort(-scores, kind="stable")
    return [{"label": labels[i], "score": float(scores[i])} for i in order]


class ZeroShot:
    """Cosine similarity to each label's prototype, softmaxed; 'neutral' scores as a fixed threshold."""

    def __init__(self, context: Context, settings: ClassifySettings, compute: Compute) -> None:
        self.encoder = shared_encoder(context, settings.embedding_model, compute)  # shared with embeddings
        self.settings = settings
        self.emotions = [label for label in GOEMOTIONS if label != NEUTRAL]
        self.labels = self.emotions + [NEUTRAL]
        self.prototypes = self._prototypes()

    def _prototypes(self) -> np.ndarray:
        """Per emotion, the normalised mean embedding of its phrases and "I feel <label>." (one model call)."""
        phrases = [list(PROTOTYPES[label]) + [f"I feel {label}."] for label in self.emotions]
        vectors = self.encoder.encode([p for group in phrases for p in group])
        rows, start = [], 0
        for group in phrases:
            mean = vectors[start:start + len(group)].mean(axis=0)
            rows.append(mean / np.linalg.norm(mean))
            start += len(group)
        return np.stack(rows)

    def classify(self, texts: list[str]) -> list[Ranking]:
        similarity = self.encoder.encode(texts) @ self.prototypes.T
        neutral = np.full((len(texts), 1), self.settings.neutral_threshold, dtype=np.float32)
        logits = np.concatenate([similarity, neutral], axis=1) / self.settings.temperature
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return [rank(self.labels, row) for row in probs]


class HuggingFace:
    """Any text-classification model; every label's score for every text (sigmoid or softmax per model)."""

    def __init__(self, settings: ClassifySettings, compute: Compute) -> None:
        import torch
        from transformers import pipeline
        dtype = getattr(torch, compute.dtype) if compute.is_cuda else torch.float32
        log.info("loading text-classification model %s on %s", settings.hf_model, compute.device)
        self.pipe = pipeline("text-classification", model=settings.hf_model, device=compute.device,
                             dtype=dtype, top_k=None)
        self.lock = threading.Lock()
        id2label = self.pipe.model.config.id2label
        self.labels = [id2label[i] for i in sorted(id2label)]
        # Truncate to what the model can read even when the tokenizer does not say (EX used the config too).
        positions = getattr(self.pipe.model.config, "max_position_embeddings", None) or 512
        self.max_length = min(int(self.pipe.tokenizer.model_max_length), int(positions))

    def classify(self, texts: list[str]) -> list[Ranking]:
        with self.lock:
            results = self.pipe(texts, truncation=True, max_length=self.max_length, top_k=None, batch_size=16)
        return [[{"label": r["label"], "score": float(r["score"])} for r in
                 sorted(result, key=lambda r: -r["score"])] for result in results]


def make_backend(context: Context, settings: ClassifySettings, compute: Compute) -> Backend:
    if settings.backend == "transformers":
        return HuggingFace(settings, compute)
    return ZeroShot(context, settings, compute)
