"""The registry of avatar instances: ids, the default instance, limits, idle clean-up, renderer choice,
and on a GPU the admission of full-mode instances by measured capacity."""
from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any, Callable

import numpy as np

from greenroom.errors import Error

from .batcher import PoseBatcher
from .cache import PoseCache, PoseWorker
from .instance import Instance
from .poser import Character, SharedPoser
from .renderers import EMOTION_FACE, CachedRenderer, FullRenderer
from .settings import AnimatorSettings, TalkingheadSettings

log = logging.getLogger("greenroom.talkinghead")
DEFAULT_ID = "default"


class InstanceError(Error):
    """Unknown id (404) or too many instances (429); the answer names the id."""

    def __init__(self, status: int, message: str, instance_id: str | None = None) -> None:
        super().__init__(status, message, instance_id=instance_id)


class InstanceManager:
    """Creates, finds and deletes instances; one poser, batcher, cache and background worker serve them all."""

    def __init__(self, poser: SharedPoser, settings: TalkingheadSettings, defaults: Callable[[], dict[str, Any]],
                 templates: Callable[[], dict[str, np.ndarray]], worker_id: str = "") -> None:
        self.poser = poser
        self.worker_id = worker_id
        """Prefix of the ids this server creates (``--worker-id``), so a router maps an id to its worker."""
        self.settings = settings
        self.defaults = defaults
        self.templates = templates
        self.cache = PoseCache(settings.cache_dir, settings.cache_memory_mb, settings.cache_disk_mb)
        self.worker = PoseWorker(settings.background_nice, settings.background_idle, idle_from=EMOTION_FACE)
        self.batcher = PoseBatcher(poser, settings.max_batch, settings.batch_wait_ms)
        self.full_pose_seconds: float | None = None
        self.measured_fps: float | None = None
        """Full-mode frames per second a batch of ``max_batch`` sustained at start-up (GPU only)."""
        self._instances: dict[str, Instance] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="talkinghead-reaper", daemon=True)
        self._reaper.start()

    # -- renderer choice -------------------------------------------------------------------------

    def apply_settings(self, settings: TalkingheadSettings) -> None:
        self.settings = settings
        self.batcher.configure(settings.max_batch, settings.batch_wait_ms)

    def _pose_seconds(self, character: Character, size: int, repeat: int = 3) -> float:
        """Seconds one batch of ``size`` full poses takes here, frames on the host (after a warm-up batch)."""
        chars, poses = [character] * size, np.zeros((size, 45), dtype=np.float32)
        self.poser.to_host(self.poser.pose_batch(chars, poses))
        t0 = time.perf_counter()
        for _ in range(repeat):
            self.poser.to_host(self.poser.pose_batch(chars, poses))
        return (time.perf_counter() - t0) / repeat

    def measure(self, character: Character) -> float:
        """Seconds one full THA3 pose takes here (decides 'auto'), and the frames per second a full batch
        sustains (:attr:`measured_fps`, for admission)."""
        self.full_pose_seconds = self._pose_seconds(character, 1)
        size = self.settings.max_batch
        self.measured_fps = size / (self._pose_seconds(character, size) if size > 1 else self.full_pose_seconds)
        return self.full_pose_seconds

    def capacity_fps(self) -> float | None:
        """Full-mode frames per second the poser sustains: the start-up measure, or a better one seen since.
        None on a CPU, where no measure is taken and admission is off."""
        if self.measured_fps is None:
            return None
        return max(self.measured_fps, self.batcher.sustained_fps() or 0.0)

    def full_mode_fps(self) -> int:
        """The frame rates that running, unpaused full-mode instances ask of the poser."""
        return sum(i.settings.target_fps for i in self.all() if i.mode == "full" and not i.paused)

    def _admit(self, settings: AnimatorSettings, key: str) -> None:
        """429 when a new full-mode instance would ask the poser for more frames than it sustains."""
        capacity = self.capacity_fps()
        if capacity is None or not self.settings.admission or self.resolve_mode(settings) != "full":
            return
        used = self.full_mode_fps()
        if used + settings.target_fps > capacity:
            raise InstanceError(429, f"the {self.poser.device} poser sustains about {capacity:.0f} full-mode frames/s "
                                     f"and running full-mode instances use {used}; a new one at {settings.target_fps} "
                                     "frames/s would exceed it. Unload or pause an instance, lower target_fps, or "
                                     "load with mode low_compute", key)

    def resolve_mode(self, settings: AnimatorSettings) -> str:
        mode = self.settings.mode if settings.mode == "default" else settings.mode
        if mode == "auto":
            budget = 1.0 / settings.target_fps
            fast = self.full_pose_seconds is not None and self.full_pose_seconds <= budget
            mode = "full" if fast else "low_compute"
        return mode

    def make_renderer(self, character: Character, settings: AnimatorSettings) -> Any:
        if self.resolve_mode(settings) == "full":
            return FullRenderer(self.poser, character, self.batcher)
        return CachedRenderer(self.poser, character, self.cache, self.worker)

    def warm_up(self, instance: Instance) -> None:
        instance.renderer.warm_up(instance.templates, instance.settings, self.settings.precompute_emotions)

    # -- instances -------------------------------------------------------------------------------

    def get(self, instance_id: str | None) -> Instance:
        key = instance_id or DEFAULT_ID
        with self._lock:
            inst = self._instances.get(key)
        if inst is None:
            if instance_id is None:
                raise InstanceError(404, "no default instance yet: POST /api/talkinghead/load a character first",
                                    DEFAULT_ID)
            raise InstanceError(404, f"unknown instance_id '{instance_id}'", instance_id)
        inst.touch()
        return inst

    def find(self, instance_id: str | None) -> Instance | None:
        with self._lock:
            return self._instances.get(instance_id or DEFAULT_ID)

    def load(self, character: Character, instance_id: str | None, new: bool) -> tuple[Instance, bool]:
        """Create or reload: no id -> the default instance; ``new`` -> a fresh id; an id -> that one."""
        if new:
            instance_id = f"{self.worker_id}-{secrets.token_hex(8)}" if self.worker_id else secrets.token_hex(8)
        key = instance_id or DEFAULT_ID
        with self._lock:
            existing = self._instances.get(key)
            if existing is None and len(self._instances) >= self.settings.max_instances:
                raise InstanceError(429, f"too many instances (max_instances = {self.settings.max_instances}); "
                                         "unload one first", key)
            if existing is None:
                settings = AnimatorSettings.model_validate(self.defaults())
                self._admit(settings, key)
                inst = Instance(key, character, settings, self.templates(), self.make_renderer,
                                on_change=self.warm_up)
                self._instances[key] = inst
        if existing is not None:
            old = existing.character.digest
            existing.load_character(character)
            existing.touch()
            self._forget(old)
            return existing, False
        self.warm_up(inst)
        log.info("talkinghead instance %s created (%s, %s)", key, character.name or "upload", inst.mode)
        return inst, True

    def delete(self, instance_id: str | None) -> bool:
        key = instance_id or DEFAULT_ID
        with self._lock:
            inst = self._instances.pop(key, None)
        if inst is None:
            return False
        inst.close()
        self._forget(inst.character.digest)
        log.info("talkinghead instance %s deleted", key)
        return True

    def _forget(self, digest: str) -> None:
        """Drop queued background work for a character no instance shows any more."""
        with self._lock:
            if any(i.character.digest == digest for i in self._instances.values()):
                return
        self.worker.cancel(digest)

    def all(self) -> list[Instance]:
        with self._lock:
            return list(self._instances.values())

    def _reap_loop(self) -> None:
        while not self._stop.wait(5.0):
            self._reap()

    def _reap(self) -> None:
        """Delete idle instances (a function of its own: the waiting loop keeps no instance referenced)."""
        limit = self.settings.idle_timeout_minutes * 60
        for inst in self.all():
            if inst.feeds == 0 and time.monotonic() - inst.last_activity > limit:
                log.info("talkinghead instance %s idle for %.0f s; deleting", inst.id, limit)
                self.delete(inst.id)

    def close(self) -> None:
        self._stop.set()
        self.poser.stopping.set()
        for inst in self.all():
            self.delete(inst.id)
        self.batcher.close()
        self.worker.stop()
