"""Request and reply models of the talkinghead routes (the SillyTavern calls and the instance API)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .animator import HINTS
from .request import ID_PATTERN, InstanceQuery, instance_id_field
from .settings import FORMATS

CHARACTER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class InstanceBody(BaseModel):
    """Only the optional instance id."""
    instance_id: str | None = instance_id_field()


class EmotionBody(BaseModel):
    """SillyTavern's set_emotion body."""
    emotion_name: str = Field(min_length=1, max_length=64, description="One of the emotion names; unknown names mean neutral.")
    instance_id: str | None = instance_id_field()


class FreeformBody(BaseModel):
    """A JSON object of names to values (``{}`` resets), plus an optional instance_id."""
    model_config = ConfigDict(extra="allow")
    instance_id: str | None = instance_id_field()


class OverridesBody(BaseModel):
    """Direct morph control: values stay until replaced (and are smoothed like emotions)."""
    overrides: dict[str, float] = Field(default_factory=dict, description="{morph: value}; see /api/talkinghead/morphs.")
    instance_id: str | None = instance_id_field()


class ModifyOverridesBody(OverridesBody):
    action: Literal["set", "unset"] = Field("set", description="'set' merges the given morphs; 'unset' removes them.")


class HintBody(BaseModel):
    """A high-level pose request that replaces the idle sway for a while."""
    hint: Literal[HINTS] = Field(description="look_at_camera, look_left, look_right, stand_straight or new_sway.")  # type: ignore[valid-type]
    duration: float = Field(5.0, ge=0.1, le=600, description="Seconds the hint holds before idle sway resumes.")
    instance_id: str | None = instance_id_field()


class FeedQuery(InstanceQuery):
    """The feed's query: which instance, and optionally its image format."""
    format: Literal[FORMATS] | None = Field(  # type: ignore[valid-type]
        None, description="Image format of this feed's parts (case-insensitive): webp is lossless, about half "
                          "PNG's encoding CPU and ~15 % smaller, and browsers show it in <img>; without it the "
                          "instance's 'format' setting (PNG by default, what SillyTavern gets).")

    @field_validator("format", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class LoadReply(BaseModel):
    """The instance the load acted on."""
    instance_id: str
    created: bool
    character: str
    mode: str
    size: list[int]


LOAD_FORM = {"multipart/form-data": {"schema": {
    "type": "object",
    "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "Character image: RGBA (transparent background); other sizes are fitted to 512x512."},
        "character": {"type": "string", "pattern": CHARACTER_PATTERN,
                      "description": "Instead of file: a character name from assets/characters/ (see /characters)."},
        "new": {"type": "string", "enum": ["true", "false"], "description": "true: create an instance under a new id."},
        "instance_id": {"type": "string", "pattern": ID_PATTERN,
                        "description": "Reload this instance, or create it under this id."},
    }}}}
FEED = {"description": "Endless multipart/x-mixed-replace stream; one image per part",
        "content": {"multipart/x-mixed-replace; boundary=frame": {"schema": {"type": "string", "format": "binary"}}}}
