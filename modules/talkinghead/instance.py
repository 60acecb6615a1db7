"""One avatar instance: animator, renderer, postprocessing and encoding, and what its feeds read.

Two threads per instance, both paced by wall-clock time:

* the *render* thread ticks the animator and renders the pose (as fast as the
  renderer allows, at most ``target_fps``) and publishes the latest frame;
* the *output* thread postprocesses, upscales and encodes at ``target_fps`` from
  whatever frame is latest, so a slow pose never stalls the feed and time-based
  filters keep moving.

Feeds only read the latest encoded frame (:meth:`Instance.latest`); nothing is
queued, so a slow client drops frames and a paused instance keeps nothing stale.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

from greenroom_modules.postprocessor.upscale import output_size

from . import encoding
from .animator import Animator
from .poser import Character
from .settings import AnimatorSettings

log = logging.getLogger("greenroom.talkinghead")
TORCH_THREADS = torch.get_num_threads()
PAUSED_KEEPALIVE_SECONDS = 1.0
"""How often a feed re-sends the last frame of a paused instance."""


class Timer:
    """Running average of the last N durations of one pipeline stage, in milliseconds."""

    def __init__(self, size: int = 50) -> None:
        self.samples: deque[float] = deque(maxlen=size)
        self.total = 0

    def add(self, seconds: float) -> None:
        self.samples.append(seconds * 1000.0)
        self.total += 1

    def ms(self) -> float | None:
        return round(sum(self.samples) / len(self.samples), 2) if self.samples else None


@dataclass
class Encoded:
    """One finished frame as the feeds send it."""

    seq: int
    data: bytes
    mimetype: str
    width: int
    height: int
    rendered_seq: int
    full_size: tuple[int, int]
    """(width, height) of the frame had it not been cropped (after upscaling)."""
    crop: tuple[float, float, float, float] | None
    """The kept region as (left, top, right, bottom) fractions of ``full_size``; None when not cropped."""


class Instance:
    """An avatar with its own character, emotion, settings and feeds."""

    def __init__(self, instance_id: str, character: Character, settings: AnimatorSettings,
                 templates: dict[str, np.ndarray], make_renderer: Callable[[Character, AnimatorSettings], Any],
                 on_change: Callable[["Instance"], None] | None = None) -> None:
        self.id = instance_id
        self.character = character
        self.settings = settings
        self.templates = templates
        self._make_renderer = make_renderer
        self.animator = Animator(settings, templates)
        self.renderer = make_renderer(character, settings)
        self._configure_animator()
        self.postprocessor = self._postprocessor(settings)
        self._dynamic = chain_is_dynamic(settings.postprocessor_chain)
        self.created = time.time()
        self.last_activity = time.monotonic()
        self.paused = False
        self.closed = threading.Event()
        self.error: str | None = None
        self.feeds = 0
        self._lock = threading.Lock()
        self._new_render = threading.Condition()
        self._rendered: tuple[int, np.ndarray] | None = None
        self._encoded: Encoded | None = None
        self._encoded_cond = threading.Condition()
        self._resume = threading.Event()
        self._resume.set()
        self.timers = {name: Timer() for name in ("pose", "postprocess", "upscale", "encode", "frame")}
        self.frames_rendered = 0
        self.frames_encoded = 0
        self.frames_sent = 0
        self.first_frame_at: float | None = None
        self.started_at = time.monotonic()
        self.on_change = on_change
        self._threads = [threading.Thread(target=self._guard(self._render_loop), name=f"th-render-{instance_id[:8]}", daemon=True),
                         threading.Thread(target=self._guard(self._output_loop), name=f"th-output-{instance_id[:8]}", daemon=True)]
        for thread in self._threads:
            thread.start()

    # -- configuration ---------------------------------------------------------------------------

    @staticmethod
    def _postprocessor(settings: AnimatorSettings) -> Any:
        from greenroom_modules.postprocessor import Postprocessor
        return Postprocessor(settings.postprocessor_chain)



    def _configure_animator(self) -> None:
        low = getattr(self.renderer, "mode", "full") == "low_compute"
        self.animator.sway_quantum = 0.1 if low else None
        self.animator.sway_gate = self.renderer.ready if low else None
        self.animator.sway_known = self.renderer.has_rotation if low else None

    @property
    def mode(self) -> str:
        return getattr(self.renderer, "mode", "full")

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def load_character(self, character: Character) -> None:
        """Swap the character (a reload keeps id, emotion, settings and open feeds)."""
        renderer = self._make_renderer(character, self.settings)
        with self._lock:
            self.character, self.renderer = character, renderer
            self._configure_animator()
            self.error = None
        self._warm_up()

    def apply_settings(self, settings: AnimatorSettings) -> None:
        postprocessor = self.postprocessor
        postprocessor.set_chain(settings.postprocessor_chain)  # live: dynamic filters keep their state
        renderer = None
        if settings.mode != self.settings.mode:
            renderer = self._make_renderer(self.character, settings)
        with self._lock:
            self.settings, self.postprocessor = settings, postprocessor
            self._dynamic = chain_is_dynamic(settings.postprocessor_chain)
            if renderer is not None:
                self.renderer = renderer
                self._configure_animator()
        self.animator.set_settings(settings)
        if renderer is not None:
            self._warm_up()

    def set_templates(self, templates: dict[str, np.ndarray]) -> None:
        self.templates = templates
        self.animator.set_templates(templates)
        self._warm_up()

    def _warm_up(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        if paused:
            self._resume.clear()
        else:
            self._resume.set()

    def close(self) -> None:
        self.closed.set()
        self._resume.set()
        with self._new_render:
            self._new_render.notify_all()
        with self._encoded_cond:
            self._encoded_cond.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=120)  # a full pose in progress finishes first (seconds on a busy CPU)

    # -- the two loops ---------------------------------------------------------------------------

    def _guard(self, loop: Callable[[], None]) -> Callable[[], None]:
        """Keep a loop alive whatever happens; errors are reported in status, the last frame stays."""
        def run() -> None:
            while not self.closed.is_set():
                try:
                    loop()
                    return
                except Exception as exc:  # the thread must never die of a bad pose or setting
                    self.error = f"{type(exc).__name__}: {exc}"
                    log.exception("talkinghead instance %s: %s failed", self.id, loop.__name__)
                    self.closed.wait(0.5)
        return run

    def _render_loop(self) -> None:
        next_tick = time.monotonic()
        last_renderer = None
        while not self.closed.is_set():
            self._resume.wait()
            if self.closed.is_set():
                return
            now = time.monotonic()
            if now < next_tick:
                self.closed.wait(next_tick - now)
                continue
            period = 1.0 / self.settings.target_fps
            next_tick = max(next_tick + period, now)  # never try to catch up on missed ticks
            renderer = self.renderer
            if renderer is not last_renderer:
                # Blending cached poses is light: one thread avoids fighting the output thread for cores.
                torch.set_num_threads(1 if renderer.mode == "low_compute" else TORCH_THREADS)
                last_renderer = renderer
            pose = self.animator.tick(now)
            t0 = time.perf_counter()
            try:
                frame = renderer.render(pose, self.animator_target())
            except Exception as exc:
                self.error = f"render failed: {type(exc).__name__}: {exc}"
                log.exception("talkinghead instance %s: render failed", self.id)
                self.closed.wait(0.5)
                continue
            self.timers["pose"].add(time.perf_counter() - t0)
            self.error = None if self.error and self.error.startswith("render failed") else self.error
            with self._new_render:
                self.frames_rendered += 1
                self._rendered = (self.frames_rendered, frame)
                self._new_render.notify_all()

    def animator_target(self) -> np.ndarray | None:
        return getattr(self.animator, "last_target", None)

    def _output_loop(self) -> None:
        next_tick = time.monotonic()
        last_seq = -1
        last_settings = None
        while not self.closed.is_set():
            self._resume.wait()
            with self._new_render:
                while self._rendered is None and not self.closed.is_set():
                    self._new_render.wait(0.1)
                if self.closed.is_set():
                    return
                seq, frame = self._rendered  # type: ignore[misc]
            now = time.monotonic()
            if now < next_tick:
                self.closed.wait(next_tick - now)
                continue
            settings, postprocessor = self.settings, self.postprocessor
            next_tick = max(next_tick + 1.0 / settings.target_fps, now)
            # A frame already sent is processed again only for time-dependent filters, and not in full
            # mode, where the CPU it would take belongs to the poser (the feeds re-send the last frame).
            refresh = self._dynamic and self.mode != "full"
            if seq == last_seq and not refresh and settings is last_settings:
                continue
            t0 = time.perf_counter()
            self._publish(self._finish(frame, settings, postprocessor), settings, seq, frame.shape[:2])
            self.timers["frame"].add(time.perf_counter() - t0)
            last_seq, last_settings = seq, settings

    def _finish(self, frame: np.ndarray, settings: AnimatorSettings, postprocessor: Any) -> np.ndarray:
        """Crop, postprocess and upscale (in the configured order), then convert to sRGB bytes."""
        out = _crop(frame, settings).copy()
        timers = self.timers
        if settings.postprocess_before_upscale:
            out = self._postprocess(out, postprocessor)
        if settings.upscale > 1.0:
            from greenroom_modules.postprocessor import upscale
            t0 = time.perf_counter()
            out = np.ascontiguousarray(upscale(out, settings.upscale, settings.upscale_method), dtype=np.float32)
            timers["upscale"].add(time.perf_counter() - t0)
        if not settings.postprocess_before_upscale:
            out = self._postprocess(out, postprocessor)
        return encoding.to_srgb8(out)

    def _postprocess(self, frame: np.ndarray, postprocessor: Any) -> np.ndarray:
        t0 = time.perf_counter()
        result = postprocessor.apply(frame, t=time.time())
        self.timers["postprocess"].add(time.perf_counter() - t0)
        return frame if result is None else result

    def _publish(self, rgba8: np.ndarray, settings: AnimatorSettings, rendered_seq: int,
                 rendered_size: tuple[int, int]) -> None:
        t0 = time.perf_counter()
        data = encoding.encode(rgba8, settings.format)
        self.timers["encode"].add(time.perf_counter() - t0)
        h, w = rendered_size
        box = crop_box(h, w, settings)
        full_h, full_w = output_size(h, w, settings.upscale) if settings.upscale > 1.0 else (h, w)
        crop = None if box is None else (box[0] / w, box[1] / h, box[2] / w, box[3] / h)
        with self._encoded_cond:
            self.frames_encoded += 1
            self._encoded = Encoded(self.frames_encoded, data, encoding.MIMETYPES[settings.format],
                                    rgba8.shape[1], rgba8.shape[0], rendered_seq, (full_w, full_h), crop)
            if self.first_frame_at is None:
                self.first_frame_at = time.monotonic()
            self._encoded_cond.notify_all()

    # -- what feeds and clients read -------------------------------------------------------------

    def latest(self) -> Encoded | None:
        return self._encoded

    def wait_frame(self, after_seq: int, timeout: float) -> Encoded | None:
        """The latest frame newer than ``after_seq``, waiting up to ``timeout`` seconds for one."""
        with self._encoded_cond:
            deadline = time.monotonic() + timeout
            while (self._encoded is None or self._encoded.seq <= after_seq) and not self.closed.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._encoded_cond.wait(remaining)
            return self._encoded

    def status(self) -> dict[str, Any]:
        uptime = time.monotonic() - self.started_at
        out: dict[str, Any] = {
            "instance_id": self.id, "character": self.character.name, "image_digest": self.character.digest,
            "mode": self.mode, "paused": self.paused, "feeds": self.feeds, "error": self.error,
            "target_fps": self.settings.target_fps, "format": self.settings.format,
            "frames": {"rendered": self.frames_rendered, "encoded": self.frames_encoded, "sent": self.frames_sent},
            "fps": {"render": round(self.frames_rendered / uptime, 2) if uptime > 0 else None,
                    "encode": round(self.frames_encoded / uptime, 2) if uptime > 0 else None},
            "stage_ms": {name: timer.ms() for name, timer in self.timers.items()},
            "idle_seconds": round(time.monotonic() - self.last_activity, 1),
            **self.animator.snapshot(),
        }
        if self.first_frame_at is not None:
            out["first_frame_seconds"] = round(self.first_frame_at - self.started_at, 3)
        renderer_status = self.renderer.status()
        if getattr(self.renderer, "timings", None):
            out["stage_ms"].update({k: round(v, 2) for k, v in self.renderer.timings.items()})
        out.update(renderer_status)
        return out


def paced_frames(inst: Instance, stopping: threading.Event) -> Iterator[Encoded]:
    """The latest frame of ``inst`` every 1/target_fps s (once a second while paused), until the instance
    closes or ``stopping`` is set; never queue, never burst. Counted in ``inst.feeds`` while it runs."""
    inst.feeds += 1
    try:
        next_send = time.monotonic()
        while not inst.closed.is_set() and not stopping.is_set():
            now = time.monotonic()
            if now < next_send:
                inst.closed.wait(min(next_send - now, 0.1))
                continue
            encoded = inst.latest()
            if encoded is None:
                inst.wait_frame(-1, 0.1)
                continue
            period = PAUSED_KEEPALIVE_SECONDS if inst.paused else 1.0 / inst.settings.target_fps
            yield encoded
            inst.frames_sent += 1
            inst.touch()
            next_send += period
            if next_send < time.monotonic():  # a slow client: drop the missed ticks, never burst
                next_send = time.monotonic()
    finally:
        inst.feeds -= 1


def crop_box(height: int, width: int, s: AnimatorSettings) -> tuple[int, int, int, int] | None:
    """The kept pixels (left, top, right, bottom) of a ``height`` x ``width`` frame, or None when the settings
    crop nothing (or would leave under 8 pixels). EX crop units: the full width and height are 2.0."""
    if not (s.crop_left or s.crop_right or s.crop_top or s.crop_bottom):
        return None
    left, right = int(width * s.crop_left / 2), width - int(width * s.crop_right / 2)
    top, bottom = int(height * s.crop_top / 2), height - int(height * s.crop_bottom / 2)
    if right - left < 8 or bottom - top < 8:
        return None
    return left, top, right, bottom


def _crop(frame: np.ndarray, s: AnimatorSettings) -> np.ndarray:
    box = crop_box(frame.shape[0], frame.shape[1], s)
    if box is None:
        return frame
    left, top, right, bottom = box
    return frame[top:bottom, left:right]


def chain_is_dynamic(chain: list) -> bool:
    """Whether any filter of the chain changes with time (then every tick is postprocessed anew)."""
    from greenroom_modules.postprocessor import describe_filters
    dynamic = {f["name"]: f.get("dynamic", True) for f in describe_filters()}
    return any(dynamic.get(step[0], True) for step in chain if isinstance(step, (list, tuple)) and step)
