"""One avatar instance: animator, renderer, postprocessing and encoding, and what its feeds read.

A frame passes three threads, each working on its own frame at the same time:

* the *render* thread ticks the animator on wall-clock time and renders the pose, at
  most ``target_fps`` times a second (the only clock of the pipeline);
* the *output* thread finishes each new render once (crop, postprocess, upscale, sRGB
  bytes) and publishes it as an :class:`Encoded` frame; while no new render comes (a
  slow full pose) it re-finishes the last one only when time-dependent filters or the
  settings changed;
* each *feed* (an HTTP thread, :func:`routes._feed`) waits for the next published
  frame and sends it once, encoded in the feed's format. The encoding is made by the
  first feed that asks for it and shared with the others, so nothing is encoded
  for nobody.

Nothing is queued: a feed always takes the latest frame, so a slow client skips frames and a
paused instance keeps nothing stale. Because the feeds follow the frames instead of their own
clock, no frame is sent twice while a new one is ready, and none is skipped on a fast client.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from . import encoding
from .animator import Animator
from .poser import Character
from .settings import AnimatorSettings

log = logging.getLogger("greenroom.talkinghead")
REFINISH_PERIODS = 3  # frame periods without a new render before the output thread re-finishes the last one
TORCH_THREADS = torch.get_num_threads()


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
    """One finished frame (sRGB bytes) and its encodings, each made once, when a feed first asks for it."""

    seq: int
    rgba8: np.ndarray
    rendered_seq: int
    timer: "Timer | None" = None
    _data: dict[str, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def width(self) -> int:
        return self.rgba8.shape[1]

    @property
    def height(self) -> int:
        return self.rgba8.shape[0]

    def data(self, fmt: str) -> bytes:
        """The frame encoded as ``fmt`` (a key of :data:`encoding.MIMETYPES`); feeds of one format share it."""
        with self._lock:
            data = self._data.get(fmt)
            if data is None:
                t0 = time.perf_counter()
                data = self._data[fmt] = encoding.encode(self.rgba8, fmt)
                if self.timer is not None:
                    self.timer.add(time.perf_counter() - t0)
            return data


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
        self.cpu_seconds = {"render": 0.0, "output": 0.0}  # thread CPU time of the two loops' work
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
            c0 = time.thread_time()
            pose = self.animator.tick(now)
            t0 = time.perf_counter()
            try:
                frame = renderer.render(pose, self.animator_target())
            except Exception as exc:
                self.error = f"render failed: {type(exc).__name__}: {exc}"
                log.exception("talkinghead instance %s: render failed", self.id)
                self.closed.wait(0.5)
                continue
            if not getattr(renderer, "planar", False):  # the output thread works on 4xHxW planes
                frame = np.ascontiguousarray(frame.transpose(2, 0, 1))
            self.timers["pose"].add(time.perf_counter() - t0)
            self.cpu_seconds["render"] += time.thread_time() - c0
            self.error = None if self.error and self.error.startswith("render failed") else self.error
            with self._new_render:
                self.frames_rendered += 1
                self._rendered = (self.frames_rendered, frame)
                self._new_render.notify_all()

    def animator_target(self) -> np.ndarray | None:
        return getattr(self.animator, "last_target", None)

    def _output_loop(self) -> None:
        last_seq, last_settings = -1, None
        while not self.closed.is_set():
            self._resume.wait()
            settings, postprocessor = self.settings, self.postprocessor
            # Each new render is finished once, as soon as it exists. Without one for a few frame periods
            # (a full pose on a CPU takes a second) the last render is finished again only when the
            # settings changed, or for time-dependent filters outside full mode (where the CPU it would
            # take belongs to the poser).
            rendered = self._next_render(last_seq, REFINISH_PERIODS / settings.target_fps)
            if rendered is None:
                continue
            seq, frame = rendered
            refresh = settings is not last_settings or (self._dynamic and self.mode != "full")
            if seq == last_seq and not refresh:
                continue
            t0, c0 = time.perf_counter(), time.thread_time()
            self._publish(self._finish(frame, settings, postprocessor), seq)
            self.timers["frame"].add(time.perf_counter() - t0)
            self.cpu_seconds["output"] += time.thread_time() - c0
            last_seq, last_settings = seq, settings

    def _next_render(self, after_seq: int, timeout: float) -> tuple[int, np.ndarray] | None:
        """The latest render, as soon as it is newer than ``after_seq`` (else after ``timeout`` seconds);
        None when there is none yet or the instance closed."""
        deadline = time.monotonic() + timeout
        with self._new_render:
            while not self.closed.is_set() and (self._rendered is None or self._rendered[0] == after_seq):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._new_render.wait(remaining)
            return None if self.closed.is_set() else self._rendered

    def _finish(self, planes: np.ndarray, settings: AnimatorSettings, postprocessor: Any) -> np.ndarray:
        """Crop, postprocess and upscale 4xHxW planes (in the configured order), then convert to HxWx4 sRGB
        bytes. The planes stay as they are (the last render may be finished again)."""
        from greenroom_modules.postprocessor import planes_to_rgba8, upscale_planar
        out = _crop(planes, settings).copy()
        timers = self.timers
        if settings.postprocess_before_upscale:
            out = self._postprocess(out, postprocessor)
        if settings.upscale > 1.0:
            t0 = time.perf_counter()
            out = upscale_planar(out, settings.upscale, settings.upscale_method, premultiplied_ok=True)
            timers["upscale"].add(time.perf_counter() - t0)
        if not settings.postprocess_before_upscale:
            out = self._postprocess(out, postprocessor)
        return planes_to_rgba8(out)

    def _postprocess(self, planes: np.ndarray, postprocessor: Any) -> np.ndarray:
        t0 = time.perf_counter()
        postprocessor.apply_planar(planes, t=time.time())
        self.timers["postprocess"].add(time.perf_counter() - t0)
        return planes

    def _publish(self, rgba8: np.ndarray, rendered_seq: int) -> None:
        with self._encoded_cond:
            self.frames_encoded += 1
            self._encoded = Encoded(self.frames_encoded, rgba8, rendered_seq, self.timers["encode"])
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
            "cpu_seconds": {**{k: round(v, 3) for k, v in self.cpu_seconds.items()},
                            "live": round(sum(self.cpu_seconds.values()), 3)},
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


def _crop(planes: np.ndarray, s: AnimatorSettings) -> np.ndarray:
    """EX crop units: the full width and height are 2.0. A view of 4xHxW planes."""
    if not (s.crop_left or s.crop_right or s.crop_top or s.crop_bottom):
        return planes
    h, w = planes.shape[1:]
    left, right = int(w * s.crop_left / 2), w - int(w * s.crop_right / 2)
    top, bottom = int(h * s.crop_top / 2), h - int(h * s.crop_bottom / 2)
    if right - left < 8 or bottom - top < 8:
        return planes
    return planes[:, top:bottom, left:right]


def chain_is_dynamic(chain: list) -> bool:
    """Whether any filter of the chain changes with time (then every tick is postprocessed anew)."""
    from greenroom_modules.postprocessor import describe_filters
    dynamic = {f["name"]: f.get("dynamic", True) for f in describe_filters()}
    return any(dynamic.get(step[0], True) for step in chain if isinstance(step, (list, tuple)) and step)
