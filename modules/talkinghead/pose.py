"""The THA3 pose vector (45 morphs), its groups, and emotion templates.

Every other part of the module speaks in 45-float numpy vectors in THA3's
order; names only appear at the API boundary and in the template files.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from greenroom.errors import BadRequest

log = logging.getLogger("greenroom.talkinghead")


def _pairs(*stems: str) -> list[str]:
    return [f"{stem}_{side}_index" for stem in stems for side in ("left", "right")]


MORPHS: tuple[str, ...] = tuple(
    _pairs("eyebrow_troubled", "eyebrow_angry", "eyebrow_lowered", "eyebrow_raised", "eyebrow_happy",
           "eyebrow_serious")
    + _pairs("eye_wink", "eye_happy_wink", "eye_surprised", "eye_relaxed", "eye_unimpressed",
             "eye_raised_lower_eyelid")
    + _pairs("iris_small")
    + ["mouth_aaa_index", "mouth_iii_index", "mouth_uuu_index", "mouth_eee_index", "mouth_ooo_index",
       "mouth_delta"]
    + _pairs("mouth_lowered_corner", "mouth_raised_corner")
    + ["mouth_smirk", "iris_rotation_x_index", "iris_rotation_y_index",
       "head_x_index", "head_y_index", "neck_z_index", "body_y_index", "body_z_index", "breathing_index"])
assert len(MORPHS) == 45
INDEX: dict[str, int] = {name: i for i, name in enumerate(MORPHS)}

# Groups as THA3's networks consume them: eyebrows (combiner), face (face morpher),
# rotation + breathing (body rotator and editor).
EYEBROW = slice(0, 12)
FACE = slice(12, 39)
BODY = slice(39, 45)
ROTATION_MORPHS = ("head_x_index", "head_y_index", "neck_z_index", "body_y_index", "body_z_index")
ROTATION = [INDEX[m] for m in ROTATION_MORPHS]
BREATHING = INDEX["breathing_index"]
SIGNED = {"iris_rotation_x_index", "iris_rotation_y_index", *ROTATION_MORPHS}
LOW = np.array([-1.0 if m in SIGNED else 0.0 for m in MORPHS], dtype=np.float32)
HIGH = np.ones(45, dtype=np.float32)

# The parts the animator drives frame by frame (blinks, talking); the cached
# renderer treats them as separate layers over the expression.
WINK = [INDEX["eye_wink_left_index"], INDEX["eye_wink_right_index"]]
MOUTH_OPEN_MORPHS = ("mouth_aaa_index", "mouth_iii_index", "mouth_uuu_index", "mouth_eee_index",
                     "mouth_ooo_index", "mouth_delta")
MOUTH_OPEN = [INDEX[m] for m in MOUTH_OPEN_MORPHS]
EXPRESSION = [i for i in range(39) if i not in WINK and i not in MOUTH_OPEN]

EMOTIONS: tuple[str, ...] = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity",
    "desire", "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear",
    "gratitude", "grief", "joy", "love", "nervousness", "neutral", "optimism", "pride", "realization",
    "relief", "remorse", "sadness", "surprise")
NEUTRAL = "neutral"


class PoseError(BadRequest, ValueError):
    """A bad morph name or value: 400, ``field`` names it."""

    def __init__(self, message: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(message, field=field, **extra)
        self.field = field


def check_morphs(values: Mapping[str, Any], where: str = "overrides") -> dict[str, float]:
    """Validate ``{morph: value}``: names known, values numbers within the morph's range."""
    out: dict[str, float] = {}
    for name, value in values.items():
        if name not in INDEX:
            raise PoseError(f"{where}: unknown morph '{name}'", field=name, valid_morphs=list(MORPHS))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise PoseError(f"{where}.{name}: expected a number, got {value!r}", field=name)
        lo, hi = float(LOW[INDEX[name]]), float(HIGH[INDEX[name]])
        if not lo <= value <= hi:
            raise PoseError(f"{where}.{name}: {value} is outside [{lo}, {hi}]", field=name)
        out[name] = float(value)
    return out


def to_vector(values: Mapping[str, float]) -> np.ndarray:
    """A full pose from a partial dict; omitted morphs are 0."""
    vec = np.zeros(45, dtype=np.float32)
    for name, value in values.items():
        vec[INDEX[name]] = value
    return vec


def to_dict(vec: np.ndarray, nonzero: bool = False) -> dict[str, float]:
    return {name: round(float(v), 4) for name, v in zip(MORPHS, vec) if not nonzero or abs(v) > 1e-6}


def template_morphs(entry: Any, name: str) -> Mapping[str, Any]:
    """One template in either accepted shape: ``{morph: v}`` or ``{"pose": {morph: v}, "cels": {...}}``."""
    if not isinstance(entry, dict):
        raise PoseError(f"emotion '{name}': expected an object of morph values", field=name)
    if "pose" in entry and isinstance(entry["pose"], dict):
        return entry["pose"]  # cels (Raven's layered sprites) are not supported; ignored
    return entry


_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f\x7f]|^\.+$")


def parse_templates(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``{emotion: template}`` -> ``{emotion: pose vector}``, validating every morph."""
    out: dict[str, np.ndarray] = {}
    for name, entry in data.items():
        if not isinstance(name, str) or not name or len(name) > 64:
            raise PoseError(f"emotion name {name!r}: 1-64 characters expected", field=str(name)[:64])
        if _UNSAFE_NAME.search(name):  # names once were file names (EX): nothing path-like gets in
            raise PoseError(f"emotion name {name!r}: no '/', '\\', control characters or dots-only names",
                            field=name)
        morphs = check_morphs(template_morphs(entry, name), where=f"emotion '{name}'")
        out[name] = to_vector(morphs)
    return out


def load_template_dir(folder: Path) -> dict[str, np.ndarray]:
    """The shipped templates: one ``<emotion>.json`` per emotion, ``{morph: value}``."""
    templates: dict[str, np.ndarray] = {}
    for file in sorted(folder.glob("*.json")):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            templates.update(parse_templates({file.stem: data}))
        except (OSError, ValueError) as exc:
            log.error("emotion template %s is unusable: %s", file, exc)
    templates.setdefault(NEUTRAL, np.zeros(45, dtype=np.float32))
    missing = [e for e in EMOTIONS if e not in templates]
    if missing:
        log.warning("no emotion template for %s; they fall back to neutral", ", ".join(missing))
    return templates


def morph_table() -> list[dict[str, Any]]:
    """Morph names with ranges and groups, for GUIs."""
    def group(i: int) -> str:
        if i < 12:
            return "eyebrow"
        if i < 39:
            return "face"
        return "breathing" if i == BREATHING else "rotation"
    return [{"name": m, "min": float(LOW[i]), "max": float(HIGH[i]), "group": group(i)}
            for i, m in enumerate(MORPHS)]
