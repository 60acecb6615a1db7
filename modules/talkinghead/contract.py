"""The avatar service of the talkinghead module, as other modules see it. Import this file, never the
talkinghead internals.

Usage from another module (the raven module serves Raven's ``/api/avatar/*`` with exactly this)::

    from greenroom_modules.talkinghead.contract import Avatars

    avatars = self.context.service(Avatars)        # None while talkinghead is not loaded
    instance_id = avatars.create(png_bytes, "alice.png")
    avatars.set_emotion(instance_id, "joy")
    for frame in avatars.feed(instance_id):        # each new frame once; ends on delete
        frame.data, frame.media_type, frame.full_size, frame.crop

Every method that names an instance raises a :class:`greenroom.errors.Error` with status 404 (``instance_id``
in the body) for an unknown id; bad input raises :class:`greenroom.errors.BadRequest` naming the field. The host
answers both, so callers catch nothing. ``MORPHS`` are the 45 THA3 morph names that templates and
overrides use. This file imports neither Flask nor torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, Mapping, Protocol, runtime_checkable

from .pose import MORPHS

__all__ = ["Avatars", "Frame", "MORPHS"]


@dataclass(frozen=True)
class Frame:
    """One encoded video frame of an instance, as a feed sends it."""

    data: bytes
    media_type: str
    width: int
    height: int
    full_size: tuple[int, int]
    """(width, height) the frame would have without cropping (after upscaling)."""
    crop: tuple[float, float, float, float] | None
    """The kept region as (left, top, right, bottom) fractions of ``full_size``; None when not cropped."""
    stats: Mapping[str, float | None] = field(default_factory=dict)
    """The instance's recent pipeline figures: ``{stage}_ms`` (average time per frame) for the stages pose,
    postprocess, upscale, encode and frame (the whole output stage); ``render_fps``, ``encode_fps`` and
    ``send_fps`` (this feed) over the last seconds; ``target_fps``. None where nothing was measured yet."""


@runtime_checkable
class Avatars(Protocol):
    """Live avatar instances: create, drive and watch them. Offered by talkinghead while it is loaded."""

    def create(self, image: bytes, name: str = "upload", *, paused: bool = False) -> str:
        """A new instance (always a new id) showing the character in ``image`` (PNG or any RGBA image
        Pillow reads); its id. ``paused``: render nothing until :meth:`set_paused` resumes it. Errors: 400
        or 413 naming ``file``, 429 with too many instances, 503 while the server drains."""
        ...

    def reload(self, instance_id: str, image: bytes, name: str = "upload") -> None:
        """Show another character; id, emotion, settings and open feeds stay."""
        ...

    def delete(self, instance_id: str) -> bool:
        """End the instance (its feeds end too); False when there was none."""
        ...

    def load_templates(self, instance_id: str, templates: Mapping[str, Any]) -> None:
        """``{emotion: {morph: value}}`` (or ``{emotion: {"pose": {...}}}``) over the default templates;
        ``{}`` restores the defaults. Omitted morphs of a given emotion are 0."""
        ...

    def load_settings(self, instance_id: str, settings: Mapping[str, Any]) -> list[str]:
        """Animator settings over the server defaults (``{}`` restores them); the warnings about what
        was ignored (unknown keys, filters and parameters)."""
        ...

    def set_paused(self, instance_id: str, paused: bool) -> None:
        ...

    def set_talking(self, instance_id: str, talking: bool) -> None:
        """The generic talking animation (random mouth shapes) on or off."""
        ...

    def emotions(self, instance_id: str) -> list[str]:
        """The emotion names the instance knows."""
        ...

    def set_emotion(self, instance_id: str, emotion: str) -> None:
        """Show ``emotion``, one of :meth:`emotions` (400 naming ``emotion_name`` otherwise)."""
        ...

    def set_overrides(self, instance_id: str, overrides: Mapping[str, float]) -> None:
        """Replace every direct morph override (``{}`` clears them)."""
        ...

    def modify_overrides(self, instance_id: str, action: Literal["set", "unset"],
                         overrides: Mapping[str, float]) -> None:
        """``set``: merge these overrides; ``unset``: remove these morphs (values ignored, absent ones fine)."""
        ...

    def feed(self, instance_id: str) -> Iterator[Frame]:
        """Each new frame of the instance once, in its ``format`` setting, as soon as it is finished (the
        last one again once a second while none comes); a slow reader skips frames, never queues them.
        Ends when the instance is deleted or the server stops."""
        ...
