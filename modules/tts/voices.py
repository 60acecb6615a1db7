"""Voice specifications: ``af_bella``, ``af_bella+af_sky`` (equal), ``af_bella(2)+af_sky(1)`` (weighted),
and the two-voice form ``voice`` + ``voice2`` + ``mix``. A mix is the weighted mean of the style packs."""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

_PART = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\(\s*([0-9]*\.?[0-9]+)\s*\))?\s*$")
MAX_PARTS = 8


class VoiceError(ValueError):
    """A voice specification that cannot be used; the message says why and lists valid voices."""


def parse(spec: str, known: list[str], aliases: dict[str, str] | None = None,
          field: str = "voice") -> list[tuple[str, float]]:
    """``spec`` as ``[(voice, weight)]`` with weights summing to 1. Aliases expand to their own specs."""
    aliases = aliases or {}
    if not isinstance(spec, str) or not spec.strip():
        raise VoiceError(f"{field}: empty voice; valid voices: {', '.join(known)}")
    if spec.strip() in aliases and spec.strip() not in known:
        return parse(aliases[spec.strip()], known, None, field)
    parts = spec.split("+")
    if len(parts) > MAX_PARTS:
        raise VoiceError(f"{field}: at most {MAX_PARTS} voices can be mixed")
    weighted: dict[str, float] = {}
    for part in parts:
        m = _PART.fullmatch(part)
        if not m:
            raise VoiceError(f"{field}: '{part.strip()}' is not 'name' or 'name(weight)' "
                             f"(mixes look like 'a(2)+b(1)')")
        name, weight = m.group(1), float(m.group(2)) if m.group(2) is not None else 1.0
        if name not in known:
            if name in aliases and "+" not in aliases[name]:
                name = aliases[name].strip()
            if name not in known:
                raise VoiceError(f"{field}: unknown voice '{name}'; valid voices: {', '.join(known)}")
        if not (weight > 0 and np.isfinite(weight)):
            raise VoiceError(f"{field}: weight of '{name}' must be a positive number")
        weighted[name] = weighted.get(name, 0.0) + weight
    total = sum(weighted.values())
    return [(n, w / total) for n, w in weighted.items()]


def combine(voice: str, known: list[str], aliases: dict[str, str] | None = None, voice2: str | None = None,
            mix: float | None = None) -> list[tuple[str, float]]:
    """The weights of ``voice`` alone, or of ``voice`` and ``voice2`` balanced by ``mix`` (0 = voice, 1 = voice2)."""
    first = parse(voice, known, aliases, "voice")
    if voice2 is None or voice2 == "":
        if mix is not None:
            raise VoiceError("mix: needs voice2 (mix balances voice against voice2)")
        return first
    balance = 0.5 if mix is None else float(mix)
    if not 0.0 <= balance <= 1.0:
        raise VoiceError("mix: must lie between 0 (only voice) and 1 (only voice2)")
    second = parse(voice2, known, aliases, "voice2")
    weights: dict[str, float] = {}
    for parts, share in ((first, 1.0 - balance), (second, balance)):
        for name, w in parts:
            weights[name] = weights.get(name, 0.0) + w * share
    return [(n, w) for n, w in weights.items() if w > 0]


def canonical(weights: list[tuple[str, float]]) -> str:
    """A stable name for a mix (sorted, so 'a+b' and 'b+a' are the same voice)."""
    if len(weights) == 1:
        return weights[0][0]
    return "+".join(f"{n}({w:.6g})" for n, w in sorted(weights))


def blend(weights: list[tuple[str, float]], pack: Callable[[str], np.ndarray]) -> np.ndarray:
    """The weighted mean of the style packs, summed in a fixed order so equal mixes are bit-identical."""
    out: np.ndarray | None = None
    for name, w in sorted(weights):
        part = np.asarray(pack(name), dtype=np.float64) * w
        out = part if out is None else out + part
    assert out is not None
    return out.astype(np.float32)
