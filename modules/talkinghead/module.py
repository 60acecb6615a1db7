"""The talkinghead module: a THA3 avatar with many simultaneous instances, streamed as video."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from greenroom import Compute, Context, Module, Resources
from greenroom.module import WebPanel

from . import pose as P
from .contract import Avatars
from .images import CHARACTERS, load_named
from .manager import InstanceManager
from .poser import SharedPoser, load_poser
from .posing import PoseService
from .service import AvatarService
from .settings import ASSETS, TalkingheadSettings, merge_settings, server_defaults
from .templates_store import TemplateStore

log = logging.getLogger("greenroom.talkinghead")
EMOTIONS_DIR = ASSETS / "emotions"


class Talkinghead(Module):
    name = "talkinghead"
    version = "1.0.0"
    description = "Animated THA3 avatar (SillyTavern talkinghead), many instances, real time on a CPU."
    Settings = TalkingheadSettings
    resources = Resources(device="any", gpu_dtype="float16", memory_mb=1200, cpu_fallback=True)
    web_dir = Path(__file__).parent / "web"
    web_panels = (WebPanel("avatar", "Avatar", "avatar.js", order=10),
                  WebPanel("style", "Filters", "filters.js", order=20))

    def __init__(self, context: Context, settings: TalkingheadSettings) -> None:
        super().__init__(context, settings)
        self.manager: InstanceManager | None = None
        self.poser: SharedPoser | None = None
        self._defaults_lock = threading.Lock()
        self._base_templates: dict[str, np.ndarray] = {}
        self.posing = PoseService(self)  # the pose editor's renders: cached, coalesced per channel

    # -- lifecycle -------------------------------------------------------------------------------

    def load(self, compute: Compute) -> None:
        s = self.settings
        key = ("tha3", s.model, compute.device, compute.dtype, s.weights_dir, s.compile, s.cuda_graphs,
               tuple(s.fixed_batch_sizes))
        self.poser = self.context.shared(key, lambda: load_poser(s, compute))
        self._base_templates = P.load_template_dir(EMOTIONS_DIR)
        TemplateStore().remove_leftovers()
        self.manager = InstanceManager(self.poser, s, self.animator_defaults, self.default_templates,
                                       self.context.server.worker_id)
        if self.poser.device.type != "cpu":  # a CPU is never fast enough for full mode: skip the measure
            sample = self.poser.character(load_named("lambda_00", CHARACTERS), "lambda_00")
            seconds = self.manager.measure(sample)
            log.info("talkinghead: one full pose takes %.3f s here ('auto' mode means %s); batches of %d sustain "
                     "%.0f frames/s", seconds, self.manager.resolve_mode(self.manager_defaults()), s.max_batch,
                     self.manager.measured_fps)
        self.context.subscribe("classify.result", self._on_classified)
        self.context.provide(Avatars, AvatarService(self))

    def unload(self) -> None:
        if self.manager is not None:
            self.manager.close()
            self.manager = None

    def apply_settings(self, settings: Any) -> None:
        self.settings = settings
        if self.manager is not None:
            self.manager.apply_settings(settings)

    def status(self) -> dict[str, Any]:
        if self.manager is None:
            return {}
        m, s = self.manager, self.settings
        return {"instances": len(m.all()), "default_mode": self.settings.mode,
                "auto_means": m.resolve_mode(self.manager_defaults()),
                "full_pose_seconds": None if m.full_pose_seconds is None else round(m.full_pose_seconds, 3),
                "poser": {"model": self.poser.model, "device": str(self.poser.device), "dtype": self.poser.dtype_name,
                          "compiled": self.poser.compiled,
                          "cuda_graphs": None if self.poser.graphs is None else self.poser.graphs.sizes},
                "gpu_memory": self.poser.memory(),
                "batching": m.batcher.stats(),
                "capacity": {"sustainable_fps": None if (c := m.capacity_fps()) is None else round(c, 1),
                             "full_mode_fps_in_use": m.full_mode_fps(), "admission": s.admission},
                "worker": {"pending": m.worker.pending(), "jobs_done": m.worker.jobs_done,
                           "busy_seconds": round(m.worker.busy_seconds, 1),
                           "cpu_seconds": round(m.worker.cpu_seconds, 3)},
                "cache": m.cache.stats()}

    # -- defaults --------------------------------------------------------------------------------

    def animator_defaults(self) -> dict[str, Any]:
        """Built-ins < assets/settings/animator.json < [modules.talkinghead.animator] in plugins.toml."""
        base = server_defaults()
        configured = self.settings.animator.model_dump(include=self.settings.animator.model_fields_set)
        merged, _ = merge_settings(base, configured)
        return merged.model_dump()

    def manager_defaults(self) -> Any:
        from .settings import AnimatorSettings
        return AnimatorSettings.model_validate(self.animator_defaults())

    def default_templates(self) -> dict[str, np.ndarray]:
        return {name: vec.copy() for name, vec in self._base_templates.items()}

    # -- cooperation -----------------------------------------------------------------------------

    def _on_classified(self, label: str, scores: Any = None, **_: Any) -> None:
        """classify.result: the default instance shows the top emotion (as EX's classify did)."""
        inst = self.manager.find(None) if self.manager is not None else None
        if inst is not None and isinstance(label, str):
            inst.animator.set_emotion(label)
