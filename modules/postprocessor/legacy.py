# SPDX-License-Identifier: BSD-2-Clause
"""Filter chains from the SillyTavern-Extras era, translated to this postprocessor's filters.

Old character folders carry an ``_animator.json`` whose chain names Extras' filters (``alphanoise``,
``translucency``, ``shift_distort``...) and parameters (``luma_threshold``...). :func:`translate_chain`
renames what has an equivalent here and drops what has none, and says so for each entry, so such a
file still loads instead of failing the whole settings call. Values are then validated as usual.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .registry import FILTERS, IGNORED_KEYS, _ensure_loaded


@dataclass(frozen=True)
class OldFilter:
    """An Extras filter: its name here, its parameters' names here (``None``: no equivalent, dropped),
    value factors where the units changed, and parameters the old filter implied."""

    name: str
    params: dict[str, str | None] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    implied: dict[str, Any] = field(default_factory=dict)


_NOISE = {"magnitude": "strength", "sigma": "sigma"}
_GLITCH = {p: p for p in ("unboost", "max_glitches", "min_glitch_height", "max_glitch_height", "hold_min", "hold_max")}

OLD_FILTERS: dict[str, OldFilter] = {
    "bloom": OldFilter("bloom", {"luma_threshold": "threshold", "hdr_exposure": "exposure"}),
    "chromatic_aberration": OldFilter("chromatic_aberration", {"transverse_sigma": "sigma", "axial_scale": "scale"}),
    "translucency": OldFilter("translucent_display", {"alpha": "alpha"}),
    "alphanoise": OldFilter("noise", _NOISE, implied={"channel": "A"}),
    "lumanoise": OldFilter("noise", _NOISE, implied={"channel": "Y"}),
    "analog_lowres": OldFilter("analog_lowres", {"kernel_size": None}),
    "analog_badhsync": OldFilter("analog_rippling_hsync", {p: p for p in (
        "speed", "amplitude1", "density1", "amplitude2", "density2", "amplitude3", "density3")}),
    # Extras' ripple was a fraction of the strength; here it is an absolute swing: not carried over.
    "analog_distort": OldFilter("analog_runaway_hsync", {"speed": "speed", "strength": "strength", "edge": "placement",
                                                         "ripple_amplitude": None, "ripple_density1": None,
                                                         "ripple_density2": None, "ripple_density3": None}),
    # Extras measured the shift in units where the width is 2.0; here the width is 1.
    "shift_distort": OldFilter("digital_glitches", {"strength": "strength", **_GLITCH}, scale={"strength": 0.5}),
}
"""Extras' filters (``talkinghead/tha3/app/postprocessor.py``) whose name or parameters differ from ours."""


def translate_chain(spec: Any) -> tuple[Any, list[str]]:
    """``spec`` with old filter and parameter names translated and unknown ones dropped, plus one note each.

    Anything that is not a list of ``[name, {params}]`` entries is returned as it is, for
    :func:`validate_chain` to reject with its usual message.
    """
    if not isinstance(spec, list):
        return spec, []
    _ensure_loaded()
    chain: list[Any] = []
    notes: list[str] = []
    for index, entry in enumerate(spec):
        translated = _translate_entry(f"postprocessor_chain[{index}]", entry, notes)
        if translated is not None:
            chain.append(translated)
    return chain, notes


def _translate_entry(where: str, entry: Any, notes: list[str]) -> Any:
    """The entry in today's names, ``None`` to drop it; unusual shapes pass through to validation."""
    if isinstance(entry, str):
        entry = [entry]
    if not (isinstance(entry, (list, tuple)) and len(entry) in (1, 2) and isinstance(entry[0], str)):
        return entry
    name = entry[0]
    params = entry[1] if len(entry) == 2 and entry[1] is not None else {}
    if not isinstance(params, dict):
        return entry
    old = OLD_FILTERS.get(name)
    if old is None and name not in FILTERS:
        notes.append(f"{where}: unknown filter '{name:.80}' dropped")
        return None
    if old is not None and old.name != name:
        notes.append(f"{where}: old filter '{name}' translated to '{old.name}'")
    target = FILTERS[old.name if old else name]
    declared = {p.name for p in target.params}
    renamed = old.params if old else {}
    renames_all = old is not None and old.name != name  # an old-only name: every parameter is an old one
    out = dict(old.implied) if old else {}
    for key, value in params.items():
        if key in IGNORED_KEYS:
            continue
        new = renamed.get(key) if (renames_all or key not in declared) else key
        if new is None and key in renamed:
            notes.append(f"{where} '{name}': old parameter '{key}' has no equivalent, dropped")
        elif new is None or new not in declared:
            notes.append(f"{where} '{name}': unknown parameter '{key!s:.80}' dropped")
        else:
            if new != key:
                notes.append(f"{where} '{name}': old parameter '{key}' translated to '{new}'")
            factor = old.scale.get(key) if old else None
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            out[new] = value * factor if factor is not None and numeric else value
    return [target.name, out]
