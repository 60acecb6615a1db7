"""The registry of avatar instances: ids, the default instance, limits, idle clean-up, renderer choice."""
from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any, Callable

import numpy as np

from .cache import PoseCache, PoseWorker
from .instance import Instance
from .poser import Character, SharedPoser
from .renderers import CachedRenderer, FullRenderer
from .settings import AnimatorSettings, TalkingheadSettings

log = logging.getLogger("greenroom.talkinghead")
DEFAULT_ID = "default"


class InstanceError(Exception):
    """Unknown id (404) or too many instances (429); carries the id for the JSON answer."""

    def __init__(self, status: int, message: str, instance_id: str | None = None) -> None:
        super().__init__(message)
        self.status, self.instance_id = status, instance_id


class InstanceManager:
    """Creates, finds and deletes instances; one poser, cache and background worker serve them all."""

    def __init__(self, poser: SharedPoser, settings: TalkingheadSettings, defaults: Callable[[], dict[str, Any]],
                 templates: Callable[[], dict[str, np.ndarray]], worker_id: str = "") -> None:
        self.poser = poser
        self.worker_id = worker_id
        """Prefix of the ids this server creates (``--worker-id``), so a router maps an id to its worker."""
        self.settings = settings
        self.defaults = defaults
        self.templates = templates
        self.cache = PoseCache(settings.cache_dir, settings.cache_memory_mb, settings.cache_disk_mb)
        self.worker = PoseWorker(settings.background_nice, settings.background_idle)
        self.full_pose_seconds: float | None = None
        self._instances: dict[str, Instance] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="talkinghead-reaper", daemon=True)
        self._reaper.start()

    # -- renderer choice -------------------------------------------------------------------------

    def measure_full_pose(self, character: Character) -> float:
        """Seconds one full THA3 pose takes here (after one warm-up pose); decides 'auto'."""
        pose = np.zeros(45, dtype=np.float32)
        self.poser.pose(character, pose)
        t0 = time.perf_counter()
        self.poser.pose(character, pose)
        if self.poser.device.type == "cuda":
            import torch
            torch.cuda.synchronize()
        self.full_pose_seconds = time.perf_counter() - t0
        return self.full_pose_seconds

    def resolve_mode(self, settings: AnimatorSettings) -> str:
        mode = self.settings.mode if settings.mode == "default" else settings.mode
        if mode == "auto":
            budget = 1.0 / settings.target_fps
            fast = self.full_pose_seconds is not None and self.full_pose_seconds <= budget
            mode = "full" if fast else "low_compute"
        return mode

    def make_renderer(self, character: Character, settings: AnimatorSettings) -> Any:
        if self.resolve_mode(settings) == "full":
            return FullRenderer(self.poser, character)
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
        self.worker.stop()
