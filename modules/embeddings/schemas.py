"""Request and response models of the embeddings routes (they also document /openapi.json)."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, Field

from greenroom_modules.textinput import TextOrTexts

from .token_ids import is_token_ids


def _texts_or_token_ids(value: Any) -> Any:
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return value
    if is_token_ids(value):
        return value
    raise ValueError("must be a string, a list of strings, or token IDs ([int, ...] or [[int, ...], ...])")


OpenAIInput = Annotated[Union[str, list[str], list[int], list[list[int]]], BeforeValidator(_texts_or_token_ids)]


class ComputeRequest(BaseModel):
    """SillyTavern's request, plus an optional role."""

    text: TextOrTexts = Field(description="One text, or a list of texts (the reply mirrors the shape).")
    model: str | None = Field(None, max_length=200,
                              description="A role from the 'roles' setting (e.g. 'default', 'qa'); "
                                          "the default role when omitted.")


class ComputeReply(BaseModel):
    """Unit-length vectors: one for a string input, a list of them (in input order) for a list input."""

    embedding: list[float] | list[list[float]]


class RoleInfo(BaseModel):
    model: str = Field(description="The configured model name or path.")
    dimension: int
    max_seq_length: int = Field(description="Tokens the model reads; longer texts are truncated.")


class InfoReply(BaseModel):
    """The roles, their models and vector sizes; ``model``/``dimension`` describe the default role."""

    model: str
    dimension: int
    roles: dict[str, RoleInfo]
    models: dict[str, RoleInfo] = Field(description="The same as roles, under the name Raven's client reads.")


class OpenAIRequest(BaseModel):
    """The OpenAI embeddings request."""

    input: OpenAIInput = Field(description="A text, a list of texts, or token IDs: one list of ints or a list of "
                                           "them (OpenAI's cl100k_base ids with an OpenAI model name, the model's "
                                           "own ids with its own name or a role).")
    model: str = Field("default", max_length=200,
                       description="The served model's name (full or short), an alias from model_aliases "
                                   "(OpenAI's model names by default) or a role; others are 404 model_not_found.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="'base64': each vector as base64 of little-endian float32 bytes.")
    dimensions: int | None = Field(None, ge=1, description="Keep the first N dimensions and re-normalise (as "
                                                           "OpenAI's models do); at most the model's size.")
    user: str | None = Field(None, max_length=256, description="Accepted and ignored.")


class OpenAIEmbedding(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str


class OpenAIUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class OpenAIReply(BaseModel):
    """The OpenAI embeddings response."""

    object: Literal["list"]
    data: list[OpenAIEmbedding]
    model: str
    usage: OpenAIUsage
