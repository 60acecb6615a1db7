# SPDX-License-Identifier: BSD-2-Clause
"""The :class:`Postprocessor`: runs a validated chain of filters over frames in place."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from .context import Context, Workspace, stable_seed
from .registry import FILTERS, FilterDef, validate_chain

DEFAULT_CHAIN: tuple[tuple[str, dict[str, Any]], ...] = (
    ("bloom", {}),
    ("chromatic_aberration", {}),
    ("vignetting", {"strength": 0.25}),
    ("scanlines", {}),
)
"""A light CRT look: a soft glow on highlights (tone-mapped, so a light face keeps its eyes and mouth;
tests/test_look.py guards it), faint colour fringes, slightly darker corners,
alternating scanlines. The vignetting is lighter than its own default, which shows the effect clearly."""


@dataclass
class _Slot:
    """One chain entry at run time: its filter, params and private state."""

    fdef: FilterDef
    params: dict[str, Any]
    key: tuple[int, str]
    seed: int
    state: dict[str, Any] = field(default_factory=dict)


class Postprocessor:
    """Applies a chain ``[[filter_name, {params}], ...]`` to float32 HxWx4 frames in linear light.

    One instance per stream: its buffers and the state of dynamic filters (held
    glitches) belong to that stream. :meth:`set_chain` may be called from another
    thread while frames are being processed; the next frame uses the new chain.
    """

    def __init__(self, chain_spec: Iterable = ()) -> None:
        self._lock = threading.Lock()
        self._workspace = Workspace()
        self._slots: list[_Slot] = []
        self.chain: list[tuple[str, dict[str, Any]]] = []
        self.set_chain(chain_spec)

    def set_chain(self, spec: Iterable) -> None:
        """Validate and install a chain (raises :class:`ChainError`; the old chain stays on error).

        Entries that keep their position and filter keep their state, so tweaking a
        parameter live does not restart a glitch in progress.
        """
        chain = validate_chain(spec)
        old = {s.key: s for s in self._slots}
        slots = []
        for i, (name, params) in enumerate(chain):
            key = (i, name)
            prev = old.get(key)
            slots.append(_Slot(FILTERS[name], params, key, stable_seed(i, name),
                               prev.state if prev is not None else {}))
        self._slots = slots
        self.chain = chain

    def apply(self, frame: np.ndarray, t: float | None = None) -> np.ndarray:
        """Run the chain over ``frame`` (float32 HxWx4, modified in place) and return it.

        ``t`` is wall-clock seconds (default ``time.monotonic()``); dynamic effects
        depend on it, never on how many frames were rendered. Internally the filters
        work on planes (see :meth:`apply_planar`); the conversion buffer is reused.
        """
        if frame.ndim != 3 or frame.shape[2] != 4 or frame.dtype != np.float32:
            raise ValueError(f"frame must be float32 HxWx4, not {frame.dtype} {frame.shape}")
        slots = self._slots
        if not slots:
            return frame
        h, w = frame.shape[:2]
        with self._lock:
            planes = self._workspace.buffer("frame-planes", (4, h, w))
            for c in range(4):
                np.copyto(planes[c], frame[..., c])
            self._run(slots, planes, t)
            for c in range(4):
                np.copyto(frame[..., c], planes[c])
        return frame

    def apply_planar(self, planes: np.ndarray, t: float | None = None) -> np.ndarray:
        """Run the chain over float32 4xHxW planes (R, G, B, A; e.g. a torch CHW frame's numpy view).

        Skips the layout conversion that :meth:`apply` does; ``planes`` must be C-contiguous.
        """
        if planes.ndim != 3 or planes.shape[0] != 4 or planes.dtype != np.float32:
            raise ValueError(f"planes must be float32 4xHxW, not {planes.dtype} {planes.shape}")
        if not planes.flags.c_contiguous:
            raise ValueError("planes must be C-contiguous")
        slots = self._slots
        if slots:
            with self._lock:
                self._run(slots, planes, t)
        return planes

    def _run(self, slots: list[_Slot], planes: np.ndarray, t: float | None) -> None:
        t = time.monotonic() if t is None else float(t)
        self._workspace.fit(planes.shape)
        for slot in slots:
            ctx = Context(self._workspace, slot.key, slot.seed, slot.state, t)
            slot.fdef.fn(planes, ctx, **slot.params)
