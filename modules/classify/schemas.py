"""Request and response models of the classify routes (they also document /openapi.json)."""
from __future__ import annotations

from pydantic import BaseModel, Field

from greenroom_modules.textinput import TextOrTexts


class ClassifyRequest(BaseModel):
    text: TextOrTexts = Field(description="A text, or a list of texts for one ranking per text.")


class LabelScore(BaseModel):
    label: str
    score: float


class ClassifyReply(BaseModel):
    """Every label with its score, highest first (SillyTavern reads ``classification[0].label``);
    for a list input, one such ranking per text, in input order."""

    classification: list[LabelScore] | list[list[LabelScore]]


class LabelsReply(BaseModel):
    """The labels the classifier can give, plus 'talkinghead' while that module is loaded."""

    labels: list[str]
