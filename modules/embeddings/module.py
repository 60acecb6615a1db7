"""The embeddings module: sentence-transformers behind SillyTavern's and OpenAI's embeddings APIs."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from greenroom import BadRequest, Busy, Context, Error, Module, Resources
from greenroom.module import Compute

from .batcher import BatcherClosed, DynamicBatcher, EncodeFn
from .models import SharedEncoder, resolve_model, shared_encoder
from .names import offer
from .settings import EmbeddingsSettings

log = logging.getLogger("greenroom.embeddings")


class Embeddings(Module):
    name = "embeddings"
    version = "0.1.0"
    description = "Sentence embeddings: SillyTavern's /api/embeddings/compute and OpenAI's /v1/embeddings."
    Settings = EmbeddingsSettings
    resources = Resources(device="any", memory_mb=550, cpu_fallback=True)
    settings: EmbeddingsSettings

    def __init__(self, context: Context, settings: EmbeddingsSettings) -> None:
        super().__init__(context, settings)
        self._encoders: dict[str, SharedEncoder] = {}      # role -> model
        self._batchers: dict[str, DynamicBatcher] = {}     # model path -> its batcher (roles may share)

    def load(self, compute: Compute) -> None:
        for role, spec in self.settings.roles.items():
            encoder = shared_encoder(self.context, spec, compute)
            self._encoders[role] = encoder
            if encoder.path not in self._batchers:
                self._batchers[encoder.path] = DynamicBatcher(
                    self._encode_fn(encoder), self.settings.batch_window_ms / 1000,
                    self.settings.max_batch_texts, self.settings.max_batch_tokens, name=f"embeddings-{role}")
        offer(self)  # GET /v1/models lists the served models and their aliases
        log.info("roles: %s", ", ".join(f"{r}={s}" for r, s in self.settings.roles.items()))

    def unload(self) -> None:
        for batcher in self._batchers.values():
            batcher.close()
        self._batchers.clear()
        self._encoders.clear()

    def apply_settings(self, settings: EmbeddingsSettings) -> None:  # type: ignore[override]
        self.settings = settings
        for batcher in self._batchers.values():
            batcher.window_s = settings.batch_window_ms / 1000
            batcher.max_batch = settings.max_batch_texts
            batcher.max_tokens = settings.max_batch_tokens

    def status(self) -> dict[str, Any]:
        return {"roles": dict(self.settings.roles),
                "batching": {"model_calls": sum(b.calls for b in self._batchers.values()),
                             "texts_encoded": sum(b.texts_encoded for b in self._batchers.values())}}

    # -- used by the routes ---------------------------------------------------------------------

    def role_for(self, requested: str | None) -> str:
        """The role a request names (a role, or a model name some role uses); 400 when unknown."""
        if requested is None or requested == "":
            return "default"
        if requested in self._encoders:
            return requested
        for role, spec in self.settings.roles.items():
            if requested in (spec, resolve_model(spec)):
                return role
        raise BadRequest(f"model: unknown role '{requested}'; available: {', '.join(self._encoders)}",
                         roles=list(self._encoders))

    def embed(self, texts: list[str], role: str) -> tuple[np.ndarray, list[int]]:
        """Unit vectors for ``texts`` (through the micro-batcher of the role's model) and the tokens the
        model read of each; 413 when they are more than ``max_request_tokens``."""
        encoder = self._encoders[role]
        tokens = encoder.count_tokens(texts)
        if sum(tokens) > self.settings.max_request_tokens:
            raise Error(413, f"text: {sum(tokens)} tokens in {len(texts)} texts; one request may send at most "
                             f"{self.settings.max_request_tokens} (setting max_request_tokens); split it",
                        tokens=sum(tokens), limit=self.settings.max_request_tokens)
        try:
            job = self._batchers[encoder.path].submit(texts, tokens)
        except BatcherClosed:
            raise Busy("the server is shutting down") from None
        assert job.vectors is not None
        return job.vectors, tokens

    def encoder(self, role: str) -> SharedEncoder:
        """The loaded model of ``role`` (its tokenizer reads token-ID input)."""
        return self._encoders[role]

    def info(self) -> dict[str, Any]:
        roles = {role: {"model": self.settings.roles[role], "dimension": enc.dimension,
                        "max_seq_length": enc.max_seq_length} for role, enc in self._encoders.items()}
        # "models" repeats "roles" under the name Raven's client reads (issue 22).
        return {"model": roles["default"]["model"], "dimension": roles["default"]["dimension"], "roles": roles,
                "models": roles}

    def _encode_fn(self, encoder: SharedEncoder) -> EncodeFn:
        return lambda texts: encoder.encode(texts, self.settings.encode_batch_size)
