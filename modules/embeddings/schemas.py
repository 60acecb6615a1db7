"""Request and response models of the embeddings routes (they also document /openapi.json)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from greenroom_modules.textinput import TextOrTexts


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


class OpenAIRequest(BaseModel):
    """The OpenAI embeddings request (token-id input is not supported)."""

    input: TextOrTexts = Field(description="A text or a list of texts.")
    model: str = Field("default", max_length=200,
                       description="A role name, or the model name a role is configured with.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="'base64': each vector as base64 of little-endian float32 bytes.")
    dimensions: int | None = Field(None, ge=1, description="Must equal the model's dimension if given.")
    user: str | None = Field(None, max_length=256, description="Accepted and ignored.")

    @field_validator("input", mode="before")
    @classmethod
    def _no_token_ids(cls, value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(v, (int, list)) for v in value):
            raise ValueError("token-id input is not supported; send text")
        return value


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
