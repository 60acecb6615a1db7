"""Renderers turn a 45-morph pose into an RGBA frame (float32, linear RGB, straight alpha): HxWx4, or
4xHxW planes from a renderer whose ``planar`` is true (the layout the output thread works on).

* :class:`FullRenderer` runs THA3 on every frame: exact, ~1 s per frame on a 2-core CPU. Its poses
  go through the :class:`~.batcher.PoseBatcher`, which poses the frames of all full-mode
  instances together.
* :class:`CachedRenderer` (the low_compute mode) splits THA3 where its cost splits:
  the body rotator and editor (85 % of the cost) produce a warp field and a colour
  correction that hardly depend on the face, so they are rendered once per body pose
  in the background and cached; the face (eyebrows, eyes, mouth) is a 192x192 patch
  from the cheap face branch, cached per expression with separate blink and mouth
  layers. A frame is then a few blends and one grid sample (~10 ms), and motion
  between cached body poses interpolates the warp fields (a real in-between pose,
  not a cross-fade).
"""
from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np
import torch

from . import pose as P
from .batcher import PoseBatcher, new_client
from .cache import PoseCache, PoseWorker
from .poser import FACE_SIZE, FACE_X, FACE_Y, BodyFields, Character, SharedPoser, compose

ROT_STEP = 0.05      # body keys: rotation quantised to 0.05 (under a degree)
FACE_STEP = 0.05     # face keys: expression morphs quantised to 0.05
SWAY_STEP = 0.1      # the animator snaps sway targets to this grid in low_compute mode
WINK_LEVELS = (1.0,)
BOTH_EYES = 99  # the layer index of a two-eyed blink (both eye_wink morphs at once)
MOUTH_LEVELS = (0.5, 1.0)
# Priorities of background jobs (lower runs first).
# The exact current target and the idle layers (blink, talk, breathing) come before new sway poses.
NOW, TARGET, WARM, EMOTION_FACE, GATE, EMOTION_LAYERS, EMOTION_BODY = 0, 1, 2, 3, 4, 5, 6


class FullRenderer:
    """THA3 on every frame, posed in one batch with the other full-mode instances' frames.

    The batch thread only poses; converting the frame to float planes happens here, in the
    instance's own render thread, in parallel with the other instances and the next batch.
    """

    mode = "full"
    planar = True  # render() returns 4xHxW planes

    def __init__(self, poser: SharedPoser, character: Character, batcher: PoseBatcher) -> None:
        self.poser, self.character, self.batcher = poser, character, batcher
        self.client = new_client()

    def render(self, pose: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
        return to_planes(self.batcher.pose(self.client, self.character, pose).unsqueeze(0))

    def ready(self, pose: np.ndarray, urgent: bool = False) -> bool:
        return True

    def prefetch(self, pose: np.ndarray, priority: int = TARGET) -> None:
        pass

    def warm_up(self, templates: dict[str, np.ndarray], settings: Any, emotions: bool) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {}


def _quantise(values: np.ndarray, step: float) -> tuple[int, ...]:
    return tuple(int(v) for v in np.round(np.asarray(values, dtype=np.float64) / step))


def _nearest_pair(vectors: np.ndarray, point: np.ndarray) -> tuple[int, int, float, float]:
    """Nearest key ``i``, and the key ``j`` whose segment i->j passes closest to ``point``.

    Returns (i, j, t, distance): the point is approximated by ``lerp(key_i, key_j, t)``
    (``j == i`` and ``t == 0`` when no segment is closer than key i itself).
    """
    diff = vectors - point
    dist = np.sqrt((diff * diff).sum(axis=1))
    i = int(np.argmin(dist))
    best = (i, i, 0.0, float(dist[i]))
    if len(vectors) < 2 or dist[i] < 1e-6:
        return best
    seg = vectors - vectors[i]
    length2 = (seg * seg).sum(axis=1)
    length2[i] = np.inf
    t = np.clip(((point - vectors[i]) * seg).sum(axis=1) / length2, 0.0, 1.0)
    residual = np.sqrt((((vectors[i] + seg * t[:, None]) - point) ** 2).sum(axis=1))
    residual[i] = np.inf
    j = int(np.argmin(residual))
    if residual[j] < dist[i] - 1e-9 and t[j] > 0:
        return i, j, float(t[j]), float(residual[j])
    return best


def render_key(poser: SharedPoser, character: Character, cache: PoseCache, key: tuple) -> None:
    """Render one cache entry (a face patch or a body field) of ``character`` in the background."""
    digest = character.digest
    if cache.has(digest, key):
        return
    if key[0] == "face":
        pose = np.zeros(45, dtype=np.float32)
        pose[P.EXPRESSION] = np.array(key[1:-2], dtype=np.float32) * FACE_STEP
        if key[-2] == BOTH_EYES:
            pose[P.WINK] = key[-1] / 10.0
        elif key[-2] >= 0:
            pose[key[-2]] = key[-1] / 10.0
        patch = poser.face_patch(character, pose)[0].float().cpu()
        cache.put(digest, key, {"patch": patch})
    else:
        pose = np.zeros(45, dtype=np.float32)
        pose[P.ROTATION] = np.array(key[1:6], dtype=np.float32) * ROT_STEP
        pose[P.BREATHING] = float(key[6])
        # The body is posed with the character's own (unmorphed) face: faces are layered on later.
        rest_patch = character.image[:, :, FACE_Y:FACE_Y + FACE_SIZE, FACE_X:FACE_X + FACE_SIZE].clone()
        fields = poser.body_fields(character, pose, rest_patch)
        cache.put(digest, key, {"grid": fields.grid, "color": fields.color, "keep": fields.keep})


def to_planes(image: torch.Tensor) -> np.ndarray:
    """1x4xHxW in [-1, 1] -> 4xHxW float32 planes in [0, 1] (linear RGB, straight alpha), C-contiguous: what
    the postprocessor works on, without :func:`poser.to_frame`'s interleaving copy (~9 ms on one thread)."""
    return image[0].float().add(1.0).mul_(0.5).clamp_(0.0, 1.0).cpu().numpy()


class CachedRenderer:
    """Low-compute rendering from cached face patches and body fields (see the module docstring)."""

    mode = "low_compute"
    planar = True  # render() returns 4xHxW planes

    def __init__(self, poser: SharedPoser, character: Character, cache: PoseCache, worker: PoseWorker) -> None:
        self.poser, self.character, self.cache, self.worker = poser, character, cache, worker
        self.digest = character.digest
        self._source = cache.source(character)
        self.image = character.image.detach().float().cpu()
        self.base_grid = poser.base_grid(self.image.shape[-1])
        self._identity = BodyFields.identity(self.image.shape[-1])
        self._rest_patch = self.image[:, :, FACE_Y:FACE_Y + FACE_SIZE, FACE_X:FACE_X + FACE_SIZE].clone()
        self._body_index: dict[tuple, np.ndarray] = {}
        self._face_index: dict[tuple, np.ndarray] = {}
        self._variants: set[tuple] = set()
        self._extra: set[tuple] = set()  # body poses with breathing (the breathing delta)
        self._breath_delta: BodyFields | None = None
        self._version = -1
        self._refresh()
        self.timings: dict[str, float] = {}

    def _refresh(self) -> None:
        """Re-read the cache's key set when it changed (other renderers of this character fill it too)."""
        if self.cache.version(self.digest) == self._version:
            return
        version, keys = self.cache.keys(self.digest)
        body, face, variants, extra = {}, {}, set(), set()
        for key in keys:
            if key[0] == "body" and key[-1] == 1:
                extra.add(key)
            elif key[0] == "body":
                body[key] = np.array(key[1:6], dtype=np.float32) * ROT_STEP
            elif key[-2] == -1:
                face[key] = np.array(key[1:-2], dtype=np.float32) * FACE_STEP
            else:
                variants.add(key)
        self._body_index, self._face_index, self._variants, self._extra = body, face, variants, extra
        self._version = version

    # -- keys ------------------------------------------------------------------------------------

    @staticmethod
    def body_key(rotation: np.ndarray, breathing: int = 0) -> tuple:
        return ("body", *_quantise(rotation, ROT_STEP), breathing)

    @staticmethod
    def face_key(expression: np.ndarray, morph: int = -1, level: float = 0.0) -> tuple:
        return ("face", *_quantise(expression, FACE_STEP), morph, int(round(level * 10)))

    def _has(self, key: tuple) -> bool:
        return self.cache.has(self.digest, key)

    # -- background rendering --------------------------------------------------------------------

    def _submit(self, key: tuple, priority: int) -> None:
        if self._has(key):
            return
        # The job holds the image's shared Character and the key, nothing of this renderer: queued jobs
        # outlive deleted instances while another shows the same image (each renderer held ~20 MB).
        job = functools.partial(render_key, self.poser, self._source, self.cache, key)
        self.worker.submit((self.digest, *key), priority, job)

    def prefetch(self, pose: np.ndarray, priority: int = TARGET) -> None:
        """Queue what rendering ``pose`` exactly needs: its body key, face key and its blink/mouth layers."""
        expression = pose[P.EXPRESSION]
        self._submit(self.face_key(expression), priority)  # faces first: 0.1 s each against ~1 s for a body
        self._submit(self.body_key(pose[P.ROTATION]), priority)
        left, right = float(pose[P.WINK[0]]), float(pose[P.WINK[1]])
        if min(left, right) > 0.01:
            self._submit(self.face_key(expression, BOTH_EYES, 1.0), priority)
        for index, value in ((P.WINK[0], left - min(left, right)), (P.WINK[1], right - min(left, right))):
            if value > 0.01:
                self._submit(self.face_key(expression, index, 1.0), priority)
        for index in P.MOUTH_OPEN:
            if pose[index] > 0.01:
                for level in MOUTH_LEVELS:
                    self._submit(self.face_key(expression, index, level), priority)

    def prefetch_layers(self, pose: np.ndarray, talking_morph: str, priority: int) -> None:
        """The blink and talking layers of an expression, so idle animation needs no new renders."""
        expression = pose[P.EXPRESSION]
        self._submit(self.face_key(expression, BOTH_EYES, 1.0), priority)
        for level in MOUTH_LEVELS:
            self._submit(self.face_key(expression, P.INDEX[talking_morph], level), priority)

    def has_rotation(self, rotation: np.ndarray) -> bool:
        return self._has(self.body_key(rotation))

    def ready(self, pose: np.ndarray, urgent: bool = False) -> bool:
        """Whether the body pose is cached (the animator's sway waits for it); queues it if not."""
        key = self.body_key(pose[P.ROTATION])
        if self._has(key):
            return True
        self._submit(key, TARGET if urgent else GATE)
        return False

    def warm_up(self, templates: dict[str, np.ndarray], settings: Any, emotions: bool) -> None:
        """Queue the neutral pose, its layers and breathing first; then, optionally, every emotion."""
        neutral = templates.get(P.NEUTRAL, np.zeros(45, dtype=np.float32))
        self.prefetch(neutral, NOW)
        self.prefetch_layers(neutral, settings.talking_morph, WARM)
        self._submit(self.body_key(np.zeros(5)), WARM)
        self._submit(self.body_key(np.zeros(5), breathing=1), WARM)
        if emotions:
            for template in templates.values():
                self._submit(self.face_key(template[P.EXPRESSION]), EMOTION_FACE)
            for template in templates.values():
                self.prefetch_layers(template, settings.talking_morph, EMOTION_LAYERS)
            for template in templates.values():
                self._submit(self.body_key(template[P.ROTATION]), EMOTION_BODY)

    # -- per-frame rendering ---------------------------------------------------------------------

    def _fields(self, key: tuple) -> BodyFields | None:
        item = self.cache.get(self.digest, key)
        return None if item is None else BodyFields(item["grid"], item["color"], item["keep"])

    def _body(self, rotation: np.ndarray, breathing: float) -> BodyFields:
        if not self._body_index:
            return self._identity
        keys = list(self._body_index)
        i, j, t, _ = _nearest_pair(np.stack([self._body_index[k] for k in keys]), rotation)
        a = self._fields(keys[i])
        if a is None:
            return self._identity
        fields = a
        if j != i:
            b = self._fields(keys[j])
            if b is not None:
                fields = BodyFields(torch.lerp(a.grid, b.grid, t), torch.lerp(a.color, b.color, t),
                                    torch.lerp(a.keep, b.keep, t))
        return self._breathe(fields, breathing)

    def _breathe(self, fields: BodyFields, amount: float) -> BodyFields:
        """Breathing as a first-order delta measured once at the centre pose."""
        if amount < 1e-3:
            return fields
        delta = self._breath_delta
        if delta is None:
            rest, deep = self.body_key(np.zeros(5)), self.body_key(np.zeros(5), breathing=1)
            if rest not in self._body_index or deep not in self._extra:
                return fields
            a, b = self._fields(rest), self._fields(deep)
            if a is None or b is None:
                return fields
            delta = self._breath_delta = BodyFields(b.grid - a.grid, b.color - a.color, b.keep - a.keep)
        return BodyFields(torch.add(fields.grid, delta.grid, alpha=amount),
                          torch.add(fields.color, delta.color, alpha=amount),
                          torch.add(fields.keep, delta.keep, alpha=amount))

    def _patch(self, key: tuple) -> torch.Tensor | None:
        item = self.cache.get(self.digest, key)
        return None if item is None else item["patch"]

    def _face(self, pose: np.ndarray) -> torch.Tensor:
        expression = pose[P.EXPRESSION]
        if not self._face_index:
            return self._rest_patch[0]
        keys = list(self._face_index)
        i, j, t, _ = _nearest_pair(np.stack([self._face_index[k] for k in keys]), expression)
        base = self._patch(keys[i])
        if base is None:
            return self._rest_patch[0]
        patch = base
        if j != i:
            other = self._patch(keys[j])
            if other is not None:
                patch = torch.lerp(base, other, t)
        dominant = keys[j] if t > 0.5 else keys[i]
        rest = self._patch(dominant)
        if rest is None:
            return patch
        patch = patch.clone() if patch is base else patch
        left, right = float(pose[P.WINK[0]]), float(pose[P.WINK[1]])
        both = min(left, right)  # a blink closes both eyes: one layer, so the eyes never close one by one
        if both > 0.01:
            self._add_layer(patch, rest, dominant, BOTH_EYES, both)
        for index, value in ((P.WINK[0], left - both), (P.WINK[1], right - both)):
            if value > 0.01:
                self._add_layer(patch, rest, dominant, index, value)
        for index in P.MOUTH_OPEN:
            value = float(pose[index])
            if value > 0.01:
                self._add_layer(patch, rest, dominant, index, value)
        return patch

    def _add_layer(self, patch: torch.Tensor, rest: torch.Tensor, key: tuple, index: int, value: float) -> None:
        """Add ``value`` of a blink/mouth layer, piecewise linear between its cached levels."""
        levels = (0.0,) + (MOUTH_LEVELS if index in P.MOUTH_OPEN else WINK_LEVELS)
        for lo, hi in zip(levels, levels[1:]):
            if value <= hi + 1e-6 or hi == levels[-1]:
                break
        hi_patch = self._patch(key[:-2] + (index, int(round(hi * 10))))
        if hi_patch is None:
            return
        lo_patch = rest if lo == 0.0 else self._patch(key[:-2] + (index, int(round(lo * 10))))
        if lo_patch is None:
            lo_patch, lo = rest, 0.0
        t = min((value - lo) / (hi - lo), 1.0)
        patch.add_(torch.lerp(lo_patch, hi_patch, t) - rest)

    def render(self, pose: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
        t0 = time.perf_counter()
        self._refresh()
        if target is not None:
            wanted = target.copy()  # the target, with the blink/mouth layers this frame uses
            layers = P.WINK + P.MOUTH_OPEN
            wanted[layers] = np.maximum(target[layers], pose[layers])
            self.prefetch(wanted, TARGET)
        fields = self._body(pose[P.ROTATION], float(pose[P.BREATHING]))
        patch = self._face(pose)
        face_full = self.image.clone()
        face_full[0, :, FACE_Y:FACE_Y + FACE_SIZE, FACE_X:FACE_X + FACE_SIZE] = patch
        t1 = time.perf_counter()
        with torch.inference_mode():
            image = compose(face_full, fields, self.base_grid)
        frame = to_planes(image)
        self.timings = {"blend_ms": (t1 - t0) * 1000, "warp_ms": (time.perf_counter() - t1) * 1000}
        return frame

    def status(self) -> dict[str, Any]:
        self._refresh()
        pending = self.worker.pending(self.digest)
        done = len(self._body_index) + len(self._face_index) + len(self._variants) + len(self._extra)
        return {"cache": {"body_poses": len(self._body_index), "faces": len(self._face_index),
                          "face_layers": len(self._variants), "pending": pending,
                          "breathing": self.body_key(np.zeros(5), breathing=1) in self._extra,
                          "fill": round(done / max(done + pending, 1), 3)}}
