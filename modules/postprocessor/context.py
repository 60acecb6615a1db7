# SPDX-License-Identifier: BSD-2-Clause
"""Per-frame context handed to filters: time, randomness, reusable buffers and caches.

Buffers and caches live as long as the frame size does, so a running stream
allocates no full-frame temporaries after its first frame; a size change
drops them all.
"""
from __future__ import annotations

import zlib
from typing import Any, Callable, Hashable

import numpy as np

CALIBRATION_FPS = 25.0
"""Dynamic effects are specified per frame at this rate and driven by wall-clock time."""


class Workspace:
    """Scratch buffers and derived-data caches for one frame size."""

    def __init__(self) -> None:
        self.shape: tuple[int, ...] | None = None
        self._buffers: dict[Hashable, np.ndarray] = {}
        self._cache: dict[Hashable, Any] = {}

    def fit(self, shape: tuple[int, ...]) -> None:
        """Forget everything sized for another frame shape (planar: 4 x H x W)."""
        if shape != self.shape:
            self.shape = shape
            keep = self._buffers.get("frame-planes")
            self._buffers.clear()
            self._cache.clear()
            if keep is not None and keep.shape == shape:
                self._buffers["frame-planes"] = keep

    def buffer(self, key: Hashable, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
        """An uninitialised array reused across frames (contents are whatever the last user left)."""
        buf = self._buffers.get(key)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = np.empty(shape, dtype)
            self._buffers[key] = buf
        return buf

    def cached(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """``make()`` once per key and frame size; for maps that depend only on size and params."""
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = make()
            return value


class Context:
    """What one chain entry sees while it processes one frame.

    ``t`` is wall-clock seconds; ``frame_no`` is ``t`` in frames at 25 fps (a float),
    ``tick`` its integer part. Randomness is a function of the entry's seed and the
    tick, so a pattern holds for a whole 1/25 s however often frames are rendered.
    """

    def __init__(self, workspace: Workspace, slot_key: Hashable, seed: int, state: dict[str, Any],
                 t: float) -> None:
        self.workspace = workspace
        self.slot_key = slot_key
        self.seed = seed
        self.state = state
        self.t = t
        self.frame_no = t * CALIBRATION_FPS
        self.tick = int(np.floor(self.frame_no))

    def buffer(self, name: str, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
        """A scratch buffer private to this chain entry."""
        return self.workspace.buffer((self.slot_key, name), shape, dtype)

    def shared_buffer(self, name: str, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
        """A scratch buffer shared by all entries (valid only within one filter call)."""
        return self.workspace.buffer(("shared", name), shape, dtype)

    def scratch(self, n: int) -> list[np.ndarray]:
        """``n`` shared scratch planes of the frame's H x W (valid only within one filter call)."""
        h, w = self.workspace.shape[1:]
        return [self.workspace.buffer(("scratch", i), (h, w)) for i in range(n)]

    def cached(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """A cache shared by all entries; ``key`` must capture every input of ``make``."""
        return self.workspace.cached(key, make)

    def rng(self, tick: int | None = None, salt: int = 0) -> np.random.Generator:
        """A generator determined by this entry's seed and ``tick`` (default: the current one)."""
        return np.random.default_rng([self.seed & 0xFFFFFFFF, (self.tick if tick is None else tick) & 0xFFFFFFFF,
                                      salt])


def stable_seed(*parts: Any) -> int:
    """A seed that is the same in every process (``hash()`` of a str is not)."""
    return zlib.crc32(repr(parts).encode())
