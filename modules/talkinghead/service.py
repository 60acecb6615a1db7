"""The :class:`~.contract.Avatars` service: talkinghead's instances for other modules, without HTTP.

The same building blocks as the routes (the manager, image loading, template and settings parsing, the
feed of new frames), with errors raised as greenroom errors so the host answers them.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping

from greenroom.errors import BadRequest

from . import pose as P
from .contract import Frame
from .images import load_upload, within_limit
from . import encoding
from .instance import new_frames
from .request import loaded_manager, refuse_new_while_draining
from .settings import merge_settings

if TYPE_CHECKING:
    from .instance import Instance
    from .module import Talkinghead

RATE_WINDOW_SECONDS = 1.0
"""How often a feed's frames-per-second figures are recomputed."""


class AvatarService:
    """Implements :class:`~.contract.Avatars` on a loaded talkinghead module."""

    def __init__(self, module: "Talkinghead") -> None:
        self._module = module

    # -- instances -------------------------------------------------------------------------------

    def create(self, image: bytes, name: str = "upload", *, paused: bool = False) -> str:
        refuse_new_while_draining(self._module, True, None)
        character = self._character(image, name)
        inst, _ = loaded_manager(self._module).load(character, None, new=True)
        inst.set_paused(paused)
        return inst.id

    def reload(self, instance_id: str, image: bytes, name: str = "upload") -> None:
        self._instance(instance_id)  # 404 before the image is decoded
        loaded_manager(self._module).load(self._character(image, name), instance_id, new=False)

    def delete(self, instance_id: str) -> bool:
        return loaded_manager(self._module).delete(instance_id)

    # -- what an instance shows ------------------------------------------------------------------

    def load_templates(self, instance_id: str, templates: Mapping[str, Any]) -> None:
        inst = self._instance(instance_id)
        inst.set_templates({**self._module.default_templates(), **P.parse_templates(templates)})

    def load_settings(self, instance_id: str, settings: Mapping[str, Any]) -> list[str]:
        inst = self._instance(instance_id)
        merged, warnings = merge_settings(self._module.animator_defaults(), dict(settings))
        inst.apply_settings(merged)
        return warnings

    def set_paused(self, instance_id: str, paused: bool) -> None:
        self._instance(instance_id).set_paused(paused)

    def set_talking(self, instance_id: str, talking: bool) -> None:
        animator = self._instance(instance_id).animator
        if talking:
            animator.start_talking()
        else:
            animator.stop_talking()

    def emotions(self, instance_id: str) -> list[str]:
        return sorted(self._instance(instance_id).templates)

    def set_emotion(self, instance_id: str, emotion: str) -> None:
        inst = self._instance(instance_id)
        if emotion not in inst.templates:
            raise BadRequest(f"emotion_name: unknown emotion '{emotion[:64]}'", field="emotion_name",
                             valid_emotions=sorted(inst.templates))
        inst.animator.set_emotion(emotion)

    def set_overrides(self, instance_id: str, overrides: Mapping[str, float]) -> None:
        self._instance(instance_id).animator.set_overrides(P.check_morphs(overrides))

    def modify_overrides(self, instance_id: str, action: Literal["set", "unset"],
                         overrides: Mapping[str, float]) -> None:
        inst = self._instance(instance_id)
        if action == "unset":  # the values do not matter, only that the names are morphs
            overrides = {name: 0.0 for name in overrides}
        inst.animator.modify_overrides(action, P.check_morphs(overrides))

    # -- video -----------------------------------------------------------------------------------

    def feed(self, instance_id: str) -> Iterator[Frame]:
        inst = self._instance(instance_id)  # 404 now, not at the first frame
        return self._frames(inst)

    def _frames(self, inst: "Instance") -> Iterator[Frame]:
        rates = FeedRates(inst)
        for encoded in new_frames(inst, self._module.context.stopping):
            fmt = inst.settings.format
            yield Frame(encoded.data(fmt), encoding.MIMETYPES[fmt], encoded.width, encoded.height,
                        encoded.full_size, encoded.crop, rates.sent())

    # -- helpers ---------------------------------------------------------------------------------

    def _instance(self, instance_id: str) -> "Instance":
        return loaded_manager(self._module).get(instance_id)

    def _character(self, image: bytes, name: str) -> Any:
        s = self._module.settings
        rgba = load_upload(within_limit(image, s.max_upload_mb), s.max_image_pixels)
        return self._module.poser.character(rgba, name[:64])


class FeedRates:
    """One feed's view of its instance: the stage times, and frames per second over the last window."""

    def __init__(self, inst: "Instance") -> None:
        self.inst = inst
        self.sent_count = 0
        self._mark = self._counts()
        self._fps: dict[str, float | None] = {"render_fps": None, "encode_fps": None, "send_fps": None}

    def _counts(self) -> tuple[float, int, int, int]:
        return time.monotonic(), self.inst.frames_rendered, self.inst.frames_encoded, self.sent_count

    def sent(self) -> dict[str, float | None]:
        """Count one frame sent; the figures to send with it."""
        self.sent_count += 1
        now = self._counts()
        elapsed = now[0] - self._mark[0]
        if elapsed >= RATE_WINDOW_SECONDS:
            rendered, encoded, sent = (round((b - a) / elapsed, 2) for a, b in zip(self._mark[1:], now[1:]))
            self._fps = {"render_fps": rendered, "encode_fps": encoded, "send_fps": sent}
            self._mark = now
        stages = {f"{name}_ms": timer.ms() for name, timer in self.inst.timers.items()}
        return {**stages, **self._fps, "target_fps": float(self.inst.settings.target_fps)}
