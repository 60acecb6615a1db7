"""Per-instance animation: from emotion, overrides and idle drivers to one target pose per tick.

Pure logic with no threads and no torch, so it is cheap to test: ``tick(now)``
takes wall-clock seconds and returns the 45-morph pose to render. Every driver
is defined per second (not per frame), so a slow renderer slows the frame rate,
never the animation.
"""
from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from . import pose as P
from .lipsync import LipSync
from .settings import AnimatorSettings

REFERENCE_FPS = 25.0  # the per-frame settings (interpolator step, blink chance) are defined at 25 FPS
BLINK_CLOSE, BLINK_HOLD, BLINK_OPEN = 0.06, 0.04, 0.14  # seconds: the wall-clock shape of one blink
HINTS = ("look_at_camera", "look_left", "look_right", "stand_straight", "new_sway")


def per_second(step_at_25fps: float, dt: float) -> float:
    """The fraction of the remaining distance covered in ``dt`` seconds for a per-frame step at 25 FPS."""
    if step_at_25fps >= 1.0:
        return 1.0
    return 1.0 - (1.0 - step_at_25fps) ** (dt * REFERENCE_FPS)


class Talking:
    """Everything about the mouth while talking, in one place.

    Today: the no-audio animation (random mouth shapes at ``talking_fps``). Lip-sync
    will schedule mouth morphs here; the animator only asks :meth:`apply`.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.active = False
        self.lipsync = LipSync()  # speech scheduled by /api/talkinghead/speak; wins while it plays
        self._value = 0.0
        self._next_change = 0.0

    def start(self) -> None:
        self.active = True
        self._next_change = 0.0

    def stop(self) -> None:
        self.active = False

    def apply(self, pose: np.ndarray, now: float, settings: AnimatorSettings) -> None:
        """Overwrite the mouth-open morphs of ``pose`` while talking (held between changes)."""
        if self.lipsync.apply(pose, now):
            return
        if not self.active:
            return
        if now >= self._next_change:
            # Alternate between a clearly open and a nearly closed mouth, with some randomness.
            opening = self._value < 0.4
            self._value = self.rng.uniform(0.45, 1.0) if opening else self.rng.uniform(0.0, 0.2)
            self._next_change = now + 1.0 / settings.talking_fps
        pose[P.MOUTH_OPEN] = 0.0
        pose[P.INDEX[settings.talking_morph]] = self._value


@dataclass
class Hint:
    """A temporary high-level pose request that replaces the idle sway target."""

    name: str
    until: float
    rotation: dict[str, float]
    iris: dict[str, float]


class Animator:
    """State and drivers of one avatar. Thread-safe: API calls and the render tick share a lock."""

    def __init__(self, settings: AnimatorSettings, templates: dict[str, np.ndarray],
                 rng: random.Random | None = None) -> None:
        self.lock = threading.Lock()
        self.rng = rng or random.Random()
        self.settings = settings
        self.templates = templates
        self.emotion = P.NEUTRAL
        self.overrides: dict[str, float] = {}
        self.talking = Talking(self.rng)
        self.current: np.ndarray | None = None
        self.sway_quantum: float | None = None  # low_compute mode snaps sway targets to cached poses
        self.sway_gate: Callable[[np.ndarray, bool], bool] | None = None  # "is this target pose ready?"
        self.sway_known: Callable[[np.ndarray], bool] | None = None  # "is this rotation cached?" (no side effects)
        self._last_tick: float | None = None
        self._emotion_changed_at = -1e9
        self._sway_target = np.zeros(5, dtype=np.float32)
        self._next_sway = 0.0
        self._pending_sway: np.ndarray | None = None
        self._micro = np.zeros(5, dtype=np.float32)
        self._next_micro = 0.0
        self._blink_started = -1e9
        self._blink_blocked_until = 0.0
        self._hint: Hint | None = None
        self.last_target: np.ndarray | None = None
        self._sway_to_base = False
        self._pending_urgent = False  # the pending sway target is an emotion's own pose: render it first

    # -- API-facing state changes ----------------------------------------------------------------

    def set_emotion(self, name: str) -> str:
        """Switch to ``name``; unknown names fall back to neutral (SillyTavern expects 200)."""
        chosen = name if name in self.templates else P.NEUTRAL
        with self.lock:
            if chosen != self.emotion:
                self.emotion = chosen
                self._emotion_changed_at = self._last_tick or 0.0
                # Go to the emotion's own pose first (precomputed in low_compute mode), then sway around it.
                self._next_sway, self._pending_sway, self._sway_to_base = 0.0, None, True
        return chosen

    def set_templates(self, templates: dict[str, np.ndarray]) -> None:
        with self.lock:
            self.templates = templates
            if self.emotion not in templates:
                self.emotion = P.NEUTRAL

    def set_settings(self, settings: AnimatorSettings) -> None:
        with self.lock:
            self.settings = settings

    def set_overrides(self, overrides: Mapping[str, float]) -> None:
        with self.lock:
            self.overrides = dict(overrides)

    def modify_overrides(self, action: str, overrides: Mapping[str, float]) -> None:
        with self.lock:
            merged = dict(self.overrides)
            if action == "unset":
                for key in overrides:
                    merged.pop(key, None)
            else:
                merged.update(overrides)
            self.overrides = merged

    def start_talking(self) -> None:
        with self.lock:
            self.talking.start()

    def stop_talking(self) -> None:
        with self.lock:
            self.talking.stop()

    def hint(self, name: str, duration: float, now: float) -> None:
        """High-level pose requests: look at the camera / left / right, stand straight, new sway."""
        with self.lock:
            if name == "new_sway":
                self._hint, self._next_sway, self._pending_sway = None, 0.0, None
                return
            strength = max(self.settings.sway_macro_strength, 0.3)
            rotation = {m: 0.0 for m in P.ROTATION_MORPHS}
            iris = {"iris_rotation_x_index": 0.0, "iris_rotation_y_index": 0.0}
            if name == "look_left":
                rotation["head_y_index"], iris["iris_rotation_y_index"] = strength, 0.6
            elif name == "look_right":
                rotation["head_y_index"], iris["iris_rotation_y_index"] = -strength, -0.6
            elif name == "stand_straight":
                iris = {}
            self._hint = Hint(name, now + duration, rotation, iris)

    def snapshot(self) -> dict:
        with self.lock:
            return {"emotion": self.emotion, "talking": self.talking.active, "overrides": dict(self.overrides),
                    "hint": self._hint.name if self._hint else None}

    # -- the tick --------------------------------------------------------------------------------

    def tick(self, now: float) -> np.ndarray:
        """The pose for wall-clock time ``now`` (seconds, monotonic)."""
        with self.lock:
            s = self.settings
            dt = 0.0 if self._last_tick is None else min(max(now - self._last_tick, 0.0), 0.25)
            self._last_tick = now
            target = self._target(now, s)
            self.last_target = target
            if self.current is None:
                self.current = target.copy()
            else:
                self.current += (target - self.current) * per_second(s.pose_interpolator_step, dt)
            out = self.current.copy()
            self.talking.apply(out, now, s)
            self._blink(out, now, dt, s)
            out[P.BREATHING] = math.sin(math.pi * (now % s.breathing_cycle_duration) / s.breathing_cycle_duration) ** 2
            return np.clip(out, P.LOW, P.HIGH)

    def _target(self, now: float, s: AnimatorSettings) -> np.ndarray:
        target = self.templates.get(self.emotion, self.templates[P.NEUTRAL]).copy()
        self._sway(target, now, s)
        for name, value in self.overrides.items():
            target[P.INDEX[name]] = value
        return target

    def _sway(self, target: np.ndarray, now: float, s: AnimatorSettings) -> None:
        base = target[P.ROTATION].copy()
        if self._hint is not None and now < self._hint.until:
            for name, value in {**self._hint.rotation, **self._hint.iris}.items():
                target[P.INDEX[name]] = value
            return
        self._hint = None
        if now >= self._next_sway and self._pending_sway is None:  # a proposal waits until it is ready
            self._propose_sway(base, now, s)
        if self._pending_sway is not None:
            candidate = target.copy()
            candidate[P.ROTATION] = self._pending_sway
            if self.sway_gate is None or self.sway_gate(candidate, self._pending_urgent):
                self._sway_target, self._pending_sway = self._pending_sway, None
        rotation = self._sway_target.copy()
        if self.sway_quantum is None and s.sway_micro_strength > 0:
            if now >= self._next_micro:
                self._micro = np.array([self.rng.uniform(-1, 1) for _ in range(5)], dtype=np.float32)
                self._next_micro = now + 1.0 / REFERENCE_FPS
            swaying = np.array([m in s.sway_morphs for m in P.ROTATION_MORPHS])
            rotation += self._micro * s.sway_micro_strength * swaying
        target[P.ROTATION] = np.clip(rotation, -1.0, 1.0)

    def _propose_sway(self, base: np.ndarray, now: float, s: AnimatorSettings) -> None:
        """A new random sway target around the emotion's own rotation, within +-macro strength."""
        strength = 0.0 if self._sway_to_base else s.sway_macro_strength
        self._pending_urgent, self._sway_to_base = self._sway_to_base, False
        # In low_compute mode a few candidates are drawn and one already rendered is preferred, so that
        # the sway reuses the cache more and more instead of keeping the background renderer busy.
        for _ in range(4 if self.sway_quantum and self.sway_gate is not None else 1):
            proposal = base.copy()
            for i, name in enumerate(P.ROTATION_MORPHS):
                if name in s.sway_morphs and strength > 0:
                    lo, hi = min(0.0, -strength - base[i]), max(0.0, strength - base[i])
                    proposal[i] = base[i] + self.rng.uniform(lo, hi)
            if self.sway_quantum and strength > 0:  # the emotion's own pose is cached as it is
                proposal = np.round(proposal / self.sway_quantum) * self.sway_quantum
            proposal = np.clip(proposal, -1.0, 1.0).astype(np.float32)
            if self.sway_known is not None and self.sway_known(proposal):
                break
        self._pending_sway = proposal
        lo, hi = sorted((s.sway_interval_min, s.sway_interval_max))
        self._next_sway = now + self.rng.uniform(lo, hi)

    def _blink(self, out: np.ndarray, now: float, dt: float, s: AnimatorSettings) -> None:
        confused = self.emotion == "confusion" and now - self._emotion_changed_at < s.blink_confusion_duration
        if now >= self._blink_blocked_until or confused:
            chance = 1.0 - (1.0 - s.blink_probability) ** (dt * REFERENCE_FPS)
            if dt > 0 and self.rng.random() < chance:
                self._blink_started = now - BLINK_CLOSE  # fully closed on this tick, however slow the next one
                lo, hi = sorted((s.blink_interval_min, s.blink_interval_max))
                self._blink_blocked_until = now + self.rng.uniform(lo, hi)
        closed = blink_amount(now - self._blink_started)
        if closed > 0:
            out[P.WINK] = np.maximum(out[P.WINK], closed)

    def force_blink(self, now: float) -> None:
        with self.lock:
            self._blink_started = now - BLINK_CLOSE


def blink_amount(t: float) -> float:
    """How closed the eyes are ``t`` seconds into a blink (0 outside it)."""
    if t < 0:
        return 0.0
    if t < BLINK_CLOSE:
        return t / BLINK_CLOSE
    if t < BLINK_CLOSE + BLINK_HOLD:
        return 1.0
    t -= BLINK_CLOSE + BLINK_HOLD
    return max(0.0, 1.0 - t / BLINK_OPEN)
