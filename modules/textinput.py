"""Checking the ``text: str | [str]`` inputs that several modules take, with 400s that name the problem."""
from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BeforeValidator

from greenroom.errors import BadRequest


def text_batch(value: str | list[str], field: str, max_items: int, max_chars: int) -> tuple[list[str], bool]:
    """``value`` as a list plus whether it was a single string; 400 for empty or oversized input."""
    single = isinstance(value, str)
    texts = [value] if single else list(value)
    if not texts:
        raise BadRequest(f"{field}: the list is empty; send at least one string")
    if len(texts) > max_items:
        raise BadRequest(f"{field}: {len(texts)} items is more than the limit of {max_items}",
                       limit=max_items)
    for i, text in enumerate(texts):
        if len(text) > max_chars:
            where = field if single else f"{field}[{i}]"
            raise BadRequest(f"{where}: {len(text)} characters is more than the limit of {max_chars}",
                           limit=max_chars)
    return texts, single


def _string_or_strings(value: Any) -> Any:
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return value
    raise ValueError("must be a string or a list of strings")


TextOrTexts = Annotated[Union[str, list[str]], BeforeValidator(_string_or_strings)]
"""A request field taking one text or a list of texts, with one clear error for anything else."""
