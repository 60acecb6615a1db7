"""The ``tts`` module: loads a Kokoro backend and the G2P once, schedules synthesis fairly, and offers
the :class:`~greenroom_modules.tts.contract.Speech` service to other modules (the talking head's lip-sync)."""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from greenroom import Compute, Context, Error, Invalid, Module, Resources
from greenroom.module import WebPanel
from greenroom.web.openai_models import created_time, offer_models

from . import audio
from .backends import SAMPLE_RATE, OnnxBackend, TorchBackend
from .contract import AudioFormat, Speech, Spoken, WordTiming
from .engine import Plan, Synthesizer, TTSInputError
from .g2p import Phonemizer
from .scheduler import Busy, Job, Scheduler
from .settings import OPENAI_MODELS, TTSSettings

log = logging.getLogger("greenroom.tts")


class TTSModule(Module):
    name = "tts"
    version = "0.1.0"
    description = "Kokoro-82M speech with word timestamps; OpenAI-compatible and SillyTavern Silero endpoints."
    aliases = ("silero-tts",)
    advertise_name = False
    """SillyTavern's XTTS provider hijacks plain 'tts' (contract G10); only 'silero-tts' should be advertised."""
    Settings = TTSSettings
    resources = Resources(device="any", gpu_dtype="float32", memory_mb=1300, cpu_fallback=True)
    web_dir = Path(__file__).parent / "web"
    web_panels = (WebPanel("speech", "Speech", "speech.js", order=30),)

    def __init__(self, context: Context, settings: TTSSettings) -> None:
        super().__init__(context, settings)
        self.synth: Synthesizer | None = None
        self.scheduler: Scheduler | None = None
        self.device = "cpu"
        self._samples: dict[tuple[str, str], bytes] = {}
        self._samples_lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    def load(self, compute: Compute) -> None:
        s = self.settings
        if s.backend == "onnx":
            if compute.is_cuda:
                log.info("tts: the ONNX backend runs on the CPU; use backend = \"torch\" for a GPU")
            backend: Any = OnnxBackend(s.onnx_model, s.onnx_voices, s.threads)
            self.device = "cpu"
        else:
            backend = TorchBackend(s.torch_repo_id, s.torch_config, s.torch_model, s.torch_voices_dir,
                                   compute.device, compute.dtype, s.threads)
            self.device = compute.device
        synth = Synthesizer(backend, Phonemizer(), s.lang)
        if not synth.voices():
            raise RuntimeError("tts: the backend has no voices")
        default = self.default_voice(synth)
        try:
            warm = synth.plan("Ready.", default, aliases=s.alias_map())
        except TTSInputError as exc:
            raise RuntimeError(f"default_voice: {exc}") from None
        synth.render(warm, 0)  # first inference allocates; keep that out of the first request
        self.synth = synth
        self.scheduler = Scheduler(s.max_jobs, s.workers)
        self.context.provide(Speech, self)
        offer_models(self.context, lambda: OPENAI_MODELS if self.synth else (), owned_by="hexgrad",
                     created=created_time(getattr(backend, "model_path", None)))  # listed by GET /v1/models
        log.info("tts: %s backend, %d voices, default %s", backend.name, len(synth.voices()), default)

    def unload(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()
        if self.synth is not None:
            self.synth.backend.close()
        self.synth = self.scheduler = None

    def apply_settings(self, settings: TTSSettings) -> None:
        if self.synth is not None:
            try:
                self.synth.plan("x", self.default_voice(self.synth, settings), aliases=settings.alias_map())
            except TTSInputError as exc:
                raise Invalid(f"default_voice: {exc}") from None
            self.synth.default_lang = settings.lang
        if self.scheduler is not None:
            self.scheduler.max_jobs = settings.max_jobs
        if settings.sample_text != self.settings.sample_text:
            with self._samples_lock:
                self._samples.clear()
        self.settings = settings

    def status(self) -> dict[str, Any]:
        synth = self.synth
        return {"backend": self.settings.backend, "device": self.device, "sample_rate": SAMPLE_RATE,
                "voices": synth.voices() if synth else [], "default_voice": self.default_voice(synth) if synth else None,
                "in_flight": self.scheduler.active if self.scheduler else 0, "max_jobs": self.settings.max_jobs,
                "samples_cached": len(self._samples)}

    def default_voice(self, synth: Synthesizer, settings: TTSSettings | None = None) -> str:
        settings = settings or self.settings
        voices = synth.voices()
        return settings.default_voice or ("af_heart" if "af_heart" in voices else voices[0])

    # -- synthesis ----------------------------------------------------------------------------

    def plan(self, text: Any, voice: str | None = None, speed: float = 1.0, voice2: str | None = None,
             mix: float | None = None, lang: str | None = None) -> Plan:
        """Validate a request (raises TTSInputError with a message naming the field)."""
        synth = self._ready()
        return synth.plan(text, voice or self.default_voice(synth), speed, voice2, mix, lang,
                          self.settings.alias_map(), self.settings.max_chars)

    def segments(self, plan: Plan, label: str = "") -> Job:
        """The plan's units in order (an iterator; ``close()`` cancels), rendered by the fair scheduler.

        Raises Busy when the scheduler is full; iterating raises OverBudget (a Busy) past ``time_budget_s``."""
        synth, scheduler = self._ready(), self.scheduler
        assert scheduler is not None
        return scheduler.submit(lambda i: synth.render(plan, i), len(plan.sentences), label,
                                self.settings.time_budget_s)

    def synthesize(self, plan: Plan, label: str = "") -> tuple[np.ndarray, list[dict[str, Any]]]:
        """The whole plan as one audio array and its words on one timeline."""
        parts, words, offset = [], [], 0.0
        with contextlib.closing(self.segments(plan, label)) as segments:
            for seg in segments:
                words.extend(seg.words_at(offset))
                parts.append(seg.audio)
                offset += seg.duration
        pcm = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return pcm, words

    # -- the Speech service (contract.py) --------------------------------------------------------

    sample_rate = SAMPLE_RATE

    def speak(self, text: str, voice: str | None = None, *, voice2: str | None = None, mix: float | None = None,
              speed: float = 1.0, format: AudioFormat | None = None) -> Spoken:
        """See :meth:`Speech.speak`: raises InvalidSpeech (TTSInputError) or Busy."""
        started = time.perf_counter()
        plan = self.plan(text, voice, speed, voice2, mix)
        pcm, words = self.synthesize(plan, "service")
        log.info("speech service: %d chars, %d units, voice %s -> %.2f s audio in %.2f s", len(text),
                 len(plan.sentences), plan.voice, len(pcm) / SAMPLE_RATE, time.perf_counter() - started)
        return Spoken(pcm, SAMPLE_RATE, plan.voice, [WordTiming(**w) for w in words], format,
                      None if format is None else self.encode(pcm, format))

    def encode(self, pcm: np.ndarray, format: AudioFormat) -> bytes:
        return audio.encode(pcm, format)

    def voices(self) -> list[str]:
        return self._ready().voices()

    def sample(self, voice: str) -> bytes:
        """A short WAV of ``voice`` saying ``sample_text``, generated once per voice and cached."""
        key = (voice, self.settings.sample_text)
        with self._samples_lock:
            if key in self._samples:
                return self._samples[key]
        pcm, _ = self.synthesize(self.plan(self.settings.sample_text, voice), "sample")
        data = audio.encode(pcm, "wav")
        with self._samples_lock:
            self._samples[key] = data
        return data

    def _ready(self) -> Synthesizer:
        if self.synth is None:
            raise Error(503, "tts is not loaded")
        return self.synth


__all__ = ["TTSModule", "Busy", "TTSInputError"]
